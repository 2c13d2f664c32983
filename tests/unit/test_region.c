/* Round trips through the writer and the reader: every layer's bytes, name
 * and metadata come back; misses, partial-read bounds, iteration order,
 * empty and one-layer regions, alignment, name lookup, format versions. */
#include <inttypes.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "test_util.h"

#include "format/format.h"
#include "region/region.h"

/* Deterministic layer set: id, name, metadata and content all derive from
 * the layer number, so a reader can check them without a copy. */
typedef struct spec {
  uint64_t n;
  bool sparse;    /* ids i * golden ratio instead of base + i */
  uint64_t base;  /* first id when dense */
  uint32_t align; /* 0: default */
  int name_every; /* every k-th layer has a name; 0: none */
  int meta_every; /* every k-th layer has metadata; 0: none */
  bool in_order;  /* add layers in ascending id order (else reversed) */
} spec;

static uint64_t spec_id(const spec *s, uint64_t i) {
  return s->sparse ? (i + 1) * 0x9E3779B97F4A7C15ull : s->base + i;
}

static size_t spec_size(uint64_t i) {
  return (size_t)((i * 37) % 1000);
}

static void spec_content(uint64_t i, uint8_t *buf, size_t len) {
  uint64_t x = i * 0x2545F4914F6CDD1Dull + 1;
  for (size_t k = 0; k < len; k++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[k] = (uint8_t)x;
  }
}

static bool spec_has_name(const spec *s, uint64_t i) {
  return s->name_every && i % (uint64_t)s->name_every == 0;
}
static bool spec_has_meta(const spec *s, uint64_t i) {
  return s->meta_every && i % (uint64_t)s->meta_every == 0;
}

static void spec_name(uint64_t i, char *buf, size_t len) {
  snprintf(buf, len, "layers/%" PRIu64 "/ünïcode", i);
}
static void spec_meta(uint64_t i, char *buf, size_t len) {
  snprintf(buf, len,
           "{\"keywords\":[\"k%" PRIu64 "\"],\"frequency\":%" PRIu64 "}", i,
           i % 17);
}

static void build(const char *path, const spec *s) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 42;
  o.name = "test-region";
  o.metadata = "{\"source\":\"unit\"}";
  o.align = s->align;
  strata_writer *w;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  uint8_t buf[1000];
  char name[64], meta[128];
  /* In reverse unless asked otherwise, so that the writer has to sort. */
  for (uint64_t j = 0; j < s->n; j++) {
    uint64_t k = s->in_order ? j : s->n - 1 - j;
    size_t len = spec_size(k);
    spec_content(k, buf, len);
    spec_name(k, name, sizeof name);
    spec_meta(k, meta, sizeof meta);
    assert_strata_ok(
        strata_writer_add(w, spec_id(s, k), spec_has_name(s, k) ? name : NULL,
                          spec_has_name(s, k) ? strlen(name) : 0,
                          spec_has_meta(s, k) ? meta : NULL, buf, len));
  }
  assert_strata_ok(strata_writer_commit(w));
}

static void check_layer(const spec *s, uint64_t i, const strata_layer *l,
                        uint32_t align) {
  uint8_t buf[1000];
  char name[64], meta[128];
  size_t len = spec_size(i);
  spec_content(i, buf, len);
  assert_int_equal(l->id, spec_id(s, i));
  assert_int_equal(l->size, len);
  assert_memory_equal(l->data, buf, len);
  assert_int_equal(l->checksum, XXH3_64bits(buf, len));
  assert_int_equal((uintptr_t)l->data % align, 0);
  if (spec_has_name(s, i)) {
    spec_name(i, name, sizeof name);
    assert_non_null(l->name);
    assert_string_equal(l->name, name);
    assert_int_equal(l->name_len, strlen(name));
  } else {
    assert_null(l->name);
    assert_int_equal(l->name_len, 0);
  }
  if (spec_has_meta(s, i)) {
    spec_meta(i, meta, sizeof meta);
    assert_non_null(l->metadata);
    assert_string_equal(l->metadata, meta);
  } else {
    assert_null(l->metadata);
  }
}

