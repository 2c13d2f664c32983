/* Strata snapshots: consistent, lock-free reads of a store.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_SNAPSHOT_H
#define STRATA_PUBLIC_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "strata/region.h"
#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A snapshot of a store. "Snapshot" is the concept throughout the API and
 * strata_txn its type, the name LMDB gives a read transaction
 * (docs/ARCHITECTURE.md, "Names", says why the type keeps it). It lives
 * in the caller's memory (usually the stack: beginning a snapshot allocates
 * nothing), so its size is part of the ABI, but its contents are not: the
 * library keeps its own state in the reserved words (the store, the catalog and
 * version the snapshot sees, the thread's reader slot, the snapshot's read
 * counters) and may change what it keeps there without a new major version. Do
 * not read, write or copy it; pass its address. strata_read_begin() initializes
 * it: no initializer is needed. The words are 16, where 9 are used today, so
 * that the library can grow without changing the size. */
#define STRATA_TXN_RESERVED_WORDS 16
typedef struct strata_txn {
  uint64_t reserved_[STRATA_TXN_RESERVED_WORDS];
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
 * on the thread that began it. Accepts a snapshot whose begin failed.
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

/* Finds a region by name (name_len bytes, need not be NUL-terminated) in
 * the snapshot and stores its id in *region_id. Errors: STRATA_E_NO_REGION,
 * STRATA_E_INVAL (NULL argument; a NUL byte inside the name: the detail
 * names its position). No lock, no allocation, no system call. */
STRATA_API int strata_find_region(const strata_txn *txn, const char *name,
                                  size_t name_len, uint64_t *region_id);

/* One step of a path through the store. */
typedef struct strata_layer_ref {
  uint64_t region_id;
  uint64_t layer_id;
} strata_layer_ref;

/* Looks up a path of layers across regions in one call: out[i] is filled
 * for refs[i], or zeroed (data == NULL) when that region or layer does not
 * exist (a layer found has non-NULL data, also when it is empty). The
 * index entries of the next lookups are prefetched while the current one
 * completes. Returns the number found. No lock, no allocation,
 * no system call; no error detail for misses. */
STRATA_API size_t strata_get_many(const strata_txn *txn,
                                  const strata_layer_ref *refs, size_t count,
                                  strata_layer *out);

/* The lean lookup through a snapshot, strata_region_get_data() of the
 * store: points *data at the content of layer `layer_id` of region
 * `region_id` as of the snapshot and stores its length in *size, without
 * reading the layer's name, metadata or checksum (the region file's 64-byte
 * index entry is not touched: one probe of the snapshot's region table, then
 * the file's compact locator table). A region that has a proto shows the
 * proto's content, as strata_get() does: *data and *size are exactly
 * strata_get()'s data and size (a found layer's data is never NULL, also
 * when it is empty). Pointer valid until strata_read_end(txn).
 * Errors: STRATA_E_NO_REGION, STRATA_E_NOT_FOUND (a layer the region never
 * had or its proto removed); on an error *data and *size are untouched and
 * the error detail names the region and the layer. data and size must not
 * be NULL. No lock, no allocation, no system call; on a hit nothing is
 * formatted either. Counted in the read statistics like strata_get(). The
 * txn's rules are strata_get()'s. */
STRATA_API int strata_get_data(const strata_txn *txn, uint64_t region_id,
                               uint64_t layer_id, const void **data,
                               uint64_t *size);

/* Many lean lookups in one call, strata_region_get_data_many() of the
 * store: for each i < count, data[i] and sizes[i] are what
 * strata_get_data() would return for refs[i], or NULL and 0 when that
 * region or layer does not exist. The refs may name any regions in any
 * order, though a run of refs to one region probes the region table once.
 * The lookups are pipelined: the pilot and the locator each ref needs (and
 * the region table's slot, when the snapshot has more than about 500
 * regions) are prefetched several refs ahead, so that their cache misses
 * overlap, and the first line of each content is prefetched for the
 * caller. Returns the number found (never negative);
 * count may be 0. Pointers valid until strata_read_end(txn). No lock, no
 * allocation, no system call; no error detail for misses. The txn's rules
 * are strata_get()'s. */
STRATA_API size_t strata_get_data_many(const strata_txn *txn,
                                       const strata_layer_ref *refs,
                                       size_t count, const void **data,
                                       uint64_t *sizes);

/* One step of a path given by names: the region's name and the layer's,
 * each a pointer and a length (<strata.h>, "Conventions"); the bytes need
 * not be NUL-terminated and are read only during the call. */
typedef struct strata_layer_name_ref {
  const char *region_name;
  size_t region_name_len;
  const char *layer_name;
  size_t layer_name_len;
} strata_layer_name_ref;

/* strata_get_many() with names: out[i] is filled for refs[i] as
 * strata_find_region() then strata_get_by_name() would (a proto's layers
 * included, as of the snapshot), or zeroed (data == NULL) when the region
 * or the layer does not exist, or a name is NULL or holds a NUL byte.
 * Returns the number found. Cost: a region name is found by a scan of the
 * snapshot's regions, done once for each run of refs naming the same region
 * (a path through one region costs one scan); each layer name is one hash
 * probe of the file's name index, plus one of the proto's when the region
 * has one. Pointers valid until strata_read_end(txn). No lock, no
 * allocation, no system call; no error detail for misses. The txn's rules
 * are strata_get()'s. */
STRATA_API size_t strata_get_many_by_name(const strata_txn *txn,
                                          const strata_layer_name_ref *refs,
                                          size_t count, strata_layer *out);

/* strata_get_data() with the layer given by name (name_len bytes, need not
 * be NUL-terminated): *data and *size are exactly strata_get_by_name()'s
 * data and size (a proto's layer of that name, or its removal of the
 * file's layer, wins over the file's). The file's name index and the
 * matching 64-byte index entry are read (the entry holds the name to
 * compare), the locator is not. Pointer valid until strata_read_end(txn).
 * Errors: STRATA_E_NO_REGION, STRATA_E_NOT_FOUND (no layer of that name as
 * of the snapshot; an empty name or one longer than a layer name can be),
 * STRATA_E_INVAL (NULL name); on an error *data and *size are untouched
 * and the error detail names the region and the name. data and size must
 * not be NULL. Counted in the read statistics like strata_get(): a get,
 * a miss when not found (a missing region included). No lock, no
 * allocation, no system call. The txn's rules are strata_get()'s. */
STRATA_API int strata_get_data_by_name(const strata_txn *txn,
                                       uint64_t region_id, const char *name,
                                       size_t name_len, const void **data,
                                       uint64_t *size);

/* strata_get_many_by_name() as lean lookups: for each i < count, data[i]
 * and sizes[i] are what strata_find_region() then
 * strata_get_data_by_name() would return for refs[i], or NULL and 0 when
 * the region or the layer does not exist, or a name is NULL or holds a NUL
 * byte. Returns the number found. Costs, pointer lifetimes and the txn's
 * rules are strata_get_many_by_name()'s. No error detail for misses. */
STRATA_API size_t strata_get_data_many_by_name(
    const strata_txn *txn, const strata_layer_name_ref *refs, size_t count,
    const void **data, uint64_t *sizes);

/* Iteration over a region's layers as a snapshot sees them, in ascending id
 * order: the region file's layers merged with its proto's changes (layers
 * added, replaced and removed), where strata_region_iter (<strata/region.h>)
 * sees only the file.
 *
 *   strata_snapshot_iter it;
 *   if ((rc = strata_snapshot_iter_init(&txn, region_id, &it)) < 0) ...
 *   while ((rc = strata_snapshot_next(&it, &layer)) > 0) { ... }
 *   strata_snapshot_iter_end(&it);
 *   if (rc < 0) ...error...
 *
 * The layers returned are exactly those strata_get() through the same
 * snapshot returns, with the same pointers, valid until
 * strata_read_end(txn) (not only until the next call): what writers do
 * meanwhile (puts, removes, crystallization, reclamation) changes nothing
 * the iterator returns. The iterator must not be used after
 * strata_read_end(txn); it is used by one thread at a time, like the txn.
 * Like strata_txn, it lives in the caller's memory and its contents are
 * private: do not copy it.
 *
 * Cost: for a region without a proto, what strata_region_iter costs: no
 * allocation, no lock, no system call. For a region with a proto, init
 * walks the proto's index once and sorts the layers the proto changed as of
 * the snapshot (O(c log c) for c changed layers) into one allocated array
 * of 8 bytes per layer; each file layer that a proto layer with a smaller
 * id precedes is looked up again by id (one hash probe). Reads through the
 * iterator are not counted in the read statistics. */
typedef struct strata_snapshot_iter {
  uint64_t reserved_[10];
} strata_snapshot_iter;

/* Starts iterating region `region_id` as snapshot `txn` sees it.
 * Errors: STRATA_E_NO_REGION, STRATA_E_NOMEM (the proto's array),
 * STRATA_E_INVAL (NULL argument, or a snapshot that has ended). On failure
 * the iterator is empty: strata_snapshot_next() returns 0 and
 * strata_snapshot_iter_end() does nothing. */
STRATA_API int strata_snapshot_iter_init(const strata_txn *txn,
                                         uint64_t region_id,
                                         strata_snapshot_iter *it);

/* Returns 1 and fills *out with the next layer, 0 when every layer has been
 * returned, or STRATA_E_CORRUPT as strata_region_next() does. At 0 or an
 * error the iterator has released what it held. */
STRATA_API int strata_snapshot_next(strata_snapshot_iter *it,
                                    strata_layer *out);

/* Releases what the iterator holds; needed when the iteration stops before
 * strata_snapshot_next() returned 0 or an error, harmless otherwise, and
 * accepts NULL. Call it before strata_read_end(txn) or after: it touches
 * nothing of the snapshot. */
STRATA_API void strata_snapshot_iter_end(strata_snapshot_iter *it);

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

/* The delta files the snapshot serves over a region's base file
 * (docs/ARCHITECTURE.md, "Deltas"): sets *out to delta `k` (0 is the
 * oldest, of depth 1; strata_region_delta() reads its binding, and
 * strata_region_info_get() its path) and returns 0. A region's depth is
 * the first k that gives STRATA_E_BOUNDS. The region is the one at
 * position `index`, as for strata_store_region_at(). The pointer is
 * valid until strata_read_end(). Errors: STRATA_E_BOUNDS (no region at
 * `index`, or k >= its depth), STRATA_E_INVAL (NULL argument, or a
 * snapshot that has ended). Thread-safe; no allocation. */
STRATA_API int strata_store_region_delta_at(const strata_txn *txn,
                                            uint64_t index, uint32_t k,
                                            const strata_region **out);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_SNAPSHOT_H */
