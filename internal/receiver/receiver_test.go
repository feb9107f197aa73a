package receiver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

const (
	byPath   = "pathvendor"
	byTenant = "tenantvendor"
)

// rig is a receiver with fake codecs, directory, keys and dispatcher,
// served over real HTTP.
type rig struct {
	t      *testing.T
	r      *Receiver
	srv    *httptest.Server
	dir    *fakeDirectory
	keys   *fakeKeys
	disp   *fakeDispatcher
	path   *fakeCodec
	tenant *fakeCodec
}

func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	g := &rig{t: t, dir: &fakeDirectory{}, keys: newFakeKeys(), disp: &fakeDispatcher{},
		path: &fakeCodec{routing: connectors.RouteByPath}, tenant: &fakeCodec{routing: connectors.RouteByTenant}}
	if opts.RatePerIP == 0 {
		opts.RatePerIP = 1e6
	}
	g.r = New(fakeCodecs{byPath: g.path, byTenant: g.tenant}, g.dir, g.keys, g.disp, opts)
	g.srv = httptest.NewServer(g.r.Handler())
	t.Cleanup(func() {
		g.srv.Close()
		g.close()
	})
	return g
}

// close writes the open batches (the receiver's shutdown).
func (g *rig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.r.Close(ctx); err != nil {
		g.t.Errorf("close: %v", err)
	}
}

// sub adds an ErpSync with webhooks on and its signing secret.
func (g *rig) sub(uid, vendor, tenant, secret string, debounce time.Duration) Subscriber {
	s := Subscriber{Key: types.NamespacedName{Namespace: "ns", Name: "erpsync-" + uid}, UID: types.UID(uid), Type: vendor,
		Tenant: NormalizeTenant(tenant), Debounce: debounce, CredentialsSecret: "creds-" + uid}
	g.dir.add(s)
	if secret != "" {
		g.keys.set(s.UID, secret)
	}
	return s
}

type reply struct {
	code   int
	body   string
	header http.Header
	took   time.Duration
}

func (g *rig) send(method, path string, body []byte, sig string) reply {
	g.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, g.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set(sigHeader, sig)
	}
	start := time.Now()
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: string(b), header: resp.Header, took: time.Since(start)}
}

func (g *rig) post(path string, body []byte, secret string) reply {
	g.t.Helper()
	sig := ""
	if secret != "" {
		sig = sign(body, secret)
	}
	return g.send(http.MethodPost, path, body, sig)
}

