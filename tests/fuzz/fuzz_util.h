/* Shared by the fuzz targets: the check that reports a broken promise as a
 * crash, and a scratch directory made once per process. */
#ifndef STRATA_FUZZ_UTIL_H
#define STRATA_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A trap, which libFuzzer reports like a crash, with the input. */
#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond))                                                               \
      __builtin_trap();                                                        \
  } while (0)

/* $TMPDIR/strata-fuzz-NAME-XXXXXX, made on the first call. */
static inline const char *fuzz_scratch_dir(const char *name) {
  static char dir[256];
  if (dir[0] == '\0') {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/strata-fuzz-%s-XXXXXX",
             base && *base ? base : "/tmp", name);
    if (mkdtemp(dir) == NULL)
      abort();
  }
  return dir;
}

#endif /* STRATA_FUZZ_UTIL_H */
