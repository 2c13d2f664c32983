/* Metrics in the Prometheus text exposition format (0.0.4), rendered from
 * the same document as the state dump so that both give the same figures. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"

static json_int_t get_int(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (json_is_string(v)) /* u64 values above INT64_MAX (state.c) */
    return (json_int_t)strtoull(json_string_value(v), NULL, 10);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Whether a write of this thread's rendering failed. A memory stream that
 * cannot grow makes the write return EOF but (glibc) does not always set
 * the stream's error flag, so every write's result is checked. */
static _Thread_local bool render_failed;

static void emit(FILE *f, const char *fmt, ...) STRATA__PRINTF(2, 3);
static void emit(FILE *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (vfprintf(f, fmt, ap) < 0)
    render_failed = true;
  va_end(ap);
}

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      emit(f, "\\%c", *s);
    else if (*s == '\n')
      emit(f, "\\n");
    else
      emit(f, "%c", *s);
  }
}

static void head(FILE *f, const char *name, const char *type,
                 const char *help) {
  emit(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(FILE *f, const char *name, const char *type,
                   const char *help, double v) {
  head(f, name, type, help);
  emit(f, "%s %.17g\n", name, v);
}

/* One series per region: name{region_id="..",region=".."} value. */
static void per_region(FILE *f, json_t *regions, const char *name,
                       const char *help, const char *type,
                       double (*value)(json_t *region)) {
  head(f, name, type, help);
  size_t i;
  json_t *r;
  json_array_foreach(regions, i, r) {
    emit(f, "%s{region_id=\"%" PRId64 "\",region=\"", name,
         (int64_t)get_int(r, "id"));
    label(f, json_string_value(json_object_get(r, "name")));
    emit(f, "\"} %.17g\n", value(r));
  }
}

/* One series per pool row: name{block_size=".."} row[key]. */
static void per_pool(FILE *f, json_t *pools, const char *name, const char *type,
                     const char *help, const char *key) {
  head(f, name, type, help);
  size_t i;
  json_t *p;
  json_array_foreach(pools, i, p)
      emit(f, "%s{block_size=\"%" PRId64 "\"} %" PRId64 "\n", name,
           (int64_t)get_int(p, "block_size"), (int64_t)get_int(p, key));
}

static double r_layers(json_t *r) {
  return (double)get_int(r, "layer_count");
}
static double r_generation(json_t *r) {
  return (double)get_int(r, "generation");
}
static double r_file_bytes(json_t *r) {
  return (double)get_int(json_object_get(r, "file"), "file_size");
}
static double r_resident(json_t *r) {
  return (double)get_int(json_object_get(r, "file"), "resident_bytes");
}

/* The staging pool's series, from its part of the dump ({group: {key}});
 * none when the store has no pool. */
static void render_staging(FILE *f, json_t *sg) {
  if (!json_is_object(sg))
    return;
  static const struct {
    const char *name, *type, *help, *group, *key;
  } rows[] = {
      {"strata_staging_blocks", "gauge", "Blocks in the staging pool.",
       "blocks", "total"},
      {"strata_staging_blocks_used", "gauge", "Staging blocks in use.",
       "blocks", "used"},
      {"strata_staging_fragmentation_permille", "gauge",
       "1000 * (1 - largest free run / free blocks).", "blocks",
       "fragmentation_permille"},
      {"strata_staging_alloc_failures_total", "counter",
       "Block allocations that found no room.", "blocks", "alloc_failures"},
      {"strata_staging_layers", "gauge", "Layers with staged pages.", "layers",
       "staged"},
      {"strata_staging_bytes", "gauge", "Content bytes staged.", "layers",
       "staged_bytes"},
      {"strata_staging_shared_blocks", "gauge",
       "Blocks more than one layer uses.", "layers", "shared_blocks"},
      {"strata_staging_dedup_hits_total", "counter",
       "Pages found already staged (sharing its block).", "layers",
       "dedup_hits"},
      {"strata_staging_hot_layers", "gauge", "Layers staged as hot.", "hot",
       "layers"},
      {"strata_staging_hot_bytes", "gauge", "Bytes of hot layers.", "hot",
       "bytes"},
      {"strata_staging_samples_total", "counter", "Reads sampled.", "hot",
       "samples"},
      {"strata_staging_evictions_total", "counter", "Staged layers evicted.",
       "hot", "evictions"},
      {"strata_staging_transfers_in_flight", "gauge",
       "Copies to the device enqueued and not complete.", "transfers",
       "in_flight"},
      {"strata_staging_transfers_total", "counter", "Copies to the device.",
       "transfers", "count"},
      {"strata_staging_transfer_bytes_total", "counter",
       "Bytes copied to the device.", "transfers", "bytes"},
      {"strata_staging_device_bytes", "gauge",
       "Device memory allocated through Strata.", "transfers", "device_bytes"},
      {"strata_staging_device_cache_bytes", "gauge",
       "Bytes of layers in the device layer cache.", "device_cache", "bytes"},
      {"strata_staging_device_cache_hits_total", "counter",
       "Device layer cache hits.", "device_cache", "hits"},
      {"strata_staging_device_cache_misses_total", "counter",
       "Device layer cache misses (layers copied to the device).",
       "device_cache", "misses"},
      {"strata_staging_device_cache_prefetches_total", "counter",
       "Layers prefetched into the device cache by sequential reads.",
       "device_cache", "prefetches"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    metric(f, rows[i].name, rows[i].type, rows[i].help,
           (double)get_int(json_object_get(sg, rows[i].group), rows[i].key));
}

/* The remote's series (docs/REMOTE.md, "Reported state"); none when the
 * store has no remote. */
static void render_remote(FILE *f, json_t *rm) {
  if (!json_is_object(rm))
    return;
  static const struct {
    const char *name, *type, *help, *key;
  } rows[] = {
      {"strata_remote_version_served", "gauge",
       "Version of the remote store served (follower) or last published.",
       "version_served"},
      {"strata_remote_version_seen", "gauge", "Highest HEAD version read.",
       "version_seen"},
      {"strata_remote_bytes_fetched_total", "counter",
       "Bytes of chunks fetched from the remote.", "bytes_fetched"},
      {"strata_remote_bytes_uploaded_total", "counter",
       "Bytes of chunks uploaded to the remote.", "bytes_uploaded"},
      {"strata_remote_sync_failures_total", "counter",
       "Syncs or publishes that failed.", "sync_failures"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    metric(f, rows[i].name, rows[i].type, rows[i].help,
           (double)get_int(rm, rows[i].key));
}

static void render(FILE *f, json_t *doc) {
  json_t *mem = json_object_get(doc, "memory");
  json_t *st = json_object_get(doc, "statistics");
  json_t *cr = json_object_get(st, "crystallizations");
  json_t *snap = json_object_get(doc, "snapshots");
  json_t *regions = json_object_get(doc, "regions");
  json_t *protos = json_object_get(doc, "protos");

  head(f, "strata_info", "gauge", "Library version (always 1).");
  emit(f, "strata_info{version=\"%s\"} 1\n",
       json_string_value(json_object_get(doc, "strata_version")));
  metric(f, "strata_memory_heap_bytes", "gauge",
         "Heap bytes used by protos and pools.",
         (double)get_int(mem, "heap_bytes"));
  metric(f, "strata_memory_limit_bytes", "gauge", "Configured memory limit.",
         (double)get_int(mem, "limit_bytes"));
  const char *th = json_string_value(json_object_get(mem, "threshold"));
  int level = strcmp(th, "warn") == 0     ? 1
              : strcmp(th, "evict") == 0  ? 2
              : strcmp(th, "refuse") == 0 ? 3
                                          : 0;
  metric(f, "strata_memory_threshold_level", "gauge",
         "Memory threshold reached: 0 none, 1 warn, 2 evict, 3 refuse.", level);
  metric(f, "strata_regions", "gauge", "Regions served.",
         (double)json_array_size(regions));
  metric(f, "strata_protos", "gauge", "Regions with a proto.",
         (double)json_array_size(protos));
  per_region(f, regions, "strata_region_layers", "Layers of the region.",
             "gauge", r_layers);
  per_region(f, regions, "strata_region_generation",
             "Times the region was replaced in this process.", "gauge",
             r_generation);
  per_region(f, regions, "strata_region_file_bytes",
             "Size of the region file (0 for a proto without one).", "gauge",
             r_file_bytes);
  per_region(f, regions, "strata_region_resident_bytes",
             "Bytes of the region file in memory (mincore).", "gauge",
             r_resident);

  json_t *pools = json_object_get(doc, "pools");
  per_pool(f, pools, "strata_pool_bytes_reserved", "gauge",
           "Bytes the pool holds from the system, per block size (0: large).",
           "bytes_reserved");
  per_pool(f, pools, "strata_pool_blocks_used", "gauge",
           "Blocks in use, per block size.", "blocks_used");
  per_pool(f, pools, "strata_pool_failures_total", "counter",
           "Allocations the system refused, per block size.", "failures");

  metric(f, "strata_gets_total", "counter", "Layer lookups.",
         (double)get_int(st, "gets"));
  metric(f, "strata_misses_total", "counter", "Lookups that found nothing.",
         (double)get_int(st, "misses"));
  metric(f, "strata_bytes_served_total", "counter",
         "Content bytes of the layers found.",
         (double)get_int(st, "bytes_served"));
  metric(f, "strata_snapshots_total", "counter", "Snapshots begun.",
         (double)get_int(st, "snapshots"));
  metric(f, "strata_peak_concurrent_readers", "gauge",
         "Most snapshots seen open at once.",
         (double)get_int(st, "peak_concurrent_readers"));
  metric(f, "strata_crystallizations_total", "counter", "Crystallizations.",
         (double)get_int(cr, "count"));
  metric(f, "strata_crystallize_bytes_total", "counter",
         "Content bytes written by crystallizations.",
         (double)get_int(cr, "bytes"));
  metric(f, "strata_crystallize_write_seconds_total", "counter",
         "Time crystallizations spent before fsync.",
         (double)get_int(cr, "write_ns") / 1e9);
  metric(f, "strata_crystallize_fsync_seconds_total", "counter",
         "Time crystallizations spent in fsync.",
         (double)get_int(cr, "fsync_ns") / 1e9);
  metric(f, "strata_evictions_total", "counter",
         "Protos crystallized to free memory.",
         (double)get_int(st, "evictions"));
  metric(f, "strata_puts_refused_total", "counter",
         "Puts refused over the memory limit.",
         (double)get_int(st, "puts_refused"));
  head(f, "strata_errors_total", "counter",
       "Failures in this process by error code (misses excluded).");
  const char *code;
  json_t *n;
  json_object_foreach(json_object_get(st, "errors"), code, n)
      emit(f, "strata_errors_total{code=\"%s\"} %" PRId64 "\n", code,
           (int64_t)json_integer_value(n));

  render_staging(f, json_object_get(doc, "staging"));
  render_remote(f, json_object_get(doc, "remote"));

  metric(f, "strata_snapshots_open", "gauge", "Snapshots open now.",
         (double)get_int(snap, "open"));
  metric(f, "strata_snapshot_oldest_age_seconds", "gauge",
         "Age of the oldest open snapshot (as first noticed).",
         (double)get_int(snap, "oldest_age_ms") / 1e3);
  metric(f, "strata_reclaim_waiting_bytes", "gauge",
         "Bytes retired and waiting for older snapshots to end.",
         (double)get_int(snap, "waiting_bytes"));
  metric(f, "strata_reclaim_waiting_objects", "gauge",
         "Objects retired and waiting for older snapshots to end.",
         (double)get_int(snap, "waiting_objects"));
}

int strata_metrics_text(strata_store *s, char **text) {
  STRATA__FAIL_IF(s == NULL || text == NULL, STRATA_E_INVAL,
                  "strata_metrics_text: NULL argument");
  json_t *doc;
  STRATA__TRY(strata__state_collect(s, 0, &doc));
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) {
    json_decref(doc);
    return strata__fail(STRATA_E_NOMEM, "%s: rendering metrics", s->dir);
  }
  render_failed = false;
  render(f, doc);
  json_decref(doc);
  bool failed = render_failed || ferror(f) != 0;
  if (fclose(f) != 0 || failed || buf == NULL) {
    free(buf);
    return strata__fail(STRATA_E_NOMEM, "%s: rendering metrics", s->dir);
  }
  *text = buf;
  return 0;
}
