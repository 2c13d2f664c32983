#!/usr/bin/env python3
"""strata-bench's writer-cycle scenario at a small size (issue 19).

Runs `strata-bench --scenario writer-cycle --json` on a 2,000-layer region
(--n 20000: scale 0.02, 20 changed layers a cycle) and checks what the
scenario reports about the stores, never a time: it exits 0 (it compares
every layer of both Strata stores and of LMDB with the bytes last put, and
fails otherwise), every cycle is classed as a delta, a merge or a
compaction, the store with deltas wrote deltas, the STRATA_STORE_NO_DELTAS
store compacted every cycle, the STRATA_STORE_BACKGROUND_COMPACT store's
cycles are all classed too, and the reader ran in both phases of both
stores.

usage: check_writer_cycle.py STRATA_BENCH WORKDIR
"""
import sys

from bench_check import Check

CYCLES = 12
C = Check("check_writer_cycle")


def main():
    r = C.run(sys.argv[1], sys.argv[2], "writer-cycle",
              ["--n", "20000", "--cycles", str(CYCLES), "--seconds", "0.05",
               "--reps", "1"])
    C.expect(r, {"layers": 2000, "changes": 20, "layer_bytes": 256,
                 "cycles": CYCLES})
    for peer in ("strata", "strata_background", "lmdb", "strata_no_deltas"):
        s = r[peer]["cycle_ms"]
        C.ordered(f"{peer}: cycle_ms", s)
        if not s["min"] <= r[peer]["p90_ms"] <= s["max"]:
            C.fail(f"{peer}: p90 {r[peer]['p90_ms']} outside {s}")
    for peer in ("strata", "strata_background"):
        d = r[peer]
        kinds = d["delta_cycles"] + d["merge_cycles"] + d["compact_cycles"]
        if kinds != CYCLES:
            C.fail(f"{peer}: {kinds} cycles classed, want {CYCLES}: {d}")
    d = r["strata"]
    # 20 x 256 B over a 512 KB base: a small change, written as a delta
    # (docs/ARCHITECTURE.md, "Deltas"), at least until the stack is full.
    if d["delta_cycles"] < 1:
        C.fail(f"strata: no cycle wrote a delta: {d}")
    w = r["strata_no_deltas"]
    if (w["compact_cycles"], w["delta_cycles"], w["merge_cycles"]) != (
            CYCLES, 0, 0):
        C.fail(f"strata_no_deltas: every cycle must compact: {w}")
    for key in ("reader", "reader_background"):
        rd = r[key]
        if not (rd["idle_gets_s"] > 0 and rd["busy_gets_s"] > 0):
            C.fail(f"{key} did not run in both phases: {rd}")
    print(f"check_writer_cycle: ok ({d['delta_cycles']} deltas, "
          f"{d['merge_cycles']} merges, {d['compact_cycles']} compactions)")


if __name__ == "__main__":
    main()
