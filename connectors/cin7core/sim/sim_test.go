package sim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

func get(t *testing.T, h http.Handler, path string, auth bool) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if auth {
		r.Header.Set("api-auth-accountid", sim.DefaultAccountID)
		r.Header.Set("api-auth-applicationkey", sim.DefaultApplicationKey)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w, body
}

func TestSimulatorBehavesLikeCin7Core(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 1500, Customers: 10, Orders: 20}, Now: func() time.Time { return now }, CallsPerMinute: -1})
	var mid time.Time
	s.Dataset().View(func(d *simkit.Dataset) { mid = d.Products[700].Modified })
	n := 0
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			if !p.Modified.Before(mid) {
				n++
			}
		}
	})
	for _, tc := range []struct {
		name, path string
		auth       bool
		status     int
		key        string
		items      int
		total      int
	}{
		{"no credentials", "/ExternalApi/v2/product", false, 403, "", 0, 0},
		{"default page size", "/ExternalApi/v2/product?IncludeDeprecated=true", true, 200, "Products", 100, 1500},
		{"deprecated hidden by default", "/externalapi/v2/Product?Limit=1000&Page=2", true, 200, "Products", 1470 - 1000, 1470},
		{"limit capped at 1000", "/ExternalApi/v2/product?limit=5000&IncludeDeprecated=true", true, 200, "Products", 1000, 1500},
		{"last page", "/ExternalApi/v2/product?Page=2&Limit=1000&IncludeDeprecated=true", true, 200, "Products", 500, 1500},
		{"past the end", "/ExternalApi/v2/product?Page=9&Limit=1000&IncludeDeprecated=true", true, 200, "Products", 0, 1500},
		{"ModifiedSince is inclusive", "/ExternalApi/v2/product?Limit=1000&IncludeDeprecated=true&ModifiedSince=" + url.QueryEscape(mid.Format("2006-01-02T15:04:05.000")), true, 200, "Products", min(n, 1000), n},
		{"bad date", "/ExternalApi/v2/product?ModifiedSince=yesterday", true, 400, "", 0, 0},
		{"stock rows", "/ExternalApi/v2/ref/productavailability?Limit=1000&Page=5", true, 200, "ProductAvailabilityList", 500, 4500},
		{"unknown endpoint", "/ExternalApi/v2/Products", true, 404, "", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, body := get(t, s, tc.path, tc.auth)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if d, err := http.ParseTime(w.Header().Get("Date")); err != nil || !d.Equal(now) {
				t.Errorf("Date header %q", w.Header().Get("Date"))
			}
			if tc.key == "" {
				if body["ErrorCode"] == nil || body["Exception"] == nil {
					t.Errorf("error body %s lacks ErrorCode/Exception", w.Body)
				}
				return
			}
			items, _ := body[tc.key].([]any)
			if len(items) != tc.items || body["Total"] != float64(tc.total) {
				t.Errorf("%d items, Total %v; want %d, %d", len(items), body["Total"], tc.items, tc.total)
			}
		})
	}
	if got := s.Stats().AuthFails.Load(); got != 1 {
		t.Errorf("%d auth failures counted", got)
	}
}

func TestSimulatorRateLimit(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 10}, Now: func() time.Time { return now }, ServiceUnavailableEvery: 2})
	for i := 0; i < sim.CallsPerMinute; i++ {
		if w, _ := get(t, s, "/ref/tax", true); w.Code != 200 {
			t.Fatalf("call %d refused: %d", i+1, w.Code)
		}
	}
	w1, b1 := get(t, s, "/ref/tax", true)
	w2, _ := get(t, s, "/ref/tax", true)
	if w1.Code != 429 || w2.Code != 503 || b1["Exception"] != sim.LimitMessage {
		t.Fatalf("over the limit: %d %v, then %d", w1.Code, b1, w2.Code)
	}
	now = now.Add(time.Minute)
	if w, _ := get(t, s, "/ref/tax", true); w.Code != 200 {
		t.Fatalf("a minute later: %d", w.Code)
	}
	if got := s.Stats().Throttled.Load(); got != 2 {
		t.Errorf("%d throttled", got)
	}
}

func TestExpectedCountsTheDataset(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 50, Customers: 10, Orders: 20, Warehouses: 2, SpecialPricesPerProduct: 2}})
	e := s.Expected()
	if e[model.KindProduct] != 50 || e[model.KindStockLevel] != 100 || e[model.KindSalesOrder] != 20 || e[model.KindInvoice] != 10 || e[model.KindPriceRule] == 0 {
		t.Errorf("expected %v", e)
	}
	if _, ok := e[model.KindCurrency]; ok {
		t.Error("Cin7 Core has no currency list")
	}
}

