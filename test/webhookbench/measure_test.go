package main

import (
	"testing"
	"time"
)

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	for _, tc := range []struct {
		name    string
		in      []time.Duration
		p       float64
		want    time.Duration
		wantErr bool
	}{
		{"one value", ms(7), 50, 7 * time.Millisecond, false},
		{"median of an odd count", ms(30, 10, 20), 50, 20 * time.Millisecond, false},
		{"median of an even count: the lower middle (nearest rank)", ms(40, 10, 30, 20), 50, 20 * time.Millisecond, false},
		{"p95 of 1..100", ms(hundred...), 95, 95 * time.Millisecond, false},
		{"p95 of 20 values is the 19th", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 200), 95, 19 * time.Millisecond, false},
		{"p100 is the maximum", ms(3, 9, 1), 100, 9 * time.Millisecond, false},
		{"tiny p is the minimum", ms(3, 9, 1), 0.01, time.Millisecond, false},
		{"no values", nil, 50, 0, true},
		{"p 0", ms(1), 0, 0, true},
		{"p over 100", ms(1), 101, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tc.in...)
			got, err := percentile(tc.in, tc.p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			for i := range before {
				if tc.in[i] != before[i] {
					t.Fatalf("the input was changed")
				}
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(latency time.Duration, arrived bool) *change {
		c := &change{at: t0}
		if arrived {
			c.synced = t0.Add(latency)
		}
		return c
	}
	cs := []*change{mk(3*time.Second, true), mk(time.Second, true), mk(2*time.Second, true), mk(0, false)}
	r, err := summarise("katana", cs)
	if err != nil {
		t.Fatal(err)
	}
	if r.changes != 4 || r.arrived != 3 || r.p50 != 2*time.Second || r.p95 != 3*time.Second || r.max != 3*time.Second {
		t.Errorf("got %+v", r)
	}
	r.requests = 10
	if got := r.callsPerEvent(); got != 2.5 {
		t.Errorf("calls per event %v, want 2.5 (10 requests, 4 changes)", got)
	}
	if got := r.requestsPerMinute(); got != 0 {
		t.Errorf("requests a minute without a span: %v", got)
	}
	r.span = 30 * time.Second
	if got := r.requestsPerMinute(); got != 20 {
		t.Errorf("requests a minute %v, want 20 (10 in 30 s)", got)
	}
	if _, err := summarise("xero", []*change{mk(0, false)}); err == nil {
		t.Error("want an error when nothing arrived")
	}
}

func TestArrived(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &change{before: t0.Add(-time.Hour), at: t0}
	for _, tc := range []struct {
		name             string
		modified, synced time.Time
		want             bool
	}{
		{"a newer version written after the change", t0, t0.Add(time.Second), true},
		{"the old version", t0.Add(-time.Hour), t0.Add(time.Second), false},
		{"written before the change (an earlier write)", t0, t0.Add(-time.Millisecond), false},
	} {
		if got := c.arrived(tc.modified, tc.synced); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestSchedule(t *testing.T) {
	got := schedule(4, 1, 2, 4*time.Second)
	want := []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond, 3500 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if s := schedule(200, 3, 4, time.Minute); s[199] >= time.Minute || s[0] < 0 {
		t.Errorf("200 changes over a minute end at %s", s[199])
	}
	if s := schedule(0, 0, 4, time.Minute); len(s) != 0 {
		t.Errorf("no changes: %v", s)
	}
}
