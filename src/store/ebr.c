/* Epoch-based reclamation: the store's RCU.
 *
 * Why not liburcu: Debian's liburcu 0.13 is built on its own inline
 * assembly barriers, which ThreadSanitizer does not understand, so a TSan
 * build reports races in every grace period unless they are suppressed
 * wholesale, and then TSan verifies nothing about publication. This scheme
 * is about 200 lines on C11 atomics, which TSan checks exactly. Its read
 * side costs more than urcu-memb's inline one (a seq_cst store: an xchg on
 * x86): strata-bench --scenario rcu measured a begin+end pair at 10 ns
 * against 7 ns for urcu-memb's library calls and 0.7 ns inline. Its grace
 * period is as fast (docs/ARCHITECTURE.md).
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
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_internal.h"
#include "store/store_sample.h"

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
  int e = pthread_key_create(&s->slot_key, slot_release);
  if (e != 0) {
    free(s->slots);
    s->slots = NULL;
    return strata__fail_errno(e, "%s: pthread_key_create", s->dir);
  }
  s->seen_begins = calloc(max_readers, sizeof *s->seen_begins);
  s->seen_ns = calloc(max_readers, sizeof *s->seen_ns);
  if (s->seen_begins == NULL || s->seen_ns == NULL) {
    pthread_key_delete(s->slot_key);
    free(s->seen_begins);
    free(s->seen_ns);
    free(s->slots);
    s->slots = NULL;
    return strata__fail(STRATA_E_NOMEM, "%s: allocating reader slots", s->dir);
  }
  pthread_mutex_init(&s->slots_mu, NULL);
  atomic_init(&s->epoch, 1);
  static _Atomic uint64_t next_uid = 1;
  s->uid = atomic_fetch_add_explicit(&next_uid, 1, memory_order_relaxed);
  return 0;
}

void strata__ebr_destroy(struct strata_store *s) {
  if (s->slots == NULL)
    return;
  pthread_key_delete(s->slot_key);
  pthread_mutex_destroy(&s->slots_mu);
  free(s->slots);
  free(s->seen_begins);
  free(s->seen_ns);
  s->slots = NULL;
  /* A thread that still caches this store's uid never matches another
   * store: uids are not reused. */
}

/* The last store this thread read and its slot in it: a thread-local
 * read is cheaper than pthread_getspecific(). Keyed by the store's uid, not
 * its address, which a later store may reuse. */
static _Thread_local struct {
  uint64_t uid;
  strata__reader *slot;
} last;

int strata__ebr_slot(struct strata_store *s, strata__reader **out) {
  if (last.uid == s->uid) {
    *out = last.slot;
    return 0;
  }
  strata__reader *r = pthread_getspecific(s->slot_key);
  if (r != NULL) {
    last.uid = s->uid;
    last.slot = r;
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
  r->ring = s->hot_rings != NULL ? &s->hot_rings[i] : NULL;
  r->sample_mask = s->sample_mask;
  atomic_store_explicit(&r->in_use, true, memory_order_release);
  if (i + 1 > atomic_load_explicit(&s->slots_used, memory_order_relaxed))
    atomic_store_explicit(&s->slots_used, i + 1, memory_order_seq_cst);
  pthread_mutex_unlock(&s->slots_mu);
  int e = pthread_setspecific(s->slot_key, r);
  if (e != 0) {
    atomic_store_explicit(&r->in_use, false, memory_order_release);
    return strata__fail_errno(e, "%s: pthread_setspecific", s->dir);
  }
  last.uid = s->uid;
  last.slot = r;
  *out = r;
  return 0;
}

void strata__retire_push(struct strata_store *s, strata__retired *t, void *obj,
                         uint64_t bytes,
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

/* The smallest announced epoch (UINT64_MAX when no snapshot is open), and
 * the number of open snapshots. Reads only the slots: any thread. */
static uint64_t scan(struct strata_store *s, uint64_t *open) {
  uint64_t min = UINT64_MAX, count = 0;
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
  }
  if (open != NULL)
    *open = count;
  return min;
}

/* Snapshot ages without a clock on the read path: a reader only counts its
 * snapshots (`begins`); whoever scans under the writer mutex notes when it
 * first saw each slot's current snapshot. An age is therefore the time
 * since the store first noticed the snapshot (every write call and every
 * statistics call look), a lower bound that is exact for the long-lived
 * snapshots the figure exists to expose. Returns the oldest age in ms. */
static uint64_t observe_ages(struct strata_store *s, uint64_t *open) {
  uint64_t now = 0, oldest = 0, count = 0;
  uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_seq_cst);
  for (uint32_t i = 0; i < used; i++) {
    uint64_t e = atomic_load_explicit(&s->slots[i].epoch, memory_order_seq_cst);
    if (e == 0)
      continue;
    /* The clock only when a snapshot is open: every write call scans. */
    if (count++ == 0)
      now = strata__mono_ns();
    uint64_t b =
        atomic_load_explicit(&s->slots[i].begins, memory_order_relaxed);
    if (b != s->seen_begins[i] || s->seen_ns[i] == 0) {
      s->seen_begins[i] = b;
      s->seen_ns[i] = now;
    }
    if (now - s->seen_ns[i] > oldest)
      oldest = now - s->seen_ns[i];
  }
  if (count > s->peak_readers)
    s->peak_readers = count;
  if (open != NULL)
    *open = count;
  return oldest / 1000000;
}

