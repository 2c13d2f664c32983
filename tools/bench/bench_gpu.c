/* bench_gpu: the staging pool's transfer targets on a real GPU, as ratios
 * against the CUDA runtime used directly, in one run (tests/gpu/README.md):
 *
 *   (1) strata_stage_to_device() of staged layers (256 x 1 MiB and
 *       64 x 4 MiB by default) spread over three streams, against one
 *       cudaMemcpyAsync() of the same bytes from cudaMallocHost() memory
 *       (and against the same pieces on three raw streams); target >= 0.90.
 *   (2) strata_stage_path_to_device() of a path of 4 KiB layers, against
 *       one pinned cudaMemcpyAsync() of the same total bytes; target
 *       >= 0.70.
 *   (3) pageable copies for comparison: cudaMemcpyAsync() straight from
 *       the region's mapping (layer by layer) and from malloc() memory.
 *   (4) STRATA_STAGING_DIRECT (the mapping registered read-only) against
 *       the same path staged, and packed through staging.
 *   (5) the pool's slab allocation: NUMA memory + cudaHostRegister (the
 *       default) against cudaHostAlloc (STRATA_STAGING_DRIVER_ALLOC), for
 *       8 GiB by default; the issue aims at <= 1 s per 8 GiB.
 *
 * Every rate is wall-clock time from the first enqueue to the end of the
 * last synchronization, median of --reps rounds after an untimed one (the
 * raw pinned copy is also timed with CUDA events). Every transfer is read
 * back and compared once, in the untimed round. GB = 10^9 bytes.
 *
 * Without a GPU it prints "no GPU" and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>
#include <jansson.h>

#include "bench.h" /* bench_fail, _check, _say, _now_ns, _xmalloc, ... */
#include "common/strata_testing.h" /* NO_WORKER, DRIVER_ALLOC */
#include "strata.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define MAX_REPS 51
#define STREAMS 3 /* the pool's default number of streams */

#define TARGET_STAGED 0.90
#define TARGET_PATH 0.70
#define TARGET_SLAB_S_PER_8GIB 1.0

enum { R_1M = 1, R_4M = 2, R_4K = 3 };

/* ---- helpers ------------------------------------------------------------ */

