package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// Execute performs one run. It returns the state to persist even when it
// fails: entities that completed advance their watermark; the entity that
// failed keeps its watermark and its last checkpoint; entities not reached
// are unchanged.
//
// The rules it keeps (each has a test in engine_test.go):
//
//  1. No lost updates: an entity's next window starts where the pass started
//     reading (the vendor's clock from the first page's ServerTime, else our
//     clock read before the first request), minus Overlap, never at the end.
//  2. Resume, don't restart: the last page whose records were all written is
//     checkpointed (at most every CheckpointEvery, and at the end of an
//     entity that wrote something or finished an interrupted pass); an
//     interrupted pass resumes at the next page with the same Since and
//     StartedAt, a first import included.
//  3. Pages that shift: a pass is repeated with the same watermark when the
//     vendor's total fell while it ran (a removal before the cursor shifts
//     every later record up a place) or when it read fewer distinct
//     documents than the vendor's total (unstable order, an edit that moved
//     a record past the cursor). The distinct ids of the repeats add up; the
//     repeats are counted per pass, across runs, at most MaxPassRepeats. A
//     pass still short after them does not advance its watermark
//     (EntityState.Incomplete). Keyset readers (Page.Next) cannot shift.
//  6. A crash costs at most a page: before the HTTP layer waits on a limit
//     (connectors.WithWaitHook), the pages read so far are written and
//     checkpointed.
//  7. Documents the mapping cannot know are set aside (stored with their
//     reason) and hold the entity's next window open at their modified
//     time, so every later pass reads them again until they map.
//  4. Never backwards is the sink's contract; the engine writes whatever it
//     reads, in any order, as often as it reads it.
//  5. A failed run returns a classified *connectors.Error (context errors
//     excepted) and a state that keeps every unfinished entity's watermark.
//
// Records stream: one page and one batch are in memory at a time.
func Execute(ctx context.Context, r Run) (Result, error) {
	r.defaults()
	x := &execution{
		run:   &r,
		state: indexState(r.State),
		res:   Result{Records: map[model.Kind]int64{}, Changed: map[model.Kind]int64{}, Full: true},
	}
	entities, err := r.selectEntities()
	if err != nil {
		x.res.State = r.State
		return x.res, err
	}
	for _, want := range r.FullEntities {
		if !slices.ContainsFunc(entities, func(e connectors.EntityInfo) bool { return e.Name == want }) {
			x.res.State = r.State
			return x.res, connectors.Errorf(connectors.KindInvalidConfig, "entity %q to read in full is not one of the run's entities", want)
		}
	}
	if r.Full || len(r.FullEntities) > 0 {
		// A full resync forgets the watermarks first, and persists that, so a
		// run interrupted part-way still reads the remaining entities in full.
		// A checkpoint of a full read (no Since) is kept: the pass resumes.
		for _, e := range entities {
			if !r.Full && !slices.Contains(r.FullEntities, e.Name) {
				continue
			}
			st := x.state[e.Name]
			st.Watermark = time.Time{}
			if st.Resume != nil && !st.Resume.Since.IsZero() {
				st.Resume = nil
			}
			x.state[e.Name] = st
		}
		if err := x.checkpoint(ctx, Progress{}); err != nil {
			return x.result(), err
		}
	}
	x.lastCheckpoint = r.Now()
	for _, e := range entities {
		if err := ctx.Err(); err != nil {
			return x.result(), fmt.Errorf("before entity %s: %w", e.Name, err)
		}
		if st := x.state[e.Name]; !r.SkipCompletedSince.IsZero() && st.Resume == nil && !st.LastCompleted.Before(r.SkipCompletedSince) &&
			!slices.Contains(r.FullEntities, e.Name) {
			continue
		}
		resumed := x.state[e.Name].Resume != nil
		before := x.res.Upserted + x.res.SetAside + x.res.Deleted
		upsertedBefore := x.res.Upserted
		err := x.entity(ctx, e)
		if n := x.res.Upserted - upsertedBefore; n > 0 {
			x.res.Changed[e.Name] += n
		}
		if err != nil {
			return x.result(), err
		}
		// An entity that wrote, set aside or deleted something, or that
		// finished an interrupted pass, is checkpointed at its end. A
		// quiet one (a window with no change: at most records of the
		// overlap read again, unchanged) is not: the run's result
		// carries its new watermark, and a crash before then only reads
		// the same window again. So a quiet sync costs its caller no
		// write but its start and its end.
		quiet := !resumed && x.res.Upserted+x.res.SetAside+x.res.Deleted == before
		if quiet && r.Now().Sub(x.lastCheckpoint) < r.CheckpointEvery {
			continue
		}
		if err := x.checkpoint(ctx, x.progress(e.Name)); err != nil {
			return x.result(), err
		}
	}
	return x.result(), nil
}

