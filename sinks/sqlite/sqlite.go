// Package sqlite is the embedded sink: a SQLite database file written with
// the pure-Go modernc.org/sqlite driver (no cgo, no database server), the
// default for local runs and the demo.
//
// It stores the same tables as the PostgreSQL sink (one per canonical kind,
// keyed by company, vendor and vendor id, with typed columns, the canonical
// payload and the vendor document as JSON text) and keeps the same rules:
// one transaction per batch, and an upsert that writes a record when there is
// no row yet, or when its modified time is the stored one or newer and its
// content hash differs (an older time, or the same content, is skipped and
// not rewritten). A Write also removes the set-aside entries (table
// set_aside, written by SetAside) of the keys it stores, in the same
// transaction. The database runs in WAL mode, so readers (a CRM, the demo)
// never block the writer; within a process writes go through one
// connection, and across processes BEGIN IMMEDIATE with a busy timeout
// serialises them.
//
// Schema migrations are embedded and applied at Open, each in a BEGIN
// IMMEDIATE transaction that first checks whether another opener applied it,
// so processes opening or migrating one file at once apply each migration
// once.
//
// Deleted records stay as tombstones (deleted = 1, deleted_at, deleted_via)
// until Purge; each row keeps its parent (parent_kind, parent_id) and
// deleted_hash, the content hash it takes when marked deleted without a new
// version. The children rules of a batch run in its transaction,
// set-based: the batch's parents and the children their sets name are
// passed as one JSON array parameter each (read with json_each; the named
// children go through an indexed temporary table), one statement per parent
// kind and child kind, then one statement per table and level of
// descendants, through the partial index on company, vendor, parent_kind,
// parent_id. Delete marks the named rows with one statement per kind the
// same way. Live pages through the partial index of live rows. The busy timeout is the first statement on every connection (the
// driver runs it before the other pragmas). SQLite still answers
// SQLITE_BUSY without waiting in a few places: under load, about one opener
// in 150 meets it while setting up its connection (journal_mode=WAL and the
// other pragmas) as another opener creates or migrates the file. Such an
// answer is retried with jittered backoff until the busy timeout has passed,
// at Open (connecting, migrating, preparing) and on every write, so an
// opener waits for the others instead of failing.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"

	// The pure-Go SQLite driver, registered as "sqlite".
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded schema migrations.
func Migrations() ([]rows.Migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return rows.LoadMigrations(sub)
}

// timeLayout is how times are stored: UTC, fixed width, so that text order
// is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Options configures Open.
type Options struct {
	// Path is the database file; it is created if missing.
	Path string
	// BusyTimeout is how long a write, or Open, waits for another process's
	// write lock or migration (default 10s).
	BusyTimeout time.Duration
	// Synchronous is the synchronous pragma: NORMAL (the default, durable
	// to the last checkpointed transaction across power loss, safe across
	// crashes in WAL mode) or FULL.
	Synchronous string

	// schemaVersion, when set (by tests), migrates to and writes at that
	// version rather than the latest.
	schemaVersion int
}

// Sink writes canonical records to a SQLite file.
type Sink struct {
	w, r    *sql.DB
	version int
	busy    time.Duration
	// stmts are prepared at Open and read-only afterwards.
	stmts map[model.Kind]*sql.Stmt
	// The set-aside statements (nil before schema version rows.HashSince).
	anySetAside, clearSetAside, putSetAside *sql.Stmt
}

var _ sinks.Sink = (*Sink)(nil)

