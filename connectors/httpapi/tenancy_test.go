package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

func keysOf(t *testing.T, opts Options) []string {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = NewRegistry(nil)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range c.ordered {
		out = append(out, l.key)
	}
	return out
}

func TestLimiterKeysScopeSecretAndHost(t *testing.T) {
	const secretA, secretB = "s3cr3t-Api-Key-AAAA", "s3cr3t-Api-Key-BBBB"
	limits := []Limit{{Key: Key("xero-app", "shared-client-id")}, {Key: Key("xero", "shared-client-id", "tenant")}}
	base := func(secret, url string) Options {
		return Options{Secret: secret, BaseURL: url, Limits: limits}
	}
	ref := keysOf(t, base(secretA, "https://api.xero.com/api.xro/2.0"))
	cases := []struct {
		name string
		opts Options
		same bool
	}{
		{"same secret and host", base(secretA, "https://api.xero.com/other/path"), true},
		{"host case does not matter", base(secretA, "https://API.Xero.com/api.xro/2.0"), true},
		{"same id, other secret", base(secretB, "https://api.xero.com/api.xro/2.0"), false},
		{"same secret, other host", base(secretA, "https://evil.example.com/api.xro/2.0"), false},
		{"same secret, other port", base(secretA, "https://api.xero.com:8443/api.xro/2.0"), false},
		{"no secret", base("", "https://api.xero.com/api.xro/2.0"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := keysOf(t, tc.opts)
			if len(got) != len(ref) {
				t.Fatalf("%d keys, want %d", len(got), len(ref))
			}
			for i := range got {
				if (got[i] == ref[i]) != tc.same {
					t.Errorf("key %d: %q vs %q, want same=%v", i, got[i], ref[i], tc.same)
				}
			}
		})
	}
	for _, k := range append(ref, keysOf(t, base(secretB, "https://api.xero.com"))...) {
		if strings.Contains(k, secretA) || strings.Contains(k, secretB) || strings.Contains(strings.ToLower(k), "s3cr3t") {
			t.Errorf("key %q contains the secret", k)
		}
		if !strings.HasSuffix(k, "@api.xero.com") {
			t.Errorf("key %q does not name the host", k)
		}
	}
	// Two clients of one credential and host share their limiters.
	reg := NewRegistry(nil)
	c1, _ := New(Options{Registry: reg, Secret: secretA, BaseURL: "https://api.xero.com", Limits: limits})
	c2, _ := New(Options{Registry: reg, Secret: secretA, BaseURL: "https://api.xero.com/x", Limits: limits})
	c3, _ := New(Options{Registry: reg, Secret: secretB, BaseURL: "https://api.xero.com", Limits: limits})
	if c1.ordered[0] != c2.ordered[0] || c1.ordered[1] != c2.ordered[1] {
		t.Error("two clients of one credential do not share their limiters")
	}
	if c1.ordered[0] == c3.ordered[0] {
		t.Error("clients of two secrets share a limiter")
	}
	// Without Secret and BaseURL (tests, tools) the keys are as given.
	if got := keysOf(t, Options{Limits: limits}); got[0] != limits[0].Key {
		t.Errorf("unscoped key %q, want %q", got[0], limits[0].Key)
	}
}

func TestIsDefaultHost(t *testing.T) {
	hosts := []string{"api.xero.com", "identity.xero.com"}
	for url, want := range map[string]bool{
		"https://api.xero.com/api.xro/2.0":   true,
		"https://API.XERO.COM./api.xro/2.0":  true,
		"https://api.xero.com:443/":          true,
		"https://api.xero.com:8443/":         false,
		"http://api.xero.com/":               false,
		"https://api.xero.com.evil.example/": false,
		"https://127.0.0.1:9/":               false,
		"::":                                 false,
	} {
		if got := IsDefaultHost(url, hosts); got != want {
			t.Errorf("IsDefaultHost(%q) = %v, want %v", url, got, want)
		}
	}
}

