/* The store's internal structures, shared by store_*.c, ebr.c, catalog.c,
 * overlay.c, proto.c and crystallize.c (and read by the layers above).
 * docs/ARCHITECTURE.md explains how they fit; the modules, lowest first:
 * store_file.c and store_memory.c, ebr.c, catalog.c and overlay.c,
 * store_read.c, store_stats.c, store_scan.c, store_verify.c,
 * store_refresh.c, store_lock.c, crystallize.c and proto.c, store.c.
 *
 * Publication model. Readers reach everything from one pointer, the store's
 * current *catalog* (an immutable table of region entries), and filter
 * proto content by *version*: the store's epoch counter, bumped by every
 * published change. A writer never modifies anything a reader can reach,
 * except by (a) prepending a link to an overlay chain, (b) unlinking a link
 * no snapshot needs, (c) swapping an overlay's table pointer, or (d)
 * swapping the catalog pointer; each is one atomic store. What a change
 * replaced is *retired* with the epoch current at the time, and freed once
 * every reader slot has announced a later epoch (epoch-based reclamation,
 * ebr.c). */
#ifndef STRATA_STORE_INTERNAL_H
#define STRATA_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/log.h"
#include "common/pool.h"
#include "region/region.h"
#include "store/store_sample.h"
#include "store/store_shm.h"

/* ---- epoch-based reclamation (ebr.c) ------------------------------------ */

/* One reader thread's slot, on a cache line of its own so that announcing
 * an epoch writes only memory no other thread writes. */
typedef struct strata__reader {
  _Atomic uint64_t epoch;  /* announced epoch; 0 = no snapshot open */
  _Atomic uint64_t begins; /* outer snapshots begun (owner writes) */
  /* Read statistics; only the owner thread writes them (load + store). */
  _Atomic uint64_t gets, misses, bytes;
  _Atomic bool in_use; /* claimed by a live thread */
  uint32_t depth;      /* open snapshots; owner thread only */
  /* Read sampling (store_sample.h): the slot's ring (NULL when nobody
   * drains samples), set when the slot is claimed; the owner thread's
   * lookup count and the sampling mask. */
  strata__sample_ring *ring;
  uint32_t tick, sample_mask;
} __attribute__((aligned(64))) strata__reader;

/* Something replaced by a change, waiting for its grace period. */
typedef struct strata__retired {
  struct strata__retired *next;
  uint64_t epoch; /* the epoch in which it was unlinked */
  uint64_t bytes; /* memory it holds, for the statistics */
  void (*free_fn)(struct strata_store *s, void *obj);
  void *obj;
} strata__retired;

int strata__ebr_init(struct strata_store *s, uint32_t max_readers);
void strata__ebr_destroy(struct strata_store *s);
/* The calling thread's slot, claimed on first use. */
int strata__ebr_slot(struct strata_store *s, strata__reader **out);
/* Writer mutex held. Queues obj for free_fn after the current epoch's
 * readers leave. Returns STRATA_E_NOMEM (then nothing was queued: the
 * caller must keep obj reachable or free it itself). */
int strata__retire(struct strata_store *s, void *obj, uint64_t bytes,
                   void (*free_fn)(struct strata_store *, void *));
/* The same with a record the caller allocated (malloc) beforehand, so that
 * a change can make sure of its records before it publishes. */
void strata__retire_push(struct strata_store *s, strata__retired *rec,
                         void *obj, uint64_t bytes,
                         void (*free_fn)(struct strata_store *, void *));
/* Writer mutex held. Smallest epoch announced by an open snapshot, or
 * UINT64_MAX when none is open. Also warns about old snapshots. */
uint64_t strata__ebr_min_epoch(struct strata_store *s);
/* Writer mutex held. Frees what no snapshot can reach, oldest first:
 * objects are freed in the order they were retired, so an object may refer
 * to one retired after it until it is freed (a pruned lver to its
 * overlay's arena). */
void strata__ebr_collect(struct strata_store *s);
/* Frees every retired object, oldest first (store close: no snapshot may
 * be open). */
void strata__ebr_drain(struct strata_store *s);
/* Writer mutex held. Publishes: bumps the epoch and returns the new one. */
uint64_t strata__ebr_advance(struct strata_store *s);
/* Any thread, without the writer mutex: returns once no snapshot announces
 * an epoch <= `epoch`. The caller must not hold a snapshot itself. */
void strata__ebr_wait(struct strata_store *s, uint64_t epoch);
/* Writer mutex held: snapshot count and the oldest one's age. */
void strata__ebr_snapshot_stats(struct strata_store *s, uint64_t *open,
                                uint64_t *oldest_ms);

/* ---- region files ------------------------------------------------------- */

/* A mapped region file, shared by the entries that serve it (an entry and
 * its successor with a proto share one file). Reference counted under the
 * writer mutex. */
typedef struct strata__file {
  strata_region *region;
  char *path;
  dev_t dev;
  ino_t ino;
  uint32_t refs;
  uint64_t opened_unix_ms;       /* when this process mapped it */
  _Atomic bool checksum_pending; /* index checksum left to the verifier */
} strata__file;

/* The path of `name` + `suffix` in the store's directory, malloc'd (NULL
 * when out of memory): the one place a store path is put together. */
char *strata__store_path(const struct strata_store *s, const char *name,
                         const char *suffix);
/* Wraps an open region (taking it over on success) in a file record with
 * one reference; dev and ino identify the file as it was opened; with
 * `defer`, its index checksum is left to the verifier (store_verify.c).
 * STRATA_E_NOMEM, and then the caller still owns `r`. */
int strata__file_new(strata_region *r, dev_t dev, ino_t ino, bool defer,
                     strata__file **out);
/* Opens the region file `name` of the store's directory (validating it,
 * and recording its identity) into a file record with one reference. Any
 * thread: used by the parallel validation of store_scan.c. */
int strata__file_open(struct strata_store *s, const char *name, bool defer,
                      strata__file **out);
/* Drops a reference; the last one calls the store's before_unmap hook and
 * unmaps the file. Writer mutex held, or the store being opened or closed
 * by one thread. NULL ok. */
void strata__file_unref(struct strata_store *s, strata__file *f);

/* ---- proto overlays (overlay.c) ---------------------------------------- */

#define STRATA__LV_TOMBSTONE 1u
/* The content is a pool block of its own, not in the lver's arena chunk. */
#define STRATA__LV_DATA_BLOCK 2u

/* A chunk of a proto's arena (overlay.c): lvers, each followed by its name,
 * metadata and (when small) its content, taken one after another. */
typedef struct strata__achunk {
  struct strata__achunk *next, *prev; /* the overlay's chunks, newest first */
  struct strata__overlay *owner;
  uint64_t size; /* bytes, this header included */
  uint64_t used; /* bytes taken, from the chunk's start */
  uint64_t live; /* lvers in it not yet freed */
} strata__achunk;

