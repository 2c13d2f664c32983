"""Tries to crash the interpreter through the strata API (issue 16: "No
Python code can make the interpreter crash through this API").

Each case runs in a child interpreter, so that a crash (SIGSEGV, an abort
of a sanitizer build) fails the case instead of killing pytest; the child
prints what it saw and the test checks that, and its exit status.
"""
import os
import subprocess
import sys
import textwrap


def run_isolated(code, *args):
    """Runs `code` in a new interpreter with this one's sys.path; returns
    its stdout after asserting that it exited normally."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (
        f"exit status {r.returncode} (negative: killed by that signal)\n"
        f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r.stdout


def test_writer_made_by_new_without_init_raises(tmp_path):
    # A heap type's __new__ without __init__ leaves every field zero: path
    # was NULL, and `w.path` handed out a NULL reference (a crash).
    out = run_isolated("""
        import strata
        w = strata.Writer.__new__(strata.Writer)
        print(repr(w))
        print(w.path, w.state, w.region_id)
        for call in (lambda: w.add(1, b"x"), lambda: w.begin_layer(1),
                     lambda: w.append(b"x"), lambda: w.append_zeros(1),
                     w.end_layer, w.commit, w.__enter__,
                     lambda: w.__exit__(None, None, None)):
            try:
                call()
                print("no error")
            except strata.Error as e:
                print("Error:", e)
        w.abort()  # cleanup code calls abort() whatever happened: no-op
        del w
        print("done")
    """)
    lines = out.splitlines()
    assert lines[0] == "<strata.Writer (not initialized)>"
    assert lines[1] == "None open 0"
    assert lines[2:-1] == ["Error: strata.Writer: not initialized (made with "
                           "Writer.__new__() without __init__())"] * 8
    assert lines[-1] == "done"


def sample_store(tmp_path):
    """A store directory holding conftest's sample region (id 7,
    "sample")."""
    from conftest import build_region, sample_layers
    store = tmp_path / "store"
    store.mkdir()
    build_region(store / "sample.region", sample_layers(), region_id=7,
                 name="sample")
    return store


def test_get_many_of_a_generator_that_closes_the_snapshot_raises(tmp_path):
    # The refs are consumed before the lookups: a generator that closes the
    # snapshot (or the store) got [Layer, None, None] from an ended txn.
    store = sample_store(tmp_path)
    out = run_isolated("""
        import sys, strata
        for what in ("snapshot", "store"):
            st = strata.Store(sys.argv[1])
            snap = st.snapshot()
            def refs():
                yield (7, 17)
                (snap if what == "snapshot" else st).close()
                yield (7, 3)
            try:
                print(what, snap.get_many(refs()))
            except strata.Error as e:
                print(what, "Error:", e)
            st.close()
    """, str(store))
    assert out.splitlines() == ["snapshot Error: this snapshot is closed",
                                "store Error: this snapshot is closed"]


def test_get_many_in_of_a_generator_that_closes_the_snapshot_raises(tmp_path):
    # get_many_in() consumes an iterable of ids (running its code) before
    # any lookup, as get_many() does: it must raise, not read an ended txn.
    store = sample_store(tmp_path)
    out = run_isolated("""
        import sys, strata
        for what in ("snapshot", "store"):
            for region in (7, "sample"):
                st = strata.Store(sys.argv[1])
                snap = st.snapshot()
                def ids():
                    yield 17
                    (snap if what == "snapshot" else st).close()
                    yield 3
                try:
                    print(what, snap.get_many_in(region, ids()))
                except strata.Error as e:
                    print(what, "Error:", e)
                st.close()
    """, str(store))
    assert out.splitlines() == ["snapshot Error: this snapshot is closed"] * 2 + [
        "store Error: this snapshot is closed"] * 2
