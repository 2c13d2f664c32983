/* Reclamation and statistics: the maintenance every write call ends with
 * (pruning overlays, shrinking count histories that snapshots no longer
 * read, freeing what no snapshot reaches), its public form
 * strata_store_reclaim, and the store's and its pool's statistics. */
#include <stdlib.h>

#include "store/store_internal.h"

void strata__store_maintain(struct strata_store *s) {
  uint64_t min = strata__ebr_min_epoch(s);
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  bool retired = false;
  for (uint64_t i = 0; i < c->n; i++) {
    strata__overlay *o = c->by_order[i]->overlay;
    if (o == NULL)
      continue;
    if (o->dirty_n != 0) {
      uint64_t before = o->lvers;
      strata__overlay_prune(s, o, min);
      retired |= o->lvers != before;
    }
    /* A count history left mostly dead by snapshots that ended. */
    retired |= strata__overlay_count_compact(s, o, min);
  }
  if (retired)
    strata__ebr_advance(s); /* readers that start now cannot see them */
  strata__ebr_collect(s);
}

int strata_store_reclaim(strata_store *s, int wait) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_store_reclaim: NULL");
  if (wait) {
    strata__reader *self = pthread_getspecific(s->slot_key);
    STRATA__FAIL_IF(self != NULL && self->depth > 0, STRATA_E_STATE,
                    "%s: strata_store_reclaim(wait) inside a snapshot of the "
                    "same store would wait for itself",
                    s->dir);
    pthread_mutex_lock(&s->write_mu);
    strata__store_maintain(s); /* prunes and advances */
    uint64_t e = strata__ebr_advance(s) - 1;
    pthread_mutex_unlock(&s->write_mu);
    strata__ebr_wait(s, e);
  }
  pthread_mutex_lock(&s->write_mu);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}

int strata_store_stats_get(strata_store *s, strata_store_stats *out) {
  STRATA__FAIL_IF(s == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_store_stats_get: NULL argument");
  pthread_mutex_lock(&s->write_mu);
  *out = s->stats;
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  out->regions = c->n;
  out->protos = 0;
  for (uint64_t i = 0; i < c->n; i++)
    out->protos += c->by_order[i]->overlay != NULL;
  out->heap_bytes = strata__store_heap(s);
  out->memory_limit = s->config.memory_limit;
  out->retired_bytes =
      atomic_load_explicit(&s->retired_bytes, memory_order_relaxed);
  out->retired_objects =
      atomic_load_explicit(&s->retired_count, memory_order_relaxed);
  out->version = atomic_load_explicit(&s->epoch, memory_order_relaxed);
  strata__ebr_snapshot_stats(s, &out->snapshots_open, &out->oldest_snapshot_ms);
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}

size_t strata_store_pool_stats(strata_store *s, strata_pool_stats *rows,
                               size_t max) {
  if (s == NULL)
    return 0;
  strata__pool_class_stats tmp[STRATA__POOL_MAX_CLASSES + 1];
  pthread_mutex_lock(&s->write_mu);
  size_t n = strata__pool_stats(s->pool, tmp, STRATA__POOL_MAX_CLASSES + 1);
  pthread_mutex_unlock(&s->write_mu);
  for (size_t i = 0; i < n && i < max && rows != NULL; i++)
    rows[i] = (strata_pool_stats){.block_size = tmp[i].block_size,
                                  .chunks = tmp[i].chunks,
                                  .blocks_total = tmp[i].blocks_total,
                                  .blocks_used = tmp[i].blocks_used,
                                  .bytes_reserved = tmp[i].bytes_reserved,
                                  .bytes_requested = tmp[i].bytes_requested,
                                  .utilization = tmp[i].utilization,
                                  .fragmentation = tmp[i].fragmentation,
                                  .allocs = tmp[i].allocs,
                                  .frees = tmp[i].frees,
                                  .failures = tmp[i].failures};
  return n;
}
