/* Logging: one line per event, "TIMESTAMP LEVEL component: key=value ...",
 * to stderr or to the application's callback. The level test is inline so
 * that a disabled level costs one comparison and no formatting. */
#ifndef STRATA_LOG_H
#define STRATA_LOG_H

#include <stddef.h>

#include "common/common.h"

typedef struct strata__logger {
  int level; /* events below this level are dropped */
  strata_log_fn fn;
  void *ctx;
} strata__logger;

/* Sets up a logger from a config level (-1 = $STRATA_LOG, else WARN). */
void strata__logger_init(strata__logger *lg, int level, strata_log_fn fn,
                         void *ctx);

/* Parses "trace" .. "off" (case-insensitive) or a digit; -1 if unknown. */
int strata__log_level_parse(const char *s);
const char *strata__log_level_name(int level);

void strata__log_emit(const strata__logger *lg, int level,
                      const char *component, const char *fmt, ...)
    STRATA__PRINTF(4, 5);

#define strata__log(lg, lvl, component, ...)                                   \
  do {                                                                         \
    if ((lvl) >= (lg)->level)                                                  \
      strata__log_emit((lg), (lvl), (component), __VA_ARGS__);                 \
  } while (0)

/* Writes `s` as a log value into buf: unchanged when it has no space, '=',
 * quote, backslash or character that the escaping rule of docs/CLI.md
 * escapes (controls, C1 and bidirectional controls, invalid UTF-8); else in
 * double quotes, with a quote as \" and the rest by that rule. Every value
 * that comes from a file (a path, a name, a library detail) goes through
 * it, so that it cannot forge a line. Truncates to fit, between escapes;
 * returns buf. */
const char *strata__log_quote(char *buf, size_t size, const char *s);

#endif /* STRATA_LOG_H */
