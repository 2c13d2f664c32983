/* Crystallization: a proto becomes a region file, written by the same
 * writer region-builder uses, and replaces the proto in one catalog swap.
 * Also the eviction step of the memory thresholds, which crystallizes (the
 * accounting and the levels are store_memory.c's). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "writer/writer_internal.h"

static int add_lver(strata_writer *w, const strata__lver *lv, uint64_t *bytes) {
  *bytes += lv->size;
  return strata_writer_add(w, lv->id, lv->name, lv->metadata, lv->data,
                           (size_t)lv->size);
}

/* Streams the region's current content into the writer in id order: the
 * base file's layers merged with the proto's newest versions. */
static int write_content(const strata__entry *e, strata_writer *w,
                         uint64_t *bytes) {
  const strata__lver **latest;
  uint64_t n;
  if (strata__overlay_latest(e->overlay, &latest, &n) < 0)
    return strata__fail(STRATA_E_NOMEM, "region %" PRIu64 ": allocating",
                        e->id);
  uint64_t k = 0;
  int rc = 0;
  if (e->file != NULL) {
    strata_region_iter it;
    strata_layer l;
    strata_region_iter_init(e->file->region, &it);
    while (rc == 0 && (rc = strata_region_next(&it, &l)) > 0) {
      rc = 0;
      for (; rc == 0 && k < n && latest[k]->id < l.id; k++)
        if (!(latest[k]->flags & STRATA__LV_TOMBSTONE))
          rc = add_lver(w, latest[k], bytes);
      if (rc == 0 && k < n && latest[k]->id == l.id)
        continue; /* replaced or removed: the loop above handles it next */
      if (rc == 0) {
        *bytes += l.size;
        rc = strata_writer_add(w, l.id, l.name, l.metadata, l.data,
                               (size_t)l.size);
      }
    }
  }
  for (; rc == 0 && k < n; k++)
    if (!(latest[k]->flags & STRATA__LV_TOMBSTONE))
      rc = add_lver(w, latest[k], bytes);
  free(latest);
  return rc;
}

