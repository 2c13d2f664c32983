/* I/O failure injection into crystallization and store open (failpoint.c
 * interposes the libc calls of src/).
 *
 * Crystallization: a dry run records the I/O calls a successful
 * crystallization makes; then, for every call k of that sequence, in a fresh
 * store, call k fails (once, or from then on) with ENOSPC or EIO. After each
 * failure: strata_crystallize() returned -errno with a detail naming the
 * region file; the directory holds what it held (no temporary file, the
 * region file byte-identical), unless the failure came after the rename
 * (see below); readers see exactly the protos' content; no descriptor
 * leaked; once the fault clears, a second crystallization succeeds and a
 * store opened from scratch serves its content. The record of calls also
 * shows that nothing is renamed or linked into place after a failed write
 * or fsync, and that a failed fsync is not retried.
 *
 * After the rename only the fsync of the directory (and the store's stat of
 * the new file) remain. Their failure is reported, but the new file is
 * already in place, as strata_writer_commit() documents: there the test
 * checks that the file in place holds the proto's content instead.
 *
 * Store open: over a directory of three region files and a leftover
 * temporary file, each I/O call of strata_store_open() fails in turn. A
 * failure on the directory itself fails the open with -errno naming the
 * directory; a failure on one region file skips that file with a WARN line
 * naming it while the others are served; a failure of a best-effort call
 * (the lock file, the cleanup of the temporary file, madvise) changes
 * nothing that is served. Refresh, after a fourth file appeared: the same
 * rules, and a failed refresh leaves the store serving what it served.
 *
 * STRATA_FAULTS_VERBOSE=1 prints the outcome of every case. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "failpoint.h"
#include "store_model.h"

#include "common/strata_testing.h"
#include "format/format.h"
#include "test_util.h"

/* ---- logging ------------------------------------------------------------- */

static strata_store *open_store(const char *dir, log_capture *cap,
                                unsigned threads) {
  strata_store_config c;
  strata_store_config_init(&c);
  pthread_mutex_init(&cap->mu, NULL);
  cap->len = 0;
  cap->text[0] = '\0';
  c.log_fn = capture_log;
  c.log_ctx = cap;
  c.log_level = STRATA_LOG_INFO;
  c.open_threads = threads;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

/* ---- the expected content of a region ------------------------------------ */

/* Asserts that no snapshot serves region `rid`. */
static void expect_no_region(strata_store *s, uint64_t rid) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_err(strata_get(&t, rid, 0, &l), STRATA_E_NO_REGION);
  strata_read_end(&t);
}

/* ---- directories and descriptors ----------------------------------------- */

static bool is_temp_name(const char *n) {
  const char *t = strstr(n, ".strata-tmp-");
  return n[0] == '.' && t != NULL && strlen(t) == 12 + 8;
}

