/* The follower (docs/REMOTE.md, "Followers"): a store whose directory is a
 * local copy of POOL/NAME. A sync reads HEAD and, when it names a version
 * newer than the one served, reads that version's manifest, fetches the
 * files whose bytes are not here yet through the writer's file publisher
 * (src/writer/pubfile.h: the same temporary file, fsync and rename as
 * region-builder's), checks every chunk, the whole file and the region
 * itself, and then moves the store to the new version with one catalog
 * swap (strata__store_swap_files). A background thread syncs whenever a
 * watch on HEAD fires and at least every poll_ms.
 *
 * STORE/.strata-remote/state records, through the same publisher (temp,
 * fsync, rename, directory fsync), which version the directory holds and
 * each file's hash, so that a restart reuses the files and a follower
 * killed in the middle of a swap finishes it before it serves anything.
 *
 * Locking: every sync runs under the remote's op_mu, which also guards the
 * follower's served version and file table (`served`, `local`, `between`).
 * The thread's own flags are under `mu`, which the watch callbacks take
 * (librados runs them on its own threads) and which is never held across a
 * sync. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hash.h"
#include "remote/remote_internal.h"
#include "store/store_internal.h"
#include "writer/pubfile.h"

#define STATE_DIR ".strata-remote"
#define STATE_FILE "state"
/* Largest state file read back: a file name (NAME_MAX) and a hash per
 * region, for far more regions than a store holds. */
#define STATE_MAX (64u << 20)
/* How long the open waits between two sync attempts while it has no whole
 * local copy (bounded by open_timeout_ms). */
#define OPEN_RETRY_MS 250u

/* A local file and the XXH3-128 of its bytes (32 lowercase hex). */
typedef struct lfile {
  char *file;
  char hash[33];
} lfile;

typedef struct lset {
  lfile *v;
  size_t n;
} lset;

typedef struct strata__follower strata__follower;

struct strata__follower {
  struct strata__remote *r;
  strata__rconn *c;
  char *dir;       /* the store's directory */
  char *state_dir; /* STORE/.strata-remote */

  /* Under r->op_mu. */
  uint64_t served; /* the version the catalog holds */
  lset local;      /* its files and their hashes */
  /* The directory may hold files that `local` does not describe (a swap
   * that stopped half-way, no state, a state that did not parse): hash
   * what is there before reusing anything, and sync even when HEAD is not
   * newer than `served`. */
  bool between;
  bool state_stale; /* the state file lags behind `served` */

  /* The sync thread; under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started, stop, wake, watch_lost;
  bool watching;        /* thread only */
  uint64_t warned_head; /* op_mu: the older HEAD last warned about */
  uint64_t pin_ns;      /* op_mu: when the pin was last written (mono) */
  uint64_t watch_cookie;
};

/* ---- small helpers ------------------------------------------------------- */

static strata__logger *logger(const strata__follower *f) {
  static strata__logger fallback = {.level = STRATA_LOG_WARN};
  return f->c->log != NULL ? f->c->log : &fallback;
}

/* A value for a log line (strata__log_quote: quoted and escaped when it
 * needs it, so that a detail or path cannot forge a line), in one of two
 * buffers of the calling thread: at most two per line. */
static const char *q(const char *s) {
  static _Thread_local char buf[2][1024];
  static _Thread_local unsigned next;
  return strata__log_quote(buf[next++ % 2], sizeof buf[0], s);
}

static void lset_free(lset *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].file);
  free(s->v);
  *s = (lset){0};
}

static int lset_add(lset *s, const char *file, const char *hash) {
  lfile *v = realloc(s->v, (s->n + 1) * sizeof *v);
  if (v == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", file);
  s->v = v;
  char *copy = strdup(file);
  if (copy == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", file);
  s->v[s->n].file = copy;
  memcpy(s->v[s->n].hash, hash, 33);
  s->n++;
  return 0;
}

/* Whether `file` is here with these bytes. Linear: a store holds tens to
 * thousands of regions, and a sync does this once per region. */
static bool lset_has(const lset *s, const char *file, const char *hash) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].file, file) == 0 && strcmp(s->v[i].hash, hash) == 0)
      return true;
  return false;
}

static bool is_hash(const char *s) {
  if (strlen(s) != 32)
    return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

/* XXH3-128 of a local file's bytes. */
static int hash_file(const char *dir, const char *name, char out[33]) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return strata__fail_errno(errno, "%s: opening to hash it", path);
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = strata__fail(STRATA_E_STATE, "%s: not a regular file", path);
  } else if (st.st_size == 0) {
    strata__hex128(out, XXH3_128bits("", 0));
  } else {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      rc = strata__fail_errno(errno, "%s: mapping to hash it", path);
    } else {
      (void)madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
      strata__hex128(out, XXH3_128bits(p, (size_t)st.st_size));
      munmap(p, (size_t)st.st_size);
    }
  }
  close(fd);
  return rc;
}

/* The directory's region files and delta files, one malloc'd list of
 * malloc'd names (strata__store_names_free). */
static int list_files(strata__follower *f, char ***names, size_t *n) {
  char **r = NULL, **d = NULL;
  size_t nr = 0, nd = 0;
  STRATA__TRY(strata__store_list(f->r->store, false, &r, &nr));
  int rc = strata__store_list_deltas(f->r->store, &d, &nd);
  char **v = rc == 0 ? realloc(r, (nr + nd + 1) * sizeof *v) : NULL;
  if (rc == 0 && v == NULL)
    rc = strata__fail(STRATA_E_NOMEM, "%s: listing", f->dir);
  if (rc != 0) {
    strata__store_names_free(r, nr);
    strata__store_names_free(d, nd);
    return rc;
  }
  if (nd > 0)
    memcpy(v + nr, d, nd * sizeof *v);
  free(d); /* the names moved to v */
  *names = v;
  *n = nr + nd;
  return 0;
}

/* Unlinks the directory's region and delta files that `keep` does not
 * list. Their mappings stay valid until the snapshots that hold them end
 * (the store's grace period), as for any file a catalog swap dropped. */
static void unlink_unlisted(strata__follower *f, const lset *keep) {
  char **names = NULL;
  size_t n = 0;
  if (list_files(f, &names, &n) != 0) {
    strata__log(logger(f), STRATA_LOG_WARN, "remote",
                "msg=\"cannot list the store to remove old files\" "
                "remote=%s detail=%s",
                f->c->label, q(strata_last_error_detail()));
    return;
  }
  for (size_t i = 0; i < n; i++) {
    bool listed = false;
    for (size_t j = 0; j < keep->n && !listed; j++)
      listed = strcmp(keep->v[j].file, names[i]) == 0;
    if (listed)
      continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
    if (unlink(path) != 0 && errno != ENOENT)
      strata__log(logger(f), STRATA_LOG_WARN, "remote",
                  "msg=\"cannot remove a file the version served does not "
                  "list\" remote=%s file=%s errno=%d",
                  f->c->label, q(names[i]), errno);
  }
  strata__store_names_free(names, n);
}

