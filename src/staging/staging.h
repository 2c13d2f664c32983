/* The staging pool's internal structures, shared by staging.c (lifecycle,
 * configuration, statistics, the state dump), staging_pages.c (the page
 * table, content sharing, CLOCK eviction), staging_hot.c (read sampling
 * and the hot-layer worker) and staging_transfer.c (streams, events, device
 * memory, transfers). docs/ARCHITECTURE.md ("Staging pool") explains how
 * they fit together.
 *
 * Locking: `mu` guards the page table, the content index, the CLOCK ring
 * and the counters kept under it. The block allocator has a mutex of its
 * own. Transfers in flight are counted with atomics that completion
 * callbacks decrement without any lock (CUDA host functions must not
 * block), so a layer whose last transfer completes after it was replaced
 * is freed by the next call that takes `mu` (reap). Order: mu, then the
 * allocator's mutex; the store's writer mutex is never taken under mu. */
#ifndef STRATA_STAGING_H
#define STRATA_STAGING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/hash.h" /* XXH3-128, dispatched to the widest vector unit */

#include "staging/staging_alloc.h"
#include "staging/staging_slab.h"
#include "device/device.h"
#include "store/store_sample.h" /* the rings the worker drains */

struct strata_store;
typedef struct strata__direct strata__direct;
typedef struct strata__dentry strata__dentry;

/* The hash of a (region id, layer id) key, for the pool's tables: the
 * page table, the hot-layer candidates and the device cache. */
