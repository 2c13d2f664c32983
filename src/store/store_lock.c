/* The cross-process writer lock: an flock on ".strata.lock" in the store's
 * directory, taken by the first write call of a store (and briefly by an
 * open that cleans up after interrupted writers), with the pid of the
 * holder written into the file for the error message of the others. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "store/store_internal.h"

#define LOCK_NAME ".strata.lock"
/* A writer whose first write races a reader's brief cleanup lock retries
 * for this long before reporting the store as locked. */
#define LOCK_RETRY_MS 200

int strata__store_try_lock(struct strata_store *s, int *fdp, bool create) {
  int fd =
      openat(s->dirfd, LOCK_NAME,
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

static long lock_holder(struct strata_store *s) {
  char buf[32] = {0};
  int fd = openat(s->dirfd, LOCK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  return k > 0 ? strtol(buf, NULL, 10) : -1;
}

int strata__store_lock(struct strata_store *s) {
  if (s->lockfd >= 0)
    return 0;
  STRATA__FAIL_IF(s->config.flags & STRATA_STORE_READ_ONLY, STRATA_E_STATE,
                  "%s: the store was opened read-only", s->dir);
  int rc = -EWOULDBLOCK;
  for (int i = 0; i < LOCK_RETRY_MS / 5 && rc == -EWOULDBLOCK; i++) {
    rc = strata__store_try_lock(s, &s->lockfd, true);
    if (rc == -EWOULDBLOCK) {
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
  if (rc == -EWOULDBLOCK)
    return strata__fail(STRATA_E_LOCKED, "%s: store is locked by pid %ld",
                        s->dir, lock_holder(s));
  if (rc < 0)
    return strata__fail_errno(-rc, "%s/%s: taking the writer lock", s->dir,
                              LOCK_NAME);
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  char qd[STRATA__LOG_PATH];
  if (ftruncate(s->lockfd, 0) != 0 ||
      pwrite(s->lockfd, pid, (size_t)len, 0) != len)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"could not record the pid in the lock file\" dir=%s",
                strata__log_quote(qd, sizeof qd, s->dir));
  /* We are the only writer now: whatever temporary files exist belong to
   * writers that died. And another process may have crystallized since
   * this store opened: refresh, so that protos build on the files as they
   * are (a proto on a stale file would undo that process's change). */
  char **names = NULL;
  size_t n = 0;
  if (strata__store_list(s, true, &names, &n) == 0)
    strata__store_names_free(names, n);
  int rrc = strata__store_refresh_locked(s);
  if (rrc < 0) {
    close(s->lockfd);
    s->lockfd = -1;
    return rrc;
  }
  strata__log(&s->log, STRATA_LOG_INFO, "store",
              "msg=\"writer lock taken\" dir=%s pid=%ld",
              strata__log_quote(qd, sizeof qd, s->dir), (long)getpid());
  return 0;
}
