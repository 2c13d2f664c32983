/* Transfers to a device (contract in device.h): the choice of backend at
 * open, argument checks shared by both backends, and the accounting of
 * device memory. Every other call goes straight to the backend's op. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "device/device_backend.h"

/* ---- device memory accounting -------------------------------------------- */

/* Fibonacci hashing of the address: allocations are 256-byte aligned, so
 * the low bits carry nothing and the multiply spreads the high ones. */
static size_t dev_hash(uintptr_t p, size_t cap) {
  return (size_t)(((uint64_t)p * UINT64_C(0x9e3779b97f4a7c15)) >> 32) &
         (cap - 1);
}

static void dev_put(strata__device_mem_slot *slots, size_t cap, uintptr_t p,
                    size_t n) {
  size_t i = dev_hash(p, cap);
  while (slots[i].p != 0)
    i = (i + 1) & (cap - 1);
  slots[i] = (strata__device_mem_slot){.p = p, .n = n};
}

/* Records a live allocation; the table grows at half full so that probe
 * runs stay short. Call with dev_mu held. */
static int dev_track(strata__device *x, void *p, size_t n) {
  if (2 * (x->dev_live + 1) > x->dev_cap) {
    size_t cap = x->dev_cap ? 2 * x->dev_cap : 64;
    strata__device_mem_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
      return strata__fail(STRATA_E_NOMEM,
                          "device: tracking %zu device allocations",
                          x->dev_live + 1);
    for (size_t i = 0; i < x->dev_cap; i++)
      if (x->dev_slots[i].p != 0)
        dev_put(slots, cap, x->dev_slots[i].p, x->dev_slots[i].n);
    free(x->dev_slots);
    x->dev_slots = slots;
    x->dev_cap = cap;
  }
  dev_put(x->dev_slots, x->dev_cap, (uintptr_t)p, n);
  x->dev_live++;
  return 0;
}

/* Removes an allocation and returns its size, or 0 when `p` is not live.
 * Linear probing without tombstones: the entries after the removed one
 * that hashed at or before its slot move back into the gap. Call with
 * dev_mu held. */
static size_t dev_untrack(strata__device *x, void *p) {
  if (x->dev_cap == 0)
    return 0;
  size_t mask = x->dev_cap - 1, i = dev_hash((uintptr_t)p, x->dev_cap);
  while (x->dev_slots[i].p != (uintptr_t)p) {
    if (x->dev_slots[i].p == 0)
      return 0;
    i = (i + 1) & mask;
  }
  size_t n = x->dev_slots[i].n;
  for (size_t j = (i + 1) & mask; x->dev_slots[j].p != 0; j = (j + 1) & mask) {
    size_t home = dev_hash(x->dev_slots[j].p, x->dev_cap);
    /* Slot j may move to the gap i unless its home lies cyclically in
     * (i, j]: then it would land before its home and not be found. */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      x->dev_slots[i] = x->dev_slots[j];
      i = j;
    }
  }
  x->dev_slots[i] = (strata__device_mem_slot){0};
  x->dev_live--;
  return n;
}

/* ---- the context --------------------------------------------------------- */

