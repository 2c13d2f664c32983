/* Crash tests: kills a writer with SIGKILL at random moments and checks
 * what it leaves on disk.
 *
 *   crash_driver store   --writer CRASH_WRITER --work DIR [--shim SO]
 *                        [--preload SO] [--deltas | --background]
 *   crash_driver builder --builder REGION_BUILDER --work DIR [--shim SO]
 *                        [--preload SO]
 *
 * "store" runs crash_writer (puts and crystallizations in a loop, see
 * crash_writer.c and crash_model.h); "builder" runs region-builder building
 * a 4.5 MiB region over an existing one (two times in three) or none. A
 * first run of each is timed without a kill, and each kill comes after a
 * random delay drawn with nanosecond resolution. For the writer, half the
 * kills fall in [0, 1.5 mean cycles) after its 0th, 1st or 2nd
 * acknowledgement (a cycle is one put and crystallization), the other half
 * in [0, 1.25 mean crystallizations) after the start of its 1st, 2nd or
 * 3rd strata_crystallize(); for region-builder, in [0, 1.25 mean builds)
 * after its start. So the kills fall anywhere in the cycle, and often
 * inside the writer's commit: the writes, the fsync of the file,
 * validation, link, rename and the fsync of the directory.
 * Every other run preloads the --shim SO (tests/builder's no_tmpfile),
 * which hides O_TMPFILE: the writer then writes a named
 * ".NAME.region.strata-tmp-XXXXXXXX" file from start to rename, and a kill
 leaves
 * it behind; with O_TMPFILE one is left only by a kill between link and
 * rename. --preload SO is preloaded in every run (the self-tests break the
 * rename with it). --deltas runs the writer with delta files (crash_writer
 * --deltas): its crystallizations then write NAME.k.delta files over a
 * region's stack or compact the stack into a new NAME.region, so the kills
 * also land inside those; without it every crystallization writes a whole
 * NAME.region (STRATA_STORE_NO_DELTAS). --background is --deltas with
 * the store's compactor thread (STRATA_STORE_BACKGROUND_COMPACT): stacks
 * grow to 16 deltas and are merged or rewritten on that thread while the
 * writer goes on, so the kills land inside compactions too, between the
 * rename of a rebased delta (NAME.D.cG.delta, then allowed) and the
 * rename of the new base, and while both write (then two temporary files
 * may be left).

 * After each kill, before anything else touches the directory:
 *  - it holds only region files the model names (with --deltas also their
 *    delta files NAME.1.delta .. NAME.4.delta), ".strata.lock" and at
 *    most one temporary file of one of those;
 *  - strata_store_open() with STRATA_STORE_VERIFY_AT_OPEN (not read-only)
 *    logs nothing at WARN or above but the removal of each temporary file
 *    (a region skipped as invalid, or a temporary file of ours left alone
 *    as foreign, fails the test), and afterwards the
 *    directory holds no temporary file;
 *  - strata_region_verify() passes on every region file served, and on
 *    every delta file served over it;
 *  - store: every region, as a snapshot serves it (its base and delta
 *    files: a crash leaves the old stack or the new one, never a mix),
 *    holds exactly the model's content for the generation its layer 0
 *    names; without --deltas no delta is served and the base file alone
 *    holds that content; that generation is the last one the
 *    writer acknowledged ("A" line) or, for the one region whose
 *    strata_crystallize() was running ("C" line without "A"), the next one;
 *    an acknowledged generation's digest is the one acknowledged; a region
 *    acknowledged once is never missing;
 *  - builder: the output is absent (only when there was none before and
 *    the build did not finish), the previous region exactly, or the new
 *    one exactly (always, when region-builder had exited 0).
 *
 * Environment:
 *   STRATA_CRASH_KILLS    kills per mode (default 50; the long run in
 *                         docs/RELIABILITY.md used 500)
 *   STRATA_CRASH_SEED     seed of every random choice (default: the time;
 *                         printed at the start, and with any failure); the
 *                         programs' own timing still varies from run to run
 *   STRATA_CRASH_VERBOSE  1: one line per kill
 *
 * A failure prints what was expected and found, the seed and the kill's
 * number, and the killed program's stderr, and leaves DIR as it was. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash_model.h"

#define LOCK_NAME ".strata.lock"

static const char *work_dir;
static char child_stderr[4096]; /* the killed program's stderr file */
static uint64_t seed;
static unsigned kill_no; /* 0 during calibration */
static uint64_t rng;
static bool verbose;
static const char *preload;    /* --preload: a shim for every run */
static bool deltas;            /* --deltas: the writer writes delta files */
static bool background;        /* --background: and compacts on a thread */
static unsigned rebased_files; /* kills that left a rebased delta's file */

/* ---- helpers --------------------------------------------------------- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "FAIL (kill %u, STRATA_CRASH_SEED=%" PRIu64 "): ", kill_no,
          seed);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  FILE *f = child_stderr[0] ? fopen(child_stderr, "r") : NULL;
  if (f != NULL) {
    char line[1024];
    bool any = false;
    while (fgets(line, sizeof line, f) != NULL) {
      if (!any)
        fprintf(stderr, "stderr of the killed program:\n");
      any = true;
      fprintf(stderr, "  %s", line);
    }
    fclose(f);
  }
  fprintf(stderr, "work directory kept: %s\n", work_dir);
  exit(1);
}

static uint64_t rnd(void) {
  rng = crash_mix(rng);
  return rng;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void rm_rf(const char *path) {
  if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
    fail("cannot remove %s: %s", path, strerror(errno));
}

static void make_dir(const char *path) {
  if (mkdir(path, 0755) != 0)
    fail("mkdir %s: %s", path, strerror(errno));
}

static void join(char *out, size_t len, const char *dir, const char *name) {
  if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
    fail("path too long: %s/%s", dir, name);
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Starts argv[0] with stdout on out_fd (or /dev/null when -1), stderr in
 * child_stderr and stdin from /dev/null; preloads `shim` when not NULL,
 * and --preload's always. */
