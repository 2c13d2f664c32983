/* Strata stores: a directory of region files served together.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_STORE_H
#define STRATA_PUBLIC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "strata/remote.h"
#include "strata/staging.h"
#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

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
 * Writers outside a store (region-builder, strata_writer) take the same
 * lock with STRATA_WRITER_LOCK_STORE; one that does not is detected when a
 * crystallization would replace its file (STRATA_E_CONFLICT,
 * strata_crystallize()).
 *
 * Files in the directory: every "*.region" file is a region; region files
 * another process wrote are picked up by strata_store_refresh(); temporary
 * files ".*.strata-tmp-XXXXXXXX" left by an interrupted write are removed
 * (with a warning in the log) when no writer holds the lock, but only if
 * they are regular files that are empty or begin with the region magic:
 * other programs' files are never touched; ".strata.lock" is the lock file;
 * ".strata.shm" is the shared view of the processes that have the store
 * open (<strata/processes.h>).
 * Entries named like regions that are not regular files (FIFOs, devices,
 * directories) are skipped with a warning, never opened. */
/* strata_store and strata_proto are declared in <strata/types.h>. */

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

/* Parses a log level as $STRATA_LOG is read: "trace", "debug", "info",
 * "warn" (or "warning"), "error", "off" in any case, or a digit 0 to 5.
 * Returns the STRATA_LOG_* value, or STRATA_E_INVAL for anything else
 * (NULL and "" included). Pure; callable from any thread. The library reads
 * $STRATA_LOG when a store's config.log_level is -1: an unknown level there
 * is logged once per process as a WARN line ("STRATA_LOG: unknown level
 * ...") and WARN is used; the tools refuse it instead (docs/CLI.md). */
STRATA_API int strata_log_level_parse(const char *s);

/* Flags for strata_store_config.flags. */
enum strata_store_flags {
  /* Never write: proto and crystallize calls fail with STRATA_E_STATE, and
   * the lock file is neither created nor taken. The shared view
   * (strata_store_config.shared_view) is not store content: a read-only
   * store still registers in STORE/.strata.shm, creating it if the
   * directory allows, so that other processes see it as a reader; set
   * shared_view to 0 for a store that writes nothing at all. */
  STRATA_STORE_READ_ONLY = 1u << 0,
  /* Check every region's index checksum before strata_store_open()
   * returns. By default open runs every structural check (all that makes a
   * lookup safe) and leaves the checksum, which reads the whole index, to a
   * background thread that withdraws a region whose index does not match
   * (logged at ERROR) moments later; strata_store_refresh() and the first
   * write call wait for that thread. */
  STRATA_STORE_VERIFY_AT_OPEN = 1u << 1,
  /* Bit 2 is taken by a benchmark switch, which is not part of the API
   * (src/common/strata_testing.h): do not reuse it. */
  /* Create the store's directory when it does not exist: its last
   * component only, mode 0755 less the umask. An existing directory is
   * opened as it is. A path that exists but is not a directory is
   * -ENOTDIR, and a missing parent -ENOENT, each with a detail naming the
   * path. When the open fails after creating the directory, the directory
   * is removed again. */
  STRATA_STORE_CREATE = 1u << 3,
  /* Crystallize every region into a whole new base file (NAME.region),
   * never into a delta file over it (docs/ARCHITECTURE.md, "Deltas"): for
   * programs that read the region files themselves, one file per region.
   * Deltas already on disk are still served, and the next crystallization
   * of their region merges them into its new base. */
  STRATA_STORE_NO_DELTAS = 1u << 4,
  /* Compact stacks of deltas on a thread of the store's instead of in
   * strata_crystallize(): a crystallization over a stack of 4 deltas
   * writes another delta (up to 16) and asks the thread to merge the
   * stack into one delta, or rewrite it into a new base, as strata_compact()
   * does, writing at nice +10. So a crystallization waits for a rewrite of
   * its region only when its own changes are a quarter of it, when it has
   * no changes (a crystallization without changes compacts), or when the
   * stack reached 16 (a compactor that cannot keep up). Ignored with
   * STRATA_STORE_NO_DELTAS or STRATA_STORE_READ_ONLY. strata_compact_wait()
   * waits for the thread; strata_store_close() cancels a compaction that
   * is writing (its temporary file is removed; the stack stays) and waits
   * for one past its write. */
  STRATA_STORE_BACKGROUND_COMPACT = 1u << 5,
};

/* A store's configuration. Fill it with strata_store_config_init() before
 * setting fields: that sets struct_size, which lets the structure grow
 * without breaking callers compiled against an older header (see "Growing
 * structures" in <strata.h>). */
