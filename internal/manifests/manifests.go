// Package manifests reads Kubernetes manifests: multi-document YAML (or
// JSON) streams, files and rendered kustomizations, as unstructured
// objects, and converts an object to its typed form. Tests and tools that
// check config/, the chart and the samples share it.
package manifests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Decode reads every object of a YAML stream of documents separated by
// "---" lines (JSON is YAML too). Empty documents (nothing, or only
// comments) are skipped; a document without a kind, or with a key twice,
// is an error. Whole numbers come out as int64, as unstructured's
// accessors expect.
func Decode(r io.Reader) ([]*unstructured.Unstructured, error) {
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []*unstructured.Unstructured
	for n := 1; ; n++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if j = bytes.TrimSpace(j); string(j) == "null" || string(j) == "{}" {
			continue
		}
		var m map[string]any
		if err := utiljson.Unmarshal(j, &m); err != nil {
			return nil, fmt.Errorf("document %d: not an object: %w", n, err)
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" {
			return nil, fmt.Errorf("document %d: no kind", n)
		}
		out = append(out, u)
	}
}

// DecodeFile reads the objects of a manifest file; errors name the file.
func DecodeFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	defer func() { _ = f.Close() }()
	objs, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// Kustomize renders the kustomization in dir with `kubectl kustomize`
// (kubectl is the binary's path) and decodes the result.
func Kustomize(ctx context.Context, kubectl, dir string) ([]*unstructured.Unstructured, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir) //nolint:gosec // G702: the caller names its kubectl and directory (tests and tools, never the manager); no shell
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w: %s", dir, err, strings.TrimSpace(errOut.String()))
	}
	objs, err := Decode(&out)
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w", dir, err)
	}
	return objs, nil
}

// As converts an object to its typed form, refusing fields the type does
// not have (a misspelt field in a manifest is an error, not ignored).
func As[T any](u *unstructured.Unstructured) (*T, error) {
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &out, true); err != nil {
		return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return &out, nil
}

// First returns the first object of a kind, nil when there is none.
func First(objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind {
			return o
		}
	}
	return nil
}
