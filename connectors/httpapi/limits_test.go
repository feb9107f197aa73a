package httpapi

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

func TestKeyHidesParts(t *testing.T) {
	k := Key("xero", "client-id", "secret-tenant")
	if k == Key("xero", "client-id", "other") || k != Key("xero", "client-id", "secret-tenant") {
		t.Fatal("keys must be stable and distinct")
	}
	if got := k[:5]; got != "xero:" {
		t.Errorf("key %q should start with the vendor", k)
	}
	for _, p := range []string{"client-id", "secret-tenant"} {
		if contains(k, p) {
			t.Errorf("key %q shows %q", k, p)
		}
	}
	if Key("v", "ab", "c") == Key("v", "a", "bc") {
		t.Error("parts must not run together")
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// sendTimes returns a server recording the fake-clock time of each request.
func sendTimes(t *testing.T, clock Clock) (*script, func() []time.Time) {
	srv := newScript(t)
	var mu sync.Mutex
	var times []time.Time
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, clock.Now())
		mu.Unlock()
	})
	return srv, func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), times...)
	}
}

// maxInWindow returns the most sends within any span of per.
func maxInWindow(times []time.Time, per time.Duration) int {
	best := 0
	for i := range times {
		n := 0
		for j := range times {
			if !times[j].Before(times[i]) && times[j].Sub(times[i]) < per {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func TestWindows(t *testing.T) {
	tests := []struct {
		name    string
		windows []Window
		calls   int
		checks  map[time.Duration]int // span -> most calls allowed in it
		slept   time.Duration         // minimum total wait
	}{
		{name: "60 a minute", windows: []Window{{Name: "minute", Limit: 60, Per: time.Minute}}, calls: 150,
			checks: map[time.Duration]int{time.Minute: 60}, slept: 2 * time.Minute},
		{name: "Cin7 Omni 3/s and 60/min", windows: []Window{{Name: "second", Limit: 3, Per: time.Second}, {Name: "minute", Limit: 60, Per: time.Minute}}, calls: 130,
			checks: map[time.Duration]int{time.Second: 3, time.Minute: 60}, slept: 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewFakeClock(t0)
			srv, times := sendTimes(t, clock)
			c, err := New(Options{Registry: NewRegistry(nil), Clock: clock, Limits: []Limit{{Key: "k", Windows: tc.windows}}})
			if err != nil {
				t.Fatal(err)
			}
			for range tc.calls {
				if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
					t.Fatal(err)
				}
			}
			ts := times()
			if len(ts) != tc.calls {
				t.Fatalf("server saw %d calls, want %d", len(ts), tc.calls)
			}
			for per, limit := range tc.checks {
				if got := maxInWindow(ts, per); got != limit {
					t.Errorf("%d calls within %v, want exactly %d", got, per, limit)
				}
			}
			if clock.Slept() < tc.slept {
				t.Errorf("slept %v, want at least %v", clock.Slept(), tc.slept)
			}
		})
	}
}

func TestLimiterSharedByKey(t *testing.T) {
	clock := NewFakeClock(t0)
	srv, times := sendTimes(t, clock)
	reg := NewRegistry(nil)
	lim := minuteLimit(Key("katana", "cred-1"), 5)
	a, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{lim}})
	b, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{lim}})
	other, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{minuteLimit(Key("katana", "cred-2"), 5)}})
	for i := range 10 {
		c := a
		if i%2 == 1 {
			c = b
		}
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := maxInWindow(times(), time.Minute); got != 5 {
		t.Errorf("two clients of one credential sent %d calls within a minute, want 5", got)
	}
	if clock.Slept() < time.Minute {
		t.Errorf("slept %v, want at least a minute", clock.Slept())
	}
	// Another credential has its own limiter: it does not wait.
	before := clock.Slept()
	for range 5 {
		if _, err := other.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	if clock.Slept() != before {
		t.Errorf("another credential waited %v", clock.Slept()-before)
	}
}

func TestRetryAfterPausesEveryClientOfTheCredential(t *testing.T) {
	clock := NewFakeClock(t0)
	reg := NewRegistry(nil)
	lim := minuteLimit("shared", 100)
	throttled := newScript(t, reply{code: 429, header: map[string]string{"Retry-After": "30"}}, reply{code: 200})
	ok := newScript(t)
	a, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{lim}, MaxRetries: -1})
	b, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{lim}})
	if _, err := a.Get(context.Background(), "op", throttled.srv.URL, nil); connectors.KindOf(err) != connectors.KindRateLimited {
		t.Fatalf("err %v, want RateLimited (no retries)", err)
	}
	if _, err := b.Get(context.Background(), "op", ok.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if clock.Slept() != 30*time.Second {
		t.Errorf("the other client waited %v, want the 30s Retry-After", clock.Slept())
	}
}

