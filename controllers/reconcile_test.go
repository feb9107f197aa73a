package controllers

import (
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// products returns the products entity's status (never nil).
func products(o *erpv1.ErpSync) erpv1.EntityStatus {
	if e := entityStatus(o, model.KindProduct); e != nil {
		return *e
	}
	return erpv1.EntityStatus{}
}

// TestReconciliationDeletesAndTheGuardWaitsForAPerson: a product hard
// deleted in the ERP is a tombstone after a requested reconciliation, with
// the figures in status; a larger loss is held (condition, Warning event,
// nothing deleted) until an approval applies it; a discard applies nothing.
func TestReconciliationDeletesAndTheGuardWaitsForAPerson(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	o := h.erpsync("acme")
	first := h.ready("acme")
	g.Expect(first.Status.Reconciliation).NotTo(BeNil())
	g.Expect(first.Status.Reconciliation.NextAt).NotTo(BeNil(), "the first reconciliation is scheduled after the import")
	key := func(id string) model.Key {
		return model.Key{Company: o.Spec.CompanyID, Vendor: "unleashed", Kind: model.KindProduct, VendorID: id}
	}

	// One product of 25 gone: deleted by the requested reconciliation.
	gone := h.erp.remove(1)
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.ReconcileNowAnnotation: "r1"} })
	defer func() {
		if t.Failed() {
			dumpStatus(t, h, "acme")
		}
	}()
	got := h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return o.Status.LastHandledReconcileNowAt == "r1" && o.Status.Reconciliation != nil && o.Status.Reconciliation.LastCompleted != nil
	})
	rep := products(got).Reconcile
	g.Expect(rep).NotTo(BeNil())
	g.Expect(rep.Listed).To(Equal(int64(24)))
	g.Expect(rep.Missing).To(Equal(int64(1)))
	g.Expect(rep.Deleted).To(Equal(int64(1)))
	g.Expect(got.Status.Reconciliation.InProgress).To(BeFalse())
	g.Expect(got.Status.Reconciliation.NextAt.Time).To(BeTemporally(">", time.Now().Add(20*time.Hour)))
	r, ok := h.sink.Get(key(gone[0]))
	g.Expect(ok).To(BeTrue())
	g.Expect(r.Deleted).To(BeTrue())
	tb, _ := h.sink.Tombstone(key(gone[0]))
	g.Expect(tb.Via).To(Equal(model.DeletedByReconciliation))

	// Ten of the 24 left gone: more than 10%, held.
	gone = h.erp.remove(10)
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.ReconcileNowAnnotation] = "r2" })
	got = h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return o.Status.LastHandledReconcileNowAt == "r2" && meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.DeletionsHeldCondition)
	})
	held := products(got).HeldDeletion
	g.Expect(held).NotTo(BeNil())
	g.Expect(held.Records).To(Equal(int64(10)))
	g.Expect(held.Live).To(Equal(int64(24)))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, erpv1.DeletionsHeldCondition).Message).To(ContainSubstring("10 of 24"))
	for _, id := range gone {
		r, _ := h.sink.Get(key(id))
		g.Expect(r.Deleted).To(BeFalse(), "a held deletion deletes nothing")
	}
	g.Eventually(func() bool {
		for _, e := range h.events("acme") {
			if e.Reason == "DeletionsHeld" && e.Type == "Warning" {
				return true
			}
		}
		return false
	}, 10*time.Second).Should(BeTrue())

	// A discard forgets the hold; nothing deleted.
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.DiscardDeletionsAnnotation] = "d1" })
	got = h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledDiscardDeletionsAt == "d1" })
	g.Expect(products(got).HeldDeletion).To(BeNil())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, erpv1.DeletionsHeldCondition)).To(BeNil())
	for _, id := range gone {
		r, _ := h.sink.Get(key(id))
		g.Expect(r.Deleted).To(BeFalse(), "a discarded deletion deletes nothing")
	}

	// Held again, then approved: applied.
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.ReconcileNowAnnotation] = "r3" })
	h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return o.Status.LastHandledReconcileNowAt == "r3" && meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.DeletionsHeldCondition)
	})
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.ApproveDeletionsAnnotation] = "a1" })
	got = h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return o.Status.LastHandledApproveDeletionsAt == "a1" && products(o).HeldDeletion == nil
	})
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, erpv1.DeletionsHeldCondition)).To(BeNil())
	g.Expect(products(got).Reconcile.Deleted).To(Equal(int64(10)))
	for _, id := range gone {
		r, _ := h.sink.Get(key(id))
		g.Expect(r.Deleted).To(BeTrue(), "an approved deletion is applied")
	}
}

