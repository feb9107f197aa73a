package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

const P = model.KindProduct

// Rule 1: the next window starts where the pass started reading, on the
// vendor's clock where it has one, minus the overlap; never at the end.
func TestNoLostUpdates(t *testing.T) {
	tests := []struct {
		name string
		// world setup
		skew         time.Duration
		noServerTime bool
		latency      time.Duration
		overlap      time.Duration
		// change is when (relative to the vendor clock at the change) the
		// change is stamped; it happens after page 1 of run 1 was read.
		stampOffset   time.Duration
		wantWatermark func(first time.Time) time.Time
	}{
		{
			name: "vendor clock behind ours: the Date header wins", skew: -time.Hour, latency: time.Minute,
			wantWatermark: func(first time.Time) time.Time { return first.Add(-time.Hour - DefaultOverlap) },
		},
		{
			name: "vendor clock ahead of ours", skew: 30 * time.Minute, latency: time.Minute,
			wantWatermark: func(first time.Time) time.Time { return first.Add(30*time.Minute - DefaultOverlap) },
		},
		{
			// No Date header and no overlap: a change made while the first
			// response was on its way is caught only because our clock was
			// read before the request.
			name: "no server time: our clock before the first request", noServerTime: true, latency: 10 * time.Second,
			overlap: -1, stampOffset: -5 * time.Second,
			wantWatermark: func(first time.Time) time.Time { return first },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.erp.Skew, w.erp.NoServerTime, w.erp.Latency = tc.skew, tc.noServerTime, tc.latency
			w.seed(P, 50, t0.Add(-24*time.Hour))
			start := w.clock.Now()
			changed := map[int]bool{}
			w.erp.After = func(req connectors.PageRequest) {
				// While run 1 pages through, change a record of the page just
				// read, and one of a page already read.
				if req.Since.IsZero() && !changed[req.Page] {
					changed[req.Page] = true
					w.erp.PutAt(P, id(P, (req.Page-1)*10+3), w.erp.VendorNow().Add(tc.stampOffset))
					if req.Page > 1 {
						w.erp.PutAt(P, id(P, 7), w.erp.VendorNow().Add(tc.stampOffset))
					}
				}
			}
			mod := func(r *Run) { r.Overlap = tc.overlap }
			res, err := w.run(context.Background(), mod)
			if err != nil {
				t.Fatal(err)
			}
			wm := stateOf(res.State, P).Watermark
			if want := tc.wantWatermark(start).Truncate(time.Second); !wm.Equal(want) && !(tc.noServerTime && wm.Equal(start)) {
				t.Fatalf("watermark %v, want %v", wm, want)
			}
			w.clock.Advance(time.Hour)
			if _, err := w.run(context.Background(), mod); err != nil {
				t.Fatal(err)
			}
			w.assertCRMMatchesERP(P)
			// The second run read a window, not everything.
			if reqs := w.erp.Requests(); reqs[len(reqs)-1].Since.IsZero() {
				t.Error("the second run was not incremental")
			}
		})
	}
}

// Rule 2: checkpoints hold the last page whose writes succeeded, come at
// most every CheckpointEvery and always at the end of an entity.
func TestCheckpointCadence(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 200, t0.Add(-time.Hour)) // 20 pages of 10, one second each
	res, err := w.run(context.Background(), func(r *Run) { r.CheckpointEvery = 5 * time.Second; r.BatchSize = 25 })
	if err != nil {
		t.Fatal(err)
	}
	if n := len(w.cps); n < 3 || n > 20/5+1 {
		t.Fatalf("%d checkpoints for a 20s pass with CheckpointEvery 5s", n)
	}
	for i, cp := range w.cps {
		if i > 0 && cp.at.Sub(w.cps[i-1].at) < 5*time.Second && i != len(w.cps)-1 {
			t.Errorf("checkpoint %d came %v after the previous one", i, cp.at.Sub(w.cps[i-1].at))
		}
		st := stateOf(cp.state, P)
		if st.Resume == nil {
			continue
		}
		for j := range st.Resume.Page * 10 {
			if !cp.crm[id(P, j)] {
				t.Errorf("checkpoint %d says page %d is written but %s is not in the CRM", i, st.Resume.Page, id(P, j))
			}
		}
		if st.Resume.Records != int64(st.Resume.Page*10) {
			t.Errorf("checkpoint %d: %d records for %d pages", i, st.Resume.Records, st.Resume.Page)
		}
		if p := cp.progress; p.Entity != P || p.Records < st.Resume.Records || p.Calls < int64(st.Resume.Page) {
			t.Errorf("checkpoint %d: progress %+v", i, p)
		}
	}
	last := w.cps[len(w.cps)-1]
	if st := stateOf(last.state, P); st.Resume != nil || st.Watermark.IsZero() {
		t.Errorf("the entity-end checkpoint should hold the new watermark and no resume point: %+v", st)
	}
	if last.progress.Records != 200 || last.progress.Calls != 20 || res.Calls != 20 || res.Upserted != 200 {
		t.Errorf("final progress %+v, result %+v", last.progress, res)
	}
	for _, b := range w.crm.batches {
		if b > 25 {
			t.Errorf("a batch of %d records, more than BatchSize", b)
		}
	}
}

