package sharding

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SetLabel marks the Leases of one set of shards; its value is the set's
// prefix.
const SetLabel = "erpsync.io/shard-set"

// ShardsAnnotation holds the shard count N of the replica that wrote a
// shard or presence Lease.
const ShardsAnnotation = "erpsync.io/shards"

// Defaults of Config.
const (
	DefaultPrefix        = "erpsync"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// ShardLeaseName is the name of shard i's Lease.
func ShardLeaseName(prefix string, i int) string { return prefix + "-shard-" + strconv.Itoa(i) }

// ReplicaLeaseName is the name of replica k's presence Lease.
func ReplicaLeaseName(prefix string, k int) string { return prefix + "-replica-" + strconv.Itoa(k) }

// Config configures a replica's shards.
type Config struct {
	// Client reads and writes Leases straight to the API server: it must
	// not be a cached client.
	Client client.Client
	// Namespace holds the Leases (the manager's own).
	Namespace string
	// Shards is N, at least 2; Ordinal is this replica's shard, in [0, N).
	Shards, Ordinal int
	// Identity names this process in the Leases it holds; unique per
	// process (a restarted pod must not pass for its previous self).
	Identity string
	// Prefix of the Lease names (default DefaultPrefix).
	Prefix string
	// LeaseDuration, RenewDeadline and RetryPeriod, as in client-go's
	// leader election: LeaseDuration > RenewDeadline > RetryPeriod > 0.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// DrainTimeout bounds how long a shutdown waits for the shards' work to
	// end before it releases their Leases (default LeaseDuration); a Lease
	// whose work has not ended is left to expire.
	DrainTimeout time.Duration
	// ReleaseOnCancel releases the Leases (after their work ended) when
	// Start's context ends; without it they are left to expire, as a
	// killed process leaves them.
	ReleaseOnCancel bool
	Log             logr.Logger
}

// Shards is one replica's view of the shards: which it holds, and the
// loop that renews, takes and hands back their Leases. It is a
// controller-runtime Runnable that runs on every replica.
type Shards struct {
	cfg Config
	log logr.Logger

	mu      sync.Mutex
	shards  []*shardState
	seq     uint64
	changed chan struct{}
	// paused: a live Lease of a smaller N is seen; yielding: one of a
	// larger N.
	paused, yielding bool
	stopped          bool

	// Owned by the loop.
	observed map[string]observation
	presence *coordinationv1.Lease
}

// shardState is one shard as this replica knows it; guarded by mu.
type shardState struct {
	// held: this replica holds the Lease; lease is its version as last
	// written or read.
	held  bool
	lease *coordinationv1.Lease
	// renewedAt is when the last successful take or renewal was sent;
	// stale is set when the renew deadline passed since (the watchdog).
	renewedAt time.Time
	stale     bool
	watchdog  *time.Timer
	gen       uint64
	// work is the current epoch of work on the shard (nil: none may
	// start); users counts the work entered and not yet left, of any
	// epoch.
	work  *epoch
	users int
	// releasing: the Lease is released once users reaches 0.
	releasing bool
	why       string
}

type epoch struct {
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
}

// observation is when this replica first saw a Lease's current version
// ("" for an absent Lease), on its own clock.
type observation struct {
	rv string
	at time.Time
}

// New checks cfg and returns the replica's shards, none held yet.
func New(cfg Config) (*Shards, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline <= 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod <= 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = cfg.LeaseDuration
	}
	switch {
	case cfg.Client == nil:
		return nil, errors.New("sharding: no client")
	case cfg.Namespace == "":
		return nil, errors.New("sharding: no namespace for the shard Leases")
	case cfg.Shards < 2:
		return nil, fmt.Errorf("sharding: %d shards: at least 2 (1 or 0 means no sharding)", cfg.Shards)
	case cfg.Ordinal < 0 || cfg.Ordinal >= cfg.Shards:
		return nil, fmt.Errorf("sharding: ordinal %d outside the %d shards (0..%d): set --shards to the StatefulSet's replica count", cfg.Ordinal, cfg.Shards, cfg.Shards-1)
	case cfg.Identity == "":
		return nil, errors.New("sharding: no identity")
	case cfg.LeaseDuration <= cfg.RenewDeadline:
		return nil, fmt.Errorf("sharding: the lease duration %s must be longer than the renew deadline %s", cfg.LeaseDuration, cfg.RenewDeadline)
	case cfg.RenewDeadline <= cfg.RetryPeriod:
		return nil, fmt.Errorf("sharding: the renew deadline %s must be longer than the retry period %s", cfg.RenewDeadline, cfg.RetryPeriod)
	}
	s := &Shards{cfg: cfg, log: cfg.Log.WithValues("ordinal", cfg.Ordinal, "shards", cfg.Shards), changed: make(chan struct{}, 1),
		observed: map[string]observation{}}
	for range cfg.Shards {
		s.shards = append(s.shards, &shardState{})
	}
	return s, nil
}

