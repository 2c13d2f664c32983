/* The follower (docs/REMOTE.md, "Followers") against a real Ceph cluster
 * (the ctest fixture remote_cluster): a publisher store publishes region
 * files with strata_remote_publish(), follower stores in other directories
 * fetch, verify and swap to each version. Every case uses its own remote
 * name (the test's namespace plus a suffix), so the cases share the pool
 * without seeing each other's objects. */
#include "test_util.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

/* 1 MiB, the smallest chunk size: a 2 MiB region is three chunks. */
#define CHUNK (1u << 20)
/* How long a wait for a follower to converge may take before the test
 * gives up: generous, since the machine may be loaded; never asserted as a
 * duration. */
#define CONVERGE_S 120

static const char *env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0')
    fail_msg("%s is not set: run this test through ctest (remote_cluster)",
             name);
  return v;
}

/* The case's remote name: the test's namespace plus `suffix`. */
static const char *remote_name(const char *suffix) {
  static char buf[65];
  snprintf(buf, sizeof buf, "%s.%s", env("STRATA_TEST_REMOTE_NAME"), suffix);
  return buf;
}

/* A case: its remote name and two fresh directories, the publisher's and
 * the follower's. */
typedef struct tcase {
  char name[65];
  char pd[4096], fd[4096];
} tcase;

static void case_init(tcase *t, const char *suffix) {
  snprintf(t->name, sizeof t->name, "%s", remote_name(suffix));
  snprintf(t->pd, sizeof t->pd, "%s", test_tmpdir());
  snprintf(t->fd, sizeof t->fd, "%s", test_tmpdir());
}

/* A store config with logging off and the case's remote. */
static void remote_config(strata_store_config *c, const char *name, int role,
                          unsigned flags) {
  strata_store_config_init(c);
  c->log_level = STRATA_LOG_OFF;
  c->remote.role = role;
  c->remote.flags = flags;
  c->remote.conf = env("STRATA_TEST_CEPH_CONF");
  c->remote.pool = env("STRATA_TEST_CEPH_POOL");
  c->remote.name = name;
  c->remote.chunk_size = CHUNK;
  c->remote.poll_ms = 200;
  c->remote.op_timeout_s = 30;
  c->remote.open_timeout_ms = 30000;
}

static strata_store *open_remote(const char *dir, const char *name, int role,
                                 unsigned flags) {
  strata_store_config c;
  remote_config(&c, name, role, flags);
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

/* Layer `id` of region `rid` at `version`: "v<version> r<rid> l<id>:"
 * then seeded bytes, so that every layer names the version it belongs to
 * and every version's bytes differ. */
static uint8_t *layer_bytes(unsigned version, uint64_t rid, uint64_t id,
                            size_t size) {
  uint8_t *p = malloc(size);
  assert_non_null(p);
  test_fill_seeded(p, size, version * 1000003u + rid * 1009u + id);
  char head[48];
  int n = snprintf(head, sizeof head, "v%u r%" PRIu64 " l%" PRIu64 ":", version,
                   rid, id);
  memcpy(p, head, (size_t)n < size ? (size_t)n : size);
  return p;
}

/* Writes region `rid` ("rNAME.region", named rNAME) of `layers` layers of
 * `size` bytes each, as of `version`. */
static void write_region(const char *dir, uint64_t rid, unsigned version,
                         unsigned layers, size_t size) {
  char file[64], name[32];
  snprintf(name, sizeof name, "r%" PRIu64, rid);
  snprintf(file, sizeof file, "%s.region", name);
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = rid;
  o.name = name;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, file), &o, &w));
  for (unsigned l = 1; l <= layers; l++) {
    uint8_t *p = layer_bytes(version, rid, l, size);
    assert_strata_ok(strata_writer_add(w, l, NULL, 0, NULL, p, size));
    free(p);
  }
  assert_strata_ok(strata_writer_commit(w));
}

static void remove_region(const char *dir, uint64_t rid) {
  char file[64];
  snprintf(file, sizeof file, "r%" PRIu64 ".region", rid);
  assert_int_equal(unlink(test_path(dir, file)), 0);
}

static uint64_t publish(strata_store *pub) {
  assert_strata_ok(strata_store_refresh(pub));
  uint64_t v = 0;
  assert_strata_ok(strata_remote_publish(pub, &v));
  return v;
}

/* Every region and every layer the follower serves equals the
 * publisher's, byte for byte, and neither has one the other lacks. */
static void assert_same(strata_store *pub, strata_store *fol) {
  strata_txn a, b;
  assert_strata_ok(strata_read_begin(pub, &a));
  assert_strata_ok(strata_read_begin(fol, &b));
  uint64_t n = strata_store_region_count(&a);
  assert_int_equal(strata_store_region_count(&b), n);
  for (uint64_t i = 0; i < n; i++) {
    strata_store_region ra, rb;
    assert_strata_ok(strata_store_region_at(&a, i, &ra));
    assert_strata_ok(strata_store_region_at(&b, i, &rb));
    assert_int_equal(ra.id, rb.id);
    assert_string_equal(ra.name, rb.name);
    assert_int_equal(ra.layer_count, rb.layer_count);
    strata_region_iter it;
    strata_layer la, lb;
    strata_region_iter_init(ra.file, &it);
    while (strata_region_next(&it, &la) > 0) {
      assert_strata_ok(strata_get(&b, rb.id, la.id, &lb));
      assert_int_equal(la.size, lb.size);
      assert_memory_equal(la.data, lb.data, la.size);
    }
  }
  strata_read_end(&b);
  strata_read_end(&a);
}

