/* Scenario "store-read": random strata_get() calls in snapshots by 2 and
 * by 128 reader threads, and by 2 while a writer puts layers into a proto
 * and crystallizes it in a loop; then read statistics on against off, and
 * with the staging pool's read sampling. Only the public API is used; the
 * store milestone's target is printed next to the figures. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_store.h"
#include "common/strata_testing.h" /* STRATA_STORE_NO_READ_STATS */

/* At scale 1 (--n 1000000). */
#define READ_REGIONS 4
#define READ_LAYERS 100000
#define READ_BATCH 64 /* gets per snapshot, and per counter update */
#define READ_PUTS_PER_CYCLE 1000
#define READ_WARMUP_S 0.25 /* every thread started and in its loop */
#define READ_MAX_THREADS 128

/* The store milestone's target, printed next to the measurements. */
#define TARGET_READ_RATIO 0.90

/* "store-read": reader threads doing random strata_get() in snapshots.
 * The phases: (a) 2 readers, (b) 128 readers, (c) 2 readers and a writer
 * crystallizing in a loop, (d) 2 readers again, after (c). */
enum {
  BENCH_READ_IDLE2,
  BENCH_READ_IDLE128,
  BENCH_READ_WRITER2,
  BENCH_READ_AFTER2,
  BENCH_READ_PHASES
};
/* The modes: a snapshot per batch of gets, or one per get. */
enum { BENCH_READ_BATCH, BENCH_READ_SINGLE, BENCH_READ_MODES };

typedef struct bench_read_phase {
  unsigned threads;
  double seconds; /* measured */
  uint64_t gets;
  double gets_per_s;
  double cpu_s; /* CPU time of the reader threads (process minus
                   writer) during the phase */
  /* With a writer: */
  uint64_t puts, crystallizations;
  double writer_cpu_s, crystallize_write_s, crystallize_fsync_s;
} bench_read_phase;

typedef struct store_read_result {
  uint64_t regions, layers;
  size_t size;
  unsigned batch;          /* gets per snapshot in BENCH_READ_BATCH mode */
  unsigned puts_per_cycle; /* writer: puts between crystallizations */
  double load1;
  bench_read_phase phase[BENCH_READ_MODES][BENCH_READ_PHASES];
  /* Read statistics on (the default) and off (STRATA_STORE_NO_READ_STATS):
   * 2 readers, a snapshot per batch, BENCH_STATS_ROUNDS alternating rounds
   * each; medians of gets/s. */
  double stats_on_gets_per_s, stats_off_gets_per_s;
  double stats_on_cpu_ns, stats_off_cpu_ns; /* CPU per get, medians */
  /* With a staging pool sampling reads (statistics on too). */
  double sampled_gets_per_s, sampled_cpu_ns;
  /* The shared view (.strata.shm) on and off: two handles opened alike
   * (read-only, statistics on) but for config.shared_view. */
  double view_gets_per_s, view_cpu_ns, noview_gets_per_s, noview_cpu_ns;
} store_read_result;
#define BENCH_STATS_ROUNDS 6

