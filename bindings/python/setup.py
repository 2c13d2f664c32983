"""Builds the `strata` package: the C extension strata._strata and the
pure-Python package around it.

The extension is compiled together with the library's own sources
(../../src, the same files CMake compiles, without the CUDA backend: the
staging pool runs in host mode), so that `pip install ./bindings/python`
needs no installed libstrata, only the library's dependencies (Debian's
libjansson-dev, libxxhash-dev, libnuma-dev, found with pkg-config) and
python3-dev. The library's symbols stay hidden inside the extension.

Built in place from the source tree, with Debian's setuptools and no
network:

    pip install --no-build-isolation ./bindings/python
"""

import os
import re
import subprocess
from glob import glob

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def version():
    with open(os.path.join(ROOT, "include", "strata", "version.h")) as f:
        text = f.read()
    parts = [
        re.search(r"#define STRATA_VERSION_%s (\d+)" % p, text).group(1)
        for p in ("MAJOR", "MINOR", "PATCH")
    ]
    return ".".join(parts)


def pkg_config(*packages):
    """(include dirs, library dirs, libraries) of the given packages."""
    try:
        out = subprocess.run(
            ["pkg-config", "--cflags", "--libs", *packages],
            check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(
            "strata: pkg-config could not find %s (install libjansson-dev "
            "libxxhash-dev libnuma-dev pkg-config): %s"
            % (" ".join(packages), e))
    inc = [a[2:] for a in out if a.startswith("-I")]
    libdirs = [a[2:] for a in out if a.startswith("-L")]
    libs = [a[2:] for a in out if a.startswith("-l")]
    return inc, libdirs, libs


# Absolute paths: setuptools places each object under build/temp.*/ by its
# source path, and a relative ../../src would put them outside build/.
# The remote tier (src/remote/) needs librados (Debian's librados-dev);
# without it remote_none.c keeps the API, failing with "no RADOS support",
# as CMake's STRATA_WITH_RADOS=AUTO does. STRATA_WITH_RADOS=OFF in the
# environment leaves it out where the headers are installed.
have_rados = (os.environ.get("STRATA_WITH_RADOS", "AUTO").upper() != "OFF"
              and os.path.exists("/usr/include/rados/librados.h"))

def wanted(path):
    name = os.path.basename(path)
    if name == "device_cuda.c":
        return False
    if os.path.basename(os.path.dirname(path)) == "remote":
        return (name == "remote_none.c") != have_rados
    return True


library_sources = sorted(
    p for p in glob(os.path.join(ROOT, "src", "**", "*.c"), recursive=True)
    if wanted(p))
# Relative to setup.py (setuptools wants them so), every file of src/: the
# files colleagues add are picked up without editing this list.
extension_sources = sorted(glob("src/*.c"))

inc, libdirs, libs = pkg_config("jansson", "libxxhash", "numa")

strata_ext = Extension(
    "strata._strata",
    sources=extension_sources + library_sources,
    include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "src"),
                  "src"] + inc,
    library_dirs=libdirs,
    libraries=libs + (["rados"] if have_rados else []) + ["pthread"],
    define_macros=[
        ("_GNU_SOURCE", "1"),
        # The library's public functions are not exported from the
        # extension: STRATA_API is empty and visibility hidden.
        ("STRATA_STATIC_DEFINE", "1"),
        ("Py_LIMITED_API", "0x030B0000"),
    ],
    extra_compile_args=["-std=c17", "-fvisibility=hidden"],
    py_limited_api=True,
)

setup(
    name="strata",
    version=version(),
    description="Memory-mapped layered region store: zero-copy layers, "
                "snapshots, protos and staging",
    packages=["strata"],
    package_data={"strata": ["py.typed", "*.pyi"]},
    ext_modules=[strata_ext],
    python_requires=">=3.11",
    zip_safe=False,
)
