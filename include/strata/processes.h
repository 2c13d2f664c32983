/* The shared view of a live store: the processes that have it open.
 *
 * Every process that opens a store (unless strata_store_config.shared_view
 * is 0) registers in STORE/.strata.shm, a small shared file (read and
 * written with pread/pwrite, never mapped, so that no one who can write it
 * can crash a process that uses it), and publishes its figures there: pid,
 * role, open snapshots, reads, crystallizations, memory level and staging use.
 * Other processes read the file without opening the store
 * (strata_processes_read(), `strata readers`), as LMDB's reader table lets
 * mdb_stat -r see every reader. docs/FORMAT.md ("The shared view file") gives
 * the layout, and docs/ARCHITECTURE.md ("The shared view") how liveness is
 * decided.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_PROCESSES_H
#define STRATA_PUBLIC_PROCESSES_H

#include <stddef.h>
#include <stdint.h>

#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* strata_process.role. */
enum strata_process_role {
  STRATA_PROCESS_READER = 1, /* has not taken the store's writer lock */
  STRATA_PROCESS_WRITER = 2, /* holds the writer lock (STORE/.strata.lock),
                                which a store keeps from its first write call
                                until strata_store_close() */
};

/* One live process's registration, as it last published it. The figures
 * are what that process's store handle counted since it opened the store
 * (a process that opened the store twice has two entries). They are
 * published about once a second, at strata_processes_publish() and at
 * close, so they may lag its reads by that much. Nothing in them is
 * trusted: they are what the other process wrote. */
typedef struct strata_process {
  /* The library's sizeof(strata_process) (the elements of the list are
   * laid out by the size the caller passed, see strata_processes_read()). */
  uint32_t struct_size;
  uint32_t role;         /* strata_process_role; 0 when not yet published */
  uint32_t slot;         /* its slot in the file */
  uint32_t memory_level; /* 0 ok, 1 warn, 2 evict, 3 refuse (thresholds of
                            strata_store_config) */
  int64_t pid;
  uint64_t opened_unix_ms;  /* when it opened the store */
  uint64_t updated_unix_ms; /* when it last published */
  uint64_t snapshots_open;
  uint64_t oldest_snapshot_unix_ms; /* when the oldest open one was first
                                       seen (a lower bound); 0 if none */
  uint64_t snapshots;               /* outermost snapshots begun */
  uint64_t gets, misses, bytes_served;
  uint64_t crystallizations, crystallize_bytes, evictions;
  uint64_t heap_bytes, memory_limit;
  /* The staging pool: all 0 when the process has none. */
  uint64_t staging_bytes, staging_used_bytes, staging_layers;
} strata_process;

/* Reads the live processes registered in the store in directory `dir`
 * without opening the store (no region is mapped, nothing is written).
 * On success *list is a malloc'd array of *count elements (NULL and 0 when
 * none is live, or when the directory has no .strata.shm), released with
 * strata_processes_free(); each element is `struct_size` bytes apart, which
 * the caller sets to sizeof(strata_process) as it was compiled, so that a
 * caller built against an older, smaller structure keeps working (fields
 * past its size are left out). Slots of dead processes are skipped (not
 * cleared: strata_processes_check()).
 * Errors: STRATA_E_INVAL (NULL argument, struct_size 0, not a multiple of
 * 8 or larger than the library's), STRATA_E_BAD_SHM (the file is not a
 * valid shared view: wrong magic, version or sizes, truncated, not a
 * regular file, a symbolic link; the detail names the file and offset),
 * -errno opening it (-EACCES), -ENOENT or -ENOTDIR when `dir` is missing
 * or not a directory (the detail names it), STRATA_E_NOMEM. Thread-safe. */
STRATA_API int strata_processes_read(const char *dir, uint32_t struct_size,
                                     strata_process **list, size_t *count);

/* Clears the slots of processes that died without closing the store (as
 * mdb_reader_check does), storing their number in *cleared (may be NULL).
 * A store that opens reuses dead slots by itself: this only makes the
 * file show what is live. Needs write access to .strata.shm. No
 * .strata.shm: 0, nothing cleared. Errors as strata_processes_read().
 * Thread-safe. */
STRATA_API int strata_processes_check(const char *dir, size_t *cleared);

/* Releases a list from strata_processes_read(). Accepts NULL. */
STRATA_API void strata_processes_free(strata_process *list);

/* Publishes this store's figures into its slot now, rather than at the
 * next periodic update. Returns 0, also when the store has no slot (the
 * shared view is off or could not be set up: the log said why).
 * Errors: STRATA_E_INVAL (NULL). Thread-safe. */
STRATA_API int strata_processes_publish(strata_store *store);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_PROCESSES_H */
