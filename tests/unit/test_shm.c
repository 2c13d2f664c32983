/* The shared view of a live store (STORE/.strata.shm, store_shm.c,
 * <strata/processes.h>): registration and its figures, the writer role,
 * hostile and truncated files (errors naming the file and offset; a store
 * still opens over them), dead slots after SIGKILL (skipped, cleared by
 * strata_processes_check, reused by the next store), the view switched
 * off, and a directory the view cannot be created in. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "failpoint.h"
#include "store_model.h"

#include "store/store_internal.h"

static strata_store *open_view(const char *dir, log_capture *cap,
                               unsigned shared_view) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.shared_view = shared_view;
  if (cap != NULL) {
    c.log_fn = capture_log;
    c.log_ctx = cap;
  }
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

static size_t read_list(const char *dir, strata_process **list) {
  size_t n = 99;
  assert_strata_ok(strata_processes_read(dir, sizeof **list, list, &n));
  return n;
}

static void test_register_and_close(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  chmod(dir, 0700);
  strata_process *l = NULL;
  assert_int_equal(read_list(dir, &l), 0); /* no file: nobody */
  assert_null(l);
  strata_store *s = open_view(dir, NULL, 1);
  struct stat st;
  assert_int_equal(lstat(test_path(dir, ".strata.shm"), &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600); /* directory not group-readable */
  assert_int_equal(st.st_size, STRATA__SHM_HEADER_SIZE +
                                   STRATA__SHM_SLOTS * STRATA__SHM_SLOT_SIZE);
  assert_int_equal(read_list(dir, &l), 1);
  assert_int_equal(l[0].pid, getpid());
  assert_int_equal(l[0].role, STRATA_PROCESS_READER);
  assert_int_equal(l[0].struct_size, sizeof l[0]);
  assert_int_equal(l[0].slot, 0);
  assert_true(l[0].opened_unix_ms > 0);
  strata_processes_free(l);
  /* A second store of the same process has a slot of its own. */
  strata_store *s2 = open_view(dir, NULL, 1);
  assert_int_equal(read_list(dir, &l), 2);
  assert_int_equal(l[1].slot, 1);
  strata_processes_free(l);
  strata_store_close(s2);
  strata_store_close(s);
  assert_int_equal(read_list(dir, &l), 0);
  free((void *)dir);
}

