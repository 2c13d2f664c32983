/* Validation of a region image: everything a later lookup relies on is
 * checked here, once. An eager open checks it all at open; a lazy one
 * checks what costs O(1) at open (header, section table, region strings)
 * and each chunk of index entries on its first use (strata__entry_ok), so
 * that opening a million layers reads a few pages instead of 70 MB. The
 * per-entry checks are the same functions either way.
 *
 * Rules (docs/FORMAT.md, "Validation"):
 * - no arithmetic on file values may overflow: every "a + b <= c" is written
 *   as "b <= c - a" after checking "a <= c";
 * - nothing here uses assert(): it must hold in -DNDEBUG builds;
 * - every loop is bounded by a count that has already been checked against
 *   the file size, and nothing is allocated, so a hostile file cannot make
 *   the reader allocate or loop without bound;
 * - the checks run in file order and the first failure wins, with a message
 *   naming the file, the layer and the offsets concerned. */
#include "common/bits.h"
#include "common/hash.h"
#include "common/json_check.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <unistd.h>

#include "region/region.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

static const char *const section_names[STRATA__S_COUNT] = {
    "data",     "index",        "locators",   "pilots",
    "id-order", "name-buckets", "name-index", "strings"};

/* Alignment each section's offset must have. DATA's is the region's
 * data_align; INDEX and LOCATORS are cache-line aligned so that an entry,
 * a locator or a slot never straddles two lines. */
static const uint32_t section_align[STRATA__S_COUNT] = {0, 64, 64, 8,
                                                        8, 8,  8,  8};

/* What a string is, for error messages: "region name", or "layer 17 name".
 * Formatted only when a check fails, so that validating a million layers
 * does not format two million labels. */
typedef struct label {
  const char *what;
  bool is_layer;
  uint64_t id;
} label;

static const char *label_text(const label *l, char *buf, size_t len) {
  if (!l->is_layer)
    return l->what;
  snprintf(buf, len, "layer %" PRIu64 " %s", l->id, l->what);
  return buf;
}

/* A string in the STRINGS section: `len` bytes at `off`, followed by a NUL,
 * valid UTF-8 and without NUL bytes inside. */
static int check_string(const strata_region *r, const char *file, label l,
                        uint64_t off, uint64_t len) {
  char buf[64];
  const char *problem = NULL;
  if (len == 0) {
    if (off == 0)
      return 0;
    problem = "has length 0 but a nonzero offset";
  } else if (off > r->strings_size || len >= r->strings_size - off) {
    return strata__fail(STRATA_E_CORRUPT,
                        "%s: %s: string [%" PRIu64 ", +%" PRIu64
                        ") and its NUL end past strings section size %" PRIu64,
                        file, label_text(&l, buf, sizeof buf), off, len,
                        r->strings_size);
  } else if (r->strings[off + len] != '\0') {
    problem = "is not NUL-terminated";
  } else if (memchr(r->strings + off, '\0', len) != NULL) {
    problem = "contains a NUL byte";
  } else if (!strata__utf8_valid(r->strings + off, len)) {
    problem = "is not valid UTF-8";
  }
  if (problem == NULL)
    return 0;
  return strata__fail(STRATA_E_CORRUPT,
                      "%s: %s: string at strings offset %" PRIu64 " %s", file,
                      label_text(&l, buf, sizeof buf), off, problem);
}

/* A bucket table of 2^bits + 1 u32 values that partitions `count` records:
 * starts at 0, never decreases, ends at count, and no bucket holds more than
 * STRATA__MAX_BUCKET records (so a lookup scans at most that many). */
static int check_buckets(const char *file, const char *what,
                         const uint8_t *table, unsigned bits, uint64_t count) {
  uint64_t nb = 1ull << bits;
  uint32_t prev = strata__rd32(table);
  STRATA__FAIL_IF(prev != 0, STRATA_E_CORRUPT,
                  "%s: %s: bucket 0 starts at %" PRIu32 " (must be 0)", file,
                  what, prev);
  for (uint64_t k = 1; k <= nb; k++) {
    uint32_t cur = strata__rd32(table + 4 * k);
    STRATA__FAIL_IF(cur < prev || cur > count, STRATA_E_CORRUPT,
                    "%s: %s: bucket %" PRIu64 " starts at %" PRIu32
                    ", outside [%" PRIu32 ", %" PRIu64 "]",
                    file, what, k, cur, prev, count);
    STRATA__FAIL_IF(cur - prev > STRATA__MAX_BUCKET, STRATA_E_LIMIT,
                    "%s: %s: bucket %" PRIu64 " holds %" PRIu32
                    " records (at most %u)",
                    file, what, k - 1, cur - prev, STRATA__MAX_BUCKET);
    prev = cur;
  }
  STRATA__FAIL_IF(prev != count, STRATA_E_CORRUPT,
                  "%s: %s: buckets cover %" PRIu32
                  " records, expected %" PRIu64,
                  file, what, prev, count);
  return 0;
}

