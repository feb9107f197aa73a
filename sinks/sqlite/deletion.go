package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// markSet returns the SET list of a row (alias c) marked deleted without a
// new version; at and via are SQL expressions, ?2 the write's time. Its
// content hash becomes the deleted one (NULL for a row stored before
// deleted_hash existed, which differs from every hash).
func markSet(at, via string) string {
	return "deleted = 1, deleted_at = " + at + ", deleted_via = " + via + ", content_hash = c.deleted_hash, synced_at = ?2"
}

func quote(v model.DeletionSource) string { return "'" + string(v) + "'" }

// gone is a row just marked deleted; its live children follow at the same
// time.
type gone struct {
	kind                      model.Kind
	company, vendor, vendorID string
	at                        string
}

// jsonArg encodes rows of strings as the JSON array json_each reads.
func jsonArg(n int, row func(i int) []string) (string, error) {
	out := make([][]string, n)
	for i := range out {
		out[i] = row(i)
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// collect runs an UPDATE … RETURNING company, vendor, vendor_id, deleted_at
// of one kind's table and returns the rows it marked.
func collect(ctx context.Context, tx *sql.Tx, kind model.Kind, q string, args ...any) ([]gone, error) {
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []gone
	for rs.Next() {
		g := gone{kind: kind}
		var at sql.NullString
		if err := rs.Scan(&g.company, &g.vendor, &g.vendorID, &at); err != nil {
			return nil, err
		}
		g.at = at.String
		out = append(out, g)
	}
	return out, rs.Err()
}

// cascade marks the live descendants of the rows just marked, level by
// level (one statement per table and level), and returns how many it
// marked.
func (s *Sink) cascade(ctx context.Context, tx *sql.Tx, marked []gone, syncedAt string) (int, error) {
	n := 0
	for len(marked) > 0 {
		arg, err := jsonArg(len(marked), func(i int) []string {
			g := marked[i]
			return []string{string(g.kind), g.company, g.vendor, g.vendorID, g.at}
		})
		if err != nil {
			return 0, fmt.Errorf("sqlite: mark the children of deleted records: %w", err)
		}
		var next []gone
		for _, t := range rows.Tables {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("sqlite: mark the children of deleted records: %w", err)
			}
			q := fmt.Sprintf(`UPDATE %s AS c SET %s
FROM (SELECT value->>0 AS kind, value->>1 AS company, value->>2 AS vendor, value->>3 AS vendor_id, value->>4 AS at FROM json_each(?1)) AS g
WHERE c.company = g.company AND c.vendor = g.vendor AND c.parent_kind = g.kind AND c.parent_id = g.vendor_id
AND c.parent_id IS NOT NULL AND c.deleted = 0
RETURNING company, vendor, vendor_id, deleted_at`, t.Name, markSet("g.at", quote(model.DeletedWithParent)))
			g, err := collect(ctx, tx, t.Kind, q, arg, syncedAt)
			if err != nil {
				return 0, fmt.Errorf("sqlite: mark the %s of deleted records: %w", t.Name, err)
			}
			next = append(next, g...)
		}
		n += len(next)
		marked = next
	}
	return n, nil
}

// keepTable holds the children a batch's sets name, indexed, for the
// statements that mark the others.
const keepTable = "erpsync_keep"

// applyRules runs a written batch's children rules in its transaction.
func (s *Sink) applyRules(ctx context.Context, tx *sql.Tx, rules rows.Rules, syncedAt string) error {
	var marked []gone
	for _, k := range model.Kinds {
		refs := rules.Deleted[k]
		if len(refs) == 0 {
			continue
		}
		arg, err := refArg(refs)
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		// The deleted records not older than stored: their children go.
		rs, err := tx.QueryContext(ctx, fmt.Sprintf(`SELECT t.company, t.vendor, t.vendor_id FROM json_each(?1) AS p
JOIN %s AS t ON t.company = p.value->>0 AND t.vendor = p.value->>1 AND t.vendor_id = p.value->>2
WHERE t.modified_at <= p.value->>3`, k), arg)
		if err != nil {
			return fmt.Errorf("sqlite: read the deleted records of %s: %w", k, err)
		}
		for rs.Next() {
			g := gone{kind: k, at: syncedAt}
			if err := rs.Scan(&g.company, &g.vendor, &g.vendorID); err != nil {
				rs.Close()
				return fmt.Errorf("sqlite: read the deleted records of %s: %w", k, err)
			}
			marked = append(marked, g)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("sqlite: read the deleted records of %s: %w", k, err)
		}
	}
	if len(rules.Children) > 0 {
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+keepTable+` (
	company TEXT NOT NULL, vendor TEXT NOT NULL, parent_id TEXT NOT NULL, child_id TEXT NOT NULL,
	PRIMARY KEY (company, vendor, parent_id, child_id)) WITHOUT ROWID`); err != nil {
			return fmt.Errorf("sqlite: create the table of named children: %w", err)
		}
	}
	for _, cr := range rules.Children {
		parents, err := refArg(cr.Parents)
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		keep, err := jsonArg(len(cr.Keep), func(i int) []string {
			c := cr.Keep[i]
			return []string{c.Company, c.Vendor, c.ParentID, c.ChildID}
		})
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM temp.`+keepTable); err != nil {
			return fmt.Errorf("sqlite: clear the table of named children: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO temp.`+keepTable+` SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)`, keep); err != nil {
			return fmt.Errorf("sqlite: fill the table of named children: %w", err)
		}
		// The parents whose stored version is not newer than the batch's
		// (written, or skipped as saying the same), then their live
		// children of the kind that the set does not name.
		q := fmt.Sprintf(`UPDATE %[2]s AS c SET %[4]s
FROM (SELECT t.company, t.vendor, t.vendor_id FROM json_each(?1) AS p
	JOIN %[1]s AS t ON t.company = p.value->>0 AND t.vendor = p.value->>1 AND t.vendor_id = p.value->>2
	WHERE t.modified_at <= p.value->>3) AS p
WHERE c.company = p.company AND c.vendor = p.vendor AND c.parent_kind = '%[3]s' AND c.parent_id = p.vendor_id
AND c.parent_id IS NOT NULL AND c.deleted = 0
AND NOT EXISTS (SELECT 1 FROM temp.%[5]s AS k WHERE k.company = c.company AND k.vendor = c.vendor AND k.parent_id = c.parent_id AND k.child_id = c.vendor_id)
RETURNING company, vendor, vendor_id, deleted_at`, cr.ParentKind, cr.ChildKind, cr.ParentKind, markSet("?2", quote(model.DeletedFromParent)), keepTable)
		g, err := collect(ctx, tx, cr.ChildKind, q, parents, syncedAt)
		if err != nil {
			return fmt.Errorf("sqlite: mark the %s gone from their %s: %w", cr.ChildKind, cr.ParentKind, err)
		}
		marked = append(marked, g...)
	}
	if len(rules.Children) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM temp.`+keepTable); err != nil {
			return fmt.Errorf("sqlite: clear the table of named children: %w", err)
		}
	}
	_, err := s.cascade(ctx, tx, marked, syncedAt)
	return err
}

func refArg(refs []rows.ParentRef) (string, error) {
	return jsonArg(len(refs), func(i int) []string {
		r := refs[i]
		return []string{r.Company, r.Vendor, r.VendorID, r.ModifiedAt.Format(timeLayout)}
	})
}

// Delete implements sinks.Sink: in one transaction, one statement per kind
// marks the named live rows, then their live descendants are marked level
// by level.
func (s *Sink) Delete(ctx context.Context, tombstones []model.Tombstone) (int, error) {
	if len(tombstones) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: delete: %w", err)
	}
	if s.version < rows.DeletionSince {
		return 0, fmt.Errorf("sqlite: delete: %w", errNoTombstones)
	}
	groups, kinds, err := rows.PlanTombstones(tombstones)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %w", err)
	}
	var n int
	err = s.retryBusy(ctx, func() error {
		var err error
		n, err = s.deleteOnce(ctx, groups, kinds)
		return err
	})
	return n, err
}

func (s *Sink) deleteOnce(ctx context.Context, groups map[model.Kind][]rows.Tomb, kinds []model.Kind) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	now := time.Now().UTC().Format(timeLayout)
	var marked []gone
	for _, k := range kinds {
		g := groups[k]
		arg, err := jsonArg(len(g), func(i int) []string {
			t := g[i]
			return []string{t.Company, t.Vendor, t.VendorID, t.At.Format(timeLayout), t.Via}
		})
		if err != nil {
			return 0, fmt.Errorf("sqlite: delete: %w", err)
		}
		q := fmt.Sprintf(`UPDATE %s AS c SET %s
