/* The content model the crash tests share: what every region holds at
 * every generation, and the digest that names that content.
 *
 * crash_writer moves each region from generation g - 1 to g by putting
 * (or removing) only the layers that change, then crystallizes. The driver
 * that kills it knows nothing of the writer's memory: after a kill it reads
 * the generation from layer 0 of the region file on disk and recomputes,
 * from (region, generation) alone, what every layer must hold. A file that
 * mixed two generations, lost a layer or kept a stale one fails that
 * comparison.
 *
 * Layer 0 ("generation" in named regions) holds g as 8 little-endian bytes
 * and changes at every generation. Data layer i (1..layers) changes at the
 * generations g with (i + g) % period == 0, so its *version*, the
 * generation that last changed it, is g - ((i + g) % period) (1 at most:
 * generation 1 creates every layer). Its size, bytes, name and metadata are
 * derived from (region id, i, version); in a "removable" region one change
 * in four removes the layer instead. */
#ifndef STRATA_CRASH_MODEL_H
#define STRATA_CRASH_MODEL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "strata.h"

typedef struct crash_region_spec {
  uint64_t id;
  const char *name;  /* also the file name: NAME.region */
  uint32_t layers;   /* data layers 1..layers; layer 0 is the generation */
  uint32_t period;   /* a data layer changes every `period` generations */
  uint32_t size_min; /* a data layer holds size_min + [0, size_var) bytes */
  uint32_t size_var;
  bool named;     /* layers have names (which change) and metadata */
  bool removable; /* a change may remove the layer (sparse ids then) */
} crash_region_spec;

/* "large" (48 layers of 48..112 KiB, about 3.8 MiB) makes each of its
 * crystallizations write and fsync enough that the kills often land inside
 * the writer's fsync, rename and directory fsync. "fresh" is deleted by the
 * driver now and then, so that its first crystallization (a new file, no
 * old one to keep) is killed too. */
static const crash_region_spec crash_regions[] = {
    {1, "small", 40, 4, 0, 2048, true, true},
    {2, "large", 48, 6, 48u << 10, 64u << 10, false, false},
    {3, "fresh", 12, 3, 0, 600, true, true},
};
#define CRASH_NREGIONS (sizeof crash_regions / sizeof crash_regions[0])
#define CRASH_FRESH 2 /* index of "fresh" in crash_regions */
#define CRASH_MAX_LAYER_SIZE (112u << 10)
#define CRASH_REGION_METADATA "{\"model\":\"crash\"}"

/* splitmix64: the generator behind every derived value. */
static inline uint64_t crash_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline uint64_t crash_hash3(uint64_t a, uint64_t b, uint64_t c) {
  return crash_mix(crash_mix(crash_mix(a) ^ b) ^ c);
}

/* Fills p[0..size) with bytes derived from seed. */
static inline void crash_fill(uint8_t *p, size_t size, uint64_t seed) {
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v = crash_mix(seed + i);
    memcpy(p + i, &v, 8);
  }
  if (i < size) {
    uint64_t v = crash_mix(seed + i);
    memcpy(p + i, &v, size - i);
  }
}

/* One layer of the model at one generation. */
typedef struct crash_layer {
  bool present;
  uint64_t version; /* the generation that last changed it */
  uint64_t size;
  uint64_t seed; /* of the content (data layers) */
  char name[48]; /* "" when the region's layers have no names */
  char meta[96]; /* "" when none */
} crash_layer;

static inline void crash_model_layer(const crash_region_spec *r, uint32_t i,
                                     uint64_t g, crash_layer *out) {
  memset(out, 0, sizeof *out);
  out->present = true;
  if (i == 0) {
    out->version = g;
    out->size = 8;
    if (r->named) {
      snprintf(out->name, sizeof out->name, "generation");
      snprintf(out->meta, sizeof out->meta, "{\"generation\":%" PRIu64 "}", g);
    }
    return;
  }
  uint64_t lag = (i + g) % r->period;
  uint64_t v = g > lag + 1 ? g - lag : 1;
  uint64_t h = crash_hash3(r->id, i, v);
  out->version = v;
  out->present = !(r->removable && v > 1 && h % 4 == 0);
  out->size = r->size_min + (r->size_var ? (h >> 8) % r->size_var : 0);
  out->seed = h;
  if (r->named) {
    snprintf(out->name, sizeof out->name, "l%" PRIu32 ".v%" PRIu64, i, v);
    snprintf(out->meta, sizeof out->meta,
             "{\"layer\":%" PRIu32 ",\"version\":%" PRIu64 "}", i, v);
  }
}