static int check_header(strata_region *r, const uint8_t *h, uint64_t size,
                        const char *file) {
  if (size >= STRATA__MAGIC_LEN)
    STRATA__FAIL_IF(
        memcmp(h, STRATA__MAGIC, STRATA__MAGIC_LEN) != 0, STRATA_E_BAD_MAGIC,
        "%s: bad magic at offset 0 (not a strata region file)", file);
  STRATA__FAIL_IF(size < STRATA__HEADER_SIZE, STRATA_E_CORRUPT,
                  "%s: file is %" PRIu64
                  " bytes, smaller than the %u-byte header",
                  file, size, STRATA__HEADER_SIZE);
  r->major = strata__rd16(h + STRATA__H_MAJOR);
  r->minor = strata__rd16(h + STRATA__H_MINOR);
  STRATA__FAIL_IF(r->major != STRATA_FORMAT_VERSION_MAJOR, STRATA_E_VERSION,
                  "%s: format version %u.%u, this library reads %u.x", file,
                  r->major, r->minor, STRATA_FORMAT_VERSION_MAJOR);
  /* The flags are read before the checksum that covers them: the header
   * size a delta needs is known only from its flag. */
  bool delta = (strata__rd64(h + STRATA__H_FLAGS) & STRATA_REGION_DELTA) != 0;
  uint32_t hsize = strata__rd32(h + STRATA__H_HEADER_SIZE);
  uint32_t hwant = delta ? STRATA__DELTA_HEADER_SIZE : STRATA__HEADER_SIZE;
  STRATA__FAIL_IF(hsize != hwant, STRATA_E_CORRUPT,
                  "%s: header size %" PRIu32 " at offset %d (must be %u%s)",
                  file, hsize, STRATA__H_HEADER_SIZE, hwant,
                  delta ? " in a delta file" : "");
  r->header_size = hsize;
  uint64_t want = strata__rd64(h + STRATA__H_HEADER_CSUM);
  uint64_t got = XXH3_64bits(h, STRATA__H_HEADER_CSUM);
  STRATA__FAIL_IF(want != got, STRATA_E_CHECKSUM,
                  "%s: header checksum %016" PRIx64 " != stored %016" PRIx64,
                  file, got, want);
  uint64_t declared = strata__rd64(h + STRATA__H_FILE_SIZE);
  STRATA__FAIL_IF(declared != size, STRATA_E_CORRUPT,
                  "%s: header declares file size %" PRIu64
                  " but the file is %" PRIu64 " bytes",
                  file, declared, size);
  r->flags = strata__rd64(h + STRATA__H_FLAGS);
  STRATA__FAIL_IF(r->flags & ~STRATA__HEADER_FLAGS_KNOWN, STRATA_E_VERSION,
                  "%s: unknown header flags 0x%" PRIx64, file,
                  r->flags & ~STRATA__HEADER_FLAGS_KNOWN);
  r->id = strata__rd64(h + STRATA__H_REGION_ID);
  r->n = strata__rd64(h + STRATA__H_LAYER_COUNT);
  r->m = strata__rd64(h + STRATA__H_NAMED_COUNT);
  r->align = strata__rd32(h + STRATA__H_DATA_ALIGN);
  r->slot_count = strata__rd64(h + STRATA__H_SLOT_COUNT);
  r->pilot_count = strata__rd64(h + STRATA__H_PILOT_COUNT);
  r->name_bits = strata__rd32(h + STRATA__H_NAME_BITS);
  r->seed = strata__rd64(h + STRATA__H_HASH_SEED);
  r->dense = (r->flags & STRATA_REGION_DENSE_IDS) != 0;
  r->packed = (r->flags & STRATA_REGION_PACKED_LOCATORS) != 0;
  STRATA__FAIL_IF(r->packed && !r->dense, STRATA_E_CORRUPT,
                  "%s: packed locators without dense ids", file);
  r->header_checksum = want;
  STRATA__FAIL_IF(!strata__is_pow2(r->align) || r->align < STRATA__MIN_ALIGN ||
                      r->align > STRATA__MAX_ALIGN,
                  STRATA_E_CORRUPT,
                  "%s: data alignment %" PRIu32
                  " is not a power of two in [%u, %u]",
                  file, r->align, STRATA__MIN_ALIGN, STRATA__MAX_ALIGN);
  STRATA__FAIL_IF(r->n > STRATA__MAX_LAYERS, STRATA_E_LIMIT,
                  "%s: layer count %" PRIu64
                  " exceeds the format's cap %" PRIu64,
                  file, r->n, STRATA__MAX_LAYERS);
  STRATA__FAIL_IF(r->m > r->n, STRATA_E_CORRUPT,
                  "%s: named layer count %" PRIu64
                  " exceeds layer count %" PRIu64,
                  file, r->m, r->n);
  STRATA__FAIL_IF(!r->dense && r->n == 0, STRATA_E_CORRUPT,
                  "%s: an empty region must have the dense-ids flag", file);
  return 0;
}

