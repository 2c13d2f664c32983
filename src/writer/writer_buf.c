/* The writer's output: the write buffer that layers and the index go
 * through, the positioned write under it, the growable byte buffer of the
 * string arena, and the memory of the entry arrays. The layer code (writer.c),
 * the index (writer_index.c) and commit (writer_commit.c) all write through
 * here, which is why it is a file of its own: none of them calls another for
 * its bytes. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "writer/writer_internal.h"

/* Small appends cost a memcpy, and the file sees large writes. */
int strata__writer_put(strata_writer *w, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    size_t room = STRATA__WBUF_SIZE - w->wlen;
    if (room == 0) {
      STRATA__TRY(strata__writer_flush(w));
      room = STRATA__WBUF_SIZE;
    }
    size_t k = len < room ? len : room;
    memcpy(w->wbuf + w->wlen, p, k);
    w->wlen += k;
    w->pos += k;
    p += k;
    len -= k;
  }
  return 0;
}

int strata__writer_write_at(strata_writer *w, const void *p, size_t len,
                            uint64_t at) {
  int rc = strata__pubfile_write_at(w->pf, p, len, at);
  if (rc < 0)
    w->failed = true;
  return rc;
}

int strata__writer_flush(strata_writer *w) {
  if (w->wlen == 0)
    return 0;
  if (w->hash_flushes)
    XXH3_64bits_update(w->xxh, w->wbuf, w->wlen);
  int rc = strata__writer_write_at(w, w->wbuf, w->wlen, w->pos - w->wlen);
  w->wlen = 0;
  return rc;
}

int strata__buf_put(strata__buf *b, const void *p, uint64_t len) {
  if (len > UINT64_MAX - b->len)
    return STRATA_E_NOMEM;
  if (b->len + len > b->cap) {
    uint64_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len)
      cap *= 2;
    uint8_t *q = realloc(b->p, (size_t)cap);
    if (q == NULL)
      return STRATA_E_NOMEM;
    b->p = q;
    b->cap = cap;
  }
  if (len)
    memcpy(b->p + b->len, p, (size_t)len);
  b->len += len;
  return 0;
}

/* ---- entry arrays ---------------------------------------------------- */

/* An entry array of ENTRIES_MAP_MIN bytes or more (58,255 entries) is a
 * mapping of its own: grown by mremap() (pages move, nothing is copied),
 * freed by munmap(), and hinted for transparent huge pages. The array is
 * new memory every time a writer fills it, so each 4 KiB page faults once:
 * 1,760 faults, about 7 ms, for 100,000 entries, a seventh of a
 * crystallization's CPU time (issue 19's profile), and realloc() of a 4M
 * layer build copied the array at each doubling while it lay in the
 * heap (0.3 s). The hint goes on these mappings only: on heap memory it
 * would stay on the heap's pages after the free, for whatever the process
 * allocates there next. Smaller arrays come from malloc(). */
#define ENTRIES_MAP_MIN ((size_t)4 << 20)

static size_t entries_bytes(uint64_t cap) {
  return (size_t)cap * sizeof(strata__wentry);
}

static void hint_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: failure costs faults */
#else
  (void)p, (void)bytes;
#endif
}

static strata__wentry *map_entries(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  hint_huge(p, bytes);
  return p;
}

strata__wentry *strata__entries_alloc(uint64_t cap) {
  if (cap > SIZE_MAX / sizeof(strata__wentry))
    return NULL;
  size_t bytes = entries_bytes(cap);
  return bytes >= ENTRIES_MAP_MIN ? map_entries(bytes) : malloc(bytes);
}

strata__wentry *strata__entries_resize(strata__wentry *e, uint64_t cap,
                                       uint64_t new_cap) {
  if (new_cap > SIZE_MAX / sizeof(strata__wentry))
    return NULL;
  size_t from = entries_bytes(cap), to = entries_bytes(new_cap);
  if (e == NULL || cap == 0)
    return strata__entries_alloc(new_cap);
  if (to < ENTRIES_MAP_MIN)
    return from < ENTRIES_MAP_MIN ? realloc(e, to) : NULL; /* never shrinks */
  if (from >= ENTRIES_MAP_MIN) {
    void *p = mremap(e, from, to, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
      return NULL;
    hint_huge(p, to);
    return p;
  }
  strata__wentry *m = map_entries(to);
  if (m != NULL) {
    memcpy(m, e, from);
    free(e);
  }
  return m;
}

void strata__entries_free(strata__wentry *e, uint64_t cap) {
  if (e == NULL)
    return;
  size_t bytes = entries_bytes(cap);
  if (bytes >= ENTRIES_MAP_MIN)
    munmap(e, bytes);
  else
    free(e);
}
