/* Strata: a memory-mapped layered region store.
 *
 * Overview
 * --------
 * A *region* is an immutable file holding many *layers*. A layer is a content
 * blob with a numeric id (u64), an optional name (unique within the region)
 * and optional metadata (JSON text). The byte layout is specified in
 * docs/FORMAT.md.
 *
 * strata_region_open() maps a region file with one read-only mmap() and
 * validates, once, everything a later read relies on: header, section
 * bounds, every layer's content bounds, the id and name indexes, and the
 * UTF-8 of every name and metadata string. After that, a lookup is a hash
 * probe that returns pointers into the mapping: no copy, no allocation, no
 * lock, no system call.
 *
 * Regions are written by a strata_writer (the same writer region-builder and
 * crystallization use): layers are streamed to a temporary file in the target
 * directory, the index is appended, the file is fsync()ed and renamed into
 * place, and the directory is fsync()ed. A crash or an error never leaves a
 * partial region under the final name.
 *
 * Errors
 * ------
 * Functions that can fail return 0 on success and a negative code on error:
 * -errno for system failures, STRATA_E_* (see <strata/errors.h>) otherwise.
 * Every failure also records a per-thread detail message naming the file,
 * layer and offsets concerned; read it with strata_last_error_detail()
 * before the next Strata call on the same thread.
 *
 * Borrowed pointers
 * -----------------
 * Every pointer a region hands out (layer data, names, metadata, the region's
 * own name and metadata) points into the read-only mapping. It stays valid
 * until strata_region_close() is called on that region. Callers must not
 * write through it (the pages are mapped PROT_READ: a write faults) and must
 * not free it.
 *
 * Concurrency
 * -----------
 * An open strata_region is immutable: any number of threads may call the
 * lookup, iteration and verify functions on it at once without locking.
 * strata_region_close() must not run concurrently with any other use of the
 * same handle. A strata_writer is used by one thread at a time.
 *
 * Caveats
 * -------
 * - Region files must never be modified in place. A file that is truncated or
 *   overwritten by another process while it is mapped can make an access to
 *   the mapping raise SIGBUS (truncation) or return changed bytes. Strata
 *   itself only ever creates new files and renames them into place.
 * - A mapping survives fork(); the child may keep reading, but must not close
 *   a region the parent still uses through shared state of its own.
 * - Checksums of layer contents are verified on demand by
 *   strata_region_verify(), never on the lookup path.
 */
#ifndef STRATA_H
#define STRATA_H

#include <stddef.h>
#include <stdint.h>

#include "strata/errors.h"
#include "strata/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(STRATA_STATIC_DEFINE)
#define STRATA_API
#elif defined(__GNUC__)
#define STRATA_API __attribute__((visibility("default")))
#else
#define STRATA_API
#endif

/* ---------------------------------------------------------------------- */
/* Version and errors                                                     */
/* ---------------------------------------------------------------------- */

/* Returns the library version as "MAJOR.MINOR.PATCH". Never NULL. */
STRATA_API const char *strata_version_string(void);
/* Returns STRATA_VERSION_HEX of the library actually linked. */
STRATA_API unsigned strata_version(void);

/* Returns a static, human-readable message for an error code (Strata codes
 * and -errno values alike). Never NULL. */
STRATA_API const char *strata_strerror(int err);
/* Returns the symbolic name of an error code, e.g. "STRATA_E_CORRUPT" or
 * "ENOSPC". Never NULL ("UNKNOWN" for codes it does not know). */
STRATA_API const char *strata_err_name(int err);
/* Returns the detail message of the most recent failure on this thread, e.g.
 * "regions/docs.region: layer 17: content [4096, +9000) ends past data
 * section end 8192". The string is owned by the library and valid until the
 * next Strata call on this thread. "" when nothing failed yet. Successful
 * calls do not clear it: read it only after a call returned an error. */
STRATA_API const char *strata_last_error_detail(void);

/* ---------------------------------------------------------------------- */
/* Regions                                                                */
/* ---------------------------------------------------------------------- */

typedef struct strata_region strata_region;

/* Flags for strata_region_open(). */
enum strata_open_flags {
  STRATA_OPEN_DEFAULT = 0,
  /* madvise(MADV_RANDOM) on the content: lookups jump around, so the kernel
   * should not read ahead. */
  STRATA_OPEN_RANDOM = 1u << 0,
  /* madvise(MADV_SEQUENTIAL) on the content: layers are read in file order. */
  STRATA_OPEN_SEQUENTIAL = 1u << 1,
  /* Fault the whole file in at open (MADV_POPULATE_READ where the kernel
   * has it, MADV_WILLNEED otherwise), so that I/O errors surface here. */
  STRATA_OPEN_POPULATE = 1u << 2,
};

/* A layer as seen through an open region. All pointers are borrowed from the
 * mapping (see "Borrowed pointers" above). */
typedef struct strata_layer {
  uint64_t id;
  const void *data;     /* content; aligned to the region's data_align or
                           the page size, whichever is smaller (the file
                           offset is a multiple of data_align) */
  uint64_t size;        /* content length in bytes (may be 0) */
  const char *name;     /* NUL-terminated; NULL when the layer has no name */
  size_t name_len;      /* 0 when the layer has no name */
  const char *metadata; /* NUL-terminated JSON text; NULL when none */
  size_t metadata_len;
  uint64_t checksum; /* XXH3-64 of the content, as stored in the index */
  uint32_t flags;    /* layer flags; 0 in format 1.0 */
} strata_layer;

