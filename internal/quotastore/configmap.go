// Package quotastore keeps the vendors' daily and monthly call counters, and
// the recent calls of their rate windows, in Kubernetes, so that they
// survive a restart and a leader change: one small ConfigMap per metered
// credential, in the operator's namespace.
package quotastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// dataKey is the ConfigMap key holding the counters as JSON.
const dataKey = "usage.json"

// The ConfigMap keys that say whether its writer stopped cleanly.
const (
	// stateKey is stateClosed after the final flush of a store that
	// stopped, stateOpen while it runs (or after it crashed).
	stateKey    = "state"
	stateOpen   = "open"
	stateClosed = "closed"
	// writtenKey is the time of the write (RFC 3339) and flushKey the
	// writer's FlushEvery: after a crash, calls made up to writtenAt +
	// FlushEvery may be missing from the counts.
	writtenKey = "writtenAt"
	flushKey   = "flushEvery"
)

// KeepIdle is how long a process keeps the reserved calls of a credential
// it does not spend: longer than the interval of routine syncs (15m by
// default), so that they reserve once for many syncs; short enough that a
// credential whose ErpSyncs moved to another replica, or were deleted,
// does not hold calls the others need until its quota's period ends.
const KeepIdle = time.Hour

// LabelKey marks the ConfigMaps this store owns.
const LabelKey = "erpsync.io/quota"

// maxWriteAttempts bounds the attempts of one write that keeps meeting
// another replica's write (a conflict on the resourceVersion).
const maxWriteAttempts = 20

// ConfigMapStore is an httpapi.QuotaReserver on ConfigMaps, one per key,
// shared by every replica of the manager that spends the key's credential.
//
// Quota counters are merged, never overwritten: a write adds the calls this
// process spent since its last write to the stored count and sets this
// process's own reservation, under optimistic concurrency (the write names
// the resourceVersion it read; on a conflict it reads again and reapplies).
// A process sends a call of an enforced quota only out of calls it
// reserved before (httpapi.ReservationSize at a time, one write per
// reservation): so replicas together never pass a quota's limit, whatever
// the interleaving. A process keeps its reserved calls between its syncs
// while at least a quarter of the quota is claimed by no one, and returns
// them at the first flush after the key went idle once it has read that
// the quota runs low, and when the store closes; those of a process that
// crashed (one block at most) count as spent until the quota's period
// ends. Each write also refreshes this process's view of the others'
// spending and of vendor blocks.
//
// Rate windows stay per process: each writes its own recent calls (the
// last writer's are what a restarted process loads). Saves are coalesced:
// a save writes only when the key's last write is FlushEvery old, and the
// calls after it are covered by it (see below) until the manager stops and
// writes them. So a sync of a few calls costs one write (its first call's,
// which also carries the previous sync's spent calls), a busy credential
// one every FlushEvery, and a quota one per reservation, rather than one
// per call. The flush loop writes only vendor blocks, failed writes and
// returned reservations.
//
// The final write of a stopping store marks each ConfigMap closed, and a
// restarted manager then resumes the windows exactly. A ConfigMap left open
// (its writer crashed, or another replica is using the credential) may miss
// the calls of the last FlushEvery, so its windows are loaded as spent until
// one window after the last write plus FlushEvery: a crash costs a wait,
// never a burst past the vendor's limit.
type ConfigMapStore struct {
	// Reader reads straight from the API server (ConfigMaps are not cached).
	Reader client.Reader
	// Writer creates and updates the ConfigMaps.
	Writer client.Client
	// Namespace holds the ConfigMaps (the operator's namespace).
	Namespace string
	// FlushEvery bounds how often one key is written; default 5s.
	FlushEvery time.Duration
	// Now is the clock of writes and of the limiters' send times; nil
	// means time.Now.
	Now func() time.Time
	// CollectEvery is how often Start deletes the ConfigMaps of
	// credentials no longer used (see Collect); default 1h, negative
	// never.
	CollectEvery time.Duration
	// ID names this process in the reservations of the ConfigMaps. Every
	// process needs its own: the default is the host name (the pod's)
	// and a random suffix, so that a restarted process never takes a
	// crashed one's reservations for its own.
	ID string

	idOnce sync.Once
	id     string

	mu        sync.Mutex
	pending   map[string]map[string]httpapi.QuotaUsage
	lastFlush map[string]time.Time
	// open holds the keys this store has written since it started and not
	// yet closed: the final flush closes them.
	open map[string]bool
	// keys holds the quota reservations and counts of this process.
	keys map[string]*keyState
	// urgent holds the keys whose pending counters carry a vendor block
	// in force: the next flush writes them.
	urgent map[string]bool
}

