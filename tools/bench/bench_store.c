/* Helpers of the store scenarios (bench_sc_store_open.c,
 * bench_sc_store_read.c, bench_sc_crystallize.c, bench_sc_writer_cycle.c,
 * bench_sc_delta_read.c) and of the staging scenarios, which open stores
 * too. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

uint32_t bench_region_depth(strata_store *s, uint64_t id) {
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  uint64_t n = strata_store_region_count(&txn), i = 0;
  strata_store_region r = {0};
  for (; i < n; i++) {
    bench_check(strata_store_region_at(&txn, i, &r), "strata_store_region_at");
    if (r.id == id)
      break;
  }
  if (i == n)
    bench_fail("region %" PRIu64 ": not in the store", id);
  uint32_t k = 0;
  for (const strata_region *d;
       strata_store_region_delta_at(&txn, i, k, &d) == 0;)
    k++;
  strata_read_end(&txn);
  return k;
}

strata_proto *bench_make_region(strata_store *s, uint64_t id, const char *name,
                                uint64_t layers, size_t size, uint64_t fill) {
  char full[64];
  snprintf(full, sizeof full, "%s-%" PRIu64, name, id);
  strata_proto *pr;
  bench_check(strata_proto_create(s, id, full, strlen(full), NULL, &pr),
              "strata_proto_create");
  uint8_t *buf = bench_xmalloc(size);
  for (uint64_t i = 0; i < layers; i++) {
    bench_fill_layer(fill, i, buf, size);
    bench_check(strata_proto_put(pr, i, NULL, 0, NULL, buf, size),
                "strata_proto_put");
  }
  free(buf);
  bench_check(strata_crystallize(s, id), "strata_crystallize");
  return pr;
}
