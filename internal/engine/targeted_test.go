package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine/enginetest"
)

// docFake is the engine's fake ERP with reads by id, max 3 ids a call.
type docFake struct {
	*enginetest.Fake
	reads [][]string
	fail  error
	// garbage makes ReadDocs return a record without an id.
	garbage bool
}

func (d *docFake) MaxDocsPerRead(model.Kind) int { return 3 }

func (d *docFake) ReadDocs(ctx context.Context, e model.Kind, ids []string) (*connectors.Page, error) {
	d.reads = append(d.reads, append([]string(nil), ids...))
	if d.fail != nil {
		return &connectors.Page{Calls: 1}, d.fail
	}
	p := &connectors.Page{Calls: 1, Total: -1}
	if d.garbage {
		p.Records = append(p.Records, model.Record{Company: d.Company, Vendor: d.Vendor, Kind: e})
		return p, nil
	}
	for _, id := range ids {
		if it, ok := d.Get(e, id); ok {
			p.Records = append(p.Records, d.Record(e, it))
		}
	}
	return p, nil
}

func TestTargeted(t *testing.T) {
	type check func(t *testing.T, w *world, d *docFake, res TargetedResult, err error)
	tests := []struct {
		name    string
		targets []Target
		setup   func(w *world, d *docFake)
		check   check
	}{
		{
			name: "reads each named document once, in chunks, and writes the current version",
			targets: []Target{{Entity: P, ID: id(P, 1)}, {Entity: P, ID: id(P, 2)}, {Entity: P, ID: id(P, 1)},
				{Entity: P, ID: id(P, 3)}, {Entity: P, ID: id(P, 4)}},
			setup: func(w *world, d *docFake) {
				for i := 1; i <= 4; i++ {
					w.erp.Put(P, id(P, i))
				}
			},
			check: func(t *testing.T, w *world, d *docFake, res TargetedResult, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if res.Targets != 4 || len(d.reads) != 2 || res.Calls != 2 {
					t.Fatalf("targets %d, reads %v, calls %d; want 4 targets in 2 reads", res.Targets, d.reads, res.Calls)
				}
				w.assertCRMMatchesERP(P)
				if res.Upserted != 4 {
					t.Fatalf("upserted %d, want 4", res.Upserted)
				}
			},
		},
		{
			name:    "a delete event for a document the vendor no longer serves is a webhook tombstone",
			targets: []Target{{Entity: P, ID: id(P, 1), Deleted: true}, {Entity: P, ID: id(P, 2)}},
			setup: func(w *world, d *docFake) {
				w.erp.Delete(P, id(P, 1))
				w.erp.Delete(P, id(P, 2))
			},
			check: func(t *testing.T, w *world, d *docFake, res TargetedResult, err error) {
				if err != nil {
					t.Fatal(err)
				}
				ts, ok := w.crm.Tombstone(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: id(P, 1)})
				if !ok || ts.Via != model.DeletedByWebhook {
					t.Fatalf("tombstone %+v %v, want one via webhook", ts, ok)
				}
				if _, ok := w.crm.Tombstone(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: id(P, 2)}); ok {
					t.Fatal("an update event for a missing document deleted it")
				}
				if res.Deleted != 1 {
					t.Fatalf("deleted %d, want 1", res.Deleted)
				}
			},
		},
		{
			name:    "a delete event for a document the vendor still serves writes it as served",
			targets: []Target{{Entity: P, ID: id(P, 1), Deleted: true}},
			check: func(t *testing.T, w *world, d *docFake, res TargetedResult, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := w.crm.Tombstone(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: id(P, 1)}); ok {
					t.Fatal("deleted a document the vendor still serves")
				}
				w.assertCRMMatchesERP(P)
			},
		},
		{
			name:    "targets of streams the run does not sync are skipped, without a call",
			targets: []Target{{Entity: model.KindCustomer, ID: "c1"}, {Entity: P, ID: ""}},
			check: func(t *testing.T, w *world, d *docFake, res TargetedResult, err error) {
				if err != nil || res.Skipped != 2 || len(d.reads) != 0 {
					t.Fatalf("err %v, skipped %d, reads %v", err, res.Skipped, d.reads)
				}
			},
		},
		{
			name:    "a vendor failure is classified and nothing is tombstoned",
			targets: []Target{{Entity: P, ID: id(P, 1), Deleted: true}},
			setup:   func(w *world, d *docFake) { d.fail = connectors.Errorf(connectors.KindERPUnavailable, "503") },
			check: func(t *testing.T, w *world, d *docFake, res TargetedResult, err error) {
				var ce *connectors.Error
				if !errors.As(err, &ce) || ce.Kind != connectors.KindERPUnavailable {
					t.Fatalf("err %v, want ERPUnavailable", err)
				}
				if _, ok := w.crm.Tombstone(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: id(P, 1)}); ok {
					t.Fatal("tombstoned after a failed read")
				}
			},
		},
		{
			name:    "a garbage page never reaches the sink",
			targets: []Target{{Entity: P, ID: id(P, 1)}},
			setup:   func(w *world, d *docFake) { d.garbage = true },
			check: func(t *testing.T, w *world, d *docFake, res TargetedResult, err error) {
				if err == nil || res.Upserted != 0 {
					t.Fatalf("err %v, upserted %d: want a refused page", err, res.Upserted)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.seed(P, 5, t0.Add(-time.Hour))
			if _, err := w.run(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			d := &docFake{Fake: w.erp}
			if tc.setup != nil {
				tc.setup(w, d)
			}
			res, err := Targeted(context.Background(), Run{Company: "ACME", Vendor: "fake", Connector: d, Sink: w.crm, Now: w.clock.Now, Log: testr.New(t)}, tc.targets)
			tc.check(t, w, d, res, err)
		})
	}
}

