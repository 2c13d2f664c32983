/* A proto's memory (overlay.c): the arena its layer versions are taken
 * from, freed whole when the proto goes and chunk by chunk as superseded
 * versions are pruned; the history of its layer count, an array copied when
 * full that keeps what open snapshots read; and ebr.c freeing retired
 * objects oldest first, which a pruned version relies on to reach its
 * arena. Each case asserts through the public API: contents, layer counts
 * per snapshot and the heap figure of strata_store_stats_get(). */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <xxhash.h>

#include "test_util.h"

#include "store/store_internal.h"

static strata_store *open_store(const char *dir) {
  return test_open_store_quiet(dir);
}

static uint64_t heap(strata_store *s) {
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  return st.heap_bytes;
}

/* Discarding the proto and reclaiming gives the heap back to `before`. */
static void expect_discard_frees(strata_store *s, strata_proto *p,
                                 uint64_t before) {
  assert_strata_ok(strata_proto_discard(p));
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_int_equal(heap(s), before);
}

static uint64_t proto_bytes(strata_proto *p) {
  strata_proto_info pi;
  assert_strata_ok(strata_proto_info_get(p, &pi));
  return pi.bytes;
}

/* A store in a fresh directory (*dir), its heap figure before anything
 * (*before), and a new proto of region 1 named `name`. */
static strata_proto *fresh_proto(const char **dir, strata_store **s,
                                 uint64_t *before, const char *name) {
  *dir = test_tmpdir();
  *s = open_store(*dir);
  *before = heap(*s);
  strata_proto *p;
  assert_strata_ok(strata_proto_create(*s, 1, name, strlen(name), NULL, &p));
  return p;
}

/* The layer count of the store's only region as snapshot `t` sees it. */
static uint64_t layers_in(const strata_txn *t) {
  strata_store_region r;
  assert_strata_ok(strata_store_region_at(t, 0, &r));
  return r.layer_count;
}

/* Content of layer `id`, version `v`: `size` bytes from a seed of both. */
static void fill(uint8_t *p, size_t size, uint64_t id, uint64_t v) {
  test_fill_seeded(p, size, id * 1000003u + v);
}

static void expect_content(const strata_txn *t, uint64_t id, size_t size,
                           uint64_t v) {
  static uint8_t want[200000];
  assert_true(size <= sizeof want);
  fill(want, size, id, v);
  strata_layer l;
  int rc = strata_get(t, 1, id, &l);
  if (rc != 0)
    fail_msg("layer %" PRIu64 ": %s (%s)", id, strata_err_name(rc),
             strata_last_error_detail());
  assert_int_equal(l.size, size);
  assert_memory_equal(l.data, want, size);
  assert_int_equal(l.checksum, XXH3_64bits(want, size));
}

/* Snapshots taken between puts and removes each keep reading the layer
 * count of their moment while the history is copied many times over (it
 * starts with room for 63 changes), and once they end the copies keep only
 * the newest record. */
static void test_count_history_per_snapshot(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "counts");
  enum { SNAPS = 12, STEP = 37 };
  strata_txn t[SNAPS];
  uint64_t want[SNAPS], count = 0, id = 0;
  uint8_t b[8] = {0};
  for (int k = 0; k < SNAPS; k++) {
    assert_strata_ok(strata_read_begin(s, &t[k]));
    want[k] = count;
    /* STEP new layers, then a remove every other round. */
    for (int i = 0; i < STEP; i++, id++, count++)
      assert_strata_ok(strata_proto_put(p, id, NULL, 0, NULL, b, sizeof b));
    if (k % 2 == 1) {
      assert_strata_ok(strata_proto_remove(p, id - 5));
      count--;
    }
  }
  for (int k = 0; k < SNAPS; k++)
    assert_int_equal(layers_in(&t[k]), want[k]);
  strata_txn now;
  assert_strata_ok(strata_read_begin(s, &now));
  assert_int_equal(layers_in(&now), count);
  strata_read_end(&now);
  for (int k = 0; k < SNAPS; k++)
    strata_read_end(&t[k]);

  /* With no snapshot open, each copy keeps one record. */
  for (int i = 0; i < 400; i++, id++, count++)
    assert_strata_ok(strata_proto_put(p, id, NULL, 0, NULL, b, sizeof b));
  assert_strata_ok(strata_read_begin(s, &now));
  assert_int_equal(layers_in(&now), count);
  strata_read_end(&now);
  strata_store_close(s);
}

