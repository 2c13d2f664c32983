/* The heap pool allocator (contract in pool.h).
 *
 * Layout. A class owns chunks of `chunk` bytes, each aligned to its own
 * size, so that strata__pool_free() finds the chunk of a block by masking
 * the block's address: no per-block header, no lookup table. The chunk
 * starts with a header (pool_chunk): links, a free count, a search hint and
 * a bitmap with one bit per block (set: in use). Blocks follow the header,
 * the first one rounded up to min(block size, 64) bytes so that every
 * block is aligned to that; the chunk's own alignment carries over.
 *
 * Chunk size. The configured size (1 MiB by default), raised to 16 blocks
 * for large block sizes: the header then costs at most one block in 16
 * (a 64 KiB class gets 1 MiB chunks of 15 blocks). 1 MiB is large enough
 * that the header of the 64-byte class (a 2 KiB bitmap) is 0.2% of it, and
 * small enough that one spare chunk per class keeps at most 11 MiB idle.
 *
 * Finding a free block. Each chunk keeps `hint`, a bitmap word below which
 * no block is free: an allocation scans from there for a word that is not
 * all ones and takes its lowest clear bit (__builtin_ctzll of the inverted
 * word); a free lowers the hint to its own word. Blocks are therefore
 * handed out lowest address first, which keeps the live blocks of a chunk
 * together and the rest of it untouched, and a free followed by an
 * allocation (the common pattern) finds its word at once.
 *
 * Which chunk. Each class keeps a list of its chunks that have a free
 * block; allocations come from the head. A full chunk leaves the list; when
 * a block of it is freed it goes back at the head, so the next allocations
 * fill it again (its lines are in cache) while chunks further down drain.
 * A chunk whose last block is freed leaves the list: it becomes the class's
 * spare if the class has none, else it goes back to the system. The spare
 * is taken before new memory is asked for, so a class oscillating around a
 * chunk boundary does not call the system each time.
 *
 * Why fixed power-of-two classes and not a buddy system. A binary buddy
 * allocator rounds to the same powers of two, so its internal fragmentation
 * is the same; what it adds is splitting and merging across sizes. That
 * was measured with a buddy prototype (64-byte units in 1 MiB arenas, one
 * free list per order, a side table of free-block orders, one spare arena)
 * on the pattern of strata-bench's pool scenario: 4096 live blocks with
 * sizes spread evenly over the 11 classes, each step freeing a random one
 * and allocating another, pinned to one CPU of a 2-vCPU Zen 5 VM, gcc 12
 * -O2, median ns per alloc+free pair and mean bytes reserved:
 *
 *                                  this pool     buddy
 *   pair, caller writes 8 bytes    28 ns         21 ns
 *   pair, caller writes nothing    23 ns         18.5 ns
 *   p99, caller writes nothing     30 ns         380 ns
 *   reserved for 36.5 MB           62.8 MB       56.0 MB
 *   reserved for 292 MB (32768)    427 MB        416 MB
 *
 * The buddy system was a little faster in the median: it hands back the
 * block whose first line its free just wrote (a free-list link), so the
 * caller's first write hits the cache. It reserved less while the working
 * set was small because all sizes share its arenas, where this pool holds
 * at least one partly used chunk per class (at most 11 MiB); at 8 times
 * the working set that was 2.5%. We kept fixed classes for what the buddy
 * system cannot give: (1) a free does bounded work and touches only the
 * chunk header, where the buddy system's free writes list links into the
 * freed block and its buddies and merges (the p99 above), (2) the allocator's
 * state lives out of band in the chunk headers, so a stray write into a freed
 * block corrupts no free list, and a double or mismatched free is detected
 * from the bitmap and ignored, (3) the per-class figures of
 * strata__pool_stats() fall out of the structure. The store frees a whole
 * proto-region's blocks at a time, after a grace period, which empties
 * chunks outright; they go back to the system, which is what merging would
 * otherwise buy. Offsetting each chunk header by a per-chunk cache colour
 * (headers at chunk-aligned addresses share cache sets) measured 1.5 ns
 * faster and was left out as not worth a per-chunk layout.
 *
 * Memory comes from posix_memalign() rather than mmap(): a chunk given
 * back and asked for again can be served by glibc from memory it still
 * holds, without a system call, and sanitizers and leak checkers see every
 * chunk. With
 * AddressSanitizer, free blocks are poisoned and a live block is unpoisoned
 * only up to the size that was asked for, so use after free and overflows
 * past the request are caught inside the pool too.
 *
 * Thread safety: none, as pool.h says, except `reserved` and `in_use`:
 * only the pool's owner writes them (relaxed load then relaxed store, no
 * read-modify-write needed with one writer) and any thread may read them.
 * They sit on their own cache line so that readers do not pull the
 * allocator's hot lines.
 *
 * Two figures, because they answer two questions. `reserved` is what the
 * pool took from the system: chunks are 1 MiB, so the first allocation of
 * each size class reserves a chunk whatever its size, and one emptied
 * chunk per class is kept as a spare; a store's first 100-byte put
 * reserves about 2 MiB and keeps it for good. `in_use` is what the pool
 * has handed out and not had back, in whole blocks (a 100-byte request
 * holds a 128-byte block); it follows what callers hold, rises with every
 * allocation and falls with every free. The store's memory thresholds
 * count `in_use` (store_memory.c says why). */
