package quotastore

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// TestCollectDeletesUnusedCounters: a credential's ConfigMap goes once
// nobody wrote it for longer than the longest period it counts, and not
// before; blocks still running, pending counters and other ConfigMaps are
// kept.
func TestCollectDeletesUnusedCounters(t *testing.T) {
	ctx := context.Background()
	api := newAPIServer()
	clock := httpapi.NewFakeClock(t0)
	s := api.store(clock)
	s.FlushEvery = time.Second
	day := t0.Truncate(24 * time.Hour)
	month := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	counters := map[string]map[string]httpapi.QuotaUsage{
		"minute-window": {"window:minute@1m0s": {Used: 3, Last: t0}},
		"daily":         {"day": {PeriodStart: day, Used: 10}, "window:minute@1m1s": {Used: 1, Last: t0}},
		"monthly":       {"month": {PeriodStart: month, Used: 10}},
		"blocked":       {"day": {PeriodStart: day, Used: 10, BlockedUntil: t0.Add(30 * time.Hour)}},
	}
	for k, u := range counters {
		if err := s.Save(ctx, k, u); err != nil {
			t.Fatal(err)
		}
	}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "someone-else", Namespace: s.Namespace}}
	if err := api.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	exists := func(key string) bool {
		var cm corev1.ConfigMap
		err := api.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: Name(key)}, &cm)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	steps := []struct {
		at   time.Duration
		gone []string
		kept []string
	}{
		{at: 30 * time.Minute, kept: []string{"minute-window", "daily", "monthly", "blocked"}},
		{at: 2 * time.Hour, gone: []string{"minute-window"}, kept: []string{"daily", "monthly", "blocked"}},
		{at: 26 * time.Hour, gone: []string{"daily"}, kept: []string{"monthly", "blocked"}},
		{at: 31 * time.Hour, gone: []string{"blocked"}, kept: []string{"monthly"}},
		{at: 30 * 24 * time.Hour, kept: []string{"monthly"}},
		{at: 33 * 24 * time.Hour, gone: []string{"monthly"}},
	}
	for _, st := range steps {
		clock.Set(t0.Add(st.at))
		if _, err := s.Collect(ctx); err != nil {
			t.Fatalf("at +%v: %v", st.at, err)
		}
		for _, k := range st.gone {
			if exists(k) {
				t.Errorf("at +%v: %s is still there", st.at, k)
			}
		}
		for _, k := range st.kept {
			if !exists(k) {
				t.Errorf("at +%v: %s was deleted", st.at, k)
			}
		}
	}
	var cm corev1.ConfigMap
	if err := api.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: "someone-else"}, &cm); err != nil {
		t.Errorf("a ConfigMap of someone else was touched: %v", err)
	}

	// Counters pending in the store are kept, and a deleted key that is
	// used again is written afresh.
	clock.Set(t0)
	s2 := api.store(clock)
	s2.FlushEvery = time.Hour
	if err := s2.Save(ctx, "busy", map[string]httpapi.QuotaUsage{"window:minute@1m0s": {Used: 1, Last: t0}}); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(30 * time.Minute)) // within FlushEvery: pending
	if err := s2.Save(ctx, "busy", map[string]httpapi.QuotaUsage{"window:minute@1m0s": {Used: 2, Last: clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(3 * time.Hour)) // the ConfigMap's write is old
	if _, err := s2.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists("busy") {
		t.Fatal("a key with pending counters was deleted")
	}
	s2.FlushAll(ctx)
	clock.Set(t0.Add(6 * time.Hour))
	if n, err := s2.Collect(ctx); err != nil || n != 1 || exists("busy") {
		t.Fatalf("Collect = %d, %v; want the flushed, then unused, key deleted", n, err)
	}
}
