/* Scenario "pool": the cost of an alloc+free pair in Strata's heap pool
 * allocator (src/pool.c), next to malloc()/free() doing the same work.
 *
 * The pattern is that of a proto-region being edited: a working set of
 * live blocks (POOL_SLOTS slots) whose sizes are spread evenly over the
 * pool's 11 default classes (64 B .. 64 KiB); each step frees the block of
 * a random slot and allocates a block of a new random size into it, then
 * writes its first 8 bytes, as a caller filling it would. The slots and
 * sizes are drawn once, so both allocators see exactly the same sequence.
 * After an untimed warm-up (every slot filled, then a quarter of a rep's
 * steps) steps are timed in batches of POOL_BATCH with CLOCK_MONOTONIC,
 * each batch giving one ns-per-pair figure; the median and the 99th
 * percentile are taken over the batches of all repetitions.
 *
 * The pool is internal to the library (the shared library does not export
 * it), so src/pool.c is compiled into strata-bench: this scenario alone
 * does not go through the public API. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/pool.h"
#include "strata.h"

#define POOL_SLOTS 4096u
#define POOL_BATCH 64u
/* Timed alloc+free pairs per repetition. */
#define POOL_PAIRS (1u << 20)

typedef struct pool_result {
  uint64_t slots, pairs; /* live blocks; timed pairs per repetition */
  int reps;
  unsigned batch; /* pairs per timed batch */
  /* Over the batches of all repetitions. */
  double pool_median_ns, pool_p99_ns, malloc_median_ns, malloc_p99_ns;
  /* The pool at the end of the last timed run. */
  uint64_t reserved_bytes, requested_bytes;
} pool_result;

typedef struct pool_ops {
  uint32_t *slot; /* slot freed and refilled at each step */
  uint32_t *size; /* size allocated at each step; the first POOL_SLOTS fill
                     the slots */
  uint64_t steps;
} pool_ops;

/* Sizes spread evenly over the classes: a class 64 << k (k = 0..10), then a
 * size in its upper half, (32 << k, 64 << k], so that it is the best fit. */
static uint32_t random_size(uint64_t *s) {
  uint64_t r = bench_splitmix64(s);
  unsigned k = (unsigned)(r % 11);
  uint32_t hi = 64u << k, lo = hi / 2;
  return lo + 1 + (uint32_t)((r >> 32) % (hi - lo));
}

static void make_ops(pool_ops *ops, uint64_t steps, uint64_t seed) {
  ops->steps = steps;
  ops->slot = bench_xmalloc(steps * sizeof *ops->slot);
  ops->size = bench_xmalloc((steps + POOL_SLOTS) * sizeof *ops->size);
  uint64_t s = seed;
  for (uint64_t i = 0; i < steps + POOL_SLOTS; i++)
    ops->size[i] = random_size(&s);
  for (uint64_t i = 0; i < steps; i++)
    ops->slot[i] = (uint32_t)(bench_splitmix64(&s) % POOL_SLOTS);
}

/* The live blocks and their sizes. */
typedef struct live {
  uint8_t *ptr[POOL_SLOTS];
  uint32_t size[POOL_SLOTS];
} live;

/* One pair: `pool` NULL means malloc()/free(). The branch on it goes the
 * same way for a whole run, so it costs both sides next to nothing. */
static inline void step(strata__pool *pool, live *l, uint32_t i,
                        uint32_t size) {
  if (pool != NULL) {
    strata__pool_free(pool, l->ptr[i], l->size[i]);
    l->ptr[i] = strata__pool_alloc(pool, size);
  } else {
    free(l->ptr[i]);
    l->ptr[i] = malloc(size);
  }
  if (l->ptr[i] == NULL) {
    fprintf(stderr, "strata-bench: pool: out of memory\n");
    exit(1);
  }
  l->size[i] = size;
  memcpy(l->ptr[i], &size, sizeof size);
  memcpy(l->ptr[i] + 4, &i, sizeof i);
}

/* Runs steps [from, to) of `ops`; with `ns` set, one figure per batch. */
static void run_steps(strata__pool *pool, live *l, const pool_ops *ops,
                      uint64_t from, uint64_t to, double *ns) {
  const uint32_t *size = ops->size + POOL_SLOTS;
  if (ns == NULL) {
    for (uint64_t k = from; k < to; k++)
      step(pool, l, ops->slot[k], size[k]);
    return;
  }
  for (uint64_t k = from; k + POOL_BATCH <= to; k += POOL_BATCH) {
    uint64_t t0 = bench_now_ns();
    for (uint64_t j = k; j < k + POOL_BATCH; j++)
      step(pool, l, ops->slot[j], size[j]);
    *ns++ = (double)(bench_now_ns() - t0) / POOL_BATCH;
  }
}

