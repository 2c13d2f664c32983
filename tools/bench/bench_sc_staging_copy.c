/* Scenario "staging-copy": strata_stage() of layers not staged yet (1 MiB
 * and 64 KiB, with and without block sharing) against memcpy() of the same
 * bytes from the same mapping; and strata_stage_to_device() of staged
 * 1 MiB layers plus a stream sync against memcpy() of the staged bytes.
 * A round must copy fresh content, so each opens a fresh store (untimed)
 * rather than evicting. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_staging.h"

/* staging-copy: bytes of each layer size staged per repetition. */
#define COPY_BYTES (256 * MiB)
#define COPY_MIN_BYTES (8 * MiB)
/* The target of the staging issue, printed next to the measurements. */
#define TARGET_COPY_RATIO 0.80

typedef struct copy_case {
  uint64_t layers, layer_bytes, bytes;
  bench_stat dedup_gbs, nodedup_gbs, memcpy_gbs;
} copy_case;

typedef struct copy_result {
  int reps;
  uint64_t pool_bytes;
  double load1;
  copy_case big, small;
  /* memcpy() of the 1 MiB layers in 64 KiB pieces. */
  bench_stat big_pieces_gbs;
  uint64_t evictions, dedup_hits; /* during the timed staging, all reps */
  /* strata_stage_to_device() of the staged 1 MiB layers + a sync, and
   * memcpy() of the same staged bytes. */
  bench_stat xfer_gbs, xfer_memcpy_gbs;
} copy_result;

/* Regions of this scenario. */
enum { R_BIG = 1, R_SMALL = 2 };

/* The staged bytes equal `want`, segment by segment. */
static void check_staged(const strata_staged *h, const void *want,
                         uint64_t size, const char *what) {
  strata_staged_info info;
  bench_check(strata_staged_info_get(h, &info), "strata_staged_info_get");
  if (info.size != size)
    bench_fail("%s: %" PRIu64 " bytes staged, expected %" PRIu64, what,
               info.size, size);
  uint64_t off = 0;
  for (uint32_t i = 0; i < info.segments; i++) {
    const void *p;
    uint64_t len;
    bench_check(strata_staged_segment(h, i, &p, &len), "strata_staged_segment");
    if (off + len > size || memcmp(p, (const uint8_t *)want + off, len) != 0)
      bench_fail("%s: staged bytes differ from the layer at offset %" PRIu64,
                 what, off);
    off += len;
  }
  if (off != size)
    bench_fail("%s: segments cover %" PRIu64 " of %" PRIu64 " bytes", what, off,
               size);
}

/* Stages layers 0..n-1 of `region` (not staged yet), timed; with
 * `verify` (round 0, whose figure is not counted) every staged layer is
 * then compared with the source. Returns GB/s. */
static double stage_all(strata_store *s, const strata_txn *txn, uint64_t region,
                        const strata_layer *src, uint64_t n, bool verify,
                        copy_result *r) {
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < n; i++)
    bytes += src[i].size;
  strata_staging_stats a = bench_staging_stats(s);
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < n; i++) {
    strata_staged *h;
    bench_check(strata_stage(txn, region, i, &h), "strata_stage");
    strata_staged_release(h);
  }
  uint64_t t1 = bench_now_ns();
  strata_staging_stats b = bench_staging_stats(s);
  /* Every byte must have been copied: the content was not staged yet. */
  if (b.stage_copied_bytes - a.stage_copied_bytes != bytes)
    bench_fail("staging-copy: %" PRIu64
               " bytes copied by staging, expected %" PRIu64,
               b.stage_copied_bytes - a.stage_copied_bytes, bytes);
  r->evictions += b.evictions - a.evictions;
  r->dedup_hits += b.dedup_hits - a.dedup_hits;
  if (verify) {
    for (uint64_t i = 0; i < n; i++) {
      strata_staged *h;
      bench_check(strata_stage(txn, region, i, &h), "strata_stage (again)");
      check_staged(h, src[i].data, src[i].size, "staging-copy");
      strata_staged_release(h);
    }
    if (bench_staging_stats(s).stage_copied_bytes != b.stage_copied_bytes)
      bench_fail("staging-copy: staging a staged layer copied it again");
  }
  return bench_gbs(bytes, t1 - t0);
}

/* memcpy() of the layers, end to end, into dst (written before), one call
 * per layer, or with `piece` not 0 one call per `piece` bytes of a layer
 * (as staging copies a layer, a block at a time). */
