/* The heap pool allocator: class selection, alignment, no overlap under
 * random allocations and frees, stats, chunks going back to the system,
 * bad configurations, frees that do not match a live block, and destroy
 * with live allocations (ASan builds check that nothing leaks). */
#include <inttypes.h>

#include "test_util.h"

#include "common/pool.h"

#define ROWS (STRATA__POOL_MAX_CLASSES + 1)

/* The default classes: 64 << i for i in 0..10, then the large row. */
#define DEFAULT_CLASSES 11
#define LARGE_ROW DEFAULT_CLASSES

static strata__pool *new_pool(const strata__pool_config *cfg) {
  strata__pool *p = NULL;
  assert_strata_ok(strata__pool_create(cfg, &p));
  assert_non_null(p);
  return p;
}

static size_t stats(const strata__pool *p, strata__pool_class_stats *rows) {
  memset(rows, 0, ROWS * sizeof *rows);
  return strata__pool_stats(p, rows, ROWS);
}

/* Sums over all rows, and checks what must hold in each. */
typedef struct totals {
  uint64_t reserved, requested, used;
} totals;

static totals check_rows(const strata__pool *p) {
  strata__pool_class_stats r[ROWS];
  size_t n = stats(p, r);
  totals t = {0};
  uint64_t in_use = 0; /* whole blocks, and large blocks with their header */
  for (size_t i = 0; i < n; i++) {
    in_use += r[i].block_size != 0 ? r[i].blocks_used * r[i].block_size
                                   : r[i].bytes_reserved;
    assert_true(r[i].blocks_used <= r[i].blocks_total);
    assert_true(r[i].bytes_requested <= r[i].bytes_reserved);
    assert_true(r[i].utilization >= 0.0 && r[i].utilization <= 1.0);
    assert_true(r[i].fragmentation >= 0.0 && r[i].fragmentation <= 1.0);
    assert_int_equal(r[i].allocs - r[i].frees, r[i].blocks_used);
    assert_true(r[i].bytes_requested >= r[i].blocks_used);
    if (r[i].block_size != 0)
      assert_true(r[i].bytes_requested <= r[i].blocks_used * r[i].block_size);
    t.reserved += r[i].bytes_reserved;
    t.requested += r[i].bytes_requested;
    t.used += r[i].blocks_used;
  }
  assert_int_equal(t.reserved, strata__pool_reserved(p));
  assert_int_equal(in_use, strata__pool_in_use(p));
  return t;
}

/* The row an allocation of `size` was counted in: the only row whose
 * alloc count went up. */
static size_t row_of_alloc(strata__pool *p, size_t size, void **ptr) {
  strata__pool_class_stats before[ROWS], after[ROWS];
  size_t n = stats(p, before);
  *ptr = strata__pool_alloc(p, size);
  assert_non_null(*ptr);
  assert_int_equal(stats(p, after), n);
  size_t row = SIZE_MAX;
  for (size_t i = 0; i < n; i++)
    if (after[i].allocs != before[i].allocs) {
      assert_int_equal(row, SIZE_MAX);
      assert_int_equal(after[i].allocs, before[i].allocs + 1);
      row = i;
    }
  assert_int_not_equal(row, SIZE_MAX);
  return row;
}

static void test_class_selection(void **state) {
  (void)state;
  strata__pool *p = new_pool(NULL);
  strata__pool_class_stats r[ROWS];
  assert_int_equal(stats(p, r), DEFAULT_CLASSES + 1);
  for (unsigned i = 0; i < DEFAULT_CLASSES; i++)
    assert_int_equal(r[i].block_size, 64u << i);
  assert_int_equal(r[LARGE_ROW].block_size, 0);

  static const struct {
    size_t size, row;
  } cases[] = {{0, 0},
               {1, 0},
               {63, 0},
               {64, 0},
               {65, 1},
               {128, 1},
               {129, 2},
               {1000, 4},
               {4096, 6},
               {4097, 7},
               {32768, 9},
               {32769, 10},
               {65536, 10},
               {65537, LARGE_ROW},
               {1u << 20, LARGE_ROW}};
  void *ptrs[sizeof cases / sizeof *cases];
  uint64_t want_requested = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    size_t row = row_of_alloc(p, cases[k].size, &ptrs[k]);
    if (row != cases[k].row)
      fail_msg("size %zu went to row %zu, expected %zu", cases[k].size, row,
               cases[k].row);
    want_requested += cases[k].size ? cases[k].size : 1;
  }
  assert_int_equal(check_rows(p).requested, want_requested);
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
    strata__pool_free(p, ptrs[k], cases[k].size);
  totals t = check_rows(p);
  assert_int_equal(t.used, 0);
  assert_int_equal(t.requested, 0);
  strata__pool_destroy(p);

  /* Classes need not be consecutive powers of two: best fit skips gaps. */
  strata__pool_config cfg = {.class_sizes = {16, 256, 4096}, .class_count = 3};
  p = new_pool(&cfg);
  void *q;
  assert_int_equal(row_of_alloc(p, 16, &q), 0);
  strata__pool_free(p, q, 16);
  assert_int_equal(row_of_alloc(p, 17, &q), 1);
  strata__pool_free(p, q, 17);
  assert_int_equal(row_of_alloc(p, 257, &q), 2);
  strata__pool_free(p, q, 257);
  assert_int_equal(row_of_alloc(p, 4097, &q), 3);
  strata__pool_free(p, q, 4097);
  strata__pool_destroy(p);
}

