// Command membench measures the manager's peak memory under its configured
// sync concurrency against maximal vendor answers, and fails when it exceeds
// the Deployment's memory limit.
//
// It reads config/manager/manager.yaml for the manager's --concurrent-syncs,
// its memory limit and its GOMEMLIMIT (set here as the pod sets it), starts
// a copy of itself as a local Xero server in a process of its own (so that
// the server's memory is not counted), and runs that many syncs at once, each
// a real Xero connector (the shared HTTP client with its body cap and
// process-wide body budget, Xero's decoding and mapping) driven by the real
// engine into a discarding sink. Every Contacts page the server answers is
// maximal: PageSize (1,000) documents filling Xero's paged body cap (32 MiB)
// within a margin, sent chunked (no Content-Length: the client cannot size
// its buffer up front). It prints the process's peak resident set size
// (VmHWM) and the limit as BENCH lines; hack/bench.d/memory.sh runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/xero"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// xeroPagedCap is Xero's body cap for a page of a paged list
// (connectors/xero pagedMaxBodyBytes); keep the two equal.
const xeroPagedCap = 32 << 20

func main() {
	serve := flag.Bool("serve", false, "run as the local Xero server (internal)")
	manifest := flag.String("manifest", "config/manager/manager.yaml", "the manager's Deployment")
	body := flag.Int64("body-bytes", xeroPagedCap, "the size every Contacts page is filled to (at most the cap)")
	runs := flag.Int("runs", 3, "engine runs (one maximal page each) per sync")
	syncs := flag.Int("syncs", 0, "concurrent syncs instead of the Deployment's --concurrent-syncs (to measure the formula)")
	noGoMemLimit := flag.Bool("no-gomemlimit", false, "ignore the Deployment's GOMEMLIMIT (to measure what the collector leaves)")
	flag.Parse()
	if *serve {
		if err := runServer(*body); err != nil {
			fmt.Fprintln(os.Stderr, "membench server:", err)
			os.Exit(1)
		}
		return
	}
	dep, err := readDeployment(*manifest)
	if err != nil {
		fmt.Fprintln(os.Stderr, "membench:", err)
		os.Exit(1)
	}
	if *syncs > 0 {
		dep.syncs = *syncs
	}
	if *noGoMemLimit {
		dep.goMemLimit = 0
	}
	if err := run(dep, *body, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "membench:", err)
		os.Exit(1)
	}
}

func run(dep deployment, body int64, runs int) error {
	if dep.goMemLimit > 0 {
		debug.SetMemoryLimit(dep.goMemLimit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	url, stop, err := startServer(ctx, body)
	if err != nil {
		return err
	}
	defer stop()
	total, elapsed, err := syncAll(ctx, url, dep.syncs, runs)
	if err != nil {
		return err
	}
	hwm, err := peakRSSKiB()
	if err != nil {
		return err
	}
	peak := float64(hwm) / 1024
	limit := float64(dep.limit) / (1 << 20)
	fmt.Printf("# %d concurrent syncs, %d runs each, %d records upserted from pages of %d bytes in %s; GOMEMLIMIT %d MiB\n",
		dep.syncs, runs, total, body, elapsed.Round(time.Millisecond), dep.goMemLimit>>20)
	fmt.Printf("BENCH memory_peak_rss_mib %.1f MiB\n", peak)
	fmt.Printf("BENCH memory_limit_mib %.0f MiB\n", limit)
	if peak > limit {
		return fmt.Errorf("peak RSS %.1f MiB exceeds the Deployment's memory limit of %.0f MiB at --concurrent-syncs=%d", peak, limit, dep.syncs)
	}
	return nil
}

// syncAll runs syncs syncs at once against the server at url and returns
// the records they upserted.
func syncAll(ctx context.Context, url string, syncs, runs int) (int64, time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, syncs)
	pages := make([]int64, syncs)
	for i := range syncs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pages[i], errs[i] = runSync(ctx, url, i, runs)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	var total int64
	for _, n := range pages {
		total += n
	}
	return total, time.Since(start), nil
}

// runSync runs the engine over Xero's Contacts runs times, each run a full
// read of one maximal page, and returns the records it upserted.
func runSync(ctx context.Context, base string, i, runs int) (int64, error) {
	creds := map[string]string{"clientId": fmt.Sprintf("bench-client-%d", i), "clientSecret": "bench-secret", "refreshToken": "bench-refresh"}
	store := xero.NewMemoryCredentialStore(fmt.Sprintf("membench/sync-%d", i), creds)
	conn, err := xero.NewWithOptions(ctx, connectors.Config{Type: xero.Type, CompanyID: fmt.Sprintf("bench-%d", i), TenantID: fmt.Sprintf("tenant-%d", i),
		BaseURL: base + apiPath, Credentials: store.Data(), CredentialStore: store, Log: logr.Discard()},
		xero.Options{Registry: httpapi.NewRegistry(nil), MaxRetries: -1})
	if err != nil {
		return 0, fmt.Errorf("sync %d: %w", i, err)
	}
	sink := memory.New()
	sink.Discard = true
	var n int64
	for r := range runs {
		res, err := engine.Execute(ctx, engine.Run{Connector: conn, Sink: sink, Entities: []model.Kind{model.KindCustomer}, Full: true})
		if err != nil {
			return n, fmt.Errorf("sync %d run %d: %w", i, r, err)
		}
		if res.Upserted == 0 {
			return n, fmt.Errorf("sync %d run %d upserted nothing", i, r)
		}
		n += res.Upserted
	}
	return n, nil
}

// startServer starts this program as the server, in a process of its own,
// and returns its URL and a function that stops it.
func startServer(ctx context.Context, body int64) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("finding the program: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "-serve", "-body-bytes", strconv.FormatInt(body, 10))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting the server: %w", err)
	}
	stop := func() {
		_ = in.Close() // the server exits when its stdin closes
		if err := cmd.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, "membench: the server:", err)
		}
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		stop()
		if err == nil {
			err = errors.New("no LISTEN line")
		}
		return "", nil, fmt.Errorf("the server did not start (%q): %w", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return "http://" + addr, stop, nil
}

// peakRSSKiB reads VmHWM, the peak resident set size, from /proc.
func peakRSSKiB() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading peak RSS: %w", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			s := strings.TrimSuffix(strings.TrimSpace(string(v)), " kB")
			kib, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmHWM %q: %w", s, err)
			}
			return kib, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
