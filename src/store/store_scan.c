/* The store's directory as the store reads it: the listing of region files
 * (with the cleanup of temporary files that interrupted writers left), the
 * parallel validation that opens the listed files and turns them into
 * catalog entries, and the search for each base's chain of delta files. Open
 * (store.c), refresh (store_refresh.c) and the writer lock (store_lock.c) scan
 * through here. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "writer/pubfile.h"

#define DELTA_SUFFIX ".delta"

static bool has_suffix(const char *n, const char *suffix) {
  size_t len = strlen(n), sl = strlen(suffix);
  return n[0] != '.' && len > sl && strcmp(n + len - sl, suffix) == 0;
}

bool strata__store_is_region_name(const char *n) {
  return has_suffix(n, STRATA__REGION_SUFFIX);
}

bool strata__store_is_delta_name(const char *n) {
  return has_suffix(n, DELTA_SUFFIX);
}

/* ".NAME.strata-tmp-XXXXXXXX" (8 lowercase hex digits): the name of the
 * writer's temporary files (pubfile.c). Matched at the end, since
 * NAME may contain the mark itself. Other programs' dot-files, such as
 * ".NAME.tmp-XXXXXXXX", do not match: the mark is Strata's own. */
static bool is_temp_name(const char *n) {
  size_t len = strlen(n), ml = strlen(STRATA__TEMP_MARK);
  if (n[0] != '.' || len < 2 + ml + STRATA__TEMP_HEX ||
      memcmp(n + len - STRATA__TEMP_HEX - ml, STRATA__TEMP_MARK, ml) != 0)
    return false;
  for (size_t i = len - STRATA__TEMP_HEX; i < len; i++)
    if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
      return false;
  return true;
}

/* Does the temporary file open at `fd` hold what our writer leaves? A
 * named temporary file begins with the region magic from the moment the
 * writer created it (pubfile.c), and an O_TMPFILE gets its name only
 * after the header is written; so a leftover of ours is empty (the writer
 * died between the create and its first write) or begins with the magic.
 * Anything else named with our mark is someone else's, and kept. */
static bool temp_is_ours(int fd, const struct stat *st) {
  if (st->st_size == 0)
    return true; /* nothing in it to lose */
  char head[STRATA__MAGIC_LEN];
  return pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
         memcmp(head, STRATA__MAGIC, sizeof head) == 0;
}

static void warn_kept(struct strata_store *s, const char *name,
                      const char *why) {
  char qd[STRATA__LOG_PATH], qf[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_WARN, "store",
              "msg=\"file named like a temporary file left alone: %s\" "
              "dir=%s file=%s",
              why, strata__log_quote(qd, sizeof qd, s->dir),
              strata__log_quote(qf, sizeof qf, name));
}

/* Removes a temporary file of an interrupted write: only a regular file
 * that is ours (temp_is_ours()), and only unless a live writer holds it:
 * writers keep an flock on their temporary file until they close it
 * (pubfile.c), and the lock dies with the process, so a lock we can
 * take means a dead writer. (The store's own writer lock does not cover
 * region-builder and other strata_writer users writing into the
 * directory.) The type is looked at before the open, so that a FIFO or a
 * device named like a temporary file is never opened (a FIFO's open may
 * block, a device's may act), and again after it (O_NONBLOCK, O_NOFOLLOW),
 * for an entry replaced in between. */
static void remove_temp(struct strata_store *s, const char *name) {
  struct stat st;
  if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return; /* gone */
  if (!S_ISREG(st.st_mode)) {
    warn_kept(s, name,
              S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
    return;
  }
  int fd = openat(s->dirfd, name,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP)
      warn_kept(s, name, "a symbolic link");
    return;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    warn_kept(s, name, "not a regular file");
    close(fd);
    return;
  }
  bool dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
  char qd[STRATA__LOG_PATH], qf[STRATA__LOG_PATH];
  if (dead && !temp_is_ours(fd, &st))
    warn_kept(s, name, "it does not begin with the region magic");
  else if (dead && unlinkat(s->dirfd, name, 0) == 0)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"removed a temporary file of an interrupted write\" "
                "dir=%s file=%s",
                strata__log_quote(qd, sizeof qd, s->dir),
                strata__log_quote(qf, sizeof qf, name));
  else if (dead)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"could not remove a temporary file of an "
                "interrupted write\" dir=%s file=%s errno=%s",
                strata__log_quote(qd, sizeof qd, s->dir),
                strata__log_quote(qf, sizeof qf, name), strerrorname_np(errno));
  else
    strata__log(&s->log, STRATA_LOG_DEBUG, "store",
                "msg=\"temporary file in use by a live writer; left alone\" "
                "dir=%s file=%s",
                strata__log_quote(qd, sizeof qd, s->dir),
                strata__log_quote(qf, sizeof qf, name));
  close(fd);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is the directory entry a regular file (following a symlink, as opening
 * the region does)? Anything else named like a region (a FIFO would block
 * the open forever, a device may act on being opened) is skipped with a
 * warning, at open and at every refresh. */
