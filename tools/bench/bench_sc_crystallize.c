/* Scenario "crystallize": strata_crystallize() of a proto (64 KiB and
 * 256 B layers) against write(2) and a read/write copy of the same bytes;
 * then issue 19's case, 100,000 x 256 B put into a new proto and
 * crystallized (fsync included), against write(2)+fsync of the same bytes,
 * tinycdb's cdb_make (+fsync) and LMDB (puts in one transaction, commit,
 * sync), each peer through the build() the get scenarios use. Only the
 * public API is used; the targets are printed next to the figures. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_store.h"

/* At scale 1 (--n 1000000). */
#define CRYS_BIG_LAYERS 4096 /* x 64 KiB = 256 MiB */
#define CRYS_BIG_SIZE 65536
#define CRYS_SMALL_LAYERS 400000 /* x 256 B = 102 MB */
#define CRYS_SMALL_SIZE 256
#define CRYS_MAX_REPS 3
#define COPY_BUF (1u << 20)     /* the writer's own buffer is 1 MiB too */
#define CRYS_PEER_LAYERS 100000 /* x 256 B: issue 19's case */
#define CRYS_PEERS 4            /* strata, write(2), cdb_make, LMDB */

/* Issue 19's goal: crystallize >= 0.7x the speed of write(2)+fsync. */
#define TARGET_CRYS_VS_WRITE 0.7

/* The store milestone's target, printed next to the measurements. */
#define TARGET_CRYS_GBS 1.0

/* "crystallize": a proto written out as a region file, next to write(2)
 * and a read/write copy of the same bytes. */
typedef struct crystallize_case_result {
  uint64_t layers, layer_bytes, bytes;
  int reps;
  /* Medians over the repetitions, and the best; GB = 10^9 bytes. */
  double write_gbs, write_gbs_best; /* crystallize_bytes / _write_ns */
  double fsync_ms;                  /* crystallize_fsync_ns */
  double wall_ms;                   /* strata_crystallize() as called */
  double faults;                    /* minor page faults in that call */
  double peer_write_gbs, peer_write_gbs_best, peer_fsync_ms;
  double peer_copy_gbs, peer_copy_gbs_best;
} crystallize_case_result;

/* Issue 19's case: whole-call times in ms, medians over the repetitions
 * with minimum and maximum. */
typedef struct crystallize_peers_result {
  uint64_t layers, layer_bytes;
  int reps;
  bench_stat put_ms, crys_ms; /* strata: the puts; strata_crystallize() */
  bench_stat ms[CRYS_PEERS];  /* strata (puts + crystallize), the peers */
} crystallize_peers_result;

typedef struct crystallize_result {
  double load1;
  crystallize_case_result big, small;
  crystallize_peers_result peers;
} crystallize_result;

static void write_fd_all(int fd, const uint8_t *p, size_t len,
                         const char *path) {
  if (bench_write_all(fd, p, len) != 0)
    bench_fail("%s: write: %s", path, strerror(errno));
}

/* The peer: the same bytes, gathered into a 1 MiB buffer as the writer
 * gathers them, written with write(2); then, separately, fsync(). */
static void peer_write(const char *path, const uint8_t *src, uint64_t layers,
                       uint64_t size, double *gbs, double *fsync_ms) {
  uint8_t *buf = bench_xmalloc(COPY_BUF);
  uint64_t t0 = bench_now_ns();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    bench_fail("%s: %s", path, strerror(errno));
  size_t fill = 0;
  for (uint64_t i = 0; i < layers; i++) {
    const uint8_t *p = src + i * size;
    for (uint64_t left = size; left > 0;) {
      size_t k = COPY_BUF - fill < left ? COPY_BUF - fill : (size_t)left;
      memcpy(buf + fill, p, k);
      fill += k;
      p += k;
      left -= k;
      if (fill == COPY_BUF) {
        write_fd_all(fd, buf, fill, path);
        fill = 0;
      }
    }
  }
  write_fd_all(fd, buf, fill, path);
  uint64_t t1 = bench_now_ns();
  if (fsync(fd) != 0)
    bench_fail("%s: fsync: %s", path, strerror(errno));
  uint64_t t2 = bench_now_ns();
  close(fd);
  *gbs = (double)(layers * size) / (double)(t1 - t0);
  *fsync_ms = (double)(t2 - t1) / 1e6;
  free(buf);
}

