/* The host backend of device.h: no GPU, "device" memory is host memory.
 *
 * Streams. A stream is a FIFO of work items served by a worker thread of
 * its own, so that work on one stream runs in order and work on different
 * streams overlaps, as on a GPU. Items are counted: `enqueued` when added,
 * `completed` once the worker has run them; both only grow. The worker
 * takes one item at a time and raises `completed` after each, so that an
 * event can name any point of the stream. Finished items go to a small
 * free list and are reused, so a stream in steady use does not allocate.
 *
 * Events. An event is a (stream, count) pair: recording it on a stream
 * takes the stream's `enqueued` at that moment, and it is complete once
 * the stream's `completed` reaches that count. A stream's state is
 * reference counted: the handle holds one reference, every event recorded
 * on it one more and every queued wait one more, so an event may outlive
 * the stream it was last recorded on (a freed stream has completed all its
 * work, so such an event reads complete). A wait item takes its event's
 * (stream, count) when it is enqueued, not when it runs, which is what
 * cudaStreamWaitEvent does; re-recording the event later does not move it.
 *
 * Why no deadlock between streams: a wait item only ever waits for work
 * that was enqueued before the wait was (the record came first), so the
 * waits follow the order in which work was enqueued and cannot form a
 * cycle. Waiting on an earlier point of the same stream finds it complete.
 *
 * Locks: a stream's `mu` guards its queue and counters; an event's `mu`
 * guards its (stream, count). An event's lock may be held while taking a
 * stream's, never the other way round, and a worker holds no lock while it
 * runs an item. `completed` is also read without the lock, with acquire
 * order, so that a thread that sees an event complete also sees the
 * memory the work wrote. */
#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"
#include "device/device_backend.h"

/* Finished items kept for reuse, per stream: more than a stream has queued
 * in ordinary use, few enough that a burst does not pin memory for long. */
#define HOST_SPARE_MAX 256

enum host_kind { HOST_COPY, HOST_FN, HOST_WAIT, HOST_FREE };

typedef struct host_stream host_stream;

typedef struct host_item {
  struct host_item *next;
  enum host_kind kind;
  union {
    struct {
      void *dst;
      const void *src;
      size_t n;
    } copy;
    struct {
      void (*fn)(void *);
      void *arg;
    } fn;
    struct {
      host_stream *s; /* holds a reference */
      uint64_t count;
    } wait;
    void *free;
  } u;
} host_item;

struct host_stream {
  strata__dstream base; /* first: the handle device.c sees */
  pthread_mutex_t mu;
  pthread_cond_t work; /* the worker: items were queued, or stop */
  pthread_cond_t done; /* waiters: `completed` went up */
  host_item *head, *tail;
  host_item *spare;
  unsigned spare_n;
  unsigned waiters; /* threads waiting on `done` */
  bool idle;        /* the worker waits on `work` */
  bool stop;
  uint64_t enqueued;
  _Atomic uint64_t completed; /* written with mu held */
  _Atomic unsigned refs;
  pthread_t worker;
};

typedef struct host_event {
  strata__devent base; /* first: the handle device.c sees */
  pthread_mutex_t mu;
  host_stream *s; /* NULL: never recorded (complete); holds a reference */
  uint64_t count;
} host_event;

static host_stream *hstream(strata__dstream *s) {
  return (host_stream *)s;
}
static host_event *hevent(strata__devent *e) {
  return (host_event *)e;
}

