/* The writer without /proc (a chroot, a minimal container): an O_TMPFILE
 * is named at commit by linkat() with AT_EMPTY_PATH where that is allowed,
 * else through /proc/self/fd, and when neither can work the writer uses a
 * named temporary file from the start. Every commit must then succeed with
 * a complete, valid file.
 *
 * The tests run as root on recent kernels, where AT_EMPTY_PATH and /proc
 * both work; this file interposes linkat() and access() (the executable's
 * definitions take the calls of the statically linked library, as in
 * tests/common/failpoint.c) to make either fail as it does where it is
 * not available: ENOENT, which is what the kernel returns for
 * AT_EMPTY_PATH without the permission and what a path under an unmounted
 * /proc gives. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_model.h"

#include "format/format.h"

static atomic_bool no_empty_path, no_proc;
/* Successful links since the last reset, by the way they named the file. */
static atomic_int links_empty_path, links_proc;

static bool is_proc(const char *path) {
  return strncmp(path, "/proc/", 6) == 0;
}

__attribute__((visibility("default"))) int linkat(int olddirfd, const char *old,
                                                  int newdirfd, const char *new,
                                                  int flags) {
  if ((flags & AT_EMPTY_PATH) && atomic_load(&no_empty_path)) {
    errno = ENOENT;
    return -1;
  }
  if (is_proc(old) && atomic_load(&no_proc)) {
    errno = ENOENT;
    return -1;
  }
  __typeof__(&linkat) real = (__typeof__(&linkat))dlsym(RTLD_NEXT, "linkat");
  int rc = real(olddirfd, old, newdirfd, new, flags);
  if (rc == 0 && (flags & AT_EMPTY_PATH))
    atomic_fetch_add(&links_empty_path, 1);
  else if (rc == 0 && is_proc(old))
    atomic_fetch_add(&links_proc, 1);
  return rc;
}

__attribute__((visibility("default"))) int access(const char *path, int mode) {
  if (is_proc(path) && atomic_load(&no_proc)) {
    errno = ENOENT;
    return -1;
  }
  __typeof__(&access) real = (__typeof__(&access))dlsym(RTLD_NEXT, "access");
  return real(path, mode);
}

/* The cleanup race: a store opened in the directory between the moment the
 * writer creates its named temporary file and the moment it locks it finds
 * an empty, unlocked file (what a dead writer leaves) and removes it. When
 * armed, the first flock() on a temporary file runs such an open first. */
static atomic_bool cleanup_armed;
static char cleanup_dir[4096];

__attribute__((visibility("default"))) int flock(int fd, int op) {
  char link[64], target[1024];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n > 0 && (op & LOCK_EX)) {
    target[n] = 0;
    if (strstr(target, ".strata-tmp-") != NULL &&
        atomic_exchange(&cleanup_armed, false)) {
      strata_store_config c;
      strata_store_config_init(&c);
      c.log_level = STRATA_LOG_OFF;
      strata_store *s = NULL;
      if (strata_store_open(cleanup_dir, &c, &s) == 0)
        strata_store_close(s);
    }
  }
  __typeof__(&flock) real = (__typeof__(&flock))dlsym(RTLD_NEXT, "flock");
  return real(fd, op);
}

static void set_env(bool empty_path_ok, bool proc_ok) {
  atomic_store(&no_empty_path, !empty_path_ok);
  atomic_store(&no_proc, !proc_ok);
  atomic_store(&links_empty_path, 0);
  atomic_store(&links_proc, 0);
}

static int teardown(void **state) {
  (void)state;
  set_env(true, true);
  return 0;
}

/* Files in `dir` whose name begins with "." and holds the temporary mark. */
static int temp_files(const char *dir, char *first, size_t cap) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] == '.' && strstr(de->d_name, ".strata-tmp-") != NULL) {
      if (n++ == 0 && first != NULL)
        snprintf(first, cap, "%s", de->d_name);
    }
  closedir(d);
  return n;
}

/* Writes r.region with 3 layers, checks what the directory holds before
 * the commit (a named temporary file beginning with the magic, or
 * nothing), commits, and checks the file: it opens, verifies, and holds
 * the layers. */
static void write_and_check(const char *dir, bool expect_named) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 9;
  o.name = "r";
  strata_writer *w = NULL;
  char path[512];
  snprintf(path, sizeof path, "%s", test_path(dir, "r.region"));
  assert_strata_ok(strata_writer_open(path, &o, &w));
  uint8_t data[3][5000];
  for (int i = 0; i < 3; i++) {
    test_fill_seeded(data[i], sizeof data[i], (uint64_t)i);
    assert_strata_ok(strata_writer_add(w, (uint64_t)i, NULL, 0, NULL, data[i],
                                       sizeof data[i]));
  }
  char tmp[256] = "";
  assert_int_equal(temp_files(dir, tmp, sizeof tmp), expect_named ? 1 : 0);
  if (expect_named) {
    size_t len = 0;
    uint8_t *head = test_read_file(test_path(dir, tmp), &len);
    assert_true(len >= STRATA__MAGIC_LEN);
    assert_memory_equal(head, STRATA__MAGIC, STRATA__MAGIC_LEN);
    free(head);
    assert_string_equal(strrchr(strata_writer_temp_path(w), '/') + 1, tmp);
  }
  assert_strata_ok(strata_writer_commit(w));
  assert_int_equal(temp_files(dir, NULL, 0), 0);
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, 0, &r));
  uint64_t bad = 0;
  assert_strata_ok(strata_region_verify(r, &bad));
  assert_int_equal(strata_region_layer_count(r), 3);
  for (int i = 0; i < 3; i++) {
    strata_layer l;
    assert_strata_ok(strata_region_get(r, (uint64_t)i, &l));
    assert_int_equal(l.size, sizeof data[i]);
    assert_memory_equal(l.data, data[i], l.size);
  }
  strata_region_close(r);
}

