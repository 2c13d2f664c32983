/* The read side of a store: snapshots and lookups. Nothing here takes a
 * lock, allocates (after a thread's first snapshot), or makes a system
 * call; see ebr.c for why a snapshot keeps what it reads alive. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_check.h"
#include "store/store_internal.h"
#include "store/store_sample.h"

/* Counts a lookup in the snapshot itself (the caller's memory, hot in its
 * cache); strata_read_end() adds the counts to the thread's slot. The txn
 * is declared const in the lookup functions' signatures because lookups do
 * not change what the snapshot sees; its counters are the one exception. */
static inline void count_get(const strata_txn *txn, bool found,
                             uint64_t bytes) {
  /* Counted whether or not the store keeps statistics: two additions to
   * the caller's memory cost less than the test that would skip them;
   * read_end folds them into the slot only when the store counts. */
  strata__txn *t = strata__txn_priv(txn);
  t->gets++;
  if (found)
    t->bytes += bytes;
  else
    t->misses++;
}

/* Samples one lookup in so many for the staging pool's hot layers: when
 * nobody samples, a test of a word of the txn; otherwise an increment and
 * a test on the thread's own slot, which read_begin has just written. */
static inline void sample(const strata_txn *txn, uint64_t region_id,
                          uint64_t layer_id) {
  const strata__txn *t = strata__txn_priv(txn);
  if (__builtin_expect(t->ring != NULL, 0) &&
      (++t->slot->tick & t->slot->sample_mask) == 0)
    strata__sample_push(t->ring, region_id, layer_id);
}

/* sample() for the single lookups' hit path, which ends with it: when
 * somebody samples, the rest runs in a function the hit path jumps to, so
 * that the hit path itself makes no call (see file_only()). Returns 0. */
static __attribute__((noinline)) int
sample_hit(const strata_txn *txn, uint64_t region_id, uint64_t layer_id) {
  sample(txn, region_id, layer_id);
  return 0;
}

static inline __attribute__((always_inline)) int
sampled_hit(const strata_txn *txn, uint64_t region_id, uint64_t layer_id) {
  if (__builtin_expect(strata__txn_priv(txn)->ring != NULL, 0))
    return sample_hit(txn, region_id, layer_id);
  return 0;
}

