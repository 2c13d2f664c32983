/* The remote tier's API in a build without librados (STRATA_WITH_RADOS
 * OFF, or librados-dev missing): every call fails with STRATA_E_STATE and
 * says why, and a store config that asks for a remote is refused at open,
 * so that a program written for the tier links everywhere and learns at
 * run time, in words, what its build lacks. */
#include "common/common.h"
#include <jansson.h>

#include "remote/remote.h"

#define NO_RADOS(fn)                                                           \
  strata__fail(STRATA_E_STATE,                                                 \
               "%s: this build of Strata has no RADOS support (built "         \
               "without librados-dev; docs/REMOTE.md)",                        \
               fn)

int strata__remote_attach(strata_store *s, const strata_remote_config *config,
                          struct strata__remote **out) {
  (void)s;
  *out = NULL;
  return config->role == STRATA_REMOTE_NONE ? 0 : NO_RADOS("strata_store_open");
}

void strata__remote_detach(struct strata__remote *r) {
  (void)r;
}

struct json_t *strata__remote_json(struct strata__remote *r) {
  (void)r; /* never attached: nothing to report */
  return json_null();
}

int strata_remote_publish(strata_store *store, uint64_t *version) {
  (void)store;
  (void)version;
  return NO_RADOS("strata_remote_publish");
}

int strata_remote_sync(strata_store *store, uint64_t *version) {
  (void)store;
  (void)version;
  return NO_RADOS("strata_remote_sync");
}

int strata_remote_stats_get(strata_store *store, strata_remote_stats *stats) {
  (void)store;
  (void)stats;
  return NO_RADOS("strata_remote_stats_get");
}

int strata_remote_connect(const strata_remote_config *config,
                          strata_remote **out) {
  (void)config;
  if (out)
    *out = NULL;
  return NO_RADOS("strata_remote_connect");
}

void strata_remote_disconnect(strata_remote *remote) {
  (void)remote;
}

int strata_remote_describe(strata_remote *remote, int regions, char **json) {
  (void)remote;
  (void)regions;
  if (json)
    *json = NULL;
  return NO_RADOS("strata_remote_describe");
}

int strata_remote_gc(strata_remote *remote, unsigned keep, int verify,
                     strata_remote_gc_result *out) {
  (void)remote;
  (void)keep;
  (void)verify;
  (void)out;
  return NO_RADOS("strata_remote_gc");
}

int strata_remote_unlock(strata_remote *remote, char **holder) {
  (void)remote;
  if (holder)
    *holder = NULL;
  return NO_RADOS("strata_remote_unlock");
}
