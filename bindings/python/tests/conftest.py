"""Fixtures of the strata tests: regions built with the real writer.

region-builder (its path in STRATA_REGION_BUILDER, which ctest sets, or on
PATH) writes them; where it is missing (a pip-installed package tested on
its own) strata.Writer does, when the package has it. Without either the
tests that need a region are skipped, saying why.
"""
import base64
import json
import os
import shutil
import subprocess

import pytest

import strata


def _builder():
    path = os.environ.get("STRATA_REGION_BUILDER")
    if path:
        return path
    return shutil.which("region-builder")


def build_region(path, layers, region_id=1, name="test", metadata=None,
                 align=None):
    """Writes a region file at `path` holding `layers`, a list of dicts with
    id, content (bytes) and optionally name and metadata (a dict), in the
    order given. Returns str(path)."""
    path = str(path)
    builder = _builder()
    if builder:
        jsonl = path + ".jsonl"
        with open(jsonl, "w") as f:
            for layer in layers:
                obj = {"id": layer["id"],
                       "base64": base64.b64encode(layer["content"]).decode()}
                if layer.get("name") is not None:
                    obj["name"] = layer["name"]
                if layer.get("metadata") is not None:
                    obj["metadata"] = layer["metadata"]
                f.write(json.dumps(obj) + "\n")
        cmd = [builder, "-q", "-o", path, "--jsonl", jsonl,
               "--id", str(region_id), "--name", name]
        if metadata is not None:
            cmd += ["--metadata", json.dumps(metadata)]
        if align is not None:
            cmd += ["--align", str(align)]
        subprocess.run(cmd, check=True)
        os.unlink(jsonl)
        return path
    if hasattr(strata, "Writer"):
        kwargs = {"region_id": region_id, "name": name}
        if metadata is not None:
            kwargs["metadata"] = metadata
        if align is not None:
            kwargs["align"] = align
        with strata.Writer(path, **kwargs) as w:
            for layer in layers:
                w.add(layer["id"], layer["content"], name=layer.get("name"),
                      metadata=layer.get("metadata"))
        return path
    pytest.skip("no region writer: set STRATA_REGION_BUILDER to "
                "region-builder's path")


def sample_layers():
    """Sparse ids, given out of order; names on most, metadata on some, an
    empty layer and a large one."""
    layers = [
        {"id": 17, "content": b"section seventeen: interpretation " * 3,
         "name": "gpl-3/section-17",
         "metadata": {"keywords": ["warranty"], "frequency": 3}},
        {"id": 3, "content": b"three", "name": "three"},
        {"id": 1000, "content": bytes(range(256)) * 64, "name": "bytes"},
        {"id": 5, "content": b"", "name": "empty"},
        {"id": 42, "content": b"UNIQUE-CONTENT-OF-LAYER-42" * 10},
    ]
    return layers


@pytest.fixture
def region_path(tmp_path):
    return build_region(tmp_path / "sample.region", sample_layers(),
                        region_id=7, name="sample",
                        metadata={"source": "tests"})


@pytest.fixture
def region(region_path):
    r = strata.Region(region_path)
    yield r
    # A test may leave exports behind; they are gone once the test's
    # locals are, but not necessarily before this runs.
    try:
        r.close()
    except BufferError:
        pass
