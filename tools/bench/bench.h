/* strata-bench: shared declarations.
 *
 * Every store under test ("peer") implements the small interface below. The
 * driver (strata_bench.c) builds the same layers into each peer, then times
 * random gets through each peer's run() loop. run() lives in the peer's own
 * file so that its get is inlined into the loop exactly as a caller of that
 * library would write it: the cost of an indirect call is paid once per run,
 * not once per get, and the bare offset array stays a true lower bound.
 *
 * A peer may measure a second way of reading another peer's files (Strata's
 * lean strata_region_get_data() next to its full strata_region_get()): it
 * names that peer in `shares` and brings only its own get() and run(); the
 * driver builds, opens, closes and removes the shared state once, through
 * the owner. */
#ifndef STRATA_BENCH_H
#define STRATA_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* The layers a scenario stores: n values of `size` bytes; value number i
 * (its position, 0 <= i < n) has id ids[i] and the contents that
 * bench_fill_value(i, ...) produces. */
typedef struct bench_layers {
  uint64_t n;
  size_t size;
  const uint64_t *ids;
} bench_layers;

/* Every peer's state starts with this member: the path of its main file
 * (for open timing, /proc/self/maps and removal). */
typedef struct bench_state {
  char *path;
} bench_state;

typedef struct bench_peer {
  const char *name;
  /* NULL, or the peer whose built and opened state this one reads; then
   * only get() and run() below are set. */
  const struct bench_peer *shares;
  /* Keys that run() and get() take: false means the layer id, true means
   * the position 0..n-1 (the offset array has no ids). */
  int keyed_by_position;
  /* Writes the peer's file(s) under `dir`. Returns 0 or a message in err. */
  int (*build)(void **state, const char *dir, const bench_layers *layers,
               char *err, size_t errlen);
  /* Opens what build() wrote, ready for get() and run(). */
  int (*open)(void *state, char *err, size_t errlen);
  /* One lookup; 0 when found, with a borrowed pointer and length. */
  int (*get)(void *state, uint64_t key, const uint8_t **ptr, size_t *len);
  /* m lookups of keys[0..m-1]. For each, reads the value's first and last
   * byte into the returned sink; adds 1 to *misses for a key not found. */
  uint64_t (*run)(void *state, const uint64_t *keys, size_t m,
                  uint64_t *misses);
  /* Undoes open(). */
  void (*close)(void *state);
  /* Removes the files and frees the state (open or closed). NULL means
   * close(), then bench_state_free(): enough for a peer with one file. */
  void (*destroy)(void *state);
} bench_peer;

extern const bench_peer bench_strata;
extern const bench_peer bench_strata_data;
extern const bench_peer bench_strata_view;
extern const bench_peer bench_strata_batch;
extern const bench_peer bench_lmdb;
extern const bench_peer bench_cdb;
extern const bench_peer bench_offsets;

/* splitmix64 (Steele, Lea, Flood 2014): the PRNG behind every random choice
 * here, and the map from position to id in the sparse scenario. */
static inline uint64_t bench_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* ---- bench_util.c ---- */

/* Deterministic contents of value number `pos`. */
void bench_fill_value(uint64_t pos, uint8_t *buf, size_t size);

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* Joins dir and name into a freshly allocated path (abort on no memory). */
char *bench_path(const char *dir, const char *name);

/* malloc() that exits on no memory. */
void *bench_xmalloc(size_t n);

/* A zeroed state of `size` bytes (a struct starting with bench_state) whose
 * path is dir/name. Exits on no memory. */
void *bench_state_new(size_t size, const char *dir, const char *name);

/* The state's main file. */
const char *bench_state_path(const void *state);

/* Removes the state's main file, frees its path and the state. */
void bench_state_free(void *state);

/* write(2) of all of p[0..len), retrying on EINTR. 0, or -1 with errno. */
int bench_write_all(int fd, const void *p, size_t len);

/* ---- bench_pool.c ---- */

/* The "pool" scenario: ns per alloc+free pair of Strata's internal heap pool
 * and of malloc()/free() on the same sequence (see bench_pool.c). */
typedef struct bench_pool_result {
  uint64_t slots, pairs; /* live blocks; timed pairs per repetition */
  int reps;
  unsigned batch; /* pairs per timed batch */
  /* Over the batches of all repetitions. */
  double pool_median_ns, pool_p99_ns, malloc_median_ns, malloc_p99_ns;
  /* The pool at the end of the last timed run. */
  uint64_t reserved_bytes, requested_bytes;
} bench_pool_result;

void bench_pool_run(uint64_t pairs, int reps, bench_pool_result *res);

#endif /* STRATA_BENCH_H */