// Rule 2: a run killed mid-entity resumes at the page after the last
// checkpoint, with the same window and start, a first import included.
func TestResumeAfterInterruption(t *testing.T) {
	for _, first := range []bool{true, false} {
		name := map[bool]string{true: "first import", false: "incremental pass"}[first]
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			w.seed(P, 100, t0.Add(-2*time.Hour))
			if !first {
				w.saved = []EntityState{{Name: P, Watermark: t0.Add(-3 * time.Hour)}}
			}
			ctx, kill := context.WithCancel(context.Background())
			w.erp.After = func(req connectors.PageRequest) {
				if req.Page == 6 {
					kill()
				}
			}
			_, err := w.run(ctx, func(r *Run) { r.CheckpointEvery = 2 * time.Second })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want the cancellation", err)
			}
			cp := stateOf(w.saved, P).Resume
			if cp == nil || cp.Page < 2 || cp.Page > 6 {
				t.Fatalf("saved checkpoint %+v, want one at page 2..6", cp)
			}
			wantSince := time.Time{}
			if !first {
				wantSince = t0.Add(-3 * time.Hour)
			}
			startedAt := cp.StartedAt
			w.erp.ResetRequests()
			w.erp.After = nil
			res, err := w.run(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			reqs := w.erp.Requests()
			if reqs[0].Page != cp.Page+1 || !reqs[0].Since.Equal(wantSince) {
				t.Fatalf("resumed with %+v, want page %d since %v", reqs[0], cp.Page+1, wantSince)
			}
			if len(reqs) != 10-cp.Page {
				t.Errorf("the resumed run read %d pages, want %d", len(reqs), 10-cp.Page)
			}
			if wm := stateOf(res.State, P).Watermark; !wm.Equal(startedAt.Add(-DefaultOverlap)) {
				t.Errorf("watermark %v, want the interrupted pass's start %v minus the overlap", wm, startedAt)
			}
			if n := stateOf(res.State, P).LastRunRecords; n != 100 {
				t.Errorf("LastRunRecords %d, want 100 across both runs", n)
			}
			w.assertCRMMatchesERP(P)
		})
	}
}

