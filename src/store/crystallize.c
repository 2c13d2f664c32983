/* Crystallization: a proto becomes a region file, written by the same
 * writer region-builder uses, and replaces the proto in one catalog swap.
 * Also the eviction step of the memory thresholds, which crystallizes (the
 * accounting and the levels are store_memory.c's). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/struct_size.h"
#include "store/crystallize_internal.h"

static int visit_lver(strata__layer_fn fn, void *arg, const strata__lver *lv) {
  return fn(arg, lv->id, lv->name, lv->name_len, lv->metadata, lv->data,
            lv->size, &lv->checksum);
}

/* What a crystallization writes (choose_kind). */
typedef enum crys_kind {
  WRITE_BASE,  /* a whole base: the files merged with the proto */
  WRITE_DELTA, /* a delta over the top of the stack: the proto's changes */
  WRITE_MERGE, /* a delta of depth 1 over the base: the stack's deltas
                  merged with the proto's changes, replacing the stack */
} crys_kind;

/* The proto's newest versions in id order (strata__overlay_latest), as a
 * malloc'd array the caller frees. STRATA_E_NOMEM. */
static int latest_of(const strata__entry *e, const strata__lver ***out,
                     uint64_t *n) {
  *out = NULL;
  *n = 0;
  if (e->overlay != NULL && strata__overlay_latest(e->overlay, out, n) < 0)
    return strata__fail(STRATA_E_NOMEM, "region %" PRIu64 ": allocating",
                        e->id);
  return 0;
}

/* Visits the region's current content in id order: the files' layers
 * (base and deltas) merged with the proto's newest versions. */
int strata__content_base(const strata__entry *e, strata__layer_fn fn,
                         void *arg) {
  const strata__lver **latest;
  uint64_t n;
  STRATA__TRY(latest_of(e, &latest, &n));
  uint64_t k = 0;
  int rc = 0;
  strata__files_iter it;
  strata_layer l;
  strata__files_iter_init(e, &it);
  while (rc == 0 && (rc = strata__files_next(&it, &l)) > 0) {
    rc = 0;
    for (; rc == 0 && k < n && latest[k]->id < l.id; k++)
      if (!(latest[k]->flags & STRATA__LV_TOMBSTONE))
        rc = visit_lver(fn, arg, latest[k]);
    if (rc == 0 && k < n && latest[k]->id == l.id)
      continue; /* replaced or removed: the loop above handles it next */
    if (rc == 0)
      rc = fn(arg, l.id, l.name, l.name_len, l.metadata, l.data, l.size, NULL);
  }
  for (; rc == 0 && k < n; k++)
    if (!(latest[k]->flags & STRATA__LV_TOMBSTONE))
      rc = visit_lver(fn, arg, latest[k]);
  free(latest);
  return rc;
}

/* Visits what a delta over the entry's files holds: the proto's newest
 * versions in id order, a removal as a tombstone (size STRATA__TOMBSTONE) when
 * the files hold the layer (a layer put and removed within the proto left
 * nothing to hide). */
static int delta_content(const strata__entry *e, strata__layer_fn fn,
                         void *arg) {
  const strata__lver **latest;
  uint64_t n;
  STRATA__TRY(latest_of(e, &latest, &n));
  int rc = 0;
  for (uint64_t k = 0; rc == 0 && k < n; k++) {
    strata_layer l;
    if (!(latest[k]->flags & STRATA__LV_TOMBSTONE))
      rc = visit_lver(fn, arg, latest[k]);
    else if (strata__entry_file_get(e, latest[k]->id, &l) > 0)
      rc = fn(arg, latest[k]->id, NULL, 0, NULL, NULL, STRATA__TOMBSTONE, NULL);
  }
  free(latest);
  return rc;
}

/* Visits what a delta merging the entry's stack with its proto holds, over
 * the base alone: for each id of the stack or the proto, in id order, the
 * newest version (the proto's, else the newest delta's), and a tombstone
 * where that version is a removal of a layer the base holds (a removal of
 * a layer some delta added hides nothing once that delta is merged). */