// execution is the state of one Execute call.
type execution struct {
	run            *Run
	state          map[model.Kind]EntityState
	res            Result
	lastCheckpoint time.Time
	// batch holds the records read but not yet written; it is reused for
	// every batch of the run.
	batch []model.Record
	aside []model.SetAside
	ends  []pageEnd
	// seen holds a 64-bit hash of every document id the current pass (and
	// its repeats) read, while the vendor reports a total; seenSorted is the
	// length of its sorted, deduplicated prefix.
	seen       []uint64
	seenSorted int
	// pending holds the hashes of pages read but not yet wholly written:
	// they join seen when the resume point passes their page, so that a
	// saved distinct count covers exactly the pages a resume skips.
	pending []uint64
	// cur is the entity being read, for the distinct count of the state a
	// failed run returns.
	cur model.Kind
	// onWait saves the pass's progress before the HTTP layer waits; set
	// while a page is being read. waitErr keeps its failure for the engine
	// to return once ListPage does.
	onWait  func(ctx context.Context) error
	waitErr error
	// dirty is set when pages were read since the last checkpoint.
	dirty bool
	// distinctBase is the distinct count a resumed pass had reached before
	// the resume (its ids are not known).
	distinctBase int64
	// keys holds a hash of the kind and vendor id of every record and
	// set-aside document a full pass read, while track is set (a full
	// pass from its first page): what absence detection compares the
	// CRM with. faults counts the requests the HTTP layer repeated after
	// a fault during the entity's passes.
	keys   []uint64
	track  bool
	faults atomic.Int64
}

// pageEnd is a page read but not yet wholly written: upTo is the pass's
// record count at its end.
type pageEnd struct {
	page   int
	upTo   int64
	cursor string
	ids    int // hashes the page added to pending
}

func (x *execution) result() Result {
	if st, ok := x.state[x.cur]; ok && st.Resume != nil && len(x.seen) > 0 {
		st.Resume = st.Resume.clone()
		st.Resume.Distinct = x.distinct()
		x.state[x.cur] = st
	}
	x.res.State = flatten(x.state)
	return x.res
}

func (x *execution) progress(e model.Kind) Progress {
	return Progress{Entity: e, Records: x.res.Upserted + x.res.Skipped, Calls: x.res.Calls}
}

