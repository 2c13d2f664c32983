/* The cross-process writer lock: an flock on ".strata.lock" in the store's
 * directory, taken by the first write call of a store (and briefly by an
 * open that cleans up after interrupted writers), with the pid of the
 * holder written into the file for the error message of the others. The
 * lock itself is common/lockfile.c's, which region writers share. A claim
 * (strata__store_claim, the remote follower's) takes it for the store's
 * lifetime and turns this process's write calls away too. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "store/store_internal.h"

int strata__store_try_lock(struct strata_store *s, int *fdp, bool create) {
  return strata__lockfile_try(s->dirfd, s->dir, create, fdp);
}

int strata__store_writable(struct strata_store *s) {
  STRATA__FAIL_IF(s->claimed_by != NULL, STRATA_E_STATE,
                  "%s: %s; it is read-only", s->dir, s->claimed_by);
  return 0;
}

int strata__store_lock(struct strata_store *s) {
  STRATA__TRY(strata__store_writable(s));
  if (s->lockfd >= 0)
    return 0;
  STRATA__FAIL_IF(s->config.flags & STRATA_STORE_READ_ONLY, STRATA_E_STATE,
                  "%s: the store was opened read-only", s->dir);
  /* A writer whose first write races a reader's brief cleanup lock retries
   * for a while (STRATA__LOCK_RETRY_MS) before reporting the store as
   * locked. */
  bool pid_ok = false;
  int rc = strata__lockfile_take(s->dirfd, s->dir, true, &s->lockfd, &pid_ok);
  if (rc == -EWOULDBLOCK)
    return strata__fail(STRATA_E_LOCKED, "%s: store is locked by pid %ld",
                        s->dir, strata__lockfile_holder(s->dirfd));
  if (rc < 0) /* the detail names the lock file */
    return rc;
  char qd[STRATA__LOG_PATH];
  if (!pid_ok)
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

int strata__store_claim(struct strata_store *s, const char *why) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata__store_claim: NULL");
  STRATA__FAIL_IF(why == NULL || why[0] == '\0', STRATA_E_INVAL,
                  "%s: claiming the store: no reason given", s->dir);
  char *copy = strdup(why);
  if (copy == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: claiming the store", s->dir);
  pthread_mutex_lock(&s->write_mu);
  /* A proto open here would be a writer the claim cannot turn away: its
   * puts were accepted, and its crystallization would change the files
   * under the owner. */
  uint64_t open = strata__store_protos_open(s);
  int rc = s->claimed_by != NULL
               ? strata__fail(STRATA_E_STATE, "%s: already claimed (%s)",
                              s->dir, s->claimed_by)
           : open > 0 ? strata__fail(STRATA_E_STATE,
                                     "%s: %" PRIu64 " proto(s) open; a store "
                                     "can be claimed only with none",
                                     s->dir, open)
                      : strata__store_lock(s);
  if (rc == 0) {
    s->claimed_by = copy; /* from here on, every write call fails */
    copy = NULL;
    char qd[STRATA__LOG_PATH], qw[STRATA__LOG_TEXT];
    strata__log(&s->log, STRATA_LOG_INFO, "store",
                "msg=\"store claimed: write calls refused\" dir=%s why=%s",
                strata__log_quote(qd, sizeof qd, s->dir),
                strata__log_quote(qw, sizeof qw, s->claimed_by));
  }
  pthread_mutex_unlock(&s->write_mu);
  free(copy);
  return rc;
}