/* A chain link. Chains are newest first, so the first link whose version a
 * snapshot may see is that snapshot's version of the layer. */
typedef struct strata__link {
  _Atomic(struct strata__link *) next;
  struct strata__lver *lv;
  /* lv->id, so that a walk along a chain compares ids without reading
   * each lver (a cache miss per link in a large proto). */
  uint64_t id;
} strata__link;

/* One version of one proto layer: immutable once linked (but for its
 * links' next pointers). Taken from its proto's arena (overlay.c) with its
 * name, metadata and content after it; content larger than
 * STRATA__LV_INLINE_MAX is a pool block of its own (STRATA__LV_DATA_BLOCK).
 * `data` is "" for tombstones and empty layers. */
typedef struct strata__lver {
  uint64_t id;
  uint64_t version; /* visible to snapshots with version >= this */
  uint64_t size;
  uint64_t checksum;
  const void *data;
  const char *name; /* NULL when unnamed */
  const char *metadata;
  uint32_t name_len, metadata_len;
  uint32_t flags;
  uint32_t alloc_size;   /* arena bytes: this struct, strings, inline content */
  strata__achunk *chunk; /* the arena chunk that holds it */
  /* Writer side only: its id's place in overlay.latest (kept for the
   * newest version of each id, which is the one a put supersedes). */
  uint64_t slot;
  /* Its link in the id chain of the table it was put into (a named lver's
   * name link follows the struct: strata__lver_name_link()): a put
   * allocates no link. The links of a larger table that replaced that one
   * are the table's (otable.links). */
  strata__link id_link;
} strata__lver;

/* A named lver's link in the name chain of the table it was put into. */
static inline strata__link *strata__lver_name_link(strata__lver *lv) {
  return (strata__link *)(lv + 1);
}

/* An id and its newest version (overlay.latest). */
typedef struct strata__idlv {
  uint64_t id;
  strata__lver *lv;
} strata__idlv;

/* Bucket arrays for ids and for names; replaced whole when they grow. */
typedef struct strata__otable {
  uint64_t mask;
  _Atomic(strata__link *) *by_id;
  _Atomic(strata__link *) *by_name;
  /* The links this table was built with when it replaced a smaller one
   * (one array, freed with the table); NULL for a proto's first table.
   * Every other link is an lver's own (id_link, name_link). */
  strata__link *links;
  uint64_t nlinks;
  uint64_t bytes; /* pool charges of the struct, arrays and links */
} strata__otable;

/* One change of a proto's layer count, kept while a snapshot may need it. */
typedef struct strata__count {
  uint64_t version;
  int64_t delta; /* layer_delta as of this version */
} strata__count;

/* The history of a proto's layer count, oldest first: the writer appends
 * (fills rec[n], then publishes n with a release store) and never changes
 * a published record; when the array is full it is replaced by a larger
 * or compacted copy (strata__overlay_count_reserve), and when at most a
 * quarter of a larger array than the first is live by a smaller one
 * (strata__overlay_count_compact), and retired. A 16-byte header, so that
 * cap + 1 records fill a power of two. */
typedef struct strata__counts {
  uint64_t cap;
  _Atomic uint64_t n;
  strata__count rec[];
} strata__counts;

typedef struct strata__overlay {
  _Atomic(strata__otable *) table;
  uint64_t name_seed;
  /* Writer side. */
  uint64_t lvers;   /* lvers linked (all versions) */
  uint64_t named;   /* those with a name: links on the name chains */
  uint64_t changed; /* distinct ids with an lver */
  /* Pool bytes it holds, as the heap counts them (whole blocks): arena
   * chunks whole, live lvers' content blocks, the current table and count
   * history; not what it retired. What crystallizing or discarding it
   * gives back (less an empty proto's table), which eviction ranks protos
   * by (overlay.c, "the arena"). */
  uint64_t bytes;
  /* The arena (overlay.c): its chunks, newest first (lvers are taken from
   * the head), the size of the next chunk, and how many lvers have their
   * content in a pool block of its own. */
  strata__achunk *chunks;
  uint64_t chunk_next;
  uint64_t data_blocks;
  /* Layers added minus layers removed, relative to the base file: the
   * current figure, and a newest-first history so that a snapshot can read
   * the figure as of its version (strata__overlay_delta). */
  _Atomic int64_t layer_delta;
  _Atomic(strata__counts *) counts; /* NULL until the first change */
  uint64_t counts_cap; /* its cap (0 when NULL), read without the array */
  uint64_t *dirty;     /* ids with superseded versions to prune */
  uint64_t dirty_n, dirty_cap;
  /* Every id with an lver (`changed` of them) and its newest version,
   * in put order of the ids: ascending unless ids_unsorted (a put of a new
   * id below the last one). A put that supersedes a version replaces it
   * here (at the old version's slot), so crystallization reads the newest
   * versions from this array, sorting it (in place) only when
   * ids_unsorted, instead of looking each id up in the chains
   * (strata__overlay_latest). */
  strata__idlv *latest;
  uint64_t latest_cap;
  bool ids_unsorted;
  /* The largest id of any lver linked (valid once `changed` > 0): a put
   * of a larger id (ids put in ascending order, as a region is usually
   * built) knows without a lookup that the proto has no version of it,
   * and skips two walks of a chain whose links are other lvers' memory. */
  uint64_t max_id;
  /* A crystallization of this proto renamed its file into place, then
   * failed (the directory fsync, or the stat after it): the file at the
   * region's path is this proto's own, and the next crystallization may
   * replace it. placed_dev and placed_ino identify that file, which is
   * then the one crystallization expects under the name (crystallize.c).
   * placed_keep is a reference to its file record, held until the overlay
   * is freed: the mapping keeps the inode, so that its number cannot be
   * given to another file (after a foreign writer removed ours) while the
   * identity is what the next crystallization compares. */
  bool placed_file;
  bool placed_delta; /* that file is a delta (NAME.k.delta), not a base */
  /* That delta merged the stack (NAME.1.delta, crystallize.c): it replaced
   * the stack's first delta under its name. */
  bool placed_merge;
  dev_t placed_dev;
  ino_t placed_ino;
  strata__file *placed_keep;
} strata__overlay;

int strata__overlay_new(struct strata_store *s, strata__overlay **out);
/* Reader side: the lver of `id` as of `version`, or NULL. */
const strata__lver *strata__overlay_find(const strata__overlay *o, uint64_t id,
                                         uint64_t version);
/* Writer side (writer mutex held): asks the CPU to fetch the id chain's
 * bucket for a put of `id`, so that its cache miss overlaps the copy and
 * hash of the content before strata__overlay_link() reads it. */
