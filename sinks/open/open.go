// Package open opens the manager's CRM sink from its configuration: which
// sink, and where. Secrets (the PostgreSQL DSN, the webhook signing key) are
// read from a file, such as a mounted Secret, or from an environment
// variable, never from a flag value, so they stay out of process listings
// and manifests.
//
// Flags (see BindFlags):
//
//	--sink=sqlite|postgres|webhook        (default sqlite)
//	--sink-sqlite-path=/data/erpsync.db   (default erpsync.db)
//	--sink-postgres-dsn-file=/etc/erpsync/sink/dsn   or $ERPSYNC_SINK_POSTGRES_DSN
//	--sink-postgres-schema=erpsync
//	--sink-postgres-max-conns=0           (0: pgxpool's default)
//	--sink-webhook-url=https://crm.example.com/ingest
//	--sink-webhook-key-file=/etc/erpsync/sink/key    or $ERPSYNC_SINK_WEBHOOK_KEY
//	--sink-webhook-timeout=30s
//	--sink-webhook-max-attempts=5
//	--sink-webhook-allow-http=false       (https is required unless set)
package open

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/postgres"
	"github.com/erpsync/erpsync-operator/sinks/sqlite"
	"github.com/erpsync/erpsync-operator/sinks/webhook"
)

// The sink kinds.
const (
	KindSQLite   = "sqlite"
	KindPostgres = "postgres"
	KindWebhook  = "webhook"
)

// Environment variables that may hold the secrets instead of a file.
const (
	EnvPostgresDSN = "ERPSYNC_SINK_POSTGRES_DSN"
	EnvWebhookKey  = "ERPSYNC_SINK_WEBHOOK_KEY"
)

// DefaultSQLitePath is the database file of a local run.
const DefaultSQLitePath = "erpsync.db"

// Config says which sink to open and where.
type Config struct {
	// Kind is sqlite, postgres or webhook (--sink).
	Kind string
	// SQLitePath is the SQLite database file (--sink-sqlite-path).
	SQLitePath string
	// PostgresDSNFile is a file holding the DSN (--sink-postgres-dsn-file);
	// without it the DSN comes from $ERPSYNC_SINK_POSTGRES_DSN.
	PostgresDSNFile string
	// PostgresSchema holds the tables (--sink-postgres-schema).
	PostgresSchema string
	// PostgresMaxConns bounds the connection pool; 0 is pgxpool's default
	// (--sink-postgres-max-conns).
	PostgresMaxConns int
	// WebhookURL is the CRM's ingestion endpoint (--sink-webhook-url).
	WebhookURL string
	// WebhookKeyFile is a file holding the HMAC key
	// (--sink-webhook-key-file); without it the key comes from
	// $ERPSYNC_SINK_WEBHOOK_KEY.
	WebhookKeyFile string
	// WebhookTimeout bounds each POST (--sink-webhook-timeout).
	WebhookTimeout time.Duration
	// WebhookMaxAttempts bounds the attempts per batch
	// (--sink-webhook-max-attempts).
	WebhookMaxAttempts int
	// WebhookAllowHTTP accepts a plain http --sink-webhook-url
	// (--sink-webhook-allow-http): a receiver on loopback or in a sidecar,
	// the demo, tests. Without it the URL must be https.
	WebhookAllowHTTP bool

	// Log receives the sinks' start-up lines (the PostgreSQL TLS mode in
	// force, never a secret); the zero Logger means the context's logger,
	// if any.
	Log logr.Logger

	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// BindFlags registers the configuration's flags, with their defaults.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Kind, "sink", KindSQLite, "Where synced records go: sqlite (a local file), postgres (the CRM's database) or webhook (the CRM's ingestion API).")
	fs.StringVar(&c.SQLitePath, "sink-sqlite-path", DefaultSQLitePath, "SQLite database file (--sink=sqlite); created if missing.")
	fs.StringVar(&c.PostgresDSNFile, "sink-postgres-dsn-file", "", "File holding the PostgreSQL DSN, e.g. a mounted Secret (--sink=postgres); without it, $"+EnvPostgresDSN+" is used.")
	fs.StringVar(&c.PostgresSchema, "sink-postgres-schema", postgres.DefaultSchema, "PostgreSQL schema holding the sink's tables; created if missing.")
	fs.IntVar(&c.PostgresMaxConns, "sink-postgres-max-conns", 0, "Most PostgreSQL connections (0: 4 or the number of CPUs, whichever is more).")
	fs.StringVar(&c.WebhookURL, "sink-webhook-url", "", "The CRM's ingestion URL (--sink=webhook).")
	fs.StringVar(&c.WebhookKeyFile, "sink-webhook-key-file", "", "File holding the webhook's HMAC-SHA256 signing key, e.g. a mounted Secret; without it, $"+EnvWebhookKey+" is used.")
	fs.DurationVar(&c.WebhookTimeout, "sink-webhook-timeout", 30*time.Second, "Time limit of each webhook POST.")
	fs.IntVar(&c.WebhookMaxAttempts, "sink-webhook-max-attempts", 5, "Attempts per batch before a webhook write fails (5xx, 429 and timeouts are retried).")
	fs.BoolVar(&c.WebhookAllowHTTP, "sink-webhook-allow-http", false, "Accept a plain http --sink-webhook-url (a receiver on loopback or in a sidecar only): batches carry customers' data, so https is required otherwise.")
}

