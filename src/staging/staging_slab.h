/* The staging pool's slabs: a few large ranges of host memory allocated
 * once when the pool starts (pinning is slow and never on the hot path).
 *
 * How a slab is made (strata__slab_alloc):
 * - Default: anonymous memory bound to the device's NUMA node
 *   (numa_alloc_onnode when libnuma reports NUMA; plain mmap otherwise),
 *   first touched by `touch_threads` threads in parallel so the kernel
 *   places and zeroes the pages fast, then pinned: cudaHostRegister with
 *   CUDA, mlock() in host mode. When mlock fails (RLIMIT_MEMLOCK), the
 *   slab is used unlocked and a WARN says so, with the limit.
 * - With `driver_alloc` and CUDA: cudaHostAlloc(Portable) instead (slower
 *   to allocate on big hosts; kept to measure against).
 * The time taken is recorded, to compare the two. */
#ifndef STRATA_STAGING_SLAB_H
#define STRATA_STAGING_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "device/device.h"

enum strata__slab_method {
  STRATA__SLAB_NUMA_REGISTERED, /* NUMA/anon memory + cudaHostRegister */
  STRATA__SLAB_CUDA_HOST_ALLOC, /* cudaHostAlloc */
  STRATA__SLAB_MLOCKED,         /* host mode, mlock succeeded */
  STRATA__SLAB_UNLOCKED,        /* host mode, mlock refused */
};

typedef struct strata__slab {
  void *base;
  size_t bytes;
  int node;          /* NUMA node the memory was bound to, -1 none */
  int method;        /* strata__slab_method */
  uint64_t alloc_ns; /* allocate + touch + pin, CLOCK_MONOTONIC */
} strata__slab;

/* Name of a method for logs and the state dump ("numa+register", ...). */
const char *strata__slab_method_name(int method);

/* Allocates one slab of `bytes` (a multiple of the page size) on NUMA node
 * `node` (-1: no binding; ignored where libnuma reports no NUMA) and fills
 * *out. touch_threads: threads for the first touch (0 means 1). `log` may
 * be NULL (then the mlock warning is not logged). Errors: STRATA_E_INVAL
 * (size, a node that does not exist), STRATA_E_NOMEM, STRATA_E_IO, -errno;
 * the detail names the size and node. */
int strata__slab_alloc(strata__device *x, size_t bytes, int node,
                       bool driver_alloc, unsigned touch_threads,
                       const strata__logger *log, strata__slab *out);
/* Unpins and frees, with the functions that match how the slab was made;
 * `x` must be the context it was allocated with. Zeroes *s. Accepts a
 * zeroed slab. */
void strata__slab_free(strata__device *x, strata__slab *s);

#endif /* STRATA_STAGING_SLAB_H */
