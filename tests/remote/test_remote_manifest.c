/* The remote tier's pieces that need no cluster: the manifest's JSON
 * (emit, strict parse, each refusal naming what is wrong), object names
 * and the fixed-width version numbers (docs/REMOTE.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "remote/remote_internal.h"

static const char *const HASH = "00112233445566778899aabbccddeeff";

static void fill(strata__manifest *m, strata__mregion *r, uint64_t *chunks) {
  memset(m, 0, sizeof *m);
  m->version = 7;
  m->previous = 6;
  m->chunk_size = 1u << 20;
  m->publisher = "client.1 host=h pid=1";
  m->created = "2026-12-07T00:00:00Z";
  m->regions = r;
  m->n = 2;
  chunks[0] = 0x0123456789abcdefull;
  chunks[1] = 0xfedcba9876543210ull;
  chunks[2] = 42;
  r[0] = (strata__mregion){.file = "a.region",
                           .id = UINT64_MAX, /* above what JSON numbers hold */
                           .name = "alpha",
                           .size = (2u << 20) + 1,
                           .header_checksum = 1,
                           .index_checksum = 2,
                           .chunks = chunks,
                           .nchunks = 3};
  memcpy(r[0].hash, HASH, 33);
  r[1] = (strata__mregion){.file = "b.region",
                           .id = 5,
                           .name = NULL,
                           .size = 10,
                           .chunks = chunks + 2,
                           .nchunks = 1};
  memcpy(r[1].hash, HASH, 33);
}

static void test_roundtrip(void **state) {
  (void)state;
  strata__manifest m, back;
  strata__mregion r[2];
  uint64_t chunks[3];
  fill(&m, r, chunks);
  char *json;
  size_t len;
  assert_int_equal(strata__manifest_emit(&m, &json, &len), 0);
  assert_int_equal(strata__manifest_parse(json, len, "m", &back), 0);
  assert_int_equal(back.version, 7);
  assert_int_equal(back.previous, 6);
  assert_int_equal(back.chunk_size, 1u << 20);
  assert_string_equal(back.publisher, m.publisher);
  assert_int_equal(back.n, 2);
  assert_string_equal(back.regions[0].file, "a.region");
  assert_true(back.regions[0].id == UINT64_MAX);
  assert_string_equal(back.regions[0].name, "alpha");
  assert_int_equal(back.regions[0].size, (2u << 20) + 1);
  assert_int_equal(back.regions[0].nchunks, 3);
  assert_true(back.regions[0].chunks[0] == chunks[0]);
  assert_true(back.regions[0].chunks[1] == chunks[1]);
  assert_int_equal(back.regions[0].header_checksum, 1);
  assert_int_equal(back.regions[0].index_checksum, 2);
  assert_null(back.regions[1].name);
  assert_string_equal(back.regions[1].hash, HASH);
  strata__manifest_free(&back);
  free(json);
}

/* Emits m with `from` replaced by `to` once, parses it, and returns the
 * code; the detail must contain `want`. */
static int edit_parse(const strata__manifest *mp, const char *from,
                      const char *to, const char *want) {
  const strata__manifest m = *mp;
  strata__manifest back;
  char *json;
  size_t len;
  assert_int_equal(strata__manifest_emit(&m, &json, &len), 0);
  char *at = strstr(json, from);
  assert_non_null(at);
  size_t fl = strlen(from), tl = strlen(to);
  char *edited = malloc(len - fl + tl + 1);
  memcpy(edited, json, (size_t)(at - json));
  memcpy(edited + (at - json), to, tl);
  strcpy(edited + (at - json) + tl, at + fl);
  int rc = strata__manifest_parse(edited, strlen(edited), "pool/st: manifest.7",
                                  &back);
  if (rc != 0) {
    const char *d = strata_last_error_detail();
    if (strstr(d, want) == NULL)
      fail_msg("detail \"%s\" lacks \"%s\"", d, want);
    if (strstr(d, "pool/st: manifest.7") == NULL)
      fail_msg("detail \"%s\" does not name the manifest", d);
    assert_int_equal(back.n, 0);
  }
  strata__manifest_free(&back);
  free(edited);
  free(json);
  return rc;
}

