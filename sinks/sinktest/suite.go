package sinktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// Target is a sink under test and a way to read back what it stores.
type Target struct {
	Sink sinks.Sink
	// Get returns the stored version of a key.
	Get func(ctx context.Context, k model.Key) (model.Record, bool, error)
	// GetSetAside returns the set-aside document of a key. Nil for a sink
	// whose set-aside documents cannot be read back: the suite then only
	// checks that SetAside accepts them.
	GetSetAside func(ctx context.Context, k model.Key) (model.SetAside, bool, error)
	// Tombstone returns when and how the deletion of a stored deleted
	// record was learned, and false for a live or absent one. Required by
	// the deletion cases.
	Tombstone func(ctx context.Context, k model.Key) (model.Tombstone, bool, error)
}

// Harness tells the suite how to get a sink.
type Harness struct {
	// Open returns a new, empty sink; it registers its own cleanup on t.
	Open func(t *testing.T) Target
	// Poison returns a copy of a batch that the sink accepts up to its last
	// record and then rejects, so that the failure comes midway through the
	// write. If nil, the last record gets a malformed decimal price.
	Poison func(batch []model.Record) []model.Record
	// NoListing says that the sink cannot read back what it holds (a
	// webhook): the suite then checks that Live answers sinks.ErrNoListing
	// and that Purge removes nothing, where it checks the listing and the
	// purge of the others.
	NoListing bool
	// Remote says that the sink hands each call to another process (a
	// webhook): a call that fails as its context ends may still have
	// landed whole there, so the suite accepts that where it otherwise
	// requires that a failed call left nothing.
	Remote bool
}

// Counter is implemented by sinks that count their rows per company and
// kind; the suite checks the counts when a sink has it.
type Counter interface {
	Count(ctx context.Context) (map[string]map[model.Kind]int, error)
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"RoundTripEveryKind", testRoundTrip},
		{"EmptyBatch", testEmptyBatch},
		{"RedeliveryChangesNothing", testRedelivery},
		{"NeverBackwards", testNeverBackwards},
		{"ContentDecides", testContentDecides},
		{"DuplicatesInOneBatch", testDuplicates},
		{"CompaniesApart", testCompaniesApart},
		{"FailedBatchLeavesNothing", testFailedBatch},
		{"InvalidRecordRejectsBatch", testInvalid},
		{"CancelledContext", testCancelled},
		{"ConcurrentWriters", testConcurrent},
		{"SetAside", testSetAside},
		{"SetAsideCompaniesApart", testSetAsideCompaniesApart},
		{"FailedBatchKeepsSetAside", testFailedBatchKeepsSetAside},
		{"SetAsideCancelled", testSetAsideCancelled},
	}
	tests = append(tests, deletionCases...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// PoisonDecimal is the default Poison: it appends a credit note (a kind
// late in sync order, so a sink that writes kind by kind has written most of
// the batch first) with a malformed total.
func PoisonDecimal(batch []model.Record) []model.Record {
	bad := Record(model.KindCreditNote, "acme", "unleashed", "zzz-poison", 1)
	bad.Data.(*model.CreditNote).Total = "12,50"
	return append(append([]model.Record(nil), batch...), bad)
}

func testRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	tg := h.Open(t)
	var batch []model.Record
	for _, c := range []string{"acme", "globex"} {
		batch = append(batch, AllKinds(c, "unleashed", "id-1", 1)...)
		batch = append(batch, AllKinds(c, "unleashed", "id-2", 4)...) // deleted
	}
	res, err := tg.Sink.Write(ctx, batch)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if res != (sinks.WriteResult{Upserted: len(batch)}) {
		t.Fatalf("Write = %+v, want %d upserted", res, len(batch))
	}
	ExpectStored(t, tg, batch...)
	if c, ok := tg.Sink.(Counter); ok {
		got, err := c.Count(ctx)
		if err != nil {
			t.Fatalf("Count: %v", err)
		}
		want := map[string]map[model.Kind]int{"acme": {}, "globex": {}}
		for _, k := range model.Kinds {
			want["acme"][k], want["globex"][k] = 2, 2
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Count = %v, want %v", got, want)
		}
	}
}

