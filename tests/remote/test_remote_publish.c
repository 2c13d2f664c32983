/* The publisher and the administration of a remote store against a real
 * one-node Ceph cluster (docs/REMOTE.md, "The publisher", "Garbage"): what
 * a publish writes (head, manifest, chunks, byte for byte), that nothing
 * changed makes no version, that a changed region uploads only its chunks,
 * the lock between processes, HEAD moved under a publish, a leftover
 * manifest rolled forward or removed, gc, gc --verify, describe, unlock.
 *
 * Runs under ctest's fixture remote_cluster (tests/remote/CMakeLists.txt):
 * STRATA_TEST_CEPH_CONF, STRATA_TEST_CEPH_POOL and STRATA_TEST_REMOTE_NAME
 * say where; each case uses its own remote name (NAME-CASE), so its own
 * RADOS namespace. Objects are read back with a plain librados client of
 * the test's own, not through the library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "remote/remote_internal.h"
#include "strata.h"
#include "test_util.h"
#include "writer/writer_internal.h"

#define CHUNK (1u << 20)

static const char *g_conf, *g_pool, *g_base;
static const char *g_self; /* argv[0], for the second publisher */
static rados_t g_cl;

/* ---- the test's own librados client
 * ------------------------------------------ */

static rados_ioctx_t ns_open(const char *name) {
  rados_ioctx_t io;
  assert_int_equal(rados_ioctx_create(g_cl, g_pool, &io), 0);
  rados_ioctx_set_namespace(io, name);
  return io;
}

static char *obj_get(rados_ioctx_t io, const char *obj, size_t *len) {
  uint64_t size;
  time_t mt;
  int rc = rados_stat(io, obj, &size, &mt);
  if (rc < 0)
    fail_msg("stat %s: %d", obj, rc);
  char *b = malloc(size + 1);
  assert_non_null(b);
  int n = rados_read(io, obj, b, size, 0);
  assert_int_equal(n, (int)size);
  b[size] = '\0';
  *len = size;
  return b;
}

static bool obj_exists(rados_ioctx_t io, const char *obj) {
  uint64_t size;
  time_t mt;
  return rados_stat(io, obj, &size, &mt) == 0;
}

static void xattr_get(rados_ioctx_t io, const char *obj, const char *name,
                      char *out, size_t cap) {
  int n = rados_getxattr(io, obj, name, out, cap - 1);
  if (n < 0)
    fail_msg("getxattr %s %s: %d", obj, name, n);
  out[n] = '\0';
}

/* Objects of the namespace whose names start with `prefix`. */
static size_t count_prefix(rados_ioctx_t io, const char *prefix) {
  rados_list_ctx_t it;
  assert_int_equal(rados_nobjects_list_open(io, &it), 0);
  const char *e;
  size_t n = 0;
  while (rados_nobjects_list_next(it, &e, NULL, NULL) == 0)
    n += strncmp(e, prefix, strlen(prefix)) == 0;
  rados_nobjects_list_close(it);
  return n;
}

static void manifest_name(char *out, uint64_t v) {
  snprintf(out, 64, "manifest.%020" PRIu64, v);
}

static uint64_t head_version(rados_ioctx_t io) {
  char b[32];
  xattr_get(io, "head", "strata.version", b, sizeof b);
  assert_int_equal(strlen(b), 20);
  return strtoull(b, NULL, 10);
}

/* ---- stores
 * ------------------------------------------------------------------- */

/* A region file of `layers` layers of `size` seeded bytes each. */
static void make_region(const char *dir, const char *file, uint64_t id,
                        int layers, size_t size, uint64_t seed) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = id;
  o.name = file;
  strata_writer *w = NULL;
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  assert_strata_ok(strata_writer_open(path, &o, &w));
  uint8_t *buf = malloc(size);
  assert_non_null(buf);
  for (int i = 0; i < layers; i++) {
    test_fill_seeded(buf, size, seed * 1000 + (uint64_t)i);
    assert_strata_ok(
        strata_writer_add(w, (uint64_t)i + 1, NULL, 0, NULL, buf, size));
  }
  free(buf);
  assert_strata_ok(strata_writer_commit(w));
}

