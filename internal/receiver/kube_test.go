package receiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// The API server (envtest) is started by the first test that needs it;
// the HTTP tests run without one.
var (
	envOnce   sync.Once
	testEnv   *envtest.Environment
	envConfig *rest.Config
	envClient client.Client
	envErr    error
	envScheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testEnv != nil {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}
	os.Exit(code)
}

func kube(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	envOnce.Do(func() {
		if os.Getenv("KUBEBUILDER_ASSETS") == "" {
			envErr = errors.New("KUBEBUILDER_ASSETS is not set: run with `make test`, or set it to bin/k8s/<version>")
			return
		}
		if envErr = clientgoscheme.AddToScheme(envScheme); envErr != nil {
			return
		}
		if envErr = erpv1.AddToScheme(envScheme); envErr != nil {
			return
		}
		testEnv = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
		}
		envConfig, envErr = testEnv.Start()
		if envErr != nil {
			return
		}
		envClient, envErr = client.New(envConfig, client.Options{Scheme: envScheme})
	})
	if envErr != nil {
		t.Fatalf("envtest: %v", envErr)
	}
	return envConfig, envClient
}

func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "receiver-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func erpSync(ns, name string, typ erpv1.ConnectorType, tenant string, webhooks bool) *erpv1.ErpSync {
	e := &erpv1.ErpSync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: erpv1.ErpSyncSpec{
			CompanyID: "co-" + name,
			Connector: erpv1.ConnectorSpec{Type: typ, CredentialsRef: erpv1.LocalSecretReference{Name: name + "-creds"}, TenantID: tenant},
			Interval:  metav1.Duration{Duration: 15 * time.Minute},
		},
	}
	if webhooks {
		e.Spec.Webhooks = &erpv1.WebhooksSpec{Enabled: true, Debounce: &metav1.Duration{Duration: 500 * time.Millisecond}}
	}
	return e
}

