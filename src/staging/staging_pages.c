/* The staging pool's page table: which blocks hold which pages of which
 * layers, the content index that lets layers share blocks of identical
 * content, and CLOCK eviction.
 *
 * A layer's content is cut into block-size pages; page i of a staged
 * layer lives in block pages[i]. A block filled with a page is entered in
 * the content index under the XXH3-128 hash of its bytes (and their
 * length); staging a page whose hash is already there takes a reference
 * to that block instead of copying. Blocks are never written after they
 * are filled, so a shared block needs no copy-on-write: a layer whose
 * content changes gets new blocks, and the old ones go with their last
 * reference.
 *
 * Copies run without `mu` held: the layer is marked `filling`, which keeps
 * eviction off it and makes a second stager of the same layer wait. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "staging/staging.h"
#include "store/store_internal.h"

static uint64_t pow2_at_least(uint64_t v) {
  uint64_t p = 16;
  while (p < v)
    p <<= 1;
  return p;
}

int strata__pages_init(strata__staging *st) {
  st->meta = calloc(st->blocks, sizeof *st->meta);
  uint64_t nb = pow2_at_least(st->blocks);
  st->chash = malloc(nb * sizeof *st->chash);
  st->ltab_mask = 255;
  st->ltab = calloc(st->ltab_mask + 1, sizeof *st->ltab);
  st->clock_cap = 256;
  st->clock = malloc(st->clock_cap * sizeof *st->clock);
  if (st->meta == NULL || st->chash == NULL || st->ltab == NULL ||
      st->clock == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: page table for %u blocks",
                        st->blocks);
  st->chash_mask = (uint32_t)(nb - 1);
  for (uint64_t i = 0; i < nb; i++)
    st->chash[i] = STRATA__BLOCK_NONE;
  return 0;
}

static void layer_free_now(strata__staging *st, strata__slayer *l);

void strata__pages_destroy(strata__staging *st) {
  if (st->ltab != NULL) {
    for (uint64_t i = 0; i <= st->ltab_mask; i++) {
      strata__slayer *l = st->ltab[i];
      while (l != NULL) {
        strata__slayer *next = l->hnext;
        free(l);
        l = next;
      }
    }
  }
  while (st->dead != NULL) {
    strata__slayer *next = st->dead->dead_next;
    free(st->dead);
    st->dead = next;
  }
  free(st->ltab);
  free(st->clock);
  free(st->chash);
  free(st->meta);
}

/* ---- the content index ---------------------------------------------- */

static uint32_t chash_bucket(const strata__staging *st, XXH128_hash_t h) {
  return (uint32_t)(h.low64 ^ h.high64) & st->chash_mask;
}

static uint32_t chash_find(const strata__staging *st, XXH128_hash_t h,
                           uint32_t len) {
  for (uint32_t b = st->chash[chash_bucket(st, h)]; b != STRATA__BLOCK_NONE;
       b = st->meta[b].hnext) {
    const strata__sblock *m = &st->meta[b];
    if (m->len == len && XXH128_isEqual(m->hash, h))
      return b;
  }
  return STRATA__BLOCK_NONE;
}

static void chash_insert(strata__staging *st, uint32_t b) {
  uint32_t k = chash_bucket(st, st->meta[b].hash);
  st->meta[b].hnext = st->chash[k];
  st->chash[k] = b;
  st->meta[b].indexed = true;
}

static void chash_remove(strata__staging *st, uint32_t b) {
  uint32_t *p = &st->chash[chash_bucket(st, st->meta[b].hash)];
  while (*p != b)
    p = &st->meta[*p].hnext;
  *p = st->meta[b].hnext;
  st->meta[b].indexed = false;
}

/* Drops one page's reference to block b. */
static void block_unref(strata__staging *st, uint32_t b) {
  strata__sblock *m = &st->meta[b];
  if (--m->refs == 1)
    st->shared_blocks--;
  if (m->refs > 0)
    return;
  if (m->indexed)
    chash_remove(st, b);
  st->page_blocks--;
  strata__balloc_free(st->alloc, b, 1);
}

static void block_ref(strata__staging *st, uint32_t b) {
  if (++st->meta[b].refs == 2)
    st->shared_blocks++;
}

