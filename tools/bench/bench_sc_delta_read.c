/* Scenario "delta-read" of strata-bench: what a read costs through a
 * region served as a base plus delta files, next to the same region
 * compacted into one base (issue 19's goal: at most 1.2x).
 *
 * One store holds two regions with the same ids and the same bytes:
 * region 1 is a base of 100,000 x 256 B layers and DR_DEPTH
 * crystallizations of 1,000 changed layers each (random ids, new bytes),
 * each written as a delta file; region 2 had the same layers and the same
 * changes, then one crystallization without changes, which compacts it
 * into a single new base (docs/ARCHITECTURE.md, "Deltas"). The store is
 * then closed and opened again, so both are served from their files, with
 * no proto, as a reader process sees them; the depths are read back from
 * the store (strata_store_region_delta_at()) and every layer of the two
 * regions is compared before anything is timed.
 *
 * Timed, in ns per get through one snapshot: strata_get_data() one id at
 * a time, and strata_get_data_many() in batches of DR_BATCH, each reading
 * the first and last byte of every content; over random ids of the whole
 * region (about 4% of them live in a delta) and over random ids among the
 * changed ones (every one in a delta). Each repetition measures both
 * regions, the first of them alternating. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench_get.h"
#include "bench_store.h"

/* At scale 1 (--n 1000000). */
#define DR_LAYERS 100000
#define DR_CHANGES 1000
#define DR_SIZE 256
/* The crystallizations over the base: the store's max_depth (4), so that
 * the stack is as deep as a store lets it grow. */
#define DR_DEPTH 4
#define DR_BATCH 64
#define DR_MAX_REPS 5
/* Keys drawn per key set; a measurement of more gets goes round them. */
#define DR_MAX_KEYS (1u << 20)
/* The most gets one measurement times (--gets caps it lower). */
#define DR_MAX_GETS 4000000u
/* bench_fill_layer()'s region number of change c's contents; the base's
 * is DR_FILL for both regions. */
#define DR_FILL 1
#define DR_CONTENT_BASE 2000

#define TARGET_DELTA_READ 1.2

enum { R_DELTAS, R_COMPACT, R_COUNT };
enum { K_ALL, K_CHANGED, K_COUNT };
enum { M_SINGLE, M_MANY, M_COUNT };

static const uint64_t region_ids[R_COUNT] = {1, 2};
static const char *const keyset_names[K_COUNT] = {"random ids",
                                                  "changed ids (in a delta)"};
static const char *const keyset_keys[K_COUNT] = {"random", "changed"};
static const char *const method_names[M_COUNT] = {
    "strata_get_data", "strata_get_data_many, 64/call"};
static const char *const method_keys[M_COUNT] = {"get_data", "get_data_many"};

typedef struct delta_read_result {
  uint64_t layers, changes, gets;
  size_t size;
  uint32_t depth[R_COUNT]; /* served after the reopen */
  int reps;
  double load1;
  bench_stat ns[K_COUNT][M_COUNT][R_COUNT];
} delta_read_result;

_Static_assert(DR_BATCH == 64, "method_names spells the batch size");

/* Change c: `k` random ids of the region and their new contents, put into
 * both regions' protos, then both crystallized. Records the ids. */
static void change(strata_store *s, strata_proto *const pr[R_COUNT], uint64_t c,
                   uint64_t layers, uint64_t k, uint64_t *changed) {
  uint8_t buf[DR_SIZE];
  uint64_t rng = 0x64656c7461ull ^ (c * 0x9e3779b97f4a7c15ull);
  for (uint64_t j = 0; j < k; j++) {
    uint64_t id =
        (uint64_t)(((unsigned __int128)bench_splitmix64(&rng) * layers) >> 64);
    changed[j] = id;
    bench_fill_layer(DR_CONTENT_BASE + c, id, buf, DR_SIZE);
    for (int r = 0; r < R_COUNT; r++)
      bench_check(strata_proto_put(pr[r], id, NULL, 0, NULL, buf, DR_SIZE),
                  "strata_proto_put");
  }
  for (int r = 0; r < R_COUNT; r++)
    bench_check(strata_crystallize(s, region_ids[r]), "strata_crystallize");
}

/* Every layer of the two regions holds the same bytes. */
static void compare_regions(strata_store *s, uint64_t layers) {
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  for (uint64_t id = 0; id < layers; id++) {
    const void *d[R_COUNT];
    uint64_t size[R_COUNT];
    for (int r = 0; r < R_COUNT; r++)
      bench_check(strata_get_data(&txn, region_ids[r], id, &d[r], &size[r]),
                  "strata_get_data");
    if (size[0] != DR_SIZE || size[1] != DR_SIZE ||
        memcmp(d[0], d[1], DR_SIZE) != 0)
      bench_fail(
          "delta-read: layer %" PRIu64 " differs between the two regions", id);
  }
  strata_read_end(&txn);
}

