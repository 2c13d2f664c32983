/* Progress callbacks (strata_progress_fn, <strata/types.h>) of
 * strata_region_verify_ex(), strata_crystallize_ex() and the writer: the
 * reports are monotonic and end at the totals, and a non-zero return
 * cancels with STRATA_E_CANCELED, leaving the region, the proto, the store
 * and the directory as they were. */
#include <dirent.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "test_util.h"

/* What a callback saw; it cancels at call `cancel_at` (1-based; 0: never). */
typedef struct seen {
  unsigned calls, cancel_at;
  strata_progress first, last;
} seen;

static int record(void *ctx, const strata_progress *p) {
  seen *s = ctx;
  if (s->calls == 0) {
    s->first = *p;
  } else {
    /* Monotonic, against fixed totals. */
    assert_true(p->bytes_done >= s->last.bytes_done);
    assert_true(p->layers_done >= s->last.layers_done);
    assert_int_equal(p->bytes_total, s->last.bytes_total);
    assert_int_equal(p->layers_total, s->last.layers_total);
  }
  if (p->bytes_total > 0)
    assert_true(p->bytes_done <= p->bytes_total);
  if (p->layers_total > 0)
    assert_true(p->layers_done <= p->layers_total);
  s->last = *p;
  s->calls++;
  return s->cancel_at != 0 && s->calls == s->cancel_at;
}

/* Content bytes of the test regions: a layer of BIG bytes spans several
 * progress steps (4 MiB for verify, 8 MiB for the writer). */
#define BIG ((size_t)20 << 20)
#define SMALL_N 40
#define SMALL 1000

static uint8_t *big_buf(void) {
  uint8_t *b = malloc(BIG);
  assert_non_null(b);
  test_fill_seeded(b, BIG, 7);
  return b;
}

/* dir/r.region: region 1 "r": SMALL_N layers of SMALL bytes (ids 0..),
 * then the BIG layer as id 100. */
static void write_region(const char *dir) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 1;
  o.name = "r";
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, "r.region"), &o, &w));
  uint8_t small[SMALL];
  for (uint64_t i = 0; i < SMALL_N; i++) {
    test_fill_seeded(small, SMALL, i);
    assert_strata_ok(strata_writer_add(w, i, NULL, 0, NULL, small, SMALL));
  }
  uint8_t *big = big_buf();
  assert_strata_ok(strata_writer_add(w, 100, "big", 3, NULL, big, BIG));
  free(big);
  assert_strata_ok(strata_writer_commit(w));
}

/* The names in a directory, sorted into one string. */
static char *dir_listing(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  char *names[64];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      assert_true(n < 64);
      names[n++] = strdup(e->d_name);
    }
  closedir(d);
  for (size_t i = 1; i < n; i++) /* insertion sort */
    for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
      char *t = names[k];
      names[k] = names[k - 1];
      names[k - 1] = t;
    }
  char *out = calloc(1, 64 * 300);
  assert_non_null(out);
  for (size_t i = 0; i < n; i++) {
    strcat(out, names[i]);
    strcat(out, "\n");
    free(names[i]);
  }
  return out;
}

/* ---- verify ------------------------------------------------------------- */

static void test_verify_progress(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir);
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &r));
  seen s = {0};
  strata_verify_options o;
  strata_verify_options_init(&o);
  assert_int_equal(o.struct_size, sizeof o);
  assert_null(o.progress);
  o.progress = record;
  o.progress_ctx = &s;
  assert_strata_ok(strata_region_verify_ex(r, &o, NULL));
  /* Totals: every layer's content; several reports inside the big layer
   * (20 MiB in 4 MiB steps), and a last one at the totals. */
  assert_int_equal(s.first.bytes_total, SMALL_N * SMALL + BIG);
  assert_int_equal(s.first.layers_total, SMALL_N + 1);
  assert_true(s.calls >= 5);
  assert_true(s.first.bytes_done < s.first.bytes_total);
  assert_int_equal(s.last.bytes_done, s.last.bytes_total);
  assert_int_equal(s.last.layers_done, s.last.layers_total);
  /* Without options, and the plain form: the same verdict. */
  assert_strata_ok(strata_region_verify_ex(r, NULL, NULL));
  assert_strata_ok(strata_region_verify(r, NULL));
  strata_region_close(r);
}

