/* Opening, refreshing and closing a store: the directory scan, parallel
 * validation of region files, the cross-process writer lock, cleanup of
 * interrupted writes, statistics and reclamation. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/strata_testing.h"
#include "common/struct_size.h"
#include "staging/staging.h"
#include "store/store_internal.h"

#define LOCK_NAME ".strata.lock"
#define REGION_SUFFIX ".region"
/* A writer whose first write races a reader's brief cleanup lock retries
 * for this long before reporting the store as locked. */
#define LOCK_RETRY_MS 200

void strata_store_config_init(strata_store_config *c) {
  if (c == NULL)
    return;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page
                                        : (uint64_t)4 << 30;
  *c = (strata_store_config){.struct_size = sizeof *c,
                             .memory_limit = phys / 4,
                             .warn_pct = 75,
                             .evict_pct = 85,
                             .refuse_pct = 95,
                             .log_level = -1,
                             .max_readers = 1024,
                             .snapshot_warn_ms = 10000};
}

/* Reads the caller's config into *c: the defaults, overwritten by the first
 * struct_size bytes of `in` (NULL: the defaults), as strata__read_sized()
 * does for every structure that grows ("Growing structures" in strata.h). */
static int read_config(const char *dir, const strata_store_config *in,
                       strata_store_config *c) {
  strata_store_config_init(c);
  STRATA__TRY(STRATA__READ_SIZED(dir, strata_store_config, c, in));
  /* The staging config's size is fixed; its reserved words are where its
   * new fields will go, so a word that is not 0 is a field this library
   * does not know. */
  for (size_t i = 0; i < sizeof c->staging.reserved_ / sizeof(uint64_t); i++)
    STRATA__FAIL_IF(c->staging.reserved_[i] != 0, STRATA_E_INVAL,
                    "%s: strata_staging_config.reserved_[%zu] is not 0: a "
                    "field of a newer header than the library",
                    dir, i);
  return 0;
}

static int check_config(const char *dir, const strata_store_config *in,
                        strata_store_config *c) {
  STRATA__TRY(read_config(dir, in, c));
  strata_store_config d;
  strata_store_config_init(&d);
  if (c->memory_limit == 0)
    c->memory_limit = d.memory_limit;
  if (c->warn_pct == 0)
    c->warn_pct = d.warn_pct;
  if (c->evict_pct == 0)
    c->evict_pct = d.evict_pct;
  if (c->refuse_pct == 0)
    c->refuse_pct = d.refuse_pct;
  if (c->max_readers == 0)
    c->max_readers = d.max_readers;
  if (c->snapshot_warn_ms == 0)
    c->snapshot_warn_ms = d.snapshot_warn_ms;
  STRATA__FAIL_IF(!(c->warn_pct <= c->evict_pct &&
                    c->evict_pct <= c->refuse_pct && c->refuse_pct <= 100),
                  STRATA_E_INVAL,
                  "%s: memory thresholds must satisfy warn %u <= evict %u <= "
                  "refuse %u <= 100",
                  dir, c->warn_pct, c->evict_pct, c->refuse_pct);
  STRATA__FAIL_IF(c->log_level < -1 || c->log_level > STRATA_LOG_OFF,
                  STRATA_E_INVAL, "%s: log_level %d is not a STRATA_LOG_ value",
                  dir, c->log_level);
  STRATA__FAIL_IF(c->flags & ~(unsigned)(STRATA_STORE_READ_ONLY |
                                         STRATA_STORE_VERIFY_AT_OPEN |
                                         STRATA_STORE_NO_READ_STATS),
                  STRATA_E_INVAL, "%s: unknown store flags 0x%x", dir,
                  c->flags);
  return 0;
}

uint64_t strata__store_heap(const struct strata_store *s) {
  return strata__pool_reserved(s->pool) +
         atomic_load_explicit(&s->extra_bytes, memory_order_relaxed);
}

/* ---- region files -------------------------------------------------------- */

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p != NULL) {
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
  }
  return p;
}

