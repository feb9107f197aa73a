package quotastore

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// TestCountersSurviveARestart runs the store against a real API server: a
// second store (a restarted manager) loads what the first saved, and saves
// are coalesced.
func TestCountersSurviveARestart(t *testing.T) {
	g := NewWithT(t)
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run with `make test`")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "quota-"}}
	g.Expect(c.Create(ctx, ns)).To(Succeed())

	key := httpapi.Key("cin7omni", "user")
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	s1 := &ConfigMapStore{Reader: c, Writer: c, Namespace: ns.Name, FlushEvery: time.Hour}
	got, err := s1.Load(ctx, key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeEmpty())

	// The first save writes at once; the next ones within FlushEvery wait.
	g.Expect(s1.Save(ctx, key, map[string]httpapi.QuotaUsage{"day": {PeriodStart: day, Used: 1}})).To(Succeed())
	g.Expect(s1.Save(ctx, key, map[string]httpapi.QuotaUsage{"day": {PeriodStart: day, Used: 2}})).To(Succeed())
	var cm corev1.ConfigMap
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: Name(key)}, &cm)).To(Succeed())
	g.Expect(cm.Data[dataKey]).To(ContainSubstring(`"used":1`))
	g.Expect(cm.Labels).To(HaveKeyWithValue(LabelKey, "true"))
	// The store itself sees its latest counts.
	got, err = s1.Load(ctx, key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got["day"].Used).To(Equal(int64(2)))

	// Stopping the manager flushes what is pending.
	stop, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- s1.Start(stop) }()
	cancel()
	g.Expect(<-done).To(Succeed())

	// A restarted manager loads the counts.
	s2 := &ConfigMapStore{Reader: c, Writer: c, Namespace: ns.Name}
	got, err = s2.Load(ctx, key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got["day"]).To(Equal(httpapi.QuotaUsage{PeriodStart: day, Used: 2}))

	// A damaged ConfigMap does not stop syncs.
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: Name(key)}, &cm)).To(Succeed())
	cm.Data[dataKey] = "{not json"
	g.Expect(c.Update(ctx, &cm)).To(Succeed())
	got, err = s2.Load(ctx, key)
	g.Expect(err).NotTo(HaveOccurred())
	// Quotas count afresh; the windows' calls are lost, so they are spent.
	g.Expect(got).To(HaveLen(1))
	g.Expect(got).To(HaveKey(httpapi.EveryWindow))
}
