/* The staging pool's block allocator: single blocks, runs of every length,
 * the tail of a split buddy given back, coalescing after frees in any order
 * and block by block, slabs whose size is not a power of two, several
 * slabs, exhaustion, the fragmentation figure, a randomized comparison
 * with a plain bitmap model, bad arguments, bad frees (in a child
 * process, since they abort) and four threads sharing one allocator.
 *
 * Slabs are ordinary heap memory: the allocator never touches them, and
 * the tests write tags into the blocks they own to show that runs do not
 * overlap and that block addresses are right. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "test_util.h"

#include "common/common.h" /* strata__clear_error */
#include "staging/staging_alloc.h"
#include "staging/staging_runs.h"

/* The smallest block size keeps the slabs of these tests small. */
#define BS UINT64_C(4096)
#define MAX_SLABS 8

typedef struct fixture {
  strata__balloc *a;
  void *mem[MAX_SLABS];
  uint32_t first[MAX_SLABS]; /* global number of each slab's block 0 */
  uint32_t blocks[MAX_SLABS];
  uint32_t slabs;
} fixture;

/* An allocator of 4 KiB blocks with one slab per entry of `sizes` (block
 * counts), each given a little more memory than its blocks use, which
 * must be ignored. */
static void fx_init(fixture *f, const uint32_t *sizes, uint32_t count) {
  memset(f, 0, sizeof *f);
  assert_true(count <= MAX_SLABS);
  assert_strata_ok(strata__balloc_new(BS, &f->a));
  uint32_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    size_t bytes = sizes[i] * BS;
    f->mem[i] = aligned_alloc(4096, bytes + BS);
    assert_non_null(f->mem[i]);
    memset(f->mem[i], 0, bytes + BS);
    int rc = strata__balloc_add_slab(f->a, f->mem[i], bytes + BS - 1);
    assert_int_equal(rc, (int)i);
    f->first[i] = total;
    f->blocks[i] = sizes[i];
    total += sizes[i];
  }
  f->slabs = count;
  assert_int_equal(strata__balloc_blocks(f->a), total);
}

static void fx_fini(fixture *f) {
  strata__balloc_free_all(f->a);
  for (uint32_t i = 0; i < f->slabs; i++)
    free(f->mem[i]);
}

static strata__balloc_stats stats(strata__balloc *a) {
  strata__balloc_stats s;
  strata__balloc_stats_get(a, &s);
  assert_int_equal(s.used + s.free, s.blocks);
  assert_true(s.largest_run <= s.free);
  return s;
}

static uint32_t alloc_ok(strata__balloc *a, uint32_t n) {
  uint32_t first = 0;
  assert_strata_ok(strata__balloc_alloc(a, n, &first));
  assert_true(first < strata__balloc_blocks(a));
  assert_true(n <= strata__balloc_blocks(a) - first);
  return first;
}

/* A run lies in one slab, and its blocks follow each other in memory. */
static void check_run(const fixture *f, uint32_t first, uint32_t n) {
  uint32_t slab = strata__balloc_slab_of(f->a, first);
  assert_true(slab < f->slabs);
  assert_int_equal(strata__balloc_slab_of(f->a, first + n - 1), slab);
  uint8_t *base = strata__balloc_ptr(f->a, first);
  assert_ptr_equal(base, (uint8_t *)f->mem[slab] +
                             (uint64_t)(first - f->first[slab]) * BS);
  for (uint32_t i = 1; i < n; i++)
    assert_ptr_equal(strata__balloc_ptr(f->a, first + i), base + i * BS);
}

/* Writes `tag` into the first and last word of each block of a run. */
static void tag_run(const strata__balloc *a, uint32_t first, uint32_t n,
                    uint64_t tag) {
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *p = strata__balloc_ptr(a, first + i);
    memcpy(p, &tag, sizeof tag);
    memcpy(p + BS - sizeof tag, &tag, sizeof tag);
  }
}

static void check_tag(const strata__balloc *a, uint32_t first, uint32_t n,
                      uint64_t tag) {
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *p = strata__balloc_ptr(a, first + i);
    uint64_t head, tail;
    memcpy(&head, p, sizeof head);
    memcpy(&tail, p + BS - sizeof tail, sizeof tail);
    assert_int_equal(head, tag);
    assert_int_equal(tail, tag);
  }
}

/* xorshift64*: fixed seeds keep failures reproducible. */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

static uint32_t rnd_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(rnd(s) % n);
}

