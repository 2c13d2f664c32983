/* Remote stores: one process publishes a store's region files into a Ceph
 * RADOS pool, any number of followers (each with its own local store
 * directory) fetch, verify and serve each new version (docs/REMOTE.md).
 *
 * Built when librados is found (CMake STRATA_WITH_RADOS, AUTO). Without it
 * every function here exists and fails with STRATA_E_STATE, detail "this
 * build of Strata has no RADOS support", and a store config that asks for a
 * remote is refused by strata_store_open() the same way. */
#ifndef STRATA_REMOTE_H
#define STRATA_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "strata/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a store does with its remote (strata_remote_config.role). */
enum strata_remote_role {
  STRATA_REMOTE_NONE = 0, /* no remote (the default) */
  /* strata_remote_publish() uploads the store's region files and moves
   * HEAD; the store is otherwise an ordinary store. */
  STRATA_REMOTE_PUBLISHER = 1,
  /* The store's directory is a local copy of the remote store: the store
   * holds its writer lock for as long as it is open, refuses protos and
   * crystallization (STRATA_E_STATE, "STORE: follows POOL/NAME; it is
   * read-only"), and a background thread moves it to each new version
   * (watch + poll). strata_remote_sync() syncs at once. */
  STRATA_REMOTE_FOLLOWER = 2,
};

/* Flags for strata_remote_config.flags. */
enum strata_remote_flags {
  /* Follower: no background thread; the store changes version only in
   * strata_remote_sync() (what `strata pull` does). */
  STRATA_REMOTE_NO_THREAD = 1u << 0,
  /* Follower: do not watch HEAD, poll only (tests and benchmarks of the
   * polling path). */
  STRATA_REMOTE_NO_WATCH = 1u << 1,
  /* Publisher: do not notify followers after a publish (they poll). */
  STRATA_REMOTE_NO_NOTIFY = 1u << 2,
};

/* Where a store's remote is and how to use it; a member of
 * strata_store_config (remote). Strings are copied at open; NULL or 0
 * fields take the defaults given. */
typedef struct strata_remote_config {
  int role;         /* enum strata_remote_role */
  unsigned flags;   /* enum strata_remote_flags */
  const char *conf; /* ceph.conf; NULL: librados' search ($CEPH_CONF, ...) */
  const char *pool; /* the RADOS pool (required with a role) */
  const char *name; /* the remote store's name, 1-64 of [A-Za-z0-9._-]:
                       its objects' RADOS namespace (required) */
  const char *client_id; /* the cephx client, NULL: "admin" */
  /* A follower's name in its pin object (pin.NODE, read by gc); NULL:
   * HOSTNAME-XXXXXXXX, the hex being a hash of the store's absolute path.
   * Same rules as `name`. */
  const char *node;
  uint32_t chunk_size;   /* power of two, 1-64 MiB; 0: 16 MiB */
  uint32_t poll_ms;      /* follower: HEAD read at least this often; 0: 10000 */
  uint32_t lease_s;      /* publisher lock lease; 0: 30 */
  uint32_t op_timeout_s; /* rados_osd_op_timeout/mon_op_timeout; 0: 30 */
  uint32_t max_inflight; /* aio operations in flight; 0: 16 */
  uint32_t fetch_retries;   /* follower: fetches of a bad file; 0: 3 */
  uint32_t open_timeout_ms; /* follower open with no whole local copy:
                               how long to try to sync; 0: 60000 */
  uint32_t pad_;            /* 0 */
} strata_remote_config;

/* A remote's figures, as the state dump and metrics report them. */
typedef struct strata_remote_stats {
  int role;                      /* enum strata_remote_role */
  uint64_t version_served;       /* follower: the version served; publisher: the
                                    last version it published or found */
  uint64_t version_seen;         /* the highest HEAD version read */
  uint64_t syncs;                /* follower: version changes made */
  uint64_t publishes;            /* publisher: versions published */
  uint64_t last_sync_ms;         /* duration of the last sync or publish */
  uint64_t last_success_unix_ms; /* wall clock of the last success, 0 none */
  uint64_t bytes_fetched;
  uint64_t bytes_uploaded;
  uint64_t sync_failures;
  /* The last error ("" if the last attempt succeeded), as
   * strata_last_error_detail() gave it. */
  char last_error[512];
} strata_remote_stats;

