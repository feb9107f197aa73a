// Package policies_test applies config/policies to a real API server
// (envtest) and shows that each policy admits what it should and refuses
// what it should.
//
//	KUBEBUILDER_ASSETS=$(hack/build-k8s-binaries.sh) go test ./config/policies/
package policies_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/erpsync/erpsync-operator/internal/manifests"
)

// managerUser is the manager's service account under config/default.
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
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := applyPolicies(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "applying config/policies: %v\n", err)
		return 1
	}
	return m.Run()
}

// kustomization is the part of a kustomization.yaml the test reads.
type kustomization struct {
	Namespace string   `json:"namespace"`
	Resources []string `json:"resources"`
}

// readObjects returns the objects of a kustomization directory, with its
// namespace set on the namespaced ones (what kustomize would do).
func readObjects(dir string, namespaced func(*unstructured.Unstructured) bool) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range k.Resources {
		docs, err := manifests.DecodeFile(filepath.Join(dir, r))
		if err != nil {
			return nil, err
		}
		for _, u := range docs {
			if k.Namespace != "" && namespaced(u) {
				u.SetNamespace(k.Namespace)
			}
			out = append(out, u)
		}
	}
	return out, nil
}

func isNamespaced(u *unstructured.Unstructured) bool {
	switch u.GetKind() {
	case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		return false
	}
	return true
}

func applyPolicies(ctx context.Context) error {
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNS}}); err != nil {
		return err
	}
	objs, err := readObjects(".", isNamespaced)
	if err != nil {
		return err
	}
	for _, u := range objs {
		if err := admin.Create(ctx, u); err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// namespace creates a namespace with annotations.
func namespace(t *testing.T, annotations map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tenant-", Annotations: annotations}}
	if err := admin.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func erpSync(ns, name, company string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "erpsync.io/v1alpha1",
		"kind":       "ErpSync",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"companyId": company,
			"connector": map[string]any{"type": "unleashed", "credentialsRef": map[string]any{"name": "erp"}},
			"interval":  "15m",
		},
	}}
	return u
}

// eventually retries f until it returns nil: admission policies take
// effect a moment after their binding is created.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// refusedBy checks that err is an admission refusal whose message says
// want.
func refusedBy(err error, want string) error {
	switch {
	case err == nil:
		return errors.New("admitted")
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		return fmt.Errorf("refused, but not by admission: %w", err)
	case !strings.Contains(err.Error(), want):
		return fmt.Errorf("refused with %q, want a message containing %q", err.Error(), want)
	}
	return nil
}

func TestCompanyClaims(t *testing.T) {
	ctx := context.Background()
	acme := namespace(t, map[string]string{"erpsync.io/companies": "ACME-NZ, ACME-AU"})
	globex := namespace(t, map[string]string{"erpsync.io/companies": "GLOBEX"})
	none := namespace(t, nil)
	// The policy is active once it refuses a claim (dry run: nothing is
	// stored while waiting).
	eventually(t, "the company-claims policy never refused a claim", func() error {
		return refusedBy(admin.Create(ctx, erpSync(none, "probe", "ACME-NZ"), client.DryRunAll), "erpsync.io/companies")
	})
	for _, tc := range []struct {
		name, ns, company string
		want              string // "" for admitted, else part of the refusal
	}{
		{"listed", acme, "ACME-NZ", ""},
		{"listed after a comma and a space", acme, "ACME-AU", ""},
		{"another namespace's company", acme, "GLOBEX", "companyId GLOBEX is not one of the companies namespace " + acme},
		{"a prefix of a listed company", acme, "ACME", "erpsync.io/companies"},
		{"a listed company plus a suffix", globex, "GLOBEX-2", "erpsync.io/companies"},
		{"the list itself", acme, "ACME-NZ, ACME-AU", "erpsync.io/companies"},
		{"the owner's company", globex, "GLOBEX", ""},
		{"a namespace without the annotation", none, "ACME-NZ", "erpsync.io/companies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ToLower(strings.NewReplacer(" ", "", ",", "-").Replace(tc.company))
			err := admin.Create(ctx, erpSync(tc.ns, name, tc.company))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err := refusedBy(err, tc.want); err != nil {
				t.Fatal(err)
			}
			var got unstructured.Unstructured
			got.SetAPIVersion("erpsync.io/v1alpha1")
			got.SetKind("ErpSync")
			if err := admin.Get(ctx, client.ObjectKey{Namespace: tc.ns, Name: name}, &got); !apierrors.IsNotFound(err) {
				t.Fatalf("the refused ErpSync exists (%v)", err)
			}
		})
	}
	// An admitted ErpSync stays editable (its companyId cannot change).
	var u unstructured.Unstructured
	u.SetAPIVersion("erpsync.io/v1alpha1")
	u.SetKind("ErpSync")
	if err := admin.Get(ctx, client.ObjectKey{Namespace: acme, Name: "acme-nz"}, &u); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, "30m", "spec", "interval"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Update(ctx, &u); err != nil {
		t.Fatalf("updating an admitted ErpSync: %v", err)
	}
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

