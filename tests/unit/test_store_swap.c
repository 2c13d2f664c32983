/* strata__store_swap_files() (store_refresh.c): the refresh whose file list
 * comes from the caller (the remote follower's swap). The catalog becomes
 * exactly the listed files: a subset, a superset, a file replaced under its
 * name; a missing, corrupt or duplicate file fails the swap, naming the
 * file (both files for a duplicate), with the catalog unchanged; a list
 * with delta files swaps each region's stack whole; and a
 * reader taking snapshots during many swaps between two sets always sees
 * one whole set. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include "delta_corrupt.h"
#include "test_util.h"

#include "store/store_internal.h"

/* Writes DIR/FILE: region `id` named `name`, whose layer 1 holds `text`
 * (the set it belongs to) and layer 2 the region's id in text. */
static void write_region(const char *dir, const char *file, uint64_t id,
                         const char *name, const char *text) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = name;
  o.region_id = id;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, file), &o, &w));
  char idtext[32];
  snprintf(idtext, sizeof idtext, "%" PRIu64, id);
  assert_strata_ok(strata_writer_add(w, 1, NULL, 0, NULL, text, strlen(text)));
  assert_strata_ok(
      strata_writer_add(w, 2, NULL, 0, NULL, idtext, strlen(idtext)));
  assert_strata_ok(strata_writer_commit(w));
}

/* The regions a fresh snapshot serves, as "ID=TEXT ..." in id order. */
static void served(strata_store *s, char *out, size_t cap) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  out[0] = '\0';
  uint64_t n = strata_store_region_count(&t);
  for (uint64_t i = 0; i < n; i++) {
    strata_store_region r;
    assert_strata_ok(strata_store_region_at(&t, i, &r));
    strata_layer l;
    assert_strata_ok(strata_get(&t, r.id, 1, &l));
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s%" PRIu64 "=%.*s", len ? " " : "", r.id,
             (int)l.size, (const char *)l.data);
  }
  strata_read_end(&t);
}

static void assert_served(strata_store *s, const char *want) {
  char got[4096];
  served(s, got, sizeof got);
  assert_string_equal(got, want);
}

/* The address of region `rid`'s layer 1 in a fresh snapshot: the same
 * address after a swap means the same mapping, reused. */
static const void *layer_addr(strata_store *s, uint64_t rid) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_ok(strata_get(&t, rid, 1, &l));
  strata_read_end(&t);
  return l.data;
}

static void test_subset_superset_replace(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "a", "A");
  write_region(dir, "b.region", 2, "b", "B");
  write_region(dir, "c.region", 3, "c", "C");
  strata_store *s = test_open_store_quiet(dir);
  assert_served(s, "1=A 2=B 3=C");
  const void *a0 = layer_addr(s, 1);

  /* A subset: c is dropped although its file stays in the directory. */
  const char *ab[] = {"b.region", "a.region"};
  assert_strata_ok(strata__store_swap_files(s, ab, 2));
  assert_served(s, "1=A 2=B");
  assert_ptr_equal(layer_addr(s, 1), a0); /* reused, not reopened */

  /* A superset: c comes back, and a new file d joins. */
  write_region(dir, "d.region", 4, "d", "D");
  const char *abcd[] = {"a.region", "b.region", "c.region", "d.region"};
  assert_strata_ok(strata__store_swap_files(s, abcd, 4));
  assert_served(s, "1=A 2=B 3=C 4=D");
  assert_ptr_equal(layer_addr(s, 1), a0);

  /* The same list again changes nothing. */
  assert_strata_ok(strata__store_swap_files(s, abcd, 4));
  assert_served(s, "1=A 2=B 3=C 4=D");

  /* a.region replaced under its name (a new inode): the new file is
   * served; a snapshot open across the swap keeps the old one. */
  strata_txn old;
  assert_strata_ok(strata_read_begin(s, &old));
  write_region(dir, "a.region", 1, "a", "A2");
  assert_strata_ok(strata__store_swap_files(s, abcd, 4));
  assert_served(s, "1=A2 2=B 3=C 4=D");
  strata_layer l;
  assert_strata_ok(strata_get(&old, 1, 1, &l));
  assert_int_equal(l.size, 1);
  assert_memory_equal(l.data, "A", 1);
  strata_read_end(&old);

  /* The empty list empties the catalog. */
  assert_strata_ok(strata__store_swap_files(s, NULL, 0));
  assert_served(s, "");
  strata_store_close(s);
}

