/* Allocation failure injection by interposition: see allocfail.h. */
#include "allocfail.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The build hides symbols by default; these must be seen by the shared
 * libraries (libc, jansson, libxxhash) to replace theirs. */
#define EXPORT __attribute__((visibility("default")))

/* glibc's allocator under its internal names: calling these never comes
 * back here, and needs no symbol lookup (dlsym may allocate). */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

/* The store's pool, through the linker's --wrap. */
struct strata__pool;
void *__real_strata__pool_alloc(struct strata__pool *p, size_t size);
void __real_strata__pool_free(struct strata__pool *p, void *ptr, size_t size);

#define REC_MAX 4096
/* Tracked allocations: an armed period makes a few hundred. */
#define SET_CAP (1u << 15)
#define EMPTY ((uintptr_t)0)
#define TOMBSTONE ((uintptr_t)1)

typedef struct tracked {
  uintptr_t ptr; /* EMPTY, TOMBSTONE or the allocation */
  bool pool;     /* a pool block (freed by strata__pool_free) */
  size_t seq;    /* 1-based number of the allocation; 0: unarmed */
  size_t size;
  void *caller; /* unarmed pool blocks: who allocated it */
} tracked;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool tracking;
static unsigned long fail_at;
static af_mode fail_mode;
static size_t count;
static bool hit, overflow, full_stacks;
static size_t mismatches;
static af_call rec[REC_MAX];
static tracked set[SET_CAP];
static size_t set_used; /* live entries and tombstones */

/* The arming thread; `in_hook` keeps what the hook itself calls
 * (backtrace() loading libgcc_s) out of the count. */
static _Thread_local bool armed_here, in_hook;
/* af_track_pool(): the pool blocks of this thread are tracked unarmed. */
static _Thread_local bool pool_here;

/* ---- the tracked set (mu held) ------------------------------------------- */

static size_t slot_of(uintptr_t p) {
  uint64_t h = (uint64_t)p * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 40) & (SET_CAP - 1);
}

static void set_insert(uintptr_t p, bool pool, size_t seq, size_t size,
                       void *caller) {
  if (set_used + 1 > SET_CAP / 4 * 3) {
    overflow = true;
    return;
  }
  size_t i = slot_of(p);
  while (set[i].ptr != EMPTY && set[i].ptr != TOMBSTONE)
    i = (i + 1) & (SET_CAP - 1);
  if (set[i].ptr == EMPTY)
    set_used++;
  set[i] = (tracked){
      .ptr = p, .pool = pool, .seq = seq, .size = size, .caller = caller};
}

static tracked *set_find(uintptr_t p, bool pool) {
  for (size_t i = slot_of(p); set[i].ptr != EMPTY; i = (i + 1) & (SET_CAP - 1))
    if (set[i].ptr == p && set[i].pool == pool)
      return &set[i];
  return NULL;
}

/* ---- counting ------------------------------------------------------------ */

/* Numbers an allocation of the arming thread and records it; returns true
 * when it must fail. *seq gets its number. `caller` is the hook's return
 * address: the recorded stack starts there. A whole stack costs a few
 * microseconds (the state dump makes a thousand allocations), so only the
 * failing allocation gets one unless af_full_stacks() asked for all. */
static bool consider(af_kind kind, size_t size, void *caller, size_t *seq) {
  pthread_mutex_lock(&mu);
  size_t k = ++count;
  bool fail = fail_at != 0 &&
              (fail_mode == AF_PERSISTENT ? k >= fail_at : k == fail_at);
  if (k == fail_at)
    hit = true;
  pthread_mutex_unlock(&mu);
  *seq = k;
  if (k > REC_MAX)
    return fail;
  /* Only this thread writes its records, and readers wait for af_disarm. */
  af_call *c = &rec[k - 1];
  *c = (af_call){.kind = kind, .size = size, .failed = fail};
  c->frames[c->nframes++] = caller;
  if (k != fail_at && !full_stacks)
    return fail;
  void *frames[AF_FRAMES + 8];
  in_hook = true;
  int n = backtrace(frames, AF_FRAMES + 8);
  in_hook = false;
  int first = 0;
  while (first < n && frames[first] != caller)
    first++;
  if (first < n)
    for (int i = first + 1; i < n && c->nframes < AF_FRAMES; i++)
      c->frames[c->nframes++] = frames[i];
  return fail;
}

static bool counted(void) {
  return armed_here && !in_hook;
}

static void track(void *p, bool pool, size_t seq, size_t size, void *caller) {
  if (p == NULL)
    return;
  pthread_mutex_lock(&mu);
  set_insert((uintptr_t)p, pool, seq, size, caller);
  pthread_mutex_unlock(&mu);
}

