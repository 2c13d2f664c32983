/* The writer that crash_driver kills: it moves the regions of crash_model.h
 * from one generation to the next, one region per cycle, forever (or for
 * CYCLES cycles), and reports on stdout, one line per step, what it is
 * about to do and what has become durable:
 *
 *   READY g1 g2 g3      the store is open; each region's generation on disk
 *                       (0: no such region), in crash_regions order
 *   P id g              about to put generation g's changes in a proto
 *   C id g              about to call strata_crystallize()
 *   A id g digest       strata_crystallize() returned 0: generation g is
 *                       in place, with the model's content, whose digest
 *                       (hex) this is
 *
 * After an "A" line (so while the driver already counts the generation as
 * acknowledged) the writer checks that the file the store now serves has
 * that digest.
 * Each line is written with one write(2) to the pipe before the next step
 * starts, so whatever the driver reads after the kill was said before it.
 * An "A" line is the acknowledgement: that generation (or a later one) must
 * survive the kill exactly.
 *
 *   crash_writer [--deltas | --background] DIR SEED [CYCLES]
 *
 * Without --deltas the store is opened with STRATA_STORE_NO_DELTAS, so that
 * each crystallization writes a whole NAME.region; with it, a
 * crystallization writes a delta file NAME.k.delta over the region's stack
 * or compacts the stack into a new base, as crystallize.c chooses; with
 * --background the store's compactor thread merges or rewrites the stacks
 * (STRATA_STORE_BACKGROUND_COMPACT) while the cycles go on.
 *
 * Exit status: 0 after CYCLES cycles, 1 on usage errors, 3 when a library
 * call fails or the served file differs from the model (with a message on
 * stderr). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash_model.h"

static void die(const char *what, int rc) {
  fprintf(stderr, "crash_writer: %s: %s: %s\n", what, strata_err_name(rc),
          strata_last_error_detail());
  exit(3);
}

/* One write(2) per line: a line is never split, and never buffered past
 * the step it announces. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n <= 0 || (size_t)n >= sizeof line)
    exit(3);
  for (const char *p = line; n > 0;) {
    ssize_t k = write(STDOUT_FILENO, p, (size_t)n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      exit(3); /* the driver went away */
    p += k;
    n -= (int)k;
  }
}

/* The generation of region r as the store serves it (0: no such region). */
static uint64_t served_generation(strata_store *store,
                                  const crash_region_spec *r) {
  strata_txn txn;
  int rc = strata_read_begin(store, &txn);
  if (rc < 0)
    die("strata_read_begin", rc);
  strata_layer l;
  uint64_t g = 0;
  rc = strata_get(&txn, r->id, 0, &l);
  if (rc == 0 && l.size == 8)
    memcpy(&g, l.data, 8);
  else if (rc == 0 || rc != STRATA_E_NO_REGION) {
    fprintf(stderr, "crash_writer: region %s: bad generation layer (%s)\n",
            r->name, strata_err_name(rc));
    exit(3);
  }
  strata_read_end(&txn);
  return g;
}

/* Puts (or removes) the layers generation g changes, and notes the
 * checksums of the contents it generated in `cache`. */
static void apply(strata_store *store, const crash_region_spec *r, uint64_t g,
                  uint8_t *buf, crash_sum_cache *cache) {
  strata_proto *p;
  int rc = g == 1 ? strata_proto_create(store, r->id, r->name, strlen(r->name),
                                        CRASH_REGION_METADATA, &p)
                  : strata_proto_open(store, r->id, &p);
  if (rc < 0)
    die(g == 1 ? "strata_proto_create" : "strata_proto_open", rc);
  for (uint32_t i = 0; i <= r->layers; i++) {
    if (!crash_changes(r, i, g))
      continue;
    crash_layer l;
    crash_model_layer(r, i, g, &l);
    if (l.present) {
      crash_model_content(&l, i, g, buf);
      if (i > 0) {
        cache->version[i] = l.version;
        cache->sum[i] = XXH3_64bits(buf, (size_t)l.size);
      }
      rc = strata_proto_put(p, i, l.name[0] ? l.name : NULL, strlen(l.name),
                            l.meta[0] ? l.meta : NULL, buf, (size_t)l.size);
      if (rc < 0)
        die("strata_proto_put", rc);
    } else if ((rc = strata_proto_remove(p, i)) < 0 &&
               rc != STRATA_E_NOT_FOUND) { /* removed before: still gone */
      die("strata_proto_remove", rc);
    }
  }
}

