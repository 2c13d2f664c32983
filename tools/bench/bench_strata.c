/* Peer: a Strata region written with strata_writer and read with
 * strata_region_get(), the public lookup call. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "strata.h"

typedef struct strata_state {
  char *path;
  strata_region *region;
} strata_state;

static int fail(char *err, size_t errlen, const char *what, int rc) {
  snprintf(err, errlen, "%s: %s (%s)", what, strata_strerror(rc),
           strata_last_error_detail());
  return -1;
}

static int build(void **state, const char *dir, const bench_layers *layers,
                 char *err, size_t errlen) {
  strata_state *s = calloc(1, sizeof *s);
  uint8_t *buf = malloc(layers->size);
  if (s == NULL || buf == NULL) {
    free(s);
    free(buf);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->path = bench_path(dir, "bench.region");
  *state = s;
  strata_writer_options opt = {.region_id = 1, .name = "bench"};
  strata_writer *w = NULL;
  int rc = strata_writer_open(s->path, &opt, &w);
  if (rc < 0) {
    free(buf);
    return fail(err, errlen, "strata_writer_open", rc);
  }
  for (uint64_t i = 0; i < layers->n; i++) {
    bench_fill_value(i, buf, layers->size);
    rc = strata_writer_add(w, layers->ids[i], NULL, NULL, buf, layers->size);
    if (rc < 0) {
      free(buf);
      strata_writer_abort(w);
      return fail(err, errlen, "strata_writer_add", rc);
    }
  }
  free(buf);
  rc = strata_writer_commit(w);
  return rc < 0 ? fail(err, errlen, "strata_writer_commit", rc) : 0;
}

static int open_region(void *state, char *err, size_t errlen) {
  strata_state *s = state;
  int rc = strata_region_open(s->path, STRATA_OPEN_DEFAULT, &s->region);
  return rc < 0 ? fail(err, errlen, "strata_region_open", rc) : 0;
}

static int get(void *state, uint64_t key, const uint8_t **ptr, size_t *len) {
  strata_state *s = state;
  strata_layer l;
  if (strata_region_get(s->region, key, &l) != 0)
    return -1;
  *ptr = l.data;
  *len = (size_t)l.size;
  return 0;
}

static uint64_t run(void *state, const uint64_t *keys, size_t m,
                    uint64_t *misses) {
  const strata_region *r = ((strata_state *)state)->region;
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i++) {
    strata_layer l;
    if (strata_region_get(r, keys[i], &l) != 0) {
      miss++;
      continue;
    }
    const uint8_t *p = l.data;
    sink += p[0] + p[l.size - 1];
  }
  *misses += miss;
  return sink;
}

static void close_region(void *state) {
  strata_state *s = state;
  strata_region_close(s->region);
  s->region = NULL;
}

static const char *path(void *state) { return ((strata_state *)state)->path; }

static void destroy(void *state) {
  strata_state *s = state;
  if (s == NULL)
    return;
  close_region(s);
  unlink(s->path);
  free(s->path);
  free(s);
}

const bench_peer bench_strata = {
    .name = "strata",
    .keyed_by_position = 0,
    .build = build,
    .open = open_region,
    .get = get,
    .run = run,
    .close = close_region,
    .path = path,
    .destroy = destroy,
};