#include <inttypes.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/bits.h"
#include "common/common.h"
#include "common/pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif
#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define POOL_DEFAULT_CHUNK (UINT64_C(1) << 20)
/* A chunk smaller than a page would be mostly header for small blocks. */
#define POOL_MIN_CHUNK (UINT64_C(1) << 12)
/* Bounds the bitmap (16-byte blocks: 8 MiB of a 1 GiB chunk) and keeps
 * block counts within 32 bits. */
#define POOL_MAX_CHUNK (UINT64_C(1) << 30)
#define POOL_MIN_BLOCK 16u
/* A chunk holds at least this many blocks' worth of bytes. */
#define POOL_CHUNK_BLOCKS 16u
/* Large allocations start this far into their memory, after their header;
 * 64 keeps them 64-byte aligned. */
#define POOL_LARGE_HDR 64u
#define POOL_LARGE_MAGIC UINT64_C(0x4c47524c4f4f5053) /* "SPOOLRGL" */
/* class_of[] value for sizes above the largest class. */
#define POOL_NO_CLASS 0xFFu
/* The rare paths stay out of line and are reached by tail calls, so that
 * strata__pool_alloc() and strata__pool_free() save no registers: with
 * them inlined gcc saved six registers on every call (measured: 10 ns per
 * alloc+free pair of cache-hot blocks against 8 ns). */
#define POOL_SLOW __attribute__((noinline, cold))

typedef struct pool_class pool_class;

typedef struct pool_chunk {
  struct pool_chunk *next, *prev;         /* chunks with a free block */
  struct pool_chunk *all_next, *all_prev; /* every chunk held */
  const pool_class *cls;                  /* checked by free */
  uint32_t free_count;
  uint32_t hint;   /* no free block in used[0 .. hint - 1] */
  uint64_t used[]; /* set: in use; bits past the last block stay set */
} pool_chunk;

struct pool_class {
  /* Hot: read by every allocation and free of the class. */
  pool_chunk *avail; /* chunks with a free block, allocated from the head */
  uint64_t chunk_size;
  uint32_t block_size;
  uint32_t shift;                          /* log2(block_size) */
  uint32_t first;                          /* offset of block 0 in a chunk */
  uint32_t blocks;                         /* blocks per chunk */
  uint64_t bytes_requested, allocs, frees; /* in use: allocs - frees */
  /* Cold: chunk changes and stats. */
  uint32_t words;    /* bitmap words per chunk */
  pool_chunk *spare; /* an entirely free chunk kept back, or NULL */
  pool_chunk *all;   /* every chunk held, the spare included */
  uint64_t chunks, failures;
};

typedef struct pool_large {
  struct pool_large *next, *prev;
  size_t size; /* as requested */
  uint64_t magic;
} pool_large;
_Static_assert(sizeof(pool_large) <= POOL_LARGE_HDR, "large header fits");

struct strata__pool {
  /* Class number for a size s, indexed by ceil(log2(s)) (0 for s == 1). */
  uint8_t class_of[65];
  unsigned count;
  pool_class cls[STRATA__POOL_MAX_CLASSES];
  pool_large *large;
  uint64_t large_count, large_reserved, large_requested;
  uint64_t large_allocs, large_frees, large_failures;
  alignas(64) _Atomic uint64_t reserved;
  _Atomic uint64_t in_use; /* blocks handed out, in bytes */
};

