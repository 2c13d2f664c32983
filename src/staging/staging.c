/* The staging pool's life cycle (open with the store, close with it), its
 * configuration, statistics and its part of the state dump. This file is
 * the top of src/staging/: it opens and closes every part, and no part
 * calls into it. The parts live in staging_alloc.c (blocks),
 * staging_slab.c (pinned slabs), staging_content.c, staging_layers.c and
 * staging_pages.c (staged layers), staging_hot.c (hot layers),
 * staging_transfer.c (transfers), staging_direct.c (the zero-staging path)
 * and staging_dcache.c (the device cache); src/device/ holds the device
 * backends. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/bits.h"
#include "common/strata_testing.h"
#include "staging/staging.h"
#include "store/store_internal.h"

#define SLAB_MAX ((uint64_t)1 << 30) /* slabs of at most 1 GiB */
#define TOUCH_THREADS_MAX 8

/* The store's before_unmap hook (store_internal.h): the zero-staging path
 * may have registered the mapping with the device and have copies from it
 * in flight. */
static void forget_mapping(void *ctx, const void *base, uint64_t size) {
  (void)size;
  strata__direct_forget(ctx, base);
}

/* Fills in the defaults and checks the staging fields of a config. */
static int check_config(const char *dir, strata_store_config *c) {
  if (c->staging.block_size == 0)
    c->staging.block_size = 64 * 1024;
  if (c->staging.streams == 0)
    c->staging.streams = 3;
  if (c->staging.high_pct == 0)
    c->staging.high_pct = 80;
  if (c->staging.evict_pct == 0)
    c->staging.evict_pct = 20;
  if (c->staging.hot_threshold == 0)
    c->staging.hot_threshold = 4;
  if (c->staging.sample_period == 0)
    c->staging.sample_period = 64;
  if (c->staging.hot_budget == 0)
    c->staging.hot_budget = c->staging.bytes / 2;
  if (c->staging.pack_bytes == 0)
    c->staging.pack_bytes = 2u << 20;
  uint64_t bs = c->staging.block_size;
  STRATA__FAIL_IF(
      !strata__is_pow2(bs) || bs < 4096 || bs > (64u << 20), STRATA_E_INVAL,
      "%s: staging.block_size %" PRIu64 " must be a power of two from "
      "4 KiB to 64 MiB",
      dir, bs);
  STRATA__FAIL_IF(c->staging.streams > 64, STRATA_E_INVAL,
                  "%s: staging.streams %u is more than 64", dir,
                  c->staging.streams);
  STRATA__FAIL_IF(c->staging.high_pct > 100 ||
                      c->staging.evict_pct > c->staging.high_pct,
                  STRATA_E_INVAL,
                  "%s: staging watermarks must satisfy evict %u <= high %u "
                  "<= 100",
                  dir, c->staging.evict_pct, c->staging.high_pct);
  STRATA__FAIL_IF(!strata__is_pow2(c->staging.sample_period), STRATA_E_INVAL,
                  "%s: staging.sample_period %u is not a power of two", dir,
                  c->staging.sample_period);
  STRATA__FAIL_IF(c->staging.device < 0, STRATA_E_INVAL,
                  "%s: staging.device %d is negative", dir, c->staging.device);
  /* Pack buffers are whole blocks. */
  c->staging.pack_bytes = (c->staging.pack_bytes + bs - 1) / bs * bs;
  uint64_t blocks = (c->staging.bytes + bs - 1) / bs;
  uint64_t pack_blocks =
      2ull * c->staging.streams * (c->staging.pack_bytes / bs);
  STRATA__FAIL_IF(
      blocks < 2 * pack_blocks, STRATA_E_INVAL,
      "%s: staging.bytes %" PRIu64 " is too small: the %u streams' pack "
      "buffers alone take %" PRIu64 " bytes, and they may use at most "
      "half of the pool",
      dir, c->staging.bytes, c->staging.streams, (pack_blocks * bs));
  STRATA__FAIL_IF(blocks > ((uint64_t)1 << 31), STRATA_E_INVAL,
                  "%s: staging.bytes %" PRIu64 " is more than 2^31 blocks", dir,
                  c->staging.bytes);
  return 0;
}

