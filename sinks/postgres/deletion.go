package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
)

// livePage is how many live rows one query of Live reads (a variable for
// the tests).
var livePage = 10_000

// errNoTombstones is returned by Delete, Live and Purge on a schema older
// than rows.DeletionSince (tests only: Open migrates to the latest).
var errNoTombstones = fmt.Errorf("schema version has no tombstone columns (they came with version %d)", rows.DeletionSince)

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Sink) table(k model.Kind) string {
	return pgx.Identifier{s.schema, string(k)}.Sanitize()
}

// markSet returns the SET list of a row (alias c) marked deleted without a
// new version, at and via being SQL expressions: its content hash becomes
// the deleted one (NULL for a row stored before deleted_hash existed, which
// differs from every hash).
func markSet(at, via string) string {
	return "deleted = true, deleted_at = " + at + ", deleted_via = " + via + ", content_hash = c.deleted_hash, synced_at = now()"
}

// quote returns a deletion source as an SQL literal (the sources are
// fixed words).
func quote(v model.DeletionSource) string { return "'" + string(v) + "'" }

// cascadeSQL returns the statement marking deleted, via 'parent-deleted',
// the live children in every table of the rows given as arrays ($1 kinds,
// $2 companies, $3 vendors, $4 ids, $5 times, NULL for the transaction's),
// and returning them.
func (s *Sink) cascadeSQL() string {
	var ctes, sel []string
	for i, t := range rows.Tables {
		ctes = append(ctes, fmt.Sprintf(`c%d AS (UPDATE %s c SET %s
	FROM g WHERE c.company = g.company AND c.vendor = g.vendor AND c.parent_kind = g.kind AND c.parent_id = g.vendor_id
	AND c.parent_id IS NOT NULL AND NOT c.deleted
	RETURNING '%s'::text AS kind, c.company, c.vendor, c.vendor_id, g.at)`,
			i, s.table(t.Kind), markSet("coalesce(g.at, now())", quote(model.DeletedWithParent)), t.Kind))
		sel = append(sel, fmt.Sprintf("SELECT kind, company, vendor, vendor_id, at FROM c%d", i))
	}
	return "WITH g AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS g(kind, company, vendor, vendor_id, at)),\n" +
		strings.Join(ctes, ",\n") + "\n" + strings.Join(sel, " UNION ALL ")
}

// cascade marks the live descendants of the rows just marked, level by
// level, and returns how many it marked.
func (s *Sink) cascade(ctx context.Context, tx pgx.Tx, gone []rows.Gone) (int, error) {
	n := 0
	for len(gone) > 0 {
		kinds, companies, vendors, ids, ats := make([]string, len(gone)), make([]string, len(gone)), make([]string, len(gone)), make([]string, len(gone)), make([]*time.Time, len(gone))
		for i, g := range gone {
			kinds[i], companies[i], vendors[i], ids[i] = string(g.Kind), g.Company, g.Vendor, g.VendorID
			if !g.At.IsZero() {
				at := g.At
				ats[i] = &at
			}
		}
		next, err := s.collect(ctx, tx, s.cascadeQ, kinds, companies, vendors, ids, ats)
		if err != nil {
			return 0, fmt.Errorf("postgres: mark the children of deleted records: %w", err)
		}
		n += len(next)
		gone = next
	}
	return n, nil
}

// collect runs a statement returning marked rows (kind, company, vendor,
// vendor id, time) and returns them. The statement is not prepared
// (QueryExecModeExec): planned with its arrays' values, the server sees
// how few rows a batch names and looks them up through the indexes, where
// the plan of a prepared statement ran two orders of magnitude slower
// (seconds for a batch of a thousand parents).
func (s *Sink) collect(ctx context.Context, tx pgx.Tx, q string, args ...any) ([]rows.Gone, error) {
	rs, err := tx.Query(ctx, q, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, err
	}
	var out []rows.Gone
	for rs.Next() {
		var (
			g    rows.Gone
			kind string
			at   *time.Time
		)
		if err := rs.Scan(&kind, &g.Company, &g.Vendor, &g.VendorID, &at); err != nil {
			rs.Close()
			return nil, err
		}
		g.Kind = model.Kind(kind)
		if at != nil {
			g.At = at.UTC()
		}
		out = append(out, g)
	}
	rs.Close()
	return out, rs.Err()
}

