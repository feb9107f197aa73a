package httpapi

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// reply is one scripted answer of a test server.
type reply struct {
	code   int
	header map[string]string
	body   string
}

// script is a test server answering with its replies in order, repeating the
// last one, and recording every request.
type script struct {
	mu      sync.Mutex
	replies []reply
	reqs    []*http.Request
	srv     *httptest.Server
}

func newScript(t *testing.T, replies ...reply) *script {
	t.Helper()
	s := &script{replies: replies}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, r)
		rp := reply{code: 200, body: `{}`}
		if len(s.replies) > 0 {
			rp = s.replies[min(n, len(s.replies)-1)]
		}
		s.mu.Unlock()
		for k, v := range rp.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rp.code)
		_, _ = w.Write([]byte(rp.body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// recObserver records what a client reports.
type recObserver struct {
	mu       sync.Mutex
	requests []int
	waits    []time.Duration
}

func (o *recObserver) ObserveRequest(_, _ string, code int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, code)
}

func (o *recObserver) ObserveRateLimitWait(_ string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waits = append(o.waits, d)
}

func (o *recObserver) totalWait() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s time.Duration
	for _, d := range o.waits {
		s += d
	}
	return s
}

func minuteLimit(key string, n int) Limit {
	return Limit{Key: key, Windows: []Window{{Name: "minute", Limit: n, Per: time.Minute}}}
}
