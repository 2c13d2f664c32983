/* Failure injection by interposition: see failpoint.h. */
#include "failpoint.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Descriptors above this are never tracked; a test process stays far
 * below it. */
#define FD_MAX 1024
#define MAP_MAX 256
#define REC_MAX 4096

typedef struct tracked_fd {
  bool used, dir, tmpfile;
  char name[80];
} tracked_fd;

typedef struct tracked_map {
  bool used;
  uintptr_t start;
  size_t len;
  char name[80];
} tracked_map;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char watch[4096];
static size_t watch_len; /* 0: nothing watched */
static tracked_fd fds[FD_MAX];
static tracked_map maps[MAP_MAX];
static bool armed, refuse_tmpfile;
static unsigned fail_at;
static fp_mode fail_mode;
static int fail_err;
static size_t count, first_failure;
static fp_call rec[REC_MAX];

/* ---- the real functions -------------------------------------------------- */

/* The next definition of `name` after this executable: libc's, or a
 * sanitizer's interceptor that calls libc's. Resolved on first use (which
 * may come before main()) and cached. */
static void *real_sym(_Atomic(void *) *slot, const char *name) {
  void *p = atomic_load_explicit(slot, memory_order_acquire);
  if (p == NULL) {
    p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
      fprintf(stderr, "failpoint: dlsym(RTLD_NEXT, \"%s\") failed\n", name);
      abort();
    }
    atomic_store_explicit(slot, p, memory_order_release);
  }
  return p;
}

#define REAL(name)                                                             \
  static _Atomic(void *) real_##name##_slot;                                   \
  __typeof__(&name) real_##name =                                              \
      (__typeof__(&name))real_sym(&real_##name##_slot, #name)

/* ---- bookkeeping (mu held) ----------------------------------------------- */

static void copy_name(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src);
}

/* If `path` is the watched directory or inside it, stores its name relative
 * to it ("." for the directory) and returns true. */
static bool rel_path(const char *path, char *out, size_t cap) {
  if (watch_len == 0 || path == NULL || strncmp(path, watch, watch_len) != 0 ||
      (path[watch_len] != '\0' && path[watch_len] != '/'))
    return false;
  const char *rest = path + watch_len;
  while (*rest == '/')
    rest++;
  copy_name(out, cap, *rest ? rest : ".");
  return true;
}

static bool tracked(int fd) {
  return watch_len != 0 && fd >= 0 && fd < FD_MAX && fds[fd].used;
}

/* The same for a path relative to a descriptor (the *at() functions). */
static bool at_path(int dirfd, const char *path, char *out, size_t cap) {
  if (path == NULL)
    return false;
  if (path[0] == '/' || dirfd == AT_FDCWD)
    return rel_path(path, out, cap);
  if (!tracked(dirfd) || !fds[dirfd].dir)
    return false;
  copy_name(out, cap, path);
  return true;
}

static void track_fd(int fd, const char *name, bool dir, bool tmpfile) {
  if (fd < 0 || fd >= FD_MAX)
    return;
  fds[fd] = (tracked_fd){.used = true, .dir = dir, .tmpfile = tmpfile};
  copy_name(fds[fd].name, sizeof fds[fd].name, name);
}

static void untrack_fd(int fd) {
  if (fd >= 0 && fd < FD_MAX)
    fds[fd].used = false;
}

static const tracked_map *find_map(const void *addr, size_t len) {
  uintptr_t a = (uintptr_t)addr;
  for (int i = 0; i < MAP_MAX; i++)
    if (maps[i].used && a < maps[i].start + maps[i].len &&
        maps[i].start < a + (len ? len : 1))
      return &maps[i];
  return NULL;
}

/* Numbers and records a considered call; true when it must fail (its errno
 * is then in *err). */
static bool consider(fp_fn fn, int fd, const char *target, const char *detail,
                     int *err) {
  if (!armed)
    return false;
  size_t n = ++count;
  bool fail = fail_at != 0 &&
              (fail_mode == FP_PERSISTENT ? n >= fail_at : n == fail_at);
  if (fail && first_failure == 0)
    first_failure = n;
  if (n <= REC_MAX) {
    fp_call *c = &rec[n - 1];
    *c = (fp_call){
        .fn = fn, .fd = fd, .failed = fail, .err = fail ? fail_err : 0};
    if (tracked(fd)) {
      c->dir = fds[fd].dir;
      c->tmpfile = fds[fd].tmpfile;
    } else {
      c->dir = target != NULL && strcmp(target, ".") == 0;
    }
    copy_name(c->target, sizeof c->target, target ? target : "?");
    copy_name(c->detail, sizeof c->detail, detail ? detail : "");
  }
  *err = fail_err;
  return fail;
}