/* Facts about an open region, as validated at open. Pointers are borrowed. */
typedef struct strata_region_info {
  const char *path;     /* the path it was opened with */
  uint64_t id;          /* region id */
  const char *name;     /* region name, NUL-terminated, never NULL */
  const char *metadata; /* region metadata (JSON), NUL-terminated; "" if none */
  uint16_t format_major, format_minor;
  uint64_t flags;       /* header flags (STRATA_REGION_DENSE_IDS, ...) */
  uint64_t layer_count;
  uint64_t named_count; /* layers that have a name */
  uint64_t file_size;
  uint64_t data_offset, data_size; /* the content section */
  uint64_t index_offset;           /* start of the index sections */
  uint32_t data_align;             /* alignment of every content blob */
  uint64_t header_checksum, index_checksum;
} strata_region_info;

/* Header flag: ids are base, base+1, ..., base+n-1 and are looked up by
 * direct indexing instead of the hash index. */
#define STRATA_REGION_DENSE_IDS (1ull << 0)
/* Header flag (dense regions only): the contents are stored in id order, so
 * the lookup table is n + 1 positions of 8 bytes, like a bare offset array,
 * instead of 16-byte {offset, size} locators. The writer sets it whenever
 * layers were added in ascending id order. */
#define STRATA_REGION_PACKED_LOCATORS (1ull << 1)

/* Opens and validates the region file at `path` (flags: strata_open_flags).
 * On success stores a handle in *out.
 * Errors: -errno from open/fstat/mmap (-ENOENT, -EACCES, ...) and, with
 * STRATA_OPEN_POPULATE, from faulting the file in (-EIO, -ENOMEM),
 * STRATA_E_BAD_MAGIC (not a region file), STRATA_E_VERSION (newer major
 * format), STRATA_E_CHECKSUM (header or index checksum mismatch),
 * STRATA_E_CORRUPT (any structural inconsistency), STRATA_E_LIMIT (a size
 * above the format's caps), STRATA_E_INVAL, STRATA_E_NOMEM.
 * Thread-safe. */
STRATA_API int strata_region_open(const char *path, unsigned flags,
                                  strata_region **out);

/* Unmaps and frees the region. Every pointer obtained from it becomes
 * invalid. Accepts NULL. Must not race with other uses of the handle. */
STRATA_API void strata_region_close(strata_region *region);

/* Fills *info. Errors: STRATA_E_INVAL. */
STRATA_API int strata_region_info_get(const strata_region *region,
                                      strata_region_info *info);

/* Number of layers in the region. */
STRATA_API uint64_t strata_region_layer_count(const strata_region *region);

/* Looks up a layer by id and fills *out with borrowed pointers: content,
 * name, metadata and checksum. Besides the locator it reads the layer's
 * 64-byte index entry; the content pointer does not wait for that read.
 * No allocation, no lock, no system call.
 * Errors: STRATA_E_NOT_FOUND (out is left untouched). */
STRATA_API int strata_region_get(const strata_region *region, uint64_t id,
                                 strata_layer *out);

/* The lean lookup: only the content. Points *data at layer `id`'s content
 * and stores its length in *size. It reads only the region's compact
 * locator table (plus, for sparse ids, a pilot table small enough to stay in
 * cache), never the 64-byte index entry, so a random lookup costs one cache
 * miss before the content's own. No allocation, no lock, no system call.
 * Errors: STRATA_E_NOT_FOUND (outputs untouched). */
STRATA_API int strata_region_get_data(const strata_region *region, uint64_t id,
                                      const void **data, uint64_t *size);

/* Many lean lookups in one call: for each i < count, points data[i] at the
 * content of layer ids[i] and stores its length in sizes[i], or stores NULL
 * and 0 when the region has no such layer. The lookups are pipelined: the
 * tables each needs are prefetched several ids ahead, so their cache misses
 * overlap instead of following each other, and the first line of each
 * content is prefetched for the caller. Returns the number of ids found
 * (never negative). No allocation, no lock, no system call; records no
 * error detail for misses. */
STRATA_API size_t strata_region_get_data_many(const strata_region *region,
                                              const uint64_t *ids,
                                              size_t count, const void **data,
                                              uint64_t *sizes);

/* A view of a dense region's lookup table for hot loops: with it,
 * strata_dense_get() below is inlined into the caller and costs what a bare
 * offset array costs (a subtraction, a bounds check, two adjacent loads),
 * without a call into the library. Valid while the region is open; the
 * pointers are borrowed from the mapping like every other. */
typedef struct strata_dense_view {
  const uint8_t *data;      /* the content section */
  const uint64_t *pos;      /* n + 1 positions (docs/FORMAT.md) */
  uint64_t first_id, count; /* ids first_id .. first_id + count - 1 */
  uint64_t align_mask;      /* data_align - 1 */
} strata_dense_view;

