/* Proto-regions: creating them, putting and removing layers, discarding
 * them. Every call here runs under the store's writer mutex and publishes
 * its change with one epoch advance (see store_internal.h). */
#include "common/hash.h"
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json_check.h"
#include "store/store_internal.h"
#include "writer/pubfile.h"

/* The longest region name. The region's file is NAME.region, and while it
 * is written the writer's temporary file is ".NAME.region.strata-tmp-" and
 * 8 hex digits, STRATA__TEMP_NAME_EXTRA bytes longer (pubfile.c):
 * both must fit in a file name, NAME_MAX (255) bytes. Checked when the
 * proto is created: a name that fit the region file but not the temporary
 * one would fail at crystallization, after the whole file was written. */
#define REGION_NAME_MAX                                                        \
  (NAME_MAX - (sizeof STRATA__REGION_SUFFIX - 1) - STRATA__TEMP_NAME_EXTRA)

static strata__catalog *current(struct strata_store *s) {
  return atomic_load_explicit(&s->catalog, memory_order_relaxed);
}

static struct strata_proto *proto_of(struct strata_store *s, uint64_t id) {
  for (uint64_t i = 0; i < s->proto_n; i++)
    if (s->protos[i]->region_id == id && !s->protos[i]->discarded)
      return s->protos[i];
  return NULL;
}

