/* Lazy validation (strata_region_open without STRATA_OPEN_CHECK_INDEX):
 * open checks the header, section table and region strings; each chunk of
 * 64 index entries is validated on its first use.
 *
 * - a defect in one entry fails the lookups of that entry's chunk with
 *   STRATA_E_CORRUPT naming the file and the layer, while the other chunks
 *   read normally; batches report its layers missing; verify, an eager open
 *   and a dense view refuse the file;
 * - threads doing first-touch lookups of one fresh region at once (every
 *   chunk validated by several of them) all read exactly what an eager
 *   open reads (run under TSan in CI's thread-sanitizer build);
 * - a lazy open leaves no page of the file mapped in the process (smaps
 *   Rss of the mapping is 0) though it read the header, entry 0 and the
 *   region strings through the mapping; a lookup maps what it reads, and
 *   the region's name still reads; an open with STRATA_OPEN_POPULATE
 *   keeps the file mapped. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_util.h"

#include "../fuzz/fuzz_repair.h"
#include "format/format.h"

#define N_DENSE 300
#define N_THREADS 4
#define BAD_ENTRY 200 /* in chunk 3: entries 192..255 */

static uint64_t layer_id(bool sparse, uint64_t i) {
  return sparse ? (i + 1) * 0x9E3779B97F4A7C15ull : 1000 + i;
}

/* Layer i holds 8 + i % 50 bytes of (uint8_t)(i + k); every 3rd is named. */
static void build(const char *path, bool sparse, uint64_t n) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = "lazy";
  strata_writer *w;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  uint8_t buf[64];
  char name[32];
  for (uint64_t i = 0; i < n; i++) {
    size_t len = 8 + i % 50;
    for (size_t k = 0; k < len; k++)
      buf[k] = (uint8_t)(i + k);
    snprintf(name, sizeof name, "n%" PRIu64, i);
    bool named = i % 3 == 0;
    assert_strata_ok(
        strata_writer_add(w, layer_id(sparse, i), named ? name : NULL,
                          named ? strlen(name) : 0, NULL, buf, len));
  }
  assert_strata_ok(strata_writer_commit(w));
}

static void test_corrupt_chunk(void **state) {
  (void)state;
  const char *path = test_path(test_tmpdir(), "bad.region");
  build(path, false, N_DENSE);
  strata_region *r;
  strata_region_info info;
  assert_strata_ok(strata_region_open(path, 0, &r));
  assert_strata_ok(strata_region_info_get(r, &info));
  strata_region_close(r);
  /* A nonzero reserved field in entry BAD_ENTRY, checksums repaired so
   * that the structural check is the one that fails. */
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t *img = malloc(info.file_size);
  assert_non_null(img);
  assert_int_equal(pread(fd, img, info.file_size, 0), info.file_size);
  img[info.index_offset + BAD_ENTRY * STRATA__ENTRY_SIZE + STRATA__E_RESERVED] =
      1;
  fuzz_repair_checksums(img, info.file_size);
  assert_int_equal(pwrite(fd, img, info.file_size, 0), info.file_size);
  free(img);
  close(fd);

  assert_strata_ok(strata_region_open(path, 0, &r)); /* O(1) checks pass */
  strata_layer l;
  const void *data;
  uint64_t size;
  for (uint64_t i = 0; i < N_DENSE; i++) {
    uint64_t id = layer_id(false, i);
    int rc = strata_region_get(r, id, &l);
    int drc = strata_region_get_data(r, id, &data, &size);
    assert_int_equal(drc, rc);
    if (i < 192 || i > 255) {
      assert_strata_ok(rc);
      assert_int_equal(l.size, 8 + i % 50);
      continue;
    }
    assert_int_equal(rc, STRATA_E_CORRUPT);
    const char *d = strata_last_error_detail();
    assert_non_null(strstr(d, path));
    assert_non_null(strstr(d, "layer 1200: reserved entry field is not zero"));
    uint64_t ids[2] = {id, layer_id(false, 0)};
    const void *ptrs[2];
    uint64_t sizes[2];
    assert_int_equal(strata_region_get_data_many(r, ids, 2, ptrs, sizes), 1);
    assert_null(ptrs[0]);
    assert_int_equal(sizes[0], 0);
  }
  /* Named layer 195 is in the bad chunk; 3 is not. */
  assert_int_equal(strata_region_get_by_name(r, "n195", 4, &l),
                   STRATA_E_CORRUPT);
  assert_strata_ok(strata_region_get_by_name(r, "n3", 2, &l));
  assert_int_equal(l.id, layer_id(false, 3));
  /* Iteration stops at the chunk, verify and the dense view refuse. */
  strata_region_iter it;
  strata_region_iter_init(r, &it);
  uint64_t seen = 0;
  int rc;
  while ((rc = strata_region_next(&it, &l)) > 0)
    seen++;
  assert_int_equal(rc, STRATA_E_CORRUPT);
  assert_int_equal(seen, 192);
  assert_int_equal(strata_region_verify(r, NULL), STRATA_E_CORRUPT);
  strata_dense_view v;
  assert_int_equal(strata_region_dense_view(r, &v), STRATA_E_CORRUPT);
  strata_region_close(r);
  /* An eager open refuses the file with the same words. */
  assert_int_equal(strata_region_open(path, STRATA_OPEN_CHECK_INDEX, &r),
                   STRATA_E_CORRUPT);
  assert_non_null(strstr(strata_last_error_detail(),
                         "layer 1200: reserved entry field is not zero"));
}

