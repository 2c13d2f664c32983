/* The staging pool's slabs (contract in staging_slab.h): allocation on
 * the device's NUMA node, parallel first touch, pinning, and the exact
 * reverse of each in strata__slab_free. */
#include <errno.h>
#include <inttypes.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/common.h"
#include "staging/staging_slab.h"

/* More threads than this only contend for the kernel's page-table locks
 * (measured gains flatten out well before; a slab is touched once). */
#define TOUCH_THREADS_MAX 64u

const char *strata__slab_method_name(int method) {
  switch (method) {
  case STRATA__SLAB_NUMA_REGISTERED:
    return "numa+register";
  case STRATA__SLAB_CUDA_HOST_ALLOC:
    return "cuda-host-alloc";
  case STRATA__SLAB_MLOCKED:
    return "mlock";
  case STRATA__SLAB_UNLOCKED:
    return "unlocked";
  default:
    return "?";
  }
}

typedef struct touch_job {
  volatile char *p;
  size_t pages, page;
} touch_job;

/* Writes one byte per page. The write fault makes the kernel allocate the
 * page (on the node the memory policy names) and zero it, which is all a
 * memset would achieve: writing the other bytes as well would only pass
 * over the memory a second time. */
static void *touch_main(void *arg) {
  const touch_job *j = arg;
  for (size_t i = 0; i < j->pages; i++)
    j->p[i * j->page] = 0;
  return NULL;
}

/* Faults [p, p + bytes) in with up to `threads` threads, each taking a
 * contiguous share of whole pages (the calling thread takes the first
 * share, and the share of any thread that could not be started). */
static void touch(void *p, size_t bytes, unsigned threads) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t pages = bytes / page;
  if (threads == 0)
    threads = 1;
  if (threads > TOUCH_THREADS_MAX)
    threads = TOUCH_THREADS_MAX;
  if (threads > pages)
    threads = (unsigned)(pages ? pages : 1);
  touch_job jobs[TOUCH_THREADS_MAX];
  pthread_t tid[TOUCH_THREADS_MAX];
  bool started[TOUCH_THREADS_MAX] = {false};
  size_t per = pages / threads, extra = pages % threads, at = 0;
  for (unsigned t = 0; t < threads; t++) {
    size_t n = per + (t < extra ? 1 : 0);
    jobs[t] = (touch_job){
        .p = (volatile char *)p + at * page, .pages = n, .page = page};
    at += n;
  }
  for (unsigned t = 1; t < threads; t++)
    started[t] = pthread_create(&tid[t], NULL, touch_main, &jobs[t]) == 0;
  touch_main(&jobs[0]);
  for (unsigned t = 1; t < threads; t++) {
    if (started[t])
      pthread_join(tid[t], NULL);
    else
      touch_main(&jobs[t]);
  }
}

/* The RLIMIT_MEMLOCK soft limit, for the warning when mlock fails. */
static const char *memlock_limit(char *buf, size_t size) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
    snprintf(buf, size, "unknown");
  else if (rl.rlim_cur == RLIM_INFINITY)
    snprintf(buf, size, "unlimited");
  else
    snprintf(buf, size, "%" PRIu64, (uint64_t)rl.rlim_cur);
  return buf;
}

/* Gives back memory from the default path (anonymous memory, bound to its
 * node or not; numa_free() too is only munmap()). */
static void unmap(void *p, size_t bytes, int node) {
  (void)node;
  munmap(p, bytes);
}

/* Nodes a slab may be bound to: Linux allows at most 1024 (NODES_SHIFT
 * 10), a 128-byte mask on the stack. */
#define NODE_MASK_BITS 1024u

/* What numa_alloc_onnode() does, anonymous memory bound to `node` with
 * mbind(MPOL_BIND), but with the node mask on the stack: libnuma allocates
 * its masks with an allocator that calls exit(1) when malloc fails
 * (numa_bitmask_alloc), which would end the process instead of failing
 * the open (found by test_staging_allocfail). As with numa_alloc_onnode(),
 * memory that could not be bound is still used. */
