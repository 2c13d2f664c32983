/* Scenario "sparse": random gets of --n values whose ids are random 64-bit
 * numbers, so that Strata's index is a search rather than an array. Its
 * target (docs/BENCHMARKS.md): every way of reading Strata within 2 x the
 * bare offset array (which is keyed by position, not id). */
#include "bench_get.h"

static void run(bench_ctx *ctx, void *result) {
  bench_get_run(ctx,
                &(bench_get_spec){.name = "sparse",
                                  .n = ctx->o->n,
                                  .size = ctx->o->size,
                                  .sparse = true},
                result, NULL);
}

static void print(FILE *f, const void *result) {
  bench_get_print(f, result, 2, false);
}

const bench_scenario bench_sc_sparse = {"sparse", sizeof(get_result), run,
                                        print, bench_get_json};
