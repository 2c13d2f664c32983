/* libFuzzer target for the region reader.
 *
 * Runs the open-time validation (strata__region_validate) on the input, as
 * strata_region_open() does on a mapping. When the input is accepted, it
 * exercises everything a caller may then do without further checks --
 * iteration, lookups by id and name, partial reads, verify -- and traps on
 * any broken promise, so that the fuzzer reports it like a crash:
 *
 * - every entry's content, name and metadata must be readable (ASan sees an
 *   out-of-bounds read, since the input is copied into a buffer of exactly
 *   its size);
 * - every used entry's id must be found by strata_region_get() (open
 *   checked the dense locators or packed positions, or the sparse slots,
 *   locators and pilots), and strata_region_get_data() must give the same
 *   content pointer and size (it reads only the locator table); in a sparse
 *   region the entries are the slots of the perfect hash, and unused ones
 *   (flags STRATA__EMPTY_ENTRY) are never returned;
 * - names and metadata must be NUL-terminated at their stated lengths;
 * - a layer's flags are 0, or TOMBSTONE in a delta file on an empty entry
 *   without name or metadata (docs/FORMAT.md, "Delta files").
 *
 * The same input is then opened lazily (as strata_region_open() does by
 * default: only the header, section table and region strings at open, each
 * chunk of index entries on its first use): lookups of every slot's id,
 * the batch, partial reads, iteration, name lookups and verify must read in
 * bounds and give a result or a format error, never more; and the lazy
 * open followed by the whole-index checks (strata__region_check_all)
 * accepts exactly what the eager validation accepts.
 *
 * Header and index checksums would stop almost every mutated input at the
 * first check, so an input that fails with STRATA_E_CHECKSUM is validated a
 * second time with both checksums recomputed: the structural checks behind
 * them are what is being fuzzed.
 *
 * The same file is linked into fuzz_region_replay (see replay_main.c), so
 * that builds without libFuzzer replay the committed corpus under ctest. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_repair.h"
#include "fuzz_util.h"
#include "region/region.h"

static volatile uint8_t g_sink;

static void touch(const void *p, uint64_t len) {
  if (len == 0)
    return;
  const volatile uint8_t *b = p;
  g_sink ^= b[0];
  g_sink ^= b[len - 1];
}

static void check_layer(const strata_region *r, const strata_layer *l) {
  touch(l->data, l->size);
  /* Flags are 0, or a tombstone in a delta file: empty, nameless. */
  REQUIRE(l->flags == 0 ||
          (l->flags == STRATA_LAYER_TOMBSTONE && r->delta && l->size == 0 &&
           l->name == NULL && l->metadata == NULL));
  if (l->name != NULL) {
    REQUIRE(l->name_len > 0 && strlen(l->name) == l->name_len);
  } else {
    REQUIRE(l->name_len == 0);
  }
  if (l->metadata != NULL)
    REQUIRE(l->metadata_len > 0 && strlen(l->metadata) == l->metadata_len);

  strata_layer g;
  REQUIRE(strata_region_get(r, l->id, &g) == 0);
  REQUIRE(g.id == l->id && g.data == l->data && g.size == l->size);
  const void *data = NULL;
  uint64_t size = UINT64_MAX;
  REQUIRE(strata_region_get_data(r, l->id, &data, &size) == 0);
  REQUIRE(data == l->data && size == l->size);
  if (l->name != NULL &&
      strata_region_get_by_name(r, l->name, l->name_len, &g) == 0)
    REQUIRE(g.name_len == l->name_len &&
            memcmp(g.name, l->name, l->name_len) == 0);

  const void *p;
  REQUIRE(strata_region_read(r, l->id, 0, l->size, &p) == 0 && p == l->data);
  if (l->size > 0) {
    REQUIRE(strata_region_read(r, l->id, l->size - 1, 1, &p) == 0);
    touch(p, 1);
    REQUIRE(strata_region_read(r, l->id, l->size / 2, l->size - l->size / 2,
                               &p) == 0);
    touch(p, l->size - l->size / 2);
  }
  REQUIRE(strata_region_read(r, l->id, l->size, 1, &p) == STRATA_E_BOUNDS);
  REQUIRE(strata_region_read(r, l->id, 1, UINT64_MAX, &p) == STRATA_E_BOUNDS);
}

static bool format_error(int rc) {
  return rc == STRATA_E_CORRUPT || rc == STRATA_E_CHECKSUM ||
         rc == STRATA_E_LIMIT || rc == STRATA_E_VERSION;
}

/* One lookup of `id` on a lazy region, every way: results agree, or the
 * layer is missing, or its chunk is corrupt. */
static void lazy_lookup(const strata_region *r, uint64_t id) {
  strata_layer l, g;
  const void *data = NULL, *bdata = NULL, *p;
  uint64_t len = 0, blen = 0;
  int rc = strata_region_get(r, id, &l);
  REQUIRE(rc == 0 || rc == STRATA_E_NOT_FOUND || format_error(rc));
  REQUIRE(strata_region_get_data(r, id, &data, &len) == rc);
  REQUIRE(strata_region_get_data_many(r, &id, 1, &bdata, &blen) == (rc == 0));
  if (rc != 0)
    return;
  REQUIRE(l.id == id && data == l.data && len == l.size && bdata == data);
  touch(data, len);
  if (l.name != NULL)
    REQUIRE(strlen(l.name) == l.name_len);
  if (l.metadata != NULL)
    REQUIRE(strlen(l.metadata) == l.metadata_len);
  REQUIRE(strata_region_read(r, id, 0, len, &p) == 0 && p == data);
  if (l.name != NULL) {
    rc = strata_region_get_by_name(r, l.name, l.name_len, &g);
    REQUIRE(rc == 0 || rc == STRATA_E_NOT_FOUND || format_error(rc));
    if (rc == 0)
      touch(g.data, g.size);
  }
}

