package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// requestEntityResync sets the entity list and a new token in one update.
func (h *harness) requestEntityResync(name, token, entities string) {
	h.update(name, func(o *erpv1.ErpSync) {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[erpv1.FullResyncEntitiesAnnotation] = entities
		o.Annotations[erpv1.FullResyncEntitiesAtAnnotation] = token
	})
}

// TestEntityResyncReadsOnlyThoseInFull: erpsync.io/fullResyncEntitiesAt
// with erpsync.io/fullResyncEntities=products reads products without a
// window (so a product hard-deleted in the ERP becomes a tombstone, as a
// full resync finds it) and customers from their watermark, echoes the
// token and the entities, and ends the import of products.
func TestEntityResyncReadsOnlyThoseInFull(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	o := h.erpsync("acme")
	first := h.ready("acme")
	customersWM := entityStatus(first, model.KindCustomer).Watermark
	g.Expect(customersWM).NotTo(BeNil())

	gone := h.erp.remove(1)
	calls := len(h.erp.log())
	h.requestEntityResync("acme", "e1", "products")
	got := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledFullResyncEntitiesAt == "e1" })
	g.Expect(got.Status.LastHandledFullResyncEntities).To(Equal([]string{"products"}))
	g.Expect(got.Status.LastHandledFullResyncAt).To(BeEmpty(), "not a whole resync")
	g.Expect(got.Status.Import).To(BeNil(), "the import of products ended with the sync")

	var productPages int
	for _, req := range h.erp.log()[calls:] {
		switch req.Entity {
		case model.KindProduct:
			productPages++
			g.Expect(req.Since.IsZero()).To(BeTrue(), "products are read in full: %+v", req)
		case model.KindCustomer:
			g.Expect(req.Since.Equal(customersWM.Time)).To(BeTrue(), "customers are read from their watermark %s: %+v", customersWM, req)
		}
	}
	g.Expect(productPages).To(Equal(3), "24 products, 10 a page")
	g.Expect(entityStatus(got, model.KindProduct).LastRunMode).To(Equal(erpv1.SyncModeFull))
	g.Expect(entityStatus(got, model.KindCustomer).LastRunMode).To(Equal(erpv1.SyncModeIncremental))

	// What a full pass enables: the product gone from the ERP is a
	// tombstone, under the same guard as a whole resync.
	rec, ok := h.sink.Get(model.Key{Company: o.Spec.CompanyID, Vendor: "unleashed", Kind: model.KindProduct, VendorID: gone[0]})
	g.Expect(ok).To(BeTrue())
	g.Expect(rec.Deleted).To(BeTrue())
	g.Expect(entityStatus(got, model.KindProduct).Deletions).NotTo(BeNil())
	g.Expect(entityStatus(got, model.KindProduct).Deletions.Deleted).To(Equal(int64(1)))

	ready := meta.FindStatusCondition(got.Status.Conditions, erpv1.ReadyCondition)
	g.Expect(ready.Message).To(ContainSubstring("full resync of products"))
	g.Eventually(func() []string { return h.eventsWith("acme", "SyncSucceeded") }, 10*time.Second).
		Should(ContainElement(ContainSubstring("full resync of products")))

	// The same token again does nothing; the entity list alone neither.
	calls = len(h.erp.log())
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.FullResyncEntitiesAnnotation] = "customers" })
	g.Consistently(func() int { return len(h.erp.log()) }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))
}

