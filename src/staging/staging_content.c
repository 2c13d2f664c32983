/* The content index: which filled block holds which bytes, so that pages of
 * identical content (in one layer or across layers) share one block, and
 * the per-block reference counts that sharing needs.
 *
 * A block filled with a page is entered under the XXH3-128 hash of its
 * bytes (and their length); staging a page whose hash is already there
 * takes a reference to that block instead of copying (staging_pages.c).
 * Blocks are never written after they are filled, so a shared block needs
 * no copy-on-write: a layer whose content changes gets new blocks, and the
 * old ones go with their last reference. The index is chained through the
 * per-block metadata (strata__sblock.hnext), so it allocates nothing after
 * open: one bucket per block, rounded up to a power of two. */
#include <stdlib.h>

#include "staging/staging.h"

static uint64_t pow2_at_least(uint64_t v) {
  uint64_t p = 16;
  while (p < v)
    p <<= 1;
  return p;
}

int strata__content_init(strata__staging *st) {
  strata__pages *pg = &st->pages;
  pg->meta = calloc(st->blocks, sizeof *pg->meta);
  uint64_t nb = pow2_at_least(st->blocks);
  pg->chash = malloc(nb * sizeof *pg->chash);
  if (pg->meta == NULL || pg->chash == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: page table for %u blocks",
                        st->blocks);
  pg->chash_mask = (uint32_t)(nb - 1);
  for (uint64_t i = 0; i < nb; i++)
    pg->chash[i] = STRATA__BLOCK_NONE;
  return 0;
}

void strata__content_destroy(strata__staging *st) {
  free(st->pages.chash);
  free(st->pages.meta);
  st->pages.chash = NULL;
  st->pages.meta = NULL;
}

static uint32_t chash_bucket(const strata__pages *pg, XXH128_hash_t h) {
  return (uint32_t)(h.low64 ^ h.high64) & pg->chash_mask;
}

uint32_t strata__content_find(const strata__staging *st, XXH128_hash_t h,
                              uint32_t len) {
  const strata__pages *pg = &st->pages;
  for (uint32_t b = pg->chash[chash_bucket(pg, h)]; b != STRATA__BLOCK_NONE;
       b = pg->meta[b].hnext) {
    const strata__sblock *m = &pg->meta[b];
    if (m->len == len && XXH128_isEqual(m->hash, h))
      return b;
  }
  return STRATA__BLOCK_NONE;
}

static void chash_insert(strata__pages *pg, uint32_t b) {
  uint32_t k = chash_bucket(pg, pg->meta[b].hash);
  pg->meta[b].hnext = pg->chash[k];
  pg->chash[k] = b;
  pg->meta[b].indexed = true;
}

static void chash_remove(strata__pages *pg, uint32_t b) {
  uint32_t *p = &pg->chash[chash_bucket(pg, pg->meta[b].hash)];
  while (*p != b)
    p = &pg->meta[*p].hnext;
  *p = pg->meta[b].hnext;
  pg->meta[b].indexed = false;
}

void strata__block_commit(strata__staging *st, uint32_t b, uint32_t len,
                          XXH128_hash_t h) {
  strata__pages *pg = &st->pages;
  pg->meta[b] = (strata__sblock){.refs = 1, .len = len, .hash = h};
  if (pg->dedup)
    chash_insert(pg, b);
  pg->page_blocks++;
}

void strata__block_ref(strata__staging *st, uint32_t b) {
  if (++st->pages.meta[b].refs == 2)
    st->pages.shared_blocks++;
}

void strata__block_unref(strata__staging *st, uint32_t b) {
  strata__pages *pg = &st->pages;
  strata__sblock *m = &pg->meta[b];
  if (--m->refs == 1)
    pg->shared_blocks--;
  if (m->refs > 0)
    return;
  if (m->indexed)
    chash_remove(pg, b);
  pg->page_blocks--;
  strata__balloc_free(st->alloc, b, 1);
}
