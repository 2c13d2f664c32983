/* strata__store_claim() (store_lock.c): a store claimed by one owner in its
 * process (the remote follower) holds the writer lock until it is closed,
 * turns its own write calls away with "DIR: WHY; it is read-only", and
 * other processes' claims and writes get STRATA_E_LOCKED naming the pid.
 * After close the lock is free. */
#include <errno.h>
#include <sys/wait.h>

#include "test_util.h"

#include "store/store_internal.h"

static void write_region(const char *dir, const char *file, uint64_t id,
                         const char *name) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = name;
  o.region_id = id;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, file), &o, &w));
  assert_strata_ok(strata_writer_add(w, 1, NULL, 0, NULL, "one", 3));
  assert_strata_ok(strata_writer_commit(w));
}

static void assert_read_only(const char *dir, const char *why) {
  char want[4200];
  snprintf(want, sizeof want, "%s: %s; it is read-only", dir, why);
  assert_string_equal(strata_last_error_detail(), want);
}

static void test_claim_refuses_writes(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "a");
  strata_store *s = test_open_store_quiet(dir);
  const char *why = "follows strata/models";
  assert_strata_ok(strata__store_claim(s, why));

  strata_proto *p = NULL;
  assert_strata_err(strata_proto_open(s, 1, &p), STRATA_E_STATE);
  assert_read_only(dir, why);
  assert_strata_err(strata_proto_create(s, 2, "b", 1, NULL, &p),
                    STRATA_E_STATE);
  assert_read_only(dir, why);
  assert_strata_err(strata_crystallize(s, 1), STRATA_E_STATE);
  assert_read_only(dir, why);
  assert_null(p);

  /* A second claim is refused, naming the first. */
  assert_strata_err(strata__store_claim(s, "another"), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), why));

  /* Reads go on, and the owner's own path (the swap) works. */
  test_expect_layer(s, 1, 1, "one");
  write_region(dir, "b.region", 2, "b");
  const char *ab[] = {"a.region", "b.region"};
  assert_strata_ok(strata__store_swap_files(s, ab, 2));
  test_expect_layer(s, 2, 1, "one");

  /* strata_store_refresh() leaves a claimed store's catalog to its owner:
   * a file that appears in the directory is not served until the owner
   * swaps it in (a scan during a remote follower's version change would
   * serve a mixture of two versions). */
  write_region(dir, "c.region", 3, "c");
  assert_strata_ok(strata_store_refresh(s));
  strata_txn t;
  strata_layer l;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_get(&t, 3, 1, &l), STRATA_E_NO_REGION);
  strata_read_end(&t);
  const char *abc[] = {"a.region", "b.region", "c.region"};
  assert_strata_ok(strata__store_swap_files(s, abc, 3));
  test_expect_layer(s, 3, 1, "one");

  /* Another handle in this process is another writer: locked out. */
  strata_store *other = test_open_store_quiet(dir);
  assert_strata_err(strata_proto_open(other, 1, &p), STRATA_E_LOCKED);
  strata_store_close(other);
  strata_store_close(s);
}

/* In a forked child: what another process meets while the parent holds
 * the claim. Returns the number of the first check that failed, 0 if none
 * (the child cannot use cmocka's assertions). */
static int child_checks(const char *dir, pid_t parent) {
  char pid[64];
  snprintf(pid, sizeof pid, "locked by pid %ld", (long)parent);
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  strata_store *s = NULL;
  if (strata_store_open(dir, &c, &s) != 0)
    return 1;
  int bad = 0;
  if (strata__store_claim(s, "a second follower") != STRATA_E_LOCKED ||
      strstr(strata_last_error_detail(), pid) == NULL)
    bad = 2;
  strata_proto *p = NULL;
  if (bad == 0 &&
      (strata_proto_create(s, 9, "nine", 4, NULL, &p) != STRATA_E_LOCKED ||
       strstr(strata_last_error_detail(), pid) == NULL))
    bad = 3;
  /* A region writer that respects the store's lock. */
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = "nine";
  o.region_id = 9;
  o.flags = STRATA_WRITER_LOCK_STORE;
  strata_writer *w = NULL;
  char path[4200];
  snprintf(path, sizeof path, "%s/nine.region", dir);
  if (bad == 0 && strata_writer_open(path, &o, &w) != STRATA_E_LOCKED)
    bad = 4;
  strata_writer_abort(w);
  if (bad != 0)
    fprintf(stderr, "child check %d: %s\n", bad, strata_last_error_detail());
  strata_store_close(s);
  return bad;
}

static void test_other_process_locked_out(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "a");
  /* No thread of the parent's store may run at the fork: the child gets a
   * copy of every lock as it was then, and one held by another thread
   * (the shared view's publisher in malloc, under ASan the allocator's)
   * is held in the child for ever. The child's store threads then hung
   * in ASan's allocator (CI, 2026-12-07). So: no shared view (no
   * publisher thread), checksums at open (no verifier thread). */
  strata_store_config pc;
  strata_store_config_init(&pc);
  pc.log_level = STRATA_LOG_OFF;
  pc.shared_view = 0;
  pc.flags = STRATA_STORE_VERIFY_AT_OPEN;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &pc, &s));
  assert_strata_ok(strata__store_claim(s, "follows strata/models"));
  pid_t parent = getpid();
  fflush(NULL);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0)
    _exit(child_checks(dir, parent));
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  strata_store_close(s);

  /* After close the lock is free: a new handle claims, and a write call
   * of a third handle is the one turned away now. */
  strata_store *again = test_open_store_quiet(dir);
  assert_strata_ok(strata__store_claim(again, "follows strata/other"));
  strata_store_close(again);
  strata_store *writer = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(writer, 9, "nine", 4, NULL, &p));
  strata_store_close(writer);
}

static void test_claim_refused(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "a");
  strata_store *s = test_open_store_quiet(dir);
  /* With a proto open: refused, and nothing is held. */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 1, &p));
  assert_strata_err(strata__store_claim(s, "follows x/y"), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), "proto"));
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, NULL, "two", 3));
  assert_strata_ok(strata_proto_discard(p));
  /* Discarded: the claim works. */
  assert_strata_ok(strata__store_claim(s, "follows x/y"));
  assert_strata_err(strata__store_claim(s, ""), STRATA_E_INVAL);
  strata_store_close(s);

  /* A read-only store cannot be claimed. */
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.flags |= STRATA_STORE_READ_ONLY;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  assert_strata_err(strata__store_claim(s, "follows x/y"), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), "read-only"));
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claim_refuses_writes),
      cmocka_unit_test(test_other_process_locked_out),
      cmocka_unit_test(test_claim_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
