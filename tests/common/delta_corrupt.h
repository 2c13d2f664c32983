/* Corrupting a delta file by hand, for the tests of what a store does
 * with a delta that opens but whose index fails when read: test_store_delta
 * (the scan and refresh) and test_store_swap (the swap). */
#ifndef STRATA_TEST_DELTA_CORRUPT_H
#define STRATA_TEST_DELTA_CORRUPT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "test_util.h"

static inline uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8); /* little-endian hosts only, like the format */
  return v;
}

static inline void wr64(uint8_t *p, uint64_t v) {
  memcpy(p, &v, 8);
}

/* Swaps the first two slots of a sparse delta's id order and recomputes
 * the index and header checksums (docs/FORMAT.md: the section table at
 * 112, ID_ORDER its fifth section; the index checksum at 240 covers
 * [INDEX offset, end), the header checksum at 248 covers [0, 248)): a
 * file that opens, whose iteration fails at slot 1 ("does not follow").
 * Sets broken_off to the file offset of slot 1. */
static uint64_t broken_off __attribute__((unused));
static inline void break_id_order(const char *path) {
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  static uint8_t buf[1 << 16];
  size_t size = fread(buf, 1, sizeof buf, f);
  assert_true(size > 320 && size < sizeof buf);
  uint64_t index_off = rd64(buf + 112 + 16 * 1);
  uint64_t order_off = rd64(buf + 112 + 16 * 4);
  assert_true(rd64(buf + 112 + 16 * 4 + 8) >= 8); /* sparse, >= 2 ids */
  uint8_t tmp[4];
  memcpy(tmp, buf + order_off, 4);
  memcpy(buf + order_off, buf + order_off + 4, 4);
  memcpy(buf + order_off + 4, tmp, 4);
  wr64(buf + 240, XXH3_64bits(buf + index_off, size - index_off));
  wr64(buf + 248, XXH3_64bits(buf, 248));
  assert_int_equal(fseek(f, 0, SEEK_SET), 0);
  assert_int_equal(fwrite(buf, 1, size, f), size);
  assert_int_equal(fclose(f), 0);
  broken_off = order_off + 4;
}

#endif /* STRATA_TEST_DELTA_CORRUPT_H */
