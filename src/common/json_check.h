/* Why json_loadb() refused a text. */
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

/* Checks a layer's name or metadata: at most `max` bytes, UTF-8, and with
 * `json` a JSON text. Errors name `path`, the layer and `what`. Defined in
 * writer/writer.c, not here: it needs format/'s strata__utf8_valid(),
 * which common/ may not call. */
int strata__check_text(const char *path, const char *what, uint64_t id,
                       const char *s, size_t max, bool json);

#endif /* STRATA_JSON_CHECK_H */