int strata__crystallize_locked(struct strata_store *s, uint64_t id) {
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  const strata__entry *old = strata__catalog_find(c, id);
  STRATA__FAIL_IF(old == NULL || old->overlay == NULL, STRATA_E_NO_REGION,
                  "%s: region %" PRIu64 " has no proto to crystallize", s->dir,
                  id);
  char *path = old->file != NULL ? strdup(old->file->path)
                                 : strata__store_path(s, old->name, ".region");
  if (path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  if (old->file == NULL) {
    /* A new region must not replace a file the store does not serve (but
     * may replace the one an earlier, failed crystallization of this proto
     * put in place). */
    if (!old->overlay->placed_file && access(path, F_OK) == 0) {
      int rc = strata__fail(STRATA_E_EXIST,
                            "%s: the file exists but is not region %" PRIu64,
                            path, id);
      free(path);
      return rc;
    }
  }

  uint64_t t0 = strata__mono_ns(), bytes = 0, fsync_ns = 0;
  bool placed = false;
  strata_writer_options opts;
  strata_writer_options_init(&opts);
  opts.region_id = id;
  opts.name = old->name;
  opts.metadata = old->metadata;
  /* The new file keeps every writer option the base file records: id, name
   * and metadata (above, from the entry, which has the file's) and the
   * content alignment, which GPU and direct-I/O readers rely on (a region
   * built with region-builder --align 4096 must not come back aligned to
   * 64). The header flags are not options: the writer derives them from
   * the ids. A region that has no file yet gets the writer's default. */
  if (old->file != NULL)
    opts.align = old->file->region->align;
  strata_writer *w = NULL;
  strata_region *r = NULL;
  dev_t dev = 0;
  ino_t ino = 0;
  int rc = strata_writer_open(path, &opts, &w);
  if (rc == 0)
    rc = strata__writer_reserve(
        w, (old->file ? strata_region_layer_count(old->file->region) : 0) +
               old->overlay->changed);
  if (rc == 0)
    rc = write_content(old, w, &bytes);
  if (rc == 0)
    rc = strata__writer_commit_prepare(w, &r, &dev, &ino);

  /* Everything the publication needs is allocated before the rename, so
   * that after it only the fsync of the directory can fail (strata.h). */
  strata__file *f = NULL;
  strata__entry *e = NULL;
  strata__overlay *fresh = NULL;
  strata__retired *rec = NULL;
  strata__catalog_change ch = {0};
  if (rc == 0)
    rc = strata__file_new(r, dev, ino, false, &f);
  if (rc == 0) {
    r = NULL; /* owned by f */
    rec = malloc(sizeof *rec);
    e = rec != NULL ? strata__entry_new(id, old->name, old->metadata, f) : NULL;
    if (e == NULL)
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", path);
  }
  if (rc == 0)
    rc = strata__overlay_new(s, &fresh);
  if (rc == 0) {
    e->overlay = fresh;
    e->generation = old->generation + 1;
    rc = strata__catalog_prepare(s, e, 0, &ch);
  }
  if (rc == 0)
    rc = strata__writer_commit_publish(w, &fsync_ns, &placed);
  strata_writer_abort(w);
  uint64_t total_ns = strata__mono_ns() - t0;
  if (rc == 0) {
    strata__overlay *prev = old->overlay;
    strata__catalog_commit(s, &ch); /* retires `old` */
    strata__retire_push(s, rec, prev, prev->bytes, strata__overlay_free);
  }
  if (rc < 0) {
    if (placed)
      old->overlay->placed_file = true;
    strata__catalog_abandon(&ch);
    strata_region_close(r);
    if (fresh != NULL)
      strata__overlay_free(s, fresh);
    if (e != NULL)
      strata__entry_free(s, e); /* and its reference to f */
    else
      strata__file_unref(s, f);
    free(rec);
    char qp[STRATA__LOG_PATH], qd[STRATA__LOG_TEXT];
    strata__log(&s->log, STRATA_LOG_ERROR, "crystallize",
                "msg=\"crystallization failed; the proto is intact\" "
                "region_id=%" PRIu64 " file=%s error=%s detail=%s",
                id, strata__log_quote(qp, sizeof qp, path), strata_err_name(rc),
                strata__log_quote(qd, sizeof qd, strata_last_error_detail()));
    free(path);
    return rc;
  }
  for (uint64_t i = 0; i < s->proto_n; i++)
    if (s->protos[i]->region_id == id && !s->protos[i]->discarded)
      s->protos[i]->created_ns = strata__mono_ns(); /* age restarts */
  s->stats.crystallizations++;
  s->stats.crystallize_bytes += bytes;
  s->stats.crystallize_write_ns += total_ns - fsync_ns;
  s->stats.crystallize_fsync_ns += fsync_ns;
  char qp[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_INFO, "crystallize",
              "msg=\"region crystallized\" region_id=%" PRIu64 " file=%s "
              "layers=%" PRIu64 " bytes=%" PRIu64 " write_ms=%.3f "
              "fsync_ms=%.3f generation=%" PRIu64,
              id, strata__log_quote(qp, sizeof qp, path),
              strata_region_layer_count(f->region), bytes,
              (double)(total_ns - fsync_ns) / 1e6, (double)fsync_ns / 1e6,
              e->generation);
  free(path);
  return 0;
}

int strata_crystallize(strata_store *s, uint64_t region_id) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_crystallize: NULL store");
  pthread_mutex_lock(&s->write_mu);
  int rc = strata__crystallize_locked(s, region_id);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
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
static const strata__entry *largest_proto(struct strata_store *s) {
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  const strata__entry *big = NULL;
  for (uint64_t i = 0; i < c->n; i++) {
    const strata__entry *e = c->by_order[i];
    if (e->overlay != NULL && e->overlay->changed > 0 &&
        (big == NULL || e->overlay->bytes > big->overlay->bytes))
      big = e;
  }
  return big;
}

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
void strata__memory_evict(struct strata_store *s) {
  if (s->mem_level < STRATA__MEM_EVICT || s->evicting)
    return;
  if (s->evict_pinned_epoch != 0 &&
      strata__ebr_min_epoch(s) <= s->evict_pinned_epoch)
    return; /* the previous round's memory is still held */
  s->evict_pinned_epoch = 0;
  s->evicting = true;
  uint64_t low = strata__memory_threshold(s, s->config.warn_pct);
  uint64_t heap = strata__store_heap(s), n = 0;
  const strata__entry *big;
  while (heap >= low && (big = largest_proto(s)) != NULL) {
    /* Eviction: the largest proto becomes a file, which frees its heap once
     * the snapshots that read it end. */
    uint64_t id = big->id, size = big->overlay->bytes;
    strata__log(&s->log, STRATA_LOG_WARN, "memory",
                "msg=\"memory above the eviction threshold: crystallizing the "
                "largest proto\" heap=%" PRIu64 " limit=%" PRIu64
                " low_watermark=%" PRIu64 " region_id=%" PRIu64
                " proto_bytes=%" PRIu64,
                heap, s->config.memory_limit, low, id, size);
    if (strata__crystallize_locked(s, id) < 0)
      break; /* logged; the next put past the threshold tries again */
    s->stats.evictions++;
    n++;
    strata__store_maintain(s); /* frees what no snapshot reads */
    heap = strata__store_heap(s);
  }
  if (n > 0 && heap >= low)
    s->evict_pinned_epoch =
        atomic_load_explicit(&s->epoch, memory_order_relaxed);
  cool_regions(s);
  (void)strata__memory_check(s);
  s->evicting = false;
}
