/* The zero-staging path (staging_direct.c): region mappings registered
 * read-only with the device, so that layers not staged are copied straight
 * from the page cache. */
#ifndef STRATA_STAGING_DIRECT_H
#define STRATA_STAGING_DIRECT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

typedef struct strata__staging strata__staging;
typedef struct strata__direct strata__direct;

/* The registry's state, in strata__staging as `direct`. */
typedef struct strata__directs {
  bool on;            /* STRATA_STAGING_DIRECT */
  pthread_mutex_t mu; /* the list; never held while waiting for copies */
  strata__direct *list;
} strata__directs;

/* The registered mapping holding `l` (registering it on first use) with
 * one copy counted in flight, which strata__direct_done (a stream host
 * function) ends; NULL when the layer must go through staging. */
strata__direct *strata__direct_source(strata__staging *st,
                                      const strata_txn *txn, uint64_t region_id,
                                      const strata_layer *l);
void strata__direct_done(void *direct);
/* The store is about to unmap `base`: waits for its copies and unregisters
 * it. NULL `st` ok. */
void strata__direct_forget(strata__staging *st, const void *base);
/* Retires every mapping (close). */
void strata__direct_destroy(strata__staging *st);

#endif /* STRATA_STAGING_DIRECT_H */