func (c *Config) getenv(k string) string {
	if c.Getenv != nil {
		return c.Getenv(k)
	}
	return os.Getenv(k)
}

// Validate checks the configuration without opening anything.
func (c *Config) Validate() error {
	switch c.Kind {
	case KindSQLite:
		if c.SQLitePath == "" {
			return errors.New("--sink=sqlite needs --sink-sqlite-path")
		}
	case KindPostgres:
		if err := oneSource("--sink-postgres-dsn-file", c.PostgresDSNFile, EnvPostgresDSN, c.getenv(EnvPostgresDSN)); err != nil {
			return fmt.Errorf("--sink=postgres: %w", err)
		}
		if c.PostgresMaxConns < 0 {
			return errors.New("--sink-postgres-max-conns must not be negative")
		}
	case KindWebhook:
		u, err := url.Parse(c.WebhookURL)
		switch {
		case c.WebhookURL == "":
			return errors.New("--sink=webhook needs --sink-webhook-url")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return errors.New("--sink-webhook-url must be an absolute https URL")
		case u.Scheme == "http" && !c.WebhookAllowHTTP:
			return errors.New("--sink-webhook-url must be https (batches carry customers' data); set --sink-webhook-allow-http only for a receiver on loopback or in a sidecar")
		case u.User != nil:
			return errors.New("--sink-webhook-url must not carry credentials; the request is signed with the key")
		}
		if err := oneSource("--sink-webhook-key-file", c.WebhookKeyFile, EnvWebhookKey, c.getenv(EnvWebhookKey)); err != nil {
			return fmt.Errorf("--sink=webhook: %w", err)
		}
		if c.WebhookTimeout < 0 || c.WebhookMaxAttempts < 0 {
			return errors.New("--sink-webhook-timeout and --sink-webhook-max-attempts must not be negative")
		}
	case "":
		return errors.New("--sink is empty: choose sqlite, postgres or webhook")
	default:
		return fmt.Errorf("--sink=%q is not a sink: choose sqlite, postgres or webhook", c.Kind)
	}
	return nil
}

func oneSource(flagName, file, env, envValue string) error {
	switch {
	case file != "" && envValue != "":
		return fmt.Errorf("both %s and $%s are set; use one", flagName, env)
	case file == "" && envValue == "":
		return fmt.Errorf("set %s (e.g. a mounted Secret) or $%s", flagName, env)
	}
	return nil
}

// maxSecret bounds a secret file.
const maxSecret = 64 << 10

// secret reads a secret from its file or environment variable. Errors name
// the file or variable, never the content.
func (c *Config) secret(flagName, file, env string) (string, error) {
	if file == "" {
		v := strings.TrimSpace(c.getenv(env))
		if v == "" {
			return "", fmt.Errorf("$%s is empty", env)
		}
		return v, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", fmt.Errorf("%s: reading %s: %w", flagName, file, err)
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%s: %s is larger than %d bytes", flagName, file, maxSecret)
	}
	// Secrets written by hand or by tools often end in a newline.
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", flagName, file)
	}
	return v, nil
}

// Open validates the configuration, reads its secret and opens the sink.
// SQLite and PostgreSQL sinks are migrated to the current schema.
func Open(ctx context.Context, c Config) (sinks.Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	switch c.Kind {
	case KindSQLite:
		if dir := filepath.Dir(c.SQLitePath); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("sink: creating the directory of %s: %w", c.SQLitePath, err)
			}
		}
		s, err := sqlite.Open(ctx, sqlite.Options{Path: c.SQLitePath})
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		return s, nil
	case KindPostgres:
		dsn, err := c.secret("--sink-postgres-dsn-file", c.PostgresDSNFile, EnvPostgresDSN)
		if err != nil {
			return nil, fmt.Errorf("sink: the PostgreSQL DSN: %w", err)
		}
		log := c.Log
		if log.GetSink() == nil {
			log = logr.FromContextOrDiscard(ctx)
		}
		s, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Schema: c.PostgresSchema, MaxConns: int32(max(0, min(c.PostgresMaxConns, 1<<20))), Log: log.WithName("postgres")})
		if err != nil {
			return nil, fmt.Errorf("sink: %w", postgres.Redact(err, dsn))
		}
		return s, nil
	default: // KindWebhook; Validate allows nothing else
		key, err := c.secret("--sink-webhook-key-file", c.WebhookKeyFile, EnvWebhookKey)
		if err != nil {
			return nil, fmt.Errorf("sink: the webhook key: %w", err)
		}
		s, err := webhook.New(webhook.Options{URL: c.WebhookURL, AllowHTTP: c.WebhookAllowHTTP, Key: []byte(key), Timeout: c.WebhookTimeout, MaxAttempts: c.WebhookMaxAttempts})
		if err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
		return s, nil
	}
}

// Counter is implemented by the database sinks (sqlite, postgres): the
// number of stored rows per company and kind, for tests and the demo.
type Counter interface {
	Count(ctx context.Context) (map[string]map[model.Kind]int, error)
}

var (
	_ Counter = (*sqlite.Sink)(nil)
	_ Counter = (*postgres.Sink)(nil)
)
