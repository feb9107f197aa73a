package sinktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// The deletion cases: tombstones, children following their parent, Delete,
// Live and Purge (sinks.Sink's rules "Tombstones, not removals" and
// "Children follow their parent").
var deletionCases = []struct {
	name string
	run  func(t *testing.T, h Harness)
}{
	{"TombstoneKeepsContent", testTombstoneKeepsContent},
	{"LiveWriteRestores", testLiveWriteRestores},
	{"OlderLiveWriteDoesNotRestore", testOlderDoesNotRestore},
	{"ChildrenRemovesAbsentChildren", testChildrenRule},
	{"ChildrenInTheParentsBatch", testChildrenInBatch},
	{"DeletedParentCascades", testDeletedParentCascades},
	{"DeleteCascades", testDeleteCascades},
	{"ParentKindNotConfused", testParentKind},
	{"DeleteCountsOnlyLive", testDeleteCounts},
	{"DeleteRejectsBadTombstones", testDeleteInvalid},
	{"DeleteCancelled", testDeleteCancelled},
	{"DeletionCompaniesApart", testDeletionCompaniesApart},
	{"Live", testLive},
	{"Purge", testPurge},
}

// Child returns Record(kind, …, version) read inside a parent.
func Child(kind model.Kind, company, vendor, id string, version int, parentKind model.Kind, parent string) model.Record {
	r := Record(kind, company, vendor, id, version)
	r.ParentKind, r.Parent = parentKind, parent
	return r
}

// WithChildren returns a copy of r whose document lists its children of
// the given kinds (kind, ids, kind, ids, …).
func WithChildren(r model.Record, sets ...model.ChildSet) model.Record {
	r.Children = append([]model.ChildSet(nil), sets...)
	return r
}

// Deleted returns a copy of r marked deleted by the vendor (same time and
// payload), with the given source (empty: none given).
func Deleted(r model.Record, via model.DeletionSource) model.Record {
	r.Deleted, r.DeletedVia = true, via
	return r
}

// Live returns a copy of r as live.
func Live(r model.Record) model.Record {
	r.Deleted, r.DeletedVia = false, ""
	return r
}

func tombOf(r model.Record, at time.Time, via model.DeletionSource) model.Tombstone {
	return model.Tombstone{Key: r.Key(), At: at, Via: via}
}

func mustDelete(t *testing.T, tg Target, want int, ts ...model.Tombstone) {
	t.Helper()
	n, err := tg.Sink.Delete(context.Background(), ts)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n != want {
		t.Fatalf("Delete marked %d, want %d", n, want)
	}
}

// Window is the span of our clock around a call: a deletion learned in it
// is stamped within it (a second either side for a database's clock).
type Window struct{ from, to time.Time }

func during(f func()) Window {
	from := time.Now()
	f()
	return Window{from.Add(-time.Second), time.Now().Add(time.Second)}
}

func (w Window) String() string { return fmt.Sprintf("[%v, %v]", w.from, w.to) }

// ExpectTombstone checks that each record is stored deleted, with its
// content as given (live or not), its deletion learned via via, at a time
// in w (or exactly at, when at is not zero).
func ExpectTombstone(t testing.TB, tg Target, via model.DeletionSource, at time.Time, w Window, recs ...model.Record) {
	t.Helper()
	for _, r := range recs {
		want := r
		want.Deleted = true
		ExpectStored(t, tg, want)
		got, _, _ := tg.Get(context.Background(), r.Key())
		if got.DeletedVia != via {
			t.Fatalf("%v: stored deletedVia %q, want %q", r.Key(), got.DeletedVia, via)
		}
		if tg.Tombstone == nil {
			t.Fatalf("the target has no Tombstone reader")
		}
		ts, ok, err := tg.Tombstone(context.Background(), r.Key())
		if err != nil || !ok {
			t.Fatalf("Tombstone %v = %v, %v; want a tombstone", r.Key(), ok, err)
		}
		if ts.Via != via {
			t.Fatalf("Tombstone %v: via %q, want %q", r.Key(), ts.Via, via)
		}
		switch {
		case !at.IsZero():
			if g, x := ts.At.UTC().Truncate(time.Microsecond), at.UTC().Truncate(time.Microsecond); !g.Equal(x) {
				t.Fatalf("Tombstone %v: at %v, want %v", r.Key(), g, x)
			}
		case ts.At.Before(w.from) || ts.At.After(w.to):
			t.Fatalf("Tombstone %v: at %v, want within the write %v", r.Key(), ts.At, w)
		}
	}
}

// ExpectLive checks that each record is stored live as given, with no
// tombstone.
func ExpectLive(t testing.TB, tg Target, recs ...model.Record) {
	t.Helper()
	for _, r := range recs {
		ExpectStored(t, tg, Live(r))
		got, _, _ := tg.Get(context.Background(), r.Key())
		if got.DeletedVia != "" {
			t.Fatalf("%v: live, but deletedVia %q", r.Key(), got.DeletedVia)
		}
		if tg.Tombstone == nil {
			t.Fatalf("the target has no Tombstone reader")
		}
		if ts, ok, err := tg.Tombstone(context.Background(), r.Key()); err != nil || ok {
			t.Fatalf("Tombstone %v = %+v, %v, %v; want none", r.Key(), ts, ok, err)
		}
	}
}

