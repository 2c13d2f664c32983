/* strata-bench: random-get, open and write throughput of Strata regions
 * next to LMDB, tinycdb and a bare mmap'd offset array (the lower bound).
 * docs/BENCHMARKS.md describes the scenarios and what the numbers mean.
 *
 * Only Strata's public API (include/strata.h) is used, as any caller would,
 * except by the pool scenario (bench_pool.c), which times the library's
 * internal heap pool allocator against malloc()/free(), and staging-alloc
 * (bench_staging.c), which does the same for the staging pool's block
 * allocator. The store scenarios (store-open, store-read, crystallize, rcu)
 * are in bench_store.c and bench_rcu.c, the staging scenarios in
 * bench_staging.c.
 * Every peer gets the same layers (bench_fill_value) and the same random
 * keys; each get reads the value's first and last byte into a sink, so no
 * lookup can be optimized away and every value's cache lines are touched. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <lmdb.h>
#include <cdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "strata.h"

#define PAGE 4096u
#define MAX_REPS 101
#define NPEERS 7

/* The order results are printed in; the timed order rotates per rep.
 * strata-view, strata-batch and strata-data read the file that strata builds
 * (bench_peer.shares). */
static const bench_peer *const peers[NPEERS] = {
    &bench_strata_view, &bench_strata_batch, &bench_strata_data,
    &bench_strata,      &bench_offsets,      &bench_lmdb,
    &bench_cdb};
enum {
  P_STRATA_VIEW,
  P_STRATA_BATCH,
  P_STRATA_DATA,
  P_STRATA,
  P_OFFSETS,
  P_LMDB,
  P_CDB
};

/* The ways of reading a Strata region, leanest first. */
static const int strata_kinds[] = {P_STRATA_VIEW, P_STRATA_BATCH,
                                   P_STRATA_DATA, P_STRATA};
#define NKINDS 4

/* The peer whose state peer p uses: p itself, or the one it shares. */
static int owner(int p) {
  for (int q = 0; q < NPEERS; q++)
    if (peers[q] == (peers[p]->shares ? peers[p]->shares : peers[p]))
      return q;
  abort();
}

static bool owns(int p) { return owner(p) == p; }

/* Written after every run so the sums are observable and the loops stay. */
static volatile uint64_t g_sink;

/* ---- options ------------------------------------------------------------ */

enum {
  SC_DENSE = 1 << 0,
  SC_SPARSE = 1 << 1,
  SC_SMALL = 1 << 2,
  SC_OPEN = 1 << 3,
  SC_BUILD = 1 << 4,
  SC_POOL = 1 << 5,
  SC_STORE_OPEN = 1 << 6,
  SC_STORE_READ = 1 << 7,
  SC_CRYSTALLIZE = 1 << 8,
  SC_RCU = 1 << 9,
  /* The staging scenarios: BENCH_STAGING_* shifted by SC_STAGING_SHIFT. */
  SC_STAGING_SHIFT = 10,
  SC_STAGING = 15 << SC_STAGING_SHIFT,
  SC_ALL = (1 << 14) - 1
};

typedef struct options {
  uint64_t n;       /* layers for dense, sparse and open */
  uint64_t small_n; /* layers for small */
  size_t size;      /* value size for the get scenarios */
  uint64_t gets;    /* timed gets per peer per repetition */
  int reps;
  unsigned scenarios;
  const char *dir;
  bool json;
  uint64_t build_mib;       /* build: total content */
  uint64_t build_layer_kib; /* build: size of one layer */
  int build_reps;
  double seconds; /* store-read: length of each phase */
} options;

static void usage(FILE *f) {
  fprintf(f,
          "usage: strata-bench [options]\n"
          "\n"
          "Random gets, open time and write throughput of a Strata region next\n"
          "to LMDB, tinycdb and a bare mmap'd offset array (the lower bound).\n"
          "\n"
          "  --scenario LIST   comma-separated: dense, sparse, small, open,\n"
          "                    build, pool, store-open, store-read,\n"
          "                    crystallize, rcu, staging-alloc, staging-copy,\n"
          "                    staging-batch, staging-open, staging (the four),\n"
          "                    all (default: all)\n"
          "  --n N             layers for dense, sparse and open "
          "(default 1000000);\n"
          "                    the store and staging scenarios scale with\n"
          "                    N / 1000000\n"
          "  --small-n N       layers for small (default 10000)\n"
          "  --size BYTES      value size for the get scenarios (default 256)\n"
          "  --gets M          timed gets per peer and repetition "
          "(default 10000000)\n"
          "  --reps R          repetitions; the median is reported "
          "(default 5)\n"
          "  --build-mib MIB   build: content written (default 1024)\n"
          "  --build-layer-kib KIB  build: layer size (default 256)\n"
          "  --build-reps R    build: repetitions (default 3)\n"
          "  --seconds S       store-read: seconds per phase (default 2)\n"
          "  --dir DIR         where files go (default $TMPDIR or /tmp); a\n"
          "                    fresh strata-bench-XXXXXX directory is made there\n"
          "                    and removed at exit\n"
          "  --json            print the results as one JSON object on stdout\n"
          "                    (the table then goes to stderr)\n"
          "  --help            this text\n");
}

/* A decimal whole number in [lo, hi]. */
static bool parse_range(const char *s, uint64_t lo, uint64_t hi,
                        uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo ||
      v > hi)
    return false;
  *out = v;
  return true;
}