int strata__device_open(const strata__device_config *cfg,
                        strata__device **out) {
  strata__device_config def = {0};
  if (cfg == NULL)
    cfg = &def;
  STRATA__FAIL_IF(cfg->device < 0, STRATA_E_INVAL,
                  "device: device ordinal %d is negative", cfg->device);
  strata__device *x = calloc(1, sizeof *x);
  if (x == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: allocating the context");
  if (cfg->log != NULL)
    x->log = *cfg->log;
  else
    strata__logger_init(&x->log, -1, NULL, NULL);
  x->device = cfg->device;
  x->numa_node = -1;
  pthread_mutex_init(&x->dev_mu, NULL);

#ifdef STRATA_HAVE_CUDA
  int rc = 0;
  if (cfg->force_host)
    snprintf(x->host_reason, sizeof x->host_reason, "host mode requested");
  else
    rc = strata__device_cuda_init(x);
  if (rc < 0) {
    pthread_mutex_destroy(&x->dev_mu);
    free(x);
    return rc;
  }
  char q[300];
  if (rc == 1) {
    strata__log(&x->log, STRATA_LOG_INFO, "device",
                "msg=\"cuda backend\" device=%d name=%s numa_node=%d "
                "pools=%d readonly_register=%d",
                x->device, strata__log_quote(q, sizeof q, x->device_name),
                x->numa_node, x->cuda_pools, x->cuda_readonly);
    *out = x;
    return 0;
  }
#else
  char q[300];
  snprintf(x->host_reason, sizeof x->host_reason, "built without CUDA");
#endif
  strata__device_host_init(x);
  strata__log(&x->log, x->host_warn ? STRATA_LOG_WARN : STRATA_LOG_INFO,
              "device", "msg=\"host mode\" reason=%s numa_node=%d",
              strata__log_quote(q, sizeof q, x->host_reason), x->numa_node);
  *out = x;
  return 0;
}

void strata__device_close(strata__device *x) {
  if (x == NULL)
    return;
  if (x->dev_live != 0)
    strata__log(&x->log, STRATA_LOG_WARN, "device",
                "msg=\"closed with device memory still allocated\" "
                "allocations=%zu bytes=%" PRIu64,
                x->dev_live, strata__device_mem_bytes(x));
  x->ops->close(x);
  free(x->dev_slots);
  pthread_mutex_destroy(&x->dev_mu);
  free(x);
}

bool strata__device_is_cuda(const strata__device *x) {
  return strcmp(x->ops->name, "cuda") == 0;
}

const char *strata__device_backend(const strata__device *x) {
  return x->ops->name;
}

const char *strata__device_name(const strata__device *x) {
  return x->device_name;
}

int strata__device_numa_node(const strata__device *x) {
  return x->numa_node;
}

const char *strata__device_host_reason(const strata__device *x) {
  return x->host_reason;
}

/* ---- host memory --------------------------------------------------------- */

int strata__device_pin(strata__device *x, void *p, size_t n) {
  STRATA__FAIL_IF(p == NULL || n == 0, STRATA_E_INVAL,
                  "device: pin of an empty range (%zu bytes)", n);
  return x->ops->pin(x, p, n);
}

void strata__device_unpin(strata__device *x, void *p, size_t n) {
  if (p != NULL && n != 0)
    x->ops->unpin(x, p, n);
}

int strata__device_host_alloc(strata__device *x, size_t n, void **out) {
  STRATA__FAIL_IF(n == 0, STRATA_E_INVAL, "device: host_alloc of 0 bytes");
  return x->ops->host_alloc(x, n, out);
}

void strata__device_host_free(strata__device *x, void *p) {
  if (p != NULL)
    x->ops->host_free(x, p);
}

int strata__device_register_readonly(strata__device *x, const void *p,
                                     size_t n) {
  STRATA__FAIL_IF(p == NULL || n == 0, STRATA_E_INVAL,
                  "device: register of an empty range (%zu bytes)", n);
  return x->ops->register_readonly(x, p, n);
}

void strata__device_unregister(strata__device *x, const void *p) {
  if (p != NULL)
    x->ops->unregister(x, p);
}

/* ---- device memory ------------------------------------------------------- */

int strata__device_mem_alloc(strata__device *x, size_t n, strata__dstream *s,
                             void **out) {
  STRATA__FAIL_IF(n == 0, STRATA_E_INVAL, "device: dev_alloc of 0 bytes");
  STRATA__FAIL_IF(n > SIZE_MAX - STRATA__DEVICE_MEM_ALIGN, STRATA_E_NOMEM,
                  "device: dev_alloc of %zu bytes", n);
  STRATA__FAIL_IF(s != NULL && s->x != x, STRATA_E_INVAL,
                  "device: dev_alloc on a stream of another context");
  size_t bytes = (n + STRATA__DEVICE_MEM_ALIGN - 1) &
                 ~(size_t)(STRATA__DEVICE_MEM_ALIGN - 1);
  void *p = NULL;
  STRATA__TRY(x->ops->dev_alloc(x, bytes, s, &p));
  pthread_mutex_lock(&x->dev_mu);
  int rc = dev_track(x, p, bytes);
  pthread_mutex_unlock(&x->dev_mu);
  if (rc < 0) {
    /* The memory was never handed out; freed on `s`, after its
     * allocation there. */
    x->ops->dev_free(x, p, s);
    return rc;
  }
  atomic_fetch_add_explicit(&x->dev_bytes, bytes, memory_order_relaxed);
  *out = p;
  return 0;
}

int strata__device_mem_free(strata__device *x, void *p, strata__dstream *s) {
  if (p == NULL)
    return 0;
  STRATA__FAIL_IF(s != NULL && s->x != x, STRATA_E_INVAL,
                  "device: dev_free on a stream of another context");
  pthread_mutex_lock(&x->dev_mu);
  size_t n = dev_untrack(x, p);
  pthread_mutex_unlock(&x->dev_mu);
  STRATA__FAIL_IF(n == 0, STRATA_E_INVAL,
                  "device: dev_free of %p, which is not a live device "
                  "allocation",
                  p);
  /* Counted as freed now, although the memory goes back only once the
   * stream's earlier work is done: from the caller's side it is gone. */
  atomic_fetch_sub_explicit(&x->dev_bytes, n, memory_order_relaxed);
  return x->ops->dev_free(x, p, s);
}

uint64_t strata__device_mem_bytes(const strata__device *x) {
  return atomic_load_explicit(&x->dev_bytes, memory_order_relaxed);
}

/* ---- streams and events -------------------------------------------------- */

int strata__dstream_new(strata__device *x, strata__dstream **out) {
  return x->ops->stream_new(x, out);
}

int strata__dstream_adopt(strata__device *x, void *native,
                          strata__dstream **out) {
  STRATA__FAIL_IF(native == NULL, STRATA_E_INVAL,
                  "device: adopting a NULL native stream (the legacy default "
                  "stream cannot be adopted: pass a stream the application "
                  "created)");
  return x->ops->stream_adopt(x, native, out);
}

void strata__dstream_free(strata__dstream *s) {
  if (s != NULL)
    s->x->ops->stream_free(s);
}

void *strata__dstream_native(strata__dstream *s) {
  return s->x->ops->stream_native(s);
}

int strata__dstream_copy_h2d(strata__dstream *s, void *dst, const void *src,
                             size_t n) {
  if (n == 0)
    return 0;
  STRATA__FAIL_IF(dst == NULL || src == NULL, STRATA_E_INVAL,
                  "device: h2d copy of %zu bytes with a NULL address", n);
  return s->x->ops->copy(s, dst, src, n, STRATA__DEVICE_H2D);
}

int strata__dstream_copy_d2h(strata__dstream *s, void *dst, const void *src,
                             size_t n) {
  if (n == 0)
    return 0;
  STRATA__FAIL_IF(dst == NULL || src == NULL, STRATA_E_INVAL,
                  "device: d2h copy of %zu bytes with a NULL address", n);
  return s->x->ops->copy(s, dst, src, n, STRATA__DEVICE_D2H);
}

int strata__dstream_host_fn(strata__dstream *s, void (*fn)(void *), void *arg) {
  STRATA__FAIL_IF(fn == NULL, STRATA_E_INVAL, "device: host_fn is NULL");
  return s->x->ops->host_fn(s, fn, arg);
}

int strata__dstream_wait(strata__dstream *s, strata__devent *e) {
  STRATA__FAIL_IF(e->x != s->x, STRATA_E_INVAL,
                  "device: stream waits on an event of another context");
  return s->x->ops->stream_wait(s, e);
}

int strata__dstream_sync(strata__dstream *s) {
  return s->x->ops->stream_sync(s);
}

int strata__devent_new(strata__device *x, strata__devent **out) {
  return x->ops->event_new(x, out);
}

void strata__devent_free(strata__devent *e) {
  if (e != NULL)
    e->x->ops->event_free(e);
}

int strata__devent_record(strata__devent *e, strata__dstream *s) {
  STRATA__FAIL_IF(e->x != s->x, STRATA_E_INVAL,
                  "device: event recorded on a stream of another context");
  return s->x->ops->event_record(e, s);
}

int strata__devent_query(strata__devent *e) {
  return e->x->ops->event_query(e);
}

int strata__devent_sync(strata__devent *e) {
  return e->x->ops->event_sync(e);
}

int strata__device_healthy(strata__device *x) {
  return x->ops->healthy != NULL ? x->ops->healthy(x) : 0;
}
