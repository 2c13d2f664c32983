/* strata.Staged and the staging methods of Snapshot: pinned host copies of
 * layers (<strata/staging.h>) and moving them into device buffers.
 *
 * A Staged is an owner (strata_py.h): it holds a strata_staged, which
 * stays valid after its snapshot ends, and the buffers exported from it
 * (memoryview, numpy, DLPack) count against it, so that release() with
 * live buffers only marks it released and the hold goes when the last
 * buffer does. Holds belong to the store and must end before
 * strata_store_close(), so a Staged also holds an export on its Snapshot
 * (strata_py_store.h, strata_py_snapshot_txn) until its hold ends: leaving
 * the snapshot's `with` block, or store.close(), then only defers the
 * snapshot's and the store's end to the Staged's release().
 *
 * Transfers are synchronous: to_device() and stage_path_to_device() return
 * once the bytes are in the destination. An asynchronous API would let
 * Python free a destination (a numpy array, a tensor) while a copy still
 * writes into it, which no Python code may be able to do. The synchronous
 * call costs one stream synchronization, which the application's own work
 * after the call would have waited for anyway; on an adopted stream the
 * wrapper's destroy synchronizes the native stream (staging.h), so there
 * is no cheaper way to hand it back. The GIL is released around the
 * transfer and the wait; meanwhile the snapshot or Staged in use counts
 * one more export, so that another thread closing it only defers its end.
 *
 * Host mode (no GPU, or STRATA_STAGING_HOST): the pool's "device memory"
 * is host memory and the copies are memcpy on the stream's thread. The
 * destination must then be writable host memory: an object with the
 * buffer protocol (numpy array, bytearray) or a DLPack producer on kDLCPU
 * that does not flag its tensor read-only. On a GPU, the destination is a
 * DLPack producer on kDLCUDA (a CUDA tensor). On both, an int is taken as
 * the raw address of the destination, which is not checked: the one way
 * around the checks, for callers that manage memory themselves. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlpack.h"
#include "strata_py.h"
#include "strata_py_store.h"

PyObject *strata_py_StagedType;

typedef struct {
  STRATA_PY_OWNER_HEAD;
  strata_staged *hold;
  PyObject *snap;         /* the Snapshot, with one export of ours while held */
  strata_py_store *store; /* borrowed: the Snapshot holds it */
  strata_staged_info info;
  /* Where the bytes are for the buffer protocol and DLPack: the one
   * segment of the pinned copy, or `copy` when the blocks are not
   * contiguous (a copy made at the first request, freed with the hold). */
  const void *data;
  void *copy;
} StagedObject;

/* ---- the owner ------------------------------------------------------- */

static void staged_finish(PyObject *self) {
  StagedObject *s = (StagedObject *)self;
  strata_staged_release(s->hold);
  s->hold = NULL;
  free(s->copy);
  s->copy = NULL;
  s->data = NULL;
  if (s->snap != NULL)
    strata_py_owner_release(s->snap); /* may end the snapshot, the store */
}

/* The contiguous bytes of the staged copy, or NULL with an exception. */
static const void *staged_bytes(StagedObject *s) {
  if (strata_py_owner_check((PyObject *)s) < 0)
    return NULL;
  if (s->data != NULL || s->info.size == 0)
    return s->data != NULL ? s->data : (const void *)"";
  if (s->info.segments == 1) {
    uint64_t len;
    int rc = strata_staged_segment(s->hold, 0, &s->data, &len);
    return rc < 0 ? strata_py_raise(rc), NULL : s->data;
  }
  s->copy = malloc(s->info.size);
  if (s->copy == NULL)
    return PyErr_NoMemory(), NULL;
  int rc = strata_staged_copy_out(s->hold, s->copy);
  if (rc < 0) {
    free(s->copy);
    s->copy = NULL;
    return strata_py_raise(rc), NULL;
  }
  return s->data = s->copy;
}

/* ---- destinations ------------------------------------------------------ */

/* A destination buffer, open for the duration of one transfer. */
typedef struct dst_buf {
  void *ptr;
  uint64_t size;  /* bytes available; UINT64_MAX for a raw pointer */
  PyObject *keep; /* the DLPack capsule (its producer frees the tensor) */
  Py_buffer view;
  bool has_view;
} dst_buf;

