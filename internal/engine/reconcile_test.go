package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine/enginetest"
)

// lister gives the test Fake an id listing: pages of size, with totals
// shaped by total(page, n) (n: the true count).
type lister struct {
	*world
	size  int
	total func(page, n int) int
	fault int // page whose request was repeated after a fault
}

func (l lister) IDListing(model.Kind) (connectors.IDListingInfo, bool) {
	return connectors.IDListingInfo{PageSize: l.size, Endpoint: "test"}, true
}

func (l lister) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	if req.Page == l.fault {
		connectors.CountFault(ctx)
	}
	items := l.erp.Items(req.Entity)
	slices.SortFunc(items, func(a, b enginetest.Item) int { return strings.Compare(a.ID, b.ID) })
	start := min((req.Page-1)*l.size, len(items))
	end := min(start+l.size, len(items))
	p := &connectors.IDPage{Calls: 1, More: end < len(items), Total: l.total(req.Page, len(items))}
	for _, it := range items[start:end] {
		p.Docs = append(p.Docs, connectors.DocVersion{ID: it.ID, ModifiedAt: it.ModifiedAt})
	}
	return p, nil
}

// reconcilable joins the Fake's reading with a lister.
type reconcilable struct {
	connectors.Connector
	lister
}

// TestReconcileTrustsOnlyACompleteListing: absent records are deleted only
// from a listing that is whole (a count on the first page only is fine; a
// count that changes, one the ids fall short of, or a fault is not), drift
// is repaired by a window read when the connector cannot read by id, and
// a budget too small postpones.
func TestReconcileTrustsOnlyACompleteListing(t *testing.T) {
	first := func(page, n int) int {
		if page == 1 {
			return n
		}
		return -1
	}
	for _, tc := range []struct {
		name       string
		total      func(page, n int) int
		fault      int
		budget     int64
		wantDelete bool
		wantNote   string
	}{
		{name: "count on the first page only", total: first, wantDelete: true},
		{name: "no count at all", total: func(int, int) int { return -1 }, wantDelete: true},
		{name: "count changes under the listing", total: func(page, n int) int { return n + page - 1 }, wantNote: "total changed"},
		{name: "ids short of the count", total: func(_, n int) int { return n + 3 }, wantNote: "distinct ids of the"},
		{name: "a fault retried away", total: first, fault: 2, wantNote: "repeated after a fault"},
		{name: "budget too small", total: first, budget: 2, wantNote: "postponed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, model.KindProduct)
			w.seed(model.KindProduct, 40, t0.Add(-time.Hour))
			if _, err := w.run(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			// One product gone, one drifted in the CRM behind our back.
			w.erp.Delete(model.KindProduct, id(model.KindProduct, 5))
			drifted := w.erp.Record(model.KindProduct, mustItem(t, w, id(model.KindProduct, 7)))
			drifted.ModifiedAt = drifted.ModifiedAt.Add(-time.Hour)
			drifted.Data = &model.Product{Name: "edited in the CRM"}
			w.crm.Put(drifted)
			w.clock.Advance(time.Minute)
			conn := reconcilable{Connector: w.erp, lister: lister{world: w, size: 15, total: tc.total, fault: tc.fault}}
			res, err := Reconcile(context.Background(), Run{Connector: conn, Sink: w.crm, State: w.saved, Now: w.clock.Now, Company: "ACME", Vendor: "fake"},
				ReconcileOptions{Budget: tc.budget})
			if err != nil {
				t.Fatal(err)
			}
			if got := deleted(w, id(model.KindProduct, 5)); got != tc.wantDelete {
				t.Errorf("the product gone from the ERP deleted = %t, want %t", got, tc.wantDelete)
			}
			rep := stateOf(res.State, model.KindProduct).Reconcile
			if rep == nil {
				t.Fatal("no reconcile report")
			}
			if tc.wantNote != "" && !strings.Contains(rep.Note, tc.wantNote) {
				t.Errorf("note %q, want it to say %q", rep.Note, tc.wantNote)
			}
			if tc.budget == 0 {
				if rep.Drifted != 1 || rep.Repaired < 1 {
					t.Errorf("drifted %d, repaired %d; want 1 and at least 1", rep.Drifted, rep.Repaired)
				}
				r, _ := w.crm.Get(drifted.Key())
				if !r.ModifiedAt.Equal(drifted.ModifiedAt.Add(time.Hour)) {
					t.Errorf("the drifted record was not repaired: %s", r.ModifiedAt)
				}
			}
		})
	}
}

func mustItem(t *testing.T, w *world, id string) enginetest.Item {
	t.Helper()
	it, ok := w.erp.Get(model.KindProduct, id)
	if !ok {
		t.Fatalf("no item %s", id)
	}
	return it
}
