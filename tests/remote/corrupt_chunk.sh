#!/usr/bin/env bash
# A corrupt chunk (docs/REMOTE.md, "Failure cases"): a chunk object
# overwritten in the pool with `rados put` (same size, other bytes) makes
# the pull fail naming that object, and the follower keeps serving its
# previous version's bytes with no temporary file left; `strata remote gc
# --verify` finds and removes it; the next push uploads it again and the
# pull converges.
#   corrupt_chunk.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/lib.sh"
S=$WORK/src
push() { "$STRATA" push "$S" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M; }
pull() { "$STRATA" pull "$WORK/f" --remote "$REMOTE" --conf "$CONF"; }
chunks() { rados_ns ls | grep '^chunk\.' | LC_ALL=C sort || true; }

note "version 1, pulled"
make_region "$S" a 1 alpha 300000 5
run_ok out push
run_ok out pull
same_store "$S" "$WORK/f"
cp -a "$S" "$WORK/v1"

note "version 2 with a corrupt chunk"
chunks >chunks.v1
make_region "$S" b 2 beta 1048576 600000
run_ok out push
expect_text out "$REMOTE: published version 2 ("
chunks >chunks.v2
# b's chunks are the new ones: 2 (1 MiB and the rest).
comm -13 chunks.v1 chunks.v2 >chunks.new
[ "$(wc -l <chunks.new)" = 2 ] || fail "expected 2 new chunks: $(cat chunks.new)"
bad=$(head -1 chunks.new)
rados_ns get "$bad" good.chunk
size=$(stat -c %s good.chunk)
head -c "$size" /dev/urandom >bad.chunk
rados_ns put "$bad" bad.chunk
run_fails err pull
expect_text err "$bad"
# Still version 1, byte for byte.
same_store "$WORK/v1" "$WORK/f"
no_temp_files "$WORK/f"

note "gc --verify removes it"
# It says so on stdout, and warns on stderr naming the object.
"$STRATA" remote gc --verify "$REMOTE" --conf "$CONF" >out 2>out.err ||
  fail "gc --verify failed: $(cat out.err)"
expect_text out ", of them 1 corrupt chunks"
grep -q "WARN remote: msg=\"corrupt chunk removed; the next push uploads it again\" remote=$REMOTE object=$bad " out.err ||
  fail "gc --verify: no WARN naming $bad: $(cat out.err)"
if rados_ns stat "$bad" >/dev/null 2>&1; then
  fail "$bad is still in the pool after gc --verify"
fi
run_ok out "$STRATA" remote gc --verify "$REMOTE" --conf "$CONF"
expect_text out ", of them 0 corrupt chunks"

note "the next push uploads it again; the pull converges"
# A push with nothing changed makes no version (and uploads nothing): a
# third region makes version 3, which names b's chunks again.
make_region "$S" c 3 gamma 1000
run_ok out push
expect_text out "$REMOTE: published version 3 ("
rados_ns get "$bad" again.chunk
cmp -s good.chunk again.chunk || fail "$bad uploaded again with other bytes"
run_ok out pull
expect_text out "$REMOTE: serving version 3 ("
same_store "$S" "$WORK/f"
no_temp_files "$WORK/f"
echo "ok"
