/* Block allocator of the staging pool: the pinned slabs are cut into
 * fixed-size blocks (a power of two, default 64 KiB), numbered globally
 * across slabs (slab 0's blocks first). A bitmap per slab tracks which
 * blocks are free; runs of several contiguous blocks come from a binary
 * buddy scheme per slab: a request for n blocks takes the smallest free
 * buddy of order >= ceil(log2 n), splits it down, and gives the unused
 * tail back at once, so runs of any length are contiguous and waste
 * nothing; a freed run is split into aligned power-of-two pieces that
 * coalesce with their buddies. Runs never cross slabs. When no buddy is
 * big enough, a summary tree over each slab's bitmap (staging_runs.h)
 * finds the first n contiguous free blocks, so an allocation fails only
 * when no slab has n contiguous free blocks, and a slab whose block count
 * is not a power of two can still give a run as long as the whole slab.
 *
 * Blocks start at multiples of the block size (4 KiB at least) from a slab
 * base aligned to 4096 bytes, so every block is 4096-aligned: more than the
 * 128 bytes DMA engines want. Metadata lives outside the slabs (pinned
 * memory is for data only): the allocator never reads or writes a slab.
 *
 * Thread safety: once every slab is added, every function may be called
 * from any thread; an internal mutex serializes alloc, free and stats
 * (alloc and free are O(log blocks) list and tree operations plus n / 64
 * bitmap words). */
#ifndef STRATA_STAGING_ALLOC_H
#define STRATA_STAGING_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strata__balloc strata__balloc;

/* No block: *first after a failed alloc, slab_of() past the last block. */
#define STRATA__BLOCK_NONE UINT32_MAX

typedef struct strata__balloc_stats {
  uint64_t block_size;
  uint64_t blocks; /* total, all slabs */
  uint64_t used;   /* blocks allocated */
  uint64_t free;   /* blocks free */
  /* The longest stretch of contiguous free blocks within one slab: an
   * alloc of up to this many blocks succeeds (if nothing changes first),
   * one of more fails. Computed from the bitmaps (one bit per block) at
   * each stats_get. */
  uint64_t largest_run;
  /* 1000 * (1 - largest_run / free), rounded down (0 when nothing is free
   * or all free blocks form one run). */
  uint32_t fragmentation_permille;
  uint64_t allocs, frees; /* successful calls */
  uint64_t failures;      /* allocs that found no run */
} strata__balloc_stats;

/* Creates an allocator with no slab. block_size: a power of two,
 * 4 KiB .. 256 MiB. Errors: STRATA_E_INVAL, STRATA_E_NOMEM, -errno (the
 * mutex). */
int strata__balloc_new(uint64_t block_size, strata__balloc **out);
/* Adds a slab of floor(bytes / block_size) blocks starting at `base`
 * (aligned to at least 4096 bytes), all free, numbered after the blocks of
 * the slabs added before. Returns the slab's number (0, 1, ...). The
 * allocator never reads or writes slab memory. Add every slab before the
 * allocator is shared: ptr, slab_of and blocks read the slab table without
 * the lock. Errors: STRATA_E_INVAL (alignment, no whole block, more than
 * 2^31 blocks in all), STRATA_E_NOMEM (the allocator is left as it was). */
int strata__balloc_add_slab(strata__balloc *a, void *base, uint64_t bytes);
/* Frees the allocator's metadata (not the slabs). NULL ok. */
void strata__balloc_free_all(strata__balloc *a);

/* Allocates a run of n >= 1 contiguous blocks, all in one slab; *first =
 * its first block (STRATA__BLOCK_NONE on error). Errors: STRATA_E_LIMIT
 * when no slab has a free run of n blocks (counted in failures; the detail
 * gives the free count and the largest run), STRATA_E_INVAL for n == 0 or
 * n larger than every slab (it could never succeed). */
int strata__balloc_alloc(strata__balloc *a, uint32_t n, uint32_t *first);
/* Like strata__balloc_alloc, for a caller that has another way to go on:
 * takes the run only if at least `keep` blocks stay free besides it, and
 * a refusal is neither an error nor counted in failures. Returns whether
 * it took the run. */
bool strata__balloc_try(strata__balloc *a, uint32_t n, uint32_t keep,
                        uint32_t *first);
/* Frees blocks [first, first + n) (a run, or any part of one: the blocks
 * need not be freed with the call that allocated them, so a run may be
 * freed block by block). n == 0 does nothing. Freeing a block that is not
 * allocated, a range past the last block or one that crosses from a slab
 * into the next aborts with a message on stderr: it is a bug in the
 * caller, and nothing has changed when it does. */
void strata__balloc_free(strata__balloc *a, uint32_t first, uint32_t n);

/* Address of a block, NULL past the last block (no lock: slabs never
 * move). */
void *strata__balloc_ptr(const strata__balloc *a, uint32_t block);
uint64_t strata__balloc_block_size(const strata__balloc *a);
uint32_t strata__balloc_blocks(const strata__balloc *a);
/* Slab number of a block (STRATA__BLOCK_NONE past the last block). Blocks
 * b and b + 1 are adjacent in memory when they have the same slab number. */
uint32_t strata__balloc_slab_of(const strata__balloc *a, uint32_t block);
/* A consistent snapshot of the counters (taken under the lock; the
 * largest_run scan reads blocks / 64 bitmap words). */
void strata__balloc_stats_get(strata__balloc *a, strata__balloc_stats *out);

#endif /* STRATA_STAGING_ALLOC_H */