static void test_verify_cancel(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir);
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &r));
  seen s = {.cancel_at = 2};
  strata_verify_options o;
  strata_verify_options_init(&o);
  o.progress = record;
  o.progress_ctx = &s;
  uint64_t bad = 12345;
  assert_strata_err(strata_region_verify_ex(r, &o, &bad), STRATA_E_CANCELED);
  assert_int_equal(s.calls, 2); /* never called again after it canceled */
  assert_int_equal(bad, 12345); /* says nothing of a layer */
  assert_non_null(strstr(strata_last_error_detail(), "r.region"));
  assert_non_null(strstr(strata_last_error_detail(), "canceled"));
  /* Canceling at the very last report still cancels. */
  seen all = {0};
  o.progress_ctx = &all;
  assert_strata_ok(strata_region_verify_ex(r, &o, NULL));
  seen last = {.cancel_at = all.calls};
  o.progress_ctx = &last;
  assert_strata_err(strata_region_verify_ex(r, &o, NULL), STRATA_E_CANCELED);
  strata_region_close(r);
}

static void test_verify_options_checked(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir);
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &r));
  strata_verify_options o;
  strata_verify_options_init(&o);
  o.flags = 1;
  assert_strata_err(strata_region_verify_ex(r, &o, NULL), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "flags"));
  strata_verify_options_init(&o);
  o.struct_size = 0; /* not filled by strata_verify_options_init() */
  assert_strata_err(strata_region_verify_ex(r, &o, NULL), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "strata_verify_options"));
  assert_strata_err(strata_region_verify_ex(NULL, NULL, NULL), STRATA_E_INVAL);
  strata_region_close(r);
}

/* ---- crystallize -------------------------------------------------------- */

/* A proto over region 1: layer 0 replaced, layer 1 removed, layer 200
 * added (a second big one). */
static void change_region(strata_store *st) {
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(st, 1, &p));
  assert_strata_ok(strata_proto_put(p, 0, NULL, 0, NULL, "mine", 4));
  assert_strata_ok(strata_proto_remove(p, 1));
  uint8_t *big = big_buf();
  assert_strata_ok(strata_proto_put(p, 200, NULL, 0, NULL, big, BIG));
  free(big);
}

static void test_crystallize_progress(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir);
  strata_store *st = test_open_store_quiet(dir);
  change_region(st);
  seen s = {0};
  strata_crystallize_options o;
  strata_crystallize_options_init(&o);
  assert_int_equal(o.struct_size, sizeof o);
  assert_null(o.progress);
  o.progress = record;
  o.progress_ctx = &s;
  assert_strata_ok(strata_crystallize_ex(st, 1, &o));
  /* The merged content: SMALL_N - 1 small layers and two big ones; the
   * bytes count the padding before each layer (alignment 64), as the file
   * holds them. */
  uint64_t layers = SMALL_N - 1 + 2;
  assert_int_equal(s.first.layers_total, layers);
  uint64_t content = 4 + (SMALL_N - 2) * SMALL + 2 * BIG;
  assert_true(s.first.bytes_total >= content);
  assert_true(s.first.bytes_total < content + layers * 64);
  assert_true(s.calls >= 4); /* 40 MiB in 8 MiB steps, and the end */
  assert_int_equal(s.last.bytes_done, s.last.bytes_total);
  assert_int_equal(s.last.layers_done, layers);
  test_expect_layer(st, 1, 0, "mine");
  test_expect_layer(st, 1, 1, NULL);
  strata_store_close(st);
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &r));
  assert_int_equal(strata_region_layer_count(r), layers);
  strata_region_close(r);
}

