/* Error reporting, output helpers and region opening shared by the
 * subcommands. */
/* fopencookie(): standard output as a stream that remembers why a write
 * failed (see cli_stdout_open()). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/tool_escape.h"
#include "cli.h"

void cli_vprint_escaped(FILE *f, const char *fmt, va_list ap) {
  char small[512];
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  char *text = small;
  if (n >= (int)sizeof small && (text = malloc((size_t)n + 1)) != NULL)
    vsnprintf(text, (size_t)n + 1, fmt, again);
  va_end(again);
  if (text == NULL) /* out of memory: the part that fit, escaped still */
    text = small;
  if (n > 0)
    tool_fputs_escaped(f, text, strlen(text));
  if (text != small)
    free(text);
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

/* The errno of the first failed write to standard output (or of closing
 * it), 0 while none failed. stdio keeps only an error flag, and errno is
 * overwritten by whatever runs between a failed fputs() deep inside a
 * command and the check at the end of main(): the stream of
 * cli_stdout_open() records it where it happens. */
static int stdout_errno;
static bool stdout_wrapped;

static ssize_t stdout_write(void *cookie, const char *buf, size_t len) {
  (void)cookie;
  int rc = cli_write_all(STDOUT_FILENO, buf, len);
  if (rc < 0) {
    if (stdout_errno == 0)
      stdout_errno = -rc;
    errno = -rc;
    return 0; /* fopencookie(3): 0 reports an error */
  }
  return (ssize_t)len;
}

static int stdout_close(void *cookie) {
  (void)cookie;
  /* Where the data is written back at close (NFS), close() reports the
   * failure. EBADF: standard output was never open; a write would have
   * failed already, and a command that writes nothing does not care. */
  if (close(STDOUT_FILENO) != 0 && errno != EBADF && errno != EINTR) {
    if (stdout_errno == 0)
      stdout_errno = errno;
    return EOF;
  }
  return 0;
}

void cli_stdout_open(void) {
  FILE *f = fopencookie(
      NULL, "w",
      (cookie_io_functions_t){.write = stdout_write, .close = stdout_close});
  if (f == NULL)
    return; /* out of memory: the plain stream, with a vaguer message */
  /* What the plain stream would do: lines at once to a terminal (so that
   * output and messages on stderr keep their order there), blocks
   * otherwise. */
  if (isatty(STDOUT_FILENO))
    setvbuf(f, NULL, _IOLBF, 0);
  stdout = f;
  stdout_wrapped = true;
}

int cli_stdout_close(int code) {
  int err = 0;
  if (fflush(stdout) != 0 || ferror(stdout))
    err = stdout_wrapped && stdout_errno != 0 ? stdout_errno
          : errno != 0                        ? errno
                                              : EIO;
  if (fclose(stdout) != 0 && err == 0)
    err = stdout_wrapped && stdout_errno != 0 ? stdout_errno : errno;
  if (err == 0)
    return code;
  cli_fail("writing to standard output: %s", strerror(err));
  return code == CLI_EXIT_OK ? CLI_EXIT_FAIL : code;
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