typedef struct reader {
  const strata_region *lazy, *eager;
  bool sparse;
  uint64_t n, start;
  atomic_uint_fast64_t *bad;
} reader;

/* Every layer from `start` on, wrapping: by id, by batch and by name. */
static void *read_all(void *arg) {
  const reader *t = arg;
  uint64_t bad = 0;
  for (uint64_t k = 0; k < t->n; k++) {
    uint64_t i = (t->start + k) % t->n, id = layer_id(t->sparse, i);
    strata_layer a, b;
    const void *p = NULL;
    uint64_t sz = 0;
    bad += strata_region_get(t->lazy, id, &a) != 0 ||
           strata_region_get(t->eager, id, &b) != 0 || a.id != b.id ||
           a.size != b.size || a.checksum != b.checksum ||
           memcmp(a.data, b.data, a.size) != 0 || a.size != 8 + i % 50 ||
           ((const uint8_t *)a.data)[0] != (uint8_t)i;
    bad += strata_region_get_data_many(t->lazy, &id, 1, &p, &sz) != 1 ||
           p != a.data || sz != a.size;
    if (i % 3 == 0) {
      char name[32];
      snprintf(name, sizeof name, "n%" PRIu64, i);
      bad += strata_region_get_by_name(t->lazy, name, strlen(name), &b) != 0 ||
             b.id != id;
    }
  }
  atomic_fetch_add(t->bad, bad);
  return NULL;
}

static void concurrent_first_touch(bool sparse) {
  const uint64_t n = 5000;
  const char *path = test_path(test_tmpdir(), "race.region");
  build(path, sparse, n);
  strata_region *lazy, *eager;
  assert_strata_ok(strata_region_open(path, 0, &lazy));
  assert_strata_ok(strata_region_open(path, STRATA_OPEN_CHECK_INDEX, &eager));
  atomic_uint_fast64_t bad = 0;
  pthread_t th[N_THREADS];
  reader t[N_THREADS];
  for (int k = 0; k < N_THREADS; k++) {
    /* Starts a few entries apart: the threads meet in the same chunks. */
    t[k] = (reader){lazy, eager, sparse, n, (uint64_t)k * 7, &bad};
    assert_int_equal(pthread_create(&th[k], NULL, read_all, &t[k]), 0);
  }
  for (int k = 0; k < N_THREADS; k++)
    assert_int_equal(pthread_join(th[k], NULL), 0);
  assert_int_equal(atomic_load(&bad), 0);
  assert_strata_ok(strata_region_verify(lazy, NULL));
  strata_region_close(lazy);
  strata_region_close(eager);
}

static void test_concurrent_first_touch_dense(void **state) {
  (void)state;
  concurrent_first_touch(false);
}

static void test_concurrent_first_touch_sparse(void **state) {
  (void)state;
  concurrent_first_touch(true);
}

/* The smaps Rss, in kB, of this process's mapping of `path` (the first
 * one), or -1 when there is none or /proc cannot be read. */
static long mapping_rss_kb(const char *path) {
  char real[PATH_MAX];
  assert_non_null(realpath(path, real));
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return -1;
  char line[PATH_MAX + 256];
  bool in = false, found = false;
  long rss = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    int name_at = 0;
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &name_at) == 2 &&
        name_at > 0) {
      line[strcspn(line, "\n")] = '\0';
      in = !found && strcmp(line + name_at, real) == 0;
      found = found || in;
      continue;
    }
    long kb;
    if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
      rss = kb;
  }
  fclose(f);
  return rss;
}

static void test_open_maps_nothing(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *dense = test_path(dir, "dense.region");
  const char *sparse = test_path(dir, "sparse.region");
  build(dense, false, 20000);
  build(sparse, true, 20000);
  const char *paths[] = {dense, sparse};
  for (int k = 0; k < 2; k++) {
    strata_region *r;
    assert_strata_ok(strata_region_open(paths[k], STRATA_OPEN_DEFAULT, &r));
    long rss = mapping_rss_kb(paths[k]);
    if (rss < 0) {
      strata_region_close(r);
      skip(); /* no /proc/self/smaps here */
    }
    assert_int_equal(rss, 0);
    /* A lookup maps what it reads; the name and the layer read as before. */
    const void *data;
    uint64_t size;
    uint64_t i = 4321;
    assert_strata_ok(
        strata_region_get_data(r, layer_id(k == 1, i), &data, &size));
    assert_int_equal(size, 8 + i % 50);
    assert_int_equal(((const uint8_t *)data)[size - 1],
                     (uint8_t)(i + size - 1));
    assert_true(mapping_rss_kb(paths[k]) > 0);
    strata_region_info info;
    assert_strata_ok(strata_region_info_get(r, &info));
    assert_string_equal(info.name, "lazy");
    strata_region_close(r);
    /* Populate keeps the whole file mapped. */
    assert_strata_ok(strata_region_open(paths[k], STRATA_OPEN_POPULATE, &r));
    assert_true((uint64_t)mapping_rss_kb(paths[k]) * 1024 >=
                info.file_size / 4096 * 4096);
    strata_region_close(r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_corrupt_chunk),
      cmocka_unit_test(test_concurrent_first_touch_dense),
      cmocka_unit_test(test_concurrent_first_touch_sparse),
      cmocka_unit_test(test_open_maps_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
