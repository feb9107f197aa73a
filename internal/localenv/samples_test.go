package localenv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
		"xero":   {BaseURL: "http://127.0.0.1:4001/api.xro/2.0", Credentials: map[string]string{"clientId": "c", "tokenURL": "http://127.0.0.1:4001/connect/token"}},
	}
	for _, tc := range []struct {
		name      string
		o         Overlay
		want, not []string
	}{
		{"companies kept", Overlay{Namespace: "demo", Interval: "1m", Endpoints: eps},
			[]string{"namespace: demo", "- sample-katana.yaml", "- sample-xero.yaml", `erpsync.io/credentials: "true"`, `baseURL: "http://127.0.0.1:4000/v1"`, `tokenURL: "http://127.0.0.1:4001/connect/token"`, "interval: 1m", "retryInterval: 1m"},
			[]string{"companyId", "sample-unleashed.yaml"}},
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
