/* The transfer layer in host mode (tests/gpu has the CUDA path): backend
 * choice at open, order of work on a stream, events (never recorded,
 * pending, re-recorded, outliving their stream), waits across streams,
 * draining on free, device memory accounting and alignment, copies both
 * ways, a stress run of several threads over shared streams (for
 * ThreadSanitizer), and the staging slabs: allocation, zeroed memory,
 * mlock and the unlocked fallback with its warning.
 *
 * Host functions run on the streams' worker threads, where cmocka's
 * assertions must not be used: they record what they saw in atomics that
 * the test thread checks. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>

#include <linux/capability.h>

#include "test_util.h"

#include "common/log.h"
#include "device/device.h"
#include "staging/staging_slab.h"

static strata__logger quiet;

static strata__device *open_host(void) {
  strata__device_config cfg = {.device = 0, .force_host = true, .log = &quiet};
  strata__device *x = NULL;
  assert_strata_ok(strata__device_open(&cfg, &x));
  assert_non_null(x);
  return x;
}

static strata__dstream *new_stream(strata__device *x) {
  strata__dstream *s = NULL;
  assert_strata_ok(strata__dstream_new(x, &s));
  assert_non_null(s);
  return s;
}

static strata__devent *new_event(strata__device *x) {
  strata__devent *e = NULL;
  assert_strata_ok(strata__devent_new(x, &e));
  assert_non_null(e);
  return e;
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* A gate a host function blocks on until the test opens it. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
  atomic_bool entered;
} gate;

static void gate_init(gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = false;
  atomic_init(&g->entered, false);
}

static void gate_open(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(gate *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

static void gate_fn(void *arg) {
  gate *g = arg;
  atomic_store(&g->entered, true);
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

/* ---- open ---------------------------------------------------------------- */

static void test_open_force_host(void **state) {
  (void)state;
  strata__device *x = open_host();
  assert_string_equal(strata__device_backend(x), "host");
  assert_false(strata__device_is_cuda(x));
  assert_string_equal(strata__device_name(x), "host");
  /* The library may have been built with or without CUDA (STRATA_HAVE_CUDA
   * is private to it): a default open tells which. */
  strata__device *d = NULL;
  assert_strata_ok(strata__device_open(NULL, &d));
  bool built_in = strcmp(strata__device_host_reason(d), "built without CUDA");
  strata__device_close(d);
  assert_string_equal(strata__device_host_reason(x),
                      built_in ? "host mode requested" : "built without CUDA");
  assert_true(strata__device_numa_node(x) >= -1);
  assert_int_equal(strata__device_mem_bytes(x), 0);
  strata__dstream *s = new_stream(x);
  assert_null(strata__dstream_native(s));
  strata__dstream_free(s);
  strata__dstream_free(NULL);
  strata__devent_free(NULL);
  strata__device_close(x);
  strata__device_close(NULL);
}

/* The host backend's stream_adopt: a NULL handle is an argument error
 * (device.c, for both backends); any other is refused as host mode, with
 * the context's reason, and nothing is handed out. */
static void test_adopt_host(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *s = NULL;
  assert_int_equal(strata__dstream_adopt(x, NULL, &s), STRATA_E_INVAL);
  assert_null(s);
  assert_non_null(
      strstr(strata_last_error_detail(), "adopting a NULL native stream"));
  int handle;
  assert_int_equal(strata__dstream_adopt(x, &handle, &s), STRATA_E_STATE);
  assert_null(s);
  char want[320];
  snprintf(want, sizeof want, "runs in host mode (%s)",
           strata__device_host_reason(x));
  assert_non_null(strstr(strata_last_error_detail(), want));
  strata__device_close(x);
}

/* The default configuration opens whatever the machine has; without a GPU
 * (CI) that is host mode with a reason, with one it is CUDA. */