/* The other peer: a cp-like copy of that file (in the page cache) with
 * read(2) and write(2) of 1 MiB, timed without fsync. The copy is synced
 * afterwards, untimed, so that its writeback does not fall into the next
 * measurement. */
static double peer_copy(const char *from, const char *to) {
  uint8_t *buf = bench_xmalloc(COPY_BUF);
  uint64_t t0 = bench_now_ns(), bytes = 0;
  int in = open(from, O_RDONLY | O_CLOEXEC);
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0)
    bench_fail("copy %s to %s: %s", from, to, strerror(errno));
  for (ssize_t k; (k = read(in, buf, COPY_BUF)) != 0; bytes += (uint64_t)k) {
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      bench_fail("%s: read: %s", from, strerror(errno));
    write_fd_all(out, buf, (size_t)k, to);
  }
  uint64_t t1 = bench_now_ns();
  if (fsync(out) != 0)
    bench_fail("%s: fsync: %s", to, strerror(errno));
  close(in);
  close(out);
  free(buf);
  return (double)bytes / (double)(t1 - t0);
}

/* Minor page faults of the calling thread so far. */
static uint64_t thread_faults(void) {
  struct rusage u;
  return getrusage(RUSAGE_THREAD, &u) == 0 ? (uint64_t)u.ru_minflt : 0;
}

/* Crystallizes a new proto holding `layers` layers of src: figures into
 * v[0..3][k] (GB/s before fsync, fsync ms, wall ms, minor faults). */
static void crystallize_once(strata_store *s, uint64_t id, const uint8_t *src,
                             const crystallize_case_result *c, int k,
                             double v[][CRYS_MAX_REPS]) {
  char name[32];
  snprintf(name, sizeof name, "crys-%" PRIu64, id);
  strata_proto *pr;
  bench_check(strata_proto_create(s, id, name, strlen(name), NULL, &pr),
              "strata_proto_create");
  for (uint64_t i = 0; i < c->layers; i++)
    bench_check(strata_proto_put(pr, i, NULL, 0, NULL, src + i * c->layer_bytes,
                                 (size_t)c->layer_bytes),
                "strata_proto_put");
  strata_store_stats a, b;
  bench_check(strata_store_stats_get(s, &a), "strata_store_stats_get");
  uint64_t f0 = thread_faults(), t0 = bench_now_ns();
  bench_check(strata_crystallize(s, id), "strata_crystallize");
  uint64_t t1 = bench_now_ns(), f1 = thread_faults();
  bench_check(strata_store_stats_get(s, &b), "strata_store_stats_get");
  if (b.crystallize_bytes - a.crystallize_bytes != c->bytes)
    bench_fail("crystallize: %" PRIu64 " bytes counted, %" PRIu64 " put",
               b.crystallize_bytes - a.crystallize_bytes, c->bytes);
  v[0][k] = (double)(b.crystallize_bytes - a.crystallize_bytes) /
            (double)(b.crystallize_write_ns - a.crystallize_write_ns);
  v[1][k] = (double)(b.crystallize_fsync_ns - a.crystallize_fsync_ns) / 1e6;
  v[2][k] = (double)(t1 - t0) / 1e6;
  v[3][k] = (double)(f1 - f0);
  /* The region stays in the store: drop the proto and its heap. */
  bench_check(strata_proto_discard(pr), "strata_proto_discard");
  bench_check(strata_store_reclaim(s, 1), "strata_store_reclaim");
}

