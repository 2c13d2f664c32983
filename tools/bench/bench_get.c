/* strata-bench: the get machinery of the dense, sparse, small, zipf and
 * open scenarios. Every peer gets the same layers (bench_fill_value) and the
 * same random keys; each get reads the value's first and last byte into a
 * sink, so no lookup can be optimized away and every value's cache lines
 * are touched. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_get.h"

const bench_peer *const bench_peers[NPEERS] = {
    &bench_strata_view, &bench_strata_batch, &bench_strata_data, &bench_strata,
    &bench_store_batch, &bench_store_data,   &bench_store_get,   &bench_offsets,
    &bench_lmdb,        &bench_cdb};

/* The ways of reading Strata, leanest first: the region file, then the same
 * file through a store snapshot. */
static const int strata_kinds[] = {P_STRATA_VIEW, P_STRATA_BATCH, P_STRATA_DATA,
                                   P_STRATA,      P_STORE_BATCH,  P_STORE_DATA,
                                   P_STORE_GET};
#define NKINDS 7

/* Each store read and the region read it matches, for the store/region
 * line of the report. */
static const int store_pairs[][2] = {{P_STORE_BATCH, P_STRATA_BATCH},
                                     {P_STORE_DATA, P_STRATA_DATA},
                                     {P_STORE_GET, P_STRATA}};
#define NPAIRS 3

/* The peer whose state peer p uses: p itself, or the one it shares. */
static int owner(int p) {
  for (int q = 0; q < NPEERS; q++)
    if (bench_peers[q] ==
        (bench_peers[p]->shares ? bench_peers[p]->shares : bench_peers[p]))
      return q;
  abort();
}

bool bench_peer_owns(int p) {
  return owner(p) == p;
}

volatile uint64_t bench_sink;

/* Bytes the file occupies on disk: LMDB with MDB_WRITEMAP extends its file
 * to the whole map size as a sparse file, so st_size would overstate it. */
static uint64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

void bench_build_peers(bench_peer_set *ps, const char *dir, uint64_t n,
                       size_t size, bool sparse, get_result *res) {
  ps->ids = bench_xmalloc(n * sizeof *ps->ids);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t s = i;
    ps->ids[i] = sparse ? bench_splitmix64(&s) : i;
  }
  ps->layers = (bench_layers){n, size, ps->ids};
  for (int p = 0; p < NPEERS; p++) {
    ps->state[p] = NULL;
    if (!bench_peer_owns(p))
      continue; /* set from its owner below */
    char err[512] = "";
    bench_say("building %s: %" PRIu64 " x %zu B%s", bench_peers[p]->name, n,
              size, sparse ? ", random ids" : "");
    uint64_t t0 = bench_now_ns();
    if (bench_peers[p]->build(&ps->state[p], dir, &ps->layers, err,
                              sizeof err) != 0)
      bench_fail("%s build: %s", bench_peers[p]->name, err);
    res->peer[p].build_s = (double)(bench_now_ns() - t0) / 1e9;
    res->peer[p].file_bytes = file_size(bench_state_path(ps->state[p]));
  }
  for (int p = 0; p < NPEERS; p++)
    if (!bench_peer_owns(p)) {
      ps->state[p] = ps->state[owner(p)];
      res->peer[p].build_s = res->peer[owner(p)].build_s;
      res->peer[p].file_bytes = res->peer[owner(p)].file_bytes;
    }
}

void bench_destroy_peers(bench_peer_set *ps) {
  for (int p = 0; p < NPEERS; p++) {
    if (!bench_peer_owns(p) || ps->state[p] == NULL)
      continue;
    if (bench_peers[p]->destroy != NULL) {
      bench_peers[p]->destroy(ps->state[p]);
    } else {
      bench_peers[p]->close(ps->state[p]);
      bench_state_free(ps->state[p]);
    }
  }
  free(ps->ids);
  ps->ids = NULL;
}

