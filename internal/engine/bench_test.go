package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/internal/engine/enginetest"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// BenchmarkEngineRecordsPerSec runs a full run of 200,000 products through
// the engine, from a connector that generates them page by page with no
// latency into a sink that discards them, and prints the throughput as a
// BENCH line (make bench runs it once, with -benchtime=1x).
func BenchmarkEngineRecordsPerSec(b *testing.B) {
	const n = 200_000
	var total time.Duration
	for b.Loop() {
		sink := memory.New()
		sink.Discard = true
		conn := &enginetest.Synthetic{N: n, Vendor: "synthetic", Company: "BENCH"}
		start := time.Now()
		res, err := Execute(context.Background(), Run{Connector: conn, Sink: sink})
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Upserted != n {
			b.Fatalf("upserted %d of %d", res.Upserted, n)
		}
	}
	perSec := float64(n) * float64(b.N) / total.Seconds()
	b.ReportMetric(perSec, "records/s")
	fmt.Printf("BENCH engine_records_per_sec %.0f records/s\n", perSec)
}
