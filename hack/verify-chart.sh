#!/usr/bin/env bash
# Fails when the Helm chart's copies of generated or shared files differ from
# their sources (Helm reads only files inside the chart, so it keeps copies):
#   charts/erpsync-operator/crds/          = config/crd/bases/
#   charts/erpsync-operator/files/role.yaml   = config/rbac/role.yaml
#   charts/erpsync-operator/files/alerts.yaml = config/prometheus/alerts.yaml
#   charts/erpsync-operator/files/dashboard.json = config/grafana/erpsync.json
#     (once that file exists)
# With --fix it copies the sources over instead. `make verify` runs it; the
# Go test test/chart checks the same (TestChartCopiesMatchConfig).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
chart=charts/erpsync-operator
fix=false
if [[ ${1:-} == --fix ]]; then fix=true; fi

pairs=(
  "config/rbac/role.yaml $chart/files/role.yaml"
  "config/prometheus/alerts.yaml $chart/files/alerts.yaml"
)
if [[ -e config/grafana/erpsync.json ]]; then
  pairs+=("config/grafana/erpsync.json $chart/files/dashboard.json")
fi
stale=0
# The CRDs: the same set of files, byte for byte.
if ! diff -r config/crd/bases "$chart/crds" >/dev/null 2>&1; then
  if $fix; then
    rm -f "$chart"/crds/*.yaml
    cp config/crd/bases/*.yaml "$chart/crds/"
    echo "verify-chart: copied config/crd/bases to $chart/crds"
  else
    echo "verify-chart: $chart/crds differs from config/crd/bases: run hack/verify-chart.sh --fix and commit" >&2
    diff -r config/crd/bases "$chart/crds" >&2 || true
    stale=1
  fi
fi
for p in "${pairs[@]}"; do
  read -r src dst <<<"$p"
  if ! cmp -s "$src" "$dst"; then
    if $fix; then
      cp "$src" "$dst"
      echo "verify-chart: copied $src to $dst"
    else
      echo "verify-chart: $dst differs from $src: run hack/verify-chart.sh --fix and commit" >&2
      diff "$src" "$dst" >&2 || true
      stale=1
    fi
  fi
done
exit $stale
