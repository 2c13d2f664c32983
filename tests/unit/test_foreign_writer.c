/* Foreign writers of a store's directory: a region file replaced or
 * removed under an open proto (region-builder, or any writer that does not
 * take the store's lock) makes crystallization fail with STRATA_E_CONFLICT
 * and keep both the file on disk and the proto; the writer's
 * STRATA_WRITER_LOCK_STORE takes the store's lock; the writer refuses a
 * base name whose temporary name would not fit. The foreign writer here is
 * the public strata_writer, as region-builder uses it. */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "test_util.h"

/* ---- helpers ------------------------------------------------------------ */

/* Opens a writer for DIR/FILE with layers id_base .. id_base + n - 1,
 * content "<tag>:<id>"; the caller commits or aborts it. */
static int open_writer(const char *dir, const char *file, uint64_t rid,
                       const char *name, uint32_t flags, strata_writer **w) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = rid;
  o.name = name;
  o.flags = flags;
  return strata_writer_open(test_path(dir, file), &o, w);
}

static void add_layers(strata_writer *w, const char *tag, uint64_t id_base,
                       uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    char data[64];
    snprintf(data, sizeof data, "%s:%" PRIu64, tag, id_base + i);
    assert_strata_ok(
        strata_writer_add(w, id_base + i, NULL, 0, NULL, data, strlen(data)));
  }
}

static void write_region(const char *dir, const char *file, uint64_t rid,
                         const char *name, const char *tag, uint64_t id_base,
                         uint64_t n) {
  strata_writer *w = NULL;
  assert_strata_ok(open_writer(dir, file, rid, name, 0, &w));
  add_layers(w, tag, id_base, n);
  assert_strata_ok(strata_writer_commit(w));
}

/* The file on disk, opened on its own: its layer count and one layer. */
static void expect_file(const char *path, uint64_t layers, uint64_t id,
                        const char *want) {
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, STRATA_OPEN_DEFAULT, &r));
  assert_int_equal(strata_region_layer_count(r), layers);
  strata_layer l;
  assert_strata_ok(strata_region_get(r, id, &l));
  assert_int_equal(l.size, strlen(want));
  assert_memory_equal(l.data, want, l.size);
  strata_region_close(r);
}

/* Hidden files other than the lock: temporary files left behind. */
static int count_temp_files(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += strstr(e->d_name, ".tmp-") != NULL;
  closedir(d);
  return n;
}

static void expect_detail(const char *part) {
  if (strstr(strata_last_error_detail(), part) == NULL)
    fail_msg("the detail lacks \"%s\": %s", part, strata_last_error_detail());
}

/* ---- a base file replaced or removed under a proto ---------------------- */

/* The scenario: a proto is open over region 3; another writer
 * (region-builder without the lock) replaces the region's file; the
 * crystallization must not rename the merge of the old file over it. */
static void test_replaced_under_proto(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *file = test_path(dir, "base.region");
  char path[4096];
  snprintf(path, sizeof path, "%s", file);
  write_region(dir, "base.region", 3, "base", "old", 0, 4);
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 3, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "mine", 4));

  /* The foreign writer: the same region, other layers. With the lock
   * option it is refused, naming this process (the store's writer). */
  strata_writer *w = NULL;
  assert_strata_err(
      open_writer(dir, "base.region", 3, "base", STRATA_WRITER_LOCK_STORE, &w),
      STRATA_E_LOCKED);
  char want[64];
  snprintf(want, sizeof want, "store is locked by pid %ld", (long)getpid());
  expect_detail(want);
  expect_detail(dir);
  write_region(dir, "base.region", 3, "base", "new", 10, 2);

  assert_strata_err(strata_crystallize(s, 3), STRATA_E_CONFLICT);
  expect_detail(path);
  expect_detail("region 3 (\"base\")");
  expect_detail("another writer replaced it");
  expect_detail("the proto is intact");
  /* The replacement is intact on disk, and nothing was left behind. */
  expect_file(path, 2, 10, "new:10");
  assert_int_equal(count_temp_files(dir), 0);
  /* The proto is intact and usable: readers still see its view. */
  test_expect_layer(s, 3, 1, "mine");
  test_expect_layer(s, 3, 0, "old:0");
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, NULL, "more", 4));
  test_expect_layer(s, 3, 2, "more");
  strata_proto_info info;
  assert_strata_ok(strata_proto_info_get(p, &info));
  assert_int_equal(info.changed, 2);

  /* A refresh keeps the region this process writes (the proto), so a
   * retry fails the same way: the conflict stands until the proto goes. */
  assert_strata_ok(strata_store_refresh(s));
  assert_strata_err(strata_crystallize(s, 3), STRATA_E_CONFLICT);
  expect_file(path, 2, 10, "new:10");
  test_expect_layer(s, 3, 1, "mine");

  /* Discarding it, then refreshing, serves the replacement. */
  assert_strata_ok(strata_proto_discard(p));
  assert_strata_ok(strata_store_refresh(s));
  test_expect_layer(s, 3, 10, "new:10");
  test_expect_layer(s, 3, 11, "new:11");
  test_expect_layer(s, 3, 1, NULL);
  /* And a new proto over it crystallizes normally. */
  assert_strata_ok(strata_proto_open(s, 3, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "again", 5));
  assert_strata_ok(strata_crystallize(s, 3));
  /* A small change: a delta over the replacement, which stays as it is. */
  expect_file(path, 2, 10, "new:10");
  expect_file(test_path(dir, "base.1.delta"), 1, 1, "again");
  test_expect_layer(s, 3, 1, "again");
  test_expect_layer(s, 3, 10, "new:10");
  strata_store_close(s);
}

