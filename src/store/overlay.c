/* Proto overlays: the versioned, lock-free-readable layer index of a
 * proto-region.
 *
 * Two chained hash tables (by id and by name) of links to immutable layer
 * versions (lvers). A put prepends a link to each chain, so the first link
 * of an id whose version a snapshot may see is that snapshot's view of the
 * layer; a remove prepends a tombstone. Older versions stay linked until no
 * open snapshot can see them (strata__overlay_prune), then are unlinked and
 * retired. When the tables fill up they are copied into larger ones (fresh
 * links to the same lvers) and the table pointer is swapped; the old links
 * are retired with the old table.
 *
 * Who owns a link. An lver carries its own links (id, and name when it has
 * one) for the table it is put into, so a put allocates no link;
 * a table that replaced a smaller one owns the links it was built with, in
 * one array. Freeing a table therefore never walks its chains, and an
 * lver's links go with it. An lver's own links stay in the chains of the
 * table that was current at its put after that table is replaced, and that
 * table's readers may follow them: the lver is retired no earlier than the
 * table (a prune or the overlay's end comes after the replacement), so
 * their grace periods cover those readers. Before this, a put allocated a
 * link per chain, each freed on its own: with the count record, 4 of a
 * put's 5 pool blocks. */
#include "common/hash.h"
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define INITIAL_BUCKETS 64

static uint64_t id_hash(uint64_t id) {
  return id * 0x9E3779B97F4A7C15ull >> 17;
}

static uint64_t name_hash(const strata__overlay *o, const char *name,
                          size_t len) {
  return XXH3_64bits_withSeed(name, len, o->name_seed);
}

/* ---- tables ------------------------------------------------------------- */

/* The bytes of each of a table's two bucket arrays. */
static size_t table_arr(uint64_t buckets) {
  return (size_t)buckets * sizeof(_Atomic(strata__link *));
}

static strata__otable *table_new(struct strata_store *s, uint64_t buckets) {
  strata__otable *t = strata__pool_alloc(s->pool, sizeof *t);
  if (t == NULL)
    return NULL;
  size_t arr = table_arr(buckets);
  t->mask = buckets - 1;
  t->links = NULL;
  t->nlinks = 0;
  t->by_id = strata__pool_alloc(s->pool, arr);
  t->by_name = strata__pool_alloc(s->pool, arr);
  if (t->by_id == NULL || t->by_name == NULL) {
    strata__pool_free(s->pool, t->by_id, arr);
    strata__pool_free(s->pool, t->by_name, arr);
    strata__pool_free(s->pool, t, sizeof *t);
    return NULL;
  }
  for (uint64_t i = 0; i < buckets; i++) {
    atomic_init(&t->by_id[i], NULL);
    atomic_init(&t->by_name[i], NULL);
  }
  t->bytes = strata__pool_charge(s->pool, sizeof *t) +
             2 * strata__pool_charge(s->pool, arr);
  return t;
}

/* Frees a table: its arrays and the links it owns (not the lvers). */
static void table_free(struct strata_store *s, strata__otable *t) {
  size_t arr = table_arr(t->mask + 1);
  strata__pool_free(s->pool, t->links, (size_t)t->nlinks * sizeof *t->links);
  strata__pool_free(s->pool, t->by_id, arr);
  strata__pool_free(s->pool, t->by_name, arr);
  strata__pool_free(s->pool, t, sizeof *t);
}

static void table_retired(struct strata_store *s, void *t) {
  table_free(s, t);
}

/* Appends a copy of every link of `from` to the chains of `to`, keeping
 * each chain's order (newest first): a bucket of the doubled table takes
 * links from exactly one old bucket. The copies are one array, owned by
 * `to`. */
static int table_copy(struct strata_store *s, const strata__otable *from,
                      strata__otable *to, const strata__overlay *o) {
  /* Every lver is on one id chain, a named one on one name chain too: the
   * count without a walk (a cache miss per link). */
  uint64_t n = o->lvers + o->named;
  strata__link *c =
      n > 0 ? strata__pool_alloc(s->pool, (size_t)n * sizeof *c) : NULL;
  if (n > 0 && c == NULL)
    return STRATA_E_NOMEM;
  to->links = c;
  to->nlinks = n;
  to->bytes += n > 0 ? strata__pool_charge(s->pool, (size_t)n * sizeof *c) : 0;
  for (int h = 0; h < 2; h++) {
    _Atomic(strata__link *) *src = h == 0 ? from->by_id : from->by_name;
    _Atomic(strata__link *) *dst = h == 0 ? to->by_id : to->by_name;
    for (uint64_t i = 0; i <= from->mask; i++) {
      _Atomic(strata__link *) *tails[2] = {&dst[i], &dst[i + from->mask + 1]};
      for (strata__link *l =
               atomic_load_explicit(&src[i], memory_order_relaxed);
           l != NULL;
           l = atomic_load_explicit(&l->next, memory_order_relaxed)) {
        uint64_t hash = h == 0 ? id_hash(l->id)
                               : name_hash(o, l->lv->name, l->lv->name_len);
        int half = (hash & to->mask) > from->mask;
        c->lv = l->lv;
        c->id = l->id;
        atomic_init(&c->next, NULL);
        atomic_store_explicit(tails[half], c, memory_order_relaxed);
        tails[half] = &c->next;
        assert(c < to->links + n); /* the counts above are exact */
        c++;
      }
    }
  }
  assert(c == to->links + n);
  return 0;
}

