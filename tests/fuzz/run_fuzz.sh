#!/bin/sh
# Runs a libFuzzer target for a while on a scratch copy of its committed
# corpus (the committed corpus is never modified).
#
#   tests/fuzz/run_fuzz.sh BUILD_DIR SECONDS [TARGET [extra libFuzzer flags...]]
#
# TARGET is region (the default), store, manifest or remote_manifest.
#
# BUILD_DIR must be configured with CC=clang -DSTRATA_BUILD_FUZZ=ON. Exits
# non-zero when the fuzzer finds a crash; the crashing input is left in
# BUILD_DIR/fuzz-artifacts/ (add it to tests/fuzz/regressions/).
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
build=$1
secs=$2
target=${3:-region}
shift 2
[ $# -gt 0 ] && shift
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/tests/fuzz/fuzz_$target
if [ ! -x "$bin" ]; then
  echo "$0: $bin not found (configure with CC=clang -DSTRATA_BUILD_FUZZ=ON)" >&2
  exit 2
fi
# The targets write files (regions, manifests) on every input: on tmpfs
# fuzz_manifest runs about 3 times as fast as on this machine's disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/fuzz-artifacts"
cp "$here"/corpus/"$target"/* "$work/corpus/"
if [ "$target" = region ] && ls "$here"/regressions/*.region >/dev/null 2>&1; then
  cp "$here"/regressions/*.region "$work/corpus/"
fi
# The manifest target's builds print their errors: keep them off the log.
extra=
[ "$target" = manifest ] && extra=-close_fd_mask=2
# -max_len: the seeds are under 8 KiB; room to grow without slowing down.
"$bin" $extra -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/" "$@" \
  "$work/corpus"
