/* Opening and closing a region file: one read-only mmap, then validation
 * (region_validate.c: O(1) checks for a lazy open, everything with
 * STRATA_OPEN_CHECK_INDEX), then madvise hints for the content. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "region/region.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

static void advise_content(const strata_region *r, unsigned flags) {
  int advice = -1;
  if (flags & STRATA_OPEN_RANDOM)
    advice = MADV_RANDOM;
  else if (flags & STRATA_OPEN_SEQUENTIAL)
    advice = MADV_SEQUENTIAL;
  if (advice < 0 || r->data_size == 0)
    return;
  uintptr_t start =
      (uintptr_t)r->data & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
  size_t len = (size_t)((uintptr_t)r->data + r->data_size - start);
  (void)madvise((void *)start, len, advice); /* a hint; failure is harmless */
}

int strata__region_populate(const strata_region *r, const char *path) {
  if (madvise((void *)r->base, r->size, MADV_POPULATE_READ) == 0)
    return 0;
  int e = errno;
  if (e == EINVAL) { /* kernel older than 5.14: fall back to a hint */
    (void)madvise((void *)r->base, r->size, MADV_WILLNEED);
    return 0;
  }
  return strata__fail_errno(e, "%s: faulting in %" PRIu64 " bytes", path,
                            r->size);
}

/* A lazy open reads four small places of the file through the mapping:
 * the header with its section table, entry 0 (a dense region's first id)
 * and the region's name and metadata in the strings section. Each read
 * faults, and the kernel maps more than the page read: fault-around maps
 * up to 16 cached neighbours (fault_around_bytes, 64 KiB), and a kernel
 * with large page-cache folios (ext4 and XFS have them) maps the folio
 * around the page whole, up to 2 MiB. On the 1M-layer region of
 * strata-bench's open scenario (Linux 6.18, ext4) that was 2.2 MB of RSS
 * for about 1 KiB read: a 1 MiB folio at the header, 16 pages at entry 0
 * and 15 at the strings (docs/BENCHMARKS.md, issue 18 step 3).
 * MADV_RANDOM before the reads does not change it (measured: the same 287
 * pages mapped), so the reads are left as they are and their page-table
 * entries dropped after them. MADV_DONTNEED on a shared read-only file
 * mapping only unmaps: the pages stay in the page cache, and a later read
 * maps what it touches again. Nothing but validation has touched this new
 * mapping yet, so the whole of it is dropped (the kernel skips the
 * unpopulated page tables). A hint: on failure the pages stay mapped. */
static void unmap_open_reads(const strata_region *r) {
  (void)madvise((void *)r->base, r->size, MADV_DONTNEED);
}

static int not_regular(const char *path, mode_t mode) {
  return strata__fail(STRATA_E_INVAL, "%s: not a regular file (it is %s)", path,
                      strata__file_type_name(mode));
}

/* Only a regular file is ever mapped as a region. The open is
 * non-blocking because a FIFO would otherwise block it until a writer
 * appeared (forever, for a store's open or refresh or any CLI command);
 * then fstat() refuses anything but a regular file. O_NONBLOCK changes
 * nothing for a regular file's reads and mappings, and O_NOCTTY keeps a
 * terminal device from becoming ours. */
static int map_file(const char *path, const uint8_t **base, uint64_t *size) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return strata__fail_errno(errno, "%s: open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return strata__fail_errno(e, "%s: fstat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return not_regular(path, st.st_mode);
  }
  if (st.st_size < (off_t)STRATA__HEADER_SIZE) {
    /* Too small to map usefully; read what there is so that the validator
     * reports a bad magic or a short header with the same words. */
    uint8_t buf[STRATA__HEADER_SIZE];
    ssize_t got = pread(fd, buf, sizeof buf, 0);
    close(fd);
    if (got < 0)
      return strata__fail_errno(errno, "%s: read", path);
    strata_region tmp = {0};
    int rc = strata__region_validate(&tmp, buf, (uint64_t)got, path);
    return rc < 0
               ? rc
               : strata__fail(STRATA_E_CORRUPT, "%s: truncated header", path);
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd); /* the mapping keeps the file referenced */
  if (p == MAP_FAILED)
    return strata__fail_errno(e, "%s: mmap of %jd bytes", path,
                              (intmax_t)st.st_size);
  *base = p;
  *size = (uint64_t)st.st_size;
  return 0;
}