int strata__file_open(struct strata_store *s, const char *name, bool defer,
                      strata__file **out) {
  strata__file *f = calloc(1, sizeof *f);
  if (f == NULL || (f->path = join(s->dir, name)) == NULL) {
    free(f);
    return strata__fail(STRATA_E_NOMEM, "%s/%s: allocating", s->dir, name);
  }
  struct stat st;
  int rc = stat(f->path, &st) == 0
               ? strata__region_open_ex(f->path, STRATA_OPEN_DEFAULT, defer,
                                        &f->region)
               : strata__fail_errno(errno, "%s: stat", f->path);
  if (rc < 0) {
    free(f->path);
    free(f);
    return rc;
  }
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->refs = 1;
  f->checksum_pending = defer;
  f->opened_unix_ms = strata__unix_ms();
  *out = f;
  return 0;
}

void strata__file_unref(struct strata_store *s, strata__file *f) {
  if (f == NULL || --f->refs > 0)
    return;
  /* The zero-staging path may have registered the mapping with the device
   * and have copies from it in flight. */
  strata__direct_forget(s->staging, f->region->base);
  strata_region_close(f->region);
  free(f->path);
  free(f);
}

static bool is_region_name(const char *n) {
  size_t len = strlen(n), sl = strlen(REGION_SUFFIX);
  return n[0] != '.' && len > sl && strcmp(n + len - sl, REGION_SUFFIX) == 0;
}

/* ".NAME.tmp-XXXXXXXX" (8 hex digits): the writer's temporary files
 * (writer.c). Matched at the end, since NAME may contain ".tmp-" itself. */
static bool is_temp_name(const char *n) {
  size_t len = strlen(n);
  if (n[0] != '.' || len < 2 + 5 + 8 || memcmp(n + len - 13, ".tmp-", 5) != 0)
    return false;
  for (size_t i = len - 8; i < len; i++)
    if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
      return false;
  return true;
}

/* Removes a temporary file unless a live writer holds it: writers keep an
 * flock on their temporary file until they close it (writer.c), and the
 * lock dies with the process, so a lock we can take means a dead writer.
 * (The store's own writer lock does not cover region-builder and other
 * strata_writer users writing into the directory.) */
static void remove_temp(struct strata_store *s, const char *name) {
  int fd = openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return;
  bool dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (dead && unlinkat(s->dirfd, name, 0) == 0)
    strata__log(&s->log, STRATA_LOG_INFO, "store",
                "msg=\"removed a temporary file of an interrupted write\" "
                "dir=%s file=%s",
                s->dir, name);
  else if (dead)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"could not remove a temporary file of an "
                "interrupted write\" dir=%s file=%s errno=%s",
                s->dir, name, strerrorname_np(errno));
  else
    strata__log(&s->log, STRATA_LOG_DEBUG, "store",
                "msg=\"temporary file in use by a live writer; left alone\" "
                "dir=%s file=%s",
                s->dir, name);
  close(fd);
}

/* Lists the region files (is_region_name) of the directory, sorted, and,
 * with `clean`, removes temporary files left by interrupted writes. */
static int list_dir(struct strata_store *s, bool clean, char ***names,
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
    if (!is_region_name(de->d_name))
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
    for (size_t i = 1; i < n; i++) /* insertion sort: directories are small */
      for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
        char *t = v[j];
        v[j] = v[j - 1];
        v[j - 1] = t;
      }
    *names = v;
    *count = n;
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
  return rc;
}