static void test_group_mode(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  chmod(dir, 0750);
  strata_store *s = open_view(dir, NULL, 1);
  struct stat st;
  assert_int_equal(lstat(test_path(dir, ".strata.shm"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640);
  strata_store_close(s);
  free((void *)dir);
}

/* Reads fold into the slot at publication: gets, misses, bytes, snapshots,
 * and an open snapshot with its begin time. */
static void test_figures(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  strata_store *s = open_view(dir, NULL, 1);
  strata_proto *p;
  assert_strata_ok(strata_proto_create(s, 7, "seven", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, "one", 3, NULL, "abcd", 4));
  assert_strata_ok(strata_crystallize(s, 7));
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_layer lay;
  for (int i = 0; i < 3; i++)
    assert_strata_ok(strata_get(&txn, 7, 1, &lay));
  assert_int_equal(strata_get(&txn, 7, 99, &lay), STRATA_E_NOT_FOUND);
  strata_read_end(&txn);
  assert_strata_ok(strata_read_begin(s, &txn)); /* stays open */
  assert_strata_ok(strata_processes_publish(s));
  strata_process *l = NULL;
  assert_int_equal(read_list(dir, &l), 1);
  assert_int_equal(l[0].role, STRATA_PROCESS_WRITER);
  assert_int_equal(l[0].gets, 4);
  assert_int_equal(l[0].misses, 1);
  assert_int_equal(l[0].bytes_served, 12);
  assert_int_equal(l[0].snapshots, 2);
  assert_int_equal(l[0].snapshots_open, 1);
  assert_true(l[0].oldest_snapshot_unix_ms > 0);
  assert_true(l[0].oldest_snapshot_unix_ms <= l[0].updated_unix_ms);
  assert_int_equal(l[0].crystallizations, 1);
  assert_true(l[0].crystallize_bytes >= 4);
  assert_int_equal(l[0].staging_bytes, 0); /* no pool */
  strata_processes_free(l);
  strata_read_end(&txn);
  strata_store_close(s);
  free((void *)dir);
}

/* A caller built against an older, smaller strata_process gets elements
 * of its size. */
static void test_struct_size(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  strata_store *s = open_view(dir, NULL, 1);
  strata_process *l = NULL;
  size_t n = 0;
  assert_int_equal(strata_processes_read(dir, 12, &l, &n), STRATA_E_INVAL);
  assert_int_equal(strata_processes_read(dir, sizeof *l + 8, &l, &n),
                   STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "struct_size"));
  assert_strata_ok(strata_processes_read(dir, 16, &l, &n));
  assert_int_equal(n, 1);
  assert_int_equal(l[0].struct_size, sizeof *l); /* the library's size */
  strata_processes_free(l);
  strata_store_close(s);
  free((void *)dir);
}

/* A directory that is missing or is not one is an error naming it, not a
 * store nobody has open (a mistyped STORE listed no one, successfully). */
static void test_not_a_dir(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  char *missing = strdup(test_path(dir, "nostore"));
  strata_process *l = NULL;
  size_t n = 99, cleared = 99;
  assert_int_equal(strata_processes_read(missing, sizeof *l, &l, &n), -ENOENT);
  assert_non_null(strstr(strata_last_error_detail(), missing));
  assert_null(l);
  assert_int_equal(n, 0);
  assert_int_equal(strata_processes_check(missing, &cleared), -ENOENT);
  assert_non_null(strstr(strata_last_error_detail(), missing));
  assert_int_equal(cleared, 0);
  char *file = strdup(test_path(dir, "file"));
  test_write_file(file, "x", 1);
  assert_int_equal(strata_processes_read(file, sizeof *l, &l, &n), -ENOTDIR);
  assert_non_null(strstr(strata_last_error_detail(), file));
  assert_int_equal(strata_processes_check(file, NULL), -ENOTDIR);
  /* An existing directory without the file is still "nobody". */
  assert_int_equal(read_list(dir, &l), 0);
  assert_strata_ok(strata_processes_check(dir, &cleared));
  assert_int_equal(cleared, 0);
  free(file);
  free(missing);
  free((void *)dir);
}

/* An owner in the middle of a publication (seq odd) for a long while: its
 * thread preempted between its pwrite() calls on a loaded machine, or
 * stopped. The reader keeps trying past its burst of sched_yield(), which
 * lasts about a millisecond when its CPU has nothing else to run, with
 * sleeps (store_shm.c, slot_read), and then leaves the slot out; once the
 * publication completes the slot is listed. The stalled owner is made by
 * hand, holding slot 1's lock as a store would, so that no publisher
 * thread finishes its publication behind the test's back. */
static void test_stalled_publication(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  strata_store *s = open_view(dir, NULL, 1);
  assert_int_equal(s->shm->index, 0);
  int fd = open(test_path(dir, ".strata.shm"), O_RDWR);
  assert_true(fd >= 0);
  off_t slot1 = STRATA__SHM_HEADER_SIZE + STRATA__SHM_SLOT_SIZE;
  struct flock fl = {.l_type = F_WRLCK,
                     .l_whence = SEEK_SET,
                     .l_start = slot1,
                     .l_len = STRATA__SHM_SLOT_SIZE};
  assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
  uint64_t pid = 4242, seq = 1;
  assert_int_equal(pwrite(fd, &pid, 8, slot1 + 8 * STRATA__SHM_PID), 8);
  assert_int_equal(pwrite(fd, &seq, 8, slot1 + 8 * STRATA__SHM_SEQ), 8);
  fp_watch(dir);
  fp_arm(0, FP_TRANSIENT, 0);
  strata_process *l = NULL;
  assert_int_equal(read_list(dir, &l), 1); /* slot 1 left out */
  fp_disarm();
  assert_int_equal(l[0].pid, getpid());
  strata_processes_free(l);
  size_t preads = 0;
  for (size_t i = 0; i < fp_count(); i++)
    preads += fp_call_at(i) != NULL && fp_call_at(i)->fn == FP_PREAD;
  /* 1000 yields, then 500 sleeps: each try reads seq once. (It gave up
   * after the yields, about a millisecond, before.) */
  if (preads < 1500)
    fail_msg("the reader gave up on the stalled slot after %zu reads", preads);
  seq = 2; /* the publication completes */
  assert_int_equal(pwrite(fd, &seq, 8, slot1 + 8 * STRATA__SHM_SEQ), 8);
  assert_int_equal(read_list(dir, &l), 2);
  assert_int_equal(l[1].slot, 1);
  assert_int_equal(l[1].pid, 4242);
  strata_processes_free(l);
  fp_watch(NULL);
  close(fd);
  strata_store_close(s);
  free((void *)dir);
}

/* ---- hostile files --------------------------------------------------------
 */

/* Writes `len` bytes of a header (and zeros to `size`) as .strata.shm,
 * expects strata_processes_read and _check to fail with BAD_SHM and a
 * detail containing `want`, then a store to open over it with a WARN and
 * leave it as it was. */
static void expect_hostile(const uint8_t *bytes, size_t len, size_t size,
                           const char *want) {
  const char *dir = strdup(test_tmpdir());
  uint8_t *buf = calloc(1, size ? size : 1);
  memcpy(buf, bytes, len);
  char *path = strdup(test_path(dir, ".strata.shm"));
  test_write_file(path, buf, size);
  strata_process *l = NULL;
  size_t n = 0;
  assert_int_equal(strata_processes_read(dir, sizeof *l, &l, &n),
                   STRATA_E_BAD_SHM);
  const char *d = strata_last_error_detail();
  assert_non_null(strstr(d, path));
  if (strstr(d, want) == NULL)
    fail_msg("detail '%s' lacks '%s'", d, want);
  assert_int_equal(strata_processes_check(dir, NULL), STRATA_E_BAD_SHM);
  log_capture cap = {.mu = PTHREAD_MUTEX_INITIALIZER};
  strata_store *s = open_view(dir, &cap, 1);
  assert_non_null(strstr(cap.text, "no shared view"));
  assert_non_null(strstr(cap.text, want));
  strata_store_close(s);
  size_t got_len = 0;
  uint8_t *got = test_read_file(path, &got_len);
  assert_int_equal(got_len, size);
  assert_memory_equal(got, buf, size);
  free(got);
  free(buf);
  free(path);
  free((void *)dir);
}

static void header(uint8_t h[64], uint32_t version, uint32_t hsize,
                   uint32_t ssize, uint32_t count) {
  memset(h, 0, 64);
  memcpy(h, STRATA__SHM_MAGIC, 8);
  memcpy(h + 8, &version, 4);
  memcpy(h + 12, &hsize, 4);
  memcpy(h + 16, &ssize, 4);
  memcpy(h + 20, &count, 4);
}

static void test_hostile(void **state) {
  (void)state;
  uint8_t h[64];
  size_t full = 64 + 4 * 256;
  header(h, 1, 64, 256, 4);
  expect_hostile(h, 10, 10, "truncated at offset 10: the header needs 64");
  expect_hostile(h, 0, 0, "truncated at offset 0");
  expect_hostile((const uint8_t *)"NOTSHM!!", 8, full, "offset 0: bad magic");
  header(h, 2, 64, 256, 4);
  expect_hostile(h, 64, full, "offset 8: format version 2");
  header(h, 1, 128, 256, 4);
  expect_hostile(h, 64, full, "offset 12: header size 128");
  header(h, 1, 64, 64, 4);
  expect_hostile(h, 64, full, "offset 16: slot size 64");
  header(h, 1, 64, 256, 0);
  expect_hostile(h, 64, full, "offset 20: slot count 0");
  header(h, 1, 64, 256, 0xffffffffu);
  expect_hostile(h, 64, full, "offset 20: slot count 4294967295");
  header(h, 1, 64, 256, 4);
  expect_hostile(h, 64, full - 100,
                 "truncated at offset 988: its 4 slots "
                 "end at 1088");
  expect_hostile(h, 64, full + 3, "offset 1088: 3 bytes past the last slot");
}

static void test_special(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  char *path = strdup(test_path(dir, ".strata.shm"));
  char *target = strdup(test_path(dir, "elsewhere"));
  assert_int_equal(symlink(target, path), 0);
  strata_process *l = NULL;
  size_t n = 0;
  assert_int_equal(strata_processes_read(dir, sizeof *l, &l, &n),
                   STRATA_E_BAD_SHM);
  assert_non_null(strstr(strata_last_error_detail(), "a symbolic link"));
  log_capture cap = {.mu = PTHREAD_MUTEX_INITIALIZER};
  strata_store *s = open_view(dir, &cap, 1);
  assert_non_null(strstr(cap.text, "no shared view"));
  strata_store_close(s);
  assert_int_equal(access(target, F_OK), -1); /* nothing created through it */
  unlink(path);
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(strata_processes_read(dir, sizeof *l, &l, &n),
                   STRATA_E_BAD_SHM);
  assert_non_null(strstr(strata_last_error_detail(), "a FIFO"));
  unlink(path);
  free(target);
  free(path);
  free((void *)dir);
}

/* The file truncated under a live store, as any process that can write it
 * may do: neither the store (its publisher and close write its slot) nor a
 * reader may fault (with a shared mapping, both took SIGBUS); the reader
 * reports the file, and the store keeps serving. */
static void test_truncated_under_store(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  char *path = strdup(test_path(dir, ".strata.shm"));
  strata_store *s = open_view(dir, NULL, 1);
  assert_non_null(s->shm);
  assert_int_equal(truncate(path, 0), 0);
  assert_strata_ok(strata_processes_publish(s));
  strata_process *l = NULL;
  size_t n = 0;
  assert_int_equal(strata_processes_read(dir, sizeof *l, &l, &n),
                   STRATA_E_BAD_SHM);
  assert_non_null(strstr(strata_last_error_detail(), path));
  /* The publication wrote the slot back; the header is gone. */
  assert_non_null(strstr(strata_last_error_detail(), "offset 0: bad magic"));
  /* Truncated while a reader reads it: a child truncates and restores it
   * in a loop while this process reads; every read lists the store or
   * reports the file, and none faults. */
  size_t full = STRATA__SHM_HEADER_SIZE +
                (size_t)STRATA__SHM_SLOTS * STRATA__SHM_SLOT_SIZE;
  assert_int_equal(truncate(path, (off_t)full), 0);
  uint8_t h[STRATA__SHM_HEADER_SIZE];
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  strata__shm_header hd = {.version = STRATA__SHM_VERSION,
                           .header_size = STRATA__SHM_HEADER_SIZE,
                           .slot_size = STRATA__SHM_SLOT_SIZE,
                           .slot_count = STRATA__SHM_SLOTS};
  memcpy(hd.magic, STRATA__SHM_MAGIC, 8);
  memcpy(h, &hd, sizeof h);
  assert_int_equal(pwrite(fd, h, sizeof h, 0), (ssize_t)sizeof h);
  assert_strata_ok(strata_processes_publish(s));
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (;;) {
      (void)!ftruncate(fd, STRATA__SHM_HEADER_SIZE);
      (void)!ftruncate(fd, (off_t)full);
    }
  }
  size_t listed = 0, refused = 0;
  for (int i = 0; i < 2000; i++) {
    int rc = strata_processes_read(dir, sizeof *l, &l, &n);
    if (rc == 0)
      listed++;
    else
      assert_int_equal(rc, STRATA_E_BAD_SHM);
    refused += rc != 0;
    strata_processes_free(l);
    l = NULL;
    assert_strata_ok(strata_processes_publish(s));
  }
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  assert_int_equal(listed + refused, 2000);
  close(fd);
  /* The store serves on and closes cleanly. */
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_read_end(&txn);
  strata_store_close(s);
  free(path);
  free((void *)dir);
}

