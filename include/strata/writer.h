/* Strata writers: writing region files.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_WRITER_H
#define STRATA_PUBLIC_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* strata_writer (<strata/types.h>) is a region file being written. */

/* Options of a region being written. Fill them with
 * strata_writer_options_init() before setting fields: that sets
 * struct_size, which lets the structure grow without breaking callers
 * compiled against an older header (see "Growing structures" in
 * <strata.h>); a designated initializer leaves struct_size 0, which
 * strata_writer_open() refuses. */
typedef struct strata_writer_options {
  /* sizeof(strata_writer_options) as the caller was compiled; set by
   * strata_writer_options_init(). strata_writer_open() refuses 0, a size
   * that is not a multiple of the structure's alignment (8 on 64-bit
   * systems), and a size larger than the library's. */
  uint32_t struct_size;
  uint64_t region_id;
  /* Region name: required, 1..255 bytes of UTF-8, NUL-terminated. The one
   * name that is not pointer + length (<strata.h>, "Conventions"): it is a
   * field, set once like the structure's other strings, and a length field
   * beside it would change the structure's layout, where fields are only
   * appended. strata_writer_open() copies it. */
  const char *name;
  const char *metadata; /* region metadata: JSON text, or NULL */
  uint32_t align;       /* content alignment: power of two in [16, 65536];
                           0 means the default, 64 */
  /* Optional (<strata/types.h>): called after each layer and every 8 MiB
   * of content appended, with the content bytes (alignment padding
   * included) and the layers written so far; the totals are 0, since the
   * writer does not know them. A non-zero return fails the call that
   * reported (append, append_zeros, end_layer or add) with
   * STRATA_E_CANCELED; the writer can then only be aborted. */
  strata_progress_fn progress;
  void *progress_ctx;
  uint32_t flags; /* STRATA_WRITER_* flags below; 0 by default */
  uint32_t pad_;  /* keeps the size a multiple of 8; leave it 0 */
  /* New fields are appended here, never inserted, and the size stays a
   * multiple of 8 with no tail padding (add an explicit pad field), so that
   * an older caller's struct_size always ends between fields. */
} strata_writer_options;

/* strata_writer_options.flags. */
enum {
  /* When the directory of the path being written is a store's (it holds
   * the lock file ".strata.lock"), take the store's cross-process writer
   * lock at strata_writer_open() and hold it until commit or abort ends
   * the writer, writing this process's pid into the lock file as a store
   * does. While it is held, no store process can begin writing (its first
   * write call gets STRATA_E_LOCKED naming this pid), so no proto is open
   * over a file this writer may replace; and if a store process already
   * holds it, strata_writer_open() fails with STRATA_E_LOCKED and the
   * detail "DIR: store is locked by pid N". A directory without the lock
   * file is not a store (or no process ever wrote to it) and is written
   * without a lock. A writer that does not take the lock may still write
   * into a store: a process whose proto was merged over the file it
   * replaced then gets STRATA_E_CONFLICT when it crystallizes, and nothing
   * is lost (strata_crystallize()). */
  STRATA_WRITER_LOCK_STORE = 1u << 0,
  /* Bulk loads of ids in any order: strata_writer_add() and
   * strata_writer_begin_layer() refuse a repeated id at once only when it
   * repeats the id added just before; any other repeated id is found by
   * strata_writer_commit(), which then fails with STRATA_E_DUPLICATE naming
   * the id and the two layers by the order they were added in (counting
   * from 0), and publishes nothing. Without the flag a repeated id is
   * refused when it is added, which needs an in-memory set of every id as
   * soon as one comes out of ascending order: one cache miss per layer once
   * the set outgrows the caches (issue 19 measured 11-18% of a 4M-layer
   * build with random ids). Commit sorts the ids anyway, and finds a
   * repeat in the sorted order for free. Ids added in ascending order need
   * no set either way. Duplicate names are refused at once with or
   * without it. */
  STRATA_WRITER_CHECK_IDS_AT_COMMIT = 1u << 1,
};