static void dst_close(dst_buf *d) {
  if (d->has_view)
    PyBuffer_Release(&d->view);
  d->has_view = false;
  Py_CLEAR(d->keep);
}

/* The byte extent of a compact (C-contiguous) DLTensor, or -1 with a
 * ValueError naming what is wrong. */
static int dl_extent(const DLTensor *t, uint64_t *bytes) {
  if (t->dtype.bits % 8 != 0 || t->dtype.lanes == 0)
    return PyErr_Format(PyExc_ValueError,
                        "dst: a DLPack dtype of %u bits x %u lanes is not "
                        "whole bytes",
                        (unsigned)t->dtype.bits, (unsigned)t->dtype.lanes),
           -1;
  uint64_t n = (uint64_t)(t->dtype.bits / 8) * t->dtype.lanes;
  int64_t expect = 1; /* the stride of a compact tensor, in elements */
  for (int i = t->ndim - 1; i >= 0; i--) {
    int64_t dim = t->shape[i];
    if (dim < 0)
      return PyErr_Format(PyExc_ValueError, "dst: DLPack dimension %d is %lld",
                          i, (long long)dim),
             -1;
    if (t->strides != NULL && dim > 1 && t->strides[i] != expect)
      return PyErr_Format(PyExc_ValueError,
                          "dst is not contiguous (DLPack dimension %d has "
                          "stride %lld, a compact tensor %lld)",
                          i, (long long)t->strides[i], (long long)expect),
             -1;
    expect *= dim;
    n *= (uint64_t)dim;
  }
  *bytes = n;
  return 0;
}

/* Opens the destination through DLPack: asks for a versioned capsule (whose
 * read-only flag a host destination must not carry) and falls back to the
 * unversioned protocol for producers that do not know max_version.
 * `native` is the stream the copies will run on (NULL in host mode),
 * passed to the producer so that its pending work on the tensor is ordered
 * before them. */
static int dst_dlpack(PyObject *obj, bool host, void *native, dst_buf *d) {
  PyObject *dev = PyObject_CallMethod(obj, "__dlpack_device__", NULL);
  if (dev == NULL)
    return -1;
  long type = -1, ordinal = -1;
  if (!PyArg_ParseTuple(dev, "ll", &type, &ordinal)) {
    Py_DECREF(dev);
    return -1;
  }
  Py_DECREF(dev);
  bool cuda = type == kDLCUDA;
  if (host && type != kDLCPU)
    return PyErr_Format(PyExc_ValueError,
                        "dst is on DLPack device type %ld, but the staging "
                        "pool runs in host mode: dst must be host memory "
                        "(kDLCPU)",
                        type),
           -1;
  if (!host && !cuda)
    return PyErr_Format(PyExc_ValueError,
                        "dst is on DLPack device type %ld, not a CUDA device "
                        "(kDLCUDA): the staging pool copies to its GPU",
                        type),
           -1;
  PyObject *kw = Py_BuildValue("{s(ii)}", "max_version", 1, 0);
  if (kw == NULL)
    return -1;
  if (!host) {
    PyObject *s = PyLong_FromVoidPtr(native);
    if (s == NULL || PyDict_SetItemString(kw, "stream", s) < 0) {
      Py_XDECREF(s);
      Py_DECREF(kw);
      return -1;
    }
    Py_DECREF(s);
  }
  PyObject *meth = PyObject_GetAttrString(obj, "__dlpack__");
  PyObject *empty = PyTuple_New(0);
  PyObject *cap =
      meth != NULL && empty != NULL ? PyObject_Call(meth, empty, kw) : NULL;
  if (cap == NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
    PyErr_Clear(); /* a producer older than DLPack 1.0 */
    if (PyDict_DelItemString(kw, "max_version") == 0)
      cap = PyObject_Call(meth, empty, kw);
  }
  Py_XDECREF(meth);
  Py_XDECREF(empty);
  Py_DECREF(kw);
  if (cap == NULL)
    return -1;
  d->keep = cap;
  const DLTensor *t;
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    DLManagedTensorVersioned *m =
        PyCapsule_GetPointer(cap, "dltensor_versioned");
    if (m->version.major != DLPACK_MAJOR_VERSION)
      return PyErr_Format(PyExc_ValueError,
                          "dst: DLPack version %u.%u, this module reads %u.x",
                          m->version.major, m->version.minor,
                          DLPACK_MAJOR_VERSION),
             -1;
    if (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY)
      return PyErr_SetString(PyExc_ValueError,
                             "dst is read-only (its DLPack tensor carries "
                             "the read-only flag)"),
             -1;
    t = &m->dl_tensor;
  } else if (PyCapsule_IsValid(cap, "dltensor")) {
    t = &((DLManagedTensor *)PyCapsule_GetPointer(cap, "dltensor"))->dl_tensor;
  } else {
    return PyErr_SetString(PyExc_ValueError,
                           "dst.__dlpack__() did not return an unused "
                           "DLPack capsule"),
           -1;
  }
  if (dl_extent(t, &d->size) < 0)
    return -1;
  d->ptr = (char *)t->data + t->byte_offset;
  return 0;
}

