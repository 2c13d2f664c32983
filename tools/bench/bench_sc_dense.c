/* Scenario "dense": random gets of --n values of --size bytes with ids
 * 0..n-1, the layout Strata's dense index serves best. Its target
 * (docs/BENCHMARKS.md): every way of reading Strata within 1.5 x the bare
 * offset array, and LMDB and tinycdb at least 10 and 6 times slower. */
#include "bench_get.h"

static void run(bench_ctx *ctx, void *result) {
  /* The open scenario times opens of this region: keep it for it. */
  bench_peer_set *keep = NULL;
  if (bench_selected(ctx->o, &bench_sc_open))
    keep = bench_xmalloc(sizeof *keep);
  bench_get_run(
      ctx,
      &(bench_get_spec){.name = "dense", .n = ctx->o->n, .size = ctx->o->size},
      result, keep);
  ctx->dense_peers = keep;
}

static void print(FILE *f, const void *result) {
  bench_get_print(f, result, 1.5, true);
}

const bench_scenario bench_sc_dense = {"dense", sizeof(get_result), run, print,
                                       bench_get_json};
