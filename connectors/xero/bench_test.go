package xero

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// benchTimeScale compresses Xero's minute (and its token lifetimes):
// enough that the import takes seconds, little enough that a minute's 60
// pages are served well within a compressed minute, so that the limit, not
// the work, sets the pace.
const benchTimeScale = 4

// benchDataset is the import benchmark's organisation: 30,000 items (stock
// of 3 warehouses summed into Xero's one quantity on hand; Xero has no
// special prices), 20,000 customers and 130,000 orders' worth of documents
// (65,000 sales invoices, 32,500 supplier bills, 6,500 credit notes).
// Contacts, invoices and credit notes come 1,000 a page, so the import
// needs about 130 calls: more than two minutes of Xero's 60 a minute.
var benchDataset = simkit.Options{Seed: 7, Products: 30000, Customers: 20000, Orders: 130000, Warehouses: 3, SpecialPricesPerProduct: 1}

// BenchmarkImport is a full initial import of benchDataset against the
// simulator enforcing Xero's limits (60 a minute, 5,000 a day, 5 in flight
// per organisation; 10,000 a minute per app) on a compressed clock. The
// rate-bound ratio is the time the minute limit forces for the fewest calls
// the page sizes allow over the (simulated) time the import took.
func BenchmarkImport(b *testing.B) {
	data := simkit.NewDataset(benchDataset)
	for i := 0; i < b.N; i++ {
		s := sim.New(sim.Options{Data: data, TimeScale: benchTimeScale})
		srv := httptest.NewServer(s)
		creds := s.Credentials()
		store := NewMemoryCredentialStore(fmt.Sprintf("bench/xero-%d", i), creds)
		conn, err := NewWithOptions(context.Background(), connectors.Config{Type: Type, CompanyID: "bench", BaseURL: srv.URL + sim.APIPath,
			Credentials: store.Data(), CredentialStore: store, HTTPClient: srv.Client(), Log: logr.Discard()},
			Options{TimeScale: benchTimeScale, Registry: httpapi.NewRegistry(nil), tokens: newTokenCache()})
		if err != nil {
			b.Fatal(err)
		}
		sink := memory.New()
		start := time.Now()
		res, err := engine.Execute(context.Background(), engine.Run{Connector: conn, Sink: sink})
		elapsed := time.Since(start)
		srv.Close()
		if err != nil {
			b.Fatalf("import: %v", err)
		}
		got := map[model.Kind]int{}
		for _, r := range sink.Records() {
			got[r.Kind]++
		}
		for k, n := range s.Expected() {
			if got[k] != n {
				b.Fatalf("%s: imported %d, want %d", k, got[k], n)
			}
		}
		var api int64
		for p, n := range s.Stats().ByPath() {
			if strings.HasPrefix(p, sim.APIPath) {
				api += n
			}
		}
		minimum := minCalls(s)
		forced := forcedTime(minimum, 60, time.Minute)
		simulated := time.Duration(float64(elapsed) * benchTimeScale)
		b.Logf("%d records in %v real (%v simulated); %d API calls (+%d identity calls: token refresh); the minute limit forces %v for %d calls",
			sink.Len(), elapsed.Round(time.Millisecond), simulated.Round(time.Second), api, res.Calls-api, forced, minimum)
		if i == b.N-1 {
			fmt.Printf("BENCH xero_import_calls %d calls\n", api)
			fmt.Printf("BENCH xero_import_min_calls %d calls\n", minimum)
			fmt.Printf("BENCH xero_rate_bound_ratio %.3f\n", forced.Seconds()/simulated.Seconds())
			fmt.Printf("BENCH xero_import_seconds %.2f s\n", elapsed.Seconds())
			fmt.Printf("BENCH xero_import_throttled %d requests\n", s.Stats().Throttled.Load())
		}
	}
}

