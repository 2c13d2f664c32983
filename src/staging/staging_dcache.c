/* The GPU-resident layer cache: device copies of layers, allocated from
 * the device's stream-ordered pool, kept within a byte budget by CLOCK.
 *
 * An entry is filled by staging the layer (staging_pages.c) and enqueuing
 * the copy on the caller's stream, after which an event is recorded: a
 * later get on another stream makes that stream wait for the event, so no
 * caller sees a half-copied entry. An entry is evicted only when nothing
 * holds it, after its copy has completed.
 *
 * Sequential prefetch: a get of layer n of the region whose layer n - 1
 * was the previous get also stages layer n + 1 (if it exists and fits
 * without evicting a held entry) and enqueues its copy on a pool stream.
 * The staging itself runs in the get, under the cache's mutex.
 *
 * One mutex (strata__dcache.mu) guards the cache; it is held across a
 * miss, so misses are serialized. Order: the cache's mutex, then the
 * pool's `mu` (staging).
 *
 * The table and the CLOCK ring are a strata__ltable (staging_ltable.c),
 * shared with the staged layers; what is particular here is what may not
 * be evicted (a held entry, or one whose copy is still running) and the
 * entry replaced while held, which leaves the table but stays in the ring
 * until its last hold goes. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>

#include "staging/staging.h"

/* An entry: its key, table link, CLOCK position and reference bit are in
 * `node` (staging_ltable.h). */
typedef struct strata__dentry {
  strata__lnode node;
  uint64_t size, checksum;
  void *dptr;
  strata__devent *ready; /* recorded after the copy */
  uint32_t holders;
} strata__dentry;

struct strata_device_layer {
  strata__staging *st;
  strata__dentry *e;
};

static strata__dentry *entry_of(strata__lnode *n) {
  return (strata__dentry *)((char *)n - offsetof(strata__dentry, node));
}

int strata__dcache_init(strata__staging *st) {
  strata__dcache *dc = &st->dcache;
  dc->budget = st->store->config.staging.device_cache_bytes;
  if (dc->budget == 0)
    return 0;
  return strata__ltable_init(&dc->entries, "device cache", 64);
}

static void entry_free(strata__staging *st, strata__dentry *e) {
  /* The copy that filled it must be done before the memory goes back. */
  strata__devent_sync(e->ready);
  strata__devent_free(e->ready);
  strata__device_mem_free(st->dev, e->dptr, NULL);
  st->dcache.bytes -= e->size;
  free(e);
}

/* Takes an entry out of the table and the ring and frees it. The cache's
 * mu held; the entry is not held. */
static void entry_drop(strata__staging *st, strata__dentry *e) {
  strata__ltable_remove(&st->dcache.entries, &e->node);
  entry_free(st, e);
}

/* ---- CLOCK ----------------------------------------------------------- */

typedef struct sweep {
  strata__staging *st;
  uint64_t need;
} sweep;

static bool sweep_over(void *ctx) {
  const sweep *w = ctx;
  return w->st->dcache.bytes + w->need > w->st->dcache.budget;
}

static strata__clock_verdict sweep_judge(void *ctx, strata__lnode *n) {
  (void)ctx;
  strata__dentry *e = entry_of(n);
  /* Held entries stay; so do entries whose copy is still running: their
   * memory cannot go back yet, and waiting here would stall every get. */
  if (e->holders > 0 || strata__devent_query(e->ready) == 0)
    return STRATA__CLOCK_SKIP;
  return STRATA__CLOCK_AGE;
}

static void sweep_evict(void *ctx, strata__lnode *n) {
  strata__staging *st = ((sweep *)ctx)->st;
  st->dcache.evictions++;
  entry_drop(st, entry_of(n));
}

static const strata__clock_ops sweep_ops = {
    .over = sweep_over, .judge = sweep_judge, .evict = sweep_evict};

/* Evicts idle entries until `need` more bytes fit. The cache's mu held. */
static bool make_room(strata__staging *st, uint64_t need) {
  sweep w = {.st = st, .need = need};
  strata__ltable_sweep(&st->dcache.entries, &sweep_ops, &w);
  return st->dcache.bytes + need <= st->dcache.budget;
}

/* Copies a layer into new device memory on `xs` and enters it. The
 * cache's mu held. `prefetch` entries start without their reference bit. */
static int fill(strata__staging *st, const strata_txn *txn,
                const strata_layer *lay, uint64_t region_id,
                strata__dstream *xs, bool prefetch, strata__dentry **out) {
  strata__dcache *dc = &st->dcache;
  STRATA__FAIL_IF(
      lay->size > dc->budget || !make_room(st, lay->size), STRATA_E_LIMIT,
      "staging: device cache: no room for region %" PRIu64 " layer %" PRIu64
      " (%" PRIu64 " bytes; budget %" PRIu64 ", %" PRIu64 " in held entries)",
      region_id, lay->id, lay->size, dc->budget, dc->bytes);
  STRATA__TRY(strata__ltable_reserve(&dc->entries));
  strata__dentry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: device cache entry");
  *e = (strata__dentry){
      .node = {.region_id = region_id, .layer_id = lay->id, .ref = !prefetch},
      .size = lay->size,
      .checksum = lay->checksum};
  strata_staged *h = NULL;
  int rc = strata__devent_new(st->dev, &e->ready);
  if (rc == 0)
    rc = strata__device_mem_alloc(st->dev, lay->size > 0 ? lay->size : 1, xs,
                                  &e->dptr);
  if (rc == 0)
    rc = strata__stage(st, txn, region_id, lay->id, 0, UINT64_MAX, false, &h);
  if (rc == 0)
    rc = strata_stage_to_device(h, e->dptr,
                                &(strata_stream){.st = st, .xs = xs});
  strata_staged_release(h); /* the copy keeps the blocks */
  if (rc == 0)
    rc = strata__devent_record(e->ready, xs);
  if (rc < 0) {
    if (e->dptr != NULL) {
      strata__dstream_sync(xs);
      strata__device_mem_free(st->dev, e->dptr, NULL);
    }
    strata__devent_free(e->ready);
    free(e);
    return rc;
  }
  strata__ltable_insert(&dc->entries, &e->node);
  dc->bytes += lay->size;
  *out = e;
  return 0;
}