static void reserved_add(strata__pool *p, uint64_t n) {
  uint64_t v = atomic_load_explicit(&p->reserved, memory_order_relaxed);
  atomic_store_explicit(&p->reserved, v + n, memory_order_relaxed);
}

static void reserved_sub(strata__pool *p, uint64_t n) {
  uint64_t v = atomic_load_explicit(&p->reserved, memory_order_relaxed);
  atomic_store_explicit(&p->reserved, v - n, memory_order_relaxed);
}

/* `n` may wrap around (a subtraction): unsigned arithmetic is modular. */
static inline void in_use_add(strata__pool *p, uint64_t n) {
  uint64_t v = atomic_load_explicit(&p->in_use, memory_order_relaxed);
  atomic_store_explicit(&p->in_use, v + n, memory_order_relaxed);
}

/* ---- configuration ----------------------------------------------------- */

static int check_config(const strata__pool_config *cfg) {
  STRATA__FAIL_IF(cfg->class_count > STRATA__POOL_MAX_CLASSES, STRATA_E_INVAL,
                  "pool: %u size classes, at most %u", cfg->class_count,
                  STRATA__POOL_MAX_CLASSES);
  uint64_t chunk = cfg->chunk_size;
  STRATA__FAIL_IF(chunk != 0 &&
                      (!strata__is_pow2(chunk) || chunk < POOL_MIN_CHUNK ||
                       chunk > POOL_MAX_CHUNK),
                  STRATA_E_INVAL,
                  "pool: chunk size %" PRIu64
                  " is not a power of two in [%" PRIu64 ", %" PRIu64 "]",
                  chunk, POOL_MIN_CHUNK, POOL_MAX_CHUNK);
  for (unsigned i = 0; i < cfg->class_count; i++) {
    uint32_t b = cfg->class_sizes[i];
    STRATA__FAIL_IF(!strata__is_pow2(b) || b < POOL_MIN_BLOCK ||
                        (uint64_t)b * POOL_CHUNK_BLOCKS > POOL_MAX_CHUNK,
                    STRATA_E_INVAL,
                    "pool: class %u has block size %u, not a power of two in "
                    "[%u, %" PRIu64 "]",
                    i, b, POOL_MIN_BLOCK, POOL_MAX_CHUNK / POOL_CHUNK_BLOCKS);
    STRATA__FAIL_IF(i > 0 && b <= cfg->class_sizes[i - 1], STRATA_E_INVAL,
                    "pool: class %u has block size %u, not above class %u's "
                    "%u (sizes must ascend)",
                    i, b, i - 1, cfg->class_sizes[i - 1]);
  }
  return 0;
}

static void setup_class(pool_class *k, uint32_t block, uint64_t chunk) {
  uint64_t min_chunk = (uint64_t)block * POOL_CHUNK_BLOCKS;
  k->chunk_size = chunk > min_chunk ? chunk : min_chunk;
  k->block_size = block;
  k->shift = (uint32_t)__builtin_ctz(block);
  /* The bitmap is sized for a chunk without header; the few bits that
   * the header's own room takes away stay set as padding. */
  uint64_t max_blocks = k->chunk_size / block;
  k->words = (uint32_t)((max_blocks + 63) / 64);
  uint64_t align = block < 64 ? block : 64;
  uint64_t hdr = sizeof(pool_chunk) + (uint64_t)k->words * sizeof(uint64_t);
  k->first = (uint32_t)((hdr + align - 1) / align * align);
  k->blocks = (uint32_t)((k->chunk_size - k->first) / block);
}

