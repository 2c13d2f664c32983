/* Allocation failure injection into the staging pool, in host mode: a
 * store open that builds a pool, staging a layer (whole, in part, with
 * pages shared within the layer and with another layer, growing the
 * pool's tables), copies of staged layers and of paths to the "device",
 * the device layer cache (a miss, a hit on another stream, a sequential
 * get that prefetches, its ring growing), and the state dump and metrics
 * of a store with a pool. allocfail.c interposes the allocator;
 * allocfail_walk.h walks every allocation of each operation, transient and
 * persistent, each case on a fresh fixture (the dump's cases share one:
 * a dump changes nothing).
 *
 * What each case must show:
 *
 * - The call returned STRATA_E_NOMEM (or -ENOMEM) and set no output, or
 *   it succeeded with a complete result: the staged bytes, the device
 *   bytes, the device layer are those of the layer (a store open may skip
 *   its region file with a WARN line, as documented).
 * - A failed strata_stage() left the pool's figures as they were
 *   (staged layers, staged bytes, blocks used, shared blocks), and the
 *   same call with memory back succeeds.
 * - A failed copy to the device leaves nothing in flight once the stream
 *   is synchronized, and the same call with memory back succeeds.
 * - Nothing leaked: once the holds are released, the streams destroyed
 *   and the store closed, every allocation the armed call made has been
 *   freed (but what glibc keeps with a cached thread stack, allocated
 *   inside pthread_create()).
 *
 * Determinism. The walk needs the same allocations in the same order
 * each time. The host backend's streams reuse finished work items, so
 * whether queuing work allocates depends on whether the stream's thread
 * has finished earlier items: on timing. So every stream the armed call
 * may use is *gated* first: a host function queued before arming holds
 * the stream's thread until the call has returned, or until the failing
 * allocation has been made (a failed call may wait for its stream).
 * Until then no item of the call finishes, and every item it queues is a
 * new allocation. The host backend's stream threads make their own
 * allocations, which the harness neither counts nor fails.
 *
 * STRATA_ALLOCFAIL_VERBOSE=1 prints every case, every broken promise and
 * every allocation site, with whole call stacks. */
#include <dirent.h>
#include <inttypes.h>
#include <stdatomic.h>

#include "allocfail.h"
#include "allocfail_walk.h"
#include "test_util.h"

#include "common/strata_testing.h" /* STRATA_STAGING_NO_WORKER */
#include "staging/staging.h" /* the pool's streams and a stream's queue, to gate */
#include "store/store_internal.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define BLOCK (64 * KiB)

/* ---- content --------------------------------------------------------- */

/* Region 1, "files", in a region file: layers of a few sizes. Layer 4 is
 * one block-size page repeated four times (its pages share one block),
 * layer 7 has layer 3's content (it shares layer 3's blocks), layer 6 is
 * large enough to go to the device straight from its blocks in a path
 * (1 MiB or more, staged). */
#define R1_LAYERS 8
static const size_t r1_size[R1_LAYERS] = {100,         64 * KiB,  64 * KiB + 1,
                                          300 * KiB,   4 * BLOCK, 0,
                                          3 * MiB / 2, 300 * KiB};
#define REPEATED 4 /* the layer of repeated pages */
#define TWIN 7     /* layer 3's content */

/* Region 2, "heap", a proto: layers 0..3 of 192 KiB, read in order by the
 * device cache's walks. Region 3, "tiny", a proto made only for the walks
 * that grow tables: many layers of the same 16 bytes (staged, they all
 * share one block). */
#define R2_SIZE (3 * BLOCK)
#define TINY "sixteen bytes :)"
#define TINY_SIZE 16

/* The content of a layer, malloc()ed; *size gets its size. */
static uint8_t *layer_bytes(uint64_t region, uint64_t layer, size_t *size) {
  size_t n = region == 1 ? r1_size[layer] : region == 2 ? R2_SIZE : TINY_SIZE;
  uint8_t *p = malloc(n ? n : 1);
  assert_non_null(p);
  if (region == 3)
    memcpy(p, TINY, TINY_SIZE);
  else if (region == 2)
    test_fill_seeded(p, n, 100 + layer);
  else if (layer == REPEATED)
    for (size_t i = 0; i < n; i += BLOCK)
      test_fill_seeded(p + i, BLOCK, REPEATED);
  else
    test_fill_seeded(p, n, layer == TWIN ? 3 : layer);
  *size = n;
  return p;
}

