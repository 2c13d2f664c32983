/* The staging pool in host mode: staging, partial staging, content
 * sharing, replacement after a change, eviction, hot layers (by explicit
 * ticks and by the worker), copies to "device" memory, batches of paths,
 * statistics, the state dump, and staging from several threads while a
 * writer changes the layers. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <jansson.h>

#include "common/strata_testing.h" /* NO_WORKER, strata_staging_tick */
#include "staging/staging.h" /* struct strata_stream: a host function on it */
#include "staging_churn.h"
#include "test_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static strata_store_config staging_config(uint64_t bytes) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_ERROR;
  c.staging.bytes = bytes;
  c.staging.block_size = 64 * KiB;
  c.staging.pack_bytes = 256 * KiB;
  c.staging.flags = STRATA_STAGING_HOST | STRATA_STAGING_NO_WORKER;
  return c;
}

/* A store with region 1 in a file (layer i: size sizes[i], seed i) and
 * region 2 as a proto only (layer i: 3 * 64 KiB, seed 100 + i). */
static const size_t sizes[] = {100,          64 * KiB, 64 * KiB + 1, 300 * KiB,
                               2 * MiB + 77, 0,        4 * KiB};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static strata_store *open_fixture(const strata_store_config *c,
                                  const char **dir_out) {
  const char *dir = test_tmpdir();
  strata_store *s;
  assert_int_equal(strata_store_open(dir, c, &s), 0);
  strata_proto *p;
  assert_int_equal(strata_proto_create(s, 1, "files", 5, NULL, &p), 0);
  for (uint64_t i = 0; i < NSIZES; i++)
    test_put(p, i, sizes[i], i);
  assert_int_equal(strata_crystallize(s, 1), 0);
  assert_int_equal(strata_proto_create(s, 2, "heap", 4, NULL, &p), 0);
  for (uint64_t i = 0; i < 4; i++)
    test_put(p, i, 3 * 64 * KiB, 100 + i);
  if (dir_out != NULL)
    *dir_out = dir;
  return s;
}

/* The staged bytes equal the layer's bytes. */
static void assert_staged_equals(const strata_staged *h, const void *want,
                                 uint64_t size) {
  strata_staged_info info;
  assert_int_equal(strata_staged_info_get(h, &info), 0);
  assert_int_equal(info.size, size);
  uint8_t *got = malloc(size ? size : 1);
  assert_non_null(got);
  assert_int_equal(strata_staged_copy_out(h, got), 0);
  assert_memory_equal(got, want, size);
  /* The segments cover the same bytes in order. */
  uint64_t off = 0;
  for (uint32_t i = 0; i < info.segments; i++) {
    const void *p;
    uint64_t len;
    assert_int_equal(strata_staged_segment(h, i, &p, &len), 0);
    assert_true(((uintptr_t)p % STRATA_DEVICE_ALIGN) == 0);
    assert_memory_equal(p, (const uint8_t *)want + off, len);
    off += len;
  }
  assert_int_equal(off, size);
  const void *p;
  uint64_t len;
  assert_int_equal(strata_staged_segment(h, info.segments, &p, &len),
                   STRATA_E_BOUNDS);
  free(got);
}

static void test_no_pool(void **state) {
  (void)state;
  strata_store_config c = staging_config(0);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h = (strata_staged *)1;
  assert_int_equal(strata_stage(&txn, 1, 0, &h), STRATA_E_STATE);
  assert_null(h);
  assert_non_null(strstr(strata_last_error_detail(), "no staging pool"));
  strata_read_end(&txn);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), STRATA_E_STATE);
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), STRATA_E_STATE);
  int native;
  ss = (strata_stream *)1;
  assert_int_equal(strata_stream_adopt(s, &native, &ss), STRATA_E_STATE);
  assert_null(ss);
  assert_non_null(strstr(strata_last_error_detail(), "strata_stream_adopt: "));
  assert_non_null(strstr(strata_last_error_detail(), "no staging pool"));
  assert_int_equal(strata_staging_tick(s), STRATA_E_STATE);
  assert_int_equal(strata_staging_trim(s, 0), STRATA_E_STATE);
  char *dump;
  assert_int_equal(strata_dump_state(s, 0, &dump), 0);
  json_t *doc = json_loads(dump, 0, NULL);
  assert_true(json_is_null(json_object_get(doc, "staging")));
  json_decref(doc);
  strata_free(dump);
  strata_store_close(s);
}

static void test_bad_config(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = NULL;
  strata_store_config c = staging_config(16 * MiB);
  c.staging.block_size = 65 * KiB;
  assert_int_equal(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "staging.block_size"));
  c = staging_config(16 * MiB);
  c.staging.high_pct = 50;
  c.staging.evict_pct = 60;
  assert_int_equal(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  c = staging_config(1 * MiB); /* pack buffers would take all of it */
  assert_int_equal(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "too small"));
  c = staging_config(16 * MiB);
  c.staging.sample_period = 3;
  assert_int_equal(strata_store_open(dir, &c, &s), STRATA_E_INVAL);
  assert_null(s);
}

static void test_stage_layers(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  for (uint64_t i = 0; i < NSIZES; i++) {
    strata_staged *h;
    assert_int_equal(strata_stage(&txn, 1, i, &h), 0);
    uint8_t *want = test_content(sizes[i], i);
    assert_staged_equals(h, want, sizes[i]);
    strata_staged_info info;
    assert_int_equal(strata_staged_info_get(h, &info), 0);
    assert_int_equal(info.region_id, 1);
    assert_int_equal(info.layer_id, i);
    assert_int_equal(info.offset, 0);
    assert_int_equal(info.blocks, (sizes[i] + 64 * KiB - 1) / (64 * KiB));
    free(want);
    strata_staged_release(h);
  }
  /* Proto layers (heap) stage the same way. */
  strata_staged *h;
  assert_int_equal(strata_stage(&txn, 2, 3, &h), 0);
  uint8_t *want = test_content(3 * 64 * KiB, 103);
  assert_staged_equals(h, want, 3 * 64 * KiB);
  free(want);
  strata_staged_release(h);

  /* Errors name what was asked for. */
  assert_int_equal(strata_stage(&txn, 1, 999, &h), STRATA_E_NOT_FOUND);
  assert_non_null(strstr(strata_last_error_detail(), "layer 999"));
  assert_int_equal(strata_stage(&txn, 9, 0, &h), STRATA_E_NO_REGION);
  assert_int_equal(strata_stage(&txn, 1, 0, NULL), STRATA_E_INVAL);

  /* Staging again copies nothing. */
  strata_staging_stats a, b;
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(strata_stage(&txn, 1, 4, &h), 0);
  strata_staged_release(h);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.stage_copied_bytes, a.stage_copied_bytes);
  assert_int_equal(b.stage_calls, a.stage_calls + 1);
  /* The empty layer (5) is not kept once released: nothing is staged. */
  assert_int_equal(b.staged_layers, NSIZES);
  assert_string_equal(b.backend, "host");
  assert_true(b.blocks_used > 0 && b.blocks_used + b.blocks_free == b.blocks);
  strata_read_end(&txn);
  strata_store_close(s);
}

