#!/usr/bin/env bash
# strata push / pull / remote ls / remote status, end to end
# (docs/REMOTE.md): a store built with region-builder is pushed and pulled
# into three follower directories, which then hold exactly its files and
# serve every layer with its bytes; a second version with a replaced, a new
# and a removed region uploads only what changed and the followers move to
# exactly the new set; ls and status report the versions and the pins.
#   push_pull.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/lib.sh"
S=$WORK/src
# Chunks of 1 MiB: region b spans several chunks, its last one short.
push() { "$STRATA" push "$S" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M; }
pull() { "$STRATA" pull "$1" --remote "$REMOTE" --conf "$CONF"; }

note "version 1: three regions"
make_region "$S" a 1 alpha 100 0 4096 70000
make_region "$S" b 2 beta 1048576 1500000 17
make_region "$S" c 3 gamma 5000
bytes=$(file_bytes "$S" a.region b.region c.region)
run_ok out push
expect_line out "$REMOTE: published version 1 (3 regions, $bytes bytes uploaded)"
run_ok out push
expect_line out "$REMOTE: already at version 1"

for f in f1 f2 f3; do
  run_ok out pull "$WORK/$f"
  expect_line out "$REMOTE: serving version 1 (3 regions, $bytes bytes fetched)"
  same_store "$S" "$WORK/$f"
  no_temp_files "$WORK/$f"
done
# A second pull with nothing new fetches nothing.
run_ok out pull "$WORK/f1"
expect_line out "$REMOTE: serving version 1 (3 regions, 0 bytes fetched)"

note "version 2: b replaced, c removed, d new"
v1_total=$bytes
rm "$S/b.region" "$S/c.region"
make_region "$S" b 2 beta 2000000 33
make_region "$S" d 4 delta 123456 0 9
changed=$(file_bytes "$S" b.region d.region)
v2_total=$(file_bytes "$S" a.region b.region d.region)
run_ok out push
# a.region is in the pool already: only b's and d's bytes go up.
expect_line out "$REMOTE: published version 2 (3 regions, $changed bytes uploaded)"
for f in f1 f2 f3; do
  run_ok out pull "$WORK/$f"
  expect_line out "$REMOTE: serving version 2 (3 regions, $changed bytes fetched)"
  same_store "$S" "$WORK/$f"
  no_temp_files "$WORK/$f"
  [ ! -e "$WORK/$f/c.region" ] || fail "$f still holds c.region"
done

note "remote ls"
run_ok out "$STRATA" remote ls "$REMOTE" --conf "$CONF"
printf '1\t3\t%s\t-\n2\t3\t%s\thead\n' "$v1_total" "$v2_total" >expect
diff expect out || fail "remote ls"
run_ok out "$STRATA" remote ls --json "$REMOTE" --conf "$CONF"
"$PY" - out "$POOL" "$NAME" "$v2_total" <<'PY' || fail "remote ls --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["pool"] == sys.argv[2] and d["name"] == sys.argv[3], d
assert d["head"]["version"] == 2, d["head"]
assert [v["version"] for v in d["versions"]] == [1, 2], d["versions"]
v2 = d["versions"][1]
assert v2["bytes"] == int(sys.argv[4]), v2
PY

note "remote status"
run_ok out "$STRATA" remote status "$REMOTE" --conf "$CONF"
expect_line out "remote: $REMOTE"
expect_text out "head: version 2, fence "
expect_line out "lock: free"
expect_line out "versions: 2"
expect_line out "pins: 3"
[ "$(grep -c ': serving 2, fetching -, written ' out)" = 3 ] ||
  fail "status: expected three pins serving 2: $(cat out)"
run_ok out "$STRATA" remote status --json "$REMOTE" --conf "$CONF"
"$PY" - out <<'PY' || fail "remote status --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["lock"] is None, d["lock"]
assert len(d["pins"]) == 3 and len({p["node"] for p in d["pins"]}) == 3, d["pins"]
assert all(p["serving"] == 2 for p in d["pins"]), d["pins"]
PY

note "a mistyped remote: an error; the local copy and the pool untouched"
typo="${NAME}-typo"
run_fails err "$STRATA" pull "$WORK/f1" --remote "$POOL/$typo" --conf "$CONF"
expect_text err "$POOL/$typo: head: no such remote store (no head object"
same_store "$S" "$WORK/f1"
no_temp_files "$WORK/f1"
[ -z "$(rados -c "$CONF" -p "$POOL" -N "$typo" ls)" ] ||
  fail "the pull wrote into $POOL/$typo: $(rados -c "$CONF" -p "$POOL" -N "$typo" ls)"
# Into a directory the pull would create: no directory is left.
run_fails err "$STRATA" pull "$WORK/new" --remote "$POOL/$typo" --conf "$CONF"
expect_text err "no such remote store"
[ ! -e "$WORK/new" ] || fail "a failed pull left $WORK/new: $(ls -A "$WORK/new")"

note "a corrupt HEAD: the pull fails at once, naming it, and leaves nothing"
# (No retry for the open's 60 s: a corrupt HEAD stays corrupt. No time is
# asserted; a retrying pull would show up as a slow test.)
bad="${NAME}-bad"
printf '{"format": 2}' >head.json
rados -c "$CONF" -p "$POOL" -N "$bad" put head head.json
run_fails err "$STRATA" pull "$WORK/new" --remote "$POOL/$bad" --conf "$CONF"
expect_text err "$POOL/$bad: head: the strata.version xattr is missing"
[ ! -e "$WORK/new" ] || fail "a failed pull left $WORK/new: $(ls -A "$WORK/new")"
echo "ok"
