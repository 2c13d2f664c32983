/* The state dump: the whole store as one JSON document (jansson), and the
 * collector that metrics.c renders in the Prometheus format, so that both
 * report the same figures. docs/state.schema.json describes the document. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/strata_testing.h"
#include "remote/remote.h"
#include "staging/staging.h"
#include "state/state.h"

/* The version of this document's layout, its top-level "format_version"
 * (docs/state.schema.json: "version of this document's layout"). It is not
 * the region file format's version (STRATA_FORMAT_VERSION_MAJOR/MINOR):
 * the two change for different reasons, and each region's own
 * "file.format_version" already reports the version in that file's header.
 * Raise the minor version when fields are added, the major version when a
 * field changes meaning or goes away. 2.0: a region's "metadata" is the
 * parsed JSON value (null when there is none), no longer its text. 2.1:
 * "remote" (docs/REMOTE.md, "Reported state"). 2.2: a region's "deltas"
 * (its stack of delta files over "file", docs/ARCHITECTURE.md "Deltas"),
 * and its "layer_count" counts through them. */
#define STATE_DOC_VERSION "2.3"

/* Region and layer ids and checksums are u64; JSON integers in jansson are
 * signed 64-bit. Values above INT64_MAX are written as decimal strings so
 * that no value is ever changed (the schema allows both). */
static json_t *u64(uint64_t v) {
  if (v <= (uint64_t)INT64_MAX)
    return json_integer((json_int_t)v);
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return json_string(buf);
}

/* jansson's set_new and append_new take the value even when they fail
 * (or when it is NULL, a failed constructor's result), so the callers only
 * need to learn that something is missing: *ok goes false, and the
 * document is dropped. A dump that lacks a region must not pass for a
 * complete one. */
static void set(json_t *o, const char *key, json_t *v, bool *ok) {
  if (v == NULL || o == NULL || json_object_set_new(o, key, v) != 0) {
    if (o == NULL)
      json_decref(v);
    *ok = false;
  }
}

static void append(json_t *a, json_t *v, bool *ok) {
  if (v == NULL || a == NULL || json_array_append_new(a, v) != 0) {
    if (a == NULL)
      json_decref(v);
    *ok = false;
  }
}

static const char *threshold_name(strata__mem_level level) {
  static const char *const names[] = {
      [STRATA__MEM_OK] = "none",
      [STRATA__MEM_WARN] = "warn",
      [STRATA__MEM_EVICT] = "evict",
      [STRATA__MEM_REFUSE] = "refuse",
  };
  return level <= STRATA__MEM_REFUSE ? names[level] : "none";
}

/* Pages of the mapping present in memory (mincore), in bytes. */
static uint64_t resident_bytes(const strata_region *r, bool *ok) {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0 || r->size == 0)
    return 0;
  size_t pages = (size_t)((r->size + (uint64_t)page - 1) / (uint64_t)page);
  unsigned char *vec = malloc(pages);
  if (vec == NULL) {
    *ok = false;
    return 0;
  }
  uint64_t n = 0;
  if (mincore((void *)r->base, (size_t)r->size, vec) == 0)
    for (size_t i = 0; i < pages; i++)
      n += vec[i] & 1;
  free(vec);
  /* mincore counts whole pages; the file's last page is partly beyond it. */
  return n * (uint64_t)page < r->size ? n * (uint64_t)page : r->size;
}

static json_t *layer_index(const strata_region *r, bool *ok) {
  json_t *a = json_array();
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(r, &it);
  while (a != NULL && *ok && strata_region_next(&it, &l) > 0) {
    json_t *o =
        json_pack("{s:o, s:o, s:I, s:o}", "id", u64(l.id), "offset",
                  u64((uint64_t)((const uint8_t *)l.data - r->base)), "length",
                  (json_int_t)l.size, "checksum", u64(l.checksum));
    set(o, "name", l.name ? json_stringn(l.name, l.name_len) : json_null(), ok);
    append(a, o, ok);
  }
  return a;
}

