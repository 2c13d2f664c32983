/* What is in a store's directory but is not what its name says: FIFOs,
 * directories and devices named like regions or like the writer's
 * temporary files (never opened in a way that blocks; skipped with a
 * warning), dot-files that look like temporary files but are not ours
 * (never removed), and region names too long for the temporary file that
 * crystallization writes (refused when the proto is created). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_model.h"

#include "format/format.h"

/* A blocking open() would hang the test forever: the alarm turns that into
 * a failure. Its length is only a bound on "forever", not a measurement:
 * every call it covers returns at once when it works. */
static void on_alarm(int sig) {
  (void)sig;
  static const char m[] = "test_special_files: an open blocked on a special "
                          "file (alarm)\n";
  (void)!write(2, m, sizeof m - 1);
  _exit(1);
}

static void watchdog_start(void) {
  signal(SIGALRM, on_alarm);
  alarm(120);
}

static void watchdog_stop(void) {
  alarm(0);
}

static strata_store *open_store(const char *dir, log_capture *cap,
                                unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  pthread_mutex_init(&cap->mu, NULL);
  capture_clear(cap);
  c.log_fn = capture_log;
  c.log_ctx = cap;
  c.log_level = STRATA_LOG_INFO;
  c.flags = flags;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

/* Writes a region file with one layer (id 1, content `name`). */
static void write_region(const char *dir, const char *file, uint64_t rid,
                         const char *name) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = rid;
  o.name = name;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, file), &o, &w));
  assert_strata_ok(strata_writer_add(w, 1, NULL, 0, NULL, name, strlen(name)));
  assert_strata_ok(strata_writer_commit(w));
}

static uint64_t region_count(strata_store *s) {
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  return st.regions;
}

/* The log line that contains every one of the (up to three) needles, which
 * must exist and be a WARN line. */
static void expect_warn(const log_capture *cap, const char *a, const char *b,
                        const char *c) {
  for (const char *p = cap->text; *p != '\0';) {
    const char *end = strchr(p, '\n');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char line[4096];
    snprintf(line, sizeof line, "%.*s", (int)len, p);
    if (strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c))) {
      if (strstr(line, " WARN ") == NULL)
        fail_msg("not a WARN line: %s", line);
      return;
    }
    p += len + (end != NULL);
  }
  fail_msg("no log line with \"%s\" \"%s\" \"%s\" in:\n%s", a, b ? b : "",
           c ? c : "", cap->text);
}

static bool exists(const char *dir, const char *name) {
  struct stat st;
  return lstat(test_path(dir, name), &st) == 0;
}

/* ---- special files --------------------------------------------------------
 */

/* Watches `path` for being opened (inotify IN_OPEN): special files must be
 * refused by their type, never opened to learn it (a device's open may
 * act). */
static int watch_opens(const char *path) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  assert_true(fd >= 0);
  assert_true(inotify_add_watch(fd, path, IN_OPEN) >= 0);
  return fd;
}

/* Whether the watched file was opened since watch_opens(); closes `fd`. */
static bool was_opened(int fd) {
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t k = read(fd, buf, sizeof buf);
  assert_true(k > 0 || errno == EAGAIN);
  close(fd);
  return k > 0;
}

/* FIFOs (named like a region, and like a temporary file), a directory and a
 * device node named like regions: open, refresh and reads return and serve
 * the real regions; each special file is named in a WARN line and left in
 * place. */
