package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine/enginetest"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// Rule 3: an edit during a pass moves a record of an already-read page to
// the end of a list ordered by modified time; every later record shifts up
// a place and the first record of the next page is never served. The total
// does not change, but the distinct count falls short: the pass is repeated.
func TestEditMovesARecordPastTheCursor(t *testing.T) {
	w := newWorld(t)
	w.erp.ByModified = true
	for i := range 30 {
		w.erp.PutAt(P, id(P, i), t0.Add(-time.Hour+time.Duration(i)*time.Second))
	}
	edited := false
	w.erp.After = func(req connectors.PageRequest) {
		if req.Page == 1 && !edited {
			edited = true
			w.erp.Put(P, id(P, 3)) // read on page 1, moves to the end
		}
	}
	res, err := w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.assertCRMMatchesERP(P)
	if st := stateOf(res.State, P); st.Incomplete != "" || st.Watermark.IsZero() {
		t.Errorf("state %+v: want complete with a watermark", st)
	}
	passes := 0
	for _, r := range w.erp.Requests() {
		if r.Page == 1 {
			passes++
		}
	}
	if passes != 2 {
		t.Errorf("%d passes, want the short one and a repeat", passes)
	}
}

// Rule 3: a vendor that serves every request in a fresh order: the distinct
// ids of the repeats add up until the pass has read the vendor's total.
func TestUnstableOrderConverges(t *testing.T) {
	w := newWorld(t)
	w.erp.Shuffle = true
	w.seed(P, 95, t0.Add(-time.Hour))
	res, err := w.run(context.Background(), func(r *Run) { r.MaxPassRepeats = 20 })
	if err != nil {
		t.Fatal(err)
	}
	w.assertCRMMatchesERP(P)
	if st := stateOf(res.State, P); st.Incomplete != "" {
		t.Errorf("incomplete: %s", st.Incomplete)
	}
}

// Rule 3: a pass still short after every repeat does not advance the
// watermark, says why, and the next run reads the same window again.
func TestShortPassKeepsItsWatermark(t *testing.T) {
	w := newWorld(t)
	w.erp.Shuffle = true
	w.seed(P, 95, t0.Add(-time.Hour))
	res, err := w.run(context.Background(), func(r *Run) { r.MaxPassRepeats = -1 })
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(res.State, P)
	if st.Incomplete == "" || !st.Watermark.IsZero() || st.Resume != nil {
		t.Fatalf("state after a short pass %+v: want Incomplete, no watermark, no resume point", st)
	}
	if len(res.Incomplete) != 1 || res.Incomplete[0] != P {
		t.Errorf("Result.Incomplete %v", res.Incomplete)
	}
	if !strings.Contains(st.Incomplete, "of the 95") {
		t.Errorf("Incomplete %q does not give the figures", st.Incomplete)
	}
	// With a stable vendor the next run completes and sets the watermark.
	w.erp.Shuffle = false
	w.erp.ResetRequests()
	res, err = w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := stateOf(res.State, P); st.Incomplete != "" || st.Watermark.IsZero() {
		t.Errorf("state after a complete pass %+v", st)
	}
	if r := w.erp.Requests()[0]; !r.Since.IsZero() {
		t.Errorf("the run after a short pass read from %v, want the same (full) window", r.Since)
	}
	w.assertCRMMatchesERP(P)
}

// Rule 3: the repeat limit counts the pass, not the run: a pass repeated in
// a run cut short resumes with its repeats counted.
func TestRepeatsCountThePassAcrossRuns(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 30, t0.Add(-time.Hour))
	ctx, kill := context.WithCancel(context.Background())
	pageOnes := 0
	w.erp.After = func(req connectors.PageRequest) {
		if req.Page == 2 {
			w.erp.Delete(P, firstRow(w)) // shifts every pass
		}
		if req.Page == 1 {
			if pageOnes++; pageOnes == 3 {
				kill() // in the third pass (the second repeat)
			}
		}
	}
	if _, err := w.run(ctx, func(r *Run) { r.CheckpointEvery = time.Nanosecond }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the cancellation", err)
	}
	cp := stateOf(w.saved, P).Resume
	if cp == nil || cp.Repeats != 2 {
		t.Fatalf("checkpoint %+v: want the pass's 2 repeats recorded", cp)
	}
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	passes := 0
	for _, r := range w.erp.Requests() {
		if r.Page == 1 {
			passes++
		}
	}
	// Three passes in the first run; the resumed third pass and one more
	// repeat in the second: 1 + DefaultMaxPassRepeats passes in all, not
	// that many more in the new run.
	if passes != 1+DefaultMaxPassRepeats {
		t.Errorf("%d passes in both runs, want %d", passes, 1+DefaultMaxPassRepeats)
	}
}

