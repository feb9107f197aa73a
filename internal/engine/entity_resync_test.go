package engine

import (
	"context"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// TestFullEntitiesReadOnlyThoseInFull: a run with FullEntities reads the
// named entities without a window (and infers deletions from their
// complete pass, as a full resync does), and the others incrementally from
// their watermarks, which it neither forgets nor persists forgotten.
func TestFullEntitiesReadOnlyThoseInFull(t *testing.T) {
	const C = model.KindCustomer
	w := newWorld(t, C, P)
	w.seed(C, 15, t0.Add(-time.Hour))
	w.seed(P, 25, t0.Add(-time.Hour))
	company := func(r *Run) { r.Company, r.Vendor = "ACME", "fake" }
	if _, err := w.run(context.Background(), company); err != nil {
		t.Fatal(err)
	}
	before := w.saved
	cwm, pwm := stateOf(before, C).Watermark, stateOf(before, P).Watermark
	if cwm.IsZero() || pwm.IsZero() {
		t.Fatalf("the import left no watermarks: %+v", before)
	}

	// The ERP hard-deletes a product and a customer without a marker; a
	// customer changes.
	w.clock.Advance(10 * time.Minute)
	w.erp.Delete(P, id(P, 3))
	w.erp.Delete(C, id(C, 4))
	w.erp.PutAt(C, id(C, 7), w.clock.Now())
	w.erp.ResetRequests()
	w.cps = nil

	res, err := w.run(context.Background(), func(r *Run) {
		company(r)
		r.FullEntities = []model.Kind{P}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Full {
		t.Errorf("the run reports itself full although customers were read incrementally")
	}
	var cReqs, pReqs int
	for _, r := range w.erp.Requests() {
		switch r.Entity {
		case C:
			cReqs++
			if !r.Since.Equal(cwm) {
				t.Errorf("customers must be read from their watermark %s: %+v", cwm, r)
			}
		case P:
			pReqs++
			if !r.Since.IsZero() {
				t.Errorf("products must be read in full: %+v", r)
			}
		}
	}
	if cReqs != 1 || pReqs != 3 {
		t.Errorf("requests: %d customer pages (want 1), %d product pages (want 3)", cReqs, pReqs)
	}
	// The first checkpoint forgets the products' watermark only.
	if len(w.cps) == 0 {
		t.Fatal("no checkpoint")
	}
	first := w.cps[0].state
	if !stateOf(first, P).Watermark.IsZero() {
		t.Errorf("the products' watermark was not forgotten first: %+v", stateOf(first, P))
	}
	if !stateOf(first, C).Watermark.Equal(cwm) {
		t.Errorf("the customers' watermark changed before their pass: %s, want %s", stateOf(first, C).Watermark, cwm)
	}
	// The full pass of products infers the hard-deleted one; the
	// incremental pass of customers cannot, and does not.
	if !deleted(w, id(P, 3)) {
		t.Errorf("the full pass of products did not mark the product gone from the ERP deleted")
	}
	if rec, ok := w.crm.Get(model.Key{Company: "ACME", Vendor: "fake", Kind: C, VendorID: id(C, 4)}); !ok || rec.Deleted {
		t.Errorf("an incremental pass must not infer deletions: customer %s = %+v (present %t)", id(C, 4), rec, ok)
	}
	ps, cs := stateOf(res.State, P), stateOf(res.State, C)
	if ps.LastRunIncremental || !cs.LastRunIncremental {
		t.Errorf("last run modes: products incremental=%t (want false), customers incremental=%t (want true)", ps.LastRunIncremental, cs.LastRunIncremental)
	}
	if !ps.Watermark.After(pwm) || !cs.Watermark.After(cwm) {
		t.Errorf("both watermarks advance at the end of their passes: products %s (was %s), customers %s (was %s)", ps.Watermark, pwm, cs.Watermark, cwm)
	}
	if ps.Deletions == nil || ps.Deletions.Deleted != 1 {
		t.Errorf("products' deletion report: %+v", ps.Deletions)
	}
	if got := w.crm.Len(); got != 40 {
		t.Errorf("the CRM holds %d records, want 40 (tombstones kept)", got)
	}
}

// TestFullEntitiesInterrupted: a run with FullEntities that fails part-way
// has persisted the forgotten watermark, so the run after it (with or
// without FullEntities) finishes the full pass from its checkpoint and
// reads the others incrementally.
func TestFullEntitiesInterrupted(t *testing.T) {
	const C = model.KindCustomer
	w := newWorld(t, C, P)
	w.seed(C, 5, t0.Add(-time.Hour))
	w.seed(P, 25, t0.Add(-time.Hour))
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	cwm := stateOf(w.saved, C).Watermark
	w.clock.Advance(10 * time.Minute)
	w.erp.ResetRequests()
	w.failOn(P, 2, connectors.Errorf(connectors.KindERPUnavailable, "down"))
	res, err := w.run(context.Background(), func(r *Run) { r.FullEntities = []model.Kind{P} })
	if connectors.KindOf(err) != connectors.KindERPUnavailable {
		t.Fatalf("err %v", err)
	}
	// What the controller keeps: the checkpoints, and the failed run's state.
	w.saved = res.State
	ps := stateOf(w.saved, P)
	if !ps.Watermark.IsZero() || ps.Resume == nil || !ps.Resume.Since.IsZero() || ps.Resume.Page != 1 {
		t.Fatalf("products after the failure: watermark %s, resume %+v; want no watermark and a full-read checkpoint at page 1", ps.Watermark, ps.Resume)
	}
	w.erp.Before = nil
	w.erp.ResetRequests()
	for _, full := range [][]model.Kind{nil, {P}} {
		saved := w.saved
		if _, err := w.run(context.Background(), func(r *Run) { r.FullEntities = full }); err != nil {
			t.Fatal(err)
		}
		for _, r := range w.erp.Requests() {
			if r.Entity == P && (!r.Since.IsZero() || r.Page < 2) {
				t.Errorf("FullEntities %v: products must resume their full pass at page 2: %+v", full, r)
			}
			if r.Entity == C && (r.Since.IsZero() || r.Since.Before(cwm)) {
				t.Errorf("FullEntities %v: customers must stay incremental: %+v", full, r)
			}
		}
		w.saved = saved
		w.erp.ResetRequests()
	}
}

// TestFullEntitiesUnknown: a name the run does not read is refused before
// anything is read, and the state is returned unchanged.
func TestFullEntitiesUnknown(t *testing.T) {
	w := newWorld(t, P)
	w.seed(P, 5, t0.Add(-time.Hour))
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	saved := w.saved
	w.erp.ResetRequests()
	res, err := w.run(context.Background(), func(r *Run) { r.FullEntities = []model.Kind{"product"} })
	if connectors.KindOf(err) != connectors.KindInvalidConfig {
		t.Fatalf("err %v, want InvalidConfig", err)
	}
	if n := len(w.erp.Requests()); n != 0 {
		t.Errorf("%d requests sent for a refused run", n)
	}
	if !stateOf(res.State, P).Watermark.Equal(stateOf(saved, P).Watermark) {
		t.Errorf("the refused run changed the watermark")
	}
}
