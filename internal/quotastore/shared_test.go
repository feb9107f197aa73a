package quotastore

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

func TestSettleQuota(t *testing.T) {
	day := t0.Truncate(24 * time.Hour)
	yesterday := day.AddDate(0, 0, -1)
	block := t0.Add(3 * time.Hour)
	tests := []struct {
		name        string
		stored      entry
		period      time.Time
		spent, own  int64
		want        entry
		wantWritten bool
	}{
		{name: "first write", period: day, own: 100,
			want: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day}, Held: map[string]int64{"me": 100}}, wantWritten: true},
		{name: "spent calls are added, the others' reservations kept", period: day, spent: 30, own: 70,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 500}, Held: map[string]int64{"me": 100, "b": 40}},
			want:   entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 530}, Held: map[string]int64{"me": 70, "b": 40}}, wantWritten: true},
		{name: "returning everything drops our term", period: day, spent: 5,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 10}, Held: map[string]int64{"me": 20}},
			want:   entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 15}}, wantWritten: true},
		{name: "a crashed process's reservation stays", period: day,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 10}, Held: map[string]int64{"me": 20, "crashed": 100}},
			want:   entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 10}, Held: map[string]int64{"crashed": 100}}, wantWritten: true},
		{name: "a new day starts afresh, the vendor's block kept", period: day, spent: 1, own: 9,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: yesterday, Used: 4990, BlockedUntil: block}, Held: map[string]int64{"crashed": 10}},
			want:   entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 1, BlockedUntil: block}, Held: map[string]int64{"me": 9}}, wantWritten: true},
		{name: "our clock is behind: nothing written", period: yesterday, spent: 3, own: 7,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 5}},
			want:   entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 5}}},
		{name: "a counter of an older version (no reservations)", period: day, spent: 2, own: 98,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 1234}},
			want:   entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: day, Used: 1236}, Held: map[string]int64{"me": 98}}, wantWritten: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := settleQuota(tc.stored, "me", tc.period, tc.spent, tc.own)
			if ok != tc.wantWritten || got.QuotaUsage != tc.want.QuotaUsage || !maps.Equal(got.Held, tc.want.Held) {
				t.Errorf("settleQuota = %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantWritten)
			}
		})
	}
}

func TestGrantQuota(t *testing.T) {
	day := t0.Truncate(24 * time.Hour)
	tests := []struct {
		name      string
		stored    entry
		own       int64
		limit     int64
		want      int64
		wantTotal int64 // Used plus every reservation after the grant
	}{
		{name: "a fiftieth of a fresh quota", limit: 5000, want: 100, wantTotal: 100},
		{name: "what the others spent and hold is not free", limit: 5000,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{Used: 4700}, Held: map[string]int64{"b": 100}}, want: 50, wantTotal: 4850},
		{name: "a crashed process's reservation counts as spent", limit: 1000,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{Used: 990}, Held: map[string]int64{"crashed": 10}}, want: 0, wantTotal: 1000},
		{name: "the last call", limit: 1000,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{Used: 997}, Held: map[string]int64{"b": 2}}, want: 1, wantTotal: 1000},
		{name: "our unflushed calls are counted", limit: 100, own: 3,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{Used: 95}, Held: map[string]int64{"me": 3}}, want: 1, wantTotal: 99},
		{name: "over the limit (a lowered plan)", limit: 100,
			stored: entry{QuotaUsage: httpapi.QuotaUsage{Used: 150}}, want: 0, wantTotal: 150},
		{name: "Monthly plan of 15,000: at most 200", limit: 15000, want: 200, wantTotal: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.stored.PeriodStart = day
			got, g := grantQuota(tc.stored, "me", tc.own, tc.limit)
			if g != tc.want {
				t.Errorf("granted %d, want %d", g, tc.want)
			}
			if total := got.Used + got.heldAll(); total != tc.wantTotal || total > max(tc.limit, tc.stored.Used) {
				t.Errorf("Used plus reservations %d, want %d (limit %d)", total, tc.wantTotal, tc.limit)
			}
			if g > 0 && got.Held["me"] != tc.own+g {
				t.Errorf("our term %d, want %d", got.Held["me"], tc.own+g)
			}
		})
	}
}

// quotaVendor is a vendor with a daily quota: it serves limit calls and
// refuses any beyond as Xero does (429, X-Rate-Limit-Problem: day).
type quotaVendor struct {
	limit           int64
	served, refused atomic.Int64
	srv             *httptest.Server
}

