/* Strata error codes, their names and messages, and the detail string.
 *
 * Every function that can fail returns an int: 0 on success, a negative
 * number on failure. System failures are returned as -errno (the errno value
 * is kept), Strata's own conditions use the band -4000..-4099
 * (STRATA_ERRNO_BAND_FIRST..STRATA_ERRNO_BAND_LAST) so that they never
 * collide with an errno value. One X-macro table generates the enum,
 * strata_err_name() and strata_strerror(). <strata.h>'s overview ("Errors")
 * says how a failure is reported and where its details are.
 *
 * A number, once given, is never given to another condition, so that a
 * code logged or stored by an older build still means what it meant:
 * -4010 (BAD_INPUT, which nothing ever returned; bad input is
 * STRATA_E_INVAL) stays unused.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_ERRORS_H
#define STRATA_PUBLIC_ERRORS_H

#include <errno.h>

#include "strata/types.h"

/* Strata's own codes lie in [STRATA_ERRNO_BAND_LAST, STRATA_ERRNO_BAND_FIRST];
 * every negative number above the band is -errno. Linux's errno values end
 * below 200, so the band leaves them room. */
#define STRATA_ERRNO_BAND_FIRST (-4000)
#define STRATA_ERRNO_BAND_LAST (-4099)

/* XX(name, value, message) */
#define STRATA_ERRNO_MAP(XX)                                                   \
  XX(INVAL, -EINVAL, "invalid argument")                                       \
  XX(NOMEM, -ENOMEM, "out of memory")                                          \
  XX(IO, -EIO, "i/o error")                                                    \
  XX(NOSPC, -ENOSPC, "no space left on device")                                \
  XX(NOENT, -ENOENT, "no such file or directory")                              \
  XX(EXIST, -EEXIST, "file exists")                                            \
  XX(ACCES, -EACCES, "permission denied")                                      \
  XX(NOT_FOUND, -4001, "layer not found")                                      \
  XX(NO_REGION, -4002, "region not found")                                     \
  XX(BAD_MAGIC, -4003, "not a strata region file")                             \
  XX(VERSION, -4004, "unsupported region format version")                      \
  XX(CORRUPT, -4005, "region file is corrupt")                                 \
  XX(CHECKSUM, -4006, "checksum mismatch")                                     \
  XX(BOUNDS, -4007, "out of bounds")                                           \
  XX(LIMIT, -4008, "limit exceeded")                                           \
  XX(DUPLICATE, -4009, "duplicate layer id or name")                           \
  XX(STATE, -4011, "operation not valid in this state")                        \
  XX(LOCKED, -4012, "store is locked by another writer")                       \
  XX(CONFLICT, -4013, "region file changed on disk by another writer")         \
  XX(BAD_SHM, -4014, "invalid shared view file (.strata.shm)")                 \
  XX(CANCELED, -4015, "operation canceled by its progress callback")

typedef enum strata_errno {
#define STRATA__ERR_ENUM(name, value, msg) STRATA_E_##name = (value),
  STRATA_ERRNO_MAP(STRATA__ERR_ENUM)
#undef STRATA__ERR_ENUM
} strata_errno;

#ifdef __cplusplus
extern "C" {
#endif

/* Returns a static, human-readable message for an error code (Strata codes
 * and -errno values alike). Never NULL. Thread-safe. */
STRATA_API const char *strata_strerror(int err);
/* Returns the symbolic name of an error code, a static string, never NULL:
 * "STRATA_E_<NAME>" for every code of the table above, including the errno
 * values it gives names to (-ENOSPC gives "STRATA_E_NOSPC", -ENOENT
 * "STRATA_E_NOENT"); the C library's name for other -errno values where it
 * has one (-ENOTDIR gives "ENOTDIR"); "OK" for 0; "UNKNOWN" otherwise.
 * Thread-safe. */
STRATA_API const char *strata_err_name(int err);
/* Returns the detail message of the most recent failure on this thread, e.g.
 * "regions/docs.region: layer 17: content [4096, +9000) ends past data
 * section end 8192". The string is owned by the library (a per-thread
 * buffer) and valid until the next Strata call on this thread. "" when
 * nothing failed yet. Successful calls do not clear it: read it only after a
 * call returned an error. Thread-safe: each thread has its own. */
STRATA_API const char *strata_last_error_detail(void);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_ERRORS_H */
