/* Staging: copying the pages of a layer into pinned blocks, sharing the
 * blocks of pages whose content is staged already, and the holds
 * (strata_staged) that keep pages in place while a caller reads them or a
 * transfer copies them.
 *
 * A layer's content is cut into block-size pages; page i of a staged
 * layer lives in block pages[i]. Copies run without `mu` held: the layer
 * is marked `filling`, which keeps eviction off it and makes a second
 * stager of the same layer wait. The content index and the block
 * references are in staging_content.c, the layer table and eviction in
 * staging_layers.c. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "staging/staging.h"

/* Allocates `need` blocks into out[]: a contiguous run when one is free
 * (one copy per run to the device), else single blocks, evicting idle
 * layers only for the blocks that are missing. mu held. On failure nothing
 * stays allocated. */
static int alloc_blocks(strata__staging *st, uint32_t need, uint32_t *out) {
  STRATA__FAIL_IF(need > st->blocks - st->fixed_blocks, STRATA_E_LIMIT,
                  "staging: %u blocks of %" PRIu64
                  " bytes is more than the pool "
                  "holds for layers (%" PRIu64 " blocks)",
                  need, st->block_size, (st->blocks - st->fixed_blocks));
  strata__pages_reap(st);
  uint32_t first;
  if (strata__balloc_alloc(st->alloc, need, &first) == 0) {
    for (uint32_t i = 0; i < need; i++)
      out[i] = first + i;
    return 0;
  }
  uint32_t got = 0;
  while (got < need && strata__balloc_alloc(st->alloc, 1, &out[got]) == 0)
    got++;
  if (got < need) {
    uint64_t used = st->pages.page_blocks + st->fixed_blocks,
             missing = need - got;
    strata__pages_evict(st, used > missing ? used - missing : 0);
    while (got < need && strata__balloc_alloc(st->alloc, 1, &out[got]) == 0)
      got++;
  }
  if (got == need) {
    strata__clear_error(); /* the failed attempts above were not errors */
    return 0;
  }
  for (uint32_t j = 0; j < got; j++)
    strata__balloc_free(st->alloc, out[j], 1);
  return strata__fail(STRATA_E_LIMIT,
                      "staging: no room for %u blocks of %" PRIu64
                      " bytes: every "
                      "other staged block is held or in transfer",
                      need, st->block_size);
}

/* A hold's memory, for up to n segments. It is allocated before the pages
 * are filled: once fill() has staged pages, nothing may fail, or a call
 * that reports an error would leave them staged (found by
 * test_staging_allocfail). */
static strata_staged *hold_alloc(uint32_t n) {
  strata_staged *h;
  return malloc(sizeof *h + (n > 0 ? n : 1) * sizeof h->seg[0]);
}

/* Fills in hold h (from hold_alloc(n)) on pages [first, first + n) of l,
 * which are all staged. */
static void make_hold(strata_staged *h, strata__staging *st, strata__slayer *l,
                      uint32_t first, uint32_t n) {
  *h = (strata_staged){.st = st, .layer = l, .first = first, .n = n};
  h->offset = (uint64_t)first * st->block_size;
  for (uint32_t i = first; i < first + n; i++) {
    uint64_t len = strata__page_len(st->block_size, l->size, i);
    const uint8_t *p = strata__balloc_ptr(st->alloc, l->pages[i]);
    h->size += len;
    /* Extend the previous segment when this block follows it in memory. */
    if (h->nseg > 0 && i > first && l->pages[i] == l->pages[i - 1] + 1 &&
        strata__balloc_slab_of(st->alloc, l->pages[i]) ==
            strata__balloc_slab_of(st->alloc, l->pages[i - 1])) {
      h->seg[h->nseg - 1].len += len;
      continue;
    }
    h->seg[h->nseg].ptr = p;
    h->seg[h->nseg].len = len;
    h->nseg++;
  }
}

/* Undoes what fill() did to `l` for pages[] of this call. mu held. */
static void unfill(strata__staging *st, strata__slayer *l,
                   const uint32_t *pages, uint32_t m) {
  for (uint32_t k = 0; k < m; k++) {
    uint32_t i = pages[k];
    if (l->pages[i] == STRATA__BLOCK_NONE)
      continue;
    st->pages.staged_bytes -= strata__page_len(st->block_size, l->size, i);
    strata__block_unref(st, l->pages[i]);
    l->pages[i] = STRATA__BLOCK_NONE;
    l->staged--;
  }
}

