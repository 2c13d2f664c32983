/* strata-bench: the get machinery that the dense, sparse, small, zipf and
 * open scenarios share (bench_get.c): the peers, built with the same layers,
 * opened, checked and timed on the same random keys. */
#ifndef STRATA_BENCH_GET_H
#define STRATA_BENCH_GET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench.h"

#define NPEERS 10

/* The peers in the order results are printed in (bench_peers[]); the timed
 * order rotates per rep. strata-view, strata-batch and strata-data read the
 * file that strata builds (bench_peer.shares); store-batch and store-data
 * read the store that store-get builds (bench_store_peer.c). */
enum {
  P_STRATA_VIEW,
  P_STRATA_BATCH,
  P_STRATA_DATA,
  P_STRATA,
  P_STORE_BATCH,
  P_STORE_DATA,
  P_STORE_GET,
  P_OFFSETS,
  P_LMDB,
  P_CDB
};
extern const bench_peer *const bench_peers[NPEERS];

/* Whether peer p owns its state (false: it reads its owner's). */
bool bench_peer_owns(int p);

/* Written after every run so the sums are observable and the loops stay;
 * the JSON object ends with it. */
extern volatile uint64_t bench_sink;

typedef struct peer_result {
  const char *name;
  double build_s;
  uint64_t file_bytes;
  double open_ms;
  bench_stat ns;
  uint64_t misses;
} peer_result;

/* What a get scenario (dense, sparse, small, zipf) measured. */
typedef struct get_result {
  const char *scenario;
  const char *ids;
  uint64_t n;
  size_t size;
  double zipf_s; /* keys: 0 uniform, else Zipf of this exponent */
  uint64_t gets;
  int reps;
  peer_result peer[NPEERS];
} get_result;

/* Every peer's state, and the layers they hold. */
typedef struct bench_peer_set {
  void *state[NPEERS];
  bench_layers layers;
  uint64_t *ids;
} bench_peer_set;

/* Builds every peer under dir: n values of `size` bytes, ids 0..n-1, or
 * with `sparse` random 64-bit ids. Build times and file sizes go to res. */
void bench_build_peers(bench_peer_set *ps, const char *dir, uint64_t n,
                       size_t size, bool sparse, get_result *res);
/* Removes every peer's files and frees their states. */
void bench_destroy_peers(bench_peer_set *ps);
/* Median, min and max wall time in ms of `k` opens of peer p, the file in
 * the page cache. */
bench_stat bench_time_opens(int p, void *state, int k);

/* What a get scenario reads: n values of `size` bytes (ids 0..n-1, or with
 * `sparse` random 64-bit ids), keys drawn uniformly, or with zipf_s > 0
 * from a Zipf distribution of that exponent over a fixed random ranking
 * of the values. */
typedef struct bench_get_spec {
  const char *name;
  uint64_t n;
  size_t size;
  bool sparse;
  double zipf_s;
} bench_get_spec;

/* A get scenario: builds the peers (into *keep when given, and leaves them
 * built there, closed; else into a local set it destroys), opens them,
 * times --gets random gets per peer, --reps times, every peer on the same
 * keys. */
void bench_get_run(const bench_ctx *ctx, const bench_get_spec *spec,
                   get_result *res, bench_peer_set *keep);
/* The text report, then its targets: each way of reading Strata at most
 * `limit` times the offset array; with `peers_too`, LMDB at least 10 and
 * tinycdb at least 6 times slower than it. */
void bench_get_print(FILE *f, const get_result *g, double limit,
                     bool peers_too);
void bench_get_json(FILE *f, const void *result);

#endif /* STRATA_BENCH_GET_H */