/* files.region, written once and copied into each fixture's directory. */
static uint8_t *file_bytes;
static size_t file_len;

static void make_file(void) {
  if (file_bytes != NULL)
    return;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "files.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 1;
  o.name = "files";
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  for (uint64_t i = 0; i < R1_LAYERS; i++) {
    size_t n;
    uint8_t *p = layer_bytes(1, i, &n);
    assert_strata_ok(strata_writer_add(w, i, NULL, 0, NULL, p, n));
    free(p);
  }
  assert_strata_ok(strata_writer_commit(w));
  file_bytes = test_read_file(path, &file_len);
  unlink(path);
  rmdir(dir);
}

/* Empties and removes a test directory. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      unlink(test_path(dir, e->d_name));
  closedir(d);
  rmdir(dir);
}

/* ---- the store ----------------------------------------------------------- */

/* The store's WARN lines and worse, for the open walk's checks. */
typedef struct log_lines {
  pthread_mutex_t mu;
  char text[8192];
  size_t len;
} log_lines;

static void log_line(void *ctx, int level, const char *line) {
  (void)level;
  log_lines *l = ctx;
  pthread_mutex_lock(&l->mu);
  int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", line);
  if (n > 0 && l->len + (size_t)n < sizeof l->text)
    l->len += (size_t)n;
  pthread_mutex_unlock(&l->mu);
  if (verbose())
    print_message("    log: %s\n", line);
}

static log_lines logs = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A 16 MiB pool of 64 KiB blocks in host mode, three streams with two
 * pack buffers of 512 KiB each, a 2 MiB device cache. Checksums are
 * checked at open with one thread, so that the store's own allocations
 * come in the same order each time. */
static strata_store_config pool_config(unsigned staging_flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_WARN;
  c.log_fn = log_line;
  c.log_ctx = &logs;
  c.flags = STRATA_STORE_VERIFY_AT_OPEN;
  c.open_threads = 1;
  c.staging.bytes = 16 * MiB;
  c.staging.block_size = BLOCK;
  c.staging.streams = 3;
  c.staging.pack_bytes = 512 * KiB;
  c.staging.device_cache_bytes = 2 * MiB;
  c.staging.flags = staging_flags;
  return c;
}

#define HOST_FLAGS (STRATA_STAGING_HOST | STRATA_STAGING_NO_WORKER)

typedef struct fixture {
  char dir[4096];
  strata_store *s;
  strata_txn txn;
  strata_stream *ss, *other; /* the caller's streams */
} fixture;

static void put_layer(strata_proto *p, uint64_t region, uint64_t id) {
  size_t n;
  uint8_t *d = layer_bytes(region, id, &n);
  assert_strata_ok(strata_proto_put(p, id, NULL, 0, NULL, d, n));
  free(d);
}

/* A store with files.region (region 1) and the proto of region 2, and
 * `tiny` layers in region 3; a snapshot open, two streams. `flags` adds to
 * the staging flags. */
static void setup(fixture *f, unsigned tiny, unsigned flags) {
  make_file();
  snprintf(f->dir, sizeof f->dir, "%s", test_tmpdir());
  test_write_file(test_path(f->dir, "files.region"), file_bytes, file_len);
  strata_store_config c = pool_config(HOST_FLAGS | flags);
  assert_strata_ok(strata_store_open(f->dir, &c, &f->s));
  strata_proto *p;
  assert_strata_ok(strata_proto_create(f->s, 2, "heap", 4, NULL, &p));
  for (uint64_t i = 0; i < 4; i++)
    put_layer(p, 2, i);
  if (tiny > 0) {
    assert_strata_ok(strata_proto_create(f->s, 3, "tiny", 4, NULL, &p));
    for (uint64_t i = 0; i < tiny; i++)
      put_layer(p, 3, i);
  }
  assert_strata_ok(strata_read_begin(f->s, &f->txn));
  assert_strata_ok(strata_stream_create(f->s, &f->ss));
  assert_strata_ok(strata_stream_create(f->s, &f->other));
}

