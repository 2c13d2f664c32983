/* I/O failure injection into region-builder's builds (failpoint.c
 * interposes the libc calls of src/ and of the tool's sources, which this
 * executable compiles in, main.c aside).
 *
 * One watched directory holds the inputs (a manifest with text, base64 and
 * file layers, a JSONL file, a tree for --from-dir) and the output,
 * out.region. A dry run records the I/O calls a successful build makes: the
 * reads of the input files and the writer's calls. Then, for every call k
 * of that sequence, call k fails (once, or from then on) with ENOSPC or EIO,
 * with the writer using O_TMPFILE or its named temporary file, and with
 * out.region absent or holding a previous region. After each failure:
 *   - the build returned RB_EXIT_FAIL and printed a message naming the file
 *     concerned (the input file, or out.region for the writer's calls);
 *     RB_EXIT_OK only for a best-effort call, and then out.region is the
 *     new region, complete;
 *   - out.region holds what it held before: nothing, or the previous region
 *     byte for byte. The exception is a failure after the rename (the fsync
 *     of the directory): reported, and the new region is in place, as
 *     strata_writer_commit() documents;
 *   - no temporary file is left, unless the cleanup unlinkat() itself
 *     failed; then exactly one, which the next strata_store_open() removes;
 *   - no descriptor leaked;
 *   - nothing was linked or renamed into place after a failed write,
 *     ftruncate or fsync, and a failed fsync was not retried;
 *   - with the fault cleared, the same build succeeds and the region opens
 *     and verifies.
 *
 * The manifest itself is read through stdio (fopen), whose descriptor glibc
 * opens through an internal call that cannot be interposed, and access()
 * is not wrapped: those calls are not part of the sweep.
 *
 * STRATA_FAULTS_VERBOSE=1 prints the outcome of every case. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "builder.h"
#include "failpoint.h"
#include "test_util.h"

/* A file layer larger than region-builder's 256 KiB read chunk, so that it
 * takes two read() calls. */
#define BLOB_SIZE ((256u << 10) + 1000)
#define BIG_SIZE ((9u << 20) + 1000)
#define SEQ_MAX 128
#define OUT "out.region"
#define PREV_ID 99

/* IN_BIG: a JSONL file whose one file layer is BIG_SIZE bytes, past the
 * 8 MiB after which the writer starts the writeback (pubfile.c, kick()).
 * IN_WIDE: WIDE_LAYERS small layers with ids 0, 1, ... in order (a packed
 * dense region), whose index (72 bytes a layer) passes the writer's 1 MiB
 * buffer, so that it is written in several writes: a failure in its
 * middle. */
typedef enum input {
  IN_MANIFEST,
  IN_JSONL,
  IN_FROM_DIR,
  IN_BIG,
  IN_WIDE
} input;
#define WIDE_LAYERS 20000

typedef struct scenario {
  input in;
  bool named_tmp; /* the writer's named temporary file instead of O_TMPFILE */
  bool previous;  /* out.region holds a previous region */
} scenario;

typedef struct sequence {
  size_t n, rename_at; /* rename_at: 1-based number of the renameat() */
  fp_call calls[SEQ_MAX];
} sequence;

/* What the region built from an input looks like. */
typedef struct expected {
  uint64_t id, layers, data_size;
} expected;

static char dir[4096];          /* the watched directory */
static char errfile[4096 + 16]; /* stderr is captured here (not watched) */
static uint8_t *prev_bytes;     /* the previous region */
static size_t prev_len;

/* ---- helpers ------------------------------------------------------------- */