static double memcpy_all(const strata_layer *src, uint64_t n, uint8_t *dst,
                         uint64_t piece, bool verify) {
  uint64_t t0 = bench_now_ns(), off = 0;
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *p = src[i].data;
    uint64_t step = piece ? piece : src[i].size;
    for (uint64_t at = 0; at < src[i].size; at += step) {
      uint64_t k = src[i].size - at < step ? src[i].size - at : step;
      memcpy(dst + off + at, p + at, k);
    }
    off += src[i].size;
  }
  uint64_t t1 = bench_now_ns();
  if (verify)
    for (uint64_t i = 0, o = 0; i < n; o += src[i].size, i++)
      if (memcmp(dst + o, src[i].data, src[i].size) != 0)
        bench_fail("staging-copy: memcpy peer: bytes differ");
  return bench_gbs(off, t1 - t0);
}

/* The 1 MiB layers (staged) to "device" memory on one stream, timed from
 * the first enqueue to the end of the sync; then memcpy() of the same
 * staged bytes on this thread. */
static void xfer_rep(strata_store *s, const strata_txn *txn,
                     const strata_layer *src, uint64_t n, uint8_t *peer_dst,
                     bool verify, double *xfer, double *peer) {
  uint64_t size = src[0].size, bytes = n * size;
  strata_staged **h = bench_xmalloc(n * sizeof *h);
  for (uint64_t i = 0; i < n; i++)
    bench_check(strata_stage(txn, R_BIG, i, &h[i]), "strata_stage");
  strata_stream *ss;
  bench_check(strata_stream_create(s, &ss), "strata_stream_create");
  void *dev;
  bench_check(strata_device_alloc(s, bytes, ss, &dev), "strata_device_alloc");
  /* Untimed: the first transfer writes every page of the device buffer. */
  for (int pass = 0; pass < 2; pass++) {
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
      bench_check(strata_stage_to_device(h[i], (uint8_t *)dev + i * size, ss),
                  "strata_stage_to_device");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    *xfer = bench_gbs(bytes, bench_now_ns() - t0);
  }
  if (verify) {
    uint8_t *back = bench_xmalloc(bytes);
    bench_check(strata_device_read(ss, back, dev, bytes), "strata_device_read");
    bench_check(strata_stream_sync(ss), "strata_stream_sync");
    for (uint64_t i = 0; i < n; i++)
      if (memcmp(back + i * size, src[i].data, size) != 0)
        bench_fail("staging-copy: layer %" PRIu64 " arrived changed", i);
    free(back);
  }
  /* The peer: the same staged bytes, segment by segment. */
  uint64_t t0 = bench_now_ns(), off = 0;
  for (uint64_t i = 0; i < n; i++) {
    strata_staged_info info;
    bench_check(strata_staged_info_get(h[i], &info), "strata_staged_info_get");
    for (uint32_t k = 0; k < info.segments; k++) {
      const void *p;
      uint64_t len;
      bench_check(strata_staged_segment(h[i], k, &p, &len),
                  "strata_staged_segment");
      memcpy(peer_dst + off, p, len);
      off += len;
    }
  }
  *peer = bench_gbs(off, bench_now_ns() - t0);
  if (off != bytes)
    bench_fail("staging-copy: %" PRIu64 " staged bytes, expected %" PRIu64, off,
               bytes);
  bench_check(strata_device_free(s, dev, ss), "strata_device_free");
  strata_stream_destroy(ss);
  for (uint64_t i = 0; i < n; i++)
    strata_staged_release(h[i]);
  free(h);
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  copy_result *r = result;
  uint64_t bytes = bench_staging_scaled(COPY_BYTES, p->scale, COPY_MIN_BYTES);
  bytes = (bytes + MiB - 1) / MiB * MiB;
  *r = (copy_result){.reps = bench_staging_reps(p), .load1 = bench_load1()};
  r->big =
      (copy_case){.layers = bytes / MiB, .layer_bytes = MiB, .bytes = bytes};
  r->small = (copy_case){
      .layers = bytes / (64 * KiB), .layer_bytes = 64 * KiB, .bytes = bytes};
  /* Both sizes stay staged, under the 80% high watermark, with room for
   * the pack buffers. */
  r->pool_bytes = (2 * bytes * 4 / 3 + 64 * MiB + MiB - 1) / MiB * MiB;
  char *dir = bench_mkdir(p->dir, "staging-copy");
  bench_say("staging-copy: writing 2 regions of %" PRIu64 " MiB", bytes >> 20);
  bench_staging_write_region(dir, R_BIG, "big", r->big.layers, MiB);
  bench_staging_write_region(dir, R_SMALL, "small", r->small.layers, 64 * KiB);
  strata_layer *big = bench_xmalloc(r->big.layers * sizeof *big);
  strata_layer *small = bench_xmalloc(r->small.layers * sizeof *small);
  uint8_t *dst = bench_xmalloc(bytes);
  bench_prefault_write(dst, bytes);
  double v[9][BENCH_MAX_REPS + 1];
  for (int k = 0; k <= r->reps; k++) {
    /* Round 0 warms up (and checks the bytes); it is not counted. */
    bool verify = k == 0;
    for (int variant = 0; variant < 2; variant++) {
      /* A fresh store: nothing staged. */
      strata_store_config c = bench_staging_config(
          r->pool_bytes, variant ? STRATA_STAGING_NO_DEDUP : 0);
      strata_store *s = bench_open_store(dir, &c);
      strata_txn txn;
      bench_check(strata_read_begin(s, &txn), "strata_read_begin");
      bench_get_layers(&txn, R_BIG, r->big.layers, MiB, big);
      bench_get_layers(&txn, R_SMALL, r->small.layers, 64 * KiB, small);
      /* Alternate staging and the peer, and the sizes' order. */
      bool peer_first = (k + variant) % 2 == 1;
      if (variant == 0 && peer_first) {
        v[4][k] = memcpy_all(big, r->big.layers, dst, 0, verify);
        v[8][k] = memcpy_all(big, r->big.layers, dst, 64 * KiB, verify);
        v[5][k] = memcpy_all(small, r->small.layers, dst, 0, verify);
      }
      double *to = v[variant ? 2 : 0];
      to[k] = stage_all(s, &txn, R_BIG, big, r->big.layers, verify, r);
      to = v[variant ? 3 : 1];
      to[k] = stage_all(s, &txn, R_SMALL, small, r->small.layers, verify, r);
      if (variant == 0 && !peer_first) {
        v[4][k] = memcpy_all(big, r->big.layers, dst, 0, verify);
        v[8][k] = memcpy_all(big, r->big.layers, dst, 64 * KiB, verify);
        v[5][k] = memcpy_all(small, r->small.layers, dst, 0, verify);
      }
      if (variant == 0)
        xfer_rep(s, &txn, big, r->big.layers, dst, verify, &v[6][k], &v[7][k]);
      strata_read_end(&txn);
      strata_store_close(s);
    }
    bench_say(
        "staging-copy: round %d%s GB/s: 1 MiB %.2f / %.2f / memcpy %.2f "
        "(pieces %.2f), 64 KiB %.2f / %.2f / memcpy %.2f, to device %.2f / "
        "memcpy %.2f",
        k, k ? "" : " (warm-up)", v[0][k], v[2][k], v[4][k], v[8][k], v[1][k],
        v[3][k], v[5][k], v[6][k], v[7][k]);
  }
  r->big.dedup_gbs = bench_summarize(v[0] + 1, r->reps);
  r->small.dedup_gbs = bench_summarize(v[1] + 1, r->reps);
  r->big.nodedup_gbs = bench_summarize(v[2] + 1, r->reps);
  r->small.nodedup_gbs = bench_summarize(v[3] + 1, r->reps);
  r->big.memcpy_gbs = bench_summarize(v[4] + 1, r->reps);
  r->small.memcpy_gbs = bench_summarize(v[5] + 1, r->reps);
  r->xfer_gbs = bench_summarize(v[6] + 1, r->reps);
  r->xfer_memcpy_gbs = bench_summarize(v[7] + 1, r->reps);
  r->big_pieces_gbs = bench_summarize(v[8] + 1, r->reps);
  free(big);
  free(small);
  free(dst);
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const copy_result *r = result;
  fprintf(f,
          "staging-copy: strata_stage() of layers not staged yet (host mode, "
          "a fresh %" PRIu64 " MiB pool per rep), against memcpy() of the "
          "same bytes from the same mapping into a written buffer; GB = 10^9 "
          "bytes; median (min..max) of %d after an untimed round; load "
          "average %.2f\n",
          r->pool_bytes >> 20, r->reps, r->load1);
  fprintf(f, "  %-24s %22s %22s %22s\n", "GB/s", "stage (sharing)",
          "stage (NO_DEDUP)", "memcpy");
  const copy_case *cs[2] = {&r->big, &r->small};
  for (int i = 0; i < 2; i++) {
    const copy_case *c = cs[i];
    char what[48];
    snprintf(what, sizeof what, "%" PRIu64 " x %" PRIu64 " KiB", c->layers,
             c->layer_bytes >> 10);
    fprintf(f,
            "  %-24s %7.2f (%5.2f..%5.2f) %7.2f (%5.2f..%5.2f) %7.2f "
            "(%5.2f..%5.2f)\n",
            what, c->dedup_gbs.median, c->dedup_gbs.min, c->dedup_gbs.max,
            c->nodedup_gbs.median, c->nodedup_gbs.min, c->nodedup_gbs.max,
            c->memcpy_gbs.median, c->memcpy_gbs.min, c->memcpy_gbs.max);
  }
  for (int i = 0; i < 2; i++) {
    const copy_case *c = cs[i];
    fprintf(
        f, "  %s KiB layers: stage/memcpy %.2f (sharing), %.2f (NO_DEDUP)\n",
        i == 0 ? "1024" : "  64", c->dedup_gbs.median / c->memcpy_gbs.median,
        c->nodedup_gbs.median / c->memcpy_gbs.median);
  }
  fprintf(f,
          "  memcpy of the 1024 KiB layers in 64 KiB pieces (as staging "
          "copies them): %.2f GB/s (%.2f..%.2f); stage/that %.2f (sharing), "
          "%.2f (NO_DEDUP)\n",
          r->big_pieces_gbs.median, r->big_pieces_gbs.min,
          r->big_pieces_gbs.max,
          r->big.dedup_gbs.median / r->big_pieces_gbs.median,
          r->big.nodedup_gbs.median / r->big_pieces_gbs.median);
  fprintf(f,
          "  (during the timed staging: %" PRIu64 " evictions, %" PRIu64
          " shared pages found)\n",
          r->evictions, r->dedup_hits);
  fprintf(f,
          "  strata_stage_to_device of the %" PRIu64 " staged 1 MiB layers + "
          "strata_stream_sync: %.2f GB/s (%.2f..%.2f); memcpy of the staged "
          "bytes: %.2f GB/s; transfer/memcpy %.2f\n",
          r->big.layers, r->xfer_gbs.median, r->xfer_gbs.min, r->xfer_gbs.max,
          r->xfer_memcpy_gbs.median,
          r->xfer_gbs.median / r->xfer_memcpy_gbs.median);
  /* Against the faster memcpy of each size. */
  double worst = 1e9, worst_nd = 1e9;
  for (int i = 0; i < 2; i++) {
    double m = cs[i]->memcpy_gbs.median;
    if (i == 0 && r->big_pieces_gbs.median > m)
      m = r->big_pieces_gbs.median;
    double a = cs[i]->dedup_gbs.median / m;
    double b = cs[i]->nodedup_gbs.median / m;
    worst = a < worst ? a : worst;
    worst_nd = b < worst_nd ? b : worst_nd;
  }
  fprintf(f,
          "  target: staging copy >= %.2f of memcpy bandwidth (host mode), "
          "against the faster memcpy of each size: measured %.2f with "
          "sharing, %.2f with NO_DEDUP (the lower of the two sizes)\n\n",
          TARGET_COPY_RATIO, worst, worst_nd);
}

