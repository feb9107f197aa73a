// Command scale is the scale benchmark (`make bench-scale`): N ErpSyncs,
// spread over the five vendors and created at once, kept on schedule by
// one manager. It runs what a user runs: a real etcd and kube-apiserver
// (envtest binaries, the API server auditing the manager's writes), the
// manager binary built from ./cmd/manager with the SQLite sink in a temp
// dir, and erpsim --companies serving every company with its own
// credentials, dataset (a few hundred records) and limits, on 127.0.0.1.
//
// For each size it prints
//
//	BENCH scale_<n>_initial_all_ready_s      creation of the first ErpSync to all Ready
//	BENCH scale_<n>_lateness_p50_s / _p99_s  sync start minus due time, in the steady window
//	BENCH scale_<n>_manager_rss_mib          peak RSS (VmHWM)
//	BENCH scale_<n>_manager_cpu_s_per_sync   manager CPU over attempts ended, steady window
//	BENCH scale_<n>_apiserver_writes_per_sync ErpSync and Event writes over attempts ended, steady window
//	BENCH scale_<n>_vendor_refusals          429/503 (and quota) answers of erpsim, whole run
//
// The steady window starts when every ErpSync was first Ready (or, when
// that is not reached within -ready-timeout, right then: the figures then
// describe a manager that fell behind, and say so), and not before one
// -interval after the first creation (when the first syncs come due), and
// not before the backlog of syncs overdue by more than 5 s has fallen under
// 1% of N (bounded by -catchup-timeout; a manager whose imports outlast an
// interval first catches up, which a NOTE reports), and lasts -steady.
// Lateness is the start's lastSyncStart minus the previous attempt's
// lastSyncEnd plus the interval (retry delay after a failure), for every
// sync due in the window; a sync due but not started when the window ends
// counts with its lateness so far. Status times are kept to the second.
//
//	go run ./test/scale -n 1000,10000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/internal/localenv"
)

// vendors is erpsim's vendor order; ErpSync i goes to vendors[i%5].
var vendors = []string{"unleashed", "cin7omni", "cin7core", "xero", "katana"}

type options struct {
	sizes           []int
	interval        time.Duration
	steady          time.Duration
	readyTimeout    time.Duration
	catchUpTimeout  time.Duration
	perNamespace    int
	concurrentSyncs int
	products        int
	customers       int
	orders          int
	keep            bool
	managerArgs     string
	gomemlimit      string
}

