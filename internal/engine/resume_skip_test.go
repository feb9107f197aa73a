package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// A resumed run does not read again the entities the interrupted run had
// finished, and each entity reports the calls and mode of its last pass.
func TestResumeSkipsEntitiesTheInterruptedRunFinished(t *testing.T) {
	const C, P = model.KindCustomer, model.KindProduct
	w := newWorld(t, C, P)
	w.seed(C, 15, t0.Add(-2*time.Hour))
	w.seed(P, 100, t0.Add(-2*time.Hour))
	runStart := w.clock.Now()
	ctx, kill := context.WithCancel(context.Background())
	w.erp.After = func(req connectors.PageRequest) {
		if req.Entity == P && req.Page == 4 {
			kill()
		}
	}
	if _, err := w.run(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the cancellation", err)
	}
	cs := stateOf(w.saved, C)
	if cs.LastCompleted.IsZero() || cs.LastRunCalls != 2 || cs.LastRunIncremental {
		t.Fatalf("customers after the interrupted run: %+v, want completed with 2 calls, full", cs)
	}
	w.erp.ResetRequests()
	w.erp.After = nil
	res, err := w.run(context.Background(), func(r *Run) { r.SkipCompletedSince = runStart })
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range w.erp.Requests() {
		if req.Entity != P {
			t.Errorf("the resumed run read %s again: %+v", req.Entity, req)
		}
	}
	if ps := stateOf(res.State, P); ps.LastRunIncremental || ps.LastRunCalls == 0 || ps.Resume != nil {
		t.Errorf("products after the resumed run: %+v", ps)
	}
	w.assertCRMMatchesERP(P)

	// Without the skip (a normal next run) every entity is read, incrementally.
	w.erp.ResetRequests()
	res, err = w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []model.Kind{C, P} {
		if s := stateOf(res.State, k); !s.LastRunIncremental || s.LastRunCalls != 1 {
			t.Errorf("%s after an incremental run: %+v, want incremental with 1 call", k, s)
		}
	}
}