/* STRATA_FAULTS_VERBOSE=1 prints every case's outcome. */
static bool verbose(void) {
  const char *v = getenv("STRATA_FAULTS_VERBOSE");
  return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static const char *mode_name(fp_mode mode) {
  return mode == FP_PERSISTENT ? "persistent" : "transient";
}

/* Empties and removes a test directory, and stops watching it. */
static void remove_watched_dir(const char *dir) {
  remove_dir(dir);
  fp_watch(NULL);
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

/* ---- the crystallization fixture ----------------------------------------- */

/* A big layer, so that the writer's 1 MiB buffer is flushed in the middle
 * of it and the content takes two pwrite() calls. */
#define BIG_SIZE ((1u << 20) + 4096)

static fixture_kind next_kind; /* of the next setup() */

/* A store with base.region under a proto (puts, replacements, removes, a
 * big layer, an empty one; the small ones alone for KIND_DELTA, and over
 * a delta holding layer 11 for KIND_COMPACT) and a new region's proto, 42
 * "fresh". */
static void setup(fixture *f) {
  make_base();
  snprintf(f->dir, sizeof f->dir, "%s", test_tmpdir());
  test_write_file(test_path(f->dir, "base.region"), base_bytes, base_len);
  fp_watch(f->dir);
  f->s = open_store(f->dir, &f->cap, 0);

  model_copy(&f->m3, &base_model);
  assert_strata_ok(strata_proto_open(f->s, 3, &f->p3));
  fill_proto3(f->s, f->dir, f->p3, &f->m3, next_kind, BIG_SIZE);

  f->m42 = (model){.rid = 42, .rname = "fresh", .rmeta = "{\"a\":true}"};
  assert_strata_ok(
      strata_proto_create(f->s, 42, "fresh", 5, "{\"a\":true}", &f->p42));
  for (uint64_t i = 0; i < 12; i++) {
    char data[32], name[16];
    snprintf(data, sizeof data, "fresh:%" PRIu64, i);
    snprintf(name, sizeof name, "f%" PRIu64, i);
    put(f->p42, &f->m42, i * 3, i % 2 ? NULL : name, i % 3 ? NULL : "{\"t\":3}",
        data, strlen(data));
  }
}

static void teardown(fixture *f) {
  strata_store_close(f->s);
  f->s = NULL;
  model_free(&f->m3);
  model_free(&f->m42);
  remove_watched_dir(f->dir);
}

/* ---- crystallization under faults ---------------------------------------- */

typedef struct scenario {
  uint64_t rid;      /* 3: replaces base.region (or adds base.1.delta); 42: a
                        new file */
  bool named_tmp;    /* O_TMPFILE refused: the ".NAME.strata-tmp-X" fallback */
  fixture_kind kind; /* of region 3 */
} scenario;

/* The calls of a successful crystallization. */
typedef struct sequence {
  size_t n;
  size_t rename_at; /* 1-based number of the renameat() into place */
  fp_call calls[64];
} sequence;

static const char *file_of(const scenario *sc) {
  return sc->rid != 3                                       ? "fresh.region"
         : sc->kind == KIND_DELTA || sc->kind == KIND_MERGE ? "base.1.delta"
                                                            : "base.region";
}

static void print_sequence(const char *title, const fp_call *c, size_t n) {
  print_message("%s: %zu calls\n", title, n);
  for (size_t i = 0; i < n; i++) {
    char buf[200];
    fp_describe(&c[i], buf, sizeof buf);
    print_message("  %2zu %s\n", i + 1, buf);
  }
}

static void dry_run(const scenario *sc, sequence *seq) {
  fp_refuse_tmpfile(sc->named_tmp);
  next_kind = sc->kind;
  fixture f;
  setup(&f);
  fp_arm(0, FP_TRANSIENT, 0);
  assert_strata_ok(strata_crystallize(f.s, sc->rid));
  fp_disarm();
  seq->n = fp_count();
  assert_true(seq->n > 0 && seq->n <= 64);
  seq->rename_at = 0;
  for (size_t i = 0; i < seq->n; i++) {
    seq->calls[i] = *fp_call_at(i);
    if (seq->calls[i].fn == FP_RENAMEAT)
      seq->rename_at = i + 1;
  }
  assert_true(seq->rename_at > 0);
  char title[96];
  snprintf(title, sizeof title, "crystallize region %" PRIu64 " (%s, %s)",
           sc->rid, sc->named_tmp ? "named temporary file" : "O_TMPFILE",
           file_of(sc));
  print_sequence(title, seq->calls, seq->n);
  teardown(&f);
}

/* The durability rules, from the record of one failed crystallization. */
static void expect_rules(const sequence *seq) {
  bool write_failed = false, fsync_failed = false;
  for (size_t i = 0; i < fp_count(); i++) {
    const fp_call *c = fp_call_at(i);
    bool sync = c->fn == FP_FSYNC || c->fn == FP_FDATASYNC;
    if (fsync_failed && sync)
      fail_msg("call %zu: fsync retried after a failed fsync", i + 1);
    if ((write_failed || fsync_failed) &&
        (c->fn == FP_RENAMEAT || c->fn == FP_LINKAT || c->fn == FP_RENAME))
      fail_msg("call %zu: %s after a failed write or fsync", i + 1,
               fp_fn_name(c->fn));
    if (c->failed && sync)
      fsync_failed = true;
    if (c->failed && !c->dir &&
        (c->fn == FP_PWRITE || c->fn == FP_WRITE || c->fn == FP_FTRUNCATE))
      write_failed = true;
    /* Nothing is put in place after any failure before the rename. */
    if (c->failed && i + 1 < seq->rename_at)
      write_failed = true;
  }
}

typedef struct outcome_counts {
  unsigned cases, before_rename, after_rename, temp_left, stale_unlink;
} outcome_counts;

static void run_case(const scenario *sc, const sequence *seq, size_t k,
                     fp_mode mode, int err, outcome_counts *oc) {
  const char *file = file_of(sc);
  int fds0 = count_fds();
  fp_refuse_tmpfile(sc->named_tmp);
  next_kind = sc->kind;
  fixture f;
  setup(&f);
  dirsnap before;
  snap_dir(f.dir, &before);
  strata_proto_info pi3, pi42;
  assert_strata_ok(strata_proto_info_get(f.p3, &pi3));
  assert_strata_ok(strata_proto_info_get(f.p42, &pi42));
  int fds1 = count_fds();

  fp_arm((unsigned)k, mode, err);
  int rc = strata_crystallize(f.s, sc->rid);
  fp_disarm();
  char what[200];
  const fp_call *fc = fp_call_at(k - 1);
  assert_non_null(fc);
  fp_describe(fc, what, sizeof what);
  if (fp_first_failure() != k || fc->fn != seq->calls[k - 1].fn)
    fail_msg("call %zu: the sequence diverged from the dry run (%s)", k, what);
  /* After a compaction is published, removing the deltas it made stale
   * only saves space: its failure is a WARN, and the compaction stands. */
  bool stale_unlink = k > seq->rename_at && fc->fn == FP_UNLINKAT &&
                      strstr(fc->target, ".delta") != NULL;
  char detail[1024]; /* the next Strata call replaces it */
  if (stale_unlink) {
    if (rc != 0)
      fail_msg("call %zu %s: removing a stale delta failed the compaction: "
               "%s (%s)",
               k, what, strata_err_name(rc), strata_last_error_detail());
    assert_non_null(strstr(f.cap.text, "could not remove a delta"));
    snprintf(detail, sizeof detail, "(a WARN; the compaction stands)");
  } else {
    if (rc != -err)
      fail_msg("call %zu %s failed with %s: crystallize returned %s (%s)", k,
               what, strata_err_name(-err), strata_err_name(rc),
               strata_last_error_detail());
    snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
    /* A delta's checks of the stack below it name the base file. */
    bool named = strstr(detail, file) != NULL ||
                 ((sc->kind == KIND_DELTA || sc->kind == KIND_MERGE) &&
                  strstr(detail, "base.region"));
    if (strstr(detail, f.dir) == NULL || !named)
      fail_msg("call %zu %s: the detail does not name %s/%s: %s", k, what,
               f.dir, file, detail);
  }
  expect_rules(seq);
  assert_int_equal(count_fds(), fds1);

  /* The protos and what readers see are unchanged. */
  expect_store_model(f.s, &f.m3, __func__);
  expect_store_model(f.s, &f.m42, __func__);
  strata_proto_info now;
  assert_strata_ok(strata_proto_info_get(f.p3, &now));
  assert_int_equal(now.changed, stale_unlink ? 0 : pi3.changed);
  assert_int_equal(now.layers, pi3.layers);
  assert_strata_ok(strata_proto_info_get(f.p42, &now));
  assert_int_equal(now.changed, pi42.changed);

  /* The directory. */
  bool unlink_failed = false;
  for (size_t i = 0; i < fp_count(); i++)
    unlink_failed |= fp_call_at(i)->fn == FP_UNLINKAT && fp_call_at(i)->failed;
  bool placed = k > seq->rename_at;
  dirsnap after;
  snap_dir(f.dir, &after);
  size_t temps = 0;
  for (size_t i = 0; i < after.n; i++) {
    if (is_temp_name(after.name[i])) {
      /* Only a failed unlinkat() may leave the temporary file behind: the
       * store removes it at the next open. */
      if (!unlink_failed)
        fail_msg("call %zu %s: temporary file %s left behind", k, what,
                 after.name[i]);
      temps++;
      continue;
    }
    ssize_t j = snap_find(&before, after.name[i]);
    if (j < 0 && !(placed && strcmp(after.name[i], file) == 0))
      fail_msg("call %zu %s: new file %s", k, what, after.name[i]);
    if (placed && strcmp(after.name[i], file) == 0)
      continue;
    if (after.len[i] != before.len[j] ||
        memcmp(after.data[i], before.data[j], after.len[i]) != 0)
      fail_msg("call %zu %s: %s changed", k, what, after.name[i]);
  }
  /* A merge that stands removes the deltas it made stale but the one
   * whose removal failed. */
  for (size_t j = 0; j < before.n; j++)
    if (snap_find(&after, before.name[j]) < 0 &&
        !(stale_unlink && strstr(before.name[j], ".delta") != NULL))
      fail_msg("call %zu %s: %s disappeared", k, what, before.name[j]);
  /* Reported, but the new file is in place (a delta holds only the
   * changes: the store opened from scratch below reads it). */
  if (placed && sc->kind != KIND_DELTA && sc->kind != KIND_MERGE)
    expect_file_model(test_path(f.dir, file), sc->rid == 3 ? &f.m3 : &f.m42);
  if (verbose())
    print_message("  %2zu %-52s %-6s %-10s -> %s; %s; \"%s\"\n", k, what,
                  strata_err_name(-err), mode_name(mode), strata_err_name(rc),
                  placed  ? "new file in place"
                  : temps ? "temporary file left"
                          : "directory unchanged",
                  detail);
  oc->cases++;
  oc->stale_unlink += stale_unlink;
  oc->before_rename += !placed;
  oc->after_rename += placed;
  oc->temp_left += temps > 0;
  snap_free(&before);
  snap_free(&after);

  /* Once the fault clears, crystallization succeeds. */
  rc = strata_crystallize(f.s, sc->rid);
  if (rc != 0)
    fail_msg("after call %zu %s failed (%s, %s): the second crystallization "
             "returned %s: %s",
             k, what, strata_err_name(-err),
             mode == FP_PERSISTENT ? "persistent" : "transient",
             strata_err_name(rc), strata_last_error_detail());
  expect_store_model(f.s, &f.m3, __func__);
  expect_store_model(f.s, &f.m42, __func__);
  strata_store_close(f.s);
  assert_int_equal(count_fds(), fds0);

  /* A store opened from scratch serves the new file (and removes a
   * temporary file a failed unlinkat() left). */
  f.s = open_store(f.dir, &f.cap, 0);
  if (sc->rid == 3) {
    expect_store_model(f.s, &f.m3, __func__);
    expect_no_region(f.s, 42);
  } else {
    expect_store_model(f.s, &base_model, __func__);
    expect_store_model(f.s, &f.m42, __func__);
  }
  if (temps > 0)
    assert_non_null(strstr(f.cap.text, "removed a temporary file"));
  snap_dir(f.dir, &after);
  for (size_t i = 0; i < after.n; i++)
    if (is_temp_name(after.name[i]))
      fail_msg("call %zu %s: %s survived a store open", k, what, after.name[i]);
  snap_free(&after);
  teardown(&f);
  assert_int_equal(count_fds(), fds0);
}

static void sweep(const scenario *sc) {
  sequence seq;
  dry_run(sc, &seq);
  static const int errs[] = {ENOSPC, EIO};
  outcome_counts oc = {0};
  for (size_t k = 1; k <= seq.n; k++)
    /* Not the writer's probe whether linkat() with AT_EMPTY_PATH may name
     * its O_TMPFILE (a linkat() to "."): its failure only sends the writer
     * to /proc, and the commit succeeds. test_builder_faults counts it as
     * best effort and checks that; test_no_proc covers the fallbacks. */
    if (!(seq.calls[k - 1].fn == FP_LINKAT &&
          strcmp(seq.calls[k - 1].target, ".") == 0))
      for (int mode = FP_TRANSIENT; mode <= FP_PERSISTENT; mode++)
        for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++)
          run_case(sc, &seq, k, (fp_mode)mode, errs[e], &oc);
  print_message("  %u cases: %u failed before the rename, %u after it; %u "
                "left a temporary file (failed unlinkat); %u failed to "
                "remove a stale delta\n",
                oc.cases, oc.before_rename, oc.after_rename, oc.temp_left,
                oc.stale_unlink);
  if (sc->kind == KIND_COMPACT || sc->kind == KIND_MERGE)
    assert_true(oc.stale_unlink > 0);
  fp_refuse_tmpfile(false);
}

static void test_crystallize_replace_tmpfile(void **state) {
  (void)state;
  scenario sc = {.rid = 3, .named_tmp = false};
  sweep(&sc);
}

static void test_crystallize_replace_named(void **state) {
  (void)state;
  scenario sc = {.rid = 3, .named_tmp = true};
  sweep(&sc);
}

static void test_crystallize_new_tmpfile(void **state) {
  (void)state;
  scenario sc = {.rid = 42, .named_tmp = false};
  sweep(&sc);
}

static void test_crystallize_delta_tmpfile(void **state) {
  (void)state;
  scenario sc = {.rid = 3, .named_tmp = false, .kind = KIND_DELTA};
  sweep(&sc);
}

static void test_crystallize_delta_named(void **state) {
  (void)state;
  scenario sc = {.rid = 3, .named_tmp = true, .kind = KIND_DELTA};
  sweep(&sc);
}

/* A merge of a full stack into base.1.delta: the rename replaces the first
 * delta; a failure after it leaves the merged file as the proto's own,
 * which the next crystallization replaces; the three deltas above are
 * removed after the publication (a failed removal is a WARN, and a store
 * opened afterwards serves the merged delta and leaves them stale). */
static void test_crystallize_merge_tmpfile(void **state) {
  (void)state;
  scenario sc = {.rid = 3, .named_tmp = false, .kind = KIND_MERGE};
  sweep(&sc);
}

static void test_crystallize_compact_tmpfile(void **state) {
  (void)state;
  scenario sc = {.rid = 3, .named_tmp = false, .kind = KIND_COMPACT};
  sweep(&sc);
}

static void test_crystallize_new_named(void **state) {
  (void)state;
  scenario sc = {.rid = 42, .named_tmp = true};
  sweep(&sc);
}

/* The rule on its own: a failed fsync of the file is final. */
/* The number of region `rid`'s crystallization's first fsync of the file
 * (`dir` false: before the rename) or of the directory (after it). */
static size_t fsync_call(uint64_t rid, bool dir) {
  scenario sc = {.rid = rid, .named_tmp = false};
  sequence seq;
  dry_run(&sc, &seq);
  size_t k = 0;
  for (size_t i = dir ? seq.rename_at : 0; i < seq.n && k == 0; i++)
    if (seq.calls[i].fn == FP_FSYNC && seq.calls[i].dir == dir)
      k = i + 1;
  assert_true(k > 0 && (dir ? k > seq.rename_at : k < seq.rename_at));
  return k;
}

static void test_fsync_failure_is_final(void **state) {
  (void)state;
  size_t k = fsync_call(3, false);
  fixture f;
  next_kind = KIND_BASE;
  setup(&f);
  fp_arm((unsigned)k, FP_TRANSIENT, EIO);
  assert_strata_err(strata_crystallize(f.s, 3), -EIO);
  fp_disarm();
  assert_non_null(strstr(strata_last_error_detail(), "fsync"));
  for (size_t i = k; i < fp_count(); i++) {
    fp_fn fn = fp_call_at(i)->fn;
    assert_true(fn != FP_FSYNC && fn != FP_FDATASYNC && fn != FP_LINKAT &&
                fn != FP_RENAMEAT && fn != FP_RENAME && fn != FP_MMAP);
  }
  assert_non_null(strstr(f.cap.text, "the proto is intact"));
  expect_store_model(f.s, &f.m3, __func__);
  teardown(&f);
}

/* Whether this process maps a file with inode `ino` (/proc/self/maps). */
static bool maps_inode(ino_t ino) {
  FILE *m = fopen("/proc/self/maps", "r");
  assert_non_null(m);
  char line[4096];
  bool found = false;
  while (!found && fgets(line, sizeof line, m) != NULL) {
    unsigned long long i = 0;
    if (sscanf(line, "%*s %*s %*s %*s %llu", &i) == 1 &&
        i == (unsigned long long)ino)
      found = true;
  }
  fclose(m);
  return found;
}

/* A crystallization whose file was renamed into place but whose directory
 * fsync failed keeps that file's inode while its proto lives: after a
 * foreign writer removes the file, the number cannot be reused by a new
 * file, which the retry (comparing device and inode) would then take for
 * its own and replace. The retry reports the removal. */
static void test_placed_file_kept(void **state) {
  (void)state;
  size_t k = fsync_call(3, true);
  fixture f;
  next_kind = KIND_BASE;
  setup(&f);
  fp_arm((unsigned)k, FP_TRANSIENT, EIO);
  assert_strata_err(strata_crystallize(f.s, 3), -EIO);
  fp_disarm();
  struct stat st;
  assert_int_equal(stat(test_path(f.dir, "base.region"), &st), 0);
  assert_true(maps_inode(st.st_ino)); /* the placed file */
  assert_int_equal(unlink(test_path(f.dir, "base.region")), 0);
  assert_true(maps_inode(st.st_ino)); /* still held */
  assert_strata_err(strata_crystallize(f.s, 3), STRATA_E_CONFLICT);
  assert_non_null(
      strstr(strata_last_error_detail(), "another writer removed it"));
  teardown(&f);
}

/* A new region's file placed by a crystallization whose directory fsync
 * failed is its proto's own: a refresh does not report it as a second
 * claim on the region id, and the retry publishes it. */
static void test_placed_new_file_no_conflict(void **state) {
  (void)state;
  size_t k = fsync_call(42, true);
  fixture f;
  next_kind = KIND_BASE;
  setup(&f);
  fp_arm((unsigned)k, FP_TRANSIENT, EIO);
  assert_strata_err(strata_crystallize(f.s, 42), -EIO);
  fp_disarm();
  pthread_mutex_lock(&f.cap.mu);
  f.cap.len = 0;
  f.cap.text[0] = '\0';
  pthread_mutex_unlock(&f.cap.mu);
  assert_strata_ok(strata_store_refresh(f.s));
  assert_null(strstr(f.cap.text, "already served"));
  char *json = NULL;
  assert_strata_ok(strata_dump_state(f.s, 0, &json));
  assert_non_null(strstr(json, "\"conflicts\": []"));
  strata_free(json);
  expect_store_model(f.s, &f.m42, __func__);
  assert_strata_ok(strata_crystallize(f.s, 42));
  expect_store_model(f.s, &f.m42, __func__);
  teardown(&f);
}

/* Crystallizes region 3 of the fixture as it stands, counting calls, and
 * returns the number of the first directory fsync after the rename. */
static size_t dir_fsync_now(fixture *f) {
  fp_arm(0, FP_TRANSIENT, 0);
  assert_strata_ok(strata_crystallize(f->s, 3));
  fp_disarm();
  size_t rename_at = 0, k = 0;
  for (size_t i = 0; i < fp_count(); i++)
    if (fp_call_at(i)->fn == FP_RENAMEAT)
      rename_at = i + 1;
  for (size_t i = rename_at; rename_at > 0 && i < fp_count() && k == 0; i++)
    if (fp_call_at(i)->fn == FP_FSYNC && fp_call_at(i)->dir)
      k = i + 1;
  assert_true(k > 0);
  return k;
}

/* A put past a quarter of the base: the next crystallization writes a
 * base. */
static void grow_past_quarter(fixture *f) {
  struct stat st;
  assert_int_equal(stat(test_path(f->dir, "base.region"), &st), 0);
  size_t n = (size_t)st.st_size / 4 + 4096;
  uint8_t *big = malloc(n);
  assert_non_null(big);
  fill(big, n, 77);
  put(f->p3, &f->m3, 98, "past-quarter", NULL, big, n);
  free(big);
}

/* Fails region 3's crystallization at call `k` with EIO (after its
 * rename: the file stays in place as the proto's own). */
static void fail_placed(fixture *f, size_t k) {
  fp_arm((unsigned)k, FP_TRANSIENT, EIO);
  assert_strata_err(strata_crystallize(f->s, 3), -EIO);
  fp_disarm();
}

/* Two failed tries that each placed their file, a delta (or a merge) and
 * then, the proto having grown, a base: the third try crystallizes (the
 * second's base is the proto's own and the deltas are stale by their
 * binding to the base it replaced), and a store opened afterwards serves
 * the proto's content. It used to fail for ever with STRATA_E_CONFLICT,
 * calling the first try's file another writer's. */
static void placed_twice(fixture_kind kind) {
  fixture f;
  next_kind = kind;
  setup(&f);
  size_t k1 = dir_fsync_now(&f);
  teardown(&f);
  next_kind = kind;
  setup(&f);
  fail_placed(&f, k1);
  grow_past_quarter(&f);
  size_t k2 = dir_fsync_now(&f);
  teardown(&f);

  next_kind = kind;
  setup(&f);
  fail_placed(&f, k1);
  grow_past_quarter(&f);
  fail_placed(&f, k2);
  assert_strata_ok(strata_crystallize(f.s, 3));
  expect_store_model(f.s, &f.m3, __func__);
  strata_store_close(f.s);
  f.s = open_store(f.dir, &f.cap, 0);
  expect_store_model(f.s, &f.m3, __func__);
  teardown(&f);
}

static void test_placed_delta_then_placed_base(void **state) {
  (void)state;
  placed_twice(KIND_DELTA);
}

static void test_placed_merge_then_placed_base(void **state) {
  (void)state;
  placed_twice(KIND_MERGE);
}

/* ---- store open and refresh under faults -------------------------------- */

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
    strata_writer *w = NULL;
    const char *path = test_path(dir, open_files[i]);
    assert_strata_ok(strata_writer_open(path, &o, &w));
    for (uint64_t id = 0; id < 8; id++) {
      char data[32];
      snprintf(data, sizeof data, "%s:%" PRIu64, open_names[i], id);
      assert_strata_ok(
          strata_writer_add(w, id, NULL, 0, NULL, data, strlen(data)));
    }
    assert_strata_ok(strata_writer_commit(w));
    open_bytes[i] = test_read_file(path, &open_len[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* A directory with a, b and c and a temporary file of an interrupted
 * write; watched. */
static void setup_open_dir(char *dir, size_t cap) {
  make_open_files();
  snprintf(dir, cap, "%s", test_tmpdir());
  for (int i = 0; i < 3; i++)
    test_write_file(test_path(dir, open_files[i]), open_bytes[i], open_len[i]);
  test_write_file(test_path(dir, OPEN_TEMP), STRATA__MAGIC "partial",
                  STRATA__MAGIC_LEN + 7);
  fp_watch(dir);
}

static int try_open(const char *dir, log_capture *cap, strata_store **out) {
  strata_store_config c;
  strata_store_config_init(&c);
  pthread_mutex_init(&cap->mu, NULL);
  cap->len = 0;
  cap->text[0] = '\0';
  c.log_fn = capture_log;
  c.log_ctx = cap;
  c.log_level = STRATA_LOG_INFO;
  c.open_threads = 1; /* one thread: the same call order every time */
  return strata_store_open(dir, &c, out);
}

static void expect_served(strata_store *s, int i) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  for (uint64_t id = 0; id < 8; id++) {
    char want[32];
    snprintf(want, sizeof want, "%s:%" PRIu64, open_names[i], id);
    strata_layer l;
    assert_strata_ok(strata_get(&t, (uint64_t)i + 1, id, &l));
    assert_int_equal(l.size, strlen(want));
    assert_memory_equal(l.data, want, l.size);
  }
  strata_read_end(&t);
}

/* What the record of an armed open or refresh shows, by call site. */
typedef struct open_faults {
  bool dir_failed;              /* opening or reading the directory */
  bool file_failed[OPEN_FILES]; /* a call on that region file */
  bool temp_removed;            /* unlinkat() of OPEN_TEMP went through */
} open_faults;

static open_faults classify(void) {
  open_faults o = {0};
  for (size_t i = 0; i < fp_count(); i++) {
    const fp_call *c = fp_call_at(i);
    if (c->fn == FP_UNLINKAT && !c->failed && strcmp(c->target, OPEN_TEMP) == 0)
      o.temp_removed = true;
    if (!c->failed)
      continue;
    /* An fstat() of the directory is the permission report at open, a
     * best-effort log line: its failure is not a failure to read it. */
    if (c->dir && c->fn != FP_FSTAT)
      o.dir_failed = true;
    /* Loading a file: stat, open, fstat, mmap. A failed madvise of the
     * index is only a hint; a failed fstatat() in refresh's "same file?"
     * check makes it load the file again. */
    for (int j = 0; j < OPEN_FILES; j++)
      if (strcmp(c->target, open_files[j]) == 0 && c->fn != FP_MADVISE &&
          c->fn != FP_FSTATAT)
        o.file_failed[j] = true;
  }
  return o;
}

typedef struct open_counts {
  unsigned failed, skipped, all_served;
} open_counts;

/* After an open or refresh that succeeded under the faults `o`: the
 * regions in `present` whose calls failed are skipped with a WARN line
 * naming the file, the others are served. */
static void expect_skips(strata_store *s, const open_faults *o,
                         const bool present[OPEN_FILES], const char *log,
                         const char *what, int err, open_counts *oc) {
  bool any = false;
  for (int j = 0; j < OPEN_FILES; j++) {
    if (!present[j]) {
      expect_no_region(s, (uint64_t)j + 1);
      continue;
    }
    if (!o->file_failed[j]) {
      expect_served(s, j);
      continue;
    }
    any = true;
    expect_no_region(s, (uint64_t)j + 1);
    char want[64];
    snprintf(want, sizeof want, "file=%s error=%s", open_files[j],
             strata_err_name(-err));
    if (strstr(log, want) == NULL || strstr(log, "region skipped") == NULL)
      fail_msg("%s: no warning naming %s:\n%s", what, open_files[j], log);
  }
  oc->skipped += any;
  oc->all_served += !any;
}

static void print_open_outcome(size_t k, const char *what, int err,
                               fp_mode mode, int rc, const char *detail,
                               strata_store *s) {
  if (!verbose())
    return;
  if (rc != 0) {
    print_message("  %2zu %-44s %-6s %-10s -> %s: \"%s\"\n", k, what,
                  strata_err_name(-err), mode_name(mode), strata_err_name(rc),
                  detail);
    return;
  }
  char served[64] = "";
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  for (int j = 0; j < OPEN_FILES; j++) {
    strata_layer l;
    if (strata_get(&t, (uint64_t)j + 1, 0, &l) == 0)
      strcat(strcat(served, " "), open_files[j]);
  }
  strata_read_end(&t);
  print_message("  %2zu %-44s %-6s %-10s -> ok, serves:%s\n", k, what,
                strata_err_name(-err), mode_name(mode),
                served[0] ? served : " nothing");
}

/* Fails call k of strata_store_open() over a, b, c and the temporary
 * file. */
static void open_case(size_t k, fp_mode mode, int err, open_counts *oc) {
  int fds0 = count_fds();
  char dir[4096];
  setup_open_dir(dir, sizeof dir);
  log_capture cap;
  strata_store *s = NULL;
  fp_arm((unsigned)k, mode, err);
  int rc = try_open(dir, &cap, &s);
  fp_disarm();
  char what[200], detail[1024];
  snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
  assert_non_null(fp_call_at(k - 1));
  fp_describe(fp_call_at(k - 1), what, sizeof what);
  assert_int_equal(fp_first_failure(), k);
  print_open_outcome(k, what, err, mode, rc, detail, s);
  open_faults o = classify();
  if (rc != 0) {
    /* Only a failure on the directory itself may fail the open. */
    if (!o.dir_failed)
      fail_msg("call %zu %s (%s): the open failed with %s: %s", k, what,
               strata_err_name(-err), strata_err_name(rc), detail);
    assert_int_equal(rc, -err);
    assert_null(s);
    if (strstr(detail, dir) == NULL)
      fail_msg("call %zu %s: the detail does not name the directory: %s", k,
               what, detail);
    oc->failed++;
  } else {
    if (o.dir_failed)
      fail_msg("call %zu %s (%s): the directory could not be read, yet the "
               "open succeeded:\n%s",
               k, what, strata_err_name(-err), cap.text);
    static const bool present[OPEN_FILES] = {true, true, true, false};
    expect_skips(s, &o, present, cap.text, what, err, oc);
    strata_store_close(s);
  }
  /* The cleanup of the temporary file is best effort. */
  assert_int_equal(access(test_path(dir, OPEN_TEMP), F_OK) == 0,
                   !o.temp_removed);
  remove_watched_dir(dir);
  assert_int_equal(count_fds(), fds0);
}

/* Fails call k of strata_store_refresh() after d.region appeared. */
static void refresh_case(size_t k, fp_mode mode, int err, open_counts *oc) {
  int fds0 = count_fds();
  char dir[4096];
  setup_open_dir(dir, sizeof dir);
  log_capture cap;
  strata_store *s = NULL;
  assert_strata_ok(try_open(dir, &cap, &s));
  test_write_file(test_path(dir, open_files[3]), open_bytes[3], open_len[3]);
  cap.len = 0;
  cap.text[0] = '\0';
  fp_arm((unsigned)k, mode, err);
  int rc = strata_store_refresh(s);
  fp_disarm();
  char what[200], detail[1024];
  snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
  assert_non_null(fp_call_at(k - 1));
  fp_describe(fp_call_at(k - 1), what, sizeof what);
  assert_int_equal(fp_first_failure(), k);
  print_open_outcome(k, what, err, mode, rc, detail, s);
  open_faults o = classify();
  if (rc != 0) {
    /* A failed refresh changes nothing. */
    if (!o.dir_failed)
      fail_msg("call %zu %s (%s): the refresh failed with %s: %s", k, what,
               strata_err_name(-err), strata_err_name(rc), detail);
    assert_int_equal(rc, -err);
    if (strstr(detail, dir) == NULL)
      fail_msg("call %zu %s: the detail does not name the directory: %s", k,
               what, detail);
    for (int j = 0; j < 3; j++)
      expect_served(s, j);
    expect_no_region(s, 4);
    oc->failed++;
  } else {
    if (o.dir_failed)
      fail_msg("call %zu %s (%s): the directory could not be read, yet the "
               "refresh succeeded:\n%s",
               k, what, strata_err_name(-err), cap.text);
    static const bool present[OPEN_FILES] = {true, true, true, true};
    expect_skips(s, &o, present, cap.text, what, err, oc);
  }
  strata_store_close(s);
  remove_watched_dir(dir);
  assert_int_equal(count_fds(), fds0);
}

static void sweep_open(bool refresh) {
  /* The dry run. */
  char dir[4096];
  setup_open_dir(dir, sizeof dir);
  log_capture cap;
  strata_store *s = NULL;
  if (refresh) {
    assert_strata_ok(try_open(dir, &cap, &s));
    test_write_file(test_path(dir, open_files[3]), open_bytes[3], open_len[3]);
  }
  fp_arm(0, FP_TRANSIENT, 0);
  assert_strata_ok(refresh ? strata_store_refresh(s) : try_open(dir, &cap, &s));
  fp_disarm();
  size_t n = fp_count();
  fp_call calls[64];
  assert_true(n > 0 && n <= 64);
  for (size_t i = 0; i < n; i++)
    calls[i] = *fp_call_at(i);
  print_sequence(refresh ? "strata_store_refresh, d.region new"
                         : "strata_store_open over a, b, c",
                 calls, n);
  for (int j = 0; j < (refresh ? 4 : 3); j++)
    expect_served(s, j);
  strata_store_close(s);
  remove_watched_dir(dir);

  static const int errs[] = {ENOSPC, EIO};
  open_counts oc = {0};
  for (size_t k = 1; k <= n; k++)
    for (int mode = FP_TRANSIENT; mode <= FP_PERSISTENT; mode++)
      for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++)
        if (refresh)
          refresh_case(k, (fp_mode)mode, errs[e], &oc);
        else
          open_case(k, (fp_mode)mode, errs[e], &oc);
  print_message("  %u cases failed, %u skipped a file, %u served every "
                "file\n",
                oc.failed, oc.skipped, oc.all_served);
}

static void test_store_open_faults(void **state) {
  (void)state;
  sweep_open(false);
}

static void test_store_refresh_faults(void **state) {
  (void)state;
  sweep_open(true);
}

/* A system call of the writer lock that fails with EINVAL (a file system
 * without flock, say) is reported as itself, the detail naming the lock
 * file. STRATA_E_INVAL is -EINVAL, and the lock code once took every
 * -EINVAL for its own "not a regular file" refusal, whose detail it had
 * already set: a real EINVAL came back with the previous call's detail. */
static void test_lock_einval_names_lock_file(void **state) {
  (void)state;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", test_tmpdir());
  fp_watch(dir);
  log_capture cap;
  strata_store *s = open_store(dir, &cap, 0);
  fp_arm(0, FP_TRANSIENT, 0);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "one", 3, NULL, &p));
  fp_disarm();
  size_t at = 0; /* the lock file's open, numbered from 1 */
  for (size_t i = 0; i < fp_count() && at == 0; i++)
    if (fp_call_at(i)->fn == FP_OPENAT &&
        strcmp(fp_call_at(i)->target, ".strata.lock") == 0)
      at = i + 1;
  assert_true(at > 0);
  strata_proto_discard(p);
  strata_store_close(s);

  s = open_store(dir, &cap, 0);
  assert_int_equal(strata_read_begin(s, NULL), STRATA_E_INVAL); /* a detail */
  fp_arm((unsigned)at, FP_TRANSIENT, EINVAL);
  p = NULL;
  int rc = strata_proto_create(s, 1, "one", 3, NULL, &p);
  fp_disarm();
  assert_int_equal(rc, -EINVAL);
  assert_null(p);
  const char *d = strata_last_error_detail();
  assert_non_null(strstr(d, "/.strata.lock: taking the writer lock"));
  assert_null(strstr(d, "strata_read_begin"));
  /* Nothing was taken: the next write succeeds. */
  assert_strata_ok(strata_proto_create(s, 1, "one", 3, NULL, &p));
  strata_proto_discard(p);
  strata_store_close(s);
  remove_watched_dir(dir);
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

