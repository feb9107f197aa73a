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

	// Windows pending in the store are older than their span once the
	// ConfigMap expired: they go with it, and the store forgets them (its
	// close writes nothing back). A vendor block pending keeps the
	// ConfigMap until a flush writes it.
	clock.Set(t0)
	s2 := api.store(clock)
	s2.FlushEvery = time.Hour
	minute := func(n int64) map[string]httpapi.QuotaUsage {
		return map[string]httpapi.QuotaUsage{"window:minute@1m0s": {Used: n, Last: clock.Now()}}
	}
	for _, k := range []string{"pending", "blocked-pending"} {
		if err := s2.Save(ctx, k, minute(1)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(t0.Add(30 * time.Minute)) // within FlushEvery: pending
	if err := s2.Save(ctx, "pending", minute(2)); err != nil {
		t.Fatal(err)
	}
	blocked := minute(2)
	blocked["day"] = httpapi.QuotaUsage{PeriodStart: day, BlockedUntil: t0.Add(31 * time.Minute)}
	if err := s2.Save(ctx, "blocked-pending", blocked); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(3 * time.Hour)) // the ConfigMaps' writes are old
	if n, err := s2.Collect(ctx); err != nil || n != 1 || exists("pending") || !exists("blocked-pending") {
		t.Fatalf("Collect = %d, %v; want the expired key with windows pending deleted, the one with a block pending kept", n, err)
	}
	s2.FlushAll(ctx) // writes the block
	s2.Close(ctx)
	if exists("pending") {
		t.Error("the close wrote a collected key back")
	}
	clock.Set(t0.Add(30 * time.Hour)) // a day and more after the block's write
	if n, err := s2.Collect(ctx); err != nil || n != 1 || exists("blocked-pending") {
		t.Fatalf("Collect = %d, %v; want the flushed, then unused, key deleted", n, err)
	}
	// A collected key used again is written afresh.
	if err := s2.Save(ctx, "pending", minute(1)); err != nil || !exists("pending") {
		t.Fatalf("a collected key used again: %v, exists %v", err, exists("pending"))
	}
}
