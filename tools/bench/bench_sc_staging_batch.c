/* Scenario "staging-batch": strata_stage_path_to_device() of a path of
 * 4 KiB layers, and of 1 MiB layers staged and not staged, against
 * memcpy() of the path into the same layout. The batches stage nothing,
 * so one store serves every round. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_staging.h"

/* staging-batch: 4096 layers of 4 KiB, and 64 of 1 MiB. */
#define BATCH_SMALL_LAYERS 4096u
#define BATCH_SMALL_MIN 256u
#define BATCH_SMALL_SIZE (4 * KiB)
#define BATCH_BIG_LAYERS 64u
#define BATCH_BIG_MIN 8u
#define BATCH_BIG_SIZE MiB
/* Regions of this scenario. */
enum { R_PATH_SMALL = 3, R_PATH_BIG = 4, R_PATH_STAGED = 5 };

typedef struct batch_result {
  int reps;
  unsigned streams;
  uint64_t pool_bytes, pack_bytes;
  uint64_t small_layers, small_bytes; /* bytes: the device buffer */
  uint64_t big_layers, big_bytes;
  uint64_t small_packed, big_packed; /* packed copies of one batch */
  bench_stat small_gbs, small_memcpy_gbs;
  bench_stat big_unstaged_gbs, big_staged_gbs, big_memcpy_gbs;
} batch_result;

/* Moves a path into `dev` (need bytes) and syncs: returns GB/s of the
 * layers' bytes; *packed gets the packed copies it made. With `verify`,
 * the buffer is read back and every layer compared. */
static double path_rep(strata_store *s, const strata_txn *txn,
                       const strata_layer_ref *path, const strata_layer *src,
                       uint64_t n, void *dev, uint64_t need, uint64_t *offs,
                       strata_stream *ss, bool verify, uint64_t *packed) {
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < n; i++)
    bytes += src[i].size;
  strata_staging_stats a = bench_staging_stats(s);
  uint64_t t0 = bench_now_ns();
  bench_check(strata_stage_path_to_device(txn, path, n, dev, need, offs, ss),
              "strata_stage_path_to_device");
  bench_check(strata_stream_sync(ss), "strata_stream_sync");
  uint64_t t1 = bench_now_ns();
  strata_staging_stats b = bench_staging_stats(s);
  if (b.batches != a.batches + 1)
    bench_fail("staging-batch: the batch was not counted");
  *packed = b.packed_copies - a.packed_copies;
  if (verify) {
    uint8_t *back = bench_xmalloc(need);
    bench_check(strata_device_read(ss, back, dev, need), "strata_device_read");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    for (uint64_t i = 0; i < n; i++)
      if (memcmp(back + offs[i], src[i].data, src[i].size) != 0)
        bench_fail("staging-batch: path step %" PRIu64 " arrived changed", i);
    free(back);
  }
  return bench_gbs(bytes, t1 - t0);
}

/* memcpy() of a path into the layout strata_stage_path_size() gives. */
static double path_memcpy(const strata_layer *src, uint64_t n,
                          const uint64_t *offs, uint8_t *dst, bool verify) {
  uint64_t bytes = 0, t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    memcpy(dst + offs[i], src[i].data, src[i].size);
    bytes += src[i].size;
  }
  uint64_t t1 = bench_now_ns();
  if (verify)
    for (uint64_t i = 0; i < n; i++)
      if (memcmp(dst + offs[i], src[i].data, src[i].size) != 0)
        bench_fail("staging-batch: memcpy peer: bytes differ");
  return bench_gbs(bytes, t1 - t0);
}

