package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/localenv"
)

// erpsyncJSON is the part of an ErpSync the tests read.
type erpsyncJSON struct {
	Metadata struct {
		Name              string    `json:"name"`
		Generation        int64     `json:"generation"`
		CreationTimestamp time.Time `json:"creationTimestamp"`
	} `json:"metadata"`
	Spec struct {
		CompanyID string `json:"companyId"`
	} `json:"spec"`
	Status struct {
		Phase                   string `json:"phase"`
		ObservedGeneration      int64  `json:"observedGeneration"`
		LastHandledReconcileAt  string `json:"lastHandledReconcileAt"`
		LastHandledFullResyncAt string `json:"lastHandledFullResyncAt"`
		LastSyncEnd             string `json:"lastSyncEnd"`
		NextSyncAt              string `json:"nextSyncAt"`
		ConsecutiveFailures     int64  `json:"consecutiveFailures"`
		Conditions              []struct {
			Type, Status, Reason, Message string
		} `json:"conditions"`
		Progress *struct {
			APICalls int64 `json:"apiCalls"`
		} `json:"progress"`
		LastSync *struct {
			Mode     string `json:"mode"`
			Records  int64  `json:"records"`
			Upserted int64  `json:"upserted"`
			APICalls int64  `json:"apiCalls"`
		} `json:"lastSync"`
		Entities []struct {
			Name           string `json:"name"`
			LastRunMode    string `json:"lastRunMode"`
			LastRunCalls   int64  `json:"lastRunCalls"`
			LastRunRecords int64  `json:"lastRunRecords"`
			Checkpoint     *struct {
				Page int `json:"page"`
			} `json:"checkpoint"`
		} `json:"entities"`
	} `json:"status"`
}

func getErpSync(t *testing.T, ns, name string) (erpsyncJSON, map[string]any) {
	t.Helper()
	raw := kubectl(t, "get", "-n", ns, "erpsync/"+name, "-o", "json")
	var o erpsyncJSON
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatal(err)
	}
	// Decode as the API machinery does (integers as int64), for kstatus.
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	return o, u.Object
}

func (o erpsyncJSON) condition(typ string) (status, reason, message string) {
	for _, c := range o.Status.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason, c.Message
		}
	}
	return "", "", ""
}

// applySamples applies config/samples, pointed at erpsim by an overlay, into
// a new namespace, and waits until every ErpSync is Ready. A company belongs
// to the first namespace that claims it, so every namespace but the first
// needs a companySuffix.
func applySamples(t *testing.T, ns string, sim *simProcess, interval, companySuffix string) {
	t.Helper()
	overlay := filepath.Join(env.work, "overlay-"+ns)
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	o := localenv.Overlay{Namespace: ns, Interval: interval, CompanySuffix: companySuffix, Endpoints: sim.endpoints()}
	if err := localenv.WriteSampleOverlay(overlay, filepath.Join(env.root, "config", "samples"), o); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-k", overlay)
	if out, err := kubectlErr("wait", "--for=condition=Ready", "erpsync", "--all", "-n", ns, "--timeout=4m"); err != nil {
		wide, _ := kubectlErr("get", "erpsyncs", "-n", ns, "-o", "wide")
		t.Fatalf("ErpSyncs not Ready: %v\n%s\n%s", err, out, wide)
	}
}

