package simkit

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FaultKind is a failure a simulator can inject.
type FaultKind int

const (
	// FaultStatus answers with Status (500, 502, 503, 429, 401, ...).
	FaultStatus FaultKind = iota + 1
	// FaultSlow delays the real answer by Delay.
	FaultSlow
	// FaultMalformed answers 200 with a body that does not parse.
	FaultMalformed
	// FaultDrop closes the connection without an answer.
	FaultDrop
)

// Fault is one injected failure, applied to the next Count matching requests.
type Fault struct {
	Kind   FaultKind
	Status int
	Delay  time.Duration
	// RetryAfter, with a 429/503 status, is sent as the Retry-After header in
	// seconds.
	RetryAfter int
	// PathContains restricts the fault to requests whose path contains it.
	PathContains string
	// Count is how many requests it applies to (default 1).
	Count int
}

// Faults is a queue of injected failures, safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	queue  []Fault
	active atomic.Bool
}

// Inject queues a fault.
func (f *Faults) Inject(x Fault) {
	if x.Count <= 0 {
		x.Count = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, x)
	f.active.Store(true)
}

// Clear removes every queued fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = nil
	f.active.Store(false)
}

// Next takes the fault that applies to r, if any.
func (f *Faults) Next(r *http.Request) (Fault, bool) {
	if !f.active.Load() {
		return Fault{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.queue {
		x := &f.queue[i]
		if x.PathContains != "" && !strings.Contains(r.URL.Path, x.PathContains) {
			continue
		}
		out := *x
		x.Count--
		if x.Count == 0 {
			f.queue = append(f.queue[:i], f.queue[i+1:]...)
		}
		f.active.Store(len(f.queue) > 0)
		return out, true
	}
	return Fault{}, false
}

// Apply serves the fault that applies to r, if any, and reports whether the
// request was answered (a slow fault only delays and returns false). An
// answered fault is counted in served (when not nil) before the client can see
// it: a dropped connection is closed by the handler itself, so counting after
// Apply returned would race with a client that retries and finishes first.
func (f *Faults) Apply(w http.ResponseWriter, r *http.Request, served *atomic.Int64) bool {
	x, ok := f.Next(r)
	if !ok {
		return false
	}
	if x.Kind != FaultSlow && served != nil {
		served.Add(1)
	}
	switch x.Kind {
	case FaultSlow:
		select {
		case <-time.After(x.Delay):
		case <-r.Context().Done():
		}
		return false
	case FaultMalformed:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"Items": [{"Guid": "broken", `))
		return true
	case FaultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		w.WriteHeader(http.StatusBadGateway)
		return true
	default:
		if x.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(x.RetryAfter))
		}
		http.Error(w, http.StatusText(x.Status), x.Status)
		return true
	}
}

// Stats counts what a simulator served.
type Stats struct {
	Requests  atomic.Int64 // every request, refused ones included
	Served    atomic.Int64 // answered 2xx
	Throttled atomic.Int64 // refused for a rate limit
	AuthFails atomic.Int64 // refused for authentication
	Faults    atomic.Int64 // answered by an injected fault
	mu        sync.Mutex
	byPath    map[string]int64
}

// Count records a request to path.
func (s *Stats) Count(path string) {
	s.Requests.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPath == nil {
		s.byPath = map[string]int64{}
	}
	s.byPath[path]++
}

// ByPath returns a copy of the request count per path.
func (s *Stats) ByPath() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.byPath))
	for k, v := range s.byPath {
		out[k] = v
	}
	return out
}

// Reset zeroes every counter.
func (s *Stats) Reset() {
	s.Requests.Store(0)
	s.Served.Store(0)
	s.Throttled.Store(0)
	s.AuthFails.Store(0)
	s.Faults.Store(0)
	s.mu.Lock()
	s.byPath = nil
	s.mu.Unlock()
}
