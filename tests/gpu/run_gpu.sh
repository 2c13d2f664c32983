#!/usr/bin/env bash
# The CUDA path in one command, on a machine with an NVIDIA GPU and the
# CUDA toolkit: installs missing build dependencies (as root, with apt-get,
# like .ci/deps.sh), configures and builds a Release tree with CUDA, runs
# test_gpu and bench_gpu, and writes their output to a results file.
#
#   tests/gpu/run_gpu.sh [BUILD_DIR [bench_gpu options...]]
#
# BUILD_DIR defaults to build-gpu/ in the source tree. The results go to
# $OUT/gpu-results.txt when $OUT is set, else to BUILD_DIR/gpu-results.txt.
# bench_gpu options (see bench_gpu --help): --mib N, --small-mib N,
# --slab-gib N (default 8: the machine needs that much free memory twice
# over a run, one pool at a time), --reps R.
# Exit status: 0 when the test passed (or was skipped for want of a GPU)
# and the benchmark ran; 1 otherwise; 2 when a dependency is missing.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build-gpu}
(($# > 0)) && shift
mkdir -p "$build"
build=$(cd "$build" && pwd)
results=${OUT:+$OUT/gpu-results.txt}
results=${results:-$build/gpu-results.txt}
mkdir -p "$(dirname "$results")"
: >"$results"

log() { printf '%s\n' "$*" | tee -a "$results"; }
step() {
  log ""
  log "==== $* ===="
}

# ---- dependencies --------------------------------------------------------
# pkg-config module -> Debian package.
declare -A pkg_of=([jansson]=libjansson-dev [libxxhash]=libxxhash-dev
                   [numa]=libnuma-dev [cmocka]=libcmocka-dev)
missing=()
for tool in cmake gcc pkg-config; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if command -v pkg-config >/dev/null; then
  for mod in "${!pkg_of[@]}"; do
    pkg-config --exists "$mod" || missing+=("${pkg_of[$mod]}")
  done
fi
if ((${#missing[@]})); then
  log "run_gpu: missing: ${missing[*]}"
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "run_gpu: installing them with apt-get"
    apt_pkgs=()
    for m in "${missing[@]}"; do
      case $m in
      gcc) apt_pkgs+=(build-essential) ;;
      *) apt_pkgs+=("$m") ;;
      esac
    done
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      "${apt_pkgs[@]}"; } >>"$results" 2>&1; then
      log "run_gpu: apt-get could not install ${apt_pkgs[*]} (offline?);" \
        "install them and run again"
      exit 2
    fi
  else
    log "run_gpu: install them (Debian/Ubuntu: apt-get install" \
      "${missing[*]/gcc/build-essential}) and run again"
    exit 2
  fi
fi

# The toolkit: CMake finds it through nvcc on PATH or CUDAToolkit_ROOT.
cuda_args=()
if ! command -v nvcc >/dev/null; then
  for root in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    if [[ -n $root && -x $root/bin/nvcc ]]; then
      cuda_args=(-DCUDAToolkit_ROOT="$root")
      break
    fi
  done
  if ((${#cuda_args[@]} == 0)); then
    log "run_gpu: no CUDA toolkit (nvcc not on PATH, nor in \$CUDA_HOME," \
      "\$CUDA_PATH or /usr/local/cuda)"
    exit 2
  fi
fi

# ---- the machine ---------------------------------------------------------
step "machine"
log "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -srm); $(nproc) CPUs;" \
  "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
log "source: $src ($(git -C "$src" rev-parse --short HEAD 2>/dev/null ||
  echo 'not a git tree'))"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id \
    --format=csv,noheader 2>&1 | tee -a "$results"
  nvidia-smi topo -m 2>/dev/null | tee -a "$results" >/dev/null
else
  log "nvidia-smi: not found"
fi

# ---- build ---------------------------------------------------------------
step "build ($build)"
if ! cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DSTRATA_WITH_CUDA=ON -DSTRATA_BUILD_TOOLS=OFF -DSTRATA_BUILD_EXAMPLES=OFF \
  "${cuda_args[@]}" >>"$results" 2>&1; then
  log "run_gpu: cmake configure failed (output in $results)"
  exit 1
fi
if ! cmake --build "$build" -j"$(nproc)" --target test_gpu bench_gpu \
  >>"$results" 2>&1; then
  log "run_gpu: build failed (output in $results)"
  exit 1
fi
log "built test_gpu and bench_gpu"

# ---- test ----------------------------------------------------------------
step "test_gpu"
mkdir -p "$build/testtmp"
TMPDIR=$build/testtmp "$build/tests/gpu/test_gpu" 2>&1 | tee -a "$results"
test_rc=${PIPESTATUS[0]}
case $test_rc in
0) log "test_gpu: passed" ;;
77) log "test_gpu: skipped (no GPU)" ;;
*) log "test_gpu: FAILED (exit $test_rc)" ;;
esac

# ---- benchmark -----------------------------------------------------------
step "bench_gpu $*"
"$build/tools/bench/bench_gpu" "$@" 2>&1 | tee -a "$results"
bench_rc=${PIPESTATUS[0]}
((bench_rc == 0)) || log "bench_gpu: FAILED (exit $bench_rc)"

log ""
log "results: $results"
[[ $test_rc == 0 || $test_rc == 77 ]] && ((bench_rc == 0))
