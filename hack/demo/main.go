// Command demo is `make demo`: the operator on embedded defaults, with no
// cluster and no ERP accounts. It builds what it needs, starts a local
// control plane (etcd and kube-apiserver), installs the CRD with kubectl,
// starts erpsim and the manager with the embedded SQLite sink and its
// webhook receiver, applies the samples of config/samples (webhooks on)
// pointed at erpsim, waits until every ErpSync is Ready and prints what was
// synced. Then it points Xero's webhook (erpsim plays the developer portal)
// at the receiver, changes one record in each vendor that sends webhooks
// and prints how many seconds each took to reach the CRM. Then it leaves
// everything running until Ctrl-C (or, with DEMO_ONCE=1, stops at once and
// exits 0 if all were Ready and every change arrived).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/localenv"
	"github.com/erpsync/erpsync-operator/sinks/sqlite"
)

func main() {
	once := flag.Bool("once", os.Getenv("DEMO_ONCE") == "1", "Stop after printing the results (exit 0 if every ErpSync became Ready).")
	products := flag.Int("products", 300, "Products per simulated vendor.")
	interval := flag.String("interval", "1m", "Interval of the demo ErpSyncs.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *once, *products, *interval); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func run(ctx context.Context, once bool, products int, interval string) error {
	root, err := localenv.Root()
	if err != nil {
		return err
	}
	work := filepath.Join(root, "bin", "demo")
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}

	step("building kube-apiserver, etcd and kubectl (cached under bin/k8s; the first build takes several minutes)")
	k8sBin, err := localenv.K8sBinDir(ctx, root)
	if err != nil {
		return err
	}
	step("building the manager and erpsim")
	manager, err := localenv.Build(ctx, root, "./cmd/manager", filepath.Join(root, "bin"))
	if err != nil {
		return err
	}
	erpsim, err := localenv.Build(ctx, root, "./cmd/erpsim", filepath.Join(root, "bin"))
	if err != nil {
		return err
	}

	step("starting a local control plane (etcd, kube-apiserver)")
	cp, err := localenv.StartControlPlane(k8sBin, work)
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the control plane")
		_ = cp.Stop()
	}()
	kubectl := func(args ...string) (string, error) { return cp.Run(ctx, args...) }

	step("installing the CRD: kubectl apply -k config/crd")
	if out, err := kubectl("apply", "-k", filepath.Join(root, "config", "crd")); err != nil {
		return err
	} else {
		fmt.Print(indent(out))
	}
	if _, err := kubectl("wait", "--for=condition=Established", "crd/erpsyncs.erpsync.io", "--timeout=60s"); err != nil {
		return err
	}
	// The manager's namespace, as config/default names it: its Leases and
	// quota ConfigMaps live there (kubectl erpsync looks there too).
	if _, err := kubectl("create", "namespace", "erpsync-system"); err != nil {
		return err
	}

	step("starting erpsim: the five vendors' simulators with %d products each, changing a few records a minute", products)
	stateFile := filepath.Join(work, "erpsim.json")
	sim, err := localenv.Start("erpsim", filepath.Join(work, "erpsim.log"), nil, erpsim,
		"--products", fmt.Sprint(products), "--customers", "60", "--orders", "120",
		"--changes-per-minute", "6", "--state-file", stateFile)
	if err != nil {
		return err
	}
	defer func() { _ = sim.Stop(5 * time.Second) }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = localenv.WaitForFile(wctx, stateFile)
	cancel()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, sim.Tail(2000))
	}
	endpoints, adminURL, err := readEndpoints(stateFile)
	if err != nil {
		return err
	}

	// The simulators are on loopback and speak plain http: the manager's
	// egress policy allows exactly them besides the vendors' own hosts.
	var urls []string
	for _, ep := range endpoints {
		urls = append(urls, ep.BaseURL)
	}
	sort.Strings(urls)
	allow, err := localenv.AllowHosts(urls...)
	if err != nil {
		return err
	}
	// The webhook receiver on loopback: erpsim's vendors deliver there.
	hookAddr, err := freeAddr()
	if err != nil {
		return err
	}
	hookURL := "http://" + hookAddr
	step("starting the manager with the embedded SQLite sink (bin/demo/crm.db), allowed to call erpsim (--egress-allow-hosts), its webhook receiver at %s (--webhook-bind-address, --webhook-public-url)", hookURL)
	crm := filepath.Join(work, "crm.db")
	mgr, err := localenv.Start("manager", filepath.Join(work, "manager.log"), []string{"KUBECONFIG=" + cp.Kubeconfig}, manager,
		"--leader-elect", "--leader-election-namespace=erpsync-system",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--egress-allow-hosts="+strings.Join(allow, ","),
		"--sink=sqlite", "--sink-sqlite-path="+crm,
		// Quotas and company claims in the cluster, as a deployed manager
		// keeps them (kubectl erpsync status shows the quota ConfigMaps).
		"--quota-namespace=erpsync-system", "--claim-namespace=erpsync-system",
		"--webhook-bind-address="+hookAddr, "--webhook-public-url="+hookURL)
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the manager and erpsim")
		_ = mgr.Stop(10 * time.Second)
	}()

	step("applying config/samples (one ErpSync and Secret per vendor, webhooks on), pointed at erpsim by a kustomize overlay")
	if _, err := kubectl("create", "namespace", "erpsync-demo"); err != nil {
		return err
	}
	overlay := filepath.Join(work, "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return err
	}
	if err := localenv.WriteSampleOverlay(overlay, filepath.Join(root, "config", "samples"), localenv.Overlay{Namespace: "erpsync-demo", Interval: interval, Endpoints: endpoints, Webhooks: true}); err != nil {
		return err
	}
	out, err := kubectl("apply", "-k", overlay)
	if err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("waiting until every ErpSync is Ready: kubectl wait --for=condition=Ready erpsync --all")
	_, waitErr := kubectl("wait", "--for=condition=Ready", "erpsync", "--all", "-n", "erpsync-demo", "--timeout=5m")
	out, _ = kubectl("get", "erpsyncs", "-n", "erpsync-demo")
	fmt.Print("\n$ kubectl get erpsyncs -n erpsync-demo\n" + out)
	if waitErr != nil {
		wide, _ := kubectl("get", "erpsyncs", "-n", "erpsync-demo", "-o", "wide")
		fmt.Print("\n$ kubectl get erpsyncs -n erpsync-demo -o wide\n" + wide)
		fmt.Fprintf(os.Stderr, "\nmanager log (last lines):\n%s\n", mgr.Tail(3000))
		return fmt.Errorf("not every ErpSync became Ready: %w", waitErr)
	}
	if err := printCounts(ctx, crm); err != nil {
		return err
	}
	if err := showWebhooks(ctx, kubectl, adminURL, hookURL, crm); err != nil {
		fmt.Fprintf(os.Stderr, "\nmanager log (last lines):\n%s\n", mgr.Tail(3000))
		return err
	}
	if once {
		step("DEMO_ONCE=1: all five ErpSyncs are Ready and every change arrived by webhook; stopping")
		return nil
	}
	fmt.Printf(`
Everything keeps running: erpsim changes a few records a minute; those the
vendors announce reach the CRM within seconds by webhook, and each ErpSync
still polls %s after its previous sync ended. Watch it with:

  KUBECONFIG=%s %s get erpsyncs -n erpsync-demo -w

Press Ctrl-C to stop every process the demo started.
`, interval, cp.Kubeconfig, cp.Kubectl)
	<-ctx.Done()
	fmt.Println()
	return nil
}

