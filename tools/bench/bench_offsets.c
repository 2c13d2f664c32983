/* Peer: the lower bound. A file holding u64 offsets[n + 1] (absolute file
 * offsets; value i is [offsets[i], offsets[i + 1])) followed by the values,
 * mapped with one mmap(). A get is one load from the offset table and the
 * value's own cache lines: there are no ids, no hashing, no checks. Values
 * start 64-byte aligned, as Strata's do by default, so both touch the same
 * number of cache lines per value. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

typedef struct offsets_state {
  bench_state base;
  uint64_t n;
  const uint8_t *map;
  size_t map_len;
} offsets_state;

static int build(void **state, const char *dir, const bench_layers *layers,
                 char *err, size_t errlen) {
  offsets_state *s = bench_state_new(sizeof *s, dir, "bench.offsets");
  uint64_t n = layers->n;
  uint64_t *off = bench_xmalloc((n + 1) * sizeof *off);
  s->n = n;
  *state = s;
  uint64_t table = (n + 1) * sizeof *off;
  uint64_t data = (table + 63) & ~(uint64_t)63;
  for (uint64_t i = 0; i <= n; i++)
    off[i] = data + i * layers->size;
  int fd = open(s->base.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  static const uint8_t pad[64];
  int rc = fd < 0 ? -1 : bench_write_all(fd, off, table);
  if (rc == 0)
    rc = bench_write_all(fd, pad, data - table);
  /* Values go through a 1 MiB staging buffer so writing stays cheap. */
  size_t per = (1u << 20) / layers->size ? (1u << 20) / layers->size : 1;
  uint8_t *stage = bench_xmalloc(per * layers->size);
  for (uint64_t i = 0; rc == 0 && i < n; i += per) {
    size_t k = n - i < per ? (size_t)(n - i) : per;
    for (size_t j = 0; j < k; j++)
      bench_fill_value(i + j, stage + j * layers->size, layers->size);
    rc = bench_write_all(fd, stage, k * layers->size);
  }
  if (rc == 0)
    rc = fsync(fd);
  int e = errno;
  if (fd >= 0)
    close(fd);
  free(stage);
  free(off);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", s->base.path, strerror(e));
    return -1;
  }
  return 0;
}

static int open_file(void *state, char *err, size_t errlen) {
  offsets_state *s = state;
  int fd = open(s->base.path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(err, errlen, "%s: %s", s->base.path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) {
    snprintf(err, errlen, "%s: mmap: %s", s->base.path, strerror(e));
    return -1;
  }
  s->map = p;
  s->map_len = (size_t)st.st_size;
  return 0;
}

static int get(void *state, uint64_t key, const uint8_t **ptr, size_t *len) {
  offsets_state *s = state;
  if (key >= s->n)
    return -1;
  const uint64_t *off = (const uint64_t *)s->map;
  *ptr = s->map + off[key];
  *len = (size_t)(off[key + 1] - off[key]);
  return 0;
}

static uint64_t run(void *state, const uint64_t *keys, size_t m,
                    uint64_t *misses) {
  offsets_state *s = state;
  const uint8_t *base = s->map;
  const uint64_t *off = (const uint64_t *)base;
  uint64_t sink = 0;
  (void)misses; /* keys are positions below n by construction */
  for (size_t i = 0; i < m; i++) {
    uint64_t k = keys[i];
    const uint8_t *p = base + off[k];
    sink += p[0] + p[off[k + 1] - off[k] - 1];
  }
  return sink;
}

static void close_file(void *state) {
  offsets_state *s = state;
  if (s->map != NULL)
    munmap((void *)s->map, s->map_len);
  s->map = NULL;
}

const bench_peer bench_offsets = {
    .name = "offset-array",
    .keyed_by_position = 1,
    .build = build,
    .open = open_file,
    .get = get,
    .run = run,
    .close = close_file,
};
