/* The (region, layer)-keyed table with a CLOCK ring that the staged layers
 * and the device layer cache share (contract in staging_ltable.h).
 *
 * Why chained buckets and a separate ring. Both caches look an entry up by
 * key on every call (a stage, a sampled read's touch, a device cache get)
 * and evict rarely, so the lookup is what must be cheap: a chain of one
 * entry on average (the table doubles past 3/4 full), whose links live in
 * the entries themselves, so a lookup costs one bucket read and one entry
 * read and an insert allocates nothing. The ring is an array of every
 * entry in no particular order: CLOCK only needs to visit them all in turn,
 * and an array lets an entry leave in O(1) by moving the last one into its
 * place (it keeps its index in clock_pos). That breaks the ring's order a
 * little (the moved entry is visited out of turn), which CLOCK tolerates:
 * it approximates LRU either way.
 *
 * The two users differ in what makes an entry unevictable and in whether
 * the reference bit counts for every entry (a staged layer with no pages
 * left goes at once); strata__clock_ops carries both differences, so the
 * sweep itself, which both had written out separately, is written once. It
 * calls its callbacks through pointers: a few nanoseconds per step, against
 * an eviction that frees blocks or device memory. */
#include <inttypes.h>
#include <stdlib.h>

#include "common/common.h"
#include "staging/staging_ltable.h"

int strata__ltable_init(strata__ltable *t, const char *what,
                        uint32_t ring_cap) {
  *t = (strata__ltable){.what = what, .mask = 255, .cap = ring_cap};
  t->tab = calloc(t->mask + 1, sizeof *t->tab);
  t->ring = malloc(t->cap * sizeof *t->ring);
  if (t->tab == NULL || t->ring == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: %s table", what);
  return 0;
}

void strata__ltable_destroy(strata__ltable *t) {
  free(t->tab);
  free(t->ring);
  t->tab = NULL;
  t->ring = NULL;
  t->n = 0;
}

static int table_grow(strata__ltable *t) {
  uint64_t mask = t->mask * 2 + 1;
  strata__lnode **tab = calloc(mask + 1, sizeof *tab);
  if (tab == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "staging: %s table of %" PRIu64 " slots", t->what,
                        mask + 1);
  for (uint64_t i = 0; i <= t->mask; i++) {
    for (strata__lnode *n = t->tab[i], *next; n != NULL; n = next) {
      next = n->hnext;
      uint64_t k = strata__layer_key_hash(n->region_id, n->layer_id) & mask;
      n->hnext = tab[k];
      tab[k] = n;
    }
  }
  free(t->tab);
  t->tab = tab;
  t->mask = mask;
  return 0;
}

int strata__ltable_reserve(strata__ltable *t) {
  /* Counted by the ring, which holds every entry, detached ones too. */
  if (t->n + 1 > (t->mask + 1) / 4 * 3)
    STRATA__TRY(table_grow(t));
  if (t->n == t->cap) {
    uint32_t cap = t->cap * 2;
    strata__lnode **r = realloc(t->ring, cap * sizeof *r);
    if (r == NULL)
      return strata__fail(STRATA_E_NOMEM, "staging: %s CLOCK ring of %u",
                          t->what, cap);
    t->ring = r;
    t->cap = cap;
  }
  return 0;
}

void strata__ltable_insert(strata__ltable *t, strata__lnode *n) {
  strata__lnode **p = strata__ltable_slot(t, n->region_id, n->layer_id);
  n->hnext = *p; /* NULL: the key is not in the table */
  *p = n;
  n->clock_pos = t->n;
  t->ring[t->n++] = n;
}

void strata__ltable_detach(strata__ltable *t, strata__lnode *n) {
  strata__lnode **p = strata__ltable_slot(t, n->region_id, n->layer_id);
  if (*p == n)
    *p = n->hnext;
  n->hnext = NULL;
}

void strata__ltable_remove(strata__ltable *t, strata__lnode *n) {
  strata__lnode **p = strata__ltable_slot(t, n->region_id, n->layer_id);
  if (*p == n)
    *p = n->hnext;
  if (n->clock_pos != STRATA__POS_NONE) {
    strata__lnode *last = t->ring[--t->n];
    t->ring[n->clock_pos] = last;
    last->clock_pos = n->clock_pos;
    n->clock_pos = STRATA__POS_NONE;
    if (t->hand >= t->n)
      t->hand = 0;
  }
}

uint64_t strata__ltable_sweep(strata__ltable *t, const strata__clock_ops *ops,
                              void *ctx) {
  uint64_t evicted = 0;
  /* Two turns: the first may only clear reference bits. */
  uint64_t steps = 2 * (uint64_t)t->n + 1;
  while (ops->over(ctx) && t->n > 0 && steps-- > 0) {
    if (t->hand >= t->n)
      t->hand = 0;
    strata__lnode *n = t->ring[t->hand];
    strata__clock_verdict v = ops->judge(ctx, n);
    if (v == STRATA__CLOCK_SKIP) {
      t->hand++;
    } else if (v == STRATA__CLOCK_AGE && n->ref) {
      n->ref = false;
      t->hand++;
    } else {
      evicted++;
      ops->evict(ctx, n); /* the ring's last entry moved to the hand */
    }
  }
  return evicted;
}