static void exercise_lazy(const uint8_t *buf, size_t size, int eager_rc) {
  strata_region r;
  memset(&r, 0, sizeof r);
  r.lazy = true;
  int rc = strata__region_validate(&r, buf, size, "fuzz");
  if (rc != 0) {
    REQUIRE(eager_rc != 0 && r.valid == NULL);
    return;
  }
  for (uint64_t i = 0; i < r.entries_n; i++)
    lazy_lookup(&r, r.dense ? r.first_id + i
                            : strata__rd64(r.entries + i * STRATA__ENTRY_SIZE +
                                           STRATA__E_ID));
  lazy_lookup(&r, UINT64_MAX);
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(&r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0)
    touch(l.data, l.size);
  REQUIRE(rc == 0 || format_error(rc));
  rc = strata_region_verify(&r, NULL);
  REQUIRE(rc == 0 || format_error(rc));
  rc = strata__region_check_all(&r, "fuzz");
  REQUIRE((rc == 0) == (eager_rc == 0));
  free(r.valid);
}

/* Validates the image and, when it is accepted, uses it every way a caller
 * may. Returns what validation returned. */
static int exercise(const uint8_t *buf, size_t size) {
  strata_region r;
  memset(&r, 0, sizeof r);
  r.mapped = false;
  int vrc = strata__region_validate(&r, buf, size, "fuzz");
  exercise_lazy(buf, size, vrc);
  if (vrc != 0)
    return vrc;
  strata_region_info info;
  REQUIRE(strata_region_info_get(&r, &info) == 0);
  REQUIRE(strlen(info.name) > 0 && info.layer_count == r.n);
  touch(info.metadata, strlen(info.metadata) + 1);

  /* Every used entry, in file order (one per slot when sparse); exactly
   * n of them. */
  strata_layer l;
  uint64_t used = 0;
  REQUIRE(r.entries_n == (r.dense ? r.n : r.slot_count));
  for (uint64_t i = 0; i < r.entries_n; i++) {
    if (!r.dense && strata__rd32(r.entries + i * STRATA__ENTRY_SIZE +
                                 STRATA__E_FLAGS) == STRATA__EMPTY_ENTRY)
      continue;
    strata__layer_from_entry(&r, i, &l);
    check_layer(&r, &l);
    REQUIRE(strata__find_entry(&r, l.id) == (int64_t)i);
    used++;
  }
  REQUIRE(used == r.n);
  /* Iteration in id order; a bad id order may stop it with an error, never
   * with anything else. */
  strata_region_iter it;
  int rc;
  uint64_t seen = 0;
  strata_region_iter_init(&r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    touch(l.data, l.size);
    seen++;
  }
  REQUIRE(rc == 0 ? seen == r.n : rc == STRATA_E_CORRUPT);

  static const char bad_ptr = 0; /* a non-NULL sentinel */
  /* Misses, and ids that may meet the zeroed id of an empty slot. */
  static const uint64_t probes[] = {UINT64_MAX, 0, 1, 0x9E3779B97F4A7C15ull};
  for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
    rc = strata_region_get(&r, probes[k], &l);
    REQUIRE(rc == 0 || rc == STRATA_E_NOT_FOUND);
    const void *data = NULL;
    uint64_t len = 0;
    int drc = strata_region_get_data(&r, probes[k], &data, &len);
    REQUIRE(drc == rc);
    if (rc == 0) {
      REQUIRE(l.id == probes[k] && data == l.data && len == l.size);
      touch(data, len);
    }
    /* The batch lookup agrees, for the probe alone. */
    const void *bdata = &bad_ptr;
    uint64_t blen = 99;
    size_t found =
        strata_region_get_data_many(&r, &probes[k], 1, &bdata, &blen);
    REQUIRE(found == (rc == 0));
    REQUIRE(bdata == (rc == 0 ? data : NULL) && blen == (rc == 0 ? len : 0));
  }
  (void)strata_region_get_by_name(&r, "fuzz", 4, &l);
  (void)strata_region_get_by_name(&r, "", 0, &l);

  uint64_t bad = 0;
  rc = strata_region_verify(&r, &bad);
  REQUIRE(rc == 0 || rc == STRATA_E_CHECKSUM || rc == STRATA_E_CORRUPT);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An aligned copy of exactly `size` bytes, like a mapping's start, with
   * nothing readable past its end. */
  void *buf = NULL;
  if (posix_memalign(&buf, 64, size ? size : 1) != 0)
    return 0;
  if (size)
    memcpy(buf, data, size);
  if (exercise(buf, size) == STRATA_E_CHECKSUM && size >= STRATA__HEADER_SIZE) {
    fuzz_repair_checksums(buf, size);
    (void)exercise(buf, size);
  }
  free(buf);
  return 0;
}