static void remote_name(char *out, const char *tcase) {
  snprintf(out, 64, "%s-%s", g_base, tcase);
}

/* A publisher's store config for remote `name`. */
static void pub_config(strata_store_config *c, const char *name) {
  strata_store_config_init(c);
  c->log_level = STRATA_LOG_OFF;
  c->remote.role = STRATA_REMOTE_PUBLISHER;
  c->remote.conf = g_conf;
  c->remote.pool = g_pool;
  c->remote.name = name;
  c->remote.chunk_size = CHUNK;
}

static strata_store *open_pub(const char *dir, const char *name) {
  strata_store_config c;
  pub_config(&c, name);
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

static char *make_store(const char *tcase) {
  char tmpl[4200];
  snprintf(tmpl, sizeof tmpl, "%s/remote-pub-%s-XXXXXX", test_tmpdir(), tcase);
  char *dir = strdup(mkdtemp(tmpl));
  assert_non_null(dir);
  /* a: 2.5 chunks; b: under one chunk. */
  make_region(dir, "a.region", 1, 5, CHUNK / 2, 1);
  make_region(dir, "b.region", 2, 3, 1000, 2);
  return dir;
}

static void rm_store(char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(dir);
}

static strata_remote *admin(const char *name) {
  strata_remote_config c = {.conf = g_conf, .pool = g_pool, .name = name};
  strata_remote *r = NULL;
  assert_strata_ok(strata_remote_connect(&c, &r));
  return r;
}

/* A case's remote (NAME-WHAT), a store of two regions publishing to it,
 * and the test's client on its namespace: declares name, dir, s and io. */
#define CASE_OPEN(what)                                                        \
  char name[64];                                                               \
  remote_name(name, what);                                                     \
  char *dir = make_store(what);                                                \
  strata_store *s = open_pub(dir, name);                                       \
  rados_ioctx_t io = ns_open(name)
#define CASE_CLOSE()                                                           \
  do {                                                                         \
    rados_ioctx_destroy(io);                                                   \
    strata_store_close(s);                                                     \
    rm_store(dir);                                                             \
  } while (0)

/* Rewrites b.region (region 2) with other content and refreshes. */
static void replace_b(strata_store *s, const char *dir, int layers, size_t size,
                      uint64_t seed) {
  make_region(dir, "b.region", 2, layers, size, seed);
  assert_strata_ok(strata_store_refresh(s));
}

/* ---- checks of what a publish wrote
 * ------------------------------------------ */

/* The manifest of version v, parsed, with its checksum xattr checked. */
static json_t *manifest_get(rados_ioctx_t io, uint64_t v) {
  char obj[64], x[32], want[17];
  manifest_name(obj, v);
  size_t len;
  char *b = obj_get(io, obj, &len);
  xattr_get(io, obj, "strata.xxh3", x, sizeof x);
  snprintf(want, sizeof want, "%016" PRIx64, XXH3_64bits(b, len));
  assert_string_equal(x, want);
  json_error_t err;
  json_t *m = json_loadb(b, len, 0, &err);
  free(b);
  if (m == NULL)
    fail_msg("%s: %s", obj, err.text);
  return m;
}

/* Every region of manifest v is a file of `dir` whose bytes are its
 * chunks, each with the right xattr, and whose hash is the file's. */
static void check_version(rados_ioctx_t io, uint64_t v, const char *dir,
                          size_t nfiles) {
  json_t *m = manifest_get(io, v);
  assert_int_equal(json_integer_value(json_object_get(m, "version")), v);
  assert_int_equal(json_integer_value(json_object_get(m, "format")), 1);
  assert_int_equal(json_integer_value(json_object_get(m, "chunk_size")), CHUNK);
  json_t *regions = json_object_get(m, "regions");
  assert_int_equal(json_array_size(regions), nfiles);
  size_t i;
  json_t *r;
  const char *prev = "";
  json_array_foreach(regions, i, r) {
    const char *file = json_string_value(json_object_get(r, "file"));
    assert_true(strcmp(prev, file) < 0); /* sorted */
    prev = file;
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t flen;
    uint8_t *bytes = test_read_file(path, &flen);
    assert_int_equal(json_integer_value(json_object_get(r, "size")), flen);
    XXH128_hash_t h = XXH3_128bits(bytes, flen);
    char hash[33];
    snprintf(hash, sizeof hash, "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
    assert_string_equal(json_string_value(json_object_get(r, "hash")), hash);
    json_t *chunks = json_object_get(r, "chunks");
    assert_int_equal(json_array_size(chunks), (flen + CHUNK - 1) / CHUNK);
    for (size_t k = 0; k < json_array_size(chunks); k++) {
      char obj[128], x[32], want[17];
      snprintf(obj, sizeof obj, "chunk.%s.%08x.%06zu", hash, CHUNK, k);
      size_t clen;
      char *c = obj_get(io, obj, &clen);
      size_t off = k * CHUNK, wl = flen - off < CHUNK ? flen - off : CHUNK;
      assert_int_equal(clen, wl);
      assert_memory_equal(c, bytes + off, wl);
      snprintf(want, sizeof want, "%016" PRIx64, XXH3_64bits(c, clen));
      xattr_get(io, obj, "strata.xxh3", x, sizeof x);
      assert_string_equal(x, want);
      assert_string_equal(json_string_value(json_array_get(chunks, k)), want);
      free(c);
    }
    free(bytes);
  }
  json_decref(m);
}

static void publish_ok(strata_store *s, uint64_t want) {
  uint64_t v = 0;
  assert_strata_ok(strata_remote_publish(s, &v));
  assert_int_equal(v, want);
}

/* ---- cases
 * ----------------------------------------------------------------------- */

static void test_publish_writes_head_manifest_chunks(void **state) {
  (void)state;
  CASE_OPEN("basic");

  publish_ok(s, 1);
  assert_int_equal(head_version(io), 1);
  size_t len;
  char *body = obj_get(io, "head", &len);
  json_t *h = json_loadb(body, len, 0, NULL);
  assert_non_null(h);
  assert_int_equal(json_integer_value(json_object_get(h, "version")), 1);
  char m1[64];
  manifest_name(m1, 1);
  assert_string_equal(json_string_value(json_object_get(h, "manifest")), m1);
  json_decref(h);
  free(body);
  check_version(io, 1, dir, 2);
  assert_int_equal(count_prefix(io, "chunk."), 3 + 1);
  assert_int_equal(count_prefix(io, "manifest."), 1);

  strata_remote_stats st;
  assert_strata_ok(strata_remote_stats_get(s, &st));
  assert_int_equal(st.publishes, 1);
  assert_int_equal(st.version_served, 1);
  size_t la, lb;
  free(test_read_file(test_path(dir, "a.region"), &la));
  free(test_read_file(test_path(dir, "b.region"), &lb));
  assert_int_equal(st.bytes_uploaded, la + lb);

  /* Nothing changed: no version, nothing uploaded. */
  publish_ok(s, 1);
  assert_int_equal(head_version(io), 1);
  assert_int_equal(count_prefix(io, "manifest."), 1);
  assert_strata_ok(strata_remote_stats_get(s, &st));
  assert_int_equal(st.publishes, 1);
  assert_int_equal(st.bytes_uploaded, la + lb);

  /* b replaced: only its chunk is uploaded; a's stay as they are. */
  replace_b(s, dir, 4, 1500, 3);
  publish_ok(s, 2);
  size_t lb2;
  free(test_read_file(test_path(dir, "b.region"), &lb2));
  assert_strata_ok(strata_remote_stats_get(s, &st));
  assert_int_equal(st.publishes, 2);
  assert_int_equal(st.bytes_uploaded, la + lb + lb2);
  assert_int_equal(count_prefix(io, "chunk."), 3 + 1 + 1);
  check_version(io, 2, dir, 2);
  json_t *m = manifest_get(io, 2);
  assert_int_equal(json_integer_value(json_object_get(m, "previous")), 1);
  json_decref(m);

  /* An open proto is refused: its changes are in no file. */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, 1, &p));
  uint64_t v = 0;
  assert_int_equal(strata_remote_publish(s, &v), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), "open proto"));
  assert_strata_ok(strata_proto_discard(p));
  assert_int_equal(head_version(io), 2);

  /* A region served with a delta file is published as its stack: a
   * format 2 manifest lists the delta under its base, and only the
   * delta's bytes are uploaded (the base's chunks are there). */
  strata_region *ra;
  assert_strata_ok(strata_region_open(test_path(dir, "a.region"), 0, &ra));
  strata_region_info ai;
  assert_strata_ok(strata_region_info_get(ra, &ai));
  strata_writer_options wo;
  strata_writer_options_init(&wo);
  wo.region_id = ai.id;
  wo.name = ai.name;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, "a.1.delta"), &wo, &w));
  assert_strata_ok(
      strata__writer_set_delta(w, ai.header_checksum, ai.header_checksum, 1));
  assert_strata_ok(strata_writer_add(w, 999999, NULL, 0, NULL, "d", 1));
  assert_strata_ok(strata_writer_commit(w));
  strata_region_close(ra); /* ai.name points into it */
  assert_strata_ok(strata_store_refresh(s));
  size_t ld;
  free(test_read_file(test_path(dir, "a.1.delta"), &ld));
  publish_ok(s, 3);
  assert_strata_ok(strata_remote_stats_get(s, &st));
  assert_int_equal(st.bytes_uploaded, la + lb + lb2 + ld);
  m = manifest_get(io, 3);
  assert_int_equal(json_integer_value(json_object_get(m, "format")), 2);
  json_t *ra0 = json_array_get(json_object_get(m, "regions"), 0);
  json_t *ds = json_object_get(ra0, "deltas");
  assert_int_equal(json_array_size(ds), 1);
  json_t *d0 = json_array_get(ds, 0);
  assert_string_equal(json_string_value(json_object_get(d0, "file")),
                      "a.1.delta");
  assert_int_equal(json_integer_value(json_object_get(d0, "size")), ld);
  assert_string_equal(
      json_string_value(json_object_get(d0, "parent_checksum")),
      json_string_value(json_object_get(ra0, "header_checksum")));
  json_decref(m);
  /* The delta gone again: version 4 is format 1, and uploads nothing. */
  assert_int_equal(unlink(test_path(dir, "a.1.delta")), 0);
  assert_strata_ok(strata_store_refresh(s));
  publish_ok(s, 4);
  m = manifest_get(io, 4);
  assert_int_equal(json_integer_value(json_object_get(m, "format")), 1);
  json_decref(m);
  assert_strata_ok(strata_remote_stats_get(s, &st));
  assert_int_equal(st.bytes_uploaded, la + lb + lb2 + ld);

  CASE_CLOSE();
}

