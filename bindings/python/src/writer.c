/* strata.Writer: writing a region file from Python, over strata_writer
 * (<strata/writer.h>).
 *
 * The writer streams layers to a temporary file and publishes it at commit
 * (fsync, rename, fsync of the directory), so a Writer that is aborted,
 * dropped, or left by an exception in its `with` block leaves nothing at
 * the path. The GIL is released around every call that writes (open, add,
 * append, end_layer, commit, abort): a layer may be gigabytes and commit
 * waits for the disk. While it is released the writer is marked busy, and
 * another thread that calls into the same Writer meanwhile gets an error
 * instead of racing the library, whose writer is not thread-safe; the
 * caller's buffer is held (PyObject_GetBuffer) for the whole call, so the
 * memory stays valid even if its owner is resized or dropped by another
 * thread.
 *
 * No progress callback: from Python each add() is one call the user makes,
 * and a long layer can be streamed with append() between which the caller
 * sees its own progress; calling back into Python from inside a call that
 * released the GIL would only add a way to fail. */
#include <string.h>
#include <unistd.h>

#include "strata_py.h"

typedef enum writer_state {
  WRITER_OPEN = 0,
  WRITER_COMMITTED,
  WRITER_ABORTED,
  WRITER_COMMITTING, /* commit runs with the GIL released */
  WRITER_FAILED,     /* commit failed: the library freed the writer */
} writer_state;

typedef struct WriterObject {
  PyObject_HEAD strata_writer *w; /* NULL once committed or aborted */
  writer_state state;
  bool busy;      /* a call runs with the GIL released */
  pid_t pid;      /* the process that opened it */
  PyObject *path; /* the path as given (str, bytes or os.PathLike) */
  uint64_t region_id;
} WriterObject;

PyObject *strata_py_WriterType;

static const char *state_word(writer_state s) {
  switch (s) {
  case WRITER_COMMITTED:
    return "committed";
  case WRITER_ABORTED:
    return "aborted";
  case WRITER_COMMITTING:
    return "committing";
  case WRITER_FAILED:
    return "failed to commit";
  default:
    return "open";
  }
}

/* A Writer made by Writer.__new__() without __init__() has every field
 * zero (path NULL, pid 0): it raises this, not the fork error that its pid
 * would give, and hands out no NULL reference. */
#define NOT_INITIALIZED                                                        \
  "strata.Writer: not initialized (made with Writer.__new__() without "        \
  "__init__())"

/* 0 when the writer can take a call now; otherwise raises strata.Error
 * naming the path and why, and returns -1. */
static int writer_check(WriterObject *self) {
  if (self->path == NULL) {
    strata_py_raise_state(NOT_INITIALIZED);
    return -1;
  }
  if (strata_py_check_pid(self->pid, "strata.Writer") < 0)
    return -1;
  if (self->busy) {
    strata_py_raise_state("strata.Writer(%R): in use by another thread (a "
                          "Writer takes one call at a time)",
                          self->path);
    return -1;
  }
  if (self->w == NULL) {
    strata_py_raise_state("strata.Writer(%R): already %s", self->path,
                          state_word(self->state));
    return -1;
  }
  return 0;
}

/* ---- argument conversion ------------------------------------------------- */

/* An unsigned 64-bit id from any integer (including numpy's, through
 * __index__). Raises TypeError / OverflowError naming `what`. */
static int to_u64(PyObject *obj, const char *what, uint64_t *out) {
  PyObject *index = PyNumber_Index(obj); /* TypeError naming the type */
  if (index == NULL)
    return -1;
  unsigned long long v = PyLong_AsUnsignedLongLong(index);
  Py_DECREF(index);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Format(PyExc_OverflowError, "%s must be in [0, 2**64), got %R", what,
                 obj);
    return -1;
  }
  *out = (uint64_t)v;
  return 0;
}

/* A layer or region name: None (no name: *text NULL, *len 0) or a str as
 * UTF-8. The text belongs to `obj`, which the caller's arguments keep
 * alive for the call. */
static int to_name(PyObject *obj, const char **text, Py_ssize_t *len) {
  *text = NULL;
  *len = 0;
  if (obj == NULL || obj == Py_None)
    return 0;
  if (!PyUnicode_Check(obj)) {
    PyErr_SetString(PyExc_TypeError, "name must be a str or None");
    return -1;
  }
  *text = PyUnicode_AsUTF8AndSize(obj, len);
  return *text == NULL ? -1 : 0;
}

