/* The state collector shared by the JSON dump (state.c) and the metrics
 * text (metrics.c). */
#ifndef STRATA_STATE_H
#define STRATA_STATE_H

#include <jansson.h>

#include "store/store_internal.h"

/* Builds the state document (docs/state.schema.json) into *out. */
int strata__state_collect(strata_store *s, unsigned flags, json_t **out);

#endif /* STRATA_STATE_H */