/* Fills *view for a region whose ids are dense and whose contents are in
 * id order (flags STRATA_REGION_DENSE_IDS | STRATA_REGION_PACKED_LOCATORS;
 * the writer produces that whenever layers are added in ascending id order).
 * Errors: STRATA_E_INVAL for other regions (use strata_region_get_data()),
 * and on big-endian hosts, where the table is not in host byte order. */
STRATA_API int strata_region_dense_view(const strata_region *region,
                                        strata_dense_view *view);

/* strata_region_get_data() through a view, inline. Returns 0 or
 * STRATA_E_NOT_FOUND; unlike the library calls it records no error detail
 * (it cannot: it never enters the library). */
static inline int strata_dense_get(const strata_dense_view *view, uint64_t id,
                                   const void **data, uint64_t *size) {
  uint64_t i = id - view->first_id; /* ids below first_id wrap past count */
  if (i >= view->count)
    return STRATA_E_NOT_FOUND;
  uint64_t start = (view->pos[i] + view->align_mask) & ~view->align_mask;
  *data = view->data + start;
  *size = view->pos[i + 1] - start;
  return 0;
}

/* Looks up a layer by name (name_len bytes, need not be NUL-terminated).
 * Errors: STRATA_E_NOT_FOUND. */
STRATA_API int strata_region_get_by_name(const strata_region *region,
                                         const char *name, size_t name_len,
                                         strata_layer *out);

/* Partial read: points *out at bytes [offset, offset+len) of layer `id`.
 * Errors: STRATA_E_NOT_FOUND, STRATA_E_BOUNDS (the range ends past the
 * layer's end, or offset+len overflows). */
STRATA_API int strata_region_read(const strata_region *region, uint64_t id,
                                  uint64_t offset, uint64_t len,
                                  const void **out);

/* Iteration in ascending id order:
 *
 *   strata_region_iter it;
 *   strata_region_iter_init(region, &it);
 *   while ((rc = strata_region_next(&it, &layer)) > 0) { ... }
 *   if (rc < 0) ...error...
 *
 * strata_region_next() returns 1 and fills *out, 0 when every layer has been
 * returned, or STRATA_E_CORRUPT if the stored id order of a sparse region
 * is inconsistent (only a crafted file with valid checksums can do that;
 * see docs/FORMAT.md). The iterator holds no resources. */
typedef struct strata_region_iter {
  const strata_region *region;
  uint64_t pos;
  uint64_t last_id;
} strata_region_iter;

STRATA_API void strata_region_iter_init(const strata_region *region,
                                        strata_region_iter *it);
STRATA_API int strata_region_next(strata_region_iter *it, strata_layer *out);

/* Deep check: recomputes every layer's content checksum, walks the id order
 * and checks every name lookup. Reads the whole file.
 * Returns 0 when intact. On the first bad layer returns STRATA_E_CHECKSUM
 * (content) or STRATA_E_CORRUPT (its name is not found through the name
 * index, or is shared), stores its id in *bad_id when bad_id is not NULL,
 * and names it in the error detail. When the id order itself is broken
 * (STRATA_E_CORRUPT from iteration) no layer can be named and *bad_id is
 * left unchanged. */
STRATA_API int strata_region_verify(const strata_region *region,
                                    uint64_t *bad_id);

/* ---------------------------------------------------------------------- */
/* Writing regions                                                        */
/* ---------------------------------------------------------------------- */

typedef struct strata_writer strata_writer;

/* Called by the writer after each layer and while writing large content, so
 * that tools can show progress. */
typedef void (*strata_progress_fn)(void *ctx, uint64_t bytes_written,
                                   uint64_t layers_written);

typedef struct strata_writer_options {
  uint64_t region_id;
  const char *name;     /* region name: required, 1..255 bytes of UTF-8 */
  const char *metadata; /* region metadata: JSON text, or NULL */
  uint32_t align;       /* content alignment: power of two in [16, 65536];
                           0 means the default, 64 */
  strata_progress_fn progress; /* optional */
  void *progress_ctx;
} strata_writer_options;

/* Starts writing a region that will appear at `path` when committed. The
 * content is streamed to a temporary file in the same directory (O_TMPFILE
 * where the file system supports it, otherwise a ".NAME.tmp-XXXXXXXX" file
 * created with O_EXCL), so memory use is bounded by the index plus one
 * buffer. Errors: STRATA_E_INVAL (bad name, alignment or metadata),
 * STRATA_E_LIMIT, STRATA_E_NOMEM, -errno (the directory, the file). */
STRATA_API int strata_writer_open(const char *path,
                                  const strata_writer_options *options,
                                  strata_writer **out);

/* Adds a whole layer. name and metadata may be NULL. Layers may come in any
 * id order (ascending order gives dense regions the packed lookup table).
 * Errors: STRATA_E_DUPLICATE (id or name seen before), STRATA_E_INVAL (bad
 * UTF-8, empty name, metadata that is not JSON), STRATA_E_LIMIT,
 * STRATA_E_STATE (inside another layer, or an earlier write failed),
 * STRATA_E_NOMEM, -errno from write. A rejected layer leaves the writer as
 * it was; a failed write leaves it usable only for abort. */
STRATA_API int strata_writer_add(strata_writer *w, uint64_t id,
                                 const char *name, const char *metadata,
                                 const void *data, size_t size);

