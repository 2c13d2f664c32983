/* Deep verification of an open region: content checksums, the id order and
 * the name index. Reads every byte of the file; never on the lookup path. */
#include "common/hash.h"
#include <inttypes.h>

#include "region/region.h"

static int verify_names(const strata_region *r, const char *file,
                        uint64_t *bad_id) {
  strata_layer a, b;
  for (uint64_t i = 0; i < r->entries_n; i++) {
    strata__layer_from_entry(r, i, &a); /* empty entries have no name */
    if (a.name == NULL)
      continue;
    int rc = strata_region_get_by_name(r, a.name, a.name_len, &b);
    if (rc == 0 && b.id == a.id)
      continue;
    if (bad_id)
      *bad_id = a.id;
    if (rc < 0)
      return strata__fail(STRATA_E_CORRUPT,
                          "%s: layer %" PRIu64
                          ": name \"%s\" is not found through the name index",
                          file, a.id, a.name);
    return strata__fail(STRATA_E_CORRUPT,
                        "%s: layer %" PRIu64
                        ": name \"%s\" is also used by layer %" PRIu64,
                        file, a.id, a.name, b.id);
  }
  return 0;
}

int strata_region_verify(const strata_region *r, uint64_t *bad_id) {
  if (r == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_region_verify: NULL region");
  const char *file = r->path ? r->path : "region";
  strata_region_iter it;
  strata_layer l;
  int rc;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    uint64_t sum = XXH3_64bits(l.data, (size_t)l.size);
    if (sum != l.checksum) {
      if (bad_id)
        *bad_id = l.id;
      return strata__fail(
          STRATA_E_CHECKSUM,
          "%s: layer %" PRIu64 ": content [%" PRIu64 ", +%" PRIu64
          ") checksum %016" PRIx64 " != stored %016" PRIx64,
          file, l.id, (uint64_t)((const uint8_t *)l.data - r->base), l.size,
          sum, l.checksum);
    }
  }
  if (rc < 0) /* the id order itself is broken: there is no layer to name */
    return rc;
  return verify_names(r, file, bad_id);
}
