package simkit

import (
	"sync"
	"time"
)

// Window is one rate limit: at most Limit requests per Per.
type Window struct {
	Name  string // e.g. "minute", "day"; vendors name the window they refuse on
	Limit int
	Per   time.Duration
}

// Clock is a compressible clock: time passes TimeScale times faster than
// real time from the moment it was made, so a test can exercise a "60 calls
// a minute" limit in one second. TimeScale 0 or 1 is real time.
type Clock struct {
	start     time.Time
	base      time.Time
	TimeScale float64
	real      func() time.Time
}

// NewClock returns a clock starting at base (zero: now) running TimeScale
// times faster than real time.
func NewClock(base time.Time, timeScale float64) *Clock {
	if timeScale <= 0 {
		timeScale = 1
	}
	now := time.Now()
	if base.IsZero() {
		base = now
	}
	return &Clock{start: now, base: base, TimeScale: timeScale, real: time.Now}
}

// Now returns the simulated time.
func (c *Clock) Now() time.Time {
	return c.base.Add(time.Duration(float64(c.real().Sub(c.start)) * c.TimeScale)).UTC()
}

// Real converts a simulated duration to real time (for Retry-After headers
// that a client obeys in real time).
func (c *Clock) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.TimeScale)
}

// Limiter enforces several fixed windows at once, per key (a credential or
// tenant), the way the vendors meter: a window starts with its first request
// and refuses once Limit requests fell inside it.
type Limiter struct {
	mu      sync.Mutex
	windows []Window
	clock   func() time.Time
	state   map[string][]windowState
}

type windowState struct {
	start time.Time
	count int
}

// NewLimiter returns a limiter with the given windows on clock.
func NewLimiter(clock func() time.Time, windows ...Window) *Limiter {
	return &Limiter{windows: windows, clock: clock, state: map[string][]windowState{}}
}

// Allow counts a request for key. When a window is full it returns false,
// the window's name and how long (simulated time) until it reopens; a refused
// request is not counted.
func (l *Limiter) Allow(key string) (ok bool, window string, retryAfter time.Duration) {
	if l == nil || len(l.windows) == 0 {
		return true, "", 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	st, found := l.state[key]
	if !found {
		st = make([]windowState, len(l.windows))
		l.state[key] = st
	}
	for i, w := range l.windows {
		if st[i].start.IsZero() || now.Sub(st[i].start) >= w.Per {
			st[i] = windowState{start: now}
		}
		if st[i].count >= w.Limit {
			return false, w.Name, st[i].start.Add(w.Per).Sub(now)
		}
	}
	for i := range st {
		st[i].count++
	}
	return true, "", 0
}

// Remaining returns how many requests are left in each window for key.
func (l *Limiter) Remaining(key string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	now := l.clock()
	st := l.state[key]
	for i, w := range l.windows {
		left := w.Limit
		if i < len(st) && !st[i].start.IsZero() && now.Sub(st[i].start) < w.Per {
			left -= st[i].count
		}
		out[w.Name] = left
	}
	return out
}
