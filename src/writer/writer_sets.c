/* The writer's in-memory id and name sets: they find a duplicate layer id
 * or name as each layer begins, so that a region with two layers of the
 * same id or name is refused when the layer is added rather than at commit.
 *
 * The name set is an open-addressing set of entry numbers (strata__wset).
 * The id set (strata__idset) holds the ids themselves: one probe reads one
 * slot, where a set of entry numbers also reads the entry, a second cache
 * miss per layer once the entries outgrow the cache (issue 19 measured the
 * set at 12% of a 4M-layer build with random ids). It is built only once an
 * id comes out of ascending order: until then a new id can only collide
 * with the last one, and bulk loads in id order (the common case) pay
 * nothing for it. */
#include <stdlib.h>
#include <string.h>

#include "writer/writer_internal.h"

/* The sets hash with a per-writer random seed, so that ids or names chosen
 * to collide cannot make adding layers quadratic. */
static uint64_t hash_bytes(const strata_writer *w, const char *s, size_t len) {
  return XXH3_64bits_withSeed(s, len, w->set_seed);
}

static int set_grow(strata__wset *s) {
  uint64_t cap = s->cap ? s->cap * 2 : 1024;
  uint32_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return STRATA_E_NOMEM;
  free(s->slots);
  s->slots = slots;
  s->cap = cap;
  s->used = 0;
  return 0;
}

static void name_insert(strata_writer *w, uint32_t entry) {
  strata__wset *s = &w->names;
  const strata__wentry *e = &w->entries[entry];
  uint64_t i =
      hash_bytes(w, (const char *)w->strings.p + e->name_off, e->name_len) &
      (s->cap - 1);
  while (s->slots[i] != 0)
    i = (i + 1) & (s->cap - 1);
  s->slots[i] = entry + 1;
  s->used++;
}

/* Rebuilds the name set at twice the size when it is half full. */
static int names_reserve(strata_writer *w) {
  strata__wset *s = &w->names;
  if (s->cap != 0 && (s->used + 1) * 2 <= s->cap)
    return 0;
  STRATA__TRY(set_grow(s));
  for (uint64_t i = 0; i < w->n; i++)
    if (w->entries[i].name_len != 0)
      name_insert(w, (uint32_t)i);
  return 0;
}

/* Adds a non-zero id that is not in the set (room is reserved). */
static void id_insert(strata__idset *s, uint64_t seed, uint64_t id) {
  uint64_t i = strata__id_hash(id, seed) & (s->cap - 1);
  while (s->slots[i] != 0)
    i = (i + 1) & (s->cap - 1);
  s->slots[i] = id;
  s->used++;
}

static void id_add(strata__idset *s, uint64_t seed, uint64_t id) {
  if (id == 0)
    s->has_zero = true;
  else
    id_insert(s, seed, id);
}

/* Makes the table `cap` slots large, keeping its ids. */
static int ids_rehash(strata__idset *s, uint64_t seed, uint64_t cap) {
  uint64_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return STRATA_E_NOMEM;
  strata__idset t = {.slots = slots, .cap = cap, .has_zero = s->has_zero};
  for (uint64_t i = 0; i < s->cap; i++)
    if (s->slots[i] != 0)
      id_insert(&t, seed, s->slots[i]);
  free(s->slots);
  *s = t;
  return 0;
}

int strata__writer_build_id_set(strata_writer *w) {
  uint64_t cap = 1024;
  while (cap < 2 * (w->n + 1))
    cap *= 2;
  uint64_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the id set", w->path);
  free(w->ids.slots);
  w->ids = (strata__idset){.slots = slots, .cap = cap};
  for (uint64_t i = 0; i < w->n; i++)
    id_add(&w->ids, w->set_seed, w->entries[i].id);
  w->ids_indexed = true;
  return 0;
}

/* Whether the id set holds `id`. */
static bool ids_has(const strata__idset *s, uint64_t seed, uint64_t id) {
  if (id == 0)
    return s->has_zero;
  for (uint64_t i = strata__id_hash(id, seed) & (s->cap - 1); s->slots[i];
       i = (i + 1) & (s->cap - 1))
    if (s->slots[i] == id)
      return true;
  return false;
}

int64_t strata__writer_find_id(const strata_writer *w, uint64_t id) {
  if (!w->ids_indexed) {
    /* Ascending so far: only the last id can equal a new one. */
    if (w->n > 0 && w->entries[w->n - 1].id == id)
      return (int64_t)w->n - 1;
    return -1;
  }
  if (!ids_has(&w->ids, w->set_seed, id))
    return -1;
  /* A duplicate: the error names the layer that holds the id, so find it
   * (once, on the error path). */
  for (uint64_t i = 0; i < w->n; i++)
    if (w->entries[i].id == id)
      return (int64_t)i;
  return -1;
}

int64_t strata__writer_find_name(const strata_writer *w, const char *name,
                                 size_t len) {
  const strata__wset *s = &w->names;
  if (s->cap == 0)
    return -1;
  for (uint64_t i = hash_bytes(w, name, len) & (s->cap - 1); s->slots[i];
       i = (i + 1) & (s->cap - 1)) {
    const strata__wentry *e = &w->entries[s->slots[i] - 1];
    if (e->name_len == len &&
        memcmp(w->strings.p + e->name_off, name, len) == 0)
      return s->slots[i] - 1;
  }
  return -1;
}

int strata__writer_sets_add(strata_writer *w, uint32_t entry) {
  const strata__wentry *e = &w->entries[entry];
  strata__idset *ids = &w->ids;
  if (w->ids_indexed) {
    /* Twice the size when half full; the entry is not in it yet. */
    if ((ids->used + 1) * 2 > ids->cap)
      STRATA__TRY(ids_rehash(ids, w->set_seed, ids->cap * 2));
    id_add(ids, w->set_seed, e->id);
  }
  if (e->name_len == 0)
    return 0;
  STRATA__TRY(names_reserve(w));
  /* A set that names_reserve() just rebuilt holds the entry already: the
   * rebuild covers entries 0 .. w->n - 1, and the caller counted this one
   * in w->n before the call. */
  if (strata__writer_find_name(w, (const char *)w->strings.p + e->name_off,
                               e->name_len) < 0)
    name_insert(w, entry);
  return 0;
}