#define CK(expr)                                                               \
  do {                                                                         \
    cudaError_t ck__e = (expr);                                                \
    if (ck__e != cudaSuccess)                                                  \
      bench_fail("%s: %s", #expr, cudaGetErrorString(ck__e));                  \
  } while (0)

/* dir/name into out (PATH_LEN bytes); a longer path is an error. */
#define PATH_LEN 4096
static void join(char *out, const char *dir, const char *name) {
  int n = snprintf(out, PATH_LEN, "%s/%s", dir, name);
  if (n < 0 || n >= PATH_LEN)
    bench_fail("path too long: %s/%s", dir, name);
}

/* The median of v[0..n-1]. */
static double median(const double *v, int n) {
  return bench_summarize(v, n).median;
}

/* Writes dir/r<id>.region: `layers` layers of `size` bytes, ids
 * 0..layers-1, the contents of bench_fill_layer(). */
static void write_region(const char *dir, uint64_t id, uint64_t layers,
                         size_t size) {
  char path[PATH_LEN], name[32], file[40];
  snprintf(name, sizeof name, "r%" PRIu64, id);
  snprintf(file, sizeof file, "%s.region", name);
  join(path, dir, file);
  bench_write_region(path, id, name, layers, size);
}

static strata_store *open_store(const char *dir, uint64_t pool,
                                unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_WARN;
  c.staging.bytes = pool;
  c.staging.streams = STREAMS;
  c.staging.flags = STRATA_STAGING_NO_WORKER | flags;
  strata_store *s;
  bench_check(strata_store_open(dir, &c, &s), dir);
  return s;
}

/* The slabs in the state dump: the first one's method and the sum of
 * their allocation times; *reason gets the host-mode reason, if any. */
static double dump_slabs(strata_store *s, char *method, size_t mlen,
                         char *reason, size_t rlen) {
  char *dump;
  bench_check(strata_dump_state(s, 0, &dump), "strata_dump_state");
  json_error_t err;
  json_t *doc = json_loads(dump, 0, &err);
  strata_free(dump);
  if (doc == NULL)
    bench_fail("state dump: %s", err.text);
  json_t *sg = json_object_get(doc, "staging");
  json_t *slabs = json_object_get(sg, "slabs");
  double ms = 0;
  size_t i;
  json_t *slab;
  json_array_foreach(slabs, i, slab) {
    ms += json_number_value(json_object_get(slab, "alloc_ms"));
    if (i == 0)
      snprintf(method, mlen, "%s",
               json_string_value(json_object_get(slab, "method")));
  }
  const char *why = json_string_value(json_object_get(sg, "host_reason"));
  snprintf(reason, rlen, "%s", why ? why : "");
  json_decref(doc);
  return ms;
}

/* ---- options ------------------------------------------------------------ */

typedef struct options {
  uint64_t mib;       /* bytes of the 1 MiB and of the 4 MiB layers */
  uint64_t small_mib; /* bytes of the 4 KiB path */
  uint64_t slab_gib;  /* (5); 0 skips it */
  int reps;
  const char *dir;
} options;

static void usage(FILE *f) {
  fprintf(f, "usage: bench_gpu [--mib N] [--small-mib N] [--slab-gib N] "
             "[--reps R] [--dir DIR]\n"
             "  --mib N        MiB of 1 MiB layers, and of 4 MiB layers "
             "(default 256)\n"
             "  --small-mib N  MiB of the 4 KiB-layer path (default 64)\n"
             "  --slab-gib N   pool size for the slab allocation timing "
             "(default 8; 0 skips it)\n"
             "  --reps R       timed rounds, median reported (default 5)\n"
             "  --dir DIR      where the region files go (default $TMPDIR or "
             "/tmp)\n");
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

static void parse(int argc, char **argv, options *o) {
  *o = (options){.mib = 256, .small_mib = 64, .slab_gib = 8, .reps = 5};
  static const struct option lo[] = {
      {"mib", required_argument, NULL, 'm'},
      {"small-mib", required_argument, NULL, 's'},
      {"slab-gib", required_argument, NULL, 'g'},
      {"reps", required_argument, NULL, 'r'},
      {"dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  uint64_t v;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case 'm':
      ok = parse_u64(optarg, 4, 1u << 16, &o->mib);
      o->mib = (o->mib + 3) / 4 * 4;
      break;
    case 's':
      ok = parse_u64(optarg, 1, 1u << 14, &o->small_mib);
      break;
    case 'g':
      ok = parse_u64(optarg, 0, 1024, &o->slab_gib);
      break;
    case 'r':
      ok = parse_u64(optarg, 1, MAX_REPS - 1, &v);
      o->reps = (int)v;
      break;
    case 'd':
      o->dir = optarg;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      ok = false;
    }
    if (!ok) {
      usage(stderr);
      exit(2);
    }
  }
}

/* ---- (1) staged layers against pinned memory ---------------------------- */

typedef struct ctx {
  const options *o;
  strata_store *s;
  strata_txn txn;
  strata_stream *ss[STREAMS];
  cudaStream_t raw[STREAMS];
  cudaEvent_t ev0, ev1;
  uint8_t *pinned; /* cudaMallocHost, o->mib MiB */
  uint8_t *pageable;
  void *dev;  /* strata_device_alloc, o->mib MiB (at least the path) */
  void *dev2; /* cudaMalloc, the same size */
  uint64_t dev_bytes;
} ctx;

/* The layers 0..n-1 of `region`, their pages faulted in. */
static void get_layers(const strata_txn *txn, uint64_t region, uint64_t n,
                       strata_layer *out) {
  volatile uint64_t sink = 0;
  for (uint64_t i = 0; i < n; i++) {
    bench_check(strata_get(txn, region, i, &out[i]), "strata_get");
    const volatile uint8_t *p = out[i].data;
    for (uint64_t k = 0; k < out[i].size; k += 4096)
      sink += p[k];
  }
  (void)sink;
}

static void sync_all(ctx *c) {
  for (int k = 0; k < STREAMS; k++)
    bench_check(strata_stream_sync(c->ss[k]), "strata_stream_sync");
}

/* Device bytes [0, n * size) equal the layers end to end (or at offs). */
static void verify_dev(const void *dev, const strata_layer *l, uint64_t n,
                       const uint64_t *offs, uint64_t total, const char *what) {
  uint8_t *back = bench_xmalloc(total);
  CK(cudaMemcpy(back, dev, total, cudaMemcpyDeviceToHost));
  for (uint64_t i = 0, off = 0; i < n; off += l[i].size, i++) {
    uint64_t at = offs ? offs[i] : off;
    if (memcmp(back + at, l[i].data, l[i].size) != 0)
      bench_fail("%s: layer %" PRIu64 " arrived changed", what, i);
  }
  free(back);
}

/* One raw pinned copy of `bytes`, wall time (and CUDA event time in *ev). */
static double raw_pinned(ctx *c, uint64_t bytes, double *ev) {
  uint64_t t0 = bench_now_ns();
  CK(cudaEventRecord(c->ev0, c->raw[0]));
  CK(cudaMemcpyAsync(c->dev2, c->pinned, bytes, cudaMemcpyHostToDevice,
                     c->raw[0]));
  CK(cudaEventRecord(c->ev1, c->raw[0]));
  CK(cudaStreamSynchronize(c->raw[0]));
  uint64_t t1 = bench_now_ns();
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, c->ev0, c->ev1));
  *ev = (double)bytes / ((double)ms * 1e6);
  return bench_gbs(bytes, t1 - t0);
}

