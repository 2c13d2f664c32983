/* Failure injection for the I/O the writer and the store perform.
 *
 * failpoint.c defines, in the test executable, the libc functions that
 * src/ calls for file I/O (open, openat, stat, fstat, fstatat, pread,
 * write, pwrite, fsync, fdatasync, ftruncate, mmap, madvise, readdir,
 * linkat, renameat, rename, unlinkat), and read and opendir, which tools
 * such as region-builder use on their input files (src/ does not). The static
 * library is linked into the same executable, so its calls bind to these
 * definitions; each forwards to the next definition (libc, or the sanitizer's
 * interceptor) through dlsym(RTLD_NEXT).
 *
 * Only calls that concern the *watched* directory are considered: a path in
 * it, a descriptor opened on such a path (or relative to such a
 * descriptor), or an address inside a mapping of such a descriptor. The
 * interposer tracks those descriptors and mappings (close, closedir and
 * munmap are wrapped for that, never counted or failed) whenever a
 * directory is watched. Calls on other descriptors, stdout and stderr
 * included, pass through untouched.
 *
 * While armed, every considered call is numbered from 1 and recorded; the
 * call numbered `fail_at` fails with `err` (FP_TRANSIENT), or every call from
 * that one on does (FP_PERSISTENT). fail_at 0 only counts. The record
 * survives fp_disarm() until the next fp_arm(). Thread-safe. */
#ifndef STRATA_TEST_FAILPOINT_H
#define STRATA_TEST_FAILPOINT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum fp_fn {
  FP_OPEN,
  FP_OPENAT,
  FP_STAT,
  FP_FSTAT,
  FP_FSTATAT,
  FP_PREAD,
  FP_WRITE,
  FP_PWRITE,
  FP_FSYNC,
  FP_FDATASYNC,
  FP_FTRUNCATE,
  FP_MMAP,
  FP_MADVISE,
  FP_READDIR,
  FP_LINKAT,
  FP_RENAMEAT,
  FP_RENAME,
  FP_UNLINKAT,
  FP_READ,
  FP_OPENDIR,
  FP_SYNC_FILE_RANGE,
  FP_FN_COUNT
} fp_fn;

typedef enum fp_mode {
  FP_TRANSIENT,  /* only call fail_at fails */
  FP_PERSISTENT, /* fail_at and every later call fail */
} fp_mode;

/* One considered call, in the order they happened. */
typedef struct fp_call {
  fp_fn fn;
  int fd;          /* the descriptor concerned, -1 for path calls */
  bool dir;        /* the descriptor or path is the watched directory */
  bool tmpfile;    /* the descriptor is an O_TMPFILE file */
  bool failed;     /* injected failure */
  int err;         /* errno injected, 0 when the call went through */
  char target[80]; /* file concerned, relative to the directory ("." for
                      the directory itself, "(tmpfile)" for O_TMPFILE) */
  char detail[80]; /* e.g. the rename's new name, open flags */
} fp_call;

/* Watches `dir` (an absolute path, as the store is opened with), or
 * nothing with NULL. Forgets the descriptors and mappings tracked so far:
 * call it while no descriptor of the previous directory is open. */
void fp_watch(const char *dir);

/* Starts numbering and recording; see above. Clears the record. */
void fp_arm(unsigned fail_at, fp_mode mode, int err);
/* Stops numbering, recording and failing. Keeps the record. */
void fp_disarm(void);

/* With `on`, openat(..., O_TMPFILE) in the watched directory fails with
 * EOPNOTSUPP (uncounted), as on a file system without O_TMPFILE, so that the
 * writer takes its named ".NAME.strata-tmp-XXXXXXXX" fallback. */
void fp_refuse_tmpfile(bool on);

/* The record of the last armed period. */
size_t fp_count(void);
const fp_call *fp_call_at(size_t i); /* 0-based; NULL past the end */
/* 1-based number of the first failed call, 0 if none failed. */
size_t fp_first_failure(void);

const char *fp_fn_name(fp_fn fn);
/* "fsync(.)", "pwrite((tmpfile))", "renameat(.x.strata-tmp-1 -> x.region)". */
void fp_describe(const fp_call *c, char *buf, size_t len);

#endif /* STRATA_TEST_FAILPOINT_H */
