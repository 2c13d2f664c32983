/* The file publisher: the one way a file is put into a directory so that it
 * appears there whole or not at all. It makes the temporary file (an
 * O_TMPFILE where the file system allows and the file can later be given a
 * name, else a named ".NAME.strata-tmp-XXXXXXXX" created exclusively and
 * flock'ed), takes its bytes at any offsets, fsyncs it, optionally runs
 * the reader's validation on it, and renames it over DIR/NAME and fsyncs
 * the directory; abort removes it. strata_writer publishes region files
 * through it (writer_commit.c), and so can code whose bytes come from
 * elsewhere (the remote follower writes files fetched from RADOS).
 *
 * Durability rules (the PostgreSQL "fsyncgate" lesson): the descriptor
 * stays open from the first write to the fsync; a failed write or fsync is
 * final for that file, never retried, and a file whose write or fsync
 * failed is never renamed into place.
 *
 * Concurrency: a publisher belongs to one thread, except that
 * strata__pubfile_write_at() may run on several threads at once at
 * disjoint offsets (between open and prepare). */
#ifndef STRATA_WRITER_PUBFILE_H
#define STRATA_WRITER_PUBFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/region.h"

/* The temporary file's name is "." NAME STRATA__TEMP_MARK and
 * STRATA__TEMP_HEX lowercase hex digits. The mark is Strata's own, so that
 * the store's cleanup of leftovers (store_scan.c) can tell them from other
 * programs' dot-files; and a named temporary file begins with the region
 * magic from the moment it exists (see pubfile.c), which the cleanup
 * checks too. */
#define STRATA__TEMP_MARK ".strata-tmp-"
#define STRATA__TEMP_HEX 8
/* How many bytes the temporary name adds to the file's basename.
 * <strata/writer.h> publishes the number as STRATA_WRITER_TEMP_NAME_EXTRA
 * for callers that check name lengths before any work (region-builder,
 * strata_proto_create()): a name that fits NAME_MAX as a region file but
 * not as a temporary one would fail only at commit. */
#define STRATA__TEMP_NAME_EXTRA                                                \
  (1 + sizeof STRATA__TEMP_MARK - 1 + STRATA__TEMP_HEX)
_Static_assert(STRATA__TEMP_NAME_EXTRA == STRATA_WRITER_TEMP_NAME_EXTRA,
               "<strata/writer.h> states another temporary name length");

typedef struct strata__pubfile strata__pubfile;

/* Refuses a basename `name` whose temporary name would not fit NAME_MAX:
 * STRATA_E_LIMIT naming `path`. _open checks it; the writer checks it
 * before anything else too, so that a bad name is the first error. */
int strata__pubfile_check_name(const char *path, const char *name);

/* Opens the directory `dir` and creates the temporary file for DIR/NAME in
 * it: unnamed (O_TMPFILE) where the file system allows and publish can
 * give it a name (linkat() with AT_EMPTY_PATH, or through /proc/self/fd),
 * else named ".NAME.strata-tmp-XXXXXXXX", created exclusively, flock'ed
 * for as long as it is open, and beginning with the region magic. Either
 * way the temporary name is chosen here, once (strata__pubfile_temp_path).
 * Errors: STRATA_E_LIMIT (the name is too long, before anything is
 * created), STRATA_E_INVAL (NULL or empty argument), STRATA_E_NOMEM,
 * -errno; each names DIR/NAME. On failure nothing is left behind. */
int strata__pubfile_open(const char *dir, const char *name,
                         strata__pubfile **out);
/* The same for the file `path` (its directory and basename), which errors
 * and strata__pubfile_path() then show as given: strata_writer_open()'s
 * path, so that its messages name the path its caller passed. */
int strata__pubfile_open_path(const char *path, strata__pubfile **out);

/* The temporary file's descriptor (read-write), valid until abort. */
int strata__pubfile_fd(const strata__pubfile *f);
/* DIR/NAME (or the path of _open_path), valid until abort. */
const char *strata__pubfile_path(const strata__pubfile *f);
/* The temporary file's path while it has or may get a name: fixed at
 * open and never freed or changed before abort, so that a signal handler
 * may read it and unlink() it (strata_writer_temp_path). */
const char *strata__pubfile_temp_path(const strata__pubfile *f);

/* Writes `len` bytes at `off` (a pwrite loop; a zero-byte pwrite counts as
 * EIO). Safe from several threads at disjoint offsets. A failure is final:
 * every later prepare and publish fails. -errno naming the path. */
int strata__pubfile_write_at(strata__pubfile *f, const void *p, size_t len,
                             uint64_t off);

/* Sets the file's size to `size` and fsyncs it. With `region`, maps it and
 * runs the reader's validation (strata__region_validate), so that a bug
 * can never publish a file the reader would refuse: its error (naming the
 * path and offset) is returned as is. With `kept` (region only), the
 * validated mapping is handed over as an open region, faulted in, whose
 * path is the final path; the caller closes it. Nothing is in the
 * directory yet (with O_TMPFILE, nothing at all). Errors: STRATA_E_STATE
 * (an earlier write or fsync failed), -errno, the validation's codes,
 * STRATA_E_NOMEM. A failed fsync is final as a failed write is. */
int strata__pubfile_prepare(strata__pubfile *f, uint64_t size, bool region,
                            strata_region **kept);

/* After a successful prepare: links the O_TMPFILE under its temporary
 * name, renames it over DIR/NAME (replacing what was there) and fsyncs the
 * directory. STRATA_E_STATE (not prepared, a failure earlier, or published
 * already), -errno naming the path; a failed directory fsync leaves the
 * file in place (strata__pubfile_placed() says so). */
int strata__pubfile_publish(strata__pubfile *f);

/* Whether publish renamed the file into place (also when only the fsync
 * of the directory failed afterwards). */
bool strata__pubfile_placed(const strata__pubfile *f);
/* Nanoseconds spent in fsync so far, of the file and of the directory. */
uint64_t strata__pubfile_fsync_ns(const strata__pubfile *f);

/* Closes the file (dropping its flock), removes the temporary file if it
 * has a name, closes the directory and frees. After publish it only
 * frees. NULL ok. */
void strata__pubfile_abort(strata__pubfile *f);

#endif /* STRATA_WRITER_PUBFILE_H */
