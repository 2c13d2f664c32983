/* Logging: levels from the config and from $STRATA_LOG, the line format
 * (timestamp, level, component, key=value fields), the callback, and what
 * a store logs at each level. */
#include <pthread.h>
#include <regex.h>

#include "test_util.h"

#include "common/log.h"

/* The tools' implementation of the escaping rule, to check that both agree. */
#include "../../tools/common/tool_escape.h"

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
  assert_strata_ok(strata_proto_create(s, 1, "logged", 6, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "x", 1));
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
  assert_strata_ok(strata_proto_create(s, 1, "quiet", 5, NULL, &p));
  assert_strata_ok(strata_proto_put(p, 1, NULL, 0, NULL, "x", 1));
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
  /* An unknown level falls back to WARN, and says so once per process:
   * the first open logs it beside the junk file's warning, the second only
   * the junk file. */
  setenv("STRATA_LOG", "nonsense", 1);
  s = open_logged(dir, -1, &l);
  strata_store_close(s);
  assert_int_equal(l.count[STRATA_LOG_WARN], 2);
  assert_int_equal(l.count[STRATA_LOG_INFO], 0);
  assert_non_null(strstr(l.text, " WARN log: msg=\"STRATA_LOG: unknown level; "
                                 "logging at warn\" value=nonsense expected="));
  s = open_logged(dir, -1, &l);
  strata_store_close(s);
  assert_int_equal(l.count[STRATA_LOG_WARN], 1);
  assert_null(strstr(l.text, "STRATA_LOG"));
  unsetenv("STRATA_LOG");
}

/* The public parser reads what $STRATA_LOG may hold, and refuses the rest
 * with STRATA_E_INVAL. */
static void test_public_level_parse(void **state) {
  (void)state;
  assert_int_equal(strata_log_level_parse("Trace"), STRATA_LOG_TRACE);
  assert_int_equal(strata_log_level_parse("warning"), STRATA_LOG_WARN);
  assert_int_equal(strata_log_level_parse("OFF"), STRATA_LOG_OFF);
  assert_int_equal(strata_log_level_parse("0"), STRATA_LOG_TRACE);
  assert_int_equal(strata_log_level_parse("5"), STRATA_LOG_OFF);
  assert_int_equal(strata_log_level_parse("6"), STRATA_E_INVAL);
  assert_int_equal(strata_log_level_parse("bogus"), STRATA_E_INVAL);
  assert_int_equal(strata_log_level_parse(""), STRATA_E_INVAL);
  assert_int_equal(strata_log_level_parse(NULL), STRATA_E_INVAL);
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

/* The escaping rule (docs/CLI.md, "Escaping") in log values: what could
 * split a line or drive a terminal is escaped, valid text of any script is
 * left alone, and the tools' implementation of the rule agrees. */
static void test_quote_follows_the_escaping_rule(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"a\nb", "\"a\\x0ab\""},             /* newline: no forged line */
      {"\x1b[31mred", "\"\\x1b[31mred\""}, /* ESC */
      {"bell\x07", "\"bell\\x07\""},       /* BEL */
      {"del\x7f", "\"del\\x7f\""},         /* DEL */
      {"nel\xc2\x85", "\"nel\\u{0085}\""}, /* C1: NEL */
      {"\xc2\x9b"
       "2J",
       "\"\\u{009b}2J\""},                     /* C1: CSI */
      {"x\xe2\x80\xaey", "\"x\\u{202e}y\""},   /* RIGHT-TO-LEFT OVERRIDE */
      {"\xe2\x81\xa6i", "\"\\u{2066}i\""},     /* LEFT-TO-RIGHT ISOLATE */
      {"\xe2\x80\xa8", "\"\\u{2028}\""},       /* LINE SEPARATOR */
      {"\xd8\x9c", "\"\\u{061c}\""},           /* ARABIC LETTER MARK */
      {"bad\xff", "\"bad\\xff\""},             /* not UTF-8 */
      {"\xc0\xaf", "\"\\xc0\\xaf\""},          /* overlong '/' */
      {"\xed\xa0\x80", "\"\\xed\\xa0\\x80\""}, /* a surrogate */
      {"cut\xe2\x80", "\"cut\\xe2\\x80\""},    /* truncated sequence */
      {"k=v", "\"k=v\""},                      /* would split the field */
      {"caf\xc3\xa9", "caf\xc3\xa9"},          /* plain: any script */
      {"\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"},
      {"\xf0\x9f\x99\x82", "\xf0\x9f\x99\x82"}, /* U+1F642 */
  };
  char buf[128];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *in = cases[i].in;
    assert_string_equal(strata__log_quote(buf, sizeof buf, in), cases[i].want);
    /* The tools' rule: the same escapes, without the log's quotes. */
    size_t len = strlen(in);
    bool plain =
        strpbrk(in, " =\"") == NULL && len > 0 && tool_escape_is_plain(in, len);
    char *tool = tool_escape_dup(in, len);
    assert_non_null(tool);
    if (plain) {
      assert_string_equal(buf, tool);
    } else {
      assert_int_equal(strlen(buf), strlen(tool) + 2);
      assert_memory_equal(buf + 1, tool, strlen(tool));
    }
    free(tool);
  }

  /* Truncation falls between escapes, never inside one: 13 bytes hold
   * the quotes, "ab", one \u{202e} and the NUL, but not a second. */
  char small[13];
  assert_string_equal(
      strata__log_quote(small, sizeof small, "ab\xe2\x80\xae\xe2\x80\xae"),
      "\"ab\\u{202e}\"");

  /* A file name with a newline leaves one line, whatever it holds. */
  lines l;
  memset(&l, 0, sizeof l);
  strata__logger lg;
  strata__logger_init(&lg, STRATA_LOG_DEBUG, collect, &l);
  char q[256];
  strata__log(&lg, STRATA_LOG_WARN, "store", "msg=\"region loaded\" file=%s",
              strata__log_quote(q, sizeof q,
                                "x.region\n2030-01-01T00:00:00.000Z ERROR "
                                "store: msg=\"forged\""));
  assert_int_equal(l.count[STRATA_LOG_WARN], 1);
  assert_ptr_equal(strchr(l.text, '\n'), l.text + strlen(l.text) - 1);
  assert_non_null(strstr(l.text, "file=\"x.region\\x0a2030-01-01T"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_levels_parse),
      cmocka_unit_test(test_line_format_and_levels),
      cmocka_unit_test(test_env_level),
      cmocka_unit_test(test_public_level_parse),
      cmocka_unit_test(test_quoted_values_in_a_line),
      cmocka_unit_test(test_quote_follows_the_escaping_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
