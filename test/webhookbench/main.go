// Command webhookbench is the webhook latency benchmark
// (hack/bench.d/webhooks.sh, part of `make bench`). It runs what a user
// runs: a real etcd and kube-apiserver (internal/localenv), the manager
// binary built from ./cmd/manager with its webhook receiver on loopback
// and the PostgreSQL sink (ERPSYNC_TEST_POSTGRES_DSN, else a throwaway
// server from the installed binaries), and erpsim serving the four vendors
// that send webhooks. The samples of config/samples are applied with
// webhooks on (default debounce) and an interval of 1h; Xero's app webhook
// is set through erpsim's portal endpoint and passes its intent-to-receive
// check; the other three are subscribed by the operator.
//
// After the first import and -settle (so that the vendors' per-minute
// windows hold none of the setup's calls), -changes records of each vendor
// (of the kinds its webhooks announce, each record once) are edited through
// erpsim's admin API, spread evenly over -spread, all vendors at once. The latency of
// a change is the synced_at the sink stores with the record's new version
// (PostgreSQL's now() in the write's transaction) minus the wall-clock time
// just before erpsim was asked to make the change. It prints, per vendor,
//
//	BENCH <vendor>_webhook_latency_p50_ms     median latency
//	BENCH <vendor>_webhook_latency_p95_ms     95th percentile (nearest rank)
//	BENCH <vendor>_webhook_calls_per_event    vendor API requests erpsim served from the first change until every change had arrived, per change
//
// and fails (a FAIL line, exit 1) when a vendor refused a request for a
// limit (429, 503 or a quota answer, as erpsim counts them), when a change
// did not arrive within -arrive-timeout, or when a routine poll ran during
// the phase (the figures would not be the webhooks' alone). The targets of
// issue 14 (p95 under 5,000 ms, at most 2 calls an event) are checked and
// reported in NOTE lines.
//
//	go run ./test/webhookbench -changes 200 -spread 1m
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/localenv"
	"github.com/erpsync/erpsync-operator/internal/pgtest"
)

// vendors are the vendors that send webhooks, in erpsim's names.
var vendors = []string{"xero", "katana", "unleashed", "cin7core"}

// changeKinds are the dataset kinds each vendor's changes edit: what its
// webhooks announce (Xero: contacts, no items; Katana: products, no
// customers), alternating where there are two.
var changeKinds = map[string][]string{
	"xero":      {simkit.AdminCustomers},
	"katana":    {simkit.AdminProducts},
	"unleashed": {simkit.AdminProducts, simkit.AdminCustomers},
	"cin7core":  {simkit.AdminProducts, simkit.AdminCustomers},
}

// crmKeys maps a dataset kind to its CRM table and natural-key column.
var crmKeys = map[string]struct{ table, col string }{
	simkit.AdminProducts:  {"products", "sku"},
	simkit.AdminCustomers: {"customers", "code"},
}

// Issue 14's targets.
const (
	targetP95           = 5 * time.Second
	targetCallsPerEvent = 2.0
)

type options struct {
	changes       int
	spread        time.Duration
	products      int
	customers     int
	orders        int
	arriveTimeout time.Duration
	settle        time.Duration
	keep          bool
}