// entity runs the passes of one entity until one completes without
// shifting (or the repeats are used up), then advances its watermark.
func (x *execution) entity(ctx context.Context, e connectors.EntityInfo) error {
	r := x.run
	st := x.state[e.Name]
	st.Name = e.Name
	cp := &Checkpoint{Total: -1}
	resumed := false
	if st.Resume != nil {
		*cp = *st.Resume
		resumed = true
		if cp.StartedAt.IsZero() {
			// A checkpoint without its start cannot give a safe window:
			// read the pass again from its first page.
			cp.Page, cp.Records, cp.Total, cp.Cursor, cp.Distinct = 0, 0, -1, "", 0
			resumed = false
		}
	} else if e.Incremental && !st.Watermark.IsZero() {
		cp.Since = st.Watermark
	}
	if !cp.Since.IsZero() {
		x.res.Full = false
	}
	if !resumed {
		x.resetAside(&st)
	}
	x.seen, x.seenSorted, x.pending, x.cur = x.seen[:0], 0, x.pending[:0], e.Name
	x.distinctBase = 0
	if resumed {
		// The ids read before the resume are known only by their count.
		x.distinctBase = cp.Distinct
	}
	callsBefore := x.res.Calls
	// Absence detection needs every id of a full pass: not a resumed one.
	x.track = cp.Since.IsZero() && !resumed
	x.keys = x.keys[:0]
	x.faults.Store(0)
	clean := false
	for {
		before := cp.Distinct
		out, err := x.pass(ctx, e, &st, cp)
		x.state[e.Name] = st
		if err != nil {
			return err
		}
		if !out.shifted && !out.short {
			st.Incomplete = ""
			clean = true
			break
		}
		why := "the vendor's record count fell during the pass (a removal shifts later pages)"
		if out.short {
			why = fmt.Sprintf("the pass read %d distinct documents of the %d the vendor reports (unstable order or records moved by edits)", out.distinct, out.total)
		}
		// A short pass that still found new documents (an unstable order
		// converging) may repeat beyond the limit, up to maxGainingRepeats.
		gaining := r.MaxPassRepeats > 0 && out.short && out.distinct > before && cp.Repeats < maxGainingRepeats
		if cp.Repeats >= r.MaxPassRepeats && !gaining {
			if out.short {
				st.Incomplete = why + fmt.Sprintf(", after %d passes; the watermark stays, so the next sync reads this window again", cp.Repeats+1)
				r.Log.Info("an entity's pass stayed short after every repeat; keeping its watermark", "entity", e.Name, "passes", cp.Repeats+1, "distinct", out.distinct, "total", out.total)
				x.res.Incomplete = append(x.res.Incomplete, e.Name)
				st.LastRunRecords = cp.Records
				st.LastRunCalls = x.res.Calls - callsBefore
				st.LastRunIncremental = !cp.Since.IsZero()
				st.LastCompleted = r.Now()
				st.Resume = nil
				x.state[e.Name] = st
				return nil
			}
			st.Incomplete = ""
			r.Log.Info("the vendor's record count kept falling during the pass; accepting it", "entity", e.Name, "passes", cp.Repeats+1)
			break
		}
		r.Log.Info("repeating an entity's pass with the same watermark", "entity", e.Name, "repeat", cp.Repeats+1, "reason", why)
		// Same window, same start: a repeat can only widen what is read.
		// The distinct ids of the earlier passes still count.
		cp = &Checkpoint{Since: cp.Since, StartedAt: cp.StartedAt, Total: -1, Repeats: cp.Repeats + 1, Distinct: out.distinct}
		x.resetAside(&st)
		st.Resume = cp.clone()
		x.state[e.Name] = st
		// Persist the repeat count, so that a crash does not reset it.
		if err := x.checkpoint(ctx, x.progress(e.Name)); err != nil {
			return err
		}
	}
	if cp.Since.IsZero() {
		if err := x.absent(ctx, e, &st, clean, resumed); err != nil {
			x.state[e.Name] = st
			return err
		}
	}
	if e.Incremental {
		wm := cp.StartedAt.Add(-r.Overlap)
		if !st.SetAsideSince.IsZero() && st.SetAsideSince.Add(-time.Second).Before(wm) {
			// Read the set-aside documents again next time, until they map.
			wm = st.SetAsideSince.Add(-time.Second)
		}
		st.Watermark = wm
	}
	st.LastRunRecords = cp.Records
	st.LastRunCalls = x.res.Calls - callsBefore
	st.LastRunIncremental = !cp.Since.IsZero()
	st.LastCompleted = r.Now()
	st.Resume = nil
	x.state[e.Name] = st
	return nil
}

