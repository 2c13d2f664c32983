/* Reading a public structure that grows: one whose first field is
 * `uint32_t struct_size`, set by its _init function to the size the caller
 * was compiled with ("Growing structures" in strata.h). */
#ifndef STRATA_STRUCT_SIZE_H
#define STRATA_STRUCT_SIZE_H

#include <stddef.h>

/* Copies the first struct_size bytes of the caller's structure `in` over
 * `out`, which holds the library's defaults, and sets out's struct_size to
 * the library's `size`. A caller compiled against an older, smaller
 * structure so gets the defaults for the fields it does not know; a larger
 * one comes from a newer header, whose fields this library cannot honour,
 * and is refused, as are 0 (not filled by the _init function) and a size
 * that is not a multiple of `align` (every accepted size ends between
 * fields, since a structure that grows keeps no tail padding). `in` NULL
 * leaves the defaults. Errors: STRATA_E_INVAL, with a detail that starts
 * with `who` (a path) and names `type` and its _init function. Reads no
 * byte of `in` past its struct_size. */
int strata__read_sized(const char *who, const char *type, void *out,
                       size_t size, size_t align, const void *in);

/* strata__read_sized() for a structure type named in the source, so that
 * the name in the detail is the type's own. */
#define STRATA__READ_SIZED(who, type, out, in)                                 \
  strata__read_sized((who), #type, (out), sizeof(type), _Alignof(type), (in))

#endif /* STRATA_STRUCT_SIZE_H */
