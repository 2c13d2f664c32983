#!/usr/bin/env bash
# Installs Strata from BUILD_DIR into a scratch prefix, then checks what a
# user of that prefix gets:
#   - the library, headers, strata.pc and the CMake package; only the public
#     API exported; every sub-header self-contained;
#   - the examples built as an outside project with find_package(strata)
#     against strata::strata and against strata::strata_static, and with
#     pkg-config (shared, and static with --static), each run; the static
#     builds do not depend on libstrata.so;
#   - the config's handling of a missing dependency of strata_static;
#   - the tools run from $prefix/bin with no LD_LIBRARY_PATH;
#   - the man pages (rendered without warnings) and the documents;
#   - no file names the build machine's CUDA toolkit (CUDA_ROOT, given when
#     the build has CUDA).
# usage: run_install_test.sh BUILD_DIR SRC_DIR [CUDA_ROOT]
set -euo pipefail
build_dir=$1
src_dir=$2
cuda_root=${3:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "FAIL: $*"; exit 1; }
# A static link must not need libstrata.so at run time.
check_static() { # BINARY
  if readelf -d "$1" | grep -q 'NEEDED.*libstrata'; then
    fail "$1 is linked against libstrata.so, not libstrata.a"
  fi
}
cuda_args=()
[ -n "$cuda_root" ] && cuda_args=(-DCUDAToolkit_ROOT="$cuda_root")

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libstrata.so' -printf '%h\n' | head -n1)
test -n "$libdir" || fail "libstrata.so not installed"
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

# 1. CMake package: the shared and the static library.
for target in strata strata_static; do
  cmake -S "$src_dir/examples" -B "$work/cmake-$target" -DCMAKE_PREFIX_PATH="$prefix" \
    -DSTRATA_EXAMPLES_LINK="strata::$target" "${cuda_args[@]}" >/dev/null
  cmake --build "$work/cmake-$target" >/dev/null
  env -u LD_LIBRARY_PATH "$work/cmake-$target/strata_quickstart" "$work/$target.region" |
    tee "$work/out-$target"
  grep -q '^verified 3 layers' "$work/out-$target"
  env -u LD_LIBRARY_PATH "$work/cmake-$target/strata_staging_example" "$work/store-$target" |
    tee "$work/staging-$target"
  grep -q 'verified$' "$work/staging-$target"
done
check_static "$work/cmake-strata_static/strata_quickstart"
check_static "$work/cmake-strata_static/strata_staging_example"
cmp "$work/strata.region" "$work/strata_static.region" # the writer is deterministic

# The static library's dependencies are found by the config, not assumed:
# without them (here pkg-config sees no module at all, as on a machine
# without libjansson-dev), find_package(strata) still gives strata::strata
# and says why strata::strata_static is missing, and COMPONENTS static fails
# with that reason.
mkdir "$work/no-modules"
PKG_CONFIG_LIBDIR=$work/no-modules PKG_CONFIG_PATH='' cmake -S "$src_dir/examples" \
  -B "$work/cmake-nodeps" -DCMAKE_PREFIX_PATH="$prefix" "${cuda_args[@]}" \
  >"$work/nodeps.out" 2>&1 ||
  { cat "$work/nodeps.out"; fail "find_package(strata) needs the static library's dependencies"; }
grep -q 'strata::strata_static needs what was not found: jansson (pkg-config module)' \
  "$work/nodeps.out" || { cat "$work/nodeps.out"; fail "no reason given for the missing strata::strata_static"; }
if PKG_CONFIG_LIBDIR=$work/no-modules PKG_CONFIG_PATH='' cmake -S "$src_dir/examples" \
  -B "$work/cmake-nodeps-static" -DCMAKE_PREFIX_PATH="$prefix" \
  -DSTRATA_EXAMPLES_LINK=strata::strata_static "${cuda_args[@]}" >"$work/nodeps-static.out" 2>&1; then
  fail "COMPONENTS static succeeded without its dependencies"
fi
grep -q 'needs what was not found: jansson (pkg-config' "$work/nodeps-static.out" ||
  { cat "$work/nodeps-static.out"; fail "COMPONENTS static failed without naming jansson"; }

# 2. pkg-config: shared, then static (libstrata.a picked with -l:libstrata.a;
# the CUDA runtime, when built with it, from the toolkit's library folder,
# which strata.pc does not name).
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
cc -std=c17 -Wall -Werror "$src_dir/examples/quickstart.c" -o "$work/pc-quickstart" \
  $(pkg-config --cflags --libs strata)
LD_LIBRARY_PATH=$libdir "$work/pc-quickstart" "$work/b.region" | tee "$work/out2"
grep -q '^layer 2 (fact-2): Writers publish new files by rename.$' "$work/out2"
cmp "$work/strata.region" "$work/b.region"
static_libs=$(pkg-config --static --libs strata)
[[ " $static_libs " == *" -lstrata "* ]] || fail "pkg-config --libs gives no -lstrata: $static_libs"
static_libs=${static_libs/ -lstrata / -l:libstrata.a }
link_path=${LIBRARY_PATH:-}
if [ -n "$cuda_root" ]; then
  cudart=$(find -L "$cuda_root" -name libcudart_static.a -print -quit)
  [ -n "$cudart" ] || fail "no libcudart_static.a under $cuda_root"
  link_path=$(dirname "$cudart")${link_path:+:$link_path}
fi
# shellcheck disable=SC2046,SC2086
LIBRARY_PATH=$link_path cc -std=c17 -Wall -Werror "$src_dir/examples/quickstart.c" \
  -o "$work/pc-static-quickstart" $(pkg-config --cflags strata) $static_libs