void strata__overlay_prefetch(const strata__overlay *o, uint64_t id);
/* Writer side (writer mutex held): strata__overlay_find, without a
 * lookup for an id above every id the proto holds. */
const strata__lver *strata__overlay_find_w(const strata__overlay *o,
                                           uint64_t id, uint64_t version);
/* Reader side: the visible, non-tombstone lver named `name`, or NULL. A
 * NULL result is never final for the name: the base file may hold it (see
 * strata_get_by_name). */
const strata__lver *strata__overlay_find_name(const strata__overlay *o,
                                              const char *name, size_t len,
                                              uint64_t version);
/* Reader side: layer_delta as of `version`. */
int64_t strata__overlay_delta(const strata__overlay *o, uint64_t version);
/* Writer side: records that layer_delta becomes `delta` at `version`
 * (before the epoch advance that publishes it), in two steps so that the
 * allocation can fail before anything is linked: _reserve makes room for
 * one record (STRATA_E_NOMEM with a detail naming the store; nothing
 * visible changed), then _push, which cannot fail. A reservation that is
 * not pushed costs nothing: the room stays for the next change. */
int strata__overlay_count_reserve(struct strata_store *s, strata__overlay *o);
void strata__overlay_count_push(strata__overlay *o, uint64_t version,
                                int64_t delta);
/* Writer side (strata__store_maintain): when at most a quarter of the
 * history's array is live for snapshots at `min` (strata__ebr_min_epoch)
 * or later, and it is larger than the first, replaces it with a copy of
 * the live records at least half its size and retires it. Returns true
 * when it retired the old array (the caller advances the epoch, so that
 * it can be freed); false when there was nothing to gain, or no memory
 * for the copy (nothing changed then). Readers may run throughout. */
bool strata__overlay_count_compact(struct strata_store *s, strata__overlay *o,
                                   uint64_t min);
/* Writer side: links a new lver (already filled, version set). */
int strata__overlay_link(struct strata_store *s, strata__overlay *o,
                         strata__lver *lv);
/* Writer side: unlinks versions no snapshot at or after min_version can
 * see, retiring them. */
void strata__overlay_prune(struct strata_store *s, strata__overlay *o,
                           uint64_t min_version);
/* Writer side: the newest lver of every changed id, sorted by id, as a
 * malloc'd array of *n pointers. */
int strata__overlay_latest(strata__overlay *o, const strata__lver ***out,
                           uint64_t *n);
/* Reader side: the lver of every id a snapshot at `version` sees
 * (tombstones included), sorted by id, in a malloc'ed array the caller
 * frees (NULL when none). STRATA_E_NOMEM. */
int strata__overlay_visible(const strata__overlay *o, uint64_t version,
                            const strata__lver ***out, uint64_t *n);
/* Frees the overlay and everything it holds (after its grace period). */
void strata__overlay_free(struct strata_store *s, void *overlay);
/* What a put into `o` with these lengths would add to the store's heap
 * (strata__store_heap), at most: its lver (strata__lver_new: a new arena
 * chunk when the head chunk lacks room, the content's pool block when it
 * is not inline), the doubled table when the link makes it grow
 * (strata__overlay_link), and the copied count history when the put
 * changes the layer count (`counted`) and the history is full
 * (strata__overlay_count_reserve); 0 when all of it fits what the proto
 * holds. The memory limit's refusal compares this, the heap's real
 * growth, with the threshold (proto.c, check_memory). */
uint64_t strata__overlay_put_cost(const struct strata_store *s,
                                  const strata__overlay *o, bool name,
                                  size_t nl, bool metadata, size_t ml,
                                  size_t size, bool counted);
/* Writer side: an lver of `o` for `id`, with name, metadata and content
 * copied into it (the name's `name_len` bytes, NUL-terminated in the copy;
 * NULL for none; `size` bytes of `data`), taken from the overlay's arena
 * (its content from the pool when larger than STRATA__LV_INLINE_MAX). Its
 * checksum, flags and version are the caller's to set. NULL when out of
 * memory (nothing allocated then). */
strata__lver *strata__lver_new(struct strata_store *s, strata__overlay *o,
                               uint64_t id, const char *name, size_t name_len,
                               const char *metadata, size_t metadata_len,
                               const void *data, size_t size);
/* Frees an lver: its content block if it has one, and its arena chunk when
 * that holds no other lver (the head chunk too: the next lver then starts
 * a new one). The
 * overlay must still exist (ebr.c frees retired objects oldest first, so
 * an lver pruned before its overlay was retired goes before it). */
void strata__lver_free(struct strata_store *s, strata__lver *lv);
/* The largest content kept in the arena with its lver. */
#define STRATA__LV_INLINE_MAX (16u << 10)

/* ---- delta stacks (store_stack.c) --------------------------------------- */

/* The newest version of one id in a region's deltas: which delta holds it
 * (an index into strata__stack.deltas), its entry there and, for a layer,
 * where its content lies in that file. */
typedef struct strata__stack_slot {
  uint64_t id;
  uint64_t entry, off, size;
  uint32_t delta;
  uint32_t tomb; /* 1: the id's newest version is a tombstone */
} strata__stack_slot;

/* A cell of a stack's id table: an id, its slot index + 1 (0: an empty
 * cell), and what a lean read of it needs: its content (NULL for a
 * tombstone) and size. The id beside the index lets a probe reject
 * another id without loading its slot, and the content in the cell lets
 * strata_get_data answer from the one line it probed: with only the slot
 * index, a hit loaded the cell, then the slot, then the delta's region
 * for its data section, where a compacted region reads one locator
 * (docs/BENCHMARKS.md, "After the delta read path"). 32 bytes: two cells a
 * cache line, never one across two. */
typedef struct strata__stack_cell {
  uint64_t id;
  const uint8_t *data;
  uint64_t size;
  uint64_t slot;
} strata__stack_cell;

/* The deltas a region serves over its base file (docs/ARCHITECTURE.md,
 * "Deltas"), immutable once its entry is published. `slots` holds the
 * newest version of every id in any delta, sorted by id (iteration merges
 * them with the base's id order). A lookup first tests `filter`, a Bloom
 * filter of two bits per id in one 64-bit word (fmask + 1 words, at least
 * one per 4 ids: 1-2% false positives): most ids a get asks for are in
 * no delta (a random id of a region that changed 4% of its layers), and
 * the filter, 16-32 bits per id, stays in the L1 or L2 cache where the
 * table would not, so such a lookup ends with one cached load. Ids that
 * pass probe `table` (open addressing over mask + 1 cells, at most half
 * full), so that a lookup costs one probe more than on a compacted region,
 * never a lookup per delta (docs/BENCHMARKS.md, "After the delta read
 * path"). */
