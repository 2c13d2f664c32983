/* Reads through a snapshot that see the proto's changes: iterating a
 * region's layers (strata_snapshot_iter), looking a path up by names
 * (strata_get_many_by_name), and the lean lookups (strata_get_data,
 * strata_get_data_many), checked against a model of the region and against
 * strata_get() under random puts and removes, with snapshots held across
 * later changes, crystallization and reclamation. */
#include "store_model.h"

#define IDS 150 /* layer ids are below this (and below PROBE_IDS) */

/* Opens a writer of region `rid` "NAME" at DIR/NAME.region and starts its
 * model *m, empty. */
static strata_writer *open_writer(const char *dir, uint64_t rid,
                                  const char *name, model *m) {
  *m = (model){.rid = rid, .rname = name, .rmeta = ""};
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = rid;
  o.name = name;
  char file[64];
  snprintf(file, sizeof file, "%s.region", name);
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, file), &o, &w));
  return w;
}

/* Writes region `rid` "NAME" to DIR/NAME.region with `n` random distinct
 * ids below IDS, each named "f<id>" when the id is even, and records it in
 * *m. */
static void write_random_region(const char *dir, uint64_t rid, const char *name,
                                size_t n, uint64_t *seed, model *m) {
  strata_writer *w = open_writer(dir, rid, name, m);
  while (m->n < n) {
    uint64_t id = test_splitmix(seed) % IDS;
    if (model_find(m, id) != NULL)
      continue;
    char data[48], lname[16];
    int len = snprintf(data, sizeof data, "file:%" PRIu64 ":%" PRIu64, rid, id);
    snprintf(lname, sizeof lname, "f%" PRIu64, id);
    const char *nm = id % 2 == 0 ? lname : NULL;
    assert_strata_ok(strata_writer_add(w, id, nm, nm ? strlen(nm) : 0, NULL,
                                       data, (size_t)len));
    model_put(m, id, nm, NULL, data, (size_t)len);
  }
  assert_strata_ok(strata_writer_commit(w));
}

/* One random change to the proto and the model: a put (new id, or one of
 * the file's or the proto's replaced, sometimes empty, sometimes named) or
 * a remove of a layer the region has. */
static void random_change(strata_proto *p, model *m, uint64_t *seed,
                          uint64_t round) {
  uint64_t r = test_splitmix(seed);
  if (r % 4 == 0 && m->n > 0) {
    uint64_t id = m->l[test_splitmix(seed) % m->n].id;
    assert_strata_ok(strata_proto_remove(p, id));
    model_remove(m, id);
    return;
  }
  uint64_t id = test_splitmix(seed) % IDS;
  if (model_find(m, id) == NULL && m->n >= MODEL_MAX)
    return;
  char data[48], lname[16];
  int len = r % 7 == 0 ? 0
                       : snprintf(data, sizeof data, "put:%" PRIu64 ":%" PRIu64,
                                  round, id);
  /* A name unique to the id, so that no put collides with another layer's. */
  snprintf(lname, sizeof lname, "p%" PRIu64, id);
  const char *nm = r % 3 == 0 ? lname : NULL;
  const char *meta = r % 5 == 0 ? "{\"r\":1}" : NULL;
  assert_strata_ok(strata_proto_put(p, id, nm, nm ? strlen(nm) : 0, meta, data,
                                    (size_t)len));
  model_put(m, id, nm, meta, data, (size_t)len);
}

/* Asserts that iterating region m->rid through `t` returns exactly the
 * model's layers in id order, and that each is what strata_get() returns
 * through the same snapshot (the same pointers). The layers are returned in
 * *got (m->n of them) for the caller to check again later. */
static void expect_iter_model(const strata_txn *t, const model *m,
                              strata_layer *got, const char *where) {
  strata_snapshot_iter it;
  assert_strata_ok(strata_snapshot_iter_init(t, m->rid, &it));
  size_t k = 0;
  int rc;
  strata_layer l;
  while ((rc = strata_snapshot_next(&it, &l)) > 0) {
    if (k >= m->n)
      fail_msg("%s: layer %" PRIu64 " past the model's %zu", where, l.id, m->n);
    if (l.id != m->l[k].id)
      fail_msg("%s: layer %zu is %" PRIu64 ", the model has %" PRIu64, where, k,
               l.id, m->l[k].id);
    assert_non_null(l.data);
    expect_layer(&m->l[k], &l, where);
    strata_layer g;
    assert_strata_ok(strata_get(t, m->rid, l.id, &g));
    assert_ptr_equal(g.data, l.data);
    assert_ptr_equal(g.name, l.name);
    got[k++] = l;
  }
  assert_int_equal(rc, 0);
  if (k != m->n)
    fail_msg("%s: %zu layers, the model has %zu", where, k, m->n);
  /* Exhausted, it stays so; ending it again is harmless. */
  assert_int_equal(strata_snapshot_next(&it, &l), 0);
  strata_snapshot_iter_end(&it);
}

static void expect_still(const model *m, const strata_layer *got,
                         const char *where) {
  for (size_t i = 0; i < m->n; i++) {
    assert_int_equal(got[i].id, m->l[i].id);
    expect_layer(&m->l[i], &got[i], where);
  }
}

/* Random puts and removes over a file; snapshots taken along the way are
 * iterated again after later changes, a crystallization and reclamation:
 * each still returns its own state, and the pointers it returned earlier
 * still hold the same bytes. */
