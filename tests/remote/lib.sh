# What the remote end-to-end tests share (sourced, never run). Each test is
#   TEST.sh STRATA REGION_BUILDER WORK [NO_TMPFILE_SHIM]
# run by ctest with the environment of strata_remote_test()
# (tests/CMakeLists.txt): STRATA_TEST_CEPH_CONF, STRATA_TEST_CEPH_POOL and
# STRATA_TEST_REMOTE_NAME. Every check compares content: the bytes of each
# layer a follower serves against the publisher's, the files of a store,
# the objects in the pool.
set -euo pipefail
STRATA=$1 BUILDER=$2 WORK=$3 SHIM=${4:-}
CONF=${STRATA_TEST_CEPH_CONF:?set by strata_remote_test()}
POOL=${STRATA_TEST_CEPH_POOL:?set by strata_remote_test()}
NAME=${STRATA_TEST_REMOTE_NAME:?set by strata_remote_test()}
REMOTE=$POOL/$NAME
PY=/usr/bin/python3
unset STRATA_LOG
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "-- $*"; }

# rados_ns ARGS...: the rados tool in this test's namespace.
rados_ns() { rados -c "$CONF" -p "$POOL" -N "$NAME" "$@"; }

# run_ok OUTFILE CMD...: runs CMD, which must succeed with an empty stderr;
# its stdout goes to OUTFILE.
run_ok() {
  local out=$1; shift
  if ! "$@" >"$out" 2>"$out.err"; then
    fail "$* failed: $(cat "$out.err")"
  fi
  [ ! -s "$out.err" ] || fail "$* wrote to stderr: $(cat "$out.err")"
}

# run_fails OUTFILE CMD...: runs CMD, which must exit 1 with nothing on
# stdout; its stderr goes to OUTFILE.
run_fails() {
  local out=$1; shift
  local rc=0
  "$@" >"$out.out" 2>"$out" || rc=$?
  [ "$rc" = 1 ] || fail "$* exited $rc, expected 1; stderr: $(cat "$out")"
  [ ! -s "$out.out" ] || fail "$* wrote to stdout: $(cat "$out.out")"
}

# expect_line FILE TEXT: FILE holds the line TEXT exactly.
expect_line() {
  grep -qxF -- "$2" "$1" || fail "$1: no line '$2' in: $(cat "$1")"
}
# expect_text FILE TEXT: FILE holds TEXT somewhere.
expect_text() {
  grep -qF -- "$2" "$1" || fail "$1: no '$2' in: $(cat "$1")"
}

# make_region STORE FILE ID NAME SIZE...: a region built by region-builder
# into STORE/FILE.region, one layer of random bytes per SIZE (ids 0..n-1:
# --from-dir numbers the files in name order). The layers' sources stay in
# WORK/src-FILE-N/.
n_made=0
make_region() {
  local store=$1 file=$2 id=$3 name=$4; shift 4
  n_made=$((n_made + 1))
  local src=$WORK/src-$file-$n_made i=0 size
  mkdir -p "$src" "$store"
  for size in "$@"; do
    head -c "$size" /dev/urandom >"$src/$(printf 'layer%03d' $i)"
    i=$((i + 1))
  done
  "$BUILDER" -q -o "$store/$file.region" --from-dir "$src" --id "$id" \
    --name "$name" || fail "region-builder $store/$file.region"
}

# file_bytes STORE FILE...: the sum of the files' sizes.
file_bytes() {
  local store=$1 total=0 f; shift
  for f in "$@"; do total=$((total + $(stat -c %s "$store/$f"))); done
  echo $total
}

# region_files DIR: the names of DIR's region files, sorted, one a line.
region_files() { (cd "$1" && ls -1 -- *.region 2>/dev/null | LC_ALL=C sort) || true; }

# same_store SRC DST: DST has exactly SRC's region files, `strata regions`
# says the same of both (ids, names, layer counts, bytes, file names), and
# every layer of every region reads back through `strata get` with the
# same bytes.
same_store() {
  local src=$1 dst=$2
  [ "$(region_files "$src")" = "$(region_files "$dst")" ] ||
    fail "$dst holds $(region_files "$dst" | tr '\n' ' '), expected $(region_files "$src" | tr '\n' ' ')"
  "$STRATA" regions --json "$src" >"$WORK/regions.src"
  "$STRATA" regions --json "$dst" >"$WORK/regions.dst"
  "$PY" - "$WORK/regions.src" "$WORK/regions.dst" "$src" >"$WORK/layers" <<'PY' || fail "$dst: regions differ from $src"
import json, os, subprocess, sys
def load(p):
    out = []
    for r in json.load(open(p)):
        r["file"] = os.path.basename(r["file"])
        out.append(r)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    sys.stderr.write("regions differ:\n%s\n%s\n" % (a, b))
    sys.exit(1)
for r in a:
    path = os.path.join(sys.argv[3], r["file"])
    layers = json.loads(subprocess.check_output(
        [os.environ["STRATA"], "ls", "--json", path]))
    for l in layers:
        print(r["id"], l["id"])
PY
  [ -s "$WORK/layers" ] || fail "$src: no layers to compare"
  local rid lid
  while read -r rid lid; do
    "$STRATA" get "$src" "$rid" "$lid" >"$WORK/get.src"
    "$STRATA" get "$dst" "$rid" "$lid" >"$WORK/get.dst" ||
      fail "$dst: strata get $rid $lid failed"
    cmp -s "$WORK/get.src" "$WORK/get.dst" ||
      fail "$dst: region $rid layer $lid differs from $src's"
  done <"$WORK/layers"
}
export STRATA

# no_temp_files DIR: nothing a writer leaves while it works (the writer's
# .NAME.strata-tmp-XXXXXXXX names, or a *.tmp) is in DIR or below.
no_temp_files() {
  local left
  left=$(find "$1" -name '*strata-tmp*' -o -name '*.tmp' | head -5)
  [ -z "$left" ] || fail "$1: temporary files left: $left"
}

# head_version: the version `strata remote ls` marks as HEAD.
head_version() {
  "$STRATA" remote ls --conf "$CONF" "$REMOTE" | awk -F'\t' '$4 == "head" { print $1 }'
}

# wait_for_line FILE TEXT SECONDS: waits until FILE holds the line TEXT;
# the deadline is generous (a slow machine, a loaded CI), never a measure.
wait_for_line() {
  local deadline=$((SECONDS + $3))
  while ! grep -qxF -- "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "$1: no line '$2' within $3 s: $(cat "$1")"
    sleep 0.1
  done
}
