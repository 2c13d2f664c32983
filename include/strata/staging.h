/* Strata staging: pinned host copies of layers, and moving them to the GPU.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_STAGING_H
#define STRATA_PUBLIC_STAGING_H

#include <stddef.h>
#include <stdint.h>

#include "strata/snapshot.h"
#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Staging ---------------------------------------------------------
 *
 * The staging pool keeps copies of hot layers in pinned (page-locked) host
 * memory so that they reach the GPU at full DMA bandwidth, and moves
 * layers into device buffers. It exists when strata_store_config's
 * staging.bytes is not 0 (strata_staging_config below).
 *
 * Memory: a few large slabs allocated and pinned once at open, on the
 * GPU's NUMA node, cut into fixed-size blocks. A staged layer occupies
 * one block per block-size page of its content; a layer may be staged in
 * part. Blocks with identical content (XXH3-128) are shared between
 * layers, with reference counts; staged blocks are never written after
 * they are filled, so sharing needs no copy.
 *
 * Hot layers: one read in staging.sample_period is sampled into a ring of
 * the reading thread's own (no shared write on the read path); a worker
 * thread counts the samples, stages layers that pass the threshold within
 * the hot budget, and evicts with a CLOCK policy when the staging pool passes
 * its high watermark. A staged layer that a strata_staged handle holds, or that
 * a transfer is reading, is never evicted.
 *
 * Modes: with CUDA built in and a GPU present, "device" pointers are CUDA
 * device memory and streams are CUDA streams. Otherwise (host mode) the
 * same calls work: device memory is host memory, a stream is a queue
 * served by a thread of its own, copies are memcpy on that thread, and
 * events mark points in a stream's queue as in CUDA.
 *
 * Identity: a staged copy belongs to (region id, layer id) with the
 * layer's size and checksum; a snapshot that sees other content for the
 * layer (after a put or a crystallization) stages that content anew, and
 * the old copy goes when nothing holds it.
 *
 * Lifetimes: holds (strata_staged, strata_device_layer), streams, events
 * and device memory belong to the store: release, destroy and free them
 * before strata_store_close(), which waits for transfers in flight.
 *
 * CUDA caveats: staging calls make staging.device the calling thread's
 * current device (cudaSetDevice), and do not restore the previous one;
 * multi-GPU applications set theirs again after a call. Transfers cannot
 * be captured into a CUDA graph (STRATA_E_STATE). The library carries its
 * own static CUDA runtime: it shares the device's primary context (and so
 * pointers and streams) with the application's runtime, and allocates
 * device memory from a CUDA memory pool of its own. */

/* Flags for strata_staging_config.flags. */
enum strata_staging_flags {
  /* Host mode even when a GPU is present. */
  STRATA_STAGING_HOST = 1u << 0,
  /* Do not share blocks of identical content between staged layers. */
  STRATA_STAGING_NO_DEDUP = 1u << 1,
  /* Zero-staging path: batches copy layers of 1 MiB or more that are not
   * staged straight from the region file's mapping, registered read-only
   * with the device (cudaHostRegisterReadOnly) the first time; where
   * registration fails (host mode, unsupported device), they go through
   * staging as without the flag. */
  STRATA_STAGING_DIRECT = 1u << 2,
  /* Bits 3 and 4 are taken by switches for tests and benchmarks, which are
   * not part of the API (src/common/strata_testing.h): do not reuse them. */
};

/* The staging pool's configuration: strata_store_config.staging, filled by
 * strata_store_config_init(). Every 0 means the default.
 *
 * Its size is fixed: it sits inside strata_store_config, whose struct_size
 * covers it (see "Growing structures" in <strata.h>), and a change of its
 * size would move the store configuration's later fields. Fields it gains
 * take the reserved words at its end instead, whose 0 means the default as
 * for every other field; strata_store_open() refuses a configuration whose
 * reserved words are not 0 (it comes from a newer header than the
 * library), with STRATA_E_INVAL naming strata_staging_config. */
