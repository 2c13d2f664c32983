/* strata.Region: one region file, opened on its own (strata_region_open),
 * and the owner of the Layers read from it (strata_py.h, "owners").
 *
 * Lookups keep the GIL: they are a hash probe into the mapping, cheaper
 * than releasing and taking it again. Opening (which reads and validates
 * the index) and verify() (which reads the whole file) release it; while
 * verify() runs without the GIL it counts as an export, so that another
 * thread's close() gets BufferError instead of unmapping the file under
 * it. */
#include "strata_py.h"

#include <inttypes.h>
#include <string.h>

typedef struct {
  STRATA_PY_OWNER_HEAD;
  strata_region *region; /* NULL once closed */
  PyObject *path;        /* str, as given (os.fsdecode'd) */
} RegionObject;

typedef struct {
  PyObject_HEAD PyObject *region; /* strong: a RegionObject */
  strata_region_iter it;
} RegionIterObject;

static PyObject *region_type;
static PyObject *region_iter_type;

static void region_finish(PyObject *obj) {
  RegionObject *self = (RegionObject *)obj;
  strata_region_close(self->region);
  self->region = NULL;
}

static PyObject *region_new(PyTypeObject *type, PyObject *args,
                            PyObject *kwds) {
  static char *kwlist[] = {"path", NULL};
  PyObject *path = NULL; /* bytes, from PyUnicode_FSConverter */
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&:Region", kwlist,
                                   PyUnicode_FSConverter, &path))
    return NULL;
  allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
  RegionObject *self = (RegionObject *)alloc(type, 0);
  if (!self) {
    Py_DECREF(path);
    return NULL;
  }
  /* Closed until the file is open, so that a failed open deallocates
   * without finishing anything. */
  strata_py_owner_of((PyObject *)self)->state = STRATA_PY_OWNER_CLOSED;
  self->path = PyUnicode_DecodeFSDefault(PyBytes_AsString(path));
  if (!self->path) {
    Py_DECREF(path);
    Py_DECREF(self);
    return NULL;
  }
  const char *cpath = PyBytes_AsString(path);
  strata_region *region = NULL;
  int rc;
  PyThreadState *ts = PyEval_SaveThread();
  rc = strata_region_open(cpath, 0, &region);
  PyEval_RestoreThread(ts);
  if (rc < 0) {
    strata_py_raise(rc);
    Py_DECREF(path);
    Py_DECREF(self);
    return NULL;
  }
  Py_DECREF(path);
  self->region = region;
  strata_py_owner_init((PyObject *)self, "region", region_finish);
  return (PyObject *)self;
}

static void region_dealloc(PyObject *obj) {
  RegionObject *self = (RegionObject *)obj;
  strata_py_owner_dealloc(obj);
  Py_XDECREF(self->path);
  strata_py_free_object(obj);
}

static int region_check(RegionObject *self) {
  return strata_py_owner_check((PyObject *)self);
}

