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

/* Emits the sample with `from` replaced by `to` once, parses it, and
 * returns the code; the detail must contain `want`. */
static int parse_edited(const char *from, const char *to, const char *want) {
  strata__manifest m, back;
  strata__mregion r[2];
  uint64_t chunks[3];
  fill(&m, r, chunks);
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

static void test_refusals(void **state) {
  (void)state;
  assert_int_equal(parse_edited("\"format\": 1", "\"format\": 2", "format 2"),
                   STRATA_E_VERSION);
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
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_config_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