static uint64_t page_len(const strata__staging *st, uint64_t size,
                         uint32_t page) {
  uint64_t off = (uint64_t)page * st->block_size;
  uint64_t left = size - off;
  return left < st->block_size ? left : st->block_size;
}

/* ---- the layer table and the CLOCK ring ----------------------------- */

static strata__slayer **ltab_slot(strata__staging *st, uint64_t region,
                                  uint64_t layer) {
  strata__slayer **p =
      &st->ltab[strata__layer_key_hash(region, layer) & st->ltab_mask];
  while (*p != NULL && ((*p)->region_id != region || (*p)->layer_id != layer))
    p = &(*p)->hnext;
  return p;
}

static int ltab_grow(strata__staging *st) {
  uint64_t mask = st->ltab_mask * 2 + 1;
  strata__slayer **t = calloc(mask + 1, sizeof *t);
  if (t == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: layer table of %llu slots",
                        (unsigned long long)(mask + 1));
  for (uint64_t i = 0; i <= st->ltab_mask; i++) {
    strata__slayer *l = st->ltab[i];
    while (l != NULL) {
      strata__slayer *next = l->hnext;
      uint64_t k = strata__layer_key_hash(l->region_id, l->layer_id) & mask;
      l->hnext = t[k];
      t[k] = l;
      l = next;
    }
  }
  free(st->ltab);
  st->ltab = t;
  st->ltab_mask = mask;
  return 0;
}

/* Enters a new layer in the table and the CLOCK ring (mu held). */
static int layer_link(strata__staging *st, strata__slayer *l) {
  if (st->nlayers + 1 > (st->ltab_mask + 1) / 4 * 3)
    STRATA__TRY(ltab_grow(st));
  if (st->clock_n == st->clock_cap) {
    uint32_t cap = st->clock_cap * 2;
    strata__slayer **c = realloc(st->clock, cap * sizeof *c);
    if (c == NULL)
      return strata__fail(STRATA_E_NOMEM, "staging: CLOCK ring of %u", cap);
    st->clock = c;
    st->clock_cap = cap;
  }
  strata__slayer **p = ltab_slot(st, l->region_id, l->layer_id);
  l->hnext = NULL;
  *p = l;
  st->nlayers++;
  l->clock_pos = st->clock_n;
  st->clock[st->clock_n++] = l;
  return 0;
}

/* Takes a layer out of the table and the ring (mu held); it stays
 * allocated. The ring's last layer moves into its place. */
static void layer_unlink(strata__staging *st, strata__slayer *l) {
  strata__slayer **p = ltab_slot(st, l->region_id, l->layer_id);
  if (*p == l) {
    *p = l->hnext;
    st->nlayers--;
  }
  if (l->clock_pos != STRATA__POS_NONE) {
    strata__slayer *last = st->clock[--st->clock_n];
    st->clock[l->clock_pos] = last;
    last->clock_pos = l->clock_pos;
    l->clock_pos = STRATA__POS_NONE;
    if (st->hand >= st->clock_n)
      st->hand = 0;
  }
  if (l->hot) {
    l->hot = false;
    st->hot_bytes -= l->size;
    st->hot_layers--;
  }
}

static void layer_drop_pages(strata__staging *st, strata__slayer *l) {
  for (uint32_t i = 0; i < l->npages; i++) {
    if (l->pages[i] == STRATA__BLOCK_NONE)
      continue;
    st->staged_bytes -= page_len(st, l->size, i);
    block_unref(st, l->pages[i]);
    l->pages[i] = STRATA__BLOCK_NONE;
  }
  l->staged = 0;
}

static void layer_free_now(strata__staging *st, strata__slayer *l) {
  layer_drop_pages(st, l);
  free(l);
}

static bool layer_idle(strata__slayer *l) {
  return l->holders == 0 && !l->filling &&
         atomic_load_explicit(&l->inflight, memory_order_acquire) == 0;
}

/* Retires a layer (replaced or evicted): freed now when nothing uses it,
 * else once its holders and transfers are done (reap). mu held. */