check_static "$work/pc-static-quickstart"
env -u LD_LIBRARY_PATH "$work/pc-static-quickstart" "$work/c.region" | tee "$work/out3"
cmp "$work/strata.region" "$work/c.region"

# 3. Every installed sub-header compiles alone (each includes what it uses),
# as C and, where a C++ compiler is installed, as C++; and the switches for
# tests and benchmarks (src/common/strata_testing.h) are neither in the
# installed headers nor exported.
for h in "$prefix"/include/strata/*.h; do
  name=strata/$(basename "$h")
  echo "#include <$name>" | cc -std=c17 -Wall -Wextra -Werror -fsyntax-only \
    -I"$prefix/include" -x c - || { echo "FAIL: <$name> is not self-contained"; exit 1; }
  if command -v c++ >/dev/null; then
    echo "#include <$name>" | c++ -Wall -Werror -fsyntax-only \
      -I"$prefix/include" -x c++ - || { echo "FAIL: <$name> does not compile as C++"; exit 1; }
  fi
done
# Every function the library exports is declared by <strata.h> with C
# linkage: a C++ program takes the address of each and links against the
# installed library. A declaration outside extern "C" compiles as C++ (the
# -fsyntax-only check above passes) but asks the linker for a mangled name
# (strata_compact was declared so once), and an exported function no
# header declares fails to compile here.
if command -v c++ >/dev/null; then
  {
    echo '#include <strata.h>'
    echo '#include <cstdio>'
    echo 'int main() {'
    echo '  void *fns[] = {'
    nm -D --defined-only "$libdir/libstrata.so" | awk '$2 == "T" { print "    (void *)&" $3 "," }'
    echo '  };'
    echo '  std::printf("%zu functions\n", sizeof fns / sizeof fns[0]);'
    echo '  return fns[0] == nullptr;'
    echo '}'
  } >"$work/link_all.cpp"
  c++ -Wall -Werror -I"$prefix/include" "$work/link_all.cpp" -o "$work/link_all" \
    -L"$libdir" -lstrata || fail "the exported functions do not all link from C++"
  LD_LIBRARY_PATH=$libdir "$work/link_all" || fail "the C++ link test did not run"
fi
if grep -rqE 'strata_staging_tick|NO_READ_STATS|DRIVER_ALLOC|NO_WORKER' \
    "$prefix/include/strata.h" "$prefix/include/strata"; then
  echo "FAIL: a test switch is in the installed headers"; exit 1
fi
if nm -D --defined-only "$libdir/libstrata.so" | grep -q ' strata_staging_tick$'; then
  echo "FAIL: strata_staging_tick is exported"; exit 1
fi

# 4. The tools run from the prefix as installed (RUNPATH $ORIGIN/../LIBDIR):
# no LD_LIBRARY_PATH, and the library they load is the prefix's.
for tool in strata region-builder; do
  test -x "$prefix/bin/$tool" || fail "$tool not installed in $prefix/bin"
  env -u LD_LIBRARY_PATH "$prefix/bin/$tool" --version | tee "$work/version"
  grep -Eq '^(strata|region-builder \(strata\)) [0-9]+\.[0-9]+\.[0-9]+$' "$work/version" ||
    fail "$tool --version printed $(cat "$work/version")"
  loaded=$(env -u LD_LIBRARY_PATH ldd "$prefix/bin/$tool" | awk '/libstrata\.so/ {print $3}')
  if [ -z "$loaded" ] || [ "$(readlink -f "$(dirname "$loaded")")" != "$(readlink -f "$libdir")" ]; then
    fail "$prefix/bin/$tool loads '$loaded', not $libdir/libstrata.so"
  fi
done
mkdir "$work/tool-in"
echo "installed tools" >"$work/tool-in/a.txt"
env -u LD_LIBRARY_PATH "$prefix/bin/region-builder" -q -o "$work/tools.region" \
  --from-dir "$work/tool-in" --id 1 --name tools
env -u LD_LIBRARY_PATH "$prefix/bin/strata" verify "$work/tools.region"

# 5. Man pages and documents.
mandir=$prefix/share/man/man1
docdir=$prefix/share/doc/strata
for page in strata.1 region-builder.1; do
  test -f "$mandir/$page" || fail "$mandir/$page not installed"
done
for doc in README.md ARCHITECTURE.md CLI.md FORMAT.md MANIFEST.md state.schema.json; do
  test -f "$docdir/$doc" || fail "$docdir/$doc not installed"
done
for page in "$mandir"/strata.1 "$mandir"/region-builder.1; do
  if command -v man >/dev/null; then
    MANWIDTH=80 man --warnings -l "$page" 2>"$work/man.err" >"$work/man.out"
  elif command -v groff >/dev/null; then
    groff -man -Tutf8 -ww "$page" 2>"$work/man.err" >"$work/man.out"
  elif command -v mandoc >/dev/null; then
    mandoc -Tlint "$page" >"$work/man.err" 2>&1 || true
    mandoc "$page" >"$work/man.out"
  else
    echo "skip: no man, groff or mandoc to render $page"
    continue
  fi
  if [ -s "$work/man.err" ]; then
    cat "$work/man.err"
    fail "$page renders with warnings"
  fi
  grep -q 'SYNOPSIS' "$work/man.out" || fail "$page rendered without a SYNOPSIS"
  echo "$page: renders without warnings"
done

# 6. Nothing installed names the build machine's CUDA toolkit.
if [ -n "$cuda_root" ]; then
  for root in "$cuda_root" "$(readlink -f "$cuda_root")"; do
    if grep -rlF "$root" "$libdir/pkgconfig" "$libdir/cmake"; then
      fail "the files above name the CUDA toolkit at $root"
    fi
  done
  echo "no installed package file names $cuda_root"
fi
echo "install test: ok"