// TestReconcileSchedule: the next reconciliation is interval after the
// start of the last, snapped to the time of day when one is set; the first
// is spread over one interval.
func TestReconcileSchedule(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	obj := func(tod string, interval time.Duration) *erpv1.ErpSync {
		o := &erpv1.ErpSync{}
		o.UID = "u-1"
		o.Spec.Reconcile = &erpv1.ReconcileSpec{TimeOfDay: tod}
		if interval > 0 {
			o.Spec.Reconcile.Interval = &metav1.Duration{Duration: interval}
		}
		return o
	}
	for _, tc := range []struct {
		name string
		o    *erpv1.ErpSync
		from string
		want string
	}{
		{"default a day later", obj("", 0), "2026-12-07T10:30:00Z", "2026-12-08T10:30:00Z"},
		{"time of day, next day", obj("03:00", 0), "2026-12-07T03:05:00Z", "2026-12-08T03:00:00Z"},
		{"time of day, late start", obj("03:00", 0), "2026-12-07T20:00:00Z", "2026-12-09T03:00:00Z"},
		{"six hours", obj("", 6*time.Hour), "2026-12-07T10:00:00Z", "2026-12-07T16:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextReconcileAt(tc.o, at(tc.from)); !got.Equal(at(tc.want)) {
				t.Errorf("next after %s = %s, want %s", tc.from, got, tc.want)
			}
		})
	}
	now := at("2026-12-07T10:00:00Z")
	first := firstReconcileAt(obj("", 0), now)
	if first.Before(now) || !first.Before(now.Add(24*time.Hour)) {
		t.Errorf("the first reconciliation %s is not within a day of %s", first, now)
	}
	if got := firstReconcileAt(obj("03:00", 0), now); !got.Equal(at("2026-12-08T03:00:00Z")) {
		t.Errorf("first with a time of day = %s", got)
	}
}

// dumpStatus logs an ErpSync's status and events, for a failing test.
func dumpStatus(t *testing.T, h *harness, name string) {
	b, _ := json.MarshalIndent(h.get(name).Status, "", " ")
	t.Logf("status of %s: %s", name, b)
	for _, e := range h.events(name) {
		t.Logf("event %s %s: %s", e.Type, e.Reason, e.Message)
	}
}

// TestQuietSyncWritesStatusTwice: a routine incremental sync that finds
// nothing writes status twice (its start and its end) and emits no event.
func TestQuietSyncWritesStatusTwice(t *testing.T) {
	h := newHarness(t)
	g := h.g
	// The manager's default checkpoint cadence (the harness checkpoints
	// every page).
	h.opts.CheckpointEvery = 5 * time.Second
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	h.ready("acme")
	// Let the import's last writes settle.
	time.Sleep(time.Second)
	events := len(h.events("acme"))
	before := h.statusWrites.Load()
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "quiet-1"} })
	got := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "quiet-1" })
	g.Expect(got.Status.LastSync.Upserted).To(BeZero())
	g.Consistently(func() int64 { return h.statusWrites.Load() - before }, 2*time.Second, 100*time.Millisecond).Should(Equal(int64(2)))
	g.Expect(h.events("acme")).To(HaveLen(events), "a quiet sync is no news")
}
