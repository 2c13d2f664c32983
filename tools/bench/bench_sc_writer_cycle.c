/* Scenario "writer-cycle" of strata-bench: issue 19's writer. A store
 * holds one region of 100,000 x 256 B layers; each cycle puts 1,000
 * changed layers (random ids of the region, new contents) into its proto
 * and crystallizes it (fsync, the default), for --cycles cycles. Since
 * delta crystallization a small change is written as a delta file over the
 * base, and every max_depth-th cycle or so the stack is compacted into a
 * new base (docs/ARCHITECTURE.md, "Deltas"): the cycles are reported as a
 * median, p90, max and mean over all of them, compactions included, and
 * each cycle is classed by what the store serves after it (its depth, from
 * strata_store_region_delta_at()): a new delta on top, a merge of deltas,
 * or a compaction into a new base.
 *
 * Peers in the same run, each cycle on the same ids with the same bytes:
 * LMDB holding the same 100,000 layers, the 1,000 puts in one write
 * transaction committed with its default durable sync; and a second
 * Strata store opened with STRATA_STORE_NO_DELTAS, where every cycle
 * rewrites the whole region (what a cycle cost before deltas); and a third
 * opened with STRATA_STORE_BACKGROUND_COMPACT, whose crystallizations write
 * deltas only while the store's compactor thread merges and rewrites the
 * stack (its time is not in the cycles: the cycles show what the writer
 * waits for, the reader phase what the compactor costs the readers). The
 * four run in turn within each cycle, the first of them rotating, so that
 * drift in the machine's load spreads over all of them.
 *
 * Then the readers' side, for the deltas store and then the background
 * one: one thread doing random strata_get_data() on the region through
 * snapshots (one per 64 gets), its rate measured while the writer is idle
 * (2 x --seconds in all) and while the writer runs --cycles more cycles,
 * the two alternating WC_ROUNDS times; the goal is a busy rate >= 0.9x
 * the idle one. On a machine with two cores or fewer the reader and the writer
 * share the cores (and fsync's waits free one for the reader); the report
 * says so.
 *
 * Every figure is printed, none is judged beyond "met" or "MISSED"; the
 * content of every layer is checked against what the cycles put, in both
 * Strata stores and in LMDB, before anything is reported. */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_get.h"
#include "bench_store.h"

/* At scale 1 (--n 1000000): issue 19's case. */
#define WC_LAYERS 100000
#define WC_CHANGES 1000
#define WC_SIZE 256
#define WC_REGION 1
/* Gets per snapshot of the reader thread. */
#define WC_READ_BATCH 64
/* bench_fill_layer()'s region number of cycle c's contents is
 * WC_CONTENT_BASE + c: no cycle's bytes are another's or the base's. */
#define WC_CONTENT_BASE 1000

/* Issue 19's goals. */
#define TARGET_VS_LMDB 1.0
#define TARGET_READERS 0.9

enum { WP_DELTAS, WP_BG, WP_LMDB, WP_WHOLE, WP_COUNT };

static const char *const peer_names[WP_COUNT] = {
    "strata (deltas)", "strata (deltas, bg compact)", "lmdb txn+commit (sync)",
    "strata NO_DELTAS (whole)"};
static const char *const peer_keys[WP_COUNT] = {"strata", "strata_background",
                                                "lmdb", "strata_no_deltas"};
/* The Strata stores, st[] in run(): the peer's index there. */
static int store_of(int peer) {
  return peer == WP_DELTAS ? 0 : peer == WP_WHOLE ? 1 : 2;
}

/* What a Strata cycle did, by the depth served after it. */
enum { K_DELTA, K_MERGE, K_COMPACT, K_COUNT };

typedef struct wc_peer {
  bench_stat ms; /* per cycle: median, min, max */
  double p90_ms, mean_ms;
  /* Strata only: cycles that wrote a delta, merged deltas, compacted;
   * the mean ms of the delta cycles and of the compacting ones. */
  uint32_t kinds[K_COUNT];
  double delta_mean_ms, compact_mean_ms;
} wc_peer;

