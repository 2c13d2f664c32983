#!/bin/bash
# `strata dump` then region-builder must give back the same region, byte
# for byte (docs/CLI.md, "strata dump"). ctest runs it as cli_dump_roundtrip.
#
#   dump_roundtrip.sh STRATA REGION_BUILDER MAKE_FIXTURE WORK
#
# The regions are all those make_fixture writes: its dump/ ones, one per
# thing a dump must carry over (make_fixture.c says which), and the CLI
# cases' regions and stores; the damaged ones are left out (a dump refuses
# them: case dump_corrupt). For each: dump into a new directory, check what the
# dump holds (a manifest, one file per layer named by id, nothing else),
# rebuild, cmp.
set -u
strata=$1 builder=$2 make_fixture=$3 work=$4

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

rm -rf "$work"
mkdir -p "$work/in" "$work/out" || fail "mkdir $work"
"$make_fixture" "$work/in" > /dev/null || fail "make_fixture"

count=0
while IFS= read -r -d '' region; do
  case $(basename "$region") in
  corrupt.region | badsum.region | truncated.region) continue ;;
  esac
  count=$((count + 1))
  dump=$work/out/dump$count rebuilt=$work/out/rebuilt$count.region
  "$strata" dump "$region" "$dump" || fail "$region: strata dump failed"
  [[ -f $dump/manifest.json ]] || fail "$region: no manifest.json"
  layers=$("$strata" ls "$region" | wc -l)
  files=$(find "$dump/layers" -type f -name '*.bin' | wc -l)
  [[ $layers -eq $files ]] || fail "$region: $layers layers, $files files"
  extra=$(find "$dump" -mindepth 1 ! -path "$dump/layers" \
    ! -path "$dump/layers/*.bin" ! -path "$dump/manifest.json")
  [[ -z $extra ]] || fail "$region: unexpected files in the dump: $extra"
  "$builder" -q -o "$rebuilt" "$dump/manifest.json" ||
    fail "$region: region-builder refused the dump"
  cmp "$region" "$rebuilt" || fail "$region: the rebuilt region differs"
  echo "ok $region"
done < <(find "$work/in" -name '*.region' -print0 | sort -z)

[[ $count -ge 19 ]] || fail "only $count regions found"

# The dumps exercised what they are meant to: both metadata forms, ids
# written as strings, and a non-default alignment.
grep -q '"metadata_text": "{ \\"spaced\\" : true }"' "$work"/out/dump*/manifest.json ||
  fail "no metadata_text for non-compact metadata"
grep -q '"metadata": {' "$work"/out/dump*/manifest.json ||
  fail "no metadata given as a JSON value"
grep -q '"id": "18446744073709551615"' "$work"/out/dump*/manifest.json ||
  fail "no id above 2^63-1 written as a string"
grep -q '"align": 4096' "$work"/out/dump*/manifest.json ||
  fail "no alignment of 4096"
echo "$count regions dumped and rebuilt identically"
