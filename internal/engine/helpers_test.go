package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine/enginetest"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// world is an ERP, a CRM and a clock for one test.
type world struct {
	t     *testing.T
	clock *enginetest.Clock
	erp   *enginetest.Fake
	crm   *recSink
	saved []EntityState // what the controller would hold after checkpoints
	cps   []checkpointCall
}

type checkpointCall struct {
	state    []EntityState
	progress Progress
	at       time.Time
	// crm is the set of vendor ids in the CRM at the checkpoint.
	crm map[string]bool
}

func newWorld(t *testing.T, kinds ...model.Kind) *world {
	clock := enginetest.NewClock(t0)
	w := &world{t: t, clock: clock, crm: &recSink{Sink: memory.New()}}
	w.erp = &enginetest.Fake{Vendor: "fake", Company: "ACME", PageSize: 10, Clock: clock, Latency: time.Second}
	for _, k := range kinds {
		w.erp.EntityList = append(w.erp.EntityList, connectors.EntityInfo{Name: k, Incremental: true})
	}
	return w
}

// seed puts n records of a kind, ids k000.., modified at.
func (w *world) seed(kind model.Kind, n int, at time.Time) {
	for i := range n {
		w.erp.PutAt(kind, id(kind, i), at)
	}
}

func id(kind model.Kind, i int) string { return fmt.Sprintf("%s-%03d", kind[:3], i) }

// run executes a run over the world with the controller's habits: it keeps
// the state from every checkpoint in w.saved.
func (w *world) run(ctx context.Context, mod func(*Run)) (Result, error) {
	r := Run{
		Connector: w.erp,
		Sink:      w.crm,
		State:     w.saved,
		Now:       w.clock.Now,
		Log:       testr.New(w.t),
		Checkpoint: func(_ context.Context, st []EntityState, p Progress) error {
			w.saved = st
			w.cps = append(w.cps, checkpointCall{state: st, progress: p, at: w.clock.Now(), crm: w.crm.ids()})
			return nil
		},
	}
	if mod != nil {
		mod(&r)
	}
	return Execute(ctx, r)
}

// assertCRMMatchesERP checks that the CRM holds every record of the ERP in
// its newest version.
func (w *world) assertCRMMatchesERP(kinds ...model.Kind) {
	w.t.Helper()
	for _, k := range kinds {
		for _, it := range w.erp.Items(k) {
			rec, ok := w.crm.Get(model.Key{Company: "ACME", Vendor: "fake", Kind: k, VendorID: it.ID})
			if !ok {
				w.t.Errorf("%s %s is missing from the CRM", k, it.ID)
				continue
			}
			if got, want := rec.Data.(*model.Product).Name, fmt.Sprintf("v%d", it.Version); got != want {
				w.t.Errorf("%s %s: CRM holds %s, ERP has %s", k, it.ID, got, want)
			}
		}
	}
}

func stateOf(st []EntityState, k model.Kind) EntityState {
	for _, s := range st {
		if s.Name == k {
			return s
		}
	}
	return EntityState{Name: k}
}

// recSink records the size of every batch and can fail on demand.
type recSink struct {
	*memory.Sink
	mu      sync.Mutex
	batches []int
	// failAt fails the write with this 1-based index.
	failAt int
	calls  int
}

func (s *recSink) Write(ctx context.Context, b []model.Record) (sinks.WriteResult, error) {
	s.mu.Lock()
	s.calls++
	fail := s.calls == s.failAt
	s.batches = append(s.batches, len(b))
	s.mu.Unlock()
	if fail {
		return sinks.WriteResult{}, fmt.Errorf("connection to CRM reset")
	}
	return s.Sink.Write(ctx, b)
}

func (s *recSink) ids() map[string]bool {
	out := map[string]bool{}
	for _, r := range s.Records() {
		out[r.VendorID] = true
	}
	return out
}