static void round_trip(const spec *s) {
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "r.region");
  build(path, s);
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.id, 42);
  assert_string_equal(info.name, "test-region");
  assert_string_equal(info.metadata, "{\"source\":\"unit\"}");
  assert_int_equal(info.layer_count, s->n);
  assert_int_equal(info.data_align, s->align ? s->align : 64);
  assert_int_equal(info.format_major, 1);
  /* One layer (or none) is always dense: any single id is a run of one. */
  assert_int_equal(!!(info.flags & STRATA_REGION_DENSE_IDS),
                   !s->sparse || s->n <= 1);
  /* Dense regions written in id order get the 8-byte position table. */
  bool dense = !s->sparse || s->n <= 1;
  bool in_order = s->in_order || s->n <= 1;
  assert_int_equal(!!(info.flags & STRATA_REGION_PACKED_LOCATORS),
                   dense && in_order);
  assert_int_equal(strata_region_layer_count(r), s->n);

  strata_layer l;
  char name[64];
  for (uint64_t i = 0; i < s->n; i++) {
    assert_strata_ok(strata_region_get(r, spec_id(s, i), &l));
    check_layer(s, i, &l, info.data_align);
    /* The lean lookup agrees with the full one. */
    const void *data = NULL;
    uint64_t size = 1;
    assert_strata_ok(strata_region_get_data(r, spec_id(s, i), &data, &size));
    assert_ptr_equal(data, l.data);
    assert_int_equal(size, l.size);
    if (spec_has_name(s, i)) {
      spec_name(i, name, sizeof name);
      strata_layer byname;
      assert_strata_ok(
          strata_region_get_by_name(r, name, strlen(name), &byname));
      assert_int_equal(byname.id, l.id);
      assert_ptr_equal(byname.data, l.data);
    }
  }
  /* The batch lookup agrees with one-by-one lookups, misses included, in
   * any order and for batches of any length. */
  {
    size_t cnt = (size_t)s->n + 4;
    uint64_t *ids = malloc(cnt * sizeof *ids);
    const void **ptrs = malloc(cnt * sizeof *ptrs);
    uint64_t *sizes = malloc(cnt * sizeof *sizes);
    assert_true(ids && ptrs && sizes);
    for (uint64_t i = 0; i < s->n; i++)
      ids[i] = spec_id(s, (i * 7919) % s->n == i ? i : s->n - 1 - i);
    ids[s->n] = UINT64_MAX - 12345; /* misses */
    ids[s->n + 1] = 0xDEADBEEFull;
    ids[s->n + 2] = s->n ? spec_id(s, 0) + 0x5555 : 3;
    ids[s->n + 3] = 0; /* meets the zeroed ids of unused sparse slots */
    /* Short batches (shorter than the pipeline), longer ones, and the whole
     * array, whose tail holds the misses. */
    for (size_t len = 0; len <= cnt; len = len == cnt       ? cnt + 1
                                           : len < 20       ? len + 1
                                           : len + 97 < cnt ? len + 97
                                                            : cnt) {
      size_t want = 0;
      size_t got = strata_region_get_data_many(r, ids, len, ptrs, sizes);
      for (size_t k = 0; k < len; k++) {
        const void *d = NULL;
        uint64_t z = 0;
        int rc = strata_region_get_data(r, ids[k], &d, &z);
        want += rc == 0;
        assert_ptr_equal(ptrs[k], rc == 0 ? d : NULL);
        assert_int_equal(sizes[k], rc == 0 ? z : 0);
      }
      assert_int_equal(got, want);
    }
    free(ids);
    free(ptrs);
    free(sizes);
  }

  /* The inline view exists exactly for packed dense regions and agrees
   * with the library's lookup, hits and misses alike. */
  strata_dense_view view;
  if (info.flags & STRATA_REGION_PACKED_LOCATORS) {
    assert_strata_ok(strata_region_dense_view(r, &view));
    for (uint64_t i = 0; i < s->n; i++) {
      const void *a, *b;
      uint64_t la, lb;
      assert_int_equal(strata_dense_get(&view, spec_id(s, i), &a, &la), 0);
      assert_strata_ok(strata_region_get_data(r, spec_id(s, i), &b, &lb));
      assert_ptr_equal(a, b);
      assert_int_equal(la, lb);
    }
    const void *a = NULL;
    uint64_t la = 0;
    if (s->n > 0) {
      /* Just below the first id and just past the last (both may wrap). */
      assert_int_equal(strata_dense_get(&view, spec_id(s, 0) - 1, &a, &la),
                       STRATA_E_NOT_FOUND);
      assert_int_equal(
          strata_dense_get(&view, spec_id(s, s->n - 1) + 1, &a, &la),
          STRATA_E_NOT_FOUND);
    }
    assert_null(a);
  } else {
    assert_strata_err(strata_region_dense_view(r, &view), STRATA_E_INVAL);
  }

  /* Iteration visits every layer once, in ascending id order. */
  strata_region_iter it;
  strata_region_iter_init(r, &it);
  uint64_t count = 0, prev = 0;
  int rc;
  while ((rc = strata_region_next(&it, &l)) > 0) {
    if (count > 0)
      assert_true(l.id > prev);
    prev = l.id;
    count++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(count, s->n);
  assert_int_equal(strata_region_next(&it, &l), 0); /* stays done */

  uint64_t bad = 12345;
  assert_strata_ok(strata_region_verify(r, &bad));
  assert_int_equal(bad, 12345);
  strata_region_close(r);
  /* Region files are created read-only. */
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0444);
}

