/* The store's cross-process writer lock, as a primitive on a directory: an
 * flock on the file ".strata.lock" in it, with the holder's pid written into
 * the file for the error messages of the others. The store takes it for its
 * first write call (store/store_lock.c); a region writer takes it when asked
 * to (STRATA_WRITER_LOCK_STORE, writer/writer.c). Both are writers of the
 * same directory, so the primitive lives below both. */
#ifndef STRATA_LOCKFILE_H
#define STRATA_LOCKFILE_H

#include <stdbool.h>

/* The lock file's name in a store's directory. */
#define STRATA__LOCK_FILE ".strata.lock"

/* Opens DIRFD/.strata.lock (creating it, mode 0644, with `create`; never
 * through a symlink; never blocking; never opening what is not a regular
 * file) and takes its flock without waiting. 0 with *fdp the descriptor that
 * holds the lock (closing it releases the lock). Two failures leave the
 * detail alone, for the caller to word: -EWOULDBLOCK when another open file
 * holds the lock, -ENOENT when the file does not exist and `create` is
 * false. Every other failure sets the detail, naming the lock file:
 * STRATA_E_INVAL with its type when it is not a regular file (a FIFO, a
 * directory, a device), -errno otherwise (-ELOOP for a symlink). Any
 * thread. */
int strata__lockfile_try(int dirfd, const char *dir, bool create, int *fdp);

/* strata__lockfile_try(), retried for a short while (STRATA__LOCK_RETRY_MS)
 * while another holds the lock, since a store that opens holds it briefly to
 * clean up after dead writers. Then, on success, records the caller's pid in
 * the file (a failure to record it is not an error: the lock is held; *pid_ok
 * says whether it was recorded). Errors as strata__lockfile_try(). */
int strata__lockfile_take(int dirfd, const char *dir, bool create, int *fdp,
                          bool *pid_ok);

/* How long strata__lockfile_take() retries a held lock. */
#define STRATA__LOCK_RETRY_MS 200

/* The pid recorded in DIRFD/.strata.lock, or -1 when there is none (no
 * file, empty, unreadable, not a regular file). For messages only: the holder
 * may have recorded nothing (an older writer, flock(1)) or died since. */
long strata__lockfile_holder(int dirfd);

#endif /* STRATA_LOCKFILE_H */
