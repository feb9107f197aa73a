// Package manager_test checks the manager's Deployment and its
// PodDisruptionBudget against the promises the README makes: a warm
// standby, rollouts without a gap, a bounded scratch volume and a memory
// limit computed from the sync concurrency.
package manager_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/erpsync/erpsync-operator/internal/manifests"
)

// The memory budget the Deployment's comment states: perSyncMiB is what
// hack/bench.d/memory.sh measured a sync to take (97 MiB) with headroom.
const (
	baseMiB    = 128
	perSyncMiB = 112
)

func decode[T any](t *testing.T, path, kind string) *T {
	t.Helper()
	objs, err := manifests.DecodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := manifests.First(objs, kind)
	if u == nil {
		t.Fatalf("%s has no %s", path, kind)
	}
	out, err := manifests.As[T](u)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func TestDeployment(t *testing.T) {
	d := decode[appsv1.Deployment](t, "manager.yaml", "Deployment")
	spec := d.Spec
	if spec.Replicas == nil || *spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2 (leader and warm standby)", spec.Replicas)
	}
	ru := spec.Strategy.RollingUpdate
	if spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 0 and maxSurge 1", spec.Strategy)
	}
	pod := spec.Template.Spec
	if len(pod.TopologySpreadConstraints) == 0 && (pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil) {
		t.Error("the replicas are not spread over nodes")
	}
	for _, c := range pod.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil || !sel.Matches(labels.Set(spec.Template.Labels)) {
			t.Errorf("spread constraint %s does not select the pods (%v)", c.TopologyKey, err)
		}
	}
	var scratch bool
	for _, v := range pod.Volumes {
		if v.EmptyDir != nil {
			scratch = true
			if v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.IsZero() {
				t.Errorf("emptyDir %s has no size limit", v.Name)
			}
		}
	}
	if !scratch {
		t.Error("no scratch volume")
	}
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		t.Fatal("no manager container")
	}
	c := pod.Containers[i]
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("args %v lack --leader-elect", c.Args)
	}
	syncs := 4 // the manager's default
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--concurrent-syncs="); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("--concurrent-syncs=%q", v)
			}
			syncs = n
		}
	}
	limit := c.Resources.Limits.Memory()
	need := resource.MustParse(fmt.Sprintf("%dMi", baseMiB+syncs*perSyncMiB))
	if limit.IsZero() || limit.Cmp(need) < 0 {
		t.Errorf("memory limit %v is below %v, the budget of %d syncs", limit, &need, syncs)
	}
	if req := c.Resources.Requests.Memory(); req.Cmp(*limit) != 0 {
		t.Errorf("memory request %v differs from the limit %v", req, limit)
	}
	var gomem string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomem = e.Value
		}
	}
	v, ok := strings.CutSuffix(gomem, "MiB")
	n, err := strconv.Atoi(v)
	if !ok || err != nil || int64(n)<<20 >= limit.Value() || int64(n)<<20 < limit.Value()*8/10 {
		t.Errorf("GOMEMLIMIT %q, want between 80%% and 100%% of the limit %v", gomem, limit)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	d := decode[appsv1.Deployment](t, "manager.yaml", "Deployment")
	pdb := decode[policyv1.PodDisruptionBudget](t, "pdb.yaml", "PodDisruptionBudget")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB %+v, want minAvailable 1", pdb.Spec)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the PDB's selector %v does not select the manager's pods %v (%v)", pdb.Spec.Selector, d.Spec.Template.Labels, err)
	}
	if pdb.Namespace != d.Namespace {
		t.Errorf("PDB in %q, Deployment in %q", pdb.Namespace, d.Namespace)
	}
	k, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kz struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(k, &kz); err != nil || !slices.Contains(kz.Resources, "pdb.yaml") {
		t.Errorf("kustomization.yaml resources %v lack pdb.yaml (%v)", kz.Resources, err)
	}
}

// TestWebhookReceiverService: the receiver has its own container port
// (never the metrics port), and its Service reaches every replica on it.
func TestWebhookReceiverService(t *testing.T) {
	d := decode[appsv1.Deployment](t, "manager.yaml", "Deployment")
	svc := decode[corev1.Service](t, "webhook_service.yaml", "Service")
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		t.Fatal("no manager container")
	}
	c := d.Spec.Template.Spec.Containers[i]
	var port, metricsPort int32
	for _, p := range c.Ports {
		switch p.Name {
		case "webhooks":
			port = p.ContainerPort
		case "https-metrics":
			metricsPort = p.ContainerPort
		}
	}
	if port == 0 || port == metricsPort {
		t.Fatalf("webhooks port %d (metrics %d)", port, metricsPort)
	}
	if !slices.Contains(c.Args, fmt.Sprintf("--webhook-bind-address=:%d", port)) {
		t.Errorf("args %v do not bind the receiver to the webhooks port %d", c.Args, port)
	}
	if svc.Name != "webhook-receiver" || svc.Namespace != d.Namespace || len(svc.Spec.Ports) != 1 ||
		svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.String() != "webhooks" {
		t.Errorf("Service %s/%s ports %+v, want webhook-receiver port 80 to webhooks", svc.Namespace, svc.Name, svc.Spec.Ports)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("the Service's selector %v does not select the manager's pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	k, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kz struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(k, &kz); err != nil || !slices.Contains(kz.Resources, "webhook_service.yaml") {
		t.Errorf("kustomization.yaml resources %v lack webhook_service.yaml (%v)", kz.Resources, err)
	}
}
