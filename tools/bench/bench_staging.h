/* strata-bench: helpers of the staging scenarios (bench_staging.c), which
 * are bench_sc_staging_alloc.c, _copy.c, _batch.c and _open.c. */
#ifndef STRATA_BENCH_STAGING_H
#define STRATA_BENCH_STAGING_H

#include <stdint.h>

#include "bench.h"
#include "bench_store.h"
#include "common/strata_testing.h" /* STRATA_STAGING_NO_WORKER, _DRIVER_ALLOC */
#include "strata.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* n * scale, rounded, never below `min`: a small --n is a quick run that
 * still measures something. */
uint64_t bench_staging_scaled(uint64_t n, double scale, uint64_t min);
/* --reps, clamped to 1..BENCH_MAX_REPS. */
int bench_staging_reps(const bench_store_params *p);
/* Writes one byte per 4 KiB page of [p, p + n), so that the timed writes
 * that follow do not fault. */
void bench_prefault_write(void *p, uint64_t n);
/* Writes dir/<name>.region: region `id`, `layers` layers of `size` bytes
 * with ids 0..layers-1 (bench_write_region()). */
void bench_staging_write_region(const char *dir, uint64_t id, const char *name,
                                uint64_t layers, size_t size);
/* A store config with a host-mode staging pool of `bytes`: no worker, so
 * nothing is staged or evicted behind the measurement's back. */
strata_store_config bench_staging_config(uint64_t bytes, unsigned flags);
/* The pool's counters; exits on failure. */
strata_staging_stats bench_staging_stats(strata_store *s);
/* The layers 0..n-1 of `region` as this snapshot sees them; each must
 * exist with `size` bytes. Faults their pages in. */
void bench_get_layers(const strata_txn *txn, uint64_t region, uint64_t n,
                      uint64_t size, strata_layer *out);

#endif /* STRATA_BENCH_STAGING_H */
