/* Heap accounting: what the store holds (pool blocks in use plus malloc'd
 * overhead), the thresholds of strata_store_config (warn_pct, evict_pct,
 * refuse_pct of memory_limit) and the level the heap has reached.
 *
 * What is counted: the bytes the pool has handed out and not had back
 * (strata__pool_in_use: whole blocks, so a 100-byte layer counts 128), not
 * the chunks it reserved (strata__pool_reserved). Counting reservations
 * made the thresholds measure the allocator instead of the protos: the
 * pool reserves a 1 MiB chunk per size class on first use and keeps one
 * emptied chunk per class as a spare, so a store's first put of 100 bytes
 * reserved about 2 MiB for good. A 2 MiB limit then refused every put;
 * with 8 MiB, 5,000 puts of 100 bytes over 4 regions crystallized 3,976
 * times, each a full rewrite and fsync (12.7 s; 5 ms now, with no
 * eviction: the puts hold 1.5 MB in use), and the heap stayed at 87.5 %
 * once everything was crystallized (now: the 4.5 KiB of the empty
 * protos), since freeing the protos' blocks empties chunks that stay
 * reserved as spares. The
 * other remedy, giving chunks back when a proto is crystallized, leaves the
 * first-use reservation (a fixed 1 MiB per class in use, unrelated to what
 * the protos hold) and would make the pool call the system each time a
 * class oscillates around a chunk boundary, which its spare exists to
 * avoid. The reservation beyond what is in use is bounded (partly used
 * chunks, whose blocks the next allocations take, and one spare per class:
 * at most 11 MiB) and is reported beside it: the state dump's
 * memory.pool_reserved_bytes and strata_store_pool_stats().
 *
 * One rounding for every threshold: a threshold is pct percent of the
 * limit in bytes, rounded down (strata__memory_threshold), and the heap
 * has reached it when it is at or above that many bytes. Rounded down
 * because a threshold must never admit more than the configured share of
 * the limit; computed as limit / 100 * pct plus the remainder's share so
 * that it is exact without the overflow of limit * pct. (Before, the level
 * compared the floor of heap * 100 / limit with pct, and the refusal of a
 * put used limit / 100 * pct: two answers, up to 99 bytes apart.)
 *
 * What the store does at a level (the eviction step, which crystallizes
 * until the heap is below warn_pct) lives above the catalog, in
 * crystallize.c: this module sits below the overlays, which report the
 * heap in their log lines. */
#include <inttypes.h>

#include "store/store_internal.h"

uint64_t strata__store_heap(const struct strata_store *s) {
  return strata__pool_in_use(s->pool) +
         atomic_load_explicit(&s->extra_bytes, memory_order_relaxed);
}

uint64_t strata__memory_threshold(const struct strata_store *s, unsigned pct) {
  uint64_t limit = s->config.memory_limit;
  return limit / 100 * pct + limit % 100 * pct / 100;
}

strata__mem_level strata__memory_level(const struct strata_store *s,
                                       uint64_t heap) {
  const strata_store_config *c = &s->config;
  return heap >= strata__memory_threshold(s, c->refuse_pct) ? STRATA__MEM_REFUSE
         : heap >= strata__memory_threshold(s, c->evict_pct) ? STRATA__MEM_EVICT
         : heap >= strata__memory_threshold(s, c->warn_pct)  ? STRATA__MEM_WARN
                                                             : STRATA__MEM_OK;
}

strata__mem_level strata__memory_check(struct strata_store *s) {
  uint64_t heap = strata__store_heap(s);
  strata__mem_level level = strata__memory_level(s, heap);
  if (level >= STRATA__MEM_WARN && s->mem_level < STRATA__MEM_WARN) {
    /* The percentage shown is rounded down, like the thresholds. */
    uint64_t limit = s->config.memory_limit;
    strata__log(&s->log, STRATA_LOG_WARN, "memory",
                "msg=\"memory use above the warning threshold\" heap=%" PRIu64
                " limit=%" PRIu64 " pct=%" PRIu64 " threshold=%u",
                heap, limit, limit ? heap * 100 / limit : 0,
                s->config.warn_pct);
  }
  s->mem_level = level;
  return level;
}
