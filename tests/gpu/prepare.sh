#!/usr/bin/env bash
# Builds the CUDA path here (a machine with the CUDA toolkit and the build
# dependencies, no GPU needed) and gathers into one folder everything a bare
# GPU machine needs to run it: test_gpu, bench_gpu, the shared libraries
# they load that such a machine lacks, run.sh and a manifest.
#
#   tests/gpu/prepare.sh [CARRY_DIR [BUILD_DIR]]
#
# CARRY_DIR defaults to .gpu-carry/ in the source tree (git-ignored: carry
# it to the GPU machine as it is), BUILD_DIR to /tmp/strata-gpu-build.
# There: CARRY_DIR/run.sh (tests/gpu/README.md).
#
# Why it is built here and not there: the GPU machine has the toolkit but
# none of jansson, xxhash, libnuma, cmocka, pkg-config's modules or a
# package archive, and its minutes are few. The CUDA runtime is linked
# statically (CUDA::cudart_static, as the CMake files already do), so the
# only CUDA piece the binaries need there is the driver (libcuda.so.1),
# which always comes with the GPU; the driver must be at least as new as
# the runtime linked here (the manifest names both versions, run.sh
# compares them with what the machine reports).
#
# Exit status: 0 when the folder is complete; 1 on a build failure; 2 when
# the toolkit or a library cannot be found.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
carry=${1:-$src/.gpu-carry}
build=${2:-/tmp/strata-gpu-build}

die() {
  echo "prepare: $*" >&2
  exit "${2:-1}"
}

# The toolkit: nvcc on PATH, $CUDA_HOME, $CUDA_PATH or /usr/local/cuda.
cuda_root=
if command -v nvcc >/dev/null; then
  cuda_root=$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)
else
  for r in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [[ -n $r && -x $r/bin/nvcc ]] && cuda_root=$r && break
  done
fi
[[ -n $cuda_root ]] ||
  die "no CUDA toolkit (nvcc not on PATH, nor in \$CUDA_HOME, \$CUDA_PATH or /usr/local/cuda)" 2

# Release; RADOS and the Python package off: the GPU programs do not use
# them, and librados alone would pull in Ceph's libraries (~60 MiB).
echo "prepare: building test_gpu and bench_gpu in $build (CUDA: $cuda_root)"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTRATA_WITH_CUDA=ON \
  -DSTRATA_WITH_RADOS=OFF -DSTRATA_BUILD_PYTHON=OFF -DSTRATA_BUILD_TOOLS=OFF \
  -DSTRATA_BUILD_EXAMPLES=OFF -DSTRATA_BUILD_TESTS=ON \
  -DCUDAToolkit_ROOT="$cuda_root" >"$build.configure.log" 2>&1 ||
  die "cmake configure failed (see $build.configure.log)"
cmake --build "$build" -j"$(nproc)" --target test_gpu bench_gpu \
  >"$build.build.log" 2>&1 || die "build failed (see $build.build.log)"

bins=("$build/tests/gpu/test_gpu" "$build/tools/bench/bench_gpu")
rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/lib"
cp "${bins[@]}" "$carry/bin/"
cp "$src/tests/gpu/run.sh" "$carry/"

# The libraries to carry: everything ldd resolves except the C library's
# own (libc, libm, libdl, librt, libpthread, libresolv, the loader), which
# must be the machine's: a carried libc would not match its loader. Each is
# copied as the real file under its soname, the name the binaries ask for.
is_glibc() {
  case $1 in
  libc.so.* | libm.so.* | libdl.so.* | librt.so.* | libpthread.so.* | \
    libresolv.so.* | ld-linux*.so.* | linux-vdso.so.*) return 0 ;;
  esac
  return 1
}
declare -A carried=()
for b in "${bins[@]}"; do
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    is_glibc "$name" && continue
    [[ $path == /* ]] || die "$(basename "$b") needs $name, which ldd cannot find here" 2
    carried[$name]=$path
  done < <(ldd "$b")
done
for name in "${!carried[@]}"; do
  cp -L "${carried[$name]}" "$carry/lib/$name"
done

# The versions the GPU machine must match: the CUDA runtime linked in (its
# minimum driver), and the newest glibc symbol version any carried file
# needs.
cuda_version=$("$cuda_root/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
glibc_needed=$(for f in "$carry"/bin/* "$carry"/lib/*; do
  objdump -T "$f" | grep -o 'GLIBC_[0-9.]*'
done | sort -uV | tail -n 1)

{
  echo "# strata GPU carry: made by tests/gpu/prepare.sh; run run.sh on the GPU machine."
  echo "source: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$src" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m)"
  echo "cuda_runtime: $cuda_version (static; needs a driver supporting CUDA $cuda_version)"
  echo "glibc_needed: ${glibc_needed#GLIBC_}"
  echo "files:"
  (cd "$carry" && find . -type f ! -name MANIFEST | sort | while read -r f; do
    printf '  %-28s %9d bytes  sha256 %s\n' "${f#./}" "$(stat -c %s "$f")" \
      "$(sha256sum "$f" | cut -c1-16)"
  done)
} >"$carry/MANIFEST"

cat "$carry/MANIFEST"
echo "prepare: $carry is $(du -sh "$carry" | cut -f1) ($(du -sb "$carry" | cut -f1) bytes; the carry limit is 64 MiB)"
