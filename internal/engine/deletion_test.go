package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// fullReadWorld is a world whose products are read in full on every run
// (not incremental), so absence detection applies to every pass.
func fullReadWorld(t *testing.T, n int) *world {
	w := newWorld(t)
	w.erp.EntityList = []connectors.EntityInfo{{Name: model.KindProduct, Incremental: false}}
	w.seed(model.KindProduct, n, t0.Add(-time.Hour))
	return w
}

func deleted(w *world, id string) bool {
	r, ok := w.crm.Get(model.Key{Company: "ACME", Vendor: "fake", Kind: model.KindProduct, VendorID: id})
	return ok && r.Deleted
}

// TestAbsentFromACleanFullPass: a record gone from a clean full read is a
// tombstone; the rules that keep a pass from deleting by mistake each hold
// (table-driven).
func TestAbsentFromACleanFullPass(t *testing.T) {
	for _, tc := range []struct {
		name string
		// remove is how many of 40 products the ERP loses before run 2.
		remove int
		// setup changes run 2.
		setup      func(w *world, r *Run)
		wantDelete bool
		wantHeld   bool
	}{
		{name: "clean pass deletes", remove: 2, wantDelete: true},
		{name: "a retried fault applies nothing", remove: 2, setup: func(w *world, r *Run) { r.Connector = faulting{w.erp} }},
		{name: "more than the share is held", remove: 10, wantHeld: true},
		{name: "the guard can be lifted", remove: 10, wantDelete: true, setup: func(_ *world, r *Run) { r.MaxDeleteShare = -1 }},
		{name: "a kind two streams emit is never inferred", remove: 2, setup: func(w *world, _ *Run) {
			w.erp.EntityList = append(w.erp.EntityList, connectors.EntityInfo{Name: model.KindStockLevel, Also: []model.Kind{model.KindProduct}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fullReadWorld(t, 40)
			if _, err := w.run(context.Background(), func(r *Run) { r.Company, r.Vendor = "ACME", "fake" }); err != nil {
				t.Fatal(err)
			}
			var gone []string
			for i := 0; i < tc.remove; i++ {
				gone = append(gone, id(model.KindProduct, i))
				w.erp.Delete(model.KindProduct, id(model.KindProduct, i))
			}
			w.clock.Advance(time.Minute)
			res, err := w.run(context.Background(), func(r *Run) {
				r.Company, r.Vendor = "ACME", "fake"
				if tc.setup != nil {
					tc.setup(w, r)
				}
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			for _, g := range gone {
				if deleted(w, g) != tc.wantDelete {
					t.Errorf("%s deleted = %t, want %t", g, deleted(w, g), tc.wantDelete)
				}
			}
			if deleted(w, id(model.KindProduct, 39)) {
				t.Errorf("a product still in the ERP was deleted")
			}
			st := stateOf(res.State, model.KindProduct)
			if (st.Held != nil) != tc.wantHeld {
				t.Errorf("held = %+v, want held %t", st.Held, tc.wantHeld)
			}
			if tc.wantHeld && (st.Held.Candidates != int64(tc.remove) || st.Held.Live != 40) {
				t.Errorf("held %d of %d, want %d of 40", st.Held.Candidates, st.Held.Live, tc.remove)
			}
		})
	}
}

// faulting is a connector whose second page needed a repeat after a fault
// (what the HTTP layer counts through connectors.CountFault).
type faulting struct{ connectors.Connector }

func (f faulting) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if req.Page == 2 {
		connectors.CountFault(ctx)
	}
	return f.Connector.ListPage(ctx, req)
}

// TestResumedFullPassInfersNothing: a full pass resumed from a checkpoint
// does not know the ids it read before, so it deletes nothing.
func TestResumedFullPassInfersNothing(t *testing.T) {
	w := fullReadWorld(t, 40)
	if _, err := w.run(context.Background(), func(r *Run) { r.Company, r.Vendor = "ACME", "fake" }); err != nil {
		t.Fatal(err)
	}
	w.erp.Delete(model.KindProduct, id(model.KindProduct, 0))
	// Stop the next pass after its second page.
	ctx, cancel := context.WithCancel(context.Background())
	w.erp.After = func(req connectors.PageRequest) {
		if req.Page == 2 {
			cancel()
		}
	}
	w.clock.Advance(time.Minute)
	stopped, _ := w.run(ctx, func(r *Run) { r.Company, r.Vendor = "ACME", "fake" })
	w.saved = stopped.State // what the controller persists of a stopped run
	if stateOf(w.saved, model.KindProduct).Resume == nil {
		t.Fatalf("the stopped pass left no checkpoint")
	}
	w.erp.After = nil
	res, err := w.run(context.Background(), func(r *Run) { r.Company, r.Vendor = "ACME", "fake" })
	if err != nil {
		t.Fatal(err)
	}
	if deleted(w, id(model.KindProduct, 0)) {
		t.Errorf("a resumed pass inferred a deletion")
	}
	if rep := stateOf(res.State, model.KindProduct).Deletions; rep == nil || rep.Skipped == "" {
		t.Errorf("the resumed pass does not say why it inferred nothing: %+v", rep)
	}
	// The next whole pass does.
	w.clock.Advance(time.Minute)
	if _, err := w.run(context.Background(), func(r *Run) { r.Company, r.Vendor = "ACME", "fake" }); err != nil {
		t.Fatal(err)
	}
	if !deleted(w, id(model.KindProduct, 0)) {
		t.Errorf("the next whole pass did not delete the product gone from the ERP")
	}
}