/* ---- compaction under faults --------------------------------------------- */

/* strata_compact() of region 3's stack (base.1.delta and base.2.delta under
 * an open proto with changes of its own), with `rebase` a crystallization
 * of one more change in the middle (the test hook, on the compacting
 * thread), so that the compaction also writes the rebased delta and
 * renames it twice. For every I/O call k of a successful run, call k fails
 * (once, or from then on) with EIO. Whatever fails, readers see exactly the
 * model, before and after a reopen: a compaction changes how the content
 * is stored, never the content. strata_compact() returns 0 (the failure was
 * in a step that only tidies: the hook's crystallization, the removal of a
 * stale delta, the rebased delta's canonical name, the directory fsync after
 * the new base's rename) or -EIO naming the store's directory (or, when the
 * hook's crystallization placed its delta and then failed,
 * STRATA_E_STATE: its proto owns that file until it crystallizes); a temporary
 * file is left only by a failed unlinkat(), a rebased delta under its
 * temporary name only by a failed unlinkat() or renameat(); no descriptor
 * leaks; once the fault clears, compacting again succeeds and leaves no
 * such file, the proto crystallizes over the new files, and a store opened
 * from scratch serves the model. */
typedef struct compact_hook_arg {
  fixture *f;
  bool rebase;
  int calls, rc;
} compact_hook_arg;