typedef struct strata_staging_config {
  /* Pinned host memory for the pool; 0 = no staging pool (the staging
   * calls then fail with STRATA_E_STATE). Rounded up to whole blocks;
   * split into slabs of at most 1 GiB. */
  uint64_t bytes;
  /* Block size: a power of two, 4 KiB .. 64 MiB; default 64 KiB. */
  uint32_t block_size;
  uint32_t streams; /* transfer streams; default 3 */
  int device;       /* CUDA device ordinal; default 0 */
  unsigned flags;   /* strata_staging_flags */
  /* Eviction starts when used blocks pass high_pct of the staging pool and
   * frees evict_pct of it. Defaults 80 and 20. */
  unsigned high_pct, evict_pct;
  /* A layer is hot after this many sampled reads (counts halve every
   * second, so this is a rate); default 4. */
  uint32_t hot_threshold;
  /* One read in this many (a power of two) is sampled; default 64. */
  uint32_t sample_period;
  /* Bytes hot layers may occupy; default half the staging pool. */
  uint64_t hot_budget;
  /* Size of the pinned buffers batches of small or cold layers are packed
   * into before each copy to the device; default 2 MiB. */
  uint64_t pack_bytes;
  /* Device memory the GPU-resident layer cache (strata_device_cache_get)
   * may use; 0 = no cache. */
  uint64_t device_cache_bytes;
  /* Room for fields to come; must be 0 (strata_store_config_init() zeroes
   * it). */
  uint64_t reserved_[4];
} strata_staging_config;

typedef struct strata_staged strata_staged;
typedef struct strata_stream strata_stream;
typedef struct strata_event strata_event;

/* Alignment of every layer's offset in a batch's device buffer. */
#define STRATA_DEVICE_ALIGN 128u

/* Stages layer `layer_id` of region `region_id` as `txn` sees it (copying
 * what is not staged yet) and returns a hold on the pinned copy. The
 * hold, and the memory it shows, stay valid until
 * strata_staged_release(), after the snapshot ends too. Errors:
 * STRATA_E_STATE (no staging pool), STRATA_E_NO_REGION,
 * STRATA_E_NOT_FOUND, STRATA_E_LIMIT (the staging pool cannot make room: every
 * block is held or in transfer), STRATA_E_NOMEM. Thread-safe. */
STRATA_API int strata_stage(const strata_txn *txn, uint64_t region_id,
                            uint64_t layer_id, strata_staged **out);
/* The same for blocks [first_block, first_block + n_blocks) of the layer
 * only (block-size pages of its content; the range is clipped to the
 * layer). STRATA_E_BOUNDS when first_block is past the layer's end. */
STRATA_API int strata_stage_part(const strata_txn *txn, uint64_t region_id,
                                 uint64_t layer_id, uint64_t first_block,
                                 uint64_t n_blocks, strata_staged **out);

typedef struct strata_staged_info {
  uint64_t region_id, layer_id;
  uint64_t offset;   /* of the staged part within the layer */
  uint64_t size;     /* bytes of the staged part */
  uint32_t segments; /* contiguous pieces of pinned memory */
  uint32_t blocks;
  uint32_t shared_blocks; /* blocks other layers share */
} strata_staged_info;

STRATA_API int strata_staged_info_get(const strata_staged *staged,
                                      strata_staged_info *out);
/* Segment i of the staged part (pieces in content order): *ptr points to
 * *len bytes of pinned memory, valid while the hold lasts. Read-only.
 * STRATA_E_BOUNDS when i >= segments. */
STRATA_API int strata_staged_segment(const strata_staged *staged, uint32_t i,
                                     const void **ptr, uint64_t *len);
/* Copies the staged bytes into dst (which holds info.size bytes). */
STRATA_API int strata_staged_copy_out(const strata_staged *staged, void *dst);
/* Ends a hold (transfers already enqueued keep what they read alive).
 * Accepts NULL. */
STRATA_API void strata_staged_release(strata_staged *staged);

/* Streams run transfers in order; work on different streams may overlap.
 * strata_stream_native() returns the cudaStream_t (as void *), or NULL in
 * host mode. Errors: STRATA_E_STATE (no staging pool), STRATA_E_NOMEM,
 * STRATA_E_IO (CUDA). A stream is used by one thread at a time; destroy
 * waits for its work. */
STRATA_API int strata_stream_create(strata_store *store, strata_stream **out);

