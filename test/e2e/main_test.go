// Package e2e runs the operator the way a user does: the built manager and
// erpsim binaries as processes, a real control plane (etcd and
// kube-apiserver), a real PostgreSQL as the CRM, and kubectl for everything.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/hostile"
	"github.com/erpsync/erpsync-operator/internal/localenv"
	"github.com/erpsync/erpsync-operator/internal/pgtest"
	"github.com/erpsync/erpsync-operator/sinks/postgres"
)

// env is the environment every test shares.
var env struct {
	root    string
	work    string
	manager string
	erpsim  string
	cp      *localenv.ControlPlane
	pgDSN   string
	dsnFile string
	sim     *simProcess
	// hostile is a second erpsim serving one vendor (Unleashed) for a
	// victim tenant and, with --hostile, the attacks a hostile tenant runs.
	hostile *simProcess
	// allowHosts is the manager's egress allow-list: the simulators a test
	// starts (and the hostile API, playing a public host). The hostile
	// erpsim's internal service is never in it.
	allowHosts []string
	mgr        *localenv.Process
	// hookAddr is where the manager's webhook receiver listens and hookURL
	// the public URL vendors deliver to (the same loopback address).
	hookAddr string
	hookURL  string
}

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) (code int) {
	ctx := context.Background()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "e2e setup: "+format+"\n", args...)
		return 1
	}
	var err error
	if env.root, err = localenv.Root(); err != nil {
		return fail("%v", err)
	}
	if env.work, err = os.MkdirTemp("", "erpsync-e2e-"); err != nil {
		return fail("%v", err)
	}
	// PostgreSQL runs as an unprivileged user and needs to reach its
	// directory below this one.
	if err := os.Chmod(env.work, 0o755); err != nil {
		return fail("%v", err)
	}
	defer func() {
		if code == 0 {
			_ = os.RemoveAll(env.work)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", env.work)
		}
	}()
	binDir, err := localenv.K8sBinDir(ctx, env.root)
	if err != nil {
		return fail("%v", err)
	}
	if env.manager, err = localenv.Build(ctx, env.root, "./cmd/manager", env.work); err != nil {
		return fail("%v", err)
	}
	if env.erpsim, err = localenv.Build(ctx, env.root, "./cmd/erpsim", env.work); err != nil {
		return fail("%v", err)
	}

	// The CRM: a real PostgreSQL (ERPSYNC_TEST_POSTGRES_DSN, or a throwaway
	// server from the installed binaries).
	if dsn := os.Getenv(pgtest.EnvDSN); dsn != "" {
		name := fmt.Sprintf("erpsync_e2e_%d", time.Now().UnixNano()%1_000_000)
		// The manager verifies the server's certificate unless the DSN
		// says otherwise; a test server has none.
		if env.pgDSN, err = pgtest.CreateDatabase(ctx, withSSLMode(dsn), name); err != nil {
			return fail("creating the e2e database: %v", err)
		}
	} else {
		pg, err := pgtest.StartServer(ctx, filepath.Join(env.work, "pg"))
		if err != nil {
			return fail("starting PostgreSQL: %v", err)
		}
		defer func() { _ = pg.Stop() }()
		env.pgDSN = pg.DSN()
	}
	env.dsnFile = filepath.Join(env.work, "dsn")
	if err := os.WriteFile(env.dsnFile, []byte(env.pgDSN), 0o600); err != nil {
		return fail("%v", err)
	}

	if env.cp, err = localenv.StartControlPlane(binDir, env.work); err != nil {
		return fail("%v", err)
	}
	defer warnIf("stopping the control plane", env.cp.Stop)
	if _, err := env.cp.Run(ctx, "apply", "-k", filepath.Join(env.root, "config", "crd")); err != nil {
		return fail("%v", err)
	}
	if _, err := env.cp.Run(ctx, "wait", "--for=condition=Established", "crd/erpsyncs.erpsync.io", "--timeout=60s"); err != nil {
		return fail("%v", err)
	}

	if env.sim, err = startSim(ctx, "erpsim", "--products", "120", "--customers", "30", "--orders", "60"); err != nil {
		return fail("%v", err)
	}
	defer warnIf("stopping erpsim", func() error { return env.sim.proc.Stop(5 * time.Second) })
	if env.hostile, err = startSim(ctx, "erpsim-hostile", "--vendors", "unleashed", "--products", "60", "--customers", "20", "--orders", "40",
		"--hostile", "--hostile-huge-bytes", fmt.Sprint(hugeBody), "--hostile-slow-for", "5m"); err != nil {
		return fail("%v", err)
	}
	defer warnIf("stopping the hostile erpsim", func() error { return env.hostile.proc.Stop(5 * time.Second) })
	if env.hostile.state.Hostile == nil {
		return fail("erpsim --hostile published no hostile state")
	}
	urls := []string{env.hostile.state.Hostile.BaseURL}
	for _, s := range []*simProcess{env.sim, env.hostile} {
		for _, v := range s.state.Vendors {
			urls = append(urls, v.BaseURL)
		}
	}
	urls = append(urls, refusedURL)
	if env.allowHosts, err = localenv.AllowHosts(urls...); err != nil {
		return fail("%v", err)
	}
	if env.hookAddr, err = freeAddr(); err != nil {
		return fail("%v", err)
	}
	env.hookURL = "http://" + env.hookAddr
	if env.mgr, err = startManager(); err != nil {
		return fail("%v", err)
	}
	defer func() { _ = env.mgr.Stop(10 * time.Second) }()
	code = m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "manager log (last lines):\n%s\n", env.mgr.Tail(6000))
	}
	return code
}