// grantSecrets gives a service account every verb on Secrets in ns, so
// that what is refused is refused by the policy, not by RBAC.
func grantSecrets(t *testing.T, ns, saNS, sa string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secrets-" + sa},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secrets-" + sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: saNS, Name: sa}}}
	for _, o := range []client.Object{role, binding} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

func TestManagerUpdatesOnlyLabelledSecretsData(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, nil)
	grantSecrets(t, ns, managerNS, managerSA)
	grantSecrets(t, ns, ns, "tenant")
	manager := impersonate(t, managerNS, managerSA)
	tenant := impersonate(t, ns, "tenant")
	labelled := map[string]string{"erpsync.io/credentials": "true"}
	secret := func(t *testing.T, name string, labels map[string]string) *corev1.Secret {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: map[string]string{"team": "a"}},
			Data: map[string][]byte{"refreshToken": []byte("r0")}}
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	eventually(t, "the credentials policy never refused the manager", func() error {
		probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
		return refusedBy(manager.Create(ctx, probe, client.DryRunAll), "may not create Secrets")
	})
	for i, tc := range []struct {
		name   string
		labels map[string]string
		as     client.Client
		edit   func(s *corev1.Secret)
		want   string // "" for admitted
	}{
		{"rotate a labelled Secret's token", labelled, manager, func(s *corev1.Secret) { s.Data["refreshToken"] = []byte("r1") }, ""},
		{"add a data key to a labelled Secret", labelled, manager, func(s *corev1.Secret) { s.Data["accessToken"] = []byte("a") }, ""},
		{"update an unlabelled Secret", nil, manager, func(s *corev1.Secret) { s.Data["refreshToken"] = []byte("r1") }, `labelled erpsync.io/credentials="true"`},
		{"label an unlabelled Secret", nil, manager, func(s *corev1.Secret) { s.Labels = labelled }, `labelled erpsync.io/credentials="true"`},
		{"a Secret labelled false", map[string]string{"erpsync.io/credentials": "false"}, manager, func(s *corev1.Secret) { s.Data["x"] = nil }, `labelled erpsync.io/credentials="true"`},
		{"remove the label", labelled, manager, func(s *corev1.Secret) { s.Labels = nil }, "only a credentials Secret's data"},
		{"add a label", labelled, manager, func(s *corev1.Secret) { s.Labels["other"] = "x" }, "only a credentials Secret's data"},
		{"change an annotation", labelled, manager, func(s *corev1.Secret) { s.Annotations["team"] = "b" }, "only a credentials Secret's data"},
		{"add a finalizer", labelled, manager, func(s *corev1.Secret) { s.Finalizers = []string{"example.com/hold"} }, "only a credentials Secret's data"},
		{"make it immutable", labelled, manager, func(s *corev1.Secret) { s.Immutable = new(bool); *s.Immutable = true }, "only a credentials Secret's data"},
		{"the tenant updates its unlabelled Secret", nil, tenant, func(s *corev1.Secret) { s.Labels = map[string]string{"x": "y"} }, ""},
		{"an admin updates an unlabelled Secret", nil, admin, func(s *corev1.Secret) { s.Data["refreshToken"] = []byte("r1") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := secret(t, fmt.Sprint("case-", i), tc.labels)
			tc.edit(s)
			err := tc.as.Update(ctx, s)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err := refusedBy(err, tc.want); err != nil {
				t.Fatal(err)
			}
			var got corev1.Secret
			if err := admin.Get(ctx, client.ObjectKeyFromObject(s), &got); err != nil {
				t.Fatal(err)
			}
			if string(got.Data["refreshToken"]) != "r0" || got.Annotations["team"] != "a" || len(got.Finalizers) != 0 {
				t.Fatalf("the refused update changed the Secret: %+v", got)
			}
		})
	}
	t.Run("create or delete", func(t *testing.T) {
		err := manager.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "new", Labels: labelled}})
		if err := refusedBy(err, "may not create Secrets"); err != nil {
			t.Fatal(err)
		}
		s := secret(t, "doomed", labelled)
		if err := refusedBy(manager.Delete(ctx, s), "may not delete Secrets"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTenantQuota applies config/policies/tenant to a namespace: the sixth
// ErpSync is refused.
func TestTenantQuota(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, map[string]string{"erpsync.io/companies": "C0,C1,C2,C3,C4,C5"})
	objs, err := readObjects("tenant", isNamespaced)
	if err != nil {
		t.Fatal(err)
	}
	var quota *corev1.ResourceQuota
	for _, u := range objs {
		u.SetNamespace(ns) // kubectl apply -k config/policies/tenant -n <ns>
		if err := admin.Create(ctx, u); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == "ResourceQuota" {
			quota = &corev1.ResourceQuota{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, quota); err != nil {
				t.Fatal(err)
			}
		}
	}
	if quota == nil {
		t.Fatal("config/policies/tenant has no ResourceQuota")
	}
	const res = corev1.ResourceName("count/erpsyncs.erpsync.io")
	if q := quota.Spec.Hard[res]; q.Cmp(resource.MustParse("5")) != 0 {
		t.Fatalf("the quota allows %v ErpSyncs, want 5", q.String())
	}
	// envtest runs no controller manager: record the quota's starting
	// usage as its controller would, so that admission counts from it.
	if err := admin.Get(ctx, client.ObjectKeyFromObject(quota), quota); err != nil {
		t.Fatal(err)
	}
	quota.Status.Hard = quota.Spec.Hard
	quota.Status.Used = corev1.ResourceList{}
	for r := range quota.Spec.Hard {
		quota.Status.Used[r] = resource.MustParse("0")
	}
	if err := admin.Status().Update(ctx, quota); err != nil {
		t.Fatal(err)
	}
	// Quota admission reads quotas through an informer: until it has seen
	// the status above, it charges nothing. Create the first ErpSync until
	// admission charges it (its usage is written with the create), so
	// that the count starts from what the quota enforces.
	charged := false
	for try := 0; try < 50 && !charged; try++ {
		first := erpSync(ns, "s0", "C0")
		if err := admin.Create(ctx, first); err != nil {
			t.Fatalf("ErpSync 1: %v", err)
		}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(quota), quota); err != nil {
			t.Fatal(err)
		}
		if u := quota.Status.Used[res]; u.Cmp(resource.MustParse("1")) == 0 {
			charged = true
			break
		}
		if err := admin.Delete(ctx, first); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !charged {
		t.Fatal("quota admission never charged an ErpSync to the quota")
	}
	for i := 1; i < 5; i++ {
		if err := admin.Create(ctx, erpSync(ns, fmt.Sprint("s", i), fmt.Sprint("C", i))); err != nil {
			t.Fatalf("ErpSync %d: %v", i+1, err)
		}
	}
	err = admin.Create(ctx, erpSync(ns, "s5", "C5"))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("the sixth ErpSync: %v, want exceeded quota", err)
	}
}

