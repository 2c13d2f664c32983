/* Refresh: the store's directory is read again and the catalog follows it,
 * dropping regions whose file was removed or replaced and loading the new
 * files. The writer lock (store_lock.c) refreshes too, so that protos
 * build on the files as they are. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

/* Does the directory entry `name` still hold the file `f` (same inode)? */
static bool same_file(const strata_store *s, const strata__file *f,
                      const char *name) {
  struct stat st;
  size_t dl = strlen(s->dir);
  if (strncmp(f->path, s->dir, dl) != 0 || f->path[dl] != '/' ||
      strcmp(f->path + dl + 1, name) != 0)
    return false;
  if (fstatat(s->dirfd, name, &st, 0) != 0)
    return errno != ENOENT; /* an I/O error is no proof that it changed */
  return st.st_dev == f->dev && st.st_ino == f->ino;
}

static bool file_name_is(const strata_store *s, const strata__file *f,
                         const char *name) {
  size_t dl = strlen(s->dir);
  return strncmp(f->path, s->dir, dl) == 0 && f->path[dl] == '/' &&
         strcmp(f->path + dl + 1, name) == 0;
}

int strata__store_refresh_locked(strata_store *s) {
  strata__catalog *old =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  char **names = NULL;
  size_t n = 0;
  STRATA__TRY(strata__store_list(s, false, &names, &n));
  strata__entry **keep = calloc(old->n + n + 1, sizeof *keep);
  strata__entry **drop = calloc(old->n + 1, sizeof *drop);
  char **load = calloc(n + 1, sizeof *load);
  int rc = keep && drop && load
               ? 0
               : strata__fail(STRATA_E_NOMEM, "%s: refresh", s->dir);
  size_t nkeep = 0, ndrop = 0, nload = 0;
  /* Entries carried over: regions with a proto here (this process is their
   * writer), and files still in the directory under the same inode. */
  for (uint64_t i = 0; rc == 0 && i < old->n; i++) {
    strata__entry *e = old->by_order[i];
    bool kept = e->overlay != NULL || e->file == NULL;
    for (size_t k = 0; !kept && k < n; k++)
      kept = same_file(s, e->file, names[k]);
    if (kept) {
      keep[nkeep++] = e;
    } else {
      drop[ndrop++] = e;
      char qf[STRATA__LOG_PATH];
      strata__log(&s->log, STRATA_LOG_INFO, "store",
                  "msg=\"region file removed or replaced on disk\" file=%s "
                  "region_id=%" PRIu64,
                  strata__log_quote(qf, sizeof qf, e->file->path), e->id);
    }
  }
  /* Files to load: those no carried-over entry serves. */
  for (size_t k = 0; rc == 0 && k < n; k++) {
    bool served = false;
    for (size_t i = 0; i < nkeep && !served; i++)
      served =
          keep[i]->file != NULL && file_name_is(s, keep[i]->file, names[k]);
    if (!served)
      load[nload++] = names[k];
  }
  size_t first_new = nkeep;
  if (rc == 0)
    rc = strata__store_load(s, load, nload, false, keep, &nkeep);
  for (size_t i = first_new; rc == 0 && i < nkeep; i++) {
    const strata__entry *prev = strata__catalog_find(old, keep[i]->id);
    if (prev != NULL)
      keep[i]->generation = prev->generation + 1;
  }
  if (rc == 0 && (ndrop > 0 || nkeep > first_new))
    rc = strata__catalog_publish(s, keep, nkeep, drop, ndrop);
  if (rc < 0)
    for (size_t i = first_new; i < nkeep; i++)
      strata__entry_free(s, keep[i]);
  free(keep);
  free(drop);
  free(load);
  strata__store_names_free(names, n);
  return rc;
}

int strata_store_refresh(strata_store *s) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_store_refresh: NULL");
  strata__store_await_verify(s);
  pthread_mutex_lock(&s->write_mu);
  int rc = strata__store_refresh_locked(s);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}
