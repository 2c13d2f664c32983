/* strata-bench: shared declarations.
 *
 * The program is a table of scenarios (bench_scenarios.c): each scenario
 * lives in its own file, bench_sc_<name>.c, and offers a run, a text
 * report and a JSON object through a bench_scenario entry (below). The
 * driver (bench_main.c) runs the selected ones in table order.
 *
 * The get scenarios (dense, sparse, small, zipf, open) compare "peers": every
 * store under test implements the small interface below. The get
 * machinery (bench_get.c) builds the same layers into each peer, then times
 * random gets through each peer's run() loop. run() lives in the peer's own
 * file so that its get is inlined into the loop exactly as a caller of that
 * library would write it: the cost of an indirect call is paid once per run,
 * not once per get, and the bare offset array stays a true lower bound.
 *
 * A peer may measure a second way of reading another peer's files (Strata's
 * lean strata_region_get_data() next to its full strata_region_get()): it
 * names that peer in `shares` and brings only its own get() and run(); the
 * get machinery builds, opens, closes and removes the shared state once,
 * through the owner. */
#ifndef STRATA_BENCH_H
#define STRATA_BENCH_H

#include <stdbool.h>
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
extern const bench_peer bench_store_get;
extern const bench_peer bench_store_data;
extern const bench_peer bench_store_batch;
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

/* ---- bench_util.c: helpers shared by every scenario, and bench_gpu ---- */

/* The most repetitions --reps and --build-reps accept. */
#define BENCH_MAX_REPS 101

/* Deterministic contents of value number `pos`. */
void bench_fill_value(uint64_t pos, uint8_t *buf, size_t size);

/* The contents of layer `id` of region `region` in the store and staging
 * scenarios: bench_fill_value() of a number no two layers share. */
void bench_fill_layer(uint64_t region, uint64_t id, uint8_t *buf, size_t size);

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* Joins dir and name into a freshly allocated path (abort on no memory). */
char *bench_path(const char *dir, const char *name);

/* malloc() that exits on no memory. */
void *bench_xmalloc(size_t n);

/* A zeroed state of `size` bytes (a struct starting with bench_state) whose
 * path is dir/name. Exits on no memory. */
void *bench_state_new(size_t size, const char *dir, const char *name);

/* Writes the region every Strata peer reads (bench_strata.c): region 1,
 * the layers' ids and values, no names. Returns 0 or a message in err. */
int bench_strata_write(const char *path, const bench_layers *layers, char *err,
                       size_t errlen);

/* The state's main file. */
const char *bench_state_path(const void *state);

/* Removes the state's main file, frees its path and the state. */
void bench_state_free(void *state);

/* write(2) of all of p[0..len), retrying on EINTR. 0, or -1 with errno. */
int bench_write_all(int fd, const void *p, size_t len);

/* Prints "strata-bench: ..." to stderr and exits 1. */
_Noreturn void bench_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Exits with the library's error detail when rc is an error. */
void bench_check(int rc, const char *what);
/* A progress line on stderr, "# ...". */
void bench_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* n * scale, rounded, at least 1. */
uint64_t bench_scaled(uint64_t n, double scale);
/* The load average over the last minute, or -1 when unknown. */
double bench_load1(void);
/* Creates dir/name (a fresh directory) and returns its path; exits on
 * failure. bench_rmtree() removes it with everything in it. */
char *bench_mkdir(const char *dir, const char *name);
void bench_rmtree(const char *path);

/* GB/s (10^9 bytes) of `bytes` moved in `ns`. */
double bench_gbs(uint64_t bytes, uint64_t ns);

/* qsort() comparison of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

typedef struct bench_stat {
  double median, min, max;
} bench_stat;

/* Median, minimum and maximum of v[0..n-1] (n >= 1; v is not changed). */
bench_stat bench_summarize(const double *v, int n);

/* Drops a file's pages from the page cache (they are clean: every writer
 * here ends with fsync) and reads it through once. Each peer writes its
 * file its own way (write(2), pwrite(2), LMDB through a shared writable
 * map), and the page cache keeps what the write made: folio sizes differ,
 * and with them how many TLB entries a random get needs. Re-reading puts
 * every file into the cache the same way, through readahead. */
void bench_warm_page_cache(const char *path);

/* Writes the region file `path` through strata_writer: region `id` named
 * `name`, `layers` layers with dense ids 0..layers-1 and the contents of
 * bench_fill_layer(). `size` 0 means a size per layer drawn from
 * [64, 256]. Exits on failure. */
void bench_write_region(const char *path, uint64_t id, const char *name,
                        uint64_t layers, size_t size);

/* Builds the layers with peer p into dir (its build(), fsync included),
 * returns the seconds it took, and removes what it wrote. Exits on
 * failure. */
double bench_build_once(const bench_peer *p, const char *dir,
                        const bench_layers *layers);

/* ---- bench_output.c ---- */

/* `"k": {"median": ..., "min": ..., "max": ...}` */
void bench_json_stat(FILE *f, const char *k, bench_stat s);

/* A target of an issue, printed next to the measurement; none is judged
 * beyond the word "met" or "MISSED". */
