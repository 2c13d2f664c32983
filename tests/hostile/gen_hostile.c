/* gen_hostile: regenerates the committed region fixtures.
 *
 *   gen_hostile TESTS_DIR        (TESTS_DIR is the repository's tests/)
 *
 * writes
 *   TESTS_DIR/hostile/files/NN-name.region   one hostile file per case
 *   TESTS_DIR/hostile/files/EXPECTED.tsv     file, error name, detail substring
 *   TESTS_DIR/hostile/golden/v1-*.region     valid files of format 1.0
 *   TESTS_DIR/hostile/golden/v1.1-delta.region  a delta file of format 1.1
 *   TESTS_DIR/hostile/golden/EXPECTED.txt    what the golden files contain
 *   TESTS_DIR/fuzz/corpus/region/valid-*.region  small valid fuzz seeds
 *
 * It is not run by ctest: the files are committed, and the tests check the
 * committed bytes, so that a change to the writer can never silently change
 * what "a format 1.0 file" means. This program only documents how the files
 * were made; run it by hand after a deliberate change and review the diff.
 *
 * Every hostile case starts from a small valid region written by the
 * library's own writer, applies one mutation, and then recomputes the index
 * and header checksums (unless the case is about a checksum), so that the
 * structural check under test, not a checksum, is what rejects the file.
 * The expected detail substring is built from the mutated values, so a file
 * rejected for any other reason fails test_hostile. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "region/region.h"
#include "writer/writer_internal.h"

#define SPARSE_STEP 0x9E3779B97F4A7C15ull

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "gen_hostile: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* snprintf() that refuses to truncate. */
#define FMT(buf, ...)                                                          \
  do {                                                                         \
    int fmt__n = snprintf((buf), sizeof(buf), __VA_ARGS__);                    \
    if (fmt__n < 0 || (size_t)fmt__n >= sizeof(buf))                           \
      die("path too long");                                                    \
  } while (0)

#define CHECK(expr)                                                            \
  do {                                                                         \
    int check__rc = (expr);                                                    \
    if (check__rc != 0)                                                        \
      die("%s:%d: %s -> %s: %s", __FILE__, __LINE__, #expr,                    \
          strata_err_name(check__rc), strata_last_error_detail());             \
  } while (0)

/* ---- files ------------------------------------------------------------- */

typedef struct image {
  uint8_t *p;
  size_t len;
} image;

static image read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    die("%s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  image im = {malloc(n > 0 ? (size_t)n : 1), (size_t)n};
  if (im.p == NULL || fread(im.p, 1, im.len, f) != im.len)
    die("%s: read failed", path);
  fclose(f);
  return im;
}

static void write_all(const char *path, const void *p, size_t len) {
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0)
    die("%s: write failed", path);
}

static image copy_image(image src) {
  image im = {malloc(src.len ? src.len : 1), src.len};
  if (im.p == NULL)
    die("out of memory");
  memcpy(im.p, src.p, src.len);
  return im;
}