static bool parse_scenarios(const char *s, unsigned *out) {
  static const struct {
    const char *name;
    unsigned bit;
  } names[] = {{"dense", SC_DENSE}, {"sparse", SC_SPARSE},
               {"small", SC_SMALL}, {"open", SC_OPEN},
               {"build", SC_BUILD}, {"pool", SC_POOL},
               {"store-open", SC_STORE_OPEN}, {"store-read", SC_STORE_READ},
               {"crystallize", SC_CRYSTALLIZE}, {"rcu", SC_RCU},
               {"staging-alloc", BENCH_STAGING_ALLOC << SC_STAGING_SHIFT},
               {"staging-copy", BENCH_STAGING_COPY << SC_STAGING_SHIFT},
               {"staging-batch", BENCH_STAGING_BATCH << SC_STAGING_SHIFT},
               {"staging-open", BENCH_STAGING_OPEN << SC_STAGING_SHIFT},
               {"staging", SC_STAGING}, {"all", SC_ALL}};
  *out = 0;
  char *copy = strdup(s);
  bool ok = copy != NULL;
  for (char *save = NULL, *tok = ok ? strtok_r(copy, ",", &save) : NULL;
       tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    bool found = false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strcmp(tok, names[i].name) == 0) {
        *out |= names[i].bit;
        found = true;
      }
    ok = ok && found;
  }
  free(copy);
  return ok && *out != 0;
}

static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.n = 1000000,
                 .small_n = 10000,
                 .size = 256,
                 .gets = 10000000,
                 .reps = 5,
                 .scenarios = SC_ALL,
                 .build_mib = 1024,
                 .build_layer_kib = 256,
                 .build_reps = 3,
                 .seconds = 2};
  enum { O_N = 256, O_SMALL_N, O_SIZE, O_GETS, O_REPS, O_SCENARIO, O_DIR,
         O_JSON, O_HELP, O_BMIB, O_BKIB, O_BREPS, O_SECONDS };
  static const struct option longopts[] = {
      {"n", required_argument, NULL, O_N},
      {"small-n", required_argument, NULL, O_SMALL_N},
      {"size", required_argument, NULL, O_SIZE},
      {"gets", required_argument, NULL, O_GETS},
      {"reps", required_argument, NULL, O_REPS},
      {"scenario", required_argument, NULL, O_SCENARIO},
      {"dir", required_argument, NULL, O_DIR},
      {"json", no_argument, NULL, O_JSON},
      {"help", no_argument, NULL, O_HELP},
      {"build-mib", required_argument, NULL, O_BMIB},
      {"build-layer-kib", required_argument, NULL, O_BKIB},
      {"build-reps", required_argument, NULL, O_BREPS},
      {"seconds", required_argument, NULL, O_SECONDS},
      {NULL, 0, NULL, 0}};
  int c;
  uint64_t v;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case O_N:
      ok = parse_range(optarg, 1, 100000000, &o->n);
      break;
    case O_SMALL_N:
      ok = parse_range(optarg, 1, 100000000, &o->small_n);
      break;
    case O_SIZE:
      /* tinycdb stores lengths as u32 and its file is capped at 4 GiB. */
      ok = parse_range(optarg, 1, 1u << 24, &v);
      o->size = (size_t)v;
      break;
    case O_GETS:
      ok = parse_range(optarg, 1, 1000000000, &o->gets);
      break;
    case O_REPS:
      ok = parse_range(optarg, 1, MAX_REPS, &v);
      o->reps = (int)v;
      break;
    case O_SCENARIO:
      ok = parse_scenarios(optarg, &o->scenarios);
      break;
    case O_DIR:
      o->dir = optarg;
      break;
    case O_JSON:
      o->json = true;
      break;
    case O_HELP:
      usage(stdout);
      exit(0);
    case O_BMIB:
      ok = parse_range(optarg, 1, UINT64_MAX, &o->build_mib);
      break;
    case O_BKIB:
      ok = parse_range(optarg, 1, 1u << 20, &o->build_layer_kib);
      break;
    case O_BREPS:
      ok = parse_range(optarg, 1, MAX_REPS, &v);
      o->build_reps = (int)v;
      break;
    case O_SECONDS: {
      char *end;
      o->seconds = strtod(optarg, &end);
      ok = end != optarg && *end == '\0' && o->seconds >= 0.01 &&
           o->seconds <= 3600;
      break;
    }
    default:
      ok = false;
    }
    if (!ok) {
      if (c != '?')
        fprintf(stderr, "strata-bench: bad value for an option: %s\n",
                optarg ? optarg : "");
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "strata-bench: unexpected argument: %s\n", argv[optind]);
    usage(stderr);
    return -1;
  }
  return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* One line on stderr: prefix, then fmt. */
static void vsay(const char *prefix, const char *fmt, va_list ap) {
  fputs(prefix, stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("strata-bench: ", fmt, ap);
  va_end(ap);
  exit(1);
}

static void progress(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("# ", fmt, ap);
  va_end(ap);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct stat3 {
  double median, min, max;
} stat3;

static stat3 summarize(const double *v, int k) {
  double s[MAX_REPS + 32];
  memcpy(s, v, (size_t)k * sizeof *v);
  qsort(s, (size_t)k, sizeof *s, cmp_double);
  double med = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
  return (stat3){med, s[0], s[k - 1]};
}

/* Bytes the file occupies on disk: LMDB with MDB_WRITEMAP extends its file
 * to the whole map size as a sparse file, so st_size would overstate it. */
static uint64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* Drops a file's pages from the page cache (they are clean: every build
 * ends with fsync) and reads it through once. Each peer writes its file its
 * own way (write(2), pwrite(2), LMDB through a shared writable map), and the
 * page cache keeps what the write made: folio sizes differ, and with them
 * how many TLB entries a random get needs. Re-reading puts every peer's file
 * into the cache the same way, through readahead. */
static void warm_page_cache(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  static uint8_t buf[1 << 20];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
}

/* ---- the machine -------------------------------------------------------- */

typedef struct machine {
  char cpu[128];
  char kernel[3 * 65 + 3];
  long cores;
  uint64_t mem_mib;
  char date[32];
  char fs_dir[256];
} machine;

static void read_machine(machine *m, const char *dir) {
  snprintf(m->cpu, sizeof m->cpu, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "model name", 10) == 0) {
      char *v = strchr(line, ':');
      if (v != NULL) {
        v += 1 + strspn(v + 1, " \t");
        v[strcspn(v, "\n")] = '\0';
        snprintf(m->cpu, sizeof m->cpu, "%s", v);
      }
      break;
    }
  }
  if (f != NULL)
    fclose(f);
  struct utsname u;
  if (uname(&u) == 0)
    snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release,
             u.machine);
  m->cores = sysconf(_SC_NPROCESSORS_ONLN);
  m->mem_mib = (uint64_t)sysconf(_SC_PHYS_PAGES) *
               (uint64_t)sysconf(_SC_PAGESIZE) >> 20;
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(m->date, sizeof m->date, "%Y-%m-%d %H:%M UTC", &tm);
  snprintf(m->fs_dir, sizeof m->fs_dir, "%s", dir);
}