static void test_open_default(void **state) {
  (void)state;
  strata__device *x = NULL;
  assert_strata_ok(strata__device_open(NULL, &x));
  if (strata__device_is_cuda(x)) {
    assert_string_equal(strata__device_backend(x), "cuda");
    assert_string_equal(strata__device_host_reason(x), "");
  } else {
    assert_string_equal(strata__device_backend(x), "host");
    const char *why = strata__device_host_reason(x);
    assert_true(strcmp(why, "built without CUDA") == 0 ||
                strncmp(why, "no CUDA device: ", 16) == 0);
  }
  strata__device_close(x);

  strata__device_config bad = {.device = -1, .log = &quiet};
  assert_strata_err(strata__device_open(&bad, &x), STRATA_E_INVAL);
}

/* ---- order on one stream ------------------------------------------------- */

#define COPIES 200
#define COPY_BYTES 4096

typedef struct probe {
  const unsigned char *buf;
  atomic_int seen; /* buf[0] and buf[last], or -1 when they differ */
} probe;

static void probe_fn(void *arg) {
  probe *p = arg;
  int first = p->buf[0], last = p->buf[COPY_BYTES - 1];
  atomic_store(&p->seen, first == last ? first : -1);
}

static void test_copy_order(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *s = new_stream(x);
  unsigned char *src = malloc((size_t)COPIES * COPY_BYTES);
  unsigned char *dst = calloc(1, COPY_BYTES);
  assert_non_null(src);
  assert_non_null(dst);
  for (int i = 0; i < COPIES; i++)
    memset(src + (size_t)i * COPY_BYTES, i, COPY_BYTES);
  probe mid = {.buf = dst, .seen = -2}, end = {.buf = dst, .seen = -2};
  for (int i = 0; i < COPIES; i++) {
    assert_strata_ok(strata__dstream_copy_h2d(
        s, dst, src + (size_t)i * COPY_BYTES, COPY_BYTES));
    if (i == COPIES / 2)
      assert_strata_ok(strata__dstream_host_fn(s, probe_fn, &mid));
  }
  assert_strata_ok(strata__dstream_host_fn(s, probe_fn, &end));
  /* A copy of nothing is no work at all. */
  assert_strata_ok(strata__dstream_copy_h2d(s, NULL, NULL, 0));
  assert_strata_ok(strata__dstream_sync(s));
  assert_int_equal(atomic_load(&mid.seen), COPIES / 2);
  assert_int_equal(atomic_load(&end.seen), COPIES - 1);
  for (size_t i = 0; i < COPY_BYTES; i++)
    assert_int_equal(dst[i], COPIES - 1);
  assert_strata_err(strata__dstream_host_fn(s, NULL, NULL), STRATA_E_INVAL);
  assert_strata_err(strata__dstream_copy_h2d(s, NULL, src, 1), STRATA_E_INVAL);
  strata__dstream_free(s);
  free(src);
  free(dst);
  strata__device_close(x);
}

/* ---- events -------------------------------------------------------------- */

static void test_event_never_recorded(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__devent *e = new_event(x);
  assert_int_equal(strata__devent_query(e), 1);
  assert_strata_ok(strata__devent_sync(e));
  /* A wait on it holds nothing up. */
  strata__dstream *s = new_stream(x);
  assert_strata_ok(strata__dstream_wait(s, e));
  assert_strata_ok(strata__dstream_sync(s));
  strata__dstream_free(s);
  strata__devent_free(e);
  strata__device_close(x);
}

static void test_event_pending_then_complete(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *s = new_stream(x);
  strata__devent *before = new_event(x), *after = new_event(x);
  gate g;
  gate_init(&g);
  assert_strata_ok(strata__devent_record(before, s));
  assert_strata_ok(strata__dstream_host_fn(s, gate_fn, &g));
  assert_strata_ok(strata__devent_record(after, s));
  /* Nothing was before the first record. */
  assert_strata_ok(strata__devent_sync(before));
  assert_int_equal(strata__devent_query(before), 1);
  while (!atomic_load(&g.entered))
    sleep_ms(1);
  sleep_ms(20);
  assert_int_equal(strata__devent_query(after), 0);
  gate_open(&g);
  assert_strata_ok(strata__devent_sync(after));
  assert_int_equal(strata__devent_query(after), 1);

  /* Re-recording moves the event to the new point. */
  gate h;
  gate_init(&h);
  assert_strata_ok(strata__dstream_host_fn(s, gate_fn, &h));
  assert_strata_ok(strata__devent_record(after, s));
  assert_int_equal(strata__devent_query(after), 0);
  gate_open(&h);
  assert_strata_ok(strata__devent_sync(after));
  assert_int_equal(strata__devent_query(after), 1);

  strata__dstream_free(s);
  strata__devent_free(before);
  strata__devent_free(after);
  gate_destroy(&g);
  gate_destroy(&h);
  strata__device_close(x);
}

