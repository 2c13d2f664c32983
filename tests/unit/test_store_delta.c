/* A store serving regions as a base plus delta files (docs/ARCHITECTURE.md,
 * "Deltas"): the chain found from the files, every read path (by id, lean,
 * batch, by name, iteration, layer count) against a model of the newest
 * versions, stale deltas and a broken chain left unserved with a log line
 * naming them, and refresh picking up a new delta while an older snapshot
 * keeps its stack. The delta files are written with the writer's internal
 * API, as crystallization writes them; then crystallization itself: many
 * cycles of small changes make deltas up to the depth limit, then a
 * compaction, and every read path matches the model after each cycle, in
 * a reopened store, and in a snapshot held across a compaction; over a
 * base large against the changes, a full stack is merged into one delta
 * instead, exactly when the rule of crystallize.c says. */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "delta_corrupt.h"
#include "test_util.h"

#include "common/strata_testing.h"
#include "store/store_internal.h"
#include "writer/writer_internal.h"

#define RID 5
#define MAXID 40

/* One change of a file: a layer (data set) or a tombstone (data NULL). */
typedef struct op {
  uint64_t id;
  const char *data;
  const char *name; /* NULL: unnamed */
} op;

/* The model: the newest version of each id, as the store must serve it. */
typedef struct model {
  char data[MAXID + 1][2048]; /* room for merge_base()'s layers */
  char name[MAXID + 1][32];
  bool live[MAXID + 1];
} model;

static void apply(model *m, const op *ops, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t id = ops[i].id;
    m->live[id] = ops[i].data != NULL;
    snprintf(m->data[id], sizeof m->data[id], "%s",
             ops[i].data ? ops[i].data : "");
    snprintf(m->name[id], sizeof m->name[id], "%s",
             ops[i].name ? ops[i].name : "");
  }
}

static uint64_t header_checksum(const char *path) {
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  strata_region_close(r);
  return info.header_checksum;
}

/* Writes `ops` as a file of region `rid` named `name`: its base (depth
 * 0) or a delta over `parent` (header checksum) of the base `base` at
 * `depth`. */
static void write_file_of(uint64_t rid, const char *name, const char *path,
                          const op *ops, size_t n, uint64_t parent,
                          uint64_t base, uint32_t depth) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = rid;
  o.name = name;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  if (depth > 0)
    assert_strata_ok(strata__writer_set_delta(w, parent, base, depth));
  for (size_t i = 0; i < n; i++) {
    if (ops[i].data == NULL)
      assert_strata_ok(strata__writer_add_tombstone(w, ops[i].id));
    else
      assert_strata_ok(strata_writer_add(
          w, ops[i].id, ops[i].name, ops[i].name ? strlen(ops[i].name) : 0,
          NULL, ops[i].data, strlen(ops[i].data)));
  }
  assert_strata_ok(strata_writer_commit(w));
}

/* The same for region RID, "r". */
static void write_file(const char *path, const op *ops, size_t n,
                       uint64_t parent, uint64_t base, uint32_t depth) {
  write_file_of(RID, "r", path, ops, n, parent, base, depth);
}

static op base_ops[20];
static char base_data[20][8], base_names[20][8];

static void make_base(const char *dir, model *m) {
  for (int i = 0; i < 20; i++) {
    snprintf(base_data[i], sizeof base_data[i], "b%d", i + 1);
    snprintf(base_names[i], sizeof base_names[i], "n%d", i + 1);
    base_ops[i] = (op){(uint64_t)i + 1, base_data[i],
                       (i + 1) % 2 == 0 ? base_names[i] : NULL};
  }
  memset(m, 0, sizeof *m);
  write_file(test_path(dir, "r.region"), base_ops, 20, 0, 0, 0);
  apply(m, base_ops, 20);
}

/* Delta 1: a change, a tombstone, a new named layer, a renamed layer. */
static const op d1_ops[] = {{3, "d1-3", NULL},
                            {4, NULL, NULL},
                            {25, "d1-25", "n25"},
                            {6, "d1-6", "renamed6"}};
/* Delta 2: over delta 1: changes again, removes a layer delta 1 added,
 * brings back one it removed (under a new name), removes a base layer. */
static const op d2_ops[] = {{3, "d2-3", NULL},
                            {25, NULL, NULL},
                            {4, "d2-4", "n4b"},
                            {30, "d2-30", NULL},
                            {7, NULL, NULL}};

static uint64_t write_delta(const char *dir, const char *file, const op *ops,
                            size_t n, const char *parent_file, uint32_t depth,
                            model *m) {
  uint64_t base = header_checksum(test_path(dir, "r.region"));
  uint64_t parent = header_checksum(test_path(dir, parent_file));
  write_file(test_path(dir, file), ops, n, parent, base, depth);
  if (m != NULL)
    apply(m, ops, n);
  return parent;
}

static uint64_t live_count(const model *m) {
  uint64_t n = 0;
  for (int i = 0; i <= MAXID; i++)
    n += m->live[i];
  return n;
}

