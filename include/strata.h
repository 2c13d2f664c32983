/* Strata: a memory-mapped layered region store.
 *
 * This is the one header applications include. It gives the overview and
 * the rules that hold for the whole API; the declarations are in the
 * sub-headers it includes, one per part, each with its full documentation:
 *
 *   <strata/types.h>     STRATA_API, the opaque handles, progress callbacks
 *   <strata/version.h>   library and file format versions
 *   <strata/errors.h>    error codes, their names, the detail string
 *   <strata/region.h>    opening a region file, lookups, iteration, verify
 *   <strata/writer.h>    writing region files
 *   <strata/store.h>     stores: a directory of regions served together
 *   <strata/snapshot.h>  snapshots (strata_txn), reads and iteration
 *                        through them, paths by id or by name
 *   <strata/proto.h>     proto-regions and crystallization (store writes)
 *   <strata/state.h>     state dump, metrics, read statistics
 *   <strata/processes.h> the shared view: the processes that have a store
 *                        open, read from outside (STORE/.strata.shm)
 *   <strata/staging.h>   the staging pool: pinned copies, GPU transfers
 *
 * Overview
 * --------
 * A *region* is an immutable file holding many *layers*. A layer is a content
 * blob with a numeric id (u64), an optional name (unique within the region)
 * and optional metadata (JSON text). The byte layout is specified in
 * docs/FORMAT.md.
 *
 * strata_region_open() maps a region file with one read-only mmap() and
 * validates, in O(1), the header, the section table and the region's
 * strings; each chunk of 64 index entries (every layer's content bounds,
 * id, locator, name and metadata strings and their UTF-8) is validated on
 * its first use, once, and the whole-index checks (index checksum, counts,
 * name index order) are strata_region_verify()'s (or open's, with
 * STRATA_OPEN_CHECK_INDEX). No read ever leaves the mapping, whatever the
 * file holds: a layer in a chunk that fails is an error naming the file
 * and the layer. After that, a lookup is a hash probe plus one test of the
 * chunk's bit that returns pointers into the mapping: no copy, no
 * allocation, no lock, no system call. A store opens its regions the same
 * way and checks what open left out on a background thread, withdrawing a
 * region that fails; until then a layer in a failing chunk reads as
 * missing through the store.
 *
 * Regions are written by a strata_writer (the same writer region-builder and
 * crystallization use): layers are streamed to a temporary file in the target
 * directory, the index is appended, the file is fsync()ed and renamed into
 * place, and the directory is fsync()ed. A crash or an error never leaves a
 * partial region under the final name.
 *
 * A *store* serves a directory of regions together. Readers see it through
 * *snapshots* (a strata_txn: one consistent state of every region, read
 * without locks); one writer at a time changes it through proto-regions,
 * which crystallization turns into new region files. An optional staging
 * pool keeps hot layers in pinned memory and moves layers to the GPU.
 *
 * Errors
 * ------
 * Functions that can fail return 0 on success and a negative code on error:
 * -errno for system failures, STRATA_E_* (see <strata/errors.h>) otherwise.
 * strata_strerror() and strata_err_name() turn a code into a message and a
 * name. Every failure also records a per-thread detail message naming the
 * file, layer and offsets concerned; read it with strata_last_error_detail()
 * before the next Strata call on the same thread. Each function's comment
 * lists the errors it returns.
 *
 * Borrowed pointers
 * -----------------
 * Pointers the library hands out are borrowed: callers never free them and
 * never write through them. How long each stays valid:
 * - into a region (layer data, names, metadata, the region's own name,
 *   metadata and path, a strata_dense_view): until strata_region_close() on
 *   that region. The pages are mapped PROT_READ: a write faults.
 * - from a snapshot (strata_get() and the other reads of <strata/snapshot.h>,
 *   including a strata_store_region's strings and file): until
 *   strata_read_end() on that snapshot, whatever writers do meanwhile.
 * - a staged copy's pinned memory: until strata_staged_release(); a device
 *   layer's memory: until strata_device_layer_release().
 * - the error detail: until the next Strata call on the same thread.
 * - strata_writer_temp_path(): until the writer's commit or abort.
 * Strings that the caller owns instead (strata_dump_state(),
 * strata_metrics_text()) are released with strata_free().
 *
 * Concurrency
 * -----------
 * Every function's comment says what may run at the same time. In short:
 * - An open strata_region is immutable: any number of threads may call the
 *   lookup, iteration and verify functions on it at once without locking.
 *   strata_region_close() must not run concurrently with any other use of
 *   the same handle.
 * - A strata_writer is used by one thread at a time.
 * - A store may be used from any number of threads. Reads need a snapshot;
 *   a strata_txn is used by one thread at a time and ended on the thread
 *   that began it. Writes (protos, crystallization, refresh) are serialized
 *   by a mutex inside the store. strata_store_close() runs alone.
 * - A staging stream is used by one thread at a time; each staging call
 *   says what else may run with it.
 *
 * Conventions
 * -----------
 * Names passed to a function (a layer's or a region's) are a pointer and a
 * length, `const char *name, size_t name_len`, in lookups and writes alike,
 * so that a name cut out of a larger buffer (a path's components) is passed
 * without a copy. The bytes need not be NUL-terminated. NULL with length 0
 * means "no name" where a name is optional; NULL with a length, and a name
 * with a NUL byte inside its length, are refused with STRATA_E_INVAL (the
 * detail gives the byte's position). Other strings are NUL-terminated: file
 * and directory paths, JSON metadata, and the region name field of
 * strata_writer_options (its comment says why). Names the library hands
 * out (strata_layer, strata_region_info, strata_store_region) are
 * NUL-terminated and carry their length where the structure has room.
 * Changed in 0.2: strata_find_region(), strata_writer_add(),
 * strata_writer_begin_layer(), strata_proto_create() and strata_proto_put()
 * took NUL-terminated names before; each now takes name_len after name.
 * Also changed in 0.2: strata_progress_fn (strata_writer_options.progress)
 * was `void (*)(void *ctx, uint64_t bytes, uint64_t layers)`; it is now
 * `int (*)(void *ctx, const strata_progress *progress)` (<strata/types.h>),
 * whose non-zero return cancels.
 *
 * Growing structures
 * ------------------
 * Configuration structures (strata_store_config, with the
 * strata_staging_config inside it, and strata_writer_options) start with a
 * `struct_size` field that their _init function sets to the size the
 * caller was compiled with. The open functions read only that many bytes:
 * a caller compiled against an older, smaller structure gets the defaults
 * for the fields it does not know; a structure larger than the library
 * knows (a newer header than the library) is refused with STRATA_E_INVAL
 * naming the structure. Always fill a configuration with its _init
 * function before setting fields: a designated initializer leaves
 * struct_size 0, which is refused. A
 * strata_txn's contents are private (<strata/snapshot.h>): its size is
 * fixed, and what the library keeps in it may change.
 *
 * Caveats
 * -------
 * - What breaks a mapping: region files must never be modified in place. A
 *   file that is truncated or overwritten by another process while it is
 *   mapped can make an access to the mapping raise SIGBUS (truncation) or
 *   return changed bytes. An I/O error while a page is faulted in (a failing
 *   disk, a network file system) raises SIGBUS too; STRATA_OPEN_POPULATE
 *   faults the file in at open, where such errors are returned instead.
 *   Strata itself only ever creates new files and renames them into place:
 *   renaming over or unlinking a mapped file is safe (the mapping keeps the
 *   old file). strata_store_refresh() withdraws a region whose file changed
 *   size since it was mapped, so snapshots begun after the refresh are
 *   safe; reads before it, and snapshots open across it, can still fault.
 * - fork(): a mapping survives fork(); the child may keep reading a region,
 *   but must not close a region the parent still uses through shared state
 *   of its own. A store must not be used in a child after fork(): its
 *   background threads (index checksums, the staging worker, host-mode
 *   streams) do not exist there and its mutexes may be held. Every file the
 *   library opens is O_CLOEXEC, so exec() drops them.
 * - File locking: a store's writer lock is an advisory flock() on
 *   STORE/.strata.lock. It excludes other Strata writers on the same host;
 *   it does not stop a process that ignores it, and on network file systems
 *   it is only as good as their flock(). A child forked while the parent
 *   holds the lock shares the lock's open file description until it exits.
 * - The shared view (<strata/processes.h>): STORE/.strata.shm is written by
 *   every process that opens the store, and tells a live slot from a dead
 *   one by an open-file-description lock (F_OFD_SETLK) per slot, on the
 *   same host only. Its figures are what each process wrote: a process
 *   that can write the file can make the view lie, never make a reader
 *   crash.
 * - Symlinks: a region file in a store may be a symlink to a regular file;
 *   the store serves the target. Crystallizing that region replaces the
 *   link itself with a regular file in the store's directory (rename() acts
 *   on the name): the target is never written, and no longer served.
 * - Checksums of layer contents are verified on demand by
 *   strata_region_verify(), never on the lookup path (a remote follower
 *   verifies every file it fetches before serving it).
 * - Remote followers (<strata/remote.h>): the follower store's own
 *   snapshots see one whole version at a time. Another process that opens
 *   a follower's directory as a plain store reads it by directory scan,
 *   and a scan during a version change may see some files of the new
 *   version beside files of the old one: serve from the follower process,
 *   or let the readers refresh only when the follower's local state
 *   (STORE/.strata-remote/state) says it is serving, not switching.
 */
#ifndef STRATA_H
#define STRATA_H

#include "strata/types.h"

#include "strata/errors.h"
#include "strata/version.h"

#include "strata/region.h"
#include "strata/remote.h"
#include "strata/writer.h"

#include "strata/processes.h"
#include "strata/proto.h"
#include "strata/snapshot.h"
#include "strata/staging.h"
#include "strata/state.h"
#include "strata/store.h"

#endif /* STRATA_H */