// TestUserPath follows a platform engineer: apply the samples, read them with
// kubectl, check the CRM, then ask for syncs and suspend.
func TestUserPath(t *testing.T) {
	ns := newNamespace(t, "samples")
	applySamples(t, ns, env.sim, "1h", "")

	t.Run("kubectl get shows the promised columns", func(t *testing.T) {
		out := kubectl(t, "get", "erpsyncs", "-n", ns)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, col := range []string{"NAME", "COMPANY", "CONNECTOR", "READY", "REASON", "PHASE", "LAST SYNC", "NEXT SYNC", "AGE"} {
			if !strings.Contains(lines[0], col) {
				t.Errorf("header %q lacks %s", lines[0], col)
			}
		}
		if len(lines) != 1+len(env.sim.state.Vendors) {
			t.Fatalf("want one row per vendor:\n%s", out)
		}
		for _, s := range localenv.Samples {
			if !hasVendor(env.sim, s.Vendor) {
				continue
			}
			row := findRow(lines, s.ErpSync)
			for _, want := range []string{s.Company, s.Vendor, "True", "Succeeded"} {
				if !strings.Contains(row, want) {
					t.Errorf("row %q lacks %q", row, want)
				}
			}
		}
		wide := kubectl(t, "get", "erpsyncs", "-n", ns, "-o", "wide")
		for _, col := range []string{"LAST SUCCESS", "INTERVAL", "MESSAGE"} {
			if !strings.Contains(strings.SplitN(wide, "\n", 2)[0], col) {
				t.Errorf("-o wide lacks %s:\n%s", col, wide)
			}
		}
		if !strings.Contains(wide, "1h") || !strings.Contains(wide, "records") {
			t.Errorf("-o wide lacks the interval or the message:\n%s", wide)
		}
	})

	t.Run("kstatus reports Current", func(t *testing.T) {
		for _, s := range sampleNames() {
			_, u := getErpSync(t, ns, s)
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != status.CurrentStatus {
				t.Errorf("%s: kstatus %s (%s)", s, res.Status, res.Message)
			}
		}
	})

	t.Run("the CRM holds exactly each simulator's dataset, per company", func(t *testing.T) {
		counts := crmCounts(t)
		for _, s := range localenv.Samples {
			v, ok := findVendor(env.sim, s.Vendor)
			if !ok {
				continue
			}
			for kind, want := range v.Expected {
				if got := counts[s.Company][model.Kind(kind)]; got != want {
					t.Errorf("%s (%s): %d %s in the CRM, the simulator has %d", s.Company, s.Vendor, got, kind, want)
				}
			}
			for kind, got := range counts[s.Company] {
				if _, ok := v.Expected[string(kind)]; !ok && got > 0 {
					t.Errorf("%s: %d unexpected %s records", s.Company, got, kind)
				}
			}
		}
	})

	t.Run("records changed in the ERP arrive in the next incremental sync, with only the calls it needs", func(t *testing.T) {
		for _, s := range localenv.Samples {
			if !hasVendor(env.sim, s.Vendor) {
				continue
			}
			t.Run(s.Vendor, func(t *testing.T) {
				// What each entity cost in the initial (full) import.
				initial, _ := getErpSync(t, ns, s.ErpSync)
				fullCalls := map[string]int64{}
				for _, e := range initial.Status.Entities {
					fullCalls[e.Name] = e.LastRunCalls
				}
				env.sim.admin(t, "POST", "/vendors/"+s.Vendor+"/stats/reset", nil)
				var touched map[string][]string
				env.sim.admin(t, "POST", "/vendors/"+s.Vendor+"/touch?products=3", &touched)
				token := fmt.Sprint(time.Now().UnixNano())
				kubectl(t, "annotate", "-n", ns, "erpsync/"+s.ErpSync, "erpsync.io/requestedAt="+token, "--overwrite")
				var o erpsyncJSON
				eventually(t, 2*time.Minute, "the requested sync", func() bool {
					o, _ = getErpSync(t, ns, s.ErpSync)
					st, _, _ := o.condition("Ready")
					return o.Status.LastHandledReconcileAt == token && o.Status.Phase == "Succeeded" && st == "True"
				})
				if o.Status.LastSync.Mode != "incremental" {
					t.Errorf("mode %s", o.Status.LastSync.Mode)
				}
				if o.Status.LastSync.Upserted < 3 {
					t.Errorf("%d records upserted, want at least the 3 changed products", o.Status.LastSync.Upserted)
				}
				// Only the calls an incremental sync needs: entities with a
				// modified-since filter read only the changed records (3
				// products, with their stock in 3 warehouses at most), with no
				// more calls than their full import took; entities without a
				// filter are re-read in full, and say so.
				var sum int64
				incremental := 0
				for _, e := range o.Status.Entities {
					sum += e.LastRunCalls
					switch e.LastRunMode {
					case "incremental":
						incremental++
						if e.LastRunRecords > 9 {
							t.Errorf("%s: an incremental pass over 3 changed products read %d records", e.Name, e.LastRunRecords)
						}
						if e.LastRunCalls > fullCalls[e.Name] {
							t.Errorf("%s: the incremental pass made %d calls, the full import %d", e.Name, e.LastRunCalls, fullCalls[e.Name])
						}
					case "full":
					default:
						t.Errorf("%s: last run mode %q", e.Name, e.LastRunMode)
					}
				}
				if incremental == 0 {
					t.Errorf("no entity was read incrementally")
				}
				if sum != o.Status.LastSync.APICalls {
					t.Errorf("entities account for %d calls, the sync for %d", sum, o.Status.LastSync.APICalls)
				}
				v := env.sim.vendor(t, s.Vendor)
				// The simulator saw those calls, plus at most an OAuth token
				// refresh (Xero).
				if v.Requests < sum || v.Requests > sum+1 {
					t.Errorf("the simulator served %d requests for a sync of %d calls", v.Requests, sum)
				}
				t.Logf("%s: %d calls; entities: %+v", s.Vendor, sum, o.Status.Entities)
				if v.Throttled != 0 {
					t.Errorf("%d requests throttled", v.Throttled)
				}
			})
		}
	})

	t.Run("fullResyncAt re-reads everything", func(t *testing.T) {
		s := localenv.Samples[len(localenv.Samples)-1] // katana
		env.sim.admin(t, "POST", "/vendors/"+s.Vendor+"/stats/reset", nil)
		kubectl(t, "annotate", "-n", ns, "erpsync/"+s.ErpSync, "erpsync.io/fullResyncAt=full-1", "--overwrite")
		var o erpsyncJSON
		eventually(t, 2*time.Minute, "the full resync", func() bool {
			o, _ = getErpSync(t, ns, s.ErpSync)
			return o.Status.LastHandledFullResyncAt == "full-1" && o.Status.Phase == "Succeeded"
		})
		if o.Status.LastSync.Mode != "full" {
			t.Errorf("mode %s", o.Status.LastSync.Mode)
		}
		v := env.sim.vendor(t, s.Vendor)
		total := 0
		for _, n := range v.Expected {
			total += n
		}
		if o.Status.LastSync.Records < int64(total) {
			t.Errorf("the full resync read %d records, the dataset has %d", o.Status.LastSync.Records, total)
		}
		if v.Requests < int64(len(o.Status.Entities)) {
			t.Errorf("%d calls for %d entities", v.Requests, len(o.Status.Entities))
		}
	})

	t.Run("suspend stops syncs", func(t *testing.T) {
		s := localenv.Samples[0]
		kubectl(t, "patch", "-n", ns, "erpsync/"+s.ErpSync, "--type=merge", "-p", `{"spec":{"suspend":true}}`)
		eventually(t, time.Minute, "phase Suspended", func() bool {
			return jsonpath(t, ns, "erpsync/"+s.ErpSync, "{.status.phase}") == "Suspended"
		})
		env.sim.admin(t, "POST", "/vendors/"+s.Vendor+"/stats/reset", nil)
		kubectl(t, "annotate", "-n", ns, "erpsync/"+s.ErpSync, "erpsync.io/requestedAt=while-suspended", "--overwrite")
		time.Sleep(3 * time.Second)
		if v := env.sim.vendor(t, s.Vendor); v.Requests != 0 {
			t.Errorf("a suspended ErpSync made %d calls", v.Requests)
		}
		if got := jsonpath(t, ns, "erpsync/"+s.ErpSync, "{.status.lastHandledReconcileAt}"); got == "while-suspended" {
			t.Errorf("a suspended ErpSync handled a request")
		}
	})
}