static json_t *config_json(const strata_store *s) {
  const strata_store_config *c = &s->config;
  return json_pack(
      "{s:I, s:i, s:i, s:i, s:s, s:I, s:I, s:b, s:b, s:b, s:I, s:I, s:I}",
      "memory_limit", (json_int_t)s->config.memory_limit, "warn_pct",
      c->warn_pct, "evict_pct", c->evict_pct, "refuse_pct", c->refuse_pct,
      "log_level", strata__log_level_name(s->log.level), "max_readers",
      (json_int_t)c->max_readers, "snapshot_warn_ms",
      (json_int_t)c->snapshot_warn_ms, "read_only",
      (c->flags & STRATA_STORE_READ_ONLY) != 0, "verify_at_open",
      (c->flags & STRATA_STORE_VERIFY_AT_OPEN) != 0, "read_stats",
      (c->flags & STRATA_STORE_NO_READ_STATS) == 0, "open_threads",
      (json_int_t)c->open_threads, "staging_bytes",
      (json_int_t)c->staging.bytes, "staging_block_size",
      (json_int_t)c->staging.block_size);
}

/* A region's metadata as the tools print it everywhere (docs/CLI.md, "JSON
 * conventions"): null when there is none, else the parsed value. The writer
 * accepts only JSON, but the validator checks only UTF-8, so a file from
 * elsewhere may hold text that does not parse: it is kept as a JSON string
 * rather than dropped. Integers above 2^63-1 (valid JSON that jansson
 * refuses) are read as reals. */
static json_t *metadata_json(const char *text) {
  if (text == NULL || text[0] == '\0')
    return json_null();
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  if (v == NULL)
    v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
  return v != NULL ? v : json_string(text);
}

/* The delta files served over a region's base, oldest (depth 1) first. */
static json_t *deltas_json(const strata__stack *st, bool *ok) {
  json_t *a = json_array();
  for (uint32_t d = 0; a != NULL && st != NULL && d < st->n; d++) {
    const strata__file *f = st->deltas[d];
    append(a,
           json_pack("{s:s, s:I, s:I, s:o}", "path", f->path, "depth",
                     (json_int_t)d + 1, "file_size",
                     (json_int_t)f->region->size, "layer_count",
                     u64(f->region->n)),
           ok);
  }
  return a;
}

static json_t *region_json(const strata__entry *e, const strata_txn *txn,
                           bool verbose, bool *ok) {
  json_t *o =
      json_pack("{s:o, s:s, s:o, s:I, s:b}", "id", u64(e->id), "name", e->name,
                "metadata", metadata_json(e->metadata), "generation",
                (json_int_t)e->generation, "has_proto", e->overlay != NULL);
  if (o == NULL)
    return NULL;
  uint64_t layers = strata__entry_file_layers(e);
  if (e->overlay != NULL)
    layers += (uint64_t)strata__overlay_delta(e->overlay,
                                              strata__txn_priv(txn)->version);
  set(o, "layer_count", u64(layers), ok);
  if (e->file == NULL) {
    set(o, "file", json_null(), ok);
    return o;
  }
  const strata_region *r = e->file->region;
  char version[16];
  snprintf(version, sizeof version, "%u.%u", r->major, r->minor);
  json_t *f = json_pack(
      "{s:s, s:I, s:o, s:s, s:I, s:I, s:I, s:b, s:b}", "path", e->file->path,
      "file_size", (json_int_t)r->size, "layer_count", u64(r->n),
      "format_version", version, "mapped_bytes", (json_int_t)r->size,
      "resident_bytes", (json_int_t)resident_bytes(r, ok), "opened_unix_ms",
      (json_int_t)e->file->opened_unix_ms, "dense_ids", r->dense,
      "index_checksum_verified", !e->file->checksum_pending);
  if (f != NULL && verbose)
    set(f, "layers", layer_index(r, ok), ok);
  set(o, "file", f, ok);
  set(o, "deltas", deltas_json(e->stack, ok), ok);
  return o;
}

static json_t *pools_json(strata_store *s, bool *ok) {
  strata_pool_stats rows[STRATA__POOL_MAX_CLASSES + 1];
  size_t n = strata_store_pool_stats(s, rows, STRATA__POOL_MAX_CLASSES + 1);
  json_t *a = json_array();
  for (size_t i = 0; a != NULL && i < n; i++)
    append(a,
           json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I}",
                     "block_size", (json_int_t)rows[i].block_size, "chunks",
                     (json_int_t)rows[i].chunks, "blocks_total",
                     (json_int_t)rows[i].blocks_total, "blocks_used",
                     (json_int_t)rows[i].blocks_used, "bytes_reserved",
                     (json_int_t)rows[i].bytes_reserved, "bytes_requested",
                     (json_int_t)rows[i].bytes_requested, "utilization",
                     rows[i].utilization, "fragmentation",
                     rows[i].fragmentation, "allocs",
                     (json_int_t)rows[i].allocs, "frees",
                     (json_int_t)rows[i].frees, "failures",
                     (json_int_t)rows[i].failures),
           ok);
  return a;
}