static void compact_meanwhile(void *ctx) {
  compact_hook_arg *a = ctx;
  if (!a->rebase || a->calls++ > 0)
    return;
  put(a->f->p3, &a->f->m3, 7, NULL, NULL, "meanwhile", 9);
  a->rc = strata_crystallize(a->f->s, 3); /* may fail: the proto keeps it */
}

static void compact_setup(fixture *f) {
  next_kind = KIND_DELTA;
  setup(f);
  assert_strata_ok(strata_crystallize(f->s, 3));
  put(f->p3, &f->m3, 5, NULL, NULL, "second", 6);
  assert_strata_ok(strata_crystallize(f->s, 3));
  assert_int_equal(access(test_path(f->dir, "base.2.delta"), F_OK), 0);
  put(f->p3, &f->m3, 6, NULL, NULL, "in the proto", 12);
}

/* A rebased delta's name, base.D.cG.delta (compact.c), or its temporary
 * file's. */
static bool is_rebased_name(const char *n) {
  unsigned d, g;
  int end = 0;
  if (n[0] == '.')
    n++;
  return sscanf(n, "base.%u.c%u.delta%n", &d, &g, &end) == 2 &&
         (n[end] == '\0' || strncmp(n + end, ".strata-tmp-", 12) == 0);
}