/* Metadata: None (*out NULL), a str holding JSON text, or any object the
 * json module serializes (a dict usually). *out is a new bytes object whose
 * buffer is the NUL-terminated text the library wants. */
static int to_metadata(PyObject *obj, PyObject **out) {
  *out = NULL;
  if (obj == NULL || obj == Py_None)
    return 0;
  PyObject *text = strata_py_json_dumps(obj);
  if (text == NULL)
    return -1;
  char *s;
  Py_ssize_t n;
  if (PyBytes_AsStringAndSize(text, &s, &n) < 0) {
    Py_DECREF(text);
    return -1;
  }
  /* The library reads NUL-terminated text: a NUL inside (possible only in
   * a str given as JSON already) would silently cut it. */
  const char *nul = memchr(s, '\0', (size_t)n);
  if (nul != NULL) {
    PyErr_Format(PyExc_ValueError,
                 "metadata: NUL byte at offset %zd of the JSON text",
                 (Py_ssize_t)(nul - s));
    Py_DECREF(text);
    return -1;
  }
  *out = text;
  return 0;
}

/* ---- construction -------------------------------------------------------- */

static int writer_init(PyObject *op, PyObject *args, PyObject *kwargs) {
  WriterObject *self = (WriterObject *)op;
  static char *kwlist[] = {
      "path",       "region_id",           "name", "metadata", "align",
      "lock_store", "check_ids_at_commit", NULL};
  PyObject *path, *id_obj, *name_obj, *meta_obj = Py_None, *align_obj = Py_None;
  int lock_store = 0, ids_at_commit = 0;
  if (self->w != NULL || self->path != NULL) {
    strata_py_raise_state("strata.Writer(%R): already initialized", self->path);
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOU|O$Opp:Writer", kwlist,
                                   &path, &id_obj, &name_obj, &meta_obj,
                                   &align_obj, &lock_store, &ids_at_commit))
    return -1;

  strata_writer_options opts;
  strata_writer_options_init(&opts);
  if (to_u64(id_obj, "region_id", &opts.region_id) < 0)
    return -1;
  if (align_obj != Py_None) {
    uint64_t align;
    if (to_u64(align_obj, "align", &align) < 0)
      return -1;
    /* 0 means the default to the library: an explicit align=0 is a
     * mistake. Other bad values are the library's to name. */
    if (align == 0 || align > UINT32_MAX) {
      PyErr_Format(PyExc_ValueError,
                   "align must be a power of two in [16, 65536], got %R",
                   align_obj);
      return -1;
    }
    opts.align = (uint32_t)align;
  }
  if (lock_store)
    opts.flags |= STRATA_WRITER_LOCK_STORE;
  if (ids_at_commit)
    opts.flags |= STRATA_WRITER_CHECK_IDS_AT_COMMIT;
  Py_ssize_t name_len;
  const char *name;
  if (to_name(name_obj, &name, &name_len) < 0)
    return -1;
  if ((size_t)name_len != strlen(name)) {
    /* The one NUL-terminated name of the API (<strata/writer.h>). */
    PyErr_Format(PyExc_ValueError,
                 "name: NUL byte at offset %zd (a region name is text)",
                 (Py_ssize_t)strlen(name));
    return -1;
  }
  opts.name = name;
  PyObject *meta, *fspath;
  if (to_metadata(meta_obj, &meta) < 0)
    return -1;
  opts.metadata = meta ? PyBytes_AsString(meta) : NULL;
  if (!PyUnicode_FSConverter(path, &fspath)) {
    Py_XDECREF(meta);
    return -1;
  }

  strata_writer *w = NULL;
  int rc;
  const char *cpath = PyBytes_AsString(fspath);
  PyThreadState *ts = PyEval_SaveThread();
  rc = strata_writer_open(cpath, &opts, &w);
  PyEval_RestoreThread(ts);
  Py_DECREF(fspath);
  Py_XDECREF(meta);
  if (rc < 0)
    return strata_py_raise_int(rc);
  self->w = w;
  self->state = WRITER_OPEN;
  self->busy = false;
  self->pid = getpid();
  self->region_id = opts.region_id;
  Py_INCREF(path);
  self->path = path;
  return 0;
}

static void writer_dealloc(PyObject *op) {
  WriterObject *self = (WriterObject *)op;
  /* A Writer dropped without commit() is aborted: nothing appears at the
   * path. In a child after fork() the writer is left alone (leaked): its
   * temporary file and descriptor are the parent's, and aborting here
   * would unlink the parent's temporary file under it. */
  if (self->w != NULL && self->pid == getpid())
    strata_writer_abort(self->w);
  self->w = NULL;
  Py_CLEAR(self->path);
  strata_py_free_object(op);
}

