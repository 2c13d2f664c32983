/* DLPack export of host memory borrowed from an owner (strata_py.h,
 * strata_py_dlpack_export): Layer.__dlpack__ and, for a staged copy,
 * Staged.__dlpack__.
 *
 * The exported tensor is one more export of the owner, exactly like a
 * memoryview: the capsule (and, once a consumer has taken it, the
 * consumer's tensor) holds a strong reference to the exporting object and
 * counts on its owner until the deleter runs, so a region cannot be closed
 * and a snapshot does not end under a numpy array or torch tensor made
 * from a layer. The deleter may run on any thread, with or without the
 * GIL (torch frees tensors from its own threads): it takes the GIL. */
#include "strata_py.h"

#include <stdlib.h>
#include <string.h>

#include "dlpack.h"

/* Everything one export owns, in one allocation: the managed tensor of
 * either kind, its shape and strides, and the references. */
typedef struct {
  union {
    DLManagedTensor legacy;
    DLManagedTensorVersioned versioned;
  } t;
  int64_t shape[1];
  int64_t strides[1];
  PyObject *exporter; /* strong */
  PyObject *owner;    /* borrowed through exporter; counted an export */
} dlpack_export;

static void export_free(dlpack_export *e) {
  /* After the interpreter has finalized (a consumer's tensor outliving
   * it), there is no GIL to take and no object to release. */
  if (!Py_IsInitialized()) {
    free(e);
    return;
  }
  PyGILState_STATE g = PyGILState_Ensure();
  strata_py_owner_release(e->owner);
  Py_DECREF(e->exporter);
  PyGILState_Release(g);
  free(e);
}

static void legacy_deleter(DLManagedTensor *self) {
  export_free(self->manager_ctx);
}

static void versioned_deleter(DLManagedTensorVersioned *self) {
  export_free(self->manager_ctx);
}

static const char legacy_name[] = "dltensor";
static const char versioned_name[] = "dltensor_versioned";

/* The capsule's destructor: a capsule no consumer took (it still has its
 * first name) still owns its tensor. */
static void capsule_destructor(PyObject *capsule) {
  if (PyCapsule_IsValid(capsule, legacy_name)) {
    DLManagedTensor *t = PyCapsule_GetPointer(capsule, legacy_name);
    t->deleter(t);
  } else if (PyCapsule_IsValid(capsule, versioned_name)) {
    DLManagedTensorVersioned *t = PyCapsule_GetPointer(capsule, versioned_name);
    t->deleter(t);
  }
}

static void fill_tensor(DLTensor *t, dlpack_export *e, const void *data,
                        uint64_t size) {
  t->data = (void *)data;
  t->device.device_type = kDLCPU;
  t->device.device_id = 0;
  t->ndim = 1;
  t->dtype.code = kDLUInt;
  t->dtype.bits = 8;
  t->dtype.lanes = 1;
  e->shape[0] = (int64_t)size;
  e->strides[0] = 1;
  t->shape = e->shape;
  t->strides = e->strides;
  t->byte_offset = 0;
}

/* 1 when the consumer's max_version (a tuple (major, minor), or None)
 * accepts a versioned capsule, 0 when not, -1 with an exception. */
static int wants_versioned(PyObject *max_version) {
  if (max_version == Py_None)
    return 0;
  if (!PyTuple_Check(max_version) || PyTuple_Size(max_version) != 2) {
    PyErr_SetString(PyExc_TypeError,
                    "__dlpack__: max_version must be a (major, minor) tuple");
    return -1;
  }
  long major = PyLong_AsLong(PyTuple_GetItem(max_version, 0));
  if (major == -1 && PyErr_Occurred())
    return -1;
  return major >= DLPACK_MAJOR_VERSION;
}

/* Checks the consumer's dl_device: None or (kDLCPU, 0). */
static int check_device(PyObject *dl_device) {
  if (dl_device == Py_None)
    return 0;
  int type = -1, id = -1;
  if (PyTuple_Check(dl_device) && PyTuple_Size(dl_device) == 2) {
    type = (int)PyLong_AsLong(PyTuple_GetItem(dl_device, 0));
    id = (int)PyLong_AsLong(PyTuple_GetItem(dl_device, 1));
    if (PyErr_Occurred())
      return -1;
  }
  if (type == kDLCPU && id == 0)
    return 0;
  PyErr_Format(PyExc_BufferError,
               "__dlpack__: the memory is on the host (kDLCPU, 0); it cannot "
               "be exported to device %R (move it with the consumer's own "
               "copy, e.g. torch.from_dlpack(x).to(device))",
               dl_device);
  return -1;
}

PyObject *strata_py_dlpack_export(PyObject *exporter, PyObject *owner,
                                  const void *data, uint64_t size,
                                  PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
  PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None,
           *copy = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOO:__dlpack__", kwlist,
                                   &stream, &max_version, &dl_device, &copy))
    return NULL;
  /* Host memory has no stream to order against: any stream is accepted,
   * and nothing needs to be waited for. */
  (void)stream;
  if (strata_py_owner_check(owner) < 0 || check_device(dl_device) < 0)
    return NULL;
  if (copy == Py_True) {
    PyErr_SetString(PyExc_BufferError,
                    "__dlpack__: copy=True is not supported: the export is "
                    "the mapping itself (copy on the consumer's side)");
    return NULL;
  }
  if (size > (uint64_t)INT64_MAX) {
    PyErr_SetString(PyExc_BufferError, "__dlpack__: too large a tensor");
    return NULL;
  }
  int versioned = wants_versioned(max_version);
  if (versioned < 0)
    return NULL;

  dlpack_export *e = calloc(1, sizeof *e);
  if (!e)
    return PyErr_NoMemory();
  PyObject *capsule;
  if (versioned) {
    DLManagedTensorVersioned *t = &e->t.versioned;
    t->version.major = DLPACK_MAJOR_VERSION;
    t->version.minor = DLPACK_MINOR_VERSION;
    t->manager_ctx = e;
    t->deleter = versioned_deleter;
    t->flags = DLPACK_FLAG_BITMASK_READ_ONLY;
    fill_tensor(&t->dl_tensor, e, data, size);
    capsule = PyCapsule_New(t, versioned_name, capsule_destructor);
  } else {
    DLManagedTensor *t = &e->t.legacy;
    t->manager_ctx = e;
    t->deleter = legacy_deleter;
    fill_tensor(&t->dl_tensor, e, data, size);
    capsule = PyCapsule_New(t, legacy_name, capsule_destructor);
  }
  if (!capsule) {
    free(e);
    return NULL;
  }
  Py_INCREF(exporter);
  e->exporter = exporter;
  e->owner = owner;
  strata_py_owner_export(owner);
  return capsule;
}

PyObject *strata_py_dlpack_device(void) {
  return Py_BuildValue("(ii)", kDLCPU, 0);
}