typedef struct strata__stack {
  uint32_t n;            /* deltas, oldest (depth 1) first */
  strata__file **deltas; /* one reference each */
  strata__stack_slot *slots;
  uint64_t nslots;
  uint64_t *filter;
  uint64_t fmask;
  strata__stack_cell *table;
  uint64_t mask;
  int64_t layer_delta; /* layers of base + deltas minus the base's */
  /* Entries sharing the stack: a proto's entry and the entry it was
   * opened over serve the same files (writer mutex held to change it). */
  uint32_t refs;
} strata__stack;

/* The hash of an id for a stack's filter and table: a multiply spreads
 * the id into the high bits, the xor brings them down to the low bits,
 * which pick the filter's bits and the table's cell. */
static inline uint64_t strata__stack_hash(uint64_t id) {
  uint64_t h = id * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 32);
}
/* The filter word of hash `h` (its high bits), the two bits of the word
 * an id sets (its low twelve bits), and the table cell a probe starts at
 * (the bits above those). */
static inline uint64_t strata__stack_word_at(const strata__stack *st,
                                             uint64_t h) {
  return (h >> 40) & st->fmask;
}
static inline uint64_t strata__stack_bits(uint64_t h) {
  return (1ull << (h & 63)) | (1ull << ((h >> 6) & 63));
}
static inline uint64_t strata__stack_cell_at(const strata__stack *st,
                                             uint64_t h) {
  return (h >> 12) & st->mask;
}
/* Prefetches what a lookup of hash `h` reads first: the filter word and
 * the table cell (strata_get_data_many's pipeline). */
static inline void strata__stack_prefetch(const strata__stack *st, uint64_t h) {
  __builtin_prefetch(&st->filter[strata__stack_word_at(st, h)]);
  __builtin_prefetch(&st->table[strata__stack_cell_at(st, h)]);
}

/* The table cell of id `id` (of hash `h`) in the stack, or NULL when no
 * delta holds it. */
static inline const strata__stack_cell *
strata__stack_cell_h(const strata__stack *st, uint64_t id, uint64_t h) {
  uint64_t bits = strata__stack_bits(h);
  if ((st->filter[strata__stack_word_at(st, h)] & bits) != bits)
    return NULL;
  for (uint64_t j = strata__stack_cell_at(st, h);; j = (j + 1) & st->mask) {
    const strata__stack_cell *c = &st->table[j];
    if (c->slot == 0)
      return NULL;
    if (c->id == id)
      return c;
  }
}
/* The slot of id `id` in the stack (its delta and entry), or NULL when no
 * delta holds it. */
static inline const strata__stack_slot *
strata__stack_find(const strata__stack *st, uint64_t id) {
  const strata__stack_cell *c =
      strata__stack_cell_h(st, id, strata__stack_hash(id));
  return c != NULL ? &st->slots[c->slot - 1] : NULL;
}

/* The content of the stack's cell `c` (NULL: no delta holds the id): 1
 * a layer (*data, *size set), 0 a tombstone, -1 no delta holds the id
 * (the base's layer, if any, stands). */
static inline int strata__stack_cell_data(const strata__stack_cell *c,
                                          const void **data, uint64_t *size) {
  if (c == NULL)
    return -1;
  if (c->data == NULL)
    return 0;
  *data = c->data;
  *size = c->size;
  return 1;
}
/* The content of id `id` in the stack, as strata__stack_cell_data(). */
static inline int strata__stack_data(const strata__stack *st, uint64_t id,
                                     const void **data, uint64_t *size) {
  return strata__stack_cell_data(
      strata__stack_cell_h(st, id, strata__stack_hash(id)), data, size);
}

/* ---- catalog (catalog.c) ----------------------------------------------- */

/* A region as published: immutable once in a catalog. */
typedef struct strata__entry {
  uint64_t id;
  char *name;
  char *metadata;
  strata__file *file;       /* NULL for a proto without a file yet */
  strata__overlay *overlay; /* NULL when the region has no proto */
  /* The delta files served over `file`, or NULL when there are none: the
   * one branch a read of a region without deltas pays. A region with a
   * proto's entry shares the stack of the entry it was opened over
   * (strata__stack.refs); its overlay holds the changes above the stack. */
  strata__stack *stack;
  uint64_t generation;
} strata__entry;

/* A cell of the catalog's table by id: what a lookup through a snapshot
 * needs from the entry, copied in so that a probe reads one line of the
 * table (two cells per line) and no line of the entry. `file` is the
 * entry's region file (NULL for a proto without one; the base when the
 * region has deltas). `stack` says what answers with it: NULL the file
 * alone (the region has neither a proto nor deltas), the region's deltas
 * over the file (no proto), or STRATA__CELL_ASK when the entry must be
 * asked (a proto, or no file; store_read.c). Entries do not change once
 * published, so neither does a cell. */
typedef struct strata__catalog_cell {
  uint64_t id;
  const strata_region *file;
  const strata__stack *stack;
  const strata__entry *e; /* NULL: an empty slot */
} __attribute__((aligned(32))) strata__catalog_cell;
/* A cell's `stack` for a region whose entry answers a lookup (catalog.c). */
extern const strata__stack strata__cell_ask;
#define STRATA__CELL_ASK (&strata__cell_ask)

typedef struct strata__catalog {
  uint64_t n;
  strata__entry **by_order; /* ascending id */
  uint64_t hmask;
  strata__catalog_cell *by_id; /* open addressing, hmask + 1 slots */
  uint64_t bytes;
} strata__catalog;

/* Builds a catalog over `n` entries (any order; ids must be unique). */
int strata__catalog_build(strata__entry **entries, uint64_t n,
                          strata__catalog **out);
void strata__catalog_free(strata__catalog *c);
/* The slot of region `id` in a catalog's by_id table: Fibonacci hashing,
 * because ids are often small and consecutive, which the multiplication
 * spreads over the table. */
static inline uint64_t strata__catalog_slot(uint64_t id, uint64_t mask) {
  return (id * 0x9E3779B97F4A7C15ull >> 20) & mask;
}
/* The cell of region `id`, or NULL. Inline: it is the first step of every
 * lookup through a snapshot (store_read.c), and the table is at most half
 * full, so the probe usually ends at its first slot. */
static inline const strata__catalog_cell *
strata__catalog_probe(const strata__catalog *c, uint64_t id) {
  for (uint64_t j = strata__catalog_slot(id, c->hmask);;
       j = (j + 1) & c->hmask) {
    const strata__catalog_cell *sl = &c->by_id[j];
    if (sl->e == NULL)
      return NULL;
    if (sl->id == id)
      return sl;
  }
}
/* The entry of region `id`, or NULL. */
static inline const strata__entry *
strata__catalog_find(const strata__catalog *c, uint64_t id) {
  const strata__catalog_cell *sl = strata__catalog_probe(c, id);
  return sl != NULL ? sl->e : NULL;
}
/* The entry named by the `len` bytes at `name`, or NULL. */
const strata__entry *strata__catalog_find_name(const strata__catalog *c,
                                               const char *name, size_t len);
