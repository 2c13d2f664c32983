/* The region layer: an open region file (its header and section table
 * validated at open, its index entries chunk by chunk on first use) and the
 * internal entry points the layers above use. */
#ifndef STRATA_REGION_H
#define STRATA_REGION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"
#include "format/format.h"
#include "strata.h"

/* Index entries (and their locators) are validated in chunks of
 * 2^STRATA__CHUNK_SHIFT: 64 entries cost well under a microsecond to check,
 * and the bitmap needs one bit per 64 entries (2 KiB for a million). */
#define STRATA__CHUNK_SHIFT 6

/* An open region. Everything here is derived from the validated header and
 * section table; an index entry is read only after its chunk is validated
 * (strata__entry_ok). */
struct strata_region {
  const uint8_t *base; /* the mapping */
  uint64_t size;       /* file size == mapping length */
  bool mapped;         /* false when validating a caller's buffer (fuzzing) */
  /* Set before validation for a lazy open: validation then checks only
   * what costs O(1) (header, section table, region strings) and allocates
   * `valid`; the index checksum and the whole-index checks are left to
   * strata__region_check_all() (verify, the store's background verifier). */
  bool lazy;
  /* Lazy regions: bit c set once chunk c of the index passed the per-entry
   * checks. Set with an atomic OR (release) and tested with an acquire
   * load, so concurrent first uses at worst validate a chunk twice. NULL
   * for an eagerly validated region: every entry is already checked. */
  _Atomic uint64_t *valid;
  char *path;

  uint64_t id;
  uint64_t flags;
  uint16_t major, minor;
  uint32_t align;
  uint64_t n;         /* layer count */
  uint64_t entries_n; /* entries in INDEX: n (dense) or slot_count (sparse) */
  uint64_t m;         /* named layer count */
  uint64_t seed;      /* hash seed */
  uint64_t first_id;  /* dense regions: id of entry 0 */
  bool dense;
  bool packed; /* dense with n + 1 u64 positions as locators */

  const uint8_t *data; /* DATA section */
  uint64_t data_size;
  const uint8_t *entries;  /* INDEX: entries_n x 64 bytes */
  const uint8_t *locators; /* entries_n x loc_size */
  uint64_t loc_size;       /* 16 (dense), 24 (sparse); 8 (packed) */
  const uint8_t *pilots;   /* sparse: pilot_count x u16 */
  uint64_t slot_count, pilot_count;
  const uint8_t *id_order;     /* n x u32; NULL when dense */
  const uint8_t *name_buckets; /* (2^name_bits + 1) x u32; NULL when m == 0 */
  unsigned name_bits;
  const uint8_t *name_index; /* m x 16 bytes */
  const char *strings;       /* STRINGS */
  uint64_t strings_size;

  const char *name;
  const char *metadata;
  uint64_t index_offset;
  uint64_t header_checksum, index_checksum;

  /* Delta files (format 1.1): the header extension. header_size is 256,
   * or 320 with delta set; the rest is 0 in other files. */
  uint32_t header_size;
  bool delta;
  uint32_t delta_depth;
  uint64_t delta_parent, delta_base;
};

/* Validates a region image of `size` bytes at `base` and fills *r.
 * `what` names the file in error messages. Used by strata_region_open() on
 * the mapping and by the fuzz targets on a plain buffer. */
int strata__region_validate(strata_region *r, const uint8_t *base,
                            uint64_t size, const char *what);

/* Faults the whole mapping in (MADV_POPULATE_READ, or MADV_WILLNEED on
 * kernels without it), so that an I/O error surfaces now. */
int strata__region_populate(const strata_region *r, const char *path);

/* Recomputes the index checksum (the part of validation that reads the
 * whole index: about 72 bytes per layer) and compares it with the header. */
int strata__region_check_index(const strata_region *r, const char *file);

/* Everything a lazy open left out, in the order an eager open runs it: the
 * index checksum, every entry and locator, the used-slot and named counts,
 * the name index. Marks every chunk valid on success. */
int strata__region_check_all(const strata_region *r, const char *file);

/* Validates chunk c of a lazy region's index and marks it valid; on failure
 * returns the error of the first bad entry (naming file, layer and offsets)
 * and leaves the bit clear, so every later use fails the same way. */