/* Streams a layer in pieces: begin, any number of appends, end. The errors
 * are those of strata_writer_add(): begin checks the id, name and metadata;
 * append and end return STRATA_E_STATE outside a layer or after a failed
 * write, and -errno when a write fails. */
STRATA_API int strata_writer_begin_layer(strata_writer *w, uint64_t id,
                                         const char *name,
                                         const char *metadata);
STRATA_API int strata_writer_append(strata_writer *w, const void *data,
                                    size_t size);
/* Appends `size` zero bytes, as a hole in the file where possible. */
STRATA_API int strata_writer_append_zeros(strata_writer *w, uint64_t size);
STRATA_API int strata_writer_end_layer(strata_writer *w);

/* Writes the index and header, fsync()s the file, renames it to the final
 * path (replacing an existing file) and fsync()s the directory. The file is
 * created read-only (mode 0444): region files are never modified. Before the
 * rename the written file is mapped and validated like strata_region_open()
 * does, so a region that commit publishes always opens.
 * Errors: STRATA_E_STATE (inside a layer, or an earlier write failed),
 * STRATA_E_LIMIT (no hash seed places the ids, or too many sparse ids),
 * STRATA_E_NOMEM, -errno (write, fsync, link, rename), or the validator's
 * codes. In every case but one nothing appears at the final path: when only
 * the fsync of the directory after the rename fails, the new file is in
 * place (and the detail says so) but may not survive a crash. Frees the
 * writer whatever the outcome; on failure nothing appears at the final path
 * and the temporary file is removed. A failed fsync is never retried. */
STRATA_API int strata_writer_commit(strata_writer *w);

/* Discards everything written and frees the writer. Accepts NULL. */
STRATA_API void strata_writer_abort(strata_writer *w);

/* Path the temporary file has whenever it is visible in the directory: for
 * the whole write with the O_EXCL fallback, or only between linkat() and
 * rename() at commit with O_TMPFILE. Fixed at strata_writer_open(), never
 * changed or freed before commit/abort, so a signal handler may read it and
 * unlink() it (harmless when the file has no name at that moment). NULL for
 * a NULL writer. */
STRATA_API const char *strata_writer_temp_path(const strata_writer *w);

/* ---------------------------------------------------------------------- */
/* Stores                                                                 */
/* ---------------------------------------------------------------------- */

/* A store is a directory of region files served together, plus the
 * proto-regions (mutable, heap-resident regions) of the one writer.
 *
 * Readers work inside a snapshot (strata_read_begin() .. strata_read_end()).
 * Inside it they see one consistent state of the whole store: every change
 * published by a writer (a put, a remove, a crystallization, a refresh) is
 * either entirely visible or not at all, and nothing changes under them.
 * Reading takes no lock, performs no atomic read-modify-write on shared
 * memory, allocates nothing and makes no system call. Memory that a change
 * replaced (an old region mapping, a proto's superseded layers) is freed
 * only after every snapshot that could reach it has ended.
 *
 * Writers (strata_proto_*, strata_crystallize(), strata_store_refresh())
 * are serialized by a mutex inside the store, so any thread may call them.
 * Across processes, one process at a time may write: the first write call
 * takes an advisory lock (flock) on STORE/.strata.lock and keeps it until
 * strata_store_close(); another process gets STRATA_E_LOCKED naming the pid
 * that holds it. Taking the lock refreshes the store (as
 * strata_store_refresh() does), so that a proto starts from the region files
 * as they are then, including what another writer crystallized since this
 * store was opened. Any number of processes may read; a reader process sees
 * regions another process crystallized after strata_store_refresh().
 *
 * Files in the directory: every "*.region" file is a region; region files
 * another process wrote are picked up by strata_store_refresh(); temporary
 * files ".*.tmp-XXXXXXXX" left by an interrupted write are removed when no
 * writer holds the lock; ".strata.lock" is the lock file. */
typedef struct strata_store strata_store;
typedef struct strata_proto strata_proto;

/* Log levels, for strata_store_config.log_level and the log callback. */
enum strata_log_level {
  STRATA_LOG_TRACE = 0,
  STRATA_LOG_DEBUG = 1,
  STRATA_LOG_INFO = 2,
  STRATA_LOG_WARN = 3,
  STRATA_LOG_ERROR = 4,
  STRATA_LOG_OFF = 5,
};

/* Receives one log event: `line` is a complete line without the newline,
 * "2026-11-22T21:04:05.123Z WARN store: msg=\"...\" key=value ...". Called
 * from whichever thread logged, possibly several at once, sometimes with
 * the store's internal locks held: it must not call back into the store. */
typedef void (*strata_log_fn)(void *ctx, int level, const char *line);

/* Flags for strata_store_config.staging_flags. */
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
  /* Slabs from cudaHostAlloc instead of NUMA-local memory registered with
   * cudaHostRegister (to measure one against the other). */
  STRATA_STAGING_DRIVER_ALLOC = 1u << 3,
  /* No background worker: hot layers are staged, and the pool evicts,
   * only when strata_staging_tick() is called. */
  STRATA_STAGING_NO_WORKER = 1u << 4,
};