typedef struct staged_case {
  uint64_t layers, size;
  double staged, pinned, pinned_ev, pinned_pieces;
  uint32_t segments; /* of all the staged layers */
} staged_case;

static void staged_run(ctx *c, uint64_t region, uint64_t n, uint64_t size,
                       staged_case *out) {
  *out = (staged_case){.layers = n, .size = size};
  uint64_t bytes = n * size;
  strata_layer *l = bench_xmalloc(n * sizeof *l);
  get_layers(&c->txn, region, n, l);
  strata_staged **h = bench_xmalloc(n * sizeof *h);
  for (uint64_t i = 0; i < n; i++) {
    bench_check(strata_stage(&c->txn, region, i, &h[i]), "strata_stage");
    strata_staged_info info;
    bench_check(strata_staged_info_get(h[i], &info), "strata_staged_info_get");
    out->segments += info.segments;
  }
  for (uint64_t i = 0; i < n; i++)
    memcpy(c->pinned + i * size, l[i].data, size);
  double v[4][MAX_REPS];
  for (int r = 0; r <= c->o->reps; r++) {
    /* The library's copies, round-robin over the streams. */
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
      bench_check(strata_stage_to_device(h[i], (uint8_t *)c->dev + i * size,
                                         c->ss[i % STREAMS]),
                  "strata_stage_to_device");
    sync_all(c);
    uint64_t t1 = bench_now_ns();
    if (r == 0)
      verify_dev(c->dev, l, n, NULL, bytes, "staged transfer");
    /* One raw copy of everything. */
    double pin = raw_pinned(c, bytes, &v[2][r]);
    if (r == 0)
      verify_dev(c->dev2, l, n, NULL, bytes, "pinned copy");
    /* The same pieces on raw streams. */
    uint64_t t2 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
      CK(cudaMemcpyAsync((uint8_t *)c->dev2 + i * size, c->pinned + i * size,
                         size, cudaMemcpyHostToDevice, c->raw[i % STREAMS]));
    for (int k = 0; k < STREAMS; k++)
      CK(cudaStreamSynchronize(c->raw[k]));
    uint64_t t3 = bench_now_ns();
    v[0][r] = bench_gbs(bytes, t1 - t0);
    v[1][r] = pin;
    v[3][r] = bench_gbs(bytes, t3 - t2);
  }
  out->staged = median(v[0] + 1, c->o->reps);
  out->pinned = median(v[1] + 1, c->o->reps);
  out->pinned_ev = median(v[2] + 1, c->o->reps);
  out->pinned_pieces = median(v[3] + 1, c->o->reps);
  for (uint64_t i = 0; i < n; i++)
    strata_staged_release(h[i]);
  free(h);
  free(l);
}

