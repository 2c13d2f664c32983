/* strata.Layer and the owner protocol (strata_py.h, "owners").
 *
 * A Layer is a handful of borrowed pointers into its owner's memory (a
 * region's mapping, a snapshot's regions) plus a strong reference to the
 * owner. Nothing is copied when a Layer is made or exported: memoryview,
 * bytes (which copies, as bytes() always does), numpy.frombuffer and DLPack
 * consumers all see the mapping itself, read-only. The owner counts the
 * exported buffers so that it is never unmapped under one: that count, not
 * the reference from the Layer, is what close() looks at, because a Layer
 * object that is merely alive exports nothing (its accesses check the
 * owner's state and raise once it is closed). */
#include "strata_py.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

/* ---- owners ------------------------------------------------------------- */

void strata_py_owner_init(PyObject *obj, const char *kind,
                          void (*finish)(PyObject *)) {
  strata_py_owner *o = strata_py_owner_of(obj);
  o->state = STRATA_PY_OWNER_OPEN;
  o->exports = 0;
  o->pid = getpid();
  o->kind = kind;
  o->finish = finish;
}

int strata_py_owner_check(PyObject *obj) {
  strata_py_owner *o = strata_py_owner_of(obj);
  if (strata_py_check_pid(o->pid, o->kind) < 0)
    return -1;
  if (o->state != STRATA_PY_OWNER_OPEN) {
    strata_py_raise_state("this %s is closed", o->kind);
    return -1;
  }
  return 0;
}

/* Ends the owner's resource, once. In a fork() child the resource is the
 * parent's (copied pages, shared files): it is dropped without being ended,
 * which leaks only the child's copy. */
static void owner_finish(PyObject *obj) {
  strata_py_owner *o = strata_py_owner_of(obj);
  o->state = STRATA_PY_OWNER_CLOSED;
  if (o->pid == getpid())
    o->finish(obj);
}

void strata_py_owner_export(PyObject *obj) {
  strata_py_owner_of(obj)->exports++;
}

void strata_py_owner_release(PyObject *obj) {
  strata_py_owner *o = strata_py_owner_of(obj);
  if (--o->exports == 0 && o->state == STRATA_PY_OWNER_CLOSING)
    owner_finish(obj);
}

int strata_py_owner_close(PyObject *obj, bool defer) {
  strata_py_owner *o = strata_py_owner_of(obj);
  if (o->state == STRATA_PY_OWNER_CLOSED)
    return 0;
  if (strata_py_check_pid(o->pid, o->kind) < 0)
    return -1;
  if (o->exports > 0) {
    if (defer) {
      o->state = STRATA_PY_OWNER_CLOSING;
      return 0;
    }
    PyErr_Format(PyExc_BufferError,
                 "cannot close this %s: %zd buffer%s exported from its layers "
                 "(memoryview, numpy array, DLPack tensor) still in use; "
                 "release them first",
                 o->kind, o->exports, o->exports == 1 ? " is" : "s are");
    return -1;
  }
  owner_finish(obj);
  return 0;
}

void strata_py_owner_dealloc(PyObject *obj) {
  if (strata_py_owner_of(obj)->state != STRATA_PY_OWNER_CLOSED)
    owner_finish(obj);
}

/* ---- Layer -------------------------------------------------------------- */

PyObject *strata_py_LayerType;

typedef struct {
  PyObject_HEAD PyObject *owner; /* strong */
  strata_layer l;                /* pointers borrowed from the owner */
  PyObject *name;                /* cached str, or NULL */
  PyObject *metadata;            /* cached parsed metadata, or NULL */
} LayerObject;

/* One byte for the buffer of an empty layer, whose data pointer may be
 * NULL: consumers (numpy among them) want a valid address. */
static const unsigned char empty_layer[1];

/* Dead Layer objects kept for reuse, as CPython keeps its floats: every
 * lookup makes a Layer and most die at once (a get_many_in() result list
 * read and dropped), and pymalloc's allocation and free plus the heap
 * type's tp_free slot cost ~80 of the ~400 instructions a layer of
 * get_many_in() took under callgrind (bindings/python/bench.py;
 * docs/BENCHMARKS.md, "Python"). The size is a get_many_in() chunk's
 * (GET_MANY_STACK) times four: enough for a few result lists in flight,
 * and 28 KiB at most held. The GIL guards it; Layer has no subclasses
 * (no Py_TPFLAGS_BASETYPE), so every object here has this size. */
#define LAYER_FREE_MAX 256
static LayerObject *layer_free[LAYER_FREE_MAX];
static int layer_free_n;