static strata_layer_ref *make_path(uint64_t region, uint64_t n) {
  strata_layer_ref *p = bench_xmalloc(n * sizeof *p);
  for (uint64_t i = 0; i < n; i++)
    p[i] = (strata_layer_ref){region, i};
  return p;
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  batch_result *r = result;
  *r = (batch_result){.reps = bench_staging_reps(p),
                      .small_layers = bench_staging_scaled(
                          BATCH_SMALL_LAYERS, p->scale, BATCH_SMALL_MIN),
                      .big_layers = bench_staging_scaled(
                          BATCH_BIG_LAYERS, p->scale, BATCH_BIG_MIN)};
  uint64_t nb = r->big_layers, ns = r->small_layers;
  char *dir = bench_mkdir(p->dir, "staging-batch");
  bench_say("staging-batch: writing %" PRIu64
            " layers of 4 KiB and 2 x %" PRIu64 " of 1 MiB",
            ns, nb);
  bench_staging_write_region(dir, R_PATH_SMALL, "path-small", ns,
                             BATCH_SMALL_SIZE);
  bench_staging_write_region(dir, R_PATH_BIG, "path-big", nb, BATCH_BIG_SIZE);
  bench_staging_write_region(dir, R_PATH_STAGED, "path-staged", nb,
                             BATCH_BIG_SIZE);
  /* One store for every round: the path batches stage nothing, so the
   * 1 MiB layers of R_PATH_BIG stay unstaged and those of R_PATH_STAGED,
   * staged once before the rounds, stay staged. */
  r->pool_bytes =
      (nb * BATCH_BIG_SIZE * 4 / 3 + 64 * MiB + MiB - 1) / MiB * MiB;
  strata_store_config c = bench_staging_config(r->pool_bytes, 0);
  c.staging.streams = 3; /* the defaults, named */
  c.staging.pack_bytes = 2 * MiB;
  r->streams = c.staging.streams;
  r->pack_bytes = c.staging.pack_bytes;
  strata_store *s = bench_open_store(dir, &c);
  strata_txn txn;
  bench_check(strata_read_begin(s, &txn), "strata_read_begin");
  strata_layer_ref *ps = make_path(R_PATH_SMALL, ns);
  strata_layer_ref *pb = make_path(R_PATH_BIG, nb);
  strata_layer_ref *pst = make_path(R_PATH_STAGED, nb);
  strata_layer *ls = bench_xmalloc(ns * sizeof *ls);
  strata_layer *lb = bench_xmalloc(nb * sizeof *lb);
  strata_layer *lst = bench_xmalloc(nb * sizeof *lst);
  bench_get_layers(&txn, R_PATH_SMALL, ns, BATCH_SMALL_SIZE, ls);
  bench_get_layers(&txn, R_PATH_BIG, nb, BATCH_BIG_SIZE, lb);
  bench_get_layers(&txn, R_PATH_STAGED, nb, BATCH_BIG_SIZE, lst);
  uint64_t *os = bench_xmalloc(ns * sizeof *os);
  uint64_t *ob = bench_xmalloc(nb * sizeof *ob);
  uint64_t *ost = bench_xmalloc(nb * sizeof *ost);
  bench_check(strata_stage_path_size(&txn, ps, ns, &r->small_bytes),
              "strata_stage_path_size");
  bench_check(strata_stage_path_size(&txn, pb, nb, &r->big_bytes),
              "strata_stage_path_size");
  uint64_t most = r->small_bytes > r->big_bytes ? r->small_bytes : r->big_bytes;
  uint8_t *dst = bench_xmalloc(most);
  bench_prefault_write(dst, most);
  strata_stream *ss;
  bench_check(strata_stream_create(s, &ss), "strata_stream_create");
  void *dev;
  bench_check(strata_device_alloc(s, most, ss, &dev), "strata_device_alloc");
  for (uint64_t i = 0; i < nb; i++) {
    strata_staged *h;
    bench_check(strata_stage(&txn, R_PATH_STAGED, i, &h), "strata_stage");
    strata_staged_release(h);
  }
  double v[5][BENCH_MAX_REPS + 1];
  for (int k = 0; k <= r->reps; k++) {
    /* Round 0 warms up (it writes the device buffer's pages, gives the
     * offsets and checks the bytes); it is not counted. */
    bool verify = k == 0;
    bool peer_first = k % 2 == 1;
    if (peer_first) {
      v[1][k] = path_memcpy(ls, ns, os, dst, verify);
      v[4][k] = path_memcpy(lb, nb, ob, dst, verify);
    }
    v[0][k] = path_rep(s, &txn, ps, ls, ns, dev, r->small_bytes, os, ss, verify,
                       &r->small_packed);
    v[2][k] = path_rep(s, &txn, pb, lb, nb, dev, r->big_bytes, ob, ss, verify,
                       &r->big_packed);
    uint64_t staged_packed;
    v[3][k] = path_rep(s, &txn, pst, lst, nb, dev, r->big_bytes, ost, ss,
                       verify, &staged_packed);
    if (staged_packed != 0)
      bench_fail("staging-batch: staged 1 MiB layers were packed (%" PRIu64
                 " copies)",
                 staged_packed);
    if (!peer_first) {
      v[1][k] = path_memcpy(ls, ns, os, dst, verify);
      v[4][k] = path_memcpy(lb, nb, ob, dst, verify);
    }
    bench_say("staging-batch: round %d%s GB/s: 4 KiB %.2f / memcpy %.2f, 1 MiB "
              "%.2f / staged %.2f / memcpy %.2f",
              k, k ? "" : " (warm-up)", v[0][k], v[1][k], v[2][k], v[3][k],
              v[4][k]);
  }
  if (bench_staging_stats(s).staged_layers != nb)
    bench_fail("staging-batch: %" PRIu64 " layers staged, expected %" PRIu64,
               bench_staging_stats(s).staged_layers, nb);
  r->small_gbs = bench_summarize(v[0] + 1, r->reps);
  r->small_memcpy_gbs = bench_summarize(v[1] + 1, r->reps);
  r->big_unstaged_gbs = bench_summarize(v[2] + 1, r->reps);
  r->big_staged_gbs = bench_summarize(v[3] + 1, r->reps);
  r->big_memcpy_gbs = bench_summarize(v[4] + 1, r->reps);
  bench_check(strata_device_free(s, dev, ss), "strata_device_free");
  strata_stream_destroy(ss);
  strata_read_end(&txn);
  strata_store_close(s);
  free(ps);
  free(pb);
  free(pst);
  free(ls);
  free(lb);
  free(lst);
  free(os);
  free(ob);
  free(ost);
  free(dst);
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const batch_result *r = result;
  fprintf(f,
          "staging-batch: strata_stage_path_to_device() + strata_stream_sync "
          "(host mode, %u pool streams, %" PRIu64 " KiB pack buffers), "
          "against memcpy() of the path into the same layout on one thread; "
          "GB/s of layer bytes, median (min..max) of %d after an untimed "
          "round\n",
          r->streams, r->pack_bytes >> 10, r->reps);
  fprintf(f, "  %-40s %22s %22s %8s\n", "path", "batch GB/s", "memcpy GB/s",
          "ratio");
  char what[64];
  snprintf(what, sizeof what, "%" PRIu64 " x 4 KiB (%" PRIu64 " packed)",
           r->small_layers, r->small_packed);
  fprintf(f, "  %-40s %7.2f (%5.2f..%5.2f) %7.2f (%5.2f..%5.2f) %8.2f\n", what,
          r->small_gbs.median, r->small_gbs.min, r->small_gbs.max,
          r->small_memcpy_gbs.median, r->small_memcpy_gbs.min,
          r->small_memcpy_gbs.max,
          r->small_gbs.median / r->small_memcpy_gbs.median);
  snprintf(what, sizeof what,
           "%" PRIu64 " x 1 MiB, not staged (%" PRIu64 " packed)",
           r->big_layers, r->big_packed);
  fprintf(f, "  %-40s %7.2f (%5.2f..%5.2f) %7.2f (%5.2f..%5.2f) %8.2f\n", what,
          r->big_unstaged_gbs.median, r->big_unstaged_gbs.min,
          r->big_unstaged_gbs.max, r->big_memcpy_gbs.median,
          r->big_memcpy_gbs.min, r->big_memcpy_gbs.max,
          r->big_unstaged_gbs.median / r->big_memcpy_gbs.median);
  snprintf(what, sizeof what, "%" PRIu64 " x 1 MiB, staged", r->big_layers);
  fprintf(f, "  %-40s %7.2f (%5.2f..%5.2f) %22s %8.2f\n", what,
          r->big_staged_gbs.median, r->big_staged_gbs.min,
          r->big_staged_gbs.max, "(as above)",
          r->big_staged_gbs.median / r->big_memcpy_gbs.median);
  fprintf(f, "  1 MiB path staged/not staged %.2f\n\n",
          r->big_staged_gbs.median / r->big_unstaged_gbs.median);
}

