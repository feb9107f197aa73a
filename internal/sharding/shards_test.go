package sharding

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The lease timing of these tests: short, in the ratios of the defaults.
const (
	testLease = 3 * time.Second
	testRenew = 2 * time.Second
	testRetry = 250 * time.Millisecond
)

var k8s client.Client

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// The hash tests need no API server.
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: the lease tests need kube-apiserver and etcd (make test sets it)")
		return 1
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// cluster is one test's namespace, its replicas (each an in-process
// Shards with a worker that works on every shard it holds), and the record
// of every interval of work.
type cluster struct {
	t  *testing.T
	ns string

	mu        sync.Mutex
	intervals []interval
	replicas  []*replica
	seq       int
}

// interval is one replica process working on one shard (under its N).
type interval struct {
	proc       string
	n, shard   int
	start, end time.Time
}

type replica struct {
	name    string
	ordinal int
	s       *Shards
	cancel  context.CancelFunc
	done    chan struct{}
	// down fails every API request of this replica (a partition).
	down *atomic.Bool
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sharding-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, ns: ns.Name}
	t.Cleanup(func() {
		for _, r := range c.all() {
			r.kill()
		}
		c.checkNoOverlap()
	})
	return c
}

// start runs replica ordinal with n shards; release says whether it
// releases its Leases when stopped; drain is how long its work takes to
// end once its shard is lost or handed on.
func (c *cluster) start(ordinal, n int, release bool, drain time.Duration) *replica {
	c.t.Helper()
	c.mu.Lock()
	c.seq++
	name := fmt.Sprintf("replica-%d/%d#%d", ordinal, n, c.seq)
	c.mu.Unlock()
	down := &atomic.Bool{}
	s, err := New(Config{
		Client: partitionable{Client: k8s, down: down}, Namespace: c.ns, Shards: n, Ordinal: ordinal, Identity: name,
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry, ReleaseOnCancel: release,
		Log: quiet(c.t),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, ordinal: ordinal, s: s, cancel: cancel, done: make(chan struct{}), down: down}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = s.Start(ctx)
	}()
	go func() {
		defer wg.Done()
		c.work(ctx, r, drain)
	}()
	go func() {
		wg.Wait()
		close(r.done)
	}()
	c.mu.Lock()
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	return r
}

// work is a replica's worker: on every shard it may work on, it enters,
// works until the shard's context ends, takes drain to stop, and leaves,
// recording the interval from entering to leaving.
func (c *cluster) work(ctx context.Context, r *replica, drain time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := map[int]*atomic.Bool{}
	for i := range r.s.Count() {
		busy[i] = &atomic.Bool{}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.s.Changed():
		}
		for i := range r.s.Count() {
			if busy[i].Load() {
				continue
			}
			wctx, leave, ok := r.s.Enter(i)
			if !ok {
				continue
			}
			busy[i].Store(true)
			start := time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-wctx.Done()
				time.Sleep(drain)
				end := time.Now()
				leave()
				c.mu.Lock()
				c.intervals = append(c.intervals, interval{proc: r.name, n: r.s.Count(), shard: i, start: start, end: end})
				c.mu.Unlock()
				busy[i].Store(false)
			}()
		}
	}
}

// kill stops a replica the way SIGKILL would, as far as the Leases go
// (with release false, nothing is released); its work ends with it.
func (r *replica) kill() {
	r.cancel()
	<-r.done
}

func (c *cluster) all() []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*replica(nil), c.replicas...)
}

// holders returns the replicas working on shard i now (of those with n
// shards).
func (c *cluster) holders(n, i int) []string {
	var out []string
	for _, r := range c.all() {
		if r.s.Count() == n && r.s.Holds(i) {
			out = append(out, r.name)
		}
	}
	return out
}