func newQuotaVendor(t *testing.T, limit int64) *quotaVendor {
	v := &quotaVendor{limit: limit}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if v.served.Add(1) > v.limit {
			v.served.Add(-1)
			v.refused.Add(1)
			w.Header().Set("X-Rate-Limit-Problem", "day")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(v.srv.Close)
	return v
}

// replica is one manager spending the credential: its store, registry and
// client.
type replica struct {
	store *ConfigMapStore
	// clients have a registry each over the one store (a process with
	// two registries shares its reservations between them).
	clients []*httpapi.Client
	client  *httpapi.Client
	done    chan error
	cancel  context.CancelFunc
}

var sharedKey = httpapi.Key("xero", "client", "tenant")

// newReplica starts a manager on the quota's credential; started runs its
// store's flush loop (a crashed replica has none, and never closes).
func newReplica(t *testing.T, c client.Client, ns, id string, clock httpapi.Clock, limit int64, started bool) *replica {
	return newReplicaWith(t, c, ns, id, clock, limit, started, 1)
}

func newReplicaWith(t *testing.T, c client.Client, ns, id string, clock httpapi.Clock, limit int64, started bool, registries int) *replica {
	t.Helper()
	s := &ConfigMapStore{Reader: c, Writer: c, Namespace: ns, ID: id, FlushEvery: 20 * time.Millisecond, CollectEvery: -1, Now: clock.Now}
	r := &replica{store: s}
	for range max(1, registries) {
		// The test server stands for the vendor's own host: its quota
		// blocks are saved.
		cl, err := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(s), Clock: clock, ProblemHeader: "X-Rate-Limit-Problem", MaxRetries: -1, DefaultHost: true,
			Limits: []httpapi.Limit{{Key: sharedKey, Quotas: []httpapi.Quota{{Name: "day", Limit: limit, Period: httpapi.Daily}}}}})
		if err != nil {
			t.Fatal(err)
		}
		r.clients = append(r.clients, cl)
	}
	r.client = r.clients[0]
	if started {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel, r.done = cancel, make(chan error, 1)
		go func() { r.done <- s.Start(ctx) }()
	}
	return r
}

// stop stops the replica cleanly (its store closes).
func (r *replica) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Error(err)
	}
	r.cancel = nil
}