static void test_alignment(void **state) {
  (void)state;
  strata__pool_config small = {.class_sizes = {16, 32, 64, 128, 1024},
                               .class_count = 5,
                               .chunk_size = 4096};
  strata__pool *pools[] = {new_pool(NULL), new_pool(&small)};
  for (size_t k = 0; k < 2; k++) {
    strata__pool *p = pools[k];
    strata__pool_class_stats r[ROWS];
    size_t rows = stats(p, r);
    for (size_t c = 0; c + 1 < rows; c++) {
      uint32_t b = r[c].block_size;
      uintptr_t align = b < 64 ? b : 64;
      /* Enough blocks to fill one chunk of the class and start another. */
      void *first = strata__pool_alloc(p, b);
      assert_non_null(first);
      stats(p, r);
      size_t n = (size_t)r[c].blocks_total + 2;
      strata__pool_free(p, first, b);
      void **v = malloc(n * sizeof *v);
      assert_non_null(v);
      for (size_t i = 0; i < n; i++) {
        v[i] = strata__pool_alloc(p, b);
        assert_non_null(v[i]);
        if ((uintptr_t)v[i] % align != 0)
          fail_msg("block of %" PRIu32 " at %p", b, v[i]);
      }
      for (size_t i = 0; i < n; i++)
        strata__pool_free(p, v[i], b);
      free(v);
    }
    void *big = strata__pool_alloc(p, 100000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 64, 0);
    strata__pool_free(p, big, 100000);
    check_rows(p);
    strata__pool_destroy(p);
  }
}

/* Random allocations and frees with every byte written and checked. */
typedef struct slot {
  uint8_t *ptr;
  size_t size;
  uint8_t tag;
} slot;

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Sizes spread over every class (and its boundaries), with a few large. */
static size_t random_size(uint64_t *rng, uint32_t largest) {
  uint64_t r = rng_next(rng);
  if (r % 64 == 0)
    return largest + 1 + (size_t)(r >> 32) % (2 * (size_t)largest);
  unsigned top = 31u - (unsigned)__builtin_clz(largest);
  unsigned e = (unsigned)((r >> 8) % (top + 1));
  size_t hi = (size_t)1 << e;
  switch ((r >> 16) % 4) {
  case 0:
    return hi; /* exactly a class size */
  case 1:
    return hi + 1 <= largest ? hi + 1 : hi; /* just past one */
  default:
    return 1 + (size_t)(r >> 24) % hi;
  }
}

static void check_slot(const slot *s) {
  /* All bytes equal the tag iff the first does and each equals the next. */
  if (s->ptr[0] == s->tag && memcmp(s->ptr, s->ptr + 1, s->size - 1) == 0)
    return;
  for (size_t j = 0; j < s->size; j++)
    if (s->ptr[j] != s->tag)
      fail_msg("byte %zu of a %zu-byte block at %p is %u, expected %u", j,
               s->size, (void *)s->ptr, s->ptr[j], s->tag);
}

