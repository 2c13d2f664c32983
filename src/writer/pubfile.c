/* The file publisher (pubfile.h): creates the temporary file in the target
 * directory, writes to it, fsync()s and validates it, renames it into
 * place and fsync()s the directory; abort removes it. This is the one
 * place that publishes a file: region-builder and crystallization come
 * through here by way of strata_writer (writer_commit.c), the remote
 * follower directly.
 *
 * Durability rules (the PostgreSQL "fsyncgate" lesson): the file descriptor
 * stays open from the first write to the fsync; a failed write or fsync is
 * final for that file, never retried, and a file whose write or fsync failed
 * is never renamed into place. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format/format.h"
#include "writer/pubfile.h"

struct strata__pubfile {
  char *path;     /* final path, as errors show it */
  char *name;     /* its basename, relative to dirfd */
  char *tmp_path; /* the temporary file's path while it has a name */
  char *tmp_name; /* the same, relative to dirfd */
  int dirfd, fd;
  bool anonymous;     /* O_TMPFILE, not linked into the directory yet */
  bool linked;        /* the temporary file exists under tmp_name */
  atomic_bool failed; /* a write or fsync failed: only abort is possible */
  bool prepared;      /* prepare succeeded: publish may run */
  bool placed; /* renamed into place (even if the directory fsync failed) */
  uint64_t fsync_ns; /* time spent in fsync of the file and directory */
  uint64_t kicked;   /* writeback started for [0, kicked): see kick() */
  bool no_kick;      /* sync_file_range() is not available here */
};

/* ---- the temporary file ------------------------------------------------ */

_Static_assert(STRATA__TEMP_HEX == 8, "name_temp() prints 32 random bits");

/* The temporary file's name is the base name plus
 * STRATA_WRITER_TEMP_NAME_EXTRA bytes (pubfile.h asserts that its format
 * adds exactly that), so a longer base name would fail only at publish,
 * when the O_TMPFILE is linked under it: refuse it before any work. */
int strata__pubfile_check_name(const char *path, const char *name) {
  size_t len = strlen(name);
  STRATA__FAIL_IF(len + STRATA_WRITER_TEMP_NAME_EXTRA > NAME_MAX,
                  STRATA_E_LIMIT,
                  "%s: the file name is %zu bytes; at most %d fit (NAME_MAX "
                  "%d less the %d bytes the temporary file's name adds)",
                  path, len, NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA, NAME_MAX,
                  STRATA_WRITER_TEMP_NAME_EXTRA);
  return 0;
}

/* Chooses the temporary file's name, ".BASE.strata-tmp-XXXXXXXX", once, at
 * open: it never changes afterwards, so a signal handler may read it at any
 * time through strata_writer_temp_path(). (A retry during open writes a
 * new name into the same buffers, which have the same length.) */
