package httpapi

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

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
	// Only blocks from the vendor's own host are persisted.
	opts := Options{Clock: clock, ProblemHeader: "X-Rate-Limit-Problem", Limits: []Limit{lim}, DefaultHost: true}
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

// TestWindowsSurviveARestart: a registry that made Limit-5 calls is
// replaced by a new one over the same store (a restarted manager); the new
// one sends 5 more and then waits for the window to roll, so that no span
// of the window holds more than Limit calls across the restart.
func TestWindowsSurviveARestart(t *testing.T) {
	tests := []struct {
		name    string
		store   func(t *testing.T) func() QuotaStore // a new store object over the same data
		windows []Window
		quotas  []Quota
		before  int           // calls before the restart
		gap     time.Duration // between the calls of the first process
		down    time.Duration // between the last call and the restart
		free    int           // calls the new process may send at once
		wait    time.Duration // its next call is sent this long after the last call of the first process
	}{
		{name: "Cin7 Core 60/min, memory store", store: memoryStore, windows: []Window{{Name: "minute", Limit: 60, Per: time.Minute}},
			before: 55, gap: 100 * time.Millisecond, down: 10 * time.Second, free: 5, wait: time.Minute},
		{name: "Cin7 Core 60/min, file store", store: fileStore, windows: []Window{{Name: "minute", Limit: 60, Per: time.Minute}},
			before: 55, gap: 100 * time.Millisecond, down: 10 * time.Second, free: 5, wait: time.Minute},
		{name: "window and quota, file store", store: fileStore, windows: []Window{{Name: "minute", Limit: 60, Per: time.Minute}}, quotas: []Quota{{Name: "day", Limit: 5000, Period: Daily}},
			before: 55, gap: 100 * time.Millisecond, down: 10 * time.Second, free: 5, wait: time.Minute},
		{name: "a window that rolled while down", store: memoryStore, windows: []Window{{Name: "minute", Limit: 60, Per: time.Minute}},
			before: 55, gap: 100 * time.Millisecond, down: time.Minute, free: 60, wait: 2 * time.Minute},
		{name: "Cin7 Omni 3/s and 60/min, restart within the second", store: memoryStore,
			windows: []Window{{Name: "second", Limit: 3, Per: time.Second}, {Name: "minute", Limit: 60, Per: time.Minute}},
			before:  2, gap: 10 * time.Millisecond, down: 100 * time.Millisecond, free: 1, wait: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			newStore := tc.store(t)
			clock := NewFakeClock(t0)
			srv, times := sendTimes(t, clock)
			lim := Limit{Key: Key("cin7core", "account", "app"), Windows: tc.windows, Quotas: tc.quotas}
			first, _ := New(Options{Registry: NewRegistry(newStore()), Clock: clock, Limits: []Limit{lim}})
			for range tc.before {
				if _, err := first.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
					t.Fatal(err)
				}
				clock.Advance(tc.gap)
			}
			last := times()[tc.before-1]
			if clock.Slept() != 0 {
				t.Fatalf("the first process waited %v", clock.Slept())
			}
			clock.Set(last.Add(tc.down))

			second, _ := New(Options{Registry: NewRegistry(newStore()), Clock: clock, Limits: []Limit{lim}})
			for range tc.free + 1 {
				if _, err := second.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
					t.Fatal(err)
				}
			}
			ts := times()
			for i, at := range ts[tc.before : tc.before+tc.free] {
				if !at.Equal(last.Add(tc.down)) {
					t.Errorf("call %d after the restart waited %v", i+1, at.Sub(last.Add(tc.down)))
				}
			}
			if got := ts[len(ts)-1].Sub(last); got != tc.wait {
				t.Errorf("call %d after the restart sent %v after the last call before it, want %v", tc.free+1, got, tc.wait)
			}
			for _, w := range tc.windows {
				if got := maxInWindow(ts, w.Per); got > w.Limit {
					t.Errorf("%d calls within %v across the restart, limit %d", got, w.Per, w.Limit)
				}
			}
		})
	}
}

func memoryStore(*testing.T) func() QuotaStore {
	s := NewMemoryQuotaStore()
	return func() QuotaStore { return s }
}