/* Does generation g change layer i (so the writer must put or remove it)? */
static inline bool crash_changes(const crash_region_spec *r, uint32_t i,
                                 uint64_t g) {
  return g == 1 || i == 0 || (i + g) % r->period == 0;
}

/* Writes layer l's content (for generation g) into buf, which holds at
 * least CRASH_MAX_LAYER_SIZE bytes. */
static inline void crash_model_content(const crash_layer *l, uint32_t i,
                                       uint64_t g, uint8_t *buf) {
  if (i == 0)
    memcpy(buf, &g, 8); /* little-endian hosts only, like the format */
  else
    crash_fill(buf, (size_t)l->size, l->seed);
}

/* ---- the digest --------------------------------------------------------- */

/* A region's digest covers, in ascending id order, each layer's id, size,
 * XXH3-64 of its content (recomputed, not the stored checksum), name and
 * metadata. Equal digests mean the same layers with the same content. */
static inline void crash_digest_sum(XXH3_state_t *st, uint64_t id,
                                    uint64_t size, uint64_t sum,
                                    const char *name, const char *meta) {
  uint64_t w[5] = {id, size, sum, name ? strlen(name) + 1 : 0,
                   meta ? strlen(meta) + 1 : 0};
  XXH3_64bits_update(st, w, sizeof w);
  if (name)
    XXH3_64bits_update(st, name, strlen(name));
  if (meta)
    XXH3_64bits_update(st, meta, strlen(meta));
}

static inline void crash_digest_layer(XXH3_state_t *st, uint64_t id,
                                      const void *data, uint64_t size,
                                      const char *name, const char *meta) {
  crash_digest_sum(st, id, size, XXH3_64bits(data, (size_t)size), name, meta);
}

/* Content checksums of the model's layers already computed, by layer and
 * version, so that a digest generates only the layers that changed since
 * the last one (about 4 MiB of content otherwise, for "large"). */
#define CRASH_MAX_LAYERS 48
typedef struct crash_sum_cache {
  uint64_t version[CRASH_MAX_LAYERS + 1]; /* 0: nothing cached */
  uint64_t sum[CRASH_MAX_LAYERS + 1];
} crash_sum_cache;

/* The digest region r must have at generation g. buf: see above; cache
 * may be NULL. */
static inline uint64_t crash_model_digest(const crash_region_spec *r,
                                          uint64_t g, uint8_t *buf,
                                          crash_sum_cache *cache) {
  XXH3_state_t *st = XXH3_createState();
  if (st == NULL)
    return 0;
  XXH3_64bits_reset(st);
  for (uint32_t i = 0; i <= r->layers; i++) {
    crash_layer l;
    crash_model_layer(r, i, g, &l);
    if (!l.present)
      continue;
    uint64_t sum;
    if (i > 0 && cache != NULL && cache->version[i] == l.version) {
      sum = cache->sum[i];
    } else {
      crash_model_content(&l, i, g, buf);
      sum = XXH3_64bits(buf, (size_t)l.size);
      if (i > 0 && cache != NULL) {
        cache->version[i] = l.version;
        cache->sum[i] = sum;
      }
    }
    crash_digest_sum(st, i, l.size, sum, l.name[0] ? l.name : NULL,
                     l.meta[0] ? l.meta : NULL);
  }
  uint64_t d = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return d;
}

/* The digest of the layers `next` returns from `it` (in ascending id
 * order), and the generation layer 0 holds. Returns 0, or -1 with a reason
 * in why[0..why_len) (no layer 0, a layer 0 that is not 8 bytes, an
 * iteration error). */
