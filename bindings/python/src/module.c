/* The module strata._strata: its init, which readies every type through
 * the table below, __version__, fork safety and the JSON helpers
 * (strata_py.h). */
#include "strata_py.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* json.loads / json.dumps, imported once at init: metadata is JSON text in
 * the file, and the standard module parses it as fast as any C parser we
 * would link, with Python's own error messages. */
static PyObject *json_loads;
static PyObject *json_dumps;
static PyObject *json_dumps_kwargs; /* separators, ensure_ascii */

PyObject *strata_py_json_loads(const char *text, size_t len) {
  PyObject *str =
      PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "backslashreplace");
  if (!str)
    return NULL;
  PyObject *obj = PyObject_CallFunctionObjArgs(json_loads, str, NULL);
  Py_DECREF(str);
  return obj;
}

PyObject *strata_py_json_dumps(PyObject *obj) {
  if (PyBytes_Check(obj)) {
    Py_INCREF(obj);
    return obj;
  }
  if (PyUnicode_Check(obj)) /* JSON text already: the library checks it */
    return PyUnicode_AsUTF8String(obj);
  PyObject *args = PyTuple_Pack(1, obj);
  if (!args)
    return NULL;
  PyObject *text = PyObject_Call(json_dumps, args, json_dumps_kwargs);
  Py_DECREF(args);
  if (!text)
    return NULL;
  PyObject *bytes = PyUnicode_AsUTF8String(text);
  Py_DECREF(text);
  return bytes;
}

/* The process's pid, for strata_py_check_pid(), which every access of a
 * Layer, Snapshot or Store makes. getpid() is a system call (glibc has not
 * cached it since 2.25): 0.5 us on the development VM, where a whole
 * snap.get() is meant to cost about as much as a dict lookup, and measured
 * at 55% of it (bindings/python/bench.py). The value is taken at import
 * and again in every child, by a pthread_atfork() handler: os.fork() calls
 * fork(), which runs it before any Python code of the child. */
static pid_t current_pid;

static void reset_pid(void) {
  current_pid = getpid();
}

int strata_py_add_type(PyObject *module, PyType_Spec *spec, const char *name,
                       PyObject **type) {
  *type = PyType_FromSpec(spec);
  if (*type == NULL)
    return -1;
  if (name == NULL)
    return 0;
  Py_INCREF(*type);
  if (PyModule_AddObject(module, name, *type) < 0) {
    Py_DECREF(*type);
    return -1;
  }
  return 0;
}

void strata_py_free_object(PyObject *self) {
  PyTypeObject *type = Py_TYPE(self);
  freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
  tp_free(self);
  Py_DECREF(type);
}

int strata_py_type_error(const char *what, const char *expected,
                         PyObject *obj) {
  PyObject *name = PyType_GetName(Py_TYPE(obj));
  if (name != NULL) {
    PyErr_Format(PyExc_TypeError, "%s must be %s, not %U", what, expected,
                 name);
    Py_DECREF(name);
  }
  return -1;
}

int strata_py_check_pid(pid_t pid, const char *what) {
  pid_t self = current_pid;
  if (self == pid)
    return 0;
  strata_py_raise_state(
      "this %s was opened by process %d; process %d is a fork() child of it "
      "and must open its own (a mapping, snapshot or store is not shared "
      "across fork)",
      what, (int)pid, (int)self);
  return -1;
}

static int init_json(void) {
  PyObject *json = PyImport_ImportModule("json");
  if (!json)
    return -1;
  json_loads = PyObject_GetAttrString(json, "loads");
  json_dumps = PyObject_GetAttrString(json, "dumps");
  Py_DECREF(json);
  if (!json_loads || !json_dumps)
    return -1;
  json_dumps_kwargs = Py_BuildValue("{s:(ss),s:O}", "separators", ",", ":",
                                    "ensure_ascii", Py_False);
  return json_dumps_kwargs ? 0 : -1;
}

/* The types, in dependency order (errors first: every other init may raise
 * them; Layer before its owners). One line per file; a line is uncommented
 * by the change that adds its file. The blank lines keep the lines apart
 * so that changes adding different types merge without conflict. */
typedef int (*init_fn)(PyObject *module);
/* One line per type, whatever the formatter would prefer: */
/* clang-format off */
static const init_fn inits[] = {
    strata_py_init_errors,
    strata_py_init_layer,
    strata_py_init_region,

    strata_py_init_store,

    strata_py_init_snapshot,

    strata_py_init_proto,

    strata_py_init_writer,

    strata_py_init_staging,
};
/* clang-format on */

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "strata._strata",
    .m_doc = "The C extension of the strata package: memory-mapped layered "
             "regions, zero-copy layers, stores, snapshots, protos and "
             "staging. Import `strata` rather than this module.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__strata(void) {
  reset_pid();
  if (pthread_atfork(NULL, NULL, reset_pid) != 0) {
    PyErr_SetString(PyExc_OSError, "strata: pthread_atfork failed");
    return NULL;
  }
  if (init_json() < 0)
    return NULL;
  PyObject *module = PyModule_Create(&module_def);
  if (!module)
    return NULL;
  if (PyModule_AddStringConstant(module, "__version__",
                                 strata_version_string()) < 0)
    goto fail;
  for (size_t i = 0; i < sizeof inits / sizeof inits[0]; i++)
    if (inits[i](module) < 0)
      goto fail;
  return module;
fail:
  Py_DECREF(module);
  return NULL;
}
