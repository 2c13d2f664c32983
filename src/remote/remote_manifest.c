/* A version's manifest (docs/REMOTE.md, "Manifests"): the JSON document
 * the publisher writes and every follower parses before it fetches a byte.
 * The parse is strict, as for any file we read: every member present and
 * of its type, no member we do not know, counts and orders checked, so
 * that a follower acts only on a manifest that means exactly one thing.
 *
 * Region ids are decimal strings: they are 64-bit, and JSON numbers above
 * 2^53 are not exact in many readers (jansson stops at 2^63 - 1). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_check.h"
#include "remote/remote_internal.h"

void strata__manifest_free(strata__manifest *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->n; i++) {
    free(m->regions[i].file);
    free(m->regions[i].name);
    free(m->regions[i].chunks);
  }
  free(m->regions);
  free(m->publisher);
  free(m->created);
  memset(m, 0, sizeof *m);
}

/* ---- emit --------------------------------------------------------------- */

static json_t *hex64(uint64_t v) {
  char s[17];
  strata__hex64(s, v);
  return json_string(s);
}

/* The members every file has (base or delta). */
static json_t *chunks_json(const strata__mregion *r) {
  json_t *chunks = json_array();
  for (uint32_t i = 0; chunks && i < r->nchunks; i++)
    if (json_array_append_new(chunks, hex64(r->chunks[i])) != 0) {
      json_decref(chunks);
      chunks = NULL;
    }
  return chunks;
}

static json_t *delta_json(const strata__mregion *r) {
  return json_pack(
      "{s:s, s:I, s:s, s:o, s:o, s:o, s:o*}", "file", r->file, "size",
      (json_int_t)r->size, "hash", r->hash, "header_checksum",
      hex64(r->header_checksum), "index_checksum", hex64(r->index_checksum),
      "parent_checksum", hex64(r->parent_checksum), "chunks", chunks_json(r));
}

/* The entry of the base m->regions[i], with its deltas (the files after it
 * of depth > 0) when `deltas`. */