/* Flags for strata_store_config.flags. */
enum strata_store_flags {
  /* Never write: proto and crystallize calls fail with STRATA_E_STATE, and
   * the lock file is neither created nor taken. */
  STRATA_STORE_READ_ONLY = 1u << 0,
  /* Check every region's index checksum before strata_store_open()
   * returns. By default open runs every structural check (all that makes a
   * lookup safe) and leaves the checksum, which reads the whole index, to a
   * background thread that withdraws a region whose index does not match
   * (logged at ERROR) moments later; strata_store_refresh() and the first
   * write call wait for that thread. */
  STRATA_STORE_VERIFY_AT_OPEN = 1u << 1,
  /* Do not count gets, misses and bytes served (strata_read_stats_get()
   * then reports zeros for them). The counting costs little: this flag
   * exists to measure that. */
  STRATA_STORE_NO_READ_STATS = 1u << 2,
};

typedef struct strata_store_config {
  /* Heap bytes protos and pools may use. 0 = the default, a quarter of
   * physical memory. */
  uint64_t memory_limit;
  /* Thresholds, in percent of memory_limit: a warning is logged above
   * warn_pct; above evict_pct the largest proto is crystallized and cold
   * region pages are given back to the kernel; above refuse_pct puts fail
   * with STRATA_E_LIMIT. Defaults 75, 85, 95. */
  unsigned warn_pct, evict_pct, refuse_pct;
  /* STRATA_LOG_*; -1 = the STRATA_LOG environment variable (trace, debug,
   * info, warn, error, off), or WARN when it is not set. */
  int log_level;
  strata_log_fn log_fn; /* NULL = lines to stderr */
  void *log_ctx;
  /* Threads that may hold a snapshot of this store at the same time (each
   * thread takes one reader slot on its first strata_read_begin() and keeps
   * it until it exits). Default 1024. */
  uint32_t max_readers;
  /* A snapshot older than this is reported in the log (once per snapshot
   * age doubling) when a writer waits on it. 0 = the default, 10000 ms. */
  uint64_t snapshot_warn_ms;
  unsigned flags;        /* strata_store_flags */
  unsigned open_threads; /* threads validating regions at open; 0 = CPUs */
  /* The staging pool (see "Staging" below); every 0 means the default.
   * staging_bytes: pinned host memory for it; 0 = no staging pool (the
   * staging calls then fail with STRATA_E_STATE). Rounded up to whole
   * blocks; split into slabs of at most 1 GiB. */
  uint64_t staging_bytes;
  /* Block size: a power of two, 4 KiB .. 64 MiB; default 64 KiB. */
  uint32_t staging_block_size;
  uint32_t staging_streams; /* transfer streams; default 3 */
  int staging_device;       /* CUDA device ordinal; default 0 */
  unsigned staging_flags;   /* strata_staging_flags */
  /* Eviction starts when used blocks pass staging_high_pct of the pool
   * and frees staging_evict_pct of it. Defaults 80 and 20. */
  unsigned staging_high_pct, staging_evict_pct;
  /* A layer is hot after this many sampled reads (counts halve every
   * second, so this is a rate); default 4. */
  uint32_t staging_hot_threshold;
  /* One read in this many (a power of two) is sampled; default 64. */
  uint32_t staging_sample_period;
  /* Bytes hot layers may occupy; default half the pool. */
  uint64_t staging_hot_budget;
  /* Size of the pinned buffers batches of small or cold layers are packed
   * into before each copy to the device; default 2 MiB. */
  uint64_t staging_pack_bytes;
  /* Device memory the GPU-resident layer cache (strata_device_cache_get)
   * may use; 0 = no cache. */
  uint64_t staging_device_cache_bytes;
} strata_store_config;

/* Fills *config with the defaults (what a NULL config means). */
STRATA_API void strata_store_config_init(strata_store_config *config);

/* Opens the store in directory `dir` (which must exist): every region file
 * in it is mapped and validated, in parallel. A region file that fails
 * validation, or whose region id or name another file already has, is
 * skipped with a WARN log line naming the file and the reason; the others
 * are served. config may be NULL.
 * Errors: STRATA_E_INVAL (bad config), -errno (the directory: -ENOENT,
 * -ENOTDIR, -EACCES), STRATA_E_NOMEM. Thread-safe. */
STRATA_API int strata_store_open(const char *dir,
                                 const strata_store_config *config,
                                 strata_store **out);

/* Waits until no snapshot is open (it must not be called while this thread
 * holds one), frees everything, and releases the writer lock. Un-crystallized
 * proto content is lost: crystallize first. Proto handles become invalid.
 * Accepts NULL. Must not run concurrently with any other call on the store,
 * and threads that used the store must not exit while it runs. */
STRATA_API void strata_store_close(strata_store *store);

/* Rescans the directory: region files that appeared or changed on disk
 * (another process crystallized them) are opened and published, files that
 * disappeared are dropped. Regions that have a proto in this process are
 * left alone. Errors: -errno reading the directory, STRATA_E_NOMEM; a file
 * that fails validation is skipped and logged, as at open. */
STRATA_API int strata_store_refresh(strata_store *store);

/* Frees what ended snapshots no longer reach. With `wait`, first waits
 * until every snapshot open at the time of the call has ended. The store
 * also does this on every write call. Must not be called with `wait` while
 * this thread holds a snapshot of the store (it would wait for itself:
 * returns STRATA_E_STATE). */
