/* The shared view of a live store: STORE/.strata.shm, a shared file in
 * which every process that opens the store registers, so that others
 * (strata readers, strata top) see who has it open and what they do, as
 * LMDB's lock file holds its reader table.
 *
 * Liveness: a lock per slot, not pid + start time. A process owns its slot
 * by an open-file-description lock (F_OFD_SETLK) on the slot's 256 bytes,
 * held for as long as the store is open. The kernel drops it when the
 * description's last descriptor closes, which includes every way a process
 * dies (SIGKILL too), so a slot whose lock can be taken is free or its
 * owner is dead, and nothing a dead process leaves blocks anyone: the next
 * store that opens takes the slot over. A pid alone could be reused by an
 * unrelated process; pid + start time needs /proc and a clock both sides
 * read alike. OFD locks rather than classic POSIX locks because POSIX
 * locks belong to the process, so two stores of one process would share
 * them and closing any descriptor of the file would drop them all; flock
 * cannot lock a byte range. (An OFD lock is shared with a child that
 * inherits the descriptor across fork(): the descriptor is O_CLOEXEC, so
 * exec drops it, but a forked child that keeps running keeps the slot
 * "live" until it exits too.)
 *
 * Publication: the read path does not touch the file. Reads count in the
 * snapshot and fold into the thread's reader slot at strata_read_end(), as
 * before; a publisher thread copies the sums (and the snapshot ages, the
 * crystallizations, the memory level, the staging pool's figures) into the
 * process's slot once per STRATA__SHM_PUBLISH_MS, at
 * strata_processes_publish() and at close, under a sequence lock so that a
 * reader sees one publication whole. strata-bench --scenario store-read
 * compares gets with the view on and off.
 *
 * Trust: the file is read like any file: its header is checked (magic,
 * version, sizes, the file's length, a regular file reached without a
 * symbolic link) before any slot is read, and a slot's figures are shown
 * as they are, never used to index or size anything. The file is never
 * mapped (see slot_pwrite), so a process that can write it, truncating it
 * included, can make the view lie, not make the store or a reader crash. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "store/store_shm.h"

/* ---- the file ------------------------------------------------------------ */

static off_t slot_offset(uint32_t i) {
  return (off_t)STRATA__SHM_HEADER_SIZE + (off_t)i * STRATA__SHM_SLOT_SIZE;
}

/* Checks an open file: a regular file whose header and length are those of
 * a shared view. `path` names it in the detail. *count: its slots. */
static int validate(int fd, const char *path, uint32_t *count) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return strata__fail_errno(errno, "%s: fstat", path);
  STRATA__FAIL_IF(!S_ISREG(st.st_mode), STRATA_E_BAD_SHM,
                  "%s: %s, not a regular file (remove it: the next store "
                  "to open recreates it)",
                  path, strata__file_type_name(st.st_mode));
  strata__shm_header h;
  ssize_t got = st.st_size >= (off_t)sizeof h ? pread(fd, &h, sizeof h, 0) : 0;
  if (got < 0)
    return strata__fail_errno(errno, "%s: reading the header", path);
  STRATA__FAIL_IF(got < (ssize_t)sizeof h, STRATA_E_BAD_SHM,
                  "%s: truncated at offset %jd: the header needs %u bytes",
                  path, (intmax_t)st.st_size, STRATA__SHM_HEADER_SIZE);
  STRATA__FAIL_IF(memcmp(h.magic, STRATA__SHM_MAGIC, 8) != 0, STRATA_E_BAD_SHM,
                  "%s: offset 0: bad magic, not a shared view file "
                  "(expected \"" STRATA__SHM_MAGIC "\")",
                  path);
  STRATA__FAIL_IF(h.version != STRATA__SHM_VERSION, STRATA_E_BAD_SHM,
                  "%s: offset 8: format version %" PRIu32
                  ", this library reads version %u",
                  path, h.version, STRATA__SHM_VERSION);
  STRATA__FAIL_IF(h.header_size != STRATA__SHM_HEADER_SIZE, STRATA_E_BAD_SHM,
                  "%s: offset 12: header size %" PRIu32 ", expected %u", path,
                  h.header_size, STRATA__SHM_HEADER_SIZE);
  STRATA__FAIL_IF(h.slot_size != STRATA__SHM_SLOT_SIZE, STRATA_E_BAD_SHM,
                  "%s: offset 16: slot size %" PRIu32 ", expected %u", path,
                  h.slot_size, STRATA__SHM_SLOT_SIZE);
  STRATA__FAIL_IF(h.slot_count == 0 || h.slot_count > STRATA__SHM_MAX_SLOTS,
                  STRATA_E_BAD_SHM,
                  "%s: offset 20: slot count %" PRIu32 ", expected 1 to %u",
                  path, h.slot_count, STRATA__SHM_MAX_SLOTS);
  off_t want = slot_offset(h.slot_count);
  STRATA__FAIL_IF(st.st_size < want, STRATA_E_BAD_SHM,
                  "%s: truncated at offset %jd: its %" PRIu32
                  " slots end at %jd",
                  path, (intmax_t)st.st_size, h.slot_count, (intmax_t)want);
  STRATA__FAIL_IF(st.st_size > want, STRATA_E_BAD_SHM,
                  "%s: offset %jd: %jd bytes past the last slot", path,
                  (intmax_t)want, (intmax_t)(st.st_size - want));
  *count = h.slot_count;
  return 0;
}

