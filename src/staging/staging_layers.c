/* The staged layers' table and their CLOCK eviction: which layers are
 * staged, which were replaced or evicted but are still held or read by a
 * transfer (the dead list), and which go when the pool is short of blocks.
 *
 * The table and the ring are a strata__ltable (staging_ltable.c), shared
 * with the device cache. What is particular to staged layers is what may
 * be evicted: a layer that is held, being filled or read by a transfer in
 * flight is passed over, and a layer with no pages left goes whatever its
 * reference bit says (it costs nothing to keep it out). A layer is only
 * unlinked while anything still uses it: it joins the dead list, and the
 * next call under `mu` that finds it idle (strata__pages_reap) frees it;
 * a transfer's completion cannot free it itself, as it runs without `mu`
 * (CUDA host functions must not block). */
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

#include "staging/staging.h"

static strata__slayer *layer_of(strata__lnode *n) {
  return (strata__slayer *)((char *)n - offsetof(strata__slayer, node));
}

int strata__layers_init(strata__staging *st) {
  /* A ring of 256 to start with: test_staging_allocfail counts on it. */
  return strata__ltable_init(&st->pages.layers, "layer", 256);
}

void strata__layers_destroy(strata__staging *st) {
  strata__pages *pg = &st->pages;
  for (uint32_t i = 0; pg->layers.ring != NULL && i < pg->layers.n; i++)
    free(layer_of(pg->layers.ring[i]));
  while (pg->dead != NULL) {
    strata__slayer *next = pg->dead->dead_next;
    free(pg->dead);
    pg->dead = next;
  }
  strata__ltable_destroy(&pg->layers);
}

strata__slayer *strata__layers_find(strata__staging *st, uint64_t region_id,
                                    uint64_t layer_id) {
  strata__lnode *n =
      strata__ltable_find(&st->pages.layers, region_id, layer_id);
  return n == NULL ? NULL : layer_of(n);
}

int strata__layers_link(strata__staging *st, strata__slayer *l) {
  STRATA__TRY(strata__ltable_reserve(&st->pages.layers));
  strata__ltable_insert(&st->pages.layers, &l->node);
  return 0;
}

/* Takes a layer out of the table and the ring; it stays allocated. */
static void layer_unlink(strata__staging *st, strata__slayer *l) {
  strata__pages *pg = &st->pages;
  strata__ltable_remove(&pg->layers, &l->node);
  if (l->hot) {
    l->hot = false;
    pg->hot_bytes -= l->size;
    pg->hot_layers--;
  }
}

static void layer_free_now(strata__staging *st, strata__slayer *l) {
  for (uint32_t i = 0; i < l->npages; i++) {
    if (l->pages[i] == STRATA__BLOCK_NONE)
      continue;
    st->pages.staged_bytes -= strata__page_len(st->block_size, l->size, i);
    strata__block_unref(st, l->pages[i]);
  }
  free(l);
}

bool strata__layers_idle(strata__slayer *l) {
  return l->holders == 0 && !l->filling &&
         atomic_load_explicit(&l->inflight, memory_order_acquire) == 0;
}

void strata__layers_kill(strata__staging *st, strata__slayer *l) {
  layer_unlink(st, l);
  l->dead = true;
  if (strata__layers_idle(l)) {
    layer_free_now(st, l);
    return;
  }
  l->dead_next = st->pages.dead;
  st->pages.dead = l;
}

void strata__pages_reap(strata__staging *st) {
  strata__slayer **p = &st->pages.dead;
  while (*p != NULL) {
    strata__slayer *l = *p;
    if (strata__layers_idle(l)) {
      *p = l->dead_next;
      layer_free_now(st, l);
    } else {
      p = &l->dead_next;
    }
  }
}

bool strata__pages_touch(strata__staging *st, uint64_t region_id,
                         uint64_t layer_id) {
  strata__lnode *n =
      strata__ltable_find(&st->pages.layers, region_id, layer_id);
  if (n == NULL)
    return false;
  n->ref = true;
  return true;
}

/* ---- CLOCK ----------------------------------------------------------- */

typedef struct sweep {
  strata__staging *st;
  uint64_t target;
} sweep;

static bool sweep_over(void *ctx) {
  const sweep *w = ctx;
  return w->st->pages.page_blocks + w->st->fixed_blocks > w->target;
}

static strata__clock_verdict sweep_judge(void *ctx, strata__lnode *n) {
  (void)ctx;
  strata__slayer *l = layer_of(n);
  if (!strata__layers_idle(l))
    return STRATA__CLOCK_SKIP;
  return l->staged > 0 ? STRATA__CLOCK_AGE : STRATA__CLOCK_EVICT;
}

static void sweep_evict(void *ctx, strata__lnode *n) {
  strata__staging *st = ((sweep *)ctx)->st;
  strata__slayer *l = layer_of(n);
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < l->npages; i++)
    if (l->pages[i] != STRATA__BLOCK_NONE)
      bytes += strata__page_len(st->block_size, l->size, i);
  strata__log(st->log, STRATA_LOG_DEBUG, "staging",
              "msg=\"evicted\" region=%" PRIu64 " layer=%" PRIu64
              " bytes=%" PRIu64,
              n->region_id, n->layer_id, bytes);
  st->pages.evictions++;
  st->pages.evicted_bytes += bytes;
  strata__layers_kill(st, l);
}

static const strata__clock_ops sweep_ops = {
    .over = sweep_over, .judge = sweep_judge, .evict = sweep_evict};

uint64_t strata__pages_evict(strata__staging *st, uint64_t target) {
  sweep w = {.st = st, .target = target};
  return strata__ltable_sweep(&st->pages.layers, &sweep_ops, &w);
}

int strata_staging_trim(strata_store *s, uint64_t keep_bytes) {
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, "strata_staging_trim", &st));
  pthread_mutex_lock(&st->mu);
  strata__pages_reap(st);
  uint64_t n =
      strata__pages_evict(st, st->fixed_blocks + keep_bytes / st->block_size);
  pthread_mutex_unlock(&st->mu);
  return n > INT_MAX ? INT_MAX : (int)n;
}

void strata__pages_inflight_done(void *arg) {
  strata__slayer *l = arg;
  strata__staging *st = l->st;
  /* The layer may be freed by a reaper the moment its count reaches 0, so
   * it is not touched after; the pool outlives every layer, and its count
   * goes last so that close, which waits for it, frees no layer a
   * callback is still touching. */
  atomic_fetch_sub_explicit(&l->inflight, 1, memory_order_acq_rel);
  atomic_fetch_sub_explicit(&st->inflight, 1, memory_order_acq_rel);
}
