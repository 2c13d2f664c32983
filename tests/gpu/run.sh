#!/usr/bin/env bash
# Runs the CUDA path on a GPU machine from the folder tests/gpu/prepare.sh
# made (nothing is built or installed here): test_gpu, then bench_gpu sized
# to fit one device call, then test_gpu under compute-sanitizer (memcheck,
# racecheck) where the machine has it.
#
#   CARRY/run.sh [bench_gpu options...]      (or tests/gpu/run.sh from the
#                                             tree, with .gpu-carry/ in it)
#
# Output goes to stdout and, when $OUT is set, to $OUT/gpu-results.txt,
# line by line, so a run cut short still leaves what it had. bench_gpu's
# options default to the sizes of tests/gpu/README.md ("Sized for one
# device call"); RUN_BUDGET_S (default 450) caps the whole run: each step
# gets what is left of it, at most its own cap.
#
# When the machine's driver is older than the CUDA runtime linked into the
# carried programs (MANIFEST's cuda_runtime), they cannot use the GPU: run.sh
# then rebuilds them with build.sh against the machine's own toolkit, in a
# scratch folder, from the source tree the folder sits in (.gpu-carry/ at
# the tree root, or $STRATA_SRC), with the headers, .pc files and pkgconf
# carried in deps/. RUN_REBUILD=1 rebuilds always, RUN_REBUILD=0 never.
#
# Exit status: 0 when everything ran and passed, or when there is no GPU
# (said so: "no GPU"); 1 when a step failed or ran out of time; 2 when a
# binary's library cannot be found (named) or the folder is incomplete.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ -x $here/bin/test_gpu ]]; then
  carry=$here
else
  carry=$(cd "$here/../.." && pwd)/.gpu-carry
fi
results=${OUT:+$OUT/gpu-results.txt}
if [[ -n $results ]]; then
  mkdir -p "$OUT"
  : >"$results"
fi
budget=${RUN_BUDGET_S:-450}
start=$SECONDS

log() {
  if [[ -n $results ]]; then
    printf '%s\n' "$*" | tee -a "$results"
  else
    printf '%s\n' "$*"
  fi
}
step() {
  log ""
  log "==== $* ($((SECONDS - start)) s) ===="
}
# run CAP CMD...: CMD with its output logged, killed after CAP seconds or
# when the budget is spent, whichever is first; returns its exit status
# (124 when killed for time). Its stdout is line-buffered (stdbuf), so the
# lines it printed before a kill are not lost in a pipe buffer.
run() {
  local cap=$1 left=$((budget - (SECONDS - start)))
  shift
  ((left < cap)) && cap=$left
  if ((cap <= 0)); then
    log "run: out of time (RUN_BUDGET_S=$budget) before: $*"
    return 124
  fi
  if [[ -n $results ]]; then
    timeout -k 10 "$cap" stdbuf -oL -eL "$@" 2>&1 | tee -a "$results"
  else
    timeout -k 10 "$cap" stdbuf -oL -eL "$@" 2>&1
  fi
  local rc=${PIPESTATUS[0]}
  ((rc == 124 || rc == 137)) && log "run: $(basename "$1") killed after $cap s"
  return "$rc"
}

for f in bin/test_gpu bin/bench_gpu MANIFEST; do
  if [[ ! -e $carry/$f ]]; then
    log "run: $carry/$f is missing: make the folder with tests/gpu/prepare.sh"
    exit 2
  fi
done
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/strata-gpu.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch

# ---- the machine and the folder ------------------------------------------
step "machine"
log "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -srm); $(nproc) CPUs;" \
  "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo);" \
  "glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2)"
sed 's/^/carry: /' "$carry/MANIFEST" | while IFS= read -r l; do log "$l"; done
need_cuda=$(sed -n 's/^cuda_runtime: \([0-9.]*\).*/\1/p' "$carry/MANIFEST")
if command -v nvidia-smi >/dev/null; then
  run 30 nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id \
    --format=csv,noheader
  # The newest CUDA this driver supports, from its banner.
  have_cuda=$(timeout 30 nvidia-smi 2>/dev/null |
    sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)
  log "driver supports CUDA ${have_cuda:-?}; the binaries need $need_cuda"
  if [[ -n $have_cuda && -n $need_cuda ]] &&
    [[ $(printf '%s\n%s\n' "$need_cuda" "$have_cuda" | sort -V | head -n 1) != "$need_cuda" ]]; then
    log "run: this driver is older than the CUDA $need_cuda runtime linked into" \
      "the carried programs: they cannot use the GPU; rebuilding them here"
    driver_old=1
  fi