func testTombstoneKeepsContent(t *testing.T, h Harness) {
	tg := h.Open(t)
	kinds := []model.Kind{model.KindProduct, model.KindCustomer, model.KindInvoice, model.KindStockLevel}
	var live, vendor, absent []model.Record
	for _, k := range kinds {
		live = append(live, Record(k, "acme", "xero", "gone", 1))
		vendor = append(vendor, Deleted(Record(k, "acme", "xero", "marked", 2), ""))
		absent = append(absent, Deleted(Record(k, "acme", "xero", "absent", 3), model.DeletedAbsentFromFullRead))
	}
	mustWrite(t, tg, live, sinks.WriteResult{Upserted: len(live)})
	// Delete keeps the content and stores the tombstone's time and source.
	at := At(30)
	var ts []model.Tombstone
	for _, r := range live {
		ts = append(ts, tombOf(r, at, model.DeletedByReconciliation))
	}
	mustDelete(t, tg, len(live), ts...)
	ExpectTombstone(t, tg, model.DeletedByReconciliation, at, Window{}, live...)
	// A record the vendor marks deleted: via 'vendor' when it says
	// nothing, its own source otherwise, at the write's time.
	w := during(func() { mustWrite(t, tg, append(vendor, absent...), sinks.WriteResult{Upserted: 2 * len(vendor)}) })
	ExpectTombstone(t, tg, model.DeletedByVendor, time.Time{}, w, vendor...)
	ExpectTombstone(t, tg, model.DeletedAbsentFromFullRead, time.Time{}, w, absent...)
	first, _, _ := tg.Tombstone(context.Background(), vendor[0].Key())
	// A newer version that is still deleted keeps when the deletion was
	// learned.
	time.Sleep(5 * time.Millisecond)
	var newer []model.Record
	for _, r := range vendor {
		newer = append(newer, Deleted(Record(r.Kind, "acme", "xero", "marked", 3), ""))
	}
	mustWrite(t, tg, newer, sinks.WriteResult{Upserted: len(newer)})
	ExpectTombstone(t, tg, model.DeletedByVendor, first.At, Window{}, newer[:1]...)
	// Redelivering a tombstoned record's deleted version, same content and
	// time, changes nothing: the tombstone's content hash is the deleted
	// one.
	var again []model.Record
	for _, r := range live {
		again = append(again, Deleted(r, ""))
	}
	mustWrite(t, tg, again, sinks.WriteResult{Skipped: len(again)})
	ExpectTombstone(t, tg, model.DeletedByReconciliation, at, Window{}, live...)
}

func testLiveWriteRestores(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name    string
		version int // the live version written after the deletion
	}{{"same version", 1}, {"newer version", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			tg := h.Open(t)
			var first, later []model.Record
			for _, k := range []model.Kind{model.KindProduct, model.KindContact, model.KindSalesOrder} {
				first = append(first, Record(k, "acme", "katana", "r", 1))
				later = append(later, Record(k, "acme", "katana", "r", tc.version))
			}
			mustWrite(t, tg, first, sinks.WriteResult{Upserted: len(first)})
			var ts []model.Tombstone
			for _, r := range first {
				ts = append(ts, tombOf(r, At(20), model.DeletedByReconciliation))
			}
			mustDelete(t, tg, len(first), ts...)
			mustWrite(t, tg, later, sinks.WriteResult{Upserted: len(later)})
			ExpectLive(t, tg, later...)
			// Deleted again and restored again: the rules hold every time.
			mustDelete(t, tg, len(first), ts...)
			mustWrite(t, tg, later, sinks.WriteResult{Upserted: len(later)})
			ExpectLive(t, tg, later...)
		})
	}
	t.Run("a vendor's undelete", func(t *testing.T) {
		tg := h.Open(t)
		r := Record(model.KindProduct, "acme", "katana", "u", 2)
		mustWrite(t, tg, []model.Record{Deleted(r, "")}, sinks.WriteResult{Upserted: 1})
		mustWrite(t, tg, []model.Record{r}, sinks.WriteResult{Upserted: 1})
		ExpectLive(t, tg, r)
	})
}

func testOlderDoesNotRestore(t *testing.T, h Harness) {
	tg := h.Open(t)
	r3 := Record(model.KindCustomer, "acme", "cin7core", "c", 3)
	mustWrite(t, tg, []model.Record{r3}, sinks.WriteResult{Upserted: 1})
	mustDelete(t, tg, 1, tombOf(r3, At(40), model.DeletedByReconciliation))
	mustWrite(t, tg, []model.Record{Record(model.KindCustomer, "acme", "cin7core", "c", 2)}, sinks.WriteResult{Skipped: 1})
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(40), Window{}, r3)
	// Nor does an older vendor-deleted version re-stamp the tombstone.
	d := Deleted(Record(model.KindCustomer, "acme", "cin7core", "c", 1), "")
	mustWrite(t, tg, []model.Record{d}, sinks.WriteResult{Skipped: 1})
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(40), Window{}, r3)
}