/* The reader thread: gets per second with the writer idle (before and
 * after) and while it cycles; the busy cycles' median and max ms. */
typedef struct wc_readers {
  double idle_gets_s, busy_gets_s, busy_cycle_ms, busy_max_ms;
  double idle_seconds, busy_seconds;
} wc_readers;

typedef struct writer_cycle_result {
  uint64_t layers, changes;
  size_t size;
  int cycles;
  long cores;
  double load1;
  wc_peer peer[WP_COUNT];
  wc_readers rd[2]; /* the deltas store, the background one */
} writer_cycle_result;

/* One Strata store with the region and its proto. */
typedef struct wc_strata {
  strata_store *s;
  strata_proto *pr;
} wc_strata;

typedef struct wc_lmdb {
  void *state; /* bench_lmdb's, for its file and removal */
  MDB_env *env;
  MDB_dbi dbi;
} wc_lmdb;

static void lmdb_check(int rc, const char *what) {
  if (rc != 0)
    bench_fail("lmdb %s: %s", what, mdb_strerror(rc));
}

/* Builds the layers with bench_lmdb (contents bench_fill_value(id)), then
 * opens the file again with LMDB's defaults: a commit is durable
 * (fdatasync of the data file). */
static void lmdb_setup(wc_lmdb *l, const char *dir, uint64_t layers) {
  uint64_t *ids = bench_xmalloc(layers * sizeof *ids);
  for (uint64_t i = 0; i < layers; i++)
    ids[i] = i;
  bench_layers ls = {.n = layers, .size = WC_SIZE, .ids = ids};
  char err[256];
  if (bench_lmdb.build(&l->state, dir, &ls, err, sizeof err) != 0)
    bench_fail("%s", err);
  free(ids);
  lmdb_check(mdb_env_create(&l->env), "env_create");
  /* bench_lmdb's own bound: twice the raw bytes plus slack. */
  lmdb_check(mdb_env_set_mapsize(
                 l->env, (size_t)(2 * layers * (WC_SIZE + 64) + (64u << 20))),
             "set_mapsize");
  lmdb_check(
      mdb_env_open(l->env, bench_state_path(l->state), MDB_NOSUBDIR, 0644),
      bench_state_path(l->state));
  MDB_txn *txn;
  lmdb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "txn_begin");
  lmdb_check(mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, &l->dbi), "dbi_open");
  lmdb_check(mdb_txn_commit(txn), "commit");
}

static void lmdb_teardown(wc_lmdb *l) {
  mdb_env_close(l->env);
  bench_lmdb.destroy(l->state);
}

/* One cycle: the k puts of ids[] with contents buf[j * WC_SIZE] in one
 * write transaction, committed. Returns its ms. */
static double lmdb_cycle(wc_lmdb *l, const uint64_t *ids, size_t k,
                         const uint8_t *buf) {
  uint64_t t0 = bench_now_ns();
  MDB_txn *txn;
  lmdb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "txn_begin");
  for (size_t j = 0; j < k; j++) {
    uint64_t id = ids[j];
    MDB_val key = {sizeof id, &id};
    MDB_val v = {WC_SIZE, (void *)(buf + j * WC_SIZE)};
    lmdb_check(mdb_put(txn, l->dbi, &key, &v, 0), "put");
  }
  lmdb_check(mdb_txn_commit(txn), "commit");
  return (double)(bench_now_ns() - t0) / 1e6;
}

static void strata_setup(wc_strata *w, const char *dir, unsigned flags,
                         uint64_t layers) {
  w->s = bench_open_store_flags(dir, flags);
  w->pr =
      bench_make_region(w->s, WC_REGION, "writer", layers, WC_SIZE, WC_REGION);
}

/* One cycle: the puts and the crystallization. Returns its ms and, in
 * *kind, what it did, from the depth served before and after it (read
 * outside the timing): one delta more, none (a compaction into a new
 * base), or anything else (deltas merged). */