/* ---- resident memory ---------------------------------------------------- */

/* Resident set of the whole process in bytes (/proc/self/statm). */
static uint64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long long size = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
      res = 0;
    fclose(f);
  }
  return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The mapping of `path` in this process: start address and its Rss in
 * bytes from /proc/self/smaps (pages mapped into this process, not the
 * page cache). Returns false when the file is not mapped. */
static bool mapping_of(const char *path, uintptr_t *start, uint64_t *rss) {
  char real[4096];
  if (realpath(path, real) == NULL)
    return false;
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return false;
  char line[4096 + 256];
  bool in = false, found = false;
  *rss = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    int name_at = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &name_at) == 2 &&
        name_at > 0) {
      char *name = line + name_at;
      name[strcspn(name, "\n")] = '\0';
      in = !found && strcmp(name, real) == 0;
      if (in) {
        *start = (uintptr_t)lo;
        found = true;
      }
      continue;
    }
    unsigned long long kb;
    if (in && sscanf(line, "Rss: %llu kB", &kb) == 1)
      *rss = (uint64_t)kb << 10;
  }
  fclose(f);
  return found;
}

/* Counts the pages of [lo, hi) that are present in this process's page
 * table (/proc/self/pagemap bit 63). lo and hi are page-aligned. */
static uint64_t present_pages(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo)
    return 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  uint64_t count = 0, buf[512];
  for (uintptr_t p = lo; p < hi;) {
    size_t k = (size_t)((hi - p) / PAGE);
    if (k > 512)
      k = 512;
    ssize_t got = pread(fd, buf, k * 8, (off_t)(p / PAGE * 8));
    if (got <= 0)
      break;
    for (size_t i = 0; i < (size_t)got / 8; i++)
      count += buf[i] >> 63;
    p += (uintptr_t)got / 8 * PAGE;
  }
  close(fd);
  return count;
}

/* ---- get scenarios ------------------------------------------------------ */

typedef struct peer_result {
  const char *name;
  double build_s;
  uint64_t file_bytes;
  double open_ms;
  stat3 ns;
  uint64_t misses;
} peer_result;

typedef struct get_result {
  const char *scenario;
  const char *ids;
  uint64_t n;
  size_t size;
  uint64_t gets;
  int reps;
  peer_result peer[NPEERS];
} get_result;

typedef struct peer_set {
  void *state[NPEERS];
  bench_layers layers;
  uint64_t *ids;
} peer_set;

static void build_peers(peer_set *ps, const char *dir, uint64_t n, size_t size,
                        bool sparse, get_result *res) {
  ps->ids = bench_xmalloc(n * sizeof *ps->ids);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t s = i;
    ps->ids[i] = sparse ? bench_splitmix64(&s) : i;
  }
  ps->layers = (bench_layers){n, size, ps->ids};
  for (int p = 0; p < NPEERS; p++) {
    ps->state[p] = NULL;
    if (!owns(p))
      continue; /* set from its owner below */
    char err[512] = "";
    progress("building %s: %" PRIu64 " x %zu B%s", peers[p]->name, n, size,
             sparse ? ", random ids" : "");
    uint64_t t0 = bench_now_ns();
    if (peers[p]->build(&ps->state[p], dir, &ps->layers, err, sizeof err) != 0)
      die("%s build: %s", peers[p]->name, err);
    res->peer[p].build_s = (double)(bench_now_ns() - t0) / 1e9;
    res->peer[p].file_bytes = file_size(bench_state_path(ps->state[p]));
  }
  for (int p = 0; p < NPEERS; p++)
    if (!owns(p)) {
      ps->state[p] = ps->state[owner(p)];
      res->peer[p].build_s = res->peer[owner(p)].build_s;
      res->peer[p].file_bytes = res->peer[owner(p)].file_bytes;
    }
}

static void destroy_peers(peer_set *ps) {
  for (int p = 0; p < NPEERS; p++) {
    if (!owns(p) || ps->state[p] == NULL)
      continue;
    if (peers[p]->destroy != NULL) {
      peers[p]->destroy(ps->state[p]);
    } else {
      peers[p]->close(ps->state[p]);
      bench_state_free(ps->state[p]);
    }
  }
  free(ps->ids);
  ps->ids = NULL;
}

/* Median wall time of `k` opens of a peer, the file in the page cache. */
static stat3 time_opens(int p, void *state, int k) {
  double ms[MAX_REPS + 32];
  char err[512];
  for (int i = 0; i < k; i++) {
    uint64_t t0 = bench_now_ns();
    if (peers[p]->open(state, err, sizeof err) != 0)
      die("%s open: %s", peers[p]->name, err);
    ms[i] = (double)(bench_now_ns() - t0) / 1e6;
    peers[p]->close(state);
  }
  return summarize(ms, k);
}