/* Bytes copied before they are hashed: small enough to be hashed from L1
 * right after the copy brought them there, large enough that the streaming
 * hash's per-call cost does not show (8 KiB measured best on AVX-512:
 * 0.92 of memcpy in a test loop, against 0.74-0.82 for a hash pass
 * before the copy; docs/BENCHMARKS.md, "Staging results"). */
#define FUSED_CHUNK 8192u

/* memcpy() out of line: where the compiler knows a copy is at most
 * FUSED_CHUNK bytes it inlines it as `rep movsq`, measured at half the
 * speed of libc's vector copy here. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noipa))
#else
__attribute__((noinline))
#endif
static void
copy_chunk(void *dst, const void *src, size_t len) {
  memcpy(dst, src, len);
}

/* Copies len bytes from src to dst and returns their XXH3-128: one pass
 * over the source, which is what a staging copy costs (the bytes come from
 * the page cache or further). The streaming hash gives the same value as
 * XXH3_128bits() of the whole page. */
static XXH128_hash_t copy_and_hash(XXH3_state_t *hs, uint8_t *dst,
                                   const uint8_t *src, uint64_t len) {
  XXH3_128bits_reset(hs);
  for (uint64_t at = 0; at < len; at += FUSED_CHUNK) {
    uint64_t k = len - at < FUSED_CHUNK ? len - at : FUSED_CHUNK;
    copy_chunk(dst + at, src + at, k);
    XXH3_128bits_update(hs, dst + at, k);
  }
  return XXH3_128bits_digest(hs);
}

/* Page `page` of l takes block b, just filled with `len` bytes of hash h.
 * mu held. (The call's counters are fill()'s.) */
static void page_commit(strata__staging *st, strata__slayer *l, uint32_t page,
                        uint32_t b, uint32_t len, XXH128_hash_t h) {
  strata__block_commit(st, b, len, h);
  l->pages[page] = b;
  l->staged++;
  st->pages.staged_bytes += len;
}

/* Page `page` of l shares block b, whose content is the same. mu held. */
static void page_share(strata__staging *st, strata__slayer *l, uint32_t page,
                       uint32_t b, uint32_t len) {
  strata__block_ref(st, b);
  l->pages[page] = b;
  l->staged++;
  st->pages.staged_bytes += len;
}

/* Fills the missing pages among [first, first + n) of `l` from `data`.
 * Called and returns with mu held; drops it while hashing and copying.
 *
 * A page whose content is staged already (another layer's, or an earlier
 * page of this one: the content index holds every filled block) shares
 * that block. Finding out costs a hash of the page; done in the same pass
 * as the copy, it costs little more than the copy. So when the free blocks
 * allow, each page is copied and hashed at once into a block of a run
 * taken up front (one contiguous run: one segment to transfer), and a page
 * that turns out to be staged already gives its block back. The run is
 * taken only when it is free without evicting anything and as many blocks
 * again stay free, so that blocks held for a moment by a fill do not make
 * another stager evict or fail. Otherwise (a full, nearly full or
 * fragmented pool) each page is hashed first, and only a page with new
 * content gets a block, evicting idle layers for it: sharing never makes a
 * layer evict. On failure the pages this call staged are given back, and
 * the pool's counters do not count them. */
