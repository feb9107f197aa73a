package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/hostile"
	"github.com/erpsync/erpsync-operator/internal/localenv"
)

// victimCompany is the company the victim tenant syncs and the hostile
// tenant goes after.
const victimCompany = "VICTIM"

// victimName is the victim's ErpSync: a claim refused must not tell it.
const victimName = "payroll-sync"

// TestHostileTenant plays a tenant who may create ErpSyncs and Secrets in its
// own namespace, and uses that to attack another tenant: the victim syncs
// company VICTIM from its ERP (erpsim's Unleashed) while the hostile tenant,
// with a server of its own (erpsim --hostile), tries each attack of issue
// 12. Each is refused with a clear condition or error, and the victim's
// rows, schedule and limits are untouched: its next sync succeeds on time
// and its rows equal its ERP.
func TestHostileTenant(t *testing.T) {
	hs := env.hostile.state.Hostile
	erp, ok := findVendor(env.hostile, "unleashed")
	if !ok {
		t.Fatal("the hostile erpsim serves no Unleashed for the victim")
	}

	// The victim: an ErpSync for VICTIM every minute, and its labelled
	// Secret.
	victimNS := newNamespace(t, "victim")
	applyYAML(t, victimNS, secretYAML("unleashed", true, erp.Credentials)+erpsyncYAML(victimName, victimCompany, "unleashed", erp.BaseURL, ""))
	t.Cleanup(func() { _, _ = kubectlErr("delete", "erpsync", "--all", "-n", victimNS, "--wait=false") })
	var victim erpsyncJSON
	eventually(t, 3*time.Minute, "the victim's first sync", func() bool {
		victim, _ = getErpSync(t, victimNS, victimName)
		st, _, _ := victim.condition("Ready")
		return st == "True" && victim.Status.Phase == "Succeeded"
	})
	checkEqualsERP(t, victimCompany, erp)
	before := companyRows(t, victimCompany)
	if len(before) == 0 {
		t.Fatal("the victim has no rows")
	}

	// The hostile tenant's namespace: its own labelled Secret (the
	// victim's API id, which is not secret, with a key of its own) and an
	// unlabelled neighbour Secret with vendor-shaped keys.
	ns := newNamespace(t, "hostile")
	t.Cleanup(func() { _, _ = kubectlErr("delete", "erpsync", "--all", "-n", ns, "--wait=false") })
	env.hostile.admin(t, "POST", "/hostile/reset", nil)
	attack := func(a string) string { return hs.BaseURL + "/" + a }
	objs := secretYAML("own", true, hs.Credentials) +
		secretYAML("neighbour", false, map[string]string{"apiId": erp.Credentials["apiId"], "apiKey": "neighbour-secret-key"}) +
		// (a) claims the victim's company, fed forged records.
		hostileErpSync("claim", victimCompany, "own", attack(hostile.Forge)) +
		// (b) the victim's API id with another secret; the server throttles
		// it for a billion seconds. A Secret of its own: the hostile
		// tenant's other ErpSyncs, holders of "own" on the same host,
		// rightly share a limiter with each other.
		secretYAML("throttler", true, map[string]string{"apiId": erp.Credentials["apiId"], "apiKey": "throttler-secret-key"}) +
		hostileErpSync("throttle", "HOSTILE-THROTTLE", "throttler", attack(hostile.Throttle)) +
		// (c) a private address not in the allow-list, directly and by
		// redirects (to it, and to plain http on another host).
		hostileErpSync("internal", "HOSTILE-INTERNAL", "own", hs.InternalURL) +
		hostileErpSync("redirect-private", "HOSTILE-REDIRECT", "own", attack(hostile.RedirectPrivate)) +
		hostileErpSync("redirect-http", "HOSTILE-DOWNGRADE", "own", attack(hostile.RedirectHTTP)) +
		// (d) the neighbour's Secret, to be sent to the hostile server.
		hostileErpSync("exfil", "HOSTILE-EXFIL", "neighbour", attack(hostile.Exfil)) +
		// (f) a body beyond every cap.
		hostileErpSync("huge", "HOSTILE-HUGE", "own", attack(hostile.Huge))
	// (c) Xero's token request, with the client secret and the refresh
	// token, must not follow a tenant's baseURL to <its host>/connect/token.
	objs += secretYAML("xero", true, map[string]string{"clientId": "hostile-client", "clientSecret": "victim-platform-secret",
		"refreshToken": "refresh-token", "tenantId": "00000000-0000-0000-0000-000000000001"}) +
		strings.NewReplacer("type: unleashed", "type: xero").Replace(hostileErpSync("xero-token", "HOSTILE-XERO", "xero", hs.BaseURL+"/api.xro/2.0"))
	// Slow answers, enough to take every sync slot of the manager.
	for i := range 4 {
		objs += hostileErpSync(fmt.Sprintf("slow-%d", i), fmt.Sprintf("HOSTILE-SLOW-%d", i), "own", attack(hostile.Slow))
	}
	// A company belongs to its oldest ErpSync, by creation time in whole
	// seconds (then by UID): the hostile tenant comes at least a second
	// after the victim, as any tenant coming later does.
	if wait := time.Until(victim.Metadata.CreationTimestamp.Add(2 * time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	attacksAt := time.Now()
	applyYAML(t, ns, objs)

	t.Run("a: claiming another namespace's company is refused and writes nothing", func(t *testing.T) {
		var o erpsyncJSON
		eventually(t, time.Minute, "claim to stall with CompanyClaimed", func() bool {
			o, _ = getErpSync(t, ns, "claim")
			st, reason, _ := o.condition("Stalled")
			return st == "True" && reason == "CompanyClaimed"
		})
		st, reason, msg := o.condition("Ready")
		if st != "False" || reason != "CompanyClaimed" {
			t.Errorf("Ready %s/%s, want False/CompanyClaimed", st, reason)
		}
		if !strings.Contains(msg, victimNS) {
			t.Errorf("the message %q does not say which namespace owns the company", msg)
		}
		if strings.Contains(msg, victimName) || strings.Contains(msg, erp.BaseURL) {
			t.Errorf("the message %q tells more than the owning namespace", msg)
		}
		if n := hostileState(t).Routes[hostile.Forge].Requests; n != 0 {
			t.Errorf("the refused claim called its server %d times", n)
		}
	})

	t.Run("b: a 429 with a huge Retry-After for the victim's API id reaches the hostile sync only", func(t *testing.T) {
		eventually(t, time.Minute, "the throttling answer", func() bool {
			return hostileState(t).Routes[hostile.Throttle].Requests > 0
		})
		// The victim's schedule and the quota file are checked below, once
		// every attack is under way.
	})

	t.Run("c: private addresses are refused at dial time, directly and by redirect", func(t *testing.T) {
		// The internal service by its address: refused for what the spec
		// says, which the message may tell.
		var o erpsyncJSON
		eventually(t, time.Minute, "internal to fail", func() bool {
			o, _ = getErpSync(t, ns, "internal")
			st, _, _ := o.condition("Ready")
			return st == "False" && o.Status.Phase == "Failed"
		})
		if _, reason, msg := o.condition("Ready"); reason != "InvalidConfig" || !strings.Contains(msg, "egress policy") {
			t.Errorf("Ready %s: %q, want InvalidConfig saying the egress policy refused it", reason, msg)
		}
		// By redirects, to the internal service or to plain http on another
		// host: the message says only that the ERP could not be reached
		// (no oracle of what the manager can reach); the log says why.
		internalHost, plainHost := hostOf(t, hs.InternalURL), hostOf(t, hs.PlainURL)
		for _, name := range []string{"redirect-private", "redirect-http"} {
			t.Run(name, func(t *testing.T) {
				var o erpsyncJSON
				eventually(t, time.Minute, name+" to fail", func() bool {
					o, _ = getErpSync(t, ns, name)
					st, _, _ := o.condition("Ready")
					return st == "False" && o.Status.Phase == "Failed"
				})
				_, reason, msg := o.condition("Ready")
				if reason != "ERPUnavailable" {
					t.Errorf("Ready %s: %q, want ERPUnavailable", reason, msg)
				}
				for _, leak := range []string{internalHost, plainHost, "must not read"} {
					if strings.Contains(msg, leak) {
						t.Errorf("the message %q shows %q", msg, leak)
					}
				}
				if !managerLogged(name, "egress policy") {
					t.Errorf("the manager's log does not say the egress policy refused %s", name)
				}
			})
		}
		// Xero's token endpoint stays the vendor's (unreachable here): the
		// hostile host never sees the client secret.
		eventually(t, 2*time.Minute, "xero-token to fail", func() bool {
			o, _ = getErpSync(t, ns, "xero-token")
			st, _, _ := o.condition("Ready")
			return st == "False" && o.Status.Phase == "Failed"
		})
		st := hostileState(t)
		if r := st.Routes["other"]; r.Requests != 0 {
			t.Errorf("the hostile host received %d requests outside its attack paths (a token request?), headers %v", r.Requests, r.Headers)
		}
		if st.Internal != 0 {
			t.Errorf("the internal service received %d requests", st.Internal)
		}
		if st.Plain != 0 {
			t.Errorf("the plain-http target received %d requests", st.Plain)
		}
		if st.Routes[hostile.RedirectPrivate].Requests == 0 || st.Routes[hostile.RedirectHTTP].Requests == 0 {
			t.Errorf("the redirecting attacks were never called: %+v", st.Routes)
		}
	})

	t.Run("d: an unlabelled neighbour Secret is not read, nor sent", func(t *testing.T) {
		var o erpsyncJSON
		eventually(t, time.Minute, "exfil to fail with SecretNotLabelled", func() bool {
			o, _ = getErpSync(t, ns, "exfil")
			st, reason, _ := o.condition("Ready")
			return st == "False" && reason == "SecretNotLabelled"
		})
		if _, _, msg := o.condition("Ready"); !strings.Contains(msg, localenv.CredentialsLabel) {
			t.Errorf("the message %q does not name the label", msg)
		}
		if r := hostileState(t).Routes[hostile.Exfil]; r.Requests != 0 {
			t.Errorf("the hostile server received %d requests with the neighbour's Secret (headers %v)", r.Requests, r.Headers)
		}
	})

	t.Run("e: intervals that would starve the others are rejected by the API server", func(t *testing.T) {
		for _, tc := range []struct{ field, want string }{
			{"retryInterval: 1ms", "retryInterval must be at least 30s"},
			{"timeout: 1ms", "timeout must be at least 1m"},
		} {
			out, err := env.cp.RunStdin(context.Background(), strings.NewReader(erpsyncYAML("fast", "HOSTILE-FAST", "own", hs.BaseURL, "  "+tc.field+"\n")), "apply", "-n", ns, "-f", "-")
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("%s: want a rejection saying %q, got %v: %s", tc.field, tc.want, err, out)
			}
		}
	})

	t.Run("f: a body beyond the cap fails the sync cleanly, the manager stays up", func(t *testing.T) {
		var o erpsyncJSON
		eventually(t, 2*time.Minute, "huge to fail", func() bool {
			o, _ = getErpSync(t, ns, "huge")
			st, _, _ := o.condition("Ready")
			return st == "False" && o.Status.Phase == "Failed"
		})
		_, reason, msg := o.condition("Ready")
		t.Logf("huge: %s: %s", reason, msg)
		if len(msg) > 2048 {
			t.Errorf("a %d-byte message", len(msg))
		}
		if strings.Contains(msg, "xxxxxxxx") {
			t.Errorf("the message echoes the body: %.200q", msg)
		}
		if env.mgr.Exited() {
			t.Fatalf("the manager died:\n%s", env.mgr.Tail(3000))
		}
	})

	t.Run("the victim's next sync succeeds on time", func(t *testing.T) {
		// Slow answers are holding slots by now.
		eventually(t, time.Minute, "the slow attacks to be under way", func() bool {
			return hostileState(t).Routes[hostile.Slow].Requests >= 2
		})
		prev, _ := getErpSync(t, victimNS, victimName)
		if prev.Status.NextSyncAt == "" {
			t.Fatalf("the victim has no next sync: %+v", prev.Status)
		}
		due, err := time.Parse(time.RFC3339, prev.Status.NextSyncAt)
		if err != nil {
			t.Fatal(err)
		}
		// Within the interval after the attacks began, and with the
		// slack of a reconcile and a small sync.
		deadline := due.Add(45 * time.Second)
		var o erpsyncJSON
		eventually(t, time.Until(deadline), "the victim's next sync (due "+due.Format(time.RFC3339)+")", func() bool {
			o, _ = getErpSync(t, victimNS, victimName)
			st, _, _ := o.condition("Ready")
			return o.Status.LastSyncEnd != prev.Status.LastSyncEnd && o.Status.Phase == "Succeeded" && st == "True"
		})
		if o.Status.ConsecutiveFailures != 0 {
			t.Errorf("the victim failed %d times", o.Status.ConsecutiveFailures)
		}
		if v := env.hostile.vendor(t, "unleashed"); v.Throttled != 0 {
			t.Errorf("the victim's ERP throttled %d requests", v.Throttled)
		}
		t.Logf("attacks began %s ago; the victim's sync due at %s ended at %s", time.Since(attacksAt).Round(time.Second), due.Format(time.RFC3339), o.Status.LastSyncEnd)
	})

	t.Run("the victim's rows equal its ERP and were never touched", func(t *testing.T) {
		checkEqualsERP(t, victimCompany, erp)
		after := companyRows(t, victimCompany)
		changed := 0
		for k, v := range before {
			if after[k] != v {
				if changed < 5 {
					t.Errorf("%s changed: %s -> %s", k, v, after[k])
				}
				changed++
			}
		}
		if changed > 0 || len(after) != len(before) {
			t.Errorf("%d of %d rows changed; %d rows now", changed, len(before), len(after))
		}
		if n := hostileState(t).Routes[hostile.Forge].Requests; n != 0 {
			t.Errorf("the forged API was called %d times", n)
		}
		// Nothing a hostile server said is kept past a day, nor across a
		// restart: no quota block in the quota file reaches beyond it.
		for key, until := range quotaBlocks(t) {
			if until.After(time.Now().Add(25 * time.Hour)) {
				t.Errorf("quota %s is blocked until %s", key, until.Format(time.RFC3339))
			}
		}
		if env.mgr.Exited() {
			t.Fatalf("the manager died:\n%s", env.mgr.Tail(3000))
		}
	})
}

// checkEqualsERP checks that the CRM holds exactly the ERP's records of the
// company, per kind.
func checkEqualsERP(t *testing.T, company string, erp simVendor) {
	t.Helper()
	counts := crmCounts(t)[company]
	for kind, want := range erp.Expected {
		if got := counts[model.Kind(kind)]; got != want {
			t.Errorf("%s: %d %s in the CRM, its ERP has %d", company, got, kind, want)
		}
	}
	for kind, got := range counts {
		if _, ok := erp.Expected[string(kind)]; !ok && got > 0 {
			t.Errorf("%s: %d unexpected %s records", company, got, kind)
		}
	}
}

// companyRows returns every row of a company in the CRM's tables, keyed by
// table and vendor id, as its modified time, deleted flag and a hash of its
// content.
func companyRows(t *testing.T, company string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.pgDSN)
	if err != nil {
		t.Fatalf("connecting to the CRM: %v", err)
	}
	defer conn.Close(context.Background())
	rs, err := conn.Query(ctx, `SELECT table_name FROM information_schema.columns
		WHERE table_schema = 'erpsync' AND column_name = 'company' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, table := range tables {
		rs, err := conn.Query(ctx, "SELECT * FROM "+pgx.Identifier{"erpsync", table}.Sanitize()+" WHERE company = $1", company)
		if err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		fields := rs.FieldDescriptions()
		for rs.Next() {
			vals, err := rs.Values()
			if err != nil {
				t.Fatal(err)
			}
			key, sum := table, sha256.New()
			for i, f := range fields {
				if f.Name == "vendor_id" {
					key += "/" + fmt.Sprint(vals[i])
				}
				fmt.Fprintf(sum, "%s=%v;", f.Name, vals[i])
			}
			out[key] = hex.EncodeToString(sum.Sum(nil))
		}
		if err := rs.Err(); err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
	}
	return out
}

// quotaBlocks returns every blockedUntil in the manager's quota file, by the
// path of the object holding it.
func quotaBlocks(t *testing.T) map[string]time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.work, "quota.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("reading the quota file: %v", err)
	}
	out := map[string]time.Time{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "blockedUntil" {
					if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
						out[path] = at
					}
					continue
				}
				walk(path+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", doc)
	return out
}

// hostOf returns the host:port of a URL.
func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// managerLogged reports whether a line of the manager's log names the
// ErpSync and contains text.
func managerLogged(erpsync, text string) bool {
	b, err := os.ReadFile(env.mgr.Log)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"name":"`+erpsync+`"`) && strings.Contains(line, text) {
			return true
		}
	}
	return false
}

