/* Transfers: the public streams, events and device memory (thin wrappers
 * over the backend, device.h), copies of staged layers to the device, and
 * batches that move a path of layers into one device buffer.
 *
 * Batches. DMA is fast only in large pieces (per-transfer overhead is
 * microseconds), so a batch copies a staged layer of 1 MiB or more
 * straight from its blocks and packs everything else, small layers and
 * layers not staged, into pinned pack buffers of staging.pack_bytes: the
 * layers of a path lie end to end in the device buffer, so consecutive
 * packed layers form one contiguous destination and each full buffer is
 * one copy. The pool has two pack buffers per stream; the batch fills
 * buffer i while buffers i-1, i-2, ... transfer, and waits for a buffer's
 * previous copy (its event) before filling it again. Copies go round-robin
 * over the pool's streams, and the caller's stream waits for all of them.
 *
 * Layers not staged are read from the region's mapping with
 * MADV_SEQUENTIAL advice, so the kernel reads ahead while earlier buffers
 * transfer. (Handing the next buffers' layers to the kernel with
 * MADV_WILLNEED as well was tried and measured slower on cold data: 1.0-1.5
 * against 1.7-2.0 GB/s for 256 MiB of 1 MiB layers dropped from the page
 * cache, on the 2-vCPU development VM.) The calling thread does the
 * reading; the design has worker threads read into the ring, which
 * pays off only where more reads in flight make the disk faster. Here they
 * did not: 512 MiB dropped from the page cache, copied out of a
 * MADV_SEQUENTIAL mapping in 2 MiB pieces, ran at 1.1-1.5 GB/s with one
 * thread, 0.8-1.2 with two and 1.0-1.4 with four (two runs each, one vCPU
 * busy with a fuzzer). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/strata_testing.h"
#include "staging/staging.h"
#include "store/store_internal.h"

#define DIRECT_MIN ((uint64_t)1 << 20) /* staged layers copied in place */

int strata__transfer_init(strata__staging *st) {
  const strata_store_config *c = &st->store->config;
  st->transfer.nstreams = c->staging.streams;
  st->transfer.streams =
      calloc(st->transfer.nstreams, sizeof *st->transfer.streams);
  st->transfer.pack_bytes = c->staging.pack_bytes;
  st->transfer.npack = 2 * st->transfer.nstreams;
  st->transfer.pack_block =
      calloc(st->transfer.npack, sizeof *st->transfer.pack_block);
  st->transfer.pack_ev =
      calloc(st->transfer.npack, sizeof *st->transfer.pack_ev);
  if (st->transfer.streams == NULL || st->transfer.pack_block == NULL ||
      st->transfer.pack_ev == NULL)
    return strata__fail(STRATA_E_NOMEM, "staging: %u streams",
                        st->transfer.nstreams);
  for (uint32_t i = 0; i < st->transfer.npack; i++)
    st->transfer.pack_block[i] = STRATA__BLOCK_NONE;
  for (uint32_t i = 0; i < st->transfer.nstreams; i++)
    STRATA__TRY(strata__dstream_new(st->dev, &st->transfer.streams[i]));
  uint32_t per = (uint32_t)(st->transfer.pack_bytes / st->block_size);
  for (uint32_t i = 0; i < st->transfer.npack; i++) {
    STRATA__TRY(
        strata__balloc_alloc(st->alloc, per, &st->transfer.pack_block[i]));
    st->fixed_blocks += per;
    STRATA__TRY(strata__devent_new(st->dev, &st->transfer.pack_ev[i]));
  }
  STRATA__TRY(strata__devent_new(st->dev, &st->transfer.start_ev));
  return strata__devent_new(st->dev, &st->transfer.join_ev);
}

void strata__transfer_destroy(strata__staging *st) {
  for (uint32_t i = 0;
       st->transfer.streams != NULL && i < st->transfer.nstreams; i++)
    strata__dstream_free(st->transfer.streams[i]); /* drains */
  for (uint32_t i = 0; st->transfer.pack_ev != NULL && i < st->transfer.npack;
       i++)
    strata__devent_free(st->transfer.pack_ev[i]);
  strata__devent_free(st->transfer.join_ev);
  strata__devent_free(st->transfer.start_ev);
  free(st->transfer.streams);
  free(st->transfer.pack_block);
  free(st->transfer.pack_ev);
  st->transfer.streams = NULL;
  st->transfer.pack_ev = NULL;
  st->transfer.pack_block = NULL;
  st->transfer.join_ev = NULL;
  st->transfer.start_ev = NULL;
}