func main() {
	var (
		o     options
		sizes string
	)
	flag.StringVar(&sizes, "n", "1000,10000", "Comma-separated numbers of ErpSyncs, run one after the other.")
	flag.DurationVar(&o.interval, "interval", time.Minute, "Every ErpSync's interval and retryInterval (the CRD's minimum is 1m).")
	flag.DurationVar(&o.steady, "steady", 3*time.Minute, "Length of the steady window measured once all are Ready.")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 8*time.Minute, "Longest wait for all ErpSyncs to be Ready; the steady window starts then regardless.")
	flag.DurationVar(&o.catchUpTimeout, "catchup-timeout", 30*time.Minute, "Longest wait, after all are Ready and the first syncs are due, for the backlog of overdue syncs to fall under 1% of N; the steady window starts then regardless.")
	flag.IntVar(&o.perNamespace, "per-namespace", 50, "ErpSyncs per namespace (tenant).")
	flag.IntVar(&o.concurrentSyncs, "concurrent-syncs", 0, "The manager's --concurrent-syncs (0: its default, as config/manager ships it).")
	flag.IntVar(&o.products, "products", 60, "Products per company (with stock rows, prices; customers and orders below): about 440 records a company.")
	flag.IntVar(&o.customers, "customers", 20, "Customers per company.")
	flag.IntVar(&o.orders, "orders", 40, "Sales orders per company.")
	flag.StringVar(&o.gomemlimit, "gomemlimit", "518MiB", "The manager's GOMEMLIMIT (config/manager's at --concurrent-syncs=4; empty: none).")
	flag.StringVar(&o.managerArgs, "manager-args", "", "Extra manager flags, space-separated (e.g. --pprof-bind-address=127.0.0.1:6060).")
	flag.BoolVar(&o.keep, "keep", false, "Keep each size's work directory (logs, audit log, database).")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 5 {
			fmt.Fprintf(os.Stderr, "scale: -n %q: want numbers of at least 5\n", sizes)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	// envtest logs through controller-runtime; the benchmark's own lines
	// go to stderr and the processes' to their logs.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s scale: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	root, err := localenv.Root()
	if err != nil {
		return err
	}
	binDir, err := localenv.K8sBinDir(ctx, root)
	if err != nil {
		return err
	}
	bins, err := os.MkdirTemp("", "erpsync-scale-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bins)
	logf("building the manager and erpsim")
	manager, err := localenv.Build(ctx, root, "./cmd/manager", bins)
	if err != nil {
		return err
	}
	erpsim, err := localenv.Build(ctx, root, "./cmd/erpsim", bins)
	if err != nil {
		return err
	}
	for _, n := range o.sizes {
		began := time.Now()
		r, err := runSize(ctx, o, n, root, binDir, manager, erpsim)
		if err != nil {
			return fmt.Errorf("n=%d: %w", n, err)
		}
		r.print(os.Stdout)
		logf("N=%d took %s (wall, setup and teardown included)", n, time.Since(began).Round(time.Second))
	}
	return nil
}

// result is one size's figures.
type result struct {
	n             int
	allReady      time.Duration // 0: not reached
	readyAtBound  int
	readyBound    time.Duration
	p50, p99      time.Duration
	samples       int
	overdue       int
	rssMiB        float64
	cpuPerSync    float64
	writesPerSync float64
	writes        writeCounts
	notReady      map[string]int // never Ready by the window's end, by Ready reason
	catchUp       time.Duration  // from all Ready (and due) to a backlog under 1%
	backlog       int            // overdue ErpSyncs when the window started
	ended         int
	refused       int64
	refusedBy     map[string]int64
	requests      int64
	window        time.Duration
	interval      time.Duration
}

func (r result) print(w *os.File) {
	p := fmt.Sprintf("scale_%d_", r.n)
	if r.allReady > 0 {
		fmt.Fprintf(w, "BENCH %sinitial_all_ready_s %.1f s\n", p, r.allReady.Seconds())
	} else {
		fmt.Fprintf(w, "BENCH %sinitial_all_ready_s >%.0f s (not reached: %d of %d Ready at the bound)\n", p, r.readyBound.Seconds(), r.readyAtBound, r.n)
	}
	fmt.Fprintf(w, "BENCH %slateness_p50_s %.0f s\n", p, r.p50.Seconds())
	fmt.Fprintf(w, "BENCH %slateness_p99_s %.0f s\n", p, r.p99.Seconds())
	fmt.Fprintf(w, "BENCH %smanager_rss_mib %.0f MiB\n", p, r.rssMiB)
	fmt.Fprintf(w, "BENCH %smanager_cpu_s_per_sync %.3f s\n", p, r.cpuPerSync)
	fmt.Fprintf(w, "BENCH %sapiserver_writes_per_sync %.2f writes\n", p, r.writesPerSync)
	fmt.Fprintf(w, "BENCH %svendor_refusals %d answers\n", p, r.refused)
	if r.refused > 0 {
		fmt.Fprintf(w, "NOTE %svendor refusals by vendor: %v\n", p, r.refusedBy)
	}
	if len(r.notReady) > 0 {
		fmt.Fprintf(w, "NOTE %snever Ready by the steady window's end, by the Ready reason (none: the first sync had not ended): %v\n", p, r.notReady)
	}
	fmt.Fprintf(w, "NOTE %scatch-up before the steady window: %s (backlog at its start: %d overdue by more than %s)\n", p, r.catchUp.Round(time.Second), r.backlog, overdueSlack)
	fmt.Fprintf(w, "NOTE %ssteady window %s: %d sync attempts ended (%.1f a second; %.1f due a second at this interval), %d lateness samples (%d still overdue at its end; 1 s resolution); manager writes in it: %s; vendor requests over the run: %d\n",
		p, r.window.Round(time.Second), r.ended, float64(r.ended)/r.window.Seconds(), float64(r.n)/r.interval.Seconds(), r.samples, r.overdue, r.writes, r.requests)
}

func runSize(ctx context.Context, o options, n int, root, binDir, managerBin, erpsimBin string) (res result, err error) {
	res.n, res.interval = n, o.interval
	work, err := os.MkdirTemp("", fmt.Sprintf("erpsync-scale-%d-", n))
	if err != nil {
		return res, err
	}
	defer func() {
		if o.keep || err != nil {
			logf("N=%d: work directory kept: %s", n, work)
			return
		}
		_ = os.RemoveAll(work)
	}()

	logf("N=%d: starting etcd and kube-apiserver", n)
	cp, err := startControlPlane(binDir, filepath.Join(root, "config", "crd", "bases"), work)
	if err != nil {
		return res, err
	}
	defer func() { _ = cp.stop() }()

	companies := (n + len(vendors) - 1) / len(vendors)
	logf("N=%d: starting erpsim with %d companies per vendor", n, companies)
	stateFile := filepath.Join(work, "erpsim.json")
	sim, err := startProcess("erpsim", filepath.Join(work, "erpsim.log"), nil, erpsimBin,
		"--companies", strconv.Itoa(companies), "--products", strconv.Itoa(o.products),
		"--customers", strconv.Itoa(o.customers), "--orders", strconv.Itoa(o.orders), "--state-file", stateFile)
	if err != nil {
		return res, err
	}
	defer sim.stop(10 * time.Second)
	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err = localenv.WaitForFile(waitCtx, stateFile)
	cancel()
	if err != nil {
		return res, fmt.Errorf("erpsim did not start: %w", err)
	}
	var st simState
	if err := readJSON(stateFile, &st); err != nil {
		return res, err
	}
	if len(st.Vendors) != len(vendors) {
		return res, fmt.Errorf("erpsim serves %d vendors, want %d", len(st.Vendors), len(vendors))
	}
	var allow []string
	for i, v := range st.Vendors {
		if v.Vendor != vendors[i] || len(v.Companies) != companies {
			return res, fmt.Errorf("erpsim's vendor %d is %s with %d companies, want %s with %d", i, v.Vendor, len(v.Companies), vendors[i], companies)
		}
		u, err := url.Parse(v.BaseURL)
		if err != nil {
			return res, err
		}
		allow = append(allow, u.Host)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return res, err
	}
	if err := erpv1.AddToScheme(scheme); err != nil {
		return res, err
	}
	c, err := client.NewWithWatch(cp.admin, client.Options{Scheme: scheme})
	if err != nil {
		return res, err
	}
	const system = "erpsync-system"
	namespaces := []string{system}
	for i := 0; i < n; i += o.perNamespace {
		namespaces = append(namespaces, nsName(i/o.perNamespace))
	}
	for _, ns := range namespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return res, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}

	args := []string{"--leader-elect", "--leader-election-namespace=" + system,
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--egress-allow-hosts=" + strings.Join(allow, ","),
		"--quota-namespace=" + system, "--claim-namespace=" + system,
		"--sink=sqlite", "--sink-sqlite-path=" + filepath.Join(work, "crm.db")}
	if o.concurrentSyncs > 0 {
		args = append(args, "--concurrent-syncs="+strconv.Itoa(o.concurrentSyncs))
	}
	args = append(args, strings.Fields(o.managerArgs)...)
	logf("N=%d: starting the manager: %s", n, strings.Join(args, " "))
	env := []string{"KUBECONFIG=" + cp.kubeconfig}
	if o.gomemlimit != "" {
		env = append(env, "GOMEMLIMIT="+o.gomemlimit)
	}
	mgr, err := startProcess("manager", filepath.Join(work, "manager.log"), env, managerBin, args...)
	if err != nil {
		return res, err
	}
	defer mgr.stop(30 * time.Second)

	tr := newTracker(n, o.interval, o.interval)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchErr := make(chan error, 1)
	go func() { watchErr <- watchErpSyncs(watchCtx, c, tr) }()

	logf("N=%d: creating %d Secrets and ErpSyncs", n, n)
	t0 := time.Now()
	if err := createAll(ctx, c, o, n, &st); err != nil {
		return res, err
	}
	logf("N=%d: created in %s", n, time.Since(t0).Round(time.Millisecond))

	// Wait for all Ready, bounded.
	bound := t0.Add(o.readyTimeout)
	var sampleErr error
	res.rssMiB, _, sampleErr = procSample(mgr.pid())
	if sampleErr != nil {
		return res, sampleErr
	}
	lastLog := time.Now()
	for {
		ready, at := tr.readyCount()
		if !at.IsZero() {
			res.allReady = at.Sub(t0)
			logf("N=%d: all %d Ready after %s", n, n, res.allReady.Round(100*time.Millisecond))
			break
		}
		if time.Now().After(bound) {
			res.readyAtBound, res.readyBound = ready, o.readyTimeout
			logf("N=%d: only %d of %d Ready after %s: measuring the steady window anyway", n, ready, n, o.readyTimeout)
			break
		}
		if err := alive(ctx, mgr, watchErr); err != nil {
			return res, err
		}
		if time.Since(lastLog) > 30*time.Second {
			rss, cpu, _ := procSample(mgr.pid())
			logf("N=%d: %d of %d Ready, %d attempts ended, manager peak RSS %.0f MiB, CPU %s", n, ready, n, tr.endsBetween(t0, time.Now().Add(time.Hour)), rss, cpu.Round(time.Second))
			lastLog = time.Now()
		}
		time.Sleep(time.Second)
	}

	// The steady window, once syncs come due: not before one interval
	// after the first ErpSync was created (with a long interval the first
	// imports' next syncs come due only then).
	if due := t0.Add(o.interval); time.Now().Before(due) {
		logf("N=%d: waiting until the first syncs come due (%s)", n, due.Format("15:04:05"))
		for time.Now().Before(due) {
			if err := alive(ctx, mgr, watchErr); err != nil {
				return res, err
			}
			time.Sleep(time.Second)
		}
	}
	// A manager whose imports took longer than an interval starts with a
	// backlog of second syncs already due: measure lateness once it has
	// caught up, so the window describes the steady state, not the
	// catch-up (which the NOTE reports).
	caughtUpFrom := time.Now()
	catchUpBound := caughtUpFrom.Add(o.catchUpTimeout)
	lastLog = time.Time{}
	for {
		res.backlog = tr.overdueAt(time.Now(), overdueSlack)
		if res.backlog*100 < n || time.Now().After(catchUpBound) {
			break
		}
		if err := alive(ctx, mgr, watchErr); err != nil {
			return res, err
		}
		if time.Since(lastLog) > 30*time.Second {
			logf("N=%d: catching up: %d overdue by more than %s", n, res.backlog, overdueSlack)
			lastLog = time.Now()
		}
		time.Sleep(time.Second)
	}
	res.catchUp = time.Since(caughtUpFrom)
	if res.backlog*100 >= n {
		logf("N=%d: still %d overdue after %s: measuring the steady window anyway", n, res.backlog, o.catchUpTimeout)
	}
	from := time.Now()
	_, cpu0, err := procSample(mgr.pid())
	if err != nil {
		return res, err
	}
	logf("N=%d: steady window of %s", n, o.steady)
	to := from.Add(o.steady)
	for time.Now().Before(to) {
		if err := alive(ctx, mgr, watchErr); err != nil {
			return res, err
		}
		time.Sleep(time.Second)
	}
	to = time.Now()
	rss, cpu1, err := procSample(mgr.pid())
	if err != nil {
		return res, err
	}
	res.rssMiB = max(res.rssMiB, rss)
	res.window = to.Sub(from)
	res.ended = tr.endsBetween(from, to)
	lat := tr.latenessSince(from, to)
	ds := make([]time.Duration, 0, len(lat))
	for _, l := range lat {
		ds = append(ds, max(l.late, 0))
		if l.overdue {
			res.overdue++
		}
	}
	res.samples = len(ds)
	res.notReady = tr.neverReady()
	res.p50, res.p99 = percentile(ds, 50), percentile(ds, 99)
	if res.ended > 0 {
		res.cpuPerSync = (cpu1 - cpu0).Seconds() / float64(res.ended)
	}
	if res.refused, res.requests, res.refusedBy, err = refusals(ctx, st.AdminURL, vendors); err != nil {
		return res, err
	}
	// Stop the manager before reading the audit log: the API server writes
	// it in batches.
	stopWatch()
	mgr.stop(30 * time.Second)
	time.Sleep(2 * time.Second)
	f, err := os.Open(cp.auditLog)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if res.writes, err = countWrites(f, managerUser, from, to); err != nil {
		return res, err
	}
	if res.ended > 0 {
		res.writesPerSync = float64(res.writes.syncWrites()) / float64(res.ended)
	}
	return res, nil
}

