/* The store: opening a directory (bad and conflicting files skipped,
 * temporary files removed), snapshots and their isolation, proto puts,
 * removes and names, crystallization and replacement, refresh across
 * handles, the writer lock, memory thresholds and reclamation. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "test_util.h"

#include "format/format.h"

/* ---- helpers --------------------------------------------------------------
 */

typedef struct log_capture {
  pthread_mutex_t mu;
  char text[16384];
  size_t len;
} log_capture;

static void capture_log(void *ctx, int level, const char *line) {
  (void)level;
  log_capture *c = ctx;
  pthread_mutex_lock(&c->mu);
  int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%s\n", line);
  if (n > 0 && c->len + (size_t)n < sizeof c->text)
    c->len += (size_t)n;
  pthread_mutex_unlock(&c->mu);
}

/* Default config whose log goes to `cap` at `level` (cap NULL: no log). */
static void config_with_log(strata_store_config *c, log_capture *cap,
                            int level) {
  strata_store_config_init(c);
  if (cap == NULL) {
    c->log_level = STRATA_LOG_OFF;
    return;
  }
  pthread_mutex_init(&cap->mu, NULL);
  cap->len = 0;
  cap->text[0] = '\0';
  c->log_fn = capture_log;
  c->log_ctx = cap;
  c->log_level = level;
}

static strata_store *open_store(const char *dir, log_capture *cap) {
  strata_store_config c;
  config_with_log(&c, cap, STRATA_LOG_INFO);
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

/* Writes a region file with layers id_base .. id_base + n - 1, content
 * "<name>:<id>" and names "l<id>". */
static void write_region(const char *dir, const char *file, uint64_t rid,
                         const char *name, uint64_t id_base, uint64_t n) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = rid;
  o.name = name;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, file), &o, &w));
  for (uint64_t i = 0; i < n; i++) {
    char data[64], lname[32];
    snprintf(data, sizeof data, "%s:%" PRIu64, name, id_base + i);
    snprintf(lname, sizeof lname, "l%" PRIu64, id_base + i);
    assert_strata_ok(strata_writer_add(w, id_base + i, lname, strlen(lname),
                                       NULL, data, strlen(data)));
  }
  assert_strata_ok(strata_writer_commit(w));
}

static int count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t a = strlen(e->d_name), b = strlen(suffix);
    n += a >= b && strcmp(e->d_name + a - b, suffix) == 0;
  }
  closedir(d);
  return n;
}

/* ---- opening
 * ------------------------------------------------------------------- */

static void test_open_serves_regions(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "alpha", 0, 10);
  write_region(dir, "b.region", 2, "beta", 100, 5);
  strata_store *s = open_store(dir, NULL);
  test_expect_layer(s, 1, 3, "alpha:3");
  test_expect_layer(s, 2, 104, "beta:104");
  test_expect_layer(s, 2, 5, NULL);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_err(strata_get(&t, 9, 0, &l), STRATA_E_NO_REGION);
  uint64_t rid = 0;
  assert_strata_ok(strata_find_region(&t, "beta", 4, &rid));
  assert_int_equal(rid, 2);
  assert_strata_err(strata_find_region(&t, "gamma", 5, &rid),
                    STRATA_E_NO_REGION);
  assert_strata_ok(strata_get_by_name(&t, 1, "l7", 2, &l));
  assert_int_equal(l.id, 7);
  assert_int_equal(strata_store_region_count(&t), 2);
  strata_store_region r;
  assert_strata_ok(strata_store_region_at(&t, 1, &r));
  assert_int_equal(r.id, 2);
  assert_string_equal(r.name, "beta");
  assert_int_equal(r.layer_count, 5);
  assert_false(r.has_proto);
  assert_strata_err(strata_store_region_at(&t, 2, &r), STRATA_E_BOUNDS);
  strata_read_end(&t);
  strata_store_close(s);
}

static void test_get_many_path(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "alpha", 0, 50);
  write_region(dir, "b.region", 2, "beta", 1000, 50);
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 3, "gamma", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 5, "five", 4, NULL, "gamma:5", 7));
  strata_layer_ref path[] = {{1, 7},   {2, 1049}, {3, 5}, {9, 1},
                             {2, 999}, {1, 0},    {3, 6}, {1, 49}};
  enum { N = sizeof path / sizeof path[0] };
  strata_layer out[N];
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_get_many(&t, path, N, out), 5);
  const char *want[N] = {"alpha:7", "beta:1049", "gamma:5", NULL,
                         NULL,      "alpha:0",   NULL,      "alpha:49"};
  for (size_t i = 0; i < N; i++) {
    if (want[i] == NULL) {
      assert_null(out[i].data);
      continue;
    }
    assert_int_equal(out[i].id, path[i].layer_id);
    assert_int_equal(out[i].size, strlen(want[i]));
    assert_memory_equal(out[i].data, want[i], out[i].size);
  }
  assert_int_equal(strata_get_many(&t, path, 0, out), 0);
  strata_read_end(&t);
  strata_store_close(s);
}

static void test_open_skips_bad_files(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "alpha", 0, 4);
  write_region(dir, "b.region", 1, "dup-id", 0, 4); /* same id as a */
  write_region(dir, "c.region", 3, "alpha", 0, 4);  /* same name as a */
  test_write_file(test_path(dir, "d.region"), "not a region", 12);
  write_region(dir, "e.region", 5, "epsilon", 0, 4);
  /* A temporary file of an interrupted write (it begins with the magic),
   * and a foreign file. */
  test_write_file(test_path(dir, ".x.region.strata-tmp-0123abcd"),
                  STRATA__MAGIC "partial", STRATA__MAGIC_LEN + 7);
  test_write_file(test_path(dir, "notes.txt"), "hello", 5);
  log_capture cap;
  strata_store *s = open_store(dir, &cap);
  test_expect_layer(s, 1, 2, "alpha:2");
  test_expect_layer(s, 5, 2, "epsilon:2");
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.regions, 2);
  assert_non_null(strstr(cap.text, "b.region"));
  assert_non_null(strstr(cap.text, "region id already served"));
  assert_non_null(strstr(cap.text, "region name already served"));
  assert_non_null(strstr(cap.text, "file=d.region error=STRATA_E_BAD_MAGIC"));
  assert_int_equal(
      access(test_path(dir, ".x.region.strata-tmp-0123abcd"), F_OK), -1);
  assert_int_equal(access(test_path(dir, "notes.txt"), F_OK), 0);
  strata_store_close(s);
}

/* Flips a bit of layer entry 0's content checksum: structurally valid, so
 * only the index checksum can tell. */
static void corrupt_index(const char *path) {
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  strata_region_close(r);
  assert_int_equal(chmod(path, 0644), 0);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  off_t at = (off_t)(info.index_offset + STRATA__E_CHECKSUM);
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 1;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static void test_index_checksum_checked(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "a.region", 1, "alpha", 0, 100);
  write_region(dir, "b.region", 2, "beta", 0, 100);
  corrupt_index(test_path(dir, "b.region"));
  /* By default the store serves it after the structural checks and the
   * verifier withdraws it; a refresh waits for the verifier. */
  log_capture cap;
  strata_store *s = open_store(dir, &cap);
  assert_strata_ok(strata_store_refresh(s));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), 1);
  strata_read_end(&t);
  assert_non_null(strstr(cap.text, "region withdrawn"));
  assert_non_null(strstr(cap.text, "b.region"));
  test_expect_layer(s, 1, 99, "alpha:99");
  strata_store_close(s);
  /* With STRATA_STORE_VERIFY_AT_OPEN it is never served. */
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = STRATA_STORE_VERIFY_AT_OPEN;
  c.log_level = STRATA_LOG_OFF;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), 1);
  strata_read_end(&t);
  strata_store_close(s);
}

