/* Shared by test_staging (host mode) and tests/gpu/test_gpu (CUDA): seeded
 * layer content, and the churn test both run on their backend.
 *
 * The churn: four threads, each with a stream and a device buffer, stage
 * random layers of a region (in a pool small enough to evict), check the
 * pinned copy, transfer it (releasing the hold before the copy completes,
 * on purpose), read it back and compare, while the calling thread replaces
 * layers and crystallizes. Failures are counted in the threads, not
 * asserted there (cmocka's failure path is not thread-safe), and reported
 * by the calling thread. */
#ifndef STRATA_STAGING_CHURN_H
#define STRATA_STAGING_CHURN_H

#include <pthread.h>
#include <stdatomic.h>

#include "test_util.h"

/* n bytes of test_fill_seeded content (free() it). */
static inline uint8_t *test_content(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n ? n : 1);
  assert_non_null(p);
  test_fill_seeded(p, n, seed);
  return p;
}

/* Puts layer `id` of `size` bytes of seeded content. */
static inline void test_put(strata_proto *p, uint64_t id, size_t size,
                            uint64_t seed) {
  uint8_t *d = test_content(size, seed);
  assert_int_equal(strata_proto_put(p, id, NULL, 0, NULL, d, size), 0);
  free(d);
}

#define CHURN_LAYERS 24
#define CHURN_THREADS 4
#define CHURN_MAX_LAYER (512u * 1024u)

typedef struct churn_worker {
  strata_store *s;
  uint64_t region, seed;
  _Atomic int *stop;
  int transferred, failed;
  char why[256];
} churn_worker;

#define CHURN_FAIL(a, ...)                                                     \
  do {                                                                         \
    if ((a)->failed++ == 0)                                                    \
      snprintf((a)->why, sizeof(a)->why, __VA_ARGS__);                         \
  } while (0)

/* One layer: staged, its pinned copy checked, transferred and read back.
 * Returns 1 when it was checked, 0 when the pool had no room (LIMIT), -1
 * on a failure (recorded in a). */
static inline int churn_one(churn_worker *a, strata_stream *ss, void *dev,
                            uint8_t *back, uint64_t layer) {
  strata_txn txn;
  if (strata_read_begin(a->s, &txn) != 0) {
    CHURN_FAIL(a, "read_begin: %s", strata_last_error_detail());
    return -1;
  }
  strata_layer l;
  strata_staged *h = NULL;
  int rc = strata_get(&txn, a->region, layer, &l);
  if (rc == 0)
    rc = strata_stage(&txn, a->region, layer, &h);
  int out = 1;
  if (rc == STRATA_E_LIMIT) {
    out = 0;
  } else if (rc != 0) {
    CHURN_FAIL(a, "stage layer %llu: %s", (unsigned long long)layer,
               strata_last_error_detail());
    out = -1;
  } else if (strata_staged_copy_out(h, back) != 0 ||
             memcmp(back, l.data, l.size) != 0) {
    CHURN_FAIL(a, "layer %llu: staged copy differs", (unsigned long long)layer);
    strata_staged_release(h);
    out = -1;
  } else {
    rc = strata_stage_to_device(h, dev, ss);
    strata_staged_release(h); /* before the copy completes, on purpose */
    memset(back, 0, l.size);
    if (rc == 0)
      rc = strata_device_read(ss, back, dev, l.size);
    if (rc == 0)
      rc = strata_stream_sync(ss);
    if (rc != 0)
      CHURN_FAIL(a, "transfer layer %llu: %s", (unsigned long long)layer,
                 strata_last_error_detail());
    else if (memcmp(back, l.data, l.size) != 0)
      CHURN_FAIL(a, "layer %llu arrived changed", (unsigned long long)layer);
    out = rc == 0 && a->failed == 0 ? 1 : -1;
  }
  strata_read_end(&txn);
  return out;
}

static inline void *churn_thread(void *p) {
  churn_worker *a = p;
  strata_stream *ss = NULL;
  void *dev = NULL;
  uint8_t *back = malloc(CHURN_MAX_LAYER);
  if (back == NULL || strata_stream_create(a->s, &ss) != 0) {
    CHURN_FAIL(a, "stream: %s", strata_last_error_detail());
    free(back);
    return NULL;
  }
  if (strata_device_alloc(a->s, CHURN_MAX_LAYER, ss, &dev) != 0) {
    CHURN_FAIL(a, "device_alloc: %s", strata_last_error_detail());
    strata_stream_destroy(ss);
    free(back);
    return NULL;
  }
  uint64_t x = a->seed;
  while (!atomic_load(a->stop) && a->failed == 0) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int r = churn_one(a, ss, dev, back, (x >> 33) % CHURN_LAYERS);
    if (r > 0)
      a->transferred++;
  }
  if (strata_device_free(a->s, dev, ss) != 0)
    CHURN_FAIL(a, "device_free: %s", strata_last_error_detail());
  strata_stream_destroy(ss);
  free(back);
  return NULL;
}

/* Region `region` of s (new) gets CHURN_LAYERS layers of 100-400 KiB,
 * some identical; the threads run while this thread makes `rounds`
 * replacements (crystallizing every 20th). Fails the test on a thread's
 * failure; returns how many layers the threads transferred and checked. */
static inline int churn_run(strata_store *s, uint64_t region, int rounds) {
  strata_proto *p;
  assert_int_equal(strata_proto_create(s, region, "churn", 5, NULL, &p), 0);
  for (uint64_t i = 0; i < CHURN_LAYERS; i++)
    test_put(p, i, (i % 4 + 1) * 100 * 1024, i % 6);
  _Atomic int stop = 0;
  pthread_t th[CHURN_THREADS];
  churn_worker args[CHURN_THREADS];
  for (int i = 0; i < CHURN_THREADS; i++) {
    args[i] = (churn_worker){
        .s = s, .region = region, .seed = 17 + (uint64_t)i, .stop = &stop};
    assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &args[i]), 0);
  }
  for (uint64_t round = 0; round < (uint64_t)rounds; round++) {
    test_put(p, round % CHURN_LAYERS, (round % 5 + 1) * 60 * 1024,
             500 + round % 7);
    if (round % 20 == 19)
      assert_int_equal(strata_crystallize(s, region), 0);
    usleep(2000);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < CHURN_THREADS; i++)
    pthread_join(th[i], NULL);
  int transferred = 0;
  for (int i = 0; i < CHURN_THREADS; i++) {
    if (args[i].failed)
      fail_msg("thread %d: %s", i, args[i].why);
    transferred += args[i].transferred;
  }
  return transferred;
}

#endif /* STRATA_STAGING_CHURN_H */
