package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	katanasim "github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/localenv"
	"github.com/erpsync/erpsync-operator/internal/sharding"
)

// The sharded managers' lease timing: short, so that the test is quick,
// in the ratios of the defaults (15s/10s/2s).
const (
	shardLease = 6 * time.Second
	shardRenew = 4 * time.Second
	shardRetry = 500 * time.Millisecond
)

// shardDataset is the dataset of every company of the test's erpsim: a
// Katana account at its real 60 calls a minute, 250 records a page, so
// that an import takes more than one minute's calls and waits in the
// middle for the next minute.
var shardDataset = simkit.Options{Seed: 1, Products: 4000, Customers: 100, Orders: 60, Warehouses: 3}

// TestShardedReplicasTakeOverAKilledOne runs three managers as the
// replicas of a StatefulSet (--shards=3, ordinals 0..2) over six ErpSyncs,
// two per shard, each importing its own Katana company. It kills -9 the
// replica of shard 1 in the middle of its imports: the others take its
// shard over within a lease duration and resume its imports from their
// checkpoints; the killed replica comes back and gets its shard back. At
// the end the CRM equals every company's dataset, and the managers' logs
// show that no ErpSync's sync ever ran in two processes at once.
func TestShardedReplicasTakeOverAKilledOne(t *testing.T) {
	ctx := context.Background()
	const companies = 6
	sim, err := startSim(ctx, "erpsim-shard", "--vendors", "katana", "--companies", fmt.Sprint(companies),
		"--products", fmt.Sprint(shardDataset.Products), "--customers", fmt.Sprint(shardDataset.Customers),
		"--orders", fmt.Sprint(shardDataset.Orders), "--warehouses", fmt.Sprint(shardDataset.Warehouses), "--seed", fmt.Sprint(shardDataset.Seed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.proc.Stop(5 * time.Second) })
	v, _ := findVendor(sim, "katana")
	co := simCompanies(t, "erpsim-shard", "katana")
	if len(co) != companies {
		t.Fatalf("erpsim published %d companies, want %d", len(co), companies)
	}
	// Each company's dataset is seeded by its number (erpsim's rule);
	// company 1's expectation, published by erpsim, checks ours.
	expected := func(k int) map[model.Kind]int {
		ds := shardDataset
		ds.Seed += uint64(k)
		return katanasim.New(katanasim.Options{Dataset: ds}).Expected()
	}
	for kind, n := range v.Expected {
		if got := expected(1)[model.Kind(kind)]; got != n {
			t.Fatalf("company 1's dataset as this test builds it has %d %s, erpsim's %d: the test no longer builds erpsim's datasets", got, kind, n)
		}
	}
	hosts, err := localenv.AllowHosts(v.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	allow := append(append([]string(nil), env.allowHosts...), hosts...)

	// The shared manager watches every namespace: it must not sync these.
	if err := env.mgr.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if env.mgr, err = startManager(); err != nil {
			t.Errorf("restarting the shared manager: %v", err)
		}
	})

	// Six ErpSyncs, two in each shard (the test picks names by the hash
	// the managers use).
	ns := newNamespace(t, "shard")
	type target struct {
		name, company string
		shard, k      int
	}
	var targets []target
	perShard := map[int]int{}
	for i := 0; len(targets) < companies; i++ {
		name := fmt.Sprintf("co-%d", i)
		s := sharding.Of(ns, name, 3)
		if perShard[s] == 2 {
			continue
		}
		perShard[s]++
		k := len(targets) + 1
		targets = append(targets, target{name: name, company: fmt.Sprintf("SHARD-CO-%d", k), shard: s, k: k})
	}
	var yaml strings.Builder
	for _, tg := range targets {
		c := co[tg.k-1]
		fmt.Fprintf(&yaml, `apiVersion: v1
kind: Secret
metadata:
  name: %[1]s
  labels:
    erpsync.io/credentials: "true"
stringData:
  apiKey: %[2]q
---
apiVersion: erpsync.io/v1alpha1
kind: ErpSync
metadata:
  name: %[1]s
spec:
  companyId: %[3]s
  interval: 1h
  connector:
    type: katana
    baseURL: %[4]q
    credentialsRef:
      name: %[1]s
---
`, tg.name, c.Credentials["apiKey"], tg.company, c.BaseURL)
	}

	// Three replicas.
	mgrs := map[string]*localenv.Process{}
	start := func(ordinal int, name string) {
		t.Helper()
		p, err := startShardManager(ordinal, name, ns, allow)
		if err != nil {
			t.Fatal(err)
		}
		mgrs[name] = p
		t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	}
	for i := range 3 {
		start(i, fmt.Sprintf("shard-manager-%d", i))
	}
	if out, err := env.cp.RunStdin(ctx, strings.NewReader(yaml.String()), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	// Every import under way, and shard 1's past its first checkpoints.
	eventually(t, 3*time.Minute, "shard 1's imports to checkpoint", func() bool {
		for _, tg := range targets {
			o, _ := getErpSync(t, ns, tg.name)
			if o.Status.Phase != "Syncing" {
				return false
			}
			if tg.shard == 1 && (o.Status.Progress == nil || o.Status.Progress.APICalls < 3) {
				return false
			}
		}
		return true
	})
	victim := "shard-manager-1"
	if err := mgrs[victim].Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	atKill := map[string]int64{}
	for _, tg := range targets {
		o, _ := getErpSync(t, ns, tg.name)
		atKill[tg.name] = progressCalls(o)
		t.Logf("at the kill: %s (shard %d) phase %s, %d calls checkpointed", tg.name, tg.shard, o.Status.Phase, progressCalls(o))
	}

	// Shard 1's imports resume on another replica within a lease duration.
	var takeover time.Duration
	eventually(t, 2*time.Minute, "another replica to resume shard 1's imports", func() bool {
		runs := workRuns(t, mgrs, killedAt)
		for _, tg := range targets {
			if tg.shard != 1 {
				continue
			}
			var found bool
			for _, r := range runs[tg.name] {
				if r.proc != victim && r.start.After(killedAt) {
					found = true
					if r.trigger != "resume" {
						t.Errorf("%s was taken over by %s with trigger %q, want resume (from its checkpoint)", tg.name, r.proc, r.trigger)
					}
					takeover = max(takeover, r.start.Sub(killedAt))
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
	t.Logf("shard 1's imports resumed on another replica %s after the kill (lease duration %s)", takeover.Round(time.Millisecond), shardLease)
	if takeover > shardLease+4*shardRetry+5*time.Second {
		t.Errorf("the takeover took %s: more than a lease duration (%s) and the time to notice it", takeover, shardLease)
	}

	// The foster checkpoints further, then replica 1 comes back: it gets
	// its shard back and resumes the imports again, after the foster's
	// syncs have stopped.
	eventually(t, time.Minute, "the foster to checkpoint further", func() bool {
		for _, tg := range targets {
			if o, _ := getErpSync(t, ns, tg.name); tg.shard == 1 && progressCalls(o) <= atKill[tg.name] {
				return false
			}
		}
		return true
	})
	back := "shard-manager-1b"
	start(1, back)
	eventually(t, 2*time.Minute, "the returned replica to resume its shard", func() bool {
		runs := workRuns(t, mgrs, killedAt)
		for _, tg := range targets {
			if tg.shard != 1 {
				continue
			}
			mine := runs[tg.name].in(back)
			if len(mine) == 0 {
				return false
			}
			if mine[0].trigger != "resume" {
				t.Errorf("%s: the returned replica's first run has trigger %q, want resume: the foster's import ended before the hand-back, or the hand-back lost its checkpoint", tg.name, mine[0].trigger)
			}
		}
		return true
	})

	eventually(t, 8*time.Minute, "every import to finish", func() bool {
		for _, tg := range targets {
			o, raw := getErpSync(t, ns, tg.name)
			st, _, _ := o.condition("Ready")
			status, _ := raw["status"].(map[string]any)
			if st != "True" || o.Status.Phase != "Succeeded" || status["import"] != nil {
				return false
			}
		}
		return true
	})

	// Nothing lost: the CRM equals each company's dataset.
	counts := crmCounts(t)
	for _, tg := range targets {
		for kind, want := range expected(tg.k) {
			if got := counts[tg.company][kind]; got != want {
				t.Errorf("%s (%s, shard %d): %d %s in the CRM, the dataset has %d", tg.company, tg.name, tg.shard, got, kind, want)
			}
		}
	}

	// Never twice at once: per ErpSync, the work of different processes
	// never overlaps (the killed process's runs end at the kill).
	runs := workRuns(t, mgrs, killedAt)
	moved := 0
	for _, tg := range targets {
		list := runs[tg.name]
		procs := map[string]bool{}
		for _, r := range list {
			procs[r.proc] = true
		}
		if tg.shard == 1 {
			moved++
			if len(procs) < 3 {
				t.Errorf("%s (shard 1) ran in %v: want the killed replica, a foster and the returned replica", tg.name, procs)
			}
		} else if len(procs) != 1 {
			t.Errorf("%s (shard %d) ran in %v: its replica never died, it should not have moved", tg.name, tg.shard, procs)
		}
		for a := range list {
			for b := a + 1; b < len(list) && list[b].start.Before(list[a].end); b++ {
				if list[a].proc != list[b].proc {
					t.Errorf("%s ran in two processes at once: %s [%s, %s] and %s [%s, %s]", tg.name,
						list[a].proc, list[a].start.Format("15:04:05.000"), list[a].end.Format("15:04:05.000"),
						list[b].proc, list[b].start.Format("15:04:05.000"), list[b].end.Format("15:04:05.000"))
				}
			}
		}
		t.Logf("%s (shard %d): %d runs in %d processes: %s", tg.name, tg.shard, len(list), len(procs), list)
	}
	if moved == 0 {
		t.Error("no ErpSync was in shard 1")
	}
	st := sim.vendor(t, "katana")
	t.Logf("katana: %d requests over the %d companies, %d refused for a limit", st.Requests, companies, st.Throttled)
	if t.Failed() {
		for name, p := range mgrs {
			t.Logf("%s log (last lines):\n%s", name, p.Tail(3000))
		}
	}
}

// companyState is one company erpsim serves (--companies).
type companyState struct {
	Company     int               `json:"company"`
	BaseURL     string            `json:"baseURL"`
	Credentials map[string]string `json:"credentials"`
}

// simCompanies reads the companies an erpsim started with --companies
// serves for a vendor, from its state file.
func simCompanies(t *testing.T, simName, vendor string) []companyState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.work, simName+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Vendors []struct {
			Vendor    string         `json:"vendor"`
			Companies []companyState `json:"companies"`
		} `json:"vendors"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, v := range st.Vendors {
		if v.Vendor == vendor {
			return v.Companies
		}
	}
	t.Fatalf("erpsim %s serves no %s", simName, vendor)
	return nil
}

// startShardManager starts one sharded replica: the manager binary with
// --shards=3 and its ordinal, watching only ns, with lease timing short
// enough for a test and debug logs (each sync's start and end).
func startShardManager(ordinal int, name, ns string, allow []string) (*localenv.Process, error) {
	return localenv.Start(name, filepath.Join(env.work, name+".log"), []string{"KUBECONFIG=" + env.cp.Kubeconfig}, env.manager,
		"--shards=3", fmt.Sprintf("--shard-ordinal=%d", ordinal), "--shard-lease-namespace=default",
		"--shard-lease-duration="+shardLease.String(), "--shard-renew-deadline="+shardRenew.String(), "--shard-retry-period="+shardRetry.String(),
		"--watch-namespaces="+ns, "--zap-log-level=debug", "--zap-time-encoding=rfc3339nano",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		// Three processes on one host: no webhook receiver (they would
		// all bind its default port).
		"--webhook-bind-address=0",
		"--checkpoint-interval=200ms", "--concurrent-syncs=8", "--max-syncs-per-namespace=8",
		"--egress-allow-hosts="+strings.Join(allow, ","),
		"--sink=postgres", "--sink-postgres-dsn-file="+env.dsnFile,
		"--quota-file="+filepath.Join(env.work, name+"-quota.json"))
}

// workRun is one run of background work (a sync) of one ErpSync in one
// manager process, from its "work started" to its "work ended" log line.
type workRun struct {
	proc, trigger string
	start, end    time.Time
}

func (r workRun) String() string {
	return fmt.Sprintf("%s %s [%s, %s]", r.proc, r.trigger, r.start.Format("15:04:05.000"), r.end.Format("15:04:05.000"))
}

type runList []workRun

func (rs runList) in(proc string) runList {
	var out runList
	for _, r := range rs {
		if r.proc == proc {
			out = append(out, r)
		}
	}
	return out
}

// workRuns reads the managers' logs: the runs of each ErpSync, by start.
// A run with no end yet ends now, or at the kill for the killed process.
func workRuns(t *testing.T, mgrs map[string]*localenv.Process, killedAt time.Time) map[string]runList {
	t.Helper()
	out := map[string]runList{}
	for name, p := range mgrs {
		f, err := os.Open(p.Log)
		if err != nil {
			t.Fatal(err)
		}
		open := map[string]workRun{}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Msg     string          `json:"msg"`
				TS      json.RawMessage `json:"ts"`
				ErpSync json.RawMessage `json:"erpsync"`
				Trigger string          `json:"trigger"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || (l.Msg != "work started" && l.Msg != "work ended") {
				continue
			}
			key, at := erpSyncName(l.ErpSync), logTime(t, l.TS)
			switch l.Msg {
			case "work started":
				open[key] = workRun{proc: name, trigger: l.Trigger, start: at}
			case "work ended":
				r, ok := open[key]
				if !ok {
					t.Errorf("%s: %s ended work it never started", name, key)
					continue
				}
				r.end = at
				out[key] = append(out[key], r)
				delete(open, key)
			}
		}
		_ = f.Close()
		for key, r := range open {
			r.end = time.Now()
			if p.Exited() {
				r.end = killedAt
			}
			out[key] = append(out[key], r)
		}
	}
	for _, rs := range out {
		sort.Slice(rs, func(a, b int) bool { return rs[a].start.Before(rs[b].start) })
	}
	return out
}

// erpSyncName reads the ErpSync's name from a log line's key (logged as
// {"name","namespace"} or "namespace/name").
func erpSyncName(raw json.RawMessage) string {
	var k struct{ Name string }
	if json.Unmarshal(raw, &k) == nil && k.Name != "" {
		return k.Name
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s[strings.LastIndexByte(s, '/')+1:]
}

// logTime reads zap's timestamp: epoch seconds, or an RFC 3339 string.
func logTime(t *testing.T, raw json.RawMessage) time.Time {
	t.Helper()
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("log timestamp %s: %v", raw, err)
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("log timestamp %s: %v", raw, err)
	}
	return at
}

func progressCalls(o erpsyncJSON) int64 {
	if o.Status.Progress == nil {
		return 0
	}
	return o.Status.Progress.APICalls
}