static void test_stage_part(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  uint8_t *want = test_content(sizes[4], 4); /* 2 MiB + 77: 33 blocks */
  strata_staged *h;
  assert_int_equal(strata_stage_part(&txn, 1, 4, 10, 3, &h), 0);
  strata_staged_info info;
  assert_int_equal(strata_staged_info_get(h, &info), 0);
  assert_int_equal(info.offset, 10 * 64 * KiB);
  assert_int_equal(info.blocks, 3);
  assert_staged_equals(h, want + 10 * 64 * KiB, 3 * 64 * KiB);
  strata_staged_release(h);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.staged_bytes, 3 * 64 * KiB);
  /* Clipped at the end; past the end is an error. */
  assert_int_equal(strata_stage_part(&txn, 1, 4, 32, 100, &h), 0);
  assert_staged_equals(h, want + 32 * 64 * KiB, 77);
  strata_staged_release(h);
  assert_int_equal(strata_stage_part(&txn, 1, 4, 33, 1, &h), STRATA_E_BOUNDS);
  /* The rest stages later, around the pages already there. */
  assert_int_equal(strata_stage(&txn, 1, 4, &h), 0);
  assert_staged_equals(h, want, sizes[4]);
  strata_staged_release(h);
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.stage_copied_bytes, sizes[4]);
  free(want);
  strata_read_end(&txn);
  strata_store_close(s);
}

static void test_shared_blocks(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_proto *p;
  assert_int_equal(strata_proto_create(s, 3, "dups", 4, NULL, &p), 0);
  /* Layers 1 and 2 are identical; layer 3 repeats one block 4 times. */
  test_put(p, 1, 256 * KiB, 7);
  test_put(p, 2, 256 * KiB, 7);
  uint8_t *rep = malloc(256 * KiB);
  for (int i = 0; i < 4; i++)
    test_fill_seeded(rep + i * 64 * KiB, 64 * KiB, 55);
  assert_int_equal(strata_proto_put(p, 3, NULL, 0, NULL, rep, 256 * KiB), 0);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h1, *h2, *h3;
  assert_int_equal(strata_stage(&txn, 3, 1, &h1), 0);
  assert_int_equal(strata_stage(&txn, 3, 2, &h2), 0);
  assert_int_equal(strata_stage(&txn, 3, 3, &h3), 0);
  strata_staged_info i2, i3;
  assert_int_equal(strata_staged_info_get(h2, &i2), 0);
  assert_int_equal(i2.shared_blocks, 4);
  assert_int_equal(strata_staged_info_get(h3, &i3), 0);
  assert_int_equal(i3.shared_blocks, 4); /* one block, four pages */
  uint8_t *want = test_content(256 * KiB, 7);
  assert_staged_equals(h2, want, 256 * KiB);
  assert_staged_equals(h3, rep, 256 * KiB);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.shared_blocks, 5);
  assert_int_equal(st.dedup_hits, 4 + 3);
  assert_int_equal(st.stage_copied_bytes, 256 * KiB + 64 * KiB);
  /* Layer 1 goes; its blocks stay for layer 2. */
  strata_staged_release(h1);
  strata_staged_release(h2);
  strata_staged_release(h3);
  strata_read_end(&txn);
  strata_store_close(s);

  /* Without sharing every page is copied. */
  c.staging.flags |= STRATA_STAGING_NO_DEDUP;
  s = open_fixture(&c, NULL);
  assert_int_equal(strata_proto_create(s, 3, "dups", 4, NULL, &p), 0);
  test_put(p, 1, 256 * KiB, 7);
  test_put(p, 2, 256 * KiB, 7);
  assert_int_equal(strata_read_begin(s, &txn), 0);
  assert_int_equal(strata_stage(&txn, 3, 1, &h1), 0);
  assert_int_equal(strata_stage(&txn, 3, 2, &h2), 0);
  assert_staged_equals(h2, want, 256 * KiB);
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.shared_blocks, 0);
  assert_int_equal(st.stage_copied_bytes, 512 * KiB);
  strata_staged_release(h1);
  strata_staged_release(h2);
  strata_read_end(&txn);
  strata_store_close(s);
  free(want);
  free(rep);
}

/* A snapshot that sees new content stages it anew; a hold on the old
 * copy keeps showing the old content. */
static void test_replaced_content(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn old_txn, txn;
  assert_int_equal(strata_read_begin(s, &old_txn), 0);
  strata_staged *old_h, *h;
  assert_int_equal(strata_stage(&old_txn, 1, 3, &old_h), 0);
  strata_proto *p;
  assert_int_equal(strata_proto_open(s, 1, &p), 0);
  test_put(p, 3, 300 * KiB, 333);
  assert_int_equal(strata_read_begin(s, &txn), 0);
  assert_int_equal(strata_stage(&txn, 1, 3, &h), 0);
  uint8_t *want_new = test_content(300 * KiB, 333),
          *want_old = test_content(sizes[3], 3);
  assert_staged_equals(h, want_new, 300 * KiB);
  assert_staged_equals(old_h, want_old, sizes[3]);
  strata_staged_release(old_h);
  strata_read_end(&old_txn);
  /* Crystallized, the same content is still the staged copy. */
  strata_read_end(&txn);
  strata_staged_release(h);
  assert_int_equal(strata_crystallize(s, 1), 0);
  strata_staging_stats a, b;
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(strata_read_begin(s, &txn), 0);
  assert_int_equal(strata_stage(&txn, 1, 3, &h), 0);
  assert_staged_equals(h, want_new, 300 * KiB);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.stage_copied_bytes, a.stage_copied_bytes);
  strata_staged_release(h);
  strata_read_end(&txn);
  free(want_new);
  free(want_old);
  strata_store_close(s);
}

