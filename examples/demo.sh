#!/usr/bin/env bash
# The README's first command. As root on Debian 12 it installs the few
# packages the demo needs (a compiler, CMake, pkg-config and the library's
# three -dev packages: not the test, fuzzing or benchmark tools, which
# .ci/deps.sh adds), builds the library and the two tools into build-demo/,
# then shows both sides of Strata:
#   1. region files: the sample regions of regions/, built by region-builder
#      and read with strata verify, inspect, ls and cat;
#   2. a store: a directory of regions made with region-builder, read as a
#      path of layers with strata context, changed with put and crystallize,
#      and its whole state as JSON (strata dump-state).
# STRATA_JOBS sets the build's parallel jobs (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libjansson-dev libxxhash-dev libnuma-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "demo: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build="build-demo"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_BUILD_TESTS=OFF \
  -DSTRATA_BUILD_EXAMPLES=OFF -DSTRATA_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"${STRATA_JOBS:-$(nproc)}" --target strata_cli region-builder
cmake --build "$build" --target regions
cli=$build/tools/strata_cli/strata
builder=$build/tools/region_builder/region-builder
show() { # COMMAND ARGS...: prints it as a shell would take it, then runs it
  local arg line=
  for arg in "$@"; do
    [[ $arg =~ ^[][A-Za-z0-9_./:=,+-]+$ ]] || arg="'${arg//\'/\'\\\'\'}'"
    line+=" $arg"
  done
  printf '\n$%s\n' "$line"
  "$@"
}

printf '\n==== 1. Region files ====\n'
regions=("$build"/regions/*.region)
for region in "${regions[@]}"; do
  show "$cli" verify "$region"
done
first=${regions[0]}
show "$cli" inspect "$first"
show "$cli" ls "$first"
# Read the smallest layer by name: a pointer into the mapping, written out.
name=$("$cli" ls "$first" | sort -t$'\t' -k2,2n | head -n1 | cut -f3)
show "$cli" cat "$first" "$name"

printf '\n==== 2. A store: a directory of regions ====\n'
store=$build/store
rm -rf "$store"
mkdir "$store"
# Two regions, from a manifest and from a directory tree.
show "$builder" -q -o "$store/licenses.region" regions/licenses/manifest.json
show "$builder" -q -o "$store/manuals.region" --from-dir regions/manuals \
  --id 2 --name manuals --metadata '{"source":"Debian manual pages"}'
show "$cli" verify "$store"
# A path of layers, by region and layer name or id, read in one snapshot:
# the text to put in a prompt.
show "$cli" context "$store" licenses:gpl-3/section-17 manuals:0
# A new layer (id 100) in region licenses; put crystallizes the region: a
# new licenses.region is written beside the old one and renamed over it.
printf 'Notes of the demo: layers can be added to a served region.\n' >"$store.note"
show "$cli" put "$store" licenses 100 "$store.note" --name demo/note \
  --metadata '{"keywords":["demo","notes"],"frequency":1}'
show "$cli" context "$store" licenses:demo/note
# Rewrite the region's file afresh from its content (put did it already;
# this is what an application calls after a batch of changes).
show "$cli" crystallize "$store" licenses
show "$cli" verify "$store/licenses.region"
# The store's whole state, as an application sees its own.
show "$cli" dump-state "$store"
printf '\ndemo: done; the build is in %s, the store in %s\n' "$build" "$store"
