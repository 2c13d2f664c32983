/* Staging scenarios of strata-bench: the staging pool (include/strata.h,
 * "Staging") in host mode, next to what it does expressed as plain
 * malloc()/memcpy(). docs/BENCHMARKS.md describes them; in short:
 *
 *   staging-alloc  alloc+free pairs of the pool's block allocator
 *                  (src/staging_alloc.c, compiled in: it is internal),
 *                  single blocks and runs of 1..8, at 50% and 90% full,
 *                  against malloc()/free() of the same byte sizes; p50,
 *                  p99 and p99.9 of each pair, timed one by one.
 *   staging-copy   strata_stage() of layers not staged yet (1 MiB and
 *                  64 KiB, with and without block sharing) against
 *                  memcpy() of the same bytes from the same mapping; and
 *                  strata_stage_to_device() of staged 1 MiB layers plus a
 *                  stream sync against memcpy() of the staged bytes.
 *   staging-batch  strata_stage_path_to_device() of a path of 4 KiB
 *                  layers, and of 1 MiB layers staged and not staged,
 *                  against memcpy() of the path into the same layout.
 *   staging-open   strata_store_open() of an empty store with a 1 GiB
 *                  pool (slabs allocated, touched, pinned), next to the
 *                  same open without a pool and a bare mmap + first touch.
 *
 * Sizes are the defaults below times bench_store_params.scale (--n /
 * 1,000,000), never below the minimums, so a small --n is a quick run.
 * Every timed operation is checked once (the bytes that arrived are
 * compared, the counters say the copies happened), so a scenario cannot
 * measure nothing. Only the public API is used, except by staging-alloc.
 *
 * Page faults: every source mapping is read through once before it is
 * timed, device buffers are written by an untimed first transfer, and the
 * memcpy() destinations are written once before they are timed; the pool's
 * own slabs are touched by strata_store_open(). staging-copy and
 * staging-batch also run an untimed first round (the one that checks the
 * bytes): on the virtual machines this was measured on, the first pass
 * over new mappings and buffers is several times slower than later ones
 * even after every page was touched. A round of staging-copy, which must
 * copy fresh content, opens a fresh store (untimed) rather than evicting;
 * staging-batch stages nothing, so it keeps one store. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "common/strata_testing.h" /* STRATA_STAGING_NO_WORKER */
#include "staging/staging_alloc.h"
#include "strata.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* staging-alloc, at every scale: 64 KiB blocks (the pool's default) in two
 * slabs of 16384 blocks (two 1 GiB slabs, the largest the pool makes).
 * The allocator never touches slab memory, so the slabs are reserved
 * address space (PROT_NONE) and cost no memory. */
#define ALLOC_BLOCK (64 * KiB)
#define ALLOC_SLAB_BLOCKS 16384u
#define ALLOC_SLABS 2u
#define ALLOC_PAIRS 1000000u /* timed pairs per repetition, at scale 1 */
#define ALLOC_MIN_PAIRS 20000u
/* Latencies are counted in 1 ns buckets up to this; longer ones are kept
 * one by one (they are rare) and sorted when a percentile falls on them. */
#define HIST_NS 65536u

/* staging-copy: bytes of each layer size staged per repetition. */
#define COPY_BYTES (256 * MiB)
#define COPY_MIN_BYTES (8 * MiB)
/* staging-batch: 4096 layers of 4 KiB, and 64 of 1 MiB. */
#define BATCH_SMALL_LAYERS 4096u
#define BATCH_SMALL_MIN 256u
#define BATCH_SMALL_SIZE (4 * KiB)
#define BATCH_BIG_LAYERS 64u
#define BATCH_BIG_MIN 8u
#define BATCH_BIG_SIZE MiB
/* staging-open: the pool's size. */
#define OPEN_BYTES GiB
#define OPEN_MIN_BYTES (64 * MiB)
#define MAX_REPS 101

/* The targets of the staging issue, printed next to the measurements. */
#define TARGET_ALLOC_P99_NS 1000.0
#define TARGET_COPY_RATIO 0.80

/* ---- helpers ------------------------------------------------------------ */

static uint64_t scaled(uint64_t n, double scale, uint64_t min) {
  double v = (double)n * scale + 0.5;
  return v < (double)min ? min : (uint64_t)v;
}

static int reps_of(const bench_store_params *p) {
  return p->reps < 1 ? 1 : p->reps > MAX_REPS ? MAX_REPS : p->reps;
}

/* GB/s (10^9 bytes) of `bytes` moved in `ns`. */
static double gbs(uint64_t bytes, uint64_t ns) {
  return (double)bytes / (double)(ns ? ns : 1);
}

/* Written at the end so that the reads done to fault pages in stay. */
static volatile uint64_t g_sink;

/* Reads one byte per 4 KiB page of [p, p + n): the pages are mapped in
 * this process afterwards. */
static void fault_in(const void *p, uint64_t n) {
  const volatile uint8_t *b = p;
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; i += 4096)
    s += b[i];
  if (n > 0)
    s += b[n - 1];
  g_sink += s;
}

/* Writes one byte per 4 KiB page. */
static void prefault_write(void *p, uint64_t n) {
  volatile uint8_t *b = p;
  for (uint64_t i = 0; i < n; i += 4096)
    b[i] = 0;
}

/* The contents of layer `id` of region `region`. */
static void fill_layer(uint64_t region, uint64_t id, uint8_t *buf,
                       size_t size) {
  bench_fill_value(region << 40 ^ id, buf, size);
}

/* Writes dir/<name>.region: region `id`, `layers` layers of `size` bytes
 * with ids 0..layers-1. */
static void write_region(const char *dir, uint64_t id, const char *name,
                         uint64_t layers, size_t size) {
  char file[64];
  snprintf(file, sizeof file, "%s.region", name);
  char *path = bench_path(dir, file);
  strata_writer_options wo = {.region_id = id, .name = name};
  strata_writer *w;
  bench_check(strata_writer_open(path, &wo, &w), path);
  uint8_t *buf = bench_xmalloc(size);
  for (uint64_t i = 0; i < layers; i++) {
    fill_layer(id, i, buf, size);
    int rc = strata_writer_add(w, i, NULL, NULL, buf, size);
    if (rc < 0) {
      strata_writer_abort(w);
      bench_check(rc, path);
    }
  }
  bench_check(strata_writer_commit(w), path);
  free(buf);
  free(path);
}

/* A store config with a host-mode staging pool of `bytes`: no worker, so
 * nothing is staged or evicted behind the measurement's back. */
static strata_store_config staging_config(uint64_t bytes, unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_ERROR;
  c.staging.bytes = bytes;
  c.staging.flags = STRATA_STAGING_HOST | STRATA_STAGING_NO_WORKER | flags;
  return c;
}

static strata_store *open_store(const char *dir, const strata_store_config *c) {
  strata_store *s;
  bench_check(strata_store_open(dir, c, &s), dir);
  return s;
}

static strata_staging_stats staging_stats(strata_store *s) {
  strata_staging_stats st;
  bench_check(strata_staging_stats_get(s, &st), "strata_staging_stats_get");
  return st;
}

/* The layers 0..n-1 of `region` as this snapshot sees them; each must
 * exist with `size` bytes. Faults their pages in. */
static void get_layers(const strata_txn *txn, uint64_t region, uint64_t n,
                       uint64_t size, strata_layer *out) {
  for (uint64_t i = 0; i < n; i++) {
    bench_check(strata_get(txn, region, i, &out[i]), "strata_get");
    if (out[i].size != size)
      bench_fail("region %" PRIu64 " layer %" PRIu64 ": %" PRIu64
           " bytes, expected %" PRIu64,
           region, i, out[i].size, size);
    fault_in(out[i].data, out[i].size);
  }
}

