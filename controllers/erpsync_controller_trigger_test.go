package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// readyWhen waits until the ErpSync's last sync succeeded and cond holds.
// (Status times have second precision, so tests tell syncs apart by what
// they echo, not by their times.)
func (h *harness) readyWhen(name string, cond func(o *erpv1.ErpSync) bool) *erpv1.ErpSync {
	var o *erpv1.ErpSync
	h.g.Eventually(func(g Gomega) {
		o = h.get(name)
		g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseSucceeded))
		g.Expect(o.Status.LastSyncEnd).NotTo(BeNil())
		g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.ReadyCondition)).To(BeTrue())
		g.Expect(cond(o)).To(BeTrue())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return o
}

func (h *harness) ready(name string) *erpv1.ErpSync {
	return h.readyWhen(name, func(*erpv1.ErpSync) bool { return true })
}

func TestRequestAnnotationsAreHonouredOnceEach(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	first := h.ready("acme")
	callsAfterImport := h.erp.calls.Load()

	// Sync now: one incremental sync that asks only for changes since the
	// watermark; 3 changed products arrive.
	h.erp.touch(3)
	h.update("acme", func(o *erpv1.ErpSync) {
		o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "1"}
	})
	second := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "1" })
	g.Expect(second.Status.LastHandledReconcileAt).To(Equal("1"))
	g.Expect(second.Status.LastSync.Mode).To(Equal(erpv1.SyncModeIncremental))
	g.Expect(second.Status.LastSync.Upserted).To(Equal(int64(3)))
	log := h.erp.log()[callsAfterImport:]
	g.Expect(log).To(HaveLen(2), "one page per entity")
	for _, req := range log {
		g.Expect(req.Since.IsZero()).To(BeFalse(), "an incremental sync filters by the watermark: %+v", req)
	}
	// Ready did not flap for a requested sync of a healthy object.
	g.Expect(meta.FindStatusCondition(second.Status.Conditions, erpv1.ReadyCondition).LastTransitionTime).
		To(Equal(meta.FindStatusCondition(first.Status.Conditions, erpv1.ReadyCondition).LastTransitionTime))

	// The same token again (re-applied by GitOps) does nothing; neither do
	// unrelated labels and annotations.
	calls := h.erp.calls.Load()
	h.update("acme", func(o *erpv1.ErpSync) {
		o.Annotations["argocd.argoproj.io/tracking-id"] = "app:erpsync.io/ErpSync:ns/acme"
		o.Annotations["kustomize.toolkit.fluxcd.io/checksum"] = "abc"
		o.Labels = map[string]string{"app.kubernetes.io/managed-by": "argocd"}
	})
	g.Consistently(func() int64 { return h.erp.calls.Load() }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))

	// Full resync: every entity read without a filter, echoed in status.
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.FullResyncAtAnnotation] = "full-1" })
	third := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledFullResyncAt == "full-1" })
	g.Expect(third.Status.LastHandledFullResyncAt).To(Equal("full-1"))
	g.Expect(third.Status.LastHandledReconcileAt).To(Equal("1"))
	g.Expect(third.Status.LastSync.Mode).To(Equal(erpv1.SyncModeFull))
	log = h.erp.log()[calls:]
	g.Expect(log).To(HaveLen(4), "1 customer page + 3 product pages")
	for _, req := range log {
		g.Expect(req.Since.IsZero()).To(BeTrue(), "a full resync ignores watermarks: %+v", req)
	}
	// A full resync finishing is news.
	g.Eventually(func() int {
		n := 0
		for _, e := range h.events("acme") {
			if e.Reason == "SyncSucceeded" {
				n += int(max(e.Count, 1))
			}
		}
		return n
	}, 10*time.Second).Should(BeNumerically(">=", 2))

	// Each token once: nothing more happens.
	calls = h.erp.calls.Load()
	g.Consistently(func() int64 { return h.erp.calls.Load() }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))
}

func TestEntitiesSubsetIsHonoured(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{string(model.KindProduct)} })
	o := h.ready("acme")
	g.Expect(o.Status.Entities).To(HaveLen(1))
	for _, req := range h.erp.log() {
		g.Expect(req.Entity).To(Equal(model.KindProduct))
	}
}