static bool regular_entry(struct strata_store *s, const struct dirent *de) {
  if (de->d_type == DT_REG)
    return true;
  struct stat st;
  if (fstatat(s->dirfd, de->d_name, &st, 0) != 0)
    return true; /* gone, or unreadable: opening it reports why */
  if (S_ISREG(st.st_mode))
    return true;
  char qd[STRATA__LOG_PATH], qf[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_WARN, "store",
              "msg=\"region skipped: not a regular file\" dir=%s file=%s "
              "type=\"%s\"",
              strata__log_quote(qd, sizeof qd, s->dir),
              strata__log_quote(qf, sizeof qf, de->d_name),
              strata__file_type_name(st.st_mode));
  return false;
}

/* Lists the files of the directory named "*SUFFIX" (not hidden), sorted,
 * and, with `clean`, removes temporary files left by interrupted writes. */
static int list_suffix(struct strata_store *s, bool clean, const char *suffix,
                       char ***names, size_t *count) {
  int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return strata__fail_errno(e, "%s: reading the directory", s->dir);
  }
  char **v = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  /* readdir() returns NULL both at the end and on an error: only errno
   * tells them apart. A listing cut short must not pass for a complete one
   * (refresh would drop the regions it missed). */
  while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
    if (clean && is_temp_name(de->d_name)) {
      remove_temp(s, de->d_name);
      continue;
    }
    if (!has_suffix(de->d_name, suffix) || !regular_entry(s, de))
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **nv = realloc(v, cap * sizeof *v);
      if (nv == NULL) {
        rc = strata__fail(STRATA_E_NOMEM, "%s: listing", s->dir);
        break;
      }
      v = nv;
    }
    if ((v[n] = strdup(de->d_name)) == NULL)
      rc = strata__fail(STRATA_E_NOMEM, "%s: listing", s->dir);
    else
      n++;
  }
  if (rc == 0 && errno != 0)
    rc = strata__fail_errno(errno, "%s: reading the directory", s->dir);
  closedir(d);
  if (rc == 0) {
    /* Sorted so that refresh finds a name by binary search: a store may
     * hold tens of thousands of files (strata-bench store-scale). */
    if (n > 1)
      qsort(v, n, sizeof *v, cmp_name);
    *names = v;
    *count = n;
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
  return rc;
}

int strata__store_list(struct strata_store *s, bool clean, char ***names,
                       size_t *count) {
  return list_suffix(s, clean, STRATA__REGION_SUFFIX, names, count);
}

int strata__store_list_deltas(struct strata_store *s, char ***names,
                              size_t *count) {
  return list_suffix(s, false, DELTA_SUFFIX, names, count);
}

void strata__store_names_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* ---- parallel validation ------------------------------------------------ */

typedef struct open_job {
  struct strata_store *s;
  bool defer; /* leave index checksums to the verifier thread */
  char **names;
  size_t n;
  _Atomic size_t next;
  strata__file **files; /* per name: the open file, or NULL */
  int *rcs;
  char **details; /* per failed name: a copy of the error detail */
} open_job;

static void *open_worker(void *arg) {
  open_job *j = arg;
  for (;;) {
    size_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (i >= j->n)
      return NULL;
    j->rcs[i] = strata__file_open(j->s, j->names[i], j->defer, &j->files[i]);
    if (j->rcs[i] < 0)
      j->details[i] = strdup(strata_last_error_detail());
  }
}