var _ httpapi.QuotaReserver = (*ConfigMapStore)(nil)

// The counters live in the operator's own namespace: a namespaced Role.
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;list;create;update;delete

// Load returns the counters saved for key: for a quota, the calls this
// process may not send (every process's spent calls and the others'
// reservations); for a window, this process's pending calls if it has
// any, else the last writer's.
func (s *ConfigMapStore) Load(ctx context.Context, key string) (map[string]httpapi.QuotaUsage, error) {
	var cm corev1.ConfigMap
	err := s.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: Name(key)}, &cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading quota counters %s: %w", Name(key), err)
	}
	entries, err := decode(cm.Data[dataKey])
	if err != nil {
		// A damaged counter must not stop syncs: start counting afresh
		// and let the vendor's own limit answers guard the quota. The
		// windows' calls are unknown, so they are taken as spent.
		log.FromContext(ctx).Error(err, "quota counters unreadable; counting afresh, the rate windows taken as spent", "configmap", cm.Name)
		return map[string]httpapi.QuotaUsage{httpapi.EveryWindow: {Used: math.MaxInt32, Last: s.now()}}, nil
	}
	me := s.holderID()
	out := make(map[string]httpapi.QuotaUsage, len(entries))
	s.mu.Lock()
	ks := s.keys[key]
	for name, e := range entries {
		u := e.QuotaUsage
		if !strings.HasPrefix(name, httpapi.WindowUsagePrefix) {
			var q *quotaState
			if ks != nil {
				q = ks.quotas[name]
			}
			if q != nil && q.period.Equal(e.PeriodStart) {
				q.used, q.others = e.Used, e.others(me)
				if e.BlockedUntil.After(q.blocked) {
					q.blocked = e.BlockedUntil
				}
				u.Used = q.view(name, 0).Used
			} else {
				// This process holds nothing of it: every reservation
				// is someone else's (or a lost write's of ours).
				u.Used = e.Used + e.heldAll()
			}
		}
		out[name] = u
	}
	for name, u := range s.pending[key] {
		if strings.HasPrefix(name, httpapi.WindowUsagePrefix) {
			out[name] = u
		}
	}
	ours := s.open[key]
	s.mu.Unlock()
	// A key this store wrote last, with nothing pending, is current.
	if until, open := s.openUntil(cm.Data); open && !ours {
		// The writer did not stop cleanly: calls up to until may be
		// missing, so every window is spent then.
		out[httpapi.EveryWindow] = httpapi.QuotaUsage{Used: math.MaxInt32, Last: until}
	}
	return out, nil
}

// decode parses usage.json ("" is empty).
func decode(raw string) (map[string]entry, error) {
	out := map[string]entry{}
	if raw == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("parsing quota counters: %w", err)
	}
	return out, nil
}

// openUntil reports whether a ConfigMap was left open by its writer, and
// until when its counts may miss calls.
func (s *ConfigMapStore) openUntil(data map[string]string) (time.Time, bool) {
	if data[stateKey] != stateOpen {
		// Closed, or written before the state was kept (such writers kept
		// no windows).
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, data[writtenKey])
	if err != nil {
		// Unknown write time: the windows are spent from now.
		return s.now(), true
	}
	every, err := time.ParseDuration(data[flushKey])
	if err != nil || every < 0 {
		every = 0
	}
	return at.Add(every), true
}

