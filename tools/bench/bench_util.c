/* strata-bench: helpers shared by the driver and the peers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#include <strata.h>

void bench_fill_value(uint64_t pos, uint8_t *buf, size_t size) {
  uint64_t s = pos * 0x2545f4914f6cdd1dull ^ 0x5354524154414245ull;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t r = bench_splitmix64(&s);
    memcpy(buf + i, &r, 8);
  }
  if (i < size) {
    uint64_t r = bench_splitmix64(&s);
    memcpy(buf + i, &r, size - i);
  }
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *bench_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "strata-bench: out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

char *bench_path(const char *dir, const char *name) {
  size_t len = strlen(dir) + strlen(name) + 2;
  char *p = bench_xmalloc(len);
  snprintf(p, len, "%s/%s", dir, name);
  return p;
}

void *bench_state_new(size_t size, const char *dir, const char *name) {
  bench_state *s = bench_xmalloc(size);
  memset(s, 0, size);
  s->path = bench_path(dir, name);
  return s;
}

const char *bench_state_path(const void *state) {
  return ((const bench_state *)state)->path;
}

void bench_state_free(void *state) {
  bench_state *s = state;
  unlink(s->path);
  free(s->path);
  free(s);
}

int bench_write_all(int fd, const void *p, size_t len) {
  const uint8_t *b = p;
  while (len > 0) {
    ssize_t k = write(fd, b, len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    b += k;
    len -= (size_t)k;
  }
  return 0;
}

_Noreturn void bench_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("strata-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

void bench_check(int rc, const char *what) {
  if (rc < 0)
    bench_fail("%s: %s: %s", what, strata_err_name(rc),
               strata_last_error_detail());
}

void bench_say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("# ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

uint64_t bench_scaled(uint64_t n, double scale) {
  double v = (double)n * scale + 0.5;
  return v < 1 ? 1 : (uint64_t)v;
}