static void shuffle(uint32_t *v, uint32_t n, uint64_t *seed) {
  for (uint32_t i = n; i > 1; i--) {
    uint32_t j = rnd_below(seed, i);
    uint32_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

/* The order in which single blocks come out of an allocator. In a fully
 * coalesced allocator it depends only on the slab sizes (each slab holds
 * the maximal aligned pieces of its blocks), so comparing it with a fresh
 * allocator's shows that every freed piece merged back. Leaves the
 * allocator full. */
static void single_order(strata__balloc *a, uint32_t *out) {
  uint32_t blocks = strata__balloc_blocks(a);
  for (uint32_t i = 0; i < blocks; i++)
    out[i] = alloc_ok(a, 1);
  uint32_t extra;
  assert_strata_err(strata__balloc_alloc(a, 1, &extra), STRATA_E_LIMIT);
}

static void check_coalesced(const fixture *f) {
  uint32_t blocks = strata__balloc_blocks(f->a);
  strata__balloc_stats s = stats(f->a);
  assert_int_equal(s.used, 0);
  assert_int_equal(s.free, blocks);
  uint32_t largest = 0;
  for (uint32_t i = 0; i < f->slabs; i++)
    if (f->blocks[i] > largest)
      largest = f->blocks[i];
  assert_int_equal(s.largest_run, largest);
  assert_int_equal(s.fragmentation_permille,
                   1000 * (blocks - largest) / blocks);

  fixture fresh;
  fx_init(&fresh, f->blocks, f->slabs);
  uint32_t *want = malloc(blocks * sizeof *want);
  uint32_t *got = malloc(blocks * sizeof *got);
  assert_non_null(want);
  assert_non_null(got);
  single_order(fresh.a, want);
  single_order(f->a, got);
  assert_memory_equal(want, got, blocks * sizeof *got);
  for (uint32_t i = 0; i < blocks; i++)
    strata__balloc_free(f->a, got[i], 1);
  free(want);
  free(got);
  fx_fini(&fresh);
}

/* ---- tests ------------------------------------------------------------- */

static void test_single_block(void **state) {
  (void)state;
  fixture f;
  uint32_t size = 16;
  fx_init(&f, &size, 1);
  assert_int_equal(strata__balloc_block_size(f.a), BS);
  strata__balloc_stats s = stats(f.a);
  assert_int_equal(s.block_size, BS);
  assert_int_equal(s.blocks, 16);
  assert_int_equal(s.free, 16);
  assert_int_equal(s.largest_run, 16);
  assert_int_equal(s.fragmentation_permille, 0);

  uint32_t b = alloc_ok(f.a, 1);
  assert_int_equal(b, 0);
  check_run(&f, b, 1);
  assert_ptr_equal(strata__balloc_ptr(f.a, b), f.mem[0]);
  s = stats(f.a);
  assert_int_equal(s.used, 1);
  assert_int_equal(s.free, 15);
  assert_int_equal(s.largest_run, 15);
  assert_int_equal(s.allocs, 1);
  assert_int_equal(s.frees, 0);

  strata__balloc_free(f.a, b, 1);
  s = stats(f.a);
  assert_int_equal(s.used, 0);
  assert_int_equal(s.largest_run, 16);
  assert_int_equal(s.frees, 1);
  assert_int_equal(s.failures, 0);
  /* A free and an allocation of one block give the same block again. */
  assert_int_equal(alloc_ok(f.a, 1), b);
  strata__balloc_free(f.a, b, 1);
  strata__balloc_free(f.a, 0, 0); /* nothing */
  check_coalesced(&f);
  fx_fini(&f);
}

/* Every length fits an empty slab, taking exactly its blocks; when the run
 * starts the slab (always so in a slab of 2^k blocks), the rest of the
 * slab then fits as one run. */
static void test_every_length(void **state) {
  (void)state;
  const uint32_t sizes[] = {64, 100};
  for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
    fixture f;
    uint32_t size = sizes[c];
    fx_init(&f, &size, 1);
    for (uint32_t n = 1; n <= size; n++) {
      uint32_t a = alloc_ok(f.a, n);
      if ((size & (size - 1)) == 0)
        assert_int_equal(a, 0);
      check_run(&f, a, n);
      tag_run(f.a, a, n, 1000 + n);
      strata__balloc_stats s = stats(f.a);
      assert_int_equal(s.used, n);
      assert_int_equal(s.largest_run, a > size - a - n ? a : size - a - n);
      uint32_t b = 0;
      bool rest = a == 0 && n < size;
      if (rest) {
        b = alloc_ok(f.a, size - n);
        check_run(&f, b, size - n);
        assert_int_equal(b, n);
        tag_run(f.a, b, size - n, 2000 + n);
        s = stats(f.a);
        assert_int_equal(s.free, 0);
        assert_int_equal(s.largest_run, 0);
        assert_int_equal(s.fragmentation_permille, 0);
      }
      check_tag(f.a, a, n, 1000 + n);
      strata__balloc_free(f.a, a, n);
      if (rest) {
        check_tag(f.a, b, size - n, 2000 + n);
        strata__balloc_free(f.a, b, size - n);
      }
      assert_int_equal(stats(f.a).largest_run, size);
    }
    check_coalesced(&f);
    fx_fini(&f);
  }
}

/* A run of 5 splits an 8-block piece; blocks 5..7 come back at once as a
 * single block and an aligned pair. */
static void test_tail_given_back(void **state) {
  (void)state;
  fixture f;
  uint32_t size = 8;
  fx_init(&f, &size, 1);
  uint32_t a = alloc_ok(f.a, 5);
  assert_int_equal(a, 0);
  strata__balloc_stats s = stats(f.a);
  assert_int_equal(s.free, 3);
  assert_int_equal(s.largest_run, 3);
  uint32_t b = alloc_ok(f.a, 3);
  assert_int_equal(b, 5);
  uint32_t x;
  assert_strata_err(strata__balloc_alloc(f.a, 1, &x), STRATA_E_LIMIT);
  assert_int_equal(x, STRATA__BLOCK_NONE);
  strata__balloc_free(f.a, b, 3);
  /* The tail's pieces serve small requests straight from the lists. */
  assert_int_equal(alloc_ok(f.a, 1), 5);
  assert_int_equal(alloc_ok(f.a, 2), 6);
  strata__balloc_free(f.a, 5, 3);
  strata__balloc_free(f.a, a, 5);
  check_coalesced(&f);
  fx_fini(&f);
}

static void test_coalesce_random_order(void **state) {
  (void)state;
  uint64_t seed = 0x5eed0001;
  fixture f;
  uint32_t size = 256;
  fx_init(&f, &size, 1);
  for (int round = 0; round < 8; round++) {
    /* Runs of random lengths until the slab is full, then freed in a
     * random order. */
    uint32_t first[256], len[256], count = 0, used = 0;
    while (used < size) {
      uint32_t n = 1 + rnd_below(&seed, round < 4 ? 4 : 24);
      if (n > size - used)
        n = size - used;
      uint32_t b;
      int rc = strata__balloc_alloc(f.a, n, &b);
      if (rc == STRATA_E_LIMIT) {
        n = 1;
        b = alloc_ok(f.a, 1);
      } else {
        assert_int_equal(rc, 0);
      }
      check_run(&f, b, n);
      first[count] = b;
      len[count++] = n;
      used += n;
    }
    assert_int_equal(stats(f.a).free, 0);
    uint32_t order[256];
    for (uint32_t i = 0; i < count; i++)
      order[i] = i;
    shuffle(order, count, &seed);
    for (uint32_t i = 0; i < count; i++)
      strata__balloc_free(f.a, first[order[i]], len[order[i]]);
    strata__balloc_stats s = stats(f.a);
    assert_int_equal(s.largest_run, size);
    assert_int_equal(s.fragmentation_permille, 0);
    check_coalesced(&f);
  }
  fx_fini(&f);
}

/* A run's blocks may be freed one at a time, in any order, and a middle
 * part before its ends. */
static void test_free_block_by_block(void **state) {
  (void)state;
  uint64_t seed = 0x5eed0002;
  fixture f;
  uint32_t size = 32;
  fx_init(&f, &size, 1);
  uint32_t a = alloc_ok(f.a, 13);
  uint32_t b = alloc_ok(f.a, 19);
  assert_int_equal(a, 0);
  assert_int_equal(b, 13);
  uint32_t order[13];
  for (uint32_t i = 0; i < 13; i++)
    order[i] = i;
  shuffle(order, 13, &seed);
  for (uint32_t i = 0; i < 13; i++) {
    strata__balloc_free(f.a, a + order[i], 1);
    assert_int_equal(stats(f.a).free, i + 1);
  }
  assert_int_equal(stats(f.a).largest_run, 13);
  /* The middle of the other run first, then its two ends. */
  strata__balloc_free(f.a, b + 5, 9);
  strata__balloc_stats s = stats(f.a);
  assert_int_equal(s.free, 22);
  assert_int_equal(s.largest_run, 13);
  assert_int_equal(s.fragmentation_permille, 1000 * 9 / 22);
  strata__balloc_free(f.a, b + 14, 5);
  strata__balloc_free(f.a, b, 5);
  assert_int_equal(stats(f.a).frees, 16);
  check_coalesced(&f);
  fx_fini(&f);
}

/* Slabs of 6, 13 and 1 blocks: runs as long as the slab, although no
 * aligned piece is that long. */
static void test_odd_slab_sizes(void **state) {
  (void)state;
  const uint32_t sizes[] = {6, 13, 1, 3};
  for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
    fixture f;
    fx_init(&f, &sizes[c], 1);
    assert_int_equal(stats(f.a).largest_run, sizes[c]);
    for (uint32_t n = 1; n <= sizes[c]; n++) {
      uint32_t a = alloc_ok(f.a, n);
      check_run(&f, a, n);
      strata__balloc_free(f.a, a, n);
    }
    /* A run one block shorter than the slab, then the last block. */
    if (sizes[c] > 1) {
      uint32_t a = alloc_ok(f.a, sizes[c] - 1);
      assert_int_equal(a, 0);
      assert_int_equal(alloc_ok(f.a, 1), sizes[c] - 1);
      strata__balloc_free(f.a, sizes[c] - 1, 1);
      strata__balloc_free(f.a, a, sizes[c] - 1);
    }
    uint32_t x;
    assert_strata_err(strata__balloc_alloc(f.a, sizes[c] + 1, &x),
                      STRATA_E_INVAL);
    check_coalesced(&f);
    fx_fini(&f);
  }
}