// waitHolder waits until exactly want works on shard i, and returns how
// long that took.
func (c *cluster) waitHolder(n, i int, want *replica, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if h := c.holders(n, i); len(h) == 1 && h[0] == want.name {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("shard %d/%d: %v work on it after %s, want %s alone", i, n, c.holders(n, i), within, want.name)
	return 0
}

// waitHolderAmong waits until one of wants alone works on shard i of n.
func (c *cluster) waitHolderAmong(n, i int, wants []*replica, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if h := c.holders(n, i); len(h) == 1 {
			for _, w := range wants {
				if h[0] == w.name {
					return time.Since(start)
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("shard %d/%d: %v work on it after %s, want one of the live replicas alone", i, n, c.holders(n, i), within)
	return 0
}

// checkNoOverlap checks that no ErpSync was worked on by two replica
// processes at once: for each of 1,000 keys, the intervals of the shards
// it belonged to (under each replica's N) never overlap between processes.
// Work still running is closed now.
func (c *cluster) checkNoOverlap() {
	c.t.Helper()
	c.mu.Lock()
	ivs := append([]interval(nil), c.intervals...)
	c.mu.Unlock()
	byKey := map[int][]interval{}
	for k := range 1000 {
		key := fmt.Sprintf("company-%d", k)
		for _, iv := range ivs {
			if Of("tenant", key, iv.n) == iv.shard {
				byKey[k] = append(byKey[k], iv)
			}
		}
	}
	for k, list := range byKey {
		sort.Slice(list, func(a, b int) bool { return list[a].start.Before(list[b].start) })
		for a := range list {
			for b := a + 1; b < len(list) && list[b].start.Before(list[a].end); b++ {
				if list[a].proc != list[b].proc {
					c.t.Errorf("company-%d worked on by two replicas at once: %s shard %d/%d [%s, %s] and %s shard %d/%d [%s, %s]", k,
						list[a].proc, list[a].shard, list[a].n, list[a].start.Format("15:04:05.000"), list[a].end.Format("15:04:05.000"),
						list[b].proc, list[b].shard, list[b].n, list[b].start.Format("15:04:05.000"), list[b].end.Format("15:04:05.000"))
					return
				}
			}
		}
	}
	c.t.Logf("%d intervals of work, none overlapping between replicas", len(ivs))
}

// partitionable fails every request while down is set.
type partitionable struct {
	client.Client
	down *atomic.Bool
}

var errPartitioned = errors.New("test partition: the API server is unreachable")

func (p partitionable) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if p.down.Load() {
		return errPartitioned
	}
	return p.Client.Get(ctx, key, obj, opts...)
}

func (p partitionable) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if p.down.Load() {
		return errPartitioned
	}
	return p.Client.List(ctx, list, opts...)
}

func (p partitionable) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if p.down.Load() {
		return errPartitioned
	}
	return p.Client.Create(ctx, obj, opts...)
}

func (p partitionable) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if p.down.Load() {
		return errPartitioned
	}
	return p.Client.Update(ctx, obj, opts...)
}

func quiet(t *testing.T) logr.Logger {
	if os.Getenv("TEST_VERBOSE") != "" {
		return testr.New(t)
	}
	return logr.Discard()
}

func TestEachReplicaTakesItsOwnShard(t *testing.T) {
	c := newCluster(t)
	var rs []*replica
	for k := range 3 {
		rs = append(rs, c.start(k, 3, true, 0))
	}
	for k, r := range rs {
		d := c.waitHolder(3, k, r, 10*time.Second)
		t.Logf("replica %d works on its shard after %s", k, d)
	}
	// Steady: nobody takes another's shard.
	time.Sleep(2 * testLease)
	for k, r := range rs {
		if h := c.holders(3, k); len(h) != 1 || h[0] != r.name {
			t.Errorf("shard %d held by %v, want %s", k, h, r.name)
		}
		if held := r.s.Held(); len(held) != 1 {
			t.Errorf("replica %d works on shards %v, want only its own", k, held)
		}
	}
}

func TestAKilledReplicasShardIsTakenOverAndHandedBack(t *testing.T) {
	c := newCluster(t)
	var rs []*replica
	for k := range 3 {
		// The work of a lost or handed-back shard takes 300ms to stop.
		// Replica 1 will be killed: it releases nothing.
		rs = append(rs, c.start(k, 3, k != 1, 300*time.Millisecond))
	}
	for k, r := range rs {
		c.waitHolder(3, k, r, 10*time.Second)
	}

	// Replica 1 dies without releasing anything; its successor, replica 2,
	// takes shard 1 once the lease has expired.
	rs[1].kill()
	d := c.waitHolder(3, 1, rs[2], 3*testLease)
	t.Logf("shard 1 taken over by replica 2 %s after the kill (lease duration %s)", d, testLease)
	if d > testLease+3*testRetry {
		t.Errorf("shard 1 taken over %s after the kill: more than a lease duration (%s) and a retry or two", d, testLease)
	}
	if d < testLease-testRetry-50*time.Millisecond {
		t.Errorf("shard 1 taken over %s after the kill: before its lease (renewed at most a retry period before the kill) could expire", d)
	}
	if h := c.holders(3, 2); len(h) != 1 || h[0] != rs[2].name {
		t.Errorf("replica 2 no longer works on its own shard: %v", h)
	}

	// Replica 1 comes back (a new process): replica 2 hands shard 1 back
	// after its work there stopped, and replica 1 takes it at once.
	back := c.start(1, 3, true, 300*time.Millisecond)
	d = c.waitHolder(3, 1, back, 3*testLease)
	t.Logf("shard 1 back on replica 1 %s after it started", d)
	if d > testLease {
		t.Errorf("the hand-back took %s, more than a lease duration: not released but left to expire?", d)
	}
	for k, r := range []*replica{rs[0], back, rs[2]} {
		c.waitHolder(3, k, r, 5*time.Second)
	}
}