static void free_names(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* ---- parallel validation ----------------------------------------------------
 */

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

/* Is `name` a region the store refuses to serve, with a reason logged? */
static bool conflicts(struct strata_store *s, strata__entry **have, size_t n,
                      const strata__file *f) {
  const strata_region *r = f->region;
  strata_region_info info;
  strata_region_info_get(r, &info);
  for (size_t i = 0; i < n; i++) {
    const char *why = have[i]->id == info.id                  ? "region id"
                      : strcmp(have[i]->name, info.name) == 0 ? "region name"
                                                              : NULL;
    if (why != NULL) {
      strata__log(&s->log, STRATA_LOG_WARN, "store",
                  "msg=\"region skipped: %s already served\" file=%s "
                  "region_id=%" PRIu64 " served_by=%s",
                  why, f->path, info.id,
                  have[i]->file ? have[i]->file->path : "(proto)");
      return true;
    }
  }
  return false;
}

static strata__entry *entry_for_file(strata__file *f) {
  strata_region_info info;
  strata_region_info_get(f->region, &info);
  strata__entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return NULL;
  e->id = info.id;
  e->name = strdup(info.name);
  e->metadata = strdup(info.metadata);
  if (e->name == NULL || e->metadata == NULL) {
    free(e->name);
    free(e->metadata);
    free(e);
    return NULL;
  }
  e->file = f;
  return e;
}

/* Opens the named files and turns them into entries, skipping (and
 * logging) the ones that fail or conflict with `have` or each other.
 * Appends to have[*n]; `have` must have room for *n + count entries. */
static int load_files(struct strata_store *s, char **names, size_t count,
                      bool defer, strata__entry **have, size_t *n) {
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
    if (j.rcs[i] < 0) {
      strata__log(&s->log, STRATA_LOG_WARN, "store",
                  "msg=\"region skipped: it does not validate\" dir=%s "
                  "file=%s error=%s detail=\"%s\"",
                  s->dir, names[i], strata_err_name(j.rcs[i]),
                  j.details[i] ? j.details[i] : "");
      continue;
    }
    if (conflicts(s, have, *n, j.files[i]))
      continue;
    strata__entry *e = entry_for_file(j.files[i]);
    if (e == NULL) {
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
      break;
    }
    j.files[i] = NULL; /* owned by the entry now */
    have[(*n)++] = e;
    strata__log(
        &s->log, STRATA_LOG_INFO, "store",
        "msg=\"region loaded\" file=%s region_id=%" PRIu64 " layers=%" PRIu64,
        e->file->path, e->id, strata_region_layer_count(e->file->region));
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

static int refresh_locked(strata_store *s);

/* ---- the writer lock ------------------------------------------------------
 */

static int try_lock(struct strata_store *s, int *fdp, bool create) {
  int fd =
      openat(s->dirfd, LOCK_NAME,
             O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0644);
  if (fd < 0)
    return -errno;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  *fdp = fd;
  return 0;
}

static long lock_holder(struct strata_store *s) {
  char buf[32] = {0};
  int fd = openat(s->dirfd, LOCK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  return k > 0 ? strtol(buf, NULL, 10) : -1;
}

int strata__store_lock(struct strata_store *s) {
  if (s->lockfd >= 0)
    return 0;
  STRATA__FAIL_IF(s->config.flags & STRATA_STORE_READ_ONLY, STRATA_E_STATE,
                  "%s: the store was opened read-only", s->dir);
  int rc = -EWOULDBLOCK;
  for (int i = 0; i < LOCK_RETRY_MS / 5 && rc == -EWOULDBLOCK; i++) {
    rc = try_lock(s, &s->lockfd, true);
    if (rc == -EWOULDBLOCK) {
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
  if (rc == -EWOULDBLOCK)
    return strata__fail(STRATA_E_LOCKED, "%s: store is locked by pid %ld",
                        s->dir, lock_holder(s));
  if (rc < 0)
    return strata__fail_errno(-rc, "%s/%s: taking the writer lock", s->dir,
                              LOCK_NAME);
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(s->lockfd, 0) != 0 ||
      pwrite(s->lockfd, pid, (size_t)len, 0) != len)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"could not record the pid in the lock file\" dir=%s",
                s->dir);
  /* We are the only writer now: whatever temporary files exist belong to
   * writers that died. And another process may have crystallized since
   * this store opened: refresh, so that protos build on the files as they
   * are (a proto on a stale file would undo that process's change). */
  char **names = NULL;
  size_t n = 0;
  if (list_dir(s, true, &names, &n) == 0)
    free_names(names, n);
  int rrc = refresh_locked(s);
  if (rrc < 0) {
    close(s->lockfd);
    s->lockfd = -1;
    return rrc;
  }
  strata__log(&s->log, STRATA_LOG_INFO, "store",
              "msg=\"writer lock taken\" dir=%s pid=%ld", s->dir,
              (long)getpid());
  return 0;
}

/* ---- the index checksum verifier ---------------------------------------- */

/* Reading the whole index to checksum it is most of the cost of opening a
 * region (about 72 bytes per layer: 100 MB for 14 regions of 100,000
 * layers, which memory bandwidth alone makes take longer than the 10 ms a
 * store open may take). Every structural check, which is what makes a
 * lookup safe, runs before a region is served; the checksum, which catches
 * corruption that is still structurally valid, is checked here just after,
 * and a region that fails it is withdrawn. */
static void *verify_main(void *arg) {
  struct strata_store *s = arg;
  for (size_t i = 0; i < s->verify_n; i++) {
    strata__file *f = s->verify_files[i];
    if (atomic_load_explicit(&s->verify_stop, memory_order_relaxed))
      break;
    int rc = strata__region_check_index(f->region, f->path);
    pthread_mutex_lock(&s->write_mu);
    if (rc < 0) {
      strata__catalog *c =
          atomic_load_explicit(&s->catalog, memory_order_relaxed);
      for (uint64_t k = 0; k < c->n; k++) {
        if (c->by_order[k]->file != f)
          continue;
        uint64_t id = c->by_order[k]->id;
        strata__log(&s->log, STRATA_LOG_ERROR, "store",
                    "msg=\"region withdrawn: its index does not match its "
                    "checksum\" file=%s region_id=%" PRIu64 " detail=\"%s\"",
                    f->path, id, strata_last_error_detail());
        if (strata__catalog_swap(s, NULL, id) < 0)
          strata__log(&s->log, STRATA_LOG_ERROR, "store",
                      "msg=\"could not withdraw the region\" file=%s", f->path);
        break;
      }
    }
    f->checksum_pending = false;
    strata__file_unref(s, f);
    s->verify_files[i] = NULL;
    pthread_mutex_unlock(&s->write_mu);
  }
  return NULL;
}

static void start_verifier(struct strata_store *s, strata__catalog *c) {
  size_t n = 0;
  for (uint64_t i = 0; i < c->n; i++)
    n += c->by_order[i]->file->checksum_pending;
  if (n == 0 ||
      (s->verify_files = calloc(n, sizeof *s->verify_files)) == NULL) {
    /* Without memory for the list, check now: slower, never skipped. */
    for (uint64_t i = 0; n > 0 && i < c->n; i++) {
      strata__file *f = c->by_order[i]->file;
      if (f->checksum_pending) {
        s->verify_files = &f; /* a list of one, on the stack */
        s->verify_n = 1;
        f->refs++;
        verify_main(s);
      }
    }
    s->verify_files = NULL;
    s->verify_n = 0;
    return;
  }
  for (uint64_t i = 0; i < c->n; i++)
    if (c->by_order[i]->file->checksum_pending) {
      s->verify_files[s->verify_n++] = c->by_order[i]->file;
      c->by_order[i]->file->refs++;
    }
  if (pthread_create(&s->verify_tid, NULL, verify_main, s) == 0)
    s->verify_running = true;
  else
    verify_main(s);
}

void strata__store_await_verify(struct strata_store *s) {
  pthread_mutex_lock(&s->verify_mu);
  if (s->verify_running) {
    pthread_join(s->verify_tid, NULL);
    s->verify_running = false;
  }
  pthread_mutex_unlock(&s->verify_mu);
}

/* Reports a store directory that others can tamper with or that this
 * process cannot write to: region files are trusted to be immutable, and a
 * directory someone else may write into can have them replaced or
 * truncated under the mapping (see the caveats in strata.h). Logged, not
 * refused: the administrator decides. */
static void check_dir_permissions(struct strata_store *s) {
  struct stat st;
  if (fstat(s->dirfd, &st) != 0)
    return;
  uid_t me = geteuid();
  if (st.st_uid != me && me != 0)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"store directory is owned by another user\" dir=%s "
                "owner_uid=%ld uid=%ld",
                s->dir, (long)st.st_uid, (long)me);
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"store directory is writable by every user: anyone can "
                "replace or truncate its region files\" dir=%s mode=%04o",
                s->dir, (unsigned)(st.st_mode & 07777));
  if (!(s->config.flags & STRATA_STORE_READ_ONLY) &&
      faccessat(s->dirfd, ".", W_OK, AT_EACCESS) != 0)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"store directory is not writable by this process: "
                "writes will fail (open it read-only)\" dir=%s mode=%04o",
                s->dir, (unsigned)(st.st_mode & 07777));
}

