package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func newSim(t *testing.T, o Options) (*Server, *httptest.Server, *fakeNow) {
	clock := &fakeNow{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	o.Now = clock.Now
	if o.Dataset.Products == 0 {
		o.Dataset = simkit.Options{Seed: 1, Products: 300, Customers: 5, Orders: 8}
	}
	s := New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv, clock
}

type listAnswer struct {
	code  int
	pag   map[string]string
	data  []map[string]any
	retry string
}

func list(t *testing.T, s *Server, srv *httptest.Server, path, key string) listAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+BasePath+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := listAnswer{code: resp.StatusCode, retry: resp.Header.Get("Retry-After")}
	if h := resp.Header.Get("X-Pagination"); h != "" {
		if err := json.Unmarshal([]byte(h), &a.pag); err != nil {
			t.Fatalf("X-Pagination %q: %v", h, err)
		}
	}
	var body struct{ Data []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	a.data = body.Data
	return a
}

func TestListsPageFilterAndHideDeleted(t *testing.T) {
	s, srv, clock := newSim(t, Options{})
	key := s.Credentials()["apiKey"]
	for _, tc := range []struct {
		name, path string
		n          int
		pag        map[string]string
	}{
		{"default page size", "/products", 50, map[string]string{"total_records": "294", "total_pages": "6", "page": "1", "first_page": "true", "last_page": "false"}},
		{"limit above 250 is cut", "/products?limit=1000&page=2", 44, map[string]string{"total_records": "294", "total_pages": "2", "offset": "250", "last_page": "true"}},
		{"deleted included on request", "/products?include_deleted=true&limit=250", 250, map[string]string{"total_records": "300"}},
		{"past the end", "/products?page=9&limit=250", 0, map[string]string{"total_pages": "2", "last_page": "true"}},
	} {
		a := list(t, s, srv, tc.path, key)
		if a.code != 200 || len(a.data) != tc.n {
			t.Errorf("%s: HTTP %d, %d records, want %d", tc.name, a.code, len(a.data), tc.n)
		}
		for k, v := range tc.pag {
			if a.pag[k] != v {
				t.Errorf("%s: X-Pagination %s = %q, want %q", tc.name, k, a.pag[k], v)
			}
		}
	}
	// Newest first.
	a := list(t, s, srv, "/products?limit=2", key)
	if a.data[0]["id"].(float64) <= a.data[1]["id"].(float64) {
		t.Errorf("products are not newest first: %v, %v", a.data[0]["id"], a.data[1]["id"])
	}
	clock.add(time.Hour)
	since := clock.Now().Format("2006-01-02T15:04:05.000Z")
	s.Dataset().TouchProducts(1)
	if a := list(t, s, srv, "/products?updated_at_min="+since, key); len(a.data) != 1 {
		t.Errorf("updated_at_min returned %d products, want the 1 changed", len(a.data))
	}
	if a := list(t, s, srv, "/products?updated_at_min=yesterday", key); a.code != 422 {
		t.Errorf("a malformed updated_at_min: HTTP %d, want 422", a.code)
	}
}

func TestAuthAndRateLimit(t *testing.T) {
	s, srv, clock := newSim(t, Options{RateLimit: 3})
	key := s.Credentials()["apiKey"]
	if a := list(t, s, srv, "/tax_rates", "wrong"); a.code != 401 {
		t.Fatalf("wrong key: HTTP %d", a.code)
	}
	for i := 0; i < 3; i++ {
		if a := list(t, s, srv, "/tax_rates", key); a.code != 200 {
			t.Fatalf("call %d: HTTP %d", i, a.code)
		}
	}
	clock.add(20 * time.Second)
	a := list(t, s, srv, "/tax_rates", key)
	if a.code != 429 || a.retry != strconv.Itoa(40) {
		t.Fatalf("over the limit: HTTP %d Retry-After %q, want 429 and 40", a.code, a.retry)
	}
	clock.add(40 * time.Second)
	if a := list(t, s, srv, "/tax_rates", key); a.code != 200 {
		t.Fatalf("after the window: HTTP %d", a.code)
	}
	if s.Stats().Throttled.Load() != 1 || s.Stats().AuthFails.Load() != 1 {
		t.Fatalf("stats: throttled %d, auth fails %d", s.Stats().Throttled.Load(), s.Stats().AuthFails.Load())
	}
}

func TestInventoryExtends(t *testing.T) {
	s, srv, _ := newSim(t, Options{})
	key := s.Credentials()["apiKey"]
	a := list(t, s, srv, "/inventory?extend=variant&extend=location&limit=3", key)
	if len(a.data) != 3 || a.data[0]["variant"] == nil || a.data[0]["location"] == nil {
		t.Fatalf("inventory with extend: %v", a.data)
	}
	if a := list(t, s, srv, "/inventory?limit=1", key); a.data[0]["variant"] != nil {
		t.Fatalf("inventory without extend carries the variant")
	}
	if want := strconv.Itoa(s.Expected()["stock_levels"]); a.pag["total_records"] != want {
		t.Fatalf("inventory total %s, want %s", a.pag["total_records"], want)
	}
}

// TestListOrderAsDocumented checks the orders the package documents:
// inventory by location (oldest first), then variant id; the other lists
// newest first; with SetUnstable, a fresh order per request.
func TestListOrderAsDocumented(t *testing.T) {
	s, srv, _ := newSim(t, Options{})
	key := s.Credentials()["apiKey"]
	a := list(t, s, srv, "/inventory?limit=250", key)
	prevLoc, prevVar := 0.0, 0.0
	for i, r := range a.data {
		loc, v := r["location_id"].(float64), r["variant_id"].(float64)
		if loc < prevLoc || (loc == prevLoc && v <= prevVar) {
			t.Fatalf("inventory row %d (location %v, variant %v) is out of order after (%v, %v)", i, loc, v, prevLoc, prevVar)
		}
		prevLoc, prevVar = loc, v
	}
	for _, path := range []string{"/customers?limit=250", "/sales_orders?limit=250", "/materials", "/price_lists"} {
		a := list(t, s, srv, path, key)
		for i := 1; i < len(a.data); i++ {
			if a.data[i]["id"].(float64) >= a.data[i-1]["id"].(float64) {
				t.Fatalf("%s is not newest first at %d", path, i)
			}
		}
	}
	s.SetUnstable(true)
	first := list(t, s, srv, "/products?limit=250&include_deleted=true", key)
	second := list(t, s, srv, "/products?limit=250&include_deleted=true", key)
	same := true
	for i := range first.data {
		if first.data[i]["id"] != second.data[i]["id"] {
			same = false
		}
	}
	if same {
		t.Error("an unstable simulator served two requests in the same order")
	}
}

// TestCreatedAtMaxAndSkew checks the creation cap (inclusive) and that a
// skewed clock stamps changes and the Date header alike.
func TestCreatedAtMaxAndSkew(t *testing.T) {
	s, srv, clock := newSim(t, Options{})
	key := s.Credentials()["apiKey"]
	s.SetSkew(-7 * time.Minute)
	all := list(t, s, srv, "/products?limit=250&include_deleted=true", key)
	at := s.Now()
	s.Dataset().AddProduct()
	capped := list(t, s, srv, "/products?limit=250&include_deleted=true&created_at_max="+at.Add(-time.Millisecond).Format("2006-01-02T15:04:05.000Z"), key)
	if capped.pag["total_records"] != all.pag["total_records"] {
		t.Errorf("created_at_max before the creation: total %s, want %s", capped.pag["total_records"], all.pag["total_records"])
	}
	incl := list(t, s, srv, "/products?limit=250&include_deleted=true&created_at_max="+at.Format("2006-01-02T15:04:05.000Z"), key)
	if n, _ := strconv.Atoi(incl.pag["total_records"]); strconv.Itoa(n-1) != all.pag["total_records"] {
		t.Errorf("created_at_max at the creation: total %s, want one more than %s", incl.pag["total_records"], all.pag["total_records"])
	}
	if !at.Equal(clock.Now().Add(-7 * time.Minute)) {
		t.Errorf("the vendor's clock %v is not 7 minutes behind %v", at, clock.Now())
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+BasePath+"/tax_rates", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d, _ := http.ParseTime(resp.Header.Get("Date")); !d.Equal(at.Truncate(time.Second)) {
		t.Errorf("Date %q, want the skewed clock %v", resp.Header.Get("Date"), at)
	}
}

// TestLatePriceList checks that a late list's row is served at once and
// the list only once published.
func TestLatePriceList(t *testing.T) {
	s, srv, _ := newSim(t, Options{})
	key := s.Credentials()["apiKey"]
	lists := list(t, s, srv, "/price_lists", key).pag["total_records"]
	row := s.AddLatePriceList()
	rows := list(t, s, srv, "/price_list_rows", key)
	if rows.data[0]["id"].(float64) != float64(row) {
		t.Fatalf("the late row %d is not served first: %v", row, rows.data[0])
	}
	if got := list(t, s, srv, "/price_lists", key).pag["total_records"]; got != lists {
		t.Fatalf("an unpublished late list is listed: %s lists, want %s", got, lists)
	}
	s.PublishLatePriceLists()
	a := list(t, s, srv, "/price_lists", key)
	if a.data[0]["id"].(float64) != rows.data[0]["price_list_id"].(float64) {
		t.Fatalf("the published late list is not listed first: %v", a.data[0])
	}
	if late := s.LatePriceRows(); len(late) != 1 || !late[0].Published || late[0].RowID != row {
		t.Fatalf("LatePriceRows: %+v", late)
	}
}