// Count is N.
func (s *Shards) Count() int { return s.cfg.Shards }

// Ordinal is this replica's own shard.
func (s *Shards) Ordinal() int { return s.cfg.Ordinal }

// ShardOf returns the shard of an ErpSync.
func (s *Shards) ShardOf(key types.NamespacedName) int {
	return Of(key.Namespace, key.Name, s.cfg.Shards)
}

// Holds reports whether this replica may sync the ErpSyncs of shard now.
func (s *Shards) Holds(shard int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return shard >= 0 && shard < len(s.shards) && s.shards[shard].work != nil
}

// Enter registers work on shard: ctx ends when the shard is lost or handed
// on, and the shard's Lease is not released (on a hand-back or shutdown)
// before leave has been called. false when this replica does not hold the
// shard (nothing to leave).
func (s *Shards) Enter(shard int) (ctx context.Context, leave func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if shard < 0 || shard >= len(s.shards) || s.shards[shard].work == nil {
		return nil, nil, false
	}
	st := s.shards[shard]
	st.users++
	var once sync.Once
	return st.work.ctx, func() {
		once.Do(func() {
			s.mu.Lock()
			st.users--
			s.mu.Unlock()
		})
	}, true
}

// Held returns the shards this replica works on now, each with the number
// of its current epoch (a shard lost and taken again has a new one).
func (s *Shards) Held() map[int]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]uint64{}
	for i, st := range s.shards {
		if st.work != nil {
			out[i] = st.work.id
		}
	}
	return out
}

// Changed receives a value after the held shards changed (coalesced: read
// Held after it).
func (s *Shards) Changed() <-chan struct{} { return s.changed }

// NeedLeaderElection: every replica runs its shards.
func (s *Shards) NeedLeaderElection() bool { return false }

// Start runs the Lease loop until ctx ends, then stops all work on the
// shards and, with ReleaseOnCancel, releases their Leases once it ended.
func (s *Shards) Start(ctx context.Context) error {
	s.log.Info("contending for shard leases", "identity", s.cfg.Identity, "namespace", s.cfg.Namespace, "prefix", s.cfg.Prefix,
		"leaseDuration", s.cfg.LeaseDuration, "renewDeadline", s.cfg.RenewDeadline, "retryPeriod", s.cfg.RetryPeriod)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case <-t.C:
		}
		s.tick(ctx)
		t.Reset(wait.Jitter(s.cfg.RetryPeriod, 0.1))
	}
}

// tick is one round of the loop: renew, show presence, look, decide.
func (s *Shards) tick(ctx context.Context) {
	for i := range s.shards {
		if s.isHeld(i) {
			s.renew(ctx, i)
		}
	}
	s.heartbeat(ctx)
	recs, err := s.look(ctx)
	if err != nil {
		s.log.Info("listing the shard leases failed; holding what is held while it can be renewed", "error", err.Error())
		return
	}
	larger, _ := s.disagreement(recs)
	took := false
	for i := range s.shards {
		took = s.decide(ctx, i, recs, larger) || took
	}
	if took {
		// Take nothing up before a look taken after the take: of two
		// replicas that take Leases at once, the later sees the earlier.
		if recs, err = s.look(ctx); err != nil {
			s.log.Info("listing the shard leases after a take failed; starting no work before the next look", "error", err.Error())
			return
		}
	}
	s.settle(recs)
}