static void mkdir_p(const char *path) {
  char buf[4096];
  FMT(buf, "%s", path);
  for (char *s = buf + 1; *s; s++) {
    if (*s == '/') {
      *s = '\0';
      mkdir(buf, 0755);
      *s = '/';
    }
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    die("mkdir %s: %s", buf, strerror(errno));
}

/* Removes every *.region file in dir (stale fixtures of renamed cases). */
static void remove_regions(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l > 7 && strcmp(e->d_name + l - 7, ".region") == 0) {
      FMT(path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  }
  closedir(d);
}

/* ---- base regions ------------------------------------------------------- */

static char g_tmp[4096];

typedef struct layer_spec {
  uint64_t id;
  const char *name;
  const char *meta;
  const void *data;
  size_t size;
} layer_spec;

/* In a delta file's layer list, a layer_spec whose data is TOMBSTONE
 * stands for a tombstone of its id (the other fields are unused). */
static const char tombstone_mark[] = "tombstone";
#define TOMBSTONE tombstone_mark

static image write_region(const char *file, uint64_t region_id,
                          const char *name, const char *meta, uint32_t align,
                          const layer_spec *layers, size_t n) {
  char path[4096];
  FMT(path, "%s/%s", g_tmp, file);
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = region_id;
  o.name = name;
  o.metadata = meta;
  o.align = align;
  strata_writer *w;
  CHECK(strata_writer_open(path, &o, &w));
  for (size_t i = 0; i < n; i++)
    CHECK(strata_writer_add(w, layers[i].id, layers[i].name,
                            layers[i].name ? strlen(layers[i].name) : 0,
                            layers[i].meta, layers[i].data, layers[i].size));
  CHECK(strata_writer_commit(w));
  image im = read_all(path);
  /* The base must itself be valid, or every case built on it is moot. */
  strata_region *r;
  CHECK(strata_region_open(path, 0, &r));
  CHECK(strata_region_verify(r, NULL));
  strata_region_close(r);
  return im;
}

/* A delta file (format 1.1) written through the writer's internal API:
 * the binding first, then layers and tombstones in the given order. */
static image write_delta(const char *file, uint64_t region_id, const char *name,
                         const char *meta, uint32_t align, uint64_t parent,
                         uint64_t base, uint32_t depth,
                         const layer_spec *layers, size_t n) {
  char path[4096];
  FMT(path, "%s/%s", g_tmp, file);
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = region_id;
  o.name = name;
  o.metadata = meta;
  o.align = align;
  strata_writer *w;
  CHECK(strata_writer_open(path, &o, &w));
  CHECK(strata__writer_set_delta(w, parent, base, depth));
  for (size_t i = 0; i < n; i++) {
    if (layers[i].data == TOMBSTONE)
      CHECK(strata__writer_add_tombstone(w, layers[i].id));
    else
      CHECK(strata_writer_add(w, layers[i].id, layers[i].name,
                              layers[i].name ? strlen(layers[i].name) : 0,
                              layers[i].meta, layers[i].data, layers[i].size));
  }
  CHECK(strata_writer_commit(w));
  image im = read_all(path);
  strata_region *r;
  CHECK(strata_region_open(path, 0, &r));
  CHECK(strata_region_verify(r, NULL));
  strata_region_close(r);
  return im;
}

static const char *const base_names[5] = {"alpha", "bravo", "charlie", "delta",
                                          NULL};
static const char *const base_meta[5] = {"{\"i\":0}", "{\"i\":1}", "{\"i\":2}",
                                         "{\"i\":3}", NULL};
static char base_content[5][64];

/* Dense: ids 100..104; four named layers with metadata, one bare layer.
 * Added in id order, so the writer packs the locators (n + 1 positions). */
static void dense_layers(layer_spec l[5]) {
  for (int i = 0; i < 5; i++) {
    snprintf(base_content[i], sizeof base_content[i],
             "content of dense layer %d%.*s", i, i * 7,
             "++++++++++++++++++++"
             "++++++++++++++++");
    l[i] = (layer_spec){100 + (uint64_t)i, base_names[i], base_meta[i],
                        base_content[i], strlen(base_content[i])};
  }
}
static bool has_flag(const image *m, uint64_t flag);
static image base_dense(void) {
  layer_spec l[5];
  dense_layers(l);
  image im = write_region("dense.region", 7, "hostile-dense",
                          "{\"base\":\"dense\"}", 64, l, 5);
  if (!has_flag(&im, STRATA_REGION_PACKED_LOCATORS))
    die("dense base is not packed");
  return im;
}

/* Dense, unpacked: the same layers added out of id order (101 first), so
 * the locators are n x {offset, size}. */
static image base_dense_unpacked(void) {
  layer_spec l[5], u[5];
  dense_layers(l);
  static const int order[5] = {1, 0, 2, 3, 4};
  for (int i = 0; i < 5; i++)
    u[i] = l[order[i]];
  image im = write_region("dense-unpacked.region", 12, "hostile-dense-unpacked",
                          "{\"base\":\"dense-unpacked\"}", 64, u, 5);
  if (!has_flag(&im, STRATA_REGION_DENSE_IDS) ||
      has_flag(&im, STRATA_REGION_PACKED_LOCATORS))
    die("unpacked dense base has flags %" PRIu64,
        strata__rd64(im.p + STRATA__H_FLAGS));
  return im;
}

/* Sparse: ids i * 0x9E3779B97F4A7C15 (i = 1..5), same names and metadata. */
static image base_sparse(void) {
  static char content[5][64];
  layer_spec l[5];
  for (int i = 0; i < 5; i++) {
    snprintf(content[i], sizeof content[i], "sparse layer %d%.*s", i, i * 5,
             "--------------------------");
    l[i] = (layer_spec){(uint64_t)(i + 1) * SPARSE_STEP, base_names[i],
                        base_meta[i], content[i], strlen(content[i])};
  }
  return write_region("sparse.region", 8, "hostile-sparse",
                      "{\"base\":\"sparse\"}", 64, l, 5);
}

/* Wide: 66 named, empty layers, so that a name bucket can be made to hold
 * 65 records (the cap is 64). Dense ids keep the file under 8 KiB. */
static image base_wide(void) {
  static char names[66][8];
  layer_spec l[66];
  for (int i = 0; i < 66; i++) {
    snprintf(names[i], sizeof names[i], "w%02d", i);
    l[i] = (layer_spec){(uint64_t)(i + 1), names[i], NULL, "", 0};
  }
  return write_region("wide.region", 9, "hostile-wide", NULL, 16, l, 66);
}

/* Tail: the smallest sparse region (of at least 6 bare layers) whose last
 * slot is empty, so that a used slot can be made after the last one. */
static image base_tail(void) {
  static const char content[] = "tail";
  layer_spec l[64];
  for (int n = 6; n <= 64; n++) {
    for (int i = 0; i < n; i++)
      l[i] = (layer_spec){(uint64_t)(i + 1) * SPARSE_STEP, NULL, NULL, content,
                          sizeof content - 1};
    image im =
        write_region("tail.region", 11, "hostile-tail", NULL, 16, l, (size_t)n);
    uint64_t slots = strata__rd64(im.p + STRATA__H_SLOT_COUNT);
    uint64_t idx =
        strata__rd64(im.p + STRATA__H_SECTIONS + 16 * STRATA__S_INDEX);
    if (strata__rd32(im.p + idx + (slots - 1) * STRATA__ENTRY_SIZE +
                     STRATA__E_FLAGS) == STRATA__EMPTY_ENTRY)
      return im;
    free(im.p);
  }
  die("no tail base");
  return (image){0};
}

/* Delta: the dense layers with 103 a tombstone, in id order (packed),
 * depth 2 over made-up parent and base checksums. */
#define DELTA_PARENT UINT64_C(0x1111111111111111)
#define DELTA_BASE UINT64_C(0x2222222222222222)
static image base_delta(void) {
  layer_spec l[5];
  dense_layers(l);
  l[3] = (layer_spec){103, NULL, NULL, TOMBSTONE, 0};
  image im =
      write_delta("delta.region", 13, "hostile-delta", "{\"base\":\"delta\"}",
                  64, DELTA_PARENT, DELTA_BASE, 2, l, 5);
  if (!has_flag(&im, STRATA_REGION_DELTA) ||
      !has_flag(&im, STRATA_REGION_PACKED_LOCATORS))
    die("delta base has flags %" PRIu64, strata__rd64(im.p + STRATA__H_FLAGS));
  return im;
}

static image base_empty(void) {
  return write_region("empty.region", 10, "hostile-empty", NULL, 64, NULL, 0);
}

/* ---- access to a region image ------------------------------------------ */

static uint64_t hget64(const image *m, unsigned off) {
  return strata__rd64(m->p + off);
}
static uint64_t sec_off(const image *m, int s) {
  return hget64(m, STRATA__H_SECTIONS + 16 * s);
}
static uint64_t sec_len(const image *m, int s) {
  return hget64(m, STRATA__H_SECTIONS + 16 * s + 8);
}
static void set_sec(image *m, int s, uint64_t off, uint64_t len) {
  strata__wr64(m->p + STRATA__H_SECTIONS + 16 * s, off);
  strata__wr64(m->p + STRATA__H_SECTIONS + 16 * s + 8, len);
}
static uint64_t n_layers(const image *m) {
  return hget64(m, STRATA__H_LAYER_COUNT);
}
static uint64_t seed_of(const image *m) {
  return hget64(m, STRATA__H_HASH_SEED);
}
static uint8_t *entry(image *m, uint64_t i) {
  return m->p + sec_off(m, STRATA__S_INDEX) + i * STRATA__ENTRY_SIZE;
}
static uint64_t entry_id(image *m, uint64_t i) {
  return strata__rd64(entry(m, i) + STRATA__E_ID);
}
static uint8_t *strings(image *m) {
  return m->p + sec_off(m, STRATA__S_STRINGS);
}
static uint8_t *locators(image *m) {
  return m->p + sec_off(m, STRATA__S_LOCATORS);
}
static uint8_t *pilots(image *m) {
  return m->p + sec_off(m, STRATA__S_PILOTS);
}
static uint8_t *id_order(image *m) {
  return m->p + sec_off(m, STRATA__S_ID_ORDER);
}
static uint64_t slot_count(const image *m) {
  return hget64(m, STRATA__H_SLOT_COUNT);
}
static uint64_t pilot_count(const image *m) {
  return hget64(m, STRATA__H_PILOT_COUNT);
}
static bool has_flag(const image *m, uint64_t flag) {
  return (hget64(m, STRATA__H_FLAGS) & flag) != 0;
}
static bool is_dense(const image *m) {
  return has_flag(m, STRATA_REGION_DENSE_IDS);
}
static bool is_packed(const image *m) {
  return has_flag(m, STRATA_REGION_PACKED_LOCATORS);
}
/* Entries in INDEX: n (dense) or one per slot (sparse). */
static uint64_t n_entries(const image *m) {
  return is_dense(m) ? n_layers(m) : slot_count(m);
}
/* Sparse: locator i, {u64 offset, u64 size, u64 id}. Dense unpacked:
 * locator i, {u64 offset, u64 size}. Packed: position i (u64). */
static uint8_t *sloc(image *m, uint64_t i) {
  return locators(m) + i * STRATA__SLOC_SIZE;
}
static uint8_t *dloc(image *m, uint64_t i) {
  return locators(m) + i * STRATA__LOC_SIZE;
}
static uint8_t *ppos(image *m, uint64_t i) {
  return locators(m) + i * 8;
}
static bool entry_empty(image *m, uint64_t i) {
  return !is_dense(m) &&
         strata__rd32(entry(m, i) + STRATA__E_FLAGS) == STRATA__EMPTY_ENTRY;
}
/* The entry number of the k-th used entry (in file order): k itself in a
 * dense region, a slot number in a sparse one. */
static uint64_t used_entry(image *m, uint64_t k) {
  for (uint64_t i = 0; i < n_entries(m); i++)
    if (!entry_empty(m, i) && k-- == 0)
      return i;
  die("fewer used entries than asked for");
  return 0;
}
/* The slot the perfect hash gives for an id, under the image's pilots. */
static uint64_t hash_slot(image *m, uint64_t id) {
  uint64_t h = strata__id_hash(id, seed_of(m));
  uint64_t b = strata__pilot_bucket(h, pilot_count(m));
  return strata__slot_of(h, strata__rd16(pilots(m) + 2 * b), slot_count(m));
}
static uint8_t *name_buckets(image *m) {
  return m->p + sec_off(m, STRATA__S_NAME_BUCKETS);
}
static uint8_t *name_rec(image *m, uint64_t j) {
  return m->p + sec_off(m, STRATA__S_NAME_INDEX) + j * STRATA__NAME_REC_SIZE;
}
static uint32_t tab_get(const uint8_t *t, uint64_t k) {
  return strata__rd32(t + 4 * k);
}
static void tab_set(uint8_t *t, uint64_t k, uint32_t v) {
  strata__wr32(t + 4 * k, v);
}
/* First entry that has (named) or lacks (!named) a name. */
static uint64_t find_entry(image *m, bool named) {
  for (uint64_t i = 0; i < n_entries(m); i++)
    if (!entry_empty(m, i) &&
        (strata__rd32(entry(m, i) + STRATA__E_NAME_LEN) != 0) == named)
      return i;
  die("no %s entry in the base", named ? "named" : "unnamed");
  return 0;
}

/* ---- checksum repair ---------------------------------------------------- */

enum fix {
  FIX_ALL,       /* recompute the index checksum, then the header's */
  FIX_HEADER,    /* header checksum only */
  FIX_BAD_INDEX, /* store a wrong index checksum, fix the header */
  FIX_NONE,
};

static void fix_checksums(image *m, enum fix how) {
  if (how == FIX_NONE || m->len < STRATA__HEADER_SIZE)
    return;
  if (how == FIX_ALL || how == FIX_BAD_INDEX) {
    uint64_t off = sec_off(m, STRATA__S_INDEX);
    if (off <= m->len) {
      uint64_t sum = XXH3_64bits(m->p + off, m->len - off);
      if (how == FIX_BAD_INDEX)
        sum ^= 1;
      strata__wr64(m->p + STRATA__H_INDEX_CSUM, sum);
    }
  }
  strata__wr64(m->p + STRATA__H_HEADER_CSUM,
               XXH3_64bits(m->p, STRATA__H_HEADER_CSUM));
}

/* ---- the cases ---------------------------------------------------------- */

typedef struct bases {
  image dense, sparse, wide, empty, tail, unpacked, delta;
} bases;

/* A case mutates *m (a copy of a base, chosen by the case), writes the
 * expected detail substring into sub and returns how to fix checksums. */
typedef enum fix (*mutate_fn)(image *m, char *sub, size_t cap);

typedef struct hcase {
  const char *name;
  char base; /* 'D'ense (packed), 'U'npacked dense, 'S'parse, 'W'ide,
               'E'mpty, 'T'ail, 'X' delta */
  int err;
  mutate_fn fn;
} hcase;

#define SUB(...) snprintf(sub, cap, __VA_ARGS__)

/* -- header -- */
static enum fix c_bad_magic(image *m, char *sub, size_t cap) {
  m->p[0] = 'X';
  SUB("bad magic at offset 0");
  return FIX_ALL;
}
static enum fix c_version2(image *m, char *sub, size_t cap) {
  /* The version is checked before the header checksum: no repair. */
  strata__wr16(m->p + STRATA__H_MAJOR, 2);
  SUB("format version 2.0, this library reads 1.x");
  return FIX_NONE;
}
static enum fix c_header_size(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__H_HEADER_SIZE, 512);
  SUB("header size 512 at offset 12 (must be 256)");
  return FIX_ALL;
}
static enum fix c_header_csum(image *m, char *sub, size_t cap) {
  m->p[STRATA__H_REGION_ID] ^= 1;
  SUB("header checksum");
  return FIX_NONE;
}
static enum fix c_index_csum(image *m, char *sub, size_t cap) {
  SUB("index checksum over [%" PRIu64 ", %zu)", sec_off(m, STRATA__S_INDEX),
      m->len);
  return FIX_BAD_INDEX;
}
static enum fix c_file_size_larger(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_FILE_SIZE, m->len + 64);
  SUB("header declares file size %zu but the file is %zu bytes", m->len + 64,
      m->len);
  return FIX_ALL;
}
static enum fix c_file_size_smaller(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_FILE_SIZE, m->len - 64);
  SUB("header declares file size %zu but the file is %zu bytes", m->len - 64,
      m->len);
  return FIX_ALL;
}
static enum fix c_header_only(image *m, char *sub, size_t cap) {
  SUB("header declares file size %zu but the file is 256 bytes", m->len);
  m->len = STRATA__HEADER_SIZE;
  return FIX_HEADER;
}
static enum fix header_flag(image *m, char *sub, size_t cap, uint64_t bit) {
  strata__wr64(m->p + STRATA__H_FLAGS, hget64(m, STRATA__H_FLAGS) | bit);
  SUB("unknown header flags 0x%" PRIx64, bit);
  return FIX_ALL;
}
static enum fix c_header_flags(image *m, char *sub, size_t cap) {
  return header_flag(m, sub, cap, UINT64_C(0x20));
}
/* Bit 2, the lowest one not yet defined (bits 0 and 1 are). */
static enum fix c_header_flag_bit2(image *m, char *sub, size_t cap) {
  return header_flag(m, sub, cap, UINT64_C(0x4));
}
/* The packed-locators flag on a sparse region. */
static enum fix c_packed_not_dense(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_FLAGS, STRATA_REGION_PACKED_LOCATORS);
  SUB("packed locators without dense ids");
  return FIX_ALL;
}
static enum fix set_align(image *m, char *sub, size_t cap, uint32_t a) {
  strata__wr32(m->p + STRATA__H_DATA_ALIGN, a);
  SUB("data alignment %" PRIu32 " is not a power of two in [16, 65536]", a);
  return FIX_ALL;
}
static enum fix c_align_npot(image *m, char *sub, size_t cap) {
  return set_align(m, sub, cap, 48);
}
static enum fix c_align_small(image *m, char *sub, size_t cap) {
  return set_align(m, sub, cap, 8);
}
static enum fix c_align_big(image *m, char *sub, size_t cap) {
  return set_align(m, sub, cap, 131072);
}
static enum fix c_align_zero(image *m, char *sub, size_t cap) {
  return set_align(m, sub, cap, 0);
}
static enum fix c_layers_huge(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_LAYER_COUNT, UINT64_C(1) << 40);
  SUB("layer count 1099511627776 exceeds the format's cap 4294967295");
  return FIX_ALL;
}
static enum fix c_named_over(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_NAMED_COUNT, n_layers(m) + 1);
  SUB("named layer count %" PRIu64 " exceeds layer count %" PRIu64,
      n_layers(m) + 1, n_layers(m));
  return FIX_ALL;
}
static enum fix c_empty_sparse(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_FLAGS, 0);
  SUB("an empty region must have the dense-ids flag");
  return FIX_ALL;
}
static enum fix c_name_bits(image *m, char *sub, size_t cap) {
  uint32_t bits = strata__rd32(m->p + STRATA__H_NAME_BITS);
  strata__wr32(m->p + STRATA__H_NAME_BITS, bits + 1);
  SUB("name bucket bits %" PRIu32 ", expected %" PRIu32 " for %" PRIu64
      " named layers",
      bits + 1, bits, hget64(m, STRATA__H_NAMED_COUNT));
  return FIX_ALL;
}
static enum fix c_name_bits_unnamed(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__H_NAME_BITS, 1);
  SUB("name bucket bits 1 without named layers");
  return FIX_ALL;
}