/* Overwriting one layer many times with no snapshot open: each superseded
 * version is pruned and freed, and so is every arena chunk once its last
 * version goes, so the heap stays near one chunk (1 MiB) instead of
 * growing with every put (40,000 x 256 B versions would hold 15 MB). The
 * newest version reads back, and discarding the proto returns the heap
 * to where it was before the proto. */
static void test_arena_chunks_freed_when_pruned(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "over");
  uint8_t b[256];
  uint64_t peak = 0;
  for (uint64_t v = 0; v < 40000; v++) {
    fill(b, sizeof b, 7, v);
    assert_strata_ok(strata_proto_put(p, 7, NULL, 0, NULL, b, sizeof b));
    uint64_t h = heap(s);
    peak = h > peak ? h : peak;
  }
  assert_true(peak - before < 4u << 20);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  expect_content(&t, 7, sizeof b, 39999);
  strata_read_end(&t);
  expect_discard_frees(s, p, before);
  strata_store_close(s);
}

/* Content sizes around the arena's limits (empty, around 64-byte
 * alignment, the largest kept inline, the smallest kept apart, one past
 * the pool's classes), with names and metadata, each overwritten while a
 * snapshot holds the first versions: both snapshots read their own
 * versions, crystallization writes the newest, the proto's memory is
 * freed once the old snapshot ends, and the crystallized store reads the
 * same. */
static void test_arena_sizes_and_snapshots(void **state) {
  (void)state;
  static const size_t sizes[] = {0,     1,     63,    64,     65,   300,
                                 4000,  16384, 16385, 100000, 256,  8192,
                                 16320, 16321, 12345, 70000,  4096, 2};
  enum { N = sizeof sizes / sizeof sizes[0] };
  static uint8_t b[200000];
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "sizes");
  for (uint64_t v = 0; v < 2; v++) {
    for (uint64_t i = 0; i < N; i++) {
      char name[32];
      snprintf(name, sizeof name, "n%" PRIu64 "-%" PRIu64, i, v);
      fill(b, sizes[i], i, v);
      assert_strata_ok(strata_proto_put(
          p, i, name, strlen(name), i % 3 ? NULL : "{\"m\":1}", b, sizes[i]));
    }
    if (v == 1)
      break;
    strata_txn old;
    assert_strata_ok(strata_read_begin(s, &old));
    /* Overwrite everything while `old` holds version 0. */
    for (uint64_t i = 0; i < N; i++) {
      char name[32];
      snprintf(name, sizeof name, "n%" PRIu64 "-1", i);
      fill(b, sizes[i], i, 1);
      assert_strata_ok(
          strata_proto_put(p, i, name, strlen(name), NULL, b, sizes[i]));
    }
    assert_strata_ok(strata_store_reclaim(s, 0));
    strata_txn t;
    assert_strata_ok(strata_read_begin(s, &t));
    for (uint64_t i = 0; i < N; i++) {
      expect_content(&old, i, sizes[i], 0);
      expect_content(&t, i, sizes[i], 1);
      strata_layer l;
      char name[32];
      snprintf(name, sizeof name, "n%" PRIu64 "-0", i);
      assert_strata_ok(strata_get_by_name(&old, 1, name, strlen(name), &l));
      assert_int_equal(l.id, i);
    }
    strata_read_end(&t);
    strata_read_end(&old);
  }
  /* Version 1 put again (the same bytes, other metadata). */
  assert_strata_ok(strata_crystallize(s, 1));
  expect_discard_frees(s, p, before);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  for (uint64_t i = 0; i < N; i++)
    expect_content(&t, i, sizes[i], 1);
  strata_read_end(&t);
  strata_store_close(s);

  /* And the file reads back the same in a fresh store. */
  s = open_store(dir);
  assert_strata_ok(strata_read_begin(s, &t));
  for (uint64_t i = 0; i < N; i++)
    expect_content(&t, i, sizes[i], 1);
  strata_read_end(&t);
  strata_store_close(s);
}

