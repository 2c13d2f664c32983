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
 * are retired with the old table. */
#include "common/hash.h"
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

static void *palloc(struct strata_store *s, size_t size, uint64_t *bytes) {
  void *p = strata__pool_alloc(s->pool, size);
  if (p != NULL && bytes != NULL)
    *bytes += size;
  return p;
}

/* ---- tables ------------------------------------------------------------- */

static strata__otable *table_new(struct strata_store *s, uint64_t buckets) {
  strata__otable *t = strata__pool_alloc(s->pool, sizeof *t);
  if (t == NULL)
    return NULL;
  size_t arr = (size_t)buckets * sizeof(_Atomic(strata__link *));
  t->mask = buckets - 1;
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
  t->bytes = sizeof *t + 2 * arr;
  return t;
}

/* Frees a table's links and arrays; `with_lvers` also frees the lvers
 * (each is on exactly one id chain). */
static void table_free(struct strata_store *s, strata__otable *t,
                       bool with_lvers) {
  _Atomic(strata__link *) *heads[2] = {t->by_id, t->by_name};
  for (int h = 0; h < 2; h++) {
    for (uint64_t i = 0; i <= t->mask; i++) {
      strata__link *l =
          atomic_load_explicit(&heads[h][i], memory_order_relaxed);
      while (l != NULL) {
        strata__link *next =
            atomic_load_explicit(&l->next, memory_order_relaxed);
        if (with_lvers && h == 0)
          strata__lver_free(s, l->lv);
        strata__pool_free(s->pool, l, sizeof *l);
        l = next;
      }
    }
  }
  size_t arr = (size_t)(t->mask + 1) * sizeof(_Atomic(strata__link *));
  strata__pool_free(s->pool, t->by_id, arr);
  strata__pool_free(s->pool, t->by_name, arr);
  strata__pool_free(s->pool, t, sizeof *t);
}

static void table_retired(struct strata_store *s, void *t) {
  table_free(s, t, false);
}

/* Appends a copy of every link of `from` to the chains of `to`, keeping
 * each chain's order (newest first): a bucket of the doubled table takes
 * links from exactly one old bucket. */
static int table_copy(struct strata_store *s, const strata__otable *from,
                      strata__otable *to, const strata__overlay *o) {
  for (int h = 0; h < 2; h++) {
    _Atomic(strata__link *) *src = h == 0 ? from->by_id : from->by_name;
    _Atomic(strata__link *) *dst = h == 0 ? to->by_id : to->by_name;
    for (uint64_t i = 0; i <= from->mask; i++) {
      _Atomic(strata__link *) *tails[2] = {&dst[i], &dst[i + from->mask + 1]};
      for (strata__link *l =
               atomic_load_explicit(&src[i], memory_order_relaxed);
           l != NULL;
           l = atomic_load_explicit(&l->next, memory_order_relaxed)) {
        uint64_t hash = h == 0 ? id_hash(l->lv->id)
                               : name_hash(o, l->lv->name, l->lv->name_len);
        int half = (hash & to->mask) > from->mask;
        strata__link *c = strata__pool_alloc(s->pool, sizeof *c);
        if (c == NULL)
          return STRATA_E_NOMEM;
        c->lv = l->lv;
        atomic_init(&c->next, NULL);
        atomic_store_explicit(tails[half], c, memory_order_relaxed);
        tails[half] = &c->next;
      }
    }
  }
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
    table_free(s, t, false);
    return strata__fail(STRATA_E_NOMEM, "%s: growing a proto index", s->dir);
  }
  /* Links cost the same in both tables; only the arrays grow. */
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

static void counts_free(struct strata_store *s, void *head) {
  for (strata__count *c = head; c != NULL;) {
    strata__count *next = atomic_load_explicit(&c->next, memory_order_relaxed);
    strata__pool_free(s->pool, c, sizeof *c);
    c = next;
  }
}

int64_t strata__overlay_delta(const strata__overlay *o, uint64_t version) {
  for (const strata__count *c = atomic_load_explicit(
           &((strata__overlay *)o)->counts, memory_order_acquire);
       c != NULL; c = atomic_load_explicit(&((strata__count *)c)->next,
                                           memory_order_acquire))
    if (c->version <= version)
      return c->delta;
  return 0;
}

strata__count *strata__overlay_count_new(struct strata_store *s) {
  return strata__pool_alloc(s->pool, sizeof(strata__count));
}

void strata__overlay_count_push(strata__overlay *o, strata__count *c,
                                uint64_t version, int64_t delta) {
  c->version = version;
  c->delta = delta;
  atomic_init(&c->next, atomic_load_explicit(&o->counts, memory_order_relaxed));
  atomic_store_explicit(&o->counts, c, memory_order_release);
  atomic_store_explicit(&o->layer_delta, delta, memory_order_relaxed);
  o->count_records++;
}