static void untrack(void *p) {
  if (p == NULL || !atomic_load_explicit(&tracking, memory_order_acquire))
    return;
  pthread_mutex_lock(&mu);
  tracked *t = set_find((uintptr_t)p, false);
  if (t != NULL)
    t->ptr = TOMBSTONE;
  pthread_mutex_unlock(&mu);
}

/* The common body of the allocating functions. */
#define HOOK(kind, size, call)                                                 \
  do {                                                                         \
    if (!counted())                                                            \
      return call;                                                             \
    size_t seq_;                                                               \
    if (consider(kind, size, __builtin_return_address(0), &seq_)) {            \
      errno = ENOMEM;                                                          \
      return NULL;                                                             \
    }                                                                          \
    void *p_ = call;                                                           \
    track(p_, false, seq_, size, NULL);                                        \
    return p_;                                                                 \
  } while (0)

/* ---- the interposed functions -------------------------------------------- */

EXPORT void *malloc(size_t size) {
  HOOK(AF_MALLOC, size, __libc_malloc(size));
}

EXPORT void *calloc(size_t n, size_t size) {
  HOOK(AF_CALLOC, n * size, __libc_calloc(n, size));
}

EXPORT void *aligned_alloc(size_t align, size_t size) {
  HOOK(AF_ALIGNED_ALLOC, size, __libc_memalign(align, size));
}

EXPORT void *memalign(size_t align, size_t size) {
  HOOK(AF_MEMALIGN, size, __libc_memalign(align, size));
}

static char *dup_n(const char *s, size_t n) {
  char *p = __libc_malloc(n + 1);
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

EXPORT char *strdup(const char *s) {
  size_t n = strlen(s);
  HOOK(AF_STRDUP, n + 1, dup_n(s, n));
}

EXPORT char *strndup(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  HOOK(AF_STRNDUP, n + 1, dup_n(s, n));
}

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0)
    return EINVAL;
  size_t seq = 0;
  bool count_it = counted();
  if (count_it &&
      consider(AF_POSIX_MEMALIGN, size, __builtin_return_address(0), &seq))
    return ENOMEM;
  void *p = __libc_memalign(align, size);
  if (p == NULL)
    return ENOMEM;
  if (count_it)
    track(p, false, seq, size, NULL);
  *out = p;
  return 0;
}

EXPORT void *realloc(void *old, size_t size) {
  size_t seq = 0;
  bool count_it = counted();
  if (count_it &&
      consider(AF_REALLOC, size, __builtin_return_address(0), &seq)) {
    errno = ENOMEM;
    return NULL; /* `old` stays valid, as with a real failure */
  }
  if (old == NULL || !atomic_load_explicit(&tracking, memory_order_acquire)) {
    void *p = __libc_realloc(old, size);
    if (count_it)
      track(p, false, seq, size, NULL);
    return p;
  }
  /* `old` leaves the set before glibc may hand its address out again. */
  pthread_mutex_lock(&mu);
  tracked *t = set_find((uintptr_t)old, false);
  tracked was = t != NULL ? *t : (tracked){0};
  if (t != NULL)
    t->ptr = TOMBSTONE;
  pthread_mutex_unlock(&mu);
  void *p = __libc_realloc(old, size);
  if (p == NULL && size != 0 && t != NULL) /* failed: `old` lives on */
    track(old, false, was.seq, was.size, NULL);
  else if (p != NULL && (count_it || t != NULL))
    track(p, false, count_it ? seq : was.seq, size, NULL);
  return p;
}

EXPORT void free(void *p) {
  untrack(p);
  __libc_free(p);
}

void *__wrap_strata__pool_alloc(struct strata__pool *pool, size_t size) {
  if (!counted()) {
    void *p = __real_strata__pool_alloc(pool, size);
    if (pool_here && !in_hook)
      track(p, true, 0, size, __builtin_return_address(0));
    return p;
  }
  size_t seq;
  if (consider(AF_POOL, size, __builtin_return_address(0), &seq))
    return NULL;
  void *p = __real_strata__pool_alloc(pool, size);
  track(p, true, seq, size, NULL);
  return p;
}

void __wrap_strata__pool_free(struct strata__pool *pool, void *ptr,
                              size_t size) {
  if (ptr != NULL && atomic_load_explicit(&tracking, memory_order_acquire)) {
    pthread_mutex_lock(&mu);
    tracked *t = set_find((uintptr_t)ptr, true);
    if (t != NULL && t->size != size)
      mismatches++; /* the pool ignores it: the block stays tracked */
    else if (t != NULL)
      t->ptr = TOMBSTONE;
    pthread_mutex_unlock(&mu);
  }
  __real_strata__pool_free(pool, ptr, size);
}

