package chart_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Names under release "erpsync": config/default's names.
const (
	managerName = "erpsync-controller-manager"
	webhookSvc  = "erpsync-webhook-receiver"
	metricsSvc  = "erpsync-controller-manager-metrics-service"
)

// The memory budget of config/manager/manager.yaml: 128 MiB + 112 MiB a
// concurrent sync, GOMEMLIMIT 90% of it.
func wantMemoryMiB(syncs int) int { return 128 + 112*syncs }

// manager is the rendered manager pod: its template and the container.
type manager struct {
	template corev1.PodTemplateSpec
	c        corev1.Container
}

func managerOf(t *testing.T, tmpl corev1.PodTemplateSpec) manager {
	t.Helper()
	i := slices.IndexFunc(tmpl.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		t.Fatal("no manager container")
	}
	return manager{template: tmpl, c: tmpl.Spec.Containers[i]}
}

func (m manager) hasArg(a string) bool { return slices.Contains(m.c.Args, a) }

func (m manager) argWithPrefix(p string) (string, bool) {
	for _, a := range m.c.Args {
		if v, ok := strings.CutPrefix(a, p); ok {
			return v, true
		}
	}
	return "", false
}

func (m manager) env(name string) (corev1.EnvVar, bool) {
	for _, e := range m.c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func (m manager) volume(name string) (corev1.Volume, bool) {
	for _, v := range m.template.Spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

// wantArgs fails for each argument m lacks.
func (m manager) wantArgs(t *testing.T, args ...string) {
	t.Helper()
	for _, a := range args {
		if !m.hasArg(a) {
			t.Errorf("manager args %q lack %q", m.c.Args, a)
		}
	}
}

// wantNoArgPrefix fails for each flag m sets.
func (m manager) wantNoArgPrefix(t *testing.T, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if v, ok := m.argWithPrefix(p); ok {
			t.Errorf("manager args set %s%s, want it unset", p, v)
		}
	}
}

// wantMemory checks the memory request and limit and GOMEMLIMIT.
func (m manager) wantMemory(t *testing.T, mib int) {
	t.Helper()
	want := resource.MustParse(fmt.Sprintf("%dMi", mib))
	lim, req := m.c.Resources.Limits.Memory(), m.c.Resources.Requests.Memory()
	if lim.Cmp(want) != 0 || req.Cmp(want) != 0 {
		t.Errorf("memory request %v and limit %v, want both %v", req, lim, &want)
	}
	e, ok := m.env("GOMEMLIMIT")
	if wantGo := fmt.Sprintf("%dMiB", mib*90/100); !ok || e.Value != wantGo {
		t.Errorf("GOMEMLIMIT %q, want %q (90%% of %d MiB)", e.Value, wantGo, mib)
	}
}

// selects fails unless sel selects the manager's pods.
func selects(t *testing.T, what string, sel map[string]string, pod labels.Set) {
	t.Helper()
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(pod) {
		t.Errorf("%s selector %v does not select the manager's pods %v", what, sel, pod)
	}
}

// servicePortFor returns the Service's port that targets the named
// container port, checking the container has it.
func servicePortFor(t *testing.T, svc *corev1.Service, m manager, portName string) corev1.ServicePort {
	t.Helper()
	if !slices.ContainsFunc(m.c.Ports, func(p corev1.ContainerPort) bool { return p.Name == portName }) {
		t.Fatalf("the manager container has no port %q: %+v", portName, m.c.Ports)
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() == portName {
			return p
		}
	}
	t.Fatalf("Service %s has no port targeting %q: %+v", svc.Name, portName, svc.Spec.Ports)
	return corev1.ServicePort{}
}

// configContainer is the manager container of a kind in a file of config/,
// the reference the chart reproduces.
func configContainer(t *testing.T, path, kind string) corev1.Container {
	t.Helper()
	for _, u := range readObjects(t, path) {
		if u.GetKind() != kind {
			continue
		}
		var w struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(mustJSON(t, u), &w); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		tmpl := w.Spec.Template
		return managerOf(t, tmpl).c
	}
	t.Fatalf("%s has no %s", path, kind)
	return corev1.Container{}
}

// sameAsConfig checks that the chart's container does what config's does:
// every argument config passes (the chart may add explicit defaults), the
// same ports, security context, probes and CPU.
func sameAsConfig(t *testing.T, m manager, ref corev1.Container) {
	t.Helper()
	m.wantArgs(t, ref.Args...)
	if !equality.Semantic.DeepEqual(m.c.Ports, ref.Ports) {
		t.Errorf("ports %+v, config has %+v", m.c.Ports, ref.Ports)
	}
	if !equality.Semantic.DeepEqual(m.c.SecurityContext, ref.SecurityContext) {
		t.Errorf("security context %+v, config has %+v", m.c.SecurityContext, ref.SecurityContext)
	}
	if !equality.Semantic.DeepEqual(m.c.LivenessProbe, ref.LivenessProbe) || !equality.Semantic.DeepEqual(m.c.ReadinessProbe, ref.ReadinessProbe) {
		t.Errorf("probes %+v %+v, config has %+v %+v", m.c.LivenessProbe, m.c.ReadinessProbe, ref.LivenessProbe, ref.ReadinessProbe)
	}
	if !equality.Semantic.DeepEqual(m.c.Resources, ref.Resources) {
		t.Errorf("resources %+v, config has %+v", m.c.Resources, ref.Resources)
	}
	if !equality.Semantic.DeepEqual(m.c.VolumeMounts, ref.VolumeMounts) {
		t.Errorf("volume mounts %+v, config has %+v", m.c.VolumeMounts, ref.VolumeMounts)
	}
	for _, e := range ref.Env {
		got, ok := m.env(e.Name)
		if !ok || !equality.Semantic.DeepEqual(got, e) {
			t.Errorf("env %s = %+v, config has %+v", e.Name, got, e)
		}
	}
}

// renderCase renders vals into a fresh namespace, dry-runs every object
// against the API server and returns them.
func renderCase(t *testing.T, vals string) []*unstructured.Unstructured {
	t.Helper()
	ns := namespace(t)
	objs, _, err := render(loadChart(t), parseValues(t, vals), ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("the chart rendered nothing")
	}
	for _, o := range objs {
		if namespaced(o) && o.GetNamespace() != ns {
			t.Errorf("%s %s is in namespace %q, want the release's %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
	}
	dryRunApply(t, objs)
	return objs
}

func namespaced(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace":
		return false
	}
	return true
}

func TestDefaults(t *testing.T) {
	objs := renderCase(t, ``)
	d := find[appsv1.Deployment](t, objs, "Deployment", managerName)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2 (leader and warm standby)", d.Spec.Replicas)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("rolling update %+v, want maxUnavailable 0, maxSurge 1", ru)
	}
	m := managerOf(t, d.Spec.Template)
	sameAsConfig(t, m, configContainer(t, filepath.Join(configDir, "manager", "manager.yaml"), "Deployment"))
	m.wantArgs(t, "--leader-elect", "--concurrent-syncs=4", "--max-syncs-per-namespace=2",
		"--sink=postgres", "--sink-postgres-dsn-file=/etc/erpsync/sink/dsn", "--webhook-bind-address=:8090")
	m.wantNoArgPrefix(t, "--shards", "--max-syncs-in-progress", "--webhook-public-url", "--webhook-trusted-proxies")
	m.wantMemory(t, wantMemoryMiB(4))
	if m.c.Image != "ghcr.io/erpsync/erpsync-operator:latest" {
		t.Errorf("image %q", m.c.Image)
	}
	if v, ok := m.volume("sink"); !ok || v.Secret == nil || v.Secret.SecretName != "erpsync-sink" {
		t.Errorf("sink volume %+v, want the Secret erpsync-sink", v)
	}
	pod := labels.Set(d.Spec.Template.Labels)
	selects(t, "Deployment", d.Spec.Selector.MatchLabels, pod)
	if d.Spec.Template.Spec.ServiceAccountName != managerName {
		t.Errorf("service account %q", d.Spec.Template.Spec.ServiceAccountName)
	}

	metrics := find[corev1.Service](t, objs, "Service", metricsSvc)
	selects(t, "metrics Service", metrics.Spec.Selector, pod)
	if p := servicePortFor(t, metrics, m, "https-metrics"); p.Port != 8443 || p.Name != "https" {
		t.Errorf("metrics Service port %+v, want https 8443", p)
	}
	hooks := find[corev1.Service](t, objs, "Service", webhookSvc)
	selects(t, "webhook Service", hooks.Spec.Selector, pod)
	if p := servicePortFor(t, hooks, m, "webhooks"); p.Port != 80 || p.Name != "http" {
		t.Errorf("webhook Service port %+v, want http 80", p)
	}
	pdb := find[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", managerName)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB %+v, want minAvailable 1", pdb.Spec)
	}
	selects(t, "PDB", pdb.Spec.Selector.MatchLabels, pod)

	// The manager's RBAC is config/rbac/role.yaml's, bound to its account.
	var refCluster, refNS []rbacv1.PolicyRule
	for _, u := range readObjects(t, filepath.Join(configDir, "rbac", "role.yaml")) {
		var r rbacv1.ClusterRole // a Role has the same rules field
		if err := yaml.Unmarshal(mustJSON(t, u), &r); err != nil {
			t.Fatal(err)
		}
		if u.GetKind() == "ClusterRole" {
			refCluster = r.Rules
		} else {
			refNS = r.Rules
		}
	}
	cr := find[rbacv1.ClusterRole](t, objs, "ClusterRole", "erpsync-manager-role")
	if !equality.Semantic.DeepEqual(cr.Rules, refCluster) {
		t.Errorf("ClusterRole rules %+v, config/rbac has %+v", cr.Rules, refCluster)
	}
	role := find[rbacv1.Role](t, objs, "Role", "erpsync-manager-role")
	if !equality.Semantic.DeepEqual(role.Rules, refNS) {
		t.Errorf("Role rules %+v, config/rbac has %+v", role.Rules, refNS)
	}
	crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "erpsync-manager-rolebinding")
	if len(crb.Subjects) != 1 || crb.Subjects[0].Name != managerName || crb.RoleRef.Name != cr.Name {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
	find[corev1.ServiceAccount](t, objs, "ServiceAccount", managerName)
	for _, r := range []string{"admin", "editor", "viewer"} {
		find[rbacv1.ClusterRole](t, objs, "ClusterRole", "erpsync-"+r+"-role")
	}

	for _, kind := range []string{"StatefulSet", "Ingress", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if o := ofKind(objs, kind); len(o) > 0 {
			t.Errorf("defaults render %s, want none: %s", kind, inventory(o))
		}
	}
}

