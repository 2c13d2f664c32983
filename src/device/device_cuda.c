/* The CUDA backend of device.h, on the runtime API only: a stream is a
 * cudaStream_t (non-blocking, so that it does not serialize with the
 * legacy default stream other code in the process may use), an event a
 * cudaEvent_t without timing, device memory comes from the device's
 * stream-ordered pool (cudaMallocAsync), whose release threshold is raised
 * at open so that freed memory stays in the pool for the next allocation
 * instead of going back to the driver at every synchronization.
 *
 * The current device. The runtime keeps it per thread, and the staging
 * pool calls in here from threads of its own that never chose one, so
 * every entry point that talks to the runtime first makes x->device
 * current (cudaSetDevice is cheap when it already is). Host functions run
 * on a driver thread and must not call CUDA at all (device.h says so).
 *
 * Every call that can fail is checked; a failure becomes STRATA_E_IO
 * (STRATA_E_NOMEM for cudaErrorMemoryAllocation) with the call and
 * cudaGetErrorString() in the detail. Calls in functions that
 * return nothing (unpin, frees) are logged at WARN instead. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "common/common.h"
#include "device/device_backend.h"

typedef struct cuda_stream {
  strata__dstream base; /* first: the handle device.c sees */
  cudaStream_t st;
  bool adopted; /* the application's stream: never destroyed here */
} cuda_stream;

typedef struct cuda_event {
  strata__devent base; /* first: the handle device.c sees */
  cudaEvent_t ev;
} cuda_event;

static cudaStream_t cstream(strata__dstream *s) {
  return ((cuda_stream *)s)->st;
}

static cudaEvent_t cevent(strata__devent *e) {
  return ((cuda_event *)e)->ev;
}

/* Sets the error detail to "cuda: CALL: cudaGetErrorString(err)" and
 * returns STRATA_E_IO. */
STRATA__PRINTF(2, 3)
static int cuda_fail(cudaError_t err, const char *fmt, ...) {
  char call[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call, sizeof call, fmt, ap);
  va_end(ap);
  /* Strata handles this error: it must not stay behind as the thread's
   * last error for the application's cudaGetLastError(). (A sticky error
   * comes back on the next call anyway.) */
  (void)cudaGetLastError();
  return strata__fail(err == cudaErrorMemoryAllocation ? STRATA_E_NOMEM
                                                       : STRATA_E_IO,
                      "cuda: %s: %s", call, cudaGetErrorString(err));
}

/* Returns from the calling function with STRATA_E_IO when `call` fails;
 * the rest of the arguments describe the call for the detail. */
#define CUDA_TRY(call, ...)                                                    \
  do {                                                                         \
    cudaError_t cuda_try_err = (call);                                         \
    if (cuda_try_err != cudaSuccess)                                           \
      return cuda_fail(cuda_try_err, __VA_ARGS__);                             \
  } while (0)

/* Logs a failure that cannot be returned. `what` is the CUDA call's name,
 * a literal of ours; the runtime's message is free text, so it is quoted
 * (strata__log_quote) to keep the line's key=value form. */
static void cuda_warn(strata__device *x, cudaError_t err, const char *what) {
  char q[256];
  strata__log(&x->log, STRATA_LOG_WARN, "device",
              "msg=\"%s failed\" device=%d error=%s", what, x->device,
              strata__log_quote(q, sizeof q, cudaGetErrorString(err)));
}

/* For calls whose failure cannot be returned: logs it. */
#define CUDA_WARN(x, call, what)                                               \
  do {                                                                         \
    cudaError_t cuda_warn_err = (call);                                        \
    if (cuda_warn_err != cudaSuccess)                                          \
      cuda_warn((x), cuda_warn_err, (what));                                   \
  } while (0)

static int use_device(strata__device *x) {
  CUDA_TRY(cudaSetDevice(x->device), "cudaSetDevice(%d)", x->device);
  return 0;
}

/* ---- host memory --------------------------------------------------------- */