/* ---- control ------------------------------------------------------------- */

static pthread_once_t symtab_once = PTHREAD_ONCE_INIT;
static void load_symtab(void);

/* Starts tracking with an empty set, unless tracking already. */
static void start_tracking(void) {
  if (atomic_load_explicit(&tracking, memory_order_acquire))
    return;
  pthread_mutex_lock(&mu);
  overflow = false;
  mismatches = 0;
  memset(set, 0, sizeof set);
  set_used = 0;
  atomic_store_explicit(&tracking, true, memory_order_release);
  pthread_mutex_unlock(&mu);
}

void af_track_pool(void) {
  start_tracking();
  pool_here = true;
}

void af_arm(unsigned long at, af_mode mode) {
  /* The first backtrace() loads libgcc_s: do it before counting. */
  void *f[2];
  backtrace(f, 2);
  pthread_once(&symtab_once, load_symtab);
  start_tracking();
  pthread_mutex_lock(&mu);
  count = 0;
  hit = false;
  fail_at = at;
  fail_mode = mode;
  pthread_mutex_unlock(&mu);
  armed_here = true;
}

void af_disarm(void) {
  armed_here = false;
}

void af_full_stacks(bool on) {
  full_stacks = on;
}

void af_stop(void) {
  armed_here = pool_here = false;
  atomic_store_explicit(&tracking, false, memory_order_release);
}

size_t af_count(void) {
  pthread_mutex_lock(&mu);
  size_t n = count;
  pthread_mutex_unlock(&mu);
  return n;
}

const af_call *af_call_at(size_t i) {
  pthread_mutex_lock(&mu);
  const af_call *c = i < count && i < REC_MAX ? &rec[i] : NULL;
  pthread_mutex_unlock(&mu);
  return c;
}

bool af_hit(void) {
  pthread_mutex_lock(&mu);
  bool h = hit;
  pthread_mutex_unlock(&mu);
  return h;
}

size_t af_live(void) {
  pthread_mutex_lock(&mu);
  size_t n = overflow ? 1 : 0;
  for (size_t i = 0; i < SET_CAP; i++)
    n += set[i].ptr > TOMBSTONE;
  pthread_mutex_unlock(&mu);
  return n;
}

size_t af_size_mismatches(void) {
  pthread_mutex_lock(&mu);
  size_t n = mismatches;
  pthread_mutex_unlock(&mu);
  return n;
}

const char *af_kind_name(af_kind kind) {
  static const char *const names[AF_KIND_COUNT] = {
      [AF_MALLOC] = "malloc",
      [AF_CALLOC] = "calloc",
      [AF_REALLOC] = "realloc",
      [AF_ALIGNED_ALLOC] = "aligned_alloc",
      [AF_POSIX_MEMALIGN] = "posix_memalign",
      [AF_MEMALIGN] = "memalign",
      [AF_STRDUP] = "strdup",
      [AF_STRNDUP] = "strndup",
      [AF_POOL] = "strata__pool_alloc",
  };
  return (unsigned)kind < AF_KIND_COUNT ? names[kind] : "?";
}

/* ---- naming call sites --------------------------------------------------- */

/* The executable's own function symbols (.symtab: static functions
 * included, which the dynamic symbol table lacks), sorted by address. */
typedef struct fsym {
  uintptr_t start, size;
  const char *name;
} fsym;

static fsym *syms;
static size_t nsyms;
static uintptr_t exe_base;

static int cmp_fsym(const void *a, const void *b) {
  uintptr_t x = ((const fsym *)a)->start, y = ((const fsym *)b)->start;
  return (x > y) - (x < y);
}

/* Maps /proc/self/exe for good (the names point into it). Best effort:
 * without it, frames of the executable show as offsets. */
static void load_symtab(void) {
  Dl_info info;
  if (dladdr((void *)load_symtab, &info) == 0)
    return;
  exe_base = (uintptr_t)info.dli_fbase;
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 ||
      (size_t)st.st_size < sizeof(ElfW(Ehdr))) {
    if (fd >= 0)
      close(fd);
    return;
  }
  const uint8_t *map =
      mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED)
    return;
  const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)map;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr)) >
          (uint64_t)st.st_size)
    return;
  const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(map + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
      continue;
    const ElfW(Sym) *sym = (const ElfW(Sym) *)(map + sh[i].sh_offset);
    size_t n = sh[i].sh_size / sizeof *sym;
    const char *str = (const char *)(map + sh[sh[i].sh_link].sh_offset);
    syms = __libc_malloc(n * sizeof *syms);
    if (syms == NULL)
      return;
    for (size_t j = 0; j < n; j++)
      if (ELF64_ST_TYPE(sym[j].st_info) == STT_FUNC && sym[j].st_size > 0 &&
          sym[j].st_value != 0)
        syms[nsyms++] = (fsym){.start = exe_base + sym[j].st_value,
                               .size = sym[j].st_size,
                               .name = str + sym[j].st_name};
    qsort(syms, nsyms, sizeof *syms, cmp_fsym);
    return;
  }
}