/* Each failure leaves the catalog as it was, with a detail naming the
 * file (or both files). */
static void test_failures_change_nothing(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "a", "A");
  write_region(dir, "b.region", 2, "b", "B");
  strata_store *s = test_open_store_quiet(dir);
  const char *ab[] = {"a.region", "b.region"};
  assert_strata_ok(strata__store_swap_files(s, ab, 2));
  const void *a0 = layer_addr(s, 1);
  char want[8192];

  /* A listed file missing. */
  const char *missing[] = {"a.region", "gone.region"};
  assert_strata_err(strata__store_swap_files(s, missing, 2), -ENOENT);
  assert_non_null(
      strstr(strata_last_error_detail(), test_path(dir, "gone.region")));
  assert_served(s, "1=A 2=B");

  /* A listed file that is not a region. */
  uint8_t junk[4096];
  test_fill_seeded(junk, sizeof junk, 9);
  test_write_file(test_path(dir, "junk.region"), junk, sizeof junk);
  const char *bad[] = {"a.region", "junk.region"};
  assert_strata_err(strata__store_swap_files(s, bad, 2), STRATA_E_BAD_MAGIC);
  snprintf(want, sizeof want,
           "%s: bad magic at offset 0 (not a strata region file)",
           test_path(dir, "junk.region"));
  assert_string_equal(strata_last_error_detail(), want);
  assert_served(s, "1=A 2=B");

  /* A region file cut short: corrupt. */
  size_t len = 0;
  uint8_t *img = test_read_file(test_path(dir, "b.region"), &len);
  test_write_file(test_path(dir, "short.region"), img, len - 1);
  free(img);
  const char *cut[] = {"short.region"};
  assert_strata_err(strata__store_swap_files(s, cut, 1), STRATA_E_CORRUPT);
  assert_non_null(
      strstr(strata_last_error_detail(), test_path(dir, "short.region")));
  assert_served(s, "1=A 2=B");

  /* Two files with one region id: both named. */
  write_region(dir, "twin.region", 1, "twin", "T");
  const char *twin[] = {"a.region", "b.region", "twin.region"};
  assert_strata_err(strata__store_swap_files(s, twin, 3), STRATA_E_DUPLICATE);
  snprintf(want, sizeof want, "%s and %s both hold region id 1",
           test_path(dir, "a.region"), test_path(dir, "twin.region"));
  assert_string_equal(strata_last_error_detail(), want);
  assert_served(s, "1=A 2=B");
  assert_ptr_equal(layer_addr(s, 1), a0);

  /* Two files with one region name. */
  write_region(dir, "b2.region", 7, "b", "B7");
  const char *named[] = {"a.region", "b.region", "b2.region"};
  assert_strata_err(strata__store_swap_files(s, named, 3), STRATA_E_DUPLICATE);
  snprintf(want, sizeof want, "%s and %s both hold region name \"b\"",
           test_path(dir, "b.region"), test_path(dir, "b2.region"));
  assert_string_equal(strata_last_error_detail(), want);
  assert_served(s, "1=A 2=B");

  /* Names that are not region files of the directory, or listed twice. */
  const char *names[][2] = {{"a.region", "../a.region"},
                            {"a.region", ".hidden.region"},
                            {"a.region", "a.txt"},
                            {"a.region", "a.region"}};
  for (size_t i = 0; i < 4; i++) {
    const char *list[] = {names[i][0], names[i][1]};
    assert_strata_err(strata__store_swap_files(s, list, 2), STRATA_E_INVAL);
    assert_non_null(strstr(strata_last_error_detail(), names[i][1]));
    assert_served(s, "1=A 2=B");
  }

  /* A proto open: refused; once discarded, the swap works. */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 2, &p));
  assert_strata_err(strata__store_swap_files(s, ab, 1), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), "proto"));
  assert_strata_ok(strata_proto_discard(p));
  assert_strata_ok(strata__store_swap_files(s, ab, 1));
  assert_served(s, "1=A");
  strata_store_close(s);
}

/* ---- stacks: a base and its delta files --------------------------------- */

/* One crystallization through a proto: layer 1 becomes `text`, and layer
 * 2 is removed when `drop2` (a tombstone in the delta). */