func TestTargetedNeedsScopeAndDocReader(t *testing.T) {
	w := newWorld(t)
	if _, err := Targeted(context.Background(), Run{Connector: &docFake{Fake: w.erp}, Sink: w.crm}, nil); err == nil {
		t.Fatal("ran without company and vendor")
	}
	if _, err := Targeted(context.Background(), Run{Company: "ACME", Vendor: "fake", Connector: w.erp, Sink: w.crm}, nil); err == nil {
		t.Fatal("ran without a DocReader")
	}
}

// A vendor that reads one document a request: a burst of events is read
// by a window of the entity's own modified-since filter when that costs
// fewer calls, and only the documents an event said were deleted are read
// by id (their absence must be seen).
func TestTargetedReadsABurstByAWindow(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 40, t0.Add(-time.Hour))
	for range 2 { // an import, then a quiet incremental pass
		res, err := w.run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		w.saved = res.State // what the controller keeps at the run's end
		w.clock.Advance(time.Minute)
	}
	if st := stateOf(w.saved, P); !st.LastRunIncremental || st.LastRunCalls != 1 {
		t.Fatalf("state %+v: want a quiet incremental pass of one call", st)
	}
	watermark := stateOf(w.saved, P).Watermark
	var targets []Target
	for i := range 12 {
		w.erp.Put(P, id(P, i))
		targets = append(targets, Target{Entity: P, ID: id(P, i)})
	}
	w.erp.Delete(P, id(P, 30))
	targets = append(targets, Target{Entity: P, ID: id(P, 30), Deleted: true})
	d := &docFake{Fake: w.erp}
	w.erp.ResetRequests()
	// Our clock a year ahead of the vendor's: the window is the vendor's
	// time (the watermark), not ours.
	ahead := func() time.Time { return w.clock.Now().AddDate(1, 0, 0) }
	res, err := Targeted(context.Background(), Run{Company: "ACME", Vendor: "fake", Connector: d, Sink: w.crm, Now: ahead,
		State: w.saved, Log: testr.New(t)}, targets)
	if err != nil {
		t.Fatal(err)
	}
	w.assertCRMMatchesERP(P)
	if ts, ok := w.crm.Tombstone(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: id(P, 30)}); !ok || ts.Via != model.DeletedByWebhook {
		t.Fatalf("the deleted document: %+v %v", ts, ok)
	}
	byID := (len(targets) + 2) / 3
	if res.Passes != 1 || res.Calls >= int64(byID) {
		t.Fatalf("passes %d, calls %d: want one window pass costing fewer than the %d reads by id", res.Passes, res.Calls, byID)
	}
	if len(d.reads) != 1 || len(d.reads[0]) != 1 || d.reads[0][0] != id(P, 30) {
		t.Fatalf("reads by id %v: want only the deleted document", d.reads)
	}
	for _, req := range w.erp.Requests() {
		if !req.Since.Equal(watermark) {
			t.Fatalf("window %v: want the entity's watermark %v", req.Since, watermark)
		}
	}
	if st := stateOf(w.saved, P); !st.Watermark.Equal(watermark) {
		t.Fatalf("watermark %v: a targeted sync moved it from %v", st.Watermark, watermark)
	}

	// Without a figure for the entity (no state), documents are read by id.
	d = &docFake{Fake: w.erp}
	res, err = Targeted(context.Background(), Run{Company: "ACME", Vendor: "fake", Connector: d, Sink: w.crm, Now: w.clock.Now, Log: testr.New(t)}, targets[:12])
	if err != nil || res.Passes != 0 || len(d.reads) != 4 {
		t.Fatalf("err %v, passes %d, reads %d: want 4 reads by id", err, res.Passes, len(d.reads))
	}
}

// costedFake reads one document a request, as Cin7 Core and Unleashed do.
type costedFake struct{ docFake }

func (c *costedFake) RequestsPerDoc(model.Kind) int { return 1 }

// A vendor that reads one document a request: two events cost two
// requests by id (one ReadDocs call), more than a window that the import's
// one-call pass bounds, so they are read by the window; the same events on
// a vendor that reads many ids a request are read by id.
func TestTargetedCountsRequestsPerDocument(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 5, t0.Add(-time.Hour))
	res, err := w.run(context.Background(), nil) // the import only
	if err != nil {
		t.Fatal(err)
	}
	w.saved = res.State
	if st := stateOf(w.saved, P); st.LastRunIncremental || st.LastRunCalls != 1 {
		t.Fatalf("state %+v: want an import of one call", st)
	}
	w.clock.Advance(time.Minute)
	w.erp.Put(P, id(P, 1))
	w.erp.Put(P, id(P, 2))
	targets := []Target{{Entity: P, ID: id(P, 1)}, {Entity: P, ID: id(P, 2)}}
	for _, tc := range []struct {
		name string
		conn interface {
			connectors.Connector
			connectors.DocReader
		}
		wantPasses int
	}{
		{"one request a document", &costedFake{docFake{Fake: w.erp}}, 1},
		{"many ids a request", &docFake{Fake: w.erp}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Targeted(context.Background(), Run{Company: "ACME", Vendor: "fake", Connector: tc.conn, Sink: w.crm, Now: w.clock.Now,
				State: w.saved, Log: testr.New(t)}, targets)
			if err != nil {
				t.Fatal(err)
			}
			if res.Passes != tc.wantPasses || res.Calls != 1 {
				t.Fatalf("passes %d, calls %d: want %d passes and one call", res.Passes, res.Calls, tc.wantPasses)
			}
			w.assertCRMMatchesERP(P)
		})
	}
}
