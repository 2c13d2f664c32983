/* Hot layers (staging_hot.c): the candidate table that counts sampled
 * reads of layers not staged, and the worker that stages the ones read
 * often and keeps the pool under its high watermark. The read-sample rings
 * themselves (strata__sample_ring) are in staging.h, shared with the store's
 * read path. */
#ifndef STRATA_STAGING_HOT_H
#define STRATA_STAGING_HOT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct strata__staging strata__staging;
struct strata__sample_ring;

/* A candidate the worker counts samples for. */
typedef struct strata__hot_cand {
  uint64_t region, layer;
  uint32_t count;
  bool used; /* slot occupied */
} strata__hot_cand;

/* The hot part's state, in strata__staging as `hot`. The candidate table
 * and the decay clock belong to the pass that holds tick_mu; `samples` is
 * under the pool's `mu` (the statistics read it there). */
typedef struct strata__hot {
  struct strata__sample_ring *rings; /* one per reader slot */
  uint32_t threshold; /* samples per second that make a layer hot */
  uint64_t budget;    /* bytes hot layers may take */
  strata__hot_cand *cands;
  uint64_t cand_mask, cand_n;
  uint64_t last_decay_ns;
  uint64_t samples;
  pthread_mutex_t tick_mu; /* one pass at a time */
  pthread_t worker;
  bool worker_running;
  pthread_mutex_t worker_mu; /* guards worker_stop; worker_cv waits on it */
  pthread_cond_t worker_cv;
  bool worker_stop;
} strata__hot;

/* Allocates the rings and the candidate table; the mutexes and the
 * condition are made by staging.c before any part's init. */
int strata__hot_init(strata__staging *st);
void strata__hot_destroy(strata__staging *st);
/* One pass; returns layers staged or a negative error. */
int strata__hot_tick(strata__staging *st);
int strata__hot_start(strata__staging *st); /* the worker thread */
void strata__hot_stop(strata__staging *st);

#endif /* STRATA_STAGING_HOT_H */