int strata__content_merged(const strata__entry *e, strata__layer_fn fn,
                           void *arg) {
  const strata__lver **latest;
  uint64_t n;
  STRATA__TRY(latest_of(e, &latest, &n));
  const strata__stack *st = e->stack;
  const strata_region *base = e->file->region;
  uint64_t k = 0, i = 0, ns = st != NULL ? st->nslots : 0;
  int rc = 0;
  while (rc == 0 && (k < n || i < ns)) {
    uint64_t id;
    bool tomb;
    if (k < n && (i == ns || latest[k]->id <= st->slots[i].id)) {
      const strata__lver *lv = latest[k++];
      id = lv->id;
      if (i < ns && st->slots[i].id == id)
        i++; /* the proto's version replaces the stack's */
      tomb = (lv->flags & STRATA__LV_TOMBSTONE) != 0;
      if (!tomb)
        rc = visit_lver(fn, arg, lv);
    } else {
      const strata__stack_slot *sl = &st->slots[i++];
      id = sl->id;
      tomb = sl->tomb;
      if (!tomb) {
        strata_layer l;
        strata__layer_from_entry(st->deltas[sl->delta]->region, sl->entry, &l);
        rc =
            fn(arg, l.id, l.name, l.name_len, l.metadata, l.data, l.size, NULL);
      }
    }
    if (rc == 0 && tomb && strata__find_entry(base, id) >= 0)
      rc = fn(arg, id, NULL, 0, NULL, NULL, STRATA__TOMBSTONE, NULL);
  }
  free(latest);
  return rc;
}

/* The content bytes of the proto's newest versions (*out). */
static int proto_bytes(const strata__entry *e, uint64_t *out) {
  const strata__lver **latest;
  uint64_t n;
  STRATA__TRY(latest_of(e, &latest, &n));
  *out = 0;
  for (uint64_t k = 0; k < n; k++)
    if (!(latest[k]->flags & STRATA__LV_TOMBSTONE))
      *out += latest[k]->size;
  free(latest);
  return 0;
}

/* Progress of one crystallization: the caller's callback, and the totals
 * the writer does not know, in the writer's measure (content bytes with
 * the alignment padding before each layer). */
typedef struct crys_progress {
  strata_progress_fn fn;
  void *ctx;
  uint32_t align;
  strata_progress p; /* as last reported */
  bool called;
} crys_progress;

static int count_layer(void *arg, uint64_t id, const char *name,
                       size_t name_len, const char *metadata, const void *data,
                       uint64_t size, const uint64_t *checksum) {
  (void)id, (void)name, (void)name_len, (void)metadata, (void)data;
  (void)checksum;
  crys_progress *cp = arg;
  uint64_t a = cp->align;
  if (size == STRATA__TOMBSTONE) {
    cp->p.layers_total++;
    return 0;
  }
  cp->p.bytes_total = (cp->p.bytes_total + a - 1) / a * a + size;
  cp->p.layers_total++;
  return 0;
}

/* The writer's progress callback: adds the totals. */
static int crys_report(void *arg, const strata_progress *wp) {
  crys_progress *cp = arg;
  cp->p.bytes_done = wp->bytes_done;
  cp->p.layers_done = wp->layers_done;
  cp->called = true;
  return cp->fn(cp->ctx, &cp->p);
}

/* add_layer()'s argument. */
typedef struct add_arg {
  strata_writer *w;
  uint64_t *bytes; /* content bytes added */
} add_arg;

/* A proto's layer version goes in with the checksum its put computed:
 * the writer copies it without hashing it again. */
static int add_layer(void *arg, uint64_t id, const char *name, size_t name_len,
                     const char *metadata, const void *data, uint64_t size,
                     const uint64_t *checksum) {
  add_arg *a = arg;
  if (size == STRATA__TOMBSTONE)
    return strata__writer_add_tombstone(a->w, id);
  *a->bytes += size;
  if (checksum != NULL)
    return strata__writer_add_hashed(a->w, id, name, name_len, metadata, data,
                                     (size_t)size, *checksum);
  return strata_writer_add(a->w, id, name, name_len, metadata, data,
                           (size_t)size);
}

/* Streams the region's current content into the writer, and reports the
 * end to the progress callback (if the writer's last report was not it:
 * a region without layers gets no report from the writer). */
static int write_content(const strata__entry *e, strata__content_fn content,
                         strata_writer *w, crys_progress *cp, uint64_t *bytes) {
  add_arg arg = {w, bytes};
  STRATA__TRY(content(e, add_layer, &arg));
  if (cp == NULL || (cp->called && cp->p.bytes_done == cp->p.bytes_total &&
                     cp->p.layers_done == cp->p.layers_total))
    return 0;
  cp->p.bytes_done = cp->p.bytes_total;
  cp->p.layers_done = cp->p.layers_total;
  STRATA__FAIL_IF(cp->fn(cp->ctx, &cp->p) != 0, STRATA_E_CANCELED,
                  "region %" PRIu64 ": crystallization canceled by the "
                  "progress callback",
                  e->id);
  return 0;
}