static void test_iter_matches_model(void **state) {
  (void)state;
  uint64_t seed = 0x5eed1;
  for (int trial = 0; trial < 6; trial++) {
    const char *dir = test_tmpdir();
    model m;
    write_random_region(dir, 7, "seven", 10 + (size_t)trial * 8, &seed, &m);
    strata_store *s = test_open_store_quiet(dir);
    strata_layer got_file[MODEL_MAX], got_old[MODEL_MAX], got[MODEL_MAX];
    strata_txn t0;
    assert_strata_ok(strata_read_begin(s, &t0));
    expect_iter_model(&t0, &m, got_file, "no proto");
    model m0;
    model_copy(&m0, &m);

    strata_proto *p;
    assert_strata_ok(strata_proto_open(s, 7, &p));
    for (uint64_t round = 0; round < 200; round++) {
      random_change(p, &m, &seed, round);
      if (round % 40 != 39)
        continue;
      strata_txn t;
      assert_strata_ok(strata_read_begin(s, &t));
      expect_iter_model(&t, &m, got, "proto");
      /* The same snapshot after more changes, a crystallization every
       * other time, and reclamation: unchanged. */
      model was;
      model_copy(&was, &m);
      for (int j = 0; j < 20; j++)
        random_change(p, &m, &seed, 1000 + round * 20 + (uint64_t)j);
      if (round % 80 == 79)
        assert_strata_ok(strata_crystallize(s, 7));
      assert_strata_ok(strata_store_reclaim(s, 0));
      expect_iter_model(&t, &was, got_old, "held snapshot");
      expect_still(&was, got, "pointers of the held snapshot");
      strata_read_end(&t);
      model_free(&was);
    }
    /* The first snapshot, begun before the proto existed, still sees the
     * file as it was, and its pointers still hold. */
    expect_iter_model(&t0, &m0, got_old, "first snapshot");
    expect_still(&m0, got_file, "first snapshot's pointers");
    strata_read_end(&t0);
    model_free(&m0);
    /* After everything: a fresh snapshot, and the file a crystallization
     * writes, agree with the model. */
    strata_txn t;
    assert_strata_ok(strata_read_begin(s, &t));
    expect_iter_model(&t, &m, got, "final");
    strata_read_end(&t);
    assert_strata_ok(strata_crystallize(s, 7));
    assert_strata_ok(strata_read_begin(s, &t));
    expect_iter_model(&t, &m, got, "crystallized");
    strata_read_end(&t);
    strata_store_close(s);
    model_free(&m);
  }
}

/* An iteration half done when writers change, crystallize and reclaim goes
 * on with the snapshot's state. */
static void test_iter_across_changes(void **state) {
  (void)state;
  uint64_t seed = 42;
  const char *dir = test_tmpdir();
  model m;
  write_random_region(dir, 7, "seven", 60, &seed, &m);
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p;
  assert_strata_ok(strata_proto_open(s, 7, &p));
  for (uint64_t round = 0; round < 60; round++)
    random_change(p, &m, &seed, round);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_snapshot_iter it;
  assert_strata_ok(strata_snapshot_iter_init(&t, 7, &it));
  strata_layer got[MODEL_MAX];
  size_t k = 0;
  int rc;
  while (k < m.n / 2 && (rc = strata_snapshot_next(&it, &got[k])) > 0)
    k++;
  model was;
  model_copy(&was, &m);
  for (uint64_t round = 0; round < 100; round++)
    random_change(p, &m, &seed, 500 + round);
  assert_strata_ok(strata_crystallize(s, 7));
  for (uint64_t round = 0; round < 30; round++)
    random_change(p, &m, &seed, 900 + round);
  assert_strata_ok(strata_store_reclaim(s, 0));
  while ((rc = strata_snapshot_next(&it, &got[k])) > 0) {
    assert_true(k < was.n);
    k++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(k, was.n);
  expect_still(&was, got, "iteration across changes");
  strata_read_end(&t);
  model_free(&was);
  model_free(&m);
  strata_store_close(s);
}

/* A proto without a file, an emptied region, a region that is not there,
 * an iteration stopped early, and a snapshot that ended. */
static void test_iter_edges(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p;
  assert_strata_ok(strata_proto_create(s, 5, "fresh", 5, NULL, &p));
  strata_txn t;
  strata_snapshot_iter it;
  strata_layer l;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_snapshot_iter_init(&t, 5, &it));
  assert_int_equal(strata_snapshot_next(&it, &l), 0);
  assert_strata_err(strata_snapshot_iter_init(&t, 6, &it), STRATA_E_NO_REGION);
  assert_non_null(strstr(strata_last_error_detail(), "region 6"));
  assert_int_equal(strata_snapshot_next(&it, &l), 0); /* empty after failing */
  strata_snapshot_iter_end(&it);
  strata_read_end(&t);

  assert_strata_ok(strata_proto_put(p, 9, NULL, 0, NULL, "nine", 4));
  assert_strata_ok(strata_proto_put(p, 3, "three", 5, NULL, "", 0));
  assert_strata_ok(strata_proto_put(p, 6, NULL, 0, NULL, "six", 3));
  assert_strata_ok(strata_proto_remove(p, 6));
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_snapshot_iter_init(&t, 5, &it));
  assert_int_equal(strata_snapshot_next(&it, &l), 1);
  assert_int_equal(l.id, 3);
  assert_int_equal(l.size, 0);
  assert_non_null(l.data); /* empty, but found */
  assert_string_equal(l.name, "three");
  /* Stopped early: end releases the proto's array (ASan checks it). */
  strata_snapshot_iter_end(&it);
  strata_snapshot_iter_end(&it);
  strata_snapshot_iter_end(NULL);
  assert_strata_ok(strata_snapshot_iter_init(&t, 5, &it));
  assert_int_equal(strata_snapshot_next(&it, &l), 1);
  assert_int_equal(strata_snapshot_next(&it, &l), 1);
  assert_int_equal(l.id, 9);
  assert_memory_equal(l.data, "nine", 4);
  assert_int_equal(strata_snapshot_next(&it, &l), 0);
  strata_read_end(&t);
  assert_strata_err(strata_snapshot_iter_init(&t, 5, &it), STRATA_E_INVAL);
  assert_strata_err(strata_snapshot_iter_init(NULL, 5, &it), STRATA_E_INVAL);
  assert_strata_err(strata_snapshot_iter_init(&t, 5, NULL), STRATA_E_INVAL);
  strata_store_close(s);
}