/* An event may be recorded on one stream and then another, and may outlive
 * the stream it was recorded on. */
static void test_event_moves_and_outlives(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *a = new_stream(x), *b = new_stream(x);
  strata__devent *e = new_event(x);
  gate g;
  gate_init(&g);
  assert_strata_ok(strata__dstream_host_fn(a, gate_fn, &g));
  assert_strata_ok(strata__devent_record(e, a));
  assert_int_equal(strata__devent_query(e), 0);
  assert_strata_ok(strata__devent_record(e, b)); /* b is idle */
  assert_strata_ok(strata__devent_sync(e));
  assert_int_equal(strata__devent_query(e), 1);
  assert_strata_ok(strata__devent_record(e, a));
  assert_int_equal(strata__devent_query(e), 0);
  gate_open(&g);
  strata__dstream_free(a); /* drains a first */
  assert_int_equal(strata__devent_query(e), 1);
  assert_strata_ok(strata__devent_sync(e));
  strata__dstream_free(b);
  assert_int_equal(strata__devent_query(e), 1);
  strata__devent_free(e);
  gate_destroy(&g);
  strata__device_close(x);
}

/* ---- waits across streams ------------------------------------------------ */

typedef struct observe {
  const int *value;
  atomic_int seen; /* -1: not run yet */
} observe;

static void observe_fn(void *arg) {
  observe *o = arg;
  atomic_store(&o->seen, *o->value);
}

static void test_cross_stream_wait(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *a = new_stream(x), *b = new_stream(x);
  strata__devent *e = new_event(x);
  gate g;
  gate_init(&g);
  static const int answer = 42;
  int value = 0;
  observe o = {.value = &value, .seen = -1};
  assert_strata_ok(strata__dstream_host_fn(a, gate_fn, &g));
  assert_strata_ok(strata__dstream_copy_h2d(a, &value, &answer, sizeof value));
  assert_strata_ok(strata__devent_record(e, a));
  assert_strata_ok(strata__dstream_wait(b, e));
  assert_strata_ok(strata__dstream_host_fn(b, observe_fn, &o));
  /* Re-recording after the wait was queued does not move the wait. */
  assert_strata_ok(strata__devent_record(e, b));
  sleep_ms(30);
  assert_int_equal(atomic_load(&o.seen), -1);
  gate_open(&g);
  assert_strata_ok(strata__dstream_sync(b));
  assert_int_equal(atomic_load(&o.seen), 42);
  /* Waiting on an earlier point of the same stream does not deadlock (the
   * gate keeps the event pending, so the wait is queued). */
  gate h;
  gate_init(&h);
  assert_strata_ok(strata__dstream_host_fn(a, gate_fn, &h));
  assert_strata_ok(strata__devent_record(e, a));
  assert_strata_ok(strata__dstream_host_fn(a, observe_fn, &o));
  assert_strata_ok(strata__dstream_wait(a, e));
  assert_strata_ok(strata__dstream_host_fn(a, observe_fn, &o));
  gate_open(&h);
  assert_strata_ok(strata__dstream_sync(a));
  gate_destroy(&h);

  strata__device *other = open_host();
  strata__dstream *c = new_stream(other);
  assert_strata_err(strata__dstream_wait(c, e), STRATA_E_INVAL);
  assert_strata_err(strata__devent_record(e, c), STRATA_E_INVAL);
  strata__dstream_free(c);
  strata__device_close(other);

  strata__dstream_free(a);
  strata__dstream_free(b);
  strata__devent_free(e);
  gate_destroy(&g);
  strata__device_close(x);
}

/* ---- free drains --------------------------------------------------------- */

