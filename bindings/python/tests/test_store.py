"""strata.Store, strata.Snapshot and strata.Proto (issue 16, section 2).

Stores are built through the API under test itself: an empty store
(create=True), protos put into and crystallized into region files, then
opened again. Nothing here times anything: threads and processes are
ordered with events and pipes.
"""
import array
import gc
import json
import os
import subprocess
import sys
import threading

import pytest

import strata

DOCS = 3  # region id of the "docs" region the fixture writes
LAYERS = {
    1: (b"first layer", "intro", {"keywords": ["a"], "frequency": 4}),
    2: (b"second" * 100, "body", None),
    17: (b"gpl-3 section 17", "gpl-3/section-17", {"license": "GPL-3"}),
}


def fill(store, region=DOCS, name="docs"):
    """Creates region `region` with LAYERS through a proto, crystallizes."""
    with store.proto(region, create=True, name=name, metadata={"kind": "t"}) as p:
        for lid, (data, lname, meta) in LAYERS.items():
            p.put(lid, data, name=lname, metadata=meta)
    store.crystallize(region)


@pytest.fixture
def path(tmp_path):
    d = tmp_path / "store"
    with strata.Store(d, create=True, shared_view=False) as s:
        fill(s)
    return str(d)


@pytest.fixture
def store(path):
    s = strata.Store(path, shared_view=False)
    yield s
    s.close()


# ---- opening and configuration ------------------------------------------


def test_store_reopens_crystallized_region(path):
    with strata.Store(path) as s:
        assert not s.closed
        assert s.path == path
        with s.snapshot() as snap:
            (r,) = snap.regions()
            assert r["id"] == DOCS and r["name"] == "docs"
            assert r["layers"] == 3
            assert r["metadata"] == {"kind": "t"}
            assert r["file"].endswith("docs.region")
            assert r["bytes"] == os.path.getsize(r["file"])
            assert r["has_proto"] is False
            for lid, (data, lname, meta) in LAYERS.items():
                layer = snap.get(DOCS, lid)
                assert bytes(layer) == data
                assert layer.id == lid and layer.name == lname
                assert layer.metadata == meta
    assert s.closed