/* A snapshot held by another thread until told to end (a thread's nested
 * snapshots share its reader slot and its oldest epoch, so two snapshots
 * that end out of order need two threads). */
typedef struct holder {
  strata_store *s;
  pthread_t th;
  sem_t begun, end;
  strata_txn t;
} holder;

static void *hold(void *arg) {
  holder *h = arg;
  assert_strata_ok(strata_read_begin(h->s, &h->t));
  sem_post(&h->begun);
  sem_wait(&h->end);
  strata_read_end(&h->t);
  return NULL;
}

static void hold_begin(holder *h, strata_store *s) {
  h->s = s;
  sem_init(&h->begun, 0, 0);
  sem_init(&h->end, 0, 0);
  assert_int_equal(pthread_create(&h->th, NULL, hold, h), 0);
  sem_wait(&h->begun);
}

static void hold_end(holder *h) {
  sem_post(&h->end);
  pthread_join(h->th, NULL);
  sem_destroy(&h->begun);
  sem_destroy(&h->end);
}

/* A snapshot holds the versions a prune retires, and the proto that a
 * discard retires after them; when the snapshot ends both go in one
 * collection, the pruned versions first (ebr.c frees oldest first: a
 * pruned version's free updates its arena chunk, which the proto's free
 * releases). Freed the other way round, the pruned versions' frees would
 * read chunks already freed: the sanitizer builds report that. */
static void test_pruned_then_discarded_in_one_collection(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "order");
  uint8_t b[300];
  for (uint64_t i = 0; i < 64; i++) {
    fill(b, sizeof b, i, 0);
    assert_strata_ok(strata_proto_put(p, i, NULL, 0, NULL, b, sizeof b));
  }
  holder old, mid;
  hold_begin(&old, s);
  for (uint64_t i = 0; i < 64; i++) {
    fill(b, sizeof b, i, 1);
    assert_strata_ok(strata_proto_put(p, i, NULL, 0, NULL, b, sizeof b));
  }
  hold_begin(&mid, s);
  /* `old` still reads version 0 while the prune waits for it. */
  expect_content(&old.t, 5, sizeof b, 0);
  hold_end(&old);
  /* Version 0 is pruned now (no snapshot sees it), retired until `mid`
   * ends, and then the proto is retired after it. */
  assert_strata_ok(strata_store_reclaim(s, 0));
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_true(st.retired_objects >= 64);
  assert_strata_ok(strata_proto_discard(p));
  expect_content(&mid.t, 5, sizeof b, 1);
  hold_end(&mid);
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_int_equal(heap(s), before);
  strata_store_close(s);
}

/* The capacity of the layer count history of region `rid`'s proto, and
 * its records (*n). Writer side: no write call may run meanwhile. */
static uint64_t history_cap(strata_store *s, uint64_t rid, uint64_t *n) {
  const strata__entry *e = strata__catalog_find(
      atomic_load_explicit(&s->catalog, memory_order_acquire), rid);
  const strata__counts *a =
      atomic_load_explicit(&e->overlay->counts, memory_order_acquire);
  *n = atomic_load_explicit(&((strata__counts *)a)->n, memory_order_relaxed);
  return a->cap;
}

/* A thread that keeps taking short snapshots, each of which must read the
 * same layer count twice, never fewer layers than the one before (only
 * puts of new layers run meanwhile), until told to stop. */
typedef struct count_reader {
  strata_store *s;
  pthread_t th;
  atomic_bool stop;
  uint64_t reads;
} count_reader;

static void *read_counts(void *arg) {
  count_reader *r = arg;
  uint64_t last = 0;
  while (!atomic_load(&r->stop)) {
    strata_txn t;
    assert_strata_ok(strata_read_begin(r->s, &t));
    uint64_t a = layers_in(&t), b = layers_in(&t);
    strata_read_end(&t);
    assert_int_equal(a, b);
    assert_true(a >= last);
    last = a;
    r->reads++;
  }
  return NULL;
}

/* What a count history array of capacity `cap` takes from the heap. */
static uint64_t history_bytes(const strata_store *s, uint64_t cap) {
  return strata__pool_charge(s->pool, sizeof(strata__counts) +
                                          cap * sizeof(strata__count));
}