static int grow(struct strata_store *s, strata__overlay *o) {
  strata__otable *old = atomic_load_explicit(&o->table, memory_order_relaxed);
  strata__otable *t = table_new(s, 2 * (old->mask + 1));
  if (t == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "%s: growing a proto index to %" PRIu64 " buckets",
                        s->dir, 2 * (old->mask + 1));
  int rc = table_copy(s, old, t, o);
  if (rc == 0)
    rc = strata__retire(s, old, old->bytes, table_retired);
  if (rc < 0) {
    table_free(s, t);
    return strata__fail(STRATA_E_NOMEM, "%s: growing a proto index", s->dir);
  }
  /* The new table's arrays and links replace the old one's. */
  o->bytes += t->bytes - old->bytes;
  strata__log(&s->log, STRATA_LOG_DEBUG, "proto",
              "msg=\"proto index grown\" buckets=%" PRIu64 " bytes=%" PRIu64
              " heap=%" PRIu64,
              t->mask + 1, t->bytes, strata__store_heap(s));
  atomic_store_explicit(&o->table, t, memory_order_seq_cst);
  return 0;
}

/* ---- overlays ---------------------------------------------------------------
 */

int strata__overlay_new(struct strata_store *s, strata__overlay **out) {
  strata__overlay *o = calloc(1, sizeof *o);
  strata__otable *t = o != NULL ? table_new(s, INITIAL_BUCKETS) : NULL;
  if (t == NULL) {
    free(o);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto index", s->dir);
  }
  atomic_init(&o->table, t);
  o->name_seed = (uint64_t)(uintptr_t)o * 0x9E3779B97F4A7C15ull;
  o->bytes = t->bytes;
  atomic_fetch_add_explicit(&s->extra_bytes, sizeof *o, memory_order_relaxed);
  *out = o;
  return 0;
}

/* ---- the layer count's history ------------------------------------------
 *
 * An array, not a list: a put that adds or removes a layer appends one
 * record where a list cost a pool block per put, and a prune per put that
 * retired the record before it (a retire record, an epoch advance and a
 * free): about 450 of the 1,870 instructions of a put in issue 19's
 * profile of 100,000 puts. Records no snapshot reads are dropped when the
 * array is full and copied, so it holds at most twice the records that
 * open snapshots may read (and 63 when none is open).
 *
 * And when most of a larger array is dead: an array grows while snapshots
 * pin its records (each copy keeps them all), and once they ended it kept
 * them until the next copy, which only a full array made: a snapshot held
 * over a million changes left 32 MB behind for as long as the proto made
 * no more changes. Now the maintenance that ends every write call
 * (strata__store_maintain) copies an array larger than the first into the
 * smallest that holds its live records once at most a quarter of its
 * capacity is live, so that the copy at least halves it. A copy leaves
 * more than a quarter live, so an array is copied again only after its
 * snapshots moved on or it filled up; the test is one record read, and
 * the search for the first live record runs only when it copies. The
 * rule looks at the capacity, not at the dead prefix: a copy that kept
 * 2,100 records has room for 8,191 (128 KiB); once their snapshot ended
 * all but one are dead, and a rule waiting for the dead prefix to pass
 * half the capacity kept that array until 2,000 more changes. */

/* Records of the first array: 64 x 16 bytes with the header, 1 KiB. */
#define COUNTS_FIRST 63

/* The capacity of a copied history that keeps `live` records: room for
 * as many more, the array a power of two in bytes. */
static uint64_t counts_cap(uint64_t live) {
  uint64_t cap = COUNTS_FIRST;
  while (cap < 2 * live)
    cap = 2 * cap + 1;
  return cap;
}

static size_t counts_size(uint64_t cap) {
  return sizeof(strata__counts) + (size_t)cap * sizeof(strata__count);
}

static void counts_free(struct strata_store *s, void *obj) {
  strata__counts *a = obj;
  if (a != NULL)
    strata__pool_free(s->pool, a, counts_size(a->cap));
}