/* ---- strata_get_many_by_name -------------------------------------------- */

#define REF(r, l)                                                              \
  { (r), strlen(r), (l), strlen(l) }

/* A path of names across a file region, a proto over it and a new proto,
 * with misses of every kind, against strata_find_region() +
 * strata_get_by_name() through the same snapshot. */
static void test_get_many_by_name_model(void **state) {
  (void)state;
  uint64_t seed = 7;
  const char *dir = test_tmpdir();
  model m7, m8;
  write_random_region(dir, 7, "seven", 50, &seed, &m7);
  write_random_region(dir, 8, "eight", 50, &seed, &m8);
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p7, *p9;
  assert_strata_ok(strata_proto_open(s, 7, &p7));
  for (uint64_t round = 0; round < 80; round++)
    random_change(p7, &m7, &seed, round);
  assert_strata_ok(strata_proto_create(s, 9, "nine", 4, NULL, &p9));
  assert_strata_ok(strata_proto_put(p9, 1, "empty", 5, NULL, NULL, 0));
  assert_strata_ok(strata_proto_put(p9, 2, "two", 3, NULL, "2", 1));

  /* Every name either region could have, in a random order, with the
   * regions interleaved and in runs. */
  enum { N = 400 };
  static char names[N][16];
  strata_layer_name_ref refs[N];
  const char *regions[] = {"seven", "eight", "nine", "none"};
  for (size_t i = 0; i < N; i++) {
    uint64_t r = test_splitmix(&seed);
    const char *region = regions[(i / 7 + r) % 4];
    uint64_t id = test_splitmix(&seed) % IDS;
    snprintf(names[i], sizeof names[i], "%c%" PRIu64, r % 2 ? 'f' : 'p', id);
    if (strcmp(region, "nine") == 0)
      snprintf(names[i], sizeof names[i], "%s",
               r % 3 == 0   ? "empty"
               : r % 3 == 1 ? "two"
                            : "one");
    refs[i] = (strata_layer_name_ref)REF(region, names[i]);
  }
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer out[N];
  size_t found = strata_get_many_by_name(&t, refs, N, out);
  size_t want_found = 0;
  for (size_t i = 0; i < N; i++) {
    uint64_t rid;
    strata_layer want;
    bool hit = strata_find_region(&t, refs[i].region_name,
                                  refs[i].region_name_len, &rid) == 0 &&
               strata_get_by_name(&t, rid, refs[i].layer_name,
                                  refs[i].layer_name_len, &want) == 0;
    if (!hit) {
      if (out[i].data != NULL || out[i].size != 0 || out[i].name != NULL)
        fail_msg("ref %zu %s:%s: found, expected a miss", i,
                 refs[i].region_name, refs[i].layer_name);
      continue;
    }
    want_found++;
    if (out[i].data != want.data || out[i].id != want.id)
      fail_msg("ref %zu %s:%s: layer %" PRIu64 ", expected %" PRIu64, i,
               refs[i].region_name, refs[i].layer_name, out[i].id, want.id);
    assert_int_equal(out[i].size, want.size);
    assert_ptr_equal(out[i].name, want.name);
    /* And the model agrees with both. */
    const model *m = rid == 7 ? &m7 : rid == 8 ? &m8 : NULL;
    if (m != NULL) {
      const mlayer *ml = model_find(m, out[i].id);
      assert_non_null(ml);
      expect_layer(ml, &out[i], "get_many_by_name");
    }
  }
  assert_int_equal(found, want_found);
  assert_true(found > 20 && found < N); /* both hits and misses */

  /* Names cut from a path; NULL and NUL-holding names are misses. */
  const char path[] = "seven/p1/eight/f2/nine/empty";
  strata_layer_name_ref cut[] = {
      {path + 9, 5, path + 15, 2}, {path + 18, 4, path + 23, 5},
      {NULL, 0, "two", 3},         {"nine", 4, NULL, 0},
      {"nine\0", 5, "two", 3},     {"nine", 4, "two\0", 4},
      {"nine", 4, "two", 3},       {"nin", 3, "two", 3}};
  enum { NC = sizeof cut / sizeof cut[0] };
  strata_layer got[NC];
  size_t hits = strata_get_many_by_name(&t, cut, NC, got);
  strata_layer l;
  bool eight_f2 = strata_get_by_name(&t, 8, "f2", 2, &l) == 0;
  assert_ptr_equal(got[0].data, eight_f2 ? l.data : NULL); /* eight:f2 */
  assert_int_equal(got[1].id, 1);                          /* nine:empty */
  assert_non_null(got[1].data);
  assert_int_equal(got[1].size, 0);
  for (size_t i = 2; i < 6; i++)
    assert_null(got[i].data);
  assert_int_equal(got[6].id, 2);
  assert_memory_equal(got[6].data, "2", 1);
  assert_null(got[7].data);
  assert_int_equal(hits, 2 + (eight_f2 ? 1 : 0));
  assert_int_equal(strata_get_many_by_name(&t, cut, 0, got), 0);
  strata_read_end(&t);
  strata_store_close(s);
  model_free(&m7);
  model_free(&m8);
}

