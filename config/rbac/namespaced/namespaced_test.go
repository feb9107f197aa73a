// Package namespaced_test applies config/default with the
// config/rbac/namespaced component, and the tenant template to one
// onboarded namespace, to a real API server (envtest), and shows that the
// manager's service account reaches Secrets in the onboarded namespace only,
// and that no tenant can write the company claims in the manager's
// namespace.
//
//	KUBEBUILDER_ASSETS=$(hack/build-k8s-binaries.sh) go test ./config/rbac/namespaced/
package namespaced_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/erpsync/erpsync-operator/internal/manifests"
)

// The manager's service account as config/default makes it.
const (
	managerNS   = "erpsync-system"
	managerSA   = "erpsync-controller-manager"
	managerUser = "system:serviceaccount:" + managerNS + ":" + managerSA
)

var (
	cfg    *rest.Config
	admin  client.Client
	scheme = runtime.NewScheme()
)

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
	env := &envtest.Environment{}
	var err error
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()
	admin, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	return m.Run()
}

// kustomize renders a kustomization directory with kubectl's kustomize.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Kustomize(context.Background(), filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// overlay writes an overlay of config/default with this component, as a
// platform team would, and renders it.
func overlay(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	config, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// kustomize takes only relative paths to other kustomizations.
	rel, err := filepath.Rel(dir, config)
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("resources:\n- %s\ncomponents:\n- %s\n", filepath.Join(rel, "default"), filepath.Join(rel, "rbac", "namespaced"))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return kustomize(t, dir)
}

func create(t *testing.T, o client.Object) {
	t.Helper()
	if err := admin.Create(context.Background(), o); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %s %s/%s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetNamespace(), o.GetName(), err)
	}
}

func namespace(t *testing.T, name string) {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// impersonate returns a client acting as a service account.
func impersonate(t *testing.T, ns, name string) client.Client {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	k, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// eventually polls f for up to ten seconds.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// allowed asks the API server's authorizer whether user may do verb on
// group/resource (subresource after a slash) in ns ("" cluster-wide).
func allowed(t *testing.T, user, ns, verb, group, resource, sub string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Group: group, Resource: resource, Subresource: sub,
		},
	}}
	if err := admin.Create(context.Background(), sar); err != nil {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	return sar.Status.Allowed
}

