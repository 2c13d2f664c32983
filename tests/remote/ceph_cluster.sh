#!/usr/bin/env bash
# A one-node Ceph cluster for the remote tests (docs/REMOTE.md): one
# monitor, one manager and one OSD with the memstore object store, on
# 127.0.0.1, every file under one directory, no systemd, no authentication.
#
#   tests/remote/ceph_cluster.sh start DIR [POOL] [--bluestore]
#                                                   prints DIR/ceph.conf
#   tests/remote/ceph_cluster.sh fresh DIR [POOL] [--bluestore]
#                                                   the same, after a stop
#   tests/remote/ceph_cluster.sh stop DIR
#   tests/remote/ceph_cluster.sh restart-osd DIR
#
# start makes DIR if needed (it must hold no cluster yet), starts the
# daemons in the foreground of background jobs, writes each one's pid to
# DIR/pids/NAME.pid, creates POOL (default "strata", one replica) and returns
# once a `rados put` into POOL has succeeded; then it prints the path of
# the ceph.conf a client passes as `-c` (or to rados_conf_read_file()).
# stop sends SIGTERM to the pids in DIR/pids only (never a process found by
# name: other clusters and other users' daemons may run on the machine),
# waits for them to exit, SIGKILLs any still there after 20 s, and removes
# the pid files. A pid is signalled only while its command line still names
# DIR/ceph.conf: after a reboot or a long time the number may belong to
# another process. DIR itself (logs, the monitor's store) is left for the
# caller to read and remove.
# fresh is what ctest's fixture runs (tests/remote/CMakeLists.txt): a run
# that crashed or was interrupted leaves DIR with its daemons possibly still
# up, so fresh stops whatever DIR's pid files name, removes DIR and starts
# a new cluster there.
#
# Needs: ceph-mon ceph-osd ceph-mgr ceph-common (Debian 12: 16.2), which
# .ci/deps.sh installs. ctest runs it through the fixture `remote_cluster`
# (tests `remote_cluster_start` / `remote_cluster_stop`) in builds with
# librados (STRATA_HAVE_RADOS); tests/README.md, "Remote tests".
#
# CEPH_MEMSTORE_BYTES (default 1 GiB) is how much the OSD may hold: the
# benchmark (tools/bench/remote_bench.sh) asks for more.
#
# memstore keeps objects in the OSD's memory: an OSD killed with SIGKILL
# comes back empty (a clean stop writes them to DIR/osd.0 first). Tests
# that restart a killed OSD and expect its objects back start the cluster
# with --bluestore: the OSD keeps its objects in bluestore on a sparse
# file, DIR/osd.0.block (BLUESTORE_GIB, default 4 GiB, allocated only as
# written), which survives SIGKILL like a disk survives a crash.
# restart-osd starts osd.0 again with the command start recorded in
# DIR/osd.0.cmd (after a SIGKILL of the pid in DIR/pids/osd.0.pid; it
# refuses while that pid still runs) and returns once a read of the pool
# succeeds.
set -euo pipefail

die() { echo "ceph_cluster.sh: $*" >&2; exit 1; }

# The port the monitor listens on: one the kernel says is free now, so that
# several clusters (parallel tests) can run on one machine.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS CMD...: runs CMD (each try limited to 10 s) about once a
# second until it succeeds or SECONDS have passed.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  while ((SECONDS < deadline)); do
    if timeout 10 "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

start_daemon() { # NAME CMD...: runs CMD in the background, records its pid
  local name=$1; shift
  "$@" >"$D/log/$name.out" 2>&1 &
  echo $! >"$D/pids/$name.pid"
}

