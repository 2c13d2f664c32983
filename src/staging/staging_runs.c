/* The free-stretch summary tree of the staging pool's block allocator
 * (see staging_runs.h). */
#include <stdlib.h>

#include "staging/staging_runs.h"

/* Each step doubles the length checked, so this takes log2(n) steps. */
uint64_t strata__word_runs(uint64_t x, uint32_t n) {
  uint32_t len = 1;
  while (len < n && x != 0) {
    uint32_t shift = len < n - len ? len : n - len;
    x &= x >> shift;
    len += shift;
  }
  return x;
}

static strata__run_node leaf_of(uint64_t x) {
  if (x == ~UINT64_C(0))
    return (strata__run_node){64, 64, 64};
  strata__run_node r = {(uint32_t)__builtin_ctzll(~x),
                        (uint32_t)__builtin_clzll(~x), 0};
  /* Stretch by stretch: at most 32 of them in a word. */
  while (x != 0) {
    x >>= __builtin_ctzll(x);
    uint32_t ones = (uint32_t)__builtin_ctzll(~x); /* x is not all ones */
    if (ones > r.best)
      r.best = ones;
    x >>= ones;
  }
  return r;
}

/* A parent of two children each spanning `half` blocks. */
static strata__run_node join(strata__run_node l, strata__run_node r,
                             uint32_t half) {
  strata__run_node p;
  p.pre = l.pre == half ? half + r.pre : l.pre;
  p.suf = r.suf == half ? half + l.suf : r.suf;
  p.best = l.suf + r.pre;
  if (l.best > p.best)
    p.best = l.best;
  if (r.best > p.best)
    p.best = r.best;
  return p;
}

int strata__runtree_init(strata__runtree *t, const uint64_t *bits,
                         uint32_t words) {
  uint32_t leaves = 1;
  while (leaves < words)
    leaves <<= 1;
  t->leaves = 0;
  t->node = calloc(2 * (size_t)leaves, sizeof *t->node);
  if (t->node == NULL)
    return -1;
  t->leaves = leaves;
  for (uint32_t w = 0; w < words; w++)
    t->node[leaves + w] = leaf_of(bits[w]);
  uint32_t half = 64;
  for (uint32_t lo = leaves / 2; lo >= 1; lo /= 2, half *= 2)
    for (uint32_t i = lo; i < 2 * lo; i++)
      t->node[i] = join(t->node[2 * i], t->node[2 * i + 1], half);
  return 0;
}

void strata__runtree_free(strata__runtree *t) {
  free(t->node);
  t->node = NULL;
  t->leaves = 0;
}

void strata__runtree_update(strata__runtree *t, const uint64_t *bits,
                            uint32_t wlo, uint32_t whi) {
  uint32_t lo = t->leaves + wlo, hi = t->leaves + whi;
  for (uint32_t i = lo; i <= hi; i++)
    t->node[i] = leaf_of(bits[i - t->leaves]);
  for (uint32_t half = 64; lo > 1; half *= 2) {
    lo /= 2;
    hi /= 2;
    for (uint32_t i = lo; i <= hi; i++)
      t->node[i] = join(t->node[2 * i], t->node[2 * i + 1], half);
  }
}

uint32_t strata__runtree_first(const strata__runtree *t, const uint64_t *bits,
                               uint32_t n) {
  if (t->node[1].best < n)
    return UINT32_MAX;
  /* Down from the root, leftmost first: a stretch inside the left child,
   * else the one across the middle (the left's suffix: any stretch that
   * starts in the left child and leaves it is that one), else the right
   * child. */
  uint32_t i = 1, pos = 0, half = t->leaves * 32u;
  while (i < t->leaves) {
    const strata__run_node *l = &t->node[2 * i], *r = &t->node[2 * i + 1];
    if (l->best >= n) {
      i = 2 * i;
    } else if (l->suf + r->pre >= n) {
      return pos + half - l->suf;
    } else {
      i = 2 * i + 1;
      pos += half;
    }
    half /= 2;
  }
  /* A word with a stretch of n inside: n <= 64 here. */
  uint64_t y = strata__word_runs(bits[i - t->leaves], n);
  return pos + (uint32_t)__builtin_ctzll(y);
}