static void copy_json_case(FILE *f, const char *k, const copy_case *c) {
  fprintf(f,
          "\"%s\": {\"layers\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
          ", \"bytes\": %" PRIu64 ", ",
          k, c->layers, c->layer_bytes, c->bytes);
  bench_json_stat(f, "stage_gb_s", c->dedup_gbs);
  fputs(", ", f);
  bench_json_stat(f, "stage_no_dedup_gb_s", c->nodedup_gbs);
  fputs(", ", f);
  bench_json_stat(f, "memcpy_gb_s", c->memcpy_gbs);
  fputs("}", f);
}

static void json(FILE *f, const void *result) {
  const copy_result *r = result;
  fprintf(f,
          "    \"staging-copy\": {\"reps\": %d, \"pool_bytes\": %" PRIu64
          ", \"load1\": %.2f, \"evictions\": %" PRIu64
          ", \"dedup_hits\": %" PRIu64 ", ",
          r->reps, r->pool_bytes, r->load1, r->evictions, r->dedup_hits);
  copy_json_case(f, "layers_1mib", &r->big);
  fputs(", ", f);
  copy_json_case(f, "layers_64kib", &r->small);
  fputs(", ", f);
  bench_json_stat(f, "memcpy_1mib_in_64kib_pieces_gb_s", r->big_pieces_gbs);
  fputs(", ", f);
  bench_json_stat(f, "to_device_gb_s", r->xfer_gbs);
  fputs(", ", f);
  bench_json_stat(f, "to_device_memcpy_gb_s", r->xfer_memcpy_gbs);
  fprintf(f, ", \"target_ratio\": %.2f}", TARGET_COPY_RATIO);
}

const bench_scenario bench_sc_staging_copy = {
    "staging-copy", sizeof(copy_result), run, print, json};
