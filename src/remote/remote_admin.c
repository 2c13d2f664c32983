/* Administration of a remote store without a local store (strata remote
 * ls|status|gc|unlock): the connection, describe, gc and unlock of
 * <strata/remote.h> (docs/REMOTE.md, "Garbage").
 *
 * gc decides from what it reads under the publisher lock, after bumping
 * the fence: no publish runs while it lists and removes, and a publisher
 * whose lease ran out before gc took the lock cannot swap HEAD to a
 * version whose chunks gc removed (its fence comparison fails). What is
 * kept is computed first, in full; an object is removed only when no kept
 * manifest names it, and a kept manifest that cannot be read stops gc
 * before anything is removed: removing the chunks of a version that may
 * be live is the one mistake gc must not make. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hash.h"
#include "remote/remote_internal.h"

/* A pin older than this no longer protects its versions (docs/REMOTE.md,
 * "Garbage": pin_ttl). */
#define GC_PIN_TTL_S 3600
/* gc --verify holds one whole chunk per read in flight (up to 64 MiB
 * each): fewer than max_inflight keeps its memory bounded. */
#define GC_VERIFY_INFLIGHT 4

struct strata_remote {
  strata__rconn *c;
};

int strata_remote_connect(const strata_remote_config *config,
                          strata_remote **out) {
  STRATA__FAIL_IF(config == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_remote_connect: NULL argument");
  strata_remote *r = calloc(1, sizeof *r);
  if (r == NULL)
    return strata__fail(STRATA_E_NOMEM, "strata_remote_connect");
  int rc = strata__rconn_open(config, NULL, NULL, &r->c);
  if (rc < 0) {
    free(r);
    return rc;
  }
  *out = r;
  return 0;
}

void strata_remote_disconnect(strata_remote *remote) {
  if (remote == NULL)
    return;
  strata__rconn_close(remote->c);
  free(remote);
}

/* ---- the objects of the namespace ---------------------------------------- */

typedef struct robj {
  char *name;
  uint64_t size;
  time_t mtime;
  bool gone;   /* removed since the listing */
  bool keep;   /* gc */
  bool bad;    /* gc --verify: bytes do not match */
  uint64_t xx; /* gc: the checksum a kept manifest gives a chunk */
} robj;

typedef struct objlist {
  const strata__rconn *c;
  /* gc's lock, checked before each removal (NULL: describe). */
  const strata__publock *lock;
  robj *v;
  size_t n;
  /* gc --verify's per-slot read buffers. */
  char *buf[GC_VERIFY_INFLIGHT];
  size_t cap[GC_VERIFY_INFLIGHT];
  uint64_t removed, removed_bytes;
} objlist;

static void objlist_free(objlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].name);
  free(l->v);
  for (int i = 0; i < GC_VERIFY_INFLIGHT; i++)
    free(l->buf[i]);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const robj *)a)->name, ((const robj *)b)->name);
}

static int ostat_start(void *ctx, strata__aio *a) {
  objlist *l = ctx;
  int rc =
      rados_aio_stat(l->c->io, l->v[a->job].name, a->comp, &a->size, &a->mtime);
  return rc < 0 ? strata__rfail(l->c, rc, l->v[a->job].name, "stat") : 0;
}

/* The object of a finished operation; NULL when it was gone (marked so)
 * or the operation failed (*err set, naming it). */
static robj *finished(objlist *l, const strata__aio *a, int rc,
                      const char *what, int *err) {
  robj *o = &l->v[a->job];
  *err = 0;
  if (rc == -ENOENT)
    o->gone = true;
  else if (rc < 0)
    *err = strata__rfail(l->c, rc, o->name, "%s", what);
  return rc < 0 ? NULL : o;
}

static int ostat_done(void *ctx, strata__aio *a, int rc) {
  int err;
  robj *o = finished(ctx, a, rc, "stat", &err);
  if (o == NULL)
    return err;
  o->size = a->size;
  o->mtime = a->mtime;
  return 0;
}