func create(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

func TestCacheDirectory(t *testing.T) {
	cfg, c := kube(t)
	ns := namespace(t, c)
	xa := erpSync(ns, "xero-a", erpv1.ConnectorXero, " 3F2A-Tenant ", true)
	xb := erpSync(ns, "xero-b", erpv1.ConnectorXero, "tenant-b", true)
	xoff := erpSync(ns, "xero-off", erpv1.ConnectorXero, "3f2a-tenant", false)
	ka := erpSync(ns, "katana-a", erpv1.ConnectorKatana, "", true)
	create(t, c, xa, xb, xoff, ka)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dc, err := NewDirectoryCache(cfg, cache.Options{Scheme: envScheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := IndexFields(ctx, dc); err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := dc.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	if !dc.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	d := CacheDirectory{Reader: dc}
	names := func(subs []Subscriber) string {
		var out []string
		for _, s := range subs {
			out = append(out, s.Key.Name)
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	tests := []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"by route", func() (string, error) {
			s, ok, err := d.ByRoute(ctx, "katana", string(ka.UID))
			return fmt.Sprintf("%s %v %v %s", s.Key.Name, ok, s.Debounce, s.CredentialsSecret), err
		}, "katana-a true 500ms katana-a-creds"},
		{"by route, another vendor's path", func() (string, error) {
			_, ok, err := d.ByRoute(ctx, "cin7core", string(ka.UID))
			return fmt.Sprint(ok), err
		}, "false"},
		{"by route, webhooks off", func() (string, error) {
			_, ok, err := d.ByRoute(ctx, "xero", string(xoff.UID))
			return fmt.Sprint(ok), err
		}, "false"},
		{"by tenant, case and spaces ignored; webhooks off left out", func() (string, error) {
			s, err := d.ByTenant(ctx, "xero", "3f2a-TENANT")
			return names(s), err
		}, "[xero-a]"},
		{"by tenant of another vendor", func() (string, error) {
			s, err := d.ByTenant(ctx, "katana", "tenant-b")
			return names(s), err
		}, "[]"},
		{"all of a vendor", func() (string, error) {
			s, err := d.AllOf(ctx, "xero")
			return names(s), err
		}, "[xero-a xero-b]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.got()
			if err != nil || got != tc.want {
				t.Errorf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	// The receiver's own cache is trimmed.
	var held erpv1.ErpSync
	if err := dc.Get(ctx, client.ObjectKeyFromObject(xa), &held); err != nil {
		t.Fatal(err)
	}
	if held.ManagedFields != nil {
		t.Error("managed fields kept")
	}
}

func TestSecretKeySource(t *testing.T) {
	_, c := kube(t)
	ns := namespace(t, c)
	labelled := map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue}
	secret := func(name string, labels map[string]string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, StringData: data}
		return s
	}
	create(t, c,
		secret("a-creds", labelled, map[string]string{"apiKey": "k", connectors.WebhookKeyXero: "from-creds", "other": "x"}),
		secret(connectors.WebhookSecretName("a"), nil, map[string]string{connectors.WebhookKeyXero: "from-hook", connectors.WebhookKeyCredential: "c"}),
		secret("b-creds", labelled, map[string]string{"apiKey": "k"}),
		secret("c-creds", nil, map[string]string{"apiKey": "k"}),
	)
	src := SecretKeySource{Reader: c}
	sub := func(name string) Subscriber {
		return Subscriber{Key: types.NamespacedName{Namespace: ns, Name: name}, UID: types.UID(name), CredentialsSecret: name + "-creds"}
	}
	tests := []struct {
		name   string
		sub    Subscriber
		want   string
		noKeys bool
	}{
		{"the webhook Secret merged over the credentials", sub("a"), "map[apiKey:k other:x webhookCredential:c webhookKey:from-hook]", false},
		{"no webhook Secret yet", sub("b"), "map[apiKey:k]", false},
		{"credentials not labelled", sub("c"), "", true},
		{"credentials missing", sub("d"), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := src.Keys(context.Background(), tc.sub)
			if tc.noKeys {
				if !errors.Is(err, ErrNoKeys) || got != nil {
					t.Errorf("got %v, %v; want ErrNoKeys", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := map[string]string{}
			for k, v := range got {
				s[k] = string(v)
			}
			if fmt.Sprint(s) != tc.want {
				t.Errorf("got %v, want %s", s, tc.want)
			}
		})
	}
}

// Two receivers write batches while the controller consumes pending
// documents, all with optimistic concurrency: every document is either
// consumed or still pending, and the counts add up.
func TestStatusDispatcherConcurrentWriters(t *testing.T) {
	_, c := kube(t)
	ns := namespace(t, c)
	e := erpSync(ns, "s", erpv1.ConnectorKatana, "", true)
	create(t, c, e)
	// Another writer's fields must survive.
	e.Status.ObservedGeneration = 7
	e.Status.Webhooks = &erpv1.WebhookStatus{Path: "/webhooks/katana/" + string(e.UID), TargetedSyncs: 3}
	if err := c.Status().Update(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	sub := SubscriberOf(e)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const writers, batches, perBatch = 2, 15, 8
	var wg sync.WaitGroup
	for w := range writers {
		d := &StatusDispatcher{Reader: c, Client: c}
		wg.Go(func() {
			for b := range batches {
				var ts []erpv1.WebhookTarget
				for i := range perBatch {
					ts = append(ts, erpv1.WebhookTarget{Entity: "products", ID: fmt.Sprintf("w%d-b%d-%d", w, b, i), Deleted: i == 0})
				}
				now := time.Now()
				if err := d.Dispatch(ctx, Batch{Subscriber: sub, Targets: ts, FirstReceived: now, LastReceived: now, Accepted: perBatch, Rejected: 1}); err != nil {
					t.Errorf("writer %d batch %d: %v", w, b, err)
					return
				}
			}
		})
	}
	// The consumer: takes what is pending, as the controller does.
	consumed := map[string]bool{}
	takes, conflicts := 0, 0
	stop := make(chan struct{})
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var cur erpv1.ErpSync
			if err := c.Get(ctx, client.ObjectKeyFromObject(e), &cur); err != nil {
				t.Errorf("consumer: %v", err)
				return
			}
			if cur.Status.Webhooks == nil || len(cur.Status.Webhooks.Pending) == 0 {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			base := cur.DeepCopy()
			taken := cur.Status.Webhooks.Pending
			cur.Status.Webhooks.Pending = nil
			cur.Status.Webhooks.PendingSince = nil
			cur.Status.Webhooks.TargetedSyncs++
			err := c.Status().Patch(ctx, &cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
			switch {
			case apierrors.IsConflict(err):
				conflicts++
				continue
			case err != nil:
				t.Errorf("consumer: %v", err)
				return
			}
			takes++
			for _, tg := range taken {
				k := tg.ID
				if consumed[k] {
					t.Errorf("%s consumed twice", k)
				}
				consumed[k] = true
				if tg.Deleted != (k[len(k)-2:] == "-0") {
					t.Errorf("%s deleted %v", k, tg.Deleted)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-consumerDone

	t.Logf("the consumer took pending documents %d times and lost %d races", takes, conflicts)
	var final erpv1.ErpSync
	if err := c.Get(ctx, client.ObjectKeyFromObject(e), &final); err != nil {
		t.Fatal(err)
	}
	w := final.Status.Webhooks
	for _, tg := range w.Pending {
		if consumed[tg.ID] {
			t.Errorf("%s both consumed and pending", tg.ID)
		}
		consumed[tg.ID] = true
	}
	if len(consumed) != writers*batches*perBatch {
		t.Errorf("%d documents consumed or pending, want %d", len(consumed), writers*batches*perBatch)
	}
	if w.Accepted != writers*batches*perBatch || w.Rejected != writers*batches {
		t.Errorf("accepted %d rejected %d, want %d and %d", w.Accepted, w.Rejected, writers*batches*perBatch, writers*batches)
	}
	if w.Path != "/webhooks/katana/"+string(e.UID) || final.Status.ObservedGeneration != 7 || w.TargetedSyncs < 3 || w.LastEventAt == nil {
		t.Errorf("other fields: path %q observedGeneration %d targetedSyncs %d lastEventAt %v", w.Path, final.Status.ObservedGeneration, w.TargetedSyncs, w.LastEventAt)
	}
	if len(w.Pending) > 0 && w.PendingSince == nil {
		t.Error("pending without pendingSince")
	}
}

// A batch for an ErpSync that is gone, re-created or has webhooks off is
// dropped without a write.
func TestStatusDispatcherDrops(t *testing.T) {
	_, c := kube(t)
	ns := namespace(t, c)
	off := erpSync(ns, "off", erpv1.ConnectorKatana, "", false)
	on := erpSync(ns, "on", erpv1.ConnectorKatana, "", true)
	create(t, c, off, on)
	d := &StatusDispatcher{Reader: c, Client: c}
	now := time.Now()
	ts := []erpv1.WebhookTarget{{Entity: "products", ID: "1"}}
	tests := []struct {
		name string
		sub  Subscriber
		obj  *erpv1.ErpSync
	}{
		{"webhooks off", SubscriberOf(off), off},
		{"re-created (another UID)", Subscriber{Key: client.ObjectKeyFromObject(on), UID: "an-older-uid"}, on},
		{"gone", Subscriber{Key: types.NamespacedName{Namespace: ns, Name: "gone"}, UID: "x"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := d.Dispatch(context.Background(), Batch{Subscriber: tc.sub, Targets: ts, FirstReceived: now, LastReceived: now, Accepted: 1}); err != nil {
				t.Fatal(err)
			}
			if tc.obj == nil {
				return
			}
			var got erpv1.ErpSync
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(tc.obj), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Webhooks != nil {
				t.Errorf("status.webhooks written: %+v", got.Status.Webhooks)
			}
		})
	}
}