/* The fixture with a 4 MiB pool and one stream: 64 blocks of 64 KiB, 8
 * of them pack buffers, 56 for layers; region 5 is a new proto, *p, with
 * layers i < n of 256 KiB (4 blocks each) and seed seed0 + i. */
static strata_store *open_small_pool(strata_proto **p, uint64_t n,
                                     uint64_t seed0) {
  strata_store_config c = staging_config(4 * MiB);
  c.staging.streams = 1;
  strata_store *s = open_fixture(&c, NULL);
  assert_int_equal(strata_proto_create(s, 5, "small", 5, NULL, p), 0);
  for (uint64_t i = 0; i < n; i++)
    test_put(*p, i, 256 * KiB, seed0 + i);
  return s;
}

/* A small pool: staging more than fits evicts idle layers, never a held
 * one; with every block held, staging fails and changes nothing. */
static void test_eviction(void **state) {
  (void)state;
  strata_proto *p;
  strata_store *s = open_small_pool(&p, 40, 1000);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *held;
  assert_int_equal(strata_stage(&txn, 5, 0, &held), 0);
  for (uint64_t i = 1; i < 40; i++) {
    strata_staged *h;
    assert_int_equal(strata_stage(&txn, 5, i, &h), 0);
    uint8_t *want = test_content(256 * KiB, 1000 + i);
    assert_staged_equals(h, want, 256 * KiB);
    free(want);
    strata_staged_release(h);
  }
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_true(st.evictions > 0);
  assert_true(st.staged_layers < 40);
  uint8_t *want0 = test_content(256 * KiB, 1000);
  assert_staged_equals(held, want0, 256 * KiB); /* never evicted */

  /* Fill the rest with holds; then one more layer cannot be staged. */
  strata_staged *hs[40];
  int nh = 0;
  int rc = 0;
  for (uint64_t i = 1; i < 40 && rc == 0; i++) {
    rc = strata_stage(&txn, 5, i, &hs[nh]);
    if (rc == 0)
      nh++;
  }
  assert_int_equal(rc, STRATA_E_LIMIT);
  assert_non_null(strstr(strata_last_error_detail(), "held or in transfer"));
  strata_staging_stats after;
  assert_int_equal(strata_staging_stats_get(s, &after), 0);
  assert_int_equal(after.blocks_used, after.blocks);
  for (int i = 0; i < nh; i++)
    strata_staged_release(hs[i]);
  strata_staged_release(held);
  /* The watermark: a tick brings the blocks layers may use (all but the
   * 8 of the pack buffers) down to high - evict = 60 %. */
  assert_int_equal(strata_staging_tick(s), 0);
  assert_int_equal(strata_staging_stats_get(s, &after), 0);
  assert_true(after.blocks_used <= 8 + (after.blocks - 8) * 60 / 100);
  assert_true(after.blocks_used > 8);
  free(want0);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* In a full pool (no free block to copy into first), content that is
 * staged already is still shared, and makes nothing evict; new content
 * evicts only for its own blocks. */
static void test_share_when_full(void **state) {
  (void)state;
  strata_proto *p;
  strata_store *s = open_small_pool(&p, 14, 2000); /* all 56 blocks */
  test_put(p, 20, 256 * KiB, 2003);                /* layer 3's content */
  /* Layer 4's first two pages, then two pages of new content. */
  uint8_t *mix = test_content(256 * KiB, 2004);
  test_fill_seeded(mix + 128 * KiB, 128 * KiB, 77);
  assert_int_equal(strata_proto_put(p, 21, NULL, 0, NULL, mix, 256 * KiB), 0);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h;
  for (uint64_t i = 0; i < 14; i++) {
    assert_int_equal(strata_stage(&txn, 5, i, &h), 0);
    strata_staged_release(h);
  }
  strata_staging_stats a, b;
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(a.blocks_used, a.blocks);
  assert_int_equal(a.evictions, 0);
  assert_int_equal(strata_stage(&txn, 5, 20, &h), 0);
  uint8_t *want = test_content(256 * KiB, 2003);
  assert_staged_equals(h, want, 256 * KiB);
  strata_staged_release(h);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.evictions, 0);
  assert_int_equal(b.dedup_hits, a.dedup_hits + 4);
  assert_int_equal(b.stage_copied_bytes, a.stage_copied_bytes);
  assert_int_equal(strata_stage(&txn, 5, 21, &h), 0);
  assert_staged_equals(h, mix, 256 * KiB);
  strata_staged_info info;
  assert_int_equal(strata_staged_info_get(h, &info), 0);
  assert_int_equal(info.shared_blocks, 2);
  strata_staged_release(h);
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(a.evictions, 1); /* one layer of 4 blocks, for 2 */
  assert_int_equal(a.dedup_hits, b.dedup_hits + 2);
  assert_int_equal(a.stage_copied_bytes, b.stage_copied_bytes + 128 * KiB);
  assert_int_equal(a.blocks_used, a.blocks - 2);
  free(want);
  free(mix);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* A stage that fails partway (a page shared, a page copied, then no room
 * for the next) leaves the pool and its counters as they were; sharing
 * in a full pool counts no allocation failure. */
static void test_failed_stage_counts_nothing(void **state) {
  (void)state;
  strata_proto *p;
  strata_store *s = open_small_pool(&p, 13, 3000); /* 52 blocks */
  test_put(p, 13, 192 * KiB, 3013); /* 3 blocks: 55 of the 56 held */
  /* Layer 0's first page, then two pages of new content. */
  uint8_t *mix = test_content(192 * KiB, 3000);
  test_fill_seeded(mix + 64 * KiB, 128 * KiB, 88);
  assert_int_equal(strata_proto_put(p, 20, NULL, 0, NULL, mix, 192 * KiB), 0);
  test_put(p, 21, 64 * KiB, 3001); /* layer 1's first page */
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *held[14];
  for (uint64_t i = 0; i < 14; i++)
    assert_int_equal(strata_stage(&txn, 5, i, &held[i]), 0);
  strata_staging_stats a, b;
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(a.blocks_free, 1);
  /* Shared, in a pool with one free block: no failure counted. */
  strata_staged *h, *h21; /* h21 held: nothing can be evicted below */
  assert_int_equal(strata_stage(&txn, 5, 21, &h21), 0);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.alloc_failures, a.alloc_failures);
  assert_int_equal(b.dedup_hits, a.dedup_hits + 1);
  assert_int_equal(b.stage_copied_bytes, a.stage_copied_bytes);
  /* Page 0 shared, page 1 takes the last block, page 2 finds none. */
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(strata_stage(&txn, 5, 20, &h), STRATA_E_LIMIT);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.blocks_used, a.blocks_used);
  assert_int_equal(b.staged_layers, a.staged_layers);
  assert_int_equal(b.staged_bytes, a.staged_bytes);
  assert_int_equal(b.shared_blocks, a.shared_blocks);
  assert_int_equal(b.dedup_hits, a.dedup_hits);
  assert_int_equal(b.dedup_bytes, a.dedup_bytes);
  assert_int_equal(b.stage_copied_bytes, a.stage_copied_bytes);
  assert_int_equal(b.stage_calls, a.stage_calls);
  /* With room, the same layer stages: one page shared, two copied. */
  for (int i = 1; i < 14; i++)
    strata_staged_release(held[i]);
  assert_int_equal(strata_stage(&txn, 5, 20, &h), 0);
  assert_staged_equals(h, mix, 192 * KiB);
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(a.dedup_hits, b.dedup_hits + 1);
  assert_int_equal(a.stage_copied_bytes, b.stage_copied_bytes + 128 * KiB);
  strata_staged_release(h);
  strata_staged_release(h21);
  strata_staged_release(held[0]);
  free(mix);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* Random staging, partial staging, holds, trims and ticks in a small pool,
 * over layers built from a bank of 100 page contents, each layer's first
 * page one of only 4 (so that pages share blocks within and across layers,
 * and the pool is often full): every
 * hold shows its layer's bytes, failures are only STRATA_E_LIMIT, and once
 * everything is released and trimmed the pool is empty again, with every
 * block back (no reference lost or left behind). */
