package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

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
			return sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside, Tombstone: s.Tombstone}
		},
	})
}

// getSetAside is the suite's reader of set-aside documents.
func (s *Sink) getSetAside(ctx context.Context, k model.Key) (model.SetAside, bool, error) {
	e, ok, err := s.GetSetAside(ctx, k)
	return e.SetAside, ok, err
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
	if err := rs.Err(); err != nil {
		t.Fatal(err)
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
	if v, err := s.SchemaVersion(ctx); err != nil || v != rows.LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, rows.LatestVersion())
	}
	target := sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside}
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
	sinktest.ExpectStored(t, target, newer...)
	sinktest.ExpectStored(t, target, same...)
	item := sinktest.SetAsideItem(model.KindInvoice, "acme", "unleashed", "a", 6)
	if err := s.SetAside(ctx, []model.SetAside{item}); err != nil {
		t.Fatalf("SetAside after upgrade: %v", err)
	}
	sinktest.ExpectSetAside(t, target, item)
}

// TestMigrateToTombstones writes at the schema version before tombstones
// (live rows and rows their vendor deleted), migrates, and checks that
// every row is kept, the deleted ones became tombstones learned from their
// vendor at their synced_at, and the deletion rules hold on the old rows.
func TestMigrateToTombstones(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "erpsync.db")
	old, err := Open(ctx, Options{Path: path, schemaVersion: rows.DeletionSince - 1})
	if err != nil {
		t.Fatal(err)
	}
	w := sinktest.During(func() {
		if _, err := old.Write(ctx, sinktest.UpgradeBatch()); err != nil {
			t.Fatal(err)
		}
	})
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, Options{Path: path})
	if v, err := s.SchemaVersion(ctx); err != nil || v != rows.LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, rows.LatestVersion())
	}
	sinktest.ExpectUpgradedTombstones(t, sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside, Tombstone: s.Tombstone}, w)
}

// TestSeveralOpenersShareOneFile opens the same file from several sinks at
// once (as several managers would): migrations apply once and writes from
// every sink land.
func TestSeveralOpenersShareOneFile(t *testing.T) {
	ctx := context.Background()
	retried := busyRetries.Load()
	defer func() { t.Logf("%d SQLITE_BUSY answers retried", busyRetries.Load()-retried) }()
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
	if err := sinksOpen[0].r.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&applied); err != nil || applied != rows.LatestVersion() {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", applied, err, rows.LatestVersion())
	}
}

// TestOpenWhileOthersWrite has several sinks open one new file and write to
// it at once, with no barrier between opening and writing: openers migrate
// while others already write, as a manager restarting beside its
// predecessor does.
func TestOpenWhileOthersWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	const openers, batches = 6, 4
	var wg sync.WaitGroup
	errs := make([]error, openers)
	for i := range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = openAndWrite(ctx, path, fmt.Sprintf("c%d", i), batches)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("opener %d: %v", i, err)
		}
	}
	checkShared(t, path, openers, batches)
}

// openAndWrite opens path, writes batches of every kind for a company
// (each batch newer than the last, plus the same key of a shared company),
// sets a document aside and closes.
func openAndWrite(ctx context.Context, path, company string, batches int) error {
	s, err := Open(ctx, Options{Path: path})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	err = func() error {
		for v := 1; v <= batches; v++ {
			batch := append(sinktest.AllKinds(company, "v", "x", v), sinktest.Record(model.KindProduct, "shared", "v", company, v))
			if _, err := s.Write(ctx, batch); err != nil {
				return fmt.Errorf("write %d: %w", v, err)
			}
		}
		if err := s.SetAside(ctx, []model.SetAside{sinktest.SetAsideItem(model.KindInvoice, company, "v", "unmapped", 1)}); err != nil {
			return fmt.Errorf("set aside: %w", err)
		}
		return nil
	}()
	return errors.Join(err, s.Close())
}

// checkShared checks what openers × openAndWrite left in the file.
func checkShared(t *testing.T, path string, openers, batches int) {
	t.Helper()
	ctx := context.Background()
	s := open(t, Options{Path: path})
	tg := sinktest.Target{Sink: s, Get: s.Get, GetSetAside: s.getSetAside}
	for i := range openers {
		c := fmt.Sprintf("c%d", i)
		sinktest.ExpectStored(t, tg, sinktest.AllKinds(c, "v", "x", batches)...)
		sinktest.ExpectStored(t, tg, sinktest.Record(model.KindProduct, "shared", "v", c, batches))
		sinktest.ExpectSetAside(t, tg, sinktest.SetAsideItem(model.KindInvoice, c, "v", "unmapped", 1))
	}
	var applied int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&applied); err != nil || applied != rows.LatestVersion() {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", applied, err, rows.LatestVersion())
	}
}