/* Opens `obj` as a destination: a raw int address, a DLPack producer, or
 * (host mode) a writable buffer. The caller calls dst_close() in all
 * cases. */
static int dst_open(PyObject *obj, bool host, void *native, dst_buf *d) {
  *d = (dst_buf){0};
  if (PyLong_Check(obj)) {
    d->ptr = PyLong_AsVoidPtr(obj);
    if (d->ptr == NULL)
      return PyErr_Occurred()
                 ? -1
                 : (PyErr_SetString(PyExc_ValueError, "dst: a NULL pointer"),
                    -1);
    d->size = UINT64_MAX;
    return 0;
  }
  /* In host mode a writable buffer first: it refuses read-only memory
   * (a strata.Layer, a read-only array) by itself. */
  if (host && PyObject_CheckBuffer(obj)) {
    if (PyObject_GetBuffer(obj, &d->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) <
        0)
      return -1;
    d->has_view = true;
    d->ptr = d->view.buf;
    d->size = (uint64_t)d->view.len;
    return 0;
  }
  if (PyObject_HasAttrString(obj, "__dlpack__"))
    return dst_dlpack(obj, host, native, d);
  return strata_py_type_error(
      "dst",
      host ? "a writable buffer, a DLPack tensor on the CPU or "
             "an int address"
           : "a DLPack tensor on a CUDA device or an int address",
      obj);
}

/* ---- streams ---------------------------------------------------------- */

/* The stream a transfer runs on: a new one of the pool for None, else the
 * application's CUDA stream (an int cudaStream_t, or an object with
 * .cuda_stream such as torch.cuda.Stream), adopted. The caller destroys
 * it, which waits for the work on it. */
static int stream_open(strata_store *store, PyObject *stream,
                       strata_stream **out) {
  int rc;
  if (stream == NULL || stream == Py_None) {
    PyThreadState *ts = PyEval_SaveThread();
    rc = strata_stream_create(store, out);
    PyEval_RestoreThread(ts);
  } else {
    PyObject *handle = PyLong_Check(stream)
                           ? Py_NewRef(stream)
                           : PyObject_GetAttrString(stream, "cuda_stream");
    if (handle == NULL || !PyLong_Check(handle)) {
      Py_XDECREF(handle);
      PyErr_Clear();
      return strata_py_type_error(
          "stream",
          "None, an int (cudaStream_t) or an object with an "
          "int .cuda_stream",
          stream);
    }
    void *native = PyLong_AsVoidPtr(handle);
    Py_DECREF(handle);
    if (native == NULL && PyErr_Occurred())
      return -1;
    PyThreadState *ts = PyEval_SaveThread();
    rc = strata_stream_adopt(store, native, out);
    PyEval_RestoreThread(ts);
  }
  return rc < 0 ? strata_py_raise_int(rc) : 0;
}

/* Waits for the stream's work and destroys it, without the GIL; `rc` is the
 * result so far, returned unless the wait fails. */
static int stream_finish(strata_stream *ss, int rc) {
  PyThreadState *ts = PyEval_SaveThread();
  if (rc == 0)
    rc = strata_stream_sync(ss);
  strata_stream_destroy(ss);
  PyEval_RestoreThread(ts);
  return rc;
}

/* ---- a transfer ------------------------------------------------------- */