start() {
  local pool=${POOL:-strata}
  mkdir -p "$D"
  D=$(cd "$D" && pwd)
  [ ! -e "$D/ceph.conf" ] || die "$D already holds a cluster (ceph.conf); stop it and use a fresh directory"
  for tool in ceph-mon ceph-osd ceph-mgr ceph monmaptool ceph-authtool rados; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install ceph-mon ceph-osd ceph-mgr ceph-common"
  done
  mkdir -p "$D/pids" "$D/log" "$D/run" "$D/mon.a" "$D/osd.0" "$D/mgr.x"
  local fsid port objectstore_conf
  if [ "$BLUESTORE" = 1 ]; then
    # A small cache and no fsck at mkfs keep the OSD's start to seconds;
    # bdev_aio is off because some container file systems refuse
    # io_submit on a plain file.
    objectstore_conf="osd objectstore = bluestore
bluestore block path = $D/osd.0.block
bluestore block create = true
bluestore block size = $((${BLUESTORE_GIB:-4} << 30))
bluestore fsck on mkfs = false
bluestore fsck on mount = false
bluestore cache size = 134217728
osd memory target = 939524096"
  else
    objectstore_conf="osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-1073741824}"
  fi
  fsid=$(/usr/bin/python3 -c 'import uuid; print(uuid.uuid4())')
  port=$(free_port)
  cat >"$D/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port]
ms bind ipv6 = false
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
keyring = $D/keyring
run dir = $D/run
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
mon data = $D/\$name
osd data = $D/\$name
mgr data = $D/\$name
$objectstore_conf
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon data avail crit = 0
mon data avail warn = 0
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
osd max object name len = 256
osd max object namespace len = 64
CONF
  local C="$D/ceph.conf"
  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$port]" --fsid "$fsid" "$D/monmap" >/dev/null
  ceph-mon -c "$C" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" \
    >"$D/log/mon.a.mkfs" 2>&1 || die "ceph-mon --mkfs failed: $D/log/mon.a.mkfs"
  start_daemon mon.a ceph-mon -c "$C" -i a -f
  wait_for 30 ceph -c "$C" --connect-timeout 5 mon stat ||
    die "the monitor did not answer within 30 s: $D/log/mon.a.log"
  start_daemon mgr.x ceph-mgr -c "$C" -i x -f
  local id
  id=$(ceph -c "$C" osd create) || die "ceph osd create failed"
  [ "$id" = 0 ] || die "ceph osd create gave osd.$id, expected osd.0"
  ceph -c "$C" osd crush add osd.0 1 root=default >/dev/null 2>&1 ||
    die "ceph osd crush add osd.0 failed"
  ceph-osd -c "$C" -i 0 --mkfs >"$D/log/osd.0.mkfs" 2>&1 ||
    die "ceph-osd --mkfs failed: $D/log/osd.0.mkfs"
  printf '%s\n' "$C" >"$D/osd.0.cmd"
  start_daemon osd.0 ceph-osd -c "$C" -i 0 -f
  ceph -c "$C" osd pool create "$pool" 8 >/dev/null 2>&1 || die "creating pool $pool failed"
  ceph -c "$C" osd pool application enable "$pool" strata >/dev/null 2>&1 || true
  echo ready >"$D/log/probe"
  wait_for 60 rados -c "$C" -p "$pool" put .ceph_cluster_probe "$D/log/probe" ||
    die "no write into pool $pool succeeded within 60 s: $D/log/osd.0.log"
  rados -c "$C" -p "$pool" rm .ceph_cluster_probe >/dev/null 2>&1 || true
  echo "$C"
}

# ours PID: whether PID is alive and is a daemon of this cluster (its
# command line names this DIR's ceph.conf), not a process that reused the
# number since.
ours() {
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *" -c $D/ceph.conf "* ]]
}

stop() {
  [ -d "$D/pids" ] || die "$D/pids: no cluster started there"
  D=$(cd "$D" && pwd)
  local f pid pids=()
  # The OSD first, the monitor last: daemons that lose the monitor first
  # spend their shutdown retrying it.
  for f in "$D/pids/osd.0.pid" "$D/pids/mgr.x.pid" "$D/pids/mon.a.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [[ $pid =~ ^[1-9][0-9]*$ ]] || continue
    if ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local i alive
  for ((i = 0; i < 200; i++)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$D"/pids/*.pid
}

# restart-osd: osd.0 again, as start ran it (its conf recorded in
# DIR/osd.0.cmd), after the test killed it. The pid file gets the new pid.
restart_osd() {
  D=$(cd "$D" && pwd)
  [ -f "$D/osd.0.cmd" ] || die "$D/osd.0.cmd: no OSD started there"
  local pid C
  pid=$(cat "$D/pids/osd.0.pid" 2>/dev/null || true)
  if [[ $pid =~ ^[1-9][0-9]*$ ]] && ours "$pid"; then
    die "osd.0 (pid $pid) still runs; kill it first"
  fi
  C=$(cat "$D/osd.0.cmd")
  start_daemon osd.0 ceph-osd -c "$C" -i 0 -f
  wait_for 120 rados -c "$C" -p "${POOL:-strata}" ls ||
    die "osd.0 did not serve pool ${POOL:-strata} within 120 s of its restart: $D/log/osd.0.log"
}

usage="usage: ceph_cluster.sh start|fresh DIR [POOL] [--bluestore] | stop DIR | restart-osd DIR [POOL]"
[ $# -ge 2 ] || die "$usage"
cmd=$1 D=$2
shift 2
POOL= BLUESTORE=0
for arg in "$@"; do
  case $arg in
    --bluestore) BLUESTORE=1 ;;
    -*) die "unknown option '$arg'; $usage" ;;
    *) [ -z "$POOL" ] || die "$usage"; POOL=$arg ;;
  esac
done
case $cmd in
  start) start ;;
  stop) stop ;;
  restart-osd) restart_osd ;;
  fresh)
    if [ -d "$D/pids" ]; then stop; fi
    rm -rf "$D"
    start
    ;;
  *) die "$usage" ;;
esac