/* Writes region `rid` "NAME" with layers first .. first + n - 1, named
 * "n<id>", added in ascending order: a dense region with packed locators
 * (the writer's choice for ids added in order), the other lookup path of
 * the files. */
static void write_dense_region(const char *dir, uint64_t rid, const char *name,
                               uint64_t first, size_t n, model *m) {
  strata_writer *w = open_writer(dir, rid, name, m);
  for (uint64_t id = first; id < first + n; id++) {
    char data[48];
    int len =
        snprintf(data, sizeof data, "dense:%" PRIu64 ":%" PRIu64, rid, id);
    char lname[24];
    snprintf(lname, sizeof lname, "n%" PRIu64, id);
    assert_strata_ok(strata_writer_add(w, id, lname, strlen(lname), NULL, data,
                                       id % 9 ? (size_t)len : 0));
    model_put(m, id, lname, NULL, data, id % 9 ? (size_t)len : 0);
  }
  assert_strata_ok(strata_writer_commit(w));
}

/* The store of the get_data tests, in a new directory: region 7, a sparse
 * file of 60 random layers, and region 8, a dense file of `dense_n` layers
 * from id 20; their models in *m7 and *m8. */
static strata_store *open_data_store(uint64_t *seed, size_t dense_n, model *m7,
                                     model *m8) {
  const char *dir = test_tmpdir();
  write_random_region(dir, 7, "seven", 60, seed, m7);
  write_dense_region(dir, 8, "eight", 20, dense_n, m8);
  return test_open_store_quiet(dir);
}

/* The regions of the get_data tests: 7 (sparse file, and a proto with
 * random puts and removes), 8 (dense file, no proto), 9 (a new proto, no
 * file); 10 does not exist. */
static const uint64_t data_regions[] = {7, 8, 9, 10};
#define DATA_REGIONS 4

/* Asserts that strata_get_data() through `t` agrees with strata_get()
 * through the same snapshot for every id below PROBE_IDS of every region:
 * the same code, the same pointer and size on a hit, outputs untouched and
 * an error detail naming the region and layer on a miss. Returns the hits. */
static size_t expect_get_data_is_get(const strata_txn *t, const char *where) {
  size_t hits = 0;
  for (int r = 0; r < DATA_REGIONS; r++)
    for (uint64_t id = 0; id < PROBE_IDS; id++) {
      uint64_t rid = data_regions[r];
      strata_layer l;
      int want = strata_get(t, rid, id, &l);
      const void *p = (const void *)&hits; /* sentinels */
      uint64_t size = 12345;
      int rc = strata_get_data(t, rid, id, &p, &size);
      if (rc != want)
        fail_msg("%s: region %" PRIu64 " layer %" PRIu64 ": %s, strata_get %s",
                 where, rid, id, strata_err_name(rc), strata_err_name(want));
      if (rc == 0) {
        hits++;
        assert_ptr_equal(p, l.data);
        assert_non_null(p);
        assert_int_equal(size, l.size);
        continue;
      }
      assert_ptr_equal(p, (const void *)&hits);
      assert_int_equal(size, 12345);
      char region[32], layer[32];
      snprintf(region, sizeof region, "region %" PRIu64, rid);
      snprintf(layer, sizeof layer, "layer %" PRIu64, id);
      assert_non_null(strstr(strata_last_error_detail(), region));
      if (rc == STRATA_E_NOT_FOUND)
        assert_non_null(strstr(strata_last_error_detail(), layer));
    }
  return hits;
}

/* Asserts that strata_get_data_many() over `n` refs returns, for each, what
 * strata_get_data() returns through the same snapshot. */
static void expect_many_is_single(const strata_txn *t,
                                  const strata_layer_ref *refs, size_t n) {
  const void **data = calloc(n + 1, sizeof *data);
  uint64_t *sizes = calloc(n + 1, sizeof *sizes);
  assert_non_null(data);
  assert_non_null(sizes);
  size_t found = strata_get_data_many(t, refs, n, data, sizes);
  size_t want_found = 0;
  for (size_t i = 0; i < n; i++) {
    const void *p = NULL;
    uint64_t size = 0;
    if (strata_get_data(t, refs[i].region_id, refs[i].layer_id, &p, &size) == 0)
      want_found++;
    if (data[i] != p || sizes[i] != size)
      fail_msg("ref %zu (%" PRIu64 ", %" PRIu64 "): %p %" PRIu64
               ", strata_get_data %p %" PRIu64,
               i, refs[i].region_id, refs[i].layer_id, data[i], sizes[i], p,
               size);
  }
  assert_int_equal(found, want_found);
  free(data);
  free(sizes);
}

/* Refs across the regions, in runs and interleaved, hits and misses. */
static void random_refs(strata_layer_ref *refs, size_t n, uint64_t *seed) {
  for (size_t i = 0; i < n; i++) {
    uint64_t r = test_splitmix(seed);
    refs[i] = (strata_layer_ref){data_regions[(i / 5 + r) % DATA_REGIONS],
                                 test_splitmix(seed) % PROBE_IDS};
  }
}

/* strata_get_data and strata_get_data_many against strata_get and the
 * model: a sparse file with a proto (puts, replacements, empty layers and
 * removes overlaid), a dense file, a new proto without a file, a missing
 * region; snapshots held across later changes, a crystallization and
 * reclamation keep returning their own version. */