/* Opens every named file, on up to open_threads threads. */
static void open_all(open_job *j) {
  unsigned threads = j->s->config.open_threads;
  if (threads == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus > 0 ? (unsigned)cpus : 1;
  }
  if (threads > j->n)
    threads = (unsigned)j->n;
  if (threads > 64)
    threads = 64;
  pthread_t tid[64];
  unsigned started = 0;
  for (unsigned t = 1; t < threads; t++)
    if (pthread_create(&tid[started], NULL, open_worker, j) == 0)
      started++;
  open_worker(j); /* the calling thread works too (and alone if no thread
                     could be started) */
  for (unsigned t = 0; t < started; t++)
    pthread_join(tid[t], NULL);
}

/* A region or delta file not served because it does not validate. */
static void log_skipped(struct strata_store *s, const char *kind,
                        const char *name, int err, const char *detail) {
  char qd[STRATA__LOG_PATH], qf[STRATA__LOG_PATH], qt[STRATA__LOG_TEXT];
  strata__log(&s->log, STRATA_LOG_WARN, "store",
              "msg=\"%s skipped: it does not validate\" dir=%s file=%s "
              "error=%s detail=%s",
              kind, strata__log_quote(qd, sizeof qd, s->dir),
              strata__log_quote(qf, sizeof qf, name), strata_err_name(err),
              strata__log_quote(qt, sizeof qt, detail));
}

/* The entry that serves a file just opened (taking over its reference). */
static strata__entry *entry_for_file(strata__file *f) {
  strata_region_info info;
  strata_region_info_get(f->region, &info);
  return strata__entry_new(info.id, info.name, info.metadata, f);
}

int strata__store_load(struct strata_store *s, char **names, size_t count,
                       bool defer, bool strict, strata__entry **have,
                       size_t *n) {
  open_job j = {.s = s, .names = names, .n = count, .defer = defer};
  j.files = calloc(count ? count : 1, sizeof *j.files);
  j.rcs = calloc(count ? count : 1, sizeof *j.rcs);
  j.details = calloc(count ? count : 1, sizeof *j.details);
  int rc = 0;
  if (j.files == NULL || j.rcs == NULL || j.details == NULL)
    rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  else
    open_all(&j);
  for (size_t i = 0; rc == 0 && i < count; i++) {
    if (j.rcs[i] < 0 && strict) {
      /* The first failure in list order, whatever thread met it: its
       * detail names the file (the open's own, or the validation's). */
      rc = strata__fail(j.rcs[i], "%s",
                        j.details[i] != NULL ? j.details[i] : names[i]);
      break;
    }
    if (j.rcs[i] < 0) {
      log_skipped(s, "region", names[i], j.rcs[i], j.details[i]);
      continue;
    }
    strata__entry *e = entry_for_file(j.files[i]);
    if (e == NULL) {
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
      break;
    }
    j.files[i] = NULL; /* owned by the entry now */
    have[(*n)++] = e;
  }
  for (size_t i = 0; i < count; i++) {
    if (j.files != NULL && j.files[i] != NULL)
      strata__file_unref(s, j.files[i]);
    if (j.details != NULL)
      free(j.details[i]);
  }
  free(j.files);
  free(j.rcs);
  free(j.details);
  return rc;
}

/* ---- choosing among files that claim the same region ------------------- */

/* Two files may claim one region id (or one region name): a region copied
 * under a second name, a builder run with the wrong id. Every process, and
 * every refresh, must serve the same one of them, or a long-running reader
 * keeps a file that writers (which crystallize into the file they serve)
 * no longer update. The choice therefore depends only on the files, never
 * on which was seen first: a region's canonical file (its name plus
 * ".region", where crystallization writes a new region) wins, then the
 * smallest file name (strcmp). The one exception is a region with a proto
 * in this process: it keeps its file, which its crystallization replaces
 * (docs/ARCHITECTURE.md, "Conflicting region files"). */

/* The file's name within the store's directory. */
static const char *base_name(const struct strata_store *s,
                             const strata__file *f) {
  size_t dl = strlen(s->dir);
  if (strncmp(f->path, s->dir, dl) == 0 && f->path[dl] == '/')
    return f->path + dl + 1;
  const char *slash = strrchr(f->path, '/');
  return slash != NULL ? slash + 1 : f->path;
}

