// Package sinks defines the CRM side of a sync: where canonical records land.
// Implementations live in sub-packages (postgres, sqlite, webhook, memory).
package sinks

import (
	"context"
	"errors"
	"time"

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
//   - Tombstones, not removals: a deleted record keeps its row, with the
//     deleted flag, when and how the deletion was learned
//     (deleted_at, deleted_via); a later write of a live version that is not
//     older restores it. Only Purge removes rows.
//   - Children follow their parent: a Write of a record with Children
//     (model.ChildSet) that is not older than the stored version marks
//     deleted, in the same transaction, the stored live records of each
//     set's kind whose Parent is the record's VendorID and that the set does
//     not name (via model.DeletedFromParent, at the write's time); a Write
//     of a record that is Deleted, and Delete, mark its live children
//     deleted too (model.DeletedWithParent).
type Sink interface {
	// Write stores a batch of records.
	Write(ctx context.Context, batch []model.Record) (WriteResult, error)
	// SetAside stores documents that could not be mapped, with their
	// reasons, until a later Write of the same key.
	SetAside(ctx context.Context, items []model.SetAside) error
	// Delete marks the named records deleted (tombstones: content kept,
	// deleted flag set, At and Via stored) with their live children, and
	// returns how many live records it marked, children included. Keys
	// that are absent or already deleted are skipped. Atomic: on error
	// nothing is marked.
	Delete(ctx context.Context, tombstones []model.Tombstone) (int, error)
	// Live calls fn with every live record of one company, vendor and kind,
	// in no particular order, with its stored modified time. It returns
	// ErrNoListing where the sink cannot read back what it holds (a
	// webhook): reconciliation and absence detection are then off, and say
	// so in status. fn's error stops the listing and is returned.
	Live(ctx context.Context, s Scope, fn func(model.LiveRecord) error) error
	// Purge removes the tombstones of the company and vendor deleted before
	// the given time (the optional retention), and returns how many. A
	// sink that cannot (a webhook) returns 0 and nil.
	Purge(ctx context.Context, company, vendor string, before time.Time) (int, error)
	// Close releases the sink's resources.
	Close() error
}

// Scope names the records of one kind of one company from one vendor.
type Scope struct {
	Company string
	Vendor  string
	Kind    model.Kind
}

// ErrNoListing is returned by Live when the sink cannot read back the
// records it holds.
var ErrNoListing = errors.New("this sink cannot list the records it holds")

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