// BenchmarkTorture is the scenario suite's torture import against the
// simulator, through the scenario harness (pages of 100 for the paged
// lists): 20,000 items, 10,000 customers and 20,000 orders' worth of
// invoices, edited and added to on every page read, the import killed five
// times and resumed by a restarted manager, then one incremental sync. The
// paged lists, where Xero's page-numbered order lost records, are what
// the edits move. It prints the records lost and stale (both must be 0)
// and the calls beyond a clean import. The rate limit's waits run on the
// fake clock.
func BenchmarkTorture(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := connectortest.Torture(b, xeroHarness{}, connectortest.TortureOptions{Customers: 10000, Orders: 20000})
		if i == b.N-1 {
			connectortest.PrintBench(Type, r)
		}
	}
}

// BenchmarkReconcile is one reconciliation of 30,000 items (Xero has no
// special prices), 1,000 customers and 2,000 orders' worth of invoices and
// credit notes after a few hard deletes and some drift in the CRM
// (connectortest.ReconcileBench), at Xero's page of 1,000 in its summary
// form, the limits' waits on the fake clock. Items are read in full on
// every sync, so only contacts, invoices and credit notes are listed. The
// minimum counts one IDs-filter request per 50 contacts or invoices and one
// GET a credit note (Xero's only way to choose them; see reconcile.go).
// The share is of Xero's 5,000 calls a day per organisation.
func BenchmarkReconcile(b *testing.B) {
	readCost := func(e connectortest.ReconcileEntityCost, ids []string) int {
		if e.Entity == model.KindCreditNote {
			return len(ids)
		}
		return (len(ids) + e.MaxDocsPerRead - 1) / e.MaxDocsPerRead
	}
	// The customers' listing pages the whole Contacts list, suppliers
	// included (Xero marks a contact a customer or supplier only once it
	// has a document of that kind, so no filter narrows it safely), and
	// lists the customers among them.
	h := &reconcileHarness{}
	listCost := func(e connectortest.ReconcileEntityCost) int {
		n := int(e.Listed)
		if e.Entity == model.KindCustomer {
			h.data.View(func(d *simkit.Dataset) { n = len(d.Customers) + len(d.Suppliers) })
		}
		return max(1, (n+e.PageSize-1)/e.PageSize) + e.ExtraCalls
	}
	for i := 0; i < b.N; i++ {
		r := connectortest.ReconcileBench(b, h, connectortest.ReconcileBenchOptions{ReadCost: readCost, ListCost: listCost})
		if i == b.N-1 {
			connectortest.PrintReconcileBench(Type, r, connectortest.Quota{Daily: 5000})
		}
	}
}

// reconcileHarness is xeroHarness at the production page size (1,000):
// the simulator on the suite's fake clock, one credentials Secret, a fresh
// token cache per connector. data is the last dataset it started.
type reconcileHarness struct {
	xeroHarness
	data *simkit.Dataset
}

func (h *reconcileHarness) Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *connectortest.Env {
	t.Helper()
	s := sim.New(sim.Options{Dataset: ds, Now: clock.Now})
	h.data = s.Dataset()
	srv := connectortest.Serve(t, s)
	store := NewMemoryCredentialStore("bench/xero-reconcile-"+t.Name(), s.Credentials())
	env := &connectortest.Env{
		Base:     &s.Base,
		Data:     s.Dataset(),
		Expected: func() []connectortest.Want { return expected(s) },
		Caps:     connectortest.Caps{ModifiedPrecision: time.Second, MinuteLimit: 60, PageSize: PageSize, Throttle: 429},
	}
	env.Connect = func(t testing.TB, reg *httpapi.Registry) connectors.Connector {
		t.Helper()
		c, err := NewWithOptions(context.Background(), connectors.Config{Type: Type, CompanyID: connectortest.Company, BaseURL: srv.URL + sim.APIPath,
			Credentials: store.Data(), CredentialStore: store, HTTPClient: srv.Client(), Log: logr.Discard()},
			Options{Clock: clock, Registry: reg, tokens: newTokenCache()})
		if err != nil {
			t.Fatalf("building the Xero connector: %v", err)
		}
		return c
	}
	return env
}

// forcedTime is the time a limit of limit calls per window forces on n calls
// sent as early as it allows: every full window after the first.
func forcedTime(n, limit int, window time.Duration) time.Duration {
	if n <= limit {
		return 0
	}
	return time.Duration(math.Ceil(float64(n)/float64(limit))-1) * window
}