static void crystallize_case(strata_store *s, const char *dir, int reps,
                             uint64_t layers, uint64_t size, uint64_t first_id,
                             crystallize_case_result *c) {
  *c = (crystallize_case_result){.layers = layers,
                                 .layer_bytes = size,
                                 .bytes = layers * size,
                                 .reps = reps};
  uint8_t *src = bench_xmalloc((size_t)c->bytes);
  for (uint64_t i = 0; i < layers; i++)
    bench_fill_layer(first_id, i, src + i * size, (size_t)size);
  char *pw = bench_path(dir, "peer.write"), *pc = bench_path(dir, "peer.copy");
  double v[7][CRYS_MAX_REPS];
  for (int k = 0; k < reps; k++) {
    bench_say("crystallize: rep %d of %d, %" PRIu64 " layers x %" PRIu64 " B",
              k + 1, reps, layers, size);
    /* Fresh memory costs much more than recycled memory on some virtual
     * machines (docs/BENCHMARKS.md), and each side recycles what the other
     * just freed: alternate which one goes first. */
    for (int q = 0; q < 2; q++) {
      if ((q + k) % 2 == 0) {
        crystallize_once(s, first_id + (uint64_t)k, src, c, k, v);
      } else {
        peer_write(pw, src, layers, size, &v[4][k], &v[5][k]);
        v[6][k] = peer_copy(pw, pc);
        unlink(pw);
        unlink(pc);
      }
    }
  }
  bench_stat w = bench_summarize(v[0], reps);
  c->write_gbs = w.median;
  c->write_gbs_best = w.max;
  c->fsync_ms = bench_summarize(v[1], reps).median;
  c->wall_ms = bench_summarize(v[2], reps).median;
  c->faults = bench_summarize(v[3], reps).median;
  w = bench_summarize(v[4], reps);
  c->peer_write_gbs = w.median;
  c->peer_write_gbs_best = w.max;
  c->peer_fsync_ms = bench_summarize(v[5], reps).median;
  w = bench_summarize(v[6], reps);
  c->peer_copy_gbs = w.median;
  c->peer_copy_gbs_best = w.max;
  free(pw);
  free(pc);
  free(src);
}

/* Strata's side of issue 19's case: puts of value i (bench_fill_value(),
 * the peers' contents) as layer i into a new proto, then the
 * crystallization; the region stays, the proto is dropped untimed. */
static void peers_strata(strata_store *s, uint64_t id, const uint8_t *src,
                         const crystallize_peers_result *c, double *put_ms,
                         double *crys_ms) {
  char name[32];
  snprintf(name, sizeof name, "peers-%" PRIu64, id);
  strata_proto *pr;
  bench_check(strata_proto_create(s, id, name, strlen(name), NULL, &pr),
              "strata_proto_create");
  uint64_t t0 = bench_now_ns();
  for (uint64_t i = 0; i < c->layers; i++)
    bench_check(strata_proto_put(pr, i, NULL, 0, NULL, src + i * c->layer_bytes,
                                 (size_t)c->layer_bytes),
                "strata_proto_put");
  uint64_t t1 = bench_now_ns();
  bench_check(strata_crystallize(s, id), "strata_crystallize");
  uint64_t t2 = bench_now_ns();
  *put_ms = (double)(t1 - t0) / 1e6;
  *crys_ms = (double)(t2 - t1) / 1e6;
  bench_check(strata_proto_discard(pr), "strata_proto_discard");
  bench_check(strata_store_reclaim(s, 1), "strata_store_reclaim");
}

static void peers_case(strata_store *s, const char *dir, int reps,
                       uint64_t layers, crystallize_peers_result *c) {
  *c = (crystallize_peers_result){
      .layers = layers, .layer_bytes = CRYS_SMALL_SIZE, .reps = reps};
  uint64_t *ids = bench_xmalloc(layers * sizeof *ids);
  uint8_t *src = bench_xmalloc((size_t)(layers * CRYS_SMALL_SIZE));
  for (uint64_t i = 0; i < layers; i++) {
    ids[i] = i;
    bench_fill_value(i, src + i * CRYS_SMALL_SIZE, CRYS_SMALL_SIZE);
  }
  bench_layers ls = {.n = layers, .size = CRYS_SMALL_SIZE, .ids = ids};
  char *pw = bench_path(dir, "peer.write");
  double put[CRYS_MAX_REPS], crys[CRYS_MAX_REPS], v[CRYS_PEERS][CRYS_MAX_REPS];
  for (int k = 0; k < reps; k++) {
    /* Rotate which one goes first: each recycles what the one before it
     * freed (memory and page cache). */
    for (int q = 0; q < CRYS_PEERS; q++) {
      int p = (q + k) % CRYS_PEERS;
      bench_say("crystallize: peers rep %d of %d, %d, %" PRIu64 " x %d B",
                k + 1, reps, p, layers, CRYS_SMALL_SIZE);
      if (p == 0) {
        peers_strata(s, 300 + (uint64_t)k, src, c, &put[k], &crys[k]);
        v[0][k] = put[k] + crys[k];
      } else if (p == 1) {
        double gbs, fsync_ms;
        peer_write(pw, src, layers, CRYS_SMALL_SIZE, &gbs, &fsync_ms);
        v[1][k] = (double)(layers * CRYS_SMALL_SIZE) / gbs / 1e6 + fsync_ms;
        unlink(pw);
      } else {
        v[p][k] =
            1e3 * bench_build_once(p == 2 ? &bench_cdb : &bench_lmdb, dir, &ls);
      }
    }
  }
  c->put_ms = bench_summarize(put, reps);
  c->crys_ms = bench_summarize(crys, reps);
  for (int p = 0; p < CRYS_PEERS; p++)
    c->ms[p] = bench_summarize(v[p], reps);
  free(pw);
  free(src);
  free(ids);
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  crystallize_result *r = result;
  *r = (crystallize_result){.load1 = bench_load1()};
  int reps = p->reps < CRYS_MAX_REPS ? p->reps : CRYS_MAX_REPS;
  char *dir = bench_mkdir(p->dir, "crystallize");
  strata_store *s = bench_open_store_flags(dir, 0);
  crystallize_case(s, dir, reps, bench_scaled(CRYS_BIG_LAYERS, p->scale),
                   CRYS_BIG_SIZE, 100, &r->big);
  crystallize_case(s, dir, reps, bench_scaled(CRYS_SMALL_LAYERS, p->scale),
                   CRYS_SMALL_SIZE, 200, &r->small);
  peers_case(s, dir, reps, bench_scaled(CRYS_PEER_LAYERS, p->scale), &r->peers);
  strata_store_close(s);
  bench_rmtree(dir);
  free(dir);
}

