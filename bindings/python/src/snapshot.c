/* strata.Snapshot: a store's snapshot (strata_txn) as an owner of Layers,
 * and its iterator over a region's layers (strata_py_store.h).
 *
 * A Snapshot is begun on its Store's reader thread (store.c) and ended
 * there when it finishes: when its user closes it (close(), leaving its
 * `with` block, closing the Store) and no buffer of its layers is
 * exported, or else when the last export is released (the owner protocol
 * of strata_py.h). Until then every pointer a lookup returned stays valid
 * whatever writers do, which is what lets a Layer hand out the memory
 * itself. Lookups keep the GIL: they take no lock and make no system call,
 * and the GIL is what serializes them on the reader slot the Store's
 * snapshots share. */
#include "strata_py_store.h"

#include <string.h>

PyObject *strata_py_SnapshotType;
static PyObject *LayersType;

typedef struct {
  STRATA_PY_OWNER_HEAD;
  strata_py_store *store; /* strong */
  strata_py_snaplink link;
  bool begun; /* txn is open on the reader thread */
  strata_txn txn;
} SnapshotObject;

static void Snapshot_finish(PyObject *self) {
  SnapshotObject *s = (SnapshotObject *)self;
  if (!s->begun)
    return;
  s->begun = false;
  strata_py_store_read_end(s->store, &s->txn, &s->link);
}

PyObject *strata_py_snapshot_new(strata_py_store *store) {
  PyTypeObject *type = (PyTypeObject *)strata_py_SnapshotType;
  SnapshotObject *s = (SnapshotObject *)PyType_GenericAlloc(type, 0);
  if (s == NULL)
    return NULL;
  strata_py_owner_init((PyObject *)s, "snapshot", Snapshot_finish);
  Py_INCREF((PyObject *)store);
  s->store = store;
  s->link.snapshot = (PyObject *)s;
  if (strata_py_store_read_begin(store, &s->txn, &s->link) < 0) {
    Py_DECREF(s);
    return NULL;
  }
  s->begun = true;
  return (PyObject *)s;
}

const strata_txn *strata_py_snapshot_txn(PyObject *snap) {
  if (!PyObject_TypeCheck(snap, (PyTypeObject *)strata_py_SnapshotType)) {
    strata_py_type_error("the object", "a strata.Snapshot", snap);
    return NULL;
  }
  if (strata_py_owner_check(snap) < 0)
    return NULL;
  return &((SnapshotObject *)snap)->txn;
}

strata_py_store *strata_py_snapshot_store(PyObject *snap) {
  return ((SnapshotObject *)snap)->store;
}

static void Snapshot_dealloc(PyObject *self) {
  SnapshotObject *s = (SnapshotObject *)self;
  strata_py_owner_dealloc(self);
  /* In a fork() child the owner was not finished: only unlink it from the
   * (copied) Store, which does nothing more there. */
  if (s->begun) {
    s->begun = false;
    strata_py_store_read_end(s->store, &s->txn, &s->link);
  }
  Py_XDECREF((PyObject *)s->store);
  strata_py_free_object(self);
}

static PyObject *Snapshot_repr(PyObject *self) {
  SnapshotObject *s = (SnapshotObject *)self;
  static const char *states[] = {"", " closing", " closed"};
  return PyUnicode_FromFormat("<strata.Snapshot of %R%s>", s->store->path,
                              states[strata_py_owner_of(self)->state]);
}

/* The region id of `key`, as this snapshot sees it. */
static int region_of(SnapshotObject *s, PyObject *key, uint64_t *id) {
  const char *name = NULL;
  Py_ssize_t len = 0;
  int kind = strata_py_key(key, "region", id, &name, &len);
  if (kind <= 0)
    return kind;
  int rc = strata_find_region(&s->txn, name, (size_t)len, id);
  return rc < 0 ? strata_py_raise_int(rc) : 0;
}

/* One lookup: region and layer each an id or a name. 0 found, or a
 * negative library code (the detail set by the call), or -1 with a Python
 * exception already set (rc_py). */