// TestManagerReachesSecretsOfOnboardedNamespacesOnly deploys the manager's
// RBAC with the component and onboards one namespace with the tenant
// template: the manager may read and update a labelled Secret there, and
// may not in a namespace that was not onboarded, nor list Secrets across
// the cluster; what it needs cluster-wide (ErpSyncs and their status) and
// in its own namespace (claims, quotas) stays.
func TestManagerReachesSecretsOfOnboardedNamespacesOnly(t *testing.T) {
	ctx := context.Background()
	const onboarded, other = "tenant-onboarded", "tenant-other"
	namespace(t, managerNS)
	namespace(t, onboarded)
	namespace(t, other)

	var rbacObjects int
	for _, u := range overlay(t) {
		switch u.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
		default:
			continue
		}
		if u.GetKind() == "ClusterRole" && u.GetName() == "erpsync-manager-role" {
			rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
			for _, r := range rules {
				res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
				if slices.Contains(res, "secrets") || slices.Contains(res, "*") {
					t.Errorf("the manager's ClusterRole still grants %v", r)
				}
			}
		}
		create(t, u)
		rbacObjects++
	}
	if rbacObjects < 5 {
		t.Fatalf("the overlay rendered %d RBAC objects", rbacObjects)
	}
	for _, u := range kustomize(t, "tenant") {
		u.SetNamespace(onboarded)
		create(t, u)
	}

	// The authorizer sees new bindings shortly after they are stored.
	eventually(t, "the manager's bindings take effect", func() bool {
		return allowed(t, managerUser, onboarded, "get", "", "secrets", "") &&
			allowed(t, managerUser, managerNS, "create", "coordination.k8s.io", "leases", "") &&
			allowed(t, managerUser, "", "list", "erpsync.io", "erpsyncs", "")
	})
	for _, tc := range []struct {
		ns, verb, group, resource, sub string
		want                           bool
	}{
		// Secrets: the onboarded namespace only, and only what it needs.
		{onboarded, "get", "", "secrets", "", true},
		{onboarded, "list", "", "secrets", "", true},
		{onboarded, "watch", "", "secrets", "", true},
		{onboarded, "update", "", "secrets", "", true},
		{onboarded, "create", "", "secrets", "", false},
		{onboarded, "delete", "", "secrets", "", false},
		{other, "get", "", "secrets", "", false},
		{other, "list", "", "secrets", "", false},
		{other, "update", "", "secrets", "", false},
		{"", "list", "", "secrets", "", false},
		{managerNS, "get", "", "secrets", "", false},
		// What stays: ErpSyncs everywhere (a claim checks the owning
		// namespace's), their status, claims and quotas at home.
		{"", "list", "erpsync.io", "erpsyncs", "", true},
		{other, "patch", "erpsync.io", "erpsyncs", "status", true},
		{managerNS, "create", "coordination.k8s.io", "leases", "", true},
		{managerNS, "update", "coordination.k8s.io", "leases", "", true},
		{managerNS, "delete", "coordination.k8s.io", "leases", "", true},
		{onboarded, "create", "coordination.k8s.io", "leases", "", false},
		{managerNS, "update", "", "configmaps", "", true},
	} {
		if got := allowed(t, managerUser, tc.ns, tc.verb, tc.group, tc.resource, tc.sub); got != tc.want {
			t.Errorf("manager %s %s/%s in %q: allowed %v, want %v", tc.verb, tc.resource, tc.sub, tc.ns, got, tc.want)
		}
	}

	// And for real: a labelled Secret in each namespace.
	manager := impersonate(t, managerNS, managerSA)
	for _, tc := range []struct {
		ns   string
		want bool
	}{{onboarded, true}, {other, false}} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: "creds",
			Labels: map[string]string{"erpsync.io/credentials": "true"}}, Data: map[string][]byte{"refreshToken": []byte("r0")}}
		create(t, s)
		var got corev1.Secret
		err := manager.Get(ctx, client.ObjectKeyFromObject(s), &got)
		if tc.want {
			if err != nil {
				t.Fatalf("the manager reading a labelled Secret in %s: %v", tc.ns, err)
			}
			got.Data["refreshToken"] = []byte("r1")
			if err := manager.Update(ctx, &got); err != nil {
				t.Errorf("the manager updating a labelled Secret in %s: %v", tc.ns, err)
			}
			continue
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("the manager reading a labelled Secret in %s: %v, want Forbidden", tc.ns, err)
		}
		s.Data["refreshToken"] = []byte("r1")
		if err := manager.Update(ctx, s); !apierrors.IsForbidden(err) {
			t.Errorf("the manager updating a labelled Secret in %s: %v, want Forbidden", tc.ns, err)
		}
	}
}

// TestTenantsCannotForgeCompanyClaims: the claims are Leases in the
// manager's namespace. A tenant that may do anything in its own namespace
// cannot create, change or delete one, so no tenant can pre-empt, take or
// release another's company.
func TestTenantsCannotForgeCompanyClaims(t *testing.T) {
	const tenantNS = "tenant-forger"
	namespace(t, managerNS)
	namespace(t, tenantNS)
	// Every verb on every resource of its own namespace (envtest runs no
	// controller manager, so the aggregated admin role would be empty).
	create(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "tenant-owner"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}})
	create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "tenant-owner"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "tenant-owner"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: tenantNS, Name: "tenant"}}})
	tenant := "system:serviceaccount:" + tenantNS + ":tenant"
	// The authorizer sees a new binding shortly after it is stored.
	eventually(t, "the tenant's binding takes effect", func() bool {
		return allowed(t, tenant, tenantNS, "create", "", "secrets", "") && allowed(t, tenant, tenantNS, "create", "coordination.k8s.io", "leases", "")
	})
	for _, verb := range []string{"create", "update", "patch", "delete"} {
		if allowed(t, tenant, managerNS, verb, "coordination.k8s.io", "leases", "") {
			t.Errorf("a tenant may %s Leases in the manager's namespace", verb)
		}
	}
}
