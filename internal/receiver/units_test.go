package receiver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

func target(entity, id string, deleted bool) erpv1.WebhookTarget {
	return erpv1.WebhookTarget{Entity: entity, ID: id, Deleted: deleted}
}

func TestTargetSet(t *testing.T) {
	tests := []struct {
		name     string
		limit    int
		add      []erpv1.WebhookTarget
		want     string
		overflow string
	}{
		{name: "dedupe, deleted ORed, order kept", limit: 10,
			add:  []erpv1.WebhookTarget{target("a", "1", false), target("b", "1", false), target("a", "1", true), target("a", "1", false)},
			want: "a/1!,b/1"},
		{name: "past the limit the entity overflows", limit: 2,
			add:  []erpv1.WebhookTarget{target("a", "1", false), target("a", "2", false), target("b", "3", false), target("a", "1", true)},
			want: "a/1!,a/2", overflow: "b"},
		{name: "a deletion replaces the newest update when full", limit: 2,
			add:  []erpv1.WebhookTarget{target("a", "1", false), target("b", "2", false), target("c", "3", true)},
			want: "a/1,c/3!", overflow: "b"},
		{name: "a deletion overflows when every target is a deletion", limit: 1,
			add:  []erpv1.WebhookTarget{target("a", "1", true), target("c", "3", true)},
			want: "a/1!", overflow: "c"},
		{name: "an id too long or empty polls its entity", limit: 5,
			add:  []erpv1.WebhookTarget{target("a", strings.Repeat("9", 129), false), target("b", "", true), target("c", strings.Repeat("9", 128), false)},
			want: "c/" + strings.Repeat("9", 128), overflow: "a,b"},
		{name: "an entity that is no name is dropped", limit: 5,
			add:  []erpv1.WebhookTarget{target("", "1", false), target(strings.Repeat("e", 65), "1", false), target("ok", "\xff", false)},
			want: "", overflow: "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTargetSet(tc.limit)
			for _, a := range tc.add {
				s.add(a)
			}
			var got []string
			for _, it := range s.items {
				k := it.Entity + "/" + it.ID
				if it.Deleted {
					k += "!"
				}
				got = append(got, k)
			}
			if strings.Join(got, ",") != tc.want || strings.Join(s.overflowList(), ",") != tc.overflow {
				t.Errorf("targets %q overflow %q, want %q %q", strings.Join(got, ","), strings.Join(s.overflowList(), ","), tc.want, tc.overflow)
			}
			for k, i := range s.index {
				if s.items[i].Entity != k.entity || s.items[i].ID != k.id {
					t.Errorf("index %v -> %d names %+v", k, i, s.items[i])
				}
			}
			if len(s.index) != len(s.items) {
				t.Errorf("index has %d entries for %d items", len(s.index), len(s.items))
			}
		})
	}
}