/* A stream over the application's own CUDA stream: `native` is its
 * cudaStream_t (as void *). Transfers, events, stream-ordered allocations,
 * path batches and the device cache work on the result exactly as on a
 * stream from strata_stream_create(), in one order with the application's
 * own work on the native stream (a kernel enqueued after
 * strata_stage_to_device() sees the bytes, with no event in between).
 * strata_stream_native() returns `native`.
 *
 * Ownership: the native stream stays the application's. Strata never
 * destroys it; strata_stream_destroy() waits for all work enqueued on it
 * so far (cudaStreamSynchronize: the application's work as well as
 * Strata's, which a CUDA stream cannot tell apart), then frees the
 * wrapper only. So the application must keep the native stream alive
 * until strata_stream_destroy() has returned, and may destroy it at once
 * afterwards. (Destroyed while the application captures the stream into a
 * graph, where a wait is not allowed, the wrapper goes without waiting,
 * logged at WARN: Strata's queued work keeps what it uses alive, and the
 * stream must then live until that work is done.)
 *
 * Accepted: a live stream created by the application (cudaStreamCreate*,
 * blocking or not, any priority) on the staging pool's device
 * (staging.device), in that device's primary context (the one the runtime
 * API uses; a context made with the driver API's cuCtxCreate is another).
 * Refused with STRATA_E_INVAL: NULL and the special handles
 * cudaStreamLegacy and cudaStreamPerThread (the per-thread default stream
 * is a different stream on each thread, and the library's own CUDA runtime
 * may read a default handle differently from the application's, which
 * --default-stream sets), a stream of another device (the detail names
 * both devices), of another context, or a handle CUDA does not know
 * (best effort: a stream already destroyed is undefined behaviour in
 * CUDA). STRATA_E_STATE: no staging pool; the pool runs in host mode
 * (there is no native stream type there: strata_stream_native() gives
 * NULL, and any handle is refused, the detail saying why the pool is in
 * host mode); the stream is being captured into a graph. Also
 * STRATA_E_NOMEM, STRATA_E_IO (CUDA). *out is NULL after an error.
 *
 * Concurrency: as for a created stream, one thread at a time uses the
 * wrapper; the application may enqueue its own work on the native stream
 * from any thread meanwhile (CUDA orders it). One native stream may be
 * adopted more than once (each wrapper waits for the stream when
 * destroyed). Release the wrapper before strata_store_close(). */
STRATA_API int strata_stream_adopt(strata_store *store, void *native,
                                   strata_stream **out);
STRATA_API void strata_stream_destroy(strata_stream *stream);
STRATA_API int strata_stream_sync(strata_stream *stream);
STRATA_API void *strata_stream_native(strata_stream *stream);

/* Events: record marks the current end of a stream's work; query returns
 * 1 once that work is done, 0 before, negative on error; sync waits. */
STRATA_API int strata_event_create(strata_store *store, strata_event **out);
STRATA_API void strata_event_destroy(strata_event *event);
STRATA_API int strata_event_record(strata_event *event, strata_stream *stream);
STRATA_API int strata_event_query(strata_event *event);
STRATA_API int strata_event_sync(strata_event *event);

/* Device memory from a stream-ordered allocator (cudaMallocAsync on the
 * stream; host memory in host mode), aligned to 256 bytes. Free after the
 * work that uses it, on the same or a later point of a stream. */
STRATA_API int strata_device_alloc(strata_store *store, uint64_t size,
                                   strata_stream *stream, void **out);
STRATA_API int strata_device_free(strata_store *store, void *device_ptr,
                                  strata_stream *stream);
/* Enqueues a copy from device memory to host memory (to read results). */
STRATA_API int strata_device_read(strata_stream *stream, void *host_dst,
                                  const void *device_src, uint64_t size);

/* Enqueues copies of the staged part to device_ptr (which has room for
 * info.size bytes) on `stream`. Returns once enqueued; the staged blocks
 * stay alive until the copies complete even if the hold is released
 * first. Errors: STRATA_E_INVAL, STRATA_E_IO (CUDA). */
STRATA_API int strata_stage_to_device(const strata_staged *staged,
                                      void *device_ptr, strata_stream *stream);

/* Device bytes a path needs: the layers laid end to end, each at an offset
 * aligned to STRATA_DEVICE_ALIGN. Errors as strata_get (naming the step). */
STRATA_API int strata_stage_path_size(const strata_txn *txn,
                                      const strata_layer_ref *refs, size_t n,
                                      uint64_t *bytes);
