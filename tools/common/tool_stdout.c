/* Standard output that reports a failed write (tool_stdout.h). */
/* fopencookie() is a GNU extension. */
#define _GNU_SOURCE
#include "tool_stdout.h"

#include "tool_progress.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The errno of the first failed write to standard output (or of closing
 * it), 0 while none failed. */
static int stdout_errno;
static bool stdout_wrapped;

int tool_write_all(int fd, const void *buf, size_t len) {
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

static ssize_t stdout_write(void *cookie, const char *buf, size_t len) {
  (void)cookie;
  int rc = tool_write_all(STDOUT_FILENO, buf, len);
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

void tool_stdout_open(void) {
  /* A closed pipe gives EPIPE, handled by tool_stdout_finish() and cat,
   * rather than a death by SIGPIPE at whichever write came first. */
  signal(SIGPIPE, SIG_IGN);
  FILE *f = fopencookie(
      NULL, "w",
      (cookie_io_functions_t){.write = stdout_write, .close = stdout_close});
  if (f == NULL)
    return;
  /* What the plain stream would do: lines at once to a terminal (so that
   * output and messages on stderr keep their order there), blocks
   * otherwise. */
  if (isatty(STDOUT_FILENO))
    setvbuf(f, NULL, _IOLBF, 0);
  stdout = f;
  stdout_wrapped = true;
}

int tool_stdout_close(void) {
  int err = 0;
  errno = 0;
  if (fflush(stdout) != 0 || ferror(stdout))
    err = stdout_wrapped && stdout_errno != 0 ? stdout_errno
          : errno != 0                        ? errno
                                              : EIO;
  if (fclose(stdout) != 0 && err == 0)
    err = stdout_wrapped && stdout_errno != 0 ? stdout_errno
          : errno != 0                        ? errno
                                              : EIO;
  return err;
}

int tool_stdout_finish(const char *prog, int code) {
  int err = tool_stdout_close();
  if (err == 0 || err == EPIPE)
    return code;
  tool_progress_break();
  fprintf(stderr, "%s: writing to standard output: %s\n", prog, strerror(err));
  return code == 0 ? 1 : code;
}