// TestNetworkPolicy checks what the API server stored: it selects the
// manager's pods (the Deployment's labels), admits only the metrics, probe
// and webhook receiver ports, and allows HTTPS to public addresses only.
func TestNetworkPolicy(t *testing.T) {
	ctx := context.Background()
	var np networkingv1.NetworkPolicy
	if err := admin.Get(ctx, client.ObjectKey{Namespace: managerNS, Name: "erpsync-controller-manager"}, &np); err != nil {
		t.Fatal(err)
	}
	deploy, err := manifests.DecodeFile(filepath.Join("..", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var podLabels map[string]string
	for _, u := range deploy {
		if u.GetKind() == "Deployment" {
			podLabels, _, _ = unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || len(podLabels) == 0 || sel.Empty() || !sel.Matches(labels.Set(podLabels)) {
		t.Fatalf("pod selector %v does not select the manager's pods %v (%v)", np.Spec.PodSelector, podLabels, err)
	}
	var in []int32
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			in = append(in, p.Port.IntVal)
		}
	}
	if fmt.Sprint(in) != "[8443 8081 8090]" {
		t.Errorf("ingress ports %v, want the metrics, probe and webhook receiver ports only", in)
	}
	egress := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			egress[p.Port.IntVal] = append(egress[p.Port.IntVal], r.To...)
		}
	}
	for _, port := range []int32{53, 6443, 5432, 443} {
		if len(egress[port]) == 0 {
			t.Errorf("no egress to port %d", port)
		}
	}
	must := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"}
	for _, peer := range egress[443] {
		if peer.IPBlock == nil || peer.IPBlock.CIDR != "0.0.0.0/0" {
			continue
		}
		for _, c := range must {
			if !slices.Contains(peer.IPBlock.Except, c) {
				t.Errorf("HTTPS may reach %s", c)
			}
		}
		return
	}
	t.Errorf("no HTTPS rule to 0.0.0.0/0 with exceptions: %+v", egress[443])
}

// TestDefaultDeploysWhatThePoliciesName renders config/default (with the
// kubectl beside the test binaries): its manager runs under the service
// account the Secret policy names, in the namespace of the NetworkPolicy,
// and the API server accepts every object it makes (a server-side dry
// run, which validates the Deployment and the PodDisruptionBudget).
func TestDefaultDeploysWhatThePoliciesName(t *testing.T) {
	ctx := context.Background()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	objs, err := manifests.Kustomize(ctx, kubectl, filepath.Join("..", "default"))
	if err != nil {
		t.Fatal(err)
	}
	var sa, deploy, pdb bool
	for _, u := range objs {
		switch u.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			continue // installed by envtest, created by TestMain
		case "ServiceAccount":
			sa = u.GetNamespace() == managerNS && u.GetName() == managerSA
		case "Deployment":
			name, _, _ := unstructured.NestedString(u.Object, "spec", "template", "spec", "serviceAccountName")
			deploy = u.GetNamespace() == managerNS && name == managerSA
		case "PodDisruptionBudget":
			pdb = u.GetNamespace() == managerNS
		}
		if err := admin.Create(ctx, u, client.DryRunAll); err != nil {
			t.Errorf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	if !sa || !deploy || !pdb {
		t.Errorf("config/default does not run the manager as %s in %s with a PodDisruptionBudget (service account %v, deployment %v, PDB %v)", managerUser, managerNS, sa, deploy, pdb)
	}
}