static void *map_onnode(size_t bytes, int node, const strata__logger *log) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  unsigned long mask[NODE_MASK_BITS / (8 * sizeof(unsigned long))] = {0};
  size_t word_bits = 8 * sizeof mask[0];
  mask[(size_t)node / word_bits] |= 1ul << ((size_t)node % word_bits);
  /* maxnode counts one past the mask's bits, as libnuma passes it. */
  if (mbind(p, bytes, MPOL_BIND, mask, NODE_MASK_BITS + 1, 0) != 0 &&
      log != NULL)
    strata__log(log, STRATA_LOG_WARN, "staging",
                "msg=\"mbind failed; slab not bound to its node\" "
                "bytes=%zu node=%d errno=%s",
                bytes, node, strerrorname_np(errno));
  return p;
}

int strata__slab_alloc(strata__device *x, size_t bytes, int node,
                       bool driver_alloc, unsigned touch_threads,
                       const strata__logger *log, strata__slab *out) {
  *out = (strata__slab){.node = -1};
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  STRATA__FAIL_IF(bytes == 0 || bytes % page != 0, STRATA_E_INVAL,
                  "staging: slab of %zu bytes is not a positive multiple of "
                  "the page size (%zu)",
                  bytes, page);
  bool cuda = strata__device_is_cuda(x);
  uint64_t t0 = strata__mono_ns();

  if (driver_alloc && cuda) {
    void *p = NULL;
    int rc = strata__device_host_alloc(x, bytes, &p);
    if (rc < 0)
      return rc; /* the detail names the call and the size */
    /* cudaHostAlloc memory is pinned and mapped by the driver already:
     * nothing to touch. */
    *out = (strata__slab){.base = p,
                          .bytes = bytes,
                          .node = -1,
                          .method = STRATA__SLAB_CUDA_HOST_ALLOC,
                          .alloc_ns = strata__mono_ns() - t0};
    return 0;
  }

  /* Binding needs libnuma to see NUMA; where it does not, any node is as
   * good as another and plain anonymous memory is used. */
  bool bind = node >= 0 && numa_available() >= 0;
  if (bind)
    STRATA__FAIL_IF(node > numa_max_node() || (unsigned)node >= NODE_MASK_BITS,
                    STRATA_E_INVAL,
                    "staging: slab of %zu bytes on NUMA node %d: no such "
                    "node (highest %d)",
                    bytes, node, numa_max_node());
  void *p;
  if (bind) {
    p = map_onnode(bytes, node, log);
    if (p == NULL)
      return strata__fail(STRATA_E_NOMEM,
                          "staging: mmap of a %zu-byte slab for node %d", bytes,
                          node);
  } else {
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
      return strata__fail_errno(errno, "staging: mmap of a %zu-byte slab",
                                bytes);
  }
  int used_node = bind ? node : -1;
  touch(p, bytes, touch_threads);

  int method;
  int rc = strata__device_pin(x, p, bytes);
  if (cuda) {
    if (rc < 0) {
      unmap(p, bytes, used_node);
      return rc;
    }
    method = STRATA__SLAB_NUMA_REGISTERED;
  } else if (rc == 0) {
    method = STRATA__SLAB_MLOCKED;
  } else {
    /* Host mode only simulates a device, so unlocked memory still works:
     * it only loses the guarantee that the pages stay resident. */
    char limit[32], why[128];
    if (log != NULL)
      strata__log(log, STRATA_LOG_WARN, "staging",
                  "msg=\"mlock failed; slab used unlocked\" bytes=%zu "
                  "node=%d error=%s rlimit_memlock=%s",
                  bytes, used_node,
                  strata__log_quote(why, sizeof why, strerror(-rc)),
                  memlock_limit(limit, sizeof limit));
    strata__clear_error();
    method = STRATA__SLAB_UNLOCKED;
  }
  *out = (strata__slab){.base = p,
                        .bytes = bytes,
                        .node = used_node,
                        .method = method,
                        .alloc_ns = strata__mono_ns() - t0};
  return 0;
}

void strata__slab_free(strata__device *x, strata__slab *s) {
  if (s == NULL || s->base == NULL)
    return;
  switch (s->method) {
  case STRATA__SLAB_CUDA_HOST_ALLOC:
    strata__device_host_free(x, s->base);
    break;
  case STRATA__SLAB_NUMA_REGISTERED:
  case STRATA__SLAB_MLOCKED:
    strata__device_unpin(x, s->base, s->bytes);
    unmap(s->base, s->bytes, s->node);
    break;
  default: /* STRATA__SLAB_UNLOCKED */
    unmap(s->base, s->bytes, s->node);
    break;
  }
  *s = (strata__slab){.node = -1};
}