// Rule 3: a pass whose total changed is repeated with the same watermark.
func TestPagesThatShift(t *testing.T) {
	tests := []struct {
		name      string
		unordered bool
		noTotal   bool
		// change runs after a page of run 1 was read (once per page number
		// unless always).
		change  func(w *world, page int)
		always  bool
		passes  int // passes of run 1 (page-1 requests)
		partial bool
	}{
		{name: "a delete shifts records back", passes: 2, change: func(w *world, page int) {
			if page == 1 {
				w.erp.Delete(P, id(P, 0))
			}
		}},
		{name: "a delete under unordered rows", unordered: true, passes: 2, change: func(w *world, page int) {
			if page == 1 {
				w.erp.Delete(P, firstRow(w))
			}
		}},
		{name: "an insert on a page already read", passes: 2, change: func(w *world, page int) {
			if page == 2 {
				w.erp.Put(P, "pro-00") // sorts first
			}
		}},
		{name: "inserts and deletes under unordered rows", unordered: true, passes: 2, change: func(w *world, page int) {
			if page == 2 {
				w.erp.Delete(P, firstRow(w))
				w.erp.Put(P, "pro-new-1")
				w.erp.Put(P, "pro-new-2")
			}
		}},
		{name: "a busy ERP appending records: nothing shifts, no repeat", always: true, passes: 1, change: func(w *world, page int) {
			if page == 2 {
				w.erp.Put(P, "pro-"+w.clock.Now().Format("150405")+"x") // sorts last
			}
		}},
		{name: "a busy ERP removing records: repeats are bounded", always: true, passes: 1 + DefaultMaxPassRepeats, partial: true, change: func(w *world, page int) {
			if page == 2 {
				w.erp.Delete(P, firstRow(w))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.erp.Unordered = tc.unordered
			w.seed(P, 30, t0.Add(-time.Hour))
			done := map[int]bool{}
			w.erp.After = func(req connectors.PageRequest) {
				if tc.always || !done[req.Page] {
					done[req.Page] = true
					tc.change(w, req.Page)
				}
			}
			res, err := w.run(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			passes := 0
			for _, r := range w.erp.Requests() {
				if r.Page == 1 {
					passes++
					if !r.Since.IsZero() {
						t.Errorf("a repeated pass changed the window to %v", r.Since)
					}
				}
			}
			if passes != tc.passes {
				t.Errorf("%d passes, want %d", passes, tc.passes)
			}
			if !tc.partial {
				// Everything is in the CRM at the end of this very run.
				w.assertCRMMatchesERP(P)
			}
			if stateOf(res.State, P).Watermark.After(t0) {
				t.Errorf("watermark %v is later than the first pass's start", stateOf(res.State, P).Watermark)
			}
		})
	}
}

// firstRow returns the first record the Fake serves on page 1.
func firstRow(w *world) string {
	return w.erp.Rows(P, time.Time{})[0].ID
}

// Rule 3 across a restart: a resumed pass whose total no longer matches the
// checkpoint's is repeated.
func TestResumedPassWithChangedTotal(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 30, t0.Add(-time.Hour))
	w.saved = []EntityState{{Name: P, Resume: &Checkpoint{StartedAt: t0.Add(-time.Minute), Page: 1, Records: 10, Total: 31}}}
	if _, err := w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := w.erp.Requests()
	if reqs[0].Page != 2 || reqs[len(reqs)-3].Page != 1 {
		t.Errorf("requests %+v: want a resume at page 2, then a full repeat", reqs)
	}
	w.assertCRMMatchesERP(P)
}

// Rule 4: overlap re-reads, stale duplicates and retried runs never leave
// an older version in the CRM (the sink's rule, relied upon here).
func TestNeverBackwards(t *testing.T) {
	w := newWorld(t)
	w.seed(P, 30, t0.Add(-time.Hour))
	w.erp.Put(P, id(P, 1)) // v2, newer
	// Page 3 also carries an older copy of record 1, as an unordered vendor
	// might, after page 1 delivered the new one.
	w.erp.Stale = func(req connectors.PageRequest) []model.Record {
		if req.Page != 3 {
			return nil
		}
		it, _ := w.erp.Get(P, id(P, 1))
		old := it
		old.Version, old.ModifiedAt = 1, it.ModifiedAt.Add(-time.Hour)
		return []model.Record{w.erp.Record(P, old)}
	}
	w.crm.failAt = 2 // the first run fails writing page 2
	if _, err := w.run(context.Background(), func(r *Run) { r.BatchSize = 10 }); connectors.KindOf(err) != connectors.KindCRMWriteFailed {
		t.Fatalf("err %v, want CRMWriteFailed", err)
	}
	res, err := w.run(context.Background(), func(r *Run) { r.BatchSize = 10 })
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped == 0 {
		t.Error("the stale copy was not skipped")
	}
	w.assertCRMMatchesERP(P)
	// An incremental run inside the overlap re-reads and changes nothing.
	w.clock.Advance(time.Minute)
	res, err = w.run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Upserted != 0 || res.Skipped == 0 {
		t.Errorf("overlap re-read upserted %d, skipped %d; want 0 and >0", res.Upserted, res.Skipped)
	}
	w.assertCRMMatchesERP(P)
}

// Rule 5: a failed run keeps the watermark of every entity it did not
// finish, advances the finished ones, keeps what it wrote and says why. It
// stops at a page boundary: the records read before the failure are written
// and the resume point is the last page read.
func TestFailedRunChangesNothingItShouldNot(t *testing.T) {
	T, C := model.KindTaxRate, model.KindCustomer
	retryAt := t0.Add(20 * time.Hour)
	// 60 records a kind, pages of 10, batches of 25: tax rates take writes
	// 1-3; customers' records 1-25 are write 4, 26-50 write 5.
	tests := []struct {
		name       string
		fail       func(w *world) // make customers fail
		kind       connectors.ErrorKind
		retryAt    time.Time
		resumePage int // 0: no resume point
	}{
		{"401", func(w *world) { w.failOn(C, 4, connectors.Errorf(connectors.KindAuthenticationFailed, "refused")) }, connectors.KindAuthenticationFailed, time.Time{}, 3},
		{"5xx after retries", func(w *world) {
			w.failOn(C, 4, connectors.Errorf(connectors.KindERPUnavailable, "HTTP 502 after 5 attempts"))
		}, connectors.KindERPUnavailable, time.Time{}, 3},
		{"quota exhausted", func(w *world) {
			w.failOn(C, 4, &connectors.Error{Kind: connectors.KindQuotaExhausted, Msg: "day quota used up", RetryAt: retryAt})
		}, connectors.KindQuotaExhausted, retryAt, 3},
		{"unclassified garbage", func(w *world) { w.failOn(C, 4, errors.New("invalid character '<' looking for beginning of value")) }, connectors.KindInvalidResponse, time.Time{}, 3},
		{"a record without id", func(w *world) {
			w.erp.Stale = func(req connectors.PageRequest) []model.Record {
				if req.Entity == C && req.Page == 4 {
					return []model.Record{{Kind: C, Vendor: "fake"}}
				}
				return nil
			}
		}, connectors.KindInvalidResponse, time.Time{}, 3},
		{"sink error after two pages were written", func(w *world) { w.crm.failAt = 5 }, connectors.KindCRMWriteFailed, time.Time{}, 2},
		{"sink error on the first write", func(w *world) { w.crm.failAt = 4 }, connectors.KindCRMWriteFailed, time.Time{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, T, C, P)
			w0 := t0.Add(-48 * time.Hour)
			for _, k := range []model.Kind{T, C, P} {
				w.seed(k, 60, t0.Add(-time.Hour))
			}
			before := []EntityState{{Name: T, Watermark: w0}, {Name: C, Watermark: w0}, {Name: P, Watermark: w0, LastRunRecords: 7}}
			w.saved = before
			tc.fail(w)
			res, err := w.run(context.Background(), func(r *Run) { r.BatchSize = 25 })
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("err %v (kind %q), want kind %q", err, connectors.KindOf(err), tc.kind)
			}
			if !connectors.RetryAtOf(err).Equal(tc.retryAt) {
				t.Errorf("RetryAt %v, want %v", connectors.RetryAtOf(err), tc.retryAt)
			}
			if st := stateOf(res.State, T); !st.Watermark.After(w0) || st.Resume != nil {
				t.Errorf("finished entity: %+v, want an advanced watermark", st)
			}
			c := stateOf(res.State, C)
			if !c.Watermark.Equal(w0) {
				t.Errorf("failed entity's watermark moved to %v", c.Watermark)
			}
			switch {
			case tc.resumePage == 0 && c.Resume != nil && c.Resume.Page != 0:
				t.Errorf("failed entity's resume point %+v, want none", c.Resume)
			case tc.resumePage > 0 && (c.Resume == nil || c.Resume.Page != tc.resumePage || !c.Resume.Since.Equal(w0) || c.Resume.Records != int64(10*tc.resumePage)):
				t.Errorf("failed entity's resume point %+v, want page %d since %v", c.Resume, tc.resumePage, w0)
			}
			if p := stateOf(res.State, P); !reflect.DeepEqual(p, before[2]) {
				t.Errorf("entity not reached changed: %+v", p)
			}
			w.assertCRMMatchesERP(T)
			ids := w.crm.ids()
			for i := range 10 * tc.resumePage {
				if !ids[id(C, i)] {
					t.Errorf("%s, on a page before the resume point, is not in the CRM", id(C, i))
				}
			}
			// The next run picks up where this one stopped and finishes.
			w.erp.Before, w.erp.Stale, w.crm.failAt = nil, nil, 0
			w.saved = res.State
			w.erp.ResetRequests()
			if _, err := w.run(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			for _, r := range w.erp.Requests() {
				if r.Entity == C {
					if r.Page != tc.resumePage+1 || !r.Since.Equal(w0) {
						t.Errorf("the next run started customers with %+v, want page %d since %v", r, tc.resumePage+1, w0)
					}
					break
				}
			}
			w.assertCRMMatchesERP(T, C, P)
		})
	}
}