/* Moves a path of layers into one device buffer: layer i lands at
 * offsets[i] (laid out as strata_stage_path_size() says; offsets may be
 * NULL). Staged layers of at least 1 MiB are copied from their blocks;
 * everything else (small layers, layers not staged, read from the mapping
 * with MADV_SEQUENTIAL) is packed into pinned buffers of
 * staging.pack_bytes, each copied as one transfer while the next fills.
 * The copies are spread over the staging pool's streams; they start after the
 * work enqueued on `stream` before the call (which may have allocated the
 * buffer or still read it), and `stream` waits for all of them, so work
 * enqueued on it afterwards sees the whole path. A path larger than the
 * pack buffers (2 per stream) makes the call wait for earlier copies, and
 * so for that earlier work on `stream`.
 * Nothing is enqueued when a step is missing or the buffer is too small.
 * Errors: STRATA_E_NO_REGION / STRATA_E_NOT_FOUND (naming the step),
 * STRATA_E_BOUNDS (buffer too small), STRATA_E_STATE, STRATA_E_IO.
 * Calls on one store are serialized (they share the pack buffers). */
STRATA_API int strata_stage_path_to_device(const strata_txn *txn,
                                           const strata_layer_ref *refs,
                                           size_t n, void *device_buf,
                                           uint64_t buf_size, uint64_t *offsets,
                                           strata_stream *stream);

/* The GPU-resident layer cache: layers copied to device memory once and
 * served from there, with CLOCK eviction within
 * staging.device_cache_bytes. When a region's layers are read in id
 * order (layer n right after n - 1), the next one is prefetched on the
 * same stream. */
typedef struct strata_device_layer strata_device_layer;

/* Returns a hold on layer `layer_id` of region `region_id` (as `txn` sees
 * it) in device memory, copying it there on a miss (through staging). Work
 * enqueued on `stream` after the call sees the whole layer: a copy is
 * enqueued on that stream, or the stream waits for the copy that made the
 * entry. The memory stays allocated until the hold is released; release
 * it once the device work that reads it has completed. Errors: as
 * strata_stage(), STRATA_E_STATE (no cache configured), STRATA_E_LIMIT
 * (the layer is larger than the cache, or every entry is held). */
STRATA_API int strata_device_cache_get(const strata_txn *txn,
                                       uint64_t region_id, uint64_t layer_id,
                                       strata_stream *stream,
                                       strata_device_layer **out);
STRATA_API const void *strata_device_layer_ptr(const strata_device_layer *dl);
STRATA_API uint64_t strata_device_layer_size(const strata_device_layer *dl);
/* Accepts NULL. */
STRATA_API void strata_device_layer_release(strata_device_layer *dl);

/* Evicts idle staged layers (neither held nor in transfer nor being
 * filled), by the CLOCK policy, until the blocks layers occupy hold at most
 * `keep_bytes` (rounded down to blocks), or no idle layer is left: the way
 * to give pinned memory back to the staging pool's free lists, or to start
 * from an empty staging pool. Hot layers are evicted like the others; the
 * worker may stage them again. Returns how many layers it evicted. Errors:
 * STRATA_E_STATE (no staging pool). */
STRATA_API int strata_staging_trim(strata_store *store, uint64_t keep_bytes);

typedef struct strata_staging_stats {
  const char *backend;     /* "cuda" or "host"; valid until close */
  const char *device_name; /* the GPU, or "host" */
  int numa_node;           /* of the slabs; -1 none */
  uint64_t slabs, slab_bytes, pinned_bytes;
  uint64_t block_size, blocks, blocks_used, blocks_free;
  uint64_t largest_free_run; /* blocks */
  uint32_t fragmentation_permille;
  uint64_t alloc_failures; /* block allocations that found no room */
  uint64_t staged_layers, staged_bytes;
  uint64_t hot_layers, hot_bytes, hot_budget;
  uint64_t shared_blocks;           /* blocks more than one layer uses */
  uint64_t dedup_hits, dedup_bytes; /* pages found already staged */
  uint64_t stage_calls, stage_copied_bytes;
  uint64_t evictions, evicted_bytes;
  uint64_t samples, samples_dropped;
  uint64_t transfers_in_flight, transfers, transfer_bytes;
  uint64_t batches, packed_copies;
  uint64_t device_bytes; /* strata_device_alloc'd, not freed */
  /* The device layer cache. */
  uint64_t dcache_layers, dcache_bytes, dcache_budget;
  uint64_t dcache_hits, dcache_misses, dcache_prefetches, dcache_evictions;
} strata_staging_stats;

/* Errors: STRATA_E_STATE (no staging pool), STRATA_E_INVAL. */
STRATA_API int strata_staging_stats_get(strata_store *store,
                                        strata_staging_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_STAGING_H */