static int name_temp(strata__pubfile *f, const char *dir, uint64_t *rng) {
  size_t len = strlen(f->name) + STRATA__TEMP_NAME_EXTRA + 1;
  if (f->tmp_name == NULL)
    f->tmp_name = malloc(len);
  if (f->tmp_path == NULL)
    f->tmp_path = malloc(strlen(dir) + len + 2);
  if (f->tmp_name == NULL || f->tmp_path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", f->path);
  *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
  snprintf(f->tmp_name, len, ".%s" STRATA__TEMP_MARK "%0*" PRIx64, f->name,
           STRATA__TEMP_HEX, *rng >> 32);
  sprintf(f->tmp_path, "%s/%s", dir, f->tmp_name);
  return 0;
}

/* Can publish() give the O_TMPFILE `fd` a name? Either linkat() with
 * AT_EMPTY_PATH is allowed (CAP_DAC_READ_SEARCH, or since Linux 6.10 a
 * file this process opened), or /proc/self/fd/N can be linked, which needs
 * /proc: a chroot or a minimal container may have none, and then every
 * publish would fail at its very end. Asked here, before anything is
 * written, so that open can still choose a named file instead.
 *
 * The AT_EMPTY_PATH probe links to ".", which always exists: the kernel
 * checks the permission while looking up the old file, before it looks at
 * the new name, so ENOENT means not allowed, and EEXIST means allowed,
 * with nothing created either way. */
static bool can_link_anonymous(strata__pubfile *f) {
  if (linkat(f->fd, "", f->dirfd, ".", AT_EMPTY_PATH) != 0 && errno == EEXIST)
    return true;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
  return access(proc, F_OK) == 0;
}

/* Creates the named temporary file: exclusively and without following
 * symlinks, so that nothing else can be clobbered; then writes the region
 * magic at its start at once. The store's cleanup removes a leftover only
 * if it is empty or begins with the magic (store_scan.c), so that a file
 * someone else named with our mark is never taken for ours; the bytes
 * written later (a region's header) replace the magic. */
static int create_named(strata__pubfile *f, const char *dir, uint64_t *rng) {
  for (int tries = 0; tries < 100; tries++) {
    f->fd = openat(f->dirfd, f->tmp_name,
                   O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (f->fd >= 0) {
      f->linked = true; /* from here on, abort removes it */
      /* Held until the fd closes: a store that finds this file knows it
       * belongs to a live writer and leaves it alone. Until the lock is
       * taken the file is empty and unlocked, which is exactly what a dead
       * writer leaves, so a store's cleanup may remove it in between (it
       * unlinks only while holding this lock). Hence a blocking lock (the
       * cleanup holds it for a moment), then a check that the name still
       * leads to this file; if not, start again under a new name. */
      int rc;
      while ((rc = flock(f->fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
      if (rc != 0)
        return strata__fail_errno(errno, "%s: locking the temporary file %s",
                                  f->path, f->tmp_path);
      struct stat fs, ns;
      if (fstat(f->fd, &fs) != 0)
        return strata__fail_errno(errno, "%s: fstat of the temporary file %s",
                                  f->path, f->tmp_path);
      bool named = fs.st_nlink > 0 && fstatat(f->dirfd, f->tmp_name, &ns,
                                              AT_SYMLINK_NOFOLLOW) == 0;
      if (!named && fs.st_nlink > 0 && errno != ENOENT)
        return strata__fail_errno(errno, "%s: checking the temporary file %s",
                                  f->path, f->tmp_path);
      if (named && fs.st_dev == ns.st_dev && fs.st_ino == ns.st_ino)
        return strata__pubfile_write_at(f, STRATA__MAGIC, STRATA__MAGIC_LEN, 0);
      close(f->fd); /* gone from under its name: nothing to remove */
      f->fd = -1;
      f->linked = false;
      STRATA__TRY(name_temp(f, dir, rng));
      continue;
    }
    if (errno != EEXIST)
      break;
    STRATA__TRY(name_temp(f, dir, rng));
  }
  return strata__fail_errno(errno, "%s: creating a temporary file in %s",
                            f->path, dir);
}

static int open_temp(strata__pubfile *f, const char *dir) {
  f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (f->dirfd < 0)
    return strata__fail_errno(errno, "%s: opening directory %s", f->path, dir);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
  STRATA__TRY(name_temp(f, dir, &rng));
#ifdef O_TMPFILE
  /* Preferred: an unnamed file, which nothing can leave behind. It gets the
   * temporary name only for the moment between linkat() and rename(). */
  f->fd = openat(f->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
  if (f->fd >= 0 && can_link_anonymous(f)) {
    f->anonymous = true;
    /* Held until the fd closes: a store that finds this file (once it has
     * a name) knows it belongs to a live writer and leaves it alone. */
    (void)flock(f->fd, LOCK_EX | LOCK_NB);
    return 0;
  }
  if (f->fd >= 0) { /* it could never be named: use a named file */
    close(f->fd);
    f->fd = -1;
  } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL &&
             errno != ENOENT) {
    return strata__fail_errno(errno, "%s: creating a temporary file in %s",
                              f->path, dir);
  }
#endif
  return create_named(f, dir, &rng);
}

/* The publisher for DIR/NAME, errors naming `path`. */
static int open_as(const char *dir, const char *name, const char *path,
                   strata__pubfile **out) {
  STRATA__TRY(strata__pubfile_check_name(path, name));
  strata__pubfile *f = calloc(1, sizeof *f);
  if (f == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", path);
  f->fd = f->dirfd = -1;
  f->path = strdup(path);
  f->name = strdup(name);
  int rc = f->path && f->name
               ? open_temp(f, dir)
               : strata__fail(STRATA_E_NOMEM, "%s: allocating", path);
  if (rc < 0) {
    strata__pubfile_abort(f);
    return rc;
  }
  *out = f;
  return 0;
}

int strata__pubfile_open(const char *dir, const char *name,
                         strata__pubfile **out) {
  STRATA__FAIL_IF(dir == NULL || name == NULL || out == NULL || !dir[0] ||
                      !name[0],
                  STRATA_E_INVAL, "strata__pubfile_open: NULL or empty");
  char *path = malloc(strlen(dir) + strlen(name) + 2);
  if (path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s/%s: allocating", dir, name);
  sprintf(path, "%s/%s", dir, name);
  int rc = open_as(dir, name, path, out);
  free(path);
  return rc;
}

int strata__pubfile_open_path(const char *path, strata__pubfile **out) {
  STRATA__FAIL_IF(path == NULL || out == NULL || !path[0], STRATA_E_INVAL,
                  "strata__pubfile_open_path: NULL or empty");
  /* dirname() and basename() may write into their argument. */
  char *d = strdup(path), *b = strdup(path);
  int rc = d && b ? open_as(dirname(d), basename(b), path, out)
                  : strata__fail(STRATA_E_NOMEM, "%s: allocating", path);
  free(d);
  free(b);
  return rc;
}

int strata__pubfile_fd(const strata__pubfile *f) {
  return f->fd;
}

const char *strata__pubfile_path(const strata__pubfile *f) {
  return f->path;
}

const char *strata__pubfile_temp_path(const strata__pubfile *f) {
  return f->tmp_path;
}

bool strata__pubfile_placed(const strata__pubfile *f) {
  return f->placed;
}

uint64_t strata__pubfile_fsync_ns(const strata__pubfile *f) {
  return f->fsync_ns;
}

/* ---- writing ------------------------------------------------------------ */

/* Starts the writeback of what was written since the last call once that
 * is KICK_BYTES, without waiting for it (sync_file_range WRITE only). The
 * kernel would otherwise hold a large file's pages dirty until the fsync
 * at commit (its own writeback begins only at the dirty thresholds, a
 * tenth of RAM), so the fsync then waited for every byte while the CPU
 * had long been idle. Started early, the disk writes while the writer
 * builds the rest and its index: a 4M-layer sparse build spent about a
 * quarter of its wall time waiting in fsync (issue 19). Durability does
 * not change: only fsync() at prepare promises anything, and it still
 * runs. An error here is a failed write (final for the file), because a
 * failed writeback must never be forgotten before that fsync. */
#define KICK_BYTES (8u << 20)

static int kick(strata__pubfile *f, uint64_t end) {
  if (f->no_kick || end < f->kicked + KICK_BYTES)
    return 0;
  if (sync_file_range(f->fd, (off_t)f->kicked, (off_t)(end - f->kicked),
                      SYNC_FILE_RANGE_WRITE) != 0) {
    int e = errno;
    if (e == EINVAL || e == ESPIPE || e == ENOSYS || e == EPERM) {
      /* Not offered here (a file system or a seccomp filter that refuses
       * the call): nothing was written back early, nothing lost. */
      f->no_kick = true;
      return 0;
    }
    atomic_store(&f->failed, true);
    return strata__fail_errno(
        e, "%s: starting the writeback of bytes [%" PRIu64 ", %" PRIu64 ")",
        f->path, f->kicked, end);
  }
  f->kicked = end;
  return 0;
}

int strata__pubfile_write_at(strata__pubfile *f, const void *buf, size_t len,
                             uint64_t at) {
  uint64_t end = at + len;
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t k = pwrite(f->fd, p, len, (off_t)at);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      /* pwrite() returning 0 for a nonzero length makes no progress:
       * treat it as an I/O error rather than loop. */
      int e = k < 0 ? errno : EIO;
      atomic_store(&f->failed, true);
      return strata__fail_errno(e, "%s: writing %zu bytes at offset %" PRIu64,
                                f->path, len, at);
    }
    p += k;
    len -= (size_t)k;
    at += (uint64_t)k;
  }
  return kick(f, end);
}

/* ---- prepare, publish and abort ----------------------------------------- */

static int timed_fsync(strata__pubfile *f, int fd) {
  uint64_t t0 = strata__mono_ns();
  int rc = fsync(fd);
  int e = errno;
  f->fsync_ns += strata__mono_ns() - t0;
  errno = e;
  return rc;
}

/* Maps the finished temporary file and runs the reader's validation on it,
 * so that a bug can never publish a file the reader would refuse. With
 * `kept` the mapping becomes *kept, an open region, faulted in. */
static int validate_written(strata__pubfile *f, uint64_t size,
                            strata_region **kept) {
  void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, f->fd, 0);
  if (p == MAP_FAILED)
    return strata__fail_errno(errno, "%s: mapping the written file", f->path);
  if (kept == NULL) {
    strata_region r = {0};
    int rc = strata__region_validate(&r, p, size, f->path);
    munmap(p, (size_t)size);
    return rc;
  }
  strata_region *r = calloc(1, sizeof *r);
  char *path = strdup(f->path);
  int rc = r == NULL || path == NULL
               ? strata__fail(STRATA_E_NOMEM, "%s: allocating", f->path)
               : strata__region_validate(r, p, size, f->path);
  if (rc == 0)
    rc = strata__region_populate(r, f->path);
  if (rc < 0) {
    munmap(p, (size_t)size);
    free(r);
    free(path);
    return rc;
  }
  r->mapped = true;
  r->path = path;
  *kept = r;
  return 0;
}

int strata__pubfile_prepare(strata__pubfile *f, uint64_t size, bool region,
                            strata_region **kept) {
  STRATA__FAIL_IF(f == NULL || (kept != NULL && !region), STRATA_E_INVAL,
                  "strata__pubfile_prepare: NULL file, or kept without region");
  STRATA__FAIL_IF(atomic_load(&f->failed), STRATA_E_STATE,
                  "%s: an earlier write or fsync failed; the file cannot be "
                  "published",
                  f->path);
  STRATA__FAIL_IF(f->prepared, STRATA_E_STATE, "%s: prepared already", f->path);
  STRATA__FAIL_IF(size > INT64_MAX, STRATA_E_LIMIT,
                  "%s: size %" PRIu64 " is past the largest file size", f->path,
                  size);
  if (ftruncate(f->fd, (off_t)size) != 0)
    return strata__fail_errno(errno, "%s: setting the file size", f->path);
  if (timed_fsync(f, f->fd) != 0) {
    atomic_store(&f->failed, true);
    return strata__fail_errno(errno, "%s: fsync", f->path);
  }
  if (region)
    STRATA__TRY(validate_written(f, size, kept));
  f->prepared = true;
  return 0;
}

/* Names the O_TMPFILE: linkat() with AT_EMPTY_PATH where allowed (no /proc
 * needed), else through /proc/self/fd (see can_link_anonymous()). */
static int link_anonymous(strata__pubfile *f) {
  if (linkat(f->fd, "", f->dirfd, f->tmp_name, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno == EEXIST || errno == ENOSPC || errno == EDQUOT || errno == EIO)
    return -1; /* the link was allowed and failed: the /proc path would too */
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
  return linkat(AT_FDCWD, proc, f->dirfd, f->tmp_name, AT_SYMLINK_FOLLOW);
}

int strata__pubfile_publish(strata__pubfile *f) {
  STRATA__FAIL_IF(f == NULL, STRATA_E_INVAL, "strata__pubfile_publish: NULL");
  STRATA__FAIL_IF(atomic_load(&f->failed) || !f->prepared || f->placed,
                  STRATA_E_STATE, "%s: cannot publish: %s", f->path,
                  atomic_load(&f->failed) ? "an earlier write or fsync failed"
                  : f->placed             ? "published already"
                                          : "not prepared");
  if (f->anonymous) {
    /* Give the O_TMPFILE its temporary name, then rename it over the
     * target: linkat() cannot replace an existing file. */
    if (link_anonymous(f) != 0)
      return strata__fail_errno(errno, "%s: linking the temporary file as %s",
                                f->path, f->tmp_path);
    f->anonymous = false;
    f->linked = true;
  }
  if (renameat(f->dirfd, f->tmp_name, f->dirfd, f->name) != 0)
    return strata__fail_errno(errno, "%s: renaming %s into place", f->path,
                              f->tmp_path);
  f->linked = false;
  f->placed = true;
  if (timed_fsync(f, f->dirfd) != 0)
    return strata__fail_errno(errno,
                              "%s: fsync of the directory after rename "
                              "(the file is in place but may not survive a "
                              "crash)",
                              f->path);
  return 0;
}

void strata__pubfile_abort(strata__pubfile *f) {
  if (f == NULL)
    return;
  if (f->fd >= 0)
    close(f->fd);
  if (f->linked && f->dirfd >= 0)
    (void)unlinkat(f->dirfd, f->tmp_name, 0);
  if (f->dirfd >= 0)
    close(f->dirfd);
  free(f->path);
  free(f->name);
  free(f->tmp_path);
  free(f->tmp_name);
  free(f);
}
