/* LD_PRELOAD shim for the cases that need something to happen at an exact
 * point inside strata, which no outside process can time:
 *
 * - the SIGBUS cases: after strata_region_open() has mapped and validated
 *   a file, truncate that file to $STRATA_SHIM_TRUNCATE_TO bytes, as
 *   another process might. The next read of the mapping past the new end
 *   raises SIGBUS, deterministically, which is what the CLI must report
 *   instead of crashing;
 * - the interrupt cases (Ctrl-C during strata dump): raise SIGINT in the
 *   process right after strata_region_open() returns when
 *   $STRATA_SHIM_SIGINT_AFTER_OPEN is set, or as the Nth fsync() begins
 *   (counting from 1) when $STRATA_SHIM_SIGINT_AT_FSYNC is N. The signal is
 *   real and handled by strata's own handler; only its timing is fixed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "strata.h"

typedef int (*open_fn)(const char *, unsigned, strata_region **);
typedef int (*fsync_fn)(int);

/* The next definition of `name` after this library's, or abort. */
static void *next(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (f == NULL) {
    fprintf(stderr, "truncate_shim: %s not found\n", name);
    abort();
  }
  return f;
}

/* The visibility attribute: the project builds with hidden visibility, and
 * the interposed symbol must be exported to take the library's place. */
__attribute__((visibility("default"))) int
strata_region_open(const char *path, unsigned flags, strata_region **out) {
  open_fn real = (open_fn)(uintptr_t)next("strata_region_open");
  int rc = real(path, flags, out);
  const char *to = getenv("STRATA_SHIM_TRUNCATE_TO");
  if (rc == 0 && to != NULL && truncate(path, (off_t)strtoll(to, NULL, 10)))
    perror("truncate_shim: truncate");
  if (getenv("STRATA_SHIM_SIGINT_AFTER_OPEN") != NULL)
    raise(SIGINT);
  return rc;
}

__attribute__((visibility("default"))) int fsync(int fd) {
  static long calls;
  fsync_fn real = (fsync_fn)(uintptr_t)next("fsync");
  const char *at = getenv("STRATA_SHIM_SIGINT_AT_FSYNC");
  if (at != NULL && ++calls == strtol(at, NULL, 10))
    raise(SIGINT);
  return real(fd);
}