static void random_ops(const strata__pool_config *cfg, uint32_t largest,
                       size_t nslots, unsigned ops, uint64_t seed) {
  strata__pool *p = new_pool(cfg);
  slot *slots = calloc(nslots, sizeof *slots);
  assert_non_null(slots);
  uint64_t rng = seed;
  uint8_t next_tag = 1;
  for (unsigned op = 0; op < ops; op++) {
    slot *s = &slots[rng_next(&rng) % nslots];
    if (s->ptr != NULL) {
      check_slot(s);
      strata__pool_free(p, s->ptr, s->size);
      s->ptr = NULL;
      continue;
    }
    s->size = random_size(&rng, largest);
    s->ptr = strata__pool_alloc(p, s->size);
    assert_non_null(s->ptr);
    /* Tags cycle through 1..255, so neighbours almost never share one and
     * an overlapping write shows up when the other block is checked. */
    s->tag = next_tag;
    next_tag = next_tag == 255 ? 1 : next_tag + 1;
    memset(s->ptr, s->tag, s->size);
    if (op % 10007 == 0) {
      totals t = check_rows(p);
      uint64_t live = 0, bytes = 0;
      for (size_t i = 0; i < nslots; i++)
        if (slots[i].ptr != NULL) {
          live++;
          bytes += slots[i].size;
        }
      assert_int_equal(t.used, live);
      assert_int_equal(t.requested, bytes);
    }
  }
  for (size_t i = 0; i < nslots; i++)
    if (slots[i].ptr != NULL) {
      check_slot(&slots[i]);
      strata__pool_free(p, slots[i].ptr, slots[i].size);
    }
  totals t = check_rows(p);
  assert_int_equal(t.used, 0);
  assert_int_equal(t.requested, 0);
  /* Only the spares are left: at most one chunk per class. */
  strata__pool_class_stats r[ROWS];
  size_t n = stats(p, r);
  for (size_t i = 0; i < n; i++) {
    assert_true(r[i].chunks <= 1);
    assert_true(r[i].fragmentation == 0.0);
  }
  assert_int_equal(r[n - 1].bytes_reserved, 0);
  free(slots);
  strata__pool_destroy(p);
}

static void test_random_default(void **state) {
  (void)state;
  random_ops(NULL, 65536, 1024, 100000, 1);
}

/* Small chunks: chunks fill, drain and go back to the system all the time. */
static void test_random_small_chunks(void **state) {
  (void)state;
  strata__pool_config cfg = {.class_sizes = {16, 32, 64, 128, 256, 512, 1024},
                             .class_count = 7,
                             .chunk_size = 4096};
  random_ops(&cfg, 1024, 4096, 100000, 2);
}

static void test_stats_and_chunk_return(void **state) {
  (void)state;
  strata__pool_config cfg = {
      .class_sizes = {64, 1024}, .class_count = 2, .chunk_size = 4096};
  strata__pool *p = new_pool(&cfg);
  strata__pool_class_stats r[ROWS];
  assert_int_equal(strata__pool_reserved(p), 0);

  /* 64-byte blocks: a 4 KiB chunk minus its header (48 bytes + one bitmap
   * word, rounded up to 64) holds 63. */
  enum { N = 1000 };
  void *v[N];
  for (int i = 0; i < N; i++)
    assert_non_null(v[i] = strata__pool_alloc(p, 40));
  assert_int_equal(stats(p, r), 3);
  uint64_t per = r[0].blocks_total / r[0].chunks;
  assert_int_equal(per, 63);
  assert_int_equal(r[0].chunks, (N + per - 1) / per);
  assert_int_equal(r[0].blocks_used, N);
  assert_int_equal(r[0].bytes_requested, 40 * N);
  assert_int_equal(r[0].bytes_reserved, r[0].chunks * 4096);
  assert_int_equal(strata__pool_reserved(p), r[0].chunks * 4096);
  assert_true(r[0].utilization > 0.5 && r[0].utilization < 40.0 / 64);
  /* Only the last chunk has free blocks, all of them stranded. */
  assert_true(r[0].fragmentation == 1.0);
  uint64_t full_chunks = r[0].chunks;

  /* Every other block freed: every chunk keeps blocks in use. */
  for (int i = 0; i < N; i += 2)
    strata__pool_free(p, v[i], 40);
  stats(p, r);
  assert_int_equal(r[0].chunks, full_chunks);
  assert_int_equal(r[0].blocks_used, N / 2);
  assert_true(r[0].fragmentation == 1.0);
  check_rows(p);

  /* The rest: every chunk empties; one stays as the spare. */
  for (int i = 1; i < N; i += 2)
    strata__pool_free(p, v[i], 40);
  stats(p, r);
  assert_int_equal(r[0].chunks, 1);
  assert_int_equal(r[0].blocks_used, 0);
  assert_int_equal(r[0].bytes_requested, 0);
  assert_true(r[0].fragmentation == 0.0);
  assert_true(r[0].utilization == 0.0);
  assert_int_equal(r[0].allocs, N);
  assert_int_equal(r[0].frees, N);
  assert_int_equal(strata__pool_reserved(p), 4096);

  /* The spare is used again before new memory is taken. */
  void *a = strata__pool_alloc(p, 64);
  assert_non_null(a);
  assert_int_equal(strata__pool_reserved(p), 4096);
  strata__pool_free(p, a, 64);
  assert_int_equal(strata__pool_reserved(p), 4096);

  /* 1024-byte blocks get chunks of 16 blocks (16 KiB), 15 after the
   * header. */
  void *w[16];
  for (int i = 0; i < 16; i++)
    assert_non_null(w[i] = strata__pool_alloc(p, 1024));
  stats(p, r);
  assert_int_equal(r[1].chunks, 2);
  assert_int_equal(r[1].blocks_total, 30);
  assert_int_equal(r[1].bytes_reserved, 2 * 16384);
  assert_int_equal(strata__pool_reserved(p), 4096 + 2 * 16384);
  for (int i = 0; i < 16; i++)
    strata__pool_free(p, w[i], 1024);
  assert_int_equal(strata__pool_reserved(p), 4096 + 16384);

  /* Large allocations: their own memory, given back on free. */
  void *big = strata__pool_alloc(p, 5000);
  assert_non_null(big);
  stats(p, r);
  assert_int_equal(r[2].block_size, 0);
  assert_int_equal(r[2].chunks, 1);
  assert_int_equal(r[2].blocks_used, 1);
  assert_int_equal(r[2].bytes_requested, 5000);
  assert_true(r[2].bytes_reserved >= 5000);
  assert_int_equal(strata__pool_reserved(p),
                   4096 + 16384 + r[2].bytes_reserved);
  strata__pool_free(p, big, 5000);
  stats(p, r);
  assert_int_equal(r[2].chunks, 0);
  assert_int_equal(r[2].bytes_reserved, 0);
  assert_int_equal(r[2].allocs, 1);
  assert_int_equal(r[2].frees, 1);
  assert_int_equal(strata__pool_reserved(p), 4096 + 16384);

  /* Fewer rows than classes: only those are filled. */
  strata__pool_class_stats one[2] = {{0}, {.block_size = 777}};
  assert_int_equal(strata__pool_stats(p, one, 1), 1);
  assert_int_equal(one[0].block_size, 64);
  assert_int_equal(one[1].block_size, 777);
  assert_int_equal(strata__pool_stats(p, NULL, 0), 0);
  strata__pool_destroy(p);
}