static void assert_no_region(strata_store *s, uint64_t rid) {
  strata_txn t;
  strata_layer l;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_get(&t, rid, 1, &l), STRATA_E_NO_REGION);
  strata_read_end(&t);
}

static void test_expect_layer_bytes(strata_store *s, uint64_t rid, uint64_t id,
                                    const uint8_t *want, size_t size) {
  strata_txn t;
  strata_layer l;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_get(&t, rid, id, &l));
  assert_int_equal(l.size, size);
  assert_memory_equal(l.data, want, size);
  strata_read_end(&t);
}

/* The state dump, parsed; with STRATA_STATE_DUMP_DIR set also written
 * there for validate_state.sh (the test remote_state_schema). */
static json_t *dump(strata_store *s) {
  static int dump_no;
  char *text = NULL;
  assert_strata_ok(strata_dump_state(s, 0, &text));
  const char *dir = getenv("STRATA_STATE_DUMP_DIR");
  if (dir != NULL && *dir) {
    char name[64];
    snprintf(name, sizeof name, "remote-dump-%02d.json", dump_no++);
    test_write_file(test_path(dir, name), text, strlen(text));
  }
  json_error_t err;
  json_t *doc = json_loads(text, 0, &err);
  if (doc == NULL)
    fail_msg("dump is not JSON: %s", err.text);
  strata_free(text);
  return doc;
}

/* The dump's "remote" and the metrics agree with the stats. */
static void assert_reported(strata_store *s, const char *name, const char *role,
                            uint64_t served) {
  json_t *doc = dump(s);
  json_t *rm = json_object_get(doc, "remote");
  assert_true(json_is_object(rm));
  assert_string_equal(json_string_value(json_object_get(rm, "name")), name);
  assert_string_equal(json_string_value(json_object_get(rm, "pool")),
                      env("STRATA_TEST_CEPH_POOL"));
  assert_string_equal(json_string_value(json_object_get(rm, "role")), role);
  assert_int_equal(json_integer_value(json_object_get(rm, "version_served")),
                   served);
  strata_remote_stats st;
  assert_strata_ok(strata_remote_stats_get(s, &st));
  json_t *le = json_object_get(rm, "last_error");
  if (st.last_error[0])
    assert_string_equal(json_string_value(le), st.last_error);
  else
    assert_true(json_is_null(le));
  assert_int_equal(json_integer_value(json_object_get(rm, "sync_failures")),
                   st.sync_failures);
  json_decref(doc);
  char *text = NULL, line[128];
  assert_strata_ok(strata_metrics_text(s, &text));
  snprintf(line, sizeof line, "\nstrata_remote_version_served %" PRIu64 "\n",
           served);
  if (strstr(text, line) == NULL)
    fail_msg("no '%s' in the metrics", line + 1);
  snprintf(line, sizeof line,
           "\nstrata_remote_sync_failures_total %" PRIu64 "\n",
           st.sync_failures);
  if (strstr(text, line) == NULL)
    fail_msg("no '%s' in the metrics", line + 1);
  strata_free(text);
}

static strata_remote_stats stats(strata_store *s) {
  strata_remote_stats st;
  assert_strata_ok(strata_remote_stats_get(s, &st));
  return st;
}

/* The follower's state file, parsed. */
static json_t *state_doc(const char *dir) {
  char path[4096 + 64];
  snprintf(path, sizeof path, "%s/.strata-remote/state", dir);
  json_error_t e;
  json_t *d = json_load_file(path, 0, &e);
  if (d == NULL)
    fail_msg("%s: %s", path, e.text);
  return d;
}

static void assert_state_serving(const char *dir, uint64_t version) {
  json_t *d = state_doc(dir);
  assert_int_equal(json_integer_value(json_object_get(d, "version")), version);
  assert_true(json_is_null(json_object_get(d, "switching_to")));
  json_decref(d);
}

static bool exists(const char *dir, const char *file) {
  struct stat st;
  return stat(test_path(dir, file), &st) == 0;
}

/* XXH3-128 of a file, as the manifest writes it (32 hex, big-endian). */
static void file_hash(const char *path, char out[33]) {
  size_t len;
  uint8_t *p = test_read_file(path, &len);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(p, len));
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
  free(p);
}

/* A librados client in the case's namespace, for what the tests do behind
 * the library's back (corrupting an object). */
