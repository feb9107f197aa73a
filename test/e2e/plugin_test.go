package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/internal/kubectlplugin"
	"github.com/erpsync/erpsync-operator/internal/localenv"
)

// TestKubectlPlugin runs the built kubectl-erpsync, directly and as
// `kubectl erpsync` found on PATH by the built kubectl, against the
// suite's API server while the suite's manager syncs the samples.
func TestKubectlPlugin(t *testing.T) {
	ctx := context.Background()
	plugin, err := localenv.Build(ctx, env.root, "./cmd/kubectl-erpsync", env.work)
	if err != nil {
		t.Fatal(err)
	}
	// A PATH with kubectl and the plugin only, as a user installs them.
	path := filepath.Join(env.work, "plugin-path")
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{plugin, env.cp.Kubectl} {
		if err := os.Symlink(bin, filepath.Join(path, filepath.Base(bin))); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
	}
	// kubectl erpsync ARGS, with the kubeconfig from the environment (a
	// kubectl flag before the plugin's name would hide the plugin).
	viaKubectl := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(path, "kubectl"), append([]string{"erpsync"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+path, "KUBECONFIG="+env.cp.Kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("kubectl erpsync %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	direct := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, plugin, append(args, "--kubeconfig", env.cp.Kubeconfig)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.String(), fmt.Errorf("kubectl-erpsync %s: %w: %s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String(), nil
	}
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	ns := newNamespace(t, "plugin")
	applySamples(t, ns, env.sim, "1h", "-PLUGIN")
	const name = "acme-unleashed"

	t.Run("status shows the entities with their records", func(t *testing.T) {
		var v kubectlplugin.StatusView
		if err := json.Unmarshal([]byte(must(direct("status", name, "-n", ns, "-o", "json"))), &v); err != nil {
			t.Fatal(err)
		}
		if len(v.ErpSync.Status.Entities) == 0 {
			t.Fatalf("no entities in the status view: %+v", v.ErpSync.Status)
		}
		out := must(viaKubectl("status", name, "-n", ns))
		t.Logf("kubectl erpsync status %s:\n%s", name, out)
		for _, want := range []string{"ErpSync " + ns + "/" + name, "Ready:        True (Succeeded)", "Entities:", "ENTITY", "Next sync:", "Quota:", "Events:"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q", want)
			}
		}
		var records int64
		for _, e := range v.ErpSync.Status.Entities {
			records += e.LastRunRecords
			row := rowOf(out, "  "+e.Name+" ")
			if row == "" || !strings.Contains(row, fmt.Sprint(e.LastRunRecords)) || !strings.Contains(row, string(e.LastRunMode)) {
				t.Errorf("entity %s (%d records, %s) not in the table: %q", e.Name, e.LastRunRecords, e.LastRunMode, row)
			}
		}
		if records == 0 {
			t.Errorf("the synced entities read no records: %+v", v.ErpSync.Status.Entities)
		}
		// Events reach the API server a moment after the status.
		eventually(t, 30*time.Second, "the first success's event in status", func() bool {
			out, err := direct("status", name, "-n", ns)
			return err == nil && strings.Contains(out, "SyncSucceeded")
		})
	})

	t.Run("-A lists every ErpSync", func(t *testing.T) {
		out := must(viaKubectl("status", "-A"))
		t.Logf("kubectl erpsync status -A:\n%s", out)
		lines := strings.Split(out, "\n")
		if !strings.HasPrefix(lines[0], "NAMESPACE") || !strings.Contains(lines[0], "ATTENTION") {
			t.Errorf("header %q", lines[0])
		}
		for _, s := range localenv.Samples {
			if !hasVendor(env.sim, s.Vendor) {
				continue
			}
			if !containsRow(lines, ns, s.ErpSync) {
				t.Errorf("-A lacks %s/%s", ns, s.ErpSync)
			}
		}
		var list []kubectlplugin.Summary
		if err := json.Unmarshal([]byte(must(direct("status", "-A", "-o", "json"))), &list); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(list); i++ {
			if list[i].Attention < list[i-1].Attention {
				t.Errorf("-A is not sorted by attention: %s before %s", list[i-1].Name, list[i].Name)
			}
		}
	})

	t.Run("sync sets the annotation and --wait sees it handled", func(t *testing.T) {
		out := must(viaKubectl("sync", name, "-n", ns, "--wait", "--timeout", "2m"))
		t.Logf("kubectl erpsync sync %s --wait:\n%s", name, out)
		token := jsonpath(t, ns, "erpsync/"+name, `{.metadata.annotations.erpsync\.io/requestedAt}`)
		if token == "" || !strings.Contains(out, token) || !strings.Contains(out, "handled by the operator") {
			t.Fatalf("annotation %q, output:\n%s", token, out)
		}
		if got := jsonpath(t, ns, "erpsync/"+name, "{.status.lastHandledReconcileAt}"); got != token {
			t.Errorf("status echoes %q, the plugin set %q", got, token)
		}
	})

	t.Run("resync --entity reads that entity in full and --wait sees it accepted", func(t *testing.T) {
		// The entities' modes before: those read incrementally stay so.
		var before kubectlplugin.StatusView
		if err := json.Unmarshal([]byte(must(direct("status", name, "-n", ns, "-o", "json"))), &before); err != nil {
			t.Fatal(err)
		}
		// A name the ErpSync does not sync is refused before anything is
		// written.
		out, err := viaKubectl("resync", name, "-n", ns, "--entity", "product")
		if err == nil || !strings.Contains(out, `--entity "product"`) {
			t.Errorf("resync --entity product: %v\n%s", err, out)
		}
		t.Logf("kubectl erpsync resync %s --entity product:\n%s", name, out)
		out = must(viaKubectl("resync", name, "-n", ns, "--entity", "products", "--wait", "--timeout", "2m"))
		t.Logf("kubectl erpsync resync %s --entity products --wait:\n%s", name, out)
		token := jsonpath(t, ns, "erpsync/"+name, `{.metadata.annotations.erpsync\.io/fullResyncEntitiesAt}`)
		if token == "" || !strings.Contains(out, token) || !strings.Contains(out, "full resync of products accepted by the operator") {
			t.Fatalf("annotation %q, output:\n%s", token, out)
		}
		if got := jsonpath(t, ns, "erpsync/"+name, "{.status.lastHandledFullResyncEntitiesAt} {.status.lastHandledFullResyncEntities}"); got != token+` ["products"]` {
			t.Errorf("status echoes %q, the plugin set %q", got, token)
		}
		eventually(t, 2*time.Minute, "the sync with the full resync of products to end", func() bool {
			return jsonpath(t, ns, "erpsync/"+name, "{.status.phase} {.status.import}") == "Succeeded"
		})
		var after kubectlplugin.StatusView
		if err := json.Unmarshal([]byte(must(direct("status", name, "-n", ns, "-o", "json"))), &after); err != nil {
			t.Fatal(err)
		}
		t.Logf("kubectl erpsync status %s after it:\n%s", name, must(viaKubectl("status", name, "-n", ns)))
		modes := map[string]string{}
		for _, e := range before.ErpSync.Status.Entities {
			modes[e.Name] = string(e.LastRunMode)
		}
		for _, e := range after.ErpSync.Status.Entities {
			switch {
			case e.Name == "products" && e.LastRunMode != "full":
				t.Errorf("products were read %s, want full", e.LastRunMode)
			case e.Name != "products" && modes[e.Name] == "incremental" && e.LastRunMode != "incremental":
				t.Errorf("%s was read %s, want incremental as before", e.Name, e.LastRunMode)
			}
		}
	})

	t.Run("suspend and resume flip spec.suspend", func(t *testing.T) {
		t.Logf("kubectl erpsync suspend %s --wait:\n%s", name, must(viaKubectl("suspend", name, "-n", ns, "--wait")))
		if got := jsonpath(t, ns, "erpsync/"+name, "{.spec.suspend} {.status.phase}"); got != "true Suspended" {
			t.Fatalf("after suspend: %q", got)
		}
		t.Logf("kubectl erpsync resume %s --wait:\n%s", name, must(viaKubectl("resume", name, "-n", ns, "--wait")))
		if got := jsonpath(t, ns, "erpsync/"+name, "{.spec.suspend}"); got != "false" && got != "" {
			t.Fatalf("after resume: spec.suspend %q", got)
		}
		kubectl(t, "wait", "-n", ns, "erpsync/"+name, "--for=jsonpath={.status.phase}=Succeeded", "--timeout=2m")
	})

	t.Run("report writes a bundle without secret values", func(t *testing.T) {
		bundle := filepath.Join(env.work, "plugin-report.tar.gz")
		t.Logf("kubectl erpsync report %s:\n%s", name, must(viaKubectl("report", name, "-n", ns, "-f", bundle)))
		files := untar(t, bundle)
		t.Logf("README.txt:\n%s", files["erpsync-report-"+ns+"-"+name+"/README.txt"])
		pre := "erpsync-report-" + ns + "-" + name + "/"
		for _, f := range []string{"erpsync.yaml", "status.txt", "events.yaml", "quota-configmaps.yaml", "secrets.txt", "README.txt"} {
			if _, ok := files[pre+f]; !ok {
				t.Errorf("bundle lacks %s", f)
			}
		}
		if !bytes.Contains(files[pre+"erpsync.yaml"], []byte("name: "+name)) || !bytes.Contains(files[pre+"events.yaml"], []byte("SyncSucceeded")) {
			t.Errorf("the bundle's object or events are wrong:\n%s\n%s", files[pre+"erpsync.yaml"], files[pre+"events.yaml"])
		}
		// No manager pods run here (the manager is a local process): the
		// bundle says so instead of failing.
		if !bytes.Contains(files[pre+"README.txt"], []byte("manager logs:")) {
			t.Errorf("README.txt:\n%s", files[pre+"README.txt"])
		}
		// The bundle's log filter against the manager's real log (the
		// manager runs here as a process, not a pod): it finds the
		// "sync succeeded" lines of this ErpSync, and none of another.
		mlog, err := os.ReadFile(env.mgr.Log)
		if err != nil {
			t.Fatal(err)
		}
		about, err := kubectlplugin.LinesAbout(bytes.NewReader(mlog), ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(about, []byte("sync succeeded")) {
			t.Errorf("the log filter finds no 'sync succeeded' line about %s/%s in the manager's log", ns, name)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(about)), "\n") {
			if !strings.Contains(l, `"`+name+`"`) && !strings.Contains(l, ns+"/"+name) {
				t.Errorf("the log filter kept a line about another ErpSync: %s", l)
			}
		}
		// Every value of every sample Secret in the namespace, read here
		// by the test: none may be in the bundle.
		values := secretValues(t, ns)
		if len(values) == 0 {
			t.Fatal("no Secret values to look for")
		}
		for f, data := range files {
			for k, v := range values {
				if bytes.Contains(data, []byte(v)) {
					t.Errorf("%s holds the value of Secret key %s", f, k)
				}
			}
		}
	})
}

// secretValues returns the values of the namespace's Secrets by
// secret/key, leaving out the few too short to search for and tenantId,
// which the overlay also writes into the ErpSync's spec.
func secretValues(t *testing.T, ns string) map[string]string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Data map[string]string `json:"data"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "secrets", "-n", ns, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		for k, b64 := range s.Data {
			v, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			if k == "tenantId" || len(v) < 6 {
				continue
			}
			out[s.Metadata.Name+"/"+k] = string(v)
		}
	}
	return out
}

func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if out[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

func rowOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func containsRow(lines []string, ns, name string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 && f[0] == ns && f[1] == name {
			return true
		}
	}
	return false
}
