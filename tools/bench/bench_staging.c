/* Helpers of strata-bench's staging scenarios. The scenarios time the
 * staging pool (include/strata.h, "Staging") in host mode, next to what
 * it does expressed as plain malloc()/memcpy(). docs/BENCHMARKS.md
 * describes them; in short (one file each, bench_sc_staging_<name>.c):
 *
 *   staging-alloc  alloc+free pairs of the pool's block allocator
 *                  (src/staging/staging_alloc.c, compiled in: it is internal),
 *                  single blocks and runs of 1..8, at 50% and 90% full,
 *                  against malloc()/free() of the same byte sizes; p50,
 *                  p99 and p99.9 of each pair, timed one by one.
 *   staging-copy   strata_stage() of layers not staged yet (1 MiB and
 *                  64 KiB, with and without block sharing) against
 *                  memcpy() of the same bytes from the same mapping; and
 *                  strata_stage_to_device() of staged 1 MiB layers plus a
 *                  stream sync against memcpy() of the staged bytes.
 *   staging-batch  strata_stage_path_to_device() of a path of 4 KiB
 *                  layers, and of 1 MiB layers staged and not staged,
 *                  against memcpy() of the path into the same layout.
 *   staging-open   strata_store_open() of an empty store with a 1 GiB
 *                  pool (slabs allocated, touched, pinned), next to the
 *                  same open without a pool and a bare mmap + first touch.
 *
 * Sizes are each scenario's defaults times bench_store_params.scale (--n /
 * 1,000,000), never below the minimums, so a small --n is a quick run.
 * Every timed operation is checked once (the bytes that arrived are
 * compared, the counters say the copies happened), so a scenario cannot
 * measure nothing. Only the public API is used, except by staging-alloc.
 *
 * Page faults: every source mapping is read through once before it is
 * timed, device buffers are written by an untimed first transfer, and the
 * memcpy() destinations are written once before they are timed; the pool's
 * own slabs are touched by strata_store_open(). staging-copy and
 * staging-batch also run an untimed first round (the one that checks the
 * bytes): on the virtual machines this was measured on, the first pass
 * over new mappings and buffers is several times slower than later ones
 * even after every page was touched. A round of staging-copy, which must
 * copy fresh content, opens a fresh store (untimed) rather than evicting;
 * staging-batch stages nothing, so it keeps one store. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_staging.h"

uint64_t bench_staging_scaled(uint64_t n, double scale, uint64_t min) {
  double v = (double)n * scale + 0.5;
  return v < (double)min ? min : (uint64_t)v;
}

int bench_staging_reps(const bench_store_params *p) {
  return p->reps < 1 ? 1 : p->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : p->reps;
}

/* Written at the end so that the reads done to fault pages in stay. */
static volatile uint64_t g_sink;

/* Reads one byte per 4 KiB page of [p, p + n): the pages are mapped in
 * this process afterwards. */
static void fault_in(const void *p, uint64_t n) {
  const volatile uint8_t *b = p;
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; i += 4096)
    s += b[i];
  if (n > 0)
    s += b[n - 1];
  g_sink += s;
}

void bench_prefault_write(void *p, uint64_t n) {
  volatile uint8_t *b = p;
  for (uint64_t i = 0; i < n; i += 4096)
    b[i] = 0;
}

void bench_staging_write_region(const char *dir, uint64_t id, const char *name,
                                uint64_t layers, size_t size) {
  char file[64];
  snprintf(file, sizeof file, "%s.region", name);
  char *path = bench_path(dir, file);
  bench_write_region(path, id, name, layers, size);
  free(path);
}

strata_store_config bench_staging_config(uint64_t bytes, unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_ERROR;
  c.staging.bytes = bytes;
  c.staging.flags = STRATA_STAGING_HOST | STRATA_STAGING_NO_WORKER | flags;
  return c;
}

strata_staging_stats bench_staging_stats(strata_store *s) {
  strata_staging_stats st;
  bench_check(strata_staging_stats_get(s, &st), "strata_staging_stats_get");
  return st;
}

void bench_get_layers(const strata_txn *txn, uint64_t region, uint64_t n,
                      uint64_t size, strata_layer *out) {
  for (uint64_t i = 0; i < n; i++) {
    bench_check(strata_get(txn, region, i, &out[i]), "strata_get");
    if (out[i].size != size)
      bench_fail("region %" PRIu64 " layer %" PRIu64 ": %" PRIu64
                 " bytes, expected %" PRIu64,
                 region, i, out[i].size, size);
    fault_in(out[i].data, out[i].size);
  }
}
