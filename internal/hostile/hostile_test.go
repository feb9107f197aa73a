package hostile

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
	unleashedsim "github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

func TestAttacks(t *testing.T) {
	ds := simkit.Options{Seed: 7, Products: 5, Customers: 3, Orders: 4, Warehouses: 2}
	srv := New(Options{Dataset: ds, InternalURL: "http://127.0.0.2:9", PlainURL: "http://127.0.0.3:9", HugeBytes: 1 << 20, SlowFor: 1500 * time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	victim := simkit.NewDataset(ds)
	var victimProduct string
	victim.View(func(d *simkit.Dataset) { victimProduct = d.Products[0].ID })

	signed := func(path, query string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path+"?"+query, nil)
		req.Header.Set("api-auth-id", unleashedsim.DefaultAPIID)
		req.Header.Set("api-auth-signature", unleashedsim.Sign(query, DefaultAPIKey))
		req.Header.Set("client-type", "erpsync/test")
		req.Header.Set("Accept", "application/json")
		return req
	}
	cases := []struct {
		name   string
		req    *http.Request
		status int
		check  func(t *testing.T, resp *http.Response, body []byte)
	}{
		{"forge serves the victim's ids in year 9999, deleted", signed("/forge/Products/1", "includeObsolete=true"), http.StatusOK, func(t *testing.T, _ *http.Response, body []byte) {
			var page struct {
				Items []struct {
					Guid           string
					Obsolete       bool
					LastModifiedOn string
				}
			}
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatalf("%v: %.200s", err, body)
			}
			found := false
			for _, it := range page.Items {
				if it.Guid == victimProduct {
					found = true
				}
				if !it.Obsolete {
					t.Errorf("%s is not obsolete", it.Guid)
				}
				if !strings.Contains(it.LastModifiedOn, "/Date(253402300799000") {
					t.Errorf("%s modified %s, want year 9999", it.Guid, it.LastModifiedOn)
				}
			}
			if !found {
				t.Errorf("the victim's product %s is not forged", victimProduct)
			}
		}},
		{"forge refuses a wrong signature", func() *http.Request {
			r := signed("/forge/Products/1", "")
			r.Header.Set("api-auth-signature", "nope")
			return r
		}(), http.StatusForbidden, nil},
		{"throttle", signed("/throttle/Products/1", ""), http.StatusTooManyRequests, func(t *testing.T, resp *http.Response, _ []byte) {
			if got := resp.Header.Get("Retry-After"); got != "1000000000" {
				t.Errorf("Retry-After %q", got)
			}
		}},
		{"redirect-private", signed("/redirect-private/Products/1", "a=b"), http.StatusFound, func(t *testing.T, resp *http.Response, _ []byte) {
			if got := resp.Header.Get("Location"); got != "http://127.0.0.2:9/Products/1?a=b" {
				t.Errorf("Location %q", got)
			}
		}},
		{"redirect-http", signed("/redirect-http/Products/1", ""), http.StatusFound, func(t *testing.T, resp *http.Response, _ []byte) {
			if got := resp.Header.Get("Location"); got != "http://127.0.0.3:9/Products/1" {
				t.Errorf("Location %q", got)
			}
		}},
		{"huge", signed("/huge/Products/1", ""), http.StatusOK, func(t *testing.T, _ *http.Response, body []byte) {
			if len(body) < 1<<20 {
				t.Errorf("%d bytes", len(body))
			}
			if !json.Valid(body) {
				t.Errorf("the huge body is not JSON")
			}
		}},
		{"slow", signed("/slow/Products/1", ""), http.StatusOK, func(t *testing.T, _ *http.Response, body []byte) {
			if !json.Valid(body) {
				t.Errorf("the slow body is not JSON: %q", body)
			}
		}},
		{"exfil", signed("/exfil/Products/1", ""), http.StatusUnauthorized, nil},
		{"unknown", signed("/nothing", ""), http.StatusNotFound, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, err := noRedirect.Do(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.status, body)
			}
			if tc.name == "slow" && time.Since(start) < time.Second {
				t.Errorf("the slow answer took %s", time.Since(start))
			}
			if tc.check != nil {
				tc.check(t, resp, body)
			}
		})
	}

	st := srv.Stats()
	for _, a := range []string{Throttle, RedirectPrivate, RedirectHTTP, Huge, Slow, Exfil} {
		if st[a].Requests != 1 {
			t.Errorf("%s: %d requests counted, want 1", a, st[a].Requests)
		}
		if st[a].Headers["Api-Auth-Id"] != 1 || st[a].Headers["Api-Auth-Signature"] != 1 {
			t.Errorf("%s: credential headers %v", a, st[a].Headers)
		}
	}
	if st[Forge].Requests != 2 || st["other"].Requests != 1 {
		t.Errorf("forge %d, other %d requests", st[Forge].Requests, st["other"].Requests)
	}
	srv.ResetStats()
	if st := srv.Stats(); st[Forge].Requests != 0 || st[Exfil].Requests != 0 {
		t.Errorf("not reset: %v", st)
	}
}

func TestStartServesEveryListener(t *testing.T) {
	run, err := Start(StartConfig{Options: Options{Dataset: simkit.Options{Seed: 1, Products: 2, Customers: 1, Orders: 1, Warehouses: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Shutdown(t.Context())
	st := run.State()
	for _, u := range []string{st.InternalURL, st.PlainURL} {
		resp, err := http.Get(u + "/latest/meta-data")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if st := run.State(); st.Internal != 1 || st.Plain != 1 {
		t.Errorf("internal %d, plain %d", st.Internal, st.Plain)
	}
	if !strings.HasPrefix(st.BaseURL, "http://127.0.0.1:") || !strings.HasPrefix(st.InternalURL, "http://127.0.0.2:") {
		t.Errorf("%+v", st)
	}
	run.Reset()
	if st := run.State(); st.Internal != 0 {
		t.Errorf("not reset")
	}
}