/* ---- (2) a path of 4 KiB layers ----------------------------------------- */

typedef struct path_case {
  uint64_t layers, bytes, need;
  double path, pinned, packed_copies;
} path_case;

static strata_layer_ref *path_of(uint64_t region, uint64_t n) {
  strata_layer_ref *p = bench_xmalloc(n * sizeof *p);
  for (uint64_t i = 0; i < n; i++)
    p[i] = (strata_layer_ref){region, i};
  return p;
}

/* Times path batches of `refs` (layers l) into dev on stream `ss` (of
 * the store `txn` reads), from the call to the end of the stream's sync;
 * the untimed first round is verified. GB/s of layer bytes. */
static double path_rounds(ctx *c, const strata_txn *txn, strata_stream *ss,
                          const strata_layer_ref *refs, const strata_layer *l,
                          uint64_t n, void *dev, uint64_t dev_bytes,
                          const char *what) {
  uint64_t need, bytes = 0;
  bench_check(strata_stage_path_size(txn, refs, n, &need),
              "strata_stage_path_size");
  if (need > dev_bytes)
    bench_fail("%s: the path needs %" PRIu64 " bytes, the buffer has %" PRIu64,
               what, need, dev_bytes);
  for (uint64_t i = 0; i < n; i++)
    bytes += l[i].size;
  uint64_t *offs = bench_xmalloc(n * sizeof *offs);
  double v[MAX_REPS];
  for (int r = 0; r <= c->o->reps; r++) {
    uint64_t t0 = bench_now_ns();
    bench_check(strata_stage_path_to_device(txn, refs, n, dev, need, offs, ss),
                "strata_stage_path_to_device");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    v[r] = bench_gbs(bytes, bench_now_ns() - t0);
    if (r == 0)
      verify_dev(dev, l, n, offs, need, what);
  }
  free(offs);
  return median(v + 1, c->o->reps);
}

static void path_run(ctx *c, path_case *out) {
  uint64_t n = c->o->small_mib * MiB / (4 * KiB);
  *out = (path_case){.layers = n, .bytes = n * 4 * KiB};
  strata_layer_ref *refs = path_of(R_4K, n);
  strata_layer *l = bench_xmalloc(n * sizeof *l);
  get_layers(&c->txn, R_4K, n, l);
  bench_check(strata_stage_path_size(&c->txn, refs, n, &out->need),
              "strata_stage_path_size");
  strata_staging_stats a, b;
  bench_check(strata_staging_stats_get(c->s, &a), "strata_staging_stats_get");
  out->path = path_rounds(c, &c->txn, c->ss[0], refs, l, n, c->dev,
                          c->dev_bytes, "4 KiB path");
  bench_check(strata_staging_stats_get(c->s, &b), "strata_staging_stats_get");
  out->packed_copies =
      (double)(b.packed_copies - a.packed_copies) / (c->o->reps + 1);
  for (uint64_t i = 0; i < n; i++)
    memcpy(c->pinned + i * 4 * KiB, l[i].data, 4 * KiB);
  double v[MAX_REPS], ev;
  for (int r = 0; r <= c->o->reps; r++)
    v[r] = raw_pinned(c, out->bytes, &ev);
  out->pinned = median(v + 1, c->o->reps);
  free(refs);
  free(l);
}