// family writes a customer c1 with contacts k1…k3 and a price rule, a
// customer c2 with contact k4, and returns them.
func family(t *testing.T, tg Target, company string) (c1 model.Record, kids []model.Record, rule, other model.Record) {
	t.Helper()
	c1 = Record(model.KindCustomer, company, "unleashed", "c1", 2)
	c2 := Record(model.KindCustomer, company, "unleashed", "c2", 2)
	for _, id := range []string{"k1", "k2", "k3"} {
		kids = append(kids, Child(model.KindContact, company, "unleashed", id, 1, model.KindCustomer, "c1"))
	}
	rule = Child(model.KindPriceRule, company, "unleashed", "pr1", 1, model.KindCustomer, "c1")
	other = Child(model.KindContact, company, "unleashed", "k4", 1, model.KindCustomer, "c2")
	batch := append([]model.Record{c1, c2, rule, other}, kids...)
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	return c1, kids, rule, other
}

func testChildrenRule(t *testing.T, h Harness) {
	tg := h.Open(t)
	c1, kids, rule, other := family(t, tg, "acme")
	ExpectStored(t, tg, append(kids, rule, other)...)
	// A newer c1 lists k1 and k3 only: k2 is gone, and only k2.
	c1v3 := WithChildren(Record(model.KindCustomer, "acme", "unleashed", "c1", 3), model.ChildSet{Kind: model.KindContact, IDs: []string{"k1", "k3"}})
	w := during(func() { mustWrite(t, tg, []model.Record{c1v3}, sinks.WriteResult{Upserted: 1}) })
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, w, kids[1])
	ExpectLive(t, tg, kids[0], kids[2], rule, other)
	// An older version of c1 listing no contact deletes nothing.
	old := WithChildren(c1, model.ChildSet{Kind: model.KindContact, IDs: nil})
	mustWrite(t, tg, []model.Record{old}, sinks.WriteResult{Skipped: 1})
	ExpectLive(t, tg, kids[0], kids[2], rule, other)
	// The same version again (skipped, saying the same) with fewer
	// contacts and an empty set of price rules: its rules still hold.
	same := WithChildren(Record(model.KindCustomer, "acme", "unleashed", "c1", 3),
		model.ChildSet{Kind: model.KindContact, IDs: []string{"k3"}}, model.ChildSet{Kind: model.KindPriceRule})
	w = during(func() { mustWrite(t, tg, []model.Record{same}, sinks.WriteResult{Skipped: 1}) })
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, w, kids[0], rule)
	ExpectLive(t, tg, kids[2], other)
	// k2's tombstone keeps its first time.
	ts, _, _ := tg.Tombstone(context.Background(), kids[1].Key())
	if ts.At.After(w.from.Add(time.Second)) {
		t.Fatalf("k2's tombstone was re-stamped at %v", ts.At)
	}
	// A record with no Children says nothing about them.
	mustWrite(t, tg, []model.Record{Record(model.KindCustomer, "acme", "unleashed", "c1", 5)}, sinks.WriteResult{Upserted: 1})
	ExpectLive(t, tg, kids[2], other)
	// A child back in its parent's next document is written live again.
	k2 := Child(model.KindContact, "acme", "unleashed", "k2", 2, model.KindCustomer, "c1")
	c1v6 := WithChildren(Record(model.KindCustomer, "acme", "unleashed", "c1", 6), model.ChildSet{Kind: model.KindContact, IDs: []string{"k2", "k3"}})
	mustWrite(t, tg, []model.Record{c1v6, k2}, sinks.WriteResult{Upserted: 2})
	ExpectLive(t, tg, k2, kids[2], other)
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, Window{time.Time{}, time.Now().Add(time.Second)}, kids[0])
}

