/* A store's remote's figures (strata_remote_stats), kept under stats_mu:
 * updated by the publisher and the follower, read by
 * strata_remote_stats_get (remote.c) for the state dump and the metrics.
 * A file of its own, below remote.c and the parts it calls, so that the
 * calls between the remote's files go one way (tools/check_layers.py). */
#include <jansson.h>
#include <stdio.h>

#include "common/json_check.h"
#include "remote/remote_internal.h"

void strata__remote_note_failure(struct strata__remote *r) {
  pthread_mutex_lock(&r->stats_mu);
  snprintf(r->stats.last_error, sizeof r->stats.last_error, "%s",
           strata_last_error_detail());
  r->stats.sync_failures++;
  pthread_mutex_unlock(&r->stats_mu);
}

void strata__remote_note_success(struct strata__remote *r, uint64_t took_ms) {
  pthread_mutex_lock(&r->stats_mu);
  r->stats.last_error[0] = '\0';
  r->stats.last_sync_ms = took_ms;
  r->stats.last_success_unix_ms = strata__unix_ms();
  pthread_mutex_unlock(&r->stats_mu);
}

void strata__remote_add(struct strata__remote *r, uint64_t *counter,
                        uint64_t n) {
  pthread_mutex_lock(&r->stats_mu);
  *counter += n;
  pthread_mutex_unlock(&r->stats_mu);
}

void strata__remote_set_versions(struct strata__remote *r, uint64_t served,
                                 uint64_t seen) {
  pthread_mutex_lock(&r->stats_mu);
  r->stats.version_served = served;
  if (seen > r->stats.version_seen)
    r->stats.version_seen = seen;
  pthread_mutex_unlock(&r->stats_mu);
}

/* ---- the state dump ------------------------------------------------------ */

struct json_t *strata__remote_json(struct strata__remote *r) {
  strata_remote_stats st;
  pthread_mutex_lock(&r->stats_mu);
  st = r->stats;
  pthread_mutex_unlock(&r->stats_mu);
  uint64_t lag = st.version_seen > st.version_served
                     ? st.version_seen - st.version_served
                     : 0;
  /* The error detail was cut to fit (possibly inside a UTF-8 sequence)
   * and may quote a path that is not UTF-8 at all; json_string() refuses
   * such text, which would fail the whole dump: bytes of an invalid text
   * above 0x7f become '?'. */
  if (!strata__utf8_valid(st.last_error, strlen(st.last_error)))
    for (char *p = st.last_error; *p; p++)
      if ((unsigned char)*p > 0x7f)
        *p = '?';
  return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
                   "pool", r->conn->cfg.pool, "name", r->conn->cfg.name, "role",
                   r->role == STRATA_REMOTE_FOLLOWER ? "follower" : "publisher",
                   "version_served", (json_int_t)st.version_served,
                   "version_seen", (json_int_t)st.version_seen, "lag_versions",
                   (json_int_t)lag, "last_sync_ms", (json_int_t)st.last_sync_ms,
                   "bytes_fetched", (json_int_t)st.bytes_fetched,
                   "bytes_uploaded", (json_int_t)st.bytes_uploaded,
                   "sync_failures", (json_int_t)st.sync_failures, "last_error",
                   st.last_error[0] ? json_string(st.last_error) : json_null());
}
