/* The lookup path: by id, by name, partial reads and iteration. An index
 * entry is read only once its chunk is validated (strata__entry_ok: at open
 * for an eager region, on first use for a lazy one), so these functions
 * mostly compute addresses: no allocation, no lock, no system call. */
#include <inttypes.h>

#include "region/region.h"

int64_t strata__find_entry(const strata_region *r, uint64_t id) {
  uint64_t e, off, size;
  return strata__region_find(r, id, &e, &off, &size) ? (int64_t)e : -1;
}

static int not_found(const strata_region *r, uint64_t id) {
  int rc = strata__region_entry_error(r, id);
  if (rc < 0)
    return rc;
  return strata__fail(STRATA_E_NOT_FOUND, "%s: layer %" PRIu64 " not found",
                      r->path ? r->path : "region", id);
}

int strata_region_get(const strata_region *r, uint64_t id, strata_layer *out) {
  uint64_t e, off, size;
  if (!strata__region_find(r, id, &e, &off, &size))
    return not_found(r, id);
  strata__layer_from_entry(r, e, out); /* find validated e's chunk */
  /* The same values as the entry's (checked at open), but from the
   * locator: the content pointer then does not wait for the entry's cache
   * miss, and the caller's first touch of the content overlaps it. */
  out->data = r->data + off;
  out->size = size;
  return 0;
}

int strata_region_get_data(const strata_region *r, uint64_t id,
                           const void **data, uint64_t *size) {
  uint64_t e, off, len;
  if (!strata__region_find(r, id, &e, &off, &len))
    return not_found(r, id);
  *data = r->data + off;
  *size = len;
  return 0;
}

/* How many ids ahead each stage of strata_region_get_data_many() works:
 * enough to cover a memory access with the work of the ids in between. */
#define AHEAD 8
#define RING 32 /* > 2 * AHEAD, a power of two */

size_t strata_region_get_data_many(const strata_region *r, const uint64_t *ids,
                                   size_t count, const void **data,
                                   uint64_t *sizes) {
  size_t found = 0;
  if (r->dense) {
    /* One table read per id: prefetch it AHEAD ids early. */
    for (size_t k = 0; k < count + AHEAD; k++) {
      if (k < count)
        strata__pipe_start(r, ids[k]);
      if (k >= AHEAD)
        found += strata__pipe_finish(r, 0, ids[k - AHEAD], &data[k - AHEAD],
                                     &sizes[k - AHEAD]);
    }
    return found;
  }
  /* Sparse: three stages, AHEAD ids apart: hash the id and prefetch its
   * pilot; read the pilot, compute the slot and prefetch its locator; read
   * the locator. */
  uint64_t stage[RING]; /* the hash, then the slot */
  for (size_t k = 0; k < count + 2 * AHEAD; k++) {
    if (k < count)
      stage[k % RING] = strata__pipe_start(r, ids[k]);
    if (k >= AHEAD && k - AHEAD < count)
      stage[(k - AHEAD) % RING] =
          strata__pipe_slot(r, stage[(k - AHEAD) % RING]);
    if (k >= 2 * AHEAD) {
      size_t j = k - 2 * AHEAD;
      found +=
          strata__pipe_finish(r, stage[j % RING], ids[j], &data[j], &sizes[j]);
    }
  }
  return found;
}

void strata__prefetch_layer(const strata_region *r, uint64_t id) {
  uint64_t i;
  if (r->dense) {
    i = id - r->first_id;
    if (i >= r->n)
      return;
  } else {
    /* The pilot table is small enough to stay cached (2 bytes per 4 ids);
     * the locator and the entry are the misses worth starting early. */
    uint64_t h = strata__id_hash(id, r->seed);
    uint64_t b = strata__pilot_bucket(h, r->pilot_count);
    i = strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
  }
  strata__prefetch(r->locators + i * r->loc_size);
  strata__prefetch(r->entries + i * STRATA__ENTRY_SIZE);
}

