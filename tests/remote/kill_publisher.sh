#!/usr/bin/env bash
# kill -9 the publisher at random points of a publish (issue 17 §3;
# docs/REMOTE.md, "Failure cases"). The store has five regions of 1-3 MiB
# and chunks are 1 MiB, so a push makes a dozen chunk objects, a manifest
# and a HEAD swap. Before each kill one or two regions get new random bytes
# (sometimes a region is added or removed), so every push has uploads to
# do; the push is killed after a random delay spread over the time a whole
# push takes (measured once at the start: a range for the delays, never a
# threshold), so kills land in the lock, the uploads, the manifest and the
# swap. After each kill:
#   - HEAD is a whole version: remote_check.py reads manifest.N, checks its
#     checksums, and reads every chunk it names (size, xattr, XXH3-64), and
#     the chunks make each file's XXH3-128; the files are exactly one state
#     the publisher's store was in (never a mixture);
#   - every fifth kill, `strata pull` into a follower directory gives
#     exactly HEAD's files (so some published state), with no temp files;
#   - the dead publisher's lock is broken with `strata remote unlock` (its
#     lease would free it within 30 s; the CLI has no lease option).
# At the end a push finishes (HEAD = the store's last state, and a pull
# gets it), and `strata remote gc --keep 2` leaves exactly head, the pins,
# the kept versions' manifests and their chunks (remote_check.py gc).
# STRATA_REMOTE_KILLS (default 50) sets the number of kills for a longer
# run; STRATA_REMOTE_SEED repeats one.
#   kill_publisher.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/fault_lib.sh"
KILLS=${STRATA_REMOTE_KILLS:-50}
RANDOM=${STRATA_REMOTE_SEED:-$$}
note "seed ${STRATA_REMOTE_SEED:-$$}, $KILLS kills"
P=$WORK/pub F=$WORK/f

MiB=1048576
for i in 1 2 3 4 5; do
  random_region "$P" "r$i" "$i" "r$i" $((MiB / 2 + RANDOM * 40)) $((MiB + RANDOM * 20))
done
save_state "$P" s0
push "$P" >out || fail "the first push failed: $(cat out)"
head_state head.json
[ "$(is_state head.json)" = s0 ] || fail "HEAD is not the first state"
next_id=6
change_store() { # one new state of $P, saved as s$1
  local i=$((RANDOM % 5 + 1)) victim
  random_region "$P" "r$i" "$i" "r$i" $((2 * MiB + RANDOM * 40)) $((MiB + RANDOM * 30))
  case $((RANDOM % 4)) in
    0) random_region "$P" "x$next_id" "$next_id" "x$next_id" $((MiB + RANDOM * 20))
       next_id=$((next_id + 1)) ;;
    1) victim=$(ls "$P" | grep '^x.*\.region$' | head -1 || true)
       [ -z "$victim" ] || rm -f "$P/$victim" ;;
  esac
  save_state "$P" "s$1"
}

# The span of the kills: one push of a typical change, timed.
change_store m
t0=$(date +%s%N)
push "$P" >out || fail "the second push failed: $(cat out)"
span_ms=$((($(date +%s%N) - t0) / 1000000))
head_state head.json
[ "$(is_state head.json)" = sm ] || fail "HEAD is not the second state"
note "a push of a change takes $span_ms ms; kills spread over 0..$((span_ms * 5 / 4)) ms"

landed=(0 0 0)
for ((k = 1; k <= KILLS; k++)); do
  change_store "$k"
  # Half the kills in the first quarter of the span: the publish itself
  # is over well before the process (librados' shutdown takes a while).
  if ((k % 2)); then
    delay=$((RANDOM % (span_ms / 4 + 1)))
  else
    delay=$((RANDOM % (span_ms * 5 / 4 + 1)))
  fi
  # The command itself in the background (not the shell function push, whose
  # subshell would die and leave strata running): $! is strata's pid.
  "$STRATA" push "$P" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M >push.out 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  head_state head.json
  state=$(is_state head.json)
  # Where the kill landed: after the swap (HEAD is this state), between
  # the manifest and the swap (manifest.N+1 exists), or before the manifest.
  v=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' head.json)
  if [ "$state" = "s$k" ]; then
    landed[2]=$((landed[2] + 1))
  elif rados -c "$CONF" -p "$POOL" -N "$NAME" stat "$(printf 'manifest.%020d' $((v + 1)))" >/dev/null 2>&1; then
    landed[1]=$((landed[1] + 1))
  else
    landed[0]=$((landed[0] + 1))
  fi
  [ "${STRATA_REMOTE_VERBOSE:-0}" = 0 ] || note "kill $k after $delay ms: HEAD is $state (version $v)"
  unlock >unlock.out 2>&1 || fail "strata remote unlock failed: $(cat unlock.out)"
  if ((k % 5 == 0)); then
    pull "$F" >pull.out 2>&1 || fail "pull after kill $k failed: $(cat pull.out)"
    same_files "$F" head.json
    clean_follower "$F"
  fi
done

note "a push that finishes"
push "$P" >out 2>&1 || fail "the push after the kills failed: $(cat out)"
head_state head.json
[ "$(is_state head.json)" = "s$KILLS" ] ||
  fail "HEAD is state $(is_state head.json), not the store's last state s$KILLS"
pull "$F" >pull.out 2>&1 || fail "the last pull failed: $(cat pull.out)"
same_files "$F" head.json
clean_follower "$F"
"$STRATA" verify "$F" >verify.out 2>&1 || fail "strata verify $F: $(cat verify.out)"

note "gc removes the debris"
before=$($CHECK count "$CONF" "$POOL" "$NAME")
"$STRATA" remote gc "$REMOTE" --conf "$CONF" --keep 2 >gc.out 2>&1 ||
  fail "strata remote gc failed: $(cat gc.out)"
after=$($CHECK gc "$CONF" "$POOL" "$NAME" 2) || fail "gc left the wrong objects"
((after < before)) || fail "gc removed nothing: $before objects before, $after after"
head_state head.json
[ "$(is_state head.json)" = "s$KILLS" ] || fail "gc changed HEAD"
pull "$F" >pull.out 2>&1 || fail "a pull after gc failed: $(cat pull.out)"
same_files "$F" head.json
echo "ok: $KILLS kills (${landed[0]} before the manifest, ${landed[1]} between manifest and swap, ${landed[2]} after the swap); $before objects before gc, $after after"