/* -- sections -- */
static enum fix c_data_misaligned(image *m, char *sub, size_t cap) {
  uint64_t off = sec_off(m, STRATA__S_DATA), len = sec_len(m, STRATA__S_DATA);
  set_sec(m, STRATA__S_DATA, off + 16, len - 16);
  SUB("data section offset %" PRIu64 " is not aligned to 64", off + 16);
  return FIX_ALL;
}
static enum fix c_count_vs_index(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m);
  strata__wr64(m->p + STRATA__H_LAYER_COUNT, n + 1);
  SUB("index section is %" PRIu64 " bytes, expected %" PRIu64, n * 64,
      (n + 1) * 64);
  return FIX_ALL;
}
static enum fix c_overlap(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_ID_ORDER);
  uint64_t l = sec_len(m, STRATA__S_ID_ORDER);
  set_sec(m, STRATA__S_NAME_BUCKETS, o, sec_len(m, STRATA__S_NAME_BUCKETS));
  SUB("name-buckets section at offset %" PRIu64
      " overlaps the previous section ending at %" PRIu64,
      o, o + l);
  return FIX_ALL;
}
static enum fix c_data_into_index(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_DATA), l = sec_len(m, STRATA__S_DATA);
  set_sec(m, STRATA__S_DATA, o, l + 64);
  SUB("index section at offset %" PRIu64
      " overlaps the previous section ending at %" PRIu64,
      sec_off(m, STRATA__S_INDEX), o + l + 64);
  return FIX_ALL;
}
static enum fix c_past_eof(image *m, char *sub, size_t cap) {
  uint64_t l = sec_len(m, STRATA__S_STRINGS);
  set_sec(m, STRATA__S_STRINGS, m->len + 8, l);
  SUB("strings section [%zu, +%" PRIu64 ") ends past end of file %zu",
      m->len + 8, l, m->len);
  return FIX_ALL;
}
static enum fix c_size_wraps(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_NAME_INDEX);
  set_sec(m, STRATA__S_NAME_INDEX, o, UINT64_MAX - 7);
  SUB("name-index section [%" PRIu64 ", +%" PRIu64
      ") ends past end of file %zu",
      o, UINT64_MAX - 7, m->len);
  return FIX_ALL;
}
static enum fix c_index_misaligned(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_INDEX), l = sec_len(m, STRATA__S_INDEX);
  set_sec(m, STRATA__S_INDEX, o + 8, l);
  SUB("index section offset %" PRIu64 " is not aligned to 64", o + 8);
  return FIX_ALL;
}
static enum fix c_id_order_size(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_ID_ORDER),
           l = sec_len(m, STRATA__S_ID_ORDER);
  set_sec(m, STRATA__S_ID_ORDER, o, l - 4);
  SUB("id-order section is %" PRIu64 " bytes, expected %" PRIu64, l - 4, l);
  return FIX_ALL;
}
static enum fix c_strings_not_eof(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_STRINGS), l = sec_len(m, STRATA__S_STRINGS);
  set_sec(m, STRATA__S_STRINGS, o, l - 1);
  SUB("strings section ends at %" PRIu64 ", not at end of file %zu", o + l - 1,
      m->len);
  return FIX_ALL;
}

static enum fix c_slot_count(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m), sc = slot_count(m), pc = pilot_count(m);
  strata__wr64(m->p + STRATA__H_SLOT_COUNT, sc + 1);
  SUB("%" PRIu64 " slots and %" PRIu64 " pilots, expected %" PRIu64
      " and %" PRIu64 " for %" PRIu64 " layers",
      sc + 1, pc, sc, pc, n);
  return FIX_ALL;
}
static enum fix c_pilot_count(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m), sc = slot_count(m), pc = pilot_count(m);
  strata__wr64(m->p + STRATA__H_PILOT_COUNT, pc - 1);
  SUB("%" PRIu64 " slots and %" PRIu64 " pilots, expected %" PRIu64
      " and %" PRIu64 " for %" PRIu64 " layers",
      sc, pc - 1, sc, pc, n);
  return FIX_ALL;
}
static enum fix c_dense_slots(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m);
  strata__wr64(m->p + STRATA__H_SLOT_COUNT, strata__slot_count(n));
  SUB("dense region declares %" PRIu64 " slots and 0 pilots (must be 0)",
      strata__slot_count(n));
  return FIX_ALL;
}
static enum fix c_dense_pilots(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m);
  strata__wr64(m->p + STRATA__H_PILOT_COUNT, strata__pilot_count(n));
  SUB("dense region declares 0 slots and %" PRIu64 " pilots (must be 0)",
      strata__pilot_count(n));
  return FIX_ALL;
}
/* One layer more than a sparse region can hold: its slot count
 * n + ceil(n/16) would reach 2^32 (entry numbers are u32). Under the
 * header's cap of 2^32 - 1 layers, so the sparse cap is what objects. */
static enum fix c_sparse_cap(image *m, char *sub, size_t cap) {
  uint64_t n = STRATA__MAX_SPARSE_LAYERS + 1;
  if (strata__slot_count(n) <= UINT32_MAX ||
      strata__slot_count(n - 1) > UINT32_MAX)
    die("STRATA__MAX_SPARSE_LAYERS is not the largest sparse count");
  strata__wr64(m->p + STRATA__H_LAYER_COUNT, n);
  SUB("sparse region with %" PRIu64 " layers exceeds the cap %" PRIu64, n,
      n - 1);
  return FIX_ALL;
}
static enum fix sec_resize(image *m, char *sub, size_t cap, int s,
                           const char *name, int64_t delta) {
  uint64_t o = sec_off(m, s), l = sec_len(m, s);
  set_sec(m, s, o, l + (uint64_t)delta);
  SUB("%s section is %" PRIu64 " bytes, expected %" PRIu64, name,
      l + (uint64_t)delta, l);
  return FIX_ALL;
}
static enum fix c_dense_loc_size(image *m, char *sub, size_t cap) {
  return sec_resize(m, sub, cap, STRATA__S_LOCATORS, "locators",
                    -(int64_t)STRATA__LOC_SIZE);
}
static enum fix c_packed_loc_size(image *m, char *sub, size_t cap) {
  return sec_resize(m, sub, cap, STRATA__S_LOCATORS, "locators", -8);
}
static enum fix c_sparse_loc_size(image *m, char *sub, size_t cap) {
  return sec_resize(m, sub, cap, STRATA__S_LOCATORS, "locators",
                    -(int64_t)STRATA__SLOC_SIZE);
}
/* The packed flag toggled: the locators section keeps its size, which is
 * then wrong for the other variant. */
static enum fix toggle_packed(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m), l = sec_len(m, STRATA__S_LOCATORS);
  bool packed = !is_packed(m);
  strata__wr64(m->p + STRATA__H_FLAGS,
               hget64(m, STRATA__H_FLAGS) ^ STRATA_REGION_PACKED_LOCATORS);
  SUB("locators section is %" PRIu64 " bytes, expected %" PRIu64, l,
      packed ? (n + 1) * 8 : n * STRATA__LOC_SIZE);
  return FIX_ALL;
}
static enum fix c_packed_flag_set(image *m, char *sub, size_t cap) {
  if (is_packed(m))
    die("base already packed");
  return toggle_packed(m, sub, cap);
}
static enum fix c_packed_flag_cleared(image *m, char *sub, size_t cap) {
  if (!is_packed(m))
    die("base not packed");
  return toggle_packed(m, sub, cap);
}
static enum fix c_pilots_size(image *m, char *sub, size_t cap) {
  return sec_resize(m, sub, cap, STRATA__S_PILOTS, "pilots", 2);
}
static enum fix c_dense_pilots_size(image *m, char *sub, size_t cap) {
  return sec_resize(m, sub, cap, STRATA__S_PILOTS, "pilots", 8);
}
static enum fix sec_shift(image *m, char *sub, size_t cap, int s,
                          const char *name, uint64_t by, unsigned align) {
  uint64_t o = sec_off(m, s), l = sec_len(m, s);
  set_sec(m, s, o + by, l);
  SUB("%s section offset %" PRIu64 " is not aligned to %u", name, o + by,
      align);
  return FIX_ALL;
}
static enum fix c_loc_misaligned(image *m, char *sub, size_t cap) {
  return sec_shift(m, sub, cap, STRATA__S_LOCATORS, "locators", 32, 64);
}
static enum fix c_pilots_misaligned(image *m, char *sub, size_t cap) {
  return sec_shift(m, sub, cap, STRATA__S_PILOTS, "pilots", 2, 8);
}
static enum fix c_id_order_misaligned(image *m, char *sub, size_t cap) {
  return sec_shift(m, sub, cap, STRATA__S_ID_ORDER, "id-order", 4, 8);
}

/* -- region name and metadata -- */
static enum fix c_rname_empty(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__H_RNAME_LEN, 0);
  SUB("region name length 0 not in [1, 255]");
  return FIX_ALL;
}
static enum fix c_rname_long(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__H_RNAME_LEN, 256);
  SUB("region name length 256 not in [1, 255]");
  return FIX_ALL;
}
static enum fix c_rmeta_long(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__H_RMETA_LEN, (1u << 20) + 1);
  SUB("region metadata length 1048577 exceeds 1048576");
  return FIX_ALL;
}
static enum fix c_rname_utf8(image *m, char *sub, size_t cap) {
  uint64_t off = hget64(m, STRATA__H_RNAME_OFF);
  strings(m)[off] = 0xFF;
  SUB("region name: string at strings offset %" PRIu64 " is not valid UTF-8",
      off);
  return FIX_ALL;
}
static enum fix c_rmeta_past(image *m, char *sub, size_t cap) {
  uint64_t ss = sec_len(m, STRATA__S_STRINGS);
  strata__wr64(m->p + STRATA__H_RMETA_OFF, ss);
  SUB("region metadata: string [%" PRIu64 ", +%" PRIu64
      ") and its NUL end past strings section size %" PRIu64,
      ss, (uint64_t)strata__rd32(m->p + STRATA__H_RMETA_LEN), ss);
  return FIX_ALL;
}

