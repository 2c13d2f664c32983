/* The file publisher (src/writer/pubfile.h), with bytes that do not come
 * from strata_writer: a published file appears whole under its name, an
 * abort leaves nothing in the directory, a failed write or fsync is final,
 * prepare(region) runs the reader's validation, and a name whose temporary
 * name cannot fit NAME_MAX fails at open. Each case runs with an O_TMPFILE
 * and with the named temporary file (failpoint.c refuses O_TMPFILE). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

#include "failpoint.h"
#include "test_util.h"

#include "format/format.h"
#include "writer/pubfile.h"

/* The entries of `dir` other than "." and "..", joined by spaces. */
static void list_dir(const char *dir, char *out, size_t cap) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  out[0] = '\0';
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    size_t l = strlen(out);
    snprintf(out + l, cap - l, "%s%s", l ? " " : "", e->d_name);
  }
  closedir(d);
}

static void assert_dir_empty(const char *dir) {
  char names[4096];
  list_dir(dir, names, sizeof names);
  assert_string_equal(names, "");
}

/* A fresh directory, watched by failpoint.c, with O_TMPFILE refused when
 * `named`: then the publisher must fall back to its named temporary file. */
static const char *fresh_dir(bool named) {
  const char *dir = test_tmpdir();
  fp_watch(dir);
  fp_refuse_tmpfile(named);
  return dir;
}

/* After open: with O_TMPFILE the directory is empty; with a named temporary
 * file it holds exactly that, ".NAME.strata-tmp-XXXXXXXX". */
static void assert_temp_state(const char *dir, const strata__pubfile *f,
                              const char *name, bool named) {
  char names[4096];
  list_dir(dir, names, sizeof names);
  if (!named) {
    assert_string_equal(names, "");
    return;
  }
  const char *tp = strata__pubfile_temp_path(f);
  assert_non_null(tp);
  const char *base = strrchr(tp, '/') + 1;
  assert_string_equal(names, base);
  char prefix[512];
  snprintf(prefix, sizeof prefix, ".%s" STRATA__TEMP_MARK, name);
  assert_int_equal(strncmp(base, prefix, strlen(prefix)), 0);
  assert_int_equal(strlen(base), strlen(prefix) + STRATA__TEMP_HEX);
}

typedef struct chunk_job {
  strata__pubfile *f;
  const uint8_t *src;
  size_t first, step, chunk, total;
  int rc;
} chunk_job;

/* Writes chunks first, first + step, ... of src: the threads together write
 * every chunk once, at disjoint offsets, in no particular order. */
static void *write_chunks(void *arg) {
  chunk_job *j = arg;
  j->rc = 0;
  for (size_t c = j->first; j->rc == 0 && c * j->chunk < j->total;
       c += j->step) {
    size_t off = c * j->chunk;
    size_t len = j->total - off < j->chunk ? j->total - off : j->chunk;
    j->rc = strata__pubfile_write_at(j->f, j->src + off, len, off);
  }
  return NULL;
}

