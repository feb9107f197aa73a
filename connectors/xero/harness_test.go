package xero

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// harness is a connector wired to a simulator on one fake clock: rate-limit
// waits advance the clock the simulator meters with, and token lifetimes
// run on it too. Each harness has its own limiter registry and token cache
// (its own "manager process").
type harness struct {
	t      *testing.T
	sim    *sim.Server
	srv    *httptest.Server
	clock  *httpapi.FakeClock
	store  *MemoryCredentialStore
	tokens *tokenCache
	reg    *httpapi.Registry
	conn   connectors.Connector
	sink   *memory.Sink
	state  []engine.EntityState
}

var testStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, opts sim.Options, wrap func(http.Handler) http.Handler) *harness {
	t.Helper()
	h := &harness{t: t, clock: httpapi.NewFakeClock(testStart), sink: memory.New(), tokens: newTokenCache(), reg: httpapi.NewRegistry(nil)}
	if opts.Dataset.Products == 0 && opts.Data == nil {
		opts.Dataset = smallDataset()
	}
	opts.Now = h.clock.Now
	h.sim = sim.New(opts)
	var handler http.Handler = h.sim
	if wrap != nil {
		handler = wrap(handler)
	}
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	h.store = NewMemoryCredentialStore("default/xero-"+t.Name(), h.sim.Credentials())
	h.conn = h.connector(t, h.store, "")
	return h
}

// connector builds a connector on the harness's Secret store, clock, limiter
// registry and token cache; tenant overrides the Secret's tenantId.
func (h *harness) connector(t *testing.T, store *MemoryCredentialStore, tenant string) connectors.Connector {
	t.Helper()
	c, err := NewWithOptions(context.Background(), connectors.Config{
		Type: Type, CompanyID: "acme", BaseURL: h.srv.URL + sim.APIPath, TenantID: tenant, Credentials: store.Data(),
		CredentialStore: store, HTTPClient: h.srv.Client(), Log: testr.New(t),
	}, Options{Clock: h.clock, Registry: h.reg, tokens: h.tokens})
	if err != nil {
		t.Fatalf("building the connector: %v", err)
	}
	return c
}

func (h *harness) run(ctx context.Context) (engine.Result, error) {
	return h.runWith(ctx, nil)
}

func (h *harness) runWith(ctx context.Context, cp engine.CheckpointFunc) (engine.Result, error) {
	res, err := engine.Execute(ctx, engine.Run{Connector: h.conn, Sink: h.sink, State: h.state, Now: h.clock.Now, Checkpoint: cp, Log: testr.New(h.t)})
	h.state = res.State
	return res, err
}

func (h *harness) counts() map[model.Kind]int {
	out := map[model.Kind]int{}
	for _, r := range h.sink.Records() {
		out[r.Kind]++
	}
	return out
}

func (h *harness) get(kind model.Kind, id string) (model.Record, bool) {
	return h.sink.Get(model.Key{Company: "acme", Vendor: Type, Kind: kind, VendorID: id})
}

// secretUsable fails the test when the Secret's refresh token would not
// work now.
func (h *harness) secretUsable(t *testing.T, store *MemoryCredentialStore) {
	t.Helper()
	if rt := store.Value("refreshToken"); !h.sim.RefreshTokenUsable(rt) {
		t.Fatalf("the Secret ends with an unusable refresh token")
	}
}

// apiCalls counts the Accounting API requests the simulator saw.
func (h *harness) apiCalls() int64 {
	var n int64
	for p, c := range h.sim.Stats().ByPath() {
		if len(p) >= len(sim.APIPath) && p[:len(sim.APIPath)] == sim.APIPath {
			n += c
		}
	}
	return n
}

func smallDataset() simkit.Options {
	return simkit.Options{Seed: 42, Products: 300, Customers: 40, Orders: 60}
}
