/* Building a region's index sections at commit: sort the entries, choose
 * dense (direct indexing) or sparse (perfect hash) id lookup, pick a hash
 * seed that works, and serialize INDEX, LOCATORS, PILOTS, ID_ORDER,
 * NAME_BUCKETS, NAME_INDEX and STRINGS exactly as docs/FORMAT.md lays them
 * out. */
#include <inttypes.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "writer/writer_internal.h"

/* How many seeds to try, seed 0 included, before giving up. With a good
 * hash the first seed works unless ids or names were chosen to collide
 * under it. */
#define SEED_TRIES 16

int strata__phash_build(const uint64_t *hashes, uint64_t n, uint16_t *pilots,
                        uint64_t *slot);

/* Zero bytes up to the next multiple of `align` (a power of two, at most
 * 64) of the file offset. */
static int pad_to(strata_writer *w, uint64_t align) {
  static const uint8_t zeros[64];
  return strata__writer_put(w, zeros, (size_t)((0 - w->pos) & (align - 1)));
}

typedef struct name_rec {
  uint64_t hash;
  uint32_t entry;
} name_rec;

static int cmp_name_rec(const void *a, const void *b) {
  const name_rec *x = a, *y = b;
  if (x->hash != y->hash)
    return (x->hash > y->hash) - (x->hash < y->hash);
  return (x->entry > y->entry) - (x->entry < y->entry);
}

/* The seeds tried after seed 0. Seed 0 first keeps the output of the usual
 * case reproducible; later seeds are random (getrandom()), so ids built to
 * defeat a known list of seeds cannot make every try fail. */
static uint64_t next_seed(void) {
  uint64_t seed;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = strata__mix64((uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32);
  }
  return seed;
}

static int put_u64(strata_writer *w, uint64_t v) {
  uint8_t x[8];
  strata__wr64(x, v);
  return strata__writer_put(w, x, 8);
}

static int put_u32(strata_writer *w, uint32_t v) {
  uint8_t x[4];
  strata__wr32(x, v);
  return strata__writer_put(w, x, 4);
}

typedef struct index_plan {
  bool dense;
  bool packed; /* dense, contents in id order: n + 1 positions */
  uint64_t seed;
  /* The entries in id order (strata__writer_id_order()); NULL when
   * w->entries is in that order. */
  strata__id_pos *order;
  uint16_t *pilots;   /* sparse: pilot_count(n) */
  uint32_t *id_order; /* sparse: entry numbers in id order */
  name_rec *names;    /* m records */
  uint64_t m;
  uint32_t *name_buckets; /* m > 0 only: 2^bits + 1 starts */
} index_plan;

static void plan_free(index_plan *p) {
  free(p->order);
  free(p->pilots);
  free(p->id_order);
  free(p->names);
  free(p->name_buckets);
}

/* The i-th id in ascending order. */
static uint64_t id_at(const strata_writer *w, const index_plan *p, uint64_t i) {
  return p->order != NULL ? p->order[i].id : w->entries[i].id;
}

/* Sparse ids under p->seed: builds the perfect hash, puts the entries in
 * slot order (each remembers its slot in .hash: in the file, its entry
 * number) and records the slots in id order in p->id_order; p->order is
 * then spent (NULL). *ok is false when the seed does not work, and then
 * nothing moved. */
static int place_ids(strata_writer *w, index_plan *p, bool *ok) {
  uint64_t n = w->n;
  uint64_t *hashes = malloc(n * sizeof *hashes);
  uint64_t *slot = malloc(n * sizeof *slot);
  int rc = hashes && slot ? 0 : STRATA_E_NOMEM;
  for (uint64_t i = 0; rc == 0 && i < n; i++)
    hashes[i] = strata__id_hash(id_at(w, p, i), p->seed);
  if (rc == 0)
    rc = strata__phash_build(hashes, n, p->pilots, slot);
  *ok = rc == 0;
  if (rc == 1)
    rc = 0;
  if (rc == 0 && *ok) {
    /* slot[i] is the slot of the i-th id: the id order as it is. The
     * slots are distinct, so their order needs no sort. */
    for (uint64_t i = 0; i < n; i++)
      p->id_order[i] = (uint32_t)slot[i];
    rc = strata__writer_order_by_slot(w, p->order, slot, strata__slot_count(n));
    free(p->order);
    p->order = NULL;
  }
  free(hashes);
  free(slot);
  return rc;
}

/* Name records under p->seed, in hash order, with their bucket table.
 * *ok is false when a bucket would hold too many records. */