func TestConcurrencyCap(t *testing.T) {
	var inFlight, peak atomic.Int32
	gate := make(chan struct{})
	srv := newScript(t)
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		inFlight.Add(-1)
	})
	reg := NewRegistry(nil)
	lim := Limit{Key: "tenant", Concurrency: 3}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		c, _ := New(Options{Registry: reg, Clock: NewFakeClock(t0), Limits: []Limit{lim}})
		wg.Go(func() {
			_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
			errs <- err
		})
	}
	// Wait until three requests are in flight, give the others a chance to
	// (wrongly) join, then let them all through.
	deadline := time.Now().Add(5 * time.Second)
	for inFlight.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak.Load() != 3 {
		t.Errorf("peak in flight %d, want 3", peak.Load())
	}
}

func TestQuotaPersistsAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quota.json")
	srv := newScript(t)
	clock := NewFakeClock(t0)
	lim := Limit{Key: Key("cin7omni", "user"), Windows: []Window{{Name: "second", Limit: 3, Per: time.Second}}, Quotas: []Quota{{Name: "day", Limit: 3, Period: Daily}}}

	c, _ := New(Options{Registry: NewRegistry(NewFileQuotaStore(path)), Clock: clock, Limits: []Limit{lim}})
	for range 3 {
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	midnight := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted || !connectors.RetryAtOf(err).Equal(midnight) {
		t.Fatalf("err %v (RetryAt %v), want QuotaExhausted until %v", err, connectors.RetryAtOf(err), midnight)
	}
	if srv.count() != 3 {
		t.Fatalf("server saw %d calls, want 3", srv.count())
	}

	// A restart: a new registry and store over the same file.
	c2, _ := New(Options{Registry: NewRegistry(NewFileQuotaStore(path)), Clock: clock, Limits: []Limit{lim}})
	_, err = c2.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted || srv.count() != 3 {
		t.Fatalf("after restart: err %v, %d calls; want QuotaExhausted and no call", err, srv.count())
	}
	// The next UTC day the quota is fresh.
	clock.Set(midnight)
	if _, err := c2.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	reg3 := NewRegistry(NewFileQuotaStore(path))
	c3, _ := New(Options{Registry: reg3, Clock: clock, Limits: []Limit{lim}})
	if _, err := c3.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if u := reg3.QuotaUsage(lim.Key)["day"]; u.Used != 2 || !u.PeriodStart.Equal(midnight) {
		t.Errorf("usage %+v, want 2 calls from %v", u, midnight)
	}
}

func TestVendorQuotaBlockPersists(t *testing.T) {
	store := NewMemoryQuotaStore()
	clock := NewFakeClock(t0)
	srv := newScript(t, reply{code: 429, header: map[string]string{"X-Rate-Limit-Problem": "day", "Retry-After": "7200"}}, reply{code: 200})
	lim := Limit{Key: "xero-tenant", Quotas: []Quota{{Name: "day", Limit: 5000, Period: Daily}}}
	opts := Options{Clock: clock, ProblemHeader: "X-Rate-Limit-Problem", Limits: []Limit{lim}}
	opts.Registry = NewRegistry(store)
	c, _ := New(opts)
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); connectors.KindOf(err) != connectors.KindQuotaExhausted {
		t.Fatalf("err %v", err)
	}
	opts.Registry = NewRegistry(store) // restart
	c2, _ := New(opts)
	_, err := c2.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted || !connectors.RetryAtOf(err).Equal(t0.Add(2*time.Hour)) || srv.count() != 1 {
		t.Fatalf("after restart: err %v, %d calls", err, srv.count())
	}
	clock.Advance(2 * time.Hour)
	if _, err := c2.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatalf("after Retry-After: %v", err)
	}
}

func TestMonthlyQuota(t *testing.T) {
	clock := NewFakeClock(time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC))
	srv := newScript(t)
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: clock, Limits: []Limit{{Key: "u", Quotas: []Quota{{Name: "month", Limit: 2, Period: Monthly}}}}})
	for range 2 {
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
	if want := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !connectors.RetryAtOf(err).Equal(want) {
		t.Fatalf("err %v, want RetryAt %v", err, want)
	}
	clock.Advance(time.Hour)
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
}

type failingStore struct{}

func (failingStore) Load(context.Context, string) (map[string]QuotaUsage, error) {
	return nil, errors.New("store down")
}

func (failingStore) Save(context.Context, string, map[string]QuotaUsage) error {
	return errors.New("store down")
}

func TestQuotaStoreFailure(t *testing.T) {
	srv := newScript(t)
	c, _ := New(Options{Registry: NewRegistry(failingStore{}), Clock: NewFakeClock(t0), Limits: []Limit{{Key: "k", Quotas: []Quota{{Name: "day", Limit: 5, Period: Daily}}}}})
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err == nil || srv.count() != 0 {
		t.Fatalf("err %v after %d calls; want an error and no call when the quota cannot be read", err, srv.count())
	}
	// A limit without quotas has nothing to lose: it goes on.
	c2, _ := New(Options{Registry: NewRegistry(failingStore{}), Clock: NewFakeClock(t0), Limits: []Limit{minuteLimit("k", 5)}})
	if _, err := c2.Get(context.Background(), "op", srv.srv.URL, nil); err != nil || srv.count() != 1 {
		t.Fatalf("err %v after %d calls; want success", err, srv.count())
	}
}