/* Lists the namespace's objects, sorted by name, with sizes and mtimes. */
static int objlist_read(const strata__rconn *c, objlist *l) {
  memset(l, 0, sizeof *l);
  l->c = c;
  rados_list_ctx_t it;
  int rc = rados_nobjects_list_open(c->io, &it);
  if (rc < 0)
    return strata__rfail(c, rc, NULL, "listing objects");
  size_t cap = 0;
  const char *entry;
  while ((rc = rados_nobjects_list_next(it, &entry, NULL, NULL)) == 0) {
    if (l->n == cap) {
      cap = cap ? 2 * cap : 64;
      robj *v = realloc(l->v, cap * sizeof *v);
      if (v == NULL) {
        rc = -ENOMEM;
        break;
      }
      l->v = v;
    }
    memset(&l->v[l->n], 0, sizeof l->v[l->n]);
    if ((l->v[l->n].name = strdup(entry)) == NULL) {
      rc = -ENOMEM;
      break;
    }
    l->n++;
  }
  rados_nobjects_list_close(it);
  if (rc != -ENOENT) { /* -ENOENT: the end of the list */
    objlist_free(l);
    memset(l, 0, sizeof *l);
    return rc == -ENOMEM
               ? strata__fail(STRATA_E_NOMEM, "%s: listing objects", c->label)
               : strata__rfail(c, rc, NULL, "listing objects");
  }
  if (l->n > 0)
    qsort(l->v, l->n, sizeof *l->v, by_name);
  rc = strata__aio_run(l->n, c->cfg.max_inflight, ostat_start, ostat_done, l);
  if (rc < 0) {
    objlist_free(l);
    memset(l, 0, sizeof *l);
  }
  return rc;
}

static robj *objlist_find(const objlist *l, const char *name) {
  robj key = {.name = (char *)(uintptr_t)name};
  return l->n > 0 ? bsearch(&key, l->v, l->n, sizeof *l->v, by_name) : NULL;
}

/* The version of "manifest.NNN...": 0 (with -1) for any other name. */
static int manifest_version(const char *name, uint64_t *v) {
  static const char prefix[] = "manifest.";
  size_t p = sizeof prefix - 1;
  if (strncmp(name, prefix, p) != 0 || strlen(name) != p + 20)
    return -1;
  return strata__parse_dec20(name + p, 20, v);
}

/* Reads and parses manifest `obj`, checking its checksum xattr. */
static int manifest_get(const strata__rconn *c, const char *obj,
                        strata__manifest *m) {
  char *data = NULL;
  size_t len = 0;
  uint64_t attr = 0;
  memset(m, 0, sizeof *m);
  STRATA__TRY(
      strata__robj_read(c, obj, STRATA__MANIFEST_MAX, &data, &len, &attr));
  uint64_t h = XXH3_64bits(data, len);
  int rc = h != attr ? strata__fail(STRATA_E_CHECKSUM,
                                    "%s: %s: XXH3-64 of the bytes %016" PRIx64
                                    ", xattr %016" PRIx64,
                                    c->label, obj, h, attr)
                     : strata__manifest_parse(data, len, obj, m);
  free(data);
  return rc;
}

/* A pin's versions: {"serving": N, "fetching": M or null}. -1 when the
 * body is not that (a pin is the follower's to write; gc ignores one it
 * cannot read, keeping nothing for it). */
static int pin_get(const strata__rconn *c, const char *obj, int64_t *serving,
                   int64_t *fetching) {
  char *data = NULL;
  size_t len = 0;
  *serving = *fetching = -1;
  STRATA__TRY(strata__robj_read(c, obj, 4096, &data, &len, NULL));
  json_t *doc = json_loadb(data, len, 0, NULL);
  free(data);
  if (doc == NULL)
    return -1;
  json_t *s = json_object_get(doc, "serving"),
         *f = json_object_get(doc, "fetching");
  if (json_is_integer(s))
    *serving = json_integer_value(s);
  if (json_is_integer(f))
    *fetching = json_integer_value(f);
  json_decref(doc);
  return 0;
}

/* ---- describe
 * ---------------------------------------------------------------- */