/* The header extension of a delta file (docs/FORMAT.md, "Delta files"):
 * O(1), after check_header() has checked the header and the flags. */
static int check_delta_ext(strata_region *r, const uint8_t *h, uint64_t size,
                           const char *file) {
  r->delta = (r->flags & STRATA_REGION_DELTA) != 0;
  if (!r->delta)
    return 0;
  STRATA__FAIL_IF(r->minor < STRATA__DELTA_MINOR, STRATA_E_CORRUPT,
                  "%s: delta file of format version %u.%u (delta files are "
                  "%u.%u or later)",
                  file, r->major, r->minor, STRATA_FORMAT_VERSION_MAJOR,
                  STRATA__DELTA_MINOR);
  STRATA__FAIL_IF(size < STRATA__DELTA_HEADER_SIZE, STRATA_E_CORRUPT,
                  "%s: file is %" PRIu64
                  " bytes, smaller than the %u-byte header of a delta file",
                  file, size, STRATA__DELTA_HEADER_SIZE);
  uint64_t want = strata__rd64(h + STRATA__X_CSUM);
  uint64_t got =
      XXH3_64bits(h + STRATA__X_PARENT, STRATA__X_CSUM - STRATA__X_PARENT);
  STRATA__FAIL_IF(want != got, STRATA_E_CHECKSUM,
                  "%s: header extension checksum over [%d, %d) is %016" PRIx64
                  ", stored %016" PRIx64 " at offset %d",
                  file, STRATA__X_PARENT, STRATA__X_CSUM, got, want,
                  STRATA__X_CSUM);
  r->delta_parent = strata__rd64(h + STRATA__X_PARENT);
  r->delta_base = strata__rd64(h + STRATA__X_BASE);
  r->delta_depth = strata__rd32(h + STRATA__X_DEPTH);
  STRATA__FAIL_IF(r->delta_depth == 0, STRATA_E_CORRUPT,
                  "%s: delta depth 0 at offset %d (must be at least 1)", file,
                  STRATA__X_DEPTH);
  /* The first delta applies over the base; a deeper one over a delta. */
  STRATA__FAIL_IF((r->delta_depth == 1) != (r->delta_parent == r->delta_base),
                  STRATA_E_CORRUPT,
                  "%s: delta of depth %" PRIu32 " with parent %016" PRIx64
                  " (offset %d) %s base %016" PRIx64 " (offset %d)",
                  file, r->delta_depth, r->delta_parent, STRATA__X_PARENT,
                  r->delta_depth == 1 ? "differing from its" : "equal to its",
                  r->delta_base, STRATA__X_BASE);
  for (int o = STRATA__X_RESERVED; o < STRATA__X_CSUM; o++)
    STRATA__FAIL_IF(h[o] != 0, STRATA_E_CORRUPT,
                    "%s: reserved header extension byte at offset %d is not "
                    "zero",
                    file, o);
  return 0;
}

/* Layer flags (docs/FORMAT.md, "Delta files"): 0, or TOMBSTONE in a delta
 * file on an entry without content, name or metadata. Kept apart from
 * check_entries() so that the per-entry loop only calls it. */
