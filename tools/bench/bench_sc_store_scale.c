/* Scenario "store-scale": strata_store_open() and strata_store_refresh()
 * of stores of 1,000, 10,000 and 50,000 small region files (times the
 * scale), in ms and in us per region, so that a cost that grows faster
 * than the number of files shows as a growing per-region figure. The
 * refresh is timed twice: with nothing changed (every file is compared
 * with its directory entry), and after one file was added and one
 * removed. Only the public API is used. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_store.h"

/* At scale 1 (--n 1000000). */
static const uint64_t SCALE_SIZES[] = {1000, 10000, 50000};
#define SCALE_STEPS (sizeof SCALE_SIZES / sizeof SCALE_SIZES[0])
#define SCALE_REPS 3

typedef struct store_scale_result {
  uint64_t regions[SCALE_STEPS];
  /* ms: open (default config), refresh with nothing changed, refresh after
   * one file added and one removed, close. */
  bench_stat open_ms[SCALE_STEPS], refresh_ms[SCALE_STEPS],
      change_ms[SCALE_STEPS], close_ms[SCALE_STEPS];
  double build_s;
} store_scale_result;

static void write_one(const char *dir, uint64_t i) {
  char name[32], file[48];
  snprintf(name, sizeof name, "s%07" PRIu64, i);
  snprintf(file, sizeof file, "%s.region", name);
  char *path = bench_path(dir, file);
  bench_write_region(path, i + 1, name, 1, 0);
  free(path);
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  store_scale_result *r = result;
  char *dir = bench_mkdir(p->dir, "store-scale");
  uint64_t have = 0, t_build = 0;
  for (size_t k = 0; k < SCALE_STEPS; k++) {
    uint64_t n = bench_scaled(SCALE_SIZES[k], p->scale);
    if (k > 0 && n <= r->regions[k - 1])
      n = r->regions[k - 1] + 1;
    r->regions[k] = n;
    bench_say("store-scale: writing regions %" PRIu64 " .. %" PRIu64, have,
              n - 1);
    uint64_t t0 = bench_now_ns();
    for (; have < n; have++)
      write_one(dir, have);
    t_build += bench_now_ns() - t0;
    double ms[4][SCALE_REPS];
    for (int rep = 0; rep < SCALE_REPS; rep++) {
      uint64_t a = bench_now_ns();
      strata_store *s = bench_open_store_flags(dir, 0);
      uint64_t b = bench_now_ns();
      /* The first refresh waits for the index checksums of the verifier
       * thread; the timed ones come after it. */
      bench_check(strata_store_refresh(s), "strata_store_refresh");
      if (bench_region_count(s) != n)
        bench_fail("store-scale: the store serves %" PRIu64 " of %" PRIu64
                   " regions",
                   bench_region_count(s), n);
      uint64_t c = bench_now_ns();
      bench_check(strata_store_refresh(s), "strata_store_refresh");
      uint64_t d = bench_now_ns();
      write_one(dir, n); /* one more, then it goes again */
      char extra[32];
      snprintf(extra, sizeof extra, "s%07" PRIu64 ".region", n);
      char *path = bench_path(dir, extra);
      uint64_t e = bench_now_ns();
      bench_check(strata_store_refresh(s), "strata_store_refresh");
      uint64_t f = bench_now_ns();
      if (unlink(path) != 0)
        bench_fail("store-scale: unlink %s", path);
      free(path);
      bench_check(strata_store_refresh(s), "strata_store_refresh");
      uint64_t g = bench_now_ns();
      strata_store_close(s);
      uint64_t h = bench_now_ns();
      ms[0][rep] = (double)(b - a) / 1e6;
      ms[1][rep] = (double)(d - c) / 1e6;
      ms[2][rep] = (double)(f - e) / 1e6;
      ms[3][rep] = (double)(h - g) / 1e6;
    }
    r->open_ms[k] = bench_summarize(ms[0], SCALE_REPS);
    r->refresh_ms[k] = bench_summarize(ms[1], SCALE_REPS);
    r->change_ms[k] = bench_summarize(ms[2], SCALE_REPS);
    r->close_ms[k] = bench_summarize(ms[3], SCALE_REPS);
  }
  r->build_s = (double)t_build / 1e9;
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const store_scale_result *r = result;
  fprintf(f,
          "store-scale: stores of small regions (1 layer each), files in the "
          "page cache; median of %d; default config\n",
          SCALE_REPS);
  fprintf(f, "  %9s %-32s %10s %12s\n", "regions", "", "ms", "us/region");
  for (size_t k = 0; k < SCALE_STEPS; k++) {
    const struct {
      const char *what;
      bench_stat s;
    } rows[] = {
        {"strata_store_open", r->open_ms[k]},
        {"strata_store_refresh, no change", r->refresh_ms[k]},
        {"strata_store_refresh, one added", r->change_ms[k]},
        {"strata_store_close", r->close_ms[k]},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
      fprintf(f, "  %9" PRIu64 " %-32s %10.3f %12.3f\n", r->regions[k],
              rows[i].what, rows[i].s.median,
              rows[i].s.median * 1e3 / (double)r->regions[k]);
  }
  fprintf(f, "\n");
}

static void json(FILE *f, const void *result) {
  const store_scale_result *r = result;
  fprintf(f, "    \"store-scale\": {\"build_s\": %.3f, \"steps\": [",
          r->build_s);
  for (size_t k = 0; k < SCALE_STEPS; k++) {
    fprintf(f, "%s{\"regions\": %" PRIu64 ", \"ms\": {", k ? ", " : "",
            r->regions[k]);
    bench_json_stat(f, "open", r->open_ms[k]);
    fputs(", ", f);
    bench_json_stat(f, "refresh", r->refresh_ms[k]);
    fputs(", ", f);
    bench_json_stat(f, "refresh_one_added", r->change_ms[k]);
    fputs(", ", f);
    bench_json_stat(f, "close", r->close_ms[k]);
    fputs("}}", f);
  }
  fputs("]}", f);
}

const bench_scenario bench_sc_store_scale = {
    "store-scale", sizeof(store_scale_result), run, print, json};
