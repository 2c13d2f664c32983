/* A connection to a remote store (POOL/NAME), and what every part of the
 * remote tier does with one: errors that name the pool, the store and the
 * object; object names; whole-object reads; HEAD (docs/REMOTE.md).
 *
 * Every librados call that can wait on the cluster is bounded by the op
 * timeouts set here (rados_osd_op_timeout, rados_mon_op_timeout,
 * client_mount_timeout): librados' defaults wait forever on a stopped OSD
 * and five minutes on a missing monitor, which would hang a push, a pull
 * and a follower's open. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/json_check.h"
#include "remote/remote_internal.h"

/* ---- the config ---------------------------------------------------------- */

static bool name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* A remote or node name: 1-64 bytes of [A-Za-z0-9._-] (docs/REMOTE.md,
 * "Where objects live"). */
static bool name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!name_char(s[i]))
      return false;
  return true;
}

/* A pool name as we accept it: 1-128 printable ASCII bytes without
 * space, '"', '\\' or '/', so that POOL/NAME is one word in a log line
 * and splits at its one '/'. */
static bool pool_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\' || s[i] == '/')
      return false;
  return true;
}

/* The default node name: HOSTNAME-XXXXXXXX, the hostname's characters
 * outside the allowed set replaced by '_' and cut to 55 bytes, the hex a
 * hash of the store's absolute path, so that two followers on one host
 * (two store directories) have two pins. */
static void default_node(char *out, size_t cap, const char *store_dir) {
  char host[256] = "host";
  if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
    strcpy(host, "host");
  host[sizeof host - 1] = '\0';
  host[55] = '\0';
  for (char *p = host; *p; p++)
    if (!name_char(*p))
      *p = '_';
  char abs[PATH_MAX];
  const char *path = store_dir && realpath(store_dir, abs) ? abs : store_dir;
  uint64_t h = path ? XXH3_64bits(path, strlen(path)) : (uint64_t)getpid();
  snprintf(out, cap, "%s-%08" PRIx32, host, (uint32_t)(h >> 32));
}

static int check_config(const strata_remote_config *c) {
  const char *label = "remote config";
  STRATA__FAIL_IF(c->pool == NULL || c->pool[0] == '\0', STRATA_E_INVAL,
                  "%s: no pool given", label);
  STRATA__FAIL_IF(!pool_ok(c->pool), STRATA_E_INVAL,
                  "%s: pool \"%.64s\" is not a pool name (at most 128 "
                  "printable ASCII bytes, no space, '\"', '\\\\' or '/')",
                  label, c->pool);
  STRATA__FAIL_IF(!name_ok(c->name), STRATA_E_INVAL,
                  "%s: remote name \"%.80s\" must be 1-64 bytes of "
                  "[A-Za-z0-9._-]",
                  label, c->name ? c->name : "");
  STRATA__FAIL_IF(c->node != NULL && !name_ok(c->node), STRATA_E_INVAL,
                  "%s: node name \"%.80s\" must be 1-64 bytes of "
                  "[A-Za-z0-9._-]",
                  label, c->node);
  STRATA__FAIL_IF(c->client_id != NULL &&
                      (c->client_id[0] == '\0' || strlen(c->client_id) > 64),
                  STRATA_E_INVAL, "%s: client id must be 1-64 bytes", label);
  uint32_t cs = c->chunk_size;
  STRATA__FAIL_IF(
      cs != 0 && ((cs & (cs - 1)) != 0 || cs < (1u << 20) || cs > (64u << 20)),
      STRATA_E_INVAL,
      "%s: chunk size %" PRIu32 " is not a power of two from 1 MiB to 64 MiB",
      label, cs);
  STRATA__FAIL_IF(c->flags & ~(unsigned)(STRATA_REMOTE_NO_THREAD |
                                         STRATA_REMOTE_NO_WATCH |
                                         STRATA_REMOTE_NO_NOTIFY),
                  STRATA_E_INVAL, "%s: unknown flags 0x%x", label, c->flags);
  STRATA__FAIL_IF(c->role < STRATA_REMOTE_NONE ||
                      c->role > STRATA_REMOTE_FOLLOWER,
                  STRATA_E_INVAL, "%s: unknown role %d", label, c->role);
  return 0;
}

