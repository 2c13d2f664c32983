/* Strata regions: opening a region file and looking layers up in it.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_REGION_H
#define STRATA_PUBLIC_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "strata/errors.h"
#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* strata_region (<strata/types.h>) is an open region file. */

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
  /* Validate the whole index at open (every entry and locator, the counts,
   * the name index and the index checksum), as strata_region_verify()'s
   * structural part does, instead of each chunk of 64 entries on its first
   * use. Costs about 72 bytes read per layer (14-27 ms for a million). */
  STRATA_OPEN_CHECK_INDEX = 1u << 3,
};

/* A layer as seen through an open region. All pointers are borrowed from the
 * mapping (see "Borrowed pointers" in <strata.h>). */
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
  uint32_t flags;    /* layer flags: 0, or STRATA_LAYER_TOMBSTONE */
} strata_layer;

/* Layer flag (format 1.1, delta files only): the entry is a tombstone, the
 * delta's record that the layer with this id was removed. It has no
 * content, name or metadata. The region functions return tombstones like
 * layers, with this flag (a store hides them). */
#define STRATA_LAYER_TOMBSTONE (1u << 0)

/* Facts about an open region, as validated at open. Pointers are borrowed. */
typedef struct strata_region_info {
  const char *path;     /* the path it was opened with */
  uint64_t id;          /* region id */
  const char *name;     /* region name, NUL-terminated, never NULL */
  const char *metadata; /* region metadata (JSON), NUL-terminated; "" if none */
  uint16_t format_major, format_minor;
  uint64_t flags; /* header flags (STRATA_REGION_DENSE_IDS, ...) */
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
/* Header flag (format 1.1): the file is a delta over another file of the
 * same region (docs/FORMAT.md, "Delta files"); strata_region_delta() reads
 * its binding. Bit 2 is not defined. */
#define STRATA_REGION_DELTA (1ull << 3)

/* The binding of a delta file, from its header extension. */
typedef struct strata_region_delta_info {
  uint64_t parent_checksum; /* header checksum of the file it applies over */
  uint64_t base_checksum;   /* header checksum of the base of its stack */
  uint32_t depth;           /* 1 for the first delta over the base */
  uint32_t reserved;        /* 0 */
} strata_region_delta_info;

/* Fills *out with the binding of a delta file (flag STRATA_REGION_DELTA),
 * as validated at open. Whether the parent exists is not checked here: a
 * file alone cannot see it.
 * Errors: STRATA_E_NOT_FOUND for a file that is not a delta (*out is left
 * untouched), STRATA_E_INVAL (NULL argument). Thread-safe; no allocation. */
STRATA_API int strata_region_delta(const strata_region *region,
                                   strata_region_delta_info *out);

/* Opens the region file at `path` (flags: strata_open_flags) and validates
 * what costs O(1): the header (with its checksum), the section table and
 * the region's name and metadata. Each chunk of 64 index entries and their
 * locators is validated on its first use by a lookup, iteration or name
 * lookup (a few hundred nanoseconds, once; concurrent first uses are safe);
 * a layer whose chunk fails gives STRATA_E_CORRUPT (naming the file and the
 * layer) from strata_region_get, _get_data, _read, _get_by_name and
 * _next, and reads as missing in strata_region_get_data_many. The index
 * checksum and the whole-index checks (used-slot and named counts, the
 * name index's order) are strata_region_verify()'s, or open's with
 * STRATA_OPEN_CHECK_INDEX, which then checks everything as it did before
 * (linear in the index size). Either way no read ever leaves the mapping.
 * Opening a million layers reads a few pages and allocates 2 KiB; unless
 * STRATA_OPEN_POPULATE is given, the pages it read are unmapped again
 * before it returns (they stay in the page cache), so an open adds nothing
 * to the process's resident set for the file; lookups map what they read.
 * On success stores a handle in *out.
 * Errors: -errno from open/fstat/mmap (-ENOENT, -EACCES, ...) and, with
 * STRATA_OPEN_POPULATE, from faulting the file in (-EIO, -ENOMEM),
 * STRATA_E_BAD_MAGIC (not a region file), STRATA_E_VERSION (newer major
 * format), STRATA_E_CHECKSUM (header or index checksum mismatch),
 * STRATA_E_CORRUPT (any structural inconsistency), STRATA_E_LIMIT (a size
 * above the format's caps), STRATA_E_INVAL (also for a path that is not a
 * regular file: a FIFO, device, socket or directory is refused without
 * blocking, and the detail names its type), STRATA_E_NOMEM.
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
 * Errors: STRATA_E_NOT_FOUND (out is left untouched), STRATA_E_CORRUPT,
 * STRATA_E_LIMIT or STRATA_E_VERSION when the layer's chunk of the index
 * fails its first-use validation (see strata_region_open). */
STRATA_API int strata_region_get(const strata_region *region, uint64_t id,
                                 strata_layer *out);

/* The lean lookup: only the content. Points *data at layer `id`'s content
 * and stores its length in *size. It reads only the region's compact
 * locator table (plus, for sparse ids, a pilot table small enough to stay in
 * cache), never the 64-byte index entry, so a random lookup costs one cache
 * miss before the content's own. No allocation, no lock, no system call.
 * Errors: STRATA_E_NOT_FOUND (outputs untouched), and those of
 * strata_region_get() for a chunk that fails validation. */
STRATA_API int strata_region_get_data(const strata_region *region, uint64_t id,
                                      const void **data, uint64_t *size);

/* Many lean lookups in one call: for each i < count, points data[i] at the
 * content of layer ids[i] and stores its length in sizes[i], or stores NULL
 * and 0 when the region has no such layer. The lookups are pipelined: the
 * tables each needs are prefetched several ids ahead, so their cache misses
 * overlap instead of following each other, and the first line of each
 * content is prefetched for the caller. Returns the number of ids found
 * (never negative). No allocation, no lock, no system call; records no
 * error detail for misses. A layer whose index chunk fails its first-use
 * validation (strata_region_open) is reported as missing. */
STRATA_API size_t strata_region_get_data_many(const strata_region *region,
                                              const uint64_t *ids, size_t count,
                                              const void **data,
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
 * The view is read without checks, so a lazily opened region's whole
 * position table is validated here first (once; linear in the layer
 * count). Errors: STRATA_E_INVAL for other regions (use
 * strata_region_get_data()), and on big-endian hosts, where the table is not
 * in host byte order; STRATA_E_CORRUPT (or another format error) when an
 * index chunk fails validation. */
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
 * Checks the name bucket it reads and the entry a record points at.
 * Errors: STRATA_E_NOT_FOUND; STRATA_E_CORRUPT for a bad bucket or record,
 * or the errors of strata_region_get() for a chunk that fails. */
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
 * see docs/FORMAT.md) or an index chunk fails its first-use validation
 * (or STRATA_E_LIMIT / STRATA_E_VERSION, as strata_region_get()). The
 * iterator holds no resources. */
typedef struct strata_region_iter {
  const strata_region *region;
  uint64_t pos;
  uint64_t last_id;
} strata_region_iter;

STRATA_API void strata_region_iter_init(const strata_region *region,
                                        strata_region_iter *it);
STRATA_API int strata_region_next(strata_region_iter *it, strata_layer *out);

/* Deep check: first what a lazy open leaves out (the index checksum, every
 * index entry and locator, the used-slot and named counts, the name index's
 * buckets and order: STRATA_E_CHECKSUM, STRATA_E_CORRUPT, STRATA_E_LIMIT or
 * STRATA_E_VERSION, with *bad_id unchanged), then recomputes every layer's
 * content checksum, walks the id order and checks every name lookup. Reads
 * the whole file.
 * Returns 0 when intact. On the first bad layer returns STRATA_E_CHECKSUM
 * (content) or STRATA_E_CORRUPT (its name is not found through the name
 * index, or is shared), stores its id in *bad_id when bad_id is not NULL,
 * and names it in the error detail. When the id order itself is broken
 * (STRATA_E_CORRUPT from iteration) no layer can be named and *bad_id is
 * left unchanged. Same as strata_region_verify_ex(region, NULL, bad_id). */
STRATA_API int strata_region_verify(const strata_region *region,
                                    uint64_t *bad_id);

/* Options of strata_region_verify_ex(). Fill them with
 * strata_verify_options_init() before setting fields: that sets
 * struct_size ("Growing structures" in <strata.h>). */
typedef struct strata_verify_options {
  /* sizeof(strata_verify_options) as the caller was compiled; 0, a size
   * that is not a multiple of 8 and a size larger than the library's are
   * refused with STRATA_E_INVAL. */
  uint32_t struct_size;
  uint32_t flags; /* none defined yet: leave it 0 */
  /* Optional (<strata/types.h>): called with the content bytes and layers
   * checked so far of the region's totals (all layers' sizes, the layer
   * count), after a layer once 4 MiB were checked since the last call,
   * every 4 MiB inside a larger layer, and once at the end, after the
   * name index is checked too (bytes_done == bytes_total). A non-zero
   * return stops the check: strata_region_verify_ex() returns
   * STRATA_E_CANCELED and says nothing of the region (*bad_id is left
   * unchanged). */
  strata_progress_fn progress;
  void *progress_ctx;
  /* New fields are appended here, keeping the size a multiple of 8. */
} strata_verify_options;

/* Fills *options with the defaults (no flags, no progress callback),
 * including struct_size. Thread-safe. */
STRATA_API void strata_verify_options_init(strata_verify_options *options);

/* strata_region_verify() with options: a progress callback, which can
 * cancel (see strata_verify_options). `options` NULL means the defaults;
 * the first options->struct_size bytes are read. Errors: those of
 * strata_region_verify(), STRATA_E_CANCELED, and STRATA_E_INVAL (NULL
 * region, a struct_size this library does not accept, unknown flags).
 * Like every reader of a region, it may run on several threads at once
 * over one region; the callback runs on the calling thread. */
STRATA_API int strata_region_verify_ex(const strata_region *region,
                                       const strata_verify_options *options,
                                       uint64_t *bad_id);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_REGION_H */