func testChildrenInBatch(t *testing.T, h Harness) {
	tg := h.Open(t)
	// A product, its stock rows and price rules in one batch, the parent
	// first: the rows it does not name go once the batch is stored,
	// whatever their order.
	p := WithChildren(Record(model.KindProduct, "acme", "cin7core", "p1", 2),
		model.ChildSet{Kind: model.KindStockLevel, IDs: []string{"p1/main"}},
		model.ChildSet{Kind: model.KindPriceRule, IDs: []string{"p1/t1", "p1/t2"}})
	s1 := Child(model.KindStockLevel, "acme", "cin7core", "p1/main", 1, model.KindProduct, "p1")
	s2 := Child(model.KindStockLevel, "acme", "cin7core", "p1/old", 1, model.KindProduct, "p1")
	r1 := Child(model.KindPriceRule, "acme", "cin7core", "p1/t1", 1, model.KindProduct, "p1")
	r2 := Child(model.KindPriceRule, "acme", "cin7core", "p1/t2", 1, model.KindProduct, "p1")
	w := during(func() { mustWrite(t, tg, []model.Record{p, s2, r2, s1, r1}, sinks.WriteResult{Upserted: 5}) })
	ExpectLive(t, tg, s1, r1, r2)
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, w, s2)
	// A variant (a product inside a product) and its stock: the parent's
	// next version without the variant marks it, and its stock follows.
	v := Child(model.KindProduct, "acme", "cin7core", "p1-red", 1, model.KindProduct, "p1")
	vs := Child(model.KindStockLevel, "acme", "cin7core", "p1-red/main", 1, model.KindProduct, "p1-red")
	p3 := WithChildren(Record(model.KindProduct, "acme", "cin7core", "p1", 3), model.ChildSet{Kind: model.KindProduct, IDs: []string{"p1-red"}})
	mustWrite(t, tg, []model.Record{p3, v, vs}, sinks.WriteResult{Upserted: 3})
	ExpectLive(t, tg, v, vs, s1)
	p5 := WithChildren(Record(model.KindProduct, "acme", "cin7core", "p1", 5), model.ChildSet{Kind: model.KindProduct})
	w = during(func() { mustWrite(t, tg, []model.Record{p5}, sinks.WriteResult{Upserted: 1}) })
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, w, v)
	ExpectTombstone(t, tg, model.DeletedWithParent, time.Time{}, w, vs)
	ExpectLive(t, tg, p5, s1, r1, r2)
}

func testDeletedParentCascades(t *testing.T, h Harness) {
	tg := h.Open(t)
	_, kids, rule, other := family(t, tg, "acme")
	// A child already gone keeps its own tombstone.
	mustDelete(t, tg, 1, tombOf(kids[0], At(50), model.DeletedByReconciliation))
	d := Deleted(Record(model.KindCustomer, "acme", "unleashed", "c1", 3), "")
	w := during(func() { mustWrite(t, tg, []model.Record{d}, sinks.WriteResult{Upserted: 1}) })
	ExpectTombstone(t, tg, model.DeletedByVendor, time.Time{}, w, d)
	ExpectTombstone(t, tg, model.DeletedWithParent, time.Time{}, w, kids[1], kids[2], rule)
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(50), Window{}, kids[0])
	ExpectLive(t, tg, other)
	// An older deleted version of a live parent cascades nothing.
	tg2 := h.Open(t)
	_, kids2, rule2, _ := family(t, tg2, "acme")
	mustWrite(t, tg2, []model.Record{Deleted(Record(model.KindCustomer, "acme", "unleashed", "c1", 1), "")}, sinks.WriteResult{Skipped: 1})
	ExpectLive(t, tg2, append(kids2, rule2)...)
	// A deleted parent delivered again (saying the same) marks the
	// children written since.
	late := Child(model.KindContact, "acme", "unleashed", "k9", 1, model.KindCustomer, "c1")
	mustWrite(t, tg, []model.Record{late}, sinks.WriteResult{Upserted: 1})
	ExpectLive(t, tg, late)
	mustWrite(t, tg, []model.Record{d}, sinks.WriteResult{Skipped: 1})
	ExpectTombstone(t, tg, model.DeletedWithParent, time.Time{}, Window{w.from, time.Now().Add(time.Second)}, late)
}

func testDeleteCascades(t *testing.T, h Harness) {
	tg := h.Open(t)
	p := Record(model.KindProduct, "acme", "katana", "p", 1)
	v := Child(model.KindProduct, "acme", "katana", "p-v", 1, model.KindProduct, "p")
	vs := Child(model.KindStockLevel, "acme", "katana", "p-v/main", 1, model.KindProduct, "p-v")
	pr := Child(model.KindPriceRule, "acme", "katana", "p/retail", 1, model.KindProduct, "p")
	gone := Child(model.KindStockLevel, "acme", "katana", "p/old", 1, model.KindProduct, "p")
	keep := Record(model.KindProduct, "acme", "katana", "q", 1)
	batch := []model.Record{p, v, vs, pr, gone, keep}
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	mustDelete(t, tg, 1, tombOf(gone, At(60), model.DeletedByReconciliation))
	// p, its variant, the variant's stock and p's price rule; not the
	// stock row already gone.
	mustDelete(t, tg, 4, tombOf(p, At(70), model.DeletedByReconciliation))
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(70), Window{}, p)
	ExpectTombstone(t, tg, model.DeletedWithParent, At(70), Window{}, v, vs, pr)
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(60), Window{}, gone)
	ExpectLive(t, tg, keep)
}

