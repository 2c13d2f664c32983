#!/bin/bash
# Drives the region-builder tests; ctest runs one mode and case per test.
#
#   run_builder_tests.sh MODE BUILDER CHECKER ARG WORKDIR [PRELOAD]
#
#   valid CASE      builds CASE (see below), expects exit 0, no output on
#                   stdout, and check_region's listing equal to CASE/expect
#   invalid CASE    expects exit 1, each line of CASE/error in stderr, and
#                   no region (nor temporary file) left behind
#   usage -         usage errors exit 2, --help and --version exit 0; --help,
#                   --version and -v writing to /dev/full exit 1
#   interrupt SIG   kills a build blocked on a FIFO with SIG; nothing may be
#                   left (PRELOAD: a shim that disables O_TMPFILE)
#   progress -      the progress line, forced on with STRATA_PROGRESS=1:
#                   its final redraw, no ETA on its first line, and a line
#                   finished by a newline when SIGINT ends the build
#   samples DIR     builds the sample regions under DIR and checks them
#   target -        -o naming a symlink, a FIFO, a directory or a device is
#                   refused and left as it was; a regular file is replaced
#   store_lock -    in a store's directory: refused while another process
#                   holds .strata.lock ("store is locked by pid N"); holds
#                   the lock itself while it builds
#
# A case directory holds one input: manifest.json (manifest mode),
# layers.jsonl (--jsonl, region id 1 named "test") or tree/ (--from-dir,
# likewise); optionally `args` (extra options, one line), `stderr` (a
# substring stderr must contain; without it stderr must be empty) and
# `setup` (a bash script run in a copy of the case directory before the
# build, for inputs git cannot hold, such as a file name that is not UTF-8).
set -u
mode=$1 builder=$2 checker=$3 arg=$4 work=$5 preload=${6:-}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The builder running in the background, until it is waited for. A failed
# check exits at once, and a builder left running would outlive the test:
# blocked for ever opening a FIFO that nobody will write once this shell
# is gone (an earlier version of this script held ctest for 13 minutes that
# way). So the exit, and the signals ctest or a user may send, kill and reap
# it; background builders also write nothing to this script's stdout,
# which is ctest's pipe.
child=
reap_child() {
  [[ -n $child ]] || return 0
  kill -KILL "$child" 2> /dev/null
  wait "$child" 2> /dev/null
  child=
}
trap reap_child EXIT
trap 'exit 1' INT TERM HUP

rm -rf "$work"
mkdir -p "$work/out"
out=$work/out/test.region

# Fills the array `cmd` with the command line for case directory $1.
case_cmd() {
  local dir=$1 extra=()
  [[ -f $dir/args ]] && read -r -a extra < "$dir/args"
  if [[ -f $dir/manifest.json ]]; then
    cmd=("$builder" -o "$out" "${extra[@]}" "$dir/manifest.json")
  elif [[ -f $dir/layers.jsonl ]]; then
    cmd=("$builder" -o "$out" --jsonl "$dir/layers.jsonl" --id 1 --name test
         "${extra[@]}")
  elif [[ -d $dir/tree ]]; then
    cmd=("$builder" -o "$out" --from-dir "$dir/tree" --id 1 --name test
         "${extra[@]}")
  else
    fail "$dir: no manifest.json, layers.jsonl or tree/"
  fi
}

# Sets $case_dir to case directory $1, or, when it has a `setup` script, to
# a copy of it in $work/case where the script has run.
prepare_case() {
  case_dir=$1
  [[ -f $1/setup ]] || return 0
  rm -rf "$work/case"
  cp -r "$1" "$work/case" || fail "cannot copy $1"
  (cd "$work/case" && bash ./setup) || fail "$1/setup failed"
  case_dir=$work/case
}

# Runs "$@" with stdout and stderr captured in $work; sets $rc.
run() {
  "$@" > "$work/stdout" 2> "$work/stderr" < /dev/null
  rc=$?
}

assert_no_temp() {
  local left
  left=$(find "$work/out" -name '.test.region.strata-tmp-*')
  [[ -z $left ]] || fail "temporary file left behind: $left"
}

