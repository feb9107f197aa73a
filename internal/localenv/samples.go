package localenv

import (
	"fmt"
	"net/url"
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

// CredentialsLabel is the label a Secret must carry for the manager to use
// it as ERP credentials.
const CredentialsLabel = "erpsync.io/credentials"

// Overlay says how WriteSampleOverlay points the samples at simulators.
type Overlay struct {
	// Namespace the samples go to ("" leaves them unset).
	Namespace string
	// Interval is each ErpSync's interval and retryInterval.
	Interval string
	// CompanySuffix, when set, is appended to every sample's companyId: a
	// company belongs to the first namespace that claims it, so samples
	// applied into a second namespace need companies of their own.
	CompanySuffix string
	// Endpoints are the simulators by vendor; vendors without one are left
	// out.
	Endpoints map[string]Endpoint
	// Webhooks keeps spec.webhooks as the samples have it (on for every
	// vendor that sends webhooks). False, the zero value, turns them off
	// in every ErpSync: a test that counts a sync's calls, or changes
	// records and asks for a sync, must not see webhook-started syncs too.
	Webhooks bool
}

// Company returns the companyId the overlay gives sample s.
func (o Overlay) Company(s Sample) string { return s.Company + o.CompanySuffix }

// WriteSampleOverlay writes a kustomization into dir that takes the samples
// in samplesDir as they are and, as a user's overlay would, points each one
// at its simulator: the Secret gets the simulator's credentials and the
// credentials label, the ErpSync its base URL, the given interval, the
// simulator's tenant (where its credentials name one: Xero's tenantId, which
// webhooks are routed by) and, with a CompanySuffix, its own company;
// without Webhooks, spec.webhooks is turned off.
func WriteSampleOverlay(dir, samplesDir string, o Overlay) error {
	// kustomize loads files only from below the kustomization's root, so
	// the chosen samples are copied in unchanged.
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	if o.Namespace != "" {
		fmt.Fprintf(&b, "namespace: %s\n", o.Namespace)
	}
	fmt.Fprintf(&b, "resources:\n")
	for _, s := range Samples {
		if _, ok := o.Endpoints[s.Vendor]; !ok {
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
		ep, ok := o.Endpoints[s.Vendor]
		if !ok {
			continue
		}
		keys := make([]string, 0, len(ep.Credentials))
		for k := range ep.Credentials {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "- patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: %s\n      labels:\n        %s: \"true\"\n    stringData:\n", s.Secret, CredentialsLabel)
		for _, k := range keys {
			fmt.Fprintf(&b, "      %s: %q\n", k, ep.Credentials[k])
		}
		fmt.Fprintf(&b, "- patch: |-\n    apiVersion: erpsync.io/v1alpha1\n    kind: ErpSync\n    metadata:\n      name: %s\n    spec:\n", s.ErpSync)
		if o.CompanySuffix != "" {
			fmt.Fprintf(&b, "      companyId: %q\n", o.Company(s))
		}
		fmt.Fprintf(&b, "      interval: %s\n      retryInterval: %s\n      connector:\n        baseURL: %q\n", o.Interval, o.Interval, ep.BaseURL)
		if tenant := ep.Credentials["tenantId"]; tenant != "" {
			fmt.Fprintf(&b, "        tenantId: %q\n", tenant)
		}
		if !o.Webhooks {
			fmt.Fprintf(&b, "      webhooks:\n        enabled: false\n")
		}
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644)
}

// AllowHosts returns the host:port of each URL, deduplicated and in order,
// for the manager's --egress-allow-hosts.
func AllowHosts(urls ...string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", raw, err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("%q has no host", raw)
		}
		if !seen[u.Host] {
			seen[u.Host] = true
			out = append(out, u.Host)
		}
	}
	return out, nil
}
