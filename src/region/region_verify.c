/* Deep verification of an open region: content checksums, the id order and
 * the name index. Reads every byte of the file; never on the lookup path. */
/* XXH3's state on the stack, not from XXH3_createState(): a caller may
 * leave verification by siglongjmp() from a SIGBUS handler (strata verify
 * does, when the file is truncated under it), which must leak nothing. */
#define XXH_STATIC_LINKING_ONLY
#include "common/hash.h"
#include <inttypes.h>
#include <stdbool.h>

#include "common/struct_size.h"
#include "region/region.h"

/* The progress callback is called once per this many content bytes at
 * most (and once at the end): a few hundred calls for a GiB, each far
 * cheaper than the hashing between them (XXH3 checks 4 MiB in well under
 * a millisecond), yet often enough for a redraw every tenth of a second. */
#define VERIFY_PROGRESS_STEP ((uint64_t)4 << 20)

typedef struct verify_run {
  const strata_region *r;
  const char *file;
  strata_progress_fn fn; /* NULL: no progress */
  void *ctx;
  XXH3_state_t *xxh; /* for layers hashed in steps */
  strata_progress p;
  uint64_t last; /* bytes_done at the last call */
} verify_run;

/* Calls the callback when `force` or a step has passed since the last
 * call; its non-zero return becomes STRATA_E_CANCELED. */
static int report(verify_run *v, bool force) {
  if (v->fn == NULL ||
      (!force && v->p.bytes_done - v->last < VERIFY_PROGRESS_STEP))
    return 0;
  v->last = v->p.bytes_done;
  if (v->fn(v->ctx, &v->p) == 0)
    return 0;
  return strata__fail(STRATA_E_CANCELED,
                      "%s: verification canceled by the progress callback "
                      "after %" PRIu64 " of %" PRIu64 " layers",
                      v->file, v->p.layers_done, v->p.layers_total);
}

/* The checksum of a layer's content, hashed in steps with a progress
 * call between them when a callback wants one (XXH3's streaming form
 * gives the one-shot value). */
static int layer_sum(verify_run *v, const strata_layer *l, uint64_t *sum) {
  if (v->fn == NULL || l->size <= VERIFY_PROGRESS_STEP) {
    *sum = XXH3_64bits(l->data, (size_t)l->size);
    v->p.bytes_done += l->size;
    return 0;
  }
  XXH3_64bits_reset(v->xxh);
  const uint8_t *p = l->data;
  for (uint64_t left = l->size; left > 0;) {
    uint64_t k = left < VERIFY_PROGRESS_STEP ? left : VERIFY_PROGRESS_STEP;
    XXH3_64bits_update(v->xxh, p, (size_t)k);
    p += k;
    left -= k;
    v->p.bytes_done += k;
    if (left > 0)
      STRATA__TRY(report(v, false));
  }
  *sum = XXH3_64bits_digest(v->xxh);
  return 0;
}

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

/* The totals the callback reports against: a walk over the index only. */
static int totals(verify_run *v) {
  strata_region_iter it;
  strata_layer l;
  int rc;
  strata_region_iter_init(v->r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    v->p.bytes_total += l.size;
    v->p.layers_total++;
  }
  return rc;
}

/* The checks, in the order strata_region_verify() documents. */
static int check(verify_run *v, uint64_t *bad_id) {
  const strata_region *r = v->r;
  /* What a lazy open left out (and an eager one already did: cheap next
   * to hashing the contents): the index checksum, every entry, the counts
   * and the name index. */
  STRATA__TRY(strata__region_check_all(r, v->file));
  if (v->fn != NULL)
    STRATA__TRY(totals(v)); /* a broken id order, as the walk below finds */
  strata_region_iter it;
  strata_layer l;
  int rc;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    uint64_t sum;
    STRATA__TRY(layer_sum(v, &l, &sum));
    if (sum != l.checksum) {
      if (bad_id)
        *bad_id = l.id;
      return strata__fail(
          STRATA_E_CHECKSUM,
          "%s: layer %" PRIu64 ": content [%" PRIu64 ", +%" PRIu64
          ") checksum %016" PRIx64 " != stored %016" PRIx64,
          v->file, l.id, (uint64_t)((const uint8_t *)l.data - r->base), l.size,
          sum, l.checksum);
    }
    v->p.layers_done++;
    STRATA__TRY(report(v, false));
  }
  if (rc < 0) /* the id order itself is broken: there is no layer to name */
    return rc;
  STRATA__TRY(verify_names(r, v->file, bad_id));
  return report(v, true);
}

void strata_verify_options_init(strata_verify_options *o) {
  if (o != NULL)
    *o = (strata_verify_options){.struct_size = sizeof *o};
}

int strata_region_verify_ex(const strata_region *r,
                            const strata_verify_options *in, uint64_t *bad_id) {
  if (r == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_region_verify: NULL region");
  const char *file = r->path ? r->path : "region";
  strata_verify_options o;
  strata_verify_options_init(&o);
  STRATA__TRY(STRATA__READ_SIZED(file, strata_verify_options, &o, in));
  STRATA__FAIL_IF(o.flags != 0, STRATA_E_INVAL,
                  "%s: unknown verify flags 0x%" PRIx32, file, o.flags);
  verify_run v = {
      .r = r, .file = file, .fn = o.progress, .ctx = o.progress_ctx};
  XXH3_state_t xxh;
  XXH3_INITSTATE(&xxh);
  v.xxh = &xxh;
  return check(&v, bad_id);
}

int strata_region_verify(const strata_region *r, uint64_t *bad_id) {
  return strata_region_verify_ex(r, NULL, bad_id);
}
