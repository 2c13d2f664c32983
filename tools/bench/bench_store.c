/* Store scenarios of strata-bench: "store-open", "store-read" and
 * "crystallize" (the "rcu" scenario is in bench_rcu.c). docs/BENCHMARKS.md
 * describes what each measures; in short:
 *
 *   store-open   14 region files of 100,000 layers: strata_store_open()
 *                with the default config (index checksums on a background
 *                thread) and with STRATA_STORE_VERIFY_AT_OPEN, next to
 *                strata_region_open() of each file one after another.
 *   store-read   random strata_get() calls in snapshots by 2 and by 128
 *                reader threads, and by 2 while a writer puts layers into a
 *                proto and crystallizes it in a loop.
 *   crystallize  strata_crystallize() of a proto (64 KiB and 256 B layers)
 *                against write(2) and a read/write copy of the same bytes.
 *
 * Layer counts are the defaults below times bench_store_params.scale. Only
 * the public API (include/strata.h) is used. Nothing is judged: the targets
 * of the store milestone are printed next to the figures. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "common/strata_testing.h" /* STRATA_STORE_NO_READ_STATS */
#include "strata.h"

/* At scale 1 (--n 1000000). */
#define OPEN_REGIONS 14
#define OPEN_LAYERS 100000
#define OPEN_MIN_REPS 20
#define READ_REGIONS 4
#define READ_LAYERS 100000
#define READ_BATCH 64 /* gets per snapshot, and per counter update */
#define READ_PUTS_PER_CYCLE 1000
#define READ_WARMUP_S 0.25 /* every thread started and in its loop */
#define READ_MAX_THREADS 128
#define CRYS_BIG_LAYERS 4096 /* x 64 KiB = 256 MiB */
#define CRYS_BIG_SIZE 65536
#define CRYS_SMALL_LAYERS 400000 /* x 256 B = 102 MB */
#define CRYS_SMALL_SIZE 256
#define CRYS_MAX_REPS 3
#define COPY_BUF (1u << 20) /* the writer's own buffer is 1 MiB too */

/* The targets of the store milestone, printed next to the measurements. */
#define TARGET_OPEN_MS 10.0
#define TARGET_READ_RATIO 0.90
#define TARGET_CRYS_GBS 1.0

/* ---- helpers ------------------------------------------------------------ */


static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_stat bench_summarize(const double *v, int n) {
  double *s = bench_xmalloc((size_t)n * sizeof *s);
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  bench_stat r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0],
                  s[n - 1]};
  free(s);
  return r;
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