static int lookup(SnapshotObject *s, PyObject *region, PyObject *layer,
                  strata_layer *out, bool *py_error) {
  uint64_t rid, lid = 0;
  const char *name = NULL;
  Py_ssize_t len = 0;
  *py_error = true;
  if (region_of(s, region, &rid) < 0)
    return -1;
  int kind = strata_py_key(layer, "layer", &lid, &name, &len);
  if (kind < 0)
    return -1;
  *py_error = false;
  return kind == 0 ? strata_get(&s->txn, rid, lid, out)
                   : strata_get_by_name(&s->txn, rid, name, (size_t)len, out);
}

static PyObject *Snapshot_get(PyObject *self, PyObject *const *args,
                              Py_ssize_t nargs) {
  SnapshotObject *s = (SnapshotObject *)self;
  if (nargs != 2)
    return PyErr_Format(PyExc_TypeError,
                        "get() takes a region and a layer (%zd given)", nargs);
  if (strata_py_owner_check(self) < 0)
    return NULL;
  strata_layer l;
  int rc;
  /* The common case first: two ints, one lookup. */
  if (PyLong_CheckExact(args[0]) && PyLong_CheckExact(args[1])) {
    unsigned long long r = PyLong_AsUnsignedLongLong(args[0]);
    unsigned long long i = PyLong_AsUnsignedLongLong(args[1]);
    if (!PyErr_Occurred()) {
      rc = strata_get(&s->txn, r, i, &l);
      return rc < 0 ? strata_py_raise(rc) : strata_py_layer_new(self, &l);
    }
    PyErr_Clear();
  }
  bool py_error;
  rc = lookup(s, args[0], args[1], &l, &py_error);
  if (rc < 0)
    return py_error ? NULL : strata_py_raise(rc);
  return strata_py_layer_new(self, &l);
}

/* ---- get_many ------------------------------------------------------------ */

/* How a pair of get_many() is looked up: the batch by ids, the batch by
 * names, one by one (an id region with a layer name: get_many_by_name
 * wants the region's name), or not at all (a region name not found). */
enum { BY_ID, BY_NAME, ONE, MISS };

typedef struct pair {
  int how;
  size_t slot;      /* index in its batch */
  PyObject *region; /* borrowed from the list */
  PyObject *layer;
} pair;

/* Classifies pair `i` of `item` into p and the batches. A region name is
 * resolved once per run of equal names (paths stay in one region). */
static int classify(SnapshotObject *s, Py_ssize_t i, PyObject *item, pair *p,
                    strata_layer_ref *ids, size_t *n_ids,
                    strata_layer_name_ref *names, size_t *n_names,
                    PyObject **last_name, uint64_t *last_id, int *last_rc) {
  if (!PyTuple_Check(item) || PyTuple_Size(item) != 2) {
    PyErr_Format(PyExc_TypeError,
                 "get_many(): item %zd is not a (region, layer) tuple: %R", i,
                 item);
    return -1;
  }
  p->region = PyTuple_GetItem(item, 0);
  p->layer = PyTuple_GetItem(item, 1);
  uint64_t rid = 0, lid = 0;
  const char *rname = NULL, *lname = NULL;
  Py_ssize_t rlen = 0, llen = 0;
  int rk = strata_py_key(p->region, "region", &rid, &rname, &rlen);
  int lk = rk < 0 ? -1 : strata_py_key(p->layer, "layer", &lid, &lname, &llen);
  if (lk < 0)
    return -1;
  if (rk == 1 && lk == 1) {
    p->how = BY_NAME;
    p->slot = (*n_names)++;
    names[p->slot] =
        (strata_layer_name_ref){rname, (size_t)rlen, lname, (size_t)llen};
    return 0;
  }
  if (rk == 1) {
    if (*last_name == NULL || PyUnicode_Compare(*last_name, p->region) != 0) {
      *last_name = p->region;
      *last_rc = strata_find_region(&s->txn, rname, (size_t)rlen, last_id);
    }
    if (*last_rc < 0) {
      p->how = MISS;
      return 0;
    }
    rid = *last_id;
  }
  if (lk == 1) {
    p->how = ONE;
    return 0;
  }
  p->how = BY_ID;
  p->slot = (*n_ids)++;
  ids[p->slot] = (strata_layer_ref){rid, lid};
  return 0;
}