// TestHostileRetryAfterIsClamped plays a server that answers with a
// Retry-After of a billion seconds, in every form that used to block a
// credential for decades.
func TestHostileRetryAfterIsClamped(t *testing.T) {
	huge := strconv.Itoa(1e9)
	farDate := time.Date(2058, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	dayEnd := t0.Add(MaxBlock) // a rolling day's end at the latest
	monthEnd := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		header   map[string]string
		code     int
		limit    Limit
		classify func(*Response) error
		kind     connectors.ErrorKind
		retryAt  time.Time
	}{
		{name: "429 seconds on a minute window", code: 429, header: map[string]string{"Retry-After": huge},
			limit: minuteLimit("k", 60), kind: connectors.KindRateLimited, retryAt: t0.Add(MaxWindowPause)},
		{name: "429 date on a minute window, server clock far off", code: 429,
			header: map[string]string{"Retry-After": farDate, "Date": time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)},
			limit:  minuteLimit("k", 60), kind: connectors.KindRateLimited, retryAt: t0.Add(MaxWindowPause)},
		{name: "429 on a limiter with no window", code: 429, header: map[string]string{"Retry-After": huge},
			limit: Limit{Key: "k"}, kind: connectors.KindRateLimited, retryAt: t0.Add(MaxWindowPause)},
		{name: "429 naming the daily quota", code: 429, header: map[string]string{"Retry-After": huge, "X-Rate-Limit-Problem": "day"},
			limit: Limit{Key: "k", Quotas: []Quota{{Name: "day", Limit: 5000, Period: Daily}}}, kind: connectors.KindQuotaExhausted, retryAt: dayEnd},
		{name: "429 naming an undeclared daily quota", code: 429, header: map[string]string{"Retry-After": huge, "X-Rate-Limit-Problem": "day"},
			limit: minuteLimit("k", 60), kind: connectors.KindQuotaExhausted, retryAt: dayEnd},
		{name: "429 naming the monthly quota", code: 429, header: map[string]string{"Retry-After": huge, "X-Rate-Limit-Problem": "month"},
			limit: Limit{Key: "k", Quotas: []Quota{{Name: "month", Period: Monthly}}}, kind: connectors.KindQuotaExhausted, retryAt: monthEnd},
		{name: "classified quota block in 2058", code: 403,
			limit: Limit{Key: "k", Quotas: []Quota{{Name: "month", Period: Monthly}}},
			classify: func(r *Response) error {
				if r.StatusCode != 403 {
					return nil
				}
				return &connectors.Error{Kind: connectors.KindQuotaExhausted, Msg: "used up", RetryAt: time.Date(2058, 1, 1, 0, 0, 0, 0, time.UTC)}
			},
			kind: connectors.KindQuotaExhausted, retryAt: monthEnd},
		{name: "503 seconds", code: 503, header: map[string]string{"Retry-After": huge},
			limit: minuteLimit("k", 60), kind: connectors.KindERPUnavailable, retryAt: t0.Add(MaxWindowPause)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScript(t, reply{code: tc.code, header: tc.header})
			clock := NewFakeClock(t0)
			reg := NewRegistry(nil)
			opts := Options{Registry: reg, Clock: clock, Limits: []Limit{tc.limit}, ProblemHeader: "X-Rate-Limit-Problem",
				Classify: tc.classify, DefaultHost: true, MaxRetries: -1}
			c, _ := New(opts)
			_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
			if connectors.KindOf(err) != tc.kind || !connectors.RetryAtOf(err).Equal(tc.retryAt) {
				t.Fatalf("err %v (kind %s, RetryAt %v), want %s at %v", err, connectors.KindOf(err), connectors.RetryAtOf(err), tc.kind, tc.retryAt)
			}
			if ra := connectors.RetryAtOf(err); ra.Sub(t0) > MaxBlock && tc.retryAt != monthEnd {
				t.Fatalf("RetryAt %v is more than a day ahead", ra)
			}
			// What the limiter remembers is bounded the same way: another
			// client of the credential is held at most until then.
			c2, _ := New(opts)
			_, err = c2.Get(context.Background(), "op", srv.srv.URL, nil)
			if ra := connectors.RetryAtOf(err); ra.After(tc.retryAt) {
				t.Fatalf("second client held until %v, past %v", ra, tc.retryAt)
			}
		})
	}
}

func TestStoredBlockIsClampedOnLoad(t *testing.T) {
	store := NewMemoryQuotaStore()
	key := "k"
	_ = store.Save(context.Background(), key, map[string]QuotaUsage{"day": {PeriodStart: t0.Truncate(24 * time.Hour), Used: 10,
		BlockedUntil: time.Date(2058, 1, 1, 0, 0, 0, 0, time.UTC)}})
	srv := newScript(t)
	clock := NewFakeClock(t0)
	c, _ := New(Options{Registry: NewRegistry(store), Clock: clock, DefaultHost: true,
		Limits: []Limit{{Key: key, Quotas: []Quota{{Name: "day", Limit: 5000, Period: Daily}}}}})
	_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
	if want := t0.Add(MaxBlock); !connectors.RetryAtOf(err).Equal(want) {
		t.Fatalf("err %v, RetryAt %v; want the block cut to a day %v", err, connectors.RetryAtOf(err), want)
	}
}