// decide renews nothing: it hands on, releases or takes shard i; true when
// it took it.
func (s *Shards) decide(ctx context.Context, i int, recs map[string]*coordinationv1.Lease, larger bool) bool {
	name := ShardLeaseName(s.cfg.Prefix, i)
	rec := recs[name]
	s.mu.Lock()
	st := s.shards[i]
	held, releasing := st.held, st.releasing
	s.mu.Unlock()
	now := time.Now()
	if held {
		switch {
		case rec != nil && holderOf(rec) != s.cfg.Identity:
			s.lose(i, "another replica holds its lease")
		case releasing:
			if s.drained(i) {
				s.release(ctx, i)
			}
		case larger:
			s.beginRelease(i, "a replica runs with more shards: yielding to it")
		case i != s.cfg.Ordinal && s.present(i, recs, now):
			s.beginRelease(i, "its replica is back: handing it back")
		}
		return false
	}
	if larger {
		return false
	}
	if i != s.cfg.Ordinal && s.present(i, recs, now) {
		return false
	}
	if !s.available(i, rec, now) {
		return false
	}
	return s.acquire(ctx, i, rec)
}

// settle starts or stops the work of the held shards after a look: no
// work while a live Lease of another N is seen.
func (s *Shards) settle(recs map[string]*coordinationv1.Lease) {
	larger, smaller := s.disagreement(recs)
	for i := range s.shards {
		s.mu.Lock()
		st := s.shards[i]
		held, releasing := st.held, st.releasing
		s.mu.Unlock()
		if !held || releasing {
			continue
		}
		if larger {
			s.beginRelease(i, "a replica runs with more shards: yielding to it")
			continue
		}
		s.mu.Lock()
		if smaller || st.stale {
			s.deactivateLocked(i)
		} else {
			s.activateLocked(i)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if smaller != s.paused || larger != s.yielding {
		s.log.Info("replicas disagree on the shard count", "largerSeen", larger, "smallerSeen", smaller,
			"action", map[bool]string{true: "syncing nothing until the replicas with fewer shards are gone", false: "syncing"}[smaller && !larger])
	}
	s.paused, s.yielding = smaller, larger
	s.mu.Unlock()
	s.report()
}

// disagreement reports whether a live shard Lease held by another replica
// was written with a larger, or a smaller, shard count than ours.
func (s *Shards) disagreement(recs map[string]*coordinationv1.Lease) (larger, smaller bool) {
	now := time.Now()
	for name, rec := range recs {
		if !strings.HasPrefix(name, s.cfg.Prefix+"-shard-") || holderOf(rec) == "" || holderOf(rec) == s.cfg.Identity || !s.live(name, rec, now) {
			continue
		}
		n, ok := shardsOf(rec)
		switch {
		case !ok || n == s.cfg.Shards:
		case n > s.cfg.Shards:
			larger = true
		default:
			smaller = true
		}
	}
	return larger, smaller
}

// present reports whether replica k's presence Lease is fresh and written
// with our N. A presence Lease not yet seen counts as fresh for a lease
// duration after this replica first looked (it may be starting).
func (s *Shards) present(k int, recs map[string]*coordinationv1.Lease, now time.Time) bool {
	name := ReplicaLeaseName(s.cfg.Prefix, k)
	rec := recs[name]
	o := s.observed[name]
	if rec == nil {
		return now.Before(o.at.Add(s.cfg.LeaseDuration))
	}
	if n, ok := shardsOf(rec); holderOf(rec) == "" || !ok || n != s.cfg.Shards {
		return false
	}
	return s.live(name, rec, now)
}

// live reports whether rec's current version is younger than its lease
// duration on this replica's clock.
func (s *Shards) live(name string, rec *coordinationv1.Lease, now time.Time) bool {
	return now.Before(s.observed[name].at.Add(leaseDuration(rec, s.cfg.LeaseDuration)))
}

// available reports whether shard i's Lease may be taken now: absent,
// released or expired; for another replica's shard also after this
// replica's turn (its distance after the shard, in retry periods; an
// absent Lease only a lease duration after this replica first looked).
func (s *Shards) available(i int, rec *coordinationv1.Lease, now time.Time) bool {
	var turn time.Duration
	if i != s.cfg.Ordinal {
		turn = time.Duration((s.cfg.Ordinal-i-1+2*s.cfg.Shards)%s.cfg.Shards) * s.cfg.RetryPeriod
	}
	name := ShardLeaseName(s.cfg.Prefix, i)
	o := s.observed[name]
	switch {
	case rec == nil && i == s.cfg.Ordinal:
		return true
	case rec == nil:
		return !now.Before(o.at.Add(s.cfg.LeaseDuration + turn))
	case holderOf(rec) == s.cfg.Identity:
		return true
	case holderOf(rec) == "":
		return !now.Before(o.at.Add(turn))
	default:
		return !now.Before(o.at.Add(leaseDuration(rec, s.cfg.LeaseDuration) + turn))
	}
}

// look lists the set's Leases and records when each version was first
// seen.
func (s *Shards) look(ctx context.Context) (map[string]*coordinationv1.Lease, error) {
	lctx, cancel := context.WithTimeout(ctx, s.cfg.RenewDeadline)
	defer cancel()
	var list coordinationv1.LeaseList
	if err := s.cfg.Client.List(lctx, &list, client.InNamespace(s.cfg.Namespace), client.MatchingLabels{SetLabel: s.cfg.Prefix}); err != nil {
		return nil, fmt.Errorf("listing the shard leases: %w", err)
	}
	now := time.Now()
	recs := make(map[string]*coordinationv1.Lease, len(list.Items))
	for i := range list.Items {
		l := &list.Items[i]
		recs[l.Name] = l
		if o, ok := s.observed[l.Name]; !ok || o.rv != l.ResourceVersion {
			s.observed[l.Name] = observation{rv: l.ResourceVersion, at: now}
		}
	}
	for k := range s.cfg.Shards {
		for _, name := range []string{ShardLeaseName(s.cfg.Prefix, k), ReplicaLeaseName(s.cfg.Prefix, k)} {
			if o, ok := s.observed[name]; recs[name] == nil && (!ok || o.rv != "") {
				s.observed[name] = observation{at: now}
			}
		}
	}
	return recs, nil
}

// stamp writes this replica's claim into a Lease: holder, times, N.
func (s *Shards) stamp(l *coordinationv1.Lease, now time.Time) {
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	l.Labels[SetLabel] = s.cfg.Prefix
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[ShardsAnnotation] = strconv.Itoa(s.cfg.Shards)
	t := metav1.NewMicroTime(now)
	if holderOf(l) != s.cfg.Identity {
		l.Spec.HolderIdentity = ptr.To(s.cfg.Identity)
		l.Spec.AcquireTime = &t
		if l.ResourceVersion != "" {
			l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
		}
	}
	l.Spec.RenewTime = &t
	l.Spec.LeaseDurationSeconds = ptr.To(int32(max(1, (s.cfg.LeaseDuration+time.Second-1)/time.Second))) //nolint:gosec // G115: a few seconds
}

// acquire takes shard i's Lease from the version rec (nil: create it).
func (s *Shards) acquire(ctx context.Context, i int, rec *coordinationv1.Lease) bool {
	var l *coordinationv1.Lease
	if rec == nil {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: ShardLeaseName(s.cfg.Prefix, i), Namespace: s.cfg.Namespace}}
	} else {
		l = rec.DeepCopy()
	}
	start := time.Now()
	s.stamp(l, start)
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RenewDeadline)
	defer cancel()
	var err error
	if rec == nil {
		err = s.cfg.Client.Create(rctx, l)
	} else {
		err = s.cfg.Client.Update(rctx, l)
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			s.log.V(1).Info("another replica took the shard first", "shard", i)
		} else {
			s.log.Info("taking a shard lease failed", "shard", i, "error", err.Error())
		}
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.shards[i]
	st.held, st.lease = true, l
	s.renewedLocked(i, start)
	s.log.Info("took a shard", "shard", i, "own", i == s.cfg.Ordinal, "previousHolder", holderOf(rec))
	return true
}

