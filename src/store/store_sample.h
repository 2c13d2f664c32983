/* Read sampling: the ring a reader slot pushes a sample of its lookups
 * into, one lookup in (sample_mask + 1).
 *
 * The type belongs to the store because the store's read path writes it
 * (store_read.c) and its reader slots point at it (ebr.c); the store never
 * allocates or reads a ring. Whoever wants the samples (the staging pool's
 * hot-layer worker, staging_hot.c) allocates one ring per reader slot,
 * hands the array to the store in strata_store.hot_rings before any slot
 * is claimed (a slot copies its ring pointer when its thread claims it),
 * drains the rings, and takes the array back only after every snapshot has
 * ended (strata_store_close).
 *
 * Each ring is single-producer (the slot's thread, from inside a snapshot)
 * and single-consumer (the drainer): head and tail sit on cache lines of
 * their own, so the reader's push writes only memory the drainer reads. A
 * full ring drops the sample and counts it: sampling is a hint, and a
 * reader must never wait for the drainer. */
#ifndef STRATA_STORE_SAMPLE_H
#define STRATA_STORE_SAMPLE_H

#include <stdatomic.h>
#include <stdint.h>

#define STRATA__SAMPLE_RING 64 /* samples a thread may have waiting */

typedef struct strata__sample_ring {
  _Atomic uint32_t head; /* producer */
  _Atomic uint32_t dropped;
  char pad1[56];
  _Atomic uint32_t tail; /* consumer */
  char pad2[60];
  struct {
    uint64_t region, layer;
  } keys[STRATA__SAMPLE_RING];
} strata__sample_ring;

/* Read side, the ring's owner thread only: records a sample, or drops it
 * when the ring is full. */
static inline void strata__sample_push(strata__sample_ring *r, uint64_t region,
                                       uint64_t layer) {
  uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
  if (h - t >= STRATA__SAMPLE_RING) {
    atomic_store_explicit(
        &r->dropped,
        atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
        memory_order_relaxed);
    return;
  }
  r->keys[h % STRATA__SAMPLE_RING].region = region;
  r->keys[h % STRATA__SAMPLE_RING].layer = layer;
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

#endif /* STRATA_STORE_SAMPLE_H */
