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
 * The staging itself runs in the get, under dc_mu.
 *
 * One mutex (dc_mu) guards the table; it is held across a miss, so misses
 * are serialized. Order: dc_mu, then mu (staging). */
#include <stdlib.h>

#include "staging/staging.h"
#include "store/store_internal.h"

struct strata__dentry {
  struct strata__dentry *hnext;
  uint64_t region_id, layer_id, size, checksum;
  void *dptr;
  strata__devent *ready; /* recorded after the copy */
  uint32_t holders;
  uint32_t clock_pos;
  bool ref;
};

struct strata_device_layer {
  strata__staging *st;
  strata__dentry *e;
};

int strata__dcache_init(strata__staging *st) {
  st->dc_budget = st->store->config.staging.device_cache_bytes;
  if (st->dc_budget == 0)
    return 0;
  st->dc_mask = 255;
  st->dc_tab = calloc(st->dc_mask + 1, sizeof *st->dc_tab);
  st->dc_clock_cap = 64;
  st->dc_clock = malloc(st->dc_clock_cap * sizeof *st->dc_clock);
  if (st->dc_tab == NULL || st->dc_clock == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: device cache table");
  return 0;
}

static strata__dentry **slot(strata__staging *st, uint64_t region,
                             uint64_t layer) {
  strata__dentry **p =
      &st->dc_tab[strata__layer_key_hash(region, layer) & st->dc_mask];
  while (*p != NULL && ((*p)->region_id != region || (*p)->layer_id != layer))
    p = &(*p)->hnext;
  return p;
}

static void entry_free(strata__staging *st, strata__dentry *e) {
  /* The copy that filled it must be done before the memory goes back. */
  strata__devent_sync(e->ready);
  strata__devent_free(e->ready);
  strata__device_mem_free(st->dev, e->dptr, NULL);
  st->dc_bytes -= e->size;
  free(e);
}

/* Takes an entry out of the table and the ring and frees it. dc_mu held;
 * the entry is not held. */
static void entry_drop(strata__staging *st, strata__dentry *e) {
  strata__dentry **p = slot(st, e->region_id, e->layer_id);
  if (*p == e)
    *p = e->hnext;
  strata__dentry *last = st->dc_clock[--st->dc_clock_n];
  st->dc_clock[e->clock_pos] = last;
  last->clock_pos = e->clock_pos;
  st->dc_n--;
  entry_free(st, e);
}

/* Evicts idle entries until `need` more bytes fit. dc_mu held. */
static bool make_room(strata__staging *st, uint64_t need) {
  uint64_t steps = 2 * (uint64_t)st->dc_clock_n + 1;
  while (st->dc_bytes + need > st->dc_budget && st->dc_clock_n > 0 &&
         steps-- > 0) {
    if (st->dc_hand >= st->dc_clock_n)
      st->dc_hand = 0;
    strata__dentry *e = st->dc_clock[st->dc_hand];
    /* Held entries stay; so do entries whose copy is still running: their
     * memory cannot go back yet, and waiting here would stall every get. */
    if (e->holders > 0 || strata__devent_query(e->ready) == 0) {
      st->dc_hand++;
    } else if (e->ref) {
      e->ref = false;
      st->dc_hand++;
    } else {
      st->dc_evictions++;
      entry_drop(st, e); /* the ring's last entry moved to the hand */
    }
  }
  return st->dc_bytes + need <= st->dc_budget;
}

static int table_grow(strata__staging *st) {
  uint64_t mask = st->dc_mask * 2 + 1;
  strata__dentry **t = calloc(mask + 1, sizeof *t);
  if (t == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: device cache table");
  for (uint64_t i = 0; i <= st->dc_mask; i++) {
    for (strata__dentry *e = st->dc_tab[i], *next; e != NULL; e = next) {
      next = e->hnext;
      uint64_t k = strata__layer_key_hash(e->region_id, e->layer_id) & mask;
      e->hnext = t[k];
      t[k] = e;
    }
  }
  free(st->dc_tab);
  st->dc_tab = t;
  st->dc_mask = mask;
  return 0;
}

/* Copies a layer into new device memory on `xs` and enters it. dc_mu
 * held. `prefetch` entries start without their reference bit. */
static int fill(strata__staging *st, const strata_txn *txn,
                const strata_layer *lay, uint64_t region_id,
                strata__dstream *xs, bool prefetch, strata__dentry **out) {
  STRATA__FAIL_IF(
      lay->size > st->dc_budget || !make_room(st, lay->size), STRATA_E_LIMIT,
      "staging: device cache: no room for region %llu layer "
      "%llu (%llu bytes; budget %llu, %llu in held entries)",
      (unsigned long long)region_id, (unsigned long long)lay->id,
      (unsigned long long)lay->size, (unsigned long long)st->dc_budget,
      (unsigned long long)st->dc_bytes);
  if (st->dc_n + 1 > (st->dc_mask + 1) / 4 * 3)
    STRATA__TRY(table_grow(st));
  if (st->dc_clock_n == st->dc_clock_cap) {
    strata__dentry **c =
        realloc(st->dc_clock, 2 * st->dc_clock_cap * sizeof *c);
    if (c == NULL)
      return strata__fail(STRATA_E_NOMEM, "staging: device cache ring");
    st->dc_clock = c;
    st->dc_clock_cap *= 2;
  }
  strata__dentry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: device cache entry");
  *e = (strata__dentry){.region_id = region_id,
                        .layer_id = lay->id,
                        .size = lay->size,
                        .checksum = lay->checksum,
                        .ref = !prefetch};
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
  strata__dentry **p = slot(st, region_id, lay->id);
  e->hnext = *p;
  *p = e;
  e->clock_pos = st->dc_clock_n;
  st->dc_clock[st->dc_clock_n++] = e;
  st->dc_n++;
  st->dc_bytes += lay->size;
  *out = e;
  return 0;
}

/* The entry for a layer as `lay` shows it: an entry of other content is
 * dropped if idle (a held one stays reachable through its holds only).
 * dc_mu held. */
static strata__dentry *lookup(strata__staging *st, uint64_t region_id,
                              const strata_layer *lay) {
  strata__dentry **p = slot(st, region_id, lay->id);
  strata__dentry *e = *p;
  if (e == NULL || (e->size == lay->size && e->checksum == lay->checksum))
    return e;
  if (e->holders == 0) {
    entry_drop(st, e);
    return NULL;
  }
  *p = e->hnext; /* out of the table; the last release frees it */
  e->hnext = NULL;
  e->region_id = UINT64_MAX; /* never found again */
  e->ref = false;
  return NULL;
}

/* The copy goes on a pool stream, not the caller's, so the caller's work
 * on layer n does not queue behind layer n + 1; a get of n + 1 makes its
 * stream wait for the entry's event. */
static void prefetch_next(strata__staging *st, const strata_txn *txn,
                          uint64_t region_id, uint64_t layer_id) {
  strata__dstream *xs = st->streams[layer_id % st->nstreams];
  strata_layer next;
  if (layer_id == UINT64_MAX ||
      strata__get_quiet(txn, region_id, layer_id + 1, &next) != 0 ||
      lookup(st, region_id, &next) != NULL)
    return;
  strata__dentry *e;
  if (fill(st, txn, &next, region_id, xs, true, &e) == 0)
    st->dc_prefetches++;
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
  STRATA__TRY(strata__staging_of(strata__txn_priv(txn)->store, "strata_device_cache_get", &st));
  STRATA__FAIL_IF(st->dc_budget == 0, STRATA_E_STATE,
                  "strata_device_cache_get: %s has no device cache "
                  "(staging.device_cache_bytes is 0)",
                  strata__txn_priv(txn)->store->dir);
  strata_layer lay;
  int rc = strata__get_quiet(txn, region_id, layer_id, &lay);
  if (rc < 0)
    return strata__fail(rc, "device cache: region %llu layer %llu: %s",
                        (unsigned long long)region_id,
                        (unsigned long long)layer_id, strata_strerror(rc));
  strata_device_layer *dl = malloc(sizeof *dl);
  if (dl == NULL)
    return strata__fail(STRATA_E_NOMEM, "strata_device_cache_get");
  pthread_mutex_lock(&st->dc_mu);
  strata__dentry *e = lookup(st, region_id, &lay);
  if (e != NULL) {
    st->dc_hits++;
    e->ref = true;
    /* Its copy may have been enqueued on another stream. */
    rc = strata__dstream_wait(ss->xs, e->ready);
  } else {
    st->dc_misses++;
    rc = fill(st, txn, &lay, region_id, ss->xs, false, &e);
  }
  if (rc == 0) {
    e->holders++;
    bool sequential = st->dc_have_last && st->dc_last_region == region_id &&
                      st->dc_last_layer + 1 == layer_id;
    st->dc_have_last = true;
    st->dc_last_region = region_id;
    st->dc_last_layer = layer_id;
    if (sequential)
      prefetch_next(st, txn, region_id, layer_id);
  }
  pthread_mutex_unlock(&st->dc_mu);
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
  pthread_mutex_lock(&st->dc_mu);
  strata__dentry *e = dl->e;
  /* An entry replaced by other content (out of the table) goes with its
   * last hold. */
  if (--e->holders == 0 && e->region_id == UINT64_MAX)
    entry_drop(st, e);
  pthread_mutex_unlock(&st->dc_mu);
  free(dl);
}

void strata__dcache_destroy(strata__staging *st) {
  while (st->dc_clock_n > 0)
    entry_drop(st, st->dc_clock[st->dc_clock_n - 1]);
  free(st->dc_tab);
  free(st->dc_clock);
  st->dc_tab = NULL;
  st->dc_clock = NULL;
}