static void test_snapshot_age_warning(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store_config c;
  log_capture cap;
  config_with_log(&c, &cap, STRATA_LOG_WARN);
  c.snapshot_warn_ms = 20;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "aging", 5, NULL, &p));
  strata_txn old;
  assert_strata_ok(strata_read_begin(s, &old));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "a", 1));
  usleep(60 * 1000);
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "b", 1));
  assert_strata_ok(strata_crystallize(s, 1));
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.snapshots_open, 1);
  assert_true(st.oldest_snapshot_ms >= 40);
  /* The proto's overlay and the old catalog wait for `old`. */
  assert_true(st.retired_objects >= 2);
  assert_true(st.retired_bytes > 0);
  assert_non_null(strstr(cap.text, "snapshot held long"));
  strata_read_end(&old);
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.snapshots_open, 0);
  assert_int_equal(st.retired_objects, 0);
  strata_store_close(s);
}

static void test_dir_permissions_reported(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  assert_int_equal(chmod(dir, 0777), 0); /* no sticky bit */
  log_capture cap;
  strata_store *s = open_store(dir, &cap);
  strata_store_close(s);
  assert_non_null(strstr(cap.text, "writable by every user"));
  assert_int_equal(chmod(dir, 0755), 0);
  s = open_store(dir, &cap);
  strata_store_close(s);
  assert_null(strstr(cap.text, "writable by every user"));
  if (geteuid() != 0) { /* root writes anywhere: nothing to report then */
    assert_int_equal(chmod(dir, 0555), 0);
    s = open_store(dir, &cap);
    strata_store_close(s);
    assert_non_null(strstr(cap.text, "not writable by this process"));
    assert_int_equal(chmod(dir, 0755), 0);
  }
}

/* Temporary files: matched by their suffix (a region name may contain our
 * mark ".strata-tmp-"), and left alone while a live writer holds them
 * (flock). */
static void test_temp_file_cleanup(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  test_write_file(test_path(dir, ".a.strata-tmp-b.region.strata-tmp-4a6197d4"),
                  STRATA__MAGIC, STRATA__MAGIC_LEN);
  test_write_file(test_path(dir, ".notes.tmp-zzzzzzzz"), STRATA__MAGIC,
                  STRATA__MAGIC_LEN); /* not ours */
  test_write_file(test_path(dir, ".live.region.strata-tmp-0000beef"),
                  STRATA__MAGIC, STRATA__MAGIC_LEN);
  int fd = open(test_path(dir, ".live.region.strata-tmp-0000beef"), O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(flock(fd, LOCK_EX), 0); /* a writer still at work */
  log_capture cap;
  strata_store *s = open_store(dir, &cap);
  strata_store_close(s);
  assert_int_equal(
      access(test_path(dir, ".a.strata-tmp-b.region.strata-tmp-4a6197d4"),
             F_OK),
      -1);
  assert_int_equal(access(test_path(dir, ".notes.tmp-zzzzzzzz"), F_OK), 0);
  assert_int_equal(
      access(test_path(dir, ".live.region.strata-tmp-0000beef"), F_OK), 0);
  close(fd); /* the writer died: the next open removes it */
  s = open_store(dir, &cap);
  strata_store_close(s);
  assert_int_equal(
      access(test_path(dir, ".live.region.strata-tmp-0000beef"), F_OK), -1);
}

static void test_open_errors(void **state) {
  (void)state;
  strata_store *s = NULL;
  assert_strata_err(strata_store_open("/nonexistent/strata", NULL, &s),
                    -ENOENT);
  assert_non_null(strstr(strata_last_error_detail(), "/nonexistent/strata"));
  strata_store_config c;
  strata_store_config_init(&c);
  c.warn_pct = 90;
  c.evict_pct = 80;
  assert_strata_err(strata_store_open(test_tmpdir(), &c, &s), STRATA_E_INVAL);
  assert_null(s);
  /* NULL arguments are refused before anything is opened (a NULL `out`
   * once opened the store and then wrote through it). */
  assert_strata_err(strata_store_open(test_tmpdir(), NULL, NULL),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "NULL argument"));
  assert_strata_err(strata_store_open(NULL, NULL, &s), STRATA_E_INVAL);
  assert_null(s);
  strata_store_close(NULL);
}

/* strata_store_config.struct_size ("Growing structures" in strata.h): a
 * caller compiled against an older, smaller config gets the defaults for
 * the fields it does not know, and a larger config than the library's is
 * refused, naming the structure. */
static void test_config_struct_size(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = NULL;
  strata_store_config c;
  strata_store_config_init(&c);
  assert_int_equal(c.struct_size, sizeof c);

  /* An older config: as if the header had no staging pool yet. The bytes
   * past its size hold values that open would refuse (block size 3) or act
   * on (a pool) if it read them. */
  c.flags = STRATA_STORE_READ_ONLY;
  c.log_level = STRATA_LOG_OFF;
  c.struct_size = offsetof(strata_store_config, staging);
  c.staging.bytes = 1ull << 30;
  c.staging.block_size = 3;
  c.staging.reserved_[0] = 1;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p = NULL; /* the known field was read: read-only */
  assert_strata_err(strata_proto_create(s, 1, "x", 1, NULL, &p),
                    STRATA_E_STATE);
  strata_staging_stats st; /* the unknown ones got the default: no pool */
  assert_strata_err(strata_staging_stats_get(s, &st), STRATA_E_STATE);
  strata_store_close(s);
  s = NULL;
  /* The same config in memory of exactly the older size: open reads
   * nothing past it (checked by the address sanitizer build). */
  unsigned char *old = malloc(c.struct_size);
  assert_non_null(old);
  memcpy(old, &c, c.struct_size);
  assert_strata_ok(
      strata_store_open(dir, (const strata_store_config *)(void *)old, &s));
  strata_store_close(s);
  s = NULL;
  free(old);

  /* A newer, larger config is refused. */
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.struct_size = sizeof c + 8;
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_null(s);
  assert_non_null(strstr(strata_last_error_detail(), "strata_store_config"));
  /* So are a size that ends inside a field, and 0 (not initialized). */
  c.struct_size = sizeof c - 4;
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  c.struct_size = 0;
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_non_null(
      strstr(strata_last_error_detail(), "strata_store_config_init"));
  /* A staging field past this library's (a reserved word that is set). */
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.staging.reserved_[3] = 1;
  assert_strata_err(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "strata_staging_config"));
  assert_null(s);
}

/* ---- protos and snapshots
 * ---------------------------------------------------------- */