static int alloc_slabs(strata__staging *st, uint64_t total) {
  uint64_t slab =
      total < SLAB_MAX ? total : SLAB_MAX / st->block_size * st->block_size;
  st->nslabs = (uint32_t)((total + slab - 1) / slab);
  st->slabs = calloc(st->nslabs, sizeof *st->slabs);
  if (st->slabs == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: %u slabs", st->nslabs);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned touch = cpus < 1                   ? 1
                   : cpus > TOUCH_THREADS_MAX ? TOUCH_THREADS_MAX
                                              : (unsigned)cpus;
  int node = strata__device_numa_node(st->dev);
  bool driver =
      (st->store->config.staging.flags & STRATA_STAGING_DRIVER_ALLOC) != 0;
  for (uint32_t i = 0; i < st->nslabs; i++) {
    uint64_t bytes = i + 1 < st->nslabs ? slab : total - slab * i;
    STRATA__TRY(strata__slab_alloc(st->dev, bytes, node, driver, touch, st->log,
                                   &st->slabs[i]));
    int n = strata__balloc_add_slab(st->alloc, st->slabs[i].base, bytes);
    if (n < 0)
      return n;
  }
  return 0;
}

int strata__staging_open(struct strata_store *s, strata__staging **out) {
  *out = NULL;
  strata_store_config *c = &s->config;
  if (c->staging.bytes == 0)
    return 0;
  STRATA__TRY(check_config(s->dir, c));
  strata__staging *st = calloc(1, sizeof *st);
  if (st == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: staging pool", s->dir);
  st->store = s;
  st->log = &s->log;
  st->block_size = c->staging.block_size;
  st->pages.dedup = (c->staging.flags & STRATA_STAGING_NO_DEDUP) == 0;
  st->direct.on = (c->staging.flags & STRATA_STAGING_DIRECT) != 0;
  st->hot.threshold = c->staging.hot_threshold;
  st->hot.budget = c->staging.hot_budget;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->pages.filled, NULL);
  pthread_mutex_init(&st->transfer.batch_mu, NULL);
  pthread_mutex_init(&st->direct.mu, NULL);
  pthread_mutex_init(&st->dcache.mu, NULL);
  pthread_mutex_init(&st->hot.tick_mu, NULL);
  pthread_mutex_init(&st->hot.worker_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* immune to clock jumps */
  pthread_cond_init(&st->hot.worker_cv, &ca);
  pthread_condattr_destroy(&ca);
  /* Everything below is undone by strata__staging_close, which copes with
   * a half-built pool. */
  *out = st;
  uint64_t t0 = strata__mono_ns();
  strata__device_config xc = {.device = c->staging.device,
                              .force_host =
                                  (c->staging.flags & STRATA_STAGING_HOST) != 0,
                              .log = &s->log};
  STRATA__TRY(strata__device_open(&xc, &st->dev));
  STRATA__TRY(strata__balloc_new(st->block_size, &st->alloc));
  uint64_t total =
      (c->staging.bytes + st->block_size - 1) / st->block_size * st->block_size;
  STRATA__TRY(alloc_slabs(st, total));
  st->blocks = strata__balloc_blocks(st->alloc);
  STRATA__TRY(strata__content_init(st));
  STRATA__TRY(strata__layers_init(st));
  STRATA__TRY(strata__hot_init(st));
  STRATA__TRY(strata__transfer_init(st));
  /* The watermarks apply to the blocks layers may use (the pack buffers
   * are taken for good). */
  uint64_t usable = st->blocks - st->fixed_blocks;
  st->pages.high_blocks = st->fixed_blocks + usable * c->staging.high_pct / 100;
  st->pages.low_blocks =
      st->fixed_blocks +
      usable * (c->staging.high_pct - c->staging.evict_pct) / 100;
  STRATA__TRY(strata__dcache_init(st));
  s->hot_rings = st->hot.rings;
  s->sample_mask = c->staging.sample_period - 1;
  /* Set before the store is handed out or its verifier thread starts, so
   * no other thread reads the hook while it changes. */
  s->before_unmap = forget_mapping;
  s->before_unmap_ctx = st;
  if ((c->staging.flags & STRATA_STAGING_NO_WORKER) == 0)
    STRATA__TRY(strata__hot_start(st));
  char dev[128];
  strata__log(&s->log, STRATA_LOG_INFO, "staging",
              "msg=\"staging pool ready\" backend=%s device=%s numa_node=%d "
              "bytes=%" PRIu64 " slabs=%u method=%s block_size=%" PRIu64
              " streams=%u "
              "ms=%.1f",
              strata__device_backend(st->dev),
              strata__log_quote(dev, sizeof dev, strata__device_name(st->dev)),
              strata__device_numa_node(st->dev), total, st->nslabs,
              strata__slab_method_name(st->slabs[0].method), st->block_size,
              st->transfer.nstreams, (double)(strata__mono_ns() - t0) / 1e6);
  return 0;
}

void strata__staging_close(strata__staging *st) {
  if (st == NULL)
    return;
  strata__hot_stop(st);
  /* Streams drain first: their completion callbacks touch layers. Copies
   * on the application's streams count in `inflight` too: wait for them
   * (they should be done: holds and streams go before close). */
  strata__transfer_destroy(st);
  bool warned = false;
  while (atomic_load_explicit(&st->inflight, memory_order_acquire) > 0) {
    if (!warned)
      strata__log(st->log, STRATA_LOG_WARN, "staging",
                  "msg=\"close waits for transfers in flight\" count=%" PRIu64,
                  atomic_load(&st->inflight));
    warned = true;
    /* After a device failure the completion callbacks never run. */
    if (strata__device_healthy(st->dev) < 0) {
      char why[256];
      strata__log(
          st->log, STRATA_LOG_ERROR, "staging",
          "msg=\"device failed; transfers in flight will not "
          "complete\" count=%" PRIu64 " error=%s",
          atomic_load(&st->inflight),
          strata__log_quote(why, sizeof why, strata_last_error_detail()));
      break;
    }
    usleep(100);
  }
  strata__dcache_destroy(st);
  strata__direct_destroy(st);
  strata__layers_destroy(st);
  strata__content_destroy(st);
  strata__hot_destroy(st);
  for (uint32_t i = 0; st->slabs != NULL && i < st->nslabs; i++)
    strata__slab_free(st->dev, &st->slabs[i]);
  free(st->slabs);
  strata__balloc_free_all(st->alloc);
  strata__device_close(st->dev);
  pthread_cond_destroy(&st->hot.worker_cv);
  pthread_mutex_destroy(&st->hot.worker_mu);
  pthread_mutex_destroy(&st->hot.tick_mu);
  pthread_mutex_destroy(&st->dcache.mu);
  pthread_mutex_destroy(&st->direct.mu);
  pthread_mutex_destroy(&st->transfer.batch_mu);
  pthread_cond_destroy(&st->pages.filled);
  pthread_mutex_destroy(&st->mu);
  /* Last, once the pool's own threads (the hot worker reads through
   * snapshots, which claim reader slots) are gone; the store's readers and
   * verifier are done already (strata_store_close): take back the rings
   * and the unmap hook, which point into this pool. */
  st->store->hot_rings = NULL;
  st->store->before_unmap = NULL;
  st->store->before_unmap_ctx = NULL;
  free(st);
}

void strata__staging_figures(void *ctx, strata__shm_staging *out) {
  strata__staging *st = ctx;
  strata__balloc_stats bs;
  strata__balloc_stats_get(st->alloc, &bs);
  *out = (strata__shm_staging){.used_bytes = bs.used * bs.block_size};
  for (uint32_t i = 0; i < st->nslabs; i++)
    out->bytes += st->slabs[i].bytes;
  pthread_mutex_lock(&st->mu);
  out->layers = st->pages.layers.n;
  pthread_mutex_unlock(&st->mu);
}

int strata_staging_stats_get(strata_store *s, strata_staging_stats *out) {
  STRATA__FAIL_IF(out == NULL, STRATA_E_INVAL,
                  "strata_staging_stats_get: NULL out");
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, "strata_staging_stats_get", &st));
  strata__balloc_stats bs;
  strata__balloc_stats_get(st->alloc, &bs);
  *out = (strata_staging_stats){
      .backend = strata__device_backend(st->dev),
      .device_name = strata__device_name(st->dev),
      .numa_node = st->nslabs > 0 ? st->slabs[0].node : -1,
      .slabs = st->nslabs,
      .block_size = bs.block_size,
      .blocks = bs.blocks,
      .blocks_used = bs.used,
      .blocks_free = bs.free,
      .largest_free_run = bs.largest_run,
      .fragmentation_permille = bs.fragmentation_permille,
      .alloc_failures = bs.failures,
      .hot_budget = st->hot.budget,
      .device_bytes = strata__device_mem_bytes(st->dev)};
  for (uint32_t i = 0; i < st->nslabs; i++) {
    out->slab_bytes += st->slabs[i].bytes;
    if (st->slabs[i].method != STRATA__SLAB_UNLOCKED)
      out->pinned_bytes += st->slabs[i].bytes;
  }
  pthread_mutex_lock(&st->mu);
  out->staged_layers = st->pages.layers.n;
  out->staged_bytes = st->pages.staged_bytes;
  out->hot_layers = st->pages.hot_layers;
  out->hot_bytes = st->pages.hot_bytes;
  out->shared_blocks = st->pages.shared_blocks;
  out->dedup_hits = st->pages.dedup_hits;
  out->dedup_bytes = st->pages.dedup_bytes;
  out->stage_calls = st->pages.stage_calls;
  out->stage_copied_bytes = st->pages.stage_copied_bytes;
  out->evictions = st->pages.evictions;
  out->evicted_bytes = st->pages.evicted_bytes;
  out->samples = st->hot.samples;
  pthread_mutex_unlock(&st->mu);
  pthread_mutex_lock(&st->dcache.mu);
  out->dcache_layers = st->dcache.entries.n;
  out->dcache_bytes = st->dcache.bytes;
  out->dcache_budget = st->dcache.budget;
  out->dcache_hits = st->dcache.hits;
  out->dcache_misses = st->dcache.misses;
  out->dcache_prefetches = st->dcache.prefetches;
  out->dcache_evictions = st->dcache.evictions;
  pthread_mutex_unlock(&st->dcache.mu);
  uint32_t slots = atomic_load_explicit(&s->slots_used, memory_order_acquire);
  for (uint32_t i = 0; i < slots; i++)
    out->samples_dropped +=
        atomic_load_explicit(&st->hot.rings[i].dropped, memory_order_relaxed);
  out->transfers_in_flight = atomic_load(&st->inflight);
  out->transfers = atomic_load(&st->transfer.transfers);
  out->transfer_bytes = atomic_load(&st->transfer.transfer_bytes);
  out->batches = atomic_load(&st->transfer.batches);
  out->packed_copies = atomic_load(&st->transfer.packed_copies);
  return 0;
}