static json_t *errors_json(bool *ok) {
  int codes[64];
  uint64_t counts[64];
  size_t n = strata__error_counts(codes, counts, 64);
  json_t *o = json_object();
  for (size_t i = 0; o != NULL && i < n; i++)
    set(o, strata_err_name(codes[i]), json_integer((json_int_t)counts[i]), ok);
  return o;
}

/* The protos, read under the writer mutex (their figures are writer-side). */
static json_t *protos_json(strata_store *s, bool *ok) {
  json_t *a = json_array();
  pthread_mutex_lock(&s->write_mu);
  uint64_t now = strata__mono_ns();
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  for (uint64_t i = 0; a != NULL && i < s->proto_n; i++) {
    const struct strata_proto *p = s->protos[i];
    if (p->discarded)
      continue;
    const strata__entry *e = strata__catalog_find(c, p->region_id);
    if (e == NULL || e->overlay == NULL)
      continue;
    const strata__overlay *o = e->overlay;
    uint64_t base = e->file ? e->file->region->n : 0;
    append(a,
           json_pack("{s:o, s:s, s:o, s:I, s:I, s:I, s:I}", "region_id",
                     u64(p->region_id), "name", e->name, "layers",
                     u64(base + (uint64_t)atomic_load_explicit(
                                    &((strata__overlay *)o)->layer_delta,
                                    memory_order_relaxed)),
                     "changed", (json_int_t)o->changed, "versions",
                     (json_int_t)o->lvers, "bytes", (json_int_t)o->bytes,
                     "age_ms", (json_int_t)((now - p->created_ns) / 1000000)),
           ok);
  }
  pthread_mutex_unlock(&s->write_mu);
  return a;
}

/* Region files the store does not serve because another file holds the
 * same region id or name (store_scan.c), as of the last open or refresh. */
static json_t *conflicts_json(strata_store *s, bool *ok) {
  json_t *a = json_array();
  pthread_mutex_lock(&s->write_mu);
  for (size_t i = 0; a != NULL && i < s->conflict_n; i++) {
    const strata__conflict *c = &s->conflicts[i];
    append(a,
           json_pack("{s:o, s:s, s:s, s:s}", "region_id", u64(c->region_id),
                     "reason", c->why, "served", c->served, "skipped",
                     c->skipped),
           ok);
  }
  pthread_mutex_unlock(&s->write_mu);
  return a;
}

/* Compactions (docs/ARCHITECTURE.md, "Background compaction"). */
static json_t *compactions_json(strata_store *s) {
  strata__compact_figures f;
  strata__compact_figures_get(s, &f);
  return json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                   "background", f.background, "running", f.running, "queued",
                   (json_int_t)f.queued, "count", (json_int_t)f.count, "merges",
                   (json_int_t)f.merges, "rebased_deltas",
                   (json_int_t)f.rebased, "dropped", (json_int_t)f.dropped,
                   "failed", (json_int_t)f.failed, "ns", (json_int_t)f.ns);
}

/* The remote's part (docs/REMOTE.md, "Reported state"): null without one. */
static json_t *remote_json(strata_store *s) {
  return s->remote != NULL ? strata__remote_json(s->remote) : json_null();
}

