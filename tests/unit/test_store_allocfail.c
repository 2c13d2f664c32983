/* Allocation failure injection into store open and refresh, proto puts and
 * removes, crystallization, the state dump and the metrics (allocfail.c
 * interposes the allocator, and the store's pool through --wrap).
 *
 * Each walk repeats one operation on a fresh fixture and fails its k-th
 * allocation, for k = 1, 2, ... until the operation no longer makes a k-th
 * allocation (it then ran unharmed: every allocation site was walked). Each
 * k runs twice: only allocation k fails (transient), and every allocation
 * from k on fails (persistent: the error paths must not need memory
 * either). After each case:
 *
 * - the operation returned STRATA_E_NOMEM (or -ENOMEM, from a libc call
 *   such as fdopendir) and set no output, or it succeeded with a result as
 *   complete as a run without failures, or degraded as documented: at open
 *   and refresh, a region file that could not be loaded is skipped with a
 *   WARN line naming it (and the error);
 * - the store is unchanged: readers see exactly what they saw before (the
 *   failed put is not visible), the protos report the same figures, and the
 *   directory holds what it held (no temporary file, no new region file:
 *   strata.h allows the new file in place only when the fsync of the
 *   directory fails, which no allocation failure is);
 * - the store is still usable: the same call, with memory back, succeeds,
 *   and so do later puts, a crystallization and a fresh open;
 * - nothing leaked: once the store is closed (at once for the dump, whose
 *   output is freed), every allocation of the armed call has been freed,
 *   and so has every pool block allocated since the fixture's store opened
 *   (a block that a failure unlinked and then dropped would show here),
 *   each with the size it was allocated with.
 *
 * The state dump must not succeed with a document that lacks what a run
 * without failures has (an object key, an array element: a region missing
 * from a dump that reports success would be a lie), nor with one that is
 * not JSON; the metrics text must not lack a series. The verbose dump
 * makes every allocation the plain one makes, and is the one walked.
 *
 * Cases that break such a promise while leaving the store consistent are
 * collected, and the test fails at the end of the walk with the count and
 * the first ones, so that one run shows them all.
 *
 * The walks use STRATA_STORE_VERIFY_AT_OPEN (checksums checked before open
 * returns, no verifier thread) and one open thread, so that every
 * allocation happens on the calling thread in the same order each time;
 * the default open, whose verifier thread is started by open, is walked
 * too (allocations made inside pthread_create(), which glibc caches with
 * the thread's stack, are not counted as leaks).
 *
 * STRATA_ALLOCFAIL_VERBOSE=1 prints every case, every broken promise and
 * every allocation site, with whole call stacks. The walk, the checks every
 * case makes and the dump's case are allocfail_walk.h's (shared with
 * test_staging_allocfail.c). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "allocfail.h"
#include "allocfail_walk.h"
#include "store_model.h"

#include "format/format.h"
#include "store/store_internal.h"
#include "test_util.h"

/* ---- logging ------------------------------------------------------------- */

static int try_open(const char *dir, unsigned flags, log_capture *cap,
                    strata_store **out) {
  strata_store_config c;
  strata_store_config_init(&c);
  pthread_mutex_init(&cap->mu, NULL);
  cap->len = 0;
  cap->text[0] = '\0';
  c.log_fn = capture_log;
  c.log_ctx = cap;
  c.log_level = STRATA_LOG_INFO;
  c.flags = flags;
  c.open_threads = 1; /* one thread: the same allocations every time */
  return strata_store_open(dir, &c, out);
}

static strata_store *open_store(const char *dir, log_capture *cap) {
  strata_store *s = NULL;
  assert_strata_ok(try_open(dir, STRATA_STORE_VERIFY_AT_OPEN, cap, &s));
  return s;
}

/* ---- the expected content of a region ------------------------------------ */

/* ---- directories --------------------------------------------------------- */

/* Compares the directory with `before`: *changed gets the name of the one
 * file allowed to differ (`file`) when it does; anything else that
 * appeared, disappeared or changed fails. */
