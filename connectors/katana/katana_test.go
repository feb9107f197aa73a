package katana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// TestFullImportEqualsDataset reads everything through the engine into a
// memory sink and compares it record for record with the dataset.
func TestFullImportEqualsDataset(t *testing.T) {
	h := newHarness(t, smallDataset(), nil)
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	got, want := h.counts(), h.sim.Expected()
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d records, want %d", k, got[k], want[k])
		}
	}
	if n := h.sim.Stats().Throttled.Load(); n != 0 {
		t.Errorf("%d requests refused for the rate limit; the connector must keep to it", n)
	}
	if res.Calls != h.sim.Stats().Requests.Load() {
		t.Errorf("the engine counted %d calls, the simulator %d", res.Calls, h.sim.Stats().Requests.Load())
	}

	d := h.sim.Dataset()
	d.View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			r, ok := h.get(model.KindProduct, strconv.Itoa(sim.VariantID(p.Seq)))
			if !ok {
				t.Fatalf("product %s missing", p.SKU)
			}
			cp := r.Data.(*model.Product)
			if cp.SKU != p.SKU || cp.Name != p.Name || string(cp.SellPrice) != canon(p.SellPrice) || string(cp.CostPrice) != canon(p.CostPrice) ||
				r.Deleted != p.Deleted || !r.ModifiedAt.Equal(p.Modified) || cp.ParentVendorID != fmt.Sprintf("product/%d", p.Seq) {
				t.Fatalf("product %s: got %+v deleted=%v mod=%v; want %+v", p.SKU, cp, r.Deleted, r.ModifiedAt, p)
			}
			if p.Deleted {
				continue
			}
			for i, w := range d.Warehouses {
				st, ok := h.get(model.KindStockLevel, fmt.Sprintf("%d/%d", sim.VariantID(p.Seq), w.Seq))
				if !ok {
					t.Fatalf("stock of %s in %s missing", p.SKU, w.Code)
				}
				sl := st.Data.(*model.StockLevel)
				if sl.OnHand != p.Stock[i].OnHand || sl.Allocated != p.Stock[i].Allocated || sl.SKU != p.SKU || sl.WarehouseName != w.Name {
					t.Fatalf("stock of %s in %s: %+v, want %+v", p.SKU, w.Code, sl, p.Stock[i])
				}
			}
			for j, sp := range p.SpecialPrices {
				var cust *simkit.Customer
				for _, c := range d.Customers {
					if c.ID == sp.CustomerID {
						cust = c
					}
				}
				id := fmt.Sprintf("%d/%d", p.Seq*16+j+1, cust.Seq)
				pr, ok := h.get(model.KindPriceRule, id)
				if !ok {
					t.Fatalf("special price %d of %s missing (%s)", j, p.SKU, id)
				}
				rule := pr.Data.(*model.PriceRule)
				if string(rule.Price) != canon(sp.Price) || rule.CustomerVendorID != strconv.Itoa(cust.Seq) || rule.ProductVendorID != strconv.Itoa(sim.VariantID(p.Seq)) {
					t.Fatalf("special price of %s: %+v, want %+v", p.SKU, rule, sp)
				}
			}
		}
		for _, c := range d.Customers {
			r, ok := h.get(model.KindCustomer, strconv.Itoa(c.Seq))
			if !ok {
				t.Fatalf("customer %s missing", c.Code)
			}
			cu := r.Data.(*model.Customer)
			if cu.Code != c.Code || cu.Name != c.Name || cu.Email != c.Email || cu.Currency != c.Currency || len(cu.Addresses) != 2 || cu.Addresses[0].City != c.City {
				t.Fatalf("customer %s: %+v", c.Code, cu)
			}
		}
		for _, o := range d.Orders {
			r, ok := h.get(model.KindSalesOrder, strconv.Itoa(o.Seq))
			if !ok {
				t.Fatalf("order %s missing", o.Number)
			}
			so := r.Data.(*model.SalesOrder)
			_, _, total := o.Totals()
			if so.Number != o.Number || len(so.Lines) != len(o.Lines) || string(so.Total) != canon(total) || r.Deleted != o.Deleted {
				t.Fatalf("order %s: %+v", o.Number, so)
			}
			for i, l := range o.Lines {
				if so.Lines[i].Quantity != l.Quantity || string(so.Lines[i].UnitPrice) != canon(l.UnitPrice) {
					t.Fatalf("order %s line %d: %+v, want %+v", o.Number, i, so.Lines[i], l)
				}
			}
		}
	})

	// The minimum: one call per page of each list at 250 a page.
	if want := minCalls(h.sim); res.Calls != int64(want) {
		t.Errorf("import took %d calls, the page size allows %d", res.Calls, want)
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
	h := newHarness(t, smallDataset(), nil)
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
	h := newHarness(t, smallDataset(), nil)
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

func TestAuthFailure(t *testing.T) {
	h := newHarness(t, smallDataset(), nil)
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

// Test429StormLosesNothing throttles many requests on several lists; the run
// slows down (it waits Retry-After on the clock) but ends with every record.
func Test429StormLosesNothing(t *testing.T) {
	h := newHarness(t, smallDataset(), nil)
	for _, p := range []string{"/tax_rates", "/products", "/inventory", "/price_list_rows", "/sales_orders"} {
		h.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 429, RetryAfter: 20, PathContains: p, Count: 3})
	}
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import under a 429 storm: %v", err)
	}
	if n := h.sim.Stats().Faults.Load(); n != 15 {
		t.Errorf("%d injected 429s answered, want 15", n)
	}
	if slept := h.clock.Slept(); slept < 5*3*20*time.Second {
		t.Errorf("the run waited %v; Retry-After asked for at least %v", slept, 5*3*20*time.Second)
	}
	got, want := h.counts(), h.sim.Expected()
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d records, want %d", k, got[k], want[k])
		}
	}
}

