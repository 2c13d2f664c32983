"""strata.Writer: regions written from Python, read back with strata.Region.

Every test writes into its own tmp_path and checks what is (or is not) in
the directory afterwards: a writer that does not commit must leave nothing,
not even its temporary file.
"""
import array
import errno
import json
import os
import threading

import pytest

import strata

numpy = pytest.importorskip("numpy")


def files_in(directory):
    return sorted(os.listdir(directory))


def address_of(layer):
    """The address of a layer's first byte, through numpy (no copy)."""
    return numpy.frombuffer(layer, dtype=numpy.uint8).__array_interface__[
        "data"][0]


def test_round_trip(tmp_path):
    path = tmp_path / "docs.region"
    with strata.Writer(path, region_id=5, name="five",
                       metadata={"purpose": "test", "n": [1, 2]}) as w:
        w.add(1, b"first layer", name="a", metadata={"keywords": ["x"]})
        w.add(7, b"", name="empty")
        w.add(3, b"no name, no metadata")
        assert w.state == "open"
    assert w.state == "committed"
    assert files_in(tmp_path) == ["docs.region"]
    with strata.Region(str(path)) as r:
        info = r.info
        assert info["id"] == 5
        assert info["name"] == "five"
        assert info["metadata"] == {"purpose": "test", "n": [1, 2]}
        assert len(r) == 3
        assert [layer.id for layer in r] == [1, 3, 7]
        assert bytes(r[1]) == b"first layer"
        assert r[1].name == "a"
        assert r[1].metadata == {"keywords": ["x"]}
        assert r["empty"].size == 0
        assert r[3].name is None
        assert r[3].metadata is None
        assert bytes(r[3]) == b"no name, no metadata"
        r.verify()


def test_positional_arguments_and_path_types(tmp_path):
    # str, bytes and os.PathLike paths; id, name and data positionally.
    for i, path in enumerate([str(tmp_path / "s.region"),
                              os.fsencode(tmp_path / "b.region"),
                              tmp_path / "p.region"]):
        with strata.Writer(path, i, "r%d" % i) as w:
            w.add(0, b"x", "x")
        assert w.path == path
        assert w.region_id == i
    assert files_in(tmp_path) == ["b.region", "p.region", "s.region"]


def test_any_buffer(tmp_path):
    path = tmp_path / "buffers.region"
    values = {
        1: b"bytes",
        2: bytearray(b"bytearray"),
        3: memoryview(b"xxmemoryviewxx")[2:-2],
        4: array.array("I", [1, 2, 3]),
        5: numpy.arange(16, dtype=numpy.float32),
    }
    with strata.Writer(path, region_id=1, name="buffers") as w:
        for i, v in values.items():
            w.add(i, v)
        with pytest.raises(TypeError):
            w.add(6, "a str is not bytes")
        # Not contiguous: the exporter refuses (numpy with ValueError).
        with pytest.raises((BufferError, ValueError)):
            w.add(6, numpy.arange(16, dtype=numpy.uint8)[::2])
    with strata.Region(path) as r:
        for i, v in values.items():
            assert bytes(r[i]) == bytes(memoryview(v).cast("B"))


def test_layer_of_another_region_as_data(tmp_path):
    src = tmp_path / "src.region"
    with strata.Writer(src, region_id=1, name="src") as w:
        w.add(1, os.urandom(10000))
    with strata.Region(src) as r, \
            strata.Writer(tmp_path / "copy.region", region_id=2,
                          name="copy") as w:
        w.add(1, r[1])
    with strata.Region(src) as a, strata.Region(tmp_path / "copy.region") as b:
        assert bytes(a[1]) == bytes(b[1])


def test_abort_leaves_no_file(tmp_path):
    w = strata.Writer(tmp_path / "gone.region", region_id=1, name="gone")
    w.add(1, b"x" * 100000, name="big")
    w.abort()
    assert w.state == "aborted"
    assert files_in(tmp_path) == []
    w.abort()  # a no-op, as closing a closed file is
    with pytest.raises(strata.Error, match="already aborted"):
        w.add(2, b"y")
    with pytest.raises(strata.Error, match="already aborted"):
        w.commit()
    assert files_in(tmp_path) == []


