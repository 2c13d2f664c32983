/* Helpers shared by the fault-injection tests of the store
 * (test_store_faults.c, test_store_allocfail.c): a log capture, a model of
 * a region's expected content with the checks that compare a store or a
 * file with it, and directory snapshots. */
#ifndef STRATA_TEST_STORE_MODEL_H
#define STRATA_TEST_STORE_MODEL_H

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/types.h>
#include <xxhash.h>

#include "test_util.h"

typedef struct log_capture {
  pthread_mutex_t mu;
  char text[32768];
  size_t len;
} log_capture;

static inline void capture_log(void *ctx, int level, const char *line) {
  (void)level;
  log_capture *c = ctx;
  pthread_mutex_lock(&c->mu);
  int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%s\n", line);
  if (n > 0 && c->len + (size_t)n < sizeof c->text)
    c->len += (size_t)n;
  pthread_mutex_unlock(&c->mu);
}

static inline void capture_clear(log_capture *cap) {
  pthread_mutex_lock(&cap->mu);
  cap->len = 0;
  cap->text[0] = '\0';
  pthread_mutex_unlock(&cap->mu);
}

#define MODEL_MAX 128
/* Ids probed for absence: every id of the fixtures is below this. */
#define PROBE_IDS 160

typedef struct mlayer {
  uint64_t id;
  char name[16], meta[32]; /* "" = none */
  uint8_t *data;
  size_t size;
} mlayer;

typedef struct model {
  uint64_t rid;
  const char *rname, *rmeta;
  size_t n;
  mlayer l[MODEL_MAX]; /* ascending ids */
} model;

static inline void model_put(model *m, uint64_t id, const char *name,
                             const char *meta, const void *data, size_t size) {
  size_t i = 0;
  while (i < m->n && m->l[i].id < id)
    i++;
  if (i < m->n && m->l[i].id == id) {
    free(m->l[i].data);
  } else {
    assert_true(m->n < MODEL_MAX);
    memmove(&m->l[i + 1], &m->l[i], (m->n - i) * sizeof m->l[0]);
    m->n++;
  }
  mlayer *l = &m->l[i];
  l->id = id;
  snprintf(l->name, sizeof l->name, "%s", name ? name : "");
  snprintf(l->meta, sizeof l->meta, "%s", meta ? meta : "");
  l->data = malloc(size ? size : 1);
  assert_non_null(l->data);
  memcpy(l->data, data, size);
  l->size = size;
}

static inline void model_remove(model *m, uint64_t id) {
  for (size_t i = 0; i < m->n; i++)
    if (m->l[i].id == id) {
      free(m->l[i].data);
      memmove(&m->l[i], &m->l[i + 1], (m->n - i - 1) * sizeof m->l[0]);
      m->n--;
      return;
    }
  fail_msg("model: no layer %" PRIu64, id);
}

static inline void model_copy(model *dst, const model *src) {
  *dst = *src;
  for (size_t i = 0; i < src->n; i++) {
    dst->l[i].data = malloc(src->l[i].size ? src->l[i].size : 1);
    assert_non_null(dst->l[i].data);
    memcpy(dst->l[i].data, src->l[i].data, src->l[i].size);
  }
}

static inline void model_free(model *m) {
  for (size_t i = 0; i < m->n; i++)
    free(m->l[i].data);
  m->n = 0;
}

static inline const mlayer *model_find(const model *m, uint64_t id) {
  for (size_t i = 0; i < m->n; i++)
    if (m->l[i].id == id)
      return &m->l[i];
  return NULL;
}

static inline void expect_layer(const mlayer *want, const strata_layer *got,
                                const char *where) {
  if (got->size != want->size ||
      (want->size && memcmp(got->data, want->data, want->size) != 0))
    fail_msg("%s: layer %" PRIu64 ": content differs", where, want->id);
  assert_int_equal(got->checksum, XXH3_64bits(got->data, got->size));
  if (want->name[0]) {
    assert_non_null(got->name);
    assert_string_equal(got->name, want->name);
  } else {
    assert_null(got->name);
  }
  if (want->meta[0]) {
    assert_non_null(got->metadata);
    assert_string_equal(got->metadata, want->meta);
  } else {
    assert_true(got->metadata == NULL || got->metadata[0] == '\0');
  }
}