static json_t *describe_version(const strata__rconn *c, const robj *o,
                                uint64_t v, int regions) {
  strata__manifest m;
  int rc = manifest_get(c, o->name, &m);
  if (rc < 0)
    return json_pack("{s:I, s:s, s:s}", "version", (json_int_t)v, "object",
                     o->name, "error", strata_last_error_detail());
  uint64_t bytes = 0, nregions = 0;
  json_t *list = regions ? json_array() : NULL;
  for (size_t i = 0; i < m.n; i++) {
    const strata__mregion *r = &m.regions[i];
    bytes += r->size;
    nregions += r->depth == 0;
    /* The id as a decimal string, as the manifest has it (64-bit ids). */
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, r->id);
    if (list != NULL)
      json_array_append_new(
          list, json_pack("{s:s, s:s, s:s?, s:I, s:s, s:i, s:i}", "file",
                          r->file, "id", id, "name", r->name, "size",
                          (json_int_t)r->size, "hash", r->hash, "chunks",
                          (int)r->nchunks, "depth", (int)r->depth));
  }
  json_t *out =
      json_pack("{s:I, s:I, s:I, s:s, s:s}", "version", (json_int_t)v,
                "regions", (json_int_t)nregions, "bytes", (json_int_t)bytes,
                "publisher", m.publisher, "created", m.created);
  if (out != NULL && list != NULL)
    json_object_set_new(out, "files", list);
  else
    json_decref(list);
  strata__manifest_free(&m);
  return out;
}

int strata_remote_describe(strata_remote *remote, int regions, char **json) {
  STRATA__FAIL_IF(remote == NULL || json == NULL, STRATA_E_INVAL,
                  "strata_remote_describe: NULL argument");
  const strata__rconn *c = remote->c;
  strata__head h;
  STRATA__TRY(strata__head_read(c, &h));
  char *holder = NULL, *cookie = NULL;
  STRATA__TRY(strata__publock_holder(c, NULL, &cookie, &holder));
  objlist l;
  int rc = objlist_read(c, &l);
  if (rc < 0) {
    free(holder);
    free(cookie);
    return rc;
  }
  json_t *versions = json_array(), *pins = json_array();
  uint64_t objects = 0, bytes = 0;
  time_t now = time(NULL);
  for (size_t i = 0; i < l.n && rc == 0; i++) {
    const robj *o = &l.v[i];
    if (o->gone)
      continue;
    objects++;
    bytes += o->size;
    uint64_t v;
    if (manifest_version(o->name, &v) == 0) {
      json_array_append_new(versions, describe_version(c, o, v, regions));
    } else if (strncmp(o->name, "pin.", 4) == 0) {
      int64_t sv, fv;
      int prc = pin_get(c, o->name, &sv, &fv);
      if (prc < -1)
        rc = prc;
      json_array_append_new(
          pins, json_pack("{s:s, s:o, s:o, s:I}", "node", o->name + 4,
                          "serving", sv >= 0 ? json_integer(sv) : json_null(),
                          "fetching", fv >= 0 ? json_integer(fv) : json_null(),
                          "age_s", (json_int_t)(now - o->mtime)));
    }
  }
  json_t *head =
      h.exists ? json_pack("{s:I, s:I, s:s, s:s}", "version",
                           (json_int_t)h.version, "fence", (json_int_t)h.fence,
                           "manifest", h.manifest, "publisher", h.publisher)
               : json_null();
  json_t *lock = holder != NULL ? json_pack("{s:s, s:s}", "holder", holder,
                                            "cookie", cookie)
                                : json_null();
  json_t *doc = json_pack(
      "{s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I}", "pool", c->cfg.pool, "name",
      c->cfg.name, "head", head, "lock", lock, "versions", versions, "pins",
      pins, "objects", (json_int_t)objects, "bytes", (json_int_t)bytes);
  free(holder);
  free(cookie);
  objlist_free(&l);
  if (rc < 0) {
    json_decref(doc);
    return rc;
  }
  char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2)) : NULL;
  json_decref(doc);
  if (text == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: describing", c->label);
  *json = text;
  return 0;
}

/* ---- gc
 * ----------------------------------------------------------------------------
 */