/* ---- (3) pageable ------------------------------------------------------- */

typedef struct pageable_case {
  double mapping, malloc_;
} pageable_case;

static void pageable_run(ctx *c, pageable_case *out) {
  uint64_t n = c->o->mib, bytes = n * MiB;
  strata_layer *l = bench_xmalloc(n * sizeof *l);
  get_layers(&c->txn, R_1M, n, l);
  for (uint64_t i = 0; i < n; i++)
    memcpy(c->pageable + i * MiB, l[i].data, MiB);
  double v[2][MAX_REPS];
  for (int r = 0; r <= c->o->reps; r++) {
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
      CK(cudaMemcpyAsync((uint8_t *)c->dev2 + i * MiB, l[i].data, MiB,
                         cudaMemcpyHostToDevice, c->raw[0]));
    CK(cudaStreamSynchronize(c->raw[0]));
    uint64_t t1 = bench_now_ns();
    if (r == 0)
      verify_dev(c->dev2, l, n, NULL, bytes, "pageable copy from the mapping");
    CK(cudaMemcpyAsync(c->dev2, c->pageable, bytes, cudaMemcpyHostToDevice,
                       c->raw[0]));
    CK(cudaStreamSynchronize(c->raw[0]));
    uint64_t t2 = bench_now_ns();
    if (r == 0)
      verify_dev(c->dev2, l, n, NULL, bytes, "pageable copy from malloc");
    v[0][r] = bench_gbs(bytes, t1 - t0);
    v[1][r] = bench_gbs(bytes, t2 - t1);
  }
  out->mapping = median(v[0] + 1, c->o->reps);
  out->malloc_ = median(v[1] + 1, c->o->reps);
  free(l);
}

/* ---- (4) STRATA_STAGING_DIRECT ------------------------------------------ */

typedef struct direct_case {
  uint64_t layers;
  int readonly_supported;
  double direct, staged, packed;
} direct_case;

/* The path of the 1 MiB layers on a fresh store opened with `flags`,
 * nothing staged. */
static double path_fresh(ctx *c, const char *dir, unsigned flags,
                         const strata_layer_ref *refs, uint64_t n) {
  strata_store *s = open_store(dir, 64 * MiB, flags);
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  strata_stream *ss;
  bench_check(strata_stream_create(s, &ss), "strata_stream_create");
  strata_layer *l = bench_xmalloc(n * sizeof *l);
  get_layers(&txn, R_1M, n, l);
  double v = path_rounds(c, &txn, ss, refs, l, n, c->dev2, c->dev_bytes,
                         flags ? "direct path" : "packed path");
  strata_stream_destroy(ss);
  strata_staging_stats st;
  bench_check(strata_staging_stats_get(s, &st), "strata_staging_stats_get");
  if (st.staged_layers != 0)
    bench_fail("a path batch staged layers");
  free(l);
  strata_read_end(&txn);
  strata_store_close(s);
  return v;
}

static void direct_run(ctx *c, const char *dir, direct_case *out) {
  uint64_t n = c->o->mib;
  *out = (direct_case){.layers = n};
  CK(cudaDeviceGetAttribute(&out->readonly_supported,
                            cudaDevAttrHostRegisterReadOnlySupported, 0));
  strata_layer_ref *refs = path_of(R_1M, n);
  /* Staged: the main store holds every 1 MiB layer staged. */
  strata_layer *l = bench_xmalloc(n * sizeof *l);
  get_layers(&c->txn, R_1M, n, l);
  out->staged = path_rounds(c, &c->txn, c->ss[0], refs, l, n, c->dev,
                            c->dev_bytes, "staged path");
  free(l);
  out->direct = path_fresh(c, dir, STRATA_STAGING_DIRECT, refs, n);
  out->packed = path_fresh(c, dir, 0, refs, n);
  free(refs);
}