/* Checks that the files the store serves for r after crystallizing
 * generation g (its base and, with deltas, the delta files over it, read
 * as a stack by crash_files_digest) hold exactly the model's content, whose
 * digest is `want`; without deltas, that no delta is served. (A snapshot
 * would also see a proto's changes; the files alone must hold them.) */
static void check_served(strata_store *store, const crash_region_spec *r,
                         uint64_t g, uint64_t want, bool deltas) {
  strata_txn txn;
  int rc = strata_read_begin(store, &txn);
  if (rc < 0)
    die("strata_read_begin", rc);
  uint64_t n = strata_store_region_count(&txn), gen = 0, digest = 0, k = 0;
  strata_store_region sr = {0};
  for (; k < n; k++)
    if (strata_store_region_at(&txn, k, &sr) == 0 && sr.id == r->id)
      break;
  char why[512] = "";
  /* STRATA__MAX_DEPTH_BACKGROUND (crystallize_internal.h): the deepest a
   * stack gets; one more is looked for, and makes the check fail. */
  const strata_region *stack[17];
  uint32_t depth = 0;
  while (depth < 17 &&
         strata_store_region_delta_at(&txn, k, depth, &stack[depth]) == 0)
    depth++;
  if (sr.id != r->id || sr.file == NULL)
    snprintf(why, sizeof why, "not served as a file");
  else if (!deltas && depth > 0)
    snprintf(why, sizeof why,
             "a delta file is served (STRATA_STORE_NO_DELTAS)");
  else
    crash_files_digest(sr.file, stack, depth, r->layers, &gen, &digest, why,
                       sizeof why);
  strata_read_end(&txn);
  if (why[0] == '\0' && (gen != g || digest != want))
    snprintf(why, sizeof why,
             "serves generation %" PRIu64 " digest %016" PRIx64
             ", expected generation %" PRIu64 " digest %016" PRIx64,
             gen, digest, g, want);
  if (why[0] != '\0') {
    fprintf(stderr,
            "crash_writer: region %s after crystallizing %" PRIu64 ": %s\n",
            r->name, g, why);
    exit(3);
  }
}

int main(int argc, char **argv) {
  bool background = argc > 1 && strcmp(argv[1], "--background") == 0;
  bool deltas = background || (argc > 1 && strcmp(argv[1], "--deltas") == 0);
  argc -= deltas;
  argv += deltas;
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: crash_writer [--deltas | --background] DIR SEED "
                    "[CYCLES]\n");
    return 1;
  }
  const char *dir = argv[1];
  uint64_t rng = strtoull(argv[2], NULL, 0);
  long cycles = argc > 3 ? strtol(argv[3], NULL, 0) : 0;
  uint8_t *buf = malloc(CRASH_MAX_LAYER_SIZE);
  crash_sum_cache *cache = calloc(CRASH_NREGIONS, sizeof *cache);
  if (buf == NULL || cache == NULL)
    return 3;

  strata_store_config conf;
  strata_store_config_init(&conf);
  conf.flags = background ? STRATA_STORE_BACKGROUND_COMPACT
               : deltas   ? 0
                          : STRATA_STORE_NO_DELTAS;
  strata_store *store;
  int rc = strata_store_open(dir, &conf, &store);
  if (rc < 0)
    die("strata_store_open", rc);
  uint64_t gen[CRASH_NREGIONS];
  char ready[128] = "READY";
  for (size_t k = 0; k < CRASH_NREGIONS; k++) {
    gen[k] = served_generation(store, &crash_regions[k]);
    size_t len = strlen(ready);
    snprintf(ready + len, sizeof ready - len, " %" PRIu64, gen[k]);
  }
  say("%s\n", ready);

  for (long c = 0; cycles == 0 || c < cycles; c++) {
    rng = crash_mix(rng);
    size_t k = (size_t)(rng % CRASH_NREGIONS);
    const crash_region_spec *r = &crash_regions[k];
    uint64_t g = gen[k] + 1;
    say("P %" PRIu64 " %" PRIu64 "\n", r->id, g);
    apply(store, r, g, buf, &cache[k]);
    uint64_t digest = crash_model_digest(r, g, buf, &cache[k]);
    say("C %" PRIu64 " %" PRIu64 "\n", r->id, g);
    if ((rc = strata_crystallize(store, r->id)) < 0)
      die("strata_crystallize", rc);
    say("A %" PRIu64 " %" PRIu64 " %016" PRIx64 "\n", r->id, g, digest);
    gen[k] = g;
    check_served(store, r, g, digest, deltas);
  }
  strata_store_close(store);
  free(cache);
  free(buf);
  return 0;
}