static void test_several_slabs(void **state) {
  (void)state;
  uint64_t seed = 0x5eed0003;
  const uint32_t sizes[] = {8, 5, 16};
  fixture f;
  fx_init(&f, sizes, 3);
  assert_int_equal(strata__balloc_blocks(f.a), 29);
  assert_int_equal(strata__balloc_slab_of(f.a, 0), 0);
  assert_int_equal(strata__balloc_slab_of(f.a, 7), 0);
  assert_int_equal(strata__balloc_slab_of(f.a, 8), 1);
  assert_int_equal(strata__balloc_slab_of(f.a, 12), 1);
  assert_int_equal(strata__balloc_slab_of(f.a, 13), 2);
  assert_int_equal(strata__balloc_slab_of(f.a, 28), 2);
  assert_int_equal(strata__balloc_slab_of(f.a, 29), STRATA__BLOCK_NONE);
  assert_ptr_equal(strata__balloc_ptr(f.a, 8), f.mem[1]);
  assert_ptr_equal(strata__balloc_ptr(f.a, 13), f.mem[2]);
  assert_null(strata__balloc_ptr(f.a, 29));
  assert_null(strata__balloc_ptr(f.a, STRATA__BLOCK_NONE));
  assert_int_equal(stats(f.a).largest_run, 16);

  /* The smallest free piece that fits wins, whatever its slab: slab 1
   * holds [8, 12) and [12, 13), slab 0 one piece of 8, slab 2 one of 16. */
  assert_int_equal(alloc_ok(f.a, 1), 12);
  assert_int_equal(alloc_ok(f.a, 1), 8);
  assert_int_equal(alloc_ok(f.a, 16), 13);
  assert_int_equal(alloc_ok(f.a, 8), 0);
  uint32_t x;
  assert_strata_err(strata__balloc_alloc(f.a, 4, &x), STRATA_E_LIMIT);
  assert_strata_err(strata__balloc_alloc(f.a, 17, &x), STRATA_E_INVAL);
  assert_int_equal(alloc_ok(f.a, 3), 9);
  strata__balloc_free(f.a, 13, 16);
  strata__balloc_free(f.a, 0, 8);
  strata__balloc_free(f.a, 8, 5);
  /* With two equal pieces, the first slab's is taken. */
  const uint32_t twins[] = {16, 16};
  fixture g;
  fx_init(&g, twins, 2);
  assert_int_equal(alloc_ok(g.a, 1), 0);
  assert_int_equal(alloc_ok(g.a, 16), 16);
  assert_int_equal(alloc_ok(g.a, 15), 1);
  strata__balloc_free(g.a, 0, 16);
  strata__balloc_free(g.a, 16, 16);
  check_coalesced(&g);
  fx_fini(&g);
  check_coalesced(&f);

  /* Runs of random lengths never cross a slab, and each fills up. */
  for (int round = 0; round < 50; round++) {
    uint32_t first[29], len[29], count = 0;
    for (;;) {
      uint32_t n = 1 + rnd_below(&seed, 9);
      uint32_t b;
      int rc = strata__balloc_alloc(f.a, n, &b);
      if (rc == STRATA_E_LIMIT)
        rc = strata__balloc_alloc(f.a, n = 1, &b);
      if (rc == STRATA_E_LIMIT)
        break;
      assert_int_equal(rc, 0);
      check_run(&f, b, n);
      tag_run(f.a, b, n, count + 1);
      first[count] = b;
      len[count++] = n;
    }
    assert_int_equal(stats(f.a).free, 0);
    for (uint32_t i = 0; i < count; i++) {
      check_tag(f.a, first[i], len[i], i + 1);
      strata__balloc_free(f.a, first[i], len[i]);
    }
  }
  check_coalesced(&f);
  fx_fini(&f);
}