#define RND_LAYERS 24
#define RND_BANK 100
static void test_random_ops(void **state) {
  (void)state;
  uint8_t *bank[RND_BANK];
  for (int k = 0; k < RND_BANK; k++)
    bank[k] = test_content(64 * KiB, 4000 + k);
  uint8_t *want[RND_LAYERS];
  size_t wsize[RND_LAYERS];
  strata_proto *p;
  strata_store *s = open_small_pool(&p, 0, 0);
  uint64_t seed = 0xfeed;
  for (int i = 0; i < RND_LAYERS; i++) {
    /* 1..10 pages; the last one may be short. */
    uint32_t pages = 1 + (uint32_t)(test_splitmix(&seed) % 10);
    size_t tail = test_splitmix(&seed) % 2
                      ? 64 * KiB
                      : 1 + test_splitmix(&seed) % (64 * KiB);
    wsize[i] = (pages - 1) * 64 * KiB + tail;
    want[i] = malloc(wsize[i]);
    assert_non_null(want[i]);
    for (uint32_t g = 0; g < pages; g++)
      memcpy(want[i] + g * 64 * KiB,
             bank[test_splitmix(&seed) % (g == 0 ? 4 : RND_BANK)],
             g + 1 < pages ? 64 * KiB : tail);
    assert_int_equal(
        strata_proto_put(p, (uint64_t)i, NULL, 0, NULL, want[i], wsize[i]), 0);
  }
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *held[32] = {0};
  int limits = 0, staged = 0;
  for (int step = 0; step < 3000; step++) {
    uint32_t op = (uint32_t)(test_splitmix(&seed) % 100);
    int i = (int)(test_splitmix(&seed) % RND_LAYERS);
    if (op < 60) {
      uint64_t pages = wsize[i] / (64 * KiB) + (wsize[i] % (64 * KiB) != 0);
      uint64_t first = op < 20 ? test_splitmix(&seed) % pages : 0;
      uint64_t n = op < 20 ? 1 + test_splitmix(&seed) % pages : pages;
      strata_staged *h;
      int rc = strata_stage_part(&txn, 5, (uint64_t)i, first, n, &h);
      if (rc == STRATA_E_LIMIT) {
        limits++;
        continue;
      }
      assert_int_equal(rc, 0);
      staged++;
      strata_staged_info info;
      assert_int_equal(strata_staged_info_get(h, &info), 0);
      assert_int_equal(info.offset, first * 64 * KiB);
      assert_staged_equals(h, want[i] + info.offset, info.size);
      int slot = (int)(test_splitmix(&seed) % 40);
      if (slot < 32 && held[slot] == NULL)
        held[slot] = h;
      else
        strata_staged_release(h);
    } else if (op < 68) {
      int slot = (int)(test_splitmix(&seed) % 32);
      strata_staged_release(held[slot]);
      held[slot] = NULL;
    } else if (op < 80) {
      assert_true(strata_staging_trim(s, test_splitmix(&seed) % (4 * MiB)) >=
                  0);
    } else {
      assert_true(strata_staging_tick(s) >= 0);
    }
    strata_staging_stats st;
    assert_int_equal(strata_staging_stats_get(s, &st), 0);
    assert_true(st.blocks_used <= st.blocks);
    assert_true(st.shared_blocks <= st.blocks_used);
  }
  /* The steps did both: stage, and run out of room. */
  assert_true(staged > 1000);
  assert_true(limits > 0);
  for (int k = 0; k < 32; k++)
    strata_staged_release(held[k]);
  strata_staging_stats st;
  assert_int_equal(strata_staging_trim(s, 0) >= 0, 1);
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.staged_layers, 0);
  assert_int_equal(st.staged_bytes, 0);
  assert_int_equal(st.shared_blocks, 0);
  assert_int_equal(st.blocks_used, 8); /* the pack buffers */
  assert_int_equal(st.largest_free_run, st.blocks - 8);
  strata_read_end(&txn);
  strata_store_close(s);
  for (int i = 0; i < RND_LAYERS; i++)
    free(want[i]);
  for (int k = 0; k < RND_BANK; k++)
    free(bank[k]);
}

/* Trimming evicts idle layers down to what it is asked to keep, never a
 * held one; staging again after a trim copies the content again. */
