#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. installs missing packages (.ci/deps.sh); checks that every C file
#      matches .clang-format (tools/check_format.sh),
#   2. a -Werror build with tools, examples, the benchmark and the remote tier
#      (librados: STRATA_WITH_RADOS=ON, so a missing librados fails here
#      instead of leaving the remote tests out); all ctest tests (among them
#      `layers`: tools/check_layers.py on src/ and its objects, and the
#      remote tests, which start their own one-node Ceph cluster: the
#      fixture in tests/remote/CMakeLists.txt),
#   3. the same under ASan+UBSan, remote tests included (their cluster
#      start and stop cost about 12 s; the librados code is where the
#      sanitizers have the most to find),
#   4. the store and staging tests under TSan (test_store, _stress, _faults, _delta, test_shm,
#      test_state, test_staging, _alloc, test_device_host, and the remote
#      tier's test_remote_publish and test_remote_follow),
#   5. the libFuzzer targets (clang; region, store, manifest, remote_manifest): corpus replays
#      and short runs,
#   6. a smoke run of strata-bench (no timing is checked).
# Settings, from the environment:
#   STRATA_BUILD_ROOT  where the build trees go (default: build-ci/ in the
#                      source directory, which git ignores; a relative path
#                      is taken from the current directory): one folder per
#                      build, gcc/, asan/, tsan/ and fuzz/, kept between runs
#                      so that a second run rebuilds only what changed;
#   STRATA_JOBS        parallel build and test jobs (default:
#                      CMAKE_BUILD_PARALLEL_LEVEL when set, else nproc);
#   STRATA_FUZZ_SECONDS  seconds per fuzz target (default 40).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
root=$(realpath -m "${STRATA_BUILD_ROOT:-$src/build-ci}")
jobs=${STRATA_JOBS:-${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}}
fuzz_seconds=${STRATA_FUZZ_SECONDS:-40}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "run_all: STRATA_JOBS must be a positive number, not '$jobs'"; exit 2; }
cd "$src"
gcc_tree=$root/gcc asan_tree=$root/asan tsan_tree=$root/tsan fuzz_tree=$root/fuzz
where() { echo "run_all: build trees in $root (gcc, asan, tsan, fuzz); remove them with: rm -rf '$root'"; }
where
echo "run_all: $jobs parallel jobs (STRATA_JOBS)"

bash .ci/deps.sh

step() { printf '\n==== %s ====\n' "$*"; }

step "format (clang-format)"
bash tools/check_format.sh

# The CUDA code (the staging pool's device backend, tests/gpu) is compiled
# wherever the toolkit is installed, GPU or not, so that it cannot rot; the
# tests then run the pool in host mode (tests/gpu reports itself skipped).
cuda=AUTO
[ -x /usr/local/cuda/bin/nvcc ] && cuda="ON -DCUDAToolkit_ROOT=/usr/local/cuda"

step "build (gcc, -Werror)"
# shellcheck disable=SC2086
cmake -S . -B "$gcc_tree" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_WERROR=ON \
  -DSTRATA_BUILD_BENCH=ON -DSTRATA_WITH_CUDA=$cuda -DSTRATA_WITH_RADOS=ON |
  grep -E 'strata: (CUDA|RADOS)' || true
cmake --build "$gcc_tree" -j"$jobs"
step "tests"
ctest --test-dir "$gcc_tree" --output-on-failure -j"$jobs"

step "build (ASan+UBSan)"
cmake -S . -B "$asan_tree" -DCMAKE_BUILD_TYPE=Debug -DSTRATA_WERROR=ON \
  -DSTRATA_SANITIZE=address,undefined -DSTRATA_WITH_RADOS=ON >/dev/null
cmake --build "$asan_tree" -j"$jobs"
step "tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$asan_tree" --output-on-failure -j"$jobs"

# TSan runs only the tests that exercise threads and the store; the rest is
# single-threaded and covered above. halt_on_error makes the first report
# end the test with exit code 66, so ctest and this script fail on it.
step "build (TSan: store, staging and thread tests)"
# The remote tier's publisher and follower (lock renewal, the sync thread,
# watch callbacks, readers during swaps) run here too, against the
# fixture's cluster; librados is not built with TSan, so reports inside it
# are suppressed (tests/remote/tsan.supp says which and why).
cmake -S . -B "$tsan_tree" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_WERROR=ON \
  -DSTRATA_SANITIZE=thread -DSTRATA_BUILD_TOOLS=OFF -DSTRATA_WITH_RADOS=ON \
  -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$tsan_tree" -j"$jobs" --target test_store test_store_stress test_state test_shm \
  test_store_faults test_store_delta test_staging test_staging_alloc test_device_host \
  test_remote_publish test_remote_follow
step "store and thread tests under TSan"
tsan_ctest() { # [PREFIX...]: runs the TSan tests, under PREFIX if given
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:exitcode=66:suppressions=$src/tests/remote/tsan.supp \
    "$@" ctest --test-dir "$tsan_tree" --output-on-failure \
    -R '^test_(store(_stress|_faults|_delta)?|state|shm|staging(_alloc)?|device_host|remote_(publish|follow))$'
}
if ! tsan_ctest 2>&1 | tee "$tsan_tree/tsan.log"; then
  # TSan's shadow memory needs the program away from where the kernel may
  # place it; kernels with more mmap randomization (vm.mmap_rnd_bits > 28)
  # make TSan die at start with this message. Retry with ASLR off then.
  # A data race or other report fails the stage as it is.
  grep -q "ThreadSanitizer: unexpected memory mapping" "$tsan_tree/tsan.log" &&
    ! grep -q "WARNING: ThreadSanitizer" "$tsan_tree/tsan.log" || exit 1
  echo "TSan cannot run with this kernel's ASLR: again under setarch -R"
  tsan_ctest setarch "$(uname -m)" -R
fi

step "fuzz (clang libFuzzer, ${fuzz_seconds}s per target)"
CC=clang cmake -S . -B "$fuzz_tree" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_BUILD_FUZZ=ON -DSTRATA_BUILD_TOOLS=OFF -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$fuzz_tree" -j"$jobs"
ctest --test-dir "$fuzz_tree" --output-on-failure -R fuzz
bash tests/fuzz/run_fuzz.sh "$fuzz_tree" "$fuzz_seconds" region
bash tests/fuzz/run_fuzz.sh "$fuzz_tree" "$fuzz_seconds" store
bash tests/fuzz/run_fuzz.sh "$fuzz_tree" "$fuzz_seconds" manifest
# The remote tier's manifest parser, where librados is (the gcc stage's
# build requires it, so it is here).
bash tests/fuzz/run_fuzz.sh "$fuzz_tree" "$fuzz_seconds" remote_manifest

step "strata-bench smoke run"
"$gcc_tree/tools/bench/strata-bench" --n 20000 --gets 200000 --reps 1 --scenario dense,staging
# Issue 19's writer cycle (next to LMDB, with a reader) and reads through
# deltas, small: a 2,000-layer region, 10 cycles, 0.2 s idle phases.
"$gcc_tree/tools/bench/strata-bench" --n 20000 --gets 200000 --reps 1 --cycles 10 \
  --seconds 0.2 --scenario writer-cycle,delta-read

step "all tests passed"
where