/* ---- open and close
 * ----------------------------------------------------------- */

int strata_store_open(const char *dir, const strata_store_config *config,
                      strata_store **out) {
  STRATA__FAIL_IF(dir == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_store_open: NULL argument");
  strata_store_config c;
  STRATA__TRY(check_config(dir, config, &c));
  strata_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(dir)) == NULL) {
    free(s);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the store", dir);
  }
  s->config = c;
  s->lockfd = -1;
  s->count_reads = !(c.flags & STRATA_STORE_NO_READ_STATS);
  strata__logger_init(&s->log, c.log_level, c.log_fn, c.log_ctx);
  pthread_mutex_init(&s->write_mu, NULL);
  pthread_mutex_init(&s->verify_mu, NULL);
  s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = s->dirfd < 0 ? strata__fail_errno(errno,
                                             "%s: opening the store "
                                             "directory",
                                             dir)
                        : strata__ebr_init(s, c.max_readers);
  if (rc == 0) {
    strata__pool_config pc = {.class_count = 13};
    for (unsigned i = 0; i < pc.class_count; i++)
      pc.class_sizes[i] = 16u << i; /* 16 B (links) .. 64 KiB */
    rc = strata__pool_create(&pc, &s->pool);
  }
  char **names = NULL;
  size_t n = 0;
  if (rc == 0)
    check_dir_permissions(s);
  if (rc == 0) {
    /* Clean up after interrupted writers only when no writer is alive: a
     * brief lock, released at once unless this process writes later. */
    int fd = -1;
    bool clean =
        !(c.flags & STRATA_STORE_READ_ONLY) && try_lock(s, &fd, true) == 0;
    rc = list_dir(s, clean, &names, &n);
    if (fd >= 0)
      close(fd);
  }
  strata__entry **entries = NULL;
  size_t count = 0;
  if (rc == 0 && (entries = calloc(n ? n : 1, sizeof *entries)) == NULL)
    rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", dir);
  if (rc == 0)
    rc = load_files(s, names, n, !(c.flags & STRATA_STORE_VERIFY_AT_OPEN),
                    entries, &count);
  free_names(names, n);
  strata__catalog *cat = NULL;
  if (rc == 0)
    rc = strata__catalog_build(entries, count, &cat);
  if (rc < 0) {
    for (size_t i = 0; i < count; i++)
      strata__entry_free(s, entries[i]);
    free(entries);
    strata_store_close(s);
    return rc;
  }
  free(entries);
  atomic_init(&s->catalog, cat);
  /* The staging pool comes last: pinning its slabs is the slow part of an
   * open that has it, and nothing before depends on it. */
  rc = strata__staging_open(s, &s->staging);
  if (rc < 0) {
    strata_store_close(s);
    return rc;
  }
  start_verifier(s, cat);
  strata__log(&s->log, STRATA_LOG_INFO, "store",
              "msg=\"store opened\" dir=%s regions=%" PRIu64, dir, cat->n);
  *out = s;
  return 0;
}

