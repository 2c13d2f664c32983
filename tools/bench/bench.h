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
#include <stdio.h>

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

/* ---- bench_store.c, bench_rcu.c ---- */

/* What the store scenarios take from the command line. Their layer counts
 * are the defaults below times `scale` (--n / 1,000,000), so that a small
 * --n makes a quick run. Each scenario works in its own subdirectory of
 * `dir` and removes it. Every figure is printed, none is judged: the
 * targets are shown next to the measurements. */
typedef struct bench_store_params {
  const char *dir;
  double scale;
  size_t size;    /* store-read: layer size (--size) */
  int reps;       /* store-open: opens timed (at least 20); rcu: repetitions */
  double seconds; /* store-read: length of each timed phase */
} bench_store_params;

typedef struct bench_stat {
  double median, min, max;
} bench_stat;

/* "store-open": a store of 14 regions opened and closed repeatedly. */
typedef struct bench_store_open_result {
  uint64_t regions, layers;         /* layers per region */
  uint64_t file_bytes, index_bytes; /* all regions together */
  double build_s;
  int opens;
  double load1; /* load average over the last minute, at the start */
  /* ms: strata_store_open() alone, default config (index checksums on a
   * background thread); the same open followed by strata_store_refresh(),
   * which returns once that thread has checked every index; open with
   * STRATA_STORE_VERIFY_AT_OPEN; strata_region_open() of every file, one
   * after another; strata_store_close() after a default open. */
  bench_stat open_ms, verified_ms, verify_at_open_ms, serial_ms, close_ms;
} bench_store_open_result;

void bench_store_open_run(const bench_store_params *p,
                          bench_store_open_result *r);
void bench_store_open_print(FILE *f, const bench_store_open_result *r);
void bench_store_open_json(FILE *f, const bench_store_open_result *r);

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

typedef struct bench_store_read_result {
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
} bench_store_read_result;
#define BENCH_STATS_ROUNDS 6

void bench_store_read_run(const bench_store_params *p,
                          bench_store_read_result *r);
void bench_store_read_print(FILE *f, const bench_store_read_result *r);
void bench_store_read_json(FILE *f, const bench_store_read_result *r);

/* "crystallize": a proto written out as a region file, next to write(2)
 * and a read/write copy of the same bytes. */
typedef struct bench_crystallize_case {
  uint64_t layers, layer_bytes, bytes;
  int reps;
  /* Medians over the repetitions, and the best; GB = 10^9 bytes. */
  double write_gbs, write_gbs_best; /* crystallize_bytes / _write_ns */
  double fsync_ms;                  /* crystallize_fsync_ns */
  double wall_ms;                   /* strata_crystallize() as called */
  double faults;                    /* minor page faults in that call */
  double peer_write_gbs, peer_write_gbs_best, peer_fsync_ms;
  double peer_copy_gbs, peer_copy_gbs_best;
} bench_crystallize_case;

typedef struct bench_crystallize_result {
  double load1;
  bench_crystallize_case big, small;
} bench_crystallize_result;

void bench_crystallize_run(const bench_store_params *p,
                           bench_crystallize_result *r);
void bench_crystallize_print(FILE *f, const bench_crystallize_result *r);
void bench_crystallize_json(FILE *f, const bench_crystallize_result *r);

/* "rcu": the cost of a snapshot against liburcu's urcu-memb flavour. */
typedef struct bench_rcu_result {
  int have_urcu;  /* 0 when strata-bench was built without liburcu */
  uint64_t pairs; /* timed pairs per thread per repetition */
  int reps;
  double load1;
  /* ns per read_begin+read_end (rcu_read_lock+unlock) pair, median over
   * repetitions; with 2 threads, the mean of the two threads' figures. */
  double strata_1t, strata_2t, urcu_1t, urcu_2t, urcu_inline_1t, urcu_inline_2t;
  /* Grace periods, in microseconds: strata_store_reclaim(s, 1) and
   * synchronize_rcu(), with no reader, and while one other thread runs
   * snapshots (read-side sections) of about 1 us back to back. */
  bench_stat strata_gp_us, urcu_gp_us, strata_gp_busy_us, urcu_gp_busy_us;
} bench_rcu_result;

void bench_rcu_run(const bench_store_params *p, bench_rcu_result *r);
void bench_rcu_print(FILE *f, const bench_rcu_result *r);
void bench_rcu_json(FILE *f, const bench_rcu_result *r);

/* Helpers in bench_store.c, used by bench_rcu.c too. */
bench_stat bench_summarize(const double *v, int n);
/* Prints "strata-bench: ..." to stderr and exits 1. */
_Noreturn void bench_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Exits with the library's error detail when rc is an error. */
void bench_check(int rc, const char *what);
/* A progress line on stderr, "# ...". */
void bench_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* n * scale, rounded, at least 1. */
uint64_t bench_scaled(uint64_t n, double scale);
double bench_load1(void);
/* Creates dir/name (a fresh directory) and returns its path; exits on
 * failure. bench_rmtree() removes it with everything in it. */
char *bench_mkdir(const char *dir, const char *name);
void bench_rmtree(const char *path);

/* ---- bench_staging.c ---- */

/* The staging scenarios (see bench_staging.c): which ones to run. */
enum {
  BENCH_STAGING_ALLOC = 1u << 0, /* "staging-alloc" */
  BENCH_STAGING_COPY = 1u << 1,  /* "staging-copy" */
  BENCH_STAGING_BATCH = 1u << 2, /* "staging-batch" */
  BENCH_STAGING_OPEN = 1u << 3,  /* "staging-open" */
};
typedef struct bench_staging_result bench_staging_result;

/* Runs the scenarios in `which` (sizes scale with p->scale, repetitions
 * are p->reps); print and json show those that ran. */
bench_staging_result *bench_staging_run(const bench_store_params *p,
                                        unsigned which);
void bench_staging_print(FILE *f, const bench_staging_result *r);
void bench_staging_json(FILE *f, const bench_staging_result *r);
void bench_staging_free(bench_staging_result *r);

#endif /* STRATA_BENCH_H */
