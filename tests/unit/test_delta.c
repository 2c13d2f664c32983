/* Delta files (format 1.1, docs/FORMAT.md "Delta files") written through
 * the writer's internal API (writer_internal.h): the binding, layers and
 * tombstones read back through the public region API; one entry per id
 * over layers and tombstones; the writer's argument and state checks; and
 * that files other than deltas are still written as format 1.0. */
#include <inttypes.h>
#include <string.h>
#include <xxhash.h>

#include "test_util.h"

#include "format/format.h"
#include "writer/writer_internal.h"

static strata_writer *open_writer(const char *path, uint32_t align) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 77;
  o.name = "delta-test";
  o.metadata = "{\"delta\":true}";
  o.align = align;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  return w;
}

/* A base, then a delta over it holding changed layers, a new named layer
 * and tombstones, added out of id order (sparse ids): everything reads
 * back, the binding names the base, and verify passes. */
static void check_round_trip(uint32_t align, bool dense) {
  const char *dir = test_tmpdir();
  const char *bpath = test_path(dir, "r.region");
  strata_writer *w = open_writer(bpath, align);
  for (uint64_t id = 1; id <= 8; id++)
    assert_strata_ok(strata_writer_add(w, id, NULL, 0, NULL, "base", 4));
  assert_strata_ok(strata_writer_commit(w));
  strata_region *base;
  assert_strata_ok(strata_region_open(bpath, 0, &base));
  strata_region_info bi;
  assert_strata_ok(strata_region_info_get(base, &bi));
  assert_int_equal(bi.format_minor, 0); /* not a delta: still 1.0 */
  assert_int_equal(bi.flags & STRATA_REGION_DELTA, 0);
  strata_region_delta_info d;
  memset(&d, 0xAB, sizeof d);
  assert_strata_err(strata_region_delta(base, &d), STRATA_E_NOT_FOUND);
  assert_int_equal(d.depth, 0xABABABABu); /* untouched */

  const char *dpath = test_path(dir, "r.1.delta");
  w = open_writer(dpath, align);
  assert_strata_ok(
      strata__writer_set_delta(w, bi.header_checksum, bi.header_checksum, 1));
  /* dense: ids 3..6 (a tombstone among them); else 2, 5 and 1000. */
  uint64_t tomb_a = dense ? 4 : 5, tomb_b = dense ? 6 : 1000;
  uint64_t lay_a = 3, lay_b = dense ? 5 : 2;
  assert_strata_ok(strata__writer_add_tombstone(w, tomb_b));
  assert_strata_ok(
      strata_writer_add(w, lay_b, "new-name", 8, "{\"v\":2}", "changed b", 9));
  assert_strata_ok(strata__writer_add_tombstone(w, tomb_a));
  assert_strata_ok(strata_writer_add(w, lay_a, NULL, 0, NULL, "changed a", 9));
  assert_strata_ok(strata_writer_commit(w));

  strata_region *r;
  assert_strata_ok(strata_region_open(dpath, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.format_major, 1);
  assert_int_equal(info.format_minor, 1);
  assert_true(info.flags & STRATA_REGION_DELTA);
  assert_int_equal((info.flags & STRATA_REGION_DENSE_IDS) != 0, dense);
  assert_int_equal(info.layer_count, 4); /* tombstones count */
  assert_int_equal(info.named_count, 1);
  assert_true(info.data_offset >= STRATA__DELTA_HEADER_SIZE);
  assert_int_equal(info.data_offset % align, 0);
  assert_string_equal(info.name, "delta-test");
  assert_strata_ok(strata_region_delta(r, &d));
  assert_int_equal(d.parent_checksum, bi.header_checksum);
  assert_int_equal(d.base_checksum, bi.header_checksum);
  assert_int_equal(d.depth, 1);
  assert_int_equal(d.reserved, 0);

  strata_layer l;
  assert_strata_ok(strata_region_get(r, lay_a, &l));
  assert_int_equal(l.flags, 0);
  assert_int_equal(l.size, 9);
  assert_memory_equal(l.data, "changed a", 9);
  assert_strata_ok(strata_region_get_by_name(r, "new-name", 8, &l));
  assert_int_equal(l.id, lay_b);
  assert_string_equal(l.metadata, "{\"v\":2}");
  assert_memory_equal(l.data, "changed b", 9);
  /* The region level is raw: a tombstone is returned, with its flag. */
  uint64_t tombs[2] = {tomb_a, tomb_b};
  for (int k = 0; k < 2; k++) {
    assert_strata_ok(strata_region_get(r, tombs[k], &l));
    assert_int_equal(l.id, tombs[k]);
    assert_int_equal(l.flags, STRATA_LAYER_TOMBSTONE);
    assert_int_equal(l.size, 0);
    assert_null(l.name);
    assert_null(l.metadata);
    assert_int_equal(l.checksum, XXH3_64bits(NULL, 0));
    const void *data;
    uint64_t size = 99;
    assert_strata_ok(strata_region_get_data(r, tombs[k], &data, &size));
    assert_int_equal(size, 0);
  }
  assert_strata_err(strata_region_get(r, 1, &l), STRATA_E_NOT_FOUND);
  /* Iteration: all four entries in id order, tombstones flagged. */
  uint64_t want[4] = {lay_a, tomb_a, lay_b, tomb_b};
  if (!dense) { /* 2, 3, 5, 1000 */
    want[0] = lay_b;
    want[1] = lay_a;
    want[2] = tomb_a;
    want[3] = tomb_b;
  }
  strata_region_iter it;
  strata_region_iter_init(r, &it);
  for (int k = 0; k < 4; k++) {
    assert_int_equal(strata_region_next(&it, &l), 1);
    assert_int_equal(l.id, want[k]);
    bool tomb = l.id == tomb_a || l.id == tomb_b;
    assert_int_equal(l.flags, tomb ? STRATA_LAYER_TOMBSTONE : 0);
  }
  assert_int_equal(strata_region_next(&it, &l), 0);
  uint64_t bad = UINT64_MAX;
  assert_strata_ok(strata_region_verify(r, &bad));
  strata_region_close(r);
  strata_region_close(base);
}

static void test_round_trip_sparse(void **state) {
  (void)state;
  check_round_trip(64, false);
}

static void test_round_trip_dense_wide_align(void **state) {
  (void)state;
  /* 512-byte alignment: the data starts at 512, past the 320-byte header. */
  check_round_trip(512, true);
}

/* An id is a layer or a tombstone, never both, in either order and
 * whether the ids came in order or not; the refusal names the id and what
 * holds it, and leaves the writer usable. */
static void test_tombstone_and_layer_same_id(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "x.1.delta");
  strata_writer *w = open_writer(path, 64);
  assert_strata_ok(strata__writer_set_delta(w, 11, 22, 2));
  assert_strata_ok(strata_writer_add(w, 10, NULL, 0, NULL, "ten", 3));
  assert_strata_err(strata__writer_add_tombstone(w, 10), STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(),
                         "tombstone 10: duplicate id (already added as layer "
                         "number 0"));
  assert_strata_ok(strata__writer_add_tombstone(w, 20));
  assert_strata_err(strata_writer_add(w, 20, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(),
                         "layer 20: duplicate id (already added as a "
                         "tombstone, entry number 1"));
  assert_strata_err(strata__writer_add_tombstone(w, 20), STRATA_E_DUPLICATE);
  /* Out of order from here: the id set finds them too. */
  assert_strata_ok(strata__writer_add_tombstone(w, 5));
  assert_strata_err(strata_writer_add(w, 20, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_strata_err(strata__writer_add_tombstone(w, 10), STRATA_E_DUPLICATE);
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  assert_int_equal(strata_region_layer_count(r), 3);
  strata_region_delta_info d;
  assert_strata_ok(strata_region_delta(r, &d));
  assert_int_equal(d.parent_checksum, 11);
  assert_int_equal(d.base_checksum, 22);
  assert_int_equal(d.depth, 2);
  strata_region_close(r);
}

/* The binding's argument checks, and when it may be set; tombstones only
 * in a delta writer. */
static void test_writer_checks(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_writer *w = open_writer(test_path(dir, "a.region"), 64);
  assert_strata_err(strata__writer_add_tombstone(w, 1), STRATA_E_STATE);
  assert_non_null(
      strstr(strata_last_error_detail(), "only a delta file holds tombstones"));
  assert_strata_err(strata__writer_set_delta(w, 1, 1, 0), STRATA_E_INVAL);
  assert_strata_err(strata__writer_set_delta(w, 1, 2, 1), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(),
                         "delta of depth 1 with parent 0000000000000001 "
                         "differing from its base 0000000000000002"));
  assert_strata_err(strata__writer_set_delta(w, 2, 2, 3), STRATA_E_INVAL);
  assert_strata_err(strata__writer_set_delta(NULL, 1, 1, 1), STRATA_E_INVAL);
  assert_strata_ok(strata_writer_add(w, 1, NULL, 0, NULL, "x", 1));
  assert_strata_err(strata__writer_set_delta(w, 1, 1, 1), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(),
                         "a delta's binding is set before the first layer"));
  strata_writer_abort(w);
  /* An empty delta (nothing changed but, say, the metadata) is valid. */
  const char *path = test_path(dir, "b.1.delta");
  w = open_writer(path, 16);
  assert_strata_ok(strata__writer_set_delta(w, 5, 5, 1));
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  assert_int_equal(strata_region_layer_count(r), 0);
  strata_region_delta_info d;
  assert_strata_ok(strata_region_delta(r, &d));
  assert_int_equal(d.depth, 1);
  strata_region_close(r);
  assert_strata_err(strata_region_delta(NULL, &d), STRATA_E_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_sparse),
      cmocka_unit_test(test_round_trip_dense_wide_align),
      cmocka_unit_test(test_tombstone_and_layer_same_id),
      cmocka_unit_test(test_writer_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
