#!/usr/bin/python3
"""Strata's read path from Python against py-lmdb and a dict (issue 16, §5).

Same data, same random ids, one process, ratios:

  strata     snap.get(1, id)            a Layer (zero-copy) from a snapshot
  get_many   snap.get_many(64 refs)     per layer
  many_in    snap.get_many_in(1, ids)   per layer: the same 64 ids as a
                                        list of ints (one region, no tuples)
  many_in Q  snap.get_many_in(1, buf)   per layer: the same 64 ids as an
                                        array('Q'), a uint64 buffer read in
                                        place (a numpy array goes the same
                                        way)
  lmdb       txn.get(key)               py-lmdb, buffers=True (a memoryview
                                        into the map, zero-copy too)
  dict       d.get(id)                  a dict of bytes (the floor: one hash
                                        probe, no object made)
  bare call  {}.get(id)                 a C method call doing nothing, on
                                        an empty dict (the call's own cost)

over N layers of SIZE bytes (default 1,000,000 x 256 B) and LOOKUPS random
ids drawn once (seeded) and used by every contender in the same order. The
keys are made before timing: ints for Strata and the dict, 8-byte
big-endian bytes for LMDB (its keys are bytes; making them is not counted,
which favours LMDB). Each contender's pass is timed REPEAT times,
interleaved with the others, and the best pass is reported, so that a
burst of load on a shared machine hurts no one contender alone. The loop's
own cost (a `for` over the ids doing nothing) is reported, not subtracted.

Goals (the issue): strata <= 1.2x dict; strata >= 1.5x faster than lmdb;
get_many per layer <= 0.5x strata single get (reported for get_many and,
for a path inside one region, get_many_in). A miss is reported, not
fatal: this is a benchmark, not a test (`--n 2000` is the ctest smoke run,
which asserts nothing about time).

    /usr/bin/python3 bindings/python/bench.py [--n N] [--size SIZE]
        [--lookups L] [--batch 64] [--repeat 3] [--seed 1] [--dir DIR]
        [--clock wall|cpu]
"""
import argparse
import array
import gc
import os
import random
import shutil
import sys
import tempfile
import time

# sys.path[0] is this script's directory, whose strata/ is the package's
# source without the compiled extension: the strata imported must be the
# built one (PYTHONPATH=BUILD/bindings/python) or the installed one.
sys.path = [p for p in sys.path
            if os.path.abspath(p or ".") != os.path.dirname(
                os.path.abspath(__file__))]
import strata  # noqa: E402

try:
    import lmdb
except ImportError:  # python3-lmdb is optional: the others still run
    lmdb = None

REGION_ID = 1


def make_data(n, size, seed):
    """n values of `size` bytes, each different (an id in front of a seeded
    random block), so that no contender can share one object."""
    rng = random.Random(seed)
    block = rng.randbytes(size)
    return [i.to_bytes(8, "little") + block[8:] for i in range(n)]


def build_strata(directory, values):
    path = os.path.join(directory, "bench.region")
    with strata.Writer(path, region_id=REGION_ID, name="bench") as w:
        for i, v in enumerate(values):
            w.add(i, v)


def build_lmdb(directory, values):
    size = sum(len(v) + 64 for v in values) * 2 + (64 << 20)
    env = lmdb.open(directory, map_size=size, subdir=True, sync=False,
                    metasync=False, readahead=False, lock=True)
    with env.begin(write=True) as txn:
        for i, v in enumerate(values):
            txn.put(i.to_bytes(8, "big"), v, append=True)
    env.sync(True)
    return env


CLOCKS = {"wall": time.perf_counter_ns,
          # This thread's CPU time: on a machine shared with other builds
          # the time this process waited for a core is not counted (the
          # caches and memory bus it shares still are).
          "cpu": time.thread_time_ns}


def timed(fn, clock):
    """Nanoseconds one call of fn() takes on `clock`, with the cyclic GC
    off (none of the contenders makes cycles; a collection in the middle
    would be noise)."""
    gc.collect()
    gc.disable()
    try:
        t0 = clock()
        fn()
        return clock() - t0
    finally:
        gc.enable()