static void test_round_trip_dense(void **state) {
  (void)state;
  spec s = {.n = 500, .base = 1000, .name_every = 3, .meta_every = 2};
  round_trip(&s);
  s.in_order = true; /* the packed variant */
  round_trip(&s);
}

static void test_round_trip_sparse(void **state) {
  (void)state;
  spec s = {.n = 700, .sparse = true, .name_every = 1, .meta_every = 5};
  round_trip(&s);
  s.in_order = true;
  round_trip(&s);
}

static void test_round_trip_align(void **state) {
  (void)state;
  uint32_t aligns[] = {16, 256, 4096, 65536};
  for (size_t k = 0; k < sizeof aligns / sizeof *aligns; k++) {
    spec s = {.n = 40, .sparse = k % 2, .align = aligns[k], .name_every = 2};
    round_trip(&s);
    s.in_order = true;
    round_trip(&s);
  }
}

static void test_one_layer(void **state) {
  (void)state;
  spec dense = {.n = 1, .base = UINT64_MAX, .name_every = 1};
  round_trip(&dense);
  /* Packed positions of an empty layer and of the largest id. */
  spec two = {.n = 2, .base = UINT64_MAX - 1, .in_order = true};
  round_trip(&two);
  spec sparse = {.n = 1, .sparse = true};
  round_trip(&sparse);
}

static void test_empty_region(void **state) {
  (void)state;
  spec s = {.n = 0};
  round_trip(&s);
  const char *path = test_path(test_tmpdir(), "e.region");
  build(path, &s);
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_layer l;
  assert_strata_err(strata_region_get(r, 0, &l), STRATA_E_NOT_FOUND);
  assert_strata_err(strata_region_get_by_name(r, "x", 1, &l),
                    STRATA_E_NOT_FOUND);
  strata_region_close(r);
}

static void test_misses(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  for (int sparse = 0; sparse < 2; sparse++) {
    spec s = {.n = 100, .sparse = sparse, .base = 10, .name_every = 1};
    const char *path = test_path(dir, sparse ? "s.region" : "d.region");
    build(path, &s);
    strata_region *r;
    assert_strata_ok(strata_region_open(path, 0, &r));
    strata_layer l = {.id = 777};
    uint64_t misses[] = {0, 9, 110, UINT64_MAX, 0x9E3779B97F4A7C15ull + 1};
    for (size_t k = 0; k < sizeof misses / sizeof *misses; k++) {
      assert_strata_err(strata_region_get(r, misses[k], &l),
                        STRATA_E_NOT_FOUND);
      assert_non_null(strstr(strata_last_error_detail(), path));
    }
    assert_int_equal(l.id, 777); /* untouched on a miss */
    const void *data = &l;
    uint64_t size = 99;
    for (size_t k = 0; k < sizeof misses / sizeof *misses; k++)
      assert_strata_err(strata_region_get_data(r, misses[k], &data, &size),
                        STRATA_E_NOT_FOUND);
    assert_ptr_equal(data, &l);
    assert_int_equal(size, 99);
    /* Many ids that are not in the region, small ones (which meet the
     * zeroed ids of empty slots) and arbitrary ones, all miss. */
    for (uint64_t k = 0; k < 20000; k++) {
      uint64_t id =
          k < 10000 ? k + (sparse ? 0 : 1000) : k * 0xD1B54A32D192ED03ull;
      if (sparse && id % 0x9E3779B97F4A7C15ull == 0 && id != 0)
        continue;
      assert_strata_err(strata_region_get_data(r, id, &data, &size),
                        STRATA_E_NOT_FOUND);
    }
    assert_strata_err(strata_region_get_by_name(r, "nope", 4, &l),
                      STRATA_E_NOT_FOUND);
    assert_strata_err(strata_region_get_by_name(r, "", 0, &l),
                      STRATA_E_NOT_FOUND);
    /* A prefix of a real name is not that name. */
    char name[64];
    spec_name(5, name, sizeof name);
    assert_strata_err(strata_region_get_by_name(r, name, strlen(name) - 1, &l),
                      STRATA_E_NOT_FOUND);
    assert_strata_ok(strata_region_get_by_name(r, name, strlen(name), &l));
    strata_region_close(r);
  }
}