/* Every peer must return exactly the bytes written, for a sample of keys. */
static void verify_peers(const peer_set *ps, const uint64_t *pos, size_t k) {
  uint8_t *want = bench_xmalloc(ps->layers.size);
  for (size_t j = 0; j < k; j++) {
    uint64_t i = pos[j];
    bench_fill_value(i, want, ps->layers.size);
    for (int p = 0; p < NPEERS; p++) {
      const uint8_t *got;
      size_t len;
      uint64_t key = peers[p]->keyed_by_position ? i : ps->ids[i];
      if (peers[p]->get(ps->state[p], key, &got, &len) != 0 ||
          len != ps->layers.size || memcmp(got, want, len) != 0)
        die("%s returned wrong contents for position %" PRIu64 " (id %" PRIu64
            ")",
            peers[p]->name, i, ps->ids[i]);
    }
  }
  free(want);
}

static void run_gets(const peer_set *ps, get_result *res, uint64_t m, int reps,
                     uint64_t seed) {
  uint64_t n = ps->layers.n;
  uint64_t *pos = bench_xmalloc(m * sizeof *pos);
  uint64_t *idk = bench_xmalloc(m * sizeof *idk);
  /* Uniform in [0, n) by Lemire's multiply-shift; no modulo bias worth
   * naming for n << 2^64. */
  uint64_t s = seed;
  for (uint64_t i = 0; i < m; i++) {
    pos[i] = (uint64_t)(((unsigned __int128)bench_splitmix64(&s) * n) >> 64);
    idk[i] = ps->ids[pos[i]];
  }
  verify_peers(ps, pos, m < 1000 ? (size_t)m : 1000);

  /* Warm-up: enough gets that every page of every file has been touched
   * (4 gets per value on average) and mapped into the page tables. */
  uint64_t warm = m < 4 * n ? m : 4 * n;
  for (int p = 0; p < NPEERS; p++) {
    uint64_t miss = 0;
    const uint64_t *keys = peers[p]->keyed_by_position ? pos : idk;
    g_sink += peers[p]->run(ps->state[p], keys, (size_t)warm, &miss);
    res->peer[p].misses = miss;
  }
  double ns[NPEERS][MAX_REPS];
  for (int r = 0; r < reps; r++) {
    /* Rotate the order so that no peer always runs right after another. */
    for (int q = 0; q < NPEERS; q++) {
      int p = (q + r) % NPEERS;
      const uint64_t *keys = peers[p]->keyed_by_position ? pos : idk;
      uint64_t miss = 0;
      uint64_t t0 = bench_now_ns();
      uint64_t sum = peers[p]->run(ps->state[p], keys, (size_t)m, &miss);
      uint64_t t1 = bench_now_ns();
      g_sink += sum;
      ns[p][r] = (double)(t1 - t0) / (double)m;
      res->peer[p].misses += miss;
    }
  }
  for (int p = 0; p < NPEERS; p++) {
    res->peer[p].ns = summarize(ns[p], reps);
    if (res->peer[p].misses != 0)
      die("%s: %" PRIu64 " gets missed", peers[p]->name, res->peer[p].misses);
  }
  free(pos);
  free(idk);
}

/* Builds the peers (unless given), opens them, times the gets. */
static void get_scenario(const options *o, const char *dir, const char *name,
                         uint64_t n, bool sparse, get_result *res,
                         peer_set *keep) {
  *res = (get_result){.scenario = name,
                      .ids = sparse ? "random 64-bit" : "0..n-1",
                      .n = n,
                      .size = o->size,
                      .gets = o->gets,
                      .reps = o->reps};
  peer_set local, *ps = keep != NULL ? keep : &local;
  build_peers(ps, dir, n, o->size, sparse, res);
  for (int p = 0; p < NPEERS; p++) {
    res->peer[p].name = peers[p]->name;
    if (!owns(p))
      continue;
    warm_page_cache(bench_state_path(ps->state[p]));
    res->peer[p].open_ms = time_opens(p, ps->state[p], 5).median;
    char err[512];
    if (peers[p]->open(ps->state[p], err, sizeof err) != 0)
      die("%s open: %s", peers[p]->name, err);
  }
  for (int p = 0; p < NPEERS; p++)
    res->peer[p].open_ms = res->peer[owner(p)].open_ms;
  progress("%s: %" PRIu64 " gets x %d reps per peer", name, o->gets, o->reps);
  run_gets(ps, res, o->gets, o->reps, 0x62656e6368ull ^ n);
  for (int p = 0; p < NPEERS; p++)
    if (owns(p))
      peers[p]->close(ps->state[p]);
  if (keep == NULL)
    destroy_peers(ps);
}

/* ---- open --------------------------------------------------------------- */

typedef struct open_result {
  uint64_t n;
  size_t size;
  int opens;
  stat3 ms[NPEERS];
  uint64_t file_bytes, data_offset, data_bytes, index_offset, index_bytes;
  uint64_t rss_before, rss_after; /* whole process */
  bool mapping_found;
  uint64_t map_rss; /* smaps Rss of the region's mapping, right after open */
  uint64_t index_pages, index_present;
  uint64_t content_pages, content_present;
  /* Content pages present more than FAR_BYTES away from both ends of the
   * data section: pages no fault near the header or the index can map. */
  uint64_t content_far_pages, content_far_present;
} open_result;

/* The kernel maps more than the faulting page: fault-around maps up to
 * 64 KiB of cached neighbours, and a large page-cache folio (ext4 and XFS
 * have them) can be mapped whole, up to 2 MiB. A page further than that
 * from the header and the index can only be present if something read it. */
#define FAR_BYTES (2u << 20)

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
static uint64_t round_down(uint64_t x, uint64_t a) { return x / a * a; }