static void test_trim(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *held, *h;
  assert_int_equal(strata_stage(&txn, 1, 3, &held), 0); /* 5 blocks */
  for (uint64_t i = 0; i < 4; i++) {                    /* 3 blocks each */
    assert_int_equal(strata_stage(&txn, 2, i, &h), 0);
    strata_staged_release(h);
  }
  strata_staging_stats a, b;
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(a.staged_layers, 5);
  uint64_t fixed = a.blocks_used - 5 - 4 * 3; /* the pack buffers */
  /* Keeping 11 blocks' worth: two of the idle layers go (CLOCK order). */
  assert_int_equal(strata_staging_trim(s, 11 * 64 * KiB + 100), 2);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.blocks_used, fixed + 5 + 2 * 3);
  assert_int_equal(b.evictions, a.evictions + 2);
  /* Keeping nothing: all the idle ones go; the held one stays. */
  assert_int_equal(strata_staging_trim(s, 0), 2);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.staged_layers, 1);
  assert_int_equal(b.blocks_used, fixed + 5);
  assert_int_equal(strata_staging_trim(s, 0), 0);
  uint8_t *want = test_content(sizes[3], 3);
  assert_staged_equals(held, want, sizes[3]);
  free(want);
  strata_staged_release(held);
  assert_int_equal(strata_staging_trim(s, 0), 1);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.staged_layers, 0);
  assert_int_equal(b.blocks_used, fixed);
  /* Staged again: copied again, the same bytes. */
  assert_int_equal(strata_staging_stats_get(s, &a), 0);
  assert_int_equal(strata_stage(&txn, 2, 1, &h), 0);
  want = test_content(3 * 64 * KiB, 101);
  assert_staged_equals(h, want, 3 * 64 * KiB);
  free(want);
  strata_staged_release(h);
  assert_int_equal(strata_staging_stats_get(s, &b), 0);
  assert_int_equal(b.stage_copied_bytes, a.stage_copied_bytes + 3 * 64 * KiB);
  strata_read_end(&txn);
  strata_store_close(s);
}

static void read_many(strata_store *s, uint64_t region, uint64_t layer, int n) {
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  for (int i = 0; i < n; i++) {
    strata_layer l;
    assert_int_equal(strata_get(&txn, region, layer, &l), 0);
  }
  strata_read_end(&txn);
}

static void test_hot_tick(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  c.staging.sample_period = 1;
  c.staging.hot_threshold = 8;
  strata_store *s = open_fixture(&c, NULL);
  read_many(s, 1, 3, 5); /* below the threshold */
  assert_int_equal(strata_staging_tick(s), 0);
  read_many(s, 1, 3, 5);
  read_many(s, 1, 0, 1);
  assert_int_equal(strata_staging_tick(s), 1);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.hot_layers, 1);
  assert_int_equal(st.hot_bytes, sizes[3]);
  assert_int_equal(st.samples, 11);
  /* Hot, so staging it copies nothing. */
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h;
  assert_int_equal(strata_stage(&txn, 1, 3, &h), 0);
  strata_staging_stats st2;
  assert_int_equal(strata_staging_stats_get(s, &st2), 0);
  assert_int_equal(st2.stage_copied_bytes, st.stage_copied_bytes);
  strata_staged_release(h);
  strata_read_end(&txn);

  /* The budget: a layer larger than what is left is not staged. */
  strata_store_close(s);
  c.staging.hot_budget = 1 * MiB;
  s = open_fixture(&c, NULL);
  read_many(s, 1, 4, 10); /* 2 MiB */
  read_many(s, 1, 3, 10); /* 300 KiB */
  assert_int_equal(strata_staging_tick(s), 1);
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.hot_bytes, sizes[3]);
  strata_store_close(s);
}

static void test_hot_worker(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  c.staging.flags = STRATA_STAGING_HOST; /* with the worker */
  c.staging.sample_period = 1;
  strata_store *s = open_fixture(&c, NULL);
  strata_staging_stats st = {0};
  for (int i = 0; i < 500 && st.hot_layers == 0; i++) {
    read_many(s, 2, 1, 16);
    usleep(10000);
    assert_int_equal(strata_staging_stats_get(s, &st), 0);
  }
  assert_int_equal(st.hot_layers, 1);
  strata_store_close(s);
}

static void test_to_device(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  assert_null(strata_stream_native(ss)); /* host mode */
  strata_event *ev;
  assert_int_equal(strata_event_create(s, &ev), 0);
  assert_int_equal(strata_event_query(ev), 1); /* never recorded */
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  for (uint64_t i = 0; i < NSIZES; i++) {
    strata_staged *h;
    assert_int_equal(strata_stage(&txn, 1, i, &h), 0);
    void *dev = NULL;
    assert_int_equal(strata_device_alloc(s, sizes[i] + 1, ss, &dev), 0);
    assert_true(((uintptr_t)dev % 256) == 0);
    assert_int_equal(strata_stage_to_device(h, dev, ss), 0);
    strata_staged_release(h); /* the copy keeps the blocks */
    assert_int_equal(strata_event_record(ev, ss), 0);
    assert_int_equal(strata_event_sync(ev), 0);
    assert_int_equal(strata_event_query(ev), 1);
    uint8_t *back = malloc(sizes[i] + 1);
    assert_int_equal(strata_device_read(ss, back, dev, sizes[i]), 0);
    assert_int_equal(strata_stream_sync(ss), 0);
    uint8_t *want = test_content(sizes[i], i);
    assert_memory_equal(back, want, sizes[i]);
    free(want);
    free(back);
    assert_int_equal(strata_device_free(s, dev, ss), 0);
  }
  assert_int_equal(strata_stream_sync(ss), 0);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.transfers_in_flight, 0);
  assert_true(st.transfers >= NSIZES - 1);
  assert_int_equal(st.device_bytes, 0);
  strata_read_end(&txn);
  strata_event_destroy(ev);
  strata_stream_destroy(ss);
  strata_store_close(s);
}

/* strata_stream_adopt() in host mode: there is no native stream type, so
 * every handle is refused with STRATA_E_STATE and a detail that says the
 * pool runs in host mode and why; argument errors come first and are
 * STRATA_E_INVAL. A refusal leaves *out NULL, allocates nothing that
 * stays (ASan), and leaves the pool's streams working. */
