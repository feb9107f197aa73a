package unleashed_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// BenchmarkImport is the initial import of 30,000 products, their stock in
// 3 warehouses and their 30,000 customer prices. Unleashed meters a monthly
// quota, not a rate, so the run goes as fast as the simulator answers: it
// reports calls and wall time.
func BenchmarkImport(b *testing.B) {
	const products, customers = 30000, 1000
	for i := 0; i < b.N; i++ {
		s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 1, Products: products, Customers: customers, Warehouses: 3, SpecialPricesPerProduct: 1},
			MonthlyQuota: 15000})
		srv := httptest.NewServer(s)
		secret := map[string][]byte{}
		for k, v := range s.Credentials() {
			secret[k] = []byte(v)
		}
		conn, err := unleashed.NewWithOptions(context.Background(), connectors.Config{Type: unleashed.Type, CompanyID: "bench", BaseURL: srv.URL,
			Credentials: secret}, unleashed.Options{Registry: httpapi.NewRegistry(nil)})
		if err != nil {
			b.Fatal(err)
		}
		sink := memory.New()
		start := time.Now()
		res, err := engine.Execute(context.Background(), engine.Run{Connector: conn, Sink: sink,
			Entities: []model.Kind{model.KindProduct, model.KindStockLevel, model.KindPriceRule}})
		wall := time.Since(start)
		srv.Close()
		if err != nil {
			b.Fatal(err)
		}
		want := s.Expected()
		got := map[model.Kind]int{}
		for _, r := range sink.Records() {
			got[r.Kind]++
		}
		for _, k := range []model.Kind{model.KindProduct, model.KindStockLevel, model.KindPriceRule} {
			if got[k] != want[k] {
				b.Fatalf("%s: imported %d, want %d", k, got[k], want[k])
			}
		}
		pages := func(n int) int { return max(1, (n+unleashed.MaxPageSize-1)/unleashed.MaxPageSize) }
		// Products, one call to list the warehouses, stock per warehouse,
		// customer prices.
		minCalls := pages(want[model.KindProduct]) + 1 + 3*pages(want[model.KindStockLevel]/3) + pages(want[model.KindPriceRule])
		fmt.Printf("BENCH unleashed_import_calls %d calls\n", s.Stats().Requests.Load())
		fmt.Printf("BENCH unleashed_import_min_calls %d calls\n", minCalls)
		fmt.Printf("BENCH unleashed_import_seconds %.2f s\n", wall.Seconds())
		fmt.Printf("BENCH unleashed_import_throttled %d requests\n", s.Stats().Throttled.Load())
		b.ReportMetric(float64(res.Calls), "calls")
	}
}

// BenchmarkTorture is the suite's torture import (20,000 products, edits on
// every page, five crashes) at the production page size.
func BenchmarkTorture(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r := connectortest.Torture(b, harness{pageSize: unleashed.MaxPageSize}, connectortest.TortureOptions{})
		connectortest.PrintBench("unleashed", r)
	}
}

// BenchmarkReconcile is one reconciliation of 30,000 products (stock in 3
// warehouses, a customer price each), 1,000 customers and 2,000 orders
// after a few hard deletes and some drift in the CRM
// (connectortest.ReconcileBench), at the page of 1,000. Unleashed reads
// one document per request (GET /{Endpoint}/{guid}), a product's stock in
// every warehouse per request, and has no read of a price row by id (the
// DocReader reads the whole ProductPrices list): the minimum counts those
// (see reconcile.go), and the stock listing warehouse by warehouse. Unleashed meters a calendar month with a
// plan-dependent quota, so the cost is printed per month.
func BenchmarkReconcile(b *testing.B) {
	readCost := func(e connectortest.ReconcileEntityCost, ids []string) int {
		switch e.Entity {
		case model.KindPriceRule:
			return max(1, (int(e.Listed)+e.PageSize-1)/e.PageSize)
		case model.KindStockLevel:
			products := map[string]bool{}
			for _, id := range ids {
				p, _, _ := strings.Cut(id, "/")
				products[p] = true
			}
			return len(products)
		}
		return len(ids)
	}
	// The stock listing is the warehouse list and each warehouse's stock
	// pages; ExtraCalls bounds them (a partial last page a warehouse), and
	// the dataset stocks every product in each of its 3 warehouses.
	listCost := func(e connectortest.ReconcileEntityCost) int {
		pages := max(1, (int(e.Listed)+e.PageSize-1)/e.PageSize)
		if e.Entity == model.KindStockLevel {
			const warehouses = 3
			perWarehouse := (int(e.Listed) + warehouses - 1) / warehouses
			return 1 + warehouses*max(1, (perWarehouse+e.PageSize-1)/e.PageSize)
		}
		return pages + e.ExtraCalls
	}
	for i := 0; i < b.N; i++ {
		r := connectortest.ReconcileBench(b, harness{pageSize: unleashed.MaxPageSize},
			connectortest.ReconcileBenchOptions{ReadCost: readCost, ListCost: listCost})
		if i == b.N-1 {
			connectortest.PrintReconcileBench(unleashed.Type, r, connectortest.Quota{Monthly: true})
		}
	}
}