/* ---- connecting ---------------------------------------------------------- */

typedef struct owned {
  strata__rconn c;
  char conf[PATH_MAX], pool[129], name[65], client_id[65], node[65];
} owned;

static int set_opt(strata__rconn *c, const char *opt, const char *val) {
  int rc = rados_conf_set(c->cluster, opt, val);
  return rc < 0 ? strata__rfail(c, rc, NULL, "setting %s", opt) : 0;
}

int strata__rconn_open(const strata_remote_config *config,
                       const char *store_dir, strata__logger *log,
                       strata__rconn **out) {
  *out = NULL;
  STRATA__TRY(check_config(config));
  owned *o = calloc(1, sizeof *o);
  if (o == NULL)
    return strata__fail(STRATA_E_NOMEM, "remote: allocating");
  strata__rconn *c = &o->c;
  c->cfg = *config;
  c->log = log;
  snprintf(c->label, sizeof c->label, "%s/%s", config->pool, config->name);
  snprintf(o->pool, sizeof o->pool, "%s", config->pool);
  snprintf(o->name, sizeof o->name, "%s", config->name);
  snprintf(o->client_id, sizeof o->client_id, "%s",
           config->client_id ? config->client_id : "admin");
  if (config->node)
    snprintf(o->node, sizeof o->node, "%s", config->node);
  else
    default_node(o->node, sizeof o->node, store_dir);
  c->cfg.pool = o->pool;
  c->cfg.name = o->name;
  c->cfg.client_id = o->client_id;
  c->cfg.node = o->node;
  c->cfg.conf = NULL;
  if (config->conf) {
    if (strlen(config->conf) >= sizeof o->conf) {
      free(o);
      return strata__fail(STRATA_E_INVAL, "%s: ceph.conf path too long",
                          c->label);
    }
    strcpy(o->conf, config->conf);
    c->cfg.conf = o->conf;
  }
  if (!c->cfg.chunk_size)
    c->cfg.chunk_size = 16u << 20;
  if (!c->cfg.poll_ms)
    c->cfg.poll_ms = 10000;
  if (!c->cfg.lease_s)
    c->cfg.lease_s = 30;
  if (!c->cfg.op_timeout_s)
    c->cfg.op_timeout_s = 30;
  if (!c->cfg.max_inflight)
    c->cfg.max_inflight = 16;
  if (!c->cfg.fetch_retries)
    c->cfg.fetch_retries = 3;
  if (!c->cfg.open_timeout_ms)
    c->cfg.open_timeout_ms = 60000;

  int rc = rados_create(&c->cluster, c->cfg.client_id);
  if (rc < 0) {
    rc = strata__rfail(c, rc, NULL, "rados_create (client %s)",
                       c->cfg.client_id);
    free(o);
    return rc;
  }
  rc = rados_conf_read_file(c->cluster, c->cfg.conf);
  if (rc < 0) {
    rc = strata__rfail(c, rc, NULL, "reading the Ceph config %s",
                       c->cfg.conf ? c->cfg.conf
                                   : "(default search: $CEPH_CONF, "
                                     "/etc/ceph/ceph.conf)");
    rados_shutdown(c->cluster);
    free(o);
    return rc;
  }
  char t[32];
  snprintf(t, sizeof t, "%" PRIu32, c->cfg.op_timeout_s);
  /* librados' own log lines go to its log file (the config's), never to
   * our stderr, which belongs to the program. */
  if ((rc = set_opt(c, "rados_osd_op_timeout", t)) == 0 &&
      (rc = set_opt(c, "rados_mon_op_timeout", t)) == 0 &&
      (rc = set_opt(c, "client_mount_timeout", t)) == 0 &&
      (rc = set_opt(c, "log_to_stderr", "false")) == 0 &&
      (rc = set_opt(c, "err_to_stderr", "false")) == 0) {
    rc = rados_connect(c->cluster);
    if (rc < 0)
      rc = strata__rfail(c, rc, NULL, "connecting to the cluster%s%s",
                         c->cfg.conf ? " of " : "",
                         c->cfg.conf ? c->cfg.conf : "");
  }
  if (rc < 0) {
    rados_shutdown(c->cluster);
    free(o);
    return rc;
  }
  rc = rados_ioctx_create(c->cluster, c->cfg.pool, &c->io);
  if (rc < 0) {
    rc = strata__rfail(c, rc, NULL, "opening pool %s%s", c->cfg.pool,
                       rc == -ENOENT ? " (no such pool)" : "");
    rados_shutdown(c->cluster);
    free(o);
    return rc;
  }
  rados_ioctx_set_namespace(c->io, c->cfg.name);
  char host[128] = "?";
  (void)gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  snprintf(c->whoami, sizeof c->whoami, "client.%" PRIu64 " host=%s pid=%d",
           rados_get_instance_id(c->cluster), host, (int)getpid());
  *out = c;
  return 0;
}