int strata__pool_create(const strata__pool_config *cfg, strata__pool **out) {
  STRATA__FAIL_IF(out == NULL, STRATA_E_INVAL, "pool: no output pointer");
  *out = NULL;
  strata__pool_config def = {.class_count = 0};
  if (cfg == NULL)
    cfg = &def;
  STRATA__TRY(check_config(cfg));
  void *mem = NULL;
  STRATA__FAIL_IF(
      posix_memalign(&mem, alignof(strata__pool), sizeof(strata__pool)) != 0,
      STRATA_E_NOMEM, "pool: no memory for the pool itself");
  strata__pool *p = mem;
  memset(p, 0, sizeof *p);
  atomic_init(&p->reserved, 0);
  atomic_init(&p->in_use, 0);
  uint64_t chunk = cfg->chunk_size ? cfg->chunk_size : POOL_DEFAULT_CHUNK;
  if (cfg->class_count == 0) {
    p->count = 11; /* 64 .. 65536 */
    for (unsigned i = 0; i < p->count; i++)
      setup_class(&p->cls[i], 64u << i, chunk);
  } else {
    p->count = cfg->class_count;
    for (unsigned i = 0; i < p->count; i++)
      setup_class(&p->cls[i], cfg->class_sizes[i], chunk);
  }
  /* Sizes up to 2^e go to the first class whose block holds 2^e bytes:
   * with power-of-two blocks that is the smallest class that holds any
   * size in (2^(e-1), 2^e]. */
  for (unsigned e = 0, c = 0; e <= 64; e++) {
    while (c < p->count && (e >= 32 || p->cls[c].block_size < (1u << e)))
      c++;
    p->class_of[e] = c < p->count ? (uint8_t)c : POOL_NO_CLASS;
  }
  *out = p;
  return 0;
}

/* ---- chunks ------------------------------------------------------------ */

static uint8_t *block_at(const pool_class *k, pool_chunk *ch, size_t i) {
  return (uint8_t *)ch + k->first + (i << k->shift);
}

static void avail_push(pool_class *k, pool_chunk *ch) {
  ch->prev = NULL;
  ch->next = k->avail;
  if (k->avail != NULL)
    k->avail->prev = ch;
  k->avail = ch;
}

static void avail_unlink(pool_class *k, pool_chunk *ch) {
  if (ch->prev != NULL)
    ch->prev->next = ch->next;
  else
    k->avail = ch->next;
  if (ch->next != NULL)
    ch->next->prev = ch->prev;
}

static pool_chunk *chunk_new(strata__pool *p, pool_class *k) {
  void *mem = NULL;
  if (posix_memalign(&mem, (size_t)k->chunk_size, (size_t)k->chunk_size) != 0)
    return NULL;
  pool_chunk *ch = mem;
  /* Only the header is written: the blocks' pages are left for the first
   * allocations to touch. */
  memset(ch, 0, sizeof *ch + (size_t)k->words * sizeof(uint64_t));
  ch->cls = k;
  ch->free_count = k->blocks;
  for (uint64_t i = k->blocks; i < (uint64_t)k->words * 64; i++)
    ch->used[i / 64] |= UINT64_C(1) << (i % 64);
  POOL_POISON(block_at(k, ch, 0), (size_t)k->blocks << k->shift);
  ch->all_prev = NULL;
  ch->all_next = k->all;
  if (k->all != NULL)
    k->all->all_prev = ch;
  k->all = ch;
  k->chunks++;
  reserved_add(p, k->chunk_size);
  return ch;
}

static void chunk_release(strata__pool *p, pool_class *k, pool_chunk *ch) {
  if (ch->all_prev != NULL)
    ch->all_prev->all_next = ch->all_next;
  else
    k->all = ch->all_next;
  if (ch->all_next != NULL)
    ch->all_next->all_prev = ch->all_prev;
  k->chunks--;
  reserved_sub(p, k->chunk_size);
  POOL_UNPOISON(ch, (size_t)k->chunk_size);
  free(ch);
}

/* The class has no chunk with a free block: the spare, or a new chunk. */
POOL_SLOW static pool_chunk *class_grow(strata__pool *p, pool_class *k) {
  pool_chunk *ch = k->spare;
  if (ch != NULL)
    k->spare = NULL;
  else if ((ch = chunk_new(p, k)) == NULL)
    return NULL;
  avail_push(k, ch);
  return ch;
}

/* The last block of `ch` was just freed. */
POOL_SLOW static void chunk_emptied(strata__pool *p, pool_class *k,
                                    pool_chunk *ch) {
  avail_unlink(k, ch);
  if (k->spare == NULL)
    k->spare = ch;
  else
    chunk_release(p, k, ch);
}

/* ---- large allocations ------------------------------------------------- */