/* Median wall time of `k` opens of a peer, the file in the page cache. */
bench_stat bench_time_opens(int p, void *state, int k) {
  double ms[BENCH_MAX_REPS + 32];
  char err[512];
  for (int i = 0; i < k; i++) {
    uint64_t t0 = bench_now_ns();
    if (bench_peers[p]->open(state, err, sizeof err) != 0)
      bench_fail("%s open: %s", bench_peers[p]->name, err);
    ms[i] = (double)(bench_now_ns() - t0) / 1e6;
    bench_peers[p]->close(state);
  }
  return bench_summarize(ms, k);
}

/* Every peer must return exactly the bytes written, for a sample of keys. */
static void verify_peers(const bench_peer_set *ps, const uint64_t *pos,
                         size_t k) {
  uint8_t *want = bench_xmalloc(ps->layers.size);
  for (size_t j = 0; j < k; j++) {
    uint64_t i = pos[j];
    bench_fill_value(i, want, ps->layers.size);
    for (int p = 0; p < NPEERS; p++) {
      const uint8_t *got;
      size_t len;
      uint64_t key = bench_peers[p]->keyed_by_position ? i : ps->ids[i];
      if (bench_peers[p]->get(ps->state[p], key, &got, &len) != 0 ||
          len != ps->layers.size || memcmp(got, want, len) != 0)
        bench_fail("%s returned wrong contents for position %" PRIu64
                   " (id %" PRIu64 ")",
                   bench_peers[p]->name, i, ps->ids[i]);
    }
  }
  free(want);
}

/* Uniform in [0, n) by Lemire's multiply-shift; no modulo bias worth
 * naming for n << 2^64. */
static uint64_t below(uint64_t *s, uint64_t n) {
  return (uint64_t)(((unsigned __int128)bench_splitmix64(s) * n) >> 64);
}

/* m positions in [0, n) drawn from a Zipf distribution of exponent zipf_s:
 * rank k (0-based) has probability proportional to 1 / (k + 1)^zipf_s. The
 * ranks map to positions through a table, a random permutation, so that the
 * hot values are spread over the file as hot ids would be, not packed at
 * its start. Inverse-CDF sampling: a binary search of the cumulative
 * weights per draw, which costs nothing timed (keys are drawn before). */
static void draw_zipf(uint64_t *pos, uint64_t m, uint64_t n, double zipf_s,
                      uint64_t *s) {
  double *cdf = bench_xmalloc(n * sizeof *cdf);
  uint64_t *rank_pos = bench_xmalloc(n * sizeof *rank_pos);
  double sum = 0;
  for (uint64_t k = 0; k < n; k++) {
    sum += pow((double)(k + 1), -zipf_s);
    cdf[k] = sum;
    rank_pos[k] = k;
  }
  for (uint64_t k = n - 1; k > 0; k--) { /* Fisher-Yates */
    uint64_t j = below(s, k + 1), t = rank_pos[k];
    rank_pos[k] = rank_pos[j];
    rank_pos[j] = t;
  }
  for (uint64_t i = 0; i < m; i++) {
    /* u uniform in [0, sum): the first rank whose cumulative weight
     * exceeds it. */
    double u = (double)(bench_splitmix64(s) >> 11) * 0x1p-53 * sum;
    uint64_t lo = 0, hi = n - 1;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      if (cdf[mid] > u)
        hi = mid;
      else
        lo = mid + 1;
    }
    pos[i] = rank_pos[lo];
  }
  free(cdf);
  free(rank_pos);
}

