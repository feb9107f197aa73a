package postgres

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestWithDefaultSSLMode(t *testing.T) {
	const pw = "s3cret-pw"
	for _, tc := range []struct {
		name string
		dsn  string
		env  map[string]string
		// want is the mode and source in force; changed says whether the
		// DSN was completed.
		wantMode, wantSource string
		changed              bool
		verified             bool
		// check inspects pgx's parse of the result.
		check func(t *testing.T, c *pgconn.Config)
	}{
		{name: "keyword/value without sslmode", dsn: "host=db.example.com user=u password=" + pw + " dbname=crm",
			wantMode: "verify-full", wantSource: "default", changed: true, verified: true, check: verifiesFull("db.example.com")},
		{name: "URL without sslmode", dsn: "postgres://u:" + pw + "@db.example.com:5433/crm?application_name=x",
			wantMode: "verify-full", wantSource: "default", changed: true, verified: true, check: func(t *testing.T, c *pgconn.Config) {
				verifiesFull("db.example.com")(t, c)
				if c.Port != 5433 || c.Database != "crm" || c.RuntimeParams["application_name"] != "x" {
					t.Errorf("other parameters changed: port %d, database %q, params %v", c.Port, c.Database, c.RuntimeParams)
				}
			}},
		{name: "URL without a query", dsn: "postgresql://u:" + pw + "@db.example.com/crm",
			wantMode: "verify-full", wantSource: "default", changed: true, verified: true, check: verifiesFull("db.example.com")},
		{name: "explicit disable keeps working", dsn: "host=127.0.0.1 user=u sslmode=disable",
			wantMode: "disable", wantSource: "dsn", check: func(t *testing.T, c *pgconn.Config) {
				if c.TLSConfig != nil {
					t.Errorf("TLS configured for sslmode=disable")
				}
			}},
		{name: "explicit disable in a URL", dsn: "postgres://u@127.0.0.1/crm?sslmode=disable", wantMode: "disable", wantSource: "dsn"},
		{name: "URL alias ssl=true", dsn: "postgres://u@db/crm?ssl=true", wantMode: "require", wantSource: "dsn"},
		{name: "require with a root certificate verifies", dsn: "host=db sslmode=require sslrootcert=system", wantMode: "require", wantSource: "dsn", verified: true},
		{name: "the last sslmode wins", dsn: "host=db sslmode=disable sslmode=verify-ca", wantMode: "verify-ca", wantSource: "dsn", verified: true},
		{name: "sslmode inside a quoted password is not a mode", dsn: `host=db.example.com user=u password='a sslmode=disable \' b'`,
			wantMode: "verify-full", wantSource: "default", changed: true, verified: true, check: func(t *testing.T, c *pgconn.Config) {
				verifiesFull("db.example.com")(t, c)
				if c.Password != `a sslmode=disable ' b` {
					t.Errorf("password %q changed", c.Password)
				}
			}},
		{name: "PGSSLMODE decides", dsn: "host=db", env: map[string]string{"PGSSLMODE": "require"}, wantMode: "require", wantSource: "PGSSLMODE"},
		{name: "PGSSLROOTCERT counts", dsn: "host=db sslmode=require", env: map[string]string{"PGSSLROOTCERT": "/ca.crt"}, wantMode: "require", wantSource: "dsn", verified: true},
		{name: "a service decides", dsn: "service=crm", wantSource: "service"},
		{name: "PGSERVICE decides", dsn: "host=db", env: map[string]string{"PGSERVICE": "crm"}, wantSource: "service"},
		{name: "trailing space", dsn: "host=db.example.com  \n", wantMode: "verify-full", wantSource: "default", changed: true, verified: true, check: verifiesFull("db.example.com")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, m, err := withDefaultSSLMode(tc.dsn, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatalf("withDefaultSSLMode: %v", err)
			}
			if m.Mode != tc.wantMode || m.Source != tc.wantSource || m.Verified() != tc.verified {
				t.Errorf("mode %+v (verified %v), want %q from %q (verified %v)", m, m.Verified(), tc.wantMode, tc.wantSource, tc.verified)
			}
			if (got != tc.dsn) != tc.changed {
				t.Errorf("DSN %q, changed %v, want changed %v", got, got != tc.dsn, tc.changed)
			}
			if tc.check != nil {
				c, err := pgconn.ParseConfig(got)
				if err != nil {
					t.Fatalf("pgx cannot parse %q: %v", got, err)
				}
				tc.check(t, c)
			}
		})
	}
}