/* Marks `m`'s chunks kept; a chunk it names that is missing is only
 * logged (the next push uploads it again). */
static void keep_chunks(objlist *l, const strata__manifest *m) {
  for (size_t i = 0; i < m->n; i++)
    for (uint32_t k = 0; k < m->regions[i].nchunks; k++) {
      char obj[STRATA__OBJ_NAME];
      strata__obj_chunk(obj, m->regions[i].hash, m->chunk_size, k);
      robj *o = objlist_find(l, obj);
      if (o != NULL) {
        o->keep = true;
        o->xx = m->regions[i].chunks[k];
      }
    }
}

/* Keeps manifest.v (when present and at most HEAD) and its chunks. A kept
 * manifest that cannot be read stops gc (see the top of this file). */
static int keep_version(objlist *l, uint64_t v, uint64_t head) {
  if (v == 0 || v > head)
    return 0;
  char obj[STRATA__OBJ_NAME];
  strata__obj_manifest(obj, v);
  robj *o = objlist_find(l, obj);
  if (o == NULL || o->gone || o->keep)
    return 0;
  strata__manifest m;
  int rc = manifest_get(l->c, obj, &m);
  if (rc == -ENOENT)
    return 0;
  STRATA__TRY(rc);
  o->keep = true;
  keep_chunks(l, &m);
  strata__manifest_free(&m);
  return 0;
}

static int verify_start(void *ctx, strata__aio *a) {
  objlist *l = ctx;
  robj *o = &l->v[a->job];
  if (!o->keep || o->gone || strncmp(o->name, "chunk.", 6) != 0)
    return 1;
  if (l->cap[a->slot] < o->size + 1) {
    char *b = realloc(l->buf[a->slot], o->size + 1);
    if (b == NULL)
      return strata__fail(STRATA_E_NOMEM, "%s: %s: reading %" PRIu64 " bytes",
                          l->c->label, o->name, o->size);
    l->buf[a->slot] = b;
    l->cap[a->slot] = o->size + 1;
  }
  /* One byte more than the stat said: a read that fills it means the
   * object grew, which is as bad as a wrong checksum. */
  int rc = rados_aio_read(l->c->io, o->name, a->comp, l->buf[a->slot],
                          o->size + 1, 0);
  return rc < 0 ? strata__rfail(l->c, rc, o->name, "reading") : 0;
}

static int verify_done(void *ctx, strata__aio *a, int rc) {
  objlist *l = ctx;
  int err;
  robj *o = finished(l, a, rc, "reading", &err);
  if (o == NULL)
    return err;
  uint64_t h = XXH3_64bits(l->buf[a->slot], (size_t)rc);
  o->bad = (uint64_t)rc != o->size || h != o->xx;
  if (o->bad) {
    char q[2 * STRATA__REMOTE_LABEL];
    static strata__logger fallback = {STRATA_LOG_WARN, NULL, NULL};
    strata__log(
        l->c->log != NULL ? l->c->log : &fallback, STRATA_LOG_WARN, "remote",
        "msg=\"corrupt chunk removed; the next push uploads it "
        "again\" remote=%s object=%s xxh3=%016" PRIx64 " expected=%016" PRIx64
        " bytes=%d",
        strata__log_quote(q, sizeof q, l->c->label), o->name, h, o->xx, rc);
  }
  return 0;
}

static int remove_start(void *ctx, strata__aio *a) {
  objlist *l = ctx;
  robj *o = &l->v[a->job];
  if (o->gone || (o->keep && !o->bad))
    return 1;
  /* A removal carries no fence: were gc paused past its lease, another
   * publisher could meanwhile have published a version that reuses this
   * chunk (it finds it present and does not upload it). So each removal
   * goes out only while the lease is fresh. */
  if (l->lock != NULL)
    STRATA__TRY(strata__publock_check_fresh(l->lock));
  int rc = rados_aio_remove(l->c->io, o->name, a->comp);
  return rc < 0 ? strata__rfail(l->c, rc, o->name, "removing") : 0;
}

