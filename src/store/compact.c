/* Background compaction (docs/ARCHITECTURE.md, "Background compaction"):
 * a region's stack of deltas is merged into one delta or rewritten into a
 * new base off the writer's path, so that a crystallization writes only
 * its delta and never waits for a rewrite of the whole region.
 *
 * Why it can run beside the writer: the files it reads are immutable, and
 * a stack only grows at its top between two compactions (crystallize.c
 * writes a delta over the top; with a compactor it leaves merges and base
 * rewrites to it up to STRATA__MAX_DEPTH_BACKGROUND). So a compaction
 * takes the stack as it is (the base and deltas 1..k), writes the new
 * bottom N without the writer mutex (a base merging them all, or a delta
 * of depth 1 merging deltas 1..k over the base), and then, under the
 * mutex, deals with what the writer did meanwhile:
 * - deltas k+1..m put over the top are rewritten as one delta R over N
 *   ("rebased": their newest versions, and their removals of layers N
 *   holds), so that what the writer published is kept. That write is in
 *   proportion to those deltas, not to the region;
 * - anything else (the stack's files not those it read: a foreground
 *   merge or base past STRATA__MAX_DEPTH_BACKGROUND, a refresh, a foreign
 *   writer) drops the compaction with STRATA_E_CONFLICT: nothing is
 *   replaced, and the next request compacts the new stack.
 *
 * Crash safety rests on the order of the renames. R is renamed first,
 * under a name no region's canonical delta can have (NAME.D.cG.delta:
 * the names' binding is in the headers, docs/ARCHITECTURE.md): bound to N,
 * which is not in place yet, it is stale until then, and the old stack is
 * served. Then N replaces the base (or the first delta): from the directory
 * fsync on, the old deltas are stale by their binding and N + R is served,
 * whole. Only then are the old deltas removed and R renamed to its
 * canonical name (each failure a WARN: the binding, not the name, makes
 * the chain). A crash anywhere leaves the old stack or the new one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strata_testing.h"
#include "store/crystallize_internal.h"

/* The compactor thread's nice value (compactor_main). */
#define COMPACTOR_NICE 10

struct strata__compactor {
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t work; /* a request, or stop */
  pthread_cond_t idle; /* the queue is empty and nothing runs */
  uint64_t *ids;       /* regions to compact, oldest request first */
  size_t n, cap;
  bool busy, stop;
  bool active;         /* a compaction of the queue's runs now */
  _Atomic bool cancel; /* read by the running compaction's writer */
};

/* The writer's progress callback: a nonzero answer cancels the write
 * (STRATA_E_CANCELED), which is how closing the store stops a compaction. */
static int check_cancel(void *ctx, const strata_progress *p) {
  (void)p;
  return atomic_load_explicit((_Atomic bool *)ctx, memory_order_relaxed);
}

/* A private entry over the files `e` serves: its base and stack, a
 * reference each, no overlay. The references keep the files mapped while
 * the compaction reads them without the writer mutex; files and stacks are
 * immutable, so reading them needs no lock. Writer mutex held (references
 * change under it). */
static strata__entry *view_of(struct strata_store *s, const strata__entry *e) {
  strata__entry *v = strata__entry_new(e->id, e->name, e->metadata, NULL);
  if (v == NULL) {
    strata__fail(STRATA_E_NOMEM, "%s: region %" PRIu64 ": allocating", s->dir,
                 e->id);
    return NULL;
  }
  v->file = e->file;
  v->file->refs++;
  v->stack = e->stack;
  v->stack->refs++;
  return v;
}

/* Does `cur` still serve the view's files, with possibly more deltas on
 * top? */
static bool extends(const strata__entry *cur, const strata__entry *v) {
  if (cur == NULL || cur->file != v->file || cur->stack == NULL ||
      cur->stack->n < v->stack->n)
    return false;
  for (uint32_t d = 0; d < v->stack->n; d++)
    if (cur->stack->deltas[d] != v->stack->deltas[d])
      return false;
  return true;
}

/* The header checksum of a region file. */
static uint64_t checksum_of(const strata_region *r) {
  strata_region_info i;
  strata_region_info_get(r, &i);
  return i.header_checksum;
}

