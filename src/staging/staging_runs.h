/* A summary tree over a free-block bitmap (bit i set: block i free), for
 * the staging pool's block allocator: the longest stretch of free blocks,
 * and the first stretch of at least n, in O(log words) instead of a scan
 * of the whole bitmap.
 *
 * It is a segment tree whose leaves are the bitmap's 64-bit words. Each
 * node keeps, for the blocks it spans, the free blocks at its start
 * (`pre`), at its end (`suf`) and the longest free stretch inside
 * (`best`); a parent is computed from its two children. The caller
 * changes the bitmap and then tells the tree which words changed.
 *
 * Not thread-safe: the allocator's lock guards it with the bitmap. */
#ifndef STRATA_STAGING_RUNS_H
#define STRATA_STAGING_RUNS_H

#include <stdint.h>

typedef struct strata__run_node {
  uint32_t pre, suf, best;
} strata__run_node;

typedef struct strata__runtree {
  uint32_t leaves;        /* a power of two >= the bitmap's words */
  strata__run_node *node; /* 1-based heap: node[1] is the root */
} strata__runtree;

/* Builds the tree over `words` words of `bits` (words past the end count
 * as all allocated). Returns 0, or -1 when out of memory (t is then
 * empty, and strata__runtree_free accepts it). */
int strata__runtree_init(strata__runtree *t, const uint64_t *bits,
                         uint32_t words);
void strata__runtree_free(strata__runtree *t);

/* Words [wlo, whi] of bits changed (wlo <= whi < words). */
void strata__runtree_update(strata__runtree *t, const uint64_t *bits,
                            uint32_t wlo, uint32_t whi);

/* The longest stretch of free blocks. */
static inline uint32_t strata__runtree_longest(const strata__runtree *t) {
  return t->node[1].best;
}

/* The first block of the first stretch of at least n >= 1 free blocks, or
 * UINT32_MAX when there is none. */
uint32_t strata__runtree_first(const strata__runtree *t, const uint64_t *bits,
                               uint32_t n);

/* Bit i of the result is set when bits i .. i + n - 1 of x all are
 * (1 <= n <= 64). */
uint64_t strata__word_runs(uint64_t x, uint32_t n);

#endif /* STRATA_STAGING_RUNS_H */