// renew renews shard i's Lease.
func (s *Shards) renew(ctx context.Context, i int) {
	s.mu.Lock()
	st := s.shards[i]
	if !st.held || st.lease == nil {
		s.mu.Unlock()
		return
	}
	l := st.lease.DeepCopy()
	s.mu.Unlock()
	start := time.Now()
	s.stamp(l, start)
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RenewDeadline)
	defer cancel()
	err := s.cfg.Client.Update(rctx, l)
	if err == nil {
		s.mu.Lock()
		if st.held {
			st.lease = l
			s.renewedLocked(i, start)
		}
		s.mu.Unlock()
		return
	}
	switch {
	case apierrors.IsNotFound(err):
		s.lose(i, "its lease was deleted")
	case apierrors.IsConflict(err):
		// Someone wrote it: ourselves (an update whose answer was lost)
		// or a replica that took it.
		var cur coordinationv1.Lease
		if gerr := s.cfg.Client.Get(rctx, client.ObjectKeyFromObject(l), &cur); gerr != nil {
			s.log.Info("reading a shard lease after a conflict failed", "shard", i, "error", gerr.Error())
			return
		}
		if holderOf(&cur) != s.cfg.Identity {
			s.lose(i, "another replica took its lease")
			return
		}
		s.mu.Lock()
		if st.held {
			st.lease = &cur
		}
		s.mu.Unlock()
	default:
		s.log.Info("renewing a shard lease failed", "shard", i, "error", err.Error())
	}
}