static int cuda_pin(strata__device *x, void *p, size_t n) {
  STRATA__TRY(use_device(x));
  CUDA_TRY(cudaHostRegister(p, n, cudaHostRegisterPortable),
           "cudaHostRegister(%zu bytes, portable)", n);
  return 0;
}

static void cuda_unpin(strata__device *x, void *p, size_t n) {
  (void)n;
  if (use_device(x) == 0)
    CUDA_WARN(x, cudaHostUnregister(p), "cudaHostUnregister");
}

static int cuda_host_alloc(strata__device *x, size_t n, void **out) {
  STRATA__TRY(use_device(x));
  void *p = NULL;
  CUDA_TRY(cudaHostAlloc(&p, n, cudaHostAllocPortable),
           "cudaHostAlloc(%zu bytes, portable)", n);
  *out = p;
  return 0;
}

static void cuda_host_free(strata__device *x, void *p) {
  if (use_device(x) == 0)
    CUDA_WARN(x, cudaFreeHost(p), "cudaFreeHost");
}

static int cuda_register_readonly(strata__device *x, const void *p, size_t n) {
  STRATA__FAIL_IF(!x->cuda_readonly, STRATA_E_STATE,
                  "cuda: device %d does not support read-only host "
                  "registration (cudaDevAttrHostRegisterReadOnlySupported)",
                  x->device);
  STRATA__TRY(use_device(x));
  /* The runtime takes a non-const pointer; with the read-only flag the
   * device never writes through it. */
  CUDA_TRY(
      cudaHostRegister((void *)(uintptr_t)p, n,
                       cudaHostRegisterPortable | cudaHostRegisterReadOnly),
      "cudaHostRegister(%zu bytes, portable|read-only)", n);
  return 0;
}

static void cuda_unregister(strata__device *x, const void *p) {
  if (use_device(x) == 0)
    CUDA_WARN(x, cudaHostUnregister((void *)(uintptr_t)p),
              "cudaHostUnregister");
}

/* ---- device memory ------------------------------------------------------- */

static cudaStream_t aux_stream(strata__device *x) {
  return (cudaStream_t)x->cuda_aux;
}

/* From the context's own pool, ordered on `s`. Without a stream, on the
 * context's auxiliary stream and waited for, so that any stream may use
 * the memory at once. Devices without stream-ordered pools fall back to
 * cudaMalloc. */
static int cuda_dev_alloc(strata__device *x, size_t n, strata__dstream *s,
                          void **out) {
  STRATA__TRY(use_device(x));
  void *p = NULL;
  if (!x->cuda_pools) {
    CUDA_TRY(cudaMalloc(&p, n), "cudaMalloc(%zu bytes)", n);
  } else {
    cudaStream_t st = s != NULL ? cstream(s) : aux_stream(x);
    CUDA_TRY(cudaMallocFromPoolAsync(&p, n, (cudaMemPool_t)x->cuda_pool, st),
             "cudaMallocFromPoolAsync(%zu bytes)", n);
    if (s == NULL) {
      cudaError_t err = cudaStreamSynchronize(st);
      if (err != cudaSuccess) {
        CUDA_WARN(x, cudaFreeAsync(p, st), "cudaFreeAsync");
        return cuda_fail(err, "cudaStreamSynchronize after an allocation");
      }
    }
  }
  *out = p;
  return 0;
}

/* Without a stream, the caller vouches that no queued work uses the memory
 * any more; the free goes on the auxiliary stream. cudaFree (no pools)
 * waits for the whole device itself. */
static int cuda_dev_free(strata__device *x, void *p, strata__dstream *s) {
  STRATA__TRY(use_device(x));
  if (!x->cuda_pools)
    CUDA_TRY(cudaFree(p), "cudaFree");
  else
    CUDA_TRY(cudaFreeAsync(p, s != NULL ? cstream(s) : aux_stream(x)),
             "cudaFreeAsync");
  return 0;
}

