/* The exception classes of strata._strata and the mapping from the
 * library's return codes to them (strata_py.h, "errors").
 *
 * One class per error family rather than per code: callers catch what they
 * can act on (a missing layer, a damaged file, a busy store, a full limit),
 * and .code / .name keep the exact code for the rest. NotFoundError is also
 * a KeyError so that `region[17]` behaves like a mapping, and StrataOSError
 * an OSError so that `except OSError` and `.errno` work as they do for the
 * standard library's file functions. */
#include "strata_py.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

PyObject *strata_py_Error;
PyObject *strata_py_NotFoundError;
PyObject *strata_py_CorruptError;
PyObject *strata_py_LockedError;
PyObject *strata_py_LimitError;
PyObject *strata_py_ConflictError;
PyObject *strata_py_OSError;

/* The family of a library code. Every -errno the table gives a name to
 * (STRATA_E_INVAL, _NOMEM, _IO, ...) is a system code as well, so it is an
 * StrataOSError, with its errno. */
static PyObject *class_of(int rc) {
  switch (rc) {
  case STRATA_E_NOT_FOUND:
  case STRATA_E_NO_REGION:
    return strata_py_NotFoundError;
  case STRATA_E_BAD_MAGIC:
  case STRATA_E_VERSION:
  case STRATA_E_CORRUPT:
  case STRATA_E_CHECKSUM:
  case STRATA_E_BOUNDS:
  case STRATA_E_BAD_SHM:
    return strata_py_CorruptError;
  case STRATA_E_LOCKED:
    return strata_py_LockedError;
  case STRATA_E_LIMIT:
    return strata_py_LimitError;
  case STRATA_E_CONFLICT:
    return strata_py_ConflictError;
  default:
    break;
  }
  if (rc < 0 && rc > STRATA_ERRNO_BAND_FIRST)
    return strata_py_OSError;
  return strata_py_Error;
}

/* Raises an instance of `cls` with message `msg` and .code / .name for
 * `rc`. An OSError subclass is built as OSError(errno, msg), which sets
 * .errno and .strerror. */
static void raise_with(PyObject *cls, int rc, PyObject *msg) {
  PyObject *exc;
  if (cls == strata_py_OSError)
    exc = PyObject_CallFunction(cls, "iO", -rc, msg);
  else
    exc = PyObject_CallFunctionObjArgs(cls, msg, NULL);
  if (!exc)
    return;
  PyObject *code = PyLong_FromLong(rc);
  PyObject *name = PyUnicode_FromString(strata_err_name(rc));
  if (code && name && PyObject_SetAttrString(exc, "code", code) == 0 &&
      PyObject_SetAttrString(exc, "name", name) == 0)
    PyErr_SetObject(cls, exc);
  Py_XDECREF(code);
  Py_XDECREF(name);
  Py_DECREF(exc);
}

PyObject *strata_py_raise(int rc) {
  /* Read the detail first: it is per-thread and the next Strata call (none
   * below) would overwrite it. */
  const char *detail = strata_last_error_detail();
  if (!detail || !*detail)
    detail = strata_strerror(rc);
  PyObject *msg = PyUnicode_DecodeUTF8(detail, (Py_ssize_t)strlen(detail),
                                       "backslashreplace");
  if (!msg)
    return NULL;
  raise_with(class_of(rc), rc, msg);
  Py_DECREF(msg);
  return NULL;
}

int strata_py_raise_int(int rc) {
  strata_py_raise(rc);
  return -1;
}

static PyObject *raise_msgv(int rc, const char *fmt, va_list ap) {
  PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
  if (!msg)
    return NULL;
  raise_with(class_of(rc), rc, msg);
  Py_DECREF(msg);
  return NULL;
}

PyObject *strata_py_raise_msg(int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  raise_msgv(rc, fmt, ap);
  va_end(ap);
  return NULL;
}

PyObject *strata_py_raise_state(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  raise_msgv(STRATA_E_STATE, fmt, ap);
  va_end(ap);
  return NULL;
}

/* Creates strata.NAME with the given bases and docstring, adds it to the
 * module and stores a strong reference in *slot (kept for the process's
 * life: the module is single-phase). */
static int add_class(PyObject *module, PyObject **slot, const char *name,
                     PyObject *bases, const char *doc) {
  char qualified[64];
  snprintf(qualified, sizeof qualified, "strata.%s", name);
  *slot = PyErr_NewExceptionWithDoc(qualified, doc, bases, NULL);
  if (!*slot)
    return -1;
  Py_INCREF(*slot);
  if (PyModule_AddObject(module, name, *slot) < 0) {
    Py_DECREF(*slot);
    return -1;
  }
  return 0;
}

/* A class whose bases are strata.Error and `other` (NULL: Error alone). */
static int add_sub(PyObject *module, PyObject **slot, const char *name,
                   PyObject *other, const char *doc) {
  PyObject *bases = other ? PyTuple_Pack(2, strata_py_Error, other)
                          : PyTuple_Pack(1, strata_py_Error);
  if (!bases)
    return -1;
  int rc = add_class(module, slot, name, bases, doc);
  Py_DECREF(bases);
  return rc;
}

int strata_py_init_errors(PyObject *module) {
  if (add_class(module, &strata_py_Error, "Error", PyExc_Exception,
                "Every failure of a Strata call. The message is the "
                "library's detail (it names the file, region, layer or "
                "offset); .code is the library's negative error code and "
                ".name its symbolic name (e.g. 'STRATA_E_CORRUPT').") < 0)
    return -1;
  /* Class-level defaults, so that .code and .name exist on instances the
   * user raises himself too. */
  if (PyObject_SetAttrString(strata_py_Error, "code", Py_None) < 0 ||
      PyObject_SetAttrString(strata_py_Error, "name", Py_None) < 0)
    return -1;
  if (add_sub(module, &strata_py_NotFoundError, "NotFoundError", PyExc_KeyError,
              "No such layer or region (STRATA_E_NOT_FOUND, "
              "STRATA_E_NO_REGION). Also a KeyError.") < 0 ||
      add_sub(module, &strata_py_CorruptError, "CorruptError", NULL,
              "A damaged or foreign file: bad magic, newer format version, "
              "checksum mismatch, inconsistent structure, out-of-bounds "
              "offsets.") < 0 ||
      add_sub(module, &strata_py_LockedError, "LockedError", NULL,
              "The store is locked by another writer (STRATA_E_LOCKED).") < 0 ||
      add_sub(module, &strata_py_LimitError, "LimitError", NULL,
              "A configured or format limit was reached (STRATA_E_LIMIT).") <
          0 ||
      add_sub(module, &strata_py_ConflictError, "ConflictError", NULL,
              "A region file changed on disk under the store "
              "(STRATA_E_CONFLICT).") < 0 ||
      add_sub(module, &strata_py_OSError, "StrataOSError", PyExc_OSError,
              "A system call failed; .errno is set. Also an OSError.") < 0)
    return -1;
  return 0;
}
