/* The writer: argument checks, duplicate detection, state errors, abort and
 * commit leaving the directory clean, atomic replacement, streaming layers
 * and hash seeds chosen around colliding ids. */
#include <dirent.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "test_util.h"

#include "format/format.h"

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static strata_writer *open_writer(const char *path) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 1;
  o.name = "w";
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  return w;
}

static void test_bad_options(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "x.region");
  strata_writer *w = NULL;
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = "ok";
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  struct {
    const char *name;
    uint32_t align;
    const char *metadata;
    int err;
    const char *detail;
  } cases[] = {
      {NULL, 0, NULL, STRATA_E_INVAL, "needs a name"},
      {"", 0, NULL, STRATA_E_INVAL, "needs a name"},
      {longname, 0, NULL, STRATA_E_LIMIT, "region name is 299 bytes"},
      {"bad\xC0\xAF", 0, NULL, STRATA_E_INVAL, "UTF-8"},
      {"a", 3, NULL, STRATA_E_INVAL, "alignment 3"},
      {"a", 8, NULL, STRATA_E_INVAL, "alignment 8"},
      {"a", 131072, NULL, STRATA_E_INVAL, "alignment 131072"},
      {"a", 0, "{bad", STRATA_E_INVAL, "not JSON"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    strata_writer_options_init(&o);
    o.name = cases[k].name;
    o.align = cases[k].align;
    o.metadata = cases[k].metadata;
    assert_strata_err(strata_writer_open(path, &o, &w), cases[k].err);
    assert_non_null(strstr(strata_last_error_detail(), cases[k].detail));
    assert_non_null(strstr(strata_last_error_detail(), path));
  }
  strata_writer_options_init(&o);
  o.name = "ok";
  assert_strata_err(strata_writer_open(NULL, &o, &w), STRATA_E_INVAL);
  assert_strata_err(strata_writer_open(path, NULL, &w), STRATA_E_INVAL);
  assert_strata_err(
      strata_writer_open(test_path(dir, "no/such/dir/x.region"), &o, &w),
      -ENOENT);
  assert_int_equal(count_entries(dir), 0);
}