static void open_scenario(const options *o, peer_set *ps, open_result *res) {
  *res = (open_result){.n = ps->layers.n, .size = ps->layers.size};
  res->opens = o->reps < 11 ? 11 : o->reps;
  for (int p = 0; p < NPEERS; p++)
    if (owns(p)) {
      warm_page_cache(bench_state_path(ps->state[p]));
      res->ms[p] = time_opens(p, ps->state[p], res->opens);
    }
  const char *path = bench_state_path(ps->state[P_STRATA]);
  res->rss_before = rss_bytes();
  strata_region *r;
  int rc = strata_region_open(path, STRATA_OPEN_DEFAULT, &r);
  if (rc < 0)
    die("strata_region_open: %s", strata_last_error_detail());
  res->rss_after = rss_bytes();
  strata_region_info info;
  strata_region_info_get(r, &info);
  res->file_bytes = info.file_size;
  res->data_offset = info.data_offset;
  res->data_bytes = info.data_size;
  res->index_offset = info.index_offset;
  res->index_bytes = info.file_size - info.index_offset;
  uintptr_t base = 0;
  res->mapping_found = mapping_of(path, &base, &res->map_rss);
  if (res->mapping_found) {
    uint64_t ilo = round_down(info.index_offset, PAGE);
    uint64_t ihi = round_up(info.file_size, PAGE);
    res->index_pages = (ihi - ilo) / PAGE;
    res->index_present = present_pages(base + ilo, base + ihi);
    /* Whole pages of content only: the first shares a page with the header
     * and the last may share one with the index. */
    uint64_t clo = round_up(info.data_offset, PAGE);
    uint64_t chi = round_down(info.data_offset + info.data_size, PAGE);
    if (chi > clo) {
      res->content_pages = (chi - clo) / PAGE;
      res->content_present = present_pages(base + clo, base + chi);
    }
    if (chi > clo + 2 * (uint64_t)FAR_BYTES) {
      uint64_t flo = clo + FAR_BYTES, fhi = chi - FAR_BYTES;
      res->content_far_pages = (fhi - flo) / PAGE;
      res->content_far_present = present_pages(base + flo, base + fhi);
    }
  }
  strata_region_close(r);
}

/* ---- build -------------------------------------------------------------- */

typedef struct build_result {
  uint64_t bytes, layer_bytes, layers;
  int reps;
  stat3 strata_mbs, write_mbs, cp_mbs;
} build_result;

static void build_scenario(const options *o, const char *dir,
                           build_result *res) {
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
    die("--dir must not contain a single quote (it is passed to a shell)");
  size_t cmdlen = strlen(src) + strlen(dst) * 2 + 64;
  char *cmd = bench_xmalloc(cmdlen);
  snprintf(cmd, cmdlen, "cp '%s' '%s' && sync '%s'", src, dst, dst);
  double s_mbs[MAX_REPS], w_mbs[MAX_REPS], c_mbs[MAX_REPS];
  double mb = (double)res->bytes / 1e6;
  for (int r = 0; r < o->build_reps; r++) {
    progress("build: rep %d of %d (%" PRIu64 " x %" PRIu64 " KiB)", r + 1,
             o->build_reps, layers, o->build_layer_kib);
    /* Strata: the writer streams, checksums, writes the index, fsync()s,
     * renames and fsync()s the directory. */
    strata_writer_options wo = {.region_id = 2, .name = "build"};
    strata_writer *w;
    uint64_t t0 = bench_now_ns();
    int rc = strata_writer_open(region, &wo, &w);
    for (uint64_t i = 0; rc == 0 && i < layers; i++) {
      memcpy(buf, &i, sizeof i); /* distinct layers, same bytes as below */
      rc = strata_writer_add(w, i, NULL, NULL, buf, (size_t)layer);
      if (rc < 0)
        strata_writer_abort(w);
    }
    if (rc == 0)
      rc = strata_writer_commit(w);
    if (rc < 0)
      die("strata writer: %s", strata_last_error_detail());
    s_mbs[r] = mb / ((double)(bench_now_ns() - t0) / 1e9);

    /* The same bytes with write(2) and fsync(): what any writer must pay. */
    t0 = bench_now_ns();
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      die("%s: %s", src, strerror(errno));
    for (uint64_t i = 0; i < layers; i++) {
      memcpy(buf, &i, sizeof i);
      if (bench_write_all(fd, buf, (size_t)layer) != 0)
        die("%s: %s", src, strerror(errno));
    }
    if (fsync(fd) != 0)
      die("%s: fsync: %s", src, strerror(errno));
    close(fd);
    w_mbs[r] = mb / ((double)(bench_now_ns() - t0) / 1e9);

    /* cp of that file (in the page cache), then sync of the copy. */
    t0 = bench_now_ns();
    if (system(cmd) != 0)
      die("'%s' failed", cmd);
    c_mbs[r] = mb / ((double)(bench_now_ns() - t0) / 1e9);
    unlink(region);
    unlink(dst);
  }
  unlink(src);
  res->strata_mbs = summarize(s_mbs, o->build_reps);
  res->write_mbs = summarize(w_mbs, o->build_reps);
  res->cp_mbs = summarize(c_mbs, o->build_reps);
  free(cmd);
  free(region);
  free(src);
  free(dst);
  free(buf);
}

/* ---- output ------------------------------------------------------------- */

typedef struct target {
  const char *what;
  double value, limit;
  bool at_most; /* value <= limit is met; else value >= limit */
} target;

static const char *met(double v, double limit, bool at_most) {
  return (at_most ? v <= limit : v >= limit) ? "met" : "MISSED";
}