func mustJSON(t *testing.T, u *unstructured.Unstructured) []byte {
	t.Helper()
	b, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSharded(t *testing.T) {
	objs := renderCase(t, `
replicas: 3
sharding:
  enabled: true
`)
	if d := ofKind(objs, "Deployment"); len(d) > 0 {
		t.Errorf("sharded renders a Deployment: %s", inventory(d))
	}
	s := find[appsv1.StatefulSet](t, objs, "StatefulSet", managerName)
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", s.Spec.Replicas)
	}
	if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("pod management %q, want Parallel", s.Spec.PodManagementPolicy)
	}
	m := managerOf(t, s.Spec.Template)
	sameAsConfig(t, m, configContainer(t, filepath.Join(configDir, "sharded", "statefulset.yaml"), "StatefulSet"))
	m.wantArgs(t, "--shards=3", "--leader-elect=false")
	if m.hasArg("--leader-elect") {
		t.Error("sharded replicas run leader election")
	}
	if e, ok := m.env("POD_NAME"); !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("POD_NAME %+v, want the pod's name (its ordinal is its shard)", e)
	}
	m.wantMemory(t, wantMemoryMiB(4))
	pod := labels.Set(s.Spec.Template.Labels)
	headless := find[corev1.Service](t, objs, "Service", s.Spec.ServiceName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("governing Service %s is not headless", headless.Name)
	}
	selects(t, "governing Service", headless.Spec.Selector, pod)
	selects(t, "webhook Service", find[corev1.Service](t, objs, "Service", webhookSvc).Spec.Selector, pod)
	pdb := find[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", managerName)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB %+v, want maxUnavailable 1", pdb.Spec)
	}
	role := find[rbacv1.Role](t, objs, "Role", "erpsync-shard-lease-role")
	if len(role.Rules) != 1 || !slices.Contains(role.Rules[0].Resources, "leases") || !slices.Contains(role.Rules[0].Verbs, "list") {
		t.Errorf("shard lease Role %+v", role.Rules)
	}
	rb := find[rbacv1.RoleBinding](t, objs, "RoleBinding", "erpsync-shard-lease-rolebinding")
	if len(rb.Subjects) != 1 || rb.Subjects[0].Name != managerName {
		t.Errorf("shard lease RoleBinding subjects %+v", rb.Subjects)
	}
}

