/* The common layer's declarations every other layer uses: error recording,
 * error-path macros and clocks. Names with the strata__ prefix are visible
 * across files but not exported. */
#ifndef STRATA_COMMON_H
#define STRATA_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/stat.h>
#include <time.h>

#include "strata.h"

#define STRATA__PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Records `err` with a formatted detail message for this thread and
 * returns `err`, so that error paths read `return strata__fail(...)`. */
int strata__fail(int err, const char *fmt, ...) STRATA__PRINTF(2, 3);
/* Same, for an errno value: returns -errnum and appends strerror(errnum). */
int strata__fail_errno(int errnum, const char *fmt, ...) STRATA__PRINTF(2, 3);
void strata__clear_error(void);
/* Failures so far in this process by code (misses excluded): fills up to
 * `max` pairs, returns how many. */
size_t strata__error_counts(int *codes, uint64_t *counts, size_t max);

/* CLOCK_MONOTONIC in nanoseconds, for durations. */
static inline uint64_t strata__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_REALTIME in milliseconds since the epoch, for timestamps. */
static inline uint64_t strata__unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A file type in words, for the errors and log lines that refuse a file
 * because it is not a regular file ("is a FIFO"). */
static inline const char *strata__file_type_name(mode_t mode) {
  return S_ISREG(mode)    ? "a regular file"
         : S_ISDIR(mode)  ? "a directory"
         : S_ISFIFO(mode) ? "a FIFO"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISSOCK(mode) ? "a socket"
         : S_ISLNK(mode)  ? "a symbolic link"
                          : "a file of unknown type";
}

/* Returns early with an error when `cond` holds. */
#define STRATA__FAIL_IF(cond, err, ...)                                        \
  do {                                                                         \
    if (cond)                                                                  \
      return strata__fail((err), __VA_ARGS__);                                 \
  } while (0)

/* Forwards a negative result. */
#define STRATA__TRY(expr)                                                      \
  do {                                                                         \
    int strata__rc = (expr);                                                   \
    if (strata__rc < 0)                                                        \
      return strata__rc;                                                       \
  } while (0)

#endif /* STRATA_COMMON_H */
