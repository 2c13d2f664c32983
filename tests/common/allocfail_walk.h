/* The walk over allocation failures that the *_allocfail tests share
 * (allocfail.h injects the failures): the walk itself, the checks every
 * case makes, the collection of broken promises, and the case that walks
 * the state dump and the metrics of a store.
 *
 * walk() repeats one operation, each time on a fresh fixture, and fails
 * its k-th allocation, for k = 1, 2, ... until the operation no longer
 * makes a k-th allocation (it then ran unharmed: every allocation site was
 * walked). Each k runs twice: only allocation k fails (transient), and
 * every allocation from k on fails (persistent: the error paths must not
 * need memory either). The allocations must come in the same order every
 * time, up to the one that fails.
 *
 * Broken promises that leave the store consistent (a wrong error code, a
 * leak, an incomplete dump) are collected with problem(), and
 * expect_no_problems() fails the test at the end of its walks with the
 * count and the first case of each kind, so that one run shows them all.
 *
 * STRATA_ALLOCFAIL_VERBOSE=1 prints every case, every broken promise and
 * every allocation site, with whole call stacks. */
#ifndef STRATA_TEST_ALLOCFAIL_WALK_H
#define STRATA_TEST_ALLOCFAIL_WALK_H

#include <errno.h>
#include <stdarg.h>
#include <time.h>

#include <jansson.h>

#include "allocfail.h"
#include "test_util.h"

/* No operation here makes nearly this many allocations. */
#define K_MAX 4000

