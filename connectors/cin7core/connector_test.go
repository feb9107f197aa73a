package cin7core_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// testScale compresses time 600-fold: a minute of rate window is 100 ms.
const testScale = 600

const company = "ACME-01"

type env struct {
	sim  *sim.Server
	srv  *httptest.Server
	conn connectors.Connector
	sink *memory.Sink
	// rec records every request.
	rec *connectortest.Recorder
}

type envOpts struct {
	data     simkit.Options
	sim      sim.Options
	conn     cin7core.Options
	creds    map[string]string
	pageSize int
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.data.Products == 0 {
		o.data = simkit.Options{Seed: 42, Products: 120, Customers: 30, Orders: 40}
	}
	o.sim.Dataset = o.data
	o.sim.TimeScale = testScale
	e := &env{sim: sim.New(o.sim), sink: memory.New()}
	e.srv, e.rec = connectortest.Record(t, e.sim)
	creds := o.creds
	if creds == nil {
		creds = e.sim.Credentials()
	}
	secret := connectortest.SecretData(creds, nil)
	o.conn.TimeScale = testScale
	o.conn.Registry = httpapi.NewRegistry(nil)
	if o.conn.BackoffBase == 0 {
		o.conn.BackoffBase = time.Millisecond
	}
	if o.pageSize != 0 {
		o.conn.PageSize = o.pageSize
	} else if o.conn.PageSize == 0 {
		o.conn.PageSize = 50
	}
	c, err := cin7core.NewWithOptions(context.Background(), connectors.Config{Type: cin7core.Type, CompanyID: company,
		BaseURL: e.srv.URL + "/ExternalApi/v2/", Credentials: secret}, o.conn)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	return e
}

func (e *env) run(t *testing.T, state []engine.EntityState, entities ...model.Kind) (engine.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return engine.Execute(ctx, engine.Run{Connector: e.conn, Sink: e.sink, State: state, Entities: entities, Overlap: time.Second})
}

// TestRequestsAreVendorExact checks the page size, the filter's name and
// format and the headers (the simulator refuses wrong ones).
func TestRequestsAreVendorExact(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: -1}) // -1: the connector's default
	since := time.Date(2025, 6, 1, 12, 30, 45, 123e6, time.UTC)
	for _, k := range []model.Kind{model.KindProduct, model.KindSalesOrder, model.KindStockLevel} {
		if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: k, Since: since, Page: 1}); err != nil {
			t.Fatal(err)
		}
	}
	queries := e.rec.Queries()
	want := []*regexp.Regexp{
		regexp.MustCompile(`^/ExternalApi/v2/product\?.*IncludeDeprecated=true.*&Limit=1000&ModifiedSince=2025-06-01T12%3A30%3A45\.123&Page=1$`),
		regexp.MustCompile(`^/ExternalApi/v2/saleList\?Limit=1000&Page=1&UpdatedSince=2025-06-01T12%3A30%3A45\.123$`),
		regexp.MustCompile(`^/ExternalApi/v2/ref/productavailability\?Limit=1000&Page=1$`),
	}
	for i, re := range want {
		if i >= len(queries) || !re.MatchString(queries[i]) {
			t.Errorf("request %d = %q, want %v", i, queries, re)
		}
	}
}

// TestAuthenticationFailure: wrong credentials fail the run with
// AuthenticationFailed after one call, without retries.
func TestAuthenticationFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds map[string]string
	}{
		{"wrong application key", map[string]string{"accountId": sim.DefaultAccountID, "applicationKey": "0342a546-0000-0000-0000-6a5e17154033"}},
		{"wrong account", map[string]string{"accountId": "00000000-cd93-49c9-a201-26b4b5d0d35b", "applicationKey": sim.DefaultApplicationKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{creds: tc.creds})
			_, err := e.run(t, nil)
			if connectors.KindOf(err) != connectors.KindAuthenticationFailed {
				t.Fatalf("error %v (kind %q), want AuthenticationFailed", err, connectors.KindOf(err))
			}
			if n := e.sim.Stats().AuthFails.Load(); n != 1 {
				t.Errorf("%d refused calls, want 1 (no retries)", n)
			}
			if strings.Contains(err.Error(), tc.creds["applicationKey"]) {
				t.Error("the error names the application key")
			}
		})
	}
}

// TestMalformedPageFailsCleanly: a page that parses but breaks the
// contract in one field fails with InvalidResponse naming entity, page and
// field (the suite's MalformedPage covers a body that does not parse).
func TestMalformedPageFailsCleanly(t *testing.T) {
	t.Run("bad field on page 2", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 1}); err != nil {
			t.Fatal(err)
		}
		e.sim.CorruptNext("product", "LastModifiedOn", "29/12/2025 10:00")
		_, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 2})
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Fatalf("error %v, want InvalidResponse", err)
		}
		for _, want := range []string{"products", "page 2", "LastModifiedOn"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	})
}

// TestNewChecksTheSecretWithoutCalling: missing keys are SecretKeyMissing,
// a bad base URL InvalidConfig, and New sends nothing.
func TestNewChecksTheSecretWithoutCalling(t *testing.T) {
	noCalls := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Error("New made a network call")
		return nil, http.ErrHandlerTimeout
	})}
	for _, tc := range []struct {
		name  string
		creds map[string][]byte
		base  string
		kind  connectors.ErrorKind
	}{
		{"ok", map[string][]byte{"accountId": []byte("a"), "applicationKey": []byte("k")}, "", ""},
		{"no account", map[string][]byte{"applicationKey": []byte("k")}, "", connectors.KindSecretKeyMissing},
		{"empty key", map[string][]byte{"accountId": []byte("a"), "applicationKey": nil}, "", connectors.KindSecretKeyMissing},
		{"bad base", map[string][]byte{"accountId": []byte("a"), "applicationKey": []byte("k")}, "ftp://x", connectors.KindInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cin7core.New(context.Background(), connectors.Config{Type: cin7core.Type, Credentials: tc.creds, BaseURL: tc.base, HTTPClient: noCalls})
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("error %v, want kind %q", err, tc.kind)
			}
			if tc.kind == "" && len(c.Entities()) == 0 {
				t.Error("no entities")
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