/* Every read path of snapshot `t` against the model. */
static void check_txn(const strata_txn *t, const model *m) {
  strata_layer_ref refs[MAXID + 1];
  for (uint64_t id = 0; id <= MAXID; id++) {
    strata_layer l;
    const void *data;
    uint64_t size;
    refs[id] = (strata_layer_ref){RID, id};
    if (!m->live[id]) {
      assert_strata_err(strata_get(t, RID, id, &l), STRATA_E_NOT_FOUND);
      assert_strata_err(strata_get_data(t, RID, id, &data, &size),
                        STRATA_E_NOT_FOUND);
      continue;
    }
    assert_strata_ok(strata_get(t, RID, id, &l));
    assert_int_equal(l.id, id);
    assert_int_equal(l.size, strlen(m->data[id]));
    assert_memory_equal(l.data, m->data[id], l.size);
    assert_int_equal(l.checksum, XXH3_64bits(l.data, l.size));
    assert_int_equal(l.flags, 0);
    assert_int_equal(l.name_len, strlen(m->name[id]));
    assert_memory_equal(l.name, m->name[id], l.name_len);
    assert_strata_ok(strata_get_data(t, RID, id, &data, &size));
    assert_int_equal(size, strlen(m->data[id]));
    assert_memory_equal(data, m->data[id], size);
  }
  /* Batches: get_many and the pipelined get_data_many. */
  strata_layer out[MAXID + 1];
  const void *datas[MAXID + 1];
  uint64_t sizes[MAXID + 1];
  assert_int_equal(strata_get_many(t, refs, MAXID + 1, out), live_count(m));
  assert_int_equal(strata_get_data_many(t, refs, MAXID + 1, datas, sizes),
                   live_count(m));
  for (uint64_t id = 0; id <= MAXID; id++) {
    if (!m->live[id]) {
      assert_null(datas[id]);
      assert_null(out[id].data);
      continue;
    }
    assert_int_equal(sizes[id], strlen(m->data[id]));
    assert_memory_equal(datas[id], m->data[id], sizes[id]);
    assert_memory_equal(out[id].data, m->data[id], out[id].size);
  }
  /* By name: every name any file ever held. */
  const char *names[] = {"n2",  "n4",  "n6",  "n8",     "renamed6",
                         "n25", "n4b", "n20", "nothing"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    uint64_t want = 0;
    for (uint64_t id = 0; id <= MAXID; id++)
      if (m->live[id] && strcmp(m->name[id], names[i]) == 0)
        want = id;
    strata_layer l;
    int rc = strata_get_by_name(t, RID, names[i], strlen(names[i]), &l);
    if (want == 0) {
      if (rc != STRATA_E_NOT_FOUND)
        fail_msg("name %s: %s, expected not found", names[i],
                 strata_err_name(rc));
      continue;
    }
    assert_strata_ok(rc);
    assert_int_equal(l.id, want);
    assert_memory_equal(l.data, m->data[want], l.size);
    strata_layer_name_ref nr = {"r", 1, names[i], strlen(names[i])};
    assert_int_equal(strata_get_many_by_name(t, &nr, 1, &l), 1);
    assert_int_equal(l.id, want);
  }
  /* Iteration: ascending ids, exactly the live ones. */
  strata_snapshot_iter it;
  assert_strata_ok(strata_snapshot_iter_init(t, RID, &it));
  strata_layer l;
  uint64_t next = 0, seen = 0;
  int rc;
  while ((rc = strata_snapshot_next(&it, &l)) > 0) {
    while (next <= MAXID && !m->live[next])
      next++;
    assert_int_equal(l.id, next);
    assert_memory_equal(l.data, m->data[next], l.size);
    next++;
    seen++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(seen, live_count(m));
  strata_store_region info;
  assert_strata_ok(strata_store_region_at(t, 0, &info));
  assert_int_equal(info.id, RID);
  assert_int_equal(info.layer_count, live_count(m));
}

static void check_store(strata_store *s, const model *m) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  check_txn(&t, m);
  strata_read_end(&t);
}

/* Collects log lines, to assert which files a scan names. */
typedef struct lines {
  char text[16384];
  size_t len;
} lines;

/* From any thread: the compactor logs on its own (compact.c). */
static pthread_mutex_t lines_mu = PTHREAD_MUTEX_INITIALIZER;
static void collect(void *ctx, int level, const char *line) {
  (void)level;
  lines *l = ctx;
  pthread_mutex_lock(&lines_mu);
  int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", line);
  if (n > 0 && l->len + (size_t)n < sizeof l->text)
    l->len += (size_t)n;
  pthread_mutex_unlock(&lines_mu);
}

/* A store over `dir` logging into `l`, opened with `flags`. */
static strata_store *open_logged_flags(const char *dir, lines *l,
                                       unsigned flags) {
  memset(l, 0, sizeof *l);
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_INFO;
  c.log_fn = collect;
  c.log_ctx = l;
  c.flags = flags;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

static strata_store *open_logged(const char *dir, lines *l) {
  return open_logged_flags(dir, l, 0);
}

/* A base and two deltas: every read sees base + deltas newest-first, with
 * tombstones hiding layers and a renamed layer found only by its new name;
 * a proto over the stack reads through it, and discarding it changes
 * nothing. */
static void test_stack_reads(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  make_base(dir, &m);
  write_delta(dir, "r.1.delta", d1_ops, 4, "r.region", 1, &m);
  write_delta(dir, "r.2.delta", d2_ops, 5, "r.1.delta", 2, &m);
  strata_store *s = test_open_store_quiet(dir);
  check_store(s, &m);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, RID, &p));
  check_store(s, &m);
  strata_proto_info pi;
  assert_strata_ok(strata_proto_info_get(p, &pi));
  assert_int_equal(pi.layers, live_count(&m));
  assert_strata_ok(strata_proto_discard(p));
  check_store(s, &m);
  strata_store_close(s);
}

/* The region's stack as snapshot `t` serves it (the store's internals:
 * the edges of its filter and table are asserted below). */
static const strata__stack *stack_of(const strata_txn *t) {
  const strata__entry *e =
      strata__catalog_find(strata__txn_priv(t)->catalog, RID);
  assert_non_null(e);
  return e->stack;
}

/* Ids no file holds (MAXID < id < 20000) read as missing through every
 * lookup by id; returns how many of them pass the stack's filter (and
 * are then rejected by its table). */
static uint64_t check_absent(const strata_txn *t, const strata__stack *st) {
  uint64_t passed = 0;
  strata_layer_ref refs[64];
  const void *datas[64];
  uint64_t sizes[64];
  size_t n = 0;
  for (uint64_t id = MAXID + 1; id < 20000; id++) {
    uint64_t h = strata__stack_hash(id), bits = strata__stack_bits(h);
    passed += (st->filter[strata__stack_word_at(st, h)] & bits) == bits;
    assert_null(strata__stack_find(st, id));
    strata_layer l;
    const void *data;
    uint64_t size;
    assert_strata_err(strata_get(t, RID, id, &l), STRATA_E_NOT_FOUND);
    assert_strata_err(strata_get_data(t, RID, id, &data, &size),
                      STRATA_E_NOT_FOUND);
    refs[n++] = (strata_layer_ref){RID, id};
    if (n == 64 || id == 19999) {
      assert_int_equal(strata_get_data_many(t, refs, n, datas, sizes), 0);
      n = 0;
    }
  }
  return passed;
}

/* The stack's filter and table at their edges: a stack of no ids (one
 * empty delta), then ids in several deltas, tombstones of base ids and of
 * a delta's id, ids that collide in the table (asserted), and ids in no
 * delta that pass the filter (asserted) and must miss in the table. Every
 * read path sees base + deltas newest-first (check_txn). */