static bool verbose(void) {
  const char *v = getenv("STRATA_FAULTS_VERBOSE");
  return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static const char *mode_name(fp_mode mode) {
  return mode == FP_PERSISTENT ? "persistent" : "transient";
}

static const char *input_name(input in) {
  return in == IN_MANIFEST ? "manifest"
         : in == IN_JSONL  ? "jsonl"
         : in == IN_BIG    ? "big jsonl"
         : in == IN_WIDE   ? "wide jsonl"
                           : "from-dir";
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

/* A writer's temporary file name, ".NAME.strata-tmp-XXXXXXXX". */
static bool is_temp_name(const char *n) {
  const char *t = strstr(n, ".strata-tmp-");
  return n[0] == '.' && t != NULL && strlen(t) == 12 + 8;
}

/* Counts the temporary files in the directory, removing them when
 * `remove`. */
static size_t temp_files(bool remove) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (is_temp_name(e->d_name)) {
      n++;
      if (remove)
        unlink(test_path(dir, e->d_name));
    }
  closedir(d);
  return n;
}

static void write_text(const char *rel, const char *text) {
  test_write_file(test_path(dir, rel), text, strlen(text));
}

/* The inputs, and the previous region (built by region-builder itself). */
static void make_inputs(void) {
  snprintf(dir, sizeof dir, "%s", test_tmpdir());
  const char *tmp = test_tmpdir();
  snprintf(errfile, sizeof errfile, "%s/stderr", tmp);
  assert_int_equal(mkdir(test_path(dir, "data"), 0755), 0);
  assert_int_equal(mkdir(test_path(dir, "tree"), 0755), 0);
  assert_int_equal(mkdir(test_path(dir, "tree/sub"), 0755), 0);
  uint8_t *blob = malloc(BLOB_SIZE);
  assert_non_null(blob);
  for (size_t i = 0; i < BLOB_SIZE; i++)
    blob[i] = (uint8_t)(i * 131 + 7);
  test_write_file(test_path(dir, "data/blob.bin"), blob, BLOB_SIZE);
  test_write_file(test_path(dir, "tree/sub/blob.bin"), blob, BLOB_SIZE);
  free(blob);
  uint8_t *big = malloc(BIG_SIZE);
  assert_non_null(big);
  for (size_t i = 0; i < BIG_SIZE; i++)
    big[i] = (uint8_t)(i * 37 + 1);
  test_write_file(test_path(dir, "data/big.bin"), big, BIG_SIZE);
  free(big);
  write_text("big.jsonl",
             "{\"id\": 1, \"name\": \"big\", \"file\": \"data/big.bin\"}\n");
  FILE *wide = fopen(test_path(dir, "wide.jsonl"), "w");
  assert_non_null(wide);
  for (int i = 0; i < WIDE_LAYERS; i++)
    fprintf(wide, "{\"id\": %d, \"text\": \"w%d\"}\n", i, i);
  assert_int_equal(fclose(wide), 0);
  write_text("data/small.txt", "a small file\n");
  write_text("tree/a.txt", "alpha\n");
  write_text(
      "manifest.json",
      "{\"region\": {\"id\": 7, \"name\": \"faults\"},\n"
      " \"layers\": [\n"
      "  {\"id\": 1, \"name\": \"text\", \"text\": \"hello\"},\n"
      "  {\"id\": 2, \"name\": \"b64\", \"base64\": \"aGVsbG8gd29ybGQ=\","
      " \"metadata\": {\"k\": 1}},\n"
      "  {\"id\": 3, \"name\": \"blob\", \"file\": \"data/blob.bin\"},\n"
      "  {\"id\": 4, \"name\": \"small\", \"file\": \"data/small.txt\"}\n"
      " ]}\n");
  write_text("layers.jsonl",
             "{\"id\": 1, \"name\": \"text\", \"text\": \"hello\"}\n"
             "{\"id\": 2, \"base64\": \"aGk=\"}\n"
             "{\"id\": 3, \"name\": \"blob\", \"file\": \"data/blob.bin\"}\n");
  write_text("prev.json", "{\"region\": {\"id\": 99, \"name\": \"prev\"},"
                          " \"layers\": [{\"id\": 5, \"text\": \"old\"}]}\n");
  rb_options opt = {.out = test_path(dir, OUT), .quiet = true};
  assert_int_equal(rb_build_manifest(&opt, test_path(dir, "prev.json")),
                   RB_EXIT_OK);
  prev_bytes = test_read_file(test_path(dir, OUT), &prev_len);
  assert_int_equal(unlink(test_path(dir, OUT)), 0);
  fp_watch(dir);
}

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL) {
    unlink(path);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      char child[8192];
      snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      remove_tree(child);
    }
  closedir(d);
  rmdir(path);
}

