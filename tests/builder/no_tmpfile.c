/* LD_PRELOAD shim for the interruption tests: makes openat(..., O_TMPFILE)
 * fail with EOPNOTSUPP, as on a file system without O_TMPFILE, so that the
 * writer falls back to a visible ".NAME.tmp-XXXXXX" file. The tests then
 * check that region-builder's signal handler removes that file. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

typedef int (*openat_fn)(int, const char *, int, ...);

static int forward(const char *sym, int dirfd, const char *path, int flags,
                   mode_t mode) {
  openat_fn real = (openat_fn)dlsym(RTLD_NEXT, sym);
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(dirfd, path, flags, mode);
}

static mode_t mode_arg(int flags, va_list ap) {
  /* The mode is only passed (and only readable) with these flags. */
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
    return (mode_t)va_arg(ap, int);
  return 0;
}

__attribute__((visibility("default"))) int openat(int dirfd, const char *path,
                                                  int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  if ((flags & O_TMPFILE) == O_TMPFILE) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return forward("openat", dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char *path,
                                                    int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  if ((flags & O_TMPFILE) == O_TMPFILE) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return forward("openat64", dirfd, path, flags, mode);
}
