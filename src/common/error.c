/* Error codes, their names and messages, and the per-thread detail message. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* Big enough for two paths and a sentence; longer details are truncated. */
#define STRATA__DETAIL_MAX 1024

static _Thread_local char detail[STRATA__DETAIL_MAX];

const char *strata_last_error_detail(void) {
  return detail;
}

void strata__clear_error(void) {
  detail[0] = '\0';
}

static void set_detail(const char *fmt, va_list ap) {
  vsnprintf(detail, sizeof detail, fmt, ap);
}

/* Failures by code, process-wide, for the state dump. Misses (a layer or
 * region not found) are not counted here: they happen on the read path,
 * where a shared counter would cost every reader; the stores count them
 * per reader slot. Failures are rare, so a shared atomic is fine. */
#define ERRNO_SLOTS 256
#define STRATA_SLOTS (STRATA_ERRNO_BAND_FIRST - STRATA_ERRNO_BAND_LAST + 1)
static _Atomic uint64_t errno_counts[ERRNO_SLOTS];
static _Atomic uint64_t strata_counts[STRATA_SLOTS];

static void count_failure(int err) {
  if (err == STRATA_E_NOT_FOUND || err == STRATA_E_NO_REGION)
    return;
  if (err < 0 && err > -ERRNO_SLOTS)
    atomic_fetch_add_explicit(&errno_counts[-err], 1, memory_order_relaxed);
  else if (err <= STRATA_ERRNO_BAND_FIRST && err >= STRATA_ERRNO_BAND_LAST)
    atomic_fetch_add_explicit(&strata_counts[STRATA_ERRNO_BAND_FIRST - err], 1,
                              memory_order_relaxed);
}

size_t strata__error_counts(int *codes, uint64_t *counts, size_t max) {
  size_t n = 0;
  for (int i = 1; i < ERRNO_SLOTS; i++) {
    uint64_t c = atomic_load_explicit(&errno_counts[i], memory_order_relaxed);
    if (c != 0 && n < max) {
      codes[n] = -i;
      counts[n++] = c;
    }
  }
  for (int i = 0; i < STRATA_SLOTS; i++) {
    uint64_t c = atomic_load_explicit(&strata_counts[i], memory_order_relaxed);
    if (c != 0 && n < max) {
      codes[n] = STRATA_ERRNO_BAND_FIRST - i;
      counts[n++] = c;
    }
  }
  return n;
}

int strata__fail(int err, const char *fmt, ...) {
  count_failure(err);
  va_list ap;
  va_start(ap, fmt);
  set_detail(fmt, ap);
  va_end(ap);
  return err;
}

int strata__fail_errno(int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_detail(fmt, ap);
  va_end(ap);
  size_t len = strlen(detail);
  if (len < sizeof detail)
    snprintf(detail + len, sizeof detail - len, ": %s", strerror(errnum));
  int err = errnum > 0 ? -errnum : -EIO;
  count_failure(err);
  return err;
}

const char *strata_strerror(int err) {
  switch (err) {
#define STRATA__ERR_MSG(name, value, msg)                                      \
  case value:                                                                  \
    return msg;
    STRATA_ERRNO_MAP(STRATA__ERR_MSG)
#undef STRATA__ERR_MSG
  case 0:
    return "success";
  default:
    break;
  }
  if (err < 0 && err > STRATA_ERRNO_BAND_FIRST)
    return strerror(-err);
  return "unknown error";
}

const char *strata_err_name(int err) {
  switch (err) {
#define STRATA__ERR_NAME(name, value, msg)                                     \
  case value:                                                                  \
    return "STRATA_E_" #name;
    STRATA_ERRNO_MAP(STRATA__ERR_NAME)
#undef STRATA__ERR_NAME
  case 0:
    return "OK";
  default:
    break;
  }
  if (err < 0 && err > STRATA_ERRNO_BAND_FIRST) {
    const char *name = strerrorname_np(-err);
    if (name != NULL)
      return name;
  }
  return "UNKNOWN";
}

void strata_free(void *p) {
  free(p);
}
