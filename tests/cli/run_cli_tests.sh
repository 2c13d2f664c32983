#!/usr/bin/env bash
# Runs the CLI test cases in cases/, one directory per case (format:
# README.md in this directory).
#
#   run_cli_tests.sh --strata BIN --make-fixture BIN --shim SO --cases DIR
#                    --work DIR --version X.Y.Z [CASE...]
#
# With CASE names, runs only those. Every failing case is named with what
# differed; the exit status is 1 when any case failed.
set -u

strata= make_fixture= shim= cases= work= version=
while [ $# -gt 0 ]; do
  case "$1" in
    --strata) strata=$2; shift 2 ;;
    --make-fixture) make_fixture=$2; shift 2 ;;
    --shim) shim=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "run_cli_tests.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
for v in strata make_fixture shim cases work version; do
  if [ -z "${!v}" ]; then
    echo "run_cli_tests.sh: --${v//_/-} is required" >&2
    exit 2
  fi
done

# The store commands log at the level $STRATA_LOG names (to standard
# error): the cases expect the default, WARN, whatever the caller's
# environment says.
unset STRATA_LOG

# Cases run in their own directory: every path must be absolute.
for v in strata make_fixture shim cases work; do
  printf -v "$v" '%s' "$(realpath -m -- "${!v}")"
done

# A fresh work directory: fixtures, and one scratch directory per case.
rm -rf "$work"
fixtures=$work/fixtures
mkdir -p "$fixtures" || exit 1
if ! "$make_fixture" "$fixtures"; then
  echo "FAIL: make_fixture could not build the test regions" >&2
  exit 1
fi

# Replaces the placeholders in $1 and prints the result.
expand() {
  local s=$1
  s=${s//@STRATA@/$strata}
  s=${s//@FIXTURES@/$fixtures}
  s=${s//@WORK@/$case_work}
  s=${s//@SHIM@/$shim}
  s=${s//@VERSION@/$version}
  printf '%s' "$s"
}

# expand_file IN OUT: expand() on a whole file, trailing newlines kept
# (a command substitution would strip them).
expand_file() {
  local s
  s=$(cat -- "$1"; printf x)
  expand "${s%x}" >"$2"
}

# check_substrings FILE ACTUAL LABEL: every non-empty line of FILE (after
# expansion) must occur in the file ACTUAL.
check_substrings() {
  local line ok=0
  while IFS= read -r line || [ -n "$line" ]; do
    [ -z "$line" ] && continue
    line=$(expand "$line")
    if ! grep -qF -- "$line" "$2"; then
      problems+=("$3 lacks: $line")
      ok=1
    fi
  done <"$1"
  return $ok
}

# check_stream DIR ACTUAL LABEL EXACT SUBS: compare a captured stream with
# DIR/out or DIR/err (exact) or DIR/outsub or DIR/errsub (substrings); with
# neither, it must be empty.
check_stream() {
  local base=$1 actual=$2 label=$3 exact=$4 subs=$5
  if [ -f "$base/$exact" ] && [ -f "$base/$subs" ]; then
    problems+=("$base has both $exact and $subs: keep one")
  elif [ -f "$base/$exact" ]; then
    expand_file "$base/$exact" "$case_work/expected.$exact"
    if ! cmp -s "$case_work/expected.$exact" "$actual"; then
      problems+=("$label differs:"$'\n'"$(diff -u "$case_work/expected.$exact" "$actual" | head -40)")
    fi
  elif [ -f "$base/$subs" ]; then
    check_substrings "$base/$subs" "$actual" "$label"
  elif [ -s "$actual" ]; then
    problems+=("$label should be empty but is:"$'\n'"$(head -c 2000 "$actual")")
  fi
}

if [ $# -gt 0 ]; then
  names=("$@")
else
  # Every directory is a case: one that lacks cmd or code fails below
  # rather than being skipped.
  names=()
  for d in "$cases"/*/; do
    d=${d%/}
    names+=("${d##*/}")
  done
  if [ ${#names[@]} -eq 0 ]; then
    echo "FAIL: no case directories in $cases" >&2
    exit 1
  fi
fi

failed=()
for name in "${names[@]}"; do
  base=$cases/$name
  case_work=$work/cases/$name
  mkdir -p "$case_work"
  if [ ! -f "$base/cmd" ] || [ ! -f "$base/code" ]; then
    echo "FAIL $name: $base/cmd and $base/code are both required"
    failed+=("$name")
    continue
  fi
  # A file the runner does not know (a misspelt "out", say) would be
  # ignored silently, and its stream then expected to be empty: refuse it.
  unknown=()
  for f in "$base"/* "$base"/.[!.]*; do
    [ -e "$f" ] || continue
    case ${f##*/} in
      cmd | code | out | outsub | err | errsub) ;;
      *) unknown+=("${f##*/}") ;;
    esac
  done
  if [ ${#unknown[@]} -gt 0 ]; then
    echo "FAIL $name: unknown file(s) in $base: ${unknown[*]}"
    failed+=("$name")
    continue
  fi
  cmd=$(expand "$(cat -- "$base/cmd")")
  want_code=$(tr -d ' \n' <"$base/code")
  (cd "$case_work" && bash -o pipefail -c "$cmd") \
    >"$case_work/stdout" 2>"$case_work/stderr"
  code=$?
  problems=()
  [ "$code" = "$want_code" ] ||
    problems+=("exit code $code, expected $want_code")
  check_stream "$base" "$case_work/stdout" stdout out outsub
  check_stream "$base" "$case_work/stderr" stderr err errsub
  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok   $name"
    continue
  fi
  failed+=("$name")
  echo "FAIL $name"
  echo "  command: $cmd"
  for p in "${problems[@]}"; do
    printf '%s\n' "$p" | sed 's/^/  /'
  done
  if [ -s "$case_work/stderr" ]; then
    echo "  stderr was:"
    head -c 2000 "$case_work/stderr" | sed 's/^/    /'
  fi
done

echo "${#names[@]} cases, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
