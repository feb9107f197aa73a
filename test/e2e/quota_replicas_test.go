package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	cin7omnisim "github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/localenv"
	"github.com/erpsync/erpsync-operator/internal/quotastore"
	"github.com/erpsync/erpsync-operator/internal/sharding"
)

// quotaLeft is what is left of the credential's daily quota when the test
// starts: Cin7 Omni's real 5,000 calls a day, of which all but these were
// spent earlier in the day (erpsim --quota-spent, and the same count in the
// managers' quota ConfigMap). The manager learns the limit from the
// connector (cin7omni.PerDay, no flag lowers it), so the test cannot make
// the day smaller: it makes it nearly over.
const quotaLeft = 60

// quotaDataset is the Cin7 Omni account every ErpSync of the test reads.
// One full import of it costs 22 calls: a replica's two imports (44) fit
// in quotaLeft, so whichever replica spends second still finds calls; the
// four (88) do not, so some ErpSyncs run out.
var quotaDataset = struct{ products, customers, orders, warehouses int }{products: 800, customers: 300, orders: 300, warehouses: 3}

// TestTwoReplicasSpendOneDailyQuota runs two managers as the replicas of a
// StatefulSet (--shards=2, ordinals 0 and 1) over four ErpSyncs, two on
// each replica, that read one Cin7 Omni account with one credential (each
// its own Secret, the same user and API key). The day's quota has 60 calls
// left and the four imports want more. Through the quota ConfigMap the two
// replicas share what is left, in reserved blocks: together they never
// pass the limit (the ConfigMap's spent and reserved calls never exceed
// it, the simulator never refuses a call for the quota), both spend some
// of it, the ConfigMap's merged count equals every call the simulator
// received, and the ErpSyncs that got no more calls say so in status
// (Ready False, QuotaExhausted, retried at the reset).
func TestTwoReplicasSpendOneDailyQuota(t *testing.T) {
	ctx := context.Background()
	began := time.Now()
	const limit = cin7omni.PerDay
	if cin7omnisim.PerDay != limit {
		t.Fatalf("the simulator's daily limit %d is not the connector's %d", cin7omnisim.PerDay, limit)
	}
	spent := limit - quotaLeft
	// The test's calls must all fall in one UTC day, the managers' quota
	// period. (The simulator's day begins when erpsim starts: its clock
	// starts at its dataset's present, a midnight.)
	awayFromMidnight(t, 4*time.Minute)

	sim, err := startSim(ctx, "erpsim-quota", "--vendors", "cin7omni", "--quota-spent", fmt.Sprint(spent),
		"--products", fmt.Sprint(quotaDataset.products), "--customers", fmt.Sprint(quotaDataset.customers),
		"--orders", fmt.Sprint(quotaDataset.orders), "--warehouses", fmt.Sprint(quotaDataset.warehouses))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.proc.Stop(5 * time.Second) })
	v, _ := findVendor(sim, "cin7omni")
	hosts, err := localenv.AllowHosts(v.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	allow := append(append([]string(nil), env.allowHosts...), hosts...)

	// The managers' namespace (quota ConfigMaps, shard Leases) and the
	// tenant's.
	sys := newNamespace(t, "quota-system")
	ns := newNamespace(t, "quota")

	// The credential's quota ConfigMap, as the managers name and write it
	// (internal/quotastore), counting the calls spent earlier today.
	key := quotaKey(t, v)
	cmName := quotastore.Name(key)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	usage, err := json.Marshal(map[string]httpapi.QuotaUsage{"day": {PeriodStart: day, Used: int64(spent)}})
	if err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
  labels:
    %s: "true"
  annotations:
    erpsync.io/quota-key: %q
data:
  usage.json: %q
  state: closed
  writtenAt: %q
  flushEvery: 5s
`, cmName, quotastore.LabelKey, key, usage, time.Now().UTC().Format(time.RFC3339Nano))
	if out, err := env.cp.RunStdin(ctx, strings.NewReader(seed), "apply", "-n", sys, "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	// The shared manager watches every namespace: it must not sync these.
	if err := env.mgr.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if env.mgr, err = startManager(); err != nil {
			t.Errorf("restarting the shared manager: %v", err)
		}
	})

	// Four ErpSyncs, two in each shard (named by the managers' hash).
	type target struct {
		name, company string
		shard         int
	}
	var targets []target
	perShard := map[int]int{}
	for i := 0; len(targets) < 4; i++ {
		name := fmt.Sprintf("omni-%d", i)
		s := sharding.Of(ns, name, 2)
		if perShard[s] == 2 {
			continue
		}
		perShard[s]++
		targets = append(targets, target{name: name, company: fmt.Sprintf("QUOTA-CO-%d", len(targets)+1), shard: s})
	}
	var yaml strings.Builder
	for _, tg := range targets {
		fmt.Fprintf(&yaml, `apiVersion: v1
kind: Secret
metadata:
  name: %[1]s
  labels:
    %[2]s: "true"
stringData:
  username: %[3]q
  apiKey: %[4]q
---
apiVersion: erpsync.io/v1alpha1
kind: ErpSync
metadata:
  name: %[1]s
spec:
  companyId: %[5]s
  interval: 1h
  connector:
    type: cin7omni
    baseURL: %[6]q
    credentialsRef:
      name: %[1]s
---
`, tg.name, localenv.CredentialsLabel, v.Credentials["username"], v.Credentials["apiKey"], tg.company, v.BaseURL)
	}

	mgrs := map[string]*localenv.Process{}
	for i := range 2 {
		name := fmt.Sprintf("quota-manager-%d", i)
		p, err := startQuotaManager(i, name, ns, sys, allow)
		if err != nil {
			t.Fatal(err)
		}
		mgrs[name] = p
		t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	}
	defer func() {
		if t.Failed() {
			for name, p := range mgrs {
				t.Logf("%s log (last lines):\n%s", name, p.Tail(3000))
			}
		}
	}()
	// Both replicas hold their shards before the ErpSyncs arrive, so that
	// both start spending at once.
	eventually(t, time.Minute, "each replica to hold its own shard's Lease", func() bool {
		for i := range 2 {
			out, err := kubectlErr("get", "-n", sys, "lease/"+sharding.ShardLeaseName(sharding.DefaultPrefix, i), "-o", "jsonpath={.spec.holderIdentity}")
			if err != nil || !strings.HasPrefix(strings.TrimSpace(out), fmt.Sprintf("quota-manager-%d_", i)) {
				return false
			}
		}
		return true
	})
	t.Logf("both replicas hold their shards %s into the test", time.Since(began).Round(time.Second))
	if out, err := env.cp.RunStdin(ctx, strings.NewReader(yaml.String()), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	applied := time.Now()

	// Until every import has ended, in success or out of calls: the
	// ConfigMap's spent and reserved calls never pass the limit, and the
	// simulator never admits more than was left.
	var maxClaimed int64
	blocks := map[string]int64{}
	type outcome struct {
		o   erpsyncJSON
		raw map[string]any
	}
	settled := map[string]outcome{}
	// firstCalls is when each replica's ErpSyncs first showed calls made.
	firstCalls := map[int]time.Duration{}
	done := pollFor(3*time.Minute, func() bool {
		c := readQuotaCounter(t, sys, cmName)
		maxClaimed = max(maxClaimed, c.Used+c.held())
		if c.Used+c.held() > limit {
			t.Fatalf("the replicas spent %d and hold %d calls of a quota of %d", c.Used, c.held(), limit)
		}
		for id, n := range c.Held {
			blocks[id] = max(blocks[id], n)
		}
		if st := quotaStats(t, sim); st.Requests-st.Throttled > quotaLeft || st.QuotaRefused > 0 {
			t.Fatalf("the simulator admitted %d calls (%d were left) and refused %d for the quota", st.Requests-st.Throttled, quotaLeft, st.QuotaRefused)
		}
		for _, tg := range targets {
			o, raw := getErpSync(t, ns, tg.name)
			if _, seen := firstCalls[tg.shard]; !seen && callsSoFar(o, raw) > 0 {
				firstCalls[tg.shard] = time.Since(applied).Round(time.Second)
			}
			st, reason, _ := o.condition("Ready")
			switch {
			case o.Status.Phase == "Succeeded" && st == "True",
				o.Status.Phase == "Failed" && st == "False" && reason == string(connectors.KindQuotaExhausted):
				settled[tg.name] = outcome{o, raw}
			default:
				delete(settled, tg.name)
			}
		}
		return len(settled) == len(targets)
	})
	if !done {
		for _, tg := range targets {
			o, _ := getErpSync(t, ns, tg.name)
			st, reason, msg := o.condition("Ready")
			t.Logf("%s (shard %d): phase %s, Ready %s %s: %s", tg.name, tg.shard, o.Status.Phase, st, reason, msg)
		}
		t.Fatal("timed out after 3m waiting for every import to succeed or run out of calls")
	}
	t.Logf("every import ended %s after the ErpSyncs were applied; the replicas' first calls were seen after %v (by shard)", time.Since(applied).Round(time.Second), firstCalls)

	// The replicas stop, returning the calls they reserved and did not
	// spend; the ConfigMap then counts every call sent.
	var wg sync.WaitGroup
	for name, p := range mgrs {
		wg.Go(func() {
			if err := p.Stop(20 * time.Second); err != nil {
				t.Errorf("stopping %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	st := quotaStats(t, sim)
	c := readQuotaCounter(t, sys, cmName)
	sent := c.Used - int64(spent)
	t.Logf("quota %d, %d left at the start; the replicas counted %d calls sent, at most %d spent or reserved at once (blocks reserved, largest per replica: %v); "+
		"the simulator received %d requests, served %d, refused %d for a rate window and %d for the quota",
		limit, quotaLeft, sent, maxClaimed-int64(spent), blocks, st.Requests, st.Served, st.Throttled-st.QuotaRefused, st.QuotaRefused)
	if c.Used > limit {
		t.Errorf("the ConfigMap counts %d calls of a quota of %d", c.Used, limit)
	}
	if len(c.Held) != 0 {
		t.Errorf("stopped replicas still hold calls: %v", c.Held)
	}
	switch {
	case sent < st.Requests:
		t.Errorf("the ConfigMap counts %d calls sent today by the replicas, the simulator received %d: calls went uncounted (counts overwritten, not merged)", sent, st.Requests)
	case sent > st.Requests:
		t.Errorf("the ConfigMap counts %d calls sent today by the replicas, the simulator received %d: calls counted twice, or lost on the way", sent, st.Requests)
	}
	if st.QuotaRefused != 0 {
		t.Errorf("the simulator refused %d calls for the day's quota: the replicas sent past it", st.QuotaRefused)
	}
	if admitted := st.Requests - st.Throttled; admitted > quotaLeft || st.Served > quotaLeft {
		t.Errorf("the simulator admitted %d calls and served %d; %d were left", admitted, st.Served, quotaLeft)
	}
	if len(blocks) < 2 {
		t.Errorf("the ConfigMap showed the reservations of %d replicas, want both", len(blocks))
	}

	// Both replicas spent calls, each on its own shard's ErpSyncs; the
	// ErpSyncs account for every call; those that ran out say so.
	runs := workRuns(t, mgrs, time.Now())
	callsOf := map[int]int64{}
	var total int64
	exhausted := 0
	var importCost int64
	counts := crmCounts(t)
	next := day.Add(24 * time.Hour)
	for _, tg := range targets {
		o := settled[tg.name].o
		calls := callsSoFar(o, settled[tg.name].raw)
		_, reason, msg := o.condition("Ready")
		if o.Status.Phase == "Succeeded" {
			importCost = max(importCost, calls)
			for kind, want := range v.Expected {
				if got := counts[tg.company][model.Kind(kind)]; got != want {
					t.Errorf("%s (%s): %d %s in the CRM, the account has %d", tg.company, tg.name, got, kind, want)
				}
			}
		} else {
			exhausted++
			if !strings.Contains(msg, "quota") {
				t.Errorf("%s ran out of calls with reason %s and message %q, which does not name the quota", tg.name, reason, msg)
			}
			at, err := time.Parse(time.RFC3339, o.Status.NextSyncAt)
			if err != nil || at.Before(next) {
				t.Errorf("%s ran out of calls and retries at %q, before the quota's reset at %s", tg.name, o.Status.NextSyncAt, next.Format(time.RFC3339))
			}
		}
		callsOf[tg.shard] += calls
		total += calls
		procs := map[string]bool{}
		for _, r := range runs[tg.name] {
			procs[r.proc] = true
		}
		if own := fmt.Sprintf("quota-manager-%d", tg.shard); len(procs) != 1 || !procs[own] {
			t.Errorf("%s (shard %d) ran in %v, want only %s", tg.name, tg.shard, procs, own)
		}
		t.Logf("%s (shard %d): %s, %d calls: %s", tg.name, tg.shard, o.Status.Phase, calls, msg)
	}
	t.Logf("calls per replica: %v", callsOf)
	for s := range 2 {
		if callsOf[s] == 0 {
			t.Errorf("replica %d spent no call: both replicas were to work", s)
		}
	}
	// The premise: one replica's two imports fit in what is left (so the
	// replica that starts spending second still finds calls), the four do
	// not.
	if importCost > 0 && (2*importCost >= quotaLeft || 4*importCost <= quotaLeft) {
		t.Errorf("a full import costs %d calls: the test wants two (%d) to fit in the %d calls left and four (%d) not to; resize quotaDataset",
			importCost, 2*importCost, quotaLeft, 4*importCost)
	}
	if exhausted == 0 {
		t.Errorf("every import finished within the %d calls left: the test wants more than the quota", quotaLeft)
	}
	if total != st.Requests {
		t.Errorf("the ErpSyncs account for %d calls, the simulator received %d", total, st.Requests)
	}
}

// callsSoFar is the calls an ErpSync's import made: those of the sync
// under way (status.progress), else of the import across its syncs
// (status.import), else of the last sync.
func callsSoFar(o erpsyncJSON, raw map[string]any) int64 {
	if n := progressCalls(o); n > 0 {
		return n
	}
	status, _ := raw["status"].(map[string]any)
	imp, _ := status["import"].(map[string]any)
	if n, _ := imp["apiCalls"].(int64); n > 0 {
		return n
	}
	if o.Status.LastSync != nil {
		return o.Status.LastSync.APICalls
	}
	return 0
}

// pollFor polls cond until it returns true (true) or the timeout passes
// (false).
func pollFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// awayFromMidnight waits, when the next UTC midnight is nearer than d,
// until it has passed.
func awayFromMidnight(t *testing.T, d time.Duration) {
	t.Helper()
	midnight := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if time.Until(midnight) > d {
		return
	}
	t.Logf("waiting for UTC midnight (%s) to pass: the quota's day must not end during the test", midnight.Format(time.RFC3339))
	for time.Now().Before(midnight.Add(time.Second)) {
		time.Sleep(min(time.Until(midnight.Add(time.Second)), time.Second))
	}
}

// simQuotaStats is what erpsim counted of the Cin7 Omni credential: every
// request, those answered 2xx, those refused for a limit, and of those the
// refusals for the day's quota.
type simQuotaStats struct {
	Requests     int64 `json:"requests"`
	Served       int64 `json:"served"`
	Throttled    int64 `json:"throttled"`
	QuotaRefused int64 `json:"quotaRefused"`
}

func quotaStats(t *testing.T, sim *simProcess) simQuotaStats {
	t.Helper()
	var st simQuotaStats
	sim.admin(t, "GET", "/vendors/cin7omni/stats", &st)
	return st
}

// quotaKey is the limiter key of the simulator's Cin7 Omni credential, as
// the connector builds it (its quota ConfigMap is named after it).
func quotaKey(t *testing.T, v simVendor) string {
	t.Helper()
	creds := map[string][]byte{}
	for k, val := range v.Credentials {
		creds[k] = []byte(val)
	}
	conn, err := cin7omni.NewWithOptions(context.Background(), connectors.Config{Type: cin7omni.Type, BaseURL: v.BaseURL, Credentials: creds},
		cin7omni.Options{Registry: httpapi.NewRegistry(nil)})
	if err != nil {
		t.Fatal(err)
	}
	keys := conn.(*cin7omni.Connector).LimitKeys()
	if len(keys) != 1 {
		t.Fatalf("the Cin7 Omni connector has limiters %v, want one", keys)
	}
	return keys[0]
}

// quotaCounter is the day's quota in a quota ConfigMap's usage.json: the
// calls every replica reported spent and those each holds reserved.
type quotaCounter struct {
	Used int64            `json:"used"`
	Held map[string]int64 `json:"held"`
}

func (c quotaCounter) held() int64 {
	var n int64
	for _, h := range c.Held {
		n += h
	}
	return n
}

func readQuotaCounter(t *testing.T, ns, name string) quotaCounter {
	t.Helper()
	raw := kubectl(t, "get", "-n", ns, "configmap/"+name, "-o", `jsonpath={.data.usage\.json}`)
	var m map[string]quotaCounter
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("quota ConfigMap %s: %v: %s", name, err, raw)
	}
	return m["day"]
}

// startQuotaManager starts one of the two replicas: --shards=2 and its
// ordinal, watching only ns, counting quotas in ConfigMaps of sys (where
// its shard Leases are too), with no webhook receiver and debug logs (each
// sync's start and end). Its pod name (in its shard Leases' holder) is
// name.
func startQuotaManager(ordinal int, name, ns, sys string, allow []string) (*localenv.Process, error) {
	return localenv.Start(name, filepath.Join(env.work, name+".log"), []string{"KUBECONFIG=" + env.cp.Kubeconfig, "POD_NAME=" + name}, env.manager,
		"--shards=2", fmt.Sprintf("--shard-ordinal=%d", ordinal), "--shard-lease-namespace="+sys,
		"--shard-lease-duration="+shardLease.String(), "--shard-renew-deadline="+shardRenew.String(), "--shard-retry-period="+shardRetry.String(),
		"--watch-namespaces="+ns, "--zap-log-level=debug", "--zap-time-encoding=rfc3339nano",
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhook-bind-address=0",
		"--checkpoint-interval=200ms",
		"--egress-allow-hosts="+strings.Join(allow, ","),
		"--sink=postgres", "--sink-postgres-dsn-file="+env.dsnFile,
		"--quota-namespace="+sys)
}