void strata__crys_writer_options(const strata__entry *e,
                                 strata_writer_options *opts) {
  strata_writer_options_init(opts);
  opts->region_id = e->id;
  opts->name = e->name;
  opts->metadata = e->metadata;
  /* The new file keeps every writer option the base file records: id, name
   * and metadata (above, from the entry, which has the file's) and the
   * content alignment, which GPU and direct-I/O readers rely on (a region
   * built with region-builder --align 4096 must not come back aligned to
   * 64). The header flags are not options: the writer derives them from
   * the ids. A region that has no file yet gets the writer's default. */
  if (e->file != NULL)
    opts->align = e->file->region->align;
}

int strata__crys_write(const strata__entry *e, strata__content_fn content,
                       strata_writer *w, uint64_t *bytes) {
  return write_content(e, content, w, NULL, bytes);
}

/* The overlay whose placed file the checks below accept: the entry's, or
 * none (a compaction of a region without a proto, compact.c). */
static const strata__overlay *placed_of(const strata__entry *e) {
  static const strata__overlay none;
  return e->overlay != NULL ? e->overlay : &none;
}

/* The file under the region's name must still be the one the proto was
 * merged over: the base file this store serves (or, after a failed
 * crystallization that placed its file, that file), or no file at all for
 * a new region. A writer that does not take the store's lock (a foreign
 * tool, a region-builder without it, cp) may have replaced or removed it
 * since; renaming over it would silently undo that change, so the
 * crystallization fails instead and keeps the proto.
 *
 * Called at the start (to fail before writing anything) and again just
 * before the rename, with the writer mutex and the store's writer lock
 * held, so that only a writer that ignores the lock can slip in between the
 * check and the rename (a window of two system calls). The identity is the
 * inode and device, which cannot be reused while this store keeps the base
 * file mapped, and the size, which catches a rewrite in place of a file of
 * another size. The name is followed like strata__file_open() follows it. */
int strata__crys_check_base(struct strata_store *s, const strata__entry *old,
                            const char *path) {
  const char *name = strata__file_name(path);
  const strata__overlay *o = placed_of(old);
  bool placed = o->placed_file && !o->placed_delta;
  bool want = placed || old->file != NULL;
  dev_t wdev = placed ? o->placed_dev : want ? old->file->dev : 0;
  ino_t wino = placed ? o->placed_ino : want ? old->file->ino : 0;
  /* After a placed file, its size is not kept: the identity suffices. */
  bool wsize = !placed && want;
  uint64_t size = wsize ? old->file->region->size : 0;
  struct stat st;
  /* Where no file is expected, any name counts, a dangling symlink too (as
   * in strata_proto_create); an expected file is followed like
   * strata__file_open() follows it. */
  bool found =
      fstatat(s->dirfd, name, &st, want ? 0 : AT_SYMLINK_NOFOLLOW) == 0;
  if (!found && errno != ENOENT)
    return strata__fail_errno(
        errno, "%s: region %" PRIu64 ": checking the file before replacing it",
        path, old->id);
  if (found == want && (!found || (st.st_dev == wdev && st.st_ino == wino &&
                                   (!wsize || (uint64_t)st.st_size == size))))
    return 0;
  const char *keep = "nothing was replaced and the proto is intact: discard "
                     "it to serve the file on disk (after a refresh), or "
                     "keep it (crystallizing again fails the same way)";
  if (!want)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: region %" PRIu64 " (\"%s\"): expected no file "
                        "under the new region's name, found one (device %ju "
                        "inode %ju, %jd bytes) written by another writer; %s",
                        path, old->id, old->name, (uintmax_t)st.st_dev,
                        (uintmax_t)st.st_ino, (intmax_t)st.st_size, keep);
  char exp[96];
  snprintf(exp, sizeof exp, "device %ju inode %ju", (uintmax_t)wdev,
           (uintmax_t)wino);
  if (wsize)
    snprintf(exp + strlen(exp), sizeof exp - strlen(exp), ", %" PRIu64 " bytes",
             size);
  if (!found)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: region %" PRIu64 " (\"%s\"): expected the file "
                        "the proto was merged over (%s), found no file: "
                        "another writer removed it; %s",
                        path, old->id, old->name, exp, keep);
  return strata__fail(STRATA_E_CONFLICT,
                      "%s: region %" PRIu64 " (\"%s\"): expected the file "
                      "the proto was merged over (%s), found device %ju inode "
                      "%ju, %jd bytes: another writer replaced it; %s",
                      path, old->id, old->name, exp, (uintmax_t)st.st_dev,
                      (uintmax_t)st.st_ino, (intmax_t)st.st_size, keep);
}

const char *strata__file_name(const char *path) {
  const char *n = strrchr(path, '/');
  return n != NULL ? n + 1 : path;
}

/* Issue 14's base check extended to the top of the stack: each delta the
 * proto was merged over is still the file under its name, and no other
 * writer put a delta over the top (a file at `next`, the name of the delta
 * of the next depth, bound to this base and top). A file at `next` bound
 * elsewhere is stale (left by a compaction whose unlink failed) and may be
 * replaced, as may this proto's own placed delta. Called where
 * strata__crys_check_base is, with the same locks. `path` is the file being
 * written, named in every error. */