// TestMalformedPageFailsCleanly breaks one page: the run fails with
// InvalidResponse naming the entity and page, entities finished before it
// keep their new watermark and the broken entity keeps none.
func TestMalformedPageFailsCleanly(t *testing.T) {
	h := newHarness(t, smallDataset(), nil)
	h.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultMalformed, PathContains: "/customers"})
	_, err := h.run(context.Background())
	if connectors.KindOf(err) != connectors.KindInvalidResponse {
		t.Fatalf("error %v (kind %q), want InvalidResponse", err, connectors.KindOf(err))
	}
	if !strings.Contains(err.Error(), "customers page 1") {
		t.Errorf("the error does not name the entity and page: %v", err)
	}
	for _, st := range h.state {
		switch st.Name {
		case model.KindTaxRate, model.KindWarehouse:
			if st.Watermark.IsZero() {
				t.Errorf("%s finished before the failure but has no watermark", st.Name)
			}
		case model.KindCustomer:
			if !st.Watermark.IsZero() {
				t.Errorf("customers failed but got a watermark")
			}
		}
	}
	// The next run succeeds and completes the import.
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if got, want := h.counts()[model.KindCustomer], h.sim.Expected()[model.KindCustomer]; got != want {
		t.Errorf("customers after rerun: %d, want %d", got, want)
	}
}

// TestServerErrorsAreRetried answers a few 503s and a dropped connection; the
// client retries within its budget and nothing is lost.
func TestServerErrorsAreRetried(t *testing.T) {
	h := newHarness(t, smallDataset(), nil)
	h.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 503, PathContains: "/products", Count: 2})
	h.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultDrop, PathContains: "/sales_orders"})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	if got, want := h.counts()[model.KindSalesOrder], h.sim.Expected()[model.KindSalesOrder]; got != want {
		t.Errorf("sales orders: %d, want %d", got, want)
	}
}

func TestContextCancelStopsTheRun(t *testing.T) {
	h := newHarness(t, smallDataset(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if n := h.sim.Stats().Requests.Load(); n != 0 {
		t.Errorf("%d requests after cancel", n)
	}
}