// Open opens (creating if needed) and migrates the database.
func Open(ctx context.Context, o Options) (*Sink, error) {
	if o.Path == "" {
		return nil, errors.New("sqlite: no database path")
	}
	if strings.ContainsAny(o.Path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain ? or #", o.Path)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	switch strings.ToUpper(o.Synchronous) {
	case "":
		o.Synchronous = "NORMAL"
	case "NORMAL", "FULL":
	default:
		return nil, fmt.Errorf("sqlite: synchronous must be NORMAL or FULL, not %q", o.Synchronous)
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	version := o.schemaVersion
	if version == 0 {
		version = len(ms)
	}
	if version > len(ms) {
		return nil, fmt.Errorf("sqlite: schema version %d is beyond the %d migrations", version, len(ms))
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	// 8 KiB pages halve the page writes of rows carrying JSON documents; it
	// only applies to a new file.
	q.Add("_pragma", "page_size(8192)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+strings.ToUpper(o.Synchronous)+")")
	q.Add("_pragma", "cache_size(-65536)") // 64 MiB page cache
	q.Add("_pragma", "temp_store(MEMORY)")
	wq := url.Values{"_txlock": {"immediate"}}
	for k, v := range q {
		wq[k] = v
	}
	w, err := sql.Open("sqlite", o.Path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", o.Path, err)
	}
	// One writer connection: a process's batches queue for it (honouring
	// their contexts) instead of spinning on SQLITE_BUSY.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Sink{w: w, version: version, busy: o.BusyTimeout, stmts: map[model.Kind]*sql.Stmt{}}
	if err := s.retryBusy(ctx, func() error { return s.migrate(ctx, ms[:version]) }); err != nil {
		_ = w.Close()
		return nil, err
	}
	if err := s.retryBusy(ctx, func() error { return s.prepare(ctx) }); err != nil {
		_ = s.Close()
		return nil, err
	}
	rq := url.Values{}
	for k, v := range q {
		rq[k] = v
	}
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", o.Path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", o.Path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

// Close implements sinks.Sink.
func (s *Sink) Close() error {
	for _, st := range s.stmts {
		_ = st.Close()
	}
	for _, st := range []*sql.Stmt{s.anySetAside, s.clearSetAside, s.putSetAside} {
		if st != nil {
			_ = st.Close()
		}
	}
	var rerr error
	if s.r != nil {
		rerr = s.r.Close()
	}
	return errors.Join(rerr, s.w.Close())
}

// busyRetries counts the SQLITE_BUSY answers retried by retryBusy, for
// tests.
var busyRetries atomic.Int64

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY
// or SQLITE_LOCKED, with any extended code).
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// retryBusy runs f, an all-or-nothing step, again while it fails with
// SQLITE_BUSY, with jittered backoff, until the busy timeout has passed
// since the first attempt or ctx ends. The busy handler makes SQLite wait
// for a lock on its own; this covers the answers it gives without waiting.
func (s *Sink) retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(s.busy)
	wait := 2 * time.Millisecond
	for {
		err := f()
		if err == nil || !isBusy(err) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%w (while retrying: %w)", err, cerr)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w (still busy after %v)", err, s.busy)
		}
		busyRetries.Add(1)
		d := min(wait/2+rand.N(wait/2+1), left) //nolint:gosec // G404: retry jitter, not a secret
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while retrying: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// migrate applies the pending migrations, each in its own immediate
// transaction that checks schema_migrations first, so that several
// processes opening the file at once apply each migration exactly once and
// wait for one another's. It is safe to run again after a failure.
func (s *Sink) migrate(ctx context.Context, ms []rows.Migration) error {
	for _, m := range ms {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) apply(ctx context.Context, m rows.Migration) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: create schema_migrations: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: migrate: read schema_migrations: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
		return fmt.Errorf("sqlite: migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// upsertSQL is the statement that writes one row of a table at schema
// version v: inserted when the key is new; replacing the stored row when the
// modified time is the stored one or newer and the content hash differs
// (before rows.HashSince, only when the time is newer).
func upsertSQL(t *rows.Table, v int) string {
	names := rows.CommonColumnsAt(v)
	names = append(names, rows.TombstoneColumnsAt(v)...)
	for _, c := range t.ColumnsAt(v) {
		names = append(names, c.Name)
	}
	names = append(names, rows.ColSyncedAt)
	var set []string
	for _, n := range names[3:] {
		switch n {
		case rows.ColDeletedAt, rows.ColDeletedVia:
			// Set when the row becomes deleted, kept while it stays
			// deleted, cleared when a live version restores it.
			set = append(set, fmt.Sprintf("%[1]s = CASE WHEN excluded.deleted = 0 THEN NULL WHEN %[2]s.deleted <> 0 THEN coalesce(%[2]s.%[1]s, excluded.%[1]s) ELSE excluded.%[1]s END", n, t.Name))
		default:
			set = append(set, n+" = excluded."+n)
		}
	}
	cond := fmt.Sprintf("excluded.modified_at > %s.modified_at", t.Name)
	if v >= rows.HashSince {
		// A NULL hash (a row stored before the hash existed) differs from
		// every hash.
		cond = fmt.Sprintf("excluded.modified_at >= %[1]s.modified_at AND %[1]s.content_hash IS NOT excluded.content_hash", t.Name)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)\nON CONFLICT (company, vendor, vendor_id) DO UPDATE SET %s\nWHERE %s",
		t.Name, strings.Join(names, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", "),
		strings.Join(set, ", "), cond)
}

// The set-aside statements.
const (
	anySetAsideSQL   = `SELECT EXISTS (SELECT 1 FROM set_aside)`
	clearSetAsideSQL = `DELETE FROM set_aside WHERE company = ? AND vendor = ? AND kind = ? AND vendor_id = ?`
	putSetAsideSQL   = `INSERT INTO set_aside (company, vendor, kind, vendor_id, modified_at, reason, raw, first_seen, last_seen, attempts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (company, vendor, kind, vendor_id) DO UPDATE SET
	modified_at = excluded.modified_at, reason = excluded.reason, raw = excluded.raw,
	last_seen = excluded.last_seen, attempts = set_aside.attempts + 1`
)

// prepare prepares the statements on the writer connection (preparing
// later, while a transaction holds that one connection, would wait for it
// forever). It is safe to run again after a failure.
func (s *Sink) prepare(ctx context.Context) error {
	for i := range rows.Tables {
		t := &rows.Tables[i]
		if s.stmts[t.Kind] != nil {
			continue
		}
		st, err := s.w.PrepareContext(ctx, upsertSQL(t, s.version))
		if err != nil {
			return fmt.Errorf("sqlite: prepare upsert into %s: %w", t.Name, err)
		}
		s.stmts[t.Kind] = st
	}
	if s.version < rows.HashSince {
		return nil
	}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{{&s.anySetAside, anySetAsideSQL}, {&s.clearSetAside, clearSetAsideSQL}, {&s.putSetAside, putSetAsideSQL}} {
		if *p.st != nil {
			continue
		}
		st, err := s.w.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare the set-aside statements: %w", err)
		}
		*p.st = st
	}
	return nil
}

// Write implements sinks.Sink: the batch is written in one transaction, kind
// by kind; a record older than the stored one, or saying the same, is
// skipped, as are superseded duplicates within the batch. The set-aside
// entries of the batch's keys are removed in the same transaction.
func (s *Sink) Write(ctx context.Context, batch []model.Record) (sinks.WriteResult, error) {
	if len(batch) == 0 {
		return sinks.WriteResult{}, nil
	}
	if err := ctx.Err(); err != nil {
		return sinks.WriteResult{}, fmt.Errorf("sqlite: write: %w", err)
	}
	groups, _, err := rows.Plan(batch)
	if err != nil {
		return sinks.WriteResult{}, fmt.Errorf("sqlite: %w", err)
	}
	var rules rows.Rules
	if s.version >= rows.DeletionSince {
		rules = rows.PlanRules(groups)
	}
	var upserted int
	err = s.retryBusy(ctx, func() error {
		var err error
		upserted, err = s.writeOnce(ctx, groups, rules)
		return err
	})
	if err != nil {
		return sinks.WriteResult{}, err
	}
	return sinks.WriteResult{Upserted: upserted, Skipped: len(batch) - upserted}, nil
}

func (s *Sink) writeOnce(ctx context.Context, groups []rows.Group, rules rows.Rules) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	// The common case is an empty set-aside table: one indexed probe per
	// batch instead of a delete per record. The transaction holds the write
	// lock, so no other writer can set a document aside meanwhile.
	var clear *sql.Stmt
	if s.anySetAside != nil {
		var some bool
		if err := tx.StmtContext(ctx, s.anySetAside).QueryRowContext(ctx).Scan(&some); err != nil {
			return 0, fmt.Errorf("sqlite: read set_aside: %w", err)
		}
		if some {
			clear = tx.StmtContext(ctx, s.clearSetAside)
		}
	}
	upserted := 0
	syncedAt := time.Now().UTC().Format(timeLayout)
	for _, g := range groups {
		n, err := s.writeGroup(ctx, tx, g, syncedAt, clear)
		if err != nil {
			return 0, err
		}
		upserted += n
	}
	if !rules.Empty() {
		if err := s.applyRules(ctx, tx, rules, syncedAt); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: commit: %w", err)
	}
	return upserted, nil
}

func (s *Sink) writeGroup(ctx context.Context, tx *sql.Tx, g rows.Group, syncedAt string, clear *sql.Stmt) (int, error) {
	st := tx.StmtContext(ctx, s.stmts[g.Table.Kind])
	cols := g.Table.ColumnsAt(s.version)
	common := len(rows.CommonColumnsAt(s.version))
	tomb := s.version >= rows.DeletionSince
	if tomb {
		common += len(rows.TombstoneColumnsAt(s.version))
	}
	args := make([]any, common+len(cols)+1)
	// synced_at: one time per batch, like now() in PostgreSQL.
	args[len(args)-1] = syncedAt
	upserted := 0
	for i, r := range g.Records {
		if i%128 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("sqlite: write %s: %w", g.Table.Name, err)
			}
		}
		row, err := g.Table.Row(r, cols)
		if err != nil {
			return 0, fmt.Errorf("sqlite: %w", err)
		}
		args[0], args[1], args[2] = row.Company, row.Vendor, row.VendorID
		args[3] = row.ModifiedAt.Format(timeLayout)
		args[4] = boolInt(row.Deleted)
		args[5] = string(row.Data)
		args[6] = nil
		if row.Raw != nil {
			args[6] = string(row.Raw)
		}
		if common > len(rows.CommonColumns) {
			args[7] = row.Hash
		}
		if tomb {
			// parent_kind, parent_id, deleted_hash, then deleted_at (the
			// write's time for a deleted record) and deleted_via.
			args[8], args[9], args[10] = nullable(row.ParentKind), nullable(row.Parent), row.DeletedHash
			args[11], args[12] = nil, nullable(row.Via)
			if row.Deleted {
				args[11] = syncedAt
			}
		}
		for j, v := range row.Values {
			args[common+j] = sqlValue(v)
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("sqlite: upsert %s: %w", rows.Describe(r), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlite: upsert %s: %w", rows.Describe(r), err)
		}
		upserted += int(n)
		if clear != nil {
			if _, err := clear.ExecContext(ctx, row.Company, row.Vendor, string(r.Kind), row.VendorID); err != nil {
				return 0, fmt.Errorf("sqlite: clear the set-aside entry of %s: %w", rows.Describe(r), err)
			}
		}
	}
	return upserted, nil
}