int strata_region_dense_view(const strata_region *r, strata_dense_view *v) {
  if (r == NULL || v == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_region_dense_view: NULL");
  if (!r->packed)
    return strata__fail(
        STRATA_E_INVAL, "%s: no dense view: the region's ids are %s",
        r->path ? r->path : "region",
        r->dense ? "dense but its contents are not in id order" : "sparse");
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return strata__fail(STRATA_E_INVAL, "%s: no dense view on a big-endian host",
                      r->path ? r->path : "region");
#else
  /* The caller reads the positions without checks: validate them all. */
  for (uint64_t c = 0; r->valid != NULL && c << STRATA__CHUNK_SHIFT < r->n; c++)
    if (!strata__entry_ok(r, c << STRATA__CHUNK_SHIFT))
      return strata__region_check_chunk(r, c);
  /* LOCATORS is 64-aligned in the file and the mapping is page-aligned, so
   * the positions can be read as native u64 on a little-endian host. */
  *v = (strata_dense_view){
      .data = r->data,
      .pos = (const uint64_t *)(const void *)r->locators,
      .first_id = r->first_id,
      .count = r->n,
      .align_mask = (uint64_t)r->align - 1,
  };
  return 0;
#endif
}

int strata_region_get_by_name(const strata_region *r, const char *name,
                              size_t len, strata_layer *out) {
  if (r->m == 0 || len == 0 || len > STRATA__MAX_LAYER_NAME)
    goto miss;
  uint64_t h = strata__name_hash(name, len, r->seed);
  uint64_t k = strata__bucket(h, r->name_bits);
  uint32_t lo = strata__rd32(r->name_buckets + 4 * k);
  uint32_t hi = strata__rd32(r->name_buckets + 4 * (k + 1));
  /* A lazy open has not checked the bucket table: check this bucket. */
  if (lo > hi || hi > r->m || hi - lo > STRATA__MAX_BUCKET)
    return strata__fail(
        STRATA_E_CORRUPT,
        "%s: name index bucket %" PRIu64 " is [%" PRIu32 ", %" PRIu32
        "), outside [0, %" PRIu64 ") or above %u records",
        r->path ? r->path : "region", k, lo, hi, r->m, STRATA__MAX_BUCKET);
  for (uint32_t j = lo; j < hi; j++) {
    const uint8_t *rec = r->name_index + (uint64_t)j * STRATA__NAME_REC_SIZE;
    if (strata__rd64(rec) != h)
      continue;
    uint32_t i = strata__rd32(rec + 8);
    if (i >= r->entries_n)
      return strata__fail(STRATA_E_CORRUPT,
                          "%s: name index record %" PRIu32
                          " points at entry %" PRIu32 ", past the %" PRIu64
                          " entries",
                          r->path ? r->path : "region", j, i, r->entries_n);
    if (!strata__entry_ok(r, i))
      return strata__region_check_chunk(r, i >> STRATA__CHUNK_SHIFT);
    const uint8_t *e = r->entries + (uint64_t)i * STRATA__ENTRY_SIZE;
    if (strata__rd32(e + STRATA__E_NAME_LEN) != len)
      continue;
    if (memcmp(r->strings + strata__rd64(e + STRATA__E_NAME_OFF), name, len))
      continue;
    strata__layer_from_entry(r, i, out);
    return 0;
  }
miss:
  return strata__fail(STRATA_E_NOT_FOUND, "%s: no layer named \"%.*s\"",
                      r->path ? r->path : "region",
                      (int)(len > 200 ? 200 : len), name);
}

int strata_region_read(const strata_region *r, uint64_t id, uint64_t offset,
                       uint64_t len, const void **out) {
  uint64_t e, off, size;
  if (!strata__region_find(r, id, &e, &off, &size))
    return not_found(r, id);
  if (offset > size || len > size - offset)
    return strata__fail(STRATA_E_BOUNDS,
                        "%s: layer %" PRIu64 ": read [%" PRIu64 ", +%" PRIu64
                        ") ends past layer size %" PRIu64,
                        r->path ? r->path : "region", id, offset, len, size);
  *out = r->data + off + offset;
  return 0;
}

void strata_region_iter_init(const strata_region *r, strata_region_iter *it) {
  it->region = r;
  it->pos = 0;
  it->last_id = 0;
}

/* Sparse regions keep an id-order permutation that open does not check
 * (it would cost a random access per layer). Checking here that every
 * index is in range and that ids strictly increase costs nothing, and a
 * strictly increasing walk of n unique ids is a permutation. */
int strata_region_next(strata_region_iter *it, strata_layer *out) {
  const strata_region *r = it->region;
  if (it->pos >= r->n)
    return 0;
  uint64_t i = it->pos;
  if (!r->dense)
    i = strata__rd32(r->id_order + 4 * it->pos);
  if (i < r->entries_n && !strata__entry_ok(r, i))
    return strata__region_check_chunk(r, i >> STRATA__CHUNK_SHIFT);
  if (!r->dense) {
    if (i >= r->entries_n ||
        strata__rd32(r->entries + i * STRATA__ENTRY_SIZE + STRATA__E_FLAGS) ==
            STRATA__EMPTY_ENTRY)
      return strata__fail(STRATA_E_CORRUPT,
                          "%s: id order slot %" PRIu64
                          " points at entry %" PRIu64 ", which is %s",
                          r->path ? r->path : "region", it->pos, i,
                          i >= r->entries_n ? "past the index" : "empty");
  }
  uint64_t id = strata__rd64(r->entries + i * STRATA__ENTRY_SIZE);
  if (it->pos > 0 && id <= it->last_id)
    return strata__fail(STRATA_E_CORRUPT,
                        "%s: id order slot %" PRIu64 ": layer %" PRIu64
                        " does not follow layer %" PRIu64,
                        r->path ? r->path : "region", it->pos, id, it->last_id);
  strata__layer_from_entry(r, i, out);
  it->last_id = id;
  it->pos++;
  return 1;
}