static double cpu_s(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(uint64_t t_ns) {
  for (uint64_t now; (now = bench_now_ns()) < t_ns;) {
    uint64_t d = t_ns - now;
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

/* What every thread of a phase shares. */
typedef struct read_shared {
  strata_store *s;
  uint64_t regions, layers;
  size_t size;
  unsigned batch; /* gets per snapshot: READ_BATCH, or 1 */
  pthread_barrier_t start;
  _Atomic bool stop;
} read_shared;

/* One reader thread. `gets` is on a cache line of its own: the thread
 * stores its count there after every READ_BATCH gets, the driver reads it. */
typedef struct reader {
  _Alignas(64) _Atomic uint64_t gets;
  read_shared *sh;
  pthread_t tid;
  uint64_t seed, sink, bad;
} reader;

/* One random get: region and layer uniform; reads the content's first and
 * last byte. A miss or a wrong size counts as bad (none may happen: the
 * writer only replaces layers, with the same size). */
static inline uint64_t one_get(const strata_txn *txn, const read_shared *sh,
                               uint64_t *rng, uint64_t *bad) {
  uint64_t x = bench_splitmix64(rng);
  uint64_t id = (uint64_t)(((unsigned __int128)x * sh->layers) >> 64);
  uint64_t region = 1 + (((x & 0xffffffffu) * sh->regions) >> 32);
  strata_layer l;
  if (strata_get(txn, region, id, &l) != 0 || l.size != sh->size) {
    (*bad)++;
    return 0;
  }
  const uint8_t *d = l.data;
  return d[0] + d[l.size - 1];
}

static void *reader_main(void *arg) {
  reader *rd = arg;
  read_shared *sh = rd->sh;
  uint64_t rng = rd->seed, n = 0, sink = 0, bad = 0;
  pthread_barrier_wait(&sh->start);
  while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    strata_txn txn;
    if (sh->batch > 1) {
      if (strata_read_begin(sh->s, &txn) != 0) {
        bad++;
        break;
      }
      for (unsigned k = 0; k < READ_BATCH; k++)
        sink += one_get(&txn, sh, &rng, &bad);
      strata_read_end(&txn);
    } else {
      for (unsigned k = 0; k < READ_BATCH; k++) {
        if (strata_read_begin(sh->s, &txn) != 0) {
          bad++;
          break;
        }
        sink += one_get(&txn, sh, &rng, &bad);
        strata_read_end(&txn);
      }
    }
    n += READ_BATCH;
    atomic_store_explicit(&rd->gets, n, memory_order_relaxed);
  }
  rd->sink = sink;
  rd->bad = bad;
  return NULL;
}

/* The writer of phase (c): puts READ_PUTS_PER_CYCLE layers of region 1
 * (random ids, each layer's own contents again, so its size never
 * changes), then crystallizes it, until told to stop. */
typedef struct writer {
  read_shared *sh;
  strata_proto *proto;
  pthread_t tid;
  _Atomic uint64_t puts;
  int rc;
  char detail[512];
} writer;

static void *writer_main(void *arg) {
  writer *w = arg;
  read_shared *sh = w->sh;
  uint8_t *buf = bench_xmalloc(sh->size);
  uint64_t rng = 0x777269746572ull;
  pthread_barrier_wait(&sh->start);
  int rc = 0;
  while (rc == 0 && !atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    for (unsigned k = 0; rc == 0 && k < READ_PUTS_PER_CYCLE; k++) {
      uint64_t x = bench_splitmix64(&rng);
      uint64_t id = (uint64_t)(((unsigned __int128)x * sh->layers) >> 64);
      bench_fill_layer(1, id, buf, sh->size);
      rc = strata_proto_put(w->proto, id, NULL, 0, NULL, buf, sh->size);
      atomic_fetch_add_explicit(&w->puts, 1, memory_order_relaxed);
    }
    if (rc == 0)
      rc = strata_crystallize(sh->s, 1);
  }
  if (rc < 0) {
    w->rc = rc;
    snprintf(w->detail, sizeof w->detail, "%s", strata_last_error_detail());
  }
  free(buf);
  return NULL;
}

static uint64_t total_gets(reader *rd, unsigned n) {
  uint64_t g = 0;
  for (unsigned i = 0; i < n; i++)
    g += atomic_load_explicit(&rd[i].gets, memory_order_relaxed);
  return g;
}

/* Runs one phase: `threads` readers (and the writer when `with_writer`)
 * start together; after READ_WARMUP_S the gets done in `seconds` are
 * counted. */
static void run_phase(strata_store *s, const store_read_result *r,
                      unsigned batch, unsigned threads, bool with_writer,
                      double seconds, bench_read_phase *out) {
  read_shared sh = {.s = s,
                    .regions = r->regions,
                    .layers = r->layers,
                    .size = r->size,
                    .batch = batch};
  atomic_init(&sh.stop, false);
  pthread_barrier_init(&sh.start, NULL, threads + 1 + (with_writer ? 1 : 0));
  reader *rd = aligned_alloc(64, threads * sizeof *rd);
  if (rd == NULL)
    bench_fail("out of memory");
  writer w = {.sh = &sh};
  atomic_init(&w.puts, 0);
  if (with_writer)
    bench_check(strata_proto_open(s, 1, &w.proto), "strata_proto_open");
  for (unsigned i = 0; i < threads; i++) {
    rd[i] = (reader){.sh = &sh, .seed = 0x72656164ull * (i + 1) ^ batch};
    atomic_init(&rd[i].gets, 0);
    int e = pthread_create(&rd[i].tid, NULL, reader_main, &rd[i]);
    if (e != 0)
      bench_fail("pthread_create: %s", strerror(e));
  }
  clockid_t wclock = CLOCK_THREAD_CPUTIME_ID;
  if (with_writer) {
    int e = pthread_create(&w.tid, NULL, writer_main, &w);
    if (e != 0 || pthread_getcpuclockid(w.tid, &wclock) != 0)
      bench_fail("pthread_create: %s", strerror(e));
  }
  pthread_barrier_wait(&sh.start);
  sleep_until(bench_now_ns() + (uint64_t)(READ_WARMUP_S * 1e9));

  strata_store_stats st0, st1;
  bench_check(strata_store_stats_get(s, &st0), "strata_store_stats_get");
  uint64_t puts0 = atomic_load_explicit(&w.puts, memory_order_relaxed);
  double wcpu0 = with_writer ? cpu_s(wclock) : 0;
  double pcpu0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  uint64_t g0 = total_gets(rd, threads), t0 = bench_now_ns();
  sleep_until(t0 + (uint64_t)(seconds * 1e9));
  uint64_t g1 = total_gets(rd, threads), t1 = bench_now_ns();
  double pcpu1 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  double wcpu1 = with_writer ? cpu_s(wclock) : 0;
  uint64_t puts1 = atomic_load_explicit(&w.puts, memory_order_relaxed);
  bench_check(strata_store_stats_get(s, &st1), "strata_store_stats_get");

  atomic_store_explicit(&sh.stop, true, memory_order_relaxed);
  uint64_t bad = 0;
  for (unsigned i = 0; i < threads; i++) {
    pthread_join(rd[i].tid, NULL);
    bad += rd[i].bad;
  }
  if (with_writer) {
    pthread_join(w.tid, NULL);
    if (w.rc < 0)
      bench_fail("store-read writer: %s: %s", strata_err_name(w.rc), w.detail);
    /* Back to a plain region file, as the other phases read it. */
    bench_check(strata_crystallize(s, 1), "strata_crystallize");
    bench_check(strata_proto_discard(w.proto), "strata_proto_discard");
  }
  bench_check(strata_store_reclaim(s, 1), "strata_store_reclaim");
  if (bad != 0)
    bench_fail("store-read: %" PRIu64 " gets failed or returned a wrong size",
               bad);
  pthread_barrier_destroy(&sh.start);

  *out = (bench_read_phase){
      .threads = threads, .seconds = (double)(t1 - t0) / 1e9, .gets = g1 - g0};
  out->gets_per_s = (double)out->gets / out->seconds;
  out->writer_cpu_s = wcpu1 - wcpu0;
  /* The driver thread sleeps: process CPU minus the writer's is the
   * readers'. */
  out->cpu_s = pcpu1 - pcpu0 - out->writer_cpu_s;
  out->puts = puts1 - puts0;
  out->crystallizations = st1.crystallizations - st0.crystallizations;
  out->crystallize_write_s =
      (double)(st1.crystallize_write_ns - st0.crystallize_write_ns) / 1e9;
  out->crystallize_fsync_s =
      (double)(st1.crystallize_fsync_ns - st0.crystallize_fsync_ns) / 1e9;
  free(rd);
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  store_read_result *r = result;
  *r = (store_read_result){.regions = READ_REGIONS,
                           .layers = bench_scaled(READ_LAYERS, p->scale),
                           .size = p->size,
                           .batch = READ_BATCH,
                           .puts_per_cycle = READ_PUTS_PER_CYCLE,
                           .load1 = bench_load1()};
  char *dir = bench_mkdir(p->dir, "store-read");
  bench_say("store-read: writing %d regions x %" PRIu64 " layers x %zu B",
            READ_REGIONS, r->layers, r->size);
  for (unsigned i = 1; i <= READ_REGIONS; i++) {
    char name[32];
    snprintf(name, sizeof name, "read-%u.region", i);
    char *path = bench_path(dir, name);
    name[strlen(name) - strlen(".region")] = '\0';
    bench_write_region(path, i, name, r->layers, r->size);
    bench_warm_page_cache(path);
    free(path);
  }
  strata_store *s = bench_open_store_flags(dir, 0);
  /* Wait for the index checksums: the verifier thread would compete with
   * the first phase's readers. */
  bench_check(strata_store_refresh(s), "strata_store_refresh");
  if (bench_region_count(s) != READ_REGIONS)
    bench_fail("store-read: the store serves %" PRIu64 " regions, not %d",
               bench_region_count(s), READ_REGIONS);
  /* Check the contents once, and map every page. */
  uint8_t *want = bench_xmalloc(r->size);
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  for (uint64_t g = 1; g <= READ_REGIONS; g++)
    for (uint64_t i = 0; i < r->layers; i++) {
      strata_layer l;
      bench_check(strata_get(&txn, g, i, &l), "strata_get");
      if (i % 997 == 0) {
        bench_fill_layer(g, i, want, r->size);
        if (l.size != r->size || memcmp(l.data, want, r->size) != 0)
          bench_fail("store-read: region %" PRIu64 " layer %" PRIu64
                     " has the wrong contents",
                     g, i);
      }
    }
  strata_read_end(&txn);
  free(want);

  static const unsigned batch[BENCH_READ_MODES] = {READ_BATCH, 1};
  static const unsigned threads[BENCH_READ_PHASES] = {2, READ_MAX_THREADS, 2,
                                                      2};
  for (int m = 0; m < BENCH_READ_MODES; m++)
    for (int ph = 0; ph < BENCH_READ_PHASES; ph++) {
      bench_say("store-read: %u gets per snapshot, %u readers%s, %.1f s",
                batch[m], threads[ph],
                ph == BENCH_READ_WRITER2 ? " and a crystallizing writer" : "",
                p->seconds);
      run_phase(s, r, batch[m], threads[ph], ph == BENCH_READ_WRITER2,
                p->seconds, &r->phase[m][ph]);
    }
  /* Statistics on against off, and sampling for the staging pool's hot
   * layers on: the same reads through a second handle opened with
   * STRATA_STORE_NO_READ_STATS and a third with a staging pool (host mode,
   * default sampling, its worker running), in rotating short rounds so
   * that drifts of the machine hit all alike. */
  strata_store *off = bench_open_store_flags(dir, STRATA_STORE_NO_READ_STATS |
                                                      STRATA_STORE_READ_ONLY);
  bench_check(strata_store_refresh(off), "strata_store_refresh");
  strata_store_config sc;
  strata_store_config_init(&sc);
  sc.flags = STRATA_STORE_READ_ONLY;
  sc.staging.bytes = 64u << 20;
  sc.staging.flags = STRATA_STAGING_HOST;
  strata_store *sampled;
  bench_check(strata_store_open(dir, &sc, &sampled), dir);
  /* And the shared view on against off: two fresh handles opened alike
   * (read-only, statistics on) but for config.shared_view, so that the
   * first handle's history (the writer phase, its writer lock) is not part
   * of the comparison. The "on" one must hold a slot, its publisher thread
   * running: checked below through the view itself. */
  strata_store_config vc;
  strata_store_config_init(&vc);
  vc.flags = STRATA_STORE_READ_ONLY;
  strata_store *view, *noview;
  bench_check(strata_store_open(dir, &vc, &view), dir);
  bench_check(strata_store_refresh(view), "strata_store_refresh");
  vc.shared_view = 0;
  bench_check(strata_store_open(dir, &vc, &noview), dir);
  bench_check(strata_store_refresh(noview), "strata_store_refresh");
  /* Four of this process's five handles have the view on (s, off,
   * sampled, view); noview must not be among them. */
  strata_process *live = NULL;
  size_t nlive = 0, mine = 0;
  bench_check(strata_processes_read(dir, sizeof *live, &live, &nlive),
              "strata_processes_read");
  for (size_t i = 0; i < nlive; i++)
    mine += live[i].pid == (int64_t)getpid();
  strata_processes_free(live);
  if (mine != 4)
    bench_fail("store-read: %zu handles of this process are in %s/.strata.shm"
               ", not the 4 opened with the shared view on",
               mine, dir);
  enum { HANDLES = 5 };
  strata_store *handles[HANDLES] = {s, off, sampled, view, noview};
  double rate[HANDLES][BENCH_STATS_ROUNDS], cpu[HANDLES][BENCH_STATS_ROUNDS];
  bench_say("store-read: statistics on, off, with read sampling, and "
            "the shared view on and off, %d rounds each",
            BENCH_STATS_ROUNDS);
  for (int k = 0; k < HANDLES * BENCH_STATS_ROUNDS; k++) {
    bench_read_phase ph;
    /* The order rotates every round. */
    int which = (k + k / HANDLES) % HANDLES;
    run_phase(handles[which], r, READ_BATCH, 2, false, p->seconds / 4, &ph);
    rate[which][k / HANDLES] = ph.gets_per_s;
    cpu[which][k / HANDLES] = ph.cpu_s * 1e9 / (double)ph.gets;
  }
  for (int w = 0; w < HANDLES; w++) {
    qsort(rate[w], BENCH_STATS_ROUNDS, sizeof(double), bench_cmp_double);
    qsort(cpu[w], BENCH_STATS_ROUNDS, sizeof(double), bench_cmp_double);
  }
  r->stats_on_gets_per_s = rate[0][BENCH_STATS_ROUNDS / 2];
  r->stats_off_gets_per_s = rate[1][BENCH_STATS_ROUNDS / 2];
  r->sampled_gets_per_s = rate[2][BENCH_STATS_ROUNDS / 2];
  r->stats_on_cpu_ns = cpu[0][BENCH_STATS_ROUNDS / 2];
  r->stats_off_cpu_ns = cpu[1][BENCH_STATS_ROUNDS / 2];
  r->sampled_cpu_ns = cpu[2][BENCH_STATS_ROUNDS / 2];
  r->view_gets_per_s = rate[3][BENCH_STATS_ROUNDS / 2];
  r->view_cpu_ns = cpu[3][BENCH_STATS_ROUNDS / 2];
  r->noview_gets_per_s = rate[4][BENCH_STATS_ROUNDS / 2];
  r->noview_cpu_ns = cpu[4][BENCH_STATS_ROUNDS / 2];
  strata_store_close(noview);
  strata_store_close(view);
  strata_store_close(sampled);
  strata_store_close(off);
  strata_store_close(s);
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const store_read_result *r = result;
  fprintf(f,
          "store-read: %" PRIu64 " regions x %" PRIu64
          " layers x %zu B; random strata_get() (region and layer uniform), "
          "first and last byte read; %.1f s per phase; load average %.2f\n",
          r->regions, r->layers, r->size, r->phase[0][0].seconds, r->load1);
  static const char *const what[BENCH_READ_PHASES] = {
      "(a) idle store", "(b) idle store", "(c) writer crystallizing region 1",
      "(d) idle store, after (c)"};
  for (int m = 0; m < BENCH_READ_MODES; m++) {
    const bench_read_phase *ph = r->phase[m];
    if (m == BENCH_READ_BATCH)
      fprintf(f, "  one snapshot per %u gets:\n", r->batch);
    else
      fprintf(f, "  one snapshot per get:\n");
    fprintf(f, "    %-36s %7s %10s %11s %9s\n", "phase", "readers", "Mgets/s",
            "CPU ns/get", "/ (a)");
    for (int i = 0; i < BENCH_READ_PHASES; i++)
      fprintf(f, "    %-36s %7u %10.2f %11.1f %9.3f\n", what[i], ph[i].threads,
              ph[i].gets_per_s / 1e6, ph[i].cpu_s * 1e9 / (double)ph[i].gets,
              ph[i].gets_per_s / ph[0].gets_per_s);
    const bench_read_phase *w = &ph[BENCH_READ_WRITER2];
    uint64_t c = w->crystallizations ? w->crystallizations : 1;
    fprintf(f,
            "    (c) writer: %" PRIu64 " crystallizations in %.1f s (%.1f ms "
            "writing + %.1f ms fsync each), %" PRIu64
            " puts; writer CPU %.2f s, readers' CPU %.2f s\n",
            w->crystallizations, w->seconds,
            w->crystallize_write_s * 1e3 / (double)c,
            w->crystallize_fsync_s * 1e3 / (double)c, w->puts, w->writer_cpu_s,
            w->cpu_s);
    fprintf(f,
            "    target: (b)/(a) >= %.2f, measured %.3f;  (c)/(a) >= %.2f, "
            "measured %.3f\n",
            TARGET_READ_RATIO, ph[1].gets_per_s / ph[0].gets_per_s,
            TARGET_READ_RATIO, w->gets_per_s / ph[0].gets_per_s);
  }
  const bench_read_phase *b = &r->phase[BENCH_READ_BATCH][0];
  const bench_read_phase *g = &r->phase[BENCH_READ_SINGLE][0];
  fprintf(f,
          "  (a) snapshot per get / per %u gets: %.3f in gets/s; "
          "read_begin+read_end add %.1f ns of CPU per get\n",
          r->batch, g->gets_per_s / b->gets_per_s,
          g->cpu_s * 1e9 / (double)g->gets - b->cpu_s * 1e9 / (double)b->gets);
  fprintf(f,
          "  read statistics on / off (2 readers, %u gets per snapshot, "
          "medians of %d alternating rounds): %.2f / %.2f Mgets/s = %.3f; "
          "CPU per get %.1f / %.1f ns = %.3f\n"
          "    target: on/off >= 0.95, measured %.3f\n"
          "  read sampling for hot layers (staging pool, 1 get in 64) on / "
          "off: %.2f / %.2f Mgets/s = %.3f; CPU per get %.1f / %.1f ns\n",
          r->batch, BENCH_STATS_ROUNDS, r->stats_on_gets_per_s / 1e6,
          r->stats_off_gets_per_s / 1e6,
          r->stats_on_gets_per_s / r->stats_off_gets_per_s, r->stats_on_cpu_ns,
          r->stats_off_cpu_ns, r->stats_on_cpu_ns / r->stats_off_cpu_ns,
          r->stats_on_gets_per_s / r->stats_off_gets_per_s,
          r->sampled_gets_per_s / 1e6, r->stats_on_gets_per_s / 1e6,
          r->sampled_gets_per_s / r->stats_on_gets_per_s, r->sampled_cpu_ns,
          r->stats_on_cpu_ns);
  fprintf(f,
          "  shared view (.strata.shm) on / off (two read-only handles, "
          "statistics on): %.2f / %.2f Mgets/s = %.3f; "
          "CPU per get %.1f / %.1f ns\n"
          "    target: on/off >= 0.98, measured %.3f\n\n",
          r->view_gets_per_s / 1e6, r->noview_gets_per_s / 1e6,
          r->view_gets_per_s / r->noview_gets_per_s, r->view_cpu_ns,
          r->noview_cpu_ns, r->view_gets_per_s / r->noview_gets_per_s);
}

static void json(FILE *f, const void *result) {
  const store_read_result *r = result;
  static const char *const mode[BENCH_READ_MODES] = {"batch", "single"};
  static const char *const phase[BENCH_READ_PHASES] = {
      "idle_2", "idle_128", "writer_2", "idle_2_after"};
  fprintf(f,
          "    \"store-read\": {\"regions\": %" PRIu64 ", \"layers\": %" PRIu64
          ", \"size\": %zu, \"batch\": %u, \"puts_per_cycle\": %u, "
          "\"load1\": %.2f",
          r->regions, r->layers, r->size, r->batch, r->puts_per_cycle,
          r->load1);
  for (int m = 0; m < BENCH_READ_MODES; m++) {
    fprintf(f, ", \"%s\": {", mode[m]);
    for (int i = 0; i < BENCH_READ_PHASES; i++) {
      const bench_read_phase *ph = &r->phase[m][i];
      fprintf(
          f,
          "%s\"%s\": {\"threads\": %u, \"seconds\": %.4f, \"gets\": %" PRIu64
          ", \"gets_per_s\": %.1f, \"reader_cpu_s\": %.4f, "
          "\"ratio_to_idle_2\": %.4f",
          i ? ", " : "", phase[i], ph->threads, ph->seconds, ph->gets,
          ph->gets_per_s, ph->cpu_s,
          ph->gets_per_s / r->phase[m][0].gets_per_s);
      if (i == BENCH_READ_WRITER2)
        fprintf(f,
                ", \"puts\": %" PRIu64 ", \"crystallizations\": %" PRIu64
                ", \"writer_cpu_s\": %.4f, \"crystallize_write_s\": %.4f, "
                "\"crystallize_fsync_s\": %.4f",
                ph->puts, ph->crystallizations, ph->writer_cpu_s,
                ph->crystallize_write_s, ph->crystallize_fsync_s);
      fputs("}", f);
    }
    fputs("}", f);
  }
  fprintf(f,
          ", \"stats_on_gets_per_s\": %.1f, \"stats_off_gets_per_s\": %.1f, "
          "\"stats_on_cpu_ns\": %.2f, \"stats_off_cpu_ns\": %.2f, "
          "\"sampled_gets_per_s\": %.1f, \"sampled_cpu_ns\": %.2f",
          r->stats_on_gets_per_s, r->stats_off_gets_per_s, r->stats_on_cpu_ns,
          r->stats_off_cpu_ns, r->sampled_gets_per_s, r->sampled_cpu_ns);
  fprintf(f,
          ", \"shared_view_on_gets_per_s\": %.1f, "
          "\"shared_view_on_cpu_ns\": %.2f, "
          "\"shared_view_off_gets_per_s\": %.1f, "
          "\"shared_view_off_cpu_ns\": %.2f",
          r->view_gets_per_s, r->view_cpu_ns, r->noview_gets_per_s,
          r->noview_cpu_ns);
  fprintf(f, ", \"target_ratio\": %.2f}", TARGET_READ_RATIO);
}

const bench_scenario bench_sc_store_read = {
    "store-read", sizeof(store_read_result), run, print, json};