/* Eviction passes over a proto it cannot crystallize: with region 1's
 * file replaced by a foreign writer, its proto (the largest) fails with a
 * conflict at every round, and stopping there kept every other proto in
 * memory until puts were refused. The other proto must be crystallized
 * instead, and every put accepted. */
static void test_eviction_passes_conflicted_proto(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char apath[4096];
  snprintf(apath, sizeof apath, "%s", test_path(dir, "a.region"));
  write_region(dir, "a.region", 1, "a", "a", 0, 1);
  write_region(dir, "b.region", 2, "b", "b", 0, 1);
  strata_store *s = test_open_store_limited(dir, 8u << 20);
  static char big[256 << 10];
  memset(big, 'x', sizeof big);

  strata_proto *a = NULL, *b = NULL;
  assert_strata_ok(strata_proto_open(s, 1, &a));
  for (uint64_t i = 1; i <= 20; i++) /* 5 MiB: the largest proto */
    assert_strata_ok(strata_proto_put(a, i, NULL, 0, NULL, big, sizeof big));
  write_region(dir, "a.region", 1, "a", "foreign", 100, 2);
  assert_strata_ok(strata_proto_open(s, 2, &b));
  for (uint64_t i = 1; i <= 16; i++) { /* 4 MiB more: past every threshold */
    int rc = strata_proto_put(b, i, NULL, 0, NULL, big, sizeof big);
    if (rc != 0)
      fail_msg("put %" PRIu64 " into region 2: %s", i,
               strata_last_error_detail());
  }
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_true(st.evictions >= 1);
  /* Region 2 went to its file; region 1's proto is intact, its
   * replacement untouched on disk. */
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "b.region"), 0, &r));
  assert_true(strata_region_layer_count(r) > 1);
  strata_region_close(r);
  expect_file(apath, 2, 100, "foreign:100");
  strata_proto_info info;
  assert_strata_ok(strata_proto_info_get(a, &info));
  assert_int_equal(info.changed, 20);
  assert_strata_err(strata_crystallize(s, 1), STRATA_E_CONFLICT);
  strata_store_close(s);
}

static void test_removed_under_proto(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char path[4096];
  snprintf(path, sizeof path, "%s", test_path(dir, "gone.region"));
  write_region(dir, "gone.region", 4, "gone", "old", 0, 2);
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 4, &p));
  assert_strata_ok(strata_proto_put(p, 5, NULL, 0, NULL, "mine", 4));
  assert_int_equal(unlink(path), 0);

  assert_strata_err(strata_crystallize(s, 4), STRATA_E_CONFLICT);
  expect_detail(path);
  expect_detail("region 4 (\"gone\")");
  expect_detail("found no file: another writer removed it");
  /* Nothing was resurrected under the name. */
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(count_temp_files(dir), 0);
  test_expect_layer(s, 4, 5, "mine");

  assert_strata_ok(strata_proto_discard(p));
  assert_strata_ok(strata_store_refresh(s));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), 0);
  strata_read_end(&t);
  strata_store_close(s);
}

/* A new region's name taken by another writer before the crystallization
 * is refused as before (STRATA_E_EXIST); the file is kept. */
static void test_new_region_name_taken(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char path[4096];
  snprintf(path, sizeof path, "%s", test_path(dir, "fresh.region"));
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 5, "fresh", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 0, NULL, 0, NULL, "mine", 4));
  write_region(dir, "fresh.region", 5, "fresh", "theirs", 0, 1);
  assert_strata_err(strata_crystallize(s, 5), STRATA_E_EXIST);
  expect_detail(path);
  expect_file(path, 1, 0, "theirs:0");
  test_expect_layer(s, 5, 0, "mine");
  strata_store_close(s);
}