/* What one transfer moves. */
typedef struct xfer {
  const char *what;          /* for messages */
  const strata_staged *hold; /* to_device */
  const strata_txn *txn;     /* a path */
  const strata_layer_ref *refs;
  size_t n;
  uint64_t *offsets;
  uint64_t need; /* bytes the destination must hold */
} xfer;

static int xfer_enqueue(const xfer *x, void *dst, uint64_t size,
                        strata_stream *ss) {
  return x->hold != NULL
             ? strata_stage_to_device(x->hold, dst, ss)
             : strata_stage_path_to_device(x->txn, x->refs, x->n, dst, size,
                                           x->offsets, ss);
}

/* Opens the stream and the destination, checks its size, enqueues, waits.
 * 0, or -1 with an exception. */
static int xfer_run_entered(const xfer *x, strata_store *store, PyObject *dst,
                            PyObject *stream) {
  strata_stream *ss;
  if (stream_open(store, stream, &ss) < 0)
    return -1;
  void *native = strata_stream_native(ss); /* NULL: host mode */
  dst_buf d;
  int rc = dst_open(dst, native == NULL, native, &d);
  if (rc == 0 && d.size < x->need) {
    PyErr_Format(PyExc_ValueError,
                 "%s: dst is too small: it has %" PRIu64 " bytes, %" PRIu64
                 " are needed",
                 x->what, d.size, x->need);
    rc = -1;
  }
  if (rc < 0) {
    stream_finish(ss, 0);
    dst_close(&d);
    return -1;
  }
  uint64_t size = d.size != UINT64_MAX ? d.size : x->need;
  PyThreadState *ts = PyEval_SaveThread();
  rc = xfer_enqueue(x, d.ptr, size, ss);
  PyEval_RestoreThread(ts);
  rc = stream_finish(ss, rc);
  if (rc < 0)
    strata_py_raise(rc); /* before anything else calls the library */
  dst_close(&d);
  return rc < 0 ? -1 : 0;
}

/* xfer_run_entered() counted as a call of the store's (strata_py_store.h),
 * so that a close() on another thread waits for it. */
static int xfer_run(const xfer *x, strata_py_store *store, PyObject *dst,
                    PyObject *stream) {
  if (strata_py_store_enter(store) < 0)
    return -1;
  int rc = xfer_run_entered(x, store->store, dst, stream);
  strata_py_store_leave(store);
  return rc;
}

/* ---- strata.Staged ---------------------------------------------------- */

PyDoc_STRVAR(staged_doc,
             "A layer's copy in the staging pool's pinned host memory.\n\n"
             "Made by Snapshot.stage(); valid after the snapshot ends, until\n"
             "release() (or the end of a `with` block) and the release of\n"
             "every buffer exported from it. Read-only buffer protocol and\n"
             "__dlpack__ (kDLCPU, 1-D uint8) over the pinned bytes: no copy\n"
             "when they are one contiguous segment (.segments == 1), else\n"
             "over a contiguous copy made at the first request.");

static void staged_dealloc(PyObject *self) {
  StagedObject *s = (StagedObject *)self;
  strata_py_owner_dealloc(self); /* no exports: each holds a reference */
  Py_CLEAR(s->snap);
  strata_py_free_object(self);
}

static int staged_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  StagedObject *s = (StagedObject *)self;
  const void *p = staged_bytes(s);
  if (p == NULL)
    return -1;
  if (PyBuffer_FillInfo(view, self, (void *)p, (Py_ssize_t)s->info.size, 1,
                        flags) < 0)
    return -1;
  strata_py_owner_export(self);
  return 0;
}

static void staged_releasebuffer(PyObject *self, Py_buffer *view) {
  (void)view;
  strata_py_owner_release(self);
}

static PyObject *staged_dlpack(PyObject *self, PyObject *args, PyObject *kw) {
  StagedObject *s = (StagedObject *)self;
  const void *p = staged_bytes(s);
  if (p == NULL)
    return NULL;
  return strata_py_dlpack_export(self, self, p, s->info.size, args, kw);
}

static PyObject *staged_dlpack_device(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_owner_check(self) < 0)
    return NULL;
  return strata_py_dlpack_device();
}

static PyObject *staged_release(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_owner_close(self, true) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *staged_enter(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_owner_check(self) < 0)
    return NULL;
  return Py_NewRef(self);
}

static PyObject *staged_exit(PyObject *self, PyObject *args) {
  (void)args;
  return staged_release(self, NULL);
}