/* edit_parse on the sample of fill(). */
static int parse_edited(const char *from, const char *to, const char *want) {
  strata__manifest m;
  strata__mregion r[2];
  uint64_t chunks[3];
  fill(&m, r, chunks);
  return edit_parse(&m, from, to, want);
}

static void test_refusals(void **state) {
  (void)state;
  /* A manifest of a later version: refused before anything else is read. */
  assert_int_equal(parse_edited("\"format\": 1", "\"format\": 3",
                                "manifest version 3 not supported"),
                   STRATA_E_VERSION);
  /* Format 2 without the deltas member in its regions. */
  assert_int_equal(
      parse_edited("\"format\": 1", "\"format\": 2", "regions[0]: "),
      STRATA_E_CORRUPT);
  assert_int_equal(
      parse_edited("\"format\": 1", "\"format\": 1, \"x\": 0", "x"),
      STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"chunk_size\": 1048576",
                                "\"chunk_size\": 1048577", "power of two"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"file\": \"b.region\"",
                                "\"file\": \"../b.region\"",
                                "not a region file name"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"file\": \"b.region\"",
                                "\"file\": \".b.region\"",
                                "not a region file name"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"file\": \"b.region\"",
                                "\"file\": \"a.region\"", "not sorted"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"id\": \"5\"",
                                "\"id\": \"18446744073709551615\"",
                                "both hold region id"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"id\": \"5\"", "\"id\": 5", "regions[1]"),
                   STRATA_E_CORRUPT);
  assert_int_equal(
      parse_edited("\"id\": \"5\"", "\"id\": \"05\"", "not a 64-bit decimal"),
      STRATA_E_CORRUPT);
  assert_int_equal(
      parse_edited("\"size\": 10", "\"size\": 1048577", "array of 2 checksums"),
      STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"size\": 10", "\"size\": 0", "not positive"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"name\": null", "\"name\": \"alpha\"",
                                "both hold region name"),
                   STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"name\": null", "\"name\": 3",
                                "neither a string nor null"),
                   STRATA_E_CORRUPT);
  assert_int_equal(
      parse_edited("\"previous\": 6", "\"previous\": 7", "above the previous"),
      STRATA_E_CORRUPT);
  assert_int_equal(
      parse_edited("000000000000002a", "000000000000002A", "chunks[2]"),
      STRATA_E_CORRUPT);
  assert_int_equal(parse_edited("\"format\": 1,", "\"format\": 1,,",
                                "pool/st: manifest.7: "),
                   STRATA_E_CORRUPT);
  assert_int_equal(
      parse_edited("\"regions\"", "\"regions\": 1, \"regions\"", "duplicate"),
      STRATA_E_CORRUPT);
}

/* The sample with deltas: a.region with a.1.delta and a.2.delta over it,
 * b.region without. */
static void fill_deltas(strata__manifest *m, strata__mregion *r,
                        uint64_t *chunks) {
  strata__mregion base[2];
  fill(m, base, chunks);
  r[0] = base[0];
  r[0].header_checksum = 0x1111;
  r[1] = (strata__mregion){.file = "a.1.delta",
                           .id = r[0].id,
                           .name = "alpha",
                           .depth = 1,
                           .parent_checksum = 0x1111,
                           .size = 7,
                           .header_checksum = 0x2222,
                           .index_checksum = 0x2223,
                           .chunks = chunks + 2,
                           .nchunks = 1};
  memcpy(r[1].hash, "ffeeddccbbaa99887766554433221100", 33);
  r[2] = r[1];
  r[2].file = "a.2.delta";
  r[2].depth = 2;
  r[2].parent_checksum = 0x2222;
  r[2].header_checksum = 0x3333;
  r[2].size = 9;
  memcpy(r[2].hash, "0123456789abcdef0123456789abcdef", 33);
  r[3] = base[1];
  m->regions = r;
  m->n = 4;
}

/* A stack round-trips as format 2: the flat list keeps each base before
 * its deltas in chain order, the deltas carry the region's id and name. */
