/* Strata versions: of the library (macros for the headers compiled against,
 * functions for the library actually linked) and of the file format.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_VERSION_H
#define STRATA_PUBLIC_VERSION_H

#include "strata/types.h"

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 2
#define STRATA_VERSION_PATCH 0

#define STRATA_VERSION_HEX                                                     \
  ((STRATA_VERSION_MAJOR << 16) | (STRATA_VERSION_MINOR << 8) |                \
   STRATA_VERSION_PATCH)

/* Version of the region file format this library writes and the newest it
 * reads. A file whose major version is higher is refused with
 * STRATA_E_VERSION; a higher minor version of the same major is readable.
 * Minor 1 adds delta files (docs/FORMAT.md, "Delta files"); only they are
 * written as 1.1, every other file still as 1.0 so that 1.0 readers open
 * it. */
#define STRATA_FORMAT_VERSION_MAJOR 1
#define STRATA_FORMAT_VERSION_MINOR 1

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the library version as "MAJOR.MINOR.PATCH". Never NULL.
 * Thread-safe. */
STRATA_API const char *strata_version_string(void);
/* Returns STRATA_VERSION_HEX of the library actually linked (compare it with
 * the macro to detect a header/library mismatch). Thread-safe. */
STRATA_API unsigned strata_version(void);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_VERSION_H */