/* Opens and validates `path` (O_RDONLY or O_RDWR), never through a
 * symbolic link and never blocking on a FIFO. -ENOENT when there is no
 * file. */
static int open_view(int dirfd, const char *path, const char *name, int mode,
                     int *fdp, uint32_t *count) {
  int fd = openat(dirfd, name, mode | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && errno == ELOOP)
    return strata__fail(STRATA_E_BAD_SHM,
                        "%s: a symbolic link, not a regular file (remove "
                        "it: the next store to open recreates it)",
                        path);
  if (fd < 0)
    return errno == ENOENT
               ? -ENOENT
               : strata__fail_errno(errno, "%s: opening the shared view", path);
  int rc = validate(fd, path, count);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  *fdp = fd;
  return 0;
}

/* Gives the O_TMPFILE `fd` the name .strata.shm, as pubfile.c names
 * its own: linkat() with AT_EMPTY_PATH where allowed (CAP_DAC_READ_SEARCH,
 * or since Linux 6.10 a file this process opened), else through
 * /proc/self/fd. 0, -EEXIST when another process was first, or another
 * -errno (ENOENT: neither is allowed here). Without the permission the
 * AT_EMPTY_PATH form fails with ENOENT before it looks at the new name. */
static int link_anonymous(int fd, int dirfd) {
  if (linkat(fd, "", dirfd, STRATA__SHM_FILE, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno == EEXIST)
    return -EEXIST;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, proc, dirfd, STRATA__SHM_FILE, AT_SYMLINK_FOLLOW) == 0
             ? 0
             : -errno;
}