void strata__rconn_close(strata__rconn *c) {
  if (c == NULL)
    return;
  rados_ioctx_destroy(c->io);
  rados_shutdown(c->cluster);
  free((owned *)c); /* c is the first member */
}

/* ---- errors and names ---------------------------------------------------- */

int strata__rfail(const strata__rconn *c, int rc, const char *obj,
                  const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  int e = rc < 0 ? -rc : EIO;
  return strata__fail(rc < 0 ? rc : -EIO, "%s: %s%s%s: %s (%s)", c->label,
                      obj ? obj : "", obj ? ": " : "", what, strerror(e),
                      e == ETIMEDOUT ? "the cluster did not answer in time"
                      : e == ENOENT  ? "not found"
                                     : "librados");
}

void strata__obj_manifest(char *out, uint64_t version) {
  snprintf(out, STRATA__OBJ_NAME, "manifest.%020" PRIu64, version);
}

void strata__obj_chunk(char *out, const char *hash, uint32_t chunk_size,
                       uint32_t index) {
  snprintf(out, STRATA__OBJ_NAME, "chunk.%.32s.%08" PRIx32 ".%06" PRIu32, hash,
           chunk_size, index);
}

void strata__obj_pin(char *out, const char *node) {
  snprintf(out, STRATA__OBJ_NAME, "pin.%.64s", node);
}

void strata__u64_dec20(char *out, uint64_t v) {
  snprintf(out, 21, "%020" PRIu64, v);
}

void strata__hex64(char *out, uint64_t v) {
  snprintf(out, 17, "%016" PRIx64, v);
}

void strata__hex128(char *out, XXH128_hash_t h) {
  /* Big-endian, the canonical form: high 64 bits first. */
  snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
}

int strata__parse_u64_dec(const char *s, size_t len, uint64_t *out) {
  if (len == 0)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int strata__parse_dec20(const char *s, size_t len, uint64_t *out) {
  return len == 20 ? strata__parse_u64_dec(s, len, out) : -1;
}

int strata__parse_hex(const char *s, size_t len, size_t digits, uint64_t *out) {
  if (len != digits)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    int d = ch >= '0' && ch <= '9'   ? ch - '0'
            : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                     : -1;
    if (d < 0)
      return -1;
    v = v << 4 | (uint64_t)d;
  }
  if (out != NULL)
    *out = v;
  return 0;
}

/* ---- reading objects ----------------------------------------------------- */

