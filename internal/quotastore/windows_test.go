package quotastore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// apiServer is a fake API server that counts the writes it receives and can
// refuse reads.
type apiServer struct {
	client.Client
	writes   atomic.Int32
	failGets atomic.Bool
}

func newAPIServer() *apiServer {
	a := &apiServer{}
	a.Client = fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if a.failGets.Load() {
				return errors.New("the API server is unreachable")
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			a.writes.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			a.writes.Add(1)
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	return a
}

// store returns a new store (a new manager process) over the API server.
func (a *apiServer) store(clock *httpapi.FakeClock) *ConfigMapStore {
	return &ConfigMapStore{Reader: a, Writer: a, Namespace: "erpsync-system", FlushEvery: 5 * time.Second, Now: clock.Now}
}

// vendor is a test server recording the fake-clock time of every call.
type vendor struct {
	mu    sync.Mutex
	times []time.Time
	srv   *httptest.Server
}

func newVendor(t *testing.T, clock httpapi.Clock) *vendor {
	v := &vendor{}
	v.srv = httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.times = append(v.times, clock.Now())
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) sent() []time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]time.Time(nil), v.times...)
}

// countingStore counts the limiter's saves (and stays a QuotaReserver).
type countingStore struct {
	*ConfigMapStore
	saves atomic.Int32
}

func (s *countingStore) Save(ctx context.Context, key string, u map[string]httpapi.QuotaUsage) error {
	s.saves.Add(1)
	return s.ConfigMapStore.Save(ctx, key, u)
}

// cin7core is Cin7 Core's limit: 60 calls a minute, no quota.
var cin7core = httpapi.Limit{Key: httpapi.Key("cin7core", "account", "app"), Windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: time.Minute}}}

func call(t *testing.T, c *httpapi.Client, url string, n int) {
	t.Helper()
	for range n {
		if _, err := c.Get(context.Background(), "op", url, nil); err != nil {
			t.Fatal(err)
		}
	}
}

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

// TestWindowSurvivesARestart: a manager that made Limit-5 calls of a
// window-only limiter stops; the next manager over the same ConfigMaps may
// send 5 calls, then waits until the window rolls. A crash (no final flush)
// costs a full window's wait instead of a burst. The burst itself costs a
// couple of API writes, not one per call.
func TestWindowSurvivesARestart(t *testing.T) {
	tests := []struct {
		name  string
		stop  func(ctx context.Context, s *ConfigMapStore) // nil: the manager crashes
		free  int                                          // calls the new manager sends at once
		first time.Duration                                // when its first waiting call is sent, after t0
	}{
		{name: "clean stop", stop: func(ctx context.Context, s *ConfigMapStore) {
			stop, cancel := context.WithCancel(ctx)
			done := make(chan error)
			go func() { done <- s.Start(stop) }()
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}, free: 5, first: 54*90*time.Millisecond + time.Minute},
		// Only the first call's save was written (the others were pending):
		// the windows are spent until one window after that write plus
		// FlushEvery.
		{name: "crash", free: 0, first: 5*time.Second + time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			api := newAPIServer()
			clock := httpapi.NewFakeClock(t0)
			v := newVendor(t, clock)
			s1 := api.store(clock)
			counted := &countingStore{ConfigMapStore: s1}
			c1, err := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(counted), Clock: clock, Limits: []httpapi.Limit{cin7core}})
			if err != nil {
				t.Fatal(err)
			}
			// 55 calls within 4.86 s: one write at the first, the rest
			// coalesced.
			for range 55 {
				call(t, c1, v.srv.URL, 1)
				clock.Advance(90 * time.Millisecond)
			}
			if n := counted.saves.Load(); n != 55 {
				t.Errorf("the limiter saved %d times for 55 calls, want 55", n)
			}
			if n := api.writes.Load(); n != 1 {
				t.Errorf("55 calls within FlushEvery cost %d API writes, want 1", n)
			}
			if tc.stop != nil {
				tc.stop(ctx, s1)
				if n := api.writes.Load(); n != 2 {
					t.Errorf("the final flush made %d writes in all, want 2", n)
				}
			}
			clock.Set(t0.Add(10 * time.Second))
			before := len(v.sent())

			c2, err := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(api.store(clock)), Clock: clock, Limits: []httpapi.Limit{cin7core}})
			if err != nil {
				t.Fatal(err)
			}
			call(t, c2, v.srv.URL, tc.free+1)
			after := v.sent()[before:]
			for i, at := range after[:tc.free] {
				if !at.Equal(t0.Add(10 * time.Second)) {
					t.Errorf("call %d of the new manager waited until +%v", i+1, at.Sub(t0))
				}
			}
			if got := after[tc.free].Sub(t0); got != tc.first {
				t.Errorf("call %d of the new manager sent at +%v, want +%v", tc.free+1, got, tc.first)
			}
			if got := maxInWindow(v.sent(), time.Minute); got > 60 {
				t.Errorf("%d calls within a minute across the restart", got)
			}
		})
	}
}

