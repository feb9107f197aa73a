package httpapi

import (
	"context"
	"sync"
	"time"
)

// Clock is the time source of a Client and its limiters. Every limit, quota
// period, Retry-After and backoff is measured on it, so a compressed clock
// (ScaledClock) makes a whole vendor's limits run faster in tests, benchmarks
// and simulator demos, and a FakeClock makes them instant.
type Clock interface {
	// Now returns the current time on this clock.
	Now() time.Time
	// Sleep blocks for d of this clock's time, or until ctx ends, in which
	// case it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock returns the wall clock.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error { return sleepCtx(ctx, d) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// scaledEpoch is the common origin of every ScaledClock in the process, so
// that clients and vendor simulators with the same scale agree on the time.
var scaledEpoch = time.Now()

// ScaledClock returns a clock that runs scale times faster than the wall
// clock, from an origin shared by the whole process: with scale 60 a vendor's
// "60 calls a minute" admits 60 calls a real second, and Retry-After: 60
// waits one real second. A scale of 1 or less returns RealClock().
func ScaledClock(scale float64) Clock { return NewScaledClock(scaledEpoch, scale) }

// NewScaledClock is ScaledClock with an explicit origin: the returned clock
// reads origin at origin and then runs scale times faster than real time.
func NewScaledClock(origin time.Time, scale float64) Clock {
	if scale <= 1 {
		return realClock{}
	}
	return &scaledClock{origin: origin, scale: scale}
}

type scaledClock struct {
	origin time.Time
	scale  float64
}

func (c *scaledClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.origin)) * c.scale))
}

func (c *scaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleepCtx(ctx, time.Duration(float64(d)/c.scale))
}

// FakeClock is a manual clock for tests: Sleep advances it at once and
// records the duration, so code that waits minutes runs in microseconds and
// tests can assert exactly how long it would have waited. Safe for
// concurrent use.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

// NewFakeClock returns a FakeClock reading t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now implements Clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep implements Clock: it fails if ctx has ended, otherwise advances the
// clock by d and records d.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	c.sleeps = append(c.sleeps, d)
	return nil
}

// Advance moves the clock forward by d without recording a sleep.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Sleeps returns every duration passed to Sleep, in order.
func (c *FakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// Slept returns the sum of every duration passed to Sleep.
func (c *FakeClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s time.Duration
	for _, d := range c.sleeps {
		s += d
	}
	return s
}
