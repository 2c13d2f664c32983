/* The region writer: streams layers into a temporary file in the target
 * directory, then appends the index, writes the header, fsync()s, renames
 * the file into place and fsync()s the directory. This is the only code
 * that writes region files: region-builder and crystallization both use it.
 *
 * Durability rules (the PostgreSQL "fsyncgate" lesson): the file descriptor
 * stays open from the first write to the fsync; a failed write or fsync is
 * final for that file, never retried, and a file whose write or fsync failed
 * is never renamed into place. */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/json_check.h"
#include "writer/writer_internal.h"

#define WBUF_SIZE (1u << 20)
/* Report progress at most once per this many bytes of content. */
#define PROGRESS_STEP (8u << 20)

/* ---- small helpers ---------------------------------------------------- */

static int write_all(strata_writer *w, const uint8_t *p, size_t len,
                     uint64_t at) {
  while (len > 0) {
    ssize_t k = pwrite(w->fd, p, len, (off_t)at);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      /* pwrite() returning 0 for a nonzero length makes no progress:
       * treat it as an I/O error rather than loop. */
      w->failed = true;
      return strata__fail_errno(k < 0 ? errno : EIO,
                                "%s: writing %zu bytes at offset %" PRIu64,
                                w->path, len, at);
    }
    p += k;
    len -= (size_t)k;
    at += (uint64_t)k;
  }
  return 0;
}

static int flush(strata_writer *w) {
  if (w->wlen == 0)
    return 0;
  int rc = write_all(w, w->wbuf, w->wlen, w->pos - w->wlen);
  w->wlen = 0;
  return rc;
}

