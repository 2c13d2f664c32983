/* Helpers of the region format shared by reader and writer: the name
 * hash. */
#include "common/hash.h"

#include "format/format.h"

uint64_t strata__name_hash(const char *name, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(name, len, seed);
}
