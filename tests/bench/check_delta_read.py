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
import json
import os
import subprocess
import sys


def fail(msg):
    print(f"check_delta_read: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    bench, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    cmd = [bench, "--n", "20000", "--gets", "6400", "--reps", "1",
           "--scenario", "delta-read", "--json", "--dir", workdir]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    r = json.loads(p.stdout)["scenarios"]["delta-read"]
    want = {"layers": 2000, "changes": 20, "layer_bytes": 256, "gets": 6400,
            "reps": 1, "compacted_depth": 0}
    for k, v in want.items():
        if r[k] != v:
            fail(f"{k} is {r[k]}, want {v}")
    # Four changes of 1% of the region each: deltas, at most max_depth (4)
    # of them (docs/ARCHITECTURE.md, "Deltas").
    if not 1 <= r["depth"] <= 4:
        fail(f"depth {r['depth']}, want 1 to 4")
    for ids in ("random", "changed"):
        for call in ("get_data", "get_data_many"):
            m = r[f"{ids}_{call}"]
            for side in ("deltas_ns", "compacted_ns"):
                s = m[side]
                if not 0 < s["min"] <= s["median"] <= s["max"]:
                    fail(f"{ids}_{call}.{side} out of order: {s}")
    print(f"check_delta_read: ok (depth {r['depth']})")


if __name__ == "__main__":
    main()