FROM (SELECT value->>0 AS company, value->>1 AS vendor, value->>2 AS vendor_id, value->>3 AS at, value->>4 AS via FROM json_each(?1)) AS d
WHERE c.company = d.company AND c.vendor = d.vendor AND c.vendor_id = d.vendor_id AND c.deleted = 0
RETURNING company, vendor, vendor_id, deleted_at`, k, markSet("d.at", "d.via"))
		m, err := collect(ctx, tx, k, q, arg, now)
		if err != nil {
			return 0, fmt.Errorf("sqlite: delete %s: %w", k, err)
		}
		marked = append(marked, m...)
	}
	n, err := s.cascade(ctx, tx, marked, now)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: delete: commit: %w", err)
	}
	return len(marked) + n, nil
}

// Live implements sinks.Sink: it reads the live rows of the scope a page
// at a time, in vendor id order, and calls fn for each.
func (s *Sink) Live(ctx context.Context, sc sinks.Scope, fn func(model.LiveRecord) error) error {
	t, ok := rows.Lookup(sc.Kind)
	if !ok {
		return fmt.Errorf("sqlite: live: unknown kind %q", sc.Kind)
	}
	if s.version < rows.DeletionSince {
		return fmt.Errorf("sqlite: live: %w", errNoTombstones)
	}
	const live = `SELECT vendor_id, modified_at FROM %s