PyDoc_STRVAR(
    to_device_doc,
    "to_device(dst, stream=None)\n--\n\n"
    "Copies the staged bytes to the start of dst and returns once they are\n"
    "there. dst: an object with __dlpack__ on a CUDA device (a contiguous\n"
    "tensor of at least .size bytes) or, when the staging pool runs in\n"
    "host mode (no GPU), writable host memory: a buffer such as a numpy\n"
    "array, or a DLPack tensor on the CPU. An int is taken as the address\n"
    "of at least .size bytes, unchecked. stream: None (a stream of the\n"
    "pool), an int cudaStream_t or an object with .cuda_stream (such as\n"
    "torch.cuda.Stream), on which the copy is ordered after the work\n"
    "enqueued before the call; the call waits for that stream. Raises\n"
    "ValueError when dst is too small or not the right memory, strata.Error\n"
    "when the stream is refused (the default stream 0; any stream in host\n"
    "mode) or the copy fails. The GIL is released meanwhile.");

static PyObject *staged_to_device(PyObject *self, PyObject *args,
                                  PyObject *kw) {
  static char *kwlist[] = {"dst", "stream", NULL};
  PyObject *dst, *stream = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:to_device", kwlist, &dst,
                                   &stream))
    return NULL;
  StagedObject *s = (StagedObject *)self;
  if (strata_py_owner_check(self) < 0)
    return NULL;
  char what[96];
  snprintf(what, sizeof what, "to_device of region %" PRIu64 " layer %" PRIu64,
           s->info.region_id, s->info.layer_id);
  xfer x = {.what = what, .hold = s->hold, .need = s->info.size};
  strata_py_owner_export(self); /* a release() meanwhile waits for us */
  int rc = xfer_run(&x, s->store, dst, stream);
  strata_py_owner_release(self);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

/* The uint64_t field of the staged info at offset `closure`. */
static PyObject *staged_get_u64(PyObject *self, void *closure) {
  const char *info = (const char *)&((StagedObject *)self)->info;
  uint64_t v;
  memcpy(&v, info + (uintptr_t)closure, sizeof v);
  return PyLong_FromUnsignedLongLong(v);
}

#define INFO_U64(field) ((void *)offsetof(strata_staged_info, field))

static PyObject *staged_get_segments(PyObject *self, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLong(((StagedObject *)self)->info.segments);
}

static PyObject *staged_get_released(PyObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(strata_py_owner_of(self)->state !=
                         STRATA_PY_OWNER_OPEN);
}

static PyObject *staged_repr(PyObject *self) {
  StagedObject *s = (StagedObject *)self;
  return PyUnicode_FromFormat(
      "<strata.Staged region %llu layer %llu, %llu bytes%s>",
      (unsigned long long)s->info.region_id,
      (unsigned long long)s->info.layer_id, (unsigned long long)s->info.size,
      s->owner.state == STRATA_PY_OWNER_OPEN ? "" : ", released");
}