// TestUnstableOrder: with the knob on, every list request comes back in a
// fresh order with an honest Total; with it off, in dataset order.
func TestUnstableOrder(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 300, Customers: 10, Orders: 20}, Now: func() time.Time { return now },
		CallsPerMinute: -1, UnstableOrder: true})
	ids := func(path, key string) []string {
		_, body := get(t, s, path, true)
		if body["Total"] == nil {
			t.Fatalf("%s: no Total", path)
		}
		var out []string
		items, _ := body[key].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			id, _ := m["ID"].(string)
			if id == "" {
				id, _ = m["SaleID"].(string)
			}
			out = append(out, id)
		}
		return out
	}
	for _, ep := range []struct{ path, key string }{
		{"/ExternalApi/v2/product?Limit=100&IncludeDeprecated=true", "Products"},
		{"/ExternalApi/v2/ref/productavailability?Limit=100", "ProductAvailabilityList"},
		{"/ExternalApi/v2/saleList?Limit=100", "SaleList"},
		{"/ExternalApi/v2/ref/tax?Limit=100", "TaxRuleList"},
	} {
		a, b := ids(ep.path, ep.key), ids(ep.path, ep.key)
		if len(a) == 0 || strings.Join(a, ",") == strings.Join(b, ",") {
			t.Errorf("%s: two requests of page 1 came back in the same order (%d rows)", ep.path, len(a))
		}
	}
	s.SetUnstable(false)
	a, b := ids("/ExternalApi/v2/product?Limit=100", "Products"), ids("/ExternalApi/v2/product?Limit=100", "Products")
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Error("with the knob off, page 1 changed between requests")
	}
}

// TestClockSkewAndAdvancedSale: the Date header and change stamps follow
// the skewed vendor clock; ServeAdvancedSale marks a sale with a credit
// note as an Advanced Sale and stamps it as changed.
func TestClockSkewAndAdvancedSale(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 20, Customers: 10, Orders: 20}, Now: func() time.Time { return now }, CallsPerMinute: -1})
	s.SetSkew(-7 * time.Minute)
	w, _ := get(t, s, "/ExternalApi/v2/ref/tax", true)
	if d, err := http.ParseTime(w.Header().Get("Date")); err != nil || !d.Equal(now.Add(-7*time.Minute)) {
		t.Errorf("Date header %q, want the skewed clock", w.Header().Get("Date"))
	}
	id := s.ServeAdvancedSale()
	if id == "" {
		t.Fatal("no sale with a credit note")
	}
	_, body := get(t, s, "/ExternalApi/v2/saleCreditNoteList?Limit=1000&UpdatedSince="+url.QueryEscape(now.Add(-8*time.Minute).Format("2006-01-02T15:04:05.000")), true)
	items, _ := body["SaleList"].([]any)
	if len(items) != 1 {
		t.Fatalf("%d credit note rows changed since the marking, want 1", len(items))
	}
	row, _ := items[0].(map[string]any)
	if row["SaleID"] != id || row["Type"] != "Advanced Sale" || row["Updated"] != now.Add(-7*time.Minute).Format("2006-01-02T15:04:05Z") {
		t.Errorf("row %v", row)
	}
}

// TestReadByIDAndSearch: the parameters reconciliation reads with: the
// supplier ID filter, the sale lists' Search, and GET /sale?ID= (400 for
// an unknown sale), whose order number finds the sale's list row.
func TestReadByIDAndSearch(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 5, Products: 10, Customers: 5, Orders: 30}, CallsPerMinute: -1})
	var supplier, sale, number string
	s.Dataset().View(func(d *simkit.Dataset) {
		supplier, sale, number = d.Suppliers[1].ID, d.Orders[12].ID, d.Orders[12].Number
	})
	w, body := get(t, s, "/ExternalApi/v2/supplier?ID="+supplier, true)
	if list, _ := body["SupplierList"].([]any); w.Code != 200 || len(list) != 1 || list[0].(map[string]any)["ID"] != supplier || body["Total"] != 1.0 {
		t.Errorf("supplier by id: %d %v", w.Code, body)
	}
	w, body = get(t, s, "/ExternalApi/v2/sale?ID="+sale, true)
	order, _ := body["Order"].(map[string]any)
	if w.Code != 200 || body["ID"] != sale || order["SaleOrderNumber"] != number {
		t.Fatalf("sale by id: %d %v", w.Code, body)
	}
	w, body = get(t, s, "/ExternalApi/v2/saleList?Search="+url.QueryEscape(strings.ToLower(number)), true)
	if list, _ := body["SaleList"].([]any); w.Code != 200 || len(list) != 1 || list[0].(map[string]any)["SaleID"] != sale {
		t.Errorf("sale list search %s: %d %v", number, w.Code, body)
	}
	w, body = get(t, s, "/ExternalApi/v2/saleList?Search=SO-", true)
	if w.Code != 200 || body["Total"] != 30.0 {
		t.Errorf("a search every order number contains: %d total %v", w.Code, body["Total"])
	}
	if w, _ = get(t, s, "/ExternalApi/v2/sale?ID=00000000-0000-4000-8000-000000000000", true); w.Code != 400 {
		t.Errorf("unknown sale: %d, want 400", w.Code)
	}
}