func sampleNames() []string {
	var out []string
	for _, s := range localenv.Samples {
		if hasVendor(env.sim, s.Vendor) {
			out = append(out, s.ErpSync)
		}
	}
	return out
}

func hasVendor(s *simProcess, name string) bool {
	_, ok := findVendor(s, name)
	return ok
}

func findVendor(s *simProcess, name string) (simVendor, bool) {
	for _, v := range s.state.Vendors {
		if v.Vendor == name {
			return v, true
		}
	}
	return simVendor{}, false
}

func findRow(lines []string, name string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// TestBadInput applies what users get wrong; each gets a clear message, and
// no other ErpSync is disturbed.
func TestBadInput(t *testing.T) {
	healthy := newNamespace(t, "healthy")
	applySamples(t, healthy, env.sim, "1h", "-HEALTHY")
	before := map[string]string{}
	for _, s := range sampleNames() {
		before[s] = jsonpath(t, healthy, "erpsync/"+s, "{.status.lastSyncEnd}")
	}

	ns := newNamespace(t, "bad")
	katana, _ := findVendor(env.sim, "katana")
	apply := func(yaml string) (string, error) {
		return env.cp.RunStdin(context.Background(), strings.NewReader(yaml), "apply", "-n", ns, "-f", "-")
	}
	erpsync := func(name, secret, baseURL, extra string) string {
		return fmt.Sprintf(`apiVersion: erpsync.io/v1alpha1
kind: ErpSync
metadata:
  name: %s
spec:
  companyId: %s
  interval: 1h
  retryInterval: 30m
  connector:
    type: katana
    baseURL: %q
    credentialsRef:
      name: %s
%s`, name, strings.ToUpper(name), baseURL, secret, extra)
	}
	secret := func(name, key, value string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  labels:\n    %s: \"true\"\nstringData:\n  %s: %q\n---\n", name, localenv.CredentialsLabel, key, value)
	}
	cases := []struct {
		name, yaml, reason, message string
	}{
		{"wrong-key", secret("wrong-key", "api_key", katana.Credentials["apiKey"]) + erpsync("wrong-key", "wrong-key", katana.BaseURL, ""), "SecretKeyMissing", `has no key "apiKey"`},
		{"wrong-password", secret("wrong-password", "apiKey", "not-the-key") + erpsync("wrong-password", "wrong-password", katana.BaseURL, ""), "AuthenticationFailed", "401"},
		{"refused", secret("refused", "apiKey", katana.Credentials["apiKey"]) + erpsync("refused", "refused", refusedURL, ""), "ERPUnavailable", ""},
	}
	for _, tc := range cases {
		if out, err := apply(tc.yaml); err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, out)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o erpsyncJSON
			eventually(t, 2*time.Minute, tc.name+" to fail with "+tc.reason, func() bool {
				o, _ = getErpSync(t, ns, tc.name)
				st, reason, _ := o.condition("Ready")
				return st == "False" && reason == tc.reason
			})
			_, _, msg := o.condition("Ready")
			if !strings.Contains(msg, tc.message) {
				t.Errorf("Ready message %q lacks %q", msg, tc.message)
			}
			if strings.Contains(msg, katana.Credentials["apiKey"]) {
				t.Errorf("the message shows the API key")
			}
			wide := kubectl(t, "get", "-n", ns, "erpsync/"+tc.name, "-o", "wide")
			if !strings.Contains(wide, tc.reason) {
				t.Errorf("kubectl get -o wide does not show %s:\n%s", tc.reason, wide)
			}
			eventually(t, 30*time.Second, "a Warning event in kubectl describe", func() bool {
				d := kubectl(t, "describe", "-n", ns, "erpsync/"+tc.name)
				return strings.Contains(d, "Warning") && strings.Contains(d, tc.reason)
			})
		})
	}

	t.Run("unknown connector type is rejected by kubectl apply", func(t *testing.T) {
		out, err := apply(strings.Replace(erpsync("sap", "x", katana.BaseURL, ""), "type: katana", "type: sap", 1))
		if err == nil || !strings.Contains(out, `Unsupported value: "sap"`) {
			t.Fatalf("want a rejection naming the type, got %v: %s", err, out)
		}
	})
	t.Run("invalid interval is rejected by kubectl apply", func(t *testing.T) {
		out, err := apply(strings.Replace(erpsync("fast", "x", katana.BaseURL, ""), "interval: 1h\n  retryInterval: 30m", "interval: 10s", 1))
		if err == nil || !strings.Contains(out, "interval must be at least 1m") {
			t.Fatalf("want a rejection explaining the interval, got %v: %s", err, out)
		}
	})

	t.Run("no other ErpSync is disturbed", func(t *testing.T) {
		for _, s := range sampleNames() {
			o, _ := getErpSync(t, healthy, s)
			if st, _, _ := o.condition("Ready"); st != "True" {
				t.Errorf("%s is not Ready: %+v", s, o.Status.Conditions)
			}
			if o.Status.LastSyncEnd != before[s] {
				t.Errorf("%s synced again (%s, was %s)", s, o.Status.LastSyncEnd, before[s])
			}
		}
	})
}
