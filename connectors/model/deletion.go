package model

import "time"

// DeletionSource says how the operator learned that a record is gone from
// the ERP. Sinks keep it beside the deleted flag of a tombstone, so that a
// CRM user (and a support engineer) can tell a vendor's own marker from a
// deletion the operator inferred.
type DeletionSource string

// The ways a deletion is learned, cheapest first.
const (
	// DeletedByVendor: the vendor's own marker (deleted, archived,
	// obsolete, voided, deleted_at) on a record it still serves.
	DeletedByVendor DeletionSource = "vendor"
	// DeletedFromParent: the record was read inside a parent document (a
	// customer's contacts, a product's prices or variants, an order's
	// lines) and a later version of that parent no longer holds it.
	DeletedFromParent DeletionSource = "parent"
	// DeletedWithParent: the record's parent was marked deleted.
	DeletedWithParent DeletionSource = "parent-deleted"
	// DeletedAbsentFromFullRead: the entity is read in full, and a complete
	// pass did not hold the record.
	DeletedAbsentFromFullRead DeletionSource = "absent"
	// DeletedByReconciliation: the vendor's complete id listing of the
	// entity did not hold the record.
	DeletedByReconciliation DeletionSource = "reconcile"
	// DeletedByWebhook: the vendor's signed webhook said the record was
	// deleted and a read by id found the vendor no longer serves it.
	DeletedByWebhook DeletionSource = "webhook"
)

// ChildSet names every child of one kind that a parent document holds now.
// A sink that writes the parent (not an older version of it) marks deleted,
// in the same transaction, its stored live records of Kind whose parent is
// the written record (Parent its VendorID, ParentKind its Kind) and whose
// VendorID is not in IDs; an empty IDs deletes them all.
type ChildSet struct {
	Kind Kind     `json:"kind"`
	IDs  []string `json:"ids"`
}

// Tombstone marks one stored record deleted without changing its content:
// the deleted flag is set, DeletedAt and Via stored, and the row stays (a
// later write of a live version restores it).
type Tombstone struct {
	Key Key
	// At is when the deletion was learned (our clock).
	At  time.Time
	Via DeletionSource
}

// LiveRecord is one live (not deleted) record a sink holds, with its
// stored version: what reconciliation compares with the vendor's listing.
type LiveRecord struct {
	VendorID   string
	ModifiedAt time.Time
}
