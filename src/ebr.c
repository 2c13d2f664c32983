/* Epoch-based reclamation: the store's RCU.
 *
 * Why not liburcu: Debian's liburcu 0.13 is built on its own inline
 * assembly barriers, which ThreadSanitizer does not understand, so a TSan
 * build reports races in every grace period unless they are suppressed
 * wholesale, and then TSan verifies nothing about publication. This scheme
 * is about 150 lines on C11 atomics, which TSan checks exactly, and its
 * read side costs what urcu-memb's does plus one store fence (measured in
 * docs/ARCHITECTURE.md).
 *
 * The scheme. The store has an epoch counter E (starting at 1). A reader
 * announces, in its own slot, the value of E it read (seq_cst store), and
 * clears it (release store) when its outermost snapshot ends. A writer that
 * unlinks an object retires it with the current E and then advances E. An
 * object retired at epoch e is freed once every slot is either clear or
 * announces an epoch > e: a reader announcing > e read E after the advance,
 * which came after the unlink, so it cannot reach the object; a reader that
 * announced <= e may have, and is waited for. The seq_cst store of the
 * announcement and the seq_cst loads of the writer's slot scan order the
 * two sides (the store-buffer pattern): either the writer sees the
 * announcement or the reader sees the unlink. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_internal.h"

static void slot_release(void *arg) {
  /* Thread exit: a snapshot still open on a dead thread can never end, so
   * clear it rather than block reclamation forever. */
  strata__reader *r = arg;
  atomic_store_explicit(&r->epoch, 0, memory_order_release);
  r->depth = 0;
  atomic_store_explicit(&r->in_use, false, memory_order_release);
}

int strata__ebr_init(struct strata_store *s, uint32_t max_readers) {
  s->max_readers = max_readers;
  s->slots = aligned_alloc(64, (size_t)max_readers * sizeof *s->slots);
  if (s->slots == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating %u reader slots",
                        s->dir, max_readers);
  memset(s->slots, 0, (size_t)max_readers * sizeof *s->slots);
  for (uint32_t i = 0; i < max_readers; i++)
    s->slots[i].store = s;
  int e = pthread_key_create(&s->slot_key, slot_release);
  if (e != 0) {
    free(s->slots);
    s->slots = NULL;
    return strata__fail_errno(e, "%s: pthread_key_create", s->dir);
  }
  pthread_mutex_init(&s->slots_mu, NULL);
  atomic_init(&s->epoch, 1);
  return 0;
}

void strata__ebr_destroy(struct strata_store *s) {
  if (s->slots == NULL)
    return;
  pthread_key_delete(s->slot_key);
  pthread_mutex_destroy(&s->slots_mu);
  free(s->slots);
  s->slots = NULL;
}

int strata__ebr_slot(struct strata_store *s, strata__reader **out) {
  strata__reader *r = pthread_getspecific(s->slot_key);
  if (r != NULL) {
    *out = r;
    return 0;
  }
  pthread_mutex_lock(&s->slots_mu);
  uint32_t i = 0;
  while (i < s->max_readers &&
         atomic_load_explicit(&s->slots[i].in_use, memory_order_acquire))
    i++;
  if (i == s->max_readers) {
    pthread_mutex_unlock(&s->slots_mu);
    return strata__fail(STRATA_E_LIMIT,
                        "%s: all %u reader slots are taken by live threads "
                        "(raise strata_store_config.max_readers)",
                        s->dir, s->max_readers);
  }
  r = &s->slots[i];
  r->depth = 0;
  atomic_store_explicit(&r->in_use, true, memory_order_release);
  if (i + 1 > atomic_load_explicit(&s->slots_used, memory_order_relaxed))
    atomic_store_explicit(&s->slots_used, i + 1, memory_order_seq_cst);
  pthread_mutex_unlock(&s->slots_mu);
  int e = pthread_setspecific(s->slot_key, r);
  if (e != 0) {
    atomic_store_explicit(&r->in_use, false, memory_order_release);
    return strata__fail_errno(e, "%s: pthread_setspecific", s->dir);
  }
  *out = r;
  return 0;
}

