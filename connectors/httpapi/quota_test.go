package httpapi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

func TestReservationSize(t *testing.T) {
	tests := []struct {
		name        string
		limit, free int64
		want        int64
	}{
		{name: "Xero's day, untouched", limit: 5000, free: 5000, want: 100},
		{name: "a fiftieth, under 200", limit: 9000, free: 9000, want: 180},
		{name: "at most 200", limit: 1_000_000, free: 1_000_000, want: 200},
		{name: "small limit: one at a time", limit: 40, free: 40, want: 1},
		{name: "shrinks to a quarter of what is free", limit: 5000, free: 200, want: 50},
		{name: "the last calls one at a time", limit: 5000, free: 7, want: 1},
		{name: "the very last call", limit: 5000, free: 1, want: 1},
		{name: "used up", limit: 5000, free: 0, want: 0},
		{name: "over-spent by an older version", limit: 5000, free: -3, want: 0},
		{name: "not enforced", limit: 0, free: 10, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReservationSize(tc.limit, tc.free); got != tc.want {
				t.Errorf("ReservationSize(%d, %d) = %d, want %d", tc.limit, tc.free, got, tc.want)
			}
		})
	}
}

func TestSplitWindows(t *testing.T) {
	tests := []struct {
		name  string
		share float64 // 0: not set
		win   Window
		want  int
	}{
		{name: "no share set", win: Window{Name: "appminute", Limit: 100, Per: time.Minute, Split: true}, want: 100},
		{name: "three replicas", share: 1.0 / 3, win: Window{Name: "appminute", Limit: 100, Per: time.Minute, Split: true}, want: 33},
		{name: "two replicas", share: 0.5, win: Window{Name: "appminute", Limit: 100, Per: time.Minute, Split: true}, want: 50},
		{name: "never below one", share: 0.01, win: Window{Name: "w", Limit: 3, Per: time.Second, Split: true}, want: 1},
		{name: "a tenant's window is not split", share: 0.5, win: Window{Name: "minute", Limit: 60, Per: time.Minute}, want: 60},
		{name: "a share above 1 is ignored", share: 2, win: Window{Name: "appminute", Limit: 100, Per: time.Minute, Split: true}, want: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewFakeClock(t0)
			srv, times := sendTimes(t, clock)
			reg := NewRegistry(nil)
			if tc.share != 0 {
				reg.SetReplicaShare(tc.share)
			}
			c, err := New(Options{Registry: reg, Clock: clock, Limits: []Limit{{Key: "app", Windows: []Window{tc.win}}}})
			if err != nil {
				t.Fatal(err)
			}
			for range tc.want + 1 {
				if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
					t.Fatal(err)
				}
			}
			ts := times()
			if got := maxInWindow(ts, tc.win.Per); got != tc.want {
				t.Errorf("%d calls within %v, want %d", got, tc.win.Per, tc.want)
			}
			if !ts[tc.want].Equal(t0.Add(tc.win.Per)) {
				t.Errorf("call %d sent at +%v, want after one span", tc.want+1, ts[tc.want].Sub(t0))
			}
		})
	}
}

// central is a QuotaReserver for tests: one process's reservations over a
// shared count of claimed calls that the test can raise (the other
// processes' spending).
type central struct {
	*MemoryQuotaStore
	mu       sync.Mutex
	claimed  map[string]int64 // quota name -> calls claimed by every process
	held     map[string]int64 // quota name -> this process's reserved calls
	seen     map[string]bool  // quota names reserved before
	period   time.Time
	reserves int
	failWith error
}

func newCentral(period time.Time) *central {
	return &central{MemoryQuotaStore: NewMemoryQuotaStore(), claimed: map[string]int64{}, held: map[string]int64{}, seen: map[string]bool{}, period: period}
}

func (c *central) View(_ string, claims []QuotaClaim) ([]QuotaView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.viewsLocked(claims), c.holdsLocked(claims)
}

func (c *central) holdsLocked(claims []QuotaClaim) bool {
	for _, q := range claims {
		if q.Limit > 0 && (c.held[q.Name] < 1 || !q.PeriodStart.Equal(c.period)) {
			return false
		}
	}
	return true
}

// viewsLocked returns the views of the quotas reserved before: like a
// store, central knows nothing of the others before its first write.
func (c *central) viewsLocked(claims []QuotaClaim) []QuotaView {
	var out []QuotaView
	for _, q := range claims {
		if c.seen[q.Name] {
			out = append(out, c.viewLocked(q))
		}
	}
	return out
}

func (c *central) viewLocked(q QuotaClaim) QuotaView {
	return QuotaView{Name: q.Name, PeriodStart: c.period, Used: c.claimed[q.Name] - c.held[q.Name], Held: c.held[q.Name]}
}

