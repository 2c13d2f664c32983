/* State of a region writer, shared by its files: writer.c (open, argument
 * checks, layers), writer_sets.c (the id and name sets), writer_commit.c
 * (commit and abort, through the file publisher pubfile.c), writer_index.c
 * (building the index sections, with writer_phash.c and writer_sort.c) and
 * writer_buf.c (the write buffer, the positioned write, the byte buffer
 * and the entry arrays' memory).
 * Calls go one way only: writer.c calls writer_sets.c, writer_commit.c,
 * writer_buf.c and pubfile.c; writer_commit.c calls writer_index.c,
 * writer_buf.c and pubfile.c; writer_index.c calls writer_phash.c,
 * writer_sort.c and writer_buf.c; writer_sort.c calls writer_buf.c, and
 * writer_buf.c only pubfile.c. tools/check_layers.py refuses a cycle. */
#ifndef STRATA_WRITER_INTERNAL_H
#define STRATA_WRITER_INTERNAL_H

#include "common/hash.h"

#include "region/region.h"
#include "writer/pubfile.h"

/* One layer as the writer remembers it until commit. */
typedef struct strata__wentry {
  uint64_t id;
  uint64_t offset; /* relative to the data section */
  uint64_t size;
  uint64_t checksum;
  uint64_t name_off; /* into the writer's string arena */
  uint64_t meta_off;
  uint32_t name_len;
  uint32_t meta_len;
  uint64_t hash;  /* commit: the layer's slot (sparse regions) */
  uint32_t rank;  /* commit: its position in id order */
  uint32_t flags; /* layer flags: 0 or STRATA__LAYER_TOMBSTONE */
} strata__wentry;

/* Open-addressing set of entry numbers, keyed by id or by name. */
typedef struct strata__wset {
  uint32_t *slots; /* entry number + 1; 0 = empty */
  uint64_t cap;    /* power of two */
  uint64_t used;
} strata__wset;

/* Open-addressing set of layer ids, holding the ids themselves so that a
 * probe reads one slot and no entry: 0 marks an empty slot, and id 0 is
 * kept aside in has_zero. */
typedef struct strata__idset {
  uint64_t *slots;
  uint64_t cap; /* power of two */
  uint64_t used;
  bool has_zero;
} strata__idset;

/* Growable byte buffer. */
typedef struct strata__buf {
  uint8_t *p;
  uint64_t len, cap;
} strata__buf;

struct strata_writer {
  char *path;          /* final path */
  strata__pubfile *pf; /* the file (pubfile.c); NULL until it is made */
  int lockfd;          /* the store's lock (STRATA_WRITER_LOCK_STORE), or -1 */

  uint64_t region_id;
  char *name, *metadata;
  uint32_t align;
  strata_progress_fn progress;
  void *progress_ctx;

  uint64_t data_off; /* file offset of the data section */
  uint64_t pos;      /* file offset of the next byte to write */
  uint8_t *wbuf;     /* write buffer; wlen bytes pending at pos - wlen */
  size_t wlen;

  strata__wentry *entries;
  uint64_t n, cap;
  strata__buf strings; /* names and metadata, NUL-terminated */
  strata__idset ids;
  strata__wset names;
  bool ids_indexed; /* `ids` is built: some id came out of order */
  /* STRATA_WRITER_CHECK_IDS_AT_COMMIT: `ids` is never built; commit's sort
   * finds a repeated id (strata__writer_id_order). */
  bool ids_at_commit;
  uint64_t set_seed; /* random seed of the in-memory sets' hash */

  /* A delta file (strata__writer_set_delta()): format 1.1, the DELTA flag
   * and this binding in the header extension. */
  bool delta;
  uint32_t delta_depth;
  uint64_t delta_parent, delta_base;
  /* strata__writer_fresh_seed(): the index starts from a random hash seed
   * instead of seed 0. */
  bool fresh_seed;

  bool in_layer;
  bool out_of_order; /* some layer came after one with a larger id */
  bool failed;       /* a write failed: only abort is possible */
  /* Commit: each flush feeds w->xxh, which then sums the index. */
  bool hash_flushes;
  XXH3_state_t *xxh;
  uint64_t last_progress;
};

/* ---- delta files (format 1.1, docs/FORMAT.md "Delta files") ----------- */