// Keyset readers: the engine passes each page's Next back, checkpoints it,
// and a resumed pass continues from it; edits cannot shift such a pass.
func TestKeysetCursorIsFollowedAndResumed(t *testing.T) {
	w := newWorld(t)
	w.erp.Keyset = true
	for i := range 50 {
		w.erp.PutAt(P, id(P, i), t0.Add(-time.Hour+time.Duration(i)*time.Second))
	}
	ctx, kill := context.WithCancel(context.Background())
	w.erp.After = func(req connectors.PageRequest) {
		if req.Page == 1 {
			w.erp.Put(P, id(P, 0)) // moves to the end: read again there
		}
		if req.Page == 3 {
			kill()
		}
	}
	if _, err := w.run(ctx, func(r *Run) { r.CheckpointEvery = time.Nanosecond }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the cancellation", err)
	}
	cp := stateOf(w.saved, P).Resume
	if cp == nil || cp.Page != 3 || cp.Cursor == "" {
		t.Fatalf("checkpoint %+v: want page 3 with its cursor", cp)
	}
	w.erp.ResetRequests()
	w.erp.After = nil
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := w.erp.Requests()
	if reqs[0].Page != 4 || reqs[0].Cursor != cp.Cursor {
		t.Errorf("resumed with %+v, want page 4 from cursor %q", reqs[0], cp.Cursor)
	}
	w.assertCRMMatchesERP(P)
}

// Rule 6: before the HTTP layer waits on a limit, the pages read so far are
// written and checkpointed: a crash during the wait loses no page.
func TestCheckpointBeforeALimiterWait(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 100, t0.Add(-time.Hour))
	ctx, kill := context.WithCancel(context.Background())
	w.erp.WaitBefore = func(req connectors.PageRequest) time.Duration {
		if req.Page == 7 {
			return 57 * time.Second // the minute's allowance is spent
		}
		return 0
	}
	w.erp.Before = func(req connectors.PageRequest) error {
		if req.Page == 7 {
			kill() // the process dies while it waits
			return context.Canceled
		}
		return nil
	}
	// CheckpointEvery is long: only the wait can have saved pages 1-6.
	if _, err := w.run(ctx, func(r *Run) { r.CheckpointEvery = time.Hour }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the cancellation", err)
	}
	cp := stateOf(w.saved, P).Resume
	if cp == nil || cp.Page != 6 {
		t.Fatalf("checkpoint before the wait %+v, want page 6", cp)
	}
	ids := w.crm.ids()
	for i := range 60 {
		if !ids[id(P, i)] {
			t.Fatalf("%s was checkpointed as written but is not in the CRM", id(P, i))
		}
	}
}

// Rule 7: documents the mapping cannot know are set aside with their
// reason, never fail the page, and hold the next window open at their
// modified time until a later pass maps them.
func TestSetAsideDocuments(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 30, t0.Add(-time.Hour))
	odd := t0.Add(-50 * time.Minute)
	w.erp.PutAt(P, "pro-odd", odd)
	mapsNow := false
	w.erp.SetAside = func(_ connectors.PageRequest, it enginetest.Item) bool { return it.ID == "pro-odd" && !mapsNow }
	res, err := w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(res.State, P)
	if st.SetAside != 1 || len(st.SetAsideIDs) != 1 || st.SetAsideIDs[0] != "pro-odd" || !st.SetAsideSince.Equal(odd) {
		t.Fatalf("state %+v: want one set-aside document since %v", st, odd)
	}
	if res.SetAside != 1 {
		t.Errorf("Result.SetAside %d", res.SetAside)
	}
	if !st.Watermark.Before(odd) {
		t.Errorf("watermark %v does not hold the window open at %v", st.Watermark, odd)
	}
	items := w.crm.SetAsideItems()
	if len(items) != 1 || items[0].Reason == "" || len(items[0].Raw) == 0 {
		t.Fatalf("set-aside in the sink: %+v", items)
	}
	if n := len(w.crm.Records()); n != 30 {
		t.Errorf("%d records in the CRM, want the 30 others", n)
	}
	// The mapping learns the value: the next incremental pass reads the
	// document again (its window is held open), writes it and clears it.
	mapsNow = true
	res, err = w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.crm.Get(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: "pro-odd"}); !ok {
		t.Error("the set-aside document did not arrive once it mapped")
	}
	if items := w.crm.SetAsideItems(); len(items) != 0 {
		t.Errorf("set-aside left in the sink after it mapped: %+v", items)
	}
	if st := stateOf(res.State, P); st.SetAside != 0 || !st.SetAsideSince.IsZero() || !st.Watermark.After(odd) {
		t.Errorf("state after it mapped %+v", st)
	}
}

