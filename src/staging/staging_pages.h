/* Staged layers: the page table (which blocks hold which pages of which
 * layers), the content index that lets pages of identical content share a
 * block, and CLOCK eviction. Three files share this state:
 * staging_content.c (the content index and block references),
 * staging_layers.c (the layer table, CLOCK, dead layers) and
 * staging_pages.c (staging pages and the holds on them).
 *
 * Everything here is guarded by the pool's `mu` (staging.h) unless it says
 * otherwise. */
#ifndef STRATA_STAGING_PAGES_H
#define STRATA_STAGING_PAGES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"
#include "common/hash.h" /* XXH3-128, dispatched to the widest vector unit */
#include "staging/staging_ltable.h"

typedef struct strata__staging strata__staging;

/* What the pool knows about one block. */
typedef struct strata__sblock {
  uint32_t refs;  /* pages using it; 0 = free or pack buffer */
  uint32_t len;   /* content bytes */
  uint32_t hnext; /* content index chain */
  bool indexed;   /* in the content index */
  XXH128_hash_t hash;
} strata__sblock;

/* A layer with some of its pages staged. Its key, table link, CLOCK
 * position and reference bit are in `node`. */
typedef struct strata__slayer {
  strata__lnode node;
  struct strata__staging *st;
  uint64_t size, checksum; /* identity of the content */
  uint32_t npages;
  uint32_t staged;           /* pages present */
  uint32_t holders;          /* strata_staged handles (mu) */
  _Atomic uint32_t inflight; /* transfers reading it */
  bool hot;                  /* staged by the worker */
  bool filling;              /* pages being copied in (mu dropped) */
  bool dead;                 /* replaced or evicted; freed when idle */
  struct strata__slayer *dead_next;
  uint32_t pages[]; /* block per page, BLOCK_NONE if absent */
} strata__slayer;

/* A hold (the public strata_staged). */
struct strata_staged {
  struct strata__staging *st;
  strata__slayer *layer;
  uint32_t first, n; /* pages covered */
  uint64_t offset, size;
  uint32_t nseg;
  struct {
    const void *ptr;
    uint64_t len;
  } seg[];
};

/* The staged layers' state, in strata__staging as `pages`. */
typedef struct strata__pages {
  bool dedup;            /* pages of equal content share a block */
  pthread_cond_t filled; /* a layer's `filling` ended */
  strata__sblock *meta;  /* per block */
  uint32_t *chash;       /* content index buckets */
  uint32_t chash_mask;
  strata__ltable layers;            /* live layers, and the CLOCK ring */
  strata__slayer *dead;             /* waiting for holders and transfers */
  uint64_t high_blocks, low_blocks; /* eviction watermarks */
  uint64_t page_blocks;             /* blocks staged pages use */
  /* Counters. The hot layers are counted here, where a layer's `hot` mark
   * is set and cleared; the hot part (staging_hot.h) owns the budget. */
  uint64_t staged_bytes, shared_blocks, dedup_hits, dedup_bytes;
  uint64_t stage_calls, stage_copied_bytes, evictions, evicted_bytes;
  uint64_t hot_layers, hot_bytes;
} strata__pages;

/* The bytes of page `page` of a layer of `size` bytes. */
static inline uint64_t strata__page_len(uint64_t block_size, uint64_t size,
                                        uint32_t page) {
  uint64_t left = size - (uint64_t)page * block_size;
  return left < block_size ? left : block_size;
}

/* staging_content.c (mu held, except _init and _destroy) */
int strata__content_init(strata__staging *st);
void strata__content_destroy(strata__staging *st);
/* The indexed block holding `len` bytes of hash h, or STRATA__BLOCK_NONE. */
uint32_t strata__content_find(const strata__staging *st, XXH128_hash_t h,
                              uint32_t len);
/* Block b was just filled with `len` bytes of hash h for one page: it
 * takes one reference and, with dedup on, enters the content index. */
void strata__block_commit(strata__staging *st, uint32_t b, uint32_t len,
                          XXH128_hash_t h);
/* One more page shares block b. */
void strata__block_ref(strata__staging *st, uint32_t b);
/* Drops one page's reference to block b, freeing it with the last one. */
void strata__block_unref(strata__staging *st, uint32_t b);

/* staging_layers.c (mu held, except _init, _destroy and _inflight_done) */
int strata__layers_init(strata__staging *st);
void strata__layers_destroy(strata__staging *st);
/* The live layer of a key, or NULL. */
strata__slayer *strata__layers_find(strata__staging *st, uint64_t region_id,
                                    uint64_t layer_id);
/* Enters a new layer in the table and the CLOCK ring. */
int strata__layers_link(strata__staging *st, strata__slayer *l);
/* Retires a layer (replaced or evicted): freed now when nothing uses it,
 * else once its holders and transfers are done (strata__pages_reap). */
void strata__layers_kill(strata__staging *st, strata__slayer *l);
/* No holders, no fill and no transfer: the layer may go. */
bool strata__layers_idle(strata__slayer *l);
/* Sets the CLOCK bit of a staged layer (a sampled read); true if the
 * layer is staged. */
bool strata__pages_touch(strata__staging *st, uint64_t region_id,
                         uint64_t layer_id);
/* Evicts idle layers until at most `target` blocks (staged pages and pack
 * buffers) are used; returns layers evicted. */
uint64_t strata__pages_evict(strata__staging *st, uint64_t target);
/* Frees dead layers nothing uses any more. */
void strata__pages_reap(strata__staging *st);
/* A transfer reading `layer` (a strata__slayer) completed: the stream
 * host function that strata_stage_to_device enqueues after its copies.
 * Any thread, no lock. */
void strata__pages_inflight_done(void *layer);

/* staging_pages.c (mu NOT held) */
/* Stages pages [first, first + n) of the layer `txn` sees and returns a
 * hold; `hot` marks a worker staging. */
int strata__stage(strata__staging *st, const strata_txn *txn,
                  uint64_t region_id, uint64_t layer_id, uint64_t first,
                  uint64_t n, bool hot, strata_staged **out);

#endif /* STRATA_STAGING_PAGES_H */