/* Asserts that readers of the store see exactly the model: every layer,
 * byte for byte, its name and metadata, and nothing else. */
static inline void expect_store_model(strata_store *s, const model *m,
                                      const char *where) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_store_region r = {0};
  bool found = false;
  for (uint64_t i = 0; !found && i < strata_store_region_count(&t); i++) {
    assert_strata_ok(strata_store_region_at(&t, i, &r));
    found = r.id == m->rid;
  }
  if (!found)
    fail_msg("%s: region %" PRIu64 " is not served", where, m->rid);
  assert_string_equal(r.name, m->rname);
  assert_string_equal(r.metadata, m->rmeta);
  if (r.layer_count != m->n)
    fail_msg("%s: region %" PRIu64 " has %" PRIu64 " layers, not %zu", where,
             m->rid, r.layer_count, m->n);
  for (uint64_t id = 0; id < PROBE_IDS; id++) {
    const mlayer *want = model_find(m, id);
    strata_layer l;
    int rc = strata_get(&t, m->rid, id, &l);
    if (want == NULL) {
      if (rc != STRATA_E_NOT_FOUND)
        fail_msg("%s: region %" PRIu64 ": layer %" PRIu64 " is visible", where,
                 m->rid, id);
      continue;
    }
    if (rc != 0)
      fail_msg("%s: region %" PRIu64 ": layer %" PRIu64 ": %s", where, m->rid,
               id, strata_err_name(rc));
    expect_layer(want, &l, where);
    if (want->name[0]) {
      assert_strata_ok(
          strata_get_by_name(&t, m->rid, want->name, strlen(want->name), &l));
      assert_int_equal(l.id, id);
    }
  }
  strata_read_end(&t);
}

/* Asserts that the region file at `path` holds exactly the model. */
static inline void expect_file_model(const char *path, const model *m) {
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.id, m->rid);
  assert_string_equal(info.name, m->rname);
  assert_int_equal(info.layer_count, m->n);
  for (size_t i = 0; i < m->n; i++) {
    strata_layer l;
    assert_strata_ok(strata_region_get(r, m->l[i].id, &l));
    expect_layer(&m->l[i], &l, path);
  }
  assert_strata_ok(strata_region_verify(r, NULL));
  strata_region_close(r);
}

/* ---- directories --------------------------------------------------------- */

#define SNAP_MAX 16

typedef struct dirsnap {
  size_t n;
  char name[SNAP_MAX][256];
  uint8_t *data[SNAP_MAX];
  size_t len[SNAP_MAX];
} dirsnap;

static inline void snap_dir(const char *dir, dirsnap *s) {
  s->n = 0;
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    assert_true(s->n < SNAP_MAX);
    snprintf(s->name[s->n], sizeof s->name[0], "%s", e->d_name);
    s->data[s->n] = test_read_file(test_path(dir, e->d_name), &s->len[s->n]);
    s->n++;
  }
  closedir(d);
}

static inline void snap_free(dirsnap *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->data[i]);
  s->n = 0;
}

static inline ssize_t snap_find(const dirsnap *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->name[i], name) == 0)
      return (ssize_t)i;
  return -1;
}

/* Empties and removes a test directory. */
static inline void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
      unlink(test_path(dir, e->d_name));
  closedir(d);
  rmdir(dir);
}

/* ---- the fixture both fault tests start from ---------------------------- */

static uint8_t *base_bytes; /* base.region, written once */
static size_t base_len;
static model base_model;

static inline void fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

/* Region 3 "base", written once per process: layers 10..29 named "l<id>",
 * and 30, 4000 bytes with metadata. */
static inline void make_base(void) {
  if (base_bytes != NULL)
    return;
  const char *dir = test_tmpdir();
  base_model = (model){.rid = 3, .rname = "base", .rmeta = "{\"m\":1}"};
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 3;
  o.name = "base";
  o.metadata = "{\"m\":1}";
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, "base.region"), &o, &w));
  for (uint64_t id = 10; id < 30; id++) {
    char data[32], name[16];
    snprintf(data, sizeof data, "base:%" PRIu64, id);
    snprintf(name, sizeof name, "l%" PRIu64, id);
    assert_strata_ok(
        strata_writer_add(w, id, name, strlen(name), NULL, data, strlen(data)));
    model_put(&base_model, id, name, NULL, data, strlen(data));
  }
  uint8_t blob[4000];
  fill(blob, sizeof blob, 30);
  assert_strata_ok(strata_writer_add(w, 30, NULL, 0, "{\"n\":30}", blob, 4000));
  model_put(&base_model, 30, NULL, "{\"n\":30}", blob, 4000);
  assert_strata_ok(strata_writer_commit(w));
  base_bytes = test_read_file(test_path(dir, "base.region"), &base_len);
  unlink(test_path(dir, "base.region"));
  rmdir(dir);
}