def test_unknown_config_keyword_is_named(tmp_path):
    with pytest.raises(TypeError, match="memory_limt"):
        strata.Store(tmp_path, memory_limt=1)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"memory_limit": -1}, "memory_limit"),
        ({"max_readers": 2**40}, "max_readers"),
        ({"staging_bytes": "x"}, "staging_bytes"),
        ({"log_level": "loud"}, "log_level"),
    ],
)
def test_bad_config_value_is_named(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        strata.Store(tmp_path, **kwargs)


def test_config_reaches_the_library(path):
    with strata.Store(
        path, memory_limit=64 << 20, warn_pct=70, log_level="error",
        shared_view=False, staging_bytes=None,
    ) as s:
        cfg = s.dump_state()["config"]
        assert cfg["memory_limit"] == 64 << 20
        assert cfg["warn_pct"] == 70


def test_missing_directory_is_an_oserror(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(strata.StrataOSError) as e:
        strata.Store(missing)
    assert isinstance(e.value, OSError)
    assert str(missing) in str(e.value)


def test_read_only_store_refuses_protos(path):
    with strata.Store(path, read_only=True, shared_view=False) as s:
        with pytest.raises(strata.Error):
            s.proto(DOCS)
        with s.snapshot() as snap:
            assert bytes(snap.get(DOCS, 1)) == LAYERS[1][0]


# ---- snapshots ------------------------------------------------------------


def test_get_by_ids_and_names(store):
    with store.snapshot() as snap:
        assert bytes(snap.get(DOCS, 17)) == LAYERS[17][0]
        assert bytes(snap.get("docs", 17)) == LAYERS[17][0]
        assert snap.get(DOCS, "gpl-3/section-17").id == 17
        assert snap.get("docs", "intro").id == 1


def test_misses_raise_not_found_which_is_a_key_error(store):
    with store.snapshot() as snap:
        with pytest.raises(strata.NotFoundError, match="no layer 99"):
            snap.get(DOCS, 99)
        with pytest.raises(KeyError):
            snap.get(DOCS, "nope")
        with pytest.raises(strata.NotFoundError, match="region 42"):
            snap.get(42, 1)
        with pytest.raises(strata.NotFoundError, match="elsewhere"):
            snap.get("elsewhere", 1)


def test_bad_keys_are_type_errors(store):
    with store.snapshot() as snap:
        # The message names the argument and the type (PyErr_Format has no
        # %T in 3.11: it once printed a literal "%T").
        with pytest.raises(TypeError,
                           match=r"^layer must be an int id or a str name, "
                                 r"not float$"):
            snap.get(DOCS, 1.5)
        with pytest.raises(TypeError, match=r"^region must be .*, not bytes$"):
            snap.get(b"docs", 1)
        with pytest.raises(OverflowError):
            snap.get(DOCS, -1)
        with pytest.raises(TypeError):
            snap.get(DOCS)


def test_get_many_mixes_ids_and_names_and_gives_none_for_misses(store):
    with store.snapshot() as snap:
        got = snap.get_many(
            [
                (DOCS, 17),
                ("docs", "intro"),
                ("docs", 2),
                (DOCS, "body"),
                (DOCS, 99),
                ("nowhere", 1),
                ("docs", "nothing"),
                (7, "intro"),
            ]
        )
        assert [None if l is None else l.id for l in got] == [
            17, 1, 2, 2, None, None, None, None,
        ]
        assert bytes(got[0]) == LAYERS[17][0]
        assert snap.get_many([]) == []
        many = [(DOCS, 1 + i % 2) for i in range(200)]  # past the stack arrays
        assert [l.id for l in snap.get_many(many)] == [1 + i % 2 for i in range(200)]
        with pytest.raises(TypeError, match="item 1"):
            snap.get_many([(DOCS, 1), (DOCS,)])
        with pytest.raises(TypeError):
            snap.get_many([(DOCS, 1.0)])


def ids_of(layers):
    return [None if l is None else l.id for l in layers]


def test_get_many_in_takes_lists_tuples_buffers_and_iterables(store):
    with store.snapshot() as snap:
        want = [17, None, 1, 2, None, 1]
        ids = [17, 99, 1, 2, 2**64 - 1, 1]
        got = snap.get_many_in(DOCS, ids)
        assert ids_of(got) == want
        assert [bytes(l) for l in got if l is not None] == [
            LAYERS[17][0], LAYERS[1][0], LAYERS[2][0], LAYERS[1][0]]
        # The same answers as get_many() and get() for the same ids.
        assert ids_of(snap.get_many([(DOCS, i) for i in ids])) == want
        assert got[0].name == "gpl-3/section-17"
        assert got[0].metadata == LAYERS[17][2]
        assert got[0].checksum == snap.get(DOCS, 17).checksum
        for form in (tuple(ids), array.array("Q", ids), iter(ids),
                     (i for i in ids)):
            assert ids_of(snap.get_many_in(DOCS, form)) == want
        # A region name is the region's id; a missing region is a miss for
        # every id, as get_many() answers (None, not an error).
        assert ids_of(snap.get_many_in("docs", ids)) == want
        assert snap.get_many_in("nowhere", ids) == [None] * len(ids)
        assert snap.get_many_in(8, ids) == [None] * len(ids)
        assert snap.get_many_in(DOCS, []) == []
        assert snap.get_many_in(DOCS, array.array("Q")) == []
        assert snap.get_many_in("nowhere", []) == []
        # Past one chunk of 64: results stay in order across chunks.
        many = [1 + i % 3 for i in range(200)]
        assert ids_of(snap.get_many_in(DOCS, many)) == [
            i if i in LAYERS else None for i in many]
        assert ids_of(snap.get_many_in(DOCS, range(0, 18))) == [
            i if i in LAYERS else None for i in range(0, 18)]


def test_get_many_in_reads_numpy_uint64_arrays_in_place(store):
    np = pytest.importorskip("numpy")
    with store.snapshot() as snap:
        a = np.array([17, 1, 99, 2, 1], dtype=np.uint64)
        assert ids_of(snap.get_many_in(DOCS, a)) == [17, 1, None, 2, 1]
        # Strided and reversed views are read with their strides.
        assert ids_of(snap.get_many_in(DOCS, a[::2])) == [17, None, 1]
        assert ids_of(snap.get_many_in(DOCS, a[::-1])) == [1, 2, None, 1, 17]
        # Unaligned: a uint64 buffer one byte into a bytearray.
        raw = bytearray(1 + 8 * 3)
        raw[1:] = np.array([2, 17, 1], dtype=np.uint64).tobytes()
        view = memoryview(raw)[1:].cast("Q")
        assert ids_of(snap.get_many_in(DOCS, view)) == [2, 17, 1]
        assert ids_of(snap.get_many_in(DOCS, np.array([1], "<u8"))) == [1]


def test_get_many_in_refuses_bad_ids_naming_the_item(store):
    np = pytest.importorskip("numpy")
    with store.snapshot() as snap:
        with pytest.raises(OverflowError, match=r"item 1: layer id -1 "):
            snap.get_many_in(DOCS, [1, -1])
        with pytest.raises(OverflowError, match=r"item 2: layer id %d " %
                           2**64):
            snap.get_many_in(DOCS, (1, 2, 2**64))
        with pytest.raises(OverflowError, match="item 70"):
            snap.get_many_in(DOCS, [1] * 70 + [-5])  # in the second chunk
        for bad, word in ((True, "bool"), ("intro", "str"), (1.0, "float"),
                          (None, "NoneType")):
            with pytest.raises(TypeError, match="item 1 must be an int "
                               "layer id, not " + word):
                snap.get_many_in(DOCS, [1, bad])
        # Buffers of another item type, size or shape: named, not read.
        for arr, fmt in ((np.array([1, 2]), "'l'"),
                         (np.array([1, 2], dtype=np.uint32), "'I'"),
                         (np.array([1.0]), "'d'"),
                         (array.array("q", [1]), "'q'"),
                         (b"\x01" * 8, "'B'"),
                         (np.array([1], ">u8"), "'>L'|'>Q'")):
            with pytest.raises(TypeError, match="ids buffer is not of "
                               "uint64 \\(format (%s)" % fmt):
                snap.get_many_in(DOCS, arr)
        with pytest.raises(ValueError, match="not one-dimensional"):
            snap.get_many_in(DOCS, np.zeros((2, 2), dtype=np.uint64))
        with pytest.raises(ValueError, match="not one-dimensional"):
            snap.get_many_in(DOCS, np.uint64(3))
        with pytest.raises(TypeError, match="not str"):
            snap.get_many_in(DOCS, "123")
        with pytest.raises(TypeError):
            snap.get_many_in(DOCS, 5)
        with pytest.raises(TypeError, match="region must be"):
            snap.get_many_in(1.5, [1])
        with pytest.raises(OverflowError, match="region id -3"):
            snap.get_many_in(-3, [1])
        with pytest.raises(TypeError, match="2 arguments|arguments given"):
            snap.get_many_in([1, 2])
        # Still usable after every refusal.
        assert ids_of(snap.get_many_in(DOCS, [2])) == [2]


def test_get_many_in_layers_keep_the_snapshot_alive(store):
    np = pytest.importorskip("numpy")
    with store.snapshot() as snap:
        layers = snap.get_many_in(DOCS, np.array([2, 17, 1], dtype=np.uint64))
        view = memoryview(layers[0])
        arr = np.frombuffer(layers[1], dtype=np.uint8)
    assert snap.closed
    with pytest.raises(strata.Error, match="closed"):
        snap.get_many_in(DOCS, [1])
    with pytest.raises(strata.Error, match="closed"):
        bytes(layers[2])
    with pytest.raises(strata.Error, match="closed"):
        layers[2].name
    # Replace the layers and crystallize: the buffers still see the
    # snapshot's bytes, and the snapshot ends with the last of them.
    with store.proto(DOCS) as p:
        p.put(2, b"x" * 600)
        p.put(17, b"y")
    store.crystallize(DOCS)
    store.refresh()
    assert bytes(view) == LAYERS[2][0]
    assert arr.tobytes() == LAYERS[17][0]
    assert store.dump_state()["snapshots"]["open"] >= 1
    view.release()
    del arr, layers
    gc.collect()
    assert store.dump_state()["snapshots"]["open"] == 0
    with store.snapshot() as snap:
        assert [bytes(l) for l in snap.get_many_in(DOCS, [2, 17])] == [
            b"x" * 600, b"y"]


def test_snapshot_isolation(store):
    before = store.snapshot()
    with store.proto(DOCS) as p:
        p.put(40, b"new layer", name="new")
        p.put(1, b"replaced")
        p.remove(2)
    with store.snapshot() as after:
        assert bytes(after.get(DOCS, 40)) == b"new layer"
        assert bytes(after.get(DOCS, 1)) == b"replaced"
        with pytest.raises(strata.NotFoundError):
            after.get(DOCS, 2)
    with pytest.raises(strata.NotFoundError):
        before.get(DOCS, 40)
    assert bytes(before.get(DOCS, 1)) == LAYERS[1][0]
    assert bytes(before.get(DOCS, 2)) == LAYERS[2][0]
    store.crystallize(DOCS)
    assert bytes(before.get(DOCS, 1)) == LAYERS[1][0]
    before.close()


def test_layers_iterates_in_id_order_with_proto_changes(store):
    with store.snapshot() as snap:
        assert [l.id for l in snap.layers(DOCS)] == [1, 2, 17]
    with store.proto("docs") as p:
        p.put(5, b"five", name="five")
        p.put(2, b"two again")
        p.remove(17)
    with store.snapshot() as snap:
        layers = list(snap.layers("docs"))
        assert [l.id for l in layers] == [1, 2, 5]
        assert [bytes(l) for l in layers] == [LAYERS[1][0], b"two again", b"five"]
        assert snap.regions()[0]["has_proto"] is True
        assert snap.regions()[0]["layers"] == 3
        with pytest.raises(strata.NotFoundError):
            snap.layers(8)


def test_layers_iterator_stops_when_its_snapshot_closes(store):
    snap = store.snapshot()
    it = snap.layers(DOCS)
    assert next(it).id == 1
    snap.close()
    with pytest.raises(strata.Error, match="closed"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_exports_keep_the_snapshot_alive_after_its_block(store):
    np = pytest.importorskip("numpy")
    with store.snapshot() as snap:
        view = memoryview(snap.get(DOCS, 2))
        arr = np.frombuffer(snap.get(DOCS, 17), dtype=np.uint8)
        layer = snap.get(DOCS, 1)
    assert snap.closed
    with pytest.raises(strata.Error, match="closed"):
        snap.get(DOCS, 1)
    with pytest.raises(strata.Error, match="closed"):
        bytes(layer)
    # Replace every layer, crystallize, refresh: the old file is renamed
    # over and its memory retired, but these buffers still see it.
    with store.proto(DOCS) as p:
        p.put(2, b"x" * 600)
        p.put(17, b"y" * 16)
    store.crystallize(DOCS)
    store.refresh()
    with store.proto(DOCS) as p:
        p.put(2, b"z")
    store.crystallize(DOCS)
    assert bytes(view) == LAYERS[2][0]
    assert arr.tobytes() == LAYERS[17][0]
    assert store.dump_state()["snapshots"]["open"] >= 1
    view.release()
    del arr
    gc.collect()
    assert store.dump_state()["snapshots"]["open"] == 0
    with store.snapshot() as snap:
        assert bytes(snap.get(DOCS, 2)) == b"z"


def test_snapshot_taken_in_a_thread_that_exits(store):
    """A snapshot outlives the thread that began it (store.c's reader
    thread): its memory must stay valid after that thread is gone."""
    out = {}

    def worker():
        out["snap"] = store.snapshot()
        out["view"] = memoryview(out["snap"].get(DOCS, 2))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    for i in range(3):
        with store.proto(DOCS) as p:
            p.put(2, b"%d" % i * 1000)
        store.crystallize(DOCS)
    assert bytes(out["view"]) == LAYERS[2][0]
    assert bytes(out["snap"].get(DOCS, 2)) == LAYERS[2][0]
    out["view"].release()
    out["snap"].close()
    assert store.dump_state()["snapshots"]["open"] == 0


def test_use_after_close(store):
    snap = store.snapshot()
    layer = snap.get(DOCS, 1)
    snap.close()
    snap.close()  # twice: a no-op
    for call in (lambda: snap.get(DOCS, 1), snap.regions,
                 lambda: snap.get_many([(DOCS, 1)]),
                 lambda: snap.get_many_in(DOCS, [1]), lambda: snap.layers(DOCS),
                 lambda: bytes(layer), lambda: memoryview(layer)):
        with pytest.raises(strata.Error, match="closed"):
            call()
    proto = store.proto(DOCS)
    store.close()
    store.close()
    for call in (store.snapshot, lambda: store.proto(DOCS),
                 lambda: store.crystallize(DOCS), store.refresh,
                 store.dump_state, store.metrics_text,
                 lambda: proto.put(1, b"x"), lambda: proto.remove(1),
                 proto.discard, lambda: proto.info):
        with pytest.raises(strata.Error, match="closed"):
            call()


def test_store_close_with_live_snapshot(path):
    """close() ends snapshots without exports now; one with exports ends,
    and the store with it (its writer lock too), when the last buffer is
    released."""
    a = strata.Store(path, shared_view=False)
    with a.proto(DOCS) as p:
        p.put(9, b"nine")  # a takes the writer lock
    idle = a.snapshot()
    idle_layer = idle.get(DOCS, 1)
    busy = a.snapshot()
    view = memoryview(busy.get(DOCS, 9))
    a.close()
    assert a.closed and idle.closed and busy.closed
    with pytest.raises(strata.Error, match="closed"):
        bytes(idle_layer)
    assert bytes(view) == b"nine"
    b = strata.Store(path, shared_view=False)
    with pytest.raises(strata.LockedError):
        b.proto(DOCS)
    view.release()
    with b.proto(DOCS) as p:  # a is really closed now: the lock is free
        p.put(10, b"ten")
    b.close()


def test_dropping_everything_closes(path):
    s = strata.Store(path, shared_view=False)
    snap = s.snapshot()
    view = memoryview(snap.get(DOCS, 1))
    with s.proto(DOCS) as p:
        p.put(9, b"nine")
    del s, snap, p  # the Proto holds the Store too
    gc.collect()
    assert bytes(view) == LAYERS[1][0]
    view.release()
    gc.collect()
    with strata.Store(path, shared_view=False) as b, b.proto(DOCS) as p:
        p.put(10, b"ten")  # the first store, dropped, released the lock


@pytest.mark.skipif(not os.environ.get("STRATA_REGION_BUILDER"),
                    reason="STRATA_REGION_BUILDER (set by ctest) is not set")
def test_refresh_picks_up_a_region_another_writer_made(store, path, tmp_path):
    """region-builder (the C writer, another process) writes a region into
    the open store's directory: refresh() serves it to new snapshots."""
    src = tmp_path / "files"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha")
    (src / "b.txt").write_bytes(b"beta")
    before = store.snapshot()
    subprocess.run([os.environ["STRATA_REGION_BUILDER"], "-o",
                    os.path.join(path, "files.region"), "--from-dir", str(src),
                    "--id", "11", "--name", "files"], check=True)
    with pytest.raises(strata.NotFoundError):
        before.get("files", "a.txt")
    store.refresh()
    with store.snapshot() as snap:
        assert bytes(snap.get("files", "a.txt")) == b"alpha"
        assert bytes(snap.get(11, 1)) == b"beta"
        assert [r["id"] for r in snap.regions()] == [DOCS, 11]
    with pytest.raises(strata.NotFoundError):
        before.get(11, 0)
    before.close()


# ---- protos ---------------------------------------------------------------


def test_proto_put_metadata_kinds_and_info(store):
    with store.proto(DOCS) as p:
        assert p.region_id == DOCS
        p.put(50, bytearray(b"ba"), metadata='{"raw": true}')
        p.put(51, memoryview(b"abcdef")[2:4], metadata=["x", 1])
        p.put(52, b"", name="empty")
        info = p.info
        assert info["region_id"] == DOCS
        assert info["layers"] == 6 and info["changed"] == 3
        with pytest.raises(strata.Error):
            p.put(53, b"x", metadata="{not json")
        with pytest.raises(strata.Error):
            p.put(54, b"x", name="intro")  # a name another layer has
        with pytest.raises(TypeError):
            p.put(55, 12)
        with pytest.raises(strata.NotFoundError):
            p.remove(999)
    # The with block changed nothing: the proto is still there.
    with store.snapshot() as snap:
        assert snap.get(DOCS, 50).metadata == {"raw": True}
        assert bytes(snap.get(DOCS, 51)) == b"cd"
        assert snap.get(DOCS, 51).metadata == ["x", 1]
        assert snap.get(DOCS, "empty").size == 0
        with pytest.raises(strata.NotFoundError):
            snap.get(DOCS, 53)


def test_proto_discard(store):
    p = store.proto(DOCS)
    p.put(60, b"sixty")
    p.discard()
    with pytest.raises(strata.Error):
        p.put(61, b"x")
    with store.snapshot() as snap:
        with pytest.raises(strata.NotFoundError):
            snap.get(DOCS, 60)


def test_proto_create_arguments(store):
    with pytest.raises(TypeError, match="name"):
        store.proto(8, create=True)
    with pytest.raises(TypeError):
        store.proto("eight", create=True, name="eight")
    with pytest.raises(TypeError):
        store.proto(DOCS, name="x")
    with pytest.raises(strata.Error):
        store.proto(DOCS, create=True, name="other")  # the id is taken
    with pytest.raises(strata.NotFoundError):
        store.proto("missing")
    p = store.proto(8, create=True, name="eight", metadata='{"n": 8}')
    p.put(1, b"one")
    store.crystallize("eight")
    with store.snapshot() as snap:
        assert [r["name"] for r in snap.regions()] == ["docs", "eight"]
        assert snap.regions()[1]["metadata"] == {"n": 8}


# ---- state, metrics, processes --------------------------------------------


def test_dump_state_and_metrics(store):
    with store.snapshot() as snap:
        snap.get(DOCS, 1)
    state = store.dump_state()
    for key in ("strata_version", "format_version", "dir", "config", "memory",
                "regions", "protos", "pools", "statistics", "snapshots"):
        assert key in state
    assert state["strata_version"] == strata.__version__
    assert [r["id"] for r in state["regions"]] == [DOCS]
    verbose = json.dumps(store.dump_state(verbose=True))
    assert "gpl-3/section-17" in verbose
    text = store.metrics_text()
    assert "# TYPE strata_" in text


def test_processes(path):
    with strata.Store(path) as s:
        with s.proto(DOCS) as p:
            p.put(9, b"nine")
        procs = s.processes()
        me = [p for p in procs if p["pid"] == os.getpid()]
        assert me, procs
        assert me[0]["role"] == "writer"


# ---- other processes, threads, fork ----------------------------------------


def run_python(code, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", code, *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_second_writer_process_gets_locked_error(store, path):
    with store.proto(DOCS) as p:
        p.put(9, b"nine")  # this process holds the writer lock now
    code = (
        "import sys, strata\n"
        "s = strata.Store(sys.argv[1], shared_view=False)\n"
        "try:\n"
        "    s.proto(3).put(1, b'x')\n"
        "except strata.LockedError as e:\n"
        "    print('locked', e.name, e)\n"
    )
    r = run_python(code, path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("locked STRATA_E_LOCKED")
    assert str(os.getpid()) in r.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_using_the_parents_store_raises(store):
    snap = store.snapshot()
    layer = snap.get(DOCS, 1)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what each call did, then _exit
        results = []
        for call in (store.snapshot, lambda: snap.get(DOCS, 1),
                     lambda: store.proto(DOCS), lambda: bytes(layer),
                     store.refresh, store.close):
            try:
                call()
                results.append("ok")
            except strata.Error as e:
                results.append("fork" if "fork" in str(e) else "other: %s" % e)
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                results.append("other: %r" % e)
        os.write(wfd, json.dumps(results).encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        results = json.loads(f.read())
    os.waitpid(pid, 0)
    assert results == ["fork"] * 6
    assert bytes(snap.get(DOCS, 1)) == LAYERS[1][0]  # the parent's still works
    snap.close()


def test_reads_go_on_while_another_thread_crystallizes(store):
    """crystallize() releases the GIL: a reading thread runs meanwhile, and
    each of its snapshots sees either the old or the new content."""
    started = threading.Event()
    stop = threading.Event()
    seen, errors = set(), []

    def reader():
        try:
            while True:
                with store.snapshot() as snap:
                    seen.add(bytes(snap.get(DOCS, 2)))
                started.set()
                if stop.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            started.set()

    t = threading.Thread(target=reader)
    t.start()
    started.wait()
    contents = [b"%d" % i * 4096 for i in range(5)]
    for c in contents:
        with store.proto(DOCS) as p:
            p.put(2, c)
            p.put(1000, os.urandom(1 << 20))
        store.crystallize(DOCS)
    stop.set()
    t.join()
    assert not errors
    assert seen <= {LAYERS[2][0], *contents}
    with store.snapshot() as snap:
        assert bytes(snap.get(DOCS, 2)) == contents[-1]


def test_close_while_another_thread_crystallizes(store):
    """close() from one thread while a crystallization runs with the GIL
    released in another: the real close waits for it."""
    with store.proto(DOCS) as p:
        p.put(1000, os.urandom(4 << 20))
    done = []

    def crystallize():
        try:
            store.crystallize(DOCS)
            done.append("crystallized")
        except strata.Error as e:  # close() came first
            done.append(str(e))

    t = threading.Thread(target=crystallize)
    t.start()
    store.close()
    t.join()
    assert store.closed
    assert done[0] == "crystallized" or "closed" in done[0]