/* The default 64 KiB class: 1 MiB chunks of 15 blocks. */
static void test_big_class_geometry(void **state) {
  (void)state;
  strata__pool *p = new_pool(NULL);
  strata__pool_class_stats r[ROWS];
  void *v[16];
  for (int i = 0; i < 15; i++)
    assert_non_null(v[i] = strata__pool_alloc(p, 65536));
  stats(p, r);
  assert_int_equal(r[10].chunks, 1);
  assert_int_equal(r[10].blocks_total, 15);
  assert_int_equal(r[10].bytes_reserved, 1u << 20);
  assert_non_null(v[15] = strata__pool_alloc(p, 40000));
  stats(p, r);
  assert_int_equal(r[10].chunks, 2);
  for (int i = 0; i < 16; i++)
    strata__pool_free(p, v[i], i < 15 ? 65536 : 40000);
  assert_int_equal(strata__pool_reserved(p), 1u << 20);
  strata__pool_destroy(p);
}

static void test_bad_config(void **state) {
  (void)state;
  static const struct {
    strata__pool_config cfg;
    const char *detail;
  } cases[] = {
      {{.class_sizes = {64, 96}, .class_count = 2}, "block size 96"},
      {{.class_sizes = {8, 64}, .class_count = 2}, "block size 8"},
      {{.class_sizes = {0}, .class_count = 1}, "block size 0"},
      {{.class_sizes = {64, 64}, .class_count = 2}, "ascend"},
      {{.class_sizes = {128, 64}, .class_count = 2}, "ascend"},
      {{.class_sizes = {64, 1u << 31}, .class_count = 2}, "block size"},
      {{.class_count = STRATA__POOL_MAX_CLASSES + 1}, "size classes"},
      {{.chunk_size = 3u << 20}, "chunk size 3145728"},
      {{.chunk_size = 1024}, "chunk size 1024"},
      {{.chunk_size = UINT64_C(1) << 40}, "chunk size"},
      {{.class_sizes = {64}, .class_count = 1, .chunk_size = 5000},
       "chunk size 5000"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    strata__pool *p = (strata__pool *)&k; /* must be reset to NULL */
    assert_strata_err(strata__pool_create(&cases[k].cfg, &p), STRATA_E_INVAL);
    assert_null(p);
    if (strstr(strata_last_error_detail(), cases[k].detail) == NULL)
      fail_msg("case %zu: detail \"%s\" lacks \"%s\"", k,
               strata_last_error_detail(), cases[k].detail);
  }
  assert_strata_err(strata__pool_create(NULL, NULL), STRATA_E_INVAL);
  /* Limits that are fine: 16 classes, the smallest chunk. */
  strata__pool_config ok = {.class_count = STRATA__POOL_MAX_CLASSES,
                            .chunk_size = 4096};
  for (unsigned i = 0; i < STRATA__POOL_MAX_CLASSES; i++)
    ok.class_sizes[i] = 16u << i;
  strata__pool *p = new_pool(&ok);
  void *q = strata__pool_alloc(p, 16u << 15);
  assert_non_null(q);
  strata__pool_free(p, q, 16u << 15);
  strata__pool_destroy(p);
}

/* Frees that match no live block are ignored; NULL is accepted. */
static void test_bad_frees(void **state) {
  (void)state;
  strata__pool *p = new_pool(NULL);
  strata__pool_free(p, NULL, 10);
  strata__pool_free(NULL, NULL, 10);
  strata__pool_destroy(NULL);
  assert_null(strata__pool_alloc(NULL, 10));
  assert_int_equal(strata__pool_reserved(NULL), 0);

  void *a = strata__pool_alloc(p, 100); /* class 128 */
  void *b = strata__pool_alloc(p, 100); /* keeps a's chunk in use */
  void *big = strata__pool_alloc(p, 70000);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(big);
  totals before = check_rows(p);
  strata__pool_free(p, a, 10);                 /* another class */
  strata__pool_free(p, (uint8_t *)a + 8, 100); /* not a block start */
  strata__pool_free(p, big, 70001);            /* wrong large size */
  totals t = check_rows(p);
  assert_int_equal(t.used, before.used);
  assert_int_equal(t.requested, before.requested);
  strata__pool_free(p, a, 100);
  strata__pool_free(p, a, 100); /* twice */
  t = check_rows(p);
  assert_int_equal(t.used, before.used - 1);
  assert_int_equal(t.requested, before.requested - 100);
  /* The pool still works and hands a's block out again. */
  void *c = strata__pool_alloc(p, 128);
  assert_ptr_equal(c, a);
  strata__pool_free(p, c, 128);
  strata__pool_free(p, b, 100);
  strata__pool_free(p, big, 70000);
  t = check_rows(p);
  assert_int_equal(t.used, 0);
  strata__pool_destroy(p);
}

/* In use counts the blocks handed out, not the chunks held: the first
 * 100-byte block reserves a whole chunk but is 128 bytes in use, and a
 * pool whose blocks are all freed has nothing in use while it keeps a
 * spare chunk. (The store's memory thresholds count this figure.) */
static void test_in_use(void **state) {
  (void)state;
  strata__pool *p = new_pool(NULL);
  assert_int_equal(strata__pool_in_use(p), 0);
  assert_int_equal(strata__pool_in_use(NULL), 0);
  void *a = strata__pool_alloc(p, 100);
  assert_non_null(a);
  assert_int_equal(strata__pool_in_use(p), 128);
  assert_int_equal(strata__pool_reserved(p), 1u << 20);
  void *big = strata__pool_alloc(p, 70000);
  assert_non_null(big);
  assert_int_equal(strata__pool_in_use(p), 128 + 64 + 70000);
  strata__pool_free(p, a, 100);
  strata__pool_free(p, a, 100); /* twice: ignored, counted once */
  strata__pool_free(p, big, 70000);
  assert_int_equal(strata__pool_in_use(p), 0);
  assert_int_equal(strata__pool_reserved(p), 1u << 20); /* the spare */
  check_rows(p);
  strata__pool_destroy(p);
}

/* Destroy frees everything still allocated; LeakSanitizer (ASan builds)
 * fails the test if anything is left. */
static void test_destroy_with_live_blocks(void **state) {
  (void)state;
  strata__pool_config cfg = {.chunk_size = 8192};
  strata__pool *p = new_pool(&cfg);
  uint64_t rng = 3;
  for (int i = 0; i < 5000; i++) {
    size_t size = random_size(&rng, 65536);
    uint8_t *q = strata__pool_alloc(p, size);
    assert_non_null(q);
    q[0] = 1;
    q[size - 1] = 2;
  }
  assert_true(strata__pool_reserved(p) > 0);
  check_rows(p);
  strata__pool_destroy(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_class_selection),
      cmocka_unit_test(test_alignment),
      cmocka_unit_test(test_random_default),
      cmocka_unit_test(test_random_small_chunks),
      cmocka_unit_test(test_stats_and_chunk_return),
      cmocka_unit_test(test_big_class_geometry),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_bad_frees),
      cmocka_unit_test(test_in_use),
      cmocka_unit_test(test_destroy_with_live_blocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
