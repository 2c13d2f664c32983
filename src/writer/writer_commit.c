/* The region writer's file: creates the temporary file in the target
 * directory, writes to it, and at commit appends the index, writes the
 * header, fsync()s, validates, renames the file into place and fsync()s
 * the directory; abort removes it. This is the one place that publishes a
 * region file: region-builder and crystallization both come through here.
 *
 * Durability rules (the PostgreSQL "fsyncgate" lesson): the file descriptor
 * stays open from the first write to the fsync; a failed write or fsync is
 * final for that file, never retried, and a file whose write or fsync failed
 * is never renamed into place. */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "writer/writer_internal.h"

static int write_all(strata_writer *w, const uint8_t *p, size_t len,
                     uint64_t at);

/* ---- the temporary file ------------------------------------------------ */

_Static_assert(STRATA__TEMP_HEX == 8, "name_temp() prints 32 random bits");

/* Chooses the temporary file's name, ".BASE.strata-tmp-XXXXXXXX", once, at
 * open: it never changes afterwards, so a signal handler may read it at any
 * time through strata_writer_temp_path(). */
static int name_temp(strata_writer *w, const char *dir, const char *base,
                     uint64_t *rng) {
  size_t len = strlen(base) + STRATA__TEMP_NAME_EXTRA + 1;
  if (w->tmp_name == NULL)
    w->tmp_name = malloc(len);
  if (w->tmp_path == NULL)
    w->tmp_path = malloc(strlen(dir) + len + 2);
  if (w->tmp_name == NULL || w->tmp_path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", w->path);
  *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
  snprintf(w->tmp_name, len, ".%s" STRATA__TEMP_MARK "%0*" PRIx64, base,
           STRATA__TEMP_HEX, *rng >> 32);
  sprintf(w->tmp_path, "%s/%s", dir, w->tmp_name);
  return 0;
}

/* Can publish() give the O_TMPFILE `fd` a name? Either linkat() with
 * AT_EMPTY_PATH is allowed (CAP_DAC_READ_SEARCH, or since Linux 6.10 a
 * file this process opened), or /proc/self/fd/N can be linked, which needs
 * /proc: a chroot or a minimal container may have none, and then every
 * commit would fail at its very end. Asked here, before anything is
 * written, so that the writer can still choose a named file instead.
 *
 * The AT_EMPTY_PATH probe links to ".", which always exists: the kernel
 * checks the permission while looking up the old file, before it looks at
 * the new name, so ENOENT means not allowed, and EEXIST means allowed,
 * with nothing created either way. */
static bool can_link_anonymous(strata_writer *w) {
  if (linkat(w->fd, "", w->dirfd, ".", AT_EMPTY_PATH) != 0 && errno == EEXIST)
    return true;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
  return access(proc, F_OK) == 0;
}

/* Creates the named temporary file: exclusively and without following
 * symlinks, so that nothing else can be clobbered; then writes the region
 * magic at its start at once. The store's cleanup removes a leftover only
 * if it is empty or begins with the magic (store_scan.c), so that a file
 * someone else named with our mark is never taken for ours; the header
 * written at commit replaces the magic with itself. */
static int create_named(strata_writer *w, const char *dir, const char *base,
                        uint64_t *rng) {
  for (int tries = 0; tries < 100; tries++) {
    w->fd = openat(w->dirfd, w->tmp_name,
                   O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (w->fd >= 0) {
      w->linked = true; /* from here on, abort removes it */
      /* Held until the fd closes: a store that finds this file knows it
       * belongs to a live writer and leaves it alone. Until the lock is
       * taken the file is empty and unlocked, which is exactly what a dead
       * writer leaves, so a store's cleanup may remove it in between (it
       * unlinks only while holding this lock). Hence a blocking lock (the
       * cleanup holds it for a moment), then a check that the name still
       * leads to this file; if not, start again under a new name. */
      int rc;
      while ((rc = flock(w->fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
      if (rc != 0)
        return strata__fail_errno(errno, "%s: locking the temporary file %s",
                                  w->path, w->tmp_path);
      struct stat fs, ns;
      if (fstat(w->fd, &fs) != 0)
        return strata__fail_errno(errno, "%s: fstat of the temporary file %s",
                                  w->path, w->tmp_path);
      bool named = fs.st_nlink > 0 && fstatat(w->dirfd, w->tmp_name, &ns,
                                              AT_SYMLINK_NOFOLLOW) == 0;
      if (!named && fs.st_nlink > 0 && errno != ENOENT)
        return strata__fail_errno(errno, "%s: checking the temporary file %s",
                                  w->path, w->tmp_path);
      if (named && fs.st_dev == ns.st_dev && fs.st_ino == ns.st_ino) {
        return write_all(w, (const uint8_t *)STRATA__MAGIC, STRATA__MAGIC_LEN,
                         0);
      }
      close(w->fd); /* gone from under its name: nothing to remove */
      w->fd = -1;
      w->linked = false;
      STRATA__TRY(name_temp(w, dir, base, rng));
      continue;
    }
    if (errno != EEXIST)
      break;
    STRATA__TRY(name_temp(w, dir, base, rng));
  }
  return strata__fail_errno(errno, "%s: creating a temporary file in %s",
                            w->path, dir);
}

int strata__writer_open_temp(strata_writer *w, const char *dir,
                             const char *base) {
  w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->dirfd < 0)
    return strata__fail_errno(errno, "%s: opening directory %s", w->path, dir);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
  STRATA__TRY(name_temp(w, dir, base, &rng));
#ifdef O_TMPFILE
  /* Preferred: an unnamed file, which nothing can leave behind. It gets the
   * temporary name only for the moment between linkat() and rename(). */
  w->fd = openat(w->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
  if (w->fd >= 0 && can_link_anonymous(w)) {
    w->anonymous = true;
    /* Held until the fd closes: a store that finds this file (once it has
     * a name) knows it belongs to a live writer and leaves it alone. */
    (void)flock(w->fd, LOCK_EX | LOCK_NB);
    return 0;
  }
  if (w->fd >= 0) { /* it could never be named: use a named file */
    close(w->fd);
    w->fd = -1;
  } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL &&
             errno != ENOENT) {
    return strata__fail_errno(errno, "%s: creating a temporary file in %s",
                              w->path, dir);
  }
#endif
  return create_named(w, dir, base, &rng);
}

const char *strata_writer_temp_path(const strata_writer *w) {
  return w ? w->tmp_path : NULL;
}

/* ---- writing ------------------------------------------------------------ */

static int write_all(strata_writer *w, const uint8_t *p, size_t len,
                     uint64_t at) {
  while (len > 0) {
    ssize_t k = pwrite(w->fd, p, len, (off_t)at);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      /* pwrite() returning 0 for a nonzero length makes no progress:
       * treat it as an I/O error rather than loop. */
      w->failed = true;
      return strata__fail_errno(k < 0 ? errno : EIO,
                                "%s: writing %zu bytes at offset %" PRIu64,
                                w->path, len, at);
    }
    p += k;
    len -= (size_t)k;
    at += (uint64_t)k;
  }
  return 0;
}

int strata__writer_flush(strata_writer *w) {
  if (w->wlen == 0)
    return 0;
  int rc = write_all(w, w->wbuf, w->wlen, w->pos - w->wlen);
  w->wlen = 0;
  return rc;
}

/* ---- commit and abort --------------------------------------------------- */

static int timed_fsync(strata_writer *w, int fd) {
  uint64_t t0 = strata__mono_ns();
  int rc = fsync(fd);
  int e = errno;
  w->fsync_ns += strata__mono_ns() - t0;
  errno = e;
  return rc;
}

/* Maps the finished temporary file and runs the reader's validation on it,
 * so that a writer bug can never publish a file the reader would refuse.
 * With w->keep the mapping becomes w->kept, an open region, faulted in. */
static int validate_written(strata_writer *w, uint64_t size) {
  void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, w->fd, 0);
  if (p == MAP_FAILED)
    return strata__fail_errno(errno, "%s: mapping the written file", w->path);
  if (!w->keep) {
    strata_region r = {0};
    int rc = strata__region_validate(&r, p, size, w->path);
    munmap(p, (size_t)size);
    return rc;
  }
  strata_region *r = calloc(1, sizeof *r);
  char *path = strdup(w->path);
  int rc = r == NULL || path == NULL
               ? strata__fail(STRATA_E_NOMEM, "%s: allocating", w->path)
               : strata__region_validate(r, p, size, w->path);
  if (rc == 0)
    rc = strata__region_populate(r, w->path);
  if (rc < 0) {
    munmap(p, (size_t)size);
    free(r);
    free(path);
    return rc;
  }
  r->mapped = true;
  r->path = path;
  w->kept = r;
  return 0;
}

/* Names the O_TMPFILE: linkat() with AT_EMPTY_PATH where allowed (no /proc
 * needed), else through /proc/self/fd (see can_link_anonymous()). */
static int link_anonymous(strata_writer *w) {
  if (linkat(w->fd, "", w->dirfd, w->tmp_name, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno == EEXIST || errno == ENOSPC || errno == EDQUOT || errno == EIO)
    return -1; /* the link was allowed and failed: the /proc path would too */
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
  return linkat(AT_FDCWD, proc, w->dirfd, w->tmp_name, AT_SYMLINK_FOLLOW);
}

static int publish(strata_writer *w) {
  if (w->anonymous) {
    /* Give the O_TMPFILE its temporary name, then rename it over the
     * target: linkat() cannot replace an existing file. */
    if (link_anonymous(w) != 0)
      return strata__fail_errno(errno, "%s: linking the temporary file as %s",
                                w->path, w->tmp_path);
    w->anonymous = false;
    w->linked = true;
  }
  char *base = strdup(w->path);
  if (base == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", w->path);
  int rc = renameat(w->dirfd, w->tmp_name, w->dirfd, basename(base));
  int e = errno;
  free(base);
  if (rc != 0)
    return strata__fail_errno(e, "%s: renaming %s into place", w->path,
                              w->tmp_path);
  w->linked = false;
  w->placed = true;
  if (timed_fsync(w, w->dirfd) != 0)
    return strata__fail_errno(errno,
                              "%s: fsync of the directory after rename "
                              "(the file is in place but may not survive a "
                              "crash)",
                              w->path);
  return 0;
}

static int finish(strata_writer *w) {
  STRATA__FAIL_IF(w->failed, STRATA_E_STATE,
                  "%s: an earlier write failed; the region cannot be committed",
                  w->path);
  STRATA__FAIL_IF(w->in_layer, STRATA_E_STATE,
                  "%s: commit inside an unfinished layer", w->path);
  STRATA__TRY(strata__writer_flush(w));
  uint64_t index_off = (w->pos + 63) / 64 * 64;
  uint8_t h[STRATA__HEADER_SIZE] = {0};
  memcpy(h, STRATA__MAGIC, STRATA__MAGIC_LEN);
  strata__wr16(h + STRATA__H_MAJOR, STRATA_FORMAT_VERSION_MAJOR);
  strata__wr16(h + STRATA__H_MINOR, STRATA_FORMAT_VERSION_MINOR);
  strata__wr32(h + STRATA__H_HEADER_SIZE, STRATA__HEADER_SIZE);
  strata__wr64(h + STRATA__H_REGION_ID, w->region_id);
  strata__wr32(h + STRATA__H_DATA_ALIGN, w->align);
  strata__buf idx = {0};
  int rc = strata__writer_build_index(w, index_off, h, &idx);
  if (rc == 0) {
    uint64_t size = index_off + idx.len;
    strata__wr64(h + STRATA__H_FILE_SIZE, size);
    strata__wr64(h + STRATA__H_INDEX_CSUM, XXH3_64bits(idx.p, idx.len));
    strata__wr64(h + STRATA__H_HEADER_CSUM,
                 XXH3_64bits(h, STRATA__H_HEADER_CSUM));
    /* Zero the padding between the last blob and the index explicitly; the
     * area may be past a hole but must read as zeros either way. */
    static const uint8_t zeros[64];
    rc = write_all(w, zeros, (size_t)(index_off - w->pos), w->pos);
    if (rc == 0)
      rc = write_all(w, idx.p, (size_t)idx.len, index_off);
    if (rc == 0)
      rc = write_all(w, h, sizeof h, 0);
    if (rc == 0 && ftruncate(w->fd, (off_t)size) != 0)
      rc = strata__fail_errno(errno, "%s: setting the file size", w->path);
    if (rc == 0 && timed_fsync(w, w->fd) != 0) {
      w->failed = true;
      rc = strata__fail_errno(errno, "%s: fsync", w->path);
    }
    if (rc == 0)
      rc = validate_written(w, size);
  }
  free(idx.p);
  return rc;
}

int strata_writer_commit(strata_writer *w) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer_commit: NULL");
  int rc = finish(w);
  if (rc == 0)
    rc = publish(w);
  strata_writer_abort(w); /* frees; removes the temporary file if any */
  return rc;
}

int strata__writer_commit_prepare(strata_writer *w, strata_region **out,
                                  dev_t *dev, ino_t *ino) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer_commit: NULL");
  w->keep = true;
  STRATA__TRY(finish(w));
  struct stat st;
  if (fstat(w->fd, &st) != 0)
    return strata__fail_errno(errno, "%s: fstat of the written file", w->path);
  *dev = st.st_dev;
  *ino = st.st_ino;
  *out = w->kept;
  w->kept = NULL;
  return 0;
}

int strata__writer_commit_publish(strata_writer *w, uint64_t *fsync_ns,
                                  bool *placed) {
  int rc = publish(w);
  *fsync_ns = w->fsync_ns;
  *placed = w->placed;
  return rc;
}

/* Frees the whole writer, not only the file: strata_writer_commit() ends
 * with it, and it is the one way to release a writer, so it lives beside
 * the file it must remove. */
void strata_writer_abort(strata_writer *w) {
  if (w == NULL)
    return;
  strata_region_close(w->kept);
  if (w->fd >= 0)
    close(w->fd);
  if (w->linked && w->dirfd >= 0)
    (void)unlinkat(w->dirfd, w->tmp_name, 0);
  if (w->dirfd >= 0)
    close(w->dirfd);
  if (w->lockfd >= 0)
    close(w->lockfd); /* after the rename and the unlink above */
  free(w->path);
  free(w->tmp_path);
  free(w->tmp_name);
  free(w->name);
  free(w->metadata);
  free(w->wbuf);
  if (w->xxh)
    XXH3_freeState(w->xxh);
  free(w->entries);
  free(w->strings.p);
  free(w->ids.slots);
  free(w->names.slots);
  free(w);
}
