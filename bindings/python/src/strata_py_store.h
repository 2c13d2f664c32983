/* What store.c, snapshot.c and proto.c share (and staging.c may use): the
 * Store object, the reader thread that owns every Python snapshot, and the
 * Snapshot's txn. strata_py.h is the contract of the whole extension; this
 * header is the part of it that only the store side needs.
 *
 * Why snapshots are begun on a thread of the Store's own (store.c, "the
 * reader thread"): a strata_txn uses the reader slot of the thread that
 * began it, and a thread's slot is cleared when the thread exits
 * (src/store/ebr.c, slot_release), after which the snapshot no longer
 * protects what it reads. A Python Snapshot, and the buffers exported from
 * its layers, can outlive the Python thread that took it (a worker thread
 * hands a numpy array to the main thread and exits), so no Python thread's
 * slot may carry one. Every Python snapshot of a Store is begun and ended
 * on the Store's reader thread instead, which lives until the store is
 * closed; the snapshots share its slot, as nested snapshots of one thread
 * do (reclamation waits for the oldest open one).
 *
 * Everything here runs with the GIL held, which also serializes the
 * lookups that write the shared slot's sampling ring (strata_get() and
 * the other reads through a Snapshot's txn must be made with the GIL
 * held; calls that release it must not read through the txn meanwhile). */
#ifndef STRATA_PY_STORE_H
#define STRATA_PY_STORE_H

#include "strata_py.h"

typedef struct strata_py_reader strata_py_reader; /* store.c */

typedef enum strata_py_store_state {
  STRATA_PY_STORE_OPEN = 0,
  /* close() was called while snapshots or calls were still running:
   * nothing new may start; the store is closed when the last ends. */
  STRATA_PY_STORE_CLOSING = 1,
  STRATA_PY_STORE_CLOSED = 2,
} strata_py_store_state;

/* A link in the Store's list of unfinished Snapshots (borrowed: a Snapshot
 * unlinks itself when it finishes). */
typedef struct strata_py_snaplink {
  PyObject *snapshot;
  struct strata_py_snaplink *prev, *next;
} strata_py_snaplink;

typedef struct strata_py_store {
  PyObject_HEAD strata_store *store;
  PyObject *path; /* str, for messages and processes() */
  pid_t pid;      /* the process that opened it */
  strata_py_store_state state;
  Py_ssize_t busy;          /* calls running with the GIL released */
  Py_ssize_t snapshots;     /* Snapshots begun and not finished */
  strata_py_snaplink *live; /* those Snapshots */
  strata_py_reader *reader;
} strata_py_store;

extern PyObject *strata_py_StoreType;
extern PyObject *strata_py_SnapshotType;
extern PyObject *strata_py_ProtoType;

/* 0 when `s` is open and in the process that opened it; otherwise raises
 * strata.Error ("store DIR is closed") or the fork error, and returns -1.
 * Every Store, Snapshot and Proto method calls it first. */
int strata_py_store_check(strata_py_store *s);

/* Around a library call made with the GIL released: _enter() checks the
 * store (as strata_py_store_check) and counts the call, so that close()
 * from another thread defers the real strata_store_close() until it is
 * done; _leave() uncounts it, closing a store that close() left CLOSING.
 * Both with the GIL held. */
int strata_py_store_enter(strata_py_store *s);
void strata_py_store_leave(strata_py_store *s);

/* Begins `txn` on the store's reader thread and links `link` into the
 * store's list (store checked first). 0, or -1 with an exception. */
int strata_py_store_read_begin(strata_py_store *s, strata_txn *txn,
                               strata_py_snaplink *link);
/* Ends `txn` on the reader thread and unlinks `link`; closes a CLOSING
 * store whose last snapshot this was. In a forked child it only unlinks:
 * the child has no reader thread, and the parent's snapshot is the
 * parent's to end. */
void strata_py_store_read_end(strata_py_store *s, strata_txn *txn,
                              strata_py_snaplink *link);

/* snapshot.c: a new Snapshot of `store` (store.snapshot()). */
PyObject *strata_py_snapshot_new(strata_py_store *store);

/* snapshot.c: the txn of Snapshot `snap` after the checks every lookup
 * makes (an open Snapshot of an open store, in this process), or NULL with
 * an exception. Valid while `snap` is alive and open; read through it with
 * the GIL held. An object that keeps using what it got through the txn
 * after the call (a Staged copy) holds an export on the Snapshot
 * (strata_py_owner_export) until it is released, so that neither the
 * snapshot nor the store ends under it. */
const strata_txn *strata_py_snapshot_txn(PyObject *snap);
/* snapshot.c: the Store of Snapshot `snap` (borrowed: the Snapshot holds
 * it), open or not; for staging.c's calls on the store. */
strata_py_store *strata_py_snapshot_store(PyObject *snap);

/* proto.c: a new Proto over `proto` of region `region_id`. */
PyObject *strata_py_proto_new(strata_py_store *store, strata_proto *proto,
                              uint64_t region_id);

/* Region or layer keys: an int is an id, a str a name (UTF-8, pointer and
 * length borrowed from `key`). Returns 0 for an id, 1 for a name, -1 with
 * TypeError/OverflowError naming `what` ("region", "layer"). */
int strata_py_key(PyObject *key, const char *what, uint64_t *id,
                  const char **name, Py_ssize_t *name_len);

#endif /* STRATA_PY_STORE_H */
