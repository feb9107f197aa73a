package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
	"github.com/erpsync/erpsync-operator/sinks/sinktest"
)

func open(t testing.TB, o Options) *Sink {
	t.Helper()
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "erpsync.db")
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Open: func(t *testing.T) sinktest.Target {
			s := open(t, Options{})
			return sinktest.Target{Sink: s, Get: s.Get}
		},
	})
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
	for v := 1; v <= len(ms); v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			s := open(t, Options{schemaVersion: v})
			for _, tb := range rows.Tables {
				want := append([]string(nil), rows.CommonColumns...)
				want = append(want, rows.ColSyncedAt)
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
		})
	}
}

func columns(t *testing.T, s *Sink, table string) []string {
	t.Helper()
	rs, err := s.r.Query("SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestMigrateFromPreviousVersionKeepsData writes at schema version 1, opens
// the file with the current code (which migrates it) and checks that every
// row is kept, the new typed columns are filled from the stored payload and
// the rules still hold across the upgrade.
func TestMigrateFromPreviousVersionKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "erpsync.db")
	old, err := Open(ctx, Options{Path: path, schemaVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	batch := append(sinktest.AllKinds("acme", "unleashed", "a", 2), sinktest.AllKinds("globex", "unleashed", "a", 3)...)
	if _, err := old.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(ctx); v != 1 {
		t.Fatalf("old schema version %d, want 1", v)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, Options{Path: path})
	if v, err := s.SchemaVersion(ctx); err != nil || v != 2 {
		t.Fatalf("schema version %d, %v; want 2", v, err)
	}
	target := sinktest.Target{Sink: s, Get: s.Get}
	sinktest.ExpectStored(t, target, batch...)
	var barcode, taxNumber string
	if err := s.r.QueryRow("SELECT barcode FROM products WHERE company = 'acme' AND vendor_id = 'a'").Scan(&barcode); err != nil {
		t.Fatal(err)
	}
	if want := batch[7].Data.(*model.Product).Barcode; barcode != want {
		t.Errorf("backfilled barcode %q, want %q", barcode, want)
	}
	if err := s.r.QueryRow("SELECT tax_number FROM customers WHERE company = 'globex' AND vendor_id = 'a'").Scan(&taxNumber); err != nil {
		t.Fatal(err)
	}
	if want := sinktest.Record(model.KindCustomer, "globex", "unleashed", "a", 3).Data.(*model.Customer).TaxNumber; taxNumber != want {
		t.Errorf("backfilled tax number %q, want %q", taxNumber, want)
	}
	older := sinktest.AllKinds("acme", "unleashed", "a", 1)
	if res, err := s.Write(ctx, older); err != nil || res != (sinks.WriteResult{Skipped: len(older)}) {
		t.Fatalf("older write after upgrade = %+v, %v", res, err)
	}
	newer := sinktest.AllKinds("acme", "unleashed", "a", 5)
	if res, err := s.Write(ctx, newer); err != nil || res != (sinks.WriteResult{Upserted: len(newer)}) {
		t.Fatalf("newer write after upgrade = %+v, %v", res, err)
	}
	sinktest.ExpectStored(t, target, newer...)
}

// TestSeveralOpenersShareOneFile opens the same file from several sinks at
// once (as several managers would): migrations apply once and writes from
// every sink land.
func TestSeveralOpenersShareOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	const n = 4
	sinksOpen := make([]*Sink, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sinksOpen[i], errs[i] = Open(ctx, Options{Path: path})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { _ = sinksOpen[i].Close() })
	}
	for i, s := range sinksOpen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Write(ctx, sinktest.AllKinds(fmt.Sprintf("c%d", i), "v", "x", 1))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	counts, err := sinksOpen[0].Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != n {
		t.Fatalf("counts %v, want %d companies", counts, n)
	}
	var applied int
	if err := sinksOpen[0].r.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&applied); err != nil || applied != 2 {
		t.Fatalf("schema_migrations has %d rows (%v), want 2", applied, err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no path", Options{}},
		{"query in path", Options{Path: "/tmp/x.db?mode=ro"}},
		{"bad synchronous", Options{Path: "/tmp/x.db", Synchronous: "OFF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Open(context.Background(), tc.o); err == nil {
				_ = s.Close()
				t.Fatalf("Open accepted %+v", tc.o)
			}
		})
	}
}

// BenchmarkSQLiteWrite writes 100,000 new products in batches, then the same
// products with newer modified times, to a fresh file, and prints the
// BENCH lines.
func BenchmarkSQLiteWrite(b *testing.B) {
	sinktest.BenchInsertUpdate(b, "sqlite", benchBatch, func(b *testing.B) sinks.Sink {
		s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "bench.db")})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

const benchBatch = 2000