POOL_SLOW static void *large_alloc(strata__pool *p, size_t size) {
  void *mem = NULL;
  if (size > SIZE_MAX - POOL_LARGE_HDR ||
      posix_memalign(&mem, 64, POOL_LARGE_HDR + size) != 0) {
    p->large_failures++;
    return NULL;
  }
  pool_large *h = mem;
  *h = (pool_large){.next = p->large, .size = size, .magic = POOL_LARGE_MAGIC};
  if (p->large != NULL)
    p->large->prev = h;
  p->large = h;
  p->large_count++;
  p->large_allocs++;
  p->large_requested += size;
  p->large_reserved += POOL_LARGE_HDR + size;
  reserved_add(p, POOL_LARGE_HDR + size);
  in_use_add(p, POOL_LARGE_HDR + size);
  return (uint8_t *)mem + POOL_LARGE_HDR;
}

POOL_SLOW static void large_free(strata__pool *p, void *ptr, size_t size) {
  pool_large *h = (pool_large *)((uint8_t *)ptr - POOL_LARGE_HDR);
  /* A pointer that is not one of ours, or a size that is not the one it
   * was allocated with, is ignored rather than corrupting the list. */
  if (h->magic != POOL_LARGE_MAGIC || h->size != size)
    return;
  h->magic = 0;
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    p->large = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  p->large_count--;
  p->large_frees++;
  p->large_requested -= size;
  p->large_reserved -= POOL_LARGE_HDR + size;
  reserved_sub(p, POOL_LARGE_HDR + size);
  in_use_add(p, 0 - (POOL_LARGE_HDR + (uint64_t)size));
  free(h);
}

/* ---- the hot path ------------------------------------------------------ */

/* Takes a block of `s` bytes from `ch`, a chunk on k's avail list. */
static inline void *take_block(strata__pool *p, pool_class *k, pool_chunk *ch,
                               size_t s) {
  /* The chunk has a free block at or after its hint. */
  uint32_t w = ch->hint;
  while (ch->used[w] == UINT64_MAX)
    w++;
  uint64_t bits = ch->used[w];
  unsigned b = (unsigned)__builtin_ctzll(~bits);
  ch->used[w] = bits | (bits + 1); /* sets the lowest clear bit, b */
  ch->hint = w;
  if (--ch->free_count == 0) {
    /* Full: it is the head (allocations come from there). */
    k->avail = ch->next;
    if (ch->next != NULL)
      ch->next->prev = NULL;
  }
  k->bytes_requested += s;
  k->allocs++;
  in_use_add(p, k->block_size);
  uint8_t *ptr = block_at(k, ch, (size_t)w * 64 + b);
  POOL_UNPOISON(ptr, s);
  return ptr;
}

POOL_SLOW static void *alloc_slow(strata__pool *p, pool_class *k, size_t s) {
  pool_chunk *ch = class_grow(p, k);
  if (ch == NULL) {
    k->failures++;
    return NULL;
  }
  return take_block(p, k, ch, s);
}

/* The class of a request of `s` bytes (> 0), or POOL_NO_CLASS. */
static inline unsigned class_for(const strata__pool *p, size_t s) {
  return p->class_of[strata__ceil_log2(s)];
}

/* The rare paths are tail calls, so that this stays a leaf function. */
void *strata__pool_alloc(strata__pool *p, size_t size) {
  if (__builtin_expect(p == NULL, 0))
    return NULL;
  size_t s = size ? size : 1;
  unsigned c = class_for(p, s);
  if (__builtin_expect(c == POOL_NO_CLASS, 0))
    return large_alloc(p, s);
  pool_class *k = &p->cls[c];
  pool_chunk *ch = k->avail;
  if (__builtin_expect(ch == NULL, 0))
    return alloc_slow(p, k, s);
  return take_block(p, k, ch, s);
}

uint64_t strata__pool_charge(const strata__pool *p, size_t size) {
  size_t s = size ? size : 1;
  unsigned c = class_for(p, s);
  return c == POOL_NO_CLASS ? POOL_LARGE_HDR + (uint64_t)s
                            : p->cls[c].block_size;
}