/* The child of test_second_publisher_locked: publishes and prints the
 * result code and detail. */
static int child_publish(const char *dir, const char *name) {
  strata_store_config c;
  pub_config(&c, name);
  strata_store *s = NULL;
  int rc = strata_store_open(dir, &c, &s);
  if (rc == 0)
    rc = strata_remote_publish(s, NULL);
  printf("%s\n%s\n", strata_err_name(rc), strata_last_error_detail());
  strata_store_close(s);
  return 0;
}

static void test_second_publisher_locked(void **state) {
  (void)state;
  char name[64];
  remote_name(name, "locked");
  char *dir = make_store("locked");
  /* This process holds the lock through its own connection. */
  strata_remote_config rc = {.conf = g_conf, .pool = g_pool, .name = name};
  strata__rconn *c = NULL;
  assert_strata_ok(strata__rconn_open(&rc, NULL, NULL, &c));
  strata__publock *l = NULL;
  assert_strata_ok(strata__publock_take(c, &l));

  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --publish-child '%s' '%s'", g_self, dir,
           name);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  char code[128] = "", detail[1024] = "";
  assert_non_null(fgets(code, sizeof code, f));
  assert_non_null(fgets(detail, sizeof detail, f));
  assert_int_equal(pclose(f), 0);
  assert_string_equal(code, "STRATA_E_LOCKED\n");
  char want[600];
  snprintf(want, sizeof want, "%s/%s: locked by %s", g_pool, name, c->whoami);
  if (strstr(detail, want) == NULL)
    fail_msg("detail '%s' lacks '%s'", detail, want);

  /* Once released, the other process publishes. */
  strata__publock_release(l);
  f = popen(cmd, "r");
  assert_non_null(f);
  assert_non_null(fgets(code, sizeof code, f));
  pclose(f);
  assert_string_equal(code, "OK\n");
  strata__rconn_close(c);
  rm_store(dir);
}