static void test_store_skips_special_files(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "alpha");
  assert_int_equal(mkfifo(test_path(dir, "fifo.region"), 0644), 0);
  assert_int_equal(
      mkfifo(test_path(dir, ".fifo.region.strata-tmp-0123abcd"), 0644), 0);
  assert_int_equal(mkdir(test_path(dir, "dir.region"), 0755), 0);
  assert_int_equal(symlink("/dev/null", test_path(dir, "null.region")), 0);
  int tmp_watch =
      watch_opens(test_path(dir, ".fifo.region.strata-tmp-0123abcd"));
  log_capture cap;
  watchdog_start();
  strata_store *s = open_store(dir, &cap, 0);
  assert_false(was_opened(tmp_watch));
  test_expect_layer(s, 1, 1, "alpha");
  assert_int_equal(region_count(s), 1);
  expect_warn(&cap, "not a regular file", "file=fifo.region",
              "type=\"a FIFO\"");
  expect_warn(&cap, "not a regular file", "file=dir.region",
              "type=\"a directory\"");
  expect_warn(&cap, "not a regular file", "file=null.region",
              "type=\"a character device\"");
  expect_warn(&cap, "temporary file left alone: not a regular file",
              "file=.fifo.region.strata-tmp-0123abcd", NULL);
  /* Refresh reads the directory again and still skips them. */
  write_region(dir, "b.region", 2, "beta");
  capture_clear(&cap);
  assert_strata_ok(strata_store_refresh(s));
  test_expect_layer(s, 1, 1, "alpha");
  test_expect_layer(s, 2, 1, "beta");
  assert_int_equal(region_count(s), 2);
  expect_warn(&cap, "not a regular file", "file=fifo.region", NULL);
  /* Taking the writer lock refreshes too. */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 3, "gamma", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "gamma", 5));
  assert_strata_ok(strata_crystallize(s, 3));
  test_expect_layer(s, 3, 1, "gamma");
  strata_store_close(s);
  /* A read-only store lists the directory the same way. */
  s = open_store(dir, &cap, STRATA_STORE_READ_ONLY);
  assert_int_equal(region_count(s), 3);
  strata_store_close(s);
  watchdog_stop();
  assert_true(exists(dir, "fifo.region"));
  assert_true(exists(dir, ".fifo.region.strata-tmp-0123abcd"));
  assert_true(exists(dir, "dir.region"));
}

static void expect_not_regular(const char *path, const char *type) {
  strata_region *r = NULL;
  watchdog_start();
  assert_int_equal(strata_region_open(path, 0, &r), STRATA_E_INVAL);
  watchdog_stop();
  assert_null(r);
  char want[512];
  snprintf(want, sizeof want, "%s: not a regular file (it is %s)", path, type);
  if (strstr(strata_last_error_detail(), want) == NULL)
    fail_msg("detail \"%s\" lacks \"%s\"", strata_last_error_detail(), want);
}

/* strata_region_open() refuses what is not a regular file, without
 * blocking on a FIFO (which has no writer here), and names the type. */
static void test_region_open_special(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char fifo[512], link[512];
  snprintf(fifo, sizeof fifo, "%s", test_path(dir, "f.region"));
  snprintf(link, sizeof link, "%s", test_path(dir, "l.region"));
  assert_int_equal(mkfifo(fifo, 0644), 0);
  assert_int_equal(symlink(fifo, link), 0);
  expect_not_regular(fifo, "a FIFO");
  expect_not_regular(link, "a FIFO"); /* followed, as for a regular file */
  expect_not_regular(dir, "a directory");
  expect_not_regular("/dev/null", "a character device");
}

/* ---- temporary files: only ours are removed ------------------------------ */

static void write_file(const char *dir, const char *name, const void *p,
                       size_t n) {
  test_write_file(test_path(dir, name), p, n);
}

/* A writable open removes a leftover temporary file only when its name has
 * our mark (".strata-tmp-" and 8 hex digits) and it is empty or begins with
 * the region magic (what our writer leaves); everything else stays. */