static void print_machine(FILE *f, const machine *m, const options *o) {
  fprintf(f, "strata-bench: strata %s, %s, tinycdb %.2f\n",
          strata_version_string(), mdb_version(NULL, NULL, NULL),
          TINYCDB_VERSION);
  fprintf(f, "machine: %s, %ld cores online, %" PRIu64 " MiB RAM\n", m->cpu,
          m->cores, m->mem_mib);
  fprintf(f, "kernel:  %s\n", m->kernel);
  fprintf(f, "date:    %s; files in %s; compiler gcc %s\n", m->date,
          m->fs_dir, __VERSION__);
  fprintf(f, "gets:    %" PRIu64 " random uniform gets per peer per rep, %d "
             "reps, median reported; 1 thread; each get reads the value's "
             "first and last byte\n\n",
          o->gets, o->reps);
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
  fprintf(f, "%s: %" PRIu64 " layers x %zu B, ids %s\n", g->scenario, g->n,
          g->size, g->ids);
  fprintf(f, "  %-13s %10s %9s %9s %9s %9s %10s\n", "peer", "ns/get",
          "min", "max", "open ms", "build s", "disk MB");
  for (int p = 0; p < NPEERS; p++) {
    const peer_result *r = &g->peer[p];
    fprintf(f, "  %-13s %10.1f %9.1f %9.1f %9.3f %9.2f %10.1f\n", r->name,
            r->ns.median, r->ns.min, r->ns.max, r->open_ms, r->build_s,
            (double)r->file_bytes / 1e6);
  }
  for (int k = 0; k < NKINDS; k++) {
    const char *name = peers[strata_kinds[k]]->name;
    ratios q = ratios_of(g, strata_kinds[k]);
    fprintf(f, "  %s/offset-array %.2f   lmdb/%s %.2f   tinycdb/%s %.2f\n",
            name, q.over_offsets, name, q.lmdb_over, name, q.cdb_over);
  }
}

static void print_targets(FILE *f, const target *t, int k) {
  for (int i = 0; i < k; i++)
    fprintf(f, "  target: %-38s %s %-6g measured %8.2f  %s\n", t[i].what,
            t[i].at_most ? "<=" : ">=", t[i].limit, t[i].value,
            met(t[i].value, t[i].limit, t[i].at_most));
  fputc('\n', f);
}

/* Fills t (room for 3 * NKINDS) with the scenario's targets for each way
 * of reading Strata; returns how many. */
static int get_targets(const get_result *g, target *t) {
  static char what[NKINDS][3][48];
  bool dense = strcmp(g->scenario, "dense") == 0;
  double limit = dense ? 1.5 : strcmp(g->scenario, "sparse") == 0 ? 2 : 3;
  int n = 0;
  for (int k = 0; k < NKINDS; k++) {
    const char *name = peers[strata_kinds[k]]->name;
    ratios q = ratios_of(g, strata_kinds[k]);
    snprintf(what[k][0], sizeof what[k][0], "%s / offset-array", name);
    snprintf(what[k][1], sizeof what[k][1], "lmdb / %s", name);
    snprintf(what[k][2], sizeof what[k][2], "tinycdb / %s", name);
    t[n++] = (target){what[k][0], q.over_offsets, limit, true};
    if (dense) {
      t[n++] = (target){what[k][1], q.lmdb_over, 10, false};
      t[n++] = (target){what[k][2], q.cdb_over, 6, false};
    }
  }
  return n;
}

static void print_open(FILE *f, const open_result *r) {
  fprintf(f, "open: %" PRIu64 " layers x %zu B (the dense region), file in "
             "the page cache, %d opens\n",
          r->n, r->size, r->opens);
  fprintf(f, "  %-13s %10s %9s %9s\n", "peer", "median ms", "min", "max");
  for (int p = 0; p < NPEERS; p++)
    if (owns(p))
      fprintf(f, "  %-13s %10.3f %9.3f %9.3f\n", peers[p]->name,
              r->ms[p].median, r->ms[p].min, r->ms[p].max);
  fprintf(f, "  strata file %.1f MB: content [%" PRIu64 ", +%" PRIu64
             "), index sections %" PRIu64 " B (%.1f MB) from offset %" PRIu64
             "\n",
          (double)r->file_bytes / 1e6, r->data_offset, r->data_bytes,
          r->index_bytes, (double)r->index_bytes / 1e6, r->index_offset);
  fprintf(f, "  process RSS %.1f MB before open, %.1f MB after (+%.1f MB)\n",
          (double)r->rss_before / 1e6, (double)r->rss_after / 1e6,
          ((double)r->rss_after - (double)r->rss_before) / 1e6);
  if (!r->mapping_found) {
    fprintf(f, "  (mapping not found in /proc/self/smaps)\n");
    return;
  }
  fprintf(f, "  region mapping Rss after open: %.1f MB (smaps)\n",
          (double)r->map_rss / 1e6);
  fprintf(f, "  pages present in this process (pagemap): index %" PRIu64
             " of %" PRIu64 "; content %" PRIu64 " of %" PRIu64
             "; content farther than 2 MiB from header and index %" PRIu64
             " of %" PRIu64 "\n",
          r->index_present, r->index_pages, r->content_present,
          r->content_pages, r->content_far_present, r->content_far_pages);
}

