#!/usr/bin/env python3
"""strata-bench's writer-cycle scenario at a small size (issue 19).

Runs `strata-bench --scenario writer-cycle --json` on a 2,000-layer region
(--n 20000: scale 0.02, 20 changed layers a cycle) and checks what the
scenario reports about the stores, never a time: it exits 0 (it compares
every layer of both Strata stores and of LMDB with the bytes last put, and
fails otherwise), every cycle is classed as a delta, a merge or a
compaction, the store with deltas wrote deltas, the STRATA_STORE_NO_DELTAS
store compacted every cycle, and the reader ran in both phases.

usage: check_writer_cycle.py STRATA_BENCH WORKDIR
"""
import json
import os
import subprocess
import sys

CYCLES = 12


def fail(msg):
    print(f"check_writer_cycle: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    bench, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    cmd = [bench, "--n", "20000", "--cycles", str(CYCLES), "--seconds",
           "0.05", "--reps", "1", "--scenario", "writer-cycle", "--json",
           "--dir", workdir]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    r = json.loads(p.stdout)["scenarios"]["writer-cycle"]
    want = {"layers": 2000, "changes": 20, "layer_bytes": 256,
            "cycles": CYCLES}
    for k, v in want.items():
        if r[k] != v:
            fail(f"{k} is {r[k]}, want {v}")
    for peer in ("strata", "lmdb", "strata_no_deltas"):
        s = r[peer]["cycle_ms"]
        if not 0 < s["min"] <= s["median"] <= s["max"]:
            fail(f"{peer}: cycle_ms out of order: {s}")
        if not s["min"] <= r[peer]["p90_ms"] <= s["max"]:
            fail(f"{peer}: p90 {r[peer]['p90_ms']} outside {s}")
    d = r["strata"]
    kinds = d["delta_cycles"] + d["merge_cycles"] + d["compact_cycles"]
    if kinds != CYCLES:
        fail(f"strata: {kinds} cycles classed, want {CYCLES}: {d}")
    # 20 x 256 B over a 512 KB base: a small change, written as a delta
    # (docs/ARCHITECTURE.md, "Deltas"), at least until the stack is full.
    if d["delta_cycles"] < 1:
        fail(f"strata: no cycle wrote a delta: {d}")
    w = r["strata_no_deltas"]
    if (w["compact_cycles"], w["delta_cycles"], w["merge_cycles"]) != (
            CYCLES, 0, 0):
        fail(f"strata_no_deltas: every cycle must compact: {w}")
    rd = r["reader"]
    if not (rd["idle_gets_s"] > 0 and rd["busy_gets_s"] > 0):
        fail(f"the reader did not run in both phases: {rd}")
    print(f"check_writer_cycle: ok ({d['delta_cycles']} deltas, "
          f"{d['merge_cycles']} merges, {d['compact_cycles']} compactions)")


if __name__ == "__main__":
    main()
