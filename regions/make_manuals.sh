#!/bin/bash
# Regenerates regions/manuals/: a few coreutils, sed and grep manual pages
# rendered to plain text (72 columns) from the pages Debian ships. The
# rendered text is committed, so building the region does not depend on the
# build machine's man pages. The pages are GPL-3+ (see each page's COPYRIGHT
# section) and may be redistributed.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf manuals && mkdir -p manuals/coreutils manuals/text-tools
render() { MANWIDTH=72 man -P cat 1 "$1" 2>/dev/null | col -bx; }
for page in cat head tail wc sort uniq; do
  render "$page" > "manuals/coreutils/$page.txt"
done
render sed > manuals/text-tools/sed.txt
render tr > manuals/text-tools/tr.txt
