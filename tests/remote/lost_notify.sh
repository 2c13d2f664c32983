#!/usr/bin/env bash
# A lost notify (issue 17 §3; docs/REMOTE.md, "Learning of a new version"):
# three `strata follow` processes watch HEAD (the watch is on) and poll it
# every 300 ms, while the publisher publishes with `--no-notify`, so no
# notification ever reaches them: each must still move to every new version
# through its polls. Three versions are published that way (a region
# replaced, one added, one removed); after each, every follower must come
# to hold exactly the version's files, byte for byte, with no temporary
# file, and pass `strata verify` once stopped.
#   lost_notify.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/fault_lib.sh"
P=$WORK/pub
MiB=1048576
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

random_region "$P" a 1 a $MiB $((MiB / 3))
random_region "$P" b 2 b $((2 * MiB))
save_state "$P" v1
push "$P" --no-notify >push.out 2>&1 || fail "push v1: $(cat push.out)"
for n in 1 2 3; do
  "$STRATA" follow "$WORK/f$n" --remote "$REMOTE" --conf "$CONF" \
    --poll-ms 300 >"follow$n.out" 2>&1 &
  pids+=($!)
done

serves() { $CHECK files "$1" >"$1.files" && cmp -s "$1.files" "$WORK/states/$2.json"; }
converged() { # every follower serves state $1
  local n
  for n in 1 2 3; do
    wait_until 60 "follower f$n serving $1 (notify suppressed)" serves "$WORK/f$n" "$1"
    clean_follower "$WORK/f$n"
  done
}
converged v1
random_region "$P" a 1 a $((MiB + 12345))
save_state "$P" v2
push "$P" --no-notify >push.out 2>&1 || fail "push v2: $(cat push.out)"
converged v2
random_region "$P" c 3 c $((MiB / 2)) 4096
save_state "$P" v3
push "$P" --no-notify >push.out 2>&1 || fail "push v3: $(cat push.out)"
converged v3
rm "$P/b.region"
save_state "$P" v4
push "$P" --no-notify >push.out 2>&1 || fail "push v4: $(cat push.out)"
converged v4
stop_all
for n in 1 2 3; do
  "$STRATA" verify "$WORK/f$n" >verify.out 2>&1 || fail "strata verify f$n: $(cat verify.out)"
done
head_state head.json
[ "$(is_state head.json)" = v4 ] || fail "HEAD is not v4"
echo "ok: three followers converged to four versions without a notify"
