/* The zero-staging path (STRATA_STAGING_DIRECT): a region file's read-only
 * mapping is registered with the device (cudaHostRegisterReadOnly) the
 * first time a batch needs one of its layers, and layers not staged are
 * then copied straight from the page cache. Where registration fails (host
 * mode, a device without the capability, a driver that refuses), the
 * mapping is remembered as unusable and its layers go through staging.
 *
 * A copy from a mapping is asynchronous, and the snapshot that found the
 * layer may end before it completes; so each registered mapping counts its
 * copies in flight, and the store, before it unmaps a file
 * (strata__file_unref), waits for them and unregisters the range. The
 * registry has a mutex of its own, never held while waiting. */
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "staging/staging.h"
#include "store/store_internal.h"

struct strata__direct {
  struct strata__direct *next;
  strata__staging *st;
  const uint8_t *base;
  uint64_t size;
  bool registered; /* false: registration failed; use staging */
  _Atomic uint32_t inflight;
};

void strata__direct_done(void *arg) {
  strata__direct *d = arg;
  strata__staging *st = d->st;
  /* The entry may be freed once its count reaches 0, so it is not touched
   * after; the pool's count goes last (close waits for it). */
  atomic_fetch_sub_explicit(&d->inflight, 1, memory_order_acq_rel);
  atomic_fetch_sub_explicit(&st->inflight, 1, memory_order_acq_rel);
}

strata__direct *strata__direct_source(strata__staging *st,
                                      const strata_txn *txn, uint64_t region_id,
                                      const strata_layer *l) {
  const strata_region *r = strata__txn_file(txn, region_id);
  if (!st->direct.on || r == NULL || l->size == 0)
    return NULL;
  const uint8_t *base = r->base, *p = l->data;
  if (p < base || p + l->size > base + r->size)
    return NULL; /* a proto's layer, on the heap */
  pthread_mutex_lock(&st->direct.mu);
  strata__direct *d = st->direct.list;
  while (d != NULL && d->base != base)
    d = d->next;
  if (d == NULL && (d = calloc(1, sizeof *d)) != NULL) {
    *d = (strata__direct){
        .next = st->direct.list, .st = st, .base = base, .size = r->size};
    int rc = strata__device_register_readonly(st->dev, base, r->size);
    d->registered = rc == 0;
    char why[256];
    if (rc < 0)
      strata__log(
          st->log, STRATA_LOG_INFO, "staging",
          "msg=\"direct path unavailable: copying through staging\" "
          "region=%" PRIu64 " bytes=%" PRIu64 " reason=%s",
          region_id, r->size,
          strata__log_quote(why, sizeof why, strata_last_error_detail()));
    st->direct.list = d;
  }
  if (d != NULL && d->registered)
    atomic_fetch_add_explicit(&d->inflight, 1, memory_order_acq_rel);
  pthread_mutex_unlock(&st->direct.mu);
  return d != NULL && d->registered ? d : NULL;
}

/* Waits for a mapping's copies, unregisters it and frees the entry. */
static void retire(strata__staging *st, strata__direct *d) {
  /* (After a device failure the copies' callbacks never run: stop.) */
  while (atomic_load_explicit(&d->inflight, memory_order_acquire) > 0 &&
         strata__device_healthy(st->dev) == 0)
    usleep(50);
  if (d->registered)
    strata__device_unregister(st->dev, d->base);
  free(d);
}

void strata__direct_forget(strata__staging *st, const void *base) {
  if (st == NULL)
    return;
  pthread_mutex_lock(&st->direct.mu);
  strata__direct **p = &st->direct.list;
  while (*p != NULL && (*p)->base != base)
    p = &(*p)->next;
  strata__direct *d = *p;
  if (d != NULL)
    *p = d->next;
  pthread_mutex_unlock(&st->direct.mu);
  if (d != NULL)
    retire(st, d);
}

void strata__direct_destroy(strata__staging *st) {
  while (st->direct.list != NULL) {
    strata__direct *d = st->direct.list;
    st->direct.list = d->next;
    retire(st, d);
  }
}
