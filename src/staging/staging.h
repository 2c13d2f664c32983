/* The staging pool: what its parts share, and the parts' states put
 * together. Each part keeps its own state and functions in its own header:
 * staging_pages.h (staged layers: page table, content index, CLOCK),
 * staging_hot.h (hot layers), staging_transfer.h (streams, batches),
 * staging_dcache.h (the device layer cache) and staging_direct.h (the
 * zero-staging registry); staging_alloc.h and staging_slab.h are the
 * blocks and slabs under them all, staging_ltable.h the (region, layer)
 * table with CLOCK that the staged layers and the device cache share.
 * staging.c opens and closes the pool and reports on it.
 * docs/ARCHITECTURE.md ("Staging pool") explains how they fit together.
 *
 * Locking: `mu` guards the staged layers (strata__pages: page table,
 * content index, CLOCK ring, their counters) and the hot part's sample
 * count. The block allocator has a mutex of its own. Transfers in flight
 * are counted with atomics that completion callbacks decrement without any
 * lock (CUDA host functions must not block), so a layer whose last
 * transfer completes after it was replaced is freed by the next call that
 * takes `mu` (reap). The other parts' mutexes come before `mu`: the device
 * cache's mutex, a batch's `batch_mu` and the hot pass's `tick_mu` are
 * held while staging takes `mu`; `mu` comes before the allocator's mutex;
 * the direct registry's mutex takes no other. The store's writer mutex is
 * never taken under any of them. */
#ifndef STRATA_STAGING_H
#define STRATA_STAGING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "device/device.h"
#include "staging/staging_alloc.h"
#include "staging/staging_dcache.h"
#include "staging/staging_direct.h"
#include "staging/staging_hot.h"
#include "staging/staging_ltable.h"
#include "staging/staging_pages.h"
#include "staging/staging_slab.h"
#include "staging/staging_transfer.h"
#include "store/store_internal.h"
#include "store/store_sample.h" /* the rings the worker drains */

typedef struct strata__staging {
  struct strata_store *store;
  const strata__logger *log;
  strata__device *dev;
  strata__slab *slabs;
  uint32_t nslabs;
  strata__balloc *alloc;
  uint64_t block_size;
  uint32_t blocks;
  uint64_t fixed_blocks; /* pack buffers, taken for good at open */
  pthread_mutex_t mu;    /* see the lock order above */
  /* Copies in flight, whatever their source: close waits for 0. */
  _Atomic uint64_t inflight;

  strata__pages pages;
  strata__hot hot;
  strata__transfer transfer;
  strata__dcache dcache;
  strata__directs direct;
} strata__staging;

/* staging.c */
int strata__staging_open(struct strata_store *s, strata__staging **out);
/* Stops the worker, waits for transfers, frees everything. NULL ok. */
void strata__staging_close(strata__staging *st);
/* The store's staging_figures hook (store_internal.h): the pool's size,
 * the bytes of its blocks in use and the layers staged, for the shared
 * view. `ctx` is the pool. Any thread while the pool is open. */
void strata__staging_figures(void *ctx, strata__shm_staging *out);
/* The staging pool's state as a JSON object (jansson; NULL on failure),
 * or json null without a pool. */
struct json_t *strata__staging_json(struct strata_store *s);

/* The store's pool for public call `fn`: STRATA_E_INVAL for a NULL store,
 * STRATA_E_STATE (naming the store) when it has no pool. Inline, so that
 * every part checks its arguments without calling back into staging.c,
 * which calls the parts. */
static inline int strata__staging_of(struct strata_store *s, const char *fn,
                                     strata__staging **out) {
  *out = NULL;
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "%s: NULL store", fn);
  STRATA__FAIL_IF(s->staging == NULL, STRATA_E_STATE,
                  "%s: %s has no staging pool (strata_store_config."
                  "staging.bytes is 0)",
                  fn, s->dir);
  *out = s->staging;
  return 0;
}

#endif /* STRATA_STAGING_H */
