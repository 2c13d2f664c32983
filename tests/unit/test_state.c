/* The state dump, the metrics text and the read statistics: their figures
 * against what the test did, label escaping, the verbose layer index, and
 * the read-statistics switch. With STRATA_STATE_DUMP_DIR set, every dump is
 * also written there for tests/unit/validate_state.sh, which checks them
 * against docs/state.schema.json. */
#include <inttypes.h>
#include <jansson.h>
#include <xxhash.h>

#include "common/strata_testing.h" /* NO_READ_STATS, NO_WORKER */
#include "test_util.h"

static int dump_no;

static json_t *dump(strata_store *s, unsigned flags) {
  char *text = NULL;
  assert_strata_ok(strata_dump_state(s, flags, &text));
  const char *dir = getenv("STRATA_STATE_DUMP_DIR");
  if (dir != NULL && *dir) {
    char name[64];
    snprintf(name, sizeof name, "dump-%02d.json", dump_no++);
    test_write_file(test_path(dir, name), text, strlen(text));
  }
  json_error_t err;
  json_t *doc = json_loads(text, 0, &err);
  if (doc == NULL)
    fail_msg("dump is not JSON: %s at %d:%d", err.text, err.line, err.column);
  strata_free(text);
  return doc;
}

static json_int_t jint(json_t *o, const char *path) {
  /* "a.b.c" */
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *v = o;
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); k != NULL;
       k = strtok_r(NULL, ".", &save))
    v = json_object_get(v, k);
  if (!json_is_integer(v))
    fail_msg("%s is not an integer", path);
  return json_integer_value(v);
}

static strata_store *open_store(const char *dir, unsigned flags,
                                uint64_t limit) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.flags = flags;
  if (limit)
    c.memory_limit = limit;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

static void make_region(const char *dir) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 5;
  o.name = "base";
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(test_path(dir, "base.region"), &o, &w));
  assert_strata_ok(
      strata_writer_add(w, 1, "one", 3, "{\"frequency\":3}", "1111", 4));
  assert_strata_ok(strata_writer_add(w, 2, NULL, 0, NULL, "22", 2));
  assert_strata_ok(strata_writer_commit(w));
}