def test_dropped_writer_leaves_no_file(tmp_path):
    w = strata.Writer(tmp_path / "dropped.region", region_id=1,
                      name="dropped")
    w.add(1, b"x")
    del w
    assert files_in(tmp_path) == []


def test_exception_in_with_block_aborts_and_propagates(tmp_path):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with strata.Writer(tmp_path / "x.region", region_id=1,
                           name="x") as w:
            w.add(1, b"written before the exception")
            raise Boom()
    assert w.state == "aborted"
    assert files_in(tmp_path) == []


def test_strata_error_in_with_block_aborts(tmp_path):
    with pytest.raises(strata.Error) as e:
        with strata.Writer(tmp_path / "x.region", region_id=1,
                           name="x") as w:
            w.add(1, b"a")
            w.add(1, b"b")
    assert e.value.name == "STRATA_E_DUPLICATE"
    assert files_in(tmp_path) == []


def test_commit_by_hand_inside_with(tmp_path):
    with strata.Writer(tmp_path / "x.region", region_id=1, name="x") as w:
        w.add(1, b"a")
        w.commit()
        with pytest.raises(strata.Error, match="already committed"):
            w.commit()
    assert files_in(tmp_path) == ["x.region"]


def test_commit_replaces_existing_file(tmp_path):
    path = tmp_path / "x.region"
    for content in (b"old", b"new"):
        with strata.Writer(path, region_id=1, name="x") as w:
            w.add(1, content)
    with strata.Region(path) as r:
        assert bytes(r[1]) == b"new"
    assert files_in(tmp_path) == ["x.region"]


def test_duplicate_id(tmp_path):
    path = tmp_path / "dup.region"
    with strata.Writer(path, region_id=1, name="dup") as w:
        w.add(10, b"a", name="a")
        with pytest.raises(strata.Error) as e:
            w.add(10, b"b", name="b")
        assert e.value.code == -4009
        assert e.value.name == "STRATA_E_DUPLICATE"
        # The library's detail: the file, the layer, the earlier one.
        assert str(path) in str(e.value)
        assert "layer 10: duplicate id" in str(e.value)
        # A rejected layer leaves the writer as it was.
        w.add(11, b"b", name="b")
    with strata.Region(path) as r:
        assert [(layer.id, bytes(layer)) for layer in r] == [(10, b"a"),
                                                             (11, b"b")]


def test_duplicate_id_found_at_commit(tmp_path):
    """check_ids_at_commit: a repeated id that is not the one just added is
    found by commit(), which names it and both layers and leaves nothing."""
    path = tmp_path / "bulk.region"
    w = strata.Writer(path, region_id=1, name="bulk",
                      check_ids_at_commit=True)
    w.add(30, b"a")
    with pytest.raises(strata.Error) as e:
        w.add(30, b"again")  # the id just added: refused at once
    assert e.value.name == "STRATA_E_DUPLICATE"
    w.add(10, b"b")
    w.add(20, b"c")
    w.add(10, b"d")  # accepted now, found by commit
    with pytest.raises(strata.Error) as e:
        w.commit()
    assert e.value.name == "STRATA_E_DUPLICATE"
    assert ("layer 10: duplicate id (added as layer number 1 and again as "
            "number 3, counting from 0)") in str(e.value)
    assert files_in(tmp_path) == []
    with strata.Writer(path, region_id=1, name="bulk",
                       check_ids_at_commit=True) as w:
        for i in (5, 3, 9, 1):
            w.add(i, bytes([i]))
    with strata.Region(path) as r:
        assert [(layer.id, bytes(layer)) for layer in r] == [
            (1, b"\x01"), (3, b"\x03"), (5, b"\x05"), (9, b"\x09")]


def test_duplicate_name(tmp_path):
    path = tmp_path / "dup.region"
    with strata.Writer(path, region_id=1, name="dup") as w:
        w.add(1, b"a", name="intro")
        with pytest.raises(strata.Error) as e:
            w.add(2, b"b", name="intro")
        assert e.value.name == "STRATA_E_DUPLICATE"
        assert 'layer 2: duplicate name "intro" (layer 1 has it)' in str(
            e.value)
    with strata.Region(path) as r:
        assert len(r) == 1


