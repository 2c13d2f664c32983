/* The publisher (docs/REMOTE.md, "The publisher"): the lock on HEAD with
 * its lease and fence, and strata_remote_publish()'s steps.
 *
 * Why a lease and a fence both. The lock's lease only keeps a second
 * publisher out with a clear message; it cannot make a paused publisher
 * stop. What keeps history linear is the exclusive create of manifest.N+1
 * and HEAD's compare-and-swap, whose second comparison is the fence: every
 * lock acquisition bumps it, so a publisher whose lease ran out while it
 * slept finds the fence moved when it wakes and fails at the swap with
 * nothing changed. The renewal thread's view of the lease (publock_check)
 * only stops such a publisher sooner.
 *
 * Why the holder's description travels in the cookie. rados_list_lockers()
 * returns each locker's client, cookie and address but not the
 * description given to rados_lock_exclusive(), and the message a second
 * publisher gets must name the holder's host and pid ("locked by
 * client.4211 host=gpu-07 pid=5120"). The cookie is ours to choose and is
 * returned whole, so it is "RANDOM WHOAMI": random (per lock) before the
 * first space, the description after it.
 *
 * Not done: the local hash cache (STORE/.strata-remote/hashes) that the
 * protocol allows. Every publish hashes every file again (XXH3-128 runs at
 * memory speed over the mapping; an uploaded chunk costs far more). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/hash.h"
#include "remote/remote_internal.h"
#include "store/store_internal.h"

int (*strata__publish_test_hook)(const char *step, void *ctx);
void *strata__publish_test_hook_ctx;

/* Notifications only speed followers up (they poll), so a slow watcher
 * must not hold a publish: one second, then DEBUG. */
#define PUBLISH_NOTIFY_MS 1000

static strata__logger *rlog(const strata__rconn *c) {
  static strata__logger fallback = {STRATA_LOG_WARN, NULL, NULL};
  return c->log != NULL ? c->log : &fallback;
}

/* ---- small helpers ------------------------------------------------------- */

/* A write op that runs once (docs/REMOTE.md: an op run twice ignored its
 * exclusive create): made, operated and released here. */
static int operate_once(const strata__rconn *c, rados_write_op_t op,
                        const char *obj) {
  int rc = rados_write_op_operate(op, c->io, obj, NULL, 0);
  rados_release_write_op(op);
  return rc;
}

/* Reads a 20-digit xattr of `obj`: -ENODATA when it is missing, -EIO
 * (STRATA_E_CORRUPT) when it is not 20 digits. */
static int read_dec20(const strata__rconn *c, const char *obj,
                      const char *xattr, uint64_t *out) {
  char buf[32];
  int n = rados_getxattr(c->io, obj, xattr, buf, sizeof buf);
  if (n < 0)
    return n == -ENODATA ? n : strata__rfail(c, n, obj, "reading %s", xattr);
  if (strata__parse_dec20(buf, (size_t)n, out) < 0)
    return strata__fail(STRATA_E_CORRUPT,
                        "%s: %s: xattr %s is not 20 decimal digits", c->label,
                        obj, xattr);
  return 0;
}

/* ---- the lock ---------------------------------------------------------- */

struct strata__publock {
  strata__rconn *c;
  char cookie[16 * 2 + 1 + sizeof((strata__rconn *)0)->whoami];
  uint64_t fence;
  uint32_t lease_s;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC: the renewal period */
  bool stop, thread;
  pthread_t tid;
  /* Under mu: the error of a renewal that found the lock gone (0 while
   * held), and when the last successful lock or renew request was sent
   * (the OSD counts the lease from its receipt, later than that). */
  int lost;
  uint64_t sent_ns;
};

static int lock_call(strata__publock *l, uint8_t flags) {
  struct timeval d = {.tv_sec = (time_t)l->lease_s};
  return rados_lock_exclusive(l->c->io, STRATA__HEAD_OBJ, STRATA__LOCK_NAME,
                              l->cookie, l->c->whoami, &d, flags);
}