/* The result for one pair: a Layer, or None for a miss. */
static PyObject *pair_result(SnapshotObject *s, const pair *p,
                             const strata_layer *by_id,
                             const strata_layer *by_name) {
  strata_layer one;
  const strata_layer *l = NULL;
  if (p->how == BY_ID)
    l = &by_id[p->slot];
  else if (p->how == BY_NAME)
    l = &by_name[p->slot];
  else if (p->how == ONE) {
    bool py_error;
    int rc = lookup(s, p->region, p->layer, &one, &py_error);
    if (rc < 0 && py_error)
      return NULL;
    if (rc < 0 && rc != STRATA_E_NOT_FOUND && rc != STRATA_E_NO_REGION)
      return strata_py_raise(rc);
    if (rc == 0)
      l = &one;
  }
  if (l == NULL || l->data == NULL)
    Py_RETURN_NONE;
  return strata_py_layer_new((PyObject *)s, l);
}

/* Below this many pairs the arrays live on the stack (a path is short). */
#define GET_MANY_STACK 64

static PyObject *Snapshot_get_many(PyObject *self, PyObject *refs) {
  SnapshotObject *s = (SnapshotObject *)self;
  if (strata_py_owner_check(self) < 0)
    return NULL;
  PyObject *list = PySequence_List(refs);
  if (list == NULL)
    return NULL;
  /* Consuming `refs` ran Python code (a generator), which may have closed
   * this snapshot or its store: the txn would then answer every pair with
   * a miss. */
  if (strata_py_owner_check(self) < 0) {
    Py_DECREF(list);
    return NULL;
  }
  Py_ssize_t n = PyList_Size(list);
  size_t un = (size_t)n;
  pair pairs_s[GET_MANY_STACK];
  strata_layer_ref ids_s[GET_MANY_STACK];
  strata_layer_name_ref names_s[GET_MANY_STACK];
  strata_layer out_ids_s[GET_MANY_STACK], out_names_s[GET_MANY_STACK];
  pair *pairs = pairs_s;
  strata_layer_ref *ids = ids_s;
  strata_layer_name_ref *names = names_s;
  strata_layer *out_ids = out_ids_s, *out_names = out_names_s;
  void *heap = NULL;
  if (un > GET_MANY_STACK) {
    size_t each =
        sizeof *pairs + sizeof *ids + sizeof *names + 2 * sizeof(strata_layer);
    heap = PyMem_Malloc(un * each);
    if (heap == NULL) {
      Py_DECREF(list);
      return PyErr_NoMemory();
    }
    /* Largest alignment first: every element is 8-byte aligned anyway. */
    out_ids = heap;
    out_names = out_ids + un;
    names = (strata_layer_name_ref *)(out_names + un);
    ids = (strata_layer_ref *)(names + un);
    pairs = (pair *)(ids + un);
  }
  size_t n_ids = 0, n_names = 0;
  PyObject *last_name = NULL;
  uint64_t last_id = 0;
  int last_rc = 0;
  PyObject *result = NULL;
  for (Py_ssize_t i = 0; i < n; i++)
    if (classify(s, i, PyList_GetItem(list, i), &pairs[i], ids, &n_ids, names,
                 &n_names, &last_name, &last_id, &last_rc) < 0)
      goto done;
  if (n_ids > 0)
    strata_get_many(&s->txn, ids, n_ids, out_ids);
  if (n_names > 0)
    strata_get_many_by_name(&s->txn, names, n_names, out_names);
  result = PyList_New(n);
  for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
    PyObject *item = pair_result(s, &pairs[i], out_ids, out_names);
    if (item == NULL)
      Py_CLEAR(result);
    else
      PyList_SetItem(result, i, item);
  }
done:
  PyMem_Free(heap);
  Py_DECREF(list);
  return result;
}