/* Publishes a catalog of `n` entries, retiring the current catalog and the
 * `nr` entries in `retire` (entries of the current catalog that the new
 * one does not carry over). Either everything happens or, on
 * STRATA_E_NOMEM, nothing. Writer mutex held. */
int strata__catalog_publish(struct strata_store *s, strata__entry **entries,
                            uint64_t n, strata__entry **retire, uint64_t nr);
/* Publishes the current catalog with `entry` added, or replacing the entry
 * of the same id (which is retired); with `entry` NULL, removes the entry
 * `remove_id`. Writer mutex held. */
int strata__catalog_swap(struct strata_store *s, strata__entry *entry,
                         uint64_t remove_id);

/* strata__catalog_swap() in two steps, for a change that must allocate
 * everything before an action it cannot undo: _prepare allocates (the new
 * catalog and the retire records; STRATA_E_NOMEM), _commit publishes and
 * cannot fail, _abandon frees what _prepare allocated. The writer mutex
 * is held from _prepare to _commit or _abandon. */
typedef struct strata__catalog_change {
  strata__catalog *next;
  strata__entry *replaced; /* retired by _commit; NULL if none */
  strata__retired *recs[2];
} strata__catalog_change;
int strata__catalog_prepare(struct strata_store *s, strata__entry *entry,
                            uint64_t remove_id, strata__catalog_change *ch);
void strata__catalog_commit(struct strata_store *s, strata__catalog_change *ch);
void strata__catalog_abandon(strata__catalog_change *ch);
/* A new entry with copies of name and metadata (NULL: ""), holding the
 * caller's reference to `file` (which may be NULL), no overlay and
 * generation 0. NULL when out of memory (then `file` is still the
 * caller's): the one way an entry is made. */
strata__entry *strata__entry_new(uint64_t id, const char *name,
                                 const char *metadata, strata__file *file);
/* Frees an entry: its name, metadata, file reference and stack (not the
 * overlay, which is retired on its own when it goes). */
void strata__entry_free(struct strata_store *s, void *entry);

/* store_stack.c. Builds a stack over the `n` deltas files[0 .. n) (depth
 * 1 first, the chain already checked), taking over their references on
 * success; `base` is the region's base file. Reads every index entry of
 * every delta: a delta whose index fails there (a chunk that fails its
 * first-use validation, an inconsistent id order, which the open does not
 * check) is STRATA_E_CORRUPT (or the region's STRATA_E_LIMIT /
 * STRATA_E_VERSION) with a detail naming the delta file, its depth, the
 * file offset of the entry being read and the region's own detail (the
 * layer), and *bad (when not NULL) set to its position in files[]; never
 * a stack that leaves a delta's layers out. STRATA_E_NOMEM. On failure
 * the references are still the caller's. */
int strata__stack_new(const strata__file *base, strata__file **files,
                      uint32_t n, strata__stack **out, uint32_t *bad);
/* Drops one reference; the last drops the stack's file references and
 * frees it. NULL ok. */
void strata__stack_free(struct strata_store *s, strata__stack *st);
/* The layer `id` of an entry's files (base and deltas, not its proto): 1
 * found (*out filled), 0 not there or removed by a tombstone. */
int strata__entry_file_get(const strata__entry *e, uint64_t id,
                           strata_layer *out);
/* The same by name: the newest file holding the name wins, when no newer
 * delta holds another version of that layer's id. */
int strata__entry_file_get_by_name(const strata__entry *e, const char *name,
                                   size_t len, strata_layer *out);
/* Layers of the entry's files: the base's plus the stack's layer_delta. */
uint64_t strata__entry_file_layers(const strata__entry *e);
/* The layers of an entry's files (base and deltas, not its proto) in id
 * order, tombstones hidden: _init, then _next until it returns 0 (1: *out
 * filled; STRATA_E_CORRUPT from the base's iteration). */
typedef struct strata__files_iter {
  const strata__entry *e;
  strata_region_iter file;
  strata_layer pending; /* the base's next layer when have_pending */
  bool have_pending, file_done;
  uint64_t sk; /* the next stack slot */
} strata__files_iter;
void strata__files_iter_init(const strata__entry *e, strata__files_iter *it);
int strata__files_next(strata__files_iter *it, strata_layer *out);

/* ---- memory thresholds (store_memory.c; eviction in crystallize.c) ------ */

/* The memory thresholds of strata_store_config, in order: a heap at or
 * above a threshold's bytes (strata__memory_threshold) has reached it. */
typedef enum strata__mem_level {
  STRATA__MEM_OK,     /* below warn_pct */
  STRATA__MEM_WARN,   /* warn_pct: logged once per crossing */
  STRATA__MEM_EVICT,  /* evict_pct: protos are crystallized, largest first,
                         until the heap is below warn_pct */
  STRATA__MEM_REFUSE, /* refuse_pct: puts that would pass it fail */
} strata__mem_level;

/* Heap bytes as accounted: pool blocks in use plus store overhead (not the
 * pool's reserved chunks: store_memory.c says why). Any thread (the
 * figures are atomic or the pool's own). */
uint64_t strata__store_heap(const struct strata_store *s);
/* `pct` percent of memory_limit in bytes, rounded down: the one rounding
 * of every threshold (store_memory.c says why). */
uint64_t strata__memory_threshold(const struct strata_store *s, unsigned pct);
/* The highest threshold `heap` bytes reach. */
strata__mem_level strata__memory_level(const struct strata_store *s,
                                       uint64_t heap);
/* Writer mutex held, after a change: records the level the heap reached,
 * warns when it first reaches warn_pct, and returns the level. */
strata__mem_level strata__memory_check(struct strata_store *s);
/* Writer mutex held: at STRATA__MEM_EVICT or above (as of the last
 * strata__memory_check), or when `need` is not 0, crystallizes protos,
 * largest first, until the heap is below the warn threshold (the low
 * watermark) and `need` more bytes would not pass refuse_pct, and asks the
 * kernel to reclaim region pages first (crystallize.c). `need` is a put's
 * cost that would pass refuse_pct from below evict_pct (a large layer, a
 * proto's table doubling): the round that would have run after the put
 * runs before it. Does nothing while a snapshot that pinned the previous
 * round's memory is still open. */
void strata__memory_evict(struct strata_store *s, uint64_t need);

/* ---- the store ----------------------------------------------------------- */