static void *renew_main(void *arg) {
  strata__publock *l = arg;
  uint64_t period_ns = (uint64_t)l->lease_s * 1000000000u / 3;
  pthread_mutex_lock(&l->mu);
  while (!l->stop && l->lost == 0) {
    uint64_t due = strata__mono_ns() + period_ns;
    struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                          .tv_nsec = (long)(due % 1000000000u)};
    while (!l->stop && strata__mono_ns() < due)
      pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    if (l->stop)
      break;
    pthread_mutex_unlock(&l->mu);
    uint64_t t0 = strata__mono_ns();
    int rc = lock_call(l, LIBRADOS_LOCK_FLAG_MUST_RENEW);
    pthread_mutex_lock(&l->mu);
    if (rc == 0) {
      l->sent_ns = t0;
    } else if (rc == -ENOENT || rc == -EBUSY) {
      l->lost = rc; /* broken or taken: never silently taken again */
    } else {
      /* A timeout may still leave the lease held; publock_check judges by
       * the time since the last renewal that succeeded. */
      char q[STRATA__LOG_TEXT];
      strata__log(rlog(l->c), STRATA_LOG_WARN, "remote",
                  "msg=\"publisher lock renewal failed\" remote=%s error=%s",
                  strata__log_quote(q, sizeof q, l->c->label),
                  strata_err_name(rc));
    }
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* HEAD at version 0 (docs/REMOTE.md, "HEAD"), with an exclusive create
 * before the lock (a lock on a missing object creates it empty), or, with
 * `exclusive` false, over an empty object that a bare lock made: the
 * caller then holds the lock. */
static int head_init(strata__rconn *c, bool exclusive) {
  char *body = NULL;
  size_t len = 0;
  STRATA__TRY(strata__head_body(c, 0, "", 0, &body, &len));
  char zero[21];
  strata__u64_dec20(zero, 0);
  rados_write_op_t op = rados_create_write_op();
  if (exclusive)
    rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
  rados_write_op_write_full(op, body, len);
  rados_write_op_setxattr(op, STRATA__XATTR_VERSION, zero, 20);
  rados_write_op_setxattr(op, STRATA__XATTR_FENCE, zero, 20);
  int rc = operate_once(c, op, STRATA__HEAD_OBJ);
  free(body);
  if (rc == -EEXIST && exclusive)
    return 0;
  return rc < 0 ? strata__rfail(c, rc, STRATA__HEAD_OBJ, "creating version 0")
                : 0;
}

int strata__publock_holder(const strata__rconn *c, char **client, char **cookie,
                           char **desc) {
  char *outs[3] = {NULL, NULL, NULL};
  int exclusive = 0;
  size_t cap = 1024;
  for (;;) {
    char *buf = malloc(4 * cap);
    if (buf == NULL)
      return strata__fail(STRATA_E_NOMEM, "%s: head: listing lockers",
                          c->label);
    size_t tl = cap, cl = cap, kl = cap, al = cap;
    ssize_t n = rados_list_lockers(c->io, STRATA__HEAD_OBJ, STRATA__LOCK_NAME,
                                   &exclusive, buf, &tl, buf + cap, &cl,
                                   buf + 2 * cap, &kl, buf + 3 * cap, &al);
    if (n == -ERANGE && cap < (1u << 20)) {
      free(buf);
      cap *= 4;
      continue;
    }
    if (n < 0 && n != -ENOENT) {
      free(buf);
      return strata__rfail(c, (int)n, STRATA__HEAD_OBJ, "listing lockers");
    }
    if (n > 0) {
      /* One exclusive locker: the first string of each list. */
      const char *k = buf + 2 * cap, *sp = strchr(k, ' ');
      outs[0] = strdup(buf + cap);
      outs[1] = strdup(k);
      outs[2] = strdup(sp != NULL ? sp + 1 : buf + cap);
    }
    free(buf);
    break;
  }
  if ((outs[0] == NULL) != (outs[2] == NULL) ||
      (outs[1] == NULL) != (outs[2] == NULL)) {
    for (int i = 0; i < 3; i++)
      free(outs[i]);
    return strata__fail(STRATA_E_NOMEM, "%s: head: listing lockers", c->label);
  }
  char **dst[3] = {client, cookie, desc};
  for (int i = 0; i < 3; i++) {
    if (dst[i] != NULL)
      *dst[i] = outs[i];
    else
      free(outs[i]);
  }
  return 0;
}

/* Takes the lock. When it is busy but has no holder by the time the
 * lockers are listed, the holder released it between the two calls: that
 * is no reason to refuse, so try again (a few times: each retry means
 * another publisher came and went). Otherwise STRATA_E_LOCKED naming the
 * holder. */
static int take_lock(strata__publock *l) {
  for (int tries = 1;; tries++) {
    int rc = lock_call(l, 0);
    if (rc == 0)
      return 0;
    if (rc != -EBUSY && rc != -EEXIST)
      return strata__rfail(l->c, rc, STRATA__HEAD_OBJ,
                           "taking the publisher lock");
    char *desc = NULL;
    STRATA__TRY(strata__publock_holder(l->c, NULL, NULL, &desc));
    if (desc != NULL || tries == 4) {
      rc = strata__fail(STRATA_E_LOCKED, "%s: locked by %s", l->c->label,
                        desc != NULL ? desc : "a publisher that just left");
      free(desc);
      return rc;
    }
  }
}

/* Bumps the fence (cmpxattr == F, setxattr F+1) and keeps F+1. */
static int fence_bump(strata__publock *l) {
  strata__rconn *c = l->c;
  uint64_t f = 0;
  int rc = read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_FENCE, &f);
  if (rc == -ENODATA) {
    /* An empty head that a bare lock created (gc on a new remote) is set
     * up at version 0. Anything else without a fence is not ours to
     * rewrite: resetting a head that names version N to 0 would let the
     * next publish roll forward to a stale manifest.1. */
    uint64_t v = 0, size = 0;
    time_t mtime;
    int vrc = read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_VERSION, &v);
    int src = rados_stat(c->io, STRATA__HEAD_OBJ, &size, &mtime);
    if (vrc != -ENODATA || src != 0 || size != 0)
      return strata__fail(STRATA_E_CORRUPT,
                          "%s: head: no " STRATA__XATTR_FENCE
                          " xattr, yet not the empty object a bare lock "
                          "makes (%" PRIu64 " bytes%s); left as it is",
                          c->label, size,
                          vrc == -ENODATA ? "" : ", a version xattr");
    STRATA__TRY(head_init(c, false));
    rc = 0;
  }
  STRATA__TRY(rc);
  char was[21], now[21];
  strata__u64_dec20(was, f);
  strata__u64_dec20(now, f + 1);
  rados_write_op_t op = rados_create_write_op();
  rados_write_op_cmpxattr(op, STRATA__XATTR_FENCE, LIBRADOS_CMPXATTR_OP_EQ, was,
                          20);
  rados_write_op_setxattr(op, STRATA__XATTR_FENCE, now, 20);
  rc = operate_once(c, op, STRATA__HEAD_OBJ);
  if (rc == -ECANCELED)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: head: the fence moved while this process held "
                        "the publisher lock (the lock was broken)",
                        c->label);
  if (rc < 0)
    return strata__rfail(c, rc, STRATA__HEAD_OBJ, "bumping the fence");
  l->fence = f + 1;
  return 0;
}

