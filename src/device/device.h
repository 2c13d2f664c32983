/* Transfers to a device, behind one internal interface with two backends:
 * device_cuda.c (the CUDA runtime; built when the toolkit is found) and
 * device_host.c (no GPU: "device" memory is host memory, a stream is a FIFO
 * of work served by a thread of its own, an event marks a point in a
 * stream's FIFO). device.c picks the backend at open time: CUDA when it was
 * built in, a device with the requested ordinal exists and host mode was
 * not asked for; host otherwise (logged at INFO with the reason).
 *
 * Semantics shared by both backends, which the staging pool relies on:
 * - Work enqueued on one stream runs in enqueue order; work on different
 *   streams may overlap.
 * - An event recorded on a stream completes when all work enqueued on that
 *   stream before the record has completed. An event never recorded counts
 *   as complete. Re-recording moves it to the new point.
 * - A host function enqueued on a stream runs (on some other thread) after
 *   all earlier work of the stream; it must not call any strata__device_*,
 *   strata__dstream_* or strata__devent_* function (CUDA forbids CUDA
 *   calls from host functions).
 * - Errors: negative Strata codes with the error detail set
 *   (strata__fail); a CUDA error becomes STRATA_E_IO naming the call and
 *   cudaGetErrorString().
 *
 * Thread safety: every function may be called from any thread, for
 * different or the same streams, except that *_free must not race with
 * other use of the same object. */
#ifndef STRATA_DEVICE_H
#define STRATA_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

typedef struct strata__device strata__device;
typedef struct strata__dstream strata__dstream;
typedef struct strata__devent strata__devent;

typedef struct strata__device_config {
  int device;      /* CUDA device ordinal */
  bool force_host; /* host mode even when a GPU is present */
  const strata__logger *log;
} strata__device_config;

/* Opens a backend. cfg NULL means device 0, no force_host, and a logger
 * set from $STRATA_LOG; the logger is copied. Errors: STRATA_E_INVAL
 * (negative device), STRATA_E_NOMEM, STRATA_E_IO (CUDA failed after the
 * device was found). No GPU is not an error: it means host mode. */
int strata__device_open(const strata__device_config *cfg, strata__device **out);
/* Frees the context. Streams and events must be freed before; device
 * memory still allocated is logged at WARN (and not freed). NULL ok. */
void strata__device_close(strata__device *x);

bool strata__device_is_cuda(const strata__device *x);
const char *strata__device_backend(const strata__device *x); /* "cuda"/"host" */
/* The GPU's name ("NVIDIA H100 80GB HBM3") or "host". */
const char *strata__device_name(const strata__device *x);
/* The NUMA node the device is attached to (CUDA: from its PCI bus id and
 * /sys/bus/pci/devices/<id>/numa_node), in host mode the node of the CPU
 * the opening thread ran on; -1 when unknown or not a NUMA system. */
int strata__device_numa_node(const strata__device *x);
/* Why host mode was chosen ("built without CUDA", "no CUDA device: ...",
 * "host mode requested"); "" for CUDA. */
const char *strata__device_host_reason(const strata__device *x);

/* Page-locks [p, p + n) for fast DMA: cudaHostRegister(Portable) with
 * CUDA, mlock() in host mode. Errors: -errno / STRATA_E_IO. */
int strata__device_pin(strata__device *x, void *p, size_t n);
void strata__device_unpin(strata__device *x, void *p, size_t n);
/* Pinned memory from the driver (cudaHostAlloc, Portable). Host mode:
 * STRATA_E_STATE (the caller falls back to NUMA memory + pin). */
int strata__device_host_alloc(strata__device *x, size_t n, void **out);
void strata__device_host_free(strata__device *x, void *p);
/* Registers a read-only range (a region's mapping) for DMA straight from
 * it: cudaHostRegister(Portable | ReadOnly), where the device reports
 * cudaDevAttrHostRegisterReadOnlySupported. STRATA_E_STATE when not
 * supported (host mode included); STRATA_E_IO when the driver refused. */
int strata__device_register_readonly(strata__device *x, const void *p,
                                     size_t n);