static void test_proto_put_and_snapshots(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 7, "notes", 5, "{\"k\":1}", &p));
  strata_proto *again = NULL;
  assert_strata_err(strata_proto_create(s, 7, "other", 5, NULL, &again),
                    STRATA_E_EXIST);
  assert_strata_err(strata_proto_create(s, 8, "notes", 5, NULL, &again),
                    STRATA_E_EXIST);
  assert_strata_err(strata_proto_create(s, 8, "../up", 5, NULL, &again),
                    STRATA_E_INVAL);
  assert_strata_err(strata_proto_create(s, 8, ".hidden", 7, NULL, &again),
                    STRATA_E_INVAL);

  strata_txn before;
  assert_strata_ok(strata_read_begin(s, &before));
  assert_strata_ok(strata_proto_put(p, 1, "one", 3, "{\"f\":2}", "first", 5));
  strata_txn mid;
  assert_strata_ok(strata_read_begin(s, &mid));
  assert_strata_ok(strata_proto_put(p, 1, "uno", 3, NULL, "replaced", 8));
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, NULL, "", 0));

  strata_layer l;
  /* The snapshot from before the first put sees none of it. */
  assert_strata_err(strata_get(&before, 7, 1, &l), STRATA_E_NOT_FOUND);
  /* The middle one sees the first version, under its first name. */
  assert_strata_ok(strata_get(&mid, 7, 1, &l));
  assert_int_equal(l.size, 5);
  assert_memory_equal(l.data, "first", 5);
  assert_string_equal(l.metadata, "{\"f\":2}");
  assert_strata_ok(strata_get_by_name(&mid, 7, "one", 3, &l));
  assert_strata_err(strata_get_by_name(&mid, 7, "uno", 3, &l),
                    STRATA_E_NOT_FOUND);
  assert_strata_err(strata_get(&mid, 7, 2, &l), STRATA_E_NOT_FOUND);
  /* A new one sees everything. */
  test_expect_layer(s, 7, 1, "replaced");
  test_expect_layer(s, 7, 2, "");
  strata_txn now;
  assert_strata_ok(strata_read_begin(s, &now));
  assert_strata_err(strata_get_by_name(&now, 7, "one", 3, &l),
                    STRATA_E_NOT_FOUND);
  assert_strata_ok(strata_get_by_name(&now, 7, "uno", 3, &l));
  assert_int_equal(l.id, 1);
  assert_null(l.metadata);
  strata_read_end(&now);

  /* Names stay unique; a failed put changes nothing. */
  assert_strata_err(strata_proto_put(p, 3, "uno", 3, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_strata_err(strata_proto_put(p, 3, "bad", 3, "{not json", "x", 1),
                    STRATA_E_INVAL);
  assert_strata_err(strata_proto_put(p, 3, "", 0, NULL, "x", 1),
                    STRATA_E_INVAL);
  test_expect_layer(s, 7, 3, NULL);

  /* Removing, then removing again. */
  assert_strata_ok(strata_proto_remove(p, 1));
  assert_strata_err(strata_proto_remove(p, 1), STRATA_E_NOT_FOUND);
  test_expect_layer(s, 7, 1, NULL);
  assert_strata_ok(strata_get(&mid, 7, 1, &l)); /* still there for mid */
  assert_memory_equal(l.data, "first", 5);
  /* The name is free again once the layer is gone. */
  assert_strata_ok(strata_proto_put(p, 4, "uno", 3, NULL, "four", 4));

  /* Layer counts are as of each snapshot, too. */
  strata_store_region reg;
  assert_strata_ok(strata_store_region_at(&mid, 0, &reg));
  assert_int_equal(reg.layer_count, 1);
  assert_strata_ok(strata_store_region_at(&before, 0, &reg));
  assert_int_equal(reg.layer_count, 0);
  strata_txn last;
  assert_strata_ok(strata_read_begin(s, &last));
  assert_strata_ok(strata_store_region_at(&last, 0, &reg));
  assert_int_equal(reg.layer_count, 2);
  assert_strata_ok(strata_proto_put(p, 5, NULL, 0, NULL, "five", 4));
  assert_strata_ok(strata_store_region_at(&last, 0, &reg));
  assert_int_equal(reg.layer_count, 2);
  strata_read_end(&last);
  assert_strata_ok(strata_proto_remove(p, 5));

  strata_proto_info info;
  assert_strata_ok(strata_proto_info_get(p, &info));
  assert_int_equal(info.layers, 2); /* 2 and 4 */
  assert_int_equal(info.changed, 4);
  strata_read_end(&mid);
  strata_read_end(&before);
  strata_store_close(s);
}

static void test_many_puts_grow_and_prune(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "big", 3, NULL, &p));
  char buf[64];
  /* Many ids force the index tables to grow several times; rewriting each
   * id leaves superseded versions for pruning. */
  for (int round = 0; round < 3; round++)
    for (uint64_t i = 0; i < 5000; i++) {
      int n = snprintf(buf, sizeof buf, "v%d-%" PRIu64, round, i);
      char name[32];
      snprintf(name, sizeof name, "n%" PRIu64, i);
      assert_strata_ok(
          strata_proto_put(p, i, name, strlen(name), NULL, buf, (size_t)n));
    }
  for (uint64_t i = 0; i < 5000; i += 499) {
    snprintf(buf, sizeof buf, "v2-%" PRIu64, i);
    test_expect_layer(s, 1, i, buf);
  }
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_ok(strata_get_by_name(&t, 1, "n4321", 5, &l));
  assert_int_equal(l.id, 4321);
  strata_read_end(&t);
  assert_strata_ok(strata_store_reclaim(s, 1));
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.retired_objects, 0);
  assert_int_equal(st.snapshots_open, 0);
  strata_store_close(s);
}

/* ---- crystallization
 * ---------------------------------------------------------------- */

static void test_crystallize_new_region(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 42, "fresh", 5, "{\"a\":true}", &p));
  for (uint64_t i = 0; i < 100; i++) {
    char data[32];
    snprintf(data, sizeof data, "fresh:%" PRIu64, i);
    assert_strata_ok(
        strata_proto_put(p, i * 3, NULL, 0, NULL, data, strlen(data)));
  }
  strata_txn old;
  assert_strata_ok(strata_read_begin(s, &old));
  strata_layer before;
  assert_strata_ok(strata_get(&old, 42, 9, &before));

  assert_strata_ok(strata_crystallize(s, 42));
  assert_int_equal(count_files(dir, ".region"), 1);
  assert_int_equal(access(test_path(dir, "fresh.region"), R_OK), 0);
  struct stat st;
  assert_int_equal(stat(test_path(dir, "fresh.region"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0444);
  /* The old snapshot's pointer still reads the proto's bytes. */
  assert_memory_equal(before.data, "fresh:3", 7);
  strata_read_end(&old);
  test_expect_layer(s, 42, 27, "fresh:9");
  test_expect_layer(s, 42, 28, NULL);

  /* The proto stays attached over the new file. */
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "later", 5));
  test_expect_layer(s, 42, 1, "later");
  test_expect_layer(s, 42, 0, "fresh:0");
  strata_store_stats sst;
  assert_strata_ok(strata_store_stats_get(s, &sst));
  assert_int_equal(sst.crystallizations, 1);
  strata_store_close(s); /* drops "later": it was never crystallized */

  s = open_store(dir, NULL);
  test_expect_layer(s, 42, 297, "fresh:99");
  test_expect_layer(s, 42, 1, NULL);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_store_region r;
  assert_strata_ok(strata_store_region_at(&t, 0, &r));
  assert_string_equal(r.metadata, "{\"a\":true}");
  assert_int_equal(r.layer_count, 100);
  strata_read_end(&t);
  strata_store_close(s);
}

/* Crystallization walks each changed id's newest version (issue 19 §2):
 * puts that go backwards in id order, one layer replaced many times while
 * a snapshot keeps its old versions, and tombstones in bulk over base and
 * proto layers; the file holds exactly the newest content, and every
 * layer's checksum (carried from the put, not recomputed) verifies. */