/* The hook's job: "bump-version" sets HEAD's version xattr by hand,
 * "bump-fence" its fence, "stop" ends the publish as a death would. */
typedef struct hook_ctx {
  const char *action;
  rados_ioctx_t io;
} hook_ctx;

static int test_hook(const char *step, void *ctx) {
  hook_ctx *h = ctx;
  if (strcmp(step, "manifest") != 0)
    return 0;
  if (strcmp(h->action, "stop") == 0)
    return 1;
  const char *x = strcmp(h->action, "bump-version") == 0 ? "strata.version"
                                                         : "strata.fence";
  char v[32];
  assert_true(rados_getxattr(h->io, "head", x, v, 20) == 20);
  v[20] = '\0';
  snprintf(v, sizeof v, "%020" PRIu64, (uint64_t)strtoull(v, NULL, 10) + 6);
  assert_int_equal(rados_setxattr(h->io, "head", x, v, 20), 0);
  return 0;
}

static void set_hook(hook_ctx *h) {
  strata__publish_test_hook = h != NULL ? test_hook : NULL;
  strata__publish_test_hook_ctx = h;
}

static void test_head_moved_conflict(void **state) {
  (void)state;
  CASE_OPEN("conflict");
  publish_ok(s, 1);
  replace_b(s, dir, 2, 300, 9);
  size_t len1;
  char *body1 = obj_get(io, "head", &len1);

  hook_ctx h = {"bump-version", io};
  set_hook(&h);
  uint64_t v = 0;
  int rc = strata_remote_publish(s, &v);
  set_hook(NULL);
  assert_int_equal(rc, STRATA_E_CONFLICT);
  char want[256];
  snprintf(want, sizeof want,
           "%s/%s: HEAD moved from version 1 to 7 while publishing; nothing "
           "was changed",
           g_pool, name);
  assert_string_equal(strata_last_error_detail(), want);
  size_t len2;
  char *body2 = obj_get(io, "head", &len2);
  assert_int_equal(len1, len2);
  assert_memory_equal(body1, body2, len1);
  free(body2);
  char m2[64];
  manifest_name(m2, 2);
  assert_false(obj_exists(io, m2));
  strata_remote_stats st;
  assert_strata_ok(strata_remote_stats_get(s, &st));
  assert_int_equal(st.publishes, 1);
  assert_int_equal(st.sync_failures, 1);
  assert_non_null(strstr(st.last_error, "HEAD moved"));
  /* Put the version back as it was. */
  assert_int_equal(
      rados_setxattr(io, "head", "strata.version", "00000000000000000001", 20),
      0);

  /* The fence moved (another publisher took the lock): its own message. */
  h.action = "bump-fence";
  set_hook(&h);
  rc = strata_remote_publish(s, &v);
  set_hook(NULL);
  assert_int_equal(rc, STRATA_E_CONFLICT);
  assert_non_null(
      strstr(strata_last_error_detail(), "the publisher lock was lost"));
  body2 = obj_get(io, "head", &len2);
  assert_memory_equal(body1, body2, len1);
  free(body2);
  assert_int_equal(head_version(io), 1);

  /* The next publish finds manifest.2 (whole) and rolls it forward. */
  publish_ok(s, 2);
  check_version(io, 2, dir, 2);
  free(body1);
  CASE_CLOSE();
}