static pid_t spawn(char *const argv[], int out_fd, const char *shim) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    fail("fork: %s", strerror(errno));
  if (pid > 0)
    return pid;
  /* The child: the driver has no other thread at this point (every store
   * it opened was closed), so setenv() is safe here. */
  int null = open("/dev/null", O_RDWR);
  int err = open(child_stderr, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (null < 0 || err < 0)
    _exit(126);
  dup2(null, STDIN_FILENO);
  dup2(out_fd >= 0 ? out_fd : null, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  if (shim != NULL || preload != NULL) {
    /* In sanitizer builds, ASan insists on being first in the link order
     * unless told otherwise (as tests/builder does for the same shim). */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024], list[8192];
    snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0",
             asan ? asan : "", asan && asan[0] ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    snprintf(list, sizeof list, "%s%s%s", preload ? preload : "",
             preload && shim ? " " : "", shim ? shim : "");
    setenv("LD_PRELOAD", list, 1);
  }
  execv(argv[0], argv);
  _exit(127);
}

static void describe_status(int status, char *out, size_t len) {
  if (WIFEXITED(status))
    snprintf(out, len, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(out, len, "signal %s", strsignal(WTERMSIG(status)));
  else
    snprintf(out, len, "status %#x", status);
}

static int wait_for(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      fail("waitpid: %s", strerror(errno));
  return status;
}

/* ---- the directory ------------------------------------------------------ */

/* Is `n` "." + one of files[] + ".strata-tmp-" + 8 hex digits
 * (pubfile.c)? */
static bool is_temp_of(const char *n, const char *const *files, size_t count) {
  if (n[0] != '.')
    return false;
  for (size_t i = 0; i < count; i++) {
    size_t fl = strlen(files[i]);
    const char *t = n + 1 + fl;
    if (strncmp(n + 1, files[i], fl) != 0 ||
        strncmp(t, ".strata-tmp-", 12) != 0 || strlen(t + 12) != 8 ||
        strspn(t + 12, "0123456789abcdef") != 8)
      continue;
    return true;
  }
  return false;
}

/* A rebased delta of a background compaction not yet under its canonical
 * name: NAME.D.cG.delta for a region NAME of the model (compact.c). */
static bool is_rebased(const char *n) {
  if (!background)
    return false;
  for (size_t k = 0; k < CRASH_NREGIONS; k++) {
    size_t nl = strlen(crash_regions[k].name);
    unsigned d, g;
    int end = 0;
    if (strncmp(n, crash_regions[k].name, nl) == 0 &&
        sscanf(n + nl, ".%u.c%u.delta%n", &d, &g, &end) == 2 &&
        (size_t)end == strlen(n + nl))
      return true;
  }
  return false;
}

/* A temporary file of a rebased delta: ".NAME.D.cG.delta" and the
 * writer's ".strata-tmp-XXXXXXXX" mark. */
static bool is_rebased_temp(const char *n) {
  const char *mark = strstr(n, ".strata-tmp-");
  if (n[0] != '.' || mark == NULL || strlen(mark) != 20)
    return false;
  char base[256];
  size_t bl = (size_t)(mark - n) - 1;
  if (bl >= sizeof base)
    return false;
  memcpy(base, n + 1, bl);
  base[bl] = '\0';
  return is_rebased(base);
}

/* Checks that `dir` holds only files[], the lock file, rebased deltas
 * (--background) and temporary files of files[] (at most one, two with
 * --background, and none unless temps_allowed). Returns the number of
 * temporary files. */
static unsigned scan_dir(const char *dir, const char *const *files,
                         size_t count, bool temps_allowed, const char *when) {
  DIR *d = opendir(dir);
  if (d == NULL)
    fail("opendir %s: %s", dir, strerror(errno));
  unsigned temps = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    bool known = strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
                 strcmp(n, LOCK_NAME) == 0 ||
                 strcmp(n, ".strata.shm") == 0; /* the shared view */
    for (size_t i = 0; !known && i < count; i++)
      known = strcmp(n, files[i]) == 0;
    if (temps_allowed && (is_rebased(n) || is_rebased_temp(n)))
      rebased_files++;
    if (known || is_rebased(n))
      continue;
    if (!is_temp_of(n, files, count) && !is_rebased_temp(n)) {
      closedir(d);
      fail("%s: stray file %s/%s", when, dir, n);
    }
    if (!temps_allowed) {
      closedir(d);
      fail("%s: temporary file %s/%s is still there", when, dir, n);
    }
    temps++;
  }
  closedir(d);
  if (temps > (background ? 2u : 1u))
    fail("%s: %u temporary files in %s (%s in progress)", when, temps, dir,
         background ? "a crystallization and a compaction were"
                    : "one write was");
  return temps;
}

/* ---- opening the store --------------------------------------------------- */

typedef struct log_capture {
  unsigned removed; /* temporary files the store says it removed */
  unsigned bad;     /* other lines at WARN or above */
  char first_bad[1024];
} log_capture;

static void capture(void *ctx, int level, const char *line) {
  log_capture *lc = ctx;
  if (strstr(line, "removed a temporary file") != NULL) {
    lc->removed++; /* a WARN line, expected once per temporary file */
    return;
  }
  if (level >= STRATA_LOG_WARN && lc->bad++ == 0)
    snprintf(lc->first_bad, sizeof lc->first_bad, "%s", line);
}

/* Opens the store as a writer's successor would (not read-only, so it
 * cleans up) and checks the open: nothing logged at WARN or above but one
 * removal per temporary file that was there. */
static strata_store *open_store(const char *dir, unsigned temps,
                                log_capture *lc) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.flags = STRATA_STORE_VERIFY_AT_OPEN;
  c.log_level = STRATA_LOG_INFO;
  c.log_fn = capture;
  c.log_ctx = lc;
  memset(lc, 0, sizeof *lc);
  strata_store *s;
  int rc = strata_store_open(dir, &c, &s);
  if (rc < 0)
    fail("strata_store_open(%s): %s: %s", dir, strata_err_name(rc),
         strata_last_error_detail());
  if (lc->bad > 0)
    fail("opening %s logged %u line(s) at WARN or above, first: %s", dir,
         lc->bad, lc->first_bad);
  if (lc->removed != temps)
    fail("opening %s removed %u temporary file(s), %u were there", dir,
         lc->removed, temps);
  return s;
}

