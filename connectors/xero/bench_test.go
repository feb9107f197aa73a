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
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// benchTimeScale compresses Xero's minute sixty-fold (and its token
// lifetimes with it).
const benchTimeScale = 60

// BenchmarkImport is a full initial import of 30,000 items (stock of 3
// warehouses summed into Xero's one quantity on hand, sales and purchase
// prices; Xero has no special prices) with 1,000 customers and 2,000 orders'
// worth of invoices, against the simulator enforcing Xero's limits (60 a
// minute, 5,000 a day, 5 in flight per organisation; 10,000 a minute per
// app) on a compressed clock.
//
// Xero does not page Items: all 30,000 come in one call, so the import needs
// 8 API calls and the minute limit never binds. The rate-bound ratio, the
// time the limit forces for the minimum calls over the time taken, is then
// 0: the import is bound by the size of the Items answer, not by the limit.
func BenchmarkImport(b *testing.B) {
	ds := simkit.Options{Seed: 7, Products: 30000, Customers: 1000, Orders: 2000, Warehouses: 3, SpecialPricesPerProduct: 1}
	data := simkit.NewDataset(ds)
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
			// With the ratio 0 by construction, the wall time is the figure
			// that says how long the import takes (as for Unleashed).
			fmt.Printf("BENCH xero_import_seconds %.2f s\n", elapsed.Seconds())
			fmt.Printf("BENCH xero_import_throttled %d requests\n", s.Stats().Throttled.Load())
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
