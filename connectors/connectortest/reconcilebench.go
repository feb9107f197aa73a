package connectortest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// ReconcileBenchOptions size a ReconcileBench run; zero fields take the
// defaults.
type ReconcileBenchOptions struct {
	// Seed seeds the dataset (default 13).
	Seed uint64
	// Products, Customers and Orders size the dataset (defaults 30,000,
	// 1,000 and 2,000); every product has stock in 3 warehouses and one
	// customer price.
	Products, Customers, Orders int
	// RemoveProducts, RemoveCustomers and RemoveOrders are the hard deletes
	// made in the ERP before the reconciliation (defaults 5, 2 and 3).
	RemoveProducts, RemoveCustomers, RemoveOrders int
	// ReadCost, when set, is the fewest requests the connector's DocReader
	// needs to read the documents ids of entity e (e.Listed and the
	// connector's declarations are filled in): a vendor without a filter
	// that takes many ids needs one request a document, one without any
	// read by id its whole list. Nil counts one request per ReadDocs call
	// of at most MaxDocsPerRead ids.
	ReadCost func(e ReconcileEntityCost, ids []string) int
	// ListCost, when set, is the fewest requests the id listing of e
	// needs where IDListingInfo.ExtraCalls is a bound rather than the
	// count (a listing made of several lists whose sizes the bench knows).
	// Nil counts max(1, ceil(Listed/PageSize)) + ExtraCalls.
	ListCost func(e ReconcileEntityCost) int
}

func (o *ReconcileBenchOptions) defaults() {
	if o.Seed == 0 {
		o.Seed = 13
	}
	if o.Products <= 0 {
		o.Products = 30000
	}
	if o.Customers <= 0 {
		o.Customers = 1000
	}
	if o.Orders <= 0 {
		o.Orders = 2000
	}
	if o.RemoveProducts <= 0 {
		o.RemoveProducts = 5
	}
	if o.RemoveCustomers <= 0 {
		o.RemoveCustomers = 2
	}
	if o.RemoveOrders <= 0 {
		o.RemoveOrders = 3
	}
}

// ReconcilesPerDay is the number of reconciliations a day at default
// settings: spec.reconcile.interval defaults to 24h
// (api/v1alpha1.DefaultReconcileInterval, which this package may not
// import: imports point down).
const ReconcilesPerDay = 1

// DaysPerMonth is the month a monthly quota is planned for: the longest,
// so that the figure holds in every month.
const DaysPerMonth = 31

// ReconcileEntityCost is one entity's share of a reconciliation.
type ReconcileEntityCost struct {
	Entity model.Kind
	// Listed, Missing, Absent, Drifted, Deleted and Repaired are the
	// engine's report (engine.ReconcileReport).
	Listed, Missing, Absent, Drifted, Deleted, Repaired int64
	// Tampered is the number of its records the bench changed in the CRM.
	Tampered int
	// Calls is what the engine counted for the entity.
	Calls int64
	// MinCalls is the fewest the entity needs (see ReconcileBench).
	MinCalls int64
	// Note is the engine's note (why deletions were not applied).
	Note string
	// PageSize, ExtraCalls and MaxDocsPerRead are what the connector
	// declared.
	PageSize, ExtraCalls, MaxDocsPerRead int
}

// ReconcileBenchResult is what a ReconcileBench run measured.
type ReconcileBenchResult struct {
	Vendor string
	// Calls is the number of requests the simulator answered during the
	// reconciliation (what the vendor meters); EngineCalls what the engine
	// counted (they differ only by requests a connector makes outside its
	// pages' counts, such as token refreshes).
	Calls, EngineCalls int64
	// MinCalls is the sum of the entities' MinCalls.
	MinCalls int64
	// ImportCalls is what the initial import cost, for scale.
	ImportCalls int64
	Entities    []ReconcileEntityCost
	// Deleted and Upserted are the reconciliation's totals.
	Deleted, Upserted int64
	// Records is the number of records the ERP held at the end.
	Records int
	// LeftForFullRead counts the records of Caps.ChildrenFullReadOnly
	// kinds the ERP no longer holds that the reconciliation left live (a
	// full resync, run after it and not counted, marks them deleted).
	LeftForFullRead int
	// Reconcile is the real time the reconciliation took; Elapsed the
	// whole run's (import, sync and comparisons included).
	Reconcile, Elapsed time.Duration
}

// OverPct is how far Calls is above MinCalls, in percent.
func (r ReconcileBenchResult) OverPct() float64 {
	if r.MinCalls <= 0 {
		return 0
	}
	return float64(r.Calls-r.MinCalls) * 100 / float64(r.MinCalls)
}

