/* A region's stack of delta files over its base (docs/ARCHITECTURE.md,
 * "Deltas"): the id table built when an entry is published, and the reads
 * of an entry's files through it. The search of the directory for each
 * base's chain is store_scan.c's. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* ---- the id table -------------------------------------------------------- */

static int cmp_slot(const void *pa, const void *pb) {
  const strata__stack_slot *a = pa, *b = pb;
  if (a->id != b->id)
    return (a->id > b->id) - (a->id < b->id);
  /* The newest delta first, so that the first of an id is its version. */
  return (a->delta < b->delta) - (a->delta > b->delta);
}

/* The error of a delta whose iteration stopped at position `pos` (the
 * iterator's), wrapping the region's detail (which names the layer) with
 * the delta's depth and the file offset of the index entry, or of the id
 * order slot (sparse), being read. */
static int delta_unreadable(const strata__file *base, const strata__file *f,
                            uint32_t depth, uint64_t pos, int rc) {
  const strata_region *r = f->region;
  uint64_t off = r->dense ? r->index_offset + pos * STRATA__ENTRY_SIZE
                          : (uint64_t)(r->id_order - r->base) + 4 * pos;
  char detail[512];
  snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
  return strata__fail(rc,
                      "%s: delta of depth %" PRIu32 " over %s: its index "
                      "fails at %s %" PRIu64 " (file offset %" PRIu64 "): %s",
                      f->path, depth, base->path,
                      r->dense ? "entry" : "id order slot", pos, off, detail);
}

int strata__stack_new(const strata__file *base, strata__file **files,
                      uint32_t n, strata__stack **out, uint32_t *bad) {
  uint64_t total = 0;
  for (uint32_t d = 0; d < n; d++)
    total += strata_region_layer_count(files[d]->region);
  strata__stack *st = calloc(1, sizeof *st);
  strata__file **deltas = malloc((n ? n : 1) * sizeof *deltas);
  strata__stack_slot *slots = malloc((total ? total : 1) * sizeof *slots);
  if (st == NULL || deltas == NULL || slots == NULL) {
    free(st);
    free(deltas);
    free(slots);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a delta stack",
                        base->path);
  }
  /* Every version of every id, then sorted by id with the newest delta
   * first and cut to one per id. A delta whose iteration fails part way
   * fails the whole stack: leaving out its remaining layers would serve
   * the versions below them, a mix of two states of the region. */
  uint64_t m = 0;
  int rc = 0;
  for (uint32_t d = 0; d < n && rc == 0; d++) {
    const strata_region *r = files[d]->region;
    strata_region_iter it;
    strata_region_iter_init(r, &it);
    strata_layer l;
    while ((rc = strata_region_next(&it, &l)) > 0) {
      bool tomb = (l.flags & STRATA_LAYER_TOMBSTONE) != 0;
      slots[m++] = (strata__stack_slot){
          .id = l.id,
          .entry = (uint64_t)strata__find_entry(r, l.id),
          .off = tomb ? 0 : (uint64_t)((const uint8_t *)l.data - r->data),
          .size = tomb ? 0 : l.size,
          .delta = d,
          .tomb = tomb};
    }
    if (rc < 0) {
      if (bad != NULL)
        *bad = d;
      rc = delta_unreadable(base, files[d], d + 1, it.pos, rc);
    }
  }
  if (rc < 0) {
    free(st);
    free(deltas);
    free(slots);
    return rc;
  }
  if (m > 1)
    qsort(slots, m, sizeof *slots, cmp_slot);
  uint64_t k = 0;
  int64_t layer_delta = 0;
  for (uint64_t i = 0; i < m; i++) {
    if (k > 0 && slots[k - 1].id == slots[i].id)
      continue;
    slots[k++] = slots[i];
    bool in_base = strata__find_entry(base->region, slots[i].id) >= 0;
    if (slots[i].tomb && in_base)
      layer_delta--;
    else if (!slots[i].tomb && !in_base)
      layer_delta++;
  }
  /* The table at most half full; the filter one word per 4 ids at least
   * (store_internal.h, strata__stack). */
  uint64_t cap = 8, words = 1;
  while (cap < 2 * k)
    cap *= 2;
  while (words * 4 < k)
    words *= 2;
  /* Cache-line aligned: two 32-byte cells a line, none across two. */
  strata__stack_cell *table = aligned_alloc(64, cap * sizeof *table);
  if (table != NULL)
    memset(table, 0, cap * sizeof *table);
  uint64_t *filter = calloc(words, sizeof *filter);
  if (table == NULL || filter == NULL || k >= UINT32_MAX) {
    free(table);
    free(filter);
    free(st);
    free(deltas);
    free(slots);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a delta stack",
                        base->path);
  }
  *st = (strata__stack){
      .filter = filter, .fmask = words - 1, .table = table, .mask = cap - 1};
  for (uint64_t i = 0; i < k; i++) {
    uint64_t h = strata__stack_hash(slots[i].id);
    filter[strata__stack_word_at(st, h)] |= strata__stack_bits(h);
    uint64_t j = strata__stack_cell_at(st, h);
    while (table[j].slot != 0)
      j = (j + 1) & (cap - 1);
    const strata__stack_slot *sl = &slots[i];
    table[j] = (strata__stack_cell){
        .id = sl->id,
        .data = sl->tomb ? NULL : files[sl->delta]->region->data + sl->off,
        .size = sl->size,
        .slot = i + 1};
  }
  memcpy(deltas, files, n * sizeof *deltas);
  st->n = n;
  st->deltas = deltas;
  st->slots = slots;
  st->nslots = k;
  st->layer_delta = layer_delta;
  st->refs = 1;
  *out = st;
  return 0;
}