/* The entry for a layer as `lay` shows it: an entry of other content is
 * dropped if idle (a held one stays reachable through its holds only).
 * The cache's mu held. */
static strata__dentry *lookup(strata__staging *st, uint64_t region_id,
                              const strata_layer *lay) {
  strata__lnode *n =
      strata__ltable_find(&st->dcache.entries, region_id, lay->id);
  if (n == NULL)
    return NULL;
  strata__dentry *e = entry_of(n);
  if (e->size == lay->size && e->checksum == lay->checksum)
    return e;
  if (e->holders == 0) {
    entry_drop(st, e);
    return NULL;
  }
  /* Out of the table; the last release frees it. */
  strata__ltable_detach(&st->dcache.entries, n);
  n->region_id = UINT64_MAX; /* never found again */
  n->ref = false;
  return NULL;
}

/* The copy goes on a pool stream, not the caller's, so the caller's work
 * on layer n does not queue behind layer n + 1; a get of n + 1 makes its
 * stream wait for the entry's event. */
static void prefetch_next(strata__staging *st, const strata_txn *txn,
                          uint64_t region_id, uint64_t layer_id) {
  strata__dstream *xs = st->transfer.streams[layer_id % st->transfer.nstreams];
  strata_layer next;
  if (layer_id == UINT64_MAX ||
      strata__get_quiet(txn, region_id, layer_id + 1, &next) != 0 ||
      lookup(st, region_id, &next) != NULL)
    return;
  strata__dentry *e;
  if (fill(st, txn, &next, region_id, xs, true, &e) == 0)
    st->dcache.prefetches++;
}

int strata_device_cache_get(const strata_txn *txn, uint64_t region_id,
                            uint64_t layer_id, strata_stream *ss,
                            strata_device_layer **out) {
  STRATA__FAIL_IF(out == NULL, STRATA_E_INVAL,
                  "strata_device_cache_get: NULL out");
  *out = NULL;
  STRATA__FAIL_IF(txn == NULL || ss == NULL, STRATA_E_INVAL,
                  "strata_device_cache_get: NULL argument");
  strata__staging *st;
  STRATA__TRY(strata__staging_of(strata__txn_priv(txn)->store,
                                 "strata_device_cache_get", &st));
  strata__dcache *dc = &st->dcache;
  STRATA__FAIL_IF(dc->budget == 0, STRATA_E_STATE,
                  "strata_device_cache_get: %s has no device cache "
                  "(staging.device_cache_bytes is 0)",
                  strata__txn_priv(txn)->store->dir);
  strata_layer lay;
  int rc = strata__get_quiet(txn, region_id, layer_id, &lay);
  if (rc < 0)
    return strata__fail(
        rc, "device cache: region %" PRIu64 " layer %" PRIu64 ": %s", region_id,
        layer_id, strata_strerror(rc));
  strata_device_layer *dl = malloc(sizeof *dl);
  if (dl == NULL)
    return strata__fail(STRATA_E_NOMEM, "strata_device_cache_get");
  pthread_mutex_lock(&st->dcache.mu);
  strata__dentry *e = lookup(st, region_id, &lay);
  if (e != NULL) {
    dc->hits++;
    e->node.ref = true;
    /* Its copy may have been enqueued on another stream. */
    rc = strata__dstream_wait(ss->xs, e->ready);
  } else {
    dc->misses++;
    rc = fill(st, txn, &lay, region_id, ss->xs, false, &e);
  }
  if (rc == 0) {
    e->holders++;
    bool sequential = dc->have_last && dc->last_region == region_id &&
                      dc->last_layer + 1 == layer_id;
    dc->have_last = true;
    dc->last_region = region_id;
    dc->last_layer = layer_id;
    if (sequential)
      prefetch_next(st, txn, region_id, layer_id);
  }
  pthread_mutex_unlock(&st->dcache.mu);
  if (rc < 0) {
    free(dl);
    return rc;
  }
  *dl = (strata_device_layer){.st = st, .e = e};
  *out = dl;
  return 0;
}

const void *strata_device_layer_ptr(const strata_device_layer *dl) {
  return dl == NULL ? NULL : dl->e->dptr;
}

uint64_t strata_device_layer_size(const strata_device_layer *dl) {
  return dl == NULL ? 0 : dl->e->size;
}

void strata_device_layer_release(strata_device_layer *dl) {
  if (dl == NULL)
    return;
  strata__staging *st = dl->st;
  pthread_mutex_lock(&st->dcache.mu);
  strata__dentry *e = dl->e;
  /* An entry replaced by other content (out of the table) goes with its
   * last hold. */
  if (--e->holders == 0 && e->node.region_id == UINT64_MAX)
    entry_drop(st, e);
  pthread_mutex_unlock(&st->dcache.mu);
  free(dl);
}

void strata__dcache_destroy(strata__staging *st) {
  strata__ltable *t = &st->dcache.entries;
  while (t->n > 0)
    entry_drop(st, entry_of(t->ring[t->n - 1]));
  strata__ltable_destroy(t);
}