static void test_leftover_manifest(void **state) {
  (void)state;
  CASE_OPEN("leftover");
  publish_ok(s, 1);

  /* A publish that dies after its manifest: HEAD stays at 1. */
  replace_b(s, dir, 2, 300, 10);
  hook_ctx h = {"stop", io};
  set_hook(&h);
  uint64_t v = 0;
  assert_int_equal(strata_remote_publish(s, &v), STRATA_E_CANCELED);
  set_hook(NULL);
  assert_int_equal(head_version(io), 1);
  char m2[64], m3[64];
  manifest_name(m2, 2);
  manifest_name(m3, 3);
  assert_true(obj_exists(io, m2));
  size_t len;
  char *left = obj_get(io, m2, &len);

  /* Whole: rolled forward, and then nothing else changed. */
  publish_ok(s, 2);
  assert_int_equal(head_version(io), 2);
  size_t len2;
  char *now = obj_get(io, m2, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(left, now, len);
  free(left);
  free(now);
  assert_false(obj_exists(io, m3));
  check_version(io, 2, dir, 2);

  /* Not whole (a chunk it names is gone): removed, and the version made
   * again with the chunk uploaded again. */
  replace_b(s, dir, 2, 300, 11);
  set_hook(&h);
  assert_int_equal(strata_remote_publish(s, &v), STRATA_E_CANCELED);
  set_hook(NULL);
  json_t *m = manifest_get(io, 3);
  json_t *rb = json_array_get(json_object_get(m, "regions"), 1);
  char chunk[128];
  snprintf(chunk, sizeof chunk, "chunk.%s.%08x.%06d",
           json_string_value(json_object_get(rb, "hash")), CHUNK, 0);
  json_decref(m);
  assert_int_equal(rados_remove(io, chunk), 0);
  /* And its checksum xattr is wrong, too. */
  assert_int_equal(
      rados_setxattr(io, m3, "strata.xxh3", "0000000000000000", 16), 0);
  publish_ok(s, 3);
  assert_true(obj_exists(io, chunk));
  check_version(io, 3, dir, 2); /* the xattr checked again: a new manifest */

  CASE_CLOSE();
}

/* Writes `obj` with an mtime of `age_s` seconds ago. */
static void put_aged(rados_ioctx_t io, const char *obj, const char *body,
                     time_t age_s) {
  rados_write_op_t op = rados_create_write_op();
  rados_write_op_write_full(op, body, strlen(body));
  time_t mt = time(NULL) - age_s;
  assert_int_equal(rados_write_op_operate(op, io, obj, &mt, 0), 0);
  rados_release_write_op(op);
}

/* The chunk names of version v. */
static size_t version_chunks(rados_ioctx_t io, uint64_t v, char names[][128],
                             size_t at) {
  json_t *m = manifest_get(io, v);
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(m, "regions"), i, r) {
    size_t n = json_array_size(json_object_get(r, "chunks"));
    for (size_t k = 0; k < n; k++)
      snprintf(names[at++], 128, "chunk.%s.%08x.%06zu",
               json_string_value(json_object_get(r, "hash")), CHUNK, k);
  }
  json_decref(m);
  return at;
}

