package connectortest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// The deletion scenarios: every way a record can leave the ERP reaches the
// CRM as a tombstone, and nothing is deleted by mistake.

// reconcile runs one reconciliation of every incremental entity with the
// world's connector, sink and state (the raw connector: reconciliation
// needs its IDLister and DocReader).
func (w *world) reconcile(what string, r engine.Run) engine.Result {
	w.t.Helper()
	r.Connector, r.Sink, r.State, r.Now, r.Log = w.conn, w.sink, w.state, w.clock.Now, w.log
	r.Company, r.Vendor = Company, w.vendor
	res, err := engine.Reconcile(context.Background(), r, engine.ReconcileOptions{})
	w.state = res.State
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	return res
}

// run is mustRun with the company and vendor set, as the controller sets
// them.
func (w *world) run(what string, r engine.Run) engine.Result {
	w.t.Helper()
	r.Company, r.Vendor = Company, w.vendor
	return w.mustRun(what, r)
}

// tombstones counts the deleted records the CRM holds, by kind.
func (w *world) tombstones() map[model.Kind]int {
	out := map[model.Kind]int{}
	for _, r := range w.sink.Records() {
		if r.Deleted {
			out[r.Kind]++
		}
	}
	return out
}

// hardDeletes: products, customers, orders and invoices removed from the
// ERP without a marker are tombstones after the next sync (entities read
// in full) or one reconciliation (incremental ones); the tombstones say
// how they were learned.
func hardDeletes(t *testing.T, h Harness) {
	w, _ := start(t, h, 31, 2.5)
	w.run("import", engine.Run{})
	w.requireEqual("after the import")
	d := w.env.Data
	w.clock.Advance(time.Minute)
	removed := d.RemoveProducts(3, 2)
	removed = append(removed, d.RemoveCustomers(1, 1)...)
	removed = append(removed, d.RemoveOrders(2, 1)...)
	removed = append(removed, d.RemoveInvoices(0, 1)...)
	w.clock.Advance(time.Minute)
	w.run("the sync after the removals", engine.Run{})
	w.requireEqual("after the sync")
	res := w.reconcile("reconciliation", engine.Run{})
	if len(res.Held) > 0 {
		t.Fatalf("a handful of hard deletes tripped the mass-deletion guard: %+v", res.Held)
	}
	if only := w.env.Caps.ChildrenFullReadOnly; len(only) > 0 {
		// Children of a removed record that live in another parent's
		// document (Cin7 Core's prices of a removed product, on their
		// customer) only a full read sees gone: everything else must be
		// exact now, those after a full resync.
		want := w.env.Expected()
		d := Compare(w.sink, w.vendor, want)
		in := wantedKeys(w.vendor, want)
		for _, r := range w.sink.Records() {
			if r.Deleted || slices.Contains(only, r.Kind) {
				continue
			}
			if !in[r.Key()] {
				t.Errorf("%s/%s is gone from the ERP, yet live after one reconciliation", r.Kind, r.VendorID)
			}
		}
		if !d.OK() {
			t.Fatalf("after one reconciliation: %s", d)
		}
		w.clock.Advance(time.Minute)
		w.run("a full resync for the children only a full read sees", engine.Run{Full: true})
	}
	RequireExact(t, w.vendor, w.sink, w.env, "after one reconciliation")
	// Every removed id that the CRM held is now a tombstone that says how.
	for _, r := range w.sink.Records() {
		if !r.Deleted || r.DeletedVia == "" {
			continue
		}
		if r.DeletedVia == model.DeletedByVendor {
			continue
		}
		if tb, ok := w.sink.Tombstone(r.Key()); !ok || tb.At.IsZero() {
			t.Errorf("%s/%s is deleted without a tombstone time", r.Kind, r.VendorID)
		}
	}
	if len(removed) == 0 {
		t.Fatalf("the dataset removed nothing")
	}
	// A second reconciliation finds nothing more and costs no repair.
	res = w.reconcile("a second reconciliation", engine.Run{})
	if res.Deleted != 0 || res.Upserted != 0 {
		t.Errorf("a second reconciliation of an unchanged ERP deleted %d and wrote %d records", res.Deleted, res.Upserted)
	}
}

// childrenRemoved: a contact dropped from a customer, a customer price and
// a warehouse's stock row dropped from a product are tombstones after the
// next incremental sync (the parent was read), without a reconciliation.
func childrenRemoved(t *testing.T, h Harness) {
	w, _ := start(t, h, 37, 2.5)
	w.run("import", engine.Run{})
	d := w.env.Data
	w.clock.Advance(time.Minute)
	d.DropContact(2)
	d.DropSpecialPrice(4)
	d.DropStock(6)
	w.clock.Advance(time.Minute)
	w.run("the sync after the removals", engine.Run{})
	want := w.env.Expected()
	d0 := Compare(w.sink, w.vendor, want)
	in := wantedKeys(w.vendor, want)
	if !d0.OK() {
		t.Fatalf("after the sync that read the parents: %s", d0)
	}
	apart := append(slices.Clone(w.env.Caps.ChildrenApart), w.env.Caps.ChildrenFullReadOnly...)
	for _, r := range w.sink.Records() {
		if r.Deleted || slices.Contains(apart, r.Kind) {
			continue
		}
		if !in[r.Key()] {
			t.Errorf("%s/%s is gone from its parent's document, yet live after the sync that read the parent", r.Kind, r.VendorID)
		}
	}
	if len(w.env.Caps.ChildrenApart) > 0 {
		w.reconcile("reconciliation for the children served apart", engine.Run{})
	}
	if len(w.env.Caps.ChildrenFullReadOnly) > 0 {
		w.clock.Advance(time.Minute)
		w.run("a full resync for the children only a full read sees", engine.Run{Full: true})
	}
	RequireExact(t, w.vendor, w.sink, w.env, "after the removals")
}

