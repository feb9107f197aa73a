package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Execute performs one run. It returns the state to persist even when it
// fails: entities that completed advance their watermark; the entity that
// failed keeps its last checkpoint; entities not reached are unchanged.
func Execute(ctx context.Context, r Run) (Result, error) {
	r.defaults()
	state := indexState(r.State)
	res := Result{Records: map[model.Kind]int64{}, Full: true}

	entities, err := r.selectEntities()
	if err != nil {
		res.State = r.State
		return res, err
	}
	if r.Full {
		// A full resync forgets the watermarks first, and persists that, so a
		// run interrupted part-way still reads the remaining entities in full.
		for _, e := range entities {
			st := state[e.Name]
			st.Watermark = time.Time{}
			if st.Resume != nil && !st.Resume.Since.IsZero() {
				st.Resume = nil
			}
			state[e.Name] = st
		}
		if err := r.checkpoint(ctx, state, Progress{}); err != nil {
			res.State = flatten(state, r.State)
			return res, err
		}
	}

	var lastCheckpoint time.Time
	for _, e := range entities {
		if err := ctx.Err(); err != nil {
			res.State = flatten(state, r.State)
			return res, err
		}
		st := state[e.Name]
		st.Name = e.Name
		n, err := r.pass(ctx, e, &st, &res, &lastCheckpoint, state)
		state[e.Name] = st
		res.Records[e.Name] += n
		if err != nil {
			res.State = flatten(state, r.State)
			return res, fmt.Errorf("entity %s: %w", e.Name, err)
		}
		if err := r.checkpoint(ctx, state, Progress{Entity: e.Name, Records: res.Upserted + res.Skipped, Calls: res.Calls}); err != nil {
			res.State = flatten(state, r.State)
			return res, err
		}
		lastCheckpoint = r.Now()
	}
	res.State = flatten(state, r.State)
	return res, nil
}

// pass reads one entity from its checkpoint (or from page 1) to the end.
func (r *Run) pass(ctx context.Context, e connectors.EntityInfo, st *EntityState, res *Result, lastCheckpoint *time.Time, all map[model.Kind]EntityState) (int64, error) {
	cp := st.Resume
	if cp == nil {
		cp = &Checkpoint{Total: -1}
		if e.Incremental && !st.Watermark.IsZero() {
			cp.Since = st.Watermark
		}
	}
	if !cp.Since.IsZero() {
		res.Full = false
	}
	var read int64
	batch := make([]model.Record, 0, r.BatchSize)
	for page := cp.Page + 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return read, err
		}
		before := r.Now()
		p, err := r.Connector.ListPage(ctx, connectors.PageRequest{Entity: e.Name, Since: cp.Since, Page: page})
		if p != nil {
			res.Calls += int64(p.Calls)
		}
		if err != nil {
			return read, err
		}
		if cp.StartedAt.IsZero() {
			// The window of the next pass starts when this one started
			// reading, on the vendor's clock where it tells us.
			cp.StartedAt = before
			if !p.ServerTime.IsZero() {
				cp.StartedAt = p.ServerTime
			}
			cp.Total = p.Total
		}
		batch = append(batch[:0], p.Records...)
		for start := 0; start < len(batch); start += r.BatchSize {
			end := min(start+r.BatchSize, len(batch))
			wr, err := r.Sink.Write(ctx, batch[start:end])
			if err != nil {
				return read, connectors.Wrap(connectors.KindCRMWriteFailed, err, "writing to the CRM failed")
			}
			res.Upserted += int64(wr.Upserted)
			res.Skipped += int64(wr.Skipped)
		}
		read += int64(len(p.Records))
		cp.Page = page
		cp.Records += int64(len(p.Records))
		st.Resume = cp
		if !p.More {
			break
		}
		if r.Checkpoint != nil && r.Now().Sub(*lastCheckpoint) >= r.CheckpointEvery {
			all[e.Name] = *st
			if err := r.checkpoint(ctx, all, Progress{Entity: e.Name, Records: res.Upserted + res.Skipped, Calls: res.Calls}); err != nil {
				return read, err
			}
			*lastCheckpoint = r.Now()
		}
	}
	if e.Incremental {
		st.Watermark = cp.StartedAt.Add(-r.Overlap)
	}
	st.LastRunRecords = cp.Records
	st.LastCompleted = r.Now()
	st.Resume = nil
	return read, nil
}

func (r *Run) checkpoint(ctx context.Context, state map[model.Kind]EntityState, p Progress) error {
	if r.Checkpoint == nil {
		return nil
	}
	if err := r.Checkpoint(ctx, flatten(state, r.State), p); err != nil {
		return fmt.Errorf("checkpointing progress: %w", err)
	}
	return nil
}

func (r *Run) defaults() {
	if r.Overlap == 0 {
		r.Overlap = DefaultOverlap
	}
	if r.BatchSize <= 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.CheckpointEvery <= 0 {
		r.CheckpointEvery = DefaultCheckpointEvery
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
			cp := *s.Resume
			s.Resume = &cp
		}
		m[s.Name] = s
	}
	return m
}

// flatten returns the state as a slice sorted in canonical order.
func flatten(m map[model.Kind]EntityState, _ []EntityState) []EntityState {
	out := make([]EntityState, 0, len(m))
	for k, s := range m {
		s.Name = k
		if s.Resume != nil {
			cp := *s.Resume
			s.Resume = &cp
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