static void test_bad_layers_do_not_poison(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "x.region");
  strata_writer *w = open_writer(path);
  char longname[5000];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  char *bigmeta = malloc((1u << 20) + 10);
  assert_non_null(bigmeta);
  memset(bigmeta, ' ', (1u << 20) + 9);
  bigmeta[0] = '1';
  bigmeta[(1u << 20) + 9] = '\0';

  assert_strata_ok(strata_writer_add(w, 7, "seven", 5, NULL, "7", 1));
  assert_strata_err(strata_writer_add(w, 7, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(), "layer 7"));
  assert_strata_err(strata_writer_add(w, 8, "seven", 5, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(), "\"seven\""));
  assert_strata_err(strata_writer_add(w, 9, "", 0, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_strata_err(strata_writer_add(w, 9, "\xED\xA0\x80", 3, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_strata_err(
      strata_writer_add(w, 9, longname, strlen(longname), NULL, "x", 1),
      STRATA_E_LIMIT);
  assert_strata_err(strata_writer_add(w, 9, NULL, 0, "[1,", "x", 1),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "not JSON"));
  assert_strata_err(strata_writer_add(w, 9, NULL, 0, bigmeta, "x", 1),
                    STRATA_E_LIMIT);
  free(bigmeta);
  /* None of that reached the file: the next good layer and commit work. */
  assert_strata_ok(
      strata_writer_add(w, 9, "nine", 4, "{\"a\":[1,2]}", "99", 2));
  assert_strata_ok(strata_writer_commit(w));

  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  assert_int_equal(strata_region_layer_count(r), 2);
  strata_layer l;
  assert_strata_ok(strata_region_get_by_name(r, "nine", 4, &l));
  assert_int_equal(l.id, 9);
  assert_memory_equal(l.data, "99", 2);
  assert_strata_ok(strata_region_verify(r, NULL));
  strata_region_close(r);
  assert_int_equal(count_entries(dir), 1);
}

/* Ids that arrive in ascending order need no id set (only the last id can
 * repeat); the first id out of order builds it over everything so far. */
static void test_duplicates_ascending_then_not(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_writer *w = open_writer(test_path(dir, "d.region"));
  for (uint64_t id = 10; id < 5010; id += 2)
    assert_strata_ok(strata_writer_add(w, id, NULL, 0, NULL, "x", 1));
  assert_strata_err(strata_writer_add(w, 5008, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE); /* the last one */
  assert_strata_err(strata_writer_add(w, 10, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE); /* the first one, out of order */
  assert_strata_err(strata_writer_add(w, 2500, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_strata_ok(strata_writer_add(w, 11, NULL, 0, NULL, "y", 1));
  assert_strata_ok(strata_writer_add(w, 6000, NULL, 0, NULL, "z", 1));
  assert_strata_err(strata_writer_add(w, 11, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_strata_err(strata_writer_add(w, 6000, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "d.region"), 0, &r));
  assert_int_equal(strata_region_layer_count(r), 2500 + 2);
  const void *data;
  uint64_t size;
  assert_strata_ok(strata_region_get_data(r, 11, &data, &size));
  assert_memory_equal(data, "y", 1);
  strata_region_close(r);
}

static int progress_must_not_run(void *ctx, const strata_progress *p) {
  (void)ctx;
  (void)p;
  fail_msg("a progress callback past struct_size was read");
  return 0;
}

/* Opens a writer with *o (struct_size as set), writes one layer and
 * commits; then checks what the region got. */
static void write_and_check(const char *path, const strata_writer_options *o,
                            uint64_t rid, const char *name, uint32_t align) {
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, o, &w));
  assert_strata_ok(strata_writer_add(w, 1, NULL, 0, NULL, "x", 1));
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_int_equal(info.id, rid);
  assert_string_equal(info.name, name);
  assert_int_equal(info.data_align, align);
  strata_region_close(r);
}

/* strata_writer_options grows like strata_store_config ("Growing
 * structures" in strata.h): an older caller's struct_size gets the
 * defaults past it, a newer or malformed one is refused. */
static void test_options_struct_size(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "s.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  assert_int_equal(o.struct_size, sizeof o);
  assert_int_equal(o.align, 64);
  assert_null(o.name);
  assert_null(o.progress);

  /* An older options struct: as if the header had no alignment or progress
   * fields yet. The bytes past its size hold values that open would refuse
   * (alignment 3) or call (a callback that fails the test) if it read
   * them. */
  o.region_id = 7;
  o.name = "old";
  o.struct_size = offsetof(strata_writer_options, align);
  o.align = 3;
  o.progress = progress_must_not_run;
  write_and_check(path, &o, 7, "old", 64);
  /* The same options in memory of exactly the older size: open reads
   * nothing past it (checked by the address sanitizer build). */
  unsigned char *old = malloc(o.struct_size);
  assert_non_null(old);
  memcpy(old, &o, o.struct_size);
  write_and_check(path, (const strata_writer_options *)(void *)old, 7, "old",
                  64);
  free(old);
  /* The full size reads every field (here a valid alignment). */
  strata_writer_options_init(&o);
  o.region_id = 8;
  o.name = "new";
  o.align = 4096;
  write_and_check(path, &o, 8, "new", 4096);

  /* A newer, larger struct is refused. */
  strata_writer *w = NULL;
  o.struct_size = sizeof o + 8;
  assert_strata_err(strata_writer_open(path, &o, &w), STRATA_E_INVAL);
  assert_null(w);
  assert_non_null(strstr(strata_last_error_detail(), path));
  assert_non_null(
      strstr(strata_last_error_detail(), "strata_writer_options.struct_size"));
  assert_non_null(strstr(strata_last_error_detail(), "newer"));
  /* So are a size that ends inside a field, and 0 (not initialized, as a
   * designated initializer leaves it). */
  o.struct_size = sizeof o - 4;
  assert_strata_err(strata_writer_open(path, &o, &w), STRATA_E_INVAL);
  assert_non_null(
      strstr(strata_last_error_detail(), "strata_writer_options.struct_size"));
  strata_writer_options zero = {.region_id = 9, .name = "zero"};
  assert_strata_err(strata_writer_open(path, &zero, &w), STRATA_E_INVAL);
  assert_non_null(
      strstr(strata_last_error_detail(), "strata_writer_options_init()"));
  assert_null(w);
  /* Only the committed region is in the directory: nothing was started. */
  assert_int_equal(count_entries(dir), 1);
}

static void test_empty_region_metadata_means_none(void **state) {
  (void)state;
  const char *path = test_path(test_tmpdir(), "m.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = "m";
  o.metadata = "";
  strata_writer *w;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_string_equal(info.metadata, "");
  strata_region_close(r);
}

/* JSON puts no limit on numbers (RFC 8259, section 6): metadata with an
 * integer above 2^63-1, or a real beyond a double, is JSON, though jansson
 * cannot hold it; it is stored byte for byte. A text that is not JSON
 * beyond such a number is still refused. */
static void test_metadata_big_numbers(void **state) {
  (void)state;
  const char *path = test_path(test_tmpdir(), "big.region");
  static const char region_meta[] = "{\"serial\": 18446744073709551616}";
  static const char *const layer_meta[] = {
      "9223372036854775808",
      "{\"n\": -9223372036854775809, \"x\": [1e400, 2]}",
      "123456789012345678901234567890",
  };
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = "big";
  o.metadata = region_meta;
  strata_writer *w;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  for (uint64_t i = 0; i < 3; i++)
    assert_strata_ok(strata_writer_add(w, i, NULL, 0, layer_meta[i], "x", 1));
  /* The grammar still decides around a big number. */
  assert_strata_err(strata_writer_add(w, 3, NULL, 0,
                                      "{\"n\": 18446744073709551616,}", "x", 1),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "layer 3: metadata is "
                                                     "not JSON"));
  assert_strata_err(
      strata_writer_add(w, 3, NULL, 0, "18446744073709551616 1", "x", 1),
      STRATA_E_INVAL);
  assert_strata_ok(strata_writer_commit(w));

  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_string_equal(info.metadata, region_meta);
  for (uint64_t i = 0; i < 3; i++) {
    strata_layer l;
    assert_strata_ok(strata_region_get(r, i, &l));
    assert_string_equal(l.metadata, layer_meta[i]);
  }
  strata_region_close(r);

  /* The region metadata's check is the same. */
  o.metadata = "[18446744073709551616";
  assert_strata_err(strata_writer_open(path, &o, &w), STRATA_E_INVAL);
  assert_non_null(
      strstr(strata_last_error_detail(), "region metadata is not JSON"));
}

static void test_state_errors(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "x.region");
  strata_writer *w = open_writer(path);
  assert_strata_err(strata_writer_append(w, "a", 1), STRATA_E_STATE);
  assert_strata_err(strata_writer_append_zeros(w, 1), STRATA_E_STATE);
  assert_strata_err(strata_writer_end_layer(w), STRATA_E_STATE);
  assert_strata_ok(strata_writer_begin_layer(w, 1, NULL, 0, NULL));
  assert_strata_err(strata_writer_begin_layer(w, 2, NULL, 0, NULL),
                    STRATA_E_STATE);
  /* Committing in the middle of a layer fails and leaves nothing. */
  assert_strata_err(strata_writer_commit(w), STRATA_E_STATE);
  assert_int_equal(count_entries(dir), 0);
}

static void test_abort_leaves_nothing(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_writer *w = open_writer(test_path(dir, "x.region"));
  for (uint64_t i = 0; i < 100; i++)
    assert_strata_ok(strata_writer_add(w, i, NULL, 0, NULL, "abc", 3));
  strata_writer_abort(w);
  strata_writer_abort(NULL);
  assert_int_equal(count_entries(dir), 0);
}

static void test_commit_replaces(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "x.region");
  for (int version = 1; version <= 3; version++) {
    strata_writer *w = open_writer(path);
    char data[16];
    snprintf(data, sizeof data, "version %d", version);
    assert_strata_ok(
        strata_writer_add(w, 0, NULL, 0, NULL, data, strlen(data)));
    assert_strata_ok(strata_writer_commit(w));
    strata_region *r;
    assert_strata_ok(strata_region_open(path, 0, &r));
    strata_layer l;
    assert_strata_ok(strata_region_get(r, 0, &l));
    assert_int_equal(l.size, strlen(data));
    assert_memory_equal(l.data, data, l.size);
    strata_region_close(r);
    assert_int_equal(count_entries(dir), 1);
  }
}

static void test_streaming(void **state) {
  (void)state;
  const char *path = test_path(test_tmpdir(), "s.region");
  strata_writer *w = open_writer(path);
  XXH3_state_t *x = XXH3_createState();
  XXH3_64bits_reset(x);
  assert_strata_ok(strata_writer_begin_layer(w, 5, "streamed", 8, "{}"));
  uint8_t chunk[4096];
  for (int k = 0; k < 50; k++) {
    memset(chunk, k, sizeof chunk);
    assert_strata_ok(strata_writer_append(w, chunk, sizeof chunk - (size_t)k));
    XXH3_64bits_update(x, chunk, sizeof chunk - (size_t)k);
  }
  static const uint8_t zeros[100000];
  assert_strata_ok(strata_writer_append_zeros(w, sizeof zeros));
  XXH3_64bits_update(x, zeros, sizeof zeros);
  assert_strata_ok(strata_writer_append(w, "end", 3));
  XXH3_64bits_update(x, "end", 3);
  assert_strata_ok(strata_writer_end_layer(w));
  /* An empty layer is a layer too. */
  assert_strata_ok(strata_writer_add(w, 6, NULL, 0, NULL, NULL, 0));
  assert_strata_ok(strata_writer_commit(w));

  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  strata_layer l;
  assert_strata_ok(strata_region_get(r, 5, &l));
  uint64_t want = 50 * 4096 - 49 * 50 / 2 + sizeof zeros + 3;
  assert_int_equal(l.size, want);
  assert_int_equal(l.checksum, XXH3_64bits_digest(x));
  assert_memory_equal((const uint8_t *)l.data + l.size - 3, "end", 3);
  assert_int_equal(((const uint8_t *)l.data)[l.size - 4], 0);
  assert_strata_ok(strata_region_get(r, 6, &l));
  assert_int_equal(l.size, 0);
  assert_strata_ok(strata_region_verify(r, NULL));
  strata_region_close(r);
  XXH3_freeState(x);
}

/* Inverse of murmur3's fmix64, so the test can pick ids by their hash. */
static uint64_t mul_inverse(uint64_t a) {
  uint64_t x = a; /* Newton's iteration: correct bits double each step */
  for (int i = 0; i < 6; i++)
    x *= 2 - a * x;
  return x;
}
static uint64_t unmix(uint64_t h) {
  h ^= h >> 33;
  h *= mul_inverse(0xc4ceb9fe1a85ec53ull);
  h ^= h >> 33;
  h *= mul_inverse(0xff51afd7ed558ccdull);
  h ^= h >> 33;
  return h;
}

static void test_colliding_ids_change_seed(void **state) {
  (void)state;
  /* 100 ids; under seed 0, 80 of them land in bucket 0 (top 7 bits zero),
   * more than a bucket may hold, so the writer must pick another seed. */
  uint64_t ids[100];
  for (int i = 0; i < 100; i++) {
    uint64_t h =
        i < 80 ? (uint64_t)(i + 1) * 1000003ull : ((uint64_t)i << 56) | 12345;
    ids[i] = unmix(h);
    assert_int_equal(strata__id_hash(ids[i], 0), h);
  }
  const char *path = test_path(test_tmpdir(), "c.region");
  strata_writer *w = open_writer(path);
  for (int i = 0; i < 100; i++)
    assert_strata_ok(strata_writer_add(w, ids[i], NULL, 0, NULL, &ids[i], 8));
  assert_strata_ok(strata_writer_commit(w));
  size_t len;
  uint8_t *img = test_read_file(path, &len);
  assert_int_not_equal(strata__rd64(img + STRATA__H_HASH_SEED), 0);
  free(img);
  strata_region *r;
  assert_strata_ok(strata_region_open(path, 0, &r));
  for (int i = 0; i < 100; i++) {
    strata_layer l;
    assert_strata_ok(strata_region_get(r, ids[i], &l));
    assert_memory_equal(l.data, &ids[i], 8);
  }
  strata_region_close(r);
}

/* Names that collide under seed 0 after the sparse ids were placed: the
 * perfect hash took seed 0 and moved the entries into slot order, then a
 * name bucket overflowed, so commit must find the id order again from the
 * entries as they now lie and start over with another seed. 100 named
 * layers (7 name-bucket bits), 70 of whose names share their bucket under
 * seed 0, with random ids added out of order. Every id and every name must
 * be found, ID_ORDER must hold (iteration in id order, verify). */
static void test_colliding_names_after_ids_placed(void **state) {
  (void)state;
  enum { N = 100, COLLIDE = 70 };
  char names[N][24];
  int k = 0;
  for (uint64_t c = 0; k < COLLIDE; c++) {
    char t[24];
    int len = snprintf(t, sizeof t, "n%" PRIu64, c);
    if (strata__bucket(strata__name_hash(t, (size_t)len, 0), 7) == 0)
      memcpy(names[k++], t, sizeof t);
  }
  for (; k < N; k++)
    snprintf(names[k], sizeof names[k], "other-%d", k);
  uint64_t ids[N], seed = 23;
  for (int i = 0; i < N; i++)
    ids[i] = test_splitmix(&seed);
  const char *path = test_path(test_tmpdir(), "names.region");
  strata_writer *w = open_writer(path);
  for (int i = N - 1; i >= 0; i--) /* out of id order: the radix sort */
    assert_strata_ok(strata_writer_add(w, ids[i], names[i], strlen(names[i]),
                                       NULL, &ids[i], 8));
  assert_strata_ok(strata_writer_commit(w));
  size_t len;
  uint8_t *img = test_read_file(path, &len);
  assert_int_not_equal(strata__rd64(img + STRATA__H_HASH_SEED), 0);
  assert_int_equal(
      strata__rd64(img + STRATA__H_FLAGS) & STRATA_REGION_DENSE_IDS, 0);
  free(img);
  strata_region *r;
  assert_strata_ok(strata_region_open(path, STRATA_OPEN_CHECK_INDEX, &r));
  for (int i = 0; i < N; i++) {
    strata_layer l;
    assert_strata_ok(strata_region_get(r, ids[i], &l));
    assert_memory_equal(l.data, &ids[i], 8);
    assert_string_equal(l.name, names[i]);
    assert_strata_ok(
        strata_region_get_by_name(r, names[i], strlen(names[i]), &l));
    assert_int_equal(l.id, ids[i]);
  }
  strata_region_iter it;
  strata_region_iter_init(r, &it);
  strata_layer l;
  uint64_t prev = 0;
  int seen = 0;
  while (strata_region_next(&it, &l) == 1) {
    assert_true(seen == 0 || l.id > prev);
    prev = l.id;
    seen++;
  }
  assert_int_equal(seen, N);
  uint64_t bad = 0;
  assert_strata_ok(strata_region_verify(r, &bad));
  strata_region_close(r);
}

/* A duplicate id is refused when it is added, wherever the first copy is
 * (the first or last layer added) and whether the ids came in order so far
 * or not; the detail names the id and the layer that holds it. */
static void test_duplicates_random_order(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_writer *w = open_writer(test_path(dir, "r.region"));
  uint64_t seed = 7, first = 0, last = 0;
  for (int i = 0; i < 3000; i++) {
    last = test_splitmix(&seed);
    if (i == 0)
      first = last;
    assert_strata_ok(strata_writer_add(w, last, NULL, 0, NULL, "x", 1));
  }
  assert_strata_ok(strata_writer_add(w, 0, NULL, 0, NULL, "0", 1));
  assert_strata_ok(strata_writer_add(w, UINT64_MAX, NULL, 0, NULL, "m", 1));
  char want[128];
  snprintf(want, sizeof want,
           "layer %" PRIu64 ": duplicate id (already added as layer number 0",
           first);
  assert_strata_err(strata_writer_add(w, first, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(), want));
  snprintf(want, sizeof want,
           "layer %" PRIu64
           ": duplicate id (already added as layer number 2999",
           last);
  assert_strata_err(strata_writer_add(w, last, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(), want));
  assert_strata_err(strata_writer_add(w, 0, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(), "layer number 3000"));
  assert_strata_err(strata_writer_add(w, UINT64_MAX, NULL, 0, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(), "layer number 3001"));
  /* The refused layers left nothing behind. */
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "r.region"), 0, &r));
  assert_int_equal(strata_region_layer_count(r), 3002);
  assert_strata_ok(strata_region_verify(r, NULL));
  strata_region_close(r);
}