static void expect_dir(const char *dir, const dirsnap *before, const char *file,
                       bool *changed, const char *where) {
  dirsnap after;
  snap_dir(dir, &after);
  *changed = false;
  for (size_t i = 0; i < after.n; i++) {
    ssize_t j = snap_find(before, after.name[i]);
    bool same = j >= 0 && after.len[i] == before->len[j] &&
                memcmp(after.data[i], before->data[j], after.len[i]) == 0;
    if (same)
      continue;
    if (file != NULL && strcmp(after.name[i], file) == 0) {
      *changed = true;
      continue;
    }
    fail_msg("%s: %s %s", where, after.name[i],
             j < 0 ? "appeared in the directory" : "changed");
  }
  for (size_t j = 0; j < before->n; j++)
    if (snap_find(&after, before->name[j]) < 0)
      fail_msg("%s: %s disappeared", where, before->name[j]);
  snap_free(&after);
}

/* ---- store open and refresh ---------------------------------------------- */

/* a, b and c are in the directory at open; d appears before a refresh. */
#define OPEN_FILES 4
static uint8_t *open_bytes[OPEN_FILES];
static size_t open_len[OPEN_FILES];
static const char *const open_files[OPEN_FILES] = {"a.region", "b.region",
                                                   "c.region", "d.region"};
static const char *const open_names[OPEN_FILES] = {"alpha", "beta", "gamma",
                                                   "delta"};
#define OPEN_TEMP ".x.region.strata-tmp-0123abcd"

static void make_open_files(void) {
  if (open_bytes[0] != NULL)
    return;
  const char *dir = test_tmpdir();
  for (int i = 0; i < OPEN_FILES; i++) {
    strata_writer_options o;
    strata_writer_options_init(&o);
    o.region_id = (uint64_t)i + 1;
    o.name = open_names[i];
    o.metadata = "{\"i\":1}";
    strata_writer *w = NULL;
    const char *path = test_path(dir, open_files[i]);
    assert_strata_ok(strata_writer_open(path, &o, &w));
    for (uint64_t id = 0; id < 8; id++) {
      char data[32], name[16];
      snprintf(data, sizeof data, "%s:%" PRIu64, open_names[i], id);
      snprintf(name, sizeof name, "n%" PRIu64, id);
      assert_strata_ok(strata_writer_add(w, id * 7, id % 2 ? name : NULL,
                                         id % 2 ? strlen(name) : 0, NULL, data,
                                         strlen(data)));
    }
    assert_strata_ok(strata_writer_commit(w));
    open_bytes[i] = test_read_file(path, &open_len[i]);
    unlink(path);
  }
  rmdir(dir);
}

static void setup_open_dir(char *dir, size_t cap) {
  make_open_files();
  snprintf(dir, cap, "%s", test_tmpdir());
  for (int i = 0; i < 3; i++)
    test_write_file(test_path(dir, open_files[i]), open_bytes[i], open_len[i]);
  test_write_file(test_path(dir, OPEN_TEMP), STRATA__MAGIC "partial",
                  STRATA__MAGIC_LEN + 7);
}

static bool served(strata_store *s, int i) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  bool all = true;
  for (uint64_t id = 0; id < 8; id++) {
    char want[32];
    snprintf(want, sizeof want, "%s:%" PRIu64, open_names[i], id);
    strata_layer l;
    int rc = strata_get(&t, (uint64_t)i + 1, id * 7, &l);
    if (rc == STRATA_E_NO_REGION && id == 0) {
      all = false;
      break;
    }
    assert_strata_ok(rc);
    assert_int_equal(l.size, strlen(want));
    assert_memory_equal(l.data, want, l.size);
  }
  strata_read_end(&t);
  return all;
}

/* Files 0..n-1 are served, or skipped with a WARN line naming them and an
 * allocation error; returns the number skipped. */
static unsigned expect_served_or_skipped(strata_store *s, int n,
                                         const char *log, const char *what) {
  unsigned skipped = 0;
  for (int j = 0; j < n; j++) {
    if (served(s, j))
      continue;
    skipped++;
    char want[64];
    snprintf(want, sizeof want, "file=%s error=", open_files[j]);
    const char *w = strstr(log, want);
    if (w == NULL || strstr(log, "region skipped") == NULL)
      fail_msg("%s: %s is not served, and no warning names it:\n%s", what,
               open_files[j], log);
    w += strlen(want);
    if (strncmp(w, "STRATA_E_NOMEM ", 15) != 0 && strncmp(w, "ENOMEM ", 7))
      fail_msg("%s: %s skipped for another reason than memory:\n%s", what,
               open_files[j], log);
  }
  for (int j = n; j < OPEN_FILES; j++)
    assert_false(served(s, j));
  return skipped;
}