/* Unused slots of a sparse region hold id 0 in their locator. Looking up id
 * 0 when it hashes to such a slot must miss, in every lookup path. Builds
 * sparse regions of growing size until id 0 lands on an unused slot (about
 * 6% of slots are unused). */
static void test_id_zero_on_unused_slot(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  bool seen = false;
  for (uint64_t n = 2; n < 400 && !seen; n++) {
    spec s = {.n = n, .sparse = true};
    const char *path = test_path(dir, "z.region");
    build(path, &s);
    strata_region *r;
    assert_strata_ok(strata_region_open(path, 0, &r));
    uint64_t h = strata__id_hash(0, r->seed);
    uint64_t b = strata__pilot_bucket(h, r->pilot_count);
    uint64_t slot =
        strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
    const uint8_t *loc = r->locators + slot * STRATA__SLOC_SIZE;
    if (strata__rd64(loc) == STRATA__EMPTY_OFFSET) {
      seen = true;
      assert_int_equal(strata__rd64(loc + 16), 0);
      strata_layer l;
      const void *d = NULL;
      uint64_t z = 7;
      uint64_t zero = 0;
      assert_strata_err(strata_region_get(r, 0, &l), STRATA_E_NOT_FOUND);
      assert_strata_err(strata_region_get_data(r, 0, &d, &z),
                        STRATA_E_NOT_FOUND);
      assert_int_equal(strata_region_get_data_many(r, &zero, 1, &d, &z), 0);
      assert_null(d);
      assert_int_equal(z, 0);
    }
    strata_region_close(r);
    unlink(path);
  }
  assert_true(seen);
}

static void test_partial_reads(void **state) {
  (void)state;
  spec s = {.n = 30, .base = 0};
  const char *path = test_path(test_tmpdir(), "p.region");
  build(path, &s);
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  uint64_t id = 27; /* size (27*37)%1000 = 999 */
  strata_layer l;
  assert_strata_ok(strata_region_get(r, id, &l));
  assert_int_equal(l.size, 999);
  const void *p;
  assert_strata_ok(strata_region_read(r, id, 0, 999, &p));
  assert_ptr_equal(p, l.data);
  assert_strata_ok(strata_region_read(r, id, 10, 20, &p));
  assert_ptr_equal(p, (const uint8_t *)l.data + 10);
  assert_strata_ok(strata_region_read(r, id, 999, 0, &p)); /* empty tail */
  assert_strata_err(strata_region_read(r, id, 0, 1000, &p), STRATA_E_BOUNDS);
  assert_non_null(strstr(strata_last_error_detail(), "layer 27"));
  assert_strata_err(strata_region_read(r, id, 1000, 0, &p), STRATA_E_BOUNDS);
  assert_strata_err(strata_region_read(r, id, 500, 500, &p), STRATA_E_BOUNDS);
  /* offset + len wraps around 2^64: must not pass as in bounds. */
  assert_strata_err(strata_region_read(r, id, 16, UINT64_MAX - 8, &p),
                    STRATA_E_BOUNDS);
  assert_strata_err(strata_region_read(r, id, UINT64_MAX, 2, &p),
                    STRATA_E_BOUNDS);
  assert_strata_err(strata_region_read(r, 5000, 0, 0, &p), STRATA_E_NOT_FOUND);
  strata_region_close(r);
}