static void test_stack_edges(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  make_base(dir, &m);
  write_delta(dir, "r.1.delta", NULL, 0, "r.region", 1, &m);
  strata_store *s = test_open_store_quiet(dir);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  const strata__stack *st = stack_of(&t);
  assert_non_null(st);
  assert_int_equal(st->n, 1);
  assert_int_equal(st->nslots, 0);
  check_txn(&t, &m);
  check_absent(&t, st);
  strata_read_end(&t);
  strata_store_close(s);

  /* Three deltas over the base: id 3 changed in each, id 2 removed then
   * brought back, id 21 added then removed, base ids 4 and 9 removed. */
  static const op e1[] = {{3, "e1-3", NULL},   {2, NULL, NULL},
                          {21, "e1-21", NULL}, {22, "e1-22", "n22"},
                          {23, "e1-23", NULL}, {24, "e1-24", NULL},
                          {26, "e1-26", NULL}, {27, "e1-27", NULL},
                          {28, "e1-28", NULL}, {29, "e1-29", NULL}};
  static const op e2[] = {{3, "e2-3", NULL},   {2, "e2-2", "n2b"},
                          {21, NULL, NULL},    {4, NULL, NULL},
                          {31, "e2-31", NULL}, {32, "e2-32", NULL},
                          {33, "e2-33", NULL}, {34, "e2-34", NULL}};
  static const op e3[] = {
      {3, "e3-3", NULL},   {9, NULL, NULL},     {22, "e3-22", NULL},
      {35, "e3-35", NULL}, {36, "e3-36", NULL}, {37, "e3-37", NULL},
      {38, "e3-38", NULL}, {39, "e3-39", NULL}, {40, "e3-40", NULL}};
  make_base(dir, &m);
  assert_int_equal(unlink(test_path(dir, "r.1.delta")), 0);
  write_delta(dir, "r.1.delta", e1, sizeof e1 / sizeof *e1, "r.region", 1, &m);
  write_delta(dir, "r.2.delta", e2, sizeof e2 / sizeof *e2, "r.1.delta", 2, &m);
  write_delta(dir, "r.3.delta", e3, sizeof e3 / sizeof *e3, "r.2.delta", 3, &m);
  s = test_open_store_quiet(dir);
  assert_strata_ok(strata_read_begin(s, &t));
  st = stack_of(&t);
  assert_non_null(st);
  assert_int_equal(st->n, 3);
  /* The newest version of id 3 is delta 3's (index 2). */
  assert_non_null(strata__stack_find(st, 3));
  assert_int_equal(strata__stack_find(st, 3)->delta, 2);
  assert_int_equal(strata__stack_find(st, 21)->tomb, 1);
  assert_int_equal(strata__stack_find(st, 2)->tomb, 0);
  /* Some id sits away from its home cell: a collision the probe walks. */
  uint64_t displaced = 0;
  for (uint64_t j = 0; j <= st->mask; j++)
    if (st->table[j].slot != 0 &&
        strata__stack_cell_at(st, strata__stack_hash(st->table[j].id)) != j)
      displaced++;
  assert_true(displaced > 0);
  check_txn(&t, &m);
  assert_true(check_absent(&t, st) > 0);
  strata_read_end(&t);
  /* A proto over the stack (reads ask the entry) sees the same. */
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, RID, &p));
  check_store(s, &m);
  assert_strata_ok(strata_proto_discard(p));
  check_store(s, &m);
  strata_store_close(s);
}

/* The base and r.1.delta .. r.3.delta; *m1 is the model of the base and
 * r.1.delta. `damage` (NULL: none) changes r.2.delta before r.3.delta is
 * bound to it. */
static void make_three(const char *dir, model *m1,
                       void (*damage)(const char *path)) {
  model m;
  make_base(dir, &m);
  write_delta(dir, "r.1.delta", d1_ops, 4, "r.region", 1, &m);
  *m1 = m;
  write_delta(dir, "r.2.delta", d2_ops, 5, "r.1.delta", 2, NULL);
  if (damage != NULL)
    damage(test_path(dir, "r.2.delta"));
  static const op d3_ops[] = {{9, "d3-9", NULL}};
  write_delta(dir, "r.3.delta", d3_ops, 1, "r.2.delta", 3, NULL);
}

/* A missing delta in the middle breaks the chain: the region is
 * served up to the delta below the gap and a WARN names the delta above it
 * and the file where the chain ends. */
static void test_stale_and_broken(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m1;
  make_three(dir, &m1, NULL);
  assert_int_equal(unlink(test_path(dir, "r.2.delta")), 0);
  lines l;
  strata_store *s = open_logged(dir, &l);
  check_store(s, &m1); /* base + r.1.delta only */
  assert_non_null(strstr(l.text, "chain is broken"));
  assert_non_null(strstr(l.text, "r.3.delta"));
  assert_non_null(strstr(l.text, "chain_ends_at="));
  assert_non_null(strstr(strstr(l.text, "chain_ends_at="), "r.1.delta"));
  strata_store_close(s);
}

/* A store opened on `dir` serves the model and logs `file` as a stale
 * delta. */
static void expect_stale(const char *dir, const model *m, const char *file) {
  lines l;
  strata_store *s = open_logged(dir, &l);
  check_store(s, m);
  assert_non_null(strstr(l.text, "stale delta"));
  assert_non_null(strstr(l.text, file));
  strata_store_close(s);
}

/* A delta whose base checksum names no served base: INFO, not served. */
static void test_stale_delta(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  make_base(dir, &m);
  uint64_t base = header_checksum(test_path(dir, "r.region"));
  write_file(test_path(dir, "r.1.delta"), d1_ops, 4, base ^ 1, base ^ 1, 1);
  expect_stale(dir, &m, "r.1.delta");
}

/* Refresh picks up a new delta; a snapshot begun before keeps the old
 * stack (its files stay mapped) until it ends. */
static void test_refresh_new_delta(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m, m1;
  make_base(dir, &m);
  strata_store *s = test_open_store_quiet(dir);
  check_store(s, &m);
  write_delta(dir, "r.1.delta", d1_ops, 4, "r.region", 1, &m);
  assert_strata_ok(strata_store_refresh(s));
  check_store(s, &m);
  m1 = m;
  strata_txn old;
  assert_strata_ok(strata_read_begin(s, &old));
  write_delta(dir, "r.2.delta", d2_ops, 5, "r.1.delta", 2, &m);
  assert_strata_ok(strata_store_refresh(s));
  check_store(s, &m);
  check_txn(&old, &m1);
  strata_read_end(&old);
  /* A refresh with nothing new keeps the entry (same generation). */
  strata_txn t;
  strata_store_region a, b;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_store_region_at(&t, 0, &a));
  strata_read_end(&t);
  assert_strata_ok(strata_store_refresh(s));
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_store_region_at(&t, 0, &b));
  strata_read_end(&t);
  assert_int_equal(a.generation, b.generation);
  /* The top delta removed by hand: the stack shrinks back. */
  assert_int_equal(unlink(test_path(dir, "r.2.delta")), 0);
  assert_strata_ok(strata_store_refresh(s));
  check_store(s, &m1);
  strata_store_close(s);
}

/* A delta that opens (its checksums match) but whose index fails when the
 * stack is built over it is withdrawn like a delta that does not validate
 * at open: a WARN names the file, its depth, the offset and the layer; the
 * region is served up to the delta below it, never with part of the bad
 * delta's layers; the delta above it is reported as a broken chain. At a
 * refresh the same: the store keeps serving the stack below. */