/* ---- get_many_in ----------------------------------------------------------
 *
 * get_many(refs) spends ~180 ns per layer on top of the lookup on what a
 * (region, layer) pair costs in Python: parsing the tuple, converting two
 * ints, classifying the pair (docs/BENCHMARKS.md, "Python"). A path inside
 * one region needs none of that: get_many_in(region, ids) resolves the
 * region once and reads the ids straight from a list or tuple of ints, or
 * from any 1-D buffer of uint64 (a numpy array, array('Q')) without making
 * a Python object per id. The lookups go through strata_get_many() in
 * chunks of GET_MANY_STACK, so that nothing is allocated but the Layers and
 * the result list, and each chunk is pipelined by the library. */

/* Where get_many_in() reads its ids from: a list or tuple of ints (`seq`,
 * one PyLong conversion per id), or a buffer (`buf`, read in place). */
typedef struct ids_source {
  PyObject *seq; /* strong: a list or a tuple, or NULL for a buffer */
  Py_buffer buf;
  bool has_buf;
  Py_ssize_t n;
} ids_source;

/* Whether buffer format `f` is one unsigned 64-bit integer in native byte
 * order: "Q", or "L" where an unsigned long has 8 bytes (numpy's uint64 on
 * LP64 systems), with an optional native-order prefix ('@', '=', or the
 * host's own '<' / '>'). The item size is checked apart. */
static bool is_u64_format(const char *f) {
  if (f == NULL)
    return false; /* the exporter ignored PyBUF_FORMAT: unknown items */
  const int one = 1;
  char own = *(const char *)&one == 1 ? '<' : '>';
  if (*f == '@' || *f == '=' || *f == own)
    f++;
  return (f[0] == 'Q' || (f[0] == 'L' && sizeof(unsigned long) == 8)) &&
         f[1] == '\0';
}

/* Opens `ids` as a source: a list or a tuple as is, any other buffer
 * exporter as a 1-D buffer of uint64, anything else iterable as a list of
 * its items (running its Python code now). 0, or -1 with TypeError (what
 * was given and what is wanted) or ValueError (a buffer not 1-D). */
static int ids_open(PyObject *ids, ids_source *src) {
  *src = (ids_source){0};
  if (PyList_CheckExact(ids) || PyTuple_CheckExact(ids)) {
    Py_INCREF(ids);
    src->seq = ids;
    src->n = PySequence_Size(ids);
    return 0;
  }
  if (PyObject_CheckBuffer(ids)) {
    if (PyObject_GetBuffer(ids, &src->buf, PyBUF_RECORDS_RO) < 0)
      return -1;
    src->has_buf = true;
    const char *why = NULL;
    if (src->buf.ndim != 1)
      why = "is not one-dimensional";
    else if (src->buf.itemsize != 8 || !is_u64_format(src->buf.format))
      why = "is not of uint64";
    if (why != NULL) {
      PyErr_Format(src->buf.ndim != 1 ? PyExc_ValueError : PyExc_TypeError,
                   "get_many_in(): the ids buffer %s (format '%s', item "
                   "size %zd, %d dimension%s); pass a 1-D buffer of uint64 "
                   "(numpy.asarray(ids, dtype=numpy.uint64), "
                   "array.array('Q', ids)) or a list of ints",
                   why, src->buf.format ? src->buf.format : "B",
                   src->buf.itemsize, src->buf.ndim,
                   src->buf.ndim == 1 ? "" : "s");
      PyBuffer_Release(&src->buf);
      src->has_buf = false;
      return -1;
    }
    src->n = src->buf.shape[0];
    return 0;
  }
  if (PyUnicode_Check(ids)) /* iterable, but never meant as ids */
    return strata_py_type_error("get_many_in() ids",
                                "a list, tuple or uint64 buffer of layer ids",
                                ids);
  src->seq = PySequence_List(ids);
  if (src->seq == NULL)
    return -1;
  src->n = PyList_Size(src->seq);
  return 0;
}

static void ids_close(ids_source *src) {
  Py_CLEAR(src->seq);
  if (src->has_buf)
    PyBuffer_Release(&src->buf);
  src->has_buf = false;
}

/* Id `i` of the source (i < src->n). 0, or -1 with TypeError or
 * OverflowError naming the item (as get() would name a bad layer key). */