// Save records the rate windows and vendor blocks of key, writing them now
// if the key was not written within FlushEvery, and otherwise at the next
// flush. The quota counts in usage are the limiter's view: the calls it
// spent reach the store through Spend.
func (s *ConfigMapStore) Save(ctx context.Context, key string, usage map[string]httpapi.QuotaUsage) error {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]map[string]httpapi.QuotaUsage{}
	}
	s.pending[key] = clone(usage)
	now := s.now()
	for n, u := range usage {
		if !strings.HasPrefix(n, httpapi.WindowUsagePrefix) && u.BlockedUntil.After(now) {
			// A vendor's block: the other replicas learn of it from
			// the ConfigMap, so the next flush writes it.
			if s.urgent == nil {
				s.urgent = map[string]bool{}
			}
			s.urgent[key] = true
		}
	}
	due := now.Sub(s.lastFlush[key]) >= s.flushEvery()
	s.mu.Unlock()
	if !due {
		return nil
	}
	_, err := s.write(ctx, key, nil, writeSave)
	return err
}

// Reserve implements httpapi.QuotaReserver: one write of the key, carrying
// what is pending besides.
func (s *ConfigMapStore) Reserve(ctx context.Context, key string, claims []httpapi.QuotaClaim) ([]httpapi.QuotaView, error) {
	return s.write(ctx, key, claims, writeReserve)
}

