/* The top of the library: the calls that span the layers. Opening a store
 * opens the store (src/store/), then the staging pool (src/staging/) and
 * last the store's remote (src/remote/), if its config names one. The store
 * knows the layers above only through the hooks it offers (the read-sample
 * rings and before_unmap, store/store_internal.h) and the pointers it
 * keeps for them; closing undoes the three in the reverse order. */
#include "remote/remote.h"
#include "staging/staging.h"
#include "store/store_internal.h"

int strata_store_open(const char *dir, const strata_store_config *config,
                      strata_store **out) {
  /* `out` is checked here: the store layer is handed a local. */
  STRATA__FAIL_IF(dir == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_store_open: NULL argument");
  strata_store *s;
  STRATA__TRY(strata__store_open(dir, config, &s));
  /* The staging pool comes last: pinning its slabs is the slow part of an
   * open that has it, and nothing before depends on it. (It opens nothing
   * when config.staging.bytes is 0.) It sets the store's hooks before the
   * verifier thread starts, the first thread besides this one that may
   * drop a file and so call before_unmap. */
  int rc = strata__staging_open(s, &s->staging);
  if (rc < 0) {
    bool created = s->created_dir;
    strata_store_close(s); /* and the half-built pool */
    if (created)           /* the open fails: the directory it made goes too */
      strata__store_unmake_dir(dir);
    return rc;
  }
  /* The shared view's staging hook, once the pool is whole: the
   * publisher thread, which calls it, starts in strata__store_start. */
  if (s->staging != NULL) {
    s->staging_figures = strata__staging_figures;
    s->staging_figures_ctx = s->staging;
  }
  strata__store_start(s);
  /* The remote last: a follower's thread swaps the catalog, which needs
   * the store whole and started. The config's strings are the caller's,
   * valid during this call only: the remote copies them, and the store's
   * copy of the config forgets them. */
  rc = strata__remote_attach(s, &s->config.remote, &s->remote);
  s->config.remote.conf = s->config.remote.pool = s->config.remote.name =
      s->config.remote.client_id = s->config.remote.node = NULL;
  if (rc < 0) {
    bool created = s->created_dir;
    strata_store_close(s);
    if (created)
      strata__store_unmake_dir(dir);
    return rc;
  }
  *out = s;
  return 0;
}

void strata_store_close(strata_store *s) {
  if (s == NULL)
    return;
  /* First the remote: its follower thread uses the store. */
  strata__remote_detach(s->remote);
  s->remote = NULL;
  strata__store_stop(s); /* and the shared view's publisher */
  s->staging_figures = NULL;
  s->staging_figures_ctx = NULL;
  /* After the snapshots: a reader in one may still sample into the rings
   * or stage. And after the verifier: it may drop a file, which calls into
   * the pool through before_unmap. */
  strata__staging_close(s->staging);
  s->staging = NULL;
  strata__store_close(s);
}