// applyRules runs a written batch's children rules in its transaction.
func (s *Sink) applyRules(ctx context.Context, tx pgx.Tx, rules rows.Rules) error {
	var gone []rows.Gone
	for _, k := range model.Kinds {
		refs := rules.Deleted[k]
		if len(refs) == 0 {
			continue
		}
		// The deleted records not older than stored: their children go.
		companies, vendors, ids, ats := refArrays(refs)
		q := fmt.Sprintf(`SELECT '%s'::text, p.company, p.vendor, p.vendor_id, NULL::timestamptz
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS p(company, vendor, vendor_id, modified_at)
JOIN %s t ON t.company = p.company AND t.vendor = p.vendor AND t.vendor_id = p.vendor_id
WHERE t.modified_at <= p.modified_at`, k, s.table(k))
		g, err := s.collect(ctx, tx, q, companies, vendors, ids, ats)
		if err != nil {
			return fmt.Errorf("postgres: read the deleted records of %s: %w", k, err)
		}
		gone = append(gone, g...)
	}
	for _, cr := range rules.Children {
		companies, vendors, ids, ats := refArrays(cr.Parents)
		// Each parent's named children, as a JSON array tested with ?
		// (one lookup per child row, where a join with all the batch's
		// named children could be planned as a loop over them).
		named := map[rows.ChildRef][]string{}
		for _, c := range cr.Keep {
			k := rows.ChildRef{Company: c.Company, Vendor: c.Vendor, ParentID: c.ParentID}
			named[k] = append(named[k], c.ChildID)
		}
		keep := make([]string, len(cr.Parents))
		for i, p := range cr.Parents {
			ids := named[rows.ChildRef{Company: p.Company, Vendor: p.Vendor, ParentID: p.VendorID}]
			if ids == nil {
				ids = []string{}
			}
			b, err := json.Marshal(ids)
			if err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			keep[i] = string(b)
		}
		// The parents whose stored version is not newer than the batch's
		// (written, or skipped as saying the same), then their live
		// children of the kind that the set does not name.
		q := fmt.Sprintf(`WITH p AS (SELECT p.company, p.vendor, p.vendor_id, p.keep::jsonb AS keep
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS p(company, vendor, vendor_id, modified_at, keep)
	JOIN %[1]s t ON t.company = p.company AND t.vendor = p.vendor AND t.vendor_id = p.vendor_id
	WHERE t.modified_at <= p.modified_at)
UPDATE %[2]s c SET %[5]s
FROM p WHERE c.company = p.company AND c.vendor = p.vendor AND c.parent_kind = '%[3]s' AND c.parent_id = p.vendor_id
AND c.parent_id IS NOT NULL AND NOT c.deleted AND NOT p.keep ? c.vendor_id
RETURNING '%[4]s'::text, c.company, c.vendor, c.vendor_id, NULL::timestamptz`,
			s.table(cr.ParentKind), s.table(cr.ChildKind), cr.ParentKind, cr.ChildKind, markSet("now()", quote(model.DeletedFromParent)))
		g, err := s.collect(ctx, tx, q, companies, vendors, ids, ats, keep)
		if err != nil {
			return fmt.Errorf("postgres: mark the %s gone from their %s: %w", cr.ChildKind, cr.ParentKind, err)
		}
		gone = append(gone, g...)
	}
	_, err := s.cascade(ctx, tx, gone)
	return err
}

func refArrays(refs []rows.ParentRef) (companies, vendors, ids []string, ats []time.Time) {
	companies, vendors, ids, ats = make([]string, len(refs)), make([]string, len(refs)), make([]string, len(refs)), make([]time.Time, len(refs))
	for i, r := range refs {
		companies[i], vendors[i], ids[i], ats[i] = r.Company, r.Vendor, r.VendorID, r.ModifiedAt
	}
	return
}

// retry runs f, one transaction, again after a deadlock or serialization
// failure, like Write.
func (s *Sink) retry(ctx context.Context, what string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		d := time.Duration(rand.Int64N(int64(attempt) * int64(20*time.Millisecond))) //nolint:gosec // G404: retry jitter, not a secret
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: %s: %w", what, ctx.Err())
		case <-time.After(d):
		}
	}
}

// Delete implements sinks.Sink: in one transaction, one statement per kind
// marks the named live rows (their arrays of keys, times and sources
// unnested), then their live descendants are marked level by level.
func (s *Sink) Delete(ctx context.Context, tombstones []model.Tombstone) (int, error) {
	if len(tombstones) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("postgres: delete: %w", err)
	}
	if s.version < rows.DeletionSince {
		return 0, fmt.Errorf("postgres: delete: %w", errNoTombstones)
	}
	groups, kinds, err := rows.PlanTombstones(tombstones)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	var n int
	err = s.retry(ctx, "delete", func() error {
		var err error
		n, err = s.deleteOnce(ctx, groups, kinds)
		return err
	})
	return n, err
}