static int remove_done(void *ctx, strata__aio *a, int rc) {
  objlist *l = ctx;
  robj *o = &l->v[a->job];
  if (rc < 0 && rc != -ENOENT)
    return strata__rfail(l->c, rc, o->name, "removing");
  o->gone = true;
  if (rc == 0) {
    l->removed++;
    l->removed_bytes += o->size;
  }
  return 0;
}

static int gc_locked(strata__rconn *c, const strata__publock *lk, unsigned keep,
                     int verify, strata_remote_gc_result *res) {
  strata__head h;
  STRATA__TRY(strata__head_read(c, &h));
  objlist l;
  STRATA__TRY(objlist_read(c, &l));
  int rc = 0;
  robj *head = objlist_find(&l, STRATA__HEAD_OBJ);
  if (head != NULL)
    head->keep = true;
  /* The last `keep` versions up to HEAD. */
  for (uint64_t i = 0; i < keep && i < h.version && rc == 0; i++)
    rc = keep_version(&l, h.version - i, h.version);
  /* Versions fresh pins name. */
  time_t now = time(NULL);
  for (size_t i = 0; i < l.n && rc == 0; i++) {
    robj *o = &l.v[i];
    if (o->gone || strncmp(o->name, "pin.", 4) != 0 ||
        now - o->mtime > GC_PIN_TTL_S)
      continue;
    o->keep = true;
    int64_t sv, fv;
    rc = pin_get(c, o->name, &sv, &fv);
    if (rc == -ENOENT || rc == -1) {
      rc = 0;
      continue;
    }
    if (rc == 0 && sv > 0)
      rc = keep_version(&l, (uint64_t)sv, h.version);
    if (rc == 0 && fv > 0)
      rc = keep_version(&l, (uint64_t)fv, h.version);
  }
  if (rc == 0 && verify)
    rc =
        strata__aio_run(l.n, GC_VERIFY_INFLIGHT, verify_start, verify_done, &l);
  l.lock = lk;
  if (rc == 0)
    rc = strata__aio_run(l.n, c->cfg.max_inflight, remove_start, remove_done,
                         &l);
  res->objects_removed = l.removed;
  res->bytes_removed = l.removed_bytes;
  for (size_t i = 0; i < l.n; i++) {
    res->objects_kept += l.v[i].keep && !l.v[i].bad && !l.v[i].gone;
    res->chunks_corrupt += l.v[i].bad && l.v[i].gone;
  }
  objlist_free(&l);
  return rc;
}

int strata_remote_gc(strata_remote *remote, unsigned keep, int verify,
                     strata_remote_gc_result *out) {
  STRATA__FAIL_IF(remote == NULL, STRATA_E_INVAL,
                  "strata_remote_gc: NULL remote");
  strata_remote_gc_result res = {0};
  strata__publock *lk = NULL;
  STRATA__TRY(strata__publock_take(remote->c, &lk));
  int rc = gc_locked(remote->c, lk, keep != 0 ? keep : 10, verify, &res);
  strata__publock_release(lk);
  if (out != NULL)
    *out = res;
  return rc;
}

/* ---- unlock
 * ---------------------------------------------------------------------- */

int strata_remote_unlock(strata_remote *remote, char **holder) {
  STRATA__FAIL_IF(remote == NULL, STRATA_E_INVAL,
                  "strata_remote_unlock: NULL remote");
  const strata__rconn *c = remote->c;
  char *client = NULL, *cookie = NULL, *desc = NULL;
  if (holder != NULL)
    *holder = NULL;
  STRATA__TRY(strata__publock_holder(c, &client, &cookie, &desc));
  int rc = 0;
  if (client != NULL) {
    rc = rados_break_lock(c->io, STRATA__HEAD_OBJ, STRATA__LOCK_NAME, client,
                          cookie);
    /* -ENOENT: released or expired since the listing; it is free. */
    rc = rc == -ENOENT ? 0
         : rc < 0      ? strata__rfail(c, rc, STRATA__HEAD_OBJ,
                                       "breaking the lock of %s", desc)
                       : 0;
  }
  free(client);
  free(cookie);
  if (rc == 0 && holder != NULL)
    *holder = desc;
  else
    free(desc);
  return rc;
}