def test_bad_layer_names(tmp_path):
    with strata.Writer(tmp_path / "x.region", region_id=1, name="x") as w:
        with pytest.raises(strata.Error) as e:
            w.add(1, b"a", name="")
        assert e.value.name == "STRATA_E_INVAL"
        assert "layer 1: empty name" in str(e.value)
        with pytest.raises(strata.Error) as e:
            w.add(2, b"a", name="nul\0inside")
        assert e.value.name == "STRATA_E_INVAL"
        with pytest.raises(TypeError):
            w.add(3, b"a", name=b"bytes")
        w.add(4, b"a", name="unicode \u00e9\u4e2d")
    with strata.Region(tmp_path / "x.region") as r:
        assert [layer.id for layer in r] == [4]
        assert r["unicode \u00e9\u4e2d"].id == 4


def test_metadata_dict_and_json_text(tmp_path):
    path = tmp_path / "meta.region"
    nested = {"keywords": ["gpl", "license"], "frequency": 4,
              "nested": {"a": [1.5, None, True]}, "text": "\u00e9\u2028"}
    with strata.Writer(path, region_id=1, name="meta",
                       metadata='{"from": "json text"}') as w:
        w.add(1, b"a", metadata=nested)
        w.add(2, b"b", metadata=json.dumps(nested, indent=2))
        w.add(3, b"c", metadata=[1, 2, 3])
        with pytest.raises(strata.Error) as e:
            w.add(4, b"d", metadata="{not json")
        assert e.value.name == "STRATA_E_INVAL"
        assert "layer 4" in str(e.value)
        with pytest.raises(ValueError, match="NUL byte at offset 4"):
            w.add(4, b"d", metadata='"abc\0"')
        with pytest.raises(TypeError):  # json cannot serialize it
            w.add(4, b"d", metadata={"x": object()})
    with strata.Region(path) as r:
        assert r.info["metadata"] == {"from": "json text"}
        assert r[1].metadata == nested
        assert r[2].metadata == nested
        assert r[3].metadata == [1, 2, 3]
        assert 4 not in r


def test_align(tmp_path):
    path = tmp_path / "aligned.region"
    with strata.Writer(path, region_id=1, name="aligned", align=4096) as w:
        for i in range(5):
            w.add(i, os.urandom(100 + i * 1000))
    with strata.Region(path) as r:
        for layer in r:
            assert address_of(layer) % 4096 == 0
            del layer


def test_default_align_is_64(tmp_path):
    path = tmp_path / "default.region"
    with strata.Writer(path, region_id=1, name="default") as w:
        for i in range(5):
            w.add(i, b"x" * (1 + i))
    with strata.Region(path) as r:
        addresses = [address_of(layer) for layer in r]
    assert all(a % 64 == 0 for a in addresses)
    # Layers of a few bytes are packed at 64 apart, not at a page each.
    assert addresses[-1] - addresses[0] == 4 * 64


def test_bad_options(tmp_path):
    path = tmp_path / "x.region"
    with pytest.raises(strata.Error) as e:
        strata.Writer(path, region_id=1, name="x", align=100)
    assert e.value.name == "STRATA_E_INVAL"
    assert "alignment 100 is not a power of two in [16, 65536]" in str(
        e.value)
    assert str(path) in str(e.value)
    with pytest.raises(ValueError, match="align"):
        strata.Writer(path, region_id=1, name="x", align=0)
    with pytest.raises(strata.Error) as e:
        strata.Writer(path, region_id=1, name="")
    assert "needs a name" in str(e.value)
    with pytest.raises(strata.LimitError):
        strata.Writer(path, region_id=1, name="n" * 256)
    with pytest.raises(ValueError, match="NUL"):
        strata.Writer(path, region_id=1, name="a\0b")
    with pytest.raises(OverflowError):
        strata.Writer(path, region_id=-1, name="x")
    with pytest.raises(OverflowError):
        strata.Writer(path, region_id=2**64, name="x")
    with pytest.raises(TypeError):
        strata.Writer(path, region_id="1", name="x")
    with pytest.raises(strata.Error) as e:
        strata.Writer(path, region_id=1, name="x", metadata="[")
    assert e.value.name == "STRATA_E_INVAL"
    assert files_in(tmp_path) == []