func TestConcurrency(t *testing.T) {
	objs := renderCase(t, `
concurrency:
  concurrentSyncs: 8
  maxSyncsInProgress: 64
  maxSyncsPerNamespace: 3
`)
	m := managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
	m.wantArgs(t, "--concurrent-syncs=8", "--max-syncs-in-progress=64", "--max-syncs-per-namespace=3")
	m.wantMemory(t, 1024) // config/manager's comment: 1024Mi at 8

	// The formula at other concurrencies, and an explicit memory.
	ch := loadChart(t)
	for _, tc := range []struct {
		vals string
		mib  int
	}{
		{"concurrency: {concurrentSyncs: 1}", wantMemoryMiB(1)},
		{"concurrency: {concurrentSyncs: 2}", wantMemoryMiB(2)},
		{"concurrency: {concurrentSyncs: 16}", wantMemoryMiB(16)},
		{"resources: {memoryMiB: 3000}", 3000},
	} {
		objs, _, err := render(ch, parseValues(t, tc.vals), "erpsync-system")
		if err != nil {
			t.Fatalf("%s: %v", tc.vals, err)
		}
		m := managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
		m.wantMemory(t, tc.mib)
	}
}

func TestWebhookIngress(t *testing.T) {
	objs := renderCase(t, `
webhookReceiver:
  trustedProxies: [10.0.0.0/8, 192.168.7.5]
  ingress:
    enabled: true
    host: hooks.acme.test
    tlsSecretName: hooks-tls
`)
	m := managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
	m.wantArgs(t, "--webhook-public-url=https://hooks.acme.test", "--webhook-trusted-proxies=10.0.0.0/8,192.168.7.5")
	ing := find[networkingv1.Ingress](t, objs, "Ingress", webhookSvc)
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "hooks.acme.test" || ing.Spec.Rules[0].HTTP == nil {
		t.Fatalf("Ingress rules %+v", ing.Spec.Rules)
	}
	paths := ing.Spec.Rules[0].HTTP.Paths
	if len(paths) != 1 || paths[0].Path != "/webhooks/" || paths[0].PathType == nil || *paths[0].PathType != networkingv1.PathTypePrefix {
		t.Errorf("Ingress paths %+v, want only the /webhooks/ prefix", paths)
	}
	be := paths[0].Backend.Service
	svc := find[corev1.Service](t, objs, "Service", webhookSvc)
	if be == nil || be.Name != svc.Name || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == be.Port.Name }) {
		t.Errorf("Ingress backend %+v does not reach the webhook Service's ports %+v", be, svc.Spec.Ports)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "hooks-tls" || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"hooks.acme.test"}) {
		t.Errorf("Ingress TLS %+v", ing.Spec.TLS)
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingress class %v", ing.Spec.IngressClassName)
	}

	// An explicit public URL wins over the Ingress host.
	objs, _, err := render(loadChart(t), parseValues(t, `
webhookReceiver:
  publicURL: https://erp-hooks.example.com
  ingress: {enabled: true, host: hooks.acme.test}
`), "erpsync-system")
	if err != nil {
		t.Fatal(err)
	}
	m = managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
	m.wantArgs(t, "--webhook-public-url=https://erp-hooks.example.com")
}