/* The holds must be released before. */
static void teardown(fixture *f) {
  strata_read_end(&f->txn);
  strata_stream_destroy(f->ss);
  strata_stream_destroy(f->other);
  strata_store_close(f->s);
  f->s = NULL;
  remove_dir(f->dir);
}

/* The pool's figures a failed strata_stage() must leave as they were. */
typedef struct figures {
  uint64_t layers, bytes, used, shared;
} figures;

static figures pool_figures(strata_store *s) {
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  return (figures){.layers = st.staged_layers,
                   .bytes = st.staged_bytes,
                   .used = st.blocks_used,
                   .shared = st.shared_blocks};
}

static uint64_t in_flight(strata_store *s) {
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  return st.transfers_in_flight;
}

/* ---- gates --------------------------------------------------------------- */

/* A gate holds the threads of the streams it was queued on (see the top
 * of the file). A gate still closed after this long means the call waited
 * for a gated stream without failing: the walk's design is wrong there. */
#define GATE_MAX_MS 5000.0

typedef struct gate {
  _Atomic bool open, armed, timed_out;
} gate;

static gate the_gate;

static void gate_hold(void *arg) {
  gate *g = arg;
  double t0 = now_ms();
  /* af_hit() means the current armed period's only once af_arm() ran. */
  while (!atomic_load(&g->open) && !(atomic_load(&g->armed) && af_hit())) {
    if (now_ms() - t0 > GATE_MAX_MS) {
      atomic_store(&g->timed_out, true);
      return;
    }
    usleep(20);
  }
}

enum { GATE_CALLER = 1, GATE_POOL = 2 };

/* Closes the gate on the fixture's streams (GATE_CALLER) and the pool's
 * (GATE_POOL). Their queues must be empty. */
static void gate_close(fixture *f, unsigned which) {
  atomic_store(&the_gate.open, false);
  atomic_store(&the_gate.armed, false);
  atomic_store(&the_gate.timed_out, false);
  strata__staging *st = f->s->staging;
  if (which & GATE_CALLER) {
    assert_strata_ok(strata__dstream_host_fn(f->ss->xs, gate_hold, &the_gate));
    assert_strata_ok(
        strata__dstream_host_fn(f->other->xs, gate_hold, &the_gate));
  }
  for (uint32_t i = 0; (which & GATE_POOL) && i < st->transfer.nstreams; i++)
    assert_strata_ok(
        strata__dstream_host_fn(st->transfer.streams[i], gate_hold, &the_gate));
}

/* Arms the failure k and tells the gates. */
static void arm(unsigned long k, af_mode mode) {
  af_arm(k, mode);
  atomic_store(&the_gate.armed, true);
}

/* Opens the gates (the streams run on; still armed, for a sync). */
static void gates_open(void) {
  atomic_store(&the_gate.open, true);
}

/* Disarms, opens the gates, and waits for every stream of the fixture. */
static void disarm(fixture *f, const char *op) {
  af_disarm();
  gates_open();
  assert_strata_ok(strata_stream_sync(f->ss));
  assert_strata_ok(strata_stream_sync(f->other));
  strata__staging *st = f->s->staging;
  for (uint32_t i = 0; i < st->transfer.nstreams; i++)
    assert_strata_ok(strata__dstream_sync(st->transfer.streams[i]));
  if (atomic_load(&the_gate.timed_out))
    fail_msg("%s: the call waited for a gated stream (walk design)", op);
}

/* ---- checks -------------------------------------------------------------- */

/* The hold shows exactly blocks [first, first + n) of the layer. */
static void expect_staged(const strata_staged *h, uint64_t region,
                          uint64_t layer, uint64_t first, uint64_t n,
                          const char *what) {
  size_t size;
  uint8_t *want = layer_bytes(region, layer, &size);
  uint64_t off = first * BLOCK;
  uint64_t len =
      n == UINT64_MAX || (first + n) * BLOCK > size ? size - off : n * BLOCK;
  strata_staged_info info;
  assert_strata_ok(strata_staged_info_get(h, &info));
  if (info.region_id != region || info.layer_id != layer ||
      info.offset != off || info.size != len)
    fail_msg("%s: the hold shows region %" PRIu64 " layer %" PRIu64
             " at %" PRIu64 " (%" PRIu64 " bytes), not %" PRIu64 "/%" PRIu64
             " at %" PRIu64 " (%" PRIu64 ")",
             what, info.region_id, info.layer_id, info.offset, info.size,
             region, layer, off, len);
  uint8_t *got = malloc(len ? len : 1);
  assert_non_null(got);
  assert_strata_ok(strata_staged_copy_out(h, got));
  if (memcmp(got, want + off, len) != 0)
    fail_msg("%s: the staged bytes are not the layer's", what);
  uint64_t seen = 0;
  for (uint32_t i = 0; i < info.segments; i++) {
    const void *p;
    uint64_t l;
    assert_strata_ok(strata_staged_segment(h, i, &p, &l));
    if (memcmp(p, want + off + seen, l) != 0)
      fail_msg("%s: segment %u is not the layer's bytes", what, i);
    seen += l;
  }
  assert_int_equal(seen, len);
  free(got);
  free(want);
}