// resetAside starts an entity's set-aside count afresh, for a pass that
// reads its window from the first page.
func (x *execution) resetAside(st *EntityState) {
	st.SetAside, st.SetAsideIDs, st.SetAsideSince = 0, nil, time.Time{}
}

// passOutcome is how a pass that read to the end went.
type passOutcome struct {
	// shifted: the vendor's total fell during the pass.
	shifted bool
	// short: fewer distinct documents than the vendor's total were read.
	short           bool
	distinct, total int64
}

// pass reads one entity from the page after cp.Page to the end, writing as
// it goes. It reports whether the vendor's total changed during the pass. On
// return st.Resume holds the last page whose records were all written.
func (x *execution) pass(ctx context.Context, e connectors.EntityInfo, st *EntityState, cp *Checkpoint) (out passOutcome, err error) {
	r := x.run
	// A resumed pass already has its total, from the page it stopped at.
	haveTotal := cp.Page > 0
	lastTotal := cp.Total
	shifted := false
	// read counts the records of the pass read so far, written those
	// written; ends holds the pages read but not yet wholly written, with
	// the value of read at their end.
	read, written := cp.Records, cp.Records
	x.ends = x.ends[:0]
	x.pending = x.pending[:0]
	empty := 0
	cursor := cp.Cursor
	// commit moves the resume point to the last page whose records are all
	// written.
	commit := func() {
		n := 0
		for n < len(x.ends) && x.ends[n].upTo <= written {
			cp.Page, cp.Records, cp.Cursor = x.ends[n].page, x.ends[n].upTo, x.ends[n].cursor
			if k := x.ends[n].ids; k > 0 {
				x.seen = append(x.seen, x.pending[:k]...)
				x.pending = append(x.pending[:0], x.pending[k:]...)
			}
			st.Resume = cp.clone()
			n++
		}
		x.ends = append(x.ends[:0], x.ends[n:]...)
	}
	flush := func() error {
		n := len(x.batch)
		fctx := ctx
		if ctx.Err() != nil {
			// Stopped (a timeout, a suspension, a shutdown) with pages
			// read: write them on a short context of their own, so that
			// the resume point covers them.
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), stopFlushTimeout)
			defer cancel()
		}
		if err := x.flush(fctx); err != nil {
			return err
		}
		written += int64(n)
		commit()
		return nil
	}
	x.onWait = func(ctx context.Context) error {
		if !x.dirty && len(x.batch) == 0 && len(x.aside) == 0 {
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		x.saveDistinct(st)
		x.state[e.Name] = *st
		return x.checkpoint(ctx, x.progress(e.Name))
	}
	defer func() { x.onWait = nil }()
	// stopFlush writes what was read before a cancellation; a failure only
	// means those pages are read again on resume.
	stopFlush := func() {
		if err := flush(); err != nil {
			r.Log.Info("writing the pages read before the stop failed; they are read again on resume", "entity", e.Name, "error", err.Error())
			clear(x.batch)
			x.batch = x.batch[:0]
		}
	}
	for page := cp.Page + 1; ; page++ {
		if err := ctx.Err(); err != nil {
			stopFlush()
			return out, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
		}
		before := r.Now()
		x.waitErr = nil
		p, err := r.Connector.ListPage(connectors.WithFaultCounter(connectors.WithWaitHook(ctx, x.hook), &x.faults), connectors.PageRequest{Entity: e.Name, Since: cp.Since, Page: page, Cursor: cursor})
		if p != nil {
			x.res.Calls += int64(p.Calls)
		}
		if werr := connectors.ResumeWork(ctx); werr != nil {
			// A wait gave the sync slot back; the run ended before it
			// got one again.
			return out, fmt.Errorf("entity %s page %d: %w", e.Name, page, werr)
		}
		if x.waitErr != nil {
			// Saving progress before a wait failed (the sink or the
			// status write): the page may be fine, the run is not.
			return out, fmt.Errorf("entity %s page %d: saving progress before a rate-limit wait: %w", e.Name, page, x.waitErr)
		}
		if err == nil && p == nil {
			err = connectors.Errorf(connectors.KindInvalidResponse, "the connector returned no page")
		}
		if err == nil {
			err = validPage(p)
		}
		if err != nil {
			// Keep what was read before the failure: it is valid, and the
			// resume point moves past it.
			if ctx.Err() == nil {
				if ferr := flush(); ferr != nil {
					return out, fmt.Errorf("entity %s page %d: %w", e.Name, page-1, ferr)
				}
			} else {
				stopFlush()
			}
			return out, classify(e.Name, page, err)
		}
		if cp.StartedAt.IsZero() {
			// The window of the next pass starts when this one started
			// reading, on the vendor's clock where it tells us.
			cp.StartedAt = before
			if !p.ServerTime.IsZero() {
				cp.StartedAt = p.ServerTime
			}
		}
		if !haveTotal {
			cp.Total = p.Total
			haveTotal = true
		} else if lastTotal >= 0 && p.Total >= 0 && p.Total < lastTotal {
			shifted = true
		}
		if p.Total >= 0 {
			lastTotal = p.Total
		}
		if lastTotal >= 0 {
			if len(x.seen) == 0 && cap(x.seen) < lastTotal && lastTotal <= maxPrealloc {
				// One allocation of the size the vendor announced, rather
				// than a doubling slice's copies.
				x.seen = make([]uint64, 0, lastTotal+lastTotal/16+64)
			}
		}
		ids := 0
		if lastTotal >= 0 {
			ids = x.count(e.Name, p, cp.StartedAt, e.ShiftsOnEdit && cursor == "" && p.Next == "")
		}
		cursor = p.Next
		x.clampFuture(e.Name, p)
		n := int64(len(p.Records))
		read += n
		x.res.Records[e.Name] += n
		x.ends = append(x.ends, pageEnd{page: page, upTo: read, cursor: cursor, ids: ids})
		x.dirty = true
		x.setAside(st, p.SetAside)
		if x.track {
			x.trackKeys(p)
		}
		if len(p.Records) > 0 && (r.Company == "" || r.Vendor == "") {
			r.Company, r.Vendor = p.Records[0].Company, p.Records[0].Vendor
		}
		for i := range p.Records {
			x.batch = append(x.batch, p.Records[i])
			if len(x.batch) >= r.BatchSize {
				if err := flush(); err != nil {
					return out, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
				}
			}
		}
		commit() // an empty page
		if !p.More {
			if err := flush(); err != nil {
				return out, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
			}
			out.shifted = shifted
			if lastTotal >= 0 {
				out.total = int64(lastTotal)
				out.distinct = x.distinct()
				out.short = out.distinct < out.total
			}
			return out, nil
		}
		if n == 0 && len(p.SetAside) == 0 {
			if empty++; empty >= maxEmptyPages {
				return out, connectors.Errorf(connectors.KindInvalidResponse, "entity %s: %d empty pages in a row claim more records follow", e.Name, empty)
			}
		} else {
			empty = 0
		}
		if r.Checkpoint != nil && r.Now().Sub(x.lastCheckpoint) >= r.CheckpointEvery {
			if err := flush(); err != nil {
				return out, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
			}
			x.saveDistinct(st)
			x.state[e.Name] = *st
			if err := x.checkpoint(ctx, x.progress(e.Name)); err != nil {
				return out, err
			}
		}
	}
}