/* strata_store_reclaim() (no wait): the proto gives back `want` bytes,
 * and the heap that and what waited for the snapshots that ended (the
 * tables and arrays replaced meanwhile): nothing else. */
static void reclaim_gives_back(strata_store *s, strata_proto *p,
                               uint64_t want) {
  strata_store_stats st0, st1;
  assert_strata_ok(strata_store_stats_get(s, &st0));
  uint64_t bytes = proto_bytes(p);
  assert_strata_ok(strata_store_reclaim(s, 0));
  assert_strata_ok(strata_store_stats_get(s, &st1));
  assert_int_equal(bytes - proto_bytes(p), want);
  assert_int_equal(st0.heap_bytes - st1.heap_bytes,
                   want + (st0.retired_bytes - st1.retired_bytes));
}

/* A count history that grew while snapshots pinned its records shrinks
 * to what the remaining snapshots read as soon as they end, at the next
 * write call's maintenance (here strata_store_reclaim), not when it
 * fills up again: 6,000 changes under a snapshot grow it to 8,191
 * records (128 KiB, a large pool block); when that snapshot ends, the one
 * taken after 4,000 changes still reads 2,001 of them, which fit 4,095;
 * when it ends too, 63 (1 KiB), the heap down by the difference and by
 * what waited for the snapshots (the large array among it, as the heap
 * counts it). Each snapshot reads its own layer count throughout. Then rounds
 * of 700 changes under a snapshot, each ended before one more change, leave no
 * more than the first array behind, while another thread keeps reading the
 * count. Before, the array kept its size until it was full again. */
static void test_count_history_shrinks_when_snapshots_end(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before, n;
  strata_proto *p = fresh_proto(&dir, &s, &before, "shrink");
  uint8_t b[8] = {0};
  holder old, mid;
  hold_begin(&old, s);
  uint64_t id = 0;
  for (; id < 6000; id++) {
    if (id == 4000)
      hold_begin(&mid, s);
    assert_strata_ok(strata_proto_put(p, id, NULL, 0, NULL, b, sizeof b));
  }
  assert_int_equal(history_cap(s, 1, &n), 8191);
  assert_int_equal(n, 6000);
  hold_end(&old);
  /* The 64 KiB array for a 32 KiB one. */
  reclaim_gives_back(s, p, history_bytes(s, 8191) - history_bytes(s, 4095));
  assert_int_equal(history_cap(s, 1, &n), 4095);
  assert_int_equal(n, 2001); /* mid's record and those after it */
  assert_int_equal(layers_in(&mid.t), 4000);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(layers_in(&t), 6000);
  strata_read_end(&t);
  hold_end(&mid);
  reclaim_gives_back(s, p, history_bytes(s, 4095) - history_bytes(s, 63));
  assert_int_equal(history_cap(s, 1, &n), 63);
  assert_int_equal(n, 1);

  /* The same with a reader reading the history while it is replaced
   * (the sanitizer builds check that no array is freed under it). */
  count_reader r = {.s = s};
  atomic_init(&r.stop, false);
  assert_int_equal(pthread_create(&r.th, NULL, read_counts, &r), 0);
  for (int round = 0; round < 10; round++) {
    hold_begin(&old, s);
    for (int i = 0; i < 700; i++, id++)
      assert_strata_ok(strata_proto_put(p, id, NULL, 0, NULL, b, sizeof b));
    assert_true(history_cap(s, 1, &n) >= 1023);
    hold_end(&old);
    /* An overwrite: a write call that changes no layer count. Its
     * maintenance shrinks the array unless the reader's snapshot of the
     * moment began during the puts; its next one begins after them. */
    assert_strata_ok(strata_proto_put(p, 0, NULL, 0, NULL, b, 1));
    while (history_cap(s, 1, &n) != 63) {
      sched_yield();
      assert_strata_ok(strata_store_reclaim(s, 0));
    }
    assert_strata_ok(strata_read_begin(s, &t));
    assert_int_equal(layers_in(&t), id);
    strata_read_end(&t);
  }
  atomic_store(&r.stop, true);
  pthread_join(r.th, NULL);
  assert_true(r.reads > 0);
  strata_store_close(s);
}

