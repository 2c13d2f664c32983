/* Scenario "rcu" of strata-bench: what a snapshot costs on the read side,
 * and how long a writer waits for a grace period, next to liburcu's
 * urcu-memb flavour (the flavour a library that cannot ask its callers to
 * announce quiescent states would use; it is what docs/ARCHITECTURE.md
 * compares the store's epoch-based reclamation with).
 *
 * Read side: ns per strata_read_begin() + strata_read_end() pair on an
 * empty store, one thread and two threads at once, against
 * rcu_read_lock() + rcu_read_unlock(), both as the library's out-of-line
 * functions (a call, as Strata's are) and inlined (_LGPL_SOURCE).
 * Write side: strata_store_reclaim(s, 1) against synchronize_rcu(), with
 * no reader, and while another thread runs read-side sections of about a
 * microsecond back to back.
 *
 * liburcu is optional (STRATA_BENCH_HAVE_URCU, set by CMake when
 * pkg-config finds liburcu-memb): without it, Strata's figures are printed
 * alone. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "strata.h"

#ifdef STRATA_BENCH_HAVE_URCU
/* The inline read side; see urcu/urcu-memb.h. */
#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>
/* With _LGPL_SOURCE the header maps urcu_memb_read_lock to its inline
 * version; these names reach the library's exported functions. */
extern void bench_urcu_lock_call(void) __asm__("urcu_memb_read_lock");
extern void bench_urcu_unlock_call(void) __asm__("urcu_memb_read_unlock");
#endif

#define RCU_PAIRS 10000000u /* timed pairs per thread, at scale 1 */
#define RCU_MIN_PAIRS 200000u
#define RCU_GRACE 1000u     /* grace periods timed, no reader */
#define RCU_GRACE_BUSY 200u /* grace periods timed, one busy reader */

enum kind { K_STRATA, K_URCU_CALL, K_URCU_INLINE, K_COUNT };

typedef struct rcu_result {
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
} rcu_result;

static _Noreturn void fail(const char *what, const char *detail) {
  bench_fail("rcu: %s: %s", what, detail);
}

/* One loop per kind, so that no branch on the kind is inside it. */
static uint64_t strata_loop(strata_store *s, uint64_t n) {
  uint64_t bad = 0;
  for (uint64_t i = 0; i < n; i++) {
    strata_txn txn;
    bad += strata_read_begin(s, &txn) != 0;
    strata_read_end(&txn);
  }
  return bad;
}

#ifdef STRATA_BENCH_HAVE_URCU
static void urcu_call_loop(uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    bench_urcu_lock_call();
    bench_urcu_unlock_call();
  }
}

static void urcu_inline_loop(uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    urcu_memb_read_lock();
    urcu_memb_read_unlock();
  }
}
#endif

/* ns per pair of `n` pairs of kind k on this thread. */
static double time_pairs(enum kind k, strata_store *s, uint64_t n) {
  uint64_t t0 = bench_now_ns(), bad = 0;
  switch (k) {
  case K_STRATA:
    bad = strata_loop(s, n);
    break;
#ifdef STRATA_BENCH_HAVE_URCU
  case K_URCU_CALL:
    urcu_call_loop(n);
    break;
  case K_URCU_INLINE:
    urcu_inline_loop(n);
    break;
#endif
  default:
    abort();
  }
  double ns = (double)(bench_now_ns() - t0) / (double)n;
  if (bad != 0)
    fail("strata_read_begin", strata_last_error_detail());
  return ns;
}

typedef struct pair_thread {
  enum kind k;
  strata_store *s;
  uint64_t n;
  pthread_barrier_t *start;
  double ns;
} pair_thread;

static void *pair_main(void *arg) {
  pair_thread *t = arg;
#ifdef STRATA_BENCH_HAVE_URCU
  if (t->k != K_STRATA)
    urcu_memb_register_thread();
#endif
  time_pairs(t->k, t->s, t->n / 10); /* warm-up, and the reader slot */
  pthread_barrier_wait(t->start);
  t->ns = time_pairs(t->k, t->s, t->n);
#ifdef STRATA_BENCH_HAVE_URCU
  if (t->k != K_STRATA)
    urcu_memb_unregister_thread();
#endif
  return NULL;
}

/* Two threads at once; the mean of their ns per pair. */
static double time_pairs_2t(enum kind k, strata_store *s, uint64_t n) {
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, 2);
  pair_thread t[2];
  pthread_t tid[2];
  for (int i = 0; i < 2; i++) {
    t[i] = (pair_thread){.k = k, .s = s, .n = n, .start = &start};
    int e = pthread_create(&tid[i], NULL, pair_main, &t[i]);
    if (e != 0)
      fail("pthread_create", strerror(e));
  }
  for (int i = 0; i < 2; i++)
    pthread_join(tid[i], NULL);
  pthread_barrier_destroy(&start);
  return (t[0].ns + t[1].ns) / 2;
}

