/* strata-bench: the command line. Scenario names come from the scenario
 * table (bench_scenarios.c), so a scenario added there is selectable
 * without a change here. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: strata-bench [options]\n"
      "\n"
      "Random gets, open time and write throughput of a Strata region next\n"
      "to LMDB, tinycdb and a bare mmap'd offset array (the lower bound).\n"
      "\n"
      "  --scenario LIST   comma-separated: dense, sparse, zipf, small,\n"
      "                    open,\n"
      "                    build, build-sparse, pool, store-open, "
      "store-scale,\n"
      "                    store-read,\n"
      "                    crystallize, writer-cycle, delta-read, rcu,\n"
      "                    staging-alloc, staging-copy, staging-batch,\n"
      "                    staging-open, staging (the four), all (default:\n"
      "                    all)\n"
      "  --n N             layers for dense, sparse, zipf and open "
      "(default 1000000);\n"
      "                    the store and staging scenarios scale with\n"
      "                    N / 1000000\n"
      "  --small-n N       layers for small (default 10000)\n"
      "  --size BYTES      value size for the get scenarios but zipf (64)\n"
      "                    (default 256)\n"
      "  --gets M          timed gets per peer and repetition "
      "(default 10000000)\n"
      "  --reps R          repetitions; the median is reported "
      "(default 5)\n"
      "  --build-mib MIB   build: content written (default 1024)\n"
      "  --build-layer-kib KIB  build: layer size (default 256)\n"
      "  --sparse-build-n N  build-sparse: 64 B layers with random ids\n"
      "                    (default 4000000)\n"
      "  --build-reps R    build: repetitions (default 3)\n"
      "  --seconds S       store-read: seconds per phase; writer-cycle:\n"
      "                    seconds of each idle reader phase (default 2)\n"
      "  --cycles C        writer-cycle: cycles timed (default 20)\n"
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
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

/* The table positions a --scenario word names: one scenario, "staging"
 * (every staging-* scenario), "all", or none (0). */
static uint32_t scenario_bits(const char *word) {
  uint32_t bits = 0;
  bool all = strcmp(word, "all") == 0;
  bool staging = strcmp(word, "staging") == 0;
  for (int i = 0; i < bench_nscenarios; i++) {
    const char *name = bench_scenarios[i]->name;
    if (all || strcmp(word, name) == 0 ||
        (staging && strncmp(name, "staging-", 8) == 0))
      bits |= 1u << i;
  }
  return bits;
}

static bool parse_scenarios(const char *s, uint32_t *out) {
  *out = 0;
  char *copy = strdup(s);
  bool ok = copy != NULL;
  for (char *save = NULL, *tok = ok ? strtok_r(copy, ",", &save) : NULL;
       tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    uint32_t bits = scenario_bits(tok);
    *out |= bits;
    ok = ok && bits != 0;
  }
  free(copy);
  return ok && *out != 0;
}

bool bench_selected(const bench_options *o, const bench_scenario *sc) {
  for (int i = 0; i < bench_nscenarios; i++)
    if (bench_scenarios[i] == sc)
      return (o->scenarios >> i) & 1;
  return false;
}

int bench_parse_options(int argc, char **argv, bench_options *o) {
  *o = (bench_options){.n = 1000000,
                       .small_n = 10000,
                       .size = 256,
                       .gets = 10000000,
                       .reps = 5,
                       .scenarios = scenario_bits("all"),
                       .build_mib = 1024,
                       .build_layer_kib = 256,
                       .build_reps = 3,
                       .sparse_build_n = 4000000,
                       .seconds = 2,
                       .cycles = 20};
  enum {
    O_N = 256,
    O_SMALL_N,
    O_SIZE,
    O_GETS,
    O_REPS,
    O_SCENARIO,
    O_DIR,
    O_JSON,
    O_HELP,
    O_BMIB,
    O_BKIB,
    O_BREPS,
    O_SBN,
    O_SECONDS,
    O_CYCLES
  };
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
      {"sparse-build-n", required_argument, NULL, O_SBN},
      {"seconds", required_argument, NULL, O_SECONDS},
      {"cycles", required_argument, NULL, O_CYCLES},
      {NULL, 0, NULL, 0}};
  int c;
  uint64_t v = 0;
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
      ok = parse_range(optarg, 1, BENCH_MAX_REPS, &v);
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
      ok = parse_range(optarg, 1, BENCH_MAX_REPS, &v);
      o->build_reps = (int)v;
      break;
    case O_SBN:
      ok = parse_range(optarg, 1, 100000000, &o->sparse_build_n);
      break;
    case O_CYCLES:
      ok = parse_range(optarg, 1, 10000, &v);
      o->cycles = (int)v;
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