void strata__stack_free(struct strata_store *s, strata__stack *st) {
  if (st == NULL || --st->refs > 0)
    return;
  for (uint32_t d = 0; d < st->n; d++)
    strata__file_unref(s, st->deltas[d]);
  free(st->deltas);
  free(st->slots);
  free(st->table);
  free(st->filter);
  free(st);
}

/* ---- reads through an entry's files ------------------------------------- */

int strata__entry_file_get(const strata__entry *e, uint64_t id,
                           strata_layer *out) {
  if (e->stack != NULL) {
    const strata__stack_slot *sl = strata__stack_find(e->stack, id);
    if (sl != NULL) {
      if (sl->tomb)
        return 0;
      strata__layer_from_entry(e->stack->deltas[sl->delta]->region, sl->entry,
                               out);
      return 1;
    }
  }
  uint64_t i, off, size;
  if (e->file == NULL ||
      !strata__region_find(e->file->region, id, &i, &off, &size))
    return 0;
  strata__layer_from_entry(e->file->region, i, out);
  return 1;
}

int strata__entry_file_get_by_name(const strata__entry *e, const char *name,
                                   size_t len, strata_layer *out) {
  strata_layer l;
  const strata__stack *st = e->stack;
  /* Newest file first; a hit in delta d is current when d holds the
   * newest version of its id, one in the base when no delta holds it. */
  for (uint32_t d = st != NULL ? st->n : 0; d-- > 0;) {
    if (strata_region_get_by_name(st->deltas[d]->region, name, len, &l) != 0)
      continue;
    const strata__stack_slot *sl = strata__stack_find(st, l.id);
    if (sl != NULL && sl->delta == d && !sl->tomb) {
      *out = l;
      return 1;
    }
  }
  if (e->file == NULL ||
      strata_region_get_by_name(e->file->region, name, len, &l) != 0 ||
      (st != NULL && strata__stack_find(st, l.id) != NULL))
    return 0;
  *out = l;
  return 1;
}

uint64_t strata__entry_file_layers(const strata__entry *e) {
  uint64_t n = e->file != NULL ? strata_region_layer_count(e->file->region) : 0;
  return e->stack != NULL ? n + (uint64_t)e->stack->layer_delta : n;
}

void strata__files_iter_init(const strata__entry *e, strata__files_iter *it) {
  *it = (strata__files_iter){.e = e, .file_done = e->file == NULL};
  if (e->file != NULL)
    strata_region_iter_init(e->file->region, &it->file);
}

int strata__files_next(strata__files_iter *it, strata_layer *out) {
  const strata__stack *st = it->e->stack;
  /* The base's next layer that no delta replaces or removes. */
  while (!it->have_pending && !it->file_done) {
    int rc = strata_region_next(&it->file, &it->pending);
    if (rc < 0)
      return rc;
    if (rc == 0)
      it->file_done = true;
    else
      it->have_pending =
          st == NULL || strata__stack_find(st, it->pending.id) == NULL;
  }
  while (st != NULL && it->sk < st->nslots && st->slots[it->sk].tomb)
    it->sk++;
  bool slot = st != NULL && it->sk < st->nslots &&
              (!it->have_pending || st->slots[it->sk].id < it->pending.id);
  if (slot) {
    const strata__stack_slot *sl = &st->slots[it->sk++];
    strata__layer_from_entry(st->deltas[sl->delta]->region, sl->entry, out);
    return 1;
  }
  if (!it->have_pending)
    return 0;
  it->have_pending = false;
  *out = it->pending;
  return 1;
}