check_valid() {
  prepare_case "$1"
  local dir=$case_dir
  case_cmd "$dir"
  run "${cmd[@]}"
  [[ $rc -eq 0 ]] || fail "exit $rc, expected 0; stderr: $(cat "$work/stderr")"
  [[ -s $work/stdout ]] && fail "unexpected stdout: $(cat "$work/stdout")"
  if [[ -f $dir/stderr ]]; then
    grep -qF -- "$(cat "$dir/stderr")" "$work/stderr" ||
      fail "stderr lacks '$(cat "$dir/stderr")': $(cat "$work/stderr")"
  elif [[ -s $work/stderr ]]; then
    fail "unexpected stderr: $(cat "$work/stderr")"
  fi
  [[ -f $out ]] || fail "no region written"
  assert_no_temp
  "$checker" "$out" > "$work/listing" || fail "check_region rejected the region"
  diff -u "$dir/expect" "$work/listing" || fail "listing differs from expect"
}

check_invalid() {
  prepare_case "$1"
  local dir=$case_dir want
  case_cmd "$dir"
  run "${cmd[@]}"
  [[ $rc -eq 1 ]] || fail "exit $rc, expected 1; stderr: $(cat "$work/stderr")"
  # Every line of CASE/error must appear in stderr.
  while IFS= read -r want || [[ -n $want ]]; do
    grep -qF -- "$want" "$work/stderr" ||
      fail "stderr lacks '$want': $(cat "$work/stderr")"
  done < "$dir/error"
  [[ -e $out ]] && fail "a region was written"
  assert_no_temp
  # A failed build must not touch an existing region either.
  echo previous > "$out"
  run "${cmd[@]}"
  [[ $rc -eq 1 && $(cat "$out") == previous ]] ||
    fail "a failed build replaced the existing region (exit $rc)"
  assert_no_temp
}

expect_exit() {
  local want=$1
  shift
  run "$@"
  [[ $rc -eq $want ]] ||
    fail "'$*' exited $rc, expected $want; stderr: $(cat "$work/stderr")"
}

