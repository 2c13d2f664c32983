#!/bin/bash
# The shared view seen from outside (ctest: cli_readers): a reader process
# and a writer process (store_holder) keep a store open; `strata readers`,
# `readers --json`, `stats --process`, `metrics` and `dump-state` must
# report both as they are; after one is killed with SIGKILL, `readers` no
# longer lists it and `readers --check` clears its slot, once.
#
#   test_readers.sh STRATA STORE_HOLDER WORKDIR
set -u
STRATA=$1 HOLDER=$2 WORK=$3
PY=/usr/bin/python3
rm -rf "$WORK" && mkdir -p "$WORK/store" || exit 1
cd "$WORK" || exit 1
unset STRATA_LOG
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
failures=0
not() { ! "$@"; }
check() { # check NAME COMMAND...: runs the command, reports
  if "${@:2}"; then echo "ok $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}

# Starts a holder and waits for its READY file (it exists only once the
# holder has published: no sleeping).
start() { # start ROLE GETS NAME
  "$HOLDER" store "$1" "$2" "$3.ready" 2>"$3.err" &
  pids+=($!)
  while [ ! -e "$3.ready" ]; do
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "FAIL holder $3 died: $(cat "$3.err")"; exit 1
    fi
    read -r -t 0.05 <> <(:) || true
  done
}
start writer 5 w
start reader 3 r
W=$(cat w.ready) R=$(cat r.ready)

"$STRATA" readers store >readers.out 2>readers.err
check readers_exit test $? -eq 0
check readers_header grep -q '^PID  *ROLE  *OPENED  *SNAPS  *OLDEST_MS  *GETS  *MISSES  *BYTES$' readers.out
# pid, role, snapshots open, gets, misses, bytes (the OPENED time varies).
row() { awk -v p="$1" '$1 == p { print $1, $2, $4, $6, $7, $8 }' readers.out; }
check readers_writer test "$(row "$W")" = "$W writer 1 5 0 20"
check readers_reader test "$(row "$R")" = "$R reader 1 3 3 0"
check readers_two test "$(wc -l <readers.out)" -eq 3

"$STRATA" readers --json store >readers.json
check readers_json $PY -c '
import json, sys
d = json.load(open("readers.json"))
w, r = int(sys.argv[1]), int(sys.argv[2])
by = {p["pid"]: p for p in d["list"]}
assert d["live"] == 2, d
assert by[w]["role"] == "writer" and by[w]["gets"] == 5 and by[w]["bytes_served"] == 20
assert by[r]["role"] == "reader" and by[r]["misses"] == 3 and by[r]["snapshots_open"] == 1
assert d["sum"]["gets"] == 8 and d["sum"]["misses"] == 3 and d["sum"]["snapshots_open"] == 2
assert by[w]["opened"].endswith("Z") and by[w]["oldest_snapshot_age_ms"] >= 0
' "$W" "$R"

"$STRATA" stats --process "$R" store >stats.out
check stats_process grep -qx "  pid $R reader: 3 gets, 3 misses, 0 bytes served; 1 snapshots open (oldest [0-9]* ms); 0 crystallizations; memory ok" stats.out
check stats_process_only not grep -q "pid $W" stats.out
"$STRATA" stats store >stats_all.out
check stats_live grep -qx 'processes:        2 live (shared view)' stats_all.out
check stats_sum grep -qx '  sum:            8 gets, 3 misses, 20 bytes served; 2 snapshots open (oldest [0-9]* ms); 0 crystallizations; memory ok' stats_all.out
"$STRATA" stats --json --process "$W" store >stats.json
check stats_json $PY -c '
import json, sys
d = json.load(open("stats.json"))["processes"]
assert d["live"] == 1 and d["list"][0]["pid"] == int(sys.argv[1]) and d["sum"]["gets"] == 5, d
' "$W"
"$STRATA" stats --process 999999999 store >/dev/null 2>nopid.err
check stats_no_such_pid test $? -eq 1
check stats_no_such_pid_msg grep -qx 'strata: store: no live process with pid 999999999 has the store open' nopid.err
"$STRATA" metrics store >metrics.out
check metrics_gets grep -qx "strata_process_gets_total{pid=\"$W\",slot=\"[0-9]*\",role=\"writer\"} 5" metrics.out
check metrics_live grep -qx 'strata_processes_live 2' metrics.out
"$STRATA" dump-state --process "$R" store >state.json
check dump_state $PY -c '
import json, sys
d = json.load(open("state.json"))
p = d["processes"]
assert p["live"] == 1 and p["list"][0]["role"] == "reader" and p["list"][0]["gets"] == 3, p
assert "regions" in d and "config" in d
' "$R"
"$STRATA" top --count 2 --interval 0.1 store >top.out
check top_tables test "$(grep -c '^PID ' top.out)" -eq 2
check top_no_escape not grep -q $'\033' top.out
check top_rows grep -q "^$R  *reader " top.out

# SIGKILL the writer: it leaves its slot but is no longer listed; its lock
# went with it, so another writer can take the store.
kill -9 "$W"
wait "$W" 2>/dev/null
"$STRATA" readers store >after.out
check killed_not_listed not grep -q "^$W " after.out
check killed_reader_listed grep -q "^$R  *reader " after.out
"$STRATA" readers --check store >check.out
check check_cleared grep -qx 'store: cleared 1 dead slot' check.out
"$STRATA" readers --check store >check2.out
check check_again grep -qx 'store: cleared 0 dead slots' check2.out
start writer 1 w2
check writer_again test "$(awk -v p="$(cat w2.ready)" '$1 == p { print $2 }' <("$STRATA" readers store))" = writer

echo "$failures failed"
[ "$failures" -eq 0 ]
