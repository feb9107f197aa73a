// Package sqlite is the embedded sink: a SQLite database file written with
// the pure-Go modernc.org/sqlite driver (no cgo, no database server), the
// default for local runs and the demo.
//
// It stores the same tables as the PostgreSQL sink (one per canonical kind,
// keyed by company, vendor and vendor id, with typed columns, the canonical
// payload and the vendor document as JSON text) and keeps the same rules:
// one transaction per batch, and an upsert that never replaces a row with an
// older modified time. The database runs in WAL mode, so readers (a CRM, the
// demo) never block the writer; within a process writes go through one
// connection, and across processes BEGIN IMMEDIATE with a busy timeout
// serialises them. Schema migrations are embedded and applied at Open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"

	// The pure-Go SQLite driver, registered as "sqlite".
	_ "modernc.org/sqlite"
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
	// BusyTimeout is how long a write waits for another process's write
	// lock (default 10s).
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
	// stmts are prepared at Open and read-only afterwards.
	stmts map[model.Kind]*sql.Stmt
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
	s := &Sink{w: w, version: version, stmts: map[model.Kind]*sql.Stmt{}}
	if err := s.migrate(ctx, ms[:version]); err != nil {
		_ = w.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
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
	var rerr error
	if s.r != nil {
		rerr = s.r.Close()
	}
	return errors.Join(rerr, s.w.Close())
}

// migrate applies the pending migrations, each in its own immediate
// transaction, so that several processes opening the file at once apply
// each migration exactly once.
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

// upsertSQL is the statement that writes one row of a table.
func upsertSQL(t *rows.Table, cols []rows.Column) string {
	names := append([]string(nil), rows.CommonColumns...)
	for _, c := range cols {
		names = append(names, c.Name)
	}
	names = append(names, rows.ColSyncedAt)
	var set []string
	for _, n := range names[3:] {
		set = append(set, n+" = excluded."+n)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)\nON CONFLICT (company, vendor, vendor_id) DO UPDATE SET %s\nWHERE excluded.modified_at > %s.modified_at",
		t.Name, strings.Join(names, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", "),
		strings.Join(set, ", "), t.Name)
}

// prepare prepares the upsert of every table on the writer connection
// (preparing later, while a transaction holds that one connection, would
// wait for it forever).
func (s *Sink) prepare(ctx context.Context) error {
	for i := range rows.Tables {
		t := &rows.Tables[i]
		st, err := s.w.PrepareContext(ctx, upsertSQL(t, t.ColumnsAt(s.version)))
		if err != nil {
			return fmt.Errorf("sqlite: prepare upsert into %s: %w", t.Name, err)
		}
		s.stmts[t.Kind] = st
	}
	return nil
}

// Write implements sinks.Sink: the batch is written in one transaction, kind
// by kind; a record that is not newer than the stored one is skipped, as are
// older duplicates within the batch.
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
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return sinks.WriteResult{}, fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	upserted := 0
	syncedAt := time.Now().UTC().Format(timeLayout)
	for _, g := range groups {
		n, err := s.writeGroup(ctx, tx, g, syncedAt)
		if err != nil {
			return sinks.WriteResult{}, err
		}
		upserted += n
	}
	if err := tx.Commit(); err != nil {
		return sinks.WriteResult{}, fmt.Errorf("sqlite: commit: %w", err)
	}
	return sinks.WriteResult{Upserted: upserted, Skipped: len(batch) - upserted}, nil
}

func (s *Sink) writeGroup(ctx context.Context, tx *sql.Tx, g rows.Group, syncedAt string) (int, error) {
	st := tx.StmtContext(ctx, s.stmts[g.Table.Kind])
	cols := g.Table.ColumnsAt(s.version)
	args := make([]any, len(rows.CommonColumns)+len(cols)+1)
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
		for j, v := range row.Values {
			args[7+j] = sqlValue(v)
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
	}
	return upserted, nil
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

// Get returns the stored version of a record.
func (s *Sink) Get(ctx context.Context, k model.Key) (model.Record, bool, error) {
	t, ok := rows.Lookup(k.Kind)
	if !ok {
		return model.Record{}, false, fmt.Errorf("sqlite: unknown kind %q", k.Kind)
	}
	var (
		modified string
		deleted  int64
		data     string
		raw      sql.NullString
	)
	err := s.r.QueryRowContext(ctx, "SELECT modified_at, deleted, data, raw FROM "+t.Name+" WHERE company = ? AND vendor = ? AND vendor_id = ?",
		k.Company, k.Vendor, k.VendorID).Scan(&modified, &deleted, &data, &raw)
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
