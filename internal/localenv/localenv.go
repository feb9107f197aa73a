// Package localenv runs the operator the way a user meets it, on one
// machine: a real control plane (etcd and kube-apiserver, started by
// controller-runtime's envtest as processes), the built binaries as child
// processes, and kubectl. `make demo` and the end-to-end tests share it.
package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Root returns the repository root (the directory holding go.mod), found
// from the working directory upwards.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); bytes.HasPrefix(b, []byte("module github.com/erpsync/erpsync-operator\n")) {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the erpsync-operator repository")
		}
		dir = parent
	}
}

// K8sBinDir returns the directory with kube-apiserver, etcd and kubectl:
// KUBEBUILDER_ASSETS if set, otherwise what hack/build-k8s-binaries.sh
// builds (building it if needed).
func K8sBinDir(ctx context.Context, root string) (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "build-k8s-binaries.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("building the Kubernetes binaries: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Build compiles a main package of the repository into dir and returns the
// binary's path.
func Build(ctx context.Context, root, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// ControlPlane is a running etcd and kube-apiserver with an admin kubeconfig.
type ControlPlane struct {
	env *envtest.Environment
	// Kubeconfig is the path of an admin kubeconfig for kubectl and the
	// manager.
	Kubeconfig string
	// Kubectl is the path of the kubectl binary.
	Kubectl string
}

// StartControlPlane starts etcd and kube-apiserver from binDir and writes
// an admin kubeconfig into dir. CRDs are not installed: users install them
// with kubectl.
func StartControlPlane(binDir, dir string) (*ControlPlane, error) {
	env := &envtest.Environment{BinaryAssetsDirectory: binDir}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	user, err := env.AddUser(envtest.User{Name: "erpsync-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating an admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &ControlPlane{env: env, Kubeconfig: path, Kubectl: filepath.Join(binDir, "kubectl")}, nil
}

// Stop stops the control plane.
func (c *ControlPlane) Stop() error { return c.env.Stop() }

// Run runs kubectl with the admin kubeconfig and returns its combined
// output.
func (c *ControlPlane) Run(ctx context.Context, args ...string) (string, error) {
	return c.RunStdin(ctx, nil, args...)
}

// RunStdin runs kubectl with stdin.
func (c *ControlPlane) RunStdin(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Process is a child process with its output in a log file.
type Process struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan error
}

// Start starts a binary with its output appended to logPath.
func Start(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// The child dies with us, even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		_ = f.Close()
	}()
	return p, nil
}

// Stop sends SIGTERM and waits (up to timeout, then SIGKILL).
func (p *Process) Stop(timeout time.Duration) error {
	if p == nil || p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return nil
	case <-time.After(timeout):
		return p.Kill()
	}
}

// Kill sends SIGKILL and waits.
func (p *Process) Kill() error {
	if p == nil || p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
	return nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// Tail returns the last n bytes of the process's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitForFile waits until path exists and is not empty.
func WaitForFile(ctx context.Context, path string) error {
	for {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