// ReconcileBench measures one reconciliation of a large ERP through h
// (whose connector must use the vendor's production page sizes): a dataset
// of o.Products products (stock in 3 warehouses, one customer price each),
// o.Customers customers and o.Orders orders; a full import into a memory
// sink; hard deletes of a few products, customers and orders in the ERP and
// one incremental sync (the routine sync that finds what entities read in
// full lost; it cannot see hard deletes of incremental entities); then, in
// the CRM, for every incremental entity one live record removed and one set
// back an hour (drift that only a reconciliation repairs); then one
// engine.Reconcile. It fails tb unless the CRM then equals the ERP,
// deletions included (Compare(...).Exact()), the reconciliation deleted
// something and repaired every tampered record. Waits for rate limits run
// on the harness's fake clock, so the run takes the time of its work.
//
// MinCalls counts, for every incremental entity the connector lists
// (connectors.IDLister):
//
//	max(1, ceil(Listed/PageSize)) + ExtraCalls + repair reads of n ids
//
// where Listed is the number of distinct ids the listing held, PageSize
// and ExtraCalls what IDListing declares (a listing made of several lists
// declares their partial last pages as ExtraCalls), n the entity's
// records the bench tampered with in the CRM (the only ids whose CRM
// version differs from the vendor's: the sync before the reconciliation
// wrote every change the ERP made; ids the CRM correctly holds as
// tombstones need no read, although the engine counts listed ones as
// Absent), and the repair reads o.ReadCost(entity, their ids), by default
// ceil(n/MaxDocsPerRead): one request per DocReader call of at most
// MaxDocsPerRead ids (a connector without a DocReader repairs by a window
// read the minimum does not count). It does not count the one more call a
// listing without a total makes when its last page is full (the suite's
// bound allows it), retries, or token refreshes; deletions cost no
// call. o.ListCost replaces the listing's part where ExtraCalls is only a
// bound.
func ReconcileBench(tb testing.TB, h Harness, o ReconcileBenchOptions) ReconcileBenchResult {
	tb.Helper()
	o.defaults()
	began := time.Now()
	w := newWorld(tb, h, simkit.Options{Seed: o.Seed, Products: o.Products, Customers: o.Customers, Orders: o.Orders,
		Warehouses: 3, SpecialPricesPerProduct: 1})
	res := ReconcileBenchResult{Vendor: w.vendor}
	before := w.requests()
	w.run("import", engine.Run{})
	res.ImportCalls = w.requests() - before
	w.requireEqual("after the import")

	d := w.env.Data
	w.clock.Advance(time.Minute)
	removed := d.RemoveProducts(o.Products/2, o.RemoveProducts)
	removed = append(removed, d.RemoveCustomers(o.Customers/2, o.RemoveCustomers)...)
	removed = append(removed, d.RemoveOrders(o.Orders/2, o.RemoveOrders)...)
	if len(removed) == 0 {
		tb.Fatalf("reconcile bench: the dataset removed nothing")
	}
	w.clock.Advance(time.Minute)
	w.run("the sync after the removals", engine.Run{})
	tampered := w.tamper(w.env.Expected())
	var keys []model.Key
	for k, ids := range tampered {
		for _, id := range ids {
			keys = append(keys, model.Key{Company: Company, Vendor: w.vendor, Kind: k, VendorID: id})
		}
	}
	nTampered := len(keys)

	w.clock.Advance(time.Minute)
	before = w.requests()
	t0 := time.Now()
	rr := w.reconcile("reconciliation", engine.Run{})
	res.Reconcile = time.Since(t0)
	res.Calls = w.requests() - before
	res.EngineCalls, res.Deleted, res.Upserted = rr.Calls, rr.Deleted, rr.Upserted
	if len(rr.Held) > 0 {
		tb.Fatalf("reconcile bench: a handful of hard deletes tripped the mass-deletion guard: %+v", rr.Held)
	}
	// The costs first: a failure below shows them.
	res.Entities = w.reconcileCosts(rr.State, tampered, o)
	for _, e := range res.Entities {
		res.MinCalls += e.MinCalls
		tb.Logf("%s %s: listed %d (page %d, extra %d), missing %d, deleted %d, absent %d, drifted %d, tampered %d, repaired %d (%d a read): %d calls, minimum %d%s",
			w.vendor, e.Entity, e.Listed, e.PageSize, e.ExtraCalls, e.Missing, e.Deleted, e.Absent, e.Drifted, e.Tampered, e.Repaired, e.MaxDocsPerRead, e.Calls, e.MinCalls, note(e.Note))
	}
	want := w.env.Expected()
	res.Records = len(want)
	// Children whose removal only a full read sees (Caps.ChildrenFullReadOnly,
	// said in the connector's docs) may stay live after the reconciliation;
	// everything else must be exact now, and they after a full resync.
	fro := w.env.Caps.ChildrenFullReadOnly
	rest := slices.DeleteFunc(slices.Clone(want), func(x Want) bool { return slices.Contains(fro, x.Kind) })
	if diff := Compare(w.sink, w.vendor, rest); !diff.Exact() {
		tb.Fatalf("reconcile bench: after one reconciliation the CRM differs from the ERP, deletions included: %s", diff)
	}
	if len(fro) > 0 {
		only := slices.DeleteFunc(slices.Clone(want), func(x Want) bool { return !slices.Contains(fro, x.Kind) })
		diff := Compare(w.sink, w.vendor, only)
		if !diff.OK() {
			tb.Fatalf("reconcile bench: after one reconciliation the CRM differs from the ERP in %v: %s", fro, diff)
		}
		res.LeftForFullRead = diff.ExtraLive
		if diff.ExtraLive > 0 {
			tb.Logf("%s: %d records of %v removed from the ERP stay live until a full read (the connector's docs say so): %v", w.vendor, diff.ExtraLive, fro, diff.ExtraIDs)
			w.clock.Advance(time.Minute)
			w.run("a full resync for the children only a full read sees", engine.Run{Full: true})
			RequireExact(tb, w.vendor, w.sink, w.env, "reconcile bench: after the full resync")
		}
	}
	if res.Deleted == 0 {
		tb.Fatalf("reconcile bench: the reconciliation deleted nothing, yet %d documents were removed from the ERP", len(removed))
	}
	if res.Upserted < int64(nTampered) {
		tb.Fatalf("reconcile bench: the reconciliation wrote %d records, %d were tampered with", res.Upserted, nTampered)
	}
	for _, k := range keys {
		if got, ok := w.sink.Get(k); !ok || got.Deleted || string(got.Raw) == tamperedRaw {
			tb.Fatalf("reconcile bench: %s/%s was tampered with in the CRM and not repaired", k.Kind, k.VendorID)
		}
	}
	res.Elapsed = time.Since(began)
	tb.Logf("%s reconciliation: %d records, %d requests (engine counted %d), minimum %d (%+.1f%%), %d deleted, %d written; import %d requests; reconciliation %v, whole run %v",
		w.vendor, res.Records, res.Calls, res.EngineCalls, res.MinCalls, res.OverPct(), res.Deleted, res.Upserted, res.ImportCalls,
		res.Reconcile.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond))
	return res
}

