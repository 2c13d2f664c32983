/* The remote tier's parts, shared by the files of src/remote/ (built only
 * with librados; docs/REMOTE.md is the protocol):
 *
 *   remote_conn.c      a connection to POOL/NAME, errors that name the pool,
 *                      store and object, object names, whole-object reads,
 *                      HEAD
 *   remote_manifest.c  the manifest's JSON: emit and strict parse
 *   remote_publish.c   the publisher lock (lease + fence) and publish
 *   remote_admin.c     the connection API, describe, gc, unlock
 *   remote_follow.c    the follower: fetch, verify, swap, the sync thread
 *   remote.c           a store's remote: attach/detach, the public entry
 *                      points strata_remote_publish/_sync/_stats_get
 *   remote_stats.c     its figures, updated by the publisher and follower
 *
 * Calls go: remote.c -> remote_publish.c, remote_follow.c; those and
 * remote_admin.c -> remote_manifest.c, remote_conn.c, remote_stats.c.
 * remote_admin.c uses remote_publish.c's lock for gc. No file calls back
 * up. */
#ifndef STRATA_REMOTE_INTERNAL_H
#define STRATA_REMOTE_INTERNAL_H

#include <pthread.h>
#include <rados/librados.h>
#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

#include "common/common.h"
#include "common/log.h"
#include "remote/remote.h"

/* Protocol version (docs/REMOTE.md): HEAD's and the follower state's. */
#define STRATA__REMOTE_FORMAT 1
/* Manifest formats (docs/REMOTE.md, "Versions of the manifest"): 1 lists
 * one file per region, 2 a region's base and its delta files. The
 * publisher writes 1 when no region has deltas, so that followers of the
 * release before keep following such a store. */
#define STRATA__MANIFEST_FORMAT_BASES 1
#define STRATA__MANIFEST_FORMAT_DELTAS 2
/* Most delta files one region entry may list (crystallize stacks at most
 * 4; room for a later policy, and a bound on what a manifest can ask). */
#define STRATA__MANIFEST_MAX_DEPTH 64
/* Longest object name we make: "manifest." + 20 digits, "chunk." + 32 + 1
 * + 8 + 1 + 6, "pin." + 64; with room. */
#define STRATA__OBJ_NAME 96
/* "POOL/NAME" as errors and logs print it. */
#define STRATA__REMOTE_LABEL 192
/* Largest manifest accepted (docs/REMOTE.md). */
#define STRATA__MANIFEST_MAX (64u << 20)
#define STRATA__HEAD_OBJ "head"
#define STRATA__XATTR_VERSION "strata.version"
#define STRATA__XATTR_FENCE "strata.fence"
#define STRATA__XATTR_XXH3 "strata.xxh3"
#define STRATA__LOCK_NAME "strata.publish"

/* ---- remote_conn.c ------------------------------------------------------ */

/* A connected client on POOL with the store's namespace set. Its strings
 * are owned copies; cfg holds the defaults filled in, its string members
 * pointing at the copies. Usable from several threads (librados is). */
typedef struct strata__rconn {
  rados_t cluster;
  rados_ioctx_t io;
  strata_remote_config cfg;
  char label[STRATA__REMOTE_LABEL]; /* "POOL/NAME" */
  /* "client.<instance id> host=<hostname> pid=<pid>": the lock's
   * description and the manifest's "publisher". */
  char whoami[256];
  strata__logger *log; /* the store's logger, or NULL: lines to stderr */
} strata__rconn;

/* Checks the config (role ignored), fills defaults, connects
 * (rados_create2 / conf_read_file / op timeouts / connect / ioctx /
 * namespace). store_dir (may be NULL) makes the default node name. Errors
 * name POOL/NAME and the step. */
int strata__rconn_open(const strata_remote_config *config,
                       const char *store_dir, strata__logger *log,
                       strata__rconn **out);
void strata__rconn_close(strata__rconn *c); /* NULL ok */

/* Records an error from librados (rc < 0, a -errno) with the detail
 * "POOL/NAME: OBJ: WHAT: strerror" (OBJ omitted when NULL) and returns it:
 * librados errnos stay errno values (-ETIMEDOUT, -ENOENT, ...), which the
 * library's error table prints; -ECANCELED is the caller's to map. */
int strata__rfail(const strata__rconn *c, int rc, const char *obj,
                  const char *fmt, ...) STRATA__PRINTF(4, 5);

/* Object names (docs/REMOTE.md, "Where objects live"); `out` holds
 * STRATA__OBJ_NAME bytes. hash is 32 lowercase hex digits. */
void strata__obj_manifest(char *out, uint64_t version);
void strata__obj_chunk(char *out, const char *hash, uint32_t chunk_size,
                       uint32_t index);
void strata__obj_pin(char *out, const char *node);