int strata_region_open(const char *path, unsigned flags, strata_region **out) {
  return strata__region_open_ex(path,
                                flags & ~(unsigned)STRATA_OPEN_CHECK_INDEX,
                                !(flags & STRATA_OPEN_CHECK_INDEX), out);
}

int strata__region_open_ex(const char *path, unsigned flags, bool lazy,
                           strata_region **out) {
  if (path == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_region_open: NULL argument");
  if (flags & ~(unsigned)(STRATA_OPEN_RANDOM | STRATA_OPEN_SEQUENTIAL |
                          STRATA_OPEN_POPULATE | STRATA_OPEN_CHECK_INDEX))
    return strata__fail(STRATA_E_INVAL, "%s: unknown open flags 0x%x", path,
                        flags);
  strata_region *r = calloc(1, sizeof *r);
  char *copy = strdup(path);
  if (r == NULL || copy == NULL) {
    free(r);
    free(copy);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the region handle",
                        path);
  }
  r->path = copy;
  r->lazy = lazy && !(flags & STRATA_OPEN_CHECK_INDEX);
  const uint8_t *base = NULL;
  uint64_t size = 0;
  int rc = map_file(path, &base, &size);
  if (rc == 0) {
    r->mapped = true;
    rc = strata__region_validate(r, base, size, path);
    if (rc == 0 && (flags & STRATA_OPEN_POPULATE))
      rc = strata__region_populate(r, path);
    else if (rc == 0 && r->lazy)
      unmap_open_reads(r);
  }
  if (rc < 0) {
    if (base != NULL)
      munmap((void *)base, size);
    free(r->valid);
    free(r->path);
    free(r);
    return rc;
  }
  advise_content(r, flags);
  *out = r;
  return 0;
}

void strata_region_close(strata_region *r) {
  if (r == NULL)
    return;
  if (r->mapped)
    munmap((void *)r->base, r->size);
  free(r->valid);
  free(r->path);
  free(r);
}

int strata_region_info_get(const strata_region *r, strata_region_info *info) {
  if (r == NULL || info == NULL)
    return strata__fail(STRATA_E_INVAL,
                        "strata_region_info_get: NULL argument");
  *info = (strata_region_info){
      .path = r->path,
      .id = r->id,
      .name = r->name,
      .metadata = r->metadata,
      .format_major = r->major,
      .format_minor = r->minor,
      .flags = r->flags,
      .layer_count = r->n,
      .named_count = r->m,
      .file_size = r->size,
      .data_offset = (uint64_t)(r->data - r->base),
      .data_size = r->data_size,
      .index_offset = r->index_offset,
      .data_align = r->align,
      .header_checksum = r->header_checksum,
      .index_checksum = r->index_checksum,
  };
  return 0;
}

uint64_t strata_region_layer_count(const strata_region *r) {
  return r == NULL ? 0 : r->n;
}

int strata_region_delta(const strata_region *r, strata_region_delta_info *out) {
  if (r == NULL || out == NULL)
    return strata__fail(STRATA_E_INVAL, "strata_region_delta: NULL argument");
  if (!r->delta)
    return strata__fail(STRATA_E_NOT_FOUND, "%s: not a delta file",
                        r->path ? r->path : "region");
  *out = (strata_region_delta_info){.parent_checksum = r->delta_parent,
                                    .base_checksum = r->delta_base,
                                    .depth = r->delta_depth};
  return 0;
}