static int ids_at(const ids_source *src, Py_ssize_t i, uint64_t *id) {
  if (src->seq == NULL) {
    const char *p = (const char *)src->buf.buf +
                    i * (src->buf.strides ? src->buf.strides[0] : 8);
    memcpy(id, p, sizeof *id); /* the buffer need not be 8-byte aligned */
    return 0;
  }
  PyObject *item = PyList_CheckExact(src->seq) ? PyList_GetItem(src->seq, i)
                                               : PyTuple_GetItem(src->seq, i);
  if (item == NULL)
    return -1;
  if (PyLong_CheckExact(item) || (PyLong_Check(item) && !PyBool_Check(item))) {
    unsigned long long v = PyLong_AsUnsignedLongLong(item);
    if (!(v == (unsigned long long)-1 && PyErr_Occurred())) {
      *id = v;
      return 0;
    }
    PyErr_Format(PyExc_OverflowError,
                 "get_many_in(): item %zd: layer id %R is not in 0 .. "
                 "2**64-1",
                 i, item);
    return -1;
  }
  PyObject *name = PyType_GetName(Py_TYPE(item));
  if (name != NULL) {
    PyErr_Format(PyExc_TypeError,
                 "get_many_in(): item %zd must be an int layer id, not %U "
                 "(get_many() takes layer names)",
                 i, name);
    Py_DECREF(name);
  }
  return -1;
}

static PyObject *Snapshot_get_many_in(PyObject *self, PyObject *const *args,
                                      Py_ssize_t nargs) {
  SnapshotObject *s = (SnapshotObject *)self;
  if (nargs != 2)
    return PyErr_Format(PyExc_TypeError,
                        "get_many_in() takes a region and a sequence of "
                        "layer ids (%zd arguments given)",
                        nargs);
  if (strata_py_owner_check(self) < 0)
    return NULL;
  uint64_t rid = 0;
  const char *rname = NULL;
  Py_ssize_t rlen = 0;
  int rk = strata_py_key(args[0], "region", &rid, &rname, &rlen);
  if (rk < 0)
    return NULL;
  ids_source src;
  if (ids_open(args[1], &src) < 0)
    return NULL;
  /* The result list is made before any Layer: making it may collect
   * garbage, whose finalizers are Python code, as consuming an iterable
   * was. Either may have closed this snapshot or its store (the txn would
   * then answer every id with a miss), so the check comes after both. */
  PyObject *result = PyList_New(src.n);
  if (result == NULL || strata_py_owner_check(self) < 0)
    goto fail;
  /* A region name that does not exist is a miss for every id, as
   * get_many() answers a pair naming it (an id that does not exist is
   * one to strata_get_many() already). */
  bool found = true;
  if (rk == 1) {
    int rc = strata_find_region(&s->txn, rname, (size_t)rlen, &rid);
    if (rc < 0 && rc != STRATA_E_NO_REGION) {
      strata_py_raise(rc);
      goto fail;
    }
    found = rc == 0;
  }
  strata_layer_ref refs[GET_MANY_STACK];
  strata_layer out[GET_MANY_STACK];
  for (Py_ssize_t base = 0; base < src.n; base += GET_MANY_STACK) {
    size_t m =
        (size_t)(src.n - base < GET_MANY_STACK ? src.n - base : GET_MANY_STACK);
    for (size_t j = 0; j < m; j++) {
      refs[j].region_id = rid;
      if (ids_at(&src, base + (Py_ssize_t)j, &refs[j].layer_id) < 0)
        goto fail;
    }
    if (found)
      strata_get_many(&s->txn, refs, m, out);
    else
      memset(out, 0, m * sizeof out[0]);
    for (size_t j = 0; j < m; j++) {
      PyObject *item = out[j].data != NULL ? strata_py_layer_new(self, &out[j])
                                           : Py_NewRef(Py_None);
      if (item == NULL)
        goto fail;
      PyList_SetItem(result, base + (Py_ssize_t)j, item);
    }
  }
  ids_close(&src);
  return result;
fail:
  Py_XDECREF(result);
  ids_close(&src);
  return NULL;
}

/* ---- regions ------------------------------------------------------------- */

/* A delta file of regions()' "deltas": where it is and what it holds, and
 * its binding (strata_py_delta_binding). */
