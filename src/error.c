/* Error codes, their names and messages, and the per-thread detail message. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Big enough for two paths and a sentence; longer details are truncated. */
#define STRATA__DETAIL_MAX 1024

static _Thread_local char detail[STRATA__DETAIL_MAX];

const char *strata_last_error_detail(void) { return detail; }

void strata__clear_error(void) { detail[0] = '\0'; }

static void set_detail(const char *fmt, va_list ap) {
  vsnprintf(detail, sizeof detail, fmt, ap);
}

int strata__fail(int err, const char *fmt, ...) {
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
  return errnum > 0 ? -errnum : -EIO;
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
  if (err < 0 && err > -4000)
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
  if (err < 0 && err > -4000) {
    const char *name = strerrorname_np(-err);
    if (name != NULL)
      return name;
  }
  return "UNKNOWN";
}