/* The end of a timed loop started at t0: ns per get; exits when a get
 * missed (every id read is in both regions). */
static double finish(uint64_t t0, uint64_t gets, uint64_t miss, uint64_t sink) {
  uint64_t t1 = bench_now_ns();
  if (miss != 0)
    bench_fail("delta-read: %" PRIu64 " gets missed", miss);
  bench_sink += sink;
  return (double)(t1 - t0) / (double)gets;
}

/* ns per get of `gets` lookups of region `region`, going round keys[]. */
static double time_single(const strata_txn *txn, uint64_t region,
                          const uint64_t *keys, uint64_t nkeys, uint64_t gets) {
  uint64_t sink = 0, miss = 0, t0 = bench_now_ns();
  for (uint64_t i = 0, j = 0; i < gets; i++) {
    const void *d;
    uint64_t size;
    if (strata_get_data(txn, region, keys[j], &d, &size) != 0) {
      miss++;
    } else {
      const uint8_t *p = d;
      sink += p[0] + p[size - 1];
    }
    if (++j == nkeys)
      j = 0;
  }
  return finish(t0, gets, miss, sink);
}

/* The same through strata_get_data_many(), DR_BATCH refs a call; refs[]
 * holds nkeys refs (a multiple of DR_BATCH) of one region. */