func main() {
	var o options
	flag.IntVar(&o.changes, "changes", 200, "Records edited per vendor (each once).")
	flag.DurationVar(&o.spread, "spread", time.Minute, "The changes of each vendor are spread evenly over this long.")
	flag.IntVar(&o.products, "products", 250, "Products per vendor in erpsim.")
	flag.IntVar(&o.customers, "customers", 250, "Customers per vendor in erpsim.")
	flag.IntVar(&o.orders, "orders", 60, "Sales orders per vendor in erpsim.")
	flag.DurationVar(&o.arriveTimeout, "arrive-timeout", 10*time.Minute, "Longest wait, after the last change, for every change to be in the CRM.")
	flag.DurationVar(&o.settle, "settle", 65*time.Second, "Wait this long after the first imports before the changes, so that the vendors' per-minute windows hold none of the setup's calls.")
	flag.BoolVar(&o.keep, "keep", false, "Keep the work directory (logs, database).")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Printf("FAIL webhookbench: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s webhookbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// failure is a run that measured but broke a rule: its figures are printed,
// then it fails.
type failure struct{ reasons []string }

func (f *failure) Error() string { return strings.Join(f.reasons, "; ") }

func run(ctx context.Context, o options) (err error) {
	if o.changes < 1 || o.spread <= 0 {
		return errors.New("-changes and -spread must be positive")
	}
	root, err := localenv.Root()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "erpsync-webhookbench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			logf("work directory kept: %s", work)
			return
		}
		_ = os.RemoveAll(work)
	}()
	// PostgreSQL runs as an unprivileged user and needs to reach its
	// directory below this one.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	binDir, err := localenv.K8sBinDir(ctx, root)
	if err != nil {
		return err
	}
	logf("building the manager and erpsim")
	managerBin, err := localenv.Build(ctx, root, "./cmd/manager", work)
	if err != nil {
		return err
	}
	erpsimBin, err := localenv.Build(ctx, root, "./cmd/erpsim", work)
	if err != nil {
		return err
	}

	var dsn string
	if admin := os.Getenv(pgtest.EnvDSN); admin != "" {
		if dsn, err = pgtest.CreateDatabase(ctx, admin, fmt.Sprintf("erpsync_webhookbench_%d", time.Now().UnixNano()%1_000_000)); err != nil {
			return fmt.Errorf("creating the database: %w", err)
		}
	} else {
		pg, err := pgtest.StartServer(ctx, filepath.Join(work, "pg"))
		if err != nil {
			return fmt.Errorf("starting PostgreSQL: %w", err)
		}
		defer func() { _ = pg.Stop() }()
		dsn = pg.DSN()
	}
	dsnFile := filepath.Join(work, "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn), 0o600); err != nil {
		return err
	}

	logf("starting etcd and kube-apiserver; installing the CRD with kubectl")
	cp, err := localenv.StartControlPlane(binDir, work)
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	if _, err := cp.Run(ctx, "apply", "-k", filepath.Join(root, "config", "crd")); err != nil {
		return err
	}
	if _, err := cp.Run(ctx, "wait", "--for=condition=Established", "crd/erpsyncs.erpsync.io", "--timeout=60s"); err != nil {
		return err
	}

	logf("starting erpsim: %s with %d products and %d customers each", strings.Join(vendors, ", "), o.products, o.customers)
	stateFile := filepath.Join(work, "erpsim.json")
	sim, err := localenv.Start("erpsim", filepath.Join(work, "erpsim.log"), nil, erpsimBin,
		"--vendors", strings.Join(vendors, ","), "--products", fmt.Sprint(o.products), "--customers", fmt.Sprint(o.customers),
		"--orders", fmt.Sprint(o.orders), "--state-file", stateFile)
	if err != nil {
		return err
	}
	defer func() { _ = sim.Stop(5 * time.Second) }()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = localenv.WaitForFile(wctx, stateFile)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: %s", err, sim.Tail(2000))
	}
	var st simState
	if err := readJSON(stateFile, &st); err != nil {
		return err
	}
	a := adminAPI{url: st.AdminURL}
	eps := map[string]localenv.Endpoint{}
	var urls []string
	for _, v := range st.Vendors {
		eps[v.Vendor] = localenv.Endpoint{BaseURL: v.BaseURL, Credentials: v.Credentials}
		urls = append(urls, v.BaseURL)
	}
	allow, err := localenv.AllowHosts(urls...)
	if err != nil {
		return err
	}

	hookAddr, err := freeAddr()
	if err != nil {
		return err
	}
	hookURL := "http://" + hookAddr
	logf("starting the manager (PostgreSQL sink, webhook receiver at %s)", hookURL)
	mgr, err := localenv.Start("manager", filepath.Join(work, "manager.log"), []string{"KUBECONFIG=" + cp.Kubeconfig}, managerBin,
		"--leader-elect", "--leader-election-namespace=default",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--egress-allow-hosts="+strings.Join(allow, ","),
		"--sink=postgres", "--sink-postgres-dsn-file="+dsnFile,
		"--quota-file="+filepath.Join(work, "quota.json"),
		"--webhook-bind-address="+hookAddr, "--webhook-public-url="+hookURL)
	if err != nil {
		return err
	}
	defer func() { _ = mgr.Stop(10 * time.Second) }()

	const ns = "webhookbench"
	if _, err := cp.Run(ctx, "create", "namespace", ns); err != nil {
		return err
	}
	overlay := filepath.Join(work, "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return err
	}
	if err := localenv.WriteSampleOverlay(overlay, filepath.Join(root, "config", "samples"),
		localenv.Overlay{Namespace: ns, Interval: "1h", Endpoints: eps, Webhooks: true}); err != nil {
		return err
	}
	logf("applying the samples (webhooks on, interval 1h) and waiting for the first imports")
	if _, err := cp.Run(ctx, "apply", "-k", overlay); err != nil {
		return err
	}
	if out, err := cp.Run(ctx, "wait", "--for=condition=Ready", "erpsync", "--all", "-n", ns, "--timeout=10m"); err != nil {
		wide, _ := cp.Run(ctx, "get", "erpsyncs", "-n", ns, "-o", "wide")
		return fmt.Errorf("not every ErpSync became Ready: %w\n%s\n%s\nmanager log:\n%s", err, out, wide, mgr.Tail(3000))
	}
	readyAt := time.Now()
	samples := map[string]localenv.Sample{}
	for _, s := range localenv.Samples {
		samples[s.Vendor] = s
	}
	status := func(v string) (erpsyncStatus, error) { return statusOf(ctx, cp, ns, samples[v].ErpSync) }

	// Xero's developer portal, then the other three's subscriptions.
	xs, err := status("xero")
	if err != nil {
		return err
	}
	if xs.Status.Webhooks.Path == "" {
		return errors.New("xero: no receiver path in status.webhooks")
	}
	if err := a.do(ctx, http.MethodPut, "/vendors/xero/webhook", fmt.Sprintf(`{"url": %q}`, hookURL+xs.Status.Webhooks.Path), http.StatusOK, nil); err != nil {
		return err
	}
	if err := a.do(ctx, http.MethodPost, "/vendors/xero/webhook/intent", "", http.StatusOK, nil); err != nil {
		return fmt.Errorf("xero's intent to receive: %w", err)
	}
	for _, v := range vendors[1:] {
		s, err := status(v)
		if err != nil {
			return err
		}
		if sub := s.Status.Webhooks.Subscription; sub == nil || sub.Subscriptions < 1 {
			return fmt.Errorf("%s: the operator subscribed nothing (status.webhooks %+v, WebhooksReady %+v)", v, s.Status.Webhooks, s.condition("WebhooksReady"))
		}
	}

	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to the CRM: %w", err)
	}
	defer db.Close(context.Background())
	plan := map[string][]*change{}
	for _, v := range vendors {
		if plan[v], err = pick(ctx, a, db, v, samples[v].Company, o.changes); err != nil {
			return err
		}
	}
	// The intent check's own dispatch settles, and the vendors' rate
	// windows let go of the setup's calls (Cin7 Core's import and its 18
	// subscriptions spend half of its 60 calls a minute): the phase
	// measures a company in its steady state, not its first minute.
	settle := max(5*time.Second, time.Until(readyAt.Add(o.settle)))
	logf("letting the setup's calls leave the vendors' rate windows (%s)", settle.Round(time.Second))
	time.Sleep(settle)
	before := map[string]erpsyncStatus{}
	for _, v := range vendors {
		if before[v], err = status(v); err != nil {
			return err
		}
		if err := a.do(ctx, http.MethodPost, "/vendors/"+v+"/stats/reset", "", http.StatusNoContent, nil); err != nil {
			return err
		}
	}

	logf("changing %d records of each vendor over %s", o.changes, o.spread)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(vendors))
	for vi, v := range vendors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, off := range schedule(len(plan[v]), vi, len(vendors), o.spread) {
				if d := time.Until(start.Add(off)); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						errs <- ctx.Err()
						return
					}
				}
				c := plan[v][i]
				c.at = time.Now()
				if err := a.do(ctx, http.MethodPatch, "/vendors/"+v+"/records/"+c.kind+"/"+c.id, `{}`, http.StatusOK, nil); err != nil {
					errs <- fmt.Errorf("%s: changing %s %s: %w", v, c.kind, c.id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	logf("all changes made in %s; waiting for them in the CRM", time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(o.arriveTimeout)
	for {
		left, err := collect(ctx, db, samples, plan)
		if err != nil {
			return err
		}
		if left == 0 || time.Now().After(deadline) {
			if left > 0 {
				logf("%d changes had not arrived %s after the last change", left, o.arriveTimeout)
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Deliveries still in flight after the last arrival cost reads too:
	// let them settle before the requests are counted.
	time.Sleep(5 * time.Second)

	fail := &failure{}
	var results []vendorResult
	for _, v := range vendors {
		r, err := summarise(v, plan[v])
		if err != nil {
			fail.reasons = append(fail.reasons, err.Error())
			continue
		}
		var vs vendorStats
		if err := a.do(ctx, http.MethodGet, "/vendors/"+v+"/stats", "", http.StatusOK, &vs); err != nil {
			return err
		}
		r.requests, r.refused = vs.Requests, vs.Throttled
		after, err := status(v)
		if err != nil {
			return err
		}
		r.targetedSyncs = after.Status.Webhooks.TargetedSyncs - before[v].Status.Webhooks.TargetedSyncs
		for _, c := range plan[v] {
			r.span = max(r.span, c.synced.Sub(start))
		}
		r.polled = after.Status.LastSyncEnd != before[v].Status.LastSyncEnd
		results = append(results, r)
		if r.arrived < r.changes {
			fail.reasons = append(fail.reasons, fmt.Sprintf("%s: %d of %d changes did not arrive", v, r.changes-r.arrived, r.changes))
		}
		if r.refused > 0 {
			fail.reasons = append(fail.reasons, fmt.Sprintf("%s: the vendor refused %d requests for its limits", v, r.refused))
		}
		if r.polled {
			fail.reasons = append(fail.reasons, fmt.Sprintf("%s: a routine poll ran during the phase", v))
		}
		if vs.Webhooks != nil {
			logf("%s: deliveries %d delivered, %d attempts, %d failed, %d dropped", v, vs.Webhooks.Delivered, vs.Webhooks.Attempts, vs.Webhooks.Failed, vs.Webhooks.Dropped)
		}
	}
	for _, r := range results {
		p := r.vendor + "_webhook_"
		fmt.Printf("BENCH %slatency_p50_ms %d ms\n", p, r.p50.Milliseconds())
		fmt.Printf("BENCH %slatency_p95_ms %d ms\n", p, r.p95.Milliseconds())
		fmt.Printf("BENCH %scalls_per_event %.2f calls\n", p, r.callsPerEvent())
		met := func(ok bool) string {
			if ok {
				return "met"
			}
			return "MISSED"
		}
		fmt.Printf("NOTE %s: %d changes over %s, %d arrived (max %d ms; the last %s after the first change), %d targeted syncs, %d vendor requests (%.0f a minute until the last arrival), %d refused; targets: p95 < %d ms %s, calls/event <= %.0f %s\n",
			r.vendor, r.changes, o.spread, r.arrived, r.max.Milliseconds(), r.span.Round(time.Second), r.targetedSyncs, r.requests, r.requestsPerMinute(), r.refused,
			targetP95.Milliseconds(), met(r.p95 < targetP95), targetCallsPerEvent, met(r.callsPerEvent() <= targetCallsPerEvent))
	}
	if len(fail.reasons) > 0 {
		fmt.Fprintf(os.Stderr, "manager log (last lines):\n%s\n", mgr.Tail(3000))
		return fail
	}
	return nil
}

// pick chooses n records of the kinds vendor's webhooks announce, each
// with exactly one live CRM row found by its natural key, and notes each
// row's modified time.
func pick(ctx context.Context, a adminAPI, db *pgx.Conn, vendor, company string, n int) ([]*change, error) {
	kinds := changeKinds[vendor]
	pools := make([][]*change, len(kinds))
	for ki, kind := range kinds {
		var refs []simkit.RecordRef
		if err := a.do(ctx, http.MethodGet, "/vendors/"+vendor+"/records/"+kind, "", http.StatusOK, &refs); err != nil {
			return nil, err
		}
		var cands []*change
		var keys []string
		for _, r := range refs {
			if r.Deleted || r.Key == "" {
				continue
			}
			c := &change{vendor: vendor, kind: kind, id: r.ID, keys: []string{r.Key}}
			if kind == simkit.AdminCustomers {
				// Cin7 Core keys its customers by name.
				var cu simkit.Customer
				if err := a.do(ctx, http.MethodGet, "/vendors/"+vendor+"/records/customers/"+r.ID, "", http.StatusOK, &cu); err != nil {
					return nil, err
				}
				if cu.Name != "" && cu.Name != r.Key {
					c.keys = append(c.keys, cu.Name)
				}
			}
			cands = append(cands, c)
			keys = append(keys, c.keys...)
		}
		rows, err := crmRows(ctx, db, company, kind, keys)
		if err != nil {
			return nil, err
		}
		for _, c := range cands {
			var found []crmRow
			for _, k := range c.keys {
				found = append(found, rows[k]...)
			}
			if len(found) == 1 && !found[0].deleted {
				c.before = found[0].modified
				pools[ki] = append(pools[ki], c)
			}
		}
	}
	var out []*change
	for i := 0; len(out) < n; i++ {
		pool := pools[i%len(pools)]
		k := i / len(pools)
		if k >= len(pool) {
			if slices.IndexFunc(pools, func(p []*change) bool { return k < len(p) }) < 0 {
				return nil, fmt.Errorf("%s: only %d records of %v with one live CRM row each; want %d (raise -products or -customers)", vendor, len(out), kinds, n)
			}
			continue
		}
		out = append(out, pool[k])
	}
	return out, nil
}

// crmRow is the part of a CRM row the benchmark reads.
type crmRow struct {
	modified, synced time.Time
	deleted          bool
}

// crmRows returns company's rows of a kind whose natural key is in keys,
// by key.
func crmRows(ctx context.Context, db *pgx.Conn, company, kind string, keys []string) (map[string][]crmRow, error) {
	k := crmKeys[kind]
	rows, err := db.Query(ctx, "SELECT "+pgx.Identifier{k.col}.Sanitize()+", modified_at, synced_at, deleted FROM "+
		pgx.Identifier{"erpsync", k.table}.Sanitize()+" WHERE company = $1 AND "+pgx.Identifier{k.col}.Sanitize()+" = ANY($2)", company, keys)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", k.table, err)
	}
	out := map[string][]crmRow{}
	var (
		key string
		r   crmRow
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &r.modified, &r.synced, &r.deleted}, func() error {
		out[key] = append(out[key], r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", k.table, err)
	}
	return out, nil
}

// collect notes the changes whose new version is in the CRM and returns
// how many are not yet.
func collect(ctx context.Context, db *pgx.Conn, samples map[string]localenv.Sample, plan map[string][]*change) (int, error) {
	left := 0
	for _, v := range vendors {
		byKind := map[string][]string{}
		for _, c := range plan[v] {
			if c.synced.IsZero() {
				byKind[c.kind] = append(byKind[c.kind], c.keys...)
			}
		}
		for kind, keys := range byKind {
			rows, err := crmRows(ctx, db, samples[v].Company, kind, keys)
			if err != nil {
				return 0, err
			}
			for _, c := range plan[v] {
				if c.kind != kind || !c.synced.IsZero() {
					continue
				}
				for _, k := range c.keys {
					if rs := rows[k]; len(rs) == 1 && c.arrived(rs[0].modified, rs[0].synced) {
						c.synced = rs[0].synced
					}
				}
				if c.synced.IsZero() {
					left++
				}
			}
		}
	}
	return left, nil
}

// simState is the part of erpsim's state file the benchmark reads.
type simState struct {
	AdminURL string `json:"adminURL"`
	Vendors  []struct {
		Vendor      string            `json:"vendor"`
		BaseURL     string            `json:"baseURL"`
		Credentials map[string]string `json:"credentials"`
	} `json:"vendors"`
}

// vendorStats is erpsim's GET /vendors/{vendor}/stats.
type vendorStats struct {
	Requests  int64 `json:"requests"`
	Throttled int64 `json:"throttled"`
	Webhooks  *struct {
		Delivered int64 `json:"delivered"`
		Attempts  int64 `json:"attempts"`
		Failed    int64 `json:"failed"`
		Dropped   int64 `json:"dropped"`
	} `json:"webhooks"`
}

// erpsyncStatus is the part of an ErpSync the benchmark reads.
type erpsyncStatus struct {
	Status struct {
		LastSyncEnd string `json:"lastSyncEnd"`
		Conditions  []struct {
			Type, Status, Reason, Message string
		} `json:"conditions"`
		Webhooks struct {
			Path         string `json:"path"`
			Subscription *struct {
				Subscriptions int    `json:"subscriptions"`
				Message       string `json:"message"`
			} `json:"subscription"`
			TargetedSyncs int64 `json:"targetedSyncs"`
		} `json:"webhooks"`
	} `json:"status"`
}

func (s erpsyncStatus) condition(typ string) string {
	for _, c := range s.Status.Conditions {
		if c.Type == typ {
			return c.Status + "/" + c.Reason + ": " + c.Message
		}
	}
	return ""
}

func statusOf(ctx context.Context, cp *localenv.ControlPlane, ns, name string) (erpsyncStatus, error) {
	var s erpsyncStatus
	out, err := cp.Run(ctx, "get", "-n", ns, "erpsync/"+name, "-o", "json")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("decoding %s: %w", name, err)
	}
	return s, nil
}

// adminAPI is erpsim's admin API.
type adminAPI struct{ url string }

func (a adminAPI) do(ctx context.Context, method, path, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("erpsim %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(resp.Body, 64<<20)); err != nil {
		return fmt.Errorf("erpsim %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("erpsim %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(buf.String()))
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			return fmt.Errorf("erpsim %s %s: %w", method, path, err)
		}
	}
	return nil
}

func readJSON(path string, out any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
