// Package quotastore keeps the vendors' daily and monthly call counters, and
// the recent calls of their rate windows, in Kubernetes, so that they
// survive a restart and a leader change: one small ConfigMap per metered
// credential, in the operator's namespace.
package quotastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// LabelKey marks the ConfigMaps this store owns.
const LabelKey = "erpsync.io/quota"

// ConfigMapStore is an httpapi.QuotaStore on ConfigMaps. Saves are coalesced:
// a key is written at most every FlushEvery (and once more when the manager
// stops), so a busy credential costs one write every few seconds rather than
// one per call, rate windows included.
//
// The final write of a stopping store marks each ConfigMap closed, and a
// restarted manager then resumes the windows exactly. A ConfigMap left open
// (its writer crashed, or another replica is using the credential) may miss
// the calls of the last FlushEvery, so its windows are loaded as spent until
// one window after the last write plus FlushEvery: a crash costs a wait,
// never a burst past the vendor's limit. Daily and monthly counters may
// under-count those calls, which the vendors' own over-quota answers cover.
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

	mu        sync.Mutex
	pending   map[string]map[string]httpapi.QuotaUsage
	lastFlush map[string]time.Time
	// open holds the keys this store has written since it started and not
	// yet closed: the final flush closes them.
	open map[string]bool
}

var _ httpapi.QuotaStore = (*ConfigMapStore)(nil)

// The counters live in the operator's own namespace: a namespaced Role.
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;list;create;update;delete

// Load returns the counters saved for key.
func (s *ConfigMapStore) Load(ctx context.Context, key string) (map[string]httpapi.QuotaUsage, error) {
	s.mu.Lock()
	if p, ok := s.pending[key]; ok {
		s.mu.Unlock()
		return clone(p), nil
	}
	s.mu.Unlock()
	var cm corev1.ConfigMap
	err := s.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: Name(key)}, &cm)
	if apierrors.IsNotFound(err) {
		return map[string]httpapi.QuotaUsage{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading quota counters %s: %w", Name(key), err)
	}
	out := map[string]httpapi.QuotaUsage{}
	if raw := cm.Data[dataKey]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			// A damaged counter must not stop syncs: start counting afresh
			// and let the vendor's own limit answers guard the quota. The
			// windows' calls are unknown, so they are taken as spent.
			log.FromContext(ctx).Error(err, "quota counters unreadable; counting afresh, the rate windows taken as spent", "configmap", cm.Name)
			return map[string]httpapi.QuotaUsage{httpapi.EveryWindow: {Used: math.MaxInt32, Last: s.now()}}, nil
		}
	}
	s.mu.Lock()
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

// Save records the counters of key, writing them now if the key was not
// written within FlushEvery, and otherwise at the next flush.
func (s *ConfigMapStore) Save(ctx context.Context, key string, usage map[string]httpapi.QuotaUsage) error {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]map[string]httpapi.QuotaUsage{}
		s.lastFlush = map[string]time.Time{}
	}
	s.pending[key] = clone(usage)
	due := s.now().Sub(s.lastFlush[key]) >= s.flushEvery()
	s.mu.Unlock()
	if !due {
		return nil
	}
	return s.flush(ctx, key, false)
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

// Close writes every pending key and marks every key this store wrote
// closed, so that a restarted manager resumes their windows exactly. Start
// calls it when the manager stops; the store may be used again after it
// (the next write reopens the key).
func (s *ConfigMapStore) Close(ctx context.Context) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.open)+len(s.pending))
	for k := range s.open {
		keys = append(keys, k)
	}
	for k := range s.pending {
		if !s.open[k] {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		if err := s.flush(ctx, k, true); err != nil {
			log.FromContext(ctx).Error(err, "saving quota counters", "configmap", Name(k))
		}
	}
}

// NeedLeaderElection is false: every replica counts the calls it makes.
func (s *ConfigMapStore) NeedLeaderElection() bool { return false }

// FlushAll writes every pending key.
func (s *ConfigMapStore) FlushAll(ctx context.Context) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		if err := s.flush(ctx, k, false); err != nil {
			log.FromContext(ctx).Error(err, "saving quota counters", "configmap", Name(k))
		}
	}
}

// flush writes the pending counters of key; final also writes a key with
// nothing pending, marking it closed.
func (s *ConfigMapStore) flush(ctx context.Context, key string, final bool) error {
	s.mu.Lock()
	usage, ok := s.pending[key]
	now := s.now()
	if ok {
		delete(s.pending, key)
		s.lastFlush[key] = now
	}
	s.mu.Unlock()
	if !ok && !final {
		return nil
	}
	name := Name(key)
	var cm corev1.ConfigMap
	err := s.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: name}, &cm)
	if err != nil && !apierrors.IsNotFound(err) {
		s.keep(key, usage, ok)
		return fmt.Errorf("reading quota counters %s: %w", name, err)
	}
	exists := err == nil
	raw := cm.Data[dataKey]
	if ok {
		b, err := json.Marshal(usage)
		if err != nil {
			return fmt.Errorf("encoding quota counters: %w", err)
		}
		raw = string(b)
	} else if !exists {
		return nil // nothing to close
	}
	state := stateOpen
	if final {
		state = stateClosed
	}
	data := map[string]string{dataKey: raw, stateKey: state,
		writtenKey: now.UTC().Format(time.RFC3339Nano), flushKey: s.flushEvery().String()}
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
	if err != nil {
		s.keep(key, usage, ok)
		return fmt.Errorf("writing quota counters %s: %w", name, err)
	}
	s.mu.Lock()
	if s.open == nil {
		s.open = map[string]bool{}
	}
	if final {
		delete(s.open, key)
	} else {
		s.open[key] = true
	}
	s.mu.Unlock()
	return nil
}

// keep puts counters whose write failed back for the next flush, unless
// newer ones arrived meanwhile.
func (s *ConfigMapStore) keep(key string, usage map[string]httpapi.QuotaUsage, ok bool) {
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, newer := s.pending[key]; !newer {
		s.pending[key] = usage
	}
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
// ConfigMap with counters pending in this store is kept. Deletes are
// conditional on the version read, so a replica writing at the same time
// wins. It returns how many it deleted.
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
		s.mu.Lock()
		_, pending := s.pending[cm.Annotations["erpsync.io/quota-key"]]
		s.mu.Unlock()
		if pending || !s.expired(cm, now) {
			continue
		}
		rv := cm.ResourceVersion
		err := s.Writer.Delete(ctx, cm, client.Preconditions{ResourceVersion: &rv})
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

// Name is the ConfigMap name for a limiter key: a DNS label made of the
// key's vendor prefix (the part before ":", for people) and a digest of the
// whole key. Keys differ in a secret's digest and a host at their end, so
// cutting a key to fit 63 characters, or folding its punctuation, could
// give two credentials one ConfigMap: the digest never does.
func Name(key string) string {
	prefix, _, _ := strings.Cut(key, ":")
	prefix = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(prefix), "-"), "-")
	if len(prefix) > 16 {
		prefix = strings.TrimRight(prefix[:16], "-")
	}
	sum := sha256.Sum256([]byte(key))
	n := "erpsync-quota-"
	if prefix != "" {
		n += prefix + "-"
	}
	return n + hex.EncodeToString(sum[:16])
}

func clone(in map[string]httpapi.QuotaUsage) map[string]httpapi.QuotaUsage {
	out := make(map[string]httpapi.QuotaUsage, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
