/* strata-bench: random-get, open and write throughput of Strata regions
 * next to LMDB, tinycdb and a bare mmap'd offset array (the lower bound),
 * and the store and staging scenarios. docs/BENCHMARKS.md describes the
 * scenarios and what the numbers mean; bench_scenarios.c lists them.
 *
 * Only Strata's public API (include/strata.h) is used, as any caller would,
 * except by the pool scenario (bench_sc_pool.c), which times the library's
 * internal heap pool allocator against malloc()/free(), and staging-alloc
 * (bench_sc_staging_alloc.c), which does the same for the staging pool's
 * block allocator.
 *
 * This file runs the selected scenarios in table order: each one's text
 * report follows its run, and with --json the JSON object, which has every
 * result, is printed at the end. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_get.h"

static char *g_workdir;

static void cleanup(void) {
  if (g_workdir != NULL)
    bench_rmtree(g_workdir);
}

int main(int argc, char **argv) {
  bench_options o;
  if (bench_parse_options(argc, argv, &o) != 0)
    return 2;
  const char *parent = o.dir;
  if (parent == NULL)
    parent = getenv("TMPDIR");
  if (parent == NULL || *parent == '\0')
    parent = "/tmp";
  g_workdir = bench_path(parent, "strata-bench-XXXXXX");
  if (mkdtemp(g_workdir) == NULL)
    bench_fail("mkdtemp %s: %s", g_workdir, strerror(errno));
  atexit(cleanup);
  bench_machine m;
  bench_machine_read(&m, g_workdir);
  FILE *out = o.json ? stderr : stdout;
  bench_machine_print(out, &m, &o);

  bench_ctx ctx = {.o = &o,
                   .dir = g_workdir,
                   .sp = {.dir = g_workdir,
                          .scale = (double)o.n / 1e6,
                          .size = o.size,
                          .reps = o.reps,
                          .seconds = o.seconds}};
  void *results[32] = {0};
  for (int i = 0; i < bench_nscenarios; i++) {
    const bench_scenario *sc = bench_scenarios[i];
    if (!bench_selected(&o, sc))
      continue;
    results[i] = calloc(1, sc->result_size);
    if (results[i] == NULL)
      bench_fail("out of memory");
    sc->run(&ctx, results[i]);
    sc->print(out, results[i]);
  }
  fflush(out);

  if (o.json) {
    printf("{\n");
    bench_machine_json(stdout, &m);
    printf("  \"scenarios\": {\n");
    /* In the order they ran; a separator before all but the first. */
    for (int i = 0, first = 1; i < bench_nscenarios; i++) {
      if (results[i] == NULL)
        continue;
      fputs(first ? "" : ",\n", stdout);
      first = 0;
      bench_scenarios[i]->json(stdout, results[i]);
    }
    printf("\n  },\n  \"sink\": %" PRIu64 "\n}\n", (uint64_t)bench_sink);
  }
  for (int i = 0; i < bench_nscenarios; i++)
    free(results[i]);
  return 0;
}
