#!/usr/bin/env bash
# Peak RSS of a full engine run of 200,000 and of 1,000,000 synthetic
# products into a discarding sink, each in a process of its own, as
# `BENCH engine_peak_rss_mib_<size> <n> MiB` lines. The two figures show that
# memory stays flat however large the entity (one page and one batch in
# flight).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p bin
go build -o bin/enginebench ./internal/engine/enginebench
bin/enginebench -n 200000 -name engine_peak_rss_mib_200k
bin/enginebench -n 1000000 -name engine_peak_rss_mib_1m