static json_t *slabs_json(const strata__staging *st) {
  json_t *a = json_array();
  for (uint32_t i = 0; a != NULL && i < st->nslabs; i++) {
    const strata__slab *sl = &st->slabs[i];
    if (json_array_append_new(
            a, json_pack("{s:I, s:i, s:s, s:f}", "bytes", (json_int_t)sl->bytes,
                         "numa_node", sl->node, "method",
                         strata__slab_method_name(sl->method), "alloc_ms",
                         (double)sl->alloc_ns / 1e6)) != 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

json_t *strata__staging_json(struct strata_store *s) {
  strata_staging_stats t;
  if (s->staging == NULL || strata_staging_stats_get(s, &t) != 0)
    return json_null();
  const strata__staging *st = s->staging;
  const char *reason = strata__device_host_reason(st->dev);
  return json_pack(
      "{s:s, s:s, s:s?, s:i, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, "
      "s:{s:I, s:I, s:I, s:I, s:I, s:I}, "
      "s:{s:I, s:I, s:I, s:I, s:I, s:I}, "
      "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, "
      "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
      "backend", t.backend, "device", t.device_name, "host_reason",
      reason[0] != '\0' ? reason : NULL, "numa_node", t.numa_node, "slabs",
      slabs_json(st),
      /* blocks */
      "blocks", "block_size", (json_int_t)t.block_size, "total",
      (json_int_t)t.blocks, "used", (json_int_t)t.blocks_used, "free",
      (json_int_t)t.blocks_free, "largest_free_run",
      (json_int_t)t.largest_free_run, "fragmentation_permille",
      (json_int_t)t.fragmentation_permille, "alloc_failures",
      (json_int_t)t.alloc_failures,
      /* layers */
      "layers", "staged", (json_int_t)t.staged_layers, "staged_bytes",
      (json_int_t)t.staged_bytes, "shared_blocks", (json_int_t)t.shared_blocks,
      "dedup_hits", (json_int_t)t.dedup_hits, "stage_calls",
      (json_int_t)t.stage_calls, "copied_bytes",
      (json_int_t)t.stage_copied_bytes,
      /* hot */
      "hot", "layers", (json_int_t)t.hot_layers, "bytes",
      (json_int_t)t.hot_bytes, "budget", (json_int_t)t.hot_budget, "samples",
      (json_int_t)t.samples, "samples_dropped", (json_int_t)t.samples_dropped,
      "evictions", (json_int_t)t.evictions,
      /* transfers */
      "transfers", "in_flight", (json_int_t)t.transfers_in_flight, "count",
      (json_int_t)t.transfers, "bytes", (json_int_t)t.transfer_bytes, "batches",
      (json_int_t)t.batches, "packed_copies", (json_int_t)t.packed_copies,
      "device_bytes", (json_int_t)t.device_bytes, "streams",
      (json_int_t)st->transfer.nstreams,
      /* device cache */
      "device_cache", "layers", (json_int_t)t.dcache_layers, "bytes",
      (json_int_t)t.dcache_bytes, "budget", (json_int_t)t.dcache_budget, "hits",
      (json_int_t)t.dcache_hits, "misses", (json_int_t)t.dcache_misses,
      "prefetches", (json_int_t)t.dcache_prefetches, "evictions",
      (json_int_t)t.dcache_evictions);
}