PyObject *strata_py_layer_new(PyObject *owner, const strata_layer *l) {
  LayerObject *self;
  if (layer_free_n > 0) {
    self = layer_free[--layer_free_n];
    PyObject_Init((PyObject *)self, (PyTypeObject *)strata_py_LayerType);
  } else {
    self = PyObject_New(LayerObject, (PyTypeObject *)strata_py_LayerType);
    if (!self)
      return NULL;
  }
  Py_INCREF(owner);
  self->owner = owner;
  self->l = *l;
  self->name = NULL;
  self->metadata = NULL;
  return (PyObject *)self;
}

static void layer_dealloc(PyObject *obj) {
  LayerObject *self = (LayerObject *)obj;
  Py_XDECREF(self->name);
  Py_XDECREF(self->metadata);
  Py_DECREF(self->owner);
  if (layer_free_n < LAYER_FREE_MAX) {
    layer_free[layer_free_n++] = self;
    Py_DECREF(Py_TYPE(obj));
    return;
  }
  strata_py_free_object(obj);
}

static int layer_check(LayerObject *self) {
  return strata_py_owner_check(self->owner);
}

static PyObject *layer_get_id(PyObject *obj, void *closure) {
  (void)closure;
  LayerObject *self = (LayerObject *)obj;
  if (layer_check(self) < 0)
    return NULL;
  return PyLong_FromUnsignedLongLong(self->l.id);
}

static PyObject *layer_get_name(PyObject *obj, void *closure) {
  (void)closure;
  LayerObject *self = (LayerObject *)obj;
  if (layer_check(self) < 0)
    return NULL;
  if (!self->l.name)
    Py_RETURN_NONE;
  if (!self->name) {
    /* The library validated every name's UTF-8 at open. */
    self->name = PyUnicode_DecodeUTF8(self->l.name,
                                      (Py_ssize_t)self->l.name_len, "strict");
    if (!self->name)
      return NULL;
  }
  Py_INCREF(self->name);
  return self->name;
}

static PyObject *layer_get_metadata(PyObject *obj, void *closure) {
  (void)closure;
  LayerObject *self = (LayerObject *)obj;
  if (layer_check(self) < 0)
    return NULL;
  if (!self->l.metadata || self->l.metadata_len == 0)
    Py_RETURN_NONE;
  if (!self->metadata) {
    self->metadata =
        strata_py_json_loads(self->l.metadata, self->l.metadata_len);
    if (!self->metadata)
      return NULL;
  }
  Py_INCREF(self->metadata);
  return self->metadata;
}

static PyObject *layer_get_size(PyObject *obj, void *closure) {
  (void)closure;
  LayerObject *self = (LayerObject *)obj;
  if (layer_check(self) < 0)
    return NULL;
  return PyLong_FromUnsignedLongLong(self->l.size);
}

static PyObject *layer_get_checksum(PyObject *obj, void *closure) {
  (void)closure;
  LayerObject *self = (LayerObject *)obj;
  if (layer_check(self) < 0)
    return NULL;
  return PyLong_FromUnsignedLongLong(self->l.checksum);
}

static PyObject *layer_get_tombstone(PyObject *obj, void *closure) {
  (void)closure;
  LayerObject *self = (LayerObject *)obj;
  if (layer_check(self) < 0)
    return NULL;
  return PyBool_FromLong((self->l.flags & STRATA_LAYER_TOMBSTONE) != 0);
}

static PyObject *layer_repr(PyObject *obj) {
  LayerObject *self = (LayerObject *)obj;
  strata_py_owner *o = strata_py_owner_of(self->owner);
  /* The name is in the owner's memory: not read once it is closed. */
  if (o->state != STRATA_PY_OWNER_OPEN || o->pid != getpid())
    return PyUnicode_FromFormat("<strata.Layer id=%llu (%s closed)>",
                                (unsigned long long)self->l.id, o->kind);
  if (!self->l.name)
    return PyUnicode_FromFormat("<strata.Layer id=%llu size=%llu>",
                                (unsigned long long)self->l.id,
                                (unsigned long long)self->l.size);
  PyObject *name = layer_get_name(obj, NULL);
  if (!name)
    return NULL;
  PyObject *r = PyUnicode_FromFormat("<strata.Layer id=%llu name=%R size=%llu>",
                                     (unsigned long long)self->l.id, name,
                                     (unsigned long long)self->l.size);
  Py_DECREF(name);
  return r;
}

