/* Checksum repair for the region fuzz targets. A mutated input almost
 * always fails the header or index checksum first; recomputing both, as a
 * writer would, lets the structural checks behind them be fuzzed.
 */
#ifndef STRATA_FUZZ_REPAIR_H
#define STRATA_FUZZ_REPAIR_H

#include "common/hash.h"
#include "region/region.h"

/* Recomputes the index checksum (when the index offset is inside the
 * image), a delta file's header extension checksum (when the image holds
 * the extension) and then the header checksum. */
static inline void fuzz_repair_checksums(uint8_t *buf, size_t size) {
  if (size < STRATA__HEADER_SIZE)
    return;
  uint64_t index_off =
      strata__rd64(buf + STRATA__H_SECTIONS + 16 * STRATA__S_INDEX);
  if (index_off <= size)
    strata__wr64(buf + STRATA__H_INDEX_CSUM,
                 XXH3_64bits(buf + index_off, size - index_off));
  if ((strata__rd64(buf + STRATA__H_FLAGS) & STRATA_REGION_DELTA) &&
      size >= STRATA__DELTA_HEADER_SIZE)
    strata__wr64(
        buf + STRATA__X_CSUM,
        XXH3_64bits(buf + STRATA__X_PARENT, STRATA__X_CSUM - STRATA__X_PARENT));
  strata__wr64(buf + STRATA__H_HEADER_CSUM,
               XXH3_64bits(buf, STRATA__H_HEADER_CSUM));
}

#endif /* STRATA_FUZZ_REPAIR_H */