func testEmptyBatch(t *testing.T, h Harness) {
	tg := h.Open(t)
	for _, b := range [][]model.Record{nil, {}} {
		res, err := tg.Sink.Write(context.Background(), b)
		if err != nil || res != (sinks.WriteResult{}) {
			t.Fatalf("Write(empty) = %+v, %v; want zero, nil", res, err)
		}
	}
}

func testRedelivery(t *testing.T, h Harness) {
	tg := h.Open(t)
	batch := append(AllKinds("acme", "unleashed", "a", 2), AllKinds("acme", "unleashed", "b", 3)...)
	mustWrite(t, tg, batch, sinks.WriteResult{Upserted: len(batch)})
	for i := 0; i < 2; i++ {
		mustWrite(t, tg, batch, sinks.WriteResult{Skipped: len(batch)})
	}
	ExpectStored(t, tg, batch...)
}

func testNeverBackwards(t *testing.T, h Harness) {
	type write struct {
		version  int
		upserted bool
	}
	for _, tc := range []struct {
		name   string
		writes []write
		want   int // stored version
	}{
		{"newer replaces", []write{{1, true}, {2, true}}, 2},
		{"older is skipped", []write{{3, true}, {2, false}}, 3},
		{"much older is skipped after newer", []write{{1, true}, {9, true}, {5, false}, {1, false}}, 9},
		{"equal time is skipped", []write{{4, true}, {4, false}}, 4},
		{"deleted newer version replaces", []write{{3, true}, {4, true}}, 4},
		{"older version cannot undelete", []write{{4, true}, {3, false}}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := h.Open(t)
			for _, k := range []model.Kind{model.KindProduct, model.KindSalesOrder, model.KindStockLevel} {
				for _, w := range tc.writes {
					r := Record(k, "acme", "cin7core", "x1", w.version)
					want := sinks.WriteResult{Skipped: 1}
					if w.upserted {
						want = sinks.WriteResult{Upserted: 1}
					}
					mustWrite(t, tg, []model.Record{r}, want)
				}
				ExpectStored(t, tg, Record(k, "acme", "cin7core", "x1", tc.want))
			}
		})
	}
}

// Retimed returns a copy of r with another modified time and the same
// content (payload, raw document, deleted flag), so the same content hash.
func Retimed(r model.Record, at time.Time) model.Record {
	r.ModifiedAt = at
	return r
}

// testContentDecides pins the content-hash rule: an equal or newer
// modified time is written when the content differs and skipped (not
// rewritten, counted as skipped) when it is the same; an older one is
// skipped whatever it says.
func testContentDecides(t *testing.T, h Harness) {
	kinds := []model.Kind{model.KindProduct, model.KindCustomer, model.KindStockLevel, model.KindInvoice}
	type write struct {
		version int // the content: Record(…, version)
		at      int // the modified time: At(at)
		stored  bool
	}
	for _, tc := range []struct {
		name   string
		writes []write
		want   write // the stored content and time
	}{
		{"equal time with other content is written", []write{{2, 2, true}, {3, 2, true}}, write{3, 2, true}},
		{"equal time with other content is written again and again", []write{{2, 2, true}, {3, 2, true}, {6, 2, true}, {2, 2, true}}, write{2, 2, true}},
		{"same content redelivered is skipped", []write{{2, 2, true}, {2, 2, false}, {2, 2, false}}, write{2, 2, true}},
		{"newer time with equal content is skipped", []write{{2, 2, true}, {2, 7, false}}, write{2, 2, true}},
		{"older time with other content is skipped", []write{{5, 5, true}, {3, 3, false}}, write{5, 5, true}},
		{"older time with equal content is skipped", []write{{5, 5, true}, {5, 3, false}}, write{5, 5, true}},
		{"equal content at an equal time after a newer time is skipped", []write{{2, 2, true}, {3, 4, true}, {3, 4, false}}, write{3, 4, true}},
		{"deleted at an equal time is written", []write{{3, 3, true}, {4, 3, true}}, write{4, 3, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := h.Open(t)
			for _, k := range kinds {
				for i, w := range tc.writes {
					r := Retimed(Record(k, "acme", "xero", "x1", w.version), At(w.at))
					want := sinks.WriteResult{Skipped: 1}
					if w.stored {
						want = sinks.WriteResult{Upserted: 1}
					}
					got, err := tg.Sink.Write(context.Background(), []model.Record{r})
					if err != nil {
						t.Fatalf("%s write %d: %v", k, i+1, err)
					}
					if got != want {
						t.Fatalf("%s write %d (content v%d at t%d) = %+v, want %+v", k, i+1, w.version, w.at, got, want)
					}
				}
				ExpectStored(t, tg, Retimed(Record(k, "acme", "xero", "x1", tc.want.version), At(tc.want.at)))
			}
		})
	}
	t.Run("a batch mixing changed and unchanged records counts each", func(t *testing.T) {
		tg := h.Open(t)
		first := append(AllKinds("acme", "v", "a", 1), AllKinds("acme", "v", "b", 1)...)
		mustWrite(t, tg, first, sinks.WriteResult{Upserted: len(first)})
		var next []model.Record
		for _, r := range AllKinds("acme", "v", "a", 1) {
			next = append(next, Retimed(r, At(9))) // newer, same content
		}
		for _, r := range AllKinds("acme", "v", "b", 2) {
			next = append(next, Retimed(r, At(1))) // same time, other content
		}
		mustWrite(t, tg, next, sinks.WriteResult{Upserted: len(model.Kinds), Skipped: len(model.Kinds)})
		ExpectStored(t, tg, AllKinds("acme", "v", "a", 1)...)
		for _, r := range AllKinds("acme", "v", "b", 2) {
			ExpectStored(t, tg, Retimed(r, At(1)))
		}
		// Re-delivering the same batch changes nothing.
		mustWrite(t, tg, next, sinks.WriteResult{Skipped: len(next)})
	})
}