/* `dev` holds the layer. */
static void expect_device(const void *dev, uint64_t region, uint64_t layer,
                          const char *what) {
  size_t size;
  uint8_t *want = layer_bytes(region, layer, &size);
  if (memcmp(dev, want, size) != 0)
    fail_msg("%s: the device bytes of region %" PRIu64 " layer %" PRIu64
             " are not the layer's",
             what, region, layer);
  free(want);
}

/* After a failure, with the streams synchronized: nothing in flight. */
static void expect_idle(fixture *f, const char *op, const char *what) {
  uint64_t n = in_flight(f->s);
  if (n != 0)
    problem("transfers in flight",
            "%s, %s: %" PRIu64 " transfer(s) in flight after the failed call "
            "and a sync",
            op, what, n);
}

/* Closes the fixture and checks that the armed call left nothing behind. */
static void case_close(fixture *f, counts *c, const char *what) {
  teardown(f);
  expect_no_leak(c->op, what);
  af_stop();
}

/* ---- store open ---------------------------------------------------------- */

/* Is region 1 served, with its content? */
static bool served(strata_store *s) {
  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  strata_layer l;
  int rc = strata_get(&t, 1, 3, &l);
  if (rc == 0) {
    size_t n;
    uint8_t *want = layer_bytes(1, 3, &n);
    assert_int_equal(l.size, n);
    assert_memory_equal(l.data, want, n);
    free(want);
  } else {
    assert_int_equal(rc, STRATA_E_NO_REGION);
  }
  strata_read_end(&t);
  return rc == 0;
}

static bool open_case(const void *arg, unsigned long k, af_mode mode,
                      counts *c) {
  unsigned flags = *(const unsigned *)arg;
  make_file();
  char dir[4096], what[1200];
  snprintf(dir, sizeof dir, "%s", test_tmpdir());
  test_write_file(test_path(dir, "files.region"), file_bytes, file_len);
  strata_store_config cfg = pool_config(flags);
  logs.len = 0;
  logs.text[0] = '\0';
  /* strata_store_open() leaves *out alone when it fails (it sets it only
   * on success), so it starts NULL here. */
  strata_store *s = NULL;
  af_arm(k, mode);
  int rc = strata_store_open(dir, &cfg, &s);
  af_disarm();
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    if (s != NULL)
      fail_msg("%s, %s: failed but set its output", c->op, what);
  } else {
    /* The pool is whole and works. */
    strata_staging_stats st;
    assert_strata_ok(strata_staging_stats_get(s, &st));
    assert_string_equal(st.backend, "host");
    assert_int_equal(st.blocks, 16 * MiB / BLOCK);
    assert_int_equal(st.dcache_budget, 2 * MiB);
    if (served(s)) {
      strata_txn t;
      strata_staged *h;
      assert_strata_ok(strata_read_begin(s, &t));
      assert_strata_ok(strata_stage(&t, 1, REPEATED, &h));
      expect_staged(h, 1, REPEATED, 0, UINT64_MAX, what);
      strata_staged_release(h);
      strata_read_end(&t);
      c->absorbed += hit;
    } else {
      /* Skipped, as documented, with a WARN line naming the file. */
      if (strstr(logs.text, "region skipped") == NULL ||
          strstr(logs.text, "files.region") == NULL)
        fail_msg("%s, %s: region 1 is not served, and no warning says "
                 "why:\n%s",
                 c->op, what, logs.text);
      c->degraded++;
    }
    strata_store_close(s);
  }
  expect_no_leak(c->op, what);
  af_stop();
  remove_dir(dir);
  return hit;
}

