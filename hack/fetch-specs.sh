#!/usr/bin/env bash
# Prints the directory holding the vendors' OpenAPI documents that the
# contract tests read (hack/specs.lock lists them), making it if need be:
#
#   1. $ERPSYNC_SPECS_DIR, when set (it must hold every file);
#   2. ../shared/specs beside the repository, when present (as on the
#      project's own machines and CI, which have no internet);
#   3. bin/specs, a cache filled by downloading each file from its
#      repository at the pinned commit and checking its SHA-256.
#
# When none of these works it fails with one sentence saying what to do.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/hack/specs.lock"

entries() { grep -v '^#' "$lock" | grep -v '^[[:space:]]*$'; }

# has_all DIR [verify]: every file present (and, with verify, matching its sum).
has_all() {
  local dir=$1 verify=${2:-} file repo commit path sum
  while read -r file repo commit path sum; do
    [[ -f "$dir/$file" ]] || return 1
    if [[ -n $verify ]] && [[ $(sha256sum "$dir/$file" | cut -d' ' -f1) != "$sum" ]]; then
      return 1
    fi
  done < <(entries)
}

if [[ -n ${ERPSYNC_SPECS_DIR:-} ]]; then
  if has_all "$ERPSYNC_SPECS_DIR"; then
    (cd "$ERPSYNC_SPECS_DIR" && pwd)
    exit 0
  fi
  echo "fetch-specs: ERPSYNC_SPECS_DIR=$ERPSYNC_SPECS_DIR lacks one of the files listed in hack/specs.lock; put them there or unset it" >&2
  exit 1
fi
if [[ -d "$root/../shared/specs" ]] && has_all "$root/../shared/specs"; then
  (cd "$root/../shared/specs" && pwd)
  exit 0
fi
cache="$root/bin/specs"
if has_all "$cache" verify; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache"
while read -r file repo commit path sum; do
  if [[ -f "$cache/$file" ]] && [[ $(sha256sum "$cache/$file" | cut -d' ' -f1) == "$sum" ]]; then
    continue
  fi
  tmp=$(mktemp "$cache/.$file.XXXXXX")
  url="https://raw.githubusercontent.com/$repo/$commit/$path"
  if ! curl -fsSL --retry 2 --connect-timeout 10 --max-time 120 -o "$tmp" "$url" 2>/dev/null; then
    rm -f "$tmp"
    echo "fetch-specs: the OpenAPI documents are in neither \$ERPSYNC_SPECS_DIR nor ../shared/specs, and downloading $file from $url failed: download the files listed in hack/specs.lock into a directory and set ERPSYNC_SPECS_DIR to it" >&2
    exit 1
  fi
  got=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [[ $got != "$sum" ]]; then
    rm -f "$tmp"
    echo "fetch-specs: $file from $url has SHA-256 $got, not the pinned $sum; refusing it (see hack/specs.lock)" >&2
    exit 1
  fi
  mv "$tmp" "$cache/$file"
done < <(entries)
echo "$cache"
