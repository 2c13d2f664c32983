/* Error reporting, output helpers and region opening shared by the
 * subcommands. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("strata: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_FAIL;
}

int cli_fail_lib(int rc) {
  const char *detail = strata_last_error_detail();
  if (detail[0] != '\0')
    return cli_fail("%s", detail);
  return cli_fail("%s", strata_strerror(rc));
}

const char *cli_detail_without_path(const char *path) {
  const char *detail = strata_last_error_detail();
  size_t n = strlen(path);
  if (strncmp(detail, path, n) == 0 && detail[n] == ':' && detail[n + 1] == ' ')
    return detail + n + 2;
  return detail;
}

int cli_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

const char *cli_hex64(uint64_t v, char buf[17]) {
  snprintf(buf, 17, "%016" PRIx64, v);
  return buf;
}

strata_region *cli_open_region_guarded(const char *path, unsigned flags) {
  strata_region *r = NULL;
  cli_bus_arm();
  int rc = strata_region_open(path, flags, &r);
  if (rc < 0) {
    cli_bus_disarm();
    cli_fail_lib(rc);
    return NULL;
  }
  return r;
}