/* One repetition for one allocator: fill, warm up, time, empty. */
static void one_rep(bool use_pool, const pool_ops *ops, uint64_t pairs,
                    double *ns, pool_result *res) {
  strata__pool *pool = NULL;
  if (use_pool) {
    int rc = strata__pool_create(NULL, &pool);
    if (rc < 0) {
      fprintf(stderr, "strata-bench: pool: %s\n", strata_err_name(rc));
      exit(1);
    }
  }
  live *l = bench_xmalloc(sizeof *l);
  memset(l, 0, sizeof *l);
  /* Filling: free(NULL) is a no-op for both. */
  for (uint32_t i = 0; i < POOL_SLOTS; i++)
    step(pool, l, i, ops->size[i]);
  uint64_t warm = pairs / 4;
  run_steps(pool, l, ops, 0, warm, NULL);
  run_steps(pool, l, ops, warm, warm + pairs, ns);
  if (use_pool) {
    strata__pool_class_stats rows[STRATA__POOL_MAX_CLASSES + 1];
    size_t n = strata__pool_stats(pool, rows, STRATA__POOL_MAX_CLASSES + 1);
    res->reserved_bytes = strata__pool_reserved(pool);
    res->requested_bytes = 0;
    for (size_t r = 0; r < n; r++)
      res->requested_bytes += rows[r].bytes_requested;
  }
  for (uint32_t i = 0; i < POOL_SLOTS; i++) {
    if (use_pool)
      strata__pool_free(pool, l->ptr[i], l->size[i]);
    else
      free(l->ptr[i]);
  }
  strata__pool_destroy(pool);
  free(l);
}

static void percentiles(double *v, size_t n, double *median, double *p99) {
  qsort(v, n, sizeof *v, bench_cmp_double);
  *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  *p99 = v[(size_t)((double)(n - 1) * 0.99)];
}

static void pool_run(uint64_t pairs, int reps, pool_result *res) {
  pairs = (pairs + POOL_BATCH - 1) / POOL_BATCH * POOL_BATCH;
  *res = (pool_result){
      .slots = POOL_SLOTS, .pairs = pairs, .reps = reps, .batch = POOL_BATCH};
  pool_ops ops;
  make_ops(&ops, pairs / 4 + pairs, 0x706f6f6cull);
  size_t per_rep = (size_t)(pairs / POOL_BATCH);
  double *pool_ns = bench_xmalloc((size_t)reps * per_rep * sizeof *pool_ns);
  double *malloc_ns = bench_xmalloc((size_t)reps * per_rep * sizeof *pool_ns);
  for (int r = 0; r < reps; r++) {
    /* Alternate which one goes first, as the get scenarios rotate. */
    bool pool_first = r % 2 == 0;
    for (int k = 0; k < 2; k++) {
      bool use_pool = (k == 0) == pool_first;
      one_rep(use_pool, &ops, pairs,
              (use_pool ? pool_ns : malloc_ns) + (size_t)r * per_rep, res);
    }
  }
  size_t n = (size_t)reps * per_rep;
  percentiles(pool_ns, n, &res->pool_median_ns, &res->pool_p99_ns);
  percentiles(malloc_ns, n, &res->malloc_median_ns, &res->malloc_p99_ns);
  free(pool_ns);
  free(malloc_ns);
  free(ops.slot);
  free(ops.size);
}

static void run(bench_ctx *ctx, void *result) {
  bench_say("pool: %u alloc+free pairs x %d reps per allocator", POOL_PAIRS,
            ctx->o->reps);
  pool_run(POOL_PAIRS, ctx->o->reps, result);
}

static void print(FILE *f, const void *result) {
  const pool_result *r = result;
  fprintf(f,
          "pool: %" PRIu64 " live blocks of 33 B .. 64 KiB (evenly over the "
          "11 classes); each pair frees a random one and allocates "
          "another; %" PRIu64 " pairs x %d reps, timed in batches of %u\n",
          r->slots, r->pairs, r->reps, r->batch);
  fprintf(f, "  %-28s %10s %9s\n", "ns per alloc+free pair", "median", "p99");
  fprintf(f, "  %-28s %10.1f %9.1f\n", "strata pool", r->pool_median_ns,
          r->pool_p99_ns);
  fprintf(f, "  %-28s %10.1f %9.1f\n", "malloc/free", r->malloc_median_ns,
          r->malloc_p99_ns);
  fprintf(f, "  pool/malloc %.2f (median)  %.2f (p99)\n",
          r->pool_median_ns / r->malloc_median_ns,
          r->pool_p99_ns / r->malloc_p99_ns);
  fprintf(f,
          "  pool at the end: %.1f MB reserved for %.1f MB requested "
          "(utilization %.2f)\n",
          (double)r->reserved_bytes / 1e6, (double)r->requested_bytes / 1e6,
          r->reserved_bytes
              ? (double)r->requested_bytes / (double)r->reserved_bytes
              : 0.0);
  bench_target t = {"pool median ns per alloc+free", r->pool_median_ns, 100,
                    true};
  bench_print_targets(f, &t, 1);
}

static void json(FILE *f, const void *result) {
  const pool_result *r = result;
  fprintf(f,
          "    \"pool\": {\"slots\": %" PRIu64 ", \"pairs\": %" PRIu64
          ", \"reps\": %d, \"batch\": %u, \"pool_ns\": {\"median\": "
          "%.4f, \"p99\": %.4f}, \"malloc_ns\": {\"median\": %.4f, "
          "\"p99\": %.4f}, \"reserved_bytes\": %" PRIu64
          ", \"requested_bytes\": %" PRIu64 "}",
          r->slots, r->pairs, r->reps, r->batch, r->pool_median_ns,
          r->pool_p99_ns, r->malloc_median_ns, r->malloc_p99_ns,
          r->reserved_bytes, r->requested_bytes);
}

const bench_scenario bench_sc_pool = {"pool", sizeof(pool_result), run, print,
                                      json};