// spend calls with workers goroutines until the quota is used up, or n
// calls in all when n > 0, and returns the calls sent.
func (r *replica) spend(t *testing.T, url string, workers int, n int64) int64 {
	var sent, budget atomic.Int64
	budget.Store(n)
	var wg sync.WaitGroup
	for w := range workers {
		cl := r.clients[w%len(r.clients)]
		wg.Go(func() {
			for n <= 0 || budget.Add(-1) >= 0 {
				_, err := cl.Get(context.Background(), "op", url, nil)
				switch {
				case err == nil:
					sent.Add(1)
				case connectors.KindOf(err) == connectors.KindQuotaExhausted:
					return
				default:
					t.Errorf("call failed: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return sent.Load()
}

// held is the calls a store holds of the shared key's day quota.
func (r *replica) held() int64 {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	if ks := r.store.keys[sharedKey]; ks != nil && ks.quotas["day"] != nil {
		return ks.quotas["day"].held
	}
	return 0
}

func storedDay(t *testing.T, c client.Client, ns string) entry {
	t.Helper()
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: Name(sharedKey)}, &cm); err != nil {
		t.Fatal(err)
	}
	e, err := decode(cm.Data[dataKey])
	if err != nil {
		t.Fatal(err)
	}
	return e["day"]
}

type replicaCase struct {
	name     string
	replicas int
	limit    int64
	// crash: one more replica spends crashCalls and crashes (no flush
	// loop, no close) before the others start.
	crash      bool
	crashCalls int64
	// registries per replica (default 1).
	registries int
}

// runReplicas has the replicas spend one credential's daily quota at once,
// four requests each in flight, until it is used up: the vendor serves
// exactly the limit (less what a crashed replica still holds) and never
// refuses a call; the ConfigMap's count is what was sent.
func runReplicas(t *testing.T, c client.Client, ns string, tc replicaCase) {
	clock := httpapi.NewFakeClock(t0)
	v := newQuotaVendor(t, tc.limit)
	var crashedHeld int64
	var crashed *replica
	if tc.crash {
		crashed = newReplica(t, c, ns, "crashed", clock, tc.limit, false)
		if got := crashed.spend(t, v.srv.URL, 2, tc.crashCalls); got != tc.crashCalls {
			t.Fatalf("the replica to crash sent %d calls, want %d", got, tc.crashCalls)
		}
		crashedHeld = crashed.held()
		if crashedHeld == 0 {
			t.Fatal("the crashed replica holds no reservation: the case tests nothing")
		}
	}
	rs := make([]*replica, tc.replicas)
	for i := range rs {
		rs[i] = newReplicaWith(t, c, ns, fmt.Sprintf("replica-%d", i), clock, tc.limit, true, tc.registries)
	}
	sent := make([]int64, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { sent[i] = r.spend(t, v.srv.URL, 4, 0) })
	}
	wg.Wait()
	for _, r := range rs {
		r.stop(t)
	}
	var total int64
	for _, n := range sent {
		total += n
	}
	total += tc.crashCalls
	t.Logf("%d replicas sent %v (+%d before a crash); the crashed one holds %d", tc.replicas, sent, tc.crashCalls, crashedHeld)
	if api, ok := c.(*apiServer); ok {
		t.Logf("%d API write attempts (conflicts included) for %d calls", api.writes.Load(), total)
	}
	if got := v.served.Load(); got != total || got > tc.limit {
		t.Errorf("the vendor served %d calls, the replicas counted %d; limit %d", got, total, tc.limit)
	}
	if n := v.refused.Load(); n != 0 {
		t.Errorf("the vendor refused %d calls over its quota", n)
	}
	if want := tc.limit - crashedHeld; total != want {
		t.Errorf("%d calls sent in all, want the limit less the crashed replica's reservation: %d", total, want)
	}
	for i, n := range sent {
		if n == 0 && tc.limit >= 100 {
			t.Errorf("replica %d sent nothing", i)
		}
	}
	// The ConfigMap: every call written but those the crashed replica
	// spent after its last write, which its reservation still counts.
	e := storedDay(t, c, ns)
	if e.Used+e.heldAll() != tc.limit {
		t.Errorf("stored %d used and %v held, want %d in all", e.Used, e.Held, tc.limit)
	}
	if tc.crash && (len(e.Held) != 1 || e.Held["crashed"] < crashedHeld) {
		t.Errorf("stored reservations %v, want the crashed replica's only (at least %d)", e.Held, crashedHeld)
	}
	if !tc.crash && (len(e.Held) != 0 || e.Used != total) {
		t.Errorf("stored %d used and %v held, want %d used and none held", e.Used, e.Held, total)
	}
}

// TestReplicasShareADailyQuota runs two and three managers on one
// credential over a fake API server (conflicts included).
func TestReplicasShareADailyQuota(t *testing.T) {
	for _, tc := range []replicaCase{
		{name: "two replicas", replicas: 2, limit: 600},
		{name: "three replicas", replicas: 3, limit: 600},
		{name: "three replicas, one call at a time", replicas: 3, limit: 37},
		{name: "two replicas and one crashed", replicas: 2, limit: 600, crash: true, crashCalls: 25},
		{name: "two replicas of two registries each", replicas: 2, limit: 600, registries: 2},
	} {
		t.Run(tc.name, func(t *testing.T) { runReplicas(t, newAPIServer(), "erpsync-system", tc) })
	}
}

// TestReplicasOnARealAPIServer is the same on a real API server.
func TestReplicasOnARealAPIServer(t *testing.T) {
	for _, tc := range []replicaCase{
		{name: "two replicas", replicas: 2, limit: 600},
		{name: "three replicas", replicas: 3, limit: 600},
		{name: "two replicas and one crashed", replicas: 2, limit: 600, crash: true, crashCalls: 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ns := realAPIServer(t)
			runReplicas(t, c, ns, tc)
		})
	}
}

// TestIdleReplicaKeepsItsReservationWhileTheQuotaLasts: a replica keeps
// its unspent reserved calls between its syncs while at least a quarter of
// the quota is claimed by no one, so a quiet sync costs no reservation and
// no return; once it has read that the quota runs low, its next idle flush
// returns them to the others; stopping returns them at once.
func TestIdleReplicaKeepsItsReservationWhileTheQuotaLasts(t *testing.T) {
	ctx := context.Background()
	api := newAPIServer()
	clock := httpapi.NewFakeClock(t0)
	v := newQuotaVendor(t, 1000)
	a := newReplica(t, api, "erpsync-system", "a", clock, 1000, false)
	b := newReplica(t, api, "erpsync-system", "b", clock, 1000, false)
	a.spend(t, v.srv.URL, 1, 1)
	if e := storedDay(t, api, "erpsync-system"); e.Held["a"] != 20 {
		t.Fatalf("stored %+v, want a block of 20 held by a", e)
	}
	// b sees a's reservation as spent.
	b.spend(t, v.srv.URL, 1, 1)
	if left, _, _ := b.client.QuotaLeft(); left != 1000-20-1 {
		t.Errorf("b's QuotaLeft = %d, want %d", left, 1000-20-1)
	}
	// Idle flushes of a key whose quota has plenty left write nothing:
	// a keeps its 19 calls (and its spent one is written with its next
	// write).
	writes := api.writes.Load()
	for range 3 {
		a.store.FlushAll(ctx)
		clock.Advance(time.Second)
	}
	if n := api.writes.Load() - writes; n != 0 || a.held() != 19 {
		t.Errorf("idle flushes with plenty left: %d writes, a holds %d; want none and 19", n, a.held())
	}
	// b spends until less than a quarter is free.
	b.spend(t, v.srv.URL, 2, 1000-20-1-240)
	// a's next sync: its first call's save writes (a's last write is
	// FlushEvery old), carrying its 2 calls and reading b's spending.
	a.spend(t, v.srv.URL, 1, 1)
	if e := storedDay(t, api, "erpsync-system"); e.Used < 2 || e.Held["a"] != 18 {
		t.Errorf("after a's next call: %+v, want a's 2 calls written and 18 held by a", e)
	}
	a.store.FlushAll(ctx) // a was busy since the last flush: it keeps them
	if a.held() != 18 {
		t.Errorf("a busy flush returned a's reservation: a holds %d", a.held())
	}
	a.store.FlushAll(ctx) // idle now, and the quota runs low: returned
	if e := storedDay(t, api, "erpsync-system"); e.Held["a"] != 0 || a.held() != 0 {
		t.Errorf("after an idle flush with the quota low: %+v, a holds %d; want a's reservation returned", e, a.held())
	}
	writes = api.writes.Load()
	a.store.FlushAll(ctx)
	if api.writes.Load() != writes {
		t.Error("an idle key with nothing held was written again")
	}
	// Stopping returns the rest at once and writes every call.
	b.store.Close(ctx)
	a.store.Close(ctx)
	sent := v.served.Load()
	if e := storedDay(t, api, "erpsync-system"); len(e.Held) != 0 || e.Used != sent {
		t.Errorf("after both stopped: %+v, want %d used and nothing held", e, sent)
	}
	// a's next call reserves again: a quarter of what is free at most.
	a.spend(t, v.srv.URL, 1, 1)
	if e, want := storedDay(t, api, "erpsync-system"), httpapi.ReservationSize(1000, 1000-sent); e.Held["a"] != want {
		t.Errorf("a's next call: %+v, want a new block of %d", e, want)
	}
}

// TestUnusedKeyReturnsItsReservation: a credential this replica no longer
// spends (its ErpSyncs moved to another replica) has its reserved calls
// returned once it has been idle for KeepIdle, though the quota has plenty
// left.
func TestUnusedKeyReturnsItsReservation(t *testing.T) {
	ctx := context.Background()
	api := newAPIServer()
	clock := httpapi.NewFakeClock(t0)
	v := newQuotaVendor(t, 1000)
	a := newReplica(t, api, "erpsync-system", "a", clock, 1000, false)
	a.spend(t, v.srv.URL, 1, 1)
	for _, step := range []struct {
		after time.Duration
		held  int64
	}{{5 * time.Second, 19}, {KeepIdle / 2, 19}, {KeepIdle - 10*time.Second, 19}, {KeepIdle + 5*time.Second, 0}} {
		clock.Set(t0.Add(step.after))
		a.store.FlushAll(ctx)
		if e := storedDay(t, api, "erpsync-system"); e.Held["a"] != step.held && !(step.held == 19 && e.Held["a"] == 20) {
			t.Errorf("+%v: stored %+v, want a's reservation of 19 (20 before its call is written) kept, or 0", step.after, e)
		}
		if a.held() != step.held {
			t.Errorf("+%v: a holds %d, want %d", step.after, a.held(), step.held)
		}
	}
	if e := storedDay(t, api, "erpsync-system"); e.Used != 1 || len(e.Held) != 0 {
		t.Errorf("after the return: %+v, want a's call used and nothing held", e)
	}
}

// TestQuietSyncsWriteOnce: a credential with Xero's limits (60 calls a
// minute, 5,000 a day) whose syncs make a few calls every 15 minutes costs
// one API write a sync (its first call's, carrying the last sync's calls)
// and one per reservation of 100 calls, whatever the flushes between; the
// counts written are exact once the manager stops.
func TestQuietSyncsWriteOnce(t *testing.T) {
	ctx := context.Background()
	api := newAPIServer()
	clock := httpapi.NewFakeClock(t0)
	v := newVendor(t, clock)
	s := api.store(clock)
	lim := httpapi.Limit{Key: sharedKey, Windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: 61 * time.Second}},
		Quotas: []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}}
	c, err := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(s), Clock: clock, Limits: []httpapi.Limit{lim}})
	if err != nil {
		t.Fatal(err)
	}
	const syncs, perSync = 30, 6
	for range syncs {
		call(t, c, v.srv.URL, perSync)
		for range 4 { // the flush loop runs on between syncs
			clock.Advance(5 * time.Second)
			s.FlushAll(ctx)
		}
		clock.Advance(15*time.Minute - 20*time.Second)
	}
	// 30 first calls, 2 reservations (180 calls in blocks of 100).
	if w := api.writes.Load(); w != syncs+1 {
		t.Errorf("%d quiet syncs of %d calls cost %d API writes, want %d (one a sync, and one more reservation)", syncs, perSync, w, syncs+1)
	}
	t.Logf("BENCH quota_writes_per_quiet_sync %.2f", float64(api.writes.Load())/syncs)
	s.Close(ctx)
	if e := storedDay(t, api, "erpsync-system"); e.Used != syncs*perSync || len(e.Held) != 0 {
		t.Errorf("stored %+v after the close, want %d used and nothing held", e, syncs*perSync)
	}
}