static int put(strata_writer *w, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    size_t room = WBUF_SIZE - w->wlen;
    if (room == 0) {
      STRATA__TRY(flush(w));
      room = WBUF_SIZE;
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

/* The in-memory id and name sets hash with a per-writer random seed, so
 * that ids or names chosen to collide cannot make adding layers quadratic. */
static uint64_t hash_bytes(const strata_writer *w, const char *s, size_t len) {
  return XXH3_64bits_withSeed(s, len, w->set_seed);
}

/* ---- the id and name sets --------------------------------------------- */

static int set_grow(strata__wset *s) {
  uint64_t cap = s->cap ? s->cap * 2 : 1024;
  uint32_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return STRATA_E_NOMEM;
  free(s->slots);
  s->slots = slots;
  s->cap = cap;
  s->used = 0;
  return 0;
}

static uint64_t key_hash(const strata_writer *w, const strata__wset *s,
                         uint32_t entry) {
  const strata__wentry *e = &w->entries[entry];
  if (s == &w->ids)
    return strata__id_hash(e->id, w->set_seed);
  return hash_bytes(w, (const char *)w->strings.p + e->name_off, e->name_len);
}

static void set_insert(strata_writer *w, strata__wset *s, uint32_t entry) {
  uint64_t i = key_hash(w, s, entry) & (s->cap - 1);
  while (s->slots[i] != 0)
    i = (i + 1) & (s->cap - 1);
  s->slots[i] = entry + 1;
  s->used++;
}

/* Rebuilds the set at twice the size when it is half full. */
static int set_reserve(strata_writer *w, strata__wset *s) {
  if (s->cap != 0 && (s->used + 1) * 2 <= s->cap)
    return 0;
  STRATA__TRY(set_grow(s));
  for (uint64_t i = 0; i < w->n; i++) {
    if (s == &w->names && w->entries[i].name_len == 0)
      continue;
    set_insert(w, s, (uint32_t)i);
  }
  return 0;
}

/* Builds the id set over every entry so far: ids that came in ascending
 * order needed none (a new id above the last one cannot be a duplicate);
 * the first id out of order needs it from then on. */
static int index_ids(strata_writer *w) {
  uint64_t cap = 1024;
  while (cap < 2 * (w->n + 1))
    cap *= 2;
  uint32_t *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the id set", w->path);
  free(w->ids.slots);
  w->ids = (strata__wset){.slots = slots, .cap = cap};
  for (uint64_t i = 0; i < w->n; i++)
    set_insert(w, &w->ids, (uint32_t)i);
  w->ids_indexed = true;
  return 0;
}

/* Entry number holding this id, or -1. */
static int64_t find_id(const strata_writer *w, uint64_t id) {
  const strata__wset *s = &w->ids;
  if (!w->ids_indexed) {
    /* Ascending so far: only the last id can equal a new one. */
    if (w->n > 0 && w->entries[w->n - 1].id == id)
      return (int64_t)w->n - 1;
    return -1;
  }
  if (s->cap == 0)
    return -1;
  for (uint64_t i = strata__id_hash(id, w->set_seed) & (s->cap - 1);
       s->slots[i]; i = (i + 1) & (s->cap - 1))
    if (w->entries[s->slots[i] - 1].id == id)
      return s->slots[i] - 1;
  return -1;
}

static int64_t find_name(const strata_writer *w, const char *name, size_t len) {
  const strata__wset *s = &w->names;
  if (s->cap == 0)
    return -1;
  for (uint64_t i = hash_bytes(w, name, len) & (s->cap - 1); s->slots[i];
       i = (i + 1) & (s->cap - 1)) {
    const strata__wentry *e = &w->entries[s->slots[i] - 1];
    if (e->name_len == len &&
        memcmp(w->strings.p + e->name_off, name, len) == 0)
      return s->slots[i] - 1;
  }
  return -1;
}

/* ---- argument checks -------------------------------------------------- */

int strata__check_text(const char *path, const char *what, uint64_t id,
                       const char *s, size_t max, bool json) {
  size_t len = strlen(s);
  STRATA__FAIL_IF(len > max, STRATA_E_LIMIT,
                  "%s: layer %" PRIu64 ": %s is %zu bytes (at most %zu)", path,
                  id, what, len, max);
  STRATA__FAIL_IF(!strata__utf8_valid(s, len), STRATA_E_INVAL,
                  "%s: layer %" PRIu64 ": %s is not valid UTF-8", path, id,
                  what);
  if (json && len > 0) {
    json_error_t err;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &err);
    if (v == NULL && strata__json_refusal(&err, s, len) == STRATA_E_NOMEM)
      return strata__fail(STRATA_E_NOMEM,
                          "%s: layer %" PRIu64 ": checking the %s: out of "
                          "memory",
                          path, id, what);
    if (v == NULL)
      return strata__fail(STRATA_E_INVAL,
                          "%s: layer %" PRIu64 ": %s is not JSON: %s at %d:%d",
                          path, id, what, err.text, err.line, err.column);
    json_decref(v);
  }
  return 0;
}

/* ---- open ------------------------------------------------------------- */

/* Chooses the temporary file's name, ".BASE.tmp-XXXXXXXX", once, at open:
 * it never changes afterwards, so a signal handler may read it at any time
 * through strata_writer_temp_path(). */
static int name_temp(strata_writer *w, const char *dir, const char *base,
                     uint64_t *rng) {
  size_t len = strlen(base) + 32;
  if (w->tmp_name == NULL)
    w->tmp_name = malloc(len);
  if (w->tmp_path == NULL)
    w->tmp_path = malloc(strlen(dir) + len + 2);
  if (w->tmp_name == NULL || w->tmp_path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", w->path);
  *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
  snprintf(w->tmp_name, len, ".%s.tmp-%08" PRIx64, base, *rng >> 32);
  sprintf(w->tmp_path, "%s/%s", dir, w->tmp_name);
  return 0;
}

static int open_temp(strata_writer *w, const char *dir, const char *base) {
  w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->dirfd < 0)
    return strata__fail_errno(errno, "%s: opening directory %s", w->path, dir);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
  STRATA__TRY(name_temp(w, dir, base, &rng));
#ifdef O_TMPFILE
  /* Preferred: an unnamed file, which nothing can leave behind. It gets the
   * temporary name only for the moment between linkat() and rename(). */
  w->fd = openat(w->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
  if (w->fd >= 0) {
    w->anonymous = true;
    /* Held until the fd closes: a store that finds this file (once it has
     * a name) knows it belongs to a live writer and leaves it alone. */
    (void)flock(w->fd, LOCK_EX | LOCK_NB);
    return 0;
  }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL &&
      errno != ENOENT)
    return strata__fail_errno(errno, "%s: creating a temporary file in %s",
                              w->path, dir);
#endif
  /* Fallback: a named temporary file, created exclusively and without
   * following symlinks, so nothing else can be clobbered. */
  for (int tries = 0; tries < 100; tries++) {
    w->fd = openat(w->dirfd, w->tmp_name,
                   O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (w->fd >= 0) {
      w->linked = true;
      (void)flock(w->fd, LOCK_EX | LOCK_NB); /* as above */
      return 0;
    }
    if (errno != EEXIST)
      break;
    STRATA__TRY(name_temp(w, dir, base, &rng));
  }
  return strata__fail_errno(errno, "%s: creating a temporary file in %s",
                            w->path, dir);
}

int strata_writer_open(const char *path, const strata_writer_options *o,
                       strata_writer **out) {
  STRATA__FAIL_IF(path == NULL || o == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_writer_open: NULL argument");
  STRATA__FAIL_IF(o->name == NULL || o->name[0] == '\0', STRATA_E_INVAL,
                  "%s: the region needs a name", path);
  size_t nlen = strlen(o->name);
  STRATA__FAIL_IF(nlen > STRATA__MAX_REGION_NAME, STRATA_E_LIMIT,
                  "%s: region name is %zu bytes (at most %u)", path, nlen,
                  STRATA__MAX_REGION_NAME);
  STRATA__FAIL_IF(!strata__utf8_valid(o->name, nlen), STRATA_E_INVAL,
                  "%s: region name is not valid UTF-8", path);
  uint32_t align = o->align ? o->align : STRATA__DEFAULT_ALIGN;
  STRATA__FAIL_IF((align & (align - 1)) != 0 || align < STRATA__MIN_ALIGN ||
                      align > STRATA__MAX_ALIGN,
                  STRATA_E_INVAL,
                  "%s: alignment %" PRIu32 " is not a power of two in [%u, %u]",
                  path, align, STRATA__MIN_ALIGN, STRATA__MAX_ALIGN);
  if (o->metadata != NULL && o->metadata[0] != '\0') { /* "" means none */
    size_t mlen = strlen(o->metadata);
    STRATA__FAIL_IF(mlen > STRATA__MAX_METADATA, STRATA_E_LIMIT,
                    "%s: region metadata is %zu bytes (at most %u)", path, mlen,
                    STRATA__MAX_METADATA);
    json_error_t err;
    json_t *v = json_loadb(o->metadata, mlen, JSON_DECODE_ANY, &err);
    if (v == NULL &&
        strata__json_refusal(&err, o->metadata, mlen) == STRATA_E_NOMEM)
      return strata__fail(STRATA_E_NOMEM,
                          "%s: checking the region metadata: out of memory",
                          path);
    if (v == NULL)
      return strata__fail(STRATA_E_INVAL,
                          "%s: region metadata is not JSON: %s at %d:%d", path,
                          err.text, err.line, err.column);
    json_decref(v);
  }

  strata_writer *w = calloc(1, sizeof *w);
  if (w == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the writer", path);
  w->fd = w->dirfd = -1;
  w->path = strdup(path);
  w->name = strdup(o->name);
  w->metadata = o->metadata && o->metadata[0] ? strdup(o->metadata) : NULL;
  w->wbuf = malloc(WBUF_SIZE);
  w->xxh = XXH3_createState();
  char *d = strdup(path), *b = strdup(path);
  if (!w->path || !w->name || (o->metadata && o->metadata[0] && !w->metadata) ||
      !w->wbuf || !w->xxh || !d || !b) {
    free(d);
    free(b);
    strata_writer_abort(w);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the writer", path);
  }
  w->region_id = o->region_id;
  if (getrandom(&w->set_seed, sizeof w->set_seed, GRND_NONBLOCK) !=
      (ssize_t)sizeof w->set_seed)
    w->set_seed = (uint64_t)(uintptr_t)w ^ 0x9e3779b97f4a7c15ull;
  w->align = align;
  w->progress = o->progress;
  w->progress_ctx = o->progress_ctx;
  w->data_off = (STRATA__HEADER_SIZE + align - 1) / align * align;
  w->pos = w->data_off;
  int rc = open_temp(w, dirname(d), basename(b));
  free(d);
  free(b);
  if (rc < 0) {
    strata_writer_abort(w);
    return rc;
  }
  *out = w;
  return 0;
}

const char *strata_writer_temp_path(const strata_writer *w) {
  return w ? w->tmp_path : NULL;
}

/* ---- layers ------------------------------------------------------------ */

int strata__writer_reserve(strata_writer *w, uint64_t layers) {
  if (layers <= w->cap || layers > STRATA__MAX_LAYERS)
    return 0;
  strata__wentry *e = realloc(w->entries, layers * sizeof *e);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "%s: sizing the index for %" PRIu64 " entries", w->path,
                        layers);
  w->entries = e;
  w->cap = layers;
  return 0;
}

static int grow_entries(strata_writer *w) {
  if (w->n < w->cap)
    return 0;
  uint64_t cap = w->cap ? w->cap * 2 : 1024;
  strata__wentry *e = realloc(w->entries, cap * sizeof *e);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "%s: growing the index to %" PRIu64 " entries", w->path,
                        cap);
  w->entries = e;
  w->cap = cap;
  return 0;
}

static int store_string(strata_writer *w, const char *s, uint64_t *off,
                        uint32_t *len) {
  size_t l = s ? strlen(s) : 0;
  *off = 0;
  *len = (uint32_t)l;
  if (l == 0)
    return 0;
  *off = w->strings.len;
  if (strata__buf_put(&w->strings, s, l + 1) < 0)
    return strata__fail(STRATA_E_NOMEM, "%s: storing names", w->path);
  return 0;
}

int strata_writer_begin_layer(strata_writer *w, uint64_t id, const char *name,
                              const char *metadata) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  STRATA__FAIL_IF(w->failed || w->in_layer, STRATA_E_STATE,
                  "%s: layer %" PRIu64 ": writer is %s", w->path, id,
                  w->failed ? "failed" : "inside another layer");
  STRATA__FAIL_IF(w->n >= STRATA__MAX_LAYERS, STRATA_E_LIMIT,
                  "%s: layer %" PRIu64 ": more than %llu layers", w->path, id,
                  STRATA__MAX_LAYERS);
  if (name != NULL) {
    STRATA__FAIL_IF(name[0] == '\0', STRATA_E_INVAL,
                    "%s: layer %" PRIu64 ": empty name", w->path, id);
    STRATA__TRY(strata__check_text(w->path, "name", id, name,
                                   STRATA__MAX_LAYER_NAME, false));
  }
  if (metadata != NULL)
    STRATA__TRY(strata__check_text(w->path, "metadata", id, metadata,
                                   STRATA__MAX_METADATA, true));
  if (!w->ids_indexed && w->n > 0 && id < w->entries[w->n - 1].id)
    STRATA__TRY(index_ids(w));
  int64_t dup = find_id(w, id);
  STRATA__FAIL_IF(dup >= 0, STRATA_E_DUPLICATE,
                  "%s: layer %" PRIu64 ": duplicate id (already added as "
                  "layer number %" PRId64 ", counting from 0)",
                  w->path, id, dup);
  if (name != NULL) {
    dup = find_name(w, name, strlen(name));
    STRATA__FAIL_IF(dup >= 0, STRATA_E_DUPLICATE,
                    "%s: layer %" PRIu64
                    ": duplicate name \"%s\" (layer %" PRIu64 " has it)",
                    w->path, id, name, w->entries[dup].id);
  }
  STRATA__TRY(grow_entries(w));
  /* Pad the data to the alignment of the new blob. */
  static const uint8_t zeros[STRATA__MAX_ALIGN];
  uint64_t pad = (w->align - (w->pos - w->data_off) % w->align) % w->align;
  STRATA__TRY(put(w, zeros, (size_t)pad));

  strata__wentry *e = &w->entries[w->n];
  memset(e, 0, sizeof *e);
  e->id = id;
  e->offset = w->pos - w->data_off;
  STRATA__TRY(store_string(w, name, &e->name_off, &e->name_len));
  STRATA__TRY(store_string(w, metadata, &e->meta_off, &e->meta_len));
  XXH3_64bits_reset(w->xxh);
  w->in_layer = true;
  return 0;
}

static void report_progress(strata_writer *w, bool force) {
  if (w->progress == NULL)
    return;
  if (!force && w->pos - w->last_progress < PROGRESS_STEP)
    return;
  w->last_progress = w->pos;
  w->progress(w->progress_ctx, w->pos - w->data_off, w->n);
}

int strata_writer_append(strata_writer *w, const void *data, size_t size) {
  STRATA__FAIL_IF(w == NULL || (data == NULL && size > 0), STRATA_E_INVAL,
                  "strata_writer_append: NULL argument");
  STRATA__FAIL_IF(!w->in_layer || w->failed, STRATA_E_STATE,
                  "%s: append outside a layer", w->path);
  XXH3_64bits_update(w->xxh, data, size);
  STRATA__TRY(put(w, data, size));
  report_progress(w, false);
  return 0;
}

int strata_writer_append_zeros(strata_writer *w, uint64_t size) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  STRATA__FAIL_IF(!w->in_layer || w->failed, STRATA_E_STATE,
                  "%s: append outside a layer", w->path);
  STRATA__FAIL_IF(size > INT64_MAX - w->pos, STRATA_E_LIMIT,
                  "%s: %" PRIu64 " zero bytes would pass the largest file size",
                  w->path, size);
  static const uint8_t zeros[1u << 16];
  for (uint64_t left = size; left > 0;) {
    size_t k = left < sizeof zeros ? (size_t)left : sizeof zeros;
    XXH3_64bits_update(w->xxh, zeros, k);
    left -= k;
  }
  /* Leave a hole: flushing and skipping ahead means nothing is written. */
  STRATA__TRY(flush(w));
  w->pos += size;
  report_progress(w, false);
  return 0;
}