static void slow_fn(void *arg) {
  sleep_ms(20);
  atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_stream_free_drains(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *s = new_stream(x);
  atomic_int ran = 0;
  static const char src[8] = "drained";
  char dst[8] = {0};
  for (int i = 0; i < 5; i++)
    assert_strata_ok(strata__dstream_host_fn(s, slow_fn, &ran));
  assert_strata_ok(strata__dstream_copy_h2d(s, dst, src, sizeof dst));
  strata__dstream_free(s);
  assert_int_equal(atomic_load(&ran), 5);
  assert_string_equal(dst, "drained");
  strata__device_close(x);
}

/* ---- device memory ------------------------------------------------------- */

static void test_dev_alloc_accounting(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *s = new_stream(x);
  static const size_t sizes[] = {1, 255, 256, 257, 10000, 1 << 20};
  void *p[sizeof sizes / sizeof sizes[0]];
  uint64_t want = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    assert_strata_ok(
        strata__device_mem_alloc(x, sizes[i], i % 2 ? s : NULL, &p[i]));
    assert_int_equal((uintptr_t)p[i] % 256, 0);
    memset(p[i], 0xab, sizes[i]);
    want += (sizes[i] + 255) / 256 * 256;
    assert_int_equal(strata__device_mem_bytes(x), want);
  }
  /* Queued copies out of the memory still find it after a queued free. */
  unsigned char *back = malloc(sizes[5]);
  assert_non_null(back);
  gate g;
  gate_init(&g);
  assert_strata_ok(strata__dstream_host_fn(s, gate_fn, &g));
  assert_strata_ok(strata__dstream_copy_d2h(s, back, p[5], sizes[5]));
  assert_strata_ok(strata__device_mem_free(x, p[5], s));
  want -= sizes[5];
  assert_int_equal(strata__device_mem_bytes(x), want);
  gate_open(&g);
  assert_strata_ok(strata__dstream_sync(s));
  for (size_t i = 0; i < sizes[5]; i++)
    assert_int_equal(back[i], 0xab);
  for (size_t i = 0; i < 5; i++) {
    assert_strata_ok(strata__device_mem_free(x, p[i], i % 2 ? s : NULL));
    want -= (sizes[i] + 255) / 256 * 256;
    assert_int_equal(strata__device_mem_bytes(x), want);
  }
  assert_int_equal(strata__device_mem_bytes(x), 0);
  assert_strata_ok(strata__device_mem_free(x, NULL, s));
  /* Frees of memory that is not live are refused (here: already freed). */
  assert_strata_err(strata__device_mem_free(x, p[0], NULL), STRATA_E_INVAL);
  void *q = NULL;
  assert_strata_err(strata__device_mem_alloc(x, 0, NULL, &q), STRATA_E_INVAL);

  /* Many live allocations: the accounting table grows and shrinks. */
  enum { MANY = 1000 };
  void **many = malloc(MANY * sizeof *many);
  assert_non_null(many);
  for (int i = 0; i < MANY; i++)
    assert_strata_ok(strata__device_mem_alloc(x, 512, NULL, &many[i]));
  assert_int_equal(strata__device_mem_bytes(x), MANY * 512);
  for (int i = 0; i < MANY; i += 2)
    assert_strata_ok(strata__device_mem_free(x, many[i], s));
  for (int i = 1; i < MANY; i += 2)
    assert_strata_ok(strata__device_mem_free(x, many[i], NULL));
  assert_int_equal(strata__device_mem_bytes(x), 0);
  strata__dstream_free(s);
  free(many);
  free(back);
  gate_destroy(&g);
  strata__device_close(x);
}

static void test_copy_d2h(void **state) {
  (void)state;
  strata__device *x = open_host();
  strata__dstream *s = new_stream(x);
  enum { N = 100000 };
  unsigned char *src = malloc(N), *back = calloc(1, N);
  assert_non_null(src);
  assert_non_null(back);
  for (size_t i = 0; i < N; i++)
    src[i] = (unsigned char)(i * 7 + 3);
  void *dev = NULL;
  assert_strata_ok(strata__device_mem_alloc(x, N, s, &dev));
  assert_strata_ok(strata__dstream_copy_h2d(s, dev, src, N));
  assert_strata_ok(strata__dstream_copy_d2h(s, back, dev, N));
  assert_strata_ok(strata__device_mem_free(x, dev, s));
  assert_strata_ok(strata__dstream_sync(s));
  assert_memory_equal(src, back, N);
  strata__dstream_free(s);
  free(src);
  free(back);
  strata__device_close(x);
}

