#!/usr/bin/env bash
# The OSD stopped, then killed and restarted, while a push and a pull run
# (issue 17 §3; docs/REMOTE.md, "Failure cases": "OSD stopped"). Runs its
# own one-node cluster with a bluestore OSD on a sparse file
# (ceph_cluster.sh start --bluestore), whose objects survive a SIGKILL, and
# stops it (by its pids) on exit. The push and the pull are op_client (the
# public API with op_timeout_s = 5 or 10; the CLI has no option for it).
#
# 1. SIGSTOP the OSD (its pid from the cluster's pids/osd.0.pid), then push
#    a new state and pull: each either fails with an error that names
#    POOL/NAME, an object (head, manifest.N, chunk.H.S.I or pin.NODE) and
#    the timeout, or succeeds; while the OSD is stopped the follower's
#    directory still holds exactly the version it served. After SIGCONT
#    HEAD is a whole version (the old one: nothing was changed), and a push
#    and a pull converge: the follower holds the new state byte for byte.
# 2. A push and a pull that fetches run while the OSD is SIGKILLed at a
#    random moment (0-0.5 s in); both end (failing by the timeout or done),
#    the follower's files are one whole published state, and no temporary
#    file is left. ceph_cluster.sh restart-osd brings the OSD back with its
#    objects: HEAD is a whole version whose every chunk reads back
#    (remote_check.py), and a push and a pull converge again.
#   osd_stop.sh STRATA REGION_BUILDER WORK OP_CLIENT
unset STRATA_TEST_CEPH_CONF
. "$(dirname "$0")/fault_lib.sh"
OPC=${1:?usage: osd_stop.sh STRATA REGION_BUILDER WORK OP_CLIENT}
CLUSTER=$WORK/cluster
P=$WORK/pub F=$WORK/f
MiB=1048576
RANDOM=${STRATA_REMOTE_SEED:-$$}
stopped=0
cleanup() {
  local pid
  pid=$(cat "$CLUSTER/pids/osd.0.pid" 2>/dev/null || true)
  # A stopped OSD cannot take the SIGTERM of ceph_cluster.sh stop.
  [ "$stopped" = 0 ] || [ -z "$pid" ] || kill -CONT "$pid" 2>/dev/null || true
  [ ! -d "$CLUSTER/pids" ] || bash "$HERE/ceph_cluster.sh" stop "$CLUSTER" || true
}
trap cleanup EXIT
note "a cluster with a bluestore OSD"
conf=$(bash "$HERE/ceph_cluster.sh" start "$CLUSTER" strata --bluestore) ||
  fail "the bluestore cluster did not start"
use_cluster "$conf" strata osd_stop
osd_pid() { cat "$CLUSTER/pids/osd.0.pid"; }

# ends_well OUT: op_client succeeded, or failed naming POOL/NAME, an
# object and the timeout.
ends_well() {
  local rc=$1 err=$2
  [ "$rc" = 0 ] && return 0
  [ "$rc" = 1 ] || fail "op_client exited $rc: $(cat "$err")"
  grep -qE "$POOL/$NAME: (head|manifest\.[0-9]{20}|chunk\.[0-9a-f]{32}\.[0-9a-f]{8}\.[0-9]{6}|pin\.[A-Za-z0-9._-]+): " "$err" ||
    fail "the error names no object of $POOL/$NAME: $(cat "$err")"
  grep -qiE "timed out|ETIMEDOUT" "$err" || fail "the error does not say it timed out: $(cat "$err")"
}

for i in 1 2 3; do
  random_region "$P" "r$i" "$i" "r$i" $((MiB + RANDOM * 30)) $((RANDOM * 10))
done
save_state "$P" s1
push "$P" >out 2>&1 || fail "push s1: $(cat out)"
pull "$F" >out 2>&1 || fail "pull s1: $(cat out)"
same_files "$F" states/s1.json

note "SIGSTOP the OSD during a push and a pull"
random_region "$P" r2 2 r2 $((2 * MiB + 777))
save_state "$P" s2
kill -STOP "$(osd_pid)"
stopped=1
"$OPC" push "$P" "$CONF" "$POOL" "$NAME" 5 >push.out 2>push.err &
push_pid=$!
"$OPC" pull "$F" "$CONF" "$POOL" "$NAME" 5 >pull.out 2>pull.err &
pull_pid=$!
rc=0; wait $push_pid || rc=$?
ends_well $rc push.err
rc=0; wait $pull_pid || rc=$?
ends_well $rc pull.err
same_files "$F" states/s1.json
kill -CONT "$(osd_pid)"
stopped=0
wait_until 60 "HEAD readable after SIGCONT" $CHECK head "$CONF" "$POOL" "$NAME"
head_state head.json
note "after SIGCONT HEAD is $(is_state head.json)"
# A lock op the stopped OSD had queued is applied when it resumes, for a
# client that gave up: break it rather than wait for its lease.
unlock >out 2>&1 || fail "unlock: $(cat out)"
push "$P" >out 2>&1 || fail "push s2 after SIGCONT: $(cat out)"
pull "$F" >out 2>&1 || fail "pull s2 after SIGCONT: $(cat out)"
head_state head.json
[ "$(is_state head.json)" = s2 ] || fail "HEAD is not s2 after SIGCONT"
same_files "$F" states/s2.json
clean_follower "$F"

note "SIGKILL the OSD during a push and a fetch, restart it"
random_region "$P" r1 1 r1 $((3 * MiB + 5))
save_state "$P" s3
push "$P" >out 2>&1 || fail "push s3: $(cat out)"
random_region "$P" r3 3 r3 $((2 * MiB + 9)) 1000
save_state "$P" s4
"$OPC" push "$P" "$CONF" "$POOL" "$NAME" 10 >push.out 2>push.err &
push_pid=$!
"$OPC" pull "$F" "$CONF" "$POOL" "$NAME" 10 >pull.out 2>pull.err &
pull_pid=$!
delay=$((RANDOM % 500))
sleep "0.$(printf '%03d' $delay)"
kill -KILL "$(osd_pid)"
rc=0; wait $push_pid || rc=$?
ends_well $rc push.err
rc=0; wait $pull_pid || rc=$?
ends_well $rc pull.err
$CHECK files "$F" >files.f
note "killed after $delay ms: the follower serves $(is_state files.f)"
[ -z "$(find "$F" -name '*strata-tmp*')" ] || fail "$F: temporary files left"
bash "$HERE/ceph_cluster.sh" restart-osd "$CLUSTER" strata || fail "restart-osd failed"
head_state head.json
note "after the restart HEAD is $(is_state head.json)"
unlock >out 2>&1 || fail "unlock: $(cat out)"
push "$P" >out 2>&1 || fail "push s4 after the restart: $(cat out)"
pull "$F" >out 2>&1 || fail "pull s4 after the restart: $(cat out)"
head_state head.json
[ "$(is_state head.json)" = s4 ] || fail "HEAD is not s4 after the restart"
same_files "$F" states/s4.json
clean_follower "$F"
"$STRATA" verify "$F" >out 2>&1 || fail "strata verify $F: $(cat out)"
echo "ok: the OSD stopped and killed; nothing corrupt served; converged"