/* Do the files under R hold a visible layer `id`: N alone when it is a
 * base, else N (a merged delta: a layer, a tombstone or nothing) over the
 * base? */
static bool below_holds(const strata_region *n, bool n_is_base,
                        const strata_region *base, uint64_t id) {
  int64_t i = strata__find_entry(n, id);
  if (i >= 0 || n_is_base) {
    if (i < 0)
      return false;
    strata_layer l;
    strata__layer_from_entry(n, (uint64_t)i, &l);
    return !(l.flags & STRATA_LAYER_TOMBSTONE);
  }
  return strata__find_entry(base, id) >= 0;
}

/* Writes R: the newest versions of the ids of `cur`'s deltas from depth
 * k + 1 up, over N (a base, or a merged delta of depth 1), as a delta file
 * at `path`, renamed into place (not yet under its canonical name). *out
 * receives the open region; *dev, *ino its identity. Writer mutex held. */
static int write_rebased(const strata__entry *cur, uint32_t k,
                         const strata_region *n, bool n_is_base,
                         const char *path, strata_region **out, dev_t *dev,
                         ino_t *ino) {
  const strata__stack *st = cur->stack;
  strata_writer_options opts;
  strata__crys_writer_options(cur, &opts);
  strata_writer *w = NULL;
  uint64_t count = 0;
  for (uint64_t i = 0; i < st->nslots; i++)
    count += st->slots[i].delta >= k;
  int rc = strata_writer_open(path, &opts, &w);
  if (rc == 0)
    rc = strata__writer_set_delta(w, checksum_of(n),
                                  n_is_base ? checksum_of(n)
                                            : checksum_of(cur->file->region),
                                  n_is_base ? 1 : 2);
  if (rc == 0)
    rc = strata__writer_reserve(w, count);
  for (uint64_t i = 0; rc == 0 && i < st->nslots; i++) {
    const strata__stack_slot *sl = &st->slots[i];
    if (sl->delta < k)
      continue;
    if (sl->tomb) {
      if (below_holds(n, n_is_base, cur->file->region, sl->id))
        rc = strata__writer_add_tombstone(w, sl->id);
      continue;
    }
    strata_layer l;
    strata__layer_from_entry(st->deltas[sl->delta]->region, sl->entry, &l);
    rc = strata_writer_add(w, l.id, l.name, l.name_len, l.metadata, l.data,
                           (size_t)l.size);
  }
  if (rc == 0)
    rc = strata__writer_commit_prepare(w, out, dev, ino);
  bool placed = false;
  uint64_t fsync_ns = 0;
  if (rc == 0) {
    rc = strata__writer_commit_publish(w, &fsync_ns, &placed);
    if (rc < 0) {
      strata_region_close(*out);
      *out = NULL;
    }
  }
  strata_writer_abort(w);
  /* Bound to an N that is not in place, a placed R is stale: removing it
   * only saves space. */
  if (rc < 0 && placed)
    (void)unlink(path);
  return rc;
}

/* A name for R that no file has and no region's canonical delta can get:
 * NAME.D.cG.delta (the component before ".delta" is not a number; short,
 * since its temporary name must fit in NAME_MAX too). malloc'd; NULL when
 * out of memory. */
static char *rebased_path(struct strata_store *s, const strata__entry *cur,
                          uint32_t depth) {
  for (uint64_t g = cur->generation + 1;; g++) {
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".%" PRIu32 ".c%" PRIu64 ".delta", depth,
             g);
    char *p = strata__store_path(s, cur->name, suffix);
    if (p == NULL || faccessat(s->dirfd, strata__file_name(p), F_OK,
                               AT_SYMLINK_NOFOLLOW) != 0)
      return p;
    free(p);
  }
}

/* Is `file` exactly a rebased delta's name of region `name`,
 * NAME "." digits ".c" digits ".delta" (rebased_path)? Parsed to the end:
 * another region's files (a region named "NAME.1.c7" has deltas
 * "NAME.1.c7.1.delta") never match. */
