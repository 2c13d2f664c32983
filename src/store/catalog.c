/* The catalog: the immutable table of regions a snapshot sees, and its
 * replacement by one atomic pointer swap. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* Its address is the mark; it holds nothing and nothing reads it. */
const strata__stack strata__cell_ask;

static int cmp_entry(const void *a, const void *b) {
  uint64_t x = (*(strata__entry *const *)a)->id;
  uint64_t y = (*(strata__entry *const *)b)->id;
  return (x > y) - (x < y);
}

int strata__catalog_build(strata__entry **entries, uint64_t n,
                          strata__catalog **out) {
  uint64_t cap = 8;
  while (cap < 2 * n)
    cap *= 2;
  strata__catalog *c = calloc(1, sizeof *c);
  strata__entry **order = malloc((n ? n : 1) * sizeof *order);
  strata__catalog_cell *by_id = calloc(cap, sizeof *by_id);
  if (c == NULL || order == NULL || by_id == NULL) {
    free(c);
    free(order);
    free(by_id);
    return strata__fail(STRATA_E_NOMEM,
                        "allocating a catalog of %" PRIu64 " regions", n);
  }
  if (n > 0)
    memcpy(order, entries, n * sizeof *order);
  qsort(order, n, sizeof *order, cmp_entry);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t j = strata__catalog_slot(order[i]->id, cap - 1);
    while (by_id[j].e != NULL)
      j = (j + 1) & (cap - 1);
    const strata__entry *e = order[i];
    by_id[j] = (strata__catalog_cell){
        .id = e->id,
        .file = e->file != NULL ? e->file->region : NULL,
        .stack =
            e->file != NULL && e->overlay == NULL ? e->stack : STRATA__CELL_ASK,
        .e = e};
  }
  *c = (strata__catalog){.n = n,
                         .by_order = order,
                         .hmask = cap - 1,
                         .by_id = by_id,
                         .bytes = sizeof *c + n * sizeof *order +
                                  cap * sizeof *by_id};
  *out = c;
  return 0;
}

void strata__catalog_free(strata__catalog *c) {
  if (c == NULL)
    return;
  free(c->by_order);
  free(c->by_id);
  free(c);
}

const strata__entry *strata__catalog_find_name(const strata__catalog *c,
                                               const char *name, size_t len) {
  /* Stores hold tens to thousands of regions and names are looked up once
   * per path, not per layer: a scan is cheaper than another table. */
  for (uint64_t i = 0; i < c->n; i++) {
    const char *n = c->by_order[i]->name;
    if (strncmp(n, name, len) == 0 && n[len] == '\0')
      return c->by_order[i];
  }
  return NULL;
}

strata__entry *strata__entry_new(uint64_t id, const char *name,
                                 const char *metadata, strata__file *file) {
  strata__entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return NULL;
  e->id = id;
  e->name = strdup(name);
  e->metadata = strdup(metadata != NULL ? metadata : "");
  if (e->name == NULL || e->metadata == NULL) {
    free(e->name);
    free(e->metadata);
    free(e);
    return NULL;
  }
  e->file = file;
  return e;
}

void strata__entry_free(struct strata_store *s, void *obj) {
  strata__entry *e = obj;
  strata__file_unref(s, e->file);
  strata__stack_free(s, e->stack);
  free(e->name);
  free(e->metadata);
  free(e);
}

static void catalog_retired(struct strata_store *s, void *c) {
  (void)s;
  strata__catalog_free(c);
}

int strata__catalog_publish(struct strata_store *s, strata__entry **entries,
                            uint64_t n, strata__entry **retire, uint64_t nr) {
  strata__catalog *old =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  strata__catalog *c;
  STRATA__TRY(strata__catalog_build(entries, n, &c));
  strata__retired **recs = calloc(nr + 1, sizeof *recs);
  bool ok = recs != NULL;
  for (uint64_t i = 0; ok && i <= nr; i++)
    ok = (recs[i] = malloc(sizeof **recs)) != NULL;
  if (!ok) {
    for (uint64_t i = 0; recs != NULL && i <= nr; i++)
      free(recs[i]);
    free(recs);
    strata__catalog_free(c);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating retire records",
                        s->dir);
  }
  strata__retire_push(s, recs[0], old, old->bytes, catalog_retired);
  for (uint64_t i = 0; i < nr; i++)
    strata__retire_push(s, recs[i + 1], retire[i], sizeof *retire[i],
                        strata__entry_free);
  free(recs);
  /* The new catalog is visible before the epoch moves on, so a reader that
   * reads the new epoch also reads the new catalog (strata_read_begin). */
  atomic_store_explicit(&s->catalog, c, memory_order_seq_cst);
  strata__ebr_advance(s);
  return 0;
}

int strata__catalog_prepare(struct strata_store *s, strata__entry *entry,
                            uint64_t remove_id, strata__catalog_change *ch) {
  *ch = (strata__catalog_change){0};
  strata__catalog *old =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  uint64_t id = entry != NULL ? entry->id : remove_id;
  strata__entry **list = malloc((old->n + 1) * sizeof *list);
  if (list == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a catalog", s->dir);
  uint64_t n = 0;
  for (uint64_t i = 0; i < old->n; i++) {
    if (old->by_order[i]->id == id)
      ch->replaced = old->by_order[i];
    else
      list[n++] = old->by_order[i];
  }
  if (entry != NULL)
    list[n++] = entry;
  int rc = strata__catalog_build(list, n, &ch->next);
  free(list);
  if (rc == 0) {
    ch->recs[0] = malloc(sizeof *ch->recs[0]);
    ch->recs[1] = ch->replaced ? malloc(sizeof *ch->recs[1]) : NULL;
    if (ch->recs[0] == NULL || (ch->replaced && ch->recs[1] == NULL))
      rc =
          strata__fail(STRATA_E_NOMEM, "%s: allocating retire records", s->dir);
  }
  if (rc < 0)
    strata__catalog_abandon(ch);
  return rc;
}

void strata__catalog_commit(struct strata_store *s,
                            strata__catalog_change *ch) {
  strata__catalog *old =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  strata__retire_push(s, ch->recs[0], old, old->bytes, catalog_retired);
  if (ch->replaced != NULL)
    strata__retire_push(s, ch->recs[1], ch->replaced, sizeof *ch->replaced,
                        strata__entry_free);
  /* As in strata__catalog_publish: the catalog before the epoch. */
  atomic_store_explicit(&s->catalog, ch->next, memory_order_seq_cst);
  strata__ebr_advance(s);
  *ch = (strata__catalog_change){0};
}

void strata__catalog_abandon(strata__catalog_change *ch) {
  strata__catalog_free(ch->next);
  free(ch->recs[0]);
  free(ch->recs[1]);
  *ch = (strata__catalog_change){0};
}

int strata__catalog_swap(struct strata_store *s, strata__entry *entry,
                         uint64_t remove_id) {
  strata__catalog_change ch;
  STRATA__TRY(strata__catalog_prepare(s, entry, remove_id, &ch));
  strata__catalog_commit(s, &ch);
  return 0;
}