struct strata_proto {
  struct strata_store *store;
  uint64_t region_id;
  uint64_t created_ns;
  bool discarded; /* kept until close so that misuse fails cleanly */
};

struct strata_store {
  char *dir;
  int dirfd;
  int lockfd;       /* -1 until the first write call takes the lock */
  bool created_dir; /* STRATA_STORE_CREATE made the directory */
  strata_store_config config;
  strata__logger log;

  _Atomic(strata__catalog *) catalog;
  _Atomic uint64_t epoch;

  /* Serializes writers, reclamation and pool use. */
  pthread_mutex_t write_mu;
  strata__pool *pool;
  strata__retired *retired; /* newest first */
  _Atomic uint64_t retired_bytes, retired_count;

  /* Reader slots. */
  pthread_key_t slot_key;
  pthread_mutex_t slots_mu;
  strata__reader *slots;
  uint32_t max_readers;
  _Atomic uint32_t slots_used; /* high-water mark of claimed slots */
  uint64_t warned_age_ms;      /* snapshot-age warning doubling */
  uint64_t uid;                /* unique per store in this process */
  /* Per slot, under write_mu: the `begins` value last seen and when it was
   * first seen (ebr.c: snapshot ages). */
  uint64_t *seen_begins, *seen_ns;
  uint64_t peak_readers; /* most open snapshots a scan saw (write_mu) */
  bool count_reads;      /* !STRATA_STORE_NO_READ_STATS */

  /* Memory accounting (store_memory.c; the limit is config.memory_limit). */
  _Atomic uint64_t extra_bytes; /* malloc'd store overhead */
  strata__mem_level mem_level;  /* as of the last strata__memory_check */
  bool evicting;
  /* The cost of the put check_memory() (proto.c) refused last, or 0: set
   * there, read and cleared by the put's caller under write_mu. */
  uint64_t mem_refused;
  /* Nonzero when the last eviction round ended above the low watermark
   * because snapshots held what it freed: the epoch it ended at. Eviction
   * waits until every snapshot that old has ended (crystallize.c). */
  uint64_t evict_pinned_epoch;

  struct strata_proto **protos;
  uint64_t proto_n, proto_cap;
  uint64_t last_prune_min;

  strata_store_stats stats; /* counters, under write_mu */

  /* The staging pool (NULL when staging.bytes is 0), opened and closed
   * by strata_store_open and _close (src/strata.c). The store keeps the
   * pointer for the layers above and never dereferences it. */
  struct strata__staging *staging;
  /* The store's remote (src/remote/), NULL without one: attached and
   * detached by strata_store_open and _close like the staging pool, and
   * never dereferenced by the store. */
  struct strata__remote *remote;
  /* strata__store_claim()'s reason ("follows POOL/NAME"), or NULL: when
   * set, the store holds its writer lock until it closes and every write
   * call fails with STRATA_E_STATE "DIR: WHY; it is read-only". */
  char *claimed_by;
  /* Read sampling (store_sample.h): one ring per reader slot, which a slot
   * takes when claimed, or NULL; and the mask that picks the sampled
   * lookups. Set by whoever drains the rings (the staging pool) before the
   * store is handed out, and cleared after the last snapshot ended. */
  strata__sample_ring *hot_rings;
  uint32_t sample_mask;

  /* Called by strata__file_unref just before a region file is unmapped,
   * with the mapping's base and size, so that a layer above can drop what
   * it holds on that memory (the staging pool's zero-staging path waits
   * for device copies reading from it and unregisters it; staging.c sets
   * the hook when its pool opens and clears it when it closes). NULL: no
   * one is interested.
   *
   * Contract. It runs on the thread that drops the file's last reference:
   * a write call, reclamation or the verifier thread, all holding the
   * writer mutex `write_mu`, or the one thread that opens or closes the
   * store. It may block (on work of its own, such as device copies), but
   * must not call back into the store nor take `write_mu`, which may be
   * held. It is set and cleared only while no other thread uses the store:
   * during strata_store_open before the verifier thread starts, and during
   * strata_store_close after it and every snapshot have ended. */
  void (*before_unmap)(void *ctx, const void *base, uint64_t size);
  void *before_unmap_ctx;

  /* The shared view (store_shm.c): this process's slot in .strata.shm, or
   * NULL (config.shared_view 0, or the view could not be set up). */
  strata__shm *shm;
  /* Fills the staging pool's figures for the shared view: the hook through
   * which the layer above reports them (staging.c sets it when its pool
   * opens and clears it when it closes, with the same rules as
   * before_unmap). Called by the publisher thread, without `write_mu`: it
   * must not call back into the store. NULL: no pool. */
  void (*staging_figures)(void *ctx, strata__shm_staging *out);
  void *staging_figures_ctx;

  /* Index checksums deferred at open, checked by a background thread. */
  pthread_mutex_t verify_mu; /* guards joining the thread */
  pthread_t verify_tid;
  bool verify_running;
  _Atomic bool verify_stop;
  strata__file **verify_files;
  size_t verify_n;

  /* The background compactor (compact.c), or NULL without
   * STRATA_STORE_BACKGROUND_COMPACT (or in a read-only store). Set at
   * open, cleared at close: crystallize.c reads it under write_mu. */
  struct strata__compactor *compactor;
  /* Queues region `id` for the compactor and wakes it (compact.c sets it
   * with the compactor; a hook because compact.c builds on
   * crystallize.c's walks, and crystallize.c asks for compactions). */
  void (*compact_request)(struct strata_store *s, uint64_t id);
  /* Compactions so far (strata_compact and the compactor): under write_mu
   * (compact.c; the state dump reads them through
   * strata__compact_figures_get). */
  struct {
    uint64_t count, merges, rebased, dropped, failed, ns;
  } compact_stats;
  /* strata_testing.h: called by a compaction between the write of its new
   * file and the publication, without the writer mutex. */
  void (*compact_hook)(void *ctx);
  void *compact_hook_ctx;

  /* Region files the last open or refresh did not serve because another
   * file holds the same region id or name (store_scan.c), for the state
   * dump. Under write_mu. */
  struct strata__conflict *conflicts;
  size_t conflict_n;
};

/* Sizes of the buffers for values that go through strata__log_quote into
 * a log line: a path, and free text such as an error detail (at most 1024
 * bytes, common/error.c). A log line holds 2048 bytes (common/log.c). */
#define STRATA__LOG_PATH 512
#define STRATA__LOG_TEXT 1024

/* store.c. Opening a store is three steps so that a layer above can put
 * its own part between them (strata_store_open, src/strata.c: the staging
 * pool): _open checks the config and loads the catalog (the store is not
 * shared yet: only the calling thread uses it), _start starts the verifier
 * thread, after which the store may be handed out. Closing is two: _stop
 * stops the verifier and waits for every snapshot to end, after which no
 * other thread touches the store, and _close frees it (and calls _stop
 * itself, so that it also undoes an _open alone). NULL ok for _close. */
