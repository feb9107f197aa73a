package quotastore

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

func TestNameIsADNSLabel(t *testing.T) {
	for _, key := range []string{httpapi.Key("xero", "client", "tenant"), "Cin7Core:ABC/def", "x"} {
		n := Name(key)
		if len(n) > 63 || n != Name(key) {
			t.Fatalf("Name(%q) = %q", key, n)
		}
		for _, r := range n {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				t.Fatalf("Name(%q) = %q has %q", key, n, r)
			}
		}
	}
	if Name(httpapi.Key("xero", "a")) == Name(httpapi.Key("xero", "b")) {
		t.Fatal("different credentials share a ConfigMap")
	}
	// Keys that differ only at their end (the secret's digest and the
	// host that httpapi appends) or in punctuation get their own
	// ConfigMaps.
	long := httpapi.Key("cin7omni", "user") + "/0123456789abcdef@"
	for _, pair := range [][2]string{
		{long + "api.cin7.com", long + "evil.example.com"},
		{long + "127.0.0.1:8080", long + "127.0.0.1:8081"},
		{"cin7omni:a/b", "cin7omni:a-b"},
	} {
		if Name(pair[0]) == Name(pair[1]) {
			t.Errorf("%q and %q share the ConfigMap %s", pair[0], pair[1], Name(pair[0]))
		}
	}
}

// The API server of the envtest tests, started once for the package.
var (
	envOnce sync.Once
	env     *envtest.Environment
	envCfg  *rest.Config
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}

// realAPIServer returns a client of a real API server and a fresh namespace.
func realAPIServer(t *testing.T) (client.Client, string) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run with `make test`")
	}
	envOnce.Do(func() {
		env = &envtest.Environment{}
		envCfg, envErr = env.Start()
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	c, err := client.New(envCfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "quota-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return c, ns.Name
}

// TestCountersSurviveARestart runs the store against a real API server: a
// restarted manager loads what the first counted, and a damaged ConfigMap
// does not stop syncs.
func TestCountersSurviveARestart(t *testing.T) {
	g := NewWithT(t)
	c, ns := realAPIServer(t)
	ctx := context.Background()
	clock := httpapi.NewFakeClock(time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC))
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	v := newVendor(t, clock)
	lim := httpapi.Limit{Key: httpapi.Key("cin7omni", "user"), Quotas: []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}}

	s1 := &ConfigMapStore{Reader: c, Writer: c, Namespace: ns, FlushEvery: time.Hour, Now: clock.Now}
	got, err := s1.Load(ctx, lim.Key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeEmpty())
	c1, err := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(s1), Clock: clock, Limits: []httpapi.Limit{lim}})
	g.Expect(err).NotTo(HaveOccurred())
	call(t, c1, v.srv.URL, 2)

	// The first call reserved a block of 100: the ConfigMap holds it for
	// this process, nothing spent yet.
	var cm corev1.ConfigMap
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: Name(lim.Key)}, &cm)).To(Succeed())
	g.Expect(cm.Labels).To(HaveKeyWithValue(LabelKey, "true"))
	stored, err := decode(cm.Data[dataKey])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stored["day"].Used).To(BeZero())
	g.Expect(stored["day"].Held).To(Equal(map[string]int64{s1.holderID(): 100}))
	// The store itself sees its latest counts.
	got, err = s1.Load(ctx, lim.Key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got["day"].Used).To(Equal(int64(2)))

	// Stopping the manager writes the calls spent and returns the rest.
	stop, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- s1.Start(stop) }()
	cancel()
	g.Expect(<-done).To(Succeed())
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: Name(lim.Key)}, &cm)).To(Succeed())
	stored, err = decode(cm.Data[dataKey])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stored["day"].Used).To(Equal(int64(2)))
	g.Expect(stored["day"].Held).To(BeEmpty())

	// A restarted manager loads the counts.
	s2 := &ConfigMapStore{Reader: c, Writer: c, Namespace: ns, Now: clock.Now}
	got, err = s2.Load(ctx, lim.Key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got["day"]).To(Equal(httpapi.QuotaUsage{PeriodStart: day, Used: 2}))

	// A damaged ConfigMap does not stop syncs.
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: Name(lim.Key)}, &cm)).To(Succeed())
	cm.Data[dataKey] = "{not json"
	g.Expect(c.Update(ctx, &cm)).To(Succeed())
	got, err = s2.Load(ctx, lim.Key)
	g.Expect(err).NotTo(HaveOccurred())
	// Quotas count afresh; the windows' calls are lost, so they are spent.
	g.Expect(got).To(HaveLen(1))
	g.Expect(got).To(HaveKey(httpapi.EveryWindow))
	// The next write rewrites it.
	c2, err := httpapi.New(httpapi.Options{Registry: httpapi.NewRegistry(s2), Clock: clock, Limits: []httpapi.Limit{lim}})
	g.Expect(err).NotTo(HaveOccurred())
	call(t, c2, v.srv.URL, 1)
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: Name(lim.Key)}, &cm)).To(Succeed())
	stored, err = decode(cm.Data[dataKey])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stored["day"].Held).To(HaveKeyWithValue(s2.holderID(), int64(100)))
}
