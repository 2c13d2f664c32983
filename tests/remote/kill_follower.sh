#!/usr/bin/env bash
# kill -9 a follower mid-fetch, then restart it (issue 17 §3; docs/REMOTE.md,
# "Fetching version M", "The swap", "Failure cases"). Each round publishes
# a new version (one or two of five 1-3 MiB regions replaced, now and then a
# region added or removed; 1 MiB chunks), starts a follower on the follower
# directory and SIGKILLs it after a random delay spread over the time one
# whole fetch takes (measured once: a range for the delays, never a
# threshold). The follower killed is, in turn:
#   - `strata pull` (one sync),
#   - `strata follow` (the library's sync thread), and
#   - either of them with tests/builder's no_tmpfile shim preloaded, so that
#     the files being fetched carry the writer's temporary names
#     (.NAME.strata-tmp-XXXXXXXX) instead of being unnamed O_TMPFILEs: a
#     kill then leaves them behind, and the restart must remove them;
# so the kills land before the fetch, among the chunk reads, in the
# validation and in the swap (state "switching to M"). After each kill the
# follower is restarted with `strata pull`, which must succeed, and then:
#   - the directory holds exactly HEAD's files, byte for byte (SHA-256 of
#     each region file against the publisher's), and `strata verify` of the
#     store passes (every layer's checksum);
#   - no temporary file is left anywhere in it, and .strata-remote/ holds
#     the state only.
# Every third round restarts with `strata follow` instead and waits for it
# to serve HEAD's files, then stops it with SIGTERM. STRATA_REMOTE_KILLS
# (default 24) sets the rounds.
#   kill_follower.sh STRATA REGION_BUILDER WORK NO_TMPFILE_SHIM
. "$(dirname "$0")/fault_lib.sh"
SHIM=${1:?usage: kill_follower.sh STRATA REGION_BUILDER WORK NO_TMPFILE_SHIM}
KILLS=${STRATA_REMOTE_KILLS:-24}
RANDOM=${STRATA_REMOTE_SEED:-$$}
note "seed ${STRATA_REMOTE_SEED:-$$}, $KILLS kills"
P=$WORK/pub F=$WORK/f
MiB=1048576
follow_pid=

stop_follow() {
  [ -n "$follow_pid" ] || return 0
  kill -TERM "$follow_pid" 2>/dev/null || true
  wait "$follow_pid" 2>/dev/null || true
  follow_pid=
}
trap stop_follow EXIT

new_version() { # a changed $P, published; its state saved as s$1
  local i=$((RANDOM % 5 + 1))
  random_region "$P" "r$i" "$i" "r$i" $((MiB + RANDOM * 40)) $((RANDOM * 30))
  if ((RANDOM % 3 == 0)); then
    i=$((RANDOM % 5 + 1))
    random_region "$P" "r$i" "$i" "r$i" $((MiB / 2 + RANDOM * 40))
  fi
  case $((RANDOM % 4)) in
    0) random_region "$P" "x$1" "$((100 + $1))" "x$1" $((MiB + RANDOM * 10)) ;;
    1) rm -f "$P/$(ls "$P" | grep '^x.*\.region$' | head -1 || true)" 2>/dev/null || true ;;
  esac
  save_state "$P" "s$1"
  push "$P" >push.out 2>&1 || fail "push of state s$1 failed: $(cat push.out)"
}

for i in 1 2 3 4 5; do
  random_region "$P" "r$i" "$i" "r$i" $((MiB / 2 + RANDOM * 40)) $((MiB + RANDOM * 20))
done
save_state "$P" s0
push "$P" >push.out 2>&1 || fail "the first push failed: $(cat push.out)"

# The span of the kills: a whole pull of this version into an empty
# directory, timed.
t0=$(date +%s%N)
pull "$WORK/scratch" >pull.out 2>&1 || fail "the first pull failed: $(cat pull.out)"
span_ms=$((($(date +%s%N) - t0) / 1000000))
rm -rf "$WORK/scratch"
note "a whole pull takes $span_ms ms; kills spread over 0..$span_ms ms"

follower_converged() { # $F serves exactly HEAD's files
  $CHECK files "$F" >files.f && cmp -s <($CHECK match files.f "$WORK/states") <(echo "$1")
}

for ((k = 1; k <= KILLS; k++)); do
  # A new version in two rounds of three: the kill then lands in a fetch
  # over a follower that serves the previous one (or, the third time, into
  # the same version again).
  ((k % 3 == 0)) || new_version "$k"
  head_state head.json
  want=$(is_state head.json)
  delay=$((RANDOM % (span_ms + 1)))
  preload=
  ((k % 2 == 0)) || preload=$SHIM
  if ((k % 4 < 2)); then
    LD_PRELOAD=$preload "$STRATA" pull "$F" --remote "$REMOTE" --conf "$CONF" >kill.out 2>&1 &
  else
    LD_PRELOAD=$preload "$STRATA" follow "$F" --remote "$REMOTE" --conf "$CONF" --poll-ms 200 >kill.out 2>&1 &
  fi
  pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "${STRATA_REMOTE_VERBOSE:-0}" = 0 ] ||
    note "kill $k after $delay ms (${preload:+no O_TMPFILE, }$( ((k % 4 < 2)) && echo pull || echo follow)): $(find "$F" -name '*strata-tmp*' | wc -l) temp files"
  if ((k % 3 == 2)); then
    "$STRATA" follow "$F" --remote "$REMOTE" --conf "$CONF" --poll-ms 200 >follow.out 2>&1 &
    follow_pid=$!
    wait_until 60 "the restarted follower serving $want" follower_converged "$want"
    stop_follow
  else
    pull "$F" >pull.out 2>&1 || fail "the pull after kill $k failed: $(cat pull.out)"
  fi
  same_files "$F" head.json
  clean_follower "$F"
  "$STRATA" verify "$F" >verify.out 2>&1 || fail "strata verify $F after kill $k: $(cat verify.out)"
done
echo "ok: $KILLS kills of a follower, each restarted and converged"
