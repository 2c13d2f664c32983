#!/usr/bin/env bash
# Stacks through the remote tier (docs/REMOTE.md, "Manifests", format 2):
# a store whose region has 2 delta files (a put, and a remove: a
# tombstone) is pushed and pulled into two followers, which then hold the
# same base and delta files and serve every layer with the publisher's
# bytes (the removed layer absent); one more small put uploads and fetches
# only the new delta's bytes (the counts push and pull print); a compaction
# on the publisher makes the next version a single base, which the
# followers converge to (their delta files unlinked); gc keeps the delta
# files' chunks while one of the K versions kept lists them, and removes
# them after.
#   push_deltas.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/lib.sh"
S=$WORK/src
push() { "$STRATA" push "$S" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M; }
pull() { "$STRATA" pull "$1" --remote "$REMOTE" --conf "$CONF"; }

# stack_files DIR: the region and delta files of DIR, sorted, one a line.
stack_files() { (cd "$1" && ls -1 -- *.region *.delta 2>/dev/null | LC_ALL=C sort) || true; }

# same_stack DST: DST holds exactly S's region and delta files, byte for
# byte, and serves every layer id of both regions as S does: the same
# bytes, or absent in both (a removed layer included; one id past each
# region's last).
same_stack() {
  local dst=$1 f rid lid
  [ "$(stack_files "$S")" = "$(stack_files "$dst")" ] ||
    fail "$dst holds $(stack_files "$dst" | tr '\n' ' '), expected $(stack_files "$S" | tr '\n' ' ')"
  for f in $(stack_files "$S"); do
    cmp -s "$S/$f" "$dst/$f" || fail "$dst/$f differs from the publisher's"
  done
  for rid in alpha beta; do
    for lid in $(seq 0 $([ $rid = alpha ] && echo 10 || echo 2)); do
      local a=0 b=0
      "$STRATA" get "$S" "$rid" "$lid" >get.src 2>/dev/null || a=$?
      "$STRATA" get "$dst" "$rid" "$lid" >get.dst 2>/dev/null || b=$?
      [ "$a" = "$b" ] || fail "$dst: get $rid $lid exits $b, the publisher's $a"
      cmp -s get.src get.dst || fail "$dst: region $rid layer $lid differs"
    done
  done
}

# chunks_of VERSION FILE: the chunk objects manifest VERSION lists for FILE.
chunks_of() {
  rados_ns get "$(printf 'manifest.%020d' "$1")" manifest.json
  "$PY" - manifest.json "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for r in m["regions"]:
    for f in [r] + r.get("deltas", []):
        if f["file"] == sys.argv[2]:
            for i in range(len(f["chunks"])):
                print("chunk.%s.%08x.%06d" % (f["hash"], m["chunk_size"], i))
PY
}

note "version 1: alpha with two delta files (a put, a remove), beta without"
make_region "$S" alpha 1 alpha 100000 5000 300 4096 70000 17 9000 2000 1 600
make_region "$S" beta 2 beta 5000 64
printf 'put one\n' | run_ok out "$STRATA" put "$S" alpha 3 -
run_ok out "$STRATA" rm "$S" alpha 5
[ -e "$S/alpha.1.delta" ] && [ -e "$S/alpha.2.delta" ] ||
  fail "expected alpha.1.delta and alpha.2.delta: $(ls "$S")"
bytes=$(file_bytes "$S" alpha.region alpha.1.delta alpha.2.delta beta.region)
run_ok out push
expect_line out "$REMOTE: published version 1 (2 regions, $bytes bytes uploaded)"
rados_ns get manifest.00000000000000000001 m1.json
"$PY" - m1.json <<'PY' || fail "manifest 1 does not list alpha's stack"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["format"] == 2, m["format"]
a, b = m["regions"]
assert [d["file"] for d in a["deltas"]] == ["alpha.1.delta", "alpha.2.delta"], a
assert a["deltas"][0]["parent_checksum"] == a["header_checksum"], a
assert a["deltas"][1]["parent_checksum"] == a["deltas"][0]["header_checksum"], a
assert b["deltas"] == [], b
PY
for f in f1 f2; do
  run_ok out pull "$WORK/$f"
  expect_line out "$REMOTE: serving version 1 (2 regions, $bytes bytes fetched)"
  same_stack "$WORK/$f"
  no_temp_files "$WORK/$f"
done
run_fails err "$STRATA" get "$WORK/f1" alpha 5
run_ok out "$STRATA" get "$WORK/f1" alpha 3
expect_line out "put one"

note "version 2: one more small put uploads and fetches only the new delta"
printf 'put two\n' | run_ok out "$STRATA" put "$S" alpha 7 -
[ -e "$S/alpha.3.delta" ] || fail "the put wrote no alpha.3.delta: $(ls "$S")"
d3=$(file_bytes "$S" alpha.3.delta)
run_ok out push
expect_line out "$REMOTE: published version 2 (2 regions, $d3 bytes uploaded)"
for f in f1 f2; do
  run_ok out pull "$WORK/$f"
  expect_line out "$REMOTE: serving version 2 (2 regions, $d3 bytes fetched)"
  same_stack "$WORK/$f"
done
delta_chunks=$(for d in alpha.1.delta alpha.2.delta alpha.3.delta; do chunks_of 2 "$d"; done)
[ "$(echo "$delta_chunks" | wc -l)" = 3 ] || fail "expected 3 delta chunks: $delta_chunks"

note "version 3: a compaction on the publisher; followers converge to one base"
run_ok out "$STRATA" crystallize "$S" alpha
[ -z "$(cd "$S" && ls -- *.delta 2>/dev/null)" ] || fail "the compaction left $(ls "$S")"
base=$(file_bytes "$S" alpha.region)
run_ok out push
expect_line out "$REMOTE: published version 3 (2 regions, $base bytes uploaded)"
rados_ns get manifest.00000000000000000003 m3.json
grep -q '"format": 1' m3.json || fail "version 3 has no delta: format 1 expected"
for f in f1 f2; do
  run_ok out pull "$WORK/$f"
  expect_line out "$REMOTE: serving version 3 (2 regions, $base bytes fetched)"
  same_stack "$WORK/$f"
done

note "gc: the delta files' chunks stay while a kept version lists them"
run_ok out "$STRATA" remote gc "$REMOTE" --conf "$CONF" --keep 2
"$PY" "$(dirname "$0")/remote_check.py" gc "$CONF" "$POOL" "$NAME" 2 >/dev/null ||
  fail "gc --keep 2 kept other than versions 2 and 3 reference"
rados_ns ls | LC_ALL=C sort >objs
for c in $delta_chunks; do
  grep -qxF "$c" objs || fail "gc removed $c, which version 2 lists"
done
rm "$S/beta.region"
make_region "$S" beta 2 beta 6000 65
run_ok out push
expect_text out "$REMOTE: published version 4 (2 regions, "
run_ok out "$STRATA" remote gc "$REMOTE" --conf "$CONF" --keep 2
"$PY" "$(dirname "$0")/remote_check.py" gc "$CONF" "$POOL" "$NAME" 2 >/dev/null ||
  fail "gc --keep 2 kept other than versions 3 and 4 reference"
rados_ns ls | LC_ALL=C sort >objs
for c in $delta_chunks; do
  ! grep -qxF "$c" objs || fail "gc kept $c, which no kept version lists"
done
run_ok out pull "$WORK/f1"
same_stack "$WORK/f1"
echo "ok"
