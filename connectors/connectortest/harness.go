// Package connectortest is the one scenario suite every connector must pass,
// the way sinks/sinktest is the one suite for sinks. A vendor supplies a
// small Harness (how to start its simulator over a dataset and build its
// connector, and what the CRM must then hold); Run plays every scenario
// against it through the real engine and a memory sink: full import and
// incremental reads, edits that move records during a pass, unstable order,
// timestamp ties, clock skew, crashes at every page boundary, runs cut by
// timeouts, records the mapping does not know, throttling storms, server
// errors, malformed pages, a 401 and cancellation. Torture is the long,
// measured version for `make bench`.
//
// Each vendor's package calls it from one test:
//
//	func TestScenarios(t *testing.T) { connectortest.Run(t, harness{}) }
package connectortest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Harness is what a vendor gives the suite.
type Harness interface {
	// Vendor is the connector type (the registry key).
	Vendor() string
	// Start starts the vendor's simulator over a new dataset built from ds,
	// metering and stamping on clock (the same fake clock the connector's
	// rate-limit waits advance), serves it on an httptest server closed by
	// t's cleanup, and returns the environment.
	Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *Env
}

// Env is one running simulator and the ways to reach it.
type Env struct {
	// Base is the simulator's embedded simkit.Base: faults, statistics,
	// clock skew and the unstable-order knob.
	Base *simkit.Base
	// Data is the simulator's dataset; scenarios change it while runs page.
	Data *simkit.Dataset
	// Connect builds a connector for the simulator's working credentials,
	// company "acme", with the given limiter registry (a fresh registry is
	// a restarted manager; give it the same QuotaStore to keep what the
	// previous process persisted). It fails the test on error.
	Connect func(t testing.TB, reg *httpapi.Registry) connectors.Connector
	// ConnectWith is Connect with the Secret data changed by edit (a wrong
	// key, for the 401 scenario).
	ConnectWith func(t testing.TB, reg *httpapi.Registry, edit func(creds map[string][]byte)) connectors.Connector
	// Expected returns what a full import must put in the CRM now: every
	// record of every kind the connector emits, with a check of the fields
	// that edits change (so that a stale version is told from a fresh one).
	Expected func() []Want
	// SetAside makes the simulator serve, from now on, one document that
	// the mapping cannot know although the vendor's documents allow it (an
	// enum value beyond those the connector maps, a reference to a parent
	// created after the parents were read), and returns the kind and vendor
	// id it will be set aside under. Nil where the vendor's documents allow
	// no such thing; the closing docs say why.
	SetAside func() (model.Kind, string)
	// Caps says what the vendor does, where scenarios differ.
	Caps Caps
	// Webhooks is set for vendors that deliver webhooks (nil: poll only).
	Webhooks *WebhookEnv
}

// WebhookEnv is how the suite reaches a vendor's webhooks.
type WebhookEnv struct {
	// Codec is the vendor's webhook codec (the one connectors/all
	// registers).
	Codec connectors.WebhookCodec
	// Subscribe makes the simulator deliver the vendor's signed event for
	// every change of the dataset to url, with the vendor's payload shape
	// and retry rules, as the subscription of company "acme" would: through
	// the connector's WebhookRegistrar where the vendor has one (built
	// with reg), as the vendor's portal would otherwise. It returns the
	// keys the receiver verifies with (the credentials Secret's data with
	// the webhook Secret's merged over it) and the subscription's
	// deliverer (its counters, and the vendor disabling it).
	Subscribe func(t testing.TB, reg *httpapi.Registry, url string) (keys map[string][]byte, d *simkit.Deliverer)
	// Tenant is the tenant id the events carry where the vendor routes by
	// tenant (connectors.RouteByTenant), else "".
	Tenant string
	// Kinds maps the dataset kinds (simkit.AdminProducts…) whose changes
	// the vendor announces to the entity stream its events name.
	Kinds map[string]model.Kind
}

// Want is one record the CRM must hold.
type Want struct {
	Kind     model.Kind
	VendorID string
	Deleted  bool
	// Check, when set, reports how the stored record differs from the
	// vendor's current version (nil: it is current).
	Check func(r *model.Record) error
}

