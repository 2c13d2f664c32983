/* Building a region's index sections at commit: sort the entries, choose
 * dense or hashed id lookup, pick a hash seed that keeps every bucket short,
 * and serialize INDEX, ID_BUCKETS, ID_ORDER, NAME_BUCKETS, NAME_INDEX and
 * STRINGS exactly as docs/FORMAT.md lays them out. */
#include <inttypes.h>
#include <stdlib.h>

#include "writer_internal.h"

/* How many seeds to try before giving up on keeping buckets short. With a
 * good hash the longest of 2^32 buckets holds about 13 entries, so a second
 * seed is only ever needed for ids chosen to collide. */
#define SEED_TRIES 16

int strata__buf_put(strata__buf *b, const void *p, uint64_t len) {
  if (len > UINT64_MAX - b->len)
    return STRATA_E_NOMEM;
  if (b->len + len > b->cap) {
    uint64_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len)
      cap *= 2;
    uint8_t *q = realloc(b->p, (size_t)cap);
    if (q == NULL)
      return STRATA_E_NOMEM;
    b->p = q;
    b->cap = cap;
  }
  if (len)
    memcpy(b->p + b->len, p, (size_t)len);
  b->len += len;
  return 0;
}

static int pad_to(strata__buf *b, uint64_t base, uint64_t align) {
  static const uint8_t zeros[64];
  while ((base + b->len) % align != 0)
    STRATA__TRY(strata__buf_put(b, zeros, 1));
  (void)zeros;
  return 0;
}

static int cmp_id(const void *a, const void *b) {
  uint64_t x = ((const strata__wentry *)a)->id;
  uint64_t y = ((const strata__wentry *)b)->id;
  return (x > y) - (x < y);
}

