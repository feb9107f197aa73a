package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// managerUser is the API server user the manager runs as, so that the
// audit log tells its writes from the benchmark's own.
const managerUser = "erpsync-manager"

// auditPolicy records, at Metadata level, the writes of the manager's user;
// nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["` + managerUser + `"]
  verbs: ["create", "update", "patch", "delete"]
- level: None
`

// controlPlane is etcd and a kube-apiserver that audits the manager's
// writes, with a kubeconfig for the manager and a rest.Config for the
// benchmark.
type controlPlane struct {
	env        *envtest.Environment
	auditLog   string
	kubeconfig string
	admin      *rest.Config
}

func startControlPlane(binDir, crdDir, dir string) (*controlPlane, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	cp := &controlPlane{auditLog: filepath.Join(dir, "audit.log")}
	cp.env = &envtest.Environment{BinaryAssetsDirectory: binDir,
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: []string{crdDir}, ErrorIfPathMissing: true}}
	args := cp.env.ControlPlane.GetAPIServer().Configure()
	args.Set("audit-policy-file", policy)
	args.Set("audit-log-path", cp.auditLog)
	// Batched, so that auditing does not hold up the requests it records.
	args.Set("audit-log-mode", "batch")
	args.Set("audit-log-format", "json")
	// Never rotated: at 0 the log rotates at 100 MB (lumberjack's default),
	// which a 10,000-company run passes, and the writes of the window
	// before the rotation would go uncounted (1.15 writes a sync measured
	// so, against 2.1 before).
	args.Set("audit-log-maxsize", "1000000")
	cfg, err := cp.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	cp.admin = rest.CopyConfig(cfg)
	cp.admin.QPS, cp.admin.Burst = 1000, 2000
	user, err := cp.env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = cp.env.Stop()
		return nil, fmt.Errorf("adding the manager's user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = cp.env.Stop()
		return nil, fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	cp.kubeconfig = filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, kc, 0o600); err != nil {
		_ = cp.env.Stop()
		return nil, err
	}
	return cp, nil
}

func (c *controlPlane) stop() error { return c.env.Stop() }

// process is a child process with its output in a log file; it dies with
// the benchmark even if the benchmark is killed.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after timeout, and waits.
func (p *process) stop(timeout time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// simState is the part of erpsim's state file the benchmark reads.
type simState struct {
	AdminURL string `json:"adminURL"`
	Vendors  []struct {
		Vendor    string `json:"vendor"`
		BaseURL   string `json:"baseURL"`
		Throttled int64  `json:"throttled"`
		Requests  int64  `json:"requests"`
		Companies []struct {
			Company     int               `json:"company"`
			BaseURL     string            `json:"baseURL"`
			Credentials map[string]string `json:"credentials"`
		} `json:"companies"`
	} `json:"vendors"`
}

// vendorStats is erpsim's GET /vendors/{vendor}/stats.
type vendorStats struct {
	Requests  int64 `json:"requests"`
	Throttled int64 `json:"throttled"`
}

// refusals sums the requests each vendor refused for a limit or quota (429,
// 503, Unleashed's quota 403) over every company, and the requests served;
// byVendor names the vendors that refused any.
func refusals(ctx context.Context, adminURL string, vendors []string) (refused, requests int64, byVendor map[string]int64, err error) {
	byVendor = map[string]int64{}
	for _, v := range vendors {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/vendors/"+v+"/stats", nil)
		if err != nil {
			return 0, 0, nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("reading %s's stats: %w", v, err)
		}
		var st vendorStats
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return 0, 0, nil, fmt.Errorf("decoding %s's stats: %w", v, err)
		}
		if st.Throttled > 0 {
			byVendor[v] = st.Throttled
		}
		refused += st.Throttled
		requests += st.Requests
	}
	return refused, requests, byVendor, nil
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
