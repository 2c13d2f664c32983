/* The device layer cache (staging_dcache.c): device copies of layers kept
 * within a byte budget by CLOCK, with sequential prefetch. */
#ifndef STRATA_STAGING_DCACHE_H
#define STRATA_STAGING_DCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "staging/staging_ltable.h"

typedef struct strata__staging strata__staging;

/* The device cache's state, in strata__staging as `dcache`; all of it
 * under its own `mu`, which is taken before the pool's (staging.h). */
typedef struct strata__dcache {
  pthread_mutex_t mu;
  uint64_t budget, bytes; /* budget 0: no cache */
  strata__ltable entries; /* by (region, layer), and the CLOCK ring */
  bool have_last;         /* the previous get, for sequential prefetch */
  uint64_t last_region, last_layer;
  uint64_t hits, misses, prefetches, evictions;
} strata__dcache;

/* The mutex is made by staging.c before any part's init. */
int strata__dcache_init(strata__staging *st);
void strata__dcache_destroy(strata__staging *st); /* streams drained */

#endif /* STRATA_STAGING_DCACHE_H */