/* Puts out.region in the scenario's starting state. */
static void reset_output(const scenario *sc) {
  const char *out = test_path(dir, OUT);
  unlink(out);
  temp_files(true);
  unlink(test_path(dir, ".strata.lock"));
  if (sc->previous)
    test_write_file(out, prev_bytes, prev_len);
}

static int build(const scenario *sc) {
  rb_options opt = {.out = test_path(dir, OUT),
                    .quiet = true,
                    .region_id = 8,
                    .region_name = "faults"};
  switch (sc->in) {
  case IN_MANIFEST:
    return rb_build_manifest(&opt, test_path(dir, "manifest.json"));
  case IN_JSONL:
    return rb_build_jsonl(&opt, test_path(dir, "layers.jsonl"));
  case IN_FROM_DIR:
    return rb_build_from_dir(&opt, test_path(dir, "tree"));
  case IN_BIG:
    return rb_build_jsonl(&opt, test_path(dir, "big.jsonl"));
  case IN_WIDE:
    return rb_build_jsonl(&opt, test_path(dir, "wide.jsonl"));
  }
  return -1;
}

/* Runs one build with fd 2 redirected to errfile; *err gets what it
 * printed (malloc'ed, NUL-terminated). */
static int build_captured(const scenario *sc, unsigned k, fp_mode mode, int e,
                          char **err) {
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
  close(fd);
  fp_arm(k, mode, e);
  int rc = build(sc);
  fp_disarm();
  fflush(stderr);
  assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
  close(saved);
  size_t len;
  uint8_t *text = test_read_file(errfile, &len);
  *err = realloc(text, len + 1);
  assert_non_null(*err);
  (*err)[len] = '\0';
  return rc;
}

/* Opens and verifies out.region (or `path`) and returns its shape. */
static expected region_shape(const char *path) {
  strata_region *r = NULL;
  int rc = strata_region_open(path, 0, &r);
  if (rc != 0)
    fail_msg("%s does not open: %s: %s", path, strata_err_name(rc),
             strata_last_error_detail());
  rc = strata_region_verify(r, NULL);
  if (rc != 0)
    fail_msg("%s does not verify: %s: %s", path, strata_err_name(rc),
             strata_last_error_detail());
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  expected x = {info.id, info.layer_count, info.data_size};
  strata_region_close(r);
  return x;
}

static void expect_shape(const expected *want, size_t k, const char *what) {
  expected got = region_shape(test_path(dir, OUT));
  if (got.id != want->id || got.layers != want->layers ||
      got.data_size != want->data_size)
    fail_msg("call %zu %s: out.region is not the complete new region (id "
             "%llu, %llu layers, %llu data bytes)",
             k, what, (unsigned long long)got.id,
             (unsigned long long)got.layers, (unsigned long long)got.data_size);
}

static void print_sequence(const scenario *sc, const sequence *seq) {
  print_message("%s (%s, %s): %zu calls\n", input_name(sc->in),
                sc->named_tmp ? "named temporary file" : "O_TMPFILE",
                sc->previous ? "over a previous region" : "no previous file",
                seq->n);
  for (size_t i = 0; i < seq->n; i++) {
    char buf[200];
    fp_describe(&seq->calls[i], buf, sizeof buf);
    print_message("  %2zu %s\n", i + 1, buf);
  }
}

/* ---- the sweep ----------------------------------------------------------- */