// overdueSlack is how late a sync may be before the catch-up wait counts
// it as backlog.
const overdueSlack = 5 * time.Second

func nsName(i int) string { return fmt.Sprintf("scale-%04d", i) }

// alive fails when the manager has exited, the watch has failed or ctx is
// done.
func alive(ctx context.Context, mgr *process, watchErr <-chan error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if mgr.exited() {
		return errors.New("the manager exited (see manager.log in the work directory)")
	}
	select {
	case err := <-watchErr:
		return fmt.Errorf("watching ErpSyncs: %w", err)
	default:
		return nil
	}
}

// createAll creates, from a few workers at once, ErpSync i and its Secret
// for i < n: vendor vendors[i%5], company i/5+1 of erpsim, namespace
// i/perNamespace.
func createAll(ctx context.Context, c client.Client, o options, n int, st *simState) error {
	const workers = 32
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := createOne(ctx, c, o, i, st); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
loop:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func createOne(ctx context.Context, c client.Client, o options, i int, st *simState) error {
	v := st.Vendors[i%len(vendors)]
	co := v.Companies[i/len(vendors)]
	ns := nsName(i / o.perNamespace)
	name := fmt.Sprintf("co-%05d-%s", i, v.Vendor)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels: map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue}}, StringData: co.Credentials}
	if err := c.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating Secret %s/%s: %w", ns, name, err)
	}
	es := &erpv1.ErpSync{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: erpv1.ErpSyncSpec{
			CompanyID: fmt.Sprintf("SCALE-%05d", i),
			Connector: erpv1.ConnectorSpec{Type: erpv1.ConnectorType(v.Vendor),
				CredentialsRef: erpv1.LocalSecretReference{Name: name}, BaseURL: co.BaseURL},
			Interval:      metav1.Duration{Duration: o.interval},
			RetryInterval: &metav1.Duration{Duration: o.interval},
		}}
	if err := c.Create(ctx, es); err != nil {
		return fmt.Errorf("creating ErpSync %s/%s: %w", ns, name, err)
	}
	return nil
}

