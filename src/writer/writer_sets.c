/* The writer's in-memory id and name sets: they find a duplicate layer id
 * or name as each layer begins, so that a region with two layers of the
 * same id or name is refused when the layer is added rather than at commit.
 *
 * Both are open-addressing sets of entry numbers (strata__wset). The id set
 * is built only once an id comes out of ascending order: until then a new
 * id can only collide with the last one, and bulk loads in id order (the
 * common case) pay nothing for it. */
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

static uint64_t key_hash(const strata_writer *w, const strata__wset *s,
                         uint32_t entry) {
  const strata__wentry *e = &w->entries[entry];
  if (s == &w->ids)
    return strata__id_hash(e->id, w->set_seed);
  return hash_bytes(w, (const char *)w->strings.p + e->name_off, e->name_len);
}

static void set_insert(strata_writer *w, strata__wset *s, uint32_t entry) {
  uint64_t i = key_hash(w, s, entry) & (s->cap - 1);
  while (s->slots[i] != 0)
    i = (i + 1) & (s->cap - 1);
  s->slots[i] = entry + 1;
  s->used++;
}

/* Rebuilds the set at twice the size when it is half full. */
static int set_reserve(strata_writer *w, strata__wset *s) {
  if (s->cap != 0 && (s->used + 1) * 2 <= s->cap)
    return 0;
  STRATA__TRY(set_grow(s));
  for (uint64_t i = 0; i < w->n; i++) {
    if (s == &w->names && w->entries[i].name_len == 0)
      continue;
    set_insert(w, s, (uint32_t)i);
  }
  return 0;
}

int strata__writer_build_id_set(strata_writer *w) {
  uint64_t cap = 1024;
  while (cap < 2 * (w->n + 1))
    cap *= 2;
  uint32_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the id set", w->path);
  free(w->ids.slots);
  w->ids = (strata__wset){.slots = slots, .cap = cap};
  for (uint64_t i = 0; i < w->n; i++)
    set_insert(w, &w->ids, (uint32_t)i);
  w->ids_indexed = true;
  return 0;
}

int64_t strata__writer_find_id(const strata_writer *w, uint64_t id) {
  const strata__wset *s = &w->ids;
  if (!w->ids_indexed) {
    /* Ascending so far: only the last id can equal a new one. */
    if (w->n > 0 && w->entries[w->n - 1].id == id)
      return (int64_t)w->n - 1;
    return -1;
  }
  if (s->cap == 0)
    return -1;
  for (uint64_t i = strata__id_hash(id, w->set_seed) & (s->cap - 1);
       s->slots[i]; i = (i + 1) & (s->cap - 1))
    if (w->entries[s->slots[i] - 1].id == id)
      return s->slots[i] - 1;
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
  if (w->ids_indexed)
    STRATA__TRY(set_reserve(w, &w->ids));
  if (e->name_len)
    STRATA__TRY(set_reserve(w, &w->names));
  /* A set that set_reserve() just rebuilt holds the entry already: the
   * rebuild covers entries 0 .. w->n - 1, and the caller counted this one
   * in w->n before the call. */
  if (w->ids_indexed && w->ids.used < w->n)
    set_insert(w, &w->ids, entry);
  if (e->name_len &&
      strata__writer_find_name(w, (const char *)w->strings.p + e->name_off,
                               e->name_len) < 0)
    set_insert(w, &w->names, entry);
  return 0;
}