static rados_ioctx_t raw_io(rados_t *cl, const char *name) {
  assert_int_equal(rados_create(cl, NULL), 0);
  assert_int_equal(rados_conf_read_file(*cl, env("STRATA_TEST_CEPH_CONF")), 0);
  assert_int_equal(rados_connect(*cl), 0);
  rados_ioctx_t io;
  assert_int_equal(rados_ioctx_create(*cl, env("STRATA_TEST_CEPH_POOL"), &io),
                   0);
  rados_ioctx_set_namespace(io, name);
  return io;
}

/* Publish, sync, and every layer equal; then a version with a replaced,
 * a new and a removed region. */
static void test_sync_versions(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "versions");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  write_region(pd, 1, 1, 3, 700 << 10); /* 2.1 MiB: three chunks */
  write_region(pd, 2, 1, 4, 1000);
  write_region(pd, 3, 1, 2, 5000);
  strata_store *pub = open_remote(pd, name, STRATA_REMOTE_PUBLISHER, 0);
  assert_int_equal(publish(pub), 1);

  strata_store *fol =
      open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  assert_same(pub, fol); /* the open synced: it had no local copy */
  strata_remote_stats st = stats(fol);
  assert_int_equal(st.version_served, 1);
  assert_int_equal(st.version_seen, 1);
  assert_true(st.bytes_fetched >= 3 * (700 << 10));
  assert_string_equal(st.last_error, "");
  assert_state_serving(fd, 1);
  assert_reported(fol, name, "follower", 1);
  assert_reported(pub, name, "publisher", 1);
  uint64_t v = 0;
  assert_strata_ok(strata_remote_sync(fol, &v)); /* nothing new */
  assert_int_equal(v, 1);

  write_region(pd, 1, 2, 3, 700 << 10); /* replaced */
  write_region(pd, 4, 2, 1, 300);       /* new */
  remove_region(pd, 3);                 /* removed */
  assert_int_equal(publish(pub), 2);
  uint64_t fetched = stats(fol).bytes_fetched;
  assert_strata_ok(strata_remote_sync(fol, &v));
  assert_int_equal(v, 2);
  assert_same(pub, fol);
  assert_no_region(fol, 3);
  assert_false(exists(fd, "r3.region"));
  assert_true(exists(fd, "r4.region"));
  st = stats(fol);
  assert_int_equal(st.version_served, 2);
  assert_true(st.syncs >= 2);
  /* r2 was unchanged and reused: only r1 and r4 came over. */
  assert_true(st.bytes_fetched - fetched < 3 * (700 << 10) + (64 << 10));
  assert_state_serving(fd, 2);
  assert_reported(fol, name, "follower", 2);

  strata_store_close(fol);
  /* A restart from "serving 2" serves version 2 at once. */
  fol = open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  assert_int_equal(stats(fol).version_served, 2);
  assert_same(pub, fol);
  assert_reported(fol, name, "follower", 2);
  strata_store_close(fol);
  strata_store_close(pub);
}

/* A chunk rewritten in the cluster: the sync fails after K fetches naming
 * the chunk, and the follower keeps serving what it served. */
static void test_corrupt_chunk(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "corrupt");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  write_region(pd, 1, 1, 2, 4000);
  strata_store *pub = open_remote(pd, name, STRATA_REMOTE_PUBLISHER, 0);
  assert_int_equal(publish(pub), 1);
  strata_store *fol =
      open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);

  write_region(pd, 2, 2, 3, 600 << 10); /* two chunks */
  assert_int_equal(publish(pub), 2);
  char hash[33], obj[128];
  file_hash(test_path(pd, "r2.region"), hash);
  snprintf(obj, sizeof obj, "chunk.%s.%08x.%06u", hash, CHUNK, 1u);
  rados_t cl;
  rados_ioctx_t io = raw_io(&cl, name);
  /* The chunk's own bytes with one bit flipped: same size, other bytes. */
  size_t flen;
  uint8_t *file = test_read_file(test_path(pd, "r2.region"), &flen);
  file[CHUNK + 1000] ^= 1;
  assert_int_equal(
      rados_write_full(io, obj, (const char *)file + CHUNK, flen - CHUNK), 0);
  file[CHUNK + 1000] ^= 1;

  assert_strata_err(strata_remote_sync(fol, NULL), STRATA_E_CHECKSUM);
  const char *d = strata_last_error_detail();
  if (strstr(d, obj) == NULL || strstr(d, "r2.region") == NULL ||
      strstr(d, "after 3 fetches; still serving version 1") == NULL ||
      strstr(d, "checksum mismatch") == NULL || strstr(d, "version 2") == NULL)
    fail_msg("detail: %s", d);
  strata_remote_stats st = stats(fol);
  assert_int_equal(st.version_served, 1);
  assert_int_equal(st.version_seen, 2);
  assert_true(st.sync_failures >= 1);
  assert_non_null(strstr(st.last_error, obj));
  assert_no_region(fol, 2); /* still version 1 */
  uint8_t *want = layer_bytes(1, 1, 1, 4000);
  test_expect_layer_bytes(fol, 1, 1, want, 4000);
  free(want);
  assert_false(exists(fd, "r2.region"));
  assert_state_serving(fd, 1);
  assert_reported(fol, name, "follower", 1);

  /* The chunk put right (what `gc --verify` and the next push do): the
   * next sync moves on. */
  assert_int_equal(
      rados_write_full(io, obj, (const char *)file + CHUNK, flen - CHUNK), 0);
  free(file);
  uint64_t v = 0;
  assert_strata_ok(strata_remote_sync(fol, &v));
  assert_int_equal(v, 2);
  assert_same(pub, fol);
  assert_string_equal(stats(fol).last_error, "");
  rados_ioctx_destroy(io);
  rados_shutdown(cl);
  strata_store_close(fol);
  strata_store_close(pub);
}