func TestApplyBatch(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(s int) *metav1.Time { v := metav1.NewTime(t0.Add(time.Duration(s) * time.Second)); return &v }
	many := func(n int, entity string) []erpv1.WebhookTarget {
		var out []erpv1.WebhookTarget
		for i := range n {
			out = append(out, target(entity, fmt.Sprint(i), false))
		}
		return out
	}
	tests := []struct {
		name   string
		before *erpv1.WebhookStatus
		batch  Batch
		check  func(t *testing.T, w *erpv1.WebhookStatus)
	}{
		{name: "made when absent", before: nil,
			batch: Batch{Targets: many(2, "p"), FirstReceived: t0, LastReceived: t0.Add(time.Second), Accepted: 3, Rejected: 1},
			check: func(t *testing.T, w *erpv1.WebhookStatus) {
				if w.Accepted != 3 || w.Rejected != 1 || len(w.Pending) != 2 || !w.LastEventAt.Equal(at(1)) || !w.PendingSince.Equal(at(0)) {
					t.Errorf("%+v", w)
				}
			}},
		{name: "union, deleted ORed, counts added, times max and min", before: &erpv1.WebhookStatus{
			Path: "/webhooks/x/u", Accepted: 10, Rejected: 2, LastEventAt: at(50), PendingSince: at(40),
			Pending: []erpv1.WebhookTarget{target("p", "1", false), target("p", "2", true)}},
			batch: Batch{Targets: []erpv1.WebhookTarget{target("p", "1", true), target("p", "3", false)}, FirstReceived: t0.Add(30 * time.Second),
				LastReceived: t0.Add(45 * time.Second), Accepted: 2},
			check: func(t *testing.T, w *erpv1.WebhookStatus) {
				if w.Path != "/webhooks/x/u" || w.Accepted != 12 || w.Rejected != 2 || !w.LastEventAt.Equal(at(50)) || !w.PendingSince.Equal(at(30)) {
					t.Errorf("%+v", w)
				}
				if fmt.Sprint(w.Pending) != "[{p 1 true} {p 2 true} {p 3 false}]" {
					t.Errorf("pending %v", w.Pending)
				}
			}},
		{name: "pendingSince is reset when nothing was pending", before: &erpv1.WebhookStatus{PendingSince: at(1)},
			batch: Batch{Targets: many(1, "p"), FirstReceived: t0.Add(99 * time.Second), LastReceived: t0.Add(99 * time.Second), Accepted: 1},
			check: func(t *testing.T, w *erpv1.WebhookStatus) {
				if !w.PendingSince.Equal(at(99)) {
					t.Errorf("pendingSince %v", w.PendingSince)
				}
			}},
		{name: "capped, the excess entity overflows", before: &erpv1.WebhookStatus{Pending: many(erpv1.MaxPendingWebhookTargets-1, "p"), Overflow: []string{"z"}},
			batch: Batch{Targets: append(many(1, "q"), target("r", "1", false)), Overflow: []string{"s"}, FirstReceived: t0, LastReceived: t0, Accepted: 2},
			check: func(t *testing.T, w *erpv1.WebhookStatus) {
				if len(w.Pending) != erpv1.MaxPendingWebhookTargets || fmt.Sprint(w.Overflow) != "[r s z]" {
					t.Errorf("%d pending, overflow %v", len(w.Pending), w.Overflow)
				}
			}},
		{name: "rejections only change the count", before: &erpv1.WebhookStatus{LastEventAt: at(5)},
			batch: Batch{Rejected: 7},
			check: func(t *testing.T, w *erpv1.WebhookStatus) {
				if w.Rejected != 7 || !w.LastEventAt.Equal(at(5)) || w.PendingSince != nil || w.Pending != nil {
					t.Errorf("%+v", w)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := erpv1.ErpSyncStatus{ObservedGeneration: 4, Phase: "Ready", Webhooks: tc.before.DeepCopy()}
			ApplyBatch(&st, tc.batch)
			if st.ObservedGeneration != 4 || st.Phase != "Ready" {
				t.Errorf("other status fields changed: %+v", st)
			}
			tc.check(t, st.Webhooks)
		})
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"peer", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"an untrusted peer's forwarded-for is ignored", "203.0.113.5:4000", []string{"1.2.3.4"}, "203.0.113.5"},
		{"trusted proxy: the right-most untrusted hop", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"several headers", "192.168.1.1:80", []string{"6.6.6.6", "198.51.100.8"}, "198.51.100.8"},
		{"garbage stops the walk", "10.1.2.3:80", []string{"6.6.6.6, nonsense"}, "10.1.2.3"},
		{"only proxies", "10.1.2.3:80", []string{"10.2.2.2"}, "10.1.2.3"},
		{"IPv6 by /64", "[2001:db8:1:2:3:4:5:6]:443", nil, "2001:db8:1:2::"},
		{"IPv4-mapped", "[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/webhooks/x", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, trusted); got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseTrustedProxies("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// A flood from one address is refused before its body is read, while
// another address is still served.
func TestRateLimitPerAddress(t *testing.T) {
	g := newRig(t, Options{RatePerIP: 2, BurstPerIP: 3, TrackedIPs: 4})
	g.sub("uid-a", byPath, "", "key-a", 10*time.Millisecond)
	body := delivery(wireEvent{Entity: "products", ID: "p1"})
	do := func(addr string, signed bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, Path(byPath, "uid-a"), strings.NewReader(string(body)))
		req.RemoteAddr = addr + ":5000"
		if signed {
			req.Header.Set(sigHeader, sign(body, "key-a"))
		}
		w := httptest.NewRecorder()
		g.r.Handler().ServeHTTP(w, req)
		return w
	}
	before := deliveries(t, byPath, "throttled")
	var ok, throttled int
	for range 50 {
		w := do("198.51.100.1", false)
		switch w.Code {
		case http.StatusUnauthorized:
			ok++
		case http.StatusTooManyRequests:
			throttled++
			if ra := w.Header().Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("Retry-After %q", ra)
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	}
	if ok > 4 || throttled < 46 {
		t.Errorf("%d answered and %d throttled of 50 at burst 3", ok, throttled)
	}
	if d := deliveries(t, byPath, "throttled") - before; int(d) != throttled {
		t.Errorf("throttled counted %v, want %d", d, throttled)
	}
	if w := do("198.51.100.2", true); w.Code != http.StatusOK {
		t.Errorf("another address got %d", w.Code)
	}
	// The buckets are bounded: past TrackedIPs the oldest address goes.
	for i := range 20 {
		do(fmt.Sprint("203.0.113.", i), false)
	}
	g.r.limiter.mu.Lock()
	n := len(g.r.limiter.buckets)
	g.r.limiter.mu.Unlock()
	if n > 4 {
		t.Errorf("%d buckets, want at most 4", n)
	}
	// Refused requests cost no key reads.
	if n := g.keys.reads.Load(); n > 1 {
		t.Errorf("%d key reads", n)
	}
}

// A failing Dispatcher is retried with backoff and the batch is then
// dropped; events arriving meanwhile are kept.
func TestDispatchRetries(t *testing.T) {
	tests := []struct {
		name      string
		fail      int
		wantCalls int
		wantIDs   string
	}{
		{name: "succeeds on the third try", fail: 2, wantCalls: 3, wantIDs: "p/1"},
		{name: "dropped after the attempts", fail: 100, wantCalls: 3, wantIDs: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDispatcher{fail: tc.fail}
			co := newCoalescer(d, coalescerConfig{maxTargets: 10, timeout: time.Second, attempts: 3, backoff: 20 * time.Millisecond,
				concurrency: 2, now: time.Now})
			sub := Subscriber{UID: "u", Type: "v", Debounce: 10 * time.Millisecond}
			co.add(sub, []erpv1.WebhookTarget{target("p", "1", false)}, true, 0, time.Now())
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				co.mu.Lock()
				idle := len(co.states) == 0
				co.mu.Unlock()
				if idle {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := co.close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d.callCount() != tc.wantCalls {
				t.Errorf("%d calls, want %d", d.callCount(), tc.wantCalls)
			}
			if s := summarise(d.got(), "u"); s.targetList() != tc.wantIDs {
				t.Errorf("delivered %q, want %q", s.targetList(), tc.wantIDs)
			}
		})
	}
}

// Start serves until its context ends, then writes what is pending.
func TestServeAndShutdown(t *testing.T) {
	dir := &fakeDirectory{}
	keys := newFakeKeys()
	disp := &fakeDispatcher{}
	sub := Subscriber{Key: types.NamespacedName{Namespace: "ns", Name: "a"}, UID: "uid-a", Type: byPath, Debounce: time.Minute}
	dir.add(sub)
	keys.set("uid-a", "key-a")
	r := New(fakeCodecs{byPath: &fakeCodec{routing: 0}}, dir, keys, disp, Options{})
	if r.NeedLeaderElection() {
		t.Error("the receiver must run in every replica")
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	body := delivery(wireEvent{Entity: "p", ID: "1"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ln.Addr().String()+Path(byPath, "uid-a"), strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(sigHeader, sign(body, "key-a"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(disp.got()) != 0 {
		t.Fatal("dispatched before the window (a minute) ended")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if s := summarise(disp.got(), "uid-a"); s.targetList() != "p/1" {
		t.Errorf("at shutdown %q was written, want p/1", s.targetList())
	}
}

// A burst of 10,000 events faster than one window: a handful of
// dispatches, each within the cap, deletions kept, the rest polled.
func TestCoalescerBurst(t *testing.T) {
	d := &fakeDispatcher{}
	co := newCoalescer(d, coalescerConfig{maxTargets: erpv1.MaxPendingWebhookTargets, timeout: time.Second, attempts: 3,
		backoff: 10 * time.Millisecond, concurrency: 2, now: time.Now})
	sub := Subscriber{UID: "u", Type: "v", Debounce: 100 * time.Millisecond}
	start := time.Now()
	for n := range 10000 {
		co.add(sub, []erpv1.WebhookTarget{target([]string{"products", "customers"}[n%2], fmt.Sprint(n), n%100 == 0)}, true, 0, time.Now())
	}
	elapsed := time.Since(start)
	if err := co.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := summarise(d.got(), "u")
	if bound := int(elapsed/sub.Debounce) + 2; s.batches > bound {
		t.Errorf("%d dispatches in %v, want at most %d", s.batches, elapsed, bound)
	}
	for _, b := range d.got() {
		if len(b.Targets) > erpv1.MaxPendingWebhookTargets {
			t.Errorf("a batch of %d", len(b.Targets))
		}
	}
	if s.accepted != 10000 || !s.overflow["products"] || !s.overflow["customers"] {
		t.Errorf("accepted %d, overflow %v", s.accepted, s.overflow)
	}
	for n := 0; n < 10000; n += 100 {
		if !s.targets[fmt.Sprintf("products/%d!", n)] {
			t.Errorf("deletion products/%d not kept", n)
		}
	}
}