static int layer_getbuffer(PyObject *obj, Py_buffer *view, int flags) {
  LayerObject *self = (LayerObject *)obj;
  view->obj = NULL;
  if (layer_check(self) < 0)
    return -1;
  if (flags & PyBUF_WRITABLE) {
    PyErr_Format(PyExc_BufferError,
                 "layer %llu is read-only: its memory is the %s's read-only "
                 "mapping (copy it, e.g. bytearray(layer), to modify it)",
                 (unsigned long long)self->l.id,
                 strata_py_owner_of(self->owner)->kind);
    return -1;
  }
  if (self->l.size > (uint64_t)PY_SSIZE_T_MAX) {
    PyErr_Format(PyExc_BufferError, "layer %llu is too large for a buffer",
                 (unsigned long long)self->l.id);
    return -1;
  }
  void *data = (void *)(self->l.data ? self->l.data : empty_layer);
  if (PyBuffer_FillInfo(view, obj, data, (Py_ssize_t)self->l.size, 1, flags) <
      0)
    return -1;
  strata_py_owner_export(self->owner);
  return 0;
}

static void layer_releasebuffer(PyObject *obj, Py_buffer *view) {
  (void)view;
  strata_py_owner_release(((LayerObject *)obj)->owner);
}

static PyObject *layer_dlpack(PyObject *obj, PyObject *args, PyObject *kwds) {
  LayerObject *self = (LayerObject *)obj;
  return strata_py_dlpack_export(obj, self->owner,
                                 self->l.data ? self->l.data : empty_layer,
                                 self->l.size, args, kwds);
}

static PyObject *layer_dlpack_device(PyObject *obj,
                                     PyObject *Py_UNUSED(ignored)) {
  if (layer_check((LayerObject *)obj) < 0)
    return NULL;
  return strata_py_dlpack_device();
}

static PyMethodDef layer_methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))layer_dlpack,
     METH_VARARGS | METH_KEYWORDS,
     "__dlpack__(*, stream=None, max_version=None, dl_device=None, "
     "copy=None)\n--\n\n"
     "The content as a DLPack capsule: a 1-D uint8 tensor in host memory "
     "(kDLCPU), the mapping itself, without a copy. With max_version >= "
     "(1, 0) the capsule is versioned and flagged read-only. The tensor "
     "counts as an exported buffer until its consumer releases it, like a "
     "memoryview. numpy.from_dlpack(layer), torch.from_dlpack(layer)."},
    {"__dlpack_device__", layer_dlpack_device, METH_NOARGS,
     "__dlpack_device__()\n--\n\n(1, 0): kDLCPU, device 0."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef layer_getset[] = {
    {"id", layer_get_id, NULL, "The layer's id (int).", NULL},
    {"name", layer_get_name, NULL, "The layer's name (str), or None.", NULL},
    {"metadata", layer_get_metadata, NULL,
     "The layer's metadata, parsed from its JSON text (usually a dict; "
     "parsed once and cached: the same object on each access), or None.",
     NULL},
    {"size", layer_get_size, NULL, "The content's length in bytes.", NULL},
    {"checksum", layer_get_checksum, NULL,
     "The XXH3-64 of the content as stored in the region's index (int).", NULL},
    {"tombstone", layer_get_tombstone, NULL,
     "True for a tombstone: a delta file's record that the layer with this "
     "id was removed (empty, no name or metadata). Only a Region opened on "
     "a delta file returns them; a store's snapshot never does.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot layer_slots[] = {
    {Py_tp_doc,
     "A layer of a region, read in place.\n\n"
     "Layers come from a Region (region[17]) or a snapshot. The content is "
     "exposed through the read-only buffer protocol without a copy: "
     "memoryview(layer), numpy.frombuffer(layer, dtype), bytes(layer) (a "
     "copy); and DLPack (numpy.from_dlpack, torch.from_dlpack). A Layer keeps "
     "its region or snapshot alive; once that is "
     "closed every access raises strata.Error. A region cannot be closed "
     "while buffers exported from its layers are alive (BufferError)."},
    {Py_tp_dealloc, layer_dealloc},
    {Py_tp_repr, layer_repr},
    {Py_tp_getset, layer_getset},
    {Py_tp_methods, layer_methods},
    {Py_bf_getbuffer, layer_getbuffer},
    {Py_bf_releasebuffer, layer_releasebuffer},
    {0, NULL},
};

static PyType_Spec layer_spec = {
    .name = "strata.Layer",
    .basicsize = sizeof(LayerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = layer_slots,
};

int strata_py_init_layer(PyObject *module) {
  return strata_py_add_type(module, &layer_spec, "Layer", &strata_py_LayerType);
}
