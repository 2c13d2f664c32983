/* A store's remote: attached by strata_store_open (src/strata.c) when the
 * config names one, detached before the store closes; the public entry
 * points strata_remote_publish, _sync and _stats_get; the figures the
 * state dump and the metrics report. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_internal.h"
#include "store/store_internal.h"

/* ---- attach and detach --------------------------------------------------- */

static void remote_free(struct strata__remote *r) {
  strata__rconn_close(r->conn);
  pthread_mutex_destroy(&r->op_mu);
  pthread_mutex_destroy(&r->stats_mu);
  free(r);
}

int strata__remote_attach(strata_store *s, const strata_remote_config *config,
                          struct strata__remote **out) {
  *out = NULL;
  if (config->role == STRATA_REMOTE_NONE)
    return 0;
  STRATA__FAIL_IF(config->role == STRATA_REMOTE_FOLLOWER &&
                      (s->config.flags & STRATA_STORE_READ_ONLY),
                  STRATA_E_INVAL,
                  "%s: a follower writes its directory (the files of each "
                  "version): STRATA_STORE_READ_ONLY does not go with role "
                  "FOLLOWER",
                  s->dir);
  struct strata__remote *r = calloc(1, sizeof *r);
  if (r == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: remote: allocating", s->dir);
  r->store = s;
  r->role = config->role;
  r->stats.role = config->role;
  pthread_mutex_init(&r->op_mu, NULL);
  pthread_mutex_init(&r->stats_mu, NULL);
  int rc = strata__rconn_open(config, s->dir, &s->log, &r->conn);
  if (rc == 0 && r->role == STRATA_REMOTE_FOLLOWER) {
    char why[STRATA__REMOTE_LABEL + 16];
    snprintf(why, sizeof why, "follows %s", r->conn->label);
    rc = strata__store_claim(s, why);
    if (rc == 0)
      rc = strata__follower_start(r);
  }
  if (rc != 0) {
    remote_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

void strata__remote_detach(struct strata__remote *r) {
  if (r == NULL)
    return;
  if (r->role == STRATA_REMOTE_FOLLOWER)
    strata__follower_stop(r);
  remote_free(r);
}

/* ---- the public entry points --------------------------------------------- */

static int remote_of(strata_store *s, const char *fn, int role,
                     struct strata__remote **out) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "%s: NULL store", fn);
  struct strata__remote *r = s->remote;
  STRATA__FAIL_IF(r == NULL, STRATA_E_STATE,
                  "%s: %s: the store was opened without a remote "
                  "(strata_store_config.remote)",
                  fn, s->dir);
  STRATA__FAIL_IF(role != STRATA_REMOTE_NONE && r->role != role, STRATA_E_STATE,
                  "%s: %s: %s is not this store's role for %s", fn, s->dir,
                  role == STRATA_REMOTE_PUBLISHER ? "publisher" : "follower",
                  r->conn->label);
  *out = r;
  return 0;
}

int strata_remote_publish(strata_store *store, uint64_t *version) {
  struct strata__remote *r = NULL;
  STRATA__TRY(
      remote_of(store, "strata_remote_publish", STRATA_REMOTE_PUBLISHER, &r));
  pthread_mutex_lock(&r->op_mu);
  int rc = strata__remote_publish(r, version);
  pthread_mutex_unlock(&r->op_mu);
  return rc;
}

int strata_remote_sync(strata_store *store, uint64_t *version) {
  struct strata__remote *r = NULL;
  STRATA__TRY(
      remote_of(store, "strata_remote_sync", STRATA_REMOTE_FOLLOWER, &r));
  /* op_mu is taken inside: the follower's thread syncs too. */
  return strata__follower_sync(r, version);
}

int strata_remote_stats_get(strata_store *store, strata_remote_stats *stats) {
  struct strata__remote *r = NULL;
  STRATA__FAIL_IF(stats == NULL, STRATA_E_INVAL,
                  "strata_remote_stats_get: NULL stats");
  STRATA__TRY(
      remote_of(store, "strata_remote_stats_get", STRATA_REMOTE_NONE, &r));
  pthread_mutex_lock(&r->stats_mu);
  *stats = r->stats;
  pthread_mutex_unlock(&r->stats_mu);
  return 0;
}