/* ---- layers -------------------------------------------------------------- */

/* One call of the library's writer, described so that one function runs
 * every kind with the GIL released. */
typedef enum writer_op_kind {
  OP_ADD,
  OP_BEGIN_LAYER,
  OP_APPEND,
  OP_APPEND_ZEROS,
  OP_END_LAYER,
} writer_op_kind;

typedef struct writer_op {
  writer_op_kind kind;
  uint64_t id;
  const char *name; /* with name_len; NULL for none */
  Py_ssize_t name_len;
  PyObject *metadata; /* bytes (NUL-terminated JSON text) or NULL */
  Py_buffer data;     /* held for the call (add, append) */
  bool has_data;
  uint64_t zeros; /* append_zeros */
} writer_op;

static int run_op(strata_writer *w, const writer_op *op, const char *meta) {
  switch (op->kind) {
  case OP_ADD:
    return strata_writer_add(w, op->id, op->name, (size_t)op->name_len, meta,
                             op->data.buf, (size_t)op->data.len);
  case OP_BEGIN_LAYER:
    return strata_writer_begin_layer(w, op->id, op->name, (size_t)op->name_len,
                                     meta);
  case OP_APPEND:
    return strata_writer_append(w, op->data.buf, (size_t)op->data.len);
  case OP_APPEND_ZEROS:
    return strata_writer_append_zeros(w, op->zeros);
  case OP_END_LAYER:
    return strata_writer_end_layer(w);
  }
  return STRATA_E_INVAL;
}

/* Runs `op` with the GIL released and the writer marked busy, then releases
 * what `op` holds. None, or NULL with the library's error raised. */
static PyObject *writer_run(WriterObject *self, writer_op *op) {
  /* Checked again: converting the arguments may have run Python code
   * (json.dumps, a buffer exporter) that let another thread in. */
  if (writer_check(self) < 0) {
    if (op->has_data)
      PyBuffer_Release(&op->data);
    Py_XDECREF(op->metadata);
    return NULL;
  }
  strata_writer *w = self->w;
  const char *meta = op->metadata ? PyBytes_AsString(op->metadata) : NULL;
  self->busy = true;
  PyThreadState *ts = PyEval_SaveThread();
  int rc = run_op(w, op, meta);
  PyEval_RestoreThread(ts);
  self->busy = false;
  /* Raised before anything else can call the library on this thread (the
   * detail is per-thread); releasing a buffer and a bytes object does
   * not. */
  PyObject *result = rc < 0 ? strata_py_raise(rc) : Py_NewRef(Py_None);
  if (op->has_data)
    PyBuffer_Release(&op->data);
  Py_XDECREF(op->metadata);
  return result;
}

/* Fills the layer's id, name and metadata (add, begin_layer) after checking
 * the writer. 0, or -1 with an exception and nothing held. */
static int layer_head(WriterObject *self, writer_op *op, PyObject *id_obj,
                      PyObject *name_obj, PyObject *meta_obj) {
  if (writer_check(self) < 0 || to_u64(id_obj, "id", &op->id) < 0 ||
      to_name(name_obj, &op->name, &op->name_len) < 0)
    return -1;
  return to_metadata(meta_obj, &op->metadata);
}

static PyObject *writer_add(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"id", "data", "name", "metadata", NULL};
  PyObject *id_obj, *data_obj, *name_obj = Py_None, *meta_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO:add", kwlist, &id_obj,
                                   &data_obj, &name_obj, &meta_obj))
    return NULL;
  writer_op op = {.kind = OP_ADD};
  if (layer_head((WriterObject *)self, &op, id_obj, name_obj, meta_obj) < 0)
    return NULL;
  if (PyObject_GetBuffer(data_obj, &op.data, PyBUF_SIMPLE) < 0) {
    Py_XDECREF(op.metadata);
    return NULL;
  }
  op.has_data = true;
  return writer_run((WriterObject *)self, &op);
}

static PyObject *writer_begin_layer(PyObject *self, PyObject *args,
                                    PyObject *kwargs) {
  static char *kwlist[] = {"id", "name", "metadata", NULL};
  PyObject *id_obj, *name_obj = Py_None, *meta_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:begin_layer", kwlist,
                                   &id_obj, &name_obj, &meta_obj))
    return NULL;
  /* Run with the GIL released too: it writes the alignment padding. */
  writer_op op = {.kind = OP_BEGIN_LAYER};
  if (layer_head((WriterObject *)self, &op, id_obj, name_obj, meta_obj) < 0)
    return NULL;
  return writer_run((WriterObject *)self, &op);
}

