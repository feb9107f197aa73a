package open

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/internal/pgtest"
	"github.com/erpsync/erpsync-operator/sinks/postgres"
	"github.com/erpsync/erpsync-operator/sinks/sinktest"
	"github.com/erpsync/erpsync-operator/sinks/sqlite"
	"github.com/erpsync/erpsync-operator/sinks/webhook"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestBindFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	c.BindFlags(fs)
	if c.Kind != KindSQLite || c.SQLitePath != DefaultSQLitePath || c.PostgresSchema != "erpsync" || c.WebhookTimeout != 30*time.Second || c.WebhookMaxAttempts != 5 || c.WebhookAllowHTTP {
		t.Fatalf("defaults %+v", c)
	}
	err := fs.Parse([]string{
		"--sink=webhook", "--sink-sqlite-path=/data/erpsync.db",
		"--sink-postgres-dsn-file=/etc/erpsync/dsn", "--sink-postgres-schema=crm", "--sink-postgres-max-conns=8",
		"--sink-webhook-url=https://crm.example.com/ingest", "--sink-webhook-key-file=/etc/erpsync/key",
		"--sink-webhook-timeout=5s", "--sink-webhook-max-attempts=3", "--sink-webhook-allow-http",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Kind: "webhook", SQLitePath: "/data/erpsync.db", PostgresDSNFile: "/etc/erpsync/dsn", PostgresSchema: "crm", PostgresMaxConns: 8,
		WebhookURL: "https://crm.example.com/ingest", WebhookKeyFile: "/etc/erpsync/key", WebhookTimeout: 5 * time.Second, WebhookMaxAttempts: 3, WebhookAllowHTTP: true}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("parsed %+v, want %+v", c, want)
	}
	// No flag takes a secret's value.
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasSuffix(f.Name, "-dsn") || strings.HasSuffix(f.Name, "-key") || strings.Contains(f.Name, "password") {
			t.Errorf("flag --%s takes a secret's value", f.Name)
		}
	})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr string
	}{
		{"sqlite", Config{Kind: "sqlite", SQLitePath: "x.db"}, ""},
		{"sqlite without path", Config{Kind: "sqlite"}, "--sink-sqlite-path"},
		{"empty kind", Config{}, "choose sqlite, postgres or webhook"},
		{"unknown kind", Config{Kind: "mysql"}, `"mysql" is not a sink`},
		{"postgres from file", Config{Kind: "postgres", PostgresDSNFile: "/f"}, ""},
		{"postgres from env", Config{Kind: "postgres", Getenv: env(map[string]string{EnvPostgresDSN: "host=x"})}, ""},
		{"postgres without DSN", Config{Kind: "postgres"}, "set --sink-postgres-dsn-file (e.g. a mounted Secret) or $ERPSYNC_SINK_POSTGRES_DSN"},
		{"postgres with both", Config{Kind: "postgres", PostgresDSNFile: "/f", Getenv: env(map[string]string{EnvPostgresDSN: "host=x"})}, "use one"},
		{"postgres negative conns", Config{Kind: "postgres", PostgresDSNFile: "/f", PostgresMaxConns: -1}, "max-conns"},
		{"webhook", Config{Kind: "webhook", WebhookURL: "https://crm/in", WebhookKeyFile: "/k"}, ""},
		{"webhook key from env", Config{Kind: "webhook", WebhookURL: "https://crm:8443/in", Getenv: env(map[string]string{EnvWebhookKey: "k"})}, ""},
		{"webhook plain http refused", Config{Kind: "webhook", WebhookURL: "http://crm:8080/in", WebhookKeyFile: "/k"}, "--sink-webhook-allow-http"},
		{"webhook plain http allowed", Config{Kind: "webhook", WebhookURL: "http://127.0.0.1:8080/in", WebhookKeyFile: "/k", WebhookAllowHTTP: true}, ""},
		{"webhook without URL", Config{Kind: "webhook", WebhookKeyFile: "/k"}, "--sink-webhook-url"},
		{"webhook relative URL", Config{Kind: "webhook", WebhookURL: "/in", WebhookKeyFile: "/k"}, "absolute https URL"},
		{"webhook URL with credentials", Config{Kind: "webhook", WebhookURL: "https://u:p@crm/in", WebhookKeyFile: "/k"}, "credentials"},
		{"webhook without key", Config{Kind: "webhook", WebhookURL: "https://crm/in"}, "--sink-webhook-key-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.Getenv == nil {
				tc.c.Getenv = env(nil)
			}
			err := tc.c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenEachKind(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	for _, tc := range []struct {
		name  string
		c     Config
		check func(t *testing.T, s any)
	}{
		{"sqlite in a new directory", Config{Kind: "sqlite", SQLitePath: filepath.Join(t.TempDir(), "data", "erpsync.db")}, func(t *testing.T, s any) {
			if _, ok := s.(*sqlite.Sink); !ok {
				t.Fatalf("got %T", s)
			}
		}},
		{"postgres from a file with a trailing newline", Config{Kind: "postgres", PostgresDSNFile: writeFile(t, "dsn", dsn+"\n"), PostgresSchema: "fromfile"}, func(t *testing.T, s any) {
			if _, ok := s.(*postgres.Sink); !ok {
				t.Fatalf("got %T", s)
			}
		}},
		{"postgres from the environment", Config{Kind: "postgres", PostgresSchema: "fromenv", Getenv: env(map[string]string{EnvPostgresDSN: dsn})}, func(t *testing.T, s any) {
			if _, ok := s.(*postgres.Sink); !ok {
				t.Fatalf("got %T", s)
			}
		}},
		{"webhook", Config{Kind: "webhook", WebhookURL: "https://crm.example.com/in", WebhookKeyFile: writeFile(t, "key", "s3cret\n")}, func(t *testing.T, s any) {
			if _, ok := s.(*webhook.Sink); !ok {
				t.Fatalf("got %T", s)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.Getenv == nil {
				tc.c.Getenv = env(nil)
			}
			s, err := Open(ctx, tc.c)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			tc.check(t, s)
			if c, ok := s.(Counter); ok {
				batch := sinktest.AllKinds("acme", "v", "x", 1)
				if _, err := s.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
				counts, err := c.Count(ctx)
				if err != nil || len(counts["acme"]) != len(batch) {
					t.Fatalf("Count = %v, %v", counts, err)
				}
			}
		})
	}
}

func TestOpenErrorsNameTheSourceNotTheSecret(t *testing.T) {
	ctx := context.Background()
	const pw = "hunter2-very-secret"
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr string
	}{
		{"missing DSN file", Config{Kind: "postgres", PostgresDSNFile: "/nonexistent/dsn"}, "/nonexistent/dsn"},
		{"empty DSN file", Config{Kind: "postgres", PostgresDSNFile: writeFile(t, "empty", "\n")}, "is empty"},
		{"unreachable server", Config{Kind: "postgres", PostgresDSNFile: writeFile(t, "dsn", "postgres://u:"+pw+"@127.0.0.1:1/db?connect_timeout=1")}, "postgres"},
		{"unparsable DSN", Config{Kind: "postgres", Getenv: env(map[string]string{EnvPostgresDSN: "host=x password=" + pw + " port=notaport"})}, "invalid DSN"},
		{"empty key from env", Config{Kind: "webhook", WebhookURL: "https://crm/in", Getenv: env(map[string]string{EnvWebhookKey: "  "})}, "is empty"},
		{"missing key file", Config{Kind: "webhook", WebhookURL: "https://crm/in", WebhookKeyFile: "/nonexistent/key"}, "/nonexistent/key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.Getenv == nil {
				tc.c.Getenv = env(nil)
			}
			s, err := Open(ctx, tc.c)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("error quotes the secret: %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}
