#!/usr/bin/env bash
# The README's first command: installs what is missing, builds Strata, builds
# the sample regions from regions/ and reads them with the strata CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cmake --build build --target regions
cli=build/tools/strata_cli/strata
show() { printf '\n$ %s\n' "$*"; "$@"; }
for region in build/regions/*.region; do
  show "$cli" verify "$region"
done
first=$(ls build/regions/*.region | head -n1)
show "$cli" inspect "$first"
show "$cli" ls "$first"
# Read the smallest layer by name: a pointer into the mapping, written out.
name=$("$cli" ls "$first" | sort -t$'\t' -k2,2n | head -n1 | cut -f3)
show "$cli" cat "$first" "$name"
