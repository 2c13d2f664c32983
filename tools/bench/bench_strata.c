/* Peers: one Strata region written with strata_writer, read two ways
 * through the public API:
 *   "strata"       strata_region_get(): content, name, metadata, checksum
 *                  (reads the locator table and the 64-byte index entry);
 *   "strata-data"  strata_region_get_data(): content only (reads only the
 *                  locator table), like mdb_get() and cdb_find();
 *   "strata-batch" strata_region_get_data_many() on batches of 64 keys,
 *                  which prefetches ahead within the batch;
 *   "strata-view"  strata_dense_get() through strata_region_dense_view(),
 *                  inlined into the loop: no call into the library. Only
 *                  dense regions written in id order have a view; on others
 *                  this peer uses strata_region_get_data() (same figures).
 * Both read the same file: "strata-data" shares the "strata" peer's build
 * and open (bench_peer.shares). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "strata.h"

typedef struct strata_state {
  bench_state base;
  strata_region *region;
} strata_state;

static int fail(char *err, size_t errlen, const char *what, int rc) {
  snprintf(err, errlen, "%s: %s (%s)", what, strata_strerror(rc),
           strata_last_error_detail());
  return -1;
}

int bench_strata_write(const char *path, const bench_layers *layers, char *err,
                       size_t errlen) {
  strata_writer_options opt;
  strata_writer_options_init(&opt);
  opt.region_id = 1;
  opt.name = "bench";
  /* The ids are distinct (a bijection of the index) and come in any
   * order: a bulk load, whose repeats commit's sort would find. */
  opt.flags = STRATA_WRITER_CHECK_IDS_AT_COMMIT;
  strata_writer *w = NULL;
  int rc = strata_writer_open(path, &opt, &w);
  if (rc < 0)
    return fail(err, errlen, "strata_writer_open", rc);
  uint8_t *buf = bench_xmalloc(layers->size);
  for (uint64_t i = 0; rc >= 0 && i < layers->n; i++) {
    bench_fill_value(i, buf, layers->size);
    rc = strata_writer_add(w, layers->ids[i], NULL, 0, NULL, buf, layers->size);
  }
  free(buf);
  if (rc < 0) {
    strata_writer_abort(w);
    return fail(err, errlen, "strata_writer_add", rc);
  }
  rc = strata_writer_commit(w);
  return rc < 0 ? fail(err, errlen, "strata_writer_commit", rc) : 0;
}

static int build(void **state, const char *dir, const bench_layers *layers,
                 char *err, size_t errlen) {
  strata_state *s = bench_state_new(sizeof *s, dir, "bench.region");
  *state = s;
  return bench_strata_write(s->base.path, layers, err, errlen);
}

static int open_region(void *state, char *err, size_t errlen) {
  strata_state *s = state;
  int rc = strata_region_open(s->base.path, STRATA_OPEN_DEFAULT, &s->region);
  return rc < 0 ? fail(err, errlen, "strata_region_open", rc) : 0;
}

/* How a peer reads the region. */
typedef enum read_mode {
  READ_FULL, /* strata_region_get() */
  READ_DATA, /* strata_region_get_data() */
  READ_VIEW, /* strata_dense_get() inline; get_data where there is no view */
} read_mode;

/* One lookup. Always inlined with a constant mode, so each run() loop makes
 * one direct call into the library per get (none for READ_VIEW). */
static inline __attribute__((always_inline)) int
lookup(const strata_region *r, const strata_dense_view *v, uint64_t id,
       read_mode mode, const uint8_t **ptr, uint64_t *len) {
  const void *p;
  if (mode == READ_VIEW && v != NULL) {
    if (strata_dense_get(v, id, &p, len) != 0)
      return -1;
  } else if (mode != READ_FULL) {
    if (strata_region_get_data(r, id, &p, len) != 0)
      return -1;
  } else {
    strata_layer l;
    if (strata_region_get(r, id, &l) != 0)
      return -1;
    p = l.data;
    *len = l.size;
  }
  *ptr = p;
  return 0;
}

/* The dense view for READ_VIEW, or NULL (sparse regions have none). */
static const strata_dense_view *view_of(const strata_region *r,
                                        strata_dense_view *v) {
  return strata_region_dense_view(r, v) == 0 ? v : NULL;
}

static inline __attribute__((always_inline)) uint64_t
run_with(void *state, const uint64_t *keys, size_t m, uint64_t *misses,
         read_mode mode) {
  const strata_region *r = ((strata_state *)state)->region;
  strata_dense_view view;
  const strata_dense_view *v = mode == READ_VIEW ? view_of(r, &view) : NULL;
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i++) {
    const uint8_t *p;
    uint64_t len;
    if (lookup(r, v, keys[i], mode, &p, &len) != 0) {
      miss++;
      continue;
    }
    sink += p[0] + p[len - 1];
  }
  *misses += miss;
  return sink;
}

static int get_with(void *state, uint64_t key, const uint8_t **ptr, size_t *len,
                    read_mode mode) {
  const strata_region *r = ((strata_state *)state)->region;
  strata_dense_view view;
  const strata_dense_view *v = mode == READ_VIEW ? view_of(r, &view) : NULL;
  uint64_t n;
  if (lookup(r, v, key, mode, ptr, &n) != 0)
    return -1;
  *len = (size_t)n;
  return 0;
}

#define READ_PEER_FUNCS(suffix, mode)                                          \
  static int get_##suffix(void *state, uint64_t key, const uint8_t **ptr,      \
                          size_t *len) {                                       \
    return get_with(state, key, ptr, len, mode);                               \
  }                                                                            \
  static uint64_t run_##suffix(void *state, const uint64_t *keys, size_t m,    \
                               uint64_t *misses) {                             \
    return run_with(state, keys, m, misses, mode);                             \
  }
READ_PEER_FUNCS(full, READ_FULL)
READ_PEER_FUNCS(data, READ_DATA)
READ_PEER_FUNCS(view, READ_VIEW)

/* "strata-batch": strata_region_get_data_many() on batches of BATCH keys,
 * then the same first-and-last-byte touches as every other peer. */
#define BATCH 64
static uint64_t run_batch(void *state, const uint64_t *keys, size_t m,
                          uint64_t *misses) {
  const strata_region *r = ((strata_state *)state)->region;
  const void *ptrs[BATCH];
  uint64_t sizes[BATCH];
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i += BATCH) {
    size_t cnt = m - i < BATCH ? m - i : BATCH;
    miss += cnt - strata_region_get_data_many(r, keys + i, cnt, ptrs, sizes);
    for (size_t k = 0; k < cnt; k++) {
      const uint8_t *p = ptrs[k];
      if (p != NULL)
        sink += p[0] + p[sizes[k] - 1];
    }
  }
  *misses += miss;
  return sink;
}

static void close_region(void *state) {
  strata_state *s = state;
  strata_region_close(s->region);
  s->region = NULL;
}

const bench_peer bench_strata = {
    .name = "strata",
    .build = build,
    .open = open_region,
    .get = get_full,
    .run = run_full,
    .close = close_region,
};

const bench_peer bench_strata_data = {
    .name = "strata-data",
    .shares = &bench_strata,
    .get = get_data,
    .run = run_data,
};

const bench_peer bench_strata_batch = {
    .name = "strata-batch",
    .shares = &bench_strata,
    .get = get_data,
    .run = run_batch,
};

const bench_peer bench_strata_view = {
    .name = "strata-view",
    .shares = &bench_strata,
    .get = get_view,
    .run = run_view,
};