/* A reader that runs read-side sections back to back until told to stop,
 * while the main thread waits for grace periods. Each section does
 * BUSY_WORK steps of arithmetic (about a microsecond), as a reader doing a
 * few lookups would, so that a grace period usually has a section to wait
 * for. */
#define BUSY_WORK 256

typedef struct busy_reader {
  enum kind k;
  strata_store *s;
  _Atomic bool stop, running;
  uint64_t sink;
} busy_reader;

static uint64_t busy_work(uint64_t x) {
  for (int i = 0; i < BUSY_WORK; i++)
    x = bench_splitmix64(&x);
  return x;
}

static void *busy_main(void *arg) {
  busy_reader *b = arg;
#ifdef STRATA_BENCH_HAVE_URCU
  if (b->k != K_STRATA)
    urcu_memb_register_thread();
#endif
  atomic_store(&b->running, true);
  uint64_t x = 1;
  while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
    if (b->k == K_STRATA) {
      strata_txn txn;
      if (strata_read_begin(b->s, &txn) != 0)
        fail("strata_read_begin", strata_last_error_detail());
      x = busy_work(x);
      strata_read_end(&txn);
    } else {
#ifdef STRATA_BENCH_HAVE_URCU
      urcu_memb_read_lock();
      x = busy_work(x);
      urcu_memb_read_unlock();
#endif
    }
  }
  b->sink = x;
#ifdef STRATA_BENCH_HAVE_URCU
  if (b->k != K_STRATA)
    urcu_memb_unregister_thread();
#endif
  return NULL;
}

/* Microseconds per grace period, `n` of them, optionally with a busy
 * reader of the same kind on another thread. */
static bench_stat time_grace(enum kind k, strata_store *s, unsigned n,
                             bool busy) {
  busy_reader b = {.k = k, .s = s};
  atomic_init(&b.stop, false);
  atomic_init(&b.running, false);
  pthread_t tid;
  if (busy) {
    int e = pthread_create(&tid, NULL, busy_main, &b);
    if (e != 0)
      fail("pthread_create", strerror(e));
    while (!atomic_load(&b.running))
      sched_yield();
  }
  double *us = bench_xmalloc(n * sizeof *us);
  for (unsigned i = 0; i < n; i++) {
    uint64_t t0 = bench_now_ns();
    if (k == K_STRATA) {
      int rc = strata_store_reclaim(s, 1);
      if (rc < 0)
        fail("strata_store_reclaim", strata_last_error_detail());
    } else {
#ifdef STRATA_BENCH_HAVE_URCU
      urcu_memb_synchronize_rcu();
#endif
    }
    us[i] = (double)(bench_now_ns() - t0) / 1e3;
  }
  if (busy) {
    atomic_store(&b.stop, true);
    pthread_join(tid, NULL);
  }
  bench_stat r = bench_summarize(us, (int)n);
  free(us);
  return r;
}

static void run(bench_ctx *ctx, void *result) {
  const bench_store_params *p = &ctx->sp;
  rcu_result *r = result;
  double pairs = RCU_PAIRS * p->scale;
  *r = (rcu_result){.pairs =
                        pairs < RCU_MIN_PAIRS ? RCU_MIN_PAIRS : (uint64_t)pairs,
                    .reps = p->reps,
                    .load1 = bench_load1()};
#ifdef STRATA_BENCH_HAVE_URCU
  r->have_urcu = 1;
  urcu_memb_register_thread();
#endif
  char *dir = bench_mkdir(p->dir, "rcu");
  strata_store *s;
  int rc = strata_store_open(dir, NULL, &s);
  if (rc < 0)
    fail("strata_store_open", strata_last_error_detail());

  int kinds = r->have_urcu ? K_COUNT : 1;
  double v[K_COUNT][2][BENCH_MAX_REPS];
  fprintf(stderr, "# rcu: %" PRIu64 " pairs x %d reps, 1 and 2 threads\n",
          r->pairs, r->reps);
  for (int k = 0; k < kinds; k++)
    time_pairs((enum kind)k, s, r->pairs / 10); /* warm-up */
  for (int rep = 0; rep < r->reps; rep++)
    for (int q = 0; q < kinds; q++) {
      int k = (q + rep) % kinds; /* rotate the order */
      v[k][0][rep] = time_pairs((enum kind)k, s, r->pairs);
      v[k][1][rep] = time_pairs_2t((enum kind)k, s, r->pairs);
    }
  double med[K_COUNT][2] = {{0}};
  for (int k = 0; k < kinds; k++)
    for (int t = 0; t < 2; t++)
      med[k][t] = bench_summarize(v[k][t], r->reps).median;
  r->strata_1t = med[K_STRATA][0];
  r->strata_2t = med[K_STRATA][1];
  r->urcu_1t = med[K_URCU_CALL][0];
  r->urcu_2t = med[K_URCU_CALL][1];
  r->urcu_inline_1t = med[K_URCU_INLINE][0];
  r->urcu_inline_2t = med[K_URCU_INLINE][1];

  fprintf(stderr, "# rcu: grace periods\n");
  r->strata_gp_us = time_grace(K_STRATA, s, RCU_GRACE, false);
  r->strata_gp_busy_us = time_grace(K_STRATA, s, RCU_GRACE_BUSY, true);
  if (r->have_urcu) {
    r->urcu_gp_us = time_grace(K_URCU_CALL, s, RCU_GRACE, false);
    r->urcu_gp_busy_us = time_grace(K_URCU_CALL, s, RCU_GRACE_BUSY, true);
  }
  strata_store_close(s);
#ifdef STRATA_BENCH_HAVE_URCU
  urcu_memb_unregister_thread();
#endif
  bench_rmtree(dir);
  free(dir);
}

