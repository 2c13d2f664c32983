/* The region writer's commit: appends the index, writes the header, and
 * hands the file to the file publisher (pubfile.c), which fsync()s,
 * validates, renames it into place and fsync()s the directory; abort
 * removes it. Region-builder and crystallization both come through here;
 * the durability rules are the publisher's (pubfile.c): a failed write or
 * fsync is final, and such a file is never renamed into place. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "writer/writer_internal.h"

/* ---- the temporary file ------------------------------------------------ */

int strata__writer_open_temp(strata_writer *w) {
  return strata__pubfile_open_path(w->path, &w->pf);
}

const char *strata_writer_temp_path(const strata_writer *w) {
  return w && w->pf ? strata__pubfile_temp_path(w->pf) : NULL;
}

/* ---- commit and abort --------------------------------------------------- */

/* The DELTA flag (after the index build, which sets the other flags) and
 * the header extension with its checksum (docs/FORMAT.md, "Delta files"). */
static void put_delta_ext(const strata_writer *w, uint8_t *h) {
  strata__wr64(h + STRATA__H_FLAGS,
               strata__rd64(h + STRATA__H_FLAGS) | STRATA_REGION_DELTA);
  strata__wr64(h + STRATA__X_PARENT, w->delta_parent);
  strata__wr64(h + STRATA__X_BASE, w->delta_base);
  strata__wr32(h + STRATA__X_DEPTH, w->delta_depth);
  strata__wr64(
      h + STRATA__X_CSUM,
      XXH3_64bits(h + STRATA__X_PARENT, STRATA__X_CSUM - STRATA__X_PARENT));
}

/* Writes the index and the header, then prepares the file (fsync and the
 * reader's validation); with `kept`, the validated mapping comes back as
 * an open region. */
static int finish(strata_writer *w, strata_region **kept) {
  STRATA__FAIL_IF(w->failed, STRATA_E_STATE,
                  "%s: an earlier write failed; the region cannot be committed",
                  w->path);
  STRATA__FAIL_IF(w->in_layer, STRATA_E_STATE,
                  "%s: commit inside an unfinished layer", w->path);
  STRATA__TRY(strata__writer_flush(w));
  uint64_t index_off = (w->pos + 63) / 64 * 64;
  /* Files other than deltas stay 1.0 (docs/FORMAT.md, "Versioning"), so
   * that a 1.0 reader still opens them. */
  uint8_t h[STRATA__DELTA_HEADER_SIZE] = {0};
  uint32_t hsize = w->delta ? STRATA__DELTA_HEADER_SIZE : STRATA__HEADER_SIZE;
  memcpy(h, STRATA__MAGIC, STRATA__MAGIC_LEN);
  strata__wr16(h + STRATA__H_MAJOR, STRATA_FORMAT_VERSION_MAJOR);
  strata__wr16(h + STRATA__H_MINOR, w->delta ? STRATA__DELTA_MINOR : 0);
  strata__wr32(h + STRATA__H_HEADER_SIZE, hsize);
  strata__wr64(h + STRATA__H_REGION_ID, w->region_id);
  strata__wr32(h + STRATA__H_DATA_ALIGN, w->align);
  /* Zero the padding between the last blob and the index explicitly; the
   * area may be past a hole but must read as zeros either way. */
  static const uint8_t zeros[64];
  STRATA__TRY(
      strata__writer_write_at(w, zeros, (size_t)(index_off - w->pos), w->pos));
  w->pos = index_off;
  /* The index goes out through the write buffer, and each flush feeds its
   * bytes to the checksum: the layers' running hash is done with. */
  XXH3_64bits_reset(w->xxh);
  w->hash_flushes = true;
  int rc = strata__writer_build_index(w, index_off, h);
  if (rc == 0)
    rc = strata__writer_flush(w);
  w->hash_flushes = false;
  if (rc < 0)
    w->failed = true; /* part of the index may be written */
  if (rc == 0 && w->delta)
    put_delta_ext(w, h);
  if (rc == 0) {
    uint64_t size = w->pos;
    strata__wr64(h + STRATA__H_FILE_SIZE, size);
    strata__wr64(h + STRATA__H_INDEX_CSUM, XXH3_64bits_digest(w->xxh));
    strata__wr64(h + STRATA__H_HEADER_CSUM,
                 XXH3_64bits(h, STRATA__H_HEADER_CSUM));
    rc = strata__writer_write_at(w, h, hsize, 0);
    if (rc == 0)
      rc = strata__pubfile_prepare(w->pf, size, true, kept);
  }
  return rc;
}

int strata_writer_commit(strata_writer *w) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer_commit: NULL");
  int rc = finish(w, NULL);
  if (rc == 0)
    rc = strata__pubfile_publish(w->pf);
  strata_writer_abort(w); /* frees; removes the temporary file if any */
  return rc;
}

int strata__writer_commit_prepare(strata_writer *w, strata_region **out,
                                  dev_t *dev, ino_t *ino) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer_commit: NULL");
  strata_region *r = NULL;
  STRATA__TRY(finish(w, &r));
  struct stat st;
  if (fstat(strata__pubfile_fd(w->pf), &st) != 0) {
    int e = errno;
    strata_region_close(r);
    return strata__fail_errno(e, "%s: fstat of the written file", w->path);
  }
  *dev = st.st_dev;
  *ino = st.st_ino;
  *out = r;
  return 0;
}

int strata__writer_commit_publish(strata_writer *w, uint64_t *fsync_ns,
                                  bool *placed) {
  int rc = strata__pubfile_publish(w->pf);
  *fsync_ns = strata__pubfile_fsync_ns(w->pf);
  *placed = strata__pubfile_placed(w->pf);
  return rc;
}

/* Frees the whole writer, not only the file: strata_writer_commit() ends
 * with it, and it is the one way to release a writer, so it lives beside
 * the file it must remove. */
void strata_writer_abort(strata_writer *w) {
  if (w == NULL)
    return;
  strata__pubfile_abort(w->pf); /* removes the temporary file if any */
  if (w->lockfd >= 0)
    close(w->lockfd); /* after the rename and the unlink above */
  free(w->path);
  free(w->name);
  free(w->metadata);
  free(w->wbuf);
  if (w->xxh)
    XXH3_freeState(w->xxh);
  strata__entries_free(w->entries, w->cap);
  free(w->strings.p);
  free(w->ids.slots);
  free(w->names.slots);
  free(w);
}