// tamperedRaw is the content tamper gives a record it sets back.
const tamperedRaw = `{"edited":"behind the operator's back"}`

// tamper edits the CRM behind the operator's back: for every incremental
// entity, of the live records the ERP still holds live (want), the first
// (by id) is removed and the second set back an hour with other content.
// It returns the ids of the records it changed, by kind.
func (w *world) tamper(want []Want) map[model.Kind][]string {
	n := map[model.Kind][]string{}
	inERP := map[model.Key]bool{}
	for _, x := range want {
		if !x.Deleted {
			inERP[model.Key{Company: Company, Vendor: w.vendor, Kind: x.Kind, VendorID: x.VendorID}] = true
		}
	}
	for _, e := range w.conn.Entities() {
		if !e.Incremental {
			continue
		}
		var live []model.Record
		for _, r := range w.sink.Records() {
			if r.Company == Company && r.Vendor == w.vendor && r.Kind == e.Name && !r.Deleted && inERP[r.Key()] {
				live = append(live, r)
			}
		}
		slices.SortFunc(live, func(a, b model.Record) int { return strings.Compare(a.VendorID, b.VendorID) })
		if len(live) > 0 {
			w.sink.Remove(live[0].Key())
			n[e.Name] = append(n[e.Name], live[0].VendorID)
		}
		if len(live) > 1 {
			r := live[1]
			r.ModifiedAt = r.ModifiedAt.Add(-time.Hour)
			r.Raw = []byte(tamperedRaw)
			w.sink.Put(r)
			n[e.Name] = append(n[e.Name], r.VendorID)
		}
	}
	return n
}