STRATA_API int strata_store_reclaim(strata_store *store, int wait);

/* Figures about a store, read at one moment (not a snapshot). */
typedef struct strata_store_stats {
  uint64_t regions;            /* regions served (files and protos) */
  uint64_t protos;
  uint64_t heap_bytes;         /* protos and pools, as accounted */
  uint64_t memory_limit;
  uint64_t snapshots_open;
  uint64_t oldest_snapshot_ms; /* age of the oldest open snapshot, 0 if none */
  uint64_t retired_bytes;      /* freed when older snapshots end */
  uint64_t retired_objects;
  uint64_t version;            /* changes published so far */
  uint64_t crystallizations;
  uint64_t crystallize_bytes;    /* content bytes written, all of them */
  uint64_t crystallize_write_ns; /* writing, before fsync, all of them */
  uint64_t crystallize_fsync_ns; /* fsync of file and directory */
  uint64_t evictions;            /* protos crystallized for memory */
  uint64_t puts_refused;         /* puts over refuse_pct */
} strata_store_stats;

/* Fills *stats. Thread-safe; takes the writer mutex briefly. */
STRATA_API int strata_store_stats_get(strata_store *store,
                                      strata_store_stats *stats);

/* One size class of the store's heap pool (proto memory), or, with
 * block_size 0, the blocks too large for any class. */
typedef struct strata_pool_stats {
  uint32_t block_size;
  uint64_t chunks;          /* chunks held (large row: blocks held) */
  uint64_t blocks_total, blocks_used;
  uint64_t bytes_reserved;  /* taken from the system */
  uint64_t bytes_requested; /* asked for by the store */
  double utilization;       /* requested / reserved */
  double fragmentation;     /* free blocks stranded in partly used chunks,
                               as a share of all free blocks */
  uint64_t allocs, frees, failures;
} strata_pool_stats;

/* Fills up to `max` rows (one per size class, then the large row) and
 * returns how many rows there are (may exceed max; rows may be NULL with
 * max 0 to count them). Thread-safe. */
STRATA_API size_t strata_store_pool_stats(strata_store *store,
                                          strata_pool_stats *rows, size_t max);

/* ---- snapshots and reads --------------------------------------------- */

/* A snapshot of a store. It lives in the caller's memory (usually the
 * stack); its fields are private. */
typedef struct strata_txn {
  strata_store *store;
  const void *priv_catalog;
  void *priv_slot;
  uint64_t priv_version;
  /* Read statistics of this snapshot, added to the store's at read_end. */
  uint64_t priv_gets, priv_misses, priv_bytes;
  int priv_count;
} strata_txn;

/* Starts a snapshot: from now until strata_read_end(), every pointer a read
 * through it returns stays valid and unchanged, whatever writers do. The
 * first call on a thread takes a reader slot (the only allocation and lock
 * on the read path, once per thread); later calls take no lock, allocate
 * nothing and make no system call. A thread may hold several snapshots
 * (nested or not); they share its slot, and reclamation waits for the
 * oldest. Errors: STRATA_E_LIMIT (max_readers threads hold slots),
 * STRATA_E_NOMEM (first call on a thread), STRATA_E_INVAL. */
STRATA_API int strata_read_begin(strata_store *store, strata_txn *txn);

/* Ends a snapshot: the pointers it handed out become invalid. Must be called
 * on the thread that began it. Accepts a txn whose begin failed.
 * A strata_txn is used by one thread at a time (lookups update its private
 * counters); threads that read in parallel each begin their own. */
STRATA_API void strata_read_end(strata_txn *txn);

/* Looks up layer `layer_id` of region `region_id` as of the snapshot and
 * fills *out with pointers valid until strata_read_end(txn). A region that
 * has a proto shows the proto's content (its base file plus the changes).
 * Errors: STRATA_E_NO_REGION, STRATA_E_NOT_FOUND (out untouched). No lock,
 * no allocation, no system call. */
STRATA_API int strata_get(const strata_txn *txn, uint64_t region_id,
                          uint64_t layer_id, strata_layer *out);

/* The same with the layer given by name (name_len bytes). */
STRATA_API int strata_get_by_name(const strata_txn *txn, uint64_t region_id,
                                  const char *name, size_t name_len,
                                  strata_layer *out);

/* Finds a region by name (NUL-terminated) in the snapshot and stores its id
 * in *region_id. Errors: STRATA_E_NO_REGION. */
STRATA_API int strata_find_region(const strata_txn *txn, const char *name,
                                  uint64_t *region_id);

/* One step of a path through the store. */
typedef struct strata_layer_ref {
  uint64_t region_id;
  uint64_t layer_id;
} strata_layer_ref;

/* Looks up a path of layers across regions in one call: out[i] is filled
 * for refs[i], or zeroed (data == NULL) when that region or layer does not
 * exist. The index entries of the next lookups are prefetched while the
 * current one completes. Returns the number found. No lock, no allocation,
 * no system call; no error detail for misses. */
STRATA_API size_t strata_get_many(const strata_txn *txn,
                                  const strata_layer_ref *refs, size_t count,
                                  strata_layer *out);