static int check_layer_flags(const strata_region *r, const char *file,
                             uint64_t id, const uint8_t *e, uint32_t flags) {
  if (flags == 0)
    return 0;
  STRATA__FAIL_IF(
      flags != STRATA__LAYER_TOMBSTONE || !r->delta, STRATA_E_VERSION,
      "%s: layer %" PRIu64 ": unknown layer flags 0x%" PRIx32 "%s", file, id,
      flags,
      flags == STRATA__LAYER_TOMBSTONE ? " (a tombstone outside a delta file)"
                                       : "");
  static const char *const fields[] = {"content size", "name length",
                                       "metadata length"};
  const uint64_t values[] = {strata__rd64(e + STRATA__E_SIZE),
                             strata__rd32(e + STRATA__E_NAME_LEN),
                             strata__rd32(e + STRATA__E_META_LEN)};
  for (int k = 0; k < 3; k++)
    STRATA__FAIL_IF(values[k] != 0, STRATA_E_CORRUPT,
                    "%s: layer %" PRIu64 ": tombstone with %s %" PRIu64
                    " (must be 0)",
                    file, id, fields[k], values[k]);
  uint64_t sum = strata__rd64(e + STRATA__E_CHECKSUM);
  STRATA__FAIL_IF(sum != XXH3_64bits(NULL, 0), STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": tombstone with content checksum "
                  "%016" PRIx64 " (must be %016" PRIx64 ", that of no bytes)",
                  file, id, sum, XXH3_64bits(NULL, 0));
  return 0;
}

/* Expected size of each section, derived from the header's counts. The
 * counts are capped at 2^32 - 1, so none of these products overflow. */
static int expected_sizes(strata_region *r, const char *file,
                          uint64_t want[STRATA__S_COUNT]) {
  if (r->dense) {
    STRATA__FAIL_IF(r->slot_count != 0 || r->pilot_count != 0, STRATA_E_CORRUPT,
                    "%s: dense region declares %" PRIu64 " slots and %" PRIu64
                    " pilots (must be 0)",
                    file, r->slot_count, r->pilot_count);
    r->entries_n = r->n;
    want[STRATA__S_PILOTS] = 0;
    want[STRATA__S_ID_ORDER] = 0;
  } else {
    STRATA__FAIL_IF(r->n > STRATA__MAX_SPARSE_LAYERS, STRATA_E_LIMIT,
                    "%s: sparse region with %" PRIu64
                    " layers exceeds the cap %" PRIu64,
                    file, r->n, STRATA__MAX_SPARSE_LAYERS);
    STRATA__FAIL_IF(r->slot_count != strata__slot_count(r->n) ||
                        r->pilot_count != strata__pilot_count(r->n),
                    STRATA_E_CORRUPT,
                    "%s: %" PRIu64 " slots and %" PRIu64
                    " pilots, expected %" PRIu64 " and %" PRIu64 " for %" PRIu64
                    " layers",
                    file, r->slot_count, r->pilot_count,
                    strata__slot_count(r->n), strata__pilot_count(r->n), r->n);
    r->entries_n = r->slot_count;
    want[STRATA__S_PILOTS] = r->pilot_count * 2;
    want[STRATA__S_ID_ORDER] = r->n * 4;
  }
  want[STRATA__S_INDEX] = r->entries_n * STRATA__ENTRY_SIZE;
  r->loc_size = r->packed ? 8 : r->dense ? STRATA__LOC_SIZE : STRATA__SLOC_SIZE;
  want[STRATA__S_LOCATORS] = (r->entries_n + r->packed) * r->loc_size;
  if (r->m == 0) {
    STRATA__FAIL_IF(r->name_bits != 0, STRATA_E_CORRUPT,
                    "%s: name bucket bits %u without named layers", file,
                    r->name_bits);
    want[STRATA__S_NAME_BUCKETS] = 0;
    want[STRATA__S_NAME_INDEX] = 0;
  } else {
    STRATA__FAIL_IF(r->name_bits != strata__ceil_log2(r->m), STRATA_E_CORRUPT,
                    "%s: name bucket bits %u, expected %u for %" PRIu64
                    " named layers",
                    file, r->name_bits, strata__ceil_log2(r->m), r->m);
    want[STRATA__S_NAME_BUCKETS] = ((1ull << r->name_bits) + 1) * 4;
    want[STRATA__S_NAME_INDEX] = r->m * STRATA__NAME_REC_SIZE;
  }
  return 0;
}

/* Sections lie inside the file, in order, without overlap, aligned, with
 * the sizes the counts imply, and the last one ends at the end of the file.
 */