static const char *const peer_names[CRYS_PEERS] = {
    "strata put+crystallize", "write(2)+fsync", "cdb_make+fsync",
    "lmdb txn+commit+sync"};

static void print_peers(FILE *f, const crystallize_peers_result *c) {
  fprintf(f,
          "  issue 19: %" PRIu64 " x %" PRIu64 " B = %.1f MB, each whole "
          "(fsync included); ms, median (min, max) of %d\n",
          c->layers, c->layer_bytes, (double)(c->layers * c->layer_bytes) / 1e6,
          c->reps);
  const bench_stat *rows[CRYS_PEERS + 2] = {&c->put_ms, &c->crys_ms};
  const char *names[CRYS_PEERS + 2] = {"strata puts", "strata crystallize"};
  for (int p = 0; p < CRYS_PEERS; p++) {
    rows[p + 2] = &c->ms[p];
    names[p + 2] = peer_names[p];
  }
  for (int i = 0; i < CRYS_PEERS + 2; i++)
    fprintf(f, "    %-24s %9.1f (%8.1f, %8.1f)  %7.0f MB/s\n", names[i],
            rows[i]->median, rows[i]->min, rows[i]->max,
            (double)(c->layers * c->layer_bytes) / 1e3 / rows[i]->median);
  double st = c->ms[0].median, sc = c->crys_ms.median;
  fprintf(f,
          "    speed of strata (puts + crystallize) / write(2)+fsync %.2f, / "
          "cdb_make %.2f, / lmdb %.2f\n",
          c->ms[1].median / st, c->ms[2].median / st, c->ms[3].median / st);
  /* Issue 19 measured crystallization alone (its 223 MB/s was
   * strata_crystallize() of a ready proto, fsync included); the line above
   * also counts the puts, which write(2) has no counterpart of. Both are
   * printed, and both targets. */
  fprintf(f,
          "    speed of strata crystallize alone / write(2)+fsync %.2f, / "
          "cdb_make %.2f, / lmdb %.2f\n",
          c->ms[1].median / sc, c->ms[2].median / sc, c->ms[3].median / sc);
  bench_target t[2] = {{"strata speed / write(2)+fsync", c->ms[1].median / st,
                        TARGET_CRYS_VS_WRITE, false},
                       {"crystallize alone / write(2)+fsync",
                        c->ms[1].median / sc, TARGET_CRYS_VS_WRITE, false}};
  bench_print_targets(f, t, 2);
}