static PyObject *delta_dict(const strata_region *f) {
  strata_region_info info;
  int rc = strata_region_info_get(f, &info);
  if (rc < 0)
    return strata_py_raise(rc);
  PyObject *d = Py_BuildValue(
      "{s:N,s:K,s:K,s:K}", "file", PyUnicode_DecodeFSDefault(info.path),
      "layers", (unsigned long long)info.layer_count, "bytes",
      (unsigned long long)info.file_size, "header_checksum",
      (unsigned long long)info.header_checksum);
  if (d != NULL && strata_py_delta_binding(f, d) < 0)
    Py_CLEAR(d);
  return d;
}

/* The delta files this snapshot serves over the base of the region at
 * position `index`, oldest (depth 1) first. */
static PyObject *deltas_list(const strata_txn *txn, uint64_t index) {
  PyObject *list = PyList_New(0);
  for (uint32_t k = 0; list != NULL; k++) {
    const strata_region *f = NULL;
    int rc = strata_store_region_delta_at(txn, index, k, &f);
    if (rc == STRATA_E_BOUNDS) /* k is the region's depth */
      break;
    PyObject *d = rc < 0 ? strata_py_raise(rc) : delta_dict(f);
    if (d == NULL || PyList_Append(list, d) < 0)
      Py_CLEAR(list);
    Py_XDECREF(d);
  }
  return list;
}

static PyObject *region_dict(const strata_txn *txn, uint64_t index,
                             const strata_store_region *r) {
  strata_region_info info = {0};
  if (r->file != NULL && strata_region_info_get(r->file, &info) < 0)
    return strata_py_raise(STRATA_E_INVAL);
  PyObject *meta = r->metadata != NULL && r->metadata[0] != '\0'
                       ? strata_py_json_loads(r->metadata, strlen(r->metadata))
                       : (Py_INCREF(Py_None), Py_None);
  if (meta == NULL)
    return NULL;
  PyObject *file = r->path != NULL ? PyUnicode_DecodeFSDefault(r->path)
                                   : (Py_INCREF(Py_None), Py_None);
  if (file == NULL) {
    Py_DECREF(meta);
    return NULL;
  }
  PyObject *deltas = deltas_list(txn, index);
  if (deltas == NULL) {
    Py_DECREF(meta);
    Py_DECREF(file);
    return NULL;
  }
  PyObject *d =
      Py_BuildValue("{s:K,s:s,s:N,s:K,s:K,s:N,s:K,s:O,s:n,s:N}", "id",
                    (unsigned long long)r->id, "name", r->name, "file", file,
                    "layers", (unsigned long long)r->layer_count, "bytes",
                    (unsigned long long)info.file_size, "metadata", meta,
                    "generation", (unsigned long long)r->generation,
                    "has_proto", r->has_proto ? Py_True : Py_False,
                    "delta_depth", PyList_Size(deltas), "deltas", deltas);
  return d;
}

static PyObject *Snapshot_regions(PyObject *self, PyObject *unused) {
  (void)unused;
  SnapshotObject *s = (SnapshotObject *)self;
  if (strata_py_owner_check(self) < 0)
    return NULL;
  uint64_t n = strata_store_region_count(&s->txn);
  PyObject *out = PyList_New((Py_ssize_t)n);
  for (uint64_t i = 0; out != NULL && i < n; i++) {
    strata_store_region r;
    int rc = strata_store_region_at(&s->txn, i, &r);
    PyObject *d = rc < 0 ? strata_py_raise(rc) : region_dict(&s->txn, i, &r);
    if (d == NULL)
      Py_CLEAR(out);
    else
      PyList_SetItem(out, (Py_ssize_t)i, d);
  }
  return out;
}

/* ---- layers(): the iterator ---------------------------------------------- */

typedef struct {
  PyObject_HEAD PyObject *snapshot; /* strong */
  bool active;
  strata_snapshot_iter it;
} LayersObject;