static void dry_run(const scenario *sc, sequence *seq, expected *want) {
  fp_refuse_tmpfile(sc->named_tmp);
  reset_output(sc);
  char *err;
  int rc = build_captured(sc, 0, FP_TRANSIENT, 0, &err);
  if (rc != RB_EXIT_OK)
    fail_msg("dry run of %s failed: %s", input_name(sc->in), err);
  free(err);
  seq->n = fp_count();
  assert_true(seq->n > 0 && seq->n <= SEQ_MAX);
  seq->rename_at = 0;
  for (size_t i = 0; i < seq->n; i++) {
    seq->calls[i] = *fp_call_at(i);
    if (seq->calls[i].fn == FP_RENAMEAT &&
        strcmp(seq->calls[i].target, OUT) == 0)
      seq->rename_at = i + 1;
  }
  assert_true(seq->rename_at > 0);
  *want = region_shape(test_path(dir, OUT));
  assert_int_equal(temp_files(false), 0);
  print_sequence(sc, seq);
}

/* The durability rules, from the record of one failed build. */
static void expect_rules(size_t k) {
  bool write_failed = false, fsync_failed = false;
  for (size_t i = 0; i < fp_count(); i++) {
    const fp_call *c = fp_call_at(i);
    bool sync = c->fn == FP_FSYNC || c->fn == FP_FDATASYNC;
    if (fsync_failed && sync)
      fail_msg("case %zu, call %zu: fsync retried after a failed fsync", k,
               i + 1);
    if ((write_failed || fsync_failed) &&
        (c->fn == FP_RENAMEAT || c->fn == FP_LINKAT || c->fn == FP_RENAME))
      fail_msg("case %zu, call %zu: %s after a failed write or fsync", k, i + 1,
               fp_fn_name(c->fn));
    /* A failed write is final for the file (pubfile.c): not one more write
     * to it, whatever the writer was writing (layers, index, header). */
    if (write_failed && !c->dir &&
        (c->fn == FP_PWRITE || c->fn == FP_WRITE || c->fn == FP_FTRUNCATE ||
         c->fn == FP_SYNC_FILE_RANGE))
      fail_msg("case %zu, call %zu: %s after a failed write", k, i + 1,
               fp_fn_name(c->fn));
    if (c->failed && sync)
      fsync_failed = true;
    if (c->failed && !c->dir &&
        (c->fn == FP_PWRITE || c->fn == FP_WRITE || c->fn == FP_FTRUNCATE ||
         c->fn == FP_SYNC_FILE_RANGE))
      write_failed = true;
  }
}

/* Calls whose failure the build may survive: the probe of the previous
 * output in --from-dir mode (only used to skip it inside the tree), the
 * writer's madvise() hints, and its probe whether linkat() with
 * AT_EMPTY_PATH may name its O_TMPFILE (a linkat() to "."; on failure it
 * asks /proc, and the commit links the file either way). */
static bool best_effort(const scenario *sc, const fp_call *c) {
  if (c->fn == FP_MADVISE ||
      (c->fn == FP_LINKAT && strcmp(c->target, ".") == 0))
    return true;
  return sc->in == IN_FROM_DIR && c->fn == FP_STAT &&
         strcmp(c->target, OUT) == 0;
}

/* The name a message about call `c` must contain: the input file's last
 * component (messages about inputs name them as the input wrote them, or
 * relative to the --from-dir root), or out.region for the writer's calls. */
static const char *file_of(const fp_call *c) {
  if (strcmp(c->target, ".") == 0 || c->target[0] == '(' ||
      strcmp(c->target, OUT) == 0 || is_temp_name(c->target))
    return OUT;
  const char *base = strrchr(c->target, '/');
  return base ? base + 1 : c->target;
}

/* Whether `err` names the file of one of the failed calls: in persistent
 * mode the build may survive the first (best-effort) failure and stop at a
 * later one. */
static bool names_a_failed_file(const char *err) {
  for (size_t i = 0; i < fp_count(); i++)
    if (fp_call_at(i)->failed && strstr(err, file_of(fp_call_at(i))) != NULL)
      return true;
  return false;
}

typedef struct outcome_counts {
  unsigned cases, unchanged, placed, survived, temp_left;
} outcome_counts;

