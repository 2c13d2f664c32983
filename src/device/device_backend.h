/* The internal interface between device.c (argument checks, backend choice,
 * device-memory accounting) and the two backends, device_host.c and
 * device_cuda.c. Nothing outside those three files includes this header.
 *
 * A backend fills in an ops table. Its stream and event objects begin with
 * the common struct strata__dstream / strata__devent below, so that device.c
 * can find the context (and so the ops) of any object, and the backend
 * casts the pointer to its own type (a pointer to a struct points to its
 * first member). device.c has checked every argument before an op runs:
 * objects are not NULL, a stream and an event belong to the same context,
 * sizes are not 0. */
#ifndef STRATA_DEVICE_BACKEND_H
#define STRATA_DEVICE_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "device/device.h"

/* Where a copy goes, for the backends' one copy op. */
enum strata__device_dir { STRATA__DEVICE_H2D, STRATA__DEVICE_D2H };

typedef struct strata__device_ops {
  const char *name; /* "cuda" or "host" */
  /* Releases what the backend set up at open (not the context itself). */
  void (*close)(strata__device *x);

  int (*pin)(strata__device *x, void *p, size_t n);
  void (*unpin)(strata__device *x, void *p, size_t n);
  int (*host_alloc)(strata__device *x, size_t n, void **out);
  void (*host_free)(strata__device *x, void *p);
  int (*register_readonly)(strata__device *x, const void *p, size_t n);
  void (*unregister)(strata__device *x, const void *p);

  /* n is already rounded up to STRATA__DEVICE_MEM_ALIGN; s may be NULL. */
  int (*dev_alloc)(strata__device *x, size_t n, strata__dstream *s, void **out);
  /* Frees after the earlier work of `s`, or at once when s is NULL. */
  int (*dev_free)(strata__device *x, void *p, strata__dstream *s);

  int (*stream_new)(strata__device *x, strata__dstream **out);
  /* Wraps the application's native stream (a cudaStream_t; not NULL,
   * device.c has checked) in a stream object that every other op takes
   * as it takes one of stream_new's. The backend checks that the handle is
   * a live stream of x's device and context, and refuses what it cannot
   * wrap with STRATA_E_INVAL naming what it found (the host backend, which
   * has no native streams, refuses every handle with STRATA_E_STATE).
   * stream_native returns the handle as given. stream_free of an adopted
   * stream waits for the native stream's work as for any stream, then
   * frees the wrapper only: the native stream stays the application's. */
  int (*stream_adopt)(strata__device *x, void *native, strata__dstream **out);
  void (*stream_free)(strata__dstream *s);
  void *(*stream_native)(strata__dstream *s);
  int (*copy)(strata__dstream *s, void *dst, const void *src, size_t n,
              enum strata__device_dir dir);
  int (*host_fn)(strata__dstream *s, void (*fn)(void *), void *arg);
  int (*stream_wait)(strata__dstream *s, strata__devent *e);
  int (*stream_sync)(strata__dstream *s);

  int (*event_new)(strata__device *x, strata__devent **out);
  void (*event_free)(strata__devent *e);
  int (*event_record)(strata__devent *e, strata__dstream *s);
  int (*event_query)(strata__devent *e);
  int (*event_sync)(strata__devent *e);
  /* 0 while the device can still complete work; an error once its context
   * has failed for good (NULL: always 0). Completion callbacks never run
   * after such a failure, so waits on them must stop. */
  int (*healthy)(strata__device *x);
} strata__device_ops;

/* Device allocations are rounded up to this, which is also their
 * alignment: cudaMalloc* guarantees 256 bytes, and host mode matches it so
 * that code tested in host mode sees the same alignment. */
#define STRATA__DEVICE_MEM_ALIGN 256u

/* One live device allocation, for the accounting in device.c. */
typedef struct strata__device_mem_slot {
  uintptr_t p; /* 0: empty */
  size_t n;
} strata__device_mem_slot;

struct strata__device {
  const strata__device_ops *ops;
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
   * strata__device_mem_free is not given it). Guarded by dev_mu; dev_bytes is
   * also read without it. */
  pthread_mutex_t dev_mu;
  strata__device_mem_slot *dev_slots;
  size_t dev_cap; /* a power of two, or 0 */
  size_t dev_live;
  _Atomic uint64_t dev_bytes;
};

struct strata__dstream {
  strata__device *x;
};

struct strata__devent {
  strata__device *x;
};

/* Sets up the host backend on a context whose common fields are filled
 * (ops, device_name, numa_node). Cannot fail. */
void strata__device_host_init(strata__device *x);

#ifdef STRATA_HAVE_CUDA
/* Tries the CUDA backend for x->device: 1 when it is set up, 0 when there
 * is no such device (the reason, "no CUDA device: ...", is written to
 * x->host_reason), < 0 when CUDA failed after the device was found. */
int strata__device_cuda_init(strata__device *x);
#endif

#endif /* STRATA_DEVICE_BACKEND_H */