/* A region file whose bytes are what the manifest says but whose layer
 * content does not match its checksum (the publisher checks structure,
 * not content): every chunk and the file hash pass, the full verify does
 * not, and the file is never served. */
static void test_bad_layer_never_served(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "badlayer");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  char scratch[4096];
  snprintf(scratch, sizeof scratch, "%s", test_tmpdir());
  write_region(pd, 1, 1, 1, 100);
  strata_store *pub = open_remote(pd, name, STRATA_REMOTE_PUBLISHER, 0);
  assert_int_equal(publish(pub), 1);
  strata_store *fol =
      open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);

  write_region(scratch, 2, 2, 2, 5000);
  size_t len;
  uint8_t *p = test_read_file(test_path(scratch, "r2.region"), &len);
  uint8_t *at = memmem(p, len, "v2 r2 l2:", 9);
  assert_non_null(at);
  at[100] ^= 0x40; /* inside layer 2's content */
  test_write_file(test_path(pd, "r2.region"), p, len);
  free(p);
  assert_int_equal(publish(pub), 2);

  assert_strata_err(strata_remote_sync(fol, NULL), STRATA_E_CHECKSUM);
  const char *d = strata_last_error_detail();
  if (strstr(d, "r2.region") == NULL || strstr(d, "verify") == NULL ||
      strstr(d, "layer 2") == NULL ||
      strstr(d, "after 3 fetches; still serving version 1") == NULL)
    fail_msg("detail: %s", d);
  assert_no_region(fol, 2);
  assert_false(exists(fd, "r2.region"));
  assert_int_equal(stats(fol).version_served, 1);
  strata_store_close(fol);
  strata_store_close(pub);
}

/* Log lines of one level and up, kept for a test to search. */
typedef struct logbuf {
  pthread_mutex_t mu;
  char text[16384];
  size_t len;
} logbuf;

static void keep_line(void *ctx, int level, const char *line) {
  logbuf *b = ctx;
  if (level < STRATA_LOG_WARN)
    return;
  pthread_mutex_lock(&b->mu);
  int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", line);
  if (n > 0 && (size_t)n < sizeof b->text - b->len)
    b->len += (size_t)n;
  pthread_mutex_unlock(&b->mu);
}

/* A chunk of the version HEAD names is gone (gc took a version nobody
 * pinned): the sync starts again from HEAD once (WARN), finds the same
 * version, and fails with -ENOENT naming the chunk; the follower keeps
 * serving what it served. */
static void test_vanished_chunk(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "vanished");
  write_region(t.pd, 1, 1, 1, 100);
  strata_store *pub = open_remote(t.pd, t.name, STRATA_REMOTE_PUBLISHER, 0);
  assert_int_equal(publish(pub), 1);
  logbuf lb = {.mu = PTHREAD_MUTEX_INITIALIZER};
  strata_store_config c;
  remote_config(&c, t.name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  c.log_level = STRATA_LOG_WARN;
  c.log_fn = keep_line;
  c.log_ctx = &lb;
  strata_store *fol = NULL;
  assert_strata_ok(strata_store_open(t.fd, &c, &fol));

  write_region(t.pd, 2, 2, 1, 100);
  assert_int_equal(publish(pub), 2);
  char hash[33], obj[128];
  file_hash(test_path(t.pd, "r2.region"), hash);
  snprintf(obj, sizeof obj, "chunk.%s.%08x.%06u", hash, CHUNK, 0u);
  rados_t cl;
  rados_ioctx_t io = raw_io(&cl, t.name);
  assert_int_equal(rados_remove(io, obj), 0);

  assert_strata_err(strata_remote_sync(fol, NULL), -ENOENT);
  if (strstr(strata_last_error_detail(), obj) == NULL)
    fail_msg("detail: %s", strata_last_error_detail());
  assert_int_equal(stats(fol).version_served, 1);
  assert_no_region(fol, 2);
  pthread_mutex_lock(&lb.mu);
  /* One restart from HEAD, not a loop. */
  const char *w = strstr(lb.text, "starting again from HEAD");
  assert_non_null(w);
  assert_null(strstr(w + 1, "starting again from HEAD"));
  pthread_mutex_unlock(&lb.mu);
  rados_ioctx_destroy(io);
  rados_shutdown(cl);
  strata_store_close(fol);
  strata_store_close(pub);
}

/* Writes region `rid` as write_region() does, but with one bit of layer
 * 1's content flipped after the checksums were made: its chunks and file
 * hash are what the manifest says, and only the full verify finds it. */