int strata__publock_take(strata__rconn *c, strata__publock **out) {
  STRATA__TRY(head_init(c, true));
  strata__publock *l = calloc(1, sizeof *l);
  if (l == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: publisher lock", c->label);
  l->c = c;
  l->lease_s = c->cfg.lease_s != 0 ? c->cfg.lease_s : 30;
  uint8_t rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
    uint64_t t = strata__mono_ns() ^ ((uint64_t)getpid() << 32);
    memcpy(rnd, &t, sizeof t);
    memcpy(rnd + 8, &l, sizeof l < 8 ? sizeof l : 8);
  }
  size_t o = 0;
  for (size_t i = 0; i < sizeof rnd; i++)
    o += (size_t)snprintf(l->cookie + o, sizeof l->cookie - o, "%02x", rnd[i]);
  snprintf(l->cookie + o, sizeof l->cookie - o, " %s", c->whoami);
  pthread_mutex_init(&l->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cv, &ca);
  pthread_condattr_destroy(&ca);

  l->sent_ns = strata__mono_ns();
  int rc = take_lock(l);
  if (rc < 0) {
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
    return rc;
  }
  rc = fence_bump(l);
  if (rc == 0) {
    l->thread = pthread_create(&l->tid, NULL, renew_main, l) == 0;
    if (!l->thread)
      rc = strata__fail(STRATA_E_NOMEM,
                        "%s: starting the publisher lock's renewal thread",
                        c->label);
  }
  if (rc < 0) {
    strata__publock_release(l);
    return rc;
  }
  *out = l;
  return 0;
}

int strata__publock_check(const strata__publock *l) {
  strata__publock *m = (strata__publock *)(uintptr_t)l;
  pthread_mutex_lock(&m->mu);
  int lost = m->lost;
  uint64_t since = strata__mono_ns() - m->sent_ns;
  pthread_mutex_unlock(&m->mu);
  if (lost != 0)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: the publisher lock was lost (its renewal "
                        "failed: %s)",
                        l->c->label, strata_err_name(lost));
  if (since >= (uint64_t)l->lease_s * 1000000000u)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: the publisher lock expired (not renewed for "
                        "%" PRIu64 " s)",
                        l->c->label, since / 1000000000u);
  return 0;
}

int strata__publock_check_fresh(const strata__publock *l) {
  STRATA__TRY(strata__publock_check(l));
  strata__publock *m = (strata__publock *)(uintptr_t)l;
  pthread_mutex_lock(&m->mu);
  uint64_t since = strata__mono_ns() - m->sent_ns;
  pthread_mutex_unlock(&m->mu);
  if (since >= (uint64_t)l->lease_s * 500000000u)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: the publisher lock was last renewed %" PRIu64
                        " s ago, more than half its %" PRIu32
                        " s lease: stopping before another publisher may "
                        "hold it",
                        l->c->label, since / 1000000000u, l->lease_s);
  return 0;
}

uint64_t strata__publock_fence(const strata__publock *l) {
  return l->fence;
}

void strata__publock_release(strata__publock *l) {
  if (l == NULL)
    return;
  if (l->thread) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->tid, NULL);
  }
  /* -ENOENT: the lock was broken or expired; nothing to give back. */
  int rc =
      rados_unlock(l->c->io, STRATA__HEAD_OBJ, STRATA__LOCK_NAME, l->cookie);
  if (rc < 0 && rc != -ENOENT) {
    char q[STRATA__LOG_TEXT];
    strata__log(rlog(l->c), STRATA_LOG_WARN, "remote",
                "msg=\"releasing the publisher lock failed; it expires with "
                "its lease\" remote=%s error=%s",
                strata__log_quote(q, sizeof q, l->c->label),
                strata_err_name(rc));
  }
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

/* ---- aio windows --------------------------------------------------------- */

int strata__aio_run(size_t njobs, uint32_t inflight,
                    int (*start)(void *ctx, strata__aio *a),
                    int (*done)(void *ctx, strata__aio *a, int rc), void *ctx) {
  if (inflight == 0)
    inflight = 16;
  strata__aio *w = calloc(inflight, sizeof *w);
  if (w == NULL)
    return strata__fail(STRATA_E_NOMEM, "aio window of %" PRIu32, inflight);
  for (uint32_t i = 0; i < inflight; i++)
    w[i].slot = i;
  int err = 0;
  uint32_t first = 0, n = 0;
  size_t job = 0;
  /* FIFO: the oldest operation is waited for when the window is full, and
   * at the end; operations on different objects run in parallel. */
  while (n > 0 || (err == 0 && job < njobs)) {
    if (err == 0 && job < njobs && n < inflight) {
      strata__aio *a = &w[(first + n) % inflight];
      a->job = job++;
      a->wop = NULL;
      int rc = rados_aio_create_completion2(NULL, NULL, &a->comp);
      if (rc < 0) {
        err = strata__fail(rc, "creating an aio completion");
        continue;
      }
      rc = start(ctx, a);
      if (rc != 0) {
        rados_aio_release(a->comp);
        if (a->wop != NULL)
          rados_release_write_op(a->wop);
        if (rc < 0)
          err = rc;
        continue;
      }
      n++;
      continue;
    }
    strata__aio *a = &w[first];
    rados_aio_wait_for_complete(a->comp);
    int rc = rados_aio_get_return_value(a->comp);
    rados_aio_release(a->comp);
    if (a->wop != NULL)
      rados_release_write_op(a->wop);
    a->wop = NULL;
    first = (first + 1) % inflight;
    n--;
    rc = done(ctx, a, rc);
    if (rc < 0 && err == 0)
      err = rc;
  }
  free(w);
  return err;
}

