package localenv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/internal/manifests"
)

func TestAllowHosts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		urls    []string
		want    []string
		wantErr bool
	}{
		{"host and port, deduplicated in order", []string{"http://127.0.0.1:4000/api/", "http://127.0.0.1:4001", "http://127.0.0.1:4000/other"}, []string{"127.0.0.1:4000", "127.0.0.1:4001"}, false},
		{"IPv6 keeps its brackets", []string{"http://[::1]:8080/v1"}, []string{"[::1]:8080"}, false},
		{"no port", []string{"https://erpsim.demo.svc/x"}, []string{"erpsim.demo.svc"}, false},
		{"none", nil, nil, false},
		{"not a URL with a host", []string{"127.0.0.1:4000"}, nil, true},
		{"unparsable", []string{"http://[::1"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AllowHosts(tc.urls...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteSampleOverlay(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(root, "config", "samples")
	eps := map[string]Endpoint{
		"katana": {BaseURL: "http://127.0.0.1:4000/v1", Credentials: map[string]string{"apiKey": "k"}},
		"xero": {BaseURL: "http://127.0.0.1:4001/api.xro/2.0", Credentials: map[string]string{"clientId": "c", "tokenURL": "http://127.0.0.1:4001/connect/token",
			"tenantId": "7a3c9e4e-0000-4000-8000-000000000001", "webhookKey": "the-app-key"}},
	}
	for _, tc := range []struct {
		name      string
		o         Overlay
		want, not []string
	}{
		{"companies kept", Overlay{Namespace: "demo", Interval: "1m", Endpoints: eps},
			[]string{"namespace: demo", "- sample-katana.yaml", "- sample-xero.yaml", `erpsync.io/credentials: "true"`, `baseURL: "http://127.0.0.1:4000/v1"`, `tokenURL: "http://127.0.0.1:4001/connect/token"`, "interval: 1m", "retryInterval: 1m"},
			[]string{"companyId", "sample-unleashed.yaml", "enabled: true"}},
		{"webhooks off by default; Xero's tenant routed by spec", Overlay{Interval: "1h", Endpoints: eps},
			[]string{`tenantId: "7a3c9e4e-0000-4000-8000-000000000001"`, `webhookKey: "the-app-key"`, "webhooks:\n        enabled: false"},
			nil},
		{"webhooks as the samples have them", Overlay{Interval: "1h", Endpoints: eps, Webhooks: true},
			[]string{`tenantId: "7a3c9e4e-0000-4000-8000-000000000001"`},
			[]string{"enabled: false", "enabled: true"}},
		{"companies suffixed", Overlay{Interval: "1h", CompanySuffix: "-B", Endpoints: eps},
			[]string{`companyId: "HOOLI-US-B"`, `companyId: "UMBRELLA-UK-B"`},
			[]string{"namespace:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteSampleOverlay(dir, samples, tc.o); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			k := string(b)
			for _, w := range tc.want {
				if !strings.Contains(k, w) {
					t.Errorf("the kustomization lacks %q:\n%s", w, k)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(k, n) {
					t.Errorf("the kustomization has %q:\n%s", n, k)
				}
			}
			if got := strings.Count(k, "kind: Secret"); got != 2 {
				t.Errorf("%d Secret patches, want 2", got)
			}
			if _, err := os.Stat(filepath.Join(dir, "sample-katana.yaml")); err != nil {
				t.Errorf("the sample was not copied: %v", err)
			}
		})
	}
	if err := WriteSampleOverlay(t.TempDir(), t.TempDir(), Overlay{Endpoints: eps}); err == nil {
		t.Error("want an error for a samples directory without the samples")
	}
}

// TestSamplesWebhooks: the samples turn webhooks on for every vendor that
// sends them and not for Cin7 Omni; Xero's names the tenant its events
// are routed by and its Secret the app's webhook key.
func TestSamplesWebhooks(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Samples {
		t.Run(s.Vendor, func(t *testing.T) {
			objs, err := manifests.DecodeFile(filepath.Join(root, "config", "samples", s.Vendor+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var (
				sync   *erpv1.ErpSync
				secret *corev1.Secret
			)
			if u := manifests.First(objs, "ErpSync"); u != nil {
				if sync, err = manifests.As[erpv1.ErpSync](u); err != nil {
					t.Fatal(err)
				}
			}
			if u := manifests.First(objs, "Secret"); u != nil {
				if secret, err = manifests.As[corev1.Secret](u); err != nil {
					t.Fatal(err)
				}
			}
			if sync == nil || secret == nil || sync.Name != s.ErpSync || secret.Name != s.Secret {
				t.Fatalf("the sample lacks the ErpSync %s or the Secret %s", s.ErpSync, s.Secret)
			}
			if want := s.Vendor != "cin7omni"; sync.WebhooksEnabled() != want {
				t.Errorf("spec.webhooks.enabled %v, want %v", sync.WebhooksEnabled(), want)
			}
			if s.Vendor == "xero" && (sync.Spec.Connector.TenantID == "" || secret.StringData[connectors.WebhookKeyXero] == "") {
				t.Errorf("Xero's sample needs spec.connector.tenantId and the Secret's %s", connectors.WebhookKeyXero)
			}
		})
	}
}