static void test_crystallize_newest_versions(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "mix.region", 5, "mix", 100, 50); /* ids 100..149 */
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 5, &p));
  char data[64];
  /* New ids in descending order, below, among and above the base ids. */
  for (uint64_t i = 300; i-- > 0;) {
    snprintf(data, sizeof data, "put:%" PRIu64, i);
    assert_strata_ok(strata_proto_put(p, i, NULL, 0, NULL, data, strlen(data)));
  }
  /* Layer 7 replaced 200 times; a snapshot keeps its first version alive. */
  strata_txn old;
  assert_strata_ok(strata_read_begin(s, &old));
  for (int k = 0; k < 200; k++) {
    snprintf(data, sizeof data, "seven:%d", k);
    assert_strata_ok(strata_proto_put(p, 7, NULL, 0, NULL, data, strlen(data)));
  }
  /* Tombstones in bulk: every third id below 300 (base ids among them),
   * and one id removed, put back and removed again. */
  for (uint64_t i = 0; i < 300; i += 3)
    assert_strata_ok(strata_proto_remove(p, i));
  assert_strata_ok(strata_proto_put(p, 3, NULL, 0, NULL, "back", 4));
  assert_strata_ok(strata_proto_remove(p, 3));
  assert_strata_ok(strata_crystallize(s, 5));
  strata_layer l;
  assert_strata_ok(strata_get(&old, 5, 7, &l));
  assert_memory_equal(l.data, "put:7", 5);
  strata_read_end(&old);
  strata_store_close(s);

  s = open_store(dir, NULL);
  for (uint64_t i = 0; i < 300; i++) {
    snprintf(data, sizeof data, i == 7 ? "seven:199" : "put:%" PRIu64, i);
    test_expect_layer(s, 5, i, i % 3 == 0 ? NULL : data);
  }
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_store_region r;
  assert_strata_ok(strata_store_region_at(&t, 0, &r));
  assert_int_equal(r.layer_count, 200);
  strata_read_end(&t);
  strata_store_close(s);
  strata_region *reg = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "mix.region"), 0, &reg));
  assert_strata_ok(strata_region_verify(reg, NULL));
  strata_region_close(reg);
}

static void test_crystallize_replaces_region(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "base.region", 3, "base", 10, 20); /* ids 10..29 */
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_err(strata_proto_open(s, 4, &p), STRATA_E_NO_REGION);
  assert_strata_ok(strata_proto_open(s, 3, &p));
  strata_proto *same = NULL;
  assert_strata_ok(strata_proto_open(s, 3, &same));
  assert_ptr_equal(p, same);

  /* The base file's layers show through; names are checked against it. */
  test_expect_layer(s, 3, 15, "base:15");
  assert_strata_err(strata_proto_put(p, 5, "l12", 3, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_strata_ok(strata_proto_put(p, 12, "l12", 3, NULL, "new12", 5));
  assert_strata_ok(strata_proto_remove(p, 13));
  assert_strata_ok(strata_proto_put(p, 5, "l13", 3, NULL, "five", 4));
  assert_strata_ok(strata_proto_put(p, 99, NULL, 0, NULL, "ninety-nine", 11));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_ok(strata_get_by_name(&t, 3, "l13", 3, &l));
  assert_int_equal(l.id, 5);
  assert_strata_ok(strata_get_by_name(&t, 3, "l20", 3, &l));
  assert_int_equal(l.id, 20);
  strata_store_region r;
  assert_strata_ok(strata_store_region_at(&t, 0, &r));
  assert_int_equal(r.layer_count, 21);
  assert_true(r.has_proto);
  strata_layer l20 = l;
  strata_read_end(&t);

  strata_txn held;
  assert_strata_ok(strata_read_begin(s, &held));
  assert_strata_ok(strata_get(&held, 3, 20, &l20));
  assert_strata_ok(strata_crystallize(s, 3));
  assert_int_equal(count_files(dir, ".region"), 1);
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_true(st.retired_objects > 0); /* held back by `held` */
  /* The old mapping is alive while the snapshot is. */
  assert_memory_equal(l20.data, "base:20", 7);
  strata_read_end(&held);
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.retired_objects, 0);
  assert_int_equal(st.retired_bytes, 0);

  test_expect_layer(s, 3, 12, "new12");
  test_expect_layer(s, 3, 13, NULL);
  test_expect_layer(s, 3, 5, "five");
  test_expect_layer(s, 3, 99, "ninety-nine");
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_store_region_at(&t, 0, &r));
  assert_int_equal(r.generation, 1);
  assert_int_equal(r.layer_count, 21);
  assert_int_equal(strata_region_verify(r.file, NULL), 0);
  strata_read_end(&t);
  strata_store_close(s);
}

/* Crystallization keeps the base file's content alignment (and its id,
 * name and metadata): a region written with alignment 4096, for GPU and
 * direct-I/O readers, came back aligned to 64 after a put. */
/* The file at `path`: region 8 "wide" with its metadata, `layers` layers,
 * every content aligned to 4096 in the file and in the mapping. */
static void expect_aligned(const char *path, int layers) {
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.data_align, 4096);
  assert_int_equal(info.id, 8);
  assert_string_equal(info.name, "wide");
  assert_string_equal(info.metadata, "{\"device\":\"gpu\"}");
  assert_int_equal(info.layer_count, (uint64_t)layers);
  /* The mapping starts on a page boundary (a multiple of 4096), so a
   * content pointer aligned to 4096 is aligned relative to the mapping
   * too; the data section's offset says the same through the file. */
  assert_int_equal(info.data_offset % 4096, 0);
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(r, &it);
  int n = 0;
  while (strata_region_next(&it, &l) > 0) {
    assert_int_equal((uintptr_t)l.data % 4096, 0);
    n++;
  }
  assert_int_equal(n, layers);
  strata_region_close(r);
}

static void test_crystallize_keeps_alignment(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 8;
  o.name = "wide";
  o.metadata = "{\"device\":\"gpu\"}";
  o.align = 4096;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, "wide.region"), &o, &w));
  assert_strata_ok(strata_writer_add(w, 1, "one", 3, NULL, "first", 5));
  assert_strata_ok(strata_writer_add(w, 2, NULL, 0, NULL, "second", 6));
  assert_strata_ok(strata_writer_commit(w));

  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 8, &p));
  assert_strata_ok(strata_proto_put(p, 3, "three", 5, NULL, "third!!", 7));
  assert_strata_ok(strata_proto_put(p, 1, "one", 3, NULL, "FIRST", 5));
  assert_strata_ok(strata_crystallize(s, 8));
  test_expect_layer(s, 8, 1, "FIRST");
  test_expect_layer(s, 8, 2, "second");
  test_expect_layer(s, 8, 3, "third!!");
  /* A small change is a delta (wide.1.delta, its two layers); a change
   * larger than a quarter of the base compacts into wide.region. Both
   * keep the alignment. */
  expect_aligned(test_path(dir, "wide.1.delta"), 2);
  static char big[65536];
  memset(big, 'b', sizeof big);
  assert_strata_ok(strata_proto_put(p, 4, NULL, 0, NULL, big, sizeof big));
  assert_strata_ok(strata_crystallize(s, 8));
  test_expect_layer(s, 8, 1, "FIRST");
  strata_store_close(s);
  expect_aligned(test_path(dir, "wide.region"), 4);
  assert_int_equal(access(test_path(dir, "wide.1.delta"), F_OK), -1);
}

