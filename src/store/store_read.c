/* The read side of a store: snapshots and lookups. Nothing here takes a
 * lock, allocates (after a thread's first snapshot), or makes a system
 * call; see ebr.c for why a snapshot keeps what it reads alive. */
#include <inttypes.h>
#include <string.h>

#include "common/json_check.h"
#include "store/store_internal.h"
#include "store/store_sample.h"

/* Counts a lookup in the snapshot itself (the caller's memory, hot in its
 * cache); strata_read_end() adds the counts to the thread's slot. The txn
 * is declared const in the lookup functions' signatures because lookups do
 * not change what the snapshot sees; its counters are the one exception. */
static inline void count_get(const strata_txn *txn, bool found,
                             uint64_t bytes) {
  strata__txn *t = strata__txn_priv(txn);
  if (!t->count)
    return;
  t->gets++;
  if (found)
    t->bytes += bytes;
  else
    t->misses++;
}

/* Samples one lookup in so many for the staging pool's hot layers: an
 * increment and a test on the thread's own slot, which read_begin has
 * just written. */
static inline void sample(const strata_txn *txn, uint64_t region_id,
                          uint64_t layer_id) {
  strata__reader *r = strata__txn_priv(txn)->slot;
  if (r->ring != NULL && (++r->tick & r->sample_mask) == 0)
    strata__sample_push(r->ring, region_id, layer_id);
}