typedef struct strata_store_config {
  /* sizeof(strata_store_config) as the caller was compiled; set by
   * strata_store_config_init(). strata_store_open() refuses 0, a size that
   * is not a multiple of the structure's alignment (8 on 64-bit systems),
   * and a size larger than the library's. */
  uint32_t struct_size;
  /* Heap bytes protos may use: the heap pool's blocks in use plus the
   * store's overhead (not the chunks the pool holds in reserve). 0 = the
   * default, a quarter of physical memory. */
  uint64_t memory_limit;
  /* Thresholds, in percent of memory_limit: a warning is logged above
   * warn_pct; above evict_pct protos are crystallized, largest first,
   * until the heap is below warn_pct, and cold region pages are given back
   * to the kernel; a put or removal that would take the heap past
   * refuse_pct first gets an eviction round and then fails with
   * STRATA_E_LIMIT if it still would (what a change adds is what it takes
   * from the pool: often nothing, since layers are packed into chunks of
   * the proto's, at most 1/32 of memory_limit and 1 MiB unless one layer's
   * metadata needs more; sometimes a doubling of the proto's table).
   * Defaults 75, 85, 95. */
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
  /* The staging pool (<strata/staging.h>); all zero (the default) means
   * no staging pool. */
  strata_staging_config staging;
  /* 1 (the default): register this process in the store's shared view,
   * STORE/.strata.shm (<strata/processes.h>), so that other processes see
   * it and its figures; 0: do not. Where the file cannot be created or
   * opened (a read-only directory, another user's file), the store opens
   * without it and logs a WARN. */
  unsigned shared_view;
  unsigned pad_; /* 0; keeps the size a multiple of 8 */
  /* The store's remote (<strata/remote.h>, docs/REMOTE.md): role NONE (the
   * default) for none. Its strings are read during strata_store_open()
   * only. */
  strata_remote_config remote;
  /* New fields are appended here, never inserted, and the size stays a
   * multiple of 8 with no tail padding (add an explicit pad field), so that
   * an older caller's struct_size always ends between fields. */
} strata_store_config;

/* Fills *config with the defaults (what a NULL config means), including
 * struct_size. Thread-safe. */
STRATA_API void strata_store_config_init(strata_store_config *config);

/* Opens the store in directory `dir` (which must exist, unless
 * STRATA_STORE_CREATE is set: then an empty store is created): every region
 * file in it is mapped and validated, in parallel. A region file that fails
 * validation, or whose region id or name another file already has, is
 * skipped with a WARN log line naming the file and the reason; the others
 * are served. config may be NULL (the defaults); otherwise the first
 * config->struct_size bytes of it are read, and the fields past them get
 * their defaults.
 * Errors: STRATA_E_INVAL (bad config, or a struct_size this library does
 * not accept: the detail names strata_store_config or
 * strata_staging_config), -errno (the directory: -ENOENT,
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
 * disappeared are dropped, and a file whose size changed since it was
 * mapped (truncated in place) is withdrawn with a WARN; snapshots open
 * before the refresh keep their mapping and can still fault on it (the
 * caveats of strata.h). Regions that have a proto in this process are left
 * alone. Where two files claim one region id or name, the file served is
 * the one every process and every open serves (docs/ARCHITECTURE.md,
 * "Conflicting region files"), and each other one is logged at WARN and
 * listed in the state dump's "conflicts". Errors: -errno reading the
 * directory, STRATA_E_NOMEM (then the catalog is unchanged); a file that
 * fails validation is skipped and logged, as at open. On a remote
 * follower's store (<strata/remote.h>) it does nothing and returns 0: the
 * follower alone moves that catalog, one whole version at a time, and a
 * scan in the middle of a version change would serve a mixture. */
STRATA_API int strata_store_refresh(strata_store *store);

/* Frees what ended snapshots no longer reach. With `wait`, first waits
 * until every snapshot open at the time of the call has ended. The store
 * also does this on every write call. Must not be called with `wait` while
 * this thread holds a snapshot of the store (it would wait for itself:
 * returns STRATA_E_STATE). */
STRATA_API int strata_store_reclaim(strata_store *store, int wait);

/* Figures about a store, read at one moment (not a snapshot). */
typedef struct strata_store_stats {
  uint64_t regions; /* regions served (files and protos) */
  uint64_t protos;
  uint64_t heap_bytes; /* held by protos, as memory_limit counts it */
  uint64_t memory_limit;
  uint64_t snapshots_open;
  uint64_t oldest_snapshot_ms; /* age of the oldest open snapshot, 0 if none */
  uint64_t retired_bytes;      /* freed when older snapshots end */
  uint64_t retired_objects;
  uint64_t version; /* changes published so far */
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
  uint64_t chunks; /* chunks held (large row: blocks held) */
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

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_STORE_H */