static json_t *region_json(const strata__manifest *m, size_t i, bool deltas) {
  const strata__mregion *r = &m->regions[i];
  char id[21];
  snprintf(id, sizeof id, "%" PRIu64, r->id);
  json_t *o = json_pack("{s:s, s:s, s:s?, s:I, s:s, s:o, s:o, s:o*}", "file",
                        r->file, "id", id, "name", r->name, "size",
                        (json_int_t)r->size, "hash", r->hash, "header_checksum",
                        hex64(r->header_checksum), "index_checksum",
                        hex64(r->index_checksum), "chunks", chunks_json(r));
  if (o == NULL || !deltas)
    return o;
  json_t *d = json_array();
  for (size_t k = i + 1; d && k < m->n && m->regions[k].depth > 0; k++)
    if (json_array_append_new(d, delta_json(&m->regions[k])) != 0) {
      json_decref(d);
      d = NULL;
    }
  if (d == NULL || json_object_set_new(o, "deltas", d) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

int strata__manifest_emit(const strata__manifest *m, char **json, size_t *len) {
  bool deltas = false;
  for (size_t i = 0; i < m->n; i++)
    deltas |= m->regions[i].depth > 0;
  json_t *regions = json_array();
  for (size_t i = 0; regions && i < m->n; i++)
    if (m->regions[i].depth == 0 &&
        json_array_append_new(regions, region_json(m, i, deltas)) != 0) {
      json_decref(regions);
      regions = NULL;
    }
  json_t *o = json_pack(
      "{s:i, s:I, s:I, s:s, s:s, s:I, s:o*}", "format",
      deltas ? STRATA__MANIFEST_FORMAT_DELTAS : STRATA__MANIFEST_FORMAT_BASES,
      "version", (json_int_t)m->version, "previous", (json_int_t)m->previous,
      "publisher", m->publisher ? m->publisher : "", "created",
      m->created ? m->created : "", "chunk_size", (json_int_t)m->chunk_size,
      "regions", regions);
  char *s = o ? json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(1)) : NULL;
  json_decref(o);
  if (s == NULL)
    return strata__fail(STRATA_E_NOMEM, "manifest %" PRIu64 ": formatting",
                        m->version);
  *json = s;
  *len = strlen(s);
  return 0;
}

/* ---- parse -------------------------------------------------------------- */

/* A region id: a decimal with no leading zero (one spelling per id). */
static int parse_id(const char *s, uint64_t *out) {
  size_t n = strlen(s);
  return n > 1 && s[0] == '0' ? -1 : strata__parse_u64_dec(s, n, out);
}

/* A file name a store serves and a follower can write: "X.region" (or
 * "X.delta"), no '/', not hidden (the store's temporary files begin with
 * '.'), short enough for the writer's temporary name (NAME_MAX less
 * STRATA_WRITER_TEMP_NAME_EXTRA bytes). */
static bool file_name_ok(const char *f, const char *ext) {
  size_t n = strlen(f), e = strlen(ext);
  return n > e && n <= NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA &&
         f[0] != '.' && strchr(f, '/') == NULL && strcmp(f + n - e, ext) == 0;
}

#define BAD(...) strata__fail(STRATA_E_CORRUPT, __VA_ARGS__)

/* The members a base and a delta share, checked and copied into r. `where`
 * names the entry ("regions[3] (a.region)"). */
typedef struct file_json {
  const char *file, *hash, *hc, *ic;
  json_int_t size;
  json_t *chunks;
} file_json;

static int file_fields(const file_json *j, uint32_t chunk_size,
                       const char *what, const char *where,
                       strata__mregion *r) {
  if (j->size <= 0)
    return BAD("%s: %s: size %" JSON_INTEGER_FORMAT " is not positive", what,
               where, j->size);
  if (strata__parse_hex(j->hash, strlen(j->hash), 32, NULL) != 0)
    return BAD("%s: %s: hash is not 32 lowercase hex digits", what, where);
  if (strata__parse_hex(j->hc, strlen(j->hc), 16, &r->header_checksum) != 0 ||
      strata__parse_hex(j->ic, strlen(j->ic), 16, &r->index_checksum) != 0)
    return BAD("%s: %s: header_checksum and index_checksum must be 16 "
               "lowercase hex digits",
               what, where);
  uint64_t want = ((uint64_t)j->size + chunk_size - 1) / chunk_size;
  if (!json_is_array(j->chunks) || json_array_size(j->chunks) != want)
    return BAD("%s: %s: chunks must be an array of %" PRIu64
               " checksums (size %" JSON_INTEGER_FORMAT " in chunks of %" PRIu32
               ")",
               what, where, want, j->size, chunk_size);
  r->size = (uint64_t)j->size;
  memcpy(r->hash, j->hash, 33);
  r->nchunks = (uint32_t)want;
  r->chunks = calloc(want ? want : 1, sizeof *r->chunks);
  r->file = strdup(j->file);
  if (r->chunks == NULL || r->file == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  for (size_t k = 0; k < want; k++) {
    json_t *cv = json_array_get(j->chunks, k);
    if (!json_is_string(cv) ||
        strata__parse_hex(json_string_value(cv), strlen(json_string_value(cv)),
                          16, &r->chunks[k]) != 0)
      return BAD("%s: %s: chunks[%zu] is not 16 lowercase hex digits", what,
                 where, k);
  }
  return 0;
}

/* Delta k of region entry i, over the file `below` (the base or the delta
 * before it), into r: the region's id and name are the base's. */
static int parse_delta(json_t *v, size_t i, size_t k, uint32_t chunk_size,
                       const char *what, const strata__mregion *base,
                       const strata__mregion *below, strata__mregion *r) {
  json_error_t err;
  file_json j = {.size = -1};
  const char *pc = NULL;
  if (json_unpack_ex(v, &err, JSON_STRICT,
                     "{s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "file", &j.file,
                     "size", &j.size, "hash", &j.hash, "header_checksum", &j.hc,
                     "index_checksum", &j.ic, "parent_checksum", &pc, "chunks",
                     &j.chunks) != 0)
    return BAD("%s: regions[%zu] (%s): deltas[%zu]: %s", what, i, base->file, k,
               err.text);
  char where[2 * NAME_MAX + 64];
  snprintf(where, sizeof where, "regions[%zu] (%s): deltas[%zu] (%.80s)", i,
           base->file, k, j.file);
  if (!file_name_ok(j.file, ".delta"))
    return BAD("%s: %s: not a delta file name (NAME.delta, no '/', not "
               "starting with '.', at most %d bytes)",
               what, where, NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA);
  r->depth = (uint32_t)k + 1;
  r->id = base->id;
  if (base->name != NULL && (r->name = strdup(base->name)) == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  STRATA__TRY(file_fields(&j, chunk_size, what, where, r));
  if (strata__parse_hex(pc, strlen(pc), 16, &r->parent_checksum) != 0)
    return BAD("%s: %s: parent_checksum is not 16 lowercase hex digits", what,
               where);
  /* The chain as listed: each delta names the file below it. A list out
   * of order, or deltas of another base, cannot be served. */
  if (r->parent_checksum != below->header_checksum)
    return BAD("%s: %s: parent_checksum %016" PRIx64
               " is not the header checksum of %s below it (%016" PRIx64
               "): the deltas are out of order or not over this base",
               what, where, r->parent_checksum, below->file,
               below->header_checksum);
  return 0;
}

/* Region entry i into r[0] and its deltas into r[1 ..] (room for `room`
 * files; *used gets how many it filled). `deltas`: format 2. */
static int parse_region(json_t *v, size_t i, uint32_t chunk_size, bool deltas,
                        const char *what, strata__mregion *r, size_t room,
                        size_t *used) {
  json_error_t err;
  file_json j = {.size = -1};
  const char *id = NULL;
  json_t *jname = NULL, *jd = NULL;
  int urc = deltas ? json_unpack_ex(v, &err, JSON_STRICT,
                                    "{s:s, s:s, s:o, s:I, s:s, s:s, s:s, s:o, "
                                    "s:o}",
                                    "file", &j.file, "id", &id, "name", &jname,
                                    "size", &j.size, "hash", &j.hash,
                                    "header_checksum", &j.hc, "index_checksum",
                                    &j.ic, "chunks", &j.chunks, "deltas", &jd)
                   : json_unpack_ex(v, &err, JSON_STRICT,
                                    "{s:s, s:s, s:o, s:I, s:s, s:s, s:s, s:o}",
                                    "file", &j.file, "id", &id, "name", &jname,
                                    "size", &j.size, "hash", &j.hash,
                                    "header_checksum", &j.hc, "index_checksum",
                                    &j.ic, "chunks", &j.chunks);
  if (urc != 0)
    return BAD("%s: regions[%zu]: %s", what, i, err.text);
  const char *file = j.file;
  /* "name" is a string, or null for a region without a name. */
  if (!json_is_null(jname) && !json_is_string(jname))
    return BAD("%s: regions[%zu] (%.80s): name is neither a string nor null",
               what, i, file);
  const char *name = json_is_string(jname) ? json_string_value(jname) : NULL;
  if (!file_name_ok(file, ".region"))
    return BAD("%s: regions[%zu]: file \"%.80s\" is not a region file name "
               "(NAME.region, no '/', not starting with '.', at most %d "
               "bytes)",
               what, i, file, NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA);
  if (parse_id(id, &r->id) != 0)
    return BAD("%s: regions[%zu] (%s): id \"%.40s\" is not a 64-bit decimal",
               what, i, file, id);
  char where[NAME_MAX + 32];
  snprintf(where, sizeof where, "regions[%zu] (%s)", i, file);
  *used = 1;
  r->name = name ? strdup(name) : NULL;
  if (name && r->name == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  STRATA__TRY(file_fields(&j, chunk_size, what, where, r));
  if (!deltas)
    return 0;
  size_t nd = json_is_array(jd) ? json_array_size(jd) : 0;
  if (!json_is_array(jd) || nd > STRATA__MANIFEST_MAX_DEPTH || nd >= room)
    return BAD("%s: %s: deltas is not an array of at most %d delta files", what,
               where, STRATA__MANIFEST_MAX_DEPTH);
  for (size_t k = 0; k < nd; k++) {
    *used = k + 2; /* so that a failure frees what this delta got */
    STRATA__TRY(parse_delta(json_array_get(jd, k), i, k, chunk_size, what, r,
                            &r[k], &r[k + 1]));
  }
  return 0;
}

static int cmp_id(const void *a, const void *b) {
  const strata__mregion *x = *(strata__mregion *const *)a,
                        *y = *(strata__mregion *const *)b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_name(const void *a, const void *b) {
  const strata__mregion *x = *(strata__mregion *const *)a,
                        *y = *(strata__mregion *const *)b;
  return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int cmp_file(const void *a, const void *b) {
  const strata__mregion *x = *(strata__mregion *const *)a,
                        *y = *(strata__mregion *const *)b;
  return strcmp(x->file, y->file);
}

/* Sorted by file (checked while parsing); here: no two regions with one id
 * or one name, which a store would refuse to serve together. */
static int check_unique(strata__manifest *m, const char *what) {
  strata__mregion **v = malloc((m->n ? m->n : 1) * sizeof *v);
  if (v == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  int rc = 0;
  size_t nb = 0, nd = 0;
  /* Delta files at the end of v (from m->n down), bases at the start. */
  for (size_t i = 0; i < m->n; i++)
    if (m->regions[i].depth == 0)
      v[nb++] = &m->regions[i];
    else
      v[m->n - ++nd] = &m->regions[i];
  qsort(v, nb, sizeof *v, cmp_id);
  for (size_t i = 1; rc == 0 && i < nb; i++)
    if (v[i]->id == v[i - 1]->id)
      rc = BAD("%s: %s and %s both hold region id %" PRIu64, what,
               v[i - 1]->file, v[i]->file, v[i]->id);
  qsort(v, nb, sizeof *v, cmp_name);
  for (size_t i = 1; rc == 0 && i < nb; i++)
    if (v[i]->name && v[i - 1]->name && strcmp(v[i]->name, v[i - 1]->name) == 0)
      rc = BAD("%s: %s and %s both hold region name \"%.80s\"", what,
               v[i - 1]->file, v[i]->file, v[i]->name);
  /* A delta file name twice would make two files of one local name. */
  strata__mregion **d = v + nb;
  qsort(d, nd, sizeof *d, cmp_file);
  for (size_t i = 1; rc == 0 && i < nd; i++)
    if (strcmp(d[i]->file, d[i - 1]->file) == 0)
      rc = BAD("%s: the delta file %s is listed twice", what, d[i]->file);
  free(v);
  return rc;
}

static int parse_top(json_t *o, const char *what, strata__manifest *m) {
  json_error_t err;
  json_int_t format = -1, version = -1, previous = -1, chunk_size = -1;
  const char *publisher = NULL, *created = NULL;
  json_t *regions = NULL;
  /* The format first, alone: a manifest of a later protocol may hold
   * members this one does not know, and deserves STRATA_E_VERSION. */
  if (json_unpack_ex(o, &err, 0, "{s:I}", "format", &format) != 0)
    return BAD("%s: %s", what, err.text);
  if (format != STRATA__MANIFEST_FORMAT_BASES &&
      format != STRATA__MANIFEST_FORMAT_DELTAS)
    return strata__fail(STRATA_E_VERSION,
                        "%s: manifest version %" JSON_INTEGER_FORMAT
                        " not supported (this library reads versions %d and "
                        "%d)",
                        what, format, STRATA__MANIFEST_FORMAT_BASES,
                        STRATA__MANIFEST_FORMAT_DELTAS);
  bool deltas = format == STRATA__MANIFEST_FORMAT_DELTAS;
  if (json_unpack_ex(o, &err, JSON_STRICT,
                     "{s:I, s:I, s:I, s:s, s:s, s:I, s:o}", "format", &format,
                     "version", &version, "previous", &previous, "publisher",
                     &publisher, "created", &created, "chunk_size", &chunk_size,
                     "regions", &regions) != 0)
    return BAD("%s: %s", what, err.text);
  if (version <= 0 || previous < 0 || previous >= version)
    return BAD("%s: version %" JSON_INTEGER_FORMAT
               " / previous %" JSON_INTEGER_FORMAT
               ": the version must be positive and above the previous one",
               what, version, previous);
  if (chunk_size < (1 << 20) || chunk_size > (64 << 20) ||
      (chunk_size & (chunk_size - 1)) != 0)
    return BAD("%s: chunk_size %" JSON_INTEGER_FORMAT
               " is not a power of two from 1 MiB to 64 MiB",
               what, chunk_size);
  if (!json_is_array(regions))
    return BAD("%s: regions is not an array", what);
  m->format = (uint32_t)format;
  m->version = (uint64_t)version;
  m->previous = (uint64_t)previous;
  m->chunk_size = (uint32_t)chunk_size;
  m->publisher = strdup(publisher);
  m->created = strdup(created);
  /* Room for every file: each region's base and the deltas it lists (a
   * "deltas" that is not an array fails its region's parse), counted at
   * most one past the depth limit, which parse_region() refuses: a hostile
   * list of deltas costs no more room than that. */
  size_t n = json_array_size(regions), room = n;
  for (size_t i = 0; deltas && i < n; i++) {
    json_t *jd = json_object_get(json_array_get(regions, i), "deltas");
    size_t k = json_is_array(jd) ? json_array_size(jd) : 0;
    room +=
        k <= STRATA__MANIFEST_MAX_DEPTH ? k : STRATA__MANIFEST_MAX_DEPTH + 1;
  }
  m->regions = calloc(room ? room : 1, sizeof *m->regions);
  if (m->publisher == NULL || m->created == NULL || m->regions == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  size_t prev = 0;
  for (size_t i = 0; i < n; i++) {
    size_t at = m->n, used = 0;
    int rc = parse_region(json_array_get(regions, i), i, m->chunk_size, deltas,
                          what, &m->regions[at], room - at, &used);
    m->n = at + used; /* so that a failure frees what this region got */
    STRATA__TRY(rc);
    if (i > 0 && strcmp(m->regions[prev].file, m->regions[at].file) >= 0)
      return BAD("%s: regions[%zu] (%s): files are not sorted and unique "
                 "(after %s)",
                 what, i, m->regions[at].file, m->regions[prev].file);
    prev = at;
  }
  return check_unique(m, what);
}

int strata__manifest_parse(const char *json, size_t len, const char *what,
                           strata__manifest *m) {
  memset(m, 0, sizeof *m);
  json_error_t err;
  int rc = strata__json_check(json, len, &err);
  if (rc == STRATA_E_NOMEM)
    return strata__fail(rc, "%s: parsing", what);
  if (rc != 0)
    return BAD("%s: %d:%d: %s", what, err.line, err.column, err.text);
  json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (o == NULL)
    return BAD("%s: %d:%d: %s", what, err.line, err.column, err.text);
  rc = json_is_object(o) ? parse_top(o, what, m)
                         : BAD("%s: not a JSON object", what);
  json_decref(o);
  if (rc != 0)
    strata__manifest_free(m);
  return rc;
}