/* strata__balloc_try: takes a run only when `keep` blocks stay free
 * besides it; a refusal is no error and no counted failure. */
static void test_try(void **state) {
  (void)state;
  fixture f;
  uint32_t size = 16;
  fx_init(&f, &size, 1);
  uint32_t x = 0;
  assert_true(strata__balloc_try(f.a, 4, 12, &x)); /* 16 free: 4 + 12 */
  assert_int_equal(x, 0);
  strata__clear_error();
  assert_false(strata__balloc_try(f.a, 4, 9, &x)); /* 12 free: 4 + 9 > 12 */
  assert_int_equal(x, STRATA__BLOCK_NONE);
  assert_string_equal(strata_last_error_detail(), "");
  assert_true(strata__balloc_try(f.a, 4, 8, &x));
  assert_int_equal(x, 4);
  assert_true(strata__balloc_try(f.a, 8, 0, &x)); /* the last 8 */
  assert_int_equal(x, 8);
  /* Enough blocks free but no run: refused, not counted. */
  strata__balloc_free(f.a, 1, 1);
  strata__balloc_free(f.a, 5, 1);
  assert_false(strata__balloc_try(f.a, 2, 0, &x));
  assert_true(strata__balloc_try(f.a, 1, 1, &x)); /* one stays free */
  assert_true(x == 1 || x == 5);
  assert_false(strata__balloc_try(f.a, 1, 1, &x));  /* none would */
  assert_false(strata__balloc_try(f.a, 17, 0, &x)); /* longer than a slab */
  strata__balloc_stats st = stats(f.a);
  assert_int_equal(st.failures, 0);
  assert_int_equal(st.allocs, 4);
  assert_int_equal(st.used, 15);
  fx_fini(&f);
}