static void stream_ref(host_stream *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one frees the state. acq_rel orders every
 * use of the state by other holders before its destruction (a fence would
 * do with release here, but ThreadSanitizer does not model fences). */
static void stream_unref(host_stream *s) {
  if (s == NULL ||
      atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_cond_destroy(&s->done);
  pthread_cond_destroy(&s->work);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static bool reached(host_stream *s, uint64_t count) {
  return atomic_load_explicit(&s->completed, memory_order_acquire) >= count;
}

/* Blocks until `s` has completed `count` items. Call without s->mu. */
static void wait_count(host_stream *s, uint64_t count) {
  if (reached(s, count))
    return;
  pthread_mutex_lock(&s->mu);
  s->waiters++;
  while (!reached(s, count))
    pthread_cond_wait(&s->done, &s->mu);
  s->waiters--;
  pthread_mutex_unlock(&s->mu);
}

static void run_item(host_item *it) {
  switch (it->kind) {
  case HOST_COPY:
    memcpy(it->u.copy.dst, it->u.copy.src, it->u.copy.n);
    break;
  case HOST_FN:
    it->u.fn.fn(it->u.fn.arg);
    break;
  case HOST_WAIT:
    wait_count(it->u.wait.s, it->u.wait.count);
    stream_unref(it->u.wait.s);
    break;
  case HOST_FREE:
    free(it->u.free);
    break;
  }
}

static void *worker_main(void *arg) {
  host_stream *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->head == NULL && !s->stop) {
      s->idle = true;
      pthread_cond_wait(&s->work, &s->mu);
      s->idle = false;
    }
    host_item *it = s->head;
    if (it == NULL)
      break; /* stop, and the queue is drained */
    s->head = it->next;
    if (s->head == NULL)
      s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    run_item(it);
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add_explicit(&s->completed, 1, memory_order_release);
    if (s->waiters != 0)
      pthread_cond_broadcast(&s->done);
    if (s->spare_n < HOST_SPARE_MAX) {
      it->next = s->spare;
      s->spare = it;
      s->spare_n++;
    } else {
      free(it);
    }
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Queues a copy of `tmpl`, taking an item from the free list when it has
 * one (the allocation under the lock is rare: only while the queue is
 * longer than it has been before). */
static int enqueue(host_stream *s, const host_item *tmpl) {
  pthread_mutex_lock(&s->mu);
  host_item *it = s->spare;
  if (it != NULL) {
    s->spare = it->next;
    s->spare_n--;
  } else if ((it = malloc(sizeof *it)) == NULL) {
    pthread_mutex_unlock(&s->mu);
    return strata__fail(STRATA_E_NOMEM, "device: host stream: queueing work");
  }
  *it = *tmpl;
  it->next = NULL;
  if (s->tail != NULL)
    s->tail->next = it;
  else
    s->head = it;
  s->tail = it;
  s->enqueued++;
  if (s->idle)
    pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* ---- streams ------------------------------------------------------------- */

static int host_stream_new(strata__device *x, strata__dstream **out) {
  host_stream *s = calloc(1, sizeof *s);
  if (s == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: allocating a host stream");
  s->base.x = x;
  atomic_init(&s->completed, 0);
  atomic_init(&s->refs, 1);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->work, NULL);
  pthread_cond_init(&s->done, NULL);
  int err = pthread_create(&s->worker, NULL, worker_main, s);
  if (err != 0) {
    stream_unref(s);
    /* EAGAIN is pthread_create() out of memory for the thread's stack or
     * TLS: the callers document STRATA_E_NOMEM for that, not -EAGAIN. */
    if (err == EAGAIN)
      return strata__fail(STRATA_E_NOMEM,
                          "device: starting a host stream's worker: EAGAIN");
    return strata__fail_errno(err, "device: starting a host stream's worker");
  }
  *out = &s->base;
  return 0;
}

/* Host mode has no native stream type (strata__dstream_native gives NULL),
 * so there is nothing an application could hand in: any handle is
 * refused, with the reason the pool runs in host mode. */
static int host_stream_adopt(strata__device *x, void *native,
                             strata__dstream **out) {
  (void)out;
  return strata__fail(STRATA_E_STATE,
                      "device: adopting native stream %p: the staging pool "
                      "runs in host mode (%s), which has no native streams",
                      native, x->host_reason);
}

static void host_stream_free(strata__dstream *xs) {
  host_stream *s = hstream(xs);
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->mu);
  /* The worker leaves once the queue is empty: every item has run. */
  pthread_join(s->worker, NULL);
  for (host_item *it = s->spare, *next; it != NULL; it = next) {
    next = it->next;
    free(it);
  }
  s->spare = NULL;
  stream_unref(s);
}

static void *host_stream_native(strata__dstream *s) {
  (void)s;
  return NULL;
}

static int host_copy(strata__dstream *s, void *dst, const void *src, size_t n,
                     enum strata__device_dir dir) {
  (void)dir; /* both directions are a memcpy */
  host_item it = {.kind = HOST_COPY,
                  .u.copy = {.dst = dst, .src = src, .n = n}};
  return enqueue(hstream(s), &it);
}

static int host_host_fn(strata__dstream *s, void (*fn)(void *), void *arg) {
  host_item it = {.kind = HOST_FN, .u.fn = {.fn = fn, .arg = arg}};
  return enqueue(hstream(s), &it);
}

static int host_stream_sync(strata__dstream *xs) {
  host_stream *s = hstream(xs);
  pthread_mutex_lock(&s->mu);
  uint64_t count = s->enqueued;
  pthread_mutex_unlock(&s->mu);
  wait_count(s, count);
  return 0;
}

/* ---- events -------------------------------------------------------------- */

static int host_event_new(strata__device *x, strata__devent **out) {
  host_event *e = calloc(1, sizeof *e);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: allocating a host event");
  e->base.x = x;
  pthread_mutex_init(&e->mu, NULL);
  *out = &e->base;
  return 0;
}

static void host_event_free(strata__devent *xe) {
  host_event *e = hevent(xe);
  stream_unref(e->s);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

static int host_event_record(strata__devent *xe, strata__dstream *xs) {
  host_event *e = hevent(xe);
  host_stream *s = hstream(xs);
  stream_ref(s);
  pthread_mutex_lock(&e->mu);
  host_stream *old = e->s;
  e->s = s;
  pthread_mutex_lock(&s->mu);
  e->count = s->enqueued;
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_unlock(&e->mu);
  stream_unref(old);
  return 0;
}

/* The event's current point, with a reference to its stream (NULL when it
 * was never recorded). */
static host_stream *event_point(host_event *e, uint64_t *count) {
  pthread_mutex_lock(&e->mu);
  host_stream *s = e->s;
  *count = e->count;
  if (s != NULL)
    stream_ref(s);
  pthread_mutex_unlock(&e->mu);
  return s;
}

static int host_event_query(strata__devent *xe) {
  host_event *e = hevent(xe);
  pthread_mutex_lock(&e->mu);
  bool done = e->s == NULL || reached(e->s, e->count);
  pthread_mutex_unlock(&e->mu);
  return done ? 1 : 0;
}

static int host_event_sync(strata__devent *xe) {
  uint64_t count;
  host_stream *s = event_point(hevent(xe), &count);
  if (s != NULL) {
    wait_count(s, count);
    stream_unref(s);
  }
  return 0;
}

static int host_stream_wait(strata__dstream *xs, strata__devent *xe) {
  uint64_t count;
  host_stream *es = event_point(hevent(xe), &count);
  /* Complete already: later work of xs is enqueued after this moment, so
   * it needs no item to order it. */
  if (es == NULL || reached(es, count)) {
    stream_unref(es);
    return 0;
  }
  host_item it = {.kind = HOST_WAIT, .u.wait = {.s = es, .count = count}};
  int rc = enqueue(hstream(xs), &it);
  if (rc < 0)
    stream_unref(es);
  return rc;
}

/* ---- memory -------------------------------------------------------------- */

static int host_pin(strata__device *x, void *p, size_t n) {
  (void)x;
  if (mlock(p, n) != 0)
    return strata__fail_errno(errno, "device: mlock(%zu bytes)", n);
  return 0;
}

static void host_unpin(strata__device *x, void *p, size_t n) {
  if (munlock(p, n) != 0) {
    /* strerrorname_np() gives NULL for a number it does not know. */
    const char *name = strerrorname_np(errno);
    strata__log(&x->log, STRATA_LOG_WARN, "device",
                "msg=\"munlock failed\" bytes=%zu errno=%s", n,
                name != NULL ? name : "unknown");
  }
}

static int host_host_alloc(strata__device *x, size_t n, void **out) {
  (void)x;
  (void)out;
  return strata__fail(STRATA_E_STATE,
                      "device: host_alloc(%zu bytes): host mode: not supported",
                      n);
}

static void host_host_free(strata__device *x, void *p) {
  /* Nothing can have come from host_alloc in host mode. */
  (void)x;
  (void)p;
}

static int host_register_readonly(strata__device *x, const void *p, size_t n) {
  (void)x;
  (void)p;
  return strata__fail(STRATA_E_STATE,
                      "device: register_readonly(%zu bytes): host mode: not "
                      "supported",
                      n);
}

static void host_unregister(strata__device *x, const void *p) {
  (void)x;
  (void)p;
}

/* Allocation is immediate and the memory usable from every stream, so `s`
 * plays no part. */
static int host_dev_alloc(strata__device *x, size_t n, strata__dstream *s,
                          void **out) {
  (void)x;
  (void)s;
  void *p = aligned_alloc(STRATA__DEVICE_MEM_ALIGN, n);
  if (p == NULL)
    return strata__fail(STRATA_E_NOMEM, "device: host dev_alloc(%zu bytes)", n);
  *out = p;
  return 0;
}

/* On a stream the free is an item of its own, so that copies queued
 * before it still find the memory; without one it is immediate. */
static int host_dev_free(strata__device *x, void *p, strata__dstream *s) {
  (void)x;
  if (s == NULL) {
    free(p);
    return 0;
  }
  host_item it = {.kind = HOST_FREE, .u.free = p};
  int rc = enqueue(hstream(s), &it);
  if (rc < 0) {
    /* Not queued: wait for the stream instead, then free. */
    host_stream_sync(s);
    free(p);
  }
  return 0;
}

static void host_close(strata__device *x) {
  (void)x;
}

static const strata__device_ops host_ops = {
    .name = "host",
    .close = host_close,
    .pin = host_pin,
    .unpin = host_unpin,
    .host_alloc = host_host_alloc,
    .host_free = host_host_free,
    .register_readonly = host_register_readonly,
    .unregister = host_unregister,
    .dev_alloc = host_dev_alloc,
    .dev_free = host_dev_free,
    .stream_new = host_stream_new,
    .stream_adopt = host_stream_adopt,
    .stream_free = host_stream_free,
    .stream_native = host_stream_native,
    .copy = host_copy,
    .host_fn = host_host_fn,
    .stream_wait = host_stream_wait,
    .stream_sync = host_stream_sync,
    .event_new = host_event_new,
    .event_free = host_event_free,
    .event_record = host_event_record,
    .event_query = host_event_query,
    .event_sync = host_event_sync,
};

void strata__device_host_init(strata__device *x) {
  x->ops = &host_ops;
  snprintf(x->device_name, sizeof x->device_name, "host");
  /* The opening thread's node: where the pool's owner runs, the best guess
   * for where its memory should live when there is no device to follow. */
  x->numa_node = -1;
  if (numa_available() >= 0) {
    /* getcpu() names the CPU's node without allocating. libnuma's
     * numa_node_of_cpu() allocates a CPU mask, and its allocator calls
     * exit(1) when malloc fails (numa_bitmask_alloc): out of memory, an
     * open would end the process instead of failing (found by
     * test_staging_allocfail). */
    unsigned cpu, node;
    if (getcpu(&cpu, &node) == 0 && node <= INT_MAX)
      x->numa_node = (int)node;
  }
}
