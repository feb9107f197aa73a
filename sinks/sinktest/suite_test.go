package sinktest

import (
	"context"
	"fmt"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// validating is the reference in-memory sink with the record validation the
// real sinks apply, so that the whole suite can run against the reference
// semantics.
type validating struct{ *memory.Sink }

func (v validating) Write(ctx context.Context, batch []model.Record) (sinks.WriteResult, error) {
	for i := range batch {
		r := &batch[i]
		if err := rows.ValidateKey(r); err != nil {
			return sinks.WriteResult{}, err
		}
		t, _ := rows.Lookup(r.Kind)
		if _, err := t.Row(r, t.Columns); err != nil {
			return sinks.WriteResult{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return sinks.WriteResult{}, fmt.Errorf("write: %w", err)
	}
	return v.Sink.Write(ctx, batch)
}

// Delete refuses the tombstones the real sinks refuse, before any is
// marked.
func (v validating) Delete(ctx context.Context, ts []model.Tombstone) (int, error) {
	if _, _, err := rows.PlanTombstones(ts); err != nil {
		return 0, err
	}
	return v.Sink.Delete(ctx, ts)
}

func TestSuiteAgainstTheReferenceSink(t *testing.T) {
	Run(t, Harness{Open: func(t *testing.T) Target {
		m := memory.New()
		return Target{Sink: validating{m}, Get: func(_ context.Context, k model.Key) (model.Record, bool, error) {
			r, ok := m.Get(k)
			return r, ok, nil
		}, GetSetAside: MemorySetAside(m), Tombstone: MemoryTombstone(m)}
	}})
}

func TestRecordsDifferByVersion(t *testing.T) {
	for _, k := range model.Kinds {
		a, b := Record(k, "acme", "v", "x", 1), Record(k, "acme", "v", "x", 2)
		if err := Equal(a, Record(k, "acme", "v", "x", 1)); err != nil {
			t.Errorf("%s: equal versions differ: %v", k, err)
		}
		if Equal(a, b) == nil {
			t.Errorf("%s: versions 1 and 2 are equal", k)
		}
		if !b.ModifiedAt.After(a.ModifiedAt) {
			t.Errorf("%s: version 2 is not newer", k)
		}
	}
}
