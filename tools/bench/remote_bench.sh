#!/usr/bin/env bash
# The remote tier's benchmark (issue 17 §4; docs/BENCHMARKS.md, "Remote
# stores"): a figure, not a test. On a one-node Ceph cluster of its own
# (tests/remote/ceph_cluster.sh, memstore OSD: the network and the disk
# are out of the picture, which leaves the client's own costs) it measures
#
#   1. `strata pull` of a store of TOTAL_MIB (default 1024) in 10 regions,
#      against `rados get` of the same chunk objects, one process per
#      object as an operator would run it, serially and 16 at a time
#      (pull keeps 16 reads in flight): the ratios pull/get are printed;
#   2. publish -> served on 3 followers (`strata follow`): the time from
#      the start of `strata push` of a small change until each follower's
#      local state says it serves the new version, with the watch and
#      notify, and with polling only (--no-watch --poll-ms 1000);
#   3. a push after one region of the ten changed: the bytes uploaded,
#      against the size of that region.
#
#   tools/bench/remote_bench.sh BUILD_DIR [TOTAL_MIB]
#
# BUILD_DIR is a CMake build with RADOS support (it holds
# tools/strata_cli/strata and tools/region_builder/region-builder).
# Needs the Ceph packages (.ci/deps.sh) and TOTAL_MIB * 3 + 1 GiB of
# memory for the OSD and the copies.
set -euo pipefail
die() { echo "remote_bench: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: remote_bench.sh BUILD_DIR [TOTAL_MIB]"
build=$(realpath "$1")
total=${2:-1024}
[[ $total =~ ^[1-9][0-9]*$ ]] && ((total >= 10)) || die "TOTAL_MIB must be a number >= 10"
src=$(cd "$(dirname "$0")/../.." && pwd)
strata=$build/tools/strata_cli/strata
rb=$build/tools/region_builder/region-builder
[ -x "$strata" ] && [ -x "$rb" ] || die "$build: no strata or region-builder built there"
py=/usr/bin/python3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-remote-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$src/tests/remote/ceph_cluster.sh" stop "$tmp/ceph" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { $py -c "print(f'{$2 - $1:.3f}')"; }

echo "remote_bench: starting a one-node cluster (memstore) in $tmp/ceph"
conf=$(CEPH_MEMSTORE_BYTES=$(((total * 3 + 512) << 20)) \
  bash "$src/tests/remote/ceph_cluster.sh" start "$tmp/ceph" strata)
pool=strata
remote=$pool/bench

# ---- the store: 10 regions of TOTAL/10 MiB, layers of 4 MiB or less ------
per=$((total / 10))
make_region() { # INDEX SEED: region INDEX with content from SEED
  local i=$1 d=$tmp/layers
  rm -rf "$d" && mkdir -p "$d"
  local left=$per k=0
  while ((left > 0)); do
    local n=$((left < 4 ? left : 4))
    $py -c "import random,sys; r=random.Random($2*1000003+$k); sys.stdout.buffer.write(r.randbytes($n<<20))" >"$d/l$k"
    left=$((left - n))
    k=$((k + 1))
  done
  "$rb" -q -o "$tmp/pub/r$i.region" --from-dir "$d" --id $((i + 1)) --name "r$i"
}
mkdir -p "$tmp/pub"
echo "remote_bench: building 10 regions of $per MiB"
for i in $(seq 0 9); do make_region "$i" "$i"; done
bytes=$(du -cb "$tmp"/pub/*.region | tail -1 | cut -f1)

t0=$(now)
"$strata" push "$tmp/pub" --remote "$remote" --conf "$conf"
t1=$(now)
push_s=$(secs "$t0" "$t1")

# ---- 1. pull against rados get -------------------------------------------
t0=$(now)
"$strata" pull "$tmp/f0" --remote "$remote" --conf "$conf"
t1=$(now)
pull_s=$(secs "$t0" "$t1")
rados=(rados -c "$conf" -p "$pool" -N bench)
"${rados[@]}" ls | grep '^chunk\.' | sort >"$tmp/chunks"
nchunks=$(wc -l <"$tmp/chunks")
mkdir -p "$tmp/get"
t0=$(now)
while read -r o; do "${rados[@]}" get "$o" "$tmp/get/$o"; done <"$tmp/chunks"
t1=$(now)
get_s=$(secs "$t0" "$t1")
rm -rf "$tmp/get" && mkdir -p "$tmp/get"
t0=$(now)
# (Each process tries the client's admin socket, which only the first
# gets: the others say so on stderr.)
xargs -P 16 -I{} "${rados[@]}" get {} "$tmp/get/{}" <"$tmp/chunks" 2>/dev/null
t1=$(now)
getp_s=$(secs "$t0" "$t1")
rm -rf "$tmp/get"

# ---- 3. one region of ten changed ------------------------------------------
make_region 3 1003
out=$("$strata" push "$tmp/pub" --remote "$remote" --conf "$conf")
echo "$out"
uploaded=$(sed -n 's/.*, \([0-9]*\) bytes uploaded).*/\1/p' <<<"$out")
region3=$(stat -c %s "$tmp/pub/r3.region")

# ---- 2. publish -> served on 3 followers -----------------------------------
# A small region that each round rewrites, so that a push has one small
# file to carry.
# ($(small_push) runs in a subshell: the round number is kept in a file.)
echo 0 >"$tmp/round"
small_push() { # prints the version pushed
  local round=$(($(cat "$tmp/round") + 1))
  echo "$round" >"$tmp/round"
  mkdir -p "$tmp/small" && rm -f "$tmp/small"/*
  printf 'round %d\n' "$round" >"$tmp/small/l"
  "$rb" -q -o "$tmp/pub/small.region" --from-dir "$tmp/small" --id 100 --name small
  local out
  out=$("$strata" push "$tmp/pub" --remote "$remote" --conf "$conf")
  sed -n 's/.*published version \([0-9]*\).*/\1/p' <<<"$out" | grep . ||
    die "push of the small change published nothing: $out"
}
served() { # DIR: the version the follower's local state says it serves
  $py -c "import json,sys
try: d=json.load(open(sys.argv[1]+'/.strata-remote/state'))
except Exception: print(0); sys.exit()
print(d['version'] if d.get('switching_to') is None else 0)" "$1"
}
# Waits until every follower dir serves VERSION; prints the seconds from T0
# at which each got there.
wait_served() { # T0 VERSION DIRS...
  $py - "$@" <<'PY'
import json, sys, time
t0, want, dirs = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
seen = {}
deadline = time.time() + 120
while len(seen) < len(dirs) and time.time() < deadline:
    for d in dirs:
        if d in seen:
            continue
        try:
            s = json.load(open(d + "/.strata-remote/state"))
        except Exception:
            continue
        if s.get("switching_to") is None and s.get("version", 0) >= want:
            seen[d] = time.time() - t0
    time.sleep(0.002)
print(" ".join("%.3f" % seen.get(d, float("nan")) for d in dirs))
PY
}
latency() { # LABEL FOLLOW-OPTIONS...: 5 rounds, 3 followers
  local label=$1; shift
  local dirs=() i
  pids=()
  for i in 1 2 3; do
    dirs+=("$tmp/$label$i")
    "$strata" follow "$tmp/$label$i" --remote "$remote" --conf "$conf" "$@" \
      >"$tmp/$label$i.log" 2>&1 &
    pids+=($!)
  done
  local v
  v=$(small_push)
  wait_served "$(now)" "$v" "${dirs[@]}" >/dev/null # the initial copy
  local all=()
  for round in 1 2 3 4 5; do
    # A random pause first: a push right after the followers' last poll
    # would always wait a whole poll interval, the worst case.
    sleep "$($py -c 'import random; print(random.random())')"
    t0=$(now)
    v=$(small_push)
    read -r -a got <<<"$(wait_served "$t0" "$v" "${dirs[@]}")"
    all+=("${got[@]}")
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  $py -c "import statistics,sys; v=sorted(float(x) for x in sys.argv[2:]); print('%-34s median %.3f s, max %.3f s (%d samples: 5 pushes x 3 followers)' % (sys.argv[1], statistics.median(v), v[-1], len(v)))" \
    "publish -> served, $label:" "${all[@]}"
}

echo
echo "== remote_bench: $((bytes >> 20)) MiB in 10 regions, $nchunks chunk objects (16 MiB chunks), memstore OSD on this host"
$py - "$bytes" "$push_s" "$pull_s" "$get_s" "$getp_s" <<'PY'
import sys
b, push, pull, get, getp = int(sys.argv[1]), *map(float, sys.argv[2:])
mib = b / 2**20
print("push (first, everything uploaded)  %7.2f s  %7.1f MiB/s" % (push, mib / push))
print("strata pull (fetch + verify)       %7.2f s  %7.1f MiB/s" % (pull, mib / pull))
print("rados get, one object at a time    %7.2f s  %7.1f MiB/s   pull/get ratio %.2fx" % (get, mib / get, get / pull))
print("rados get, 16 processes at once    %7.2f s  %7.1f MiB/s   pull/get ratio %.2fx" % (getp, mib / getp, getp / pull))
PY
printf 'one of ten regions changed: %d bytes uploaded for a %d-byte region (%.3fx)\n' \
  "$uploaded" "$region3" "$($py -c "print($uploaded/$region3)")"
latency notify
latency poll --no-watch --poll-ms 1000