/* ---- the store's files --------------------------------------------------- */

/* The files of one publish: the manifest being made and, per file (each
 * base followed by its delta files, as the manifest lists them), the
 * store's reference to it (which keeps the mapping the chunks are
 * uploaded from). */
typedef struct pubset {
  struct strata_store *s;
  strata__file **files;
  strata__manifest m;
} pubset;

static void pubset_free(pubset *p) {
  if (p->files != NULL) {
    pthread_mutex_lock(&p->s->write_mu);
    for (size_t i = 0; i < p->m.n; i++)
      strata__file_unref(p->s, p->files[i]);
    pthread_mutex_unlock(&p->s->write_mu);
  }
  free(p->files);
  strata__manifest_free(&p->m);
}

static const char *file_name(const strata__file *f) {
  const char *slash = strrchr(f->path, '/');
  return slash != NULL ? slash + 1 : f->path;
}

static int by_base_file(const void *a, const void *b) {
  return strcmp(file_name((*(strata__entry *const *)a)->file),
                file_name((*(strata__entry *const *)b)->file));
}

/* Takes a reference to every file of the current catalog, each region's
 * base followed by its delta files (oldest first), the regions sorted by
 * base file; refuses open protos (their changes are not in any file).
 * Writer mutex taken here. */
static int pubset_list(const strata__rconn *c, struct strata_store *s,
                       pubset *p) {
  /* A file whose index checksum the verifier has not yet checked may still
   * be withdrawn: publish only what the store has fully checked. */
  strata__store_await_verify(s);
  pthread_mutex_lock(&s->write_mu);
  const strata__catalog *cat =
      atomic_load_explicit(&s->catalog, memory_order_acquire);
  int rc = 0;
  size_t nfiles = 0;
  for (uint64_t i = 0; i < cat->n && rc == 0; i++) {
    const strata__entry *e = cat->by_order[i];
    if (e->overlay != NULL || e->file == NULL)
      rc = strata__fail(STRATA_E_STATE,
                        "%s: region %" PRIu64 " has an open proto; "
                        "crystallize or discard it before publishing to %s",
                        s->dir, e->id, c->label);
    else
      nfiles += 1 + (e->stack != NULL ? e->stack->n : 0);
  }
  strata__entry **order = NULL;
  if (rc == 0 && cat->n > 0) {
    order = malloc(cat->n * sizeof *order);
    p->files = calloc(nfiles, sizeof *p->files);
    p->m.regions = calloc(nfiles, sizeof *p->m.regions);
    if (order == NULL || p->files == NULL || p->m.regions == NULL)
      rc = strata__fail(STRATA_E_NOMEM, "%s: listing %" PRIu64 " regions",
                        s->dir, cat->n);
  }
  if (rc == 0 && cat->n > 0) {
    memcpy(order, cat->by_order, cat->n * sizeof *order);
    qsort(order, cat->n, sizeof *order, by_base_file);
  }
  for (uint64_t i = 0; i < cat->n && rc == 0; i++) {
    const strata__entry *e = order[i];
    uint32_t nd = e->stack != NULL ? e->stack->n : 0;
    const char *name = e->file->region->name;
    bool named = name != NULL && name[0] != '\0';
    for (uint32_t d = 0; d <= nd && rc == 0; d++) {
      strata__file *f = d == 0 ? e->file : e->stack->deltas[d - 1];
      strata__mregion *mr = &p->m.regions[p->m.n];
      mr->file = strdup(file_name(f));
      mr->name = named ? strdup(name) : NULL;
      mr->depth = d;
      if (mr->file == NULL || (named && mr->name == NULL)) {
        free(mr->file); /* not counted in m.n: freed here */
        free(mr->name);
        *mr = (strata__mregion){0};
        rc = strata__fail(STRATA_E_NOMEM, "%s: listing regions", s->dir);
        break;
      }
      f->refs++;
      p->files[p->m.n++] = f;
    }
  }
  pthread_mutex_unlock(&s->write_mu);
  free(order);
  return rc;
}

/* Hashes each file: XXH3-128 of the whole, XXH3-64 of each chunk; a
 * delta's parent is the header checksum of the file before it. */
static int pubset_hash(const strata__rconn *c, pubset *p, uint32_t cs) {
  for (size_t i = 0; i < p->m.n; i++) {
    const strata_region *r = p->files[i]->region;
    strata__mregion *mr = &p->m.regions[i];
    mr->id = p->files[i - mr->depth]->region->id;
    mr->size = r->size;
    mr->header_checksum = r->header_checksum;
    mr->index_checksum = r->index_checksum;
    strata_region_delta_info bind;
    if (mr->depth > 0) {
      /* The store served it on this chain, so it is a delta bound there. */
      if (strata_region_delta(r, &bind) != 0 || bind.depth != mr->depth)
        return strata__fail(STRATA_E_STATE,
                            "%s: %s: served as the delta of depth %" PRIu32
                            " of region %" PRIu64 ", but its header says "
                            "otherwise",
                            c->label, mr->file, mr->depth, mr->id);
      mr->parent_checksum = bind.parent_checksum;
    }
    XXH128_hash_t h = XXH3_128bits(r->base, r->size);
    strata__hex128(mr->hash, h);
    uint64_t nc = (r->size + cs - 1) / cs;
    if (nc > 999999)
      return strata__fail(STRATA_E_LIMIT,
                          "%s: %s: %" PRIu64 " chunks of %" PRIu32
                          " bytes; chunk names hold 6 digits",
                          c->label, mr->file, nc, cs);
    mr->nchunks = (uint32_t)nc;
    mr->chunks = calloc(nc > 0 ? nc : 1, sizeof *mr->chunks);
    if (mr->chunks == NULL)
      return strata__fail(STRATA_E_NOMEM, "%s: %s: chunk list", c->label,
                          mr->file);
    for (uint64_t k = 0; k < nc; k++) {
      uint64_t off = k * cs, len = r->size - off < cs ? r->size - off : cs;
      mr->chunks[k] = XXH3_64bits(r->base + off, len);
    }
  }
  return 0;
}