static void publish_whole(bool named) {
  const char *dir = fresh_dir(named);
  enum { TOTAL = 1000003, CHUNK = 4099, THREADS = 4 };
  uint8_t *src = malloc(TOTAL);
  assert_non_null(src);
  test_fill_seeded(src, TOTAL, 17);
  /* Something is there already: publish replaces it. */
  test_write_file(test_path(dir, "blob.bin"), "old", 3);

  strata__pubfile *f = NULL;
  assert_strata_ok(strata__pubfile_open(dir, "blob.bin", &f));
  assert_string_equal(strata__pubfile_path(f), test_path(dir, "blob.bin"));
  assert_true(strata__pubfile_fd(f) >= 0);
  char names[4096];
  list_dir(dir, names, sizeof names);
  if (!named)
    assert_string_equal(names, "blob.bin");
  pthread_t t[THREADS];
  chunk_job jobs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (chunk_job){f, src, (size_t)i, THREADS, CHUNK, TOTAL, -1};
    assert_int_equal(pthread_create(&t[i], NULL, write_chunks, &jobs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    assert_strata_ok(jobs[i].rc);
  }
  assert_strata_ok(strata__pubfile_prepare(f, TOTAL, false, NULL));
  /* Prepared, not published: the old file is still what the name holds. */
  size_t len = 0;
  uint8_t *got = test_read_file(test_path(dir, "blob.bin"), &len);
  assert_int_equal(len, 3);
  free(got);
  assert_false(strata__pubfile_placed(f));
  assert_strata_ok(strata__pubfile_publish(f));
  assert_true(strata__pubfile_placed(f));
  /* A second publish is refused. */
  assert_strata_err(strata__pubfile_publish(f), STRATA_E_STATE);
  strata__pubfile_abort(f); /* after publish: only frees */

  list_dir(dir, names, sizeof names);
  assert_string_equal(names, "blob.bin");
  got = test_read_file(test_path(dir, "blob.bin"), &len);
  assert_int_equal(len, TOTAL);
  assert_memory_equal(got, src, TOTAL);
  free(got);
  free(src);
  fp_refuse_tmpfile(false);
}

static void test_publish_tmpfile(void **state) {
  (void)state;
  publish_whole(false);
}

static void test_publish_named(void **state) {
  (void)state;
  publish_whole(true);
}

/* Prepare truncates to the size it is given: a file shorter than the
 * region magic a named temporary file starts with comes out exactly. */
static void test_publish_short_named(void **state) {
  (void)state;
  const char *dir = fresh_dir(true);
  strata__pubfile *f = NULL;
  assert_strata_ok(strata__pubfile_open(dir, "state", &f));
  assert_temp_state(dir, f, "state", true);
  assert_strata_ok(strata__pubfile_write_at(f, "ok", 2, 0));
  assert_strata_ok(strata__pubfile_prepare(f, 2, false, NULL));
  assert_strata_ok(strata__pubfile_publish(f));
  strata__pubfile_abort(f);
  size_t len = 0;
  uint8_t *got = test_read_file(test_path(dir, "state"), &len);
  assert_int_equal(len, 2);
  assert_memory_equal(got, "ok", 2);
  free(got);
  fp_refuse_tmpfile(false);
}

/* Abort at every stage leaves nothing behind. */
static void abort_leaves_nothing(bool named) {
  const char *dir = fresh_dir(named);
  for (int stage = 0; stage < 3; stage++) {
    strata__pubfile *f = NULL;
    assert_strata_ok(strata__pubfile_open(dir, "x.region", &f));
    assert_temp_state(dir, f, "x.region", named);
    if (stage >= 1)
      assert_strata_ok(strata__pubfile_write_at(f, "0123456789", 10, 4096));
    if (stage >= 2)
      assert_strata_ok(strata__pubfile_prepare(f, 5000, false, NULL));
    strata__pubfile_abort(f);
    assert_dir_empty(dir);
  }
  strata__pubfile_abort(NULL);
  fp_refuse_tmpfile(false);
}

static void test_abort_tmpfile(void **state) {
  (void)state;
  abort_leaves_nothing(false);
}

static void test_abort_named(void **state) {
  (void)state;
  abort_leaves_nothing(true);
}

/* A failed write is final: the same write succeeding afterwards does not
 * make the file publishable. */
static void failed_write_is_final(bool named) {
  const char *dir = fresh_dir(named);
  strata__pubfile *f = NULL;
  assert_strata_ok(strata__pubfile_open(dir, "w.bin", &f));
  fp_arm(1, FP_TRANSIENT, EIO); /* the next considered call: the pwrite */
  int rc = strata__pubfile_write_at(f, "abcdef", 6, 0);
  fp_disarm();
  assert_int_equal(rc, -EIO);
  assert_int_equal(fp_call_at(0)->fn, FP_PWRITE);
  assert_non_null(strstr(strata_last_error_detail(), "w.bin: writing 6 bytes"));
  assert_strata_ok(strata__pubfile_write_at(f, "abcdef", 6, 0));
  assert_strata_err(strata__pubfile_prepare(f, 6, false, NULL), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), "earlier write"));
  assert_strata_err(strata__pubfile_publish(f), STRATA_E_STATE);
  strata__pubfile_abort(f);
  assert_dir_empty(dir);
  fp_refuse_tmpfile(false);
}

static void test_failed_write_tmpfile(void **state) {
  (void)state;
  failed_write_is_final(false);
}

static void test_failed_write_named(void **state) {
  (void)state;
  failed_write_is_final(true);
}

/* A failed fsync is final too: a second prepare does not retry it. */
static void test_failed_fsync(void **state) {
  (void)state;
  const char *dir = fresh_dir(false);
  strata__pubfile *f = NULL;
  assert_strata_ok(strata__pubfile_open(dir, "s.bin", &f));
  assert_strata_ok(strata__pubfile_write_at(f, "abc", 3, 0));
  fp_arm(2, FP_TRANSIENT, EIO); /* ftruncate, then the fsync */
  int rc = strata__pubfile_prepare(f, 3, false, NULL);
  fp_disarm();
  assert_int_equal(fp_call_at(1)->fn, FP_FSYNC);
  assert_int_equal(rc, -EIO);
  assert_strata_err(strata__pubfile_prepare(f, 3, false, NULL), STRATA_E_STATE);
  assert_strata_err(strata__pubfile_publish(f), STRATA_E_STATE);
  strata__pubfile_abort(f);
  assert_dir_empty(dir);
}

/* Publish before prepare is refused. */
static void test_publish_unprepared(void **state) {
  (void)state;
  const char *dir = fresh_dir(false);
  strata__pubfile *f = NULL;
  assert_strata_ok(strata__pubfile_open(dir, "u.bin", &f));
  assert_strata_ok(strata__pubfile_write_at(f, "abc", 3, 0));
  assert_strata_err(strata__pubfile_publish(f), STRATA_E_STATE);
  assert_non_null(strstr(strata_last_error_detail(), "not prepared"));
  strata__pubfile_abort(f);
  assert_dir_empty(dir);
}