/* -- bucket tables (of the name index) -- */
static enum fix bk_start(uint8_t *t, char *sub, size_t cap, const char *what) {
  tab_set(t, 0, 1);
  SUB("%s: bucket 0 starts at 1 (must be 0)", what);
  return FIX_ALL;
}
static enum fix bk_decreasing(uint8_t *t, unsigned bits, uint32_t count,
                              char *sub, size_t cap, const char *what) {
  uint64_t nb = 1ull << bits;
  for (uint64_t k = 2; k <= nb; k++) {
    uint32_t v = tab_get(t, k);
    if (v < count) {
      tab_set(t, k - 1, count);
      SUB("%s: bucket %" PRIu64 " starts at %" PRIu32 ", outside [%" PRIu32
          ", %" PRIu32 "]",
          what, k, v, count, count);
      return FIX_ALL;
    }
  }
  die("%s: no bucket to make decreasing", what);
  return FIX_NONE;
}
static enum fix bk_end(uint8_t *t, unsigned bits, uint32_t count, char *sub,
                       size_t cap, const char *what) {
  for (uint64_t k = 1; k <= (1ull << bits); k++)
    if (tab_get(t, k) == count)
      tab_set(t, k, count - 1);
  SUB("%s: buckets cover %" PRIu32 " records, expected %" PRIu32, what,
      count - 1, count);
  return FIX_ALL;
}
static enum fix bk_over(uint8_t *t, unsigned bits, uint32_t count, char *sub,
                        size_t cap, const char *what) {
  if (count < 65)
    die("%s: too few records for an oversized bucket", what);
  for (uint64_t k = 1; k < (1ull << bits); k++)
    if (tab_get(t, k) < 65)
      tab_set(t, k, 65);
  SUB("%s: bucket 0 holds 65 records (at most 64)", what);
  return FIX_ALL;
}
/* Moves one bucket boundary so that a record falls outside its bucket:
 * the first record j whose hash selects a bucket k > 0 is also the first
 * record of bucket k (the records are sorted), so raising bucket k's start
 * to j + 1 keeps the table monotonic but leaves record j in bucket k - 1.
 * Returns j and stores k in *k. */
static uint64_t bk_outside(uint8_t *t, unsigned bits, uint32_t count,
                           const uint64_t *hashes, uint64_t *k) {
  for (uint64_t j = 0; j < count; j++) {
    *k = strata__bucket(hashes[j], bits);
    if (*k > 0) {
      tab_set(t, *k, (uint32_t)j + 1);
      return j;
    }
  }
  die("every record is in bucket 0");
  return 0;
}

/* -- entries -- */
/* Sets an entry field; an entry's offset and size are repeated in its
 * locator (unpacked dense, or sparse), which follows, so that only the
 * check under test can object. Packed positions are left alone: every case
 * that moves a packed region's content is rejected by the bounds or
 * alignment checks, which come before the positions check. */
static void set_e64(image *m, uint64_t i, unsigned f, uint64_t v) {
  strata__wr64(entry(m, i) + f, v);
  if (f != STRATA__E_OFFSET && f != STRATA__E_SIZE)
    return;
  unsigned at = f == STRATA__E_OFFSET ? 0 : 8;
  if (is_packed(m))
    return;
  if (is_dense(m))
    strata__wr64(dloc(m, i) + at, v);
  else
    strata__wr64(sloc(m, i) + at, v);
}
static void set_e32(image *m, uint64_t i, unsigned f, uint32_t v) {
  strata__wr32(entry(m, i) + f, v);
}
static uint64_t get_e64(image *m, uint64_t i, unsigned f) {
  return strata__rd64(entry(m, i) + f);
}
static uint32_t get_e32(image *m, uint64_t i, unsigned f) {
  return strata__rd32(entry(m, i) + f);
}
static enum fix c_dense_gap(image *m, char *sub, size_t cap) {
  uint64_t want = entry_id(m, 2);
  set_e64(m, 2, STRATA__E_ID, entry_id(m, 1));
  SUB("layer %" PRIu64 ": entry 2 of a dense region must have id %" PRIu64,
      entry_id(m, 1), want);
  return FIX_ALL;
}
static enum fix c_dense_overflow(image *m, char *sub, size_t cap) {
  set_e64(m, 0, STRATA__E_ID, UINT64_MAX - 2);
  SUB("dense ids starting at %" PRIu64 " overflow for %" PRIu64 " layers",
      UINT64_MAX - 2, n_layers(m));
  return FIX_ALL;
}
/* The second used slot's entry and locator repeat the first's id: the
 * slot is a function of the id, so the second copy sits in a slot its hash
 * does not select. */
static enum fix c_sparse_dup(image *m, char *sub, size_t cap) {
  uint64_t s0 = used_entry(m, 0), s1 = used_entry(m, 1), id = entry_id(m, s0);
  set_e64(m, s1, STRATA__E_ID, id);
  strata__wr64(sloc(m, s1) + 16, id);
  SUB("layer %" PRIu64 ": found in slot %" PRIu64
      " but its hash selects slot %" PRIu64,
      id, s1, s0);
  return FIX_ALL;
}
static enum fix c_content_past(image *m, char *sub, size_t cap) {
  uint64_t ds = sec_len(m, STRATA__S_DATA), len = get_e64(m, 0, STRATA__E_SIZE);
  set_e64(m, 0, STRATA__E_OFFSET, ds + 64);
  SUB("layer %" PRIu64 ": content [%" PRIu64 ", +%" PRIu64
      ") ends past data section end %" PRIu64,
      entry_id(m, 0), ds + 64, len, ds);
  return FIX_ALL;
}
static enum fix c_content_wrap(image *m, char *sub, size_t cap) {
  set_e64(m, 1, STRATA__E_OFFSET, UINT64_MAX - 15);
  set_e64(m, 1, STRATA__E_SIZE, 32);
  SUB("layer %" PRIu64 ": content [%" PRIu64 ", +32) ends past data section "
      "end %" PRIu64,
      entry_id(m, 1), UINT64_MAX - 15, sec_len(m, STRATA__S_DATA));
  return FIX_ALL;
}
static enum fix c_content_len_past(image *m, char *sub, size_t cap) {
  uint64_t last = used_entry(m, 0), n = n_entries(m),
           ds = sec_len(m, STRATA__S_DATA);
  for (uint64_t i = 0; i < n; i++)
    if (!entry_empty(m, i) &&
        get_e64(m, i, STRATA__E_OFFSET) > get_e64(m, last, STRATA__E_OFFSET))
      last = i;
  uint64_t off = get_e64(m, last, STRATA__E_OFFSET);
  set_e64(m, last, STRATA__E_SIZE, ds - off + 1);
  SUB("layer %" PRIu64 ": content [%" PRIu64 ", +%" PRIu64
      ") ends past data section end %" PRIu64,
      entry_id(m, last), off, ds - off + 1, ds);
  return FIX_ALL;
}
static enum fix c_content_misaligned(image *m, char *sub, size_t cap) {
  uint64_t off = get_e64(m, 0, STRATA__E_OFFSET) + 8;
  set_e64(m, 0, STRATA__E_OFFSET, off);
  SUB("layer %" PRIu64 ": content offset %" PRIu64 " is not aligned to 64",
      entry_id(m, 0), off);
  return FIX_ALL;
}
static enum fix c_layer_flags(image *m, char *sub, size_t cap) {
  uint64_t i = used_entry(m, 0);
  set_e32(m, i, STRATA__E_FLAGS, 1);
  SUB("layer %" PRIu64 ": unknown layer flags 0x1", entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_entry_reserved(image *m, char *sub, size_t cap) {
  set_e32(m, 0, STRATA__E_RESERVED, 0x100);
  SUB("layer %" PRIu64 ": reserved entry field is not zero", entry_id(m, 0));
  return FIX_ALL;
}
static enum fix c_name_long(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true);
  set_e32(m, i, STRATA__E_NAME_LEN, 4097);
  SUB("layer %" PRIu64 ": name length 4097 exceeds 4096", entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_meta_long(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true); /* named layers have metadata */
  set_e32(m, i, STRATA__E_META_LEN, (1u << 20) + 1);
  SUB("layer %" PRIu64 ": metadata length 1048577 exceeds 1048576",
      entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_name_past(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true), ss = sec_len(m, STRATA__S_STRINGS);
  set_e64(m, i, STRATA__E_NAME_OFF, ss + 10);
  SUB("layer %" PRIu64 " name: string [%" PRIu64 ", +%" PRIu32
      ") and its NUL end past strings section size %" PRIu64,
      entry_id(m, i), ss + 10, get_e32(m, i, STRATA__E_NAME_LEN), ss);
  return FIX_ALL;
}
/* Named entry i's name inside STRINGS. */
static uint8_t *name_bytes(image *m, uint64_t i, uint32_t *len, uint64_t *off) {
  *off = get_e64(m, i, STRATA__E_NAME_OFF);
  *len = get_e32(m, i, STRATA__E_NAME_LEN);
  return strings(m) + *off;
}
static enum fix c_name_no_nul(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true), off;
  uint32_t len;
  name_bytes(m, i, &len, &off);
  set_e32(m, i, STRATA__E_NAME_LEN, len + 1); /* takes in the NUL */
  SUB("layer %" PRIu64 " name: string at strings offset %" PRIu64
      " is not NUL-terminated",
      entry_id(m, i), off);
  return FIX_ALL;
}
static enum fix c_name_nul(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true), off;
  uint32_t len;
  name_bytes(m, i, &len, &off)[1] = '\0';
  SUB("layer %" PRIu64 " name: string at strings offset %" PRIu64
      " contains a NUL byte",
      entry_id(m, i), off);
  return FIX_ALL;
}
static enum fix name_utf8(image *m, char *sub, size_t cap, const char *bad,
                          bool at_end) {
  uint64_t i = find_entry(m, true), off;
  uint32_t len;
  uint8_t *s = name_bytes(m, i, &len, &off);
  size_t bl = strlen(bad);
  if (bl > len)
    die("name too short for the bad sequence");
  memcpy(at_end ? s + len - bl : s, bad, bl);
  SUB("layer %" PRIu64 " name: string at strings offset %" PRIu64
      " is not valid UTF-8",
      entry_id(m, i), off);
  return FIX_ALL;
}
static enum fix c_utf8_overlong(image *m, char *sub, size_t cap) {
  return name_utf8(m, sub, cap, "\xC0\xAF", false);
}
static enum fix c_utf8_surrogate(image *m, char *sub, size_t cap) {
  return name_utf8(m, sub, cap, "\xED\xA0\x80", false);
}
static enum fix c_utf8_truncated(image *m, char *sub, size_t cap) {
  return name_utf8(m, sub, cap, "\xE2\x82", true);
}
static enum fix c_utf8_too_big(image *m, char *sub, size_t cap) {
  return name_utf8(m, sub, cap, "\xF4\x90\x80\x80", false);
}
static enum fix c_utf8_continuation(image *m, char *sub, size_t cap) {
  return name_utf8(m, sub, cap, "\x80", false);
}
static enum fix c_meta_utf8(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true);
  uint64_t off = get_e64(m, i, STRATA__E_META_OFF);
  strings(m)[off + 1] = 0xFF;
  SUB("layer %" PRIu64 " metadata: string at strings offset %" PRIu64
      " is not valid UTF-8",
      entry_id(m, i), off);
  return FIX_ALL;
}
static enum fix c_empty_name_off(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, false);
  set_e64(m, i, STRATA__E_NAME_OFF, 5);
  SUB("layer %" PRIu64 " name: string at strings offset 5 has length 0 but "
      "a nonzero offset",
      entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_named_mismatch(image *m, char *sub, size_t cap) {
  uint64_t i = find_entry(m, true), mm = hget64(m, STRATA__H_NAMED_COUNT);
  set_e32(m, i, STRATA__E_NAME_LEN, 0);
  set_e64(m, i, STRATA__E_NAME_OFF, 0);
  SUB("%" PRIu64 " layers have names, header says %" PRIu64, mm - 1, mm);
  return FIX_ALL;
}

/* -- id lookup: dense locators and positions, sparse slots and pilots -- */
static enum fix dense_loc(image *m, char *sub, size_t cap, unsigned field,
                          uint64_t delta) {
  uint64_t i = 2;
  uint8_t *loc = dloc(m, i);
  uint64_t off = get_e64(m, i, STRATA__E_OFFSET),
           len = get_e64(m, i, STRATA__E_SIZE);
  strata__wr64(loc + field, strata__rd64(loc + field) + delta);
  SUB("layer %" PRIu64 ": locator {%" PRIu64 ", %" PRIu64
      "} differs from its entry {%" PRIu64 ", %" PRIu64 "}",
      entry_id(m, i), strata__rd64(loc), strata__rd64(loc + 8), off, len);
  return FIX_ALL;
}
static enum fix c_dense_loc_offset(image *m, char *sub, size_t cap) {
  return dense_loc(m, sub, cap, 0, 64);
}
static enum fix c_dense_loc_size_field(image *m, char *sub, size_t cap) {
  return dense_loc(m, sub, cap, 8, 1);
}
/* A dense locator that agrees with a changed entry would pass its check:
 * changing the entry alone must be caught too. */
static enum fix c_dense_entry_vs_loc(image *m, char *sub, size_t cap) {
  uint64_t i = 1;
  uint8_t *loc = dloc(m, i);
  uint64_t off = get_e64(m, i, STRATA__E_OFFSET),
           len = get_e64(m, i, STRATA__E_SIZE);
  strata__wr64(entry(m, i) + STRATA__E_SIZE, len - 1);
  SUB("layer %" PRIu64 ": locator {%" PRIu64 ", %" PRIu64
      "} differs from its entry {%" PRIu64 ", %" PRIu64 "}",
      entry_id(m, i), strata__rd64(loc), strata__rd64(loc + 8), off, len - 1);
  return FIX_ALL;
}
/* Packed positions: the message names positions i and i + 1 and the
 * entry's content as they are after the mutation. */
static void packed_sub(image *m, char *sub, size_t cap, uint64_t i) {
  SUB("layer %" PRIu64 ": packed positions [%" PRIu64 ", %" PRIu64
      ") do not match its content [%" PRIu64 ", +%" PRIu64 ")",
      entry_id(m, i), strata__rd64(ppos(m, i)), strata__rd64(ppos(m, i + 1)),
      get_e64(m, i, STRATA__E_OFFSET), get_e64(m, i, STRATA__E_SIZE));
}
/* Position 0 must be 0 even though 0 + 1 would round up to the same
 * start: it is the one position no layer's end defines. */
static enum fix c_packed_pos0(image *m, char *sub, size_t cap) {
  if (get_e64(m, 0, STRATA__E_OFFSET) != 0)
    die("entry 0 does not start at 0");
  strata__wr64(ppos(m, 0), 1);
  SUB("packed position 0 is 1 (must be 0)");
  return FIX_ALL;
}
/* The start does not match, the end does: entry 2 claims to start where
 * entry 1 does (and grows to keep its end), so position 2, entry 1's end,
 * lies past entry 2's start. Entries 0 and 1 are untouched and pass. */
static enum fix c_packed_start(image *m, char *sub, size_t cap) {
  uint64_t off1 = get_e64(m, 1, STRATA__E_OFFSET),
           off2 = get_e64(m, 2, STRATA__E_OFFSET),
           len2 = get_e64(m, 2, STRATA__E_SIZE);
  strata__wr64(entry(m, 2) + STRATA__E_OFFSET, off1);
  strata__wr64(entry(m, 2) + STRATA__E_SIZE, len2 + (off2 - off1));
  if (strata__rd64(ppos(m, 3)) != off2 + len2)
    die("position 3 is not entry 2's end");
  packed_sub(m, sub, cap, 2);
  return FIX_ALL;
}
/* The start matches, the end does not: the last position (only the last
 * layer's end) one byte further. */
static enum fix c_packed_end(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m);
  strata__wr64(ppos(m, n), strata__rd64(ppos(m, n)) + 1);
  packed_sub(m, sub, cap, n - 1);
  return FIX_ALL;
}
/* A start a whole alignment unit before the content: rounding position 3
 * up no longer reaches entry 3's offset. Position 3 is also entry 2's end,
 * so entry 2 (checked first) is the one named. */