int strata__store_open(const char *dir, const strata_store_config *config,
                       struct strata_store **out);
void strata__store_start(struct strata_store *s);
void strata__store_stop(struct strata_store *s);
void strata__store_close(struct strata_store *s);
/* store_dir.c: creates `dir` (the last component only) unless it is a
 * directory already, setting *created when it made it. Errors name the
 * path: -ENOTDIR (something else is there), -ENOENT (no parent), -errno. */
int strata__store_mkdir(const char *dir, bool *created);
/* Removes a directory strata__store_mkdir() created, after an open that
 * failed: its lock file and shared view file, then the directory if
 * nothing else is in it. */
void strata__store_unmake_dir(const char *dir);

/* The suffix of a region (base) file's name: "NAME.region". */
#define STRATA__REGION_SUFFIX ".region"

/* store_scan.c. Lists the region files of the directory ("*.region", not
 * hidden), sorted, into a malloc'd array of malloc'd names; with `clean`,
 * also removes the temporary files of writers that died. */
int strata__store_list(struct strata_store *s, bool clean, char ***names,
                       size_t *count);
void strata__store_names_free(char **names, size_t n);
/* Is `name` what the listing takes for a region file: "NAME.region", not
 * hidden? */
bool strata__store_is_region_name(const char *name);
/* The same for a delta file: "NAME.delta", not hidden. */
bool strata__store_is_delta_name(const char *name);
/* Opens the named files in parallel (config.open_threads) and turns them
 * into entries, skipping (and logging) the ones that fail to validate; with
 * `strict`, the first of them in list order fails the call instead, with
 * its error and detail (which name the file). Appends to have[*n]; `have`
 * must have room for *n + count entries. Two entries may claim one region
 * id or name: strata__store_choose decides. With `defer`, index checksums
 * are left to the verifier. STRATA_E_NOMEM, or with `strict` the file's
 * error (entries appended so far stay in `have`). */
int strata__store_load(struct strata_store *s, char **names, size_t count,
                       bool defer, bool strict, strata__entry **have,
                       size_t *n);
/* Lists the delta files of the directory ("*.delta", not hidden), sorted,
 * as strata__store_list lists region files. */
int strata__store_list_deltas(struct strata_store *s, char ***names,
                              size_t *count);
/* Gives each entry of have[0 .. n) that has a file and no proto the chain
 * of delta files over its base (store_stack.c; docs/ARCHITECTURE.md,
 * "Finding the chain"), reading the directory's delta files (reusing the
 * files the entries' stacks hold when they are unchanged on disk). A new
 * entry (index >= first_new) gets its stack in place; a carried-over one
 * whose chain changed is replaced in have[] by a new entry (generation 0,
 * the caller counts it) and appended to drop[*ndrop]. Stale deltas are
 * logged (INFO), deltas above a gap (WARN, naming the delta and the top of
 * the chain), deltas that do not validate (WARN) and are not served.
 * With `listed` (the swap: nlisted delta file names of the directory), the
 * chains are found among those files only, and any of them that does not
 * open, is not a delta or is on no entry's chain fails the call (the
 * detail names it: the open's error, or STRATA_E_CORRUPT); NULL: every
 * delta file of the directory, with the failures above logged.
 * STRATA_E_NOMEM or the listing's -errno: then entries made so far are in
 * have[] (the caller frees those not published). Writer mutex held, or the
 * store being opened by one thread. */
int strata__store_stacks(struct strata_store *s, strata__entry **have, size_t n,
                         size_t first_new, strata__entry **drop, size_t *ndrop,
                         char **listed, size_t nlisted);
/* A region file not served because another file holds its region id or
 * name: both paths, malloc'd. */
typedef struct strata__conflict {
  uint64_t region_id; /* of the skipped file */
  const char *why;    /* "region id" or "region name" (static) */
  char *served, *skipped;
} strata__conflict;
void strata__conflicts_free(strata__conflict *c, size_t n);
/* Keeps, of the *n entries in `have`, one per region id and per region
 * name, by a rule that depends only on the files (store_scan.c says which
 * and why), so that open, refresh and every process serve the same file.
 * have[0 .. first_new) are carried over from the current catalog, the
 * rest were just loaded. On success, have[0 .. *n) are the winners; a
 * carried-over loser is appended to drop[*ndrop] (room for first_new),
 * a new one is freed; each loser is logged (WARN, naming both files) and
 * described in *conflicts (malloc'd, *nconflicts records; NULL when none)
 * for strata__store_set_conflicts. STRATA_E_NOMEM: nothing changed. */
int strata__store_choose(struct strata_store *s, strata__entry **have,
                         size_t *n, size_t first_new, strata__entry **drop,
                         size_t *ndrop, strata__conflict **conflicts,
                         size_t *nconflicts);
/* Replaces the store's list of conflicts (taking `c` over). Writer mutex
 * held, or the store being opened by one thread. */
void strata__store_set_conflicts(struct strata_store *s, strata__conflict *c,
                                 size_t n);

/* store_lock.c. Takes the lock file's flock without waiting: 0, or
 * -errno (-EWOULDBLOCK when another holds it); *fdp holds it on success. */
int strata__store_try_lock(struct strata_store *s, int *fdp, bool create);
/* Takes the cross-process writer lock if this store does not hold it, then
 * cleans up after dead writers and refreshes. STRATA_E_STATE when the
 * store is read-only or claimed (strata__store_writable), STRATA_E_LOCKED
 * naming the holder's pid. Writer mutex held. */
int strata__store_lock(struct strata_store *s);
/* 0, or STRATA_E_STATE with the detail "DIR: WHY; it is read-only" when
 * the store is claimed: every write call checks it (strata__store_lock,
 * proto put and remove, strata_crystallize_ex); eviction does not (a
 * claimed store has no protos to evict). Writer mutex held. */
int strata__store_writable(struct strata_store *s);
/* Claims the store for one owner inside this process (the remote
 * follower, which passes why = "follows POOL/NAME"; src/remote/,
 * docs/REMOTE.md): takes the writer lock (.strata.lock) as the first write
 * call does (cleanup of dead writers' temporary files and a refresh
 * included) and keeps it until the store is closed; from then on every
 * write call of the store fails with STRATA_E_STATE and the detail "DIR:
 * WHY; it is read-only". Other processes get STRATA_E_LOCKED from their
 * write calls and claims, as with any writer. The owner changes the store
 * through internal calls that do not check the claim
 * (strata__store_swap_files).
 * Errors: STRATA_E_LOCKED (another process holds the lock: the detail
 * names its pid), STRATA_E_STATE (claimed already, a proto is open, or the
 * store was opened read-only), STRATA_E_INVAL (NULL or empty why),
 * STRATA_E_NOMEM, -errno naming the lock file. On failure nothing is
 * held. Takes the writer mutex itself; any thread. */