static void write_bad_region(const char *dir, uint64_t rid, unsigned version,
                             size_t size) {
  char scratch[4096], file[64], mark[48];
  snprintf(scratch, sizeof scratch, "%s", test_tmpdir());
  write_region(scratch, rid, version, 1, size);
  snprintf(file, sizeof file, "r%" PRIu64 ".region", rid);
  int n = snprintf(mark, sizeof mark, "v%u r%" PRIu64 " l1:", version, rid);
  size_t len;
  uint8_t *p = test_read_file(test_path(scratch, file), &len);
  uint8_t *at = memmem(p, len, mark, (size_t)n);
  assert_non_null(at);
  at[100] ^= 0x40;
  test_write_file(test_path(dir, file), p, len);
  free(p);
}

/* How many times `what` occurs in the log. */
static unsigned log_count(logbuf *lb, const char *what) {
  unsigned n = 0;
  pthread_mutex_lock(&lb->mu);
  for (const char *p = lb->text; (p = strstr(p, what)) != NULL; p++)
    n++;
  pthread_mutex_unlock(&lb->mu);
  return n;
}

/* One window of reads runs over the chunks of all the files a sync fetches
 * and a second thread prepares and verifies each file while the next ones
 * are read (remote_follow.c, "fetching the files of a version"). With
 * windows of one read, of three (smaller than some files, larger than
 * others) and of sixteen (all at once): several files fetched by one sync
 * come over whole; a file in the middle that fails its verify is fetched
 * again, twice, behind the others, and fails the sync naming it while the
 * version served stays whole; once put right, the next sync serves it. */
static void test_window_across_files(void **state) {
  (void)state;
  static const uint32_t windows[] = {1, 3, 16};
  for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
    tcase t;
    char suffix[32];
    snprintf(suffix, sizeof suffix, "window%" PRIu32, windows[w]);
    case_init(&t, suffix);
    write_region(t.pd, 1, 1, 3, 700 << 10); /* three chunks */
    write_region(t.pd, 2, 1, 4, 1000);      /* one */
    write_region(t.pd, 3, 1, 2, 700 << 10); /* two */
    write_region(t.pd, 5, 1, 1, 10);        /* one, mostly header */
    strata_store *pub = open_remote(t.pd, t.name, STRATA_REMOTE_PUBLISHER, 0);
    assert_int_equal(publish(pub), 1);

    logbuf lb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    strata_store_config c;
    remote_config(&c, t.name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
    c.remote.max_inflight = windows[w];
    c.log_level = STRATA_LOG_WARN;
    c.log_fn = keep_line;
    c.log_ctx = &lb;
    strata_store *fol = NULL;
    assert_strata_ok(strata_store_open(t.fd, &c, &fol));
    assert_same(pub, fol);
    assert_int_equal(stats(fol).version_served, 1);

    /* Version 2: r1 and r3 replaced, r4 (bad) between them, r6 new. */
    write_region(t.pd, 1, 2, 3, 700 << 10);
    write_region(t.pd, 3, 2, 3, 500 << 10);
    write_bad_region(t.pd, 4, 2, 600 << 10);
    write_region(t.pd, 6, 2, 2, 900 << 10);
    assert_int_equal(publish(pub), 2);
    assert_strata_err(strata_remote_sync(fol, NULL), STRATA_E_CHECKSUM);
    const char *d = strata_last_error_detail();
    if (strstr(d, "version 2: r4.region") == NULL ||
        strstr(d, "verify") == NULL ||
        strstr(d, "after 3 fetches; still serving version 1") == NULL)
      fail_msg("window %" PRIu32 ": detail: %s", windows[w], d);
    assert_int_equal(log_count(&lb, "fetching it again"), 2);
    assert_int_equal(stats(fol).version_served, 1);
    assert_state_serving(t.fd, 1);
    assert_no_region(fol, 4);
    assert_no_region(fol, 6);
    assert_false(exists(t.fd, "r4.region"));
    assert_false(exists(t.fd, "r6.region"));
    uint8_t *want = layer_bytes(1, 1, 3, 700 << 10); /* r1 still version 1 */
    test_expect_layer_bytes(fol, 1, 3, want, 700 << 10);
    free(want);

    write_region(t.pd, 4, 2, 1, 600 << 10); /* put right */
    assert_int_equal(publish(pub), 3);
    uint64_t v = 0;
    assert_strata_ok(strata_remote_sync(fol, &v));
    assert_int_equal(v, 3);
    assert_same(pub, fol);
    assert_state_serving(t.fd, 3);
    strata_store_close(fol);
    strata_store_close(pub);
  }
}

/* A follower that cannot sync at open (HEAD unreadable) and has no whole
 * local copy fails to open, within open_timeout_ms, naming the store and
 * the remote; with a state left between versions it says so. */
