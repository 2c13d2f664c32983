/* The internal interface between xfer.c (argument checks, backend choice,
 * device-memory accounting) and the two backends, xfer_host.c and
 * xfer_cuda.c. Nothing outside those three files includes this header.
 *
 * A backend fills in an ops table. Its stream and event objects begin with
 * the common struct strata__xstream / strata__xevent below, so that xfer.c
 * can find the context (and so the ops) of any object, and the backend
 * casts the pointer to its own type (a pointer to a struct points to its
 * first member). xfer.c has checked every argument before an op runs:
 * objects are not NULL, a stream and an event belong to the same context,
 * sizes are not 0. */
#ifndef STRATA_XFER_BACKEND_H
#define STRATA_XFER_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "xfer.h"

/* Where a copy goes, for the backends' one copy op. */
enum strata__xfer_dir { STRATA__XFER_H2D, STRATA__XFER_D2H };

typedef struct strata__xfer_ops {
  const char *name; /* "cuda" or "host" */
  /* Releases what the backend set up at open (not the context itself). */
  void (*close)(strata__xfer *x);

  int (*pin)(strata__xfer *x, void *p, size_t n);
  void (*unpin)(strata__xfer *x, void *p, size_t n);
  int (*host_alloc)(strata__xfer *x, size_t n, void **out);
  void (*host_free)(strata__xfer *x, void *p);
  int (*register_readonly)(strata__xfer *x, const void *p, size_t n);
  void (*unregister)(strata__xfer *x, const void *p);

  /* n is already rounded up to STRATA__XFER_DEV_ALIGN; s may be NULL. */
  int (*dev_alloc)(strata__xfer *x, size_t n, strata__xstream *s, void **out);
  /* Frees after the earlier work of `s`, or at once when s is NULL. */
  int (*dev_free)(strata__xfer *x, void *p, strata__xstream *s);

  int (*stream_new)(strata__xfer *x, strata__xstream **out);
  void (*stream_free)(strata__xstream *s);
  void *(*stream_native)(strata__xstream *s);
  int (*copy)(strata__xstream *s, void *dst, const void *src, size_t n,
              enum strata__xfer_dir dir);
  int (*host_fn)(strata__xstream *s, void (*fn)(void *), void *arg);
  int (*stream_wait)(strata__xstream *s, strata__xevent *e);
  int (*stream_sync)(strata__xstream *s);

  int (*event_new)(strata__xfer *x, strata__xevent **out);
  void (*event_free)(strata__xevent *e);
  int (*event_record)(strata__xevent *e, strata__xstream *s);
  int (*event_query)(strata__xevent *e);
  int (*event_sync)(strata__xevent *e);
  /* 0 while the device can still complete work; an error once its context
   * has failed for good (NULL: always 0). Completion callbacks never run
   * after such a failure, so waits on them must stop. */
  int (*healthy)(strata__xfer *x);
} strata__xfer_ops;

/* Device allocations are rounded up to this, which is also their
 * alignment: cudaMalloc* guarantees 256 bytes, and host mode matches it so
 * that code tested in host mode sees the same alignment. */
#define STRATA__XFER_DEV_ALIGN 256u

/* One live device allocation, for the accounting in xfer.c. */
typedef struct strata__xfer_dev_slot {
  uintptr_t p; /* 0: empty */
  size_t n;
} strata__xfer_dev_slot;

struct strata__xfer {
  const strata__xfer_ops *ops;
  strata__logger log; /* a copy of the caller's */
  int device;         /* CUDA ordinal (kept in host mode, unused there) */
  int numa_node;
  /* Set by the CUDA backend at open: the device's stream-ordered pool is
   * usable (cudaDevAttrMemoryPoolsSupported), and read-only registration
   * is (cudaDevAttrHostRegisterReadOnlySupported). */
  bool cuda_pools;
  bool cuda_readonly;
  /* CUDA: the context's own stream-ordered pool (a cudaMemPool_t; the
   * device's default pool belongs to the application), and a non-blocking
   * stream for allocations and frees made without a stream (the legacy
   * default stream would order them after the application's work). */
  void *cuda_pool;
  void *cuda_aux;
  /* Host mode although the machine has a GPU (/dev/nvidia0): logged at
   * WARN, not INFO. */
  bool host_warn;
  char device_name[256];
  char host_reason[256];

  /* Device memory accounting: the size of every live allocation, by
   * address, in an open-addressing table with linear probing (the CUDA
   * runtime cannot tell the size of a pointer it handed out, and
   * strata__xfer_dev_free is not given it). Guarded by dev_mu; dev_bytes is
   * also read without it. */
  pthread_mutex_t dev_mu;
  strata__xfer_dev_slot *dev_slots;
  size_t dev_cap; /* a power of two, or 0 */
  size_t dev_live;
  _Atomic uint64_t dev_bytes;
};

struct strata__xstream {
  strata__xfer *x;
};

struct strata__xevent {
  strata__xfer *x;
};

/* Sets up the host backend on a context whose common fields are filled
 * (ops, device_name, numa_node). Cannot fail. */
void strata__xfer_host_init(strata__xfer *x);

#ifdef STRATA_HAVE_CUDA
/* Tries the CUDA backend for x->device: 1 when it is set up, 0 when there
 * is no such device (the reason, "no CUDA device: ...", is written to
 * x->host_reason), < 0 when CUDA failed after the device was found. */
int strata__xfer_cuda_init(strata__xfer *x);
#endif

#endif /* STRATA_XFER_BACKEND_H */
