/* Strata proto-regions and crystallization: writing to a store.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_PROTO_H
#define STRATA_PUBLIC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates an empty proto for a new region. Its layers are visible to
 * snapshots that begin after each change, and to nothing else; it becomes a
 * region file with strata_crystallize(). The handle belongs to the store:
 * it stays valid until strata_store_close() or strata_proto_discard().
 * The name is the name_len bytes at `name` (need not be NUL-terminated;
 * required: NULL, or an empty name, is STRATA_E_INVAL). It is UTF-8 without
 * '/', NUL or a leading '.', and also names the file:
 * STORE/NAME.region. It may be 1..227 bytes: the file, and the temporary
 * file ".NAME.region.strata-tmp-XXXXXXXX" that crystallization writes
 * first, must fit in a 255-byte file name (fewer where the file system
 * allows fewer). metadata may be NULL.
 * Errors: STRATA_E_EXIST (the id or name is taken), STRATA_E_INVAL,
 * STRATA_E_LOCKED (another process writes to the store), STRATA_E_STATE
 * (read-only store), STRATA_E_NOMEM, STRATA_E_LIMIT (the name is too long:
 * the detail names it and the limit). Thread-safe. */
STRATA_API int strata_proto_create(strata_store *store, uint64_t region_id,
                                   const char *name, size_t name_len,
                                   const char *metadata, strata_proto **out);

/* Returns the proto of region `region_id`, creating one whose starting
 * content is the region file's layers when there is none. The file is never
 * changed; crystallization writes a new one. Errors: STRATA_E_NO_REGION,
 * STRATA_E_LIMIT (the region's file name is over 234 bytes, too long for
 * the temporary file of its crystallization) and those of
 * strata_proto_create(). Thread-safe. */
STRATA_API int strata_proto_open(strata_store *store, uint64_t region_id,
                                 strata_proto **out);

/* Adds or replaces layer `layer_id`: the content (copied), name and
 * metadata (JSON) become visible to snapshots that begin after the call
 * returns, all at once. The name is the name_len bytes at `name` (need not
 * be NUL-terminated); NULL with name_len 0 means no name. metadata is
 * NUL-terminated JSON text, or NULL.
 * Errors: STRATA_E_DUPLICATE (another layer has that
 * name), STRATA_E_INVAL (bad UTF-8 or JSON; an empty name, a NUL byte inside
 * the name: the detail names its position; NULL name with a length),
 * STRATA_E_LIMIT (memory above
 * refuse_pct even after an eviction round; the detail gives usage, what
 * the put would add and the limit), STRATA_E_NOMEM. A failed
 * put changes nothing. Thread-safe. */
STRATA_API int strata_proto_put(strata_proto *proto, uint64_t layer_id,
                                const char *name, size_t name_len,
                                const char *metadata, const void *data,
                                size_t size);

/* Removes layer `layer_id` (a proto layer or one of the base file's).
 * Errors: STRATA_E_NOT_FOUND, STRATA_E_LIMIT (the removal's record would
 * take memory above refuse_pct, as for strata_proto_put), STRATA_E_NOMEM.
 * A failed removal changes nothing. Thread-safe. */
STRATA_API int strata_proto_remove(strata_proto *proto, uint64_t layer_id);

/* Drops the proto's changes: the region goes back to its file, or
 * disappears if it had none. Calls with the handle afterwards fail with
 * STRATA_E_STATE (it is freed at strata_store_close()); strata_proto_open()
 * or strata_proto_create() make a new one. Thread-safe. */
STRATA_API int strata_proto_discard(strata_proto *proto);

/* Facts about a proto (under the writer mutex).
 *
 * `bytes` is the heap the proto holds, counted as
 * strata_store_stats.heap_bytes counts it (whole pool blocks: a 100-byte
 * layer's place counts in the block that holds it): its index tables, the
 * chunks its layer versions are taken from (each whole, as long as any
 * version in it is live: a chunk kept by one live version among superseded
 * ones counts entirely), the content blocks of live layers over 16 KiB,
 * and the history of its layer count. It is what crystallizing or
 * discarding the proto gives back, once the snapshots that read it end,
 * less an empty proto's index (about 1 KiB), and what the memory
 * thresholds' eviction ranks protos by (largest first). It is not the
 * size of the changed layers: it can be larger (partly used chunks, a
 * few versions keeping many chunks) or smaller (changes that are only
 * removals). Superseded versions and replaced tables that wait for their
 * snapshots to end are not counted: they are freed on their own, whatever
 * happens to the proto. */
