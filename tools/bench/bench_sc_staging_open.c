/* Scenario "staging-open": strata_store_open() of an empty store with a
 * 1 GiB pool (slabs allocated, touched, pinned), next to the same open
 * without a pool and a bare mmap + first touch. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_staging.h"

/* staging-open: the pool's size. */
#define OPEN_BYTES GiB
#define OPEN_MIN_BYTES (64 * MiB)

typedef struct sopen_result {
  uint64_t bytes;
  int reps;
  double load1;
  char backend[16], method[32];
  int numa_node;
  uint64_t slabs, slab_bytes, pinned_bytes;
  bench_stat open_ms, close_ms, base_open_ms, slab_ms, touch_ms;
} sopen_result;

/* Finds `"key"` after `from` in JSON text and returns where its value
 * starts (past the colon and blanks), or NULL. */
static const char *json_value(const char *from, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(from, pat);
  if (p == NULL)
    return NULL;
  p += strlen(pat);
  p += strspn(p, " \t\n");
  if (*p != ':')
    return NULL;
  p++;
  return p + strspn(p, " \t\n");
}

/* The slabs of the state dump's "staging" object: the first one's method,
 * and the sum of their alloc_ms. */
static double slabs_from_dump(strata_store *s, char *method, size_t len) {
  char *dump;
  bench_check(strata_dump_state(s, 0, &dump), "strata_dump_state");
  const char *at = json_value(dump, "staging");
  at = at ? json_value(at, "slabs") : NULL;
  if (at == NULL || *at != '[')
    bench_fail("staging-open: no staging.slabs in the state dump");
  const char *end = strchr(at, ']');
  double ms = 0;
  method[0] = '\0';
  for (const char *p = at; (p = json_value(p, "method")) != NULL && p < end;) {
    if (method[0] == '\0' && *p == '"') {
      size_t k = strcspn(p + 1, "\"");
      snprintf(method, len, "%.*s", (int)(k < len ? k : len - 1), p + 1);
    }
    const char *v = json_value(p, "alloc_ms");
    if (v == NULL || v > end)
      break;
    ms += strtod(v, NULL);
    p = v;
  }
  strata_free(dump);
  if (method[0] == '\0')
    bench_fail("staging-open: no slab method in the state dump");
  return ms;
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  sopen_result *r = result;
  *r = (sopen_result){
      .bytes = bench_staging_scaled(OPEN_BYTES, p->scale, OPEN_MIN_BYTES),
      .reps = bench_staging_reps(p),
      .load1 = bench_load1()};
  r->bytes = (r->bytes + MiB - 1) / MiB * MiB;
  char *dir = bench_mkdir(p->dir, "staging-open");
  bench_say("staging-open: %d opens with a %" PRIu64 " MiB pool", r->reps,
            r->bytes >> 20);
  double v[5][BENCH_MAX_REPS];
  for (int k = 0; k < r->reps; k++) {
    /* Default flags: CUDA where there is a GPU, host mode otherwise. */
    strata_store_config c;
    strata_store_config_init(&c);
    c.log_level = STRATA_LOG_ERROR;
    c.staging.bytes = r->bytes;
    uint64_t t0 = bench_now_ns();
    strata_store *s = bench_open_store(dir, &c);
    uint64_t t1 = bench_now_ns();
    strata_staging_stats st = bench_staging_stats(s);
    if (st.slab_bytes < r->bytes)
      bench_fail("staging-open: %" PRIu64 " bytes of slabs, %" PRIu64 " asked",
                 st.slab_bytes, r->bytes);
    snprintf(r->backend, sizeof r->backend, "%s", st.backend);
    r->numa_node = st.numa_node;
    r->slabs = st.slabs;
    r->slab_bytes = st.slab_bytes;
    r->pinned_bytes = st.pinned_bytes;
    v[3][k] = slabs_from_dump(s, r->method, sizeof r->method);
    uint64_t t2 = bench_now_ns();
    strata_store_close(s);
    uint64_t t3 = bench_now_ns();
    /* The same store without a pool. */
    strata_store_config_init(&c);
    c.log_level = STRATA_LOG_ERROR;
    uint64_t t4 = bench_now_ns();
    s = bench_open_store(dir, &c);
    uint64_t t5 = bench_now_ns();
    strata_store_close(s);
    /* A bare anonymous mapping, faulted in by one thread. */
    uint64_t t6 = bench_now_ns();
    void *m = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
      bench_fail("staging-open: mmap: %s", strerror(errno));
    bench_prefault_write(m, r->bytes);
    uint64_t t7 = bench_now_ns();
    munmap(m, r->bytes);
    v[0][k] = (double)(t1 - t0) / 1e6;
    v[1][k] = (double)(t3 - t2) / 1e6;
    v[2][k] = (double)(t5 - t4) / 1e6;
    v[4][k] = (double)(t7 - t6) / 1e6;
  }
  r->open_ms = bench_summarize(v[0], r->reps);
  r->close_ms = bench_summarize(v[1], r->reps);
  r->base_open_ms = bench_summarize(v[2], r->reps);
  r->slab_ms = bench_summarize(v[3], r->reps);
  r->touch_ms = bench_summarize(v[4], r->reps);
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const sopen_result *r = result;
  double gib = (double)r->bytes / (double)GiB;
  fprintf(f,
          "staging-open: strata_store_open() of an empty store with a %" PRIu64
          " MiB staging pool: backend %s, %" PRIu64 " slab(s), method %s, "
          "%" PRIu64 " MiB pinned, NUMA node %d; %d opens; load average "
          "%.2f\n",
          r->bytes >> 20, r->backend, r->slabs, r->method,
          r->pinned_bytes >> 20, r->numa_node, r->reps, r->load1);
  fprintf(f, "  %-48s %9s %9s %9s %9s\n", "ms", "median", "min", "max",
          "per GiB");
  const struct {
    const char *what;
    bench_stat s;
    bool per_gib;
  } rows[] = {
      {"strata_store_open with the pool", r->open_ms, true},
      {"  of which slabs (alloc + touch + pin, dump)", r->slab_ms, true},
      {"strata_store_close with the pool", r->close_ms, true},
      {"strata_store_open without a pool", r->base_open_ms, false},
      {"mmap + first touch by one thread (peer)", r->touch_ms, true},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    fprintf(f, "  %-48s %9.1f %9.1f %9.1f", rows[i].what, rows[i].s.median,
            rows[i].s.min, rows[i].s.max);
    if (rows[i].per_gib)
      fprintf(f, " %9.1f", rows[i].s.median / gib);
    fputc('\n', f);
  }
  fprintf(f, "  open with pool / mmap+touch %.2f\n\n",
          r->open_ms.median / r->touch_ms.median);
}

static void json(FILE *f, const void *result) {
  const sopen_result *r = result;
  fprintf(f,
          "    \"staging-open\": {\"bytes\": %" PRIu64
          ", \"reps\": %d, \"load1\": %.2f, \"backend\": \"%s\", "
          "\"method\": \"%s\", \"numa_node\": %d, \"slabs\": %" PRIu64
          ", \"slab_bytes\": %" PRIu64 ", \"pinned_bytes\": %" PRIu64 ", ",
          r->bytes, r->reps, r->load1, r->backend, r->method, r->numa_node,
          r->slabs, r->slab_bytes, r->pinned_bytes);
  bench_json_stat(f, "open_ms", r->open_ms);
  fputs(", ", f);
  bench_json_stat(f, "slab_ms", r->slab_ms);
  fputs(", ", f);
  bench_json_stat(f, "close_ms", r->close_ms);
  fputs(", ", f);
  bench_json_stat(f, "open_without_pool_ms", r->base_open_ms);
  fputs(", ", f);
  bench_json_stat(f, "mmap_touch_ms", r->touch_ms);
  fputs("}", f);
}

const bench_scenario bench_sc_staging_open = {
    "staging-open", sizeof(sopen_result), run, print, json};