static bool open_case(const void *arg, unsigned long k, af_mode mode,
                      counts *c) {
  unsigned flags = *(const unsigned *)arg;
  char dir[4096], what[1200];
  setup_open_dir(dir, sizeof dir);
  dirsnap before;
  snap_dir(dir, &before);
  log_capture cap;
  strata_store *s = NULL;
  af_arm(k, mode);
  int rc = try_open(dir, flags, &cap, &s);
  af_disarm();
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    assert_null(s);
  } else {
    unsigned skipped = expect_served_or_skipped(s, 3, cap.text, what);
    c->degraded += skipped > 0;
    c->absorbed += hit && skipped == 0;
  }
  strata_store_close(s);
  expect_no_leak(c->op, what);
  af_stop();

  /* The region files are untouched (the lock file may have appeared, the
   * temporary file may be gone), and the store opens. */
  for (int j = 0; j < 3; j++) {
    size_t len;
    uint8_t *now = test_read_file(test_path(dir, open_files[j]), &len);
    assert_int_equal(len, open_len[j]);
    assert_memory_equal(now, open_bytes[j], len);
    free(now);
  }
  snap_free(&before);
  s = open_store(dir, &cap);
  for (int j = 0; j < 3; j++)
    assert_true(served(s, j));
  strata_store_close(s);
  remove_dir(dir);
  return hit;
}

static void test_open(void **state) {
  (void)state;
  static const unsigned verify = STRATA_STORE_VERIFY_AT_OPEN, deferred = 0;
  walk("strata_store_open, verify at open", open_case, &verify);
  /* Whole stacks, to recognize what pthread_create() allocates. */
  all_stacks = true;
  walk("strata_store_open, verifier thread", open_case, &deferred);
  all_stacks = false;
  expect_no_problems();
}

static bool refresh_case(const void *arg, unsigned long k, af_mode mode,
                         counts *c) {
  (void)arg;
  char dir[4096], what[1200];
  setup_open_dir(dir, sizeof dir);
  log_capture cap;
  strata_store *s = open_store(dir, &cap);
  test_write_file(test_path(dir, open_files[3]), open_bytes[3], open_len[3]);
  capture_clear(&cap);
  af_arm(k, mode);
  int rc = strata_store_refresh(s);
  af_disarm();
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    /* A failed refresh changes nothing. */
    for (int j = 0; j < 3; j++)
      if (!served(s, j))
        fail_msg("%s, %s: %s is no longer served", c->op, what, open_files[j]);
    assert_false(served(s, 3));
  } else {
    for (int j = 0; j < 3; j++)
      if (!served(s, j))
        fail_msg("%s, %s: %s is no longer served", c->op, what, open_files[j]);
    unsigned skipped = expect_served_or_skipped(s, 4, cap.text, what);
    c->degraded += skipped > 0;
    c->absorbed += hit && skipped == 0;
  }
  if (verbose() && hit)
    print_message("  %s -> %s\n", what, rc ? strata_err_name(rc) : "ok");
  /* With memory back, a refresh serves d. */
  assert_strata_ok(strata_store_refresh(s));
  for (int j = 0; j < 4; j++)
    assert_true(served(s, j));
  strata_store_close(s);
  expect_no_leak(c->op, what);
  af_stop();
  remove_dir(dir);
  return hit;
}

static void test_refresh(void **state) {
  (void)state;
  walk("strata_store_refresh, d.region new", refresh_case, NULL);
  expect_no_problems();
}

/* ---- protos: the fixture ------------------------------------------------- */

/* Big enough for the pool's large path (above its 64 KiB class). */
#define BIG_SIZE (100u * 1024)

/* A store with base.region under a proto (a replacement, a remove, a name
 * reused, an empty layer, a big one) and a new region's proto, 42 "fresh".
 * `extra` more layers go into proto 3 (ids 100..). */
static fixture_kind next_kind; /* of the next setup() */
/* Region 42's ids: 0, 3, 6, ... (sparse), or with this 0, 1, 2, ... (a
 * packed dense file: its locators are positions, written by their own
 * branch of the writer's index). */
static bool fresh_dense;