static int place_names(strata_writer *w, index_plan *p, bool *ok) {
  *ok = true;
  if (p->m == 0)
    return 0;
  uint64_t j = 0;
  for (uint64_t i = 0; i < w->n; i++) {
    const strata__wentry *e = &w->entries[i];
    if (e->name_len == 0)
      continue;
    p->names[j].hash = strata__name_hash(
        (const char *)w->strings.p + e->name_off, e->name_len, p->seed);
    /* The record names the entry number in the file: the slot when the
     * ids are sparse. */
    p->names[j].entry = (uint32_t)(p->dense ? i : e->hash);
    j++;
  }
  qsort(p->names, (size_t)p->m, sizeof *p->names, cmp_name_rec);
  unsigned bits = strata__ceil_log2(p->m);
  uint64_t nb = 1ull << bits;
  uint64_t r = 0;
  for (uint64_t k = 0; k < nb; k++) {
    p->name_buckets[k] = (uint32_t)r;
    while (r < p->m && strata__bucket(p->names[r].hash, bits) == k)
      r++;
    if (r - p->name_buckets[k] > STRATA__MAX_BUCKET)
      *ok = false;
  }
  p->name_buckets[nb] = (uint32_t)p->m;
  return 0;
}

/* p->order for the entries as they are now (a seed that placed the ids
 * but not the names leaves them in slot order). */
static int order_ids(strata_writer *w, index_plan *p) {
  free(p->order);
  int rc = strata__writer_id_order(w, &p->order);
  if (rc == STRATA_E_NOMEM)
    return strata__fail(rc, "%s: sorting the index", w->path);
  return rc; /* a repeated id comes with its detail */
}

static int make_plan(strata_writer *w, index_plan *p) {
  uint64_t n = w->n;
  STRATA__TRY(order_ids(w, p));
  p->dense = n == 0 || id_at(w, p, n - 1) - id_at(w, p, 0) == n - 1;
  /* Dense entries are written in id order; sparse ones move once, into
   * slot order, when their ids are placed. */
  if (p->dense) {
    STRATA__FAIL_IF(strata__writer_apply_order(w, p->order) < 0, STRATA_E_NOMEM,
                    "%s: sorting the index", w->path);
    free(p->order);
    p->order = NULL;
  }
  p->packed = p->dense && !w->out_of_order;
  for (uint64_t i = 0; i < n; i++)
    p->m += w->entries[i].name_len != 0;
  bool nomem = false;
  if (!p->dense) {
    STRATA__FAIL_IF(n > STRATA__MAX_SPARSE_LAYERS, STRATA_E_LIMIT,
                    "%s: %" PRIu64 " layers with sparse ids (at most %" PRIu64
                    ")",
                    w->path, n, STRATA__MAX_SPARSE_LAYERS);
    p->pilots = calloc(strata__pilot_count(n), sizeof *p->pilots);
    p->id_order = malloc(n * sizeof *p->id_order);
    nomem |= !p->pilots || !p->id_order;
  }
  if (p->m > 0) {
    p->names = calloc(p->m, sizeof *p->names);
    p->name_buckets =
        calloc((1ull << strata__ceil_log2(p->m)) + 1, sizeof *p->name_buckets);
    nomem |= !p->names || !p->name_buckets;
  }
  STRATA__FAIL_IF(nomem, STRATA_E_NOMEM, "%s: allocating the index", w->path);
  if (w->fresh_seed)
    p->seed = next_seed();
  for (int t = 0; t < SEED_TRIES; t++) {
    bool ok = true;
    int rc = p->dense ? 0 : place_ids(w, p, &ok);
    if (rc == 0 && ok)
      rc = place_names(w, p, &ok);
    if (rc < 0)
      return strata__fail(rc, "%s: building the index", w->path);
    if (ok)
      return 0;
    if (!p->dense && p->order == NULL)
      STRATA__TRY(order_ids(w, p));
    p->seed = next_seed();
  }
  return strata__fail(STRATA_E_LIMIT,
                      "%s: no hash seed out of %d places every id and name "
                      "(ids or names built to collide?)",
                      w->path, SEED_TRIES);
}

static int put_entry(strata_writer *w, const strata__wentry *e,
                     uint64_t name_off, uint64_t meta_off) {
  uint8_t b[STRATA__ENTRY_SIZE] = {0};
  strata__wr64(b + STRATA__E_ID, e->id);
  strata__wr64(b + STRATA__E_OFFSET, e->offset);
  strata__wr64(b + STRATA__E_SIZE, e->size);
  strata__wr64(b + STRATA__E_CHECKSUM, e->checksum);
  strata__wr64(b + STRATA__E_NAME_OFF, name_off);
  strata__wr64(b + STRATA__E_META_OFF, meta_off);
  strata__wr32(b + STRATA__E_NAME_LEN, e->name_len);
  strata__wr32(b + STRATA__E_META_LEN, e->meta_len);
  strata__wr32(b + STRATA__E_FLAGS, e->flags);
  return strata__writer_put(w, b, sizeof b);
}

