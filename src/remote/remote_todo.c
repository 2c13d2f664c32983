/* TEMPORARY, while issue 17's parts are written in parallel: the parts
 * whose file is not in the tree yet (CMake defines STRATA__TODO_* for
 * each missing one) fail with STRATA_E_STATE. Removed when they land. */
#include "remote/remote_internal.h"

#define TODO(fn) strata__fail(STRATA_E_STATE, "%s: not written yet", fn)

#ifdef STRATA__TODO_PUBLISH
int strata__publock_take(strata__rconn *c, strata__publock **out) {
  (void)c;
  *out = NULL;
  return TODO("strata__publock_take");
}
int strata__publock_check(const strata__publock *l) {
  (void)l;
  return TODO("strata__publock_check");
}
uint64_t strata__publock_fence(const strata__publock *l) {
  (void)l;
  return 0;
}
void strata__publock_release(strata__publock *l) {
  (void)l;
}
int strata__remote_publish(struct strata__remote *r, uint64_t *version) {
  (void)r;
  (void)version;
  return TODO("strata_remote_publish");
}
#endif

#ifdef STRATA__TODO_FOLLOW
int strata__follower_start(struct strata__remote *r) {
  (void)r;
  return TODO("follower");
}
void strata__follower_stop(struct strata__remote *r) {
  (void)r;
}
int strata__follower_sync(struct strata__remote *r, uint64_t *version) {
  (void)r;
  (void)version;
  return TODO("strata_remote_sync");
}
#endif

#ifdef STRATA__TODO_ADMIN
int strata_remote_connect(const strata_remote_config *config,
                          strata_remote **out) {
  (void)config;
  *out = NULL;
  return TODO("strata_remote_connect");
}
void strata_remote_disconnect(strata_remote *remote) {
  (void)remote;
}
int strata_remote_describe(strata_remote *remote, int regions, char **json) {
  (void)remote;
  (void)regions;
  *json = NULL;
  return TODO("strata_remote_describe");
}
int strata_remote_gc(strata_remote *remote, unsigned keep, int verify,
                     strata_remote_gc_result *out) {
  (void)remote;
  (void)keep;
  (void)verify;
  (void)out;
  return TODO("strata_remote_gc");
}
int strata_remote_unlock(strata_remote *remote, char **holder) {
  (void)remote;
  *holder = NULL;
  return TODO("strata_remote_unlock");
}
#endif