/* A call on a descriptor: considered when the descriptor is tracked. */
static bool fd_call(fp_fn fn, int fd, int *err) {
  pthread_mutex_lock(&mu);
  bool fail = tracked(fd) && consider(fn, fd, fds[fd].name, NULL, err);
  pthread_mutex_unlock(&mu);
  return fail;
}

/* ---- control ------------------------------------------------------------- */

void fp_watch(const char *dir) {
  pthread_mutex_lock(&mu);
  memset(fds, 0, sizeof fds);
  memset(maps, 0, sizeof maps);
  watch_len = 0;
  if (dir != NULL && strlen(dir) < sizeof watch) {
    strcpy(watch, dir);
    watch_len = strlen(watch);
    while (watch_len > 1 && watch[watch_len - 1] == '/')
      watch[--watch_len] = '\0';
  }
  pthread_mutex_unlock(&mu);
}

void fp_arm(unsigned at, fp_mode mode, int err) {
  pthread_mutex_lock(&mu);
  count = first_failure = 0;
  fail_at = at;
  fail_mode = mode;
  fail_err = err;
  armed = true;
  pthread_mutex_unlock(&mu);
}

void fp_disarm(void) {
  pthread_mutex_lock(&mu);
  armed = false;
  pthread_mutex_unlock(&mu);
}

void fp_refuse_tmpfile(bool on) {
  pthread_mutex_lock(&mu);
  refuse_tmpfile = on;
  pthread_mutex_unlock(&mu);
}

size_t fp_count(void) {
  pthread_mutex_lock(&mu);
  size_t n = count;
  pthread_mutex_unlock(&mu);
  return n;
}

const fp_call *fp_call_at(size_t i) {
  pthread_mutex_lock(&mu);
  const fp_call *c = i < count && i < REC_MAX ? &rec[i] : NULL;
  pthread_mutex_unlock(&mu);
  return c;
}

size_t fp_first_failure(void) {
  pthread_mutex_lock(&mu);
  size_t n = first_failure;
  pthread_mutex_unlock(&mu);
  return n;
}

const char *fp_fn_name(fp_fn fn) {
  static const char *const names[FP_FN_COUNT] = {
      [FP_OPEN] = "open",
      [FP_OPENAT] = "openat",
      [FP_STAT] = "stat",
      [FP_FSTAT] = "fstat",
      [FP_FSTATAT] = "fstatat",
      [FP_PREAD] = "pread",
      [FP_WRITE] = "write",
      [FP_PWRITE] = "pwrite",
      [FP_FSYNC] = "fsync",
      [FP_FDATASYNC] = "fdatasync",
      [FP_FTRUNCATE] = "ftruncate",
      [FP_MMAP] = "mmap",
      [FP_MADVISE] = "madvise",
      [FP_READDIR] = "readdir",
      [FP_LINKAT] = "linkat",
      [FP_RENAMEAT] = "renameat",
      [FP_RENAME] = "rename",
      [FP_UNLINKAT] = "unlinkat",
      [FP_READ] = "read",
      [FP_OPENDIR] = "opendir",
      [FP_SYNC_FILE_RANGE] = "sync_file_range",
  };
  return (unsigned)fn < FP_FN_COUNT ? names[fn] : "?";
}

void fp_describe(const fp_call *c, char *buf, size_t len) {
  if (c->detail[0] != '\0')
    snprintf(buf, len, "%s(%s; %s)", fp_fn_name(c->fn), c->target, c->detail);
  else
    snprintf(buf, len, "%s(%s)", fp_fn_name(c->fn), c->target);
}

/* ---- open ---------------------------------------------------------------- */

/* The mode argument is only passed (and only readable) with these flags. */
#define MODE_ARG(flags, mode)                                                  \
  do {                                                                         \
    va_list ap;                                                                \
    va_start(ap, flags);                                                       \
    if (((flags)&O_CREAT) || ((flags)&O_TMPFILE) == O_TMPFILE)                 \
      (mode) = (mode_t)va_arg(ap, int);                                        \
    va_end(ap);                                                                \
  } while (0)

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

/* open() and openat() and their 64 variants: exactly one of real_open and
 * real_openat is the next definition to call. */
