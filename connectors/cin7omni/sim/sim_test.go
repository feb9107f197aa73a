package sim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

func get(t *testing.T, h http.Handler, target string, auth bool) (*httptest.ResponseRecorder, []map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if auth {
		r.SetBasicAuth(sim.DefaultUsername, sim.DefaultAPIKey)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var items []map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &items)
	return w, items
}

func TestSimulatorBehavesLikeCin7Omni(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 600, Customers: 10, Orders: 20}, Now: func() time.Time { return now }, Unlimited: true})
	var since time.Time
	n := 0
	s.Dataset().View(func(d *simkit.Dataset) {
		since = d.Products[300].Modified.Truncate(time.Second)
		for _, p := range d.Products {
			if !p.Modified.Before(since) {
				n++
			}
		}
	})
	where := func(w string) string { return url.QueryEscape(w) }
	for _, tc := range []struct {
		name, target string
		auth         bool
		status       int
		items        int
	}{
		{"no credentials", "/api/v1/Products", false, 401, 0},
		{"default rows", "/api/v1/Products", true, 200, 50},
		{"rows capped at 250", "/api/v1/Products?rows=1000", true, 200, 250},
		{"last page is short", "/api/v1/Products?rows=250&page=3", true, 200, 100},
		{"past the end is empty", "/api/v1/Products?rows=250&page=4", true, 200, 0},
		{"where on ModifiedDate", "/api/v1/Products?rows=250&where=" + where("ModifiedDate>='"+since.Format(time.RFC3339)+"'"), true, 200, min(n, 250)},
		{"where with AND", "/api/v1/Contacts?rows=250&where=" + where("Type='Supplier' AND IsActive=true"), true, 200, 10},
		{"customers", "/api/v1/Contacts?where=" + where("Type='Customer'"), true, 200, 10},
		{"bad where", "/api/v1/Products?where=" + where("ModifiedDate>'yesterday'"), true, 400, 0},
		{"unknown field", "/api/v1/Products?where=" + where("Colour='red'"), true, 400, 0},
		{"stock rows", "/api/v1/Stock?rows=250&page=8", true, 200, 50},
		{"unknown resource", "/api/v1/Widgets", true, 404, 0},
		{"no version", "/api/Products", true, 404, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, items := get(t, s, tc.target, tc.auth)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if d, err := http.ParseTime(w.Header().Get("Date")); err != nil || !d.Equal(now) {
				t.Errorf("Date header %q", w.Header().Get("Date"))
			}
			if tc.status != 200 {
				return
			}
			if !strings.HasPrefix(strings.TrimSpace(w.Body.String()), "[") || len(items) != tc.items {
				t.Errorf("%d items (bare array: %v), want %d", len(items), strings.HasPrefix(w.Body.String(), "["), tc.items)
			}
		})
	}
	// order: ModifiedDate DESC puts the last change first.
	_, items := get(t, s, "/api/v1/Products?rows=250&order="+url.QueryEscape("ModifiedDate DESC"), true)
	for i := 1; i < len(items); i++ {
		if items[i]["ModifiedDate"].(string) > items[i-1]["ModifiedDate"].(string) {
			t.Fatalf("order=ModifiedDate DESC not honoured at %d", i)
		}
	}
}

func TestSimulatorRateLimits(t *testing.T) {
	now := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 10}, Now: func() time.Time { return now }, PerDay: 5})
	for i := 0; i < sim.PerSecond; i++ {
		if w, _ := get(t, s, "/api/v1/Users", true); w.Code != 200 {
			t.Fatalf("call %d: %d", i+1, w.Code)
		}
	}
	w, _ := get(t, s, "/api/v1/Users", true)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("4th call in a second: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	now = now.Add(time.Second)
	for i := 0; i < 2; i++ {
		if w, _ := get(t, s, "/api/v1/Users", true); w.Code != 200 {
			t.Fatalf("next second, call %d: %d", i+1, w.Code)
		}
	}
	now = now.Add(time.Second)
	w, _ = get(t, s, "/api/v1/Users", true)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "58" {
		t.Fatalf("over the day's 5: %d, Retry-After %q (want the seconds to midnight)", w.Code, w.Header().Get("Retry-After"))
	}
	now = time.Date(2026, 3, 2, 0, 0, 1, 0, time.UTC)
	if w, _ := get(t, s, "/api/v1/Users", true); w.Code != 200 {
		t.Fatalf("after midnight: %d", w.Code)
	}
}

func TestExpectedCountsTheDataset(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 50, Customers: 10, Orders: 20, Warehouses: 2}})
	e := s.Expected()
	if e[model.KindProduct] != 50 || e[model.KindStockLevel] != 100 || e[model.KindPriceRule] != 50 || e[model.KindSalesOrder] != 20 ||
		e[model.KindInvoice] != 10 || e[model.KindShipment] != 5 {
		t.Errorf("expected %v", e)
	}
	for _, k := range []model.Kind{model.KindTaxRate, model.KindCurrency} {
		if _, ok := e[k]; ok {
			t.Errorf("Cin7 Omni has no %s list", k)
		}
	}
}

