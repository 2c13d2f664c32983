/* The store's directory as the store reads it: the listing of region files
 * (with the cleanup of temporary files that interrupted writers left), and
 * the parallel validation that opens the listed files and turns them into
 * catalog entries. Open (store.c), refresh (store_refresh.c) and the
 * writer lock (store_lock.c) scan through here. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "writer/pubfile.h"

#define REGION_SUFFIX ".region"

bool strata__store_is_region_name(const char *n) {
  size_t len = strlen(n), sl = strlen(REGION_SUFFIX);
  return n[0] != '.' && len > sl && strcmp(n + len - sl, REGION_SUFFIX) == 0;
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
 * directory.) O_NONBLOCK: a FIFO named like a temporary file must not
 * block the open. */
static void remove_temp(struct strata_store *s, const char *name) {
  int fd = openat(s->dirfd, name,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP)
      warn_kept(s, name, "a symbolic link");
    return;
  }
  struct stat st;
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

/* Lists the region files (strata__store_is_region_name) of the directory,
 * sorted, and, with `clean`, removes temporary files left by interrupted
 * writes. */
int strata__store_list(struct strata_store *s, bool clean, char ***names,
                       size_t *count) {
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
    if (!strata__store_is_region_name(de->d_name) || !regular_entry(s, de))
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
      char qd[STRATA__LOG_PATH], qf[STRATA__LOG_PATH], qt[STRATA__LOG_TEXT];
      strata__log(&s->log, STRATA_LOG_WARN, "store",
                  "msg=\"region skipped: it does not validate\" dir=%s "
                  "file=%s error=%s detail=%s",
                  strata__log_quote(qd, sizeof qd, s->dir),
                  strata__log_quote(qf, sizeof qf, names[i]),
                  strata_err_name(j.rcs[i]),
                  strata__log_quote(qt, sizeof qt, j.details[i]));
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
  size_t fl = strlen(file), nl = strlen(name), sl = strlen(REGION_SUFFIX);
  return fl == nl + sl && memcmp(file, name, nl) == 0 &&
         strcmp(file + nl, REGION_SUFFIX) == 0;
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
    c[i] =
        (candidate){.e = e, .file = file, .rank = rank, .old = i < first_new};
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
      won[i] = true;
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
  size_t m = 0;
  for (size_t i = 0; i < count; i++) {
    strata__entry *e = c[i].e;
    if (won[i]) {
      have[m++] = e;
      if (!c[i].old) {
        char qf[STRATA__LOG_PATH];
        strata__log(&s->log, STRATA_LOG_INFO, "store",
                    "msg=\"region loaded\" file=%s region_id=%" PRIu64
                    " layers=%" PRIu64,
                    strata__log_quote(qf, sizeof qf, e->file->path), e->id,
                    strata_region_layer_count(e->file->region));
      }
    } else if (c[i].old) {
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