static void test_crystallize_cancel(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir);
  strata_store *st = test_open_store_quiet(dir);
  change_region(st);
  struct stat before, after;
  assert_int_equal(stat(test_path(dir, "r.region"), &before), 0);
  char *listing = dir_listing(dir);
  strata_store_stats sb, sa;
  assert_strata_ok(strata_store_stats_get(st, &sb));
  for (unsigned at = 1; at <= 2; at++) {
    seen s = {.cancel_at = at};
    strata_crystallize_options o;
    strata_crystallize_options_init(&o);
    o.progress = record;
    o.progress_ctx = &s;
    assert_strata_err(strata_crystallize_ex(st, 1, &o), STRATA_E_CANCELED);
    assert_int_equal(s.calls, at);
    assert_non_null(strstr(strata_last_error_detail(), "canceled"));
    /* The file and the directory are as they were: no temporary file. */
    assert_int_equal(stat(test_path(dir, "r.region"), &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_int_equal(after.st_size, before.st_size);
    char *now = dir_listing(dir);
    assert_string_equal(now, listing);
    free(now);
    /* The proto is kept: readers still see its changes. */
    test_expect_layer(st, 1, 0, "mine");
    test_expect_layer(st, 1, 1, NULL);
  }
  assert_strata_ok(strata_store_stats_get(st, &sa));
  assert_int_equal(sa.crystallizations, sb.crystallizations);
  /* And crystallizing again succeeds. */
  assert_strata_ok(strata_crystallize(st, 1));
  test_expect_layer(st, 1, 0, "mine");
  strata_store_close(st);
  free(listing);
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &r));
  assert_int_equal(strata_region_layer_count(r), SMALL_N - 1 + 2);
  strata_layer l;
  assert_strata_ok(strata_region_get(r, 0, &l));
  assert_int_equal(l.size, 4);
  assert_memory_equal(l.data, "mine", 4);
  strata_region_close(r);
}

/* A new region without layers: the writer reports nothing, so
 * crystallization reports the end itself. */
static void test_crystallize_empty(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *st = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(st, 5, "empty", 5, NULL, &p));
  seen s = {0};
  strata_crystallize_options o;
  strata_crystallize_options_init(&o);
  o.progress = record;
  o.progress_ctx = &s;
  assert_strata_ok(strata_crystallize_ex(st, 5, &o));
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.last.bytes_done, 0);
  assert_int_equal(s.last.bytes_total, 0);
  assert_int_equal(s.last.layers_total, 0);
  o.flags = 1;
  assert_strata_err(strata_crystallize_ex(st, 5, &o), STRATA_E_INVAL);
  strata_store_close(st);
}

/* ---- the writer --------------------------------------------------------- */

static void test_writer_cancel(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  seen s = {.cancel_at = 2};
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 1;
  o.name = "w";
  o.progress = record;
  o.progress_ctx = &s;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, "w.region"), &o, &w));
  assert_strata_ok(strata_writer_add(w, 0, NULL, 0, NULL, "a", 1)); /* call 1 */
  assert_int_equal(s.last.layers_done, 1);
  assert_int_equal(s.last.bytes_total, 0); /* the writer cannot know */
  assert_strata_err(strata_writer_add(w, 1, NULL, 0, NULL, "b", 1),
                    STRATA_E_CANCELED);
  /* Failed: commit refuses, abort removes the temporary file. */
  assert_true(strata_writer_commit(w) < 0);
  char *listing = dir_listing(dir);
  assert_string_equal(listing, "");
  free(listing);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_verify_progress),
      cmocka_unit_test(test_verify_cancel),
      cmocka_unit_test(test_verify_options_checked),
      cmocka_unit_test(test_crystallize_progress),
      cmocka_unit_test(test_crystallize_cancel),
      cmocka_unit_test(test_crystallize_empty),
      cmocka_unit_test(test_writer_cancel),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