static void test_discard(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "base.region", 3, "base", 0, 4);
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 3, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "changed", 7));
  test_expect_layer(s, 3, 1, "changed");
  assert_strata_ok(strata_proto_discard(p));
  test_expect_layer(s, 3, 1, "base:1");
  assert_strata_err(strata_proto_put(p, 1, NULL, 0, NULL, "late", 4),
                    STRATA_E_STATE);
  assert_strata_err(strata_proto_discard(p), STRATA_E_STATE);
  strata_proto *again = NULL;
  assert_strata_ok(strata_proto_open(s, 3, &again));
  assert_ptr_not_equal(again, p);
  assert_strata_ok(strata_proto_put(again, 1, NULL, 0, NULL, "again", 5));
  test_expect_layer(s, 3, 1, "again");
  assert_strata_ok(strata_proto_discard(again));
  assert_strata_ok(strata_proto_create(s, 9, "gone", 4, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "x", 1));
  assert_strata_ok(strata_proto_discard(p));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  assert_strata_err(strata_get(&t, 9, 1, &l), STRATA_E_NO_REGION);
  strata_read_end(&t);
  assert_int_equal(count_files(dir, ".region"), 1);
  strata_store_close(s);
}

/* ---- processes and files
 * ------------------------------------------------------------- */

static void test_writer_lock_and_refresh(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *writer = open_store(dir, NULL);
  strata_store *reader = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(writer, 1, "shared", 6, NULL, &p));
  /* flock() locks belong to the open file: a second store handle in the
   * same process is refused just like another process would be. */
  strata_proto *q = NULL;
  assert_strata_err(strata_proto_create(reader, 2, "second", 6, NULL, &q),
                    STRATA_E_LOCKED);
  char want[64];
  snprintf(want, sizeof want, "locked by pid %ld", (long)getpid());
  assert_non_null(strstr(strata_last_error_detail(), want));

  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "v1", 2));
  assert_strata_ok(strata_crystallize(writer, 1));
  strata_txn t;
  strata_layer l;
  assert_strata_ok(strata_read_begin(reader, &t));
  assert_strata_err(strata_get(&t, 1, 1, &l), STRATA_E_NO_REGION);
  strata_read_end(&t); /* region 1 is unknown here until a refresh */
  assert_strata_ok(strata_store_refresh(reader));
  test_expect_layer(reader, 1, 1, "v1");

  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "v2", 2));
  assert_strata_ok(strata_crystallize(writer, 1));
  test_expect_layer(reader, 1, 1, "v1");
  assert_strata_ok(strata_store_refresh(reader));
  test_expect_layer(reader, 1, 1, "v2");
  assert_strata_ok(strata_read_begin(reader, &t));
  strata_store_region r;
  assert_strata_ok(strata_store_region_at(&t, 0, &r));
  assert_int_equal(r.generation, 1);
  strata_read_end(&t);

  /* A refresh notices removed files. */
  assert_int_equal(unlink(test_path(dir, "shared.region")), 0);
  assert_strata_ok(strata_store_refresh(reader));
  assert_strata_ok(strata_read_begin(reader, &t));
  assert_int_equal(strata_store_region_count(&t), 0);
  strata_read_end(&t);
  strata_store_close(writer);
  /* The lock went with the writer. */
  assert_strata_ok(strata_proto_create(reader, 2, "second", 6, NULL, &q));
  strata_store_close(reader);
}

/* A store opened before another process crystallized must not undo that
 * change when it starts writing: taking the lock refreshes it. */
static void test_lock_refreshes_first(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "base.region", 3, "base", 0, 4);
  strata_store *late = open_store(dir, NULL);  /* opened first */
  strata_store *early = open_store(dir, NULL); /* writes first */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(early, 3, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "early", 5));
  assert_strata_ok(strata_crystallize(early, 3));
  strata_store_close(early); /* releases the lock */
  assert_strata_ok(strata_proto_open(late, 3, &p));
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, NULL, "late", 4));
  assert_strata_ok(strata_crystallize(late, 3));
  test_expect_layer(late, 3, 1, "early");
  test_expect_layer(late, 3, 2, "late");
  strata_store_close(late);
}

static void test_read_only(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = STRATA_STORE_READ_ONLY;
  c.log_level = STRATA_LOG_OFF;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p = NULL;
  assert_strata_err(strata_proto_create(s, 1, "x", 1, NULL, &p),
                    STRATA_E_STATE);
  assert_int_equal(access(test_path(dir, ".strata.lock"), F_OK), -1);
  strata_store_close(s);
}

/* ---- memory
 * -------------------------------------------------------------------------------
 */

static void test_memory_thresholds(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store_config c;
  log_capture cap;
  config_with_log(&c, &cap, STRATA_LOG_INFO);
  c.memory_limit = 8u << 20; /* evict above 6.8 MiB, refuse above 7.6 */
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "mem", 3, NULL, &p));
  static char blob[256 << 10];
  memset(blob, 'm', sizeof blob);
  /* Puts beyond the eviction threshold crystallize the proto instead of
   * failing: its heap is freed and nothing is lost. */
  for (uint64_t i = 0; i < 64; i++)
    assert_strata_ok(strata_proto_put(p, i, NULL, 0, NULL, blob, sizeof blob));
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_true(st.evictions >= 1);
  strata_pool_stats rows[20];
  size_t nrows = strata_store_pool_stats(s, rows, 20);
  assert_true(nrows >= 2 && nrows <= 20);
  assert_int_equal(rows[nrows - 1].block_size, 0); /* the large row */
  uint64_t allocs = 0;
  for (size_t i = 0; i < nrows; i++) {
    allocs += rows[i].allocs;
    assert_true(rows[i].utilization >= 0 && rows[i].utilization <= 1);
    assert_true(rows[i].blocks_used <= rows[i].blocks_total ||
                rows[i].block_size == 0);
  }
  assert_true(allocs >= 64);
  assert_true(st.heap_bytes < c.memory_limit);
  assert_non_null(strstr(cap.text, "above the warning threshold"));
  assert_non_null(strstr(cap.text, "crystallizing the largest proto"));
  for (uint64_t i = 0; i < 64; i += 7) {
    strata_txn t;
    strata_layer l;
    assert_strata_ok(strata_read_begin(s, &t));
    assert_strata_ok(strata_get(&t, 1, i, &l));
    assert_int_equal(l.size, sizeof blob);
    strata_read_end(&t);
  }
  /* A snapshot that pins the heap makes eviction free nothing: puts are
   * then refused with a message naming usage and limit. */
  strata_txn pin;
  assert_strata_ok(strata_read_begin(s, &pin));
  int rc = 0;
  for (uint64_t i = 100; i < 200 && rc == 0; i++)
    rc = strata_proto_put(p, i, NULL, 0, NULL, blob, sizeof blob);
  assert_int_equal(rc, STRATA_E_LIMIT);
  assert_non_null(strstr(strata_last_error_detail(), "of the limit 8388608"));
  strata_read_end(&pin);
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_strata_ok(strata_proto_put(p, 500, NULL, 0, NULL, blob, sizeof blob));
  strata_store_close(s);
}

/* Puts `puts` layers of 100 bytes, round robin over `regions` new protos,
 * into a fresh store with `limit` (0: the default limit). Every put must
 * succeed. Returns the heap the puts added, and the store's figures in
 * *st; *empty is the heap of the protos before any put. */
