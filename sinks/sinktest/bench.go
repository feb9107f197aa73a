package sinktest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// BenchRows is how many products the sink benchmarks write.
const BenchRows = 100_000

var (
	benchOnce     sync.Once
	benchProducts [2][]model.Record
)

// BenchProducts returns the benchmark's 100,000 products at version 1 and
// the same products at version 2 (newer modified times), built once.
func BenchProducts() (v1, v2 []model.Record) {
	benchOnce.Do(func() {
		benchProducts[0] = Products("acme", "unleashed", BenchRows, 1)
		benchProducts[1] = Products("acme", "unleashed", BenchRows, 2)
	})
	return benchProducts[0], benchProducts[1]
}

// WriteAll writes records in batches of size and returns the rows per
// second and the summed result.
func WriteAll(ctx context.Context, s sinks.Sink, recs []model.Record, size int) (float64, sinks.WriteResult, error) {
	var total sinks.WriteResult
	start := time.Now()
	for i := 0; i < len(recs); i += size {
		res, err := s.Write(ctx, recs[i:min(i+size, len(recs))])
		if err != nil {
			return 0, total, fmt.Errorf("batch at %d: %w", i, err)
		}
		total = total.Add(res)
	}
	return float64(len(recs)) / time.Since(start).Seconds(), total, nil
}

// BenchInsertUpdate is the body of a sink's write benchmark: per iteration
// it opens a fresh sink, writes the 100,000 new products, then the same
// products with newer modified times, and prints
//
//	BENCH sink_<name>_rows_per_sec <n> rows/s
//	BENCH sink_<name>_update_rows_per_sec <n> rows/s
//
// once (from the last iteration).
//
// ERPSYNC_BENCH_BATCH, when set, overrides the batch size (to compare sizes;
// the BENCH figures are at the default).
func BenchInsertUpdate(b *testing.B, name string, batchSize int, open func(b *testing.B) sinks.Sink) {
	ctx := context.Background()
	if v := os.Getenv("ERPSYNC_BENCH_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("ERPSYNC_BENCH_BATCH=%q is not a positive number", v)
		}
		batchSize = n
	}
	b.Logf("%s: %d products in batches of %d", name, BenchRows, batchSize)
	v1, v2 := BenchProducts()
	var insert, update float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := open(b)
		b.StartTimer()
		var res sinks.WriteResult
		var err error
		insert, res, err = WriteAll(ctx, s, v1, batchSize)
		if err != nil {
			b.Fatalf("insert: %v", err)
		}
		if res.Upserted != len(v1) {
			b.Fatalf("insert: %+v, want %d upserted", res, len(v1))
		}
		update, res, err = WriteAll(ctx, s, v2, batchSize)
		if err != nil {
			b.Fatalf("update: %v", err)
		}
		if res.Upserted != len(v2) {
			b.Fatalf("update: %+v, want %d upserted", res, len(v2))
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatalf("close: %v", err)
		}
	}
	b.ReportMetric(insert, "insert-rows/s")
	b.ReportMetric(update, "update-rows/s")
	printOnce(name, insert, update)
}

var printed sync.Map

func printOnce(name string, insert, update float64) {
	if _, dup := printed.LoadOrStore(name, true); dup {
		return
	}
	fmt.Printf("BENCH sink_%s_rows_per_sec %.0f rows/s\n", name, insert)
	fmt.Printf("BENCH sink_%s_update_rows_per_sec %.0f rows/s\n", name, update)
}
