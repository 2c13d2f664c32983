/* Switches for tests and benchmarks only. NOT part of the API: this header
 * is not installed, and the shared library does not export what it
 * declares (tests and strata-bench link strata_static and have src/ on
 * their include path).
 *
 * Why these are not public: each exists to measure or to drive the library,
 * not to configure it for use.
 * - STRATA_STORE_NO_READ_STATS turns off the read counters only to measure
 *   what counting costs (strata-bench "read stats on/off"); the cost is
 *   small and a user gains nothing by reports of zeros.
 * - STRATA_STAGING_DRIVER_ALLOC takes slabs from cudaHostAlloc instead of
 *   NUMA-local memory registered with cudaHostRegister, only to compare the
 *   two (bench_gpu); the default is the one that measured better.
 * - STRATA_STAGING_NO_WORKER and strata_staging_tick() replace the
 *   background worker with passes the caller runs, so that tests see hot
 *   layers staged and evicted at known points. Without strata_staging_tick()
 *   the flag would only mean "never stage hot layers", which nobody has
 *   asked for; a public switch with that meaning can be added if needed.
 * - strata_compact_test_hook() stops a compaction between its write and
 *   its publication, so that tests reach the rebase of deltas crystallized
 *   meanwhile, and the conflicts, at a known point.
 * They keep their public-looking names so that tests and benchmarks read as
 * they did. Their bits are reserved in the public flag enums (comments in
 * <strata/store.h> and <strata/staging.h>), and strata_store_open() accepts
 * them like the public flags. */
#ifndef STRATA_COMMON_STRATA_TESTING_H
#define STRATA_COMMON_STRATA_TESTING_H

#include "strata.h"

/* strata_store_config.flags: do not count gets, misses and bytes served
 * (strata_read_stats_get() then reports zeros for them). */
#define STRATA_STORE_NO_READ_STATS (1u << 2)

/* strata_staging_config.flags: slabs from cudaHostAlloc instead of
 * NUMA-local memory registered with cudaHostRegister (to measure one
 * against the other). */
#define STRATA_STAGING_DRIVER_ALLOC (1u << 3)
/* strata_staging_config.flags: no background worker: hot layers are
 * staged, and the pool evicts, only when strata_staging_tick() is called. */
#define STRATA_STAGING_NO_WORKER (1u << 4)

/* Runs one pass of the hot-layer worker on the calling thread: counts the
 * sampled reads, stages hot layers, evicts over the high watermark.
 * Returns how many layers it staged. Passes are serialized with the
 * worker's. Errors: STRATA_E_STATE (no staging pool). Thread-safe. */
int strata_staging_tick(strata_store *store);

/* Calls fn(ctx) in every compaction of `store` (strata_compact() and the
 * background compactor) after it wrote its new file and before it takes
 * the writer mutex to publish it, on the compacting thread: the point at
 * which a test crystallizes deltas that the compaction must rebase, or
 * replaces a file under it. NULL removes the hook. Set it while no
 * compaction runs. */
void strata_compact_test_hook(strata_store *store, void (*fn)(void *ctx),
                              void *ctx);

#endif /* STRATA_COMMON_STRATA_TESTING_H */
