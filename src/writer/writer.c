/* The region writer's front: strata_writer_open() with its argument
 * checks, and the layers (begin, append, end), which it streams through a
 * write buffer. Where the bytes go is writer_commit.c's job (the temporary
 * file, commit and abort); duplicate ids and names are found by
 * writer_sets.c; the index sections are built by writer_index.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/json_check.h"
#include "common/lockfile.h"
#include "common/struct_size.h"
#include "writer/writer_internal.h"

/* Report progress at most once per this many bytes of content. */
#define PROGRESS_STEP (8u << 20)
/* The largest layer strata_writer_add() hashes before copying it: it is
 * still in the L2 cache when the copy reads it again. */
#define ONE_SHOT_HASH_MAX (64u << 10)

/* ---- argument checks -------------------------------------------------- */

/* ---- open ------------------------------------------------------------- */

/* STRATA_WRITER_LOCK_STORE: takes the lock of the store whose directory
 * `dir` is, held in w->lockfd until strata_writer_abort(). A directory
 * without the lock file is not a store: nothing to take. */
static int lock_store(strata_writer *w, const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return strata__fail_errno(errno, "%s: opening directory %s", w->path, dir);
  bool pid_ok = false;
  int rc = strata__lockfile_take(dfd, dir, false, &w->lockfd, &pid_ok);
  long holder = rc == -EWOULDBLOCK ? strata__lockfile_holder(dfd) : -1;
  close(dfd);
  if (rc == -ENOENT)
    return 0;
  if (rc == -EWOULDBLOCK)
    return strata__fail(STRATA_E_LOCKED, "%s: store is locked by pid %ld", dir,
                        holder);
  return rc < 0 ? rc : 0; /* a failure's detail names the lock file */
}

void strata_writer_options_init(strata_writer_options *o) {
  if (o == NULL)
    return;
  *o = (strata_writer_options){.struct_size = sizeof *o,
                               .align = STRATA__DEFAULT_ALIGN};
}