static void json(FILE *f, const void *result) {
  const batch_result *r = result;
  fprintf(f,
          "    \"staging-batch\": {\"reps\": %d, \"streams\": %u, "
          "\"pack_bytes\": %" PRIu64 ", \"small_layers\": %" PRIu64
          ", \"small_buffer_bytes\": %" PRIu64 ", \"small_packed_copies\": "
          "%" PRIu64 ", \"big_layers\": %" PRIu64
          ", \"big_buffer_bytes\": %" PRIu64 ", \"big_packed_copies\": "
          "%" PRIu64 ", ",
          r->reps, r->streams, r->pack_bytes, r->small_layers, r->small_bytes,
          r->small_packed, r->big_layers, r->big_bytes, r->big_packed);
  bench_json_stat(f, "small_gb_s", r->small_gbs);
  fputs(", ", f);
  bench_json_stat(f, "small_memcpy_gb_s", r->small_memcpy_gbs);
  fputs(", ", f);
  bench_json_stat(f, "big_unstaged_gb_s", r->big_unstaged_gbs);
  fputs(", ", f);
  bench_json_stat(f, "big_staged_gb_s", r->big_staged_gbs);
  fputs(", ", f);
  bench_json_stat(f, "big_memcpy_gb_s", r->big_memcpy_gbs);
  fputs("}", f);
}

const bench_scenario bench_sc_staging_batch = {
    "staging-batch", sizeof(batch_result), run, print, json};
