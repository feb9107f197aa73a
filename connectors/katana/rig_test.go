package katana

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// rig is a connector wired to a simulator on one fake clock: the
// client's rate-limit waits advance the clock the simulator meters with, so
// the vendor's real limits are enforced without real waiting.
type rig struct {
	t     *testing.T
	sim   *sim.Server
	srv   *httptest.Server
	clock *httpapi.FakeClock
	conn  connectors.Connector
	sink  *memory.Sink
	state []engine.EntityState
}

var testStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newRig(t *testing.T, ds simkit.Options, wrap func(http.Handler) http.Handler) *rig {
	t.Helper()
	h := &rig{t: t, clock: httpapi.NewFakeClock(testStart), sink: memory.New()}
	h.sim = sim.New(sim.Options{Dataset: ds, Now: h.clock.Now})
	var handler http.Handler = h.sim
	if wrap != nil {
		handler = wrap(handler)
	}
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	h.conn = h.connector(t, h.sim.Credentials())
	return h
}

func (h *rig) connector(t *testing.T, creds map[string]string) connectors.Connector {
	t.Helper()
	data := map[string][]byte{}
	for k, v := range creds {
		data[k] = []byte(v)
	}
	c, err := NewWithOptions(context.Background(), connectors.Config{
		Type: Type, CompanyID: "acme", BaseURL: h.srv.URL + sim.BasePath, Credentials: data,
		HTTPClient: h.srv.Client(), Log: testr.New(t),
	}, Options{Clock: h.clock, Registry: httpapi.NewRegistry(nil)})
	if err != nil {
		t.Fatalf("building the connector: %v", err)
	}
	return c
}

// run executes one engine run and keeps the state it returns.
func (h *rig) run(ctx context.Context) (engine.Result, error) {
	res, err := engine.Execute(ctx, engine.Run{Connector: h.conn, Sink: h.sink, State: h.state, Now: h.clock.Now, Log: testr.New(h.t)})
	h.state = res.State
	return res, err
}

// counts returns the sink's records per kind.
func (h *rig) counts() map[model.Kind]int {
	out := map[model.Kind]int{}
	for _, r := range h.sink.Records() {
		out[r.Kind]++
	}
	return out
}

func (h *rig) get(kind model.Kind, id string) (model.Record, bool) {
	return h.sink.Get(model.Key{Company: "acme", Vendor: Type, Kind: kind, VendorID: id})
}

func smallDataset() simkit.Options {
	return simkit.Options{Seed: 42, Products: 520, Customers: 40, Orders: 60}
}