static void test_open(void **state) {
  (void)state;
  static const unsigned no_worker = HOST_FLAGS, worker = STRATA_STAGING_HOST;
  /* Whole stacks, to recognize what pthread_create() allocates (the
   * streams' threads, the slab's first-touch threads, the worker). */
  all_stacks = true;
  walk("strata_store_open with a pool", open_case, &no_worker);
  walk("strata_store_open, hot worker", open_case, &worker);
  all_stacks = false;
  expect_no_problems();
}

/* ---- staging ------------------------------------------------------------- */

typedef struct stage_spec {
  const char *title;
  uint64_t region, layer;
  uint64_t first, n; /* n UINT64_MAX: strata_stage() */
  /* Before arming: blocks [pre_first, pre_first + pre_n) of layer
   * `pre_layer` of the same region staged (held), or, with pre_count,
   * layers 0 .. pre_count - 1 (released). */
  bool pre;
  uint64_t pre_layer, pre_first, pre_n;
  unsigned pre_count;
  unsigned tiny; /* layers of region 3 */
} stage_spec;

static int do_stage(fixture *f, const stage_spec *p, strata_staged **h) {
  return p->n == UINT64_MAX ? strata_stage(&f->txn, p->region, p->layer, h)
                            : strata_stage_part(&f->txn, p->region, p->layer,
                                                p->first, p->n, h);
}

static bool stage_case(const void *arg, unsigned long k, af_mode mode,
                       counts *c) {
  const stage_spec *p = arg;
  fixture f;
  setup(&f, p->tiny, 0);
  strata_staged *pre = NULL;
  if (p->pre)
    assert_strata_ok(strata_stage_part(&f.txn, p->region, p->pre_layer,
                                       p->pre_first, p->pre_n, &pre));
  for (unsigned i = 0; i < p->pre_count; i++) {
    strata_staged *h;
    assert_strata_ok(strata_stage(&f.txn, p->region, i, &h));
    strata_staged_release(h);
  }
  figures before = pool_figures(f.s);
  char what[1200];
  strata_staged *h = (strata_staged *)&f; /* must be reset */

  arm(k, mode);
  int rc = do_stage(&f, p, &h);
  disarm(&f, c->op);
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    if (h != NULL)
      fail_msg("%s, %s: failed but set its output", c->op, what);
    /* Nothing changed, and with memory back the same call succeeds. */
    figures now = pool_figures(f.s);
    if (memcmp(&now, &before, sizeof now) != 0)
      problem("pool changed",
              "%s, %s: the failed call changed the pool: %" PRIu64
              " layers, %" PRIu64 " bytes, %" PRIu64 " blocks used, %" PRIu64
              " shared; before %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64,
              c->op, what, now.layers, now.bytes, now.used, now.shared,
              before.layers, before.bytes, before.used, before.shared);
    rc = do_stage(&f, p, &h);
    if (rc != 0)
      fail_msg("%s, %s: the call failed again with memory back: %s (%s)", c->op,
               what, strata_err_name(rc), strata_last_error_detail());
  } else {
    c->absorbed += hit;
  }
  expect_staged(h, p->region, p->layer, p->first, p->n, what);
  strata_staged_release(h);
  strata_staged_release(pre);
  case_close(&f, c, what);
  return hit;
}

/* The layer table (256 slots) grows past 192 layers; the CLOCK ring (256)
 * when the 257th layer is entered. */
#define LTAB_GROWS 192
#define CLOCK_GROWS 256

