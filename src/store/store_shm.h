/* The shared view file, STORE/.strata.shm (store_shm.c): one slot per
 * process that has the store open, read by other processes without opening
 * the store. docs/FORMAT.md ("The shared view file") is the byte-level
 * specification; docs/ARCHITECTURE.md ("The shared view") says how liveness
 * is decided and what is trusted. */
#ifndef STRATA_STORE_SHM_H
#define STRATA_STORE_SHM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

#define STRATA__SHM_FILE ".strata.shm"
#define STRATA__SHM_MAGIC "STRATSHM" /* 8 bytes, no NUL */
#define STRATA__SHM_VERSION 1u
#define STRATA__SHM_HEADER_SIZE 64u
#define STRATA__SHM_SLOT_SIZE 256u
/* Slots in a file this library creates: processes (store handles) that can
 * be registered at once; one more is refused its slot with a WARN and runs
 * without the view. Files with 1 .. STRATA__SHM_MAX_SLOTS slots are read. */
#define STRATA__SHM_SLOTS 256u
#define STRATA__SHM_MAX_SLOTS 65536u
/* How often a store publishes its figures (ms), besides
 * strata_processes_publish() and close: the figures of `strata top`. */
#define STRATA__SHM_PUBLISH_MS 1000u

/* The file's header, at offset 0. */
typedef struct strata__shm_header {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint32_t slot_size;
  uint32_t slot_count;
  uint64_t created_unix_ms;
  uint8_t reserved[32];
} strata__shm_header;
_Static_assert(sizeof(strata__shm_header) == STRATA__SHM_HEADER_SIZE,
               "the header is 64 bytes (docs/FORMAT.md)");

/* The words of a slot (u64 each), written by the slot's owner only and
 * read by anyone, through pwrite()/pread(), never a mapping (store_shm.c
 * says why): `seq` is a sequence lock (odd while the owner writes), so
 * that a reader sees one publication's figures together. */
enum {
  STRATA__SHM_SEQ,
  STRATA__SHM_PID, /* 0: free */
  STRATA__SHM_OPENED_MS,
  STRATA__SHM_ROLE,
  STRATA__SHM_UPDATED_MS,
  STRATA__SHM_SNAPS_OPEN,
  STRATA__SHM_OLDEST_MS,
  STRATA__SHM_SNAPSHOTS,
  STRATA__SHM_GETS,
  STRATA__SHM_MISSES,
  STRATA__SHM_BYTES,
  STRATA__SHM_CRYST,
  STRATA__SHM_CRYST_BYTES,
  STRATA__SHM_EVICTIONS,
  STRATA__SHM_HEAP,
  STRATA__SHM_LIMIT,
  STRATA__SHM_MEM_LEVEL,
  STRATA__SHM_STAGING_BYTES,
  STRATA__SHM_STAGING_USED,
  STRATA__SHM_STAGING_LAYERS,
  STRATA__SHM_WORDS /* 20 of the slot's 32 words; the rest are 0 */
};
_Static_assert(STRATA__SHM_WORDS * 8 <= STRATA__SHM_SLOT_SIZE,
               "a slot's 32 words (docs/FORMAT.md)");

/* The staging pool's figures, filled by the store's staging hook. */
typedef struct strata__shm_staging {
  uint64_t bytes, used_bytes, layers;
} strata__shm_staging;

/* A process's registration: the open file and its slot. */
typedef struct strata__shm {
  int fd; /* holds the slot's OFD lock while open */
  uint32_t index;
  uint64_t seq;       /* the slot's seq as last written (publish_mu) */
  uint64_t pid;       /* as registered */
  uint64_t opened_ms; /* as registered */
  /* The publisher thread (store_shm.c). */
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool running, stop;
  pthread_mutex_t publish_mu; /* one publication at a time */
} strata__shm;

struct strata_store;
/* Registers the store's process in DIR/.strata.shm (created if missing).
 * Never fails the open: when the view cannot be set up (read-only
 * directory, invalid file, no free slot), logs a WARN naming the file and
 * why, and leaves s->shm NULL. Called by strata__store_open. */
void strata__shm_register(struct strata_store *s);
/* Starts / stops the publisher thread (strata__store_start / _stop); _stop
 * publishes a last time. */
void strata__shm_start(struct strata_store *s);
void strata__shm_stop(struct strata_store *s);
/* Frees the slot and unmaps (strata__store_close). NULL s->shm ok. */
void strata__shm_close(struct strata_store *s);
/* Publishes the store's figures now; no-op without a slot. Takes the writer
 * mutex briefly: not to be called with it held. */
void strata__shm_publish(struct strata_store *s);

#endif /* STRATA_STORE_SHM_H */
