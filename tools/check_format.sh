#!/usr/bin/env bash
# Fails when a C source or header under version control differs from what
# clang-format makes of it with the checked-in .clang-format; lists them.
#   tools/check_format.sh          check (CI runs this)
#   tools/check_format.sh --fix    reformat those files in place
# The style's version matters: CI uses Debian's clang-format (14).
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
[ "${1:-}" = "--fix" ] && fix=1
command -v clang-format >/dev/null ||
  { echo "check_format: clang-format is not installed" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cu')
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done
if ((${#bad[@]} == 0)); then
  echo "check_format: ${#files[@]} files match .clang-format"
  exit 0
fi
if ((fix)); then
  clang-format -i "${bad[@]}"
  echo "check_format: reformatted ${#bad[@]} files"
  exit 0
fi
printf '%s\n' "${bad[@]}"
echo "check_format: ${#bad[@]} of ${#files[@]} files differ from .clang-format" \
  "(tools/check_format.sh --fix reformats them)" >&2
exit 1
