package localenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sample names the Secret and ErpSync of one vendor in config/samples.
type Sample struct {
	Vendor  string
	Secret  string
	ErpSync string
	Company string
}

// Samples lists config/samples, one per vendor.
var Samples = []Sample{
	{Vendor: "unleashed", Secret: "erp-unleashed-acme", ErpSync: "acme-unleashed", Company: "ACME-NZ"},
	{Vendor: "cin7core", Secret: "erp-cin7core-globex", ErpSync: "globex-cin7core", Company: "GLOBEX-AU"},
	{Vendor: "cin7omni", Secret: "erp-cin7omni-initech", ErpSync: "initech-cin7omni", Company: "INITECH-NZ"},
	{Vendor: "xero", Secret: "erp-xero-umbrella", ErpSync: "umbrella-xero", Company: "UMBRELLA-UK"},
	{Vendor: "katana", Secret: "erp-katana-hooli", ErpSync: "hooli-katana", Company: "HOOLI-US"},
}

// Endpoint is where a simulated vendor is and the credentials that work.
type Endpoint struct {
	BaseURL     string
	Credentials map[string]string
}

// WriteSampleOverlay writes a kustomization into dir that takes the samples
// in samplesDir as they are and, as a user's overlay would, points each one
// at its simulator: the Secret gets the simulator's credentials and the
// ErpSync its base URL and the given interval. Vendors without an endpoint
// are left out.
func WriteSampleOverlay(dir, samplesDir, namespace, interval string, endpoints map[string]Endpoint) error {
	// kustomize loads files only from below the kustomization's root, so
	// the chosen samples are copied in unchanged.
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	if namespace != "" {
		fmt.Fprintf(&b, "namespace: %s\n", namespace)
	}
	fmt.Fprintf(&b, "resources:\n")
	for _, s := range Samples {
		if _, ok := endpoints[s.Vendor]; !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(samplesDir, s.Vendor+".yaml"))
		if err != nil {
			return fmt.Errorf("reading the %s sample: %w", s.Vendor, err)
		}
		name := "sample-" + s.Vendor + ".yaml"
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&b, "- %s\n", name)
	}
	fmt.Fprintf(&b, "patches:\n")
	for _, s := range Samples {
		ep, ok := endpoints[s.Vendor]
		if !ok {
			continue
		}
		keys := make([]string, 0, len(ep.Credentials))
		for k := range ep.Credentials {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "- patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: %s\n    stringData:\n", s.Secret)
		for _, k := range keys {
			fmt.Fprintf(&b, "      %s: %q\n", k, ep.Credentials[k])
		}
		fmt.Fprintf(&b, "- patch: |-\n    apiVersion: erpsync.io/v1alpha1\n    kind: ErpSync\n    metadata:\n      name: %s\n    spec:\n      interval: %s\n      retryInterval: %s\n      connector:\n        baseURL: %q\n", s.ErpSync, interval, interval, ep.BaseURL)
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644)
}