/* The staged bytes equal `want`, segment by segment. */
static void check_staged(const strata_staged *h, const void *want,
                         uint64_t size, const char *what) {
  strata_staged_info info;
  bench_check(strata_staged_info_get(h, &info), "strata_staged_info_get");
  if (info.size != size)
    bench_fail("%s: %" PRIu64 " bytes staged, expected %" PRIu64, what, info.size,
         size);
  uint64_t off = 0;
  for (uint32_t i = 0; i < info.segments; i++) {
    const void *p;
    uint64_t len;
    bench_check(strata_staged_segment(h, i, &p, &len), "strata_staged_segment");
    if (off + len > size || memcmp(p, (const uint8_t *)want + off, len) != 0)
      bench_fail("%s: staged bytes differ from the layer at offset %" PRIu64, what,
           off);
    off += len;
  }
  if (off != size)
    bench_fail("%s: segments cover %" PRIu64 " of %" PRIu64 " bytes", what, off,
         size);
}

static void json_bstat(FILE *f, const char *k, bench_stat s) {
  fprintf(f, "\"%s\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f}", k,
          s.median, s.min, s.max);
}

/* ---- staging-alloc ------------------------------------------------------ */

typedef struct hist {
  uint64_t *bucket; /* HIST_NS counts */
  uint64_t n;
  uint32_t *over; /* values >= HIST_NS */
  size_t nover, cap;
} hist;

static void hist_init(hist *h) {
  *h = (hist){.bucket = calloc(HIST_NS, sizeof(uint64_t))};
  if (h->bucket == NULL)
    bench_fail("out of memory");
}