static uint64_t put_many(uint64_t limit, uint64_t regions, uint64_t puts,
                         strata_store_stats *st, uint64_t *empty) {
  const char *dir = test_tmpdir();
  strata_store_config c;
  config_with_log(&c, NULL, 0);
  if (limit != 0)
    c.memory_limit = limit;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p[8];
  assert_true(regions <= 8);
  for (uint64_t r = 0; r < regions; r++) {
    char name[32];
    snprintf(name, sizeof name, "m%" PRIu64, r);
    assert_strata_ok(
        strata_proto_create(s, r + 1, name, strlen(name), NULL, &p[r]));
  }
  assert_strata_ok(strata_store_stats_get(s, st));
  *empty = st->heap_bytes;
  char data[100];
  for (uint64_t i = 0; i < puts; i++) {
    memset(data, 'a' + (int)(i % 26), sizeof data);
    int rc =
        strata_proto_put(p[i % regions], i, NULL, 0, NULL, data, sizeof data);
    if (rc != 0)
      fail_msg("limit %" PRIu64 ": put %" PRIu64 ": %s (%s)", limit, i,
               strata_err_name(rc), strata_last_error_detail());
  }
  assert_strata_ok(strata_store_stats_get(s, st));
  uint64_t grown = st->heap_bytes - *empty;
  /* Everything is readable, whether it was evicted to a file or not. */
  for (uint64_t i = 0; i < puts; i += 97) {
    memset(data, 'a' + (int)(i % 26), sizeof data);
    char want[101];
    memcpy(want, data, sizeof data);
    want[100] = '\0';
    test_expect_layer(s, i % regions + 1, i, want);
  }
  /* Once everything is crystallized the heap is back where it started:
   * no reserved chunk is counted, nothing the protos held stays. */
  strata_store_stats before = *st;
  for (uint64_t r = 0; r < regions; r++)
    assert_strata_ok(strata_crystallize(s, r + 1));
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_strata_ok(strata_store_stats_get(s, st));
  assert_int_equal(st->heap_bytes, *empty);
  assert_int_equal(st->puts_refused, 0);
  st->heap_bytes = before.heap_bytes; /* the figures after the puts */
  st->evictions = before.evictions;
  strata_store_close(s);
  return grown;
}

/* Small memory limits with many small puts. The thresholds count the pool's
 * blocks in use, not its reserved chunks (about 2 MiB after the first
 * put): a 2 MiB limit refused every put, and with 8 MiB each put past the
 * eviction threshold crystallized a proto (3,976 rewrites and fsyncs for
 * 5,000 puts of 100 bytes). Eviction is now hysteretic: a round takes the
 * heap below warn_pct, so a new round needs the heap to grow by
 * (evict_pct - warn_pct) of the limit, and a round crystallizes each of
 * the `regions` protos at most once. The puts grow the heap by `grown`
 * bytes in all (measured without a limit), so there are at most
 * regions * (grown / gap + 1) evictions. */
static void test_memory_small_limits(void **state) {
  (void)state;
  const uint64_t regions = 4, puts = 5000;
  strata_store_stats st;
  uint64_t empty;
  uint64_t grown = put_many(0, regions, puts, &st, &empty);
  assert_int_equal(st.evictions, 0);
  assert_true(grown >= puts * 100); /* at least the content */
  const uint64_t limits[] = {8u << 20, 2u << 20, 1u << 20, 512u << 10};
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    uint64_t limit = limits[i];
    /* The store's defaults: warn 75 %, evict 85 %, refuse 95 %. */
    uint64_t warn = limit / 100 * 75, evict = limit / 100 * 85;
    uint64_t refuse = limit / 100 * 95, gap = evict - warn;
    uint64_t bound = regions * (grown / gap + 1);
    put_many(limit, regions, puts, &st, &empty);
    print_message("limit %" PRIu64 ": %" PRIu64 " evictions (bound %" PRIu64
                  "), heap %" PRIu64 " after the puts\n",
                  limit, st.evictions, bound, st.heap_bytes);
    assert_true(st.evictions <= bound);
    assert_true(st.heap_bytes < refuse);
    /* Where the puts passed the eviction threshold, eviction ran: a run
     * without an eviction ends below it (the heap only grows then). The
     * heap the puts take depends on the limit (the arena's chunks are
     * capped at 1/32 of it), so `grown`, measured without a limit, is only
     * an upper bound. */
    if (st.evictions == 0)
      assert_true(st.heap_bytes < evict);
    if (empty + grown < evict)
      assert_int_equal(st.evictions, 0);
  }
}

/* The refusal threshold is never passed: with a snapshot pinning every
 * version (eviction frees nothing), puts of small layers and of layers
 * too large for the proto's arena go on until one is refused, and after
 * every accepted put the heap is at or below refuse_pct of the limit; the
 * refused put names the heap and what it would have added, whose sum
 * passes the threshold. A put used to be checked by its layer's bytes,
 * while the heap grows by whole arena chunks (up to 1 MiB) or pool
 * blocks: it passed the threshold by up to that much. */
static void test_memory_refuse_exact(void **state) {
  (void)state;
  static const uint64_t limits[] = {
      1u << 20,           3u << 20, (5u << 20) + 12345, (3u << 20) / 2,
      (5u << 20) / 2 + 7, 6u << 20, 9u << 20,           12u << 20};
  static char big[20000]; /* above the arena's inline content limit */
  memset(big, 'b', sizeof big);
  for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
    const char *dir = test_tmpdir();
    strata_store_config c;
    config_with_log(&c, NULL, 0);
    c.memory_limit = limits[k];
    uint64_t refuse =
        limits[k] / 100 * c.refuse_pct + limits[k] % 100 * c.refuse_pct / 100;
    strata_store *s = NULL;
    assert_strata_ok(strata_store_open(dir, &c, &s));
    strata_proto *p = NULL;
    assert_strata_ok(strata_proto_create(s, 1, "r", 1, NULL, &p));
    strata_txn pin;
    assert_strata_ok(strata_read_begin(s, &pin));
    char data[100];
    memset(data, 'r', sizeof data);
    int rc = 0;
    uint64_t i = 0, heap = 0;
    for (; rc == 0 && i < 100000; i++) {
      rc = i % 50 == 49
               ? strata_proto_put(p, i, NULL, 0, NULL, big, sizeof big)
               : strata_proto_put(p, i, NULL, 0, NULL, data, sizeof data);
      strata_store_stats st;
      assert_strata_ok(strata_store_stats_get(s, &st));
      if (st.heap_bytes > refuse)
        fail_msg("limit %" PRIu64 ": put %" PRIu64 " %s: heap %" PRIu64
                 " passed the refusal threshold %" PRIu64,
                 limits[k], i, rc == 0 ? "accepted" : "refused", st.heap_bytes,
                 refuse);
      if (rc == 0)
        heap = st.heap_bytes;
    }
    assert_int_equal(rc, STRATA_E_LIMIT);
    unsigned long long h = 0, add = 0;
    const char *d = strstr(strata_last_error_detail(), "memory use ");
    assert_non_null(d);
    assert_int_equal(sscanf(d, "memory use %llu + %llu bytes", &h, &add), 2);
    /* The refusal came after an eviction round (which, pinned, freed
     * nothing): the heap it names is at most the threshold. */
    assert_true(heap <= refuse && h <= refuse && h + add > refuse);
    strata_read_end(&pin);
    strata_store_close(s);
  }
}

/* A put that would pass refuse_pct from below evict_pct (here a large
 * layer, which takes a pool block of its own) gets the eviction round
 * that would have run after it first: the protos are crystallized and
 * the put succeeds; nothing is refused. */