WHERE company = ? AND vendor = ? AND deleted = 0 AND vendor_id > ? ORDER BY vendor_id LIMIT %d`
	q := fmt.Sprintf(live, t.Name, livePage) //nolint:gosec // G201: the table name comes from rows.Tables, never from input
	after := ""
	page := make([]model.LiveRecord, 0, livePage)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sqlite: live: %w", err)
		}
		page = page[:0]
		rs, err := s.r.QueryContext(ctx, q, sc.Company, sc.Vendor, after)
		if err != nil {
			return fmt.Errorf("sqlite: live %s: %w", sc.Kind, err)
		}
		for rs.Next() {
			var (
				l  model.LiveRecord
				at string
			)
			if err := rs.Scan(&l.VendorID, &at); err != nil {
				rs.Close()
				return fmt.Errorf("sqlite: live %s: %w", sc.Kind, err)
			}
			if l.ModifiedAt, err = time.Parse(timeLayout, at); err != nil {
				rs.Close()
				return fmt.Errorf("sqlite: live %s: modified_at: %w", sc.Kind, err)
			}
			page = append(page, l)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("sqlite: live %s: %w", sc.Kind, err)
		}
		for i, l := range page {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("sqlite: live: %w", err)
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

// Purge implements sinks.Sink: one transaction removes the company's and
// vendor's tombstones deleted before the time from every table.
func (s *Sink) Purge(ctx context.Context, company, vendor string, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", err)
	}
	if s.version < rows.DeletionSince {
		return 0, fmt.Errorf("sqlite: purge: %w", errNoTombstones)
	}
	cut := rows.StoredTime(before).Format(timeLayout)
	var n int
	err := s.retryBusy(ctx, func() error {
		n = 0
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: purge: begin: %w", err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		for _, t := range rows.Tables {
			res, err := tx.ExecContext(ctx, "DELETE FROM "+t.Name+" WHERE company = ? AND vendor = ? AND deleted <> 0 AND deleted_at < ?", company, vendor, cut) //nolint:gosec // G202: the table name comes from rows.Tables, never from input
			if err != nil {
				return fmt.Errorf("sqlite: purge %s: %w", t.Name, err)
			}
			m, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("sqlite: purge %s: %w", t.Name, err)
			}
			n += int(m)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: purge: commit: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Tombstone returns when and how the deletion of a deleted row was
// learned; false for a live or absent row.
func (s *Sink) Tombstone(ctx context.Context, k model.Key) (model.Tombstone, bool, error) {
	t, ok := rows.Lookup(k.Kind)
	if !ok {
		return model.Tombstone{}, false, fmt.Errorf("sqlite: unknown kind %q", k.Kind)
	}
	var at, via sql.NullString
	err := s.r.QueryRowContext(ctx, "SELECT deleted_at, deleted_via FROM "+t.Name+" WHERE company = ? AND vendor = ? AND vendor_id = ? AND deleted <> 0",
		k.Company, k.Vendor, k.VendorID).Scan(&at, &via)
	if errors.Is(err, sql.ErrNoRows) {
		return model.Tombstone{}, false, nil
	}
	if err != nil {
		return model.Tombstone{}, false, fmt.Errorf("sqlite: read the tombstone: %w", err)
	}
	out := model.Tombstone{Key: k, Via: model.DeletionSource(via.String)}
	if at.Valid {
		if out.At, err = time.Parse(timeLayout, at.String); err != nil {
			return model.Tombstone{}, false, fmt.Errorf("sqlite: read the tombstone: deleted_at: %w", err)
		}
	}
	return out, true, nil
}
