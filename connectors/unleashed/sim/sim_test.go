package sim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

type envelope struct {
	Pagination struct{ NumberOfItems, PageSize, PageNumber, NumberOfPages int }
	Items      []map[string]any
}

func get(t *testing.T, h http.Handler, target string, mutate func(r *http.Request)) (*httptest.ResponseRecorder, envelope) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("api-auth-id", sim.DefaultAPIID)
	r.Header.Set("api-auth-signature", sim.Sign(r.URL.RawQuery, sim.DefaultAPIKey))
	r.Header.Set("client-type", "acme/crmsync")
	r.Header.Set("Accept", "application/json")
	if mutate != nil {
		mutate(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var env envelope
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	return w, env
}

func TestSimulatorBehavesLikeUnleashed(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 1500, Customers: 10, Orders: 20}, Now: func() time.Time { return now }})
	var since time.Time
	n := 0
	s.Dataset().Update(func(d *simkit.Dataset) { d.Orders[0].Deleted = true })
	s.Dataset().View(func(d *simkit.Dataset) {
		since = d.Products[700].Modified.Truncate(time.Second)
		for _, p := range d.Products {
			if !p.Modified.Before(since) && !p.Deleted {
				n++
			}
		}
	})
	for _, tc := range []struct {
		name, target string
		mutate       func(*http.Request)
		status       int
		items, total int
		pages, page  int
	}{
		{"default page size", "/Products", nil, 200, 200, 1470, 8, 1},
		{"page in the path", "/Products/2?pageSize=1000", nil, 200, 470, 1470, 2, 2},
		{"legacy page path", "/Products/Page/2?pageSize=1000", nil, 200, 470, 1470, 2, 2},
		{"obsolete on request", "/Products/2?pageSize=1000&includeObsolete=true", nil, 200, 500, 1500, 2, 2},
		{"pageSize capped at 1000", "/Products?pageSize=5000", nil, 200, 1000, 1470, 2, 1},
		{"modifiedSince inclusive", "/Products?pageSize=1000&modifiedSince=" + since.Format("2006-01-02T15:04:05"), nil, 200, min(n, 1000), n, (n + 999) / 1000, 1},
		{"stock per warehouse", "/StockOnHand/2?pageSize=1000&warehouseCode=WH2", nil, 200, 500, 1500, 2, 2},
		{"deleted orders hidden", "/SalesOrders?pageSize=1000", nil, 200, 19, 19, 1, 1},
		{"deleted orders on request", "/SalesOrders?orderStatus=Parked,Placed,Backordered,Completed,Deleted", nil, 200, 20, 20, 1, 1},
		{"wrong signature", "/Products?pageSize=10", func(r *http.Request) { r.Header.Set("api-auth-signature", sim.Sign("pageSize=11", sim.DefaultAPIKey)) }, 403, 0, 0, 0, 0},
		{"signature of the empty query", "/Taxes", nil, 200, 4, 4, 1, 1},
		{"no client-type", "/Taxes", func(r *http.Request) { r.Header.Del("client-type") }, 400, 0, 0, 0, 0},
		{"bad client-type", "/Taxes", func(r *http.Request) { r.Header.Set("client-type", "Acme CRM") }, 400, 0, 0, 0, 0},
		{"bad modifiedSince", "/Products?modifiedSince=last-week", nil, 400, 0, 0, 0, 0},
		{"unknown endpoint", "/Widgets", nil, 404, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, env := get(t, s, tc.target, tc.mutate)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if d, err := http.ParseTime(w.Header().Get("Date")); err != nil || !d.Equal(now) {
				t.Errorf("Date header %q", w.Header().Get("Date"))
			}
			if tc.status != 200 {
				if !strings.Contains(w.Body.String(), "Description") {
					t.Errorf("error body %s", w.Body)
				}
				return
			}
			p := env.Pagination
			if len(env.Items) != tc.items || p.NumberOfItems != tc.total || p.NumberOfPages != tc.pages || p.PageNumber != tc.page {
				t.Errorf("%d items, pagination %+v; want %d items, %d total, %d pages, page %d", len(env.Items), p, tc.items, tc.total, tc.pages, tc.page)
			}
			if len(env.Items) > 0 {
				if lm, _ := env.Items[0]["LastModifiedOn"].(string); !strings.HasPrefix(lm, "/Date(") {
					t.Errorf("LastModifiedOn %q is not a Microsoft JSON date", lm)
				}
			}
		})
	}
}

func TestMonthlyQuotaResetsOnTheFirst(t *testing.T) {
	now := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 5}, Now: func() time.Time { return now }, MonthlyQuota: 2})
	for i := 0; i < 2; i++ {
		if w, _ := get(t, s, "/Taxes", nil); w.Code != 200 {
			t.Fatalf("call %d: %d", i+1, w.Code)
		}
	}
	w, _ := get(t, s, "/Taxes", nil)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "limit") {
		t.Fatalf("over quota: %d %s", w.Code, w.Body)
	}
	now = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if w, _ := get(t, s, "/Taxes", nil); w.Code != 200 {
		t.Fatalf("after the reset: %d", w.Code)
	}
	if s.QuotaUsed() != 1 || s.Stats().Throttled.Load() != 1 {
		t.Errorf("used %d throttled %d", s.QuotaUsed(), s.Stats().Throttled.Load())
	}
}

func TestExpectedCountsTheDataset(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 50, Customers: 10, Orders: 20, Warehouses: 2, SpecialPricesPerProduct: 2}})
	e := s.Expected()
	if e[model.KindProduct] != 50 || e[model.KindStockLevel] != 100 || e[model.KindPriceRule] != 100 || e[model.KindSalesOrder] != 20 ||
		e[model.KindInvoice] != 10 || e[model.KindCurrency] != 4 || e[model.KindShipment] != 5 {
		t.Errorf("expected %v", e)
	}
}

// TestListOrdersAndKnobs: products come by code, the unstable knob serves
// each list in a fresh order, and ServeGroupPrice adds a product-group
// price row (no Product) to /ProductPrices.
func TestListOrdersAndKnobs(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 30, Customers: 5}, Now: func() time.Time { return now }})
	codes := func() string {
		_, env := get(t, s, "/Products?pageSize=1000", nil)
		var out []string
		for _, it := range env.Items {
			out = append(out, it["ProductCode"].(string))
		}
		return strings.Join(out, ",")
	}
	ordered := codes()
	parts := strings.Split(ordered, ",")
	if !sort.StringsAreSorted(parts) {
		t.Errorf("products not by code: %s", ordered)
	}
	s.SetUnstable(true)
	if a, b := codes(), codes(); a == b || a == ordered {
		t.Error("the unstable knob served the same order twice")
	}
	s.SetUnstable(false)
	id := s.ServeGroupPrice()
	_, env := get(t, s, "/ProductPrices?pageSize=1000", nil)
	last := env.Items[len(env.Items)-1]
	if last["Guid"] != id || last["Product"] != nil || last["ProductGroup"] == nil || env.Pagination.NumberOfItems != 31 {
		t.Errorf("last price row %v of %d, want group price %s of 31", last, env.Pagination.NumberOfItems, id)
	}
}
