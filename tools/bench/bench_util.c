/* strata-bench: helpers shared by the scenarios and the peers, and by
 * bench_gpu (failing, checking, logging, the clock, memory). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

void bench_fill_layer(uint64_t region, uint64_t id, uint8_t *buf, size_t size) {
  bench_fill_value(region << 40 ^ id, buf, size);
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

double bench_load1(void) {
  double v = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f != NULL) {
    if (fscanf(f, "%lf", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

char *bench_mkdir(const char *dir, const char *name) {
  char *p = bench_path(dir, name);
  if (mkdir(p, 0755) != 0)
    bench_fail("mkdir %s: %s", p, strerror(errno));
  return p;
}

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

void bench_rmtree(const char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

double bench_gbs(uint64_t bytes, uint64_t ns) {
  return (double)bytes / (double)(ns ? ns : 1);
}

int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_stat bench_summarize(const double *v, int n) {
  double *s = bench_xmalloc((size_t)n * sizeof *s);
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
  bench_stat r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0],
                  s[n - 1]};
  free(s);
  return r;
}

void bench_warm_page_cache(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  static uint8_t buf[1 << 20];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
}

void bench_write_region(const char *path, uint64_t id, const char *name,
                        uint64_t layers, size_t size) {
  strata_writer_options wo;
  strata_writer_options_init(&wo);
  wo.region_id = id;
  wo.name = name;
  strata_writer *w;
  bench_check(strata_writer_open(path, &wo, &w), path);
  /* Room for the largest size drawn when `size` is 0. */
  uint8_t *buf = bench_xmalloc(size > 256 ? size : 256);
  uint64_t s = id;
  for (uint64_t i = 0; i < layers; i++) {
    size_t k = size ? size : 64 + (size_t)(bench_splitmix64(&s) % 193);
    bench_fill_layer(id, i, buf, k);
    int rc = strata_writer_add(w, i, NULL, 0, NULL, buf, k);
    if (rc < 0) {
      strata_writer_abort(w);
      bench_check(rc, path);
    }
  }
  bench_check(strata_writer_commit(w), path);
  free(buf);
}

/* Builds with peer p into dir, returns the seconds it took, and removes
 * what it wrote. */
double bench_build_once(const bench_peer *p, const char *dir,
                        const bench_layers *layers) {
  char err[512];
  void *state = NULL;
  uint64_t t0 = bench_now_ns();
  if (p->build(&state, dir, layers, err, sizeof err) != 0)
    bench_fail("%s build: %s", p->name, err);
  double s = (double)(bench_now_ns() - t0) / 1e9;
  if (p->destroy != NULL) {
    p->destroy(state);
  } else {
    p->close(state);
    bench_state_free(state);
  }
  return s;
}