/* Writes the whole file (mode, length, header) at `fd`. */
static int fill_view(int fd, mode_t mode, const char *path) {
  strata__shm_header h = {.version = STRATA__SHM_VERSION,
                          .header_size = STRATA__SHM_HEADER_SIZE,
                          .slot_size = STRATA__SHM_SLOT_SIZE,
                          .slot_count = STRATA__SHM_SLOTS,
                          .created_unix_ms = strata__unix_ms()};
  memcpy(h.magic, STRATA__SHM_MAGIC, 8);
  if (fchmod(fd, mode) != 0 ||
      ftruncate(fd, slot_offset(STRATA__SHM_SLOTS)) != 0 ||
      pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
    return strata__fail_errno(errno, "%s: writing the shared view", path);
  return 0;
}

/* Creates the file whole before it gets its name, so that no process ever
 * sees it half written: linking fails with EEXIST when another process
 * was first, and then its file is used. Preferred: an O_TMPFILE, which
 * has no name until it is whole and leaves nothing behind, whatever kills
 * the process. Else (a file system without O_TMPFILE, or no way to link
 * one) a named temporary file, ".strata.shm.XXXXXXXX.tmp" with a random
 * name created exclusively: each opener has its own, never another's (a
 * name made of the pid alone is shared by two stores of one process, and
 * by processes of two pid namespaces), and only a process killed between
 * its creation and link leaves one behind. Mode 0640 when the directory
 * is readable by its group (whose members, such as a monitoring user, may
 * then read the view; a setgid directory gives the file its group), 0600
 * otherwise; never readable by others. */
static int create_view(struct strata_store *s, const char *path) {
  struct stat dst;
  mode_t mode =
      fstat(s->dirfd, &dst) == 0 && (dst.st_mode & S_IRGRP) ? 0640 : 0600;
  int fd = -1, rc;
#ifdef O_TMPFILE
  fd = openat(s->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
  if (fd >= 0) {
    rc = fill_view(fd, mode, path);
    int linked = rc == 0 ? link_anonymous(fd, s->dirfd) : 0;
    close(fd);
    if (rc < 0 || linked == 0 || linked == -EEXIST)
      return rc;
    if (linked != -ENOENT)
      return strata__fail_errno(-linked, "%s: linking the shared view", path);
  } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL &&
             errno != ENOENT) {
    return strata__fail_errno(errno, "%s: creating the shared view", path);
  }
#endif
  char tmp[64];
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
                 (uint64_t)(uintptr_t)&ts;
  for (int tries = 0; fd < 0 && tries < 100; tries++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    snprintf(tmp, sizeof tmp, STRATA__SHM_FILE ".%08" PRIx64 ".tmp", rng >> 32);
    fd = openat(s->dirfd, tmp,
                O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0)
    return strata__fail_errno(errno, "%s: creating the shared view", path);
  rc = fill_view(fd, mode, path);
  if (rc == 0 && linkat(s->dirfd, tmp, s->dirfd, STRATA__SHM_FILE, 0) != 0 &&
      errno != EEXIST)
    rc = strata__fail_errno(errno, "%s: linking the shared view", path);
  unlinkat(s->dirfd, tmp, 0);
  close(fd);
  return rc;
}

static int slot_lock(int fd, uint32_t i, short type, int cmd) {
  struct flock fl = {.l_type = type,
                     .l_whence = SEEK_SET,
                     .l_start = slot_offset(i),
                     .l_len = STRATA__SHM_SLOT_SIZE};
  return fcntl(fd, cmd, &fl) == 0 ? 0 : -errno;
}

/* Whether slot i's lock is held by some open file description other than
 * the caller's. */
static bool slot_live(int fd, uint32_t i) {
  struct flock fl = {.l_type = F_WRLCK,
                     .l_whence = SEEK_SET,
                     .l_start = slot_offset(i),
                     .l_len = STRATA__SHM_SLOT_SIZE};
  return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

/* The file is never mapped: slots are read and written with pread() and
 * pwrite(). A shared mapping would let any process that can write the file
 * (its owner's uid) crash every process that has it mapped, the store's
 * server and `strata readers` alike, by truncating it (SIGBUS on the next
 * access), and an owner writing its slot into a hole of the sparse file on
 * a full file system would fault the same way; through the calls both are
 * an error at worst. A slot is touched once a second and by the CLI, so
 * the system calls cost nothing that matters.
 *
 * The sequence lock over the calls: the owner writes seq + 1 (odd), then
 * the words, then seq + 2, each by its own pwrite(); a reader reads seq,
 * then the words, then seq again, each by its own pread(), and keeps the
 * words when both seqs are the same even number. Each call completes before
 * the next begins and the kernel orders the page-cache copies of successive
 * calls, so a reader that saw the same even seq before and after read no
 * word of a publication that began in between. */
static int slot_pwrite(int fd, uint32_t i, unsigned word, const void *p,
                       size_t len) {
  off_t at = slot_offset(i) + (off_t)word * 8;
  ssize_t k;
  while ((k = pwrite(fd, p, len, at)) < 0 && errno == EINTR)
    ;
  return k == (ssize_t)len ? 0 : k < 0 ? -errno : -EIO;
}

/* 1: read; 0: the file ends before it (truncated since it was checked);
 * -errno. */
static int slot_pread(int fd, uint32_t i, unsigned word, void *p, size_t len) {
  off_t at = slot_offset(i) + (off_t)word * 8;
  ssize_t k;
  while ((k = pread(fd, p, len, at)) < 0 && errno == EINTR)
    ;
  return k == (ssize_t)len ? 1 : k < 0 ? -errno : 0;
}

/* The owner's side: `words` (STRATA__SHM_WORDS of them, word 0 ignored)
 * written into slot i between two increments of *seq, the seq it last
 * wrote (even). Best effort: a failed write leaves the slot odd or stale,
 * which readers skip or show as it was; -errno. */
static int slot_write(int fd, uint32_t i, uint64_t *seq,
                      const uint64_t *words) {
  uint64_t odd = *seq + 1, even = *seq + 2;
  int rc = slot_pwrite(fd, i, 0, &odd, 8);
  if (rc == 0)
    rc = slot_pwrite(fd, i, 1, words + 1, (STRATA__SHM_WORDS - 1) * 8);
  if (rc == 0)
    rc = slot_pwrite(fd, i, 0, &even, 8);
  *seq = even;
  return rc;
}

/* The seq slot i holds now, made even: where its next writer starts (a
 * writer that died in the middle left it odd). */
static uint64_t slot_seq(int fd, uint32_t i) {
  uint64_t seq = 0;
  if (slot_pread(fd, i, 0, &seq, 8) != 1)
    seq = 0;
  return seq + (seq & 1);
}

/* The file was checked whole when it was opened, and is shorter now. */
static int truncated_under(const char *path, uint32_t i) {
  return strata__fail(STRATA_E_BAD_SHM,
                      "%s: truncated while being read: slot %" PRIu32
                      " at offset %jd is past its end",
                      path, i, (intmax_t)slot_offset(i));
}

/* The reader's side: 1 with a consistent copy of slot i in `words`; 0 when
 * the owner kept writing (it is then in the middle of a publication for a
 * long time: stopped by a debugger, say); STRATA_E_BAD_SHM when the file
 * was truncated after it was checked (`path` and the offset named).
 * A publication is three pwrite() calls, but its thread may be preempted
 * between them and wait for a CPU for a few scheduler periods on a loaded
 * machine, far longer than a burst of sched_yield() lasts when this
 * thread's CPU has nothing else to run: so the yields are followed by
 * sleeps of a millisecond, for up to about half a second in all, before
 * the slot is given up (and left out of the list). */
static int slot_read(int fd, const char *path, uint32_t i, uint64_t *words) {
  for (unsigned tries = 0; tries < 1500; tries++) {
    uint64_t a = 0, b = 0;
    int rc = slot_pread(fd, i, 0, &a, 8);
    if (rc == 1 && (a & 1) == 0)
      rc = slot_pread(fd, i, 1, words + 1, (STRATA__SHM_WORDS - 1) * 8);
    if (rc == 1 && (a & 1) == 0)
      rc = slot_pread(fd, i, 0, &b, 8);
    if (rc == 0)
      return truncated_under(path, i);
    if (rc < 0)
      return strata__fail_errno(-rc,
                                "%s: reading slot %" PRIu32 " at offset %jd",
                                path, i, (intmax_t)slot_offset(i));
    if ((a & 1) == 0 && a == b)
      return 1;
    if (tries < 1000) {
      sched_yield();
    } else {
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, NULL);
    }
  }
  return 0;
}

/* ---- a store's registration -----------------------------------------------
 */

static void warn_no_view(struct strata_store *s, const char *why) {
  char qd[STRATA__LOG_PATH], qw[STRATA__LOG_TEXT];
  strata__log(&s->log, STRATA_LOG_WARN, "store",
              "msg=\"no shared view: other processes will not see this "
              "one\" dir=%s why=%s",
              strata__log_quote(qd, sizeof qd, s->dir),
              strata__log_quote(qw, sizeof qw, why));
}

void strata__shm_register(struct strata_store *s) {
  if (!s->config.shared_view)
    return;
  char *path = strata__store_path(s, STRATA__SHM_FILE, "");
  if (path == NULL) {
    warn_no_view(s, "out of memory");
    return;
  }
  int fd = -1, rc = -ENOENT;
  uint32_t count = 0;
  /* Twice: a file that is not there is created, then opened. */
  for (int attempt = 0; attempt < 2 && rc == -ENOENT; attempt++) {
    rc = open_view(s->dirfd, path, STRATA__SHM_FILE, O_RDWR, &fd, &count);
    if (rc == -ENOENT && attempt == 0)
      rc = create_view(s, path) < 0 ? 1 : -ENOENT;
  }
  strata__shm *m = NULL;
  uint32_t i = 0;
  if (rc == 0) {
    while (i < count && slot_lock(fd, i, F_WRLCK, F_OFD_SETLK) != 0)
      i++;
    if (i == count)
      strata__fail(STRATA_E_LIMIT, "%s: all %" PRIu32 " slots are taken", path,
                   count);
    else if ((m = calloc(1, sizeof *m)) == NULL)
      strata__fail(STRATA_E_NOMEM, "%s: allocating", path);
  }
  if (m == NULL) {
    /* rc 1: create_view's detail; otherwise the failure's. */
    warn_no_view(s, strata_last_error_detail());
    if (fd >= 0)
      close(fd);
    free(path);
    return;
  }
  free(path);
  *m = (strata__shm){.fd = fd,
                     .index = i,
                     .seq = slot_seq(fd, i),
                     .pid = (uint64_t)getpid(),
                     .opened_ms = strata__unix_ms()};
  pthread_mutex_init(&m->mu, NULL);
  pthread_mutex_init(&m->publish_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  /* The slot may hold a dead process's figures: all of them are replaced. */
  uint64_t w[STRATA__SHM_WORDS] = {0};
  w[STRATA__SHM_PID] = m->pid;
  w[STRATA__SHM_OPENED_MS] = w[STRATA__SHM_UPDATED_MS] = m->opened_ms;
  w[STRATA__SHM_ROLE] = 1; /* STRATA_PROCESS_READER */
  w[STRATA__SHM_LIMIT] = s->config.memory_limit;
  slot_write(m->fd, m->index, &m->seq, w);
  s->shm = m;
}

void strata__shm_publish(struct strata_store *s) {
  strata__shm *m = s->shm;
  if (m == NULL)
    return;
  uint64_t w[STRATA__SHM_WORDS] = {0};
  /* The reader slots' sums, as strata_read_stats_get() reads them. */
  uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_acquire);
  for (uint32_t i = 0; i < used; i++) {
    const strata__reader *r = &s->slots[i];
    w[STRATA__SHM_GETS] += atomic_load_explicit(&r->gets, memory_order_relaxed);
    w[STRATA__SHM_MISSES] +=
        atomic_load_explicit(&r->misses, memory_order_relaxed);
    w[STRATA__SHM_BYTES] +=
        atomic_load_explicit(&r->bytes, memory_order_relaxed);
    w[STRATA__SHM_SNAPSHOTS] +=
        atomic_load_explicit(&r->begins, memory_order_relaxed);
  }
  uint64_t now = strata__unix_ms(), oldest_age = 0;
  pthread_mutex_lock(&s->write_mu);
  strata__ebr_snapshot_stats(s, &w[STRATA__SHM_SNAPS_OPEN], &oldest_age);
  w[STRATA__SHM_CRYST] = s->stats.crystallizations;
  w[STRATA__SHM_CRYST_BYTES] = s->stats.crystallize_bytes;
  w[STRATA__SHM_EVICTIONS] = s->stats.evictions;
  w[STRATA__SHM_ROLE] = s->lockfd >= 0 ? 2 : 1; /* strata_process_role */
  pthread_mutex_unlock(&s->write_mu);
  if (w[STRATA__SHM_SNAPS_OPEN] > 0)
    w[STRATA__SHM_OLDEST_MS] = now - oldest_age;
  w[STRATA__SHM_HEAP] = strata__store_heap(s);
  w[STRATA__SHM_LIMIT] = s->config.memory_limit;
  w[STRATA__SHM_MEM_LEVEL] = strata__memory_level(s, w[STRATA__SHM_HEAP]);
  if (s->staging_figures != NULL) {
    strata__shm_staging st = {0};
    s->staging_figures(s->staging_figures_ctx, &st);
    w[STRATA__SHM_STAGING_BYTES] = st.bytes;
    w[STRATA__SHM_STAGING_USED] = st.used_bytes;
    w[STRATA__SHM_STAGING_LAYERS] = st.layers;
  }
  w[STRATA__SHM_UPDATED_MS] = now;
  w[STRATA__SHM_PID] = m->pid;
  w[STRATA__SHM_OPENED_MS] = m->opened_ms;
  pthread_mutex_lock(&m->publish_mu);
  slot_write(m->fd, m->index, &m->seq, w);
  pthread_mutex_unlock(&m->publish_mu);
}

static void *publisher(void *arg) {
  struct strata_store *s = arg;
  strata__shm *m = s->shm;
  pthread_mutex_lock(&m->mu);
  while (!m->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += STRATA__SHM_PUBLISH_MS / 1000;
    ts.tv_nsec += (long)(STRATA__SHM_PUBLISH_MS % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    if (m->stop)
      break;
    pthread_mutex_unlock(&m->mu);
    strata__shm_publish(s);
    pthread_mutex_lock(&m->mu);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

void strata__shm_start(struct strata_store *s) {
  strata__shm *m = s->shm;
  if (m == NULL)
    return;
  strata__shm_publish(s);
  /* Without the thread the figures are published only on request and at
   * close: worth a line, not a failure. */
  m->running = pthread_create(&m->tid, NULL, publisher, s) == 0;
  if (!m->running)
    warn_no_view(s, "cannot start the publisher thread: figures are "
                    "published only by strata_processes_publish()");
}

void strata__shm_stop(struct strata_store *s) {
  strata__shm *m = s->shm;
  if (m == NULL)
    return;
  if (m->running) {
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->tid, NULL);
    m->running = false;
  }
  strata__shm_publish(s);
}

void strata__shm_close(struct strata_store *s) {
  strata__shm *m = s->shm;
  if (m == NULL)
    return;
  uint64_t w[STRATA__SHM_WORDS] = {0}; /* pid 0: free */
  slot_write(m->fd, m->index, &m->seq, w);
  close(m->fd); /* drops the slot's lock */
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->publish_mu);
  pthread_cond_destroy(&m->cv);
  free(m);
  s->shm = NULL;
}

int strata_processes_publish(strata_store *s) {
  STRATA__FAIL_IF(s == NULL, STRATA_E_INVAL, "strata_processes_publish: NULL");
  strata__shm_publish(s);
  return 0;
}

/* ---- reading from outside ----------------------------------------------- */

static void to_process(const uint64_t *w, uint32_t index, strata_process *p) {
  *p = (strata_process){.struct_size = sizeof *p,
                        .role = (uint32_t)w[STRATA__SHM_ROLE],
                        .slot = index,
                        .memory_level = (uint32_t)w[STRATA__SHM_MEM_LEVEL],
                        .pid = (int64_t)w[STRATA__SHM_PID],
                        .opened_unix_ms = w[STRATA__SHM_OPENED_MS],
                        .updated_unix_ms = w[STRATA__SHM_UPDATED_MS],
                        .snapshots_open = w[STRATA__SHM_SNAPS_OPEN],
                        .oldest_snapshot_unix_ms = w[STRATA__SHM_OLDEST_MS],
                        .snapshots = w[STRATA__SHM_SNAPSHOTS],
                        .gets = w[STRATA__SHM_GETS],
                        .misses = w[STRATA__SHM_MISSES],
                        .bytes_served = w[STRATA__SHM_BYTES],
                        .crystallizations = w[STRATA__SHM_CRYST],
                        .crystallize_bytes = w[STRATA__SHM_CRYST_BYTES],
                        .evictions = w[STRATA__SHM_EVICTIONS],
                        .heap_bytes = w[STRATA__SHM_HEAP],
                        .memory_limit = w[STRATA__SHM_LIMIT],
                        .staging_bytes = w[STRATA__SHM_STAGING_BYTES],
                        .staging_used_bytes = w[STRATA__SHM_STAGING_USED],
                        .staging_layers = w[STRATA__SHM_STAGING_LAYERS]};
}

/* Opens DIR/.strata.shm from outside a store. 1 when the directory has no
 * such file; a directory that is missing or is not one is an error
 * naming it, not "nobody has the store open" (a mistyped STORE would
 * otherwise list no one, successfully). */
static int open_outside(const char *dir, int mode, char **path, int *fd,
                        uint32_t *count) {
  size_t len = strlen(dir);
  *path = malloc(len + sizeof "/" STRATA__SHM_FILE);
  if (*path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", dir);
  memcpy(*path, dir, len);
  memcpy(*path + len, "/" STRATA__SHM_FILE, sizeof "/" STRATA__SHM_FILE);
  /* O_PATH: searching the directory needs no read permission on it. */
  int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return strata__fail_errno(errno, "%s: opening the store directory", dir);
  int rc = open_view(dirfd, *path, STRATA__SHM_FILE, mode, fd, count);
  close(dirfd);
  return rc == -ENOENT ? 1 : rc;
}

int strata_processes_read(const char *dir, uint32_t struct_size,
                          strata_process **list, size_t *count) {
  STRATA__FAIL_IF(dir == NULL || list == NULL || count == NULL, STRATA_E_INVAL,
                  "strata_processes_read: NULL argument");
  STRATA__FAIL_IF(struct_size == 0 || struct_size % 8 != 0 ||
                      struct_size > sizeof(strata_process),
                  STRATA_E_INVAL,
                  "%s: strata_processes_read: struct_size %" PRIu32
                  " is not sizeof(strata_process) of this or an older "
                  "header (%zu)",
                  dir, struct_size, sizeof(strata_process));
  *list = NULL;
  *count = 0;
  char *path = NULL;
  int fd = -1;
  uint32_t slots = 0;
  int rc = open_outside(dir, O_RDONLY, &path, &fd, &slots);
  if (rc == 1) /* no file: nobody */
    rc = 0, slots = 0;
  char *out = NULL;
  size_t n = 0;
  for (uint32_t i = 0; i < slots && rc == 0; i++) {
    uint64_t w[STRATA__SHM_WORDS] = {0};
    if (!slot_live(fd, i))
      continue;
    int got = slot_read(fd, path, i, w);
    if (got < 0)
      rc = got;
    if (got != 1 || w[STRATA__SHM_PID] == 0)
      continue;
    if (n % 16 == 0) {
      char *grown = realloc(out, (n + 16) * struct_size);
      if (grown == NULL) {
        rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", dir);
        break;
      }
      out = grown;
    }
    strata_process p;
    to_process(w, i, &p);
    memcpy(out + n * struct_size, &p, struct_size);
    n++;
  }
  free(path);
  if (fd >= 0)
    close(fd);
  if (rc < 0) {
    free(out);
    return rc;
  }
  *list = (strata_process *)(void *)out;
  *count = n;
  return 0;
}

int strata_processes_check(const char *dir, size_t *cleared) {
  STRATA__FAIL_IF(dir == NULL, STRATA_E_INVAL,
                  "strata_processes_check: NULL dir");
  if (cleared != NULL)
    *cleared = 0;
  char *path = NULL;
  int fd = -1;
  uint32_t slots = 0;
  int rc = open_outside(dir, O_RDWR, &path, &fd, &slots);
  if (rc == 1) /* no file: nobody */
    rc = 0, slots = 0;
  size_t n = 0;
  for (uint32_t i = 0; i < slots && rc == 0; i++) {
    if (slot_lock(fd, i, F_WRLCK, F_OFD_SETLK) != 0)
      continue; /* its owner lives */
    /* Under the lock, so that no store takes the slot over meanwhile. */
    uint64_t pid = 0;
    int got = slot_pread(fd, i, STRATA__SHM_PID, &pid, 8);
    if (got == 1 && pid != 0) {
      uint64_t w[STRATA__SHM_WORDS] = {0}, seq = slot_seq(fd, i);
      int wr = slot_write(fd, i, &seq, w);
      got = wr == 0 ? 1 : wr;
      n += got == 1;
    }
    slot_lock(fd, i, F_UNLCK, F_OFD_SETLK);
    if (got == 0)
      rc = truncated_under(path, i);
    else if (got < 0)
      rc = strata__fail_errno(-got,
                              "%s: clearing slot %" PRIu32 " at offset %jd",
                              path, i, (intmax_t)slot_offset(i));
  }
  free(path);
  if (fd >= 0)
    close(fd);
  if (rc < 0)
    return rc;
  if (cleared != NULL)
    *cleared = n;
  return 0;
}

void strata_processes_free(strata_process *list) {
  free(list);
}