/* ---- STORE/.strata-remote/state ------------------------------------------ */

/* Writes the state through the file publisher: the file is whole or the
 * previous one stays. switching: 0 for none. */
static int state_write(strata__follower *f, uint64_t version,
                       uint64_t switching, const lset *files) {
  json_t *fo = json_object();
  json_t *doc = json_pack(
      "{s:i, s:s, s:I, s:o, s:o}", "format", STRATA__REMOTE_FORMAT, "remote",
      f->c->label, "version", (json_int_t)version, "switching_to",
      switching ? json_integer((json_int_t)switching) : json_null(), "files",
      json_incref(fo));
  bool ok = doc != NULL && fo != NULL;
  for (size_t i = 0; ok && i < files->n; i++)
    ok = json_object_set_new(fo, files->v[i].file,
                             json_string(files->v[i].hash)) == 0;
  json_decref(fo);
  char *text =
      ok ? json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
  json_decref(doc);
  if (text == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s/%s: building the state",
                        f->state_dir, STATE_FILE);
  strata__pubfile *pf = NULL;
  int rc = strata__pubfile_open(f->state_dir, STATE_FILE, &pf);
  if (rc == 0)
    rc = strata__pubfile_write_at(pf, text, strlen(text), 0);
  if (rc == 0)
    rc = strata__pubfile_prepare(pf, strlen(text), false, NULL);
  if (rc == 0)
    rc = strata__pubfile_publish(pf);
  strata__pubfile_abort(pf);
  free(text);
  return rc;
}

/* What the state file says. */
typedef enum state_kind {
  STATE_NONE,      /* no state file */
  STATE_SERVING,   /* "serving N": files are exactly N's */
  STATE_SWITCHING, /* "switching to M": a mixture may be here */
  STATE_BAD,       /* unreadable: rebuild it from the files */
} state_kind;

static state_kind state_bad(strata__follower *f, const char *path,
                            const char *why) {
  strata__log(logger(f), STRATA_LOG_WARN, "remote",
              "msg=\"the follower's state is unusable; the files will be "
              "hashed again\" file=%s why=%s",
              q(path), q(why));
  return STATE_BAD;
}

static state_kind state_read(strata__follower *f, uint64_t *version,
                             uint64_t *switching, lset *files) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", f->state_dir, STATE_FILE);
  json_error_t err;
  FILE *fp = fopen(path, "re");
  if (fp == NULL)
    return errno == ENOENT ? STATE_NONE : state_bad(f, path, strerror(errno));
  json_t *doc = json_loadf(fp, JSON_REJECT_DUPLICATES, &err);
  fclose(fp);
  if (doc == NULL)
    return state_bad(f, path, err.text);
  json_t *fmt = json_object_get(doc, "format");
  json_t *remote = json_object_get(doc, "remote");
  json_t *ver = json_object_get(doc, "version");
  json_t *sw = json_object_get(doc, "switching_to");
  json_t *fo = json_object_get(doc, "files");
  const char *why = NULL;
  if (!json_is_integer(fmt) || json_integer_value(fmt) != STRATA__REMOTE_FORMAT)
    why = "format is not 1";
  else if (!json_is_string(remote) ||
           strcmp(json_string_value(remote), f->c->label) != 0)
    why = "it is the state of another remote";
  else if (!json_is_integer(ver) || json_integer_value(ver) < 0)
    why = "version is not a count";
  else if (!(json_is_null(sw) ||
             (json_is_integer(sw) && json_integer_value(sw) > 0)))
    why = "switching_to is neither null nor a version";
  else if (!json_is_object(fo))
    why = "files is not an object";
  const char *file;
  json_t *h;
  json_object_foreach(fo, file, h) {
    if (why != NULL)
      break;
    if (!(strata__store_is_region_name(file) ||
          strata__store_is_delta_name(file)) ||
        strchr(file, '/') != NULL || !json_is_string(h) ||
        !is_hash(json_string_value(h)))
      why = "a file entry is not NAME.region or NAME.delta: 32 hex digits";
    else if (lset_add(files, file, json_string_value(h)) != 0)
      why = "out of memory";
  }
  state_kind k = STATE_BAD;
  if (why == NULL) {
    *version = (uint64_t)json_integer_value(ver);
    *switching = json_is_null(sw) ? 0 : (uint64_t)json_integer_value(sw);
    k = *switching ? STATE_SWITCHING : STATE_SERVING;
  } else {
    lset_free(files);
    state_bad(f, path, why);
  }
  json_decref(doc);
  return k;
}

