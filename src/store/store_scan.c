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
#include "writer/writer_internal.h"

#define REGION_SUFFIX ".region"

static bool is_region_name(const char *n) {
  size_t len = strlen(n), sl = strlen(REGION_SUFFIX);
  return n[0] != '.' && len > sl && strcmp(n + len - sl, REGION_SUFFIX) == 0;
}

/* ".NAME.strata-tmp-XXXXXXXX" (8 lowercase hex digits): the name of the
 * writer's temporary files (writer_commit.c). Matched at the end, since
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
 * writer created it (writer_commit.c), and an O_TMPFILE gets its name only
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
 * (writer_commit.c), and the lock dies with the process, so a lock we can
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

/* Lists the region files (is_region_name) of the directory, sorted, and,
 * with `clean`, removes temporary files left by interrupted writes. */
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
    if (!is_region_name(de->d_name) || !regular_entry(s, de))
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
      char qf[STRATA__LOG_PATH], qb[STRATA__LOG_PATH];
      strata__log(
          &s->log, STRATA_LOG_WARN, "store",
          "msg=\"region skipped: %s already served\" file=%s "
          "region_id=%" PRIu64 " served_by=%s",
          why, strata__log_quote(qf, sizeof qf, f->path), info.id,
          strata__log_quote(qb, sizeof qb,
                            have[i]->file ? have[i]->file->path : "(proto)"));
      return true;
    }
  }
  return false;
}

/* The entry that serves a file just opened (taking over its reference). */
static strata__entry *entry_for_file(strata__file *f) {
  strata_region_info info;
  strata_region_info_get(f->region, &info);
  return strata__entry_new(info.id, info.name, info.metadata, f);
}

int strata__store_load(struct strata_store *s, char **names, size_t count,
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
    if (conflicts(s, have, *n, j.files[i]))
      continue;
    strata__entry *e = entry_for_file(j.files[i]);
    if (e == NULL) {
      rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", s->dir);
      break;
    }
    j.files[i] = NULL; /* owned by the entry now */
    have[(*n)++] = e;
    char qf[STRATA__LOG_PATH];
    strata__log(&s->log, STRATA_LOG_INFO, "store",
                "msg=\"region loaded\" file=%s region_id=%" PRIu64
                " layers=%" PRIu64,
                strata__log_quote(qf, sizeof qf, e->file->path), e->id,
                strata_region_layer_count(e->file->region));
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