static void test_exhaustion(void **state) {
  (void)state;
  fixture f;
  uint32_t size = 16;
  fx_init(&f, &size, 1);
  for (uint32_t i = 0; i < 16; i++)
    assert_int_equal(alloc_ok(f.a, 1), i);
  uint32_t x = 0;
  assert_strata_err(strata__balloc_alloc(f.a, 1, &x), STRATA_E_LIMIT);
  assert_int_equal(x, STRATA__BLOCK_NONE);
  assert_string_equal(strata_last_error_detail(),
                      "staging pool: no run of 1 free blocks (0 free, "
                      "largest run 0)");
  strata__balloc_stats s = stats(f.a);
  assert_int_equal(s.failures, 1);
  assert_int_equal(s.allocs, 16);

  /* Enough blocks free, but not together. */
  strata__balloc_free(f.a, 3, 1);
  strata__balloc_free(f.a, 9, 1);
  assert_strata_err(strata__balloc_alloc(f.a, 2, &x), STRATA_E_LIMIT);
  assert_string_equal(strata_last_error_detail(),
                      "staging pool: no run of 2 free blocks (2 free, "
                      "largest run 1)");
  assert_int_equal(stats(f.a).failures, 2);
  strata__balloc_free(f.a, 10, 1);
  assert_int_equal(alloc_ok(f.a, 2), 9);
  assert_int_equal(alloc_ok(f.a, 1), 3);
  strata__balloc_free(f.a, 0, 16);
  s = stats(f.a);
  assert_int_equal(s.failures, 2);
  assert_int_equal(s.allocs, 18);
  check_coalesced(&f);
  fx_fini(&f);
}

static void test_fragmentation(void **state) {
  (void)state;
  fixture f;
  uint32_t size = 16;
  fx_init(&f, &size, 1);
  for (uint32_t i = 0; i < 16; i++)
    assert_int_equal(alloc_ok(f.a, 1), i);
  for (uint32_t i = 0; i < 16; i += 2)
    strata__balloc_free(f.a, i, 1);
  strata__balloc_stats s = stats(f.a);
  assert_int_equal(s.free, 8);
  assert_int_equal(s.largest_run, 1);
  assert_int_equal(s.fragmentation_permille, 875); /* 1 - 1/8 */
  strata__balloc_free(f.a, 5, 1);
  s = stats(f.a);
  assert_int_equal(s.largest_run, 3);
  assert_int_equal(s.fragmentation_permille, 666); /* 1 - 3/9 */
  for (uint32_t i = 1; i < 16; i += 2)
    if (i != 5)
      strata__balloc_free(f.a, i, 1);
  s = stats(f.a);
  assert_int_equal(s.largest_run, 16);
  assert_int_equal(s.fragmentation_permille, 0);
  /* Nothing free: 0, not a division by zero. */
  alloc_ok(f.a, 16);
  s = stats(f.a);
  assert_int_equal(s.free, 0);
  assert_int_equal(s.fragmentation_permille, 0);
  strata__balloc_free(f.a, 0, 16);
  check_coalesced(&f);
  fx_fini(&f);
}

/* ---- the run tree against a brute-force reading of the bitmap ---------- */

/* Longest stretch of set bits in [0, nbits), and the first of >= n. */
static uint32_t brute_longest(const uint64_t *bits, uint32_t nbits) {
  uint32_t best = 0, run = 0;
  for (uint32_t i = 0; i < nbits; i++) {
    run = (bits[i >> 6] >> (i & 63)) & 1 ? run + 1 : 0;
    best = run > best ? run : best;
  }
  return best;
}

static uint32_t brute_first(const uint64_t *bits, uint32_t nbits, uint32_t n) {
  uint32_t run = 0;
  for (uint32_t i = 0; i < nbits; i++) {
    run = (bits[i >> 6] >> (i & 63)) & 1 ? run + 1 : 0;
    if (run >= n)
      return i + 1 - n;
  }
  return UINT32_MAX;
}

