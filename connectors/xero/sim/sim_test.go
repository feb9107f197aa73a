package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
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

// listContacts gets one page of contacts with the given query and headers.
func listContacts(t *testing.T, s *Server, srv *httptest.Server, query string, h http.Header) (int, []map[string]any, http.Header) {
	t.Helper()
	_, body := refresh(t, s, srv, s.Authorize())
	req, _ := http.NewRequest(http.MethodGet, srv.URL+APIPath+"/Contacts?"+query, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+body["access_token"].(string))
	req.Header.Set("xero-tenant-id", s.Tenants()[0])
	req.Header.Set("Accept", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct{ Contacts []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env.Contacts, resp.Header
}

func updated(t *testing.T, c map[string]any) int64 {
	t.Helper()
	var ms int64
	if _, err := fmt.Sscanf(c["UpdatedDateUTC"].(string), "/Date(%d+0000)/", &ms); err != nil {
		t.Fatalf("UpdatedDateUTC %v: %v", c["UpdatedDateUTC"], err)
	}
	return ms
}

// TestOrderIsWhatTheRequestNames: the order parameter is honoured exactly
// (UpdatedDateUTC ASC or DESC, ties by id), creation order without one,
// and an order the simulator cannot serve is refused, not ignored.
func TestOrderIsWhatTheRequestNames(t *testing.T) {
	s, srv, _ := newSim(t, Options{Dataset: simkit.Options{Seed: 3, Products: 5, Customers: 30, Orders: 5}})
	for _, tc := range []struct {
		order string
		check func(prev, cur map[string]any) bool
	}{
		{"UpdatedDateUTC ASC", func(p, c map[string]any) bool { return updated(t, p) <= updated(t, c) }},
		{"UpdatedDateUTC", func(p, c map[string]any) bool { return updated(t, p) <= updated(t, c) }},
		{"UpdatedDateUTC DESC", func(p, c map[string]any) bool { return updated(t, p) >= updated(t, c) }},
	} {
		code, cs, _ := listContacts(t, s, srv, url.Values{"page": {"1"}, "order": {tc.order}}.Encode(), nil)
		if code != 200 || len(cs) != 40 {
			t.Fatalf("%s: %d, %d contacts", tc.order, code, len(cs))
		}
		for i := 1; i < len(cs); i++ {
			if !tc.check(cs[i-1], cs[i]) {
				t.Fatalf("%s: contact %d is out of order", tc.order, i)
			}
		}
	}
	_, cs, _ := listContacts(t, s, srv, "page=1", nil)
	var ids []string
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, c := range d.Customers {
			ids = append(ids, c.ID)
		}
	})
	for i, id := range ids {
		if cs[i]["ContactID"] != id {
			t.Fatalf("without order, contact %d is %v, want creation order (%s)", i, cs[i]["ContactID"], id)
		}
	}
	if code, _, _ := listContacts(t, s, srv, "page=1&order=Name", nil); code != 400 {
		t.Fatalf("order=Name: %d, want 400 (the simulator cannot serve it)", code)
	}
	s.SetUnstable(true)
	_, a, _ := listContacts(t, s, srv, "page=1&order=UpdatedDateUTC+ASC", nil)
	_, b, _ := listContacts(t, s, srv, "page=1&order=UpdatedDateUTC+ASC", nil)
	same := true
	for i := range a {
		same = same && a[i]["ContactID"] == b[i]["ContactID"]
	}
	if same {
		t.Fatal("the unstable knob served the same order twice")
	}
}

// TestIfModifiedSinceIsInclusiveToTheSecond: records stamped in the
// If-Modified-Since second itself are returned.
func TestIfModifiedSinceIsInclusiveToTheSecond(t *testing.T) {
	s, srv, clock := newSim(t, Options{Dataset: simkit.Options{Seed: 4, Products: 5, Customers: 10, Orders: 5}})
	clock.add(time.Hour + 700*time.Millisecond)
	ids := s.Dataset().TouchCustomers(1)
	since := clock.Now().Truncate(time.Second)
	_, cs, _ := listContacts(t, s, srv, "page=1", http.Header{"If-Modified-Since": {since.Format("2006-01-02T15:04:05")}})
	if len(cs) != 1 || cs[0]["ContactID"] != ids[0] {
		t.Fatalf("If-Modified-Since the change's second returned %v, want the changed contact", cs)
	}
	_, cs, _ = listContacts(t, s, srv, "page=1", http.Header{"If-Modified-Since": {since.Add(time.Second).Format("2006-01-02T15:04:05")}})
	if len(cs) != 0 {
		t.Fatalf("If-Modified-Since the next second returned %d contacts", len(cs))
	}
}

// TestSkewMovesTheVendorsClock: with a skew the Date header, the envelope
// and the stamps of changes run on the vendor's clock.
func TestSkewMovesTheVendorsClock(t *testing.T) {
	s, srv, clock := newSim(t, Options{})
	s.SetSkew(7 * time.Minute)
	_, _, h := listContacts(t, s, srv, "page=1", nil)
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || !date.Equal(clock.Now().Add(7*time.Minute).Truncate(time.Second)) {
		t.Fatalf("Date %q (%v), want our clock plus 7 minutes (%v)", h.Get("Date"), err, clock.Now().Add(7*time.Minute))
	}
	id := s.Dataset().TouchCustomers(1)[0]
	var mod time.Time
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, c := range d.Customers {
			if c.ID == id {
				mod = c.Modified
			}
		}
	})
	if !mod.Equal(clock.Now().Add(7 * time.Minute)) {
		t.Fatalf("a change was stamped %v, want the vendor's clock %v", mod, clock.Now().Add(7*time.Minute))
	}
}

// TestInvoicesOfOtherTypes: AddInvoiceOfType serves an invoice of a type
// beyond ACCREC and ACCPAY, outside Documents and Expected.
func TestInvoicesOfOtherTypes(t *testing.T) {
	s, srv, _ := newSim(t, Options{})
	before := s.Expected()
	docs := len(s.Documents())
	id := s.AddInvoiceOfType("ARPREPAYMENT")
	_, body := refresh(t, s, srv, s.Authorize())
	resp := get(t, srv, "/Invoices?page=1", body["access_token"].(string), s.Tenants()[0], "application/json")
	var env struct{ Invoices []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, inv := range env.Invoices {
		if inv["InvoiceID"] == id {
			found = inv["Type"] == "ARPREPAYMENT"
		}
	}
	if !found {
		t.Fatalf("invoice %s of type ARPREPAYMENT not served", id)
	}
	if len(s.Documents()) != docs || s.Expected()[model.KindInvoice] != before[model.KindInvoice] {
		t.Fatal("the odd invoice counts as a mapped record")
	}
}
