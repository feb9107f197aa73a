package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

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
//     checkpointed (at most every CheckpointEvery, always at entity end); an
//     interrupted pass resumes at the next page with the same Since and
//     StartedAt, a first import included.
//  3. Pages that shift: a pass during which the vendor's total changed is
//     repeated with the same watermark, at most MaxPassRepeats times.
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
		res:   Result{Records: map[model.Kind]int64{}, Full: true},
	}
	entities, err := r.selectEntities()
	if err != nil {
		x.res.State = r.State
		return x.res, err
	}
	if r.Full {
		// A full resync forgets the watermarks first, and persists that, so a
		// run interrupted part-way still reads the remaining entities in full.
		for _, e := range entities {
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
		if st := x.state[e.Name]; !r.SkipCompletedSince.IsZero() && st.Resume == nil && !st.LastCompleted.Before(r.SkipCompletedSince) {
			continue
		}
		if err := x.entity(ctx, e); err != nil {
			return x.result(), err
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
	ends  []pageEnd
}

// pageEnd is a page read but not yet wholly written: upTo is the pass's
// record count at its end.
type pageEnd struct {
	page int
	upTo int64
}

func (x *execution) result() Result {
	x.res.State = flatten(x.state)
	return x.res
}

func (x *execution) progress(e model.Kind) Progress {
	return Progress{Entity: e, Records: x.res.Upserted + x.res.Skipped, Calls: x.res.Calls}
}

// entity runs the passes of one entity until one completes without its
// total changing (or the repeats are used up), then advances its watermark.
func (x *execution) entity(ctx context.Context, e connectors.EntityInfo) error {
	r := x.run
	st := x.state[e.Name]
	st.Name = e.Name
	cp := &Checkpoint{Total: -1}
	if st.Resume != nil {
		*cp = *st.Resume
		if cp.StartedAt.IsZero() {
			// A checkpoint without its start cannot give a safe window:
			// read the pass again from its first page.
			cp.Page, cp.Records, cp.Total = 0, 0, -1
		}
	} else if e.Incremental && !st.Watermark.IsZero() {
		cp.Since = st.Watermark
	}
	if !cp.Since.IsZero() {
		x.res.Full = false
	}
	callsBefore := x.res.Calls
	for repeats := 0; ; repeats++ {
		shifted, err := x.pass(ctx, e, &st, cp)
		x.state[e.Name] = st
		if err != nil {
			return err
		}
		if !shifted {
			break
		}
		if repeats >= r.MaxPassRepeats {
			r.Log.Info("the vendor's record count kept changing during the pass; accepting it, the next run's overlap re-reads recent changes",
				"entity", e.Name, "passes", repeats+1)
			break
		}
		r.Log.V(1).Info("the vendor's record count changed during the pass; repeating it with the same watermark", "entity", e.Name, "repeat", repeats+1)
		// Same window, same start: a repeat can only widen what is read.
		cp = &Checkpoint{Since: cp.Since, StartedAt: cp.StartedAt, Total: -1}
		st.Resume = cp.clone()
		x.state[e.Name] = st
	}
	if e.Incremental {
		st.Watermark = cp.StartedAt.Add(-r.Overlap)
	}
	st.LastRunRecords = cp.Records
	st.LastRunCalls = x.res.Calls - callsBefore
	st.LastRunIncremental = !cp.Since.IsZero()
	st.LastCompleted = r.Now()
	st.Resume = nil
	x.state[e.Name] = st
	return nil
}

// pass reads one entity from the page after cp.Page to the end, writing as
// it goes. It reports whether the vendor's total changed during the pass. On
// return st.Resume holds the last page whose records were all written.
func (x *execution) pass(ctx context.Context, e connectors.EntityInfo, st *EntityState, cp *Checkpoint) (shifted bool, err error) {
	r := x.run
	// A resumed pass already has its total, from the page it stopped at.
	haveTotal := cp.Page > 0
	// read counts the records of the pass read so far, written those
	// written; ends holds the pages read but not yet wholly written, with
	// the value of read at their end.
	read, written := cp.Records, cp.Records
	x.ends = x.ends[:0]
	empty := 0
	// commit moves the resume point to the last page whose records are all
	// written.
	commit := func() {
		n := 0
		for n < len(x.ends) && x.ends[n].upTo <= written {
			cp.Page, cp.Records = x.ends[n].page, x.ends[n].upTo
			st.Resume = cp.clone()
			n++
		}
		x.ends = append(x.ends[:0], x.ends[n:]...)
	}
	flush := func() error {
		n := len(x.batch)
		if err := x.flush(ctx); err != nil {
			return err
		}
		written += int64(n)
		commit()
		return nil
	}
	for page := cp.Page + 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return shifted, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
		}
		before := r.Now()
		p, err := r.Connector.ListPage(ctx, connectors.PageRequest{Entity: e.Name, Since: cp.Since, Page: page})
		if p != nil {
			x.res.Calls += int64(p.Calls)
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
					return shifted, fmt.Errorf("entity %s page %d: %w", e.Name, page-1, ferr)
				}
			}
			return shifted, classify(e.Name, page, err)
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
		} else if cp.Total >= 0 && p.Total >= 0 && p.Total != cp.Total {
			shifted = true
		}
		n := int64(len(p.Records))
		read += n
		x.res.Records[e.Name] += n
		x.ends = append(x.ends, pageEnd{page: page, upTo: read})
		for i := range p.Records {
			x.batch = append(x.batch, p.Records[i])
			if len(x.batch) >= r.BatchSize {
				if err := flush(); err != nil {
					return shifted, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
				}
			}
		}
		commit() // an empty page
		if !p.More {
			if err := flush(); err != nil {
				return shifted, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
			}
			return shifted, nil
		}
		if n == 0 {
			if empty++; empty >= maxEmptyPages {
				return shifted, connectors.Errorf(connectors.KindInvalidResponse, "entity %s: %d empty pages in a row claim more records follow", e.Name, empty)
			}
		} else {
			empty = 0
		}
		if r.Checkpoint != nil && r.Now().Sub(x.lastCheckpoint) >= r.CheckpointEvery {
			if err := flush(); err != nil {
				return shifted, fmt.Errorf("entity %s page %d: %w", e.Name, page, err)
			}
			x.state[e.Name] = *st
			if err := x.checkpoint(ctx, x.progress(e.Name)); err != nil {
				return shifted, err
			}
		}
	}
}

// flush writes the pending batch.
func (x *execution) flush(ctx context.Context) error {
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
