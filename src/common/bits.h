/* Bit arithmetic the layers share: powers of two and their logarithms.
 * One copy each, so that a bound checked in one place (a block size, a
 * hash table's capacity) is computed the same way everywhere. */
#ifndef STRATA_BITS_H
#define STRATA_BITS_H

#include <stdbool.h>
#include <stdint.h>

/* True when x is a power of two (0 is not). */
static inline bool strata__is_pow2(uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

/* Smallest b with 2^b >= n (0 for n <= 1). */
static inline unsigned strata__ceil_log2(uint64_t n) {
  return n <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(n - 1);
}

/* Largest b with 2^b <= n; n must not be 0. */
static inline unsigned strata__floor_log2(uint64_t n) {
  return 63u - (unsigned)__builtin_clzll(n);
}

#endif /* STRATA_BITS_H */
