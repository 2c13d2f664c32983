/* Scenario "build-sparse": building a file of --sparse-build-n 64-byte
 * values whose ids are random 64-bit numbers (given in random order), with
 * strata_writer (sort, duplicate check, perfect hash, fsync, rename),
 * tinycdb's cdb_make and LMDB (its build sorts the ids first and appends;
 * one commit and one sync). Each peer's build() is the one the get
 * scenarios use, timed whole here; the issue 19 goal is strata <= 1x
 * cdb_make's time. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

#define SB_SIZE 64
#define SB_PEERS 3

typedef struct build_sparse_result {
  uint64_t n;
  int reps;
  bench_stat secs[SB_PEERS];
} build_sparse_result;

static const bench_peer *const sb_peers[SB_PEERS] = {&bench_strata, &bench_cdb,
                                                     &bench_lmdb};

static void run(bench_ctx *ctx, void *result) {
  const bench_options *o = ctx->o;
  build_sparse_result *res = result;
  *res = (build_sparse_result){.n = o->sparse_build_n, .reps = o->build_reps};
  uint64_t *ids = bench_xmalloc(res->n * sizeof *ids);
  uint64_t seed = 0x5eed;
  for (uint64_t i = 0; i < res->n; i++)
    ids[i] = bench_splitmix64(&seed); /* a bijection: no duplicates */
  bench_layers layers = {.n = res->n, .size = SB_SIZE, .ids = ids};
  double v[SB_PEERS][BENCH_MAX_REPS];
  for (int r = 0; r < res->reps; r++) {
    /* Rotate which peer goes first: each recycles the memory (and page
     * cache) the one before it freed. */
    for (int q = 0; q < SB_PEERS; q++) {
      int p = (q + r) % SB_PEERS;
      bench_say("build-sparse: rep %d of %d, %s, %" PRIu64 " x %d B", r + 1,
                res->reps, sb_peers[p]->name, res->n, SB_SIZE);
      v[p][r] = bench_build_once(sb_peers[p], ctx->dir, &layers);
    }
  }
  for (int p = 0; p < SB_PEERS; p++)
    res->secs[p] = bench_summarize(v[p], res->reps);
  free(ids);
}

static void print(FILE *f, const void *result) {
  const build_sparse_result *b = result;
  fprintf(f,
          "build-sparse: %" PRIu64 " layers x %d B with random 64-bit ids in "
          "random order, each build including fsync, %d reps\n",
          b->n, SB_SIZE, b->reps);
  fprintf(f, "  %-28s %10s %9s %9s\n", "", "s", "min", "max");
  for (int p = 0; p < SB_PEERS; p++)
    fprintf(f, "  %-28s %10.3f %9.3f %9.3f\n", sb_peers[p]->name,
            b->secs[p].median, b->secs[p].min, b->secs[p].max);
  fprintf(f,
          "  strata/cdb %.2f   strata/lmdb %.2f   (time ratios; goal: "
          "strata/cdb <= 1)\n\n",
          b->secs[0].median / b->secs[1].median,
          b->secs[0].median / b->secs[2].median);
}

static void json(FILE *f, const void *result) {
  const build_sparse_result *b = result;
  fprintf(f,
          "    \"build-sparse\": {\"layers\": %" PRIu64
          ", \"layer_bytes\": %d, \"reps\": %d",
          b->n, SB_SIZE, b->reps);
  for (int p = 0; p < SB_PEERS; p++) {
    char k[32];
    snprintf(k, sizeof k, "%s_s", sb_peers[p]->name);
    fputs(", ", f);
    bench_json_stat(f, k, b->secs[p]);
  }
  fputs("}", f);
}

const bench_scenario bench_sc_build_sparse = {
    "build-sparse", sizeof(build_sparse_result), run, print, json};