// Start flushes pending counters every FlushEvery until ctx ends, then once
// more. It makes the store a manager Runnable.
func (s *ConfigMapStore) Start(ctx context.Context) error {
	t := time.NewTicker(s.flushEvery())
	defer t.Stop()
	var collect <-chan time.Time
	if s.CollectEvery >= 0 {
		every := s.CollectEvery
		if every == 0 {
			every = time.Hour
		}
		ct := time.NewTicker(every)
		defer ct.Stop()
		collect = ct.C
	}
	for {
		select {
		case <-collect:
			if n, err := s.Collect(ctx); err != nil {
				log.FromContext(ctx).Error(err, "deleting unused quota counters", "deleted", n)
			}
		case <-t.C:
			s.FlushAll(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Close(fctx)
			return nil
		}
	}
}

// Close writes every pending key, returns every reserved call not spent,
// and marks every key this store wrote closed, so that a restarted manager
// resumes their windows exactly. Start calls it when the manager stops; the
// store may be used again after it (the next write reopens the key, the
// next call reserves again).
func (s *ConfigMapStore) Close(ctx context.Context) {
	for _, k := range s.openKeys() {
		if _, err := s.write(ctx, k, nil, writeFinal); err != nil {
			log.FromContext(ctx).Error(err, "saving quota counters", "configmap", Name(k))
		}
	}
}

// NeedLeaderElection is false: every replica counts the calls it makes.
func (s *ConfigMapStore) NeedLeaderElection() bool { return false }

// FlushAll writes what cannot wait for a key's next write: a vendor block
// the other replicas must learn of, a write that failed, and the reserved
// calls of a key idle since the previous FlushAll whose quota runs low,
// which it returns. Windows pending are not written: the last write covers
// them (see Load), and Close writes them when the manager stops. So a
// quiet credential costs no write between its syncs, and a sync one write
// (its first call's Save) besides its reservations.
func (s *ConfigMapStore) FlushAll(ctx context.Context) {
	s.mu.Lock()
	now := s.now()
	var keys []string
	for k, ks := range s.keys {
		if ks.active || ks.lastActive.IsZero() {
			ks.lastActive = now
		}
		idle, unused := !ks.active, now.Sub(ks.lastActive) >= KeepIdle
		ks.active = false
		release := func(q *quotaState) bool { return idle && (unused || !q.keep()) }
		if s.needsFlushLocked(k, ks, release) {
			keys = append(keys, k)
		}
	}
	for k := range s.urgent {
		if s.keys[k] == nil {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		if _, err := s.write(ctx, k, nil, writeFlush); err != nil {
			log.FromContext(ctx).Error(err, "saving quota counters", "configmap", Name(k))
		}
	}
}

// needsFlushLocked reports whether a flush must write key: a vendor block
// pending, a write that failed, or a reservation of the ConfigMap that
// release says to return. s.mu must be held.
func (s *ConfigMapStore) needsFlushLocked(key string, ks *keyState, release func(*quotaState) bool) bool {
	if s.urgent[key] || ks.unsure {
		return true
	}
	if !ks.inConfigMap {
		return false
	}
	for _, q := range ks.quotas {
		if (q.held > 0 || q.unflushed > 0) && release(q) {
			return true
		}
	}
	return false
}

// openKeys returns the keys the final write must carry: those this store
// wrote and has not closed, and those with anything pending or held.
func (s *ConfigMapStore) openKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var keys []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for k := range s.open {
		add(k)
	}
	for k := range s.pending {
		add(k)
	}
	for k, ks := range s.keys {
		if ks.busy() {
			add(k)
		}
	}
	return keys
}

// writeMode says why a key is written.
type writeMode int

const (
	// writeFlush is FlushAll's: it writes only what cannot wait for the
	// key's next write (see needsFlushLocked), and returns the reserved
	// calls of a key idle since the last flush whose quota runs low.
	writeFlush writeMode = iota
	// writeSave carries what is pending: Save's, when the key's last
	// write is FlushEvery old.
	writeSave
	// writeReserve carries what is pending and reserves calls.
	writeReserve
	// writeFinal carries what is pending, returns every reserved call and
	// marks the ConfigMap closed.
	writeFinal
)

// taken is the spent calls of one quota a write carries.
type taken struct {
	name   string
	period time.Time
	n      int64
}

// write merges this process's news of key into its ConfigMap: the windows
// and vendor blocks pending, the calls spent (added to the stored count),
// this process's reservation (returned when final, or by a flush of a key
// idle since the last one whose quota runs low; raised by the claims of
// writeReserve). A flush writes only what cannot wait (see needsFlush). A
// conflict with another writer reads again and reapplies. It returns the
// views of the claims.
func (s *ConfigMapStore) write(ctx context.Context, key string, claims []httpapi.QuotaClaim, mode writeMode) ([]httpapi.QuotaView, error) {
	me := s.holderID()
	s.mu.Lock()
	ks := s.keyLocked(key)
	s.mu.Unlock()
	ks.io.Lock()
	defer ks.io.Unlock()

	now := s.now()
	s.mu.Lock()
	for _, c := range claims {
		ks.quotaLocked(c)
	}
	// A flush returns the reservations of a key idle since the previous
	// flush (FlushAll clears active) whose quota runs low; the final write
	// returns every one.
	unused := now.Sub(ks.lastActive) >= KeepIdle
	release := func(q *quotaState) bool {
		return mode == writeFinal || (mode == writeFlush && !ks.active && (unused || !q.keep()))
	}
	usage, pending := s.pending[key]
	var needed bool
	switch mode {
	case writeFlush:
		needed = s.needsFlushLocked(key, ks, release)
	default:
		needed = pending || (mode == writeFinal && (ks.inConfigMap || s.open[key]))
		for _, q := range ks.quotas {
			needed = needed || q.unflushed > 0
		}
	}
	wants := map[string]int64{}
	for _, c := range claims {
		if q := ks.quotas[c.Name]; c.Limit > 0 && q.held == 0 && q.period.Equal(c.PeriodStart) {
			wants[c.Name] = c.Limit
			needed = true
		}
	}
	if !needed {
		s.mu.Unlock()
		return s.views(ks, claims, nil), nil
	}
	if pending {
		delete(s.pending, key)
		delete(s.urgent, key)
	}
	if s.lastFlush == nil {
		s.lastFlush = map[string]time.Time{}
	}
	s.lastFlush[key] = now
	var takes []taken
	for name, q := range ks.quotas {
		if release(q) {
			q.held = 0
		}
		if q.unflushed > 0 {
			takes = append(takes, taken{name: name, period: q.period, n: q.unflushed})
			q.inflight += q.unflushed
			q.unflushed = 0
		}
	}
	s.mu.Unlock()

	grants, closed, err := s.apply(ctx, key, ks, me, usage, takes, wants, mode == writeFinal)
	s.mu.Lock()
	for _, t := range takes {
		if q := ks.quotas[t.name]; q != nil && q.period.Equal(t.period) {
			q.inflight -= t.n
			if err != nil {
				q.unflushed += t.n
			}
		}
	}
	if err != nil {
		// The reservation in the ConfigMap is unknown now, and the
		// windows pending may be newer than the last write covers: the
		// next flush writes them, unless newer ones arrived meanwhile.
		ks.inConfigMap, ks.unsure = true, true
		if _, newer := s.pending[key]; pending && !newer {
			s.pending[key] = usage
		}
		s.mu.Unlock()
		return nil, err
	}
	if !closed {
		if s.open == nil {
			s.open = map[string]bool{}
		}
		if mode == writeFinal {
			delete(s.open, key)
		} else {
			s.open[key] = true
		}
	}
	s.mu.Unlock()
	return s.views(ks, claims, grants), nil
}

// apply is write's read-merge-write loop. It returns the calls granted,
// and closed when there was nothing to write (no ConfigMap, nothing new).
func (s *ConfigMapStore) apply(ctx context.Context, key string, ks *keyState, me string, usage map[string]httpapi.QuotaUsage,
	takes []taken, wants map[string]int64, final bool) (grants map[string]int64, closed bool, err error) {
	name := Name(key)
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		var cm corev1.ConfigMap
		err := s.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: name}, &cm)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, false, fmt.Errorf("reading quota counters %s: %w", name, err)
		}
		exists := err == nil
		entries, derr := decode(cm.Data[dataKey])
		if derr != nil {
			// Damaged: rewrite it from what this process knows; the
			// vendors' own limit answers guard what the others spent.
			log.FromContext(ctx).Error(derr, "quota counters unreadable; rewriting them", "configmap", name)
			entries = map[string]entry{}
		}

		grants = map[string]int64{}
		s.mu.Lock()
		anything := usage != nil || len(takes) > 0 || len(wants) > 0
		for qn, q := range ks.quotas {
			var spent int64
			for _, t := range takes {
				if t.name == qn && t.period.Equal(q.period) {
					spent += t.n
				}
			}
			own := q.held + q.unflushed
			e, ok := settleQuota(entries[qn], me, q.period, spent, own)
			if !ok {
				// The ConfigMap counts a newer period: ours is over.
				q.stale, q.held, q.unflushed = true, 0, 0
				continue
			}
			if limit, want := wants[qn]; want && q.held == 0 {
				var g int64
				e, g = grantQuota(e, me, own, limit)
				grants[qn] = g
			}
			if own > 0 || grants[qn] > 0 || spent > 0 || entries[qn].Held[me] > 0 {
				anything = true
			}
			entries[qn] = e
		}
		s.mu.Unlock()
		if !exists && !anything {
			return nil, true, nil
		}
		for n, u := range usage {
			if strings.HasPrefix(n, httpapi.WindowUsagePrefix) {
				entries[n] = entry{QuotaUsage: u}
				continue
			}
			// A quota as the limiter sees it: its period and a vendor
			// block (the latest any process saw wins); its count is
			// the limiter's view, not news.
			e := entries[n]
			if u.PeriodStart.After(e.PeriodStart) {
				e, _ = settleQuota(e, me, u.PeriodStart, 0, 0)
			}
			if u.BlockedUntil.After(e.BlockedUntil) {
				e.BlockedUntil = u.BlockedUntil
			}
			entries[n] = e
		}
		b, err := json.Marshal(entries)
		if err != nil {
			return nil, false, fmt.Errorf("encoding quota counters: %w", err)
		}
		state := stateOpen
		if final {
			state = stateClosed
		}
		data := map[string]string{dataKey: string(b), stateKey: state,
			writtenKey: s.now().UTC().Format(time.RFC3339Nano), flushKey: s.flushEvery().String()}
		if exists {
			cm.Data = data
			err = s.Writer.Update(ctx, &cm)
		} else {
			cm = corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{LabelKey: "true"},
					Annotations: map[string]string{"erpsync.io/quota-key": key}},
				Data: data,
			}
			err = s.Writer.Create(ctx, &cm)
		}
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < maxWriteAttempts {
			// Another replica wrote first: read its counts and reapply,
			// after a short random pause once it happened twice.
			if attempt > 1 {
				pause := time.Duration(rand.Int64N(int64(min(attempt, 5)) * int64(time.Millisecond))) //nolint:gosec // G404: retry jitter, not a secret
				select {
				case <-ctx.Done():
					return nil, false, ctx.Err()
				case <-time.After(pause):
				}
			}
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("writing quota counters %s: %w", name, err)
		}
		s.mu.Lock()
		ks.inConfigMap, ks.unsure = false, false
		for qn, q := range ks.quotas {
			e, ok := entries[qn]
			if !ok || !e.PeriodStart.Equal(q.period) {
				continue
			}
			q.held += grants[qn]
			if grants[qn] > 0 {
				ks.active = true
			}
			q.used, q.others = e.Used, e.others(me)
			if e.BlockedUntil.After(q.blocked) {
				q.blocked = e.BlockedUntil
			}
			if e.Held[me] > 0 {
				ks.inConfigMap = true
			}
		}
		s.mu.Unlock()
		return grants, false, nil
	}
}