static void test_temp_files_only_ours(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "alpha");
  /* Not ours: another program's name pattern, ours without the header. */
  write_file(dir, ".x.region.tmp-0123abcd", "partial", 7);
  write_file(dir, ".z.region.strata-tmp-89abcdef", "someone's data", 14);
  assert_int_equal(symlink(test_path(dir, "a.region"),
                           test_path(dir, ".l.region.strata-tmp-0badcafe")),
                   0);
  /* Ours: begins with the magic; empty (died before its first write). */
  char ours[64];
  memcpy(ours, STRATA__MAGIC, STRATA__MAGIC_LEN);
  memset(ours + STRATA__MAGIC_LEN, 0, sizeof ours - STRATA__MAGIC_LEN);
  write_file(dir, ".y.region.strata-tmp-0123abcd", ours, sizeof ours);
  write_file(dir, ".e.region.strata-tmp-00000000", "", 0);
  log_capture cap;
  /* A read-only open cleans nothing. */
  strata_store *s = open_store(dir, &cap, STRATA_STORE_READ_ONLY);
  strata_store_close(s);
  assert_true(exists(dir, ".y.region.strata-tmp-0123abcd"));
  s = open_store(dir, &cap, 0);
  test_expect_layer(s, 1, 1, "alpha");
  strata_store_close(s);
  assert_true(exists(dir, ".x.region.tmp-0123abcd"));
  assert_true(exists(dir, ".z.region.strata-tmp-89abcdef"));
  assert_true(exists(dir, ".l.region.strata-tmp-0badcafe"));
  assert_true(exists(dir, "a.region"));
  assert_false(exists(dir, ".y.region.strata-tmp-0123abcd"));
  assert_false(exists(dir, ".e.region.strata-tmp-00000000"));
  expect_warn(&cap, "removed a temporary file of an interrupted write",
              "file=.y.region.strata-tmp-0123abcd", NULL);
  expect_warn(&cap, "removed a temporary file of an interrupted write",
              "file=.e.region.strata-tmp-00000000", NULL);
  expect_warn(&cap, "does not begin with the region magic",
              "file=.z.region.strata-tmp-89abcdef", NULL);
  expect_warn(&cap, "left alone: a symbolic link",
              "file=.l.region.strata-tmp-0badcafe", NULL);
  assert_null(strstr(cap.text, ".x.region.tmp-0123abcd"));
}

/* ---- region names and the temporary file's name -------------------------- */

#define NAME_LIMIT 227 /* 255 - strlen(".region") - 21 (the temporary name) */

static char *long_name(size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, 'n', n);
  s[n] = '\0';
  return s;
}

/* The longest accepted name crystallizes (its temporary file fits in 255
 * bytes); one byte more is refused at create, naming the region and the
 * limit, with nothing changed. */
static void test_region_name_limit(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  log_capture cap;
  strata_store *s = open_store(dir, &cap, 0);
  char *ok = long_name(NAME_LIMIT), *over = long_name(NAME_LIMIT + 1);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, ok, strlen(ok), NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "alpha", 5));
  assert_strata_ok(strata_crystallize(s, 1));
  char file[300];
  snprintf(file, sizeof file, "%s.region", ok);
  assert_true(exists(dir, file));
  p = NULL;
  assert_int_equal(strata_proto_create(s, 2, over, strlen(over), NULL, &p),
                   STRATA_E_LIMIT);
  assert_null(p);
  const char *d = strata_last_error_detail();
  assert_non_null(strstr(d, over));
  assert_non_null(strstr(d, "is 228 bytes, at most 227"));
  assert_non_null(strstr(d, "255-byte file name"));
  assert_int_equal(region_count(s), 1);
  strata_store_close(s);
  s = open_store(dir, &cap, STRATA_STORE_READ_ONLY);
  test_expect_layer(s, 1, 1, "alpha");
  strata_store_close(s);
  free(ok);
  free(over);
}

/* A region file another program named with 235..255 bytes is served, but a
 * proto on it is refused up front: its crystallization could not name its
 * temporary file. */
static void test_proto_open_long_file_name(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "short.region", 7, "seven");
  char *base = long_name(255 - 21 + 1 - 7); /* file name: 235 bytes */
  char file[300];
  snprintf(file, sizeof file, "%s.region", base);
  assert_int_equal(strlen(file), 235);
  char from[512];
  snprintf(from, sizeof from, "%s", test_path(dir, "short.region"));
  assert_int_equal(rename(from, test_path(dir, file)), 0);
  log_capture cap;
  strata_store *s = open_store(dir, &cap, 0);
  test_expect_layer(s, 7, 1, "seven");
  strata_proto *p = NULL;
  assert_int_equal(strata_proto_open(s, 7, &p), STRATA_E_LIMIT);
  assert_null(p);
  assert_non_null(strstr(strata_last_error_detail(),
                         "region 7 (\"seven\"): its file name is 235 bytes, "
                         "at most 234"));
  test_expect_layer(s, 7, 1, "seven");
  strata_store_close(s);
  free(base);
}

/* A FIFO named .strata.lock: every writer refuses it at once, naming it
 * and its type, instead of blocking on it (the pid lookup of a locked
 * store opened it read-only, which waits for a writer of the FIFO). */