static void crystallize_change(strata_store *s, const char *text, bool drop2) {
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 1, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, text, strlen(text)));
  if (drop2)
    assert_strata_ok(strata_proto_remove(p, 2));
  assert_strata_ok(strata_crystallize(s, 1));
  assert_strata_ok(strata_proto_discard(p));
}

static bool has_layer2(strata_store *s) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  int rc = strata_get(&t, 1, 2, &l);
  strata_read_end(&t);
  assert_true(rc == 0 || rc == STRATA_E_NOT_FOUND);
  return rc == 0;
}

/* The list holds delta files too (docs/REMOTE.md, "The swap"): each
 * region's chain is found among the listed deltas only, so the catalog
 * serves exactly the listed stack (a tombstone included); a listed delta
 * on no listed chain, missing, or not a delta fails the swap naming it,
 * with the catalog unchanged. */
static void test_swap_stacks(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "a", "A");
  write_region(dir, "b.region", 2, "b", "B");
  strata_store *s = test_open_store_quiet(dir);
  crystallize_change(s, "A1", false);
  crystallize_change(s, "A2", true);
  assert_served(s, "1=A2 2=B");
  assert_false(has_layer2(s));

  /* The base alone: the deltas in the directory are not served. */
  const char *base[] = {"b.region", "a.region"};
  assert_strata_ok(strata__store_swap_files(s, base, 2));
  assert_served(s, "1=A 2=B");
  assert_true(has_layer2(s));
  /* One delta, then both (in any order in the list). */
  const char *one[] = {"a.region", "a.1.delta", "b.region"};
  assert_strata_ok(strata__store_swap_files(s, one, 3));
  assert_served(s, "1=A1 2=B");
  assert_true(has_layer2(s));
  const char *two[] = {"a.2.delta", "a.region", "a.1.delta", "b.region"};
  assert_strata_ok(strata__store_swap_files(s, two, 4));
  assert_served(s, "1=A2 2=B");
  assert_false(has_layer2(s));

  char want[8192];
  /* A delta whose parent is not listed: on no chain. */
  const char *gap[] = {"a.region", "a.2.delta", "b.region"};
  assert_strata_err(strata__store_swap_files(s, gap, 3), STRATA_E_CORRUPT);
  snprintf(want, sizeof want,
           "%s: listed delta file not on the chain of any listed base",
           test_path(dir, "a.2.delta"));
  assert_non_null(strstr(strata_last_error_detail(), want));
  assert_served(s, "1=A2 2=B");
  /* Deltas without their base. */
  const char *nobase[] = {"a.1.delta", "b.region"};
  assert_strata_err(strata__store_swap_files(s, nobase, 2), STRATA_E_CORRUPT);
  assert_non_null(strstr(strata_last_error_detail(), "a.1.delta"));
  assert_served(s, "1=A2 2=B");
  /* A listed delta missing, and a file named like a delta that is not
   * one. */
  const char *gone[] = {"a.region", "a.1.delta", "a.3.delta"};
  assert_strata_err(strata__store_swap_files(s, gone, 3), -ENOENT);
  assert_non_null(
      strstr(strata_last_error_detail(), test_path(dir, "a.3.delta")));
  write_region(dir, "x.delta", 9, "x", "X");
  const char *notd[] = {"a.region", "x.delta"};
  assert_strata_err(strata__store_swap_files(s, notd, 2), STRATA_E_CORRUPT);
  snprintf(want, sizeof want, "%s: listed as a delta file, but it is not one",
           test_path(dir, "x.delta"));
  assert_non_null(strstr(strata_last_error_detail(), want));
  assert_served(s, "1=A2 2=B");
  assert_false(has_layer2(s));
  /* A listed delta that opens but whose index fails when the stack is
   * built: the swap fails with that failure's detail (the delta, its
   * offset), not as a delta on no chain. */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 1, &p));
  assert_strata_ok(strata_proto_put(p, 7, NULL, 0, NULL, "seven", 5));
  assert_strata_ok(strata_proto_put(p, 1000, NULL, 0, NULL, "k", 1));
  assert_strata_ok(strata_crystallize(s, 1));
  assert_strata_ok(strata_proto_discard(p));
  assert_strata_ok(strata__store_swap_files(s, two, 4));
  break_id_order(test_path(dir, "a.3.delta"));
  const char *three[] = {"a.region", "a.1.delta", "a.2.delta", "a.3.delta",
                         "b.region"};
  assert_strata_err(strata__store_swap_files(s, three, 5), STRATA_E_CORRUPT);
  snprintf(want, sizeof want,
           "its index fails at id order slot 1 (file offset %" PRIu64 ")",
           broken_off);
  assert_non_null(strstr(strata_last_error_detail(), want));
  assert_non_null(
      strstr(strata_last_error_detail(), test_path(dir, "a.3.delta")));
  assert_served(s, "1=A2 2=B");
  strata_store_close(s);
}

