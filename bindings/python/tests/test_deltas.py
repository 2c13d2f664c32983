"""Delta files as Python reports them (issue 19 through the binding):
Snapshot.regions()' delta_depth and deltas, Region.info["delta"] of a
delta file opened directly, Layer.tombstone, Store(no_deltas=True),
Store.compact() and Store(background_compact=True).

The deltas are made the way a store makes them: a small change put into a
proto and crystallized (docs/ARCHITECTURE.md, "Crystallize": a change
below a quarter of the base's bytes becomes NAME.k.delta). What each
report says is checked against the files themselves (their own headers,
read through strata.Region) and against the C state dump.
"""
import os

import pytest

import strata

DOCS = 3
BASE = {i: bytes([i]) * 1000 for i in range(20)}  # 20 KB: room for deltas


@pytest.fixture
def store(tmp_path):
    s = strata.Store(tmp_path / "store", create=True, shared_view=False)
    with s.proto(DOCS, create=True, name="docs") as p:
        for lid, data in BASE.items():
            p.put(lid, data)
    s.crystallize(DOCS)
    yield s
    s.close()


def small_change(store, puts, removes=()):
    with store.proto(DOCS) as p:
        for lid, data in puts.items():
            p.put(lid, data)
        for lid in removes:
            p.remove(lid)
    store.crystallize(DOCS)


def header_checksum(path):
    with strata.Region(path) as r:
        return r.info["header_checksum"]


def test_regions_report_a_delta_and_reads_see_it(store):
    before = store.snapshot()
    (r,) = before.regions()
    assert r["delta_depth"] == 0 and r["deltas"] == []
    small_change(store, {1: b"one, changed", 40: b"forty"}, removes=[2])
    with store.snapshot() as snap:
        (r,) = snap.regions()
        assert r["delta_depth"] == 1
        (d,) = r["deltas"]
        assert d["file"] == os.path.join(os.path.dirname(r["file"]),
                                         "docs.1.delta")
        assert d["bytes"] == os.path.getsize(d["file"])
        assert d["depth"] == 1
        assert d["layers"] == 3  # two layers and a tombstone
        base = header_checksum(r["file"])
        assert d["parent_checksum"] == base and d["base_checksum"] == base
        assert d["header_checksum"] == header_checksum(d["file"])
        assert r["layers"] == 20  # 20 + layer 40 - layer 2, through the delta
        assert r["bytes"] == os.path.getsize(r["file"])
        # What the C state dump says about the same files.
        (state,) = store.dump_state()["regions"]
        assert [(x["path"], x["depth"], x["file_size"], x["layer_count"])
                for x in state["deltas"]] == [
                    (d["file"], 1, d["bytes"], d["layers"])]
        # Reads see the change and the removal, in every form.
        assert bytes(snap.get(DOCS, 1)) == b"one, changed"
        assert bytes(snap.get(DOCS, 40)) == b"forty"
        assert bytes(snap.get(DOCS, 3)) == BASE[3]
        with pytest.raises(strata.NotFoundError):
            snap.get(DOCS, 2)
        got = snap.get_many_in(DOCS, [1, 2, 3, 40])
        assert [None if l is None else bytes(l) for l in got] == [
            b"one, changed", None, BASE[3], b"forty"]
        assert snap.get_many([(DOCS, 2), ("docs", 40)])[0] is None
        ids = [l.id for l in snap.layers(DOCS)]
        assert ids == [i for i in range(20) if i != 2] + [40]
        assert all(not l.tombstone for l in snap.layers(DOCS))
    # The snapshot taken before still sees the base alone.
    (r,) = before.regions()
    assert r["delta_depth"] == 0 and r["deltas"] == []
    assert bytes(before.get(DOCS, 2)) == BASE[2]
    before.close()


def test_region_info_of_a_delta_file(store):
    small_change(store, {1: b"one, changed", 40: b"forty"}, removes=[2])
    with store.snapshot() as snap:
        (r,) = snap.regions()
    base_path, delta_path = r["file"], r["deltas"][0]["file"]
    with strata.Region(base_path) as base:
        assert base.info["delta"] is None
        base_checksum = base.info["header_checksum"]
        assert not any(l.tombstone for l in base)
    with strata.Region(delta_path) as delta:
        info = delta.info
        assert info["format"] == "1.1"
        assert info["layer_count"] == 3
        assert info["delta"] == {"depth": 1, "parent_checksum": base_checksum,
                                 "base_checksum": base_checksum,
                                 "tombstones": 1}
        assert [(l.id, l.tombstone) for l in delta] == [
            (1, False), (2, True), (40, False)]
        gone = delta[2]
        assert gone.tombstone and gone.size == 0 and gone.name is None
        assert bytes(gone) == b""
        assert bytes(delta[40]) == b"forty"
    with pytest.raises(strata.Error, match="closed"):
        gone.tombstone