/* A region as a snapshot sees it. Pointers valid until strata_read_end(). */
typedef struct strata_store_region {
  uint64_t id;
  const char *name;
  const char *metadata; /* JSON text, "" if none */
  const char *path;     /* the region file; NULL for a new proto */
  uint64_t layer_count; /* including the proto's changes */
  uint64_t generation;  /* times this region was replaced in this process */
  int has_proto;
  const strata_region *file; /* the mapped file, or NULL */
} strata_store_region;

/* Number of regions in the snapshot; strata_store_region_at() returns them
 * by position 0 .. count-1, in ascending id order. Errors: STRATA_E_BOUNDS. */
STRATA_API uint64_t strata_store_region_count(const strata_txn *txn);
STRATA_API int strata_store_region_at(const strata_txn *txn, uint64_t index,
                                      strata_store_region *out);

/* ---- proto-regions and crystallization --------------------------------- */

/* Creates an empty proto for a new region. Its layers are visible to
 * snapshots that begin after each change, and to nothing else; it becomes a
 * region file with strata_crystallize(). The handle belongs to the store:
 * it stays valid until strata_store_close() or strata_proto_discard().
 * `name` (1..255 bytes of UTF-8 without '/', NUL or a leading '.') also
 * names the file: STORE/NAME.region. metadata may be NULL.
 * Errors: STRATA_E_EXIST (the id or name is taken), STRATA_E_INVAL,
 * STRATA_E_LOCKED (another process writes to the store), STRATA_E_STATE
 * (read-only store), STRATA_E_NOMEM, STRATA_E_LIMIT. Thread-safe. */
STRATA_API int strata_proto_create(strata_store *store, uint64_t region_id,
                                   const char *name, const char *metadata,
                                   strata_proto **out);

/* Returns the proto of region `region_id`, creating one whose starting
 * content is the region file's layers when there is none. The file is never
 * changed; crystallization writes a new one. Errors: STRATA_E_NO_REGION and
 * those of strata_proto_create(). Thread-safe. */
STRATA_API int strata_proto_open(strata_store *store, uint64_t region_id,
                                 strata_proto **out);

/* Adds or replaces layer `layer_id`: the content (copied), name and
 * metadata (JSON) become visible to snapshots that begin after the call
 * returns, all at once. Errors: STRATA_E_DUPLICATE (another layer has that
 * name), STRATA_E_INVAL (bad UTF-8 or JSON), STRATA_E_LIMIT (memory above
 * refuse_pct; the detail gives usage and limit), STRATA_E_NOMEM. A failed
 * put changes nothing. Thread-safe. */
STRATA_API int strata_proto_put(strata_proto *proto, uint64_t layer_id,
                                const char *name, const char *metadata,
                                const void *data, size_t size);

/* Removes layer `layer_id` (a proto layer or one of the base file's).
 * Errors: STRATA_E_NOT_FOUND. Thread-safe. */
STRATA_API int strata_proto_remove(strata_proto *proto, uint64_t layer_id);

/* Drops the proto's changes: the region goes back to its file, or
 * disappears if it had none. Calls with the handle afterwards fail with
 * STRATA_E_STATE (it is freed at strata_store_close()); strata_proto_open()
 * or strata_proto_create() make a new one. Thread-safe. */
STRATA_API int strata_proto_discard(strata_proto *proto);

/* Facts about a proto (under the writer mutex). */
typedef struct strata_proto_info {
  uint64_t region_id;
  uint64_t layers;       /* layers the region has now */
  uint64_t changed;      /* layers put or removed since the base file */
  uint64_t bytes;        /* heap bytes its changes use */
  uint64_t age_ms;       /* since the proto was created or crystallized */
} strata_proto_info;
STRATA_API int strata_proto_info_get(strata_proto *proto,
                                     strata_proto_info *info);

/* Writes region `region_id`'s proto as a region file, with the same writer
 * region-builder uses (temporary file in the store directory, fsync,
 * rename over the old file, fsync of the directory), maps and validates the
 * new file and faults it in, then publishes it with one atomic swap. Open
 * snapshots keep the previous version; its memory (and mapping) is freed
 * after they end. The proto stays attached, empty, over the new file.
 * Any failure (-ENOSPC, -EIO, validation) leaves the proto and the store
 * as they were (readers keep the old file and the proto), and the directory
 * too, with one exception that the error detail names: when the fsync of the
 * directory after the rename fails, the new file (holding exactly the
 * proto's content) is already in place; crystallizing again replaces it.
 * A failed write or fsync is never retried and its file never renamed.
 * Errors: STRATA_E_NO_REGION (no proto for that id), STRATA_E_EXIST (a new
 * region's file name is taken by a file the store does not serve), the
 * writer's errors. Thread-safe. */
STRATA_API int strata_crystallize(strata_store *store, uint64_t region_id);

/* ---- state, statistics and metrics -------------------------------------- */

/* Flags for strata_dump_state(). */
enum strata_dump_flags {
  /* Also list the layer index of every region: id, name, offset, length
   * and checksum of each layer (large for large regions). */
  STRATA_DUMP_VERBOSE = 1u << 0,
};