/* A real region's bytes, made by strata_writer in a directory of its own. */
static uint8_t *make_region_bytes(size_t *len) {
  const char *dir = test_tmpdir();
  const char *path = test_path(dir, "src.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.name = "src";
  o.region_id = 7;
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(path, &o, &w));
  assert_strata_ok(strata_writer_add(w, 1, "one", 3, NULL, "first", 5));
  assert_strata_ok(strata_writer_add(w, 2, NULL, 0, NULL, "second", 6));
  assert_strata_ok(strata_writer_commit(w));
  return test_read_file(path, len);
}

static void region_validated(bool named) {
  size_t len = 0;
  uint8_t *img = make_region_bytes(&len);
  const char *dir = fresh_dir(named);

  /* Valid bytes: the kept region is open, under the final path. */
  strata__pubfile *f = NULL;
  assert_strata_ok(strata__pubfile_open(dir, "copy.region", &f));
  assert_strata_ok(strata__pubfile_write_at(f, img, len, 0));
  strata_region *r = NULL;
  assert_strata_ok(strata__pubfile_prepare(f, len, true, &r));
  assert_non_null(r);
  strata_region_info info;
  assert_strata_ok(strata_region_info_get(r, &info));
  assert_string_equal(info.path, test_path(dir, "copy.region"));
  strata_layer l;
  assert_strata_ok(strata_region_get(r, 2, &l));
  assert_int_equal(l.size, 6);
  assert_memory_equal(l.data, "second", 6);
  assert_strata_ok(strata__pubfile_publish(f));
  strata__pubfile_abort(f);
  strata_region_close(r);
  strata_region *o = NULL;
  assert_strata_ok(strata_region_open(test_path(dir, "copy.region"), 0, &o));
  strata_region_close(o);

  /* Not a region at all: the reader's error, naming the final path. */
  assert_strata_ok(strata__pubfile_open(dir, "bad.region", &f));
  uint8_t junk[8192];
  test_fill_seeded(junk, sizeof junk, 3);
  assert_strata_ok(strata__pubfile_write_at(f, junk, sizeof junk, 0));
  r = NULL;
  assert_strata_err(strata__pubfile_prepare(f, sizeof junk, true, &r),
                    STRATA_E_BAD_MAGIC);
  assert_null(r);
  char want[4200];
  snprintf(want, sizeof want,
           "%s: bad magic at offset 0 (not a strata region file)",
           test_path(dir, "bad.region"));
  assert_string_equal(strata_last_error_detail(), want);
  assert_strata_err(strata__pubfile_publish(f), STRATA_E_STATE);
  strata__pubfile_abort(f);

  /* A region whose header says another region id than its checksum
   * covers: the header checksum refuses it. */
  img[STRATA__H_REGION_ID] ^= 0x40;
  assert_strata_ok(strata__pubfile_open(dir, "flip.region", &f));
  assert_strata_ok(strata__pubfile_write_at(f, img, len, 0));
  assert_strata_err(strata__pubfile_prepare(f, len, true, NULL),
                    STRATA_E_CHECKSUM);
  assert_non_null(
      strstr(strata_last_error_detail(), test_path(dir, "flip.region")));
  strata__pubfile_abort(f);

  char names[4096];
  list_dir(dir, names, sizeof names);
  assert_string_equal(names, "copy.region");
  free(img);
  fp_refuse_tmpfile(false);
}

static void test_region_tmpfile(void **state) {
  (void)state;
  region_validated(false);
}

static void test_region_named(void **state) {
  (void)state;
  region_validated(true);
}

/* A name whose temporary name would pass NAME_MAX fails at open, before
 * anything is created; one byte shorter works. */
static void test_name_too_long(void **state) {
  (void)state;
  const char *dir = fresh_dir(false);
  char name[NAME_MAX + 1];
  size_t fit = NAME_MAX - STRATA__TEMP_NAME_EXTRA;
  memset(name, 'n', fit + 1);
  name[fit + 1] = '\0';
  strata__pubfile *f = NULL;
  assert_strata_err(strata__pubfile_open(dir, name, &f), STRATA_E_LIMIT);
  assert_null(f);
  assert_non_null(strstr(strata_last_error_detail(), "NAME_MAX"));
  assert_dir_empty(dir);
  name[fit] = '\0';
  assert_strata_ok(strata__pubfile_open(dir, name, &f));
  strata__pubfile_abort(f);
  assert_dir_empty(dir);
  assert_strata_err(strata__pubfile_open(dir, "", &f), STRATA_E_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_tmpfile),
      cmocka_unit_test(test_publish_named),
      cmocka_unit_test(test_publish_short_named),
      cmocka_unit_test(test_abort_tmpfile),
      cmocka_unit_test(test_abort_named),
      cmocka_unit_test(test_failed_write_tmpfile),
      cmocka_unit_test(test_failed_write_named),
      cmocka_unit_test(test_failed_fsync),
      cmocka_unit_test(test_publish_unprepared),
      cmocka_unit_test(test_region_tmpfile),
      cmocka_unit_test(test_region_named),
      cmocka_unit_test(test_name_too_long),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