static inline uint64_t strata__layer_key_hash(uint64_t region, uint64_t layer) {
  uint64_t h = region * 0x9E3779B97F4A7C15ull ^ layer * 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

/* ---- sampled reads (staging_hot.c) -------------------------------------- */

/* A candidate the worker counts samples for. */
typedef struct strata__hot_cand {
  uint64_t region, layer;
  uint32_t count;
  bool used; /* slot occupied */
} strata__hot_cand;

/* ---- staged layers (staging_pages.c) ------------------------------------ */

/* What the pool knows about one block. */
typedef struct strata__sblock {
  uint32_t refs;  /* pages using it; 0 = free or pack buffer */
  uint32_t len;   /* content bytes */
  uint32_t hnext; /* content index chain */
  bool indexed;   /* in the content index */
  XXH128_hash_t hash;
} strata__sblock;

/* A layer with some of its pages staged. */
typedef struct strata__slayer {
  struct strata__staging *st;
  uint64_t region_id, layer_id;
  uint64_t size, checksum; /* identity of the content */
  struct strata__slayer *hnext;
  uint32_t npages;
  uint32_t staged;           /* pages present */
  uint32_t holders;          /* strata_staged handles (mu) */
  _Atomic uint32_t inflight; /* transfers reading it */
  uint32_t clock_pos;        /* index in the CLOCK ring, or NONE */
  bool ref;                  /* CLOCK reference bit */
  bool hot;                  /* staged by the worker */
  bool filling;              /* pages being copied in (mu dropped) */
  bool dead;                 /* replaced or evicted; freed when idle */
  struct strata__slayer *dead_next;
  uint32_t pages[]; /* block per page, BLOCK_NONE if absent */
} strata__slayer;

#define STRATA__POS_NONE UINT32_MAX

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

struct strata_stream {
  struct strata__staging *st;
  strata__dstream *xs;
};

struct strata_event {
  strata__devent *xe;
};

typedef struct strata__staging {
  struct strata_store *store;
  const strata__logger *log;
  strata__device *dev;
  strata__slab *slabs;
  uint32_t nslabs;
  strata__balloc *alloc;
  uint64_t block_size;
  uint32_t blocks;
  bool dedup, direct;

  pthread_mutex_t mu;
  pthread_cond_t filled; /* a layer's `filling` ended */
  strata__sblock *meta;  /* per block */
  uint32_t *chash;       /* content index buckets */
  uint32_t chash_mask;
  strata__slayer **ltab; /* layers by (region, layer) */
  uint64_t ltab_mask, nlayers;
  strata__slayer **clock; /* the CLOCK ring: every live layer */
  uint32_t clock_n, clock_cap, hand;
  strata__slayer *dead; /* waiting for holders and transfers to end */
  uint64_t high_blocks, low_blocks; /* eviction watermarks */
  uint64_t page_blocks;             /* blocks staged pages use */
  uint64_t fixed_blocks;            /* pack buffers */

  /* Hot layers. */
  strata__sample_ring *rings; /* one per reader slot */
  uint32_t threshold;
  uint64_t hot_budget, hot_bytes;
  strata__hot_cand *cands;
  uint64_t cand_mask, cand_n;
  uint64_t last_decay_ns;
  pthread_mutex_t tick_mu; /* one pass at a time */
  pthread_t worker;
  bool worker_running;
  pthread_mutex_t worker_mu;
  pthread_cond_t worker_cv;
  bool worker_stop;

  /* Transfers. */
  strata__dstream **streams;
  uint32_t nstreams;
  pthread_mutex_t batch_mu;  /* serializes batches (pack buffers) */
  pthread_mutex_t direct_mu; /* the registry of mapped regions */
  strata__direct *directs;
  uint64_t pack_bytes;
  uint32_t npack;
  uint32_t *pack_block; /* first block of each pack buffer */
  strata__devent **pack_ev;
  strata__devent *join_ev;
  strata__devent *start_ev; /* a batch's start on the caller's stream */

  /* The device layer cache (staging_dcache.c), under dc_mu. */
  pthread_mutex_t dc_mu;
  uint64_t dc_budget, dc_bytes, dc_n;
  strata__dentry **dc_tab;
  uint64_t dc_mask;
  strata__dentry **dc_clock;
  uint32_t dc_clock_n, dc_clock_cap, dc_hand;
  bool dc_have_last; /* the previous get, for sequential prefetch */
  uint64_t dc_last_region, dc_last_layer;
  uint64_t dc_hits, dc_misses, dc_prefetches, dc_evictions;

  /* Counters: under mu unless atomic. */
  uint64_t staged_bytes, shared_blocks, dedup_hits, dedup_bytes;
  uint64_t stage_calls, stage_copied_bytes, evictions, evicted_bytes;
  uint64_t hot_layers;
  uint64_t samples;
  _Atomic uint64_t inflight, transfers, transfer_bytes, batches, packed_copies;
} strata__staging;

/* staging.c */
int strata__staging_open(struct strata_store *s, strata__staging **out);
/* The store's pool for public call `fn`: STRATA_E_INVAL for a NULL store,
 * STRATA_E_STATE (naming the store) when it has no pool. */
int strata__staging_of(struct strata_store *s, const char *fn,
                       strata__staging **out);
/* Stops the worker, waits for transfers, frees everything. NULL ok. */
void strata__staging_close(strata__staging *st);
/* The staging pool's state as a JSON object (jansson; NULL on failure),
 * or json null without a pool. */
struct json_t *strata__staging_json(struct strata_store *s);

/* staging_pages.c (mu NOT held unless said) */
int strata__pages_init(strata__staging *st);
void strata__pages_destroy(strata__staging *st);
/* Stages pages [first, first + n) of the layer `txn` sees and returns a
 * hold; `hot` marks a worker staging. */
int strata__stage(strata__staging *st, const strata_txn *txn,
                  uint64_t region_id, uint64_t layer_id, uint64_t first,
                  uint64_t n, bool hot, strata_staged **out);
/* mu held: sets the CLOCK bit of a staged layer (sampled read); true if
 * the layer is staged. */
bool strata__pages_touch(strata__staging *st, uint64_t region_id,
                         uint64_t layer_id);
/* mu held: evicts idle layers until at most `target` blocks are used, or
 * `need` blocks could be allocated; returns layers evicted. */
uint64_t strata__pages_evict(strata__staging *st, uint64_t target);
/* mu held: frees dead layers nothing uses any more. */
void strata__pages_reap(strata__staging *st);
/* A transfer reading `l` was enqueued / completed (any thread, no lock). */
void strata__pages_inflight_done(void *layer);

/* staging_hot.c */
int strata__hot_init(strata__staging *st);
void strata__hot_destroy(strata__staging *st);
int strata__hot_tick(strata__staging *st);
int strata__hot_start(strata__staging *st); /* the worker thread */
void strata__hot_stop(strata__staging *st);

/* staging_direct.c: the zero-staging path. _source returns the registered
 * mapping holding `l` (registering it on first use) with one copy counted
 * in flight, which strata__direct_done (a stream host function) ends; NULL
 * when the layer must go through staging. _forget: the store is about to
 * unmap `base` (waits for its copies). */
strata__direct *strata__direct_source(strata__staging *st,
                                      const strata_txn *txn, uint64_t region_id,
                                      const strata_layer *l);
void strata__direct_done(void *direct);
void strata__direct_forget(strata__staging *st, const void *base);
void strata__direct_destroy(strata__staging *st);

/* staging_dcache.c: the device layer cache. */
int strata__dcache_init(strata__staging *st);
void strata__dcache_destroy(strata__staging *st); /* streams drained */

/* staging_transfer.c */
int strata__transfer_init(strata__staging *st);
void strata__transfer_destroy(strata__staging *st);

#endif /* STRATA_STAGING_H */
