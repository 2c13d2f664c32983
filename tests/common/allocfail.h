/* Allocation failure injection for the test executable.
 *
 * allocfail.c defines, in the test executable, malloc, calloc, realloc,
 * free, aligned_alloc, posix_memalign, memalign, strdup and strndup. The
 * static library, jansson, libxxhash and libc itself (opendir, fopen, ...)
 * all bind to these definitions, which forward to glibc's allocator through
 * __libc_malloc, __libc_calloc, __libc_realloc, __libc_memalign and
 * __libc_free (not dlsym(RTLD_NEXT), which may itself allocate). Linked
 * with -Wl,--wrap=strata__pool_alloc,--wrap=strata__pool_free, it also sees
 * the store's pool (proto memory), whose allocations fail in real life
 * whenever one needs a new chunk that the system refuses.
 *
 * AddressSanitizer owns malloc: build this only without sanitizers.
 *
 * While armed, every allocation *made by the arming thread* is numbered from
 * 1 and recorded (kind, size, call stack); the one numbered `fail_at` fails
 * (AF_TRANSIENT), or every one from that on does (AF_PERSISTENT): it returns
 * NULL (ENOMEM), or ENOMEM for posix_memalign. fail_at 0 only counts. Other
 * threads are neither counted nor failed.
 *
 * Every allocation counted while armed is also *tracked* until it is freed,
 * whichever thread frees it, and tracking goes on after af_disarm() until
 * af_stop(): af_live() then says which allocations of the armed period are
 * still alive (a leak, once the owner was closed). af_track_pool() adds
 * the pool blocks allocated before arming. A pool block freed with a size
 * other than the one it was allocated with is counted by
 * af_size_mismatches() (the pool ignores such a free). */
#ifndef STRATA_TEST_ALLOCFAIL_H
#define STRATA_TEST_ALLOCFAIL_H

#include <stdbool.h>
#include <stddef.h>

typedef enum af_kind {
  AF_MALLOC,
  AF_CALLOC,
  AF_REALLOC,
  AF_ALIGNED_ALLOC,
  AF_POSIX_MEMALIGN,
  AF_MEMALIGN,
  AF_STRDUP,
  AF_STRNDUP,
  AF_POOL, /* strata__pool_alloc() */
  AF_KIND_COUNT
} af_kind;

typedef enum af_mode {
  AF_TRANSIENT,  /* only allocation fail_at fails */
  AF_PERSISTENT, /* fail_at and every later one fail */
} af_mode;

#define AF_FRAMES 12

/* One counted allocation, in the order they happened. */
typedef struct af_call {
  af_kind kind;
  size_t size;
  bool failed; /* injected failure */
  unsigned nframes;
  /* frames[0] is the allocation's caller; the rest of the stack is
   * recorded for the failing allocation, or for all with af_full_stacks. */
  void *frames[AF_FRAMES];
} af_call;

/* Starts numbering, recording and failing on the calling thread, and
 * tracking (with an empty set, unless af_track_pool() started it); clears
 * the record. */
void af_arm(unsigned long fail_at, af_mode mode);
/* Starts tracking (with an empty set) the pool blocks the calling thread
 * allocates, armed or not, so that a leak of a block allocated before the
 * armed call (one it unlinked and never freed) shows after the store
 * closes: every block must be returned to the pool by then. */
void af_track_pool(void);
/* Stops numbering and failing. Keeps the record, and keeps tracking frees
 * of the tracked allocations. */
void af_disarm(void);
/* Also stops tracking, and forgets the tracked set. */
void af_stop(void);
/* Records the whole stack of every allocation, not only of the failing
 * one (slower). */
void af_full_stacks(bool on);

/* The record of the last armed period. */
size_t af_count(void);
const af_call *af_call_at(size_t i); /* 0-based; NULL past the end */
/* Whether allocation fail_at happened (and so failed). */
bool af_hit(void);

/* Allocations of the armed period not freed yet. */
size_t af_live(void);
/* Describes them, one per line ("#12 malloc(48) at crystallize.c ..."),
 * into buf; returns buf. */
const char *af_live_report(char *buf, size_t len);
/* Live allocations of the armed period made (directly or not) by a
 * function whose name contains `fn` (e.g. "pthread_create": the thread
 * descriptor and TLS that glibc caches with a thread's stack). */
size_t af_live_under(const char *fn);
size_t af_size_mismatches(void);

const char *af_kind_name(af_kind kind);
/* "malloc(48) <- list_dir+0x3a <- strata_store_open+0x1b2 ...": the
 * recorded frames, named from the executable's symbol table (static functions
 * included) and the libraries' dynamic symbols; a frame no symbol covers
 * shows as object+0xOFFSET, which addr2line -f -e resolves. */
void af_describe(const af_call *c, char *buf, size_t len);
/* Whether any frame of `c` is in a function whose name contains `fn`. */
bool af_call_under(const af_call *c, const char *fn);

#endif /* STRATA_TEST_ALLOCFAIL_H */
