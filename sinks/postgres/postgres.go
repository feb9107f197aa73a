// Package postgres is the production sink: the CRM's PostgreSQL database,
// written with pgx.
//
// There is one table per canonical kind, keyed by (company, vendor,
// vendor_id), with typed columns for what a CRM queries, the canonical
// payload as jsonb (data) and the vendor's document as jsonb (raw). Tables
// live in their own schema (erpsync by default). Schema migrations are
// embedded, versioned, additive only, and applied at Open under an advisory
// lock, so several managers can start at once.
//
// Each batch is one transaction: per kind, the rows are copied (COPY, binary)
// into a temporary staging table emptied at commit, then merged with one INSERT …
// SELECT … ON CONFLICT DO UPDATE … WHERE excluded.modified_at >=
// stored.modified_at AND stored.content_hash IS DISTINCT FROM
// excluded.content_hash, so a record is never replaced by an older version,
// a change the vendor did not stamp with a new time is still written, and a
// record that says the same is not rewritten (and counts as skipped). The
// same transaction then deletes the set-aside entries (table set_aside,
// written by SetAside) of the batch's keys, a one-time-filtered statement
// that costs nothing while set_aside is empty. Rows are merged in key order
// and kinds in sync order, so concurrent writers take row locks in one
// order; a deadlock or serialization failure all the same retries the whole
// (all-or-nothing) batch.
//
// # Tombstones and children
//
// Nothing is removed but by Purge: a deleted record keeps its row with
// deleted = true, deleted_at (when the deletion was learned, the write's
// time for a record the vendor marks deleted, kept while the row stays
// deleted) and deleted_via; a live version that is not older clears both.
// Each row also stores its parent (parent_kind, parent_id) and deleted_hash,
// the content hash it takes when it is marked deleted without a new version
// (model.HashContent with the deleted flag set), so that a later live
// version with the same modified time differs and restores it.
//
// After the merge, in the same transaction, the children rules run set-based
// with the batch's keys passed as arrays (unnest): one statement per parent
// kind and child kind for the child sets (the stored live children of the
// parents whose stored version is not newer than the batch's, minus the
// children named, are marked deleted via 'parent'), one per kind of the
// batch's deleted records to find those not older than stored, then one
// statement per level of descendants (data-modifying CTEs over every table
// through the partial index on company, vendor, parent_kind, parent_id)
// marking the live children of the rows just marked via 'parent-deleted'.
// A batch without deleted records or child sets runs none of them. Delete
// marks the named live rows with one statement per kind, then their
// descendants the same way. Live pages through the partial index of live
// rows (company, vendor, vendor_id, covering modified_at), a page per
// query, so that neither memory nor a connection is held for the whole
// listing.
//
// # TLS
//
// A DSN that names no sslmode connects with sslmode=verify-full
// (DefaultSSLMode): the server's certificate must chain to a trusted root
// and name the host. For a private CA (most managed databases: RDS, Cloud
// SQL, Azure) put the CA bundle in the Secret beside the DSN and name it
// with sslrootcert=/etc/erpsync/sink/ca.crt. An explicit sslmode (for
// example sslmode=disable for a database on loopback), $PGSSLMODE or a
// service file keeps its choice. Open logs the mode in force.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded schema migrations.
func Migrations() ([]rows.Migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return rows.LoadMigrations(sub)
}

// DefaultSchema is the schema the tables live in unless Options say
// otherwise.
const DefaultSchema = "erpsync"