// fullReadShrinks: an entity read in full on every sync that loses records
// (tax rates, currencies, and products where the vendor lists them in
// full) has them as tombstones after the next sync.
func fullReadShrinks(t *testing.T, h Harness) {
	w, _ := start(t, h, 41, 2.5)
	w.run("import", engine.Run{})
	d := w.env.Data
	w.clock.Advance(time.Minute)
	d.RemoveTaxRates(0, 1)
	d.RemoveCurrencies(0, 1)
	w.clock.Advance(time.Minute)
	// Tax rates and currencies hold a handful of rows: one removal is
	// more than the default guard's 10% (TruncatedListing tests the
	// guard); here the guard allows half.
	w.run("the sync after the removals", engine.Run{MaxDeleteShare: 0.5})
	full := map[model.Kind]bool{}
	for _, e := range w.conn.Entities() {
		if !e.Incremental {
			full[e.Name] = true
		}
	}
	want := w.env.Expected()
	diff := Compare(w.sink, w.vendor, want)
	in := wantedKeys(w.vendor, want)
	if !diff.OK() {
		t.Fatalf("after the sync: %s", diff)
	}
	for _, r := range w.sink.Records() {
		if !full[r.Kind] || r.Deleted {
			continue
		}
		found := in[r.Key()]
		if !found {
			t.Errorf("%s/%s is gone from an entity read in full, yet live in the CRM", r.Kind, r.VendorID)
		}
	}
}

// truncatedListing: a vendor whose lists lose half their tail (a lie)
// deletes nothing: the reconciliation either distrusts the listing or the
// mass-deletion guard holds it, and so does the next sync for entities
// read in full; once the vendor is honest again, the holds clear and the
// CRM equals the ERP.
func truncatedListing(t *testing.T, h Harness) {
	w, _ := start(t, h, 43, 2.5)
	w.run("import", engine.Run{})
	before := w.tombstones()
	w.env.Base.SetListShare(50)
	w.clock.Advance(time.Minute)
	res := w.reconcile("reconciliation against a truncated listing", engine.Run{})
	if res.Deleted != 0 {
		t.Fatalf("a truncated listing deleted %d records", res.Deleted)
	}
	w.clock.Advance(time.Minute)
	res = w.run("a sync against truncated lists", engine.Run{})
	if res.Deleted != 0 {
		t.Fatalf("a sync against truncated lists deleted %d records", res.Deleted)
	}
	after := w.tombstones()
	for k, n := range after {
		if n != before[k] {
			t.Errorf("%s: %d tombstones before the lie, %d after", k, before[k], n)
		}
	}
	w.env.Base.SetListShare(0)
	w.clock.Advance(time.Minute)
	w.run("a sync against honest lists", engine.Run{})
	res = w.reconcile("reconciliation against an honest listing", engine.Run{})
	for _, s := range res.State {
		if s.Held != nil {
			t.Errorf("%s: a hold stayed after an honest pass: %+v", s.Name, *s.Held)
		}
	}
	RequireExact(t, w.vendor, w.sink, w.env, "after the vendor is honest again")
}

// drift: CRM rows edited behind the operator's back (a row removed, a row
// marked deleted, a row set back to an older version) are repaired by one
// reconciliation.
func drift(t *testing.T, h Harness) {
	w, _ := start(t, h, 47, 2.5)
	w.run("import", engine.Run{})
	var victims []model.Record
	for _, e := range w.conn.Entities() {
		if !e.Incremental {
			continue
		}
		n := 0
		for _, r := range w.sink.Records() {
			if r.Kind == e.Name && !r.Deleted && n < 3 {
				victims = append(victims, r)
				n++
			}
		}
	}
	if len(victims) == 0 {
		t.Fatalf("no incremental record to edit")
	}
	for i, r := range victims {
		switch i % 3 {
		case 0:
			w.sink.Remove(r.Key())
		case 1:
			r.Deleted = true
			w.sink.Put(r)
		case 2:
			r.ModifiedAt = r.ModifiedAt.Add(-time.Hour)
			r.Raw = []byte(`{"edited":"behind the operator's back"}`)
			w.sink.Put(r)
		}
	}
	w.clock.Advance(time.Minute)
	res := w.reconcile("reconciliation", engine.Run{})
	if res.Upserted < int64(len(victims)) {
		t.Errorf("reconciliation repaired %d records, %d were edited", res.Upserted, len(victims))
	}
	RequireExact(t, w.vendor, w.sink, w.env, "after one reconciliation")
	for _, r := range victims {
		got, ok := w.sink.Get(r.Key())
		if !ok || got.Deleted || string(got.Raw) == `{"edited":"behind the operator's back"}` {
			t.Errorf("%s/%s was not repaired", r.Kind, r.VendorID)
		}
	}
}

// wantedKeys indexes what the ERP holds by CRM key.
func wantedKeys(vendor string, want []Want) map[model.Key]bool {
	out := make(map[model.Key]bool, len(want))
	for _, x := range want {
		out[model.Key{Company: Company, Vendor: vendor, Kind: x.Kind, VendorID: x.VendorID}] = true
	}
	return out
}