/* ---- (5) slab allocation ------------------------------------------------ */

typedef struct slab_case {
  char method[2][32];
  double open_ms[2], slab_ms[2], close_ms[2];
  int rounds;
} slab_case;

static void slab_run(const options *o, const char *dir, slab_case *out) {
  *out = (slab_case){.rounds = o->reps < 3 ? o->reps : 3};
  char empty[PATH_LEN];
  join(empty, dir, "empty");
  if (mkdir(empty, 0755) != 0)
    bench_fail("mkdir %s: %s", empty, strerror(errno));
  double v[3][2][MAX_REPS];
  for (int r = 0; r < out->rounds; r++) {
    for (int q = 0; q < 2; q++) {
      int k = (q + r) % 2; /* alternate which goes first */
      unsigned flags = k ? STRATA_STAGING_DRIVER_ALLOC : 0;
      bench_say("slabs: %" PRIu64 " GiB, %s, round %d of %d", o->slab_gib,
                k ? "DRIVER_ALLOC" : "default", r + 1, out->rounds);
      uint64_t t0 = bench_now_ns();
      strata_store *s = open_store(empty, o->slab_gib * GiB, flags);
      uint64_t t1 = bench_now_ns();
      char reason[256];
      v[1][k][r] = dump_slabs(s, out->method[k], sizeof out->method[k], reason,
                              sizeof reason);
      uint64_t t2 = bench_now_ns();
      strata_store_close(s);
      uint64_t t3 = bench_now_ns();
      v[0][k][r] = (double)(t1 - t0) / 1e6;
      v[2][k][r] = (double)(t3 - t2) / 1e6;
    }
  }
  for (int k = 0; k < 2; k++) {
    out->open_ms[k] = median(v[0][k], out->rounds);
    out->slab_ms[k] = median(v[1][k], out->rounds);
    out->close_ms[k] = median(v[2][k], out->rounds);
  }
  rmdir(empty);
}

/* ---- main --------------------------------------------------------------- */