int strata__state_collect(strata_store *s, unsigned flags, json_t **out) {
  strata_store_stats st;
  strata_read_stats rs;
  STRATA__TRY(strata_store_stats_get(s, &st));
  STRATA__TRY(strata_read_stats_get(s, &rs));
  strata_txn txn;
  STRATA__TRY(strata_read_begin(s, &txn));
  bool ok = true;
  json_t *regions = json_array();
  const strata__catalog *c = strata__txn_priv(&txn)->catalog;
  for (uint64_t i = 0; regions != NULL && ok && i < c->n; i++)
    append(regions,
           region_json(c->by_order[i], &txn, (flags & STRATA_DUMP_VERBOSE) != 0,
                       &ok),
           &ok);
  uint64_t snapshot_version = strata__txn_priv(&txn)->version;
  strata_read_end(&txn);

  uint64_t heap = st.heap_bytes;
  /* What the heap pool took from the system; heap_bytes counts its blocks
   * in use (store_memory.c says why), so this is the other figure. */
  uint64_t pool_reserved = strata__pool_reserved(s->pool);
  strata__mem_level level = strata__memory_level(s, heap);
  json_t *doc = json_pack(
      "{s:s, s:s, s:I, s:s, s:o, s:{s:I, s:I, s:I, s:f, s:s, s:{s:i, s:i, "
      "s:i}}, "
      "s:o, s:o, s:o, s:o, s:o, s:o, "
      "s:{s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:o, s:I, s:I, "
      "s:o}, "
      "s:{s:I, s:I, s:I, s:I, s:I}}",
      "strata_version", strata_version_string(), "format_version",
      STATE_DOC_VERSION, "time_unix_ms", (json_int_t)strata__unix_ms(), "dir",
      s->dir, "config", config_json(s), "memory", "heap_bytes",
      (json_int_t)heap, "pool_reserved_bytes", (json_int_t)pool_reserved,
      "limit_bytes", (json_int_t)s->config.memory_limit, "used_ratio",
      s->config.memory_limit ? (double)heap / (double)s->config.memory_limit
                             : 0.0,
      "threshold", threshold_name(level), "thresholds_pct", "warn",
      s->config.warn_pct, "evict", s->config.evict_pct, "refuse",
      s->config.refuse_pct, "regions", regions, "protos", protos_json(s, &ok),
      "conflicts", conflicts_json(s, &ok), "pools", pools_json(s, &ok),
      "staging", strata__staging_json(s), "remote", remote_json(s),
      /* statistics */
      "statistics", "gets", (json_int_t)rs.gets, "misses",
      (json_int_t)rs.misses, "bytes_served", (json_int_t)rs.bytes_served,
      "snapshots", (json_int_t)rs.snapshots, "peak_concurrent_readers",
      (json_int_t)rs.peak_readers, "crystallizations", "count",
      (json_int_t)st.crystallizations, "bytes",
      (json_int_t)st.crystallize_bytes, "write_ns",
      (json_int_t)st.crystallize_write_ns, "fsync_ns",
      (json_int_t)st.crystallize_fsync_ns, "compactions", compactions_json(s),
      "evictions", (json_int_t)st.evictions, "puts_refused",
      (json_int_t)st.puts_refused, "errors", errors_json(&ok),
      /* snapshots */
      "snapshots", "open", (json_int_t)st.snapshots_open, "oldest_age_ms",
      (json_int_t)st.oldest_snapshot_ms, "waiting_bytes",
      (json_int_t)st.retired_bytes, "waiting_objects",
      (json_int_t)st.retired_objects, "version", (json_int_t)snapshot_version);
  if (doc == NULL || !ok) {
    json_decref(doc);
    return strata__fail(STRATA_E_NOMEM, "%s: building the state dump", s->dir);
  }
  *out = doc;
  return 0;
}

/* The rendered text. json_dumps() cannot be trusted when memory runs out:
 * jansson 2.14 ignores a failure to write an object key (dump.c calls
 * dump_string() for keys without checking it) and returns a document
 * that is not JSON. Its callback's failures are sticky here. */
typedef struct text_buf {
  char *p;
  size_t len, cap;
  bool failed;
} text_buf;

static int text_append(const char *buf, size_t size, void *data) {
  text_buf *b = data;
  if (!b->failed && b->len + size + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + size + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
      b->failed = true;
    else {
      b->p = p;
      b->cap = cap;
    }
  }
  if (b->failed)
    return -1;
  memcpy(b->p + b->len, buf, size);
  b->len += size;
  b->p[b->len] = '\0';
  return 0;
}

int strata_dump_state(strata_store *s, unsigned flags, char **json) {
  STRATA__FAIL_IF(s == NULL || json == NULL, STRATA_E_INVAL,
                  "strata_dump_state: NULL argument");
  STRATA__FAIL_IF(flags & ~(unsigned)STRATA_DUMP_VERBOSE, STRATA_E_INVAL,
                  "strata_dump_state: unknown flags 0x%x", flags);
  json_t *doc;
  STRATA__TRY(strata__state_collect(s, flags, &doc));
  text_buf b = {0};
  int rc = json_dump_callback(doc, text_append, &b,
                              JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(doc);
  if (rc != 0 || b.failed || b.p == NULL) {
    free(b.p);
    return strata__fail(STRATA_E_NOMEM, "%s: rendering the state dump", s->dir);
  }
  *json = b.p;
  return 0;
}
