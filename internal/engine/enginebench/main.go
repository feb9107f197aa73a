// Command enginebench runs one full engine run of N synthetic products into
// a discarding sink and prints the process's peak resident set size (VmHWM)
// as a BENCH line. hack/bench.d/engine.sh runs it once per size, each in a
// process of its own, to show that memory stays flat however large the
// entity.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/internal/engine/enginetest"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

func main() {
	n := flag.Int("n", 200_000, "number of products")
	name := flag.String("name", "engine_peak_rss_mib", "BENCH figure name")
	flag.Parse()
	if err := run(*n, *name); err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
}

func run(n int, name string) error {
	sink := memory.New()
	sink.Discard = true
	conn := &enginetest.Synthetic{N: n, Vendor: "synthetic", Company: "BENCH"}
	start := time.Now()
	res, err := engine.Execute(context.Background(), engine.Run{Connector: conn, Sink: sink})
	if err != nil {
		return fmt.Errorf("running the engine: %w", err)
	}
	if res.Upserted != int64(n) {
		return fmt.Errorf("upserted %d of %d records", res.Upserted, n)
	}
	el := time.Since(start)
	hwm, err := peakRSSKiB()
	if err != nil {
		return err
	}
	fmt.Printf("# %d records in %s (%.0f records/s)\n", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	fmt.Printf("BENCH %s %.1f MiB\n", name, float64(hwm)/1024)
	return nil
}

// peakRSSKiB reads VmHWM, the peak resident set size, from /proc.
func peakRSSKiB() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %q: %w", line, err)
			}
			return kib, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading peak RSS: %w", err)
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
