/* The walk that must find, on a lazily opened region, every error an eager
 * open (STRATA_OPEN_CHECK_INDEX) reports: an id lookup of every layer the
 * index's range allows (dense: every id from the first; sparse: the id each
 * slot's entry holds), the pipelined batch over the same ids, iteration,
 * and strata_region_verify(). A lazy open checks index entries chunk by
 * chunk on first use; whatever needs the whole index is verify's. Stops at
 * the first error so that strata_last_error_detail() still describes it. */
#ifndef STRATA_TEST_LAZY_WALK_H
#define STRATA_TEST_LAZY_WALK_H

#include "region/region.h"

static uint64_t lazy_walk_id(const strata_region *r, uint64_t i) {
  return r->dense
             ? r->first_id + i
             : strata__rd64(r->entries + i * STRATA__ENTRY_SIZE + STRATA__E_ID);
}

static int lazy_walk(const strata_region *r) {
  strata_layer l;
  int rc;
  for (uint64_t i = 0; i < r->entries_n; i++) {
    const void *data = NULL;
    uint64_t size = 0;
    uint64_t id = lazy_walk_id(r, i);
    (void)strata_region_get_data_many(r, &id, 1, &data, &size);
    rc = strata_region_get(r, id, &l);
    if (rc < 0 && rc != STRATA_E_NOT_FOUND)
      return rc;
    /* A batch reports a layer in a failing chunk as missing, never more. */
    if (rc == 0 && data != NULL && (data != l.data || size != l.size))
      return STRATA_E_INVAL;
  }
  strata_region_iter it;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0)
    ;
  if (rc < 0)
    return rc;
  return strata_region_verify(r, NULL);
}

#endif