func (c *central) Spend(_ string, claims []QuotaClaim) ([]QuotaView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holdsLocked(claims) {
		return nil, false
	}
	var out []QuotaView
	for _, q := range claims {
		if q.Limit > 0 {
			c.held[q.Name]--
		} else {
			c.claimed[q.Name]++
		}
		out = append(out, c.viewLocked(q))
	}
	return out, true
}

func (c *central) Reserve(_ context.Context, _ string, claims []QuotaClaim) ([]QuotaView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserves++
	if c.failWith != nil {
		return nil, c.failWith
	}
	var out []QuotaView
	for _, q := range claims {
		c.seen[q.Name] = true
		v := c.viewLocked(q)
		if q.Limit > 0 && c.held[q.Name] == 0 {
			g := ReservationSize(q.Limit, q.Limit-c.claimed[q.Name])
			c.claimed[q.Name] += g
			c.held[q.Name] += g
			v = c.viewLocked(q)
			v.Granted = g
		}
		out = append(out, v)
	}
	return out, nil
}

func (c *central) othersSpend(name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claimed[name] += n
}

// TestLimiterSpendsReservations: with a QuotaReserver, a limiter reserves a
// block before its first call and one per block after, only once its
// windows admit the call; the calls others claimed are in QuotaLeft; a
// reservation that grants nothing fails the call until the reset without
// sending it, and a store that cannot reserve fails it closed.
func TestLimiterSpendsReservations(t *testing.T) {
	midnight := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	day := Quota{Name: "day", Limit: 500, Period: Daily} // blocks of 10
	t.Run("a reservation per block", func(t *testing.T) {
		clock := NewFakeClock(t0)
		srv, times := sendTimes(t, clock)
		store := newCentral(midnight.AddDate(0, 0, -1))
		c, _ := New(Options{Registry: NewRegistry(store), Clock: clock, Limits: []Limit{{Key: "k", Quotas: []Quota{day},
			Windows: []Window{{Name: "second", Limit: 5, Per: time.Second}}}}})
		for range 25 {
			if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
				t.Fatal(err)
			}
		}
		if len(times()) != 25 || store.reserves != 3 {
			t.Errorf("%d calls with %d reservations, want 25 with 3", len(times()), store.reserves)
		}
		// Others spent 300: this process may send its 5 held calls and
		// what nobody claimed.
		store.othersSpend("day", 300)
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
		if left, limit, _ := c.QuotaLeft(); left != 500-300-30+4 || limit != 500 {
			t.Errorf("QuotaLeft = %d of %d, want %d", left, limit, 500-300-30+4)
		}
	})
	t.Run("used up by the others", func(t *testing.T) {
		clock := NewFakeClock(t0)
		srv, times := sendTimes(t, clock)
		store := newCentral(midnight.AddDate(0, 0, -1))
		store.othersSpend("day", 500)
		c, _ := New(Options{Registry: NewRegistry(store), Clock: clock, Limits: []Limit{{Key: "k", Quotas: []Quota{day}}}})
		for range 2 {
			_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
			if connectors.KindOf(err) != connectors.KindQuotaExhausted || !connectors.RetryAtOf(err).Equal(midnight) {
				t.Fatalf("err %v, want QuotaExhausted until midnight", err)
			}
		}
		if len(times()) != 0 || store.reserves != 1 {
			t.Errorf("%d calls sent, %d reservations; want none sent, and one reservation", len(times()), store.reserves)
		}
	})
	t.Run("the store cannot reserve", func(t *testing.T) {
		clock := NewFakeClock(t0)
		srv, times := sendTimes(t, clock)
		store := newCentral(midnight.AddDate(0, 0, -1))
		store.failWith = errors.New("the API server is unreachable")
		c, _ := New(Options{Registry: NewRegistry(store), Clock: clock, Limits: []Limit{{Key: "k", Quotas: []Quota{day}}}})
		_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
		if connectors.KindOf(err) != connectors.KindERPUnavailable || len(times()) != 0 {
			t.Fatalf("err %v after %d calls, want ERPUnavailable and no call", err, len(times()))
		}
	})
	t.Run("no reservation while a window holds the call", func(t *testing.T) {
		clock := NewFakeClock(t0)
		srv, _ := sendTimes(t, clock)
		store := newCentral(midnight.AddDate(0, 0, -1))
		c, _ := New(Options{Registry: NewRegistry(store), Clock: clock, MaxRetryWait: time.Second,
			Limits: []Limit{{Key: "k", Quotas: []Quota{day}, Windows: []Window{{Name: "minute", Limit: 1, Per: time.Minute}}}}})
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
		// Spend the rest of the block elsewhere, then ask: the window
		// refuses the call before any reservation is made.
		store.mu.Lock()
		store.held["day"] = 0
		store.mu.Unlock()
		_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
		if connectors.KindOf(err) != connectors.KindRateLimited || store.reserves != 1 {
			t.Fatalf("err %v with %d reservations, want RateLimited with 1", err, store.reserves)
		}
	})
}