func testDuplicates(t *testing.T, h Harness) {
	tg := h.Open(t)
	a2 := Record(model.KindProduct, "acme", "v", "a", 2)
	a3 := Record(model.KindProduct, "acme", "v", "a", 3)
	a1 := Record(model.KindProduct, "acme", "v", "a", 1)
	b1 := Record(model.KindProduct, "acme", "v", "b", 1)
	res, err := tg.Sink.Write(context.Background(), []model.Record{a2, a3, a1, b1})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	// How superseded duplicates are counted is up to the sink; every record
	// is counted once and the newest of each key wins.
	if res.Upserted+res.Skipped != 4 || res.Upserted < 2 {
		t.Fatalf("Write = %+v, want 4 records counted, at least 2 upserted", res)
	}
	ExpectStored(t, tg, a3, b1)
	mustWrite(t, tg, []model.Record{a2, a1}, sinks.WriteResult{Skipped: 2})
}

func testCompaniesApart(t *testing.T, h Harness) {
	tg := h.Open(t)
	acme := AllKinds("acme", "unleashed", "same-id", 2)
	globex := AllKinds("globex", "unleashed", "same-id", 6)
	other := AllKinds("acme", "cin7core", "same-id", 3)
	mustWrite(t, tg, acme, sinks.WriteResult{Upserted: len(acme)})
	mustWrite(t, tg, globex, sinks.WriteResult{Upserted: len(globex)})
	mustWrite(t, tg, other, sinks.WriteResult{Upserted: len(other)})
	ExpectStored(t, tg, acme...)
	ExpectStored(t, tg, globex...)
	ExpectStored(t, tg, other...)
	// globex's newer versions do not make acme's next version look old,
	// and acme's update leaves globex alone.
	acme4 := AllKinds("acme", "unleashed", "same-id", 4)
	mustWrite(t, tg, acme4, sinks.WriteResult{Upserted: len(acme4)})
	ExpectStored(t, tg, acme4...)
	ExpectStored(t, tg, globex...)
	ExpectStored(t, tg, other...)
}

func testFailedBatch(t *testing.T, h Harness) {
	ctx := context.Background()
	poison := h.Poison
	if poison == nil {
		poison = PoisonDecimal
	}
	tg := h.Open(t)
	old := AllKinds("acme", "unleashed", "old", 1)
	mustWrite(t, tg, old, sinks.WriteResult{Upserted: len(old)})
	// Updates of every existing record and new records of every kind, then
	// the poison at the end.
	good := append(AllKinds("acme", "unleashed", "old", 2), AllKinds("acme", "unleashed", "new", 1)...)
	if _, err := tg.Sink.Write(ctx, poison(good)); err == nil {
		t.Fatalf("Write of a poisoned batch succeeded")
	}
	ExpectStored(t, tg, old...)
	ExpectAbsent(t, tg, AllKinds("acme", "unleashed", "new", 1)...)
	// The sink is still usable, and the same batch without the poison goes in.
	mustWrite(t, tg, good, sinks.WriteResult{Upserted: len(good)})
	ExpectStored(t, tg, good...)
}

