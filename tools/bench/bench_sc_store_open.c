/* Scenario "store-open": 14 region files of 100,000 layers (times the
 * scale): strata_store_open() with the default config (index checksums on
 * a background thread) and with STRATA_STORE_VERIFY_AT_OPEN, next to
 * strata_region_open() of each file one after another. Only the public
 * API is used; the store milestone's target is printed next to the
 * figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_store.h"

/* At scale 1 (--n 1000000). */
#define OPEN_REGIONS 14
#define OPEN_LAYERS 100000
#define OPEN_MIN_REPS 20

/* The store milestone's target, printed next to the measurement. */
#define TARGET_OPEN_MS 10.0

/* "store-open": a store of 14 regions opened and closed repeatedly. */
typedef struct store_open_result {
  uint64_t regions, layers;         /* layers per region */
  uint64_t file_bytes, index_bytes; /* all regions together */
  double build_s;
  int opens;
  double load1; /* load average over the last minute, at the start */
  /* ms: strata_store_open() alone, default config (index checksums on a
   * background thread); the same open followed by strata_store_refresh(),
   * which returns once that thread has checked every index; open with
   * STRATA_STORE_VERIFY_AT_OPEN; strata_region_open() of every file, one
   * after another; strata_store_close() after a default open. */
  bench_stat open_ms, verified_ms, verify_at_open_ms, serial_ms, close_ms;
} store_open_result;

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  store_open_result *r = result;
  *r = (store_open_result){.regions = OPEN_REGIONS,
                           .layers = bench_scaled(OPEN_LAYERS, p->scale),
                           .load1 = bench_load1()};
  r->opens = p->reps < OPEN_MIN_REPS ? OPEN_MIN_REPS : p->reps;
  char *dir = bench_mkdir(p->dir, "store-open");
  char *paths[OPEN_REGIONS];
  bench_say("store-open: writing %d regions x %" PRIu64 " layers of 64-256 B",
            OPEN_REGIONS, r->layers);
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < OPEN_REGIONS; i++) {
    char name[32];
    snprintf(name, sizeof name, "open-%02u.region", i + 1);
    paths[i] = bench_path(dir, name);
    name[strlen(name) - strlen(".region")] = '\0';
    bench_write_region(paths[i], i + 1, name, r->layers, 0);
  }
  r->build_s = (double)(bench_now_ns() - t0) / 1e9;
  for (unsigned i = 0; i < OPEN_REGIONS; i++) {
    bench_warm_page_cache(paths[i]);
    strata_region *reg;
    strata_region_info info;
    bench_check(strata_region_open(paths[i], STRATA_OPEN_DEFAULT, &reg),
                paths[i]);
    strata_region_info_get(reg, &info);
    r->file_bytes += info.file_size;
    r->index_bytes += info.file_size - info.index_offset;
    strata_region_close(reg);
  }
  /* Every region must be served, by both ways of opening. */
  for (unsigned flags = 0; flags <= STRATA_STORE_VERIFY_AT_OPEN;
       flags += STRATA_STORE_VERIFY_AT_OPEN) {
    strata_store *s = bench_open_store_flags(dir, flags);
    bench_check(strata_store_refresh(s), "strata_store_refresh");
    if (bench_region_count(s) != OPEN_REGIONS)
      bench_fail("store-open: the store serves %" PRIu64 " of %d regions",
                 bench_region_count(s), OPEN_REGIONS);
    strata_store_close(s);
  }

  bench_say("store-open: %d opens of each kind", r->opens);
  double *ms[5];
  for (int k = 0; k < 5; k++)
    ms[k] = bench_xmalloc((size_t)r->opens * sizeof *ms[k]);
  for (int i = 0; i < r->opens; i++) {
    /* Rotate the order, as the get scenarios do. */
    for (int q = 0; q < 3; q++) {
      int kind = (q + i) % 3;
      uint64_t a = bench_now_ns(), b, c;
      if (kind == 0) {
        strata_store *s = bench_open_store_flags(dir, 0);
        b = bench_now_ns();
        bench_check(strata_store_refresh(s), "strata_store_refresh");
        c = bench_now_ns();
        strata_store_close(s);
        ms[0][i] = (double)(b - a) / 1e6;
        ms[1][i] = (double)(c - a) / 1e6;
        ms[4][i] = (double)(bench_now_ns() - c) / 1e6;
      } else if (kind == 1) {
        strata_store *s =
            bench_open_store_flags(dir, STRATA_STORE_VERIFY_AT_OPEN);
        b = bench_now_ns();
        strata_store_close(s);
        ms[2][i] = (double)(b - a) / 1e6;
      } else {
        strata_region *regs[OPEN_REGIONS];
        for (unsigned j = 0; j < OPEN_REGIONS; j++)
          bench_check(
              strata_region_open(paths[j], STRATA_OPEN_DEFAULT, &regs[j]),
              paths[j]);
        b = bench_now_ns();
        for (unsigned j = 0; j < OPEN_REGIONS; j++)
          strata_region_close(regs[j]);
        ms[3][i] = (double)(b - a) / 1e6;
      }
    }
  }
  r->open_ms = bench_summarize(ms[0], r->opens);
  r->verified_ms = bench_summarize(ms[1], r->opens);
  r->verify_at_open_ms = bench_summarize(ms[2], r->opens);
  r->serial_ms = bench_summarize(ms[3], r->opens);
  r->close_ms = bench_summarize(ms[4], r->opens);
  for (int k = 0; k < 5; k++)
    free(ms[k]);
  for (unsigned i = 0; i < OPEN_REGIONS; i++)
    free(paths[i]);
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const store_open_result *r = result;
  fprintf(f,
          "store-open: %" PRIu64 " regions x %" PRIu64
          " layers of 64-256 B (dense ids), %.1f MB of files, %.1f MB of "
          "index sections; files in the page cache; %d opens of each kind; "
          "load average %.2f\n",
          r->regions, r->layers, (double)r->file_bytes / 1e6,
          (double)r->index_bytes / 1e6, r->opens, r->load1);
  fprintf(f, "  %-50s %9s %9s %9s\n", "ms", "median", "min", "max");
  const struct {
    const char *what;
    bench_stat s;
  } rows[] = {
      {"strata_store_open, default (checksums after open)", r->open_ms},
      {"  ... then strata_store_refresh (checksums done)", r->verified_ms},
      {"strata_store_open, STRATA_STORE_VERIFY_AT_OPEN", r->verify_at_open_ms},
      {"strata_region_open of each file, serially", r->serial_ms},
      {"strata_store_close after a default open", r->close_ms},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    fprintf(f, "  %-50s %9.3f %9.3f %9.3f\n", rows[i].what, rows[i].s.median,
            rows[i].s.min, rows[i].s.max);
  fprintf(f,
          "  default/verify-at-open %.2f   default/serial %.2f   "
          "verify-at-open/serial %.2f\n",
          r->open_ms.median / r->verify_at_open_ms.median,
          r->open_ms.median / r->serial_ms.median,
          r->verify_at_open_ms.median / r->serial_ms.median);
  fprintf(f,
          "  target: default open <= %.0f ms; measured %.2f ms median "
          "(%.2f x the target)\n\n",
          TARGET_OPEN_MS, r->open_ms.median,
          r->open_ms.median / TARGET_OPEN_MS);
}

static void json(FILE *f, const void *result) {
  const store_open_result *r = result;
  fprintf(f,
          "    \"store-open\": {\"regions\": %" PRIu64 ", \"layers\": %" PRIu64
          ", \"file_bytes\": %" PRIu64 ", \"index_bytes\": %" PRIu64
          ", \"build_s\": %.3f, \"opens\": %d, \"load1\": %.2f, \"ms\": {",
          r->regions, r->layers, r->file_bytes, r->index_bytes, r->build_s,
          r->opens, r->load1);
  bench_json_stat(f, "open_default", r->open_ms);
  fputs(", ", f);
  bench_json_stat(f, "open_default_then_refresh", r->verified_ms);
  fputs(", ", f);
  bench_json_stat(f, "open_verify_at_open", r->verify_at_open_ms);
  fputs(", ", f);
  bench_json_stat(f, "region_open_serial", r->serial_ms);
  fputs(", ", f);
  bench_json_stat(f, "close", r->close_ms);
  fprintf(f, "}, \"target_open_ms\": %.1f}", TARGET_OPEN_MS);
}

const bench_scenario bench_sc_store_open = {
    "store-open", sizeof(store_open_result), run, print, json};