void strata__overlay_count_drop(struct strata_store *s, strata__count *c) {
  strata__pool_free(s->pool, c, sizeof *c);
}

/* Drops the count records older than the newest one every snapshot sees. */
static void prune_counts(struct strata_store *s, strata__overlay *o,
                         uint64_t min_version) {
  strata__count *c = atomic_load_explicit(&o->counts, memory_order_relaxed);
  while (c != NULL && c->version > min_version)
    c = atomic_load_explicit(&c->next, memory_order_relaxed);
  if (c == NULL)
    return;
  strata__count *tail = atomic_load_explicit(&c->next, memory_order_relaxed);
  if (tail == NULL)
    return;
  uint64_t n = 0;
  for (strata__count *t = tail; t != NULL;
       t = atomic_load_explicit(&t->next, memory_order_relaxed))
    n++;
  if (strata__retire(s, tail, n * sizeof *tail, counts_free) < 0)
    return; /* try again later */
  atomic_store_explicit(&c->next, NULL, memory_order_release);
  o->count_records -= n;
}

void strata__overlay_free(struct strata_store *s, void *obj) {
  strata__overlay *o = obj;
  counts_free(s, atomic_load_explicit(&o->counts, memory_order_relaxed));
  table_free(s, atomic_load_explicit(&o->table, memory_order_relaxed), true);
  free(o->dirty);
  free(o->ids);
  strata__file_unref(s, o->placed_keep);
  atomic_fetch_sub_explicit(&s->extra_bytes, sizeof *o, memory_order_relaxed);
  free(o);
}