static void layer_kill(strata__staging *st, strata__slayer *l) {
  layer_unlink(st, l);
  l->dead = true;
  if (layer_idle(l)) {
    layer_free_now(st, l);
    return;
  }
  l->dead_next = st->dead;
  st->dead = l;
}

void strata__pages_reap(strata__staging *st) {
  strata__slayer **p = &st->dead;
  while (*p != NULL) {
    strata__slayer *l = *p;
    if (layer_idle(l)) {
      *p = l->dead_next;
      layer_free_now(st, l);
    } else {
      p = &l->dead_next;
    }
  }
}

bool strata__pages_touch(strata__staging *st, uint64_t region_id,
                         uint64_t layer_id) {
  strata__slayer *l = *ltab_slot(st, region_id, layer_id);
  if (l == NULL)
    return false;
  l->ref = true;
  return true;
}

uint64_t strata__pages_evict(strata__staging *st, uint64_t target) {
  uint64_t evicted = 0;
  /* Two sweeps: the first may only clear reference bits. */
  uint64_t steps = 2 * (uint64_t)st->clock_n + 1;
  while (st->page_blocks + st->fixed_blocks > target && st->clock_n > 0 &&
         steps-- > 0) {
    if (st->hand >= st->clock_n)
      st->hand = 0;
    strata__slayer *l = st->clock[st->hand];
    if (!layer_idle(l)) {
      st->hand++;
      continue;
    }
    if (l->ref && l->staged > 0) {
      l->ref = false;
      st->hand++;
      continue;
    }
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < l->npages; i++)
      if (l->pages[i] != STRATA__BLOCK_NONE)
        bytes += page_len(st, l->size, i);
    strata__log(st->log, STRATA_LOG_DEBUG, "staging",
                "msg=\"evicted\" region=%llu layer=%llu bytes=%llu",
                (unsigned long long)l->region_id,
                (unsigned long long)l->layer_id, (unsigned long long)bytes);
    st->evictions++;
    st->evicted_bytes += bytes;
    evicted++;
    layer_kill(st, l); /* the ring's last layer moved to `hand` */
  }
  return evicted;
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

/* ---- staging ---------------------------------------------------------- */

/* Allocates `need` blocks into out[]: a contiguous run when one is free
 * (one copy per run to the device), else single blocks, evicting idle
 * layers only for the blocks that are missing. mu held. On failure nothing
 * stays allocated. */
static int alloc_blocks(strata__staging *st, uint32_t need, uint32_t *out) {
  STRATA__FAIL_IF(need > st->blocks - st->fixed_blocks, STRATA_E_LIMIT,
                  "staging: %u blocks of %llu bytes is more than the pool "
                  "holds for layers (%llu blocks)",
                  need, (unsigned long long)st->block_size,
                  (unsigned long long)(st->blocks - st->fixed_blocks));
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
    uint64_t used = st->page_blocks + st->fixed_blocks, missing = need - got;
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
                      "staging: no room for %u blocks of %llu bytes: every "
                      "other staged block is held or in transfer",
                      need, (unsigned long long)st->block_size);
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
    uint64_t len = page_len(st, l->size, i);
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
    st->staged_bytes -= page_len(st, l->size, i);
    block_unref(st, l->pages[i]);
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
  st->meta[b] = (strata__sblock){.refs = 1, .len = len, .hash = h};
  if (st->dedup)
    chash_insert(st, b);
  st->page_blocks++;
  l->pages[page] = b;
  l->staged++;
  st->staged_bytes += len;
}