static bool rebased_name(const char *file, const char *name) {
  size_t nl = strlen(name);
  if (strncmp(file, name, nl) != 0 || file[nl] != '.')
    return false;
  const char *p = file + nl + 1;
  size_t d = strspn(p, "0123456789");
  if (d == 0 || strncmp(p + d, ".c", 2) != 0)
    return false;
  p += d + 2;
  size_t g = strspn(p, "0123456789");
  return g > 0 && strcmp(p + g, ".delta") == 0;
}

/* The names of the store's files that look like rebased deltas of region
 * `name` (*out, *n; strata__store_names_free). Lists the directory: called
 * without the writer mutex, so that a large directory does not hold up
 * puts. A failure lists none. */
static void list_rebased(struct strata_store *s, const char *name, char ***out,
                         size_t *n) {
  *out = NULL;
  *n = 0;
  char **names = NULL;
  size_t nn = 0;
  if (strata__store_list_deltas(s, &names, &nn) < 0)
    return;
  size_t k = 0;
  for (size_t i = 0; i < nn; i++) {
    if (rebased_name(names[i], name))
      names[k++] = names[i];
    else
      free(names[i]);
  }
  *out = names;
  *n = k;
}

/* Removes, of the `n` listed names, the rebased deltas of region `e` that
 * it does not serve: those a compaction renamed and then could not publish
 * (a crash between that rename and its new file's, or a failure there).
 * Bound to a new file that never took its place, they are stale for ever,
 * under a name no crystallization writes over. A served one (whose
 * canonical rename failed) stays, as does a file whose header names
 * another region or that does not open (not provably this region's).
 * Failures only leave them: a DEBUG line. Writer mutex held. */
static void remove_stale_rebased(struct strata_store *s, const strata__entry *e,
                                 char **names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    bool served = false;
    for (uint32_t d = 0; e->stack != NULL && d < e->stack->n && !served; d++)
      served =
          strcmp(strata__file_name(e->stack->deltas[d]->path), names[i]) == 0;
    char *path = served ? NULL : strata__store_path(s, names[i], "");
    strata_region *r = NULL;
    strata_region_info info = {0};
    bool ours = path != NULL && strata_region_open(path, 0, &r) == 0 &&
                strata_region_info_get(r, &info) == 0 && info.id == e->id;
    strata_region_close(r);
    free(path);
    if (ours && unlinkat(s->dirfd, names[i], 0) != 0) {
      char qp[STRATA__LOG_PATH];
      strata__log(&s->log, STRATA_LOG_DEBUG, "compact",
                  "msg=\"could not remove a stale rebased delta\" file=%s "
                  "errno=%d",
                  strata__log_quote(qp, sizeof qp, names[i]), errno);
    }
  }
}

/* What a compaction holds between its steps. */
typedef struct compaction {
  struct strata_store *s;
  uint64_t id;
  bool merge;       /* N is a delta of depth 1 over the base */
  strata__entry *v; /* the files it read */
  char *n_path;     /* the base's path, or NAME.1.delta for a merge */
  strata_writer *w; /* N, prepared */
  strata_region *n; /* N, open */
  dev_t n_dev;
  ino_t n_ino;
  char *r_path, *r_final; /* R, when the stack grew meanwhile */
  char **stale;           /* list_rebased(), for remove_stale_rebased() */
  size_t nstale;
  strata_region *r;
  dev_t r_dev;
  ino_t r_ino;
} compaction;

/* STRATA_E_STATE when a failed crystallization of the region's proto
 * placed its file (its rename went through, the directory fsync failed):
 * the proto then owns that file, which the stack does not serve yet, and
 * its next crystallization replaces it (crystallize.c); a compaction would
 * bury it under a new base. */
static int check_placed(struct strata_store *s, const strata__entry *e) {
  STRATA__FAIL_IF(e->overlay != NULL && e->overlay->placed_file, STRATA_E_STATE,
                  "%s: region %" PRIu64 " (\"%s\"): a failed "
                  "crystallization of its proto placed a file; crystallize "
                  "it again before compacting (nothing was replaced)",
                  e->file != NULL ? e->file->path : s->dir, e->id, e->name);
  return 0;
}

