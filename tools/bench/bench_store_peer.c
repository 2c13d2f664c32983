/* Peers: the same region as the "strata" peers, written into a store's
 * directory of its own and read through store snapshots, one snapshot per
 * BATCH gets (strata_read_begin and strata_read_end are part of the cost):
 *   "store-get"    strata_get(): content, name, metadata, checksum;
 *   "store-data"   strata_get_data(): content only, the lean read;
 *   "store-batch"  strata_get_data_many() on batches of BATCH refs.
 * Against "strata", "strata-data" and "strata-batch" (the same file opened
 * as a region) they show what reading through a store costs. The store is
 * opened read-only with its defaults (read statistics on); open waits for
 * the background index check, which would otherwise compete with the
 * first timed gets. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "strata.h"

#define BATCH 64 /* gets per snapshot, and refs per get_data_many */

typedef struct store_state {
  bench_state base; /* the region file in the store's directory */
  char *dir;
  strata_store *store;
} store_state;

static int fail(char *err, size_t errlen, const char *what, int rc) {
  snprintf(err, errlen, "%s: %s (%s)", what, strata_strerror(rc),
           strata_last_error_detail());
  return -1;
}

static int build(void **state, const char *dir, const bench_layers *layers,
                 char *err, size_t errlen) {
  char *sdir = bench_mkdir(dir, "store-peer");
  store_state *s = bench_state_new(sizeof *s, sdir, "bench.region");
  s->dir = sdir;
  *state = s;
  return bench_strata_write(s->base.path, layers, err, errlen);
}

static int open_store(void *state, char *err, size_t errlen) {
  store_state *s = state;
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = STRATA_STORE_READ_ONLY;
  c.log_level = STRATA_LOG_OFF;
  int rc = strata_store_open(s->dir, &c, &s->store);
  if (rc < 0)
    return fail(err, errlen, "strata_store_open", rc);
  rc = strata_store_refresh(s->store);
  return rc < 0 ? fail(err, errlen, "strata_store_refresh", rc) : 0;
}

static void close_store(void *state) {
  store_state *s = state;
  strata_store_close(s->store);
  s->store = NULL;
}

static void destroy(void *state) {
  store_state *s = state;
  close_store(s);
  bench_rmtree(s->dir);
  free(s->dir);
  free(s->base.path);
  free(s);
}

/* How a peer reads. */
typedef enum read_mode { READ_GET, READ_DATA } read_mode;

static inline __attribute__((always_inline)) int
lookup(const strata_txn *txn, uint64_t id, read_mode mode, const uint8_t **ptr,
       uint64_t *len) {
  if (mode == READ_DATA) {
    const void *p;
    if (strata_get_data(txn, 1, id, &p, len) != 0)
      return -1;
    *ptr = p;
    return 0;
  }
  strata_layer l;
  if (strata_get(txn, 1, id, &l) != 0)
    return -1;
  *ptr = l.data;
  *len = l.size;
  return 0;
}

static int get_with(void *state, uint64_t key, const uint8_t **ptr, size_t *len,
                    read_mode mode) {
  store_state *s = state;
  strata_txn txn;
  if (strata_read_begin(s->store, &txn) != 0)
    return -1;
  uint64_t n = 0;
  int rc = lookup(&txn, key, mode, ptr, &n);
  /* The pointer outlives the snapshot here: the store is read-only and
   * nothing replaces the file while the benchmark runs. */
  strata_read_end(&txn);
  *len = (size_t)n;
  return rc;
}

static inline __attribute__((always_inline)) uint64_t
run_with(void *state, const uint64_t *keys, size_t m, uint64_t *misses,
         read_mode mode) {
  store_state *s = state;
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i += BATCH) {
    size_t cnt = m - i < BATCH ? m - i : BATCH;
    strata_txn txn;
    bench_check(strata_read_begin(s->store, &txn), "strata_read_begin");
    for (size_t k = 0; k < cnt; k++) {
      const uint8_t *p;
      uint64_t len;
      if (lookup(&txn, keys[i + k], mode, &p, &len) != 0) {
        miss++;
        continue;
      }
      sink += p[0] + p[len - 1];
    }
    strata_read_end(&txn);
  }
  *misses += miss;
  return sink;
}

static int get_get(void *state, uint64_t key, const uint8_t **ptr,
                   size_t *len) {
  return get_with(state, key, ptr, len, READ_GET);
}
static int get_data(void *state, uint64_t key, const uint8_t **ptr,
                    size_t *len) {
  return get_with(state, key, ptr, len, READ_DATA);
}
static uint64_t run_get(void *state, const uint64_t *keys, size_t m,
                        uint64_t *misses) {
  return run_with(state, keys, m, misses, READ_GET);
}
static uint64_t run_data(void *state, const uint64_t *keys, size_t m,
                         uint64_t *misses) {
  return run_with(state, keys, m, misses, READ_DATA);
}

/* "store-batch": a snapshot and one strata_get_data_many() per BATCH keys,
 * then the same first-and-last-byte touches as every other peer. */
static uint64_t run_batch(void *state, const uint64_t *keys, size_t m,
                          uint64_t *misses) {
  store_state *s = state;
  strata_layer_ref refs[BATCH];
  const void *ptrs[BATCH];
  uint64_t sizes[BATCH];
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i += BATCH) {
    size_t cnt = m - i < BATCH ? m - i : BATCH;
    for (size_t k = 0; k < cnt; k++)
      refs[k] = (strata_layer_ref){1, keys[i + k]};
    strata_txn txn;
    bench_check(strata_read_begin(s->store, &txn), "strata_read_begin");
    miss += cnt - strata_get_data_many(&txn, refs, cnt, ptrs, sizes);
    for (size_t k = 0; k < cnt; k++) {
      const uint8_t *p = ptrs[k];
      if (p != NULL)
        sink += p[0] + p[sizes[k] - 1];
    }
    strata_read_end(&txn);
  }
  *misses += miss;
  return sink;
}

const bench_peer bench_store_get = {
    .name = "store-get",
    .build = build,
    .open = open_store,
    .get = get_get,
    .run = run_get,
    .close = close_store,
    .destroy = destroy,
};

const bench_peer bench_store_data = {
    .name = "store-data",
    .shares = &bench_store_get,
    .get = get_data,
    .run = run_data,
};

const bench_peer bench_store_batch = {
    .name = "store-batch",
    .shares = &bench_store_get,
    .get = get_data,
    .run = run_batch,
};
