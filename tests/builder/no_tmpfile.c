/* LD_PRELOAD shim for the interruption tests: makes openat(..., O_TMPFILE)
 * fail with EOPNOTSUPP, as on a file system without O_TMPFILE, so that the
 * writer falls back to a visible ".NAME.strata-tmp-XXXXXXXX" file. The tests
 * then check that region-builder's signal handler removes that file. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

typedef int (*openat_fn)(int, const char *, int, ...);

/* Refuses O_TMPFILE, forwards everything else to the real `sym`. */
static int intercept(const char *sym, int dirfd, const char *path, int flags,
                     mode_t mode) {
  if ((flags & O_TMPFILE) == O_TMPFILE) {
    errno = EOPNOTSUPP;
    return -1;
  }
  openat_fn real = (openat_fn)dlsym(RTLD_NEXT, sym);
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(dirfd, path, flags, mode);
}

/* The mode argument is only passed (and only readable) with these flags. */
#define MODE_ARG(flags, mode)                                                  \
  do {                                                                         \
    va_list ap;                                                                \
    va_start(ap, flags);                                                       \
    if (((flags)&O_CREAT) || ((flags)&O_TMPFILE) == O_TMPFILE)                 \
      (mode) = (mode_t)va_arg(ap, int);                                        \
    va_end(ap);                                                                \
  } while (0)

/* glibc's fcntl.h may route openat() to openat64(): interpose both. */
__attribute__((visibility("default"))) int openat(int dirfd, const char *path,
                                                  int flags, ...) {
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  return intercept("openat", dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char *path,
                                                    int flags, ...) {
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  return intercept("openat64", dirfd, path, flags, mode);
}