static int check_sections(strata_region *r, const uint8_t *h, uint64_t size,
                          const char *file) {
  uint64_t want[STRATA__S_COUNT];
  STRATA__TRY(expected_sizes(r, file, want));
  uint64_t prev_end = r->header_size;
  uint64_t off[STRATA__S_COUNT], len[STRATA__S_COUNT];
  for (int s = 0; s < STRATA__S_COUNT; s++) {
    const uint8_t *d = h + STRATA__H_SECTIONS + 16 * s;
    off[s] = strata__rd64(d);
    len[s] = strata__rd64(d + 8);
    const char *name = section_names[s];
    uint32_t align = s == STRATA__S_DATA ? r->align : section_align[s];
    STRATA__FAIL_IF(off[s] < prev_end, STRATA_E_CORRUPT,
                    "%s: %s section at offset %" PRIu64
                    " overlaps the previous section ending at %" PRIu64,
                    file, name, off[s], prev_end);
    STRATA__FAIL_IF(off[s] > size || len[s] > size - off[s], STRATA_E_CORRUPT,
                    "%s: %s section [%" PRIu64 ", +%" PRIu64
                    ") ends past end of file %" PRIu64,
                    file, name, off[s], len[s], size);
    STRATA__FAIL_IF(off[s] % align != 0, STRATA_E_CORRUPT,
                    "%s: %s section offset %" PRIu64
                    " is not aligned to %" PRIu32,
                    file, name, off[s], align);
    if (s != STRATA__S_DATA && s != STRATA__S_STRINGS)
      STRATA__FAIL_IF(len[s] != want[s], STRATA_E_CORRUPT,
                      "%s: %s section is %" PRIu64 " bytes, expected %" PRIu64,
                      file, name, len[s], want[s]);
    prev_end = off[s] + len[s];
  }
  STRATA__FAIL_IF(prev_end != size, STRATA_E_CORRUPT,
                  "%s: strings section ends at %" PRIu64
                  ", not at end of file %" PRIu64,
                  file, prev_end, size);
  const uint8_t *base = h;
  r->data = base + off[STRATA__S_DATA];
  r->data_size = len[STRATA__S_DATA];
  r->entries = base + off[STRATA__S_INDEX];
  r->locators = base + off[STRATA__S_LOCATORS];
  r->pilots = r->dense ? NULL : base + off[STRATA__S_PILOTS];
  r->id_order = r->dense ? NULL : base + off[STRATA__S_ID_ORDER];
  r->name_buckets = r->m == 0 ? NULL : base + off[STRATA__S_NAME_BUCKETS];
  r->name_index = base + off[STRATA__S_NAME_INDEX];
  r->strings = (const char *)base + off[STRATA__S_STRINGS];
  r->strings_size = len[STRATA__S_STRINGS];
  r->index_offset = off[STRATA__S_INDEX];
  return 0;
}

static int check_region_strings(strata_region *r, const uint8_t *h,
                                const char *file) {
  uint32_t name_len = strata__rd32(h + STRATA__H_RNAME_LEN);
  uint64_t name_off = strata__rd64(h + STRATA__H_RNAME_OFF);
  uint64_t meta_off = strata__rd64(h + STRATA__H_RMETA_OFF);
  uint32_t meta_len = strata__rd32(h + STRATA__H_RMETA_LEN);
  STRATA__FAIL_IF(name_len == 0 || name_len > STRATA__MAX_REGION_NAME,
                  name_len == 0 ? STRATA_E_CORRUPT : STRATA_E_LIMIT,
                  "%s: region name length %" PRIu32 " not in [1, %u]", file,
                  name_len, STRATA__MAX_REGION_NAME);
  STRATA__FAIL_IF(meta_len > STRATA__MAX_METADATA, STRATA_E_LIMIT,
                  "%s: region metadata length %" PRIu32 " exceeds %u", file,
                  meta_len, STRATA__MAX_METADATA);
  STRATA__TRY(check_string(r, file, (label){"region name", false, 0}, name_off,
                           name_len));
  STRATA__TRY(check_string(r, file, (label){"region metadata", false, 0},
                           meta_off, meta_len));
  r->name = r->strings + name_off;
  r->metadata = meta_len == 0 ? "" : r->strings + meta_off;
  return 0;
}

/* A dense region's first id, from entry 0: the one entry open reads. */
static int check_first_id(strata_region *r, const char *file) {
  if (!r->dense || r->n == 0)
    return 0;
  uint64_t id = strata__rd64(r->entries + STRATA__E_ID);
  r->first_id = id;
  STRATA__FAIL_IF(r->n - 1 > UINT64_MAX - id, STRATA_E_CORRUPT,
                  "%s: dense ids starting at %" PRIu64 " overflow for %" PRIu64
                  " layers",
                  file, id, r->n);
  return 0;
}

