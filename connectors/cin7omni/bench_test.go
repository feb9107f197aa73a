package cin7omni_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// benchScale compresses Omni's minute to 4 real seconds: the 482 calls the
// limits spread over 8 minutes take about 33 s, and the guards the client
// keeps against network jitter (see cin7omni.go) stay longer than the
// scheduling delays of a loaded machine.
const benchScale = 15

// BenchmarkImport is the initial import of 30,000 products (one option
// each, with their special prices) and their stock in 3 branches against
// the simulator enforcing 3 calls a second, 60 a minute and 5,000 a day.
func BenchmarkImport(b *testing.B) {
	const products, customers = 30000, 1000
	for i := 0; i < b.N; i++ {
		s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 1, Products: products, Customers: customers, Warehouses: 3, SpecialPricesPerProduct: 1},
			TimeScale: benchScale})
		srv := httptest.NewServer(s)
		secret := map[string][]byte{}
		for k, v := range s.Credentials() {
			secret[k] = []byte(v)
		}
		conn, err := cin7omni.NewWithOptions(context.Background(), connectors.Config{Type: cin7omni.Type, CompanyID: "bench", BaseURL: srv.URL + "/api/",
			Credentials: secret}, cin7omni.Options{TimeScale: benchScale, Registry: httpapi.NewRegistry(nil)})
		if err != nil {
			b.Fatal(err)
		}
		sink := memory.New()
		start := s.Now()
		res, err := engine.Execute(context.Background(), engine.Run{Connector: conn, Sink: sink, Entities: []model.Kind{model.KindProduct, model.KindStockLevel}})
		elapsed := s.Now().Sub(start)
		srv.Close()
		if err != nil {
			b.Fatal(err)
		}
		want := s.Expected()
		got := map[model.Kind]int{}
		for _, r := range sink.Records() {
			got[r.Kind]++
		}
		for _, k := range []model.Kind{model.KindProduct, model.KindPriceRule, model.KindStockLevel} {
			if got[k] != want[k] {
				b.Fatalf("%s: imported %d, want %d", k, got[k], want[k])
			}
		}
		// Omni answers bare arrays without a count: a list ends at its
		// first short page, so a list of n records takes n/250+1 calls.
		pages := func(n int) int { return n/cin7omni.MaxRows + 1 }
		minCalls := pages(want[model.KindProduct]) + pages(want[model.KindStockLevel])
		// At most 60 calls a minute: minCalls span floor((minCalls-1)/60)
		// whole minutes from the first call to the last.
		forced := time.Duration((minCalls-1)/cin7omni.PerMinute) * time.Minute
		fmt.Printf("BENCH cin7omni_import_calls %d calls\n", s.Stats().Requests.Load())
		fmt.Printf("BENCH cin7omni_import_min_calls %d calls\n", minCalls)
		fmt.Printf("BENCH cin7omni_rate_bound_ratio %.3f\n", forced.Seconds()/elapsed.Seconds())
		fmt.Printf("BENCH cin7omni_import_throttled %d requests\n", s.Stats().Throttled.Load())
		b.ReportMetric(float64(res.Calls), "calls")
		b.ReportMetric(elapsed.Seconds(), "sim-s")
	}
}

// BenchmarkTorture is the suite's torture import (20,000 products, edits on
// every page, five crashes) at the production page size, against the
// simulator's limits on the suite's fake clock.
func BenchmarkTorture(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := connectortest.Torture(b, harness{rows: cin7omni.MaxRows}, connectortest.TortureOptions{})
		connectortest.PrintBench("cin7omni", r)
	}
}

// BenchmarkReconcile is one reconciliation of 30,000 products (stock in 3
// branches, a special price each), 1,000 customers and 2,000 orders after a
// few hard deletes and some drift in the CRM (connectortest.ReconcileBench),
// at the page of 250, the limits' waits on the fake clock. Omni has no
// filter that takes many ids (its where clause is documented with AND
// only), so the minimum counts one request a document repaired, two a
// product option (its product is found through /v1/ProductOptions first;
// see ids.go). The share is of Omni's 5,000 calls a day.
func BenchmarkReconcile(b *testing.B) {
	readCost := func(e connectortest.ReconcileEntityCost, ids []string) int {
		if e.Entity == model.KindProduct {
			return 2 * len(ids)
		}
		return len(ids)
	}
	for i := 0; i < b.N; i++ {
		r := connectortest.ReconcileBench(b, harness{rows: cin7omni.MaxRows}, connectortest.ReconcileBenchOptions{ReadCost: readCost})
		if i == b.N-1 {
			connectortest.PrintReconcileBench(cin7omni.Type, r, connectortest.Quota{Daily: 5000})
		}
	}
}