func TestAPartitionedHolderStopsBeforeAnotherTakesOver(t *testing.T) {
	c := newCluster(t)
	var rs []*replica
	for k := range 3 {
		rs = append(rs, c.start(k, 3, true, 0))
	}
	for k, r := range rs {
		c.waitHolder(3, k, r, 10*time.Second)
	}
	// Replica 0 stays up but loses the API server: it must stop working
	// on its shard within the renew deadline, before the lease expires
	// for replica 1 (its successor), which then takes it.
	rs[0].down.Store(true)
	cut := time.Now()
	for rs[0].s.Holds(0) {
		if time.Since(cut) > testRenew+testRetry {
			t.Fatalf("the partitioned replica still works on its shard %s after the cut", time.Since(cut))
		}
		time.Sleep(2 * time.Millisecond)
	}
	stoppedAfter := time.Since(cut)
	// Its successor (replica 1) goes first, but the others follow a retry
	// period later: on a loaded machine any live replica may win.
	d := c.waitHolderAmong(3, 0, []*replica{rs[1], rs[2]}, 3*testLease)
	t.Logf("partitioned holder stopped %s after the cut; another replica took its shard %s after the cut", stoppedAfter, stoppedAfter+d)

	// The partition heals: replica 0 shows presence again and gets its
	// shard back.
	rs[0].down.Store(false)
	c.waitHolder(3, 0, rs[0], 3*testLease)
	c.waitHolder(3, 1, rs[1], time.Second)
}

func TestAGracefulShutdownHandsTheShardOnAtOnce(t *testing.T) {
	c := newCluster(t)
	var rs []*replica
	for k := range 3 {
		rs = append(rs, c.start(k, 3, true, 200*time.Millisecond))
	}
	for k, r := range rs {
		c.waitHolder(3, k, r, 10*time.Second)
	}
	stop := time.Now()
	rs[2].kill() // ReleaseOnCancel: drains, then releases shard and presence
	took := time.Since(stop)
	d := c.waitHolder(3, 2, rs[0], 2*testLease)
	t.Logf("replica 2 stopped in %s; replica 0 (its successor) took shard 2 %s later", took, d)
	if d >= testLease {
		t.Errorf("shard 2 taken %s after a graceful shutdown: its lease was left to expire instead of released", d)
	}
}

// TestAChangeOfShardCountNeverSyncsTwice rolls three replicas of 3 shards
// over to four replicas of 4, as a StatefulSet does (the new pod 3 first,
// then pods 2, 1, 0): the replicas on the larger count take over, and no
// key is ever worked on by two replicas (checked at cleanup).
func TestAChangeOfShardCountNeverSyncsTwice(t *testing.T) {
	c := newCluster(t)
	old := map[int]*replica{}
	for k := range 3 {
		old[k] = c.start(k, 3, true, 100*time.Millisecond)
	}
	for k := range 3 {
		c.waitHolder(3, k, old[k], 10*time.Second)
	}
	pod3 := c.start(3, 4, true, 100*time.Millisecond)
	// The old replicas yield to the larger count; pod 3 works on every
	// shard of 4 once their leases are released and their presence (of 3
	// shards) does not count.
	for k := range 4 {
		c.waitHolder(4, k, pod3, 4*testLease)
	}
	for k := range 3 {
		if old[k].s.Holds(k) {
			t.Errorf("old replica %d still works on shard %d of 3", k, k)
		}
	}
	// The rollout replaces pods 2, 1 and 0; each new pod gets its shard
	// back from pod 3.
	cur := map[int]*replica{3: pod3}
	for _, k := range []int{2, 1, 0} {
		old[k].kill()
		cur[k] = c.start(k, 4, true, 100*time.Millisecond)
		c.waitHolder(4, k, cur[k], 4*testLease)
	}
	for k := range 4 {
		c.waitHolder(4, k, cur[k], 2*testLease)
	}
}

func TestConfigIsChecked(t *testing.T) {
	base := Config{Client: k8s, Namespace: "ns", Shards: 3, Ordinal: 0, Identity: "me"}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"one shard", func(c *Config) { c.Shards = 1 }},
		{"ordinal past the shards", func(c *Config) { c.Ordinal = 3 }},
		{"negative ordinal", func(c *Config) { c.Ordinal = -1 }},
		{"no namespace", func(c *Config) { c.Namespace = "" }},
		{"no identity", func(c *Config) { c.Identity = "" }},
		{"renew deadline not below the lease", func(c *Config) { c.LeaseDuration, c.RenewDeadline = 10*time.Second, 10*time.Second }},
		{"retry not below the renew deadline", func(c *Config) { c.RenewDeadline, c.RetryPeriod = 2*time.Second, 2*time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			if _, err := New(cfg); err == nil {
				t.Errorf("New accepted %+v", cfg)
			}
		})
	}
	if _, err := New(base); err != nil {
		t.Errorf("New refused a valid config: %v", err)
	}
}