static int register_proto(struct strata_store *s, uint64_t id,
                          struct strata_proto **out) {
  if (s->proto_n == s->proto_cap) {
    uint64_t cap = s->proto_cap ? 2 * s->proto_cap : 8;
    struct strata_proto **v = realloc(s->protos, cap * sizeof *v);
    if (v == NULL)
      return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto", s->dir);
    s->protos = v;
    s->proto_cap = cap;
  }
  struct strata_proto *p = calloc(1, sizeof *p);
  if (p == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto", s->dir);
  *p = (struct strata_proto){
      .store = s, .region_id = id, .created_ns = strata__mono_ns()};
  s->protos[s->proto_n++] = p;
  *out = p;
  return 0;
}

static void unregister_proto(struct strata_store *s, struct strata_proto *p) {
  for (uint64_t i = 0; i < s->proto_n; i++)
    if (s->protos[i] == p) {
      s->protos[i] = s->protos[--s->proto_n];
      break;
    }
  free(p);
}

static int check_region_name(struct strata_store *s, const char *name) {
  STRATA__FAIL_IF(name == NULL || name[0] == '\0', STRATA_E_INVAL,
                  "%s: a region needs a name", s->dir);
  size_t len = strlen(name);
  STRATA__FAIL_IF(name[0] == '.' || strchr(name, '/') != NULL, STRATA_E_INVAL,
                  "%s: region name \"%s\" would not name a file inside the "
                  "store (no '/' and no leading '.')",
                  s->dir, name);
  STRATA__FAIL_IF(!strata__utf8_valid(name, len), STRATA_E_INVAL,
                  "%s: region name is not valid UTF-8", s->dir);
  /* A file system may allow fewer bytes than NAME_MAX in a name. */
  long name_max = fpathconf(s->dirfd, _PC_NAME_MAX);
  size_t fixed = sizeof STRATA__REGION_SUFFIX - 1 + STRATA__TEMP_NAME_EXTRA;
  size_t max = REGION_NAME_MAX;
  if (name_max > (long)fixed && (size_t)name_max - fixed < max)
    max = (size_t)name_max - fixed;
  STRATA__FAIL_IF(len > max, STRATA_E_LIMIT,
                  "%s: region name \"%s\" is %zu bytes, at most %zu: its file "
                  "NAME" STRATA__REGION_SUFFIX " and the temporary file "
                  ".NAME" STRATA__REGION_SUFFIX STRATA__TEMP_MARK
                  "XXXXXXXX written before it must fit in a %zu-byte file name",
                  s->dir, name, len, max, max + fixed);
  return 0;
}

/* Publishes `e` (a new entry, or one replacing the entry of its id). On
 * failure frees `e` and its overlay; nothing changed. */
static int publish_entry(struct strata_store *s, strata__entry *e) {
  int rc = strata__catalog_swap(s, e, 0);
  if (rc < 0) {
    if (e->overlay != NULL)
      strata__overlay_free(s, e->overlay);
    strata__entry_free(s, e);
  }
  return rc;
}

static int create_locked(struct strata_store *s, uint64_t id, const char *name,
                         const char *metadata, strata_proto **out) {
  STRATA__TRY(check_region_name(s, name));
  if (metadata != NULL && metadata[0] != '\0')
    STRATA__TRY(strata__check_text(s->dir, "region metadata", id, metadata,
                                   1u << 20, true));
  STRATA__TRY(strata__store_lock(s));
  strata__catalog *c = current(s);
  STRATA__FAIL_IF(strata__catalog_find(c, id) != NULL, STRATA_E_EXIST,
                  "%s: region %" PRIu64 " already exists", s->dir, id);
  STRATA__FAIL_IF(strata__catalog_find_name(c, name, strlen(name)) != NULL,
                  STRATA_E_EXIST, "%s: a region named \"%s\" already exists",
                  s->dir, name);
  char file[REGION_NAME_MAX + sizeof STRATA__REGION_SUFFIX];
  snprintf(file, sizeof file, "%s" STRATA__REGION_SUFFIX, name);
  STRATA__FAIL_IF(faccessat(s->dirfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0,
                  STRATA_E_EXIST,
                  "%s/%s: the file exists (a region the store did not load?)",
                  s->dir, file);
  strata__entry *e = strata__entry_new(id, name, metadata, NULL);
  if (e == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto", s->dir);
  int rc = strata__overlay_new(s, &e->overlay);
  if (rc < 0) {
    strata__entry_free(s, e);
    return rc;
  }
  struct strata_proto *p;
  rc = register_proto(s, id, &p);
  if (rc < 0) {
    strata__overlay_free(s, e->overlay);
    strata__entry_free(s, e);
    return rc;
  }
  rc = publish_entry(s, e);
  if (rc < 0) {
    unregister_proto(s, p);
    return rc;
  }
  char qn[STRATA__LOG_TEXT];
  strata__log(&s->log, STRATA_LOG_INFO, "proto",
              "msg=\"proto created\" region_id=%" PRIu64 " name=%s", id,
              strata__log_quote(qn, sizeof qn, name));
  *out = p;
  return 0;
}

int strata_proto_create(strata_store *s, uint64_t region_id, const char *name,
                        size_t name_len, const char *metadata,
                        strata_proto **out) {
  STRATA__FAIL_IF(s == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_proto_create: NULL argument");
  char *copy;
  STRATA__TRY(strata__name_dup(s->dir, "region name", name, name_len, &copy));
  strata__store_await_verify(s); /* never build on an unverified file */
  pthread_mutex_lock(&s->write_mu);
  int rc = create_locked(s, region_id, copy, metadata, out);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  free(copy);
  return rc;
}

static int open_locked(struct strata_store *s, uint64_t id,
                       strata_proto **out) {
  struct strata_proto *p = proto_of(s, id);
  if (p != NULL) {
    *out = p;
    return 0;
  }
  /* The lock first: taking it refreshes the catalog, so the proto builds
   * on the region file as it is now, not as it was at open. */
  STRATA__TRY(strata__store_lock(s));
  const strata__entry *old = strata__catalog_find(current(s), id);
  STRATA__FAIL_IF(old == NULL, STRATA_E_NO_REGION,
                  "%s: region %" PRIu64 ": not in the store", s->dir, id);
  /* A file another program named may be too long for the temporary name
   * of its replacement (see REGION_NAME_MAX): refuse now, not at the end
   * of the crystallization. */
  const char *base = old->file ? strrchr(old->file->path, '/') : NULL;
  size_t blen = base ? strlen(base + 1) : 0;
  STRATA__FAIL_IF(blen + STRATA__TEMP_NAME_EXTRA > NAME_MAX, STRATA_E_LIMIT,
                  "%s: region %" PRIu64 " (\"%s\"): its file name is %zu "
                  "bytes, at most %zu: the temporary file a crystallization "
                  "writes adds %zu bytes and must fit in a %d-byte file name",
                  s->dir, id, old->name, blen,
                  (size_t)NAME_MAX - STRATA__TEMP_NAME_EXTRA,
                  (size_t)STRATA__TEMP_NAME_EXTRA, NAME_MAX);
  strata__entry *e = calloc(1, sizeof *e);
  if (e == NULL || (e->name = strdup(old->name)) == NULL ||
      (e->metadata = strdup(old->metadata)) == NULL) {
    if (e != NULL)
      strata__entry_free(s, e);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating a proto", s->dir);
  }
  e->id = id;
  e->generation = old->generation;
  int rc = strata__overlay_new(s, &e->overlay);
  if (rc == 0)
    rc = register_proto(s, id, &p);
  if (rc < 0) {
    if (e->overlay != NULL)
      strata__overlay_free(s, e->overlay);
    strata__entry_free(s, e);
    return rc;
  }
  /* The new entry shares the old one's file; the old entry's reference goes
   * when it is retired. */
  e->file = old->file;
  e->file->refs++;
  /* And its deltas: the proto's changes lie above the whole stack, which
   * crystallize.c extends with a delta or merges into a new base. */
  e->stack = old->stack;
  if (e->stack != NULL)
    e->stack->refs++;
  rc = publish_entry(s, e);
  if (rc < 0) {
    unregister_proto(s, p);
    return rc;
  }
  *out = p;
  return 0;
}

int strata_proto_open(strata_store *s, uint64_t region_id, strata_proto **out) {
  STRATA__FAIL_IF(s == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_proto_open: NULL argument");
  strata__store_await_verify(s); /* never build on an unverified file */
  pthread_mutex_lock(&s->write_mu);
  int rc = open_locked(s, region_id, out);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}

/* ---- changes --------------------------------------------------------------
 */

/* The layer's state as of version v: 1 visible, 0 absent. */
static bool visible(const strata__entry *e, uint64_t id, uint64_t v) {
  const strata__lver *lv = strata__overlay_find_w(e->overlay, id, v);
  if (lv != NULL)
    return !(lv->flags & STRATA__LV_TOMBSTONE);
  strata_layer l;
  return strata__entry_file_get(e, id, &l) > 0;
}

static int check_name_free(struct strata_store *s, const strata__entry *e,
                           uint64_t id, const char *name, size_t len,
                           uint64_t v) {
  const strata__lver *lv = strata__overlay_find_name(e->overlay, name, len, v);
  uint64_t other = lv != NULL ? lv->id : id;
  strata_layer l;
  if (lv == NULL && strata__entry_file_get_by_name(e, name, len, &l) > 0 &&
      strata__overlay_find(e->overlay, l.id, v) == NULL)
    other = l.id;
  STRATA__FAIL_IF(other != id, STRATA_E_DUPLICATE,
                  "%s: region %" PRIu64 " (%s): layer %" PRIu64
                  ": name \"%.*s\" is already used by layer %" PRIu64,
                  s->dir, e->id, e->name, id, (int)len, name, other);
  return 0;
}

/* Refuses a change whose cost (strata__overlay_put_cost) would take the
 * heap past refuse_pct; s->mem_refused then holds the cost, for change()
 * to try an eviction round and the change once more. */
static int check_memory(struct strata_store *s, const strata__entry *e,
                        uint64_t id, uint64_t need) {
  uint64_t heap = strata__store_heap(s);
  uint64_t refuse = strata__memory_threshold(s, s->config.refuse_pct);
  if (heap + need <= refuse)
    return 0;
  s->mem_refused = need ? need : 1;
  return strata__fail(STRATA_E_LIMIT,
                      "%s: region %" PRIu64 " (%s): layer %" PRIu64
                      ": memory use %" PRIu64 " + %" PRIu64
                      " bytes (what this put takes from the pool) would "
                      "pass %u%% of the limit %" PRIu64
                      " bytes; crystallize or raise memory_limit",
                      s->dir, e->id, e->name, id, heap, need,
                      s->config.refuse_pct, s->config.memory_limit);
}

/* A name or metadata text that strata__text_ok() refused: the message,
 * which names the store, the region and the layer. Formatted here, on the
 * failure path only. */
static int text_error(struct strata_store *s, const strata__entry *e,
                      uint64_t id, const char *what, const char *text,
                      size_t len, size_t max, bool json) {
  char where[512]; /* errors read "DIR: region ID (NAME): layer ...: ..." */
  snprintf(where, sizeof where, "%s: region %" PRIu64 " (%s)", s->dir, e->id,
           e->name);
  return strata__check_text_n(where, what, id, text, len, max, json);
}

static int put_locked(struct strata_proto *p, uint64_t id, const char *name,
                      size_t name_len, const char *metadata, const void *data,
                      size_t size, bool tombstone) {
  struct strata_store *s = p->store;
  STRATA__TRY(strata__store_writable(s));
  STRATA__FAIL_IF(p->discarded, STRATA_E_STATE,
                  "%s: proto of region %" PRIu64 " was discarded", s->dir,
                  p->region_id);
  const strata__entry *e = strata__catalog_find(current(s), p->region_id);
  strata__overlay_prefetch(e->overlay, id);
  uint64_t v = atomic_load_explicit(&s->epoch, memory_order_relaxed);
  size_t meta_len = metadata != NULL ? strlen(metadata) : 0;
  bool was = visible(e, id, v);
  if (tombstone) {
    STRATA__FAIL_IF(!was, STRATA_E_NOT_FOUND,
                    "%s: region %" PRIu64 " (%s): no layer %" PRIu64
                    " to remove",
                    s->dir, e->id, e->name, id);
  } else {
    STRATA__FAIL_IF(size > 0 && data == NULL, STRATA_E_INVAL,
                    "%s: layer %" PRIu64 ": NULL data", s->dir, id);
    if (name != NULL) {
      STRATA__FAIL_IF(name_len == 0, STRATA_E_INVAL,
                      "%s: region %" PRIu64 ": layer %" PRIu64 ": empty name",
                      s->dir, e->id, id);
      if (!strata__text_ok(name, name_len, STRATA__MAX_LAYER_NAME, false))
        STRATA__TRY(text_error(s, e, id, "name", name, name_len,
                               STRATA__MAX_LAYER_NAME, false));
      STRATA__TRY(check_name_free(s, e, id, name, name_len, v));
    }
    if (metadata != NULL &&
        !strata__text_ok(metadata, meta_len, STRATA__MAX_METADATA, true))
      STRATA__TRY(text_error(s, e, id, "metadata", metadata, meta_len,
                             STRATA__MAX_METADATA, true));
  }
  /* The heap's real growth (a new arena chunk, a content block, a table
   * doubling, a copied count history), not the layer's bytes: those fit
   * the head chunk without growing the heap most of the time, and when
   * they do not, what they need can be far larger than they are (issue
   * 14: a put passed refuse_pct by up to its own size; with arena chunks,
   * by up to a chunk). A removal takes an lver too. */
  int64_t delta = tombstone ? -1 : was ? 0 : 1;
  STRATA__TRY(check_memory(
      s, e, id,
      strata__overlay_put_cost(s, e->overlay, name != NULL, name_len,
                               metadata != NULL, meta_len, size, delta != 0)));
  strata__lver *lv = strata__lver_new(s, e->overlay, id, name, name_len,
                                      metadata, meta_len, data, size);
  if (lv == NULL)
    return strata__fail(STRATA_E_NOMEM,
                        "%s: region %" PRIu64 ": layer %" PRIu64
                        ": allocating %zu bytes",
                        s->dir, e->id, id, size);
  lv->checksum = XXH3_64bits(lv->data, lv->size);
  if (tombstone)
    lv->flags |= STRATA__LV_TOMBSTONE;
  lv->version = v + 1;
  int rc = delta != 0 ? strata__overlay_count_reserve(s, e->overlay) : 0;
  if (rc == 0)
    rc = strata__overlay_link(s, e->overlay, lv);
  if (rc < 0) {
    strata__lver_free(s, lv);
    /* The overlay's detail names the store only: add region and layer. */
    char detail[512];
    snprintf(detail, sizeof detail, "%s", strata_last_error_detail());
    return strata__fail(rc, "region %" PRIu64 " (%s): layer %" PRIu64 ": %s",
                        e->id, e->name, id, detail);
  }
  /* Readers of version v + 1 see both the lver and the count: the epoch
   * advance below publishes them together. */
  if (delta != 0)
    strata__overlay_count_push(
        e->overlay, v + 1,
        atomic_load_explicit(&e->overlay->layer_delta, memory_order_relaxed) +
            delta);
  strata__ebr_advance(s); /* publishes version v + 1 */
  strata__log(&s->log, STRATA_LOG_DEBUG, "proto",
              "msg=\"%s\" region_id=%" PRIu64 " layer=%" PRIu64
              " bytes=%zu heap=%" PRIu64,
              tombstone ? "layer removed" : "layer put", e->id, id, size,
              strata__store_heap(s));
  return 0;
}

static int change(strata_proto *p, uint64_t id, const char *name,
                  size_t name_len, const char *metadata, const void *data,
                  size_t size, bool tombstone) {
  STRATA__FAIL_IF(p == NULL, STRATA_E_INVAL, "strata_proto: NULL proto");
  struct strata_store *s = p->store;
  pthread_mutex_lock(&s->write_mu);
  s->mem_refused = 0;
  int rc = put_locked(p, id, name, name_len, metadata, data, size, tombstone);
  if (rc == STRATA_E_LIMIT && s->mem_refused != 0) {
    /* Eviction runs after a change that takes the heap past evict_pct; a
     * change that would pass refuse_pct from below it (a large layer, a
     * table doubling) gets that round first, then one more try. */
    strata__memory_evict(s, s->mem_refused);
    s->mem_refused = 0;
    rc = put_locked(p, id, name, name_len, metadata, data, size, tombstone);
    if (rc == STRATA_E_LIMIT && s->mem_refused != 0)
      s->stats.puts_refused++;
  }
  if (rc == 0 && strata__memory_check(s) >= STRATA__MEM_EVICT)
    strata__memory_evict(s, 0);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}

int strata_proto_put(strata_proto *p, uint64_t layer_id, const char *name,
                     size_t name_len, const char *metadata, const void *data,
                     size_t size) {
  STRATA__FAIL_IF(p == NULL, STRATA_E_INVAL, "strata_proto: NULL proto");
  /* The name goes from (name, name_len) straight into the layer version's
   * own memory (strata__lver_new()); the check's context is formatted only
   * when the check fails. A put's success path formats nothing and
   * allocates nothing but its place in the proto's arena (overlay.c). */
  if (!strata__name_arg_ok(name, name_len)) {
    char where[512];
    snprintf(where, sizeof where, "%s: region %" PRIu64 ": layer %" PRIu64,
             p->store->dir, p->region_id, layer_id);
    return strata__check_name_arg(where, "name", name, name_len);
  }
  return change(p, layer_id, name, name_len, metadata, data, size, false);
}

int strata_proto_remove(strata_proto *p, uint64_t layer_id) {
  return change(p, layer_id, NULL, 0, NULL, NULL, 0, true);
}

static int discard_locked(struct strata_proto *p) {
  struct strata_store *s = p->store;
  STRATA__FAIL_IF(p->discarded, STRATA_E_STATE,
                  "%s: proto of region %" PRIu64 " was already discarded",
                  s->dir, p->region_id);
  const strata__entry *old = strata__catalog_find(current(s), p->region_id);
  strata__retired *rec = malloc(sizeof *rec);
  strata__entry *e = old->file != NULL ? calloc(1, sizeof *e) : NULL;
  bool ok = rec != NULL && (old->file == NULL || e != NULL);
  if (ok && e != NULL) {
    ok = (e->name = strdup(old->name)) != NULL &&
         (e->metadata = strdup(old->metadata)) != NULL;
    e->id = old->id;
    e->generation = old->generation;
  }
  if (!ok) {
    free(rec);
    if (e != NULL)
      strata__entry_free(s, e);
    return strata__fail(STRATA_E_NOMEM, "%s: discarding a proto", s->dir);
  }
  strata__overlay *overlay = old->overlay;
  if (e != NULL) {
    e->file = old->file;
    e->file->refs++;
    e->stack = old->stack;
    if (e->stack != NULL)
      e->stack->refs++;
  }
  int rc = strata__catalog_swap(s, e, p->region_id);
  if (rc < 0) {
    free(rec);
    if (e != NULL)
      strata__entry_free(s, e);
    return rc;
  }
  strata__retire_push(s, rec, overlay, overlay->bytes, strata__overlay_free);
  strata__log(&s->log, STRATA_LOG_INFO, "proto",
              "msg=\"proto discarded\" region_id=%" PRIu64, p->region_id);
  /* The handle stays allocated until the store closes, so that a call made
   * with it by mistake fails cleanly instead of touching freed memory. */
  p->discarded = true;
  return 0;
}

int strata_proto_discard(strata_proto *p) {
  STRATA__FAIL_IF(p == NULL, STRATA_E_INVAL, "strata_proto_discard: NULL");
  struct strata_store *s = p->store;
  pthread_mutex_lock(&s->write_mu);
  int rc = discard_locked(p);
  strata__store_maintain(s);
  pthread_mutex_unlock(&s->write_mu);
  return rc;
}

int strata_proto_info_get(strata_proto *p, strata_proto_info *info) {
  STRATA__FAIL_IF(p == NULL || info == NULL, STRATA_E_INVAL,
                  "strata_proto_info_get: NULL argument");
  struct strata_store *s = p->store;
  pthread_mutex_lock(&s->write_mu);
  if (p->discarded) {
    pthread_mutex_unlock(&s->write_mu);
    return strata__fail(STRATA_E_STATE,
                        "%s: proto of region %" PRIu64 " was discarded", s->dir,
                        p->region_id);
  }
  const strata__entry *e = strata__catalog_find(current(s), p->region_id);
  const strata__overlay *o = e->overlay;
  uint64_t base = strata__entry_file_layers(e);
  *info = (strata_proto_info){
      .region_id = p->region_id,
      .layers = base +
                (uint64_t)atomic_load_explicit(
                    &((strata__overlay *)o)->layer_delta, memory_order_relaxed),
      .changed = o->changed,
      .bytes = o->bytes,
      .age_ms = (strata__mono_ns() - p->created_ns) / 1000000};
  pthread_mutex_unlock(&s->write_mu);
  return 0;
}