static void print_build(FILE *f, const build_result *b) {
  fprintf(f, "build: %" PRIu64 " layers x %" PRIu64 " KiB = %.0f MB, "
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

/* Timed alloc+free pairs per repetition in the pool scenario. */
#define POOL_PAIRS (1u << 20)

static void print_pool(FILE *f, const bench_pool_result *r) {
  fprintf(f,
          "pool: %" PRIu64 " live blocks of 33 B .. 64 KiB (evenly over the "
          "11 classes); each pair frees a random one and allocates "
          "another; %" PRIu64 " pairs x %d reps, timed in batches of %u\n",
          r->slots, r->pairs, r->reps, r->batch);
  fprintf(f, "  %-28s %10s %9s\n", "ns per alloc+free pair", "median", "p99");
  fprintf(f, "  %-28s %10.1f %9.1f\n", "strata pool", r->pool_median_ns,
          r->pool_p99_ns);
  fprintf(f, "  %-28s %10.1f %9.1f\n", "malloc/free", r->malloc_median_ns,
          r->malloc_p99_ns);
  fprintf(f, "  pool/malloc %.2f (median)  %.2f (p99)\n",
          r->pool_median_ns / r->malloc_median_ns,
          r->pool_p99_ns / r->malloc_p99_ns);
  fprintf(f,
          "  pool at the end: %.1f MB reserved for %.1f MB requested "
          "(utilization %.2f)\n",
          (double)r->reserved_bytes / 1e6, (double)r->requested_bytes / 1e6,
          r->reserved_bytes
              ? (double)r->requested_bytes / (double)r->reserved_bytes
              : 0.0);
}

static void json_stat(FILE *f, const char *k, stat3 s) {
  fprintf(f, "\"%s\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f}", k,
          s.median, s.min, s.max);
}

static void json_get(FILE *f, const get_result *g) {
  fprintf(f, "    \"%s\": {\"n\": %" PRIu64 ", \"size\": %zu, \"ids\": \"%s\", "
             "\"gets\": %" PRIu64 ", \"reps\": %d, \"peers\": {\n",
          g->scenario, g->n, g->size, g->ids, g->gets, g->reps);
  for (int p = 0; p < NPEERS; p++) {
    const peer_result *r = &g->peer[p];
    fprintf(f, "      \"%s\": {", r->name);
    json_stat(f, "ns_per_get", r->ns);
    fprintf(f, ", \"open_ms\": %.4f, \"build_s\": %.3f, \"file_bytes\": %" PRIu64
               "}%s\n",
            r->open_ms, r->build_s, r->file_bytes, p + 1 < NPEERS ? "," : "");
  }
  fputs("    }, \"ratios\": {", f);
  for (int k = 0; k < NKINDS; k++) {
    const char *name = peers[strata_kinds[k]]->name;
    ratios q = ratios_of(g, strata_kinds[k]);
    fprintf(f, "%s\"%s\": {\"over_offsets\": %.4f, \"lmdb_over\": %.4f, "
               "\"tinycdb_over\": %.4f}",
            k ? ", " : "", name, q.over_offsets, q.lmdb_over, q.cdb_over);
  }
  fputs("}}", f);
}

static void json_open(FILE *f, const open_result *r) {
  fprintf(f, "    \"open\": {\"n\": %" PRIu64 ", \"size\": %zu, \"opens\": %d, "
             "\"ms\": {",
          r->n, r->size, r->opens);
  for (int p = 0, first = 1; p < NPEERS; p++)
    if (owns(p)) {
      fputs(first ? "" : ", ", f);
      json_stat(f, peers[p]->name, r->ms[p]);
      first = 0;
    }
  fputs("}", f);
  fprintf(f, ", \"file_bytes\": %" PRIu64 ", \"data_offset\": %" PRIu64
             ", \"data_bytes\": %" PRIu64 ", \"index_offset\": %" PRIu64
             ", \"index_bytes\": %" PRIu64 ", \"rss_before\": %" PRIu64
             ", \"rss_after\": %" PRIu64 ", \"mapping_rss\": %" PRIu64
             ", \"index_pages\": %" PRIu64 ", \"index_pages_present\": %" PRIu64
             ", \"content_pages\": %" PRIu64
             ", \"content_pages_present\": %" PRIu64
             ", \"content_far_pages\": %" PRIu64
             ", \"content_far_pages_present\": %" PRIu64 "}",
          r->file_bytes, r->data_offset, r->data_bytes, r->index_offset,
          r->index_bytes, r->rss_before, r->rss_after, r->map_rss,
          r->index_pages, r->index_present, r->content_pages,
          r->content_present, r->content_far_pages, r->content_far_present);
}

static void json_pool(FILE *f, const bench_pool_result *r) {
  fprintf(f,
          "    \"pool\": {\"slots\": %" PRIu64 ", \"pairs\": %" PRIu64
          ", \"reps\": %d, \"batch\": %u, \"pool_ns\": {\"median\": "
          "%.4f, \"p99\": %.4f}, \"malloc_ns\": {\"median\": %.4f, "
          "\"p99\": %.4f}, \"reserved_bytes\": %" PRIu64
          ", \"requested_bytes\": %" PRIu64 "}",
          r->slots, r->pairs, r->reps, r->batch, r->pool_median_ns,
          r->pool_p99_ns, r->malloc_median_ns, r->malloc_p99_ns,
          r->reserved_bytes, r->requested_bytes);
}

static void json_build(FILE *f, const build_result *b) {
  fprintf(f, "    \"build\": {\"bytes\": %" PRIu64 ", \"layer_bytes\": %" PRIu64
             ", \"layers\": %" PRIu64 ", \"reps\": %d, ",
          b->bytes, b->layer_bytes, b->layers, b->reps);
  json_stat(f, "strata_mb_s", b->strata_mbs);
  fputs(", ", f);
  json_stat(f, "write_fsync_mb_s", b->write_mbs);
  fputs(", ", f);
  json_stat(f, "cp_sync_mb_s", b->cp_mbs);
  fputs("}", f);
}

/* ---- main --------------------------------------------------------------- */

static char *g_workdir;

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

static void cleanup(void) {
  if (g_workdir != NULL)
    nftw(g_workdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv) {
  options o;
  if (parse_options(argc, argv, &o) != 0)
    return 2;
  const char *parent = o.dir;
  if (parent == NULL)
    parent = getenv("TMPDIR");
  if (parent == NULL || *parent == '\0')
    parent = "/tmp";
  g_workdir = bench_path(parent, "strata-bench-XXXXXX");
  if (mkdtemp(g_workdir) == NULL)
    die("mkdtemp %s: %s", g_workdir, strerror(errno));
  atexit(cleanup);
  machine m;
  read_machine(&m, g_workdir);
  FILE *out = o.json ? stderr : stdout;
  print_machine(out, &m, &o);

  /* Zeroed: gcc cannot see that each is printed only when it was filled. */
  get_result dense = {0}, sparse = {0}, small = {0};
  open_result op = {0};
  build_result bu = {0};
  bench_pool_result po = {0};
  target t[3 * NKINDS];
  if (o.scenarios & (SC_DENSE | SC_OPEN)) {
    peer_set ps;
    if (o.scenarios & SC_DENSE) {
      get_scenario(&o, g_workdir, "dense", o.n, false, &dense, &ps);
      print_get(out, &dense);
      print_targets(out, t, get_targets(&dense, t));
    } else {
      get_result unused;
      build_peers(&ps, g_workdir, o.n, o.size, false, &unused);
    }
    if (o.scenarios & SC_OPEN) {
      open_scenario(&o, &ps, &op);
      print_open(out, &op);
      t[0] = (target){"strata open ms", op.ms[P_STRATA].median, 30, true};
      t[1] = (target){"content pages >2 MiB from edges",
                      (double)op.content_far_present, 0, true};
      print_targets(out, t, 2);
    }
    destroy_peers(&ps);
  }
  if (o.scenarios & SC_SPARSE) {
    get_scenario(&o, g_workdir, "sparse", o.n, true, &sparse, NULL);
    print_get(out, &sparse);
    print_targets(out, t, get_targets(&sparse, t));
  }
  if (o.scenarios & SC_SMALL) {
    get_scenario(&o, g_workdir, "small", o.small_n, false, &small, NULL);
    print_get(out, &small);
    print_targets(out, t, get_targets(&small, t));
  }
  if (o.scenarios & SC_BUILD) {
    build_scenario(&o, g_workdir, &bu);
    print_build(out, &bu);
  }
  if (o.scenarios & SC_POOL) {
    progress("pool: %u alloc+free pairs x %d reps per allocator", POOL_PAIRS,
             o.reps);
    bench_pool_run(POOL_PAIRS, o.reps, &po);
    print_pool(out, &po);
    t[0] =
        (target){"pool median ns per alloc+free", po.pool_median_ns, 100, true};
    print_targets(out, t, 1);
  }
  bench_store_params sp = {.dir = g_workdir,
                           .scale = (double)o.n / 1e6,
                           .size = o.size,
                           .reps = o.reps,
                           .seconds = o.seconds};
  bench_store_open_result so = {0};
  bench_store_read_result sr = {0};
  bench_crystallize_result cr = {0};
  bench_rcu_result ru = {0};
  if (o.scenarios & SC_STORE_OPEN) {
    bench_store_open_run(&sp, &so);
    bench_store_open_print(out, &so);
  }
  if (o.scenarios & SC_STORE_READ) {
    bench_store_read_run(&sp, &sr);
    bench_store_read_print(out, &sr);
  }
  if (o.scenarios & SC_CRYSTALLIZE) {
    bench_crystallize_run(&sp, &cr);
    bench_crystallize_print(out, &cr);
  }
  if (o.scenarios & SC_RCU) {
    bench_rcu_run(&sp, &ru);
    bench_rcu_print(out, &ru);
  }
  bench_staging_result *sg = NULL;
  if (o.scenarios & SC_STAGING) {
    sg = bench_staging_run(&sp, (o.scenarios & SC_STAGING) >> SC_STAGING_SHIFT);
    bench_staging_print(out, sg);
  }
  fflush(out);

  if (o.json) {
    printf("{\n  \"machine\": {\"cpu\": \"%s\", \"cores\": %ld, \"mem_mib\": %" PRIu64
           ", \"kernel\": \"%s\", \"date\": \"%s\"},\n",
           m.cpu, m.cores, m.mem_mib, m.kernel, m.date);
    printf("  \"versions\": {\"strata\": \"%s\", \"lmdb\": \"%s\", "
           "\"tinycdb\": \"%.2f\"},\n",
           strata_version_string(), mdb_version(NULL, NULL, NULL),
           TINYCDB_VERSION);
    printf("  \"scenarios\": {\n");
    /* In the order they ran; a separator before all but the first. */
    const get_result *gets[] = {&dense, NULL, &sparse, &small, NULL, NULL,
                                NULL,   NULL, NULL,    NULL,   NULL};
    const unsigned order[] = {SC_DENSE,      SC_OPEN,       SC_SPARSE,
                              SC_SMALL,      SC_BUILD,      SC_POOL,
                              SC_STORE_OPEN, SC_STORE_READ, SC_CRYSTALLIZE,
                              SC_RCU,        SC_STAGING};
    for (int i = 0, first = 1; i < 11; i++) {
      if (!(o.scenarios & order[i]))
        continue;
      fputs(first ? "" : ",\n", stdout);
      first = 0;
      if (gets[i] != NULL)
        json_get(stdout, gets[i]);
      else if (order[i] == SC_OPEN)
        json_open(stdout, &op);
      else if (order[i] == SC_BUILD)
        json_build(stdout, &bu);
      else if (order[i] == SC_POOL)
        json_pool(stdout, &po);
      else if (order[i] == SC_STORE_OPEN)
        bench_store_open_json(stdout, &so);
      else if (order[i] == SC_STORE_READ)
        bench_store_read_json(stdout, &sr);
      else if (order[i] == SC_CRYSTALLIZE)
        bench_crystallize_json(stdout, &cr);
      else if (order[i] == SC_RCU)
        bench_rcu_json(stdout, &ru);
      else
        bench_staging_json(stdout, sg);
    }
    printf("\n  },\n  \"sink\": %" PRIu64 "\n}\n", (uint64_t)g_sink);
  }
  bench_staging_free(sg);
  return 0;
}