int strata__crys_check_stack(struct strata_store *s, const strata__entry *old,
                             const char *path, const char *next) {
  const strata__stack *st = old->stack;
  const char *top = old->file->path;
  const strata__overlay *o = placed_of(old);
  /* A failed try of this proto placed a base (its rename went through,
   * then the directory fsync failed; strata__crys_check_base compares that
   * file): every delta on disk, the stack's and any this proto placed before,
   * is bound to the base it replaced, so stale whatever became of it, and the
   * retry writes a base again (choose_kind()). Checking them would call this
   * proto's own earlier files foreign for ever. */
  if (o->placed_file && !o->placed_delta)
    return 0;
  for (uint32_t d = 0; st != NULL && d < st->n; d++) {
    const strata__file *f = st->deltas[d];
    struct stat sb;
    bool found = fstatat(s->dirfd, strata__file_name(f->path), &sb, 0) == 0;
    if (!found && errno != ENOENT)
      return strata__fail_errno(errno,
                                "%s: region %" PRIu64 ": checking the delta "
                                "%s before writing",
                                path, old->id, f->path);
    bool same = found && sb.st_dev == f->dev && sb.st_ino == f->ino &&
                (uint64_t)sb.st_size == f->region->size;
    /* A merge of this proto that failed after its rename replaced the
     * first delta with its own file, which the next try replaces. */
    same |= found && o->placed_file && o->placed_merge &&
            sb.st_dev == o->placed_dev && sb.st_ino == o->placed_ino;
    STRATA__FAIL_IF(!same, STRATA_E_CONFLICT,
                    "%s: region %" PRIu64 " (\"%s\"): the delta %s the proto "
                    "was merged over was removed or replaced by another "
                    "writer; nothing was replaced and the proto is intact",
                    path, old->id, old->name, f->path);
    top = f->path;
  }
  struct stat sb;
  if (fstatat(s->dirfd, strata__file_name(next), &sb, 0) != 0) {
    if (errno == ENOENT)
      return 0;
    return strata__fail_errno(errno,
                              "%s: region %" PRIu64 ": checking %s before "
                              "writing",
                              path, old->id, next);
  }
  if (o->placed_file && o->placed_delta && !o->placed_merge &&
      sb.st_dev == o->placed_dev && sb.st_ino == o->placed_ino)
    return 0;
  strata_region *r = NULL;
  strata_region_delta_info b;
  strata_region_info bi, ti;
  strata_region_info_get(old->file->region, &bi);
  strata_region_info_get(
      st != NULL ? st->deltas[st->n - 1]->region : old->file->region, &ti);
  bool foreign = strata_region_open(next, 0, &r) == 0 &&
                 strata_region_delta(r, &b) == 0 &&
                 b.base_checksum == bi.header_checksum &&
                 b.parent_checksum == ti.header_checksum;
  strata_region_close(r);
  STRATA__FAIL_IF(foreign, STRATA_E_CONFLICT,
                  "%s: region %" PRIu64 " (\"%s\"): another writer wrote the "
                  "delta %s over %s, the top of the stack the proto was "
                  "merged over; nothing was replaced and the proto is intact",
                  path, old->id, old->name, next, top);
  return 0;
}

/* The path of the delta of depth `depth` of region `name`. */
char *strata__delta_path(struct strata_store *s, const char *name,
                         uint32_t depth) {
  char suffix[32];
  snprintf(suffix, sizeof suffix, ".%" PRIu32 ".delta", depth);
  return strata__store_path(s, name, suffix);
}

/* After a compaction or a merge: the old stack's deltas (and a delta this
 * proto placed earlier, `placed`) are stale by their binding; removing them
 * only saves space, so a failure is a WARN. `keep` is the file a merge put
 * in place under the name of the stack's first delta (NULL for a base). */
void strata__crys_unlink_stale(struct strata_store *s, const strata__entry *old,
                               const char *keep, const char *placed) {
  const strata__stack *st = old->stack;
  uint32_t n = st != NULL ? st->n : 0;
  for (uint32_t d = 0; d <= n; d++) {
    const char *p = d < n ? st->deltas[d]->path : placed;
    if (p == NULL || (keep != NULL && strcmp(strata__file_name(p),
                                             strata__file_name(keep)) == 0))
      continue;
    if (unlinkat(s->dirfd, strata__file_name(p), 0) != 0 && errno != ENOENT) {
      char qp[STRATA__LOG_PATH];
      strata__log(&s->log, STRATA_LOG_WARN, "crystallize",
                  "msg=\"could not remove a delta made stale by a "
                  "%s\" region_id=%" PRIu64 " file=%s errno=%d",
                  keep != NULL ? "merge" : "compaction", old->id,
                  strata__log_quote(qp, sizeof qp, p), errno);
    }
  }
}