typedef struct strata_proto_info {
  uint64_t region_id;
  uint64_t layers;  /* layers the region has now */
  uint64_t changed; /* layers put or removed since the base file */
  uint64_t bytes;   /* heap bytes the proto holds (see above) */
  uint64_t age_ms;  /* since the proto was created or crystallized */
} strata_proto_info;
STRATA_API int strata_proto_info_get(strata_proto *proto,
                                     strata_proto_info *info);

/* Writes region `region_id`'s proto as a region file, with the same writer
 * region-builder uses (temporary file in the store directory, fsync,
 * rename over the old file, fsync of the directory), maps and validates the
 * new file and faults it in, then publishes it with one atomic swap. Open
 * snapshots keep the previous version; its memory (and mapping) is freed
 * after they end. The proto stays attached, empty, over the new file.
 * The new file keeps the old file's region id, name, metadata and content
 * alignment (data_align); a region without a file yet gets the writer's
 * default alignment, 64.
 * A small change over a region with a base file is written as a delta
 * file, NAME.k.delta, holding only the changed layers and removals; a
 * larger one, one that would stack more than 4 deltas, one without
 * changes, or any under STRATA_STORE_NO_DELTAS, as a whole new base that
 * merges the deltas, which are then removed (with
 * STRATA_STORE_BACKGROUND_COMPACT, a stack of 4 deltas or more gets
 * another delta, up to 16, and the merge runs on the store's compactor
 * thread; see strata_compact()) (a failure to remove one is
 * logged at WARN only: it is stale by its binding and never served). See
 * docs/ARCHITECTURE.md, "Deltas". What follows about "the file" holds for
 * whichever file is written; the check against another writer covers the
 * base, every delta below, and a delta another writer put on top.
 * Any failure (-ENOSPC, -EIO, validation) leaves the proto and the store
 * as they were (readers keep the old file and the proto), and the directory
 * too, with one exception that the error detail names: when the fsync of the
 * directory after the rename fails, the new file (holding exactly the
 * proto's content) is already in place; crystallizing again replaces it.
 * A failed write or fsync is never retried and its file never renamed.
 * Another writer that does not take the store's lock (see
 * STRATA_WRITER_LOCK_STORE in <strata/writer.h>) may replace or remove the
 * region's file while the proto is open; crystallizing would then undo its
 * change, so just before the rename (and once before writing) the file
 * under the name is compared with the one the proto was merged over (inode,
 * device and size): if it differs, the crystallization fails with
 * STRATA_E_CONFLICT, replacing nothing and keeping the proto. The conflict
 * stands until the proto is discarded (a refresh keeps a region with a
 * proto as it is): strata_proto_discard() and strata_store_refresh() then
 * serve the file on disk, over which a new proto may be opened.
 * Errors: STRATA_E_NO_REGION (no proto for that id), STRATA_E_EXIST (a new
 * region's file name is taken by a file the store does not serve),
 * STRATA_E_CONFLICT (the file under the name was replaced or removed since
 * the proto was merged over it, or a file appeared under a new region's
 * name while it was written; the detail names the path, the region, and
 * what was expected and found), the writer's errors. Thread-safe.
 * Same as strata_crystallize_ex(store, region_id, NULL). */
STRATA_API int strata_crystallize(strata_store *store, uint64_t region_id);

/* Options of strata_crystallize_ex(). Fill them with
 * strata_crystallize_options_init() before setting fields: that sets
 * struct_size ("Growing structures" in <strata.h>). */
