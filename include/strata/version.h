/* Strata version macros. Included by <strata.h>; do not include directly. */
#ifndef STRATA_VERSION_H
#define STRATA_VERSION_H

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0

#define STRATA_VERSION_HEX                                                     \
  ((STRATA_VERSION_MAJOR << 16) | (STRATA_VERSION_MINOR << 8) |                \
   STRATA_VERSION_PATCH)

/* Version of the region file format this library writes and the newest it
 * reads. A file whose major version is higher is refused with
 * STRATA_E_VERSION; a higher minor version of the same major is readable. */
#define STRATA_FORMAT_VERSION_MAJOR 1
#define STRATA_FORMAT_VERSION_MINOR 0

#endif /* STRATA_VERSION_H */
