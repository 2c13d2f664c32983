/* Scenario "build": write throughput of strata_writer (streaming the
 * layers, checksumming, writing the index, fsync, rename, fsync of the
 * directory) against write(2) + fsync of the same bytes, and cp + sync of
 * that file: what any writer must pay. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "strata.h"

typedef struct build_result {
  uint64_t bytes, layer_bytes, layers;
  int reps;
  bench_stat strata_mbs, write_mbs, cp_mbs;
} build_result;

static void run(bench_ctx *ctx, void *result) {
  const bench_options *o = ctx->o;
  const char *dir = ctx->dir;
  build_result *res = result;
  uint64_t layer = o->build_layer_kib << 10;
  uint64_t layers = (o->build_mib << 20) / layer;
  if (layers == 0)
    layers = 1;
  *res = (build_result){.bytes = layers * layer,
                        .layer_bytes = layer,
                        .layers = layers,
                        .reps = o->build_reps};
  uint8_t *buf = bench_xmalloc((size_t)layer);
  bench_fill_value(12345, buf, (size_t)layer);
  char *region = bench_path(dir, "build.region");
  char *src = bench_path(dir, "build.src");
  char *dst = bench_path(dir, "build.dst");
  if (strchr(dir, '\'') != NULL)
    bench_fail(
        "--dir must not contain a single quote (it is passed to a shell)");
  size_t cmdlen = strlen(src) + strlen(dst) * 2 + 64;
  char *cmd = bench_xmalloc(cmdlen);
  snprintf(cmd, cmdlen, "cp '%s' '%s' && sync '%s'", src, dst, dst);
  double s_mbs[BENCH_MAX_REPS], w_mbs[BENCH_MAX_REPS], c_mbs[BENCH_MAX_REPS];
  double mb = (double)res->bytes / 1e6;
  for (int r = 0; r < o->build_reps; r++) {
    bench_say("build: rep %d of %d (%" PRIu64 " x %" PRIu64 " KiB)", r + 1,
              o->build_reps, layers, o->build_layer_kib);
    /* Strata: the writer streams, checksums, writes the index, fsync()s,
     * renames and fsync()s the directory. */
    strata_writer_options wo;
    strata_writer_options_init(&wo);
    wo.region_id = 2;
    wo.name = "build";
    strata_writer *w;
    uint64_t t0 = bench_now_ns();
    int rc = strata_writer_open(region, &wo, &w);
    for (uint64_t i = 0; rc == 0 && i < layers; i++) {
      memcpy(buf, &i, sizeof i); /* distinct layers, same bytes as below */
      rc = strata_writer_add(w, i, NULL, 0, NULL, buf, (size_t)layer);
      if (rc < 0)
        strata_writer_abort(w);
    }
    if (rc == 0)
      rc = strata_writer_commit(w);
    if (rc < 0)
      bench_fail("strata writer: %s", strata_last_error_detail());
    s_mbs[r] = mb / ((double)(bench_now_ns() - t0) / 1e9);

    /* The same bytes with write(2) and fsync(): what any writer must pay. */
    t0 = bench_now_ns();
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      bench_fail("%s: %s", src, strerror(errno));
    for (uint64_t i = 0; i < layers; i++) {
      memcpy(buf, &i, sizeof i);
      if (bench_write_all(fd, buf, (size_t)layer) != 0)
        bench_fail("%s: %s", src, strerror(errno));
    }
    if (fsync(fd) != 0)
      bench_fail("%s: fsync: %s", src, strerror(errno));
    close(fd);
    w_mbs[r] = mb / ((double)(bench_now_ns() - t0) / 1e9);

    /* cp of that file (in the page cache), then sync of the copy. */
    t0 = bench_now_ns();
    if (system(cmd) != 0)
      bench_fail("'%s' failed", cmd);
    c_mbs[r] = mb / ((double)(bench_now_ns() - t0) / 1e9);
    unlink(region);
    unlink(dst);
  }
  unlink(src);
  res->strata_mbs = bench_summarize(s_mbs, o->build_reps);
  res->write_mbs = bench_summarize(w_mbs, o->build_reps);
  res->cp_mbs = bench_summarize(c_mbs, o->build_reps);
  free(cmd);
  free(region);
  free(src);
  free(dst);
  free(buf);
}

static void print(FILE *f, const void *result) {
  const build_result *b = result;
  fprintf(f,
          "build: %" PRIu64 " layers x %" PRIu64 " KiB = %.0f MB, "
          "each including fsync, %d reps (MB = 10^6 bytes)\n",
          b->layers, b->layer_bytes >> 10, (double)b->bytes / 1e6, b->reps);
  fprintf(f, "  %-28s %10s %9s %9s\n", "", "MB/s", "min", "max");
  fprintf(f, "  %-28s %10.0f %9.0f %9.0f\n", "strata_writer (+commit)",
          b->strata_mbs.median, b->strata_mbs.min, b->strata_mbs.max);
  fprintf(f, "  %-28s %10.0f %9.0f %9.0f\n", "write(2) + fsync",
          b->write_mbs.median, b->write_mbs.min, b->write_mbs.max);
  fprintf(f, "  %-28s %10.0f %9.0f %9.0f\n", "cp + sync", b->cp_mbs.median,
          b->cp_mbs.min, b->cp_mbs.max);
  fprintf(f, "  strata/cp %.2f   strata/write %.2f\n\n",
          b->strata_mbs.median / b->cp_mbs.median,
          b->strata_mbs.median / b->write_mbs.median);
}

static void json(FILE *f, const void *result) {
  const build_result *b = result;
  fprintf(f,
          "    \"build\": {\"bytes\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
          ", \"layers\": %" PRIu64 ", \"reps\": %d, ",
          b->bytes, b->layer_bytes, b->layers, b->reps);
  bench_json_stat(f, "strata_mb_s", b->strata_mbs);
  fputs(", ", f);
  bench_json_stat(f, "write_fsync_mb_s", b->write_mbs);
  fputs(", ", f);
  bench_json_stat(f, "cp_sync_mb_s", b->cp_mbs);
  fputs("}", f);
}

const bench_scenario bench_sc_build = {"build", sizeof(build_result), run,
                                       print, json};
