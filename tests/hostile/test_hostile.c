/* Hostile fixtures: every file in hostile/files/ must be refused by
 * strata_region_open(STRATA_OPEN_CHECK_INDEX) with the error code and
 * detail EXPECTED.tsv names, and a lazy strata_region_open() must give the
 * same error either at open or in the walk of lazy_walk.h (first use of
 * each index chunk, then verify),
 * and the golden files in hostile/golden/ must open, verify and contain
 * exactly what golden/EXPECTED.txt lists.
 *
 * The fixtures are committed (tests/hostile/gen_hostile.c documents how
 * they were made). Each one had its checksums repaired after the mutation,
 * so the detail substring pins the structural check that must reject it: a
 * file that fails for another reason (a checksum, an earlier check) fails
 * this test. */
#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>

#include "lazy_walk.h"
#include "test_util.h"

#define FILES_DIR STRATA_TEST_SOURCE_DIR "/hostile/files"
#define GOLDEN_DIR STRATA_TEST_SOURCE_DIR "/hostile/golden"
#define MAX_CASES 256

typedef struct hostile_case {
  char file[128];
  char err[64];
  char sub[512];
} hostile_case;

static hostile_case g_cases[MAX_CASES];
static size_t g_ncases;

/* Splits a line in place at tabs; returns the number of fields. Empty
 * fields are kept (unlike strtok). */
static size_t split_tabs(char *line, char **fields, size_t max) {
  size_t n = 0;
  line[strcspn(line, "\r\n")] = '\0';
  char *s = line;
  while (n < max) {
    fields[n++] = s;
    char *t = strchr(s, '\t');
    if (t == NULL)
      break;
    *t = '\0';
    s = t + 1;
  }
  return n;
}

static void load_cases(void) {
  FILE *f = fopen(FILES_DIR "/EXPECTED.tsv", "r");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", FILES_DIR "/EXPECTED.tsv");
    exit(1);
  }
  char line[1024];
  while (fgets(line, sizeof line, f) != NULL) {
    if (line[0] == '#' || line[0] == '\n')
      continue;
    char *fld[3];
    if (split_tabs(line, fld, 3) != 3 || g_ncases == MAX_CASES) {
      fprintf(stderr, "EXPECTED.tsv: bad line: %s\n", line);
      exit(1);
    }
    hostile_case *c = &g_cases[g_ncases++];
    snprintf(c->file, sizeof c->file, "%s", fld[0]);
    snprintf(c->err, sizeof c->err, "%s", fld[1]);
    snprintf(c->sub, sizeof c->sub, "%s", fld[2]);
  }
  fclose(f);
}

/* The error just given is the fixture's: its code, the file's name and,
 * when `exact`, its detail substring. A lazy walk may meet a consequence of
 * the defect first (a sparse region with a slot too few is found by
 * iteration, whose id order then points at an empty slot, before verify
 * counts the slots), so it is held to the code only. */
static void expect_error(const hostile_case *c, const char *mode, int rc,
                         const char *path, bool exact) {
  const char *detail = strata_last_error_detail();
  if (strcmp(strata_err_name(rc), c->err) != 0)
    fail_msg("%s (%s): got %s (%s), expected %s", c->file, mode,
             strata_err_name(rc), detail, c->err);
  if (exact && strstr(detail, c->sub) == NULL)
    fail_msg("%s (%s): detail \"%s\" lacks \"%s\"", c->file, mode, detail,
             c->sub);
  if (strstr(detail, path) == NULL)
    fail_msg("%s (%s): detail \"%s\" does not name the file", c->file, mode,
             detail);
}

/* One fixture: refused by an eager open with the named code, a detail
 * containing the substring and naming the file, and no handle; a lazy open
 * refuses it the same way, or opens it and the walk fails the same way. */
static void test_fixture(void **state) {
  const hostile_case *c = *state;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", FILES_DIR, c->file);
  strata_region *r = NULL;
  int rc = strata_region_open(path, STRATA_OPEN_CHECK_INDEX, &r);
  if (rc == 0) {
    strata_region_close(r);
    fail_msg("%s: opened, expected %s", c->file, c->err);
  }
  expect_error(c, "eager", rc, path, true);
  assert_null(r);

  rc = strata_region_open(path, 0, &r);
  if (rc == 0) {
    rc = lazy_walk(r);
    if (rc == 0)
      fail_msg("%s: lazy open and walk succeeded, expected %s", c->file,
               c->err);
    expect_error(c, "lazy, first use", rc, path, false);
    strata_region_close(r);
  } else {
    expect_error(c, "lazy, open", rc, path, true);
    assert_null(r);
  }
}

/* Every *.region file in files/ is listed (none is silently untested), and
 * there are enough of them. */