func readEndpoints(path string) (map[string]localenv.Endpoint, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var st struct {
		AdminURL string `json:"adminURL"`
		Vendors  []struct {
			Vendor      string            `json:"vendor"`
			BaseURL     string            `json:"baseURL"`
			Credentials map[string]string `json:"credentials"`
		} `json:"vendors"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", path, err)
	}
	out := map[string]localenv.Endpoint{}
	for _, v := range st.Vendors {
		out[v.Vendor] = localenv.Endpoint{BaseURL: v.BaseURL, Credentials: v.Credentials}
	}
	if len(out) == 0 {
		return nil, "", errors.New("erpsim serves no vendor")
	}
	return out, st.AdminURL, nil
}

// printCounts prints the records per company and entity in the CRM.
func printCounts(ctx context.Context, path string) error {
	s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		return fmt.Errorf("opening the CRM database: %w", err)
	}
	defer s.Close()
	counts, err := s.Count(ctx)
	if err != nil {
		return err
	}
	companies := make([]string, 0, len(counts))
	for c := range counts {
		companies = append(companies, c)
	}
	sort.Strings(companies)
	fmt.Printf("\nRecords in the CRM (%s), per company and entity:\n", path)
	fmt.Printf("  %-12s", "COMPANY")
	for _, k := range model.Kinds {
		fmt.Printf(" %s", strings.ToUpper(string(k)))
	}
	fmt.Println()
	for _, c := range companies {
		fmt.Printf("  %-12s", c)
		for _, k := range model.Kinds {
			fmt.Printf(" %*d", len(k), counts[c][k])
		}
		fmt.Println()
	}
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}