int64_t strata__overlay_delta(const strata__overlay *o, uint64_t version) {
  const strata__counts *a = atomic_load_explicit(
      &((strata__overlay *)o)->counts, memory_order_acquire);
  if (a == NULL)
    return 0;
  /* Records below n were filled before n was published (release). */
  for (uint64_t i = atomic_load_explicit(&((strata__counts *)a)->n,
                                         memory_order_acquire);
       i-- > 0;)
    if (a->rec[i].version <= version)
      return a->rec[i].delta;
  return 0;
}

/* The first of the `n` records of `a` that a snapshot at `min` or later
 * may read: the newest whose version is <= min (each reads the newest at
 * or below its own), 0 when none is. Versions increase along the array. */
static uint64_t counts_first_live(const strata__counts *a, uint64_t n,
                                  uint64_t min) {
  uint64_t lo = 0, hi = n; /* the records in [0, lo) are <= min */
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (a->rec[mid].version <= min)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 ? lo - 1 : 0;
}

/* Replaces the history `a` (NULL: none yet) of `n` records with a copy of
 * its records from `keep` on, in an array with room for as many more,
 * and retires `a`. STRATA_E_NOMEM (no detail: the callers give it)
 * leaves everything as it was. Writer side. */
static int counts_copy(struct strata_store *s, strata__overlay *o,
                       strata__counts *a, uint64_t n, uint64_t keep) {
  uint64_t live = n - keep, cap = counts_cap(live);
  strata__counts *g = strata__pool_alloc(s->pool, counts_size(cap));
  strata__retired *rec = a != NULL ? malloc(sizeof *rec) : NULL;
  if (g == NULL || (a != NULL && rec == NULL)) {
    strata__pool_free(s->pool, g, g != NULL ? counts_size(cap) : 0);
    free(rec);
    return STRATA_E_NOMEM;
  }
  g->cap = cap;
  /* The copy is the proto's; the old array is the retire record's, which
   * counts it as the heap does, like a replaced table. */
  uint64_t old =
      a != NULL ? strata__pool_charge(s->pool, counts_size(a->cap)) : 0;
  o->bytes += strata__pool_charge(s->pool, counts_size(cap)) - old;
  o->counts_cap = cap;
  if (live > 0)
    memcpy(g->rec, a->rec + keep, (size_t)live * sizeof *g->rec);
  atomic_init(&g->n, live);
  /* A reader that loaded `a` reads it to the end of its call: the grace
   * period of the retirement covers it, and `a` is never written again. */
  atomic_store_explicit(&o->counts, g, memory_order_release);
  if (a != NULL)
    strata__retire_push(s, rec, a, old, counts_free);
  return 0;
}

int strata__overlay_count_reserve(struct strata_store *s, strata__overlay *o) {
  strata__counts *a = atomic_load_explicit(&o->counts, memory_order_relaxed);
  uint64_t n =
      a != NULL ? atomic_load_explicit(&a->n, memory_order_relaxed) : 0;
  if (a != NULL && n < a->cap)
    return 0;
  /* Full: copy the records a snapshot may still read (from the newest one
   * every open snapshot sees) into an array with room for as many more. */
  uint64_t keep = n > 0 ? counts_first_live(a, n, strata__ebr_min_epoch(s)) : 0;
  if (counts_copy(s, o, a, n, keep) < 0)
    return strata__fail(STRATA_E_NOMEM,
                        "%s: region layer count history: allocating %zu bytes",
                        s->dir, counts_size(counts_cap(n - keep)));
  return 0;
}

bool strata__overlay_count_compact(struct strata_store *s, strata__overlay *o,
                                   uint64_t min) {
  /* The first array is as small as a copy: no read of the array. */
  if (o->counts_cap <= COUNTS_FIRST)
    return false;
  strata__counts *a = atomic_load_explicit(&o->counts, memory_order_relaxed);
  uint64_t n = atomic_load_explicit(&a->n, memory_order_relaxed);
  /* At most q records live (counts_first_live() >= n - q) when record
   * n - q is one every open snapshot sees; then the copy's capacity,
   * counts_cap(<= q) with cap = 2^k - 1 and q = 2^(k-2) - 1, is at most
   * half of cap. */
  uint64_t q = a->cap / 4;
  if (n > q && a->rec[n - q].version > min)
    return false;
  /* Out of memory: the array stays as it is, as correct as before; the
   * next maintenance tries again. */
  return counts_copy(s, o, a, n, counts_first_live(a, n, min)) == 0;
}

void strata__overlay_count_push(strata__overlay *o, uint64_t version,
                                int64_t delta) {
  strata__counts *a = atomic_load_explicit(&o->counts, memory_order_relaxed);
  uint64_t n = atomic_load_explicit(&a->n, memory_order_relaxed);
  a->rec[n] = (strata__count){.version = version, .delta = delta};
  atomic_store_explicit(&a->n, n + 1, memory_order_release);
  atomic_store_explicit(&o->layer_delta, delta, memory_order_relaxed);
}