func (w *world) failOn(kind model.Kind, page int, err error) {
	w.erp.Before = func(req connectors.PageRequest) error {
		if req.Entity == kind && req.Page == page {
			return err
		}
		return nil
	}
}

func TestFullResync(t *testing.T) {
	w := newWorld(t, model.KindCustomer, P)
	w.seed(model.KindCustomer, 15, t0.Add(-time.Hour))
	w.seed(P, 15, t0.Add(-time.Hour))
	wm := t0.Add(-time.Minute)
	w.saved = []EntityState{{Name: model.KindCustomer, Watermark: wm}, {Name: P, Watermark: wm, Resume: &Checkpoint{Since: wm, StartedAt: wm, Page: 1, Total: 0}}}
	// Interrupted in products: customers are done, products must still be
	// read in full by the next (ordinary) run.
	w.failOn(P, 2, connectors.Errorf(connectors.KindERPUnavailable, "down"))
	res, err := w.run(context.Background(), func(r *Run) { r.Full = true })
	if connectors.KindOf(err) != connectors.KindERPUnavailable || !res.Full {
		t.Fatalf("err %v, full %v", err, res.Full)
	}
	for _, r := range w.erp.Requests() {
		if !r.Since.IsZero() {
			t.Errorf("a full resync sent a window: %+v", r)
		}
	}
	w.erp.Before = nil
	w.erp.ResetRequests()
	w.saved = res.State
	if _, err = w.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := w.erp.Requests()
	if reqs[0].Entity != model.KindCustomer || reqs[0].Since.IsZero() {
		t.Errorf("customers should be incremental again: %+v", reqs[0])
	}
	for _, r := range reqs[1:] {
		if r.Entity == P && !r.Since.IsZero() {
			t.Errorf("products must finish their full pass: %+v", r)
		}
	}
	w.assertCRMMatchesERP(model.KindCustomer, P)
}