// saveDistinct records the pass's distinct count in its resume point, for a
// checkpoint.
func (x *execution) saveDistinct(st *EntityState) {
	if st.Resume != nil && len(x.seen) > 0 {
		st.Resume.Distinct = x.distinct()
	}
}

// MaxCursorLen bounds a page's Next, which is checkpointed into status.
const MaxCursorLen = 4096

// stopFlushTimeout bounds the write of the pages read before a stop.
const stopFlushTimeout = 10 * time.Second

// maxGainingRepeats bounds the repeats of a pass that keep finding new
// documents (an unstable order converges in about ln N passes).
const maxGainingRepeats = 20

// maxPrealloc bounds the distinct-id set allocated up front from a
// vendor's announced total (8 bytes a document), so that a lying total
// cannot make the engine allocate much.
const maxPrealloc = 4 << 20

// clampFuture brings modified times more than MaxFutureSkew ahead of our
// clock back to that bound: a record stamped in the far future (a hostile or
// broken server) would otherwise win over every later real version in the
// sinks, which never go backwards.
func (x *execution) clampFuture(entity model.Kind, p *connectors.Page) {
	limit := x.run.Now().Add(x.run.MaxFutureSkew)
	clamped := 0
	for i := range p.Records {
		if p.Records[i].ModifiedAt.After(limit) {
			p.Records[i].ModifiedAt = limit
			clamped++
		}
	}
	for i := range p.SetAside {
		if p.SetAside[i].ModifiedAt.After(limit) {
			p.SetAside[i].ModifiedAt = limit
		}
	}
	if clamped > 0 {
		x.run.Log.Info("records stamped in the future were clamped to our clock plus the allowed skew", "entity", entity, "records", clamped, "limit", limit)
	}
}