func testInvalid(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name   string
		mutate func(r *model.Record)
	}{
		{"empty company", func(r *model.Record) { r.Company = "" }},
		{"empty vendor", func(r *model.Record) { r.Vendor = "" }},
		{"empty vendor id", func(r *model.Record) { r.VendorID = "" }},
		{"unknown kind", func(r *model.Record) { r.Kind = "widgets" }},
		{"no data", func(r *model.Record) { r.Data = nil }},
		{"data of another kind", func(r *model.Record) { r.Data = &model.Customer{Code: "c"} }},
		{"typed nil data", func(r *model.Record) { r.Data = (*model.Product)(nil) }},
		{"no modified time", func(r *model.Record) { r.ModifiedAt = time.Time{} }},
		{"raw is not JSON", func(r *model.Record) { r.Raw = json.RawMessage(`{"a":`) }},
		{"malformed decimal", func(r *model.Record) { r.Data.(*model.Product).CostPrice = "1e5" }},
		{"parent without a kind", func(r *model.Record) { r.Parent = "p0" }},
		{"parent kind without a parent", func(r *model.Record) { r.ParentKind = model.KindProduct }},
		{"unknown parent kind", func(r *model.Record) { r.Parent, r.ParentKind = "p0", "widgets" }},
		{"children of an unknown kind", func(r *model.Record) { r.Children = []model.ChildSet{{Kind: "widgets", IDs: []string{"a"}}} }},
		{"empty child id", func(r *model.Record) { r.Children = []model.ChildSet{{Kind: model.KindStockLevel, IDs: []string{""}}} }},
		{"unknown deletion source", func(r *model.Record) { r.Deleted, r.DeletedVia = true, "guessed" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := h.Open(t)
			batch := []model.Record{
				Record(model.KindCustomer, "acme", "v", "c1", 1),
				Record(model.KindProduct, "acme", "v", "p1", 1),
				Record(model.KindProduct, "acme", "v", "p2", 1),
			}
			bad := Record(model.KindProduct, "acme", "v", "p3", 1)
			tc.mutate(&bad)
			if _, err := tg.Sink.Write(context.Background(), append(batch, bad)); err == nil {
				t.Fatalf("Write accepted a record with %s", tc.name)
			}
			ExpectAbsent(t, tg, batch...)
		})
	}
}