static int cancel(void *ctx, const strata_progress *progress) {
  (void)ctx, (void)progress;
  return 1;
}

/* Ids put out of order (below the largest, new and existing; above it):
 * a canceled crystallization sorts the proto's list of newest versions
 * (overlay.c), and puts after the sort supersede the right versions: the
 * next crystallization writes each id's newest content, and the layer
 * count stays right throughout. */
static void test_unsorted_ids_then_superseded(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "order");
  static const uint64_t ids[] = {10, 20, 30, 5, 20, 40, 1, 30, 25, 50, 5};
  enum { N = sizeof ids / sizeof ids[0] };
  uint64_t version[64] = {0}, count = 0;
  uint8_t b[100];
  for (int i = 0; i < N; i++) {
    count += version[ids[i]] == 0;
    fill(b, sizeof b, ids[i], ++version[ids[i]]);
    assert_strata_ok(strata_proto_put(p, ids[i], NULL, 0, NULL, b, sizeof b));
  }
  strata_crystallize_options o;
  strata_crystallize_options_init(&o);
  o.progress = cancel;
  assert_strata_err(strata_crystallize_ex(s, 1, &o), STRATA_E_CANCELED);
  /* After the sort: supersede some, add below and above. */
  static const uint64_t more[] = {1, 50, 3, 25, 60, 10, 3};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    count += version[more[i]] == 0;
    fill(b, sizeof b, more[i], ++version[more[i]]);
    assert_strata_ok(strata_proto_put(p, more[i], NULL, 0, NULL, b, sizeof b));
  }
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(layers_in(&t), count);
  strata_read_end(&t);
  assert_strata_ok(strata_crystallize(s, 1));
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(layers_in(&t), count);
  for (uint64_t id = 0; id < 64; id++)
    if (version[id] > 0)
      expect_content(&t, id, sizeof b, version[id]);
  strata_read_end(&t);
  strata_store_close(s);
}

/* What the memory limit's refusal compares (strata__overlay_put_cost,
 * proto.c's check_memory) is exactly what a change adds to the heap, when
 * a snapshot pins everything (so that no count record can be dropped and
 * nothing is freed): over 30,000 changes that start arena chunks, double
 * the table (the old one stays until its grace period), copy the count
 * history, put layers too large for the arena, names and removals. A cost
 * that left out the table's doubling let a put pass refuse_pct by tens of
 * percent. */
static void test_put_cost_is_the_heap_growth(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "cost");
  strata_txn pin;
  assert_strata_ok(strata_read_begin(s, &pin));
  static char big[20000];
  memset(big, 'c', sizeof big);
  uint64_t grew_table = 0, big_costs = 0;
  for (uint64_t i = 0; i < 30000; i++) {
    const strata__catalog *c =
        atomic_load_explicit(&s->catalog, memory_order_acquire);
    const strata__entry *e = strata__catalog_find(c, 1);
    uint64_t id = i % 7 == 3 ? i / 2 : i; /* some overwrites */
    bool remove = i % 301 == 300;
    bool large = i % 499 == 1;
    char name[32];
    int nl = snprintf(name, sizeof name, "n%" PRIu64, i);
    bool named = i % 5 == 0 && !remove && id == i;
    strata_txn t;
    assert_strata_ok(strata_read_begin(s, &t));
    strata_layer l;
    bool exists = strata_get(&t, 1, remove ? id - 1 : id, &l) == 0;
    strata_read_end(&t);
    if (remove)
      id = id - 1;
    if (remove && !exists)
      continue;
    bool counted = remove || !exists;
    uint64_t cost = strata__overlay_put_cost(s, e->overlay, named,
                                             named ? (size_t)nl : 0, false, 0,
                                             remove  ? 0
                                             : large ? sizeof big
                                                     : 8,
                                             counted);
    const strata__otable *tb =
        atomic_load_explicit(&e->overlay->table, memory_order_relaxed);
    bool grows = e->overlay->lvers + 1 > tb->mask + 1;
    uint64_t h0 = strata__store_heap(s);
    if (remove)
      assert_strata_ok(strata_proto_remove(p, id));
    else
      assert_strata_ok(strata_proto_put(
          p, id, named ? name : NULL, named ? (size_t)nl : 0, NULL,
          large ? (const void *)big : &i, large ? sizeof big : 8));
    uint64_t h1 = strata__store_heap(s);
    if (h1 - h0 != cost)
      fail_msg("change %" PRIu64 " (id %" PRIu64
               "%s%s%s): the heap grew by %" PRIu64 ", the cost said %" PRIu64,
               i, id, remove ? ", removal" : "", large ? ", large" : "",
               grows ? ", table doubling" : "", h1 - h0, cost);
    grew_table += grows;
    big_costs += large;
  }
  assert_true(grew_table >= 5 && big_costs >= 50); /* the cases happened */
  strata_read_end(&pin);
  strata_store_close(s);
}