static void test_run_tree(void **state) {
  (void)state;
  uint64_t seed = 0x7777;
  const uint32_t word_counts[] = {1, 2, 3, 5, 8, 13};
  for (size_t c = 0; c < sizeof word_counts / sizeof word_counts[0]; c++) {
    uint32_t words = word_counts[c], nbits = words * 64;
    uint64_t *bits = calloc(words, sizeof *bits);
    assert_non_null(bits);
    for (uint32_t w = 0; w < words; w++)
      bits[w] = w % 2 ? ~UINT64_C(0) : rnd_below(&seed, UINT32_MAX);
    strata__runtree t;
    assert_int_equal(strata__runtree_init(&t, bits, words), 0);
    for (int step = 0; step < 3000; step++) {
      /* Set or clear a random range, as allocations and frees do. */
      uint32_t lo = rnd_below(&seed, nbits);
      uint32_t len = 1 + rnd_below(&seed, step % 7 == 0 ? nbits - lo : 12);
      if (len > nbits - lo)
        len = nbits - lo;
      bool set = rnd_below(&seed, 2) == 0;
      for (uint32_t i = lo; i < lo + len; i++) {
        uint64_t bit = UINT64_C(1) << (i & 63);
        bits[i >> 6] = set ? bits[i >> 6] | bit : bits[i >> 6] & ~bit;
      }
      strata__runtree_update(&t, bits, lo >> 6, (lo + len - 1) >> 6);
      uint32_t longest = brute_longest(bits, nbits);
      assert_int_equal(strata__runtree_longest(&t), longest);
      for (uint32_t n = 1; n <= longest + 1 && n <= nbits; n += 1 + n / 8)
        assert_int_equal(strata__runtree_first(&t, bits, n),
                         brute_first(bits, nbits, n));
    }
    strata__runtree_free(&t);
    free(bits);
  }
}

/* ---- randomized comparison with a model -------------------------------- */

typedef struct mrun {
  uint32_t first, n;
  uint64_t tag;
} mrun;

/* The model: who owns each block (0: free). */
typedef struct model {
  const fixture *f;
  uint64_t *owner;
  uint32_t blocks;
} model;

static uint32_t model_longest(const model *m) {
  uint32_t best = 0;
  for (uint32_t s = 0; s < m->f->slabs; s++) {
    uint32_t run = 0;
    for (uint32_t i = 0; i < m->f->blocks[s]; i++) {
      run = m->owner[m->f->first[s] + i] == 0 ? run + 1 : 0;
      if (run > best)
        best = run;
    }
  }
  return best;
}

static void random_model(const uint32_t *sizes, uint32_t count, uint64_t seed,
                         int steps) {
  fixture f;
  fx_init(&f, sizes, count);
  model m = {.f = &f, .blocks = strata__balloc_blocks(f.a)};
  m.owner = calloc(m.blocks, sizeof *m.owner);
  mrun *live = calloc(m.blocks, sizeof *live);
  assert_non_null(m.owner);
  assert_non_null(live);
  uint32_t nlive = 0, used = 0, largest_slab = 0;
  for (uint32_t i = 0; i < count; i++)
    if (sizes[i] > largest_slab)
      largest_slab = sizes[i];
  uint64_t allocs = 0, frees = 0, failures = 0, next_tag = 1;

  for (int step = 0; step < steps; step++) {
    uint32_t r = rnd_below(&seed, 100);
    if (nlive == 0 || r < 55) {
      /* Mostly short runs, some longer, a few up to a whole slab. */
      uint32_t n = r < 40   ? 1 + rnd_below(&seed, 4)
                   : r < 52 ? 1 + rnd_below(&seed, 16)
                            : 1 + rnd_below(&seed, largest_slab);
      uint32_t b;
      int rc = strata__balloc_alloc(f.a, n, &b);
      if (rc == STRATA_E_LIMIT) {
        assert_true(model_longest(&m) < n);
        /* The message gives the longest run. */
        const char *at = strstr(strata_last_error_detail(), "largest run ");
        assert_non_null(at);
        assert_int_equal(strtoul(at + strlen("largest run "), NULL, 10),
                         model_longest(&m));
        failures++;
        continue;
      }
      assert_int_equal(rc, 0);
      check_run(&f, b, n);
      for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(m.owner[b + i], 0);
        m.owner[b + i] = next_tag;
      }
      tag_run(f.a, b, n, next_tag);
      live[nlive++] = (mrun){b, n, next_tag++};
      used += n;
      allocs++;
    } else {
      /* A whole run, or a part of it (what is left stays live). */
      uint32_t k = rnd_below(&seed, nlive);
      mrun run = live[k];
      live[k] = live[--nlive];
      check_tag(f.a, run.first, run.n, run.tag);
      uint32_t lo = 0, hi = run.n;
      if (run.n > 1 && rnd_below(&seed, 3) == 0) {
        lo = rnd_below(&seed, run.n);
        hi = lo + 1 + rnd_below(&seed, run.n - lo);
      }
      strata__balloc_free(f.a, run.first + lo, hi - lo);
      for (uint32_t i = lo; i < hi; i++)
        m.owner[run.first + i] = 0;
      if (lo > 0)
        live[nlive++] = (mrun){run.first, lo, run.tag};
      if (hi < run.n)
        live[nlive++] = (mrun){run.first + hi, run.n - hi, run.tag};
      used -= hi - lo;
      frees++;
    }
    strata__balloc_stats s = stats(f.a);
    assert_int_equal(s.used, used);
    assert_int_equal(s.free, m.blocks - used);
    assert_int_equal(s.largest_run, model_longest(&m));
    assert_int_equal(s.allocs, allocs);
    assert_int_equal(s.frees, frees);
    assert_int_equal(s.failures, failures);
  }
  /* Some allocations must have failed, or the test did not push hard. */
  assert_true(failures > 0);
  while (nlive > 0) {
    mrun run = live[--nlive];
    check_tag(f.a, run.first, run.n, run.tag);
    strata__balloc_free(f.a, run.first, run.n);
  }
  check_coalesced(&f);
  free(live);
  free(m.owner);
  fx_fini(&f);
}