static void run_gets(const bench_peer_set *ps, get_result *res, uint64_t m,
                     int reps, double zipf_s, uint64_t seed) {
  uint64_t n = ps->layers.n;
  uint64_t *pos = bench_xmalloc(m * sizeof *pos);
  uint64_t *idk = bench_xmalloc(m * sizeof *idk);
  uint64_t s = seed;
  if (zipf_s > 0)
    draw_zipf(pos, m, n, zipf_s, &s);
  else
    for (uint64_t i = 0; i < m; i++)
      pos[i] = below(&s, n);
  for (uint64_t i = 0; i < m; i++)
    idk[i] = ps->ids[pos[i]];
  verify_peers(ps, pos, m < 1000 ? (size_t)m : 1000);

  /* Warm-up: enough gets that every page of every file has been touched
   * (4 gets per value on average) and mapped into the page tables. Zipf
   * keys reach the cold values rarely: there the warm-up is the whole
   * timed sequence, so every page it reads is mapped. */
  uint64_t warm = zipf_s > 0 || m < 4 * n ? m : 4 * n;
  for (int p = 0; p < NPEERS; p++) {
    uint64_t miss = 0;
    const uint64_t *keys = bench_peers[p]->keyed_by_position ? pos : idk;
    bench_sink += bench_peers[p]->run(ps->state[p], keys, (size_t)warm, &miss);
    res->peer[p].misses = miss;
  }
  double ns[NPEERS][BENCH_MAX_REPS];
  for (int r = 0; r < reps; r++) {
    /* Rotate the order so that no peer always runs right after another. */
    for (int q = 0; q < NPEERS; q++) {
      int p = (q + r) % NPEERS;
      const uint64_t *keys = bench_peers[p]->keyed_by_position ? pos : idk;
      uint64_t miss = 0;
      uint64_t t0 = bench_now_ns();
      uint64_t sum = bench_peers[p]->run(ps->state[p], keys, (size_t)m, &miss);
      uint64_t t1 = bench_now_ns();
      bench_sink += sum;
      ns[p][r] = (double)(t1 - t0) / (double)m;
      res->peer[p].misses += miss;
    }
  }
  for (int p = 0; p < NPEERS; p++) {
    res->peer[p].ns = bench_summarize(ns[p], reps);
    if (res->peer[p].misses != 0)
      bench_fail("%s: %" PRIu64 " gets missed", bench_peers[p]->name,
                 res->peer[p].misses);
  }
  free(pos);
  free(idk);
}

void bench_get_run(const bench_ctx *ctx, const bench_get_spec *spec,
                   get_result *res, bench_peer_set *keep) {
  const bench_options *o = ctx->o;
  const char *name = spec->name;
  uint64_t n = spec->n;
  *res = (get_result){.scenario = name,
                      .ids = spec->sparse ? "random 64-bit" : "0..n-1",
                      .zipf_s = spec->zipf_s,
                      .n = n,
                      .size = spec->size,
                      .gets = o->gets,
                      .reps = o->reps};
  bench_peer_set local, *ps = keep != NULL ? keep : &local;
  bench_build_peers(ps, ctx->dir, n, spec->size, spec->sparse, res);
  for (int p = 0; p < NPEERS; p++) {
    res->peer[p].name = bench_peers[p]->name;
    if (!bench_peer_owns(p))
      continue;
    bench_warm_page_cache(bench_state_path(ps->state[p]));
    res->peer[p].open_ms = bench_time_opens(p, ps->state[p], 5).median;
    char err[512];
    if (bench_peers[p]->open(ps->state[p], err, sizeof err) != 0)
      bench_fail("%s open: %s", bench_peers[p]->name, err);
  }
  for (int p = 0; p < NPEERS; p++)
    res->peer[p].open_ms = res->peer[owner(p)].open_ms;
  bench_say("%s: %" PRIu64 " gets x %d reps per peer", name, o->gets, o->reps);
  run_gets(ps, res, o->gets, o->reps, spec->zipf_s, 0x62656e6368ull ^ n);
  for (int p = 0; p < NPEERS; p++)
    if (bench_peer_owns(p))
      bench_peers[p]->close(ps->state[p]);
  if (keep == NULL)
    bench_destroy_peers(ps);
}

/* One way of reading Strata (peer k) against the others. */
typedef struct ratios {
  double over_offsets, lmdb_over, cdb_over;
} ratios;

static ratios ratios_of(const get_result *g, int k) {
  double s = g->peer[k].ns.median;
  return (ratios){s / g->peer[P_OFFSETS].ns.median,
                  g->peer[P_LMDB].ns.median / s, g->peer[P_CDB].ns.median / s};
}

