"""strata.Staged, Snapshot.stage() and Snapshot.stage_path_to_device().

Without a GPU the staging pool runs in host mode (<strata/staging.h>):
"device memory" is host memory and transfers are copies made by a stream's
thread, so these tests run the same calls as on a GPU, with numpy arrays
and other host buffers as destinations.
"""
import random
import threading

import pytest

import strata

numpy = pytest.importorskip("numpy")

BLOCK = 64 * 1024  # the staging pool's default block size
# The smallest pool with room for the default pack buffers (3 streams x 2 x
# 2 MiB may take at most half of it), and for the layers.
STAGING = 32 << 20


def content(seed, size):
    return random.Random(seed).randbytes(size)


PAGE_X = content(1, BLOCK)
PAGE_Y = content(2, BLOCK)
LAYERS = {
    17: ("seventeen", content(17, 10_000)),
    18: ("eighteen", b"hello"),
    19: ("nineteen", content(19, 300_000)),  # several blocks
    20: ("empty", b""),
    # Two layers of the same two pages in opposite orders: the pool shares
    # blocks of identical content, so the second one's blocks are not in
    # content order and its copy is in two segments.
    30: ("xy", PAGE_X + PAGE_Y),
    31: ("yx", PAGE_Y + PAGE_X),
}


@pytest.fixture
def store_dir(tmp_path):
    """A store whose region 3 ("three") holds LAYERS, crystallized."""
    d = tmp_path / "ctx"
    with strata.Store(d, create=True, shared_view=False) as s:
        with s.proto(3, create=True, name="three") as p:
            for lid, (name, data) in LAYERS.items():
                p.put(lid, data, name=name)
        s.crystallize(3)
    return str(d)


@pytest.fixture
def store(store_dir):
    with strata.Store(store_dir, staging_bytes=STAGING,
                      shared_view=False) as s:
        yield s


def u8(n):
    return numpy.zeros(n, dtype=numpy.uint8)


def test_stage_bytes_equal(store):
    with store.snapshot() as snap:
        for lid, (name, data) in LAYERS.items():
            with snap.stage(3, lid) as st:
                assert isinstance(st, strata.Staged)
                assert (st.region_id, st.layer_id, st.size) == (3, lid,
                                                               len(data))
                assert bytes(st) == data == bytes(snap.get(3, lid))
                assert numpy.frombuffer(st, numpy.uint8).tobytes() == data
        # By names, as Snapshot.get takes them.
        st = snap.stage("three", "nineteen")
        assert st.layer_id == 19 and bytes(st) == LAYERS[19][1]
        st.release()


