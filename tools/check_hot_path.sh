#!/usr/bin/env bash
# The read path's lookup functions (src/region/region.h) must be inlined
# into every object that uses them: an out-of-line copy means the hot path
# of a get makes a call, which cost the store's lean read 1.4-2x the
# region's once GCC stopped inlining strata__region_find (issue 18). An
# outlined static function leaves a local symbol in its object file, so
# the check reads the objects' symbol tables (nm); nothing is timed.
# Usage: check_hot_path.sh OBJECTS_DIR   (CMakeFiles/strata_objects.dir/src)
set -euo pipefail
dir=${1:?usage: check_hot_path.sh OBJECTS_DIR}
funcs='strata__entry_checked|strata__entry_ok|strata__region_find_in|strata__region_find|strata__pipe_start|strata__pipe_slot|strata__pipe_finish|strata__layer_from_entry'
objs=$(find "$dir" -name '*.o' | sort)
[ -n "$objs" ] || { echo "check_hot_path: no object files under $dir" >&2; exit 2; }
bad=0
for o in $objs; do
  if out=$(nm "$o" | grep -E " [tT] ($funcs)(\.[a-z0-9.]+)?$"); then
    echo "check_hot_path: ${o#"$dir"/}: out-of-line copy of: $(awk '{print $3}' <<<"$out" | tr '\n' ' ')" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] && echo "check_hot_path: $(wc -w <<<"$objs") objects, the lookup functions inlined everywhere"
exit "$bad"