static inline void hist_add(hist *h, uint64_t ns) {
  h->n++;
  if (ns < HIST_NS) {
    h->bucket[ns]++;
    return;
  }
  if (h->nover == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 1024;
    h->over = realloc(h->over, h->cap * sizeof *h->over);
    if (h->over == NULL)
      bench_fail("out of memory");
  }
  h->over[h->nover++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* The value at rank floor((n - 1) * q) (0-based), as bench_pool.c takes
 * its percentiles. */
static double hist_pct(hist *h, double q) {
  if (h->n == 0)
    return 0;
  uint64_t k = (uint64_t)((double)(h->n - 1) * q), seen = 0;
  for (uint32_t i = 0; i < HIST_NS; i++) {
    seen += h->bucket[i];
    if (seen > k)
      return i;
  }
  qsort(h->over, h->nover, sizeof *h->over, cmp_u32);
  return h->over[k - seen];
}

static void hist_free(hist *h) {
  free(h->bucket);
  free(h->over);
}

typedef struct pct3 {
  double p50, p99, p999, max;
} pct3;

static pct3 hist_pct3(hist *h) {
  return (pct3){hist_pct(h, 0.5), hist_pct(h, 0.99), hist_pct(h, 0.999),
                hist_pct(h, 1.0)};
}

typedef struct alloc_case {
  unsigned max_run; /* runs of 1..max_run blocks, uniform */
  unsigned fill_pct;
  uint64_t slots;    /* live runs */
  uint64_t pairs;    /* timed per repetition */
  uint64_t failures; /* allocations that found no room (timed ones) */
  double used_end;   /* fraction of blocks in use at the end */
  uint32_t fragmentation_permille;
  pct3 strata, malloc_; /* ns per alloc+free pair */
  pct3 strata_ok;       /* the pairs whose allocation succeeded */
} alloc_case;

#define ALLOC_CASES 4

typedef struct alloc_result {
  uint64_t blocks, block_size;
  int reps;
  double clock_ns; /* one clock reading, median */
  alloc_case c[ALLOC_CASES];
} alloc_result;

/* The steps of one case: step i frees the run of slot[i] and allocates a
 * run of n[i] blocks into it. The first `slots` entries of n fill the
 * slots. */
typedef struct alloc_ops {
  uint32_t *slot;
  uint8_t *n;
  uint64_t steps, slots;
} alloc_ops;

static void make_alloc_ops(alloc_ops *o, uint64_t slots, uint64_t steps,
                           unsigned max_run, uint64_t seed) {
  o->slots = slots;
  o->steps = steps;
  o->slot = bench_xmalloc(steps * sizeof *o->slot);
  o->n = bench_xmalloc(slots + steps);
  for (uint64_t i = 0; i < slots + steps; i++)
    o->n[i] = (uint8_t)(1 + bench_splitmix64(&seed) % max_run);
  for (uint64_t i = 0; i < steps; i++)
    o->slot[i] = (uint32_t)(bench_splitmix64(&seed) % slots);
}

/* One repetition of the block allocator: fill, warm up (`warm` steps),
 * then the timed steps, one pair at a time, into h (and into ok when the
 * allocation succeeded). */
static void alloc_rep_strata(void *base, const alloc_ops *o, uint64_t warm,
                             hist *h, hist *ok, alloc_case *c) {
  strata__balloc *a;
  bench_check(strata__balloc_new(ALLOC_BLOCK, &a), "strata__balloc_new");
  for (unsigned i = 0; i < ALLOC_SLABS; i++)
    bench_check(strata__balloc_add_slab(
              a,
              (uint8_t *)base + (uint64_t)i * ALLOC_SLAB_BLOCKS * ALLOC_BLOCK,
              (uint64_t)ALLOC_SLAB_BLOCKS * ALLOC_BLOCK),
          "strata__balloc_add_slab");
  uint32_t *first = bench_xmalloc(o->slots * sizeof *first);
  uint8_t *len = bench_xmalloc(o->slots);
  for (uint64_t i = 0; i < o->slots; i++) {
    len[i] = o->n[i];
    bench_check(strata__balloc_alloc(a, len[i], &first[i]), "staging-alloc: fill");
  }
  const uint8_t *n = o->n + o->slots;
  for (uint64_t k = 0; k < o->steps; k++) {
    uint32_t i = o->slot[k];
    uint64_t t0 = k >= warm ? bench_now_ns() : 0;
    strata__balloc_free(a, first[i], len[i]);
    int rc = strata__balloc_alloc(a, n[k], &first[i]);
    if (k >= warm) {
      uint64_t ns = bench_now_ns() - t0;
      hist_add(h, ns);
      if (rc == 0)
        hist_add(ok, ns);
    }
    if (rc == STRATA_E_LIMIT) {
      len[i] = 0; /* freeing 0 blocks does nothing */
      c->failures += k >= warm;
    } else {
      bench_check(rc, "strata__balloc_alloc");
      len[i] = n[k];
    }
  }
  strata__balloc_stats st;
  strata__balloc_stats_get(a, &st);
  c->used_end = (double)st.used / (double)st.blocks;
  c->fragmentation_permille = st.fragmentation_permille;
  strata__balloc_free_all(a);
  free(first);
  free(len);
}

/* The same steps with malloc()/free() of n * 64 KiB bytes. */
static void alloc_rep_malloc(const alloc_ops *o, uint64_t warm, hist *h) {
  void **p = bench_xmalloc(o->slots * sizeof *p);
  for (uint64_t i = 0; i < o->slots; i++)
    p[i] = bench_xmalloc(o->n[i] * ALLOC_BLOCK);
  const uint8_t *n = o->n + o->slots;
  for (uint64_t k = 0; k < o->steps; k++) {
    uint32_t i = o->slot[k];
    uint64_t t0 = k >= warm ? bench_now_ns() : 0;
    free(p[i]);
    p[i] = malloc(n[k] * ALLOC_BLOCK);
    if (k >= warm)
      hist_add(h, bench_now_ns() - t0);
    if (p[i] == NULL)
      bench_fail("staging-alloc: malloc of %" PRIu64 " bytes failed",
           n[k] * ALLOC_BLOCK);
  }
  for (uint64_t i = 0; i < o->slots; i++)
    free(p[i]);
  free(p);
}

/* The cost of one bench_now_ns(): the median of back-to-back readings. */
static double clock_cost_ns(void) {
  hist h;
  hist_init(&h);
  for (int i = 0; i < 100000; i++) {
    uint64_t a = bench_now_ns();
    hist_add(&h, bench_now_ns() - a);
  }
  double v = hist_pct(&h, 0.5);
  hist_free(&h);
  return v;
}

static void alloc_run(const bench_store_params *p, alloc_result *r) {
  *r = (alloc_result){.blocks = (uint64_t)ALLOC_SLABS * ALLOC_SLAB_BLOCKS,
                      .block_size = ALLOC_BLOCK,
                      .reps = reps_of(p),
                      .clock_ns = clock_cost_ns()};
  uint64_t span = r->blocks * ALLOC_BLOCK;
  void *base = mmap(NULL, span, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    bench_fail("staging-alloc: reserving %" PRIu64 " bytes: %s", span,
         strerror(errno));
  uint64_t pairs = scaled(ALLOC_PAIRS, p->scale, ALLOC_MIN_PAIRS);
  static const unsigned runs[ALLOC_CASES] = {1, 1, 8, 8};
  static const unsigned fill[ALLOC_CASES] = {50, 90, 50, 90};
  for (int ci = 0; ci < ALLOC_CASES; ci++) {
    alloc_case *c = &r->c[ci];
    double mean_run = (1.0 + runs[ci]) / 2;
    *c = (alloc_case){
        .max_run = runs[ci],
        .fill_pct = fill[ci],
        .slots = (uint64_t)((double)r->blocks * fill[ci] / 100 / mean_run),
        .pairs = pairs};
    bench_say("staging-alloc: runs of 1..%u blocks, %u%% full: %" PRIu64
        " pairs x %d reps per allocator",
        c->max_run, c->fill_pct, pairs, r->reps);
    alloc_ops o;
    uint64_t warm = pairs / 4;
    make_alloc_ops(&o, c->slots, warm + pairs, c->max_run,
                   0x73746167ull + (uint64_t)ci);
    hist hs, hok, hm;
    hist_init(&hs);
    hist_init(&hok);
    hist_init(&hm);
    for (int k = 0; k < r->reps; k++) {
      /* Alternate which goes first, as the pool scenario does. */
      for (int q = 0; q < 2; q++) {
        if ((q + k) % 2 == 0)
          alloc_rep_strata(base, &o, warm, &hs, &hok, c);
        else
          alloc_rep_malloc(&o, warm, &hm);
      }
    }
    if (hs.n != pairs * (uint64_t)r->reps || hm.n != hs.n)
      bench_fail("staging-alloc: %" PRIu64 " and %" PRIu64 " pairs timed, "
           "expected %" PRIu64,
           hs.n, hm.n, pairs * (uint64_t)r->reps);
    c->strata = hist_pct3(&hs);
    c->malloc_ = hist_pct3(&hm);
    c->strata_ok = hist_pct3(&hok);
    hist_free(&hok);
    hist_free(&hs);
    hist_free(&hm);
    free(o.slot);
    free(o.n);
  }
  munmap(base, span);
}

static void alloc_print(FILE *f, const alloc_result *r) {
  fprintf(f,
          "staging-alloc: the staging pool's block allocator, %" PRIu64
          " blocks of %" PRIu64 " KiB in %u slabs; each pair frees a random "
          "live run and allocates a new one; every pair timed alone (one "
          "clock reading costs %.0f ns and is included); %" PRIu64
          " pairs x %d reps; peer: malloc/free of the same byte sizes\n",
          r->blocks, r->block_size >> 10, ALLOC_SLABS, r->clock_ns,
          r->c[0].pairs, r->reps);
  fprintf(f, "  %-22s %-7s %8s %8s %8s %9s   %s\n", "ns per alloc+free", "",
          "p50", "p99", "p99.9", "max", "end state");
  for (int i = 0; i < ALLOC_CASES; i++) {
    const alloc_case *c = &r->c[i];
    char what[40];
    if (c->max_run == 1)
      snprintf(what, sizeof what, "1 block, %u%% full", c->fill_pct);
    else
      snprintf(what, sizeof what, "1..%u blocks, %u%% full", c->max_run,
               c->fill_pct);
    fprintf(f,
            "  %-22s %-7s %8.0f %8.0f %8.0f %9.0f   %.1f%% used, "
            "fragmentation %u permille, %" PRIu64 " of %" PRIu64
            " allocs failed\n",
            what, "strata", c->strata.p50, c->strata.p99, c->strata.p999,
            c->strata.max, 100 * c->used_end, c->fragmentation_permille,
            c->failures, c->pairs * (uint64_t)r->reps);
    if (c->failures > 0)
      fprintf(f,
              "  %-22s %-7s %8.0f %8.0f %8.0f %9.0f   (the pairs whose "
              "alloc succeeded)\n",
              "", "strata", c->strata_ok.p50, c->strata_ok.p99,
              c->strata_ok.p999, c->strata_ok.max);
    fprintf(f, "  %-22s %-7s %8.0f %8.0f %8.0f %9.0f\n", "", "malloc",
            c->malloc_.p50, c->malloc_.p99, c->malloc_.p999, c->malloc_.max);
    fprintf(f, "  %-22s strata/malloc %.2f (p50) %.2f (p99) %.2f (p99.9)\n", "",
            c->strata.p50 / c->malloc_.p50, c->strata.p99 / c->malloc_.p99,
            c->strata.p999 / c->malloc_.p999);
  }
  double worst = 0;
  for (int i = 0; i < ALLOC_CASES; i++)
    if (r->c[i].strata.p99 > worst)
      worst = r->c[i].strata.p99;
  fprintf(f,
          "  target: alloc+free p99 <= %.0f ns; measured %.0f ns (worst "
          "case)\n\n",
          TARGET_ALLOC_P99_NS, worst);
}

static void json_pct3(FILE *f, const char *k, pct3 v) {
  fprintf(f,
          "\"%s\": {\"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
          "\"max\": %.1f}",
          k, v.p50, v.p99, v.p999, v.max);
}

static void alloc_json(FILE *f, const alloc_result *r) {
  fprintf(f,
          "    \"staging-alloc\": {\"blocks\": %" PRIu64
          ", \"block_size\": %" PRIu64 ", \"reps\": %d, \"clock_ns\": %.1f, "
          "\"target_p99_ns\": %.0f, \"cases\": [",
          r->blocks, r->block_size, r->reps, r->clock_ns, TARGET_ALLOC_P99_NS);
  for (int i = 0; i < ALLOC_CASES; i++) {
    const alloc_case *c = &r->c[i];
    fprintf(f,
            "%s{\"max_run\": %u, \"fill_pct\": %u, \"slots\": %" PRIu64
            ", \"pairs\": %" PRIu64 ", \"failures\": %" PRIu64
            ", \"used_end\": %.4f, \"fragmentation_permille\": %u, ",
            i ? ", " : "", c->max_run, c->fill_pct, c->slots, c->pairs,
            c->failures, c->used_end, c->fragmentation_permille);
    json_pct3(f, "strata_ns", c->strata);
    fputs(", ", f);
    json_pct3(f, "malloc_ns", c->malloc_);
    fputs(", ", f);
    json_pct3(f, "strata_succeeded_ns", c->strata_ok);
    fputs("}", f);
  }
  fputs("]}", f);
}

/* ---- staging-copy ------------------------------------------------------- */

typedef struct copy_case {
  uint64_t layers, layer_bytes, bytes;
  bench_stat dedup_gbs, nodedup_gbs, memcpy_gbs;
} copy_case;

typedef struct copy_result {
  int reps;
  uint64_t pool_bytes;
  double load1;
  copy_case big, small;
  /* memcpy() of the 1 MiB layers in 64 KiB pieces. */
  bench_stat big_pieces_gbs;
  uint64_t evictions, dedup_hits; /* during the timed staging, all reps */
  /* strata_stage_to_device() of the staged 1 MiB layers + a sync, and
   * memcpy() of the same staged bytes. */
  bench_stat xfer_gbs, xfer_memcpy_gbs;
} copy_result;

/* Regions of the copy and batch scenarios. */
enum {
  R_BIG = 1,
  R_SMALL = 2,
  R_PATH_SMALL = 3,
  R_PATH_BIG = 4,
  R_PATH_STAGED = 5
};

/* Stages layers 0..n-1 of `region` (not staged yet), timed; with
 * `verify` (round 0, whose figure is not counted) every staged layer is
 * then compared with the source. Returns GB/s. */
static double stage_all(strata_store *s, const strata_txn *txn, uint64_t region,
                        const strata_layer *src, uint64_t n, bool verify,
                        copy_result *r) {
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < n; i++)
    bytes += src[i].size;
  strata_staging_stats a = staging_stats(s);
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    strata_staged *h;
    bench_check(strata_stage(txn, region, i, &h), "strata_stage");
    strata_staged_release(h);
  }
  uint64_t t1 = bench_now_ns();
  strata_staging_stats b = staging_stats(s);
  /* Every byte must have been copied: the content was not staged yet. */
  if (b.stage_copied_bytes - a.stage_copied_bytes != bytes)
    bench_fail("staging-copy: %" PRIu64 " bytes copied by staging, expected %" PRIu64,
         b.stage_copied_bytes - a.stage_copied_bytes, bytes);
  r->evictions += b.evictions - a.evictions;
  r->dedup_hits += b.dedup_hits - a.dedup_hits;
  if (verify) {
    for (uint64_t i = 0; i < n; i++) {
      strata_staged *h;
      bench_check(strata_stage(txn, region, i, &h), "strata_stage (again)");
      check_staged(h, src[i].data, src[i].size, "staging-copy");
      strata_staged_release(h);
    }
    if (staging_stats(s).stage_copied_bytes != b.stage_copied_bytes)
      bench_fail("staging-copy: staging a staged layer copied it again");
  }
  return gbs(bytes, t1 - t0);
}

/* memcpy() of the layers, end to end, into dst (written before), one call
 * per layer, or with `piece` not 0 one call per `piece` bytes of a layer
 * (as staging copies a layer, a block at a time). */
static double memcpy_all(const strata_layer *src, uint64_t n, uint8_t *dst,
                         uint64_t piece, bool verify) {
  uint64_t t0 = bench_now_ns(), off = 0;
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *p = src[i].data;
    uint64_t step = piece ? piece : src[i].size;
    for (uint64_t at = 0; at < src[i].size; at += step) {
      uint64_t k = src[i].size - at < step ? src[i].size - at : step;
      memcpy(dst + off + at, p + at, k);
    }
    off += src[i].size;
  }
  uint64_t t1 = bench_now_ns();
  if (verify)
    for (uint64_t i = 0, o = 0; i < n; o += src[i].size, i++)
      if (memcmp(dst + o, src[i].data, src[i].size) != 0)
        bench_fail("staging-copy: memcpy peer: bytes differ");
  return gbs(off, t1 - t0);
}