/* As the system is: the O_TMPFILE, named by whichever link works. */
static void test_commit_default(void **state) {
  (void)state;
  set_env(true, true);
  write_and_check(test_tmpdir(), false);
  assert_int_equal(links_empty_path + links_proc, 1);
}

/* Does this kernel let this process link its own O_TMPFILE with
 * AT_EMPTY_PATH (CAP_DAC_READ_SEARCH, or Linux 6.10 and later)? */
static bool empty_path_allowed(const char *dir) {
  int fd = open(dir, O_TMPFILE | O_RDWR, 0600);
  assert_true(fd >= 0);
  bool ok =
      linkat(fd, "", AT_FDCWD, test_path(dir, "probe"), AT_EMPTY_PATH) == 0;
  close(fd);
  if (ok)
    unlink(test_path(dir, "probe"));
  return ok;
}

/* No /proc, AT_EMPTY_PATH allowed: the O_TMPFILE, linked without /proc. */
static void test_commit_no_proc(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  if (!empty_path_allowed(dir))
    skip(); /* then this is test_commit_neither's case */
  set_env(true, false);
  write_and_check(dir, false);
  assert_int_equal(links_empty_path, 1);
  assert_int_equal(links_proc, 0);
}

/* AT_EMPTY_PATH not allowed (no CAP_DAC_READ_SEARCH on an older kernel):
 * the O_TMPFILE, linked through /proc. */
static void test_commit_no_empty_path(void **state) {
  (void)state;
  set_env(false, true);
  write_and_check(test_tmpdir(), false);
  assert_int_equal(links_empty_path, 0);
  assert_int_equal(links_proc, 1);
}

/* Neither: a named temporary file from the start, renamed into place. */
static void test_commit_neither(void **state) {
  (void)state;
  set_env(false, false);
  write_and_check(test_tmpdir(), true);
  assert_int_equal(links_empty_path + links_proc, 0);
}

/* Crystallization without either link: the store gets the region. */
static void test_crystallize_neither(void **state) {
  (void)state;
  set_env(false, false);
  const char *dir = test_tmpdir();
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 4, "four", 4, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, "one", 3, NULL, "payload", 7));
  assert_strata_ok(strata_crystallize(s, 4));
  strata_store_close(s);
  assert_int_equal(temp_files(dir, NULL, 0), 0);
  c.flags = STRATA_STORE_READ_ONLY;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_ok(strata_get(&t, 4, 1, &l));
  assert_int_equal(l.size, 7);
  assert_memory_equal(l.data, "payload", 7);
  strata_read_end(&t);
  strata_store_close(s);
}

/* A store's cleanup that runs between the creation of the writer's named
 * temporary file and its lock removes the file (empty and unlocked, as a
 * dead writer's would be): the writer must notice and start again under
 * another name, not write the region into an unlinked file and fail at
 * the rename. */
static void test_cleanup_before_lock(void **state) {
  (void)state;
  set_env(false, false);
  const char *dir = test_tmpdir();
  snprintf(cleanup_dir, sizeof cleanup_dir, "%s", dir);
  atomic_store(&cleanup_armed, true);
  write_and_check(dir, true);
  assert_false(atomic_load(&cleanup_armed)); /* the cleanup did run */
}

/* A writer killed with its named temporary file half written leaves it;
 * the next writable open of the store removes it, with a WARN line. */
static void test_killed_writer_leftover_removed(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    set_env(false, false);
    strata_writer_options o;
    strata_writer_options_init(&o);
    o.name = "k";
    strata_writer *w = NULL;
    if (strata_writer_open(test_path(dir, "k.region"), &o, &w) != 0 ||
        strata_writer_add(w, 1, NULL, 0, NULL, "half", 4) != 0)
      _exit(2);
    kill(getpid(), SIGKILL);
    _exit(3);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  char tmp[256] = "";
  assert_int_equal(temp_files(dir, tmp, sizeof tmp), 1);
  log_capture cap;
  pthread_mutex_init(&cap.mu, NULL);
  capture_clear(&cap);
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_fn = capture_log;
  c.log_ctx = &cap;
  c.log_level = STRATA_LOG_INFO;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_store_close(s);
  assert_int_equal(temp_files(dir, NULL, 0), 0);
  char want[8192];
  snprintf(want, sizeof want,
           "WARN store: msg=\"removed a temporary file of an interrupted "
           "write\" dir=%s file=%s",
           dir, tmp);
  if (strstr(cap.text, want) == NULL)
    fail_msg("no \"%s\" in:\n%s", want, cap.text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_commit_default, teardown),
      cmocka_unit_test_teardown(test_commit_no_proc, teardown),
      cmocka_unit_test_teardown(test_commit_no_empty_path, teardown),
      cmocka_unit_test_teardown(test_commit_neither, teardown),
      cmocka_unit_test_teardown(test_crystallize_neither, teardown),
      cmocka_unit_test_teardown(test_cleanup_before_lock, teardown),
      cmocka_unit_test_teardown(test_killed_writer_leftover_removed, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