typedef struct candidate {
  strata__entry *e;
  const char *file; /* base name; NULL for a proto without a file */
  int rank;         /* 0 proto here, 1 canonical file, 2 other file */
  bool old;         /* carried over from the current catalog */
  size_t idx;       /* its index in `have` */
} candidate;

static int cmp_candidate(const void *pa, const void *pb) {
  const candidate *a = pa, *b = pb;
  if (a->rank != b->rank)
    return (a->rank > b->rank) - (a->rank < b->rank);
  /* Rank 0 (regions with a proto here) holds entries with a file and
   * without one; comparing some pairs by id and others by file name would
   * not be an order (qsort's behaviour is then undefined). Their ids are
   * unique, so the id orders them all. */
  if (a->rank == 0 || a->file == NULL || b->file == NULL)
    return (a->e->id > b->e->id) - (a->e->id < b->e->id);
  return strcmp(a->file, b->file);
}

static bool is_canonical(const char *file, const char *name) {
  size_t fl = strlen(file), nl = strlen(name),
         sl = strlen(STRATA__REGION_SUFFIX);
  return fl == nl + sl && memcmp(file, name, nl) == 0 &&
         strcmp(file + nl, STRATA__REGION_SUFFIX) == 0;
}

/* FNV-1a: region names are short, and the table only needs spread. */
static uint64_t name_hash(const char *p) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *p; p++)
    h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
  return h;
}

/* Open addressing over `mask` + 1 slots, by id or by name: the winner
 * already holding the key, or the empty slot where it goes. */
static strata__entry **slot_by_id(strata__entry **t, uint64_t mask,
                                  uint64_t id) {
  uint64_t j = (id * 0x9E3779B97F4A7C15ull >> 20) & mask;
  while (t[j] != NULL && t[j]->id != id)
    j = (j + 1) & mask;
  return &t[j];
}

static strata__entry **slot_by_name(strata__entry **t, uint64_t mask,
                                    const char *name) {
  uint64_t j = name_hash(name) & mask;
  while (t[j] != NULL && strcmp(t[j]->name, name) != 0)
    j = (j + 1) & mask;
  return &t[j];
}

void strata__conflicts_free(strata__conflict *c, size_t n) {
  for (size_t i = 0; c != NULL && i < n; i++) {
    free(c[i].served);
    free(c[i].skipped);
  }
  free(c);
}

static void log_conflict(struct strata_store *s, const strata__conflict *c) {
  char qf[STRATA__LOG_PATH], qb[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_WARN, "store",
              "msg=\"region skipped: %s already served\" file=%s "
              "region_id=%" PRIu64 " served_by=%s",
              c->why, strata__log_quote(qf, sizeof qf, c->skipped),
              c->region_id, strata__log_quote(qb, sizeof qb, c->served));
}

