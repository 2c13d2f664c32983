/* Refresh: the store's directory is read again and the catalog follows it,
 * dropping regions whose file was removed or replaced and loading the new
 * files. The writer lock (store_lock.c) refreshes too, so that protos
 * build on the files as they are. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

/* What became of a served file's directory entry. */
typedef enum file_state {
  FILE_SAME,    /* the same inode, of the size it was mapped with */
  FILE_GONE,    /* removed, or another file under the name */
  FILE_RESIZED, /* the same inode, truncated or extended in place */
} file_state;

static file_state check_file(const strata_store *s, const strata__file *f,
                             const char *name) {
  struct stat st;
  if (fstatat(s->dirfd, name, &st, 0) != 0)
    return errno != ENOENT ? FILE_SAME /* an I/O error proves nothing */
                           : FILE_GONE;
  if (st.st_dev != f->dev || st.st_ino != f->ino)
    return FILE_GONE;
  /* Region files are immutable; one whose size changed was rewritten in
   * place, and a page of the mapping past the new end raises SIGBUS on
   * the next read. Withdrawing it protects the snapshots that begin
   * after this refresh, not those open now (strata.h, Caveats). The
   * mtime is not compared: a rewrite of the same size does not fault,
   * and a copy that keeps the mtime (cp -p) would hide one anyway. */
  return (uint64_t)st.st_size == f->region->size ? FILE_SAME : FILE_RESIZED;
}

static int cmp_name(const void *key, const void *elem) {
  return strcmp(key, *(char *const *)elem);
}

/* The file's name within the directory, or NULL if it lies elsewhere. */
static const char *name_in_dir(const strata_store *s, const strata__file *f) {
  size_t dl = strlen(s->dir);
  return strncmp(f->path, s->dir, dl) == 0 && f->path[dl] == '/'
             ? f->path + dl + 1
             : NULL;
}

/* The index of `name` in the sorted listing, or -1. */
static ptrdiff_t find_name(char **names, size_t n, const char *name) {
  if (name == NULL || n == 0)
    return -1;
  char **hit = bsearch(name, names, n, sizeof *names, cmp_name);
  return hit != NULL ? hit - names : -1;
}

static void log_dropped(strata_store *s, const strata__entry *e,
                        file_state st) {
  char qf[STRATA__LOG_PATH];
  strata__log_quote(qf, sizeof qf, e->file->path);
  if (st == FILE_RESIZED)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"region withdrawn: its file changed size on disk "
                "(truncated or rewritten in place)\" file=%s region_id=%" PRIu64
                " mapped_bytes=%" PRIu64,
                qf, e->id, e->file->region->size);
  else
    strata__log(&s->log, STRATA_LOG_INFO, "store",
                "msg=\"region file removed or replaced on disk\" file=%s "
                "region_id=%" PRIu64,
                qf, e->id);
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
  bool *held = calloc(n + 1, sizeof *held);
  int rc = keep && drop && load && held
               ? 0
               : strata__fail(STRATA_E_NOMEM, "%s: refresh", s->dir);
  size_t nkeep = 0, ndrop = 0, nload = 0;
  /* Entries carried over: regions with a proto here (this process is their
   * writer), and files still in the directory under the same inode and
   * size. The listing is sorted: each lookup is a binary search. */
  for (uint64_t i = 0; rc == 0 && i < old->n; i++) {
    strata__entry *e = old->by_order[i];
    ptrdiff_t k =
        e->file != NULL ? find_name(names, n, name_in_dir(s, e->file)) : -1;
    file_state st = k < 0 ? FILE_GONE : check_file(s, e->file, names[k]);
    if (e->overlay != NULL || e->file == NULL || st == FILE_SAME) {
      keep[nkeep++] = e;
      if (k >= 0)
        held[k] = true;
    } else {
      drop[ndrop++] = e;
      log_dropped(s, e, st);
    }
  }
  /* Files to load: those no carried-over entry serves. */
  for (size_t k = 0; rc == 0 && k < n; k++)
    if (!held[k])
      load[nload++] = names[k];
  size_t first_new = nkeep;
  if (rc == 0)
    rc = strata__store_load(s, load, nload, false, keep, &nkeep);
  strata__conflict *conflicts = NULL;
  size_t nconflicts = 0;
  if (rc == 0)
    rc = strata__store_choose(s, keep, &nkeep, first_new, drop, &ndrop,
                              &conflicts, &nconflicts);
  /* The winners not in the current catalog are new: a region they replace
   * counts one more generation. */
  bool added = false;
  for (size_t i = 0; rc == 0 && i < nkeep; i++) {
    const strata__entry *prev = strata__catalog_find(old, keep[i]->id);
    if (prev == keep[i])
      continue;
    added = true;
    if (prev != NULL)
      keep[i]->generation = prev->generation + 1;
  }
  if (rc == 0 && (ndrop > 0 || added))
    rc = strata__catalog_publish(s, keep, nkeep, drop, ndrop);
  if (rc == 0) {
    strata__store_set_conflicts(s, conflicts, nconflicts);
  } else {
    /* Nothing was published: the entries this refresh made go (the ones
     * choose rejected are gone already). */
    strata__conflicts_free(conflicts, nconflicts);
    for (size_t i = 0; i < nkeep; i++)
      if (strata__catalog_find(old, keep[i]->id) != keep[i])
        strata__entry_free(s, keep[i]);
  }
  free(keep);
  free(drop);
  free(load);
  free(held);
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
