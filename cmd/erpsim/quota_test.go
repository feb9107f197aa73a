package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	cin7omnisim "github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

func TestQuotaRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		want   bool
	}{
		{"xero's day", 429, map[string]string{"X-Rate-Limit-Problem": "day", "Retry-After": "3600"}, true},
		{"xero's minute", 429, map[string]string{"X-Rate-Limit-Problem": "minute", "Retry-After": "30"}, false},
		{"a long wait without a problem named (cin7 omni's day)", 429, map[string]string{"Retry-After": "40000"}, true},
		{"a minute's wait (cin7 omni's minute)", 429, map[string]string{"Retry-After": "60"}, false},
		{"two minutes exactly", 429, map[string]string{"Retry-After": "120"}, false},
		{"no Retry-After", 429, nil, false},
		{"an HTTP date is not read", 429, map[string]string{"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"}, false},
		{"not a 429", 503, map[string]string{"Retry-After": "40000"}, false},
		{"a success", 200, map[string]string{"X-Rate-Limit-Problem": "day"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			if got := quotaRefusal(tc.status, h); got != tc.want {
				t.Errorf("quotaRefusal(%d, %v) = %v, want %v", tc.status, h, got, tc.want)
			}
		})
	}
}

func TestQuotaSpentFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spent   int
		vendors []string
		err     string
		left    map[string]int
	}{
		{"nothing spent: the simulators' defaults", 0, nil, "", map[string]int{"cin7omni": 0, "xero": 0, "katana": 0}},
		{"some spent", 4850, nil, "", map[string]int{"cin7omni": 150, "xero": 150, "katana": 0}},
		{"all spent is refused", 5000, nil, "leave it at least one", nil},
		{"all spent is fine for vendors without a daily quota", 5000, []string{"katana"}, "", nil},
		{"negative", -1, nil, "want 0 or more", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkQuotaSpent(tc.spent, tc.vendors)
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("checkQuotaSpent(%d, %v) = %v, want an error with %q", tc.spent, tc.vendors, err, tc.err)
			}
			for v, want := range tc.left {
				if got := dayLimitLeft(v, tc.spent); got != want {
					t.Errorf("dayLimitLeft(%s, %d) = %d, want %d", v, tc.spent, got, want)
				}
			}
		})
	}
}

// TestQuotaSpent serves Cin7 Omni with all but two calls of the day's
// quota spent: two calls are served, the third is refused for the quota,
// and the stats say so.
func TestQuotaSpent(t *testing.T) {
	f, err := start(context.Background(), config{listen: "127.0.0.1", adminAddr: "127.0.0.1:0", timeScale: 1,
		dataset: simkit.Options{Seed: 2, Products: 3, Customers: 2, Orders: 2, Warehouses: 1}, vendors: []string{"cin7omni"},
		quotaSpent: cin7omnisim.PerDay - 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.shutdown)
	st := f.state().Vendors[0]
	var codes []int
	for range 3 {
		req, err := http.NewRequest(http.MethodGet, st.BaseURL+"v1/Contacts?rows=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(st.Credentials["username"], st.Credentials["apiKey"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{200, 200, 429}; codes[0] != want[0] || codes[1] != want[1] || codes[2] != want[2] {
		t.Fatalf("answers %v, want %v", codes, want)
	}
	st = f.state().Vendors[0]
	if st.Served != 2 || st.Throttled != 1 || st.QuotaRefused != 1 {
		t.Errorf("stats: served %d, throttled %d, refused for the quota %d; want 2, 1, 1", st.Served, st.Throttled, st.QuotaRefused)
	}
	if _, err := start(context.Background(), config{listen: "127.0.0.1", adminAddr: "127.0.0.1:0", timeScale: 1,
		vendors: []string{"cin7omni"}, quotaSpent: cin7omnisim.PerDay}); err == nil {
		t.Error("a fleet started with the whole day's quota spent")
	}
}
