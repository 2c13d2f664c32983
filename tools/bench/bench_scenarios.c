/* strata-bench: the scenario table. The order is the order scenarios run
 * in and are printed in, text and JSON alike; open follows dense because
 * it reads the region dense built (bench_ctx.dense_peers). A scenario is
 * one bench_sc_<name>.c that defines its bench_scenario entry. */
#include "bench.h"

const bench_scenario *const bench_scenarios[] = {
    &bench_sc_dense,         &bench_sc_open,         &bench_sc_sparse,
    &bench_sc_zipf,          &bench_sc_small,        &bench_sc_build,
    &bench_sc_build_sparse,  &bench_sc_pool,         &bench_sc_store_open,
    &bench_sc_store_scale,   &bench_sc_store_read,   &bench_sc_crystallize,
    &bench_sc_writer_cycle,  &bench_sc_delta_read,   &bench_sc_rcu,
    &bench_sc_staging_alloc, &bench_sc_staging_copy, &bench_sc_staging_batch,
    &bench_sc_staging_open};

const int bench_nscenarios =
    (int)(sizeof bench_scenarios / sizeof bench_scenarios[0]);

/* bench_options.scenarios has a bit per entry. */
_Static_assert(sizeof bench_scenarios / sizeof bench_scenarios[0] <= 32,
               "more scenarios than bits in bench_options.scenarios");