static void test_dump_figures(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  make_region(dir);
  strata_store *s = open_store(dir, 0, 0);
  strata_proto *p = NULL;
  assert_strata_ok(
      strata_proto_create(s, 9, "we\"ird\\name", 11, "{\"k\":1}", &p));
  assert_strata_ok(strata_proto_put(p, 3, "three", 5, NULL, "abc", 3));
  /* A failure of a kind that is counted (misses are not). */
  assert_strata_err(strata_proto_put(p, 4, "three", 5, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  strata_txn t;
  strata_layer l;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_get(&t, 5, 1, &l)); /* 4 bytes */
  assert_strata_ok(strata_get(&t, 9, 3, &l)); /* 3 bytes */
  assert_strata_err(strata_get(&t, 5, 7, &l), STRATA_E_NOT_FOUND);
  assert_strata_err(strata_get(&t, 6, 1, &l), STRATA_E_NO_REGION);

  /* Lookups are counted when their snapshot ends. */
  strata_read_stats rs;
  assert_strata_ok(strata_read_stats_get(s, &rs));
  assert_int_equal(rs.gets, 0);
  strata_txn held;
  assert_strata_ok(strata_read_begin(s, &held)); /* open during the dump */
  strata_read_end(&t);
  json_t *doc = dump(s, 0);
  strata_read_end(&held);
  assert_string_equal(json_string_value(json_object_get(doc, "strata_version")),
                      strata_version_string());
  json_t *regions = json_object_get(doc, "regions");
  assert_int_equal(json_array_size(regions), 2);
  json_t *r0 = json_array_get(regions, 0), *r1 = json_array_get(regions, 1);
  assert_int_equal(jint(r0, "id"), 5);
  assert_int_equal(jint(r0, "layer_count"), 2);
  assert_int_equal(jint(r0, "file.layer_count"), 2);
  assert_true(jint(r0, "file.resident_bytes") > 0);
  assert_null(json_object_get(json_object_get(r0, "file"), "layers"));
  assert_int_equal(jint(r1, "id"), 9);
  assert_true(json_is_null(json_object_get(r1, "file")));
  assert_true(json_is_true(json_object_get(r1, "has_proto")));
  /* Metadata is the parsed value, as every tool prints it (format 2.0): an
   * object for region 9, null for region 5, which has none. 2.1 added
   * "remote", null for a store without one. */
  assert_string_equal(json_string_value(json_object_get(doc, "format_version")),
                      "2.3");
  assert_true(json_is_null(json_object_get(doc, "remote")));
  assert_int_equal(jint(r1, "metadata.k"), 1);
  assert_true(json_is_null(json_object_get(r0, "metadata")));
  json_t *protos = json_object_get(doc, "protos");
  assert_int_equal(json_array_size(protos), 1);
  assert_int_equal(jint(json_array_get(protos, 0), "layers"), 1);
  /* `held` and the dump's own snapshot are open. */
  assert_int_equal(jint(doc, "statistics.gets"), 4);
  assert_int_equal(jint(doc, "statistics.misses"), 2);
  assert_int_equal(jint(doc, "statistics.bytes_served"), 7);
  assert_int_equal(jint(doc, "snapshots.open"), 1); /* `held` */
  assert_true(jint(doc, "statistics.peak_concurrent_readers") >= 1);
  assert_true(jint(doc, "statistics.errors.STRATA_E_DUPLICATE") >= 1);
  assert_null(json_object_get(
      json_object_get(json_object_get(doc, "statistics"), "errors"),
      "STRATA_E_NOT_FOUND"));
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(doc, "memory"), "threshold")),
                      "none");
  assert_true(json_array_size(json_object_get(doc, "pools")) >= 2);
  json_decref(doc);

  /* Verbose: the layer index of each file. */
  doc = dump(s, STRATA_DUMP_VERBOSE);
  json_t *layers = json_object_get(
      json_object_get(json_array_get(json_object_get(doc, "regions"), 0),
                      "file"),
      "layers");
  assert_int_equal(json_array_size(layers), 2);
  json_t *first = json_array_get(layers, 0);
  assert_int_equal(jint(first, "id"), 1);
  assert_string_equal(json_string_value(json_object_get(first, "name")), "one");
  assert_int_equal(jint(first, "length"), 4);
  strata_txn t2;
  assert_strata_ok(strata_read_begin(s, &t2));
  assert_strata_ok(strata_get(&t2, 5, 1, &l));
  strata_store_region sr;
  assert_strata_ok(strata_store_region_at(&t2, 0, &sr));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(sr.file, &info));
  assert_true(jint(first, "offset") >= (json_int_t)info.data_offset);
  assert_true(json_is_null(json_object_get(json_array_get(layers, 1), "name")));
  strata_read_end(&t2);
  json_decref(doc);
  assert_strata_err(strata_dump_state(s, 0x80, &(char *){NULL}),
                    STRATA_E_INVAL);

  /* Metrics: the same figures, and label values escaped. */
  char *text = NULL;
  assert_strata_ok(strata_metrics_text(s, &text));
  assert_non_null(strstr(text, "# TYPE strata_gets_total counter\n"));
  assert_non_null(strstr(text, "\nstrata_gets_total 5\n")); /* t2's get */
  assert_non_null(strstr(text, "\nstrata_regions 2\n"));
  assert_non_null(strstr(text, "strata_region_layers{region_id=\"9\",region="
                               "\"we\\\"ird\\\\name\"} 1\n"));
  assert_non_null(
      strstr(text, "strata_errors_total{code=\"STRATA_E_DUPLICATE\"}"));
  /* Every sample line follows a TYPE line of its metric family. */
  for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
    assert_true(line[0] == '#' || strncmp(line, "strata_", 7) == 0);
  strata_free(text);
  strata_free(NULL);
  assert_strata_ok(strata_proto_discard(p));
  strata_store_close(s);
}