// deliveries reads erpsync_webhook_deliveries_total{vendor,result}.
func deliveries(t *testing.T, vendor, result string) float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "erpsync_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["vendor"] == vendor && got["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestDeliveriesByPath(t *testing.T) {
	ev := delivery(wireEvent{Entity: "products", ID: "p1"})
	big := delivery(wireEvent{Entity: "products", ID: strings.Repeat("x", 2000)})
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		sig    func(body []byte) string
		code   int
		result string
		vendor string
		// accepted, rejected: what reaches the ErpSync's batches.
		accepted, rejected int64
		targets            string
		// owner is the ErpSync the outcome is counted for (a).
		owner types.UID
		// overflow lists the entities the ErpSync is asked to poll.
		overflow string
	}{
		{name: "authentic", method: "POST", path: Path(byPath, "uid-a"), body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 200, result: "accepted", vendor: byPath, accepted: 1, targets: "products/p1"},
		{name: "wrongly signed", method: "POST", path: Path(byPath, "uid-a"), body: ev, sig: func(b []byte) string { return sign(b, "forged") },
			code: 401, result: "rejected", vendor: byPath, rejected: 1},
		{name: "unsigned", method: "POST", path: Path(byPath, "uid-a"), body: ev, sig: func([]byte) string { return "" },
			code: 401, result: "rejected", vendor: byPath, rejected: 1},
		{name: "signed with another ErpSync's key", method: "POST", path: Path(byPath, "uid-a"), body: ev, sig: func(b []byte) string { return sign(b, "key-b") },
			code: 401, result: "rejected", vendor: byPath, rejected: 1},
		{name: "ErpSync without keys", method: "POST", path: Path(byPath, "uid-nokeys"), body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 401, result: "rejected", vendor: byPath, rejected: 1, owner: "uid-nokeys"},
		{name: "unknown route is acknowledged and ignored", method: "POST", path: Path(byPath, "uid-gone"), body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 200, result: "unknown", vendor: byPath},
		{name: "route of another vendor is unknown", method: "POST", path: Path(byPath, "uid-t"), body: ev, sig: func(b []byte) string { return sign(b, "key-t") },
			code: 200, result: "unknown", vendor: byPath},
		// Acknowledged (the vendor would retry, then disable the
		// subscription), and the announced streams are polled instead.
		{name: "authentic but malformed", method: "POST", path: Path(byPath, "uid-a"), body: []byte("{not json"), sig: func(b []byte) string { return sign(b, "key-a") },
			code: 200, result: "malformed", vendor: byPath, rejected: 1, overflow: "*"},
		{name: "over the cap", method: "POST", path: Path(byPath, "uid-a"), body: big, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 413, result: "too_large", vendor: byPath},
		{name: "unknown vendor", method: "POST", path: Path("nosuch", "uid-a"), body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 404, result: "not_found", vendor: "other"},
		{name: "not under /webhooks", method: "POST", path: "/other/" + byPath, body: ev, sig: func([]byte) string { return "" },
			code: 404, result: "not_found", vendor: "other"},
		{name: "by-path vendor without a route", method: "POST", path: Path(byPath, ""), body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 404, result: "not_found", vendor: byPath},
		{name: "by-tenant vendor with a route", method: "POST", path: Path(byTenant, "uid-t"), body: ev, sig: func(b []byte) string { return sign(b, "key-t") },
			code: 404, result: "not_found", vendor: byTenant},
		{name: "trailing slash", method: "POST", path: Path(byPath, "uid-a") + "/", body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 404, result: "not_found", vendor: "other"},
		{name: "GET", method: "GET", path: Path(byPath, "uid-a"), code: 405, result: "not_found", vendor: byPath, sig: func([]byte) string { return "" }},
		{name: "PUT", method: "PUT", path: Path(byPath, "uid-a"), body: ev, sig: func(b []byte) string { return sign(b, "key-a") },
			code: 405, result: "not_found", vendor: byPath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, Options{MaxBodyBytes: 1024})
			a := g.sub("uid-a", byPath, "", "key-a", 20*time.Millisecond)
			g.sub("uid-b", byPath, "", "key-b", 20*time.Millisecond)
			g.sub("uid-t", byTenant, "t1", "key-t", 20*time.Millisecond)
			g.dir.add(Subscriber{Key: types.NamespacedName{Namespace: "ns", Name: "nokeys"}, UID: "uid-nokeys", Type: byPath, Debounce: 20 * time.Millisecond})
			before := deliveries(t, tc.vendor, tc.result)
			got := g.send(tc.method, tc.path, tc.body, tc.sig(tc.body))
			if got.code != tc.code {
				t.Fatalf("status %d, want %d", got.code, tc.code)
			}
			if got.body != "" {
				t.Errorf("body %q, want none", got.body)
			}
			if tc.code == 405 && got.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", got.header.Get("Allow"))
			}
			if d := deliveries(t, tc.vendor, tc.result) - before; d != 1 {
				t.Errorf("deliveries{vendor=%q,result=%q} grew by %v, want 1", tc.vendor, tc.result, d)
			}
			g.close()
			owner := a.UID
			if tc.owner != "" {
				owner = tc.owner
			}
			s := summarise(g.disp.got(), owner)
			if s.accepted != tc.accepted || s.rejected != tc.rejected || s.targetList() != tc.targets {
				t.Errorf("ErpSync %s got accepted %d rejected %d targets %q, want %d, %d, %q",
					owner, s.accepted, s.rejected, s.targetList(), tc.accepted, tc.rejected, tc.targets)
			}
			var overflow []string
			for _, b := range g.disp.got() {
				overflow = append(overflow, b.Overflow...)
			}
			if got := strings.Join(overflow, ","); got != tc.overflow {
				t.Errorf("overflow %q, want %q", got, tc.overflow)
			}
			for _, b := range g.disp.got() {
				if b.Subscriber.UID != owner {
					t.Errorf("a batch for %s: %+v", b.Subscriber.UID, b)
				}
				if tc.accepted == 0 && (len(b.Targets) > 0 || !b.LastReceived.IsZero()) {
					t.Errorf("a refused delivery changed something: %+v", b)
				}
			}
		})
	}
}