/* Makes the writer write a delta file: format 1.1, the header flag
 * STRATA_REGION_DELTA, a 320-byte header whose extension holds the binding
 * (parent_checksum: header checksum of the file the delta applies over;
 * base_checksum: that of the base of the stack; depth: 1 for the first
 * delta over the base, whose parent is then the base). Call it right after
 * strata_writer_open(), before the first layer: the data section starts
 * after the larger header.
 * Errors: STRATA_E_INVAL (NULL writer, depth 0, parent equal to base with
 * a depth above 1 or differing from it at depth 1), STRATA_E_STATE (a layer
 * was begun already, or the writer failed). Not thread-safe (a writer is
 * used by one thread at a time). */
int strata__writer_set_delta(strata_writer *w, uint64_t parent_checksum,
                             uint64_t base_checksum, uint32_t depth);

/* Makes the index start from a random hash seed instead of seed 0, so that
 * the file's header checksum differs from that of any earlier file with
 * the same content (writers are otherwise reproducible: the same layers
 * give the same bytes). A delta binds to its parent by header checksum
 * (docs/FORMAT.md, "Delta files"), so a store that rewrites a base or
 * merges deltas calls it: a new file equal byte for byte to one it
 * replaces would otherwise take over the bindings of the deltas made stale
 * by the replacement, and serve them again if their removal failed or a
 * crash came first. NULL ok (no effect). Not thread-safe. */
void strata__writer_fresh_seed(strata_writer *w);

/* Adds a tombstone for `id` to a delta file: an entry with the flag
 * STRATA_LAYER_TOMBSTONE and no content, name or metadata. A tombstone
 * takes its id like a layer: an id is a layer or a tombstone of the file,
 * never both. Errors: STRATA_E_INVAL (NULL writer), STRATA_E_STATE (not a
 * delta writer, inside a layer, failed), STRATA_E_DUPLICATE (the id is a
 * layer or a tombstone already; the detail names the id and which it is),
 * STRATA_E_LIMIT, STRATA_E_NOMEM, -errno from writing. */
int strata__writer_add_tombstone(strata_writer *w, uint64_t id);

/* ---- writer_buf.c: the output every part of the writer goes through -- */

/* The write buffer's size (w->wbuf). */
#define STRATA__WBUF_SIZE (1u << 20)

/* Copies bytes into the write buffer at w->pos, flushing it when full.
 * -errno from a flush. */
int strata__writer_put(strata_writer *w, const void *data, size_t len);

/* Writes the write buffer's wlen pending bytes to the file, feeding them
 * to w->xxh first while w->hash_flushes is set (the index checksum). A
 * failed write marks the writer failed: it is final (see pubfile.c).
 * -errno. */
int strata__writer_flush(strata_writer *w);

/* pwrite()s len bytes at file offset `at`; a failure marks the writer
 * failed (final, as above). -errno. */
int strata__writer_write_at(strata_writer *w, const void *p, size_t len,
                            uint64_t at);

/* Appends bytes to the buffer. Returns STRATA_E_NOMEM on failure. */
int strata__buf_put(strata__buf *b, const void *p, uint64_t len);

/* Entry arrays (w->entries) by their capacity in entries: the large ones
 * are mappings of their own (writer_buf.c says why), so they are resized
 * and freed only here, with the capacity they were made with. alloc and
 * resize return NULL when out of memory (resize then leaves the array as
 * it was); resize only grows. */
strata__wentry *strata__entries_alloc(uint64_t cap);
strata__wentry *strata__entries_resize(strata__wentry *e, uint64_t cap,
                                       uint64_t new_cap);
void strata__entries_free(strata__wentry *e, uint64_t cap);

/* Sorts the entries, chooses the hash seed and writes the index sections
 * (everything after the data section) through the write buffer from
 * w->pos, which must be `index_off` with nothing pending, filling the
 * header fields that depend on them in `header`. The index is streamed,
 * never held whole in memory: a 4M-layer index is 370 MB. A failure
 * after the first byte is written marks the writer failed. */
int strata__writer_build_index(strata_writer *w, uint64_t index_off,
                               uint8_t header[STRATA__HEADER_SIZE]);

/* writer_sort.c: the entries' two orders, without a comparison sort. */