/* ---- streams, events, device memory ---------------------------------- */

/* A stream of the pool: a new one (native NULL) or, for
 * strata_stream_adopt, the application's native stream. */
static int stream_open(strata_store *s, void *native, bool adopt,
                       const char *fn, strata_stream **out) {
  if (out == NULL)
    return strata__fail(STRATA_E_INVAL, "%s: NULL out", fn);
  *out = NULL;
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, fn, &st));
  strata_stream *ss = malloc(sizeof *ss);
  if (ss == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s", fn);
  ss->st = st;
  int rc = adopt ? strata__dstream_adopt(st->dev, native, &ss->xs)
                 : strata__dstream_new(st->dev, &ss->xs);
  if (rc < 0) {
    free(ss);
    return rc;
  }
  *out = ss;
  return 0;
}

int strata_stream_create(strata_store *s, strata_stream **out) {
  return stream_open(s, NULL, false, "strata_stream_create", out);
}

int strata_stream_adopt(strata_store *s, void *native, strata_stream **out) {
  return stream_open(s, native, true, "strata_stream_adopt", out);
}

void strata_stream_destroy(strata_stream *ss) {
  if (ss == NULL)
    return;
  strata__dstream_free(ss->xs);
  free(ss);
}

int strata_stream_sync(strata_stream *ss) {
  if (ss == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_stream_sync: NULL stream");
  return strata__dstream_sync(ss->xs);
}

void *strata_stream_native(strata_stream *ss) {
  return ss == NULL ? NULL : strata__dstream_native(ss->xs);
}

int strata_event_create(strata_store *s, strata_event **out) {
  if (out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_event_create: NULL out");
  *out = NULL;
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, "strata_event_create", &st));
  strata_event *ev = malloc(sizeof *ev);
  if (ev == NULL)
    return strata__fail(STRATA_E_NOMEM, "strata_event_create");
  int rc = strata__devent_new(st->dev, &ev->xe);
  if (rc < 0) {
    free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}

void strata_event_destroy(strata_event *ev) {
  if (ev == NULL)
    return;
  strata__devent_free(ev->xe);
  free(ev);
}

int strata_event_record(strata_event *ev, strata_stream *ss) {
  if (ev == NULL || ss == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_event_record: NULL");
  return strata__devent_record(ev->xe, ss->xs);
}

int strata_event_query(strata_event *ev) {
  if (ev == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_event_query: NULL");
  return strata__devent_query(ev->xe);
}

int strata_event_sync(strata_event *ev) {
  if (ev == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_event_sync: NULL");
  return strata__devent_sync(ev->xe);
}

int strata_device_alloc(strata_store *s, uint64_t size, strata_stream *ss,
                        void **out) {
  if (out == NULL || size == 0 || size > SIZE_MAX)
    return strata__fail(STRATA_E_INVAL, "strata_device_alloc: %s",
                        out == NULL ? "NULL out" : "bad size");
  *out = NULL;
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, "strata_device_alloc", &st));
  return strata__device_mem_alloc(st->dev, (size_t)size,
                                  ss != NULL ? ss->xs : NULL, out);
}

int strata_device_free(strata_store *s, void *p, strata_stream *ss) {
  strata__staging *st;
  STRATA__TRY(strata__staging_of(s, "strata_device_free", &st));
  if (p == NULL)
    return 0;
  return strata__device_mem_free(st->dev, p, ss != NULL ? ss->xs : NULL);
}

int strata_device_read(strata_stream *ss, void *dst, const void *src,
                       uint64_t size) {
  if (ss == NULL || (size > 0 && (dst == NULL || src == NULL)))
    return strata__fail(STRATA_E_INVAL, "strata_device_read: NULL");
  if (size == 0)
    return 0;
  return strata__dstream_copy_d2h(ss->xs, dst, src, (size_t)size);
}

/* ---- staged layers to the device --------------------------------------- */

static void pool_done(void *arg) {
  strata__staging *st = arg;
  atomic_fetch_sub_explicit(&st->inflight, 1, memory_order_acq_rel);
}

/* Enqueues one copy, counted in flight until done(arg) runs on the
 * stream after it. The caller has already counted the copy on its source
 * (a staged layer, a registered mapping) when done(arg) uncounts it there;
 * every done function also uncounts the pool's figure. */
static int enqueue_copy(strata__staging *st, strata__dstream *xs, void *dst,
                        const void *src, uint64_t len, void (*done)(void *),
                        void *arg) {
  atomic_fetch_add_explicit(&st->inflight, 1, memory_order_acq_rel);
  int rc = strata__dstream_copy_h2d(xs, dst, src, (size_t)len);
  if (rc == 0)
    rc = strata__dstream_host_fn(xs, done, arg);
  if (rc < 0) {
    /* The copy may be queued without its callback: wait for the stream so
     * the source is not freed under it, then drop the counts. */
    strata__dstream_sync(xs);
    done(arg);
    return rc;
  }
  atomic_fetch_add_explicit(&st->transfer.transfers, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->transfer.transfer_bytes, len,
                            memory_order_relaxed);
  return 0;
}

int strata_stage_to_device(const strata_staged *h, void *dst,
                           strata_stream *ss) {
  if (h == NULL || ss == NULL || (dst == NULL && h->size > 0))
    return strata__fail(STRATA_E_INVAL, "strata_stage_to_device: NULL");
  if (h->nseg == 0)
    return 0;
  strata__staging *st = h->st;
  /* One count and one completion callback for all the segments: host
   * functions are not free on a CUDA stream. */
  atomic_fetch_add_explicit(&h->layer->inflight, 1, memory_order_acq_rel);
  atomic_fetch_add_explicit(&st->inflight, 1, memory_order_acq_rel);
  uint8_t *d = dst;
  int rc = 0;
  for (uint32_t i = 0; rc == 0 && i < h->nseg; i++) {
    rc = strata__dstream_copy_h2d(ss->xs, d, h->seg[i].ptr,
                                  (size_t)h->seg[i].len);
    d += h->seg[i].len;
  }
  if (rc == 0)
    rc = strata__dstream_host_fn(ss->xs, strata__pages_inflight_done, h->layer);
  if (rc < 0) {
    strata__dstream_sync(ss->xs); /* no copy may outlive the count */
    strata__pages_inflight_done(h->layer);
    return rc;
  }
  atomic_fetch_add_explicit(&st->transfer.transfers, h->nseg,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&st->transfer.transfer_bytes, h->size,
                            memory_order_relaxed);
  return 0;
}

/* ---- batches --------------------------------------------------------- */

static uint64_t align_up(uint64_t v) {
  return (v + STRATA_DEVICE_ALIGN - 1) & ~(uint64_t)(STRATA_DEVICE_ALIGN - 1);
}

/* Resolves every step (no error detail from strata_get_many, so each
 * miss is named here) and lays the path out. */
static int resolve(const strata_txn *txn, const strata_layer_ref *refs,
                   size_t n, strata_layer *lay, uint64_t *total) {
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    int rc =
        strata__get_quiet(txn, refs[i].region_id, refs[i].layer_id, &lay[i]);
    if (rc < 0)
      return strata__fail(
          rc, "path step %zu: region %" PRIu64 " layer %" PRIu64 ": %s", i,
          refs[i].region_id, refs[i].layer_id, strata_strerror(rc));
    off = align_up(off) + lay[i].size;
  }
  *total = off;
  return 0;
}

int strata_stage_path_size(const strata_txn *txn, const strata_layer_ref *refs,
                           size_t n, uint64_t *bytes) {
  if (txn == NULL || bytes == NULL || (refs == NULL && n > 0))
    return strata__fail(STRATA_E_INVAL, "strata_stage_path_size: NULL");
  strata_layer *lay = malloc((n > 0 ? n : 1) * sizeof *lay);
  if (lay == NULL)
    return strata__fail(STRATA_E_NOMEM, "strata_stage_path_size: %zu steps", n);
  int rc = resolve(txn, refs, n, lay, bytes);
  free(lay);
  return rc;
}

/* The state of one batch: the pack buffer being filled and where its
 * bytes go. */
typedef struct batch {
  strata__staging *st;
  strata__devent *start; /* the caller's stream at the call */
  uint8_t *dev;
  uint32_t buf;     /* pack buffer being filled */
  uint64_t fill;    /* bytes in it */
  uint64_t dev_off; /* device offset of its first byte */
  uint32_t next_stream;
  uint64_t streams_used; /* bitmask over st->transfer.streams (at most 64) */
} batch;

/* The pool stream for the next copy. A stream's first copy of the batch
 * waits for the caller's stream as it was at the call: the buffer may have
 * been allocated there (stream-ordered), or be read there by earlier work
 * that the batch must not overwrite. A failed wait is left to the copy
 * that follows (its stream is then synchronized with the caller's by
 * hand). */
static strata__dstream *next_stream(batch *b) {
  uint32_t i = b->next_stream++ % b->st->transfer.nstreams;
  strata__dstream *xs = b->st->transfer.streams[i];
  if ((b->streams_used & ((uint64_t)1 << i)) == 0 &&
      strata__dstream_wait(xs, b->start) != 0)
    strata__devent_sync(b->start);
  b->streams_used |= (uint64_t)1 << i;
  return xs;
}

static uint8_t *pack_ptr(const batch *b) {
  return strata__balloc_ptr(b->st->alloc, b->st->transfer.pack_block[b->buf]);
}

/* Sends the filled part of the current pack buffer and moves to the next
 * one, waiting until that one's previous copy is done. */
static int flush(batch *b) {
  strata__staging *st = b->st;
  if (b->fill > 0) {
    strata__dstream *xs = next_stream(b);
    STRATA__TRY(enqueue_copy(st, xs, b->dev + b->dev_off, pack_ptr(b), b->fill,
                             pool_done, st));
    int rc = strata__devent_record(st->transfer.pack_ev[b->buf], xs);
    if (rc < 0) {
      /* Without the event the buffer could be refilled under its copy. */
      strata__dstream_sync(xs);
      return rc;
    }
    atomic_fetch_add_explicit(&st->transfer.packed_copies, 1,
                              memory_order_relaxed);
    b->dev_off += b->fill;
    b->fill = 0;
    b->buf = (b->buf + 1) % st->transfer.npack;
  }
  return strata__devent_sync(st->transfer.pack_ev[b->buf]);
}

/* Appends `len` bytes bound for device offset `off` to the pack buffers.
 * A gap (alignment padding) since the buffer's last byte is zero-filled so
 * that the destination stays one contiguous range. */
static int pack(batch *b, uint64_t off, const uint8_t *src, uint64_t len) {
  uint64_t cap = b->st->transfer.pack_bytes;
  if (b->fill == 0)
    b->dev_off = off;
  uint64_t gap = off - (b->dev_off + b->fill);
  /* Only alignment padding may be filled in: a larger distance is a layer
   * that went to the device by another copy, which zeros must not race. */
  if (gap >= STRATA_DEVICE_ALIGN || gap >= cap - b->fill) {
    STRATA__TRY(flush(b));
    b->dev_off = off;
    gap = 0;
  }
  memset(pack_ptr(b) + b->fill, 0, gap);
  b->fill += gap;
  while (len > 0) {
    uint64_t n = cap - b->fill < len ? cap - b->fill : len;
    memcpy(pack_ptr(b) + b->fill, src, n);
    b->fill += n;
    src += n;
    len -= n;
    /* flush() moves dev_off past what it sent, which is where the rest of
     * this layer goes. */
    if (b->fill == cap)
      STRATA__TRY(flush(b));
  }
  return 0;
}

/* Tells the kernel a layer not staged will be read once, front to back. */
static void advise_sequential(const void *p, uint64_t len) {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1);
  (void)madvise((void *)a, (uintptr_t)p + len - a, MADV_SEQUENTIAL);
}

