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