static void test_corrupt_delta_index(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m1;
  make_three(dir, &m1, break_id_order);

  /* The file alone opens: only its iteration fails. */
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.2.delta"), 0, &r));
  strata_region_close(r);

  lines l;
  strata_store *s = open_logged(dir, &l);
  check_store(s, &m1); /* base + r.1.delta only */
  char want[256];
  snprintf(want, sizeof want,
           "delta of depth 2 over %s: its index fails at id order slot 1 "
           "(file offset %" PRIu64 "): ",
           test_path(dir, "r.region"), broken_off);
  const char *skip = strstr(l.text, "delta skipped: it does not validate");
  assert_non_null(skip);
  assert_non_null(strstr(skip, "file=r.2.delta"));
  assert_non_null(strstr(skip, "error=STRATA_E_CORRUPT"));
  assert_non_null(strstr(skip, want));
  assert_non_null(strstr(skip, "does not follow layer"));
  assert_non_null(strstr(l.text, "chain is broken"));
  assert_non_null(strstr(strstr(l.text, "chain is broken"), "r.3.delta"));
  assert_non_null(strstr(strstr(l.text, "chain_ends_at="), "r.1.delta"));
  strata_store_close(s);

  /* Refresh: a store serving base + r.1.delta sees the bad delta appear
   * and keeps serving what it served. */
  assert_int_equal(unlink(test_path(dir, "r.2.delta")), 0);
  assert_int_equal(unlink(test_path(dir, "r.3.delta")), 0);
  s = open_logged(dir, &l);
  check_store(s, &m1);
  assert_null(strstr(l.text, "does not validate"));
  strata_txn t;
  strata_store_region before, after;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_store_region_at(&t, 0, &before));
  strata_read_end(&t);
  write_delta(dir, "r.2.delta", d2_ops, 5, "r.1.delta", 2, NULL);
  break_id_order(test_path(dir, "r.2.delta"));
  assert_strata_ok(strata_store_refresh(s));
  check_store(s, &m1);
  skip = strstr(l.text, "delta skipped: it does not validate");
  assert_non_null(skip);
  assert_non_null(strstr(skip, want));
  /* The entry was not replaced: the same stack, the same generation. */
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_store_region_at(&t, 0, &after));
  strata_read_end(&t);
  assert_int_equal(before.generation, after.generation);
  strata_store_close(s);
}

static bool exists(const char *dir, const char *file) {
  return access(test_path(dir, file), F_OK) == 0;
}

/* One cycle's changes through a proto, applied to the model too: two
 * layers changed or added, one removed, the named layer 4 rewritten. */
static void cycle_changes(strata_proto *p, model *m, int c) {
  static char data[4][32];
  uint64_t a = 1 + (uint64_t)(c * 7) % MAXID,
           b = 1 + (uint64_t)(c * 13) % MAXID;
  snprintf(data[0], sizeof data[0], "c%d-%" PRIu64, c, a);
  snprintf(data[1], sizeof data[1], "c%d-%" PRIu64, c, b);
  snprintf(data[2], sizeof data[2], "c%d-4", c);
  op ops[4];
  size_t n = 0;
  /* Ids 4 and 6 keep their names, which no other id may take. */
  if (a != 4 && a != 6 && (a != b)) {
    ops[n++] = (op){a, data[0], NULL};
    ops[n++] = (op){b == 4 || b == 6 ? a : b, data[1], NULL};
  }
  ops[n++] = (op){4, data[2], "n4b"};
  for (size_t i = 0; i < n; i++)
    assert_strata_ok(strata_proto_put(p, ops[i].id, ops[i].name,
                                      ops[i].name ? strlen(ops[i].name) : 0,
                                      NULL, ops[i].data, strlen(ops[i].data)));
  apply(m, ops, n);
  /* A removal of a live layer other than 4 and 6. */
  uint64_t r = 1 + (uint64_t)(c * 5) % MAXID;
  while (!m->live[r] || r == 4 || r == 6)
    r = r % MAXID + 1;
  assert_strata_ok(strata_proto_remove(p, r));
  op t = {r, NULL, NULL};
  apply(m, &t, 1);
}

/* Crystallization in proportion to the change: small changes make
 * r.1.delta .. r.4.delta, the fifth compacts into r.region and removes
 * them, and so on. Every read path matches the model after each cycle
 * (with the proto open over the stack, and after), a snapshot held across
 * a compaction keeps reading its stack, a reopened store reads the same. */
static void test_crystallize_cycles(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m, held_m;
  make_base(dir, &m);
  strata_store *s = test_open_store_quiet(dir);
  strata_txn held;
  bool holding = false;
  for (int c = 1; c <= 12; c++) {
    strata_proto *p = NULL;
    assert_strata_ok(strata_proto_open(s, RID, &p));
    cycle_changes(p, &m, c);
    check_store(s, &m);
    assert_strata_ok(strata_crystallize(s, RID));
    check_store(s, &m);
    /* Depth after cycle c: 1, 2, 3, 4, then 0 (compaction), 1, ... */
    int depth = c % 5;
    for (int d = 1; d <= 5; d++) {
      char f[32];
      snprintf(f, sizeof f, "r.%d.delta", d);
      if (exists(dir, f) != (d <= depth))
        fail_msg("cycle %d: %s %s, expected depth %d", c, f,
                 exists(dir, f) ? "exists" : "missing", depth);
    }
    if (c == 3) {
      assert_strata_ok(strata_read_begin(s, &held));
      held_m = m;
      holding = true;
    }
    if (holding)
      check_txn(&held, &held_m);
    if (c == 6) {
      strata_read_end(&held);
      holding = false;
    }
    assert_strata_ok(strata_proto_discard(p));
    check_store(s, &m);
  }
  strata_store_close(s);
  s = test_open_store_quiet(dir);
  check_store(s, &m);
  strata_store_close(s);
}

/* Another writer puts r.<depth>.delta over r.<depth - 1>.delta, the top of
 * the stack: crystallizing fails with STRATA_E_CONFLICT naming both files,
 * and readers still see the model (the proto intact). */
static void expect_foreign_conflict(strata_store *s, const char *dir,
                                    const model *m, uint32_t depth) {
  static const op foreign[] = {{9, "foreign", NULL}};
  char top[32], over[32];
  snprintf(top, sizeof top, "r.%" PRIu32 ".delta", depth - 1);
  snprintf(over, sizeof over, "r.%" PRIu32 ".delta", depth);
  write_delta(dir, over, foreign, 1, top, depth, NULL);
  assert_strata_err(strata_crystallize(s, RID), STRATA_E_CONFLICT);
  const char *d = strata_last_error_detail();
  assert_non_null(strstr(d, over));
  assert_non_null(strstr(d, top));
  assert_non_null(strstr(d, "another writer"));
  check_store(s, m);
}

/* The file's size and inode, or 0 and 0 when it is missing. */
static void file_id(const char *dir, const char *file, uint64_t *size,
                    uint64_t *ino) {
  struct stat st;
  bool found = stat(test_path(dir, file), &st) == 0;
  *size = found ? (uint64_t)st.st_size : 0;
  *ino = found ? (uint64_t)st.st_ino : 0;
}

