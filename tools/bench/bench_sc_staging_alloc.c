/* Scenario "staging-alloc": alloc+free pairs of the staging pool's block
 * allocator (src/staging/staging_alloc.c, compiled in: it is internal),
 * single blocks and runs of 1..8, at 50% and 90% full, against
 * malloc()/free() of the same byte sizes; p50, p99 and p99.9 of each pair,
 * timed one by one. The only staging scenario that does not go through
 * the public API. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_staging.h"
#include "staging/staging_alloc.h"

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

/* The target of the staging issue, printed next to the measurements. */
#define TARGET_ALLOC_P99_NS 1000.0

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
    bench_check(
        strata__balloc_add_slab(
            a, (uint8_t *)base + (uint64_t)i * ALLOC_SLAB_BLOCKS * ALLOC_BLOCK,
            (uint64_t)ALLOC_SLAB_BLOCKS * ALLOC_BLOCK),
        "strata__balloc_add_slab");
  uint32_t *first = bench_xmalloc(o->slots * sizeof *first);
  uint8_t *len = bench_xmalloc(o->slots);
  for (uint64_t i = 0; i < o->slots; i++) {
    len[i] = o->n[i];
    bench_check(strata__balloc_alloc(a, len[i], &first[i]),
                "staging-alloc: fill");
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

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  alloc_result *r = result;
  *r = (alloc_result){.blocks = (uint64_t)ALLOC_SLABS * ALLOC_SLAB_BLOCKS,
                      .block_size = ALLOC_BLOCK,
                      .reps = bench_staging_reps(p),
                      .clock_ns = clock_cost_ns()};
  uint64_t span = r->blocks * ALLOC_BLOCK;
  void *base = mmap(NULL, span, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    bench_fail("staging-alloc: reserving %" PRIu64 " bytes: %s", span,
               strerror(errno));
  uint64_t pairs = bench_staging_scaled(ALLOC_PAIRS, p->scale, ALLOC_MIN_PAIRS);
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

static void print(FILE *f, const void *result) {
  const alloc_result *r = result;
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

static void json(FILE *f, const void *result) {
  const alloc_result *r = result;
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

const bench_scenario bench_sc_staging_alloc = {
    "staging-alloc", sizeof(alloc_result), run, print, json};