/* The 1 MiB layers (staged) to "device" memory on one stream, timed from
 * the first enqueue to the end of the sync; then memcpy() of the same
 * staged bytes on this thread. */
static void xfer_rep(strata_store *s, const strata_txn *txn,
                     const strata_layer *src, uint64_t n, uint8_t *peer_dst,
                     bool verify, double *xfer, double *peer) {
  uint64_t size = src[0].size, bytes = n * size;
  strata_staged **h = bench_xmalloc(n * sizeof *h);
  for (uint64_t i = 0; i < n; i++)
    bench_check(strata_stage(txn, R_BIG, i, &h[i]), "strata_stage");
  strata_stream *ss;
  bench_check(strata_stream_create(s, &ss), "strata_stream_create");
  void *dev;
  bench_check(strata_device_alloc(s, bytes, ss, &dev), "strata_device_alloc");
  /* Untimed: the first transfer writes every page of the device buffer. */
  for (int pass = 0; pass < 2; pass++) {
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
      bench_check(strata_stage_to_device(h[i], (uint8_t *)dev + i * size, ss),
            "strata_stage_to_device");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    *xfer = gbs(bytes, bench_now_ns() - t0);
  }
  if (verify) {
    uint8_t *back = bench_xmalloc(bytes);
    bench_check(strata_device_read(ss, back, dev, bytes), "strata_device_read");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    for (uint64_t i = 0; i < n; i++)
      if (memcmp(back + i * size, src[i].data, size) != 0)
        bench_fail("staging-copy: layer %" PRIu64 " arrived changed", i);
    free(back);
  }
  /* The peer: the same staged bytes, segment by segment. */
  uint64_t t0 = bench_now_ns(), off = 0;
  for (uint64_t i = 0; i < n; i++) {
    strata_staged_info info;
    bench_check(strata_staged_info_get(h[i], &info), "strata_staged_info_get");
    for (uint32_t k = 0; k < info.segments; k++) {
      const void *p;
      uint64_t len;
      bench_check(strata_staged_segment(h[i], k, &p, &len), "strata_staged_segment");
      memcpy(peer_dst + off, p, len);
      off += len;
    }
  }
  *peer = gbs(off, bench_now_ns() - t0);
  if (off != bytes)
    bench_fail("staging-copy: %" PRIu64 " staged bytes, expected %" PRIu64, off,
         bytes);
  bench_check(strata_device_free(s, dev, ss), "strata_device_free");
  strata_stream_destroy(ss);
  for (uint64_t i = 0; i < n; i++)
    strata_staged_release(h[i]);
  free(h);
}