typedef struct bench_target {
  const char *what;
  double value, limit;
  bool at_most; /* value <= limit is met; else value >= limit */
} bench_target;

/* One "  target: ..." line per target, then an empty line. */
void bench_print_targets(FILE *f, const bench_target *t, int k);

/* ---- bench_options.c ---- */

typedef struct bench_options {
  uint64_t n;       /* layers for dense, sparse, zipf and open */
  uint64_t small_n; /* layers for small */
  size_t size;      /* value size for the get scenarios */
  uint64_t gets;    /* timed gets per peer per repetition */
  int reps;
  uint32_t scenarios; /* bit i: bench_scenarios[i] is selected */
  const char *dir;
  bool json;
  uint64_t build_mib;       /* build: total content */
  uint64_t build_layer_kib; /* build: size of one layer */
  int build_reps;
  uint64_t sparse_build_n; /* build-sparse: layers of 64 B */
  double seconds;          /* store-read: length of each phase */
  int cycles;              /* writer-cycle: timed cycles */
} bench_options;

/* Fills o from the command line. Returns 0, or -1 after printing what was
 * wrong and the usage to stderr; --help prints the usage and exits 0. */
int bench_parse_options(int argc, char **argv, bench_options *o);

/* ---- bench_machine.c ---- */

/* What the report's head says about the machine. */
typedef struct bench_machine {
  char cpu[128];
  char kernel[3 * 65 + 3];
  long cores;
  uint64_t mem_mib;
  char date[32];
  char fs_dir[256];
} bench_machine;

/* Reads /proc/cpuinfo, uname(), sysconf() and the clock; `dir` is where
 * the files go. */
void bench_machine_read(bench_machine *m, const char *dir);
/* The text report's head: versions, machine, and how gets are timed. */
void bench_machine_print(FILE *f, const bench_machine *m,
                         const bench_options *o);
/* The JSON object's "machine" and "versions" members, each on its line. */
void bench_machine_json(FILE *f, const bench_machine *m);

/* ---- bench_rss.c: resident memory ---- */

#define BENCH_PAGE 4096u

/* Resident set of the whole process in bytes (/proc/self/statm). */
uint64_t bench_rss_bytes(void);
/* The mapping of `path` in this process: start address and its Rss in
 * bytes from /proc/self/smaps (pages mapped into this process, not the
 * page cache). Returns false when the file is not mapped. */
bool bench_mapping_of(const char *path, uintptr_t *start, uint64_t *rss);
/* Counts the pages of [lo, hi) that are present in this process's page
 * table (/proc/self/pagemap bit 63). lo and hi are page-aligned. */
uint64_t bench_present_pages(uintptr_t lo, uintptr_t hi);

/* ---- the scenario table (bench_scenarios.c) ---- */

/* What the store and staging scenarios take from the command line. Their
 * sizes are defaults times `scale` (--n / 1,000,000), so that a small --n
 * makes a quick run. Each scenario works in its own subdirectory of `dir`
 * and removes it. Every figure is printed, none is judged: the targets
 * are shown next to the measurements. */
typedef struct bench_store_params {
  const char *dir;
  double scale;
  size_t size;    /* store-read: layer size (--size) */
  int reps;       /* store-open: opens timed (at least 20); rcu and the
                     staging scenarios: repetitions */
  double seconds; /* store-read: length of each timed phase */
} bench_store_params;

struct bench_peer_set;

/* What every scenario's run() gets. */
typedef struct bench_ctx {
  const bench_options *o;
  const char *dir; /* this run's fresh working directory */
  bench_store_params sp;
  /* The peers that dense built, kept open for the open scenario (it times
   * opens of the dense region) when both are selected; NULL otherwise.
   * Open destroys them. */
  struct bench_peer_set *dense_peers;
} bench_ctx;

/* One scenario. The driver allocates a zeroed result of `result_size`
 * bytes, calls run() to fill it, print() to write the text report (stdout,
 * or stderr with --json), and with --json, json() to write the scenario's
 * member of the "scenarios" object (indented, without a separator). */
typedef struct bench_scenario {
  const char *name; /* as given to --scenario */
  size_t result_size;
  void (*run)(bench_ctx *ctx, void *result);
  void (*print)(FILE *f, const void *result);
  void (*json)(FILE *f, const void *result);
} bench_scenario;

/* In the order they run and are printed. */
extern const bench_scenario *const bench_scenarios[];
extern const int bench_nscenarios;

/* Whether scenario `sc` was selected on the command line. */
bool bench_selected(const bench_options *o, const bench_scenario *sc);

extern const bench_scenario bench_sc_dense, bench_sc_open, bench_sc_sparse,
    bench_sc_small, bench_sc_build, bench_sc_pool, bench_sc_store_open,
    bench_sc_store_scale, bench_sc_store_read, bench_sc_crystallize,
    bench_sc_rcu, bench_sc_staging_alloc, bench_sc_staging_copy,
    bench_sc_staging_batch, bench_sc_staging_open, bench_sc_zipf,
    bench_sc_build_sparse, bench_sc_writer_cycle, bench_sc_delta_read;

#endif /* STRATA_BENCH_H */
