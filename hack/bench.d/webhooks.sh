#!/usr/bin/env bash
# Webhook latency (issue 14): the manager binary with its receiver and the
# PostgreSQL sink, a real kube-apiserver, erpsim's Xero, Katana, Unleashed
# and Cin7 Core; after the first imports, 200 records of each vendor edited
# over one minute (all at once, default debounce, interval 1h). Prints
# `BENCH <vendor>_webhook_latency_p50_ms`, `..._p95_ms` (change in erpsim
# to the row's synced_at in PostgreSQL) and `..._calls_per_event` (vendor
# requests during the phase per change); fails on any limit refusal the
# simulators counted, a change that never arrived, or a poll in the phase.
# See test/webhookbench.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p bin
go build -o bin/webhookbench ./test/webhookbench
bin/webhookbench -changes 200 -spread 1m