static void test_deltas_roundtrip(void **state) {
  (void)state;
  strata__manifest m, back;
  strata__mregion r[4];
  uint64_t chunks[3];
  fill_deltas(&m, r, chunks);
  char *json;
  size_t len;
  assert_int_equal(strata__manifest_emit(&m, &json, &len), 0);
  assert_non_null(strstr(json, "\"format\": 2"));
  assert_int_equal(strata__manifest_parse(json, len, "m", &back), 0);
  assert_int_equal(back.format, 2);
  assert_int_equal(back.n, 4);
  const char *files[] = {"a.region", "a.1.delta", "a.2.delta", "b.region"};
  const uint32_t depths[] = {0, 1, 2, 0};
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(back.regions[i].file, files[i]);
    assert_int_equal(back.regions[i].depth, depths[i]);
    assert_int_equal(back.regions[i].size, r[i].size);
    assert_string_equal(back.regions[i].hash, r[i].hash);
    assert_true(back.regions[i].header_checksum == r[i].header_checksum);
    assert_true(back.regions[i].index_checksum == r[i].index_checksum);
    assert_true(back.regions[i].parent_checksum == r[i].parent_checksum);
    assert_int_equal(back.regions[i].nchunks, r[i].nchunks);
    assert_true(back.regions[i].chunks[0] == r[i].chunks[0]);
  }
  assert_true(back.regions[2].id == UINT64_MAX);
  assert_string_equal(back.regions[2].name, "alpha");
  assert_int_equal(strata__manifest_base(&back, 2), 0);
  assert_int_equal(strata__manifest_base(&back, 3), 3);
  assert_null(back.regions[3].name);
  strata__manifest_free(&back);
  free(json);
  /* Without deltas the publisher writes format 1, which the previous
   * release reads. */
  strata__mregion r1[2];
  fill(&m, r1, chunks);
  assert_int_equal(strata__manifest_emit(&m, &json, &len), 0);
  assert_non_null(strstr(json, "\"format\": 1"));
  assert_null(strstr(json, "deltas"));
  free(json);
}

/* A manifest as the release before this one wrote it (format 1, text
 * fixed here) still parses. */
static void test_format1_parses(void **state) {
  (void)state;
  static const char old[] =
      "{\n \"chunk_size\": 1048576,\n \"created\": \"2026-12-07T00:00:00Z\",\n"
      " \"format\": 1,\n \"previous\": 6,\n \"publisher\": \"client.1\",\n"
      " \"regions\": [\n  {\n   \"chunks\": [\n    \"000000000000002a\"\n   "
      "],\n"
      "   \"file\": \"b.region\",\n   \"hash\": "
      "\"00112233445566778899aabbccddeeff\",\n   \"header_checksum\": "
      "\"0000000000000001\",\n   \"id\": \"5\",\n   \"index_checksum\": "
      "\"0000000000000002\",\n   \"name\": null,\n   \"size\": 10\n  }\n"
      " ],\n \"version\": 7\n}";
  strata__manifest m;
  assert_int_equal(strata__manifest_parse(old, strlen(old), "old", &m), 0);
  assert_int_equal(m.format, 1);
  assert_int_equal(m.n, 1);
  assert_string_equal(m.regions[0].file, "b.region");
  assert_int_equal(m.regions[0].depth, 0);
  assert_int_equal(m.regions[0].id, 5);
  strata__manifest_free(&m);
}