/* Rewrites the version fields and recomputes the header checksum. */
static void patch_version(const char *path, uint16_t major, uint16_t minor) {
  size_t len;
  uint8_t *img = test_read_file(path, &len);
  strata__wr16(img + STRATA__H_MAJOR, major);
  strata__wr16(img + STRATA__H_MINOR, minor);
  strata__wr64(img + STRATA__H_HEADER_CSUM,
               XXH3_64bits(img, STRATA__H_HEADER_CSUM));
  test_write_file(path, img, len);
  free(img);
}

static void test_versions(void **state) {
  (void)state;
  spec s = {.n = 10, .name_every = 1};
  const char *path = test_path(test_tmpdir(), "v.region");
  strata_region *r;
  /* A newer minor version of the same major stays readable. */
  build(path, &s);
  patch_version(path, 1, 7);
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.format_minor, 7);
  strata_region_close(r);
  /* A newer major version is refused with its own error. */
  patch_version(path, 2, 0);
  assert_strata_err(strata_region_open(path, 0, &r), STRATA_E_VERSION);
  assert_non_null(strstr(strata_last_error_detail(), "2.0"));
  patch_version(path, 0, 9);
  assert_strata_err(strata_region_open(path, 0, &r), STRATA_E_VERSION);
}

static void test_open_errors(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_region *r = NULL;
  assert_strata_err(strata_region_open(test_path(dir, "missing"), 0, &r),
                    -ENOENT);
  assert_non_null(strstr(strata_last_error_detail(), "missing"));
  assert_strata_err(strata_region_open(dir, 0, &r), STRATA_E_INVAL);
  assert_strata_err(strata_region_open(NULL, 0, &r), STRATA_E_INVAL);
  test_write_file(test_path(dir, "text"), "hello, world\n", 13);
  assert_strata_err(strata_region_open(test_path(dir, "text"), 0, &r),
                    STRATA_E_BAD_MAGIC);
  spec s = {.n = 3};
  build(test_path(dir, "ok.region"), &s);
  assert_strata_err(
      strata_region_open(test_path(dir, "ok.region"), 1u << 30, &r),
      STRATA_E_INVAL);
  unsigned flags[] = {STRATA_OPEN_RANDOM, STRATA_OPEN_SEQUENTIAL,
                      STRATA_OPEN_POPULATE};
  for (size_t k = 0; k < 3; k++) {
    assert_strata_ok(
        strata_region_open(test_path(dir, "ok.region"), flags[k], &r));
    strata_region_close(r);
  }
  strata_region_close(NULL);
}

static void test_error_names(void **state) {
  (void)state;
  assert_string_equal(strata_err_name(STRATA_E_CORRUPT), "STRATA_E_CORRUPT");
  assert_string_equal(strata_err_name(STRATA_E_NOT_FOUND),
                      "STRATA_E_NOT_FOUND");
  assert_string_equal(strata_err_name(-ENOSPC), "STRATA_E_NOSPC");
  assert_string_equal(strata_err_name(-EBADF), "EBADF");
  assert_string_equal(strata_err_name(0), "OK");
  assert_string_equal(strata_err_name(-4099), "UNKNOWN");
  assert_string_equal(strata_strerror(STRATA_E_VERSION),
                      "unsupported region format version");
  assert_string_equal(strata_strerror(-EBADF), strerror(EBADF));
  assert_non_null(strata_strerror(12345));
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", STRATA_VERSION_MAJOR,
           STRATA_VERSION_MINOR, STRATA_VERSION_PATCH);
  assert_string_equal(strata_version_string(), want);
  assert_int_equal(strata_version(), STRATA_VERSION_HEX);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_dense),
      cmocka_unit_test(test_round_trip_sparse),
      cmocka_unit_test(test_round_trip_align),
      cmocka_unit_test(test_one_layer),
      cmocka_unit_test(test_empty_region),
      cmocka_unit_test(test_misses),
      cmocka_unit_test(test_id_zero_on_unused_slot),
      cmocka_unit_test(test_partial_reads),
      cmocka_unit_test(test_versions),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_error_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