check_usage() {
  local m=$work/m.json
  echo '{"region": {"id": 1, "name": "u"}, "layers": [{"id": 0, "text": "x"}]}' > "$m"
  expect_exit 2 "$builder"
  expect_exit 2 "$builder" -o "$out" --bogus "$m"
  grep -q -- "--help" "$work/stderr" || fail "usage error does not point to --help"
  expect_exit 2 "$builder" -o
  expect_exit 2 "$builder" "$m"
  expect_exit 2 "$builder" -o "$out"
  expect_exit 2 "$builder" -o "$out" "$m" "$m"
  expect_exit 2 "$builder" -o "$out" --id 3 "$m"
  expect_exit 2 "$builder" -o "$out" --jsonl x.jsonl --name n
  expect_exit 2 "$builder" -o "$out" --from-dir . --id 1
  expect_exit 2 "$builder" -o "$out" --jsonl x.jsonl --from-dir . --id 1 --name n
  expect_exit 2 "$builder" -o "$out" --jsonl x.jsonl --id 1 --name n extra
  [[ -e $out ]] && fail "a usage error wrote a region"
  expect_exit 1 "$builder" -o "$out" --jsonl "$work/none.jsonl" --id 1 --name n
  expect_exit 1 "$builder" -o "$out" --jsonl "$m" --id -1 --name n
  grep -qF -- "--id -1" "$work/stderr" || fail "bad --id not named"
  expect_exit 0 "$builder" --help
  grep -q "^Exit status" "$work/stdout" || fail "--help does not document exit codes"
  grep -q "^  2  usage error" "$work/stdout" || fail "--help lacks exit code 2"
  local v
  for v in --version -V "-o $out --version $m"; do
    # shellcheck disable=SC2086 # $v is split on purpose
    expect_exit 0 "$builder" $v
    grep -Eq '^region-builder \(strata\) [0-9]+\.[0-9]+\.[0-9]+$' "$work/stdout" ||
      fail "'$v' printed: $(cat "$work/stdout")"
  done
  # The messages of the shared parser (tools/common/tool_args.c), worded as
  # strata's.
  expect_exit 2 "$builder" -o "$out" --bogus "$m"
  [[ $(cat "$work/stderr") == "region-builder: unknown option '--bogus'
Try 'region-builder --help'." ]] || fail "unknown option: $(cat "$work/stderr")"
  expect_exit 2 "$builder" -o "$out" --ver "$m"
  grep -qxF "region-builder: option '--ver' is ambiguous" "$work/stderr" ||
    fail "ambiguous option: $(cat "$work/stderr")"
  expect_exit 2 "$builder" -o "$out" -q=x "$m"
  expect_exit 2 "$builder" -o "$out" --quiet=yes "$m"
  grep -qxF "region-builder: option '--quiet' takes no value" "$work/stderr" ||
    fail "switch with a value: $(cat "$work/stderr")"
  expect_exit 2 "$builder" "$m" -o
  grep -qxF "region-builder: option '-o' needs a value" "$work/stderr" ||
    fail "missing value: $(cat "$work/stderr")"
  expect_exit 2 "$builder" "$m" --output
  grep -qxF "region-builder: option '--output' needs a value" "$work/stderr" ||
    fail "missing value: $(cat "$work/stderr")"
  # Options after the manifest, and "--" before a name that starts with '-'.
  cp "$m" "$work/-m.json"
  (cd "$work" && "$builder" -- -m.json -o "$out") > /dev/null 2>&1 &&
    fail "'--' did not end the options"
  (cd "$work" && "$builder" -o "$out" -- -m.json) ||
    fail "'-- -m.json' was not read as the manifest"
  # $STRATA_LOG naming no level is a usage error, before anything is read.
  rm -f "$out"
  STRATA_LOG=bogus expect_exit 2 "$builder" -o "$out" "$m"
  grep -qxF "region-builder: STRATA_LOG: unknown level 'bogus' (expected one of trace, debug, info, warn, error, off, or 0 to 5)" \
    "$work/stderr" || fail "STRATA_LOG=bogus: $(cat "$work/stderr")"
  [[ -e $out ]] && fail "STRATA_LOG=bogus wrote a region"
  STRATA_LOG=debug expect_exit 0 "$builder" -o "$out" "$m"
  # Quiet success: nothing on stdout or stderr (stderr is not a terminal).
  expect_exit 0 "$builder" -o "$out" "$m"
  [[ -s $work/stdout || -s $work/stderr ]] && fail "a plain build printed output"
  expect_exit 0 "$builder" -v -o "$out" "$m"
  grep -qF "$out: 1 layers" "$work/stdout" || fail "-v summary: $(cat "$work/stdout")"
  # Output that went nowhere is a failure naming standard output, and
  # the errno text (as in strata).
  local args
  for args in --help --version "-v -o $out $m"; do
    # shellcheck disable=SC2086 # $args is split on purpose
    "$builder" $args > /dev/full 2> "$work/stderr"
    rc=$?
    [[ $rc -eq 1 ]] || fail "'$args' > /dev/full exited $rc, expected 1"
    grep -qF "region-builder: writing to standard output: No space left on device" \
      "$work/stderr" || fail "'$args' > /dev/full: stderr $(cat "$work/stderr")"
  done
}

# Waits until the builder $1 has opened $2 (a FIFO it then blocks on). The
# process must be the builder already: between fork and exec it is a copy
# of this shell, which holds the test's descriptor 3 on the FIFO (looking
# at descriptors alone took that for the builder's open). So the builders
# are started with 3>&-: once exec'd, a descriptor on the FIFO is their
# own. No time limit: the builder gets there or exits.
wait_fifo_open() {
  local pid=$1 fifo=$2 fd
  while kill -0 "$pid" 2> /dev/null; do
    if [[ /proc/$pid/exe -ef $builder ]]; then
      for fd in "/proc/$pid/fd/"*; do
        [[ $(readlink "$fd") == "$fifo" ]] && return 0
      done
    fi
    sleep 0.05
  done
  fail "builder exited before opening the FIFO; stderr: $(cat "$work/stderr")"
}

# Waits until the builder $1 holds the lock of the store $2: the lock file
# names its pid, which the writer writes only once its flock is taken
# (src/common/lockfile.c). No time limit, as above.
wait_store_locked() {
  local pid=$1 lock=$2/.strata.lock
  until [[ $(cat "$lock" 2> /dev/null) == "$pid" ]]; do
    kill -0 "$pid" 2> /dev/null ||
      fail "builder exited without the store's lock; stderr: $(cat "$work/stderr")"
    sleep 0.05
  done
}

# Starts a build whose second layer reads a FIFO that is held open but never
# finished, waits until the builder is blocked reading it, then sends $1.
check_interrupt() {
  local sig=$1 in=$work/in pid tmp_seen=
  mkdir -p "$in"
  mkfifo "$in/fifo" || fail "mkfifo"
  cat > "$in/manifest.json" <<'JSON'
{"region": {"id": 1, "name": "interrupted"},
 "layers": [{"id": 0, "text": "first"}, {"id": 1, "file": "fifo"}]}
JSON
  # Opening read-write never blocks on Linux, and keeps the FIFO from ever
  # reporting end of file to the builder.
  exec 3<> "$in/fifo"
  printf 'some content that arrives before the interruption' >&3
  if [[ -n $preload ]]; then
    ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD=$preload \
      "$builder" -q -o "$out" "$in/manifest.json" > "$work/stdout" \
      2> "$work/stderr" 3>&- &
  else
    "$builder" -q -o "$out" "$in/manifest.json" > "$work/stdout" \
      2> "$work/stderr" 3>&- &
  fi
  pid=$! child=$!
  wait_fifo_open "$pid" "$in/fifo"
  sleep 0.2 # let it drain the FIFO and block in read()
  [[ -n $(find "$work/out" -name '.test.region.strata-tmp-*') ]] && tmp_seen=1
  if [[ -n $preload && -z $tmp_seen ]]; then
    fail "with O_TMPFILE disabled, no visible temporary file during the build"
  fi
  kill "-$sig" "$pid"
  wait "$pid"
  local rc=$? want
  child=
  exec 3>&-
  want=$((128 + $(kill -l "$sig")))
  [[ $rc -eq $want ]] || fail "exit $rc after SIG$sig, expected $want"
  [[ -e $out ]] && fail "a region appeared after SIG$sig"
  if [[ $sig == KILL && -n $tmp_seen ]]; then
    echo "SKIP: no O_TMPFILE here, so SIGKILL must leave the temporary file"
    exit 77
  fi
  assert_no_temp
}

# The progress line (tools/common/tool_progress.c), which stderr being a
# file would turn off: STRATA_PROGRESS=1 forces it on.
check_progress() {
  local in=$work/in pid rc
  mkdir -p "$in"
  head -c 300000 /dev/zero > "$in/a.bin"
  head -c 100000 /dev/zero > "$in/b.bin"
  cat > "$in/manifest.json" <<'JSON'
{"region": {"id": 1, "name": "p"},
 "layers": [{"id": 0, "file": "a.bin"}, {"id": 1, "file": "b.bin"}]}
JSON
  STRATA_PROGRESS=1 expect_exit 0 "$builder" -o "$out" "$in/manifest.json"
  # Each redraw starts with \r; the last one holds the final counts, and the
  # line is finished with a newline.
  local last first
  last=$(tr '\r' '\n' < "$work/stderr" | tail -n 1)
  first=$(tr '\r' '\n' < "$work/stderr" | sed -n 2p)
  [[ $last == *"(100%)  2/2 layers  "*"/s"$'\e[K' ]] ||
    fail "final progress line: $(cat -v "$work/stderr")"
  [[ $(tail -c 1 "$work/stderr" | od -An -c | tr -d ' ') == '\n' ]] ||
    fail "the progress line is not finished: $(cat -v "$work/stderr")"
  [[ $first == *ETA* ]] && fail "an ETA on the first line: $first"
  [[ $(tr -cd '\n' < "$work/stderr" | wc -c) -eq 1 ]] ||
    fail "more than one line: $(cat -v "$work/stderr")"
  # -q and STRATA_PROGRESS=0 turn it off.
  STRATA_PROGRESS=1 expect_exit 0 "$builder" -q -o "$out" "$in/manifest.json"
  [[ -s $work/stderr ]] && fail "-q drew: $(cat -v "$work/stderr")"
  STRATA_PROGRESS=0 expect_exit 0 "$builder" -o "$out" "$in/manifest.json"
  [[ -s $work/stderr ]] && fail "STRATA_PROGRESS=0 drew"
  # Ctrl-C while the line is drawn: the second layer is a FIFO that never
  # ends, so the first layer's progress is on screen when SIGINT comes.
  rm -f "$out"
  mkfifo "$in/fifo"
  cat > "$in/manifest.json" <<'JSON'
{"region": {"id": 1, "name": "p"},
 "layers": [{"id": 0, "file": "a.bin"}, {"id": 1, "file": "fifo"}]}
JSON
  exec 3<> "$in/fifo"
  STRATA_PROGRESS=1 "$builder" -o "$out" "$in/manifest.json" \
    > "$work/stdout" 2> "$work/stderr" 3>&- &
  pid=$! child=$!
  wait_fifo_open "$pid" "$in/fifo"
  # The first layer's callback has drawn the line once the FIFO is open.
  for ((rc = 0; rc < 100; rc++)); do
    [[ -s $work/stderr ]] && break
    sleep 0.05
  done
  kill -INT "$pid"
  wait "$pid"
  rc=$? child=
  exec 3>&-
  [[ $rc -eq 130 ]] || fail "exit $rc after SIGINT, expected 130"
  [[ $(head -c 1 "$work/stderr") == $'\r' ]] ||
    fail "no progress line was drawn: $(cat -v "$work/stderr")"
  [[ $(tail -c 1 "$work/stderr" | od -An -c | tr -d ' ') == '\n' ]] ||
    fail "SIGINT left the line unfinished: $(cat -v "$work/stderr")"
  [[ -e $out ]] && fail "a region appeared after SIGINT"
  assert_no_temp
}

# Builds the committed sample regions and checks that each holds what its
# sources list, in the documented id order.
check_samples() {
  local src=$1
  expect_exit 0 "$builder" -q -o "$work/out/licenses.region" \
    "$src/licenses/manifest.json"
  "$checker" "$work/out/licenses.region" > "$work/licenses" ||
    fail "licenses.region does not check"
  local names
  names=$(grep -o '"name": "[^"]*"' "$src/licenses/manifest.json" |
          sed '1d; s/"name": "//; s/"$//')
  [[ $(tail -n +2 "$work/licenses" | cut -f2) == "$names" ]] ||
    fail "licenses.region layers differ from the manifest"
  expect_exit 0 "$builder" -q -o "$work/out/manuals.region" \
    --from-dir "$src/manuals" --id 2 --name manuals
  "$checker" "$work/out/manuals.region" > "$work/manuals" ||
    fail "manuals.region does not check"
  names=$(cd "$src/manuals" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
  [[ $(tail -n +2 "$work/manuals" | cut -f2) == "$names" ]] ||
    fail "manuals.region layers are not the files in sorted order"
  [[ $(tail -n +2 "$work/manuals" | cut -f1 | tr '\n' ' ') == \
     "$(seq 0 $(($(wc -l <<< "$names") - 1)) | tr '\n' ' ')" ]] ||
    fail "manuals.region ids are not 0..n-1"
}

# -o must name a regular file or nothing: anything else is refused before
# any input is read, and left exactly as it was.
check_target() {
  local m=$work/m.json t=$work/out/target
  echo '{"region": {"id": 1, "name": "t"}, "layers": [{"id": 0, "text": "x"}]}' > "$m"
  echo previous > "$work/out/real.region"
  ln -s real.region "$t"
  expect_exit 1 "$builder" -o "$t" "$m"
  grep -qF "$t: is a symbolic link, not a regular file: region-builder replaces only regular files (-o names the link itself" "$work/stderr" ||
    fail "symlink: $(cat "$work/stderr")"
  [[ -L $t && $(cat "$work/out/real.region") == previous ]] ||
    fail "the symlink or its target changed"
  # A dangling link is refused too (rename would replace the link).
  rm "$t" && ln -s nowhere.region "$t"
  expect_exit 1 "$builder" -o "$t" "$m"
  [[ -L $t && ! -e $work/out/nowhere.region ]] || fail "dangling link replaced"
  rm "$t" && mkfifo "$t"
  expect_exit 1 "$builder" -o "$t" --jsonl "$m" --id 1 --name t
  grep -qF "$t: is a FIFO, not a regular file" "$work/stderr" ||
    fail "FIFO: $(cat "$work/stderr")"
  [[ -p $t ]] || fail "the FIFO was replaced"
  rm "$t" && mkdir "$t"
  expect_exit 1 "$builder" -o "$t" "$m"
  grep -qF "$t: is a directory, not a regular file" "$work/stderr" ||
    fail "directory: $(cat "$work/stderr")"
  expect_exit 1 "$builder" -o /dev/null "$m"
  grep -qF "/dev/null: is a character device, not a regular file" \
    "$work/stderr" || fail "device: $(cat "$work/stderr")"
  [[ -c /dev/null ]] || fail "/dev/null is no longer a device"
  [[ -z $(find "$work/out" -name '.*tmp-*') ]] || fail "temporary file left"
  # A regular file is replaced, as before.
  expect_exit 0 "$builder" -o "$work/out/real.region" "$m"
  "$checker" "$work/out/real.region" > /dev/null || fail "no region written"
}

# In a store's directory region-builder takes the store's writer lock, as a
# store process does for its first write (the CLI's *_locked cases hold it
# the same way, with flock(1) and a pid written into the file).
check_store_lock() {
  local m=$work/m.json st=$work/out/store in=$work/in pid rc
  command -v flock > /dev/null || { echo "SKIP: no flock(1)"; exit 77; }
  mkdir -p "$st" "$in"
  echo '{"region": {"id": 1, "name": "t"}, "layers": [{"id": 0, "text": "x"}]}' > "$m"
  echo 4242 > "$st/.strata.lock"
  expect_exit 1 flock "$st/.strata.lock" "$builder" -o "$st/t.region" "$m"
  grep -qF "$st: store is locked by pid 4242 (STRATA_E_LOCKED)" "$work/stderr" ||
    fail "locked store: $(cat "$work/stderr")"
  [[ -e $st/t.region ]] && fail "a region was written into a locked store"
  [[ -z $(find "$st" -name '.*tmp-*') ]] || fail "temporary file left"
  # Free: it builds, and holds the lock while it does. A build blocked on a
  # FIFO shows it: once the lock file names the builder's pid (written
  # after the flock is taken), flock -n fails until the build ends. The
  # FIFO is held open read-write here, so the builder's open never blocks;
  # it is closed only once the builder has opened it too, or the data
  # written into it would go with it.
  expect_exit 0 "$builder" -o "$st/t.region" "$m"
  "$checker" "$st/t.region" > /dev/null || fail "no region written"
  mkfifo "$in/fifo"
  cat > "$in/manifest.json" <<'JSON'
{"region": {"id": 1, "name": "t"},
 "layers": [{"id": 0, "text": "first"}, {"id": 1, "file": "fifo"}]}
JSON
  exec 3<> "$in/fifo"
  : > "$st/.strata.lock" # no stale pid that the new builder's could equal
  "$builder" -q -o "$st/t.region" "$in/manifest.json" \
    > "$work/stdout" 2> "$work/stderr" 3>&- &
  pid=$! child=$!
  wait_store_locked "$pid" "$st"
  flock -n "$st/.strata.lock" true && fail "the lock is free during the build"
  wait_fifo_open "$pid" "$in/fifo"
  flock -n "$st/.strata.lock" true && fail "the lock is free during the build"
  printf 'second' >&3
  exec 3>&-
  wait "$pid"
  rc=$? child=
  [[ $rc -eq 0 ]] || fail "the blocked build failed: $(cat "$work/stderr")"
  flock -n "$st/.strata.lock" true || fail "the lock is still held"
  # Layer 1, the FIFO's: 6 bytes ("second").
  [[ $("$checker" "$st/t.region" | awk -F'\t' '$1 == 1 {print $3}') == 6 ]] ||
    fail "the FIFO's layer is missing: $("$checker" "$st/t.region")"
}

case $mode in
  valid) check_valid "$arg" ;;
  invalid) check_invalid "$arg" ;;
  usage) check_usage ;;
  interrupt) check_interrupt "$arg" ;;
  progress) check_progress ;;
  samples) check_samples "$arg" ;;
  target) check_target ;;
  store_lock) check_store_lock ;;
  *) fail "unknown mode $mode" ;;
esac
echo PASS