static void test_read_stats_switch(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  make_region(dir);
  for (int off = 0; off < 2; off++) {
    strata_store *s =
        open_store(dir,
                   off ? STRATA_STORE_NO_READ_STATS | STRATA_STORE_READ_ONLY
                       : STRATA_STORE_READ_ONLY,
                   0);
    strata_txn t;
    strata_layer out[3];
    strata_layer_ref path[] = {{5, 1}, {5, 2}, {5, 3}};
    assert_strata_ok(strata_read_begin(s, &t));
    assert_int_equal(strata_get_many(&t, path, 3, out), 2);
    assert_strata_ok(strata_get_by_name(&t, 5, "one", 3, &out[0]));
    strata_read_end(&t);
    strata_read_stats rs;
    assert_strata_ok(strata_read_stats_get(s, &rs));
    assert_int_equal(rs.gets, off ? 0 : 4);
    assert_int_equal(rs.misses, off ? 0 : 1);
    assert_int_equal(rs.bytes_served, off ? 0 : 10);
    assert_int_equal(rs.snapshots, 1);
    json_t *doc = dump(s, 0);
    assert_int_equal(jint(doc, "statistics.gets"), off ? 0 : 4);
    assert_true(json_is_boolean(
        json_object_get(json_object_get(doc, "config"), "read_stats")));
    json_decref(doc);
    strata_store_close(s);
  }
}

/* The memory figures of the dump: heap_bytes counts what the protos hold
 * (the pool's blocks in use), pool_reserved_bytes what the pool took from
 * the system, and the threshold follows heap_bytes back down once the
 * protos are crystallized. (Counting the reservation, a store stayed at
 * 87.5 % of an 8 MiB limit with every proto crystallized.) */
static void test_thresholds_in_dump(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = open_store(dir, 0, 1u << 20);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "m", 1, NULL, &p));
  strata_store_stats st;
  assert_strata_ok(strata_store_stats_get(s, &st));
  uint64_t empty = st.heap_bytes;
  assert_true(empty < (1u << 20) / 100); /* an empty proto: under 1 % */
  /* 800 KiB of content: past warn (75 %), short of evict (85 %). */
  static char blob[800u << 10];
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, blob, sizeof blob));
  json_t *doc = dump(s, 0);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(doc, "memory"), "threshold")),
                      "warn");
  assert_int_equal(jint(doc, "memory.limit_bytes"), 1u << 20);
  assert_strata_ok(strata_store_stats_get(s, &st));
  assert_int_equal(jint(doc, "memory.heap_bytes"), st.heap_bytes);
  assert_true(st.heap_bytes >= empty + sizeof blob);
  assert_true((uint64_t)jint(doc, "memory.pool_reserved_bytes") >= sizeof blob);
  json_decref(doc);

  assert_strata_ok(strata_crystallize(s, 1));
  assert_strata_ok(strata_store_reclaim(s, 1));
  doc = dump(s, 0);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(doc, "memory"), "threshold")),
                      "none");
  assert_int_equal(jint(doc, "memory.heap_bytes"), empty);
  assert_true(jint(doc, "memory.pool_reserved_bytes") >= 0);
  assert_int_equal(jint(doc, "statistics.evictions"), 0);
  json_decref(doc);
  strata_store_close(s);
}

/* The staging pool's part of the dump (host mode), which the schema check
 * also sees. */
