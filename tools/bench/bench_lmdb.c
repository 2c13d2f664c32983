/* Peer: LMDB. One unnamed database with MDB_INTEGERKEY (keys are native
 * u64 ids, compared as integers: LMDB's fastest key type). Reads use one
 * read-only transaction for the whole run and mdb_get(), whose result points
 * into LMDB's own mapping, as Strata's does. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

typedef struct lmdb_state {
  bench_state base;
  char *lock_path;
  size_t mapsize;
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
} lmdb_state;

static int fail(char *err, size_t errlen, const char *what, int rc) {
  snprintf(err, errlen, "%s: %s", what, mdb_strerror(rc));
  return -1;
}

typedef struct id_pos {
  uint64_t id, pos;
} id_pos;

static int cmp_id(const void *a, const void *b) {
  uint64_t x = ((const id_pos *)a)->id, y = ((const id_pos *)b)->id;
  return (x > y) - (x < y);
}

static int open_env(lmdb_state *s, unsigned flags) {
  int rc = mdb_env_create(&s->env);
  if (rc == 0)
    rc = mdb_env_set_mapsize(s->env, s->mapsize);
  if (rc == 0)
    rc = mdb_env_open(s->env, s->base.path, flags | MDB_NOSUBDIR, 0644);
  if (rc != 0 && s->env != NULL) {
    mdb_env_close(s->env);
    s->env = NULL;
  }
  return rc;
}

static int build(void **state, const char *dir, const bench_layers *layers,
                 char *err, size_t errlen) {
  lmdb_state *s = bench_state_new(sizeof *s, dir, "bench.lmdb");
  id_pos *order = bench_xmalloc(layers->n * sizeof *order);
  uint8_t *buf = bench_xmalloc(layers->size);
  s->lock_path = bench_path(dir, "bench.lmdb-lock");
  /* Leaf pages hold a value this small inline; twice the raw bytes plus
   * slack is ample, and the file only grows to what is used. */
  s->mapsize = (size_t)(2 * layers->n * (layers->size + 64) + (64u << 20));
  *state = s;
  for (uint64_t i = 0; i < layers->n; i++)
    order[i] = (id_pos){layers->ids[i], i};
  qsort(order, (size_t)layers->n, sizeof *order, cmp_id);

  int rc = open_env(s, MDB_NOSYNC | MDB_WRITEMAP);
  MDB_txn *txn = NULL;
  if (rc == 0)
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (rc == 0)
    rc = mdb_dbi_open(txn, NULL, MDB_INTEGERKEY | MDB_CREATE, &s->dbi);
  /* Sorted input: MDB_APPEND fills pages completely, LMDB's best layout. */
  for (uint64_t i = 0; rc == 0 && i < layers->n; i++) {
    bench_fill_value(order[i].pos, buf, layers->size);
    MDB_val k = {sizeof order[i].id, &order[i].id};
    MDB_val v = {layers->size, buf};
    rc = mdb_put(txn, s->dbi, &k, &v, MDB_APPEND);
  }
  if (rc == 0)
    rc = mdb_txn_commit(txn);
  else if (txn != NULL)
    mdb_txn_abort(txn);
  if (rc == 0)
    rc = mdb_env_sync(s->env, 1);
  free(order);
  free(buf);
  if (s->env != NULL) {
    mdb_env_close(s->env);
    s->env = NULL;
  }
  return rc != 0 ? fail(err, errlen, "lmdb build", rc) : 0;
}

static void close_db(void *state) {
  lmdb_state *s = state;
  if (s->txn != NULL)
    mdb_txn_abort(s->txn);
  s->txn = NULL;
  if (s->env != NULL)
    mdb_env_close(s->env);
  s->env = NULL;
}

static int open_db(void *state, char *err, size_t errlen) {
  lmdb_state *s = state;
  int rc = open_env(s, MDB_RDONLY);
  if (rc == 0)
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
  if (rc == 0)
    rc = mdb_dbi_open(s->txn, NULL, 0, &s->dbi);
  if (rc != 0) {
    close_db(s);
    return fail(err, errlen, "lmdb open", rc);
  }
  return 0;
}

static int get(void *state, uint64_t key, const uint8_t **ptr, size_t *len) {
  lmdb_state *s = state;
  MDB_val k = {sizeof key, &key}, v;
  if (mdb_get(s->txn, s->dbi, &k, &v) != 0)
    return -1;
  *ptr = v.mv_data;
  *len = v.mv_size;
  return 0;
}

static uint64_t run(void *state, const uint64_t *keys, size_t m,
                    uint64_t *misses) {
  lmdb_state *s = state;
  MDB_txn *txn = s->txn;
  MDB_dbi dbi = s->dbi;
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i++) {
    uint64_t key = keys[i];
    MDB_val k = {sizeof key, &key}, v;
    if (mdb_get(txn, dbi, &k, &v) != 0) {
      miss++;
      continue;
    }
    const uint8_t *p = v.mv_data;
    sink += p[0] + p[v.mv_size - 1];
  }
  *misses += miss;
  return sink;
}

static void destroy(void *state) {
  lmdb_state *s = state;
  close_db(s);
  unlink(s->lock_path);
  free(s->lock_path);
  bench_state_free(s);
}

const bench_peer bench_lmdb = {
    .name = "lmdb",
    .build = build,
    .open = open_db,
    .get = get,
    .run = run,
    .close = close_db,
    .destroy = destroy,
};
