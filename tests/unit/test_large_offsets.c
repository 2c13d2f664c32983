/* A region whose content offsets pass 4 GiB, written as a sparse file: the
 * offsets and sizes are 64-bit end to end (writer, index, reader). */
#include <inttypes.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "test_util.h"

#define BIG (4ull << 30) + 12345 /* a hole past 4 GiB, odd-sized */

static void test_offsets_past_4gib(void **state) {
  (void)state;
  const char *path = test_path(test_tmpdir(), "big.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 9;
  o.name = "big";
  strata_writer *w;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  assert_strata_ok(strata_writer_add(w, 1, "head", 4, NULL, "head", 4));
  assert_strata_ok(strata_writer_begin_layer(w, 2, "hole", 4, NULL));
  assert_strata_ok(strata_writer_append_zeros(w, BIG));
  assert_strata_ok(strata_writer_append(w, "!", 1));
  assert_strata_ok(strata_writer_end_layer(w));
  assert_strata_ok(
      strata_writer_add(w, 3, "tail", 4, "{\"after\":\"4GiB\"}", "tail", 4));
  assert_strata_ok(strata_writer_commit(w));

  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true((uint64_t)st.st_size > (4ull << 30));
  /* Sparse: far fewer blocks than bytes (where the file system allows). */
  printf("# file size %jd, allocated %jd bytes\n", (intmax_t)st.st_size,
         (intmax_t)st.st_blocks * 512);

  strata_region *r;
  assert_strata_ok(strata_region_open(path, STRATA_OPEN_RANDOM, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_true(info.index_offset > (4ull << 30));
  strata_layer l;
  assert_strata_ok(strata_region_get(r, 2, &l));
  assert_int_equal(l.size, BIG + 1);
  assert_int_equal(((const uint8_t *)l.data)[l.size - 1], '!');
  assert_int_equal(((const uint8_t *)l.data)[l.size - 2], 0);
  const void *p;
  assert_strata_ok(strata_region_read(r, 2, BIG - 3, 4, &p));
  assert_memory_equal(p, "\0\0\0!", 4);
  assert_strata_err(strata_region_read(r, 2, BIG, 2, &p), STRATA_E_BOUNDS);

  strata_layer head;
  assert_strata_ok(strata_region_get(r, 1, &head));
  assert_strata_ok(strata_region_get(r, 3, &l));
  /* Layer 1 is the first blob, so this is layer 3's offset in the file. */
  uint64_t off = info.data_offset + (uint64_t)((const uint8_t *)l.data -
                                               (const uint8_t *)head.data);
  assert_true(off > (4ull << 30));
  assert_memory_equal(l.data, "tail", 4);
  assert_int_equal(l.checksum, XXH3_64bits("tail", 4));
  assert_string_equal(l.metadata, "{\"after\":\"4GiB\"}");
  assert_strata_ok(strata_region_get_by_name(r, "tail", 4, &l));
  assert_int_equal(l.id, 3);
  strata_region_close(r);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_offsets_past_4gib),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