else
  log "nvidia-smi: not found"
fi

# ---- rebuild against this machine's toolkit, when needed -----------------
test_bin=$carry/bin/test_gpu
bench_bin=$carry/bin/bench_gpu
rebuild=${RUN_REBUILD:-auto}
if [[ $rebuild == 1 || ($rebuild == auto && ${driver_old:-0} == 1) ]]; then
  step "rebuild"
  src=${STRATA_SRC:-$(cd "$carry/.." && pwd)}
  if [[ ! -f $src/CMakeLists.txt || ! -f $src/tests/gpu/test_gpu.c ]]; then
    log "run: FAILED: no Strata source tree at $src to rebuild from (set STRATA_SRC)"
    exit 1
  fi
  log "rebuilding test_gpu and bench_gpu from $src"
  if ! run 180 env PKG_CONFIG_LIBDIR="$carry/deps/pkgconfig" PKG_CONFIG_PATH= \
    bash "$carry/build.sh" "$src" "$scratch/build" "$scratch/build.log" \
    -DPKG_CONFIG_EXECUTABLE="$carry/deps/bin/pkg-config"; then
    tail -n 40 "$scratch/build.log" | while IFS= read -r l; do log "$l"; done
    log "run: FAILED: the rebuild failed (the end of its log is above)"
    exit 1
  fi
  test_bin=$scratch/build/tests/gpu/test_gpu
  bench_bin=$scratch/build/tools/bench/bench_gpu
  log "rebuilt"
fi

# ---- every library found -------------------------------------------------
step "libraries"
missing=0
for b in "$test_bin" "$bench_bin"; do
  out=$(ldd "$b" 2>&1)
  while IFS= read -r l; do
    log "run: $(basename "$b"): library not found: $(sed 's/^[[:space:]]*//' <<<"$l")"
    missing=1
  done < <(grep 'not found' <<<"$out")
  log "$(basename "$b"): $(awk -v lib="$carry/lib/" '$2 == "=>" {
    printf "%s%s ", $1, (index($3, lib) == 1 ? " (carried)" : "") }' <<<"$out")"
done
if ((missing)); then
  log "run: FAILED: a library is missing (named above)"
  exit 2
fi
log "every library found"

# ---- test ----------------------------------------------------------------
step "test_gpu"
run 120 "$test_bin"
test_rc=$?
case $test_rc in
0) log "test_gpu: passed" ;;
77)
  log "test_gpu: skipped"
  step "bench_gpu"
  run 30 "$bench_bin"
  bench_rc=$?
  if ((bench_rc != 0)); then
    log "bench_gpu: FAILED (exit $bench_rc)"
    exit 1
  fi
  log ""
  log "no GPU: test_gpu, bench_gpu and compute-sanitizer skipped; every library found"
  exit 0
  ;;
*) log "test_gpu: FAILED (exit $test_rc)" ;;
esac

# ---- benchmark -----------------------------------------------------------
(($# == 0)) && set -- --mib 256 --small-mib 64 --slab-gib 4 --reps 3
step "bench_gpu $*"
run 180 "$bench_bin" "$@"
bench_rc=$?
((bench_rc == 0)) || log "bench_gpu: FAILED (exit $bench_rc)"

# ---- compute-sanitizer ---------------------------------------------------
san=$(command -v compute-sanitizer || true)
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-*; do
  [[ -z $san && -n $d && -x $d/bin/compute-sanitizer ]] && san=$d/bin/compute-sanitizer
  [[ -z $san && -n $d && -x $d/compute-sanitizer/compute-sanitizer ]] &&
    san=$d/compute-sanitizer/compute-sanitizer
done
san_rc=0
if [[ -z $san ]]; then
  step "compute-sanitizer"
  log "compute-sanitizer: not found on this machine; skipped"
else
  for tool in memcheck racecheck; do
    step "compute-sanitizer --tool $tool test_gpu"
    cap=90
    [[ $tool == memcheck ]] && cap=150
    run "$cap" "$san" --tool "$tool" --error-exitcode 3 "$test_bin"
    rc=$?
    if ((rc == 0)); then
      log "compute-sanitizer $tool: no report"
    else
      log "compute-sanitizer $tool: FAILED (exit $rc)"
      san_rc=1
    fi
  done
fi

step "done"
log "test_gpu exit $test_rc, bench_gpu exit $bench_rc, compute-sanitizer" \
  "$( ((san_rc == 0)) && echo clean || echo 'FAILED')"
((test_rc == 0 && bench_rc == 0 && san_rc == 0))