static void test_stage(void **state) {
  (void)state;
  static const stage_spec specs[] = {
      {.title = "stage: 300 KiB, 5 blocks",
       .region = 1,
       .layer = 3,
       .n = UINT64_MAX},
      {.title = "stage: 4 equal pages, one block",
       .region = 1,
       .layer = REPEATED,
       .n = UINT64_MAX},
      {.title = "stage: blocks shared with a layer",
       .region = 1,
       .layer = TWIN,
       .n = UINT64_MAX,
       .pre = true,
       .pre_layer = 3,
       .pre_n = UINT64_MAX},
      {.title = "stage_part: blocks 3..7 of 24",
       .region = 1,
       .layer = 6,
       .first = 3,
       .n = 5},
      {.title = "stage: the rest around a part",
       .region = 1,
       .layer = 6,
       .n = UINT64_MAX,
       .pre = true,
       .pre_layer = 6,
       .pre_first = 3,
       .pre_n = 5},
      {.title = "stage: grows the layer table",
       .region = 3,
       .layer = LTAB_GROWS,
       .n = UINT64_MAX,
       .pre_count = LTAB_GROWS,
       .tiny = LTAB_GROWS + 1},
      {.title = "stage: grows the CLOCK ring",
       .region = 3,
       .layer = CLOCK_GROWS,
       .n = UINT64_MAX,
       .pre_count = CLOCK_GROWS,
       .tiny = CLOCK_GROWS + 1},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    walk(specs[i].title, stage_case, &specs[i]);
  expect_no_problems();
}

/* ---- copies to the device ------------------------------------------------ */

typedef struct xfer_spec {
  const char *title;
  uint64_t layer;
} xfer_spec;

static bool to_device_case(const void *arg, unsigned long k, af_mode mode,
                           counts *c) {
  const xfer_spec *p = arg;
  fixture f;
  setup(&f, 0, 0);
  strata_staged *h;
  assert_strata_ok(strata_stage(&f.txn, 1, p->layer, &h));
  size_t size = r1_size[p->layer];
  void *dev;
  assert_strata_ok(strata_device_alloc(f.s, size, NULL, &dev));
  memset(dev, 0xEE, size);
  gate_close(&f, GATE_CALLER);
  char what[1200];

  /* The copies and the sync that waits for them run armed. */
  arm(k, mode);
  int rc = strata_stage_to_device(h, dev, f.ss);
  gates_open();
  int src = strata_stream_sync(f.ss);
  disarm(&f, c->op);
  if (src != 0)
    fail_msg("%s: strata_stream_sync: %s", c->op, strata_err_name(src));
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    expect_idle(&f, c->op, what);
    rc = strata_stage_to_device(h, dev, f.ss);
    if (rc != 0)
      fail_msg("%s, %s: the call failed again with memory back: %s (%s)", c->op,
               what, strata_err_name(rc), strata_last_error_detail());
    assert_strata_ok(strata_stream_sync(f.ss));
  } else {
    c->absorbed += hit;
  }
  expect_device(dev, 1, p->layer, what);
  strata_staged_release(h);
  assert_strata_ok(strata_device_free(f.s, dev, NULL));
  case_close(&f, c, what);
  return hit;
}

static void test_to_device(void **state) {
  (void)state;
  static const xfer_spec specs[] = {
      {.title = "stage_to_device: 4 segments", .layer = REPEATED},
      {.title = "stage_to_device: one run", .layer = 3},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    walk(specs[i].title, to_device_case, &specs[i]);
  expect_no_problems();
}

/* A path of every kind of step: small layers packed (from the file and
 * from a proto), an empty one, layer 6 (1.5 MiB) copied straight from its
 * blocks when it is staged, packed too when not, layers not staged. Its
 * packed bytes take at most four of the six pack buffers, so the batch
 * never waits for a buffer's earlier copy (a gated stream would hold
 * it). */
static const strata_layer_ref path[] = {{1, 0}, {1, 6}, {2, 1}, {1, 5},
                                        {1, 2}, {1, 4}, {1, 0}};
#define PATH_N (sizeof path / sizeof path[0])

typedef struct path_spec {
  const char *title;
  unsigned flags; /* more staging flags */
  bool stage_big; /* layer 6 staged before */
} path_spec;

static bool path_case(const void *arg, unsigned long k, af_mode mode,
                      counts *c) {
  const path_spec *p = arg;
  fixture f;
  setup(&f, 0, p->flags);
  if (p->stage_big) {
    strata_staged *h;
    assert_strata_ok(strata_stage(&f.txn, 1, 6, &h));
    strata_staged_release(h);
  }
  uint64_t need, offs[PATH_N];
  assert_strata_ok(strata_stage_path_size(&f.txn, path, PATH_N, &need));
  void *dev;
  assert_strata_ok(strata_device_alloc(f.s, need, NULL, &dev));
  memset(dev, 0xEE, need);
  gate_close(&f, GATE_CALLER | GATE_POOL);
  char what[1200];

  arm(k, mode);
  int rc =
      strata_stage_path_to_device(&f.txn, path, PATH_N, dev, need, offs, f.ss);
  gates_open();
  int src = strata_stream_sync(f.ss);
  disarm(&f, c->op);
  if (src != 0)
    fail_msg("%s: strata_stream_sync: %s", c->op, strata_err_name(src));
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    expect_idle(&f, c->op, what);
    rc = strata_stage_path_to_device(&f.txn, path, PATH_N, dev, need, offs,
                                     f.ss);
    if (rc != 0)
      fail_msg("%s, %s: the call failed again with memory back: %s (%s)", c->op,
               what, strata_err_name(rc), strata_last_error_detail());
    assert_strata_ok(strata_stream_sync(f.ss));
  } else {
    c->absorbed += hit;
  }
  for (size_t i = 0; i < PATH_N; i++)
    expect_device((uint8_t *)dev + offs[i], path[i].region_id, path[i].layer_id,
                  what);
  assert_strata_ok(strata_device_free(f.s, dev, NULL));
  case_close(&f, c, what);
  return hit;
}