typedef struct fixture {
  char dir[4096];
  log_capture cap;
  strata_store *s;
  strata_proto *p3, *p42;
  model m3, m42; /* what the protos hold */
} fixture;

/* A put into the proto and into its model. */
static inline void put(strata_proto *p, model *m, uint64_t id, const char *name,
                       const char *meta, const void *data, size_t size) {
  assert_strata_ok(
      strata_proto_put(p, id, name, name ? strlen(name) : 0, meta, data, size));
  model_put(m, id, name, meta, data, size);
}

/* What crystallizing region 3 of the fault tests' fixture writes
 * (docs/ARCHITECTURE.md, "Deltas"). */
typedef enum fixture_kind {
  KIND_BASE,    /* a big change: a whole new base.region */
  KIND_DELTA,   /* a small change: base.1.delta over base.region */
  KIND_COMPACT, /* a big change over base.1.delta: a new base.region, then
                   base.1.delta (stale) is removed */
  KIND_MERGE,   /* a small change over a full stack base.1.delta ..
                   base.4.delta: a new base.1.delta over the base, then the
                   other three (stale) are removed */
} fixture_kind;

/* Fills proto 3 (model m3): for KIND_COMPACT first a delta holding layer
 * 11 (crystallized); for KIND_MERGE first a 64 KiB layer 31 (crystallized
 * into a new base, large against the deltas that follow) and four deltas
 * (layers 11, 31 removed, 32, 11 again: crystallized); then a replacement,
 * a remove, a name reused, an empty layer and, but for KIND_DELTA and
 * KIND_MERGE, a big layer of `big_size` bytes. */
static inline void fill_proto3(strata_store *s, const char *dir,
                               strata_proto *p3, model *m3, fixture_kind kind,
                               size_t big_size) {
  if (kind == KIND_COMPACT) {
    put(p3, m3, 11, "l11", NULL, "delta11", 7);
    assert_strata_ok(strata_crystallize(s, 3));
    assert_int_equal(access(test_path(dir, "base.1.delta"), F_OK), 0);
  }
  if (kind == KIND_MERGE) {
    static uint8_t blob[65536];
    fill(blob, sizeof blob, 31);
    put(p3, m3, 31, "l31", NULL, blob, sizeof blob);
    assert_strata_ok(strata_crystallize(s, 3));
    put(p3, m3, 11, "l11", NULL, "delta11", 7);
    assert_strata_ok(strata_crystallize(s, 3));
    assert_strata_ok(strata_proto_remove(p3, 31));
    model_remove(m3, 31);
    assert_strata_ok(strata_crystallize(s, 3));
    put(p3, m3, 32, "l32", NULL, "delta32", 7);
    assert_strata_ok(strata_crystallize(s, 3));
    put(p3, m3, 11, "l11", "{\"v\":2}", "delta11b", 8);
    assert_strata_ok(strata_crystallize(s, 3));
    assert_int_equal(access(test_path(dir, "base.4.delta"), F_OK), 0);
  }
  put(p3, m3, 12, "l12", NULL, "new12", 5);
  assert_strata_ok(strata_proto_remove(p3, 13));
  model_remove(m3, 13);
  put(p3, m3, 5, "l13", "{\"x\":5}", "five", 4);
  put(p3, m3, 0, NULL, NULL, "", 0);
  if (kind != KIND_DELTA && kind != KIND_MERGE) {
    uint8_t *big = malloc(big_size);
    assert_non_null(big);
    fill(big, big_size, 99);
    put(p3, m3, 99, "big", NULL, big, big_size);
    free(big);
  }
}

#endif /* STRATA_TEST_STORE_MODEL_H */