static PyObject *Snapshot_layers(PyObject *self, PyObject *region) {
  SnapshotObject *s = (SnapshotObject *)self;
  uint64_t id;
  if (strata_py_owner_check(self) < 0 || region_of(s, region, &id) < 0)
    return NULL;
  LayersObject *it =
      (LayersObject *)PyType_GenericAlloc((PyTypeObject *)LayersType, 0);
  if (it == NULL)
    return NULL;
  Py_INCREF(self);
  it->snapshot = self;
  int rc = strata_snapshot_iter_init(&s->txn, id, &it->it);
  if (rc < 0) {
    strata_py_raise(rc);
    Py_DECREF(it);
    return NULL;
  }
  it->active = true;
  return (PyObject *)it;
}

static PyObject *Layers_next(PyObject *self) {
  LayersObject *it = (LayersObject *)self;
  if (!it->active)
    return NULL;
  /* The snapshot may have been closed between two steps: the iterator
   * must not be used after strata_read_end(). */
  if (strata_py_owner_check(it->snapshot) < 0) {
    strata_snapshot_iter_end(&it->it);
    it->active = false;
    return NULL;
  }
  strata_layer l;
  int rc = strata_snapshot_next(&it->it, &l);
  if (rc > 0)
    return strata_py_layer_new(it->snapshot, &l);
  it->active = false;
  return rc < 0 ? strata_py_raise(rc) : NULL;
}

static void Layers_dealloc(PyObject *self) {
  LayersObject *it = (LayersObject *)self;
  if (it->active)
    strata_snapshot_iter_end(&it->it);
  Py_XDECREF(it->snapshot);
  strata_py_free_object(self);
}

static PyObject *Layers_iter(PyObject *self) {
  Py_INCREF(self);
  return self;
}

/* ---- closing ------------------------------------------------------------- */

static PyObject *Snapshot_close(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_owner_close(self, true) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *Snapshot_enter(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_owner_check(self) < 0)
    return NULL;
  Py_INCREF(self);
  return self;
}

static PyObject *Snapshot_exit(PyObject *self, PyObject *const *args,
                               Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return Snapshot_close(self, NULL);
}

static PyObject *Snapshot_get_closed(PyObject *self, void *unused) {
  (void)unused;
  return PyBool_FromLong(strata_py_owner_of(self)->state !=
                         STRATA_PY_OWNER_OPEN);
}

static PyObject *Snapshot_get_store(PyObject *self, void *unused) {
  (void)unused;
  PyObject *store = (PyObject *)((SnapshotObject *)self)->store;
  Py_INCREF((PyObject *)store);
  return store;
}