/* Dense regions hold ids first_id + i in entry i. */
static int check_dense_id(const strata_region *r, const char *file, uint64_t i,
                          uint64_t id) {
  STRATA__FAIL_IF(id != r->first_id + i, STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": entry %" PRIu64
                  " of a dense region must have id %" PRIu64,
                  file, id, i, r->first_id + i);
  return 0;
}

/* Sparse regions hold each layer in the entry (and locator) of the slot the
 * perfect hash gives for its id. A slot is a function of the id, so no id
 * can sit in two entries: this also proves the ids unique. */
static int check_sparse_slot(const strata_region *r, const char *file,
                             uint64_t i, uint64_t id) {
  uint64_t h = strata__id_hash(id, r->seed);
  uint64_t b = strata__pilot_bucket(h, r->pilot_count);
  uint64_t want =
      strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
  STRATA__FAIL_IF(want != i, STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": found in slot %" PRIu64
                  " but its hash selects slot %" PRIu64,
                  file, id, i, want);
  return 0;
}

/* Packed locators: position i, rounded up to the alignment, is where layer
 * i starts, and position i + 1 is where it ends. Entry i repeats both, so
 * checking the entry (already bounds-checked) checks the positions. */
static int check_packed(const strata_region *r, const char *file, uint64_t i,
                        uint64_t id, uint64_t off, uint64_t len) {
  uint64_t p0 = strata__rd64(r->locators + i * 8);
  uint64_t p1 = strata__rd64(r->locators + i * 8 + 8);
  STRATA__FAIL_IF(i == 0 && p0 != 0, STRATA_E_CORRUPT,
                  "%s: packed position 0 is %" PRIu64 " (must be 0)", file, p0);
  /* off is aligned and within DATA, so "off is p0 rounded up" reads: */
  STRATA__FAIL_IF(
      p0 > off || off - p0 >= r->align || p1 != off + len, STRATA_E_CORRUPT,
      "%s: layer %" PRIu64 ": packed positions [%" PRIu64 ", %" PRIu64
      ") do not match its content [%" PRIu64 ", +%" PRIu64 ")",
      file, id, p0, p1, off, len);
  return 0;
}

/* An unused slot of a sparse region: entry all zero but for its flags, and
 * the locator {STRATA__EMPTY_OFFSET, 0, 0}. */
static int check_empty_slot(const strata_region *r, const char *file,
                            uint64_t i, const uint8_t *e) {
  static const uint8_t zero[STRATA__ENTRY_SIZE];
  const uint8_t *loc = r->locators + i * STRATA__SLOC_SIZE;
  STRATA__FAIL_IF(memcmp(e, zero, STRATA__E_FLAGS) != 0 ||
                      strata__rd32(e + STRATA__E_RESERVED) != 0 ||
                      strata__rd64(loc) != STRATA__EMPTY_OFFSET ||
                      strata__rd64(loc + 8) != 0 || strata__rd64(loc + 16) != 0,
                  STRATA_E_CORRUPT,
                  "%s: empty slot %" PRIu64
                  " has a nonzero entry or locator field",
                  file, i);
  return 0;
}

/* Entry i and its locator. Adds 1 to *used and to *named (when it has a
 * name) for a used entry. */