func TestPostgresSink(t *testing.T) {
	objs := renderCase(t, `
sink:
  kind: postgres
  secretName: crm-db
  postgres: {schema: crm, maxConns: 8}
`)
	m := managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
	m.wantArgs(t, "--sink=postgres", "--sink-postgres-dsn-file=/etc/erpsync/sink/dsn", "--sink-postgres-schema=crm", "--sink-postgres-max-conns=8")
	m.wantNoArgPrefix(t, "--sink-webhook", "--sink-sqlite")
	if v, ok := m.volume("sink"); !ok || v.Secret == nil || v.Secret.SecretName != "crm-db" {
		t.Errorf("sink volume %+v, want the Secret crm-db", v)
	}
}

func TestWebhookSink(t *testing.T) {
	objs := renderCase(t, `
sink:
  kind: webhook
  webhook: {url: "https://crm.example.com/ingest"}
`)
	m := managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
	m.wantArgs(t, "--sink=webhook", "--sink-webhook-url=https://crm.example.com/ingest", "--sink-webhook-key-file=/etc/erpsync/sink/key")
	m.wantNoArgPrefix(t, "--sink-postgres", "--sink-sqlite", "--sink-webhook-allow-http")
	if v, ok := m.volume("sink"); !ok || v.Secret == nil || v.Secret.SecretName != "erpsync-sink" {
		t.Errorf("sink volume %+v, want the Secret erpsync-sink", v)
	}
}

