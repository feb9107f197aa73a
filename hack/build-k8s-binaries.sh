#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the Go module proxy (no release
# binary can be downloaded on our build machines) and caches them under
# bin/k8s/<version>/. The versions are pinned by the go.mod files under
# hack/k8s/, and must match the k8s.io/* versions in the root go.mod.
#
# Usage: hack/build-k8s-binaries.sh        prints the directory holding the binaries
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$root/hack/k8s/apiserver/go.mod")
k8s_version=${k8s_version:-$(grep -Eo 'k8s.io/kubernetes v[0-9.]+' "$root/hack/k8s/apiserver/go.mod" | awk '{print $2}')}
etcd_version=$(grep -Eo 'go.etcd.io/etcd/server/v3 v[0-9.]+' "$root/hack/k8s/etcd/go.mod" | awk '{print $2}' | head -1)
out="$root/bin/k8s/$k8s_version"
mkdir -p "$out"

major=$(echo "${k8s_version#v}" | cut -d. -f1)
minor=$(echo "${k8s_version#v}" | cut -d. -f2)
commit=$(echo -n "$k8s_version" | sha1sum | cut -c1-40)
build_date=1970-01-01T00:00:00Z
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

log() { echo "hack/build-k8s-binaries: $*" >&2; }

# stamp: rebuild when the pinning go.mod/go.sum change.
stamp_of() { cat "$root/hack/k8s/$1/go.mod" "$root/hack/k8s/$1/go.sum" "$0" | sha256sum | cut -c1-16; }

build() { # module name pkg ldflags
  local module=$1 name=$2 pkg=$3 flags=$4
  local stamp
  stamp=$(stamp_of "$module")
  if [[ -x "$out/$name" && -f "$out/.$name.stamp" && $(cat "$out/.$name.stamp") == "$stamp" ]]; then
    return 0
  fi
  log "building $name ($module) into $out; a cold build takes several minutes"
  local start=$SECONDS
  (cd "$root/hack/k8s/$module" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $flags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "$stamp" > "$out/.$name.stamp"
  log "built $name in $((SECONDS - start))s"
}

build etcd etcd ./cmd/etcd "-X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version"
build apiserver kube-apiserver ./cmd/kube-apiserver "$ldflags"
build apiserver kubectl ./cmd/kubectl "$ldflags"

echo "$out"