static void test_stream_adopt_host(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_string_equal(st.backend, "host");
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  /* What strata_stream_native() gives in host mode, NULL, is no handle. */
  assert_null(strata_stream_native(ss));
  strata_stream *out = (strata_stream *)1;
  assert_int_equal(strata_stream_adopt(s, strata_stream_native(ss), &out),
                   STRATA_E_INVAL);
  assert_null(out);
  assert_non_null(
      strstr(strata_last_error_detail(), "adopting a NULL native stream"));
  /* Any other handle: refused as host mode, naming the reason the pool
   * gives in its state dump. */
  int not_a_stream;
  out = (strata_stream *)1;
  assert_int_equal(strata_stream_adopt(s, &not_a_stream, &out), STRATA_E_STATE);
  assert_null(out);
  const char *why = strata_last_error_detail();
  assert_non_null(strstr(why, "the staging pool runs in host mode ("));
  assert_non_null(strstr(why, "which has no native streams"));
  char *dump;
  assert_int_equal(strata_dump_state(s, 0, &dump), 0);
  json_error_t jerr;
  json_t *doc = json_loads(dump, 0, &jerr);
  assert_non_null(doc);
  const char *reason = json_string_value(
      json_object_get(json_object_get(doc, "staging"), "host_reason"));
  assert_non_null(reason);
  assert_true(strlen(reason) > 0);
  char want[320];
  snprintf(want, sizeof want, "host mode (%s)", reason);
  assert_non_null(strstr(why, want));
  json_decref(doc);
  strata_free(dump);
  /* Argument errors. */
  assert_int_equal(strata_stream_adopt(s, &not_a_stream, NULL), STRATA_E_INVAL);
  assert_non_null(
      strstr(strata_last_error_detail(), "strata_stream_adopt: NULL out"));
  out = (strata_stream *)1;
  assert_int_equal(strata_stream_adopt(NULL, &not_a_stream, &out),
                   STRATA_E_INVAL);
  assert_null(out);
  assert_non_null(
      strstr(strata_last_error_detail(), "strata_stream_adopt: NULL store"));
  /* The refusals changed nothing: the created stream still carries a
   * staged transfer, and no device memory is left allocated. */
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h;
  assert_int_equal(strata_stage(&txn, 1, 3, &h), 0);
  void *dev;
  assert_int_equal(strata_device_alloc(s, sizes[3], ss, &dev), 0);
  assert_int_equal(strata_stage_to_device(h, dev, ss), 0);
  strata_staged_release(h);
  uint8_t *back = malloc(sizes[3]);
  assert_non_null(back);
  assert_int_equal(strata_device_read(ss, back, dev, sizes[3]), 0);
  assert_int_equal(strata_stream_sync(ss), 0);
  uint8_t *want_bytes = test_content(sizes[3], 3);
  assert_memory_equal(back, want_bytes, sizes[3]);
  free(want_bytes);
  free(back);
  assert_int_equal(strata_device_free(s, dev, ss), 0);
  strata_read_end(&txn);
  strata_stream_destroy(ss);
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.device_bytes, 0);
  assert_int_equal(st.transfers_in_flight, 0);
  strata_store_close(s);
}

static void test_path_batch(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  /* Layer 4 (2 MiB) staged: it goes straight from its blocks. */
  strata_staged *h;
  assert_int_equal(strata_stage(&txn, 1, 4, &h), 0);
  strata_staged_release(h);
  strata_layer_ref path[] = {{1, 0}, {1, 4}, {2, 1}, {1, 5}, {1, 3},
                             {1, 1}, {2, 0}, {1, 6}, {1, 2}, {1, 0}};
  size_t n = sizeof path / sizeof path[0];
  uint64_t need;
  assert_int_equal(strata_stage_path_size(&txn, path, n, &need), 0);
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  void *dev;
  assert_int_equal(strata_device_alloc(s, need, ss, &dev), 0);
  uint64_t offs[10];
  assert_int_equal(
      strata_stage_path_to_device(&txn, path, n, dev, need - 1, offs, ss),
      STRATA_E_BOUNDS);
  strata_layer_ref bad[] = {{1, 0}, {1, 77}};
  assert_int_equal(
      strata_stage_path_to_device(&txn, bad, 2, dev, need, offs, ss),
      STRATA_E_NOT_FOUND);
  assert_non_null(strstr(strata_last_error_detail(), "path step 1"));
  assert_int_equal(
      strata_stage_path_to_device(&txn, path, n, dev, need, offs, ss), 0);
  uint8_t *back = malloc(need);
  assert_int_equal(strata_device_read(ss, back, dev, need), 0);
  assert_int_equal(strata_stream_sync(ss), 0);
  uint64_t expect = 0;
  for (size_t i = 0; i < n; i++) {
    expect = (expect + STRATA_DEVICE_ALIGN - 1) & ~(uint64_t)127;
    assert_int_equal(offs[i], expect);
    strata_layer l;
    assert_int_equal(strata_get(&txn, path[i].region_id, path[i].layer_id, &l),
                     0);
    assert_memory_equal(back + offs[i], l.data, l.size);
    expect += l.size;
  }
  assert_int_equal(expect, need);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.batches, 1);
  assert_true(st.packed_copies >= 2);
  free(back);
  assert_int_equal(strata_device_free(s, dev, ss), 0);
  assert_int_equal(strata_stream_sync(ss), 0);
  strata_stream_destroy(ss);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* A batch is ordered after the work already on the caller's stream (the
 * buffer may be allocated there, or still be read by earlier work): with
 * the caller's stream held up, nothing may reach the buffer. */
static void hold_stream(void *arg) {
  _Atomic int *go = arg;
  while (!atomic_load(go))
    usleep(1000);
}

static void test_path_after_callers_work(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  /* Less than the pack buffers hold (6 x 256 KiB): a longer path would
   * wait, in the call, for a buffer whose copy waits for the stream. */
  strata_layer_ref path[] = {{1, 0}, {1, 3}, {2, 1}, {1, 6}};
  uint64_t need, offs[4];
  assert_int_equal(strata_stage_path_size(&txn, path, 4, &need), 0);
  assert_true(need < 6 * 256 * KiB);
  void *dev;
  assert_int_equal(strata_device_alloc(s, need, NULL, &dev), 0);
  memset(dev, 0xAB, need);
  _Atomic int go = 0;
  assert_int_equal(strata__dstream_host_fn(ss->xs, hold_stream, &go), 0);
  assert_int_equal(
      strata_stage_path_to_device(&txn, path, 4, dev, need, offs, ss), 0);
  usleep(50000);
  for (uint64_t i = 0; i < need; i++)
    if (((uint8_t *)dev)[i] != 0xAB)
      fail_msg("byte %llu written before the caller's stream got there",
               (unsigned long long)i);
  atomic_store(&go, 1);
  assert_int_equal(strata_stream_sync(ss), 0);
  for (int i = 0; i < 4; i++) {
    strata_layer l;
    assert_int_equal(strata_get(&txn, path[i].region_id, path[i].layer_id, &l),
                     0);
    assert_memory_equal((uint8_t *)dev + offs[i], l.data, l.size);
  }
  assert_int_equal(strata_device_free(s, dev, ss), 0);
  assert_int_equal(strata_stream_sync(ss), 0);
  strata_read_end(&txn);
  strata_stream_destroy(ss);
  strata_store_close(s);
}