/* What the next crystallization must write (docs/ARCHITECTURE.md,
 * "Crystallize"): with B the base file's bytes and P the proto's content
 * bytes, below depth 4 a delta when P < B/4; at depth 4 a merge when the
 * delta files' bytes and P are below B/4; otherwise a new base. */
enum { EXPECT_DELTA, EXPECT_MERGE, EXPECT_BASE };
static int expected_kind(const char *dir, uint64_t proto_bytes,
                         uint32_t *depth) {
  uint64_t base, ino, size, stack = 0;
  file_id(dir, "r.region", &base, &ino);
  *depth = 0;
  for (uint32_t d = 1; d <= 5; d++) {
    char f[32];
    snprintf(f, sizeof f, "r.%" PRIu32 ".delta", d);
    file_id(dir, f, &size, &ino);
    if (size == 0)
      break;
    stack += size;
    *depth = d;
  }
  if (*depth < 4)
    return proto_bytes < base / 4 ? EXPECT_DELTA : EXPECT_BASE;
  return stack + proto_bytes < base / 4 ? EXPECT_MERGE : EXPECT_BASE;
}

/* A base whose 20 layers hold 2,000 bytes each: small changes against it,
 * so that a full stack is merged. */
static void merge_base(const char *dir, model *m) {
  static char data[20][2001];
  op ops[20];
  for (int i = 0; i < 20; i++) {
    memset(data[i], 'a' + i, 2000);
    data[i][2000] = '\0';
    snprintf(base_names[i], sizeof base_names[i], "n%d", i + 1);
    ops[i] =
        (op){(uint64_t)i + 1, data[i], (i + 1) % 2 == 0 ? base_names[i] : NULL};
  }
  memset(m, 0, sizeof *m);
  write_file(test_path(dir, "r.region"), ops, 20, 0, 0, 0);
  apply(m, ops, 20);
}

/* After a merge, r.1.delta is bound to the base and holds a tombstone only
 * where it hides a layer of the base. */
static void check_merged(const char *dir) {
  strata_region *b, *d;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &b));
  assert_strata_ok(strata_region_open(test_path(dir, "r.1.delta"), 0, &d));
  strata_region_delta_info di;
  strata_region_info bi;
  assert_strata_ok(strata_region_delta(d, &di));
  assert_strata_ok(strata_region_info_get(b, &bi));
  assert_int_equal(di.depth, 1);
  assert_int_equal(di.parent_checksum, bi.header_checksum);
  assert_int_equal(di.base_checksum, bi.header_checksum);
  strata_region_iter it;
  strata_region_iter_init(d, &it);
  strata_layer l, bl;
  while (strata_region_next(&it, &l) > 0)
    if ((l.flags & STRATA_LAYER_TOMBSTONE) && strata_region_get(b, l.id, &bl))
      fail_msg("merged delta: a tombstone for layer %" PRIu64
               " hides nothing in the base",
               l.id);
  strata_region_close(d);
  strata_region_close(b);
}

/* Small changes over a large base: r.1.delta .. r.4.delta, then each
 * crystallization at depth 4 merges the stack and the proto into a new
 * r.1.delta over the base (the others removed, the base untouched) while
 * the deltas' bytes stay below a quarter of the base's, and rewrites the
 * base once they pass it. The stack never passes depth 4, each cycle
 * writes what the rule says, every read path matches the model (with the
 * proto open, after, in a snapshot held across merges and a base rewrite,
 * in a reopened store), and a delta another writer put over a full stack
 * fails the merge with STRATA_E_CONFLICT naming it. */
static void test_crystallize_merges(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  static model m, held_m, before;
  merge_base(dir, &m);
  strata_store *s = test_open_store_quiet(dir);
  strata_txn held;
  bool holding = false, conflict_tried = false;
  int counts[3] = {0};
  for (int c = 1; c <= 60; c++) {
    strata_proto *p = NULL;
    assert_strata_ok(strata_proto_open(s, RID, &p));
    before = m;
    cycle_changes(p, &m, c);
    if (c % 5 == 0) {
      /* A larger layer now and then, so that the merged delta grows until
       * a base rewrite is due. */
      static char big[1901];
      memset(big, 'A' + c % 26, 1900);
      op o = {21 + (uint64_t)(c / 5) % 20, big, NULL};
      assert_strata_ok(strata_proto_put(p, o.id, NULL, 0, NULL, big, 1900));
      apply(&m, &o, 1);
    }
    check_store(s, &m);
    uint64_t pbytes = 0;
    for (uint64_t id = 0; id <= MAXID; id++)
      if (m.live[id] &&
          (!before.live[id] || strcmp(before.data[id], m.data[id]) != 0 ||
           strcmp(before.name[id], m.name[id]) != 0))
        pbytes += strlen(m.data[id]);
    uint32_t depth;
    int kind = expected_kind(dir, pbytes, &depth);
    if (kind == EXPECT_MERGE && !conflict_tried) {
      /* Another writer's delta over the top: the merge would lose it. */
      expect_foreign_conflict(s, dir, &m, 5);
      assert_int_equal(unlink(test_path(dir, "r.5.delta")), 0);
      conflict_tried = true;
    }
    uint64_t bsize, bino, dsize, dino, nsize, nino;
    file_id(dir, "r.region", &bsize, &bino);
    file_id(dir, "r.1.delta", &dsize, &dino);
    /* The deltas a merge replaces, to put back after the first merge. */
    uint8_t *old_deltas[3] = {NULL};
    size_t old_len[3] = {0};
    bool crash = kind == EXPECT_MERGE && counts[EXPECT_MERGE] == 0;
    for (int d = 0; crash && d < 3; d++) {
      char f[32];
      snprintf(f, sizeof f, "r.%d.delta", d + 2);
      old_deltas[d] = test_read_file(test_path(dir, f), &old_len[d]);
    }
    assert_strata_ok(strata_crystallize(s, RID));
    check_store(s, &m);
    if (crash) {
      /* A crash between the merge's publication and the removal of the
       * deltas it replaced: they are stale by their binding (their chain
       * starts at the old r.1.delta, replaced), so a store opened from the
       * files serves the merged delta alone, and says so. */
      for (int d = 0; d < 3; d++) {
        char f[32];
        snprintf(f, sizeof f, "r.%d.delta", d + 2);
        test_write_file(test_path(dir, f), old_deltas[d], old_len[d]);
      }
      expect_stale(dir, &m, "r.3.delta");
      for (int d = 0; d < 3; d++) {
        char f[32];
        snprintf(f, sizeof f, "r.%d.delta", d + 2);
        assert_int_equal(unlink(test_path(dir, f)), 0);
        free(old_deltas[d]);
      }
    }
    counts[kind]++;
    uint32_t want = kind == EXPECT_DELTA   ? depth + 1
                    : kind == EXPECT_MERGE ? 1
                                           : 0;
    for (uint32_t d = 1; d <= 5; d++) {
      char f[32];
      snprintf(f, sizeof f, "r.%" PRIu32 ".delta", d);
      if (exists(dir, f) != (d <= want))
        fail_msg("cycle %d (%s at depth %" PRIu32 "): %s %s", c,
                 kind == EXPECT_MERGE  ? "merge"
                 : kind == EXPECT_BASE ? "base"
                                       : "delta",
                 depth, f, exists(dir, f) ? "exists" : "missing");
    }
    file_id(dir, "r.region", &nsize, &nino);
    if ((nino != bino) != (kind == EXPECT_BASE))
      fail_msg("cycle %d: the base was %s", c,
               nino != bino ? "rewritten, the rule says not"
                            : "not rewritten, the rule says it should be");
    if (kind == EXPECT_MERGE) {
      file_id(dir, "r.1.delta", &nsize, &nino);
      assert_int_not_equal(nino, dino);
      check_merged(dir);
    }
    if (kind == EXPECT_MERGE && !holding && counts[EXPECT_MERGE] == 1) {
      /* Held across the next merge and base rewrite. */
      assert_strata_ok(strata_read_begin(s, &held));
      held_m = m;
      holding = true;
    }
    if (holding)
      check_txn(&held, &held_m);
    if (holding && counts[EXPECT_MERGE] >= 2 && counts[EXPECT_BASE] >= 1) {
      strata_read_end(&held);
      holding = false;
    }
    assert_strata_ok(strata_proto_discard(p));
    check_store(s, &m);
    if (c % 9 == 0 && !holding) {
      strata_store_close(s);
      s = test_open_store_quiet(dir);
      check_store(s, &m);
    }
  }
  if (holding)
    strata_read_end(&held);
  print_message("  %d deltas, %d merges, %d base rewrites\n",
                counts[EXPECT_DELTA], counts[EXPECT_MERGE],
                counts[EXPECT_BASE]);
  assert_true(counts[EXPECT_MERGE] >= 2);
  assert_true(counts[EXPECT_BASE] >= 1);
  assert_true(conflict_tried);
  strata_store_close(s);
  s = test_open_store_quiet(dir);
  check_store(s, &m);
  strata_store_close(s);
}