static void test_open_without_copy_fails(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "nohead");
  rados_t cl;
  rados_ioctx_t io = raw_io(&cl, t.name);
  static const char junk[] = "not a HEAD";
  assert_int_equal(rados_write_full(io, "head", junk, sizeof junk - 1), 0);
  strata_store_config c;
  remote_config(&c, t.name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  c.remote.open_timeout_ms = 300;
  strata_store *s = NULL;
  char label[160];
  snprintf(label, sizeof label, "%s/%s", c.remote.pool, t.name);
  int rc = strata_store_open(t.fd, &c, &s);
  assert_true(rc < 0);
  assert_null(s);
  const char *d = strata_last_error_detail();
  if (strstr(d, t.fd) == NULL || strstr(d, label) == NULL ||
      strstr(d, "no whole local copy") == NULL)
    fail_msg("detail: %s", d);

  char path[4096 + 64];
  snprintf(path, sizeof path, "%s/.strata-remote", t.fd);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/.strata-remote/state", t.fd);
  char text[512];
  snprintf(text, sizeof text,
           "{\"format\": 1, \"remote\": \"%s\", \"version\": 4, "
           "\"switching_to\": 5, \"files\": {}}",
           label);
  test_write_file(path, text, strlen(text));
  assert_true(strata_store_open(t.fd, &c, &s) < 0);
  d = strata_last_error_detail();
  if (strstr(d, "between versions 4 and 5") == NULL || strstr(d, label) == NULL)
    fail_msg("detail: %s", d);
  rados_ioctx_destroy(io);
  rados_shutdown(cl);
}

/* waits until the follower serves `version` (a generous deadline, never a
 * timing assertion). */
static void await_version(strata_store *fol, uint64_t version) {
  time_t end = time(NULL) + CONVERGE_S;
  while (stats(fol).version_served != version) {
    if (time(NULL) > end)
      fail_msg("the follower did not reach version %" PRIu64 " (serves %" PRIu64
               ", last error: %s)",
               version, stats(fol).version_served, stats(fol).last_error);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
}

/* No watch: the thread's polling alone brings the follower along. */
static void test_thread_polls(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "poll");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  write_region(pd, 1, 1, 2, 100);
  strata_store *pub =
      open_remote(pd, name, STRATA_REMOTE_PUBLISHER, STRATA_REMOTE_NO_NOTIFY);
  assert_int_equal(publish(pub), 1);
  strata_store *fol =
      open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_WATCH);
  for (unsigned v = 2; v <= 3; v++) {
    write_region(pd, 1, v, 2, 100);
    assert_int_equal(publish(pub), v);
    await_version(fol, v);
    assert_same(pub, fol);
  }
  strata_store_close(fol);
  strata_store_close(pub);
}

/* A follower killed between "switching to M" and "serving M" (its state
 * file says so) finishes the swap when it opens. */
static void test_restart_switching(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "switching");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  write_region(pd, 1, 1, 2, 3000);
  write_region(pd, 2, 1, 2, 3000);
  strata_store *pub = open_remote(pd, name, STRATA_REMOTE_PUBLISHER, 0);
  assert_int_equal(publish(pub), 1);
  strata_store *fol =
      open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  strata_store_close(fol);

  write_region(pd, 2, 2, 2, 3000);
  write_region(pd, 3, 2, 1, 3000);
  assert_int_equal(publish(pub), 2);
  /* What step 1 of the swap writes; then, as if killed during step 2, one
   * of version 2's files is in place (r3) and r2 is still version 1's. */
  json_t *files = json_object();
  const char *names[] = {"r1.region", "r2.region", "r3.region"};
  for (int i = 0; i < 3; i++) {
    char h[33];
    file_hash(test_path(pd, names[i]), h);
    json_object_set_new(files, names[i], json_string(h));
  }
  size_t len;
  uint8_t *r3 = test_read_file(test_path(pd, "r3.region"), &len);
  test_write_file(test_path(fd, "r3.region"), r3, len);
  free(r3);
  json_t *doc = json_pack("{s:i, s:s++, s:i, s:i, s:o}", "format", 1, "remote",
                          env("STRATA_TEST_CEPH_POOL"), "/", name, "version", 1,
                          "switching_to", 2, "files", files);
  char path[4096 + 64];
  snprintf(path, sizeof path, "%s/.strata-remote/state", fd);
  assert_int_equal(json_dump_file(doc, path, 0), 0);
  json_decref(doc);

  fol = open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  assert_int_equal(stats(fol).version_served, 2);
  assert_same(pub, fol);
  assert_state_serving(fd, 2);
  strata_store_close(fol);
  strata_store_close(pub);
}

/* ---- stacks: a region's base and delta files ---------------------------- */

/* One crystallization of region 1 on the publisher: layer `id` becomes
 * `text` (a delta file over the stack), or, with text NULL, nothing
 * changes and the stack is compacted into one base. */
static void pub_change(strata_store *pub, uint64_t id, const char *text) {
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(pub, 1, &p));
  if (text != NULL)
    assert_strata_ok(
        strata_proto_put(p, id, NULL, 0, NULL, text, strlen(text)));
  assert_strata_ok(strata_crystallize(pub, 1));
  assert_strata_ok(strata_proto_discard(p));
}

/* Region 1's layers 1..4 read the same through both stores (the same
 * bytes, or absent in both). */
