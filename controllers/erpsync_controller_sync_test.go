package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// kstatusOf computes the kstatus of an ErpSync, as Flux and `kubectl wait`
// read it.
func kstatusOf(g Gomega, o *erpv1.ErpSync) status.Status {
	o.SetGroupVersionKind(erpv1.GroupVersion.WithKind("ErpSync"))
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func TestCreateSyncsAtOnceAndBecomesReady(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	created := h.erpsync("acme")

	// A new object reads InProgress until the controller has acted.
	g.Expect(created.Status.ObservedGeneration).To(Equal(int64(-1)))
	g.Expect(kstatusOf(g, created)).To(Equal(status.InProgressStatus))

	var o *erpv1.ErpSync
	g.Eventually(func(g Gomega) {
		o = h.get("acme")
		g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.ReadyCondition)).To(BeTrue())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseSucceeded))
	g.Expect(o.Status.LastSyncStart).NotTo(BeNil())
	g.Expect(o.Status.LastSyncEnd).NotTo(BeNil())
	g.Expect(o.Status.LastSuccessfulSyncEnd).NotTo(BeNil())
	g.Expect(o.Status.ObservedGeneration).To(Equal(o.Generation))
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReconcilingCondition)).To(BeNil())
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.StalledCondition)).To(BeNil())
	g.Expect(kstatusOf(g, o)).To(Equal(status.CurrentStatus))
	// The next sync is due one interval after this one ended.
	g.Expect(o.Status.NextSyncAt.Time).To(Equal(o.Status.LastSyncEnd.Add(time.Hour).Truncate(time.Second)))
	// The initial sync is a full import: 25 products, 1 customer, all in the sink.
	g.Expect(o.Status.LastSync.Mode).To(Equal(erpv1.SyncModeFull))
	g.Expect(h.sink.Len()).To(Equal(26))
	for _, r := range h.sink.Records() {
		g.Expect(r.Company).To(Equal("ACME-acme"))
	}
	// Watermarks were recorded per entity.
	g.Expect(o.Status.Entities).To(HaveLen(2))
	for _, e := range o.Status.Entities {
		g.Expect(e.Watermark).NotTo(BeNil(), "entity %s", e.Name)
		g.Expect(e.Checkpoint).To(BeNil())
	}
	// The first success is news: one Normal event.
	g.Eventually(func() []string { return reasons(h.events("acme")) }, 10*time.Second).Should(ContainElement("SyncSucceeded"))

	// A routine success is not followed by another sync before its time.
	calls := h.erp.calls.Load()
	g.Consistently(func() int64 { return h.erp.calls.Load() }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))
}

func TestManyErpSyncsDoNotWaitForEachOther(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	// Every product page from page 2 blocks: the first ErpSync's sync hangs.
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.opts.ConcurrentSyncs = 2
	h.startManager()
	h.erpsync("slow")
	g.Eventually(func() erpv1.Phase { return h.get("slow").Status.Phase }, 10*time.Second).Should(Equal(erpv1.PhaseSyncing))
	// Another ErpSync restricted to customers completes while "slow" hangs.
	h.erpsync("other", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{string(model.KindCustomer)} })
	g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.get("other").Status.Conditions, erpv1.ReadyCondition)
	}, 10*time.Second).Should(BeTrue())
	g.Expect(h.get("slow").Status.Phase).To(Equal(erpv1.PhaseSyncing))
	close(h.erp.block)
	g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.get("slow").Status.Conditions, erpv1.ReadyCondition)
	}, 10*time.Second).Should(BeTrue())
}

func reasons(evs []corev1.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Reason)
	}
	return out
}

func TestProgressIsCheckpointedDuringASync(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 3 })
	h.startManager()
	h.erpsync("acme")
	// Pages 1 and 2 of products were written: the checkpoint says page 2.
	g.Eventually(func(g Gomega) {
		o := h.get("acme")
		g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseSyncing))
		g.Expect(o.Status.Progress).NotTo(BeNil())
		var cp *erpv1.EntityCheckpoint
		for _, e := range o.Status.Entities {
			if e.Name == string(model.KindProduct) {
				cp = e.Checkpoint
			}
		}
		g.Expect(cp).NotTo(BeNil(), "entities: %+v progress %+v", o.Status.Entities, o.Status.Progress)
		g.Expect(cp.Page).To(Equal(2))
		g.Expect(cp.Since).To(BeNil(), "a first import reads without a filter")
		g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.ReconcilingCondition)).To(BeTrue())
		g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition).Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(kstatusOf(g, o)).To(Equal(status.InProgressStatus))
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	close(h.erp.block)
	g.Eventually(func() erpv1.Phase { return h.get("acme").Status.Phase }, 10*time.Second).Should(Equal(erpv1.PhaseSucceeded))
	_ = context.Background()
}
