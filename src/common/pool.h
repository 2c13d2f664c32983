/* Heap pool allocator: the memory of proto-regions (layer contents, names,
 * metadata, index nodes) comes from here so that it is counted, reported
 * and kept in a few large chunks instead of many small malloc blocks.
 *
 * A pool is a set of size classes ("sub-pools"), each with one fixed block
 * size. An allocation goes to the smallest class whose block size holds it
 * (best fit). A class owns chunks of memory obtained from the system, each
 * aligned to its own size so that the chunk of a block is found by masking
 * the block's address; a bitmap in the chunk tracks which blocks are free.
 * Requests larger than the largest class are "large": they get memory of
 * their own straight from the system and are counted apart.
 *
 * Thread safety: none. The store serializes every call on a pool under its
 * writer mutex (including frees that run after a grace period), which keeps
 * the hot path free of atomics. strata__pool_reserved() and
 * strata__pool_in_use() alone may be read from any thread at any time. */
#ifndef STRATA_POOL_H
#define STRATA_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strata__pool strata__pool;

#define STRATA__POOL_MAX_CLASSES 16

typedef struct strata__pool_config {
  /* Block sizes of the classes, ascending powers of two, each >= 16.
   * count == 0 selects the default: 64, 128, ..., 65536 (11 classes). */
  uint32_t class_sizes[STRATA__POOL_MAX_CLASSES];
  unsigned class_count;
  /* Bytes per chunk: a power of two; 0 = the default, 1 MiB. A class whose
   * blocks are large uses chunks of at least 16 blocks. */
  uint64_t chunk_size;
} strata__pool_config;

/* Figures of one class (or, with block_size == 0, of large allocations). */
typedef struct strata__pool_class_stats {
  uint32_t block_size;   /* 0 for the large-allocation row */
  uint64_t chunks;       /* chunks held (large: allocations held) */
  uint64_t blocks_total; /* blocks in those chunks */
  uint64_t blocks_used;
  uint64_t bytes_reserved;  /* memory taken from the system */
  uint64_t bytes_requested; /* sum of the sizes callers asked for */
  double utilization;       /* bytes_requested / bytes_reserved; 0 if none */
  double fragmentation;     /* free blocks stranded in partly used chunks,
                               as a share of all free blocks; 0 if none */
  uint64_t allocs, frees, failures;
} strata__pool_class_stats;

/* Creates a pool. cfg may be NULL for the defaults. Returns 0, or
 * STRATA_E_INVAL (bad class sizes or chunk size), STRATA_E_NOMEM. */
int strata__pool_create(const strata__pool_config *cfg, strata__pool **out);

/* Frees every chunk and large allocation, whether or not its blocks were
 * freed. Accepts NULL. */
void strata__pool_destroy(strata__pool *p);

/* Returns a block of at least `size` bytes (size 0 is treated as 1),
 * aligned to min(block size, 64) bytes for class blocks and to 64 bytes for
 * large ones, or NULL when the system refuses memory (counted as a
 * failure; no error detail is recorded: the caller knows the context). */
void *strata__pool_alloc(strata__pool *p, size_t size);

/* What strata__pool_in_use() grows by when strata__pool_alloc(p, size)
 * succeeds: the block size of its class, or a large allocation with its
 * header. Reads only the pool's fixed configuration. */
uint64_t strata__pool_charge(const strata__pool *p, size_t size);

/* Returns a block to the pool. `size` must be the size passed to the
 * strata__pool_alloc() that returned it. Accepts NULL. Chunks that become
 * entirely free are returned to the system, except one spare per class. */
void strata__pool_free(strata__pool *p, void *ptr, size_t size);

/* Bytes currently taken from the system (chunks plus large allocations).
 * Safe to call from any thread without the caller's lock. */
uint64_t strata__pool_reserved(const strata__pool *p);

/* Bytes handed out and not yet freed: whole blocks (a 100-byte request
 * holds a 128-byte block) plus large allocations with their header. At
 * most strata__pool_reserved(); the difference is free blocks in held
 * chunks and the spare chunks. Safe to call from any thread without the
 * caller's lock. */
uint64_t strata__pool_in_use(const strata__pool *p);

/* Fills up to `max` rows (one per class, then one row for large
 * allocations) and returns the number of rows filled. */
size_t strata__pool_stats(const strata__pool *p, strata__pool_class_stats *rows,
                          size_t max);

#endif /* STRATA_POOL_H */