func testCancelled(t *testing.T, h Harness) {
	tg := h.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	batch := AllKinds("acme", "v", "c", 1)
	if _, err := tg.Sink.Write(ctx, batch); err == nil {
		t.Fatalf("Write with a cancelled context succeeded")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled context: %v, want an error wrapping context.Canceled", err)
	}
	ExpectAbsent(t, tg, batch...)
	// Cancelled at various points of a larger write: the batch lands whole
	// or not at all, and a nil error means it landed.
	for i, d := range []time.Duration{50 * time.Microsecond, 500 * time.Microsecond, 2 * time.Millisecond, 8 * time.Millisecond, 30 * time.Millisecond} {
		var batch []model.Record
		for j := 0; j < 100; j++ {
			batch = append(batch, AllKinds("acme", "v", fmt.Sprintf("c%d-%d", i, j), 1)...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err := tg.Sink.Write(ctx, batch)
		cancel()
		n := countStored(t, tg, batch)
		switch {
		case err == nil && n != len(batch):
			t.Fatalf("cancel after %v: Write succeeded but %d of %d records are stored", d, n, len(batch))
		case err != nil && n != 0 && n != len(batch):
			t.Fatalf("cancel after %v: Write failed (%v) and left %d of %d records", d, err, n, len(batch))
		}
	}
}

func testConcurrent(t *testing.T, h Harness) {
	tg := h.Open(t)
	const writers, batches, size, keys = 6, 8, 40, 60
	companies := []string{"acme", "globex"}
	kinds := []model.Kind{model.KindProduct, model.KindStockLevel, model.KindCustomer}
	type key struct {
		company string
		kind    model.Kind
		id      string
	}
	var (
		mu     sync.Mutex
		newest = map[key]int{}
		wg     sync.WaitGroup
		errs   = make(chan error, writers)
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			company := companies[w%len(companies)]
			for b := 0; b < batches; b++ {
				batch := make([]model.Record, 0, size)
				for i := 0; i < size; i++ {
					k := key{company, kinds[rng.IntN(len(kinds))], fmt.Sprintf("k%d", rng.IntN(keys))}
					v := rng.IntN(50)
					batch = append(batch, Record(k.kind, k.company, "v", k.id, v))
					mu.Lock()
					if old, ok := newest[k]; !ok || v > old {
						newest[k] = v
					}
					mu.Unlock()
				}
				if _, err := tg.Sink.Write(context.Background(), batch); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var want []model.Record
	for k, v := range newest {
		want = append(want, Record(k.kind, k.company, "v", k.id, v))
	}
	ExpectStored(t, tg, want...)
}

func mustWrite(t *testing.T, tg Target, batch []model.Record, want sinks.WriteResult) {
	t.Helper()
	got, err := tg.Sink.Write(context.Background(), batch)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got != want {
		t.Fatalf("Write = %+v, want %+v", got, want)
	}
}

// ExpectStored checks that each record is stored as given.
func ExpectStored(t testing.TB, tg Target, want ...model.Record) {
	t.Helper()
	for _, w := range want {
		got, ok, err := tg.Get(context.Background(), w.Key())
		if err != nil {
			t.Fatalf("Get %v: %v", w.Key(), err)
		}
		if !ok {
			t.Fatalf("Get %v: not stored", w.Key())
		}
		if err := Equal(got, w); err != nil {
			t.Fatalf("Get %v: %v", w.Key(), err)
		}
	}
}

// ExpectAbsent checks that no record of the given keys is stored.
func ExpectAbsent(t testing.TB, tg Target, recs ...model.Record) {
	t.Helper()
	for _, r := range recs {
		_, ok, err := tg.Get(context.Background(), r.Key())
		if err != nil {
			t.Fatalf("Get %v: %v", r.Key(), err)
		}
		if ok {
			t.Fatalf("Get %v: stored, want absent", r.Key())
		}
	}
}

func countStored(t testing.TB, tg Target, recs []model.Record) int {
	t.Helper()
	n := 0
	for _, r := range recs {
		_, ok, err := tg.Get(context.Background(), r.Key())
		if err != nil {
			t.Fatalf("Get %v: %v", r.Key(), err)
		}
		if ok {
			n++
		}
	}
	return n
}

// Equal compares a stored record with the one written: key, parent,
// modified time (to the microsecond), deleted flag, and payload and raw
// document as JSON values (key order and spacing aside).
func Equal(got, want model.Record) error {
	if got.Key() != want.Key() {
		return fmt.Errorf("key %v, want %v", got.Key(), want.Key())
	}
	if got.ParentKind != want.ParentKind || got.Parent != want.Parent {
		return fmt.Errorf("parent %s/%q, want %s/%q", got.ParentKind, got.Parent, want.ParentKind, want.Parent)
	}
	g, w := got.ModifiedAt.UTC().Truncate(time.Microsecond), want.ModifiedAt.UTC().Truncate(time.Microsecond)
	if !g.Equal(w) {
		return fmt.Errorf("modified %v, want %v", g, w)
	}
	if got.Deleted != want.Deleted {
		return fmt.Errorf("deleted %v, want %v", got.Deleted, want.Deleted)
	}
	gd, _ := json.Marshal(got.Data)
	wd, _ := json.Marshal(want.Data)
	if err := jsonEqual("data", gd, wd); err != nil {
		return err
	}
	return jsonEqual("raw", got.Raw, want.Raw)
}

func jsonEqual(what string, a, b []byte) error {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !reflect.DeepEqual(x, y) {
		return fmt.Errorf("%s = %s, want %s", what, a, b)
	}
	return nil
}

// SetAsideItem returns a sample set-aside document: its reason and raw
// document are a function of (company, id, version).
func SetAsideItem(kind model.Kind, company, vendor, id string, version int) model.SetAside {
	raw, _ := json.Marshal(map[string]any{"ID": id, "Type": fmt.Sprintf("UNKNOWN-%d", version), "Company": company})
	return model.SetAside{
		Company: company, Vendor: vendor, Kind: kind, VendorID: id,
		ModifiedAt: At(version),
		Reason:     fmt.Sprintf("%s type \"UNKNOWN-%d\" is not one the connector knows", kind, version),
		Raw:        raw,
	}
}

func keyOf(it model.SetAside) model.Key { return it.Key() }

func mustSetAside(t *testing.T, tg Target, items ...model.SetAside) {
	t.Helper()
	if err := tg.Sink.SetAside(context.Background(), items); err != nil {
		t.Fatalf("SetAside: %v", err)
	}
}

func testSetAside(t *testing.T, h Harness) {
	ctx := context.Background()
	tg := h.Open(t)
	if err := tg.Sink.SetAside(ctx, nil); err != nil {
		t.Fatalf("SetAside(nil): %v", err)
	}
	kinds := []model.Kind{model.KindInvoice, model.KindPriceRule, model.KindProduct}
	var first []model.SetAside
	for _, k := range kinds {
		first = append(first, SetAsideItem(k, "acme", "xero", "d1", 1), SetAsideItem(k, "acme", "xero", "d2", 1))
	}
	unknownTime := SetAsideItem(model.KindContact, "acme", "xero", "d3", 1)
	unknownTime.ModifiedAt = time.Time{}
	unknownTime.Raw = nil
	first = append(first, unknownTime)
	mustSetAside(t, tg, first...)
	ExpectSetAside(t, tg, first...)

	// Setting a key aside again replaces its reason and document.
	var again []model.SetAside
	for _, k := range kinds {
		again = append(again, SetAsideItem(k, "acme", "xero", "d1", 2))
	}
	mustSetAside(t, tg, again...)
	ExpectSetAside(t, tg, again...)
	for _, k := range kinds {
		ExpectSetAside(t, tg, SetAsideItem(k, "acme", "xero", "d2", 1))
	}

	// A later Write of the key clears it, in every kind; the others stay.
	var recs []model.Record
	for _, k := range kinds {
		recs = append(recs, Record(k, "acme", "xero", "d1", 3))
	}
	mustWrite(t, tg, recs, sinks.WriteResult{Upserted: len(recs)})
	ExpectStored(t, tg, recs...)
	for _, k := range kinds {
		ExpectNotSetAside(t, tg, keyOf(SetAsideItem(k, "acme", "xero", "d1", 0)))
		ExpectSetAside(t, tg, SetAsideItem(k, "acme", "xero", "d2", 1))
	}
	ExpectSetAside(t, tg, unknownTime)

	// A record of the same id in another kind clears nothing.
	mustWrite(t, tg, []model.Record{Record(model.KindCustomer, "acme", "xero", "d2", 1)}, sinks.WriteResult{Upserted: 1})
	for _, k := range kinds {
		ExpectSetAside(t, tg, SetAsideItem(k, "acme", "xero", "d2", 1))
	}

	// Set aside after it was stored (the next version cannot be mapped),
	// then stored again: cleared again.
	mustSetAside(t, tg, SetAsideItem(model.KindInvoice, "acme", "xero", "d1", 4))
	ExpectSetAside(t, tg, SetAsideItem(model.KindInvoice, "acme", "xero", "d1", 4))
	mustWrite(t, tg, []model.Record{Record(model.KindInvoice, "acme", "xero", "d1", 5)}, sinks.WriteResult{Upserted: 1})
	ExpectNotSetAside(t, tg, keyOf(SetAsideItem(model.KindInvoice, "acme", "xero", "d1", 0)))

	// The same key twice in one call: the last wins.
	a, b := SetAsideItem(model.KindShipment, "acme", "xero", "d9", 1), SetAsideItem(model.KindShipment, "acme", "xero", "d9", 2)
	mustSetAside(t, tg, a, b)
	ExpectSetAside(t, tg, b)
}

func testSetAsideCompaniesApart(t *testing.T, h Harness) {
	tg := h.Open(t)
	acme := SetAsideItem(model.KindInvoice, "acme", "xero", "same-id", 1)
	globex := SetAsideItem(model.KindInvoice, "globex", "xero", "same-id", 2)
	otherVendor := SetAsideItem(model.KindInvoice, "acme", "katana", "same-id", 3)
	mustSetAside(t, tg, acme, globex, otherVendor)
	ExpectSetAside(t, tg, acme, globex, otherVendor)
	// acme's record clears acme's entry only.
	mustWrite(t, tg, []model.Record{Record(model.KindInvoice, "acme", "xero", "same-id", 1)}, sinks.WriteResult{Upserted: 1})
	ExpectNotSetAside(t, tg, acme.Key())
	ExpectSetAside(t, tg, globex, otherVendor)
	// Replacing globex's entry leaves the other vendor's alone.
	globex2 := SetAsideItem(model.KindInvoice, "globex", "xero", "same-id", 4)
	mustSetAside(t, tg, globex2)
	ExpectSetAside(t, tg, globex2, otherVendor)
}

func testFailedBatchKeepsSetAside(t *testing.T, h Harness) {
	poison := h.Poison
	if poison == nil {
		poison = PoisonDecimal
	}
	tg := h.Open(t)
	item := SetAsideItem(model.KindProduct, "acme", "unleashed", "p1", 1)
	mustSetAside(t, tg, item)
	batch := []model.Record{Record(model.KindProduct, "acme", "unleashed", "p1", 2)}
	if _, err := tg.Sink.Write(context.Background(), poison(batch)); err == nil {
		t.Fatalf("Write of a poisoned batch succeeded")
	}
	ExpectSetAside(t, tg, item)
	ExpectAbsent(t, tg, batch...)
}

func testSetAsideCancelled(t *testing.T, h Harness) {
	tg := h.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	item := SetAsideItem(model.KindProduct, "acme", "v", "p1", 1)
	if err := tg.Sink.SetAside(ctx, []model.SetAside{item}); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetAside with a cancelled context = %v, want an error wrapping context.Canceled", err)
	}
	ExpectNotSetAside(t, tg, item.Key())
}

// ExpectSetAside checks that each document is set aside as given (when the
// target can read set-aside documents back).
func ExpectSetAside(t testing.TB, tg Target, want ...model.SetAside) {
	t.Helper()
	if tg.GetSetAside == nil {
		return
	}
	for _, w := range want {
		got, ok, err := tg.GetSetAside(context.Background(), w.Key())
		if err != nil {
			t.Fatalf("GetSetAside %v: %v", w.Key(), err)
		}
		if !ok {
			t.Fatalf("GetSetAside %v: not set aside", w.Key())
		}
		if err := EqualSetAside(got, w); err != nil {
			t.Fatalf("GetSetAside %v: %v", w.Key(), err)
		}
	}
}

// ExpectNotSetAside checks that no document of the given keys is set aside
// (when the target can read set-aside documents back).
func ExpectNotSetAside(t testing.TB, tg Target, keys ...model.Key) {
	t.Helper()
	if tg.GetSetAside == nil {
		return
	}
	for _, k := range keys {
		_, ok, err := tg.GetSetAside(context.Background(), k)
		if err != nil {
			t.Fatalf("GetSetAside %v: %v", k, err)
		}
		if ok {
			t.Fatalf("GetSetAside %v: set aside, want cleared", k)
		}
	}
}

// EqualSetAside compares a stored set-aside document with the one given:
// key, modified time (to the microsecond; zero stays zero), reason, and raw
// document as a JSON value.
func EqualSetAside(got, want model.SetAside) error {
	if got.Key() != want.Key() {
		return fmt.Errorf("key %v, want %v", got.Key(), want.Key())
	}
	g, w := got.ModifiedAt.UTC().Truncate(time.Microsecond), want.ModifiedAt.UTC().Truncate(time.Microsecond)
	if !g.Equal(w) || got.ModifiedAt.IsZero() != want.ModifiedAt.IsZero() {
		return fmt.Errorf("modified %v, want %v", got.ModifiedAt, want.ModifiedAt)
	}
	if got.Reason != want.Reason {
		return fmt.Errorf("reason %q, want %q", got.Reason, want.Reason)
	}
	return jsonEqual("raw", got.Raw, want.Raw)
}

// MemorySetAside is the GetSetAside of an in-memory sink (the reference,
// or the store behind a webhook receiver).
func MemorySetAside(m interface{ SetAsideItems() []model.SetAside }) func(context.Context, model.Key) (model.SetAside, bool, error) {
	return func(_ context.Context, k model.Key) (model.SetAside, bool, error) {
		for _, it := range m.SetAsideItems() {
			if it.Key() == k {
				return it, true, nil
			}
		}
		return model.SetAside{}, false, nil
	}
}