/* ---- two sets, many swaps, one reader ----------------------------------- */

/* Set A: regions 1 and 2 holding "A"; set B: regions 1, 2 and 3 holding
 * "B". Both sets lie in the directory under different file names. */
static const char *const set_a[] = {"a1.region", "a2.region"};
static const char *const set_b[] = {"b1.region", "b2.region", "b3.region"};

typedef struct reader_job {
  strata_store *s;
  atomic_bool stop;
  atomic_uint_fast64_t snapshots;
  uint64_t seen_a, seen_b;
  char bad[512]; /* the first inconsistent snapshot, or "" */
} reader_job;

/* One snapshot: "A" or "B" when it shows exactly one whole set; else
 * records what it saw. */
static void check_snapshot(reader_job *j) {
  strata_txn t;
  if (strata_read_begin(j->s, &t) != 0) {
    snprintf(j->bad, sizeof j->bad, "read_begin: %s",
             strata_last_error_detail());
    return;
  }
  char seen[4][8] = {"", "", "", ""};
  uint64_t count = strata_store_region_count(&t);
  for (uint64_t id = 1; id <= 3; id++) {
    strata_layer l;
    if (strata_get(&t, id, 1, &l) == 0)
      snprintf(seen[id], sizeof seen[id], "%.*s", (int)l.size,
               (const char *)l.data);
  }
  strata_read_end(&t);
  bool a = count == 2 && strcmp(seen[1], "A") == 0 &&
           strcmp(seen[2], "A") == 0 && seen[3][0] == '\0';
  bool b = count == 3 && strcmp(seen[1], "B") == 0 &&
           strcmp(seen[2], "B") == 0 && strcmp(seen[3], "B") == 0;
  if (a)
    j->seen_a++;
  else if (b)
    j->seen_b++;
  else if (j->bad[0] == '\0')
    snprintf(j->bad, sizeof j->bad,
             "a mixed snapshot: %" PRIu64 " regions, 1=%s 2=%s 3=%s", count,
             seen[1], seen[2], seen[3]);
}

static void *reader(void *arg) {
  reader_job *j = arg;
  while (!atomic_load(&j->stop) && j->bad[0] == '\0') {
    check_snapshot(j);
    atomic_fetch_add(&j->snapshots, 1);
  }
  return NULL;
}

static void test_reader_sees_whole_sets(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a1.region", 1, "r1", "A");
  write_region(dir, "a2.region", 2, "r2", "A");
  write_region(dir, "b1.region", 1, "r1", "B");
  write_region(dir, "b2.region", 2, "r2", "B");
  write_region(dir, "b3.region", 3, "r3", "B");
  strata_store *s = test_open_store_quiet(dir);
  assert_strata_ok(strata__store_swap_files(s, set_a, 2));
  reader_job j = {.s = s};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, reader, &j), 0);
  enum { SWAPS = 400 };
  for (int i = 0; i < SWAPS && j.bad[0] == '\0'; i++) {
    /* One snapshot at least between swaps, so that the reader meets both
     * sets (the swaps still run during its snapshots). */
    uint64_t before = atomic_load(&j.snapshots);
    while (atomic_load(&j.snapshots) == before && j.bad[0] == '\0')
      sched_yield();
    if (i % 2 == 0)
      assert_strata_ok(strata__store_swap_files(s, set_b, 3));
    else
      assert_strata_ok(strata__store_swap_files(s, set_a, 2));
  }
  atomic_store(&j.stop, true);
  pthread_join(t, NULL);
  if (j.bad[0] != '\0')
    fail_msg("%s", j.bad);
  assert_true(j.seen_a > 0);
  assert_true(j.seen_b > 0);
  assert_served(s, "1=A 2=A");
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_subset_superset_replace),
      cmocka_unit_test(test_failures_change_nothing),
      cmocka_unit_test(test_swap_stacks),
      cmocka_unit_test(test_reader_sees_whole_sets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
