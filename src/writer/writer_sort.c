/* The two orders commit puts the writer's entries in: id order (to tell
 * dense from sparse ids, for ID_ORDER and the packed locators) and, for
 * sparse ids, slot order (INDEX and LOCATORS are written by slot).
 *
 * Neither uses a comparison sort. Issue 19 profiled a 4M-layer build with
 * random ids at 27% in two qsort() calls over the 72-byte entries: qsort
 * moves the entries themselves log2(n) times and calls a comparator per
 * step. Here the ids are radix-sorted as 16-byte (id, position) pairs; the
 * slots are distinct numbers below the slot count, so their order is found
 * by a scatter, with no sort at all. The entries move once: into id order
 * when the ids are dense, or straight into slot order when they are sparse
 * (the pairs give the id order the slots are computed in), which spares
 * a 4M-layer build a random pass over 288 MB of entries. Both give the
 * order qsort gave (ids and slots are distinct), so the file is byte for
 * byte what it was. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "writer/writer_internal.h"

/* 11-bit digits: six passes cover 64 bits, and the 2048 counters of a pass
 * (16 KiB) stay in the L1 cache while the pass scatters. */
#define DIGIT_BITS 11
#define DIGITS 2048
#define PASSES 6

typedef strata__id_pos id_pos;

/* Replaces w->entries by the entries at positions order(0..n-1), where
 * order(k) is the k-th member of `pos` read with stride `stride` (in
 * uint64_t). */
static int gather(strata_writer *w, const uint64_t *pos, size_t stride) {
  uint64_t n = w->n;
  if (n == 0)
    return 0;
  strata__wentry *e = strata__entries_alloc(n);
  if (e == NULL)
    return STRATA_E_NOMEM;
  for (uint64_t k = 0; k < n; k++)
    e[k] = w->entries[pos[k * stride]];
  strata__entries_free(w->entries, w->cap);
  w->entries = e;
  w->cap = n;
  return 0;
}

/* A repeated id, now adjacent in the sorted pairs (the sort is stable, so
 * the earlier layer comes first). Only a writer with
 * STRATA_WRITER_CHECK_IDS_AT_COMMIT can hold one: without it begin_layer()
 * refused the repeat. */
static int find_repeat(const strata_writer *w, const id_pos *a) {
  for (uint64_t k = 1; k < w->n; k++) {
    if (a[k].id != a[k - 1].id)
      continue;
    const strata__wentry *e = &w->entries[a[k].pos];
    const strata__wentry *f = &w->entries[a[k - 1].pos];
    return strata__fail(
        STRATA_E_DUPLICATE,
        "%s: %s %" PRIu64 ": duplicate id (added as %s number %" PRIu64
        " and again as number %" PRIu64 ", counting from 0)",
        w->path, e->flags ? "tombstone" : "layer", a[k].id,
        f->flags ? "tombstone" : "layer", a[k - 1].pos, a[k].pos);
  }
  return 0;
}

int strata__writer_id_order(strata_writer *w, strata__id_pos **out) {
  uint64_t n = w->n;
  uint64_t i = 1;
  *out = NULL;
  while (i < n && w->entries[i - 1].id < w->entries[i].id)
    i++;
  if (i >= n)
    return 0; /* in order already: the usual case of a bulk load */
  id_pos *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  uint32_t(*count)[DIGITS] = calloc(PASSES, sizeof *count);
  if (a == NULL || b == NULL || count == NULL) {
    free(a);
    free(b);
    free(count);
    return STRATA_E_NOMEM;
  }
  /* One pass counts every digit of every id (n < 2^32: u32 counters). */
  for (uint64_t k = 0; k < n; k++) {
    uint64_t id = w->entries[k].id;
    a[k] = (id_pos){id, k};
    for (int d = 0; d < PASSES; d++)
      count[d][(id >> (d * DIGIT_BITS)) & (DIGITS - 1)]++;
  }
  for (int d = 0; d < PASSES; d++) {
    /* A digit that every id shares (the high bits of small ids) does not
     * reorder anything: skip its pass. */
    uint32_t *c = count[d];
    uint64_t first = (a[0].id >> (d * DIGIT_BITS)) & (DIGITS - 1);
    if (c[first] == n)
      continue;
    uint32_t sum = 0;
    for (int v = 0; v < DIGITS; v++) {
      uint32_t k = c[v];
      c[v] = sum;
      sum += k;
    }
    for (uint64_t k = 0; k < n; k++)
      b[c[(a[k].id >> (d * DIGIT_BITS)) & (DIGITS - 1)]++] = a[k];
    id_pos *t = a;
    a = b;
    b = t;
  }
  free(b);
  free(count);
  int rc = find_repeat(w, a);
  if (rc < 0) {
    free(a);
    return rc;
  }
  *out = a;
  return 0;
}

int strata__writer_apply_order(strata_writer *w, const id_pos *order) {
  return order != NULL
             ? gather(w, &order[0].pos, sizeof *order / sizeof(uint64_t))
             : 0;
}

int strata__writer_order_by_slot(strata_writer *w, const id_pos *order,
                                 const uint64_t *slot, uint64_t slots) {
  uint64_t n = w->n;
  /* by_slot[s]: the entry in slot s, or UINT64_MAX for an unused slot. */
  uint64_t *by_slot = malloc(slots * sizeof *by_slot);
  strata__wentry *e = n > 0 ? strata__entries_alloc(n) : NULL;
  if (by_slot == NULL || (n > 0 && e == NULL)) {
    free(by_slot);
    strata__entries_free(e, n);
    return STRATA_E_NOMEM;
  }
  memset(by_slot, 0xff, slots * sizeof *by_slot);
  for (uint64_t k = 0; k < n; k++)
    by_slot[slot[k]] = order != NULL ? order[k].pos : k;
  /* The one gather: each entry lands in slot order and learns its slot
   * (its entry number in the file). */
  uint64_t k = 0;
  for (uint64_t s = 0; s < slots; s++) {
    if (by_slot[s] == UINT64_MAX)
      continue;
    e[k] = w->entries[by_slot[s]];
    e[k].hash = s;
    k++;
  }
  free(by_slot);
  if (n > 0) {
    strata__entries_free(w->entries, w->cap);
    w->entries = e;
    w->cap = n;
  }
  return 0;
}