static void print(FILE *f, const void *result) {
  const crystallize_result *r = result;
  fprintf(f,
          "crystallize: a new proto's layers written out by "
          "strata_crystallize(); GB = 10^9 bytes; median (best) of %d; load "
          "average %.2f\n",
          r->big.reps, r->load1);
  fprintf(f, "  %-26s %14s %8s %8s %8s %14s %8s %14s\n", "layers", "GB/s write",
          "fsync ms", "wall ms", "faults", "write(2) GB/s", "fsync ms",
          "copy GB/s");
  const crystallize_case_result *cs[2] = {&r->big, &r->small};
  for (int i = 0; i < 2; i++) {
    const crystallize_case_result *c = cs[i];
    char what[64];
    snprintf(what, sizeof what, "%" PRIu64 " x %" PRIu64 " B = %.0f MB",
             c->layers, c->layer_bytes, (double)c->bytes / 1e6);
    fprintf(f,
            "  %-26s %6.2f (%5.2f) %8.1f %8.1f %8.0f %6.2f (%5.2f) %8.1f "
            "%6.2f (%5.2f)\n",
            what, c->write_gbs, c->write_gbs_best, c->fsync_ms, c->wall_ms,
            c->faults, c->peer_write_gbs, c->peer_write_gbs_best,
            c->peer_fsync_ms, c->peer_copy_gbs, c->peer_copy_gbs_best);
  }
  fprintf(f, "  (GB/s write: crystallize_bytes / crystallize_write_ns, i.e. "
             "before fsync; faults: minor page faults in strata_crystallize(); "
             "write(2): the same bytes through a 1 MiB buffer, no fsync, then "
             "its fsync; copy: read(2)+write(2) of that file, no fsync)\n");
  for (int i = 0; i < 2; i++) {
    const crystallize_case_result *c = cs[i];
    fprintf(f,
            "  %s layers: strata/write(2) %.2f (best %.2f), strata/copy %.2f "
            "(best %.2f)\n",
            i == 0 ? "large" : "small", c->write_gbs / c->peer_write_gbs,
            c->write_gbs_best / c->peer_write_gbs_best,
            c->write_gbs / c->peer_copy_gbs,
            c->write_gbs_best / c->peer_copy_gbs_best);
  }
  fprintf(f,
          "  target: >= %.1f GB/s before fsync; measured %.2f (%" PRIu64
          " B layers), %.2f (%" PRIu64 " B layers)\n",
          TARGET_CRYS_GBS, r->big.write_gbs, r->big.layer_bytes,
          r->small.write_gbs, r->small.layer_bytes);
  print_peers(f, &r->peers);
}

static void json_crys_case(FILE *f, const char *k,
                           const crystallize_case_result *c) {
  fprintf(f,
          "\"%s\": {\"layers\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
          ", \"bytes\": %" PRIu64 ", \"reps\": %d, \"write_gb_s\": %.4f, "
          "\"write_gb_s_best\": %.4f, \"fsync_ms\": %.3f, \"wall_ms\": "
          "%.3f, \"minor_faults\": %.0f, \"peer_write_gb_s\": %.4f, "
          "\"peer_write_gb_s_best\": %.4f, \"peer_fsync_ms\": %.3f, "
          "\"peer_copy_gb_s\": %.4f, \"peer_copy_gb_s_best\": %.4f}",
          k, c->layers, c->layer_bytes, c->bytes, c->reps, c->write_gbs,
          c->write_gbs_best, c->fsync_ms, c->wall_ms, c->faults,
          c->peer_write_gbs, c->peer_write_gbs_best, c->peer_fsync_ms,
          c->peer_copy_gbs, c->peer_copy_gbs_best);
}

static void json(FILE *f, const void *result) {
  const crystallize_result *r = result;
  fprintf(f, "    \"crystallize\": {\"load1\": %.2f, ", r->load1);
  json_crys_case(f, "large_layers", &r->big);
  fputs(", ", f);
  json_crys_case(f, "small_layers", &r->small);
  fprintf(f,
          ", \"peers\": {\"layers\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
          ", \"reps\": %d, ",
          r->peers.layers, r->peers.layer_bytes, r->peers.reps);
  bench_json_stat(f, "strata_put_ms", r->peers.put_ms);
  fputs(", ", f);
  bench_json_stat(f, "strata_crystallize_ms", r->peers.crys_ms);
  const char *keys[CRYS_PEERS] = {"strata_ms", "write_fsync_ms", "cdb_ms",
                                  "lmdb_ms"};
  for (int p = 0; p < CRYS_PEERS; p++) {
    fputs(", ", f);
    bench_json_stat(f, keys[p], r->peers.ms[p]);
  }
  fprintf(f, ", \"target_speed_vs_write\": %.1f}", TARGET_CRYS_VS_WRITE);
  fprintf(f, ", \"target_gb_s\": %.1f}", TARGET_CRYS_GBS);
}

const bench_scenario bench_sc_crystallize = {
    "crystallize", sizeof(crystallize_result), run, print, json};