static void test_all_listed(void **state) {
  (void)state;
  assert_true(g_ncases >= 60);
  DIR *d = opendir(FILES_DIR);
  assert_non_null(d);
  struct dirent *e;
  size_t regions = 0;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l <= 7 || strcmp(e->d_name + l - 7, ".region") != 0)
      continue;
    regions++;
    bool found = false;
    for (size_t i = 0; i < g_ncases && !found; i++)
      found = strcmp(g_cases[i].file, e->d_name) == 0;
    if (!found)
      fail_msg("%s is not listed in EXPECTED.tsv", e->d_name);
  }
  closedir(d);
  assert_int_equal(regions, g_ncases);
}

/* ---- golden files ------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
  size_t n = strlen(s) / 2;
  assert_true(n <= cap);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
  return n;
}

typedef struct golden_region {
  char file[64];
  strata_region *r;
  uint64_t listed;  /* layer lines seen */
  uint64_t last_id; /* ids must be listed ascending: iteration order */
  strata_region_iter it;
} golden_region;

static void check_layer(golden_region *g, char **f) {
  uint64_t id = strtoull(f[2], NULL, 10);
  const char *name = f[3], *meta = f[4];
  uint64_t size = strtoull(f[5], NULL, 10);
  static uint8_t want[65536];
  size_t wlen = unhex(f[6], want, sizeof want);
  assert_int_equal(wlen, size);

  strata_layer l;
  assert_strata_ok(strata_region_get(g->r, id, &l));
  assert_int_equal(l.id, id);
  assert_int_equal(l.size, size);
  assert_int_equal(l.flags, 0);
  if (size)
    assert_memory_equal(l.data, want, size);
  /* The lean lookup (locator table only) agrees with the full one. */
  const void *data = NULL;
  uint64_t dsize = UINT64_MAX;
  assert_strata_ok(strata_region_get_data(g->r, id, &data, &dsize));
  assert_ptr_equal(data, l.data);
  assert_int_equal(dsize, size);
  if (name[0] == '\0') {
    assert_null(l.name);
    assert_int_equal(l.name_len, 0);
  } else {
    assert_non_null(l.name);
    assert_string_equal(l.name, name);
    assert_int_equal(l.name_len, strlen(name));
    strata_layer b;
    assert_strata_ok(strata_region_get_by_name(g->r, name, strlen(name), &b));
    assert_int_equal(b.id, id);
  }
  if (meta[0] == '\0') {
    assert_null(l.metadata);
  } else {
    assert_non_null(l.metadata);
    assert_string_equal(l.metadata, meta);
    assert_int_equal(l.metadata_len, strlen(meta));
  }
  /* Partial read of the last byte (or an empty read at the end). */
  const void *p;
  assert_strata_ok(
      strata_region_read(g->r, id, size ? size - 1 : 0, size ? 1 : 0, &p));
  if (size)
    assert_int_equal(*(const uint8_t *)p, want[size - 1]);
  /* Iteration returns the layers in exactly the listed order. */
  strata_layer it;
  assert_int_equal(strata_region_next(&g->it, &it), 1);
  assert_int_equal(it.id, id);
  if (g->listed > 0)
    assert_true(id > g->last_id);
  g->last_id = id;
  g->listed++;
}

/* A tombstone of a delta file: found by id with the flag and nothing else,
 * and returned by iteration in its place. */
static void check_tombstone(golden_region *g, char **f) {
  uint64_t id = strtoull(f[2], NULL, 10);
  strata_layer l;
  assert_strata_ok(strata_region_get(g->r, id, &l));
  assert_int_equal(l.id, id);
  assert_int_equal(l.flags, STRATA_LAYER_TOMBSTONE);
  assert_int_equal(l.size, 0);
  assert_null(l.name);
  assert_null(l.metadata);
  strata_layer it;
  assert_int_equal(strata_region_next(&g->it, &it), 1);
  assert_int_equal(it.id, id);
  assert_int_equal(it.flags, STRATA_LAYER_TOMBSTONE);
  assert_true(g->listed == 0 || id > g->last_id);
  g->last_id = id;
  g->listed++;
}

/* A delta file's binding, and that its parent is the golden base file it
 * names (a 1.0 file of this directory). */
static void check_delta(golden_region *g, char **f) {
  strata_region_delta_info d;
  assert_strata_ok(strata_region_delta(g->r, &d));
  assert_int_equal(d.parent_checksum, strtoull(f[2], NULL, 16));
  assert_int_equal(d.base_checksum, strtoull(f[3], NULL, 16));
  assert_int_equal(d.depth, strtoul(f[4], NULL, 10));
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, f[5]);
  strata_region *base;
  assert_strata_ok(strata_region_open(path, 0, &base));
  strata_region_info bi;
  assert_strata_ok(strata_region_info_get(base, &bi));
  assert_int_equal(d.parent_checksum, bi.header_checksum);
  assert_int_equal(strata_region_delta(base, &d), STRATA_E_NOT_FOUND);
  strata_region_close(base);
}