static size_t compact_calls(bool rebase) {
  fixture f;
  compact_setup(&f);
  compact_hook_arg a = {.f = &f, .rebase = rebase};
  strata_compact_test_hook(f.s, compact_meanwhile, &a);
  fp_arm(0, FP_TRANSIENT, 0);
  assert_strata_ok(strata_compact(f.s, 3));
  fp_disarm();
  assert_strata_ok(a.rc);
  size_t n = fp_count();
  print_message("%s: %zu calls\n",
                rebase ? "compact, rebasing a delta" : "compact", n);
  for (size_t i = 0; i < n; i++) {
    char buf[200];
    fp_describe(fp_call_at(i), buf, sizeof buf);
    print_message("  %2zu %s\n", i + 1, buf);
  }
  expect_store_model(f.s, &f.m3, __func__);
  teardown(&f);
  return n;
}

static void compact_case(bool rebase, size_t k, fp_mode mode,
                         unsigned *failed) {
  int fds0 = count_fds();
  fixture f;
  compact_setup(&f);
  compact_hook_arg a = {.f = &f, .rebase = rebase};
  strata_compact_test_hook(f.s, compact_meanwhile, &a);
  fp_arm((unsigned)k, mode, EIO);
  int rc = strata_compact(f.s, 3);
  fp_disarm();
  strata_compact_test_hook(f.s, NULL, NULL);
  char what[200];
  fp_describe(fp_call_at(k - 1), what, sizeof what);
  /* The hook's crystallization failed after its rename (the directory
   * fsync): its proto owns the placed delta, and the compaction leaves it
   * to the proto's next crystallization. */
  bool placed = rebase && a.rc != 0 && rc == STRATA_E_STATE;
  if (placed)
    assert_strata_ok(strata_crystallize(f.s, 3));
  if (rc != 0 && rc != -EIO && !placed)
    fail_msg("call %zu %s (%s): strata_compact returned %s: %s", k, what,
             mode_name(mode), strata_err_name(rc), strata_last_error_detail());
  if (rc != 0 && strstr(strata_last_error_detail(), f.dir) == NULL)
    fail_msg("call %zu %s: the detail does not name %s: %s", k, what, f.dir,
             strata_last_error_detail());
  *failed += rc != 0;
  expect_store_model(f.s, &f.m3, __func__);
  expect_store_model(f.s, &f.m42, __func__);
  /* A rebased delta stays under its temporary name when it could not be
   * renamed or removed, and when the directory fsync after the new base's
   * rename failed: then the old deltas stay too, and it keeps its name so
   * as not to replace the first of them (compact.c). */
  bool unlink_failed = false, rename_failed = false;
  for (size_t i = 0; i < fp_count(); i++) {
    const fp_call *c = fp_call_at(i);
    unlink_failed |= c->fn == FP_UNLINKAT && c->failed;
    rename_failed |=
        (c->fn == FP_RENAMEAT || (c->fn == FP_FSYNC && c->dir)) && c->failed;
  }
  dirsnap after;
  snap_dir(f.dir, &after);
  for (size_t i = 0; i < after.n; i++)
    if ((is_temp_name(after.name[i]) && !unlink_failed) ||
        (is_rebased_name(after.name[i]) && !unlink_failed && !rename_failed))
      fail_msg("call %zu %s (%s): %s left behind", k, what, mode_name(mode),
               after.name[i]);
  snap_free(&after);
  /* Once the fault clears, a compaction succeeds and tidies up. */
  assert_strata_ok(strata_compact(f.s, 3));
  expect_store_model(f.s, &f.m3, __func__);
  snap_dir(f.dir, &after);
  for (size_t i = 0; i < after.n; i++)
    if (is_rebased_name(after.name[i]) && !is_temp_name(after.name[i]))
      fail_msg("call %zu %s: %s survived a second compaction", k, what,
               after.name[i]);
  snap_free(&after);
  /* The proto goes on over the compacted files, and a store opened from
   * scratch serves what it crystallizes. */
  assert_strata_ok(strata_crystallize(f.s, 3));
  expect_store_model(f.s, &f.m3, __func__);
  strata_store_close(f.s);
  f.s = open_store(f.dir, &f.cap, 0);
  expect_store_model(f.s, &f.m3, __func__);
  expect_no_region(f.s, 42); /* a proto, gone with the store */
  snap_dir(f.dir, &after);   /* the open removed the temporary files */
  for (size_t i = 0; i < after.n; i++)
    if (is_temp_name(after.name[i]) || is_rebased_name(after.name[i]))
      fail_msg("call %zu %s: %s survived a store open", k, what, after.name[i]);
  snap_free(&after);
  teardown(&f);
  assert_int_equal(count_fds(), fds0);
}