/* ---- reading the writer's lines ------------------------------------------ */

typedef struct line_reader {
  int fd;
  bool eof;
  size_t len;
  char buf[1 << 16];
} line_reader;

/* Reads what is available (blocking when `block`), and hands each complete
 * line to fn. */
static void read_lines(line_reader *lr, bool block,
                       void (*fn)(void *, const char *), void *ctx) {
  if (lr->eof)
    return;
  if (!block) {
    struct pollfd p = {.fd = lr->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
      return;
  }
  ssize_t k;
  do
    k = read(lr->fd, lr->buf + lr->len, sizeof lr->buf - 1 - lr->len);
  while (k < 0 && errno == EINTR);
  if (k < 0)
    fail("reading the writer's pipe: %s", strerror(errno));
  if (k == 0) {
    lr->eof = true;
    if (lr->len > 0)
      fail("the writer's output ends with a partial line: %.*s", (int)lr->len,
           lr->buf);
    return;
  }
  lr->len += (size_t)k;
  char *start = lr->buf, *nl;
  while ((nl = memchr(start, '\n', lr->len - (size_t)(start - lr->buf)))) {
    *nl = '\0';
    fn(ctx, start);
    start = nl + 1;
  }
  lr->len -= (size_t)(start - lr->buf);
  memmove(lr->buf, start, lr->len);
  if (lr->len == sizeof lr->buf - 1)
    fail("the writer printed an endless line");
}

/* ---- store mode ------------------------------------------------------------
 */

/* The cycles timed in the calibration run ("A" to "A"), and the
 * crystallizations ("C" to "A"). Only that run, which is not killed, is
 * timed: in the others a kill cuts the long cycles more often than the
 * short ones, so their mean would be too short. */
static uint64_t cycle_sum_ns, cycles_seen;
static uint64_t cryst_sum_ns, cryst_seen;

static uint64_t mean_ns(uint64_t sum, uint64_t n) {
  uint64_t ns = n ? sum / n : 0;
  return ns < 1000 ? 1000 : ns;
}

typedef struct run_state {
  uint64_t base[CRASH_NREGIONS];  /* generations on disk before the run */
  uint64_t acked[CRASH_NREGIONS]; /* last acknowledged (base if none) */
  uint64_t acked_digest[CRASH_NREGIONS];
  bool acked_here[CRASH_NREGIONS]; /* acked[] came from an "A" line */
  int inflight;                    /* region of a "P" or "C" without "A" */
  char phase;                      /* 'P' or 'C' for it */
  bool ready;
  unsigned acks, crystallizations; /* "A" and "C" lines */
  uint64_t last_ack_ns, last_c_ns;
} run_state;

static int region_index(uint64_t id) {
  for (size_t k = 0; k < CRASH_NREGIONS; k++)
    if (crash_regions[k].id == id)
      return (int)k;
  return -1;
}

static void on_writer_line(void *ctx, const char *line) {
  run_state *st = ctx;
  uint64_t id, g, digest, gens[CRASH_NREGIONS];
  char tag;
  if (strncmp(line, "READY", 5) == 0) {
    const char *p = line + 5;
    for (size_t k = 0; k < CRASH_NREGIONS; k++) {
      char *end;
      gens[k] = strtoull(p, &end, 10);
      if (end == p)
        fail("bad line from the writer: %s", line);
      if (gens[k] != st->base[k])
        fail("the writer opened region %s at generation %" PRIu64
             ", the store served %" PRIu64 " after the last kill",
             crash_regions[k].name, gens[k], st->base[k]);
      p = end;
    }
    st->ready = true;
    return;
  }
  int n = sscanf(line, "%c %" SCNu64 " %" SCNu64 " %" SCNx64, &tag, &id, &g,
                 &digest);
  int k = n >= 3 ? region_index(id) : -1;
  if (k < 0 || !st->ready || (tag == 'A' ? n != 4 : n != 3))
    fail("bad line from the writer: %s", line);
  if (g != st->acked[k] + 1)
    fail("the writer moved region %s to generation %" PRIu64 " from %" PRIu64
         ": %s",
         crash_regions[k].name, g, st->acked[k], line);
  switch (tag) {
  case 'P':
    if (st->inflight >= 0)
      fail("'%s' while region %s is in flight", line,
           crash_regions[st->inflight].name);
    st->inflight = k;
    st->phase = 'P';
    return;
  case 'C':
  case 'A':
    if (st->inflight != k || st->phase != (tag == 'C' ? 'P' : 'C'))
      fail("'%s' out of order", line);
    if (tag == 'C') {
      st->phase = 'C';
      st->crystallizations++;
      st->last_c_ns = now_ns();
      return;
    }
    st->acked[k] = g;
    st->acked_digest[k] = digest;
    st->acked_here[k] = true;
    st->inflight = -1;
    uint64_t t = now_ns();
    if (kill_no == 0) { /* calibration: see cycle_sum_ns */
      if (st->acks > 0) {
        cycle_sum_ns += t - st->last_ack_ns;
        cycles_seen++;
      }
      cryst_sum_ns += t - st->last_c_ns;
      cryst_seen++;
    }
    st->acks++;
    st->last_ack_ns = t;
    return;
  default:
    fail("bad line from the writer: %s", line);
  }
}

typedef struct store_stats {
  unsigned kills, mid_put, mid_crystallize, landed, kept, between;
  unsigned temps, shim_runs, acks, fresh_deleted;
  /* With --deltas: crystallizations the kill interrupted that landed as a
   * delta (the region's depth grew) or as a compaction (depth 0), and the
   * checks that found a region served with deltas. */
  unsigned landed_delta, landed_compact, with_deltas;
  uint32_t max_depth;
} store_stats;

/* The files a store of the model may hold: NAME.region, and with --deltas
 * NAME.1.delta .. NAME.4.delta (crystallize.c's STRATA__MAX_DEPTH), with
 * --background up to NAME.16.delta (STRATA__MAX_DEPTH_BACKGROUND). */
#define MAX_DEPTH 16
static uint32_t max_depth(void) {
  return background ? 16 : 4;
}
#define MAX_FILES (CRASH_NREGIONS * (1 + MAX_DEPTH))
static size_t model_files(char names[][64], const char **files) {
  size_t n = 0;
  for (size_t k = 0; k < CRASH_NREGIONS; k++)
    for (uint32_t d = 0; d <= (deltas ? max_depth() : 0); d++) {
      if (d == 0)
        snprintf(names[n], 64, "%s.region", crash_regions[k].name);
      else
        snprintf(names[n], 64, "%s.%" PRIu32 ".delta", crash_regions[k].name,
                 d);
      files[n] = names[n];
      n++;
    }
  return n;
}

/* Verifies the delta files the snapshot serves over the region at
 * position `index`, puts them in out[] (oldest first) and returns how many
 * there are. */
static uint32_t verify_deltas(const strata_txn *txn, uint64_t index,
                              const char *base,
                              const strata_region *out[MAX_DEPTH]) {
  const strata_region *d;
  uint32_t k = 0;
  for (; strata_store_region_delta_at(txn, index, k, &d) == 0; k++) {
    if (k == max_depth())
      fail("%s: more than %" PRIu32 " delta files served", base, max_depth());
    out[k] = d;
    strata_region_info info;
    strata_region_info_get(d, &info);
    uint64_t bad = UINT64_MAX;
    int rc = strata_region_verify(d, &bad);
    if (rc < 0)
      fail("%s (delta %" PRIu32 " over %s): strata_region_verify: %s (layer "
           "%" PRIu64 "): %s",
           info.path, k + 1, base, strata_err_name(rc), bad,
           strata_last_error_detail());
  }
  if (k > 0 && !deltas)
    fail("%s: %" PRIu32 " delta file(s) served, the writer runs with "
         "STRATA_STORE_NO_DELTAS",
         base, k);
  return k;
}

/* Checks the store directory after a writer died (see the top comment),
 * and sets st->base[] to the generations found. */
static void check_store(const char *dir, run_state *st, store_stats *stats,
                        uint8_t *buf, crash_sum_cache *cache) {
  const char *files[MAX_FILES];
  char names[MAX_FILES][64];
  size_t nfiles = model_files(names, files);
  unsigned temps = scan_dir(dir, files, nfiles, true, "after the kill");
  log_capture lc;
  strata_store *s = open_store(dir, temps, &lc);
  scan_dir(dir, files, nfiles, false, "after strata_store_open");
  stats->temps += temps;

  uint64_t found[CRASH_NREGIONS] = {0};
  uint32_t depth[CRASH_NREGIONS] = {0};
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    fail("strata_read_begin: %s", strata_err_name(rc));
  uint64_t count = strata_store_region_count(&txn);
  for (uint64_t i = 0; i < count; i++) {
    strata_store_region sr;
    if ((rc = strata_store_region_at(&txn, i, &sr)) < 0)
      fail("strata_store_region_at: %s", strata_err_name(rc));
    int k = region_index(sr.id);
    if (k < 0 || sr.file == NULL || sr.has_proto)
      fail("the store serves an unexpected region %" PRIu64 " (%s)", sr.id,
           sr.name);
    const crash_region_spec *r = &crash_regions[k];
    const char *want_file = files[k * (nfiles / CRASH_NREGIONS)];
    size_t pl = strlen(sr.path), nl = strlen(want_file);
    if (strcmp(sr.name, r->name) != 0 || pl < nl + 1 ||
        strcmp(sr.path + pl - nl, want_file) != 0 ||
        sr.path[pl - nl - 1] != '/')
      fail("region %" PRIu64 " is named %s, served from %s", sr.id, sr.name,
           sr.path);
    uint64_t bad = UINT64_MAX, gen = 0, digest = 0;
    if ((rc = strata_region_verify(sr.file, &bad)) < 0)
      fail("%s: strata_region_verify: %s (layer %" PRIu64 "): %s", sr.path,
           strata_err_name(rc), bad, strata_last_error_detail());
    const strata_region *stack[MAX_DEPTH];
    depth[k] = verify_deltas(&txn, i, sr.path, stack);
    char why[512] = "";
    if (crash_served_digest(&txn, sr.id, &gen, &digest, why, sizeof why) < 0)
      fail("%s (and %" PRIu32 " delta file(s)): %s", sr.path, depth[k], why);
    /* The files read as a stack by the test's own merge (and, without
     * deltas, the base file alone) hold what the snapshot serves. */
    uint64_t fgen = 0, fdigest = 0;
    if (crash_files_digest(sr.file, stack, depth[k], r->layers, &fgen, &fdigest,
                           why, sizeof why) < 0 ||
        fgen != gen || fdigest != digest)
      fail("%s (and %" PRIu32 " delta file(s)): the files read as a stack "
           "differ from what the store serves%s%s",
           sr.path, depth[k], why[0] ? ": " : "", why);
    if (!deltas &&
        (crash_region_digest(sr.file, &fgen, &fdigest, why, sizeof why) < 0 ||
         fgen != gen || fdigest != digest))
      fail("%s: the file alone differs from what the store serves", sr.path);
    uint64_t want = crash_model_digest(r, gen, buf, &cache[k]);
    if (digest != want)
      fail("%s: generation %" PRIu64 " has digest %016" PRIx64
           ", the model's is %016" PRIx64 " (a mix of generations?)",
           sr.path, gen, digest, want);
    if (gen == st->acked[k]) {
      if (st->acked_here[k] && digest != st->acked_digest[k])
        fail("%s: generation %" PRIu64 " has digest %016" PRIx64
             ", the writer acknowledged %016" PRIx64,
             sr.path, gen, digest, st->acked_digest[k]);
    } else if (gen != st->acked[k] + 1) {
      fail("%s: generation %" PRIu64 " on disk, the writer acknowledged "
           "%" PRIu64,
           sr.path, gen, st->acked[k]);
    } else if (st->inflight != k || st->phase != 'C') {
      fail("%s: generation %" PRIu64 " on disk, but the writer had not "
           "begun to crystallize it (acknowledged %" PRIu64 ")",
           sr.path, gen, st->acked[k]);
    }
    found[k] = gen;
    stats->with_deltas += depth[k] > 0;
    if (depth[k] > stats->max_depth)
      stats->max_depth = depth[k];
  }
  strata_read_end(&txn);
  strata_store_close(s);
  for (size_t k = 0; k < CRASH_NREGIONS; k++)
    if (found[k] == 0 && st->acked[k] > 0)
      fail("region %s: generation %" PRIu64 " was acknowledged, the store "
           "has no such region",
           crash_regions[k].name, st->acked[k]);
  for (size_t k = 0; k < CRASH_NREGIONS; k++)
    if (st->acked_here[k] &&
        st->acked_digest[k] !=
            crash_model_digest(&crash_regions[k], st->acked[k], buf, &cache[k]))
      fail("region %s: the writer acknowledged generation %" PRIu64
           " with a digest the model does not give",
           crash_regions[k].name, st->acked[k]);

  if (st->inflight < 0) {
    stats->between++;
  } else if (st->phase == 'P') {
    stats->mid_put++;
  } else {
    stats->mid_crystallize++;
    if (found[st->inflight] > st->acked[st->inflight]) {
      stats->landed++;
      stats->landed_delta += depth[st->inflight] > 0;
      stats->landed_compact += depth[st->inflight] == 0;
    } else {
      stats->kept++;
    }
  }
  memcpy(st->base, found, sizeof found);
}

static void start_run(run_state *st, const uint64_t *base) {
  memset(st, 0, sizeof *st);
  memcpy(st->base, base, sizeof st->base);
  memcpy(st->acked, base, sizeof st->acked);
  st->inflight = -1;
}

/* Puts --deltas (or --background) after the program's name when the
 * driver runs with it (argv has room for one more argument). */
static void writer_args(char **argv) {
  if (!deltas)
    return;
  size_t n = 0;
  while (argv[n] != NULL)
    n++;
  memmove(argv + 2, argv + 1, n * sizeof *argv); /* with the NULL */
  argv[1] = background ? "--background" : "--deltas";
}

static int run_store(const char *writer, const char *shim, unsigned kills) {
  char dir[4096];
  join(dir, sizeof dir, work_dir, "store");
  make_dir(dir);
  join(child_stderr, sizeof child_stderr, work_dir, "writer.stderr");
  uint8_t *buf = malloc(CRASH_MAX_LAYER_SIZE);
  crash_sum_cache *cache = calloc(CRASH_NREGIONS, sizeof *cache);
  if (buf == NULL || cache == NULL)
    fail("out of memory");
  store_stats stats = {0};
  uint64_t base[CRASH_NREGIONS] = {0};
  run_state st;
  line_reader *lr = malloc(sizeof *lr);
  if (lr == NULL)
    fail("out of memory");

  /* Calibration: a run that is not killed measures the cycle. */
  const unsigned cal_cycles = 24;
  char seed_arg[32], cycles_arg[32];
  snprintf(cycles_arg, sizeof cycles_arg, "%u", cal_cycles);
  snprintf(seed_arg, sizeof seed_arg, "%" PRIu64, rnd());
  char *argv_cal[] = {(char *)writer, dir, seed_arg, cycles_arg, NULL, NULL};
  writer_args(argv_cal);
  int fds[2];
  if (pipe(fds) != 0)
    fail("pipe: %s", strerror(errno));
  start_run(&st, base);
  pid_t pid = spawn(argv_cal, fds[1], NULL);
  close(fds[1]);
  lr->fd = fds[0];
  lr->eof = false;
  lr->len = 0;
  while (!lr->eof)
    read_lines(lr, true, on_writer_line, &st);
  close(fds[0]);
  int status = wait_for(pid);
  char how[64];
  describe_status(status, how, sizeof how);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || st.acks != cal_cycles)
    fail("calibration run: %s after %u acknowledgements", how, st.acks);
  uint64_t cycle_ns = mean_ns(cycle_sum_ns, cycles_seen);
  uint64_t cryst_ns = mean_ns(cryst_sum_ns, cryst_seen);
  check_store(dir, &st, &stats, buf, cache);
  stats.between = 0;
  memcpy(base, st.base, sizeof base);
  printf("store: cycle %.2f ms (put + crystallize, mean of %u), "
         "crystallization %.2f ms; kill delays in [0, %.2f ms) after 0-2 "
         "acknowledgements or [0, %.2f ms) after the start of the 1st-3rd "
         "crystallization\n",
         (double)cycle_ns / 1e6, cal_cycles - 1, (double)cryst_ns / 1e6,
         1.5 * (double)cycle_ns / 1e6, 1.25 * (double)cryst_ns / 1e6);

  uint64_t t0 = now_ns();
  for (kill_no = 1; kill_no <= kills; kill_no++) {
    bool use_shim = shim != NULL && kill_no % 2 == 0;
    /* Half the kills come anywhere in a cycle, the other half inside a
     * crystallization, where the fsyncs and the rename are. */
    bool in_cryst = rnd() % 2 == 0;
    unsigned want = (unsigned)(rnd() % 3) + in_cryst;
    uint64_t delay =
        in_cryst ? rnd() % (cryst_ns * 5 / 4) : rnd() % (cycle_ns * 3 / 2);
    snprintf(seed_arg, sizeof seed_arg, "%" PRIu64, rnd());
    char *argv_run[] = {(char *)writer, dir, seed_arg, NULL, NULL};
    writer_args(argv_run);
    if (pipe(fds) != 0)
      fail("pipe: %s", strerror(errno));
    start_run(&st, base);
    pid = spawn(argv_run, fds[1], use_shim ? shim : NULL);
    close(fds[1]);
    lr->fd = fds[0];
    lr->eof = false;
    lr->len = 0;
    uint64_t deadline = 0, give_up = now_ns() + 60 * 1000000000ull;
    for (;;) {
      if (deadline == 0 && st.ready &&
          (in_cryst ? st.crystallizations : st.acks) >= want)
        deadline = now_ns() + delay;
      uint64_t now = now_ns();
      if (deadline != 0 && now >= deadline)
        break;
      if (now >= give_up)
        fail("the writer made no progress in 60 s");
      uint64_t wait = (deadline ? deadline : give_up) - now;
      struct timespec ts = {(time_t)(wait / 1000000000u),
                            (long)(wait % 1000000000u)};
      struct pollfd p = {.fd = fds[0], .events = POLLIN};
      int n = ppoll(&p, 1, &ts, NULL);
      if (n < 0 && errno != EINTR)
        fail("ppoll: %s", strerror(errno));
      if (n > 0)
        read_lines(lr, false, on_writer_line, &st);
      if (lr->eof) {
        describe_status(wait_for(pid), how, sizeof how);
        fail("the writer ended on its own (%s)", how);
      }
    }
    if (kill(pid, SIGKILL) != 0)
      fail("kill: %s", strerror(errno));
    /* Lines still in the pipe were written before the kill: they count. */
    while (!lr->eof)
      read_lines(lr, true, on_writer_line, &st);
    close(fds[0]);
    status = wait_for(pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      describe_status(status, how, sizeof how);
      fail("the writer ended with %s, not by the kill", how);
    }
    unsigned temps_before = stats.temps, landed_before = stats.landed;
    char phase = st.inflight < 0 ? '-' : st.phase;
    int inflight = st.inflight;
    stats.acks += st.acks;
    stats.shim_runs += use_shim;
    check_store(dir, &st, &stats, buf, cache);
    memcpy(base, st.base, sizeof base);
    if (verbose)
      printf("kill %u: %s, %.3f ms after %s %u, %s%s%s, "
             "generations %" PRIu64 " %" PRIu64 " %" PRIu64 "%s\n",
             kill_no, use_shim ? "named temp" : "O_TMPFILE",
             (double)delay / 1e6, in_cryst ? "crystallization" : "ack", want,
             phase == 'P'                   ? "putting"
             : phase == '-'                 ? "between"
             : stats.landed > landed_before ? "crystallizing (landed)"
                                            : "crystallizing (old kept)",
             inflight >= 0 ? " in " : "",
             inflight >= 0 ? crash_regions[inflight].name : "", base[0],
             base[1], base[2],
             stats.temps > temps_before ? ", temp file removed" : "");
    /* Now and then "fresh" goes (its base and delta files), so that a
     * later run creates it again. */
    if (rnd() % 4 == 0 && base[CRASH_FRESH] > 0) {
      char path[4200], name[64];
      join(path, sizeof path, dir, "fresh.region");
      if (unlink(path) != 0)
        fail("unlink %s: %s", path, strerror(errno));
      for (uint32_t d = 1; deltas && d <= max_depth(); d++) {
        snprintf(name, sizeof name, "fresh.%" PRIu32 ".delta", d);
        join(path, sizeof path, dir, name);
        if (unlink(path) != 0 && errno != ENOENT)
          fail("unlink %s: %s", path, strerror(errno));
      }
      base[CRASH_FRESH] = 0;
      stats.fresh_deleted++;
    }
    stats.kills++;
  }
  kill_no = 0;
  double secs = (double)(now_ns() - t0) / 1e9;
  printf("store: %u kills in %.1f s (%u with a named temporary file); at the "
         "kill: %u putting, %u crystallizing (%u new file in place, %u old "
         "kept), %u between; %u temporary files removed by the next open; "
         "%u acknowledgements checked; fresh region deleted %u times; "
         "generations reached %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
         stats.kills, secs, stats.shim_runs, stats.mid_put,
         stats.mid_crystallize, stats.landed, stats.kept, stats.between,
         stats.temps, stats.acks, stats.fresh_deleted, base[0], base[1],
         base[2]);
  if (deltas) {
    printf("store (deltas): %u interrupted crystallizations landed as a "
           "delta, %u as a compaction; %u region checks found deltas "
           "served, up to %" PRIu32 " deep%s",
           stats.landed_delta, stats.landed_compact, stats.with_deltas,
           stats.max_depth, background ? "; " : "\n");
    if (background)
      printf("%u kills left a background compaction's rebased delta (or its "
             "temporary file) in the directory\n",
             rebased_files);
    /* Without a delta ever served the run covered nothing of them. */
    if (stats.with_deltas == 0)
      fail("no check found a region served with delta files");
  }
  free(lr);
  free(cache);
  free(buf);
  return 0;
}