/* strata_proto_info.bytes is what the proto holds in the heap: with no
 * snapshot open (so that nothing waits for a grace period), it moves
 * exactly as the heap does, over changes that start and free arena chunks
 * (one layer overwritten until versions in the first chunks are all
 * pruned), put and prune content blocks, double the table and copy the
 * count history, and removals. While a snapshot holds superseded versions
 * the heap holds more than the figure (what waits is not the proto's),
 * and the two agree again once it ends. Before, the figure summed the
 * versions' bytes: 100 versions of a layer kept alive by chunks full of
 * pruned ones counted 100 versions. */
static void test_proto_bytes_is_the_heap_it_holds(void **state) {
  (void)state;
  const char *dir;
  strata_store *s;
  uint64_t before;
  strata_proto *p = fresh_proto(&dir, &s, &before, "held");
  uint64_t h0 = heap(s), b0 = proto_bytes(p);
  assert_true(h0 > before);
  assert_true(b0 > 0);
  static uint8_t b[20000];
  uint64_t chunks_freed = 0, prev_heap = h0;
  for (uint64_t i = 0; i < 3000; i++) {
    bool large = i % 97 == 5;
    bool remove = i % 211 == 210;
    /* A third of the changes overwrite layer 3; the others put new ids
     * (or remove the last one put). */
    uint64_t id = i % 3 == 0 ? 3 : i;
    size_t size = large ? sizeof b : 200 + i % 300;
    char name[32];
    int nl = snprintf(name, sizeof name, "n%" PRIu64, id);
    if (remove) {
      assert_strata_ok(strata_proto_remove(p, i % 3 == 1 ? i - 2 : i - 1));
    } else {
      fill(b, size, id, i);
      assert_strata_ok(strata_proto_put(p, id, i % 4 == 1 ? name : NULL,
                                        i % 4 == 1 ? (size_t)nl : 0, NULL, b,
                                        size));
    }
    uint64_t h = heap(s), got = proto_bytes(p);
    if (h - h0 != got - b0)
      fail_msg("change %" PRIu64 ": the heap grew by %" PRIu64
               " since the proto was created, its bytes by %" PRIu64,
               i, h - h0, got - b0);
    chunks_freed += h < prev_heap;
    prev_heap = h;
  }
  assert_true(chunks_freed > 0); /* some change gave memory back */

  /* A snapshot holds the versions the next overwrites supersede. */
  strata_txn pin;
  assert_strata_ok(strata_read_begin(s, &pin));
  for (uint64_t v = 0; v < 2000; v++) {
    fill(b, 300, 3, v);
    assert_strata_ok(strata_proto_put(p, 3, NULL, 0, NULL, b, 300));
  }
  assert_true(heap(s) - h0 > proto_bytes(p) - b0);
  strata_read_end(&pin);
  assert_strata_ok(strata_store_reclaim(s, 1));
  assert_int_equal(heap(s) - h0, proto_bytes(p) - b0);
  expect_discard_frees(s, p, before);
  strata_store_close(s);
}

/* The memory thresholds' eviction crystallizes the proto that gives back
 * the most heap first. Proto "chunks" put 1,200 layers of 4,000 bytes,
 * then overwrote all but every 16th with one byte: its live content is
 * about 300 KB, but every arena chunk keeps a live version, so it holds
 * some 5.3 MB. Proto "versions" holds 300 layers of 4,000 bytes (1.2 MB
 * of content, 1.3 MB of heap). A large layer put into "versions" then
 * takes the heap past evict_pct: the round must crystallize "chunks",
 * which brings the heap under the low watermark alone. Ranked by the
 * versions' bytes, as before, it crystallized "versions", which freed
 * less than half as much, and left "chunks" in memory. */