static void compact_sweep(bool rebase) {
  size_t n = compact_calls(rebase);
  unsigned cases = 0, failed = 0;
  for (size_t k = 1; k <= n; k++)
    for (int mode = FP_TRANSIENT; mode <= FP_PERSISTENT; mode++, cases++)
      compact_case(rebase, k, (fp_mode)mode, &failed);
  print_message("  %u cases: %u failed the compaction, %u left it standing\n",
                cases, failed, cases - failed);
  assert_true(failed > 0 && failed < cases);
}

static void test_compact_faults(void **state) {
  (void)state;
  compact_sweep(false);
}

static void test_compact_rebase_faults(void **state) {
  (void)state;
  compact_sweep(true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fsync_failure_is_final),
      cmocka_unit_test(test_placed_file_kept),
      cmocka_unit_test(test_placed_new_file_no_conflict),
      cmocka_unit_test(test_placed_delta_then_placed_base),
      cmocka_unit_test(test_placed_merge_then_placed_base),
      cmocka_unit_test(test_crystallize_replace_tmpfile),
      cmocka_unit_test(test_crystallize_replace_named),
      cmocka_unit_test(test_crystallize_new_tmpfile),
      cmocka_unit_test(test_crystallize_new_named),
      cmocka_unit_test(test_crystallize_delta_tmpfile),
      cmocka_unit_test(test_crystallize_delta_named),
      cmocka_unit_test(test_crystallize_merge_tmpfile),
      cmocka_unit_test(test_crystallize_compact_tmpfile),
      cmocka_unit_test(test_compact_faults),
      cmocka_unit_test(test_compact_rebase_faults),
      cmocka_unit_test(test_store_open_faults),
      cmocka_unit_test(test_store_refresh_faults),
      cmocka_unit_test(test_lock_einval_names_lock_file),
  };
  return cmocka_run_group_tests(tests, NULL, cleanup);
}