static void setup(fixture *f, unsigned extra) {
  make_base();
  snprintf(f->dir, sizeof f->dir, "%s", test_tmpdir());
  test_write_file(test_path(f->dir, "base.region"), base_bytes, base_len);
  f->s = open_store(f->dir, &f->cap);

  model_copy(&f->m3, &base_model);
  assert_strata_ok(strata_proto_open(f->s, 3, &f->p3));
  fill_proto3(f->s, f->dir, f->p3, &f->m3, next_kind, BIG_SIZE);
  for (unsigned i = 0; i < extra; i++) {
    char data[32];
    snprintf(data, sizeof data, "extra:%u", i);
    put(f->p3, &f->m3, 100 + i, NULL, NULL, data, strlen(data));
  }

  f->m42 = (model){.rid = 42, .rname = "fresh", .rmeta = "{\"a\":true}"};
  assert_strata_ok(
      strata_proto_create(f->s, 42, "fresh", 5, "{\"a\":true}", &f->p42));
  for (uint64_t i = 0; i < 12; i++) {
    char data[32], name[16];
    snprintf(data, sizeof data, "fresh:%" PRIu64, i);
    snprintf(name, sizeof name, "f%" PRIu64, i);
    put(f->p42, &f->m42, fresh_dense ? i : i * 3, i % 2 ? NULL : name,
        i % 3 ? NULL : "{\"t\":3}", data, strlen(data));
  }
}

static void teardown(fixture *f) {
  strata_store_close(f->s);
  f->s = NULL;
  model_free(&f->m3);
  model_free(&f->m42);
  remove_dir(f->dir);
}

/* ---- puts and removes ---------------------------------------------------- */

typedef struct put_spec {
  const char *title;
  unsigned extra; /* setup(): more layers before the put */
  uint64_t id;
  const char *name, *meta;
  size_t size;    /* content: fill()ed */
  bool tombstone; /* strata_proto_remove() instead */
  /* More new layers after setup(), until proto 3's layer count history
   * is full: the change (which must add or remove a layer) copies it. */
  bool fill_counts;
} put_spec;

/* Proto 3's layer count history (the store's internals): the array the
 * overlay points to now, its records (*n) and capacity (*cap). */
static const strata__counts *history_of(strata_store *s, uint64_t *n,
                                        uint64_t *cap) {
  const strata__entry *e = strata__catalog_find(
      atomic_load_explicit(&s->catalog, memory_order_acquire), 3);
  const strata__counts *a =
      atomic_load_explicit(&e->overlay->counts, memory_order_acquire);
  *n = atomic_load_explicit(&((strata__counts *)a)->n, memory_order_relaxed);
  *cap = a->cap;
  return a;
}

/* Fills proto 3's count history with new layers (ids 200 on): each adds a
 * record, and none copies the array while it has room. */
static void fill_counts(fixture *f) {
  uint64_t n, cap;
  history_of(f->s, &n, &cap);
  for (uint64_t i = 0; n < cap; i++, n++) {
    char data[32];
    snprintf(data, sizeof data, "count:%" PRIu64, i);
    put(f->p3, &f->m3, 200 + i, NULL, NULL, data, strlen(data));
  }
  history_of(f->s, &n, &cap);
  assert_int_equal(n, cap);
}

/* Cases of the fill_counts walk whose failing allocation was the copy of
 * the history (made under strata__overlay_count_reserve), and those in
 * which the change succeeded and did copy it. */
static unsigned copy_failed, copy_made;

static int do_change(fixture *f, const put_spec *p, const uint8_t *data) {
  return p->tombstone ? strata_proto_remove(f->p3, p->id)
                      : strata_proto_put(f->p3, p->id, p->name,
                                         p->name ? strlen(p->name) : 0, p->meta,
                                         data, p->size);
}

static void model_change(fixture *f, const put_spec *p, const uint8_t *data) {
  if (p->tombstone)
    model_remove(&f->m3, p->id);
  else
    model_put(&f->m3, p->id, p->name, p->meta, data, p->size);
}