// Modified times far in the future (a hostile or broken server) are clamped
// to our clock plus the allowed skew, so that a later real version still
// wins in the sinks; a vendor clock a few minutes ahead is left alone.
func TestFutureModifiedTimesAreClamped(t *testing.T) {
	w := newWorld(t)
	w.erp.PutAt(P, "pro-9999", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	w.erp.PutAt(P, "pro-skewed", t0.Add(7*time.Minute))
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.crm.Get(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: "pro-9999"})
	if limit := w.clock.Now().Add(DefaultMaxFutureSkew); rec.ModifiedAt.After(limit) {
		t.Errorf("a record stamped in year 9999 was stored at %v, after %v", rec.ModifiedAt, limit)
	}
	if rec, _ := w.crm.Get(model.Key{Company: "ACME", Vendor: "fake", Kind: P, VendorID: "pro-skewed"}); !rec.ModifiedAt.Equal(t0.Add(7 * time.Minute)) {
		t.Errorf("a vendor clock 7 minutes ahead was clamped to %v", rec.ModifiedAt)
	}
	// The real next version (an hour later) replaces the clamped one.
	w.clock.Advance(time.Hour)
	w.erp.Put(P, "pro-9999")
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	w.assertCRMMatchesERP(P)
}

// A crash at every page boundary, each resumed from the state the killed
// run returned: the distinct count saved with the resume point covers
// exactly the pages written, so no resumed pass looks short and nothing is
// read twice beyond the page each crash cuts.
func TestCrashAtEveryPageNeedsNoRepeat(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 100, t0.Add(-time.Hour)) // 10 pages
	var state []EntityState
	for k := 1; k <= 10; k++ {
		ctx, kill := context.WithCancel(context.Background())
		served := 0
		w.erp.After = func(connectors.PageRequest) {
			if served++; served == 2 {
				kill() // after one page of this run is served, during the next
			}
		}
		res, err := w.run(ctx, func(r *Run) { r.State = state; r.CheckpointEvery = time.Hour })
		state = res.State
		kill()
		if err == nil {
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if cp := stateOf(state, P).Resume; cp != nil && cp.Distinct != int64(cp.Page*10) {
			t.Fatalf("resume point %+v: distinct %d, want the %d documents of its pages", cp, cp.Distinct, cp.Page*10)
		}
	}
	st := stateOf(state, P)
	if st.Incomplete != "" || st.Watermark.IsZero() {
		t.Fatalf("state %+v: want complete", st)
	}
	pageOnes := 0
	for _, r := range w.erp.Requests() {
		if r.Page == 1 {
			pageOnes++
		}
	}
	if pageOnes != 1 {
		t.Errorf("page 1 read %d times: a resumed pass was repeated", pageOnes)
	}
	w.assertCRMMatchesERP(P)
}

// A cursor is checkpointed into status, so one longer than MaxCursorLen
// fails the page as an invalid response instead of the status write.
func TestOverlongCursorIsRefused(t *testing.T) {
	long := strings.Repeat("x", MaxCursorLen+1)
	_, err := Execute(context.Background(), Run{Connector: cursorConn{next: long}, Sink: memory.New()})
	if connectors.KindOf(err) != connectors.KindInvalidResponse {
		t.Fatalf("err %v, want an invalid response", err)
	}
}

type cursorConn struct{ next string }

func (cursorConn) Entities() []connectors.EntityInfo {
	return []connectors.EntityInfo{{Name: model.KindProduct, Incremental: true}}
}

func (c cursorConn) ListPage(context.Context, connectors.PageRequest) (*connectors.Page, error) {
	return &connectors.Page{More: true, Total: -1, Calls: 1, Next: c.next,
		Records: []model.Record{{Company: "c", Vendor: "v", Kind: model.KindProduct, VendorID: "p1", Data: &model.Product{}}}}, nil
}

// A quiet sync paced by a vendor's per-second limit (a wait before every
// call) writes no checkpoint: its short waits are no longer than a page's
// work; a long wait still saves (TestCheckpointBeforeALimiterWait).
func TestShortWaitsOfAQuietSyncSaveNothing(t *testing.T) {
	const C, S = model.KindCustomer, model.KindSupplier
	w := newWorld(t, P, C, S)
	for _, k := range []model.Kind{P, C, S} {
		w.seed(k, 5, t0.Add(-time.Hour))
	}
	if _, err := w.run(context.Background(), nil); err != nil { // the import
		t.Fatal(err)
	}
	w.erp.Latency = 0
	w.erp.WaitBefore = func(connectors.PageRequest) time.Duration { return 400 * time.Millisecond }
	w.clock.Advance(time.Minute)
	w.cps = nil
	res, err := w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 3 || res.Upserted != 0 {
		t.Fatalf("calls %d, upserted %d: want a quiet sync of three calls", res.Calls, res.Upserted)
	}
	if len(w.cps) != 0 {
		t.Fatalf("%d checkpoints in a quiet sync whose waits were 400ms: want none", len(w.cps))
	}
}