// A chunked body (no Content-Length) over the cap is refused too.
func TestChunkedBodyOverCap(t *testing.T) {
	g := newRig(t, Options{MaxBodyBytes: 100})
	g.sub("uid-a", byPath, "", "key-a", 20*time.Millisecond)
	body := delivery(wireEvent{Entity: "products", ID: strings.Repeat("y", 200)})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(body)
		_ = pw.Close()
	}()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, g.srv.URL+Path(byPath, "uid-a"), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(sigHeader, sign(body, "key-a"))
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	g.close()
	if b := g.disp.got(); len(b) != 0 {
		t.Errorf("batches %+v, want none", b)
	}
}

func TestByTenant(t *testing.T) {
	mixed := delivery(
		wireEvent{Tenant: "TENANT-A", Entity: "contacts", ID: "c1"},
		wireEvent{Tenant: "tenant-b", Entity: "contacts", ID: "c2"},
		wireEvent{Tenant: "tenant-a", Entity: "invoices", ID: "i1", Deleted: true},
		wireEvent{Tenant: "tenant-z", Entity: "contacts", ID: "c9"},
	)
	tests := []struct {
		name   string
		body   []byte
		secret string
		code   int
		// want is each ErpSync's targets, accepted and rejected.
		want map[types.UID]summary
	}{
		{name: "signed by A's app: A and A2 get tenant A's events only", body: mixed, secret: "key-a", code: 200,
			want: map[types.UID]summary{
				"a":  {accepted: 2, targets: set("contacts/c1", "invoices/i1!")},
				"a2": {accepted: 2, targets: set("contacts/c1", "invoices/i1!")},
			}},
		{name: "signed by B's app: B gets tenant B's events only", body: mixed, secret: "key-b", code: 200,
			want: map[types.UID]summary{"b": {accepted: 1, targets: set("contacts/c2")}}},
		{name: "forged: every candidate counts a rejection", body: mixed, secret: "forged", code: 401,
			want: map[types.UID]summary{"a": {rejected: 1}, "a2": {rejected: 1}, "b": {rejected: 1}}},
		{name: "unsigned", body: mixed, code: 401,
			want: map[types.UID]summary{"a": {rejected: 1}, "a2": {rejected: 1}, "b": {rejected: 1}}},
		{name: "unknown tenant only: acknowledged and ignored", body: delivery(wireEvent{Tenant: "tenant-z", Entity: "contacts", ID: "c9"}),
			secret: "forged", code: 200, want: map[types.UID]summary{}},
		{name: "event without a tenant: ignored", body: delivery(wireEvent{Entity: "contacts", ID: "c9"}),
			secret: "key-a", code: 200, want: map[types.UID]summary{}},
		{name: "malformed", body: []byte(`{"events":[{"tenant":`), secret: "key-a", code: 400, want: map[types.UID]summary{}},
		{name: "intent to receive, correctly signed", body: delivery(), secret: "key-b", code: 200,
			want: map[types.UID]summary{"b": {}}},
		{name: "intent to receive, wrongly signed", body: delivery(), secret: "forged", code: 401, want: map[types.UID]summary{}},
		{name: "intent to receive, unsigned", body: delivery(), code: 401, want: map[types.UID]summary{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, Options{})
			g.sub("a", byTenant, "tenant-a", "key-a", 20*time.Millisecond)
			// A second ErpSync of tenant A through the same app: the same
			// key, checked once.
			g.sub("a2", byTenant, "Tenant-A", "key-a", 20*time.Millisecond)
			g.sub("b", byTenant, "tenant-b", "key-b", 20*time.Millisecond)
			// A by-path ErpSync whose key signs nothing here.
			g.sub("p", byPath, "", "key-a", 20*time.Millisecond)
			got := g.post(Path(byTenant, ""), tc.body, tc.secret)
			if got.code != tc.code || got.body != "" {
				t.Fatalf("reply %d %q, want %d and no body", got.code, got.body, tc.code)
			}
			if n := g.tenant.verifies.Load(); n > 2 {
				t.Errorf("%d verifications for two distinct keys", n)
			}
			g.close()
			batches := g.disp.got()
			seen := map[types.UID]bool{}
			for _, b := range batches {
				seen[b.Subscriber.UID] = true
			}
			for uid := range seen {
				if _, ok := tc.want[uid]; !ok {
					t.Errorf("ErpSync %s got %+v", uid, summarise(batches, uid))
				}
			}
			for uid, w := range tc.want {
				s := summarise(batches, uid)
				if s.batches == 0 {
					t.Errorf("ErpSync %s got nothing", uid)
					continue
				}
				wantTargets := summary{targets: w.targets}.targetList()
				if s.accepted != w.accepted || s.rejected != w.rejected || s.targetList() != wantTargets {
					t.Errorf("ErpSync %s: accepted %d rejected %d targets %q, want %d %d %q", uid, s.accepted, s.rejected, s.targetList(), w.accepted, w.rejected, wantTargets)
				}
				authentic := w.rejected == 0
				for _, b := range batches {
					if b.Subscriber.UID == uid && authentic == b.LastReceived.IsZero() {
						t.Errorf("ErpSync %s: lastReceived %v for an authentic delivery %v", uid, b.LastReceived, authentic)
					}
				}
			}
		})
	}
}

