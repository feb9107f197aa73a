package kubectlplugin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// TestKrewManifest renders hack/krew/erpsync.yaml as krew-release-bot does
// (addURIAndSha writes a platform's uri and sha256 lines) and checks the
// plugin manifest it becomes.
func TestKrewManifest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "hack", "krew", "erpsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("krew").Funcs(template.FuncMap{
		"addURIAndSha": func(uri, tag string) string {
			uri = strings.ReplaceAll(uri, "{{ .TagName }}", tag)
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri, strings.Repeat("ab", 32))
		},
	}).Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]string{"TagName": "v1.2.3"}); err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Version          string `json:"version"`
			Homepage         string `json:"homepage"`
			ShortDescription string `json:"shortDescription"`
			Description      string `json:"description"`
			Platforms        []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
				Bin    string `json:"bin"`
				Files  []struct {
					From string `json:"from"`
					To   string `json:"to"`
				} `json:"files"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(out.Bytes(), &m); err != nil {
		t.Fatalf("the rendered manifest is not a krew Plugin: %v\n%s", err, out.String())
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "erpsync" || m.Spec.Version != "v1.2.3" {
		t.Errorf("manifest header: %+v", m)
	}
	if m.Spec.Homepage == "" || m.Spec.Description == "" {
		t.Errorf("krew wants a homepage and a description: %+v", m.Spec)
	}
	if len(m.Spec.ShortDescription) > 50 {
		t.Errorf("krew wants a short description under 50 characters: %q", m.Spec.ShortDescription)
	}
	seen := map[string]bool{}
	for _, p := range m.Spec.Platforms {
		osName, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		seen[osName+"/"+arch] = true
		wantBin := "kubectl-erpsync"
		if osName == "windows" {
			wantBin += ".exe"
		}
		if p.Bin != wantBin || len(p.Files) != 1 || p.Files[0].From != wantBin {
			t.Errorf("%s/%s installs %q from %+v", osName, arch, p.Bin, p.Files)
		}
		if !strings.HasSuffix(p.URI, "/v1.2.3/kubectl-erpsync_"+osName+"_"+arch+".tar.gz") || len(p.SHA256) != 64 {
			t.Errorf("%s/%s: uri %q sha256 %q", osName, arch, p.URI, p.SHA256)
		}
	}
	for _, want := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"} {
		if !seen[want] {
			t.Errorf("no platform %s", want)
		}
	}
}
