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

/* Fills *out from entry number i (0 <= i < entries_n, not empty). */
void strata__layer_from_entry(const strata_region *r, uint64_t i,
                              strata_layer *out);
/* Starts loading the index lines a lookup of `id` will read. */
void strata__prefetch_layer(const strata_region *r, uint64_t id);
/* Entry number of the layer with this id, or -1. */
int64_t strata__find_entry(const strata_region *r, uint64_t id);

#endif /* STRATA_REGION_H */