static int fill(strata__staging *st, strata__slayer *l, const uint8_t *data,
                uint32_t first, uint32_t n) {
  uint32_t m = 0;
  for (uint32_t i = first; i < first + n; i++)
    m += l->pages[i] == STRATA__BLOCK_NONE;
  if (m == 0)
    return 0;
  bool dedup = st->pages.dedup;
  uint32_t *done = malloc((size_t)m * sizeof *done); /* pages staged here */
  /* Allocated, not on the stack: its layout is only stable to programs
   * linked statically with libxxhash. */
  XXH3_state_t *hs = dedup ? XXH3_createState() : NULL;
  if (done == NULL || (dedup && hs == NULL)) {
    free(done);
    XXH3_freeState(hs);
    return strata__fail(STRATA_E_NOMEM,
                        "staging: region %" PRIu64 " layer %" PRIu64,
                        l->node.region_id, l->node.layer_id);
  }
  uint32_t spec = STRATA__BLOCK_NONE, spec_left = 0, ndone = 0;
  uint64_t copied_bytes = 0, hits = 0, hit_bytes = 0;
  strata__pages_reap(st);
  if (strata__balloc_try(st->alloc, m, m, &spec))
    spec_left = m;
  l->filling = true;
  int rc = 0;
  for (uint32_t i = first; i < first + n && rc == 0; i++) {
    if (l->pages[i] != STRATA__BLOCK_NONE)
      continue;
    const uint8_t *src = data + (uint64_t)i * st->block_size;
    uint32_t len = (uint32_t)strata__page_len(st->block_size, l->size, i);
    XXH128_hash_t h = {0, 0};
    uint32_t b = STRATA__BLOCK_NONE;
    if (spec_left > 0) {
      b = spec++;
      spec_left--;
      pthread_mutex_unlock(&st->mu);
      uint8_t *dst = strata__balloc_ptr(st->alloc, b);
      if (dedup)
        h = copy_and_hash(hs, dst, src, len);
      else
        memcpy(dst, src, len);
      pthread_mutex_lock(&st->mu);
    } else if (dedup) {
      pthread_mutex_unlock(&st->mu);
      h = XXH3_128bits(src, len);
      pthread_mutex_lock(&st->mu);
    }
    uint32_t same =
        dedup ? strata__content_find(st, h, len) : STRATA__BLOCK_NONE;
    if (same != STRATA__BLOCK_NONE) {
      if (b != STRATA__BLOCK_NONE)
        strata__balloc_free(st->alloc, b, 1); /* copied for nothing */
      page_share(st, l, i, same, len);
      hits++;
      hit_bytes += len;
      done[ndone++] = i;
      continue;
    }
    if (b == STRATA__BLOCK_NONE) {
      rc = alloc_blocks(st, 1, &b);
      if (rc < 0)
        break;
      pthread_mutex_unlock(&st->mu);
      memcpy(strata__balloc_ptr(st->alloc, b), src, len);
      pthread_mutex_lock(&st->mu);
    }
    page_commit(st, l, i, b, len, h);
    copied_bytes += len;
    done[ndone++] = i;
  }
  if (spec_left > 0)
    strata__balloc_free(st->alloc, spec, spec_left);
  if (rc < 0) {
    unfill(st, l, done, ndone); /* leave the layer as it was */
  } else {
    st->pages.stage_copied_bytes += copied_bytes;
    st->pages.dedup_hits += hits;
    st->pages.dedup_bytes += hit_bytes;
  }
  l->filling = false;
  pthread_cond_broadcast(&st->pages.filled);
  free(done);
  XXH3_freeState(hs);
  return rc;
}