/* Bytes the writer's temporary file name adds to the base name of the path
 * being written: "." before it and ".strata-tmp-" and 8 hex digits after it
 * (the temporary file lives in the same directory, see
 * strata_writer_open()). A base name longer than NAME_MAX minus this cannot
 * be written: the temporary name would overflow the file system's limit.
 * strata_writer_open() checks it; tools may check it earlier, before any
 * work. */
#define STRATA_WRITER_TEMP_NAME_EXTRA 21

/* Fills *options with the defaults (region id 0, no name, no metadata,
 * alignment 64, no progress callback), including struct_size. The name
 * must still be set before strata_writer_open(). Thread-safe. */
STRATA_API void strata_writer_options_init(strata_writer_options *options);

/* Starts writing a region that will appear at `path` when committed. The
 * content is streamed to a temporary file in the same directory (O_TMPFILE
 * where the file system supports it and the file can be named at commit,
 * through linkat() with AT_EMPTY_PATH or /proc/self/fd; otherwise a
 * ".NAME.strata-tmp-XXXXXXXX" file created with O_EXCL), and so is the
 * index at commit. Memory use is a 72-byte record per layer (twice that
 * while commit reorders them, plus the sort's and the perfect hash's
 * arrays, about 60 bytes a layer with sparse ids), the layers' names and
 * metadata, the sets that find a repeated id (about 16 bytes a layer, and
 * only once ids come out of ascending order, unless
 * STRATA_WRITER_CHECK_IDS_AT_COMMIT) or name (about 8 bytes a named
 * layer, and 16 more at commit), and one 1 MiB buffer.
 * The first options->struct_size bytes
 * of the options are read, and the fields past them get their defaults.
 * With STRATA_WRITER_LOCK_STORE the store's writer lock is taken first (see
 * the flag). Errors: STRATA_E_INVAL (NULL path, options or out; bad name,
 * alignment, metadata or flags; a struct_size this library does not accept:
 * the detail names strata_writer_options), STRATA_E_LIMIT (also: a base name
 * longer than NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA bytes),
 * STRATA_E_LOCKED (STRATA_WRITER_LOCK_STORE, another process holds the
 * lock), STRATA_E_NOMEM, -errno (the directory, the lock file, the file). */
STRATA_API int strata_writer_open(const char *path,
                                  const strata_writer_options *options,
                                  strata_writer **out);

/* Adds a whole layer. The name is the name_len bytes at `name` (need not be
 * NUL-terminated); NULL with name_len 0 means no name. metadata is
 * NUL-terminated JSON text, or NULL. Layers may come in any id order
 * (ascending order gives dense regions the packed lookup table).
 * Errors: STRATA_E_DUPLICATE (id or name seen before; with
 * STRATA_WRITER_CHECK_IDS_AT_COMMIT an id only when it repeats the one
 * added just before, the others are found by commit), STRATA_E_INVAL (bad
 * UTF-8, empty name, a NUL byte inside the name (the detail names its
 * position), NULL name with a length, metadata that is not JSON),
 * STRATA_E_LIMIT,
 * STRATA_E_STATE (inside another layer, or an earlier write failed),
 * STRATA_E_NOMEM, -errno from write. A rejected layer leaves the writer as
 * it was; a failed write leaves it usable only for abort. */
STRATA_API int strata_writer_add(strata_writer *w, uint64_t id,
                                 const char *name, size_t name_len,
                                 const char *metadata, const void *data,
                                 size_t size);

/* Streams a layer in pieces: begin, any number of appends, end. The errors
 * are those of strata_writer_add(): begin checks the id, name and metadata;
 * append and end return STRATA_E_STATE outside a layer or after a failed
 * write, and -errno when a write fails. */
STRATA_API int strata_writer_begin_layer(strata_writer *w, uint64_t id,
                                         const char *name, size_t name_len,
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
 * STRATA_E_DUPLICATE (STRATA_WRITER_CHECK_IDS_AT_COMMIT: an id added twice;
 * the detail names it and both layers by the order they were added in),
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

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_WRITER_H */