func testParentKind(t *testing.T, h Harness) {
	tg := h.Open(t)
	// A product and a customer share the id "x"; each has children.
	prod := Record(model.KindProduct, "acme", "unleashed", "x", 1)
	cust := Record(model.KindCustomer, "acme", "unleashed", "x", 1)
	contact := Child(model.KindContact, "acme", "unleashed", "x/k", 1, model.KindCustomer, "x")
	stock := Child(model.KindStockLevel, "acme", "unleashed", "x/main", 1, model.KindProduct, "x")
	priceOfProduct := Child(model.KindPriceRule, "acme", "unleashed", "x/p", 1, model.KindProduct, "x")
	priceOfCustomer := Child(model.KindPriceRule, "acme", "unleashed", "x/c", 1, model.KindCustomer, "x")
	batch := []model.Record{prod, cust, contact, stock, priceOfProduct, priceOfCustomer}
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	// The product lists no price rule: only its own price rule goes.
	p2 := WithChildren(Record(model.KindProduct, "acme", "unleashed", "x", 2), model.ChildSet{Kind: model.KindPriceRule}, model.ChildSet{Kind: model.KindContact})
	w := during(func() { mustWrite(t, tg, []model.Record{p2}, sinks.WriteResult{Upserted: 1}) })
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, w, priceOfProduct)
	ExpectLive(t, tg, priceOfCustomer, contact, stock)
	// Deleting the customer takes its children, not the product's.
	mustDelete(t, tg, 3, tombOf(cust, At(80), model.DeletedByReconciliation))
	ExpectTombstone(t, tg, model.DeletedWithParent, At(80), Window{}, contact, priceOfCustomer)
	ExpectLive(t, tg, p2, stock)
}

func testDeleteCounts(t *testing.T, h Harness) {
	tg := h.Open(t)
	a := Record(model.KindInvoice, "acme", "xero", "a", 1)
	b := Record(model.KindInvoice, "acme", "xero", "b", 1)
	vendorDeleted := Deleted(Record(model.KindInvoice, "acme", "xero", "v", 1), "")
	mustWrite(t, tg, []model.Record{a, b, vendorDeleted}, sinks.WriteResult{Upserted: 3})
	absent := Record(model.KindInvoice, "acme", "xero", "nope", 1)
	otherKind := Record(model.KindCreditNote, "acme", "xero", "a", 1)
	mustDelete(t, tg, 0)
	mustDelete(t, tg, 0, tombOf(absent, At(9), model.DeletedByReconciliation), tombOf(otherKind, At(9), model.DeletedByReconciliation))
	mustDelete(t, tg, 0, tombOf(vendorDeleted, At(9), model.DeletedByReconciliation))
	ExpectTombstone(t, tg, model.DeletedByVendor, time.Time{}, Window{time.Time{}, time.Now().Add(time.Second)}, vendorDeleted)
	// A key named twice counts once; the first tombstone wins.
	mustDelete(t, tg, 1, tombOf(a, At(10), model.DeletedByReconciliation), tombOf(absent, At(10), model.DeletedByReconciliation), tombOf(a, At(11), model.DeletedAbsentFromFullRead))
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(10), Window{}, a)
	mustDelete(t, tg, 0, tombOf(a, At(12), model.DeletedByReconciliation))
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(10), Window{}, a)
	ExpectLive(t, tg, b)
	// Thousands of keys in one call.
	var many []model.Record
	var ts []model.Tombstone
	for i := 0; i < 3000; i++ {
		r := Record(model.KindStockLevel, "acme", "xero", fmt.Sprintf("s%05d", i), 1)
		many = append(many, r)
		if i%2 == 0 {
			ts = append(ts, tombOf(r, At(13), model.DeletedByReconciliation))
		}
	}
	mustWrite(t, tg, many, sinks.WriteResult{Upserted: len(many)})
	mustDelete(t, tg, len(ts), ts...)
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(13), Window{}, many[0], many[2998])
	ExpectLive(t, tg, many[1], many[2999])
}

func testDeleteInvalid(t *testing.T, h Harness) {
	tg := h.Open(t)
	r := Record(model.KindProduct, "acme", "v", "p", 1)
	mustWrite(t, tg, []model.Record{r}, sinks.WriteResult{Upserted: 1})
	good := tombOf(r, At(5), model.DeletedByReconciliation)
	for _, tc := range []struct {
		name string
		bad  model.Tombstone
	}{
		{"unknown kind", model.Tombstone{Key: model.Key{Company: "acme", Vendor: "v", Kind: "widgets", VendorID: "p"}, At: At(5), Via: model.DeletedByReconciliation}},
		{"empty company", model.Tombstone{Key: model.Key{Vendor: "v", Kind: model.KindProduct, VendorID: "p"}, At: At(5), Via: model.DeletedByReconciliation}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tg.Sink.Delete(context.Background(), []model.Tombstone{good, tc.bad}); err == nil {
				t.Fatalf("Delete accepted a tombstone with %s", tc.name)
			}
			ExpectLive(t, tg, r)
		})
	}
}