// views returns the views of the claims.
func (s *ConfigMapStore) views(ks *keyState, claims []httpapi.QuotaClaim, grants map[string]int64) []httpapi.QuotaView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]httpapi.QuotaView, 0, len(claims))
	for _, c := range claims {
		q := ks.quotas[c.Name]
		if q == nil {
			continue
		}
		v := q.view(c.Name, c.Limit)
		v.Granted = grants[c.Name]
		out = append(out, v)
	}
	return out
}

func (s *ConfigMapStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *ConfigMapStore) flushEvery() time.Duration {
	if s.FlushEvery <= 0 {
		return 5 * time.Second
	}
	return s.FlushEvery
}

// collectMargin is how long past its longest period an untouched ConfigMap
// is kept.
const collectMargin = time.Hour

// Collect deletes the ConfigMaps of this store that nobody wrote for longer
// than the longest period they count (a window's span, a day, a month: see
// retention) and that hold no vendor block still running, so that the
// counters of credentials, hosts and tenants gone do not pile up. A
// ConfigMap this store must still write (a vendor block, a failed write)
// is kept. What this store keeps of an expired one is of no use: its
// windows pending are older than their span (a call FlushEvery after the
// last write writes again), its reservations are of a period that ended
// (a reservation is written in its period), so they go with it. Deletes
// are conditional on the version read, so a replica writing at the same
// time wins. It returns how many it deleted.
func (s *ConfigMapStore) Collect(ctx context.Context) (int, error) {
	var list corev1.ConfigMapList
	if err := s.Reader.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingLabels{LabelKey: "true"}); err != nil {
		return 0, fmt.Errorf("listing quota counters: %w", err)
	}
	now := s.now()
	deleted := 0
	var errs []error
	for i := range list.Items {
		cm := &list.Items[i]
		k := cm.Annotations["erpsync.io/quota-key"]
		s.mu.Lock()
		ks := s.keys[k]
		hot := s.urgent[k] || (ks != nil && ks.unsure)
		s.mu.Unlock()
		if hot || !s.expired(cm, now) {
			continue
		}
		err := s.collect(ctx, cm, k, ks)
		switch {
		case err == nil:
			deleted++
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone already, or written meanwhile: in use again.
		default:
			errs = append(errs, fmt.Errorf("deleting quota counters %s: %w", cm.Name, err))
		}
	}
	return deleted, errors.Join(errs...)
}