static inline int crash_digest_of(int (*next)(void *, strata_layer *), void *it,
                                  uint64_t *gen, uint64_t *digest, char *why,
                                  size_t why_len) {
  XXH3_state_t *st = XXH3_createState();
  if (st == NULL) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  XXH3_64bits_reset(st);
  strata_layer l;
  int rc;
  bool have_gen = false;
  while ((rc = next(it, &l)) > 0) {
    if (l.id == 0 && l.size == 8) {
      memcpy(gen, l.data, 8);
      have_gen = true;
    }
    crash_digest_layer(st, l.id, l.data, l.size, l.name, l.metadata);
  }
  *digest = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (rc < 0) {
    snprintf(why, why_len, "iteration failed: %s: %s", strata_err_name(rc),
             strata_last_error_detail());
    return -1;
  }
  if (!have_gen) {
    snprintf(why, why_len, "no 8-byte generation layer 0");
    return -1;
  }
  return 0;
}

static inline int crash_region_next(void *it, strata_layer *l) {
  return strata_region_next(it, l);
}

static inline int crash_snapshot_next(void *it, strata_layer *l) {
  return strata_snapshot_next(it, l);
}

/* Digest of an open region file (one file alone: a delta's tombstones
 * count as layers), and the generation its layer 0 holds. */
static inline int crash_region_digest(const strata_region *region,
                                      uint64_t *gen, uint64_t *digest,
                                      char *why, size_t why_len) {
  strata_region_iter it;
  strata_region_iter_init(region, &it);
  return crash_digest_of(crash_region_next, &it, gen, digest, why, why_len);
}

/* A region's files read as a stack, independently of the store's own
 * merge: for each id 0..max_id (the model's ids), the version of the
 * newest of deltas[n - 1] .. deltas[0] that holds it, else the base's; a
 * tombstone hides the id. */
typedef struct crash_stack_iter {
  const strata_region *base;
  const strata_region *const *deltas;
  uint32_t n, max_id;
  uint64_t id; /* the next id to look up */
} crash_stack_iter;

static inline int crash_stack_next(void *p, strata_layer *l) {
  crash_stack_iter *it = p;
  for (; it->id <= it->max_id; it->id++) {
    int rc = STRATA_E_NOT_FOUND;
    for (uint32_t d = it->n; d-- > 0 && rc == STRATA_E_NOT_FOUND;)
      rc = strata_region_get(it->deltas[d], it->id, l);
    if (rc == STRATA_E_NOT_FOUND)
      rc = strata_region_get(it->base, it->id, l);
    if (rc == STRATA_E_NOT_FOUND ||
        (rc == 0 && (l->flags & STRATA_LAYER_TOMBSTONE) != 0))
      continue;
    it->id++;
    return rc < 0 ? rc : 1;
  }
  return 0;
}

/* Digest of a stack read so: a stack the store serves must give the same
 * digest by this route as through a snapshot. */
static inline int crash_files_digest(const strata_region *base,
                                     const strata_region *const *deltas,
                                     uint32_t n, uint32_t max_id, uint64_t *gen,
                                     uint64_t *digest, char *why,
                                     size_t why_len) {
  crash_stack_iter it = {base, deltas, n, max_id, 0};
  return crash_digest_of(crash_stack_next, &it, gen, digest, why, why_len);
}

/* Digest of region `id` as snapshot `txn` serves it (its base and the delta
 * files over it), and the generation its layer 0 holds. */
static inline int crash_served_digest(const strata_txn *txn, uint64_t id,
                                      uint64_t *gen, uint64_t *digest,
                                      char *why, size_t why_len) {
  strata_snapshot_iter it;
  int rc = strata_snapshot_iter_init(txn, id, &it);
  if (rc < 0) {
    snprintf(why, why_len, "strata_snapshot_iter_init: %s: %s",
             strata_err_name(rc), strata_last_error_detail());
    return -1;
  }
  rc = crash_digest_of(crash_snapshot_next, &it, gen, digest, why, why_len);
  strata_snapshot_iter_end(&it);
  return rc;
}

#endif /* STRATA_CRASH_MODEL_H */
