/* strata-bench: helpers of the scenarios that open stores (bench_store.c). */
#ifndef STRATA_BENCH_STORE_H
#define STRATA_BENCH_STORE_H

#include "bench.h"
#include "strata.h"

/* strata_store_open() of dir with config c; exits on failure. */
strata_store *bench_open_store(const char *dir, const strata_store_config *c);
/* The same with the default config and c.flags = flags. */
strata_store *bench_open_store_flags(const char *dir, unsigned flags);
/* The regions a snapshot of s serves. */
uint64_t bench_region_count(strata_store *s);
/* The delta files a snapshot of s serves over region `id`'s base
 * (strata_store_region_delta_at()); exits when s has no such region. */
uint32_t bench_region_depth(strata_store *s, uint64_t id);
/* Creates region `id` (named "NAME-<id>") with `layers` layers of `size`
 * bytes, dense ids 0..layers-1 holding bench_fill_layer(fill, ...), and
 * crystallizes it into its base file; returns its proto, attached and
 * empty over that file. Exits on failure. */
strata_proto *bench_make_region(strata_store *s, uint64_t id, const char *name,
                                uint64_t layers, size_t size, uint64_t fill);

#endif /* STRATA_BENCH_STORE_H */