static void test_random_model(void **state) {
  (void)state;
  const uint32_t one[] = {64};
  const uint32_t odd[] = {100};
  const uint32_t mixed[] = {37, 64, 13};
  const uint32_t tiny[] = {1, 2, 3, 256};
  const uint32_t big[] = {1024, 700};
  random_model(one, 1, 0x1111, 4000);
  random_model(odd, 1, 0x2222, 4000);
  random_model(mixed, 3, 0x3333, 6000);
  random_model(tiny, 4, 0x4444, 6000);
  random_model(big, 2, 0x5555, 8000);
}

/* ---- bad arguments ----------------------------------------------------- */

static void test_invalid_args(void **state) {
  (void)state;
  strata__balloc *a = (strata__balloc *)1;
  /* Not a power of two, below a page, above 256 MiB. */
  const uint64_t bad_sizes[] = {
      0, 1, 2048, 3 * 4096, UINT64_C(1) << 29, UINT64_MAX,
  };
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    assert_strata_err(strata__balloc_new(bad_sizes[i], &a), STRATA_E_INVAL);
    assert_null(a);
  }
  assert_strata_ok(strata__balloc_new(UINT64_C(1) << 28, &a));
  strata__balloc_free_all(a);
  strata__balloc_free_all(NULL);

  assert_strata_ok(strata__balloc_new(BS, &a));
  uint32_t x;
  /* No slab yet: no run can ever fit. */
  assert_strata_err(strata__balloc_alloc(a, 1, &x), STRATA_E_INVAL);
  assert_int_equal(x, STRATA__BLOCK_NONE);
  assert_null(strata__balloc_ptr(a, 0));

  uint8_t *mem = aligned_alloc(4096, 4 * BS);
  assert_non_null(mem);
  assert_strata_err(strata__balloc_add_slab(a, NULL, 4 * BS), STRATA_E_INVAL);
  assert_strata_err(strata__balloc_add_slab(a, mem + 128, 3 * BS),
                    STRATA_E_INVAL);
  assert_strata_err(strata__balloc_add_slab(a, mem, BS - 1), STRATA_E_INVAL);
  /* The allocator never touches a slab, so a slab this large can be
   * offered without memory behind it: it is refused before anything. */
  void *far = (void *)(uintptr_t)(UINT64_C(1) << 40);
  assert_strata_err(
      strata__balloc_add_slab(a, far, ((UINT64_C(1) << 31) + 1) * BS),
      STRATA_E_INVAL);
  assert_int_equal(strata__balloc_add_slab(a, mem, 4 * BS), 0);
  assert_strata_err(
      strata__balloc_add_slab(a, far, ((UINT64_C(1) << 31) - 3) * BS),
      STRATA_E_INVAL);
  assert_int_equal(strata__balloc_blocks(a), 4);

  assert_strata_err(strata__balloc_alloc(a, 0, &x), STRATA_E_INVAL);
  assert_strata_err(strata__balloc_alloc(a, 5, &x), STRATA_E_INVAL);
  assert_strata_err(strata__balloc_alloc(a, UINT32_MAX, &x), STRATA_E_INVAL);
  strata__balloc_stats s;
  strata__balloc_stats_get(a, &s);
  assert_int_equal(s.failures, 0); /* bad arguments are not failures */
  assert_int_equal(s.allocs, 0);
  assert_int_equal(s.largest_run, 4);
  assert_int_equal(strata__balloc_slab_of(a, 4), STRATA__BLOCK_NONE);
  strata__balloc_free_all(a);
  free(mem);
}

/* Runs `fn` in a child process, which must abort with a message about a
 * bad free on stderr. */