/* STRATA_STAGING_DIRECT in host mode: registration is not possible, so
 * the batch falls back to staging and the bytes still arrive; replacing
 * the region file (which unmaps the old one) stays safe. */
static void test_direct_fallback(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  c.staging.flags |= STRATA_STAGING_DIRECT;
  strata_store *s = open_fixture(&c, NULL);
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  for (int round = 0; round < 2; round++) {
    strata_txn txn;
    assert_int_equal(strata_read_begin(s, &txn), 0);
    strata_layer_ref path[] = {{1, 4}, {1, 0}, {1, 4}};
    uint64_t need, offs[3];
    assert_int_equal(strata_stage_path_size(&txn, path, 3, &need), 0);
    void *dev;
    assert_int_equal(strata_device_alloc(s, need, ss, &dev), 0);
    assert_int_equal(
        strata_stage_path_to_device(&txn, path, 3, dev, need, offs, ss), 0);
    assert_int_equal(strata_stream_sync(ss), 0);
    for (int i = 0; i < 3; i++) {
      strata_layer l;
      assert_int_equal(strata_get(&txn, 1, path[i].layer_id, &l), 0);
      assert_memory_equal((uint8_t *)dev + offs[i], l.data, l.size);
    }
    assert_int_equal(strata_device_free(s, dev, ss), 0);
    strata_read_end(&txn);
    strata_proto *p;
    assert_int_equal(strata_proto_open(s, 1, &p), 0);
    test_put(p, 4, 2 * MiB, 44 + (uint64_t)round);
    assert_int_equal(strata_crystallize(s, 1), 0);
    assert_int_equal(strata_store_reclaim(s, 1), 0);
  }
  strata_stream_destroy(ss);
  strata_store_close(s);
}

/* Reads a device layer back (host mode: after the stream's work). */
static void assert_device_layer(strata_stream *ss, strata_device_layer *dl,
                                const void *want, uint64_t size) {
  assert_int_equal(strata_device_layer_size(dl), size);
  uint8_t *back = malloc(size ? size : 1);
  assert_int_equal(
      strata_device_read(ss, back, strata_device_layer_ptr(dl), size), 0);
  assert_int_equal(strata_stream_sync(ss), 0);
  assert_memory_equal(back, want, size);
  free(back);
}

static void test_device_cache(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_stream *ss, *other;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  assert_int_equal(strata_stream_create(s, &other), 0);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_device_layer *dl;
  assert_int_equal(strata_device_cache_get(&txn, 1, 0, ss, &dl),
                   STRATA_E_STATE); /* no cache configured */
  assert_null(dl);
  strata_read_end(&txn);
  strata_stream_destroy(ss);
  strata_stream_destroy(other);
  strata_store_close(s);

  c.staging.device_cache_bytes = 1 * MiB;
  s = open_fixture(&c, NULL);
  assert_int_equal(strata_stream_create(s, &ss), 0);
  assert_int_equal(strata_stream_create(s, &other), 0);
  assert_int_equal(strata_read_begin(s, &txn), 0);
  /* Region 2's layers 0..3 (192 KiB each), read in order: 1 is a
   * sequential read, so 2 is prefetched, and so on. */
  for (uint64_t i = 0; i < 4; i++) {
    assert_int_equal(
        strata_device_cache_get(&txn, 2, i, i % 2 ? other : ss, &dl), 0);
    uint8_t *want = test_content(3 * 64 * KiB, 100 + i);
    assert_device_layer(i % 2 ? other : ss, dl, want, 3 * 64 * KiB);
    free(want);
    strata_device_layer_release(dl);
  }
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.dcache_misses, 2);     /* 0 and 1 */
  assert_int_equal(st.dcache_prefetches, 2); /* 2 and 3 */
  assert_int_equal(st.dcache_hits, 2);
  assert_int_equal(st.dcache_layers, 4);
  assert_true(st.dcache_bytes <= 1 * MiB);

  /* Over the budget: held entries stay, idle ones go. */
  strata_device_layer *held;
  assert_int_equal(strata_device_cache_get(&txn, 1, 3, ss, &held), 0);
  for (uint64_t i = 0; i < 4; i++) {
    assert_int_equal(strata_device_cache_get(&txn, 2, i, ss, &dl), 0);
    strata_device_layer_release(dl);
  }
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_true(st.dcache_evictions > 0);
  assert_true(st.dcache_bytes <= 1 * MiB);
  uint8_t *want3 = test_content(sizes[3], 3);
  assert_device_layer(ss, held, want3, sizes[3]);
  /* Too large for the cache at all. */
  assert_int_equal(strata_device_cache_get(&txn, 1, 4, ss, &dl),
                   STRATA_E_LIMIT);
  strata_read_end(&txn);

  /* New content for a held layer: the old hold keeps the old bytes, a
   * new get copies the new ones. */
  strata_proto *p;
  assert_int_equal(strata_proto_open(s, 1, &p), 0);
  test_put(p, 3, 100 * KiB, 77);
  assert_int_equal(strata_read_begin(s, &txn), 0);
  assert_int_equal(strata_device_cache_get(&txn, 1, 3, ss, &dl), 0);
  uint8_t *want77 = test_content(100 * KiB, 77);
  assert_device_layer(ss, dl, want77, 100 * KiB);
  assert_device_layer(ss, held, want3, sizes[3]);
  strata_device_layer_release(held);
  strata_device_layer_release(dl);
  strata_read_end(&txn);
  free(want3);
  free(want77);
  strata_stream_destroy(ss);
  strata_stream_destroy(other);
  strata_store_close(s);
}

/* Default pack buffers (2 MiB) are larger than the 1 MiB from which a
 * staged layer is copied straight from its blocks: the small layers
 * around such a layer must not be packed into one copy that spans it. */