// TestVendorBlockReachesTheOtherReplicas: when the vendor says a quota is
// used up (its count is the last line of defence), the other replicas hold
// their calls too once they have read the ConfigMap.
func TestVendorBlockReachesTheOtherReplicas(t *testing.T) {
	ctx := context.Background()
	api := newAPIServer()
	clock := httpapi.NewFakeClock(t0)
	v := newQuotaVendor(t, 1000)
	a := newReplica(t, api, "erpsync-system", "a", clock, 1000, false)
	b := newReplica(t, api, "erpsync-system", "b", clock, 1000, false)
	a.spend(t, v.srv.URL, 1, 1)
	b.spend(t, v.srv.URL, 1, 1)
	// The vendor counted calls we did not (another app, say): it refuses.
	v.limit = 0
	_, err := a.client.Get(ctx, "op", v.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted {
		t.Fatalf("a: %v, want QuotaExhausted", err)
	}
	a.store.FlushAll(ctx) // a block is written at once
	// b learns of it at its next write: its next sync's first call,
	// which it does not send.
	clock.Advance(time.Second)
	refused := v.refused.Load()
	_, err = b.client.Get(ctx, "op", v.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted || v.refused.Load() != refused {
		t.Errorf("b: %v after %d more refusals, want QuotaExhausted without a call", err, v.refused.Load()-refused)
	}
}

// TestWritesPerThousandCalls measures the API writes of 1,000 calls of one
// credential with Xero's daily quota: a burst, and at Xero's pace of 60 a
// minute, a write every FlushEvery (5s) carrying the window.
func TestWritesPerThousandCalls(t *testing.T) {
	tests := []struct {
		name      string
		windows   []httpapi.Window
		maxWrites int32
	}{
		// 10 reservations of 100, the close.
		{name: "burst", maxWrites: 11},
		// About 17 bursts of 60 a minute (a flush each, some carrying a
		// reservation), 10 reservations, the close.
		{name: "60 a minute", windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: 61 * time.Second}}, maxWrites: 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newAPIServer()
			clock := httpapi.NewFakeClock(t0)
			v := newVendor(t, clock)
			s := api.store(clock)
			lim := httpapi.Limit{Key: sharedKey, Windows: tc.windows, Quotas: []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}}
			c, _ := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(s), Clock: clock, Limits: []httpapi.Limit{lim}})
			call(t, c, v.srv.URL, 1000)
			s.Close(context.Background())
			w := api.writes.Load()
			t.Logf("BENCH quota_writes_per_1000_calls_%s %d", tc.name, w)
			if w > tc.maxWrites {
				t.Errorf("1,000 calls cost %d API writes, want at most %d", w, tc.maxWrites)
			}
			if e := storedDay(t, api, "erpsync-system"); e.Used != 1000 || len(e.Held) != 0 {
				t.Errorf("stored %+v, want 1000 used and nothing held", e)
			}
		})
	}
}