static void assert_same_stack(strata_store *pub, strata_store *fol) {
  strata_txn a, b;
  assert_strata_ok(strata_read_begin(pub, &a));
  assert_strata_ok(strata_read_begin(fol, &b));
  for (uint64_t id = 1; id <= 4; id++) {
    strata_layer la, lb;
    int ra = strata_get(&a, 1, id, &la), rb = strata_get(&b, 1, id, &lb);
    assert_int_equal(ra, rb);
    if (ra == 0) {
      assert_int_equal(la.size, lb.size);
      assert_memory_equal(la.data, lb.data, la.size);
    }
  }
  strata_read_end(&b);
  strata_read_end(&a);
}

/* Reads object `obj` whole (at most 1 MiB) into a malloc'd string. */
static char *obj_read(rados_ioctx_t io, const char *obj) {
  char *buf = calloc(1, 1u << 20);
  assert_non_null(buf);
  int n = rados_read(io, obj, buf, (1u << 20) - 1, 0);
  assert_true(n > 0);
  buf[n] = '\0';
  return buf;
}

/* Makes `doc` version `v` behind the library's back: manifest.V with its
 * xattr, and HEAD's body and version xattr (the fence is left alone). */
static void put_version(rados_ioctx_t io, json_t *doc, uint64_t v) {
  char obj[64], x[17], body[256], ver[21];
  snprintf(obj, sizeof obj, "manifest.%020" PRIu64, v);
  char *text = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(1));
  assert_non_null(text);
  snprintf(x, sizeof x, "%016" PRIx64,
           (uint64_t)XXH3_64bits(text, strlen(text)));
  assert_int_equal(rados_write_full(io, obj, text, strlen(text)), 0);
  assert_int_equal(rados_setxattr(io, obj, "strata.xxh3", x, 16), 0);
  free(text);
  snprintf(body, sizeof body,
           "{\"format\": 1, \"version\": %" PRIu64 ", \"manifest\": \"%s\", "
           "\"manifest_xxh3\": \"%s\", \"publisher\": \"test\"}",
           v, obj, x);
  snprintf(ver, sizeof ver, "%020" PRIu64, v);
  assert_int_equal(rados_write_full(io, "head", body, strlen(body)), 0);
  assert_int_equal(rados_setxattr(io, "head", "strata.version", ver, 20), 0);
}

/* A region served as a stack (docs/REMOTE.md, "Manifests", format 2): the
 * follower holds and serves the same base and delta files, a restart from
 * its state serves the stack again, a new delta fetches only itself, and
 * a compaction converges it to one base with its delta files unlinked. A
 * manifest whose delta is bound elsewhere than it says (consistent in
 * itself, each file's own checksums true) fails the sync naming the delta
 * and its binding, and the follower keeps serving its stack. */
static void test_stack_versions(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "stack");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  write_region(pd, 1, 1, 3, 100 << 10);
  strata_store *pub = open_remote(pd, name, STRATA_REMOTE_PUBLISHER, 0);
  pub_change(pub, 2, "delta one");
  assert_true(exists(pd, "r1.1.delta"));
  assert_int_equal(publish(pub), 1);
  strata_store *fol =
      open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  assert_true(exists(fd, "r1.region") && exists(fd, "r1.1.delta"));
  assert_same_stack(pub, fol);
  strata_store_close(fol);
  /* A restart from "serving 1" serves the stack. */
  fol = open_remote(fd, name, STRATA_REMOTE_FOLLOWER, STRATA_REMOTE_NO_THREAD);
  assert_int_equal(stats(fol).version_served, 1);
  assert_same_stack(pub, fol);

  /* A second delta: only its bytes come over. */
  pub_change(pub, 4, "delta two, a new layer");
  size_t d2;
  free(test_read_file(test_path(pd, "r1.2.delta"), &d2));
  assert_int_equal(publish(pub), 2);
  uint64_t before = stats(fol).bytes_fetched, v = 0;
  assert_strata_ok(strata_remote_sync(fol, &v));
  assert_int_equal(v, 2);
  assert_int_equal(stats(fol).bytes_fetched - before, d2);
  assert_true(exists(fd, "r1.2.delta"));
  assert_same_stack(pub, fol);

  /* Version 3 made by hand from version 2 without r1.1.delta: r1.2.delta
   * is listed over the base, which its header says it is not. */
  rados_t cl;
  rados_ioctx_t io = raw_io(&cl, name);
  char *m2 = obj_read(io, "manifest.00000000000000000002");
  json_t *doc = json_loads(m2, 0, NULL);
  free(m2);
  assert_non_null(doc);
  json_t *r1 = json_array_get(json_object_get(doc, "regions"), 0);
  json_t *ds = json_object_get(r1, "deltas");
  assert_int_equal(json_array_remove(ds, 0), 0);
  json_object_set(json_array_get(ds, 0), "parent_checksum",
                  json_object_get(r1, "header_checksum"));
  json_object_set_new(doc, "version", json_integer(3));
  json_object_set_new(doc, "previous", json_integer(2));
  put_version(io, doc, 3);
  json_decref(doc);
  assert_int_equal(strata_remote_sync(fol, &v), STRATA_E_CORRUPT);
  const char *d = strata_last_error_detail();
  if (strstr(d, "version 3: r1.2.delta (here already)") == NULL ||
      strstr(d, "delta binding: depth 2") == NULL ||
      strstr(d, "still serving version 2") == NULL)
    fail_msg("detail \"%s\" does not name the delta and its binding", d);
  assert_int_equal(stats(fol).version_served, 2);
  assert_same_stack(pub, fol);
  assert_true(exists(fd, "r1.1.delta"));
  rados_ioctx_destroy(io);
  rados_shutdown(cl);

  /* A compaction on the publisher: version 4 is one base, and the
   * follower's delta files go. */
  pub_change(pub, 0, NULL);
  assert_false(exists(pd, "r1.1.delta"));
  uint64_t pv = 0;
  assert_strata_ok(strata_store_refresh(pub));
  /* HEAD is at 3 (made above): the publisher goes on from there. */
  assert_strata_ok(strata_remote_publish(pub, &pv));
  assert_int_equal(pv, 4);
  assert_strata_ok(strata_remote_sync(fol, &v));
  assert_int_equal(v, 4);
  assert_same_stack(pub, fol);
  assert_false(exists(fd, "r1.1.delta"));
  assert_false(exists(fd, "r1.2.delta"));
  assert_state_serving(fd, 4);
  strata_store_close(fol);
  strata_store_close(pub);
}