static enum fix c_packed_mid(image *m, char *sub, size_t cap) {
  strata__wr64(ppos(m, 3), strata__rd64(ppos(m, 3)) - 64);
  packed_sub(m, sub, cap, 2);
  return FIX_ALL;
}
static uint64_t first_empty_slot(image *m) {
  for (uint64_t i = 0; i < slot_count(m); i++)
    if (entry_empty(m, i))
      return i;
  die("no empty slot in the base");
  return 0;
}
/* One field of an empty slot's entry (f < 64) or locator (f >= 64: byte
 * f - 64 of it) set to a non-empty value. */
static enum fix empty_slot_field(image *m, char *sub, size_t cap, unsigned f,
                                 uint64_t v, bool wide) {
  uint64_t i = first_empty_slot(m);
  uint8_t *p = f < 64 ? entry(m, i) + f : sloc(m, i) + (f - 64);
  if (wide)
    strata__wr64(p, v);
  else
    strata__wr32(p, (uint32_t)v);
  SUB("empty slot %" PRIu64 " has a nonzero entry or locator field", i);
  return FIX_ALL;
}
static enum fix c_empty_slot_id(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, STRATA__E_ID, 1, true);
}
static enum fix c_empty_slot_size(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, STRATA__E_SIZE, 1, true);
}
static enum fix c_empty_slot_reserved(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, STRATA__E_RESERVED, 1, false);
}
static enum fix c_empty_slot_name_len(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, STRATA__E_NAME_LEN, 3, false);
}
static enum fix c_empty_loc_offset(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, 64 + 0, 0, true);
}
static enum fix c_empty_loc_size(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, 64 + 8, 1, true);
}
static enum fix c_empty_loc_id(image *m, char *sub, size_t cap) {
  return empty_slot_field(m, sub, cap, 64 + 16, 1, true);
}
/* An id whose hash selects slot `want` under the image's seed and pilots
 * (and is not already a layer's: those sit in their own slots). */
static uint64_t id_for_slot(image *m, uint64_t want) {
  for (uint64_t id = 1; id < 100000000; id++)
    if (hash_slot(m, id) == want)
      return id;
  die("no id hashes to slot %" PRIu64, want);
  return 0;
}
/* An empty slot made used, consistently: an empty, unnamed layer whose id
 * the hash puts in that very slot, with a matching locator. Every entry
 * passes its own checks; only the count of used slots is one too many. */
static enum fix c_slot_too_many(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m), i = slot_count(m) - 1;
  if (!entry_empty(m, i))
    die("the base's last slot is used");
  uint64_t id = id_for_slot(m, i);
  memset(entry(m, i), 0, STRATA__ENTRY_SIZE);
  strata__wr64(entry(m, i) + STRATA__E_ID, id);
  strata__wr64(sloc(m, i), 0);
  strata__wr64(sloc(m, i) + 8, 0);
  strata__wr64(sloc(m, i) + 16, id);
  SUB("%" PRIu64 " slots are used, expected %" PRIu64, n + 1, n);
  return FIX_ALL;
}
/* The last used slot emptied (entry and locator): fewer used slots than
 * layers. The id order and name records still point at it, but those are
 * checked later (or lazily). */
static enum fix c_slot_too_few(image *m, char *sub, size_t cap) {
  uint64_t n = n_layers(m), last = used_entry(m, n - 1);
  memset(entry(m, last), 0, STRATA__ENTRY_SIZE);
  strata__wr32(entry(m, last) + STRATA__E_FLAGS, STRATA__EMPTY_ENTRY);
  memset(sloc(m, last), 0, STRATA__SLOC_SIZE);
  strata__wr64(sloc(m, last), STRATA__EMPTY_OFFSET);
  SUB("%" PRIu64 " slots are used, expected %" PRIu64, n - 1, n);
  return FIX_ALL;
}
/* A used slot's locator differs from its entry in one field. */
static enum fix c_slot_id(image *m, char *sub, size_t cap) {
  uint64_t i = used_entry(m, 3), id = entry_id(m, i);
  strata__wr64(sloc(m, i) + 16, id ^ 0x100);
  SUB("layer %" PRIu64 ": slot %" PRIu64 " locator holds id %" PRIu64, id, i,
      id ^ 0x100);
  return FIX_ALL;
}
static enum fix slot_loc(image *m, char *sub, size_t cap, unsigned at) {
  uint64_t i = used_entry(m, 3);
  uint8_t *loc = sloc(m, i);
  strata__wr64(loc + at, strata__rd64(loc + at) ^ 0x100);
  SUB("layer %" PRIu64 ": locator {%" PRIu64 ", %" PRIu64
      "} differs from its entry {%" PRIu64 ", %" PRIu64 "}",
      entry_id(m, i), strata__rd64(loc), strata__rd64(loc + 8),
      get_e64(m, i, STRATA__E_OFFSET), get_e64(m, i, STRATA__E_SIZE));
  return FIX_ALL;
}
static enum fix c_slot_offset(image *m, char *sub, size_t cap) {
  return slot_loc(m, sub, cap, 0);
}
static enum fix c_slot_size(image *m, char *sub, size_t cap) {
  return slot_loc(m, sub, cap, 8);
}
/* The entries and locators of the second and fourth used slots trade
 * places; the id order and the name records (which hold slot numbers)
 * follow the move. Everything is consistent but for the hash: each id now
 * sits in the other's slot. */
static enum fix c_slot_swap(image *m, char *sub, size_t cap) {
  uint64_t sa = used_entry(m, 1), sb = used_entry(m, 3);
  uint8_t tmp[STRATA__ENTRY_SIZE];
  memcpy(tmp, entry(m, sa), sizeof tmp);
  memcpy(entry(m, sa), entry(m, sb), sizeof tmp);
  memcpy(entry(m, sb), tmp, sizeof tmp);
  memcpy(tmp, sloc(m, sa), STRATA__SLOC_SIZE);
  memcpy(sloc(m, sa), sloc(m, sb), STRATA__SLOC_SIZE);
  memcpy(sloc(m, sb), tmp, STRATA__SLOC_SIZE);
  uint64_t n = n_layers(m), mm = hget64(m, STRATA__H_NAMED_COUNT);
  for (uint64_t j = 0; j < n; j++) {
    uint32_t v = strata__rd32(id_order(m) + 4 * j);
    strata__wr32(id_order(m) + 4 * j, v == sa ? sb : v == sb ? sa : v);
  }
  for (uint64_t j = 0; j < mm; j++) {
    uint32_t v = strata__rd32(name_rec(m, j) + 8);
    strata__wr32(name_rec(m, j) + 8, v == sa ? sb : v == sb ? sa : v);
  }
  uint64_t id = entry_id(m, sa); /* sa < sb: checked first */
  SUB("layer %" PRIu64 ": found in slot %" PRIu64
      " but its hash selects slot %" PRIu64,
      id, sa, hash_slot(m, id));
  return FIX_ALL;
}
/* One pilot changed: the ids of its bucket now hash to other slots. The
 * first used slot (in slot order) whose id no longer lands there fails. */