int strata__store_choose(struct strata_store *s, strata__entry **have,
                         size_t *n, size_t first_new, strata__entry **drop,
                         size_t *ndrop, strata__conflict **conflicts,
                         size_t *nconflicts) {
  size_t count = *n;
  uint64_t cap = 8;
  while (cap < 2 * (uint64_t)count)
    cap *= 2;
  candidate *c = malloc((count ? count : 1) * sizeof *c);
  strata__entry **ids = calloc(cap, sizeof *ids);
  strata__entry **names = calloc(cap, sizeof *names);
  bool *won = calloc(count ? count : 1, sizeof *won);
  strata__conflict *cf = calloc(count ? count : 1, sizeof *cf);
  int rc = c && ids && names && won && cf
               ? 0
               : strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  size_t ncf = 0;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    strata__entry *e = have[i];
    const char *file = e->file != NULL ? base_name(s, e->file) : NULL;
    int rank = e->overlay != NULL || e->file == NULL ? 0
               : is_canonical(file, e->name)         ? 1
                                                     : 2;
    c[i] = (candidate){
        .e = e, .file = file, .rank = rank, .old = i < first_new, .idx = i};
  }
  if (rc == 0)
    qsort(c, count, sizeof *c, cmp_candidate);
  /* Greedy in rank order: a file is served unless a better one already
   * holds its id or its name. */
  for (size_t i = 0; rc == 0 && i < count; i++) {
    strata__entry *e = c[i].e;
    strata__entry **si = slot_by_id(ids, cap - 1, e->id);
    strata__entry **sn = slot_by_name(names, cap - 1, e->name);
    strata__entry *w = *si != NULL ? *si : *sn;
    if (w == NULL) {
      *si = *sn = e;
      won[c[i].idx] = true;
      continue;
    }
    strata__conflict *k = &cf[ncf++];
    k->region_id = e->id;
    k->why = *si != NULL ? "region id" : "region name";
    k->served = strdup(w->file != NULL ? w->file->path : "(proto)");
    k->skipped = strdup(e->file->path); /* rank > 0: it has a file */
    if (k->served == NULL || k->skipped == NULL)
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  }
  if (rc < 0) {
    strata__conflicts_free(cf, ncf);
    free(c);
    free(ids);
    free(names);
    free(won);
    return rc;
  }
  /* Nothing can fail from here on. */
  for (size_t i = 0; i < ncf; i++)
    log_conflict(s, &cf[i]);
  /* The winners keep their order in `have` (m <= i: nothing unread is
   * overwritten), so that those at or after first_new are still the new
   * ones: strata__store_stacks gives those their stack in place, and must
   * never do that to an entry a catalog has published. */
  size_t m = 0;
  for (size_t i = 0; i < count; i++) {
    strata__entry *e = have[i];
    bool old = i < first_new;
    if (won[i]) {
      have[m++] = e;
      if (!old) {
        char qf[STRATA__LOG_PATH];
        strata__log(&s->log, STRATA_LOG_INFO, "store",
                    "msg=\"region loaded\" file=%s region_id=%" PRIu64
                    " layers=%" PRIu64,
                    strata__log_quote(qf, sizeof qf, e->file->path), e->id,
                    strata_region_layer_count(e->file->region));
      }
    } else if (old) {
      drop[(*ndrop)++] = e;
    } else {
      strata__entry_free(s, e);
    }
  }
  *n = m;
  if (ncf == 0) {
    free(cf);
    cf = NULL;
  }
  *conflicts = cf;
  *nconflicts = ncf;
  free(c);
  free(ids);
  free(names);
  free(won);
  return 0;
}

void strata__store_set_conflicts(struct strata_store *s, strata__conflict *c,
                                 size_t n) {
  strata__conflicts_free(s->conflicts, s->conflict_n);
  s->conflicts = c;
  s->conflict_n = n;
}

/* ---- each base's chain of deltas (docs/ARCHITECTURE.md, "Deltas") ---- */

/* A delta file of the directory, opened, with its binding. */
typedef struct delta_file {
  strata__file *f;
  const char *name; /* in the directory */
  uint64_t region_id, checksum;
  strata_region_delta_info bind;
  bool used, reported;
  bool bad; /* its index failed when a stack was built over it */
} delta_file;

/* A reference to the delta file `name`: the one a current stack serves
 * when it is still the same inode of the same size, else a fresh open
 * (0, or the open's error: the caller logs and skips the file). */
static int delta_open(struct strata_store *s, strata__entry **have, size_t n,
                      const char *name, strata__file **out) {
  struct stat st;
  bool stat_ok = fstatat(s->dirfd, name, &st, 0) == 0;
  for (size_t i = 0; stat_ok && i < n; i++) {
    const strata__stack *sk = have[i]->stack;
    for (uint32_t d = 0; sk != NULL && d < sk->n; d++) {
      strata__file *f = sk->deltas[d];
      if (strcmp(base_name(s, f), name) == 0 && f->dev == st.st_dev &&
          f->ino == st.st_ino && f->region->size == (uint64_t)st.st_size) {
        f->refs++;
        *out = f;
        return 0;
      }
    }
  }
  return strata__file_open(s, name, false, out);
}

static void log_delta(struct strata_store *s, int level, const char *msg,
                      const char *file, const char *other) {
  char qd[STRATA__LOG_PATH], qf[STRATA__LOG_PATH], qo[STRATA__LOG_PATH];
  strata__log(&s->log, level, "store", "msg=\"%s\" dir=%s file=%s%s%s", msg,
              strata__log_quote(qd, sizeof qd, s->dir),
              strata__log_quote(qf, sizeof qf, file),
              other != NULL ? " chain_ends_at=" : "",
              other != NULL ? strata__log_quote(qo, sizeof qo, other) : "");
}

/* Is `file` the name the delta of depth `depth` of region `name` gets
 * ("NAME.DEPTH.delta")? */
