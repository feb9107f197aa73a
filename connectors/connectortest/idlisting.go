package connectortest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks"
)

// listAllIDs pages an entity's id listing to its end and returns every
// document's version by id, the calls it cost and the vendor's total (-1:
// none).
func listAllIDs(ctx context.Context, t testing.TB, l connectors.IDLister, e model.Kind, maxPages int) (map[string]connectors.DocVersion, int, int) {
	t.Helper()
	out := map[string]connectors.DocVersion{}
	calls, total, cursor := 0, -1, ""
	for page := 1; ; page++ {
		if page > maxPages {
			t.Fatalf("%s id listing: more than %d pages: a listing that never ends", e, maxPages)
		}
		p, err := l.ListIDs(ctx, connectors.PageRequest{Entity: e, Page: page, Cursor: cursor})
		if err != nil {
			t.Fatalf("%s id listing page %d: %v", e, page, err)
		}
		calls += p.Calls
		if page == 1 {
			total = p.Total
		}
		for _, d := range p.Docs {
			if d.ID == "" {
				t.Fatalf("%s id listing page %d: a document without an id", e, page)
			}
			out[d.ID] = d
		}
		cursor = p.Next
		if !p.More {
			return out, calls, total
		}
	}
}

// idListing checks every incremental entity's id listing against a full
// read: the same ids as the live records of the entity's kind that the
// full read stored, each with the same version, in at most
// ceil(n/PageSize)+1 calls; and, where the connector is a DocReader, that
// reading chosen ids gives the records a full read gives.
func idListing(t *testing.T, h Harness) {
	w := newWorld(t, h, simkit.Options{Products: 120, Customers: 30, Orders: 30})
	w.mustRun("import", engine.Run{})
	l, ok := w.conn.(connectors.IDLister)
	if !ok {
		t.Fatalf("%s: the connector does not list ids (connectors.IDLister): reconciliation cannot find hard deletes", w.vendor)
	}
	listed := 0
	for _, e := range w.conn.Entities() {
		if !e.Incremental {
			continue
		}
		info, ok := l.IDListing(e.Name)
		if !ok {
			t.Errorf("%s: entity %s is incremental but has no id listing", w.vendor, e.Name)
			continue
		}
		if info.PageSize <= 0 || info.Endpoint == "" {
			t.Errorf("%s: entity %s: IDListingInfo needs a page size and an endpoint, got %+v", w.vendor, e.Name, info)
		}
		listed++
		before := w.requests()
		ids, calls, total := listAllIDs(context.Background(), t, l, e.Name, 1000)
		if got := int(w.requests() - before); got != calls {
			t.Errorf("%s: the listing reported %d calls, the simulator answered %d", e.Name, calls, got)
		}
		live := map[string]model.LiveRecord{}
		_ = w.sink.Live(context.Background(), sinks.Scope{Company: Company, Vendor: w.vendor, Kind: e.Name}, func(r model.LiveRecord) error {
			live[r.VendorID] = r
			return nil
		})
		if len(live) == 0 {
			t.Errorf("%s: the import stored no live record to compare the listing with", e.Name)
		}
		var missing, extra, version []string
		for id, r := range live {
			d, ok := ids[id]
			switch {
			case !ok:
				missing = append(missing, id)
			case !d.ModifiedAt.Equal(r.ModifiedAt):
				version = append(version, fmt.Sprintf("%s listed %s, read %s", id, d.ModifiedAt, r.ModifiedAt))
			}
		}
		for id := range ids {
			if _, ok := live[id]; !ok {
				if r, stored := w.sink.Get(model.Key{Company: Company, Vendor: w.vendor, Kind: e.Name, VendorID: id}); !stored || !r.Deleted {
					extra = append(extra, id)
				}
			}
		}
		slices.Sort(missing)
		slices.Sort(extra)
		slices.Sort(version)
		if len(missing) > 0 || len(extra) > 0 || len(version) > 0 {
			t.Errorf("%s: the id listing differs from a full read: %d missing %v, %d unknown %v, %d other versions %v", e.Name,
				len(missing), head(missing), len(extra), head(extra), len(version), head(version))
		}
		if total >= 0 && total != len(ids) {
			t.Errorf("%s: the listing's total is %d, it listed %d distinct ids", e.Name, total, len(ids))
		}
		if limit := (len(ids)+info.PageSize-1)/info.PageSize + 1 + info.ExtraCalls; calls > limit {
			t.Errorf("%s: listing %d ids cost %d calls, more than ceil(n/%d)+1+%d = %d", e.Name, len(ids), calls, info.PageSize, info.ExtraCalls, limit)
		}
		if r, ok := w.conn.(connectors.DocReader); ok {
			checkReadDocs(t, w, r, e.Name, live)
		}
	}
	if listed == 0 {
		t.Fatalf("%s: no entity has an id listing", w.vendor)
	}
}

// checkReadDocs reads a few stored ids and one unknown id and checks that
// the records equal what the import stored.
func checkReadDocs(t *testing.T, w *world, r connectors.DocReader, e model.Kind, live map[string]model.LiveRecord) {
	t.Helper()
	var ids []string
	for id := range live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ids = ids[:min(3, len(ids))]
	if n := r.MaxDocsPerRead(e); n <= 0 {
		t.Errorf("%s: MaxDocsPerRead is %d", e, n)
		return
	}
	p, err := r.ReadDocs(context.Background(), e, ids)
	if err != nil {
		t.Errorf("%s: reading %d documents by id: %v", e, len(ids), err)
		return
	}
	got := map[string]model.Record{}
	for _, rec := range p.Records {
		if rec.Kind == e {
			got[rec.VendorID] = rec
		}
	}
	for _, id := range ids {
		rec, ok := got[id]
		if !ok {
			t.Errorf("%s: ReadDocs did not return %s", e, id)
			continue
		}
		stored, _ := w.sink.Get(model.Key{Company: Company, Vendor: w.vendor, Kind: e, VendorID: id})
		ha, _ := rec.ContentHash()
		hb, _ := stored.ContentHash()
		if ha != hb || !rec.ModifiedAt.Equal(stored.ModifiedAt) {
			t.Errorf("%s: ReadDocs(%s) maps differently from a full read", e, id)
		}
	}
}

func head(s []string) []string { return s[:min(len(s), maxNamed)] }