/* Issue 14's check extended to the top of the stack: a delta another
 * writer put over the top, or a delta of the stack removed, fails the
 * crystallization with STRATA_E_CONFLICT naming both files, and the proto
 * stays intact. */
static void test_crystallize_conflicts(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  make_base(dir, &m);
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_open(s, RID, &p));
  cycle_changes(p, &m, 1);
  assert_strata_ok(strata_crystallize(s, RID));
  assert_true(exists(dir, "r.1.delta"));
  cycle_changes(p, &m, 2);
  /* A foreign delta over r.1.delta. */
  expect_foreign_conflict(s, dir, &m, 2);
  /* A stale file under the name is not a conflict: it is replaced. */
  static const op foreign[] = {{9, "foreign", NULL}};
  write_file(test_path(dir, "r.2.delta"), foreign, 1, 1, 2, 2);
  assert_strata_ok(strata_crystallize(s, RID));
  check_store(s, &m);
  /* A delta of the stack removed by another writer. */
  cycle_changes(p, &m, 3);
  assert_int_equal(unlink(test_path(dir, "r.1.delta")), 0);
  assert_strata_err(strata_crystallize(s, RID), STRATA_E_CONFLICT);
  const char *d = strata_last_error_detail();
  assert_non_null(strstr(d, "r.1.delta"));
  assert_non_null(strstr(d, "r.3.delta"));
  check_store(s, &m);
  strata_store_close(s);
}

/* ---- compaction off the writer's path (compact.c) ------------------------ */

/* Is `n` a rebased delta's name of region "r", r.D.cG.delta (compact.c)? */
static bool rebased_file(const char *n) {
  unsigned d, g;
  int end = 0;
  return sscanf(n, "r.%u.c%u.delta%n", &d, &g, &end) == 2 &&
         (size_t)end == strlen(n);
}

/* The depth of the stack on disk: r.1.delta .. r.<depth>.delta exist, the
 * next does not, and no file of a compaction is left under another name
 * (a temporary file, or a rebased delta not renamed). */
static uint32_t disk_depth(const char *dir) {
  uint32_t depth = 0;
  char f[32];
  for (;;) {
    snprintf(f, sizeof f, "r.%" PRIu32 ".delta", depth + 1);
    if (!exists(dir, f))
      break;
    depth++;
  }
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (rebased_file(de->d_name) || strstr(de->d_name, "strata-tmp"))
      fail_msg("left in the store: %s", de->d_name);
  closedir(d);
  return depth;
}

/* Is r.<depth>.delta bound to `parent` and to the base r.region? */
static void check_binding(const char *dir, uint32_t depth, const char *parent) {
  char f[32];
  snprintf(f, sizeof f, "r.%" PRIu32 ".delta", depth);
  strata_region *r;
  assert_strata_ok(strata_region_open(test_path(dir, f), 0, &r));
  strata_region_delta_info di;
  assert_strata_ok(strata_region_delta(r, &di));
  strata_region_close(r);
  assert_int_equal(di.depth, depth);
  assert_int_equal(di.parent_checksum, header_checksum(test_path(dir, parent)));
  assert_int_equal(di.base_checksum,
                   header_checksum(test_path(dir, "r.region")));
}

/* What a test hook does inside a compaction, after its write: crystallize
 * `cycles` more cycles of changes through the proto (deltas the
 * compaction must keep), or, with `rewrite`, a crystallization without
 * changes, which rewrites the base in the foreground. */
typedef struct meanwhile {
  strata_store *s;
  strata_proto *p;
  model *m;
  int cycle, cycles;
  bool rewrite;
  bool pad; /* each cycle also puts a 400-byte layer (ids 31 up) */
  int calls;
} meanwhile;

static void during_compaction(void *ctx) {
  meanwhile *w = ctx;
  if (w->calls++ > 0)
    return;
  for (int i = 0; i < w->cycles; i++) {
    if (w->pad) {
      static char pad[401];
      memset(pad, 'a' + i, 400);
      op o = {31 + (uint64_t)i, pad, NULL};
      assert_strata_ok(strata_proto_put(w->p, o.id, NULL, 0, NULL, pad, 400));
      apply(w->m, &o, 1);
    }
    cycle_changes(w->p, w->m, w->cycle++);
    assert_strata_ok(strata_crystallize(w->s, RID));
  }
  if (w->rewrite)
    assert_strata_ok(strata_crystallize(w->s, RID));
}

/* Cycles `from` .. `to` of changes through proto `p`, each crystallized. */
static void run_cycles(strata_store *s, strata_proto *p, model *m, int from,
                       int to) {
  for (int c = from; c <= to; c++) {
    cycle_changes(p, m, c);
    assert_strata_ok(strata_crystallize(s, RID));
  }
}