/* ---- builder mode ------------------------------------------------------ */

/* Region-builder builds region 7 "built" from one of four variants, each a
 * manifest with a text layer and three files (4.5 MiB in all; one sparse
 * id, so the region has a hashed index). */
#define VARIANTS 4
#define BUILT_ID 7
#define MANIFEST_PATH_MAX 4200
static const uint64_t blob_size[3] = {1536u << 10, 2560u << 10, 512u << 10};

static uint64_t blob_len(unsigned v, unsigned j) {
  return blob_size[j] + v * 4099u + j;
}

static uint64_t blob_id(unsigned v, unsigned j) {
  return j < 2 ? j + 1 : 1000 + v;
}

static void write_file(const char *path, const void *p, size_t len) {
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0)
    fail("writing %s: %s", path, strerror(errno));
}

/* Writes the inputs of every variant under `in`; returns their digests. */
static void make_inputs(const char *in, uint64_t *digests) {
  size_t max = blob_len(VARIANTS, 1);
  uint8_t *buf = malloc(max);
  XXH3_state_t *st = XXH3_createState();
  if (buf == NULL || st == NULL)
    fail("out of memory");
  for (unsigned v = 0; v < VARIANTS; v++) {
    char path[4200], text[32], manifest[2048], meta[2][64];
    XXH3_64bits_reset(st);
    snprintf(text, sizeof text, "variant %u", v);
    crash_digest_layer(st, 0, text, strlen(text), "variant", NULL);
    for (unsigned j = 0; j < 3; j++) {
      char name[32];
      snprintf(name, sizeof name, "v%u-%u.bin", v, j);
      join(path, sizeof path, in, name);
      crash_fill(buf, (size_t)blob_len(v, j), crash_hash3(BUILT_ID, v, j));
      write_file(path, buf, (size_t)blob_len(v, j));
      if (j < 2)
        snprintf(meta[j], sizeof meta[j], "{\"variant\":%u,\"blob\":%u}", v, j);
      snprintf(name, sizeof name, "blob-%u", j);
      crash_digest_layer(st, blob_id(v, j), buf, blob_len(v, j),
                         j < 2 ? name : NULL, j < 2 ? meta[j] : NULL);
    }
    digests[v] = XXH3_64bits_digest(st);
    snprintf(manifest, sizeof manifest,
             "{\"region\": {\"id\": %d, \"name\": \"built\", \"metadata\": "
             "{\"variant\": %u}},\n"
             " \"layers\": [\n"
             "  {\"id\": 0, \"name\": \"variant\", \"text\": \"%s\"},\n"
             "  {\"id\": %" PRIu64 ", \"name\": \"blob-0\", \"file\": "
             "\"v%u-0.bin\", \"metadata\": %s},\n"
             "  {\"id\": %" PRIu64 ", \"name\": \"blob-1\", \"file\": "
             "\"v%u-1.bin\", \"metadata\": %s},\n"
             "  {\"id\": %" PRIu64 ", \"file\": \"v%u-2.bin\"}]}\n",
             BUILT_ID, v, text, blob_id(v, 0), v, meta[0], blob_id(v, 1), v,
             meta[1], blob_id(v, 2), v);
    char mname[32];
    snprintf(mname, sizeof mname, "m%u.json", v);
    join(path, sizeof path, in, mname);
    write_file(path, manifest, strlen(manifest));
  }
  XXH3_freeState(st);
  free(buf);
}