static void copy_run(const bench_store_params *p, copy_result *r) {
  uint64_t bytes = scaled(COPY_BYTES, p->scale, COPY_MIN_BYTES);
  bytes = (bytes + MiB - 1) / MiB * MiB;
  *r = (copy_result){.reps = reps_of(p), .load1 = bench_load1()};
  r->big =
      (copy_case){.layers = bytes / MiB, .layer_bytes = MiB, .bytes = bytes};
  r->small = (copy_case){
      .layers = bytes / (64 * KiB), .layer_bytes = 64 * KiB, .bytes = bytes};
  /* Both sizes stay staged, under the 80% high watermark, with room for
   * the pack buffers. */
  r->pool_bytes = (2 * bytes * 4 / 3 + 64 * MiB + MiB - 1) / MiB * MiB;
  char *dir = bench_mkdir(p->dir, "staging-copy");
  bench_say("staging-copy: writing 2 regions of %" PRIu64 " MiB", bytes >> 20);
  write_region(dir, R_BIG, "big", r->big.layers, MiB);
  write_region(dir, R_SMALL, "small", r->small.layers, 64 * KiB);
  strata_layer *big = bench_xmalloc(r->big.layers * sizeof *big);
  strata_layer *small = bench_xmalloc(r->small.layers * sizeof *small);
  uint8_t *dst = bench_xmalloc(bytes);
  prefault_write(dst, bytes);
  double v[9][MAX_REPS + 1];
  for (int k = 0; k <= r->reps; k++) {
    /* Round 0 warms up (and checks the bytes); it is not counted. */
    bool verify = k == 0;
    for (int variant = 0; variant < 2; variant++) {
      /* A fresh store: nothing staged. */
      strata_store_config c =
          staging_config(r->pool_bytes, variant ? STRATA_STAGING_NO_DEDUP : 0);
      strata_store *s = open_store(dir, &c);
      strata_txn txn;
      bench_check(strata_read_begin(s, &txn), "strata_read_begin");
      get_layers(&txn, R_BIG, r->big.layers, MiB, big);
      get_layers(&txn, R_SMALL, r->small.layers, 64 * KiB, small);
      /* Alternate staging and the peer, and the sizes' order. */
      bool peer_first = (k + variant) % 2 == 1;
      if (variant == 0 && peer_first) {
        v[4][k] = memcpy_all(big, r->big.layers, dst, 0, verify);
        v[8][k] = memcpy_all(big, r->big.layers, dst, 64 * KiB, verify);
        v[5][k] = memcpy_all(small, r->small.layers, dst, 0, verify);
      }
      double *to = v[variant ? 2 : 0];
      to[k] = stage_all(s, &txn, R_BIG, big, r->big.layers, verify, r);
      to = v[variant ? 3 : 1];
      to[k] = stage_all(s, &txn, R_SMALL, small, r->small.layers, verify, r);
      if (variant == 0 && !peer_first) {
        v[4][k] = memcpy_all(big, r->big.layers, dst, 0, verify);
        v[8][k] = memcpy_all(big, r->big.layers, dst, 64 * KiB, verify);
        v[5][k] = memcpy_all(small, r->small.layers, dst, 0, verify);
      }
      if (variant == 0)
        xfer_rep(s, &txn, big, r->big.layers, dst, verify, &v[6][k], &v[7][k]);
      strata_read_end(&txn);
      strata_store_close(s);
    }
    bench_say("staging-copy: round %d%s GB/s: 1 MiB %.2f / %.2f / memcpy %.2f "
        "(pieces %.2f), 64 KiB %.2f / %.2f / memcpy %.2f, to device %.2f / "
        "memcpy %.2f",
        k, k ? "" : " (warm-up)", v[0][k], v[2][k], v[4][k], v[8][k], v[1][k],
        v[3][k], v[5][k], v[6][k], v[7][k]);
  }
  r->big.dedup_gbs = bench_summarize(v[0] + 1, r->reps);
  r->small.dedup_gbs = bench_summarize(v[1] + 1, r->reps);
  r->big.nodedup_gbs = bench_summarize(v[2] + 1, r->reps);
  r->small.nodedup_gbs = bench_summarize(v[3] + 1, r->reps);
  r->big.memcpy_gbs = bench_summarize(v[4] + 1, r->reps);
  r->small.memcpy_gbs = bench_summarize(v[5] + 1, r->reps);
  r->xfer_gbs = bench_summarize(v[6] + 1, r->reps);
  r->xfer_memcpy_gbs = bench_summarize(v[7] + 1, r->reps);
  r->big_pieces_gbs = bench_summarize(v[8] + 1, r->reps);
  free(big);
  free(small);
  free(dst);
  bench_rmtree(dir);
  free(dir);
}

static void copy_print(FILE *f, const copy_result *r) {
  fprintf(f,
          "staging-copy: strata_stage() of layers not staged yet (host mode, "
          "a fresh %" PRIu64 " MiB pool per rep), against memcpy() of the "
          "same bytes from the same mapping into a written buffer; GB = 10^9 "
          "bytes; median (min..max) of %d after an untimed round; load "
          "average %.2f\n",
          r->pool_bytes >> 20, r->reps, r->load1);
  fprintf(f, "  %-24s %22s %22s %22s\n", "GB/s", "stage (sharing)",
          "stage (NO_DEDUP)", "memcpy");
  const copy_case *cs[2] = {&r->big, &r->small};
  for (int i = 0; i < 2; i++) {
    const copy_case *c = cs[i];
    char what[48];
    snprintf(what, sizeof what, "%" PRIu64 " x %" PRIu64 " KiB", c->layers,
             c->layer_bytes >> 10);
    fprintf(f,
            "  %-24s %7.2f (%5.2f..%5.2f) %7.2f (%5.2f..%5.2f) %7.2f "
            "(%5.2f..%5.2f)\n",
            what, c->dedup_gbs.median, c->dedup_gbs.min, c->dedup_gbs.max,
            c->nodedup_gbs.median, c->nodedup_gbs.min, c->nodedup_gbs.max,
            c->memcpy_gbs.median, c->memcpy_gbs.min, c->memcpy_gbs.max);
  }
  for (int i = 0; i < 2; i++) {
    const copy_case *c = cs[i];
    fprintf(
        f, "  %s KiB layers: stage/memcpy %.2f (sharing), %.2f (NO_DEDUP)\n",
        i == 0 ? "1024" : "  64", c->dedup_gbs.median / c->memcpy_gbs.median,
        c->nodedup_gbs.median / c->memcpy_gbs.median);
  }
  fprintf(f,
          "  memcpy of the 1024 KiB layers in 64 KiB pieces (as staging "
          "copies them): %.2f GB/s (%.2f..%.2f); stage/that %.2f (sharing), "
          "%.2f (NO_DEDUP)\n",
          r->big_pieces_gbs.median, r->big_pieces_gbs.min,
          r->big_pieces_gbs.max,
          r->big.dedup_gbs.median / r->big_pieces_gbs.median,
          r->big.nodedup_gbs.median / r->big_pieces_gbs.median);
  fprintf(f,
          "  (during the timed staging: %" PRIu64 " evictions, %" PRIu64
          " shared pages found)\n",
          r->evictions, r->dedup_hits);
  fprintf(f,
          "  strata_stage_to_device of the %" PRIu64 " staged 1 MiB layers + "
          "strata_stream_sync: %.2f GB/s (%.2f..%.2f); memcpy of the staged "
          "bytes: %.2f GB/s; transfer/memcpy %.2f\n",
          r->big.layers, r->xfer_gbs.median, r->xfer_gbs.min, r->xfer_gbs.max,
          r->xfer_memcpy_gbs.median,
          r->xfer_gbs.median / r->xfer_memcpy_gbs.median);
  /* Against the faster memcpy of each size. */
  double worst = 1e9, worst_nd = 1e9;
  for (int i = 0; i < 2; i++) {
    double m = cs[i]->memcpy_gbs.median;
    if (i == 0 && r->big_pieces_gbs.median > m)
      m = r->big_pieces_gbs.median;
    double a = cs[i]->dedup_gbs.median / m;
    double b = cs[i]->nodedup_gbs.median / m;
    worst = a < worst ? a : worst;
    worst_nd = b < worst_nd ? b : worst_nd;
  }
  fprintf(f,
          "  target: staging copy >= %.2f of memcpy bandwidth (host mode), "
          "against the faster memcpy of each size: measured %.2f with "
          "sharing, %.2f with NO_DEDUP (the lower of the two sizes)\n\n",
          TARGET_COPY_RATIO, worst, worst_nd);
}

static void copy_json_case(FILE *f, const char *k, const copy_case *c) {
  fprintf(f,
          "\"%s\": {\"layers\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
          ", \"bytes\": %" PRIu64 ", ",
          k, c->layers, c->layer_bytes, c->bytes);
  json_bstat(f, "stage_gb_s", c->dedup_gbs);
  fputs(", ", f);
  json_bstat(f, "stage_no_dedup_gb_s", c->nodedup_gbs);
  fputs(", ", f);
  json_bstat(f, "memcpy_gb_s", c->memcpy_gbs);
  fputs("}", f);
}