// TestEntityResyncRefusesUnknownEntities: a name the ErpSync does not
// sync (here one its connector does not offer, seen only once the
// connector is built, and one malformed) refuses the request: echoed,
// Ready=False InvalidConfig naming it (not Stalled), a Warning event, no
// ERP call, no watermark forgotten; a corrected request then runs.
func TestEntityResyncRefusesUnknownEntities(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	first := h.ready("acme")
	wm := map[string]*metav1.Time{}
	for _, e := range first.Status.Entities {
		wm[e.Name] = e.Watermark
	}

	for i, tc := range []struct{ token, value, says string }{
		{token: "bad-1", value: "products,product", says: `names "product", which this ErpSync does not sync (it syncs: customers, products)`},
		{token: "bad-2", value: "Products", says: `"Products" is not an entity name`},
	} {
		calls := h.erp.calls.Load()
		h.requestEntityResync("acme", tc.token, tc.value)
		var got *erpv1.ErpSync
		g.Eventually(func(g Gomega) {
			got = h.get("acme")
			g.Expect(got.Status.LastHandledFullResyncEntitiesAt).To(Equal(tc.token))
			g.Expect(got.Status.Phase).To(Equal(erpv1.PhaseFailed))
		}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, erpv1.ReadyCondition)
		t.Logf("%s=%q: Ready=%s %s: %s", erpv1.FullResyncEntitiesAnnotation, tc.value, ready.Status, ready.Reason, ready.Message)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(erpv1.ReasonInvalidConf))
		g.Expect(ready.Message).To(ContainSubstring(tc.says))
		g.Expect(ready.Message).To(ContainSubstring("full resync of entities refused, nothing was read and no watermark forgotten: "))
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, erpv1.StalledCondition)).To(BeNil(), "a new request fixes it: not Stalled")
		g.Expect(got.Status.Import).To(BeNil())
		g.Expect(got.Status.LastHandledFullResyncEntities).To(BeEmpty(), "nothing accepted")
		g.Expect(h.erp.calls.Load()).To(Equal(calls), "no ERP call for a refused request")
		for _, e := range got.Status.Entities {
			g.Expect(e.Watermark).To(Equal(wm[e.Name]), "watermark of %s", e.Name)
			g.Expect(e.Checkpoint).To(BeNil())
		}
		g.Eventually(func() []string { return h.eventsWith("acme", erpv1.ReasonInvalidConf) }, 10*time.Second).
			Should(HaveLen(i+1), "one Warning event per refused request")
	}

	// A corrected request runs, and Ready recovers.
	calls := len(h.erp.log())
	h.requestEntityResync("acme", "good", "customers")
	got := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledFullResyncEntitiesAt == "good" })
	g.Expect(got.Status.LastHandledFullResyncEntities).To(Equal([]string{"customers"}))
	for _, req := range h.erp.log()[calls:] {
		g.Expect(req.Since.IsZero()).To(Equal(req.Entity == model.KindCustomer), "only customers in full: %+v", req)
	}
	g.Expect(h.sink.Len()).To(Equal(26), "nothing lost")
}

// TestEntityResyncSurvivesARestart: the import of the named entities is
// recorded with the token, so a manager that stops before the sync forgot
// their watermarks (simulated: the status the start write leaves) or in
// the middle of their full pass still reads them in full, and the other
// entities incrementally.
func TestEntityResyncSurvivesARestart(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	first := h.ready("acme")
	h.stopManager()

	// 1. Stopped right after the start write: token echoed, import of
	// products recorded, watermarks not yet forgotten.
	o := h.get("acme")
	o.Annotations = map[string]string{erpv1.FullResyncEntitiesAnnotation: "products", erpv1.FullResyncEntitiesAtAnnotation: "e1"}
	g.Expect(k8s.Update(t.Context(), o)).To(Succeed())
	o = h.get("acme")
	o.Status.Phase = erpv1.PhaseSyncing
	o.Status.LastSyncStart = mtime(time.Now())
	o.Status.LastHandledFullResyncEntitiesAt = "e1"
	o.Status.LastHandledFullResyncEntities = nil // not yet checked against the connector
	o.Status.Import = &erpv1.ImportStatus{StartedAt: *mtime(time.Now()), Reason: "a full resync of products was requested", Entities: []string{"products"}, Syncs: 1}
	g.Expect(k8s.Status().Update(t.Context(), o)).To(Succeed())
	g.Expect(entityStatus(h.get("acme"), model.KindProduct).Watermark).To(Equal(entityStatus(first, model.KindProduct).Watermark))

	// Blocked after the first product page, so the second manager is
	// stopped in the middle of the full pass.
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	calls := len(h.erp.log())
	h.startManager()
	h.waitCheckpoint("acme", model.KindProduct, 1)
	mid := h.get("acme")
	g.Expect(entityStatus(mid, model.KindProduct).Watermark).To(BeNil(), "the resumed sync forgot the products' watermark first")
	g.Expect(entityStatus(mid, model.KindProduct).Checkpoint.Since).To(BeNil(), "a full-read checkpoint")
	g.Expect(mid.Status.Import).NotTo(BeNil())
	g.Expect(mid.Status.LastHandledFullResyncEntities).To(Equal([]string{"products"}), "accepted by the resumed sync")
	for _, req := range h.erp.log()[calls:] {
		g.Expect(req.Since.IsZero()).To(Equal(req.Entity == model.KindProduct), "products in full, customers incrementally: %+v", req)
	}

	// 2. Stopped in the middle of the full pass: the next manager resumes
	// it at page 2, still without a window.
	h.stopManager()
	calls = len(h.erp.log())
	close(h.erp.block)
	h.startManager()
	got := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.Import == nil })
	for _, req := range h.erp.log()[calls:] {
		if req.Entity == model.KindProduct {
			g.Expect(req.Since.IsZero()).To(BeTrue(), "products finish their full pass: %+v", req)
			g.Expect(req.Page).To(BeNumerically(">=", 2), "from the checkpoint: %+v", req)
		}
	}
	g.Expect(entityStatus(got, model.KindProduct).Watermark).NotTo(BeNil())
	g.Expect(entityStatus(got, model.KindProduct).LastRunMode).To(Equal(erpv1.SyncModeFull))
	g.Expect(got.Status.LastHandledFullResyncEntitiesAt).To(Equal("e1"))
	g.Expect(h.sink.Len()).To(Equal(26))
}
