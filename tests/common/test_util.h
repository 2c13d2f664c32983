/* Helpers shared by the cmocka tests: temporary directories and files. */
#ifndef STRATA_TEST_UTIL_H
#define STRATA_TEST_UTIL_H

/* cmocka.h needs these first (it does not include them itself). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <inttypes.h>
#include <xxhash.h>

#include "strata.h"

/* Creates a fresh directory under $TMPDIR (or /tmp) and returns its path in
 * a static buffer that stays valid until the next call. */
static inline const char *test_tmpdir(void) {
  static char path[4096];
  const char *base = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/strata-test-XXXXXX",
           base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(path));
  return path;
}

/* Deterministic content (xorshift): the same seed gives the same bytes. */
static inline void test_fill_seeded(uint8_t *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)x;
  }
}

/* Deterministic pseudo-random numbers (splitmix64): the next of *state. */
static inline uint64_t test_splitmix(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Joins a directory and a file name into a static buffer (one of 4, used
 * in rotation, so a few results can be alive at once). */
static inline const char *test_path(const char *dir, const char *name) {
  static char bufs[4][4096 + 1024];
  static int next;
  char *b = bufs[next++ % 4];
  int n = snprintf(b, 4096, "%s/%.*s", dir, 1024, name);
  assert_true(n > 0 && n < 4096);
  return b;
}

/* Reads a whole file into a malloc()ed buffer; *len gets its size. */
static inline uint8_t *test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return p;
}

/* Writes a buffer to a file, replacing it (the file may be read-only). */
static inline void test_write_file(const char *path, const void *p,
                                   size_t len) {
  unlink(path);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Asserts that rc is 0, printing Strata's error detail when it is not. */
#define assert_strata_ok(expr)                                                 \
  do {                                                                         \
    int test__rc = (expr);                                                     \
    if (test__rc != 0)                                                         \
      fail_msg("%s -> %s: %s", #expr, strata_err_name(test__rc),               \
               strata_last_error_detail());                                    \
  } while (0)

/* Asserts that rc equals the expected error code. */
#define assert_strata_err(expr, want)                                          \
  do {                                                                         \
    int test__rc = (expr);                                                     \
    if (test__rc != (want))                                                    \
      fail_msg("%s -> %s (%s), expected %s", #expr, strata_err_name(test__rc), \
               strata_last_error_detail(), strata_err_name(want));             \
  } while (0)

/* Opens the store in `dir` with the default configuration, logging off
 * and, unless `memory_limit` is 0, that memory limit, asserting that it
 * opens. */
static inline strata_store *test_open_store_limited(const char *dir,
                                                    uint64_t memory_limit) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  if (memory_limit != 0)
    c.memory_limit = memory_limit;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

/* Opens the store in `dir` with the default configuration and logging off,
 * asserting that it opens. */
static inline strata_store *test_open_store_quiet(const char *dir) {
  return test_open_store_limited(dir, 0);
}

/* Asserts what a fresh snapshot of store `s` reads as layer `id` of region
 * `rid`: the content `want` (and a checksum that matches it), or, with
 * `want` NULL, STRATA_E_NOT_FOUND. */
static inline void test_expect_layer(strata_store *s, uint64_t rid, uint64_t id,
                                     const char *want) {
  strata_txn t;
  assert_int_equal(strata_read_begin(s, &t), 0);
  strata_layer l;
  int rc = strata_get(&t, rid, id, &l);
  if (want == NULL) {
    assert_int_equal(rc, STRATA_E_NOT_FOUND);
  } else {
    if (rc != 0)
      fail_msg("get %" PRIu64 "/%" PRIu64 ": %s", rid, id,
               strata_last_error_detail());
    assert_int_equal(l.size, strlen(want));
    assert_memory_equal(l.data, want, l.size);
    assert_int_equal(l.checksum, XXH3_64bits(l.data, l.size));
  }
  strata_read_end(&t);
}

#endif /* STRATA_TEST_UTIL_H */