/* ---- creating the file ----------------------------------------------------
 */

#define RACERS 8

typedef struct racer {
  const char *dir;
  pthread_barrier_t *go;
  strata_store *s;
} racer;

static void *race_open(void *arg) {
  racer *r = arg;
  strata_store_config c;
  strata_store_config_init(&c);
  pthread_barrier_wait(r->go);
  if (strata_store_open(r->dir, &c, &r->s) != 0)
    r->s = NULL;
  return NULL;
}

/* Stores that open a directory without a .strata.shm at the same moment,
 * in one process: one creates the file, all register in it, each in a slot
 * of its own, and nothing is left but the file. (The temporary file was
 * named by the pid, so two threads removed and linked each other's, and a
 * half-written one could become .strata.shm for good.) With O_TMPFILE
 * and, `named`, with the named temporary file it falls back to. */
static void race_create(bool named) {
  for (int round = 0; round < 20; round++) {
    const char *dir = strdup(test_tmpdir());
    fp_watch(dir);
    fp_refuse_tmpfile(named);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    racer r[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
      r[i] = (racer){.dir = dir, .go = &go};
      assert_int_equal(pthread_create(&t[i], NULL, race_open, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
      pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    fp_refuse_tmpfile(false);
    bool taken[STRATA__SHM_SLOTS] = {false};
    for (int i = 0; i < RACERS; i++) {
      assert_non_null(r[i].s);
      if (r[i].s->shm == NULL)
        fail_msg("round %d, store %d: no slot", round, i);
      assert_false(taken[r[i].s->shm->index]);
      taken[r[i].s->shm->index] = true;
    }
    strata_process *l = NULL;
    assert_int_equal(read_list(dir, &l), RACERS);
    strata_processes_free(l);
    for (int i = 0; i < RACERS; i++)
      strata_store_close(r[i].s);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
      if (strncmp(de->d_name, ".strata.shm.", 12) == 0)
        fail_msg("left behind: %s", de->d_name);
    closedir(d);
    fp_watch(NULL);
    free((void *)dir);
  }
}

static void test_create_race(void **state) {
  (void)state;
  race_create(false);
  race_create(true);
}

/* ---- dead processes -------------------------------------------------------
 */

/* Forks a child that opens the store, reads, publishes, reports its slot
 * on the pipe and waits to be killed. */
static pid_t spawn_reader(const char *dir, uint32_t *slot) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Dies with the test, should an assertion end it first. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(fds[0]);
    strata_store *s = NULL;
    if (strata_store_open(dir, NULL, &s) != 0)
      _exit(1);
    strata_txn txn;
    strata_layer lay;
    strata_read_begin(s, &txn);
    (void)strata_get(&txn, 1, 1, &lay); /* counted at read_end */
    strata_read_end(&txn);
    strata_read_begin(s, &txn); /* held until killed */
    strata_processes_publish(s);
    uint32_t me = s->shm != NULL ? s->shm->index : UINT32_MAX;
    (void)!write(fds[1], &me, sizeof me);
    for (;;)
      pause();
  }
  close(fds[1]);
  assert_int_equal(read(fds[0], slot, sizeof *slot), (ssize_t)sizeof *slot);
  close(fds[0]);
  return pid;
}

static void kill_child(pid_t pid) {
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
}

static void test_dead_slot(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  uint32_t slot;
  pid_t child = spawn_reader(dir, &slot);
  assert_int_equal(slot, 0);
  strata_process *l = NULL;
  assert_int_equal(read_list(dir, &l), 1);
  assert_int_equal(l[0].pid, child);
  assert_int_equal(l[0].gets, 1);
  assert_int_equal(l[0].snapshots_open, 1);
  strata_processes_free(l);
  kill_child(child);
  /* Its snapshot blocks nothing and it is no longer listed. */
  assert_int_equal(read_list(dir, &l), 0);
  size_t cleared = 99;
  assert_strata_ok(strata_processes_check(dir, &cleared));
  assert_int_equal(cleared, 1);
  assert_strata_ok(strata_processes_check(dir, &cleared));
  assert_int_equal(cleared, 0);
  /* Killed again, without a check: the next store takes the slot over. */
  child = spawn_reader(dir, &slot);
  assert_int_equal(slot, 0);
  kill_child(child);
  strata_store *s = open_view(dir, NULL, 1);
  assert_non_null(s->shm);
  assert_int_equal(s->shm->index, 0);
  assert_int_equal(read_list(dir, &l), 1);
  assert_int_equal(l[0].pid, getpid());
  assert_int_equal(l[0].gets, 0); /* the dead one's figures are gone */
  assert_int_equal(l[0].snapshots_open, 0);
  strata_processes_free(l);
  /* A live slot is not cleared. */
  assert_strata_ok(strata_processes_check(dir, &cleared));
  assert_int_equal(cleared, 0);
  strata_store_close(s);
  free((void *)dir);
}

/* ---- without a view --------------------------------------------------------
 */

static void test_view_off(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  strata_store *s = open_view(dir, NULL, 0);
  assert_null(s->shm);
  assert_int_equal(access(test_path(dir, ".strata.shm"), F_OK), -1);
  assert_strata_ok(strata_processes_publish(s)); /* nothing to do */
  strata_store_close(s);
  strata_store_config c;
  strata_store_config_init(&c);
  assert_int_equal(c.shared_view, 1);
  c.shared_view = 2;
  assert_int_equal(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  free((void *)dir);
}

/* The read-only case proper: the store in `dir`, which this process cannot
 * write, opens without a view and says why. Returns 0, or the number of
 * the check that failed (for the forked child below). */
static int read_only_open(const char *dir) {
  log_capture cap = {.mu = PTHREAD_MUTEX_INITIALIZER};
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = STRATA_STORE_READ_ONLY;
  c.log_fn = capture_log;
  c.log_ctx = &cap;
  strata_store *s = NULL;
  if (strata_store_open(dir, &c, &s) != 0)
    return 1;
  int rc = s->shm != NULL                                         ? 2
           : strstr(cap.text, "no shared view") == NULL           ? 3
           : strstr(cap.text, "creating the shared view") == NULL ? 4
           : access(test_path(dir, ".strata.shm"), F_OK) == 0     ? 5
                                                                  : 0;
  strata_store_close(s);
  return rc;
}

/* A directory the process cannot write into. Root writes into a read-only
 * directory all the same, so as root (CI) the case runs in a forked child
 * that has given up root for nobody (65534), over a directory it may read
 * but not write; skipped only where that child cannot be made or cannot
 * reach the directory. */
static void test_read_only_dir(void **state) {
  (void)state;
  const char *dir = strdup(test_tmpdir());
  if (geteuid() != 0) {
    assert_int_equal(chmod(dir, 0500), 0);
    assert_int_equal(read_only_open(dir), 0);
    chmod(dir, 0700);
    free((void *)dir);
    return;
  }
  assert_int_equal(chmod(dir, 0555), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
      _exit(77);
    if (access(dir, R_OK | X_OK) != 0)
      _exit(77); /* a parent directory nobody may not pass */
    _exit(read_only_open(dir));
  }
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  chmod(dir, 0700);
  free((void *)dir);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77)
    skip();
  if (WEXITSTATUS(status) != 0)
    fail_msg("as nobody in a read-only directory: check %d failed",
             WEXITSTATUS(status));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_and_close),
      cmocka_unit_test(test_group_mode),
      cmocka_unit_test(test_figures),
      cmocka_unit_test(test_struct_size),
      cmocka_unit_test(test_not_a_dir),
      cmocka_unit_test(test_stalled_publication),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_special),
      cmocka_unit_test(test_truncated_under_store),
      cmocka_unit_test(test_create_race),
      cmocka_unit_test(test_dead_slot),
      cmocka_unit_test(test_view_off),
      cmocka_unit_test(test_read_only_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