int strata_stage_path_to_device(const strata_txn *txn,
                                const strata_layer_ref *refs, size_t n,
                                void *device_buf, uint64_t buf_size,
                                uint64_t *offsets, strata_stream *ss) {
  if (txn == NULL || ss == NULL || (refs == NULL && n > 0) ||
      (device_buf == NULL && n > 0))
    return strata__fail(STRATA_E_INVAL, "strata_stage_path_to_device: NULL");
  strata__staging *st;
  STRATA__TRY(strata__staging_of(strata__txn_priv(txn)->store,
                                 "strata_stage_path_to_device", &st));
  strata_layer *lay = malloc((n > 0 ? n : 1) * sizeof *lay);
  if (lay == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "strata_stage_path_to_device: %zu "
                        "steps",
                        n);
  uint64_t total = 0;
  int rc = resolve(txn, refs, n, lay, &total);
  if (rc == 0 && total > buf_size)
    rc = strata__fail(STRATA_E_BOUNDS,
                      "strata_stage_path_to_device: the path needs %" PRIu64 " "
                      "bytes, the buffer has %" PRIu64,
                      total, buf_size);
  if (rc < 0) {
    free(lay);
    return rc;
  }

  pthread_mutex_lock(&st->transfer.batch_mu);
  batch b = {.st = st, .dev = device_buf, .start = st->transfer.start_ev};
  rc = strata__devent_record(st->transfer.start_ev, ss->xs);
  if (rc == 0)
    rc = strata__devent_sync(st->transfer.pack_ev[b.buf]);
  uint64_t off = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    off = align_up(off);
    if (offsets != NULL)
      offsets[i] = off;
    strata_staged *h = NULL;
    /* A large layer that is fully staged goes straight from its blocks. */
    if (lay[i].size >= DIRECT_MIN) {
      pthread_mutex_lock(&st->mu);
      bool staged =
          strata__pages_touch(st, refs[i].region_id, refs[i].layer_id);
      pthread_mutex_unlock(&st->mu);
      if (staged && strata__stage(st, txn, refs[i].region_id, refs[i].layer_id,
                                  0, UINT64_MAX, false, &h) != 0)
        h = NULL;
    }
    strata__direct *d = NULL;
    if (h != NULL) {
      rc = strata_stage_to_device(
          h, b.dev + off, &(strata_stream){.st = st, .xs = next_stream(&b)});
      strata_staged_release(h);
    } else if (lay[i].size >= DIRECT_MIN &&
               (d = strata__direct_source(st, txn, refs[i].region_id,
                                          &lay[i])) != NULL) {
      /* Zero-staging: straight from the registered mapping. */
      rc = enqueue_copy(st, next_stream(&b), b.dev + off, lay[i].data,
                        lay[i].size, strata__direct_done, d);
    } else {
      if (lay[i].size >= DIRECT_MIN)
        advise_sequential(lay[i].data, lay[i].size);
      rc = pack(&b, off, lay[i].data, lay[i].size);
    }
    off += lay[i].size;
  }
  if (rc == 0 && b.fill > 0)
    rc = flush(&b);
  /* The caller's stream waits for every stream this batch used, even after
   * a failure, so that the caller knows when the copies made so far stop
   * writing into its buffer; if that cannot be arranged, wait here. */
  for (uint32_t i = 0; i < st->transfer.nstreams; i++) {
    if ((b.streams_used & ((uint64_t)1 << i)) == 0)
      continue;
    int jrc =
        strata__devent_record(st->transfer.join_ev, st->transfer.streams[i]);
    if (jrc == 0)
      jrc = strata__dstream_wait(ss->xs, st->transfer.join_ev);
    if (jrc < 0) {
      strata__dstream_sync(st->transfer.streams[i]);
      if (rc == 0)
        rc = jrc;
    }
  }
  if (rc == 0)
    atomic_fetch_add_explicit(&st->transfer.batches, 1, memory_order_relaxed);
  pthread_mutex_unlock(&st->transfer.batch_mu);
  free(lay);
  return rc;
}
