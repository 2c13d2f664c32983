/* Text checks the layers share: strict UTF-8, the checks of a layer's name
 * and metadata, and why json_loadb() refused a text. */
#ifndef STRATA_JSON_CHECK_H
#define STRATA_JSON_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* STRATA_E_NOMEM when memory ran out (jansson reports some failed
 * allocations as syntax errors, or sets no error at all), STRATA_E_INVAL
 * when the text is not JSON. */
int strata__json_refusal(const json_error_t *err, const char *s, size_t len);

/* Whether `s` is one JSON text (RFC 8259, any value at the top). Numbers
 * of any size are accepted: an integer above 2^63-1 or a real beyond a
 * double is valid JSON, though jansson cannot hold it. Returns 0,
 * STRATA_E_INVAL (not JSON: *err says where and why) or STRATA_E_NOMEM. */
int strata__json_check(const char *s, size_t len, json_error_t *err);

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Returns 1 when valid; NUL bytes are valid (callers that forbid
 * them check separately). */
int strata__utf8_valid(const char *s, size_t len);

/* Checks a layer's name or metadata: at most `max` bytes, UTF-8, and with
 * `json` a JSON text. Errors name `path`, the layer and `what`. */
int strata__check_text(const char *path, const char *what, uint64_t id,
                       const char *s, size_t max, bool json);

/* strata__check_text() of the first `len` bytes of `s` (no NUL needed). */
int strata__check_text_n(const char *path, const char *what, uint64_t id,
                         const char *s, size_t len, size_t max, bool json);

/* Whether strata__check_text_n() would accept the text, with nothing
 * formatted: for the per-layer paths (a put, a writer's layer), whose
 * error context costs a snprintf that only a failure should pay. On false
 * the caller builds its context and calls strata__check_text_n() for the
 * message (out of memory while parsing JSON also gives false). */
bool strata__text_ok(const char *s, size_t len, size_t max, bool json);

/* Checks a name argument given as pointer + length (the API's convention
 * for names, <strata.h> "Conventions"): NULL with length 0 is no name;
 * NULL with a length, or an embedded NUL byte, is STRATA_E_INVAL naming
 * `where`, `what` and the byte position. Returns 0 when the name is usable
 * as given (the other checks of a name are the caller's). */
int strata__check_name_arg(const char *where, const char *what,
                           const char *name, size_t len);

/* Whether strata__check_name_arg() would accept the name, with nothing
 * formatted (see strata__text_ok()). */
bool strata__name_arg_ok(const char *name, size_t len);

/* strata__check_name_arg(), then a NUL-terminated copy in *out (malloc'ed,
 * freed by the caller), or NULL for no name. Errors: those of the check,
 * STRATA_E_NOMEM. */
int strata__name_dup(const char *where, const char *what, const char *name,
                     size_t len, char **out);

#endif /* STRATA_JSON_CHECK_H */
