package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/pgtest"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
	"github.com/erpsync/erpsync-operator/sinks/sinktest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var schemas atomic.Int64

// opener returns a function opening sinks in fresh schemas of one fresh
// database (a schema is much cheaper than a database).
func opener(t *testing.T) func(t *testing.T, o Options) *Sink {
	dsn := pgtest.Start(t)
	return func(t *testing.T, o Options) *Sink {
		t.Helper()
		o.DSN = dsn
		if o.Schema == "" {
			o.Schema = fmt.Sprintf("t%d", schemas.Add(1))
		}
		s, err := Open(context.Background(), o)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	open := opener(t)
	sinktest.Run(t, sinktest.Harness{
		Open: func(t *testing.T) sinktest.Target {
			s := open(t, Options{})
			return sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside, Tombstone: s.Tombstone}
		},
	})
}

// getSetAside is the suite's reader of set-aside documents.
func (s *Sink) getSetAside(ctx context.Context, k model.Key) (model.SetAside, bool, error) {
	e, ok, err := s.GetSetAside(ctx, k)
	return e.SetAside, ok, err
}

// TestDatabaseRejectionRollsBack makes the server itself reject a record
// (a NUL character, which PostgreSQL text cannot hold) after earlier kinds
// of the batch were merged in the same transaction: nothing stays.
func TestDatabaseRejectionRollsBack(t *testing.T) {
	ctx := context.Background()
	s := opener(t)(t, Options{})
	tg := sinktest.Target{Sink: s, Get: s.Get}
	good := sinktest.AllKinds("acme", "v", "a", 1)
	bad := sinktest.Record(model.KindShipment, "acme", "v", "zz", 1)
	bad.Data.(*model.Shipment).Carrier = "NZ\x00Post"
	_, err := s.Write(ctx, append(good, bad))
	var pe interface{ SQLState() string }
	if err == nil || !errors.As(err, &pe) {
		t.Fatalf("Write = %v, want a server error", err)
	}
	sinktest.ExpectAbsent(t, tg, good...)
}

func TestMigrationsAreAdditiveAndMatchTheColumns(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := rows.CheckNonDestructive(ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != rows.LatestVersion() {
		t.Fatalf("%d migrations, but the columns need version %d", len(ms), rows.LatestVersion())
	}
	open := opener(t)
	for v := 1; v <= len(ms); v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			s := open(t, Options{schemaVersion: v})
			for _, tb := range rows.Tables {
				want := append(append(rows.CommonColumnsAt(v), rows.TombstoneColumnsAt(v)...), rows.ColSyncedAt)
				for _, c := range tb.ColumnsAt(v) {
					want = append(want, c.Name)
				}
				got := columns(t, s, tb.Name)
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("table %s at v%d has columns %v, want %v", tb.Name, v, got, want)
				}
			}
			got := columns(t, s, rows.SetAsideTable)
			want := []string(nil)
			if v >= rows.HashSince {
				want = append(want, rows.SetAsideColumns...)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("table %s at v%d has columns %v, want %v", rows.SetAsideTable, v, got, want)
			}
		})
	}
}

func columns(t *testing.T, s *Sink, table string) []string {
	t.Helper()
	rs, err := s.pool.Query(context.Background(), "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2", s.schema, table)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrateFromPreviousVersionKeepsData writes at schema version 1, opens
// the schema with the current code (which migrates it) and checks that every
// row is kept, the new typed columns are filled from the stored payload and
// the rules hold across the upgrade.
func TestMigrateFromPreviousVersionKeepsData(t *testing.T) {
	ctx := context.Background()
	open := opener(t)
	old := open(t, Options{Schema: "upgrade", schemaVersion: 1})
	batch := append(sinktest.AllKinds("acme", "unleashed", "a", 2), sinktest.AllKinds("globex", "unleashed", "a", 3)...)
	if _, err := old.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(ctx); v != 1 {
		t.Fatalf("old schema version %d, want 1", v)
	}
	old.Close()
	s := open(t, Options{Schema: "upgrade"})
	if v, err := s.SchemaVersion(ctx); err != nil || v != rows.LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, rows.LatestVersion())
	}
	tg := sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside}
	sinktest.ExpectStored(t, tg, batch...)
	var barcode, taxNumber string
	if err := s.pool.QueryRow(ctx, "SELECT barcode FROM upgrade.products WHERE company = 'acme' AND vendor_id = 'a'").Scan(&barcode); err != nil {
		t.Fatal(err)
	}
	if want := sinktest.Record(model.KindProduct, "acme", "unleashed", "a", 2).Data.(*model.Product).Barcode; barcode != want {
		t.Errorf("backfilled barcode %q, want %q", barcode, want)
	}
	if err := s.pool.QueryRow(ctx, "SELECT tax_number FROM upgrade.customers WHERE company = 'globex' AND vendor_id = 'a'").Scan(&taxNumber); err != nil {
		t.Fatal(err)
	}
	if want := sinktest.Record(model.KindCustomer, "globex", "unleashed", "a", 3).Data.(*model.Customer).TaxNumber; taxNumber != want {
		t.Errorf("backfilled tax number %q, want %q", taxNumber, want)
	}
	older := sinktest.AllKinds("acme", "unleashed", "a", 1)
	if res, err := s.Write(ctx, older); err != nil || res != (sinks.WriteResult{Skipped: len(older)}) {
		t.Fatalf("older write after upgrade = %+v, %v", res, err)
	}
	// A row stored before the hash existed has none: the same content is
	// rewritten once, storing its hash, and skipped from then on.
	same := sinktest.AllKinds("globex", "unleashed", "a", 3)
	if res, err := s.Write(ctx, same); err != nil || res != (sinks.WriteResult{Upserted: len(same)}) {
		t.Fatalf("first redelivery after upgrade = %+v, %v", res, err)
	}
	if res, err := s.Write(ctx, same); err != nil || res != (sinks.WriteResult{Skipped: len(same)}) {
		t.Fatalf("second redelivery after upgrade = %+v, %v", res, err)
	}
	newer := sinktest.AllKinds("acme", "unleashed", "a", 5)
	if res, err := s.Write(ctx, newer); err != nil || res != (sinks.WriteResult{Upserted: len(newer)}) {
		t.Fatalf("newer write after upgrade = %+v, %v", res, err)
	}
	sinktest.ExpectStored(t, tg, newer...)
	sinktest.ExpectStored(t, tg, same...)
	item := sinktest.SetAsideItem(model.KindInvoice, "acme", "unleashed", "a", 6)
	if err := s.SetAside(ctx, []model.SetAside{item}); err != nil {
		t.Fatalf("SetAside after upgrade: %v", err)
	}
	sinktest.ExpectSetAside(t, tg, item)
}