/* The catalog becomes exactly these files. */
static int swap_to(strata__follower *f, const lset *files) {
  const char **names = calloc(files->n + 1, sizeof *names);
  if (names == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: swapping the catalog", f->dir);
  for (size_t i = 0; i < files->n; i++)
    names[i] = files->v[i].file;
  int rc = strata__store_swap_files(f->r->store, names, files->n);
  free(names);
  return rc;
}

/* pin.NODE: the versions this node needs kept (gc reads it). fetching: 0
 * for none. */
static int pin_write(strata__follower *f, uint64_t serving, uint64_t fetching) {
  char obj[STRATA__OBJ_NAME], body[128];
  strata__obj_pin(obj, f->c->cfg.node);
  if (fetching)
    snprintf(body, sizeof body,
             "{\"serving\": %" PRIu64 ", \"fetching\": %" PRIu64 "}", serving,
             fetching);
  else
    snprintf(body, sizeof body,
             "{\"serving\": %" PRIu64 ", \"fetching\": null}", serving);
  int rc = rados_write_full(f->c->io, obj, body, strlen(body));
  if (rc == 0)
    f->pin_ns = strata__mono_ns();
  return rc < 0 ? strata__rfail(f->c, rc, obj, "writing the pin") : 0;
}

/* gc keeps the version a pin names for an hour after the pin was written
 * (docs/REMOTE.md, "Garbage"); a follower that stays on one version
 * rewrites its pin every half hour so that it stays listed and kept. */
#define PIN_REFRESH_NS (30ull * 60 * 1000000000)

/* ---- fetching the files of a version ---------------------------------------
 *
 * One window of at most max_inflight chunk reads runs over the chunks of
 * all the files a sync fetches, file after file, so that it stays full
 * across the files' boundaries; and a file whose chunks are all in and
 * whose XXH3-128 matches is prepared (fsync, validation, full verify) by a
 * second thread, the preparer, while the window goes on with the next
 * files. The slot buffers are allocated once per sync.
 *
 * Before, each file had a window of its own that drained at its end, its
 * fsync and verify ran with no read in flight, and its slot buffers were
 * allocated (and so faulted in and zeroed by the kernel) for it alone.
 * On this project's 2-core machine with a one-node memstore cluster, a
 * pull of 500 MiB in 5 regions (16 MiB chunks) went from 2.25-3.16 s
 * (median 2.38) to 1.47-1.96 s (median 1.74), five runs each, alternated;
 * tools/bench/remote_bench.sh 512 (10 regions) from 3.19-3.79 s to
 * 1.69-2.49 s. Two more ideas were measured and left out: reading chunks
 * straight into a MAP_SHARED mapping of the temporary file (saving the
 * pwrite copy) was no faster, the page cache's pages then being faulted
 * and zeroed one by one, and a write through the mapping can raise
 * SIGBUS where a pwrite returns ENOSPC; and huge-page slot buffers made
 * no difference once the buffers were reused.
 *
 * Memory: max_inflight slot buffers of chunk_size bytes (less when every
 * file fetched is smaller than a chunk), whatever the number of files, and
 * never more than SLOTS_MAX_BYTES in all (a manifest of 64 MiB chunks
 * would otherwise make the default window 1 GiB); the fetched files
 * themselves are in the page cache. */
#define SLOTS_MAX_BYTES ((size_t)256 << 20)

/* What went wrong with a fetch of one file, for the ERROR line. */
typedef struct fetch_err {
  char obj[STRATA__OBJ_NAME + 2];
  char why[384];
  bool final; /* a chunk stayed bad through every re-read: no refetch */
} fetch_err;

/* A file the sync fetches. The fetching thread owns it, except from its
 * hand-over to the preparer until the preparer's result is collected
 * (through the preparer's mutex), when pf, rc, fe and detail are the
 * preparer's. */
typedef struct ffile {
  const strata__mregion *g;
  strata__pubfile **out; /* where the prepared file goes */
  strata__pubfile *pf;   /* the current fetch's temporary file */
  XXH3_state_t *xs;      /* its XXH3-128 so far, chunks taken in order */
  uint32_t fetches;      /* fetches started */
  int rc;                /* the preparer's result */
  fetch_err fe;
  char detail[1024];  /* the preparer's error detail, when rc != 0 */
  struct ffile *next; /* on a queue */
} ffile;

typedef struct fqueue {
  ffile *head, *tail;
} fqueue;

static void fq_push(fqueue *q, ffile *x) {
  x->next = NULL;
  if (q->tail != NULL)
    q->tail->next = x;
  else
    q->head = x;
  q->tail = x;
}

static ffile *fq_pop(fqueue *q) {
  ffile *x = q->head;
  if (x != NULL && (q->head = x->next) == NULL)
    q->tail = NULL;
  return x;
}

/* The preparer: a thread that prepares the files handed to it, in order. */
typedef struct preparer {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* work queued, a result ready, or stop */
  pthread_t thread;
  bool started;
  bool stop;      /* under mu: no more work will come */
  fqueue pending; /* under mu */
  fqueue done;    /* under mu: results to collect */
  size_t given;   /* fetching thread only: handed over, not yet collected */
} preparer;

/* One chunk read in flight. */
typedef struct slot {
  rados_completion_t c;
  char *buf;
  ffile *file;
  uint32_t index;
} slot;

/* A sync's fetch: the files, the window over their chunks, the preparer. */
typedef struct fetcher {
  strata__follower *f;
  const strata__manifest *m;
  ffile *files;
  size_t nfiles;
  fqueue queue;      /* files whose next fetch has not started */
  ffile *cur;        /* the file whose chunks are being issued */
  uint32_t cur_next; /* its next chunk to issue */
  slot *s;
  uint32_t nslots, head, active; /* the window: a ring of slots */
  preparer p;
} fetcher;

static uint32_t chunk_len(const strata__manifest *m, const strata__mregion *g,
                          uint32_t i) {
  uint64_t off = (uint64_t)i * m->chunk_size;
  uint64_t left = g->size - off;
  return left < m->chunk_size ? (uint32_t)left : m->chunk_size;
}

static bool chunk_good(const strata__mregion *g, uint32_t i, const char *buf,
                       int got, uint32_t want, char *why, size_t whylen) {
  if (got != (int)want) {
    snprintf(why, whylen, "short read: %d of %" PRIu32 " bytes", got, want);
    return false;
  }
  uint64_t x = XXH3_64bits(buf, want);
  if (x != g->chunks[i]) {
    snprintf(why, whylen,
             "checksum mismatch: XXH3-64 %016" PRIx64
             ", the manifest says %016" PRIx64,
             x, g->chunks[i]);
    return false;
  }
  return true;
}

/* Reads chunk i again, synchronously, until its bytes match or `tries`
 * reads in all failed. Re-reads are rare: a reply cut short, or a chunk
 * that is corrupt in the cluster (then every read fails alike). */
static int reread(strata__follower *f, const strata__manifest *m,
                  const strata__mregion *g, uint32_t i, char *buf, int got,
                  fetch_err *fe) {
  uint32_t want = chunk_len(m, g, i);
  uint32_t tries = f->c->cfg.fetch_retries;
  strata__obj_chunk(fe->obj, g->hash, m->chunk_size, i);
  for (uint32_t t = 1;; t++) {
    if (got < 0) /* -ENOENT included: the caller restarts from HEAD */
      return strata__rfail(f->c, got, fe->obj, "reading a chunk");
    if (chunk_good(g, i, buf, got, want, fe->why, sizeof fe->why))
      return 0;
    if (t >= tries) {
      fe->final = true;
      return STRATA_E_CHECKSUM;
    }
    got = rados_read(f->c->io, fe->obj, buf, want, 0);
  }
}

/* The file as the manifest describes it: its header and index checksums
 * and region id, and for a delta file its binding (docs/FORMAT.md, "Delta
 * files"): the parent and base checksums those of the files below it in
 * the manifest's list (g - 1 and the base, g - depth: the list is
 * contiguous), the depth its place. Those files' own checksums are
 * checked when they are fetched (or were, with the same hash), so the
 * stack the swap serves is the one the publisher served. */
static int check_listed(const strata_region *r, const strata__mregion *g,
                        char *why, size_t whylen) {
  strata_region_info info;
  strata_region_info_get(r, &info);
  if (info.header_checksum != g->header_checksum ||
      info.index_checksum != g->index_checksum || info.id != g->id) {
    snprintf(why, whylen,
             "header checksum %016" PRIx64 ", index checksum %016" PRIx64
             ", region id %" PRIu64 "; the manifest says %016" PRIx64
             ", %016" PRIx64 ", %" PRIu64,
             info.header_checksum, info.index_checksum, info.id,
             g->header_checksum, g->index_checksum, g->id);
    return strata__fail(STRATA_E_CORRUPT, "%s: %s", g->file, why);
  }
  strata_region_delta_info b = {0};
  bool delta = strata_region_delta(r, &b) == 0;
  if (!delta && g->depth == 0)
    return 0;
  const strata__mregion *base = g - g->depth;
  if (delta && g->depth > 0 && b.depth == g->depth &&
      b.parent_checksum == (g - 1)->header_checksum &&
      b.base_checksum == base->header_checksum)
    return 0;
  if (!delta || g->depth == 0)
    snprintf(why, whylen, "it is %s delta file, the manifest lists it as %s",
             delta ? "a" : "not a", delta ? "a base" : "one");
  else
    snprintf(why, whylen,
             "delta binding: depth %" PRIu32 ", parent %016" PRIx64
             ", base %016" PRIx64 "; the manifest puts it at depth %" PRIu32
             " over %s (%016" PRIx64 ") of base %s (%016" PRIx64 ")",
             b.depth, b.parent_checksum, b.base_checksum, g->depth,
             (g - 1)->file, (g - 1)->header_checksum, base->file,
             base->header_checksum);
  return strata__fail(STRATA_E_CORRUPT, "%s: %s", g->file, why);
}

/* The preparer's work on one file: the file publisher's prepare (fsync,
 * the region opened and validated), the full verify, and the checks
 * against the manifest. */
static int prepare_file(ffile *x) {
  strata_region *kept = NULL;
  int rc = strata__pubfile_prepare(x->pf, x->g->size, true, &kept);
  if (rc != 0) {
    snprintf(x->fe.why, sizeof x->fe.why, "%s", strata_last_error_detail());
  } else {
    uint64_t bad = 0;
    rc = strata_region_verify(kept, &bad);
    if (rc != 0)
      snprintf(x->fe.why, sizeof x->fe.why, "verify: %s",
               strata_last_error_detail());
    else
      rc = check_listed(kept, x->g, x->fe.why, sizeof x->fe.why);
  }
  if (rc != 0)
    snprintf(x->detail, sizeof x->detail, "%s", strata_last_error_detail());
  strata_region_close(kept);
  return rc;
}

static void *preparer_run(void *arg) {
  preparer *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    ffile *x = fq_pop(&p->pending);
    if (x == NULL) {
      if (p->stop)
        break;
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    pthread_mutex_unlock(&p->mu);
    x->rc = prepare_file(x);
    pthread_mutex_lock(&p->mu);
    fq_push(&p->done, x);
    pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Stops the preparer after the file it is on; files it has not begun are
 * dropped (their temporary files are the caller's to abort). */
static void preparer_stop(preparer *p) {
  if (!p->started)
    return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  p->pending = (fqueue){0};
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  p->started = false;
}

/* A file's fault, worth fetching again (rather than the cluster's). */
static bool file_fault(int rc) {
  return rc == STRATA_E_CHECKSUM || rc == STRATA_E_CORRUPT ||
         rc == STRATA_E_BAD_MAGIC || rc == STRATA_E_VERSION ||
         rc == STRATA_E_BOUNDS || rc == STRATA_E_DUPLICATE;
}

/* The sync's error for a file that failed its checks fetch after fetch. */
static int fetch_failed(fetcher *x, ffile *ff, int rc) {
  strata__follower *f = x->f;
  uint32_t n = ff->fe.final ? f->c->cfg.fetch_retries : ff->fetches;
  rc = strata__fail(rc,
                    "%s: version %" PRIu64 ": %s (%s): %s after %" PRIu32
                    " fetches; still serving version %" PRIu64,
                    f->c->label, x->m->version, ff->g->file, ff->fe.obj,
                    ff->fe.why, n, f->served);
  strata__log(logger(f), STRATA_LOG_ERROR, "remote", "msg=%s",
              q(strata_last_error_detail()));
  return rc;
}

/* A fetch of ff failed with rc after all its chunks were taken (its file
 * is discarded): fetch it again at the end of the queue while fetches
 * remain, else fail the sync. */
static int refetch(fetcher *x, ffile *ff, int rc) {
  strata__follower *f = x->f;
  strata__pubfile_abort(ff->pf);
  ff->pf = NULL;
  if (ff->fe.final || ff->fetches >= f->c->cfg.fetch_retries)
    return fetch_failed(x, ff, rc);
  strata__log(logger(f), STRATA_LOG_WARN, "remote",
              "msg=\"a fetched file failed its checks; fetching it again\" "
              "remote=%s version=%" PRIu64 " file=%s object=%s why=%s",
              f->c->label, x->m->version, q(ff->g->file), ff->fe.obj,
              q(ff->fe.why));
  fq_push(&x->queue, ff);
  return 0;
}

/* Takes the preparer's results: a prepared file goes to its place, a bad
 * one is fetched again or fails the sync, as does an error of the system
 * (its detail recorded again on this thread). wait: until at least one
 * result came, unless none is due. */
static int collect(fetcher *x, bool wait) {
  preparer *p = &x->p;
  pthread_mutex_lock(&p->mu);
  while (wait && p->given > 0 && p->done.head == NULL)
    pthread_cond_wait(&p->cv, &p->mu);
  fqueue got = p->done;
  p->done = (fqueue){0};
  pthread_mutex_unlock(&p->mu);
  int rc = 0;
  for (ffile *ff; (ff = fq_pop(&got)) != NULL;) {
    p->given--;
    if (ff->rc == 0) {
      *ff->out = ff->pf;
      ff->pf = NULL;
    } else if (rc == 0 && file_fault(ff->rc)) {
      rc = refetch(x, ff, ff->rc);
    } else if (rc == 0) {
      rc = strata__fail(ff->rc, "%s", ff->detail);
    }
  }
  return rc;
}

/* All chunks of ff are in: its XXH3-128, then the preparer's part. */
static int fetched(fetcher *x, ffile *ff) {
  const strata__mregion *g = ff->g;
  char got[33];
  strata__hex128(got, XXH3_128bits_digest(ff->xs));
  snprintf(ff->fe.obj, sizeof ff->fe.obj, "chunk.%s.%08" PRIx32 ".*", g->hash,
           x->m->chunk_size);
  if (strcmp(got, g->hash) != 0) {
    snprintf(ff->fe.why, sizeof ff->fe.why,
             "file hash mismatch: XXH3-128 %s, the manifest says %s", got,
             g->hash);
    return refetch(x, ff, STRATA_E_CHECKSUM);
  }
  preparer *p = &x->p;
  pthread_mutex_lock(&p->mu);
  fq_push(&p->pending, ff);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  p->given++;
  return 0;
}

/* Begins a fetch of ff: its temporary file and hash state. */
static int fetch_begin(fetcher *x, ffile *ff) {
  ff->fetches++;
  ff->fe = (fetch_err){0};
  if (ff->xs == NULL && (ff->xs = XXH3_createState()) == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: fetching", ff->g->file);
  XXH3_128bits_reset(ff->xs);
  return strata__pubfile_open(x->f->dir, ff->g->file, &ff->pf);
}

/* Fills the window with chunk reads, file after file. */
static int issue(fetcher *x) {
  const strata__manifest *m = x->m;
  while (x->active < x->nslots) {
    if (x->cur == NULL) {
      ffile *ff = fq_pop(&x->queue);
      if (ff == NULL)
        return 0;
      STRATA__TRY(fetch_begin(x, ff));
      if (ff->g->nchunks == 0) { /* nothing to read: straight to the checks */
        STRATA__TRY(fetched(x, ff));
        continue;
      }
      x->cur = ff;
      x->cur_next = 0;
    }
    slot *sl = &x->s[(x->head + x->active) % x->nslots];
    const strata__mregion *g = x->cur->g;
    char obj[STRATA__OBJ_NAME];
    strata__obj_chunk(obj, g->hash, m->chunk_size, x->cur_next);
    int r = rados_aio_create_completion2(NULL, NULL, &sl->c);
    if (r == 0) {
      r = rados_aio_read(x->f->c->io, obj, sl->c, sl->buf,
                         chunk_len(m, g, x->cur_next), 0);
      if (r < 0)
        rados_aio_release(sl->c);
    }
    if (r < 0)
      return strata__rfail(x->f->c, r, obj, "starting a chunk read");
    sl->file = x->cur;
    sl->index = x->cur_next;
    x->active++;
    if (++x->cur_next == g->nchunks)
      x->cur = NULL;
  }
  return 0;
}

/* Takes the oldest read of the window: checked (and re-read while bad),
 * written at its offset and hashed, in index order within its file. */
static int take(fetcher *x) {
  strata__follower *f = x->f;
  const strata__manifest *m = x->m;
  slot *sl = &x->s[x->head];
  rados_aio_wait_for_complete(sl->c);
  int got = rados_aio_get_return_value(sl->c);
  rados_aio_release(sl->c);
  x->head = (x->head + 1) % x->nslots;
  x->active--;
  ffile *ff = sl->file;
  uint32_t want = chunk_len(m, ff->g, sl->index);
  int rc = reread(f, m, ff->g, sl->index, sl->buf, got, &ff->fe);
  if (rc != 0) /* a chunk bad through every re-read is as bad as K fetches */
    return ff->fe.final ? fetch_failed(x, ff, rc) : rc;
  STRATA__TRY(strata__pubfile_write_at(ff->pf, sl->buf, want,
                                       (uint64_t)sl->index * m->chunk_size));
  XXH3_128bits_update(ff->xs, sl->buf, want);
  strata__remote_add(f->r, &f->r->stats.bytes_fetched, want);
  return sl->index + 1 == ff->g->nchunks ? fetched(x, ff) : 0;
}

static int fetcher_init(fetcher *x) {
  preparer *p = &x->p;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  uint64_t chunks = 0, largest = 0;
  for (size_t i = 0; i < x->nfiles; i++) {
    chunks += x->files[i].g->nchunks;
    if (x->files[i].g->size > largest)
      largest = x->files[i].g->size;
  }
  size_t buflen =
      largest < x->m->chunk_size ? (size_t)largest : x->m->chunk_size;
  if (buflen == 0)
    buflen = 1;
  /* The manifest chooses the chunk size (up to 64 MiB): the window is
   * held to SLOTS_MAX_BYTES of buffers whatever it says. */
  uint32_t n = x->f->c->cfg.max_inflight;
  size_t cap = SLOTS_MAX_BYTES / buflen;
  if (n > cap)
    n = cap > 0 ? (uint32_t)cap : 1;
  x->nslots = chunks < n ? (uint32_t)chunks : n;
  if (x->nslots == 0)
    x->nslots = 1; /* files of no bytes go through the window's loop too */
  x->s = calloc(x->nslots, sizeof *x->s);
  STRATA__FAIL_IF(x->s == NULL, STRATA_E_NOMEM, "%s: fetching", x->f->c->label);
  for (uint32_t k = 0; k < x->nslots; k++)
    STRATA__FAIL_IF((x->s[k].buf = malloc(buflen)) == NULL, STRATA_E_NOMEM,
                    "%s: fetching", x->f->c->label);
  int e = pthread_create(&p->thread, NULL, preparer_run, p);
  if (e != 0)
    return strata__fail_errno(e, "%s: starting the fetch's preparer thread",
                              x->f->c->label);
  p->started = true;
  return 0;
}

/* Waits for every read still in flight (their buffers are about to go),
 * stops the preparer and discards every file not handed out prepared. */
static void fetcher_free(fetcher *x) {
  for (uint32_t k = 0; k < x->active; k++) {
    slot *sl = &x->s[(x->head + k) % x->nslots];
    rados_aio_wait_for_complete(sl->c);
    rados_aio_release(sl->c);
  }
  preparer_stop(&x->p);
  pthread_cond_destroy(&x->p.cv);
  pthread_mutex_destroy(&x->p.mu);
  for (uint32_t k = 0; x->s != NULL && k < x->nslots; k++)
    free(x->s[k].buf);
  free(x->s);
  for (size_t i = 0; i < x->nfiles; i++) {
    strata__pubfile_abort(x->files[i].pf);
    XXH3_freeState(x->files[i].xs);
  }
  free(x->files);
}

/* Fetches the regions of m that need[] marks, each into a prepared file
 * at prepared[i] (the caller's to publish or abort). A file that fails its
 * checks is fetched again, up to fetch_retries fetches in all. */
static bool stopping(strata__follower *f) {
  pthread_mutex_lock(&f->mu);
  bool stop = f->stop;
  pthread_mutex_unlock(&f->mu);
  return stop;
}

static int fetch_files(strata__follower *f, const strata__manifest *m,
                       const bool *need, strata__pubfile **prepared) {
  fetcher x = {.f = f, .m = m};
  for (size_t i = 0; i < m->n; i++)
    x.nfiles += need[i];
  if (x.nfiles == 0)
    return 0;
  x.files = calloc(x.nfiles, sizeof *x.files);
  if (x.files == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: fetching", f->c->label);
  for (size_t i = 0, k = 0; i < m->n; i++)
    if (need[i]) {
      x.files[k] = (ffile){.g = &m->regions[i], .out = &prepared[i]};
      fq_push(&x.queue, &x.files[k++]);
    }
  int rc = fetcher_init(&x);
  while (rc == 0) {
    /* A store that closes stops its follower's thread: it does not wait
     * for the rest of a fetch (nothing of it is served; the fetched files
     * are unnamed, or the writer's temporary files). */
    if (stopping(f)) {
      rc = strata__fail(STRATA_E_CANCELED,
                        "%s: version %" PRIu64
                        ": the fetch was stopped (the store is closing)",
                        f->c->label, m->version);
      break;
    }
    rc = issue(&x);
    if (rc != 0)
      break;
    if (x.active > 0) {
      rc = take(&x);
      if (rc == 0)
        rc = collect(&x, false);
      continue;
    }
    /* No read in flight and none to issue: the preparer holds the rest
     * (and may give a file back to fetch again), or all is done. */
    if (x.p.given == 0)
      break;
    rc = collect(&x, true);
  }
  fetcher_free(&x);
  return rc;
}

/* ---- a sync -------------------------------------------------------------- */

/* The local file table rebuilt from the directory: every region file
 * hashed. Used when `local` cannot be trusted (f->between). */
static int rehash_local(strata__follower *f) {
  char **names = NULL;
  size_t n = 0;
  STRATA__TRY(list_files(f, &names, &n));
  lset fresh = {0};
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char h[33];
    if (hash_file(f->dir, names[i], h) == 0)
      rc = lset_add(&fresh, names[i], h);
  }
  strata__store_names_free(names, n);
  if (rc != 0) {
    lset_free(&fresh);
    return rc;
  }
  lset_free(&f->local);
  f->local = fresh;
  return 0;
}

static int read_manifest(strata__follower *f, const strata__head *h,
                         strata__manifest *m) {
  char *json = NULL;
  size_t len = 0;
  uint64_t xattr = 0;
  STRATA__TRY(strata__robj_read(f->c, h->manifest, STRATA__MANIFEST_MAX, &json,
                                &len, &xattr));
  uint64_t x = XXH3_64bits(json, len);
  int rc = 0;
  if (x != h->manifest_xxh3)
    rc = strata__fail(STRATA_E_CORRUPT,
                      "%s: %s: XXH3-64 %016" PRIx64
                      ", HEAD's manifest_xxh3 is %016" PRIx64,
                      f->c->label, h->manifest, x, h->manifest_xxh3);
  else if (x != xattr)
    rc = strata__fail(STRATA_E_CORRUPT,
                      "%s: %s: XXH3-64 %016" PRIx64 ", its " STRATA__XATTR_XXH3
                      " xattr says %016" PRIx64,
                      f->c->label, h->manifest, x, xattr);
  char what[STRATA__REMOTE_LABEL + STRATA__OBJ_NAME + 2];
  snprintf(what, sizeof what, "%s: %s", f->c->label, h->manifest);
  if (rc == 0)
    rc = strata__manifest_parse(json, len, what, m);
  free(json);
  if (rc == 0 && m->version != h->version) {
    rc =
        strata__fail(STRATA_E_CORRUPT,
                     "%s: says version %" PRIu64 ", HEAD names it for %" PRIu64,
                     what, m->version, h->version);
    strata__manifest_free(m);
  }
  return rc;
}

/* The swap (docs/REMOTE.md, "The swap"). */
static int swap(strata__follower *f, const strata__manifest *m,
                strata__pubfile **prepared, lset *next) {
  STRATA__TRY(state_write(f, f->served, m->version, next));
  /* From here until "serving M" is written, the directory may hold a
   * mixture, and the state says so. */
  f->between = true;
  for (size_t i = 0; i < m->n; i++)
    if (prepared[i] != NULL) {
      int rc = strata__pubfile_publish(prepared[i]);
      strata__pubfile_abort(prepared[i]);
      prepared[i] = NULL;
      STRATA__TRY(rc);
    }
  STRATA__TRY(swap_to(f, next));
  lset_free(&f->local);
  f->local = *next;
  *next = (lset){0};
  f->served = m->version;
  f->between = false;
  f->state_stale = true;
  if (state_write(f, f->served, 0, &f->local) == 0)
    f->state_stale = false;
  else
    strata__log(logger(f), STRATA_LOG_WARN, "remote",
                "msg=\"cannot record the version served; a restart will "
                "finish the swap again\" remote=%s version=%" PRIu64
                " detail=%s",
                f->c->label, f->served, q(strata_last_error_detail()));
  if (pin_write(f, f->served, 0) != 0)
    strata__log(logger(f), STRATA_LOG_WARN, "remote",
                "msg=\"cannot update the pin\" detail=%s",
                q(strata_last_error_detail()));
  unlink_unlisted(f, &f->local);
  return 0;
}

/* A delta file of m that is here already (its name and hash): its bytes
 * were checked when fetched, but not its place in m's stacks, which its
 * binding must match as a fetched one's does (check_listed). The open is
 * lazy: the header and the extension, O(1). Bases here already are not
 * opened again (a sync would cost an open per region of the store): their
 * hash is the manifest's, and a manifest that lies about a base's header
 * checksum still cannot bind a delta to it, since the swap finds the
 * chains from the files' own headers (strata__store_swap_files). */
static int check_local(strata__follower *f, const strata__manifest *m,
                       const strata__mregion *g) {
  char path[PATH_MAX], why[384];
  snprintf(path, sizeof path, "%s/%s", f->dir, g->file);
  strata_region *r = NULL;
  int rc = strata_region_open(path, STRATA_OPEN_DEFAULT, &r);
  if (rc == 0)
    rc = check_listed(r, g, why, sizeof why);
  else
    snprintf(why, sizeof why, "%s", strata_last_error_detail());
  strata_region_close(r);
  if (rc == 0)
    return 0;
  rc = strata__fail(rc,
                    "%s: version %" PRIu64 ": %s (here already): %s; still "
                    "serving version %" PRIu64,
                    f->c->label, m->version, g->file, why, f->served);
  strata__log(logger(f), STRATA_LOG_ERROR, "remote", "msg=%s",
              q(strata_last_error_detail()));
  return rc;
}

/* Fetches version h->version and swaps to it. */
static int move_to(strata__follower *f, const strata__head *h) {
  strata__manifest m = {0};
  if (h->exists && h->version > 0)
    STRATA__TRY(read_manifest(f, h, &m));
  else
    m.version = h->version;
  int rc = pin_write(f, f->served, m.version);
  if (rc == 0 && f->between)
    rc = rehash_local(f);
  strata__pubfile **prepared = calloc(m.n + 1, sizeof *prepared);
  bool *need = calloc(m.n + 1, sizeof *need);
  lset next = {0};
  if (rc == 0 && (prepared == NULL || need == NULL))
    rc = strata__fail(STRATA_E_NOMEM, "%s: sync", f->c->label);
  for (size_t i = 0; rc == 0 && i < m.n; i++) {
    const strata__mregion *g = &m.regions[i];
    rc = lset_add(&next, g->file, g->hash);
    need[i] = !lset_has(&f->local, g->file, g->hash);
    if (rc == 0 && !need[i] && g->depth > 0)
      rc = check_local(f, &m, g);
  }
  if (rc == 0)
    rc = fetch_files(f, &m, need, prepared);
  if (rc == 0)
    rc = swap(f, &m, prepared, &next);
  free(need);
  for (size_t i = 0; prepared != NULL && i < m.n; i++)
    strata__pubfile_abort(prepared[i]);
  free(prepared);
  lset_free(&next);
  strata__manifest_free(&m);
  return rc;
}

/* One sync, op_mu held. force: even when HEAD is not newer. */
static int sync_locked(strata__follower *f, bool force) {
  uint64_t t0 = strata__mono_ns();
  for (int attempt = 0;; attempt++) {
    strata__head h;
    STRATA__TRY(strata__head_read(f->c, &h));
    /* No head object: nothing was ever pushed there, or the name is
     * mistyped. Version 0 of a remote that does not exist must not become
     * an empty catalog (and the unlink of every local file). */
    if (!h.exists)
      return strata__fail(-ENOENT,
                          "%s: head: no such remote store (no head object: "
                          "nothing was ever pushed to it); %s keeps what it "
                          "has",
                          f->c->label, f->dir);
    strata__remote_set_versions(f->r, f->served, h.version);
    /* HEAD behind the version served: the remote was made again, or
     * rolled back by hand. Following it silently could serve older data
     * as new; staying silently would hide it. Stay, and say so once per
     * HEAD version. */
    if (h.version < f->served && !force && !f->between) {
      if (f->warned_head != h.version)
        strata__log(logger(f), STRATA_LOG_WARN, "remote",
                    "msg=\"HEAD is older than the version served (the remote "
                    "was made again or rolled back); still serving it; pull "
                    "into a new directory to follow the remote as it is\" "
                    "remote=%s head=%" PRIu64 " served=%" PRIu64,
                    f->c->label, h.version, f->served);
      f->warned_head = h.version;
    }
    if (h.version <= f->served && !force && !f->between) {
      if (f->state_stale && state_write(f, f->served, 0, &f->local) == 0)
        f->state_stale = false;
      if (f->served != 0 && strata__mono_ns() - f->pin_ns >= PIN_REFRESH_NS)
        (void)pin_write(f, f->served, 0); /* tried again at the next poll */
      /* Up to date: an earlier failure (HEAD unreachable) is over, but
       * last_sync_ms keeps the duration of the last version change. */
      pthread_mutex_lock(&f->r->stats_mu);
      f->r->stats.last_error[0] = '\0';
      pthread_mutex_unlock(&f->r->stats_mu);
      return 0;
    }
    uint64_t before = f->served;
    int rc = move_to(f, &h);
    /* -ENOENT: an object of the version vanished under the fetch (gc took
     * a version nobody pinned, docs/REMOTE.md "Garbage"): HEAD has moved
     * on; go there, once. */
    if (rc == -ENOENT && attempt == 0) {
      strata__log(logger(f), STRATA_LOG_WARN, "remote",
                  "msg=\"an object of the version vanished during the fetch; "
                  "starting again from HEAD\" remote=%s version=%" PRIu64
                  " detail=%s",
                  f->c->label, h.version, q(strata_last_error_detail()));
      continue;
    }
    STRATA__TRY(rc);
    strata__remote_set_versions(f->r, f->served, h.version);
    if (f->served != before || force)
      strata__remote_add(f->r, &f->r->stats.syncs, 1);
    strata__remote_note_success(f->r, (strata__mono_ns() - t0) / 1000000u);
    strata__log(logger(f), STRATA_LOG_INFO, "remote",
                "msg=\"serving a new version\" remote=%s version=%" PRIu64
                " previous=%" PRIu64,
                f->c->label, f->served, before);
    return 0;
  }
}

static int sync_now(strata__follower *f, bool force, uint64_t *version) {
  pthread_mutex_lock(&f->r->op_mu);
  int rc = sync_locked(f, force);
  if (rc != 0)
    strata__remote_note_failure(f->r);
  if (version != NULL)
    *version = f->served;
  pthread_mutex_unlock(&f->r->op_mu);
  return rc;
}

int strata__follower_sync(struct strata__remote *r, uint64_t *version) {
  STRATA__FAIL_IF(r == NULL || r->follower == NULL, STRATA_E_STATE,
                  "strata_remote_sync: the store is not a follower");
  return sync_now(r->follower, false, version);
}

/* ---- the thread ---------------------------------------------------------- */

static void wake(strata__follower *f, bool lost) {
  pthread_mutex_lock(&f->mu);
  f->wake = true;
  f->watch_lost |= lost;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

/* librados' threads: a notify on HEAD (the publisher moved it). */
static void on_notify(void *arg, uint64_t notify_id, uint64_t handle,
                      uint64_t notifier_id, void *data, size_t len) {
  (void)notifier_id;
  (void)data;
  (void)len;
  strata__follower *f = arg;
  (void)rados_notify_ack(f->c->io, STRATA__HEAD_OBJ, notify_id, handle, NULL,
                         0);
  wake(f, false);
}

/* librados' threads: the watch is gone (an OSD restarted, a partition). */
static void on_watch_error(void *arg, uint64_t cookie, int err) {
  (void)cookie;
  (void)err;
  wake(arg, true);
}

/* (Re)makes the watch on HEAD; a failure (no HEAD yet, the cluster away)
 * leaves polling to do the work until the next pass. */
static void rewatch(strata__follower *f) {
  if (f->watching) {
    (void)rados_unwatch2(f->c->io, f->watch_cookie);
    f->watching = false;
  }
  /* The watch's timeout: librados' default (30 s). */
  int rc = rados_watch3(f->c->io, STRATA__HEAD_OBJ, &f->watch_cookie, on_notify,
                        on_watch_error, 0, f);
  if (rc == 0)
    f->watching = true;
  else
    strata__log(logger(f), STRATA_LOG_DEBUG, "remote",
                "msg=\"cannot watch HEAD; polling\" remote=%s rc=%d",
                f->c->label, rc);
}

static void *run(void *arg) {
  strata__follower *f = arg;
  bool watch = (f->c->cfg.flags & STRATA_REMOTE_NO_WATCH) == 0;
  pthread_mutex_lock(&f->mu);
  while (!f->stop) {
    f->wake = false;
    bool lost = f->watch_lost;
    f->watch_lost = false;
    pthread_mutex_unlock(&f->mu);
    if (sync_now(f, false, NULL) != 0 && !stopping(f))
      strata__log(logger(f), STRATA_LOG_WARN, "remote",
                  "msg=\"sync failed; trying again at the next notify or "
                  "poll\" remote=%s detail=%s",
                  f->c->label, q(strata_last_error_detail()));
    if (watch && (lost || !f->watching))
      rewatch(f);
    pthread_mutex_lock(&f->mu);
    if (f->wake || f->stop)
      continue;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)f->c->cfg.poll_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    while (!f->wake && !f->stop &&
           pthread_cond_timedwait(&f->cv, &f->mu, &ts) == 0)
      ;
  }
  pthread_mutex_unlock(&f->mu);
  if (f->watching) {
    (void)rados_unwatch2(f->c->io, f->watch_cookie);
    f->watching = false;
  }
  return NULL;
}

/* ---- start and stop ------------------------------------------------------ */

static void follower_free(strata__follower *f) {
  if (f == NULL)
    return;
  lset_free(&f->local);
  free(f->dir);
  free(f->state_dir);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

/* Restores what the state says; returns whether the directory must be
 * synced before it is served. */
static bool restore(strata__follower *f, uint64_t *from, uint64_t *to) {
  uint64_t version = 0, switching = 0;
  lset files = {0};
  state_kind k = state_read(f, &version, &switching, &files);
  *from = version;
  *to = switching;
  if (k == STATE_SERVING) {
    if (swap_to(f, &files) == 0) {
      f->served = version;
      f->local = files;
      unlink_unlisted(f, &f->local);
      return false;
    }
    strata__log(logger(f), STRATA_LOG_WARN, "remote",
                "msg=\"the files of the version served cannot be opened; "
                "syncing\" remote=%s version=%" PRIu64 " detail=%s",
                f->c->label, version, q(strata_last_error_detail()));
  }
  lset_free(&files);
  f->served = k == STATE_SWITCHING ? version : 0;
  f->between = true;
  return true;
}

/* Removes the temporary files of state writes that a killed follower
 * left in STORE/.strata-remote/ (named ones, where O_TMPFILE is missing).
 * The store's own cleanup reads only the store's directory; this one is
 * the follower's alone, and the claim (the store's writer lock) keeps
 * any other follower out of it, so every such file is debris. */
static void remove_state_temps(strata__follower *f) {
  DIR *d = opendir(f->state_dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] == '.' && strstr(e->d_name, STRATA__TEMP_MARK) != NULL &&
        unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT)
      strata__log(logger(f), STRATA_LOG_WARN, "remote",
                  "msg=\"cannot remove a temporary file a killed follower "
                  "left\" remote=%s file=%s errno=%d",
                  f->c->label, q(e->d_name), errno);
  closedir(d);
}

/* The open's sync, tried until it works or open_timeout_ms has passed. */
static int first_sync(strata__follower *f, uint64_t from, uint64_t to) {
  uint64_t deadline =
      strata__mono_ns() + (uint64_t)f->c->cfg.open_timeout_ms * 1000000u;
  for (;;) {
    int rc = sync_now(f, true, NULL);
    if (rc == 0)
      return 0;
    /* Only a cluster that did not answer is worth the wait; a corrupt
     * HEAD or manifest, an unknown format, a file still bad after its
     * fetches or a remote that does not exist will be so again. */
    bool transient = rc == -ETIMEDOUT || rc == -ENOTCONN || rc == -EAGAIN ||
                     rc == -ECONNREFUSED || rc == -ESHUTDOWN ||
                     rc == -EHOSTUNREACH || rc == -ENETUNREACH;
    if (!transient || strata__mono_ns() >= deadline) {
      char detail[512];
      snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
      if (to != 0)
        return strata__fail(rc,
                            "%s: the local copy is between versions %" PRIu64
                            " and %" PRIu64 " and %s %s: %s",
                            f->dir, from, to, f->c->label,
                            transient ? "is unreachable"
                                      : "cannot give a whole version",
                            detail);
      if (!transient)
        return strata__fail(rc, "%s: no whole local copy of %s: %s", f->dir,
                            f->c->label, detail);
      return strata__fail(rc,
                          "%s: no whole local copy of %s, and no sync "
                          "succeeded within %" PRIu32 " ms: %s",
                          f->dir, f->c->label, f->c->cfg.open_timeout_ms,
                          detail);
    }
    struct timespec ts = {0, (long)OPEN_RETRY_MS * 1000000};
    nanosleep(&ts, NULL);
  }
}

int strata__follower_start(struct strata__remote *r) {
  strata__follower *f = calloc(1, sizeof *f);
  STRATA__FAIL_IF(f == NULL, STRATA_E_NOMEM, "starting the follower");
  f->r = r;
  f->c = r->conn;
  pthread_mutex_init(&f->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  f->dir = strdup(r->store->dir);
  f->state_dir = strata__store_path(r->store, STATE_DIR, "");
  if (f->dir == NULL || f->state_dir == NULL) {
    follower_free(f);
    return strata__fail(STRATA_E_NOMEM, "starting the follower");
  }
  if (mkdir(f->state_dir, 0755) != 0 && errno != EEXIST) {
    int rc = strata__fail_errno(errno,
                                "%s: creating the follower's state "
                                "directory",
                                f->state_dir);
    follower_free(f);
    return rc;
  }
  remove_state_temps(f);
  r->follower = f;
  uint64_t from = 0, to = 0;
  int rc = 0;
  if (restore(f, &from, &to))
    rc = first_sync(f, from, to);
  strata__remote_set_versions(r, f->served, f->served);
  if (rc == 0 && (f->c->cfg.flags & STRATA_REMOTE_NO_THREAD) == 0) {
    /* started is under mu like the fields the thread reads: set it
     * before the thread can run, and take it back if it cannot. */
    pthread_mutex_lock(&f->mu);
    f->started = true;
    int e = pthread_create(&f->thread, NULL, run, f);
    if (e != 0) {
      f->started = false;
      rc = strata__fail_errno(e, "%s: starting the follower's thread",
                              f->c->label);
    }
    pthread_mutex_unlock(&f->mu);
  }
  if (rc != 0) {
    /* The open fails: a directory it made goes again (src/strata.c), and
     * it can only if the state this start made goes first. */
    if (r->store->created_dir) {
      char *state = strata__store_path(r->store, STATE_DIR "/", STATE_FILE);
      if (state != NULL)
        (void)unlink(state);
      free(state);
      (void)rmdir(f->state_dir);
    }
    r->follower = NULL;
    follower_free(f);
  }
  return rc;
}

void strata__follower_stop(struct strata__remote *r) {
  if (r == NULL || r->follower == NULL)
    return;
  strata__follower *f = r->follower;
  if (f->started) {
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    /* No callback may run on f once it is freed. */
    rados_watch_flush(f->c->cluster);
  }
  r->follower = NULL;
  follower_free(f);
}