// SetAside implements sinks.Sink: the documents are stored in one
// transaction in the set_aside table, replacing the reason, document and
// modified time of a key already there, bumping its attempts and last_seen
// and keeping its first_seen.
func (s *Sink) SetAside(ctx context.Context, items []model.SetAside) error {
	if len(items) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: set aside: %w", err)
	}
	if s.putSetAside == nil {
		return fmt.Errorf("sqlite: set aside: schema version %d has no set_aside table (it came with version %d)", s.version, rows.HashSince)
	}
	planned, err := rows.PlanSetAside(items)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.retryBusy(ctx, func() error { return s.setAsideOnce(ctx, planned) })
}

func (s *Sink) setAsideOnce(ctx context.Context, planned []rows.SetAsideRow) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: set aside: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	st := tx.StmtContext(ctx, s.putSetAside)
	now := time.Now().UTC().Format(timeLayout)
	for i, r := range planned {
		if i%128 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sqlite: set aside: %w", err)
			}
		}
		var at, raw any
		if !r.ModifiedAt.IsZero() {
			at = r.ModifiedAt.Format(timeLayout)
		}
		if r.Raw != nil {
			raw = string(r.Raw)
		}
		if _, err := st.ExecContext(ctx, r.Company, r.Vendor, r.Kind, r.VendorID, at, r.Reason, raw, now, now); err != nil {
			return fmt.Errorf("sqlite: set aside %s/%s/%s/%s: %w", r.Company, r.Vendor, r.Kind, r.VendorID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set aside: commit: %w", err)
	}
	return nil
}