/* Frees everything the store still holds; no snapshot may be open. */
static void free_all(strata_store *s) {
  while (s->retired != NULL) {
    strata__retired *t = s->retired;
    s->retired = t->next;
    t->free_fn(s, t->obj);
    free(t);
  }
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  if (c != NULL) {
    for (uint64_t i = 0; i < c->n; i++) {
      if (c->by_order[i]->overlay != NULL)
        strata__overlay_free(s, c->by_order[i]->overlay);
      strata__entry_free(s, c->by_order[i]);
    }
    strata__catalog_free(c);
  }
  for (uint64_t i = 0; i < s->proto_n; i++)
    free(s->protos[i]);
  free(s->protos);
}

void strata_store_close(strata_store *s) {
  if (s == NULL)
    return;
  atomic_store_explicit(&s->verify_stop, true, memory_order_relaxed);
  strata__store_await_verify(s);
  for (size_t i = 0; i < s->verify_n; i++) /* the ones it did not reach */
    strata__file_unref(s, s->verify_files[i]);
  free(s->verify_files);
  if (s->slots != NULL)
    strata__ebr_wait(s, UINT64_MAX - 1);
  /* After the snapshots: a reader in one may still sample into the rings
   * or stage. */
  strata__staging_close(s->staging);
  s->staging = NULL;
  s->hot_rings = NULL;
  free_all(s);
  strata__pool_destroy(s->pool);
  strata__ebr_destroy(s);
  if (s->lockfd >= 0)
    close(s->lockfd); /* releases the flock */
  if (s->dirfd >= 0)
    close(s->dirfd);
  pthread_mutex_destroy(&s->write_mu);
  pthread_mutex_destroy(&s->verify_mu);
  free(s->dir);
  free(s);
}