// renewedLocked records a take or renewal sent at start and arms the
// watchdog: at start + RenewDeadline without another, the shard's work
// stops, whatever the loop is doing.
func (s *Shards) renewedLocked(i int, start time.Time) {
	st := s.shards[i]
	st.renewedAt, st.stale = start, false
	st.gen++
	gen := st.gen
	if st.watchdog != nil {
		st.watchdog.Stop()
	}
	st.watchdog = time.AfterFunc(time.Until(start.Add(s.cfg.RenewDeadline)), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if st.gen != gen || !st.held || s.stopped {
			return
		}
		st.stale = true
		if st.work != nil {
			s.log.Info("could not renew a shard's lease within the renew deadline: stopping its syncs", "shard", i, "renewDeadline", s.cfg.RenewDeadline)
		}
		s.deactivateLocked(i)
	})
}

// lose forgets shard i, whose Lease is no longer ours, and stops its work.
func (s *Shards) lose(i int, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.shards[i]
	if !st.held {
		return
	}
	s.log.Info("lost a shard: stopping its syncs", "shard", i, "reason", why)
	st.held, st.lease, st.releasing = false, nil, false
	if st.watchdog != nil {
		st.watchdog.Stop()
	}
	s.deactivateLocked(i)
}

// beginRelease stops shard i's work; the Lease, still renewed, is released
// once the work has ended.
func (s *Shards) beginRelease(i int, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.shards[i]
	if !st.held || st.releasing {
		return
	}
	s.log.Info("releasing a shard once its syncs have stopped", "shard", i, "reason", why)
	st.releasing, st.why = true, why
	s.deactivateLocked(i)
}

// drained reports whether shard i has no work left.
func (s *Shards) drained(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shards[i].work == nil && s.shards[i].users == 0
}

// release gives shard i's Lease up: holder cleared, as client-go's leader
// election releases, so that the next owner takes it without waiting.
func (s *Shards) release(ctx context.Context, i int) {
	s.mu.Lock()
	st := s.shards[i]
	if !st.held || st.lease == nil {
		s.mu.Unlock()
		return
	}
	l := st.lease.DeepCopy()
	s.mu.Unlock()
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity = ptr.To("")
	l.Spec.LeaseDurationSeconds = ptr.To[int32](1)
	l.Spec.RenewTime, l.Spec.AcquireTime = &now, &now
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RenewDeadline)
	defer cancel()
	err := s.cfg.Client.Update(rctx, l)
	if err != nil && !apierrors.IsNotFound(err) {
		// Renewed meanwhile (by this loop) or taken: try again next round
		// if it is still ours.
		s.log.Info("releasing a shard lease failed", "shard", i, "error", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.held, st.lease, st.releasing = false, nil, false
	if st.watchdog != nil {
		st.watchdog.Stop()
	}
	s.log.Info("released a shard", "shard", i, "reason", st.why)
}

// heartbeat renews this replica's presence Lease.
func (s *Shards) heartbeat(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RenewDeadline)
	defer cancel()
	name := ReplicaLeaseName(s.cfg.Prefix, s.cfg.Ordinal)
	if s.presence == nil {
		var cur coordinationv1.Lease
		err := s.cfg.Client.Get(rctx, types.NamespacedName{Namespace: s.cfg.Namespace, Name: name}, &cur)
		switch {
		case apierrors.IsNotFound(err):
			l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.cfg.Namespace}}
			s.stamp(l, time.Now())
			if err := s.cfg.Client.Create(rctx, l); err != nil {
				s.log.Info("creating the presence lease failed", "error", err.Error())
				return
			}
			s.presence = l
			return
		case err != nil:
			s.log.Info("reading the presence lease failed", "error", err.Error())
			return
		}
		s.presence = &cur
	}
	l := s.presence.DeepCopy()
	s.stamp(l, time.Now())
	if err := s.cfg.Client.Update(rctx, l); err != nil {
		s.presence = nil
		s.log.V(1).Info("renewing the presence lease failed", "error", err.Error())
		return
	}
	s.presence = l
}

