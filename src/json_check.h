/* Why json_loadb() refused a text. */
#ifndef STRATA_JSON_CHECK_H
#define STRATA_JSON_CHECK_H

#include <jansson.h>
#include <stddef.h>

/* STRATA_E_NOMEM when memory ran out (jansson reports some failed
 * allocations as syntax errors, or sets no error at all), STRATA_E_INVAL
 * when the text is not JSON. */
int strata__json_refusal(const json_error_t *err, const char *s, size_t len);

#endif /* STRATA_JSON_CHECK_H */
