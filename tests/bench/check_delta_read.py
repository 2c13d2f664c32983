#!/usr/bin/env python3
"""strata-bench's delta-read scenario at a small size (issue 19).

Runs `strata-bench --scenario delta-read --json` on two 2,000-layer regions
(--n 20000: 4 changes of 20 layers each) and checks what the scenario
reports about the store, never a time: it exits 0 (it compares every
layer of the two regions and fails on a difference or on a get that
misses), the region read through deltas is served with at least one delta
after the store is opened again, the compacted one with none, and every
measurement (random and changed ids, single and batched gets) has figures.

usage: check_delta_read.py STRATA_BENCH WORKDIR
"""
import sys

from bench_check import Check

C = Check("check_delta_read")


def main():
    r = C.run(sys.argv[1], sys.argv[2], "delta-read",
              ["--n", "20000", "--gets", "6400", "--reps", "1"])
    C.expect(r, {"layers": 2000, "changes": 20, "layer_bytes": 256,
                 "gets": 6400, "reps": 1, "compacted_depth": 0})
    # Four changes of 1% of the region each: deltas, at most max_depth (4)
    # of them (docs/ARCHITECTURE.md, "Deltas").
    if not 1 <= r["depth"] <= 4:
        C.fail(f"depth {r['depth']}, want 1 to 4")
    for ids in ("random", "changed"):
        for call in ("get_data", "get_data_many"):
            m = r[f"{ids}_{call}"]
            for side in ("deltas_ns", "compacted_ns"):
                C.ordered(f"{ids}_{call}.{side}", m[side])
    print(f"check_delta_read: ok (depth {r['depth']})")


if __name__ == "__main__":
    main()