def test_staged_is_read_only(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        view = memoryview(st)
        assert view.readonly
        with pytest.raises(TypeError):
            view[0] = 1
        arr = numpy.frombuffer(st, numpy.uint8)
        with pytest.raises(ValueError):
            arr[0] = 1
        del arr
        view.release()
        st.release()


def test_staged_not_contiguous_in_pool(store):
    # Blocks shared by content (see LAYERS[31]): the buffer protocol shows
    # a contiguous copy, with the same bytes.
    with store.snapshot() as snap:
        xy = snap.stage(3, 30)
        yx = snap.stage(3, 31)
        assert xy.segments == 1
        assert yx.segments == 2
        assert bytes(yx) == PAGE_Y + PAGE_X
        dst = u8(yx.size)
        yx.to_device(dst)
        assert dst.tobytes() == PAGE_Y + PAGE_X
        xy.release()
        yx.release()


def test_staged_dlpack(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        assert st.__dlpack_device__() == (1, 0)  # kDLCPU
        arr = numpy.from_dlpack(st)
        assert arr.dtype == numpy.uint8 and arr.shape == (st.size,)
        # No copy: the array is the pinned copy itself.
        view = memoryview(st)
        assert arr.__array_interface__["data"][0] == \
            numpy.frombuffer(view, numpy.uint8).__array_interface__["data"][0]
        view.release()
        assert arr.tobytes() == LAYERS[17][1]
        assert not arr.flags.writeable
        st.release()  # the array still holds the copy
        assert st.released
        assert arr.tobytes() == LAYERS[17][1]
        del arr


def test_to_device_host_buffers(store):
    data = LAYERS[19][1]
    with store.snapshot() as snap:
        st = snap.stage(3, 19)
        # A numpy array of exactly the size, and a larger one: only the
        # first .size bytes are written.
        dst = u8(st.size)
        assert st.to_device(dst) is None
        assert dst.tobytes() == data
        big = numpy.full(st.size + 100, 7, dtype=numpy.uint8)
        st.to_device(big)
        assert big[:st.size].tobytes() == data
        assert (big[st.size:] == 7).all()
        # Any writable buffer, and a typed array of enough bytes.
        ba = bytearray(st.size)
        st.to_device(ba)
        assert bytes(ba) == data
        words = numpy.zeros((st.size + 7) // 8, dtype=numpy.uint64)
        st.to_device(words)
        assert words.tobytes()[:st.size] == data
        # A raw address: unchecked, the caller's memory.
        raw = u8(st.size)
        st.to_device(raw.ctypes.data)
        assert raw.tobytes() == data
        # stream=None spelled out.
        dst[:] = 0
        st.to_device(dst, stream=None)
        assert dst.tobytes() == data
        st.release()


class DLPackOnly:
    """An object that offers only DLPack (no buffer protocol), forwarding
    to numpy's, which predates DLPack 1.0's max_version."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, **kwargs):
        return self.arr.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


def test_to_device_dlpack_host(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        arr = u8(st.size + 3)
        st.to_device(DLPackOnly(arr))
        assert arr[:st.size].tobytes() == LAYERS[17][1]
        # A strided tensor is refused, naming the stride.
        with pytest.raises(ValueError, match="not contiguous"):
            st.to_device(DLPackOnly(u8(2 * st.size)[::2]))
        st.release()


class FakeDevice:
    def __init__(self, device):
        self.device = device

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, **kwargs):
        raise AssertionError("not called for a refused device")


def test_to_device_refuses_wrong_memory(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        # Read-only memory: a Layer (the mapping is PROT_READ), bytes, the
        # Staged itself; a read-only numpy array (numpy raises ValueError).
        layer = snap.get(3, 18)
        for dst in (layer, b"x" * st.size, st):
            with pytest.raises(BufferError):
                st.to_device(dst)
        with pytest.raises(ValueError, match="read-only"):
            st.to_device(numpy.frombuffer(b"x" * st.size, numpy.uint8))
        # A Layer through DLPack only: its versioned capsule carries the
        # read-only flag.
        with pytest.raises(ValueError, match="read-only"):
            st.to_device(DLPackOnly(snap.get(3, 19)))
        assert bytes(layer) == LAYERS[18][1]
        # A non-contiguous array (numpy's ValueError again).
        with pytest.raises(ValueError, match="contiguous"):
            st.to_device(u8(2 * st.size)[::2])
        # A CUDA tensor while the pool runs in host mode.
        with pytest.raises(ValueError, match="host mode"):
            st.to_device(FakeDevice((2, 0)))
        with pytest.raises(TypeError, match="dst must be"):
            st.to_device("not memory")
        with pytest.raises(ValueError, match="NULL"):
            st.to_device(0)
        st.release()


def test_to_device_too_small(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        dst = u8(st.size - 1)
        with pytest.raises(ValueError) as e:
            st.to_device(dst)
        msg = str(e.value)
        assert "region 3 layer 17" in msg
        assert f"{st.size - 1} bytes" in msg and f"{st.size} are needed" in msg
        assert (dst == 0).all()  # nothing written
        st.release()


def test_stream_argument_host_mode(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        dst = u8(st.size)
        # Host mode has no native streams: the library refuses any handle
        # and says why.
        with pytest.raises(strata.Error, match="host mode"):
            st.to_device(dst, stream=1234)

        class TorchLikeStream:
            cuda_stream = 1234

        with pytest.raises(strata.Error, match="host mode"):
            st.to_device(dst, stream=TorchLikeStream())
        with pytest.raises(TypeError, match="stream must be"):
            st.to_device(dst, stream="default")
        st.release()


def test_path_into_one_array(store):
    refs = [(3, 17), (3, "eighteen"), ("three", 19), (3, 20), (3, 31),
            (3, 17)]
    datas = [LAYERS[17][1], LAYERS[18][1], LAYERS[19][1], b"",
             LAYERS[31][1], LAYERS[17][1]]
    with store.snapshot() as snap:
        need = snap.stage_path_size(refs)
        dst = u8(need)
        spans = snap.stage_path_to_device(refs, dst)
        assert [size for _, size in spans] == [len(d) for d in datas]
        end = 0
        for off, size in spans:
            assert off % 128 == 0 and off >= end  # STRATA_DEVICE_ALIGN
            end = off + size
        assert end == need
        got = b"".join(dst[off:off + size].tobytes() for off, size in spans)
        assert got == b"".join(datas)
        # The same into a larger array, through DLPack only, and by address.
        big = u8(need + 1000)
        assert snap.stage_path_to_device(refs, DLPackOnly(big)) == spans
        assert big[:need].tobytes() == dst.tobytes()
        raw = u8(need)
        assert snap.stage_path_to_device(refs, raw.ctypes.data) == spans
        assert raw.tobytes() == dst.tobytes()
        # An empty path.
        assert snap.stage_path_size([]) == 0
        assert snap.stage_path_to_device([], u8(0)) == []


def test_path_errors(store):
    refs = [(3, 17), (3, 19)]
    with store.snapshot() as snap:
        need = snap.stage_path_size(refs)
        small = u8(need - 1)
        with pytest.raises(ValueError) as e:
            snap.stage_path_to_device(refs, small)
        assert f"{need - 1} bytes, {need} are needed" in str(e.value)
        assert (small == 0).all()
        # A missing step: the library names it.
        with pytest.raises(strata.NotFoundError, match="step 1"):
            snap.stage_path_size([(3, 17), (3, 99)])
        with pytest.raises(strata.NotFoundError):
            snap.stage_path_to_device([(3, 17), (3, "nosuch")], u8(need))
        with pytest.raises(strata.NotFoundError):
            snap.stage_path_to_device([("nosuchregion", 1)], u8(need))
        with pytest.raises(TypeError, match="path step"):
            snap.stage_path_to_device([(3, 17), 3], u8(need))
        with pytest.raises(TypeError):
            snap.stage_path_to_device(5, u8(need))


def test_stage_errors(store):
    with store.snapshot() as snap:
        with pytest.raises(strata.NotFoundError, match="99"):
            snap.stage(3, 99)
        with pytest.raises(strata.NotFoundError):
            snap.stage(3, "nosuch")
        with pytest.raises(strata.NotFoundError):
            snap.stage(42, 1)
        with pytest.raises(TypeError):
            snap.stage(3, 1.5)


def test_no_staging_pool(store_dir):
    with strata.Store(store_dir, shared_view=False) as s:
        with s.snapshot() as snap:
            with pytest.raises(strata.Error, match="staging"):
                snap.stage(3, 17)
            with pytest.raises(strata.Error, match="staging"):
                snap.stage_path_to_device([(3, 17)], u8(1 << 16))


def test_staged_outlives_snapshot(store):
    data = LAYERS[19][1]
    with store.snapshot() as snap:
        st = snap.stage(3, 19)
    # The snapshot's block is left: the hold keeps the pinned copy.
    assert bytes(st) == data
    dst = u8(st.size)
    st.to_device(dst)
    assert dst.tobytes() == data
    with pytest.raises(strata.Error, match="closed"):
        snap.stage(3, 17)
    st.release()
    assert st.released
    with pytest.raises(strata.Error, match="closed"):
        bytes(st)
    with pytest.raises(strata.Error, match="closed"):
        st.to_device(dst)
    st.release()  # twice: a no-op


def test_release_with_live_buffers(store):
    data = LAYERS[17][1]
    with store.snapshot() as snap:
        st = snap.stage(3, 17)
        view = memoryview(st)
        arr = numpy.frombuffer(st, numpy.uint8)
        st.release()  # deferred: buffers are exported
        assert st.released
        with pytest.raises(strata.Error, match="closed"):
            memoryview(st)
        assert view.tobytes() == data and arr.tobytes() == data
        view.release()
        assert arr.tobytes() == data
        del arr  # the last buffer: the hold ends now


def test_staged_dropped_without_release(store):
    with store.snapshot() as snap:
        for _ in range(50):
            snap.stage(3, 19)  # released when collected
        arr = numpy.frombuffer(snap.stage(3, 17), numpy.uint8)
    assert arr.tobytes() == LAYERS[17][1]
    del arr


def test_store_closed_under_staged(store_dir):
    s = strata.Store(store_dir, staging_bytes=STAGING, shared_view=False)
    snap = s.snapshot()
    st = snap.stage(3, 17)
    view = memoryview(st)
    snap.close()
    s.close()  # deferred while the hold lives
    assert view.tobytes() == LAYERS[17][1]
    with pytest.raises(strata.Error, match="closed"):
        st.to_device(u8(st.size))
    view.release()
    st.release()
    # The store is closed for good now: it opens again.
    with strata.Store(store_dir, staging_bytes=STAGING, shared_view=False) as s2:
        with s2.snapshot() as snap2:
            assert bytes(snap2.stage(3, 17)) == LAYERS[17][1]


def test_threads(store):
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            with store.snapshot() as snap:
                for _ in range(20):
                    lid = rng.choice([17, 18, 19, 30, 31])
                    st = snap.stage(3, lid)
                    dst = u8(st.size)
                    st.to_device(dst)
                    assert dst.tobytes() == LAYERS[lid][1]
                    st.release()
                    refs = [(3, rng.choice([17, 18, 19])) for _ in range(4)]
                    out = u8(snap.stage_path_size(refs))
                    spans = snap.stage_path_to_device(refs, out)
                    for (off, size), (_, lid2) in zip(spans, refs):
                        assert out[off:off + size].tobytes() == LAYERS[lid2][1]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_repr_and_type(store):
    with store.snapshot() as snap:
        st = snap.stage(3, 18)
        assert "region 3 layer 18, 5 bytes" in repr(st)
        st.release()
        assert "released" in repr(st)
    with pytest.raises(TypeError):
        strata.Staged()