static int check_entry(const strata_region *r, const char *file, uint64_t i,
                       uint64_t *used, uint64_t *named) {
  const uint8_t *e = r->entries + i * STRATA__ENTRY_SIZE;
  uint32_t flags = strata__rd32(e + STRATA__E_FLAGS);
  if (!r->dense && flags == STRATA__EMPTY_ENTRY)
    return check_empty_slot(r, file, i, e);
  ++*used;
  uint64_t id = strata__rd64(e + STRATA__E_ID);
  uint64_t off = strata__rd64(e + STRATA__E_OFFSET);
  uint64_t len = strata__rd64(e + STRATA__E_SIZE);
  if (r->dense)
    STRATA__TRY(check_dense_id(r, file, i, id));
  else
    STRATA__TRY(check_sparse_slot(r, file, i, id));
  STRATA__FAIL_IF(off > r->data_size || len > r->data_size - off,
                  STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": content [%" PRIu64 ", +%" PRIu64
                  ") ends past data section end %" PRIu64,
                  file, id, off, len, r->data_size);
  STRATA__FAIL_IF(off % r->align != 0, STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": content offset %" PRIu64
                  " is not aligned to %" PRIu32,
                  file, id, off, r->align);
  const uint8_t *loc = r->locators + i * r->loc_size;
  if (r->packed)
    STRATA__TRY(check_packed(r, file, i, id, off, len));
  else
    STRATA__FAIL_IF(strata__rd64(loc) != off || strata__rd64(loc + 8) != len,
                    STRATA_E_CORRUPT,
                    "%s: layer %" PRIu64 ": locator {%" PRIu64 ", %" PRIu64
                    "} differs from its entry {%" PRIu64 ", %" PRIu64 "}",
                    file, id, strata__rd64(loc), strata__rd64(loc + 8), off,
                    len);
  STRATA__FAIL_IF(!r->dense && strata__rd64(loc + 16) != id, STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": slot %" PRIu64
                  " locator holds id %" PRIu64,
                  file, id, i, strata__rd64(loc + 16));
  STRATA__TRY(check_layer_flags(r, file, id, e, flags));
  STRATA__FAIL_IF(strata__rd32(e + STRATA__E_RESERVED) != 0, STRATA_E_CORRUPT,
                  "%s: layer %" PRIu64 ": reserved entry field is not zero",
                  file, id);
  uint32_t name_len = strata__rd32(e + STRATA__E_NAME_LEN);
  uint32_t meta_len = strata__rd32(e + STRATA__E_META_LEN);
  STRATA__FAIL_IF(name_len > STRATA__MAX_LAYER_NAME, STRATA_E_LIMIT,
                  "%s: layer %" PRIu64 ": name length %" PRIu32 " exceeds %u",
                  file, id, name_len, STRATA__MAX_LAYER_NAME);
  STRATA__FAIL_IF(meta_len > STRATA__MAX_METADATA, STRATA_E_LIMIT,
                  "%s: layer %" PRIu64 ": metadata length %" PRIu32
                  " exceeds %u",
                  file, id, meta_len, STRATA__MAX_METADATA);
  uint64_t name_off = strata__rd64(e + STRATA__E_NAME_OFF);
  uint64_t meta_off = strata__rd64(e + STRATA__E_META_OFF);
  /* Most layers of a large region have neither: skip the calls. */
  if ((name_len | meta_len | name_off | meta_off) != 0) {
    STRATA__TRY(
        check_string(r, file, (label){"name", true, id}, name_off, name_len));
    STRATA__TRY(check_string(r, file, (label){"metadata", true, id}, meta_off,
                             meta_len));
  }
  *named += name_len != 0;
  return 0;
}

static int check_entries(const strata_region *r, const char *file) {
  uint64_t named = 0, used = 0;
  for (uint64_t i = 0; i < r->entries_n; i++)
    STRATA__TRY(check_entry(r, file, i, &used, &named));
  STRATA__FAIL_IF(used != r->n, STRATA_E_CORRUPT,
                  "%s: %" PRIu64 " slots are used, expected %" PRIu64, file,
                  used, r->n);
  STRATA__FAIL_IF(named != r->m, STRATA_E_CORRUPT,
                  "%s: %" PRIu64 " layers have names, header says %" PRIu64,
                  file, named, r->m);
  return 0;
}

/* The name index: records sorted by name hash, each inside its bucket and
 * pointing at a real entry. Whether a record's hash matches its entry's name
 * is not checked here (it would cost a random access per name); a wrong hash
 * can only make a lookup miss, and strata_region_verify() checks it. */
static int check_name_index(const strata_region *r, const char *file) {
  if (r->m == 0)
    return 0;
  STRATA__TRY(
      check_buckets(file, "name index", r->name_buckets, r->name_bits, r->m));
  uint64_t prev = 0;
  for (uint64_t j = 0; j < r->m; j++) {
    const uint8_t *rec = r->name_index + j * STRATA__NAME_REC_SIZE;
    uint64_t h = strata__rd64(rec);
    uint32_t entry = strata__rd32(rec + 8);
    STRATA__FAIL_IF(j > 0 && h < prev, STRATA_E_CORRUPT,
                    "%s: name index record %" PRIu64 " is out of hash order",
                    file, j);
    prev = h;
    STRATA__FAIL_IF(entry >= r->entries_n, STRATA_E_CORRUPT,
                    "%s: name index record %" PRIu64 " points at entry %" PRIu32
                    ", past the %" PRIu64 " entries",
                    file, j, entry, r->entries_n);
    STRATA__FAIL_IF(strata__rd32(rec + 12) != 0, STRATA_E_CORRUPT,
                    "%s: name index record %" PRIu64
                    ": reserved field is not zero",
                    file, j);
    uint64_t k = strata__bucket(h, r->name_bits);
    uint32_t lo = strata__rd32(r->name_buckets + 4 * k);
    uint32_t hi = strata__rd32(r->name_buckets + 4 * (k + 1));
    STRATA__FAIL_IF(j < lo || j >= hi, STRATA_E_CORRUPT,
                    "%s: name index record %" PRIu64
                    " lies outside its bucket %" PRIu64,
                    file, j, k);
  }
  return 0;
}