func TestSQLiteSink(t *testing.T) {
	objs := renderCase(t, `
replicas: 1
sink:
  kind: sqlite
  sqlite: {existingClaim: erpsync-data}
`)
	m := managerOf(t, find[appsv1.Deployment](t, objs, "Deployment", managerName).Spec.Template)
	m.wantArgs(t, "--sink=sqlite", "--sink-sqlite-path=/data/erpsync.db")
	if v, ok := m.volume("data"); !ok || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "erpsync-data" {
		t.Errorf("data volume %+v, want the claim erpsync-data", v)
	}
	if _, ok := m.volume("sink"); ok {
		t.Error("the sqlite sink mounts a sink Secret")
	}
}

func TestMonitoring(t *testing.T) {
	objs := renderCase(t, `
networkPolicy:
  enabled: true
  ingressFrom:
  - namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: monitoring}
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
  prometheusServiceAccount: {name: prometheus-k8s, namespace: monitoring}
prometheusRule:
  enabled: true
  labels: {release: prometheus}
`)
	d := find[appsv1.Deployment](t, objs, "Deployment", managerName)
	pod := labels.Set(d.Spec.Template.Labels)
	metrics := find[corev1.Service](t, objs, "Service", metricsSvc)

	sm := lookup(objs, "ServiceMonitor", managerName)
	if sm == nil {
		t.Fatalf("no ServiceMonitor: %s", inventory(objs))
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if !labels.SelectorFromSet(sel).Matches(labels.Set(metrics.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the metrics Service %v", sel, metrics.Labels)
	}
	for _, svc := range ofKind(objs, "Service") {
		if svc.GetName() != metrics.Name && labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
			t.Errorf("ServiceMonitor selector %v also selects the Service %s", sel, svc.GetName())
		}
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", eps)
	}
	ep, ok := eps[0].(map[string]any)
	if !ok {
		t.Fatalf("ServiceMonitor endpoint %v", eps[0])
	}
	if ep["port"] != metrics.Spec.Ports[0].Name || ep["scheme"] != "https" {
		t.Errorf("ServiceMonitor endpoint %v, want https on the metrics Service's port %q", ep, metrics.Spec.Ports[0].Name)
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}
	crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "erpsync-metrics-reader")
	if crb.RoleRef.Name != "erpsync-metrics-reader" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "prometheus-k8s" || crb.Subjects[0].Namespace != "monitoring" {
		t.Errorf("metrics reader binding %+v", crb)
	}

	// The PrometheusRule holds config/prometheus/alerts.yaml's groups.
	pr := lookup(objs, "PrometheusRule", "erpsync-alerts")
	if pr == nil {
		t.Fatalf("no PrometheusRule: %s", inventory(objs))
	}
	got, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	b, err := os.ReadFile(filepath.Join(configDir, "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Groups) == 0 || !equality.Semantic.DeepEqual(got, ref.Groups) {
		t.Errorf("PrometheusRule groups\n%v\nwant config/prometheus/alerts.yaml's\n%v", got, ref.Groups)
	}

	np := find[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", managerName)
	selects(t, "NetworkPolicy", np.Spec.PodSelector.MatchLabels, pod)
	m := managerOf(t, d.Spec.Template)
	var in []int
	for _, r := range np.Spec.Ingress {
		if len(r.From) != 1 || r.From[0].NamespaceSelector == nil {
			t.Errorf("ingress rule from %+v, want the monitoring namespace", r.From)
		}
		for _, p := range r.Ports {
			in = append(in, p.Port.IntValue())
		}
	}
	for _, p := range m.c.Ports {
		if !slices.Contains(in, int(p.ContainerPort)) {
			t.Errorf("the NetworkPolicy does not admit the container port %s %d (admits %v)", p.Name, p.ContainerPort, in)
		}
	}
	var out []int
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			out = append(out, p.Port.IntValue())
		}
	}
	for _, p := range []int{53, 6443, 5432, 443} {
		if !slices.Contains(out, p) {
			t.Errorf("NetworkPolicy egress ports %v lack %d", out, p)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	vals := `grafanaDashboard: {enabled: true}`
	ch := loadChart(t)
	var shipped []byte
	for _, f := range ch.Files {
		if f.Name == "files/dashboard.json" {
			shipped = f.Data
		}
	}
	if shipped == nil {
		// Until config/grafana/erpsync.json lands and is copied, enabling
		// the dashboard fails with what to do.
		_, _, err := render(ch, parseValues(t, vals), "erpsync-system")
		if err == nil || !strings.Contains(err.Error(), "files/dashboard.json") {
			t.Errorf("enabling the dashboard without files/dashboard.json: %v, want an error naming the file", err)
		}
		shipped = []byte(`{"title": "ErpSync", "panels": [{"type": "timeseries", "targets": [{"expr": "sum(rate(erpsync_syncs_total[5m]))"}]}]}`)
		ch.Files = append(ch.Files, &common.File{Name: "files/dashboard.json", Data: shipped})
	}
	ns := namespace(t)
	objs, _, err := render(ch, parseValues(t, vals), ns)
	if err != nil {
		t.Fatal(err)
	}
	dryRunApply(t, objs)
	cm := find[corev1.ConfigMap](t, objs, "ConfigMap", "erpsync-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard", cm.Labels)
	}
	if got := cm.Data["erpsync.json"]; got != strings.TrimRight(string(shipped), "\n") {
		t.Errorf("dashboard ConfigMap holds %q, want files/dashboard.json", got)
	}
}

// TestInvalidValues: values the manager would refuse fail the install,
// with a message naming the value.
func TestInvalidValues(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ vals, want string }{
		{`sink: {kind: mysql}`, "sink.kind"},
		{`sink: {kind: webhook}`, "sink.webhook.url"},
		{`sink: {kind: webhook, webhook: {url: "http://crm.example.com"}}`, "not https"},
		{`{replicas: 1, sink: {kind: sqlite}}`, "existingClaim"},
		{`sink: {kind: sqlite, sqlite: {existingClaim: data}}`, "one replica"},
		{`replicas: 0`, "replicas"},
		{`concurrency: {concurrentSyncs: 0}`, "concurrentSyncs"},
		{`webhookReceiver: {publicURL: "http://hooks.example.com"}`, "https"},
		{`goMemLimitPercent: 120`, "goMemLimitPercent"},
		{`serviceMonitor: {prometheusServiceAccount: {name: prometheus}}`, "namespace"},
	} {
		_, _, err := render(ch, parseValues(t, tc.vals), "erpsync-system")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %s: error %v, want one mentioning %q", tc.vals, err, tc.want)
		}
	}
}

