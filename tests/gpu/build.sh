#!/usr/bin/env bash
# Configures and builds test_gpu and bench_gpu: the one build of the GPU
# programs, used by prepare.sh here and by run.sh on the GPU machine when
# its driver is older than the CUDA runtime carried (run.sh then rebuilds
# against that machine's own toolkit, with the libraries and headers
# prepare.sh carried in deps/).
#
#   build.sh SRC BUILD LOG [cmake args...]
#
# The toolkit: nvcc on PATH, else $CUDA_HOME, $CUDA_PATH or
# /usr/local/cuda; its first line of output names it ("toolkit: ROOT
# release X.Y"). Release; RADOS and the Python package off (the GPU
# programs use neither, and librados alone would pull in Ceph's libraries,
# ~60 MiB); tools, examples and strata-bench off. cmake's output goes to
# LOG. Exit status: 2 without a toolkit, else cmake's.
set -euo pipefail
src=$1 build=$2 log=$3
shift 3
cuda_root=
if command -v nvcc >/dev/null; then
  cuda_root=$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)
else
  for r in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [[ -n $r && -x $r/bin/nvcc ]] && cuda_root=$r && break
  done
fi
if [[ -z $cuda_root ]]; then
  echo "build.sh: no CUDA toolkit (nvcc not on PATH, nor in \$CUDA_HOME," \
    "\$CUDA_PATH or /usr/local/cuda)" >&2
  exit 2
fi
echo "toolkit: $cuda_root $("$cuda_root/bin/nvcc" --version |
  sed -n 's/.*\(release [0-9.]*\).*/\1/p')"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTRATA_WITH_CUDA=ON \
  -DSTRATA_WITH_RADOS=OFF -DSTRATA_BUILD_PYTHON=OFF -DSTRATA_BUILD_TOOLS=OFF \
  -DSTRATA_BUILD_EXAMPLES=OFF -DSTRATA_BUILD_TESTS=ON -DSTRATA_BUILD_BENCH=OFF \
  -DCUDAToolkit_ROOT="$cuda_root" "$@" >"$log" 2>&1
cmake --build "$build" -j"$(nproc)" --target test_gpu bench_gpu >>"$log" 2>&1