static enum fix c_pilot_changed(image *m, char *sub, size_t cap) {
  uint64_t s0 = used_entry(m, 0), id0 = entry_id(m, s0);
  uint64_t b =
      strata__pilot_bucket(strata__id_hash(id0, seed_of(m)), pilot_count(m));
  uint8_t *p = pilots(m) + 2 * b;
  for (uint16_t add = 1;; add++) {
    strata__wr16(p, (uint16_t)(strata__rd16(p) + 1));
    if (hash_slot(m, id0) != s0)
      break;
    if (add == 100)
      die("no pilot moves the first layer");
  }
  for (uint64_t i = 0; i < slot_count(m); i++) {
    if (entry_empty(m, i))
      continue;
    uint64_t id = entry_id(m, i);
    uint64_t want = hash_slot(m, id);
    if (want != i) {
      SUB("layer %" PRIu64 ": found in slot %" PRIu64
          " but its hash selects slot %" PRIu64,
          id, i, want);
      return FIX_ALL;
    }
  }
  die("pilot change moved nothing");
  return FIX_NONE;
}

/* -- name index -- */
static unsigned name_bits(image *m) {
  return strata__rd32(m->p + STRATA__H_NAME_BITS);
}
static uint32_t n_named(image *m) {
  return (uint32_t)hget64(m, STRATA__H_NAMED_COUNT);
}
static enum fix c_nb_start(image *m, char *sub, size_t cap) {
  return bk_start(name_buckets(m), sub, cap, "name index");
}
static enum fix c_nb_decreasing(image *m, char *sub, size_t cap) {
  return bk_decreasing(name_buckets(m), name_bits(m), n_named(m), sub, cap,
                       "name index");
}
static enum fix c_nb_end(image *m, char *sub, size_t cap) {
  return bk_end(name_buckets(m), name_bits(m), n_named(m), sub, cap,
                "name index");
}
static enum fix c_nb_over(image *m, char *sub, size_t cap) {
  return bk_over(name_buckets(m), name_bits(m), n_named(m), sub, cap,
                 "name index");
}
/* In a sparse region the entry numbers run to the slot count, not the
 * layer count: the first number past the slots. */
static enum fix c_nrec_past(image *m, char *sub, size_t cap) {
  uint64_t ne = n_entries(m);
  strata__wr32(name_rec(m, 0) + 8, (uint32_t)ne);
  SUB("name index record 0 points at entry %" PRIu64 ", past the %" PRIu64
      " entries",
      ne, ne);
  return FIX_ALL;
}
static enum fix c_nrec_order(image *m, char *sub, size_t cap) {
  strata__wr64(name_rec(m, 1), strata__rd64(name_rec(m, 0)) - 1);
  SUB("name index record 1 is out of hash order");
  return FIX_ALL;
}
static enum fix c_nrec_reserved(image *m, char *sub, size_t cap) {
  strata__wr32(name_rec(m, 0) + 12, 1);
  SUB("name index record 0: reserved field is not zero");
  return FIX_ALL;
}
static enum fix c_nrec_outside(image *m, char *sub, size_t cap) {
  uint32_t mm = n_named(m);
  uint64_t k, hashes[64];
  if (mm > 64)
    die("base too large");
  for (uint32_t j = 0; j < mm; j++)
    hashes[j] = strata__rd64(name_rec(m, j));
  uint64_t j = bk_outside(name_buckets(m), name_bits(m), mm, hashes, &k);
  SUB("name index record %" PRIu64 " lies outside its bucket %" PRIu64, j, k);
  return FIX_ALL;
}

/* -- whole files -- */
static enum fix c_short(image *m, char *sub, size_t cap) {
  m->len = 100;
  SUB("file is 100 bytes, smaller than the 256-byte header");
  return FIX_NONE;
}
static enum fix c_empty_file(image *m, char *sub, size_t cap) {
  m->len = 0;
  SUB("file is 0 bytes, smaller than the 256-byte header");
  return FIX_NONE;
}
static enum fix c_zeros(image *m, char *sub, size_t cap) {
  m->len = 256;
  memset(m->p, 0, 256);
  SUB("bad magic at offset 0");
  return FIX_NONE;
}
static enum fix c_short_magic(image *m, char *sub, size_t cap) {
  memcpy(m->p, "NOTAREGIONFILE", 14);
  m->len = 14;
  SUB("bad magic at offset 0");
  return FIX_NONE;
}