/* ---- refresh
 * -------------------------------------------------------------------- */

/* Does the directory entry `name` still hold the file `f` (same inode)? */
static bool same_file(const strata_store *s, const strata__file *f,
                      const char *name) {
  struct stat st;
  size_t dl = strlen(s->dir);
  if (strncmp(f->path, s->dir, dl) != 0 || f->path[dl] != '/' ||
      strcmp(f->path + dl + 1, name) != 0)
    return false;
  if (fstatat(s->dirfd, name, &st, 0) != 0)
    return errno != ENOENT; /* an I/O error is no proof that it changed */
  return st.st_dev == f->dev && st.st_ino == f->ino;
}

static bool file_name_is(const strata_store *s, const strata__file *f,
                         const char *name) {
  size_t dl = strlen(s->dir);
  return strncmp(f->path, s->dir, dl) == 0 && f->path[dl] == '/' &&
         strcmp(f->path + dl + 1, name) == 0;
}

static int refresh_locked(strata_store *s) {
  strata__catalog *old =
      atomic_load_explicit(&s->catalog, memory_order_relaxed);
  char **names = NULL;
  size_t n = 0;
  STRATA__TRY(list_dir(s, false, &names, &n));
  strata__entry **keep = calloc(old->n + n + 1, sizeof *keep);
  strata__entry **drop = calloc(old->n + 1, sizeof *drop);
  char **load = calloc(n + 1, sizeof *load);
  int rc = keep && drop && load
               ? 0
               : strata__fail(STRATA_E_NOMEM, "%s: refresh", s->dir);
  size_t nkeep = 0, ndrop = 0, nload = 0;
  /* Entries carried over: regions with a proto here (this process is their
   * writer), and files still in the directory under the same inode. */
  for (uint64_t i = 0; rc == 0 && i < old->n; i++) {
    strata__entry *e = old->by_order[i];
    bool kept = e->overlay != NULL || e->file == NULL;
    for (size_t k = 0; !kept && k < n; k++)
      kept = same_file(s, e->file, names[k]);
    if (kept) {
      keep[nkeep++] = e;
    } else {
      drop[ndrop++] = e;
      strata__log(&s->log, STRATA_LOG_INFO, "store",
                  "msg=\"region file removed or replaced on disk\" file=%s "
                  "region_id=%" PRIu64,
                  e->file->path, e->id);
    }
  }
  /* Files to load: those no carried-over entry serves. */
  for (size_t k = 0; rc == 0 && k < n; k++) {
    bool served = false;
    for (size_t i = 0; i < nkeep && !served; i++)
      served =
          keep[i]->file != NULL && file_name_is(s, keep[i]->file, names[k]);
    if (!served)
      load[nload++] = names[k];
  }
  size_t first_new = nkeep;
  if (rc == 0)
    rc = load_files(s, load, nload, false, keep, &nkeep);
  for (size_t i = first_new; rc == 0 && i < nkeep; i++) {
    const strata__entry *prev = strata__catalog_find(old, keep[i]->id);
    if (prev != NULL)
      keep[i]->generation = prev->generation + 1;
  }
  if (rc == 0 && (ndrop > 0 || nkeep > first_new))
    rc = strata__catalog_publish(s, keep, nkeep, drop, ndrop);
  if (rc < 0)
    for (size_t i = first_new; i < nkeep; i++)
      strata__entry_free(s, keep[i]);
  free(keep);
  free(drop);
  free(load);
  free_names(names, n);
  return rc;
}