/* ---- stress -------------------------------------------------------------- */

#define STRESS_THREADS 4
#define STRESS_STREAMS 6
#define STRESS_ROUNDS 400

/* What one thread owns on one stream: a buffer its copies go to and the
 * sequence number the last check on that stream saw. Only the stream's
 * worker touches `dst` and `last` once the thread has queued work. */
typedef struct lane {
  uint32_t dst;
  uint32_t last;
} lane;

typedef struct check {
  lane *lane;
  uint32_t seq;
} check;

typedef struct stress {
  strata__device *x;
  strata__dstream *streams[STRESS_STREAMS];
  atomic_int errors;
  atomic_int checks;
} stress;

typedef struct stress_thread {
  stress *st;
  unsigned seed;
  lane lanes[STRESS_STREAMS];
  uint32_t src[STRESS_ROUNDS];
  check checks[STRESS_ROUNDS];
} stress_thread;

static stress *stress_of_check; /* set before the threads start */

/* Runs on a worker: the copy queued just before must have landed, and
 * checks on one lane must run in the order they were queued. */
static void check_fn(void *arg) {
  check *c = arg;
  if (c->lane->dst != c->seq || c->lane->last >= c->seq)
    atomic_fetch_add(&stress_of_check->errors, 1);
  c->lane->last = c->seq;
  atomic_fetch_add(&stress_of_check->checks, 1);
}

static void *stress_main(void *arg) {
  stress_thread *t = arg;
  stress *st = t->st;
  strata__devent *e = NULL;
  if (strata__devent_new(st->x, &e) < 0) {
    atomic_fetch_add(&st->errors, 1);
    return NULL;
  }
  int bad = 0;
  for (uint32_t r = 0; r < STRESS_ROUNDS; r++) {
    unsigned k = (unsigned)rand_r(&t->seed) % STRESS_STREAMS;
    strata__dstream *s = st->streams[k];
    t->src[r] = r + 1;
    t->checks[r] = (check){.lane = &t->lanes[k], .seq = r + 1};
    bad |= strata__dstream_copy_h2d(s, &t->lanes[k].dst, &t->src[r],
                                    sizeof t->src[r]);
    bad |= strata__dstream_host_fn(s, check_fn, &t->checks[r]);
    /* Chain another stream behind this one now and then. */
    if (r % 7 == 0) {
      unsigned k2 = (unsigned)rand_r(&t->seed) % STRESS_STREAMS;
      bad |= strata__devent_record(e, s);
      bad |= strata__dstream_wait(st->streams[k2], e);
    }
    if (r % 13 == 0)
      bad |= strata__devent_query(e) < 0;
    if (r % 50 == 0)
      bad |= strata__devent_sync(e);
    if (r % 31 == 0) {
      void *d = NULL;
      bad |= strata__device_mem_alloc(st->x, 1000, s, &d);
      if (d != NULL)
        bad |= strata__device_mem_free(st->x, d, st->streams[k]);
    }
  }
  /* Everything this thread queued is done after syncing every stream. */
  for (unsigned k = 0; k < STRESS_STREAMS; k++)
    bad |= strata__dstream_sync(st->streams[k]);
  strata__devent_free(e);
  if (bad)
    atomic_fetch_add(&st->errors, 1);
  return NULL;
}