static void test_get_data_model(void **state) {
  (void)state;
  uint64_t seed = 0xda7a;
  model m7, m8;
  strata_store *s = open_data_store(&seed, 100, &m7, &m8);
  enum { N = 600 };
  strata_layer_ref *refs = calloc(N, sizeof *refs);
  assert_non_null(refs);

  /* Files only. */
  strata_txn t0;
  assert_strata_ok(strata_read_begin(s, &t0));
  assert_int_equal(expect_get_data_is_get(&t0, "files"), m7.n + m8.n);
  random_refs(refs, N, &seed);
  expect_many_is_single(&t0, refs, N);
  for (size_t i = 0; i < m8.n; i++) {
    const void *p;
    uint64_t size;
    assert_strata_ok(strata_get_data(&t0, 8, m8.l[i].id, &p, &size));
    assert_int_equal(size, m8.l[i].size);
    assert_memory_equal(p, m8.l[i].data, size);
  }

  strata_proto *p7, *p9;
  assert_strata_ok(strata_proto_open(s, 7, &p7));
  assert_strata_ok(strata_proto_create(s, 9, "nine", 4, NULL, &p9));
  assert_strata_ok(strata_proto_put(p9, 1, NULL, 0, NULL, NULL, 0));
  assert_strata_ok(strata_proto_put(p9, 2, NULL, 0, NULL, "2", 1));
  for (uint64_t round = 0; round < 120; round++) {
    random_change(p7, &m7, &seed, round);
    if (round % 30 != 29)
      continue;
    strata_txn t;
    assert_strata_ok(strata_read_begin(s, &t));
    size_t hits = expect_get_data_is_get(&t, "proto");
    assert_int_equal(hits, m7.n + m8.n + 2);
    for (size_t i = 0; i < m7.n; i++) {
      const void *d;
      uint64_t size;
      assert_strata_ok(strata_get_data(&t, 7, m7.l[i].id, &d, &size));
      assert_int_equal(size, m7.l[i].size);
      assert_memory_equal(d, m7.l[i].data, size);
    }
    random_refs(refs, N, &seed);
    expect_many_is_single(&t, refs, N);
    /* Held across more changes, a crystallization (of the proto over the
     * sparse file every other time) and reclamation: the same answers,
     * the same bytes. */
    model was;
    model_copy(&was, &m7);
    const void *before[MODEL_MAX];
    for (size_t i = 0; i < was.n; i++) {
      uint64_t size;
      assert_strata_ok(strata_get_data(&t, 7, was.l[i].id, &before[i], &size));
    }
    for (int j = 0; j < 20; j++)
      random_change(p7, &m7, &seed, 1000 + round * 20 + (uint64_t)j);
    if (round % 60 == 59)
      assert_strata_ok(strata_crystallize(s, 7));
    assert_strata_ok(strata_store_reclaim(s, 0));
    for (size_t i = 0; i < was.n; i++) {
      const void *d;
      uint64_t size;
      assert_strata_ok(strata_get_data(&t, 7, was.l[i].id, &d, &size));
      assert_ptr_equal(d, before[i]);
      assert_int_equal(size, was.l[i].size);
      assert_memory_equal(d, was.l[i].data, size);
    }
    assert_int_equal(expect_get_data_is_get(&t, "held snapshot"), hits);
    expect_many_is_single(&t, refs, N);
    strata_read_end(&t);
    model_free(&was);
  }
  /* The first snapshot, begun before any proto, still reads the files. */
  assert_int_equal(expect_get_data_is_get(&t0, "first snapshot"), 60 + m8.n);
  expect_many_is_single(&t0, refs, N);
  /* n = 0 touches nothing; a single ref works too. */
  const void *one = &seed;
  uint64_t one_size = 7;
  assert_int_equal(strata_get_data_many(&t0, refs, 0, &one, &one_size), 0);
  assert_ptr_equal(one, &seed);
  assert_int_equal(one_size, 7);
  expect_many_is_single(&t0, refs, 1);
  strata_read_end(&t0);

  /* After a crystallization of both protos: the new files. */
  assert_strata_ok(strata_crystallize(s, 7));
  assert_strata_ok(strata_crystallize(s, 9));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(expect_get_data_is_get(&t, "crystallized"), m7.n + m8.n + 2);
  expect_many_is_single(&t, refs, N);
  strata_read_end(&t);
  /* An ended snapshot finds nothing. */
  const void *d = &seed;
  uint64_t size = 3;
  assert_strata_err(strata_get_data(&t, 7, m7.l[0].id, &d, &size),
                    STRATA_E_NO_REGION);
  assert_int_equal(strata_get_data_many(&t, refs, 1, &d, &size), 0);
  assert_null(d);
  assert_int_equal(size, 0);
  free(refs);
  strata_store_close(s);
  model_free(&m7);
  model_free(&m8);
}

/* strata_get_data_many through a snapshot of more regions than the batch
 * keeps its region table's slot in cache for (it then prefetches the slot
 * a stage ahead): 600 protos besides a sparse and a dense file, refs in
 * runs of one region and interleaved, hits and misses, each equal to
 * strata_get_data's answer. */