static void test_lock_file_fifo(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "one");
  assert_int_equal(mkfifo(test_path(dir, ".strata.lock"), 0644), 0);
  int lock_watch = watch_opens(test_path(dir, ".strata.lock"));
  watchdog_start();
  log_capture cap;
  strata_store *s = open_store(dir, &cap, 0);
  test_expect_layer(s, 1, 1, "one");
  strata_proto *p = NULL;
  assert_int_equal(strata_proto_create(s, 2, "two", 3, NULL, &p),
                   STRATA_E_INVAL);
  assert_null(p);
  assert_non_null(strstr(strata_last_error_detail(),
                         "/.strata.lock: a FIFO, not a regular file"));
  assert_non_null(strstr(strata_last_error_detail(), dir));
  /* A region writer asked to take the store's lock refuses it likewise. */
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 3;
  o.name = "three";
  o.flags |= STRATA_WRITER_LOCK_STORE;
  strata_writer *w = NULL;
  assert_int_equal(strata_writer_open(test_path(dir, "c.region"), &o, &w),
                   STRATA_E_INVAL);
  assert_null(w);
  watchdog_stop();
  assert_false(was_opened(lock_watch)); /* refused by its type alone */
  struct stat st;
  assert_int_equal(lstat(test_path(dir, ".strata.lock"), &st), 0);
  assert_true(S_ISFIFO(st.st_mode));
  test_expect_layer(s, 1, 1, "one");
  strata_store_close(s);
}

/* A region file in the store may be a symlink to a regular file elsewhere:
 * the scan follows it and serves the target, a delta goes beside it, and
 * a compaction replaces the link itself by a regular file in the store's
 * directory (rename()
 * acts on the name, not on what it points to): the target is never
 * written. docs/ARCHITECTURE.md states this for other writers. */
static void test_symlinked_region_file(void **state) {
  (void)state;
  char elsewhere[4096];
  snprintf(elsewhere, sizeof elsewhere, "%s", test_tmpdir());
  const char *dir = test_tmpdir();
  write_region(elsewhere, "t.region", 7, "t");
  char target[4200];
  snprintf(target, sizeof target, "%s/t.region", elsewhere);
  assert_int_equal(symlink(target, test_path(dir, "t.region")), 0);

  log_capture cap;
  strata_store *s = open_store(dir, &cap, 0);
  assert_int_equal(region_count(s), 1);
  test_expect_layer(s, 7, 1, "t"); /* served through the link */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 7, &p));
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, NULL, "two", 3));
  int rc = strata_crystallize(s, 7);
  if (rc != 0)
    fail_msg("crystallize over a symlink: %s", strata_last_error_detail());
  /* A small change is a delta beside the link; crystallizing again without
   * changes compacts, which replaces the link by a new base. */
  struct stat st;
  assert_int_equal(lstat(test_path(dir, "t.region"), &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(lstat(test_path(dir, "t.1.delta"), &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_strata_ok(strata_crystallize(s, 7));
  test_expect_layer(s, 7, 2, "two");
  assert_int_equal(lstat(test_path(dir, "t.1.delta"), &st), -1);
  assert_int_equal(lstat(test_path(dir, "t.region"), &st), 0);
  assert_true(S_ISREG(st.st_mode)); /* the link was replaced */
  strata_region *r = NULL;          /* the target is as it was: one layer */
  assert_strata_ok(strata_region_open(target, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.layer_count, 1);
  strata_region_close(r);
  strata_store_close(s);

  s = open_store(dir, &cap, STRATA_STORE_READ_ONLY);
  test_expect_layer(s, 7, 1, "t");
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_ok(strata_get(&t, 7, 2, &l));
  assert_int_equal(l.size, 3);
  strata_read_end(&t);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_skips_special_files),
      cmocka_unit_test(test_region_open_special),
      cmocka_unit_test(test_temp_files_only_ours),
      cmocka_unit_test(test_region_name_limit),
      cmocka_unit_test(test_proto_open_long_file_name),
      cmocka_unit_test(test_lock_file_fifo),
      cmocka_unit_test(test_symlinked_region_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