static PyObject *writer_append(PyObject *self, PyObject *data_obj) {
  writer_op op = {.kind = OP_APPEND};
  if (writer_check((WriterObject *)self) < 0 ||
      PyObject_GetBuffer(data_obj, &op.data, PyBUF_SIMPLE) < 0)
    return NULL;
  op.has_data = true;
  return writer_run((WriterObject *)self, &op);
}

static PyObject *writer_append_zeros(PyObject *self, PyObject *size_obj) {
  writer_op op = {.kind = OP_APPEND_ZEROS};
  if (writer_check((WriterObject *)self) < 0 ||
      to_u64(size_obj, "size", &op.zeros) < 0)
    return NULL;
  return writer_run((WriterObject *)self, &op);
}

static PyObject *writer_end_layer(PyObject *self, PyObject *unused) {
  (void)unused;
  writer_op op = {.kind = OP_END_LAYER};
  if (writer_check((WriterObject *)self) < 0)
    return NULL;
  return writer_run((WriterObject *)self, &op);
}

/* ---- ending -------------------------------------------------------------- */

static PyObject *writer_commit(PyObject *op, PyObject *unused) {
  (void)unused;
  WriterObject *self = (WriterObject *)op;
  if (writer_check(self) < 0)
    return NULL;
  /* The library frees the writer whatever the outcome: it is taken out of
   * the object before the GIL is released, so no other thread can reach
   * it. */
  strata_writer *w = self->w;
  self->w = NULL;
  self->state = WRITER_COMMITTING;
  int rc;
  PyThreadState *ts = PyEval_SaveThread();
  rc = strata_writer_commit(w);
  PyEval_RestoreThread(ts);
  self->state = rc < 0 ? WRITER_FAILED : WRITER_COMMITTED;
  if (rc < 0)
    return strata_py_raise(rc);
  Py_RETURN_NONE;
}

/* Aborting twice, or after commit, is a no-op (as closing a closed file
 * is): abort() is what cleanup code calls whatever happened before. */
static PyObject *writer_abort(PyObject *op, PyObject *unused) {
  (void)unused;
  WriterObject *self = (WriterObject *)op;
  if (self->path == NULL) /* never initialized: nothing to abort */
    Py_RETURN_NONE;
  if (strata_py_check_pid(self->pid, "strata.Writer") < 0)
    return NULL;
  strata_writer *w = self->w;
  if (w == NULL && !self->busy)
    Py_RETURN_NONE;
  if (writer_check(self) < 0) /* busy: "in use by another thread" */
    return NULL;
  self->w = NULL;
  self->state = WRITER_ABORTED;
  PyThreadState *ts = PyEval_SaveThread();
  strata_writer_abort(w);
  PyEval_RestoreThread(ts);
  Py_RETURN_NONE;
}

static PyObject *writer_enter(PyObject *op, PyObject *unused) {
  (void)unused;
  if (writer_check((WriterObject *)op) < 0)
    return NULL;
  return Py_NewRef(op);
}

/* Commits on a clean exit (an error from commit propagates), aborts when
 * the block raised, and never swallows the block's exception. */