/* Closes `s`; a store opened again over `dir` logs no stale or unserved
 * file and serves the model. */
static void check_reopened(strata_store *s, const char *dir, const model *m) {
  strata_store_close(s);
  lines l;
  s = open_logged(dir, &l);
  assert_null(strstr(l.text, "stale"));
  assert_null(strstr(l.text, "not served"));
  check_store(s, m);
  strata_store_close(s);
}

/* A store over make_base()'s region (merge_base()'s with `large`), opened
 * with the compactor when `bg`, and a proto over it that crystallized
 * `cycles` cycles of changes: the start of the tests below. */
static strata_store *stacked(const char *dir, model *m, lines *l, bool bg,
                             bool large, int cycles, strata_proto **p) {
  if (large)
    merge_base(dir, m);
  else
    make_base(dir, m);
  strata_store *s =
      open_logged_flags(dir, l, bg ? STRATA_STORE_BACKGROUND_COMPACT : 0);
  assert_strata_ok(strata_proto_open(s, RID, p));
  run_cycles(s, *p, m, 1, cycles);
  return s;
}

/* strata_compact on the calling thread: three deltas become a new base
 * (and a stale rebased delta is removed), every read path matches the
 * model, a snapshot taken before keeps its
 * stack, the open proto goes on over the new base (its next
 * crystallization is r.1.delta), a region without deltas is left as it
 * is, and a reopened store serves the same. */
static void test_compact_explicit(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m, held_m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, false, false, 3, &p);
  assert_int_equal(disk_depth(dir), 3);
  strata_txn held;
  assert_strata_ok(strata_read_begin(s, &held));
  held_m = m;
  /* A rebased delta a crash left bound to a file that never took its
   * place: the compaction removes it (disk_depth fails on one). */
  write_file(test_path(dir, "r.1.c9.delta"), d1_ops, 4, 12345, 12345, 1);
  assert_strata_ok(strata_compact(s, RID));
  assert_int_equal(disk_depth(dir), 0);
  assert_non_null(strstr(l.text, "region compacted"));
  check_store(s, &m);
  check_txn(&held, &held_m);
  strata_read_end(&held);
  /* The proto, opened before, is over the new base. */
  cycle_changes(p, &m, 4);
  check_store(s, &m);
  assert_strata_ok(strata_crystallize(s, RID));
  assert_int_equal(disk_depth(dir), 1);
  check_binding(dir, 1, "r.region");
  check_store(s, &m);
  assert_strata_ok(strata_compact(s, RID));
  assert_int_equal(disk_depth(dir), 0);
  /* Nothing to compact: the base stays the same file. */
  struct stat before, after;
  assert_int_equal(stat(test_path(dir, "r.region"), &before), 0);
  assert_strata_ok(strata_compact(s, RID));
  assert_int_equal(stat(test_path(dir, "r.region"), &after), 0);
  assert_int_equal(before.st_ino, after.st_ino);
  assert_strata_err(strata_compact(s, 999), STRATA_E_NO_REGION);
  strata__compact_figures fig;
  strata__compact_figures_get(s, &fig);
  assert_false(fig.background);
  assert_int_equal(fig.count, 2);
  assert_int_equal(fig.merges, 0);
  assert_int_equal(fig.failed, 0); /* the missing region is no compaction */
  strata_store_close(s);
  s = open_logged(dir, &l);
  check_store(s, &m);
  strata_store_close(s);
}

/* Deltas crystallized while the compaction writes are kept: rewritten as
 * one r.1.delta over the new base (their removals of base layers
 * included), published with it; the reads match the model at once and
 * after a reopen, which finds no stale file. */
static void test_compact_rebases(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, false, false, 2, &p);
  meanwhile w = {.s = s, .p = p, .m = &m, .cycle = 3, .cycles = 2};
  strata_compact_test_hook(s, during_compaction, &w);
  assert_strata_ok(strata_compact(s, RID));
  strata_compact_test_hook(s, NULL, NULL);
  assert_int_equal(w.calls, 1);
  assert_non_null(strstr(l.text, "rebased=2"));
  assert_int_equal(disk_depth(dir), 1);
  check_binding(dir, 1, "r.region");
  check_store(s, &m);
  /* The rebased delta is served under its canonical name, which its
   * region reports too. */
  strata_txn t;
  const strata_region *d = NULL;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_store_region_delta_at(&t, 0, 0, &d));
  strata_region_info di;
  assert_strata_ok(strata_region_info_get(d, &di));
  assert_string_equal(di.path, test_path(dir, "r.1.delta"));
  strata_read_end(&t);
  /* And the proto goes on over both. */
  cycle_changes(p, &m, 5);
  assert_strata_ok(strata_crystallize(s, RID));
  assert_int_equal(disk_depth(dir), 2);
  check_binding(dir, 2, "r.1.delta");
  check_store(s, &m);
  check_reopened(s, dir, &m);
}

/* A crystallization that rewrites the base while the compaction writes
 * (the stack changed below its top): the compaction fails with
 * STRATA_E_CONFLICT and replaces nothing; the store serves the
 * crystallization's base, and no file of the compaction is left. */
static void test_compact_conflict(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, false, false, 2, &p);
  meanwhile w = {.s = s, .p = p, .m = &m, .cycle = 3, .rewrite = true};
  strata_compact_test_hook(s, during_compaction, &w);
  assert_strata_err(strata_compact(s, RID), STRATA_E_CONFLICT);
  strata_compact_test_hook(s, NULL, NULL);
  assert_non_null(strstr(strata_last_error_detail(), "changed below its top"));
  strata__compact_figures fig;
  strata__compact_figures_get(s, &fig);
  assert_int_equal(fig.count, 0);
  assert_int_equal(fig.dropped, 1);
  assert_int_equal(disk_depth(dir), 0);
  check_store(s, &m);
  strata_store_close(s);
  s = open_logged(dir, &l);
  check_store(s, &m);
  strata_store_close(s);
}

/* With STRATA_STORE_BACKGROUND_COMPACT, 16 cycles of small changes:
 * every crystallization writes a delta (none a merge or a base, which the
 * compactor does), the reads match the model after each (while the
 * compactor may be rewriting the stack), and after strata_compact_wait the
 * stack is below the foreground depth limit. `large`: a base large against
 * the changes, which the compactor merges into one delta; else it rewrites
 * the base. */