/* 20-digit zero-padded decimal, as the version and fence xattrs hold;
 * `out` holds 21 bytes. Parse: exactly 20 digits, else -1. */
void strata__u64_dec20(char *out, uint64_t v);
int strata__parse_dec20(const char *s, size_t len, uint64_t *out);
/* The protocol's checksums as text (lowercase hex, fixed width): an
 * XXH3-64 in 17 bytes, a file's XXH3-128 in 33 (high 64 bits first). */
void strata__hex64(char *out, uint64_t v);
void strata__hex128(char *out, XXH128_hash_t h);
/* Parses: `len` decimal digits without overflow; exactly `digits`
 * lowercase hex digits (the value in *out, which may be NULL, when
 * digits <= 16). 0, or -1 when the text is not that. */
int strata__parse_u64_dec(const char *s, size_t len, uint64_t *out);
int strata__parse_hex(const char *s, size_t len, size_t digits, uint64_t *out);

/* Reads a whole object (at most `max` bytes; a larger one is
 * STRATA_E_LIMIT naming it) into a malloc'd buffer (NUL-terminated, len
 * without the NUL), and, when xxh3 is not NULL, its strata.xxh3 xattr
 * (parsed from 16 hex digits; a missing or bad xattr is STRATA_E_CORRUPT
 * naming the object). -ENOENT when it does not exist (with the detail). */
int strata__robj_read(const strata__rconn *c, const char *obj, size_t max,
                      char **data, size_t *len, uint64_t *xxh3);

/* HEAD as read: one read op (body + xattrs). exists false (version 0,
 * fence 0) when there is no head object yet. The body is checked: JSON,
 * format known (else STRATA_E_VERSION), version equal to the xattr (else
 * STRATA_E_CORRUPT naming "POOL/NAME: head"). */
typedef struct strata__head {
  bool exists;
  uint64_t version, fence;
  char manifest[STRATA__OBJ_NAME]; /* "" at version 0 */
  uint64_t manifest_xxh3;
  char publisher[256];
} strata__head;
int strata__head_read(const strata__rconn *c, strata__head *out);
/* HEAD's body for a version (malloc'd JSON). Version 0 (the HEAD a first
 * push creates) has manifest "" and manifest_xxh3 0. */
int strata__head_body(const strata__rconn *c, uint64_t version,
                      const char *manifest, uint64_t manifest_xxh3, char **json,
                      size_t *len);

/* ---- remote_manifest.c ---------------------------------------------------
 * A manifest (docs/REMOTE.md, "Manifests"). In memory the files of a
 * version are one flat list: each base (depth 0), then its delta files
 * (depth 1, 2, ...), bases sorted by file, so that fetching, uploading and
 * gc treat every file alike; a delta carries its region's id and name. */
typedef struct strata__mregion {
  char *file; /* "NAME.region" (a base) or "NAME.K.delta" */
  uint64_t id;
  char *name;     /* NULL: the region has no name */
  uint32_t depth; /* 0: a base; k: the k-th delta over the base before it */
  /* A delta's parent: the header checksum of the file before it in the
   * list (the base at depth 1). 0 for a base. */
  uint64_t parent_checksum;
  uint64_t size;
  char hash[33]; /* XXH3-128 of the file, 32 lowercase hex */
  uint64_t header_checksum, index_checksum;
  uint64_t *chunks; /* XXH3-64 of each chunk */
  uint32_t nchunks; /* ceil(size / chunk_size) */
} strata__mregion;

typedef struct strata__manifest {
  uint32_t format; /* as parsed; emit chooses it from the files */
  uint64_t version, previous;
  uint32_t chunk_size;
  char *publisher, *created;
  /* Every file: bases sorted by file, each followed by its deltas in
   * chain order; no duplicate file, no two bases with one id or name. */
  strata__mregion *regions;
  size_t n;
} strata__manifest;

/* The base of the file at index i (i itself for a base). */
static inline size_t strata__manifest_base(const strata__manifest *m,
                                           size_t i) {
  return i - m->regions[i].depth;
}

/* Emits the JSON document (malloc'd): format 2 when a file is a delta,
 * else format 1. */
int strata__manifest_emit(const strata__manifest *m, char **json, size_t *len);
/* Parses with the library's strict JSON checks: every member present and
 * typed, no unknown member at the top or in a region, format 1 or 2 (else
 * STRATA_E_VERSION "manifest version F not supported"), chunk_size a power
 * of two in range, nchunks matching size, bases sorted and unique, valid
 * region and delta file names, no file twice, each delta's
 * parent_checksum the header checksum of the file before it. Errors:
 * STRATA_E_CORRUPT with a detail "WHAT: line:column: ..." or naming the
 * region. On failure *m is left empty. */