/* Chooses what to write (docs/ARCHITECTURE.md, "Crystallize"). A delta or
 * a merge needs a store that allows them, a proto with changes and a
 * region with a base this proto did not replace. Then, with P the
 * proto's content bytes and B the base file's bytes: below STRATA__MAX_DEPTH, a
 * delta when P < B/4; at STRATA__MAX_DEPTH, a merge when the stack's delta
 * files and P together are below B/4 (the bytes of those files bound the merged
 * delta's: it keeps one version per id). Otherwise a base. */
static int choose_kind(const struct strata_store *s, const strata__entry *old,
                       crys_kind *kind) {
  *kind = WRITE_BASE;
  const strata__overlay *o = old->overlay;
  /* A crystallization without changes compacts (strata crystallize on
   * an untouched region merges its stack into the base). */
  if (old->file == NULL || o->changed == 0 ||
      (s->config.flags & STRATA_STORE_NO_DELTAS) ||
      (o->placed_file && !o->placed_delta))
    return 0;
  uint64_t bytes = 0, quarter = old->file->region->size / 4;
  STRATA__TRY(proto_bytes(old, &bytes));
  const strata__stack *st = old->stack;
  uint32_t depth = st != NULL ? st->n : 0;
  /* With background compaction, the stack may grow past STRATA__MAX_DEPTH
   * while the compactor rewrites it (compact.c): the merge or the base
   * that would run here runs there. Past STRATA__MAX_DEPTH_BACKGROUND (a
   * compactor that cannot keep up, or one that failed) it runs here. */
  uint32_t limit =
      s->compactor != NULL ? STRATA__MAX_DEPTH_BACKGROUND : STRATA__MAX_DEPTH;
  if (depth < limit) {
    *kind = bytes < quarter ? WRITE_DELTA : WRITE_BASE;
    return 0;
  }
  for (uint32_t d = 0; d < depth; d++)
    bytes += st->deltas[d]->region->size;
  *kind = bytes < quarter ? WRITE_MERGE : WRITE_BASE;
  return 0;
}

/* The new entry's stack: with `keep`, the old one's deltas with `top`
 * above them; without, `top` alone (a merge). `top`'s reference is taken
 * over on success. */
