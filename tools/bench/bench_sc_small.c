/* Scenario "small": random gets of --small-n values, a region that fits in
 * the caches, where fixed per-get costs show most. Its target: every way
 * of reading Strata within 3 x the bare offset array. */
#include "bench_get.h"

static void run(bench_ctx *ctx, void *result) {
  bench_get_run(ctx,
                &(bench_get_spec){.name = "small",
                                  .n = ctx->o->small_n,
                                  .size = ctx->o->size},
                result, NULL);
}

static void print(FILE *f, const void *result) {
  bench_get_print(f, result, 3, false);
}

const bench_scenario bench_sc_small = {"small", sizeof(get_result), run, print,
                                       bench_get_json};
