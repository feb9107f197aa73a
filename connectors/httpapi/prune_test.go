package httpapi

import (
	"context"
	"testing"
	"time"
)

func TestRegistryDropsIdleLimiters(t *testing.T) {
	wall := t0
	reg := NewRegistry(NewMemoryQuotaStore())
	reg.now = func() time.Time { return wall }
	srv := newScript(t)
	mk := func(key string) *Client {
		c, err := New(Options{Registry: reg, Clock: NewFakeClock(t0), Limits: []Limit{{Key: key, Concurrency: 1,
			Quotas: []Quota{{Name: "day", Limit: 100, Period: Daily}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	idle, busy, held := mk("idle"), mk("busy"), mk("held")
	for _, c := range []*Client{idle, busy, held} {
		if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	wall = wall.Add(LimiterIdleTTL - time.Hour)
	if _, err := busy.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	held.ordered[0].sem <- struct{}{} // a request in flight
	wall = wall.Add(2 * time.Hour)
	if n := reg.Prune(); n != 1 {
		t.Fatalf("pruned %d limiters, want only the idle one", n)
	}
	if reg.QuotaUsage("idle") != nil {
		t.Error("the idle limiter is still there")
	}
	if reg.QuotaUsage("busy") == nil || reg.QuotaUsage("held") == nil {
		t.Error("a limiter in use was dropped")
	}
	<-held.ordered[0].sem

	// A new client of the dropped key loads what it counted from the store.
	again := mk("idle")
	if _, err := again.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if u := reg.QuotaUsage("idle")["day"]; u.Used != 2 {
		t.Errorf("the recreated limiter counts %d calls, want 2 (1 from the store)", u.Used)
	}

	// Creating limiters prunes by itself, at most every pruneEvery.
	wall = wall.Add(LimiterIdleTTL + pruneEvery)
	mk("fresh")
	if reg.QuotaUsage("busy") != nil || reg.QuotaUsage("held") != nil || reg.QuotaUsage("idle") != nil {
		t.Error("creating a limiter did not drop the idle ones")
	}
	if reg.QuotaUsage("fresh") == nil {
		t.Error("the new limiter is missing")
	}
}