// Caps describes a vendor where the scenarios must know it.
type Caps struct {
	// UnstableOrder is true where the vendor is reported to return list
	// rows in no stable order (Cin7 Core); the simulator then does it by
	// default and the scenario checks the documented behaviour, not a
	// fault.
	UnstableOrder bool
	// ModifiedPrecision is the precision of the vendor's modified times
	// and modified-since filter (time.Second or time.Millisecond).
	ModifiedPrecision time.Duration
	// MinuteLimit is the vendor's per-minute call limit per credential (0:
	// none), which a restarted manager must not burst past.
	MinuteLimit int
	// PageSize is the connector's page size for products, so that
	// scenarios size datasets to span several pages.
	PageSize int
	// Throttle is the status the vendor refuses with when over a limit
	// (429, or 503 for Cin7 Core's second limit); 0 means 429.
	Throttle int
	// ChildrenApart lists the child kinds the vendor serves apart from
	// their parent's document (Cin7 Omni's stock rows come from their own
	// list), so that a sync reading the parent cannot see one removed: a
	// reconciliation must. The connector's docs say why.
	ChildrenApart []model.Kind
	// ChildrenFullReadOnly lists the child kinds whose removal neither the
	// parent's version nor its id listing shows (Cin7 Core's custom prices
	// hang on a customer whose modified time the removal does not move):
	// only a full read finds them gone. The connector's docs say so.
	ChildrenFullReadOnly []model.Kind
}

// Serve serves a simulator on an httptest server that t's cleanup closes.
func Serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// Build makes a harness's connector from Secret data and a limiter registry.
type Build func(t testing.TB, reg *httpapi.Registry, creds map[string][]byte) (connectors.Connector, error)

// ConnectBy fills env.Connect and env.ConnectWith from the simulator's
// working credentials (creds is called anew for every connector, as a
// restarted manager reads the Secret again) and build.
func (e *Env) ConnectBy(creds func() map[string]string, build Build) *Env {
	with := func(t testing.TB, reg *httpapi.Registry, edit func(map[string][]byte)) connectors.Connector {
		t.Helper()
		data := map[string][]byte{}
		for k, v := range creds() {
			data[k] = []byte(v)
		}
		if edit != nil {
			edit(data)
		}
		c, err := build(t, reg, data)
		if err != nil {
			t.Fatalf("building the connector: %v", err)
		}
		return c
	}
	e.Connect = func(t testing.TB, reg *httpapi.Registry) connectors.Connector {
		t.Helper()
		return with(t, reg, nil)
	}
	e.ConnectWith = with
	return e
}

// Log returns a logger for t: testr for a *testing.T, a discarding one for
// a benchmark.
func Log(t testing.TB) logr.Logger {
	if tt, ok := t.(*testing.T); ok {
		return testr.New(tt)
	}
	return logr.Discard()
}

// Seen is one request a Recorder saw.
type Seen struct {
	URL    *url.URL
	Header http.Header
}

// Query is the request's path and raw query, "path?query".
func (s Seen) Query() string { return s.URL.Path + "?" + s.URL.RawQuery }

// Recorder keeps every request its server saw, for tests of what a
// connector sends.
type Recorder struct {
	mu   sync.Mutex
	seen []Seen
}

// Record serves h on an httptest server (closed by t's cleanup) that records
// every request before h answers it.
func Record(t testing.TB, h http.Handler) (*httptest.Server, *Recorder) {
	t.Helper()
	rec := &Recorder{}
	srv := Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := *r.URL
		rec.mu.Lock()
		rec.seen = append(rec.seen, Seen{URL: &u, Header: r.Header.Clone()})
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	return srv, rec
}

// Requests returns the requests seen so far, in order.
func (r *Recorder) Requests() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// Queries returns the "path?query" of every request seen so far.
func (r *Recorder) Queries() []string {
	var out []string
	for _, s := range r.Requests() {
		out = append(out, s.Query())
	}
	return out
}

// SecretData turns a simulator's credentials, with overrides applied, into
// the data of a Secret.
func SecretData(creds, overrides map[string]string) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range creds {
		out[k] = []byte(v)
	}
	for k, v := range overrides {
		out[k] = []byte(v)
	}
	return out
}
