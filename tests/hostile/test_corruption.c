/* Corruption sweeps over a sample region written by the library's writer:
 *
 * - every single-bit flip in the header and in the index sections (every
 *   byte from INDEX.offset to the end of the file) makes an eager open
 *   (STRATA_OPEN_CHECK_INDEX) fail, and a lazy open fail or the lazy walk
 *   (lazy_walk.h: lookups, iteration, verify) fail;
 * - every truncation makes open fail, eager or lazy;
 * - a flipped content byte opens (content is not read at open) but verify
 *   names the layer;
 * - a flipped padding byte between content blobs (covered by no checksum)
 *   breaks neither open nor verify;
 * - the two things open leaves to later (the id-order permutation and the
 *   name hashes) are caught by iteration and verify.
 *
 * One work file is reused: each case pwrite()s its change, opens, and
 * restores the original bytes. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <xxhash.h>

#include "lazy_walk.h"
#include "region/region.h"
#include "test_util.h"

#define N_LAYERS 20
#define SPARSE_STEP 0x9E3779B97F4A7C15ull

typedef struct sample {
  char dir[4096];
  char work[4096];
  uint8_t *img; /* the valid file */
  size_t len;
  int fd; /* the work file, O_RDWR */
  uint64_t data_off, data_len, index_off;
  uint64_t ids[N_LAYERS];
} sample;

static uint64_t h64(const sample *s, unsigned off) {
  return strata__rd64(s->img + off);
}
static uint64_t sec_off(const sample *s, int sec) {
  return h64(s, STRATA__H_SECTIONS + 16 * sec);
}
static uint64_t sec_len(const sample *s, int sec) {
  return h64(s, STRATA__H_SECTIONS + 16 * sec + 8);
}

static void put_byte(sample *s, uint64_t at, uint8_t v) {
  assert_int_equal(pwrite(s->fd, &v, 1, (off_t)at), 1);
}

/* Rewrites the whole work file from an image. */
static void put_image(sample *s, const uint8_t *p, size_t len) {
  assert_int_equal(ftruncate(s->fd, 0), 0);
  assert_int_equal(pwrite(s->fd, p, len, 0), (ssize_t)len);
}