/* Step 1, writer mutex held: the stack to compact, and what to write. */
static int begin(compaction *c, bool allow_merge) {
  struct strata_store *s = c->s;
  STRATA__TRY(strata__store_lock(s));
  strata__catalog *cat =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  const strata__entry *e = strata__catalog_find(cat, c->id);
  STRATA__FAIL_IF(e == NULL, STRATA_E_NO_REGION, "%s: no region %" PRIu64,
                  s->dir, c->id);
  if (e->file == NULL || e->stack == NULL)
    return 0; /* nothing to compact */
  STRATA__TRY(check_placed(s, e));
  /* The compactor's choice is crystallize.c's at STRATA__MAX_DEPTH: a
   * merge while the deltas' files together are below a quarter of the
   * base's bytes (docs/ARCHITECTURE.md, "Merging deltas"), else a base;
   * and nothing for a stack below that depth (a request that an earlier
   * compaction answered already: a crystallization asks again at every
   * depth from 4 up). */
  uint64_t bytes = 0;
  for (uint32_t d = 0; d < e->stack->n; d++)
    bytes += e->stack->deltas[d]->region->size;
  bool small = bytes < e->file->region->size / 4;
  if (allow_merge && e->stack->n < STRATA__MAX_DEPTH)
    return 0;
  c->merge = allow_merge && small;
  c->n_path =
      c->merge ? strata__delta_path(s, e->name, 1) : strdup(e->file->path);
  if (c->n_path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  STRATA__TRY(strata__crys_check_base(s, e, e->file->path));
  char *next = strata__delta_path(s, e->name, e->stack->n + 1);
  if (next == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  int rc = strata__crys_check_stack(s, e, c->n_path, next);
  free(next);
  if (rc == 0 && (c->v = view_of(s, e)) == NULL)
    rc = STRATA_E_NOMEM;
  return rc;
}

/* Step 2, without the writer mutex: N, written, fsync'd and validated,
 * not in place. */
static int write_bottom(compaction *c, _Atomic bool *cancel) {
  strata_writer_options opts;
  strata__crys_writer_options(c->v, &opts);
  opts.progress = check_cancel;
  opts.progress_ctx = cancel;
  const strata__entry *v = c->v;
  int rc = strata_writer_open(c->n_path, &opts, &c->w);
  /* N replaces a file the deltas above it are bound to: it must not have
   * its bytes (crystallize.c, "Binding and reproducible writers"). */
  if (rc == 0)
    strata__writer_fresh_seed(c->w);
  if (rc == 0 && c->merge) {
    uint64_t b = checksum_of(v->file->region);
    rc = strata__writer_set_delta(c->w, b, b, 1);
  }
  if (rc == 0)
    rc = strata__writer_reserve(c->w, c->merge ? v->stack->nslots
                                               : strata__entry_file_layers(v));
  uint64_t bytes = 0;
  if (rc == 0)
    rc = strata__crys_write(
        v, c->merge ? strata__content_merged : strata__content_base, c->w,
        &bytes);
  if (rc == 0)
    rc = strata__writer_commit_prepare(c->w, &c->n, &c->n_dev, &c->n_ino);
  return rc;
}

/* write_bottom on a thread of its own at nice COMPACTOR_NICE: the
 * compactor's write runs in the gaps the readers and the writer leave
 * (fsync waits, idle cores) instead of taking its share from the readers
 * (the writer-cycle benchmark's readers fell to half their idle rate with
 * the compactor at their priority). Only the write: the steps that hold
 * the writer mutex run at the compactor's own priority, so a starved
 * compaction never holds up a put (a niced thread cannot raise its
 * priority back without CAP_SYS_NICE). Starved under load, a compaction
 * just takes longer: the stack deepens meanwhile, and past
 * STRATA__MAX_DEPTH_BACKGROUND the writer compacts in the foreground as
 * without a compactor. Without a thread, the write runs here. */
typedef struct niced_write {
  compaction *c;
  _Atomic bool *cancel;
  int rc;
  char detail[512]; /* the error detail is per thread: carried back */
} niced_write;

static void *niced_main(void *arg) {
  niced_write *nw = arg;
  /* A failure (a policy that forbids it) leaves the priority as it is. */
  (void)setpriority(PRIO_PROCESS, (id_t)gettid(), COMPACTOR_NICE);
  nw->rc = write_bottom(nw->c, nw->cancel);
  if (nw->rc < 0)
    snprintf(nw->detail, sizeof nw->detail, "%s", strata_last_error_detail());
  return NULL;
}

static int write_bottom_niced(compaction *c, _Atomic bool *cancel) {
  niced_write nw = {.c = c, .cancel = cancel};
  pthread_t tid;
  if (pthread_create(&tid, NULL, niced_main, &nw) != 0)
    return write_bottom(c, cancel);
  pthread_join(tid, NULL);
  return nw.rc < 0 ? strata__fail(nw.rc, "%s", nw.detail) : 0;
}

/* Step 3, writer mutex held: R if the stack grew, then the publication. */
static int finish(compaction *c) {
  struct strata_store *s = c->s;
  STRATA__TRY(strata__store_writable(s));
  strata__catalog *cat =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  const strata__entry *cur = strata__catalog_find(cat, c->id);
  STRATA__FAIL_IF(cur == NULL, STRATA_E_CONFLICT,
                  "%s: region %" PRIu64 " (\"%s\") is no longer served (a "
                  "refresh dropped it) while it was being compacted; nothing "
                  "was replaced",
                  c->n_path, c->id, c->v->name);
  STRATA__TRY(check_placed(s, cur));
  STRATA__FAIL_IF(!extends(cur, c->v), STRATA_E_CONFLICT,
                  "%s: region %" PRIu64 " (\"%s\"): its stack changed below "
                  "its top while it was being compacted (a crystallization "
                  "merged or rewrote it, or a refresh replaced a file); "
                  "nothing was replaced",
                  c->n_path, c->id, c->v->name);
  uint32_t k = c->v->stack->n, m = cur->stack->n;
  char *next = strata__delta_path(s, cur->name, m + 1);
  STRATA__FAIL_IF(next == NULL, STRATA_E_NOMEM, "%s: allocating", s->dir);
  int rc = strata__crys_check_base(s, cur, cur->file->path);
  if (rc == 0)
    rc = strata__crys_check_stack(s, cur, c->n_path, next);
  free(next);
  if (rc == 0)
    remove_stale_rebased(s, cur, c->stale, c->nstale);
  uint32_t r_depth = c->merge ? 2 : 1;
  if (rc == 0 && m > k) {
    c->r_path = rebased_path(s, cur, r_depth);
    c->r_final = strata__delta_path(s, cur->name, r_depth);
    rc = c->r_path != NULL && c->r_final != NULL
             ? write_rebased(cur, k, c->n, !c->merge, c->r_path, &c->r,
                             &c->r_dev, &c->r_ino)
             : strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  }
  /* Everything the publication needs is allocated before N's rename, so
   * that after it only the directory fsync can fail. */
  strata__file *fn = NULL, *fr = NULL;
  strata__stack *st = NULL;
  strata__entry *e = NULL;
  strata__catalog_change ch = {0};
  if (rc == 0 &&
      (rc = strata__file_new(c->n, c->n_dev, c->n_ino, false, &fn)) == 0)
    c->n = NULL;
  if (rc == 0 && c->r != NULL &&
      (rc = strata__file_new(c->r, c->r_dev, c->r_ino, false, &fr)) == 0)
    c->r = NULL;
  strata__file *files[2];
  uint32_t nf = 0;
  if (c->merge)
    files[nf++] = fn;
  if (fr != NULL)
    files[nf++] = fr;
  strata__file *base = c->merge ? cur->file : fn;
  if (rc == 0 && nf > 0)
    rc = strata__stack_new(base, files, nf, &st, NULL);
  if (rc == 0) {
    /* The stack took over the deltas' references. */
    if (c->merge)
      fn = NULL;
    fr = NULL;
    e = strata__entry_new(c->id, cur->name, cur->metadata, base);
    if (e == NULL)
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  }
  if (rc == 0) {
    if (c->merge)
      base->refs++; /* the entry's, beside cur's */
    else
      fn = NULL; /* owned by e */
    e->stack = st;
    st = NULL;
    e->overlay = cur->overlay; /* the proto goes on, over the new files */
    e->generation = cur->generation + 1;
    rc = strata__catalog_prepare(s, e, 0, &ch);
  }
  uint64_t fsync_ns = 0;
  bool placed = false;
  if (rc == 0)
    rc = strata__writer_commit_publish(c->w, &fsync_ns, &placed);
  strata_writer_abort(c->w);
  c->w = NULL;
  if (rc < 0 && !placed) {
    strata__catalog_abandon(&ch);
    if (e != NULL) {
      e->overlay = NULL;
      strata__entry_free(s, e);
    }
    strata__stack_free(s, st);
    strata__file_unref(s, fn);
    strata__file_unref(s, fr);
    if (c->r_path != NULL)
      (void)unlinkat(s->dirfd, strata__file_name(c->r_path), 0);
    return rc;
  }
  char qp[STRATA__LOG_PATH];
  int late = rc; /* the directory fsync's failure, reported after all */
  if (rc < 0) {
    /* N is in place, but the directory fsync failed: after a power loss
     * the directory may hold the old stack or the new one, and both must
     * be whole, so the old deltas stay, and R keeps its temporary name (its
     * canonical one is the first old delta's). The new stack is what the
     * directory names now, with the same content: publish it, and report
     * the failure. The next directory fsync that succeeds (a
     * crystallization's) makes the rename durable, on the journaling file
     * systems this relies on for every rename (docs/ARCHITECTURE.md,
     * "Background compaction"). */
    strata__log(&s->log, STRATA_LOG_ERROR, "compact",
                "msg=\"compaction placed its file but the directory fsync "
                "failed; the old deltas are kept\" region_id=%" PRIu64
                " file=%s error=%s",
                c->id, strata__log_quote(qp, sizeof qp, c->n_path),
                strata_err_name(rc));
    rc = 0;
  } else {
    strata__crys_unlink_stale(s, cur, c->merge ? c->n_path : NULL, NULL);
    const strata__file *rf =
        e->stack != NULL ? e->stack->deltas[e->stack->n - 1] : NULL;
    if (c->r_path != NULL && rf != NULL) {
      /* The canonical name, over the unlinked (or stale) old delta; and
       * both names the file goes by: its record's (the checks before a
       * crystallization stat it) and its region's (strata_region_info,
       * error details). Not published yet: nothing reads them. */
      char *p = strdup(c->r_final), *rp = strdup(c->r_final);
      if (p != NULL && rp != NULL &&
          renameat(s->dirfd, strata__file_name(c->r_path), s->dirfd,
                   strata__file_name(c->r_final)) == 0) {
        (void)fsync(s->dirfd);
        strata__file *w = (strata__file *)rf;
        free(w->path);
        w->path = p;
        free(w->region->path);
        w->region->path = rp;
      } else {
        free(p);
        free(rp);
        strata__log(&s->log, STRATA_LOG_WARN, "compact",
                    "msg=\"could not give the rebased delta its canonical "
                    "name; it is served under this one\" region_id=%" PRIu64
                    " file=%s errno=%d",
                    c->id, strata__log_quote(qp, sizeof qp, c->r_path), errno);
      }
    }
  }
  strata__catalog_commit(s, &ch); /* retires cur (freed after the lock) */
  s->compact_stats.count++;
  s->compact_stats.merges += c->merge;
  s->compact_stats.rebased += m - k;
  strata__log(&s->log, STRATA_LOG_INFO, "compact",
              "msg=\"region compacted\" region_id=%" PRIu64 " file=%s "
              "kind=%s deltas=%" PRIu32 " rebased=%" PRIu32
              " fsync_ms=%.3f generation=%" PRIu64,
              c->id, strata__log_quote(qp, sizeof qp, c->n_path),
              c->merge ? "merge" : "base", k, m - k, (double)fsync_ns / 1e6,
              e->generation);
  return late;
}

static void compaction_free(compaction *c) {
  strata_writer_abort(c->w);
  strata_region_close(c->n);
  strata_region_close(c->r);
  if (c->v != NULL)
    strata__entry_free(c->s, c->v);
  free(c->n_path);
  free(c->r_path);
  free(c->r_final);
  strata__store_names_free(c->stale, c->nstale);
}

/* Compacts region `id`: the three steps, the writer mutex held for the
 * first and the last. `allow_merge`: a merge into one delta where
 * crystallize.c would choose one (the background compactor); else a base.
 * `cancel` stops the write (STRATA_E_CANCELED). */
static int compact(struct strata_store *s, uint64_t id, bool allow_merge,
                   _Atomic bool *cancel) {
  strata__store_await_verify(s); /* never build on an unverified file */
  compaction c = {.s = s, .id = id};
  uint64_t t0 = strata__mono_ns();
  pthread_mutex_lock(&s->write_mu);
  int rc = strata__store_writable(s);
  if (rc == 0)
    rc = begin(&c, allow_merge);
  bool work = rc == 0 && c.v != NULL;
  if (work) {
    pthread_mutex_unlock(&s->write_mu);
    list_rebased(s, c.v->name, &c.stale, &c.nstale);
    rc =
        allow_merge ? write_bottom_niced(&c, cancel) : write_bottom(&c, cancel);
    if (rc == 0 && s->compact_hook != NULL)
      s->compact_hook(s->compact_hook_ctx);
    pthread_mutex_lock(&s->write_mu);
    if (rc == 0)
      rc = finish(&c);
  }
  /* Counted once a compaction began writing (a refusal at its start, such
   * as no such region, is the caller's error, not a compaction's). */
  if (work && rc == 0)
    s->compact_stats.ns += strata__mono_ns() - t0;
  else if (work && (rc == STRATA_E_CONFLICT || rc == STRATA_E_STATE ||
                    rc == STRATA_E_CANCELED))
    s->compact_stats.dropped++;
  else if (work)
    s->compact_stats.failed++;
  compaction_free(&c); /* the view's references, under the mutex */
  if (work)
    strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}

int strata_compact(strata_store *s, uint64_t region_id) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_compact: NULL store");
  STRATA__FAIL_IF(s->config.flags & STRATA_STORE_READ_ONLY, STRATA_E_STATE,
                  "%s: the store was opened read-only", s->dir);
  _Atomic bool never = false;
  return compact(s, region_id, false, &never);
}

void strata_compact_test_hook(strata_store *s, void (*fn)(void *ctx),
                              void *ctx) {
  s->compact_hook = fn;
  s->compact_hook_ctx = ctx;
}

/* ---- the compactor thread ------------------------------------------------ */

static void request(struct strata_store *s, uint64_t id);

static void *compactor_main(void *arg) {
  struct strata_store *s = arg;
  struct strata__compactor *k = s->compactor;
  pthread_mutex_lock(&k->mu);
  while (!k->stop) {
    if (k->n == 0) {
      k->busy = false;
      pthread_cond_broadcast(&k->idle);
      pthread_cond_wait(&k->work, &k->mu);
      continue;
    }
    uint64_t id = k->ids[0];
    memmove(k->ids, k->ids + 1, (k->n - 1) * sizeof *k->ids);
    k->n--;
    k->busy = k->active = true;
    pthread_mutex_unlock(&k->mu);
    int rc = compact(s, id, true, &k->cancel);
    if (rc < 0) {
      /* Dropped or failed: the stack stays as it is, served whole, and
       * deepens until the next request (or the foreground, past
       * STRATA__MAX_DEPTH_BACKGROUND) compacts it. */
      char qd[STRATA__LOG_TEXT];
      strata__log(&s->log,
                  rc == STRATA_E_CONFLICT || rc == STRATA_E_CANCELED
                      ? STRATA_LOG_INFO
                      : STRATA_LOG_WARN,
                  "compact",
                  "msg=\"background compaction not done; the stack is "
                  "served as it was\" region_id=%" PRIu64 " error=%s "
                  "detail=%s",
                  id, strata_err_name(rc),
                  strata__log_quote(qd, sizeof qd, strata_last_error_detail()));
    }
    pthread_mutex_lock(&k->mu);
    k->active = false;
  }
  k->busy = false;
  pthread_cond_broadcast(&k->idle);
  pthread_mutex_unlock(&k->mu);
  return NULL;
}

void strata__compact_start(struct strata_store *s) {
  if (!(s->config.flags & STRATA_STORE_BACKGROUND_COMPACT) ||
      (s->config.flags & (STRATA_STORE_READ_ONLY | STRATA_STORE_NO_DELTAS)))
    return;
  struct strata__compactor *k = calloc(1, sizeof *k);
  if (k != NULL) {
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->work, NULL);
    pthread_cond_init(&k->idle, NULL);
    s->compactor = k;
    s->compact_request = request;
    if (pthread_create(&k->tid, NULL, compactor_main, s) == 0)
      return;
    s->compactor = NULL;
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->work);
    pthread_cond_destroy(&k->idle);
    free(k);
  }
  char qd[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_WARN, "compact",
              "msg=\"cannot start the background compactor: "
              "crystallizations compact in the foreground\" dir=%s",
              strata__log_quote(qd, sizeof qd, s->dir));
}