static void add(_Atomic uint64_t *counter, uint64_t v) {
  /* Only the owner thread writes: a load and a store, no read-modify-write. */
  atomic_store_explicit(counter,
                        atomic_load_explicit(counter, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

int strata_read_begin(strata_store *s, strata_txn *txn) {
  if (txn == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_read_begin: NULL txn");
  *strata__txn_priv(txn) = (strata__txn){0};
  if (s == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_read_begin: NULL store");
  strata__reader *r;
  STRATA__TRY(strata__ebr_slot(s, &r));
  if (r->depth++ == 0) {
    /* Only this thread writes `begins`: a load and a store, no atomic
     * read-modify-write. */
    atomic_store_explicit(
        &r->begins, atomic_load_explicit(&r->begins, memory_order_relaxed) + 1,
        memory_order_relaxed);
    atomic_store_explicit(&r->epoch,
                          atomic_load_explicit(&s->epoch, memory_order_seq_cst),
                          memory_order_seq_cst);
  }
  /* Read a catalog and an epoch that belong together: writers publish a
   * catalog before advancing the epoch, so if the catalog is unchanged
   * around the epoch read, it was current when that epoch was. */
  const strata__catalog *c;
  uint64_t v;
  do {
    c = atomic_load_explicit(&s->catalog, memory_order_seq_cst);
    v = atomic_load_explicit(&s->epoch, memory_order_seq_cst);
  } while (atomic_load_explicit(&s->catalog, memory_order_seq_cst) != c);
  *strata__txn_priv(txn) = (strata__txn){.store = s,
                                         .catalog = c,
                                         .slot = r,
                                         .version = v,
                                         .count = s->count_reads,
                                         .ring = r->ring};
  return 0;
}

void strata_read_end(strata_txn *txn) {
  strata__txn *t = strata__txn_priv(txn);
  if (txn == NULL || t->slot == NULL)
    return;
  strata__reader *r = t->slot;
  if (t->count && t->gets != 0) {
    add(&r->gets, t->gets);
    add(&r->misses, t->misses);
    add(&r->bytes, t->bytes);
    t->gets = t->misses = t->bytes = 0;
  }
  if (r->depth > 0 && --r->depth == 0) {
    atomic_store_explicit(&r->epoch, 0, memory_order_release);
  }
  t->slot = NULL;
  t->catalog = NULL;
  t->hint_file = NULL;
}

/* What an empty proto layer's data points at: a found layer's data is
 * never NULL, so that get_many's NULL means a miss only. */
static const uint8_t empty_content[1];

static void fill_from_lver(const strata__lver *lv, strata_layer *out) {
  *out = (strata_layer){.id = lv->id,
                        .data = lv->data != NULL ? lv->data : empty_content,
                        .size = lv->size,
                        .name = lv->name,
                        .name_len = lv->name_len,
                        .metadata = lv->metadata,
                        .metadata_len = lv->metadata_len,
                        .checksum = lv->checksum};
}

static const strata__entry *find_entry(const strata_txn *txn,
                                       uint64_t region_id) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL)
    return NULL;
  return strata__catalog_find(strata__txn_priv(txn)->catalog, region_id);
}

/* The lookup without error details, shared by strata_get and get_many:
 * 1 found, 0 no such layer, -1 no such region. */
static int lookup(const strata_txn *txn, const strata__entry *e,
                  uint64_t layer_id, strata_layer *out) {
  if (e == NULL)
    return -1;
  if (e->overlay != NULL) {
    const strata__lver *lv = strata__overlay_find(
        e->overlay, layer_id, strata__txn_priv(txn)->version);
    if (lv != NULL) {
      if (lv->flags & STRATA__LV_TOMBSTONE)
        return 0;
      fill_from_lver(lv, out);
      return 1;
    }
  }
  if (e->stack != NULL)
    return strata__entry_file_get(e, layer_id, out);
  uint64_t i, off, size;
  if (e->file == NULL ||
      !strata__region_find(e->file->region, layer_id, &i, &off, &size))
    return 0;
  strata__layer_from_entry(e->file->region, i, out);
  return 1;
}

/* The hit path of the single lookups (strata_get, strata_get_data): the
 * region file of `region_id` when it answers without the entry (the
 * region has a file and no proto), with *stack set to its deltas (NULL:
 * none); else NULL. One probe of the catalog, all inline; a region with a
 * proto, a miss and every error go to the out-of-line rest of each
 * function, so that the hit path makes no call and saves few registers.
 * The hit path looks up with strata__region_find_in(..., false): an entry
 * whose chunk is not validated yet reads as a miss there, and the rest
 * (the validating lookup) answers; then nothing on the hit path is a call
 * but tail calls, and it saves no callee-saved registers: on dense ids
 * (a cache miss for the locator and one for the content per get) this
 * lets more gets overlap (docs/BENCHMARKS.md, issue 18 step 3). A region
 * with deltas jumps from here to its own hit path (stacked_find()). */
static inline __attribute__((always_inline)) const strata_region *
file_only(const strata_txn *txn, uint64_t region_id,
          const strata__stack **stack) {
  if (__builtin_expect(txn == NULL, 0))
    return NULL;
  strata__txn *t = strata__txn_priv(txn);
  const strata_region *r = t->hint_file;
  if (__builtin_expect(r != NULL && t->hint_id == region_id, 1)) {
    *stack = t->hint_stack;
    return r;
  }
  const strata__catalog *c = t->catalog;
  if (__builtin_expect(c == NULL, 0))
    return NULL;
  const strata__catalog_cell *sl = strata__catalog_probe(c, region_id);
  if (__builtin_expect(sl == NULL || sl->stack == STRATA__CELL_ASK, 0))
    return NULL;
  t->hint_file = sl->file;
  t->hint_stack = sl->stack;
  t->hint_id = region_id;
  *stack = sl->stack;
  return sl->file;
}

/* The lookup of the hit path in a region with deltas `st` over base file
 * `r` and no proto: the stack's filter and table (which answer most ids,
 * those in no delta, from the filter), then the base's lookup as on a
 * compacted region. True when a delta or the base holds a layer (*in set
 * to its file, *i, *off, *len to its entry and content); false for a
 * tombstone, a miss or an entry not validated yet, which the rest
 * answers. No second catalog probe: the stack came with the cell. */
static inline __attribute__((always_inline)) bool
stacked_find(const strata_region *r, const strata__stack *st, uint64_t layer_id,
             const strata_region **in, uint64_t *i, uint64_t *off,
             uint64_t *len) {
  const strata__stack_slot *sl = strata__stack_find(st, layer_id);
  if (sl != NULL) {
    *in = st->deltas[sl->delta]->region;
    *i = sl->entry;
    *off = sl->off;
    *len = sl->size;
    return !sl->tomb;
  }
  *in = r;
  return strata__region_find_in(r, layer_id, i, off, len, false);
}

/* strata_get when the hit path did not answer. */
static __attribute__((noinline, cold)) int get_rest(const strata_txn *txn,
                                                    uint64_t region_id,
                                                    uint64_t layer_id,
                                                    strata_layer *out) {
  const strata__entry *e = find_entry(txn, region_id);
  int found = lookup(txn, e, layer_id, out);
  if (txn != NULL)
    count_get(txn, found > 0, found > 0 ? out->size : 0);
  if (found > 0) {
    sample(txn, region_id, layer_id);
    return 0;
  }
  if (found < 0)
    return strata__fail(STRATA_E_NO_REGION,
                        "region %" PRIu64 ": not in the store", region_id);
  return strata__fail(STRATA_E_NOT_FOUND,
                      "region %" PRIu64 " (%s): no layer %" PRIu64, region_id,
                      e->name, layer_id);
}

/* The end of strata_get's hit path: the layer of entry `i` of file `r`,
 * with its content (at `off`, `len` bytes) from the locator, as
 * strata_region_get() does: the content pointer then does not wait for
 * the entry's cache miss. */
static inline __attribute__((always_inline)) int
get_hit(const strata_txn *txn, const strata_region *r, uint64_t i, uint64_t off,
        uint64_t len, uint64_t region_id, uint64_t layer_id,
        strata_layer *out) {
  strata__layer_from_entry(r, i, out);
  out->data = r->data + off;
  out->size = len;
  count_get(txn, true, len);
  return sampled_hit(txn, region_id, layer_id);
}

/* strata_get's hit path in a region with deltas, which file_only() has
 * just made the snapshot's hint (its file and stack are read from there).
 * Reached by a tail call, so that the compacted region's hit path saves
 * no registers: hence no more arguments than registers carry. */
static __attribute__((noinline)) int get_stacked(const strata_txn *txn,
                                                 uint64_t region_id,
                                                 uint64_t layer_id,
                                                 strata_layer *out) {
  const strata__txn *t = strata__txn_priv(txn);
  const strata_region *r = t->hint_file, *in;
  const strata__stack *st = t->hint_stack;
  uint64_t i, off, len;
  if (!stacked_find(r, st, layer_id, &in, &i, &off, &len))
    return get_rest(txn, region_id, layer_id, out);
  return get_hit(txn, in, i, off, len, region_id, layer_id, out);
}

int strata_get(const strata_txn *txn, uint64_t region_id, uint64_t layer_id,
               strata_layer *out) {
  const strata__stack *st = NULL;
  const strata_region *r = file_only(txn, region_id, &st);
  uint64_t i, off, len;
  if (r != NULL && st != NULL)
    return get_stacked(txn, region_id, layer_id, out);
  if (r == NULL || !strata__region_find_in(r, layer_id, &i, &off, &len, false))
    return get_rest(txn, region_id, layer_id, out);
  return get_hit(txn, r, i, off, len, region_id, layer_id, out);
}

/* The proto's say on a layer of a region that has one: 1 the proto holds
 * a version (*data and *size set), 0 it removed the layer, -1 it did not
 * change it as of the snapshot (the file's layer, if any, stands). */
static inline int overlay_data(const strata_txn *txn, const strata__entry *e,
                               uint64_t layer_id, const void **data,
                               uint64_t *size) {
  const strata__lver *lv = strata__overlay_find(e->overlay, layer_id,
                                                strata__txn_priv(txn)->version);
  if (lv == NULL)
    return -1;
  if (lv->flags & STRATA__LV_TOMBSTONE)
    return 0;
  *data = lv->data != NULL ? lv->data : empty_content;
  *size = lv->size;
  return 1;
}

/* strata_get_data when the hit path did not answer. */
static __attribute__((noinline, cold)) int
get_data_rest(const strata_txn *txn, uint64_t region_id, uint64_t layer_id,
              const void **data, uint64_t *size) {
  const strata__entry *e = find_entry(txn, region_id);
  if (e == NULL) {
    if (txn != NULL)
      count_get(txn, false, 0);
    return strata__fail(STRATA_E_NO_REGION,
                        "region %" PRIu64 ": not in the store", region_id);
  }
  int found =
      e->overlay != NULL ? overlay_data(txn, e, layer_id, data, size) : -1;
  uint64_t i, off, len;
  if (found < 0 && e->stack != NULL)
    found = strata__stack_data(e->stack, layer_id, data, size);
  if (found < 0) {
    found = e->file != NULL &&
            strata__region_find(e->file->region, layer_id, &i, &off, &len);
    if (found) {
      *data = e->file->region->data + off;
      *size = len;
    }
  }
  if (found > 0) {
    count_get(txn, true, *size);
    sample(txn, region_id, layer_id);
    return 0;
  }
  count_get(txn, false, 0);
  return strata__fail(STRATA_E_NOT_FOUND,
                      "region %" PRIu64 " (%s): no layer %" PRIu64, region_id,
                      e->name, layer_id);
}

/* The end of strata_get_data's hit path: the content at `p`, `len`
 * bytes. */
static inline __attribute__((always_inline)) int
get_data_hit(const strata_txn *txn, const void *p, uint64_t len,
             uint64_t region_id, uint64_t layer_id, const void **data,
             uint64_t *size) {
  *data = p;
  *size = len;
  count_get(txn, true, len);
  return sampled_hit(txn, region_id, layer_id);
}

/* strata_get_data's hit path in a region with deltas (as get_stacked),
 * which needs no entry: an id in a delta is answered from its table cell
 * alone. */
static __attribute__((noinline)) int
get_data_stacked(const strata_txn *txn, uint64_t region_id, uint64_t layer_id,
                 const void **data, uint64_t *size) {
  const strata__txn *t = strata__txn_priv(txn);
  const strata_region *r = t->hint_file;
  const strata__stack *st = t->hint_stack;
  const strata__stack_cell *c =
      strata__stack_cell_h(st, layer_id, strata__stack_hash(layer_id));
  uint64_t i, off, len;
  if (c != NULL) {
    if (c->data == NULL) /* a tombstone: the rest reports the miss */
      return get_data_rest(txn, region_id, layer_id, data, size);
    return get_data_hit(txn, c->data, c->size, region_id, layer_id, data, size);
  }
  if (!strata__region_find_in(r, layer_id, &i, &off, &len, false))
    return get_data_rest(txn, region_id, layer_id, data, size);
  return get_data_hit(txn, r->data + off, len, region_id, layer_id, data, size);
}

int strata_get_data(const strata_txn *txn, uint64_t region_id,
                    uint64_t layer_id, const void **data, uint64_t *size) {
  const strata__stack *st = NULL;
  const strata_region *r = file_only(txn, region_id, &st);
  uint64_t i, off, len;
  if (r != NULL && st != NULL)
    return get_data_stacked(txn, region_id, layer_id, data, size);
  if (r == NULL || !strata__region_find_in(r, layer_id, &i, &off, &len, false))
    return get_data_rest(txn, region_id, layer_id, data, size);
  return get_data_hit(txn, r->data + off, len, region_id, layer_id, data, size);
}

/* How many refs apart the stages of strata_get_data_many() run (as in
 * strata_region_get_data_many: enough to cover a memory access with the
 * work of the refs in between), and the ring that holds each ref's state
 * from its first stage to its last (> 3 * DATA_AHEAD, a power of two). */
#define DATA_AHEAD 8
#define DATA_RING 32

/* A ref's state between the stages of strata_get_data_many(). */
typedef struct data_pipe {
  const strata__catalog *c;
  const strata_layer_ref *refs;
  const void **data;
  uint64_t *sizes;
  uint64_t bytes;                   /* of the hits so far */
  const strata__catalog_cell *last; /* the last cell found, or NULL */
  /* The ring, DATA_RING refs: not initialized (each stage writes before
   * the next reads). */
  uint64_t cslot[DATA_RING];             /* the catalog slot */
  const strata_region *file[DATA_RING];  /* NULL: no file */
  const strata__entry *proto[DATA_RING]; /* set: ask the proto first */
  uint64_t stage[DATA_RING];             /* the hash, then the slot */
  /* A region with deltas and no proto: its stack and the id's hash in
   * it, then the id's table cell (NULL: in no delta). */
  const strata__stack *stack[DATA_RING];
  uint64_t shash[DATA_RING];
  const strata__stack_cell *scell[DATA_RING];
} data_pipe;

/* Stage 1: prefetch the catalog's slot. */
static inline __attribute__((always_inline)) void pipe_catalog(data_pipe *p,
                                                               size_t j) {
  uint64_t k = strata__catalog_slot(p->refs[j].region_id, p->c->hmask);
  p->cslot[j % DATA_RING] = k;
  strata__prefetch(&p->c->by_id[k]);
}

/* Stage 2: probe the catalog (from the slot stage 1 prefetched, when
 * there is a stage 1) and start the file's lookup (hash, pilot
 * prefetch) and, in a region with deltas, the stack's (hash, filter word
 * and table cell prefetch). */
static inline __attribute__((always_inline)) void
pipe_probe(data_pipe *p, size_t j, bool stage1) {
  uint64_t id = p->refs[j].region_id;
  const strata__catalog_cell *cl = p->last;
  /* Refs come in runs of one region (a batch from one region, a path
   * through one): the run's cell is kept. */
  if (cl == NULL || cl->id != id) {
    cl = NULL;
    for (uint64_t k = stage1 ? p->cslot[j % DATA_RING]
                             : strata__catalog_slot(id, p->c->hmask);
         ; k = (k + 1) & p->c->hmask) {
      if (p->c->by_id[k].e == NULL)
        break;
      if (p->c->by_id[k].id == id) {
        cl = p->last = &p->c->by_id[k];
        break;
      }
    }
  }
  const strata_region *r = cl != NULL ? cl->file : NULL;
  const strata__stack *st = cl != NULL ? cl->stack : NULL;
  p->file[j % DATA_RING] = r;
  /* A region with a proto, or an entry without a file: the last stage
   * asks the entry. */
  p->proto[j % DATA_RING] = st == STRATA__CELL_ASK ? cl->e : NULL;
  st = st == STRATA__CELL_ASK ? NULL : st;
  p->stack[j % DATA_RING] = st;
  if (r != NULL)
    p->stage[j % DATA_RING] = strata__pipe_start(r, p->refs[j].layer_id);
  if (st != NULL) {
    uint64_t h = strata__stack_hash(p->refs[j].layer_id);
    p->shash[j % DATA_RING] = h;
    strata__stack_prefetch(st, h);
  }
}

/* Stage 3: in a region with deltas, probe the stack (its filter word
 * and table cell prefetched) and prefetch the content when a delta holds
 * the id (its cell has it); else compute the base's slot, prefetch the
 * locator. */
static inline __attribute__((always_inline)) void pipe_locate(data_pipe *p,
                                                              size_t j) {
  const strata_region *r = p->file[j % DATA_RING];
  const strata__stack *st = p->stack[j % DATA_RING];
  const strata__stack_cell *c = NULL;
  if (__builtin_expect(st != NULL, 0)) {
    c = strata__stack_cell_h(st, p->refs[j].layer_id, p->shash[j % DATA_RING]);
    if (c != NULL && c->data != NULL)
      strata__prefetch(c->data);
  }
  p->scell[j % DATA_RING] = c;
  if (r != NULL && c == NULL)
    p->stage[j % DATA_RING] = strata__pipe_slot(r, p->stage[j % DATA_RING]);
}

/* The last stage for a region with a proto or no file: the proto's
 * version first, then the deltas', then the base file's layer.
 * Out of line: the overlay's lookup is a call anyway. */
static __attribute__((noinline)) bool
finish_proto(const strata_txn *txn, const strata__entry *e,
             const strata_region *r, uint64_t slot, uint64_t layer_id,
             const void **data, uint64_t *size) {
  int hit =
      e->overlay != NULL ? overlay_data(txn, e, layer_id, data, size) : -1;
  if (hit < 0 && e->stack != NULL)
    hit = strata__stack_data(e->stack, layer_id, data, size);
  if (hit > 0)
    strata__prefetch(*data);
  if (hit < 0)
    hit = r != NULL && strata__pipe_finish(r, slot, layer_id, data, size);
  return hit > 0;
}

/* Stage 4: read the locator (or the proto); counts and samples a hit. */
static inline __attribute__((always_inline)) bool
pipe_finish(const strata_txn *txn, data_pipe *p, size_t j) {
  const strata_region *r = p->file[j % DATA_RING];
  const strata__entry *e = p->proto[j % DATA_RING];
  uint64_t slot = p->stage[j % DATA_RING];
  uint64_t layer_id = p->refs[j].layer_id;
  const strata__stack_cell *c = p->scell[j % DATA_RING];
  bool hit;
  if (__builtin_expect(c != NULL, 0))
    hit = strata__stack_cell_data(c, &p->data[j], &p->sizes[j]) > 0;
  else if (__builtin_expect(e == NULL, 1))
    hit = r != NULL &&
          strata__pipe_finish(r, slot, layer_id, &p->data[j], &p->sizes[j]);
  else
    hit = finish_proto(txn, e, r, slot, layer_id, &p->data[j], &p->sizes[j]);
  if (hit) {
    p->bytes += p->sizes[j];
    sample(txn, p->refs[j].region_id, layer_id);
  } else {
    p->data[j] = NULL;
    p->sizes[j] = 0;
  }
  return hit;
}

/* The pipeline over p->refs[0 .. count): stage 1 (the catalog's slot)
 * only when `stage1`, the others DATA_AHEAD refs apart. The loop is cut
 * in three so that the middle one, where every stage has a ref, tests no
 * bounds: the ramp up, the steady state, the drain. Returns the hits. */
static inline __attribute__((always_inline)) size_t
run_pipe(const strata_txn *txn, data_pipe *p, size_t count, bool stage1) {
  const size_t P = stage1 ? DATA_AHEAD : 0; /* how far each stage lags */
  const size_t L = P + DATA_AHEAD, F = L + DATA_AHEAD;
  size_t found = 0, k = 0;
  for (; k < count + F && (k < F || k >= count); k++) {
    if (stage1 && k < count)
      pipe_catalog(p, k);
    if (k >= P && k - P < count)
      pipe_probe(p, k - P, stage1);
    if (k >= L && k - L < count)
      pipe_locate(p, k - L);
    if (k >= F)
      found += pipe_finish(txn, p, k - F);
  }
  for (; k < count; k++) {
    if (stage1)
      pipe_catalog(p, k);
    pipe_probe(p, k - P, stage1);
    pipe_locate(p, k - L);
    found += pipe_finish(txn, p, k - F);
  }
  for (; k < count + F; k++) {
    if (k >= P && k - P < count)
      pipe_probe(p, k - P, stage1);
    if (k >= L && k - L < count)
      pipe_locate(p, k - L);
    found += pipe_finish(txn, p, k - F);
  }
  return found;
}

/* Catalogs of more cells than this (32 bytes each: 32 KiB, an L1 data
 * cache) get the catalog stage; a smaller one stays cached while a batch
 * runs, and the stage would only lengthen the ramp. */
#define DATA_CATALOG_STAGE 1024

size_t strata_get_data_many(const strata_txn *txn, const strata_layer_ref *refs,
                            size_t count, const void **data, uint64_t *sizes) {
  const strata__catalog *c =
      txn != NULL ? strata__txn_priv(txn)->catalog : NULL;
  if (c == NULL) {
    for (size_t i = 0; i < count; i++) {
      data[i] = NULL;
      sizes[i] = 0;
    }
    if (txn != NULL) {
      strata__txn_priv(txn)->gets += count;
      strata__txn_priv(txn)->misses += count;
    }
    return 0;
  }
  /* Up to four stages: prefetch the catalog slot; probe the catalog and
   * start the file's lookup (hash, pilot prefetch); compute the slot
   * (locator prefetch); finish, with the proto's version first when the
   * region has a proto. */
  data_pipe p;
  p.c = c;
  p.refs = refs;
  p.data = data;
  p.sizes = sizes;
  p.bytes = 0;
  p.last = NULL;
  size_t found = c->hmask + 1 > DATA_CATALOG_STAGE
                     ? run_pipe(txn, &p, count, true)
                     : run_pipe(txn, &p, count, false);
  /* The counts of the whole batch at once: three additions instead of
   * three per ref. */
  strata__txn *t = strata__txn_priv(txn);
  t->gets += count;
  t->misses += count - found;
  t->bytes += p.bytes;
  return found;
}

int strata__get_quiet(const strata_txn *txn, uint64_t region_id,
                      uint64_t layer_id, strata_layer *out) {
  int found = lookup(txn, find_entry(txn, region_id), layer_id, out);
  return found > 0 ? 0 : found == 0 ? STRATA_E_NOT_FOUND : STRATA_E_NO_REGION;
}

const strata_region *strata__txn_file(const strata_txn *txn,
                                      uint64_t region_id) {
  const strata__entry *e = find_entry(txn, region_id);
  return e != NULL && e->file != NULL ? e->file->region : NULL;
}

/* The lookup by name without error details, shared by strata_get_by_name
 * and get_many_by_name: 1 found, 0 no such layer. A file's layer counts
 * only if the proto did not replace or remove it (a replacement with the
 * same name is found in the overlay first). */
static int lookup_name(const strata_txn *txn, const strata__entry *e,
                       const char *name, size_t name_len, strata_layer *out) {
  uint64_t v = strata__txn_priv(txn)->version;
  if (e->overlay != NULL) {
    const strata__lver *lv =
        strata__overlay_find_name(e->overlay, name, name_len, v);
    if (lv != NULL) {
      fill_from_lver(lv, out);
      return 1;
    }
  }
  strata_layer l;
  if ((e->stack != NULL
           ? strata__entry_file_get_by_name(e, name, name_len, &l) > 0
           : e->file != NULL && strata_region_get_by_name(e->file->region, name,
                                                          name_len, &l) == 0) &&
      (e->overlay == NULL ||
       strata__overlay_find(e->overlay, l.id, v) == NULL)) {
    *out = l;
    return 1;
  }
  return 0;
}

int strata_get_by_name(const strata_txn *txn, uint64_t region_id,
                       const char *name, size_t name_len, strata_layer *out) {
  const strata__entry *e = find_entry(txn, region_id);
  if (e == NULL)
    return strata__fail(STRATA_E_NO_REGION,
                        "region %" PRIu64 ": not in the store", region_id);
  if (name == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_get_by_name: NULL argument");
  if (lookup_name(txn, e, name, name_len, out) > 0) {
    count_get(txn, true, out->size);
    sample(txn, region_id, out->id);
    return 0;
  }
  count_get(txn, false, 0);
  return strata__fail(
      STRATA_E_NOT_FOUND, "region %" PRIu64 " (%s): no layer named \"%.*s\"",
      region_id, e->name, (int)(name_len > 200 ? 200 : name_len), name);
}

int strata_get_data_by_name(const strata_txn *txn, uint64_t region_id,
                            const char *name, size_t name_len,
                            const void **data, uint64_t *size) {
  const strata__entry *e = find_entry(txn, region_id);
  strata_layer l;
  int found =
      e != NULL && name != NULL && lookup_name(txn, e, name, name_len, &l) > 0;
  if (txn != NULL)
    count_get(txn, found, found ? l.size : 0);
  if (found) {
    *data = l.data;
    *size = l.size;
    sample(txn, region_id, l.id);
    return 0;
  }
  if (e == NULL)
    return strata__fail(STRATA_E_NO_REGION,
                        "region %" PRIu64 ": not in the store", region_id);
  if (name == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_get_data_by_name: NULL name");
  return strata__fail(
      STRATA_E_NOT_FOUND, "region %" PRIu64 " (%s): no layer named \"%.*s\"",
      region_id, e->name, (int)(name_len > 200 ? 200 : name_len), name);
}

int strata_find_region(const strata_txn *txn, const char *name, size_t name_len,
                       uint64_t *region_id) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL || name == NULL ||
      region_id == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_find_region: NULL argument");
  STRATA__TRY(strata__check_name_arg("strata_find_region", "region name", name,
                                     name_len));
  const strata__entry *e =
      strata__catalog_find_name(strata__txn_priv(txn)->catalog, name, name_len);
  if (e == NULL)
    return strata__fail(STRATA_E_NO_REGION, "no region named \"%.*s\"",
                        (int)(name_len > 200 ? 200 : name_len), name);
  *region_id = e->id;
  return 0;
}

/* How far ahead get_many prefetches: enough to cover a cache miss with the
 * work of the lookups in between, few enough to stay in L1. */
#define PREFETCH_AHEAD 4

static void prefetch_ref(const strata_txn *txn, const strata_layer_ref *ref) {
  const strata__entry *e = find_entry(txn, ref->region_id);
  if (e != NULL && e->file != NULL)
    strata__prefetch_layer(e->file->region, ref->layer_id);
}

size_t strata_get_many(const strata_txn *txn, const strata_layer_ref *refs,
                       size_t count, strata_layer *out) {
  size_t found = 0;
  for (size_t i = 0; i < count && i < PREFETCH_AHEAD; i++)
    prefetch_ref(txn, &refs[i]);
  for (size_t i = 0; i < count; i++) {
    if (i + PREFETCH_AHEAD < count)
      prefetch_ref(txn, &refs[i + PREFETCH_AHEAD]);
    const strata__entry *e = find_entry(txn, refs[i].region_id);
    if (lookup(txn, e, refs[i].layer_id, &out[i]) > 0) {
      found++;
      __builtin_prefetch(out[i].data);
      count_get(txn, true, out[i].size);
      sample(txn, refs[i].region_id, refs[i].layer_id);
    } else {
      memset(&out[i], 0, sizeof out[i]);
      count_get(txn, false, 0);
    }
  }
  return found;
}

/* The loop of strata_get_many_by_name and strata_get_data_many_by_name:
 * fills out[i] when `out` is not NULL, else data[i] and sizes[i]. */
static size_t many_by_name(const strata_txn *txn,
                           const strata_layer_name_ref *refs, size_t count,
                           strata_layer *out, const void **data,
                           uint64_t *sizes) {
  size_t found = 0;
  const strata__entry *e = NULL; /* the previous ref's region */
  const char *rname = NULL;
  size_t rlen = 0;
  for (size_t i = 0; i < count; i++) {
    const strata_layer_name_ref *r = &refs[i];
    bool named = r->region_name != NULL && r->layer_name != NULL &&
                 memchr(r->region_name, '\0', r->region_name_len) == NULL;
    /* A path names one region for many steps: its scan of the catalog is
     * done once per run of equal names, not once per step. */
    if (named && (e == NULL || r->region_name_len != rlen ||
                  memcmp(r->region_name, rname, rlen) != 0)) {
      e = txn == NULL || strata__txn_priv(txn)->catalog == NULL
              ? NULL
              : strata__catalog_find_name(strata__txn_priv(txn)->catalog,
                                          r->region_name, r->region_name_len);
      rname = r->region_name;
      rlen = r->region_name_len;
    }
    strata_layer l;
    if (named && e != NULL &&
        lookup_name(txn, e, r->layer_name, r->layer_name_len, &l) > 0) {
      found++;
      __builtin_prefetch(l.data);
      count_get(txn, true, l.size);
      sample(txn, e->id, l.id);
      if (out != NULL) {
        out[i] = l;
      } else {
        data[i] = l.data;
        sizes[i] = l.size;
      }
    } else {
      if (out != NULL) {
        memset(&out[i], 0, sizeof out[i]);
      } else {
        data[i] = NULL;
        sizes[i] = 0;
      }
      if (txn != NULL)
        count_get(txn, false, 0);
    }
  }
  return found;
}

size_t strata_get_many_by_name(const strata_txn *txn,
                               const strata_layer_name_ref *refs, size_t count,
                               strata_layer *out) {
  return many_by_name(txn, refs, count, out, NULL, NULL);
}

size_t strata_get_data_many_by_name(const strata_txn *txn,
                                    const strata_layer_name_ref *refs,
                                    size_t count, const void **data,
                                    uint64_t *sizes) {
  return many_by_name(txn, refs, count, NULL, data, sizes);
}

/* ---- iteration through a snapshot --------------------------------------- */

/* strata_snapshot_iter's private layout, in its reserved words (as
 * strata__txn is in strata_txn's). */
typedef struct __attribute__((__may_alias__)) snap_iter {
  strata_region_iter file; /* the region file's layers, region NULL if none */
  const strata__lver **lvers;   /* the proto's, as of the snapshot, by id */
  uint64_t n, k;                /* lvers and the next one to merge */
  uint64_t pending_id;          /* a file layer read but not yet returned */
  const strata__entry *stacked; /* the entry when it has deltas, else NULL */
  uint64_t sk;                  /* its next stack slot to merge */
  bool pending, file_done;
} snap_iter;
_Static_assert(sizeof(snap_iter) <= sizeof(strata_snapshot_iter),
               "snap_iter outgrew strata_snapshot_iter's reserved words");
_Static_assert(_Alignof(snap_iter) <= _Alignof(strata_snapshot_iter),
               "snap_iter needs a stricter alignment");

static snap_iter *iter_priv(strata_snapshot_iter *it) {
  return (snap_iter *)(void *)it;
}

int strata_snapshot_iter_init(const strata_txn *txn, uint64_t region_id,
                              strata_snapshot_iter *it) {
  STRATA__FAIL_IF(it == NULL, STRATA_E_INVAL,
                  "strata_snapshot_iter_init: NULL iterator");
  snap_iter *si = iter_priv(it);
  *si = (snap_iter){.file_done = true};
  STRATA__FAIL_IF(txn == NULL || strata__txn_priv(txn)->catalog == NULL,
                  STRATA_E_INVAL,
                  "strata_snapshot_iter_init: no snapshot (NULL, or ended)");
  const strata__entry *e = find_entry(txn, region_id);
  STRATA__FAIL_IF(e == NULL, STRATA_E_NO_REGION,
                  "region %" PRIu64 ": not in the store", region_id);
  if (e->overlay != NULL &&
      strata__overlay_visible(e->overlay, strata__txn_priv(txn)->version,
                              &si->lvers, &si->n) < 0)
    return strata__fail(STRATA_E_NOMEM,
                        "region %" PRIu64 " (%s): iterating its proto's "
                        "layers",
                        region_id, e->name);
  if (e->file != NULL) {
    strata_region_iter_init(e->file->region, &si->file);
    si->file_done = false;
  }
  si->stacked = e->stack != NULL ? e : NULL;
  return 0;
}

/* The next layer of base + deltas: the base's id order merged with the
 * stack's sorted slots; a slot replaces the base's layer of its id, or
 * hides it when it is a tombstone. The base's layer read ahead of a
 * smaller slot is put back by restoring the iterator (its state is its
 * position). 1, 0 at the end, STRATA_E_CORRUPT. */
static int next_stacked(snap_iter *si, strata_layer *out) {
  const strata__stack *st = si->stacked->stack;
  for (;;) {
    strata_region_iter save = si->file;
    strata_layer l;
    int rc = si->file_done ? 0 : strata_region_next(&si->file, &l);
    if (rc < 0)
      return rc;
    if (rc == 0)
      si->file_done = true;
    if (si->sk < st->nslots && (rc == 0 || st->slots[si->sk].id <= l.id)) {
      const strata__stack_slot *sl = &st->slots[si->sk++];
      if (rc > 0 && sl->id != l.id)
        si->file = save;
      if (sl->tomb)
        continue;
      strata__layer_from_entry(st->deltas[sl->delta]->region, sl->entry, out);
      return 1;
    }
    if (rc > 0)
      *out = l;
    return rc;
  }
}

/* The next layer of the file (the pending one first): 1, 0 at the end,
 * STRATA_E_CORRUPT. */
static int next_file_layer(snap_iter *si, strata_layer *out) {
  if (si->pending) {
    si->pending = false;
    /* It was found moments ago by the iteration: it is there. */
    if (si->stacked != NULL)
      return strata__entry_file_get(si->stacked, si->pending_id, out) > 0
                 ? 1
                 : STRATA_E_CORRUPT;
    return strata_region_get(si->file.region, si->pending_id, out) == 0
               ? 1
               : STRATA_E_CORRUPT;
  }
  if (si->stacked != NULL)
    return next_stacked(si, out);
  if (si->file_done)
    return 0;
  int rc = strata_region_next(&si->file, out);
  if (rc <= 0)
    si->file_done = true;
  return rc;
}

int strata_snapshot_next(strata_snapshot_iter *it, strata_layer *out) {
  STRATA__FAIL_IF(it == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_snapshot_next: NULL argument");
  snap_iter *si = iter_priv(it);
  for (;;) {
    /* l: the file's smallest layer not yet returned or replaced. */
    strata_layer l;
    int rc = next_file_layer(si, &l);
    if (rc < 0) {
      strata_snapshot_iter_end(it);
      return rc;
    }
    /* A proto version with a smaller id comes first (l waits); one with
     * l's id replaces l, or removes it when it is a tombstone. */
    if (si->k < si->n && (rc == 0 || si->lvers[si->k]->id <= l.id)) {
      const strata__lver *lv = si->lvers[si->k++];
      if (rc > 0 && lv->id != l.id) {
        si->pending = true;
        si->pending_id = l.id;
      }
      if (lv->flags & STRATA__LV_TOMBSTONE)
        continue;
      fill_from_lver(lv, out);
      return 1;
    }
    if (rc == 0) {
      strata_snapshot_iter_end(it);
      return 0;
    }
    *out = l;
    return 1;
  }
}

void strata_snapshot_iter_end(strata_snapshot_iter *it) {
  if (it == NULL)
    return;
  snap_iter *si = iter_priv(it);
  free(si->lvers);
  *si = (snap_iter){.file_done = true};
}

uint64_t strata_store_region_count(const strata_txn *txn) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL)
    return 0;
  return ((const strata__catalog *)strata__txn_priv(txn)->catalog)->n;
}

/* The entry at position `index` of the snapshot's catalog, for `fn`. */
static int entry_at(const strata_txn *txn, uint64_t index, bool out_ok,
                    const char *fn, const strata__entry **e) {
  if (txn == NULL || strata__txn_priv(txn)->catalog == NULL || !out_ok)
    return strata__fail(STRATA_E_INVAL, "%s: NULL argument", fn);
  const strata__catalog *c = strata__txn_priv(txn)->catalog;
  if (index >= c->n)
    return strata__fail(STRATA_E_BOUNDS, "region index %" PRIu64 " of %" PRIu64,
                        index, c->n);
  *e = c->by_order[index];
  return 0;
}

int strata_store_region_at(const strata_txn *txn, uint64_t index,
                           strata_store_region *out) {
  const strata__entry *e = NULL;
  STRATA__TRY(entry_at(txn, index, out != NULL, "strata_store_region_at", &e));
  uint64_t layers = strata__entry_file_layers(e);
  if (e->overlay != NULL)
    layers += (uint64_t)strata__overlay_delta(e->overlay,
                                              strata__txn_priv(txn)->version);
  *out = (strata_store_region){.id = e->id,
                               .name = e->name,
                               .metadata = e->metadata,
                               .path = e->file ? e->file->path : NULL,
                               .layer_count = layers,
                               .generation = e->generation,
                               .has_proto = e->overlay != NULL,
                               .file = e->file ? e->file->region : NULL};
  return 0;
}

int strata_store_region_delta_at(const strata_txn *txn, uint64_t index,
                                 uint32_t k, const strata_region **out) {
  const strata__entry *e = NULL;
  STRATA__TRY(
      entry_at(txn, index, out != NULL, "strata_store_region_delta_at", &e));
  const strata__stack *st = e->stack;
  uint32_t n = st != NULL ? st->n : 0;
  if (k >= n)
    return strata__fail(STRATA_E_BOUNDS,
                        "region %" PRIu64 ": delta %" PRIu32 " of %" PRIu32,
                        e->id, k, n);
  *out = st->deltas[k]->region;
  return 0;
}

int strata_read_stats_get(strata_store *s, strata_read_stats *out) {
  if (s == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_read_stats_get: NULL argument");
  *out = (strata_read_stats){0};
  uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_acquire);
  for (uint32_t i = 0; i < used; i++) {
    const strata__reader *r = &s->slots[i];
    out->gets += atomic_load_explicit(&r->gets, memory_order_relaxed);
    out->misses += atomic_load_explicit(&r->misses, memory_order_relaxed);
    out->bytes_served += atomic_load_explicit(&r->bytes, memory_order_relaxed);
    out->snapshots += atomic_load_explicit(&r->begins, memory_order_relaxed);
  }
  pthread_mutex_lock(&s->write_mu);
  uint64_t open, oldest;
  strata__ebr_snapshot_stats(s, &open, &oldest); /* updates the peak */
  out->peak_readers = s->peak_readers;
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}
