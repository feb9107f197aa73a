package connectortest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// TortureOptions size a Torture run; zero fields take the defaults.
type TortureOptions struct {
	// Seed seeds the dataset (default 99).
	Seed uint64
	// Products, Customers and Orders size the dataset (defaults 20,000,
	// 2,000 and 2,000).
	Products, Customers, Orders int
	// Crashes is the number of times the import is killed, at pages spread
	// evenly over a clean import's pages (default 5).
	Crashes int
	// Step is how far the fake clock moves per page read, the time a page
	// takes (default 200ms).
	Step time.Duration
}

func (o *TortureOptions) defaults() {
	if o.Seed == 0 {
		o.Seed = 99
	}
	if o.Products <= 0 {
		o.Products = 20000
	}
	if o.Customers <= 0 {
		o.Customers = 2000
	}
	if o.Orders <= 0 {
		o.Orders = 2000
	}
	if o.Crashes <= 0 {
		o.Crashes = 5
	}
	if o.Step <= 0 {
		o.Step = 200 * time.Millisecond
	}
}

// TortureResult is what a Torture run measured.
type TortureResult struct {
	// Records is the number of records the ERP held at the end.
	Records int
	// Lost and Stale count records the CRM lacks or holds in an older
	// version after the import and one more incremental sync (both must
	// be 0); LostIDs and StaleIDs name a few.
	Lost, Stale        int
	LostIDs, StaleIDs  []string
	Calls, CleanCalls  int64
	ExtraCallsPct      float64
	Throttled          int64
	Runs, Crashes      int
	Pages, CleanPages  int
	Elapsed            time.Duration
	ProductsAdded      int
	EditsDuringImports int
}

// Torture is the long, measured scenario for `make bench`: an import of a
// large dataset (20,000 products by default) during which every page read
// edits the dataset (an oldest product moved to the end of a modified
// order, a product, a customer and an order touched, a product added),
// killed Crashes times at pages spread over the import and resumed each
// time by a restarted manager (a fresh connector and limiter registry
// sharing one quota store) from the state the killed run returned, then
// one more incremental sync. It reports the records lost and stale, the
// requests spent against a clean import of an identical fresh dataset, and
// the requests the simulator throttled. It fails tb only when a run fails
// for another reason than the kill.
func Torture(tb testing.TB, h Harness, o TortureOptions) TortureResult {
	tb.Helper()
	o.defaults()
	ds := simkit.Options{Seed: o.Seed, Products: o.Products, Customers: o.Customers, Orders: o.Orders}
	began := time.Now()
	var res TortureResult

	clean := newWorld(tb, h, ds)
	cleanPages := newPageLog()
	clean.mustRun("clean import", engine.Run{Connector: &hooked{inner: clean.conn, log: cleanPages}})
	res.CleanCalls = clean.requests()
	res.CleanPages = cleanPages.total()

	w := newWorld(tb, h, ds)
	// Kill points: global page counts spread over a clean import's pages.
	var kills []int
	for i := 1; i <= o.Crashes; i++ {
		kills = append(kills, res.CleanPages*i/(o.Crashes+1))
	}
	pages := 0
	first := w.clock.Now()
	for run := 1; ; run++ {
		if run > o.Crashes+10 {
			tb.Fatalf("torture: the import did not complete in %d runs", run-1)
		}
		if run > 1 {
			w.restart()
		}
		ctx, cancel := context.WithCancel(context.Background())
		conn := &hooked{inner: w.conn,
			before: func(ctx context.Context, _ connectors.PageRequest) error {
				if len(kills) > 0 && pages >= kills[0] {
					kills = kills[1:]
					cancel()
					return ctx.Err()
				}
				return nil
			},
			after: func(_ context.Context, _ connectors.PageRequest, _ *connectors.Page) {
				pages++
				w.clock.Advance(o.Step)
				d := w.env.Data
				d.EditOldest(1)
				d.TouchProducts(1)
				d.TouchCustomers(1)
				d.TouchOrders(1)
				d.AddProduct()
				res.ProductsAdded++
				res.EditsDuringImports += 4
			}}
		_, err := w.exec(ctx, engine.Run{Connector: conn, SkipCompletedSince: first})
		cancel()
		res.Runs = run
		if err == nil {
			break
		}
		if !errors.Is(err, context.Canceled) {
			tb.Fatalf("torture: run %d: %v", run, err)
		}
		res.Crashes++
	}
	res.Calls = w.requests()
	res.Pages = pages
	w.clock.Advance(time.Minute)
	w.mustRun("incremental after the torture import", engine.Run{})

	want := w.env.Expected()
	d := Compare(w.sink, w.vendor, want)
	res.Records = len(want)
	res.Lost, res.Stale, res.LostIDs, res.StaleIDs = d.Lost, d.Stale, d.LostIDs, d.StaleIDs
	if res.CleanCalls > 0 {
		res.ExtraCallsPct = float64(res.Calls-res.CleanCalls) * 100 / float64(res.CleanCalls)
	}
	res.Throttled = w.env.Base.Stats().Throttled.Load()
	res.Elapsed = time.Since(began)
	tb.Logf("torture: %d records, %d lost, %d stale; %d runs (%d crashes), %d requests against a clean import's %d (%.1f%% extra), %d pages (clean %d), %d throttled, %d products added, in %v",
		res.Records, res.Lost, res.Stale, res.Runs, res.Crashes, res.Calls, res.CleanCalls, res.ExtraCallsPct, res.Pages, res.CleanPages, res.Throttled, res.ProductsAdded, res.Elapsed.Round(time.Millisecond))
	if !d.OK() {
		tb.Logf("torture: %s", d)
	}
	return res
}

// PrintBench prints a Torture result as the BENCH lines hack/bench.sh
// collects: <name>_torture_lost, _stale (both must be 0) and
// _extra_calls_pct (target under 10), plus the calls behind the
// percentage and the throttled requests.
func PrintBench(name string, r TortureResult) {
	for _, l := range benchLines(name, r) {
		fmt.Println(l)
	}
}

func benchLines(name string, r TortureResult) []string {
	return []string{
		fmt.Sprintf("BENCH %s_torture_lost %d records", name, r.Lost),
		fmt.Sprintf("BENCH %s_torture_stale %d records", name, r.Stale),
		fmt.Sprintf("BENCH %s_torture_extra_calls_pct %.1f %%", name, r.ExtraCallsPct),
		fmt.Sprintf("BENCH %s_torture_calls %d calls", name, r.Calls),
		fmt.Sprintf("BENCH %s_torture_clean_calls %d calls", name, r.CleanCalls),
		fmt.Sprintf("BENCH %s_torture_throttled %d requests", name, r.Throttled),
	}
}