func testDeleteCancelled(t *testing.T, h Harness) {
	tg := h.Open(t)
	var recs []model.Record
	for i := 0; i < 400; i++ {
		p := Record(model.KindProduct, "acme", "v", fmt.Sprintf("p%04d", i), 1)
		s := Child(model.KindStockLevel, "acme", "v", fmt.Sprintf("p%04d/main", i), 1, model.KindProduct, p.VendorID)
		recs = append(recs, p, s)
	}
	mustWrite(t, tg, recs, sinks.WriteResult{Upserted: len(recs)})
	var ts []model.Tombstone
	for _, r := range recs {
		if r.Kind == model.KindProduct {
			ts = append(ts, tombOf(r, At(7), model.DeletedByReconciliation))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tg.Sink.Delete(ctx, ts); !errors.Is(err, context.Canceled) {
		t.Fatalf("Delete with a cancelled context = %v, want an error wrapping context.Canceled", err)
	}
	ExpectLive(t, tg, recs...)
	// Cancelled at various points: all marked (parents and children) or
	// none, and a nil error means all; an error means none, but for a
	// remote sink, whose request may land as its caller gives up.
	for _, d := range []time.Duration{50 * time.Microsecond, 500 * time.Microsecond, 2 * time.Millisecond, 8 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		n, err := tg.Sink.Delete(ctx, ts)
		cancel()
		deleted := 0
		for _, r := range recs {
			got, ok, gerr := tg.Get(context.Background(), r.Key())
			if gerr != nil || !ok {
				t.Fatalf("Get %v: %v, %v", r.Key(), ok, gerr)
			}
			if got.Deleted {
				deleted++
			}
		}
		switch {
		case err == nil && (deleted != len(recs) || n != len(recs)):
			t.Fatalf("cancel after %v: Delete = %d, nil, but %d of %d are deleted", d, n, deleted, len(recs))
		case err != nil && deleted != 0 && (!h.Remote || deleted != len(recs)):
			t.Fatalf("cancel after %v: Delete failed (%v) and left %d of %d deleted", d, err, deleted, len(recs))
		}
		if deleted != 0 {
			// Restore for the next round.
			mustWrite(t, tg, recs, sinks.WriteResult{Upserted: len(recs)})
		}
	}
}

func testDeletionCompaniesApart(t *testing.T, h Harness) {
	tg := h.Open(t)
	_, acmeKids, _, _ := family(t, tg, "acme")
	_, globexKids, globexRule, _ := family(t, tg, "globex")
	otherVendor := Child(model.KindContact, "acme", "katana", "k2", 1, model.KindCustomer, "c1")
	mustWrite(t, tg, []model.Record{otherVendor}, sinks.WriteResult{Upserted: 1})
	c1 := WithChildren(Record(model.KindCustomer, "acme", "unleashed", "c1", 3), model.ChildSet{Kind: model.KindContact, IDs: []string{"k1"}})
	mustWrite(t, tg, []model.Record{c1}, sinks.WriteResult{Upserted: 1})
	ExpectTombstone(t, tg, model.DeletedFromParent, time.Time{}, Window{time.Time{}, time.Now().Add(time.Second)}, acmeKids[1], acmeKids[2])
	ExpectLive(t, tg, append(globexKids, otherVendor)...)
	mustDelete(t, tg, 3, tombOf(c1, At(90), model.DeletedByReconciliation)) // c1, k1 and the price rule
	ExpectLive(t, tg, append(globexKids, globexRule, otherVendor)...)
	ExpectLive(t, tg, Record(model.KindCustomer, "globex", "unleashed", "c1", 2))
}

func collectLive(t *testing.T, tg Target, sc sinks.Scope) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	err := tg.Sink.Live(context.Background(), sc, func(l model.LiveRecord) error {
		if _, dup := out[l.VendorID]; dup {
			return fmt.Errorf("%s listed twice", l.VendorID)
		}
		out[l.VendorID] = l.ModifiedAt
		return nil
	})
	if err != nil {
		t.Fatalf("Live %+v: %v", sc, err)
	}
	return out
}

func testLive(t *testing.T, h Harness) {
	tg := h.Open(t)
	sc := sinks.Scope{Company: "acme", Vendor: "xero", Kind: model.KindInvoice}
	if h.NoListing {
		mustWrite(t, tg, []model.Record{Record(model.KindInvoice, "acme", "xero", "a", 1)}, sinks.WriteResult{Upserted: 1})
		called := false
		err := tg.Sink.Live(context.Background(), sc, func(model.LiveRecord) error { called = true; return nil })
		if !errors.Is(err, sinks.ErrNoListing) || called {
			t.Fatalf("Live of a sink without a listing = %v (fn called: %v), want sinks.ErrNoListing", err, called)
		}
		return
	}
	if got := collectLive(t, tg, sc); len(got) != 0 {
		t.Fatalf("Live of an empty sink: %v", got)
	}
	want := map[string]time.Time{}
	var batch []model.Record
	for i := 0; i < 2500; i++ {
		r := Record(model.KindInvoice, "acme", "xero", fmt.Sprintf("inv-%05d", i), 1+i%3)
		batch = append(batch, r)
		want[r.VendorID] = r.ModifiedAt.UTC().Truncate(time.Microsecond)
	}
	// Not listed: vendor-deleted, tombstoned, other kinds, companies and
	// vendors.
	batch = append(batch,
		Deleted(Record(model.KindInvoice, "acme", "xero", "marked", 1), ""),
		Record(model.KindCreditNote, "acme", "xero", "cn", 1),
		Record(model.KindInvoice, "globex", "xero", "g", 1),
		Record(model.KindInvoice, "acme", "katana", "k", 1),
	)
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	mustDelete(t, tg, 2, tombOf(batch[7], At(9), model.DeletedByReconciliation), tombOf(batch[1999], At(9), model.DeletedByReconciliation))
	delete(want, batch[7].VendorID)
	delete(want, batch[1999].VendorID)
	got := collectLive(t, tg, sc)
	if len(got) != len(want) {
		t.Fatalf("Live listed %d records, want %d", len(got), len(want))
	}
	for id, at := range want {
		if g, ok := got[id]; !ok || !g.UTC().Truncate(time.Microsecond).Equal(at) {
			t.Fatalf("Live: %s at %v (listed %v), want %v", id, g, ok, at)
		}
	}
	// A restored record is listed again, with its version.
	mustWrite(t, tg, []model.Record{Record(model.KindInvoice, "acme", "xero", batch[7].VendorID, 8)}, sinks.WriteResult{Upserted: 1})
	if g := collectLive(t, tg, sc)[batch[7].VendorID]; !g.Equal(At(8).Truncate(time.Microsecond)) {
		t.Fatalf("Live: restored record at %v, want %v", g, At(8))
	}
	// fn's error stops the listing and is returned.
	stop := errors.New("stop")
	calls := 0
	err := tg.Sink.Live(context.Background(), sc, func(model.LiveRecord) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
		t.Fatalf("Live with fn failing at the 10th = %v after %d calls, want stop after 10", err, calls)
	}
	// A cancelled context stops it.
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = tg.Sink.Live(ctx, sc, func(model.LiveRecord) error {
		calls++
		if calls == 5 {
			cancel()
		}
		return nil
	})
	cancel()
	if !errors.Is(err, context.Canceled) || calls >= len(want) {
		t.Fatalf("Live cancelled at the 5th = %v after %d calls, want context.Canceled before the end", err, calls)
	}
}

func testPurge(t *testing.T, h Harness) {
	tg := h.Open(t)
	ctx := context.Background()
	old := Record(model.KindProduct, "acme", "unleashed", "old", 1)
	recent := Record(model.KindProduct, "acme", "unleashed", "recent", 1)
	live := Record(model.KindProduct, "acme", "unleashed", "live", 1)
	oldOrder := Record(model.KindSalesOrder, "acme", "unleashed", "so", 1)
	globex := Record(model.KindProduct, "globex", "unleashed", "old", 1)
	katana := Record(model.KindProduct, "acme", "katana", "old", 1)
	batch := []model.Record{old, recent, live, oldOrder, globex, katana}
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	mustDelete(t, tg, 5,
		tombOf(old, At(10), model.DeletedByReconciliation), tombOf(oldOrder, At(11), model.DeletedAbsentFromFullRead),
		tombOf(recent, At(30), model.DeletedByReconciliation),
		tombOf(globex, At(10), model.DeletedByReconciliation), tombOf(katana, At(10), model.DeletedByReconciliation))
	n, err := tg.Sink.Purge(ctx, "acme", "unleashed", At(20))
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if h.NoListing {
		// A sink that cannot read back what it holds purges nothing.
		if n != 0 {
			t.Fatalf("Purge = %d, want 0", n)
		}
		ExpectTombstone(t, tg, model.DeletedByReconciliation, At(10), Window{}, old)
		return
	}
	if n != 2 {
		t.Fatalf("Purge = %d, want 2", n)
	}
	ExpectAbsent(t, tg, old, oldOrder)
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(30), Window{}, recent)
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(10), Window{}, globex, katana)
	ExpectLive(t, tg, live)
	if n, err := tg.Sink.Purge(ctx, "acme", "unleashed", At(20)); err != nil || n != 0 {
		t.Fatalf("Purge again = %d, %v; want 0", n, err)
	}
	// A purged record written again is a new row.
	mustWrite(t, tg, []model.Record{old}, sinks.WriteResult{Upserted: 1})
	ExpectLive(t, tg, old)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tg.Sink.Purge(cctx, "acme", "unleashed", At(40)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Purge with a cancelled context = %v, want context.Canceled", err)
	}
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(30), Window{}, recent)
}

