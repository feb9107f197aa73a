package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	// k8s reads and writes straight to the API server (no cache), as the
	// kubebuilder suites do.
	k8s    client.Client
	scheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := erpv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the controller tests with `make test`, which builds kube-apiserver and etcd and sets it")
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	return m.Run()
}

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// ctrlConfig lets every test run its own manager with the same controller
// name in one process.
func ctrlConfig() config.Controller {
	return config.Controller{SkipNameValidation: ptr.To(true)}
}

// harness is one test's namespace, fake ERP, sink and manager.
type harness struct {
	t      *testing.T
	g      *WithT
	ns     string
	erp    *fakeERP
	sink   *memory.Sink
	cancel context.CancelFunc
	done   chan struct{}
	opts   Options
	// watch lists further namespaces the manager sees (tests of several
	// tenants).
	watch []string
	// clock is the reconciler's clock: the real time plus an offset a test
	// may advance.
	clock *offsetClock
	// reconciler is the last manager's reconciler.
	reconciler *ErpSyncReconciler
	// egress is the reconciler's egress policy; nil: the default.
	egress *egress.Policy
	// claimNS is this test's namespace of durable company claims, as the
	// manager's own namespace is in production.
	claimNS string
	// statusWrites counts the reconciler's status writes.
	statusWrites atomic.Int64
	// webhookURL is the manager's --webhook-public-url.
	webhookURL string
	// shards, when set, is the manager's sharding.
	shards Sharding
}

// offsetClock is the real clock moved forward by an offset, so that a test
// can let a retry interval pass.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *offsetClock) advance(d time.Duration)         { c.off.Add(int64(d)) }

func newHarness(t *testing.T) *harness {
	t.Helper()
	g := NewWithT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "erpsync-test-"}}
	g.Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	h := &harness{t: t, g: g, ns: ns.Name, erp: newFakeERP(25), sink: memory.New(),
		opts: Options{CheckpointEvery: time.Nanosecond}, clock: &offsetClock{}}
	claims := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "erpsync-claims-"}}
	g.Expect(k8s.Create(context.Background(), claims)).To(Succeed())
	h.claimNS = claims.Name
	t.Cleanup(h.stopManager)
	return h
}

// startManager runs a manager whose cache sees only this test's namespace,
// so tests never reconcile each other's objects.
func (h *harness) startManager() {
	h.t.Helper()
	namespaces := map[string]cache.Config{h.ns: {}}
	for _, ns := range h.watch {
		namespaces[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: namespaces},
		Controller: ctrlConfig(),
	})
	h.g.Expect(err).NotTo(HaveOccurred())
	reg := connectors.NewRegistry()
	reg.Register("unleashed", h.erp.factory)
	reg.Register("katana", h.erp.factory)
	reg.RegisterWebhooks("unleashed", fakeCodec{})
	ctx, cancel := context.WithCancel(context.Background())
	r := &ErpSyncReconciler{
		Client:   countingClient{Client: mgr.GetClient(), n: &h.statusWrites},
		Recorder: mgr.GetEventRecorder("erpsync-controller"),
		Registry: reg,
		Sink:     h.sink,
		Clock:    h.clock,
		Egress:   h.egress,
		Options:  h.opts,
		// Claims are recorded as the manager records them.
		ClaimNamespace:   h.claimNS,
		WebhookPublicURL: h.webhookURL,
		Shards:           h.shards,
	}
	h.reconciler = r
	h.g.Expect(r.SetupWithManager(ctx, mgr)).To(Succeed())
	h.cancel = cancel
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		if err := mgr.Start(ctx); err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}()
}

func (h *harness) stopManager() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

// secret creates the credentials Secret, labelled as credentials.
func (h *harness) secret(name string, data map[string]string) *corev1.Secret {
	return h.secretIn(h.ns, name, data, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
}

// secretIn creates a Secret with the given labels.
func (h *harness) secretIn(ns, name string, data, labels map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, StringData: data}
	h.g.Expect(k8s.Create(context.Background(), s)).To(Succeed())
	return s
}

// namespace creates another namespace for the test.
func (h *harness) namespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "erpsync-test-"}}
	h.g.Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// erpsync creates an ErpSync with the given mutations applied.
func (h *harness) erpsync(name string, mutate ...func(*erpv1.ErpSync)) *erpv1.ErpSync {
	o := &erpv1.ErpSync{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: erpv1.ErpSyncSpec{
			CompanyID: "ACME-" + name,
			Connector: erpv1.ConnectorSpec{Type: erpv1.ConnectorUnleashed, CredentialsRef: erpv1.LocalSecretReference{Name: "creds"}},
			Interval:  metav1.Duration{Duration: time.Hour},
		},
	}
	for _, m := range mutate {
		m(o)
	}
	h.g.Expect(k8s.Create(context.Background(), o)).To(Succeed())
	return o
}

// get reads an ErpSync from the API server.
func (h *harness) get(name string) *erpv1.ErpSync {
	var o erpv1.ErpSync
	h.g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: name}, &o)).To(Succeed())
	return &o
}

// update applies mutate to the live object, retrying on conflicts.
func (h *harness) update(name string, mutate func(*erpv1.ErpSync)) {
	h.g.Eventually(func() error {
		o := h.get(name)
		mutate(o)
		return k8s.Update(context.Background(), o)
	}, 10*time.Second).Should(Succeed())
}

// events lists the events about an object.
func (h *harness) events(name string) []corev1.Event {
	var list corev1.EventList
	h.g.Expect(k8s.List(context.Background(), &list, client.InNamespace(h.ns))).To(Succeed())
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func clientKey(o client.Object) client.ObjectKey { return client.ObjectKeyFromObject(o) }

// countingClient counts the status writes made through it.
type countingClient struct {
	client.Client
	n *atomic.Int64
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingStatus{SubResourceWriter: c.Client.Status(), n: c.n}
}

type countingStatus struct {
	client.SubResourceWriter
	n *atomic.Int64
}

func (c countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	c.n.Add(1)
	return c.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (c countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	c.n.Add(1)
	return c.SubResourceWriter.Update(ctx, obj, opts...)
}
