package katana

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// benchTimeScale compresses Katana's minute thirty-fold: the ten minutes the
// rate limit forces for a 30,000-product import take about twenty seconds,
// and each minute window leaves two real seconds for the pages' processing
// even on a busy machine.
const benchTimeScale = 30

// BenchmarkImport is a full initial import of 30,000 products (stock in 3
// locations, a customer-specific price each) against the simulator enforcing
// Katana's 60 requests per 60 seconds on a compressed clock. It prints the
// calls made, the fewest calls the page size allows, the ratio of the time
// the rate limit forces for those calls to the time taken, and the requests
// the simulator refused for the limit.
func BenchmarkImport(b *testing.B) {
	ds := simkit.Options{Seed: 7, Products: 30000, Customers: 1000, Orders: 2000, Warehouses: 3, SpecialPricesPerProduct: 1}
	data := simkit.NewDataset(ds)
	for i := 0; i < b.N; i++ {
		s := sim.New(sim.Options{Data: data, TimeScale: benchTimeScale})
		srv := httptest.NewServer(s)
		creds := map[string][]byte{}
		for k, v := range s.Credentials() {
			creds[k] = []byte(v)
		}
		conn, err := NewWithOptions(context.Background(), connectors.Config{Type: Type, CompanyID: "bench", BaseURL: srv.URL + sim.BasePath,
			Credentials: creds, HTTPClient: srv.Client(), Log: logr.Discard()}, Options{TimeScale: benchTimeScale, Registry: httpapi.NewRegistry(nil)})
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
		want := s.Expected()
		got := map[model.Kind]int{}
		for _, r := range sink.Records() {
			got[r.Kind]++
		}
		for k, n := range want {
			if got[k] != n {
				b.Fatalf("%s: imported %d, want %d", k, got[k], n)
			}
		}
		minimum := minCalls(s)
		forced := forcedTime(minimum, 60, time.Minute)
		simulated := time.Duration(float64(elapsed) * benchTimeScale)
		b.Logf("%d records in %v real (%v simulated); the limit forces %v for %d calls", sink.Len(), elapsed.Round(time.Millisecond), simulated.Round(time.Second), forced, minimum)
		if i == b.N-1 {
			fmt.Printf("BENCH katana_import_calls %d calls\n", res.Calls)
			fmt.Printf("BENCH katana_import_min_calls %d calls\n", minimum)
			fmt.Printf("BENCH katana_rate_bound_ratio %.3f\n", forced.Seconds()/simulated.Seconds())
			fmt.Printf("BENCH katana_import_throttled %d requests\n", s.Stats().Throttled.Load())
		}
	}
}

// BenchmarkTorture is the scenario suite's torture import against the
// simulator: 20,000 products (stock in 3 locations, a price per product),
// edited and added to on every page read, the import killed five times and
// resumed by a restarted manager, then one incremental sync. It prints the
// records lost and stale (both must be 0) and the calls beyond a clean
// import. The rate limit's waits run on the fake clock.
func BenchmarkTorture(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := connectortest.Torture(b, harness{}, connectortest.TortureOptions{})
		if i == b.N-1 {
			connectortest.PrintBench(Type, r)
		}
	}
}

// BenchmarkReconcile is one reconciliation of 30,000 products (stock in 3
// locations, a customer price each), 1,000 customers and 2,000 orders after
// a few hard deletes and some drift in the CRM (connectortest.ReconcileBench),
// at Katana's page of 250, the rate limit's waits on the fake clock. Katana
// documents no daily quota, so no share is printed.
func BenchmarkReconcile(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := connectortest.ReconcileBench(b, harness{}, connectortest.ReconcileBenchOptions{})
		if i == b.N-1 {
			connectortest.PrintReconcileBench(Type, r, connectortest.Quota{})
		}
	}
}

// forcedTime is the time a limit of limit calls per window forces on n calls
// sent as early as it allows: every full window after the first.
func forcedTime(n, limit int, window time.Duration) time.Duration {
	if n <= limit {
		return 0
	}
	return time.Duration(math.Ceil(float64(n)/float64(limit))-1) * window
}