static bool listed(char names[][128], size_t n, const char *obj) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], obj) == 0)
      return true;
  return false;
}

static void test_gc(void **state) {
  (void)state;
  CASE_OPEN("gc");
  for (uint64_t v = 1; v <= 4; v++) {
    replace_b(s, dir, 2, 200 + v, 20 + v);
    publish_ok(s, v);
  }
  /* Debris: an orphan chunk, a manifest above HEAD, a stale pin; and a
   * fresh pin on version 1. */
  put_aged(io, "chunk.0123456789abcdef0123456789abcdef.00100000.000000", "x",
           0);
  char m6[64];
  manifest_name(m6, 6);
  put_aged(io, m6, "{}", 0);
  put_aged(io, "pin.stale", "{\"serving\": 2, \"fetching\": null}", 2 * 3600);
  put_aged(io, "pin.fresh", "{\"serving\": 1, \"fetching\": null}", 0);

  char keep[64][128];
  size_t nk = 0;
  nk = version_chunks(io, 4, keep, nk);
  nk = version_chunks(io, 3, keep, nk);
  nk = version_chunks(io, 1, keep, nk);
  char gone[16][128];
  size_t ng = version_chunks(io, 2, gone, 0);

  strata_remote *r = admin(name);
  strata_remote_gc_result res;
  assert_strata_ok(strata_remote_gc(r, 2, 0, &res));
  char m[64];
  for (uint64_t v = 1; v <= 6; v++) {
    manifest_name(m, v);
    assert_int_equal(obj_exists(io, m), v == 1 || v == 3 || v == 4);
  }
  for (size_t i = 0; i < nk; i++)
    assert_true(obj_exists(io, keep[i]));
  for (size_t i = 0; i < ng; i++)
    assert_int_equal(obj_exists(io, gone[i]), listed(keep, nk, gone[i]));
  assert_false(
      obj_exists(io, "chunk.0123456789abcdef0123456789abcdef.00100000.000000"));
  assert_false(obj_exists(io, "pin.stale"));
  assert_true(obj_exists(io, "pin.fresh"));
  assert_true(obj_exists(io, "head"));
  /* head, manifests 1 3 4, pin.fresh, and the distinct kept chunks. */
  size_t distinct = 0;
  for (size_t i = 0; i < nk; i++)
    distinct += !listed(keep, i, keep[i]);
  assert_int_equal(res.objects_kept, 1 + 3 + 1 + distinct);
  assert_int_equal(count_prefix(io, ""), res.objects_kept);
  size_t only2 = 0;
  for (size_t i = 0; i < ng; i++)
    only2 += !listed(keep, nk, gone[i]);
  /* manifests 2 and 6, the orphan, the stale pin, version 2's own chunk. */
  assert_int_equal(res.objects_removed, 2 + 1 + 1 + only2);
  assert_int_equal(res.chunks_corrupt, 0);
  assert_int_equal(head_version(io), 4);

  /* --verify: a chunk rewritten with other bytes of the same size. */
  size_t len;
  char *c = obj_get(io, keep[0], &len);
  c[len / 2] ^= 1;
  assert_int_equal(rados_write_full(io, keep[0], c, len), 0);
  free(c);
  assert_strata_ok(strata_remote_gc(r, 2, 1, &res));
  assert_int_equal(res.chunks_corrupt, 1);
  assert_false(obj_exists(io, keep[0]));
  assert_true(obj_exists(io, keep[1]));
  /* The next push puts it back, though nothing changed. */
  publish_ok(s, 4);
  assert_true(obj_exists(io, keep[0]));
  check_version(io, 4, dir, 2);

  /* describe: HEAD, the versions kept, the pin. */
  char *json = NULL;
  assert_strata_ok(strata_remote_describe(r, 1, &json));
  json_t *d = json_loads(json, 0, NULL);
  assert_non_null(d);
  free(json);
  assert_string_equal(json_string_value(json_object_get(d, "name")), name);
  assert_int_equal(json_integer_value(
                       json_object_get(json_object_get(d, "head"), "version")),
                   4);
  assert_true(json_is_null(json_object_get(d, "lock")));
  json_t *vs = json_object_get(d, "versions");
  assert_int_equal(json_array_size(vs), 3);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(vs, 0), "version")), 1);
  json_t *files = json_object_get(json_array_get(vs, 2), "files");
  assert_int_equal(json_array_size(files), 2);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(files, 1), "id")), "2");
  json_t *pins = json_object_get(d, "pins");
  assert_int_equal(json_array_size(pins), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(pins, 0), "node")),
      "fresh");
  assert_int_equal(json_integer_value(json_object_get(d, "objects")),
                   count_prefix(io, ""));
  json_decref(d);

  strata_remote_disconnect(r);
  CASE_CLOSE();
}