static void finish_region(golden_region *g) {
  if (g->r == NULL)
    return;
  strata_layer l;
  assert_int_equal(strata_region_next(&g->it, &l), 0); /* nothing unlisted */
  assert_int_equal(strata_region_layer_count(g->r), g->listed);
  strata_region_close(g->r);
  g->r = NULL;
}

static void test_golden(void **state) {
  (void)state;
  FILE *f = fopen(GOLDEN_DIR "/EXPECTED.txt", "r");
  assert_non_null(f);
  static char line[200000];
  golden_region g = {0};
  int regions = 0;
  /* Each of the three lookup variants has its golden file: packed dense
   * (flags 3), unpacked dense (1) and sparse (0). */
  bool seen_packed = false, seen_unpacked = false, seen_sparse = false;
  bool seen_delta = false; /* and a delta file of format 1.1 */
  while (fgets(line, sizeof line, f) != NULL) {
    if (line[0] == '#' || line[0] == '\n')
      continue;
    char *fld[8];
    size_t nf = split_tabs(line, fld, 8);
    if (strcmp(fld[0], "region") == 0) {
      assert_int_equal(nf, 8);
      finish_region(&g);
      memset(&g, 0, sizeof g);
      snprintf(g.file, sizeof g.file, "%s", fld[1]);
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, fld[1]);
      assert_strata_ok(strata_region_open(path, 0, &g.r));
      uint64_t bad = UINT64_MAX;
      assert_strata_ok(strata_region_verify(g.r, &bad));
      strata_region_info info;
      assert_strata_ok(strata_region_info_get(g.r, &info));
      assert_int_equal(info.id, strtoull(fld[2], NULL, 10));
      assert_string_equal(info.name, fld[3]);
      assert_string_equal(info.metadata, fld[4]);
      assert_int_equal(info.layer_count, strtoull(fld[5], NULL, 10));
      assert_int_equal(info.flags, strtoull(fld[6], NULL, 10));
      assert_int_equal(info.data_align, strtoul(fld[7], NULL, 10));
      assert_int_equal(info.format_major, 1);
      /* Only delta files are written as 1.1. */
      bool delta = (info.flags & STRATA_REGION_DELTA) != 0;
      assert_int_equal(info.format_minor, delta ? 1 : 0);
      seen_delta |= delta;
      uint64_t dense_packed =
          STRATA_REGION_DENSE_IDS | STRATA_REGION_PACKED_LOCATORS;
      if (delta)
        ; /* its id lookup is one of the three below, checked by its layers */
      else if (info.flags == dense_packed)
        seen_packed = true;
      else if (info.flags == STRATA_REGION_DENSE_IDS)
        seen_unpacked = true;
      else if (info.flags == 0)
        seen_sparse = true;
      else
        fail_msg("%s: unexpected header flags %" PRIu64, fld[1], info.flags);
      strata_region_iter_init(g.r, &g.it);
      regions++;
    } else if (strcmp(fld[0], "delta") == 0) {
      assert_int_equal(nf, 6);
      assert_non_null(g.r);
      assert_string_equal(fld[1], g.file);
      check_delta(&g, fld);
    } else if (strcmp(fld[0], "tombstone") == 0) {
      assert_int_equal(nf, 3);
      assert_non_null(g.r);
      assert_string_equal(fld[1], g.file);
      check_tombstone(&g, fld);
    } else {
      assert_string_equal(fld[0], "layer");
      assert_int_equal(nf, 7);
      assert_non_null(g.r);
      assert_string_equal(fld[1], g.file);
      check_layer(&g, fld);
    }
  }
  finish_region(&g);
  fclose(f);
  assert_int_equal(regions, 4);
  assert_true(seen_packed && seen_unpacked && seen_sparse && seen_delta);
}

int main(void) {
  load_cases();
  struct CMUnitTest *tests = calloc(g_ncases + 2, sizeof *tests);
  if (tests == NULL)
    return 1;
  for (size_t i = 0; i < g_ncases; i++)
    tests[i] = (struct CMUnitTest){.name = g_cases[i].file,
                                   .test_func = test_fixture,
                                   .initial_state = &g_cases[i]};
  tests[g_ncases] = (struct CMUnitTest)cmocka_unit_test(test_all_listed);
  tests[g_ncases + 1] = (struct CMUnitTest)cmocka_unit_test(test_golden);
  /* cmocka_run_group_tests() needs an array of static size; this is the
   * function behind it. */
  int rc = _cmocka_run_group_tests("hostile", tests, g_ncases + 2, NULL, NULL);
  free(tests);
  return rc;
}
