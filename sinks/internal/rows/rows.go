// Package rows maps canonical records to the table rows the database sinks
// (postgres, sqlite) store: one table per kind, the key and metadata columns
// every table has, and the typed columns a CRM queries. Both sinks build their
// statements from this one description, and their tests check that the
// embedded migrations create exactly these columns.
package rows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the logical type of a typed column; each sink maps it to its own
// SQL type.
type Type int

// The column types.
const (
	Text  Type = iota // string; "" is stored as NULL
	Bool              // bool
	Float             // float64 (quantities, rates)
	Money             // model.Decimal, exact; "" is stored as NULL
	Time              // time.Time in UTC, microsecond precision; nil is NULL
)

// Column is one typed column of a table.
type Column struct {
	// Name is the SQL column name.
	Name string
	// Type is the logical type.
	Type Type
	// Since is the schema version (migration) that added the column.
	Since int
	// value extracts the column value from a payload of the table's type. It
	// returns nil for SQL NULL, otherwise string, bool, float64 or time.Time.
	value func(model.Payload) (any, error)
}

// Table describes the table of one canonical kind.
type Table struct {
	Kind model.Kind
	// Name is the SQL table name (the kind's name).
	Name string
	// Columns are the typed columns, after the common ones.
	Columns []Column
	// newPayload returns an empty payload of the kind's type.
	newPayload func() model.Payload
	// is reports whether a payload has the kind's Go type.
	is func(model.Payload) bool
}

// The common columns every table has, in this order, before the typed ones.
const (
	ColCompany    = "company"
	ColVendor     = "vendor"
	ColVendorID   = "vendor_id"
	ColModifiedAt = "modified_at"
	ColDeleted    = "deleted"
	ColData       = "data" // the canonical payload as JSON
	ColRaw        = "raw"  // the vendor's document as JSON, or NULL
	ColSyncedAt   = "synced_at"
	// ColHash is the content hash (model.HashContent of the kind, deleted
	// flag, data and raw), since schema version HashSince. Rows stored
	// before that version hold NULL, which differs from every hash.
	ColHash = "content_hash"
)

// HashSince is the schema version that added the content_hash column and
// the set_aside table.
const HashSince = 3

// The tombstone columns, since schema version DeletionSince.
const (
	// ColParentKind and ColParentID name the record's parent
	// (model.Record.ParentKind and Parent), NULL for a record read on its
	// own.
	ColParentKind = "parent_kind"
	ColParentID   = "parent_id"
	// ColDeletedHash is the content hash the row takes when it is marked
	// deleted without a new version (Sink.Delete, a parent's children
	// rules): model.HashContent of the kind, true, data and raw. NULL for
	// rows stored before DeletionSince (marking one deleted then stores a
	// NULL hash, which differs from every hash).
	ColDeletedHash = "deleted_hash"
	// ColDeletedAt is when the deletion of a deleted row was learned (our
	// clock), NULL for a live row; ColDeletedVia how
	// (model.DeletionSource).
	ColDeletedAt  = "deleted_at"
	ColDeletedVia = "deleted_via"
)

// DeletionSince is the schema version that added parent_kind, parent_id,
// deleted_hash, deleted_at and deleted_via and the indexes for children and
// live rows.
const DeletionSince = 4

// CommonColumnsAt returns the columns written from the record for every
// record at schema version v: CommonColumns, then content_hash from
// HashSince on, then parent_kind, parent_id and deleted_hash from
// DeletionSince on. The tombstone columns (TombstoneColumnsAt) follow rules
// of their own.
func CommonColumnsAt(v int) []string {
	out := append([]string(nil), CommonColumns...)
	if v >= HashSince {
		out = append(out, ColHash)
	}
	if v >= DeletionSince {
		out = append(out, ColParentKind, ColParentID, ColDeletedHash)
	}
	return out
}

// TombstoneColumnsAt returns deleted_at and deleted_via from
// DeletionSince on: a write sets them when a row becomes deleted, keeps
// them while it stays deleted and clears them when a live version restores
// it.
func TombstoneColumnsAt(v int) []string {
	if v >= DeletionSince {
		return []string{ColDeletedAt, ColDeletedVia}
	}
	return nil
}

// CommonColumns lists the columns written for every record, in the order Row
// values start with: company, vendor, vendor_id, modified_at, deleted, data,
// raw. synced_at is set by the database.
var CommonColumns = []string{ColCompany, ColVendor, ColVendorID, ColModifiedAt, ColDeleted, ColData, ColRaw}

// ColumnsAt returns the typed columns that exist at schema version v.
func (t *Table) ColumnsAt(v int) []Column {
	out := make([]Column, 0, len(t.Columns))
	for _, c := range t.Columns {
		if c.Since <= v {
			out = append(out, c)
		}
	}
	return out
}

// NewPayload returns an empty payload of the table's kind, for decoding.
func (t *Table) NewPayload() model.Payload { return t.newPayload() }

var byKind = func() map[model.Kind]*Table {
	m := make(map[model.Kind]*Table, len(Tables))
	for i := range Tables {
		m[Tables[i].Kind] = &Tables[i]
	}
	return m
}()

// Lookup returns the table of a kind.
func Lookup(k model.Kind) (*Table, bool) {
	t, ok := byKind[k]
	return t, ok
}

// Decode decodes a stored canonical payload of a kind.
func Decode(k model.Kind, data []byte) (model.Payload, error) {
	t, ok := Lookup(k)
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", k)
	}
	p := t.newPayload()
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", k, err)
	}
	return p, nil
}