/* The entry of an unused slot: all zero but for its flags. */
static int put_empty_entry(strata_writer *w) {
  uint8_t b[STRATA__ENTRY_SIZE] = {0};
  strata__wr32(b + STRATA__E_FLAGS, STRATA__EMPTY_ENTRY);
  return strata__writer_put(w, b, sizeof b);
}

/* A string's offset in STRINGS (0 for an empty string, which is not
 * stored), advancing *len, the section's length so far, past it and its
 * NUL. STRINGS is laid out in entry order, so these offsets are known as
 * the entries are written, before the section itself. */
static uint64_t string_at(uint64_t *len, uint64_t str_len) {
  if (str_len == 0)
    return 0;
  uint64_t off = *len;
  *len += str_len + 1;
  return off;
}

/* Writes a string of the writer's arena with its NUL into STRINGS. */
static int put_arena_string(strata_writer *w, uint64_t off, uint64_t len) {
  return len ? strata__writer_put(w, w->strings.p + off, (size_t)len + 1) : 0;
}

static void set_section(uint8_t *h, int s, uint64_t off, uint64_t size) {
  strata__wr64(h + STRATA__H_SECTIONS + 16 * s, off);
  strata__wr64(h + STRATA__H_SECTIONS + 16 * s + 8, size);
}