static void test_staging_in_dump(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  make_region(dir);
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.staging.bytes = 8u << 20;
  c.staging.pack_bytes = 64u << 10;
  c.staging.flags = STRATA_STAGING_HOST | STRATA_STAGING_NO_WORKER;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_staged *h = NULL;
  assert_strata_ok(strata_stage(&txn, 5, 1, &h));
  json_t *doc = dump(s, 0);
  json_t *sg = json_object_get(doc, "staging");
  assert_string_equal(json_string_value(json_object_get(sg, "backend")),
                      "host");
  assert_int_equal(jint(sg, "blocks.block_size"), 64u << 10);
  assert_int_equal(jint(sg, "blocks.total"), 128);
  /* 6 pack buffers of one block, and the staged layer's block. */
  assert_int_equal(jint(sg, "blocks.used"), 7);
  assert_int_equal(jint(sg, "layers.staged"), 1);
  assert_int_equal(jint(sg, "layers.staged_bytes"), 4);
  assert_int_equal(jint(sg, "transfers.streams"), 3);
  assert_int_equal(jint(doc, "config.staging_block_size"), 64u << 10);
  json_decref(doc);
  strata_staged_release(h);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* Files the store does not serve because another holds their region id
 * or name are listed, naming both files. */
static void test_conflicts_in_dump(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  make_region(dir); /* base.region: id 5, "base" */
  strata_store *s = open_store(dir, 0, 0);
  json_t *doc = dump(s, 0);
  assert_int_equal(json_array_size(json_object_get(doc, "conflicts")), 0);
  json_decref(doc);
  strata_store_close(s);

  const char *names[] = {"a-copy.region", "z-name.region"};
  const uint64_t ids[] = {5, 6};
  for (int i = 0; i < 2; i++) {
    strata_writer_options o;
    strata_writer_options_init(&o);
    o.region_id = ids[i];
    o.name = "base";
    strata_writer *w = NULL;
    assert_strata_ok(strata_writer_open(test_path(dir, names[i]), &o, &w));
    assert_strata_ok(strata_writer_commit(w));
  }
  s = open_store(dir, 0, 0);
  doc = dump(s, 0);
  json_t *c = json_object_get(doc, "conflicts");
  assert_int_equal(json_array_size(c), 2);
  for (size_t i = 0; i < 2; i++) {
    json_t *k = json_array_get(c, i);
    assert_int_equal(jint(k, "region_id"), ids[i]);
    assert_string_equal(json_string_value(json_object_get(k, "reason")),
                        i == 0 ? "region id" : "region name");
    assert_string_equal(json_string_value(json_object_get(k, "served")),
                        test_path(dir, "base.region"));
    assert_string_equal(json_string_value(json_object_get(k, "skipped")),
                        test_path(dir, names[i]));
  }
  json_decref(doc);
  /* A refresh after the copies are gone clears the list. */
  for (int i = 0; i < 2; i++)
    assert_int_equal(unlink(test_path(dir, names[i])), 0);
  assert_strata_ok(strata_store_refresh(s));
  doc = dump(s, 0);
  assert_int_equal(json_array_size(json_object_get(doc, "conflicts")), 0);
  json_decref(doc);
  strata_store_close(s);
}

/* Region metadata that is not JSON: the writer refuses it, but the format
 * requires only UTF-8 (docs/FORMAT.md, "Strings"), so a file from another
 * writer may hold it. The dump keeps it as a JSON string. The file is
 * crafted from one the writer made: metadata of the same length replaced
 * in STRINGS, then the two checksums that cover it recomputed (the index
 * checksum over [INDEX.offset, file_size), the header's over [0, 248)). */
static void test_non_json_metadata_in_dump(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "r.region");
  static const char json[] = "{\"k\":\"marker-1\"}";
  static const char text[] = "not JSON: marker"; /* as long as `json` */
  assert_int_equal(strlen(json), strlen(text));
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 4;
  o.name = "foreign";
  o.metadata = json;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  assert_strata_ok(strata_writer_add(w, 0, NULL, 0, NULL, "x", 1));
  assert_strata_ok(strata_writer_commit(w));

  size_t len;
  uint8_t *f = test_read_file(path, &len);
  uint8_t *at = memmem(f, len, json, strlen(json));
  assert_non_null(at);
  memcpy(at, text, strlen(text));
  uint64_t index_off; /* the section table's second entry: INDEX */
  memcpy(&index_off, f + 112 + 16, 8);
  assert_true(index_off < len);
  uint64_t sum = XXH3_64bits(f + index_off, len - index_off);
  memcpy(f + 240, &sum, 8); /* little-endian, as the format and the host */
  sum = XXH3_64bits(f, 248);
  memcpy(f + 248, &sum, 8);
  test_write_file(path, f, len);
  free(f);

  strata_store *s = test_open_store_quiet(dir);
  json_t *doc = dump(s, 0);
  json_t *r = json_array_get(json_object_get(doc, "regions"), 0);
  assert_int_equal(jint(r, "id"), 4);
  json_t *meta = json_object_get(r, "metadata");
  assert_true(json_is_string(meta));
  assert_string_equal(json_string_value(meta), text);
  json_decref(doc);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_staging_in_dump),
      cmocka_unit_test(test_dump_figures),
      cmocka_unit_test(test_read_stats_switch),
      cmocka_unit_test(test_thresholds_in_dump),
      cmocka_unit_test(test_conflicts_in_dump),
      cmocka_unit_test(test_non_json_metadata_in_dump),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