/* ---- the arena ------------------------------------------------------------
 *
 * A proto's lvers are taken one after another from chunks of its own (4 KiB
 * doubling to 1 MiB, from the store's pool), each lver followed by its name,
 * metadata and content: a put allocates nothing else (content above
 * STRATA__LV_INLINE_MAX gets a pool block of its own, so that a large layer
 * does not leave most of a chunk unused). When the proto goes (crystallized
 * or discarded) its chunks are freed whole, after one grace period: issue
 * 19's 100,000 x 256 B put then cost three pool allocations (version,
 * content, link) and a count record per layer, freed one by one at
 * retirement by a walk of every chain (36% of a put + crystallize profile),
 * where the arena is freed in about 40 calls.
 *
 * A pruned lver (a version no snapshot sees any more) is freed on its own,
 * after its own grace period: its chunk counts its live lvers and is freed
 * when the last one goes. Chunk memory is what the heap counts (the pool's
 * in_use), so a chunk kept for one live lver among pruned ones counts
 * whole: a proto that keeps overwriting a few layers scattered over many
 * chunks holds more heap than its live versions until it is crystallized,
 * and the memory thresholds see that and evict it (store_memory.c).
 *
 * What a proto holds (o->bytes, which eviction ranks protos by and
 * strata_proto_info.bytes reports) is counted the same way, in pool
 * charges (strata__pool_charge: whole blocks, as in_use grows): a chunk
 * from its allocation (arena_take) to its free (chunk_free), a content
 * block from the link of its lver to the prune that retires it, the
 * tables and the count history while they are current. Before, it summed
 * the versions' own bytes, so that a proto whose few live versions kept
 * many chunks alive ranked below one that would give back less. */

#define ARENA_FIRST (4u << 10)
#define ARENA_MAX (1u << 20)

static size_t round64(size_t n) {
  return (n + 63) & ~(size_t)63;
}

static void chunk_free(struct strata_store *s, strata__achunk *c) {
  strata__overlay *o = c->owner;
  o->bytes -= strata__pool_charge(s->pool, (size_t)c->size);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    o->chunks = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  strata__pool_free(s->pool, c, (size_t)c->size);
}

/* The largest chunk the arena grows to: ARENA_MAX, or less under a small
 * memory limit, a power of two at most 1/32 of it. A chunk is counted
 * whole from the put that starts it (proto.c, check_memory), mostly
 * empty: under a 1 MiB limit a 128 KiB chunk moved the heap from 83% of
 * the limit past refuse_pct at once, and every threshold fired a chunk
 * early. At 1/32 a chunk stays within the gap between evict_pct and
 * refuse_pct (10% by default), so eviction, which runs after a change,
 * usually makes room before a put could be refused; change() runs it
 * before a refusal otherwise. */
static uint64_t arena_max(const struct strata_store *s) {
  uint64_t cap = ARENA_MAX;
  while (cap > ARENA_FIRST && cap > s->config.memory_limit / 32)
    cap /= 2;
  return cap;
}

/* The size of the chunk `n` more arena bytes need, or 0 when the head
 * chunk has room for them. */
static uint64_t chunk_needed(const struct strata_store *s,
                             const strata__overlay *o, size_t n) {
  const strata__achunk *c = o->chunks;
  if (c != NULL && c->size - c->used >= n)
    return 0;
  uint64_t want = o->chunk_next ? o->chunk_next : ARENA_FIRST;
  uint64_t cap = arena_max(s);
  if (want > cap)
    want = cap;
  while (want < round64(sizeof *c) + n)
    want *= 2; /* one lver larger than the cap (metadata up to 1 MiB) */
  return want;
}

/* `n` bytes (a multiple of 64, so that every lver and inline content is
 * 64-byte aligned) from the head chunk, or from a new one; NULL when out
 * of memory. */
static void *arena_take(struct strata_store *s, strata__overlay *o, size_t n,
                        strata__achunk **out) {
  strata__achunk *c = o->chunks;
  size_t head = round64(sizeof *c);
  uint64_t want = chunk_needed(s, o, n);
  if (want != 0) {
    strata__achunk *g = strata__pool_alloc(s->pool, (size_t)want);
    if (g == NULL)
      return NULL;
    *g = (strata__achunk){.next = c, .owner = o, .size = want, .used = head};
    if (c != NULL)
      c->prev = g;
    o->chunks = c = g;
    o->bytes += strata__pool_charge(s->pool, (size_t)want);
    if (o->chunk_next < ARENA_MAX)
      o->chunk_next = want < ARENA_MAX ? 2 * want : ARENA_MAX;
    /* (chunk_needed() caps it by arena_max() when it is read.) */
  }
  void *p = (uint8_t *)c + c->used;
  c->used += n;
  c->live++;
  *out = c;
  return p;
}