static void test_memory_evicts_before_refusing(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store_config c;
  config_with_log(&c, NULL, 0);
  c.memory_limit = 4u << 20;
  uint64_t evict = c.memory_limit / 100 * c.evict_pct;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "r", 1, NULL, &p));
  char data[100];
  memset(data, 'e', sizeof data);
  strata_store_stats st;
  uint64_t i = 0;
  /* Up to about 80% of the limit: below evict_pct, no eviction yet. */
  do {
    assert_strata_ok(strata_proto_put(p, i++, NULL, 0, NULL, data, 100));
    assert_strata_ok(strata_store_stats_get(s, &st));
  } while (st.heap_bytes < evict - c.memory_limit / 20);
  assert_int_equal(st.evictions, 0);
  /* A fifth of the limit at once: past refuse_pct, but not once evicted. */
  size_t big = (size_t)(c.memory_limit / 5);
  char *blob = malloc(big);
  assert_non_null(blob);
  memset(blob, 'B', big);
  assert_strata_ok(strata_proto_put(p, i, NULL, 0, NULL, blob, big));
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_true(st.evictions >= 1);
  assert_int_equal(st.puts_refused, 0);
  assert_true(st.heap_bytes <= c.memory_limit / 100 * c.refuse_pct);
  char first[101];
  memset(first, 'e', 100);
  first[100] = '\0';
  test_expect_layer(s, 1, 0, first);
  strata_txn t;
  const void *d;
  uint64_t len;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_get_data(&t, 1, i, &d, &len));
  assert_int_equal(len, big);
  assert_memory_equal(d, blob, big);
  strata_read_end(&t);
  free(blob);
  strata_store_close(s);
}

/* While a snapshot holds what an eviction round freed, more rounds would
 * free nothing either: eviction waits for the snapshot instead of
 * crystallizing a proto at every put (each a rewrite and an fsync), and
 * resumes once it ends. */
static void test_memory_evict_waits_for_snapshot(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store_config c;
  config_with_log(&c, NULL, 0);
  c.memory_limit = 1u << 20;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  const uint64_t regions = 4;
  strata_proto *p[4];
  for (uint64_t r = 0; r < regions; r++) {
    char name[32];
    snprintf(name, sizeof name, "w%" PRIu64, r);
    assert_strata_ok(
        strata_proto_create(s, r + 1, name, strlen(name), NULL, &p[r]));
  }
  strata_txn pin;
  assert_strata_ok(strata_read_begin(s, &pin));
  char data[100];
  memset(data, 'w', sizeof data);
  int rc = 0;
  uint64_t i = 0;
  for (; rc == 0 && i < 20000; i++)
    rc = strata_proto_put(p[i % regions], i, NULL, 0, NULL, data, sizeof data);
  /* The pinned heap ends at the refusal threshold: the put is refused. */
  assert_int_equal(rc, STRATA_E_LIMIT);
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  /* One round (each proto at most once), then none while pinned. */
  assert_true(st.evictions >= 1 && st.evictions <= regions);
  assert_int_equal(st.puts_refused, 1);
  uint64_t evictions = st.evictions;
  strata_read_end(&pin);
  assert_strata_ok(strata_store_reclaim(s, 1));
  /* With the snapshot gone its memory is freed, and eviction resumes:
   * puts go on past the threshold without a refusal. */
  for (uint64_t n = 0; st.evictions == evictions && n < 20000; n++, i++) {
    assert_strata_ok(
        strata_proto_put(p[i % regions], i, NULL, 0, NULL, data, sizeof data));
    assert_strata_ok(strata_store_stats_get(s, &st));
  }
  assert_true(st.evictions > evictions);
  assert_int_equal(st.puts_refused, 1);
  assert_true(st.heap_bytes < c.memory_limit / 100 * 75); /* below warn */
  strata_store_close(s);
}

/* ---- readers on several threads
 * --------------------------------------------------------- */

typedef struct reader_arg {
  strata_store *s;
  int rounds;
  int bad;
} reader_arg;

static void *reader_main(void *arg) {
  reader_arg *a = arg;
  for (int i = 0; i < a->rounds; i++) {
    strata_txn t;
    if (strata_read_begin(a->s, &t) != 0) {
      a->bad++;
      continue;
    }
    strata_layer l;
    for (uint64_t id = 0; id < 16; id++)
      if (strata_get(&t, 1, id, &l) == 0 &&
          XXH3_64bits(l.data, l.size) != l.checksum)
        a->bad++;
    strata_read_end(&t);
  }
  return NULL;
}

static void test_readers_during_writes(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = open_store(dir, NULL);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "hot", 3, NULL, &p));
  enum { THREADS = 8 };
  pthread_t tid[THREADS];
  reader_arg args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    args[i] = (reader_arg){.s = s, .rounds = 2000};
    assert_int_equal(pthread_create(&tid[i], NULL, reader_main, &args[i]), 0);
  }
  char buf[128];
  for (int round = 0; round < 40; round++) {
    for (uint64_t id = 0; id < 16; id++) {
      int n = snprintf(buf, sizeof buf, "round %d layer %" PRIu64, round, id);
      assert_strata_ok(strata_proto_put(p, id, NULL, 0, NULL, buf, (size_t)n));
    }
    if (round % 10 == 9)
      assert_strata_ok(strata_crystallize(s, 1));
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(tid[i], NULL);
    assert_int_equal(args[i].bad, 0);
  }
  strata_store_close(s);
}

/* ---- conflicting files, resized files, many files --------------------- */

/* The region file the handle serves region `rid` from (its base name). */
static const char *served_file(strata_store *s, uint64_t rid, char *buf,
                               size_t len) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  uint64_t n = strata_store_region_count(&t);
  buf[0] = '\0';
  for (uint64_t i = 0; i < n; i++) {
    strata_store_region r;
    assert_strata_ok(strata_store_region_at(&t, i, &r));
    if (r.id == rid && r.path != NULL) {
      const char *slash = strrchr(r.path, '/');
      snprintf(buf, len, "%s", slash ? slash + 1 : r.path);
    }
  }
  strata_read_end(&t);
  return buf;
}

/* Two files with one region id: a handle that refreshes and a handle that
 * opens afresh (another process's view) serve the same one, the
 * canonical file (the region's name + ".region") before any other, and
 * both report the conflict naming both files. */
static void test_duplicate_id_canonical_wins(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "copy.region", 5, "five", 0, 2); /* not canonical */
  log_capture rcap;
  strata_store *reader = open_store(dir, &rcap);
  char buf[64];
  assert_string_equal(served_file(reader, 5, buf, sizeof buf), "copy.region");
  test_expect_layer(reader, 5, 0, "five:0");
  write_region(dir, "five.region", 5, "five", 100, 2); /* canonical */

  rcap.len = 0;
  rcap.text[0] = '\0';
  assert_strata_ok(strata_store_refresh(reader));
  assert_string_equal(served_file(reader, 5, buf, sizeof buf), "five.region");
  test_expect_layer(reader, 5, 100, "five:100");
  test_expect_layer(reader, 5, 0, NULL);
  assert_non_null(strstr(rcap.text, "region id already served"));
  assert_non_null(strstr(rcap.text, "file=" /* the skipped one */));
  assert_non_null(strstr(rcap.text, "copy.region"));
  assert_non_null(strstr(rcap.text, "served_by="));
  assert_non_null(strstr(rcap.text, "five.region"));

  log_capture fcap;
  strata_store *fresh = open_store(dir, &fcap);
  assert_string_equal(served_file(fresh, 5, buf, sizeof buf), "five.region");
  assert_non_null(strstr(fcap.text, "copy.region"));
  assert_non_null(strstr(fcap.text, "five.region"));
  strata_store_close(fresh);

  /* Every refresh warns again while both files are there. */
  rcap.len = 0;
  rcap.text[0] = '\0';
  assert_strata_ok(strata_store_refresh(reader));
  assert_non_null(strstr(rcap.text, "region id already served"));
  assert_string_equal(served_file(reader, 5, buf, sizeof buf), "five.region");
  strata_store_close(reader);
}

