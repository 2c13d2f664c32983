/* Logging: levels from the config and from $STRATA_LOG, the line format
 * (timestamp, level, component, key=value fields), the callback, and what
 * a store logs at each level. */
#include <pthread.h>
#include <regex.h>

#include "test_util.h"

#include "common/log.h"

typedef struct lines {
  char text[16384];
  size_t len;
  int count[STRATA_LOG_OFF + 1];
} lines;

static void collect(void *ctx, int level, const char *line) {
  lines *l = ctx;
  int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", line);
  if (n > 0 && l->len + (size_t)n < sizeof l->text)
    l->len += (size_t)n;
  if (level >= 0 && level <= STRATA_LOG_OFF)
    l->count[level]++;
}

static strata_store *open_logged(const char *dir, int level, lines *l) {
  memset(l, 0, sizeof *l);
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = level;
  c.log_fn = collect;
  c.log_ctx = l;
  strata_store *s = NULL;
  assert_strata_ok(strata_store_open(dir, &c, &s));
  return s;
}

static void test_levels_parse(void **state) {
  (void)state;
  assert_int_equal(strata__log_level_parse("trace"), STRATA_LOG_TRACE);
  assert_int_equal(strata__log_level_parse("DEBUG"), STRATA_LOG_DEBUG);
  assert_int_equal(strata__log_level_parse("Info"), STRATA_LOG_INFO);
  assert_int_equal(strata__log_level_parse("warning"), STRATA_LOG_WARN);
  assert_int_equal(strata__log_level_parse("error"), STRATA_LOG_ERROR);
  assert_int_equal(strata__log_level_parse("off"), STRATA_LOG_OFF);
  assert_int_equal(strata__log_level_parse("3"), STRATA_LOG_WARN);
  assert_int_equal(strata__log_level_parse("loud"), -1);
  assert_int_equal(strata__log_level_parse(""), -1);
  assert_int_equal(strata__log_level_parse(NULL), -1);
  char buf[64];
  assert_string_equal(strata__log_quote(buf, sizeof buf, "plain"), "plain");
  assert_string_equal(strata__log_quote(buf, sizeof buf, "a b"), "\"a b\"");
  assert_string_equal(strata__log_quote(buf, sizeof buf, "q\"\\"),
                      "\"q\\\"\\\\\"");
  assert_string_equal(strata__log_quote(buf, sizeof buf, "\n"), "\"\\x0a\"");
  assert_string_equal(strata__log_quote(buf, sizeof buf, ""), "\"\"");
}

static void test_line_format_and_levels(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  lines l;
  strata_store *s = open_logged(dir, STRATA_LOG_DEBUG, &l);
  strata_proto *p = NULL;
  assert_strata_ok(strata_proto_create(s, 1, "logged", NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, NULL, "x", 1));
  assert_strata_ok(strata_crystallize(s, 1));
  strata_store_close(s);
  /* Every line: ISO-8601 UTC time with milliseconds, a level, a component,
   * then key=value fields. */
  regex_t re;
  assert_int_equal(
      regcomp(
          &re,
          "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
          "(TRACE|DEBUG|INFO|WARN|ERROR) [a-z]+: msg=\"[^\"]+\"( [a-z_]+=[^ "
          "]+)*$",
          REG_EXTENDED | REG_NEWLINE),
      0);
  int n = 0;
  for (char *save = NULL, *line = strtok_r(l.text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save), n++)
    if (regexec(&re, line, 0, NULL, 0) != 0)
      fail_msg("log line does not match the format: %s", line);
  regfree(&re);
  assert_true(n >= 5);
  assert_true(l.count[STRATA_LOG_DEBUG] >= 1); /* the put */
  assert_true(l.count[STRATA_LOG_INFO] >= 3);  /* open, create, crystallize */

  /* At WARN the same work logs nothing. */
  dir = test_tmpdir();
  s = open_logged(dir, STRATA_LOG_WARN, &l);
  assert_strata_ok(strata_proto_create(s, 1, "quiet", NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, NULL, "x", 1));
  assert_strata_ok(strata_crystallize(s, 1));
  strata_store_close(s);
  assert_int_equal(l.len, 0);
}

static void test_env_level(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  test_write_file(test_path(dir, "junk.region"), "junk", 4);
  lines l;
  setenv("STRATA_LOG", "error", 1);
  strata_store *s = open_logged(dir, -1, &l); /* -1: from the environment */
  strata_store_close(s);
  assert_int_equal(l.len, 0); /* the WARN about junk.region is below ERROR */
  setenv("STRATA_LOG", "info", 1);
  s = open_logged(dir, -1, &l);
  strata_store_close(s);
  assert_int_equal(l.count[STRATA_LOG_WARN], 1);
  assert_non_null(strstr(l.text, "file=junk.region error=STRATA_E_CORRUPT"));
  setenv("STRATA_LOG", "nonsense", 1); /* falls back to WARN */
  s = open_logged(dir, -1, &l);
  strata_store_close(s);
  assert_int_equal(l.count[STRATA_LOG_WARN], 1);
  assert_int_equal(l.count[STRATA_LOG_INFO], 0);
  unsetenv("STRATA_LOG");
}

/* A path or free text written through strata__log_quote() stays one
 * key=value field in the finished line: a space or quote in it is
 * quoted and escaped, and a plain value is left as it is. */
static void test_quoted_values_in_a_line(void **state) {
  (void)state;
  lines l;
  memset(&l, 0, sizeof l);
  strata__logger lg;
  strata__logger_init(&lg, STRATA_LOG_DEBUG, collect, &l);
  char q1[128], q2[128], q3[128];
  strata__log(&lg, STRATA_LOG_WARN, "test",
              "msg=\"quoting\" path=%s detail=%s plain=%s",
              strata__log_quote(q1, sizeof q1, "/tmp/a b/x.region"),
              strata__log_quote(q2, sizeof q2, "said \"no\" \\ twice"),
              strata__log_quote(q3, sizeof q3, "/tmp/x.region"));
  assert_int_equal(l.count[STRATA_LOG_WARN], 1);
  assert_non_null(strstr(l.text, " WARN test: msg=\"quoting\" "
                                 "path=\"/tmp/a b/x.region\" "
                                 "detail=\"said \\\"no\\\" \\\\ twice\" "
                                 "plain=/tmp/x.region\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_levels_parse),
      cmocka_unit_test(test_line_format_and_levels),
      cmocka_unit_test(test_env_level),
      cmocka_unit_test(test_quoted_values_in_a_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