static void run_case(const scenario *sc, const sequence *seq,
                     const expected *want, size_t k, fp_mode mode, int e,
                     outcome_counts *oc) {
  reset_output(sc);
  int fds0 = count_fds();
  fp_refuse_tmpfile(sc->named_tmp);
  char *err;
  int rc = build_captured(sc, (unsigned)k, mode, e, &err);
  char what[200];
  const fp_call *fc = fp_call_at(k - 1);
  assert_non_null(fc);
  fp_describe(fc, what, sizeof what);
  if (fp_first_failure() != k || fc->fn != seq->calls[k - 1].fn)
    fail_msg("call %zu: the sequence diverged from the dry run (%s)", k, what);
  bool placed = k > seq->rename_at;

  if (rc == RB_EXIT_OK) {
    if (!best_effort(sc, fc))
      fail_msg("call %zu %s failed with %s (%s), but the build succeeded", k,
               what, strerror(e), mode_name(mode));
    expect_shape(want, k, what);
  } else {
    if (rc != RB_EXIT_FAIL)
      fail_msg("call %zu %s: build returned %d", k, what, rc);
    if (!names_a_failed_file(err))
      fail_msg("call %zu %s (%s, %s): the message does not name %s: \"%s\"", k,
               what, strerror(e), mode_name(mode), file_of(fc), err);
    if (placed) {
      /* Only the fsync of the directory follows the rename. */
      expect_shape(want, k, what);
    } else if (sc->previous) {
      size_t len;
      uint8_t *now = test_read_file(test_path(dir, OUT), &len);
      if (len != prev_len || memcmp(now, prev_bytes, len) != 0)
        fail_msg("call %zu %s: the previous out.region changed", k, what);
      free(now);
    } else if (access(test_path(dir, OUT), F_OK) == 0) {
      fail_msg("call %zu %s: out.region appeared", k, what);
    }
  }
  expect_rules(k);
  assert_int_equal(count_fds(), fds0);

  bool unlink_failed = false;
  for (size_t i = 0; i < fp_count(); i++)
    unlink_failed |= fp_call_at(i)->fn == FP_UNLINKAT && fp_call_at(i)->failed;
  size_t temps = temp_files(false);
  if (temps > (unlink_failed ? 1u : 0u))
    fail_msg("call %zu %s (%s, %s): %zu temporary files left behind", k, what,
             strerror(e), mode_name(mode), temps);
  if (temps > 0) {
    /* The next store open removes it. */
    strata_store_config c;
    strata_store_config_init(&c);
    c.log_level = STRATA_LOG_ERROR;
    strata_store *s = NULL;
    assert_strata_ok(strata_store_open(dir, &c, &s));
    strata_store_close(s);
    if (temp_files(false) != 0)
      fail_msg("call %zu %s: the temporary file survived a store open", k,
               what);
  }
  if (verbose())
    print_message("  %2zu %-44s %-6s %-10s -> %s; %s; \"%.*s\"\n", k, what,
                  strerror(e), mode_name(mode),
                  rc == RB_EXIT_OK ? "ok" : "fail",
                  rc == RB_EXIT_OK ? "new region"
                  : placed         ? "new region in place"
                  : temps          ? "temporary file left"
                                   : "output unchanged",
                  (int)strcspn(err, "\n"), err);
  oc->cases++;
  oc->survived += rc == RB_EXIT_OK;
  oc->placed += rc != RB_EXIT_OK && placed;
  oc->unchanged += rc != RB_EXIT_OK && !placed;
  oc->temp_left += temps > 0;
  free(err);

  /* Once the fault clears, the same build succeeds. */
  rc = build_captured(sc, 0, FP_TRANSIENT, 0, &err);
  if (rc != RB_EXIT_OK)
    fail_msg("after call %zu %s failed (%s, %s): the build failed again: %s", k,
             what, strerror(e), mode_name(mode), err);
  free(err);
  expect_shape(want, k, what);
  assert_int_equal(temp_files(false), 0);
  assert_int_equal(count_fds(), fds0);
}