/* The arena bytes of an lver: the struct, its name link and strings,
 * rounded to 64, then its content when inline (<= STRATA__LV_INLINE_MAX). */
static size_t lver_head(bool name, size_t nl, bool metadata, size_t ml) {
  return sizeof(strata__lver) + (name ? sizeof(strata__link) + nl + 1 : 0) +
         (metadata ? ml + 1 : 0);
}
static size_t lver_arena_bytes(size_t head, size_t size) {
  return round64(head) + (size <= STRATA__LV_INLINE_MAX ? round64(size) : 0);
}

uint64_t strata__overlay_put_cost(const struct strata_store *s,
                                  const strata__overlay *o, bool name,
                                  size_t nl, bool metadata, size_t ml,
                                  size_t size, bool counted) {
  const strata__pool *pool = s->pool;
  size_t head = lver_head(name, nl, metadata, ml);
  uint64_t chunk = chunk_needed(s, o, lver_arena_bytes(head, size));
  uint64_t cost =
      (chunk ? strata__pool_charge(pool, (size_t)chunk) : 0) +
      (size > STRATA__LV_INLINE_MAX ? strata__pool_charge(pool, size) : 0);
  /* strata__overlay_link() doubles the table (grow(): table_new() and
   * table_copy()'s links; the old table is freed only after a grace
   * period, so the heap holds both). */
  const strata__otable *t = atomic_load_explicit(&((strata__overlay *)o)->table,
                                                 memory_order_relaxed);
  if (o->lvers + 1 > t->mask + 1) {
    size_t arr = table_arr(2 * (t->mask + 1));
    uint64_t links = o->lvers + o->named;
    cost +=
        strata__pool_charge(pool, sizeof(strata__otable)) +
        2 * strata__pool_charge(pool, arr) +
        (links ? strata__pool_charge(pool, (size_t)links * sizeof(strata__link))
               : 0);
  }
  /* strata__overlay_count_reserve() copies a full count history; at most
   * into the array that keeps every record (it may drop some). */
  const strata__counts *a = atomic_load_explicit(
      &((strata__overlay *)o)->counts, memory_order_relaxed);
  uint64_t n = a != NULL ? atomic_load_explicit(&((strata__counts *)a)->n,
                                                memory_order_relaxed)
                         : 0;
  if (counted && (a == NULL || n >= a->cap)) {
    cost += strata__pool_charge(pool, counts_size(counts_cap(n)));
  }
  return cost;
}

strata__lver *strata__lver_new(struct strata_store *s, strata__overlay *o,
                               uint64_t id, const char *name, size_t nl,
                               const char *metadata, size_t ml,
                               const void *data, size_t size) {
  size_t head = lver_head(name != NULL, nl, metadata != NULL, ml);
  bool inl = size <= STRATA__LV_INLINE_MAX;
  size_t n = lver_arena_bytes(head, size);
  void *block = NULL;
  if (!inl && (block = strata__pool_alloc(s->pool, size)) == NULL)
    return NULL;
  strata__achunk *c;
  strata__lver *lv = arena_take(s, o, n, &c);
  if (lv == NULL) {
    strata__pool_free(s->pool, block, size);
    return NULL;
  }
  *lv = (strata__lver){
      .id = id, .alloc_size = (uint32_t)n, .data = "", .chunk = c};
  atomic_init(&lv->id_link.next, NULL);
  char *p = (char *)(lv + 1);
  if (name != NULL) {
    atomic_init(&strata__lver_name_link(lv)->next, NULL);
    p += sizeof(strata__link);
    memcpy(p, name, nl);
    p[nl] = '\0';
    lv->name = p;
    lv->name_len = (uint32_t)nl;
    p += nl + 1;
  }
  if (metadata != NULL) {
    memcpy(p, metadata, ml + 1);
    lv->metadata = p;
    lv->metadata_len = (uint32_t)ml;
  }
  if (size > 0) {
    void *d = inl ? (uint8_t *)lv + round64(head) : block;
    memcpy(d, data, size);
    lv->data = d;
    lv->size = size;
    if (!inl) {
      lv->flags = STRATA__LV_DATA_BLOCK;
      o->data_blocks++;
    }
  }
  return lv;
}

void strata__lver_free(struct strata_store *s, strata__lver *lv) {
  strata__achunk *c = lv->chunk;
  if (lv->flags & STRATA__LV_DATA_BLOCK) {
    strata__pool_free(s->pool, (void *)lv->data, (size_t)lv->size);
    c->owner->data_blocks--;
  }
  /* The last one taken gives its bytes back (a put that failed). */
  if ((uint8_t *)lv + lv->alloc_size == (uint8_t *)c + c->used)
    c->used -= lv->alloc_size;
  if (--c->live == 0)
    chunk_free(s, c); /* nothing in it is reachable any more */
}

