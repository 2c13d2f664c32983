/* Helpers of the store scenarios (bench_sc_store_open.c,
 * bench_sc_store_read.c, bench_sc_crystallize.c) and of the staging
 * scenarios, which open stores too. */
#include "bench_store.h"

strata_store *bench_open_store(const char *dir, const strata_store_config *c) {
  strata_store *s;
  bench_check(strata_store_open(dir, c, &s), dir);
  return s;
}

strata_store *bench_open_store_flags(const char *dir, unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = flags;
  return bench_open_store(dir, &c);
}

uint64_t bench_region_count(strata_store *s) {
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  uint64_t n = strata_store_region_count(&txn);
  strata_read_end(&txn);
  return n;
}