void strata__ebr_snapshot_stats(struct strata_store *s, uint64_t *open,
                                uint64_t *oldest_ms) {
  *oldest_ms = observe_ages(s, open);
}

uint64_t strata__ebr_min_epoch(struct strata_store *s) {
  uint64_t open;
  uint64_t min = scan(s, &open);
  uint64_t age = observe_ages(s, NULL);
  if (open == 0) {
    s->warned_age_ms = 0;
    return min;
  }
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

/* Frees `ready`, a list of records newest first, oldest first: reversed,
 * then freed in order (strata__ebr_collect's promise). */
static void free_oldest_first(struct strata_store *s, strata__retired *ready) {
  strata__retired *old = NULL;
  while (ready != NULL) {
    strata__retired *t = ready;
    ready = t->next;
    t->next = old;
    old = t;
  }
  while (old != NULL) {
    strata__retired *t = old;
    old = t->next;
    t->free_fn(s, t->obj);
    free(t);
  }
}

void strata__ebr_collect(struct strata_store *s) {
  if (s->retired == NULL)
    return;
  uint64_t min = strata__ebr_min_epoch(s);
  strata__retired **pp = &s->retired, *ready = NULL, **tail = &ready;
  while (*pp != NULL) {
    strata__retired *t = *pp;
    if (t->epoch < min) {
      *pp = t->next;
      atomic_fetch_sub_explicit(&s->retired_bytes, t->bytes,
                                memory_order_relaxed);
      atomic_fetch_sub_explicit(&s->retired_count, 1, memory_order_relaxed);
      t->next = NULL;
      *tail = t; /* the list's order (newest first) is kept */
      tail = &t->next;
    } else {
      pp = &t->next;
    }
  }
  free_oldest_first(s, ready);
}

void strata__ebr_drain(struct strata_store *s) {
  strata__retired *all = s->retired;
  s->retired = NULL;
  free_oldest_first(s, all);
}

void strata__ebr_wait(struct strata_store *s, uint64_t epoch) {
  /* Polls with a short sleep: grace periods are waited for by writers and
   * close only, never by readers. */
  for (unsigned tries = 0;; tries++) {
    uint64_t min = scan(s, NULL);
    if (min > epoch)
      return;
    /* Most snapshots last microseconds: yield first, then sleep with a
     * backoff up to 1 ms for the long ones. */
    if (tries < 64) {
      sched_yield();
      continue;
    }
    unsigned us = tries < 74 ? 1u << (tries - 64) : 1000;
    struct timespec ts = {0, (long)(us > 1000 ? 1000 : us) * 1000};
    nanosleep(&ts, NULL);
  }
}