/* The bytes a pruned lver's retire record counts (strata_store_stats'
 * retired_bytes): its arena bytes and content block. */
static uint64_t lver_bytes(const strata__lver *lv) {
  return lv->alloc_size + (lv->flags & STRATA__LV_DATA_BLOCK ? lv->size : 0);
}

void strata__overlay_free(struct strata_store *s, void *obj) {
  strata__overlay *o = obj;
  counts_free(s, atomic_load_explicit(&o->counts, memory_order_relaxed));
  strata__otable *t = atomic_load_explicit(&o->table, memory_order_relaxed);
  /* Every lver left is on the table's id chains (pruned ones were freed
   * before: ebr.c frees oldest first); only content blocks need a walk. */
  for (uint64_t i = 0; o->data_blocks > 0 && i <= t->mask; i++)
    for (strata__link *l =
             atomic_load_explicit(&t->by_id[i], memory_order_relaxed);
         l != NULL; l = atomic_load_explicit(&l->next, memory_order_relaxed))
      if (l->lv->flags & STRATA__LV_DATA_BLOCK) {
        strata__pool_free(s->pool, (void *)l->lv->data, (size_t)l->lv->size);
        o->data_blocks--;
      }
  table_free(s, t);
  while (o->chunks != NULL) {
    strata__achunk *c = o->chunks;
    o->chunks = c->next;
    strata__pool_free(s->pool, c, (size_t)c->size);
  }
  free(o->dirty);
  free(o->latest);
  strata__file_unref(s, o->placed_keep);
  atomic_fetch_sub_explicit(&s->extra_bytes, sizeof *o, memory_order_relaxed);
  free(o);
}

const strata__lver *strata__overlay_find(const strata__overlay *o, uint64_t id,
                                         uint64_t version) {
  const strata__otable *t = atomic_load_explicit(&((strata__overlay *)o)->table,
                                                 memory_order_acquire);
  for (const strata__link *l = atomic_load_explicit(
           &t->by_id[id_hash(id) & t->mask], memory_order_acquire);
       l != NULL; l = atomic_load_explicit(&l->next, memory_order_acquire)) {
    if (l->id != id)
      continue;
    const strata__lver *lv = l->lv;
    if (lv->version <= version)
      return lv;
  }
  return NULL;
}

void strata__overlay_prefetch(const strata__overlay *o, uint64_t id) {
  const strata__otable *t = atomic_load_explicit(&((strata__overlay *)o)->table,
                                                 memory_order_relaxed);
  __builtin_prefetch(&t->by_id[id_hash(id) & t->mask], 1);
}

const strata__lver *strata__overlay_find_w(const strata__overlay *o,
                                           uint64_t id, uint64_t version) {
  if (o->changed == 0 || id > o->max_id)
    return NULL;
  return strata__overlay_find(o, id, version);
}

const strata__lver *strata__overlay_find_name(const strata__overlay *o,
                                              const char *name, size_t len,
                                              uint64_t version) {
  const strata__otable *t = atomic_load_explicit(&((strata__overlay *)o)->table,
                                                 memory_order_acquire);
  uint64_t h = name_hash(o, name, len);
  for (const strata__link *l =
           atomic_load_explicit(&t->by_name[h & t->mask], memory_order_acquire);
       l != NULL; l = atomic_load_explicit(&l->next, memory_order_acquire)) {
    const strata__lver *lv = l->lv;
    if (lv->version > version || lv->name_len != len ||
        memcmp(lv->name, name, len) != 0)
      continue;
    /* The name is this lver's, but is the lver still its id's version in
     * this snapshot? A later put may have renamed or removed the layer. */
    if (strata__overlay_find(o, lv->id, version) == lv)
      return lv;
  }
  return NULL;
}

/* Makes room for one more element of `elem` bytes in a growing array of
 * `n` (doubled when full, starting at `first`, so that a put allocates
 * only now and then): the dirty list and the latest versions.
 * STRATA_E_NOMEM leaves it as it was. */
static int arr_reserve(void **v, uint64_t *cap, uint64_t n, uint64_t first,
                       size_t elem) {
  if (n < *cap)
    return 0;
  uint64_t c = *cap ? 2 * *cap : first;
  void *g = realloc(*v, (size_t)c * elem);
  if (g == NULL)
    return STRATA_E_NOMEM;
  *v = g;
  *cap = c;
  return 0;
}

static int dirty_push(strata__overlay *o, uint64_t id) {
  for (uint64_t i = 0; i < o->dirty_n; i++)
    if (o->dirty[i] == id)
      return 0;
  STRATA__TRY(arr_reserve((void **)&o->dirty, &o->dirty_cap, o->dirty_n, 16,
                          sizeof *o->dirty));
  o->dirty[o->dirty_n++] = id;
  return 0;
}