void strata__retire_push(struct strata_store *s, strata__retired *t,
                         void *obj, uint64_t bytes,
                         void (*free_fn)(struct strata_store *, void *)) {
  *t = (strata__retired){
      .next = s->retired,
      .epoch = atomic_load_explicit(&s->epoch, memory_order_seq_cst),
      .bytes = bytes,
      .free_fn = free_fn,
      .obj = obj};
  s->retired = t;
  atomic_fetch_add_explicit(&s->retired_bytes, bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->retired_count, 1, memory_order_relaxed);
}

int strata__retire(struct strata_store *s, void *obj, uint64_t bytes,
                   void (*free_fn)(struct strata_store *, void *)) {
  strata__retired *t = malloc(sizeof *t);
  if (t == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a retire record",
                        s->dir);
  strata__retire_push(s, t, obj, bytes, free_fn);
  return 0;
}

uint64_t strata__ebr_advance(struct strata_store *s) {
  return atomic_fetch_add_explicit(&s->epoch, 1, memory_order_seq_cst) + 1;
}

static uint64_t coarse_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Scans the slots: smallest announced epoch, open count, oldest begin. */
static uint64_t scan(struct strata_store *s, uint64_t *open,
                     uint64_t *oldest_begin) {
  uint64_t min = UINT64_MAX, count = 0, oldest = UINT64_MAX;
  /* seq_cst, like the announcement: a slot claimed just now is either seen
   * here or its first announcement sees the writer's unlink. */
  uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_seq_cst);
  for (uint32_t i = 0; i < used; i++) {
    uint64_t e = atomic_load_explicit(&s->slots[i].epoch, memory_order_seq_cst);
    if (e == 0)
      continue;
    count++;
    if (e < min)
      min = e;
    uint64_t b =
        atomic_load_explicit(&s->slots[i].begin_ns, memory_order_relaxed);
    if (b != 0 && b < oldest)
      oldest = b;
  }
  if (open != NULL)
    *open = count;
  if (oldest_begin != NULL)
    *oldest_begin = oldest;
  return min;
}

void strata__ebr_snapshot_stats(struct strata_store *s, uint64_t *open,
                                uint64_t *oldest_ms) {
  uint64_t begin;
  scan(s, open, &begin);
  uint64_t now = coarse_ns();
  *oldest_ms = begin == UINT64_MAX || begin > now ? 0 : (now - begin) / 1000000;
}

uint64_t strata__ebr_min_epoch(struct strata_store *s) {
  uint64_t open, begin;
  uint64_t min = scan(s, &open, &begin);
  if (open == 0 || begin == UINT64_MAX) {
    s->warned_age_ms = 0;
    return min;
  }
  uint64_t now = coarse_ns();
  uint64_t age = begin > now ? 0 : (now - begin) / 1000000;
  uint64_t limit = s->config.snapshot_warn_ms;
  /* Warn when the oldest snapshot passes the limit, then at each doubling
   * of its age, so that a stuck reader is visible without flooding. */
  if (age >= limit && age >= 2 * s->warned_age_ms) {
    s->warned_age_ms = age;
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"snapshot held long; reclamation waits for it\" "
                "age_ms=%" PRIu64 " limit_ms=%" PRIu64 " open=%" PRIu64
                " waiting_bytes=%" PRIu64,
                age, limit, open,
                atomic_load_explicit(&s->retired_bytes, memory_order_relaxed));
  } else if (age < limit) {
    s->warned_age_ms = 0;
  }
  return min;
}

void strata__ebr_collect(struct strata_store *s) {
  if (s->retired == NULL)
    return;
  uint64_t min = strata__ebr_min_epoch(s);
  strata__retired **pp = &s->retired;
  while (*pp != NULL) {
    strata__retired *t = *pp;
    if (t->epoch < min) {
      *pp = t->next;
      atomic_fetch_sub_explicit(&s->retired_bytes, t->bytes,
                                memory_order_relaxed);
      atomic_fetch_sub_explicit(&s->retired_count, 1, memory_order_relaxed);
      t->free_fn(s, t->obj);
      free(t);
    } else {
      pp = &t->next;
    }
  }
}

void strata__ebr_wait(struct strata_store *s, uint64_t epoch) {
  /* Polls with a short sleep: grace periods are waited for by writers and
   * close only, never by readers. */
  for (;;) {
    uint64_t min = scan(s, NULL, NULL);
    if (min > epoch)
      return;
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
}