// collect deletes cm, the ConfigMap of key (ks: this store's state of it,
// or nil), if no one wrote it since it was read, and forgets what this
// store kept of it. It holds the key's writes off meanwhile.
func (s *ConfigMapStore) collect(ctx context.Context, cm *corev1.ConfigMap, key string, ks *keyState) error {
	if ks != nil {
		ks.io.Lock()
		defer ks.io.Unlock()
	}
	rv := cm.ResourceVersion
	if err := s.Writer.Delete(ctx, cm, client.Preconditions{ResourceVersion: &rv}); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, key)
	delete(s.open, key)
	if ks != nil {
		ks.quotas, ks.inConfigMap = nil, false
	}
	return nil
}

// expired reports whether cm was last written longer ago than its
// retention and holds no block that has yet to pass.
func (s *ConfigMapStore) expired(cm *corev1.ConfigMap, now time.Time) bool {
	written, err := time.Parse(time.RFC3339Nano, cm.Data[writtenKey])
	if err != nil {
		written = cm.CreationTimestamp.Time
	}
	usage := map[string]httpapi.QuotaUsage{}
	if raw := cm.Data[dataKey]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &usage); err != nil {
			// Unreadable counters are worth nothing once a month passed.
			usage = map[string]httpapi.QuotaUsage{"month": {}}
		}
	}
	keep := retention(usage) + collectMargin + s.flushEvery()
	if now.Sub(written) < keep {
		return false
	}
	for _, u := range usage {
		if u.BlockedUntil.After(now) {
			return false
		}
	}
	return true
}