// Options configures Open.
type Options struct {
	// DSN is the connection string (URL or keyword/value form). It is a
	// secret: it never appears in errors.
	DSN string
	// Schema holds the tables (default "erpsync"); created if missing.
	Schema string
	// MaxConns bounds the connection pool (default: pgxpool's, 4 or the
	// number of CPUs).
	MaxConns int32
	// Log receives one line at Open saying which TLS mode is in force
	// (never the DSN). The zero Logger discards it.
	Log logr.Logger

	// getenv reads the environment (tests); nil means os.Getenv.
	getenv func(string) string

	// schemaVersion, when set (by tests), migrates to and writes at that
	// version rather than the latest.
	schemaVersion int
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Sink writes canonical records to PostgreSQL.
type Sink struct {
	pool    *pgxpool.Pool
	schema  string
	version int
	// ensureStage creates the staging table if the session lacks it.
	ensureStage string
	// merge and copyCols hold each kind's merge statement and staging
	// columns, built at Open.
	merge    map[model.Kind]string
	copyCols map[model.Kind][]string
	// clearSetAside deletes the set-aside entries of the staged keys; ""
	// before schema version rows.HashSince.
	clearSetAside string
	// cascadeQ marks the live children of rows just marked deleted.
	cascadeQ string
	tls      TLSMode
}

var _ sinks.Sink = (*Sink)(nil)

// Open connects, migrates the schema and returns the sink.
func Open(ctx context.Context, o Options) (*Sink, error) {
	if o.DSN == "" {
		return nil, errors.New("postgres: no DSN")
	}
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if !schemaName.MatchString(o.Schema) {
		return nil, fmt.Errorf("postgres: schema %q must be a lower-case SQL name", o.Schema)
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
		return nil, fmt.Errorf("postgres: schema version %d is beyond the %d migrations", version, len(ms))
	}
	getenv := o.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	dsn, mode, err := withDefaultSSLMode(o.DSN, getenv)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN: %w", err)
	}
	// Errors may quote the DSN as given or as completed.
	redact := func(err error) error { return Redact(Redact(err, dsn), o.DSN) }
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid DSN: %w", redact(err))
	}
	logTLS(o.Log, mode)
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["search_path"] = pgx.Identifier{o.Schema}.Sanitize()
	if rp["application_name"] == "" {
		rp["application_name"] = "erpsync-operator"
	}
	s := &Sink{tls: mode, schema: o.Schema, version: version, ensureStage: "SET LOCAL client_min_messages TO warning;\n" + stageDDL(),
		merge: map[model.Kind]string{}, copyCols: map[model.Kind][]string{}}
	for i := range rows.Tables {
		s.build(&rows.Tables[i])
	}
	s.cascadeQ = s.cascadeSQL()
	if version >= rows.HashSince {
		// The uncorrelated EXISTS is a one-time filter: with no set-aside
		// rows (the common case) the join is never run.
		s.clearSetAside = fmt.Sprintf(`DELETE FROM %[1]s AS a USING %[2]s AS st
WHERE EXISTS (SELECT 1 FROM %[1]s) AND a.company = st.company AND a.vendor = st.vendor AND a.kind = st.kind AND a.vendor_id = st.vendor_id`,
			pgx.Identifier{o.Schema, rows.SetAsideTable}.Sanitize(), stageTable)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", redact(err))
	}
	s.pool = pool
	if err := s.migrate(ctx, ms[:version]); err != nil {
		pool.Close()
		return nil, redact(err)
	}
	return s, nil
}

// TLS returns the TLS mode the sink's connections use.
func (s *Sink) TLS() TLSMode { return s.tls }

// logTLS says which TLS mode is in force, and warns when the server's
// certificate is not checked.
func logTLS(log logr.Logger, m TLSMode) {
	mode := m.Mode
	if mode == "" {
		mode = "(from the service file)"
	}
	kv := []any{"sslmode", mode, "source", m.Source, "certificateVerified", m.Verified(), "rootCert", m.RootCert}
	if m.Verified() || m.Source == "service" {
		log.Info("PostgreSQL TLS", kv...)
		return
	}
	log.Info("PostgreSQL TLS does not verify the server's certificate over TCP: use sslmode=verify-full (with sslrootcert for a private CA) unless the database is on loopback or a Unix socket", kv...)
}