static void test_unlock(void **state) {
  (void)state;
  char name[64];
  remote_name(name, "unlock");
  char *dir = make_store("unlock");
  strata_remote *r = admin(name);
  char *holder = (char *)"x";
  assert_strata_ok(strata_remote_unlock(r, &holder));
  assert_null(holder);

  strata_remote_config rc = {.conf = g_conf, .pool = g_pool, .name = name};
  strata__rconn *c = NULL;
  assert_strata_ok(strata__rconn_open(&rc, NULL, NULL, &c));
  strata__publock *l = NULL;
  assert_strata_ok(strata__publock_take(c, &l));
  strata_store *s = open_pub(dir, name);
  uint64_t v = 0;
  assert_int_equal(strata_remote_publish(s, &v), STRATA_E_LOCKED);

  char *json = NULL;
  assert_strata_ok(strata_remote_describe(r, 0, &json));
  json_t *d = json_loads(json, 0, NULL);
  free(json);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(d, "lock"), "holder")),
      c->whoami);
  json_decref(d);

  assert_strata_ok(strata_remote_unlock(r, &holder));
  assert_non_null(holder);
  assert_string_equal(holder, c->whoami);
  free(holder);
  publish_ok(s, 1);
  /* The broken holder finds out at its next check. */
  strata__publock_release(l);
  strata__rconn_close(c);
  strata_store_close(s);
  strata_remote_disconnect(r);
  rm_store(dir);
}