static double strata_cycle(wc_strata *w, const uint64_t *ids, size_t k,
                           const uint8_t *buf, int *kind) {
  uint32_t before = bench_region_depth(w->s, WC_REGION);
  uint64_t t0 = bench_now_ns();
  for (size_t j = 0; j < k; j++)
    bench_check(strata_proto_put(w->pr, ids[j], NULL, 0, NULL,
                                 buf + j * WC_SIZE, WC_SIZE),
                "strata_proto_put");
  bench_check(strata_crystallize(w->s, WC_REGION), "strata_crystallize");
  double ms = (double)(bench_now_ns() - t0) / 1e6;
  uint32_t d = bench_region_depth(w->s, WC_REGION);
  *kind = d == 0 ? K_COMPACT : d == before + 1 ? K_DELTA : K_MERGE;
  return ms;
}

/* Cycle c's ids (random ids of the region; a repeat is simply put twice,
 * as a writer would) and their contents. */
static void cycle_input(uint64_t c, uint64_t layers, size_t k, uint64_t *ids,
                        uint8_t *buf) {
  uint64_t rng = 0x6379636c65ull ^ (c * 0x9e3779b97f4a7c15ull);
  for (size_t j = 0; j < k; j++) {
    uint64_t x = bench_splitmix64(&rng);
    ids[j] = (uint64_t)(((unsigned __int128)x * layers) >> 64);
    bench_fill_layer(WC_CONTENT_BASE + c, ids[j], buf + j * WC_SIZE, WC_SIZE);
  }
}

/* Nearest-rank p90 and the mean of v[0..n-1]. */
static void p90_mean(const double *v, int n, double *p90, double *mean) {
  double *s = bench_xmalloc((size_t)n * sizeof *s), sum = 0;
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
  for (int i = 0; i < n; i++)
    sum += s[i];
  int r = (int)ceil(0.9 * n) - 1;
  *p90 = s[r < 0 ? 0 : r];
  *mean = sum / n;
  free(s);
}

static void summarize_peer(wc_peer *p, const double *ms, const int *kind, int n,
                           bool strata) {
  p->ms = bench_summarize(ms, n);
  p90_mean(ms, n, &p->p90_ms, &p->mean_ms);
  if (!strata)
    return;
  double sum[K_COUNT] = {0};
  for (int i = 0; i < n; i++) {
    p->kinds[kind[i]]++;
    sum[kind[i]] += ms[i];
  }
  p->delta_mean_ms = p->kinds[K_DELTA] ? sum[K_DELTA] / p->kinds[K_DELTA] : 0;
  p->compact_mean_ms =
      p->kinds[K_COMPACT] ? sum[K_COMPACT] / p->kinds[K_COMPACT] : 0;
}

/* Checks every layer of the nst Strata stores, and of LMDB unless l is
 * NULL, against what was put: the newest cycle that put it (last[id], -1
 * for none) or the initial contents. Exits on a difference: a figure of a
 * writer that lost a put is not reported. */
static void verify(wc_strata *st, int nst, wc_lmdb *l, uint64_t layers,
                   const int32_t *last) {
  uint8_t want[WC_SIZE];
  strata_txn txn[3];
  for (int i = 0; i < nst; i++)
    bench_check(strata_read_begin(st[i].s, &txn[i]), "strata_read_begin");
  MDB_txn *lt = NULL;
  if (l != NULL)
    lmdb_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &lt), "txn_begin");
  for (uint64_t id = 0; id < layers; id++) {
    if (last[id] < 0)
      bench_fill_layer(WC_REGION, id, want, WC_SIZE);
    else
      bench_fill_layer(WC_CONTENT_BASE + (uint64_t)last[id], id, want, WC_SIZE);
    for (int i = 0; i < nst; i++) {
      const void *d;
      uint64_t size;
      bench_check(strata_get_data(&txn[i], WC_REGION, id, &d, &size),
                  "strata_get_data");
      if (size != WC_SIZE || memcmp(d, want, WC_SIZE) != 0)
        bench_fail("writer-cycle: store %d, layer %" PRIu64
                   ": not the bytes last put",
                   i, id);
    }
    MDB_val k = {sizeof id, &id}, v;
    if (lt != NULL && last[id] >= 0 &&
        (mdb_get(lt, l->dbi, &k, &v) != 0 || v.mv_size != WC_SIZE ||
         memcmp(v.mv_data, want, WC_SIZE) != 0))
      bench_fail("writer-cycle: lmdb, key %" PRIu64 ": not the bytes last put",
                 id);
  }
  if (lt != NULL)
    mdb_txn_abort(lt);
  for (int i = 0; i < nst; i++)
    strata_read_end(&txn[i]);
}