// MemoryTombstone is the Tombstone reader of an in-memory sink (the
// reference, or the store behind a webhook receiver).
func MemoryTombstone(m interface {
	Tombstone(model.Key) (model.Tombstone, bool)
}) func(context.Context, model.Key) (model.Tombstone, bool, error) {
	return func(_ context.Context, k model.Key) (model.Tombstone, bool, error) {
		t, ok := m.Tombstone(k)
		return t, ok, nil
	}
}

// UpgradeBatch is what a sink's migration test writes at the schema
// version before tombstones: every kind live for acme and globex, and
// every kind deleted by its vendor (version 4) for acme.
func UpgradeBatch() []model.Record {
	batch := append(AllKinds("acme", "unleashed", "live", 2), AllKinds("globex", "unleashed", "live", 3)...)
	return append(batch, AllKinds("acme", "unleashed", "gone", 4)...)
}

// ExpectUpgradedTombstones checks a sink migrated to tombstones after
// UpgradeBatch was written during w: every row kept; the rows deleted
// before the migration are tombstones learned from their vendor during w;
// the live ones are listed by Live; and the rules hold on the old rows:
// Delete marks them, a live write restores them, Purge removes the old
// tombstones.
func ExpectUpgradedTombstones(t *testing.T, tg Target, w Window) {
	t.Helper()
	ctx := context.Background()
	batch := UpgradeBatch()
	ExpectStored(t, tg, batch...)
	var live, gone []model.Record
	for _, r := range batch {
		if r.Deleted {
			gone = append(gone, r)
		} else {
			live = append(live, r)
		}
	}
	ExpectTombstone(t, tg, model.DeletedByVendor, time.Time{}, w, gone...)
	ExpectLive(t, tg, live...)
	for _, k := range model.Kinds {
		got := collectLive(t, tg, sinks.Scope{Company: "acme", Vendor: "unleashed", Kind: k})
		if at, ok := got["live"]; len(got) != 1 || !ok || !at.Equal(At(2).Truncate(time.Microsecond)) {
			t.Fatalf("Live of acme's %s after the upgrade: %v, want live at %v", k, got, At(2))
		}
	}
	// An old row marked deleted, then written again the same: restored.
	old := Record(model.KindProduct, "globex", "unleashed", "live", 3)
	mustDelete(t, tg, 1, tombOf(old, At(50), model.DeletedByReconciliation))
	ExpectTombstone(t, tg, model.DeletedByReconciliation, At(50), Window{}, old)
	mustWrite(t, tg, []model.Record{old}, sinks.WriteResult{Upserted: 1})
	ExpectLive(t, tg, old)
	n, err := tg.Sink.Purge(ctx, "acme", "unleashed", w.to.Add(time.Hour))
	if err != nil || n != len(gone) {
		t.Fatalf("Purge after the upgrade = %d, %v; want %d", n, err, len(gone))
	}
	ExpectAbsent(t, tg, gone...)
	ExpectLive(t, tg, live...)
}

