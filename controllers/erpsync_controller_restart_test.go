package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

func TestRestartMidSyncResumesFromTheCheckpoint(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.startManager()
	h.erpsync("acme")
	h.waitCheckpoint("acme", model.KindProduct, 1)

	// The manager goes away mid-sync (a crash or a lost lease).
	h.stopManager()
	g.Expect(h.get("acme").Status.Phase).To(Equal(erpv1.PhaseSyncing))
	calls := len(h.erp.log())

	// A new manager resumes the import at page 2 and does not start over.
	close(h.erp.block)
	h.startManager()
	g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.ReadyCondition)
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	for _, req := range h.erp.log()[calls:] {
		g.Expect(req.Entity).To(Equal(model.KindProduct), "customers had completed in the interrupted sync: not read again")
		g.Expect(req.Page).To(BeNumerically(">=", 2), "products resume after the checkpointed page")
		g.Expect(req.Since.IsZero()).To(BeTrue(), "still the first import")
	}
	g.Expect(h.sink.Len()).To(Equal(26))
}

func TestRestartNeitherSyncsEarlyNorForgetsADueSync(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	h.ready("acme")
	h.stopManager()

	// Not due yet (interval 1h): a restart causes no ERP call.
	calls := h.erp.calls.Load()
	h.startManager()
	g.Consistently(func() int64 { return h.erp.calls.Load() }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))
	h.stopManager()

	// Made due while no manager ran (the sync ended more than an interval
	// ago): the next manager syncs at once.
	o := h.get("acme")
	o.Status.LastSyncEnd.Time = o.Status.LastSyncEnd.Add(-2 * time.Hour)
	g.Expect(k8s.Status().Update(t.Context(), o)).To(Succeed())
	h.startManager()
	h.readyWhen("acme", func(n *erpv1.ErpSync) bool { return n.Status.LastSyncEnd.After(o.Status.LastSyncEnd.Add(time.Hour)) })
	g.Expect(h.erp.calls.Load()).To(BeNumerically(">", calls))
}

// waitCheckpoint waits until the running sync has checkpointed page of k.
func (h *harness) waitCheckpoint(name string, k model.Kind, page int) {
	h.g.Eventually(func(g Gomega) {
		o := h.get(name)
		g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseSyncing))
		g.Expect(checkpointPage(o, k)).To(Equal(page))
	}, 10*time.Second, 20*time.Millisecond).Should(Succeed())
}

func checkpointPage(o *erpv1.ErpSync, k model.Kind) int {
	for _, e := range o.Status.Entities {
		if e.Name == string(k) && e.Checkpoint != nil {
			return e.Checkpoint.Page
		}
	}
	return 0
}