/* Without a canonical file, the smallest name wins, whichever was there
 * first; a put goes to that file, and a refreshing reader sees it. */
static void test_duplicate_id_put_reaches_reader(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "b.region", 7, "seven", 0, 2);
  strata_store *reader = open_store(dir, NULL);
  char buf[64];
  assert_string_equal(served_file(reader, 7, buf, sizeof buf), "b.region");
  write_region(dir, "a.region", 7, "seven", 10, 2);
  assert_strata_ok(strata_store_refresh(reader));
  assert_string_equal(served_file(reader, 7, buf, sizeof buf), "a.region");

  strata_store *writer = open_store(dir, NULL);
  assert_string_equal(served_file(writer, 7, buf, sizeof buf), "a.region");
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(writer, 7, &p));
  assert_strata_ok(strata_proto_put(p, 50, NULL, 0, NULL, "new", 3));
  assert_strata_ok(strata_crystallize(writer, 7));
  assert_string_equal(served_file(writer, 7, buf, sizeof buf), "a.region");
  strata_store_close(writer);

  test_expect_layer(reader, 7, 50, NULL);
  assert_strata_ok(strata_store_refresh(reader));
  test_expect_layer(reader, 7, 50, "new");
  test_expect_layer(reader, 7, 10, "seven:10");
  assert_string_equal(served_file(reader, 7, buf, sizeof buf), "a.region");
  /* b.region is untouched, still not served. */
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "b.region"), 0, &r));
  assert_int_equal(strata_region_layer_count(r), 2);
  strata_region_close(r);
  strata_store_close(reader);
}

/* A served file truncated in place: refresh withdraws it (WARN naming it)
 * instead of keeping the mapping, whose next read would raise SIGBUS. */
static void test_truncated_file_withdrawn(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  write_region(dir, "t.region", 9, "trunc", 0, 64);
  write_region(dir, "u.region", 10, "untouched", 0, 4);
  strata_store_config c;
  log_capture cap;
  config_with_log(&c, &cap, STRATA_LOG_INFO);
  /* No verifier thread reading the mapping while the test truncates it. */
  c.flags |= STRATA_STORE_VERIFY_AT_OPEN;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  test_expect_layer(s, 9, 3, "trunc:3");
  struct stat st;
  assert_int_equal(stat(test_path(dir, "t.region"), &st), 0);
  int fd = open(test_path(dir, "t.region"), O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, st.st_size / 2), 0);
  close(fd);
  assert_strata_ok(strata_store_refresh(s));
  strata_txn t;
  strata_layer l;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_err(strata_get(&t, 9, 3, &l), STRATA_E_NO_REGION);
  assert_strata_err(strata_get(&t, 9, 63, &l), STRATA_E_NO_REGION);
  strata_read_end(&t);
  test_expect_layer(s, 10, 1, "untouched:1");
  assert_non_null(strstr(cap.text, "region withdrawn: its file changed size"));
  assert_non_null(strstr(cap.text, "t.region"));
  /* The truncated file does not validate, so later refreshes skip it. */
  assert_strata_ok(strata_store_refresh(s));
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), 1);
  strata_read_end(&t);
  strata_store_close(s);
}

/* A few thousand region files: all served at open; a refresh picks up
 * added and removed ones (the scan, the refresh and the choice among
 * files are O(n log n); this checks that they are still right at a size
 * where a quadratic pass would show, without timing anything). */
static void test_many_regions(void **state) {
  (void)state;
  enum { N = 3000 };
  const char *dir = test_tmpdir();
  char file[32], name[32];
  for (unsigned i = 0; i < N; i++) {
    snprintf(file, sizeof file, "r%05u.region", i);
    snprintf(name, sizeof name, "r%05u", i);
    write_region(dir, file, 1000 + i, name, i, 1);
  }
  strata_store *s = open_store(dir, NULL);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), N);
  for (unsigned i = 0; i < N; i++) {
    strata_layer l;
    assert_strata_ok(strata_get(&t, 1000 + i, i, &l));
    char want[32];
    snprintf(want, sizeof want, "r%05u:%u", i, i);
    assert_int_equal(l.size, strlen(want));
    assert_memory_equal(l.data, want, l.size);
  }
  strata_read_end(&t);
  /* Remove every third file, add 100 new ones. */
  for (unsigned i = 0; i < N; i += 3) {
    snprintf(file, sizeof file, "r%05u.region", i);
    assert_int_equal(unlink(test_path(dir, file)), 0);
  }
  for (unsigned i = N; i < N + 100; i++) {
    snprintf(file, sizeof file, "r%05u.region", i);
    snprintf(name, sizeof name, "r%05u", i);
    write_region(dir, file, 1000 + i, name, i, 1);
  }
  assert_strata_ok(strata_store_refresh(s));
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), N - (N + 2) / 3 + 100);
  for (unsigned i = 0; i < N + 100; i++) {
    strata_layer l;
    int rc = strata_get(&t, 1000 + i, i, &l);
    if (i < N && i % 3 == 0)
      assert_int_equal(rc, STRATA_E_NO_REGION);
    else
      assert_strata_ok(rc);
  }
  strata_read_end(&t);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_serves_regions),
      cmocka_unit_test(test_get_many_path),
      cmocka_unit_test(test_open_skips_bad_files),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_config_struct_size),
      cmocka_unit_test(test_temp_file_cleanup),
      cmocka_unit_test(test_dir_permissions_reported),
      cmocka_unit_test(test_index_checksum_checked),
      cmocka_unit_test(test_snapshot_age_warning),
      cmocka_unit_test(test_proto_put_and_snapshots),
      cmocka_unit_test(test_many_puts_grow_and_prune),
      cmocka_unit_test(test_crystallize_new_region),
      cmocka_unit_test(test_crystallize_replaces_region),
      cmocka_unit_test(test_crystallize_newest_versions),
      cmocka_unit_test(test_crystallize_keeps_alignment),
      cmocka_unit_test(test_discard),
      cmocka_unit_test(test_writer_lock_and_refresh),
      cmocka_unit_test(test_lock_refreshes_first),
      cmocka_unit_test(test_read_only),
      cmocka_unit_test(test_memory_thresholds),
      cmocka_unit_test(test_memory_small_limits),
      cmocka_unit_test(test_memory_evict_waits_for_snapshot),
      cmocka_unit_test(test_memory_refuse_exact),
      cmocka_unit_test(test_memory_evicts_before_refusing),
      cmocka_unit_test(test_readers_during_writes),
      cmocka_unit_test(test_duplicate_id_canonical_wins),
      cmocka_unit_test(test_duplicate_id_put_reaches_reader),
      cmocka_unit_test(test_truncated_file_withdrawn),
      cmocka_unit_test(test_many_regions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
