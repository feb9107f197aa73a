// Package engine runs one sync of one ErpSync: it reads each entity stream of
// a connector page by page, with the vendor's modified-since filter set to the
// entity's watermark, writes the records to a sink in batches, and
// checkpoints its progress so that an interrupted run resumes where it was.
//
// The engine knows nothing of Kubernetes: the controller turns EntityState
// into ErpSync status and back.
package engine

import (
	"context"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// DefaultOverlap is how far before the start of an entity's pass its next
// window begins, for clock skew and unclear boundary inclusivity.
const DefaultOverlap = 2 * time.Minute

// DefaultCheckpointEvery bounds how often progress is checkpointed.
const DefaultCheckpointEvery = 5 * time.Second

// DefaultMaxFutureSkew bounds how far ahead of our clock a vendor's modified
// times may be (vendor clocks run ahead by minutes at most).
const DefaultMaxFutureSkew = 15 * time.Minute

// DefaultBatchSize is how many records go to the sink in one write.
const DefaultBatchSize = 500

// DefaultMaxPassRepeats bounds how often a pass whose total changed
// underneath it is repeated before the engine accepts it.
const DefaultMaxPassRepeats = 3

// maxEmptyPages bounds a run of pages that hold no record yet claim more
// follow, so that a vendor stuck in that state cannot keep a run forever.
const maxEmptyPages = 20

// EntityState is what the engine remembers of one entity between runs.
type EntityState struct {
	Name model.Kind
	// Watermark is where the next incremental window starts: the vendor time
	// at which the last completed pass started reading, minus the overlap.
	// Zero means no pass has completed: the next pass reads everything.
	Watermark time.Time
	// Resume is set while a pass is interrupted.
	Resume *Checkpoint
	// LastRunRecords is the number of records the last completed pass read.
	LastRunRecords int64
	// LastCompleted is when the last pass of the entity completed.
	LastCompleted time.Time
	// LastRunCalls is the number of API calls the last completed pass made
	// (those of the part after a resume, for a resumed pass).
	LastRunCalls int64
	// LastRunIncremental is true when the last completed pass read only
	// changes (it had a modified-since filter).
	LastRunIncremental bool
	// SetAside is the number of documents the last completed pass set aside
	// (could not map); SetAsideIDs names the first few (at most
	// MaxSetAsideIDs). They are stored in the sink and read again by every
	// later pass until they map: SetAsideSince, the earliest modified time
	// among them, holds the entity's next window open (zero: none, or none
	// with a modified time).
	SetAside      int64
	SetAsideIDs   []string
	SetAsideSince time.Time
	// Incomplete, when not empty, says why the last pass did not advance
	// the watermark although it read to the end (it read fewer distinct
	// records than the vendor reported, after every repeat).
	Incomplete string
	// Held is a deletion the mass-deletion guard held back from the last
	// complete pass or reconciliation of the entity: it waits for a
	// person (Run.ApproveHeld) or a later pass that deletes less.
	Held *HeldDeletion
	// Deletions is what the last complete full pass inferred about records
	// gone from the ERP (nil: no full pass yet, or nothing to say).
	Deletions *DeletionReport
	// Reconcile is what the last reconciliation of the entity found.
	Reconcile *ReconcileReport
}

// HeldDeletion is a set of inferred deletions that the mass-deletion guard
// did not apply.
type HeldDeletion struct {
	// Kind is the canonical kind whose records would be deleted.
	Kind model.Kind
	// Candidates is how many live records would have been marked deleted;
	// Live how many the CRM held.
	Candidates, Live int64
	// Via is how the deletion was learned.
	Via model.DeletionSource
	// At is when it was held.
	At time.Time
}

// DeletionReport is what one complete full pass inferred.
type DeletionReport struct {
	At time.Time
	// Deleted counts the records marked deleted (children included).
	Deleted int64
	// Skipped says why no inferred deletion was applied ("" when they
	// were): a fault retried during the pass, a resumed pass, a sink that
	// cannot list.
	Skipped string
}

// ReconcileReport is what one reconciliation of an entity found.
type ReconcileReport struct {
	// At is when it completed (or was postponed).
	At time.Time
	// Listed is the number of documents the vendor's id listing held;
	// Live the number of live records of the kind the CRM held.
	Listed, Live int64
	// Missing counts live CRM records the listing did not hold; Deleted
	// how many records were marked deleted (children included), which is
	// 0 when the guard held them or the listing could not be trusted.
	Missing, Deleted int64
	// Absent counts listed documents the CRM lacked (or held deleted);
	// Drifted listed documents whose CRM version differed; Repaired the
	// records the repair reads wrote.
	Absent, Drifted, Repaired int64
	// Calls is what it cost.
	Calls int64
	// Note says why deletions were not applied, or why it was postponed
	// ("" when everything applied).
	Note string
	// Postponed is set when it did not run (quota budget).
	Postponed bool
}

// MaxSetAsideIDs bounds EntityState.SetAsideIDs.
const MaxSetAsideIDs = 5

// Checkpoint is the position of an unfinished pass.
type Checkpoint struct {
	// Since is the modified-since filter of the pass (zero: full read).
	Since time.Time
	// StartedAt is the vendor time at which the pass started reading; it
	// becomes the watermark (minus the overlap) when the pass completes.
	StartedAt time.Time
	// Page is the last page whose records were written.
	Page int
	// Cursor is that page's Next: where the pass continues (keyset
	// readers); empty for page-numbered readers.
	Cursor string
	// Repeats counts the passes of this window that were read again
	// because the vendor's list shifted under them; it survives runs, so
	// that the repeat limit counts the pass, not the run.
	Repeats int
	// Distinct is the number of distinct documents the pass has read so far
	// (across its repeats), compared with Total at the end of the pass.
	Distinct int64
	// Records is the number of records written so far in the pass.
	Records int64
	// Total is the vendor's record count at the pass's first page, or -1.
	Total int
}

// Progress describes a run under way.
type Progress struct {
	Entity  model.Kind
	Records int64
	Calls   int64
}

// CheckpointFunc persists the state of a run under way. The engine calls it
// at most every CheckpointEvery while pages complete, and when an entity
// that wrote something (or finished an interrupted pass) completes; a quiet
// entity's new state travels in the run's result. An error from it fails
// the run.
type CheckpointFunc func(ctx context.Context, state []EntityState, p Progress) error

// Run is one sync of one ErpSync.
type Run struct {
	// Company and Vendor scope what absence detection and reconciliation
	// compare in the sink (the ErpSync's companyId and connector type).
	// Empty: taken from the first record a run reads.
	Company   string
	Vendor    string
	Connector connectors.Connector
	Sink      sinks.Sink
	// Entities restricts the run to these streams; empty means all.
	Entities []model.Kind
	// Full ignores every watermark: each entity is read in full.
	Full bool
	// FullEntities ignores the watermarks of these entities only (a full
	// resync of some entities): they are read in full, with the absence
	// detection of a full pass, and the others incrementally. Each must be
	// one of the run's streams, and none is skipped by SkipCompletedSince.
	// Full covers every entity.
	FullEntities []model.Kind
	// SkipCompletedSince, when set, skips the entities that completed a pass
	// at or after it and have no interrupted pass: resuming an interrupted
	// run does not read again what it had finished.
	SkipCompletedSince time.Time
	// State is the per-entity state from the last run.
	State []EntityState
	// Overlap is subtracted from the start of a pass to give the next
	// window; 0 means DefaultOverlap, negative means none.
	Overlap time.Duration
	// BatchSize defaults to DefaultBatchSize.
	BatchSize int
	// Checkpoint may be nil.
	Checkpoint CheckpointFunc
	// CheckpointEvery defaults to DefaultCheckpointEvery.
	CheckpointEvery time.Duration
	// MaxPassRepeats bounds the repeats of a pass that shifted or read
	// fewer distinct documents than the vendor's total; a short pass whose
	// repeats keep finding new documents may go on to 20. 0 means
	// DefaultMaxPassRepeats, negative means no repeat at all.
	MaxPassRepeats int
	// Now defaults to time.Now.
	Now func() time.Time
	// MaxFutureSkew is how far ahead of Now a record's modified time may
	// be; later ones are clamped to Now plus it. 0 means
	// DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration
	// MaxDeleteShare is the share of an entity's live records that one
	// complete pass or reconciliation may mark deleted; a larger set is
	// held (EntityState.Held) until a person approves it. 0 means
	// DefaultMaxDeleteShare; negative lifts the guard.
	MaxDeleteShare float64
	// ApproveHeld lists the entities whose held deletion a person
	// approved: their next inferred deletion applies if it is not larger
	// than the held one by more than a tenth (at least 10 records).
	ApproveHeld []model.Kind
	Log         logr.Logger
}

// DefaultMaxDeleteShare is the mass-deletion guard's default: a pass that
// would mark more than a tenth of an entity deleted applies none of it.
const DefaultMaxDeleteShare = 0.10

// Result is what a run did. On error it still holds the state to persist:
// finished entities advanced, unfinished ones kept at their checkpoint.
type Result struct {
	State    []EntityState
	Upserted int64
	Skipped  int64
	Calls    int64
	// Records counts records read per entity in this run.
	Records map[model.Kind]int64
	// Changed counts, per entity stream, the records the sink wrote as
	// new or changed (not those it skipped as unchanged).
	Changed map[model.Kind]int64
	// Full is true when every entity of the run was read without a filter.
	Full bool
	// SetAside counts the documents set aside in this run.
	SetAside int64
	// Incomplete lists the entities whose pass read to the end but did not
	// advance their watermark (see EntityState.Incomplete).
	Incomplete []model.Kind
	// Deleted counts the records marked deleted by inference (absent from
	// a complete full read, or from a reconciliation), children included.
	Deleted int64
	// Held lists the deletions the mass-deletion guard held in this run.
	Held []HeldDeletion
}