static bool put_case(const void *arg, unsigned long k, af_mode mode,
                     counts *c) {
  const put_spec *p = arg;
  fixture f;
  af_track_pool();
  setup(&f, p->extra);
  uint8_t *data = malloc(p->size ? p->size : 1);
  assert_non_null(data);
  fill(data, p->size, (uint32_t)p->id);
  if (p->fill_counts)
    fill_counts(&f);
  uint64_t n0, cap0, n1, cap1;
  const strata__counts *history = history_of(f.s, &n0, &cap0);
  strata_proto_info before, now;
  assert_strata_ok(strata_proto_info_get(f.p3, &before));
  char what[1200];

  af_arm(k, mode);
  int rc = do_change(&f, p, data);
  af_disarm();
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  bool copied = history_of(f.s, &n1, &cap1) != history;
  if (rc != 0) {
    /* Nothing changed, and with memory back the same call succeeds. */
    expect_store_model(f.s, &f.m3, what);
    expect_store_model(f.s, &f.m42, what);
    assert_strata_ok(strata_proto_info_get(f.p3, &now));
    assert_int_equal(now.layers, before.layers);
    assert_int_equal(now.changed, before.changed);
    if (af_call_under(af_call_at(k - 1), "strata__overlay_count_reserve")) {
      /* The history's copy failed: the proto holds what it held, the
       * same history (not a copy) with the same records. */
      copy_failed++;
      if (copied || n1 != n0 || now.bytes != before.bytes)
        fail_msg("%s, %s: the failed copy of the count history changed the "
                 "proto: %s, %" PRIu64 " records (%" PRIu64 " before), %" PRIu64
                 " bytes (%" PRIu64 " before)",
                 c->op, what, copied ? "another array" : "the same array", n1,
                 n0, now.bytes, before.bytes);
    }
    rc = do_change(&f, p, data);
    if (rc != 0)
      fail_msg("%s, %s: the call failed again with memory back: %s (%s)", c->op,
               what, strata_err_name(rc), strata_last_error_detail());
  } else {
    c->absorbed += hit;
    copy_made += copied && n1 == 2 && cap1 == cap0; /* the last record + this */
  }
  model_change(&f, p, data);
  expect_store_model(f.s, &f.m3, what);
  expect_store_model(f.s, &f.m42, what);
  /* Later puts and a crystallization work on what the store holds. */
  put(f.p3, &f.m3, 150, "after", NULL, "after", 5);
  assert_strata_ok(strata_store_reclaim(f.s, 1));
  assert_strata_ok(strata_crystallize(f.s, 3));
  expect_store_model(f.s, &f.m3, what);
  strata_store_close(f.s);
  f.s = NULL;
  expect_no_leak(c->op, what);
  af_stop();
  free(data);
  teardown(&f);
  return hit;
}

/* Proto 3 holds 5 versions after setup() (4 puts and a remove); 59 more
 * fill its initial 64-bucket index, so the next put grows it. */
#define FILL_INDEX 59