static int setup(void **state) {
  sample *s = calloc(1, sizeof *s);
  assert_non_null(s);
  snprintf(s->dir, sizeof s->dir, "%s", test_tmpdir());
  const char *path = test_path(s->dir, "sample.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 77;
  o.name = "corruption-sample";
  o.metadata = "{\"purpose\":\"corruption sweep\"}";
  o.align = 64;
  strata_writer *w;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  uint8_t buf[256];
  for (int i = 0; i < N_LAYERS; i++) {
    /* Odd sizes, so that align 64 leaves padding after most blobs. */
    size_t size = (size_t)(1 + (37 * i) % 150);
    for (size_t k = 0; k < size; k++)
      buf[k] = (uint8_t)(i * 31 + k * 7 + 1);
    char name[32], meta[32];
    snprintf(name, sizeof name, "layer-%02d", i);
    snprintf(meta, sizeof meta, "{\"i\":%d}", i);
    s->ids[i] = (uint64_t)(i + 1) * SPARSE_STEP;
    assert_strata_ok(strata_writer_add(w, s->ids[i], i % 5 == 4 ? NULL : name,
                                       i % 5 == 4 ? 0 : strlen(name),
                                       i % 3 == 2 ? NULL : meta, buf, size));
  }
  assert_strata_ok(strata_writer_commit(w));
  s->img = test_read_file(path, &s->len);
  s->data_off = sec_off(s, STRATA__S_DATA);
  s->data_len = sec_len(s, STRATA__S_DATA);
  s->index_off = sec_off(s, STRATA__S_INDEX);
  /* Every section is present, so every kind of index byte gets flipped. */
  for (int sec = 0; sec < STRATA__S_COUNT; sec++)
    assert_true(sec_len(s, sec) > 0);
  snprintf(s->work, sizeof s->work, "%s", test_path(s->dir, "work.region"));
  s->fd = open(s->work, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(s->fd >= 0);
  put_image(s, s->img, s->len);
  unlink(path);
  *state = s;
  return 0;
}

static int teardown(void **state) {
  sample *s = *state;
  close(s->fd);
  unlink(s->work);
  rmdir(s->dir);
  free(s->img);
  free(s);
  return 0;
}

/* Before each test the work file holds the valid image. */
static int reset(void **state) {
  sample *s = *state;
  put_image(s, s->img, s->len);
  return 0;
}

/* One of the format errors, naming the file. Never 0, never -errno: the
 * file itself is readable. */
static void expect_format_error(sample *s, const char *what, uint64_t at,
                                int bit, int rc) {
  if (rc != STRATA_E_BAD_MAGIC && rc != STRATA_E_VERSION &&
      rc != STRATA_E_CHECKSUM && rc != STRATA_E_CORRUPT && rc != STRATA_E_LIMIT)
    fail_msg("%s at %" PRIu64 " bit %d: unexpected %s (%s)", what, at, bit,
             strata_err_name(rc), strata_last_error_detail());
  if (strstr(strata_last_error_detail(), s->work) == NULL)
    fail_msg("%s at %" PRIu64 ": detail \"%s\" does not name the file", what,
             at, strata_last_error_detail());
}

/* An eager open must fail and give no handle; a lazy one must fail too, or
 * open and fail in the walk (every read in bounds: ASan watches). */
static void expect_refused(sample *s, const char *what, uint64_t at, int bit) {
  strata_region *r = NULL;
  int rc = strata_region_open(s->work, STRATA_OPEN_CHECK_INDEX, &r);
  if (rc == 0) {
    strata_region_close(r);
    fail_msg("%s at %" PRIu64 " bit %d: open succeeded", what, at, bit);
  }
  expect_format_error(s, what, at, bit, rc);
  assert_null(r);
  rc = strata_region_open(s->work, 0, &r);
  if (rc == 0) {
    rc = lazy_walk(r);
    strata_region_close(r);
    if (rc == 0)
      fail_msg("%s at %" PRIu64 " bit %d: lazy open and walk succeeded", what,
               at, bit);
  }
  expect_format_error(s, what, at, bit, rc);
}

static void flip_range(sample *s, uint64_t from, uint64_t to,
                       const char *what) {
  for (uint64_t at = from; at < to; at++) {
    for (int bit = 0; bit < 8; bit++) {
      put_byte(s, at, s->img[at] ^ (uint8_t)(1u << bit));
      expect_refused(s, what, at, bit);
    }
    put_byte(s, at, s->img[at]);
  }
}

static void test_header_bit_flips(void **state) {
  sample *s = *state;
  flip_range(s, 0, STRATA__HEADER_SIZE, "header flip");
}

static void test_index_bit_flips(void **state) {
  sample *s = *state;
  assert_true(s->index_off < s->len);
  flip_range(s, s->index_off, s->len, "index flip");
}

static void test_truncations(void **state) {
  sample *s = *state;
  /* Shrinking the one file step by step visits every proper prefix. */
  for (uint64_t len = s->len; len-- > 0;) {
    assert_int_equal(ftruncate(s->fd, (off_t)len), 0);
    expect_refused(s, "truncation to", len, -1);
  }
}

/* Entry of the layer with this id in the valid image. The sample is
 * sparse: INDEX has one entry per slot, and unused ones are skipped. */
static const uint8_t *entry_of(const sample *s, uint64_t id) {
  for (uint64_t i = 0; i < h64(s, STRATA__H_SLOT_COUNT); i++) {
    const uint8_t *e = s->img + s->index_off + i * STRATA__ENTRY_SIZE;
    if (strata__rd32(e + STRATA__E_FLAGS) != STRATA__EMPTY_ENTRY &&
        strata__rd64(e + STRATA__E_ID) == id)
      return e;
  }
  fail_msg("layer %" PRIu64 " not in the index", id);
  return NULL;
}

static void test_content_corruption(void **state) {
  sample *s = *state;
  for (int k = 0; k < N_LAYERS; k++) {
    const uint8_t *e = entry_of(s, s->ids[k]);
    uint64_t off = strata__rd64(e + STRATA__E_OFFSET);
    uint64_t size = strata__rd64(e + STRATA__E_SIZE);
    assert_true(size > 0);
    uint64_t at = s->data_off + off + size / 2;
    put_byte(s, at, s->img[at] ^ 0x40);
    strata_region *r;
    assert_strata_ok(strata_region_open(s->work, 0, &r)); /* not checked */
    uint64_t bad = 0;
    assert_strata_err(strata_region_verify(r, &bad), STRATA_E_CHECKSUM);
    assert_int_equal(bad, s->ids[k]);
    char want[64];
    snprintf(want, sizeof want, "layer %" PRIu64 ":", s->ids[k]);
    if (strstr(strata_last_error_detail(), want) == NULL)
      fail_msg("detail \"%s\" lacks \"%s\"", strata_last_error_detail(), want);
    strata_region_close(r);
    put_byte(s, at, s->img[at]);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static void test_padding_flips(void **state) {
  sample *s = *state;
  /* Content blobs as [offset, end) pairs, in file order. */
  uint64_t blobs[N_LAYERS][2];
  for (int k = 0; k < N_LAYERS; k++) {
    const uint8_t *e = entry_of(s, s->ids[k]);
    blobs[k][0] = strata__rd64(e + STRATA__E_OFFSET);
    blobs[k][1] = blobs[k][0] + strata__rd64(e + STRATA__E_SIZE);
  }
  qsort(blobs, N_LAYERS, sizeof blobs[0], cmp_u64);
  uint64_t pad_bytes = 0;
  for (int k = 0; k < N_LAYERS; k++) {
    uint64_t end = k + 1 < N_LAYERS ? blobs[k + 1][0] : s->data_len;
    for (uint64_t at = s->data_off + blobs[k][1]; at < s->data_off + end;
         at++) {
      put_byte(s, at, s->img[at] ^ 0xFF);
      strata_region *r;
      assert_strata_ok(strata_region_open(s->work, 0, &r));
      uint64_t bad = UINT64_MAX;
      assert_strata_ok(strata_region_verify(r, &bad));
      assert_int_equal(bad, UINT64_MAX);
      strata_region_close(r);
      put_byte(s, at, s->img[at]);
      pad_bytes++;
    }
  }
  assert_true(pad_bytes > 100); /* align 64 with odd sizes leaves plenty */
}

/* Writes a copy of the image with `mutate` applied and both checksums
 * recomputed, so that only the checks after open can notice. */
static void put_repaired(sample *s, uint8_t *m) {
  strata__wr64(m + STRATA__H_INDEX_CSUM,
               XXH3_64bits(m + s->index_off, s->len - s->index_off));
  strata__wr64(m + STRATA__H_HEADER_CSUM,
               XXH3_64bits(m, STRATA__H_HEADER_CSUM));
  put_image(s, m, s->len);
}

static int iterate_all(strata_region *r) {
  strata_region_iter it;
  strata_layer l;
  int rc;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
  }
  return rc;
}

/* The id-order permutation is not checked at open; iteration and verify
 * must catch a bad one. */
static void test_id_order_corruption(void **state) {
  sample *s = *state;
  uint8_t *m = malloc(s->len);
  assert_non_null(m);
  uint8_t *order = m + sec_off(s, STRATA__S_ID_ORDER);

  /* Two slots swapped: ids no longer ascend. */
  memcpy(m, s->img, s->len);
  uint32_t a = strata__rd32(order + 4 * 3), b = strata__rd32(order + 4 * 11);
  strata__wr32(order + 4 * 3, b);
  strata__wr32(order + 4 * 11, a);
  put_repaired(s, m);
  strata_region *r;
  assert_strata_ok(strata_region_open(s->work, 0, &r));
  assert_strata_err(iterate_all(r), STRATA_E_CORRUPT);
  assert_non_null(strstr(strata_last_error_detail(), "does not follow"));
  assert_strata_err(strata_region_verify(r, NULL), STRATA_E_CORRUPT);
  /* Lookups by id do not use the order and still work. */
  strata_layer l;
  for (int k = 0; k < N_LAYERS; k++) {
    assert_strata_ok(strata_region_get(r, s->ids[k], &l));
    const void *data;
    uint64_t size;
    assert_strata_ok(strata_region_get_data(r, s->ids[k], &data, &size));
    assert_ptr_equal(data, l.data);
    assert_int_equal(size, l.size);
  }
  strata_region_close(r);

  /* A slot pointing past the index (past every slot). */
  memcpy(m, s->img, s->len);
  strata__wr32(order + 4 * 5, 0xFFFFFFFFu);
  put_repaired(s, m);
  assert_strata_ok(strata_region_open(s->work, 0, &r));
  assert_strata_err(iterate_all(r), STRATA_E_CORRUPT);
  assert_non_null(strstr(strata_last_error_detail(), "past the index"));
  assert_strata_err(strata_region_verify(r, NULL), STRATA_E_CORRUPT);
  strata_region_close(r);

  /* A slot pointing at an unused slot's entry: inside the index, so only
   * its emptiness is wrong. Open does not read the id order. */
  uint64_t slots = h64(s, STRATA__H_SLOT_COUNT), empty = slots;
  for (uint64_t i = 0; i < slots && empty == slots; i++)
    if (strata__rd32(s->img + s->index_off + i * STRATA__ENTRY_SIZE +
                     STRATA__E_FLAGS) == STRATA__EMPTY_ENTRY)
      empty = i;
  assert_true(empty < slots); /* 20 layers have 22 slots */
  memcpy(m, s->img, s->len);
  strata__wr32(order + 4 * 5, (uint32_t)empty);
  put_repaired(s, m);
  assert_strata_ok(strata_region_open(s->work, 0, &r));
  assert_strata_err(iterate_all(r), STRATA_E_CORRUPT);
  char want[96];
  snprintf(want, sizeof want,
           "id order slot 5 points at entry %" PRIu64 ", which is empty",
           empty);
  if (strstr(strata_last_error_detail(), want) == NULL)
    fail_msg("detail \"%s\" lacks \"%s\"", strata_last_error_detail(), want);
  uint64_t bad = UINT64_MAX;
  assert_strata_err(strata_region_verify(r, &bad), STRATA_E_CORRUPT);
  assert_int_equal(bad, UINT64_MAX);
  assert_non_null(strstr(strata_last_error_detail(), "which is empty"));
  /* Lookups by id and name do not use the order and still work. */
  strata_layer l2;
  for (int k = 0; k < N_LAYERS; k++) {
    assert_strata_ok(strata_region_get(r, s->ids[k], &l2));
    assert_int_equal(l2.id, s->ids[k]);
  }
  assert_strata_ok(strata_region_get_by_name(r, "layer-00", 8, &l2));
  assert_int_equal(l2.id, s->ids[0]);
  strata_region_close(r);
  free(m);
}

/* A broken id order (slots 3 and 11 swapped, checksums repaired) is found
 * by verify's walk. No single layer is at fault, so, as strata.h says,
 * *bad_id is left unchanged, and the detail names the id-order slot. */
static void test_verify_bad_id_on_id_order(void **state) {
  sample *s = *state;
  uint8_t *m = malloc(s->len);
  assert_non_null(m);
  memcpy(m, s->img, s->len);
  uint8_t *order = m + sec_off(s, STRATA__S_ID_ORDER);
  uint32_t a = strata__rd32(order + 4 * 3), b = strata__rd32(order + 4 * 11);
  strata__wr32(order + 4 * 3, b);
  strata__wr32(order + 4 * 11, a);
  put_repaired(s, m);
  free(m);
  strata_region *r;
  assert_strata_ok(strata_region_open(s->work, 0, &r));
  uint64_t bad = UINT64_MAX;
  assert_strata_err(strata_region_verify(r, &bad), STRATA_E_CORRUPT);
  strata_region_close(r);
  assert_int_equal(bad, UINT64_MAX);
  assert_non_null(strstr(strata_last_error_detail(), "id order slot"));
}

/* Name hashes are not compared with the names at open (a wrong hash can
 * only make a lookup miss); verify must notice. */
static void test_name_hash_corruption(void **state) {
  sample *s = *state;
  uint8_t *m = malloc(s->len);
  assert_non_null(m);
  memcpy(m, s->img, s->len);
  uint8_t *rec = m + sec_off(s, STRATA__S_NAME_INDEX) + 2 * 16;
  uint32_t entry = strata__rd32(rec + 8);
  uint64_t id =
      strata__rd64(s->img + s->index_off + entry * STRATA__ENTRY_SIZE);
  strata__wr64(rec, strata__rd64(rec) ^ 1); /* same bucket, same order */
  put_repaired(s, m);
  strata_region *r;
  assert_strata_ok(strata_region_open(s->work, 0, &r));
  uint64_t bad = 0;
  assert_strata_err(strata_region_verify(r, &bad), STRATA_E_CORRUPT);
  assert_int_equal(bad, id);
  assert_non_null(strstr(strata_last_error_detail(), "name index"));
  strata_region_close(r);
  free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_header_bit_flips, reset),
      cmocka_unit_test_setup(test_index_bit_flips, reset),
      cmocka_unit_test_setup(test_truncations, reset),
      cmocka_unit_test_setup(test_content_corruption, reset),
      cmocka_unit_test_setup(test_padding_flips, reset),
      cmocka_unit_test_setup(test_id_order_corruption, reset),
      cmocka_unit_test_setup(test_name_hash_corruption, reset),
      cmocka_unit_test_setup(test_verify_bad_id_on_id_order, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
