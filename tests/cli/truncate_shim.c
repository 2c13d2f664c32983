/* LD_PRELOAD shim for the SIGBUS tests: after strata_region_open() has
 * mapped and validated a file, truncate that file to
 * $STRATA_SHIM_TRUNCATE_TO bytes, as another process might. The next read
 * of the mapping past the new end raises SIGBUS, deterministically, which
 * is what the CLI must report instead of crashing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "strata.h"

typedef int (*open_fn)(const char *, unsigned, strata_region **);

/* The visibility attribute: the project builds with hidden visibility, and
 * the interposed symbol must be exported to take the library's place. */
__attribute__((visibility("default"))) int
strata_region_open(const char *path, unsigned flags, strata_region **out) {
  open_fn real = (open_fn)(uintptr_t)dlsym(RTLD_NEXT, "strata_region_open");
  if (real == NULL) {
    fprintf(stderr, "truncate_shim: strata_region_open not found\n");
    abort();
  }
  int rc = real(path, flags, out);
  const char *to = getenv("STRATA_SHIM_TRUNCATE_TO");
  if (rc == 0 && to != NULL && truncate(path, (off_t)strtoll(to, NULL, 10)))
    perror("truncate_shim: truncate");
  return rc;
}