func (s *Sink) deleteOnce(ctx context.Context, groups map[model.Kind][]rows.Tomb, kinds []model.Kind) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	var gone []rows.Gone
	for _, k := range kinds {
		g := groups[k]
		companies, vendors, ids, ats, vias := make([]string, len(g)), make([]string, len(g)), make([]string, len(g)), make([]time.Time, len(g)), make([]string, len(g))
		for i, t := range g {
			companies[i], vendors[i], ids[i], ats[i], vias[i] = t.Company, t.Vendor, t.VendorID, t.At, t.Via
		}
		q := fmt.Sprintf(`UPDATE %s c SET %s
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS d(company, vendor, vendor_id, at, via)
WHERE c.company = d.company AND c.vendor = d.vendor AND c.vendor_id = d.vendor_id AND NOT c.deleted
RETURNING '%s'::text, c.company, c.vendor, c.vendor_id, d.at`, s.table(k), markSet("d.at", "d.via"), k)
		marked, err := s.collect(ctx, tx, q, companies, vendors, ids, ats, vias)
		if err != nil {
			return 0, fmt.Errorf("postgres: delete %s: %w", k, err)
		}
		gone = append(gone, marked...)
	}
	n, err := s.cascade(ctx, tx, gone)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: delete: commit: %w", err)
	}
	return len(gone) + n, nil
}

// Live implements sinks.Sink: it reads the live rows of the scope a page
// at a time, in vendor id order, and calls fn for each.
func (s *Sink) Live(ctx context.Context, sc sinks.Scope, fn func(model.LiveRecord) error) error {
	if _, ok := rows.Lookup(sc.Kind); !ok {
		return fmt.Errorf("postgres: live: unknown kind %q", sc.Kind)
	}
	if s.version < rows.DeletionSince {
		return fmt.Errorf("postgres: live: %w", errNoTombstones)
	}
	q := fmt.Sprintf(`SELECT vendor_id, modified_at FROM %s
WHERE company = $1 AND vendor = $2 AND NOT deleted AND vendor_id > $3 ORDER BY vendor_id LIMIT %d`, s.table(sc.Kind), livePage)
	after := ""
	page := make([]model.LiveRecord, 0, livePage)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("postgres: live: %w", err)
		}
		page = page[:0]
		rs, err := s.pool.Query(ctx, q, sc.Company, sc.Vendor, after)
		if err != nil {
			return fmt.Errorf("postgres: live %s: %w", sc.Kind, err)
		}
		for rs.Next() {
			var l model.LiveRecord
			if err := rs.Scan(&l.VendorID, &l.ModifiedAt); err != nil {
				rs.Close()
				return fmt.Errorf("postgres: live %s: %w", sc.Kind, err)
			}
			l.ModifiedAt = l.ModifiedAt.UTC()
			page = append(page, l)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("postgres: live %s: %w", sc.Kind, err)
		}
		for i, l := range page {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("postgres: live: %w", err)
				}
			}
			if err := fn(l); err != nil {
				return err
			}
		}
		if len(page) < livePage {
			return nil
		}
		after = page[len(page)-1].VendorID
	}
}

// Purge implements sinks.Sink: one statement removes the company's and
// vendor's tombstones deleted before the time from every table.
func (s *Sink) Purge(ctx context.Context, company, vendor string, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("postgres: purge: %w", err)
	}
	if s.version < rows.DeletionSince {
		return 0, fmt.Errorf("postgres: purge: %w", errNoTombstones)
	}
	var ctes, sum []string
	for i, t := range rows.Tables {
		ctes = append(ctes, fmt.Sprintf("p%d AS (DELETE FROM %s WHERE company = $1 AND vendor = $2 AND deleted AND deleted_at < $3 RETURNING 1)", i, s.table(t.Kind)))
		sum = append(sum, fmt.Sprintf("(SELECT count(*) FROM p%d)", i))
	}
	q := "WITH " + strings.Join(ctes, ",\n") + "\nSELECT " + strings.Join(sum, " + ")
	var n int64
	err := s.retry(ctx, "purge", func() error {
		if err := s.pool.QueryRow(ctx, q, pgx.QueryExecModeExec, company, vendor, rows.StoredTime(before)).Scan(&n); err != nil {
			return fmt.Errorf("postgres: purge: %w", err)
		}
		return nil
	})
	return int(n), err
}

// Tombstone returns when and how the deletion of a deleted row was
// learned; false for a live or absent row.
func (s *Sink) Tombstone(ctx context.Context, k model.Key) (model.Tombstone, bool, error) {
	if _, ok := rows.Lookup(k.Kind); !ok {
		return model.Tombstone{}, false, fmt.Errorf("postgres: unknown kind %q", k.Kind)
	}
	var (
		at  *time.Time
		via *string
	)
	err := s.pool.QueryRow(ctx, "SELECT deleted_at, deleted_via FROM "+s.table(k.Kind)+
		" WHERE company = $1 AND vendor = $2 AND vendor_id = $3 AND deleted", k.Company, k.Vendor, k.VendorID).Scan(&at, &via)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Tombstone{}, false, nil
	}
	if err != nil {
		return model.Tombstone{}, false, fmt.Errorf("postgres: read the tombstone: %w", err)
	}
	t := model.Tombstone{Key: k}
	if at != nil {
		t.At = at.UTC()
	}
	if via != nil {
		t.Via = model.DeletionSource(*via)
	}
	return t, true, nil
}