typedef struct strata_crystallize_options {
  /* sizeof(strata_crystallize_options) as the caller was compiled; 0, a
   * size that is not a multiple of 8 and a size larger than the library's
   * are refused with STRATA_E_INVAL. */
  uint32_t struct_size;
  uint32_t flags; /* none defined yet: leave it 0 */
  /* Optional (<strata/types.h>): called while the new file is written,
   * with the bytes and layers written so far of the totals: the region's
   * current content (file and proto merged), bytes counting the alignment
   * padding before each layer as the file holds it. It is called after a
   * layer once 8 MiB were written since the last call, every 8 MiB inside
   * a larger layer, and once at the end of the writing (bytes_done ==
   * bytes_total, also for a region without layers), before the fsync and
   * the rename, which cannot be canceled. A non-zero return cancels: the
   * call returns STRATA_E_CANCELED, the temporary file is removed, and
   * the proto and the store are left as they were (the proto can be
   * crystallized again). It runs on the calling thread with the store's
   * writer mutex held: it must not call the store's write functions
   * (strata_proto_*, strata_crystallize*, strata_store_refresh), which
   * would deadlock; snapshots and reads are fine. */
  strata_progress_fn progress;
  void *progress_ctx;
  /* New fields are appended here, keeping the size a multiple of 8. */
} strata_crystallize_options;

/* Fills *options with the defaults (no flags, no progress callback),
 * including struct_size. Thread-safe. */
STRATA_API void
strata_crystallize_options_init(strata_crystallize_options *options);

/* strata_crystallize() with options: a progress callback, which can cancel
 * (see strata_crystallize_options). `options` NULL means the defaults; the
 * first options->struct_size bytes are read. Errors: those of
 * strata_crystallize(), STRATA_E_CANCELED, and STRATA_E_INVAL (a
 * struct_size this library does not accept, unknown flags).
 * Thread-safe. */
STRATA_API int strata_crystallize_ex(strata_store *store, uint64_t region_id,
                                     const strata_crystallize_options *options);

/* Compacts region `region_id`'s stack (its base and the delta files over
 * it) into a new base file, NAME.region, on the calling thread, holding
 * the writer mutex only at the start and for the publication: puts,
 * crystallizations and reads go on while the new base is written. A proto
 * open on the region stays open, over the new base. Deltas crystallized
 * while it wrote are kept: they are rewritten as one delta over the new
 * base (in proportion to them, not to the region), published with it.
 * Crash-safe as a crystallization is: a crash leaves the old stack or the
 * new one, never a mix (docs/ARCHITECTURE.md, "Background compaction").
 * With STRATA_STORE_BACKGROUND_COMPACT the store's compactor thread does
 * this (or merges the deltas into one, when they are small beside the
 * base) whenever a crystallization leaves a stack of 4 deltas or more;
 * its write runs at a lower priority (nice +10) than the caller's threads.
 * Returns 0 also when the region has no deltas (nothing is written).
 * Errors: STRATA_E_NO_REGION, STRATA_E_STATE (a read-only or claimed
 * store, or a proto whose failed crystallization placed a file: crystallize
 * it first), STRATA_E_CONFLICT (the stack changed below its top while the
 * new base was written: a crystallization rewrote it, or another writer
 * replaced a file; nothing was replaced, and compacting again compacts the
 * new stack), STRATA_E_LOCKED, the writer's errors. A failure leaves the
 * store as it was, and the directory too but for stale rebased deltas it
 * removed (files of an earlier compaction that never took their place).
 * Once the new base is renamed into place the compaction stands: a failed
 * removal of an old delta is a WARN (it stays, stale: verify reports it,
 * a later crystallization writing under its name replaces it), and a
 * failed fsync of the directory then keeps every old delta and returns
 * that error, with the new stack (the same content) published.
 * Thread-safe. */
STRATA_API int strata_compact(strata_store *store, uint64_t region_id);

/* Waits until the store's compactor thread (STRATA_STORE_BACKGROUND_COMPACT)
 * has no region queued and none in progress; returns at once without one.
 * Returns 0; STRATA_E_INVAL for a NULL store. Thread-safe, but not with
 * strata_store_close() of the same store. */
STRATA_API int strata_compact_wait(strata_store *store);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_PROTO_H */