static const fsym *exe_function(uintptr_t a) {
  size_t lo = 0, hi = nsyms;
  while (lo < hi) { /* the last symbol starting at or below a */
    size_t mid = (lo + hi) / 2;
    if (syms[mid].start <= a)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || a >= syms[lo - 1].start + syms[lo - 1].size)
    return NULL;
  return &syms[lo - 1];
}

/* Names the function holding return address `a`: "name+0xOFF", or
 * "object+0xOFF" (for addr2line) when no symbol covers it. */
static void frame_name(void *a, char *buf, size_t len) {
  pthread_once(&symtab_once, load_symtab);
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  /* a - 1: the call, not what follows it (a call may end a function). */
  uintptr_t at = (uintptr_t)a - 1;
  if (dladdr1((void *)at, &info, (void **)&sym, RTLD_DL_SYMENT) == 0) {
    snprintf(buf, len, "%p", a);
    return;
  }
  const fsym *f =
      (uintptr_t)info.dli_fbase == exe_base ? exe_function(at) : NULL;
  uintptr_t s = (uintptr_t)info.dli_saddr;
  if (f != NULL) {
    snprintf(buf, len, "%s+0x%tx", f->name, (uintptr_t)a - f->start);
  } else if (info.dli_sname != NULL && sym != NULL && at >= s &&
             at < s + sym->st_size) {
    snprintf(buf, len, "%s+0x%tx", info.dli_sname, (uintptr_t)a - s);
  } else {
    const char *file = info.dli_fname ? info.dli_fname : "?";
    const char *slash = strrchr(file, '/');
    snprintf(buf, len, "%s+0x%tx", slash ? slash + 1 : file,
             (uintptr_t)a - (uintptr_t)info.dli_fbase);
  }
}

void af_describe(const af_call *c, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s(%zu)", af_kind_name(c->kind), c->size);
  for (unsigned i = 0; i < c->nframes && n > 0 && (size_t)n < len; i++) {
    char f[160];
    frame_name(c->frames[i], f, sizeof f);
    n += snprintf(buf + n, len - (size_t)n, " <- %s", f);
  }
}

bool af_call_under(const af_call *c, const char *fn) {
  for (unsigned i = 0; i < c->nframes; i++) {
    char f[160];
    frame_name(c->frames[i], f, sizeof f);
    if (strstr(f, fn) != NULL)
      return true;
  }
  return false;
}

/* The live entries, by number (mu not held on return). */
static size_t live_entries(tracked *out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < SET_CAP && n < max; i++)
    if (set[i].ptr > TOMBSTONE)
      out[n++] = set[i];
  pthread_mutex_unlock(&mu);
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && out[j - 1].seq > out[j].seq; j--) {
      tracked t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
  return n;
}

size_t af_live_under(const char *fn) {
  tracked e[256];
  size_t n = live_entries(e, 256), k = 0;
  for (size_t i = 0; i < n; i++) {
    const af_call *c = e[i].seq > 0 ? af_call_at(e[i].seq - 1) : NULL;
    k += c != NULL && af_call_under(c, fn);
  }
  return k;
}

const char *af_live_report(char *buf, size_t len) {
  tracked e[256];
  size_t n = live_entries(e, 256), o = 0;
  buf[0] = '\0';
  if (overflow)
    o += (size_t)snprintf(buf, len, "  (the tracked set overflowed)\n");
  for (size_t i = 0; i < n && o < len; i++) {
    char d[1024];
    const af_call *c = e[i].seq > 0 ? af_call_at(e[i].seq - 1) : NULL;
    if (c != NULL) {
      af_describe(c, d, sizeof d);
    } else if (e[i].seq == 0) {
      char f[160];
      frame_name(e[i].caller, f, sizeof f);
      snprintf(d, sizeof d, "%s(%zu) <- %s, unarmed", af_kind_name(AF_POOL),
               e[i].size, f);
    } else {
      snprintf(d, sizeof d, "(not recorded)");
    }
    o += (size_t)snprintf(buf + o, len - o, "  #%zu %s\n", e[i].seq, d);
  }
  return buf;
}
