#!/usr/bin/env bash
# The remote test harness works (tests/remote/CMakeLists.txt): the fixture's
# cluster takes a write into this test's namespace, gives the same bytes
# back, and keeps the object out of the pool's default namespace.
#   cluster_smoke.sh WORK    (env: STRATA_TEST_CEPH_CONF, _POOL, _REMOTE_NAME)
set -euo pipefail
work=$1
conf=${STRATA_TEST_CEPH_CONF:?set by strata_remote_test()}
pool=${STRATA_TEST_CEPH_POOL:?set by strata_remote_test()}
ns=${STRATA_TEST_REMOTE_NAME:?set by strata_remote_test()}
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
head -c 100000 /dev/urandom >"$work/in"
rados -c "$conf" -p "$pool" -N "$ns" put smoke "$work/in"
rados -c "$conf" -p "$pool" -N "$ns" get smoke "$work/out"
cmp "$work/in" "$work/out" || fail "the object read back differs from what was written"
rados -c "$conf" -p "$pool" -N "$ns" ls >"$work/ls"
grep -qx smoke "$work/ls" || fail "smoke not listed in namespace $ns: $(cat "$work/ls")"
if rados -c "$conf" -p "$pool" stat smoke >/dev/null 2>&1; then
  fail "smoke is visible outside namespace $ns"
fi
rados -c "$conf" -p "$pool" -N "$ns" rm smoke
echo "ok: $pool/$ns"