int main(int argc, char **argv) {
  g_conf = getenv("STRATA_TEST_CEPH_CONF");
  g_pool = getenv("STRATA_TEST_CEPH_POOL");
  g_base = getenv("STRATA_TEST_REMOTE_NAME");
  g_self = argv[0];
  if (g_conf == NULL || g_pool == NULL || g_base == NULL) {
    fprintf(stderr, "needs STRATA_TEST_CEPH_CONF, STRATA_TEST_CEPH_POOL and "
                    "STRATA_TEST_REMOTE_NAME (the ctest fixture "
                    "remote_cluster)\n");
    return 1;
  }
  if (argc == 4 && strcmp(argv[1], "--publish-child") == 0)
    return child_publish(argv[2], argv[3]);
  if (rados_create2(&g_cl, "ceph", "client.admin", 0) < 0 ||
      rados_conf_read_file(g_cl, g_conf) < 0 || rados_connect(g_cl) < 0) {
    fprintf(stderr, "%s: cannot connect\n", g_conf);
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_writes_head_manifest_chunks),
      cmocka_unit_test(test_second_publisher_locked),
      cmocka_unit_test(test_head_moved_conflict),
      cmocka_unit_test(test_leftover_manifest),
      cmocka_unit_test(test_gc),
      cmocka_unit_test(test_unlock),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  rados_shutdown(g_cl);
  return rc;
}