static PyGetSetDef staged_getset[] = {
    {"size", staged_get_u64, NULL, "Bytes staged (the layer's size).",
     INFO_U64(size)},
    {"region_id", staged_get_u64, NULL, "The layer's region id.",
     INFO_U64(region_id)},
    {"layer_id", staged_get_u64, NULL, "The layer's id.", INFO_U64(layer_id)},
    {"segments", staged_get_segments, NULL,
     "Contiguous pieces of pinned memory the copy occupies.", NULL},
    {"released", staged_get_released, NULL,
     "True after release() (the hold ends with the last exported buffer).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef staged_methods[] = {
    {"to_device", (PyCFunction)(void (*)(void))staged_to_device,
     METH_VARARGS | METH_KEYWORDS, to_device_doc},
    {"release", staged_release, METH_NOARGS,
     "release()\n--\n\nEnds the hold on the pinned copy: at once, or "
     "when the last\nbuffer exported from it is released. Releasing twice "
     "is a no-op."},
    {"__enter__", staged_enter, METH_NOARGS, "Returns self."},
    {"__exit__", staged_exit, METH_VARARGS, "Calls release()."},
    {"__dlpack__", (PyCFunction)(void (*)(void))staged_dlpack,
     METH_VARARGS | METH_KEYWORDS,
     "__dlpack__(*, stream=None, max_version=None, dl_device=None, "
     "copy=None)\n--\n\nA DLPack capsule over the staged bytes (kDLCPU, 1-D "
     "uint8), read-only\nwhen the consumer asks for a versioned capsule."},
    {"__dlpack_device__", staged_dlpack_device, METH_NOARGS,
     "__dlpack_device__()\n--\n\n(1, 0): kDLCPU, device 0."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot staged_slots[] = {
    {Py_tp_doc, (void *)staged_doc},
    {Py_tp_dealloc, (void *)staged_dealloc},
    {Py_tp_repr, (void *)staged_repr},
    {Py_tp_methods, staged_methods},
    {Py_tp_getset, staged_getset},
    {Py_bf_getbuffer, (void *)staged_getbuffer},
    {Py_bf_releasebuffer, (void *)staged_releasebuffer},
    {0, NULL},
};

static PyType_Spec staged_spec = {
    .name = "strata.Staged",
    .basicsize = sizeof(StagedObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = staged_slots,
};

int strata_py_init_staging(PyObject *module) {
  return strata_py_add_type(module, &staged_spec, "Staged",
                            &strata_py_StagedType);
}

/* ---- the Snapshot methods ---------------------------------------------- */

/* The staging calls below read through the snapshot's txn without the GIL:
 * strata_stage() and the path calls look layers up with
 * strata__get_quiet(), which writes neither the txn's counters nor the
 * reader slot's sampling ring (strata_py_store.h says why lookups need the
 * GIL), so they may run while other threads look up through the same
 * snapshot. An export on the snapshot keeps it, and its store, from ending
 * meanwhile. */

/* A (region, layer) pair, each an id or a name, resolved to ids as `txn`
 * sees them. 0, or -1 with an exception (strata.NotFoundError from the
 * library, naming what is missing). */
static int resolve_ref(const strata_txn *txn, PyObject *region, PyObject *layer,
                       strata_layer_ref *out) {
  const char *name;
  Py_ssize_t len;
  int kind = strata_py_key(region, "region", &out->region_id, &name, &len);
  if (kind < 0)
    return -1;
  int rc = kind == 1
               ? strata_find_region(txn, name, (size_t)len, &out->region_id)
               : 0;
  if (rc < 0)
    return strata_py_raise_int(rc);
  kind = strata_py_key(layer, "layer", &out->layer_id, &name, &len);
  if (kind <= 0)
    return kind;
  strata_layer l;
  rc = strata_get_by_name(txn, out->region_id, name, (size_t)len, &l);
  if (rc < 0)
    return strata_py_raise_int(rc);
  out->layer_id = l.id;
  return 0;
}

PyObject *strata_py_snapshot_stage(PyObject *snap, PyObject *args) {
  PyObject *region, *layer;
  if (!PyArg_ParseTuple(args, "OO:stage", &region, &layer))
    return NULL;
  const strata_txn *txn = strata_py_snapshot_txn(snap);
  strata_layer_ref ref;
  if (txn == NULL || resolve_ref(txn, region, layer, &ref) < 0)
    return NULL;
  StagedObject *s =
      PyObject_New(StagedObject, (PyTypeObject *)strata_py_StagedType);
  if (s == NULL)
    return NULL;
  s->hold = NULL;
  s->snap = Py_NewRef(snap);
  s->store = strata_py_snapshot_store(snap);
  s->info = (strata_staged_info){0};
  s->data = s->copy = NULL;
  strata_py_owner_init((PyObject *)s, "staged layer", staged_finish);
  strata_py_owner_export(snap); /* until staged_finish() */
  PyThreadState *ts = PyEval_SaveThread();
  int rc = strata_stage(txn, ref.region_id, ref.layer_id, &s->hold);
  if (rc == 0)
    rc = strata_staged_info_get(s->hold, &s->info);
  PyEval_RestoreThread(ts);
  if (rc < 0) {
    strata_py_raise(rc);
    Py_DECREF(s); /* releases the export */
    return NULL;
  }
  return (PyObject *)s;
}

/* A path's resolved refs (from an iterable of (region, layer) pairs) and
 * the bytes it needs in a device buffer; *refs is PyMem_Malloc'd. 0, or -1
 * with an exception. */
static int path_resolve(const strata_txn *txn, PyObject *path,
                        strata_layer_ref **refs, size_t *n, uint64_t *need) {
  PyObject *seq = PySequence_Tuple(path);
  if (seq == NULL)
    return -1;
  Py_ssize_t count = PyTuple_Size(seq);
  strata_layer_ref *r =
      PyMem_Malloc((size_t)(count > 0 ? count : 1) * sizeof *r);
  int rc = r == NULL ? (PyErr_NoMemory(), -1) : 0;
  for (Py_ssize_t i = 0; rc == 0 && i < count; i++) {
    PyObject *item = PyTuple_GetItem(seq, i);
    if (!PyTuple_Check(item) || PyTuple_Size(item) != 2)
      rc = strata_py_type_error("a path step", "a (region, layer) tuple", item);
    else
      rc = resolve_ref(txn, PyTuple_GetItem(item, 0), PyTuple_GetItem(item, 1),
                       &r[i]);
  }
  Py_DECREF(seq);
  if (rc == 0) {
    int src = strata_stage_path_size(txn, r, (size_t)count, need);
    rc = src < 0 ? strata_py_raise_int(src) : 0;
  }
  if (rc < 0) {
    PyMem_Free(r);
    return -1;
  }
  *refs = r;
  *n = (size_t)count;
  return 0;
}

/* Snapshot `snap`'s txn, checked, and the path resolved through it as
 * path_resolve() does; NULL with an exception. */
static const strata_txn *path_open(PyObject *snap, PyObject *path,
                                   strata_layer_ref **refs, size_t *n,
                                   uint64_t *need) {
  const strata_txn *txn = strata_py_snapshot_txn(snap);
  if (txn == NULL || path_resolve(txn, path, refs, n, need) < 0)
    return NULL;
  return txn;
}

PyObject *strata_py_snapshot_stage_path_size(PyObject *snap, PyObject *path) {
  strata_layer_ref *refs;
  size_t n;
  uint64_t need;
  if (path_open(snap, path, &refs, &n, &need) == NULL)
    return NULL;
  PyMem_Free(refs);
  return PyLong_FromUnsignedLongLong(need);
}

/* [(offset, size), ...] of a path laid out at `offsets`. */
static PyObject *path_result(const strata_txn *txn,
                             const strata_layer_ref *refs, size_t n,
                             const uint64_t *offsets) {
  strata_layer *lay = PyMem_Malloc((n > 0 ? n : 1) * sizeof *lay);
  if (lay == NULL)
    return PyErr_NoMemory();
  /* Every step was found by the transfer, through the same snapshot. */
  strata_get_many(txn, refs, n, lay);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list != NULL && i < n; i++) {
    PyObject *t = Py_BuildValue("(KK)", (unsigned long long)offsets[i],
                                (unsigned long long)lay[i].size);
    if (t == NULL)
      Py_CLEAR(list);
    else
      PyList_SetItem(list, (Py_ssize_t)i, t);
  }
  PyMem_Free(lay);
  return list;
}

PyObject *strata_py_snapshot_stage_path_to_device(PyObject *snap,
                                                  PyObject *args,
                                                  PyObject *kw) {
  static char *kwlist[] = {"refs", "dst", "stream", NULL};
  PyObject *path, *dst, *stream = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:stage_path_to_device",
                                   kwlist, &path, &dst, &stream))
    return NULL;
  strata_layer_ref *refs;
  size_t n;
  uint64_t need;
  const strata_txn *txn = path_open(snap, path, &refs, &n, &need);
  if (txn == NULL)
    return NULL;
  uint64_t *offsets = PyMem_Malloc((n > 0 ? n : 1) * sizeof *offsets);
  if (offsets == NULL) {
    PyMem_Free(refs);
    return PyErr_NoMemory();
  }
  xfer x = {.what = "stage_path_to_device",
            .txn = txn,
            .refs = refs,
            .n = n,
            .offsets = offsets,
            .need = need};
  strata_py_owner_export(snap); /* a close() meanwhile waits for us */
  int rc = xfer_run(&x, strata_py_snapshot_store(snap), dst, stream);
  PyObject *result = rc < 0 ? NULL : path_result(txn, refs, n, offsets);
  strata_py_owner_release(snap);
  PyMem_Free(offsets);
  PyMem_Free(refs);
  return result;
}