// TestAccountTimeZone: with a time zone, dates carry the account's offset
// and a zone-less date literal is local time; a literal with Z is exact.
func TestAccountTimeZone(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 50}, Now: func() time.Time { return now }, Unlimited: true,
		TimeZone: time.FixedZone("EST", -5*3600)})
	touched := len(s.Dataset().TouchProducts(5))
	var mod time.Time
	s.Dataset().View(func(d *simkit.Dataset) { mod = d.Products[0].Modified })
	_, items := get(t, s, "/api/v1/Products?rows=1&order=Id%20ASC", true)
	got, _ := items[0]["ModifiedDate"].(string)
	if !strings.HasSuffix(got, "-05:00") {
		t.Fatalf("ModifiedDate %q carries no -05:00 offset", got)
	}
	if parsed, err := time.Parse(time.RFC3339Nano, got); err != nil || !parsed.Equal(mod) {
		t.Errorf("ModifiedDate %q is %v, want the instant %v", got, parsed, mod)
	}
	count := func(lit string) int {
		_, items := get(t, s, "/api/v1/Products?rows=250&where="+url.QueryEscape("ModifiedDate>='"+lit+"'"), true)
		return len(items)
	}
	at := now.Add(-time.Hour)
	// The same wall clock without a zone is read five hours later: the
	// products touched an hour ago no longer match.
	if exact, local := count(at.Format("2006-01-02T15:04:05Z")), count(at.Format("2006-01-02T15:04:05")); exact < 1 || exact > touched || local != 0 {
		t.Errorf("literal with Z matched %d (touched %d), the same wall clock read as local time %d; want the touched ones and 0", exact, touched, local)
	}
}

// TestUnstableOrderAndArchivedProduct: the base's unstable knob serves each
// list in a fresh order; ServeArchivedProduct adds a product of a status
// the help page does not list, after the dataset's.
func TestUnstableOrderAndArchivedProduct(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 9, Products: 40}, Now: func() time.Time { return now }, Unlimited: true})
	id := s.ServeArchivedProduct()
	_, items := get(t, s, "/api/v1/Products?rows=250&order=Id%20ASC", true)
	if len(items) != 41 || items[40]["Status"] != "Archived" || int(items[40]["Id"].(float64)) != id {
		t.Fatalf("%d products, last %v; want 41 ending with archived product %d", len(items), items[len(items)-1]["Id"], id)
	}
	s.SetUnstable(true)
	first := order(t, s)
	if second := order(t, s); first == second {
		t.Errorf("two requests with the unstable knob on came back in the same order")
	}
	s.SetUnstable(false)
	if a, b := order(t, s), order(t, s); a != b {
		t.Errorf("with the knob off the order changed between requests")
	}
}

func order(t *testing.T, s http.Handler) string {
	t.Helper()
	_, items := get(t, s, "/api/v1/Products?rows=250&order=Id%20ASC", true)
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, fmt.Sprint(it["Id"]))
	}
	return strings.Join(ids, ",")
}

// TestFieldsAndProductOptions: fields= cuts each document to the named
// fields (nested arrays whole, names matched in any case; an unknown name
// is a 400); /v1/ProductOptions lists options with their product, filtered
// by where; the list-share knob cuts the fast, id-ordered path too.
func TestFieldsAndProductOptions(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 3, Products: 40, Customers: 5, Orders: 5}, Unlimited: true})
	w, items := get(t, s, "/api/v1/Products?rows=250&fields=id,ModifiedDate,ProductOptions", true)
	if w.Code != 200 || len(items) != 40 {
		t.Fatalf("status %d, %d items", w.Code, len(items))
	}
	for _, it := range items {
		opts, _ := it["ProductOptions"].([]any)
		if len(it) != 3 || it["Id"] == nil || it["ModifiedDate"] == nil || len(opts) != 1 || opts[0].(map[string]any)["RetailPrice"] == nil {
			t.Fatalf("projected product %v", it)
		}
	}
	if w, _ := get(t, s, "/api/v1/Products?fields=Id,Colour", true); w.Code != 400 {
		t.Errorf("unknown field: status %d, want 400", w.Code)
	}
	var p *simkit.Product
	s.Dataset().View(func(d *simkit.Dataset) { p = d.Products[7] })
	w, items = get(t, s, "/api/v1/ProductOptions?fields=Id,ProductId&where="+url.QueryEscape(fmt.Sprintf("Id=%d", sim.OptionID(p))), true)
	if w.Code != 200 || len(items) != 1 || items[0]["ProductId"] != float64(sim.ProductID(p)) || len(items[0]) != 2 {
		t.Errorf("option by id: status %d, %v", w.Code, items)
	}
	s.SetListShare(50)
	if _, items := get(t, s, "/api/v1/Products?rows=250&order=Id%20ASC", true); len(items) != 20 {
		t.Errorf("with half the list shared, %d products, want 20", len(items))
	}
}
