#!/usr/bin/env bash
# A pull killed with SIGKILL mid-fetch (docs/REMOTE.md, "Failure cases"):
# nothing temporary is left in the follower's directory, and the next pull
# converges to the publisher's bytes. Every other kill runs with
# tests/builder's no_tmpfile shim preloaded, so that the files being
# fetched carry the writer's temporary names (no O_TMPFILE): then a kill
# leaves them, and the next open must remove them. The kills come at
# random delays, from a fetch just begun to one nearly done, first into an
# empty directory, then over a follower that serves version 1.
#   pull_kill.sh STRATA REGION_BUILDER WORK NO_TMPFILE_SHIM
. "$(dirname "$0")/lib.sh"
[ -n "$SHIM" ] || fail "usage: pull_kill.sh STRATA REGION_BUILDER WORK SHIM"
KILLS=${STRATA_REMOTE_KILLS:-10}
S=$WORK/src
pull() { "$STRATA" pull "$WORK/f" --remote "$REMOTE" --conf "$CONF"; }

# pull_ms: milliseconds a whole pull of the current version takes into
# a scratch directory: the kills spread over that span.
pull_ms() {
  rm -rf "$WORK/scratch"
  local t0=$(date +%s%N)
  run_ok out "$STRATA" pull "$WORK/scratch" --remote "$REMOTE" --conf "$CONF"
  echo $((($(date +%s%N) - t0) / 1000000))
}

# kill_pulls SPAN_MS: $KILLS pulls into $WORK/f, each SIGKILLed after a
# random delay from 0 to SPAN_MS milliseconds.
kill_pulls() {
  local span=$1 k delay pid preload
  for ((k = 1; k <= KILLS; k++)); do
    delay=$((RANDOM % (span + 1)))
    preload=
    ((k % 2)) && preload=$SHIM
    # What earlier kills with the shim left, which this pull may be killed
    # before it removes.
    { find "$WORK/f" -name '*strata-tmp*' 2>/dev/null || true; } | sort >temps.before
    LD_PRELOAD=$preload ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0 \
      "$STRATA" pull "$WORK/f" --remote "$REMOTE" \
      --conf "$CONF" >/dev/null 2>kill.err &
    pid=$!
    sleep "$(printf '0.%03d' "$delay")"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # With O_TMPFILE a killed fetch leaves nothing at all: no temporary
    # file that was not there before it.
    if [ -z "$preload" ]; then
      { find "$WORK/f" -name '*strata-tmp*' 2>/dev/null || true; } | sort >temps.after
      new=$(comm -13 temps.before temps.after)
      [ -z "$new" ] || fail "a pull killed with O_TMPFILE left $new"
    fi
  done
}

# The pull after the kills: its open removes what pulls killed with the
# shim left (one WARN line each: a kill may come before a later pull's own
# cleanup, so some may remain); anything else on stderr fails.
final_pull() {
  pull >out 2>out.err || fail "pull failed: $(cat out.err)"
  if grep -vF 'msg="removed a temporary file of an interrupted write"' out.err |
    grep -q .; then
    fail "pull wrote to stderr: $(cat out.err)"
  fi
}

note "version 1: 24 MiB in 1 MiB chunks"
make_region "$S" a 1 alpha 8000000 4000000
make_region "$S" b 2 beta 12000000
run_ok out "$STRATA" push "$S" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M
span=$(pull_ms)
((span < 999)) || span=999
kill_pulls "$span"
final_pull
expect_text out "$REMOTE: serving version 1 (2 regions, "
same_store "$S" "$WORK/f"
no_temp_files "$WORK/f"

note "version 2 over version 1"
cp -a "$S" "$WORK/v1"
rm "$S/b.region"
make_region "$S" b 2 beta 9000000 3000000
make_region "$S" c 3 gamma 5000000
run_ok out "$STRATA" push "$S" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M
kill_pulls "$span"
final_pull
expect_text out "$REMOTE: serving version 2 (3 regions, "
same_store "$S" "$WORK/f"
no_temp_files "$WORK/f"
echo "ok"