/* ---- the writer's store lock --------------------------------------------- */

/* A dangling symlink that appears under a new region's name after the proto
 * was created is a name taken, as strata_proto_create() counts it: the
 * crystallization must not replace the link. */
static void test_new_region_name_taken_by_symlink(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char link[4096];
  snprintf(link, sizeof link, "%s", test_path(dir, "fresh.region"));
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 8, "fresh", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "mine", 4));
  assert_int_equal(symlink("/nonexistent/elsewhere.region", link), 0);
  int rc = strata_crystallize(s, 8);
  assert_true(rc == STRATA_E_EXIST || rc == STRATA_E_CONFLICT);
  expect_detail(link);
  struct stat st;
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISLNK(st.st_mode));   /* the link is still there */
  test_expect_layer(s, 8, 1, "mine"); /* and the proto */
  strata_store_close(s);
}

static void test_writer_takes_store_lock(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_writer *w = NULL;
  /* Not a store (no lock file): written without a lock, none created. */
  assert_strata_ok(
      open_writer(dir, "a.region", 1, "a", STRATA_WRITER_LOCK_STORE, &w));
  add_layers(w, "a", 0, 1);
  assert_strata_ok(strata_writer_commit(w));
  assert_int_equal(access(test_path(dir, ".strata.lock"), F_OK), -1);

  /* A store that has written: its lock file exists, and after close no
   * one holds it. */
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 1, &p));
  strata_store_close(s);
  assert_int_equal(access(test_path(dir, ".strata.lock"), F_OK), 0);

  /* While the writer holds the lock, a store cannot begin writing, and is
   * told which process holds it. */
  assert_strata_ok(
      open_writer(dir, "b.region", 2, "b", STRATA_WRITER_LOCK_STORE, &w));
  add_layers(w, "b", 0, 1);
  s = test_open_store_quiet(dir);
  assert_strata_err(strata_proto_open(s, 1, &p), STRATA_E_LOCKED);
  char want[64];
  snprintf(want, sizeof want, "store is locked by pid %ld", (long)getpid());
  expect_detail(want);
  /* Commit releases it (abort would too). */
  assert_strata_ok(strata_writer_commit(w));
  assert_strata_ok(strata_proto_open(s, 2, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "b1", 2));
  assert_strata_ok(strata_crystallize(s, 2));
  test_expect_layer(s, 2, 0, "b:0");
  test_expect_layer(s, 2, 1, "b1");

  /* The store holds the lock now: a locking writer is refused before it
   * creates anything; abort of a refused open is not needed. */
  assert_strata_err(
      open_writer(dir, "c.region", 3, "c", STRATA_WRITER_LOCK_STORE, &w),
      STRATA_E_LOCKED);
  expect_detail(want);
  assert_int_equal(count_temp_files(dir), 0);
  strata_store_close(s);

  /* Unknown flags are refused. */
  assert_strata_err(open_writer(dir, "c.region", 3, "c", 1u << 7, &w),
                    STRATA_E_INVAL);
  expect_detail("unknown writer flags 0x80");
}

/* ---- the temporary name's room ----------------------------------------- */

static void test_base_name_room(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char name[NAME_MAX + 2];
  size_t longest = NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA;
  memset(name, 'n', longest);
  strcpy(name + longest - strlen(".region"), ".region");
  strata_writer *w = NULL;
  assert_strata_ok(open_writer(dir, name, 1, "room", 0, &w));
  add_layers(w, "room", 0, 1);
  assert_strata_ok(strata_writer_commit(w));
  expect_file(test_path(dir, name), 1, 0, "room:0");

  /* One byte more: refused at open, nothing created. */
  memset(name, 'm', longest + 1);
  strcpy(name + longest + 1 - strlen(".region"), ".region");
  assert_strata_err(open_writer(dir, name, 1, "room", 0, &w), STRATA_E_LIMIT);
  char want[96];
  snprintf(want, sizeof want, "the file name is %zu bytes; at most %zu fit",
           longest + 1, longest);
  expect_detail(want);
  assert_int_equal(count_temp_files(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replaced_under_proto),
      cmocka_unit_test(test_removed_under_proto),
      cmocka_unit_test(test_eviction_passes_conflicted_proto),
      cmocka_unit_test(test_new_region_name_taken),
      cmocka_unit_test(test_new_region_name_taken_by_symlink),
      cmocka_unit_test(test_writer_takes_store_lock),
      cmocka_unit_test(test_base_name_room),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