static void add(_Atomic uint64_t *counter, uint64_t v) {
  /* Only the owner thread writes: a load and a store, no read-modify-write. */
  atomic_store_explicit(counter,
                        atomic_load_explicit(counter, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

int strata_read_begin(strata_store *s, strata_txn *txn) {
  if (txn == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_read_begin: NULL txn");
  *strata__txn_priv(txn) = (strata__txn){0};
  if (s == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_read_begin: NULL store");
  strata__reader *r;
  STRATA__TRY(strata__ebr_slot(s, &r));
  if (r->depth++ == 0) {
    /* Only this thread writes `begins`: a load and a store, no atomic
     * read-modify-write. */
    atomic_store_explicit(
        &r->begins, atomic_load_explicit(&r->begins, memory_order_relaxed) + 1,
        memory_order_relaxed);
    atomic_store_explicit(&r->epoch,
                          atomic_load_explicit(&s->epoch, memory_order_seq_cst),
                          memory_order_seq_cst);
  }
  /* Read a catalog and an epoch that belong together: writers publish a
   * catalog before advancing the epoch, so if the catalog is unchanged
   * around the epoch read, it was current when that epoch was. */
  const strata__catalog *c;
  uint64_t v;
  do {
    c = atomic_load_explicit(&s->catalog, memory_order_seq_cst);
    v = atomic_load_explicit(&s->epoch, memory_order_seq_cst);
  } while (atomic_load_explicit(&s->catalog, memory_order_seq_cst) != c);
  *strata__txn_priv(txn) = (strata__txn){.store = s,
                                         .catalog = c,
                                         .slot = r,
                                         .version = v,
                                         .count = s->count_reads};
  return 0;
}

void strata_read_end(strata_txn *txn) {
  strata__txn *t = strata__txn_priv(txn);
  if (txn == NULL || t->slot == NULL)
    return;
  strata__reader *r = t->slot;
  if (t->gets != 0) {
    add(&r->gets, t->gets);
    add(&r->misses, t->misses);
    add(&r->bytes, t->bytes);
    t->gets = t->misses = t->bytes = 0;
  }
  if (r->depth > 0 && --r->depth == 0) {
    atomic_store_explicit(&r->epoch, 0, memory_order_release);
  }
  t->slot = NULL;
  t->catalog = NULL;
}

static void fill_from_lver(const strata__lver *lv, strata_layer *out) {
  *out = (strata_layer){.id = lv->id,
                        .data = lv->data,
                        .size = lv->size,
                        .name = lv->name,
                        .name_len = lv->name_len,
                        .metadata = lv->metadata,
                        .metadata_len = lv->metadata_len,
                        .checksum = lv->checksum};
}

static const strata__entry *find_entry(const strata_txn *txn,
                                       uint64_t region_id) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL)
    return NULL;
  return strata__catalog_find(strata__txn_priv(txn)->catalog, region_id);
}

/* The lookup without error details, shared by strata_get and get_many:
 * 1 found, 0 no such layer, -1 no such region. */
static int lookup(const strata_txn *txn, const strata__entry *e,
                  uint64_t layer_id, strata_layer *out) {
  if (e == NULL)
    return -1;
  if (e->overlay != NULL) {
    const strata__lver *lv = strata__overlay_find(
        e->overlay, layer_id, strata__txn_priv(txn)->version);
    if (lv != NULL) {
      if (lv->flags & STRATA__LV_TOMBSTONE)
        return 0;
      fill_from_lver(lv, out);
      return 1;
    }
  }
  if (e->file == NULL)
    return 0;
  int64_t i = strata__find_entry(e->file->region, layer_id);
  if (i < 0)
    return 0;
  strata__layer_from_entry(e->file->region, (uint64_t)i, out);
  return 1;
}

int strata_get(const strata_txn *txn, uint64_t region_id, uint64_t layer_id,
               strata_layer *out) {
  const strata__entry *e = find_entry(txn, region_id);
  int found = lookup(txn, e, layer_id, out);
  if (txn != NULL)
    count_get(txn, found > 0, found > 0 ? out->size : 0);
  if (found > 0) {
    sample(txn, region_id, layer_id);
    return 0;
  }
  if (found < 0)
    return strata__fail(STRATA_E_NO_REGION,
                        "region %" PRIu64 ": not in the store", region_id);
  return strata__fail(STRATA_E_NOT_FOUND,
                      "region %" PRIu64 " (%s): no layer %" PRIu64, region_id,
                      e->name, layer_id);
}

int strata__get_quiet(const strata_txn *txn, uint64_t region_id,
                      uint64_t layer_id, strata_layer *out) {
  int found = lookup(txn, find_entry(txn, region_id), layer_id, out);
  return found > 0 ? 0 : found == 0 ? STRATA_E_NOT_FOUND : STRATA_E_NO_REGION;
}

const strata_region *strata__txn_file(const strata_txn *txn,
                                      uint64_t region_id) {
  const strata__entry *e = find_entry(txn, region_id);
  return e != NULL && e->file != NULL ? e->file->region : NULL;
}

int strata_get_by_name(const strata_txn *txn, uint64_t region_id,
                       const char *name, size_t name_len, strata_layer *out) {
  const strata__entry *e = find_entry(txn, region_id);
  if (e == NULL)
    return strata__fail(STRATA_E_NO_REGION,
                        "region %" PRIu64 ": not in the store", region_id);
  if (name == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_get_by_name: NULL argument");
  if (e->overlay != NULL) {
    const strata__lver *lv = strata__overlay_find_name(
        e->overlay, name, name_len, strata__txn_priv(txn)->version);
    if (lv != NULL) {
      fill_from_lver(lv, out);
      count_get(txn, true, out->size);
      sample(txn, region_id, out->id);
      return 0;
    }
  }
  strata_layer l;
  if (e->file != NULL &&
      strata_region_get_by_name(e->file->region, name, name_len, &l) == 0) {
    /* The file's layer counts only if the proto did not replace or remove
     * it (a replacement with the same name was found above). */
    if (e->overlay == NULL ||
        strata__overlay_find(e->overlay, l.id,
                             strata__txn_priv(txn)->version) == NULL) {
      *out = l;
      count_get(txn, true, out->size);
      sample(txn, region_id, out->id);
      return 0;
    }
  }
  count_get(txn, false, 0);
  return strata__fail(
      STRATA_E_NOT_FOUND, "region %" PRIu64 " (%s): no layer named \"%.*s\"",
      region_id, e->name, (int)(name_len > 200 ? 200 : name_len), name);
}

int strata_find_region(const strata_txn *txn, const char *name, size_t name_len,
                       uint64_t *region_id) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL || name == NULL ||
      region_id == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_find_region: NULL argument");
  STRATA__TRY(strata__check_name_arg("strata_find_region", "region name", name,
                                     name_len));
  const strata__entry *e =
      strata__catalog_find_name(strata__txn_priv(txn)->catalog, name, name_len);
  if (e == NULL)
    return strata__fail(STRATA_E_NO_REGION, "no region named \"%.*s\"",
                        (int)(name_len > 200 ? 200 : name_len), name);
  *region_id = e->id;
  return 0;
}

/* How far ahead get_many prefetches: enough to cover a cache miss with the
 * work of the lookups in between, few enough to stay in L1. */
#define PREFETCH_AHEAD 4

static void prefetch_ref(const strata_txn *txn, const strata_layer_ref *ref) {
  const strata__entry *e = find_entry(txn, ref->region_id);
  if (e != NULL && e->file != NULL)
    strata__prefetch_layer(e->file->region, ref->layer_id);
}

size_t strata_get_many(const strata_txn *txn, const strata_layer_ref *refs,
                       size_t count, strata_layer *out) {
  size_t found = 0;
  for (size_t i = 0; i < count && i < PREFETCH_AHEAD; i++)
    prefetch_ref(txn, &refs[i]);
  for (size_t i = 0; i < count; i++) {
    if (i + PREFETCH_AHEAD < count)
      prefetch_ref(txn, &refs[i + PREFETCH_AHEAD]);
    const strata__entry *e = find_entry(txn, refs[i].region_id);
    if (lookup(txn, e, refs[i].layer_id, &out[i]) > 0) {
      found++;
      __builtin_prefetch(out[i].data);
      count_get(txn, true, out[i].size);
      sample(txn, refs[i].region_id, refs[i].layer_id);
    } else {
      memset(&out[i], 0, sizeof out[i]);
      count_get(txn, false, 0);
    }
  }
  return found;
}

uint64_t strata_store_region_count(const strata_txn *txn) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL)
    return 0;
  return ((const strata__catalog *)strata__txn_priv(txn)->catalog)->n;
}

int strata_store_region_at(const strata_txn *txn, uint64_t index,
                           strata_store_region *out) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL,
                        "strata_store_region_at: NULL argument");
  const strata__catalog *c = strata__txn_priv(txn)->catalog;
  if (index >= c->n)
    return strata__fail(STRATA_E_BOUNDS, "region index %" PRIu64 " of %" PRIu64,
                        index, c->n);
  const strata__entry *e = c->by_order[index];
  uint64_t layers = e->file ? strata_region_layer_count(e->file->region) : 0;
  if (e->overlay != NULL)
    layers += (uint64_t)strata__overlay_delta(e->overlay,
                                              strata__txn_priv(txn)->version);
  *out = (strata_store_region){.id = e->id,
                               .name = e->name,
                               .metadata = e->metadata,
                               .path = e->file ? e->file->path : NULL,
                               .layer_count = layers,
                               .generation = e->generation,
                               .has_proto = e->overlay != NULL,
                               .file = e->file ? e->file->region : NULL};
  return 0;
}

int strata_read_stats_get(strata_store *s, strata_read_stats *out) {
  if (s == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_read_stats_get: NULL argument");
  *out = (strata_read_stats){0};
  uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_acquire);
  for (uint32_t i = 0; i < used; i++) {
    const strata__reader *r = &s->slots[i];
    out->gets += atomic_load_explicit(&r->gets, memory_order_relaxed);
    out->misses += atomic_load_explicit(&r->misses, memory_order_relaxed);
    out->bytes_served += atomic_load_explicit(&r->bytes, memory_order_relaxed);
    out->snapshots += atomic_load_explicit(&r->begins, memory_order_relaxed);
  }
  pthread_mutex_lock(&s->write_mu);
  uint64_t open, oldest;
  strata__ebr_snapshot_stats(s, &open, &oldest); /* updates the peak */
  out->peak_readers = s->peak_readers;
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}