static void background_cycles(bool large) {
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, true, large, 0, &p);
  for (int c = 1; c <= 16; c++) {
    cycle_changes(p, &m, c);
    assert_strata_ok(strata_crystallize(s, RID));
    check_store(s, &m);
    /* The stack reached depth 4 (a request) at c = 4: the compactor,
     * niced, may be starved by this thread and others' until the end,
     * when 16 deltas are no longer small beside the base. Waiting here
     * makes its choice at depth 4 certain; the cycles between run beside
     * whatever it does next. */
    if (c % 4 == 0)
      assert_strata_ok(strata_compact_wait(s));
  }
  assert_strata_ok(strata_compact_wait(s));
  check_store(s, &m);
  assert_true(disk_depth(dir) < 4);
  strata__compact_figures fig;
  strata__compact_figures_get(s, &fig);
  assert_true(fig.background);
  assert_false(fig.running);
  assert_int_equal(fig.queued, 0);
  assert_true(fig.count > 0);
  assert_true(large ? fig.merges > 0 : fig.merges < fig.count);
  pthread_mutex_lock(&lines_mu);
  assert_null(strstr(l.text, "kind=base depth"));
  assert_null(strstr(l.text, "kind=merge depth"));
  assert_non_null(
      strstr(l.text, large ? "kind=merge deltas" : "kind=base deltas"));
  pthread_mutex_unlock(&lines_mu);
  check_reopened(s, dir, &m);
}

static void test_background_compact_base(void **state) {
  (void)state;
  background_cycles(false);
}

static void test_background_compact_merge(void **state) {
  (void)state;
  background_cycles(true);
}

/* The compactor merges r.1 .. r.4.delta into one r.1.delta while a
 * crystallization puts r.5.delta over them: that delta becomes r.2.delta
 * over the merged one, bound to it. */
static void test_background_merge_rebases(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, true, true, 0, &p);
  meanwhile w = {.s = s, .p = p, .m = &m, .cycle = 5, .cycles = 1};
  strata_compact_test_hook(s, during_compaction, &w);
  run_cycles(s, p, &m, 1, 4);
  assert_strata_ok(strata_compact_wait(s));
  strata_compact_test_hook(s, NULL, NULL);
  assert_int_equal(w.calls, 1);
  pthread_mutex_lock(&lines_mu);
  assert_non_null(strstr(l.text, "kind=merge deltas=4 rebased=1"));
  pthread_mutex_unlock(&lines_mu);
  assert_int_equal(disk_depth(dir), 2);
  check_binding(dir, 1, "r.region");
  check_binding(dir, 2, "r.1.delta");
  check_store(s, &m);
  check_reopened(s, dir, &m);
}

/* The region is dropped while it is compacted (its files removed by
 * another program, then a refresh): the compaction fails with
 * STRATA_E_CONFLICT saying so, and writes nothing. */
typedef struct dropper {
  strata_store *s;
  const char *dir;
} dropper;

static void drop_region(void *ctx) {
  const dropper *dr = ctx;
  const char *dir = dr->dir;
  char f[32];
  assert_int_equal(unlink(test_path(dir, "r.region")), 0);
  for (int d = 1; d <= 2; d++) {
    snprintf(f, sizeof f, "r.%d.delta", d);
    assert_int_equal(unlink(test_path(dir, f)), 0);
  }
  assert_strata_ok(strata_store_refresh(dr->s));
}

static void test_compact_region_dropped(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, false, false, 2, &p);
  assert_strata_ok(strata_proto_discard(p)); /* a refresh may drop it now */
  dropper dr = {s, dir};
  strata_compact_test_hook(s, drop_region, &dr);
  assert_strata_err(strata_compact(s, RID), STRATA_E_CONFLICT);
  strata_compact_test_hook(s, NULL, NULL);
  assert_non_null(strstr(strata_last_error_detail(), "no longer served"));
  assert_false(exists(dir, "r.region"));
  assert_int_equal(disk_depth(dir), 0);
  strata_store_close(s);
}

/* Files that look like rebased deltas but are not this region's stale
 * ones stay: another region's delta whose name starts like one
 * ("r.1.c9.1.delta", region "r.1.c9"), and a file of the rebased form
 * whose header names another region. */
static void test_compact_keeps_other_files(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, false, false, 1, &p);
  static const char *const others[] = {"r.1.c9.1.delta", "r.2.c3.delta"};
  static const op x = {1, "x", NULL};
  for (size_t i = 0; i < 2; i++)
    write_file_of(77, "other", test_path(dir, others[i]), &x, 1, 99, 99, 1);
  assert_strata_ok(strata_compact(s, RID));
  for (size_t i = 0; i < 2; i++)
    if (!exists(dir, others[i]))
      fail_msg("%s was removed by region %d's compaction", others[i], RID);
  check_store(s, &m);
  strata_store_close(s);
}

/* A base rewrite on the compactor thread while three deltas are
 * crystallized: they are rebased into one delta, and the requests those
 * crystallizations made (the stack was past depth 4) cost no second
 * rewrite, although that delta alone is more than a quarter of the base
 * (the pad layers). */
static void test_background_base_rebases_once(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  model m;
  lines l;
  strata_proto *p = NULL;
  strata_store *s = stacked(dir, &m, &l, true, false, 0, &p);
  meanwhile w = {.s = s, .p = p, .m = &m, .cycle = 5, .cycles = 3, .pad = true};
  strata_compact_test_hook(s, during_compaction, &w);
  run_cycles(s, p, &m, 1, 4);
  assert_strata_ok(strata_compact_wait(s));
  strata_compact_test_hook(s, NULL, NULL);
  assert_int_equal(w.calls, 1);
  strata__compact_figures fig;
  strata__compact_figures_get(s, &fig);
  assert_int_equal(fig.count, 1);
  assert_int_equal(fig.merges, 0);
  assert_int_equal(fig.rebased, 3);
  uint64_t rsize, bsize, ino;
  file_id(dir, "r.1.delta", &rsize, &ino);
  file_id(dir, "r.region", &bsize, &ino);
  assert_true(rsize >= bsize / 4); /* not small: the old rule rewrote it */
  assert_int_equal(disk_depth(dir), 1);
  check_binding(dir, 1, "r.region");
  check_store(s, &m);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stack_reads),
      cmocka_unit_test(test_stack_edges),
      cmocka_unit_test(test_stale_and_broken),
      cmocka_unit_test(test_stale_delta),
      cmocka_unit_test(test_refresh_new_delta),
      cmocka_unit_test(test_corrupt_delta_index),
      cmocka_unit_test(test_crystallize_cycles),
      cmocka_unit_test(test_crystallize_conflicts),
      cmocka_unit_test(test_crystallize_merges),
      cmocka_unit_test(test_compact_explicit),
      cmocka_unit_test(test_compact_rebases),
      cmocka_unit_test(test_compact_conflict),
      cmocka_unit_test(test_background_compact_base),
      cmocka_unit_test(test_background_compact_merge),
      cmocka_unit_test(test_background_merge_rebases),
      cmocka_unit_test(test_compact_region_dropped),
      cmocka_unit_test(test_compact_keeps_other_files),
      cmocka_unit_test(test_background_base_rebases_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