static void test_deltas_refused(void **state) {
  (void)state;
  strata__manifest m;
  strata__mregion r[4];
  uint64_t chunks[3];
  fill_deltas(&m, r, chunks);
  /* Out of order: a.2.delta listed first. */
  strata__mregion swapped[4] = {r[0], r[2], r[1], r[3]};
  strata__manifest ms = m;
  ms.regions = swapped;
  assert_int_equal(
      edit_parse(&ms, "\"format\": 2", "\"format\": 2",
                 "regions[0] (a.region): deltas[0] (a.2.delta): "
                 "parent_checksum 0000000000002222 is not the header "
                 "checksum of a.region below it (0000000000001111)"),
      STRATA_E_CORRUPT);
  /* Deltas of another base: the first one's parent is not this base. */
  assert_int_equal(edit_parse(&m, "\"parent_checksum\": \"0000000000001111\"",
                              "\"parent_checksum\": \"0000000000001112\"",
                              "not over this base"),
                   STRATA_E_CORRUPT);
  /* A region entry whose base is missing: deltas alone. */
  assert_int_equal(
      edit_parse(&m, "\"file\": \"a.region\",", "", "regions[0]: "),
      STRATA_E_CORRUPT);
  /* Deltas in a format 1 manifest, and format 2 members it does not know. */
  assert_int_equal(
      edit_parse(&m, "\"format\": 2", "\"format\": 1", "regions[0]: "),
      STRATA_E_CORRUPT);
  assert_int_equal(edit_parse(&m, "\"parent_checksum\"",
                              "\"depth\": 1, \"parent_checksum\"", "depth"),
                   STRATA_E_CORRUPT);
  /* Names: a delta file must be NAME.delta, and appear once. */
  assert_int_equal(edit_parse(&m, "\"file\": \"a.1.delta\"",
                              "\"file\": \"a.1.region\"",
                              "deltas[0] (a.1.region): not a delta file name"),
                   STRATA_E_CORRUPT);
  assert_int_equal(edit_parse(&m, "\"file\": \"a.1.delta\"",
                              "\"file\": \"a.2.delta\"", "listed twice"),
                   STRATA_E_CORRUPT);
  assert_int_equal(edit_parse(&m, "\"file\": \"a.1.delta\"",
                              "\"file\": \"../a.1.delta\"",
                              "not a delta file name"),
                   STRATA_E_CORRUPT);
  assert_int_equal(edit_parse(&m, "\"parent_checksum\": \"0000000000001111\"",
                              "\"parent_checksum\": \"1111\"",
                              "parent_checksum is not 16"),
                   STRATA_E_CORRUPT);
  assert_int_equal(
      edit_parse(&m, "\"deltas\": [", "\"deltas\": 3, \"x\": [", "x"),
      STRATA_E_CORRUPT);
  assert_int_equal(edit_parse(&m, "\"format\": 2", "\"format\": 3",
                              "manifest version 3 not supported"),
                   STRATA_E_VERSION);
}

static void test_names(void **state) {
  (void)state;
  char s[STRATA__OBJ_NAME];
  strata__obj_manifest(s, 18);
  assert_string_equal(s, "manifest.00000000000000000018");
  strata__obj_chunk(s, HASH, 16u << 20, 3);
  assert_string_equal(s,
                      "chunk.00112233445566778899aabbccddeeff.01000000.000003");
  strata__obj_pin(s, "gpu-07");
  assert_string_equal(s, "pin.gpu-07");
  char d[21];
  strata__u64_dec20(d, UINT64_MAX);
  assert_string_equal(d, "18446744073709551615");
  uint64_t v = 0;
  assert_int_equal(strata__parse_dec20(d, 20, &v), 0);
  assert_true(v == UINT64_MAX);
  assert_int_equal(strata__parse_dec20("18446744073709551616", 20, &v), -1);
  assert_int_equal(strata__parse_dec20("0000000000000000001", 19, &v), -1);
  assert_int_equal(strata__parse_dec20("0000000000000000001x", 20, &v), -1);
}

/* A config is checked before anything connects: each refusal names the
 * field. */
static void test_config_refused(void **state) {
  (void)state;
  struct {
    strata_remote_config c;
    const char *want;
  } cases[] = {
      {{.pool = NULL, .name = "s"}, "no pool"},
      {{.pool = "a/b", .name = "s"}, "not a pool name"},
      {{.pool = "a b", .name = "s"}, "not a pool name"},
      {{.pool = "a\nb", .name = "s"}, "not a pool name"},
      {{.pool = "p", .name = ""}, "remote name"},
      {{.pool = "p", .name = "a b"}, "remote name"},
      {{.pool = "p", .name = "s", .node = "x/y"}, "node name"},
      {{.pool = "p", .name = "s", .chunk_size = 3u << 20}, "chunk size"},
      {{.pool = "p", .name = "s", .chunk_size = 128u << 20}, "chunk size"},
      {{.pool = "p", .name = "s", .flags = 1u << 9}, "unknown flags"},
      {{.pool = "p", .name = "s", .role = 7}, "unknown role"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    strata__rconn *c = (strata__rconn *)1;
    assert_int_equal(strata__rconn_open(&cases[i].c, NULL, NULL, &c),
                     STRATA_E_INVAL);
    assert_null(c);
    const char *d = strata_last_error_detail();
    if (strstr(d, cases[i].want) == NULL)
      fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, d, cases[i].want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_deltas_roundtrip),
      cmocka_unit_test(test_format1_parses),
      cmocka_unit_test(test_deltas_refused),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_config_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
