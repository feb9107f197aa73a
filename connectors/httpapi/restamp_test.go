package httpapi

import (
	"context"
	"testing"
	"time"
)

// TestWindowRestamp checks the ring arithmetic of moving a send later:
// the ring stays in time order (wrap-around included), only the newest send
// at the old time moves, and a send the ring no longer holds is left alone.
func TestWindowRestamp(t *testing.T) {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name     string
		limit    int
		sends    []int // ms after t0, in order
		old, at  int
		want     []int // the ring, oldest first
		wantFree int   // freeAt in ms after t0; -1: free now
	}{
		{"newest moves later", 3, []int{0, 100, 200}, 200, 900, []int{0, 100, 900}, 1000},
		{"oldest moves past the others", 3, []int{0, 100, 200}, 0, 600, []int{100, 200, 600}, 1100},
		{"wrapped ring", 3, []int{0, 100, 200, 300, 400}, 200, 700, []int{300, 400, 700}, 1300},
		{"overwritten send is left alone", 3, []int{0, 100, 200, 300}, 0, 900, []int{100, 200, 300}, 1100},
		{"not full", 5, []int{0, 100}, 0, 500, []int{100, 500}, -1},
		{"an earlier time changes nothing", 3, []int{0, 100, 200}, 200, 150, []int{0, 100, 200}, 1000},
		{"ties: one of them moves", 3, []int{0, 0, 0}, 0, 400, []int{0, 0, 400}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &window{Window: Window{Name: "second", Limit: tc.limit, Per: time.Second}}
			for _, s := range tc.sends {
				w.record(ms(s))
			}
			w.restamp(ms(tc.old), ms(tc.at))
			var got []int
			for i := range w.n {
				got = append(got, int(w.times[(w.next-w.n+i+2*w.Limit)%w.Limit].Sub(t0)/time.Millisecond))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ring %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("ring %v, want %v", got, tc.want)
				}
			}
			free := w.freeAt()
			if tc.wantFree < 0 {
				if !free.IsZero() {
					t.Fatalf("free at %v, want now", free)
				}
			} else if want := ms(tc.wantFree); !free.Equal(want) {
				t.Fatalf("free at %v, want %v", free.Sub(t0), want.Sub(t0))
			}
		})
	}
}

// slowStore is a QuotaStore whose every fourth Save takes d on the clock,
// as a write to a loaded API server does.
type slowStore struct {
	QuotaStore
	clock *FakeClock
	d     time.Duration
	saves int
}

func (s *slowStore) Save(ctx context.Context, key string, u map[string]QuotaUsage) error {
	s.saves++
	if s.saves%4 == 1 {
		s.clock.Advance(s.d)
	}
	return s.QuotaStore.Save(ctx, key, u)
}

// TestWindowsCountFromTheSend: a call whose counters take 600 ms to save
// arrives 600 ms after it was admitted. The vendor counts it then, so the
// windows must too: never more than the limit within any span, as the
// vendor sees the calls arrive (Cin7 Omni's three a second refused one
// call in 200,000 at 10,000 companies before this).
func TestWindowsCountFromTheSend(t *testing.T) {
	clock := NewFakeClock(t0)
	srv, times := sendTimes(t, clock)
	store := &slowStore{QuotaStore: NewMemoryQuotaStore(), clock: clock, d: 600 * time.Millisecond}
	c, err := New(Options{Registry: NewRegistry(store), Clock: clock,
		Limits: []Limit{{Key: "k", Windows: []Window{{Name: "second", Limit: 3, Per: time.Second}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	ts := times()
	if len(ts) != 30 {
		t.Fatalf("server saw %d calls, want 30", len(ts))
	}
	if got := maxInWindow(ts, time.Second); got > 3 {
		t.Errorf("%d calls arrived within a second, want at most 3", got)
	}
}
