/* What the layers above (src/strata.c, src/state/) use of the remote tier.
 * With librados the functions are in remote.c; without it remote_none.c
 * provides them (a role other than NONE is then refused). */
#ifndef STRATA_REMOTE_REMOTE_H
#define STRATA_REMOTE_REMOTE_H

#include "strata/remote.h"
#include "strata/store.h"

struct strata__remote;

/* Called by strata_store_open (src/strata.c) once the store is open, before
 * it is handed out, with the caller's config (its strings are valid during
 * the call only; the remote copies them). Role NONE: *out = NULL, 0.
 * Publisher: connects. Follower: connects, claims the store
 * (strata__store_claim) and starts the follower (strata__follower_start).
 * On failure nothing is left running and the caller closes the store. */
int strata__remote_attach(strata_store *s, const strata_remote_config *config,
                          struct strata__remote **out);
/* Stops the follower thread and disconnects; before the store closes.
 * NULL ok. */
void strata__remote_detach(struct strata__remote *r);

/* The remote's part of the state dump (docs/REMOTE.md, "Reported state";
 * docs/state.schema.json, "remote"): a new jansson object, NULL when out of
 * memory. Any thread while the remote is attached (remote_follow.c). */
struct json_t *strata__remote_json(struct strata__remote *r);

#endif /* STRATA_REMOTE_REMOTE_H */