void strata__pool_free(strata__pool *p, void *ptr, size_t size) {
  if (ptr == NULL || p == NULL)
    return;
  size_t s = size ? size : 1;
  unsigned c = class_for(p, s);
  if (__builtin_expect(c == POOL_NO_CLASS, 0)) {
    large_free(p, ptr, s);
    return;
  }
  pool_class *k = &p->cls[c];
  pool_chunk *ch =
      (pool_chunk *)((uintptr_t)ptr & ~(uintptr_t)(k->chunk_size - 1));
  /* Below the first block, `off` wraps around and fails the range check. */
  uintptr_t off = (uintptr_t)ptr - (uintptr_t)ch - k->first;
  size_t i = off >> k->shift;
  /* Cheap checks that `ptr` is the start of a block of this class: a wrong
   * size or a pointer freed twice is ignored instead of corrupting the
   * bitmap. (A pointer that is not from this pool at all is undefined.) */
  if (__builtin_expect(ch->cls != k || (off & (k->block_size - 1)) != 0 ||
                           i >= k->blocks,
                       0))
    return;
  uint32_t w = (uint32_t)(i / 64);
  uint64_t bit = UINT64_C(1) << (i % 64);
  if (__builtin_expect((ch->used[w] & bit) == 0, 0))
    return;
  POOL_POISON(ptr, k->block_size);
  ch->used[w] &= ~bit;
  if (w < ch->hint)
    ch->hint = w;
  k->bytes_requested -= s;
  k->frees++;
  in_use_add(p, 0 - (uint64_t)k->block_size);
  if (ch->free_count++ == 0)
    avail_push(k, ch); /* it was full */
  if (__builtin_expect(ch->free_count == k->blocks, 0))
    chunk_emptied(p, k, ch);
}

/* ---- the rest ---------------------------------------------------------- */

void strata__pool_destroy(strata__pool *p) {
  if (p == NULL)
    return;
  for (unsigned c = 0; c < p->count; c++) {
    pool_class *k = &p->cls[c];
    for (pool_chunk *ch = k->all, *next; ch != NULL; ch = next) {
      next = ch->all_next;
      POOL_UNPOISON(ch, (size_t)k->chunk_size);
      free(ch);
    }
  }
  for (pool_large *h = p->large, *next; h != NULL; h = next) {
    next = h->next;
    free(h);
  }
  free(p);
}

uint64_t strata__pool_reserved(const strata__pool *p) {
  if (p == NULL)
    return 0;
  /* The generic atomic_load() takes a pointer to non-const in C17. */
  return atomic_load_explicit((_Atomic uint64_t *)&p->reserved,
                              memory_order_relaxed);
}

uint64_t strata__pool_in_use(const strata__pool *p) {
  if (p == NULL)
    return 0;
  return atomic_load_explicit((_Atomic uint64_t *)&p->in_use,
                              memory_order_relaxed);
}

static double ratio(uint64_t num, uint64_t den) {
  return den ? (double)num / (double)den : 0.0;
}

size_t strata__pool_stats(const strata__pool *p, strata__pool_class_stats *rows,
                          size_t max) {
  if (p == NULL || rows == NULL)
    return 0;
  size_t n = 0;
  for (unsigned c = 0; c < p->count && n < max; c++, n++) {
    const pool_class *k = &p->cls[c];
    uint64_t total = k->chunks * k->blocks;
    uint64_t used = k->allocs - k->frees;
    uint64_t free_blocks = total - used;
    /* Every held chunk but the spare has a block in use. */
    uint64_t stranded = free_blocks - (k->spare != NULL ? k->blocks : 0);
    rows[n] = (strata__pool_class_stats){
        .block_size = k->block_size,
        .chunks = k->chunks,
        .blocks_total = total,
        .blocks_used = used,
        .bytes_reserved = k->chunks * k->chunk_size,
        .bytes_requested = k->bytes_requested,
        .utilization = ratio(k->bytes_requested, k->chunks * k->chunk_size),
        .fragmentation = ratio(stranded, free_blocks),
        .allocs = k->allocs,
        .frees = k->frees,
        .failures = k->failures};
  }
  if (n < max) {
    rows[n++] = (strata__pool_class_stats){
        .block_size = 0,
        .chunks = p->large_count,
        .blocks_total = p->large_count,
        .blocks_used = p->large_count,
        .bytes_reserved = p->large_reserved,
        .bytes_requested = p->large_requested,
        .utilization = ratio(p->large_requested, p->large_reserved),
        .fragmentation = 0.0,
        .allocs = p->large_allocs,
        .frees = p->large_frees,
        .failures = p->large_failures};
  }
  return n;
}