func hostileState(t *testing.T) hostile.State {
	t.Helper()
	var st hostile.State
	env.hostile.admin(t, "GET", "/hostile", &st)
	return st
}

func applyYAML(t *testing.T, ns, yaml string) {
	t.Helper()
	if out, err := env.cp.RunStdin(context.Background(), strings.NewReader(yaml), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// secretYAML is a Secret with data, labelled as credentials if labelled.
func secretYAML(name string, labelled bool, data map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n", name)
	if labelled {
		fmt.Fprintf(&b, "  labels:\n    %s: \"true\"\n", localenv.CredentialsLabel)
	}
	b.WriteString("stringData:\n")
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(&b, "  %s: %q\n", k, data[k])
	}
	b.WriteString("---\n")
	return b.String()
}

// erpsyncYAML is an Unleashed ErpSync syncing every minute; extra is more
// spec lines, indented by two spaces.
func erpsyncYAML(name, company, secret, baseURL, extra string) string {
	return fmt.Sprintf(`apiVersion: erpsync.io/v1alpha1
kind: ErpSync
metadata:
  name: %s
spec:
  companyId: %s
  interval: 1m
%s  connector:
    type: unleashed
    baseURL: %q
    credentialsRef:
      name: %s
---
`, name, company, extra, baseURL, secret)
}

// hostileErpSync is a hostile ErpSync: an hourly interval (its retries are
// what matter) and the shortest retry interval the API server accepts.
func hostileErpSync(name, company, secret, baseURL string) string {
	return strings.Replace(erpsyncYAML(name, company, secret, baseURL, "  retryInterval: 30s\n"), "interval: 1m\n", "interval: 1h\n", 1)
}