/* ---- chunks -------------------------------------------------------------- */

/* A flat list of every chunk of a manifest, for the aio windows. */
typedef struct chunkjobs {
  const strata__rconn *c;
  const strata__publock *lock; /* checked between uploads */
  const strata__manifest *m;
  const uint8_t *const *bases; /* per region: its mapping (uploads) */
  uint32_t *region, *index;
  bool *present;
  size_t n;
  uint64_t bytes, uploaded;
} chunkjobs;

static int chunkjobs_init(chunkjobs *j, const strata__rconn *c,
                          const strata__manifest *m) {
  memset(j, 0, sizeof *j);
  j->c = c;
  j->m = m;
  for (size_t i = 0; i < m->n; i++)
    j->n += m->regions[i].nchunks;
  size_t n = j->n > 0 ? j->n : 1;
  j->region = malloc(n * sizeof *j->region);
  j->index = malloc(n * sizeof *j->index);
  j->present = calloc(n, sizeof *j->present);
  if (j->region == NULL || j->index == NULL || j->present == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: %zu chunks", c->label, j->n);
  size_t k = 0;
  for (size_t i = 0; i < m->n; i++)
    for (uint32_t x = 0; x < m->regions[i].nchunks; x++) {
      j->region[k] = (uint32_t)i;
      j->index[k++] = x;
    }
  return 0;
}

static void chunkjobs_free(chunkjobs *j) {
  free(j->region);
  free(j->index);
  free(j->present);
}

static void chunk_name(const chunkjobs *j, size_t k, char *obj, uint64_t *len) {
  const strata__mregion *mr = &j->m->regions[j->region[k]];
  uint64_t cs = j->m->chunk_size, off = (uint64_t)j->index[k] * cs;
  strata__obj_chunk(obj, mr->hash, j->m->chunk_size, j->index[k]);
  *len = mr->size - off < cs ? mr->size - off : cs;
}

static int stat_start(void *ctx, strata__aio *a) {
  chunkjobs *j = ctx;
  char obj[STRATA__OBJ_NAME];
  uint64_t len;
  chunk_name(j, a->job, obj, &len);
  int rc = rados_aio_stat(j->c->io, obj, a->comp, &a->size, &a->mtime);
  return rc < 0 ? strata__rfail(j->c, rc, obj, "stat") : 0;
}

static int stat_done(void *ctx, strata__aio *a, int rc) {
  chunkjobs *j = ctx;
  char obj[STRATA__OBJ_NAME];
  uint64_t len;
  chunk_name(j, a->job, obj, &len);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0)
    return strata__rfail(j->c, rc, obj, "stat");
  j->present[a->job] = a->size == len;
  if (a->size != len) {
    /* Its name says its size: a chunk of another size is not ours to
     * keep (a truncated `rados put`); it is written again whole. */
    char q[STRATA__LOG_TEXT];
    strata__log(rlog(j->c), STRATA_LOG_WARN, "remote",
                "msg=\"chunk of the wrong size; writing it again\" "
                "remote=%s object=%s size=%" PRIu64 " expected=%" PRIu64,
                strata__log_quote(q, sizeof q, j->c->label), obj, a->size, len);
  }
  return 0;
}

/* Stats every chunk: j->present[k] once done. */
static int chunks_stat(chunkjobs *j) {
  return strata__aio_run(j->n, j->c->cfg.max_inflight, stat_start, stat_done,
                         j);
}

static int upload_start(void *ctx, strata__aio *a) {
  chunkjobs *j = ctx;
  if (j->present[a->job])
    return 1;
  STRATA__TRY(strata__publock_check(j->lock));
  char obj[STRATA__OBJ_NAME], x[17];
  uint64_t len;
  chunk_name(j, a->job, obj, &len);
  const strata__mregion *mr = &j->m->regions[j->region[a->job]];
  strata__hex64(x, mr->chunks[j->index[a->job]]);
  const uint8_t *src = j->bases[j->region[a->job]] +
                       (uint64_t)j->index[a->job] * j->m->chunk_size;
  /* A fresh op per operate (docs/REMOTE.md), released after completion. */
  a->wop = rados_create_write_op();
  rados_write_op_write_full(a->wop, (const char *)src, len);
  rados_write_op_setxattr(a->wop, STRATA__XATTR_XXH3, x, 16);
  int rc = rados_aio_write_op_operate(a->wop, j->c->io, a->comp, obj, NULL, 0);
  return rc < 0 ? strata__rfail(j->c, rc, obj, "uploading") : 0;
}

static int upload_done(void *ctx, strata__aio *a, int rc) {
  chunkjobs *j = ctx;
  char obj[STRATA__OBJ_NAME];
  uint64_t len;
  chunk_name(j, a->job, obj, &len);
  if (rc < 0)
    return strata__rfail(j->c, rc, obj, "uploading");
  j->bytes += len;
  j->uploaded++;
  return 0;
}

/* ---- HEAD
 * -------------------------------------------------------------------- */

/* -ECANCELED from the swap: which comparison failed, in the words of
 * docs/REMOTE.md. */