def run(args):
    n, lookups = args.n, args.lookups
    values = make_data(n, args.size, args.seed)
    rng = random.Random(args.seed + 1)
    ids = [rng.randrange(n) for _ in range(lookups)]
    lmdb_keys = [i.to_bytes(8, "big") for i in ids]
    refs = [(REGION_ID, i) for i in ids]
    batches = [refs[k:k + args.batch]
               for k in range(0, lookups - args.batch + 1, args.batch)]
    per_batch = len(batches) * args.batch
    # The same ids, batch by batch, for get_many_in: a list of ints, and
    # the same as a uint64 buffer.
    id_batches = [[k for _, k in b] for b in batches]
    buf_batches = [array.array("Q", b) for b in id_batches]

    work = args.dir or tempfile.mkdtemp(prefix="strata-pybench-")
    store_dir = os.path.join(work, "store")
    lmdb_dir = os.path.join(work, "lmdb")
    os.makedirs(store_dir, exist_ok=True)
    t0 = time.perf_counter()
    build_strata(store_dir, values)
    t_strata = time.perf_counter() - t0
    env = None
    if lmdb is not None:
        t0 = time.perf_counter()
        env = build_lmdb(lmdb_dir, values)
        t_lmdb = time.perf_counter() - t0
    table = dict(enumerate(values))
    del values

    store = strata.Store(store_dir)
    snap = store.snapshot()
    txn = env.begin(buffers=True) if env is not None else None

    # Every contender's pass is a function of its own, so that each loop
    # reads only locals.
    def pass_loop():
        for k in ids:
            pass

    def pass_bare():
        g = {}.get
        for k in ids:
            g(k)

    def pass_dict():
        g = table.get
        for k in ids:
            g(k)

    def pass_strata():
        g = snap.get
        r = REGION_ID
        for k in ids:
            g(r, k)

    def pass_get_many():
        g = snap.get_many
        for b in batches:
            g(b)

    def pass_many_in(forms):
        """get_many_in over `forms`: the id batches as lists or buffers."""
        def one_pass():
            g = snap.get_many_in
            for b in forms:
                g(REGION_ID, b)
        return one_pass

    def pass_lmdb():
        g = txn.get
        for k in lmdb_keys:
            g(k)

    # Correctness first: the same bytes through every path.
    for k in ids[:1000]:
        want = table[k]
        assert bytes(snap.get(REGION_ID, k)) == want
        if txn is not None:
            assert bytes(txn.get(k.to_bytes(8, "big"))) == want
    for layer, (_, k) in zip(snap.get_many(batches[0]), batches[0]):
        assert bytes(layer) == table[k]
    for b, q in zip(id_batches[:16], buf_batches):
        for form in (b, q):
            got = snap.get_many_in(REGION_ID, form)
            assert [bytes(layer) for layer in got] == [table[k] for k in b]

    contenders = [("loop", pass_loop, lookups), ("bare call", pass_bare,
                                                  lookups),
                  ("dict", pass_dict, lookups),
                  ("strata", pass_strata, lookups),
                  ("get_many", pass_get_many, per_batch),
                  ("many_in", pass_many_in(id_batches), per_batch),
                  ("many_in Q", pass_many_in(buf_batches), per_batch)]
    if txn is not None:
        contenders.append(("lmdb", pass_lmdb, lookups))
    best = {name: None for name, _, _ in contenders}
    for _ in range(args.repeat):
        for name, fn, count in contenders:
            ns = timed(fn, CLOCKS[args.clock]) / count
            if best[name] is None or ns < best[name]:
                best[name] = ns

    if txn is not None:
        txn.abort()
        env.close()
    snap.close()
    store.close()
    if args.dir is None:
        shutil.rmtree(work)

    print("strata %s, Python %s, %d layers x %d B, %d random lookups "
          "(seed %d), best of %d passes, %s clock" % (
              strata.__version__, sys.version.split()[0], n, args.size,
              lookups, args.seed, args.repeat, args.clock))
    print("build: strata.Writer %.2f s%s" % (
        t_strata, ", lmdb put(append=True) %.2f s" % t_lmdb
        if env is not None else ""))
    print()
    print("%-10s %10s" % ("", "ns/op"))
    for name, _, _ in contenders:
        extra = " (per layer, %d per call)" % args.batch \
            if name in ("get_many", "many_in", "many_in Q") else ""
        print("%-10s %10.1f%s" % (name, best[name], extra))
    print()

    def goal(label, value, limit, better):
        ok = value <= limit if better == "<=" else value >= limit
        print("%-44s %6.2f  (goal %s %.2f: %s)" % (
            label, value, better, limit, "met" if ok else "MISSED"))

    goal("strata get / dict.get", best["strata"] / best["dict"], 1.2, "<=")
    if txn is not None:
        goal("lmdb txn.get / strata get (speed-up)",
             best["lmdb"] / best["strata"], 1.5, ">=")
    for name in ("get_many", "many_in", "many_in Q"):
        goal("%s per layer / strata get" % name, best[name] /
             best["strata"], 0.5, "<=")
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="layers")
    p.add_argument("--size", type=int, default=256, help="bytes per layer")
    p.add_argument("--lookups", type=int, default=None,
                   help="random lookups per pass (default: n, at least "
                   "10000)")
    p.add_argument("--batch", type=int, default=64,
                   help="refs per get_many call")
    p.add_argument("--repeat", type=int, default=3,
                   help="passes per contender; the best is reported")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall: elapsed time; cpu: this thread's CPU time, "
                   "steadier on a loaded machine")
    p.add_argument("--dir", help="where to build (default: a temporary "
                   "directory, removed after)")
    args = p.parse_args(argv)
    if args.n < 1 or args.size < 8 or args.batch < 1 or args.repeat < 1:
        p.error("--n, --batch and --repeat must be >= 1, --size >= 8")
    if args.lookups is None:
        args.lookups = max(args.n, 10000)
    if args.lookups < args.batch:
        p.error("--lookups must be at least --batch")
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