int strata__overlay_link(struct strata_store *s, strata__overlay *o,
                         strata__lver *lv) {
  strata__otable *t = atomic_load_explicit(&o->table, memory_order_relaxed);
  if (o->lvers + 1 > t->mask + 1) {
    STRATA__TRY(grow(s, o));
    t = atomic_load_explicit(&o->table, memory_order_relaxed);
  }
  /* The id's newest version, which this one supersedes, if any (none
   * when the id is above every id linked). */
  strata__lver *prev = NULL;
  bool above = o->changed == 0 || lv->id > o->max_id;
  for (strata__link *l =
           above ? NULL
                 : atomic_load_explicit(&t->by_id[id_hash(lv->id) & t->mask],
                                        memory_order_relaxed);
       l != NULL && prev == NULL;
       l = atomic_load_explicit(&l->next, memory_order_relaxed))
    if (l->id == lv->id)
      prev = l->lv;
  if ((prev != NULL && dirty_push(o, lv->id) < 0) ||
      (prev == NULL && arr_reserve((void **)&o->latest, &o->latest_cap,
                                   o->changed, 64, sizeof *o->latest) < 0))
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto index list",
                        s->dir);
  strata__link *li = &lv->id_link;
  strata__link *ln = lv->name != NULL ? strata__lver_name_link(lv) : NULL;
  li->lv = lv;
  li->id = lv->id;
  _Atomic(strata__link *) *head = &t->by_id[id_hash(lv->id) & t->mask];
  atomic_init(&li->next, atomic_load_explicit(head, memory_order_relaxed));
  /* Name link first: a reader that finds the id link may look the name up
   * and must find it too. Each store publishes a fully built link. */
  if (ln != NULL) {
    _Atomic(strata__link *) *nh =
        &t->by_name[name_hash(o, lv->name, lv->name_len) & t->mask];
    ln->lv = lv;
    ln->id = lv->id;
    atomic_init(&ln->next, atomic_load_explicit(nh, memory_order_relaxed));
    atomic_store_explicit(nh, ln, memory_order_release);
  }
  atomic_store_explicit(head, li, memory_order_release);
  o->lvers++;
  o->named += ln != NULL;
  if (above)
    o->max_id = lv->id;
  if (prev != NULL) {
    lv->slot = prev->slot;
  } else {
    if (o->changed > 0 && lv->id < o->latest[o->changed - 1].id)
      o->ids_unsorted = true;
    lv->slot = o->changed++;
  }
  o->latest[lv->slot] = (strata__idlv){lv->id, lv};
  /* Its arena bytes were counted with their chunk (arena_take). */
  if (lv->flags & STRATA__LV_DATA_BLOCK)
    o->bytes += strata__pool_charge(s->pool, (size_t)lv->size);
  return 0;
}

/* Removes the link to `lv` from the chain at `head`. The link's memory
 * stays (the lver's own, or its table's) for the readers still on it. */
static void unlink_from(_Atomic(strata__link *) *head, const strata__lver *lv) {
  _Atomic(strata__link *) *pp = head;
  for (strata__link *l = atomic_load_explicit(pp, memory_order_relaxed);
       l != NULL; l = atomic_load_explicit(pp, memory_order_relaxed)) {
    if (l->lv == lv) {
      atomic_store_explicit(
          pp, atomic_load_explicit(&l->next, memory_order_relaxed),
          memory_order_release);
      return;
    }
    pp = &l->next;
  }
}

/* A pruned lver, after its grace period (its links go with it). */
static void pruned_free(struct strata_store *s, void *obj) {
  strata__lver_free(s, obj);
}

/* Prunes one id; returns true when it has no superseded version left. */
static bool prune_id(struct strata_store *s, strata__overlay *o,
                     strata__otable *t, uint64_t id, uint64_t min_version) {
  _Atomic(strata__link *) *pp = &t->by_id[id_hash(id) & t->mask];
  bool seen_visible = false, pending = false;
  for (strata__link *l = atomic_load_explicit(pp, memory_order_relaxed);
       l != NULL; l = atomic_load_explicit(pp, memory_order_relaxed)) {
    if (l->id != id) {
      pp = &l->next;
      continue;
    }
    strata__lver *lv = l->lv;
    if (!seen_visible) {
      /* Versions newer than every snapshot's are kept, and so is the
       * newest one that every snapshot sees; older ones are dead. */
      if (lv->version <= min_version)
        seen_visible = true;
      else
        pending = true;
      pp = &l->next;
      continue;
    }
    /* The record before unlinking: once unlinked, the lver must be
     * retired, or it is lost for good. */
    strata__retired *rec = malloc(sizeof *rec);
    if (rec == NULL)
      return false; /* try again later; nothing was changed */
    unlink_from(pp, lv);
    if (lv->name != NULL)
      unlink_from(&t->by_name[name_hash(o, lv->name, lv->name_len) & t->mask],
                  lv);
    strata__retire_push(s, rec, lv, lver_bytes(lv), pruned_free);
    o->lvers--;
    o->named -= lv->name != NULL;
    /* Its content block is the retire record's now; its chunk stays the
     * proto's until its last version is freed (chunk_free). */
    if (lv->flags & STRATA__LV_DATA_BLOCK)
      o->bytes -= strata__pool_charge(s->pool, (size_t)lv->size);
  }
  return !pending;
}