/* STRATA_WRITER_CHECK_IDS_AT_COMMIT: a repeat of the id added just before
 * is refused at once; any other repeated id (ids 0 and UINT64_MAX among
 * them) is found by commit, which names the id and both
 * layers in the order added and publishes nothing; without a repeat the
 * region is what a writer without the flag writes. */
static void test_duplicates_at_commit(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "c.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 1;
  o.name = "w";
  o.flags = STRATA_WRITER_CHECK_IDS_AT_COMMIT;
  uint64_t ids[2000], seed = 11;
  for (int i = 0; i < 2000; i++)
    ids[i] = test_splitmix(&seed);
  ids[1000] = 0;
  ids[1001] = UINT64_MAX;
  struct {
    int first, again; /* the positions of a repeated id, or -1 */
  } cases[] = {{-1, -1}, {17, 1500}, {0, 1999}, {1000, 1600}, {1001, 1003}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    strata_writer *w = NULL;
    assert_strata_ok(strata_writer_open(path, &o, &w));
    for (int i = 0; i < 2000; i++) {
      uint64_t id = i == cases[c].again ? ids[cases[c].first] : ids[i];
      assert_strata_ok(strata_writer_add(w, id, NULL, 0, NULL, &id, 8));
      if (i == 5) { /* the same id twice in a row: refused at once */
        assert_strata_err(strata_writer_add(w, id, NULL, 0, NULL, "x", 1),
                          STRATA_E_DUPLICATE);
        assert_non_null(strstr(strata_last_error_detail(),
                               "already added as layer number 5"));
      }
    }
    if (cases[c].first < 0) {
      assert_strata_ok(strata_writer_commit(w));
      strata_region *r = NULL;
      assert_strata_ok(strata_region_open(path, 0, &r));
      assert_int_equal(strata_region_layer_count(r), 2000);
      for (int i = 0; i < 2000; i++) {
        const void *p;
        uint64_t len;
        assert_strata_ok(strata_region_get_data(r, ids[i], &p, &len));
        assert_memory_equal(p, &ids[i], 8);
      }
      assert_strata_ok(strata_region_verify(r, NULL));
      strata_region_close(r);
      assert_int_equal(unlink(path), 0);
      continue;
    }
    assert_strata_err(strata_writer_commit(w), STRATA_E_DUPLICATE);
    char want[160];
    snprintf(want, sizeof want,
             "c.region: layer %" PRIu64
             ": duplicate id (added as layer number %d "
             "and again as number %d, counting from 0)",
             ids[cases[c].first], cases[c].first, cases[c].again);
    assert_non_null(strstr(strata_last_error_detail(), want));
    assert_int_equal(count_entries(dir), 0); /* nothing published or left */
  }
}

