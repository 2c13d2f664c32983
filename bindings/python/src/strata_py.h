/* The contract between the files of the C extension `strata._strata`.
 *
 * One file per Python type (layer.c, region.c, store.c, snapshot.c,
 * proto.c, writer.c, staging.c), errors.c for the exception classes and
 * module.c for the module itself. Each type file exports one
 * strata_py_init_TYPE(module) that readies its type and adds it to the
 * module, called by module.c in dependency order.
 *
 * Memory that a Layer exposes is borrowed from an *owner*: a Region (the
 * file's mapping) or a Snapshot (the store's snapshot, strata_txn). The
 * owner protocol below is how lifetimes are enforced, never trusted:
 *
 *  - A Layer holds a strong reference to its owner, and the owner counts
 *    the buffers exported from its layers (memoryview, numpy, DLPack
 *    capsules): strata_py_owner_export() / _release().
 *  - When its user closes the owner (Region.close(), leaving a `with
 *    store.snapshot()` block, Snapshot.close()):
 *      * a Region with exports raises BufferError and stays open (as
 *        memoryview.release() does);
 *      * a Snapshot with exports is marked closing: no new lookups, and the
 *        snapshot really ends (strata_read_end) when the last export is
 *        released;
 *      * without exports the owner ends at once, and its Layer objects
 *        become dead: every access raises strata.Error ("... closed"),
 *        never touches the memory.
 *  - Every Layer access calls strata_py_owner_check() first.
 *
 * Types are heap types made with PyType_FromSpec (the limited API of 3.11,
 * Py_LIMITED_API 0x030B0000, where it reaches: the buffer slots are in it
 * since 3.11), kept in the globals below; the module is single-phase and
 * not meant for subinterpreters.
 *
 * All of this runs with the GIL held (the DLPack deleter takes it), so the
 * counters are plain integers. */
#ifndef STRATA_PY_H
#define STRATA_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "strata.h"

/* ---- errors (errors.c) --------------------------------------------------- */

/* The exception classes, created by strata_py_init_errors():
 *   strata.Error(Exception)            every Strata failure; .code (the
 *                                      library's negative code), .name
 *                                      (strata_err_name())
 *   strata.NotFoundError(Error, KeyError)   NOT_FOUND, NO_REGION
 *   strata.CorruptError(Error)         CORRUPT, CHECKSUM, BOUNDS, BAD_MAGIC,
 *                                      VERSION and the other format codes
 *   strata.LockedError(Error)          LOCKED
 *   strata.LimitError(Error)           LIMIT
 *   strata.ConflictError(Error)        CONFLICT
 *   strata.StrataOSError(Error, OSError)   -errno; .errno set
 * The message is strata_last_error_detail() (which names the file, region,
 * layer or offset), or strata_strerror(rc) when the library left none. */
extern PyObject *strata_py_Error;
extern PyObject *strata_py_NotFoundError;
extern PyObject *strata_py_CorruptError;
extern PyObject *strata_py_LockedError;
extern PyObject *strata_py_LimitError;
extern PyObject *strata_py_ConflictError;
extern PyObject *strata_py_OSError;
int strata_py_init_errors(PyObject *module);

/* Raises the exception for library return code `rc` (< 0) and returns
 * NULL, so that callers write `return strata_py_raise(rc);`. Must be
 * called on the thread that made the failing call (the detail is
 * per-thread), before any other Strata call. */
PyObject *strata_py_raise(int rc);
/* The same, returning -1, for functions that return int. */
int strata_py_raise_int(int rc);
/* Raises the exception for `rc` with a message made by
 * PyUnicode_FromFormat(fmt, ...) instead of the library's detail: for
 * failures found before the library is called. Returns NULL. */
PyObject *strata_py_raise_msg(int rc, const char *fmt, ...);
/* strata_py_raise_msg(STRATA_E_STATE, ...): strata.Error for a closed
 * object or a fork() child. Returns NULL. */
PyObject *strata_py_raise_state(const char *fmt, ...);