void strata__device_unregister(strata__device *x, const void *p);

/* Device memory from the device's stream-ordered pool (cudaMallocAsync on
 * `s`, usable by work queued on `s` after this call; with s NULL the
 * allocation is complete on return and any stream may use it). Host mode:
 * aligned_alloc, and `s` plays no part. n is rounded up to a multiple of
 * 256, which is also the alignment. Errors: STRATA_E_INVAL (n == 0, a
 * stream of another context), STRATA_E_NOMEM, STRATA_E_IO. */
int strata__device_mem_alloc(strata__device *x, size_t n, strata__dstream *s,
                             void **out);
/* Frees after all the work queued on `s` so far (cudaFreeAsync; host mode:
 * an item of the stream). With s NULL the caller vouches that no queued
 * work still uses `p`, and it is freed at once. p NULL ok. The bytes leave
 * strata__device_mem_bytes() at the call. Errors: STRATA_E_INVAL (p is not a
 * live allocation of this context), STRATA_E_IO. */
int strata__device_mem_free(strata__device *x, void *p, strata__dstream *s);
/* Device bytes allocated through dev_alloc and not yet freed (rounded
 * sizes). */
uint64_t strata__device_mem_bytes(const strata__device *x);

/* 0 while the device can complete work; an error (the detail says why)
 * once its context has failed for good, after which host functions never
 * run: a wait for their effects must give up. Host mode: always 0. */
int strata__device_healthy(strata__device *x);

int strata__dstream_new(strata__device *x, strata__dstream **out);
/* A stream over the application's native stream (a cudaStream_t), which it
 * keeps owning: strata__dstream_free waits for the native stream's work
 * and frees only the wrapper. Errors: STRATA_E_INVAL (native is NULL, a
 * special handle, not a live stream, or a stream of another device or
 * context: the detail says which), STRATA_E_STATE (host mode: there is
 * no native stream; or the stream is being captured into a graph),
 * STRATA_E_NOMEM, STRATA_E_IO. */
int strata__dstream_adopt(strata__device *x, void *native,
                          strata__dstream **out);
/* Waits for the stream's work, then frees it (an adopted stream: frees the
 * wrapper, and the native stream lives on). Events recorded on it stay
 * valid (and complete). NULL ok. */
void strata__dstream_free(strata__dstream *s);
/* The cudaStream_t (as void *), NULL in host mode. */
void *strata__dstream_native(strata__dstream *s);
/* Enqueues a copy of n bytes host -> device (src is host memory, pinned
 * for full speed; dst device memory). n == 0 queues nothing. */
int strata__dstream_copy_h2d(strata__dstream *s, void *dst, const void *src,
                             size_t n);
/* Enqueues a copy device -> host (tests and tools read results back). */
int strata__dstream_copy_d2h(strata__dstream *s, void *dst, const void *src,
                             size_t n);
/* Enqueues fn(arg) to run after all earlier work of the stream. In host
 * mode it runs on the stream's worker thread, which it holds up: it must
 * not wait for later work of the same stream. */
int strata__dstream_host_fn(strata__dstream *s, void (*fn)(void *), void *arg);
/* Makes later work of `s` wait until `e` (recorded on any stream of the
 * same context) has completed, at the point it was last recorded when
 * this is called: recording `e` again later does not move the wait (as
 * with cudaStreamWaitEvent). */
int strata__dstream_wait(strata__dstream *s, strata__devent *e);
/* Blocks until all work enqueued on `s` so far has completed. */
int strata__dstream_sync(strata__dstream *s);

/* An event may be recorded on different streams over time, and may
 * outlive the streams it was recorded on. */
int strata__devent_new(strata__device *x, strata__devent **out);
void strata__devent_free(strata__devent *e); /* NULL ok */
int strata__devent_record(strata__devent *e, strata__dstream *s);
/* 1 complete, 0 pending, < 0 error. */
int strata__devent_query(strata__devent *e);
int strata__devent_sync(strata__devent *e);

#endif /* STRATA_DEVICE_H */
