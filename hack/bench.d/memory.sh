#!/usr/bin/env bash
# Peak RSS of the manager's sync path under the Deployment's
# --concurrent-syncs, every sync reading maximal Xero pages (1,000 documents
# filling the 32 MiB paged body cap) through the shared HTTP client, Xero's
# decoding and the engine, under the Deployment's GOMEMLIMIT. Prints
# `BENCH memory_peak_rss_mib <x> MiB` and `BENCH memory_limit_mib <y> MiB`
# (the Deployment's memory limit) and fails when the peak exceeds the limit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p bin
go build -o bin/membench ./internal/membench
bin/membench -manifest config/manager/manager.yaml