static inline bool verbose(void) {
  const char *v = getenv("STRATA_ALLOCFAIL_VERBOSE");
  return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static inline const char *mode_name(af_mode mode) {
  return mode == AF_PERSISTENT ? "persistent" : "transient";
}

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the checks every case makes ----------------------------------------- */

/* The Strata function that made the current case's failing allocation
 * (describe_case() sets it). */
static char cur_site[64];

/* What case k failed, for messages: "allocation 12 (transient):
 * malloc(48) <- ...". */
static inline void describe_case(unsigned long k, af_mode mode, char *buf,
                                 size_t len) {
  const af_call *c = af_call_at(k - 1);
  char d[1024] = "(not made)";
  if (c != NULL)
    af_describe(c, d, sizeof d);
  snprintf(buf, len, "allocation %lu (%s): %s", k, mode_name(mode), d);
  /* The first frame in Strata: not in a shared library, not jansson's. */
  snprintf(cur_site, sizeof cur_site, "?");
  for (const char *f = strstr(d, " <- "); f != NULL; f = strstr(f, " <- ")) {
    f += 4;
    size_t n = strcspn(f, "+ ");
    if (strncmp(f, "json", 4) != 0 && memmem(f, n, ".so", 3) == NULL) {
      snprintf(cur_site, sizeof cur_site, "%.*s", (int)n, f);
      break;
    }
  }
}

/* Broken promises that leave the store consistent (a wrong error code, a
 * leak, an incomplete dump, a file left in place) are collected rather
 * than failed at once, so that one run reports every case: grouped by the
 * promise and the Strata function that made the failing allocation, each
 * group with its count and first case. */
#define GROUPS_MAX 64

typedef struct problem_group {
  char kind[48], site[64];
  unsigned count;
  char first[4096];
} problem_group;

static problem_group groups[GROUPS_MAX];
static unsigned ngroups, problems;

static inline void problem(const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void problem(const char *kind, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (verbose())
    print_message("  PROBLEM: %s\n", msg);
  problems++;
  problem_group *g = NULL;
  for (unsigned i = 0; i < ngroups && g == NULL; i++)
    if (strcmp(groups[i].kind, kind) == 0 &&
        strcmp(groups[i].site, cur_site) == 0)
      g = &groups[i];
  if (g == NULL && ngroups < GROUPS_MAX) {
    g = &groups[ngroups++];
    snprintf(g->kind, sizeof g->kind, "%s", kind);
    snprintf(g->site, sizeof g->site, "%s", cur_site);
    snprintf(g->first, sizeof g->first, "%s", msg);
    g->count = 0;
  }
  if (g != NULL)
    g->count++;
}

/* Fails the test if the walks collected problems, listing them. */
static inline void expect_no_problems(void) {
  if (problems == 0)
    return;
  print_message("BROKEN PROMISES: %u case(s), %u kind(s):\n", problems,
                ngroups);
  for (unsigned i = 0; i < ngroups; i++)
    print_message("- %s, in %s: %u case(s); the first:\n    %s\n",
                  groups[i].kind, groups[i].site, groups[i].count,
                  groups[i].first);
  unsigned n = problems, k = ngroups;
  problems = ngroups = 0;
  fail_msg("%u case(s) broke a promise, in %u way(s) (listed above)", n, k);
}

/* A broken promise known to be a bug of the library outside what the test's
 * owner may change: its kind, its site as problem() groups it (NULL: any
 * site), and why (where the fix belongs). */
typedef struct known_problem {
  const char *kind, *site, *why;
} known_problem;

static inline bool known_match(const known_problem *k, const problem_group *g) {
  return strcmp(g->kind, k->kind) == 0 &&
         (k->site == NULL || strcmp(g->site, k->site) == 0);
}

/* expect_no_problems(), except that the groups of the n `known` problems
 * are listed as known and do not fail the test. Each known problem must
 * still have happened: once it is fixed, its entry must go. */
static inline void expect_known_problems(const known_problem *known, size_t n) {
  for (size_t j = 0; j < n; j++) {
    bool seen = false;
    for (unsigned i = 0; i < ngroups;) {
      if (!known_match(&known[j], &groups[i])) {
        i++;
        continue;
      }
      print_message("KNOWN PROBLEM (%s): %s, in %s: %u case(s); the "
                    "first:\n    %s\n",
                    known[j].why, groups[i].kind, groups[i].site,
                    groups[i].count, groups[i].first);
      seen = true;
      problems -= groups[i].count;
      groups[i] = groups[--ngroups];
    }
    if (!seen)
      fail_msg("the known problem \"%s\" in %s did not happen: it is fixed, "
               "remove its entry",
               known[j].kind, known[j].site ? known[j].site : "any site");
  }
  expect_no_problems();
}

/* The error an allocation failure must give: counts the case as failed
 * cleanly, or records the problem. */
static inline void expect_nomem(const char *op, int rc, const char *what,
                                unsigned *failed) {
  if (rc == STRATA_E_NOMEM || rc == -ENOMEM)
    (*failed)++;
  else
    problem("wrong error code",
            "%s, %s: returned %s (\"%s\"), not STRATA_E_NOMEM", op, what,
            strata_err_name(rc), strata_last_error_detail());
}

/* Every allocation counted while armed has been freed, and so has every
 * pool block tracked since af_track_pool(), each with its size; allocations
 * made inside pthread_create() aside. */
static inline void expect_no_leak(const char *op, const char *what) {
  size_t live = af_live(), exempt = af_live_under("pthread_create");
  if (live > exempt) {
    static char report[16384];
    problem("leak", "%s, %s: %zu allocation(s) never freed:\n%s", op, what,
            live - exempt, af_live_report(report, sizeof report));
  }
  if (af_size_mismatches() != 0)
    problem("pool size", "%s, %s: %zu pool block(s) freed with the wrong size",
            op, what, af_size_mismatches());
}

typedef struct counts {
  const char *op;
  unsigned sites, cases;
  unsigned failed;   /* returned STRATA_E_NOMEM / -ENOMEM */
  unsigned absorbed; /* succeeded, complete */
  unsigned degraded; /* succeeded as documented (walk_degraded says how) */
  double ms;
} counts;

/* What a degraded success is in the walks of this test, for the summary
 * line: the store's open skips a file. */
static const char *walk_degraded = "skipped a file";

static inline void print_counts(const counts *c) {
  print_message("  %-34s %3u sites, %4u cases: %4u failed cleanly, %3u "
                "absorbed, %3u %s; %6.0f ms\n",
                c->op, c->sites, c->cases, c->failed, c->absorbed, c->degraded,
                walk_degraded, c->ms);
}

static inline void print_sites(const char *op) {
  if (!verbose())
    return;
  print_message("%s: %zu allocations\n", op, af_count());
  for (size_t i = 0; i < af_count(); i++) {
    char d[1024];
    af_describe(af_call_at(i), d, sizeof d);
    print_message("  %3zu %s\n", i + 1, d);
  }
}

typedef bool (*case_fn)(const void *arg, unsigned long k, af_mode mode,
                        counts *c);

/* Whole stacks for every allocation, not only the failing one. */
static bool all_stacks;

/* The common end of an armed call: names the case, and counts a failure
 * (a success the caller counts, as absorbed or degraded). Returns whether
 * the failing allocation was made. */
static inline bool case_end(counts *c, unsigned long k, af_mode mode, int rc,
                            char *what, size_t len) {
  bool hit = af_hit();
  describe_case(k, mode, what, len);
  if (!hit) {
    if (rc != 0)
      fail_msg("%s: failed with no allocation failing: %s (%s)", c->op,
               strata_err_name(rc), strata_last_error_detail());
    print_sites(c->op);
  }
  if (verbose() && hit)
    print_message("  %s -> %s\n", what, rc ? strata_err_name(rc) : "ok");
  if (rc != 0)
    expect_nomem(c->op, rc, what, &c->failed);
  return hit;
}

/* Runs one(k, mode) for k = 1, 2, ... in both modes until allocation k is
 * not made: the run that made none fail is the last. */
static inline void walk(const char *op, case_fn one, const void *arg) {
  counts c = {.op = op};
  af_full_stacks(verbose() || all_stacks);
  double t0 = now_ms();
  unsigned long k = 1;
  for (; k <= K_MAX; k++) {
    bool hit = one(arg, k, AF_TRANSIENT, &c);
    c.cases++;
    if (!hit)
      break;
    if (!one(arg, k, AF_PERSISTENT, &c))
      fail_msg("%s: allocation %lu was made with only %lu failing, not with "
               "every one from it failing",
               op, k, k);
    c.cases++;
  }
  if (k > K_MAX)
    fail_msg("%s: more than %d allocations?", op, K_MAX);
  c.sites = (unsigned)(k - 1);
  c.ms = now_ms() - t0;
  print_counts(&c);
}

/* ---- the state dump and the metrics -------------------------------------- */

/* Does `got` have everything `want` has: the same keys (the error counts
 * aside: they count this test's failures), arrays of the same length, the
 * same types? Writes the first difference into `where`. */
static inline bool same_shape(const json_t *want, const json_t *got,
                              char *where, size_t len, const char *path) {
  if (json_typeof(want) != json_typeof(got) &&
      !(json_is_number(want) && json_is_number(got))) {
    snprintf(where, len, "%s: type differs", path);
    return false;
  }
  char sub[512];
  if (json_is_object(want)) {
    const char *key;
    json_t *v;
    if (json_object_size(want) != json_object_size(got)) {
      snprintf(where, len, "%s: %zu keys, not %zu", path, json_object_size(got),
               json_object_size(want));
      return false;
    }
    json_object_foreach((json_t *)want, key, v) {
      snprintf(sub, sizeof sub, "%s.%s", path, key);
      json_t *g = json_object_get(got, key);
      if (g == NULL) {
        snprintf(where, len, "%.400s: missing", sub);
        return false;
      }
      if (strcmp(sub, ".statistics.errors") != 0 &&
          !same_shape(v, g, where, len, sub))
        return false;
    }
  } else if (json_is_array(want)) {
    if (json_array_size(want) != json_array_size(got)) {
      snprintf(where, len, "%s: %zu elements, not %zu", path,
               json_array_size(got), json_array_size(want));
      return false;
    }
    for (size_t i = 0; i < json_array_size(want); i++) {
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      if (!same_shape(json_array_get(want, i), json_array_get(got, i), where,
                      len, sub))
        return false;
    }
  }
  return true;
}

typedef struct dump_spec {
  strata_store *s;
  bool metrics;    /* strata_metrics_text() instead */
  unsigned flags;  /* of strata_dump_state() */
  json_t *want;    /* a dump made without failures */
  char *want_text; /* the metrics made without failures */
} dump_spec;

static inline int do_dump(const dump_spec *d, char **out) {
  return d->metrics ? strata_metrics_text(d->s, out)
                    : strata_dump_state(d->s, d->flags, out);
}

/* The series of a metrics text, in order: every sample line without its
 * value ("strata_region_layers{region_id=\"1\",region=\"alpha\"}"), the
 * error counts aside (they count this test's failures). */
static inline void metric_series(const char *text, char *out, size_t len) {
  size_t o = 0;
  out[0] = '\0';
  for (const char *p = text; *p != '\0' && o < len;) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    const char *sp = memrchr(p, ' ', n);
    if (p[0] != '#' && strncmp(p, "strata_errors_total", 19) != 0 && sp != NULL)
      o += (size_t)snprintf(out + o, len - o, "%.*s\n", (int)(sp - p), p);
    p += n + (e != NULL);
  }
}

static inline bool dump_case(const void *arg, unsigned long k, af_mode mode,
                             counts *c) {
  const dump_spec *d = arg;
  char what[1200];
  char *out = NULL;
  af_arm(k, mode);
  int rc = do_dump(d, &out);
  af_disarm();
  bool hit = case_end(c, k, mode, rc, what, sizeof what);
  if (rc != 0) {
    if (out != NULL)
      fail_msg("%s, %s: failed but set its output", c->op, what);
  } else if (d->metrics) {
    static char want[32768], got[32768];
    metric_series(d->want_text, want, sizeof want);
    metric_series(out, got, sizeof got);
    if (strcmp(want, got) != 0)
      problem("incomplete output", "%s, %s: succeeded with an incomplete text",
              c->op, what);
    c->absorbed += hit;
  } else {
    json_error_t err;
    json_t *doc = json_loads(out, 0, &err);
    char where[512];
    if (doc == NULL)
      problem("output not JSON",
              "%s, %s: succeeded with a document that is not JSON: %s at "
              "%d:%d",
              c->op, what, err.text, err.line, err.column);
    else if (!same_shape(d->want, doc, where, sizeof where, ""))
      problem("incomplete output",
              "%s, %s: succeeded with an incomplete document: %s", c->op, what,
              where);
    json_decref(doc);
    c->absorbed += hit;
  }
  strata_free(out);
  expect_no_leak(c->op, what);
  af_stop();
  return hit;
}

#endif /* STRATA_TEST_ALLOCFAIL_WALK_H */