static void test_put(void **state) {
  (void)state;
  static const put_spec specs[] = {
      {"put: a new layer, name, metadata", 0, 50, "n50", "{\"k\":[1,2]}", 100,
       false, false},
      {"put: replace a proto layer", 0, 12, "l12b", "{\"r\":1}", 40, false,
       false},
      {"put: replace a base layer", 0, 20, "l20", NULL, 30, false, false},
      {"put: an empty layer", 0, 51, NULL, NULL, 0, false, false},
      {"put: a large layer", 0, 60, "large", NULL, 200000, false, false},
      {"put: grows the proto index", FILL_INDEX, 61, "g61", NULL, 24, false,
       false},
      {"put: a new arena chunk (content kept inline, the largest)", 0, 62, NULL,
       NULL, 16384, false, false},
      {"remove: a base layer", 0, 21, NULL, NULL, 0, true, false},
      {"remove: a proto layer", 0, 12, NULL, NULL, 0, true, false},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    walk(specs[i].title, put_case, &specs[i]);
  expect_no_problems();
}

/* A change into a full layer count history copies it (overlay.c,
 * strata__overlay_count_reserve; with no snapshot open the copy keeps the
 * last record), and each allocation of the copy fails cleanly: the walk
 * must fail it (the array and the retire record, in both modes), and a
 * failed change must leave the proto's history, records and heap as they
 * were. The walks this replaced filled the history by a guessed number of
 * layers, which reached the copy only if setup() made as many changes as
 * they assumed. */
static void test_put_copies_count_history(void **state) {
  (void)state;
  static const put_spec specs[] = {
      {"put: a new layer copies the full count history", 0, 63, NULL, NULL, 8,
       false, true},
      {"remove: copies the full count history", 0, 21, NULL, NULL, 0, true,
       true},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    copy_failed = copy_made = 0;
    walk(specs[i].title, put_case, &specs[i]);
    /* Two allocations (the array, its predecessor's retire record), each
     * failed alone and with every later one. */
    if (copy_failed < 4 || copy_made == 0)
      fail_msg("%s: the copy of the count history failed in %u case(s), "
               "succeeded in %u: the walk did not reach it",
               specs[i].title, copy_failed, copy_made);
  }
  expect_no_problems();
}

/* ---- crystallization ----------------------------------------------------- */

static const char *file_of(uint64_t rid) {
  return rid == 3 ? "base.region" : "fresh.region";
}

/* Failures after the rename leave the new file in place. strata.h
 * promises that for one failure only, the fsync of the directory; every
 * allocation failure must leave the directory as it was. Past such a case
 * the file in place must hold exactly the proto's content, and
 * crystallizing again must replace it. */
static bool crystallize_case(const void *arg, unsigned long k, af_mode mode,
                             counts *c) {
  uint64_t rid = *(const uint64_t *)arg;
  /* A delta (merged or not) holds only the changes: the stores below read
   * it. */
  bool whole =
      !(rid == 3 && (next_kind == KIND_DELTA || next_kind == KIND_MERGE));
  const char *file = whole ? file_of(rid) : "base.1.delta";
  fixture f;
  af_track_pool();
  setup(&f, 0);
  dirsnap before;
  snap_dir(f.dir, &before);
  strata_proto_info pi3, pi42, now;
  assert_strata_ok(strata_proto_info_get(f.p3, &pi3));
  assert_strata_ok(strata_proto_info_get(f.p42, &pi42));
  char what[1200];

  af_arm(k, mode);
  int rc = strata_crystallize(f.s, rid);
  af_disarm();
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  bool placed = false;
  if (rc != 0) {
    /* The protos and what readers see are unchanged. */
    expect_store_model(f.s, &f.m3, what);
    expect_store_model(f.s, &f.m42, what);
    assert_strata_ok(strata_proto_info_get(f.p3, &now));
    assert_int_equal(now.changed, pi3.changed);
    assert_int_equal(now.layers, pi3.layers);
    assert_strata_ok(strata_proto_info_get(f.p42, &now));
    assert_int_equal(now.changed, pi42.changed);
    assert_int_equal(now.layers, pi42.layers);
    /* The directory too, unless the file was already in place. */
    expect_dir(f.dir, &before, file, &placed, what);
    if (placed) {
      if (whole)
        expect_file_model(test_path(f.dir, file), rid == 3 ? &f.m3 : &f.m42);
      problem("new file left in place",
              "%s, %s: failed with %s after the rename: %s is in place "
              "(detail: \"%s\")",
              c->op, what, strata_err_name(rc), file, detail);
    }
    rc = strata_crystallize(f.s, rid);
    if (rc != 0)
      fail_msg("%s, %s: the crystallization failed again with memory back: "
               "%s (%s)",
               c->op, what, strata_err_name(rc), strata_last_error_detail());
  } else {
    c->absorbed += hit;
  }
  expect_store_model(f.s, &f.m3, what);
  expect_store_model(f.s, &f.m42, what);
  if (whole)
    expect_file_model(test_path(f.dir, file), rid == 3 ? &f.m3 : &f.m42);
  strata_store_close(f.s);
  f.s = NULL;
  expect_no_leak(c->op, what);
  af_stop();
  snap_free(&before);

  /* A store opened from scratch serves the new file. */
  f.s = open_store(f.dir, &f.cap);
  if (rid == 3) {
    expect_store_model(f.s, &f.m3, what);
  } else {
    expect_store_model(f.s, &base_model, what);
    expect_store_model(f.s, &f.m42, what);
  }
  teardown(&f);
  return hit;
}

static void crystallize_walk(const char *op, uint64_t rid) {
  walk(op, crystallize_case, &rid);
  expect_no_problems();
}

static void test_crystallize_replace(void **state) {
  (void)state;
  crystallize_walk("crystallize: replace base.region", 3);
}

static void test_crystallize_delta(void **state) {
  (void)state;
  next_kind = KIND_DELTA;
  crystallize_walk("crystallize: a delta base.1.delta", 3);
  next_kind = KIND_BASE;
}

static void test_crystallize_compact(void **state) {
  (void)state;
  next_kind = KIND_COMPACT;
  crystallize_walk("crystallize: compact base.1.delta into base.region", 3);
  next_kind = KIND_BASE;
}

static void test_crystallize_merge(void **state) {
  (void)state;
  next_kind = KIND_MERGE;
  crystallize_walk("crystallize: merge base.1.delta .. base.4.delta into "
                   "base.1.delta",
                   3);
  next_kind = KIND_BASE;
}

static void test_crystallize_new(void **state) {
  (void)state;
  crystallize_walk("crystallize: new fresh.region", 42);
}

/* The same with ids 0..11: the index's packed branch once went on after a
 * failed allocation of the strings (the region's name), wrote a broken
 * index and reported success to validation. */
static void test_crystallize_new_packed(void **state) {
  (void)state;
  fresh_dense = true;
  crystallize_walk("crystallize: new fresh.region, packed dense ids", 42);
  fresh_dense = false;
}

/* A store small enough for the walk (the verbose dump makes some 13
 * allocations per layer): a.region under a proto with a change, and
 * fresh.region, crystallized from a new proto, with a proto over it. */
static strata_store *setup_dump(char *dir, size_t cap, log_capture *log) {
  make_open_files();
  snprintf(dir, cap, "%s", test_tmpdir());
  test_write_file(test_path(dir, open_files[0]), open_bytes[0], open_len[0]);
  strata_store *s = open_store(dir, log);
  strata_proto *p;
  assert_strata_ok(strata_proto_open(s, 1, &p));
  assert_strata_ok(strata_proto_put(p, 3, "three", 5, "{\"t\":3}", "3", 1));
  assert_strata_ok(strata_proto_create(s, 42, "fresh", 5, "{\"a\":1}", &p));
  assert_strata_ok(strata_proto_put(p, 1, "one", 3, NULL, "1", 1));
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, "[2]", "22", 2));
  assert_strata_ok(strata_crystallize(s, 42));
  assert_strata_ok(strata_proto_put(p, 3, NULL, 0, NULL, "333", 3));
  return s;
}