func TestMisbehavingConnector(t *testing.T) {
	t.Run("endless empty pages", func(t *testing.T) {
		w := newWorld(t)
		res, err := Execute(context.Background(), Run{Connector: endless{}, Sink: w.crm, Now: w.clock.Now})
		if connectors.KindOf(err) != connectors.KindInvalidResponse || res.Calls != maxEmptyPages {
			t.Fatalf("err %v after %d calls", err, res.Calls)
		}
	})
	t.Run("nil page", func(t *testing.T) {
		w := newWorld(t)
		_, err := Execute(context.Background(), Run{Connector: nilPage{}, Sink: w.crm, Now: w.clock.Now})
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("unknown entity", func(t *testing.T) {
		w := newWorld(t)
		_, err := Execute(context.Background(), Run{Connector: w.erp, Sink: w.crm, Entities: []model.Kind{"widgets"}})
		if connectors.KindOf(err) != connectors.KindInvalidConfig {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("checkpoint failure", func(t *testing.T) {
		w := newWorld(t)
		w.seed(P, 5, t0)
		_, err := Execute(context.Background(), Run{Connector: w.erp, Sink: w.crm, Now: w.clock.Now,
			Checkpoint: func(context.Context, []EntityState, Progress) error { return errors.New("conflict") }})
		if err == nil {
			t.Fatal("a failed checkpoint must fail the run")
		}
	})
	t.Run("cancelled mid-entity", func(t *testing.T) {
		w := newWorld(t)
		w.seed(P, 30, t0)
		ctx, cancel := context.WithCancel(context.Background())
		w.erp.After = func(req connectors.PageRequest) {
			if req.Page == 2 {
				cancel()
			}
		}
		res, err := w.run(ctx, func(r *Run) { r.BatchSize = 10 })
		// The page read before the stop is written and kept.
		if cp := stateOf(res.State, P).Resume; !errors.Is(err, context.Canceled) || cp == nil || cp.Page != 2 {
			t.Fatalf("err %v, state %+v", err, res.State)
		}
	})
}

type endless struct{}

func (endless) Entities() []connectors.EntityInfo {
	return []connectors.EntityInfo{{Name: P, Incremental: true}}
}

func (endless) ListPage(context.Context, connectors.PageRequest) (*connectors.Page, error) {
	return &connectors.Page{More: true, Total: -1, Calls: 1}, nil
}

type nilPage struct{ endless }

func (nilPage) ListPage(context.Context, connectors.PageRequest) (*connectors.Page, error) {
	return nil, nil
}
