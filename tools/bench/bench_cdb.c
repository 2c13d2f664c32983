/* Peer: tinycdb. Keys are the 8 bytes of the id. cdb_init() maps the whole
 * file; cdb_find() probes its hash tables in the mapping and cdb_getdata()
 * returns a pointer into it, so no byte is copied. */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

typedef struct cdb_state {
  bench_state base;
  int fd;
  struct cdb cdb;
} cdb_state;

static int build(void **state, const char *dir, const bench_layers *layers,
                 char *err, size_t errlen) {
  cdb_state *s = bench_state_new(sizeof *s, dir, "bench.cdb");
  s->fd = -1;
  *state = s;
  int fd = open(s->base.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", s->base.path, strerror(errno));
    return -1;
  }
  uint8_t *buf = bench_xmalloc(layers->size);
  struct cdb_make cm;
  int rc = cdb_make_start(&cm, fd);
  for (uint64_t i = 0; rc == 0 && i < layers->n; i++) {
    bench_fill_value(i, buf, layers->size);
    uint64_t id = layers->ids[i];
    rc = cdb_make_add(&cm, &id, sizeof id, buf, (unsigned)layers->size);
  }
  if (rc == 0)
    rc = cdb_make_finish(&cm);
  if (rc == 0)
    rc = fsync(fd);
  int e = errno;
  close(fd);
  free(buf);
  if (rc != 0) {
    snprintf(err, errlen, "cdb build: %s", strerror(e));
    return -1;
  }
  return 0;
}

static int open_cdb(void *state, char *err, size_t errlen) {
  cdb_state *s = state;
  s->fd = open(s->base.path, O_RDONLY | O_CLOEXEC);
  if (s->fd < 0 || cdb_init(&s->cdb, s->fd) != 0) {
    snprintf(err, errlen, "cdb open %s: %s", s->base.path, strerror(errno));
    if (s->fd >= 0)
      close(s->fd);
    s->fd = -1;
    return -1;
  }
  return 0;
}

static int get(void *state, uint64_t key, const uint8_t **ptr, size_t *len) {
  cdb_state *s = state;
  if (cdb_find(&s->cdb, &key, sizeof key) <= 0)
    return -1;
  *ptr = cdb_getdata(&s->cdb);
  *len = cdb_datalen(&s->cdb);
  return *ptr == NULL ? -1 : 0;
}

static uint64_t run(void *state, const uint64_t *keys, size_t m,
                    uint64_t *misses) {
  struct cdb *c = &((cdb_state *)state)->cdb;
  uint64_t sink = 0, miss = 0;
  for (size_t i = 0; i < m; i++) {
    uint64_t key = keys[i];
    if (cdb_find(c, &key, sizeof key) <= 0) {
      miss++;
      continue;
    }
    const uint8_t *p = cdb_getdata(c);
    sink += p[0] + p[cdb_datalen(c) - 1];
  }
  *misses += miss;
  return sink;
}

static void close_cdb(void *state) {
  cdb_state *s = state;
  if (s->fd < 0)
    return;
  cdb_free(&s->cdb);
  close(s->fd);
  s->fd = -1;
}

const bench_peer bench_cdb = {
    .name = "tinycdb",
    .build = build,
    .open = open_cdb,
    .get = get,
    .run = run,
    .close = close_cdb,
};