/* ---- streams ------------------------------------------------------------- */

static int cuda_stream_new(strata__device *x, strata__dstream **out) {
  STRATA__TRY(use_device(x));
  cuda_stream *s = calloc(1, sizeof *s);
  if (s == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: allocating a CUDA stream");
  s->base.x = x;
  cudaError_t err = cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking);
  if (err != cudaSuccess) {
    free(s);
    return cuda_fail(err, "cudaStreamCreateWithFlags(non-blocking)");
  }
  *out = &s->base;
  return 0;
}

/* Refuses an application's stream with STRATA_E_INVAL: clears the
 * runtime's last error (as cuda_fail does) and names the handle. */
STRATA__PRINTF(2, 3)
static int adopt_refuse(void *native, const char *fmt, ...) {
  char why[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  (void)cudaGetLastError();
  return strata__fail(STRATA_E_INVAL, "cuda: adopting native stream %p: %s",
                      native, why);
}

/* Checks, in order: not a default stream; a live stream (its flags can be
 * read); on x's device (cudaStreamGetDevice, CUDA 12.8 and later; a driver
 * too old for it skips this step); not being captured; and in the
 * context the pool uses, the device's primary one, which a probe event
 * recorded on it shows: an event of one context cannot be recorded on a
 * stream of another (a stream of a context the application made with the
 * driver API on the same device passes every earlier check). */
static int cuda_stream_adopt(strata__device *x, void *native,
                             strata__dstream **out) {
  cudaStream_t st = (cudaStream_t)native;
  /* The per-thread default stream is another stream on each thread that
   * enqueues, and the library's own static runtime may read a default
   * handle differently from the application's (--default-stream). */
  if (st == cudaStreamLegacy || st == cudaStreamPerThread)
    return adopt_refuse(native,
                        "%s is a default stream, which cannot be adopted: "
                        "pass a stream the application created",
                        st == cudaStreamLegacy ? "cudaStreamLegacy"
                                               : "cudaStreamPerThread");
  STRATA__TRY(use_device(x));
  unsigned flags = 0;
  cudaError_t err = cudaStreamGetFlags(st, &flags);
  if (err != cudaSuccess)
    return adopt_refuse(native,
                        "not a live CUDA stream (cudaStreamGetFlags: %s)",
                        cudaGetErrorString(err));
#if CUDART_VERSION >= 12080
  int dev = -1;
  err = cudaStreamGetDevice(st, &dev);
  if (err == cudaSuccess && dev != x->device)
    return adopt_refuse(native,
                        "the stream is on CUDA device %d, the staging pool "
                        "on device %d (staging.device)",
                        dev, x->device);
  if (err != cudaSuccess && err != cudaErrorCallRequiresNewerDriver)
    return adopt_refuse(native, "cudaStreamGetDevice: %s",
                        cudaGetErrorString(err));
  (void)cudaGetLastError();
#endif
  enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  CUDA_TRY(cudaStreamIsCapturing(st, &cs), "cudaStreamIsCapturing");
  STRATA__FAIL_IF(cs != cudaStreamCaptureStatusNone, STRATA_E_STATE,
                  "cuda: adopting native stream %p: the stream is being "
                  "captured into a graph; adopt it outside the capture",
                  native);
  cudaEvent_t probe;
  CUDA_TRY(cudaEventCreateWithFlags(&probe, cudaEventDisableTiming),
           "cudaEventCreateWithFlags(disable-timing)");
  err = cudaEventRecord(probe, st);
  CUDA_WARN(x, cudaEventDestroy(probe), "cudaEventDestroy");
  if (err != cudaSuccess)
    return adopt_refuse(native,
                        "the stream belongs to another CUDA context than "
                        "device %d's primary context, which the staging pool "
                        "uses (cudaEventRecord: %s)",
                        x->device, cudaGetErrorString(err));
  cuda_stream *s = calloc(1, sizeof *s);
  if (s == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: adopting a CUDA stream");
  s->base.x = x;
  s->st = st;
  s->adopted = true;
  *out = &s->base;
  return 0;
}

/* An adopted stream is waited for like one of ours (Strata's completion
 * callbacks may be queued on it), but not destroyed. During a graph
 * capture a wait is not allowed and would invalidate the application's
 * capture: then the wrapper goes without waiting (the queued callbacks
 * hold what they use, not the wrapper), and a WARN says so. */
static void cuda_stream_free(strata__dstream *xs) {
  strata__device *x = xs->x;
  cuda_stream *s = (cuda_stream *)xs;
  if (use_device(x) == 0) {
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (s->adopted)
      CUDA_WARN(x, cudaStreamIsCapturing(s->st, &cs), "cudaStreamIsCapturing");
    if (cs == cudaStreamCaptureStatusNone)
      CUDA_WARN(x, cudaStreamSynchronize(s->st), "cudaStreamSynchronize");
    else
      strata__log(&x->log, STRATA_LOG_WARN, "device",
                  "msg=\"adopted stream released during a graph capture, "
                  "without waiting for its work\" device=%d",
                  x->device);
    if (!s->adopted)
      CUDA_WARN(x, cudaStreamDestroy(s->st), "cudaStreamDestroy");
  }
  free(s);
}

static void *cuda_stream_native(strata__dstream *s) {
  return (void *)cstream(s);
}

/* Work enqueued while a stream is being captured into a graph would run
 * at every replay, while Strata counts it once (in-flight counts, blocks
 * kept alive): refused. */
static int not_capturing(strata__dstream *s) {
  enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  CUDA_TRY(cudaStreamIsCapturing(cstream(s), &cs), "cudaStreamIsCapturing");
  STRATA__FAIL_IF(cs != cudaStreamCaptureStatusNone, STRATA_E_STATE,
                  "cuda: the stream is being captured into a graph; Strata's "
                  "transfers cannot be captured");
  return 0;
}

static int cuda_copy(strata__dstream *s, void *dst, const void *src, size_t n,
                     enum strata__device_dir dir) {
  STRATA__TRY(use_device(s->x));
  STRATA__TRY(not_capturing(s));
  bool h2d = dir == STRATA__DEVICE_H2D;
  CUDA_TRY(
      cudaMemcpyAsync(dst, src, n,
                      h2d ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                      cstream(s)),
      "cudaMemcpyAsync(%zu bytes, %s)", n, h2d ? "h2d" : "d2h");
  return 0;
}

static int cuda_host_fn(strata__dstream *s, void (*fn)(void *), void *arg) {
  STRATA__TRY(use_device(s->x));
  STRATA__TRY(not_capturing(s));
  CUDA_TRY(cudaLaunchHostFunc(cstream(s), fn, arg), "cudaLaunchHostFunc");
  return 0;
}

static int cuda_stream_wait(strata__dstream *s, strata__devent *e) {
  STRATA__TRY(use_device(s->x));
  CUDA_TRY(cudaStreamWaitEvent(cstream(s), cevent(e), 0),
           "cudaStreamWaitEvent");
  return 0;
}

static int cuda_stream_sync(strata__dstream *s) {
  STRATA__TRY(use_device(s->x));
  CUDA_TRY(cudaStreamSynchronize(cstream(s)), "cudaStreamSynchronize");
  return 0;
}

/* ---- events -------------------------------------------------------------- */

static int cuda_event_new(strata__device *x, strata__devent **out) {
  STRATA__TRY(use_device(x));
  cuda_event *e = calloc(1, sizeof *e);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: allocating a CUDA event");
  e->base.x = x;
  cudaError_t err = cudaEventCreateWithFlags(&e->ev, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    free(e);
    return cuda_fail(err, "cudaEventCreateWithFlags(disable-timing)");
  }
  *out = &e->base;
  return 0;
}

static void cuda_event_free(strata__devent *xe) {
  strata__device *x = xe->x;
  cuda_event *e = (cuda_event *)xe;
  if (use_device(x) == 0)
    CUDA_WARN(x, cudaEventDestroy(e->ev), "cudaEventDestroy");
  free(e);
}

static int cuda_event_record(strata__devent *e, strata__dstream *s) {
  STRATA__TRY(use_device(s->x));
  CUDA_TRY(cudaEventRecord(cevent(e), cstream(s)), "cudaEventRecord");
  return 0;
}

static int cuda_event_query(strata__devent *e) {
  STRATA__TRY(use_device(e->x));
  cudaError_t err = cudaEventQuery(cevent(e));
  if (err == cudaSuccess)
    return 1;
  if (err == cudaErrorNotReady)
    return 0;
  return cuda_fail(err, "cudaEventQuery");
}

static int cuda_event_sync(strata__devent *e) {
  STRATA__TRY(use_device(e->x));
  CUDA_TRY(cudaEventSynchronize(cevent(e)), "cudaEventSynchronize");
  return 0;
}

static void cuda_close(strata__device *x) {
  if (use_device(x) != 0)
    return;
  if (x->cuda_aux != NULL) {
    CUDA_WARN(x, cudaStreamSynchronize(aux_stream(x)), "cudaStreamSynchronize");
    CUDA_WARN(x, cudaStreamDestroy(aux_stream(x)), "cudaStreamDestroy");
  }
  /* The pool's memory goes back to the driver (it fails if device memory
   * is still allocated from it: the WARN says so). */
  if (x->cuda_pool != NULL) {
    CUDA_WARN(x, cudaMemPoolTrimTo((cudaMemPool_t)x->cuda_pool, 0),
              "cudaMemPoolTrimTo");
    CUDA_WARN(x, cudaMemPoolDestroy((cudaMemPool_t)x->cuda_pool),
              "cudaMemPoolDestroy");
  }
}

/* A context that failed for good (a kernel fault, cudaDeviceReset) makes
 * every call return the sticky error; a query of the auxiliary stream
 * shows it without waiting. */
static int cuda_healthy(strata__device *x) {
  STRATA__TRY(use_device(x));
  cudaError_t err = cudaStreamQuery(aux_stream(x));
  if (err == cudaSuccess || err == cudaErrorNotReady)
    return 0;
  return cuda_fail(err, "cudaStreamQuery (device %d)", x->device);
}

static const strata__device_ops cuda_ops = {
    .name = "cuda",
    .close = cuda_close,
    .pin = cuda_pin,
    .unpin = cuda_unpin,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .register_readonly = cuda_register_readonly,
    .unregister = cuda_unregister,
    .dev_alloc = cuda_dev_alloc,
    .dev_free = cuda_dev_free,
    .stream_new = cuda_stream_new,
    .stream_adopt = cuda_stream_adopt,
    .stream_free = cuda_stream_free,
    .stream_native = cuda_stream_native,
    .copy = cuda_copy,
    .host_fn = cuda_host_fn,
    .stream_wait = cuda_stream_wait,
    .stream_sync = cuda_stream_sync,
    .event_new = cuda_event_new,
    .event_free = cuda_event_free,
    .event_record = cuda_event_record,
    .event_query = cuda_event_query,
    .event_sync = cuda_event_sync,
    .healthy = cuda_healthy,
};

/* ---- open ---------------------------------------------------------------- */

/* The NUMA node of the device's PCI function, from sysfs; -1 when the
 * kernel does not know (it writes -1 on machines without NUMA) or the
 * file is missing (not Linux, a container without /sys). */
static int pci_numa_node(strata__device *x) {
  char bus[64];
  cudaError_t err = cudaDeviceGetPCIBusId(bus, (int)sizeof bus, x->device);
  if (err != cudaSuccess) {
    char q[256];
    strata__log(&x->log, STRATA_LOG_DEBUG, "device",
                "msg=\"no PCI bus id; NUMA node unknown\" device=%d error=%s",
                x->device,
                strata__log_quote(q, sizeof q, cudaGetErrorString(err)));
    return -1;
  }
  /* The runtime writes "0000:3B:00.0" (some versions an 8-digit domain);
   * sysfs names it "0000:3b:00.0". Reformatting covers both. */
  unsigned dom, b, dev, fn;
  char path[128];
  if (sscanf(bus, "%x:%x:%x.%x", &dom, &b, &dev, &fn) == 4)
    snprintf(path, sizeof path,
             "/sys/bus/pci/devices/%04x:%02x:%02x.%x/numa_node", dom, b, dev,
             fn);
  else {
    for (char *c = bus; *c; c++)
      *c = (char)tolower((unsigned char)*c);
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/numa_node", bus);
  }
  FILE *f = fopen(path, "r");
  int node = -1;
  if (f != NULL) {
    if (fscanf(f, "%d", &node) != 1 || node < 0)
      node = -1;
    fclose(f);
  }
  return node;
}

int strata__device_cuda_init(strata__device *x) {
  int dev = x->device, count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    /* No driver and no device read the same here ("insufficient driver");
     * a machine with a GPU node whose driver is too old for this runtime
     * is worth a WARN: the application may well be using the GPU. */
    x->host_warn = access("/dev/nvidia0", F_OK) == 0;
    snprintf(x->host_reason, sizeof x->host_reason, "no CUDA device: %s%s",
             cudaGetErrorString(err),
             x->host_warn ? " (but /dev/nvidia0 exists: driver too old for "
                            "this CUDA runtime?)"
                          : "");
    (void)cudaGetLastError();
    return 0;
  }
  if (count <= dev) {
    snprintf(x->host_reason, sizeof x->host_reason,
             "no CUDA device: device %d requested, %d present", dev, count);
    return 0;
  }
  CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice(%d)", dev);
  struct cudaDeviceProp prop;
  CUDA_TRY(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties(%d)",
           dev);
  snprintf(x->device_name, sizeof x->device_name, "%s", prop.name);
  int v = 0;
  CUDA_TRY(
      cudaDeviceGetAttribute(&v, cudaDevAttrHostRegisterReadOnlySupported, dev),
      "cudaDeviceGetAttribute(HostRegisterReadOnlySupported, %d)", dev);
  x->cuda_readonly = v != 0;
  CUDA_TRY(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryPoolsSupported, dev),
           "cudaDeviceGetAttribute(MemoryPoolsSupported, %d)", dev);
  x->cuda_pools = v != 0;
  cudaStream_t aux;
  CUDA_TRY(cudaStreamCreateWithFlags(&aux, cudaStreamNonBlocking),
           "cudaStreamCreateWithFlags(non-blocking)");
  x->cuda_aux = aux;
  if (x->cuda_pools) {
    /* A pool of our own: the device's default pool is the application's,
     * and its settings are not ours to change. */
    struct cudaMemPoolProps props;
    memset(&props, 0, sizeof props);
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = dev;
    cudaMemPool_t pool;
    err = cudaMemPoolCreate(&pool, &props);
    if (err != cudaSuccess) {
      CUDA_WARN(x, cudaStreamDestroy(aux), "cudaStreamDestroy");
      x->cuda_aux = NULL;
      return cuda_fail(err, "cudaMemPoolCreate(device %d)", dev);
    }
    x->cuda_pool = pool;
    /* Keep freed memory in the pool: by default it is released to the
     * driver at every synchronization, and allocating it again costs a
     * driver call on the staging pool's path. close() trims it. */
    uint64_t keep = UINT64_MAX;
    err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    if (err != cudaSuccess) {
      cuda_close(x);
      x->cuda_pool = x->cuda_aux = NULL;
      return cuda_fail(err, "cudaMemPoolSetAttribute(ReleaseThreshold, %d)",
                       dev);
    }
  }
  x->numa_node = pci_numa_node(x);
  x->host_reason[0] = '\0';
  x->ops = &cuda_ops;
  return 1;
}