// hook is the WaitHook of every page request: it saves the pass's progress
// before the HTTP layer waits, once per stretch of unsaved pages. A wait
// shorter than CheckpointEvery (at most DefaultCheckpointEvery) within
// CheckpointEvery of the last checkpoint saves nothing: it is no longer than a page's work, which the
// checkpoint cadence covers, and a sync paced by a vendor's per-second
// limit (a quiet one included) would otherwise write its status before
// every call.
func (x *execution) hook(ctx context.Context, wait time.Duration) {
	if x.onWait == nil || x.waitErr != nil || ctx.Err() != nil {
		return
	}
	if r := x.run; wait < min(r.CheckpointEvery, DefaultCheckpointEvery) && r.Now().Sub(x.lastCheckpoint) < r.CheckpointEvery {
		return
	}
	if err := x.onWait(ctx); err != nil {
		x.waitErr = err
	}
}

// count adds the ids of a page's documents to the pending part of the
// pass's distinct set and returns how many it added.
//
// In a pass resumed from a checkpoint the ids read before the resume are
// known only by their count, so a document read on both sides of it would
// count twice and could hide one that a shift pushed behind the cursor.
// Only a document changed after the pass started can have moved, so those
// are not counted after a resume (started is the pass's start): at worst the
// pass looks short and is read again. Only streams whose list order follows
// edits (EntityInfo.ShiftsOnEdit) read by page number can shift that way.
func (x *execution) count(entity model.Kind, p *connectors.Page, started time.Time, shifts bool) int {
	before := len(x.pending)
	var moved map[string]bool
	if x.distinctBase > 0 && shifts {
		for i := range p.Records {
			if r := &p.Records[i]; r.ModifiedAt.After(started) {
				if moved == nil {
					moved = map[string]bool{}
				}
				moved[r.VendorID] = true
			}
		}
	}
	if p.Docs != nil {
		for _, id := range p.Docs {
			if !moved[id] {
				x.pending = append(x.pending, idHash(id))
			}
		}
		return len(x.pending) - before
	}
	for i := range p.Records {
		if p.Records[i].Kind == entity && !moved[p.Records[i].VendorID] {
			x.pending = append(x.pending, idHash(p.Records[i].VendorID))
		}
	}
	for i := range p.SetAside {
		if p.SetAside[i].Kind == entity {
			x.pending = append(x.pending, idHash(p.SetAside[i].VendorID))
		}
	}
	return len(x.pending) - before
}

