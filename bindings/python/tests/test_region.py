"""strata.Region: opening, lookups, iteration, info, verify, close."""
import os
import shutil

import pytest

import strata
from conftest import build_region, sample_layers


def test_info(region, region_path):
    info = region.info
    assert info["path"] == region_path
    assert info["id"] == 7
    assert info["name"] == "sample"
    assert info["metadata"] == {"source": "tests"}
    assert info["layer_count"] == 5
    assert info["named_count"] == 4
    assert info["format"] == "1.0"
    assert info["file_size"] == os.path.getsize(region_path)
    assert region.path == region_path
    assert not region.closed


def test_len_contains_and_lookups(region):
    expected = {layer["id"]: layer for layer in sample_layers()}
    assert len(region) == len(expected)
    for id, layer in expected.items():
        assert id in region
        got = region[id]
        assert got.id == id
        assert bytes(got) == layer["content"]
        assert got.size == len(layer["content"])
        assert got.name == layer.get("name")
        assert got.metadata == layer.get("metadata")
        if layer.get("name"):
            assert layer["name"] in region
            assert region[layer["name"]].id == id
            assert region.get_by_name(layer["name"]).id == id
    assert 4 not in region
    assert "nope" not in region
    assert -1 not in region
    assert 2**70 not in region


def test_miss_is_not_found_error_and_key_error(region, region_path):
    with pytest.raises(strata.NotFoundError) as e:
        region[4]
    assert isinstance(e.value, KeyError)
    assert e.value.name == "STRATA_E_NOT_FOUND"
    assert region_path in str(e.value) and "layer 4" in str(e.value)
    with pytest.raises(KeyError) as e:
        region["missing/name"]
    assert "missing/name" in str(e.value)
    with pytest.raises(KeyError):
        region[-1]
    with pytest.raises(TypeError):
        region[1.5]


def test_get_and_get_by_name_defaults(region):
    assert region.get(4) is None
    assert region.get(4, "dflt") == "dflt"
    assert region.get(key=4, default=0) == 0
    assert region.get(3).name == "three"
    assert region.get("three").id == 3
    assert region.get_by_name("nope") is None
    assert region.get_by_name("nope", default=1) == 1
    with pytest.raises(TypeError):
        region.get()
    with pytest.raises(TypeError):
        region.get_by_name(3)


def test_iteration_in_id_order(region):
    ids = [layer.id for layer in region]
    assert ids == sorted(layer["id"] for layer in sample_layers())
    contents = {layer.id: bytes(layer) for layer in region}
    assert contents[42] == b"UNIQUE-CONTENT-OF-LAYER-42" * 10


def test_metadata_is_parsed_once(region):
    layer = region[17]
    assert layer.metadata is layer.metadata
    assert layer.metadata["frequency"] == 3
    assert region[3].metadata is None
    assert layer.checksum == region[17].checksum != 0


def test_repr(region, region_path):
    assert "sample" in repr(region) and "layers=5" in repr(region)
    assert repr(region[17]) == \
        "<strata.Layer id=17 name='gpl-3/section-17' size=%d>" % region[17].size
    region.close()
    assert "closed" in repr(region)


def test_context_manager_closes(region_path):
    with strata.Region(region_path) as r:
        layer = r[3]
        assert bytes(layer) == b"three"
    assert r.closed
    with pytest.raises(strata.Error, match="closed"):
        layer.size


def test_use_after_close_raises_never_crashes(region):
    layer = region[17]
    it = iter(region)
    region.close()
    region.close()  # a second close does nothing
    for use in (lambda: layer.id, lambda: layer.name, lambda: layer.metadata,
                lambda: layer.size, lambda: layer.checksum,
                lambda: memoryview(layer), lambda: bytes(layer),
                lambda: layer.__dlpack__(), lambda: layer.__dlpack_device__(),
                lambda: region[17], lambda: region.get(17), lambda: len(region),
                lambda: 17 in region, lambda: region.info,
                lambda: region.verify(), lambda: next(it),
                lambda: list(region)):
        with pytest.raises(strata.Error, match="closed") as e:
            use()
        assert e.value.name == "STRATA_E_STATE"
    assert "closed" in repr(layer)


def test_verify_intact(region):
    assert region.verify() is None


def test_corrupt_content_found_by_verify_naming_the_layer(region_path,
                                                          tmp_path):
    bad = str(tmp_path / "bad.region")
    shutil.copy(region_path, bad)
    with open(bad, "r+b") as f:
        data = f.read()
        at = data.index(b"UNIQUE-CONTENT-OF-LAYER-42")
        f.seek(at)
        f.write(b"X")
    with strata.Region(bad) as r:  # content is not checked at open
        with pytest.raises(strata.CorruptError) as e:
            r.verify()
    assert e.value.name == "STRATA_E_CHECKSUM"
    assert bad in str(e.value) and "42" in str(e.value)


def test_corrupt_header_refused_at_open_naming_the_file(region_path,
                                                        tmp_path):
    bad = str(tmp_path / "badmagic.region")
    shutil.copy(region_path, bad)
    with open(bad, "r+b") as f:
        f.write(b"JUNK")
    with pytest.raises(strata.CorruptError) as e:
        strata.Region(bad)
    assert e.value.name == "STRATA_E_BAD_MAGIC"
    assert bad in str(e.value)


def test_not_a_region_path(tmp_path):
    with pytest.raises(strata.Error) as e:
        strata.Region(tmp_path)  # a directory; os.PathLike accepted
    assert str(tmp_path) in str(e.value)
    with pytest.raises(TypeError):
        strata.Region(17)


def test_dense_region(tmp_path):
    layers = [{"id": i, "content": b"%d" % i} for i in range(100, 200)]
    path = build_region(tmp_path / "dense.region", layers, region_id=2,
                        name="dense")
    with strata.Region(path) as r:
        assert r.info["dense_ids"]
        assert [bytes(layer) for layer in r] == [b"%d" % i
                                                 for i in range(100, 200)]
        assert bytes(r[150]) == b"150"
        assert r.get(99) is None and r.get(200) is None