static void test_dump_state(void **state) {
  (void)state;
  char dir[4096];
  log_capture cap;
  fixture f = {.s = setup_dump(dir, sizeof dir, &cap)};
  /* The verbose dump makes every allocation the plain one makes, and the
   * layer index's. */
  static const struct {
    const char *title;
    bool metrics;
    unsigned flags;
  } kinds[] = {
      {"strata_dump_state, verbose", false, STRATA_DUMP_VERBOSE},
      {"strata_metrics_text", true, 0},
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    dump_spec d = {
        .s = f.s, .metrics = kinds[i].metrics, .flags = kinds[i].flags};
    char *text = NULL;
    assert_strata_ok(do_dump(&d, &text));
    if (d.metrics) {
      d.want_text = text;
    } else {
      json_error_t err;
      d.want = json_loads(text, 0, &err);
      assert_non_null(d.want);
      strata_free(text);
    }
    walk(kinds[i].title, dump_case, &d);
    json_decref(d.want);
    strata_free(d.want_text);
  }
  for (int j = 1; j < 3; j++) {
    strata_txn t;
    strata_layer l;
    assert_strata_ok(strata_read_begin(f.s, &t));
    assert_strata_ok(strata_get(&t, 42, (uint64_t)j, &l));
    assert_int_equal(l.size, (uint64_t)j);
    strata_read_end(&t);
  }
  strata_store_close(f.s);
  remove_dir(dir);
  expect_no_problems();
}

static int cleanup(void **state) {
  (void)state;
  model_free(&base_model);
  free(base_bytes);
  base_bytes = NULL;
  for (int i = 0; i < OPEN_FILES; i++) {
    free(open_bytes[i]);
    open_bytes[i] = NULL;
  }
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open),
      cmocka_unit_test(test_refresh),
      cmocka_unit_test(test_put),
      cmocka_unit_test(test_put_copies_count_history),
      cmocka_unit_test(test_crystallize_replace),
      cmocka_unit_test(test_crystallize_new),
      cmocka_unit_test(test_crystallize_new_packed),
      cmocka_unit_test(test_crystallize_delta),
      cmocka_unit_test(test_crystallize_merge),
      cmocka_unit_test(test_crystallize_compact),
      cmocka_unit_test(test_dump_state),
  };
  return cmocka_run_group_tests(tests, NULL, cleanup);
}