static PyObject *writer_exit(PyObject *op, PyObject *args) {
  WriterObject *self = (WriterObject *)op;
  PyObject *exc_type, *exc, *tb;
  if (!PyArg_UnpackTuple(args, "__exit__", 3, 3, &exc_type, &exc, &tb))
    return NULL;
  if (exc_type != Py_None) {
    PyObject *r = writer_abort(op, NULL);
    if (r == NULL)
      return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
  }
  /* A block that committed or aborted by hand leaves nothing to do. */
  if (self->w == NULL && !self->busy && self->pid == getpid())
    Py_RETURN_FALSE;
  PyObject *r = writer_commit(op, NULL);
  if (r == NULL)
    return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

/* ---- attributes ---------------------------------------------------------- */

static PyObject *writer_get_path(PyObject *op, void *closure) {
  (void)closure;
  PyObject *path = ((WriterObject *)op)->path;
  return Py_NewRef(path != NULL ? path : Py_None); /* None: not initialized */
}

static PyObject *writer_get_region_id(PyObject *op, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLongLong(((WriterObject *)op)->region_id);
}

static PyObject *writer_get_state(PyObject *op, void *closure) {
  (void)closure;
  return PyUnicode_FromString(state_word(((WriterObject *)op)->state));
}

static PyObject *writer_repr(PyObject *op) {
  WriterObject *self = (WriterObject *)op;
  if (self->path == NULL)
    return PyUnicode_FromString("<strata.Writer (not initialized)>");
  return PyUnicode_FromFormat("<strata.Writer %R region %llu %s>", self->path,
                              (unsigned long long)self->region_id,
                              state_word(self->state));
}

static PyMethodDef writer_methods[] = {
    {"add", (PyCFunction)(void (*)(void))writer_add,
     METH_VARARGS | METH_KEYWORDS,
     "add(id, data, name=None, metadata=None)\n--\n\n"
     "Add a whole layer: `data` is any contiguous buffer (bytes, bytearray,\n"
     "memoryview, numpy array, strata.Layer...), `name` a str or None,\n"
     "`metadata` a dict (serialized as JSON) or a str of JSON text, or None.\n"
     "Layers may come in any id order. Raises strata.Error (DUPLICATE: an\n"
     "id or name seen before; INVAL: a bad name or metadata; STATE: inside\n"
     "another layer or after a failed write), strata.LimitError,\n"
     "strata.StrataOSError. A rejected layer leaves the writer as it was.\n"
     "The GIL is released while the data is written."},
    {"begin_layer", (PyCFunction)(void (*)(void))writer_begin_layer,
     METH_VARARGS | METH_KEYWORDS,
     "begin_layer(id, name=None, metadata=None)\n--\n\n"
     "Start a layer whose content comes in pieces through append() and\n"
     "append_zeros(), ended by end_layer(). Checks the id, name and metadata\n"
     "as add() does."},
    {"append", writer_append, METH_O,
     "append(data)\n--\n\n"
     "Append the bytes of a buffer to the layer begun by begin_layer().\n"
     "strata.Error (STATE) outside a layer."},
    {"append_zeros", writer_append_zeros, METH_O,
     "append_zeros(size)\n--\n\n"
     "Append `size` zero bytes to the current layer (a hole in the file\n"
     "where possible)."},
    {"end_layer", writer_end_layer, METH_NOARGS,
     "end_layer()\n--\n\n"
     "End the layer begun by begin_layer()."},
    {"commit", writer_commit, METH_NOARGS,
     "commit()\n--\n\n"
     "Write the index, fsync the file, rename it to the path and fsync the\n"
     "directory, with the GIL released. The region appears at the path only\n"
     "if commit succeeds (read-only, mode 0444). The writer is finished\n"
     "whatever the outcome: any later call but abort() raises strata.Error."},
    {"abort", writer_abort, METH_NOARGS,
     "abort()\n--\n\n"
     "Discard everything written: nothing appears at the path. A no-op on\n"
     "a writer already committed or aborted."},
    {"__enter__", writer_enter, METH_NOARGS, "Return the writer."},
    {"__exit__", writer_exit, METH_VARARGS,
     "Commit on a clean exit, abort when the block raised (the exception\n"
     "propagates)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"path", writer_get_path, NULL, "The path as given.", NULL},
    {"region_id", writer_get_region_id, NULL, "The region's id.", NULL},
    {"state", writer_get_state, NULL,
     "'open', 'committed', 'aborted' or 'failed to commit'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot writer_slots[] = {
    {Py_tp_doc,
     "Writer(path, region_id, name, metadata=None, *, align=None, "
     "lock_store=False)\n--\n\n"
     "A region file being written: layers are streamed to a temporary file\n"
     "beside `path`, published by commit() (fsync + rename). As a context\n"
     "manager it commits on a clean exit and aborts when the block raises.\n\n"
     "region_id: the region's id (an int in [0, 2**64)); name: its name,\n"
     "1..255 bytes of UTF-8; metadata: a dict (stored as JSON) or a str of\n"
     "JSON text; align: content alignment, a power of two in [16, 65536]\n"
     "(default 64); lock_store: when the path is in a store's directory,\n"
     "hold the store's writer lock until commit or abort (LockedError when\n"
     "a store process holds it). Raises strata.Error with the library's\n"
     "detail on bad options, StrataOSError when the file cannot be created."},
    {Py_tp_init, writer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, writer_dealloc},
    {Py_tp_repr, writer_repr},
    {Py_tp_methods, writer_methods},
    {Py_tp_getset, writer_getset},
    {0, NULL},
};

static PyType_Spec writer_spec = {
    .name = "strata.Writer",
    .basicsize = sizeof(WriterObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = writer_slots,
};

int strata_py_init_writer(PyObject *module) {
  return strata_py_add_type(module, &writer_spec, "Writer",
                            &strata_py_WriterType);
}