static int swap_conflict(const strata__rconn *c, uint64_t from) {
  /* The xattr alone: whoever moved it may not have written a body to
   * match, which strata__head_read() would refuse. */
  uint64_t now = 0;
  STRATA__TRY(read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_VERSION, &now));
  if (now != from)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: HEAD moved from version %" PRIu64 " to %" PRIu64
                        " while publishing; nothing was changed",
                        c->label, from, now);
  char *desc = NULL;
  STRATA__TRY(strata__publock_holder(c, NULL, NULL, &desc));
  int rc = strata__fail(STRATA_E_CONFLICT,
                        "%s: the publisher lock was lost (taken by %s) before "
                        "HEAD was swapped; nothing was changed",
                        c->label, desc != NULL ? desc : "nobody now");
  free(desc);
  return rc;
}

/* Moves HEAD from `from` to `from + 1` (docs/REMOTE.md, "Publishing N+1"). */
static int head_swap(const strata__rconn *c, const strata__publock *l,
                     uint64_t from, const char *manifest, uint64_t mx) {
  char *body = NULL;
  size_t len = 0;
  STRATA__TRY(strata__head_body(c, from + 1, manifest, mx, &body, &len));
  char v[21], f[21], v1[21];
  strata__u64_dec20(v, from);
  strata__u64_dec20(f, strata__publock_fence(l));
  strata__u64_dec20(v1, from + 1);
  rados_write_op_t op = rados_create_write_op();
  rados_write_op_cmpxattr(op, STRATA__XATTR_VERSION, LIBRADOS_CMPXATTR_OP_EQ, v,
                          20);
  rados_write_op_cmpxattr(op, STRATA__XATTR_FENCE, LIBRADOS_CMPXATTR_OP_EQ, f,
                          20);
  rados_write_op_write_full(op, body, len);
  rados_write_op_setxattr(op, STRATA__XATTR_VERSION, v1, 20);
  int rc = operate_once(c, op, STRATA__HEAD_OBJ);
  free(body);
  if (rc == -ECANCELED)
    return swap_conflict(c, from);
  if (rc == 0)
    return 0;
  /* Any other error (a timeout above all) says nothing about whether the
   * OSD applied the op: it may have, with the reply lost. The xattrs tell:
   * version N+1 under our fence can only be this swap. */
  int err = rc;
  uint64_t hv = 0, hf = 0;
  if (read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_VERSION, &hv) == 0 &&
      read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_FENCE, &hf) == 0) {
    if (hv == from + 1 && hf == strata__publock_fence(l))
      return 0; /* applied; only its reply was lost */
    if (hv == from)
      return strata__rfail(c, err, STRATA__HEAD_OBJ,
                           "swapping to version %" PRIu64
                           " (HEAD is still at %" PRIu64
                           "; nothing was changed)",
                           from + 1, from);
    return strata__rfail(c, err, STRATA__HEAD_OBJ,
                         "swapping to version %" PRIu64
                         " (HEAD is now at %" PRIu64
                         ", moved by another publisher)",
                         from + 1, hv);
  }
  return strata__rfail(c, err, STRATA__HEAD_OBJ,
                       "swapping to version %" PRIu64
                       " (whether HEAD moved is unknown: it could not be "
                       "read back; `strata remote status` tells)",
                       from + 1);
}

static void notify(const strata__rconn *c, uint64_t version) {
  if (c->cfg.flags & STRATA_REMOTE_NO_NOTIFY)
    return;
  char msg[64];
  int n = snprintf(msg, sizeof msg, "{\"version\": %" PRIu64 "}", version);
  char *reply = NULL;
  size_t rlen = 0;
  int rc = rados_notify2(c->io, STRATA__HEAD_OBJ, msg, n, PUBLISH_NOTIFY_MS,
                         &reply, &rlen);
  if (reply != NULL)
    rados_buffer_free(reply);
  if (rc < 0) {
    char q[STRATA__LOG_TEXT];
    strata__log(rlog(c), STRATA_LOG_DEBUG, "remote",
                "msg=\"notify not acknowledged by every follower; they "
                "poll\" remote=%s version=%" PRIu64 " error=%s",
                strata__log_quote(q, sizeof q, c->label), version,
                strata_err_name(rc));
  }
}

/* ---- manifests
 * ---------------------------------------------------------------- */

/* Reads and parses manifest `obj`, checking its xattr against its bytes
 * (and against `want` when nonzero). *xx gets its XXH3-64. */
static int manifest_load(const strata__rconn *c, const char *obj, uint64_t want,
                         strata__manifest *m, uint64_t *xx) {
  char *data = NULL;
  size_t len = 0;
  uint64_t attr = 0;
  STRATA__TRY(
      strata__robj_read(c, obj, STRATA__MANIFEST_MAX, &data, &len, &attr));
  uint64_t h = XXH3_64bits(data, len);
  int rc = 0;
  if (h != attr || (want != 0 && h != want))
    rc = strata__fail(STRATA_E_CHECKSUM,
                      "%s: %s: XXH3-64 of the bytes %016" PRIx64
                      ", xattr %016" PRIx64 ", HEAD %016" PRIx64,
                      c->label, obj, h, attr, want);
  else
    rc = strata__manifest_parse(data, len, obj, m);
  free(data);
  *xx = h;
  return rc;
}

static int manifest_create(const strata__rconn *c, const strata__manifest *m,
                           char *obj, uint64_t *xx) {
  char *json = NULL;
  size_t len = 0;
  STRATA__TRY(strata__manifest_emit(m, &json, &len));
  strata__obj_manifest(obj, m->version);
  *xx = XXH3_64bits(json, len);
  char x[17];
  strata__hex64(x, *xx);
  rados_write_op_t op = rados_create_write_op();
  rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
  rados_write_op_write_full(op, json, len);
  rados_write_op_setxattr(op, STRATA__XATTR_XXH3, x, 16);
  int rc = operate_once(c, op, obj);
  free(json);
  if (rc == -EEXIST)
    return strata__fail(STRATA_E_CONFLICT,
                        "%s: %s: exists already: another publisher made it "
                        "while this one held the lock; nothing was changed",
                        c->label, obj);
  return rc < 0 ? strata__rfail(c, rc, obj, "creating") : 0;
}

