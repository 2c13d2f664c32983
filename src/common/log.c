/* Log lines: timestamp, level, component, key=value fields. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"

/* Long enough for an error detail (1024) plus the fields around it. */
#define STRATA__LOG_LINE_MAX 2048

static const char *const level_names[] = {"TRACE", "DEBUG", "INFO",
                                          "WARN",  "ERROR", "OFF"};

const char *strata__log_level_name(int level) {
  if (level < STRATA_LOG_TRACE || level > STRATA_LOG_OFF)
    return "?";
  return level_names[level];
}

int strata__log_level_parse(const char *s) {
  if (s == NULL || *s == '\0')
    return -1;
  if (s[0] >= '0' && s[0] <= '5' && s[1] == '\0')
    return s[0] - '0';
  for (int i = STRATA_LOG_TRACE; i <= STRATA_LOG_OFF; i++)
    if (strcasecmp(s, level_names[i]) == 0)
      return i;
  if (strcasecmp(s, "warning") == 0)
    return STRATA_LOG_WARN;
  return -1;
}

void strata__logger_init(strata__logger *lg, int level, strata_log_fn fn,
                         void *ctx) {
  if (level < STRATA_LOG_TRACE || level > STRATA_LOG_OFF) {
    level = strata__log_level_parse(getenv("STRATA_LOG"));
    if (level < 0)
      level = STRATA_LOG_WARN;
  }
  *lg = (strata__logger){.level = level, .fn = fn, .ctx = ctx};
}

void strata__log_emit(const strata__logger *lg, int level,
                      const char *component, const char *fmt, ...) {
  char line[STRATA__LOG_LINE_MAX];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(
      line, sizeof line,
      "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
      ts.tv_nsec / 1000000, strata__log_level_name(level), component);
  if (n < 0 || (size_t)n >= sizeof line)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  if (lg->fn != NULL) {
    lg->fn(lg->ctx, level, line);
    return;
  }
  /* One fprintf per line: stdio locks the stream, so concurrent lines do
   * not interleave. */
  fprintf(stderr, "%s\n", line);
}

const char *strata__log_quote(char *buf, size_t size, const char *s) {
  if (size == 0)
    return buf;
  if (s == NULL)
    s = "";
  bool plain = *s != '\0';
  for (const char *p = s; *p && plain; p++)
    plain = *p != ' ' && *p != '"' && *p != '\\' && *p != '=' &&
            (unsigned char)*p >= 0x20 && *p != 0x7f;
  if (plain) {
    snprintf(buf, size, "%s", s);
    return buf;
  }
  size_t o = 0;
  buf[o++] = '"';
  for (const char *p = s; *p && o + 6 < size; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  if (o + 1 < size)
    buf[o++] = '"';
  buf[o < size ? o : size - 1] = '\0';
  return buf;
}