static void copy_json(FILE *f, const copy_result *r) {
  fprintf(f,
          "    \"staging-copy\": {\"reps\": %d, \"pool_bytes\": %" PRIu64
          ", \"load1\": %.2f, \"evictions\": %" PRIu64
          ", \"dedup_hits\": %" PRIu64 ", ",
          r->reps, r->pool_bytes, r->load1, r->evictions, r->dedup_hits);
  copy_json_case(f, "layers_1mib", &r->big);
  fputs(", ", f);
  copy_json_case(f, "layers_64kib", &r->small);
  fputs(", ", f);
  json_bstat(f, "memcpy_1mib_in_64kib_pieces_gb_s", r->big_pieces_gbs);
  fputs(", ", f);
  json_bstat(f, "to_device_gb_s", r->xfer_gbs);
  fputs(", ", f);
  json_bstat(f, "to_device_memcpy_gb_s", r->xfer_memcpy_gbs);
  fprintf(f, ", \"target_ratio\": %.2f}", TARGET_COPY_RATIO);
}

/* ---- staging-batch ------------------------------------------------------ */

typedef struct batch_result {
  int reps;
  unsigned streams;
  uint64_t pool_bytes, pack_bytes;
  uint64_t small_layers, small_bytes; /* bytes: the device buffer */
  uint64_t big_layers, big_bytes;
  uint64_t small_packed, big_packed; /* packed copies of one batch */
  bench_stat small_gbs, small_memcpy_gbs;
  bench_stat big_unstaged_gbs, big_staged_gbs, big_memcpy_gbs;
} batch_result;

/* Moves a path into `dev` (need bytes) and syncs: returns GB/s of the
 * layers' bytes; *packed gets the packed copies it made. With `verify`,
 * the buffer is read back and every layer compared. */
static double path_rep(strata_store *s, const strata_txn *txn,
                       const strata_layer_ref *path, const strata_layer *src,
                       uint64_t n, void *dev, uint64_t need, uint64_t *offs,
                       strata_stream *ss, bool verify, uint64_t *packed) {
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < n; i++)
    bytes += src[i].size;
  strata_staging_stats a = staging_stats(s);
  uint64_t t0 = bench_now_ns();
  bench_check(strata_stage_path_to_device(txn, path, n, dev, need, offs, ss),
        "strata_stage_path_to_device");
  bench_check(strata_stream_sync(ss), "strata_stream_sync");
  uint64_t t1 = bench_now_ns();
  strata_staging_stats b = staging_stats(s);
  if (b.batches != a.batches + 1)
    bench_fail("staging-batch: the batch was not counted");
  *packed = b.packed_copies - a.packed_copies;
  if (verify) {
    uint8_t *back = bench_xmalloc(need);
    bench_check(strata_device_read(ss, back, dev, need), "strata_device_read");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    for (uint64_t i = 0; i < n; i++)
      if (memcmp(back + offs[i], src[i].data, src[i].size) != 0)
        bench_fail("staging-batch: path step %" PRIu64 " arrived changed", i);
    free(back);
  }
  return gbs(bytes, t1 - t0);
}

/* memcpy() of a path into the layout strata_stage_path_size() gives. */
static double path_memcpy(const strata_layer *src, uint64_t n,
                          const uint64_t *offs, uint8_t *dst, bool verify) {
  uint64_t bytes = 0, t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    memcpy(dst + offs[i], src[i].data, src[i].size);
    bytes += src[i].size;
  }
  uint64_t t1 = bench_now_ns();
  if (verify)
    for (uint64_t i = 0; i < n; i++)
      if (memcmp(dst + offs[i], src[i].data, src[i].size) != 0)
        bench_fail("staging-batch: memcpy peer: bytes differ");
  return gbs(bytes, t1 - t0);
}

static strata_layer_ref *make_path(uint64_t region, uint64_t n) {
  strata_layer_ref *p = bench_xmalloc(n * sizeof *p);
  for (uint64_t i = 0; i < n; i++)
    p[i] = (strata_layer_ref){region, i};
  return p;
}

static void batch_run(const bench_store_params *p, batch_result *r) {
  *r = (batch_result){
      .reps = reps_of(p),
      .small_layers = scaled(BATCH_SMALL_LAYERS, p->scale, BATCH_SMALL_MIN),
      .big_layers = scaled(BATCH_BIG_LAYERS, p->scale, BATCH_BIG_MIN)};
  uint64_t nb = r->big_layers, ns = r->small_layers;
  char *dir = bench_mkdir(p->dir, "staging-batch");
  bench_say("staging-batch: writing %" PRIu64 " layers of 4 KiB and 2 x %" PRIu64
      " of 1 MiB",
      ns, nb);
  write_region(dir, R_PATH_SMALL, "path-small", ns, BATCH_SMALL_SIZE);
  write_region(dir, R_PATH_BIG, "path-big", nb, BATCH_BIG_SIZE);
  write_region(dir, R_PATH_STAGED, "path-staged", nb, BATCH_BIG_SIZE);
  /* One store for every round: the path batches stage nothing, so the
   * 1 MiB layers of R_PATH_BIG stay unstaged and those of R_PATH_STAGED,
   * staged once before the rounds, stay staged. */
  r->pool_bytes =
      (nb * BATCH_BIG_SIZE * 4 / 3 + 64 * MiB + MiB - 1) / MiB * MiB;
  strata_store_config c = staging_config(r->pool_bytes, 0);
  c.staging.streams = 3; /* the defaults, named */
  c.staging.pack_bytes = 2 * MiB;
  r->streams = c.staging.streams;
  r->pack_bytes = c.staging.pack_bytes;
  strata_store *s = open_store(dir, &c);
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  strata_layer_ref *ps = make_path(R_PATH_SMALL, ns);
  strata_layer_ref *pb = make_path(R_PATH_BIG, nb);
  strata_layer_ref *pst = make_path(R_PATH_STAGED, nb);
  strata_layer *ls = bench_xmalloc(ns * sizeof *ls);
  strata_layer *lb = bench_xmalloc(nb * sizeof *lb);
  strata_layer *lst = bench_xmalloc(nb * sizeof *lst);
  get_layers(&txn, R_PATH_SMALL, ns, BATCH_SMALL_SIZE, ls);
  get_layers(&txn, R_PATH_BIG, nb, BATCH_BIG_SIZE, lb);
  get_layers(&txn, R_PATH_STAGED, nb, BATCH_BIG_SIZE, lst);
  uint64_t *os = bench_xmalloc(ns * sizeof *os);
  uint64_t *ob = bench_xmalloc(nb * sizeof *ob);
  uint64_t *ost = bench_xmalloc(nb * sizeof *ost);
  bench_check(strata_stage_path_size(&txn, ps, ns, &r->small_bytes),
        "strata_stage_path_size");
  bench_check(strata_stage_path_size(&txn, pb, nb, &r->big_bytes),
        "strata_stage_path_size");
  uint64_t most = r->small_bytes > r->big_bytes ? r->small_bytes : r->big_bytes;
  uint8_t *dst = bench_xmalloc(most);
  prefault_write(dst, most);
  strata_stream *ss;
  bench_check(strata_stream_create(s, &ss), "strata_stream_create");
  void *dev;
  bench_check(strata_device_alloc(s, most, ss, &dev), "strata_device_alloc");
  for (uint64_t i = 0; i < nb; i++) {
    strata_staged *h;
    bench_check(strata_stage(&txn, R_PATH_STAGED, i, &h), "strata_stage");
    strata_staged_release(h);
  }
  double v[5][MAX_REPS + 1];
  for (int k = 0; k <= r->reps; k++) {
    /* Round 0 warms up (it writes the device buffer's pages, gives the
     * offsets and checks the bytes); it is not counted. */
    bool verify = k == 0;
    bool peer_first = k % 2 == 1;
    if (peer_first) {
      v[1][k] = path_memcpy(ls, ns, os, dst, verify);
      v[4][k] = path_memcpy(lb, nb, ob, dst, verify);
    }
    v[0][k] = path_rep(s, &txn, ps, ls, ns, dev, r->small_bytes, os, ss, verify,
                       &r->small_packed);
    v[2][k] = path_rep(s, &txn, pb, lb, nb, dev, r->big_bytes, ob, ss, verify,
                       &r->big_packed);
    uint64_t staged_packed;
    v[3][k] = path_rep(s, &txn, pst, lst, nb, dev, r->big_bytes, ost, ss,
                       verify, &staged_packed);
    if (staged_packed != 0)
      bench_fail("staging-batch: staged 1 MiB layers were packed (%" PRIu64
           " copies)",
           staged_packed);
    if (!peer_first) {
      v[1][k] = path_memcpy(ls, ns, os, dst, verify);
      v[4][k] = path_memcpy(lb, nb, ob, dst, verify);
    }
    bench_say("staging-batch: round %d%s GB/s: 4 KiB %.2f / memcpy %.2f, 1 MiB "
        "%.2f / staged %.2f / memcpy %.2f",
        k, k ? "" : " (warm-up)", v[0][k], v[1][k], v[2][k], v[3][k], v[4][k]);
  }
  if (staging_stats(s).staged_layers != nb)
    bench_fail("staging-batch: %" PRIu64 " layers staged, expected %" PRIu64,
         staging_stats(s).staged_layers, nb);
  r->small_gbs = bench_summarize(v[0] + 1, r->reps);
  r->small_memcpy_gbs = bench_summarize(v[1] + 1, r->reps);
  r->big_unstaged_gbs = bench_summarize(v[2] + 1, r->reps);
  r->big_staged_gbs = bench_summarize(v[3] + 1, r->reps);
  r->big_memcpy_gbs = bench_summarize(v[4] + 1, r->reps);
  bench_check(strata_device_free(s, dev, ss), "strata_device_free");
  strata_stream_destroy(ss);
  strata_read_end(&txn);
  strata_store_close(s);
  free(ps);
  free(pb);
  free(pst);
  free(ls);
  free(lb);
  free(lst);
  free(os);
  free(ob);
  free(ost);
  free(dst);
  bench_rmtree(dir);
  free(dir);
}

