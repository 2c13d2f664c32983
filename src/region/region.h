/* The region layer: an open region file (validated, then read without
 * further checks) and the internal entry points the layers above use. */
#ifndef STRATA_REGION_H
#define STRATA_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"
#include "format/format.h"
#include "strata.h"

/* An open region. Everything here is derived from the validated file, so
 * lookups need no further checks. */
struct strata_region {
  const uint8_t *base; /* the mapping */
  uint64_t size;       /* file size == mapping length */
  bool mapped;         /* false when validating a caller's buffer (fuzzing) */
  /* Set before validation to skip the index checksum, which the caller
   * then checks with strata__region_check_index() (the store does, on a
   * background thread). Every structural check still runs. */
  bool defer_index_checksum;
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

/* strata_region_open() with internal options: `defer_index_checksum`. */
int strata__region_open_ex(const char *path, unsigned flags,
                           bool defer_index_checksum, strata_region **out);

/* ---- the lookup, inline for the layers above (store_read.c) ------------- */

static inline void strata__prefetch(const void *p) {
  __builtin_prefetch(p, 0, 3);
}

/* The lookup: on a hit stores the entry number, content offset (in DATA)
 * and size and returns true. Dense regions index the locators directly:
 * packed ones read two adjacent positions, like a bare offset array, others
 * one 16-byte {offset, size}. Sparse ones evaluate the perfect hash (the
 * pilot table is small enough to stay in cache) and read one 24-byte
 * locator, which also holds the id to compare. None reads the 64-byte
 * entry. Inline so that a store lookup makes no call on its hit path. */
static inline bool strata__region_find(const strata_region *r, uint64_t id,
                                       uint64_t *entry, uint64_t *off,
                                       uint64_t *size) {
  uint64_t i;
  const uint8_t *loc;
  if (r->dense) {
    /* Unsigned wrap makes ids below first_id land past n as well. */
    i = id - r->first_id;
    if (i >= r->n)
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
 *            returns true; on a miss stores NULL and 0. */
static inline uint64_t strata__pipe_start(const strata_region *r, uint64_t id) {
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

static inline uint64_t strata__pipe_slot(const strata_region *r, uint64_t h) {
  if (r->dense)
    return h;
  uint64_t b = strata__pilot_bucket(h, r->pilot_count);
  uint64_t i =
      strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
  strata__prefetch(r->locators + i * STRATA__SLOC_SIZE);
  return i;
}

static inline bool strata__pipe_finish(const strata_region *r, uint64_t slot,
                                       uint64_t id, const void **data,
                                       uint64_t *size) {
  uint64_t e, off, len;
  bool hit;
  if (r->dense) {
    hit = strata__region_find(r, id, &e, &off, &len);
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

/* Fills *out from entry number i (0 <= i < entries_n, not empty). Inline
 * so that strata_get's hit path makes no call (store_read.c). */
static inline void strata__layer_from_entry(const strata_region *r, uint64_t i,
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