// distinct returns the number of distinct documents the pass has read: those
// in seen, sorted and deduplicated in place, plus, for a pass resumed from a
// checkpoint, the count it had reached before (whose ids are not kept, so an
// id read on both sides of a resume counts twice: a resumed pass can only
// overcount).
func (x *execution) distinct() int64 {
	if x.seenSorted < len(x.seen) {
		slices.Sort(x.seen)
		x.seen = slices.Compact(x.seen)
		x.seenSorted = len(x.seen)
	}
	return x.distinctBase + int64(len(x.seen))
}

// setAside queues a page's set-aside documents for the sink and counts them
// in the entity's state.
func (x *execution) setAside(st *EntityState, items []model.SetAside) {
	for _, it := range items {
		if len(it.Reason) > model.MaxReasonLen {
			it.Reason = truncate(it.Reason, model.MaxReasonLen)
		}
		x.aside = append(x.aside, it)
		st.SetAside++
		x.res.SetAside++
		if len(st.SetAsideIDs) < MaxSetAsideIDs && !slices.Contains(st.SetAsideIDs, it.VendorID) {
			st.SetAsideIDs = append(st.SetAsideIDs, it.VendorID)
		}
		if !it.ModifiedAt.IsZero() && (st.SetAsideSince.IsZero() || it.ModifiedAt.Before(st.SetAsideSince)) {
			st.SetAsideSince = it.ModifiedAt.UTC()
		}
	}
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// flush writes the pending batch.
func (x *execution) flush(ctx context.Context) error {
	if len(x.aside) > 0 {
		if err := x.run.Sink.SetAside(ctx, x.aside); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return connectors.Wrap(connectors.KindCRMWriteFailed, err, "writing set-aside documents to the CRM failed")
		}
		clear(x.aside)
		x.aside = x.aside[:0]
	}
	if len(x.batch) == 0 {
		return nil
	}
	vendor, kind := x.batch[0].Vendor, string(x.batch[0].Kind)
	wr, err := x.run.Sink.Write(ctx, x.batch)
	if err != nil {
		metrics.AddRecords(vendor, kind, metrics.OpFailed, len(x.batch))
		if ctx.Err() != nil {
			return err
		}
		return connectors.Wrap(connectors.KindCRMWriteFailed, err, "writing to the CRM failed")
	}
	metrics.AddRecords(vendor, kind, metrics.OpUpserted, wr.Upserted)
	metrics.AddRecords(vendor, kind, metrics.OpSkipped, wr.Skipped)
	x.res.Upserted += int64(wr.Upserted)
	x.res.Skipped += int64(wr.Skipped)
	clear(x.batch) // drop the payloads for the collector
	x.batch = x.batch[:0]
	return nil
}

func (x *execution) checkpoint(ctx context.Context, p Progress) error {
	r := x.run
	if r.Checkpoint == nil {
		return nil
	}
	if err := r.Checkpoint(ctx, flatten(x.state), p); err != nil {
		return fmt.Errorf("checkpointing progress: %w", err)
	}
	x.lastCheckpoint = r.Now()
	x.dirty = false
	return nil
}