static PyObject *region_close(PyObject *obj, PyObject *Py_UNUSED(ignored)) {
  if (strata_py_owner_close(obj, false) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *region_enter(PyObject *obj, PyObject *Py_UNUSED(ignored)) {
  if (region_check((RegionObject *)obj) < 0)
    return NULL;
  Py_INCREF(obj);
  return obj;
}

static PyObject *region_exit(PyObject *obj, PyObject *Py_UNUSED(args)) {
  if (strata_py_owner_close(obj, false) < 0)
    return NULL;
  Py_RETURN_FALSE;
}

/* The layer id `key` stands for: 1 with *id set, 0 when `key` is an int
 * no layer can have (negative, wider than 64 bits), -1 with TypeError when
 * it is not an int. */
static int key_to_id(PyObject *key, uint64_t *id) {
  if (!PyLong_Check(key)) {
    PyErr_Format(PyExc_TypeError,
                 "a layer is looked up by id (int) or name (str), not %R",
                 (PyObject *)Py_TYPE(key));
    return -1;
  }
  unsigned long long v = PyLong_AsUnsignedLongLong(key);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
      return -1;
    PyErr_Clear();
    return 0;
  }
  *id = v;
  return 1;
}

/* Looks `key` (int id or str name) up: 1 with *out filled, 0 when the
 * region has no such layer (the library's detail is set, except for ids
 * out of u64's range), -1 with an exception (TypeError, closed region). */
static int region_lookup(RegionObject *self, PyObject *key, strata_layer *out) {
  if (region_check(self) < 0)
    return -1;
  int rc;
  if (PyUnicode_Check(key)) {
    Py_ssize_t len;
    const char *name = PyUnicode_AsUTF8AndSize(key, &len);
    if (!name)
      return -1;
    rc = strata_region_get_by_name(self->region, name, (size_t)len, out);
  } else {
    uint64_t id;
    int ok = key_to_id(key, &id);
    if (ok <= 0)
      return ok;
    rc = strata_region_get(self->region, id, out);
  }
  if (rc == STRATA_E_NOT_FOUND)
    return 0;
  if (rc < 0)
    return strata_py_raise_int(rc);
  return 1;
}

static PyObject *region_subscript(PyObject *obj, PyObject *key) {
  RegionObject *self = (RegionObject *)obj;
  strata_layer l;
  int found = region_lookup(self, key, &l);
  if (found < 0)
    return NULL;
  if (found == 0) {
    uint64_t id;
    if (PyUnicode_Check(key) || key_to_id(key, &id) == 1)
      return strata_py_raise(STRATA_E_NOT_FOUND); /* the library's detail */
    /* An id beyond u64 never reached the library: say it here. */
    return strata_py_raise_msg(STRATA_E_NOT_FOUND, "%U: layer %R not found",
                               self->path, key);
  }
  return strata_py_layer_new(obj, &l);
}

/* get() and get_by_name(): the Layer of `key`, or `dflt` on a miss. */
static PyObject *lookup_or_default(PyObject *obj, PyObject *key,
                                   PyObject *dflt) {
  strata_layer l;
  int found = region_lookup((RegionObject *)obj, key, &l);
  if (found < 0)
    return NULL;
  if (found == 0) {
    Py_INCREF(dflt);
    return dflt;
  }
  return strata_py_layer_new(obj, &l);
}

static PyObject *region_get(PyObject *obj, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"key", "default"};
  PyObject *key = nargs > 0 ? args[0] : NULL;
  PyObject *dflt = nargs > 1 ? args[1] : Py_None;
  if (nargs > 2)
    return PyErr_Format(PyExc_TypeError, "get() takes at most 2 arguments");
  Py_ssize_t nkw = kwnames ? PyTuple_Size(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *kw = PyTuple_GetItem(kwnames, i);
    int slot = -1;
    for (int n = 0; n < 2; n++)
      if (PyUnicode_CompareWithASCIIString(kw, names[n]) == 0)
        slot = n;
    if (slot < 0 || slot < nargs)
      return PyErr_Format(PyExc_TypeError,
                          "get() got an unexpected or repeated argument %R",
                          kw);
    if (slot == 0)
      key = args[nargs + i];
    else
      dflt = args[nargs + i];
  }
  if (!key)
    return PyErr_Format(PyExc_TypeError, "get() missing its key (id or name)");
  return lookup_or_default(obj, key, dflt);
}

static PyObject *region_get_by_name(PyObject *obj, PyObject *args,
                                    PyObject *kwds) {
  static char *kwlist[] = {"name", "default", NULL};
  PyObject *name, *dflt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "U|O:get_by_name", kwlist, &name,
                                   &dflt))
    return NULL;
  return lookup_or_default(obj, name, dflt);
}

static int region_contains(PyObject *obj, PyObject *key) {
  strata_layer l;
  return region_lookup((RegionObject *)obj, key, &l);
}

static Py_ssize_t region_length(PyObject *obj) {
  RegionObject *self = (RegionObject *)obj;
  if (region_check(self) < 0)
    return -1;
  return (Py_ssize_t)strata_region_layer_count(self->region);
}

/* Adds key: value to `dict`, stealing `value` (NULL: fails). */
static int put(PyObject *dict, const char *key, PyObject *value) {
  if (!value)
    return -1;
  int rc = PyDict_SetItemString(dict, key, value);
  Py_DECREF(value);
  return rc;
}

static PyObject *u64(uint64_t v) {
  return PyLong_FromUnsignedLongLong(v);
}

int strata_py_delta_binding(const strata_region *file, PyObject *dict) {
  strata_region_delta_info di;
  int rc = strata_region_delta(file, &di);
  if (rc == STRATA_E_NOT_FOUND)
    return 0;
  if (rc < 0)
    return strata_py_raise_int(rc);
  if (put(dict, "depth", u64(di.depth)) < 0 ||
      put(dict, "parent_checksum", u64(di.parent_checksum)) < 0 ||
      put(dict, "base_checksum", u64(di.base_checksum)) < 0)
    return -1;
  return 1;
}

/* info["delta"]: None for a base file; for a delta file its binding and
 * its tombstones, counted by a walk of its index (the header does not
 * hold the count; a delta holds only what one crystallization changed). */
