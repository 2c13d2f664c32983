# What the fault tests of tests/remote/ share (sourced, never run). Each is
#   TEST.sh STRATA REGION_BUILDER WORK [HELPER...]
# run by ctest with the environment of strata_remote_test()
# (tests/CMakeLists.txt): STRATA_TEST_CEPH_CONF, STRATA_TEST_CEPH_POOL,
# STRATA_TEST_REMOTE_NAME (a test with its own cluster sets them itself).
# The checks read RADOS and the files themselves (remote_check.py): HEAD is
# a whole version, a local copy is byte for byte one published state.
set -euo pipefail
STRATA=$1 BUILDER=$2 WORK=$3
shift 3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECK="/usr/bin/python3 $HERE/remote_check.py"
unset STRATA_LOG
rm -rf "$WORK" && mkdir -p "$WORK/states"
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "-- $*"; }

# use_cluster CONF POOL NAME: the cluster the helpers below talk to.
use_cluster() { CONF=$1 POOL=$2 NAME=$3 REMOTE=$2/$3; }
if [ -n "${STRATA_TEST_CEPH_CONF:-}" ]; then
  use_cluster "$STRATA_TEST_CEPH_CONF" "${STRATA_TEST_CEPH_POOL:?}" \
    "${STRATA_TEST_REMOTE_NAME:?}"
fi

# The CLI against this test's remote; chunks of 1 MiB so that a few MiB of
# regions make many chunk objects.
push() { "$STRATA" push "$1" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M "${@:2}"; }
pull() { "$STRATA" pull "$1" --remote "$REMOTE" --conf "$CONF"; }
unlock() { "$STRATA" remote unlock "$REMOTE" --conf "$CONF"; }

# random_region STORE FILE ID NAME BYTES...: STORE/FILE.region with one
# layer of random bytes per BYTES.
random_region() {
  local store=$1 file=$2 id=$3 name=$4 src i=0 size; shift 4
  src=$(mktemp -d "$WORK/src.XXXXXX")
  for size in "$@"; do
    head -c "$size" /dev/urandom >"$src/$(printf 'l%03d' $i)"
    i=$((i + 1))
  done
  mkdir -p "$store"
  "$BUILDER" -q -o "$store/$file.region" --from-dir "$src" --id "$id" \
    --name "$name" || fail "region-builder $store/$file.region"
  rm -rf "$src"
}

# save_state STORE LABEL: records STORE's region files ({FILE: SHA256}) as a
# state a remote or local copy may show (states/LABEL.json).
save_state() { $CHECK files "$1" >"$WORK/states/$2.json"; }

# head_state OUT: checks that HEAD is a whole version (remote_check.py
# head) and writes {"version", "files"} to OUT.
head_state() { $CHECK head "$CONF" "$POOL" "$NAME" >"$1" || fail "HEAD is not a whole version"; }

# is_state FILES_JSON: prints the saved state FILES_JSON equals, or fails.
is_state() { $CHECK match "$1" "$WORK/states" || fail "$1 is no published state"; }

# same_files DIR FILES_JSON: DIR's region files are exactly FILES_JSON's.
same_files() {
  $CHECK files "$1" >"$WORK/files.now"
  /usr/bin/python3 -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
b = b["files"] if "version" in b else b
sys.exit(a != b)' "$WORK/files.now" "$2" ||
    fail "$1 holds $(cat "$WORK/files.now"), expected $(cat "$2")"
}

# clean_follower DIR: no temporary file of the writer's publishing code
# (.NAME.strata-tmp-XXXXXXXX) anywhere in DIR, and nothing in
# DIR/.strata-remote but the state.
clean_follower() {
  local left
  left=$(find "$1" -name '*strata-tmp*' | head -5)
  [ -z "$left" ] || fail "$1: temporary files left: $left"
  left=$(ls -A "$1/.strata-remote")
  [ "$left" = state ] || fail "$1/.strata-remote holds: $left"
}

# wait_until SECONDS WHAT CMD...: runs CMD until it succeeds. The deadline
# is a generous bound for a loaded machine, never a measure.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within $1 s"
    sleep 0.2
  done
}
