package manifests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // kind/name of each object
		err  string
	}{
		{"one document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", []string{"Namespace/a"}, ""},
		{"several, a leading separator, empty and comment-only documents", `---
apiVersion: v1
kind: Namespace
metadata:
  name: a
---
---
# nothing but a comment
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: b
data: {k: v}
`, []string{"Namespace/a", "ConfigMap/b"}, ""},
		{"an empty mapping is skipped", "{}\n---\nkind: Secret\nmetadata: {name: s}\n", []string{"Secret/s"}, ""},
		{"JSON", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}`, []string{"Namespace/a"}, ""},
		{"nothing", "", nil, ""},
		{"only comments", "# a\n---\n# b\n", nil, ""},
		{"bad YAML names the document", "kind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n", nil, "document 2"},
		{"a document without kind", "kind: Namespace\n---\nmetadata: {name: a}\n", nil, "document 2: no kind"},
		{"a key twice", "kind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n", nil, "document 1"},
		{"a document that is not an object", "- a\n- b\n", nil, "document 1: not an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Decode(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Whole numbers are int64, so that unstructured's accessors read them.
func TestDecodeNumbers(t *testing.T) {
	objs, err := Decode(strings.NewReader("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, generation: 3}\nspec: {replicas: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	n, found, err := unstructured.NestedInt64(objs[0].Object, "spec", "replicas")
	if err != nil || !found || n != 2 {
		t.Errorf("spec.replicas = %v, %v, %v; want 2", n, found, err)
	}
	if g := objs[0].GetGeneration(); g != 3 {
		t.Errorf("generation %d, want 3", g)
	}
}

func TestDecodeFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("kind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("kind: Namespace\n---\nmetadata: {}\nspec: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		n    int
		err  string
	}{
		{good, 2, ""},
		{bad, 0, "bad.yaml: document 2: no kind"},
		{filepath.Join(dir, "missing.yaml"), 0, "missing.yaml"},
	} {
		objs, err := DecodeFile(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one containing %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || len(objs) != tc.n {
			t.Errorf("%s: %d objects, %v; want %d", tc.path, len(objs), err, tc.n)
		}
	}
}

func TestAs(t *testing.T) {
	objs, err := Decode(strings.NewReader(`apiVersion: apps/v1
kind: Deployment
metadata: {name: m}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: manager
        resources: {limits: {memory: 576Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {portz: []}
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := As[appsv1.Deployment](First(objs, "Deployment"))
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().Value() != 576<<20 {
		t.Errorf("decoded %+v", d.Spec)
	}
	if _, err := As[corev1.Service](First(objs, "Service")); err == nil || !strings.Contains(err.Error(), "Service s") || !strings.Contains(err.Error(), "portz") {
		t.Errorf("a misspelt field: err %v, want one naming the object and the field", err)
	}
	if First(objs, "Secret") != nil {
		t.Error("First found a kind that is not there")
	}
}

func TestKustomize(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: make test sets it (its kubectl renders the kustomization)")
	}
	kubectl := filepath.Join(assets, "kubectl")
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kustomization.yaml", "namespace: tenant\nresources: [cm.yaml]\n")
	write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
	objs, err := Kustomize(context.Background(), kubectl, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetNamespace() != "tenant" || objs[0].GetName() != "c" {
		t.Errorf("rendered %v", objs)
	}
	write("kustomization.yaml", "resources: [absent.yaml]\n")
	if _, err := Kustomize(context.Background(), kubectl, dir); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("a broken kustomization: err %v, want kubectl's message", err)
	}
}