/* Raises TypeError "WHAT must be EXPECTED, not TYPE" (the type's name:
 * PyErr_Format has no %T before 3.12, and the limited API no tp_name) and
 * returns -1 (module.c). */
int strata_py_type_error(const char *what, const char *expected, PyObject *obj);

/* The type helpers of every heap type (module.c). _add_type makes the type
 * from `spec` into *type (a strong reference kept for the process's life)
 * and, unless `name` is NULL, adds it to the module. _free_object ends a
 * tp_dealloc: frees `self` with its type's tp_free and drops the reference
 * every instance of a heap type holds on its type. */
int strata_py_add_type(PyObject *module, PyType_Spec *spec, const char *name,
                       PyObject **type);
void strata_py_free_object(PyObject *self);

/* ---- fork safety (module.c) ---------------------------------------------- */

/* Raises strata.Error and returns -1 when the calling process is not
 * `pid` (the process that opened the object: a child after fork() must not
 * use its parent's store, snapshot or mapping). 0 otherwise. */
int strata_py_check_pid(pid_t pid, const char *what);

/* ---- owners (layer.c) ---------------------------------------------------- */

typedef enum strata_py_owner_state {
  STRATA_PY_OWNER_OPEN = 0,
  STRATA_PY_OWNER_CLOSING = 1, /* Snapshot: ended by its user, exports live */
  STRATA_PY_OWNER_CLOSED = 2,
} strata_py_owner_state;

/* The head of every owner object (Region, Snapshot, Staged), right after
 * PyObject_HEAD. `finish` releases the owner's resource (strata_read_end,
 * strata_region_close...) and is called exactly once, when the state
 * becomes CLOSED. */
typedef struct strata_py_owner {
  strata_py_owner_state state;
  Py_ssize_t exports; /* live exported buffers of its layers */
  pid_t pid;          /* the process that opened it */
  const char *kind;   /* "region", "snapshot": for messages */
  void (*finish)(PyObject *owner);
} strata_py_owner;

/* Every owner type's struct starts with these members, in this order:
 *   typedef struct { STRATA_PY_OWNER_HEAD; ...own fields... } RegionObject;
 */
#define STRATA_PY_OWNER_HEAD PyObject_HEAD strata_py_owner owner

typedef struct strata_py_owner_object {
  STRATA_PY_OWNER_HEAD;
} strata_py_owner_object;

/* The owner part of `obj` (an owner type's instance). */
static inline strata_py_owner *strata_py_owner_of(PyObject *obj) {
  return &((strata_py_owner_object *)obj)->owner;
}

/* Sets up the owner part (state OPEN, no exports, this pid). */
void strata_py_owner_init(PyObject *obj, const char *kind,
                          void (*finish)(PyObject *));
/* 0 when the owner is open and in this process; otherwise raises
 * (strata.Error "... is closed" / the fork error) and returns -1. */
int strata_py_owner_check(PyObject *obj);
/* One more / one fewer exported buffer. _release() finishes a CLOSING
 * owner when the count reaches 0. */
void strata_py_owner_export(PyObject *obj);
void strata_py_owner_release(PyObject *obj);
/* The user closes the owner. A Region (`defer` false) with exports raises
 * BufferError and returns -1; a Snapshot (`defer` true) with exports
 * becomes CLOSING and returns 0; otherwise it is finished now. Closing a
 * closed owner is a no-op returning 0. */
int strata_py_owner_close(PyObject *obj, bool defer);
/* For the owner type's tp_dealloc: finishes an owner that is not CLOSED
 * yet (a Region dropped without close()), except in a fork() child, whose
 * copy of the parent's resource must not be ended (a snapshot's end would
 * write to the store's shared view). It cannot have exports: every export
 * holds a Layer, which holds the owner. */
void strata_py_owner_dealloc(PyObject *obj);

/* ---- delta files (region.c) -------------------------------------------- */