def test_largest_ids(tmp_path):
    path = tmp_path / "big.region"
    top = 2**64 - 1
    with strata.Writer(path, region_id=top, name="big") as w:
        w.add(top, b"top")
        w.add(numpy.uint64(top - 1), b"numpy id")
        with pytest.raises(OverflowError):
            w.add(-1, b"x")
    with strata.Region(path) as r:
        assert r.info["id"] == top
        assert bytes(r[top]) == b"top"
        assert bytes(r[top - 1]) == b"numpy id"


def test_missing_directory(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "x.region"
    with pytest.raises(strata.StrataOSError) as e:
        strata.Writer(path, region_id=1, name="x")
    assert e.value.errno == errno.ENOENT
    assert isinstance(e.value, OSError)
    assert str(tmp_path / "no") in str(e.value)


def test_streamed_layer(tmp_path):
    path = tmp_path / "stream.region"
    with strata.Writer(path, region_id=1, name="stream") as w:
        w.begin_layer(1, name="pieces", metadata={"parts": 3})
        w.append(b"abc")
        w.append_zeros(5)
        w.append(memoryview(b"def"))
        w.end_layer()
        with pytest.raises(strata.Error) as e:
            w.append(b"outside a layer")
        assert e.value.name == "STRATA_E_STATE"
        w.begin_layer(2)
        with pytest.raises(strata.Error) as e:
            w.add(3, b"inside another layer")
        assert e.value.name == "STRATA_E_STATE"
        assert "inside another layer" in str(e.value)
        w.end_layer()
    with strata.Region(path) as r:
        assert bytes(r["pieces"]) == b"abc" + bytes(5) + b"def"
        assert r["pieces"].metadata == {"parts": 3}
        assert r[2].size == 0


def test_commit_inside_a_layer_fails_and_leaves_no_file(tmp_path):
    w = strata.Writer(tmp_path / "x.region", region_id=1, name="x")
    w.begin_layer(1)
    with pytest.raises(strata.Error) as e:
        w.commit()
    assert e.value.name == "STRATA_E_STATE"
    assert w.state == "failed to commit"
    assert files_in(tmp_path) == []
    w.abort()  # a no-op after a failed commit


def test_threads_share_a_writer(tmp_path):
    # A Writer takes one call at a time: a call that finds another thread's
    # call running (the GIL released around its write) is refused, never
    # raced. Whatever the interleaving, the region holds exactly the layers
    # whose add() returned.
    path = tmp_path / "threads.region"
    added, refused = [], []
    lock = threading.Lock()
    w = strata.Writer(path, region_id=1, name="threads")

    def work(t):
        for i in range(200):
            layer_id = t * 1000 + i
            try:
                w.add(layer_id, bytes([t]) * 4096)
            except strata.Error as e:
                assert "in use by another thread" in str(e)
                with lock:
                    refused.append(layer_id)
                continue
            with lock:
                added.append(layer_id)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.commit()
    assert len(added) + len(refused) == 800
    with strata.Region(path) as r:
        assert sorted(layer.id for layer in r) == sorted(added)
        for layer in r:
            assert bytes(layer) == bytes([layer.id // 1000]) * 4096


def test_fork_child_cannot_use_parents_writer(tmp_path):
    path = tmp_path / "fork.region"
    w = strata.Writer(path, region_id=1, name="fork")
    w.add(1, b"parent")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: every call must raise, none may write
        code = 0
        for call in (lambda: w.add(2, b"child"), w.commit, w.abort):
            try:
                call()
                code = 1
            except strata.Error as e:
                os.write(write_end, (str(e) + "\n").encode())
            except BaseException:
                code = 2
        os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as f:
        messages = f.read().splitlines()
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(messages) == 3
    w.add(3, b"after fork")
    w.commit()
    with strata.Region(path) as r:
        assert [bytes(layer) for layer in r] == [b"parent", b"after fork"]


def test_repr_and_docstrings(tmp_path):
    w = strata.Writer(tmp_path / "x.region", region_id=9, name="x")
    assert "region 9 open" in repr(w)
    w.abort()
    assert "aborted" in repr(w)
    assert strata.Writer.__doc__
    for name in ("add", "begin_layer", "append", "append_zeros",
                 "end_layer", "commit", "abort"):
        assert getattr(strata.Writer, name).__doc__, name
