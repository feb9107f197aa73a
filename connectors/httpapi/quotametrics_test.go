package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/erpsync/erpsync-operator/connectors"
)

// quotaSeries gathers the manager's registry (where DefaultObserver, the
// operator's metrics, writes) and returns the erpsync_quota_* values of
// one credential by "metric/quota".
func quotaSeries(t *testing.T, credential string) map[string]float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "erpsync_quota_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["credential"] != credential {
				continue
			}
			if labels["connector"] != "quotatest" {
				t.Errorf("%s of %s has connector %q, want the client's", mf.GetName(), credential, labels["connector"])
			}
			out[mf.GetName()+"/"+labels["quota"]] = gaugeValue(m)
		}
	}
	return out
}

func gaugeValue(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

func TestQuotaMetrics(t *testing.T) {
	midnight := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		quotas []Quota
		// saved is what the store holds before the first call.
		saved map[string]QuotaUsage
		calls int
		// refused is how many of the calls fail for a used-up quota.
		refused int
		want    map[string]float64
	}{
		{name: "daily quota", quotas: []Quota{{Name: "day", Limit: 100, Period: Daily}}, calls: 3,
			want: map[string]float64{"erpsync_quota_used/day": 3, "erpsync_quota_limit/day": 100, "erpsync_quota_reset_timestamp_seconds/day": float64(midnight.Unix())}},
		{name: "monthly quota counted, not enforced: no limit series", quotas: []Quota{{Name: "month", Period: Monthly}}, calls: 2,
			want: map[string]float64{"erpsync_quota_used/month": 2, "erpsync_quota_reset_timestamp_seconds/month": float64(april.Unix())}},
		{name: "counts loaded from the store", quotas: []Quota{{Name: "day", Limit: 100, Period: Daily}},
			saved: map[string]QuotaUsage{"day": {PeriodStart: periodStart(t0, Daily), Used: 40}}, calls: 1,
			want: map[string]float64{"erpsync_quota_used/day": 41, "erpsync_quota_limit/day": 100, "erpsync_quota_reset_timestamp_seconds/day": float64(midnight.Unix())}},
		{name: "yesterday's count from the store starts afresh", quotas: []Quota{{Name: "day", Limit: 100, Period: Daily}},
			saved: map[string]QuotaUsage{"day": {PeriodStart: periodStart(t0, Daily).AddDate(0, 0, -1), Used: 99}}, calls: 1,
			want: map[string]float64{"erpsync_quota_used/day": 1, "erpsync_quota_limit/day": 100, "erpsync_quota_reset_timestamp_seconds/day": float64(midnight.Unix())}},
		{name: "used up: refused calls are not counted", quotas: []Quota{{Name: "day", Limit: 2, Period: Daily}}, calls: 4, refused: 2,
			want: map[string]float64{"erpsync_quota_used/day": 2, "erpsync_quota_limit/day": 2, "erpsync_quota_reset_timestamp_seconds/day": float64(midnight.Unix())}},
		{name: "two quotas", quotas: []Quota{{Name: "day", Limit: 50, Period: Daily}, {Name: "month", Limit: 1000, Period: Monthly}}, calls: 5,
			want: map[string]float64{"erpsync_quota_used/day": 5, "erpsync_quota_limit/day": 50, "erpsync_quota_reset_timestamp_seconds/day": float64(midnight.Unix()),
				"erpsync_quota_used/month": 5, "erpsync_quota_limit/month": 1000, "erpsync_quota_reset_timestamp_seconds/month": float64(april.Unix())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := Key("quotatest", t.Name())
			store := NewMemoryQuotaStore()
			if tc.saved != nil {
				if err := store.Save(context.Background(), key, tc.saved); err != nil {
					t.Fatal(err)
				}
			}
			srv := newScript(t)
			c, err := New(Options{Connector: "quotatest", Registry: NewRegistry(store), Clock: NewFakeClock(t0),
				Limits: []Limit{{Key: key, Quotas: tc.quotas}}})
			if err != nil {
				t.Fatal(err)
			}
			cred := CredentialID(key)
			t.Cleanup(func() { DefaultObserver.(QuotaObserver).ForgetCredential("quotatest", cred) })
			refused := 0
			for range tc.calls {
				_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
				switch {
				case err == nil:
				case connectors.KindOf(err) == connectors.KindQuotaExhausted:
					refused++
				default:
					t.Fatal(err)
				}
			}
			if refused != tc.refused {
				t.Errorf("%d calls refused, want %d", refused, tc.refused)
			}
			got := quotaSeries(t, cred)
			if len(got) != len(tc.want) {
				t.Errorf("series %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// TestQuotaMetricsResetAtPeriodChange: the first call of a new day shows
// the new day's count and reset time, and a quota used up yesterday is
// free again.
func TestQuotaMetricsResetAtPeriodChange(t *testing.T) {
	key := Key("quotatest", "reset")
	cred := CredentialID(key)
	t.Cleanup(func() { DefaultObserver.(QuotaObserver).ForgetCredential("quotatest", cred) })
	clock := NewFakeClock(time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC))
	srv := newScript(t)
	c, err := New(Options{Connector: "quotatest", Registry: NewRegistry(nil), Clock: clock,
		Limits: []Limit{{Key: key, Quotas: []Quota{{Name: "day", Limit: 3, Period: Daily}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		_, _ = c.Get(context.Background(), "op", srv.srv.URL, nil)
	}
	day1 := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	if got := quotaSeries(t, cred); got["erpsync_quota_used/day"] != 3 || got["erpsync_quota_reset_timestamp_seconds/day"] != float64(day1.Unix()) {
		t.Fatalf("before midnight: %v", got)
	}
	clock.Set(day1.Add(time.Minute))
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatalf("the first call of the new day: %v", err)
	}
	got := quotaSeries(t, cred)
	if got["erpsync_quota_used/day"] != 1 || got["erpsync_quota_limit/day"] != 3 ||
		got["erpsync_quota_reset_timestamp_seconds/day"] != float64(day1.AddDate(0, 0, 1).Unix()) {
		t.Errorf("after midnight: %v", got)
	}
	if srv.count() != 4 {
		t.Errorf("the vendor got %d calls, want 3 yesterday and 1 today", srv.count())
	}
}

// TestQuotaMetricsDroppedWithTheLimiter: pruning an idle limiter drops its
// credential's series, and keeps those of limiters in use.
func TestQuotaMetricsDroppedWithTheLimiter(t *testing.T) {
	wall := t0
	reg := NewRegistry(nil)
	reg.now = func() time.Time { return wall }
	srv := newScript(t)
	creds := map[string]string{}
	clients := map[string]*Client{}
	for _, name := range []string{"idle", "busy"} {
		key := Key("quotatest", "prune-"+name)
		creds[name] = CredentialID(key)
		c, err := New(Options{Connector: "quotatest", Registry: reg, Clock: NewFakeClock(t0),
			Limits: []Limit{{Key: key, Quotas: []Quota{{Name: "day", Limit: 100, Period: Daily}}}}})
		if err != nil {
			t.Fatal(err)
		}
		clients[name] = c
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { DefaultObserver.(QuotaObserver).ForgetCredential("quotatest", creds["busy"]) })
	for _, name := range []string{"idle", "busy"} {
		if got := quotaSeries(t, creds[name]); len(got) != 3 {
			t.Fatalf("%s before pruning: %v", name, got)
		}
	}
	wall = wall.Add(LimiterIdleTTL - time.Hour)
	if _, err := clients["busy"].Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	wall = wall.Add(2 * time.Hour)
	if n := reg.Prune(); n != 1 {
		t.Fatalf("pruned %d limiters, want 1", n)
	}
	if got := quotaSeries(t, creds["idle"]); len(got) != 0 {
		t.Errorf("the pruned credential still has series: %v", got)
	}
	if got := quotaSeries(t, creds["busy"]); got["erpsync_quota_used/day"] != 2 {
		t.Errorf("the credential in use: %v", got)
	}
}

// TestQuotaCredentialsOfAContext: requests under WithQuotaCredentials
// record the credentials of their quotas, not of limiters without one, and
// also when the quota refuses the call.
func TestQuotaCredentialsOfAContext(t *testing.T) {
	srv := newScript(t)
	reg := NewRegistry(nil)
	app, tenant := Key("xero-app", "client"), Key("xero", "client", "tenant")
	c, err := New(Options{Connector: "quotatest", Registry: reg, Clock: NewFakeClock(t0), Observer: NopObserver{},
		Limits: []Limit{minuteLimit(app, 100), {Key: tenant, Quotas: []Quota{{Name: "day", Limit: 1, Period: Daily}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	ctx, rec := WithQuotaCredentials(context.Background())
	if got := rec.List(); got != nil {
		t.Fatalf("before any call: %v", got)
	}
	if _, err := c.Get(ctx, "op", srv.srv.URL, nil); connectors.KindOf(err) != connectors.KindQuotaExhausted {
		t.Fatalf("want the quota to refuse the call, got %v", err)
	}
	got := rec.List()
	if len(got) != 1 || got[0] != CredentialID(tenant) {
		t.Errorf("recorded %v, want only the tenant's %s", got, CredentialID(tenant))
	}
	if !strings.HasPrefix(got[0], "xero-") || len(got[0]) != len("xero-")+32 {
		t.Errorf("credential %q is not the vendor prefix and a 32-digit digest", got[0])
	}
}

func TestCredentialID(t *testing.T) {
	for _, tc := range []struct{ key, prefix string }{
		{Key("xero", "a"), "xero-"},
		{Key("Cin7 Omni!", "a"), "cin7-omni-"},
		{Key("a-very-long-vendor-name-indeed", "a"), "a-very-long-vend-"},
		{"no-colon", "no-colon-"},
		{":only", ""},
	} {
		id := CredentialID(tc.key)
		if !strings.HasPrefix(id, tc.prefix) || len(id) != len(tc.prefix)+32 {
			t.Errorf("CredentialID(%q) = %q, want %q and 32 hex digits", tc.key, id, tc.prefix)
		}
		if CredentialID(tc.key+"x") == id {
			t.Errorf("two keys, one ID %q", id)
		}
	}
}