int strata_writer_end_layer(strata_writer *w) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  STRATA__FAIL_IF(!w->in_layer || w->failed, STRATA_E_STATE,
                  "%s: end_layer outside a layer", w->path);
  strata__wentry *e = &w->entries[w->n];
  e->size = w->pos - w->data_off - e->offset;
  e->checksum = XXH3_64bits_digest(w->xxh);
  w->in_layer = false;
  uint32_t idx = (uint32_t)w->n;
  if (w->n > 0 && e->id < w->entries[w->n - 1].id)
    w->out_of_order = true;
  w->n++;
  /* Register the id and name only now that the layer is complete. */
  if ((w->ids_indexed && set_reserve(w, &w->ids) < 0) ||
      (e->name_len && set_reserve(w, &w->names) < 0)) {
    w->failed = true;
    return strata__fail(STRATA_E_NOMEM, "%s: growing the id set", w->path);
  }
  if (w->ids_indexed && w->ids.used < w->n)
    set_insert(w, &w->ids, idx);
  if (e->name_len &&
      find_name(w, (const char *)w->strings.p + e->name_off, e->name_len) < 0)
    set_insert(w, &w->names, idx);
  report_progress(w, true);
  return 0;
}

int strata_writer_add(strata_writer *w, uint64_t id, const char *name,
                      const char *metadata, const void *data, size_t size) {
  STRATA__TRY(strata_writer_begin_layer(w, id, name, metadata));
  int rc = strata_writer_append(w, data, size);
  if (rc < 0) {
    w->failed = true; /* the layer is half written */
    return rc;
  }
  return strata_writer_end_layer(w);
}