/* Writes n layers with ids[0..n-1] in that order (each layer's content is
 * its id) and checks that every id reads back with its content. */
static void write_ids(const char *path, const uint64_t *ids, uint64_t n) {
  strata_writer *w = open_writer(path);
  for (uint64_t i = 0; i < n; i++)
    assert_strata_ok(
        strata_writer_add(w, ids[i], NULL, 0, NULL, &ids[i], sizeof ids[i]));
  assert_strata_ok(strata_writer_commit(w));
  strata_region *r = NULL;
  assert_strata_ok(strata_region_open(path, 0, &r));
  assert_int_equal(strata_region_layer_count(r), n);
  for (uint64_t i = 0; i < n; i++) {
    const void *data;
    uint64_t size;
    assert_strata_ok(strata_region_get_data(r, ids[i], &data, &size));
    assert_int_equal(size, sizeof ids[i]);
    assert_memory_equal(data, &ids[i], sizeof ids[i]);
  }
  assert_strata_ok(strata_region_verify(r, NULL));
  strata_region_close(r);
}

/* Large sets of sparse ids in random order round-trip through commit's
 * radix sort and slot ordering: fully random 64-bit ids (every digit
 * sorts), ids that differ only in their low 20 bits (the high digits'
 * passes are skipped), and the ids already sorted (no sort at all). The
 * same input gives the same file, byte for byte. */