def test_a_second_delta_chains_over_the_first(store):
    small_change(store, {1: b"one, changed"}, removes=[2])
    small_change(store, {5: b"five, changed"}, removes=[6, 1])
    with store.snapshot() as snap:
        (r,) = snap.regions()
        deltas = r["deltas"]
        # Whatever the crystallize policy (a second delta, or the two
        # merged into one), the reports agree with the dump and with the
        # files, and the chain goes from the base to the top.
        (state,) = store.dump_state()["regions"]
        assert [(x["path"], x["depth"]) for x in state["deltas"]] == [
            (d["file"], d["depth"]) for d in deltas]
        assert r["delta_depth"] == len(deltas) >= 1
        base = header_checksum(r["file"])
        parent = base
        for k, d in enumerate(deltas):
            assert d["depth"] == k + 1
            assert d["base_checksum"] == base
            assert d["parent_checksum"] == parent
            parent = d["header_checksum"]
            assert parent == header_checksum(d["file"])
            with strata.Region(d["file"]) as f:
                assert f.info["delta"]["depth"] == k + 1
                assert f.info["delta"]["tombstones"] == sum(
                    l.tombstone for l in f)
        assert r["layers"] == 17
        assert bytes(snap.get(DOCS, 5)) == b"five, changed"
        for gone in (1, 2, 6):
            with pytest.raises(strata.NotFoundError):
                snap.get(DOCS, gone)
        assert snap.get_many_in(DOCS, [1, 2, 6]) == [None] * 3


def expect_one_base(snap, layers, changed):
    """The region is served from one base file, no deltas: `layers` layers,
    the `changed` contents, layer 2 removed. Returns its region entry."""
    (r,) = snap.regions()
    assert r["delta_depth"] == 0 and r["deltas"] == []
    assert r["layers"] == layers
    for layer, content in changed.items():
        assert bytes(snap.get(DOCS, layer)) == content
    assert snap.get_many_in(DOCS, [2]) == [None]
    return r


def test_no_deltas_store_writes_a_whole_base(store, tmp_path):
    small_change(store, {1: b"one, changed"}, removes=[2])
    store.close()
    with strata.Store(tmp_path / "store", no_deltas=True,
                      shared_view=False) as s:
        with s.snapshot() as snap:
            assert snap.regions()[0]["delta_depth"] == 1  # still served
        small_change(s, {3: b"three, changed"})
        with s.snapshot() as snap:
            r = expect_one_base(snap, 19, {1: b"one, changed",
                                           3: b"three, changed"})
        with strata.Region(r["file"]) as base:
            assert base.info["delta"] is None
            assert len(base) == 19


def test_compact_rewrites_the_stack_into_a_base(store):
    small_change(store, {1: b"one, changed"}, removes=[2])
    small_change(store, {3: b"three, changed", 41: b"forty-one"})
    with store.snapshot() as snap:
        assert snap.regions()[0]["delta_depth"] == 2
    held = store.snapshot()
    store.compact("docs")
    with store.snapshot() as snap:
        r = expect_one_base(snap, 20, {1: b"one, changed", 41: b"forty-one"})
    # A snapshot taken before reads the stack it saw.
    assert held.regions()[0]["delta_depth"] == 2
    assert bytes(held.get(DOCS, 3)) == b"three, changed"
    held.close()
    with strata.Region(r["file"]) as base:
        assert base.info["delta"] is None and len(base) == 20
    store.compact(DOCS)  # nothing to compact: a no-op
    with pytest.raises(strata.NotFoundError):
        store.compact(999)


def test_background_compact_keeps_stacks_short(store, tmp_path):
    store.close()
    with strata.Store(tmp_path / "store", background_compact=True,
                      shared_view=False) as s:
        want = dict(BASE)
        for c in range(12):
            change = {c: b"cycle %d" % c, 50 + c: b"new %d" % c}
            want.update(change)
            small_change(s, change)
        s.compact_wait()
        with s.snapshot() as snap:
            (r,) = snap.regions()
            assert r["delta_depth"] < 4
            assert {lid: bytes(snap.get(DOCS, lid)) for lid in want} == want
            assert r["layers"] == len(want)
        s.compact_wait()  # nothing queued: returns at once
