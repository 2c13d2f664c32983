#!/usr/bin/env bash
# Readers through version changes in follower processes (issue 17 §3;
# docs/REMOTE.md, "The swap": readers of the follower store see all of M or
# none of it). Three follower processes (follow_reader: each opens its own
# directory as a follower, poll 200 ms, watch on, and reads it continuously
# in a second thread; its header says why the reader lives in the follower
# process) while six versions are published. Every layer's bytes name its
# version and region, and the even versions have one region more, so one
# snapshot can tell a mixture of versions, of region sets, or bytes of no
# version. Version V+1 is published only once every follower's reader has
# seen V, so every reader crosses every change. Each reader must end with
# status 0 (no snapshot failed) having seen the six versions in order.
#   follow_readers.sh STRATA REGION_BUILDER WORK FOLLOW_READER
. "$(dirname "$0")/fault_lib.sh"
READER=${1:?usage: follow_readers.sh STRATA REGION_BUILDER WORK FOLLOW_READER}
P=$WORK/pub FINAL=6
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_all EXIT

# pattern_region V NAME ID LAYERS BYTES: region NAME of version V, each
# layer the line "V%07u NAME LAYER\n" repeated over BYTES bytes.
pattern_region() {
  local v=$1 name=$2 id=$3 layers=$4 bytes=$5 src l
  src=$(mktemp -d "$WORK/src.XXXXXX")
  for ((l = 0; l < layers; l++)); do
    /usr/bin/python3 -c '
import sys
line = ("V%07d %s %s\n" % (int(sys.argv[1]), sys.argv[2], sys.argv[3])).encode()
n = int(sys.argv[4])
sys.stdout.buffer.write((line * (n // len(line) + 1))[:n])' "$v" "$name" "$l" "$bytes" >"$src/l$l"
  done
  "$BUILDER" -q -o "$P/$name.region" --from-dir "$src" --id "$id" --name "$name" ||
    fail "region-builder $P/$name.region"
  rm -rf "$src"
}

publish() { # version $1 of the store
  local v=$1
  pattern_region "$v" alpha 1 3 $((200000 + v * 1000))
  pattern_region "$v" beta 2 2 $((600000 + v * 7))
  pattern_region "$v" gamma 3 4 $((64 * 1024))
  if ((v % 2 == 0)); then
    pattern_region "$v" even 4 2 $((300000 + v))
  else
    rm -f "$P/even.region"
  fi
  push "$P" >push.out 2>&1 || fail "push of version $v: $(cat push.out)"
}

seen() { grep -qx "$2" "$WORK/progress$1" 2>/dev/null; }

mkdir -p "$P"
publish 1
for n in 1 2 3; do
  "$READER" "$WORK/f$n" "$CONF" "$POOL" "$NAME" "$FINAL" "$WORK/progress$n" \
    >"reader$n.out" 2>"reader$n.err" &
  pids+=($!)
done
for ((v = 1; v <= FINAL; v++)); do
  ((v == 1)) || publish "$v"
  for n in 1 2 3; do
    wait_until 60 "reader $n seeing version $v" seen "$n" "$v"
  done
done
for n in 1 2 3; do
  rc=0
  wait "${pids[$((n - 1))]}" || rc=$?
  [ "$rc" = 0 ] || fail "reader $n exited $rc: $(cat "reader$n.err")"
  [ "$(tr '\n' ' ' <"$WORK/progress$n")" = "1 2 3 4 5 6 " ] ||
    fail "reader $n saw versions $(tr '\n' ' ' <"$WORK/progress$n"), expected 1 to 6"
  for ((v = 1; v <= FINAL; v++)); do
    grep -q "^version $v: [1-9][0-9]* snapshots$" "reader$n.out" ||
      fail "reader $n: no snapshot of version $v: $(cat "reader$n.out")"
  done
done
pids=()
echo "ok: three followers' readers, $FINAL versions, every snapshot one whole version"
