#!/usr/bin/env bash
# Installs Strata from BUILD_DIR into a scratch prefix, then builds the
# examples as an outside project twice -- once with find_package(strata), once
# with pkg-config -- and runs each build.
set -euo pipefail
build_dir=$1
src_dir=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libstrata.so' -printf '%h\n' | head -n1)
test -n "$libdir" || { echo "FAIL: libstrata.so not installed"; exit 1; }
test -f "$prefix/include/strata.h" || { echo "FAIL: strata.h not installed"; exit 1; }
test -f "$libdir/pkgconfig/strata.pc" || { echo "FAIL: strata.pc not installed"; exit 1; }
test -f "$libdir/cmake/strata/strataConfig.cmake" || { echo "FAIL: strataConfig.cmake missing"; exit 1; }
test -f "$libdir/cmake/strata/strataConfigVersion.cmake" || { echo "FAIL: version file missing"; exit 1; }
soname=$(objdump -p "$libdir/libstrata.so" | awk '/SONAME/ {print $2}')
echo "installed SONAME: $soname"
[[ $soname =~ ^libstrata\.so\.[0-9]+$ ]] || { echo "FAIL: SONAME $soname is not libstrata.so.MAJOR"; exit 1; }
# Only the public API is exported: no strata__ internals.
if nm -D --defined-only "$libdir/libstrata.so" | grep -q ' strata__'; then
  echo "FAIL: internal symbols are exported"; exit 1
fi

# 1. CMake package.
cmake -S "$src_dir/examples" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cmake-build/strata_quickstart" "$work/a.region" | tee "$work/out1"
grep -q '^verified 3 layers' "$work/out1"

# 2. pkg-config.
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -std=c17 -Wall -Werror "$src_dir/examples/quickstart.c" -o "$work/pc-quickstart" \
  $(pkg-config --cflags --libs strata)
LD_LIBRARY_PATH=$libdir "$work/pc-quickstart" "$work/b.region" | tee "$work/out2"
grep -q '^layer 2 (fact-2): Writers publish new files by rename.$' "$work/out2"
cmp "$work/a.region" "$work/b.region" # the writer is deterministic
echo "install test: ok"
