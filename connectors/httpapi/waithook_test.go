package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

// eventClock is a FakeClock that logs its sleeps into a shared event log,
// so that a test can see whether a hook ran before or after a sleep.
type eventClock struct {
	*FakeClock
	ev *events
}

func (c eventClock) Sleep(ctx context.Context, d time.Duration) error {
	c.ev.add(fmt.Sprintf("sleep %v", d))
	return c.FakeClock.Sleep(ctx, d)
}

type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

type hookCtxKey struct{}

// hooked returns a context carrying a WaitHook that logs its waits, and
// checks that it gets the caller's context.
func hooked(t *testing.T, ev *events) context.Context {
	ctx := context.WithValue(context.Background(), hookCtxKey{}, "caller")
	return connectors.WithWaitHook(ctx, func(hctx context.Context, d time.Duration) {
		if hctx.Value(hookCtxKey{}) != "caller" {
			t.Error("the hook did not get the caller's context")
		}
		ev.add(fmt.Sprintf("hook %v", d))
	})
}

func TestWaitHookRunsBeforeEveryWait(t *testing.T) {
	closed := newScript(t)
	closed.srv.Close() // connection refused: a transport error
	tests := []struct {
		name    string
		replies []reply
		opts    Options
		calls   int    // calls made in a row on one client
		url     string // "" = the scripted server
		kind    connectors.ErrorKind
		want    []string
	}{
		{name: "rate window", opts: Options{Limits: []Limit{minuteLimit("k", 2)}}, calls: 3,
			want: []string{"hook 1m0s", "sleep 1m0s"}},
		{name: "two windows, the longer wait", opts: Options{Limits: []Limit{{Key: "k", Windows: []Window{{Name: "second", Limit: 1, Per: time.Second}, {Name: "minute", Limit: 1, Per: time.Minute}}}}}, calls: 2,
			want: []string{"hook 1m0s", "sleep 1m0s"}},
		{name: "vendor pause of a limiter", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "30"}}, {code: 200}},
			opts: Options{Limits: []Limit{minuteLimit("k", 100)}}, calls: 1,
			want: []string{"hook 30s", "sleep 30s"}},
		{name: "Retry-After without a limiter", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "7"}}, {code: 200}}, calls: 1,
			want: []string{"hook 7s", "sleep 7s"}},
		{name: "back-off after 5xx", replies: []reply{{code: 500}, {code: 503}, {code: 200}}, calls: 1,
			want: []string{"hook 250ms", "sleep 250ms", "hook 500ms", "sleep 500ms"}},
		{name: "Retry-After of a 503 longer than the back-off", replies: []reply{{code: 503, header: map[string]string{"Retry-After": "20"}}, {code: 200}}, calls: 1,
			want: []string{"hook 20s", "sleep 20s"}},
		{name: "back-off after a transport error", url: closed.srv.URL, opts: Options{MaxRetries: 1}, calls: 1, kind: connectors.KindERPUnavailable,
			want: []string{"hook 250ms", "sleep 250ms"}},
		{name: "a wait shorter than MinHookedWait is not hooked", replies: []reply{{code: 500}, {code: 200}}, opts: Options{BackoffBase: 100 * time.Millisecond}, calls: 1,
			want: []string{"sleep 50ms"}},
		{name: "no wait, no hook", opts: Options{Limits: []Limit{minuteLimit("k", 5)}}, calls: 5, want: nil},
		{name: "a quota used up fails without a wait", opts: Options{Limits: []Limit{{Key: "k", Quotas: []Quota{{Name: "day", Limit: 1, Period: Daily}}}}}, calls: 2,
			kind: connectors.KindQuotaExhausted, want: nil},
		{name: "a pause beyond MaxRetryWait fails without a wait", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "900"}}},
			opts: Options{Limits: []Limit{minuteLimit("k", 100)}}, calls: 1, kind: connectors.KindRateLimited, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScript(t, tc.replies...)
			u := tc.url
			if u == "" {
				u = srv.srv.URL
			}
			ev := &events{}
			opts := tc.opts
			opts.Clock = eventClock{NewFakeClock(t0), ev}
			opts.Registry = NewRegistry(nil)
			opts.Jitter = func() float64 { return 0 }
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := hooked(t, ev)
			for i := range tc.calls {
				_, err = c.Get(ctx, "op", u, nil)
				if err != nil && i < tc.calls-1 {
					t.Fatalf("call %d: %v", i+1, err)
				}
			}
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("last call: err %v, want kind %q", err, tc.kind)
			}
			if got := ev.all(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWaitHookBeforeConcurrencySlot: a call that finds every slot taken
// calls the hook before it blocks. The hook itself frees the slot, so the
// call could not finish had it blocked first.
func TestWaitHookBeforeConcurrencySlot(t *testing.T) {
	gate := make(chan struct{})
	arrived := make(chan struct{}, 10)
	srv := newScript(t)
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		if r.URL.Path == "/hog" {
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
	})
	reg := NewRegistry(nil)
	lim := Limit{Key: "tenant", Concurrency: 1}
	hog, _ := New(Options{Registry: reg, Clock: NewFakeClock(t0), Limits: []Limit{lim}})
	c, _ := New(Options{Registry: reg, Clock: NewFakeClock(t0), Limits: []Limit{lim}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A free slot: no hook.
	var waits []time.Duration
	var once sync.Once
	hctx := connectors.WithWaitHook(ctx, func(_ context.Context, d time.Duration) {
		waits = append(waits, d)
		once.Do(func() { close(gate) })
	})
	if _, err := c.Get(hctx, "op", srv.srv.URL+"/free", nil); err != nil {
		t.Fatal(err)
	}
	<-arrived
	if len(waits) != 0 {
		t.Fatalf("hook called %v with a free slot", waits)
	}

	hogDone := make(chan error, 1)
	go func() {
		_, err := hog.Get(ctx, "op", srv.srv.URL+"/hog", nil)
		hogDone <- err
	}()
	<-arrived // the hog holds the only slot
	if _, err := c.Get(hctx, "op", srv.srv.URL+"/next", nil); err != nil {
		t.Fatalf("waiting for the slot: %v", err)
	}
	if err := <-hogDone; err != nil {
		t.Fatal(err)
	}
	if len(waits) != 1 || waits[0] != connectors.MinHookedWait {
		t.Errorf("hook saw %v, want one wait of MinHookedWait", waits)
	}
}