/* ---- commit and abort ------------------------------------------------- */

static int timed_fsync(strata_writer *w, int fd) {
  uint64_t t0 = strata__mono_ns();
  int rc = fsync(fd);
  int e = errno;
  w->fsync_ns += strata__mono_ns() - t0;
  errno = e;
  return rc;
}

/* Maps the finished temporary file and runs the reader's validation on it,
 * so that a writer bug can never publish a file the reader would refuse.
 * With w->keep the mapping becomes w->kept, an open region, faulted in. */
static int validate_written(strata_writer *w, uint64_t size) {
  void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, w->fd, 0);
  if (p == MAP_FAILED)
    return strata__fail_errno(errno, "%s: mapping the written file", w->path);
  if (!w->keep) {
    strata_region r = {0};
    int rc = strata__region_validate(&r, p, size, w->path);
    munmap(p, (size_t)size);
    return rc;
  }
  strata_region *r = calloc(1, sizeof *r);
  char *path = strdup(w->path);
  int rc = r == NULL || path == NULL
               ? strata__fail(STRATA_E_NOMEM, "%s: allocating", w->path)
               : strata__region_validate(r, p, size, w->path);
  if (rc == 0)
    rc = strata__region_populate(r, w->path);
  if (rc < 0) {
    munmap(p, (size_t)size);
    free(r);
    free(path);
    return rc;
  }
  r->mapped = true;
  r->path = path;
  w->kept = r;
  return 0;
}