/* Opens and verifies `path` (a region file) and returns its variant:
 * which digest it has. */
static int region_variant(const char *path, const uint64_t *digests) {
  strata_region *r;
  int rc = strata_region_open(path, STRATA_OPEN_DEFAULT, &r);
  if (rc < 0)
    fail("%s: strata_region_open: %s: %s", path, strata_err_name(rc),
         strata_last_error_detail());
  uint64_t bad = UINT64_MAX;
  if ((rc = strata_region_verify(r, &bad)) < 0)
    fail("%s: strata_region_verify: %s (layer %" PRIu64 "): %s", path,
         strata_err_name(rc), bad, strata_last_error_detail());
  strata_region_info info;
  strata_region_info_get(r, &info);
  if (info.id != BUILT_ID || strcmp(info.name, "built") != 0)
    fail("%s: region %" PRIu64 " \"%s\", expected %d \"built\"", path, info.id,
         info.name, BUILT_ID);
  XXH3_state_t *st = XXH3_createState();
  if (st == NULL)
    fail("out of memory");
  XXH3_64bits_reset(st);
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0)
    crash_digest_layer(st, l.id, l.data, l.size, l.name, l.metadata);
  uint64_t d = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  char meta[32];
  int v = -1;
  for (int k = 0; k < VARIANTS && v < 0; k++)
    if (d == digests[k])
      v = k;
  if (v >= 0)
    snprintf(meta, sizeof meta, "{\"variant\":%d}", v);
  if (rc < 0 || v < 0 || strcmp(info.metadata, meta) != 0)
    fail("%s: content (digest %016" PRIx64 ", metadata %s) is no variant's",
         path, d, info.metadata);
  strata_region_close(r);
  return v;
}

