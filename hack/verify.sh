#!/usr/bin/env bash
# Fails when generated files (CRD, RBAC, deepcopy) are stale, or when the code
# is not gofmt'ed, vet-clean or golangci-lint-clean (.golangci.yml). `make test`
# runs it first, so CI catches a committed CRD that no longer matches the Go
# types.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Generate into a scratch copy and compare, so verify never rewrites the tree.
mkdir -p "$tmp/crd" "$tmp/rbac"
go tool controller-gen rbac:roleName=manager-role crd paths="./api/...;./controllers/...;./internal/quotastore/..." \
  output:crd:artifacts:config="$tmp/crd" output:rbac:artifacts:config="$tmp/rbac"
cp api/v1alpha1/zz_generated.deepcopy.go "$tmp/deepcopy.before"
go tool controller-gen object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
stale=0
if ! cmp -s api/v1alpha1/zz_generated.deepcopy.go "$tmp/deepcopy.before"; then
  echo "verify: api/v1alpha1/zz_generated.deepcopy.go was stale; regenerated it: commit it (make generate)" >&2
  stale=1
fi
if ! diff -r "$tmp/crd" config/crd/bases >/dev/null; then
  echo "verify: config/crd/bases is stale: run 'make manifests' and commit" >&2
  diff -r "$tmp/crd" config/crd/bases >&2 || true
  stale=1
fi
if ! diff "$tmp/rbac/role.yaml" config/rbac/role.yaml >/dev/null; then
  echo "verify: config/rbac/role.yaml is stale: run 'make manifests' and commit" >&2
  diff "$tmp/rbac/role.yaml" config/rbac/role.yaml >&2 || true
  stale=1
fi
# The Helm chart's copies of the CRD, the manager's RBAC and the alerts.
if ! hack/verify-chart.sh; then
  stale=1
fi
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '^hack/k8s/') 2>/dev/null || true)
if [[ -n $unformatted ]]; then
  echo "verify: not gofmt'ed: $unformatted" >&2
  stale=1
fi
go vet ./...
# golangci-lint is pinned in hack/tools/go.mod, apart from the operator's own
# dependencies (see there). Its cache under bin/ makes a rerun take seconds;
# the first run builds the tool and analyses everything (a few minutes).
# Two verifies at once (two clones) take turns rather than fail.
if ! GOLANGCI_LINT_CACHE="$root/bin/golangci-lint-cache" go tool -modfile=hack/tools/go.mod golangci-lint run --allow-serial-runners ./...; then
  echo "verify: golangci-lint found problems (config: .golangci.yml)" >&2
  stale=1
fi
exit $stale