static int do_open(fp_fn fn, open_fn real_open, openat_fn real_openat,
                   int dirfd, const char *path, int flags, mode_t mode) {
  bool tmpfile = (flags & O_TMPFILE) == O_TMPFILE;
  char target[80], detail[80];
  pthread_mutex_lock(&mu);
  bool related = at_path(dirfd, path, target, sizeof target);
  bool dir = related && !tmpfile &&
             (strcmp(target, ".") == 0 || (flags & O_DIRECTORY) != 0);
  if (related && tmpfile && refuse_tmpfile) {
    pthread_mutex_unlock(&mu);
    errno = EOPNOTSUPP;
    return -1;
  }
  if (tmpfile)
    copy_name(target, sizeof target, "(tmpfile)");
  snprintf(detail, sizeof detail, "%s%s%s", tmpfile ? "O_TMPFILE" : "",
           (flags & O_CREAT) ? "O_CREAT" : "",
           (flags & O_EXCL) ? "|O_EXCL" : "");
  int err = 0;
  bool fail = related && consider(fn, -1, target, detail, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  int fd = real_open != NULL ? real_open(path, flags, mode)
                             : real_openat(dirfd, path, flags, mode);
  if (fd >= 0 && related) {
    int e = errno;
    pthread_mutex_lock(&mu);
    track_fd(fd, target, dir, tmpfile);
    pthread_mutex_unlock(&mu);
    errno = e;
  }
  return fd;
}

int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  REAL(open);
  return do_open(FP_OPEN, real_open, NULL, AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  REAL(open64);
  return do_open(FP_OPEN, real_open64, NULL, AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  REAL(openat);
  return do_open(FP_OPENAT, NULL, real_openat, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  REAL(openat64);
  return do_open(FP_OPENAT, NULL, real_openat64, dirfd, path, flags, mode);
}

/* ---- descriptors --------------------------------------------------------- */

int close(int fd) {
  REAL(close);
  pthread_mutex_lock(&mu);
  untrack_fd(fd);
  pthread_mutex_unlock(&mu);
  return real_close(fd);
}

int closedir(DIR *d) {
  REAL(closedir);
  int fd = dirfd(d);
  pthread_mutex_lock(&mu);
  untrack_fd(fd);
  pthread_mutex_unlock(&mu);
  return real_closedir(d);
}

/* A directory stream opened by path: glibc opens its descriptor through an
 * internal call that is not interposed, so it is tracked here. */
DIR *opendir(const char *path) {
  REAL(opendir);
  char target[80];
  int err = 0;
  pthread_mutex_lock(&mu);
  bool related = rel_path(path, target, sizeof target);
  bool fail = related && consider(FP_OPENDIR, -1, target, NULL, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return NULL;
  }
  DIR *d = real_opendir(path);
  if (d != NULL && related) {
    int e = errno;
    pthread_mutex_lock(&mu);
    track_fd(dirfd(d), target, true, false);
    pthread_mutex_unlock(&mu);
    errno = e;
  }
  return d;
}

struct dirent *readdir(DIR *d) {
  REAL(readdir);
  int err;
  if (fd_call(FP_READDIR, dirfd(d), &err)) {
    errno = err;
    return NULL;
  }
  return real_readdir(d);
}

int fstat(int fd, struct stat *st) {
  REAL(fstat);
  int err;
  if (fd_call(FP_FSTAT, fd, &err)) {
    errno = err;
    return -1;
  }
  return real_fstat(fd, st);
}

int stat(const char *restrict path, struct stat *restrict st) {
  REAL(stat);
  char target[80];
  int err = 0;
  pthread_mutex_lock(&mu);
  bool fail = rel_path(path, target, sizeof target) &&
              consider(FP_STAT, -1, target, NULL, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_stat(path, st);
}

int fstatat(int dirfd, const char *restrict path, struct stat *restrict st,
            int flags) {
  REAL(fstatat);
  char target[80];
  int err = 0;
  pthread_mutex_lock(&mu);
  bool fail = at_path(dirfd, path, target, sizeof target) &&
              consider(FP_FSTATAT, -1, target, NULL, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_fstatat(dirfd, path, st, flags);
}

/* Declares a wrapper of an fd call returning ssize_t or int. */
#define FD_WRAPPER(ret, name, fn, params, args)                                \
  ret name params {                                                            \
    REAL(name);                                                                \
    int err;                                                                   \
    if (fd_call(fn, fd, &err)) {                                               \
      errno = err;                                                             \
      return -1;                                                               \
    }                                                                          \
    return real_##name args;                                                   \
  }

FD_WRAPPER(ssize_t, pread, FP_PREAD, (int fd, void *buf, size_t len, off_t at),
           (fd, buf, len, at))
FD_WRAPPER(ssize_t, pread64, FP_PREAD,
           (int fd, void *buf, size_t len, off64_t at), (fd, buf, len, at))
FD_WRAPPER(ssize_t, read, FP_READ, (int fd, void *buf, size_t len),
           (fd, buf, len))
FD_WRAPPER(ssize_t, write, FP_WRITE, (int fd, const void *buf, size_t len),
           (fd, buf, len))
FD_WRAPPER(ssize_t, pwrite, FP_PWRITE,
           (int fd, const void *buf, size_t len, off_t at), (fd, buf, len, at))
FD_WRAPPER(ssize_t, pwrite64, FP_PWRITE,
           (int fd, const void *buf, size_t len, off64_t at),
           (fd, buf, len, at))
FD_WRAPPER(int, fsync, FP_FSYNC, (int fd), (fd))
FD_WRAPPER(int, sync_file_range, FP_SYNC_FILE_RANGE,
           (int fd, off64_t at, off64_t len, unsigned int flags),
           (fd, at, len, flags))
FD_WRAPPER(int, fdatasync, FP_FDATASYNC, (int fd), (fd))
FD_WRAPPER(int, ftruncate, FP_FTRUNCATE, (int fd, off_t len), (fd, len))
FD_WRAPPER(int, ftruncate64, FP_FTRUNCATE, (int fd, off64_t len), (fd, len))

/* ---- mappings ------------------------------------------------------------ */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off64_t);

static void *do_mmap(mmap_fn real, void *addr, size_t len, int prot, int flags,
                     int fd, off64_t off) {
  int err;
  if (fd_call(FP_MMAP, fd, &err)) {
    errno = err;
    return MAP_FAILED;
  }
  void *p = real(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED) {
    int e = errno;
    pthread_mutex_lock(&mu);
    if (tracked(fd))
      for (int i = 0; i < MAP_MAX; i++)
        if (!maps[i].used) {
          maps[i] =
              (tracked_map){.used = true, .start = (uintptr_t)p, .len = len};
          copy_name(maps[i].name, sizeof maps[i].name, fds[fd].name);
          break;
        }
    pthread_mutex_unlock(&mu);
    errno = e;
  }
  return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  REAL(mmap);
  return do_mmap((mmap_fn)real_mmap, addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) {
  REAL(mmap64);
  return do_mmap((mmap_fn)real_mmap64, addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) {
  REAL(munmap);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAP_MAX; i++)
    if (maps[i].used && maps[i].start == (uintptr_t)addr)
      maps[i].used = false;
  pthread_mutex_unlock(&mu);
  return real_munmap(addr, len);
}

int madvise(void *addr, size_t len, int advice) {
  REAL(madvise);
  char detail[32];
  snprintf(detail, sizeof detail, "advice %d%s", advice,
           advice == 22  ? " POPULATE_READ"
           : advice == 3 ? " WILLNEED"
                         : "");
  int err = 0;
  pthread_mutex_lock(&mu);
  const tracked_map *m = watch_len ? find_map(addr, len) : NULL;
  bool fail = m != NULL && consider(FP_MADVISE, -1, m->name, detail, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_madvise(addr, len, advice);
}

/* ---- names --------------------------------------------------------------- */

int linkat(int olddirfd, const char *old, int newdirfd, const char *new,
           int flags) {
  REAL(linkat);
  char target[80], detail[96];
  int err = 0, n = -1;
  pthread_mutex_lock(&mu);
  bool related = at_path(newdirfd, new, target, sizeof target);
  if (related) {
    /* The writer links an O_TMPFILE through /proc/self/fd/N. */
    if (sscanf(old, "/proc/self/fd/%d", &n) == 1 && tracked(n))
      snprintf(detail, sizeof detail, "from %s", fds[n].name);
    else
      snprintf(detail, sizeof detail, "from %s", old);
  }
  bool fail = related && consider(FP_LINKAT, -1, target, detail, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_linkat(olddirfd, old, newdirfd, new, flags);
}

int renameat(int olddirfd, const char *old, int newdirfd, const char *new) {
  REAL(renameat);
  char target[80], from[80], detail[96];
  int err = 0;
  pthread_mutex_lock(&mu);
  bool related = at_path(newdirfd, new, target, sizeof target) ||
                 at_path(olddirfd, old, target, sizeof target);
  if (related && !at_path(olddirfd, old, from, sizeof from))
    copy_name(from, sizeof from, old ? old : "?");
  if (related)
    snprintf(detail, sizeof detail, "from %s", from);
  bool fail = related && consider(FP_RENAMEAT, -1, target, detail, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_renameat(olddirfd, old, newdirfd, new);
}

int rename(const char *old, const char *new) {
  REAL(rename);
  char target[80], from[80], detail[96];
  int err = 0;
  pthread_mutex_lock(&mu);
  bool related = rel_path(new, target, sizeof target) ||
                 rel_path(old, target, sizeof target);
  if (related && !rel_path(old, from, sizeof from))
    copy_name(from, sizeof from, old ? old : "?");
  if (related)
    snprintf(detail, sizeof detail, "from %s", from);
  bool fail = related && consider(FP_RENAME, -1, target, detail, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_rename(old, new);
}

int unlinkat(int dirfd, const char *path, int flags) {
  REAL(unlinkat);
  char target[80];
  int err = 0;
  pthread_mutex_lock(&mu);
  bool fail = at_path(dirfd, path, target, sizeof target) &&
              consider(FP_UNLINKAT, -1, target, NULL, &err);
  pthread_mutex_unlock(&mu);
  if (fail) {
    errno = err;
    return -1;
  }
  return real_unlinkat(dirfd, path, flags);
}