/* Publishes the store's crystallized region files as a new version of its
 * remote (the store was opened with role STRATA_REMOTE_PUBLISHER): takes
 * the publisher lock, uploads the chunks that are missing, creates the
 * manifest and swaps HEAD (docs/REMOTE.md, "The publisher"). *version
 * (may be NULL) gets the version now at HEAD; when nothing changed since
 * HEAD's version no new version is made and *version is HEAD's.
 * Errors: STRATA_E_STATE (no publisher role; open protos), STRATA_E_LOCKED
 * (another publisher: "POOL/NAME: locked by ..."), STRATA_E_CONFLICT (HEAD
 * moved, or the lock was lost, before the swap: nothing changed),
 * STRATA_E_IO and the errno values of librados (-ETIMEDOUT, -ENOSPC, ...)
 * with a detail naming the pool, store and object. */
STRATA_API int strata_remote_publish(strata_store *store, uint64_t *version);

/* Follower: reads HEAD and, when it is newer than the version served,
 * fetches, verifies and swaps to it before returning. *version (may be
 * NULL) gets the version served afterwards. On failure the store keeps
 * serving what it served. Errors: STRATA_E_STATE (not a follower), the
 * errors of librados, STRATA_E_CHECKSUM / STRATA_E_CORRUPT (a file still
 * bad after fetch_retries fetches), STRATA_E_VERSION (a manifest of an
 * unknown format). Thread-safe; concurrent calls are serialized. */
STRATA_API int strata_remote_sync(strata_store *store, uint64_t *version);

/* Fills *stats; STRATA_E_STATE when the store has no remote. */
STRATA_API int strata_remote_stats_get(strata_store *store,
                                       strata_remote_stats *stats);

/* ---- administration (strata remote ls|status|gc|unlock) ------------------
 * A connection to POOL/NAME without a store. config->role is ignored. */
typedef struct strata_remote strata_remote;

STRATA_API int strata_remote_connect(const strata_remote_config *config,
                                     strata_remote **out);
STRATA_API void strata_remote_disconnect(strata_remote *remote);

/* A JSON document (malloc'd, NUL-terminated; free() it) describing the
 * remote: {"pool", "name", "head": {version, fence, manifest, publisher} or
 * null, "lock": {"holder", "cookie"} or null, "versions": [{version,
 * regions, bytes, publisher, created}...] (manifests present, oldest
 * first; `bytes` counts every file, delta files included; with `regions`
 * nonzero each also has "files": [{file, id (a decimal string), name or
 * null, size, hash, chunks, depth (0 a base, k the k-th delta file over
 * the base listed before it)}]), "pins": [{node,
 * serving, fetching (null when idle), age_s}], "objects": n, "bytes": n}.
 * A manifest that cannot be read appears as {version, object, error}. */
STRATA_API int strata_remote_describe(strata_remote *remote, int regions,
                                      char **json);

/* Garbage collection (docs/REMOTE.md, "Garbage"): keeps the last `keep`
 * versions (0: 10) up to HEAD, pinned versions, and what they reference;
 * removes every other object of the store. verify: also reads every kept
 * chunk and removes the ones whose bytes do not match their checksum.
 * Takes the publisher lock (STRATA_E_LOCKED when a publish runs). */
typedef struct strata_remote_gc_result {
  uint64_t objects_kept, objects_removed, bytes_removed;
  uint64_t chunks_corrupt; /* verify: removed for a bad checksum */
} strata_remote_gc_result;
STRATA_API int strata_remote_gc(strata_remote *remote, unsigned keep,
                                int verify, strata_remote_gc_result *out);

/* Breaks the publisher lock at once (an operator who knows the holder is
 * dead). *holder (may be NULL) gets the broken holder's description,
 * malloc'd, or NULL when there was no lock. */
STRATA_API int strata_remote_unlock(strata_remote *remote, char **holder);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_REMOTE_H */