// TestLint runs Helm's own linter (`helm lint --strict`) with the default
// values and with everything on.
func TestLint(t *testing.T) {
	for _, vals := range []string{``, `
sharding: {enabled: true}
replicas: 3
networkPolicy: {enabled: true}
serviceMonitor: {enabled: true}
prometheusRule: {enabled: true}
webhookReceiver: {ingress: {enabled: true}}
`} {
		kv, err := kubeVersion()
		if err != nil {
			t.Fatal(err)
		}
		res := lint.RunAll(chartDir, parseValues(t, vals), "erpsync-system", lint.WithKubeVersion(kv))
		for _, msg := range res.Messages {
			if msg.Severity >= support.WarningSev {
				t.Errorf("helm lint (values %q): %v", vals, msg)
			}
		}
	}
}

// TestNotes renders NOTES.txt, which `helm install` prints.
func TestNotes(t *testing.T) {
	_, out, err := render(loadChart(t), nil, "erpsync-system")
	if err != nil {
		t.Fatal(err)
	}
	notes := out["erpsync-operator/templates/NOTES.txt"]
	for _, want := range []string{"kubectl -n erpsync-system create secret generic erpsync-sink", "crds/"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
}

// TestChartCopiesMatchConfig: Helm reads only files inside the chart, so
// the chart keeps copies; they must equal their sources (as
// hack/verify-chart.sh, run by make verify, checks; --fix copies them).
func TestChartCopiesMatchConfig(t *testing.T) {
	crds, err := filepath.Glob(filepath.Join(configDir, "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	chartCRDs, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(chartCRDs) != len(crds) {
		t.Errorf("the chart has CRDs %v, config/crd/bases %v", chartCRDs, crds)
	}
	pairs := [][2]string{
		{filepath.Join(configDir, "rbac", "role.yaml"), filepath.Join(chartDir, "files", "role.yaml")},
		{filepath.Join(configDir, "prometheus", "alerts.yaml"), filepath.Join(chartDir, "files", "alerts.yaml")},
	}
	for _, c := range crds {
		pairs = append(pairs, [2]string{c, filepath.Join(chartDir, "crds", filepath.Base(c))})
	}
	if dash := filepath.Join(configDir, "grafana", "erpsync.json"); exists(dash) {
		pairs = append(pairs, [2]string{dash, filepath.Join(chartDir, "files", "dashboard.json")})
	}
	for _, p := range pairs {
		want, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p[1])
		if err != nil {
			t.Errorf("%v: copy it with hack/verify-chart.sh --fix", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run hack/verify-chart.sh --fix and commit", p[1], p[0])
		}
	}
	// What Helm loads as the chart's CRD is that file.
	ch := loadChart(t)
	if objs := ch.CRDObjects(); len(objs) != len(crds) {
		t.Errorf("Helm loads %d CRDs from the chart, want %d", len(objs), len(crds))
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestPodSecurityWarningsAreSeen shows that the dry runs above would see
// a Pod Security violation: a privileged pod template warns in the same
// kind of namespace.
func TestPodSecurityWarningsAreSeen(t *testing.T) {
	ns := namespace(t)
	objs, _, err := render(loadChart(t), nil, ns)
	if err != nil {
		t.Fatal(err)
	}
	u := lookup(objs, "Deployment", managerName)
	if u == nil {
		t.Fatalf("no Deployment: %s", inventory(objs))
	}
	d := u.DeepCopy()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c, ok := cs[0].(map[string]any)
	if !ok {
		t.Fatalf("container %v", cs[0])
	}
	c["securityContext"] = map[string]any{"privileged": true}
	if err := unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	warned.take()
	ctx := t.Context()
	if err := k8s.Create(ctx, d, dryRun()...); err != nil {
		t.Fatal(err)
	}
	if w := warned.take(); len(w) == 0 || !strings.Contains(strings.Join(w, " "), "privileged") {
		t.Errorf("a privileged pod template gave warnings %q, want a Pod Security warning", w)
	}
}