static void test_stress(void **state) {
  (void)state;
  static stress st;
  st.x = open_host();
  atomic_init(&st.errors, 0);
  atomic_init(&st.checks, 0);
  stress_of_check = &st;
  for (unsigned k = 0; k < STRESS_STREAMS; k++)
    st.streams[k] = new_stream(st.x);
  stress_thread *ts = calloc(STRESS_THREADS, sizeof *ts);
  assert_non_null(ts);
  pthread_t tid[STRESS_THREADS];
  for (unsigned i = 0; i < STRESS_THREADS; i++) {
    ts[i].st = &st;
    ts[i].seed = 1234 + i;
    assert_int_equal(pthread_create(&tid[i], NULL, stress_main, &ts[i]), 0);
  }
  for (unsigned i = 0; i < STRESS_THREADS; i++)
    assert_int_equal(pthread_join(tid[i], NULL), 0);
  assert_int_equal(atomic_load(&st.errors), 0);
  assert_int_equal(atomic_load(&st.checks), STRESS_THREADS * STRESS_ROUNDS);
  for (unsigned k = 0; k < STRESS_STREAMS; k++)
    strata__dstream_free(st.streams[k]);
  assert_int_equal(strata__device_mem_bytes(st.x), 0);
  strata__device_close(st.x);
  free(ts);
}

/* ---- pinning and what host mode lacks ------------------------------------ */

static void test_pin_unpin(void **state) {
  (void)state;
  strata__device *x = open_host();
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 16 * page;
  void *p =
      mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  int rc = strata__device_pin(x, p, n);
  /* RLIMIT_MEMLOCK may be below 64 KiB where the test is not privileged. */
  assert_true(rc == 0 || rc == -ENOMEM || rc == -EPERM);
  if (rc == 0)
    strata__device_unpin(x, p, n);
  assert_strata_err(strata__device_pin(x, NULL, n), STRATA_E_INVAL);
  munmap(p, n);
  strata__device_close(x);
}

static void test_host_mode_unsupported(void **state) {
  (void)state;
  strata__device *x = open_host();
  void *p = NULL;
  static const char data[4096];
  assert_strata_err(strata__device_host_alloc(x, 4096, &p), STRATA_E_STATE);
  assert_null(p);
  assert_non_null(strstr(strata_last_error_detail(), "host mode"));
  assert_strata_err(strata__device_register_readonly(x, data, sizeof data),
                    STRATA_E_STATE);
  strata__device_unregister(x, data);
  strata__device_host_free(x, NULL);
  strata__device_close(x);
}

/* ---- slabs --------------------------------------------------------------- */

typedef struct warnings {
  int count;
  char last[2048];
} warnings;

static void collect(void *ctx, int level, const char *line) {
  warnings *w = ctx;
  if (level >= STRATA_LOG_WARN) {
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", line);
  }
}

static void check_slab(const strata__slab *sl, size_t bytes) {
  assert_non_null(sl->base);
  assert_int_equal(sl->bytes, bytes);
  assert_true(sl->method == STRATA__SLAB_MLOCKED ||
              sl->method == STRATA__SLAB_UNLOCKED);
  assert_true(sl->alloc_ns > 0);
  assert_int_equal((uintptr_t)sl->base % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
  const unsigned char *b = sl->base;
  for (size_t i = 0; i < bytes; i++)
    if (b[i] != 0)
      fail_msg("slab byte %zu is %d, not 0", i, b[i]);
  memset(sl->base, 0x5a, bytes);
}

static void test_slab_host(void **state) {
  (void)state;
  strata__device *x = open_host();
  warnings w = {0};
  strata__logger lg;
  strata__logger_init(&lg, STRATA_LOG_WARN, collect, &w);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t bytes = 1024 * page + 3 * page; /* shares of unequal size */
  strata__slab sl;

  /* Bound to the node host mode reports (-1 when there is none), touched
   * by several threads; driver_alloc means nothing without CUDA. */
  int node = strata__device_numa_node(x);
  assert_strata_ok(strata__slab_alloc(x, bytes, node, true, 3, &lg, &sl));
  check_slab(&sl, bytes);
  assert_true(sl.node == -1 || sl.node == node);
  assert_int_equal(w.count, sl.method == STRATA__SLAB_UNLOCKED ? 1 : 0);
  strata__slab_free(x, &sl);
  assert_null(sl.base);
  strata__slab_free(x, &sl); /* a zeroed slab */

  /* Unbound, more touch threads than pages, and 0 meaning one. */
  assert_strata_ok(strata__slab_alloc(x, 2 * page, -1, false, 16, &lg, &sl));
  check_slab(&sl, 2 * page);
  assert_int_equal(sl.node, -1);
  strata__slab_free(x, &sl);
  assert_strata_ok(strata__slab_alloc(x, 8 * page, -1, false, 0, NULL, &sl));
  check_slab(&sl, 8 * page);
  strata__slab_free(x, &sl);

  assert_strata_err(strata__slab_alloc(x, page + 1, -1, false, 1, &lg, &sl),
                    STRATA_E_INVAL);
  assert_strata_err(strata__slab_alloc(x, 0, -1, false, 1, &lg, &sl),
                    STRATA_E_INVAL);

  assert_string_equal(strata__slab_method_name(STRATA__SLAB_NUMA_REGISTERED),
                      "numa+register");
  assert_string_equal(strata__slab_method_name(STRATA__SLAB_CUDA_HOST_ALLOC),
                      "cuda-host-alloc");
  assert_string_equal(strata__slab_method_name(STRATA__SLAB_MLOCKED), "mlock");
  assert_string_equal(strata__slab_method_name(STRATA__SLAB_UNLOCKED),
                      "unlocked");
  strata__device_close(x);
}

/* Drops CAP_IPC_LOCK from this thread's effective set (it stays
 * permitted, so it can be raised again): with it, mlock ignores
 * RLIMIT_MEMLOCK, and tests run as root would never see mlock fail. */
static bool set_ipc_lock(bool on) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0)
    return false;
  unsigned bit = 1u << (CAP_IPC_LOCK % 32);
  if (on)
    d[CAP_IPC_LOCK / 32].effective |= bit & d[CAP_IPC_LOCK / 32].permitted;
  else
    d[CAP_IPC_LOCK / 32].effective &= ~bit;
  return syscall(SYS_capset, &h, d) == 0;
}