static void expect_abort(void (*fn)(strata__balloc *), const char *why) {
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    strata__balloc *a;
    static _Alignas(4096) uint8_t mem[16 * 4096];
    if (strata__balloc_new(BS, &a) != 0 ||
        strata__balloc_add_slab(a, mem, 8 * BS) != 0 ||
        strata__balloc_add_slab(a, mem + 8 * BS, 8 * BS) != 1)
      _exit(2);
    fn(a);
    _exit(3); /* not reached if the free aborted */
  }
  close(pipefd[1]);
  char buf[1024];
  size_t len = 0;
  ssize_t r;
  while ((r = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)r;
  buf[len] = '\0';
  close(pipefd[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
    fail_msg("child did not abort (status %#x): %s", status, buf);
  if (strstr(buf, why) == NULL)
    fail_msg("expected \"%s\" in: %s", why, buf);
}

static void double_free(strata__balloc *a) {
  uint32_t b;
  if (strata__balloc_alloc(a, 2, &b) != 0)
    _exit(2);
  strata__balloc_free(a, b, 2);
  strata__balloc_free(a, b + 1, 1);
}

static void partly_free(strata__balloc *a) {
  uint32_t b;
  if (strata__balloc_alloc(a, 3, &b) != 0)
    _exit(2);
  strata__balloc_free(a, b, 4);
}

static void never_allocated(strata__balloc *a) {
  strata__balloc_free(a, 5, 1);
}

static void past_the_end(strata__balloc *a) {
  strata__balloc_free(a, 15, 2);
}

static void across_slabs(strata__balloc *a) {
  uint32_t b, c;
  if (strata__balloc_alloc(a, 8, &b) != 0 ||
      strata__balloc_alloc(a, 8, &c) != 0)
    _exit(2);
  strata__balloc_free(a, 4, 8);
}

static void test_bad_frees_abort(void **state) {
  (void)state;
  expect_abort(double_free, "a block of it is not allocated");
  expect_abort(partly_free, "a block of it is not allocated");
  expect_abort(never_allocated, "a block of it is not allocated");
  expect_abort(past_the_end, "past the last block");
  expect_abort(across_slabs, "crosses the end of a slab");
}

/* ---- threads ----------------------------------------------------------- */

#define THREADS 4
#define HELD 8

/* cmocka's assertions jump back to the test, which only works on its own
 * thread: workers record the first thing that went wrong instead. */
typedef struct worker {
  const fixture *f;
  unsigned id;
  uint64_t seed;
  uint64_t ok, limited;
  char error[200];
} worker;

static bool tags_ok(worker *w, const mrun *r) {
  for (uint32_t i = 0; i < r->n; i++) {
    uint8_t *p = strata__balloc_ptr(w->f->a, r->first + i);
    uint64_t head, tail;
    memcpy(&head, p, sizeof head);
    memcpy(&tail, p + BS - sizeof tail, sizeof tail);
    if (head != r->tag || tail != r->tag) {
      snprintf(w->error, sizeof w->error,
               "block %" PRIu32 " of run %" PRIu32 "+%" PRIu32 ": tag %#" PRIx64
               "/%#" PRIx64 ", expected %#" PRIx64,
               r->first + i, r->first, r->n, head, tail, r->tag);
      return false;
    }
  }
  return true;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  strata__balloc *a = w->f->a;
  mrun held[HELD];
  unsigned nheld = 0;
  for (int i = 0; i < 20000; i++) {
    if (nheld < HELD && (nheld == 0 || rnd_below(&w->seed, 2) == 0)) {
      uint32_t n = 1 + rnd_below(&w->seed, 8), b;
      int rc = strata__balloc_alloc(a, n, &b);
      if (rc == STRATA_E_LIMIT) {
        w->limited++;
        continue;
      }
      if (rc != 0 || strata__balloc_slab_of(a, b) !=
                         strata__balloc_slab_of(a, b + n - 1)) {
        snprintf(w->error, sizeof w->error, "alloc of %" PRIu32 ": %s, %s", n,
                 strata_err_name(rc), strata_last_error_detail());
        return NULL;
      }
      uint64_t tag = (uint64_t)w->id << 32 | (uint32_t)i;
      tag_run(a, b, n, tag);
      held[nheld++] = (mrun){b, n, tag};
      w->ok++;
    } else {
      unsigned k = rnd_below(&w->seed, nheld);
      mrun r = held[k];
      held[k] = held[--nheld];
      if (!tags_ok(w, &r))
        return NULL;
      if (rnd_below(&w->seed, 4) == 0)
        for (uint32_t j = 0; j < r.n; j++)
          strata__balloc_free(a, r.first + j, 1);
      else
        strata__balloc_free(a, r.first, r.n);
    }
  }
  while (nheld > 0) {
    mrun r = held[--nheld];
    if (!tags_ok(w, &r))
      return NULL;
    strata__balloc_free(a, r.first, r.n);
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  /* Small enough that the threads run it out of blocks now and then. */
  const uint32_t sizes[] = {64, 48};
  fixture f;
  fx_init(&f, sizes, 2);
  worker w[THREADS];
  pthread_t t[THREADS];
  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (worker){.f = &f, .id = i + 1, .seed = 0x7777 + i};
    assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
  }
  uint64_t ok = 0, limited = 0;
  for (unsigned i = 0; i < THREADS; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    if (w[i].error[0] != '\0')
      fail_msg("thread %u: %s", w[i].id, w[i].error);
    ok += w[i].ok;
    limited += w[i].limited;
  }
  strata__balloc_stats s = stats(f.a);
  assert_int_equal(s.allocs, ok);
  assert_int_equal(s.failures, limited);
  assert_true(ok > 0);
  check_coalesced(&f);
  fx_fini(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_single_block),
      cmocka_unit_test(test_every_length),
      cmocka_unit_test(test_tail_given_back),
      cmocka_unit_test(test_coalesce_random_order),
      cmocka_unit_test(test_free_block_by_block),
      cmocka_unit_test(test_odd_slab_sizes),
      cmocka_unit_test(test_several_slabs),
      cmocka_unit_test(test_exhaustion),
      cmocka_unit_test(test_fragmentation),
      cmocka_unit_test(test_run_tree),
      cmocka_unit_test(test_try),
      cmocka_unit_test(test_random_model),
      cmocka_unit_test(test_invalid_args),
      cmocka_unit_test(test_bad_frees_abort),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