static bool canonical_delta(const char *file, const char *name,
                            uint32_t depth) {
  char want[64];
  size_t nl = strlen(name);
  int wl = snprintf(want, sizeof want, ".%" PRIu32 ".delta", depth);
  return strlen(file) == nl + (size_t)wl && memcmp(file, name, nl) == 0 &&
         strcmp(file + nl, want) == 0;
}

/* The next delta of a chain: over `parent`, at `depth`, bound to the base
 * `base` of region `e`. Two candidates (a copy of a delta under another
 * name) are decided by the files alone, as strata__store_choose decides
 * between bases: the canonical name, then the smallest name. -1: none. */
static ptrdiff_t next_link(delta_file *v, size_t nv, const strata__entry *e,
                           uint64_t base, uint64_t parent, uint32_t depth) {
  ptrdiff_t best = -1;
  for (size_t k = 0; k < nv; k++) {
    const delta_file *c = &v[k];
    if (c->used || c->bad || c->region_id != e->id ||
        c->bind.base_checksum != base || c->bind.parent_checksum != parent ||
        c->bind.depth != depth)
      continue;
    if (best < 0)
      best = (ptrdiff_t)k;
    else {
      bool cc = canonical_delta(c->name, e->name, depth),
           bc = canonical_delta(v[best].name, e->name, depth);
      if ((cc && !bc) || (cc == bc && strcmp(c->name, v[best].name) < 0))
        best = (ptrdiff_t)k;
    }
  }
  return best;
}

/* Does the stack serve exactly these files? */
static bool same_stack(const strata__stack *st, strata__file **chain,
                       uint32_t n) {
  if ((st != NULL ? st->n : 0) != n)
    return false;
  for (uint32_t d = 0; d < n; d++)
    if (st->deltas[d] != chain[d])
      return false;
  return true;
}

/* The chain of entry `e`'s base among the delta files: the files, depth 1
 * first, marked used, in chain[] (*n of them). Deltas bound to this base
 * that the walk could not reach because their parent is missing are
 * reported as a broken chain. */
static void find_chain(struct strata_store *s, const strata__entry *e,
                       delta_file *v, size_t nv, strata__file **chain,
                       uint32_t *n) {
  strata_region_info bi;
  strata_region_info_get(e->file->region, &bi);
  uint64_t cur = bi.header_checksum;
  const char *top = e->file->path;
  *n = 0;
  for (;;) {
    ptrdiff_t k = next_link(v, nv, e, bi.header_checksum, cur, *n + 1);
    if (k < 0)
      break;
    v[k].used = true;
    chain[(*n)++] = v[k].f;
    cur = v[k].checksum;
    top = v[k].f->path;
  }
  for (size_t k = 0; k < nv; k++)
    if (!v[k].used && !v[k].reported && v[k].region_id == e->id &&
        v[k].bind.base_checksum == bi.header_checksum &&
        v[k].bind.depth > *n + 1) {
      v[k].reported = true;
      log_delta(s, STRATA_LOG_WARN,
                "delta not served: the chain is broken below it (a delta "
                "between is missing or does not validate)",
                v[k].f->path, top);
    }
}

/* Withdraws chain[bad], whose index failed when the stack was built
 * (strata__stack_new, error `err`), as a delta that does not validate at
 * open is: a WARN naming it, and it ends the chain, so that the next walk
 * serves the deltas below it and reports those above as a broken chain. */
static void withdraw_delta(struct strata_store *s, delta_file *v, size_t nv,
                           strata__file **chain, uint32_t cn, uint32_t bad,
                           int err) {
  for (size_t k = 0; k < nv; k++)
    for (uint32_t d = 0; d < cn; d++)
      if (v[k].f == chain[d]) {
        v[k].used = false;
        if (d == bad) {
          v[k].bad = v[k].reported = true;
          log_skipped(s, "delta", v[k].name, err, strata_last_error_detail());
        }
      }
}