strata__lver *strata__lver_new(struct strata_store *s, uint64_t id,
                               const char *name, size_t nl,
                               const char *metadata, size_t ml) {
  size_t size =
      sizeof(strata__lver) + (name ? nl + 1 : 0) + (metadata ? ml + 1 : 0);
  strata__lver *lv = strata__pool_alloc(s->pool, size);
  if (lv == NULL)
    return NULL;
  *lv = (strata__lver){.id = id, .alloc_size = (uint32_t)size, .data = ""};
  char *p = (char *)(lv + 1);
  if (name != NULL) {
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
  return lv;
}

void strata__lver_free(struct strata_store *s, strata__lver *lv) {
  if (lv->size > 0)
    strata__pool_free(s->pool, (void *)lv->data, (size_t)lv->size);
  strata__pool_free(s->pool, lv, lv->alloc_size);
}

const strata__lver *strata__overlay_find(const strata__overlay *o, uint64_t id,
                                         uint64_t version) {
  const strata__otable *t = atomic_load_explicit(&((strata__overlay *)o)->table,
                                                 memory_order_acquire);
  for (const strata__link *l = atomic_load_explicit(
           &t->by_id[id_hash(id) & t->mask], memory_order_acquire);
       l != NULL; l = atomic_load_explicit(&l->next, memory_order_acquire)) {
    const strata__lver *lv = l->lv;
    if (lv->id == id && lv->version <= version)
      return lv;
  }
  return NULL;
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

/* Makes room for one more id in a growing array of `n` ids (doubled when
 * full, starting at `first`, so that a put allocates only now and then):
 * the dirty list and the changed ids. STRATA_E_NOMEM leaves it as it was. */
static int ids_reserve(uint64_t **v, uint64_t *cap, uint64_t n,
                       uint64_t first) {
  if (n < *cap)
    return 0;
  uint64_t c = *cap ? 2 * *cap : first;
  uint64_t *g = realloc(*v, c * sizeof *g);
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
  STRATA__TRY(ids_reserve(&o->dirty, &o->dirty_cap, o->dirty_n, 16));
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
  bool superseding = false;
  for (strata__link *l = atomic_load_explicit(
           &t->by_id[id_hash(lv->id) & t->mask], memory_order_relaxed);
       l != NULL && !superseding;
       l = atomic_load_explicit(&l->next, memory_order_relaxed))
    superseding = l->lv->id == lv->id;
  uint64_t bytes = 0;
  strata__link *li = palloc(s, sizeof *li, &bytes);
  strata__link *ln = lv->name != NULL ? palloc(s, sizeof *ln, &bytes) : NULL;
  if (li == NULL || (lv->name != NULL && ln == NULL) ||
      (superseding && dirty_push(o, lv->id) < 0) ||
      (!superseding && ids_reserve(&o->ids, &o->ids_cap, o->changed, 64) < 0)) {
    strata__pool_free(s->pool, li, sizeof *li);
    strata__pool_free(s->pool, ln, sizeof *ln);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto index link",
                        s->dir);
  }
  li->lv = lv;
  _Atomic(strata__link *) *head = &t->by_id[id_hash(lv->id) & t->mask];
  atomic_init(&li->next, atomic_load_explicit(head, memory_order_relaxed));
  /* Name link first: a reader that finds the id link may look the name up
   * and must find it too. Each store publishes a fully built link. */
  if (ln != NULL) {
    _Atomic(strata__link *) *nh =
        &t->by_name[name_hash(o, lv->name, lv->name_len) & t->mask];
    ln->lv = lv;
    atomic_init(&ln->next, atomic_load_explicit(nh, memory_order_relaxed));
    atomic_store_explicit(nh, ln, memory_order_release);
  }
  atomic_store_explicit(head, li, memory_order_release);
  o->lvers++;
  if (!superseding) {
    if (o->changed > 0 && lv->id < o->ids[o->changed - 1])
      o->ids_unsorted = true;
    o->ids[o->changed++] = lv->id;
  }
  o->bytes += bytes + lv->alloc_size + lv->size;
  return 0;
}

/* Removes the link to `lv` from the chain at `head`; returns it or NULL. */
static strata__link *unlink_from(_Atomic(strata__link *) *head,
                                 const strata__lver *lv) {
  _Atomic(strata__link *) *pp = head;
  for (strata__link *l = atomic_load_explicit(pp, memory_order_relaxed);
       l != NULL; l = atomic_load_explicit(pp, memory_order_relaxed)) {
    if (l->lv == lv) {
      atomic_store_explicit(
          pp, atomic_load_explicit(&l->next, memory_order_relaxed),
          memory_order_release);
      return l;
    }
    pp = &l->next;
  }
  return NULL;
}

/* A pruned lver and its links, freed together after the grace period. */
typedef struct pruned {
  strata__lver *lv;
  strata__link *links[2];
} pruned;

static void pruned_free(struct strata_store *s, void *obj) {
  pruned *p = obj;
  for (int i = 0; i < 2; i++)
    strata__pool_free(s->pool, p->links[i], sizeof(strata__link));
  strata__lver_free(s, p->lv);
  free(p);
}

/* Prunes one id; returns true when it has no superseded version left. */
static bool prune_id(struct strata_store *s, strata__overlay *o,
                     strata__otable *t, uint64_t id, uint64_t min_version) {
  _Atomic(strata__link *) *pp = &t->by_id[id_hash(id) & t->mask];
  bool seen_visible = false, pending = false;
  for (strata__link *l = atomic_load_explicit(pp, memory_order_relaxed);
       l != NULL; l = atomic_load_explicit(pp, memory_order_relaxed)) {
    strata__lver *lv = l->lv;
    if (lv->id != id) {
      pp = &l->next;
      continue;
    }
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
    /* Both allocations before unlinking: once unlinked, the lver must be
     * retired, or it is lost for good. */
    pruned *p = malloc(sizeof *p);
    strata__retired *rec = malloc(sizeof *rec);
    if (p == NULL || rec == NULL) {
      free(p);
      free(rec);
      return false; /* try again later; nothing was changed */
    }
    p->lv = lv;
    p->links[0] = unlink_from(pp, lv);
    p->links[1] =
        lv->name != NULL
            ? unlink_from(
                  &t->by_name[name_hash(o, lv->name, lv->name_len) & t->mask],
                  lv)
            : NULL;
    uint64_t bytes =
        lv->alloc_size + lv->size + (lv->name ? 2 : 1) * sizeof(strata__link);
    strata__retire_push(s, rec, p, bytes, pruned_free);
    o->lvers--;
    o->bytes -= bytes;
  }
  return !pending;
}

void strata__overlay_prune(struct strata_store *s, strata__overlay *o,
                           uint64_t min_version) {
  if (o->count_records > 1)
    prune_counts(s, o, min_version);
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

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

int strata__overlay_latest(strata__overlay *o, const strata__lver ***out,
                           uint64_t *n) {
  /* The ids come from o->ids, sorted only if some put went backwards
   * (sorting 8-byte ids, not pairs), and each one's newest version is the
   * first link of its id in its chain: one lookup per id. Walking the
   * chains instead meant a walk to the head per link and a qsort of
   * (id, lver) pairs: 38% of issue 19's put + crystallize profile of
   * 100,000 layers put in id order. */
  uint64_t k = o->changed;
  const strata__lver **v = malloc((k ? k : 1) * sizeof *v);
  if (v == NULL)
    return STRATA_E_NOMEM;
  if (o->ids_unsorted)
    qsort(o->ids, k, sizeof *o->ids, cmp_u64);
  o->ids_unsorted = false;
  for (uint64_t i = 0; i < k; i++)
    v[i] = strata__overlay_find(o, o->ids[i], UINT64_MAX);
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