static int publish(strata_writer *w) {
  if (w->anonymous) {
    /* Give the O_TMPFILE its temporary name, then rename it over the
     * target: linkat() cannot replace an existing file. */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
    if (linkat(AT_FDCWD, proc, w->dirfd, w->tmp_name, AT_SYMLINK_FOLLOW) != 0)
      return strata__fail_errno(errno, "%s: linking the temporary file as %s",
                                w->path, w->tmp_path);
    w->anonymous = false;
    w->linked = true;
  }
  char *base = strdup(w->path);
  if (base == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", w->path);
  int rc = renameat(w->dirfd, w->tmp_name, w->dirfd, basename(base));
  int e = errno;
  free(base);
  if (rc != 0)
    return strata__fail_errno(e, "%s: renaming %s into place", w->path,
                              w->tmp_path);
  w->linked = false;
  w->placed = true;
  if (timed_fsync(w, w->dirfd) != 0)
    return strata__fail_errno(errno,
                              "%s: fsync of the directory after rename "
                              "(the file is in place but may not survive a "
                              "crash)",
                              w->path);
  return 0;
}

static int finish(strata_writer *w) {
  STRATA__FAIL_IF(w->failed, STRATA_E_STATE,
                  "%s: an earlier write failed; the region cannot be committed",
                  w->path);
  STRATA__FAIL_IF(w->in_layer, STRATA_E_STATE,
                  "%s: commit inside an unfinished layer", w->path);
  STRATA__TRY(flush(w));
  uint64_t index_off = (w->pos + 63) / 64 * 64;
  uint8_t h[STRATA__HEADER_SIZE] = {0};
  memcpy(h, STRATA__MAGIC, STRATA__MAGIC_LEN);
  strata__wr16(h + STRATA__H_MAJOR, STRATA_FORMAT_VERSION_MAJOR);
  strata__wr16(h + STRATA__H_MINOR, STRATA_FORMAT_VERSION_MINOR);
  strata__wr32(h + STRATA__H_HEADER_SIZE, STRATA__HEADER_SIZE);
  strata__wr64(h + STRATA__H_REGION_ID, w->region_id);
  strata__wr32(h + STRATA__H_DATA_ALIGN, w->align);
  strata__buf idx = {0};
  int rc = strata__writer_build_index(w, index_off, h, &idx);
  if (rc == 0) {
    uint64_t size = index_off + idx.len;
    strata__wr64(h + STRATA__H_FILE_SIZE, size);
    strata__wr64(h + STRATA__H_INDEX_CSUM, XXH3_64bits(idx.p, idx.len));
    strata__wr64(h + STRATA__H_HEADER_CSUM,
                 XXH3_64bits(h, STRATA__H_HEADER_CSUM));
    /* Zero the padding between the last blob and the index explicitly; the
     * area may be past a hole but must read as zeros either way. */
    static const uint8_t zeros[64];
    rc = write_all(w, zeros, (size_t)(index_off - w->pos), w->pos);
    if (rc == 0)
      rc = write_all(w, idx.p, (size_t)idx.len, index_off);
    if (rc == 0)
      rc = write_all(w, h, sizeof h, 0);
    if (rc == 0 && ftruncate(w->fd, (off_t)size) != 0)
      rc = strata__fail_errno(errno, "%s: setting the file size", w->path);
    if (rc == 0 && timed_fsync(w, w->fd) != 0) {
      w->failed = true;
      rc = strata__fail_errno(errno, "%s: fsync", w->path);
    }
    if (rc == 0)
      rc = validate_written(w, size);
  }
  free(idx.p);
  return rc;
}

int strata_writer_commit(strata_writer *w) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer_commit: NULL");
  int rc = finish(w);
  if (rc == 0)
    rc = publish(w);
  strata_writer_abort(w); /* frees; removes the temporary file if any */
  return rc;
}

