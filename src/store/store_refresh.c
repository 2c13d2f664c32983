/* Refresh: the store's directory is read again and the catalog follows it,
 * dropping regions whose file was removed or replaced and loading the new
 * files. The writer lock (store_lock.c) refreshes too, so that protos
 * build on the files as they are. The swap (strata__store_swap_files, the
 * remote follower's) is the same change with the file list given by the
 * caller, where any file that cannot be served fails the whole change
 * instead of being skipped: both run through refresh_to(). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

/* What became of a served file's directory entry. */
typedef enum file_state {
  FILE_SAME,     /* the same inode, of the size it was mapped with */
  FILE_GONE,     /* removed, or another file under the name */
  FILE_RESIZED,  /* the same inode, truncated or extended in place */
  FILE_UNLISTED, /* the swap: not in the caller's file list */
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

/* The index of the file `name`.region in the listing when it is the file
 * the overlay placed (device and inode: the overlay keeps it mapped), or
 * -1. */
static ptrdiff_t find_placed(const strata_store *s, char **names, size_t n,
                             const char *name, const strata__overlay *o) {
  char file[NAME_MAX + 1];
  int len = snprintf(file, sizeof file, "%s" STRATA__REGION_SUFFIX, name);
  if (len < 0 || (size_t)len >= sizeof file)
    return -1;
  ptrdiff_t k = find_name(names, n, file);
  struct stat st;
  return k >= 0 && fstatat(s->dirfd, file, &st, 0) == 0 &&
                 st.st_dev == o->placed_dev && st.st_ino == o->placed_ino
             ? k
             : -1;
}

static void log_dropped(strata_store *s, const strata__entry *e,
                        file_state st) {
  char qf[STRATA__LOG_PATH];
  strata__log_quote(qf, sizeof qf, e->file->path);
  if (st == FILE_UNLISTED)
    strata__log(&s->log, STRATA_LOG_INFO, "store",
                "msg=\"region dropped: its file is not in the new file list\" "
                "file=%s region_id=%" PRIu64,
                qf, e->id);
  else if (st == FILE_RESIZED)
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

static int cmp_entry_id(const void *pa, const void *pb) {
  const strata__entry *a = *(strata__entry *const *)pa,
                      *b = *(strata__entry *const *)pb;
  if (a->id != b->id)
    return (a->id > b->id) - (a->id < b->id);
  return strcmp(a->file->path, b->file->path);
}

static int cmp_entry_name(const void *pa, const void *pb) {
  const strata__entry *a = *(strata__entry *const *)pa,
                      *b = *(strata__entry *const *)pb;
  int c = strcmp(a->name, b->name);
  return c != 0 ? c : strcmp(a->file->path, b->file->path);
}

/* The swap's rule for files that claim one region id or name: an error
 * naming both (the scan lets strata__store_choose serve one and warn).
 * Every entry has a file here (no proto is open). */
static int check_unique(strata_store *s, strata__entry **v, size_t n) {
  strata__entry **t = malloc((n ? n : 1) * sizeof *t);
  if (t == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  memcpy(t, v, n * sizeof *t);
  int rc = 0;
  qsort(t, n, sizeof *t, cmp_entry_id);
  for (size_t i = 1; rc == 0 && i < n; i++)
    if (t[i - 1]->id == t[i]->id)
      rc = strata__fail(STRATA_E_DUPLICATE,
                        "%s and %s both hold region id %" PRIu64,
                        t[i - 1]->file->path, t[i]->file->path, t[i]->id);
  if (rc == 0)
    qsort(t, n, sizeof *t, cmp_entry_name);
  for (size_t i = 1; rc == 0 && i < n; i++)
    if (strcmp(t[i - 1]->name, t[i]->name) == 0)
      rc = strata__fail(STRATA_E_DUPLICATE,
                        "%s and %s both hold region name \"%s\"",
                        t[i - 1]->file->path, t[i]->file->path, t[i]->name);
  free(t);
  return rc;
}

/* Writer mutex held: makes the catalog serve the region files `names` (n
 * of them, sorted, distinct) with the stacks found among `deltas` (the
 * swap) or among the directory's delta files (deltas NULL, the scan), and
 * publishes it in one swap if anything changed. The scan (`strict` false)
 * skips, with a warning, a file that does not validate, and serves one of two
 * files that claim one region; the swap (`strict`) fails on either, naming the
 * file. On failure the catalog is unchanged. */
static int refresh_to(strata_store *s, char **names, size_t n, char **deltas,
                      size_t ndeltas, bool strict) {
  strata__catalog *old =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  strata__entry **keep = calloc(old->n + n + 1, sizeof *keep);
  strata__entry **drop = calloc(old->n + 1, sizeof *drop);
  char **load = calloc(n + 1, sizeof *load);
  bool *held = calloc(n + 1, sizeof *held);
  file_state *why = calloc(old->n + 1, sizeof *why); /* per dropped entry */
  int rc = keep && drop && load && held && why
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
    file_state st = k >= 0   ? check_file(s, e->file, names[k])
                    : strict ? FILE_UNLISTED
                             : FILE_GONE;
    if (e->overlay != NULL || e->file == NULL || st == FILE_SAME) {
      keep[nkeep++] = e;
      if (k >= 0)
        held[k] = true;
    } else {
      why[ndrop] = st;
      drop[ndrop++] = e;
    }
  }
  /* A new region's proto whose crystallization placed its file and then
   * failed (the directory fsync) owns that file: it is the proto's own
   * output, not another writer's claim on the id (which would be logged
   * and reported as a conflict until the retry). */
  for (uint64_t i = 0; rc == 0 && i < nkeep; i++) {
    const strata__entry *e = keep[i];
    const strata__overlay *o = e->overlay;
    if (e->file != NULL || o == NULL || !o->placed_file || o->placed_delta)
      continue;
    ptrdiff_t k = find_placed(s, names, n, e->name, o);
    if (k >= 0)
      held[k] = true;
  }
  /* Files to load: those no carried-over entry serves. */
  for (size_t k = 0; rc == 0 && k < n; k++)
    if (!held[k])
      load[nload++] = names[k];
  size_t first_new = nkeep;
  if (rc == 0)
    rc = strata__store_load(s, load, nload, false, strict, keep, &nkeep);
  if (rc == 0 && strict)
    rc = check_unique(s, keep, nkeep);
  strata__conflict *conflicts = NULL;
  size_t nconflicts = 0;
  size_t ndropped = ndrop; /* choose may add carried-over losers */
  if (rc == 0)
    rc = strata__store_choose(s, keep, &nkeep, first_new, drop, &ndrop,
                              &conflicts, &nconflicts);
  if (rc == 0)
    rc = strata__store_stacks(s, keep, nkeep, first_new, drop, &ndrop,
                              strict ? deltas : NULL, ndeltas);
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
    for (size_t i = 0; i < ndropped; i++)
      log_dropped(s, drop[i], why[i]);
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
  free(why);
  return rc;
}

int strata__store_refresh_locked(strata_store *s) {
  char **names = NULL;
  size_t n = 0;
  STRATA__TRY(strata__store_list(s, false, &names, &n));
  int rc = refresh_to(s, names, n, NULL, 0, false);
  strata__store_names_free(names, n);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The caller's list as refresh_to() takes it: checked, sorted, distinct,
 * the region files first (*nregions of them), then the delta files. The
 * names are borrowed; only the array is allocated. */
static int sorted_list(strata_store *s, const char *const *names, size_t n,
                       char ***out, size_t *nregions) {
  STRATA__FAIL_IF(names == NULL && n > 0, STRATA_E_INVAL,
                  "%s: swap: NULL file list", s->dir);
  size_t nr = 0;
  for (size_t i = 0; i < n; i++) {
    bool region = names[i] != NULL && strata__store_is_region_name(names[i]);
    STRATA__FAIL_IF(names[i] == NULL ||
                        (!region && !strata__store_is_delta_name(names[i])) ||
                        strchr(names[i], '/') != NULL,
                    STRATA_E_INVAL,
                    "%s/%s: not a region or delta file of the store's "
                    "directory (NAME.region or NAME.delta, not hidden, no "
                    "'/')",
                    s->dir, names[i] != NULL ? names[i] : "(null)");
    nr += region;
  }
  char **v = malloc((n ? n : 1) * sizeof *v);
  if (v == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  for (size_t i = 0, r = 0, d = nr; i < n; i++)
    v[strata__store_is_region_name(names[i]) ? r++ : d++] =
        (char *)(uintptr_t)names[i];
  qsort(v, nr, sizeof *v, cmp_str);
  qsort(v + nr, n - nr, sizeof *v, cmp_str);
  for (size_t i = 1; i < n; i++)
    if (i != nr && strcmp(v[i - 1], v[i]) == 0) {
      int rc =
          strata__fail(STRATA_E_INVAL, "%s/%s: listed twice", s->dir, v[i]);
      free(v);
      return rc;
    }
  *out = v;
  *nregions = nr;
  return 0;
}

uint64_t strata__store_protos_open(const strata_store *s) {
  uint64_t open = 0;
  for (uint64_t i = 0; i < s->proto_n; i++)
    open += !s->protos[i]->discarded;
  return open;
}

int strata__store_swap_files(strata_store *s, const char *const *names,
                             size_t n) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata__store_swap_files: NULL");
  char **v = NULL;
  size_t nr = 0;
  STRATA__TRY(sorted_list(s, names, n, &v, &nr));
  strata__store_await_verify(s);
  pthread_mutex_lock(&s->write_mu);
  /* A region with a proto here keeps its entry whatever the list says
   * (refresh_to), so the catalog could not become exactly the list. */
  uint64_t open = strata__store_protos_open(s);
  int rc = open > 0 ? strata__fail(STRATA_E_STATE,
                                   "%s: %" PRIu64 " proto(s) open; the file "
                                   "list can be swapped only with none",
                                   s->dir, open)
                    : refresh_to(s, v, nr, v + nr, n - nr, true);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  free(v);
  return rc;
}

int strata_store_refresh(strata_store *s) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_store_refresh: NULL");
  strata__store_await_verify(s);
  pthread_mutex_lock(&s->write_mu);
  /* A claimed store's catalog is its owner's to move (a remote follower
   * swaps whole versions): a scan while the owner renames a version's
   * files into place would publish a mixture of two versions. */
  int rc = s->claimed_by != NULL ? 0 : strata__store_refresh_locked(s);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}