int strata__store_claim(struct strata_store *s, const char *why);

/* store_refresh.c. Writer mutex held: brings the catalog in line with the
 * directory (strata_store_refresh). */
int strata__store_refresh_locked(struct strata_store *s);
/* The refresh that takes its file list from the caller instead of the
 * directory scan (the remote follower's swap, docs/REMOTE.md): the catalog
 * becomes exactly the `n` files `names` of the store's directory: region
 * files ("NAME.region") and the delta files served over them ("X.delta"),
 * names within the directory, not hidden. Each region's chain of deltas is
 * found among the listed delta files only, and a listed delta on no
 * listed base's chain fails the swap (STRATA_E_CORRUPT naming it), so a
 * region's stack is swapped whole. An entry whose file is still the
 * same inode of the same size under its name is reused; the other files
 * are opened and validated as refresh does; regions not listed are
 * dropped. Everything is published in one catalog swap: a snapshot sees
 * all of the old set or all of the new one. Snapshots open keep the files
 * they hold (an unlinked or replaced file stays mapped until they end).
 *
 * On any failure the catalog is unchanged and the detail names the file:
 * STRATA_E_INVAL (a name that is neither a region's nor a delta's, or
 * listed twice),
 * -ENOENT and other -errno (a listed file missing or unreadable), the
 * validation's codes (a bad file), STRATA_E_DUPLICATE (two files holding
 * one region id or name: both named), STRATA_E_STATE (a proto is open in
 * this store: its region could not follow the list), STRATA_E_NOMEM.
 *
 * Takes the writer mutex (write_mu) itself: call it without. Any thread;
 * concurrent snapshots and lookups are safe. `names` is only read during
 * the call. */
int strata__store_swap_files(struct strata_store *s, const char *const *names,
                             size_t n);
/* Protos of this store not discarded (discarded ones stay registered until
 * close but hold nothing). Writer mutex held. */
uint64_t strata__store_protos_open(const struct strata_store *s);

/* store_verify.c. Starts the thread that checks the index checksums open
 * deferred, or checks them at once when it cannot (no memory, no thread).
 * Called once, by strata__store_start. */
void strata__store_start_verifier(struct strata_store *s);
/* Waits until the verifier thread has checked the deferred index
 * checksums (and withdrawn regions that failed). Writer mutex NOT held. */
void strata__store_await_verify(struct strata_store *s);
/* store_stats.c. Writer mutex held: prunes overlays, shrinks count
 * histories left mostly dead, frees what no snapshot reaches. Run at the
 * end of every write call. */
void strata__store_maintain(struct strata_store *s);
/* What a strata_txn holds. The public type is reserved words
 * (<strata/snapshot.h>) so that callers can keep a snapshot on the stack
 * without its fields being the ABI; this is their meaning, reached only
 * through strata__txn_priv(). may_alias: the caller's object is declared as
 * uint64_t words and is accessed here through other types, which type-based
 * alias analysis would otherwise assume cannot happen. */
typedef struct __attribute__((__may_alias__)) strata__txn {
  struct strata_store *store;
  const void *catalog; /* const strata__catalog * */
  strata__reader *slot;
  uint64_t version;
  /* Read statistics of this snapshot, added to the slot's at read_end. */
  uint64_t gets, misses, bytes;
  bool count; /* the store counts reads (!STRATA_STORE_NO_READ_STATS) */
  /* slot->ring, copied at read_begin (it is set when the slot is claimed)
   * so that a lookup's hit path tests one word of the txn, hot in the
   * caller's cache, when nobody samples. */
  strata__sample_ring *ring;
  /* The single lookups' last region whose file answers without its entry
   * (a catalog cell with a file and a stack other than STRATA__CELL_ASK),
   * its stack and its id: a run of gets in one region then skips the
   * catalog probe (store_read.c, file_only()). NULL: none yet. The catalog
   * does not change under a snapshot, so neither does the triple. */
  const strata_region *hint_file;
  const strata__stack *hint_stack;
  uint64_t hint_id;
} strata__txn;
_Static_assert(sizeof(strata__txn) <= sizeof(strata_txn),
               "strata__txn outgrew strata_txn's reserved words");
_Static_assert(_Alignof(strata__txn) <= _Alignof(strata_txn),
               "strata__txn needs more alignment than strata_txn has");

/* A snapshot's private state. Lookups take the txn as const (they do not
 * change what it sees) but update its read counters, so this hands back a
 * mutable pointer. */
static inline strata__txn *strata__txn_priv(const strata_txn *txn) {
  return (strata__txn *)(uintptr_t)txn;
}

/* strata_get without statistics, sampling or error detail (the staging
 * pool's own reads): 0, STRATA_E_NO_REGION or STRATA_E_NOT_FOUND. */
int strata__get_quiet(const strata_txn *txn, uint64_t region_id,
                      uint64_t layer_id, strata_layer *out);
/* The region file a snapshot serves region `region_id` from, or NULL (no
 * such region, or a proto without a file). */
const strata_region *strata__txn_file(const strata_txn *txn,
                                      uint64_t region_id);
/* Crystallizes with the writer mutex held, reporting to `progress` (NULL:
 * none) as strata_crystallize_ex() documents. */
int strata__crystallize_locked(struct strata_store *s, uint64_t region_id,
                               strata_progress_fn progress, void *ctx);

/* compact.c: the background compactor. _start starts its thread (with
 * STRATA_STORE_BACKGROUND_COMPACT in a store that may write; a failure to
 * start is a WARN, and crystallize.c then compacts in the foreground as
 * without the flag); _stop cancels the compaction in progress, joins the
 * thread and frees the queue (before the store frees its entries).
 * s->compact_request queues a region (writer mutex held). */
void strata__compact_start(struct strata_store *s);
void strata__compact_stop(struct strata_store *s);
/* What the state dump reports of compactions: whether a compactor thread
 * runs, its queue and whether it is compacting now, and the counts since
 * open: compactions published (merges among them), deltas rebased,
 * compactions dropped (STRATA_E_CONFLICT, STRATA_E_STATE, canceled) and
 * failed (any other error, and one published whose directory fsync
 * failed), and the time the published ones took. Takes
 * the writer mutex and the compactor's. */
typedef struct strata__compact_figures {
  bool background, running;
  uint64_t queued;
  uint64_t count, merges, rebased, dropped, failed, ns;
} strata__compact_figures;
void strata__compact_figures_get(struct strata_store *s,
                                 strata__compact_figures *out);

#endif /* STRATA_STORE_INTERNAL_H */
