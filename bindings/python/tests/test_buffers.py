"""Layer's buffers: zero copy, read-only, exports counted against close(),
DLPack."""
import ctypes
import gc
import io
import struct

import numpy
import pytest

import strata


def address(view):
    """The address of a buffer's first byte, read through numpy."""
    return numpy.frombuffer(view, dtype=numpy.uint8) \
        .__array_interface__["data"][0]


def test_zero_copy_views_share_the_mapping(region):
    layer = region[1000]
    m = memoryview(layer)
    a = numpy.frombuffer(layer, dtype=numpy.uint8)
    b = numpy.frombuffer(region[1000], dtype=numpy.uint8)
    # Every view is the same memory: the mapping, not a copy.
    assert a.__array_interface__["data"][0] == address(m)
    assert b.__array_interface__["data"][0] == address(m)
    assert a.base is not None and not a.flags.owndata
    # Two layers of one region are views into one mapping: their distance
    # is the distance of their contents in the file.
    with open(region.path, "rb") as f:
        data = f.read()
    other = region[42]
    off_1000 = data.index(bytes(layer))
    off_42 = data.index(bytes(other))
    assert address(memoryview(other)) - address(m) == off_42 - off_1000
    assert m.readonly and m.format == "B" and m.nbytes == layer.size
    assert bytes(m) == bytes(range(256)) * 64
    assert numpy.frombuffer(layer, dtype=numpy.uint32).size == layer.size // 4
    del m, a, b


def test_empty_layer_buffer(region):
    layer = region[5]
    assert layer.size == 0
    assert bytes(layer) == b""
    assert numpy.frombuffer(layer, dtype=numpy.uint8).size == 0
    assert numpy.from_dlpack(layer).size == 0


def test_writes_are_refused(region):
    layer = region[17]
    m = memoryview(layer)
    with pytest.raises(TypeError):
        m[0] = 0
    a = numpy.frombuffer(layer, dtype=numpy.uint8)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 0
    with pytest.raises(ValueError):
        a.setflags(write=True)
    # A writable buffer request (PyBUF_WRITABLE) is refused by the layer
    # itself; readinto() and pack_into() report it as a TypeError.
    with pytest.raises(TypeError, match="read-write"):
        io.BytesIO(b"overwrite").readinto(layer)
    with pytest.raises(TypeError, match="read-write"):
        struct.pack_into("B", layer, 0, 1)
    get_buffer = ctypes.pythonapi.PyObject_GetBuffer
    get_buffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    view = ctypes.create_string_buffer(256)  # > sizeof(Py_buffer)
    PyBUF_WRITABLE = 0x0001
    with pytest.raises(BufferError, match="layer 17 is read-only"):
        get_buffer(layer, ctypes.addressof(view), PyBUF_WRITABLE)
    # ctypes asks for a plain buffer and checks its read-only flag.
    with pytest.raises(TypeError, match="not writable"):
        (ctypes.c_char * layer.size).from_buffer(layer)
    d = numpy.from_dlpack(layer)
    assert not d.flags.writeable
    with pytest.raises(ValueError):
        d[0] = 0
    # The content is intact.
    assert bytes(layer).startswith(b"section seventeen")
    # A copy is the user's to change.
    copy = bytearray(layer)
    copy[0] = ord("S")
    del m, a, d
    region.close()  # the refused requests left no export behind


def test_close_with_exports_raises_then_succeeds(region):
    layer = region[17]
    m = memoryview(layer)
    a = numpy.frombuffer(region[3], dtype=numpy.uint8)
    with pytest.raises(BufferError, match="2 buffers"):
        region.close()
    assert not region.closed
    assert bytes(m[:7]) == b"section"  # still mapped
    m.release()
    with pytest.raises(BufferError, match="1 buffer is"):
        region.close()
    del a
    region.close()
    assert region.closed
    with pytest.raises(strata.Error):
        layer.size


def test_context_exit_with_exports_raises(region_path):
    with pytest.raises(BufferError):
        with strata.Region(region_path) as r:
            m = memoryview(r[3])
    assert not r.closed
    m.release()
    r.close()


def test_layer_keeps_region_alive(region_path):
    layer = strata.Region(region_path)[17]
    gc.collect()
    assert bytes(layer).startswith(b"section seventeen")
    a = numpy.frombuffer(layer, dtype=numpy.uint8)
    del layer
    gc.collect()
    assert bytes(a[:7]) == b"section"


def test_dlpack_is_zero_copy(region):
    layer = region[1000]
    assert layer.__dlpack_device__() == (1, 0)
    t = numpy.from_dlpack(layer)
    assert t.dtype == numpy.uint8 and t.shape == (layer.size,)
    assert t.__array_interface__["data"][0] == address(memoryview(layer))
    assert bytes(t) == bytes(layer)
    with pytest.raises(BufferError):
        region.close()
    del t
    region.close()


def test_dlpack_capsules(region):
    layer = region[17]
    legacy = layer.__dlpack__()
    assert "dltensor" in repr(legacy) and "versioned" not in repr(legacy)
    versioned = layer.__dlpack__(max_version=(1, 0))
    assert "dltensor_versioned" in repr(versioned)
    assert "dltensor\"" in repr(layer.__dlpack__(max_version=(0, 8)))
    # Unconsumed capsules are exports until they are deleted.
    with pytest.raises(BufferError, match="2 buffers"):
        region.close()
    del legacy, versioned
    region.close()


def test_dlpack_refuses_other_devices_and_copies(region):
    layer = region[17]
    assert layer.__dlpack__(dl_device=(1, 0)) is not None
    with pytest.raises(BufferError, match="host"):
        layer.__dlpack__(dl_device=(2, 0))
    with pytest.raises(BufferError, match="copy"):
        layer.__dlpack__(copy=True)
    assert layer.__dlpack__(copy=False) is not None
    with pytest.raises(TypeError):
        layer.__dlpack__(max_version=1)
    with pytest.raises(TypeError):
        layer.__dlpack__(None)  # keyword-only
    gc.collect()
    region.close()  # every capsule above is gone


def test_torch_from_dlpack_when_installed(region):
    torch = pytest.importorskip("torch")
    layer = region[1000]
    t = torch.from_dlpack(layer)
    assert t.dtype == torch.uint8 and t.numel() == layer.size
    assert t.data_ptr() == address(memoryview(layer))
    assert bytes(t.numpy()) == bytes(layer)
    del t
    gc.collect()
    region.close()
