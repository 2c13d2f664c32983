#!/usr/bin/env bash
# strata follow (docs/REMOTE.md, "Followers"): a follower started in the
# background, polling only (--no-watch --poll-ms 200: a push that notifies
# nobody it watches), serves the first version, moves to the next one after
# a push, and stops with status 0 on SIGTERM, releasing the store.
#   follow.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/lib.sh"
S=$WORK/src
push() { "$STRATA" push "$S" --remote "$REMOTE" --conf "$CONF"; }

make_region "$S" a 1 alpha 1000 2000
run_ok out push
"$STRATA" follow "$WORK/f" --remote "$REMOTE" --conf "$CONF" --no-watch \
  --poll-ms 200 >follow.out 2>follow.err &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
wait_for_line follow.out "$REMOTE: serving version 1 (1 regions, $(file_bytes "$S" a.region) bytes fetched)" 120
same_store "$S" "$WORK/f"

make_region "$S" b 2 beta 3000
run_ok out push
expect_text out "$REMOTE: published version 2 ("
total=$(file_bytes "$S" a.region b.region)
wait_for_line follow.out "$REMOTE: serving version 2 (2 regions, $total bytes fetched)" 120
same_store "$S" "$WORK/f"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
[ "$rc" = 0 ] || fail "follow exited $rc on SIGTERM: $(cat follow.err)"
[ ! -s follow.err ] || fail "follow wrote to stderr: $(cat follow.err)"
[ "$(wc -l <follow.out)" = 2 ] || fail "follow printed other lines: $(cat follow.out)"
# The lock is free again: a pull into the same directory works.
run_ok out "$STRATA" pull "$WORK/f" --remote "$REMOTE" --conf "$CONF"
expect_line out "$REMOTE: serving version 2 (2 regions, 0 bytes fetched)"
echo "ok"
