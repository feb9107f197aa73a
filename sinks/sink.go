// Package sinks defines the CRM side of a sync: where canonical records land.
// Implementations live in sub-packages (postgres, sqlite, webhook, memory).
package sinks

import (
	"context"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Sink stores canonical records. Every implementation must hold to these
// rules, which the engine relies on:
//
//   - Idempotent: writing the same batch twice changes nothing the second time.
//   - Never backwards: a record is never replaced by a version with an older
//     ModifiedAt; such a write is skipped.
//   - Content decides: a record with the stored ModifiedAt or a newer one is
//     written when its content hash (model.Record.ContentHash) differs from
//     the stored one, and skipped (not rewritten, not counted as upserted)
//     when it is equal.
//   - Set aside: SetAside stores documents the connector could not map,
//     keyed like records and replacing an earlier entry of the same key; a
//     Write that stores a record removes the set-aside entry of its key in
//     the same transaction.
//   - Atomic per batch: a failed Write leaves nothing of the batch half-written.
//   - Companies apart: records of different companies never collide, even with
//     equal vendor ids (the key is company, vendor, kind, vendor id).
//   - Safe for concurrent use by several runs.
type Sink interface {
	// Write stores a batch of records.
	Write(ctx context.Context, batch []model.Record) (WriteResult, error)
	// SetAside stores documents that could not be mapped, with their
	// reasons, until a later Write of the same key.
	SetAside(ctx context.Context, items []model.SetAside) error
	// Close releases the sink's resources.
	Close() error
}

// WriteResult counts what a Write did.
type WriteResult struct {
	// Upserted records were inserted or replaced by a newer version.
	Upserted int
	// Skipped records were older than what the sink holds or said the same.
	Skipped int
}

// Add returns the sum of two results.
func (r WriteResult) Add(o WriteResult) WriteResult {
	return WriteResult{Upserted: r.Upserted + o.Upserted, Skipped: r.Skipped + o.Skipped}
}
