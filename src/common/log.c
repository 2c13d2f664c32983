/* Log lines: timestamp, level, component, key=value fields. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

STRATA_API int strata_log_level_parse(const char *s) {
  int level = strata__log_level_parse(s);
  return level < 0 ? STRATA_E_INVAL : level;
}

/* Set once the unknown $STRATA_LOG has been reported: every store open
 * reads the variable, and one line per process says all there is to say. */
static atomic_bool env_warned;

void strata__logger_init(strata__logger *lg, int level, strata_log_fn fn,
                         void *ctx) {
  const char *env = NULL;
  if (level < STRATA_LOG_TRACE || level > STRATA_LOG_OFF) {
    env = getenv("STRATA_LOG");
    level = strata__log_level_parse(env);
    if (level < 0)
      level = STRATA_LOG_WARN;
  }
  *lg = (strata__logger){.level = level, .fn = fn, .ctx = ctx};
  /* A misspelt level would otherwise silently log at WARN, and the user
   * would wonder where the debug lines went. An application cannot be
   * stopped for it, so it is a warning, not an error (the tools refuse it,
   * docs/CLI.md). */
  if (env != NULL && env[0] != '\0' && strata__log_level_parse(env) < 0 &&
      !atomic_exchange(&env_warned, true)) {
    char value[128];
    strata__log(lg, STRATA_LOG_WARN, "log",
                "msg=\"STRATA_LOG: unknown level; logging at warn\" "
                "value=%s expected=\"trace, debug, info, warn, error, off "
                "or 0-5\"",
                strata__log_quote(value, sizeof value, env));
  }
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

/* The escaping rule of docs/CLI.md ("Escaping"), which the tools apply to
 * every name, path and message they print (tools/common/tool_escape.h; the
 * library cannot include the tools' header, so the rule is written twice,
 * and test_log checks that both agree): a backslash as \\, C0 controls and
 * DEL as \xNN, C1 controls, the bidirectional controls and U+2028/U+2029
 * as \u{NNNN}, a byte that is not valid UTF-8 as \xNN. In a log value a
 * double quote is \" besides. So a value from a file (a file name with a
 * newline, say) can neither forge a line nor reach a terminal as a
 * control. */

/* Decodes strict UTF-8 (RFC 3629) at p: the sequence's length with the
 * code point in *cp, or 0 for an invalid byte. */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end,
                          uint32_t *cp) {
  unsigned c = *p;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  unsigned lo = 0x80, hi = 0xbf;
  uint32_t v;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 1;
    v = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 2;
    v = c & 0x0f;
    lo = c == 0xe0 ? 0xa0 : 0x80; /* not overlong */
    hi = c == 0xed ? 0x9f : 0xbf; /* not a surrogate */
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 3;
    v = c & 0x07;
    lo = c == 0xf0 ? 0x90 : 0x80; /* not overlong */
    hi = c == 0xf4 ? 0x8f : 0xbf; /* not above U+10FFFF */
  } else {
    return 0;
  }
  if ((size_t)(end - p) <= n || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 1; i <= n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    v = (v << 6) | (p[i] & 0x3f);
  }
  *cp = v;
  return n + 1;
}

static bool escaped_cp(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
         cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

/* The form of the unit at p in a quoted value: into out (at most 8 bytes),
 * its length in *outlen; returns the input bytes it stands for. */
static size_t escape_unit(const char *p, const char *end, char out[8],
                          size_t *outlen) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)p;
  uint32_t cp = 0;
  size_t n = utf8_decode(u, (const unsigned char *)end, &cp);
  if (n == 0 || (cp < 0x80 && escaped_cp(cp))) {
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[*u >> 4];
    out[3] = hex[*u & 15];
    *outlen = 4;
    return 1;
  }
  if (cp == '\\' || cp == '"') {
    out[0] = '\\';
    out[1] = (char)cp;
    *outlen = 2;
    return 1;
  }
  if (escaped_cp(cp)) {
    memcpy(out, "\\u{", 3);
    for (int i = 0; i < 4; i++)
      out[3 + i] = hex[(cp >> (12 - 4 * i)) & 15];
    out[7] = '}';
    *outlen = 8;
    return n;
  }
  memcpy(out, p, n);
  *outlen = n;
  return n;
}

const char *strata__log_quote(char *buf, size_t size, const char *s) {
  if (size == 0)
    return buf;
  if (s == NULL)
    s = "";
  const char *end = s + strlen(s);
  char unit[8];
  size_t ulen;
  /* Plain: not empty, no space or '=' (which would split the key=value
   * field), nothing the rule escapes. */
  bool plain = s != end;
  for (const char *p = s; p < end && plain;) {
    size_t n = escape_unit(p, end, unit, &ulen);
    plain = *p != ' ' && *p != '=' && ulen == n && memcmp(unit, p, n) == 0;
    p += n;
  }
  if (plain) {
    snprintf(buf, size, "%s", s);
    return buf;
  }
  /* Quoted. Truncated between units, never inside one, with room kept for
   * the closing quote and the NUL. */
  size_t o = 0;
  if (size < 3) {
    buf[0] = '\0';
    return buf;
  }
  buf[o++] = '"';
  for (const char *p = s; p < end;) {
    size_t n = escape_unit(p, end, unit, &ulen);
    if (o + ulen + 2 > size)
      break;
    memcpy(buf + o, unit, ulen);
    o += ulen;
    p += n;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}
