/* strata_store_open() with STRATA_STORE_CREATE: the directory is created
 * (last component only, 0755 less the umask) or opened as it is; a path
 * that is something else, or whose parent is missing, is an error naming
 * it; an open that fails after creating the directory removes it again. */
#include <sys/stat.h>

#include "test_util.h"

static int open_create(const char *dir, strata_store **s) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.flags = STRATA_STORE_CREATE;
  return strata_store_open(dir, &c, s);
}

static void test_create_then_use(void **state) {
  (void)state;
  const char *dir = test_path(test_tmpdir(), "new-store");
  struct stat st;
  assert_int_equal(stat(dir, &st), -1);
  /* Without the flag the directory must exist. */
  strata_store *s = NULL;
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_NOENT);
  assert_int_equal(stat(dir, &st), -1);

  mode_t um = umask(027);
  int rc = open_create(dir, &s);
  umask(um);
  assert_strata_ok(rc);
  assert_int_equal(stat(dir, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0750); /* 0755 less the umask 027 */
  strata_proto *p;
  assert_strata_ok(strata_proto_create(s, 1, "first", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "one", 3));
  assert_strata_ok(strata_crystallize(s, 1));
  strata_store_close(s);

  /* An existing directory is opened as it is, with or without the flag. */
  assert_strata_ok(open_create(dir, &s));
  test_expect_layer(s, 1, 1, "one");
  strata_store_close(s);
  s = test_open_store_quiet(dir);
  test_expect_layer(s, 1, 1, "one");
  strata_store_close(s);
}

static void test_create_refusals(void **state) {
  (void)state;
  const char *tmp = test_tmpdir();
  char file[4096], missing[4200];
  snprintf(file, sizeof file, "%s", test_path(tmp, "plain"));
  test_write_file(file, "x", 1);
  strata_store *s = NULL;
  assert_strata_err(open_create(file, &s), -ENOTDIR);
  assert_non_null(strstr(strata_last_error_detail(), file));
  assert_non_null(strstr(strata_last_error_detail(), "a regular file"));
  assert_null(s);
  struct stat st;
  assert_int_equal(stat(file, &st), 0); /* untouched */
  assert_true(S_ISREG(st.st_mode));

  snprintf(missing, sizeof missing, "%s/no-parent/store", tmp);
  assert_strata_err(open_create(missing, &s), STRATA_E_NOENT);
  assert_non_null(strstr(strata_last_error_detail(), missing));
  assert_non_null(strstr(strata_last_error_detail(), "parent"));
  assert_int_equal(stat(test_path(tmp, "no-parent"), &st), -1);
}

/* The staging pool's configuration is checked after the store opened (and
 * took its cleanup lock, creating the lock file): the open fails there, and
 * the directory it created is gone. */
static void test_failed_open_removes_created_dir(void **state) {
  (void)state;
  const char *dir = test_path(test_tmpdir(), "short-lived");
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.flags = STRATA_STORE_CREATE;
  c.staging.bytes = 64u << 20;
  c.staging.streams = 65;
  strata_store *s = NULL;
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "streams"));
  struct stat st;
  assert_int_equal(stat(dir, &st), -1);
  /* A directory that was there before stays, whatever fails. */
  assert_int_equal(mkdir(dir, 0755), 0);
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_int_equal(stat(dir, &st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_then_use),
      cmocka_unit_test(test_create_refusals),
      cmocka_unit_test(test_failed_open_removes_created_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
