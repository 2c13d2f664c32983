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

static json_t *region_json(const strata__mregion *r) {
  char id[21];
  snprintf(id, sizeof id, "%" PRIu64, r->id);
  json_t *chunks = json_array();
  for (uint32_t i = 0; chunks && i < r->nchunks; i++)
    if (json_array_append_new(chunks, hex64(r->chunks[i])) != 0) {
      json_decref(chunks);
      chunks = NULL;
    }
  return json_pack("{s:s, s:s, s:s?, s:I, s:s, s:o, s:o, s:o*}", "file",
                   r->file, "id", id, "name", r->name, "size",
                   (json_int_t)r->size, "hash", r->hash, "header_checksum",
                   hex64(r->header_checksum), "index_checksum",
                   hex64(r->index_checksum), "chunks", chunks);
}

int strata__manifest_emit(const strata__manifest *m, char **json, size_t *len) {
  json_t *regions = json_array();
  for (size_t i = 0; regions && i < m->n; i++)
    if (json_array_append_new(regions, region_json(&m->regions[i])) != 0) {
      json_decref(regions);
      regions = NULL;
    }
  json_t *o = json_pack(
      "{s:i, s:I, s:I, s:s, s:s, s:I, s:o*}", "format", STRATA__REMOTE_FORMAT,
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

/* A file name a store serves and a follower can write: "X.region", no
 * '/', not hidden (the store's temporary files begin with '.'), short
 * enough for the writer's temporary name (NAME_MAX less
 * STRATA_WRITER_TEMP_NAME_EXTRA bytes). */
static bool file_name_ok(const char *f) {
  size_t n = strlen(f);
  static const char ext[] = ".region";
  size_t e = sizeof ext - 1;
  return n > e && n <= NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA &&
         f[0] != '.' && strchr(f, '/') == NULL && strcmp(f + n - e, ext) == 0;
}

#define BAD(...) strata__fail(STRATA_E_CORRUPT, __VA_ARGS__)

static int parse_region(json_t *v, size_t i, uint32_t chunk_size,
                        const char *what, strata__mregion *r) {
  json_error_t err;
  const char *file = NULL, *id = NULL, *name = NULL, *hash = NULL, *hc = NULL,
             *ic = NULL;
  json_int_t size = -1;
  json_t *chunks = NULL, *jname = NULL;
  if (json_unpack_ex(v, &err, JSON_STRICT,
                     "{s:s, s:s, s:o, s:I, s:s, s:s, s:s, s:o}", "file", &file,
                     "id", &id, "name", &jname, "size", &size, "hash", &hash,
                     "header_checksum", &hc, "index_checksum", &ic, "chunks",
                     &chunks) != 0)
    return BAD("%s: regions[%zu]: %s", what, i, err.text);
  /* "name" is a string, or null for a region without a name. */
  if (!json_is_null(jname) && !json_is_string(jname))
    return BAD("%s: regions[%zu] (%.80s): name is neither a string nor null",
               what, i, file);
  name = json_is_string(jname) ? json_string_value(jname) : NULL;
  if (!file_name_ok(file))
    return BAD("%s: regions[%zu]: file \"%.80s\" is not a region file name "
               "(NAME.region, no '/', not starting with '.', at most %d "
               "bytes)",
               what, i, file, NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA);
  if (parse_id(id, &r->id) != 0)
    return BAD("%s: regions[%zu] (%s): id \"%.40s\" is not a 64-bit decimal",
               what, i, file, id);
  if (size <= 0)
    return BAD("%s: regions[%zu] (%s): size %" JSON_INTEGER_FORMAT
               " is not positive",
               what, i, file, size);
  if (strata__parse_hex(hash, strlen(hash), 32, NULL) != 0)
    return BAD("%s: regions[%zu] (%s): hash is not 32 lowercase hex digits",
               what, i, file);
  if (strata__parse_hex(hc, strlen(hc), 16, &r->header_checksum) != 0 ||
      strata__parse_hex(ic, strlen(ic), 16, &r->index_checksum) != 0)
    return BAD("%s: regions[%zu] (%s): header_checksum and index_checksum "
               "must be 16 lowercase hex digits",
               what, i, file);
  uint64_t want = ((uint64_t)size + chunk_size - 1) / chunk_size;
  if (!json_is_array(chunks) || json_array_size(chunks) != want)
    return BAD("%s: regions[%zu] (%s): chunks must be an array of %" PRIu64
               " checksums (size %" JSON_INTEGER_FORMAT " in chunks of %" PRIu32
               ")",
               what, i, file, want, size, chunk_size);
  r->size = (uint64_t)size;
  memcpy(r->hash, hash, 33);
  r->nchunks = (uint32_t)want;
  r->chunks = calloc(want ? want : 1, sizeof *r->chunks);
  r->file = strdup(file);
  r->name = name ? strdup(name) : NULL;
  if (r->chunks == NULL || r->file == NULL || (name && r->name == NULL))
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  for (size_t k = 0; k < want; k++) {
    json_t *cv = json_array_get(chunks, k);
    if (!json_is_string(cv) ||
        strata__parse_hex(json_string_value(cv), strlen(json_string_value(cv)),
                          16, &r->chunks[k]) != 0)
      return BAD("%s: regions[%zu] (%s): chunks[%zu] is not 16 lowercase hex "
                 "digits",
                 what, i, file, k);
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

/* Sorted by file (checked while parsing); here: no two regions with one id
 * or one name, which a store would refuse to serve together. */
static int check_unique(strata__manifest *m, const char *what) {
  strata__mregion **v = malloc((m->n ? m->n : 1) * sizeof *v);
  if (v == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  int rc = 0;
  for (size_t i = 0; i < m->n; i++)
    v[i] = &m->regions[i];
  qsort(v, m->n, sizeof *v, cmp_id);
  for (size_t i = 1; rc == 0 && i < m->n; i++)
    if (v[i]->id == v[i - 1]->id)
      rc = BAD("%s: %s and %s both hold region id %" PRIu64, what,
               v[i - 1]->file, v[i]->file, v[i]->id);
  qsort(v, m->n, sizeof *v, cmp_name);
  for (size_t i = 1; rc == 0 && i < m->n; i++)
    if (v[i]->name && v[i - 1]->name && strcmp(v[i]->name, v[i - 1]->name) == 0)
      rc = BAD("%s: %s and %s both hold region name \"%.80s\"", what,
               v[i - 1]->file, v[i]->file, v[i]->name);
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
  if (format != STRATA__REMOTE_FORMAT)
    return strata__fail(STRATA_E_VERSION,
                        "%s: protocol format %" JSON_INTEGER_FORMAT
                        " (this library reads %d)",
                        what, format, STRATA__REMOTE_FORMAT);
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
  m->version = (uint64_t)version;
  m->previous = (uint64_t)previous;
  m->chunk_size = (uint32_t)chunk_size;
  m->publisher = strdup(publisher);
  m->created = strdup(created);
  size_t n = json_array_size(regions);
  m->regions = calloc(n ? n : 1, sizeof *m->regions);
  if (m->publisher == NULL || m->created == NULL || m->regions == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", what);
  for (size_t i = 0; i < n; i++) {
    m->n = i + 1; /* so that a failure frees what this region got */
    STRATA__TRY(parse_region(json_array_get(regions, i), i, m->chunk_size, what,
                             &m->regions[i]));
    if (i > 0 && strcmp(m->regions[i - 1].file, m->regions[i].file) >= 0)
      return BAD("%s: regions[%zu] (%s): files are not sorted and unique "
                 "(after %s)",
                 what, i, m->regions[i].file, m->regions[i - 1].file);
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