/* Renders the store's whole state as one JSON document (described by
 * docs/state.schema.json): version and config, memory and its thresholds,
 * regions (files, mappings, resident bytes, generations), protos, the pool,
 * statistics, snapshots and what waits for reclamation. On success *json
 * holds a NUL-terminated string that the caller releases with
 * strata_free(). The regions are those of one snapshot; the figures are
 * read at one moment. Thread-safe. Errors: STRATA_E_INVAL, STRATA_E_NOMEM,
 * STRATA_E_LIMIT (max_readers threads hold slots). */
STRATA_API int strata_dump_state(strata_store *store, unsigned flags,
                                 char **json);

/* The same figures in the Prometheus text exposition format (version
 * 0.0.4): strata_* metrics with HELP and TYPE lines, per-region series
 * labelled region_id and region. Release *text with strata_free(). */
STRATA_API int strata_metrics_text(strata_store *store, char **text);

/* Releases a string returned by strata_dump_state() or
 * strata_metrics_text(). Accepts NULL. */
STRATA_API void strata_free(void *p);

/* Read-side statistics, summed over the reader slots. A snapshot counts in
 * its own strata_txn (the caller's memory) and adds its counts to its
 * thread's slot at strata_read_end(): no shared write on the read path, and
 * the figures cover ended snapshots. */
typedef struct strata_read_stats {
  uint64_t gets;         /* strata_get, _get_by_name and get_many lookups */
  uint64_t misses;       /* of those, layers or regions not found */
  uint64_t bytes_served; /* content bytes of the layers found */
  uint64_t snapshots;    /* outermost snapshots begun */
  uint64_t peak_readers; /* most snapshots seen open at once */
} strata_read_stats;

STRATA_API int strata_read_stats_get(strata_store *store,
                                     strata_read_stats *stats);

/* ---- Staging ---------------------------------------------------------
 *
 * The staging pool keeps copies of hot layers in pinned (page-locked) host
 * memory so that they reach the GPU at full DMA bandwidth, and moves
 * layers into device buffers. It exists when strata_store_config's
 * staging_bytes is not 0.
 *
 * Memory: a few large slabs allocated and pinned once at open, on the
 * GPU's NUMA node, cut into fixed-size blocks. A staged layer occupies
 * one block per block-size page of its content; a layer may be staged in
 * part. Blocks with identical content (XXH3-128) are shared between
 * layers, with reference counts; staged blocks are never written after
 * they are filled, so sharing needs no copy.
 *
 * Hot layers: one read in staging_sample_period is sampled into a ring of
 * the reading thread's own (no shared write on the read path); a worker
 * thread counts the samples, stages layers that pass the threshold within
 * the hot budget, and evicts with a CLOCK policy when the pool passes its
 * high watermark. A staged layer that a strata_staged handle holds, or
 * that a transfer is reading, is never evicted.
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
 * CUDA caveats: staging calls make staging_device the calling thread's
 * current device (cudaSetDevice), and do not restore the previous one;
 * multi-GPU applications set theirs again after a call. Transfers cannot
 * be captured into a CUDA graph (STRATA_E_STATE). The library carries its
 * own static CUDA runtime: it shares the device's primary context (and so
 * pointers and streams) with the application's runtime, and allocates
 * device memory from a pool of its own. */
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
 * STRATA_E_NOT_FOUND, STRATA_E_LIMIT (the pool cannot make room: every
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

/* Device memory from a stream-ordered pool (cudaMallocAsync on the
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
 * staging_pack_bytes, each copied as one transfer while the next fills.
 * The copies are spread over the pool's streams; they start after the
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
                                           uint64_t buf_size,
                                           uint64_t *offsets,
                                           strata_stream *stream);

/* The GPU-resident layer cache: layers copied to device memory once and
 * served from there, with CLOCK eviction within
 * staging_device_cache_bytes. When a region's layers are read in id
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

/* Runs one pass of the hot-layer worker on the calling thread: counts the
 * sampled reads, stages hot layers, evicts over the high watermark.
 * Returns how many layers it staged. Passes are serialized with the
 * worker's. Errors: STRATA_E_STATE. */
STRATA_API int strata_staging_tick(strata_store *store);

/* Evicts idle staged layers (neither held nor in transfer nor being
 * filled), by the CLOCK policy, until the blocks layers occupy hold at most
 * `keep_bytes` (rounded down to blocks), or no idle layer is left: the way
 * to give pinned memory back to the pool's free lists, or to start from an
 * empty pool. Hot layers are evicted like the others; the worker may stage
 * them again. Returns how many layers it evicted. Errors: STRATA_E_STATE
 * (no staging pool). */
STRATA_API int strata_staging_trim(strata_store *store, uint64_t keep_bytes);

typedef struct strata_staging_stats {
  const char *backend;     /* "cuda" or "host"; valid until close */
  const char *device_name; /* the GPU, or "host" */
  int numa_node;           /* of the slabs; -1 none */
  uint64_t slabs, slab_bytes, pinned_bytes;
  uint64_t block_size, blocks, blocks_used, blocks_free;
  uint64_t largest_free_run; /* blocks */
  uint32_t fragmentation_permille;
  uint64_t alloc_failures;   /* block allocations that found no room */
  uint64_t staged_layers, staged_bytes;
  uint64_t hot_layers, hot_bytes, hot_budget;
  uint64_t shared_blocks;    /* blocks more than one layer uses */
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

#endif /* STRATA_H */