// The helper process of TestSeveralProcessesShareOneFile: with these
// variables set, TestHelperOpenAndWrite is one opener.
const (
	envHelperPath    = "ERPSYNC_SQLITE_HELPER_PATH"
	envHelperCompany = "ERPSYNC_SQLITE_HELPER_COMPANY"
)

// TestSeveralProcessesShareOneFile starts several processes that open a
// new file, migrate it and write to it at once.
func TestSeveralProcessesShareOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	const procs, batches = 4, 4
	var wg sync.WaitGroup
	errs := make([]error, procs)
	outs := make([][]byte, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperOpenAndWrite$", "-test.count=1")
			cmd.Env = append(os.Environ(), envHelperPath+"="+path, fmt.Sprintf("%s=c%d", envHelperCompany, i))
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	checkShared(t, path, procs, batches)
}

// TestHelperOpenAndWrite is one process of TestSeveralProcessesShareOneFile;
// without its variables it does nothing.
func TestHelperOpenAndWrite(t *testing.T) {
	path := os.Getenv(envHelperPath)
	if path == "" {
		return
	}
	if err := openAndWrite(context.Background(), path, os.Getenv(envHelperCompany), 4); err != nil {
		t.Fatal(err)
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

// busyError returns a real SQLITE_BUSY error: a write on a connection that
// does not wait while another connection holds the write lock.
func busyError(t *testing.T) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busy.db")
	holder, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // test
	if _, err := tx.Exec("CREATE TABLE x (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.Begin()
	if !isBusy(err) {
		t.Fatalf("BEGIN IMMEDIATE beside a writer = %v, want SQLITE_BUSY", err)
	}
	return err
}

func TestRetryBusy(t *testing.T) {
	busy := busyError(t)
	s := &Sink{busy: 200 * time.Millisecond}
	t.Run("retried until it succeeds", func(t *testing.T) {
		n := 0
		err := s.retryBusy(context.Background(), func() error {
			if n++; n <= 3 {
				return fmt.Errorf("sqlite: migrate: begin: %w", busy)
			}
			return nil
		})
		if err != nil || n != 4 {
			t.Fatalf("retryBusy = %v after %d calls, want nil after 4", err, n)
		}
	})
	t.Run("gives up after the busy timeout", func(t *testing.T) {
		start := time.Now()
		n := 0
		err := s.retryBusy(context.Background(), func() error { n++; return busy })
		if d := time.Since(start); !isBusy(err) || d < 200*time.Millisecond || d > 2*time.Second || n < 3 {
			t.Fatalf("retryBusy = %v after %v and %d calls, want the busy error after about 200ms", err, d, n)
		}
	})
	t.Run("other errors are not retried", func(t *testing.T) {
		n := 0
		other := errors.New("disk I/O error")
		if err := s.retryBusy(context.Background(), func() error { n++; return other }); !errors.Is(err, other) || n != 1 {
			t.Fatalf("retryBusy = %v after %d calls, want the error after 1", err, n)
		}
	})
	t.Run("cancellation stops the retries", func(t *testing.T) {
		slow := &Sink{busy: time.Hour}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := slow.retryBusy(ctx, func() error { return busy })
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("retryBusy = %v after %v, want the context's error at once", err, time.Since(start))
		}
	})
}

// TestOpenWaitsForAWriter opens a file while another connection holds its
// write lock (as another process migrating it would): Open waits and
// succeeds once the lock is released.
func TestOpenWaitsForAWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "held.db")
	open(t, Options{Path: path, schemaVersion: 1})
	holder, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO schema_migrations (version, name) VALUES (99, 'held')"); err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	go func() {
		time.Sleep(hold)
		_ = tx.Rollback()
	}()
	start := time.Now()
	s := open(t, Options{Path: path, BusyTimeout: 5 * time.Second})
	if d := time.Since(start); d < hold {
		t.Fatalf("Open returned after %v, before the writer let go", d)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != rows.LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, rows.LatestVersion())
	}

}

// TestLiveCrossesPages lists with a page of 7 rows: every live row once.
func TestLiveCrossesPages(t *testing.T) {
	defer func(n int) { livePage = n }(livePage)
	livePage = 7
	s := open(t, Options{})
	sinktest.ExpectLivePages(t, sinktest.Target{Sink: s, Get: s.Get, Tombstone: s.Tombstone}, 50)
}

// TestOnlyTheNewestParentRules: of two versions of a parent in one batch,
// only the one stored applies its child sets.
func TestOnlyTheNewestParentRules(t *testing.T) {
	s := open(t, Options{})
	sinktest.ExpectOnlyTheNewestParentRules(t, sinktest.Target{Sink: s, Get: s.Get, Tombstone: s.Tombstone})
}
