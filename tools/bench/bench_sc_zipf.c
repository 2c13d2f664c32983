/* Scenario "zipf": --n values of 64 bytes with random 64-bit ids, read
 * with keys drawn from a Zipf distribution of exponent 1.1 (a few hot ids
 * take most gets, as in real read traffic), the same key sequence for every
 * peer. Its target (issue 18, docs/BENCHMARKS.md): every way of reading
 * Strata, single gets through a store snapshot included, within 2.5 x the
 * bare offset array. */
#include "bench_get.h"

/* The value size: small values, where the index's cost shows most. */
#define ZIPF_SIZE 64
#define ZIPF_S 1.1

static void run(bench_ctx *ctx, void *result) {
  bench_get_run(ctx,
                &(bench_get_spec){"zipf", ctx->o->n, ZIPF_SIZE, true, ZIPF_S},
                result, NULL);
}

static void print(FILE *f, const void *result) {
  bench_get_print(f, result, 2.5, false);
}

const bench_scenario bench_sc_zipf = {"zipf", sizeof(get_result), run, print,
                                      bench_get_json};