// validPage rejects pages a sink must never see.
func validPage(p *connectors.Page) error {
	for i := range p.Records {
		rec := &p.Records[i]
		if rec.VendorID == "" {
			return connectors.Errorf(connectors.KindInvalidResponse, "record %d of the page has no vendor id", i)
		}
		if !rec.Kind.Valid() {
			return connectors.Errorf(connectors.KindInvalidResponse, "record %d of the page has an unknown kind %q", i, rec.Kind)
		}
		if (rec.Parent == "") != (rec.ParentKind == "") || (rec.ParentKind != "" && !rec.ParentKind.Valid()) {
			return connectors.Errorf(connectors.KindInvalidResponse, "record %d of the page names a parent without its kind, or of an unknown kind", i)
		}
		for _, c := range rec.Children {
			if !c.Kind.Valid() || slices.Contains(c.IDs, "") {
				return connectors.Errorf(connectors.KindInvalidResponse, "record %d of the page names children of an unknown kind or without an id", i)
			}
		}
		switch rec.DeletedVia {
		case "", model.DeletedByVendor, model.DeletedFromParent, model.DeletedWithParent, model.DeletedAbsentFromFullRead, model.DeletedByReconciliation, model.DeletedByWebhook:
		default:
			return connectors.Errorf(connectors.KindInvalidResponse, "record %d of the page has an unknown deletion source", i)
		}
	}
	if len(p.Next) > MaxCursorLen {
		// The cursor is checkpointed into status: a vendor-derived value
		// must not grow it without bound.
		return connectors.Errorf(connectors.KindInvalidResponse, "the page's cursor is %d bytes, more than %d", len(p.Next), MaxCursorLen)
	}
	for i := range p.SetAside {
		it := &p.SetAside[i]
		if it.VendorID == "" || !it.Kind.Valid() {
			return connectors.Errorf(connectors.KindInvalidResponse, "set-aside document %d of the page has no vendor id or kind", i)
		}
	}
	return nil
}

// classify makes sure a connector failure carries a kind: context errors stay
// as they are (the controller tells a timeout from a stop), classified
// errors keep their kind, anything else is an invalid response.
func classify(entity model.Kind, page int, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || connectors.KindOf(err) != "" {
		return fmt.Errorf("entity %s page %d: %w", entity, page, err)
	}
	return connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("entity %s page %d: reading failed", entity, page))
}

func (c *Checkpoint) clone() *Checkpoint {
	cp := *c
	return &cp
}

func (r *Run) defaults() {
	switch {
	case r.Overlap == 0:
		r.Overlap = DefaultOverlap
	case r.Overlap < 0:
		r.Overlap = 0
	}
	if r.BatchSize <= 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.CheckpointEvery <= 0 {
		r.CheckpointEvery = DefaultCheckpointEvery
	}
	switch {
	case r.MaxPassRepeats == 0:
		r.MaxPassRepeats = DefaultMaxPassRepeats
	case r.MaxPassRepeats < 0:
		r.MaxPassRepeats = 0
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.MaxFutureSkew <= 0 {
		r.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if r.MaxDeleteShare == 0 {
		r.MaxDeleteShare = DefaultMaxDeleteShare
	}
}

// selectEntities returns the connector's streams restricted to r.Entities,
// in the connector's order.
func (r *Run) selectEntities() ([]connectors.EntityInfo, error) {
	all := r.Connector.Entities()
	if len(r.Entities) == 0 {
		return all, nil
	}
	for _, want := range r.Entities {
		if !slices.ContainsFunc(all, func(e connectors.EntityInfo) bool { return e.Name == want }) {
			return nil, connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered by this connector", want)
		}
	}
	var out []connectors.EntityInfo
	for _, e := range all {
		if slices.Contains(r.Entities, e.Name) {
			out = append(out, e)
		}
	}
	return out, nil
}

func indexState(in []EntityState) map[model.Kind]EntityState {
	m := make(map[model.Kind]EntityState, len(in))
	for _, s := range in {
		if s.Resume != nil {
			s.Resume = s.Resume.clone()
		}
		m[s.Name] = s
	}
	return m
}

// flatten returns the state as a slice sorted in canonical order.
func flatten(m map[model.Kind]EntityState) []EntityState {
	out := make([]EntityState, 0, len(m))
	for k, s := range m {
		s.Name = k
		if s.Resume != nil {
			s.Resume = s.Resume.clone()
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b EntityState) int {
		if d := a.Name.Order() - b.Name.Order(); d != 0 {
			return d
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