static void test_path_batch(void **state) {
  (void)state;
  /* In host mode the direct path cannot register the mapping: layer 6
   * goes through the pack buffers after the attempt. */
  static const path_spec specs[] = {
      {.title = "stage_path_to_device: 7 steps", .stage_big = true},
      {.title = "stage_path_to_device, DIRECT", .flags = STRATA_STAGING_DIRECT},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    walk(specs[i].title, path_case, &specs[i]);
  expect_no_problems();
}

/* ---- the device layer cache ---------------------------------------------- */

typedef struct dcache_spec {
  const char *title;
  uint64_t region, layer;
  /* Before arming: gets (released) of layers pre_last down to pre_first
   * (in that order: none prefetches) of the region on the other stream,
   * their copies held back by its gate when `pending`. */
  bool pre, pending;
  uint64_t pre_first, pre_last;
  unsigned tiny;
  bool prefetch; /* the get is sequential: layer + 1 is prefetched */
} dcache_spec;

static unsigned dcache_layers(strata_store *s) {
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  return (unsigned)st.dcache_layers;
}

static void expect_dlayer(strata_device_layer *dl, strata_stream *ss,
                          uint64_t region, uint64_t layer, const char *what) {
  size_t size;
  free(layer_bytes(region, layer, &size));
  assert_int_equal(strata_device_layer_size(dl), size);
  assert_strata_ok(strata_stream_sync(ss));
  expect_device(strata_device_layer_ptr(dl), region, layer, what);
}

static bool dcache_case(const void *arg, unsigned long k, af_mode mode,
                        counts *c) {
  const dcache_spec *p = arg;
  fixture f;
  setup(&f, p->tiny, 0);
  if (p->pending)
    gate_close(&f, GATE_CALLER | GATE_POOL);
  for (uint64_t i = p->pre_last + 1; p->pre && i-- > p->pre_first;) {
    strata_device_layer *dl;
    assert_strata_ok(
        strata_device_cache_get(&f.txn, p->region, i, f.other, &dl));
    strata_device_layer_release(dl);
  }
  if (!p->pending) {
    assert_strata_ok(strata_stream_sync(f.other));
    gate_close(&f, GATE_CALLER | GATE_POOL);
  }
  unsigned before = dcache_layers(f.s);
  char what[1200];
  strata_device_layer *dl = (strata_device_layer *)&f; /* must be reset */

  arm(k, mode);
  int rc = strata_device_cache_get(&f.txn, p->region, p->layer, f.ss, &dl);
  disarm(&f, c->op);
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    if (dl != NULL)
      fail_msg("%s, %s: failed but set its output", c->op, what);
    if (dcache_layers(f.s) != before)
      problem("cache changed", "%s, %s: the failed get left %u entries, not %u",
              c->op, what, dcache_layers(f.s), before);
    expect_idle(&f, c->op, what);
    rc = strata_device_cache_get(&f.txn, p->region, p->layer, f.ss, &dl);
    if (rc != 0)
      fail_msg("%s, %s: the get failed again with memory back: %s (%s)", c->op,
               what, strata_err_name(rc), strata_last_error_detail());
  } else {
    c->absorbed += hit;
  }
  expect_dlayer(dl, f.ss, p->region, p->layer, what);
  strata_device_layer_release(dl);
  if (p->prefetch) {
    /* Prefetched or not, the next layer comes out right. */
    assert_strata_ok(
        strata_device_cache_get(&f.txn, p->region, p->layer + 1, f.ss, &dl));
    expect_dlayer(dl, f.ss, p->region, p->layer + 1, what);
    strata_device_layer_release(dl);
  }
  case_close(&f, c, what);
  return hit;
}

