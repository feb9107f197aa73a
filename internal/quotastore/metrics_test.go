package quotastore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// quotaObs records the quotas a replica's limiters report.
type quotaObs struct {
	httpapi.NopObserver
	mu        sync.Mutex
	used      map[string]int64
	limit     map[string]int64
	forgotten []string
}

func (o *quotaObs) ObserveQuota(_, credential, quota string, used, limit int64, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.used == nil {
		o.used, o.limit = map[string]int64{}, map[string]int64{}
	}
	o.used[credential+"/"+quota], o.limit[credential+"/"+quota] = used, limit
}

func (o *quotaObs) ForgetCredential(_, credential string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgotten = append(o.forgotten, credential)
}

func (o *quotaObs) get(q string) (used, limit int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.used[q], o.limit[q]
}

// TestQuotaMetricsMergeReplicas: a replica's quota gauge counts what the
// other replicas spent and hold, once its store merged their writes.
func TestQuotaMetricsMergeReplicas(t *testing.T) {
	api := newAPIServer()
	vendor := newQuotaVendor(t, 1000)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := httpapi.NewFakeClock(now)
	ctx := context.Background()
	cred := httpapi.CredentialID(sharedKey)
	newClient := func(id string, obs *quotaObs) (*ConfigMapStore, *httpapi.Client) {
		s := &ConfigMapStore{Reader: api, Writer: api, Namespace: "erpsync-system", ID: id, CollectEvery: -1, Now: clock.Now}
		c, err := httpapi.New(httpapi.Options{Connector: "xero", Registry: httpapi.NewRegistry(s), Clock: clock, MaxRetries: -1, Observer: obs,
			Limits: []httpapi.Limit{{Key: sharedKey, Quotas: []httpapi.Quota{{Name: "day", Limit: 1000, Period: httpapi.Daily}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return s, c
	}
	obsA, obsB := &quotaObs{}, &quotaObs{}
	storeA, a := newClient("a", obsA)
	storeB, b := newClient("b", obsB)
	for range 30 {
		if _, err := a.Get(ctx, "op", vendor.srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	if used, limit := obsA.get(cred + "/day"); used != 30 || limit != 1000 {
		t.Fatalf("replica a reports %d of %d, want its 30 calls of 1000", used, limit)
	}
	storeA.FlushAll(ctx)
	var heldA int64
	storeA.mu.Lock()
	heldA = storeA.keys[sharedKey].quotas["day"].held
	storeA.mu.Unlock()
	if _, err := b.Get(ctx, "op", vendor.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	// b's first call reserved (a write that read a's counts) and spent one.
	if used, _ := obsB.get(cred + "/day"); used != 30+heldA+1 {
		t.Errorf("replica b reports %d used, want a's 30 spent, a's %d held and its own 1", used, heldA)
	}
	// a learns of b's call at its next write.
	storeB.FlushAll(ctx)
	storeA.Close(ctx)
	storeB.Close(ctx)
	if _, err := a.Get(ctx, "op", vendor.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if used, _ := obsA.get(cred + "/day"); used != 32 {
		t.Errorf("replica a reports %d used after both closed, want 32 (30 + b's 1 + its new one)", used)
	}
}

// TestNameIsPrefixAndCredentialID: the ConfigMap name is the credential
// ID the metrics and the ErpSync status use, and the same as before the
// ID had a name (existing ConfigMaps keep theirs).
func TestNameIsPrefixAndCredentialID(t *testing.T) {
	key := httpapi.Key("xero", "client", "tenant") + "/0123456789abcdef@api.xero.com"
	sum := sha256.Sum256([]byte(key))
	want := "erpsync-quota-xero-" + hex.EncodeToString(sum[:16])
	if got := Name(key); got != want || got != NamePrefix+httpapi.CredentialID(key) {
		t.Errorf("Name = %q, want %q", got, want)
	}
}