// SetAsideEntry is a stored set-aside document.
type SetAsideEntry struct {
	model.SetAside
	// FirstSeen and LastSeen are when it was first and last set aside.
	FirstSeen, LastSeen time.Time
	// Attempts counts the SetAside calls that stored it.
	Attempts int
}

// GetSetAside returns the set-aside document of a key.
func (s *Sink) GetSetAside(ctx context.Context, k model.Key) (SetAsideEntry, bool, error) {
	var (
		modified, raw       sql.NullString
		reason, first, last string
		attempts            int
	)
	err := s.r.QueryRowContext(ctx, `SELECT modified_at, reason, raw, first_seen, last_seen, attempts FROM set_aside
WHERE company = ? AND vendor = ? AND kind = ? AND vendor_id = ?`, k.Company, k.Vendor, string(k.Kind), k.VendorID).
		Scan(&modified, &reason, &raw, &first, &last, &attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return SetAsideEntry{}, false, nil
	}
	if err != nil {
		return SetAsideEntry{}, false, fmt.Errorf("sqlite: read set_aside: %w", err)
	}
	e := SetAsideEntry{SetAside: model.SetAside{Company: k.Company, Vendor: k.Vendor, Kind: k.Kind, VendorID: k.VendorID, Reason: reason}, Attempts: attempts}
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&e.ModifiedAt, modified.String}, {&e.FirstSeen, first}, {&e.LastSeen, last}} {
		if f.src == "" {
			continue
		}
		if *f.dst, err = time.Parse(timeLayout, f.src); err != nil {
			return SetAsideEntry{}, false, fmt.Errorf("sqlite: read set_aside: %w", err)
		}
	}
	if raw.Valid {
		e.Raw = []byte(raw.String)
	}
	return e, true, nil
}