static void test_get_data_many_many_regions(void **state) {
  (void)state;
  uint64_t seed = 0x5eed;
  model m7, m8;
  strata_store *s = open_data_store(&seed, 100, &m7, &m8);
  enum { PROTOS = 600, N = 3000 };
  for (uint64_t i = 0; i < PROTOS; i++) {
    char name[16], data[16];
    snprintf(name, sizeof name, "p%" PRIu64, i);
    int len = snprintf(data, sizeof data, "v%" PRIu64, i);
    strata_proto *p;
    assert_strata_ok(
        strata_proto_create(s, 1000 + i, name, strlen(name), NULL, &p));
    assert_strata_ok(
        strata_proto_put(p, i % 3, NULL, 0, NULL, data, (size_t)len));
  }
  strata_layer_ref *refs = calloc(N, sizeof *refs);
  assert_non_null(refs);
  for (size_t i = 0; i < N; i++) {
    uint64_t r = test_splitmix(&seed);
    uint64_t run = i / 9 + r % 2; /* runs of one region, broken at random */
    uint64_t region = run % 4 == 0   ? 7
                      : run % 4 == 1 ? 8
                                     : 1000 + (run * 7919) % (PROTOS + 10);
    refs[i] = (strata_layer_ref){region, test_splitmix(&seed) % PROBE_IDS};
    if (region >= 1000)
      refs[i].layer_id %= 4;
  }
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  expect_many_is_single(&t, refs, N);
  const void **data = calloc(N, sizeof *data);
  uint64_t *sizes = calloc(N, sizeof *sizes);
  assert_non_null(data);
  assert_non_null(sizes);
  size_t protos_hit = 0;
  strata_get_data_many(&t, refs, N, data, sizes);
  for (size_t i = 0; i < N; i++)
    protos_hit += refs[i].region_id >= 1000 && data[i] != NULL;
  assert_true(protos_hit > 100);
  strata_read_end(&t);
  free(data);
  free(sizes);
  free(refs);
  strata_store_close(s);
  model_free(&m7);
  model_free(&m8);
}

/* The model's layer named `name`, or NULL. */
static const mlayer *model_find_name(const model *m, const char *name) {
  for (size_t i = 0; i < m->n; i++)
    if (name[0] != '\0' && strcmp(m->l[i].name, name) == 0)
      return &m->l[i];
  return NULL;
}

/* Every name a layer of the by-name tests can have, and some no layer has:
 * "f<id>", "p<id>" and "n<id>" for id < IDS, then "empty", "two", "one",
 * "". */
#define NAME_PROBES (3 * IDS + 4)
static void probe_name(size_t k, char *name, size_t cap) {
  static const char *const extra[] = {"empty", "two", "one", ""};
  if (k < 3 * IDS)
    snprintf(name, cap, "%c%zu", "fpn"[k % 3], k / 3);
  else
    snprintf(name, cap, "%s", extra[k - 3 * IDS]);
}

/* Asserts that strata_get_data_by_name() through `t` agrees with
 * strata_get_by_name() for every probe name of every region (the same
 * code, pointer and size; outputs untouched and a detail naming the region
 * and the name on a miss), and with the model where `models` has one for
 * the region (m[0] for 7, m[1] for 8). strata_get_data_many_by_name() over
 * the same names, regions interleaved and in runs, returns the same.
 * Returns the hits. */
static size_t expect_data_by_name(const strata_txn *t, const model *m7,
                                  const model *m8, uint64_t *seed,
                                  const char *where) {
  static const char *const rnames[] = {"seven", "eight", "nine", "none"};
  enum { N = DATA_REGIONS * NAME_PROBES };
  static char names[N][24];
  static strata_layer_name_ref refs[N];
  static const void *want_data[N];
  static uint64_t want_size[N];
  size_t hits = 0, n = 0;
  for (int r = 0; r < DATA_REGIONS; r++)
    for (size_t k = 0; k < NAME_PROBES; k++, n++) {
      uint64_t rid = data_regions[r];
      probe_name(k, names[n], sizeof names[n]);
      size_t len = strlen(names[n]);
      refs[n] =
          (strata_layer_name_ref){rnames[r], strlen(rnames[r]), names[n], len};
      strata_layer l;
      int want = strata_get_by_name(t, rid, names[n], len, &l);
      const void *p = (const void *)&hits; /* sentinels */
      uint64_t size = 12345;
      int rc = strata_get_data_by_name(t, rid, names[n], len, &p, &size);
      if (rc != want)
        fail_msg("%s: region %" PRIu64 " \"%s\": %s, strata_get_by_name %s",
                 where, rid, names[n], strata_err_name(rc),
                 strata_err_name(want));
      const model *m = rid == 7 ? m7 : rid == 8 ? m8 : NULL;
      const mlayer *ml = m != NULL ? model_find_name(m, names[n]) : NULL;
      if (m != NULL && (ml != NULL) != (rc == 0))
        fail_msg("%s: region %" PRIu64 " \"%s\": %s, the model %s", where, rid,
                 names[n], strata_err_name(rc), ml ? "has it" : "has not");
      want_data[n] = NULL;
      want_size[n] = 0;
      if (rc == 0) {
        hits++;
        assert_ptr_equal(p, l.data);
        assert_non_null(p);
        assert_int_equal(size, l.size);
        if (ml != NULL) {
          assert_int_equal(size, ml->size);
          assert_memory_equal(p, ml->data, size);
        }
        want_data[n] = p;
        want_size[n] = size;
        continue;
      }
      assert_ptr_equal(p, (const void *)&hits);
      assert_int_equal(size, 12345);
      char region[32];
      snprintf(region, sizeof region, "region %" PRIu64, rid);
      assert_non_null(strstr(strata_last_error_detail(), region));
      if (rc == STRATA_E_NOT_FOUND)
        assert_non_null(strstr(strata_last_error_detail(), names[n]));
    }
  /* The batch, in a random order (a Fisher-Yates shuffle of the refs with
   * their answers). */
  for (size_t i = N - 1; i > 0; i--) {
    size_t j = test_splitmix(seed) % (i + 1);
    strata_layer_name_ref tr = refs[i];
    refs[i] = refs[j];
    refs[j] = tr;
    const void *td = want_data[i];
    want_data[i] = want_data[j];
    want_data[j] = td;
    uint64_t ts = want_size[i];
    want_size[i] = want_size[j];
    want_size[j] = ts;
  }
  static const void *data[N];
  static uint64_t sizes[N];
  static strata_layer full[N];
  assert_int_equal(strata_get_data_many_by_name(t, refs, N, data, sizes), hits);
  assert_int_equal(strata_get_many_by_name(t, refs, N, full), hits);
  for (size_t i = 0; i < N; i++) {
    if (data[i] != want_data[i] || sizes[i] != want_size[i] ||
        full[i].data != data[i])
      fail_msg("%s: ref %zu %s:%s: %p %" PRIu64 ", expected %p %" PRIu64, where,
               i, refs[i].region_name, refs[i].layer_name, data[i], sizes[i],
               want_data[i], want_size[i]);
  }
  return hits;
}