int strata__region_check_chunk(const strata_region *r, uint64_t c);

/* The error behind a lookup of `id` that found nothing: the chunk's error
 * when the id's entry lies in a chunk that fails validation, else 0. */
int strata__region_entry_error(const strata_region *r, uint64_t id);

/* strata_region_open() with internal options: `lazy` (see the field). */
int strata__region_open_ex(const char *path, unsigned flags, bool lazy,
                           strata_region **out);

/* ---- the lookup, inline for the layers above (store_read.c) ------------- */
/* The lookup functions below are always_inline, not just inline: GCC
 * stopped inlining strata__region_find into the store's 15 call sites once
 * lazy validation added its chunk test, and the call (outputs through the
 * stack) cost the store's lean read 1.5-2x the region's on dense ids
 * (issue 18: store-data / strata-data 1.77-2.02 where it was meant to be
 * <= 1.3). */

static inline void strata__prefetch(const void *p) {
  __builtin_prefetch(p, 0, 3);
}

/* Whether the chunk of entry i (< entries_n) is validated already: one
 * load of the chunk bitmap's word and a test, nothing else. */
static inline __attribute__((always_inline)) bool
strata__entry_checked(const strata_region *r, uint64_t i) {
  _Atomic uint64_t *v = r->valid;
  if (v == NULL)
    return true;
  uint64_t c = i >> STRATA__CHUNK_SHIFT;
  uint64_t w = atomic_load_explicit(&v[c >> 6], memory_order_acquire);
  return (w >> (c & 63)) & 1;
}

/* Whether entry i (< entries_n) and its locator may be read: one load and
 * a predicted branch once its chunk is validated; the first use of a chunk
 * validates it out of line. */
static inline __attribute__((always_inline)) bool
strata__entry_ok(const strata_region *r, uint64_t i) {
  if (__builtin_expect(strata__entry_checked(r, i), 1))
    return true;
  return strata__region_check_chunk(r, i >> STRATA__CHUNK_SHIFT) == 0;
}

/* The lookup of strata__region_find(); `validate` false reads an entry
 * whose chunk is not validated yet as a miss instead of validating it, so
 * that the caller's hit path makes no call at all (no registers to save
 * around one): the store's single lookups take that path and go to their
 * out-of-line rest, which validates, on any miss (store_read.c). */
static inline __attribute__((always_inline)) bool
strata__region_find_in(const strata_region *r, uint64_t id, uint64_t *entry,
                       uint64_t *off, uint64_t *size, bool validate) {
  uint64_t i;
  const uint8_t *loc;
  if (r->dense) {
    /* Unsigned wrap makes ids below first_id land past n as well. */
    i = id - r->first_id;
    if (i >= r->n ||
        !(validate ? strata__entry_ok(r, i) : strata__entry_checked(r, i)))
      return false;
    if (r->packed) {
      const uint8_t *pos = r->locators + i * 8;
      uint64_t start =
          (strata__rd64(pos) + r->align - 1) & ~(uint64_t)(r->align - 1);
      *entry = i;
      *off = start;
      *size = strata__rd64(pos + 8) - start;
      return true;
    }
    loc = r->locators + i * STRATA__LOC_SIZE;
  } else {
    uint64_t h = strata__id_hash(id, r->seed);
    uint64_t b = strata__pilot_bucket(h, r->pilot_count);
    i = strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
    if (!(validate ? strata__entry_ok(r, i) : strata__entry_checked(r, i)))
      return false;
    loc = r->locators + i * STRATA__SLOC_SIZE;
    if (strata__rd64(loc + 16) != id ||
        strata__rd64(loc) == STRATA__EMPTY_OFFSET)
      return false;
  }
  *entry = i;
  *off = strata__rd64(loc);
  *size = strata__rd64(loc + 8);
  return true;
}

/* The lookup: on a hit stores the entry number, content offset (in DATA)
 * and size and returns true. Dense regions index the locators directly:
 * packed ones read two adjacent positions, like a bare offset array, others
 * one 16-byte {offset, size}. Sparse ones evaluate the perfect hash (the
 * pilot table is small enough to stay in cache) and read one 24-byte
 * locator, which also holds the id to compare. None reads the 64-byte
 * entry. Inline so that a store lookup makes no call on its hit path. An
 * entry whose chunk fails validation reads as a miss
 * (strata__region_entry_error() then gives the error). */