static void batch_print(FILE *f, const batch_result *r) {
  fprintf(f,
          "staging-batch: strata_stage_path_to_device() + strata_stream_sync "
          "(host mode, %u pool streams, %" PRIu64 " KiB pack buffers), "
          "against memcpy() of the path into the same layout on one thread; "
          "GB/s of layer bytes, median (min..max) of %d after an untimed "
          "round\n",
          r->streams, r->pack_bytes >> 10, r->reps);
  fprintf(f, "  %-40s %22s %22s %8s\n", "path", "batch GB/s", "memcpy GB/s",
          "ratio");
  char what[64];
  snprintf(what, sizeof what, "%" PRIu64 " x 4 KiB (%" PRIu64 " packed)",
           r->small_layers, r->small_packed);
  fprintf(f, "  %-40s %7.2f (%5.2f..%5.2f) %7.2f (%5.2f..%5.2f) %8.2f\n", what,
          r->small_gbs.median, r->small_gbs.min, r->small_gbs.max,
          r->small_memcpy_gbs.median, r->small_memcpy_gbs.min,
          r->small_memcpy_gbs.max,
          r->small_gbs.median / r->small_memcpy_gbs.median);
  snprintf(what, sizeof what,
           "%" PRIu64 " x 1 MiB, not staged (%" PRIu64 " packed)",
           r->big_layers, r->big_packed);
  fprintf(f, "  %-40s %7.2f (%5.2f..%5.2f) %7.2f (%5.2f..%5.2f) %8.2f\n", what,
          r->big_unstaged_gbs.median, r->big_unstaged_gbs.min,
          r->big_unstaged_gbs.max, r->big_memcpy_gbs.median,
          r->big_memcpy_gbs.min, r->big_memcpy_gbs.max,
          r->big_unstaged_gbs.median / r->big_memcpy_gbs.median);
  snprintf(what, sizeof what, "%" PRIu64 " x 1 MiB, staged", r->big_layers);
  fprintf(f, "  %-40s %7.2f (%5.2f..%5.2f) %22s %8.2f\n", what,
          r->big_staged_gbs.median, r->big_staged_gbs.min,
          r->big_staged_gbs.max, "(as above)",
          r->big_staged_gbs.median / r->big_memcpy_gbs.median);
  fprintf(f, "  1 MiB path staged/not staged %.2f\n\n",
          r->big_staged_gbs.median / r->big_unstaged_gbs.median);
}

static void batch_json(FILE *f, const batch_result *r) {
  fprintf(f,
          "    \"staging-batch\": {\"reps\": %d, \"streams\": %u, "
          "\"pack_bytes\": %" PRIu64 ", \"small_layers\": %" PRIu64
          ", \"small_buffer_bytes\": %" PRIu64 ", \"small_packed_copies\": "
          "%" PRIu64 ", \"big_layers\": %" PRIu64
          ", \"big_buffer_bytes\": %" PRIu64 ", \"big_packed_copies\": "
          "%" PRIu64 ", ",
          r->reps, r->streams, r->pack_bytes, r->small_layers, r->small_bytes,
          r->small_packed, r->big_layers, r->big_bytes, r->big_packed);
  json_bstat(f, "small_gb_s", r->small_gbs);
  fputs(", ", f);
  json_bstat(f, "small_memcpy_gb_s", r->small_memcpy_gbs);
  fputs(", ", f);
  json_bstat(f, "big_unstaged_gb_s", r->big_unstaged_gbs);
  fputs(", ", f);
  json_bstat(f, "big_staged_gb_s", r->big_staged_gbs);
  fputs(", ", f);
  json_bstat(f, "big_memcpy_gb_s", r->big_memcpy_gbs);
  fputs("}", f);
}

/* ---- staging-open ------------------------------------------------------- */

typedef struct sopen_result {
  uint64_t bytes;
  int reps;
  double load1;
  char backend[16], method[32];
  int numa_node;
  uint64_t slabs, slab_bytes, pinned_bytes;
  bench_stat open_ms, close_ms, base_open_ms, slab_ms, touch_ms;
} sopen_result;

/* Finds `"key"` after `from` in JSON text and returns where its value
 * starts (past the colon and blanks), or NULL. */
static const char *json_value(const char *from, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(from, pat);
  if (p == NULL)
    return NULL;
  p += strlen(pat);
  p += strspn(p, " \t\n");
  if (*p != ':')
    return NULL;
  p++;
  return p + strspn(p, " \t\n");
}

/* The slabs of the state dump's "staging" object: the first one's method,
 * and the sum of their alloc_ms. */
static double slabs_from_dump(strata_store *s, char *method, size_t len) {
  char *dump;
  bench_check(strata_dump_state(s, 0, &dump), "strata_dump_state");
  const char *at = json_value(dump, "staging");
  at = at ? json_value(at, "slabs") : NULL;
  if (at == NULL || *at != '[')
    bench_fail("staging-open: no staging.slabs in the state dump");
  const char *end = strchr(at, ']');
  double ms = 0;
  method[0] = '\0';
  for (const char *p = at; (p = json_value(p, "method")) != NULL && p < end;) {
    if (method[0] == '\0' && *p == '"') {
      size_t k = strcspn(p + 1, "\"");
      snprintf(method, len, "%.*s", (int)(k < len ? k : len - 1), p + 1);
    }
    const char *v = json_value(p, "alloc_ms");
    if (v == NULL || v > end)
      break;
    ms += strtod(v, NULL);
    p = v;
  }
  strata_free(dump);
  if (method[0] == '\0')
    bench_fail("staging-open: no slab method in the state dump");
  return ms;
}

