/* Error reporting, output helpers and region opening shared by the
 * subcommands. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/tool_escape.h"
#include "../common/tool_stdout.h"
#include "cli.h"

void cli_vprint_escaped(FILE *f, const char *fmt, va_list ap) {
  tool_vfprintf_escaped(f, fmt, ap);
}

void cli_print_line(FILE *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cli_vprint_escaped(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
}

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("strata: ", stderr);
  cli_vprint_escaped(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return CLI_EXIT_FAIL;
}

void cli_stdout_open(void) {
  tool_stdout_open();
}

int cli_stdout_close(int code) {
  return tool_stdout_finish("strata", code);
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
  return tool_write_all(fd, buf, len);
}

/* Pieces of this size keep each system call short, and a failure names a
 * recent offset. */
#define CONTENT_CHUNK (1u << 20)

int cli_write_content_each(int fd, const void *data, uint64_t size,
                           int (*after)(void *ctx, size_t n), void *ctx) {
  const char *p = data;
  for (uint64_t done = 0; done < size;) {
    uint64_t left = size - done;
    size_t n = left < CONTENT_CHUNK ? (size_t)left : CONTENT_CHUNK;
    int rc = cli_write_all(fd, p + done, n);
    if (rc == 0 && after != NULL)
      rc = after(ctx, n);
    if (rc != 0)
      return rc;
    done += n;
  }
  return 0;
}

int cli_write_content(int fd, const void *data, uint64_t size) {
  return cli_write_content_each(fd, data, size, NULL, NULL);
}

void cli_print_escaped(FILE *f, const char *s, size_t len) {
  tool_fputs_escaped(f, s, len);
}

bool cli_is_text(const void *data, size_t len) {
  const unsigned char *p = data, *end = p + len;
  uint32_t cp;
  for (size_t n; p < end; p += n)
    if ((n = tool_utf8_decode(p, end, &cp)) == 0 || cp == 0)
      return false;
  return true;
}

int cli_read_input(const char *path, char **data, size_t *size) {
  bool is_stdin = strcmp(path, "-") == 0;
  const char *label = is_stdin ? "standard input" : path;
  int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cli_fail("%s: %s", label, strerror(errno));
  size_t cap = 64 * 1024, len = 0;
  char *buf = malloc(cap);
  int err = buf == NULL ? ENOMEM : 0;
  while (err == 0) {
    if (len == cap) {
      char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
      if (bigger == NULL) {
        err = ENOMEM;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      err = errno;
    else if (n == 0)
      break;
    else
      len += (size_t)n;
  }
  if (!is_stdin)
    close(fd);
  if (err != 0) {
    free(buf);
    return cli_fail("%s: %s", label, strerror(err));
  }
  *data = buf;
  *size = len;
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