// TestBurstWriteCost: a burst of calls of one credential costs one API write
// per reservation (a block of 100 calls of Xero's 5,000 a day), each
// carrying the windows pending, and one when the manager stops, whatever
// the burst's length.
func TestBurstWriteCost(t *testing.T) {
	api := newAPIServer()
	clock := httpapi.NewFakeClock(t0)
	v := newVendor(t, clock)
	s := api.store(clock)
	counted := &countingStore{ConfigMapStore: s}
	lim := httpapi.Limit{Key: httpapi.Key("xero", "client", "tenant"), Windows: []httpapi.Window{{Name: "minute", Limit: 600, Per: time.Minute}},
		Quotas: []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}}
	c, _ := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(counted), Clock: clock, Limits: []httpapi.Limit{lim}})
	call(t, c, v.srv.URL, 500)
	s.Close(context.Background())
	if saves, writes := counted.saves.Load(), api.writes.Load(); saves != 500 || writes != 6 {
		t.Errorf("500 calls: %d saves, %d API writes; want 500 saves and 6 writes (5 reservations, 1 close)", saves, writes)
	}
	// Closing again with nothing new still marks the key closed, once.
	s.Close(context.Background())
	if n := api.writes.Load(); n != 6 {
		t.Errorf("a second close wrote again: %d writes", n)
	}
}

// TestUnreadableStoreSpendsTheWindows: when the ConfigMap cannot be read, or
// does not parse, a new manager waits a full window before its first call
// rather than burst.
func TestUnreadableStoreSpendsTheWindows(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, api *apiServer)
	}{
		{name: "API server unreachable", breakIt: func(_ *testing.T, api *apiServer) { api.failGets.Store(true) }},
		{name: "damaged ConfigMap", breakIt: func(t *testing.T, api *apiServer) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: Name(cin7core.Key), Namespace: "erpsync-system"},
				Data: map[string]string{dataKey: "{not json", stateKey: stateClosed}}
			if err := api.Create(context.Background(), cm); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newAPIServer()
			tc.breakIt(t, api)
			clock := httpapi.NewFakeClock(t0)
			v := newVendor(t, clock)
			c, _ := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(api.store(clock)), Clock: clock, Limits: []httpapi.Limit{cin7core}})
			call(t, c, v.srv.URL, 61)
			ts := v.sent()
			if !ts[0].Equal(t0.Add(time.Minute)) {
				t.Errorf("first call sent at +%v, want after a full window", ts[0].Sub(t0))
			}
			if got := maxInWindow(ts, time.Minute); got != 60 {
				t.Errorf("%d calls within a minute, want 60", got)
			}
		})
	}
	// A limiter with a quota does not send blind.
	api := newAPIServer()
	api.failGets.Store(true)
	clock := httpapi.NewFakeClock(t0)
	v := newVendor(t, clock)
	lim := cin7core
	lim.Quotas = []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}
	c, _ := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(api.store(clock)), Clock: clock, Limits: []httpapi.Limit{lim}})
	if _, err := c.Get(context.Background(), "op", v.srv.URL, nil); connectors.KindOf(err) != connectors.KindERPUnavailable || len(v.sent()) != 0 {
		t.Fatalf("err %v after %d calls, want ERPUnavailable and no call", err, len(v.sent()))
	}
}
