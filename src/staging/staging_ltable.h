/* A table of entries keyed by (region id, layer id) with a CLOCK ring over
 * them: the one structure behind both of the pool's layer caches, the
 * staged layers (staging_layers.c) and the device layer cache
 * (staging_dcache.c). See staging_ltable.c for why it is built this way.
 *
 * The table is intrusive: an entry embeds a strata__lnode (its key, hash
 * chain link, ring position and reference bit) and the table never
 * allocates or frees entries, only its two arrays. None of it is thread
 * safe: each user calls it under its own mutex (`mu` for the staged
 * layers, the device cache's `mu` for its entries). */
#ifndef STRATA_STAGING_LTABLE_H
#define STRATA_STAGING_LTABLE_H

#include <stdbool.h>
#include <stdint.h>

/* The hash of a (region id, layer id) key, for the pool's tables: the
 * staged layers, the hot-layer candidates and the device cache. */
static inline uint64_t strata__layer_key_hash(uint64_t region, uint64_t layer) {
  uint64_t h = region * 0x9E3779B97F4A7C15ull ^ layer * 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

#define STRATA__POS_NONE UINT32_MAX

/* The part of an entry the table owns. */
typedef struct strata__lnode {
  struct strata__lnode *hnext; /* hash chain */
  uint64_t region_id, layer_id;
  uint32_t clock_pos; /* index in the CLOCK ring, or STRATA__POS_NONE */
  bool ref;           /* CLOCK reference bit; the user sets it on use */
} strata__lnode;

typedef struct strata__ltable {
  const char *what;    /* names the table in errors: "staging: <what> ..." */
  strata__lnode **tab; /* chained buckets, a power of two of them */
  uint64_t mask;
  strata__lnode **ring; /* the CLOCK ring: every entry, in no order */
  uint32_t n, cap, hand;
} strata__ltable;

/* What the sweep may do with the entry under the hand. */
typedef enum strata__clock_verdict {
  STRATA__CLOCK_SKIP,  /* in use: pass it, its reference bit untouched */
  STRATA__CLOCK_AGE,   /* evictable, but a set reference bit spares it once */
  STRATA__CLOCK_EVICT, /* evict it whatever its reference bit says */
} strata__clock_verdict;

/* The user's side of a sweep. `over` says whether more must go; `judge`
 * classifies the entry under the hand; `evict` takes it out of the ring
 * (strata__ltable_remove) and frees or retires it. */
typedef struct strata__clock_ops {
  bool (*over)(void *ctx);
  strata__clock_verdict (*judge)(void *ctx, strata__lnode *n);
  void (*evict)(void *ctx, strata__lnode *n);
} strata__clock_ops;

/* Allocates 256 buckets and a ring of `ring_cap` entries; STRATA_E_NOMEM
 * on failure (strata__ltable_destroy then frees what was allocated). */
int strata__ltable_init(strata__ltable *t, const char *what, uint32_t ring_cap);
/* Frees the arrays, not the entries (the user frees those first, walking
 * t->ring[0 .. t->n)). */
void strata__ltable_destroy(strata__ltable *t);

/* Where the entry for a key is, or the chain's end when there is none:
 * the user can unlink through it. */
static inline strata__lnode **
strata__ltable_slot(strata__ltable *t, uint64_t region, uint64_t layer) {
  strata__lnode **p = &t->tab[strata__layer_key_hash(region, layer) & t->mask];
  while (*p != NULL && ((*p)->region_id != region || (*p)->layer_id != layer))
    p = &(*p)->hnext;
  return p;
}

static inline strata__lnode *
strata__ltable_find(strata__ltable *t, uint64_t region, uint64_t layer) {
  return *strata__ltable_slot(t, region, layer);
}

/* Makes room for one more entry, so that the insert that follows cannot
 * fail: the table doubles past 3/4 full, the ring when it is full.
 * STRATA_E_NOMEM on failure, nothing changed. */
int strata__ltable_reserve(strata__ltable *t);
/* Enters `n` (key filled in, no entry of that key in the table) at the end
 * of its chain and of the ring. strata__ltable_reserve first. */
void strata__ltable_insert(strata__ltable *t, strata__lnode *n);
/* Takes `n` out of the table only: it stays in the ring, found by no
 * lookup (an entry replaced while held, freed with its last hold). */
void strata__ltable_detach(strata__ltable *t, strata__lnode *n);
/* Takes `n` out of the table (if its key still finds it) and the ring (if
 * it is in it). The ring's last entry moves into its place. */
void strata__ltable_remove(strata__ltable *t, strata__lnode *n);
/* CLOCK: evicts entries while ops->over(ctx), for at most two turns of the
 * hand (the first may only clear reference bits). Returns entries evicted. */
uint64_t strata__ltable_sweep(strata__ltable *t, const strata__clock_ops *ops,
                              void *ctx);

#endif /* STRATA_STAGING_LTABLE_H */