// TestMigrateToTombstones writes at the schema version before tombstones
// (live rows and rows their vendor deleted), migrates, and checks that
// every row is kept, the deleted ones became tombstones learned from their
// vendor at their synced_at, and the deletion rules hold on the old rows.
func TestMigrateToTombstones(t *testing.T) {
	ctx := context.Background()
	open := opener(t)
	old := open(t, Options{Schema: "upgrade4", schemaVersion: rows.DeletionSince - 1})
	w := sinktest.During(func() {
		if _, err := old.Write(ctx, sinktest.UpgradeBatch()); err != nil {
			t.Fatal(err)
		}
	})
	old.Close()
	s := open(t, Options{Schema: "upgrade4"})
	if v, err := s.SchemaVersion(ctx); err != nil || v != rows.LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, rows.LatestVersion())
	}
	sinktest.ExpectUpgradedTombstones(t, sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside, Tombstone: s.Tombstone}, w)
}

// TestConcurrentStartUpMigratesOnce opens the same schema from several sinks
// at once, as several managers starting together would.
func TestConcurrentStartUpMigratesOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	const n = 5
	opened := make([]*Sink, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opened[i], errs[i] = Open(ctx, Options{DSN: dsn})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer opened[i].Close()
	}
	var versions []int32
	rs, err := opened[0].pool.Query(ctx, "SELECT version FROM erpsync.schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	if versions, err = pgx.CollectRows(rs, pgx.RowTo[int32]); err != nil {
		t.Fatal(err)
	}
	if len(versions) != rows.LatestVersion() || versions[len(versions)-1] != int32(rows.LatestVersion()) {
		t.Fatalf("schema_migrations %v, want 1 to %d", versions, rows.LatestVersion())
	}
}

func TestOpenErrorsHideTheDSN(t *testing.T) {
	const secret = "s3cr3t-pw"
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no DSN", Options{}},
		{"bad schema", Options{DSN: "host=/nonexistent password=" + secret, Schema: "Bad-Name"}},
		{"unparsable URL", Options{DSN: "postgres://u:" + secret + "@h:notaport/db"}},
		{"unparsable keyword form", Options{DSN: "host=x password=" + secret + " port=abc"}},
		{"unreachable", Options{DSN: "host=/nonexistent-dir port=1 user=u password=" + secret + " connect_timeout=1"}},
		{"unreachable URL", Options{DSN: "postgres://u:" + secret + "@127.0.0.1:1/db?connect_timeout=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.o)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error quotes the password: %v", err)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	for _, tc := range []struct{ dsn, msg string }{
		{"postgres://u:pa55word@h/db", "failed: postgres://u:pa55word@h/db"},
		{"host=h password=pa55word", "cannot parse `host=h password=pa55word`"},
		{"host=h password='pa 55word'", "password='pa 55word' is wrong"},
		{"postgres://u:pa55word@h/db", "user u with pa55word"},
	} {
		got := Scrub(errors.New(tc.msg), tc.dsn)
		if strings.Contains(got, "pa55word") || strings.Contains(got, "55word") {
			t.Errorf("Scrub(%q) = %q still has the password", tc.msg, got)
		}
	}
}

// BenchmarkPostgresWrite writes 100,000 new products in batches, then the
// same products with newer modified times, into a fresh schema, and prints
// the BENCH lines.
func BenchmarkPostgresWrite(b *testing.B) {
	dsn := pgtest.Start(b)
	n := 0
	sinktest.BenchInsertUpdate(b, "postgres", benchBatch, func(b *testing.B) sinks.Sink {
		n++
		s, err := Open(context.Background(), Options{DSN: dsn, Schema: fmt.Sprintf("bench%d", n)})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

const benchBatch = 2000

// TestLiveCrossesPages lists with a page of 7 rows: every live row once.
func TestLiveCrossesPages(t *testing.T) {
	defer func(n int) { livePage = n }(livePage)
	livePage = 7
	s := opener(t)(t, Options{})
	sinktest.ExpectLivePages(t, sinktest.Target{Sink: s, Get: s.Get, Tombstone: s.Tombstone}, 50)
}

// TestOnlyTheNewestParentRules: of two versions of a parent in one batch,
// only the one stored applies its child sets.
func TestOnlyTheNewestParentRules(t *testing.T) {
	s := opener(t)(t, Options{})
	sinktest.ExpectOnlyTheNewestParentRules(t, sinktest.Target{Sink: s, Get: s.Get, Tombstone: s.Tombstone})
}