static void test_eviction_picks_the_proto_holding_most(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = test_open_store_limited(dir, 8u << 20);
  strata_proto *held, *vers;
  assert_strata_ok(strata_proto_create(s, 1, "chunks", 6, NULL, &held));
  assert_strata_ok(strata_proto_create(s, 2, "versions", 8, NULL, &vers));
  static uint8_t b[4000];
  uint64_t held_content = 0, vers_content = 0, h0 = heap(s);
  for (uint64_t id = 0; id < 1200; id++) {
    fill(b, sizeof b, id, 0);
    assert_strata_ok(strata_proto_put(held, id, NULL, 0, NULL, b, sizeof b));
  }
  for (uint64_t id = 0; id < 1200; id++) {
    if (id % 16 == 0) {
      held_content += sizeof b;
      continue;
    }
    fill(b, 1, id, 1);
    assert_strata_ok(strata_proto_put(held, id, NULL, 0, NULL, b, 1));
    held_content += 1;
  }
  /* The heap each proto took (what crystallizing it gives back). */
  uint64_t h1 = heap(s), held_heap = h1 - h0;
  for (uint64_t id = 0; id < 300; id++) {
    fill(b, sizeof b, id, 2);
    assert_strata_ok(strata_proto_put(vers, id, NULL, 0, NULL, b, sizeof b));
    vers_content += sizeof b;
  }
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.evictions, 0);
  uint64_t evict = strata__memory_threshold(s, s->config.evict_pct);
  uint64_t refuse = strata__memory_threshold(s, s->config.refuse_pct);
  uint64_t warn = strata__memory_threshold(s, s->config.warn_pct);
  uint64_t vers_heap = st.heap_bytes - h1;
  /* The case as described: less content, more heap. */
  assert_true(held_content < vers_content);
  assert_true(st.heap_bytes < evict);
  assert_true(st.heap_bytes - held_heap < warn / 2);

  /* A large layer (a pool block of its own) past evict_pct, below
   * refuse_pct: "versions" then holds more content, and still less than
   * half the heap "chunks" holds. */
  size_t big = (size_t)(evict - st.heap_bytes + s->config.memory_limit / 50);
  assert_true(st.heap_bytes + big + 4096 < refuse);
  assert_true(held_heap > 2 * (vers_heap + big + 4096));
  uint8_t *blob = malloc(big);
  assert_non_null(blob);
  fill(blob, big, 999, 0);
  assert_strata_ok(strata_proto_put(vers, 999, NULL, 0, NULL, blob, big));
  assert_true(vers_content + big > held_content);
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(st.evictions, 1);
  assert_true(st.heap_bytes < warn);
  strata_proto_info pi;
  assert_strata_ok(strata_proto_info_get(held, &pi));
  assert_int_equal(pi.changed, 0); /* crystallized */
  assert_strata_ok(strata_proto_info_get(vers, &pi));
  assert_int_equal(pi.changed, 301); /* still in memory */
  assert_int_equal(access(test_path(dir, "chunks.region"), F_OK), 0);
  assert_int_not_equal(access(test_path(dir, "versions.region"), F_OK), 0);
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  expect_content(&t, 32, sizeof b, 0);
  expect_content(&t, 33, 1, 1);
  strata_read_end(&t);
  free(blob);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_count_history_per_snapshot),
      cmocka_unit_test(test_arena_chunks_freed_when_pruned),
      cmocka_unit_test(test_arena_sizes_and_snapshots),
      cmocka_unit_test(test_pruned_then_discarded_in_one_collection),
      cmocka_unit_test(test_count_history_shrinks_when_snapshots_end),
      cmocka_unit_test(test_unsorted_ids_then_superseded),
      cmocka_unit_test(test_put_cost_is_the_heap_growth),
      cmocka_unit_test(test_proto_bytes_is_the_heap_it_holds),
      cmocka_unit_test(test_eviction_picks_the_proto_holding_most),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