static void remove_dir(const char *dir) {
  char path[PATH_LEN];
  static const char *const files[] = {"r1.region", "r2.region", "r3.region",
                                      ".strata.lock"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    join(path, dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

int main(int argc, char **argv) {
  options o;
  parse(argc, argv, &o);
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    printf("no GPU: %s; nothing to measure\n",
           e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
    return 0;
  }
  struct cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  int drv = 0, rt = 0;
  CK(cudaDriverGetVersion(&drv));
  CK(cudaRuntimeGetVersion(&rt));
  printf("bench_gpu: strata %s; GPU 0: %s (PCI %04x:%02x:%02x, %.1f GiB, "
         "%d SMs); CUDA driver %d.%d, runtime %d.%d; %ld CPUs\n",
         strata_version_string(), prop.name, prop.pciDomainID, prop.pciBusID,
         prop.pciDeviceID, (double)prop.totalGlobalMem / (double)GiB,
         prop.multiProcessorCount, drv / 1000, drv % 1000 / 10, rt / 1000,
         rt % 1000 / 10, sysconf(_SC_NPROCESSORS_ONLN));
  printf("median of %d rounds after an untimed one; GB = 10^9 bytes; "
         "wall time from the first enqueue to the last sync\n\n",
         o.reps);

  const char *parent = o.dir ? o.dir : getenv("TMPDIR");
  char dir[PATH_LEN];
  join(dir, parent && *parent ? parent : "/tmp", "bench-gpu-XXXXXX");
  if (mkdtemp(dir) == NULL)
    bench_fail("mkdtemp %s: %s", dir, strerror(errno));
  bench_say("writing %" PRIu64 " MiB of 1 MiB, %" PRIu64 " MiB of 4 MiB and "
            "%" PRIu64 " MiB of 4 KiB layers under %s",
            o.mib, o.mib, o.small_mib, dir);
  write_region(dir, R_1M, o.mib, MiB);
  write_region(dir, R_4M, o.mib / 4, 4 * MiB);
  write_region(dir, R_4K, o.small_mib * MiB / (4 * KiB), 4 * KiB);

  /* Room for both staged sets under the 80% watermark, plus the pack
   * buffers. */
  ctx c = {.o = &o};
  uint64_t pool = (2 * o.mib * MiB) * 4 / 3 + 64 * MiB;
  c.s = open_store(dir, pool, 0);
  strata_staging_stats st;
  bench_check(strata_staging_stats_get(c.s, &st), "strata_staging_stats_get");
  char method[32], reason[256];
  double slab_ms =
      dump_slabs(c.s, method, sizeof method, reason, sizeof reason);
  if (strcmp(st.backend, "cuda") != 0)
    bench_fail("the staging pool runs in host mode: %s", reason);
  printf("staging pool: %" PRIu64 " MiB, backend %s (%s), NUMA node %d, "
         "%" PRIu64 " slab(s) by %s in %.0f ms, %" PRIu64 " KiB blocks\n\n",
         st.slab_bytes >> 20, st.backend, st.device_name, st.numa_node,
         st.slabs, method, slab_ms, st.block_size >> 10);
  bench_check(strata_read_begin(c.s, &c.txn), "strata_read_begin");
  for (int k = 0; k < STREAMS; k++) {
    bench_check(strata_stream_create(c.s, &c.ss[k]), "strata_stream_create");
    CK(cudaStreamCreateWithFlags(&c.raw[k], cudaStreamNonBlocking));
  }
  CK(cudaEventCreate(&c.ev0));
  CK(cudaEventCreate(&c.ev1));
  c.dev_bytes = o.mib * MiB;
  uint64_t small = o.small_mib * MiB / (4 * KiB);
  uint64_t path_need = small * 4 * KiB; /* 4 KiB layers: no padding */
  if (path_need > c.dev_bytes)
    c.dev_bytes = path_need;
  CK(cudaMallocHost((void **)&c.pinned, c.dev_bytes));
  c.pageable = bench_xmalloc(c.dev_bytes);
  bench_check(strata_device_alloc(c.s, c.dev_bytes, c.ss[0], &c.dev),
              "strata_device_alloc");
  bench_check(strata_stream_sync(c.ss[0]), "strata_stream_sync");
  CK(cudaMalloc(&c.dev2, c.dev_bytes));

  staged_case s1, s4;
  bench_say("(1) staged 1 MiB layers");
  staged_run(&c, R_1M, o.mib, MiB, &s1);
  bench_say("(1) staged 4 MiB layers");
  staged_run(&c, R_4M, o.mib / 4, 4 * MiB, &s4);
  path_case pc;
  bench_say("(2) path of 4 KiB layers");
  path_run(&c, &pc);
  pageable_case pg;
  bench_say("(3) pageable copies");
  pageable_run(&c, &pg);
  direct_case dc;
  bench_say("(4) STRATA_STAGING_DIRECT");
  direct_run(&c, dir, &dc);

  printf("(1) staged layers, strata_stage_to_device over %d streams, "
         "against one cudaMemcpyAsync from cudaMallocHost memory:\n",
         STREAMS);
  printf("  %-22s %9s %9s %12s %12s %9s\n", "layers", "staged", "pinned",
         "pinned(ev)", "pinned/3str", "ratio");
  const staged_case *sc[2] = {&s1, &s4};
  for (int i = 0; i < 2; i++) {
    char what[48];
    snprintf(what, sizeof what, "%" PRIu64 " x %" PRIu64 " MiB (%u seg)",
             sc[i]->layers, sc[i]->size >> 20, sc[i]->segments);
    printf("  %-22s %9.2f %9.2f %12.2f %12.2f %9.3f\n", what, sc[i]->staged,
           sc[i]->pinned, sc[i]->pinned_ev, sc[i]->pinned_pieces,
           sc[i]->staged / sc[i]->pinned);
  }
  printf("  (GB/s; pinned(ev): the raw copy timed by CUDA events; "
         "pinned/3str: the same pieces as staged on 3 raw streams)\n");
  printf("(2) strata_stage_path_to_device of %" PRIu64 " x 4 KiB (%.0f "
         "packed copies): %.2f GB/s; one pinned copy of the same bytes: "
         "%.2f GB/s; ratio %.3f\n",
         pc.layers, pc.packed_copies, pc.path, pc.pinned, pc.path / pc.pinned);
  printf("(3) pageable cudaMemcpyAsync of %" PRIu64 " MiB: from the region "
         "mapping, 1 MiB at a time, %.2f GB/s; from malloc memory, one "
         "copy, %.2f GB/s; pinned %.2f GB/s\n",
         o.mib, pg.mapping, pg.malloc_, s1.pinned);
  printf("(4) path of %" PRIu64 " x 1 MiB layers: DIRECT (read-only "
         "registration %ssupported) %.2f GB/s; staged %.2f GB/s; packed "
         "through staging %.2f GB/s; direct/staged %.3f\n",
         dc.layers, dc.readonly_supported ? "" : "NOT ", dc.direct, dc.staged,
         dc.packed, dc.direct / dc.staged);

  /* Free what (1)-(4) used before the slabs of (5) are allocated. */
  CK(cudaFree(c.dev2));
  CK(cudaFreeHost(c.pinned));
  free(c.pageable);
  bench_check(strata_device_free(c.s, c.dev, c.ss[0]), "strata_device_free");
  for (int k = 0; k < STREAMS; k++) {
    strata_stream_destroy(c.ss[k]);
    CK(cudaStreamDestroy(c.raw[k]));
  }
  CK(cudaEventDestroy(c.ev0));
  CK(cudaEventDestroy(c.ev1));
  strata_read_end(&c.txn);
  strata_store_close(c.s);

  slab_case sl = {0};
  if (o.slab_gib > 0) {
    slab_run(&o, dir, &sl);
    printf("(5) slab allocation of a %" PRIu64 " GiB pool (strata_store_open "
           "of an empty store; median of %d):\n",
           o.slab_gib, sl.rounds);
    for (int k = 0; k < 2; k++) {
      double per8 = sl.slab_ms[k] / 1000 / (double)o.slab_gib * 8;
      printf("  %-28s %-16s open %8.0f ms, slabs %8.0f ms (%.2f s per "
             "8 GiB), close %6.0f ms\n",
             k ? "STRATA_STAGING_DRIVER_ALLOC" : "default", sl.method[k],
             sl.open_ms[k], sl.slab_ms[k], per8, sl.close_ms[k]);
    }
  }

  printf("\ntargets:\n");
  for (int i = 0; i < 2; i++)
    printf("  staged %" PRIu64 " MiB layers / pinned copy >= %.2f: %.3f  "
           "%s\n",
           sc[i]->size >> 20, TARGET_STAGED, sc[i]->staged / sc[i]->pinned,
           sc[i]->staged / sc[i]->pinned >= TARGET_STAGED ? "met" : "NOT met");
  printf("  4 KiB path / pinned copy >= %.2f: %.3f  %s\n", TARGET_PATH,
         pc.path / pc.pinned,
         pc.path / pc.pinned >= TARGET_PATH ? "met" : "NOT met");
  if (o.slab_gib > 0) {
    double per8 = sl.slab_ms[0] / 1000 / (double)o.slab_gib * 8;
    printf("  default slab allocation <= %.1f s per 8 GiB: %.2f s  %s\n",
           TARGET_SLAB_S_PER_8GIB, per8,
           per8 <= TARGET_SLAB_S_PER_8GIB ? "met" : "NOT met");
  }
  remove_dir(dir);
  return 0;
}