static inline __attribute__((always_inline)) bool
strata__region_find(const strata_region *r, uint64_t id, uint64_t *entry,
                    uint64_t *off, uint64_t *size) {
  return strata__region_find_in(r, id, entry, off, size, true);
}

/* The lookup cut into the three stages of a pipelined batch
 * (strata_region_get_data_many, strata_get_data_many), each run several ids
 * after the one before, so that the cache miss each stage starts is over
 * when the next stage reads the line:
 *   _start:  sparse: hashes the id and prefetches its pilot; returns the
 *            hash. Dense: prefetches the locator; returns 0.
 *   _slot:   sparse: reads the pilot, computes the slot and prefetches its
 *            locator; returns the slot. Dense: returns its argument.
 *   _finish: reads the locator: on a hit points *data at the content,
 *            stores its size, prefetches the content's first line and
 *            returns true; on a miss (or an entry whose chunk fails
 *            validation) stores NULL and 0. */
static inline __attribute__((always_inline)) uint64_t
strata__pipe_start(const strata_region *r, uint64_t id) {
  if (r->dense) {
    uint64_t i = id - r->first_id;
    if (i < r->n)
      strata__prefetch(r->locators + i * r->loc_size);
    return 0;
  }
  uint64_t h = strata__id_hash(id, r->seed);
  strata__prefetch(r->pilots + 2 * strata__pilot_bucket(h, r->pilot_count));
  return h;
}

static inline __attribute__((always_inline)) uint64_t
strata__pipe_slot(const strata_region *r, uint64_t h) {
  if (r->dense)
    return h;
  uint64_t b = strata__pilot_bucket(h, r->pilot_count);
  uint64_t i =
      strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
  strata__prefetch(r->locators + i * STRATA__SLOC_SIZE);
  return i;
}

static inline __attribute__((always_inline)) bool
strata__pipe_finish(const strata_region *r, uint64_t slot, uint64_t id,
                    const void **data, uint64_t *size) {
  uint64_t e, off, len;
  bool hit;
  if (r->dense) {
    hit = strata__region_find(r, id, &e, &off, &len);
  } else if (!strata__entry_ok(r, slot)) {
    hit = false;
  } else {
    const uint8_t *loc = r->locators + slot * STRATA__SLOC_SIZE;
    off = strata__rd64(loc);
    len = strata__rd64(loc + 8);
    hit = strata__rd64(loc + 16) == id && off != STRATA__EMPTY_OFFSET;
  }
  *data = hit ? r->data + off : NULL;
  *size = hit ? len : 0;
  if (hit)
    strata__prefetch(*data);
  return hit;
}

/* Fills *out from entry number i (0 <= i < entries_n, not empty, its
 * chunk validated: strata__entry_ok). Inline
 * so that strata_get's hit path makes no call (store_read.c). */
static inline __attribute__((always_inline)) void
strata__layer_from_entry(const strata_region *r, uint64_t i,
                         strata_layer *out) {
  const uint8_t *e = r->entries + i * STRATA__ENTRY_SIZE;
  uint32_t name_len = strata__rd32(e + STRATA__E_NAME_LEN);
  uint32_t meta_len = strata__rd32(e + STRATA__E_META_LEN);
  out->id = strata__rd64(e + STRATA__E_ID);
  out->data = r->data + strata__rd64(e + STRATA__E_OFFSET);
  out->size = strata__rd64(e + STRATA__E_SIZE);
  out->checksum = strata__rd64(e + STRATA__E_CHECKSUM);
  out->name =
      name_len ? r->strings + strata__rd64(e + STRATA__E_NAME_OFF) : NULL;
  out->name_len = name_len;
  out->metadata =
      meta_len ? r->strings + strata__rd64(e + STRATA__E_META_OFF) : NULL;
  out->metadata_len = meta_len;
  out->flags = strata__rd32(e + STRATA__E_FLAGS);
}
/* Starts loading the index lines a lookup of `id` will read. */
void strata__prefetch_layer(const strata_region *r, uint64_t id);
/* Entry number of the layer with this id, or -1. */
int64_t strata__find_entry(const strata_region *r, uint64_t id);

#endif /* STRATA_REGION_H */