int strata__robj_read(const strata__rconn *c, const char *obj, size_t max,
                      char **data, size_t *len, uint64_t *xxh3) {
  *data = NULL;
  *len = 0;
  uint64_t size = 0;
  time_t mtime;
  int rc = rados_stat(c->io, obj, &size, &mtime);
  if (rc < 0)
    return strata__rfail(c, rc, obj, "stat");
  if (size > max)
    return strata__fail(STRATA_E_LIMIT,
                        "%s: %s: %" PRIu64 " bytes, more than the %zu allowed",
                        c->label, obj, size, max);
  /* One read op for the bytes and the xattr, so that they belong to the
   * same state of the object. One byte more than stat said: an object
   * that grew in between (it never should) is caught as too long. */
  char *buf = malloc((size_t)size + 2);
  if (buf == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: %s: allocating %" PRIu64 " bytes",
                        c->label, obj, size);
  rados_read_op_t op = rados_create_read_op();
  size_t got = 0;
  int rval = 0, xrval = 0;
  rados_xattrs_iter_t it = NULL;
  rados_read_op_read(op, 0, (size_t)size + 1, buf, &got, &rval);
  if (xxh3)
    rados_read_op_getxattrs(op, &it, &xrval);
  rc = rados_read_op_operate(op, c->io, obj, 0);
  rados_release_read_op(op);
  if (rc == 0 && rval < 0)
    rc = rval;
  if (rc == 0 && xxh3 && xrval < 0)
    rc = xrval;
  if (rc < 0) {
    if (it)
      rados_getxattrs_end(it);
    free(buf);
    return strata__rfail(c, rc, obj, "read");
  }
  if (got > max) {
    if (it)
      rados_getxattrs_end(it);
    free(buf);
    return strata__fail(STRATA_E_LIMIT,
                        "%s: %s: more than the %zu bytes allowed", c->label,
                        obj, max);
  }
  buf[got] = '\0';
  if (xxh3) {
    bool found = false;
    const char *name, *val;
    size_t vlen;
    while (rados_getxattrs_next(it, &name, &val, &vlen) == 0 && name) {
      if (strcmp(name, STRATA__XATTR_XXH3) == 0)
        found = strata__parse_hex(val, vlen, 16, xxh3) == 0;
    }
    rados_getxattrs_end(it);
    if (!found) {
      free(buf);
      return strata__fail(STRATA_E_CORRUPT,
                          "%s: %s: no valid " STRATA__XATTR_XXH3
                          " xattr (16 hex digits)",
                          c->label, obj);
    }
  }
  *data = buf;
  *len = got;
  return 0;
}

/* ---- HEAD ---------------------------------------------------------------- */