int strata__manifest_parse(const char *json, size_t len, const char *what,
                           strata__manifest *m);
void strata__manifest_free(strata__manifest *m); /* frees members; NULL ok */

/* ---- remote_publish.c ---------------------------------------------------- */

/* The publisher lock on HEAD (docs/REMOTE.md, "The lock"): taken with a
 * lease, renewed by a thread every lease/3, with the fence bumped once
 * taken. */
typedef struct strata__publock strata__publock;
/* Takes the lock (STRATA_E_LOCKED "POOL/NAME: locked by HOLDER" when held
 * elsewhere), creates HEAD at version 0 if missing, bumps the fence. */
int strata__publock_take(strata__rconn *c, strata__publock **out);
/* 0 while the lease is held; STRATA_E_CONFLICT "the publisher lock
 * expired" once a renewal failed. */
int strata__publock_check(const strata__publock *l);
/* _check, and the lease renewed less than half a lease ago: for an
 * operation no fence can guard (gc's removals), issued only while the
 * lock is sure to outlive its way to the OSD for a while. */
int strata__publock_check_fresh(const strata__publock *l);
uint64_t strata__publock_fence(const strata__publock *l);
void strata__publock_release(strata__publock *l); /* unlocks; NULL ok */
/* Who holds the publisher lock: *client ("client.4211"), *cookie and *desc
 * (the holder's whoami, carried in its cookie because rados_list_lockers
 * does not return descriptions), each malloc'd, or all NULL when nobody
 * holds it. Any pointer may be NULL. Errors of librados naming head. */
int strata__publock_holder(const strata__rconn *c, char **client, char **cookie,
                           char **desc);

/* Asynchronous operations on many objects with at most `inflight` in
 * flight (docs/REMOTE.md: max_inflight). For each job in [0, njobs),
 * start() is called with a slot whose completion is made; it issues one
 * aio operation on a->comp (setting a->wop when it made a write op, which
 * is released after completion) and returns 0, returns 1 to skip the job,
 * or an error. done() gets each issued operation's result. The first
 * error (of start or done) stops new jobs; the ones in flight are waited
 * for. a->slot is stable per slot (0 .. inflight-1), for per-slot buffers.
 * Runs on the calling thread. */
typedef struct strata__aio {
  rados_completion_t comp;
  rados_write_op_t wop;
  uint32_t slot;
  size_t job;
  uint64_t size; /* rados_aio_stat's results */
  time_t mtime;
} strata__aio;
int strata__aio_run(size_t njobs, uint32_t inflight,
                    int (*start)(void *ctx, strata__aio *a),
                    int (*done)(void *ctx, strata__aio *a, int rc), void *ctx);

/* Tests only (tests/remote): when set, called by strata__remote_publish
 * after each step with its name ("uploaded", "manifest"); a nonzero return
 * stops the publish there as if the process had died (the lock is
 * released), returning STRATA_E_CANCELED. */
extern int (*strata__publish_test_hook)(const char *step, void *ctx);
extern void *strata__publish_test_hook_ctx;

/* ---- remote.c: a store's remote ------------------------------------------ */

struct strata__follower; /* remote_follow.c */

struct strata__remote {
  strata_store *store;
  strata__rconn *conn;
  int role;
  /* Serializes publish and sync (one at a time per store). */
  pthread_mutex_t op_mu;
  /* Guards stats. */
  pthread_mutex_t stats_mu;
  strata_remote_stats stats;
  struct strata__follower *follower; /* role FOLLOWER */
};

/* Statistics updates (remote_stats.c), under stats_mu: a failure copies
 * strata_last_error_detail() into last_error and counts sync_failures;
 * success clears last_error and stamps last_success_unix_ms. */
void strata__remote_note_failure(struct strata__remote *r);
void strata__remote_note_success(struct strata__remote *r, uint64_t took_ms);
void strata__remote_add(struct strata__remote *r, uint64_t *counter,
                        uint64_t n); /* counter points into r->stats */
void strata__remote_set_versions(struct strata__remote *r, uint64_t served,
                                 uint64_t seen);

/* remote_publish.c */
int strata__remote_publish(struct strata__remote *r, uint64_t *version);

/* remote_follow.c. _start runs inside strata_store_open, after the store
 * is open and claimed (strata__store_claim): it restores the local state
 * (docs/REMOTE.md, "The swap": a copy left between versions is finished
 * before the open returns, within open_timeout_ms), and starts the sync
 * thread unless STRATA_REMOTE_NO_THREAD. _stop stops and joins it. */
int strata__follower_start(struct strata__remote *r);
void strata__follower_stop(struct strata__remote *r);
int strata__follower_sync(struct strata__remote *r, uint64_t *version);

#endif /* STRATA_REMOTE_INTERNAL_H */
