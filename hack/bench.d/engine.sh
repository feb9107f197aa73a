#!/usr/bin/env bash
# Peak RSS of a full engine run of 200,000 and of 1,000,000 synthetic
# products into a discarding sink, each in a process of its own, as
# `BENCH engine_peak_rss_mib_<size> <n> MiB` lines. One page and one batch
# are in flight whatever the size; what grows is the distinct-id set of the
# pass (8 bytes a document, kept while the vendor reports a total, so that a
# pass short of it is repeated), which the garbage collector's pacing about
# doubles in RSS: some 20 MiB more at a million documents in one entity.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p bin
go build -o bin/enginebench ./internal/engine/enginebench
bin/enginebench -n 200000 -name engine_peak_rss_mib_200k
bin/enginebench -n 1000000 -name engine_peak_rss_mib_1m