static double cpu_s(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(uint64_t t_ns) {
  for (uint64_t now; (now = bench_now_ns()) < t_ns;) {
    uint64_t d = t_ns - now;
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

/* Drops a file from the page cache and reads it through once, so that
 * every file is cached the same way (through readahead) whatever wrote it;
 * see warm_page_cache() in strata_bench.c. */
static void recache(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  static uint8_t buf[1 << 20];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
}

/* The contents of layer `id` of region `region`: `size` pseudo-random
 * bytes. */
static void fill_layer(uint64_t region, uint64_t id, uint8_t *buf,
                       size_t size) {
  bench_fill_value(region << 40 ^ id, buf, size);
}

/* Writes region `id` with `layers` dense ids 0..layers-1 through the
 * writer. `size` 0 means a size per layer drawn from [64, 256]. */
static void write_region(const char *path, uint64_t id, const char *name,
                         uint64_t layers, size_t size) {
  strata_writer_options wo = {.region_id = id, .name = name};
  strata_writer *w;
  bench_check(strata_writer_open(path, &wo, &w), path);
  uint8_t buf[CRYS_SMALL_SIZE];
  uint8_t *big = size > sizeof buf ? bench_xmalloc(size) : buf;
  uint64_t s = id;
  for (uint64_t i = 0; i < layers; i++) {
    size_t k = size ? size : 64 + (size_t)(bench_splitmix64(&s) % 193);
    fill_layer(id, i, big, k);
    int rc = strata_writer_add(w, i, NULL, NULL, big, k);
    if (rc < 0) {
      strata_writer_abort(w);
      bench_check(rc, path);
    }
  }
  bench_check(strata_writer_commit(w), path);
  if (big != buf)
    free(big);
}

static strata_store *open_store(const char *dir, unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = flags;
  strata_store *s;
  bench_check(strata_store_open(dir, &c, &s), dir);
  return s;
}

static uint64_t region_count(strata_store *s) {
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  uint64_t n = strata_store_region_count(&txn);
  strata_read_end(&txn);
  return n;
}

static void json_stat(FILE *f, const char *k, bench_stat s) {
  fprintf(f, "\"%s\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f}", k,
          s.median, s.min, s.max);
}

/* ---- store-open --------------------------------------------------------- */

void bench_store_open_run(const bench_store_params *p,
                          bench_store_open_result *r) {
  *r = (bench_store_open_result){.regions = OPEN_REGIONS,
                                 .layers = bench_scaled(OPEN_LAYERS, p->scale),
                                 .load1 = bench_load1()};
  r->opens = p->reps < OPEN_MIN_REPS ? OPEN_MIN_REPS : p->reps;
  char *dir = bench_mkdir(p->dir, "store-open");
  char *paths[OPEN_REGIONS];
  bench_say("store-open: writing %d regions x %" PRIu64 " layers of 64-256 B",
      OPEN_REGIONS, r->layers);
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < OPEN_REGIONS; i++) {
    char name[32];
    snprintf(name, sizeof name, "open-%02u.region", i + 1);
    paths[i] = bench_path(dir, name);
    name[strlen(name) - strlen(".region")] = '\0';
    write_region(paths[i], i + 1, name, r->layers, 0);
  }
  r->build_s = (double)(bench_now_ns() - t0) / 1e9;
  for (unsigned i = 0; i < OPEN_REGIONS; i++) {
    recache(paths[i]);
    strata_region *reg;
    strata_region_info info;
    bench_check(strata_region_open(paths[i], STRATA_OPEN_DEFAULT, &reg), paths[i]);
    strata_region_info_get(reg, &info);
    r->file_bytes += info.file_size;
    r->index_bytes += info.file_size - info.index_offset;
    strata_region_close(reg);
  }
  /* Every region must be served, by both ways of opening. */
  for (unsigned flags = 0; flags <= STRATA_STORE_VERIFY_AT_OPEN;
       flags += STRATA_STORE_VERIFY_AT_OPEN) {
    strata_store *s = open_store(dir, flags);
    bench_check(strata_store_refresh(s), "strata_store_refresh");
    if (region_count(s) != OPEN_REGIONS)
      bench_fail("store-open: the store serves %" PRIu64 " of %d regions",
           region_count(s), OPEN_REGIONS);
    strata_store_close(s);
  }

  bench_say("store-open: %d opens of each kind", r->opens);
  double *ms[5];
  for (int k = 0; k < 5; k++)
    ms[k] = bench_xmalloc((size_t)r->opens * sizeof *ms[k]);
  for (int i = 0; i < r->opens; i++) {
    /* Rotate the order, as the get scenarios do. */
    for (int q = 0; q < 3; q++) {
      int kind = (q + i) % 3;
      uint64_t a = bench_now_ns(), b, c;
      if (kind == 0) {
        strata_store *s = open_store(dir, 0);
        b = bench_now_ns();
        bench_check(strata_store_refresh(s), "strata_store_refresh");
        c = bench_now_ns();
        strata_store_close(s);
        ms[0][i] = (double)(b - a) / 1e6;
        ms[1][i] = (double)(c - a) / 1e6;
        ms[4][i] = (double)(bench_now_ns() - c) / 1e6;
      } else if (kind == 1) {
        strata_store *s = open_store(dir, STRATA_STORE_VERIFY_AT_OPEN);
        b = bench_now_ns();
        strata_store_close(s);
        ms[2][i] = (double)(b - a) / 1e6;
      } else {
        strata_region *regs[OPEN_REGIONS];
        for (unsigned j = 0; j < OPEN_REGIONS; j++)
          bench_check(strata_region_open(paths[j], STRATA_OPEN_DEFAULT, &regs[j]),
                paths[j]);
        b = bench_now_ns();
        for (unsigned j = 0; j < OPEN_REGIONS; j++)
          strata_region_close(regs[j]);
        ms[3][i] = (double)(b - a) / 1e6;
      }
    }
  }
  r->open_ms = bench_summarize(ms[0], r->opens);
  r->verified_ms = bench_summarize(ms[1], r->opens);
  r->verify_at_open_ms = bench_summarize(ms[2], r->opens);
  r->serial_ms = bench_summarize(ms[3], r->opens);
  r->close_ms = bench_summarize(ms[4], r->opens);
  for (int k = 0; k < 5; k++)
    free(ms[k]);
  for (unsigned i = 0; i < OPEN_REGIONS; i++)
    free(paths[i]);
  bench_rmtree(dir);
  free(dir);
}

void bench_store_open_print(FILE *f, const bench_store_open_result *r) {
  fprintf(f,
          "store-open: %" PRIu64 " regions x %" PRIu64
          " layers of 64-256 B (dense ids), %.1f MB of files, %.1f MB of "
          "index sections; files in the page cache; %d opens of each kind; "
          "load average %.2f\n",
          r->regions, r->layers, (double)r->file_bytes / 1e6,
          (double)r->index_bytes / 1e6, r->opens, r->load1);
  fprintf(f, "  %-50s %9s %9s %9s\n", "ms", "median", "min", "max");
  const struct {
    const char *what;
    bench_stat s;
  } rows[] = {
      {"strata_store_open, default (checksums after open)", r->open_ms},
      {"  ... then strata_store_refresh (checksums done)", r->verified_ms},
      {"strata_store_open, STRATA_STORE_VERIFY_AT_OPEN", r->verify_at_open_ms},
      {"strata_region_open of each file, serially", r->serial_ms},
      {"strata_store_close after a default open", r->close_ms},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    fprintf(f, "  %-50s %9.3f %9.3f %9.3f\n", rows[i].what, rows[i].s.median,
            rows[i].s.min, rows[i].s.max);
  fprintf(f,
          "  default/verify-at-open %.2f   default/serial %.2f   "
          "verify-at-open/serial %.2f\n",
          r->open_ms.median / r->verify_at_open_ms.median,
          r->open_ms.median / r->serial_ms.median,
          r->verify_at_open_ms.median / r->serial_ms.median);
  fprintf(f,
          "  target: default open <= %.0f ms; measured %.2f ms median "
          "(%.2f x the target)\n\n",
          TARGET_OPEN_MS, r->open_ms.median,
          r->open_ms.median / TARGET_OPEN_MS);
}

void bench_store_open_json(FILE *f, const bench_store_open_result *r) {
  fprintf(f,
          "    \"store-open\": {\"regions\": %" PRIu64 ", \"layers\": %" PRIu64
          ", \"file_bytes\": %" PRIu64 ", \"index_bytes\": %" PRIu64
          ", \"build_s\": %.3f, \"opens\": %d, \"load1\": %.2f, \"ms\": {",
          r->regions, r->layers, r->file_bytes, r->index_bytes, r->build_s,
          r->opens, r->load1);
  json_stat(f, "open_default", r->open_ms);
  fputs(", ", f);
  json_stat(f, "open_default_then_refresh", r->verified_ms);
  fputs(", ", f);
  json_stat(f, "open_verify_at_open", r->verify_at_open_ms);
  fputs(", ", f);
  json_stat(f, "region_open_serial", r->serial_ms);
  fputs(", ", f);
  json_stat(f, "close", r->close_ms);
  fprintf(f, "}, \"target_open_ms\": %.1f}", TARGET_OPEN_MS);
}

/* ---- store-read --------------------------------------------------------- */

/* What every thread of a phase shares. */
typedef struct read_shared {
  strata_store *s;
  uint64_t regions, layers;
  size_t size;
  unsigned batch; /* gets per snapshot: READ_BATCH, or 1 */
  pthread_barrier_t start;
  _Atomic bool stop;
} read_shared;

/* One reader thread. `gets` is on a cache line of its own: the thread
 * stores its count there after every READ_BATCH gets, the driver reads it. */
typedef struct reader {
  _Alignas(64) _Atomic uint64_t gets;
  read_shared *sh;
  pthread_t tid;
  uint64_t seed, sink, bad;
} reader;

/* One random get: region and layer uniform; reads the content's first and
 * last byte. A miss or a wrong size counts as bad (none may happen: the
 * writer only replaces layers, with the same size). */
static inline uint64_t one_get(const strata_txn *txn, const read_shared *sh,
                               uint64_t *rng, uint64_t *bad) {
  uint64_t x = bench_splitmix64(rng);
  uint64_t id = (uint64_t)(((unsigned __int128)x * sh->layers) >> 64);
  uint64_t region = 1 + (((x & 0xffffffffu) * sh->regions) >> 32);
  strata_layer l;
  if (strata_get(txn, region, id, &l) != 0 || l.size != sh->size) {
    (*bad)++;
    return 0;
  }
  const uint8_t *d = l.data;
  return d[0] + d[l.size - 1];
}

static void *reader_main(void *arg) {
  reader *rd = arg;
  read_shared *sh = rd->sh;
  uint64_t rng = rd->seed, n = 0, sink = 0, bad = 0;
  pthread_barrier_wait(&sh->start);
  while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    strata_txn txn;
    if (sh->batch > 1) {
      if (strata_read_begin(sh->s, &txn) != 0) {
        bad++;
        break;
      }
      for (unsigned k = 0; k < READ_BATCH; k++)
        sink += one_get(&txn, sh, &rng, &bad);
      strata_read_end(&txn);
    } else {
      for (unsigned k = 0; k < READ_BATCH; k++) {
        if (strata_read_begin(sh->s, &txn) != 0) {
          bad++;
          break;
        }
        sink += one_get(&txn, sh, &rng, &bad);
        strata_read_end(&txn);
      }
    }
    n += READ_BATCH;
    atomic_store_explicit(&rd->gets, n, memory_order_relaxed);
  }
  rd->sink = sink;
  rd->bad = bad;
  return NULL;
}

/* The writer of phase (c): puts READ_PUTS_PER_CYCLE layers of region 1
 * (random ids, each layer's own contents again, so its size never
 * changes), then crystallizes it, until told to stop. */
typedef struct writer {
  read_shared *sh;
  strata_proto *proto;
  pthread_t tid;
  _Atomic uint64_t puts;
  int rc;
  char detail[512];
} writer;

static void *writer_main(void *arg) {
  writer *w = arg;
  read_shared *sh = w->sh;
  uint8_t *buf = bench_xmalloc(sh->size);
  uint64_t rng = 0x777269746572ull;
  pthread_barrier_wait(&sh->start);
  int rc = 0;
  while (rc == 0 && !atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    for (unsigned k = 0; rc == 0 && k < READ_PUTS_PER_CYCLE; k++) {
      uint64_t x = bench_splitmix64(&rng);
      uint64_t id = (uint64_t)(((unsigned __int128)x * sh->layers) >> 64);
      fill_layer(1, id, buf, sh->size);
      rc = strata_proto_put(w->proto, id, NULL, NULL, buf, sh->size);
      atomic_fetch_add_explicit(&w->puts, 1, memory_order_relaxed);
    }
    if (rc == 0)
      rc = strata_crystallize(sh->s, 1);
  }
  if (rc < 0) {
    w->rc = rc;
    snprintf(w->detail, sizeof w->detail, "%s", strata_last_error_detail());
  }
  free(buf);
  return NULL;
}

static uint64_t total_gets(reader *rd, unsigned n) {
  uint64_t g = 0;
  for (unsigned i = 0; i < n; i++)
    g += atomic_load_explicit(&rd[i].gets, memory_order_relaxed);
  return g;
}

/* Runs one phase: `threads` readers (and the writer when `with_writer`)
 * start together; after READ_WARMUP_S the gets done in `seconds` are
 * counted. */
static void run_phase(strata_store *s, const bench_store_read_result *r,
                      unsigned batch, unsigned threads, bool with_writer,
                      double seconds, bench_read_phase *out) {
  read_shared sh = {.s = s,
                    .regions = r->regions,
                    .layers = r->layers,
                    .size = r->size,
                    .batch = batch};
  atomic_init(&sh.stop, false);
  pthread_barrier_init(&sh.start, NULL, threads + 1 + (with_writer ? 1 : 0));
  reader *rd = aligned_alloc(64, threads * sizeof *rd);
  if (rd == NULL)
    bench_fail("out of memory");
  writer w = {.sh = &sh};
  atomic_init(&w.puts, 0);
  if (with_writer)
    bench_check(strata_proto_open(s, 1, &w.proto), "strata_proto_open");
  for (unsigned i = 0; i < threads; i++) {
    rd[i] = (reader){.sh = &sh, .seed = 0x72656164ull * (i + 1) ^ batch};
    atomic_init(&rd[i].gets, 0);
    int e = pthread_create(&rd[i].tid, NULL, reader_main, &rd[i]);
    if (e != 0)
      bench_fail("pthread_create: %s", strerror(e));
  }
  clockid_t wclock = CLOCK_THREAD_CPUTIME_ID;
  if (with_writer) {
    int e = pthread_create(&w.tid, NULL, writer_main, &w);
    if (e != 0 || pthread_getcpuclockid(w.tid, &wclock) != 0)
      bench_fail("pthread_create: %s", strerror(e));
  }
  pthread_barrier_wait(&sh.start);
  sleep_until(bench_now_ns() + (uint64_t)(READ_WARMUP_S * 1e9));

  strata_store_stats st0, st1;
  bench_check(strata_store_stats_get(s, &st0), "strata_store_stats_get");
  uint64_t puts0 = atomic_load_explicit(&w.puts, memory_order_relaxed);
  double wcpu0 = with_writer ? cpu_s(wclock) : 0;
  double pcpu0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  uint64_t g0 = total_gets(rd, threads), t0 = bench_now_ns();
  sleep_until(t0 + (uint64_t)(seconds * 1e9));
  uint64_t g1 = total_gets(rd, threads), t1 = bench_now_ns();
  double pcpu1 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  double wcpu1 = with_writer ? cpu_s(wclock) : 0;
  uint64_t puts1 = atomic_load_explicit(&w.puts, memory_order_relaxed);
  bench_check(strata_store_stats_get(s, &st1), "strata_store_stats_get");

  atomic_store_explicit(&sh.stop, true, memory_order_relaxed);
  uint64_t bad = 0;
  for (unsigned i = 0; i < threads; i++) {
    pthread_join(rd[i].tid, NULL);
    bad += rd[i].bad;
  }
  if (with_writer) {
    pthread_join(w.tid, NULL);
    if (w.rc < 0)
      bench_fail("store-read writer: %s: %s", strata_err_name(w.rc), w.detail);
    /* Back to a plain region file, as the other phases read it. */
    bench_check(strata_crystallize(s, 1), "strata_crystallize");
    bench_check(strata_proto_discard(w.proto), "strata_proto_discard");
  }
  bench_check(strata_store_reclaim(s, 1), "strata_store_reclaim");
  if (bad != 0)
    bench_fail("store-read: %" PRIu64 " gets failed or returned a wrong size", bad);
  pthread_barrier_destroy(&sh.start);

  *out = (bench_read_phase){
      .threads = threads, .seconds = (double)(t1 - t0) / 1e9, .gets = g1 - g0};
  out->gets_per_s = (double)out->gets / out->seconds;
  out->writer_cpu_s = wcpu1 - wcpu0;
  /* The driver thread sleeps: process CPU minus the writer's is the
   * readers'. */
  out->cpu_s = pcpu1 - pcpu0 - out->writer_cpu_s;
  out->puts = puts1 - puts0;
  out->crystallizations = st1.crystallizations - st0.crystallizations;
  out->crystallize_write_s =
      (double)(st1.crystallize_write_ns - st0.crystallize_write_ns) / 1e9;
  out->crystallize_fsync_s =
      (double)(st1.crystallize_fsync_ns - st0.crystallize_fsync_ns) / 1e9;
  free(rd);
}

void bench_store_read_run(const bench_store_params *p,
                          bench_store_read_result *r) {
  *r = (bench_store_read_result){.regions = READ_REGIONS,
                                 .layers = bench_scaled(READ_LAYERS, p->scale),
                                 .size = p->size,
                                 .batch = READ_BATCH,
                                 .puts_per_cycle = READ_PUTS_PER_CYCLE,
                                 .load1 = bench_load1()};
  char *dir = bench_mkdir(p->dir, "store-read");
  bench_say("store-read: writing %d regions x %" PRIu64 " layers x %zu B",
      READ_REGIONS, r->layers, r->size);
  for (unsigned i = 1; i <= READ_REGIONS; i++) {
    char name[32];
    snprintf(name, sizeof name, "read-%u.region", i);
    char *path = bench_path(dir, name);
    name[strlen(name) - strlen(".region")] = '\0';
    write_region(path, i, name, r->layers, r->size);
    recache(path);
    free(path);
  }
  strata_store *s = open_store(dir, 0);
  /* Wait for the index checksums: the verifier thread would compete with
   * the first phase's readers. */
  bench_check(strata_store_refresh(s), "strata_store_refresh");
  if (region_count(s) != READ_REGIONS)
    bench_fail("store-read: the store serves %" PRIu64 " regions, not %d",
         region_count(s), READ_REGIONS);
  /* Check the contents once, and map every page. */
  uint8_t *want = bench_xmalloc(r->size);
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  for (uint64_t g = 1; g <= READ_REGIONS; g++)
    for (uint64_t i = 0; i < r->layers; i++) {
      strata_layer l;
      bench_check(strata_get(&txn, g, i, &l), "strata_get");
      if (i % 997 == 0) {
        fill_layer(g, i, want, r->size);
        if (l.size != r->size || memcmp(l.data, want, r->size) != 0)
          bench_fail("store-read: region %" PRIu64 " layer %" PRIu64
               " has the wrong contents",
               g, i);
      }
    }
  strata_read_end(&txn);
  free(want);

  static const unsigned batch[BENCH_READ_MODES] = {READ_BATCH, 1};
  static const unsigned threads[BENCH_READ_PHASES] = {2, READ_MAX_THREADS, 2,
                                                      2};
  for (int m = 0; m < BENCH_READ_MODES; m++)
    for (int ph = 0; ph < BENCH_READ_PHASES; ph++) {
      bench_say("store-read: %u gets per snapshot, %u readers%s, %.1f s", batch[m],
          threads[ph],
          ph == BENCH_READ_WRITER2 ? " and a crystallizing writer" : "",
          p->seconds);
      run_phase(s, r, batch[m], threads[ph], ph == BENCH_READ_WRITER2,
                p->seconds, &r->phase[m][ph]);
    }
  /* Statistics on against off, and sampling for the staging pool's hot
   * layers on: the same reads through a second handle opened with
   * STRATA_STORE_NO_READ_STATS and a third with a staging pool (host mode,
   * default sampling, its worker running), in rotating short rounds so
   * that drifts of the machine hit all alike. */
  strata_store *off = open_store(dir, STRATA_STORE_NO_READ_STATS |
                                          STRATA_STORE_READ_ONLY);
  bench_check(strata_store_refresh(off), "strata_store_refresh");
  strata_store_config sc;
  strata_store_config_init(&sc);
  sc.flags = STRATA_STORE_READ_ONLY;
  sc.staging.bytes = 64u << 20;
  sc.staging.flags = STRATA_STAGING_HOST;
  strata_store *sampled;
  bench_check(strata_store_open(dir, &sc, &sampled), dir);
  strata_store *handles[3] = {s, off, sampled};
  double rate[3][BENCH_STATS_ROUNDS], cpu[3][BENCH_STATS_ROUNDS];
  bench_say("store-read: statistics on, off, and with read sampling, %d "
            "rounds each",
            BENCH_STATS_ROUNDS);
  for (int k = 0; k < 3 * BENCH_STATS_ROUNDS; k++) {
    bench_read_phase ph;
    int which = (k + k / 3) % 3; /* the order rotates every round */
    run_phase(handles[which], r, READ_BATCH, 2, false, p->seconds / 4, &ph);
    rate[which][k / 3] = ph.gets_per_s;
    cpu[which][k / 3] = ph.cpu_s * 1e9 / (double)ph.gets;
  }
  for (int w = 0; w < 3; w++) {
    qsort(rate[w], BENCH_STATS_ROUNDS, sizeof(double), cmp_double);
    qsort(cpu[w], BENCH_STATS_ROUNDS, sizeof(double), cmp_double);
  }
  r->stats_on_gets_per_s = rate[0][BENCH_STATS_ROUNDS / 2];
  r->stats_off_gets_per_s = rate[1][BENCH_STATS_ROUNDS / 2];
  r->sampled_gets_per_s = rate[2][BENCH_STATS_ROUNDS / 2];
  r->stats_on_cpu_ns = cpu[0][BENCH_STATS_ROUNDS / 2];
  r->stats_off_cpu_ns = cpu[1][BENCH_STATS_ROUNDS / 2];
  r->sampled_cpu_ns = cpu[2][BENCH_STATS_ROUNDS / 2];
  strata_store_close(sampled);
  strata_store_close(off);
  strata_store_close(s);
  bench_rmtree(dir);
  free(dir);
}

void bench_store_read_print(FILE *f, const bench_store_read_result *r) {
  fprintf(f,
          "store-read: %" PRIu64 " regions x %" PRIu64
          " layers x %zu B; random strata_get() (region and layer uniform), "
          "first and last byte read; %.1f s per phase; load average %.2f\n",
          r->regions, r->layers, r->size, r->phase[0][0].seconds, r->load1);
  static const char *const what[BENCH_READ_PHASES] = {
      "(a) idle store", "(b) idle store", "(c) writer crystallizing region 1",
      "(d) idle store, after (c)"};
  for (int m = 0; m < BENCH_READ_MODES; m++) {
    const bench_read_phase *ph = r->phase[m];
    if (m == BENCH_READ_BATCH)
      fprintf(f, "  one snapshot per %u gets:\n", r->batch);
    else
      fprintf(f, "  one snapshot per get:\n");
    fprintf(f, "    %-36s %7s %10s %11s %9s\n", "phase", "readers", "Mgets/s",
            "CPU ns/get", "/ (a)");
    for (int i = 0; i < BENCH_READ_PHASES; i++)
      fprintf(f, "    %-36s %7u %10.2f %11.1f %9.3f\n", what[i], ph[i].threads,
              ph[i].gets_per_s / 1e6, ph[i].cpu_s * 1e9 / (double)ph[i].gets,
              ph[i].gets_per_s / ph[0].gets_per_s);
    const bench_read_phase *w = &ph[BENCH_READ_WRITER2];
    uint64_t c = w->crystallizations ? w->crystallizations : 1;
    fprintf(f,
            "    (c) writer: %" PRIu64 " crystallizations in %.1f s (%.1f ms "
            "writing + %.1f ms fsync each), %" PRIu64
            " puts; writer CPU %.2f s, readers' CPU %.2f s\n",
            w->crystallizations, w->seconds,
            w->crystallize_write_s * 1e3 / (double)c,
            w->crystallize_fsync_s * 1e3 / (double)c, w->puts, w->writer_cpu_s,
            w->cpu_s);
    fprintf(f,
            "    target: (b)/(a) >= %.2f, measured %.3f;  (c)/(a) >= %.2f, "
            "measured %.3f\n",
            TARGET_READ_RATIO, ph[1].gets_per_s / ph[0].gets_per_s,
            TARGET_READ_RATIO, w->gets_per_s / ph[0].gets_per_s);
  }
  const bench_read_phase *b = &r->phase[BENCH_READ_BATCH][0];
  const bench_read_phase *g = &r->phase[BENCH_READ_SINGLE][0];
  fprintf(f,
          "  (a) snapshot per get / per %u gets: %.3f in gets/s; "
          "read_begin+read_end add %.1f ns of CPU per get\n",
          r->batch, g->gets_per_s / b->gets_per_s,
          g->cpu_s * 1e9 / (double)g->gets - b->cpu_s * 1e9 / (double)b->gets);
  fprintf(f,
          "  read statistics on / off (2 readers, %u gets per snapshot, "
          "medians of %d alternating rounds): %.2f / %.2f Mgets/s = %.3f; "
          "CPU per get %.1f / %.1f ns = %.3f\n"
          "    target: on/off >= 0.95, measured %.3f\n"
          "  read sampling for hot layers (staging pool, 1 get in 64) on / "
          "off: %.2f / %.2f Mgets/s = %.3f; CPU per get %.1f / %.1f ns\n\n",
          r->batch, BENCH_STATS_ROUNDS, r->stats_on_gets_per_s / 1e6,
          r->stats_off_gets_per_s / 1e6,
          r->stats_on_gets_per_s / r->stats_off_gets_per_s, r->stats_on_cpu_ns,
          r->stats_off_cpu_ns, r->stats_on_cpu_ns / r->stats_off_cpu_ns,
          r->stats_on_gets_per_s / r->stats_off_gets_per_s,
          r->sampled_gets_per_s / 1e6, r->stats_on_gets_per_s / 1e6,
          r->sampled_gets_per_s / r->stats_on_gets_per_s, r->sampled_cpu_ns,
          r->stats_on_cpu_ns);
}

void bench_store_read_json(FILE *f, const bench_store_read_result *r) {
  static const char *const mode[BENCH_READ_MODES] = {"batch", "single"};
  static const char *const phase[BENCH_READ_PHASES] = {
      "idle_2", "idle_128", "writer_2", "idle_2_after"};
  fprintf(f,
          "    \"store-read\": {\"regions\": %" PRIu64 ", \"layers\": %" PRIu64
          ", \"size\": %zu, \"batch\": %u, \"puts_per_cycle\": %u, "
          "\"load1\": %.2f",
          r->regions, r->layers, r->size, r->batch, r->puts_per_cycle,
          r->load1);
  for (int m = 0; m < BENCH_READ_MODES; m++) {
    fprintf(f, ", \"%s\": {", mode[m]);
    for (int i = 0; i < BENCH_READ_PHASES; i++) {
      const bench_read_phase *ph = &r->phase[m][i];
      fprintf(
          f,
          "%s\"%s\": {\"threads\": %u, \"seconds\": %.4f, \"gets\": %" PRIu64
          ", \"gets_per_s\": %.1f, \"reader_cpu_s\": %.4f, "
          "\"ratio_to_idle_2\": %.4f",
          i ? ", " : "", phase[i], ph->threads, ph->seconds, ph->gets,
          ph->gets_per_s, ph->cpu_s,
          ph->gets_per_s / r->phase[m][0].gets_per_s);
      if (i == BENCH_READ_WRITER2)
        fprintf(f,
                ", \"puts\": %" PRIu64 ", \"crystallizations\": %" PRIu64
                ", \"writer_cpu_s\": %.4f, \"crystallize_write_s\": %.4f, "
                "\"crystallize_fsync_s\": %.4f",
                ph->puts, ph->crystallizations, ph->writer_cpu_s,
                ph->crystallize_write_s, ph->crystallize_fsync_s);
      fputs("}", f);
    }
    fputs("}", f);
  }
  fprintf(f,
          ", \"stats_on_gets_per_s\": %.1f, \"stats_off_gets_per_s\": %.1f, "
          "\"stats_on_cpu_ns\": %.2f, \"stats_off_cpu_ns\": %.2f, "
          "\"sampled_gets_per_s\": %.1f, \"sampled_cpu_ns\": %.2f",
          r->stats_on_gets_per_s, r->stats_off_gets_per_s, r->stats_on_cpu_ns,
          r->stats_off_cpu_ns, r->sampled_gets_per_s, r->sampled_cpu_ns);
  fprintf(f, ", \"target_ratio\": %.2f}", TARGET_READ_RATIO);
}

/* ---- crystallize -------------------------------------------------------- */

static void write_fd_all(int fd, const uint8_t *p, size_t len,
                         const char *path) {
  if (bench_write_all(fd, p, len) != 0)
    bench_fail("%s: write: %s", path, strerror(errno));
}

/* The peer: the same bytes, gathered into a 1 MiB buffer as the writer
 * gathers them, written with write(2); then, separately, fsync(). */
static void peer_write(const char *path, const uint8_t *src, uint64_t layers,
                       uint64_t size, double *gbs, double *fsync_ms) {
  uint8_t *buf = bench_xmalloc(COPY_BUF);
  uint64_t t0 = bench_now_ns();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    bench_fail("%s: %s", path, strerror(errno));
  size_t fill = 0;
  for (uint64_t i = 0; i < layers; i++) {
    const uint8_t *p = src + i * size;
    for (uint64_t left = size; left > 0;) {
      size_t k = COPY_BUF - fill < left ? COPY_BUF - fill : (size_t)left;
      memcpy(buf + fill, p, k);
      fill += k;
      p += k;
      left -= k;
      if (fill == COPY_BUF) {
        write_fd_all(fd, buf, fill, path);
        fill = 0;
      }
    }
  }
  write_fd_all(fd, buf, fill, path);
  uint64_t t1 = bench_now_ns();
  if (fsync(fd) != 0)
    bench_fail("%s: fsync: %s", path, strerror(errno));
  uint64_t t2 = bench_now_ns();
  close(fd);
  *gbs = (double)(layers * size) / (double)(t1 - t0);
  *fsync_ms = (double)(t2 - t1) / 1e6;
  free(buf);
}

/* The other peer: a cp-like copy of that file (in the page cache) with
 * read(2) and write(2) of 1 MiB, timed without fsync. The copy is synced
 * afterwards, untimed, so that its writeback does not fall into the next
 * measurement. */
static double peer_copy(const char *from, const char *to) {
  uint8_t *buf = bench_xmalloc(COPY_BUF);
  uint64_t t0 = bench_now_ns(), bytes = 0;
  int in = open(from, O_RDONLY | O_CLOEXEC);
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0)
    bench_fail("copy %s to %s: %s", from, to, strerror(errno));
  for (ssize_t k; (k = read(in, buf, COPY_BUF)) != 0; bytes += (uint64_t)k) {
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      bench_fail("%s: read: %s", from, strerror(errno));
    write_fd_all(out, buf, (size_t)k, to);
  }
  uint64_t t1 = bench_now_ns();
  if (fsync(out) != 0)
    bench_fail("%s: fsync: %s", to, strerror(errno));
  close(in);
  close(out);
  free(buf);
  return (double)bytes / (double)(t1 - t0);
}

/* Minor page faults of the calling thread so far. */
static uint64_t thread_faults(void) {
  struct rusage u;
  return getrusage(RUSAGE_THREAD, &u) == 0 ? (uint64_t)u.ru_minflt : 0;
}

/* Crystallizes a new proto holding `layers` layers of src: figures into
 * v[0..3][k] (GB/s before fsync, fsync ms, wall ms, minor faults). */
static void crystallize_once(strata_store *s, uint64_t id, const uint8_t *src,
                             const bench_crystallize_case *c, int k,
                             double v[][CRYS_MAX_REPS]) {
  char name[32];
  snprintf(name, sizeof name, "crys-%" PRIu64, id);
  strata_proto *pr;
  bench_check(strata_proto_create(s, id, name, NULL, &pr), "strata_proto_create");
  for (uint64_t i = 0; i < c->layers; i++)
    bench_check(strata_proto_put(pr, i, NULL, NULL, src + i * c->layer_bytes,
                           (size_t)c->layer_bytes),
          "strata_proto_put");
  strata_store_stats a, b;
  bench_check(strata_store_stats_get(s, &a), "strata_store_stats_get");
  uint64_t f0 = thread_faults(), t0 = bench_now_ns();
  bench_check(strata_crystallize(s, id), "strata_crystallize");
  uint64_t t1 = bench_now_ns(), f1 = thread_faults();
  bench_check(strata_store_stats_get(s, &b), "strata_store_stats_get");
  if (b.crystallize_bytes - a.crystallize_bytes != c->bytes)
    bench_fail("crystallize: %" PRIu64 " bytes counted, %" PRIu64 " put",
         b.crystallize_bytes - a.crystallize_bytes, c->bytes);
  v[0][k] = (double)(b.crystallize_bytes - a.crystallize_bytes) /
            (double)(b.crystallize_write_ns - a.crystallize_write_ns);
  v[1][k] = (double)(b.crystallize_fsync_ns - a.crystallize_fsync_ns) / 1e6;
  v[2][k] = (double)(t1 - t0) / 1e6;
  v[3][k] = (double)(f1 - f0);
  /* The region stays in the store: drop the proto and its heap. */
  bench_check(strata_proto_discard(pr), "strata_proto_discard");
  bench_check(strata_store_reclaim(s, 1), "strata_store_reclaim");
}

static void crystallize_case(strata_store *s, const char *dir, int reps,
                             uint64_t layers, uint64_t size, uint64_t first_id,
                             bench_crystallize_case *c) {
  *c = (bench_crystallize_case){.layers = layers,
                                .layer_bytes = size,
                                .bytes = layers * size,
                                .reps = reps};
  uint8_t *src = bench_xmalloc((size_t)c->bytes);
  for (uint64_t i = 0; i < layers; i++)
    fill_layer(first_id, i, src + i * size, (size_t)size);
  char *pw = bench_path(dir, "peer.write"), *pc = bench_path(dir, "peer.copy");
  double v[7][CRYS_MAX_REPS];
  for (int k = 0; k < reps; k++) {
    bench_say("crystallize: rep %d of %d, %" PRIu64 " layers x %" PRIu64 " B", k + 1,
        reps, layers, size);
    /* Fresh memory costs much more than recycled memory on some virtual
     * machines (docs/BENCHMARKS.md), and each side recycles what the other
     * just freed: alternate which one goes first. */
    for (int q = 0; q < 2; q++) {
      if ((q + k) % 2 == 0) {
        crystallize_once(s, first_id + (uint64_t)k, src, c, k, v);
      } else {
        peer_write(pw, src, layers, size, &v[4][k], &v[5][k]);
        v[6][k] = peer_copy(pw, pc);
        unlink(pw);
        unlink(pc);
      }
    }
  }
  bench_stat w = bench_summarize(v[0], reps);
  c->write_gbs = w.median;
  c->write_gbs_best = w.max;
  c->fsync_ms = bench_summarize(v[1], reps).median;
  c->wall_ms = bench_summarize(v[2], reps).median;
  c->faults = bench_summarize(v[3], reps).median;
  w = bench_summarize(v[4], reps);
  c->peer_write_gbs = w.median;
  c->peer_write_gbs_best = w.max;
  c->peer_fsync_ms = bench_summarize(v[5], reps).median;
  w = bench_summarize(v[6], reps);
  c->peer_copy_gbs = w.median;
  c->peer_copy_gbs_best = w.max;
  free(pw);
  free(pc);
  free(src);
}

void bench_crystallize_run(const bench_store_params *p,
                           bench_crystallize_result *r) {
  *r = (bench_crystallize_result){.load1 = bench_load1()};
  int reps = p->reps < CRYS_MAX_REPS ? p->reps : CRYS_MAX_REPS;
  char *dir = bench_mkdir(p->dir, "crystallize");
  strata_store *s = open_store(dir, 0);
  crystallize_case(s, dir, reps, bench_scaled(CRYS_BIG_LAYERS, p->scale),
                   CRYS_BIG_SIZE, 100, &r->big);
  crystallize_case(s, dir, reps, bench_scaled(CRYS_SMALL_LAYERS, p->scale),
                   CRYS_SMALL_SIZE, 200, &r->small);
  strata_store_close(s);
  bench_rmtree(dir);
  free(dir);
}

void bench_crystallize_print(FILE *f, const bench_crystallize_result *r) {
  fprintf(f,
          "crystallize: a new proto's layers written out by "
          "strata_crystallize(); GB = 10^9 bytes; median (best) of %d; load "
          "average %.2f\n",
          r->big.reps, r->load1);
  fprintf(f, "  %-26s %14s %8s %8s %8s %14s %8s %14s\n", "layers", "GB/s write",
          "fsync ms", "wall ms", "faults", "write(2) GB/s", "fsync ms",
          "copy GB/s");
  const bench_crystallize_case *cs[2] = {&r->big, &r->small};
  for (int i = 0; i < 2; i++) {
    const bench_crystallize_case *c = cs[i];
    char what[64];
    snprintf(what, sizeof what, "%" PRIu64 " x %" PRIu64 " B = %.0f MB",
             c->layers, c->layer_bytes, (double)c->bytes / 1e6);
    fprintf(f,
            "  %-26s %6.2f (%5.2f) %8.1f %8.1f %8.0f %6.2f (%5.2f) %8.1f "
            "%6.2f (%5.2f)\n",
            what, c->write_gbs, c->write_gbs_best, c->fsync_ms, c->wall_ms,
            c->faults, c->peer_write_gbs, c->peer_write_gbs_best,
            c->peer_fsync_ms, c->peer_copy_gbs, c->peer_copy_gbs_best);
  }
  fprintf(f, "  (GB/s write: crystallize_bytes / crystallize_write_ns, i.e. "
             "before fsync; faults: minor page faults in strata_crystallize(); "
             "write(2): the same bytes through a 1 MiB buffer, no fsync, then "
             "its fsync; copy: read(2)+write(2) of that file, no fsync)\n");
  for (int i = 0; i < 2; i++) {
    const bench_crystallize_case *c = cs[i];
    fprintf(f,
            "  %s layers: strata/write(2) %.2f (best %.2f), strata/copy %.2f "
            "(best %.2f)\n",
            i == 0 ? "large" : "small", c->write_gbs / c->peer_write_gbs,
            c->write_gbs_best / c->peer_write_gbs_best,
            c->write_gbs / c->peer_copy_gbs,
            c->write_gbs_best / c->peer_copy_gbs_best);
  }
  fprintf(f,
          "  target: >= %.1f GB/s before fsync; measured %.2f (%" PRIu64
          " B layers), %.2f (%" PRIu64 " B layers)\n\n",
          TARGET_CRYS_GBS, r->big.write_gbs, r->big.layer_bytes,
          r->small.write_gbs, r->small.layer_bytes);
}

static void json_crys_case(FILE *f, const char *k,
                           const bench_crystallize_case *c) {
  fprintf(f,
          "\"%s\": {\"layers\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
          ", \"bytes\": %" PRIu64 ", \"reps\": %d, \"write_gb_s\": %.4f, "
          "\"write_gb_s_best\": %.4f, \"fsync_ms\": %.3f, \"wall_ms\": "
          "%.3f, \"minor_faults\": %.0f, \"peer_write_gb_s\": %.4f, "
          "\"peer_write_gb_s_best\": %.4f, \"peer_fsync_ms\": %.3f, "
          "\"peer_copy_gb_s\": %.4f, \"peer_copy_gb_s_best\": %.4f}",
          k, c->layers, c->layer_bytes, c->bytes, c->reps, c->write_gbs,
          c->write_gbs_best, c->fsync_ms, c->wall_ms, c->faults,
          c->peer_write_gbs, c->peer_write_gbs_best, c->peer_fsync_ms,
          c->peer_copy_gbs, c->peer_copy_gbs_best);
}

void bench_crystallize_json(FILE *f, const bench_crystallize_result *r) {
  fprintf(f, "    \"crystallize\": {\"load1\": %.2f, ", r->load1);
  json_crys_case(f, "large_layers", &r->big);
  fputs(", ", f);
  json_crys_case(f, "small_layers", &r->small);
  fprintf(f, ", \"target_gb_s\": %.1f}", TARGET_CRYS_GBS);
}
