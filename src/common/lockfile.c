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
#include <time.h>
#include <unistd.h>

#include "common/lockfile.h"

int strata__lockfile_try(int dirfd, bool create, int *fdp) {
  int fd =
      openat(dirfd, STRATA__LOCK_FILE,
             O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0644);
  if (fd < 0)
    return -errno;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  *fdp = fd;
  return 0;
}

int strata__lockfile_take(int dirfd, bool create, int *fdp, bool *pid_ok) {
  int rc = -EWOULDBLOCK;
  for (int i = 0; i < STRATA__LOCK_RETRY_MS / 5 && rc == -EWOULDBLOCK; i++) {
    rc = strata__lockfile_try(dirfd, create, fdp);
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
  int fd = openat(dirfd, STRATA__LOCK_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  return k > 0 ? strtol(buf, NULL, 10) : -1;
}