// watchErpSyncs feeds every ErpSync state to tr until ctx is done,
// watching again (after a fresh list) when the API server ends a watch.
func watchErpSyncs(ctx context.Context, c client.WithWatch, tr *tracker) error {
	rv := ""
	for {
		if rv == "" {
			var list erpv1.ErpSyncList
			if err := c.List(ctx, &list); err != nil {
				return unlessStopped(ctx, err)
			}
			now := time.Now()
			for i := range list.Items {
				it := &list.Items[i]
				tr.observe(it.Namespace+"/"+it.Name, &it.Status, now)
			}
			rv = list.ResourceVersion
		}
		w, err := c.Watch(ctx, &erpv1.ErpSyncList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			return unlessStopped(ctx, err)
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				if es, ok := ev.Object.(*erpv1.ErpSync); ok {
					tr.observe(es.Namespace+"/"+es.Name, &es.Status, time.Now())
					rv = es.ResourceVersion
				}
			case watch.Bookmark:
				if es, ok := ev.Object.(*erpv1.ErpSync); ok {
					rv = es.ResourceVersion
				}
			case watch.Error:
				rv = "" // expired: list again
			}
		}
		w.Stop()
		if stopped(ctx) {
			return nil
		}
	}
}

// stopped reports whether ctx has ended.
func stopped(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// unlessStopped is err, or nil once ctx has ended (the watch was stopped,
// not broken).
func unlessStopped(ctx context.Context, err error) error {
	if stopped(ctx) {
		return nil
	}
	return err
}