static void print(FILE *f, const void *result) {
  const rcu_result *r = result;
  fprintf(f,
          "rcu: read side, ns per pair (median of %d reps of %" PRIu64
          " pairs per thread); load average %.2f\n",
          r->reps, r->pairs, r->load1);
  fprintf(f, "  %-56s %9s %9s\n", "", "1 thread", "2 threads");
  fprintf(f, "  %-56s %9.2f %9.2f\n", "strata_read_begin + strata_read_end",
          r->strata_1t, r->strata_2t);
  if (!r->have_urcu) {
    fprintf(f, "  liburcu (urcu-memb): not built in (liburcu-memb not found, "
               "or -DSTRATA_BENCH_URCU=OFF); no peer\n");
  } else {
    fprintf(f, "  %-56s %9.2f %9.2f\n",
            "urcu-memb rcu_read_lock + unlock (library calls)", r->urcu_1t,
            r->urcu_2t);
    fprintf(f, "  %-56s %9.2f %9.2f\n",
            "urcu-memb rcu_read_lock + unlock (inline, _LGPL_SOURCE)",
            r->urcu_inline_1t, r->urcu_inline_2t);
    fprintf(f,
            "  strata/urcu-call %.2f (1 thread) %.2f (2 threads);  "
            "strata/urcu-inline %.2f %.2f\n",
            r->strata_1t / r->urcu_1t, r->strata_2t / r->urcu_2t,
            r->strata_1t / r->urcu_inline_1t, r->strata_2t / r->urcu_inline_2t);
  }
  fprintf(f, "  grace period, us          %9s %9s %9s   %s\n", "median", "min",
          "max", "");
  fprintf(f, "  strata_store_reclaim(s,1) %9.2f %9.2f %9.2f   no reader\n",
          r->strata_gp_us.median, r->strata_gp_us.min, r->strata_gp_us.max);
  fprintf(f,
          "  strata_store_reclaim(s,1) %9.2f %9.2f %9.2f   a reader "
          "in ~1 us snapshots back to back\n",
          r->strata_gp_busy_us.median, r->strata_gp_busy_us.min,
          r->strata_gp_busy_us.max);
  if (r->have_urcu) {
    fprintf(f, "  synchronize_rcu (memb)    %9.2f %9.2f %9.2f   no reader\n",
            r->urcu_gp_us.median, r->urcu_gp_us.min, r->urcu_gp_us.max);
    fprintf(f,
            "  synchronize_rcu (memb)    %9.2f %9.2f %9.2f   a reader "
            "in ~1 us sections back to back\n",
            r->urcu_gp_busy_us.median, r->urcu_gp_busy_us.min,
            r->urcu_gp_busy_us.max);
    fprintf(f, "  strata/urcu %.2f (no reader), %.2f (busy reader)\n",
            r->strata_gp_us.median / r->urcu_gp_us.median,
            r->strata_gp_busy_us.median / r->urcu_gp_busy_us.median);
  }
  fputc('\n', f);
}

static void json(FILE *f, const void *result) {
  const rcu_result *r = result;
  fprintf(f,
          "    \"rcu\": {\"have_urcu\": %s, \"pairs\": %" PRIu64
          ", \"reps\": %d, \"load1\": %.2f, \"ns_per_pair\": {\"strata\": "
          "[%.4f, %.4f]",
          r->have_urcu ? "true" : "false", r->pairs, r->reps, r->load1,
          r->strata_1t, r->strata_2t);
  if (r->have_urcu)
    fprintf(f,
            ", \"urcu_memb_call\": [%.4f, %.4f], \"urcu_memb_inline\": "
            "[%.4f, %.4f]",
            r->urcu_1t, r->urcu_2t, r->urcu_inline_1t, r->urcu_inline_2t);
  fprintf(f, "}, \"grace_us\": {");
  bench_json_stat(f, "strata", r->strata_gp_us);
  fputs(", ", f);
  bench_json_stat(f, "strata_busy_reader", r->strata_gp_busy_us);
  if (r->have_urcu) {
    fputs(", ", f);
    bench_json_stat(f, "urcu_memb", r->urcu_gp_us);
    fputs(", ", f);
    bench_json_stat(f, "urcu_memb_busy_reader", r->urcu_gp_busy_us);
  }
  fputs("}}", f);
}

const bench_scenario bench_sc_rcu = {"rcu", sizeof(rcu_result), run, print,
                                     json};