static int cmp_hash(const void *a, const void *b) {
  uint64_t x = ((const strata__wentry *)a)->hash;
  uint64_t y = ((const strata__wentry *)b)->hash;
  return (x > y) - (x < y);
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

/* splitmix64: the sequence of seeds tried after seed 0. */
static uint64_t next_seed(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Bucket start table for `count` sorted hashes (hash_at(i) ascending). */
static int bucket_table(uint32_t **out, unsigned bits, uint64_t count,
                        const uint64_t *hashes, bool *too_long) {
  uint64_t nb = 1ull << bits;
  uint32_t *t = calloc(nb + 1, sizeof *t);
  if (t == NULL)
    return STRATA_E_NOMEM;
  uint64_t i = 0;
  *too_long = false;
  for (uint64_t k = 0; k < nb; k++) {
    t[k] = (uint32_t)i;
    while (i < count && strata__bucket(hashes[i], bits) == k)
      i++;
    if (i - t[k] > STRATA__MAX_BUCKET)
      *too_long = true;
  }
  t[nb] = (uint32_t)count;
  *out = t;
  return 0;
}

static int put_u32_table(strata__buf *b, const uint32_t *t, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    uint8_t v[4];
    strata__wr32(v, t[i]);
    STRATA__TRY(strata__buf_put(b, v, 4));
  }
  return 0;
}

typedef struct index_plan {
  bool dense;
  uint64_t seed;
  uint32_t *id_buckets;   /* sparse only */
  name_rec *names;        /* m records */
  uint64_t m;
  uint32_t *name_buckets; /* m > 0 only */
} index_plan;

static void plan_free(index_plan *p) {
  free(p->id_buckets);
  free(p->names);
  free(p->name_buckets);
}

/* Tries one seed: hashes, sorts and buckets ids (sparse) and names.
 * Sets *ok to false when a bucket would be too long. */
static int plan_with_seed(strata_writer *w, index_plan *p, bool *ok) {
  uint64_t n = w->n;
  *ok = true;
  uint64_t *hashes = malloc((n ? n : 1) * sizeof *hashes);
  if (hashes == NULL)
    return STRATA_E_NOMEM;
  bool too_long = false;
  int rc = 0;
  if (!p->dense) {
    for (uint64_t i = 0; i < n; i++)
      w->entries[i].hash = strata__id_hash(w->entries[i].id, p->seed);
    qsort(w->entries, (size_t)n, sizeof *w->entries, cmp_hash);
    for (uint64_t i = 0; i < n; i++)
      hashes[i] = w->entries[i].hash;
    free(p->id_buckets);
    p->id_buckets = NULL;
    rc = bucket_table(&p->id_buckets, strata__ceil_log2(n), n, hashes,
                      &too_long);
    if (rc == 0 && too_long)
      *ok = false;
  }
  if (rc == 0 && *ok && p->m > 0) {
    uint64_t j = 0;
    for (uint64_t i = 0; i < n; i++) {
      const strata__wentry *e = &w->entries[i];
      if (e->name_len == 0)
        continue;
      p->names[j].hash = strata__name_hash(
          (const char *)w->strings.p + e->name_off, e->name_len, p->seed);
      p->names[j].entry = (uint32_t)i;
      j++;
    }
    qsort(p->names, (size_t)p->m, sizeof *p->names, cmp_name_rec);
    for (uint64_t k = 0; k < p->m; k++)
      hashes[k] = p->names[k].hash;
    free(p->name_buckets);
    p->name_buckets = NULL;
    rc = bucket_table(&p->name_buckets, strata__ceil_log2(p->m), p->m, hashes,
                      &too_long);
    if (rc == 0 && too_long)
      *ok = false;
  }
  free(hashes);
  return rc;
}

static int make_plan(strata_writer *w, index_plan *p) {
  uint64_t n = w->n;
  if (n > 0) /* qsort() must not see the NULL array of an empty region */
    qsort(w->entries, (size_t)n, sizeof *w->entries, cmp_id);
  p->dense = n == 0 || w->entries[n - 1].id - w->entries[0].id == n - 1;
  for (uint64_t i = 0; i < n; i++)
    p->m += w->entries[i].name_len != 0;
  if (p->m > 0 && (p->names = calloc(p->m, sizeof *p->names)) == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the name index",
                        w->path);
  uint64_t state = 0;
  p->seed = 0;
  for (int t = 0; t < SEED_TRIES; t++) {
    bool ok;
    int rc = plan_with_seed(w, p, &ok);
    if (rc < 0)
      return strata__fail(rc, "%s: building the index", w->path);
    if (ok)
      return 0;
    p->seed = next_seed(&state);
  }
  return strata__fail(STRATA_E_LIMIT,
                      "%s: no hash seed out of %d keeps every bucket within "
                      "%u entries (ids or names built to collide?)",
                      w->path, SEED_TRIES, STRATA__MAX_BUCKET);
}

static int put_entry(strata__buf *out, const strata__wentry *e,
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
  return strata__buf_put(out, b, sizeof b);
}

/* Copies a string (and its NUL) from the arena into STRINGS; returns its
 * offset there in *off (0 for an empty string, which is not stored). */
static int put_string(strata__buf *strings, const strata__buf *arena,
                      uint64_t arena_off, uint64_t len, uint64_t *off) {
  *off = 0;
  if (len == 0)
    return 0;
  *off = strings->len;
  return strata__buf_put(strings, arena->p + arena_off, len + 1);
}

static void set_section(uint8_t *h, int s, uint64_t off, uint64_t size) {
  strata__wr64(h + STRATA__H_SECTIONS + 16 * s, off);
  strata__wr64(h + STRATA__H_SECTIONS + 16 * s + 8, size);
}

static int serialize(strata_writer *w, const index_plan *p, uint64_t index_off,
                     uint8_t *h, strata__buf *out) {
  uint64_t n = w->n;
  strata__buf strings = {0};
  int rc = 0;
  /* STRINGS is laid out in entry order so that open reads it linearly. */
  uint64_t rname_off = 0, rmeta_off = 0;
  rc = strata__buf_put(&strings, w->name, strlen(w->name) + 1);
  uint64_t rmeta_len = w->metadata ? strlen(w->metadata) : 0;
  if (rc == 0 && rmeta_len) {
    rmeta_off = strings.len;
    rc = strata__buf_put(&strings, w->metadata, rmeta_len + 1);
  }
  uint64_t sec_off[STRATA__S_COUNT] = {0}, sec_len[STRATA__S_COUNT] = {0};
  sec_off[STRATA__S_INDEX] = index_off;
  for (uint64_t i = 0; rc == 0 && i < n; i++) {
    const strata__wentry *e = &w->entries[i];
    uint64_t no, mo;
    rc = put_string(&strings, &w->strings, e->name_off, e->name_len, &no);
    if (rc == 0)
      rc = put_string(&strings, &w->strings, e->meta_off, e->meta_len, &mo);
    if (rc == 0)
      rc = put_entry(out, e, no, mo);
  }
  sec_len[STRATA__S_INDEX] = n * STRATA__ENTRY_SIZE;
  if (rc == 0 && !p->dense) {
    sec_off[STRATA__S_ID_BUCKETS] = index_off + out->len;
    uint64_t nb = (1ull << strata__ceil_log2(n)) + 1;
    rc = put_u32_table(out, p->id_buckets, nb);
    sec_len[STRATA__S_ID_BUCKETS] = nb * 4;
    if (rc == 0)
      rc = pad_to(out, index_off, 8);
    /* ID_ORDER: entry numbers in ascending id order. */
    uint32_t *order = rc == 0 ? malloc(n * sizeof *order) : NULL;
    if (rc == 0 && order == NULL)
      rc = STRATA_E_NOMEM;
    if (rc == 0) {
      /* Entries are in hash order; sorting (id, position) pairs recovers
       * id order without disturbing them. */
      strata__wentry *tmp = malloc(n * sizeof *tmp);
      if (tmp == NULL) {
        rc = STRATA_E_NOMEM;
      } else {
        for (uint64_t i = 0; i < n; i++) {
          tmp[i].id = w->entries[i].id;
          tmp[i].hash = i;
        }
        qsort(tmp, (size_t)n, sizeof *tmp, cmp_id);
        for (uint64_t i = 0; i < n; i++)
          order[i] = (uint32_t)tmp[i].hash;
        free(tmp);
        sec_off[STRATA__S_ID_ORDER] = index_off + out->len;
        rc = put_u32_table(out, order, n);
        sec_len[STRATA__S_ID_ORDER] = n * 4;
      }
    }
    free(order);
  } else {
    sec_off[STRATA__S_ID_BUCKETS] = sec_off[STRATA__S_ID_ORDER] =
        index_off + out->len;
  }
  if (rc == 0)
    rc = pad_to(out, index_off, 8);
  if (rc == 0 && p->m > 0) {
    sec_off[STRATA__S_NAME_BUCKETS] = index_off + out->len;
    uint64_t nb = (1ull << strata__ceil_log2(p->m)) + 1;
    rc = put_u32_table(out, p->name_buckets, nb);
    sec_len[STRATA__S_NAME_BUCKETS] = nb * 4;
    if (rc == 0)
      rc = pad_to(out, index_off, 8);
    sec_off[STRATA__S_NAME_INDEX] = index_off + out->len;
    for (uint64_t j = 0; rc == 0 && j < p->m; j++) {
      uint8_t rec[STRATA__NAME_REC_SIZE] = {0};
      strata__wr64(rec, p->names[j].hash);
      strata__wr32(rec + 8, p->names[j].entry);
      rc = strata__buf_put(out, rec, sizeof rec);
    }
    sec_len[STRATA__S_NAME_INDEX] = p->m * STRATA__NAME_REC_SIZE;
  } else {
    sec_off[STRATA__S_NAME_BUCKETS] = sec_off[STRATA__S_NAME_INDEX] =
        index_off + out->len;
  }
  if (rc == 0)
    rc = pad_to(out, index_off, 8);
  sec_off[STRATA__S_STRINGS] = index_off + out->len;
  sec_len[STRATA__S_STRINGS] = strings.len;
  if (rc == 0)
    rc = strata__buf_put(out, strings.p, strings.len);
  free(strings.p);
  if (rc < 0)
    return strata__fail(rc, "%s: building the index", w->path);

  sec_off[STRATA__S_DATA] = w->data_off;
  sec_len[STRATA__S_DATA] = index_off - w->data_off; /* trailing pad incl. */
  for (int s = 0; s < STRATA__S_COUNT; s++)
    set_section(h, s, sec_off[s], sec_len[s]);
  strata__wr64(h + STRATA__H_FLAGS, p->dense ? STRATA_REGION_DENSE_IDS : 0);
  strata__wr64(h + STRATA__H_LAYER_COUNT, n);
  strata__wr64(h + STRATA__H_NAMED_COUNT, p->m);
  strata__wr32(h + STRATA__H_ID_BITS, p->dense ? 0 : strata__ceil_log2(n));
  strata__wr32(h + STRATA__H_NAME_BITS,
               p->m ? strata__ceil_log2(p->m) : 0);
  strata__wr64(h + STRATA__H_HASH_SEED, p->seed);
  strata__wr32(h + STRATA__H_RNAME_LEN, (uint32_t)strlen(w->name));
  strata__wr64(h + STRATA__H_RNAME_OFF, rname_off);
  strata__wr64(h + STRATA__H_RMETA_OFF, rmeta_off);
  strata__wr64(h + STRATA__H_RMETA_LEN, rmeta_len);
  return 0;
}

int strata__writer_build_index(strata_writer *w, uint64_t index_off,
                               uint8_t h[STRATA__HEADER_SIZE],
                               strata__buf *out) {
  index_plan p = {0};
  int rc = make_plan(w, &p);
  if (rc == 0)
    rc = serialize(w, &p, index_off, h, out);
  plan_free(&p);
  return rc;
}
