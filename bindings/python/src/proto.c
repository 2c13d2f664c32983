/* strata.Proto: a handle on a region's proto (strata_py_store.h).
 *
 * The strata_proto belongs to the store: it stays valid until
 * strata_store_close() (a discarded one fails with STRATA_E_STATE), so a
 * Proto holds its Store and checks that the Store is open before every
 * call. Every call may wait for the store's writer mutex (held by a
 * crystallization in another thread) or crystallize for memory, so each
 * releases the GIL; the content is read from the caller's buffer during
 * the call only (the library copies it). */
#include "strata_py_store.h"

PyObject *strata_py_ProtoType;

typedef struct {
  PyObject_HEAD strata_py_store *store; /* strong */
  strata_proto *proto;
  uint64_t region_id;
} ProtoObject;

PyObject *strata_py_proto_new(strata_py_store *store, strata_proto *proto,
                              uint64_t region_id) {
  ProtoObject *p = (ProtoObject *)PyType_GenericAlloc(
      (PyTypeObject *)strata_py_ProtoType, 0);
  if (p == NULL)
    return NULL;
  Py_INCREF((PyObject *)store);
  p->store = store;
  p->proto = proto;
  p->region_id = region_id;
  return (PyObject *)p;
}

static void Proto_dealloc(PyObject *self) {
  Py_XDECREF((PyObject *)((ProtoObject *)self)->store);
  strata_py_free_object(self);
}

static PyObject *Proto_repr(PyObject *self) {
  ProtoObject *p = (ProtoObject *)self;
  return PyUnicode_FromFormat("<strata.Proto of region %llu in %R>",
                              (unsigned long long)p->region_id, p->store->path);
}

/* The end of every call: leaves the store, raises for rc < 0 (before any
 * other library call on this thread, which would replace the detail). */
static PyObject *finish_call(ProtoObject *p, int rc) {
  if (rc < 0)
    strata_py_raise(rc);
  strata_py_store_leave(p->store);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *Proto_put(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"layer_id", "data", "name", "metadata", NULL};
  ProtoObject *p = (ProtoObject *)self;
  unsigned long long id;
  Py_buffer data;
  PyObject *name = Py_None, *metadata = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Ky*|OO:put", kwlist, &id,
                                   &data, &name, &metadata))
    return NULL;
  const char *cname = NULL;
  Py_ssize_t cname_len = 0;
  PyObject *meta = NULL;
  if (name != Py_None &&
      (!PyUnicode_Check(name) ||
       (cname = PyUnicode_AsUTF8AndSize(name, &cname_len)) == NULL)) {
    if (!PyErr_Occurred())
      strata_py_type_error("put(): name", "a str or None", name);
    PyBuffer_Release(&data);
    return NULL;
  }
  if (metadata != Py_None && (meta = strata_py_json_dumps(metadata)) == NULL) {
    PyBuffer_Release(&data);
    return NULL;
  }
  if (strata_py_store_enter(p->store) < 0) {
    Py_XDECREF(meta);
    PyBuffer_Release(&data);
    return NULL;
  }
  const char *mtext = meta != NULL ? PyBytes_AsString(meta) : NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc =
      strata_proto_put(p->proto, id, cname, (size_t)cname_len, mtext, data.buf,
                       (size_t)data.len);
  Py_END_ALLOW_THREADS PyObject *out = finish_call(p, rc);
  Py_XDECREF(meta);
  PyBuffer_Release(&data);
  return out;
}

static PyObject *Proto_remove(PyObject *self, PyObject *arg) {
  ProtoObject *p = (ProtoObject *)self;
  unsigned long long id = PyLong_AsUnsignedLongLong(arg);
  if (id == (unsigned long long)-1 && PyErr_Occurred())
    return NULL;
  if (strata_py_store_enter(p->store) < 0)
    return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = strata_proto_remove(p->proto, id);
  Py_END_ALLOW_THREADS return finish_call(p, rc);
}

static PyObject *Proto_discard(PyObject *self, PyObject *unused) {
  (void)unused;
  ProtoObject *p = (ProtoObject *)self;
  if (strata_py_store_enter(p->store) < 0)
    return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = strata_proto_discard(p->proto);
  Py_END_ALLOW_THREADS return finish_call(p, rc);
}