// retention is the longest period the counters count: a window's span
// (from its name, "window:minute@1m0s"), a day for a quota, a month (31
// days) for a monthly one.
func retention(usage map[string]httpapi.QuotaUsage) time.Duration {
	var d time.Duration
	for name := range usage {
		p := 24 * time.Hour
		if rest, ok := strings.CutPrefix(name, httpapi.WindowUsagePrefix); ok {
			p = 0
			if _, span, ok := strings.Cut(rest, "@"); ok {
				if v, err := time.ParseDuration(span); err == nil && v > 0 {
					p = v
				}
			}
		} else if strings.HasPrefix(strings.ToLower(name), "month") {
			p = 31 * 24 * time.Hour
		}
		d = max(d, p)
	}
	return d
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// Name is the ConfigMap name for a limiter key: "erpsync-quota-" and
// httpapi.CredentialID(key), a DNS label made of the key's vendor prefix
// (the part before ":", for people) and a digest of the whole key. Keys
// differ in a secret's digest and a host at their end, so cutting a key
// to fit 63 characters, or folding its punctuation, could give two
// credentials one ConfigMap: the digest never does. The same ID is the
// credential label of the erpsync_quota_* metrics and what ErpSync
// status.quotaCredentials lists.
func Name(key string) string {
	return NamePrefix + httpapi.CredentialID(key)
}

// NamePrefix starts the name of every quota ConfigMap; the rest is the
// credential's httpapi.CredentialID.
const NamePrefix = "erpsync-quota-"

func clone(in map[string]httpapi.QuotaUsage) map[string]httpapi.QuotaUsage {
	out := make(map[string]httpapi.QuotaUsage, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