static int serialize(strata_writer *w, const index_plan *p, uint64_t index_off,
                     uint8_t *h) {
  uint64_t n = w->n;
  int rc = 0;
  /* STRINGS is laid out in entry order so that open reads it linearly:
   * the region's name and metadata, then each entry's name and metadata.
   * It is written last, from the writer's arena, in the same order; here
   * only its length so far (str_len) gives each string its offset. */
  uint64_t rname_len = strlen(w->name), str_len = 0;
  uint64_t rmeta_len = w->metadata ? strlen(w->metadata) : 0;
  uint64_t rname_off = string_at(&str_len, rname_len);
  uint64_t rmeta_off = string_at(&str_len, rmeta_len);
  uint64_t sec_off[STRATA__S_COUNT] = {0}, sec_len[STRATA__S_COUNT] = {0};
  /* INDEX, then LOCATORS: one entry and one locator per layer (dense) or
   * per slot (sparse; w->entries is in slot order, slots in .hash). */
  uint64_t count = p->dense ? n : strata__slot_count(n), k = 0;
  sec_off[STRATA__S_INDEX] = index_off;
  for (uint64_t i = 0; rc == 0 && i < count; i++) {
    if (!p->dense && (k >= n || w->entries[k].hash != i)) {
      rc = put_empty_entry(w);
      continue;
    }
    const strata__wentry *e = &w->entries[k++];
    uint64_t no = string_at(&str_len, e->name_len);
    uint64_t mo = string_at(&str_len, e->meta_len);
    rc = put_entry(w, e, no, mo);
  }
  sec_len[STRATA__S_INDEX] = count * STRATA__ENTRY_SIZE;
  if (rc == 0)
    rc = pad_to(w, 64);
  sec_off[STRATA__S_LOCATORS] = w->pos;
  k = 0;
  size_t loc_size = p->dense ? STRATA__LOC_SIZE : STRATA__SLOC_SIZE;
  if (rc == 0 && p->packed) {
    /* Positions: 0, then where each layer ends; layer i starts at position
     * i rounded up to the alignment, which is where the writer put it. */
    loc_size = 8;
    rc = put_u64(w, 0);
    for (uint64_t i = 0; rc == 0 && i < n; i++)
      rc = put_u64(w, w->entries[i].offset + w->entries[i].size);
  }
  for (uint64_t i = 0; rc == 0 && !p->packed && i < count; i++) {
    uint8_t loc[STRATA__SLOC_SIZE] = {0};
    if (p->dense || (k < n && w->entries[k].hash == i)) {
      strata__wr64(loc, w->entries[k].offset);
      strata__wr64(loc + 8, w->entries[k].size);
      strata__wr64(loc + 16, w->entries[k].id); /* sparse only */
      k++;
    } else {
      strata__wr64(loc, STRATA__EMPTY_OFFSET);
    }
    rc = strata__writer_put(w, loc, loc_size);
  }
  sec_len[STRATA__S_LOCATORS] = (count + p->packed) * loc_size;
  if (rc == 0)
    rc = pad_to(w, 8);
  sec_off[STRATA__S_PILOTS] = w->pos;
  if (!p->dense) {
    uint64_t r = strata__pilot_count(n);
    for (uint64_t b = 0; rc == 0 && b < r; b++) {
      uint8_t v[2];
      strata__wr16(v, p->pilots[b]);
      rc = strata__writer_put(w, v, 2);
    }
    sec_len[STRATA__S_PILOTS] = r * 2;
    if (rc == 0)
      rc = pad_to(w, 8);
    sec_off[STRATA__S_ID_ORDER] = w->pos;
    for (uint64_t i = 0; rc == 0 && i < n; i++)
      rc = put_u32(w, p->id_order[i]);
    sec_len[STRATA__S_ID_ORDER] = n * 4;
  } else {
    sec_off[STRATA__S_ID_ORDER] = sec_off[STRATA__S_PILOTS];
  }
  if (rc == 0)
    rc = pad_to(w, 8);
  if (rc == 0 && p->m > 0) {
    sec_off[STRATA__S_NAME_BUCKETS] = w->pos;
    uint64_t nb = (1ull << strata__ceil_log2(p->m)) + 1;
    for (uint64_t b = 0; rc == 0 && b < nb; b++)
      rc = put_u32(w, p->name_buckets[b]);
    sec_len[STRATA__S_NAME_BUCKETS] = nb * 4;
    if (rc == 0)
      rc = pad_to(w, 8);
    sec_off[STRATA__S_NAME_INDEX] = w->pos;
    for (uint64_t j = 0; rc == 0 && j < p->m; j++) {
      uint8_t rec[STRATA__NAME_REC_SIZE] = {0};
      strata__wr64(rec, p->names[j].hash);
      strata__wr32(rec + 8, p->names[j].entry);
      rc = strata__writer_put(w, rec, sizeof rec);
    }
    sec_len[STRATA__S_NAME_INDEX] = p->m * STRATA__NAME_REC_SIZE;
  } else {
    sec_off[STRATA__S_NAME_BUCKETS] = sec_off[STRATA__S_NAME_INDEX] = w->pos;
  }
  if (rc == 0)
    rc = pad_to(w, 8);
  sec_off[STRATA__S_STRINGS] = w->pos;
  sec_len[STRATA__S_STRINGS] = str_len;
  if (rc == 0)
    rc = strata__writer_put(w, w->name, (size_t)rname_len + 1);
  if (rc == 0 && rmeta_len)
    rc = strata__writer_put(w, w->metadata, (size_t)rmeta_len + 1);
  for (uint64_t j = 0; rc == 0 && j < n; j++) {
    rc = put_arena_string(w, w->entries[j].name_off, w->entries[j].name_len);
    if (rc == 0)
      rc = put_arena_string(w, w->entries[j].meta_off, w->entries[j].meta_len);
  }
  if (rc < 0)
    return rc;

  sec_off[STRATA__S_DATA] = w->data_off;
  sec_len[STRATA__S_DATA] = index_off - w->data_off; /* trailing pad incl. */
  for (int s = 0; s < STRATA__S_COUNT; s++)
    set_section(h, s, sec_off[s], sec_len[s]);
  strata__wr64(h + STRATA__H_FLAGS,
               (p->dense ? STRATA_REGION_DENSE_IDS : 0) |
                   (p->packed ? STRATA_REGION_PACKED_LOCATORS : 0));
  strata__wr64(h + STRATA__H_LAYER_COUNT, n);
  strata__wr64(h + STRATA__H_NAMED_COUNT, p->m);
  strata__wr64(h + STRATA__H_SLOT_COUNT, p->dense ? 0 : strata__slot_count(n));
  strata__wr64(h + STRATA__H_PILOT_COUNT,
               p->dense ? 0 : strata__pilot_count(n));
  strata__wr32(h + STRATA__H_NAME_BITS, p->m ? strata__ceil_log2(p->m) : 0);
  strata__wr64(h + STRATA__H_HASH_SEED, p->seed);
  strata__wr32(h + STRATA__H_RNAME_LEN, (uint32_t)strlen(w->name));
  strata__wr64(h + STRATA__H_RNAME_OFF, rname_off);
  strata__wr64(h + STRATA__H_RMETA_OFF, rmeta_off);
  strata__wr32(h + STRATA__H_RMETA_LEN, (uint32_t)rmeta_len);
  return 0;
}

int strata__writer_build_index(strata_writer *w, uint64_t index_off,
                               uint8_t h[STRATA__HEADER_SIZE]) {
  index_plan p = {0};
  int rc = make_plan(w, &p);
  if (rc == 0)
    rc = serialize(w, &p, index_off, h);
  plan_free(&p);
  return rc;
}
