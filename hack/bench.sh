#!/usr/bin/env bash
# Runs every benchmark and prints the figures as `BENCH <name> <value> <unit>`
# lines (the full output goes to bin/bench.log).
#
# Benchmarks print their own BENCH lines. Go benchmarks run once each
# (-benchtime=1x): each one does a fixed, realistic amount of work and
# measures it. Measurements that need a process of their own (peak RSS) are
# scripts in hack/bench.d/, each printing BENCH lines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bin
log=bin/bench.log
: > "$log"
status=0
# Only the packages that have benchmarks: the others' TestMain (the envtest
# and e2e suites) would start control planes for nothing.
mapfile -t pkgs < <(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -n1 dirname | sort -u)
go test -run '^$' -bench . -benchtime=1x -timeout 60m "${pkgs[@]}" 2>&1 | tee -a "$log" | grep --line-buffered '^BENCH ' || status=$?
for s in hack/bench.d/*.sh; do
  [[ -e $s ]] || continue
  bash "$s" 2>&1 | tee -a "$log" | grep --line-buffered '^BENCH ' || status=$?
done
if grep -qE '^(FAIL|--- FAIL|panic:)' "$log"; then
  echo "bench: a benchmark failed; see $log" >&2
  exit 1
fi
exit 0