/* Points the argv's manifest at variant v's. */
static void set_manifest(char *manifest, const char *in, int v) {
  char m[32];
  snprintf(m, sizeof m, "m%d.json", v);
  join(manifest, MANIFEST_PATH_MAX, in, m);
}

/* Builds variant v without killing it and checks the result; returns the
 * time region-builder took. */
static uint64_t build(char *const *argv, char *manifest, const char *in,
                      const char *target, int v, const uint64_t *digests) {
  set_manifest(manifest, in, v);
  uint64_t t0 = now_ns();
  int status = wait_for(spawn(argv, -1, NULL));
  uint64_t ns = now_ns() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("building variant %d failed", v);
  if (region_variant(target, digests) != v)
    fail("building variant %d built another variant", v);
  return ns;
}

typedef struct builder_stats {
  unsigned kills, absent, old_kept, new_placed, finished, replacing;
  unsigned temps, shim_runs;
} builder_stats;

static int run_builder(const char *builder, const char *shim, unsigned kills) {
  char in[4096], out[4096], target[4200], manifest[MANIFEST_PATH_MAX];
  join(in, sizeof in, work_dir, "in");
  join(out, sizeof out, work_dir, "out");
  join(target, sizeof target, out, "built.region");
  join(child_stderr, sizeof child_stderr, work_dir, "builder.stderr");
  make_dir(in);
  make_dir(out);
  uint64_t digests[VARIANTS];
  make_inputs(in, digests);
  const char *files[] = {"built.region"};
  builder_stats stats = {0};
  char *argv[] = {(char *)builder, "-q", "-o", target, manifest, NULL};

  /* Calibration: every variant built once, not killed. */
  uint64_t build_ns = 0;
  for (int v = 0; v < VARIANTS; v++)
    build_ns += build(argv, manifest, in, target, v, digests) / VARIANTS;
  if (build_ns < 1000)
    build_ns = 1000;
  int prev = VARIANTS - 1;
  printf("builder: build %.2f ms (4.5 MiB, mean of %d); kill delays in "
         "[0, %.2f ms) after the start\n",
         (double)build_ns / 1e6, VARIANTS, 1.25 * (double)build_ns / 1e6);

  uint64_t t = now_ns();
  for (kill_no = 1; kill_no <= kills; kill_no++) {
    bool use_shim = shim != NULL && kill_no % 2 == 0;
    /* Two builds in three replace a region. */
    bool replace = rnd() % 3 != 0;
    if (replace && prev < 0) {
      prev = (int)(rnd() % VARIANTS);
      build(argv, manifest, in, target, prev, digests);
    } else if (!replace && prev >= 0) {
      if (unlink(target) != 0)
        fail("unlink %s: %s", target, strerror(errno));
      prev = -1;
    }
    int next = prev < 0 ? (int)(rnd() % VARIANTS)
                        : (prev + 1 + (int)(rnd() % (VARIANTS - 1))) % VARIANTS;
    set_manifest(manifest, in, next);
    uint64_t delay = rnd() % (build_ns * 5 / 4);
    pid_t pid = spawn(argv, -1, use_shim ? shim : NULL);
    sleep_ns(delay);
    kill(pid, SIGKILL); /* harmless if it already ended: not yet reaped */
    int status = wait_for(pid);
    bool finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!finished && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      char how[64];
      describe_status(status, how, sizeof how);
      fail("region-builder ended with %s", how);
    }
    unsigned temps = scan_dir(out, files, 1, true, "after the kill");
    int now = -1;
    if (exists(target)) {
      now = region_variant(target, digests);
      if (now != next && (now != prev || finished))
        fail("%s holds variant %d; before: %d, being built: %d%s", target, now,
             prev, next, finished ? " (the build finished)" : "");
    } else if (prev >= 0 || finished) {
      fail("%s is missing; before: variant %d, being built: %d%s", target, prev,
           next, finished ? " (the build finished)" : "");
    }
    log_capture lc;
    strata_store *s = open_store(out, temps, &lc);
    scan_dir(out, files, 1, false, "after strata_store_open");
    strata_txn txn;
    if (strata_read_begin(s, &txn) < 0)
      fail("strata_read_begin");
    uint64_t served = strata_store_region_count(&txn);
    strata_store_region sr;
    if (served != (now >= 0) ||
        (served &&
         (strata_store_region_at(&txn, 0, &sr) != 0 || sr.id != BUILT_ID ||
          strata_region_verify(sr.file, NULL) != 0)))
      fail("the store serves %" PRIu64 " region(s) from %s", served, out);
    strata_read_end(&txn);
    strata_store_close(s);

    stats.kills++;
    stats.shim_runs += use_shim;
    stats.temps += temps;
    stats.replacing += prev >= 0;
    if (finished)
      stats.finished++;
    else if (now < 0)
      stats.absent++;
    else if (now == next)
      stats.new_placed++;
    else
      stats.old_kept++;
    if (verbose)
      printf("kill %u: %s, %.3f ms, variant %d -> %d: %s%s\n", kill_no,
             use_shim ? "named temp" : "O_TMPFILE", (double)delay / 1e6, prev,
             next,
             finished      ? "finished"
             : now < 0     ? "absent"
             : now == next ? "new in place"
                           : "old kept",
             temps ? ", temp file removed" : "");
    prev = now;
  }
  kill_no = 0;
  printf("builder: %u kills in %.1f s (%u with a named temporary file, %u "
         "over an existing region): %u left no region, %u the old one, %u "
         "the new one, %u had finished; %u temporary files removed by the "
         "next open\n",
         stats.kills, (double)(now_ns() - t) / 1e9, stats.shim_runs,
         stats.replacing, stats.absent, stats.old_kept, stats.new_placed,
         stats.finished, stats.temps);
  return 0;
}

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: crash_driver store --writer PATH --work DIR [--shim SO]\n"
          "                    [--preload SO] [--deltas | --background]\n"
          "       crash_driver builder --builder PATH --work DIR [--shim SO]\n"
          "                    [--preload SO]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2)
    usage();
  const char *mode = argv[1], *prog = NULL, *shim = NULL;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--deltas") == 0 && strcmp(mode, "store") == 0) {
      deltas = true;
      continue;
    }
    if (strcmp(argv[i], "--background") == 0 && strcmp(mode, "store") == 0) {
      deltas = background = true;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    if (strcmp(argv[i], "--writer") == 0 || strcmp(argv[i], "--builder") == 0)
      prog = argv[++i];
    else if (strcmp(argv[i], "--work") == 0)
      work_dir = argv[++i];
    else if (strcmp(argv[i], "--shim") == 0)
      shim = argv[++i];
    else if (strcmp(argv[i], "--preload") == 0)
      preload = argv[++i];
    else
      usage();
  }
  if (prog == NULL || work_dir == NULL)
    usage();
  /* The dynamic loader only warns about a preload it cannot find. */
  if ((shim != NULL && access(shim, R_OK) != 0) ||
      (preload != NULL && access(preload, R_OK) != 0)) {
    fprintf(stderr, "crash_driver: cannot read %s\n",
            shim != NULL && access(shim, R_OK) != 0 ? shim : preload);
    return 2;
  }
  const char *e = getenv("STRATA_CRASH_KILLS");
  unsigned kills = e && *e ? (unsigned)strtoul(e, NULL, 10) : 50;
  e = getenv("STRATA_CRASH_SEED");
  seed = e && *e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ now_ns();
  e = getenv("STRATA_CRASH_VERBOSE");
  verbose = e && strcmp(e, "1") == 0;
  rng = seed;
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("crash_driver %s: %u kills, STRATA_CRASH_SEED=%" PRIu64 "\n", mode,
         kills, seed);
  rm_rf(work_dir);
  make_dir(work_dir);
  if (strcmp(mode, "store") == 0)
    return run_store(prog, shim, kills);
  if (strcmp(mode, "builder") == 0)
    return run_builder(prog, shim, kills);
  usage();
}
