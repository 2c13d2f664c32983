/* Strata state, statistics and metrics of a store.
 *
 * Part of the public API: included by <strata.h>, and self-contained (it
 * includes what it uses), so it may also be included alone. */
#ifndef STRATA_PUBLIC_STATE_H
#define STRATA_PUBLIC_STATE_H

#include <stdint.h>

#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for strata_dump_state(). */
enum strata_dump_flags {
  /* Also list the layer index of every region: id, name, offset, length
   * and checksum of each layer (large for large regions). */
  STRATA_DUMP_VERBOSE = 1u << 0,
};

/* Renders the store's whole state as one JSON document (described by
 * docs/state.schema.json): version and config, memory and its thresholds,
 * regions (files, mappings, resident bytes, generations), protos, the heap
 * pool, statistics, snapshots and what waits for reclamation. On success *json
 * holds a NUL-terminated string that the caller releases with
 * strata_free(). The regions are those of one snapshot; the figures are
 * read at one moment. Thread-safe. Errors: STRATA_E_INVAL, STRATA_E_NOMEM,
 * STRATA_E_LIMIT (max_readers threads hold slots). */
STRATA_API int strata_dump_state(strata_store *store, unsigned flags,
                                 char **json);

/* The same figures in the Prometheus text exposition format (version
 * 0.0.4): strata_* metrics with HELP and TYPE lines, per-region series
 * labelled region_id and region. Release *text with strata_free(). */
STRATA_API int strata_metrics_text(strata_store *store, char **text);

/* Releases a string returned by strata_dump_state() or
 * strata_metrics_text(). Accepts NULL. */
STRATA_API void strata_free(void *p);

/* Read-side statistics, summed over the reader slots. A snapshot counts in
 * its own strata_txn (the caller's memory) and adds its counts to its
 * thread's slot at strata_read_end(): no shared write on the read path, and
 * the figures cover ended snapshots. */
typedef struct strata_read_stats {
  uint64_t gets;         /* strata_get, _get_by_name and get_many lookups */
  uint64_t misses;       /* of those, layers or regions not found */
  uint64_t bytes_served; /* content bytes of the layers found */
  uint64_t snapshots;    /* outermost snapshots begun */
  uint64_t peak_readers; /* most snapshots seen open at once */
} strata_read_stats;

STRATA_API int strata_read_stats_get(strata_store *store,
                                     strata_read_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PUBLIC_STATE_H */
