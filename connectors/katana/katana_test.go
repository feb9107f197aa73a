package katana

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds map[string][]byte
		base  string
		want  connectors.ErrorKind
	}{
		{"ok", map[string][]byte{"apiKey": []byte("k")}, "", ""},
		{"ok with base URL", map[string][]byte{"apiKey": []byte("k")}, "http://127.0.0.1:9/v1", ""},
		{"no api key", map[string][]byte{}, "", connectors.KindSecretKeyMissing},
		{"empty api key", map[string][]byte{"apiKey": {}}, "", connectors.KindSecretKeyMissing},
		{"relative base URL", map[string][]byte{"apiKey": []byte("k")}, "api.katanamrp.com/v1", connectors.KindInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(context.Background(), connectors.Config{Type: Type, BaseURL: tc.base, Credentials: tc.creds})
			if got := connectors.KindOf(err); got != tc.want {
				t.Fatalf("error kind %q (%v), want %q", got, err, tc.want)
			}
			if err == nil && len(c.Entities()) != len(entities) {
				t.Fatalf("entities: %v", c.Entities())
			}
			if err != nil && strings.Contains(err.Error(), "k\"") {
				t.Fatalf("the error leaks the key: %v", err)
			}
		})
	}
}

// TestImportSpendsTheFewestCalls checks that a full import costs one call
// per page of 250 of each list (Katana's 60 calls a minute make every call
// count) and is never refused for the rate limit. The one scenario suite
// checks that it lands every record.
func TestImportSpendsTheFewestCalls(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if want := minCalls(h.sim); res.Calls != int64(want) {
		t.Errorf("import took %d calls, the page size allows %d", res.Calls, want)
	}
	if res.Calls != h.sim.Stats().Requests.Load() {
		t.Errorf("the engine counted %d calls, the simulator %d", res.Calls, h.sim.Stats().Requests.Load())
	}
	if n := h.sim.Stats().Throttled.Load(); n != 0 {
		t.Errorf("%d requests refused for the rate limit; the connector must keep to it", n)
	}
}

// canon is the canonical text of a dataset decimal.
func canon(s string) string {
	d, err := vendorjson.Decimal(json.Number(s))
	if err != nil {
		panic(err)
	}
	return string(d)
}

// minCalls is the fewest calls Katana's page size allows for a full import
// of the simulator's data: one per page of 250 of each list, at least one per
// list.
func minCalls(s *sim.Server) int {
	pages := func(n int) int { return max(1, (n+PageSize-1)/PageSize) }
	var n int
	rules := s.Expected()[model.KindPriceRule]
	s.Dataset().View(func(d *simkit.Dataset) {
		live := 0
		lists := map[string]bool{}
		for _, p := range d.Products {
			if !p.Deleted {
				live++
				for _, sp := range p.SpecialPrices {
					lists[sp.CustomerID] = true
				}
			}
		}
		n = pages(len(d.TaxRates)) + pages(len(d.Warehouses)) + pages(len(d.Customers)) +
			pages(len(d.Products)) + pages(len(d.Suppliers)) +
			pages((live+len(d.Suppliers))*len(d.Warehouses)) +
			pages(len(lists)) + pages(len(lists)) + pages(rules) +
			pages(len(d.Orders))
	})
	return n
}

// TestIncrementalReadsOnlyChanges changes a few records after a full import
// and checks the next run reads only those from the incremental lists (one
// call each), while the lists without an updated_at filter are re-read.
func TestIncrementalReadsOnlyChanges(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	d := h.sim.Dataset()
	products := map[string]bool{}
	for _, id := range d.TouchProducts(5) {
		products[id] = true
	}
	customers := map[string]bool{}
	for _, id := range d.TouchCustomers(3) {
		customers[id] = true
	}
	orders := map[string]bool{}
	for _, id := range d.TouchOrders(2) {
		orders[id] = true
	}
	added := d.AddProduct()
	products[added.ID] = true
	h.sim.Stats().Reset()

	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	// The customers stream carries the customer and its contact person.
	for kind, want := range map[model.Kind]int{model.KindProduct: len(products), model.KindCustomer: 2 * len(customers), model.KindSalesOrder: len(orders),
		model.KindTaxRate: 0, model.KindWarehouse: 0} {
		if got := res.Records[kind]; got != int64(want) {
			t.Errorf("%s: read %d records, want the %d changed", kind, got, want)
		}
	}
	byPath := h.sim.Stats().ByPath()
	for _, p := range []string{"/products", "/materials", "/customers", "/sales_orders", "/tax_rates", "/locations"} {
		if n := byPath[sim.BasePath+p]; n != 1 {
			t.Errorf("%s: %d calls, want 1", p, n)
		}
	}
	if byPath[sim.BasePath+"/inventory"] < 2 {
		t.Errorf("inventory has no updated_at filter and must be re-read in full; got %d calls", byPath[sim.BasePath+"/inventory"])
	}
	r, ok := h.get(model.KindProduct, strconv.Itoa(sim.VariantID(added.Seq)))
	if !ok || r.Data.(*model.Product).SKU != added.SKU {
		t.Fatalf("the added product did not arrive: %+v", r)
	}
	if res.Full {
		t.Error("the second run reports itself as full")
	}
}

// TestDeletionsArrive checks include_deleted: a product deleted in Katana
// arrives with its deleted flag on the next incremental run.
func TestDeletionsArrive(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	var victim simkit.Product
	h.sim.Dataset().View(func(d *simkit.Dataset) { victim = *d.Products[3] })
	if victim.Deleted || !h.sim.Dataset().DeleteProduct(victim.ID) {
		t.Fatal("could not delete a live product")
	}
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	r, ok := h.get(model.KindProduct, strconv.Itoa(sim.VariantID(victim.Seq)))
	if !ok || !r.Deleted {
		t.Fatalf("the deleted product is not marked deleted: %+v", r)
	}
}

// TestAuthFailure checks Katana's message for a refused key: it names the
// Secret key to fix and never the key itself, and a 401 is not retried (the
// scenario suite checks that nothing is written).
func TestAuthFailure(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	h.conn = h.connector(t, map[string]string{"apiKey": "not-the-key"})
	res, err := h.run(context.Background())
	if connectors.KindOf(err) != connectors.KindAuthenticationFailed {
		t.Fatalf("error %v (kind %q), want AuthenticationFailed", err, connectors.KindOf(err))
	}
	if !strings.Contains(err.Error(), "apiKey") || strings.Contains(err.Error(), "not-the-key") {
		t.Errorf("the message must name the Secret key and never the key itself: %v", err)
	}
	if n := h.sim.Stats().Requests.Load(); n != 1 {
		t.Errorf("%d requests; a refused key must not be retried", n)
	}
	if res.Upserted != 0 || h.sink.Len() != 0 {
		t.Errorf("records were written: %d", h.sink.Len())
	}
}
