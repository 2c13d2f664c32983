#!/usr/bin/env bash
# `pip install ./bindings/python` as a user runs it: Debian's interpreter,
# a venv that sees Debian's packages (setuptools, numpy, pytest), no build
# isolation, no network. The tree is copied first (the pieces setup.py
# reads: bindings/python, src, include), so that the build's build/ and
# egg-info stay out of the source tree. Then the installed package, not
# the build tree's, must import and read a region it wrote.
#   pip_install_test.sh PYTHON SOURCE_DIR
set -euo pipefail
python=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-pip-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/bindings"
cp -r "$src/bindings/python" "$work/tree/bindings/python"
cp -r "$src/src" "$src/include" "$work/tree/"
rm -rf "$work/tree/bindings/python/build" "$work/tree/bindings/python/"*.egg-info
"$python" -m venv --system-site-packages "$work/venv"
# pip may reach for the network only to check for its own update.
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 \
  "$work/venv/bin/pip" install -q --no-build-isolation "$work/tree/bindings/python"
cd "$work" # not the source tree: the import must find the installed package
env -u PYTHONPATH "$work/venv/bin/python" - "$work/a.region" <<'PY'
import sys
import strata
assert "site-packages" in strata.__file__, strata.__file__
with strata.Writer(sys.argv[1], region_id=5, name="five") as w:
    w.add(1, b"hello", name="a", metadata={"k": 1})
with strata.Region(sys.argv[1]) as r:
    layer = r["a"]
    assert bytes(layer) == b"hello" and layer.metadata == {"k": 1}
    assert r.info["name"] == "five"
print("pip install test: ok,", strata.__version__, strata.__file__)
PY