void strata__compact_stop(struct strata_store *s) {
  struct strata__compactor *k = s->compactor;
  if (k == NULL)
    return;
  pthread_mutex_lock(&k->mu);
  k->stop = true;
  atomic_store_explicit(&k->cancel, true, memory_order_relaxed);
  pthread_cond_signal(&k->work);
  pthread_mutex_unlock(&k->mu);
  pthread_join(k->tid, NULL);
  /* Cleared under the writer mutex: crystallize.c reads it there. */
  pthread_mutex_lock(&s->write_mu);
  s->compactor = NULL;
  pthread_mutex_unlock(&s->write_mu);
  pthread_mutex_destroy(&k->mu);
  pthread_cond_destroy(&k->work);
  pthread_cond_destroy(&k->idle);
  free(k->ids);
  free(k);
}

/* s->compact_request: queues region `id` once. Writer mutex held. */
static void request(struct strata_store *s, uint64_t id) {
  struct strata__compactor *k = s->compactor;
  if (k == NULL)
    return;
  pthread_mutex_lock(&k->mu);
  bool queued = false;
  for (size_t i = 0; i < k->n && !queued; i++)
    queued = k->ids[i] == id;
  if (!queued && k->n == k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 8;
    uint64_t *ids = realloc(k->ids, cap * sizeof *ids);
    if (ids != NULL) {
      k->ids = ids;
      k->cap = cap;
    }
  }
  /* Without room the request is lost; the next crystallization of the
   * region asks again. */
  if (!queued && k->n < k->cap) {
    k->ids[k->n++] = id;
    k->busy = true;
    pthread_cond_signal(&k->work);
  }
  pthread_mutex_unlock(&k->mu);
}

void strata__compact_figures_get(struct strata_store *s,
                                 strata__compact_figures *out) {
  pthread_mutex_lock(&s->write_mu);
  *out = (strata__compact_figures){.count = s->compact_stats.count,
                                   .merges = s->compact_stats.merges,
                                   .rebased = s->compact_stats.rebased,
                                   .dropped = s->compact_stats.dropped,
                                   .failed = s->compact_stats.failed,
                                   .ns = s->compact_stats.ns};
  struct strata__compactor *k = s->compactor;
  if (k != NULL) {
    out->background = true;
    pthread_mutex_lock(&k->mu);
    out->queued = k->n;
    out->running = k->active;
    pthread_mutex_unlock(&k->mu);
  }
  pthread_mutex_unlock(&s->write_mu);
}

int strata_compact_wait(strata_store *s) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_compact_wait: NULL store");
  pthread_mutex_lock(&s->write_mu);
  struct strata__compactor *k = s->compactor;
  pthread_mutex_unlock(&s->write_mu);
  if (k == NULL)
    return 0;
  pthread_mutex_lock(&k->mu);
  while (k->busy && !k->stop)
    pthread_cond_wait(&k->idle, &k->mu);
  pthread_mutex_unlock(&k->mu);
  return 0;
}