/* Page `page` of l shares block b, whose content is the same. mu held. */
static void page_share(strata__staging *st, strata__slayer *l, uint32_t page,
                       uint32_t b, uint32_t len) {
  block_ref(st, b);
  l->pages[page] = b;
  l->staged++;
  st->staged_bytes += len;
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
  bool dedup = st->dedup;
  uint32_t *done = malloc((size_t)m * sizeof *done); /* pages staged here */
  /* Allocated, not on the stack: its layout is only stable to programs
   * linked statically with libxxhash. */
  XXH3_state_t *hs = dedup ? XXH3_createState() : NULL;
  if (done == NULL || (dedup && hs == NULL)) {
    free(done);
    XXH3_freeState(hs);
    return strata__fail(STRATA_E_NOMEM, "staging: region %llu layer %llu",
                        (unsigned long long)l->region_id,
                        (unsigned long long)l->layer_id);
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
    uint32_t len = (uint32_t)page_len(st, l->size, i);
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
    uint32_t same = dedup ? chash_find(st, h, len) : STRATA__BLOCK_NONE;
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
    st->stage_copied_bytes += copied_bytes;
    st->dedup_hits += hits;
    st->dedup_bytes += hit_bytes;
  }
  l->filling = false;
  pthread_cond_broadcast(&st->filled);
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
    return strata__fail(grc, "staging: region %llu layer %llu: %s",
                        (unsigned long long)region_id,
                        (unsigned long long)layer_id, strata_strerror(grc));
  uint64_t bs = st->block_size;
  uint64_t npages = lay.size / bs + (lay.size % bs != 0);
  if (npages > UINT32_MAX)
    return strata__fail(STRATA_E_LIMIT,
                        "staging: region %llu layer %llu: %llu bytes is too "
                        "large to stage",
                        (unsigned long long)region_id,
                        (unsigned long long)layer_id,
                        (unsigned long long)lay.size);
  if (first > npages || (first == npages && npages > 0))
    return strata__fail(STRATA_E_BOUNDS,
                        "staging: region %llu layer %llu: block %llu is past "
                        "its %llu blocks",
                        (unsigned long long)region_id,
                        (unsigned long long)layer_id, (unsigned long long)first,
                        (unsigned long long)npages);
  if (n > npages - first)
    n = npages - first;

  pthread_mutex_lock(&st->mu);
  strata__pages_reap(st);
  strata__slayer *l;
  for (;;) {
    l = *ltab_slot(st, region_id, layer_id);
    if (l != NULL && (l->size != lay.size || l->checksum != lay.checksum)) {
      layer_kill(st, l); /* other content: the snapshot saw a change */
      l = NULL;
    }
    if (l == NULL || !l->filling)
      break;
    pthread_cond_wait(&st->filled, &st->mu);
  }
  bool created = false;
  if (l == NULL) {
    l = calloc(1, sizeof *l + npages * sizeof l->pages[0]);
    if (l == NULL) {
      pthread_mutex_unlock(&st->mu);
      return strata__fail(STRATA_E_NOMEM, "staging: region %llu layer %llu",
                          (unsigned long long)region_id,
                          (unsigned long long)layer_id);
    }
    *l = (strata__slayer){.st = st,
                          .region_id = region_id,
                          .layer_id = layer_id,
                          .size = lay.size,
                          .checksum = lay.checksum,
                          .npages = (uint32_t)npages,
                          .clock_pos = STRATA__POS_NONE};
    for (uint32_t i = 0; i < npages; i++)
      l->pages[i] = STRATA__BLOCK_NONE;
    int rc = layer_link(st, l);
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
                                    "staging: hold on region %llu layer %llu",
                                    (unsigned long long)region_id,
                                    (unsigned long long)layer_id)
                     : fill(st, l, lay.data, (uint32_t)first, (uint32_t)n);
  if (rc < 0) {
    free(h);
    l->holders--;
    if (created && l->staged == 0 && !l->dead)
      layer_kill(st, l);
    else if (l->dead)
      strata__pages_reap(st);
    pthread_mutex_unlock(&st->mu);
    return rc;
  }
  make_hold(h, st, l, (uint32_t)first, (uint32_t)n);
  l->ref = true;
  if (hot && !l->hot && !l->dead) {
    l->hot = true;
    st->hot_bytes += l->size;
    st->hot_layers++;
  }
  st->stage_calls++;
  pthread_mutex_unlock(&st->mu);
  *out = h;
  return 0;
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
  else if (l->staged == 0 && layer_idle(l))
    layer_kill(st, l); /* nothing staged (an empty layer or part) */
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
    shared += st->meta[h->layer->pages[i]].refs > 1;
  pthread_mutex_unlock(&st->mu);
  *out = (strata_staged_info){.region_id = h->layer->region_id,
                              .layer_id = h->layer->layer_id,
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