static void test_random_ids_round_trip(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  enum { N = 200000 };
  uint64_t *ids = malloc(N * sizeof *ids);
  assert_non_null(ids);
  uint64_t seed = 11;
  for (uint64_t i = 0; i < N; i++)
    ids[i] = test_splitmix(&seed); /* a bijection of i: distinct */
  ids[N / 2] = 0;
  ids[N - 1] = UINT64_MAX;
  char *a = strdup(test_path(dir, "a.region"));
  char *b = strdup(test_path(dir, "b.region"));
  write_ids(a, ids, N);
  write_ids(b, ids, N);
  size_t la, lb;
  uint8_t *fa = test_read_file(a, &la), *fb = test_read_file(b, &lb);
  assert_int_equal(la, lb);
  assert_memory_equal(fa, fb, la);
  free(fa);
  free(fb);

  /* Low 20 bits only, shuffled: 0x5000000000 + a permutation of 0..N-1
   * spread with gaps so that the ids stay sparse. */
  for (uint64_t i = 0; i < N; i++)
    ids[i] = 0x5000000000ull + i * 3;
  for (uint64_t i = N - 1; i > 0; i--) {
    uint64_t j = test_splitmix(&seed) % (i + 1), t = ids[i];
    ids[i] = ids[j];
    ids[j] = t;
  }
  write_ids(a, ids, N);
  /* The same ids in ascending order. */
  for (uint64_t i = 0; i < N; i++)
    ids[i] = 0x5000000000ull + i * 3;
  write_ids(b, ids, N);
  free(a);
  free(b);
  free(ids);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_bad_layers_do_not_poison),
      cmocka_unit_test(test_duplicates_ascending_then_not),
      cmocka_unit_test(test_options_struct_size),
      cmocka_unit_test(test_empty_region_metadata_means_none),
      cmocka_unit_test(test_metadata_big_numbers),
      cmocka_unit_test(test_state_errors),
      cmocka_unit_test(test_abort_leaves_nothing),
      cmocka_unit_test(test_commit_replaces),
      cmocka_unit_test(test_streaming),
      cmocka_unit_test(test_colliding_ids_change_seed),
      cmocka_unit_test(test_colliding_names_after_ids_placed),
      cmocka_unit_test(test_duplicates_random_order),
      cmocka_unit_test(test_duplicates_at_commit),
      cmocka_unit_test(test_random_ids_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