/* Step 2: a manifest.N+1 left by a publish that died before its swap. Whole
 * (checksum, parse, version, every chunk present): HEAD moves to it and
 * *rolled is set, with *m holding it. Otherwise it is removed. */
static int leftover(const strata__rconn *c, const strata__publock *l,
                    uint64_t n, strata__manifest *m, uint64_t *mx,
                    bool *rolled) {
  char obj[STRATA__OBJ_NAME];
  strata__obj_manifest(obj, n + 1);
  *rolled = false;
  uint64_t size;
  time_t mtime;
  int rc = rados_stat(c->io, obj, &size, &mtime);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0)
    return strata__rfail(c, rc, obj, "stat");
  rc = manifest_load(c, obj, 0, m, mx);
  if (rc == 0 && (m->version != n + 1 || m->previous != n))
    rc = strata__fail(STRATA_E_CORRUPT,
                      "%s: %s: says version %" PRIu64 " after %" PRIu64,
                      c->label, obj, m->version, m->previous);
  if (rc == 0) {
    chunkjobs j;
    rc = chunkjobs_init(&j, c, m);
    if (rc == 0)
      rc = chunks_stat(&j);
    for (size_t k = 0; k < j.n && rc == 0; k++)
      if (!j.present[k]) {
        char co[STRATA__OBJ_NAME];
        uint64_t len;
        chunk_name(&j, k, co, &len);
        rc = strata__fail(STRATA_E_CORRUPT, "%s: %s: names %s, missing",
                          c->label, obj, co);
      }
    chunkjobs_free(&j);
  }
  if (rc == 0) {
    STRATA__TRY(head_swap(c, l, n, obj, *mx));
    *rolled = true;
    char q[STRATA__LOG_TEXT];
    strata__log(rlog(c), STRATA_LOG_WARN, "remote",
                "msg=\"rolled forward a manifest left by a publish that "
                "died\" remote=%s object=%s version=%" PRIu64,
                strata__log_quote(q, sizeof q, c->label), obj, n + 1);
    return 0;
  }
  /* Timeouts and the like say nothing about the manifest: give up. */
  if (rc != STRATA_E_CORRUPT && rc != STRATA_E_CHECKSUM &&
      rc != STRATA_E_VERSION && rc != -ENOENT)
    return rc;
  char why[STRATA__LOG_TEXT], q[STRATA__LOG_TEXT];
  strata__log_quote(why, sizeof why, strata_last_error_detail());
  strata__manifest_free(m);
  memset(m, 0, sizeof *m);
  rc = rados_remove(c->io, obj);
  if (rc < 0 && rc != -ENOENT)
    return strata__rfail(c, rc, obj, "removing a partial manifest");
  strata__log(rlog(c), STRATA_LOG_WARN, "remote",
              "msg=\"removed a partial manifest left by a publish that "
              "died\" remote=%s object=%s why=%s",
              strata__log_quote(q, sizeof q, c->label), obj, why);
  return 0;
}

static bool same_files(const strata__manifest *a, const strata__manifest *b) {
  if (a->n != b->n || a->chunk_size != b->chunk_size)
    return false;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->regions[i].file, b->regions[i].file) != 0 ||
        strcmp(a->regions[i].hash, b->regions[i].hash) != 0)
      return false;
  return true;
}

static int hook(const char *step) {
  if (strata__publish_test_hook != NULL &&
      strata__publish_test_hook(step, strata__publish_test_hook_ctx) != 0)
    return strata__fail(STRATA_E_CANCELED,
                        "publish stopped after step %s "
                        "by the test hook",
                        step);
  return 0;
}

/* ---- strata_remote_publish
 * ----------------------------------------------------- */

/* What a publish did, for r->stats. */
typedef struct pubstats {
  uint64_t bytes;   /* uploaded, counted also when a later step failed */
  bool made;        /* a new version */
  uint64_t version; /* at HEAD afterwards */
} pubstats;

/* Steps 3 to 7 with the lock held and HEAD at version n, whose manifest
 * (when n > 0 and it could be read) is *prev. */