// refusedURL is an allowed address where nothing listens: the ERP that
// refuses connections of TestBadInput.
const refusedURL = "http://127.0.0.1:1/v1"

// hugeBody is the size of the hostile API's endless body: beyond every
// response cap of the connectors.
const hugeBody = 1 << 30

// startManager starts the manager binary as a user would run it out of
// cluster, with the PostgreSQL sink, allowed to reach env.allowHosts.
func startManager() (*localenv.Process, error) {
	return localenv.Start("manager", filepath.Join(env.work, "manager.log"), []string{"KUBECONFIG=" + env.cp.Kubeconfig}, env.manager,
		"--leader-elect", "--leader-election-namespace=default",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--checkpoint-interval=200ms",
		"--egress-allow-hosts="+strings.Join(env.allowHosts, ","),
		"--sink=postgres", "--sink-postgres-dsn-file="+env.dsnFile,
		"--quota-file="+filepath.Join(env.work, "quota.json"),
		"--webhook-bind-address="+env.hookAddr, "--webhook-public-url="+env.hookURL)
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

// allowAndRestart adds the hosts of urls to the manager's egress allow-list
// and restarts the manager, for a test that starts a simulator of its own.
func allowAndRestart(t *testing.T, urls ...string) {
	t.Helper()
	hosts, err := localenv.AllowHosts(urls...)
	if err != nil {
		t.Fatal(err)
	}
	env.allowHosts = append(env.allowHosts, hosts...)
	if err := env.mgr.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if env.mgr, err = startManager(); err != nil {
		t.Fatal(err)
	}
}

// withSSLMode adds sslmode=disable to a DSN that names no sslmode.
func withSSLMode(dsn string) string {
	if strings.Contains(dsn, "sslmode=") {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if strings.Contains(dsn, "?") {
			return dsn + "&sslmode=disable"
		}
		return dsn + "?sslmode=disable"
	}
	return strings.TrimSpace(dsn) + " sslmode=disable"
}

// simProcess is a running erpsim and what it published.
type simProcess struct {
	proc  *localenv.Process
	state simState
}

type simState struct {
	AdminURL string      `json:"adminURL"`
	Vendors  []simVendor `json:"vendors"`
	// Hostile is set for an erpsim started with --hostile.
	Hostile *hostile.State `json:"hostile"`
}

type simVendor struct {
	Vendor      string            `json:"vendor"`
	BaseURL     string            `json:"baseURL"`
	Credentials map[string]string `json:"credentials"`
	Expected    map[string]int    `json:"expected"`
	Requests    int64             `json:"requests"`
	Throttled   int64             `json:"throttled"`
}

func startSim(ctx context.Context, name string, args ...string) (*simProcess, error) {
	state := filepath.Join(env.work, name+".json")
	p, err := localenv.Start(name, filepath.Join(env.work, name+".log"), nil, env.erpsim, append(args, "--state-file", state)...)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := localenv.WaitForFile(wctx, state); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%w: %s", err, p.Tail(2000))
	}
	b, err := os.ReadFile(state)
	if err != nil {
		return nil, err
	}
	s := &simProcess{proc: p}
	if err := json.Unmarshal(b, &s.state); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *simProcess) endpoints() map[string]localenv.Endpoint {
	out := map[string]localenv.Endpoint{}
	for _, v := range s.state.Vendors {
		out[v.Vendor] = localenv.Endpoint{BaseURL: v.BaseURL, Credentials: v.Credentials}
	}
	return out
}

func (s *simProcess) vendor(t *testing.T, name string) simVendor {
	t.Helper()
	var v simVendor
	s.admin(t, http.MethodGet, "/vendors/"+name+"/stats", &v)
	return v
}

func (s *simProcess) admin(t *testing.T, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.state.AdminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("erpsim admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("erpsim admin %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("erpsim admin %s %s: %v", method, path, err)
		}
	}
}

// kubectl runs kubectl and fails the test on error.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := env.cp.Run(context.Background(), args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// kubectlErr runs kubectl and returns its output and error.
func kubectlErr(args ...string) (string, error) {
	return env.cp.Run(context.Background(), args...)
}

// crmCounts returns the records per company and kind in PostgreSQL.
func crmCounts(t *testing.T) map[string]map[model.Kind]int {
	t.Helper()
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Options{DSN: env.pgDSN, MaxConns: 2})
	if err != nil {
		t.Fatalf("opening the CRM: %v", err)
	}
	defer s.Close()
	c, err := s.Count(ctx)
	if err != nil {
		t.Fatalf("counting the CRM: %v", err)
	}
	return c
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
	kubectl(t, "create", "namespace", ns)
	return ns
}

// jsonpath reads a field of an object with kubectl.
func jsonpath(t *testing.T, ns, obj, path string) string {
	t.Helper()
	return strings.TrimSpace(kubectl(t, "get", "-n", ns, obj, "-o", "jsonpath="+path))
}

// eventually polls cond until it returns true or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// warnIf runs a teardown step and reports its failure: a process left
// running would hold its ports into the next run.
func warnIf(what string, stop func() error) {
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e teardown: %s: %v\n", what, err)
	}
}
