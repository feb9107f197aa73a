package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

func TestSuspendStopsARunningSyncAndStartsNoNewOne(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.startManager()
	h.erpsync("acme")
	h.waitCheckpoint("acme", model.KindProduct, 1)

	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Suspend = true })
	var o *erpv1.ErpSync
	g.Eventually(func(g Gomega) {
		o = h.get("acme")
		g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseSuspended))
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	// The checkpoint of the first page survives: resuming will not start over.
	var cp *erpv1.EntityCheckpoint
	for _, e := range o.Status.Entities {
		if e.Name == string(model.KindProduct) {
			cp = e.Checkpoint
		}
	}
	g.Expect(cp).NotTo(BeNil())
	g.Expect(cp.Page).To(Equal(1))
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReconcilingCondition)).To(BeNil())

	// Suspended: requests are ignored, nothing calls the ERP.
	calls := h.erp.calls.Load()
	h.update("acme", func(o *erpv1.ErpSync) {
		o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "now"}
	})
	g.Consistently(func() int64 { return h.erp.calls.Load() }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))

	// Resume: the import continues from page 2, not page 1.
	close(h.erp.block)
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Suspend = false })
	g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.ReadyCondition)
	}, 10*time.Second).Should(BeTrue())
	after := h.erp.log()[calls:]
	g.Expect(after).NotTo(BeEmpty())
	for _, req := range after {
		if req.Entity == model.KindProduct {
			g.Expect(req.Page).To(BeNumerically(">=", 2), "resumed from the checkpoint")
		}
	}
	g.Expect(h.sink.Len()).To(Equal(26))
	g.Eventually(func() []string { return reasons(h.events("acme")) }, 10*time.Second).Should(ContainElements("Suspended", "Resumed"))
}

func TestDeletingStopsARunningSync(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.startManager()
	o := h.erpsync("acme")
	h.waitCheckpoint("acme", model.KindProduct, 1)
	g.Expect(k8s.Delete(context.Background(), o)).To(Succeed())
	// The blocked ListPage returns once its context is cancelled; the fake
	// counts a call then and no other follows.
	g.Eventually(func() int {
		n := 0
		for _, r := range h.erp.log() {
			if r.Entity == model.KindProduct && r.Page == 2 {
				n++
			}
		}
		return n
	}, 10*time.Second).Should(Equal(1))
	calls := h.erp.calls.Load()
	g.Consistently(func() int64 { return h.erp.calls.Load() }, time.Second, 100*time.Millisecond).Should(Equal(calls))
}

func TestDeletionWorksWhileSuspended(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	o := h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.Suspend = true })
	g.Eventually(func() erpv1.Phase { return h.get("acme").Status.Phase }, 10*time.Second).Should(Equal(erpv1.PhaseSuspended))
	g.Expect(h.erp.calls.Load()).To(BeZero())
	g.Expect(k8s.Delete(context.Background(), o)).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(context.Background(), clientKey(o), &erpv1.ErpSync{})
		return err != nil
	}, 10*time.Second).Should(BeTrue())
}