int strata__head_body(const strata__rconn *c, uint64_t version,
                      const char *manifest, uint64_t manifest_xxh3, char **json,
                      size_t *len) {
  char hex[17];
  strata__hex64(hex, manifest_xxh3);
  json_t *o =
      json_pack("{s:i, s:I, s:s, s:s, s:s}", "format", STRATA__REMOTE_FORMAT,
                "version", (json_int_t)version, "manifest", manifest,
                "manifest_xxh3", hex, "publisher", c->whoami);
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  if (s == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: head: formatting", c->label);
  *json = s;
  *len = strlen(s);
  return 0;
}

/* Checks HEAD's body against its version xattr. */
static int parse_head_body(const strata__rconn *c, const char *body, size_t len,
                           strata__head *h) {
  const char *obj = STRATA__HEAD_OBJ;
  json_error_t err;
  if (strata__json_check(body, len, &err) != 0)
    return strata__fail(STRATA_E_CORRUPT, "%s: %s: not JSON: %d:%d: %s",
                        c->label, obj, err.line, err.column, err.text);
  json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
  if (o == NULL)
    return strata__fail(STRATA_E_CORRUPT, "%s: %s: not a JSON object: %s",
                        c->label, obj, err.text);
  json_int_t format = -1, version = -1;
  const char *manifest = NULL, *mx = NULL, *publisher = NULL;
  int rc =
      json_unpack_ex(o, &err, JSON_STRICT, "{s:I, s:I, s:s, s:s, s:s}",
                     "format", &format, "version", &version, "manifest",
                     &manifest, "manifest_xxh3", &mx, "publisher", &publisher);
  if (rc != 0) {
    rc = strata__fail(STRATA_E_CORRUPT, "%s: %s: %s", c->label, obj, err.text);
  } else if (format != STRATA__REMOTE_FORMAT) {
    rc = strata__fail(STRATA_E_VERSION,
                      "%s: %s: protocol format %" JSON_INTEGER_FORMAT
                      " (this library reads %d)",
                      c->label, obj, format, STRATA__REMOTE_FORMAT);
  } else if (version < 0 || (uint64_t)version != h->version) {
    rc = strata__fail(STRATA_E_CORRUPT,
                      "%s: %s: the body says version %" JSON_INTEGER_FORMAT
                      ", the " STRATA__XATTR_VERSION " xattr %" PRIu64,
                      c->label, obj, version, h->version);
  } else {
    /* Version 0, the empty store, names no manifest. */
    char want[STRATA__OBJ_NAME] = "";
    if (h->version != 0)
      strata__obj_manifest(want, h->version);
    if (strcmp(manifest, want) != 0 ||
        strata__parse_hex(mx, strlen(mx), 16, &h->manifest_xxh3) != 0)
      rc = strata__fail(STRATA_E_CORRUPT,
                        "%s: %s: manifest \"%.64s\" / manifest_xxh3 \"%.32s\" "
                        "do not fit version %" PRIu64,
                        c->label, obj, manifest, mx, h->version);
    else {
      snprintf(h->manifest, sizeof h->manifest, "%s", manifest);
      snprintf(h->publisher, sizeof h->publisher, "%s", publisher);
    }
  }
  json_decref(o);
  return rc;
}

int strata__head_read(const strata__rconn *c, strata__head *out) {
  memset(out, 0, sizeof *out);
  char *body = NULL;
  size_t len = 0;
  uint64_t size = 0;
  time_t mtime;
  int rc = rados_stat(c->io, STRATA__HEAD_OBJ, &size, &mtime);
  if (rc == -ENOENT)
    return 0; /* no version published: version 0 */
  if (rc < 0)
    return strata__rfail(c, rc, STRATA__HEAD_OBJ, "stat");
  if (size > 65536)
    return strata__fail(STRATA_E_CORRUPT,
                        "%s: head: %" PRIu64
                        " bytes, more than a HEAD ever holds",
                        c->label, size);
  body = malloc(65536 + 1);
  if (body == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: head: allocating", c->label);
  rados_read_op_t op = rados_create_read_op();
  int rval = 0, xrval = 0;
  rados_xattrs_iter_t it = NULL;
  rados_read_op_read(op, 0, 65536, body, &len, &rval);
  rados_read_op_getxattrs(op, &it, &xrval);
  rc = rados_read_op_operate(op, c->io, STRATA__HEAD_OBJ, 0);
  rados_release_read_op(op);
  if (rc == 0 && rval < 0)
    rc = rval;
  if (rc == 0 && xrval < 0)
    rc = xrval;
  if (rc == -ENOENT) { /* removed between stat and read: none */
    free(body);
    return 0;
  }
  if (rc < 0) {
    if (it)
      rados_getxattrs_end(it);
    free(body);
    return strata__rfail(c, rc, STRATA__HEAD_OBJ, "read");
  }
  body[len] = '\0';
  bool have_v = false, have_f = false;
  const char *name, *val;
  size_t vlen;
  while (rados_getxattrs_next(it, &name, &val, &vlen) == 0 && name) {
    if (strcmp(name, STRATA__XATTR_VERSION) == 0)
      have_v = strata__parse_dec20(val, vlen, &out->version) == 0;
    else if (strcmp(name, STRATA__XATTR_FENCE) == 0)
      have_f = strata__parse_dec20(val, vlen, &out->fence) == 0;
  }
  rados_getxattrs_end(it);
  if (!have_v || !have_f) {
    free(body);
    return strata__fail(
        STRATA_E_CORRUPT, "%s: head: the %s xattr is missing or not 20 digits",
        c->label, !have_v ? STRATA__XATTR_VERSION : STRATA__XATTR_FENCE);
  }
  out->exists = true;
  rc = parse_head_body(c, body, len, out);
  free(body);
  return rc;
}
