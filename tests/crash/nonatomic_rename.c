/* LD_PRELOAD shim for the crash tests' self-tests: replaces the atomic
 * rename of a finished region over its final name with what a careless
 * writer would do: remove the old file first, and put the new one under the
 * name only after the time a copy of its content would take (64 KiB pieces,
 * 250 us apart), then remove the source name. A kill in between leaves no
 * region under the final name, which crash_driver must report: the
 * self-tests pass only when it does, so they show that the checks can fail.
 *
 * The new file keeps its inode (a link, not a copy): crystallization checks
 * that the file under a region's name is the one it placed there last time
 * (crystallize.c), and a copy, a new inode, would make every later
 * crystallization of the writer fail with STRATA_E_CONFLICT before the
 * driver could kill it in the window. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int (*renameat_fn)(int, const char *, int, const char *);

static int replace_slowly(int olddirfd, const char *oldpath, int newdirfd,
                          const char *newpath) {
  struct stat st;
  if (fstatat(olddirfd, oldpath, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return -1;
  (void)unlinkat(newdirfd, newpath, 0);
  for (off_t done = 0; done < st.st_size || done == 0; done += 1 << 16) {
    struct timespec ts = {0, 250000};
    nanosleep(&ts, NULL);
  }
  if (linkat(olddirfd, oldpath, newdirfd, newpath, 0) != 0)
    return -1;
  return unlinkat(olddirfd, oldpath, 0);
}

__attribute__((visibility("default"))) int
renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
  size_t len = strlen(newpath);
  if (len > 7 && strcmp(newpath + len - 7, ".region") == 0)
    return replace_slowly(olddirfd, oldpath, newdirfd, newpath);
  renameat_fn real = (renameat_fn)dlsym(RTLD_NEXT, "renameat");
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(olddirfd, oldpath, newdirfd, newpath);
}