/* strata_get_data_by_name and strata_get_data_many_by_name against
 * strata_get_by_name, strata_get_many_by_name and the model: a sparse file
 * with named layers and a proto that renames, replaces and removes them, a
 * dense file of named layers, a new proto without a file, a missing region;
 * a snapshot held across later changes, a crystallization and reclamation
 * keeps its answers. */
static void test_get_data_by_name_model(void **state) {
  (void)state;
  uint64_t seed = 0xbeef;
  model m7, m8;
  strata_store *s = open_data_store(&seed, 50, &m7, &m8);
  strata_txn t0;
  assert_strata_ok(strata_read_begin(s, &t0));
  size_t hits0 = expect_data_by_name(&t0, &m7, &m8, &seed, "files");
  assert_true(hits0 > 10);

  strata_proto *p7, *p9;
  assert_strata_ok(strata_proto_open(s, 7, &p7));
  assert_strata_ok(strata_proto_create(s, 9, "nine", 4, NULL, &p9));
  assert_strata_ok(strata_proto_put(p9, 1, "empty", 5, NULL, NULL, 0));
  assert_strata_ok(strata_proto_put(p9, 2, "two", 3, NULL, "2", 1));
  for (uint64_t round = 0; round < 90; round++) {
    random_change(p7, &m7, &seed, round);
    if (round % 30 != 29)
      continue;
    strata_txn t;
    assert_strata_ok(strata_read_begin(s, &t));
    model was;
    model_copy(&was, &m7);
    size_t hits = expect_data_by_name(&t, &was, &m8, &seed, "proto");
    for (int j = 0; j < 20; j++)
      random_change(p7, &m7, &seed, 1000 + round * 20 + (uint64_t)j);
    if (round % 60 == 59)
      assert_strata_ok(strata_crystallize(s, 7));
    assert_strata_ok(strata_store_reclaim(s, 0));
    assert_int_equal(expect_data_by_name(&t, &was, &m8, &seed, "held"), hits);
    strata_read_end(&t);
    model_free(&was);
  }
  assert_int_equal(expect_data_by_name(&t0, NULL, &m8, &seed, "first"), hits0);
  strata_read_end(&t0);

  /* NULL names; an ended snapshot finds nothing. */
  const void *d = &seed;
  uint64_t size = 3;
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_err(strata_get_data_by_name(&t, 9, NULL, 3, &d, &size),
                    STRATA_E_INVAL);
  assert_strata_err(strata_get_data_by_name(&t, 10, "two", 3, &d, &size),
                    STRATA_E_NO_REGION);
  assert_ptr_equal(d, &seed);
  assert_strata_ok(strata_get_data_by_name(&t, 9, "two!", 3, &d, &size));
  assert_memory_equal(d, "2", 1);
  strata_layer_name_ref bad[] = {
      {NULL, 0, "two", 3}, {"nine", 4, NULL, 0}, {"nine\0", 5, "two", 3}};
  const void *data[3] = {&seed, &seed, &seed};
  uint64_t sizes[3] = {1, 1, 1};
  assert_int_equal(strata_get_data_many_by_name(&t, bad, 3, data, sizes), 0);
  for (int i = 0; i < 3; i++) {
    assert_null(data[i]);
    assert_int_equal(sizes[i], 0);
  }
  assert_int_equal(strata_get_data_many_by_name(&t, bad, 0, data, sizes), 0);
  strata_read_end(&t);
  assert_strata_err(strata_get_data_by_name(&t, 9, "two", 3, &d, &size),
                    STRATA_E_NO_REGION);
  strata_layer_name_ref two = {"nine", 4, "two", 3};
  assert_int_equal(strata_get_data_many_by_name(&t, &two, 1, data, sizes), 0);
  assert_null(data[0]);
  strata_store_close(s);
  model_free(&m7);
  model_free(&m8);
}

/* The lean lookups count in the read statistics as strata_get() does: a
 * get per lookup, misses, and the bytes of the hits. */
