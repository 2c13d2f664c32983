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

#endif /* STRATA_BENCH_STORE_H */