/* Adds a delta file's binding to `dict`: depth, parent_checksum,
 * base_checksum (strata_region_delta()). 1 when `file` is a delta, 0 when
 * it is a base (dict untouched), -1 with an exception. For Region.info and
 * Snapshot.regions(). */
int strata_py_delta_binding(const strata_region *file, PyObject *dict);

/* ---- Layer (layer.c) ----------------------------------------------------- */

/* strata.Layer: .id, .name (str or None), .metadata (parsed JSON, cached;
 * None when absent), .size, .checksum, .tombstone; the read-only buffer
 * protocol;
 * __dlpack__ / __dlpack_device__ (kDLCPU, 1-D uint8). */
extern PyObject *strata_py_LayerType; /* a heap type (PyType_FromSpec) */
int strata_py_init_layer(PyObject *module);
/* A new Layer over `l` (whose pointers point into `owner`'s memory), or
 * NULL with an exception set. Takes a new reference to owner. */
PyObject *strata_py_layer_new(PyObject *owner, const strata_layer *l);

/* ---- DLPack (dlpack.c) ------------------------------------------------ */

/* The body of an exporter's __dlpack__(*, stream=None, max_version=None,
 * dl_device=None, copy=None) (METH_VARARGS | METH_KEYWORDS: pass args and
 * kwds on): a capsule holding a 1-D uint8 kDLCPU tensor over
 * [data, data + size), which is memory of `owner` (checked open first).
 * A "dltensor_versioned" capsule with DLPACK_FLAG_BITMASK_READ_ONLY when
 * max_version >= (1, 0), a legacy "dltensor" capsule otherwise. The export
 * holds a strong reference to `exporter` (which must keep `owner` alive)
 * and counts as one export of `owner` until the consumer's deleter (or the
 * unconsumed capsule's destructor) runs; the deleter takes the GIL. A
 * dl_device other than (kDLCPU, 0) and copy=True raise BufferError. */
PyObject *strata_py_dlpack_export(PyObject *exporter, PyObject *owner,
                                  const void *data, uint64_t size,
                                  PyObject *args, PyObject *kwds);
/* __dlpack_device__() of host memory: (kDLCPU, 0), i.e. (1, 0). */
PyObject *strata_py_dlpack_device(void);

/* ---- the other types --------------------------------------------------- */

int strata_py_init_region(PyObject *module);   /* region.c: strata.Region */
int strata_py_init_store(PyObject *module);    /* store.c: strata.Store */
int strata_py_init_snapshot(PyObject *module); /* snapshot.c: Snapshot */
int strata_py_init_proto(PyObject *module);    /* proto.c: strata.Proto */
int strata_py_init_writer(PyObject *module);   /* writer.c: strata.Writer */
int strata_py_init_staging(PyObject *module);  /* staging.c: strata.Staged */

/* The staging methods of Snapshot, in staging.c, listed in snapshot.c's
 * method table (docs/PYTHON.md, "Staging"):
 *   stage(region, layer) -> Staged                       METH_VARARGS
 *   stage_path_size(refs) -> int                         METH_O
 *   stage_path_to_device(refs, dst, stream=None)
 *       -> [(offset, size), ...]                         METH_VARARGS|KEYWORDS
 * `snap` is a Snapshot (strata_py_snapshot_txn() checks it). */
extern PyObject *strata_py_StagedType;
PyObject *strata_py_snapshot_stage(PyObject *snap, PyObject *args);
PyObject *strata_py_snapshot_stage_path_size(PyObject *snap, PyObject *refs);
PyObject *strata_py_snapshot_stage_path_to_device(PyObject *snap,
                                                  PyObject *args, PyObject *kw);

/* JSON text (metadata) <-> Python objects, through the standard `json`
 * module (module.c). _loads returns a new reference or NULL with an
 * exception; _dumps returns a new bytes object (compact separators) for
 * a dict/list/... or a str that is JSON already, or NULL. */
PyObject *strata_py_json_loads(const char *text, size_t len);
PyObject *strata_py_json_dumps(PyObject *obj);

#endif /* STRATA_PY_H */