func set(items ...string) map[string]bool {
	out := map[string]bool{}
	for _, i := range items {
		out[i] = true
	}
	return out
}

// Duplicated and replayed deliveries within a window become one target.
func TestDuplicatesCoalesce(t *testing.T) {
	g := newRig(t, Options{})
	a := g.sub("uid-a", byPath, "", "key-a", 200*time.Millisecond)
	for i := range 5 {
		body := delivery(wireEvent{Entity: "products", ID: "p1"}, wireEvent{Entity: "products", ID: "p2", Deleted: i == 3})
		if got := g.post(Path(byPath, "uid-a"), body, "key-a"); got.code != 200 {
			t.Fatalf("delivery %d: %d", i, got.code)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(g.disp.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b := g.disp.got()
	if len(b) != 1 {
		t.Fatalf("%d batches after one window, want 1: %+v", len(b), b)
	}
	s := summarise(b, a.UID)
	if s.accepted != 10 || s.targetList() != "products/p1,products/p2!" {
		t.Errorf("accepted %d, targets %q; want 10 and products/p1,products/p2!", s.accepted, s.targetList())
	}
	if b[0].FirstReceived.IsZero() || b[0].LastReceived.Before(b[0].FirstReceived) {
		t.Errorf("received %v .. %v", b[0].FirstReceived, b[0].LastReceived)
	}
}

// A slow Dispatcher never holds a reply: the request path only queues.
func TestRepliesWhileDispatcherIsSlow(t *testing.T) {
	g := newRig(t, Options{DispatchTimeout: 10 * time.Second})
	g.disp.delay = 2 * time.Second
	g.disp.started = make(chan struct{}, 1)
	g.sub("uid-a", byPath, "", "key-a", 10*time.Millisecond)
	first := g.post(Path(byPath, "uid-a"), delivery(wireEvent{Entity: "products", ID: "p0"}), "key-a")
	if first.code != 200 {
		t.Fatalf("first delivery: %d", first.code)
	}
	select {
	case <-g.disp.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the first batch was not dispatched")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := range 40 {
		wg.Go(func() {
			got := g.post(Path(byPath, "uid-a"), delivery(wireEvent{Entity: "products", ID: fmt.Sprint("p", i)}), "key-a")
			mu.Lock()
			defer mu.Unlock()
			if got.code != 200 {
				t.Errorf("delivery %d: %d", i, got.code)
			}
			slowest = max(slowest, got.took)
		})
	}
	wg.Wait()
	if slowest > time.Second {
		t.Errorf("slowest reply took %v while a dispatch was running; replies must not wait for it", slowest)
	}
	g.close()
	if g.disp.overlap {
		t.Error("two dispatches of one ErpSync ran at once")
	}
	if s := summarise(g.disp.got(), "uid-a"); len(s.targets) != 40 || s.accepted != 41 {
		t.Errorf("%d targets, %d accepted; want 40 and 41", len(s.targets), s.accepted)
	}
}

// A storm of 10,000 events for one company yields a bounded number of
// dispatches, each bounded in size, and nothing is lost: every document is
// a target or its entity is polled.
func TestStormIsBounded(t *testing.T) {
	const debounce = 50 * time.Millisecond
	g := newRig(t, Options{})
	a := g.sub("uid-a", byPath, "", "key-a", debounce)
	g.sub("uid-b", byPath, "", "key-b", debounce)
	start := time.Now()
	var wg sync.WaitGroup
	const senders, perSender, perDelivery = 20, 25, 20 // 10,000 events
	for s := range senders {
		wg.Go(func() {
			for d := range perSender {
				var evs []wireEvent
				for e := range perDelivery {
					n := (s*perSender+d)*perDelivery + e
					entity := []string{"products", "customers"}[n%2]
					evs = append(evs, wireEvent{Entity: entity, ID: fmt.Sprint(n), Deleted: n%1000 == 7})
				}
				if got := g.post(Path(byPath, "uid-a"), delivery(evs...), "key-a"); got.code != 200 {
					t.Errorf("delivery: %d", got.code)
					return
				}
			}
		})
	}
	// A quiet neighbour is not held up by the storm.
	if got := g.post(Path(byPath, "uid-b"), delivery(wireEvent{Entity: "products", ID: "b1"}), "key-b"); got.code != 200 {
		t.Fatalf("neighbour: %d", got.code)
	}
	wg.Wait()
	elapsed := time.Since(start)
	g.close()
	batches := g.disp.got()
	s := summarise(batches, a.UID)
	bound := int(elapsed/debounce) + 2
	if s.batches > bound {
		t.Errorf("%d dispatches for a storm of %v with a %v debounce, want at most %d", s.batches, elapsed, debounce, bound)
	}
	if s.accepted != senders*perSender*perDelivery {
		t.Errorf("accepted %d, want %d", s.accepted, senders*perSender*perDelivery)
	}
	for _, b := range batches {
		if len(b.Targets) > erpv1.MaxPendingWebhookTargets {
			t.Errorf("a batch of %d targets", len(b.Targets))
		}
	}
	// Every deletion is kept as a target (they are preferred when full).
	for n := 7; n < 10000; n += 1000 {
		entity := []string{"products", "customers"}[n%2]
		if !s.targets[fmt.Sprintf("%s/%d!", entity, n)] {
			t.Errorf("deletion %s/%d was not kept", entity, n)
		}
	}
	// Every other document is a target or its entity is polled.
	for n := range 10000 {
		entity := []string{"products", "customers"}[n%2]
		if !s.targets[fmt.Sprintf("%s/%d", entity, n)] && !s.targets[fmt.Sprintf("%s/%d!", entity, n)] && !s.overflow[entity] {
			t.Fatalf("document %s/%d was lost", entity, n)
		}
	}
	if sb := summarise(batches, "uid-b"); sb.targetList() != "products/b1" {
		t.Errorf("neighbour got %q", sb.targetList())
	}
	t.Logf("%d events in %v: %d dispatches, %d targets, overflow %v", s.accepted, elapsed, s.batches, len(s.targets), s.overflow)
}

// Many senders, several ErpSyncs, forged and authentic deliveries at once
// (run with -race): every authentic event and every refusal is counted
// exactly once.
func TestConcurrentDeliveries(t *testing.T) {
	g := newRig(t, Options{})
	uids := []string{"u1", "u2", "u3"}
	for _, u := range uids {
		g.sub(u, byPath, "", "key-"+u, 5*time.Millisecond)
	}
	g.sub("t1", byTenant, "tenant-1", "key-t1", 5*time.Millisecond)
	var wg sync.WaitGroup
	const rounds = 30
	for _, u := range uids {
		wg.Go(func() {
			for i := range rounds {
				body := delivery(wireEvent{Entity: "products", ID: fmt.Sprint(u, "-", i)})
				secret := "key-" + u
				if i%3 == 0 {
					secret = "forged"
				}
				g.post(Path(byPath, u), body, secret)
			}
		})
		wg.Go(func() {
			for i := range rounds {
				g.post(Path(byTenant, ""), delivery(wireEvent{Tenant: "tenant-1", Entity: "contacts", ID: fmt.Sprint(u, "-", i)}), "key-t1")
			}
		})
	}
	wg.Wait()
	g.close()
	batches := g.disp.got()
	for _, u := range uids {
		s := summarise(batches, types.UID(u))
		if s.accepted != 20 || s.rejected != 10 || len(s.targets) != 20 {
			t.Errorf("%s: accepted %d rejected %d targets %d; want 20, 10, 20", u, s.accepted, s.rejected, len(s.targets))
		}
	}
	if s := summarise(batches, "t1"); s.accepted != 90 || len(s.targets) != 90 {
		t.Errorf("t1: accepted %d targets %d; want 90, 90", s.accepted, len(s.targets))
	}
	if g.disp.overlap {
		t.Error("two dispatches of one ErpSync ran at once")
	}
}

// A rotated key is picked up at once; a flood of forged deliveries does
// not turn into Secret reads.
func TestKeyRotationAndForgedFlood(t *testing.T) {
	clock := &manualClock{t: time.Now()}
	g := newRig(t, Options{KeyTTL: time.Hour, KeyRefresh: 5 * time.Second, Now: clock.Now})
	g.sub("uid-a", byPath, "", "old", 20*time.Millisecond)
	body := delivery(wireEvent{Entity: "products", ID: "p1"})
	if got := g.post(Path(byPath, "uid-a"), body, "old"); got.code != 200 {
		t.Fatalf("with the old key: %d", got.code)
	}
	for range 100 {
		if got := g.post(Path(byPath, "uid-a"), body, "forged"); got.code != 401 {
			t.Fatalf("forged: %d", got.code)
		}
	}
	if n := g.keys.reads.Load(); n > 1 {
		t.Errorf("%d key reads for one authentic and 100 forged deliveries within the refresh interval, want 1", n)
	}
	clock.advance(6 * time.Second)
	g.keys.set("uid-a", "new")
	if got := g.post(Path(byPath, "uid-a"), body, "new"); got.code != 200 {
		t.Fatalf("with the rotated key: %d", got.code)
	}
	if n := g.keys.reads.Load(); n != 2 {
		t.Errorf("%d key reads, want 2 (the rotation re-read once)", n)
	}
	for range 50 {
		g.post(Path(byPath, "uid-a"), body, "forged")
	}
	if n := g.keys.reads.Load(); n != 2 {
		t.Errorf("%d key reads after a second flood, want 2", n)
	}
}

// The directory or the keys failing is the receiver's problem: 503, so the
// vendor retries, and nothing is counted against the ErpSync.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(g *rig)
		path string
	}{
		{"directory by path", func(g *rig) { g.dir.err = fmt.Errorf("cache not synced") }, Path(byPath, "uid-a")},
		{"directory by tenant", func(g *rig) { g.dir.err = fmt.Errorf("cache not synced") }, Path(byTenant, "")},
		{"keys", func(g *rig) { g.keys.err = fmt.Errorf("API server unreachable") }, Path(byPath, "uid-a")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, Options{})
			g.sub("uid-a", byPath, "", "key-a", 20*time.Millisecond)
			g.sub("uid-t", byTenant, "t1", "key-a", 20*time.Millisecond)
			tc.fail(g)
			got := g.post(tc.path, delivery(wireEvent{Tenant: "t1", Entity: "products", ID: "p1"}), "key-a")
			if got.code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", got.code)
			}
			g.close()
			if b := g.disp.got(); len(b) != 0 {
				t.Errorf("batches %+v", b)
			}
		})
	}
}

// manualClock is a clock a test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