/* ---- the reader thread ---- */

typedef struct wc_reader {
  _Alignas(64) _Atomic uint64_t gets;
  _Atomic bool stop;
  strata_store *s;
  uint64_t layers, sink, bad;
  int rc;
  pthread_t tid;
} wc_reader;

static void *reader_main(void *arg) {
  wc_reader *rd = arg;
  uint64_t rng = 0x726561646572ull, n = 0, sink = 0, bad = 0;
  while (!atomic_load_explicit(&rd->stop, memory_order_relaxed)) {
    strata_txn txn;
    int rc = strata_read_begin(rd->s, &txn);
    if (rc != 0) {
      rd->rc = rc;
      break;
    }
    for (unsigned k = 0; k < WC_READ_BATCH; k++) {
      uint64_t x = bench_splitmix64(&rng);
      uint64_t id = (uint64_t)(((unsigned __int128)x * rd->layers) >> 64);
      const void *d;
      uint64_t size;
      if (strata_get_data(&txn, WC_REGION, id, &d, &size) != 0 ||
          size != WC_SIZE) {
        bad++;
        continue;
      }
      const uint8_t *p = d;
      sink += p[0] + p[size - 1];
    }
    strata_read_end(&txn);
    n += WC_READ_BATCH;
    atomic_store_explicit(&rd->gets, n, memory_order_relaxed);
  }
  rd->sink = sink;
  rd->bad = bad;
  return NULL;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Idle and busy phases alternate this many times: the reader's rate
 * drifts by tens of percent over seconds on a shared VM (idle rates of
 * 3.1 and 4.4 M gets/s in two runs of the same build), and one busy
 * phase between two idle ones measured that drift as much as the writer. */
#define WC_ROUNDS 4

/* The readers' rate: idle, then WC_ROUNDS times a share of `cycles` cycles
 * of store `w` (numbered from `first`, recorded in last[]) and idle again;
 * 2 x `seconds` idle in all. */
static void readers_phase(const writer_cycle_result *r, wc_readers *out,
                          wc_strata *w, double seconds, uint64_t first,
                          uint64_t *ids, uint8_t *buf, int32_t *last) {
  wc_reader rd = {.s = w->s, .layers = r->layers};
  if (pthread_create(&rd.tid, NULL, reader_main, &rd) != 0)
    bench_fail("pthread_create failed");
  /* Let it take its reader slot and warm up before counting. */
  sleep_s(0.1);
  int rounds = r->cycles < WC_ROUNDS ? r->cycles : WC_ROUNDS;
  double idle_s = 2 * seconds / (rounds + 1);
  uint64_t gets[2] = {0}, ns[2] = {0}; /* [0] idle, [1] busy */
  double *ms = bench_xmalloc((size_t)r->cycles * sizeof *ms);
  bench_say("writer-cycle: reader, writer idle %.1f s and a share of %d "
            "cycles, %d times, then idle",
            idle_s, r->cycles, rounds);
  int c = 0;
  for (int ph = 0; ph < 2 * rounds + 1; ph++) {
    uint64_t g0 = atomic_load_explicit(&rd.gets, memory_order_relaxed);
    uint64_t t0 = bench_now_ns();
    int busy = ph & 1;
    if (!busy) {
      sleep_s(idle_s);
    } else {
      /* This round's share of the cycles; the last takes the remainder. */
      int end = ph == 2 * rounds - 1 ? r->cycles : c + r->cycles / rounds;
      for (; c < end; c++) {
        uint64_t cyc = first + (uint64_t)c;
        cycle_input(cyc, r->layers, (size_t)r->changes, ids, buf);
        int kind;
        ms[c] = strata_cycle(w, ids, (size_t)r->changes, buf, &kind);
        for (uint64_t j = 0; j < r->changes; j++)
          last[ids[j]] = (int32_t)cyc;
      }
    }
    gets[busy] += atomic_load_explicit(&rd.gets, memory_order_relaxed) - g0;
    ns[busy] += bench_now_ns() - t0;
  }
  atomic_store(&rd.stop, true);
  pthread_join(rd.tid, NULL);
  bench_check(rd.rc, "reader: strata_read_begin");
  if (rd.bad != 0)
    bench_fail("writer-cycle: the reader missed %" PRIu64 " layers", rd.bad);
  bench_sink += rd.sink;
  out->idle_seconds = (double)ns[0] / 1e9;
  out->busy_seconds = (double)ns[1] / 1e9;
  out->idle_gets_s = (double)gets[0] / out->idle_seconds;
  out->busy_gets_s = (double)gets[1] / out->busy_seconds;
  bench_stat bs = bench_summarize(ms, r->cycles);
  out->busy_cycle_ms = bs.median;
  out->busy_max_ms = bs.max;
  free(ms);
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  writer_cycle_result *r = result;
  *r = (writer_cycle_result){.layers = bench_scaled(WC_LAYERS, p->scale),
                             .changes = bench_scaled(WC_CHANGES, p->scale),
                             .size = WC_SIZE,
                             .cycles = ctx->o->cycles,
                             .cores = sysconf(_SC_NPROCESSORS_ONLN),
                             .load1 = bench_load1()};
  char *dir = bench_mkdir(p->dir, "writer-cycle");
  char *dd = bench_mkdir(dir, "deltas"), *dw = bench_mkdir(dir, "whole");
  char *dl = bench_mkdir(dir, "lmdb");
  char *db = bench_mkdir(dir, "background");
  bench_say("writer-cycle: building %" PRIu64 " x %d B four times", r->layers,
            WC_SIZE);
  wc_strata st[3];
  strata_setup(&st[0], dd, 0, r->layers);
  strata_setup(&st[1], dw, STRATA_STORE_NO_DELTAS, r->layers);
  strata_setup(&st[2], db, STRATA_STORE_BACKGROUND_COMPACT, r->layers);
  wc_lmdb l;
  lmdb_setup(&l, dl, r->layers);

  int n = r->cycles;
  size_t k = (size_t)r->changes;
  uint64_t *ids = bench_xmalloc(k * sizeof *ids);
  uint8_t *buf = bench_xmalloc(k * WC_SIZE);
  int32_t *last = bench_xmalloc(r->layers * sizeof *last);
  memset(last, 0xff, r->layers * sizeof *last); /* -1: never put */
  double *ms[WP_COUNT];
  int *kind[WP_COUNT];
  for (int q = 0; q < WP_COUNT; q++) {
    ms[q] = bench_xmalloc((size_t)n * sizeof *ms[q]);
    kind[q] = bench_xmalloc((size_t)n * sizeof *kind[q]);
  }
  for (int c = 0; c < n; c++) {
    if (c % 5 == 0)
      bench_say("writer-cycle: cycle %d of %d", c + 1, n);
    cycle_input((uint64_t)c, r->layers, k, ids, buf);
    for (int q = 0; q < WP_COUNT; q++) {
      int pe = (q + c) % WP_COUNT;
      kind[pe][c] = K_COMPACT;
      if (pe == WP_LMDB)
        ms[pe][c] = lmdb_cycle(&l, ids, k, buf);
      else
        ms[pe][c] = strata_cycle(&st[store_of(pe)], ids, k, buf, &kind[pe][c]);
    }
    for (size_t j = 0; j < k; j++)
      last[ids[j]] = c;
  }
  bench_check(strata_compact_wait(st[2].s), "strata_compact_wait");
  verify(st, 3, &l, r->layers, last);
  for (int q = 0; q < WP_COUNT; q++)
    summarize_peer(&r->peer[q], ms[q], kind[q], n, q != WP_LMDB);

  int32_t *last_bg = bench_xmalloc(r->layers * sizeof *last_bg);
  memcpy(last_bg, last, r->layers * sizeof *last_bg);
  readers_phase(r, &r->rd[0], &st[0], p->seconds, (uint64_t)n, ids, buf, last);
  verify(st, 1, NULL, r->layers, last);
  readers_phase(r, &r->rd[1], &st[2], p->seconds, (uint64_t)n, ids, buf,
                last_bg);
  bench_check(strata_compact_wait(st[2].s), "strata_compact_wait");
  verify(&st[2], 1, NULL, r->layers, last_bg);
  free(last_bg);

  for (int q = 0; q < WP_COUNT; q++) {
    free(ms[q]);
    free(kind[q]);
  }
  free(ids);
  free(buf);
  free(last);
  lmdb_teardown(&l);
  for (int i = 0; i < 3; i++)
    strata_store_close(st[i].s);
  bench_rmtree(dir);
  free(db);
  free(dd);
  free(dw);
  free(dl);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const writer_cycle_result *r = result;
  fprintf(f,
          "writer-cycle: one region of %" PRIu64 " x %zu B; each cycle puts "
          "%" PRIu64 " changed layers (random ids, new bytes) and "
          "crystallizes (fsync); %d cycles; load average %.2f\n",
          r->layers, r->size, r->changes, r->cycles, r->load1);
  fprintf(f, "  %-26s %9s %9s %9s %9s %9s\n", "ms per cycle", "median", "p90",
          "max", "mean", "min");
  for (int q = 0; q < WP_COUNT; q++) {
    const wc_peer *p = &r->peer[q];
    fprintf(f, "  %-26s %9.2f %9.2f %9.2f %9.2f %9.2f\n", peer_names[q],
            p->ms.median, p->p90_ms, p->ms.max, p->mean_ms, p->ms.min);
  }
  for (int q = 0; q < WP_COUNT; q++) {
    if (q == WP_LMDB || q == WP_BG)
      continue;
    const wc_peer *p = &r->peer[q];
    fprintf(f,
            "  %s: %u cycles wrote a delta (mean %.2f ms), %u merged deltas, "
            "%u compacted into a new base (mean %.2f ms)\n",
            peer_names[q], p->kinds[K_DELTA], p->delta_mean_ms,
            p->kinds[K_MERGE], p->kinds[K_COMPACT], p->compact_mean_ms);
  }
  fprintf(f,
          "  %s: every crystallization writes a delta; merges and base "
          "rewrites run on the store's compactor thread, outside the "
          "cycles\n",
          peer_names[WP_BG]);
  const wc_peer *s = &r->peer[WP_DELTAS], *l = &r->peer[WP_LMDB],
                *w = &r->peer[WP_WHOLE], *b = &r->peer[WP_BG];
  fprintf(f,
          "  strata/lmdb: median %.2f, p90 %.2f, mean %.2f; NO_DELTAS/lmdb: "
          "median %.2f, mean %.2f; NO_DELTAS/strata: mean %.2f\n",
          s->ms.median / l->ms.median, s->p90_ms / l->p90_ms,
          s->mean_ms / l->mean_ms, w->ms.median / l->ms.median,
          w->mean_ms / l->mean_ms, w->mean_ms / s->mean_ms);
  fprintf(f,
          "  background/lmdb: median %.2f, p90 %.2f, max %.2f, mean %.2f; "
          "background/deltas: max %.2f, mean %.2f\n",
          b->ms.median / l->ms.median, b->p90_ms / l->p90_ms,
          b->ms.max / l->ms.max, b->mean_ms / l->mean_ms, b->ms.max / s->ms.max,
          b->mean_ms / s->mean_ms);
  for (int i = 0; i < 2; i++) {
    const wc_readers *rd = &r->rd[i];
    fprintf(f,
            "  reader of the %s store (strata_get_data, a snapshot per %d "
            "gets): %.2f M gets/s with the writer idle (%.1f s), %.2f M/s "
            "while it cycles (%.1f s, %d cycles, median %.2f ms, max %.2f "
            "ms); busy/idle %.2f\n",
            i ? "background" : "deltas", WC_READ_BATCH, rd->idle_gets_s / 1e6,
            rd->idle_seconds, rd->busy_gets_s / 1e6, rd->busy_seconds,
            r->cycles, rd->busy_cycle_ms, rd->busy_max_ms,
            rd->busy_gets_s / rd->idle_gets_s);
  }
  if (r->cores <= 2)
    fprintf(f,
            "  (%ld cores: the reader and the writer share them, and with "
            "them the busy/idle ratio)\n",
            r->cores);
  bench_target t[6] = {
      {"strata/lmdb, mean ms per cycle", s->mean_ms / l->mean_ms,
       TARGET_VS_LMDB, true},
      {"strata/lmdb, median ms per cycle", s->ms.median / l->ms.median,
       TARGET_VS_LMDB, true},
      {"background/lmdb, mean ms per cycle", b->mean_ms / l->mean_ms,
       TARGET_VS_LMDB, true},
      {"background/lmdb, max ms per cycle", b->ms.max / l->ms.max,
       TARGET_VS_LMDB, true},
      {"reader gets/s busy / idle", r->rd[0].busy_gets_s / r->rd[0].idle_gets_s,
       TARGET_READERS, false},
      {"reader gets/s busy / idle, background",
       r->rd[1].busy_gets_s / r->rd[1].idle_gets_s, TARGET_READERS, false}};
  bench_print_targets(f, t, 6);
}

static void json(FILE *f, const void *result) {
  const writer_cycle_result *r = result;
  fprintf(f,
          "    \"writer-cycle\": {\"layers\": %" PRIu64
          ", \"changes\": %" PRIu64 ", \"layer_bytes\": %zu, \"cycles\": %d, "
          "\"cores\": %ld, \"load1\": %.2f",
          r->layers, r->changes, r->size, r->cycles, r->cores, r->load1);
  for (int q = 0; q < WP_COUNT; q++) {
    const wc_peer *p = &r->peer[q];
    fprintf(f, ", \"%s\": {", peer_keys[q]);
    bench_json_stat(f, "cycle_ms", p->ms);
    fprintf(f, ", \"p90_ms\": %.4f, \"mean_ms\": %.4f", p->p90_ms, p->mean_ms);
    if (q != WP_LMDB)
      fprintf(f,
              ", \"delta_cycles\": %u, \"merge_cycles\": %u, "
              "\"compact_cycles\": %u, \"delta_mean_ms\": %.4f, "
              "\"compact_mean_ms\": %.4f",
              p->kinds[K_DELTA], p->kinds[K_MERGE], p->kinds[K_COMPACT],
              p->delta_mean_ms, p->compact_mean_ms);
    fputc('}', f);
  }
  for (int i = 0; i < 2; i++) {
    const wc_readers *rd = &r->rd[i];
    fprintf(f,
            ", \"%s\": {\"idle_gets_s\": %.0f, \"busy_gets_s\": %.0f, "
            "\"idle_s\": %.3f, \"busy_s\": %.3f, \"busy_cycle_ms\": %.4f, "
            "\"busy_max_ms\": %.4f}",
            i ? "reader_background" : "reader", rd->idle_gets_s,
            rd->busy_gets_s, rd->idle_seconds, rd->busy_seconds,
            rd->busy_cycle_ms, rd->busy_max_ms);
  }
  fprintf(f, ", \"target_vs_lmdb\": %.1f, \"target_readers\": %.1f}",
          TARGET_VS_LMDB, TARGET_READERS);
}

const bench_scenario bench_sc_writer_cycle = {
    "writer-cycle", sizeof(writer_cycle_result), run, print, json};