static int stack_with(const strata__entry *old, bool keep, strata__file *top,
                      strata__stack **out) {
  uint32_t n = keep && old->stack != NULL ? old->stack->n : 0;
  strata__file **files = malloc((n + 1) * sizeof *files);
  if (files == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", top->path);
  for (uint32_t d = 0; d < n; d++)
    files[d] = old->stack->deltas[d];
  files[n] = top;
  int rc = strata__stack_new(old->file, files, n + 1, out, NULL);
  if (rc == 0)
    for (uint32_t d = 0; d < n; d++)
      files[d]->refs++;
  free(files);
  return rc;
}

int strata__crystallize_locked(struct strata_store *s, uint64_t id,
                               strata_progress_fn progress, void *ctx) {
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  const strata__entry *old = strata__catalog_find(c, id);
  STRATA__FAIL_IF(old == NULL || old->overlay == NULL, STRATA_E_NO_REGION,
                  "%s: region %" PRIu64 " has no proto to crystallize", s->dir,
                  id);
  crys_kind kind;
  STRATA__TRY(choose_kind(s, old, &kind));
  bool delta = kind != WRITE_BASE; /* the new file is a delta */
  uint32_t depth = old->stack != NULL ? old->stack->n : 0;
  char *base_path =
      old->file != NULL
          ? strdup(old->file->path)
          : strata__store_path(s, old->name, STRATA__REGION_SUFFIX);
  /* The name of the delta over the current top: written by a delta,
   * checked (and, when this proto placed it, removed) by a compaction or
   * a merge; and that of the first delta, which a merge writes. */
  char *next =
      old->file != NULL ? strata__delta_path(s, old->name, depth + 1) : NULL;
  char *first = old->file != NULL ? strata__delta_path(s, old->name, 1) : NULL;
  if (base_path == NULL ||
      (old->file != NULL && (next == NULL || first == NULL))) {
    free(base_path);
    free(next);
    free(first);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  }
  const char *path = kind == WRITE_MERGE   ? first
                     : kind == WRITE_DELTA ? next
                                           : base_path;
  int rc = 0;
  if (old->file == NULL) {
    /* A new region must not replace a file the store does not serve (but
     * may replace the one an earlier, failed crystallization of this proto
     * put in place). */
    if (!old->overlay->placed_file &&
        faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
      rc = strata__fail(STRATA_E_EXIST,
                        "%s: the file exists but is not region %" PRIu64, path,
                        id);
  }
  if (rc == 0 && (old->file != NULL || old->overlay->placed_file))
    rc = strata__crys_check_base(s, old, base_path);
  if (rc == 0 && old->file != NULL)
    rc = strata__crys_check_stack(s, old, path, next);
  if (rc < 0) {
    free(base_path);
    free(next);
    free(first);
    return rc;
  }

  uint64_t t0 = strata__mono_ns(), bytes = 0, fsync_ns = 0;
  bool placed = false;
  strata_writer_options opts;
  strata__crys_writer_options(old, &opts);
  crys_progress cp = {.fn = progress,
                      .ctx = ctx,
                      .align = opts.align ? opts.align : STRATA__DEFAULT_ALIGN};
  if (progress != NULL) {
    opts.progress = crys_report;
    opts.progress_ctx = &cp;
  }
  strata__content_fn content = kind == WRITE_MERGE   ? strata__content_merged
                               : kind == WRITE_DELTA ? delta_content
                                                     : strata__content_base;
  strata_writer *w = NULL;
  strata_region *r = NULL;
  dev_t dev = 0;
  ino_t ino = 0;
  rc = progress != NULL ? content(old, count_layer, &cp) : 0;
  if (rc == 0)
    rc = strata_writer_open(path, &opts, &w);
  /* A file that replaces others (a base over a base, a merged delta over
   * the first delta) must not take over the bindings of the deltas it
   * makes stale by having the same bytes as what it replaces. */
  if (rc == 0 && kind != WRITE_DELTA && old->file != NULL)
    strata__writer_fresh_seed(w);
  if (rc == 0 && delta) {
    /* Bound to the top of the stack (a merge: to the base) and to the base
     * (FORMAT.md, "Delta files"). */
    strata_region_info bi, ti;
    strata_region_info_get(old->file->region, &bi);
    bool over_top = kind == WRITE_DELTA && depth > 0;
    strata_region_info_get(over_top ? old->stack->deltas[depth - 1]->region
                                    : old->file->region,
                           &ti);
    rc = strata__writer_set_delta(w, ti.header_checksum, bi.header_checksum,
                                  kind == WRITE_DELTA ? depth + 1 : 1);
  }
  uint64_t files_layers = kind == WRITE_MERGE ? old->stack->nslots
                          : delta || old->file == NULL
                              ? 0
                              : strata__entry_file_layers(old);
  if (rc == 0)
    rc = strata__writer_reserve(w, files_layers + old->overlay->changed);
  if (rc == 0)
    rc = write_content(old, content, w, progress != NULL ? &cp : NULL, &bytes);
  if (rc == 0)
    rc = strata__writer_commit_prepare(w, &r, &dev, &ino);

  /* Everything the publication needs is allocated before the rename, so
   * that after it only the fsync of the directory can fail (strata.h). */
  strata__file *f = NULL;
  strata__entry *e = NULL;
  strata__stack *st = NULL;
  strata__overlay *fresh = NULL;
  strata__retired *rec = NULL;
  strata__catalog_change ch = {0};
  if (rc == 0)
    rc = strata__file_new(r, dev, ino, false, &f);
  if (rc == 0) {
    r = NULL; /* owned by f */
    if (delta && (rc = stack_with(old, kind == WRITE_DELTA, f, &st)) == 0)
      f = NULL; /* owned by st */
  }
  if (rc == 0) {
    strata__file *ef = delta ? old->file : f;
    if (delta)
      ef->refs++;
    rec = malloc(sizeof *rec);
    e = rec != NULL ? strata__entry_new(id, old->name, old->metadata, ef)
                    : NULL;
    if (e == NULL) {
      if (delta)
        strata__file_unref(s, ef);
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", path);
    } else {
      f = NULL; /* owned by e */
      e->stack = st;
      st = NULL;
    }
  }
  if (rc == 0)
    rc = strata__overlay_new(s, &fresh);
  if (rc == 0) {
    e->overlay = fresh;
    e->generation = old->generation + 1;
    rc = strata__catalog_prepare(s, e, 0, &ch);
  }
  if (rc == 0)
    rc = strata__crys_check_base(s, old, base_path);
  if (rc == 0 && old->file != NULL)
    rc = strata__crys_check_stack(s, old, path, next);
  if (rc == 0)
    rc = strata__writer_commit_publish(w, &fsync_ns, &placed);
  strata_writer_abort(w);
  uint64_t total_ns = strata__mono_ns() - t0;
  if (rc == 0) {
    strata__overlay *prev = old->overlay;
    strata__catalog_commit(s, &ch); /* retires `old` (freed after the lock) */
    if (kind != WRITE_DELTA && old->file != NULL) {
      const char *own = !prev->placed_file || !prev->placed_delta ? NULL
                        : prev->placed_merge                      ? first
                                                                  : next;
      strata__crys_unlink_stale(s, old, kind == WRITE_MERGE ? first : NULL,
                                own);
    }
    strata__retire_push(s, rec, prev, prev->bytes, strata__overlay_free);
  }
  if (rc < 0) {
    if (placed) {
      old->overlay->placed_file = true;
      old->overlay->placed_delta = delta;
      old->overlay->placed_merge = kind == WRITE_MERGE;
      old->overlay->placed_dev = dev;
      old->overlay->placed_ino = ino;
      /* Every allocation succeeded before the rename: e holds the placed
       * file, as its base or as its stack's newest delta. */
      strata__file *pf = delta ? e->stack->deltas[e->stack->n - 1] : e->file;
      pf->refs++;
      strata__file_unref(s, old->overlay->placed_keep);
      old->overlay->placed_keep = pf;
    }
    strata__catalog_abandon(&ch);
    strata_region_close(r);
    if (fresh != NULL)
      strata__overlay_free(s, fresh);
    if (e != NULL)
      strata__entry_free(s, e); /* and its references */
    strata__stack_free(s, st);
    strata__file_unref(s, f);
    free(rec);
    char qp[STRATA__LOG_PATH], qd[STRATA__LOG_TEXT];
    /* A cancellation is the caller's choice, not a failure to report. */
    strata__log(&s->log,
                rc == STRATA_E_CANCELED ? STRATA_LOG_INFO : STRATA_LOG_ERROR,
                "crystallize",
                "msg=\"crystallization %s; the proto is intact\" "
                "region_id=%" PRIu64 " file=%s error=%s detail=%s",
                rc == STRATA_E_CANCELED ? "canceled" : "failed", id,
                strata__log_quote(qp, sizeof qp, path), strata_err_name(rc),
                strata__log_quote(qd, sizeof qd, strata_last_error_detail()));
    free(base_path);
    free(next);
    free(first);
    return rc;
  }
  for (uint64_t i = 0; i < s->proto_n; i++)
    if (s->protos[i]->region_id == id && !s->protos[i]->discarded)
      s->protos[i]->created_ns = strata__mono_ns(); /* age restarts */
  /* The stack is as deep as a foreground crystallization lets it get: the
   * compactor merges or rewrites it from here (compact.c). */
  if (kind == WRITE_DELTA && depth + 1 >= STRATA__MAX_DEPTH &&
      s->compactor != NULL)
    s->compact_request(s, id);
  s->stats.crystallizations++;
  s->stats.crystallize_bytes += bytes;
  s->stats.crystallize_write_ns += total_ns - fsync_ns;
  s->stats.crystallize_fsync_ns += fsync_ns;
  char qp[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_INFO, "crystallize",
              "msg=\"region crystallized\" region_id=%" PRIu64 " file=%s "
              "kind=%s depth=%" PRIu32 " layers=%" PRIu64 " bytes=%" PRIu64
              " write_ms=%.3f fsync_ms=%.3f generation=%" PRIu64,
              id, strata__log_quote(qp, sizeof qp, path),
              kind == WRITE_MERGE   ? "merge"
              : kind == WRITE_DELTA ? "delta"
                                    : "base",
              kind == WRITE_MERGE ? 1
              : delta             ? depth + 1
                                  : 0,
              strata__entry_file_layers(e), bytes,
              (double)(total_ns - fsync_ns) / 1e6, (double)fsync_ns / 1e6,
              e->generation);
  free(base_path);
  free(next);
  free(first);
  return 0;
}

void strata_crystallize_options_init(strata_crystallize_options *o) {
  if (o != NULL)
    *o = (strata_crystallize_options){.struct_size = sizeof *o};
}

int strata_crystallize_ex(strata_store *s, uint64_t region_id,
                          const strata_crystallize_options *in) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_crystallize: NULL store");
  strata_crystallize_options o;
  strata_crystallize_options_init(&o);
  STRATA__TRY(STRATA__READ_SIZED(s->dir, strata_crystallize_options, &o, in));
  STRATA__FAIL_IF(o.flags != 0, STRATA_E_INVAL,
                  "%s: unknown crystallize flags 0x%" PRIx32, s->dir, o.flags);
  pthread_mutex_lock(&s->write_mu);
  /* Checked here, not in strata__crystallize_locked, which eviction calls
   * too: a claimed store has no protos to evict, and eviction must not
   * report a claim as its failure. */
  int rc = strata__store_writable(s);
  if (rc == 0)
    rc = strata__crystallize_locked(s, region_id, o.progress, o.progress_ctx);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}

int strata_crystallize(strata_store *s, uint64_t region_id) {
  return strata_crystallize_ex(s, region_id, NULL);
}

/* ---- the eviction step of the memory thresholds -------------------------- */

/* Asks the kernel to reclaim the pages of every mapped region first when
 * memory is short; the files stay mapped and fault back in on use. */
static void cool_regions(struct strata_store *s) {
#ifdef MADV_COLD
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  for (uint64_t i = 0; i < c->n; i++) {
    const strata__file *f = c->by_order[i]->file;
    if (f != NULL)
      (void)madvise((void *)f->region->base, f->region->size, MADV_COLD);
  }
#else
  (void)s;
#endif
}

/* The proto with the most heap that has changes to write, or NULL. */
/* The largest proto with changes, other than the `nskip` regions in `skip`
 * (those whose crystallization failed in this round). */
static const strata__entry *largest_proto(struct strata_store *s,
                                          const uint64_t *skip, size_t nskip) {
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  const strata__entry *big = NULL;
  for (uint64_t i = 0; i < c->n; i++) {
    const strata__entry *e = c->by_order[i];
    if (e->overlay == NULL || e->overlay->changed == 0 ||
        (big != NULL && e->overlay->bytes <= big->overlay->bytes))
      continue;
    bool skipped = false;
    for (size_t k = 0; k < nskip && !skipped; k++)
      skipped = skip[k] == e->id;
    if (!skipped)
      big = e;
  }
  return big;
}

/* Protos whose crystallization may fail in one eviction round before the
 * round gives up (each failure is logged). */
#define EVICT_MAX_FAILED 16

/* Eviction is hysteretic: crossing evict_pct starts a round that
 * crystallizes protos, largest first, until the heap is below warn_pct
 * (the low watermark), so that the next round needs the heap to grow by
 * the gap between the two thresholds again (10 % of the limit with the
 * defaults). Evicting one proto per put instead kept the heap just under
 * evict_pct, and every put past it paid a full rewrite and fsync. A round
 * crystallizes each proto at most once (a crystallized proto has no
 * changes left) and frees their heap at once when no snapshot reads it.
 * When snapshots do hold it, the round ends above the watermark and the
 * next rounds wait until those snapshots end: crystallizing more in the
 * meantime would free nothing either. */
void strata__memory_evict(struct strata_store *s, uint64_t need) {
  if ((s->mem_level < STRATA__MEM_EVICT && need == 0) || s->evicting)
    return;
  if (s->evict_pinned_epoch != 0 &&
      strata__ebr_min_epoch(s) <= s->evict_pinned_epoch)
    return; /* the previous round's memory is still held */
  s->evict_pinned_epoch = 0;
  s->evicting = true;
  uint64_t low = strata__memory_threshold(s, s->config.warn_pct);
  uint64_t refuse = strata__memory_threshold(s, s->config.refuse_pct);
  uint64_t heap = strata__store_heap(s), n = 0;
  const strata__entry *big;
  /* A proto that cannot be crystallized (a conflict with a foreign writer
   * persists until it is discarded, a full disk may) is passed over for
   * the rest of the round: stopping at it would leave every other proto
   * in memory until puts are refused. */
  uint64_t failed[EVICT_MAX_FAILED];
  size_t nfailed = 0;
  while ((heap >= low || heap + need > refuse) &&
         (big = largest_proto(s, failed, nfailed)) != NULL) {
    /* Eviction: the largest proto becomes a file, which frees its heap once
     * the snapshots that read it end. */
    uint64_t id = big->id, size = big->overlay->bytes;
    strata__log(&s->log, STRATA_LOG_WARN, "memory",
                "msg=\"memory above the eviction threshold: crystallizing the "
                "largest proto\" heap=%" PRIu64 " limit=%" PRIu64
                " low_watermark=%" PRIu64 " region_id=%" PRIu64
                " proto_bytes=%" PRIu64,
                heap, s->config.memory_limit, low, id, size);
    if (strata__crystallize_locked(s, id, NULL, NULL) < 0) {
      /* Logged; the next round tries it again. */
      if (nfailed == EVICT_MAX_FAILED)
        break;
      failed[nfailed++] = id;
      continue;
    }
    s->stats.evictions++;
    n++;
    strata__store_maintain(s); /* frees what no snapshot reads */
    heap = strata__store_heap(s);
  }
  if (n > 0 && (heap >= low || heap + need > refuse))
    s->evict_pinned_epoch =
        atomic_load_explicit(&s->epoch, memory_order_relaxed);
  cool_regions(s);
  (void)strata__memory_check(s);
  s->evicting = false;
}