// reconcileCosts pairs the engine's per-entity reports with what the
// connector declares, and computes each entity's minimum (see
// ReconcileBench).
func (w *world) reconcileCosts(state []engine.EntityState, tampered map[model.Kind][]string, o ReconcileBenchOptions) []ReconcileEntityCost {
	w.t.Helper()
	lister, ok := w.conn.(connectors.IDLister)
	if !ok {
		w.t.Fatalf("%s: the connector does not list ids", w.vendor)
	}
	reader, _ := w.conn.(connectors.DocReader)
	byName := map[model.Kind]engine.EntityState{}
	for _, s := range state {
		byName[s.Name] = s
	}
	var out []ReconcileEntityCost
	for _, e := range w.conn.Entities() {
		if !e.Incremental {
			continue
		}
		info, ok := lister.IDListing(e.Name)
		if !ok {
			continue
		}
		rep := byName[e.Name].Reconcile
		if rep == nil || rep.Postponed {
			w.t.Fatalf("%s %s: the reconciliation left no report for an entity it can list", w.vendor, e.Name)
		}
		c := ReconcileEntityCost{Entity: e.Name, Listed: rep.Listed, Missing: rep.Missing, Absent: rep.Absent, Drifted: rep.Drifted,
			Deleted: rep.Deleted, Repaired: rep.Repaired, Calls: rep.Calls, Note: rep.Note, PageSize: max(1, info.PageSize), ExtraCalls: info.ExtraCalls,
			Tampered: len(tampered[e.Name])}
		c.MinCalls = max(1, ceilDiv(rep.Listed, int64(c.PageSize))) + int64(info.ExtraCalls)
		if o.ListCost != nil {
			c.MinCalls = int64(o.ListCost(c))
		}
		if ids := tampered[e.Name]; len(ids) > 0 && reader != nil {
			c.MaxDocsPerRead = max(1, reader.MaxDocsPerRead(e.Name))
			if o.ReadCost != nil {
				c.MinCalls += int64(o.ReadCost(c, ids))
			} else {
				c.MinCalls += ceilDiv(int64(len(ids)), int64(c.MaxDocsPerRead))
			}
		}
		out = append(out, c)
	}
	return out
}

func note(s string) string {
	if s == "" {
		return ""
	}
	return "; " + s
}

func ceilDiv(n, d int64) int64 { return (n + d - 1) / d }

// Quota is a vendor's call quota, for the reconciliation's share of it.
type Quota struct {
	// Daily is the calls a day (0: none documented).
	Daily int64
	// Monthly is set where the vendor meters calls by the calendar month
	// with a plan-dependent size (Unleashed): the cost is then printed
	// per month, and as a share only of MonthlyLimit when that is known.
	Monthly      bool
	MonthlyLimit int64
}

// PrintReconcileBench prints a ReconcileBench result as the BENCH lines
// hack/bench.sh collects: <name>_reconcile_calls, _reconcile_min_calls,
// _reconcile_calls_per_day (one reconciliation a day, the default),
// where the vendor has a quota, _reconcile_quota_share_pct (daily) or
// _reconcile_calls_per_month (monthly), and, where children were left for
// a full read, _reconcile_left_for_full_read.
func PrintReconcileBench(name string, r ReconcileBenchResult, q Quota) {
	for _, l := range reconcileBenchLines(name, r, q) {
		fmt.Println(l)
	}
}

func reconcileBenchLines(name string, r ReconcileBenchResult, q Quota) []string {
	perDay := r.Calls * ReconcilesPerDay
	out := []string{
		fmt.Sprintf("BENCH %s_reconcile_calls %d calls", name, r.Calls),
		fmt.Sprintf("BENCH %s_reconcile_min_calls %d calls", name, r.MinCalls),
		fmt.Sprintf("BENCH %s_reconcile_calls_per_day %d calls", name, perDay),
	}
	switch {
	case q.Daily > 0:
		out = append(out, fmt.Sprintf("BENCH %s_reconcile_quota_share_pct %.1f %%", name, float64(perDay)*100/float64(q.Daily)))
	case q.Monthly:
		perMonth := perDay * DaysPerMonth
		out = append(out, fmt.Sprintf("BENCH %s_reconcile_calls_per_month %d calls", name, perMonth))
		if q.MonthlyLimit > 0 {
			out = append(out, fmt.Sprintf("BENCH %s_reconcile_quota_share_pct %.1f %%", name, float64(perMonth)*100/float64(q.MonthlyLimit)))
		}
	}
	if r.LeftForFullRead > 0 {
		out = append(out, fmt.Sprintf("BENCH %s_reconcile_left_for_full_read %d records", name, r.LeftForFullRead))
	}
	return out
}