// During runs f and returns the span of our clock around it, for
// ExpectUpgradedTombstones.
func During(f func()) Window { return during(f) }

// ExpectLivePages writes n live products (and tombstones between them) and
// checks that Live lists exactly the live ones once each: for a sink test
// that has made its page size small, so that the listing crosses pages.
func ExpectLivePages(t *testing.T, tg Target, n int) {
	t.Helper()
	var batch []model.Record
	var ts []model.Tombstone
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		r := Record(model.KindProduct, "acme", "v", fmt.Sprintf("p%04d", i), 1)
		gone := Record(model.KindProduct, "acme", "v", fmt.Sprintf("p%04d-gone", i), 1)
		batch = append(batch, r, gone)
		ts = append(ts, tombOf(gone, At(3), model.DeletedByReconciliation))
		want[r.VendorID] = true
	}
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	mustDelete(t, tg, len(ts), ts...)
	got := collectLive(t, tg, sinks.Scope{Company: "acme", Vendor: "v", Kind: model.KindProduct})
	if len(got) != len(want) {
		t.Fatalf("Live listed %d, want %d", len(got), len(want))
	}
	for id := range got {
		if !want[id] {
			t.Fatalf("Live listed %s", id)
		}
	}
}

// ExpectOnlyTheNewestParentRules writes two versions of a parent in one
// batch, the older without a child the newer names: the child stays, since
// only the version stored has a say. (The reference memory sink applies
// the rules of every version in the batch and deletes the child, which is
// why this is not a suite case; the database sinks call it.)
func ExpectOnlyTheNewestParentRules(t *testing.T, tg Target) {
	t.Helper()
	k2 := Child(model.KindContact, "acme", "v", "k2", 1, model.KindCustomer, "c1")
	mustWrite(t, tg, []model.Record{Record(model.KindCustomer, "acme", "v", "c1", 1), k2}, sinks.WriteResult{Upserted: 2})
	older := WithChildren(Record(model.KindCustomer, "acme", "v", "c1", 2), model.ChildSet{Kind: model.KindContact})
	newer := WithChildren(Record(model.KindCustomer, "acme", "v", "c1", 3), model.ChildSet{Kind: model.KindContact, IDs: []string{"k2"}})
	if _, err := tg.Sink.Write(context.Background(), []model.Record{older, newer}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	ExpectLive(t, tg, k2)
}
