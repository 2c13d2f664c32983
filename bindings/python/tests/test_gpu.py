"""Staging into CUDA tensors: runs only where torch sees a CUDA device (and
the library was built with CUDA, so that the staging pool is on the GPU);
skipped everywhere else, including CI machines without a GPU."""
import random

import pytest

import strata

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)

LAYERS = {i: random.Random(i).randbytes(size)
          for i, size in [(1, 100), (2, 4096), (3, 3 << 20), (4, 1), (5, 0),
                          (6, 200_000)]}


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "gpu"
    d.mkdir()
    with strata.Writer(str(d / "g.region"), region_id=9, name="g") as w:
        for lid, data in LAYERS.items():
            w.add(lid, data, name=f"l{lid}")
    with strata.Store(str(d), staging_bytes=64 << 20) as s:
        yield s


def cuda_bytes(t, off, size):
    return bytes(t[off:off + size].cpu().numpy().tobytes())


def test_path_into_cuda_tensor(store):
    refs = [(9, 3), (9, 1), ("g", "l6"), (9, 5), (9, 2), (9, 4), (9, 3)]
    with store.snapshot() as snap:
        need = snap.stage_path_size(refs)
        dst = torch.empty(need, dtype=torch.uint8, device="cuda")
        spans = snap.stage_path_to_device(refs, dst)
        for (off, size), (_, lid) in zip(spans, [(9, 3), (9, 1), (9, 6),
                                                 (9, 5), (9, 2), (9, 4),
                                                 (9, 3)]):
            assert size == len(LAYERS[lid])
            assert cuda_bytes(dst, off, size) == LAYERS[lid]


def test_staged_to_cuda_tensor_on_torch_stream(store):
    with store.snapshot() as snap:
        st = snap.stage(9, 3)
        assert bytes(st) == LAYERS[3]
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            dst = torch.zeros(st.size + 10, dtype=torch.uint8, device="cuda")
        st.to_device(dst, stream=s)
        assert cuda_bytes(dst, 0, st.size) == LAYERS[3]
        dst2 = torch.empty(st.size, dtype=torch.uint8, device="cuda")
        st.to_device(dst2)  # a stream of the pool
        assert cuda_bytes(dst2, 0, st.size) == LAYERS[3]
        with pytest.raises(ValueError, match="too small"):
            st.to_device(torch.empty(st.size - 1, dtype=torch.uint8,
                                     device="cuda"))
        with pytest.raises(ValueError, match="CUDA"):
            st.to_device(torch.empty(st.size, dtype=torch.uint8))
        st.release()