/* -- delta files (format 1.1) -- */
/* The extension checksum, after a case changed the extension. */
static void fix_ext(image *m) {
  strata__wr64(
      m->p + STRATA__X_CSUM,
      XXH3_64bits(m->p + STRATA__X_PARENT, STRATA__X_CSUM - STRATA__X_PARENT));
}
static uint64_t tombstone_entry(image *m) {
  for (uint64_t i = 0; i < n_entries(m); i++)
    if (!entry_empty(m, i) && get_e32(m, i, STRATA__E_FLAGS) == 1)
      return i;
  die("no tombstone in the base");
  return 0;
}
static enum fix c_delta_header_size(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__H_HEADER_SIZE, 512);
  SUB("header size 512 at offset 12 (must be 320 in a delta file)");
  return FIX_ALL;
}
/* The flag on a base file, whose header is 256 bytes. */
static enum fix c_delta_flag_on_base(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__H_FLAGS,
               hget64(m, STRATA__H_FLAGS) | STRATA_REGION_DELTA);
  SUB("header size 256 at offset 12 (must be 320 in a delta file)");
  return FIX_ALL;
}
static enum fix c_delta_minor0(image *m, char *sub, size_t cap) {
  strata__wr16(m->p + STRATA__H_MINOR, 0);
  SUB("delta file of format version 1.0 (delta files are 1.1 or later)");
  return FIX_ALL;
}
static enum fix c_delta_short(image *m, char *sub, size_t cap) {
  m->len = 300;
  strata__wr64(m->p + STRATA__H_FILE_SIZE, 300);
  SUB("file is 300 bytes, smaller than the 320-byte header of a delta file");
  return FIX_HEADER;
}
static enum fix c_delta_ext_csum(image *m, char *sub, size_t cap) {
  m->p[STRATA__X_PARENT] ^= 1;
  SUB("header extension checksum over [256, 312) is");
  return FIX_ALL;
}
static enum fix c_delta_depth0(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__X_DEPTH, 0);
  fix_ext(m);
  SUB("delta depth 0 at offset 272 (must be at least 1)");
  return FIX_ALL;
}
static enum fix c_delta_depth1_not_base(image *m, char *sub, size_t cap) {
  strata__wr32(m->p + STRATA__X_DEPTH, 1);
  fix_ext(m);
  SUB("delta of depth 1 with parent %016" PRIx64
      " (offset 256) differing from its base %016" PRIx64 " (offset 264)",
      DELTA_PARENT, DELTA_BASE);
  return FIX_ALL;
}
static enum fix c_delta_deep_parent_base(image *m, char *sub, size_t cap) {
  strata__wr64(m->p + STRATA__X_PARENT, DELTA_BASE);
  fix_ext(m);
  SUB("delta of depth 2 with parent %016" PRIx64
      " (offset 256) equal to its base %016" PRIx64 " (offset 264)",
      DELTA_BASE, DELTA_BASE);
  return FIX_ALL;
}
static enum fix c_delta_reserved(image *m, char *sub, size_t cap) {
  m->p[300] = 1;
  fix_ext(m);
  SUB("reserved header extension byte at offset 300 is not zero");
  return FIX_ALL;
}
static enum fix c_delta_data_in_header(image *m, char *sub, size_t cap) {
  uint64_t o = sec_off(m, STRATA__S_DATA), l = sec_len(m, STRATA__S_DATA);
  set_sec(m, STRATA__S_DATA, o - 64, l + 64);
  SUB("data section at offset %" PRIu64
      " overlaps the previous section ending at 320",
      o - 64);
  return FIX_ALL;
}
static enum fix c_tombstone_in_base(image *m, char *sub, size_t cap) {
  uint64_t i = used_entry(m, 0);
  set_e32(m, i, STRATA__E_FLAGS, 1);
  SUB("layer %" PRIu64
      ": unknown layer flags 0x1 (a tombstone outside a delta file)",
      entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_delta_layer_flag2(image *m, char *sub, size_t cap) {
  set_e32(m, 0, STRATA__E_FLAGS, 2);
  SUB("layer %" PRIu64 ": unknown layer flags 0x2", entry_id(m, 0));
  return FIX_ALL;
}
static enum fix c_tombstone_content(image *m, char *sub, size_t cap) {
  set_e32(m, 0, STRATA__E_FLAGS, 1);
  SUB("layer %" PRIu64 ": tombstone with content size %" PRIu64 " (must be 0)",
      entry_id(m, 0), get_e64(m, 0, STRATA__E_SIZE));
  return FIX_ALL;
}
static enum fix c_tombstone_name(image *m, char *sub, size_t cap) {
  uint64_t i = tombstone_entry(m);
  set_e32(m, i, STRATA__E_NAME_LEN, 5);
  SUB("layer %" PRIu64 ": tombstone with name length 5 (must be 0)",
      entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_tombstone_meta(image *m, char *sub, size_t cap) {
  uint64_t i = tombstone_entry(m);
  set_e32(m, i, STRATA__E_META_LEN, 3);
  SUB("layer %" PRIu64 ": tombstone with metadata length 3 (must be 0)",
      entry_id(m, i));
  return FIX_ALL;
}
static enum fix c_tombstone_checksum(image *m, char *sub, size_t cap) {
  uint64_t i = tombstone_entry(m);
  strata__wr64(entry(m, i) + STRATA__E_CHECKSUM, 42);
  SUB("layer %" PRIu64 ": tombstone with content checksum 000000000000002a "
      "(must be 2d06800538d394c2, that of no bytes)",
      entry_id(m, i));
  return FIX_ALL;
}

#define C(name, base, err, fn)                                                 \
  { name, base, STRATA_E_##err, fn }
static const hcase cases[] = {
    /* header */
    C("bad-magic", 'D', BAD_MAGIC, c_bad_magic),
    C("version-major-2", 'D', VERSION, c_version2),
    C("header-size", 'D', CORRUPT, c_header_size),
    C("header-checksum", 'D', CHECKSUM, c_header_csum),
    C("index-checksum", 'S', CHECKSUM, c_index_csum),
    C("file-size-larger", 'D', CORRUPT, c_file_size_larger),
    C("file-size-smaller", 'S', CORRUPT, c_file_size_smaller),
    C("header-only", 'S', CORRUPT, c_header_only),
    C("unknown-header-flags", 'D', VERSION, c_header_flags),
    C("unknown-header-flag-bit2", 'S', VERSION, c_header_flag_bit2),
    C("packed-without-dense", 'S', CORRUPT, c_packed_not_dense),
    C("align-not-pow2", 'D', CORRUPT, c_align_npot),
    C("align-too-small", 'D', CORRUPT, c_align_small),
    C("align-too-big", 'D', CORRUPT, c_align_big),
    C("align-zero", 'S', CORRUPT, c_align_zero),
    C("layer-count-huge", 'S', LIMIT, c_layers_huge),
    C("named-count-over-layers", 'D', CORRUPT, c_named_over),
    C("empty-without-dense-flag", 'E', CORRUPT, c_empty_sparse),
    C("name-bits-wrong", 'D', CORRUPT, c_name_bits),
    C("name-bits-without-names", 'E', CORRUPT, c_name_bits_unnamed),
    C("sparse-slot-count-wrong", 'S', CORRUPT, c_slot_count),
    C("sparse-pilot-count-wrong", 'S', CORRUPT, c_pilot_count),
    C("dense-with-slot-count", 'D', CORRUPT, c_dense_slots),
    C("dense-with-pilot-count", 'D', CORRUPT, c_dense_pilots),
    C("sparse-layer-count-over-cap", 'S', LIMIT, c_sparse_cap),
    /* sections */
    C("data-misaligned", 'D', CORRUPT, c_data_misaligned),
    C("layer-count-vs-index", 'D', CORRUPT, c_count_vs_index),
    C("sections-overlap", 'S', CORRUPT, c_overlap),
    C("data-into-index", 'D', CORRUPT, c_data_into_index),
    C("section-past-eof", 'S', CORRUPT, c_past_eof),
    C("section-size-wraps", 'S', CORRUPT, c_size_wraps),
    C("index-misaligned", 'D', CORRUPT, c_index_misaligned),
    C("id-order-size", 'S', CORRUPT, c_id_order_size),
    C("strings-not-at-eof", 'S', CORRUPT, c_strings_not_eof),
    C("dense-locators-size", 'U', CORRUPT, c_dense_loc_size),
    C("packed-locators-size", 'D', CORRUPT, c_packed_loc_size),
    C("packed-flag-on-unpacked", 'U', CORRUPT, c_packed_flag_set),
    C("packed-flag-cleared", 'D', CORRUPT, c_packed_flag_cleared),
    C("sparse-locators-size", 'S', CORRUPT, c_sparse_loc_size),
    C("locators-misaligned", 'S', CORRUPT, c_loc_misaligned),
    C("pilots-size", 'S', CORRUPT, c_pilots_size),
    C("dense-with-pilots-section", 'D', CORRUPT, c_dense_pilots_size),
    C("pilots-misaligned", 'S', CORRUPT, c_pilots_misaligned),
    C("id-order-misaligned", 'S', CORRUPT, c_id_order_misaligned),
    /* region name and metadata */
    C("region-name-empty", 'D', CORRUPT, c_rname_empty),
    C("region-name-too-long", 'S', LIMIT, c_rname_long),
    C("region-metadata-too-long", 'D', LIMIT, c_rmeta_long),
    C("region-name-bad-utf8", 'S', CORRUPT, c_rname_utf8),
    C("region-metadata-past-end", 'D', CORRUPT, c_rmeta_past),
    /* entries */
    C("dense-duplicate-id", 'D', CORRUPT, c_dense_gap),
    C("dense-ids-overflow", 'D', CORRUPT, c_dense_overflow),
    C("content-past-data-end", 'D', CORRUPT, c_content_past),
    C("content-offset-wraps", 'D', CORRUPT, c_content_wrap),
    C("content-len-past-end", 'S', CORRUPT, c_content_len_past),
    C("content-misaligned", 'D', CORRUPT, c_content_misaligned),
    C("layer-flags", 'S', VERSION, c_layer_flags),
    C("entry-reserved", 'D', CORRUPT, c_entry_reserved),
    C("name-too-long", 'S', LIMIT, c_name_long),
    C("metadata-too-long", 'D', LIMIT, c_meta_long),
    C("name-offset-past-strings", 'S', CORRUPT, c_name_past),
    C("name-not-nul-terminated", 'D', CORRUPT, c_name_no_nul),
    C("name-embedded-nul", 'S', CORRUPT, c_name_nul),
    C("name-utf8-overlong", 'S', CORRUPT, c_utf8_overlong),
    C("name-utf8-surrogate", 'D', CORRUPT, c_utf8_surrogate),
    C("name-utf8-truncated", 'S', CORRUPT, c_utf8_truncated),
    C("name-utf8-above-max", 'D', CORRUPT, c_utf8_too_big),
    C("name-utf8-lone-continuation", 'S', CORRUPT, c_utf8_continuation),
    C("metadata-bad-utf8", 'S', CORRUPT, c_meta_utf8),
    C("empty-name-nonzero-offset", 'S', CORRUPT, c_empty_name_off),
    C("named-count-mismatch", 'D', CORRUPT, c_named_mismatch),
    /* id lookup */
    C("dense-locator-offset", 'U', CORRUPT, c_dense_loc_offset),
    C("dense-locator-size", 'U', CORRUPT, c_dense_loc_size_field),
    C("dense-entry-differs-from-locator", 'U', CORRUPT, c_dense_entry_vs_loc),
    C("packed-position-0", 'D', CORRUPT, c_packed_pos0),
    C("packed-position-start", 'D', CORRUPT, c_packed_start),
    C("packed-position-end", 'D', CORRUPT, c_packed_end),
    C("packed-position-middle", 'D', CORRUPT, c_packed_mid),
    C("empty-slot-id", 'S', CORRUPT, c_empty_slot_id),
    C("empty-slot-size", 'S', CORRUPT, c_empty_slot_size),
    C("empty-slot-reserved", 'S', CORRUPT, c_empty_slot_reserved),
    C("empty-slot-name-length", 'S', CORRUPT, c_empty_slot_name_len),
    C("empty-slot-locator-offset", 'S', CORRUPT, c_empty_loc_offset),
    C("empty-slot-locator-size", 'S', CORRUPT, c_empty_loc_size),
    C("empty-slot-locator-id", 'S', CORRUPT, c_empty_loc_id),
    C("slot-too-many-used", 'T', CORRUPT, c_slot_too_many),
    C("slot-too-few-used", 'S', CORRUPT, c_slot_too_few),
    C("slot-id-differs", 'S', CORRUPT, c_slot_id),
    C("slot-offset-differs", 'S', CORRUPT, c_slot_offset),
    C("slot-size-differs", 'S', CORRUPT, c_slot_size),
    C("slots-swapped", 'S', CORRUPT, c_slot_swap),
    C("pilot-changed", 'S', CORRUPT, c_pilot_changed),
    C("sparse-duplicate-id", 'S', CORRUPT, c_sparse_dup),
    /* name index */
    C("name-buckets-start", 'S', CORRUPT, c_nb_start),
    C("name-buckets-decreasing", 'D', CORRUPT, c_nb_decreasing),
    C("name-buckets-end", 'S', CORRUPT, c_nb_end),
    C("name-bucket-over-64", 'W', LIMIT, c_nb_over),
    C("name-record-past-count", 'S', CORRUPT, c_nrec_past),
    C("name-record-past-count-dense", 'D', CORRUPT, c_nrec_past),
    C("name-records-out-of-order", 'D', CORRUPT, c_nrec_order),
    C("name-record-reserved", 'S', CORRUPT, c_nrec_reserved),
    C("name-record-outside-bucket", 'S', CORRUPT, c_nrec_outside),
    /* whole files */
    C("shorter-than-header", 'D', CORRUPT, c_short),
    C("empty-file", 'D', CORRUPT, c_empty_file),
    C("zeros-256", 'D', BAD_MAGIC, c_zeros),
    C("short-bad-magic", 'D', BAD_MAGIC, c_short_magic),
    /* delta files (format 1.1); 'X' is a delta base */
    C("delta-header-size", 'X', CORRUPT, c_delta_header_size),
    C("delta-flag-on-base", 'D', CORRUPT, c_delta_flag_on_base),
    C("delta-minor-0", 'X', CORRUPT, c_delta_minor0),
    C("delta-shorter-than-header", 'X', CORRUPT, c_delta_short),
    C("delta-extension-checksum", 'X', CHECKSUM, c_delta_ext_csum),
    C("delta-depth-0", 'X', CORRUPT, c_delta_depth0),
    C("delta-depth-1-parent-not-base", 'X', CORRUPT, c_delta_depth1_not_base),
    C("delta-deep-parent-is-base", 'X', CORRUPT, c_delta_deep_parent_base),
    C("delta-extension-reserved", 'X', CORRUPT, c_delta_reserved),
    C("delta-data-in-header", 'X', CORRUPT, c_delta_data_in_header),
    C("tombstone-in-base", 'S', VERSION, c_tombstone_in_base),
    C("delta-layer-flag-2", 'X', VERSION, c_delta_layer_flag2),
    C("tombstone-with-content", 'X', CORRUPT, c_tombstone_content),
    C("tombstone-with-name", 'X', CORRUPT, c_tombstone_name),
    C("tombstone-with-metadata", 'X', CORRUPT, c_tombstone_meta),
    C("tombstone-checksum", 'X', CORRUPT, c_tombstone_checksum),
};

static void gen_hostile(const char *tests, const bases *b) {
  char dir[4096], path[4096];
  FMT(dir, "%s/hostile/files", tests);
  mkdir_p(dir);
  remove_regions(dir);
  FMT(path, "%s/EXPECTED.tsv", dir);
  FILE *tsv = fopen(path, "w");
  if (tsv == NULL)
    die("%s: %s", path, strerror(errno));
  fprintf(tsv, "# Generated by tests/hostile/gen_hostile.c; do not edit.\n"
               "# file\terror\tsubstring of strata_last_error_detail()\n");
  size_t count = sizeof cases / sizeof cases[0];
  for (size_t c = 0; c < count; c++) {
    const hcase *hc = &cases[c];
    const image *base = hc->base == 'D'   ? &b->dense
                        : hc->base == 'S' ? &b->sparse
                        : hc->base == 'W' ? &b->wide
                        : hc->base == 'T' ? &b->tail
                        : hc->base == 'U' ? &b->unpacked
                        : hc->base == 'X' ? &b->delta
                                          : &b->empty;
    image m = copy_image(*base);
    char sub[512];
    fix_checksums(&m, hc->fn(&m, sub, sizeof sub));
    char file[128];
    FMT(file, "%02zu-%s.region", c + 1, hc->name);
    FMT(path, "%s/%s", dir, file);
    if (m.len > 8192)
      die("%s: %zu bytes; fixtures must stay under 8 KiB", file, m.len);
    write_all(path, m.p, m.len);
    fprintf(tsv, "%s\t%s\t%s\n", file, strata_err_name(hc->err), sub);
    /* Check at once that the file fails for the intended reason, as
     * test_hostile checks it: with the whole index checked at open (a lazy
     * open leaves an entry's error to its first use, so fixture 05 could
     * not be generated again). */
    strata_region *r = NULL;
    int rc = strata_region_open(path, STRATA_OPEN_CHECK_INDEX, &r);
    const char *detail = strata_last_error_detail();
    if (rc != hc->err || strstr(detail, sub) == NULL)
      die("%s: got %s \"%s\", wanted %s \"%s\"", file, strata_err_name(rc),
          rc ? detail : "", strata_err_name(hc->err), sub);
    free(m.p);
  }
  fclose(tsv);
  printf("gen_hostile: %zu hostile fixtures in %s\n", count, dir);
}

/* ---- golden files ------------------------------------------------------- */

static void hex(FILE *f, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%02x", p[i]);
}

/* Writes the image to dir/file and lists it in EXPECTED.txt: a region
 * line; for a delta file a delta line naming `base_file`; then its layers
 * (and tombstones) in ascending id order, as iteration returns them. */
static void golden_list(FILE *out, const char *dir, const char *file, image im,
                        const char *base_file) {
  char path[4096];
  FMT(path, "%s/%s", dir, file);
  write_all(path, im.p, im.len);
  free(im.p);
  strata_region *r;
  CHECK(strata_region_open(path, 0, &r));
  strata_region_info info;
  CHECK(strata_region_info_get(r, &info));
  fprintf(out,
          "region\t%s\t%" PRIu64 "\t%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu32
          "\n",
          file, info.id, info.name, info.metadata, info.layer_count, info.flags,
          info.data_align);
  strata_region_delta_info d;
  if (strata_region_delta(r, &d) == 0)
    fprintf(out, "delta\t%s\t%016" PRIx64 "\t%016" PRIx64 "\t%" PRIu32 "\t%s\n",
            file, d.parent_checksum, d.base_checksum, d.depth, base_file);
  strata_region_iter it;
  strata_layer ly;
  int rc;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &ly)) > 0) {
    if (ly.flags & STRATA_LAYER_TOMBSTONE) {
      fprintf(out, "tombstone\t%s\t%" PRIu64 "\n", file, ly.id);
      continue;
    }
    fprintf(out, "layer\t%s\t%" PRIu64 "\t%s\t%s\t%" PRIu64 "\t", file, ly.id,
            ly.name ? ly.name : "", ly.metadata ? ly.metadata : "", ly.size);
    hex(out, ly.data, (size_t)ly.size);
    fprintf(out, "\n");
  }
  CHECK(rc);
  strata_region_close(r);
}

static void golden_one(FILE *out, const char *dir, const char *file,
                       uint64_t region_id, const char *name, const char *meta,
                       uint32_t align, const layer_spec *l, size_t n,
                       uint64_t want_flags) {
  image im = write_region(file, region_id, name, meta, align, l, n);
  if (strata__rd64(im.p + STRATA__H_FLAGS) != want_flags)
    die("%s: header flags %" PRIu64 ", wanted %" PRIu64, file,
        strata__rd64(im.p + STRATA__H_FLAGS), want_flags);
  golden_list(out, dir, file, im, NULL);
}

/* The format 1.1 golden file: a delta of depth 1 over v1-dense.region
 * (its parent and base are that file's header checksum): layer 1001
 * changed, 1003 removed (a tombstone), 1006 added. Its ids are sparse. */
static void golden_delta(FILE *out, const char *dir) {
  char path[4096];
  FMT(path, "%s/v1-dense.region", dir);
  image base = read_all(path);
  uint64_t sum = strata__rd64(base.p + STRATA__H_HEADER_CSUM);
  free(base.p);
  const char *changed = "changed in the delta";
  layer_spec l[] = {
      {1001, "zeros", "{\"changed\":true}", changed, strlen(changed)},
      {1003, NULL, NULL, TOMBSTONE, 0},
      {1006, "added", NULL, "new", 3},
  };
  const char *file = "v1.1-delta.region";
  image im = write_delta(file, 1, "golden-dense", "{\"golden\":\"delta\"}", 64,
                         sum, sum, 1, l, sizeof l / sizeof l[0]);
  golden_list(out, dir, file, im, "v1-dense.region");
}

static void gen_golden(const char *tests) {
  char dir[4096], path[4096];
  FMT(dir, "%s/hostile/golden", tests);
  mkdir_p(dir);
  FMT(path, "%s/EXPECTED.txt", dir);
  FILE *out = fopen(path, "w");
  if (out == NULL)
    die("%s: %s", path, strerror(errno));
  fprintf(out,
          "# Golden region files of format 1.0, written by Strata 0.1.0,\n"
          "# and a delta file of format 1.1, written by Strata 0.2.0\n"
          "# (tests/hostile/gen_hostile.c). Every later version must still\n"
          "# open them and find exactly this. Fields are tab-separated:\n"
          "# region FILE ID NAME METADATA LAYER_COUNT FLAGS DATA_ALIGN\n"
          "# layer  FILE ID NAME METADATA SIZE CONTENT_HEX\n"
          "# delta  FILE PARENT_HEX BASE_HEX DEPTH BASE_FILE (delta files)\n"
          "# tombstone FILE ID (delta files)\n"
          "# (an empty NAME or METADATA field means the layer has none)\n");

  static uint8_t bytes[256], zeros[100];
  for (int i = 0; i < 256; i++)
    bytes[i] = (uint8_t)i;
  static char xs[66];
  memset(xs, 'x', 65);
  const char *text = "Strata golden fixture: dense region.\n";
  const char *uni = "\xe2\x98\x83 snow, \xe6\x97\xa5\xe6\x9c\xac, "
                    "\xf0\x9f\x99\x82 emoji";
  layer_spec dense[] = {
      {1000, "readme", "{\"type\":\"text\"}", text, strlen(text)},
      {1001, "zeros", NULL, zeros, sizeof zeros},
      {1002, NULL, "{\"k\":[1,2,3]}", bytes, sizeof bytes},
      {1003, "empty", "{}", "", 0},
      {1004, "\x75\xcc\x88nicode-\xe5\x90\x8d\xe5\x89\x8d",
       "{\"emoji\":\"\xf0\x9f\x99\x82\"}", uni, strlen(uni)},
      {1005, "last", NULL, xs, 65},
  };
  size_t nd = sizeof dense / sizeof dense[0];
  /* Added in id order: packed locators (flags 3). */
  golden_one(out, dir, "v1-dense.region", 1, "golden-dense",
             "{\"golden\":true,\"version\":1}", 64, dense, nd,
             STRATA_REGION_DENSE_IDS | STRATA_REGION_PACKED_LOCATORS);
  /* The same layers added out of id order: {offset, size} locators
   * (flags 1). */
  layer_spec shuffled[sizeof dense / sizeof dense[0]];
  static const size_t order[] = {3, 0, 5, 1, 4, 2};
  for (size_t i = 0; i < nd; i++)
    shuffled[i] = dense[order[i]];
  golden_one(out, dir, "v1-dense-unpacked.region", 2, "golden-dense-unpacked",
             "{\"golden\":true,\"packed\":false}", 64, shuffled, nd,
             STRATA_REGION_DENSE_IDS);

  static char snames[8][16], smeta[8][32], sdata[8][48];
  layer_spec sparse[8];
  for (int i = 0; i < 8; i++) {
    snprintf(snames[i], sizeof snames[i], "layer-%d", i + 1);
    snprintf(smeta[i], sizeof smeta[i], "{\"n\":%d}", i + 1);
    snprintf(sdata[i], sizeof sdata[i], "sparse golden %d %.*s", i + 1, 3 * i,
             "abcdefghijklmnopqrstuvwxyz");
    sparse[i] = (layer_spec){
        (uint64_t)(i + 1) * SPARSE_STEP, i % 3 == 2 ? NULL : snames[i],
        i % 4 == 3 ? NULL : smeta[i], sdata[i], i == 5 ? 0 : strlen(sdata[i])};
  }
  golden_one(out, dir, "v1-sparse.region", UINT64_C(0xFEEDFACECAFEBEEF),
             "golden-sparse", NULL, 16, sparse, 8, 0);
  golden_delta(out, dir);
  fclose(out);
  printf("gen_hostile: golden files in %s\n", dir);
}

static size_t case_index(const char *name) {
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    if (strcmp(cases[c].name, name) == 0)
      return c;
  die("no case %s", name);
  return 0;
}

/* Small valid regions as fuzz seeds: the bases plus a one-layer region. */
static void gen_seeds(const char *tests, const bases *b) {
  char dir[4096], path[4096];
  FMT(dir, "%s/fuzz/corpus/region", tests);
  mkdir_p(dir);
  remove_regions(dir); /* seeds of renamed or dropped cases */
  struct {
    const char *name;
    const image *im;
  } seeds[] = {{"valid-dense.region", &b->dense},
               {"valid-dense-unpacked.region", &b->unpacked},
               {"valid-sparse.region", &b->sparse},
               {"valid-wide.region", &b->wide},
               {"valid-empty.region", &b->empty},
               {"valid-tail.region", &b->tail},
               {"valid-delta.region", &b->delta}};
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    FMT(path, "%s/%s", dir, seeds[i].name);
    write_all(path, seeds[i].im->p, seeds[i].im->len);
  }
  /* The golden files and a few near-valid hostile files, so that the fuzzer
   * starts next to the interesting checks. */
  const char *copies[][2] = {
      {"hostile/golden/v1-dense.region", "golden-v1-dense.region"},
      {"hostile/golden/v1-dense-unpacked.region",
       "golden-v1-dense-unpacked.region"},
      {"hostile/golden/v1-sparse.region", "golden-v1-sparse.region"},
      {"hostile/golden/v1.1-delta.region", "golden-v1.1-delta.region"},
  };
  for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
    FMT(path, "%s/%s", tests, copies[i][0]);
    image c = read_all(path);
    FMT(path, "%s/%s", dir, copies[i][1]);
    write_all(path, c.p, c.len);
    free(c.p);
  }
  const char *hostile[] = {
      "slots-swapped",        "pilot-changed",
      "slot-too-many-used",   "slot-too-few-used",
      "dense-locator-offset", "packed-position-start",
      "packed-position-end",  "empty-slot-locator-offset",
      "content-len-past-end", "name-record-outside-bucket",
      "name-bucket-over-64",  "sparse-duplicate-id",
      "tombstone-checksum",   "delta-extension-reserved",
  };
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    size_t c = case_index(hostile[i]);
    FMT(path, "%s/hostile/files/%02zu-%s.region", tests, c + 1, hostile[i]);
    image im = read_all(path);
    FMT(path, "%s/hostile-%s.region", dir, hostile[i]);
    write_all(path, im.p, im.len);
    free(im.p);
  }
  layer_spec one = {42, "one", "{\"a\":1}", "x", 1};
  image im = write_region("one.region", 1, "one", NULL, 16, &one, 1);
  FMT(path, "%s/valid-one.region", dir);
  write_all(path, im.p, im.len);
  free(im.p);
  printf("gen_hostile: fuzz seeds in %s\n", dir);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TESTS_DIR\n", argv[0]);
    return 2;
  }
  const char *base = getenv("TMPDIR");
  FMT(g_tmp, "%s/gen-hostile-XXXXXX", base && base[0] ? base : "/tmp");
  if (mkdtemp(g_tmp) == NULL)
    die("mkdtemp: %s", strerror(errno));
  bases b = {base_dense(), base_sparse(),         base_wide(), base_empty(),
             base_tail(),  base_dense_unpacked(), base_delta()};
  gen_hostile(argv[1], &b);
  gen_golden(argv[1]);
  gen_seeds(argv[1], &b);
  free(b.dense.p);
  free(b.sparse.p);
  free(b.wide.p);
  free(b.empty.p);
  free(b.tail.p);
  free(b.unpacked.p);
  free(b.delta.p);
  const char *names[] = {
      "dense.region",     "dense-unpacked.region", "sparse.region",
      "wide.region",      "empty.region",          "one.region",
      "tail.region",      "v1-dense.region",       "v1-dense-unpacked.region",
      "v1-sparse.region", "delta.region",          "v1.1-delta.region"};
  char path[4096];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    FMT(path, "%s/%s", g_tmp, names[i]);
    unlink(path);
  }
  rmdir(g_tmp);
  return 0;
}
