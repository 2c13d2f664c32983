/* Name arguments are pointer + length everywhere (<strata.h>,
 * "Conventions"): a name cut out of a larger buffer is taken without a
 * copy and without its NUL; NULL with length 0 is no name; NULL with a
 * length and a NUL byte inside the length are refused with STRATA_E_INVAL
 * naming the position, changing nothing. Covers the writer, protos and
 * strata_find_region(). */
#include <sys/stat.h>

#include "test_util.h"

/* A path "alpha/one/two" gives its components as slices: none of them is
 * NUL-terminated where it ends. */
static const char path_buf[] = "alpha/one/two";
#define SLICE(off, len) (path_buf + (off)), (size_t)(len)

static void test_writer_takes_slices(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  const char *file = test_path(dir, "w.region");
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 1;
  o.name = "alpha";
  strata_writer *w = NULL;
  assert_strata_ok(strata_writer_open(file, &o, &w));
  assert_strata_ok(strata_writer_add(w, 1, SLICE(6, 3), NULL, "1", 1));
  assert_strata_ok(strata_writer_begin_layer(w, 2, SLICE(10, 3), "{}"));
  assert_strata_ok(strata_writer_append(w, "2", 1));
  assert_strata_ok(strata_writer_end_layer(w));
  assert_strata_ok(strata_writer_add(w, 3, NULL, 0, NULL, "3", 1));
  /* The refusals, each naming what it refused; none poisons the writer. */
  assert_strata_err(strata_writer_add(w, 4, NULL, 3, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "layer 4: name"));
  assert_non_null(strstr(strata_last_error_detail(), "NULL with length 3"));
  assert_strata_err(strata_writer_add(w, 4, "ab\0cd", 5, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), file));
  assert_non_null(
      strstr(strata_last_error_detail(), "NUL byte at position 2 of its 5"));
  assert_strata_err(strata_writer_begin_layer(w, 4, "\0", 1, NULL),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "position 0"));
  /* A slice that ends just before a name already given is another name;
   * the whole name again is a duplicate. */
  assert_strata_ok(strata_writer_add(w, 5, SLICE(6, 2), NULL, "5", 1));
  assert_strata_err(strata_writer_add(w, 6, "one", 3, NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  /* Messages quote a slice as given, never the bytes after it. */
  assert_strata_err(strata_writer_add(w, 6, SLICE(6, 3), NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(),
                         "layer 6: duplicate name \"one\" (layer 1 has it)"));
  assert_strata_ok(strata_writer_commit(w));

  strata_region *r;
  assert_strata_ok(strata_region_open(file, 0, &r));
  assert_int_equal(strata_region_layer_count(r), 4);
  strata_layer l;
  assert_strata_ok(strata_region_get_by_name(r, "one", 3, &l));
  assert_int_equal(l.id, 1);
  assert_int_equal(l.name_len, 3);
  assert_string_equal(l.name, "one");
  assert_strata_ok(strata_region_get_by_name(r, "two", 3, &l));
  assert_int_equal(l.id, 2);
  assert_strata_ok(strata_region_get_by_name(r, "on", 2, &l));
  assert_int_equal(l.id, 5);
  assert_strata_ok(strata_region_get(r, 3, &l));
  assert_null(l.name);
  strata_region_close(r);
}

static void test_proto_takes_slices(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  strata_store *s = test_open_store_quiet(dir);
  strata_proto *p = NULL;
  /* "alpha" out of the path, not NUL-terminated at its end. */
  assert_strata_ok(strata_proto_create(s, 1, SLICE(0, 5), NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, SLICE(6, 3), NULL, "one", 3));
  assert_strata_ok(strata_proto_put(p, 2, NULL, 0, NULL, "two", 3));

  strata_proto *q = NULL;
  assert_strata_err(strata_proto_create(s, 2, "be\0ta", 5, NULL, &q),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), dir));
  assert_non_null(strstr(strata_last_error_detail(), "region name \"be\""));
  assert_non_null(strstr(strata_last_error_detail(), "position 2"));
  assert_strata_err(strata_proto_create(s, 2, NULL, 0, NULL, &q),
                    STRATA_E_INVAL);
  assert_strata_err(strata_proto_create(s, 2, NULL, 4, NULL, &q),
                    STRATA_E_INVAL);
  assert_strata_err(strata_proto_put(p, 3, "x\0", 2, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "region 1: layer 3"));
  assert_non_null(strstr(strata_last_error_detail(), "position 1 of its 2"));
  assert_strata_err(strata_proto_put(p, 3, NULL, 1, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_strata_err(strata_proto_put(p, 3, SLICE(6, 3), NULL, "x", 1),
                    STRATA_E_DUPLICATE);
  assert_non_null(strstr(strata_last_error_detail(),
                         "region 1 (alpha): layer 3: name \"one\" is already "
                         "used by layer 1"));
  assert_strata_err(strata_proto_put(p, 3, "o\xff/two", 2, NULL, "x", 1),
                    STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(),
                         "region 1 (alpha): layer 3: name is not valid UTF-8"));
  /* The refusals changed nothing: no region 2, no layer 3, and no file
   * named after a cut name. */
  struct stat st;
  assert_int_equal(stat(test_path(dir, "be.region"), &st), -1);

  strata_txn t;
  assert_strata_ok(strata_read_begin(s, &t));
  assert_int_equal(strata_store_region_count(&t), 1);
  uint64_t rid = 0;
  assert_strata_ok(strata_find_region(&t, SLICE(0, 5), &rid));
  assert_int_equal(rid, 1);
  /* A prefix of a name is not the name; a NUL inside is refused. */
  assert_strata_err(strata_find_region(&t, SLICE(0, 4), &rid),
                    STRATA_E_NO_REGION);
  assert_non_null(strstr(strata_last_error_detail(), "\"alph\""));
  assert_strata_err(strata_find_region(&t, "alpha\0", 6, &rid), STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "position 5"));
  strata_layer l;
  assert_strata_err(strata_get(&t, 1, 3, &l), STRATA_E_NOT_FOUND);
  assert_strata_ok(strata_get_by_name(&t, 1, SLICE(6, 3), &l));
  assert_int_equal(l.id, 1);
  assert_int_equal(l.name_len, 3);
  assert_string_equal(l.name, "one");
  assert_strata_ok(strata_get(&t, 1, 2, &l));
  assert_null(l.name);
  strata_read_end(&t);

  /* The names survive crystallization as given. */
  assert_strata_ok(strata_crystallize(s, 1));
  assert_int_equal(stat(test_path(dir, "alpha.region"), &st), 0);
  strata_store_close(s);
  s = test_open_store_quiet(dir);
  assert_strata_ok(strata_read_begin(s, &t));
  assert_strata_ok(strata_find_region(&t, "alpha", 5, &rid));
  assert_strata_ok(strata_get_by_name(&t, rid, "one", 3, &l));
  assert_int_equal(l.id, 1);
  strata_read_end(&t);
  strata_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_writer_takes_slices),
      cmocka_unit_test(test_proto_takes_slices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