static PyObject *delta_info(const strata_region *region) {
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
  int rc = strata_py_delta_binding(region, d);
  if (rc <= 0) {
    Py_DECREF(d);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
  }
  uint64_t tombstones = 0;
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(region, &it);
  while ((rc = strata_region_next(&it, &l)) > 0)
    tombstones += (l.flags & STRATA_LAYER_TOMBSTONE) != 0;
  if (rc < 0) {
    Py_DECREF(d);
    return strata_py_raise(rc);
  }
  if (put(d, "tombstones", u64(tombstones)) < 0) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

static PyObject *region_get_info(PyObject *obj, void *closure) {
  (void)closure;
  RegionObject *self = (RegionObject *)obj;
  if (region_check(self) < 0)
    return NULL;
  strata_region_info info;
  int rc = strata_region_info_get(self->region, &info);
  if (rc < 0)
    return strata_py_raise(rc);
  PyObject *metadata;
  if (info.metadata[0])
    metadata = strata_py_json_loads(info.metadata, strlen(info.metadata));
  else
    metadata = Py_NewRef(Py_None);
  PyObject *d = PyDict_New();
  if (!d) {
    Py_XDECREF(metadata);
    return NULL;
  }
  Py_INCREF(self->path);
  if (put(d, "path", self->path) < 0 || put(d, "id", u64(info.id)) < 0 ||
      put(d, "name", PyUnicode_FromString(info.name)) < 0 ||
      put(d, "metadata", metadata) < 0 ||
      put(d, "layer_count", u64(info.layer_count)) < 0 ||
      put(d, "named_count", u64(info.named_count)) < 0 ||
      put(d, "format",
          PyUnicode_FromFormat("%u.%u", (unsigned)info.format_major,
                               (unsigned)info.format_minor)) < 0 ||
      put(d, "flags", u64(info.flags)) < 0 ||
      put(d, "dense_ids",
          PyBool_FromLong((info.flags & STRATA_REGION_DENSE_IDS) != 0)) < 0 ||
      put(d, "file_size", u64(info.file_size)) < 0 ||
      put(d, "data_offset", u64(info.data_offset)) < 0 ||
      put(d, "data_size", u64(info.data_size)) < 0 ||
      put(d, "index_offset", u64(info.index_offset)) < 0 ||
      put(d, "data_align", u64(info.data_align)) < 0 ||
      put(d, "header_checksum", u64(info.header_checksum)) < 0 ||
      put(d, "index_checksum", u64(info.index_checksum)) < 0 ||
      put(d, "delta", delta_info(self->region)) < 0) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

static PyObject *region_get_path(PyObject *obj, void *closure) {
  (void)closure;
  return Py_NewRef(((RegionObject *)obj)->path);
}

static PyObject *region_get_closed(PyObject *obj, void *closure) {
  (void)closure;
  return PyBool_FromLong(strata_py_owner_of(obj)->state !=
                         STRATA_PY_OWNER_OPEN);
}

static PyObject *region_verify(PyObject *obj, PyObject *Py_UNUSED(ignored)) {
  RegionObject *self = (RegionObject *)obj;
  if (region_check(self) < 0)
    return NULL;
  uint64_t bad_id = 0;
  int rc;
  /* The export keeps close() (from another thread, while the GIL is
   * released) from unmapping the file under the check. */
  strata_py_owner_export(obj);
  PyThreadState *ts = PyEval_SaveThread();
  rc = strata_region_verify(self->region, &bad_id);
  PyEval_RestoreThread(ts);
  if (rc < 0)
    strata_py_raise(rc);
  strata_py_owner_release(obj);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *region_repr(PyObject *obj) {
  RegionObject *self = (RegionObject *)obj;
  if (strata_py_owner_of(obj)->state != STRATA_PY_OWNER_OPEN)
    return PyUnicode_FromFormat("<strata.Region %R (closed)>", self->path);
  strata_region_info info;
  if (strata_region_info_get(self->region, &info) < 0)
    return PyUnicode_FromFormat("<strata.Region %R>", self->path);
  return PyUnicode_FromFormat("<strata.Region %R id=%llu name=%s layers=%llu>",
                              self->path, (unsigned long long)info.id,
                              info.name, (unsigned long long)info.layer_count);
}

static PyObject *region_iter(PyObject *obj) {
  RegionObject *self = (RegionObject *)obj;
  if (region_check(self) < 0)
    return NULL;
  RegionIterObject *it =
      PyObject_New(RegionIterObject, (PyTypeObject *)region_iter_type);
  if (!it)
    return NULL;
  Py_INCREF(obj);
  it->region = obj;
  strata_region_iter_init(self->region, &it->it);
  return (PyObject *)it;
}

static PyObject *region_iter_next(PyObject *obj) {
  RegionIterObject *self = (RegionIterObject *)obj;
  if (region_check((RegionObject *)self->region) < 0)
    return NULL;
  strata_layer l;
  int rc = strata_region_next(&self->it, &l);
  if (rc < 0)
    return strata_py_raise(rc);
  if (rc == 0)
    return NULL; /* StopIteration */
  return strata_py_layer_new(self->region, &l);
}

static void region_iter_dealloc(PyObject *obj) {
  Py_DECREF(((RegionIterObject *)obj)->region);
  strata_py_free_object(obj);
}

static PyMethodDef region_methods[] = {
    {"close", region_close, METH_NOARGS,
     "close()\n--\n\n"
     "Unmaps the region. Raises BufferError, and leaves it open, while "
     "buffers exported from its layers (memoryview, numpy arrays, DLPack "
     "tensors) are alive. Its Layers then raise strata.Error on every "
     "access. Closing a closed region does nothing."},
    {"__enter__", region_enter, METH_NOARGS, "Returns the region."},
    {"__exit__", region_exit, METH_VARARGS, "Closes the region (see close())."},
    {"get", (PyCFunction)(void (*)(void))region_get,
     METH_FASTCALL | METH_KEYWORDS,
     "get(key, default=None)\n--\n\n"
     "The Layer with id `key` (int) or name `key` (str), or `default` when "
     "the region has none."},
    {"get_by_name", (PyCFunction)(void (*)(void))region_get_by_name,
     METH_VARARGS | METH_KEYWORDS,
     "get_by_name(name, default=None)\n--\n\n"
     "The Layer named `name`, or `default` when the region has none."},
    {"verify", region_verify, METH_NOARGS,
     "verify()\n--\n\n"
     "Reads the whole file and checks every layer's checksum and the name "
     "index. Returns None when intact; raises strata.CorruptError naming "
     "the first bad layer otherwise. Releases the GIL while it reads."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef region_getset[] = {
    {"info", region_get_info, NULL,
     "Facts about the region, a new dict: path, id, name, metadata (parsed; "
     "None when the region has none), layer_count, named_count, format "
     "('1.0'), flags, dense_ids, file_size, data_offset, data_size, "
     "index_offset, data_align, header_checksum, index_checksum, and delta: "
     "None for a base file; for a delta file (format 1.1, a region's "
     "NAME.k.delta) a dict of depth (1 for the first over the base), "
     "parent_checksum and base_checksum (the header checksums of the file "
     "it applies over and of its base) and tombstones (the layers it "
     "removes, counted by a walk of its index). layer_count counts a delta's "
     "tombstones too.",
     NULL},
    {"path", region_get_path, NULL, "The path the region was opened with.",
     NULL},
    {"closed", region_get_closed, NULL, "True once the region is closed.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot region_slots[] = {
    {Py_tp_doc,
     "Region(path)\n--\n\n"
     "A region file, mapped read-only and validated at open (raises "
     "strata.CorruptError for a damaged file, strata.StrataOSError for a "
     "missing one).\n\n"
     "len(r) is its layer count; `17 in r` and `'name' in r` test for a "
     "layer; r[17] and r['name'] return a strata.Layer (strata.NotFoundError, "
     "a KeyError, on a miss); iteration yields the layers in id order. A "
     "context manager: leaving the block closes it."},
    {Py_tp_new, region_new},
    {Py_tp_dealloc, region_dealloc},
    {Py_tp_repr, region_repr},
    {Py_tp_iter, region_iter},
    {Py_tp_methods, region_methods},
    {Py_tp_getset, region_getset},
    {Py_mp_length, region_length},
    {Py_mp_subscript, region_subscript},
    {Py_sq_contains, region_contains},
    {0, NULL},
};

static PyType_Spec region_spec = {
    .name = "strata.Region",
    .basicsize = sizeof(RegionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = region_slots,
};

static PyType_Slot region_iter_slots[] = {
    {Py_tp_doc, "An iterator over a region's layers, in id order."},
    {Py_tp_dealloc, region_iter_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, region_iter_next},
    {0, NULL},
};

static PyType_Spec region_iter_spec = {
    .name = "strata.RegionIterator",
    .basicsize = sizeof(RegionIterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = region_iter_slots,
};

int strata_py_init_region(PyObject *module) {
  if (strata_py_add_type(module, &region_iter_spec, NULL, &region_iter_type) <
      0)
    return -1;
  return strata_py_add_type(module, &region_spec, "Region", &region_type);
}