static void print_get(FILE *f, const get_result *g) {
  fprintf(f, "%s: %" PRIu64 " layers x %zu B, ids %s, keys ", g->scenario, g->n,
          g->size, g->ids);
  if (g->zipf_s > 0)
    fprintf(f, "zipf s=%.2f\n", g->zipf_s);
  else
    fputs("uniform\n", f);
  fprintf(f, "  %-13s %10s %9s %9s %9s %9s %10s\n", "peer", "ns/get", "min",
          "max", "open ms", "build s", "disk MB");
  for (int p = 0; p < NPEERS; p++) {
    const peer_result *r = &g->peer[p];
    fprintf(f, "  %-13s %10.1f %9.1f %9.1f %9.3f %9.2f %10.1f\n", r->name,
            r->ns.median, r->ns.min, r->ns.max, r->open_ms, r->build_s,
            (double)r->file_bytes / 1e6);
  }
  for (int k = 0; k < NKINDS; k++) {
    const char *name = bench_peers[strata_kinds[k]]->name;
    ratios q = ratios_of(g, strata_kinds[k]);
    fprintf(f, "  %s/offset-array %.2f   lmdb/%s %.2f   tinycdb/%s %.2f\n",
            name, q.over_offsets, name, q.lmdb_over, name, q.cdb_over);
  }
  fprintf(f, "  through a store snapshot / on the region:");
  for (int k = 0; k < NPAIRS; k++)
    fprintf(f, "   %s/%s %.2f", bench_peers[store_pairs[k][0]]->name,
            bench_peers[store_pairs[k][1]]->name,
            g->peer[store_pairs[k][0]].ns.median /
                g->peer[store_pairs[k][1]].ns.median);
  fputc('\n', f);
}

void bench_get_print(FILE *f, const get_result *g, double limit,
                     bool peers_too) {
  print_get(f, g);
  /* Room for three targets per way of reading Strata. */
  static char what[NKINDS][3][48];
  bench_target t[3 * NKINDS];
  int n = 0;
  for (int k = 0; k < NKINDS; k++) {
    const char *name = bench_peers[strata_kinds[k]]->name;
    ratios q = ratios_of(g, strata_kinds[k]);
    snprintf(what[k][0], sizeof what[k][0], "%s / offset-array", name);
    snprintf(what[k][1], sizeof what[k][1], "lmdb / %s", name);
    snprintf(what[k][2], sizeof what[k][2], "tinycdb / %s", name);
    t[n++] = (bench_target){what[k][0], q.over_offsets, limit, true};
    if (peers_too) {
      t[n++] = (bench_target){what[k][1], q.lmdb_over, 10, false};
      t[n++] = (bench_target){what[k][2], q.cdb_over, 6, false};
    }
  }
  bench_print_targets(f, t, n);
}

void bench_get_json(FILE *f, const void *result) {
  const get_result *g = result;
  fprintf(f,
          "    \"%s\": {\"n\": %" PRIu64 ", \"size\": %zu, \"ids\": \"%s\", "
          "\"keys\": \"%s\", \"zipf_s\": %.2f, \"gets\": %" PRIu64
          ", \"reps\": %d, \"peers\": {\n",
          g->scenario, g->n, g->size, g->ids,
          g->zipf_s > 0 ? "zipf" : "uniform", g->zipf_s, g->gets, g->reps);
  for (int p = 0; p < NPEERS; p++) {
    const peer_result *r = &g->peer[p];
    fprintf(f, "      \"%s\": {", r->name);
    bench_json_stat(f, "ns_per_get", r->ns);
    fprintf(f,
            ", \"open_ms\": %.4f, \"build_s\": %.3f, \"file_bytes\": %" PRIu64
            "}%s\n",
            r->open_ms, r->build_s, r->file_bytes, p + 1 < NPEERS ? "," : "");
  }
  fputs("    }, \"ratios\": {", f);
  for (int k = 0; k < NKINDS; k++) {
    const char *name = bench_peers[strata_kinds[k]]->name;
    ratios q = ratios_of(g, strata_kinds[k]);
    fprintf(f,
            "%s\"%s\": {\"over_offsets\": %.4f, \"lmdb_over\": %.4f, "
            "\"tinycdb_over\": %.4f}",
            k ? ", " : "", name, q.over_offsets, q.lmdb_over, q.cdb_over);
  }
  fputs("}}", f);
}