// verifiesFull checks that pgx will verify the chain and the host name, and
// will not fall back to plain text.
func verifiesFull(host string) func(t *testing.T, c *pgconn.Config) {
	return func(t *testing.T, c *pgconn.Config) {
		t.Helper()
		if c.TLSConfig == nil || c.TLSConfig.InsecureSkipVerify || c.TLSConfig.ServerName != host {
			t.Fatalf("TLS %+v, want verification of %q", c.TLSConfig, host)
		}
		for _, f := range c.Fallbacks {
			if f.TLSConfig == nil || f.TLSConfig.InsecureSkipVerify {
				t.Fatalf("fallback without verified TLS: %+v", f)
			}
		}
	}
}

func TestDSNParseErrorsDoNotQuoteTheDSN(t *testing.T) {
	const pw = "hunter2-secret"
	for _, dsn := range []string{
		"host=db password='" + pw,
		"host=db " + pw,
		"postgres://u:" + pw + "@db/crm?sslmode=%zz",
		"host=db pass word=" + pw,
	} {
		if _, _, err := withDefaultSSLMode(dsn, func(string) string { return "" }); err == nil {
			t.Errorf("%q: no error", dsn)
		} else if strings.Contains(err.Error(), pw) {
			t.Errorf("error %q quotes the password", err)
		}
	}
}

// sslProbe is a TCP server that records whether a client's first message
// is an SSLRequest, answers it with "no TLS here", and hangs up.
type sslProbe struct {
	ln    net.Listener
	mu    sync.Mutex
	first []uint32 // the protocol code of each connection's first message
}

func newSSLProbe(t *testing.T) *sslProbe {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sslProbe{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				var hdr [8]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				code := binary.BigEndian.Uint32(hdr[4:])
				p.mu.Lock()
				p.first = append(p.first, code)
				p.mu.Unlock()
				if code == sslRequestCode {
					_, _ = c.Write([]byte{'N'})
				}
			}()
		}
	}()
	return p
}

const sslRequestCode = 80877103

func (p *sslProbe) codes() []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint32(nil), p.first...)
}

// TestOpenVerifiesTLSByDefault opens a sink on a server that offers no
// TLS: without an sslmode the connection asks for TLS and gives up when it
// is refused (rather than going on in plain text, as libpq's "prefer"
// would), and the log says so without the password; with sslmode=disable
// it goes straight to the startup message.
func TestOpenVerifiesTLSByDefault(t *testing.T) {
	const pw = "pw-never-logged"
	p := newSSLProbe(t)
	port := p.ln.Addr().(*net.TCPAddr).Port
	var logs []string
	log := funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})
	base := "host=127.0.0.1 port=" + strconv.Itoa(port) + " user=u password=" + pw + " dbname=crm connect_timeout=3"
	ctx := context.Background()

	_, err := Open(ctx, Options{DSN: base, Log: log, getenv: func(string) string { return "" }})
	if err == nil {
		t.Fatal("Open succeeded against a server without TLS")
	}
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("error quotes the password: %v", err)
	}
	codes := p.codes()
	if len(codes) == 0 {
		t.Fatal("no connection reached the server")
	}
	for _, c := range codes {
		if c != sslRequestCode {
			t.Fatalf("a connection began with protocol code %d, not an SSLRequest: it fell back to plain text", c)
		}
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"sslmode"="verify-full"`) || !strings.Contains(logs[0], `"source"="default"`) || !strings.Contains(logs[0], `"certificateVerified"=true`) {
		t.Fatalf("log %q, want one line naming verify-full by default", logs)
	}
	for _, l := range logs {
		if strings.Contains(l, pw) {
			t.Fatalf("log quotes the password: %q", l)
		}
	}

	before := len(codes)
	logs = nil
	_, err = Open(ctx, Options{DSN: base + " sslmode=disable", Log: log, getenv: func(string) string { return "" }})
	if err == nil {
		t.Fatal("Open succeeded against a server that hangs up")
	}
	codes = p.codes()
	if len(codes) <= before || codes[before] == sslRequestCode {
		t.Fatalf("with sslmode=disable the first message was %v, want a startup message", codes[before:])
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"sslmode"="disable"`) || !strings.Contains(logs[0], `"certificateVerified"=false`) || !strings.Contains(logs[0], "does not verify") {
		t.Fatalf("log %q, want a warning naming sslmode=disable", logs)
	}
}