/* An entry's id and its position in w->entries. */
typedef struct strata__id_pos {
  uint64_t id;
  uint64_t pos;
} strata__id_pos;

/* The entries in ascending id order, as (id, position) pairs in *order
 * (the caller frees it), or *order NULL when w->entries is in that order
 * already (checked in one pass); else a radix sort. The entries do not
 * move. STRATA_E_NOMEM without a detail message, or STRATA_E_DUPLICATE
 * with one naming a repeated id and its two layers. */
int strata__writer_id_order(strata_writer *w, strata__id_pos **order);

/* Puts w->entries in the order strata__writer_id_order() gave (NULL: as
 * they are): one gather. STRATA_E_NOMEM without a detail message. */
int strata__writer_apply_order(strata_writer *w, const strata__id_pos *order);

/* Puts w->entries in slot order and sets each entry's .hash to its slot,
 * given slot[k], the distinct slot (below `slots`) of the k-th entry in
 * id order, which is order[k].pos (or k when `order` is NULL): one
 * scatter over the slots and one gather, no sort. STRATA_E_NOMEM without
 * a detail message. */
int strata__writer_order_by_slot(strata_writer *w, const strata__id_pos *order,
                                 const uint64_t *slot, uint64_t slots);

/* writer_commit.c: the temporary file, through the file publisher. */

/* Makes the file publisher for w->path (pubfile.h: an O_TMPFILE where it
 * can later be named, else a named temporary file), whose temporary name
 * strata_writer_temp_path() reports. Errors: -errno, STRATA_E_NOMEM,
 * STRATA_E_LIMIT; the writer must then be aborted. */
int strata__writer_open_temp(strata_writer *w);

/* writer_sets.c: duplicate ids and names. */

/* Builds the id set over every entry so far. Ids that came in ascending
 * order need none (a new id above the last one cannot be a duplicate); the
 * first id out of order needs it from then on. STRATA_E_NOMEM. */
int strata__writer_build_id_set(strata_writer *w);

/* The entry number that holds this id, or this name, or -1. */
int64_t strata__writer_find_id(const strata_writer *w, uint64_t id);
int64_t strata__writer_find_name(const strata_writer *w, const char *name,
                                 size_t len);

/* Registers the completed entry `entry` (already counted in w->n) in the
 * id set, where it is built, and in the name set if the layer has a name.
 * STRATA_E_NOMEM without a detail message: the caller words it. */
int strata__writer_sets_add(strata_writer *w, uint32_t entry);

/* Sizes the entry array for `layers` layers up front (a hint: more may
 * still be added). STRATA_E_NOMEM. */
int strata__writer_reserve(strata_writer *w, uint64_t layers);

/* strata_writer_add() of a layer whose content's XXH3-64 the caller
 * already holds (a proto's layer version, hashed when it was put): the
 * bytes are copied, not hashed again. A wrong checksum makes a file that
 * validation rejects, so only pass one computed from these very bytes.
 * Errors as strata_writer_add(). */
int strata__writer_add_hashed(strata_writer *w, uint64_t id, const char *name,
                              size_t name_len, const char *metadata,
                              const void *data, size_t size, uint64_t checksum);

/* Commits in two steps, so that the caller can allocate everything it
 * needs to publish the new file while nothing is in place yet.
 *
 * strata__writer_commit_prepare() writes the index and header, fsyncs the
 * file, validates it and hands it back as an open region: the mapping that
 * the validation used, faulted in (MADV_POPULATE_READ) so that a read error
 * surfaces here rather than in a reader. *dev and *ino identify the file
 * (it keeps them through the rename). Nothing is in the directory yet
 * (with O_TMPFILE, nothing at all). On failure, abort the writer.
 *
 * strata__writer_commit_publish() then renames the file into place and
 * fsyncs the directory. *fsync_ns receives the time spent in fsync (file
 * and directory), whatever the outcome; *placed whether the file was
 * renamed into place, which is true on success and also when only the
 * fsync of the directory failed. Abort the writer afterwards in any case
 * (it frees it). */
int strata__writer_commit_prepare(strata_writer *w, strata_region **out,
                                  dev_t *dev, ino_t *ino);
int strata__writer_commit_publish(strata_writer *w, uint64_t *fsync_ns,
                                  bool *placed);

#endif /* STRATA_WRITER_INTERNAL_H */
