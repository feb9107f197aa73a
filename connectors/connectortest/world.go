package connectortest

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// Start is the fake clock's reading when a scenario begins: well after every
// record of a dataset built with the default Options.Now, so that changes
// made during a scenario are newer than anything already there.
var Start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// world is one scenario's simulator, clock, CRM and persisted sync state.
type world struct {
	t      testing.TB
	vendor string
	env    *Env
	clock  *httpapi.FakeClock
	// store is the quota store every restarted manager shares.
	store *httpapi.MemoryQuotaStore
	reg   *httpapi.Registry
	conn  connectors.Connector
	sink  *memory.Sink
	state []engine.EntityState
	log   logr.Logger
	// maxPages bounds the pages of one run (see guard).
	maxPages int
}

// newWorld starts h's simulator over ds on a fresh fake clock and builds a
// connector with a fresh registry.
func newWorld(t testing.TB, h Harness, ds simkit.Options) *world {
	t.Helper()
	w := &world{t: t, vendor: h.Vendor(), clock: httpapi.NewFakeClock(Start), store: httpapi.NewMemoryQuotaStore(), sink: memory.New(), log: testLogger(t)}
	w.env = h.Start(t, ds, w.clock)
	if w.env == nil || w.env.Base == nil || w.env.Data == nil || w.env.Connect == nil || w.env.Expected == nil {
		t.Fatalf("%s harness: Start returned an Env without Base, Data, Connect or Expected", w.vendor)
	}
	w.restart()
	return w
}

func testLogger(t testing.TB) logr.Logger {
	if tt, ok := t.(*testing.T); ok {
		return testr.NewWithOptions(tt, testr.Options{Verbosity: 0})
	}
	return logr.Discard()
}

// restart is a restarted manager: a new limiter registry over the shared
// quota store, and a new connector.
func (w *world) restart() {
	w.t.Helper()
	w.reg = httpapi.NewRegistry(w.store)
	w.conn = w.env.Connect(w.t, w.reg)
	if w.conn == nil {
		w.t.Fatalf("%s harness: Connect returned no connector", w.vendor)
	}
}

// requests is the number of requests the simulator has answered so far.
func (w *world) requests() int64 { return w.env.Base.Stats().Requests.Load() }

// exec runs the engine once with r's settings, filling in the world's
// connector, sink, state and clock where r leaves them empty, and keeps the
// state the run returns.
func (w *world) exec(ctx context.Context, r engine.Run) (engine.Result, error) {
	if r.Connector == nil {
		r.Connector = w.conn
	}
	if r.Sink == nil {
		r.Sink = w.sink
	}
	if r.State == nil {
		r.State = w.state
	}
	if r.Now == nil {
		r.Now = w.clock.Now
	}
	if r.Log.GetSink() == nil {
		r.Log = w.log
	}
	r.Connector = &hooked{inner: r.Connector, before: w.guard()}
	res, err := engine.Execute(ctx, r)
	w.state = res.State
	return res, err
}

// guard bounds the pages one run may read, so that a connector or engine
// that never reaches the end of a list (a cursor ignored, a page number
// that does not advance) fails the scenario instead of hanging it.
func (w *world) guard() func(context.Context, connectors.PageRequest) error {
	if w.maxPages == 0 {
		ps := max(1, normCaps(w.env.Caps).PageSize)
		w.maxPages = 200 + 20*len(w.env.Expected())/ps
	}
	n := 0
	return func(_ context.Context, req connectors.PageRequest) error {
		if n++; n > w.maxPages {
			return connectors.Errorf(connectors.KindInvalidResponse, "connectortest: the run read more than %d pages (now %s page %d): a list that never ends", w.maxPages, req.Entity, req.Page)
		}
		return nil
	}
}

// mustRun runs the engine and fails the test on error.
func (w *world) mustRun(what string, r engine.Run) engine.Result {
	w.t.Helper()
	res, err := w.exec(context.Background(), r)
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	return res
}

// requireEqual fails the test unless the CRM equals the ERP now.
func (w *world) requireEqual(what string) {
	w.t.Helper()
	RequireEqual(w.t, w.vendor, w.sink, w.env, what)
}

// diff returns how the CRM differs from the ERP now.
func (w *world) diff() Diff { return Compare(w.sink, w.vendor, w.env.Expected()) }

// entityState returns the persisted state of an entity.
func (w *world) entityState(k model.Kind) (engine.EntityState, bool) {
	for _, s := range w.state {
		if s.Name == k {
			return s, true
		}
	}
	return engine.EntityState{}, false
}

// ---- connector decorators ----

// pageLog records the pages a connector served, per entity.
type pageLog struct {
	mu    sync.Mutex
	pages map[model.Kind]int
	calls map[model.Kind]int
	order []model.Kind
	// maxCalls is the most HTTP requests one page cost.
	maxCalls int
}

func newPageLog() *pageLog {
	return &pageLog{pages: map[model.Kind]int{}, calls: map[model.Kind]int{}}
}

func (l *pageLog) add(e model.Kind, p *connectors.Page) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pages[e] == 0 {
		l.order = append(l.order, e)
	}
	l.pages[e]++
	if p != nil {
		l.calls[e] += p.Calls
		l.maxCalls = max(l.maxCalls, p.Calls)
	}
}

// total is the number of pages served.
func (l *pageLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.pages {
		n += v
	}
	return n
}

// entities returns the entities that were read, sorted.
func (l *pageLog) entities() []model.Kind {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]model.Kind(nil), l.order...)
	sort.Slice(out, func(i, j int) bool { return out[i].Order() < out[j].Order() })
	return out
}

// hooked is a connector decorator: before runs before every ListPage (an
// error from it is returned instead of reading), after runs after every
// successful one, and every served page is logged.
type hooked struct {
	inner  connectors.Connector
	log    *pageLog
	before func(ctx context.Context, req connectors.PageRequest) error
	after  func(ctx context.Context, req connectors.PageRequest, p *connectors.Page)
	// wrapCtx, when set, gives the context ListPage is called with.
	wrapCtx func(ctx context.Context) context.Context
}

func (c *hooked) Entities() []connectors.EntityInfo { return c.inner.Entities() }

func (c *hooked) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if c.before != nil {
		if err := c.before(ctx, req); err != nil {
			return nil, err
		}
	}
	if c.wrapCtx != nil {
		ctx = c.wrapCtx(ctx)
	}
	p, err := c.inner.ListPage(ctx, req)
	if err != nil {
		return p, err
	}
	if c.log != nil {
		c.log.add(req.Entity, p)
	}
	if c.after != nil && p != nil {
		c.after(ctx, req, p)
	}
	return p, nil
}

// cancellingSink cancels a run's context inside its n-th Write, which then
// stores nothing (a sink's batch is atomic): a crash in the middle of a
// batch.
type cancellingSink struct {
	*memory.Sink
	mu     sync.Mutex
	writes int
	at     int
	cancel context.CancelFunc
	fired  bool
}

func (s *cancellingSink) Write(ctx context.Context, batch []model.Record) (sinks.WriteResult, error) {
	s.mu.Lock()
	s.writes++
	fire := !s.fired && s.writes == s.at
	if fire {
		s.fired = true
	}
	s.mu.Unlock()
	if !fire {
		return s.Sink.Write(ctx, batch)
	}
	s.cancel()
	return sinks.WriteResult{}, ctx.Err()
}