/* Fails every call of the dry run in turn, or only the calls of `only`
 * (FP_FN_COUNT: all) when a full sweep would cost too much. */
static void sweep_fn(const scenario *sc, fp_fn only) {
  sequence seq;
  expected want;
  dry_run(sc, &seq, &want);
  static const int errs[] = {ENOSPC, EIO};
  outcome_counts oc = {0};
  size_t picked = 0;
  for (size_t k = 1; k <= seq.n; k++) {
    if (only != FP_FN_COUNT && seq.calls[k - 1].fn != only)
      continue;
    picked++;
    for (int mode = FP_TRANSIENT; mode <= FP_PERSISTENT; mode++)
      for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++)
        run_case(sc, &seq, &want, k, (fp_mode)mode, errs[e], &oc);
  }
  if (only != FP_FN_COUNT && picked == 0)
    fail_msg("%s: the dry run made no %s call", input_name(sc->in),
             fp_fn_name(only));
  print_message("  %u cases: %u failed with out.region unchanged, %u after "
                "the rename (new region in place), %u survived a best-effort "
                "failure; %u left a temporary file (failed unlinkat)\n",
                oc.cases, oc.unchanged, oc.placed, oc.survived, oc.temp_left);
  fp_refuse_tmpfile(false);
}

static void sweep(const scenario *sc) {
  sweep_fn(sc, FP_FN_COUNT);
}

/* ---- tests --------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  make_inputs();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  fp_watch(NULL);
  remove_tree(dir);
  remove_tree(errfile);
  char *slash = strrchr(errfile, '/');
  *slash = '\0';
  rmdir(errfile);
  free(prev_bytes);
  return 0;
}

#define SWEEP(fn, in_, named_, previous_)                                      \
  static void fn(void **state) {                                               \
    (void)state;                                                               \
    sweep(&(scenario){in_, named_, previous_});                                \
  }

SWEEP(manifest_tmpfile, IN_MANIFEST, false, false)
SWEEP(manifest_tmpfile_over_previous, IN_MANIFEST, false, true)
SWEEP(manifest_named, IN_MANIFEST, true, false)
SWEEP(manifest_named_over_previous, IN_MANIFEST, true, true)
SWEEP(jsonl_tmpfile, IN_JSONL, false, false)
SWEEP(jsonl_named_over_previous, IN_JSONL, true, true)
SWEEP(from_dir_tmpfile_over_previous, IN_FROM_DIR, false, true)
SWEEP(from_dir_named, IN_FROM_DIR, true, false)

/* A layer past 8 MiB makes the writer start the writeback before commit
 * (sync_file_range); its failure is a failed write: reported naming
 * out.region, nothing renamed into place, nothing left behind. Only those
 * calls fail: a full sweep of a 9 MiB build costs minutes. */
static void big_writeback(void **state) {
  (void)state;
  sweep_fn(&(scenario){IN_BIG, false, true}, FP_SYNC_FILE_RANGE);
  sweep_fn(&(scenario){IN_BIG, true, false}, FP_SYNC_FILE_RANGE);
}

/* An index written in several writes (IN_WIDE): every write of the build
 * fails in turn, those in the middle of the index included. The rules
 * above then also check that nothing is written after the failed one:
 * the index once went on being serialized past a failed write. */
SWEEP(wide_index_tmpfile, IN_WIDE, false, true)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(manifest_tmpfile),
      cmocka_unit_test(manifest_tmpfile_over_previous),
      cmocka_unit_test(manifest_named),
      cmocka_unit_test(manifest_named_over_previous),
      cmocka_unit_test(jsonl_tmpfile),
      cmocka_unit_test(jsonl_named_over_previous),
      cmocka_unit_test(from_dir_tmpfile_over_previous),
      cmocka_unit_test(from_dir_named),
      cmocka_unit_test(big_writeback),
      cmocka_unit_test(wide_index_tmpfile),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