// Close implements sinks.Sink.
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies each pending migration in its own transaction, holding a
// session advisory lock on the schema, so that managers starting together
// apply each migration once and wait for one another. The lock is taken
// before any transaction starts, so that each transaction sees what the
// previous holder committed.
func (s *Sink) migrate(ctx context.Context, ms []rows.Migration) error {
	h := fnv.New64a()
	h.Write([]byte("erpsync-migrate/" + s.schema))
	lock := int64(h.Sum64()) //nolint:gosec // G115: the hash's bits as an advisory lock key; wrapping is intended
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lock); err != nil {
		return fmt.Errorf("postgres: migrate: advisory lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", lock); err != nil {
			// The lock goes with the session: drop the connection.
			_ = conn.Conn().Close(uctx)
		}
	}()
	for _, m := range ms {
		if err := s.apply(ctx, conn.Conn(), m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) apply(ctx context.Context, conn *pgx.Conn, m rows.Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	schema := pgx.Identifier{s.schema}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema+`;
CREATE TABLE IF NOT EXISTS `+schema+`.schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("postgres: migrate: create schema_migrations: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+schema+".schema_migrations WHERE version = $1", m.Version).Scan(&n); err != nil {
		return fmt.Errorf("postgres: migrate: read schema_migrations: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
		return fmt.Errorf("postgres: migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// The staging table. Each write transaction creates it if its session does
// not have it yet (so that it also works behind a transaction-pooling
// proxy): temporary (private to the session) and emptied at each commit.
// It has the common columns, the kind, and typed slots enough for any kind:
// s1… text (money too, cast to numeric by the merge), f1… double precision,
// b1… boolean, t1… timestamptz. One table for all kinds keeps the per-batch
// cost to one truncation at commit; creating and dropping a table per batch
// and kind instead costs milliseconds of catalog work each time.
//
// The name carries the schema version of its columns, so that a session
// left by an older version (behind a pooling proxy) is never reused with
// other columns.
const stageTable = "erpsync_stage4"

// slotPrefix names the staging slots of each column type.
var slotPrefix = map[rows.Type]string{rows.Text: "s", rows.Money: "s", rows.Float: "f", rows.Bool: "b", rows.Time: "t"}

var slotType = map[string]string{"s": "text", "f": "double precision", "b": "boolean", "t": "timestamptz"}

// slots assigns the typed columns to staging slots, in column order.
func slots(cols []rows.Column) []string {
	next := map[string]int{}
	out := make([]string, len(cols))
	for i, c := range cols {
		p := slotPrefix[c.Type]
		next[p]++
		out[i] = fmt.Sprintf("%s%d", p, next[p])
	}
	return out
}

// stageDDL returns the statement creating the staging table, with as many
// slots of each type as the widest table needs.
func stageDDL() string {
	width := map[string]int{}
	for _, t := range rows.Tables {
		for _, sl := range slots(t.Columns) {
			p := sl[:1]
			n, _ := strconv.Atoi(sl[1:])
			width[p] = max(width[p], n)
		}
	}
	defs := []string{"kind text", "company text", "vendor text", "vendor_id text", "modified_at timestamptz", "deleted boolean", "data jsonb", "raw jsonb", "content_hash text",
		"parent_kind text", "parent_id text", "deleted_hash text", "deleted_via text"}
	for _, p := range []string{"s", "f", "b", "t"} {
		for i := 1; i <= width[p]; i++ {
			defs = append(defs, fmt.Sprintf("%s%d %s", p, i, slotType[p]))
		}
	}
	return fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (%s) ON COMMIT DELETE ROWS", stageTable, strings.Join(defs, ", "))
}

// build prepares a kind's merge statement and staging columns.
func (s *Sink) build(t *rows.Table) {
	cols := t.ColumnsAt(s.version)
	sl := slots(cols)
	common := rows.CommonColumnsAt(s.version)
	names := append([]string(nil), common...)
	selects := append([]string(nil), common...)
	copyCols := append([]string{"kind"}, common...)
	tomb := rows.TombstoneColumnsAt(s.version)
	if len(tomb) > 0 {
		// deleted_at: the write's time for a deleted record; deleted_via:
		// staged (NULL for a live record).
		names = append(names, tomb...)
		selects = append(selects, "CASE WHEN deleted THEN now() END", rows.ColDeletedVia)
		copyCols = append(copyCols, rows.ColDeletedVia)
	}
	for i, c := range cols {
		names = append(names, c.Name)
		copyCols = append(copyCols, sl[i])
		if c.Type == rows.Money {
			selects = append(selects, sl[i]+"::numeric")
		} else {
			selects = append(selects, sl[i])
		}
	}
	var set []string
	for _, n := range names[3:] {
		switch n {
		case rows.ColDeletedAt, rows.ColDeletedVia:
			// Set when the row becomes deleted, kept while it stays
			// deleted, cleared when a live version restores it.
			set = append(set, fmt.Sprintf("%[1]s = CASE WHEN NOT excluded.deleted THEN NULL WHEN t.deleted THEN coalesce(t.%[1]s, excluded.%[1]s) ELSE excluded.%[1]s END", n))
		default:
			set = append(set, n+" = excluded."+n)
		}
	}
	set = append(set, rows.ColSyncedAt+" = now()")
	cond := "excluded.modified_at > t.modified_at"
	if s.version >= rows.HashSince {
		// A NULL hash (a row stored before the hash existed) is distinct
		// from every hash.
		cond = "excluded.modified_at >= t.modified_at AND t.content_hash IS DISTINCT FROM excluded.content_hash"
	}
	s.merge[t.Kind] = fmt.Sprintf(`INSERT INTO %s AS t (%s)
SELECT %s FROM %s WHERE kind = '%s' ORDER BY company, vendor, vendor_id
ON CONFLICT (company, vendor, vendor_id) DO UPDATE SET %s
WHERE %s`,
		pgx.Identifier{s.schema, t.Name}.Sanitize(), strings.Join(names, ", "),
		strings.Join(selects, ", "), stageTable, t.Kind, strings.Join(set, ", "), cond)
	s.copyCols[t.Kind] = copyCols
}

// maxAttempts bounds the retries of a batch that lost a deadlock or a
// serialization conflict.
const maxAttempts = 4

// Write implements sinks.Sink: the batch is written in one transaction; a
// record that is not newer than the stored one is skipped, as are older
// duplicates within the batch.
func (s *Sink) Write(ctx context.Context, batch []model.Record) (sinks.WriteResult, error) {
	if len(batch) == 0 {
		return sinks.WriteResult{}, nil
	}
	if err := ctx.Err(); err != nil {
		return sinks.WriteResult{}, fmt.Errorf("postgres: write: %w", err)
	}
	groups, _, err := rows.Plan(batch)
	if err != nil {
		return sinks.WriteResult{}, fmt.Errorf("postgres: %w", err)
	}
	var rules rows.Rules
	if s.version >= rows.DeletionSince {
		rules = rows.PlanRules(groups)
	}
	for attempt := 1; ; attempt++ {
		upserted, err := s.writeOnce(ctx, groups, rules)
		if err == nil {
			return sinks.WriteResult{Upserted: upserted, Skipped: len(batch) - upserted}, nil
		}
		if !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return sinks.WriteResult{}, err
		}
		// Jittered backoff before replaying the whole batch.
		d := time.Duration(rand.Int64N(int64(attempt) * int64(20*time.Millisecond))) //nolint:gosec // G404: retry jitter, not a secret
		select {
		case <-ctx.Done():
			return sinks.WriteResult{}, fmt.Errorf("postgres: write: %w", ctx.Err())
		case <-time.After(d):
		}
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func (s *Sink) writeOnce(ctx context.Context, groups []rows.Group, rules rows.Rules) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, s.ensureStage, pgx.QueryExecModeSimpleProtocol); err != nil {
		return 0, fmt.Errorf("postgres: create the staging table: %w", err)
	}
	upserted := 0
	for _, g := range groups {
		t := g.Table
		src := &source{table: t, cols: t.ColumnsAt(s.version), recs: g.Records, ctx: ctx, hash: s.version >= rows.HashSince, tomb: s.version >= rows.DeletionSince}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, s.copyCols[t.Kind], src); err != nil {
			if src.err != nil {
				return 0, fmt.Errorf("postgres: %w", src.err)
			}
			return 0, fmt.Errorf("postgres: copy %s: %w", t.Name, err)
		}
		tag, err := tx.Exec(ctx, s.merge[t.Kind], pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return 0, fmt.Errorf("postgres: merge %s: %w", t.Name, err)
		}
		upserted += int(tag.RowsAffected())
	}
	if s.clearSetAside != "" {
		if _, err := tx.Exec(ctx, s.clearSetAside, pgx.QueryExecModeSimpleProtocol); err != nil {
			return 0, fmt.Errorf("postgres: clear the batch's set-aside entries: %w", err)
		}
	}
	if !rules.Empty() {
		if err := s.applyRules(ctx, tx, rules); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: commit: %w", err)
	}
	return upserted, nil
}

// SetAside implements sinks.Sink: the documents are stored in one statement
// in the set_aside table, replacing the reason, document and modified time
// of a key already there, bumping its attempts and last_seen and keeping
// its first_seen.
func (s *Sink) SetAside(ctx context.Context, items []model.SetAside) error {
	if len(items) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: set aside: %w", err)
	}
	if s.version < rows.HashSince {
		return fmt.Errorf("postgres: set aside: schema version %d has no set_aside table (it came with version %d)", s.version, rows.HashSince)
	}
	planned, err := rows.PlanSetAside(items)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	n := len(planned)
	var (
		companies, vendors, kinds, ids, reasons = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		modified                                = make([]*time.Time, n)
		raws                                    = make([]*string, n)
	)
	for i, r := range planned {
		companies[i], vendors[i], kinds[i], ids[i], reasons[i] = r.Company, r.Vendor, r.Kind, r.VendorID, r.Reason
		if !r.ModifiedAt.IsZero() {
			at := r.ModifiedAt
			modified[i] = &at
		}
		if r.Raw != nil {
			raw := string(r.Raw)
			raws[i] = &raw
		}
	}
	q := fmt.Sprintf(`INSERT INTO %s AS a (company, vendor, kind, vendor_id, modified_at, reason, raw)
SELECT c, v, k, i, m, r, w::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[]) AS u(c, v, k, i, m, r, w)
ON CONFLICT (company, vendor, kind, vendor_id) DO UPDATE SET
	modified_at = excluded.modified_at, reason = excluded.reason, raw = excluded.raw,
	last_seen = now(), attempts = a.attempts + 1`, pgx.Identifier{s.schema, rows.SetAsideTable}.Sanitize())
	for attempt := 1; ; attempt++ {
		_, err := s.pool.Exec(ctx, q, companies, vendors, kinds, ids, modified, reasons, raws)
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return fmt.Errorf("postgres: set aside: %w", err)
		}
		d := time.Duration(rand.Int64N(int64(attempt) * int64(20*time.Millisecond))) //nolint:gosec // G404: retry jitter, not a secret
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: set aside: %w", ctx.Err())
		case <-time.After(d):
		}
	}
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
		modified    *time.Time
		raw         *string
		e           = SetAsideEntry{SetAside: model.SetAside{Company: k.Company, Vendor: k.Vendor, Kind: k.Kind, VendorID: k.VendorID}}
		attempts    int32
		first, last time.Time
	)
	err := s.pool.QueryRow(ctx, "SELECT modified_at, reason, raw::text, first_seen, last_seen, attempts FROM "+pgx.Identifier{s.schema, rows.SetAsideTable}.Sanitize()+
		" WHERE company = $1 AND vendor = $2 AND kind = $3 AND vendor_id = $4", k.Company, k.Vendor, string(k.Kind), k.VendorID).
		Scan(&modified, &e.Reason, &raw, &first, &last, &attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return SetAsideEntry{}, false, nil
	}
	if err != nil {
		return SetAsideEntry{}, false, fmt.Errorf("postgres: read set_aside: %w", err)
	}
	if modified != nil {
		e.ModifiedAt = modified.UTC()
	}
	if raw != nil {
		e.Raw = []byte(*raw)
	}
	e.FirstSeen, e.LastSeen, e.Attempts = first.UTC(), last.UTC(), int(attempts)
	return e, true, nil
}

// source feeds COPY, preparing each row as it is sent; a record that fails
// validation stops the copy and so the whole transaction.
type source struct {
	ctx   context.Context
	table *rows.Table
	cols  []rows.Column
	recs  []*model.Record
	// hash says whether the content hash is copied (schema version
	// rows.HashSince on), tomb whether the parent, the deleted hash and
	// the deletion source are (rows.DeletionSince on).
	hash, tomb bool
	i          int
	vals       []any
	err        error
}

func (s *source) Next() bool {
	if s.err != nil || s.i >= len(s.recs) {
		return false
	}
	if s.i%256 == 0 {
		if err := s.ctx.Err(); err != nil {
			s.err = fmt.Errorf("write %s: %w", s.table.Name, err)
			return false
		}
	}
	row, err := s.table.Row(s.recs[s.i], s.cols)
	s.i++
	if err != nil {
		s.err = err
		return false
	}
	if s.vals == nil {
		n := 1 + len(rows.CommonColumns) + len(s.cols)
		if s.hash {
			n++
		}
		if s.tomb {
			n += 4
		}
		s.vals = make([]any, n)
	}
	v := s.vals
	v[0], v[1], v[2], v[3], v[4], v[5], v[6] = string(s.table.Kind), row.Company, row.Vendor, row.VendorID, row.ModifiedAt, row.Deleted, row.Data
	v[7] = nil
	if row.Raw != nil {
		v[7] = row.Raw
	}
	n := 8
	if s.hash {
		v[8] = row.Hash
		n = 9
	}
	if s.tomb {
		v[9], v[10], v[11], v[12] = nullable(row.ParentKind), nullable(row.Parent), row.DeletedHash, nullable(row.Via)
		n = 13
	}
	copy(v[n:], row.Values)
	return true
}

func (s *source) Values() ([]any, error) { return s.vals, nil }

func (s *source) Err() error { return s.err }

// Get returns the stored version of a record, with its parent and, for a
// deleted one, how the deletion was learned (from rows.DeletionSince on).
func (s *Sink) Get(ctx context.Context, k model.Key) (model.Record, bool, error) {
	t, ok := rows.Lookup(k.Kind)
	if !ok {
		return model.Record{}, false, fmt.Errorf("postgres: unknown kind %q", k.Kind)
	}
	var (
		modified                time.Time
		deleted                 bool
		data                    []byte
		raw                     []byte
		parentKind, parent, via *string
	)
	cols, dst := "modified_at, deleted, data::text, raw::text", []any{&modified, &deleted, &data, &raw}
	if s.version >= rows.DeletionSince {
		cols += ", parent_kind, parent_id, deleted_via"
		dst = append(dst, &parentKind, &parent, &via)
	}
	err := s.pool.QueryRow(ctx, "SELECT "+cols+" FROM "+pgx.Identifier{s.schema, t.Name}.Sanitize()+
		" WHERE company = $1 AND vendor = $2 AND vendor_id = $3", k.Company, k.Vendor, k.VendorID).Scan(dst...)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Record{}, false, nil
	}
	if err != nil {
		return model.Record{}, false, fmt.Errorf("postgres: read %s: %w", t.Name, err)
	}
	p, err := rows.Decode(k.Kind, data)
	if err != nil {
		return model.Record{}, false, fmt.Errorf("postgres: read %s: %w", t.Name, err)
	}
	r := model.Record{Company: k.Company, Vendor: k.Vendor, Kind: k.Kind, VendorID: k.VendorID,
		ModifiedAt: modified.UTC(), Deleted: deleted, Raw: raw, Data: p}
	if parentKind != nil && parent != nil {
		r.ParentKind, r.Parent = model.Kind(*parentKind), *parent
	}
	if via != nil && deleted {
		r.DeletedVia = model.DeletionSource(*via)
	}
	return r, true, nil
}

// Count returns the number of stored rows per company and kind.
func (s *Sink) Count(ctx context.Context) (map[string]map[model.Kind]int, error) {
	var parts []string
	for _, t := range rows.Tables {
		parts = append(parts, fmt.Sprintf("SELECT '%s', company, count(*) FROM %s GROUP BY company", t.Kind, pgx.Identifier{s.schema, t.Name}.Sanitize()))
	}
	rs, err := s.pool.Query(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		return nil, fmt.Errorf("postgres: count: %w", err)
	}
	defer rs.Close()
	out := map[string]map[model.Kind]int{}
	for rs.Next() {
		var (
			kind, company string
			n             int64
		)
		if err := rs.Scan(&kind, &company, &n); err != nil {
			return nil, fmt.Errorf("postgres: count: %w", err)
		}
		if out[company] == nil {
			out[company] = map[model.Kind]int{}
		}
		out[company][model.Kind(kind)] = int(n)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count: %w", err)
	}
	return out, nil
}

// SchemaVersion returns the highest applied migration.
func (s *Sink) SchemaVersion(ctx context.Context) (int, error) {
	var v *int32
	if err := s.pool.QueryRow(ctx, "SELECT max(version) FROM "+pgx.Identifier{s.schema, "schema_migrations"}.Sanitize()).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return int(*v), nil
}

var (
	kvPassword  = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]*)`)
	urlUserinfo = regexp.MustCompile(`(?i)(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@`)
)

// Scrub returns err's message with the DSN and any password in it masked.
// Use it on every error that could quote a connection string.
func Scrub(err error, dsn string) string {
	if err == nil {
		return "unknown error"
	}
	msg := err.Error()
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "<dsn>")
	}
	for _, p := range passwords(dsn) {
		if len(p) >= 3 {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	msg = kvPassword.ReplaceAllString(msg, "password=xxxxx")
	msg = urlUserinfo.ReplaceAllString(msg, "$1:xxxxx@")
	return msg
}

// Redact returns err with the message of Scrub. The original stays
// reachable through errors.Is and errors.As, but not through Error.
func Redact(err error, dsn string) error {
	if err == nil {
		return nil
	}
	return &redacted{msg: Scrub(err, dsn), err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// passwords extracts the password of a DSN, best effort.
func passwords(dsn string) []string {
	var out []string
	if m := urlUserinfo.FindStringSubmatchIndex(dsn); m != nil {
		userinfoEnd := strings.Index(dsn[m[3]:], "@")
		if userinfoEnd > 1 {
			out = append(out, dsn[m[3]+1:m[3]+userinfoEnd])
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	if cfg, err := pgconn.ParseConfig(dsn); err == nil && cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	return out
}