int strata_store_refresh(strata_store *s) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_store_refresh: NULL");
  strata__store_await_verify(s);
  pthread_mutex_lock(&s->write_mu);
  int rc = refresh_locked(s);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}

/* ---- reclamation and statistics
 * -------------------------------------------------- */

void strata__store_maintain(struct strata_store *s) {
  uint64_t min = strata__ebr_min_epoch(s);
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  bool pruned = false;
  for (uint64_t i = 0; i < c->n; i++) {
    strata__overlay *o = c->by_order[i]->overlay;
    if (o == NULL || (o->dirty_n == 0 && o->count_records <= 1))
      continue;
    uint64_t before = o->lvers + o->count_records;
    strata__overlay_prune(s, o, min);
    pruned |= o->lvers + o->count_records != before;
  }
  if (pruned)
    strata__ebr_advance(s); /* readers that start now cannot see them */
  strata__ebr_collect(s);
}

int strata_store_reclaim(strata_store *s, int wait) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_store_reclaim: NULL");
  if (wait) {
    strata__reader *self = pthread_getspecific(s->slot_key);
    STRATA__FAIL_IF(self != NULL && self->depth > 0, STRATA_E_STATE,
                    "%s: strata_store_reclaim(wait) inside a snapshot of the "
                    "same store would wait for itself",
                    s->dir);
    pthread_mutex_lock(&s->write_mu);
    strata__store_maintain(s); /* prunes and advances */
    uint64_t e = strata__ebr_advance(s) - 1;
    pthread_mutex_unlock(&s->write_mu);
    strata__ebr_wait(s, e);
  }
  pthread_mutex_lock(&s->write_mu);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}

int strata_store_stats_get(strata_store *s, strata_store_stats *out) {
  STRATA__FAIL_IF(s == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_store_stats_get: NULL argument");
  pthread_mutex_lock(&s->write_mu);
  *out = s->stats;
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  out->regions = c->n;
  out->protos = 0;
  for (uint64_t i = 0; i < c->n; i++)
    out->protos += c->by_order[i]->overlay != NULL;
  out->heap_bytes = strata__store_heap(s);
  out->memory_limit = s->config.memory_limit;
  out->retired_bytes =
      atomic_load_explicit(&s->retired_bytes, memory_order_relaxed);
  out->retired_objects =
      atomic_load_explicit(&s->retired_count, memory_order_relaxed);
  out->version = atomic_load_explicit(&s->epoch, memory_order_relaxed);
  strata__ebr_snapshot_stats(s, &out->snapshots_open, &out->oldest_snapshot_ms);
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}

size_t strata_store_pool_stats(strata_store *s, strata_pool_stats *rows,
                               size_t max) {
  if (s == NULL)
    return 0;
  strata__pool_class_stats tmp[STRATA__POOL_MAX_CLASSES + 1];
  pthread_mutex_lock(&s->write_mu);
  size_t n = strata__pool_stats(s->pool, tmp, STRATA__POOL_MAX_CLASSES + 1);
  pthread_mutex_unlock(&s->write_mu);
  for (size_t i = 0; i < n && i < max && rows != NULL; i++)
    rows[i] = (strata_pool_stats){.block_size = tmp[i].block_size,
                                  .chunks = tmp[i].chunks,
                                  .blocks_total = tmp[i].blocks_total,
                                  .blocks_used = tmp[i].blocks_used,
                                  .bytes_reserved = tmp[i].bytes_reserved,
                                  .bytes_requested = tmp[i].bytes_requested,
                                  .utilization = tmp[i].utilization,
                                  .fragmentation = tmp[i].fragmentation,
                                  .allocs = tmp[i].allocs,
                                  .frees = tmp[i].frees,
                                  .failures = tmp[i].failures};
  return n;
}