static PyObject *Proto_get_info(PyObject *self, void *unused) {
  (void)unused;
  ProtoObject *p = (ProtoObject *)self;
  if (strata_py_store_enter(p->store) < 0)
    return NULL;
  strata_proto_info info;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = strata_proto_info_get(p->proto, &info);
  Py_END_ALLOW_THREADS if (rc < 0) {
    finish_call(p, rc);
    return NULL;
  }
  strata_py_store_leave(p->store);
  return Py_BuildValue(
      "{s:K,s:K,s:K,s:K,s:K}", "region_id", (unsigned long long)info.region_id,
      "layers", (unsigned long long)info.layers, "changed",
      (unsigned long long)info.changed, "bytes", (unsigned long long)info.bytes,
      "age_ms", (unsigned long long)info.age_ms);
}

static PyObject *Proto_get_region_id(PyObject *self, void *unused) {
  (void)unused;
  return PyLong_FromUnsignedLongLong(((ProtoObject *)self)->region_id);
}

static PyObject *Proto_enter(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_store_check(((ProtoObject *)self)->store) < 0)
    return NULL;
  Py_INCREF(self);
  return self;
}

static PyObject *Proto_exit(PyObject *self, PyObject *const *args,
                            Py_ssize_t nargs) {
  (void)self;
  (void)args;
  (void)nargs;
  Py_RETURN_NONE;
}

static PyMethodDef Proto_methods[] = {
    {"put", (PyCFunction)(void (*)(void))Proto_put,
     METH_VARARGS | METH_KEYWORDS,
     "put(layer_id, data, name=None, metadata=None)\n--\n\nAdds or replaces "
     "layer `layer_id` with the bytes of `data` (any object with the buffer "
     "protocol; copied), its name (str, unique in the region) and metadata "
     "(a dict or list, stored as JSON, or a str of JSON text). Visible to "
     "snapshots begun after the call. Raises strata.LimitError over the "
     "memory limit, strata.Error for a duplicate name or bad JSON; a failed "
     "put changes nothing. Releases the GIL."},
    {"remove", Proto_remove, METH_O,
     "remove(layer_id)\n--\n\nRemoves a layer (of the proto or of the "
     "region's file). strata.NotFoundError when there is none."},
    {"discard", Proto_discard, METH_NOARGS,
     "discard()\n--\n\nDrops the proto's changes: the region goes back to "
     "its file (or disappears if it had none). Later calls on this Proto "
     "raise strata.Error; Store.proto() opens a new one."},
    {"__enter__", Proto_enter, METH_NOARGS, "Returns the proto."},
    {"__exit__", (PyCFunction)(void (*)(void))Proto_exit, METH_FASTCALL,
     "Does nothing: the proto and its changes stay in the store (visible "
     "to new snapshots) until Store.crystallize() writes them to the "
     "region's file, or they are lost at Store.close()."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Proto_getset[] = {
    {"info", Proto_get_info, NULL,
     "dict: region_id, layers (the region has now), changed (layers put or "
     "removed since its file), bytes (heap bytes the proto holds, whole "
     "pool blocks: what crystallizing it gives back; see strata_proto_info "
     "in <strata/proto.h>), age_ms.",
     NULL},
    {"region_id", Proto_get_region_id, NULL, "The region's id.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Proto_slots[] = {
    {Py_tp_dealloc, Proto_dealloc},
    {Py_tp_repr, Proto_repr},
    {Py_tp_methods, Proto_methods},
    {Py_tp_getset, Proto_getset},
    {Py_tp_doc,
     "The proto (mutable, heap-resident copy) of a region: Store.proto(). "
     "Its changes are visible to snapshots begun after each call, and "
     "become a region file with Store.crystallize(region). A context "
     "manager whose exit does nothing destructive: the proto stays until "
     "crystallized, discarded or the store is closed."},
    {0, NULL},
};

static PyType_Spec Proto_spec = {
    .name = "strata.Proto",
    .basicsize = sizeof(ProtoObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Proto_slots,
};

int strata_py_init_proto(PyObject *module) {
  return strata_py_add_type(module, &Proto_spec, "Proto", &strata_py_ProtoType);
}