int strata__region_check_index(const strata_region *r, const char *file) {
  uint64_t got = XXH3_64bits(r->entries, r->size - r->index_offset);
  STRATA__FAIL_IF(r->index_checksum != got, STRATA_E_CHECKSUM,
                  "%s: index checksum over [%" PRIu64 ", %" PRIu64
                  ") is %016" PRIx64 ", stored %016" PRIx64,
                  file, r->index_offset, r->size, got, r->index_checksum);
  return 0;
}

/* Marks every chunk of a lazy region valid. */
static void mark_all(const strata_region *r) {
  if (r->valid == NULL)
    return;
  uint64_t chunks = (r->entries_n >> STRATA__CHUNK_SHIFT) + 1;
  for (uint64_t w = 0; w < (chunks + 63) / 64; w++)
    atomic_store_explicit(&r->valid[w], UINT64_MAX, memory_order_release);
}

int strata__region_check_chunk(const strata_region *r, uint64_t c) {
  const char *file = r->path ? r->path : "region";
  uint64_t lo = c << STRATA__CHUNK_SHIFT;
  uint64_t hi = lo + (1u << STRATA__CHUNK_SHIFT);
  uint64_t used = 0, named = 0;
  for (uint64_t i = lo; i < hi && i < r->entries_n; i++)
    STRATA__TRY(check_entry(r, file, i, &used, &named));
  atomic_fetch_or_explicit(&r->valid[c >> 6], 1ull << (c & 63),
                           memory_order_release);
  return 0;
}

int strata__region_entry_error(const strata_region *r, uint64_t id) {
  uint64_t i;
  if (r->valid == NULL)
    return 0;
  if (r->dense) {
    i = id - r->first_id;
    if (i >= r->n)
      return 0;
  } else {
    uint64_t h = strata__id_hash(id, r->seed);
    uint64_t b = strata__pilot_bucket(h, r->pilot_count);
    i = strata__slot_of(h, strata__rd16(r->pilots + 2 * b), r->slot_count);
  }
  return strata__entry_ok(r, i)
             ? 0
             : strata__region_check_chunk(r, i >> STRATA__CHUNK_SHIFT);
}

int strata__region_check_all(const strata_region *r, const char *file) {
  STRATA__TRY(strata__region_check_index(r, file));
  STRATA__TRY(check_entries(r, file));
  STRATA__TRY(check_name_index(r, file));
  mark_all(r);
  return 0;
}

int strata__region_validate(strata_region *r, const uint8_t *base,
                            uint64_t size, const char *file) {
  r->base = base;
  r->size = size;
  STRATA__TRY(check_header(r, base, size, file));
  STRATA__TRY(check_delta_ext(r, base, size, file));
  STRATA__TRY(check_sections(r, base, size, file));
  r->index_checksum = strata__rd64(base + STRATA__H_INDEX_CSUM);
  if (r->lazy) {
    STRATA__TRY(check_region_strings(r, base, file));
    STRATA__TRY(check_first_id(r, file));
    uint64_t words = ((r->entries_n >> STRATA__CHUNK_SHIFT) + 64) / 64;
    r->valid = calloc(words, sizeof *r->valid);
    STRATA__FAIL_IF(r->valid == NULL, STRATA_E_NOMEM,
                    "%s: allocating the index chunk bitmap (%" PRIu64 " words)",
                    file, words);
    return 0;
  }
  if (r->mapped) {
    /* The index sections are read in full below: fault them in with one
     * call instead of one page fault per page. Best effort. */
    uintptr_t start =
        (uintptr_t)r->entries & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
    size_t len = (size_t)((uintptr_t)base + size - start);
    if (madvise((void *)start, len, MADV_POPULATE_READ) != 0)
      (void)madvise((void *)start, len, MADV_WILLNEED);
  }
  STRATA__TRY(strata__region_check_index(r, file));
  STRATA__TRY(check_region_strings(r, base, file));
  STRATA__TRY(check_first_id(r, file));
  STRATA__TRY(check_entries(r, file));
  STRATA__TRY(check_name_index(r, file));
  return 0;
}