// activateLocked opens a new epoch of work on shard i.
func (s *Shards) activateLocked(i int) {
	st := s.shards[i]
	if st.work != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.seq++
	st.work = &epoch{id: s.seq, ctx: ctx, cancel: cancel}
	s.log.Info("syncing a shard", "shard", i, "own", i == s.cfg.Ordinal)
	s.notifyLocked()
}

// deactivateLocked ends shard i's epoch: its work's contexts end now.
func (s *Shards) deactivateLocked(i int) {
	st := s.shards[i]
	if st.work == nil {
		return
	}
	st.work.cancel()
	st.work = nil
	s.notifyLocked()
}

func (s *Shards) notifyLocked() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Shards) isHeld(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shards[i].held
}

// shutdown stops all work; with ReleaseOnCancel it keeps renewing the
// Leases until their work has ended (at most DrainTimeout), then releases
// them and the presence Lease.
func (s *Shards) shutdown() {
	s.mu.Lock()
	for i := range s.shards {
		s.deactivateLocked(i)
	}
	if !s.cfg.ReleaseOnCancel {
		s.stopped = true
		for _, st := range s.shards {
			if st.watchdog != nil {
				st.watchdog.Stop()
			}
		}
		s.mu.Unlock()
		s.report()
		return
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout+s.cfg.RenewDeadline)
	defer cancel()
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	lastRenew := time.Now()
	for {
		done := true
		for i := range s.shards {
			if s.isHeld(i) && !s.drained(i) {
				done = false
			}
		}
		if done || !time.Now().Before(deadline) {
			break
		}
		if time.Since(lastRenew) >= s.cfg.RetryPeriod {
			for i := range s.shards {
				if s.isHeld(i) {
					s.renew(ctx, i)
				}
			}
			lastRenew = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range s.shards {
		if !s.isHeld(i) {
			continue
		}
		if !s.drained(i) {
			s.log.Error(nil, "a shard's syncs did not stop within the drain timeout: leaving its lease to expire", "shard", i, "drainTimeout", s.cfg.DrainTimeout)
			continue
		}
		s.mu.Lock()
		s.shards[i].why = "shutting down"
		s.mu.Unlock()
		s.release(ctx, i)
	}
	if s.presence != nil {
		l := s.presence.DeepCopy()
		l.Spec.HolderIdentity = ptr.To("")
		if err := s.cfg.Client.Update(ctx, l); err != nil {
			s.log.Info("releasing the presence lease failed", "error", err.Error())
		}
	}
	s.mu.Lock()
	s.stopped = true
	for _, st := range s.shards {
		if st.watchdog != nil {
			st.watchdog.Stop()
		}
	}
	s.mu.Unlock()
	s.report()
}

// report sets the metrics.
func (s *Shards) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	own, foster := 0, 0
	for i, st := range s.shards {
		switch {
		case st.work == nil:
		case i == s.cfg.Ordinal:
			own++
		default:
			foster++
		}
	}
	shardsHeld.WithLabelValues("own").Set(float64(own))
	shardsHeld.WithLabelValues("foster").Set(float64(foster))
	v := 0.0
	if s.paused || s.yielding {
		v = 1
	}
	shardCountConflict.Set(v)
}

func holderOf(l *coordinationv1.Lease) string {
	if l == nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// shardsOf returns the N a Lease was written with.
func shardsOf(l *coordinationv1.Lease) (int, bool) {
	n, err := strconv.Atoi(l.Annotations[ShardsAnnotation])
	return n, err == nil && n > 0
}

// leaseDuration is rec's lease duration, or def when it has none.
func leaseDuration(rec *coordinationv1.Lease, def time.Duration) time.Duration {
	if d := ptr.Deref(rec.Spec.LeaseDurationSeconds, 0); d > 0 {
		return time.Duration(d) * time.Second
	}
	return def
}