// TestNonDefaultHostBlocksStayInMemory: what a server that is not the
// vendor's own says never outlives the process.
func TestNonDefaultHostBlocksStayInMemory(t *testing.T) {
	for _, defaultHost := range []bool{false, true} {
		t.Run("defaultHost="+strconv.FormatBool(defaultHost), func(t *testing.T) {
			store := NewMemoryQuotaStore()
			clock := NewFakeClock(t0)
			srv := newScript(t, reply{code: 429, header: map[string]string{"X-Rate-Limit-Problem": "day", "Retry-After": "7200"}}, reply{code: 200})
			lim := Limit{Key: "k", Windows: []Window{{Name: "minute", Limit: 60, Per: time.Minute}}, Quotas: []Quota{{Name: "day", Limit: 5000, Period: Daily}}}
			opts := Options{Clock: clock, ProblemHeader: "X-Rate-Limit-Problem", Limits: []Limit{lim}, DefaultHost: defaultHost,
				Secret: "key", BaseURL: srv.srv.URL, Registry: NewRegistry(store)}
			c, _ := New(opts)
			if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); connectors.KindOf(err) != connectors.KindQuotaExhausted {
				t.Fatalf("err %v", err)
			}
			// In this process the block holds for every client.
			c2, _ := New(opts)
			if _, err := c2.Get(context.Background(), "op", srv.srv.URL, nil); connectors.KindOf(err) != connectors.KindQuotaExhausted || srv.count() != 1 {
				t.Fatalf("same process: err %v after %d calls", err, srv.count())
			}
			saved, _ := store.Load(context.Background(), c.ordered[0].key)
			if blocked := !saved["day"].BlockedUntil.IsZero(); blocked != defaultHost {
				t.Fatalf("store holds %+v; want a saved block only from the default host", saved)
			}
			if saved["day"].Used != 1 {
				t.Errorf("the calls we made are saved either way: %+v", saved["day"])
			}
			opts.Registry = NewRegistry(store) // a restart
			c3, _ := New(opts)
			_, err := c3.Get(context.Background(), "op", srv.srv.URL, nil)
			if defaultHost {
				if connectors.KindOf(err) != connectors.KindQuotaExhausted || srv.count() != 1 {
					t.Fatalf("after restart: err %v, %d calls; the vendor's own block must hold", err, srv.count())
				}
			} else if err != nil || srv.count() != 2 {
				t.Fatalf("after restart: err %v, %d calls; a non-default host's block must not survive", err, srv.count())
			}
		})
	}
}

func TestVendorNowIgnoresAFarClock(t *testing.T) {
	now := t0
	cases := []struct {
		server, want time.Time
	}{
		{time.Time{}, now},
		{now.Add(4 * time.Minute), now.Add(4 * time.Minute)},
		{now.Add(-4 * time.Minute), now.Add(-4 * time.Minute)},
		{now.Add(6 * time.Minute), now},
		{now.AddDate(32, 0, 0), now},
		{now.AddDate(0, -1, 0), now},
	}
	for _, tc := range cases {
		r := &Response{ServerTime: tc.server, ReceivedAt: now}
		if got := r.VendorNow(); !got.Equal(tc.want) {
			t.Errorf("VendorNow with Date %v = %v, want %v", tc.server, got, tc.want)
		}
	}
	// Through a client: the classifier sees our clock when the server's is
	// decades ahead.
	far := time.Date(2058, 6, 1, 0, 0, 0, 0, time.UTC)
	srv := newScript(t, reply{code: 200, header: map[string]string{"Date": far.Format(http.TimeFormat)}})
	var seen time.Time
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0), Classify: func(r *Response) error { seen = r.VendorNow(); return nil }})
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if !seen.Equal(t0) {
		t.Fatalf("VendorNow = %v, want our clock %v", seen, t0)
	}
}

func TestDefaultClientRefusesCrossHostRedirects(t *testing.T) {
	target := newScript(t)
	srv := newScript(t, reply{code: http.StatusFound, header: map[string]string{"Location": strings.Replace(target.srv.URL, "127.0.0.1", "localhost", 1) + "/stolen"}})
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0), MaxRetries: -1})
	h := http.Header{}
	h.Set("api-auth-applicationkey", "secret")
	_, err := c.Get(context.Background(), "op", srv.srv.URL, h)
	if err == nil || target.count() != 0 {
		t.Fatalf("err %v, target saw %d requests; want the redirect refused", err, target.count())
	}
	if connectors.KindOf(err) != connectors.KindInvalidConfig {
		t.Errorf("kind %q, want InvalidConfig (not retried)", connectors.KindOf(err))
	}
}
