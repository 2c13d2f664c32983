/* Transfers (staging_transfer.c): the public streams and events, copies
 * of staged layers to the device and path batches through pinned pack
 * buffers. */
#ifndef STRATA_STAGING_TRANSFER_H
#define STRATA_STAGING_TRANSFER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "device/device.h"

typedef struct strata__staging strata__staging;

struct strata_stream {
  struct strata__staging *st;
  strata__dstream *xs;
};

struct strata_event {
  strata__devent *xe;
};

/* The transfer part's state, in strata__staging as `transfer`. The streams,
 * pack buffers and events are set at open and used by one batch at a time
 * (batch_mu); the counters are atomic. */
typedef struct strata__transfer {
  strata__dstream **streams;
  uint32_t nstreams;
  pthread_mutex_t batch_mu; /* serializes batches (pack buffers) */
  uint64_t pack_bytes;
  uint32_t npack;
  uint32_t *pack_block; /* first block of each pack buffer */
  strata__devent **pack_ev;
  strata__devent *join_ev;
  strata__devent *start_ev; /* a batch's start on the caller's stream */
  _Atomic uint64_t transfers, transfer_bytes, batches, packed_copies;
} strata__transfer;

/* Makes the pool's streams and takes the pack buffers' blocks for good
 * (counted in st->fixed_blocks). */
int strata__transfer_init(strata__staging *st);
/* Drains and frees the streams, then the events. */
void strata__transfer_destroy(strata__staging *st);

#endif /* STRATA_STAGING_TRANSFER_H */
