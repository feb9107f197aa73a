// Package chart_test renders the Helm chart charts/erpsync-operator with
// Helm's own Go library (the engine `helm install` and `helm template` use)
// under representative values, and applies every rendered object to a real
// API server (envtest) with a server-side dry run and strict field
// validation, so that a template producing an invalid or unknown field
// fails `make test`. It also keeps the chart's copies of the CRD, the RBAC
// rules and the alerts equal to config/.
//
//	KUBEBUILDER_ASSETS=$(hack/build-k8s-binaries.sh) go test ./test/chart/
package chart_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/erpsync/erpsync-operator/internal/manifests"
)

const (
	// chartDir is the chart under test, from this package's directory.
	chartDir = "../../charts/erpsync-operator"
	// configDir is the kustomize tree the chart is built from.
	configDir = "../../config"
	// release is the release name the tests install under: the one the
	// README uses, which names things as config/default does.
	release = "erpsync"
)

var (
	scheme = runtime.NewScheme()
	k8s    client.Client
	warned = &warnings{}
	// serverVersion is the test API server's git version.
	serverVersion string
)

// warnings records the API server's warnings (deprecated APIs, Pod
// Security "restricted" violations), which the tests treat as failures.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run with KUBEBUILDER_ASSETS=$(hack/build-k8s-binaries.sh) (make test sets it)")
		return 1
	}
	// The chart's own CRD (what `helm install` creates), and the Prometheus
	// Operator's CRDs for the ServiceMonitor and PrometheusRule.
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(chartDir, "crds"), filepath.Join("testdata", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()
	c := rest.CopyConfig(cfg)
	c.WarningHandler = nil
	c.WarningHandlerWithContext = warned
	k8s, err = client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "discovery client: %v\n", err)
		return 1
	}
	v, err := dc.ServerVersion()
	if err != nil {
		fmt.Fprintf(os.Stderr, "the API server's version: %v\n", err)
		return 1
	}
	serverVersion = v.GitVersion
	return m.Run()
}

// loadChart loads the chart from its directory, as `helm install <dir>`.
func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// parseValues reads a values document (what a user passes with -f).
func parseValues(t *testing.T, doc string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &vals); err != nil {
		t.Fatalf("values %q: %v", doc, err)
	}
	return vals
}

// render renders the chart as `helm template` would for a release named
// release in namespace ns, and returns the objects of every template, in
// the templates' order. Strict: a template reading a value the chart does
// not define fails.
func render(ch *chartv2.Chart, vals map[string]any, ns string) ([]*unstructured.Unstructured, map[string]string, error) {
	opts := common.ReleaseOptions{Name: release, Namespace: ns, Revision: 1, IsInstall: true}
	kv, err := kubeVersion()
	if err != nil {
		return nil, nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	rv, err := util.ToRenderValues(ch, vals, opts, caps)
	if err != nil {
		return nil, nil, fmt.Errorf("values: %w", err)
	}
	out, err := engine.Engine{Strict: true}.RenderWithContext(context.Background(), ch, rv)
	if err != nil {
		return nil, nil, fmt.Errorf("rendering: %w", err)
	}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	var objs []*unstructured.Unstructured
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		docs, err := manifests.Decode(strings.NewReader(out[name]))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		objs = append(objs, docs...)
	}
	return objs, out, nil
}

// kubeVersion is the version of the test API server, which the chart is
// rendered and linted for (as `helm install` renders for its cluster).
func kubeVersion() (*common.KubeVersion, error) {
	kv, err := common.ParseKubeVersion(serverVersion)
	if err != nil {
		return nil, fmt.Errorf("the API server's version %q: %w", serverVersion, err)
	}
	return kv, nil
}

// namespace creates a release namespace that warns about pods the Pod
// Security "restricted" profile would refuse (the manager's namespace in
// config/manager enforces it).
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "erpsync-chart-",
		Labels:       map[string]string{"pod-security.kubernetes.io/warn": "restricted"},
	}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// dryRunApply sends every object to the API server as a server-side dry
// run with strict field validation: admission, schema validation (the
// CRDs' too) and defaulting run, nothing is stored. An error or a warning
// fails the test.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	warned.take()
	for _, o := range objs {
		err := k8s.Create(ctx, o.DeepCopy(), dryRun()...)
		if err != nil {
			t.Errorf("dry-run apply of %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		for _, w := range warned.take() {
			t.Errorf("dry-run apply of %s %s: the API server warned: %s", o.GetKind(), o.GetName(), w)
		}
	}
}

// dryRun are the options of a server-side dry run that refuses unknown and
// duplicate fields.
func dryRun() []client.CreateOption {
	return []client.CreateOption{client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict)}
}

// find returns the one rendered object of a kind and name, converted to T.
func find[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	u := lookup(objs, kind, name)
	if u == nil {
		t.Fatalf("no %s %s rendered; got %s", kind, name, inventory(objs))
	}
	out, err := manifests.As[T](u)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lookup(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func inventory(objs []*unstructured.Unstructured) string {
	var s []string
	for _, o := range objs {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(s, ", ")
}

// readObjects reads the objects of a YAML file under config/.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.DecodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