int strata_writer_open(const char *path, const strata_writer_options *in,
                       strata_writer **out) {
  STRATA__FAIL_IF(path == NULL || in == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_writer_open: NULL argument");
  /* The defaults, overwritten by what the caller's struct_size covers. */
  strata_writer_options opts;
  strata_writer_options_init(&opts);
  STRATA__TRY(STRATA__READ_SIZED(path, strata_writer_options, &opts, in));
  const strata_writer_options *o = &opts;
  STRATA__FAIL_IF(o->name == NULL || o->name[0] == '\0', STRATA_E_INVAL,
                  "%s: the region needs a name", path);
  size_t nlen = strlen(o->name);
  STRATA__FAIL_IF(nlen > STRATA__MAX_REGION_NAME, STRATA_E_LIMIT,
                  "%s: region name is %zu bytes (at most %u)", path, nlen,
                  STRATA__MAX_REGION_NAME);
  STRATA__FAIL_IF(!strata__utf8_valid(o->name, nlen), STRATA_E_INVAL,
                  "%s: region name is not valid UTF-8", path);
  const uint32_t known =
      STRATA_WRITER_LOCK_STORE | STRATA_WRITER_CHECK_IDS_AT_COMMIT;
  STRATA__FAIL_IF(o->flags & ~known, STRATA_E_INVAL,
                  "%s: unknown writer flags 0x%" PRIx32, path,
                  o->flags & ~known);
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
    int rc = strata__json_check(o->metadata, mlen, &err);
    if (rc == STRATA_E_NOMEM)
      return strata__fail(STRATA_E_NOMEM,
                          "%s: checking the region metadata: out of memory",
                          path);
    if (rc < 0)
      return strata__fail(STRATA_E_INVAL,
                          "%s: region metadata is not JSON: %s at %d:%d", path,
                          err.text, err.line, err.column);
  }

  strata_writer *w = calloc(1, sizeof *w);
  if (w == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the writer", path);
  w->lockfd = -1;
  w->path = strdup(path);
  w->name = strdup(o->name);
  w->metadata = o->metadata && o->metadata[0] ? strdup(o->metadata) : NULL;
  w->wbuf = malloc(STRATA__WBUF_SIZE);
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
  w->ids_at_commit = (o->flags & STRATA_WRITER_CHECK_IDS_AT_COMMIT) != 0;
  if (getrandom(&w->set_seed, sizeof w->set_seed, GRND_NONBLOCK) !=
      (ssize_t)sizeof w->set_seed)
    w->set_seed = (uint64_t)(uintptr_t)w ^ 0x9e3779b97f4a7c15ull;
  w->align = align;
  w->progress = o->progress;
  w->progress_ctx = o->progress_ctx;
  w->data_off = (STRATA__HEADER_SIZE + align - 1) / align * align;
  w->pos = w->data_off;
  const char *dir = dirname(d), *base = basename(b);
  /* The name's length first (pubfile.c checks it again when it makes the
   * file): a name that can never be published is the first error. */
  int rc = strata__pubfile_check_name(path, base);
  if (rc == 0 && (o->flags & STRATA_WRITER_LOCK_STORE))
    rc = lock_store(w, dir);
  if (rc == 0)
    rc = strata__writer_open_temp(w);
  free(d);
  free(b);
  if (rc < 0) {
    strata_writer_abort(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* ---- layers ------------------------------------------------------------ */

int strata__writer_reserve(strata_writer *w, uint64_t layers) {
  if (layers <= w->cap || layers > STRATA__MAX_LAYERS)
    return 0;
  strata__wentry *e = strata__entries_resize(w->entries, w->cap, layers);
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
  strata__wentry *e = strata__entries_resize(w->entries, w->cap, cap);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "%s: growing the index to %" PRIu64 " entries", w->path,
                        cap);
  w->entries = e;
  w->cap = cap;
  return 0;
}

static int store_string(strata_writer *w, const char *s, size_t l,
                        uint64_t *off, uint32_t *len) {
  *off = 0;
  *len = (uint32_t)l;
  if (l == 0)
    return 0;
  *off = w->strings.len;
  /* The text, then its NUL: `s` need not have one (a name comes as
   * pointer + length). A failure takes back what was stored. */
  if (strata__buf_put(&w->strings, s, l) < 0 ||
      strata__buf_put(&w->strings, "", 1) < 0) {
    w->strings.len = *off;
    return strata__fail(STRATA_E_NOMEM, "%s: storing names", w->path);
  }
  return 0;
}

/* strata_writer_begin_layer() once the name argument is known usable. */
static int begin_layer(strata_writer *w, uint64_t id, const char *name,
                       size_t name_len, const char *metadata, uint32_t flags) {
  const char *what = flags ? "tombstone" : "layer";
  STRATA__FAIL_IF(w->failed || w->in_layer, STRATA_E_STATE,
                  "%s: %s %" PRIu64 ": writer is %s", w->path, what, id,
                  w->failed ? "failed" : "inside another layer");
  STRATA__FAIL_IF(w->n >= STRATA__MAX_LAYERS, STRATA_E_LIMIT,
                  "%s: layer %" PRIu64 ": more than %" PRIu64 " layers",
                  w->path, id, STRATA__MAX_LAYERS);
  if (name != NULL) {
    STRATA__FAIL_IF(name_len == 0, STRATA_E_INVAL,
                    "%s: layer %" PRIu64 ": empty name", w->path, id);
    STRATA__TRY(strata__check_text_n(w->path, "name", id, name, name_len,
                                     STRATA__MAX_LAYER_NAME, false));
  }
  size_t meta_len = metadata != NULL ? strlen(metadata) : 0;
  if (metadata != NULL)
    STRATA__TRY(strata__check_text_n(w->path, "metadata", id, metadata,
                                     meta_len, STRATA__MAX_METADATA, true));
  /* Out of ascending order: from now on any earlier id may repeat, so the
   * set of ids is built, unless commit is to find repeats (its sort). */
  if (!w->ids_indexed && !w->ids_at_commit && w->n > 0 &&
      id < w->entries[w->n - 1].id)
    STRATA__TRY(strata__writer_build_id_set(w));
  int64_t dup = strata__writer_find_id(w, id);
  /* A tombstone takes its id like a layer: one entry per id. */
  STRATA__FAIL_IF(dup >= 0, STRATA_E_DUPLICATE,
                  "%s: %s %" PRIu64 ": duplicate id (already added as "
                  "%s number %" PRId64 ", counting from 0)",
                  w->path, what, id,
                  w->entries[dup].flags ? "a tombstone, entry" : "layer", dup);
  if (name != NULL) {
    dup = strata__writer_find_name(w, name, name_len);
    STRATA__FAIL_IF(dup >= 0, STRATA_E_DUPLICATE,
                    "%s: layer %" PRIu64
                    ": duplicate name \"%.*s\" (layer %" PRIu64 " has it)",
                    w->path, id, (int)name_len, name, w->entries[dup].id);
  }
  STRATA__TRY(grow_entries(w));
  /* Pad the data to the alignment of the new blob. */
  static const uint8_t zeros[STRATA__MAX_ALIGN];
  /* align is a power of two (checked at open): a mask, not two 64-bit
   * divisions per layer. */
  uint64_t pad = (0 - (w->pos - w->data_off)) & (uint64_t)(w->align - 1);
  STRATA__TRY(strata__writer_put(w, zeros, (size_t)pad));

  strata__wentry *e = &w->entries[w->n];
  memset(e, 0, sizeof *e);
  e->id = id;
  e->flags = flags;
  e->offset = w->pos - w->data_off;
  STRATA__TRY(store_string(w, name, name_len, &e->name_off, &e->name_len));
  STRATA__TRY(store_string(w, metadata, meta_len, &e->meta_off, &e->meta_len));
  w->in_layer = true;
  return 0;
}

/* begin_layer() for a layer whose name argument is still to be checked.
 * The layer's running hash is not reset: a layer whose checksum comes
 * with it (strata__writer_add_hashed()) has no use for it. */
static int begin_named(strata_writer *w, uint64_t id, const char *name,
                       size_t name_len, const char *metadata) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  /* The check's context ("layer ID: name") is formatted only when the
   * check fails: a layer's success path formats and allocates nothing. */
  if (!strata__name_arg_ok(name, name_len)) {
    char what[64];
    snprintf(what, sizeof what, "layer %" PRIu64 ": name", id);
    return strata__check_name_arg(w->path, what, name, name_len);
  }
  return begin_layer(w, id, name, name_len, metadata, 0);
}

int strata_writer_begin_layer(strata_writer *w, uint64_t id, const char *name,
                              size_t name_len, const char *metadata) {
  STRATA__TRY(begin_named(w, id, name, name_len, metadata));
  XXH3_64bits_reset(w->xxh);
  return 0;
}

/* Calls the progress callback (strata_writer_options.progress) when
 * PROGRESS_STEP bytes were written since the last call, or when `force`.
 * A non-zero return fails the writer with STRATA_E_CANCELED. */
static int report_progress(strata_writer *w, bool force) {
  if (w->progress == NULL)
    return 0;
  if (!force && w->pos - w->last_progress < PROGRESS_STEP)
    return 0;
  w->last_progress = w->pos;
  strata_progress p = {.bytes_done = w->pos - w->data_off, .layers_done = w->n};
  if (w->progress(w->progress_ctx, &p) == 0)
    return 0;
  w->failed = true;
  return strata__fail(STRATA_E_CANCELED,
                      "%s: canceled by the progress callback after %" PRIu64
                      " layers, %" PRIu64 " bytes",
                      w->path, p.layers_done, p.bytes_done);
}

/* Copies a layer's bytes into the file, in steps when progress is reported,
 * so that a large layer reports (and can be canceled) while it is written,
 * not only after. `hash` feeds them to the layer's running checksum too. */
static int append(strata_writer *w, const void *data, size_t size, bool hash) {
  size_t step = w->progress != NULL ? PROGRESS_STEP : SIZE_MAX;
  const uint8_t *p = data;
  do {
    size_t k = size < step ? size : step;
    if (hash)
      XXH3_64bits_update(w->xxh, p, k);
    STRATA__TRY(strata__writer_put(w, p, k));
    STRATA__TRY(report_progress(w, false));
    p += k;
    size -= k;
  } while (size > 0);
  return 0;
}

int strata_writer_append(strata_writer *w, const void *data, size_t size) {
  STRATA__FAIL_IF(w == NULL || (data == NULL && size > 0), STRATA_E_INVAL,
                  "strata_writer_append: NULL argument");
  STRATA__FAIL_IF(!w->in_layer || w->failed, STRATA_E_STATE,
                  "%s: append outside a layer", w->path);
  return append(w, data, size, true);
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
  STRATA__TRY(strata__writer_flush(w));
  w->pos += size;
  return report_progress(w, false);
}

/* Ends the layer begun last; its checksum is *checksum when given (the
 * content's XXH3-64, known to the caller), else the running one. */
static int end_layer(strata_writer *w, const uint64_t *checksum) {
  strata__wentry *e = &w->entries[w->n];
  e->size = w->pos - w->data_off - e->offset;
  e->checksum = checksum != NULL ? *checksum : XXH3_64bits_digest(w->xxh);
  w->in_layer = false;
  uint32_t idx = (uint32_t)w->n;
  if (w->n > 0 && e->id < w->entries[w->n - 1].id)
    w->out_of_order = true;
  w->n++;
  /* Register the id and name only now that the layer is complete. */
  if (strata__writer_sets_add(w, idx) < 0) {
    w->failed = true;
    return strata__fail(STRATA_E_NOMEM, "%s: growing the id set", w->path);
  }
  return report_progress(w, true);
}

int strata_writer_end_layer(strata_writer *w) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  STRATA__FAIL_IF(!w->in_layer || w->failed, STRATA_E_STATE,
                  "%s: end_layer outside a layer", w->path);
  return end_layer(w, NULL);
}

int strata__writer_add_hashed(strata_writer *w, uint64_t id, const char *name,
                              size_t name_len, const char *metadata,
                              const void *data, size_t size,
                              uint64_t checksum) {
  STRATA__TRY(begin_named(w, id, name, name_len, metadata));
  int rc = append(w, data, size, false);
  if (rc < 0) {
    w->failed = true; /* the layer is half written */
    return rc;
  }
  return end_layer(w, &checksum);
}

int strata_writer_add(strata_writer *w, uint64_t id, const char *name,
                      size_t name_len, const char *metadata, const void *data,
                      size_t size) {
  /* A small layer is hashed in one call before it is copied: the one-shot
   * XXH3 gives the streaming state's result without its reset, buffering
   * and digest, which cost more than the hash of 256 bytes itself (issue
   * 19's profile of 100,000 x 256 B). A large one streams, so that its
   * bytes are read from memory once, not twice. */
  if (w != NULL && (data != NULL || size == 0) && size <= ONE_SHOT_HASH_MAX)
    return strata__writer_add_hashed(w, id, name, name_len, metadata, data,
                                     size, XXH3_64bits(data, size));
  STRATA__TRY(strata_writer_begin_layer(w, id, name, name_len, metadata));
  int rc = strata_writer_append(w, data, size);
  if (rc < 0) {
    w->failed = true; /* the layer is half written */
    return rc;
  }
  return strata_writer_end_layer(w);
}

/* ---- delta files -------------------------------------------------------- */

int strata__writer_set_delta(strata_writer *w, uint64_t parent_checksum,
                             uint64_t base_checksum, uint32_t depth) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  STRATA__FAIL_IF(w->failed || w->in_layer || w->n > 0 ||
                      w->pos != w->data_off || w->wlen != 0,
                  STRATA_E_STATE,
                  "%s: a delta's binding is set before the first layer",
                  w->path);
  STRATA__FAIL_IF(depth == 0, STRATA_E_INVAL,
                  "%s: delta depth 0 (the first delta over a base has 1)",
                  w->path);
  STRATA__FAIL_IF(
      (depth == 1) != (parent_checksum == base_checksum), STRATA_E_INVAL,
      "%s: delta of depth %" PRIu32 " with parent %016" PRIx64
      " %s base %016" PRIx64,
      w->path, depth, parent_checksum,
      depth == 1 ? "differing from its" : "equal to its", base_checksum);
  w->delta = true;
  w->delta_parent = parent_checksum;
  w->delta_base = base_checksum;
  w->delta_depth = depth;
  /* The data starts after the extended header. */
  w->data_off =
      (STRATA__DELTA_HEADER_SIZE + w->align - 1) / w->align * w->align;
  w->pos = w->data_off;
  w->last_progress = 0;
  return 0;
}

void strata__writer_fresh_seed(strata_writer *w) {
  if (w != NULL)
    w->fresh_seed = true;
}

int strata__writer_add_tombstone(strata_writer *w, uint64_t id) {
  STRATA__FAIL_IF(w == NULL, STRATA_E_INVAL, "strata_writer: NULL writer");
  STRATA__FAIL_IF(!w->delta, STRATA_E_STATE,
                  "%s: tombstone %" PRIu64 ": only a delta file holds "
                  "tombstones",
                  w->path, id);
  STRATA__TRY(begin_layer(w, id, NULL, 0, NULL, STRATA__LAYER_TOMBSTONE));
  const uint64_t none = XXH3_64bits(NULL, 0); /* FORMAT.md: a tombstone's */
  return end_layer(w, &none);
}