/* The ring of entries (64) grows when the 65th is entered. */
#define DC_RING_GROWS 64

static void test_device_cache(void **state) {
  (void)state;
  static const dcache_spec specs[] = {
      {.title = "device cache: a miss", .region = 2, .layer = 0},
      {.title = "device cache: a hit, copy pending",
       .region = 2,
       .layer = 0,
       .pre = true,
       .pending = true},
      {.title = "device cache: sequential, prefetch",
       .region = 2,
       .layer = 1,
       .pre = true,
       .prefetch = true},
      {.title = "device cache: the ring grows",
       .region = 3,
       .layer = DC_RING_GROWS,
       .pre = true,
       .pre_last = DC_RING_GROWS - 1,
       .tiny = DC_RING_GROWS + 1},
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    walk(specs[i].title, dcache_case, &specs[i]);
  expect_no_problems();
}

/* ---- the state dump and the metrics -------------------------------------- */

static void test_dump_state(void **state) {
  (void)state;
  fixture f;
  setup(&f, 0, 0);
  /* Something in every part of the pool's section: a held layer, a
   * device cache entry, a batch. */
  strata_staged *h;
  assert_strata_ok(strata_stage(&f.txn, 1, 3, &h));
  strata_device_layer *dl;
  assert_strata_ok(strata_device_cache_get(&f.txn, 2, 0, f.ss, &dl));
  uint64_t need, offs[PATH_N];
  assert_strata_ok(strata_stage_path_size(&f.txn, path, PATH_N, &need));
  void *dev;
  assert_strata_ok(strata_device_alloc(f.s, need, NULL, &dev));
  assert_strata_ok(
      strata_stage_path_to_device(&f.txn, path, PATH_N, dev, need, offs, f.ss));
  assert_strata_ok(strata_stream_sync(f.ss));
  static const struct {
    const char *title;
    bool metrics;
    unsigned flags;
  } kinds[] = {
      {"dump_state with a pool, verbose", false, STRATA_DUMP_VERBOSE},
      {"metrics_text with a pool", true, 0},
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    dump_spec d = {
        .s = f.s, .metrics = kinds[i].metrics, .flags = kinds[i].flags};
    char *text = NULL;
    assert_strata_ok(do_dump(&d, &text));
    if (d.metrics) {
      assert_non_null(strstr(text, "\nstrata_staging_layers "));
      d.want_text = text;
    } else {
      json_error_t err;
      d.want = json_loads(text, 0, &err);
      assert_non_null(d.want);
      assert_true(json_is_object(json_object_get(d.want, "staging")));
      strata_free(text);
    }
    walk(kinds[i].title, dump_case, &d);
    json_decref(d.want);
    strata_free(d.want_text);
  }
  assert_strata_ok(strata_device_free(f.s, dev, NULL));
  strata_device_layer_release(dl);
  strata_staged_release(h);
  teardown(&f);
  /* The pool's series make the metrics text longer than 16 KiB, so its
   * memory stream grows while it is written: a growth that fails must
   * fail the call (metrics.c checks every write), which the walk above
   * checks like every other case. */
  expect_known_problems(NULL, 0);
}

static int cleanup(void **state) {
  (void)state;
  free(file_bytes);
  file_bytes = NULL;
  return 0;
}

int main(void) {
  walk_degraded = "degraded";
  /* The first gmtime_r() (the log lines' time) loads the time zone, whose
   * allocations glibc keeps for good: not in an armed call. */
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open),         cmocka_unit_test(test_stage),
      cmocka_unit_test(test_to_device),    cmocka_unit_test(test_path_batch),
      cmocka_unit_test(test_device_cache), cmocka_unit_test(test_dump_state),
  };
  return cmocka_run_group_tests(tests, NULL, cleanup);
}
