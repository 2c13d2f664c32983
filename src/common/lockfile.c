/* The cross-process writer lock of a store's directory (lockfile.h). flock()
 * rather than fcntl() record locks: flock locks belong to the open file, so
 * a second handle in the same process is refused like another process would
 * be, and closing an unrelated descriptor of the same file (fcntl's trap)
 * does not drop the lock. The lock is advisory: it binds only the writers
 * that take it, which is why crystallization also checks the file it
 * replaces (store/crystallize.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "common/lockfile.h"

/* Fails with -errno, the detail naming the lock file. */
static int lock_fail(int e, const char *dir) {
  return strata__fail_errno(e, "%s/%s: taking the writer lock", dir,
                            STRATA__LOCK_FILE);
}

/* Refuses a lock file that is not a regular file (STRATA_E_INVAL, naming
 * `dir` and the type). */
static int refuse_type(const char *dir, mode_t mode) {
  return strata__fail(STRATA_E_INVAL,
                      "%s/%s: %s, not a regular file: the writer lock "
                      "must be one (remove it)",
                      dir, STRATA__LOCK_FILE, strata__file_type_name(mode));
}

/* Opens DIRFD/.strata.lock, never blocking and never through a symlink
 * (ELOOP): a FIFO there would block a read-only open until a writer came,
 * for ever, and a device or socket is no place for a pid. The type is
 * looked at before the open (lstat), so a device node is never opened
 * (opening one may act: a tape rewinds, a terminal becomes ours), and
 * again after it, for a file replaced in between. O_NONBLOCK changes
 * nothing for a regular file. -ENOENT without a detail when the file does
 * not exist and `flags` does not create it; every other failure sets the
 * detail. */
static int open_lock(int dirfd, const char *dir, int flags) {
  struct stat st;
  if (fstatat(dirfd, STRATA__LOCK_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode))
      return lock_fail(ELOOP, dir);
    if (!S_ISREG(st.st_mode))
      return refuse_type(dir, st.st_mode);
  } else if (errno != ENOENT) {
    return lock_fail(errno, dir);
  }
  int fd = openat(dirfd, STRATA__LOCK_FILE,
                  flags | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
  if (fd < 0)
    return errno == ENOENT && !(flags & O_CREAT) ? -ENOENT
                                                 : lock_fail(errno, dir);
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return lock_fail(e, dir);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return refuse_type(dir, st.st_mode);
  }
  return fd;
}

int strata__lockfile_try(int dirfd, const char *dir, bool create, int *fdp) {
  int fd = open_lock(dirfd, dir, O_RDWR | (create ? O_CREAT : 0));
  if (fd < 0)
    return fd;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? -EWOULDBLOCK : lock_fail(e, dir);
  }
  *fdp = fd;
  return 0;
}

int strata__lockfile_take(int dirfd, const char *dir, bool create, int *fdp,
                          bool *pid_ok) {
  int rc = -EWOULDBLOCK;
  for (int i = 0; i < STRATA__LOCK_RETRY_MS / 5 && rc == -EWOULDBLOCK; i++) {
    rc = strata__lockfile_try(dirfd, dir, create, fdp);
    if (rc == -EWOULDBLOCK) {
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
  if (rc < 0)
    return rc;
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  *pid_ok = ftruncate(*fdp, 0) == 0 && pwrite(*fdp, pid, (size_t)len, 0) == len;
  return 0;
}

long strata__lockfile_holder(int dirfd) {
  char buf[32] = {0};
  struct stat st;
  if (fstatat(dirfd, STRATA__LOCK_FILE, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode))
    return -1; /* not opened: see open_lock() */
  int fd = openat(dirfd, STRATA__LOCK_FILE,
                  O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  ssize_t k = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                  ? pread(fd, buf, sizeof buf - 1, 0)
                  : -1;
  close(fd);
  return k > 0 ? strtol(buf, NULL, 10) : -1;
}