static void test_get_data_stats(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m8;
  write_dense_region(dir, 8, "eight", 0, 10, &m8);
  strata_store *s = test_open_store_quiet(dir);
  strata_read_stats st0, st1;
  assert_strata_ok(strata_read_stats_get(s, &st0));
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  const void *d;
  uint64_t size, bytes = 0;
  assert_strata_ok(strata_get_data(&t, 8, 1, &d, &size));
  bytes += size;
  assert_strata_err(strata_get_data(&t, 8, 10, &d, &size), STRATA_E_NOT_FOUND);
  assert_strata_err(strata_get_data(&t, 3, 1, &d, &size), STRATA_E_NO_REGION);
  strata_layer_ref refs[] = {{8, 2}, {8, 99}, {5, 2}, {8, 3}};
  const void *data[4];
  uint64_t sizes[4];
  assert_int_equal(strata_get_data_many(&t, refs, 4, data, sizes), 2);
  bytes += sizes[0] + sizes[3];
  /* By name: a hit, a miss, a missing region; a batch of two and one. */
  assert_strata_ok(strata_get_data_by_name(&t, 8, "n4", 2, &d, &size));
  bytes += size;
  assert_strata_err(strata_get_data_by_name(&t, 8, "n99", 3, &d, &size),
                    STRATA_E_NOT_FOUND);
  assert_strata_err(strata_get_data_by_name(&t, 3, "n4", 2, &d, &size),
                    STRATA_E_NO_REGION);
  strata_layer_name_ref nrefs[] = {
      {"eight", 5, "n5", 2}, {"eight", 5, "x", 1}, {"none", 4, "n5", 2}};
  assert_int_equal(strata_get_data_many_by_name(&t, nrefs, 3, data, sizes), 1);
  bytes += sizes[0];
  strata_read_end(&t);
  assert_strata_ok(strata_read_stats_get(s, &st1));
  assert_int_equal(st1.gets - st0.gets, 13);
  assert_int_equal(st1.misses - st0.misses, 8);
  assert_int_equal(st1.bytes_served - st0.bytes_served, bytes);
  assert_true(bytes > 0);
  strata_store_close(s);
  model_free(&m8);
}

/* Asserts that strata_get_data() and strata_get() of `layer_id` in region
 * `rid` through `t` return the model's layer, or NOT_FOUND when the model
 * (NULL: no such region) has none. */
static void expect_single_is_model(const strata_txn *t, uint64_t rid,
                                   const model *m, uint64_t layer_id) {
  const mlayer *want = m != NULL ? model_find(m, layer_id) : NULL;
  const void *d;
  uint64_t size;
  strata_layer l;
  int rc = strata_get_data(t, rid, layer_id, &d, &size);
  int grc = strata_get(t, rid, layer_id, &l);
  if (want == NULL) {
    int code = m != NULL ? STRATA_E_NOT_FOUND : STRATA_E_NO_REGION;
    assert_strata_err(rc, code);
    assert_strata_err(grc, code);
    return;
  }
  assert_strata_ok(rc);
  assert_strata_ok(grc);
  assert_int_equal(size, want->size);
  assert_memory_equal(d, want->data, size);
  assert_ptr_equal(l.data, d);
  expect_layer(want, &l, "alternating");
}

/* The single lookups remember the last region whose file alone answers
 * (store_read.c, file_only()): gets that alternate at random between two
 * dense files with the same ids and different contents, a sparse file, a
 * missing region and (in a later snapshot) a region that gained a proto
 * each return their own region's layer, in a snapshot begun before the
 * proto and in one begun after; an ended snapshot finds nothing. */
static void test_get_data_alternating_regions(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  uint64_t seed = 0xa17e;
  model m7, m8, m11;
  write_random_region(dir, 7, "seven", 60, &seed, &m7);
  write_dense_region(dir, 8, "eight", 20, 100, &m8);
  write_dense_region(dir, 11, "eleven", 20, 100, &m11);
  strata_store *s = test_open_store_quiet(dir);
  const uint64_t rids[] = {7, 8, 11, 10};
  const model *models[] = {&m7, &m8, &m11, NULL};
  strata_txn before;
  assert_strata_ok(strata_read_begin(s, &before));
  for (int k = 0; k < 2000; k++) {
    uint64_t r = test_splitmix(&seed) % 4;
    expect_single_is_model(&before, rids[r], models[r],
                           test_splitmix(&seed) % PROBE_IDS);
  }
  /* Region 8 gains a proto that replaces layer 30 and removes 31. */
  model m8_before;
  model_copy(&m8_before, &m8);
  strata_proto *p8;
  assert_strata_ok(strata_proto_open(s, 8, &p8));
  assert_strata_ok(strata_proto_put(p8, 30, "n30", 3, NULL, "new", 3));
  model_put(&m8, 30, "n30", NULL, "new", 3);
  assert_strata_ok(strata_proto_remove(p8, 31));
  model_remove(&m8, 31);
  strata_txn after;
  assert_strata_ok(strata_read_begin(s, &after));
  const model *models_after[] = {&m7, &m8, &m11, NULL};
  const model *models_before[] = {&m7, &m8_before, &m11, NULL};
  for (int k = 0; k < 2000; k++) {
    uint64_t r = test_splitmix(&seed) % 4;
    uint64_t id =
        k % 3 == 0 ? 30 + (uint64_t)k % 2 : test_splitmix(&seed) % PROBE_IDS;
    expect_single_is_model(&after, rids[r], models_after[r], id);
    expect_single_is_model(&before, rids[r], models_before[r], id);
  }
  strata_read_end(&before);
  strata_read_end(&after);
  const void *d;
  uint64_t size;
  assert_strata_err(strata_get_data(&after, 11, 20, &d, &size),
                    STRATA_E_NO_REGION);
  strata_store_close(s);
  model_free(&m7);
  model_free(&m8);
  model_free(&m8_before);
  model_free(&m11);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_iter_matches_model),
      cmocka_unit_test(test_iter_across_changes),
      cmocka_unit_test(test_iter_edges),
      cmocka_unit_test(test_get_many_by_name_model),
      cmocka_unit_test(test_get_data_model),
      cmocka_unit_test(test_get_data_many_many_regions),
      cmocka_unit_test(test_get_data_by_name_model),
      cmocka_unit_test(test_get_data_stats),
      cmocka_unit_test(test_get_data_alternating_regions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