func fileStore(t *testing.T) func() QuotaStore {
	path := filepath.Join(t.TempDir(), "quota.json")
	return func() QuotaStore { return NewFileQuotaStore(path) }
}

// TestRestoredWindowsNeverPassTheClock: a send time recorded ahead of the
// new process's clock (a clock that went back, a scaled clock of the
// previous process) holds calls for one window from now, not until then.
func TestRestoredWindowsNeverPassTheClock(t *testing.T) {
	store := NewMemoryQuotaStore()
	lim := minuteLimit("k", 5)
	if err := store.Save(context.Background(), "k", map[string]QuotaUsage{
		WindowUsagePrefix + "minute@1m0s": {Used: 5, Last: t0.Add(48 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	clock := NewFakeClock(t0)
	srv := newScript(t)
	c, _ := New(Options{Registry: NewRegistry(store), Clock: clock, Limits: []Limit{lim}})
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if got := clock.Sleeps(); len(got) != 1 || got[0] != time.Minute {
		t.Errorf("slept %v, want one minute", got)
	}
}

// TestStoreReadFailureSpendsTheWindows: when the store cannot be read, the
// calls of the previous process are unknown: a limiter without quotas takes
// its windows as spent and waits a full window rather than burst.
func TestStoreReadFailureSpendsTheWindows(t *testing.T) {
	clock := NewFakeClock(t0)
	srv, times := sendTimes(t, clock)
	c, _ := New(Options{Registry: NewRegistry(failingStore{}), Clock: clock, Limits: []Limit{{Key: "k", Windows: []Window{{Name: "second", Limit: 3, Per: time.Second}, {Name: "minute", Limit: 5, Per: time.Minute}}}}})
	for range 6 {
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	ts := times()
	if !ts[0].Equal(t0.Add(time.Minute)) {
		t.Errorf("first call sent at +%v, want after a full window", ts[0].Sub(t0))
	}
	if maxInWindow(ts, time.Minute) != 5 || maxInWindow(ts, time.Second) != 3 {
		t.Errorf("windows overrun: %d a minute, %d a second", maxInWindow(ts, time.Minute), maxInWindow(ts, time.Second))
	}

	// A window longer than the caller will wait fails the call with its
	// RetryAt, unsent.
	srv2 := newScript(t)
	c2, _ := New(Options{Registry: NewRegistry(failingStore{}), Clock: NewFakeClock(t0), Limits: []Limit{{Key: "k", Windows: []Window{{Name: "hour", Limit: 100, Per: time.Hour}}}}})
	_, err := c2.Get(context.Background(), "op", srv2.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindRateLimited || !connectors.RetryAtOf(err).Equal(t0.Add(time.Hour)) || srv2.count() != 0 {
		t.Fatalf("err %v (RetryAt %v) after %d calls, want RateLimited until +1h and no call", err, connectors.RetryAtOf(err), srv2.count())
	}
}

// countingStore counts Save calls and can fail them.
type countingStore struct {
	QuotaStore
	mu    sync.Mutex
	saves int
	fail  bool
}

func (s *countingStore) Save(ctx context.Context, key string, u map[string]QuotaUsage) error {
	s.mu.Lock()
	s.saves++
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return errors.New("store down")
	}
	return s.QuotaStore.Save(ctx, key, u)
}

// TestWindowSaves: a limiter with windows saves once per call (a store that
// writes somewhere slow coalesces: see internal/quotastore), a limiter with
// neither windows nor quotas never, and a failing store is logged once per
// outage, not once per call.
func TestWindowSaves(t *testing.T) {
	srv := newScript(t)
	store := &countingStore{QuotaStore: NewMemoryQuotaStore()}
	var logged atomic.Int32
	log := funcr.New(func(prefix, args string) {
		if strings.Contains(args, "saving the call quota") {
			logged.Add(1)
		}
	}, funcr.Options{})
	c, _ := New(Options{Registry: NewRegistry(store), Clock: NewFakeClock(t0), Log: log,
		Limits: []Limit{minuteLimit("windows", 60), {Key: "cap-only", Concurrency: 2}}})
	call := func(n int) {
		t.Helper()
		for range n {
			if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	call(100)
	if store.saves != 100 {
		t.Errorf("%d saves for 100 calls, want 100", store.saves)
	}
	if u, _ := store.Load(context.Background(), "cap-only"); len(u) != 0 {
		t.Errorf("a limiter without windows or quotas saved %v", u)
	}
	u, _ := store.Load(context.Background(), "windows")
	// 60 calls at t0, then 40 a minute later.
	if w := u[WindowUsagePrefix+"minute@1m0s"]; w.Used != 40 || !w.Last.Equal(t0.Add(time.Minute)) {
		t.Errorf("saved window %+v, want the 40 calls of the last minute, at +1m", w)
	}
	store.fail = true
	call(10)
	store.fail = false
	call(1)
	store.fail = true
	call(1)
	if got := logged.Load(); got != 2 {
		t.Errorf("logged %d save failures for two outages, want 2", got)
	}
}

// TestWindowUsageAndRestore checks the ring arithmetic, wrap-around
// included: the saved count is the sends within one span of the newest,
// and a restore keeps the ring in time order and within its limit.
func TestWindowUsageAndRestore(t *testing.T) {
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	tests := []struct {
		name     string
		limit    int
		sends    []int // seconds after t0
		restoreN int64
		restoreT int
		wantUsed int64
		wantLast time.Time
		wantFree time.Time // zero: a call fits now
	}{
		{name: "empty", limit: 3},
		{name: "all within the span", limit: 3, sends: []int{0, 10, 20}, wantUsed: 3, wantLast: sec(20), wantFree: sec(60)},
		{name: "wrapped, older ones out of the span", limit: 3, sends: []int{0, 10, 20, 65, 70}, wantUsed: 3, wantLast: sec(70), wantFree: sec(80)},
		{name: "older than the span do not count", limit: 5, sends: []int{0, 1, 61, 62}, wantUsed: 2, wantLast: sec(62)},
		{name: "restore into an empty ring", limit: 5, restoreN: 3, restoreT: 30, wantUsed: 3, wantLast: sec(30)},
		{name: "restore clamps to the limit", limit: 5, restoreN: 1 << 40, restoreT: 30, wantUsed: 5, wantLast: sec(30), wantFree: sec(90)},
		{name: "restore merges in time order", limit: 4, sends: []int{10, 50}, restoreN: 3, restoreT: 40, wantUsed: 4, wantLast: sec(50), wantFree: sec(100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &window{Window: Window{Name: "minute", Limit: tc.limit, Per: time.Minute}}
			for _, s := range tc.sends {
				w.record(sec(s))
			}
			w.restore(tc.restoreN, sec(tc.restoreT))
			u, ok := w.usage()
			if ok != (tc.wantUsed > 0) || u.Used != tc.wantUsed || !u.Last.Equal(tc.wantLast) {
				t.Errorf("usage %+v (%v), want %d up to %v", u, ok, tc.wantUsed, tc.wantLast)
			}
			if got := w.freeAt(); !got.Equal(tc.wantFree) {
				t.Errorf("free at %v, want %v", got, tc.wantFree)
			}
		})
	}
}

// A window's ring holds the calls made, up to its limit, not the limit:
// ten thousand credentials that made a few calls under a window of 5,000
// keep a few times each.
func TestWindowRingGrowsAsCallsAreMade(t *testing.T) {
	w := &window{Window: Window{Name: "day", Limit: 5000, Per: 24 * time.Hour}}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		w.record(t0.Add(time.Duration(i) * time.Second))
	}
	if cap(w.times) > 16 {
		t.Fatalf("3 calls keep a ring of %d", cap(w.times))
	}
	if u, ok := w.usage(); !ok || u.Used != 3 {
		t.Fatalf("usage %+v %v, want 3", u, ok)
	}
	small := &window{Window: Window{Name: "second", Limit: 3, Per: time.Second}}
	for i := range 7 {
		small.record(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	if len(small.times) != 3 || small.n != 3 {
		t.Fatalf("ring %d long, %d counted: want the limit, 3", len(small.times), small.n)
	}
	if got, want := small.freeAt(), t0.Add(400*time.Millisecond+time.Second); !got.Equal(want) {
		t.Fatalf("free at %v, want %v (the oldest of the last three plus a second)", got, want)
	}
}
