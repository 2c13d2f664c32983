/* LD_PRELOAD shim for the crash tests' self-tests: replaces the atomic
 * rename of a finished region over its final name with what a careless
 * writer would do: remove the old file, create the new name and copy the
 * content into it in 64 KiB pieces, 250 µs apart, then remove the source.
 * A kill during the copy leaves a partial region under the final name (or
 * none at all), which crash_driver must report: the self-tests pass only
 * when it does, so they show that the checks can fail. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*renameat_fn)(int, const char *, int, const char *);

static int copy_over(int olddirfd, const char *oldpath, int newdirfd,
                     const char *newpath) {
  int in = openat(olddirfd, oldpath, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return -1;
  (void)unlinkat(newdirfd, newpath, 0);
  int out =
      openat(newdirfd, newpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (out < 0) {
    close(in);
    return -1;
  }
  static char buf[1 << 16];
  ssize_t k;
  while ((k = read(in, buf, sizeof buf)) > 0) {
    if (write(out, buf, (size_t)k) != k)
      break;
    struct timespec ts = {0, 250000};
    nanosleep(&ts, NULL);
  }
  close(in);
  close(out);
  return k == 0 ? unlinkat(olddirfd, oldpath, 0) : -1;
}

__attribute__((visibility("default"))) int
renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
  size_t len = strlen(newpath);
  if (len > 7 && strcmp(newpath + len - 7, ".region") == 0)
    return copy_over(olddirfd, oldpath, newdirfd, newpath);
  renameat_fn real = (renameat_fn)dlsym(RTLD_NEXT, "renameat");
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(olddirfd, oldpath, newdirfd, newpath);
}
