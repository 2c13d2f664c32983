/* The writer's output: the write buffer that layers and the index go
 * through, the positioned write under it, and the growable byte buffer
 * of the string arenas. The layer code (writer.c), the index
 * (writer_index.c) and commit (writer_commit.c) all write through here,
 * which is why it is a file of its own: none of them calls another for
 * its bytes. */
#include <stdlib.h>
#include <string.h>

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