int strata__writer_commit_prepare(strata_writer *w, strata_region **out,
                                  dev_t *dev, ino_t *ino) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer_commit: NULL");
  w->keep = true;
  STRATA__TRY(finish(w));
  struct stat st;
  if (fstat(w->fd, &st) != 0)
    return strata__fail_errno(errno, "%s: fstat of the written file", w->path);
  *dev = st.st_dev;
  *ino = st.st_ino;
  *out = w->kept;
  w->kept = NULL;
  return 0;
}

int strata__writer_commit_publish(strata_writer *w, uint64_t *fsync_ns,
                                  bool *placed) {
  int rc = publish(w);
  *fsync_ns = w->fsync_ns;
  *placed = w->placed;
  return rc;
}

void strata_writer_abort(strata_writer *w) {
  if (w == NULL)
    return;
  strata_region_close(w->kept);
  if (w->fd >= 0)
    close(w->fd);
  if (w->linked && w->dirfd >= 0)
    (void)unlinkat(w->dirfd, w->tmp_name, 0);
  if (w->dirfd >= 0)
    close(w->dirfd);
  free(w->path);
  free(w->tmp_path);
  free(w->tmp_name);
  free(w->name);
  free(w->metadata);
  free(w->wbuf);
  if (w->xxh)
    XXH3_freeState(w->xxh);
  free(w->entries);
  free(w->strings.p);
  free(w->ids.slots);
  free(w->names.slots);
  free(w);
}