static void sopen_run(const bench_store_params *p, sopen_result *r) {
  *r = (sopen_result){.bytes = scaled(OPEN_BYTES, p->scale, OPEN_MIN_BYTES),
                      .reps = reps_of(p),
                      .load1 = bench_load1()};
  r->bytes = (r->bytes + MiB - 1) / MiB * MiB;
  char *dir = bench_mkdir(p->dir, "staging-open");
  bench_say("staging-open: %d opens with a %" PRIu64 " MiB pool", r->reps,
      r->bytes >> 20);
  double v[5][MAX_REPS];
  for (int k = 0; k < r->reps; k++) {
    /* Default flags: CUDA where there is a GPU, host mode otherwise. */
    strata_store_config c;
    strata_store_config_init(&c);
    c.log_level = STRATA_LOG_ERROR;
    c.staging.bytes = r->bytes;
    uint64_t t0 = bench_now_ns();
    strata_store *s = open_store(dir, &c);
    uint64_t t1 = bench_now_ns();
    strata_staging_stats st = staging_stats(s);
    if (st.slab_bytes < r->bytes)
      bench_fail("staging-open: %" PRIu64 " bytes of slabs, %" PRIu64 " asked",
           st.slab_bytes, r->bytes);
    snprintf(r->backend, sizeof r->backend, "%s", st.backend);
    r->numa_node = st.numa_node;
    r->slabs = st.slabs;
    r->slab_bytes = st.slab_bytes;
    r->pinned_bytes = st.pinned_bytes;
    v[3][k] = slabs_from_dump(s, r->method, sizeof r->method);
    uint64_t t2 = bench_now_ns();
    strata_store_close(s);
    uint64_t t3 = bench_now_ns();
    /* The same store without a pool. */
    strata_store_config_init(&c);
    c.log_level = STRATA_LOG_ERROR;
    uint64_t t4 = bench_now_ns();
    s = open_store(dir, &c);
    uint64_t t5 = bench_now_ns();
    strata_store_close(s);
    /* A bare anonymous mapping, faulted in by one thread. */
    uint64_t t6 = bench_now_ns();
    void *m = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
      bench_fail("staging-open: mmap: %s", strerror(errno));
    prefault_write(m, r->bytes);
    uint64_t t7 = bench_now_ns();
    munmap(m, r->bytes);
    v[0][k] = (double)(t1 - t0) / 1e6;
    v[1][k] = (double)(t3 - t2) / 1e6;
    v[2][k] = (double)(t5 - t4) / 1e6;
    v[4][k] = (double)(t7 - t6) / 1e6;
  }
  r->open_ms = bench_summarize(v[0], r->reps);
  r->close_ms = bench_summarize(v[1], r->reps);
  r->base_open_ms = bench_summarize(v[2], r->reps);
  r->slab_ms = bench_summarize(v[3], r->reps);
  r->touch_ms = bench_summarize(v[4], r->reps);
  bench_rmtree(dir);
  free(dir);
}

static void sopen_print(FILE *f, const sopen_result *r) {
  double gib = (double)r->bytes / (double)GiB;
  fprintf(f,
          "staging-open: strata_store_open() of an empty store with a %" PRIu64
          " MiB staging pool: backend %s, %" PRIu64 " slab(s), method %s, "
          "%" PRIu64 " MiB pinned, NUMA node %d; %d opens; load average "
          "%.2f\n",
          r->bytes >> 20, r->backend, r->slabs, r->method,
          r->pinned_bytes >> 20, r->numa_node, r->reps, r->load1);
  fprintf(f, "  %-48s %9s %9s %9s %9s\n", "ms", "median", "min", "max",
          "per GiB");
  const struct {
    const char *what;
    bench_stat s;
    bool per_gib;
  } rows[] = {
      {"strata_store_open with the pool", r->open_ms, true},
      {"  of which slabs (alloc + touch + pin, dump)", r->slab_ms, true},
      {"strata_store_close with the pool", r->close_ms, true},
      {"strata_store_open without a pool", r->base_open_ms, false},
      {"mmap + first touch by one thread (peer)", r->touch_ms, true},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    fprintf(f, "  %-48s %9.1f %9.1f %9.1f", rows[i].what, rows[i].s.median,
            rows[i].s.min, rows[i].s.max);
    if (rows[i].per_gib)
      fprintf(f, " %9.1f", rows[i].s.median / gib);
    fputc('\n', f);
  }
  fprintf(f, "  open with pool / mmap+touch %.2f\n\n",
          r->open_ms.median / r->touch_ms.median);
}

static void sopen_json(FILE *f, const sopen_result *r) {
  fprintf(f,
          "    \"staging-open\": {\"bytes\": %" PRIu64
          ", \"reps\": %d, \"load1\": %.2f, \"backend\": \"%s\", "
          "\"method\": \"%s\", \"numa_node\": %d, \"slabs\": %" PRIu64
          ", \"slab_bytes\": %" PRIu64 ", \"pinned_bytes\": %" PRIu64 ", ",
          r->bytes, r->reps, r->load1, r->backend, r->method, r->numa_node,
          r->slabs, r->slab_bytes, r->pinned_bytes);
  json_bstat(f, "open_ms", r->open_ms);
  fputs(", ", f);
  json_bstat(f, "slab_ms", r->slab_ms);
  fputs(", ", f);
  json_bstat(f, "close_ms", r->close_ms);
  fputs(", ", f);
  json_bstat(f, "open_without_pool_ms", r->base_open_ms);
  fputs(", ", f);
  json_bstat(f, "mmap_touch_ms", r->touch_ms);
  fputs("}", f);
}

/* ---- entry points ------------------------------------------------------- */

struct bench_staging_result {
  unsigned which;
  alloc_result alloc;
  copy_result copy;
  batch_result batch;
  sopen_result open;
};

bench_staging_result *bench_staging_run(const bench_store_params *p,
                                        unsigned which) {
  bench_staging_result *r = bench_xmalloc(sizeof *r);
  memset(r, 0, sizeof *r);
  r->which = which;
  if (which & BENCH_STAGING_ALLOC)
    alloc_run(p, &r->alloc);
  if (which & BENCH_STAGING_COPY)
    copy_run(p, &r->copy);
  if (which & BENCH_STAGING_BATCH)
    batch_run(p, &r->batch);
  if (which & BENCH_STAGING_OPEN)
    sopen_run(p, &r->open);
  return r;
}

void bench_staging_print(FILE *f, const bench_staging_result *r) {
  if (r->which & BENCH_STAGING_ALLOC)
    alloc_print(f, &r->alloc);
  if (r->which & BENCH_STAGING_COPY)
    copy_print(f, &r->copy);
  if (r->which & BENCH_STAGING_BATCH)
    batch_print(f, &r->batch);
  if (r->which & BENCH_STAGING_OPEN)
    sopen_print(f, &r->open);
}

void bench_staging_json(FILE *f, const bench_staging_result *r) {
  const char *sep = "";
  if (r->which & BENCH_STAGING_ALLOC) {
    alloc_json(f, &r->alloc);
    sep = ",\n";
  }
  if (r->which & BENCH_STAGING_COPY) {
    fputs(sep, f);
    copy_json(f, &r->copy);
    sep = ",\n";
  }
  if (r->which & BENCH_STAGING_BATCH) {
    fputs(sep, f);
    batch_json(f, &r->batch);
    sep = ",\n";
  }
  if (r->which & BENCH_STAGING_OPEN) {
    fputs(sep, f);
    sopen_json(f, &r->open);
  }
}

void bench_staging_free(bench_staging_result *r) {
  free(r);
}