static double time_many(const strata_txn *txn, const strata_layer_ref *refs,
                        uint64_t nkeys, uint64_t gets) {
  const void *data[DR_BATCH];
  uint64_t sizes[DR_BATCH];
  uint64_t sink = 0, miss = 0, t0 = bench_now_ns();
  for (uint64_t i = 0, j = 0; i < gets; i += DR_BATCH) {
    size_t found = strata_get_data_many(txn, refs + j, DR_BATCH, data, sizes);
    miss += DR_BATCH - found;
    for (unsigned b = 0; b < DR_BATCH; b++) {
      const uint8_t *p = data[b];
      if (p != NULL)
        sink += p[0] + p[sizes[b] - 1];
    }
    j += DR_BATCH;
    if (j == nkeys)
      j = 0;
  }
  return finish(t0, gets, miss, sink);
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  delta_read_result *r = result;
  uint64_t gets = ctx->o->gets < DR_MAX_GETS ? ctx->o->gets : DR_MAX_GETS;
  gets = (gets + DR_BATCH - 1) / DR_BATCH * DR_BATCH;
  *r =
      (delta_read_result){.layers = bench_scaled(DR_LAYERS, p->scale),
                          .changes = bench_scaled(DR_CHANGES, p->scale),
                          .gets = gets,
                          .size = DR_SIZE,
                          .reps = p->reps < DR_MAX_REPS ? p->reps : DR_MAX_REPS,
                          .load1 = bench_load1()};
  char *dir = bench_mkdir(p->dir, "delta-read");
  bench_say("delta-read: two regions of %" PRIu64 " x %d B, %d changes of "
            "%" PRIu64 " layers",
            r->layers, DR_SIZE, DR_DEPTH, r->changes);
  strata_store *s = bench_open_store_flags(dir, 0);
  strata_proto *pr[R_COUNT];
  for (int i = 0; i < R_COUNT; i++)
    pr[i] = bench_make_region(s, region_ids[i], "delta-read", r->layers,
                              DR_SIZE, DR_FILL);
  uint64_t nchanged = DR_DEPTH * r->changes;
  uint64_t *changed = bench_xmalloc(nchanged * sizeof *changed);
  for (uint64_t c = 0; c < DR_DEPTH; c++)
    change(s, pr, c, r->layers, r->changes, changed + c * r->changes);
  /* A crystallization without changes compacts the stack. */
  bench_check(strata_crystallize(s, region_ids[R_COMPACT]),
              "strata_crystallize");
  strata_store_close(s);
  s = bench_open_store_flags(dir, 0);
  for (int i = 0; i < R_COUNT; i++)
    r->depth[i] = bench_region_depth(s, region_ids[i]);
  if (r->depth[R_DELTAS] == 0 || r->depth[R_COMPACT] != 0)
    bench_fail("delta-read: depths %u and %u; want deltas over region 1's "
               "base and none over region 2's",
               r->depth[R_DELTAS], r->depth[R_COMPACT]);
  compare_regions(s, r->layers);

  /* The keys: DR_MAX_KEYS at most, a multiple of DR_BATCH. */
  uint64_t nkeys = gets < DR_MAX_KEYS ? gets : DR_MAX_KEYS;
  uint64_t *keys[K_COUNT];
  strata_layer_ref *refs[K_COUNT][R_COUNT];
  uint64_t rng = 0x6b657973ull;
  for (int k = 0; k < K_COUNT; k++) {
    keys[k] = bench_xmalloc(nkeys * sizeof *keys[k]);
    for (uint64_t i = 0; i < nkeys; i++) {
      uint64_t x = bench_splitmix64(&rng);
      keys[k][i] = k == K_ALL
                       ? (uint64_t)(((unsigned __int128)x * r->layers) >> 64)
                       : changed[x % nchanged];
    }
    for (int g = 0; g < R_COUNT; g++) {
      refs[k][g] = bench_xmalloc(nkeys * sizeof *refs[k][g]);
      for (uint64_t i = 0; i < nkeys; i++)
        refs[k][g][i] = (strata_layer_ref){region_ids[g], keys[k][i]};
    }
  }

  double v[K_COUNT][M_COUNT][R_COUNT][DR_MAX_REPS];
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  for (int rep = 0; rep < r->reps; rep++) {
    bench_say("delta-read: rep %d of %d", rep + 1, r->reps);
    for (int k = 0; k < K_COUNT; k++)
      for (int m = 0; m < M_COUNT; m++)
        for (int q = 0; q < R_COUNT; q++) {
          int g = (q + rep) % R_COUNT;
          v[k][m][g][rep] =
              m == M_SINGLE
                  ? time_single(&txn, region_ids[g], keys[k], nkeys, gets)
                  : time_many(&txn, refs[k][g], nkeys, gets);
        }
  }
  strata_read_end(&txn);
  for (int k = 0; k < K_COUNT; k++)
    for (int m = 0; m < M_COUNT; m++)
      for (int g = 0; g < R_COUNT; g++)
        r->ns[k][m][g] = bench_summarize(v[k][m][g], r->reps);

  for (int k = 0; k < K_COUNT; k++) {
    free(keys[k]);
    for (int g = 0; g < R_COUNT; g++)
      free(refs[k][g]);
  }
  free(changed);
  strata_store_close(s);
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const delta_read_result *r = result;
  fprintf(f,
          "delta-read: %" PRIu64 " x %zu B; region 1: base + %u deltas of "
          "%" PRIu64 " changed layers each, region 2: the same compacted into "
          "one base; %" PRIu64 " gets per measurement, ns/get median (min, "
          "max) of %d; load average %.2f\n",
          r->layers, r->size, r->depth[R_DELTAS], r->changes, r->gets, r->reps,
          r->load1);
  fprintf(f, "  %-26s %-28s %24s %24s %7s\n", "ids", "call", "base + deltas",
          "compacted", "ratio");
  bench_target t[K_COUNT * M_COUNT];
  static char what[K_COUNT * M_COUNT][64];
  for (int k = 0; k < K_COUNT; k++)
    for (int m = 0; m < M_COUNT; m++) {
      const bench_stat *d = &r->ns[k][m][R_DELTAS],
                       *c = &r->ns[k][m][R_COMPACT];
      double ratio = d->median / c->median;
      fprintf(f,
              "  %-26s %-28s %8.1f (%6.1f, %6.1f) %8.1f (%6.1f, %6.1f) "
              "%7.2f\n",
              keyset_names[k], method_names[m], d->median, d->min, d->max,
              c->median, c->min, c->max, ratio);
      int i = k * M_COUNT + m;
      snprintf(what[i], sizeof what[i], "deltas/compacted %s %s",
               keyset_keys[k], method_keys[m]);
      t[i] = (bench_target){what[i], ratio, TARGET_DELTA_READ, true};
    }
  bench_print_targets(f, t, K_COUNT * M_COUNT);
}

static void json(FILE *f, const void *result) {
  const delta_read_result *r = result;
  fprintf(f,
          "    \"delta-read\": {\"layers\": %" PRIu64 ", \"changes\": %" PRIu64
          ", \"layer_bytes\": %zu, \"depth\": %u, \"compacted_depth\": %u, "
          "\"gets\": %" PRIu64 ", \"reps\": %d, \"load1\": %.2f",
          r->layers, r->changes, r->size, r->depth[R_DELTAS],
          r->depth[R_COMPACT], r->gets, r->reps, r->load1);
  for (int k = 0; k < K_COUNT; k++)
    for (int m = 0; m < M_COUNT; m++) {
      fprintf(f, ", \"%s_%s\": {", keyset_keys[k], method_keys[m]);
      bench_json_stat(f, "deltas_ns", r->ns[k][m][R_DELTAS]);
      fputs(", ", f);
      bench_json_stat(f, "compacted_ns", r->ns[k][m][R_COMPACT]);
      fputc('}', f);
    }
  fprintf(f, ", \"target_ratio\": %.1f}", TARGET_DELTA_READ);
}

const bench_scenario bench_sc_delta_read = {
    "delta-read", sizeof(delta_read_result), run, print, json};