static PyMethodDef Snapshot_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Snapshot_get, METH_FASTCALL,
     "get(region, layer) -> Layer\n--\n\nThe layer as this snapshot sees it "
     "(a proto's changes included). region and layer are each an int id or "
     "a str name. Raises strata.NotFoundError (a KeyError) naming what is "
     "missing."},
    {"get_many", Snapshot_get_many, METH_O,
     "get_many(refs) -> list[Layer | None]\n--\n\nLooks up a path of "
     "(region, layer) pairs in one call (strata_get_many for id pairs, "
     "strata_get_many_by_name for name pairs; a region name with a layer id "
     "is resolved once per run of equal names). The list has one entry per "
     "pair, in order: the Layer, or None where the region or layer does not "
     "exist (a miss is not an error here, as in C; use get() to raise)."},
    {"get_many_in", (PyCFunction)(void (*)(void))Snapshot_get_many_in,
     METH_FASTCALL,
     "get_many_in(region, ids) -> list[Layer | None]\n--\n\nLooks up many "
     "layers of one region (an int id or a str name) in one call: ids is a "
     "list or tuple of int layer ids, any 1-D buffer of uint64 (a numpy "
     "array of dtype uint64, array('Q'); read in place, no Python object "
     "per id) or another iterable of ints. The list has one entry per id, "
     "in order: the Layer, or None where the layer (or the region) does "
     "not exist, as get_many() answers. A negative id or one past 2**64-1 "
     "is an OverflowError, a non-int a TypeError, a buffer of another item "
     "type a TypeError naming its format. The cheapest way to read a path "
     "inside one region (docs/BENCHMARKS.md, \"Python\")."},
    {"regions", Snapshot_regions, METH_NOARGS,
     "regions() -> list[dict]\n--\n\nThe store's regions as this snapshot "
     "sees them, by ascending id: id, name, file (the region's base file, "
     "None for a new proto), layers (through its delta files, proto "
     "changes included), bytes (the base file's size, 0 without a file), "
     "metadata (parsed, or None), generation, has_proto, delta_depth (how "
     "many delta files are served over the base, 0 to 4) and deltas: one "
     "dict per delta file, oldest first: file (its path, NAME.k.delta), "
     "depth, layers (its entries, tombstones included), bytes, "
     "header_checksum, parent_checksum (the header checksum of the file "
     "below it), base_checksum."},
    {"layers", Snapshot_layers, METH_O,
     "layers(region) -> Iterator[Layer]\n--\n\nThe layers of `region` (id or "
     "name) in ascending id order, the file's merged with its proto's "
     "changes as of this snapshot. Stops with strata.Error if the snapshot "
     "is closed meanwhile."},
    {"stage", strata_py_snapshot_stage, METH_VARARGS,
     "stage(region, layer, /)\n--\n\nCopies the layer (an id or a name "
     "each) into the staging pool's pinned memory, with the GIL released, "
     "and returns a strata.Staged holding it (staging.c)."},
    {"stage_path_size", strata_py_snapshot_stage_path_size, METH_O,
     "stage_path_size(refs, /)\n--\n\nThe bytes (int) stage_path_to_device "
     "needs for this path of (region, layer) pairs."},
    {"stage_path_to_device",
     (PyCFunction)(void (*)(void))strata_py_snapshot_stage_path_to_device,
     METH_VARARGS | METH_KEYWORDS,
     "stage_path_to_device(refs, dst, stream=None)\n--\n\nCopies a path "
     "of (region, layer) pairs into dst back to back (each layer at an "
     "offset aligned to 128 bytes) and returns [(offset, size), ...] once "
     "they are there (staging.c). dst and stream as for Staged.to_device."},
    {"close", Snapshot_close, METH_NOARGS,
     "close()\n--\n\nEnds the snapshot: its Layers become dead (every access "
     "raises strata.Error). If buffers of its layers are still exported "
     "(memoryview, numpy array, DLPack tensor), no new lookup is allowed and "
     "the snapshot really ends when the last is released. No-op when "
     "closed."},
    {"__enter__", Snapshot_enter, METH_NOARGS, "Returns the snapshot."},
    {"__exit__", (PyCFunction)(void (*)(void))Snapshot_exit, METH_FASTCALL,
     "close(): exported buffers keep the snapshot alive until released."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Snapshot_getset[] = {
    {"closed", Snapshot_get_closed, NULL,
     "True once closed (it may still be ending: buffers are exported).", NULL},
    {"store", Snapshot_get_store, NULL, "The Store it belongs to.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Snapshot_slots[] = {
    {Py_tp_dealloc, Snapshot_dealloc},
    {Py_tp_repr, Snapshot_repr},
    {Py_tp_methods, Snapshot_methods},
    {Py_tp_getset, Snapshot_getset},
    {Py_tp_doc,
     "A consistent, unchanging view of a Store (Store.snapshot()): one "
     "state of every region, whatever writers do until it ends. A context "
     "manager; the Layers it returns borrow its memory, and buffers exported "
     "from them keep it alive after its `with` block. Not created "
     "directly."},
    {0, NULL},
};

static PyType_Spec Snapshot_spec = {
    .name = "strata.Snapshot",
    .basicsize = sizeof(SnapshotObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Snapshot_slots,
};

static PyType_Slot Layers_slots[] = {
    {Py_tp_dealloc, Layers_dealloc},
    {Py_tp_iter, Layers_iter},
    {Py_tp_iternext, Layers_next},
    {Py_tp_doc, "Iterator over a region's layers in a snapshot "
                "(Snapshot.layers())."},
    {0, NULL},
};

static PyType_Spec Layers_spec = {
    .name = "strata.SnapshotLayers",
    .basicsize = sizeof(LayersObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Layers_slots,
};

int strata_py_init_snapshot(PyObject *module) {
  if (strata_py_add_type(module, &Layers_spec, NULL, &LayersType) < 0)
    return -1;
  return strata_py_add_type(module, &Snapshot_spec, "Snapshot",
                            &strata_py_SnapshotType);
}