func sqlValue(v any) any {
	switch x := v.(type) {
	case bool:
		return boolInt(x)
	case time.Time:
		return x.Format(timeLayout)
	}
	return v
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Get returns the stored version of a record, with its parent and, for a
// deleted one, how the deletion was learned (from rows.DeletionSince on).
func (s *Sink) Get(ctx context.Context, k model.Key) (model.Record, bool, error) {
	t, ok := rows.Lookup(k.Kind)
	if !ok {
		return model.Record{}, false, fmt.Errorf("sqlite: unknown kind %q", k.Kind)
	}
	var (
		modified                string
		deleted                 int64
		data                    string
		raw                     sql.NullString
		parentKind, parent, via sql.NullString
	)
	cols, dst := "modified_at, deleted, data, raw", []any{&modified, &deleted, &data, &raw}
	if s.version >= rows.DeletionSince {
		cols += ", parent_kind, parent_id, deleted_via"
		dst = append(dst, &parentKind, &parent, &via)
	}
	err := s.r.QueryRowContext(ctx, "SELECT "+cols+" FROM "+t.Name+" WHERE company = ? AND vendor = ? AND vendor_id = ?",
		k.Company, k.Vendor, k.VendorID).Scan(dst...)
	if errors.Is(err, sql.ErrNoRows) {
		return model.Record{}, false, nil
	}
	if err != nil {
		return model.Record{}, false, fmt.Errorf("sqlite: read %s: %w", t.Name, err)
	}
	at, err := time.Parse(timeLayout, modified)
	if err != nil {
		return model.Record{}, false, fmt.Errorf("sqlite: read %s: modified_at: %w", t.Name, err)
	}
	p, err := rows.Decode(k.Kind, []byte(data))
	if err != nil {
		return model.Record{}, false, fmt.Errorf("sqlite: read %s: %w", t.Name, err)
	}
	r := model.Record{Company: k.Company, Vendor: k.Vendor, Kind: k.Kind, VendorID: k.VendorID, ModifiedAt: at, Deleted: deleted != 0, Data: p}
	if raw.Valid {
		r.Raw = []byte(raw.String)
	}
	if parentKind.Valid && parent.Valid {
		r.ParentKind, r.Parent = model.Kind(parentKind.String), parent.String
	}
	if via.Valid && r.Deleted {
		r.DeletedVia = model.DeletionSource(via.String)
	}
	return r, true, nil
}

// Count returns the number of stored rows per company and kind.
func (s *Sink) Count(ctx context.Context) (map[string]map[model.Kind]int, error) {
	var parts []string
	for _, t := range rows.Tables {
		parts = append(parts, fmt.Sprintf("SELECT '%s', company, count(*) FROM %s GROUP BY company", t.Kind, t.Name))
	}
	rs, err := s.r.QueryContext(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		return nil, fmt.Errorf("sqlite: count: %w", err)
	}
	defer rs.Close()
	out := map[string]map[model.Kind]int{}
	for rs.Next() {
		var (
			kind, company string
			n             int
		)
		if err := rs.Scan(&kind, &company, &n); err != nil {
			return nil, fmt.Errorf("sqlite: count: %w", err)
		}
		if out[company] == nil {
			out[company] = map[model.Kind]int{}
		}
		out[company][model.Kind(kind)] = n
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count: %w", err)
	}
	return out, nil
}

// SchemaVersion returns the highest applied migration.
func (s *Sink) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return int(v.Int64), nil
}