int strata__store_stacks(struct strata_store *s, strata__entry **have, size_t n,
                         size_t first_new, strata__entry **drop, size_t *ndrop,
                         char **listed, size_t nlisted) {
  char **names = listed;
  size_t nn = nlisted;
  bool strict = listed != NULL;
  if (!strict)
    STRATA__TRY(strata__store_list_deltas(s, &names, &nn));
  delta_file *v = calloc(nn ? nn : 1, sizeof *v);
  strata__file **chain = malloc((nn ? nn : 1) * sizeof *chain);
  int rc = v != NULL && chain != NULL
               ? 0
               : strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
  size_t nv = 0;
  for (size_t i = 0; rc == 0 && i < nn; i++) {
    strata__file *f = NULL;
    int orc = delta_open(s, have, n, names[i], &f);
    if (orc == STRATA_E_NOMEM) {
      rc = orc;
      break;
    }
    if (orc < 0 && strict) { /* the detail names the file */
      rc = orc;
      break;
    }
    if (orc < 0) {
      log_skipped(s, "delta", names[i], orc, strata_last_error_detail());
      continue;
    }
    strata_region_info info;
    strata_region_info_get(f->region, &info);
    delta_file *d = &v[nv];
    *d = (delta_file){.f = f,
                      .name = base_name(s, f),
                      .region_id = info.id,
                      .checksum = info.header_checksum};
    if (strata_region_delta(f->region, &d->bind) != 0 && strict) {
      rc = strata__fail(STRATA_E_CORRUPT,
                        "%s: listed as a delta file, but it is not one (its "
                        "header has no DELTA flag)",
                        f->path);
      strata__file_unref(s, f);
      break;
    }
    if (d->bind.depth == 0) {
      /* A file named like a delta that is not one: never part of a chain. */
      log_delta(s, STRATA_LOG_WARN, "file named like a delta is not one",
                f->path, NULL);
      strata__file_unref(s, f);
      continue;
    }
    nv++;
  }
  /* Each served base's chain; an entry whose chain changed is replaced
   * (a published entry is immutable) or, when new, given its stack. */
  for (size_t i = 0; rc == 0 && i < n; i++) {
    strata__entry *e = have[i];
    if (e->file == NULL || e->overlay != NULL)
      continue;
    uint32_t cn = 0;
    strata__stack *st = NULL;
    bool same;
    for (;;) {
      find_chain(s, e, v, nv, chain, &cn);
      same = same_stack(e->stack, chain, cn);
      uint32_t bad = 0;
      if (same || cn == 0 ||
          (rc = strata__stack_new(e->file, chain, cn, &st, &bad)) == 0 ||
          rc == STRATA_E_NOMEM || strict)
        break; /* the swap fails with stack_new's detail (the delta, the
                  offset, the layer) */
      withdraw_delta(s, v, nv, chain, cn, bad, rc);
      rc = 0;
    }
    if (rc < 0)
      break;
    if (same)
      continue; /* the extra references are released below */
    for (uint32_t d = 0; d < cn; d++)
      for (size_t k = 0; k < nv; k++)
        if (v[k].f == chain[d])
          v[k].f = NULL; /* owned by the stack now */
    if (i >= first_new) {
      strata__stack_free(s, e->stack);
      e->stack = st;
      continue;
    }
    strata__entry *ne = strata__entry_new(e->id, e->name, e->metadata, e->file);
    if (ne == NULL) {
      strata__stack_free(s, st);
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
      break;
    }
    e->file->refs++;
    ne->stack = st;
    drop[(*ndrop)++] = e;
    have[i] = ne;
  }
  /* The caller's list is the whole of what is served: a listed delta that
   * no listed base's chain reaches would be dropped in silence. */
  for (size_t k = 0; strict && rc == 0 && k < nv; k++)
    if (!v[k].used)
      rc = strata__fail(STRATA_E_CORRUPT,
                        "%s: listed delta file not on the chain of any listed "
                        "base (region %" PRIu64 ", depth %" PRIu32
                        ", parent %016" PRIx64 ", base %016" PRIx64 ")",
                        v[k].f->path, v[k].region_id, v[k].bind.depth,
                        v[k].bind.parent_checksum, v[k].bind.base_checksum);
  for (size_t k = 0; k < nv; k++) {
    if (rc == 0 && v[k].f != NULL && !v[k].used && !v[k].reported)
      log_delta(s, STRATA_LOG_INFO,
                "stale delta not served: its base or parent is not the "
                "region's current file",
                v[k].f->path, NULL);
    if (v[k].f != NULL)
      strata__file_unref(s, v[k].f);
  }
  free(v);
  free(chain);
  if (!strict)
    strata__store_names_free(names, nn);
  return rc;
}
