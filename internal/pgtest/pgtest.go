package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var shared struct {
	mu      sync.Mutex
	managed bool // Main is running: the shared server lives until it ends
	started bool
	server  *Server
	dir     string
	err     error
}

// Main runs a package's tests with one throwaway server shared by all of
// them, started on first use and stopped when the tests end. Use it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without it, Start starts a server per test, which is correct but slower.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.managed = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.server != nil {
		if err := shared.server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		_ = os.RemoveAll(shared.dir)
		shared.server, shared.started = nil, false
	}
	return code
}

// Start returns the DSN of a fresh, empty database for the test, dropped when
// the test ends. The database is on the server named by
// ERPSYNC_TEST_POSTGRES_DSN if set, otherwise on a throwaway server (shared
// by the package's tests when TestMain uses Main). When no PostgreSQL can be
// had, the test fails under CI=true and is skipped otherwise.
func Start(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := adminDSN(ctx, t)
	if err != nil {
		unavailable(t, err)
		return ""
	}
	name := "erpsync_test_" + randomHex(6)
	dsn, err := CreateDatabase(ctx, admin, name)
	if err != nil {
		unavailable(t, err)
		return ""
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DropDatabase(ctx, admin, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// adminDSN returns the DSN of a database from which to create others.
func adminDSN(ctx context.Context, t testing.TB) (string, error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, nil
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.managed {
		s, dir, err := startInTemp(ctx)
		if err != nil {
			return "", err
		}
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Errorf("%v", err)
			}
			_ = os.RemoveAll(dir)
		})
		return s.DSN(), nil
	}
	if !shared.started {
		shared.started = true
		shared.server, shared.dir, shared.err = startInTemp(ctx)
	}
	if shared.err != nil {
		return "", shared.err
	}
	return shared.server.DSN(), nil
}

func startInTemp(ctx context.Context) (*Server, string, error) {
	// Under the system temp dir (world-searchable), not t.TempDir, whose
	// parents only root can enter.
	dir, err := os.MkdirTemp("", "erpsync-pg-")
	if err != nil {
		return nil, "", fmt.Errorf("pgtest: %w", err)
	}
	s, err := StartServer(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return s, dir, nil
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("pgtest: PostgreSQL is required under CI=true: %v", err)
	}
	t.Skipf("pgtest: no PostgreSQL (%v); install postgresql-15 or set %s", err, EnvDSN)
}

// InCI reports whether CI is set to a true value.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// CreateDatabase creates a database on the server of adminDSN and returns
// its DSN. Errors never include the DSN.
func CreateDatabase(ctx context.Context, adminDSN, name string) (string, error) {
	dsn, err := WithDatabase(adminDSN, name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("pgtest: connect to the admin database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return dsn, nil
}

// DropDatabase drops a database, disconnecting its sessions.
func DropDatabase(ctx context.Context, adminDSN, name string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fmt.Errorf("pgtest: connect to the admin database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

// WithDatabase returns dsn (URL or keyword/value form) naming another
// database.
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: the DSN is not a valid URL")
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// In keyword/value form a later keyword wins.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
