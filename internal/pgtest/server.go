// Package pgtest gives tests and scripts a PostgreSQL to talk to: the one
// named by ERPSYNC_TEST_POSTGRES_DSN, or a throwaway cluster started from the
// installed PostgreSQL binaries in a temporary directory.
//
// A throwaway server runs as a child of the calling process (initdb, then the
// postgres binary directly rather than a daemonising pg_ctl) with a parent
// death signal, so it goes away with the process even if the process is
// killed. As root it runs as the unprivileged "postgres" user (or "nobody"),
// since PostgreSQL refuses to run as root. It listens on a unix socket in its
// directory and on a free 127.0.0.1 port, trusts local connections and runs
// with fsync off: it is for tests, never for data that matters.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable with the DSN of an existing server
// that tests use instead of starting one.
const EnvDSN = "ERPSYNC_TEST_POSTGRES_DSN"

// EnvBinDir overrides where the PostgreSQL binaries are looked up.
const EnvBinDir = "ERPSYNC_TEST_POSTGRES_BIN"

// DefaultBinDir is where Debian installs PostgreSQL 15.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Server is a throwaway PostgreSQL cluster.
type Server struct {
	dir     string
	sockDir string
	port    int
	cmd     *exec.Cmd
	done    chan struct{}
	log     *lockedBuffer

	stopOnce sync.Once
	stopErr  error
}

// BinDir returns the directory with initdb and postgres.
func BinDir() string {
	if d := os.Getenv(EnvBinDir); d != "" {
		return d
	}
	return DefaultBinDir
}

// StartServer initialises a cluster in dir (created if needed; it must be
// empty, and its parent directories must be searchable by the server's user)
// and starts it. ctx bounds the start-up only: the server runs until Stop is
// called or this process dies.
func StartServer(ctx context.Context, dir string) (*Server, error) {
	bin := BinDir()
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("pgtest: PostgreSQL binary %s not found in %s (install postgresql-15 or set %s): %w", b, bin, EnvBinDir, err)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, sockDir: filepath.Join(dir, "sock")}
	data := filepath.Join(dir, "data")
	for _, d := range []string{dir, s.sockDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("pgtest: create %s: %w", d, err)
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("pgtest: chown %s: %w", d, err)
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = serverEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb in %s: %w: %s", data, err, tail(out))
	}
	// A free port can be taken by someone else before the server binds it:
	// try a few.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("pgtest: find a free port: %w", err)
		}
		err = s.start(ctx, bin, data, port, cred)
		if err == nil {
			return s, nil
		}
		if attempt == 2 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (s *Server) start(ctx context.Context, bin, data string, port int, cred *syscall.Credential) error {
	log := &lockedBuffer{}
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-k", s.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdout = log
	cmd.Stderr = log
	// SIGINT is a fast shutdown; the death signal stops the server when
	// this process dies, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	dsn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", s.sockDir, port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(pctx, dsn)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			s.port, s.cmd, s.done, s.log = port, cmd, done, log
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited at start-up: %w: %s", waitErr, tail(log.Bytes()))
		case <-ctx.Done():
			stop()
			return fmt.Errorf("pgtest: waiting for postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("pgtest: postgres not ready after 60s: %w: %s", err, tail(log.Bytes()))
		}
	}
}

// DSN returns the DSN of the server's "postgres" database as its superuser,
// over the unix socket.
func (s *Server) DSN() string { return s.DSNFor("postgres") }

// DSNFor returns the DSN of a database on the server.
func (s *Server) DSNFor(database string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.sockDir, s.port, database)
}

// TCPDSN returns the DSN of a database over TCP on 127.0.0.1.
func (s *Server) TCPDSN(database string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", s.port, database)
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Stop shuts the server down (fast shutdown, then a kill after 30s) and
// waits for it to exit. The cluster's directory is left for the caller.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = fmt.Errorf("pgtest: postgres did not stop within 30s; killed: %s", tail(s.log.Bytes()))
		}
	})
	return s.stopErr
}

// serverCredential returns the user to run PostgreSQL as: nil (this
// process's user) unless running as root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var lastErr error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			lastErr = err
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			lastErr = fmt.Errorf("user %s has unusable ids %s:%s", name, u.Uid, u.Gid)
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, fmt.Errorf("pgtest: running as root and no unprivileged user to run postgres as: %w", lastErr)
}

func serverEnv() []string {
	env := []string{"LC_ALL=C", "LANG=C", "PATH=/usr/bin:/bin", "TZ=UTC"}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