void strata__overlay_prune(struct strata_store *s, strata__overlay *o,
                           uint64_t min_version) {
  strata__otable *t = atomic_load_explicit(&o->table, memory_order_relaxed);
  uint64_t keep = 0;
  for (uint64_t i = 0; i < o->dirty_n; i++)
    if (!prune_id(s, o, t, o->dirty[i], min_version))
      o->dirty[keep++] = o->dirty[i];
  o->dirty_n = keep;
}

/* Sorting (id, lver) pairs compares ids held in the array instead of
 * following a pointer per comparison: 400,000 lvers sort several times
 * faster. */
typedef struct id_lver {
  uint64_t id;
  const strata__lver *lv;
} id_lver;

static int cmp_id_lver(const void *a, const void *b) {
  uint64_t x = ((const id_lver *)a)->id, y = ((const id_lver *)b)->id;
  return (x > y) - (x < y);
}

static int cmp_idlv(const void *a, const void *b) {
  uint64_t x = ((const strata__idlv *)a)->id, y = ((const strata__idlv *)b)->id;
  return (x > y) - (x < y);
}

int strata__overlay_latest(strata__overlay *o, const strata__lver ***out,
                           uint64_t *n) {
  /* The newest versions are o->latest's, kept by the puts: no lookup per
   * id (a bucket and the lvers of a chain, cache misses all: 17% of the
   * cycles of 100,000 x 256 B put and crystallized), sorted only if some
   * put went backwards. Before, each id was looked up in the chains, and
   * before that each chain was walked to its head per link and (id, lver)
   * pairs were qsorted. */
  uint64_t k = o->changed;
  const strata__lver **v = malloc((k ? k : 1) * sizeof *v);
  if (v == NULL)
    return STRATA_E_NOMEM;
  if (o->ids_unsorted) {
    qsort(o->latest, k, sizeof *o->latest, cmp_idlv);
    for (uint64_t i = 0; i < k; i++)
      o->latest[i].lv->slot = i;
  }
  o->ids_unsorted = false;
  for (uint64_t i = 0; i < k; i++)
    v[i] = o->latest[i].lv;
  *out = v;
  *n = k;
  return 0;
}

int strata__overlay_visible(const strata__overlay *o, uint64_t version,
                            const strata__lver ***out, uint64_t *n) {
  *out = NULL;
  *n = 0;
  /* Reader side: the table is loaded once. A writer may prepend links
   * (newer than `version`: skipped), prune versions no open snapshot sees
   * (never one this snapshot sees) or swap in a larger table (this one is
   * retired after the snapshot ends), so two passes over it see the same
   * set: the first counts, the second collects. */
  const strata__otable *t = atomic_load_explicit(&((strata__overlay *)o)->table,
                                                 memory_order_acquire);
  uint64_t cap = 0;
  for (int pass = 0; pass < 2; pass++) {
    id_lver *pairs = NULL;
    if (pass == 1) {
      if (cap == 0)
        return 0;
      pairs = malloc(cap * sizeof *pairs);
      if (pairs == NULL)
        return STRATA_E_NOMEM;
    }
    uint64_t k = 0;
    for (uint64_t b = 0; b <= t->mask; b++)
      for (const strata__link *l =
               atomic_load_explicit(&t->by_id[b], memory_order_acquire);
           l != NULL;
           l = atomic_load_explicit(&l->next, memory_order_acquire)) {
        const strata__lver *lv = l->lv;
        /* The snapshot's version of an id is the first link it may see. */
        if (lv->version > version ||
            strata__overlay_find(o, lv->id, version) != lv)
          continue;
        if (pass == 1 && k < cap)
          pairs[k] = (id_lver){lv->id, lv};
        k++;
      }
    if (pass == 0) {
      cap = k;
      continue;
    }
    k = k < cap ? k : cap;
    if (k == 0) {
      free(pairs);
      return 0;
    }
    qsort(pairs, k, sizeof *pairs, cmp_id_lver);
    const strata__lver **v = malloc(k * sizeof *v);
    if (v == NULL) {
      free(pairs);
      return STRATA_E_NOMEM;
    }
    for (uint64_t i = 0; i < k; i++)
      v[i] = pairs[i].lv;
    free(pairs);
    *out = v;
    *n = k;
  }
  return 0;
}