// Row is a record prepared for storing.
type Row struct {
	Company, Vendor, VendorID string
	// ModifiedAt is the record's time in UTC, truncated to microseconds (the
	// precision both databases keep), so that comparisons agree everywhere.
	ModifiedAt time.Time
	Deleted    bool
	// Data is the canonical payload as JSON.
	Data []byte
	// Raw is the vendor document, or nil.
	Raw []byte
	// Hash is the content hash: model.HashContent over Data and Raw, equal
	// to model.Record.ContentHash.
	Hash string
	// DeletedHash is the content hash of the same content marked deleted
	// (equal to Hash for a deleted record).
	DeletedHash string
	// ParentKind and Parent name the record's parent; both empty for a
	// record read on its own.
	ParentKind, Parent string
	// Via is how the deletion of a deleted record was learned (the
	// record's DeletedVia, model.DeletedByVendor when it gives none);
	// empty for a live record.
	Via string
	// Values holds the typed columns' values, in the order of the columns
	// passed to Row.
	Values []any
}

// StoredTime is the form in which sinks store and compare modified times.
func StoredTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Row validates a record of the table's kind and prepares it with the given
// typed columns (from ColumnsAt). The error names the record but never its
// data.
func (t *Table) Row(r *model.Record, cols []Column) (Row, error) {
	if err := ValidateKey(r); err != nil {
		return Row{}, err
	}
	if r.Kind != t.Kind {
		return Row{}, fmt.Errorf("%s: kind %q stored in table %s", Describe(r), r.Kind, t.Name)
	}
	if r.Data == nil {
		return Row{}, fmt.Errorf("%s: no data", Describe(r))
	}
	if !t.is(r.Data) {
		return Row{}, fmt.Errorf("%s: data of type %T is not a %s payload", Describe(r), r.Data, t.Kind)
	}
	if r.ModifiedAt.IsZero() {
		return Row{}, fmt.Errorf("%s: no modified time", Describe(r))
	}
	if y := r.ModifiedAt.UTC().Year(); y < 1 || y > 9999 {
		return Row{}, fmt.Errorf("%s: modified time year %d out of range", Describe(r), y)
	}
	row := Row{
		Company: r.Company, Vendor: r.Vendor, VendorID: r.VendorID,
		ModifiedAt: StoredTime(r.ModifiedAt),
		Deleted:    r.Deleted,
	}
	if len(r.Raw) > 0 {
		if !json.Valid(r.Raw) {
			return Row{}, fmt.Errorf("%s: raw vendor document is not valid JSON", Describe(r))
		}
		row.Raw = r.Raw
	}
	data, err := json.Marshal(r.Data)
	if err != nil {
		return Row{}, fmt.Errorf("%s: encode data: %w", Describe(r), err)
	}
	row.Data = data
	live, deleted := hashes(r.Kind, data, r.Raw)
	row.Hash, row.DeletedHash = live, deleted
	if r.Deleted {
		row.Hash = deleted
	}
	if err := checkDeletionFields(r); err != nil {
		return Row{}, err
	}
	row.ParentKind, row.Parent = string(r.ParentKind), r.Parent
	if r.Deleted {
		row.Via = string(r.DeletedVia)
		if row.Via == "" {
			row.Via = string(model.DeletedByVendor)
		}
	}
	row.Values = make([]any, len(cols))
	for i, c := range cols {
		v, err := c.value(r.Data)
		if err != nil {
			return Row{}, fmt.Errorf("%s: %s: %w", Describe(r), c.Name, err)
		}
		row.Values[i] = v
	}
	return row, nil
}

// maxKeyLen bounds company, vendor and vendor id.
const maxKeyLen = 512

// ValidateKey checks the key fields and the kind of a record.
func ValidateKey(r *model.Record) error {
	for _, f := range []struct{ name, v string }{{"company", r.Company}, {"vendor", r.Vendor}, {"vendor id", r.VendorID}} {
		switch {
		case f.v == "":
			return fmt.Errorf("%s: empty %s", Describe(r), f.name)
		case len(f.v) > maxKeyLen:
			return fmt.Errorf("%s: %s longer than %d bytes", Describe(r), f.name, maxKeyLen)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%s: %s is not valid UTF-8", Describe(r), f.name)
		}
	}
	if _, ok := Lookup(r.Kind); !ok {
		return fmt.Errorf("%s: unknown kind %q", Describe(r), r.Kind)
	}
	return nil
}

// Describe names a record in errors: company/vendor/kind/vendor id, with
// each part shortened.
func Describe(r *model.Record) string {
	return fmt.Sprintf("record %q/%q/%q/%q", short(r.Company), short(r.Vendor), short(string(r.Kind)), short(r.VendorID))
}

func short(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// maxDecimalLen bounds a decimal's text.
const maxDecimalLen = 80

// ErrDecimal is wrapped by errors for malformed decimals.
var ErrDecimal = errors.New("invalid decimal")

// ValidDecimal checks the canonical decimal form: an optional minus sign,
// digits, and optionally a point followed by digits ("12.5", "-0.01").
func ValidDecimal(d model.Decimal) error {
	s := string(d)
	if len(s) > maxDecimalLen {
		return fmt.Errorf("%w: longer than %d characters", ErrDecimal, maxDecimalLen)
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start {
		return fmt.Errorf("%w: %q", ErrDecimal, short(s))
	}
	if i < len(s) && s[i] == '.' {
		i++
		frac := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == frac {
			return fmt.Errorf("%w: %q", ErrDecimal, short(s))
		}
	}
	if i != len(s) {
		return fmt.Errorf("%w: %q", ErrDecimal, short(s))
	}
	return nil
}

var errTimeRange = errors.New("time out of range (years 1 to 9999)")