/* Readers during version changes: every snapshot sees one whole version
 * (each layer names its version). */
typedef struct reader_ctx {
  strata_store *s;
  atomic_bool stop;
  atomic_ulong reads, mixed, errors;
  char first_bad[256];
} reader_ctx;

static unsigned layer_version(const strata_layer *l) {
  unsigned v = 0;
  return sscanf((const char *)l->data, "v%u ", &v) == 1 ? v : 0;
}

static void *reader(void *arg) {
  reader_ctx *c = arg;
  while (!atomic_load(&c->stop)) {
    strata_txn t;
    if (strata_read_begin(c->s, &t) != 0) {
      atomic_fetch_add(&c->errors, 1);
      continue;
    }
    unsigned seen = 0;
    bool bad = strata_store_region_count(&t) != 3;
    for (uint64_t rid = 1; rid <= 3 && !bad; rid++)
      for (uint64_t id = 1; id <= 2 && !bad; id++) {
        strata_layer l;
        unsigned v = strata_get(&t, rid, id, &l) == 0 ? layer_version(&l) : 0;
        if (seen == 0)
          seen = v;
        bad = v == 0 || v != seen;
      }
    if (bad && atomic_fetch_add(&c->mixed, 1) == 0)
      snprintf(c->first_bad, sizeof c->first_bad, "regions %" PRIu64,
               strata_store_region_count(&t));
    strata_read_end(&t);
    atomic_fetch_add(&c->reads, 1);
  }
  return NULL;
}

static void test_readers_see_whole_versions(void **state) {
  (void)state;
  tcase t;
  case_init(&t, "readers");
  const char *name = t.name, *pd = t.pd, *fd = t.fd;
  for (uint64_t rid = 1; rid <= 3; rid++)
    write_region(pd, rid, 1, 2, 200 << 10);
  strata_store *pub = open_remote(pd, name, STRATA_REMOTE_PUBLISHER, 0);
  assert_int_equal(publish(pub), 1);
  strata_store *fol = open_remote(fd, name, STRATA_REMOTE_FOLLOWER, 0);
  reader_ctx c = {.s = fol};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, reader, &c), 0);
  for (unsigned v = 2; v <= 6; v++) {
    for (uint64_t rid = 1; rid <= 3; rid++)
      write_region(pd, rid, v, 2, 200 << 10);
    assert_int_equal(publish(pub), v);
    await_version(fol, v);
  }
  atomic_store(&c.stop, true);
  pthread_join(th, NULL);
  assert_same(pub, fol);
  if (atomic_load(&c.mixed) != 0)
    fail_msg("%lu of %lu snapshots saw a mixture (%s)", atomic_load(&c.mixed),
             atomic_load(&c.reads), c.first_bad);
  assert_int_equal(atomic_load(&c.errors), 0);
  assert_true(atomic_load(&c.reads) > 0);
  strata_store_close(fol);
  strata_store_close(pub);
}

int main(void) {
  /* remote_state_schema runs one case (a cmocka glob). */
  const char *filter = getenv("STRATA_TEST_FILTER");
  if (filter != NULL && *filter)
    cmocka_set_test_filter(filter);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sync_versions),
      cmocka_unit_test(test_corrupt_chunk),
      cmocka_unit_test(test_bad_layer_never_served),
      cmocka_unit_test(test_vanished_chunk),
      cmocka_unit_test(test_window_across_files),
      cmocka_unit_test(test_thread_polls),
      cmocka_unit_test(test_restart_switching),
      cmocka_unit_test(test_stack_versions),
      cmocka_unit_test(test_open_without_copy_fails),
      cmocka_unit_test(test_readers_see_whole_versions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