static void test_path_around_direct_copy(void **state) {
  (void)state;
  strata_store_config c = staging_config(64 * MiB);
  c.staging.pack_bytes = 0; /* the default */
  strata_store *s = open_fixture(&c, NULL);
  strata_proto *p;
  assert_int_equal(strata_proto_create(s, 3, "mid", 3, NULL, &p), 0);
  test_put(p, 1, 3 * MiB / 2, 31); /* 1.5 MiB: direct, but less than a buffer */
  strata_stream *ss;
  assert_int_equal(strata_stream_create(s, &ss), 0);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h;
  assert_int_equal(strata_stage(&txn, 3, 1, &h), 0);
  strata_staged_release(h);
  strata_layer_ref path[] = {{1, 0}, {3, 1}, {1, 6}, {3, 1}, {2, 0}};
  uint64_t need, offs[5];
  assert_int_equal(strata_stage_path_size(&txn, path, 5, &need), 0);
  void *dev;
  assert_int_equal(strata_device_alloc(s, need, ss, &dev), 0);
  for (int round = 0; round < 10; round++) {
    memset(dev, 0xAB, need);
    assert_int_equal(
        strata_stage_path_to_device(&txn, path, 5, dev, need, offs, ss), 0);
    assert_int_equal(strata_stream_sync(ss), 0);
    for (int i = 0; i < 5; i++) {
      strata_layer l;
      assert_int_equal(
          strata_get(&txn, path[i].region_id, path[i].layer_id, &l), 0);
      assert_memory_equal((uint8_t *)dev + offs[i], l.data, l.size);
    }
  }
  assert_int_equal(strata_device_free(s, dev, ss), 0);
  strata_read_end(&txn);
  strata_stream_destroy(ss);
  strata_store_close(s);
}

/* strata_store_close() waits for open snapshots; a reader still in one
 * keeps sampling into its ring, so the pool must outlive it. */
typedef struct late_reader {
  strata_store *s;
  _Atomic int began, closed;
} late_reader;

static void *late_reader_main(void *p) {
  late_reader *a = p;
  strata_txn txn;
  assert_int_equal(strata_read_begin(a->s, &txn), 0);
  atomic_store(&a->began, 1);
  usleep(50000); /* close is waiting by now */
  for (int i = 0; i < 1000; i++) {
    strata_layer l;
    assert_int_equal(strata_get(&txn, 1, (uint64_t)i % NSIZES, &l), 0);
  }
  strata_read_end(&txn);
  /* A thread that used the store must not exit while close runs (its
   * reader slot is released at exit): see strata_store_close(). */
  while (!atomic_load(&a->closed))
    sched_yield();
  return NULL;
}

static void test_close_waits_for_reader(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  c.staging.sample_period = 1;
  c.staging.flags = STRATA_STAGING_HOST; /* the worker too */
  late_reader a = {.s = open_fixture(&c, NULL)};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, late_reader_main, &a), 0);
  while (!atomic_load(&a.began))
    sched_yield();
  strata_store_close(a.s);
  atomic_store(&a.closed, 1);
  pthread_join(t, NULL);
}

static void test_dump_and_metrics(void **state) {
  (void)state;
  strata_store_config c = staging_config(32 * MiB);
  strata_store *s = open_fixture(&c, NULL);
  strata_txn txn;
  assert_int_equal(strata_read_begin(s, &txn), 0);
  strata_staged *h;
  assert_int_equal(strata_stage(&txn, 1, 3, &h), 0);
  char *dump;
  assert_int_equal(strata_dump_state(s, 0, &dump), 0);
  json_error_t err;
  json_t *doc = json_loads(dump, 0, &err);
  assert_non_null(doc);
  json_t *sg = json_object_get(doc, "staging");
  assert_true(json_is_object(sg));
  assert_string_equal(json_string_value(json_object_get(sg, "backend")),
                      "host");
  /* The configuration asks for host mode (STRATA_STAGING_HOST); a library
   * built without CUDA gives that as the reason instead. */
  const char *why = json_string_value(json_object_get(sg, "host_reason"));
  assert_non_null(why);
  if (strcmp(why, "built without CUDA") != 0)
    assert_string_equal(why, "host mode requested");
  json_t *layers = json_object_get(sg, "layers");
  assert_int_equal(json_integer_value(json_object_get(layers, "staged")), 1);
  assert_int_equal(json_integer_value(json_object_get(layers, "staged_bytes")),
                   sizes[3]);
  assert_int_equal(json_array_size(json_object_get(sg, "slabs")), 1);
  json_decref(doc);
  strata_free(dump);
  char *text;
  assert_int_equal(strata_metrics_text(s, &text), 0);
  assert_non_null(strstr(text, "\nstrata_staging_layers 1\n"));
  assert_non_null(strstr(text, "strata_staging_blocks_used "));
  strata_free(text);
  strata_staged_release(h);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* Four threads stage, check, transfer and release random layers while a
 * writer replaces them (tests/common/staging_churn.h); the hot-layer
 * worker runs too. */
static void test_concurrent(void **state) {
  (void)state;
  strata_store_config c = staging_config(8 * MiB);
  c.staging.streams = 1;
  c.staging.flags = STRATA_STAGING_HOST; /* the worker runs too */
  c.staging.sample_period = 4;
  strata_store *s = open_fixture(&c, NULL);
  assert_true(churn_run(s, 6, 60) > 0);
  strata_staging_stats st;
  assert_int_equal(strata_staging_stats_get(s, &st), 0);
  assert_int_equal(st.transfers_in_flight, 0);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_pool),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_stage_layers),
      cmocka_unit_test(test_stage_part),
      cmocka_unit_test(test_shared_blocks),
      cmocka_unit_test(test_replaced_content),
      cmocka_unit_test(test_eviction),
      cmocka_unit_test(test_trim),
      cmocka_unit_test(test_share_when_full),
      cmocka_unit_test(test_failed_stage_counts_nothing),
      cmocka_unit_test(test_random_ops),
      cmocka_unit_test(test_hot_tick),
      cmocka_unit_test(test_hot_worker),
      cmocka_unit_test(test_to_device),
      cmocka_unit_test(test_stream_adopt_host),
      cmocka_unit_test(test_path_batch),
      cmocka_unit_test(test_path_around_direct_copy),
      cmocka_unit_test(test_path_after_callers_work),
      cmocka_unit_test(test_direct_fallback),
      cmocka_unit_test(test_device_cache),
      cmocka_unit_test(test_close_waits_for_reader),
      cmocka_unit_test(test_dump_and_metrics),
      cmocka_unit_test(test_concurrent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