int strata__stage(strata__staging *st, const strata_txn *txn,
                  uint64_t region_id, uint64_t layer_id, uint64_t first,
                  uint64_t n, bool hot, strata_staged **out) {
  if (out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_stage: NULL out");
  *out = NULL;
  strata_layer lay;
  int grc = strata__get_quiet(txn, region_id, layer_id, &lay);
  if (grc < 0)
    return strata__fail(grc,
                        "staging: region %" PRIu64 " layer %" PRIu64 ": %s",
                        region_id, layer_id, strata_strerror(grc));
  uint64_t bs = st->block_size;
  uint64_t npages = lay.size / bs + (lay.size % bs != 0);
  if (npages > UINT32_MAX)
    return strata__fail(STRATA_E_LIMIT,
                        "staging: region %" PRIu64 " layer %" PRIu64
                        ": %" PRIu64 " bytes is too "
                        "large to stage",
                        region_id, layer_id, lay.size);
  if (first > npages || (first == npages && npages > 0))
    return strata__fail(STRATA_E_BOUNDS,
                        "staging: region %" PRIu64 " layer %" PRIu64
                        ": block %" PRIu64 " is past "
                        "its %" PRIu64 " blocks",
                        region_id, layer_id, first, npages);
  if (n > npages - first)
    n = npages - first;

  pthread_mutex_lock(&st->mu);
  strata__pages_reap(st);
  strata__slayer *l;
  for (;;) {
    l = strata__layers_find(st, region_id, layer_id);
    if (l != NULL && (l->size != lay.size || l->checksum != lay.checksum)) {
      strata__layers_kill(st, l); /* other content: the snapshot saw a change */
      l = NULL;
    }
    if (l == NULL || !l->filling)
      break;
    pthread_cond_wait(&st->pages.filled, &st->mu);
  }
  bool created = false;
  if (l == NULL) {
    l = calloc(1, sizeof *l + npages * sizeof l->pages[0]);
    if (l == NULL) {
      pthread_mutex_unlock(&st->mu);
      return strata__fail(STRATA_E_NOMEM,
                          "staging: region %" PRIu64 " layer %" PRIu64,
                          region_id, layer_id);
    }
    *l = (strata__slayer){.node = {.region_id = region_id,
                                   .layer_id = layer_id,
                                   .clock_pos = STRATA__POS_NONE},
                          .st = st,
                          .size = lay.size,
                          .checksum = lay.checksum,
                          .npages = (uint32_t)npages};
    for (uint32_t i = 0; i < npages; i++)
      l->pages[i] = STRATA__BLOCK_NONE;
    int rc = strata__layers_link(st, l);
    if (rc < 0) {
      pthread_mutex_unlock(&st->mu);
      free(l);
      return rc;
    }
    created = true;
  }
  /* Held while filling, so that a failure cannot free it under us. */
  l->holders++;
  strata_staged *h = hold_alloc((uint32_t)n);
  int rc = h == NULL ? strata__fail(STRATA_E_NOMEM,
                                    "staging: hold on region %" PRIu64
                                    " layer %" PRIu64,
                                    region_id, layer_id)
                     : fill(st, l, lay.data, (uint32_t)first, (uint32_t)n);
  if (rc < 0) {
    free(h);
    l->holders--;
    if (created && l->staged == 0 && !l->dead)
      strata__layers_kill(st, l);
    else if (l->dead)
      strata__pages_reap(st);
    pthread_mutex_unlock(&st->mu);
    return rc;
  }
  make_hold(h, st, l, (uint32_t)first, (uint32_t)n);
  l->node.ref = true;
  if (hot && !l->hot && !l->dead) {
    l->hot = true;
    st->pages.hot_bytes += l->size;
    st->pages.hot_layers++;
  }
  st->pages.stage_calls++;
  pthread_mutex_unlock(&st->mu);
  *out = h;
  return 0;
}

int strata_stage_part(const strata_txn *txn, uint64_t region_id,
                      uint64_t layer_id, uint64_t first_block,
                      uint64_t n_blocks, strata_staged **out) {
  STRATA__FAIL_IF(out == NULL, STRATA_E_INVAL, "strata_stage: NULL out");
  *out = NULL;
  STRATA__FAIL_IF(txn == NULL, STRATA_E_INVAL, "strata_stage: NULL txn");
  strata__staging *st;
  STRATA__TRY(
      strata__staging_of(strata__txn_priv(txn)->store, "strata_stage", &st));
  return strata__stage(st, txn, region_id, layer_id, first_block, n_blocks,
                       false, out);
}

int strata_stage(const strata_txn *txn, uint64_t region_id, uint64_t layer_id,
                 strata_staged **out) {
  return strata_stage_part(txn, region_id, layer_id, 0, UINT64_MAX, out);
}

void strata_staged_release(strata_staged *h) {
  if (h == NULL)
    return;
  strata__staging *st = h->st;
  pthread_mutex_lock(&st->mu);
  strata__slayer *l = h->layer;
  l->holders--;
  if (l->dead)
    strata__pages_reap(st);
  else if (l->staged == 0 && strata__layers_idle(l))
    strata__layers_kill(st, l); /* nothing staged (an empty layer or part) */
  pthread_mutex_unlock(&st->mu);
  free(h);
}

int strata_staged_info_get(const strata_staged *h, strata_staged_info *out) {
  if (h == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_staged_info_get: NULL");
  strata__staging *st = h->st;
  uint32_t shared = 0;
  pthread_mutex_lock(&st->mu);
  for (uint32_t i = h->first; i < h->first + h->n; i++)
    shared += st->pages.meta[h->layer->pages[i]].refs > 1;
  pthread_mutex_unlock(&st->mu);
  *out = (strata_staged_info){.region_id = h->layer->node.region_id,
                              .layer_id = h->layer->node.layer_id,
                              .offset = h->offset,
                              .size = h->size,
                              .segments = h->nseg,
                              .blocks = h->n,
                              .shared_blocks = shared};
  return 0;
}

int strata_staged_segment(const strata_staged *h, uint32_t i, const void **ptr,
                          uint64_t *len) {
  if (h == NULL || ptr == NULL || len == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_staged_segment: NULL");
  if (i >= h->nseg)
    return strata__fail(STRATA_E_BOUNDS,
                        "strata_staged_segment: segment %u of %u", i, h->nseg);
  *ptr = h->seg[i].ptr;
  *len = h->seg[i].len;
  return 0;
}

int strata_staged_copy_out(const strata_staged *h, void *dst) {
  if (h == NULL || (dst == NULL && h->size > 0))
    return strata__fail(STRATA_E_INVAL, "strata_staged_copy_out: NULL");
  uint8_t *d = dst;
  for (uint32_t i = 0; i < h->nseg; i++) {
    memcpy(d, h->seg[i].ptr, h->seg[i].len);
    d += h->seg[i].len;
  }
  return 0;
}