static void test_slab_unlocked(void **state) {
  (void)state;
  strata__device *x = open_host();
  warnings w = {0};
  strata__logger lg;
  strata__logger_init(&lg, STRATA_LOG_WARN, collect, &w);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  struct rlimit saved;
  assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &saved), 0);
  struct rlimit low = {.rlim_cur = page, .rlim_max = saved.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &low), 0);
  bool dropped = set_ipc_lock(false);
  /* Does mlock enforce the limit now? Not where the capability could not
   * be dropped, nor under ASan or TSan, whose mlock does nothing and
   * succeeds. */
  void *trial = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(trial != MAP_FAILED);
  bool enforced = mlock(trial, 4 * page) != 0;
  if (!enforced)
    munlock(trial, 4 * page);
  munmap(trial, 4 * page);

  strata__slab sl;
  assert_strata_ok(strata__slab_alloc(x, 64 * page, -1, false, 2, &lg, &sl));
  check_slab(&sl, 64 * page);
  assert_int_equal(sl.method,
                   enforced ? STRATA__SLAB_UNLOCKED : STRATA__SLAB_MLOCKED);
  if (sl.method == STRATA__SLAB_UNLOCKED) {
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "mlock failed"));
    assert_non_null(strstr(w.last, "rlimit_memlock="));
    char want[64];
    snprintf(want, sizeof want, "bytes=%zu", 64 * page);
    assert_non_null(strstr(w.last, want));
  } else {
    assert_int_equal(w.count, 0);
  }
  strata__slab_free(x, &sl);

  if (dropped)
    set_ipc_lock(true);
  assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &saved), 0);
  strata__device_close(x);
}

int main(void) {
  strata__logger_init(&quiet, STRATA_LOG_WARN, NULL, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_force_host),
      cmocka_unit_test(test_adopt_host),
      cmocka_unit_test(test_open_default),
      cmocka_unit_test(test_copy_order),
      cmocka_unit_test(test_event_never_recorded),
      cmocka_unit_test(test_event_pending_then_complete),
      cmocka_unit_test(test_event_moves_and_outlives),
      cmocka_unit_test(test_cross_stream_wait),
      cmocka_unit_test(test_stream_free_drains),
      cmocka_unit_test(test_dev_alloc_accounting),
      cmocka_unit_test(test_copy_d2h),
      cmocka_unit_test(test_stress),
      cmocka_unit_test(test_pin_unpin),
      cmocka_unit_test(test_host_mode_unsupported),
      cmocka_unit_test(test_slab_host),
      cmocka_unit_test(test_slab_unlocked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
