// Package sharded_test renders config/sharded and checks the promises of
// the README's "Sharding across replicas": a StatefulSet whose replica
// count and --shards agree, each pod told its name (its shard), leader
// election off, the shard Leases writable, one replica disrupted at a
// time, and a pod template equal to config/manager's Deployment but for
// the sharding flags.
//
//	KUBEBUILDER_ASSETS=$(hack/build-k8s-binaries.sh) go test ./config/sharded/
package sharded_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/erpsync/erpsync-operator/internal/manifests"
)

// render renders a kustomization directory with kubectl's kustomize.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run with KUBEBUILDER_ASSETS=$(hack/build-k8s-binaries.sh) (make test sets it); its kubectl renders the kustomization")
	}
	objs, err := manifests.Kustomize(context.Background(), filepath.Join(assets, "kubectl"), dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// all returns the objects of a kind, decoded.
func all[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) []*T {
	t.Helper()
	var out []*T
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		v, err := manifests.As[T](o)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name {
			return "true", true
		}
	}
	return "", false
}

func TestShardedStatefulSet(t *testing.T) {
	objs := render(t, ".")
	if d := all[appsv1.Deployment](t, objs, "Deployment"); len(d) != 0 {
		t.Fatalf("config/sharded still has a Deployment (%s): the StatefulSet replaces it", d[0].Name)
	}
	sets := all[appsv1.StatefulSet](t, objs, "StatefulSet")
	if len(sets) != 1 {
		t.Fatalf("%d StatefulSets, want 1", len(sets))
	}
	ss := sets[0]
	pod := ss.Spec.Template.Spec
	c := pod.Containers[0]

	shards, ok := flagValue(c.Args, "--shards")
	n, err := strconv.Atoi(shards)
	if !ok || err != nil || ss.Spec.Replicas == nil || int32(n) != *ss.Spec.Replicas {
		t.Errorf("--shards=%q and replicas %v: they must be equal", shards, ss.Spec.Replicas)
	}
	if n < 2 {
		t.Errorf("--shards=%d: no sharding", n)
	}
	if v, ok := flagValue(c.Args, "--leader-elect"); ok && v != "false" {
		t.Errorf("--leader-elect=%s: with shards every replica must run", v)
	}
	if _, ok := flagValue(c.Args, "--shard-ordinal"); ok {
		t.Error("--shard-ordinal is set: one value for every pod; the ordinal comes from the pod's name")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["POD_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("POD_NAME is %+v, want the pod's metadata.name (its ordinal is its shard)", e)
	}
	if e := env["POD_NAMESPACE"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE is %+v, want the pod's namespace (where the shard Leases live)", e)
	}
	podLabels := labels.Set(ss.Spec.Template.Labels)

	// The governing Service is headless and selects the pods.
	var governing *corev1.Service
	for _, s := range all[corev1.Service](t, objs, "Service") {
		if s.Name == ss.Spec.ServiceName {
			governing = s
		}
	}
	switch {
	case governing == nil:
		t.Errorf("no Service %q governs the StatefulSet", ss.Spec.ServiceName)
	case governing.Spec.ClusterIP != corev1.ClusterIPNone:
		t.Errorf("Service %s has clusterIP %q, want None (headless)", governing.Name, governing.Spec.ClusterIP)
	case !labels.SelectorFromSet(governing.Spec.Selector).Matches(podLabels):
		t.Errorf("Service %s selects %v, not the pods %v", governing.Name, governing.Spec.Selector, podLabels)
	}

	// One replica disrupted at a time.
	pdbs := all[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
	if len(pdbs) != 1 || pdbs[0].Spec.MaxUnavailable == nil || pdbs[0].Spec.MaxUnavailable.IntValue() != 1 || pdbs[0].Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudgets %+v, want one with maxUnavailable 1", pdbs)
	} else if sel := pdbs[0].Spec.Selector; sel == nil || !labels.SelectorFromSet(sel.MatchLabels).Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget selects %v, not the pods", sel)
	}

	// The shard Leases: get, list, create and update in the pods' own
	// namespace, for their service account.
	var rules []rbacv1.PolicyRule
	roles := map[string]*rbacv1.Role{}
	for _, r := range all[rbacv1.Role](t, objs, "Role") {
		roles[r.Name] = r
	}
	for _, b := range all[rbacv1.RoleBinding](t, objs, "RoleBinding") {
		r := roles[b.RoleRef.Name]
		if b.Namespace != ss.Namespace || b.RoleRef.Kind != "Role" || r == nil || r.Namespace != ss.Namespace {
			continue
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == pod.ServiceAccountName && s.Namespace == ss.Namespace {
				rules = append(rules, r.Rules...)
			}
		}
	}
	for _, verb := range []string{"get", "list", "create", "update"} {
		granted := false
		for _, r := range rules {
			if slices.Contains(r.APIGroups, "coordination.k8s.io") && slices.Contains(r.Resources, "leases") && (slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
				granted = true
			}
		}
		if !granted {
			t.Errorf("the manager's service account may not %s Leases in %s", verb, ss.Namespace)
		}
	}
}

// TestShardedPodIsTheDeploymentsPod keeps the StatefulSet's pod template
// equal to config/default's Deployment's but for the sharding flags and
// POD_NAME, so that a change to one (resources, probes, security, image)
// is not forgotten in the other.
func TestShardedPodIsTheDeploymentsPod(t *testing.T) {
	deps := all[appsv1.Deployment](t, render(t, filepath.Join("..", "default")), "Deployment")
	sets := all[appsv1.StatefulSet](t, render(t, "."), "StatefulSet")
	if len(deps) != 1 || len(sets) != 1 {
		t.Fatalf("%d Deployments in config/default, %d StatefulSets in config/sharded; want one each", len(deps), len(sets))
	}
	want, got := deps[0].Spec.Template.DeepCopy(), sets[0].Spec.Template.DeepCopy()
	// The differences that are the point of the overlay.
	strip := func(p *corev1.PodTemplateSpec) {
		c := &p.Spec.Containers[0]
		c.Args = slices.DeleteFunc(c.Args, func(a string) bool {
			return a == "--leader-elect" || strings.HasPrefix(a, "--leader-elect=") || strings.HasPrefix(a, "--shards=")
		})
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAME" })
	}
	strip(want)
	strip(got)
	if !equality.Semantic.DeepEqual(want, got) {
		t.Errorf("the StatefulSet's pod template differs from the Deployment's beyond the sharding flags:\nDeployment:  %+v\nStatefulSet: %+v", want, got)
	}
}