static int publish_locked(struct strata__remote *r, pubstats *ps,
                          const strata__publock *l, uint64_t n,
                          const strata__manifest *prev, uint64_t *version) {
  strata__rconn *c = r->conn;
  uint32_t cs = c->cfg.chunk_size != 0 ? c->cfg.chunk_size : 16u << 20;
  pubset p = {.s = r->store};
  int rc = pubset_list(c, r->store, &p);
  if (rc == 0)
    rc = pubset_hash(c, &p, cs);
  p.m.chunk_size = cs;
  p.m.version = n + 1;
  p.m.previous = n;
  /* Nothing changed still checks the chunks: one that gc --verify removed
   * as corrupt is uploaded again (docs/REMOTE.md, "Garbage"). */
  bool unchanged = rc == 0 && prev != NULL && same_files(prev, &p.m);
  if (rc == 0) {
    chunkjobs j;
    rc = chunkjobs_init(&j, c, &p.m);
    const uint8_t **bases = calloc(p.m.n > 0 ? p.m.n : 1, sizeof *bases);
    if (rc == 0 && bases == NULL)
      rc = strata__fail(STRATA_E_NOMEM, "%s: publishing", c->label);
    for (size_t i = 0; i < p.m.n && rc == 0; i++)
      bases[i] = p.files[i]->region->base;
    j.bases = bases;
    j.lock = l;
    if (rc == 0)
      rc = chunks_stat(&j);
    if (rc == 0)
      rc = strata__aio_run(j.n, c->cfg.max_inflight, upload_start, upload_done,
                           &j);
    /* What was uploaded counts, even when a later chunk failed. */
    ps->bytes += j.bytes;
    chunkjobs_free(&j);
    free(bases);
  }
  if (rc == 0 && unchanged) {
    char q[STRATA__LOG_TEXT];
    strata__log(rlog(c), STRATA_LOG_INFO, "remote",
                "msg=\"nothing changed; already at version %" PRIu64 "\" "
                "remote=%s",
                n, strata__log_quote(q, sizeof q, c->label));
    pubset_free(&p);
    *version = n;
    return 0;
  }
  if (rc == 0)
    rc = hook("uploaded");
  char created[32], obj[STRATA__OBJ_NAME];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  uint64_t mx = 0;
  if (rc == 0 && ((p.m.publisher = strdup(c->whoami)) == NULL ||
                  (p.m.created = strdup(created)) == NULL))
    rc = strata__fail(STRATA_E_NOMEM, "%s: manifest", c->label);
  if (rc == 0)
    rc = manifest_create(c, &p.m, obj, &mx);
  if (rc == 0)
    rc = hook("manifest");
  if (rc == 0)
    rc = strata__publock_check(l);
  if (rc == 0) {
    rc = head_swap(c, l, n, obj, mx);
    /* HEAD moved while the lock is still ours (a manual edit): the
     * manifest made for n + 1 is nobody's version; take it back so that
     * nothing was changed. If the fence moved, it is the new holder's. */
    if (rc == STRATA_E_CONFLICT && strata__publock_check(l) == 0) {
      uint64_t hv = 0, hf = 0;
      if (read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_VERSION, &hv) == 0 &&
          read_dec20(c, STRATA__HEAD_OBJ, STRATA__XATTR_FENCE, &hf) == 0 &&
          hv != n + 1 && hf == strata__publock_fence(l))
        (void)rados_remove(c->io, obj);
      /* The reads may have recorded a detail of their own: the conflict's
       * is the one to report. */
      (void)swap_conflict(c, n);
    }
  }
  if (rc == 0) {
    char q[STRATA__LOG_TEXT];
    strata__log(rlog(c), STRATA_LOG_INFO, "remote",
                "msg=\"published\" remote=%s version=%" PRIu64 " files=%zu",
                strata__log_quote(q, sizeof q, c->label), n + 1, p.m.n);
    notify(c, n + 1);
    ps->made = true;
    *version = n + 1;
  }
  pubset_free(&p);
  return rc;
}

static int publish(struct strata__remote *r, pubstats *ps, uint64_t *version) {
  strata__rconn *c = r->conn;
  strata__publock *l = NULL;
  STRATA__TRY(strata__publock_take(c, &l));
  strata__head h;
  int rc = strata__head_read(c, &h);
  if (rc == 0 && h.fence != strata__publock_fence(l))
    rc = strata__fail(STRATA_E_CONFLICT,
                      "%s: head: fence %" PRIu64 " after this publisher set "
                      "it to %" PRIu64 ": the lock was broken",
                      c->label, h.fence, strata__publock_fence(l));
  uint64_t n = h.version, mx = 0, out = 0;
  strata__manifest prev;
  memset(&prev, 0, sizeof prev);
  bool have_prev = false, rolled = false;
  if (rc == 0)
    rc = leftover(c, l, n, &prev, &mx, &rolled);
  if (rc == 0 && rolled) {
    notify(c, n + 1);
    n++;
    have_prev = true;
  } else if (rc == 0 && n > 0) {
    /* HEAD's manifest only tells whether anything changed: one that cannot
     * be read just means publishing everything again (chunks present are
     * not uploaded twice). */
    int mrc = manifest_load(c, h.manifest, h.manifest_xxh3, &prev, &mx);
    have_prev = mrc == 0;
    if (mrc < 0 && mrc != STRATA_E_CORRUPT && mrc != STRATA_E_CHECKSUM &&
        mrc != STRATA_E_VERSION && mrc != -ENOENT)
      rc = mrc;
  }
  if (rc == 0)
    rc = publish_locked(r, ps, l, n, have_prev ? &prev : NULL, &out);
  strata__manifest_free(&prev);
  strata__publock_release(l);
  if (rc == 0) {
    ps->version = out;
    if (version != NULL)
      *version = out;
  }
  return rc;
}

int strata__remote_publish(struct strata__remote *r, uint64_t *version) {
  uint64_t t0 = strata__mono_ns();
  pubstats ps = {0};
  int rc = publish(r, &ps, version);
  /* r->stats as remote.c's helpers would update them (note_failure,
   * note_success, add, set_versions), written here because calling them
   * would make remote.c and this file call each other, a cycle that
   * tools/check_layers.py refuses (remote.c calls strata__remote_publish). */
  pthread_mutex_lock(&r->stats_mu);
  strata_remote_stats *st = &r->stats;
  st->bytes_uploaded += ps.bytes;
  st->publishes += ps.made;
  if (rc < 0) {
    snprintf(st->last_error, sizeof st->last_error, "%s",
             strata_last_error_detail());
    st->sync_failures++;
  } else {
    st->last_error[0] = '\0';
    st->last_sync_ms = (strata__mono_ns() - t0) / 1000000u;
    st->last_success_unix_ms = strata__unix_ms();
    st->version_served = ps.version;
    if (ps.version > st->version_seen)
      st->version_seen = ps.version;
  }
  pthread_mutex_unlock(&r->stats_mu);
  return rc;
}