func TestContextCancellation(t *testing.T) {
	blocking := newScript(t)
	var arrived atomic.Int32
	blocking.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-r.Context().Done()
	})
	tests := []struct {
		name  string
		setup func(t *testing.T) (*Client, string)
	}{
		{"waiting for the rate limit", func(t *testing.T) (*Client, string) {
			srv := newScript(t)
			c, _ := New(Options{Registry: NewRegistry(nil), MaxRetryWait: 2 * time.Hour, Limits: []Limit{{Key: "k", Windows: []Window{{Limit: 1, Per: time.Hour}}}}})
			if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
				t.Fatal(err)
			}
			return c, srv.srv.URL
		}},
		{"waiting for Retry-After", func(t *testing.T) (*Client, string) {
			srv := newScript(t, reply{code: 429, header: map[string]string{"Retry-After": "3600"}})
			c, _ := New(Options{Registry: NewRegistry(nil), MaxRetryWait: 2 * time.Hour})
			return c, srv.srv.URL
		}},
		{"waiting for Retry-After, paused limiter", func(t *testing.T) (*Client, string) {
			srv := newScript(t, reply{code: 429, header: map[string]string{"Retry-After": "3600"}})
			c, _ := New(Options{Registry: NewRegistry(nil), MaxRetryWait: 2 * time.Hour, Limits: []Limit{minuteLimit("k", 10)}})
			return c, srv.srv.URL
		}},
		{"backing off", func(t *testing.T) (*Client, string) {
			srv := newScript(t, reply{code: 500})
			c, _ := New(Options{Registry: NewRegistry(nil), BackoffBase: time.Hour, BackoffMax: time.Hour, MaxRetryWait: 2 * time.Hour})
			return c, srv.srv.URL
		}},
		{"waiting for a concurrency slot", func(t *testing.T) (*Client, string) {
			reg := NewRegistry(nil)
			lim := Limit{Key: "k", Concurrency: 1}
			hog, _ := New(Options{Registry: reg, Limits: []Limit{lim}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _, _ = hog.Get(ctx, "op", blocking.srv.URL, nil); close(done) }()
			t.Cleanup(func() { cancel(); <-done })
			for arrived.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			c, _ := New(Options{Registry: reg, Limits: []Limit{lim}})
			return c, blocking.srv.URL
		}},
		{"request in flight", func(t *testing.T) (*Client, string) {
			c, _ := New(Options{Registry: NewRegistry(nil)})
			return c, blocking.srv.URL
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, u := tc.setup(t)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Get(ctx, "op", u, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want the context's error", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("returned after %v", el)
			}
		})
	}
	// A context that has already ended sends nothing.
	srv := newScript(t)
	c, _ := New(Options{Registry: NewRegistry(nil)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, "op", srv.srv.URL, nil); !errors.Is(err, context.Canceled) || srv.count() != 0 {
		t.Errorf("err %v, %d calls", err, srv.count())
	}
}

func TestScaledClockCompressesLimits(t *testing.T) {
	srv := newScript(t)
	// 600x: a 10/min limit admits 10 calls per 100ms of real time.
	c, _ := New(Options{Registry: NewRegistry(nil), TimeScale: 600, Limits: []Limit{minuteLimit("k", 10)}})
	start := time.Now()
	for range 21 {
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(start)
	if el < 190*time.Millisecond || el > 3*time.Second {
		t.Errorf("21 calls at 10/min on a 600x clock took %v, want about 200ms", el)
	}
	clk := ScaledClock(60)
	a := clk.Now()
	if err := clk.Sleep(context.Background(), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := clk.Now().Sub(a); d < 3*time.Second || d > 30*time.Second {
		t.Errorf("a 3s sleep on a 60x clock advanced it %v", d)
	}
	if ScaledClock(1) != RealClock() {
		t.Error("scale 1 should be the real clock")
	}
}

func TestLongPauseFailsFast(t *testing.T) {
	clock := NewFakeClock(t0)
	reg := NewRegistry(nil)
	lim := minuteLimit("shared", 100)
	srv := newScript(t, reply{code: 429, header: map[string]string{"Retry-After": "900"}}, reply{code: 200})
	a, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{lim}})
	b, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{lim}})
	if _, err := a.Get(context.Background(), "op", srv.srv.URL, nil); connectors.KindOf(err) != connectors.KindRateLimited {
		t.Fatalf("err %v", err)
	}
	// The other client does not sit out 15 minutes: it fails with RetryAt.
	_, err := b.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindRateLimited || !connectors.RetryAtOf(err).Equal(t0.Add(15*time.Minute)) || srv.count() != 1 {
		t.Fatalf("err %v (RetryAt %v) after %d calls", err, connectors.RetryAtOf(err), srv.count())
	}
	if clock.Slept() != 0 {
		t.Errorf("slept %v", clock.Slept())
	}
}
