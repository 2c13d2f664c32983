/* Hot layers: which layers are read often, found by sampling, and a worker
 * that stages them and keeps the pool under its high watermark.
 *
 * The read path pays one increment and one test per lookup: every
 * staging.sample_period-th lookup a thread makes is pushed into its reader
 * slot's ring (strata__sample_push, store/store_sample.h), which only that
 * thread writes. A pass (strata__hot_tick, from the worker every 10 ms or from
 * strata_staging_tick) drains the rings, sets the CLOCK reference bit of
 * sampled layers that are staged, and counts samples of the others in a
 * candidate table; counts halve every second, so the threshold is a rate.
 * A candidate that reaches the threshold is staged if the hot budget has
 * room. Then, if the pool is over its high watermark, CLOCK evicts down to
 * the low one (high - evict percent). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/strata_testing.h"
#include "staging/staging.h"
#include "store/store_internal.h"

#define TICK_NS 10000000ull    /* worker period: 10 ms */
#define DECAY_NS 1000000000ull /* counts halve every second */
#define CAND_MAX (1u << 20)    /* candidates tracked at most */

int strata__hot_init(strata__staging *st) {
  struct strata_store *s = st->store;
  size_t bytes = (size_t)s->max_readers * sizeof(strata__sample_ring);
  if (posix_memalign((void **)&st->hot.rings, 64, bytes) != 0)
    return strata__fail(STRATA_E_NOMEM, "staging: %u sample rings",
                        s->max_readers);
  memset(st->hot.rings, 0, bytes);
  st->hot.cand_mask = 4095;
  st->hot.cands = calloc(st->hot.cand_mask + 1, sizeof *st->hot.cands);
  if (st->hot.cands == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: candidate table");
  st->hot.last_decay_ns = strata__mono_ns();
  return 0;
}

void strata__hot_destroy(strata__staging *st) {
  free(st->hot.rings);
  free(st->hot.cands);
  st->hot.rings = NULL;
  st->hot.cands = NULL;
}

/* The candidate slot for a key (open addressing, linear probing), or NULL
 * when the table is full. */
static strata__hot_cand *cand_slot(strata__staging *st, uint64_t region,
                                   uint64_t layer) {
  uint64_t i = strata__layer_key_hash(region, layer) & st->hot.cand_mask;
  for (uint64_t probes = 0; probes <= st->hot.cand_mask; probes++) {
    strata__hot_cand *c = &st->hot.cands[i];
    if (!c->used || (c->region == region && c->layer == layer))
      return c;
    i = (i + 1) & st->hot.cand_mask;
  }
  return NULL;
}

/* Rebuilds the table with every count halved (dropping those that reach
 * 0), doubling it when it is more than half full. */
static void cand_rebuild(strata__staging *st, bool halve) {
  uint64_t live = 0;
  for (uint64_t i = 0; i <= st->hot.cand_mask; i++)
    if (st->hot.cands[i].used && (halve ? st->hot.cands[i].count / 2 : 1) > 0)
      live++;
  uint64_t mask = st->hot.cand_mask;
  while (live * 2 > mask + 1 && mask + 1 < CAND_MAX)
    mask = mask * 2 + 1;
  strata__hot_cand *old = st->hot.cands, *t = calloc(mask + 1, sizeof *t);
  if (t == NULL)
    return; /* keep the old table; decay waits for the next pass */
  uint64_t old_mask = st->hot.cand_mask;
  st->hot.cands = t;
  st->hot.cand_mask = mask;
  st->hot.cand_n = 0;
  for (uint64_t i = 0; i <= old_mask; i++) {
    uint32_t count = halve ? old[i].count / 2 : old[i].count;
    if (!old[i].used || count == 0)
      continue;
    strata__hot_cand *c = cand_slot(st, old[i].region, old[i].layer);
    if (c == NULL)
      break;
    *c = old[i];
    c->count = count;
    st->hot.cand_n++;
  }
  free(old);
}

typedef struct sample {
  uint64_t region, layer;
} sample;

/* Takes the waiting samples out of every ring into a malloc'd array. */
static sample *drain(strata__staging *st, uint64_t *n_out) {
  struct strata_store *s = st->store;
  uint32_t slots = atomic_load_explicit(&s->slots_used, memory_order_acquire);
  sample *out = malloc(((size_t)slots * STRATA__SAMPLE_RING + 1) * sizeof *out);
  uint64_t n = 0;
  if (out == NULL)
    return NULL;
  for (uint32_t i = 0; i < slots; i++) {
    strata__sample_ring *r = &st->hot.rings[i];
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    for (; t != h; t++) {
      out[n].region = r->keys[t % STRATA__SAMPLE_RING].region;
      out[n].layer = r->keys[t % STRATA__SAMPLE_RING].layer;
      n++;
    }
    atomic_store_explicit(&r->tail, h, memory_order_release);
  }
  *n_out = n;
  return out;
}

int strata__hot_tick(strata__staging *st) {
  pthread_mutex_lock(&st->hot.tick_mu);
  uint64_t n = 0;
  sample *smp = drain(st, &n);
  if (smp == NULL) {
    pthread_mutex_unlock(&st->hot.tick_mu);
    return strata__fail(STRATA_E_NOMEM, "staging: draining samples");
  }

  /* Staged layers get their CLOCK bit; the others are counted. */
  pthread_mutex_lock(&st->mu);
  st->hot.samples += n;
  uint64_t keep = 0;
  for (uint64_t i = 0; i < n; i++)
    if (!strata__pages_touch(st, smp[i].region, smp[i].layer))
      smp[keep++] = smp[i];
  pthread_mutex_unlock(&st->mu);

  uint64_t now = strata__mono_ns();
  if (now - st->hot.last_decay_ns >= DECAY_NS) {
    cand_rebuild(st, true);
    st->hot.last_decay_ns = now;
  }

  /* Layers that passed the threshold in this pass. */
  uint64_t nhot = 0;
  for (uint64_t i = 0; i < keep; i++) {
    if (st->hot.cand_n * 2 > st->hot.cand_mask + 1 &&
        st->hot.cand_mask + 1 < CAND_MAX)
      cand_rebuild(st, false); /* keep probes short */
    strata__hot_cand *c = cand_slot(st, smp[i].region, smp[i].layer);
    if (c == NULL)
      continue; /* table full: the sample is lost */
    if (!c->used) {
      *c = (strata__hot_cand){
          .region = smp[i].region, .layer = smp[i].layer, .used = true};
      st->hot.cand_n++;
    }
    /* A layer that qualifies starts counting again; if it cannot be
     * staged now (no budget), it may qualify again later. (A layer that
     * qualifies twice in one pass is staged by the first and found staged
     * by the second.) */
    if (++c->count >= st->hot.threshold) {
      c->count = 0;
      smp[nhot++] = smp[i];
    }
  }

  /* A snapshot per layer, not one for the pass: staging a large layer
   * takes a while, and a snapshot held meanwhile would hold up writers'
   * reclamation. */
  int staged = 0;
  for (uint64_t i = 0; i < nhot; i++) {
    strata_txn txn;
    if (strata_read_begin(st->store, &txn) != 0)
      break;
    strata_layer lay;
    bool go = strata__get_quiet(&txn, smp[i].region, smp[i].layer, &lay) == 0 &&
              lay.size > 0; /* not gone since it was read; not empty */
    if (go) {
      pthread_mutex_lock(&st->mu);
      go = st->pages.hot_bytes + lay.size <= st->hot.budget &&
           !strata__pages_touch(st, smp[i].region, smp[i].layer);
      pthread_mutex_unlock(&st->mu);
    }
    strata_staged *h;
    if (go && strata__stage(st, &txn, smp[i].region, smp[i].layer, 0,
                            UINT64_MAX, true, &h) == 0) {
      strata_staged_release(h);
      staged++;
      strata__log(st->log, STRATA_LOG_DEBUG, "staging",
                  "msg=\"hot layer staged\" region=%" PRIu64 " layer=%" PRIu64
                  " bytes=%" PRIu64,
                  smp[i].region, smp[i].layer, lay.size);
    }
    strata_read_end(&txn);
  }
  free(smp);

  pthread_mutex_lock(&st->mu);
  if (st->pages.page_blocks + st->fixed_blocks > st->pages.high_blocks)
    strata__pages_evict(st, st->pages.low_blocks);
  strata__pages_reap(st);
  pthread_mutex_unlock(&st->mu);
  pthread_mutex_unlock(&st->hot.tick_mu);
  return staged;
}

static void *worker_main(void *arg) {
  strata__staging *st = arg;
  pthread_mutex_lock(&st->hot.worker_mu);
  while (!st->hot.worker_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* worker_cv waits on it */
    uint64_t ns = (uint64_t)ts.tv_nsec + TICK_NS;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&st->hot.worker_cv, &st->hot.worker_mu, &ts);
    if (st->hot.worker_stop)
      break;
    pthread_mutex_unlock(&st->hot.worker_mu);
    strata__hot_tick(st);
    pthread_mutex_lock(&st->hot.worker_mu);
  }
  pthread_mutex_unlock(&st->hot.worker_mu);
  return NULL;
}

int strata__hot_start(strata__staging *st) {
  int e = pthread_create(&st->hot.worker, NULL, worker_main, st);
  /* EAGAIN is pthread_create() out of memory for the thread's stack or
   * TLS: strata_store_open() documents STRATA_E_NOMEM for that. */
  if (e == EAGAIN)
    return strata__fail(STRATA_E_NOMEM,
                        "staging: starting the hot-layer worker: EAGAIN");
  if (e != 0)
    return strata__fail_errno(e, "staging: starting the hot-layer worker");
  st->hot.worker_running = true;
  return 0;
}

void strata__hot_stop(strata__staging *st) {
  if (!st->hot.worker_running)
    return;
  pthread_mutex_lock(&st->hot.worker_mu);
  st->hot.worker_stop = true;
  pthread_cond_signal(&st->hot.worker_cv);
  pthread_mutex_unlock(&st->hot.worker_mu);
  pthread_join(st->hot.worker, NULL);
  st->hot.worker_running = false;
}

int strata_staging_tick(strata_store *s) {
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, "strata_staging_tick", &st));
  return strata__hot_tick(st);
}
