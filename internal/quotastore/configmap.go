// Package quotastore keeps the vendors' daily and monthly call counters in
// Kubernetes, so that they survive a restart and a leader change: one small
// ConfigMap per metered credential, in the operator's namespace.
package quotastore

import (
	"context"
	"encoding/json"
	"fmt"
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

// LabelKey marks the ConfigMaps this store owns.
const LabelKey = "erpsync.io/quota"

// ConfigMapStore is an httpapi.QuotaStore on ConfigMaps. Saves are coalesced:
// a key is written at most every FlushEvery (and once more when the manager
// stops), so a busy credential costs one write every few seconds rather than
// one per call. A crash loses at most FlushEvery of counting, which the
// vendors' own over-quota answers then cover.
type ConfigMapStore struct {
	// Reader reads straight from the API server (ConfigMaps are not cached).
	Reader client.Reader
	// Writer creates and updates the ConfigMaps.
	Writer client.Client
	// Namespace holds the ConfigMaps (the operator's namespace).
	Namespace string
	// FlushEvery bounds how often one key is written; default 5s.
	FlushEvery time.Duration

	mu        sync.Mutex
	pending   map[string]map[string]httpapi.QuotaUsage
	lastFlush map[string]time.Time
}

var _ httpapi.QuotaStore = (*ConfigMapStore)(nil)

// The counters live in the operator's own namespace: a namespaced Role.
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;create;update

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
			// and let the vendor's own limit answers guard the quota.
			log.FromContext(ctx).Error(err, "quota counters unreadable; counting afresh", "configmap", cm.Name)
			return map[string]httpapi.QuotaUsage{}, nil
		}
	}
	return out, nil
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
	due := time.Since(s.lastFlush[key]) >= s.flushEvery()
	s.mu.Unlock()
	if !due {
		return nil
	}
	return s.flush(ctx, key)
}

// Start flushes pending counters every FlushEvery until ctx ends, then once
// more. It makes the store a manager Runnable.
func (s *ConfigMapStore) Start(ctx context.Context) error {
	t := time.NewTicker(s.flushEvery())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.FlushAll(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.FlushAll(fctx)
			return nil
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
		if err := s.flush(ctx, k); err != nil {
			log.FromContext(ctx).Error(err, "saving quota counters", "configmap", Name(k))
		}
	}
}

func (s *ConfigMapStore) flush(ctx context.Context, key string) error {
	s.mu.Lock()
	usage, ok := s.pending[key]
	if ok {
		delete(s.pending, key)
		s.lastFlush[key] = time.Now()
	}
	s.mu.Unlock()
	if !ok {
		return nil
	}
	raw, err := json.Marshal(usage)
	if err != nil {
		return fmt.Errorf("encoding quota counters: %w", err)
	}
	name := Name(key)
	var cm corev1.ConfigMap
	err = s.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: name}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{LabelKey: "true"},
				Annotations: map[string]string{"erpsync.io/quota-key": key}},
			Data: map[string]string{dataKey: string(raw)},
		}
		err = s.Writer.Create(ctx, &cm)
	case err == nil:
		cm.Data = map[string]string{dataKey: string(raw)}
		err = s.Writer.Update(ctx, &cm)
	}
	if err != nil {
		// Keep the counters for the next flush, unless newer ones arrived.
		s.mu.Lock()
		if _, newer := s.pending[key]; !newer {
			s.pending[key] = usage
		}
		s.mu.Unlock()
		return fmt.Errorf("writing quota counters %s: %w", name, err)
	}
	return nil
}

func (s *ConfigMapStore) flushEvery() time.Duration {
	if s.FlushEvery <= 0 {
		return 5 * time.Second
	}
	return s.FlushEvery
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// Name is the ConfigMap name for a limiter key: a DNS label.
func Name(key string) string {
	n := "erpsync-quota-" + strings.Trim(notDNS.ReplaceAllString(strings.ToLower(key), "-"), "-")
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

func clone(in map[string]httpapi.QuotaUsage) map[string]httpapi.QuotaUsage {
	out := make(map[string]httpapi.QuotaUsage, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
