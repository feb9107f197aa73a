package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// fakeNow is a settable clock for the simulator.
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
		o.Dataset = simkit.Options{Seed: 1, Products: 20, Customers: 5, Orders: 8}
	}
	s := New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv, clock
}

func refresh(t *testing.T, s *Server, srv *httptest.Server, rt string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+TokenPath, strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.opts.ClientID, s.opts.ClientSecret)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestRefreshTokensRotateWithAGracePeriod(t *testing.T) {
	s, srv, clock := newSim(t, Options{})
	rt := s.Authorize()
	code, body := refresh(t, s, srv, rt)
	if code != 200 || body["refresh_token"] == rt || body["expires_in"].(float64) != 1800 {
		t.Fatalf("refresh: %d %v", code, body)
	}
	next := body["refresh_token"].(string)
	clock.add(10 * time.Minute)
	if code, _ := refresh(t, s, srv, rt); code != 200 {
		t.Fatalf("re-using a refresh token within the grace period: %d", code)
	}
	if !s.RefreshTokenUsable(next) {
		t.Fatal("re-using the old token revoked its first successor")
	}
	clock.add(21 * time.Minute)
	if code, body := refresh(t, s, srv, rt); code != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("re-using a refresh token after the grace period: %d %v", code, body)
	}
	if code, body := refresh(t, s, srv, "rt_unknown"); code != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("unknown token: %d %v", code, body)
	}
	stale := s.Authorize()
	clock.add(61 * 24 * time.Hour)
	if s.RefreshTokenUsable(stale) {
		t.Fatal("a refresh token unused for 60 days still works")
	}
}

func get(t *testing.T, srv *httptest.Server, path, token, tenant, accept string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+APIPath+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("xero-tenant-id", tenant)
	req.Header.Set("Accept", accept)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestAPIAuthTenantAndFormat(t *testing.T) {
	s, srv, clock := newSim(t, Options{})
	_, body := refresh(t, s, srv, s.Authorize())
	tok, tenant := body["access_token"].(string), s.Tenants()[0]
	for _, tc := range []struct {
		name, token, tenant, accept, ctype string
		code                               int
	}{
		{"ok", tok, tenant, "application/json", "application/json", 200},
		{"XML without Accept: application/json", tok, tenant, "", "text/xml", 200},
		{"no token", "", tenant, "application/json", "application/json", 401},
		{"unknown tenant", tok, "00000000-0000-4000-8000-000000000000", "application/json", "application/json", 403},
	} {
		resp := get(t, srv, "/Items", tc.token, tc.tenant, tc.accept)
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || resp.Header.Get("Date") == "" {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	clock.add(31 * time.Minute)
	if resp := get(t, srv, "/Items", tok, tenant, "application/json"); resp.StatusCode != 401 {
		t.Errorf("expired access token: %d", resp.StatusCode)
	}
}

func TestLimitsAnswer429WithTheProblem(t *testing.T) {
	s, srv, clock := newSim(t, Options{MinuteLimit: 2, DayLimit: 3})
	_, body := refresh(t, s, srv, s.Authorize())
	tok, tenant := body["access_token"].(string), s.Tenants()[0]
	for i := 0; i < 2; i++ {
		if resp := get(t, srv, "/Currencies", tok, tenant, "application/json"); resp.StatusCode != 200 || resp.Header.Get("X-MinLimit-Remaining") != []string{"1", "0"}[i] {
			t.Fatalf("call %d: %d remaining %s", i, resp.StatusCode, resp.Header.Get("X-MinLimit-Remaining"))
		}
	}
	resp := get(t, srv, "/Currencies", tok, tenant, "application/json")
	if resp.StatusCode != 429 || resp.Header.Get("X-Rate-Limit-Problem") != "minute" || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("minute limit: %d %v", resp.StatusCode, resp.Header)
	}
	clock.add(time.Minute)
	get(t, srv, "/Currencies", tok, tenant, "application/json")
	resp = get(t, srv, "/Currencies", tok, tenant, "application/json")
	if resp.StatusCode != 429 || resp.Header.Get("X-Rate-Limit-Problem") != "day" {
		t.Fatalf("day limit: %d %v", resp.StatusCode, resp.Header)
	}
	if s.Stats().Throttled.Load() != 2 {
		t.Fatalf("throttled %d", s.Stats().Throttled.Load())
	}
}

func TestPagingAndIfModifiedSince(t *testing.T) {
	s, srv, clock := newSim(t, Options{Dataset: simkit.Options{Seed: 2, Products: 10, Customers: 25, Orders: 10}})
	_, body := refresh(t, s, srv, s.Authorize())
	tok, tenant := body["access_token"].(string), s.Tenants()[0]
	var env struct {
		Contacts   []map[string]any
		Pagination struct{ Page, PageSize, PageCount, ItemCount int }
	}
	resp := get(t, srv, "/Contacts?page=2&pageSize=20", tok, tenant, "application/json")
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if len(env.Contacts) != 15 || env.Pagination.PageCount != 2 || env.Pagination.ItemCount != 35 {
		t.Fatalf("page 2 of 35 contacts by 20: %d contacts, %+v", len(env.Contacts), env.Pagination)
	}
	clock.add(time.Hour)
	since := clock.Now()
	s.Dataset().TouchCustomers(1)
	_, body = refresh(t, s, srv, s.Authorize()) // the first token has expired
	tok = body["access_token"].(string)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+APIPath+"/Contacts?page=1&pageSize=1000", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("xero-tenant-id", tenant)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("If-Modified-Since", since.Format(http.TimeFormat))
	resp2, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	env.Contacts = nil
	if err := json.NewDecoder(resp2.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if len(env.Contacts) != 1 {
		t.Fatalf("If-Modified-Since returned %d contacts, want the 1 changed (HTTP %d)", len(env.Contacts), resp2.StatusCode)
	}
}
