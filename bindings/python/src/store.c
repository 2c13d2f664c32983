/* strata.Store: a store opened from Python, its reader thread, and the
 * calls that do not belong to a snapshot or a proto (strata_py_store.h).
 *
 * Closing. A Store ends its snapshots when it is closed: those without
 * exported buffers at once (their Layers become dead), those with exports
 * when the last buffer is released, as leaving their `with` block would.
 * strata_store_close() waits for every snapshot, and must not run while
 * another call on the store does, so until both are done the Store is
 * CLOSING: every method raises "closed", and the real close happens when
 * the last snapshot ends or the last call made with the GIL released
 * returns. close() therefore never raises BufferError and never blocks;
 * what it cannot end yet it ends later, which holds the writer lock until
 * then (un-crystallized proto content is lost at close, as in C).
 *
 * The reader thread (strata_py_store.h says why it exists): one per Store,
 * started at open, which takes its reader slot then, so that a store whose
 * max_readers slots are all taken fails at open rather than at a later
 * snapshot(). A begin or end is handed to it under a mutex and waited for
 * with the GIL held: the thread never takes the GIL, and the library's
 * read_begin takes no lock after the slot exists, so the wait is one
 * wake-up each way. */
#include "strata_py_store.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PyObject *strata_py_StoreType;

/* ---- the reader thread --------------------------------------------------- */

typedef enum reader_op {
  READER_IDLE = 0,
  READER_BEGIN,
  READER_END,
  READER_QUIT
} reader_op;

struct strata_py_reader {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  strata_store *store;
  reader_op op;       /* the request being served, IDLE when none */
  uint64_t requested; /* requests made */
  uint64_t served;    /* requests done */
  strata_txn *txn;    /* the request's snapshot */
  int rc;             /* the request's result */
  char detail[1024];  /* the thread's error detail when rc < 0 */
};

static void *reader_main(void *arg) {
  strata_py_reader *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (r->op == READER_IDLE)
      pthread_cond_wait(&r->cv, &r->mu);
    reader_op op = r->op;
    if (op == READER_BEGIN) {
      r->rc = strata_read_begin(r->store, r->txn);
      if (r->rc < 0)
        snprintf(r->detail, sizeof r->detail, "%s", strata_last_error_detail());
    } else if (op == READER_END) {
      strata_read_end(r->txn);
      r->rc = 0;
    }
    r->op = READER_IDLE;
    r->served++;
    pthread_cond_broadcast(&r->cv);
    if (op == READER_QUIT)
      break;
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* Runs `op` on the reader thread and waits for it (GIL held: requests are
 * made one at a time). Returns its rc. */
static int reader_call(strata_py_reader *r, reader_op op, strata_txn *txn) {
  pthread_mutex_lock(&r->mu);
  while (r->op != READER_IDLE)
    pthread_cond_wait(&r->cv, &r->mu);
  uint64_t ticket = ++r->requested;
  r->op = op;
  r->txn = txn;
  pthread_cond_broadcast(&r->cv);
  while (r->served < ticket)
    pthread_cond_wait(&r->cv, &r->mu);
  int rc = r->rc;
  pthread_mutex_unlock(&r->mu);
  return rc;
}

/* Raises the exception of a failure on the reader thread: the class and
 * .code come from `rc`, the message from the reader's detail (this
 * thread's detail is another call's). */
static void reader_raise(strata_py_reader *r, int rc) {
  strata_py_raise(rc);
  if (r->detail[0] == '\0')
    return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyObject *args = Py_BuildValue("(s)", r->detail);
  if (args != NULL && value != NULL &&
      !PyObject_IsInstance(value, PyExc_OSError))
    PyObject_SetAttrString(value, "args", args);
  Py_XDECREF(args);
  PyErr_Restore(type, value, tb);
}

static void reader_free(strata_py_reader *r) {
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

/* Starts the reader thread of `store` and takes its reader slot (a
 * begin and an end). NULL with an exception on failure. Signals are
 * blocked in the thread, so that they go to Python's threads. */
static strata_py_reader *reader_start(strata_store *store) {
  strata_py_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    return (strata_py_reader *)PyErr_NoMemory();
  r->store = store;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = pthread_create(&r->thread, NULL, reader_main, r);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0) {
    reader_free(r);
    errno = e;
    return (strata_py_reader *)PyErr_SetFromErrno(PyExc_OSError);
  }
  strata_txn txn;
  int rc = reader_call(r, READER_BEGIN, &txn);
  if (rc == 0)
    reader_call(r, READER_END, &txn);
  else
    reader_raise(r, rc);
  if (rc < 0) {
    reader_call(r, READER_QUIT, NULL);
    pthread_join(r->thread, NULL);
    reader_free(r);
    return NULL;
  }
  return r;
}

/* Stops the thread; its exit releases its slot (before the store closes:
 * threads that used a store must not exit while strata_store_close()
 * runs). */
static void reader_stop(strata_py_reader *r) {
  reader_call(r, READER_QUIT, NULL);
  pthread_join(r->thread, NULL);
  reader_free(r);
}

/* ---- closing ------------------------------------------------------------- */

int strata_py_store_check(strata_py_store *s) {
  if (strata_py_check_pid(s->pid, "store") < 0)
    return -1;
  if (s->state != STRATA_PY_STORE_OPEN) {
    strata_py_raise_state("store %U is closed", s->path);
    return -1;
  }
  return 0;
}

/* The real close, once nothing runs on the store any more. */
static void store_finish(strata_py_store *s) {
  s->state = STRATA_PY_STORE_CLOSED;
  strata_store *store = s->store;
  s->store = NULL;
  if (s->reader != NULL)
    reader_stop(s->reader);
  s->reader = NULL;
  Py_BEGIN_ALLOW_THREADS strata_store_close(store);
  Py_END_ALLOW_THREADS
}

static void store_maybe_finish(strata_py_store *s) {
  if (s->state == STRATA_PY_STORE_CLOSING && s->snapshots == 0 && s->busy == 0)
    store_finish(s);
}

int strata_py_store_enter(strata_py_store *s) {
  if (strata_py_store_check(s) < 0)
    return -1;
  s->busy++;
  return 0;
}

void strata_py_store_leave(strata_py_store *s) {
  s->busy--;
  store_maybe_finish(s);
}

int strata_py_store_read_begin(strata_py_store *s, strata_txn *txn,
                               strata_py_snaplink *link) {
  if (strata_py_store_check(s) < 0)
    return -1;
  int rc = reader_call(s->reader, READER_BEGIN, txn);
  if (rc < 0) {
    reader_raise(s->reader, rc);
    return -1;
  }
  link->prev = NULL;
  link->next = s->live;
  if (s->live != NULL)
    s->live->prev = link;
  s->live = link;
  s->snapshots++;
  return 0;
}

static void unlink_snapshot(strata_py_store *s, strata_py_snaplink *link) {
  if (link->prev != NULL)
    link->prev->next = link->next;
  else
    s->live = link->next;
  if (link->next != NULL)
    link->next->prev = link->prev;
  link->prev = link->next = NULL;
  s->snapshots--;
}

void strata_py_store_read_end(strata_py_store *s, strata_txn *txn,
                              strata_py_snaplink *link) {
  unlink_snapshot(s, link);
  if (s->pid != getpid())
    return;
  reader_call(s->reader, READER_END, txn);
  store_maybe_finish(s);
}

/* ---- keys ---------------------------------------------------------------- */

int strata_py_key(PyObject *key, const char *what, uint64_t *id,
                  const char **name, Py_ssize_t *name_len) {
  if (PyLong_Check(key) && !PyBool_Check(key)) {
    unsigned long long v = PyLong_AsUnsignedLongLong(key);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
      PyErr_Format(PyExc_OverflowError, "%s id %R is not in 0 .. 2**64-1", what,
                   key);
      return -1;
    }
    *id = v;
    return 0;
  }
  if (PyUnicode_Check(key)) {
    *name = PyUnicode_AsUTF8AndSize(key, name_len);
    return *name != NULL ? 1 : -1;
  }
  return strata_py_type_error(what, "an int id or a str name", key);
}

/* The id of region `key` (int id, or a name looked up in a snapshot of
 * this thread's own, ended before returning). */
static int region_id_of(strata_py_store *s, PyObject *key, uint64_t *id) {
  const char *name = NULL;
  Py_ssize_t len = 0;
  int kind = strata_py_key(key, "region", id, &name, &len);
  if (kind <= 0)
    return kind;
  strata_txn txn;
  int rc = strata_read_begin(s->store, &txn);
  if (rc == 0)
    rc = strata_find_region(&txn, name, (size_t)len, id);
  if (rc < 0) {
    strata_py_raise(rc);
    strata_read_end(&txn);
    return -1;
  }
  strata_read_end(&txn);
  return 0;
}

/* ---- configuration ------------------------------------------------------- */

typedef enum opt_kind {
  OPT_U64,
  OPT_U32,
  OPT_UINT, /* unsigned */
  OPT_INT,
  OPT_BOOL, /* an unsigned field set to 0 or 1 */
  OPT_FLAG, /* a bit of an unsigned flags field */
  OPT_LOG,  /* log level: int, or a name for strata_log_level_parse() */
} opt_kind;

typedef struct opt {
  const char *name;
  size_t offset; /* in strata_store_config */
  opt_kind kind;
  unsigned bit; /* OPT_FLAG */
} opt;

#define CFG(field) offsetof(strata_store_config, field)

/* The keyword arguments of Store(): the fields of strata_store_config
 * (include/strata/store.h says what each means), the staging pool's with
 * a staging_ prefix, and a bool per flag. */
static const opt opts[] = {
    {"memory_limit", CFG(memory_limit), OPT_U64, 0},
    {"warn_pct", CFG(warn_pct), OPT_UINT, 0},
    {"evict_pct", CFG(evict_pct), OPT_UINT, 0},
    {"refuse_pct", CFG(refuse_pct), OPT_UINT, 0},
    {"log_level", CFG(log_level), OPT_LOG, 0},
    {"max_readers", CFG(max_readers), OPT_U32, 0},
    {"snapshot_warn_ms", CFG(snapshot_warn_ms), OPT_U64, 0},
    {"open_threads", CFG(open_threads), OPT_UINT, 0},
    {"shared_view", CFG(shared_view), OPT_BOOL, 0},
    {"read_only", CFG(flags), OPT_FLAG, STRATA_STORE_READ_ONLY},
    {"verify_at_open", CFG(flags), OPT_FLAG, STRATA_STORE_VERIFY_AT_OPEN},
    {"create", CFG(flags), OPT_FLAG, STRATA_STORE_CREATE},
    {"no_deltas", CFG(flags), OPT_FLAG, STRATA_STORE_NO_DELTAS},
    {"background_compact", CFG(flags), OPT_FLAG,
     STRATA_STORE_BACKGROUND_COMPACT},
    {"staging_bytes", CFG(staging.bytes), OPT_U64, 0},
    {"staging_block_size", CFG(staging.block_size), OPT_U32, 0},
    {"staging_streams", CFG(staging.streams), OPT_U32, 0},
    {"staging_device", CFG(staging.device), OPT_INT, 0},
    {"staging_high_pct", CFG(staging.high_pct), OPT_UINT, 0},
    {"staging_evict_pct", CFG(staging.evict_pct), OPT_UINT, 0},
    {"staging_hot_threshold", CFG(staging.hot_threshold), OPT_U32, 0},
    {"staging_sample_period", CFG(staging.sample_period), OPT_U32, 0},
    {"staging_hot_budget", CFG(staging.hot_budget), OPT_U64, 0},
    {"staging_pack_bytes", CFG(staging.pack_bytes), OPT_U64, 0},
    {"staging_device_cache_bytes", CFG(staging.device_cache_bytes), OPT_U64, 0},
    {"staging_host", CFG(staging.flags), OPT_FLAG, STRATA_STAGING_HOST},
    {"staging_no_dedup", CFG(staging.flags), OPT_FLAG, STRATA_STAGING_NO_DEDUP},
    {"staging_direct", CFG(staging.flags), OPT_FLAG, STRATA_STAGING_DIRECT},
};

/* An unsigned integer argument no larger than `max`. */
static int opt_unsigned(const opt *o, PyObject *v, uint64_t max,
                        uint64_t *out) {
  bool is_int = PyLong_Check(v) && !PyBool_Check(v);
  unsigned long long x = is_int ? PyLong_AsUnsignedLongLong(v) : 0;
  if (!is_int || (x == (unsigned long long)-1 && PyErr_Occurred()) || x > max) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError,
                 "Store(): %s must be an int in 0 .. %llu, not %R", o->name,
                 (unsigned long long)max, v);
    return -1;
  }
  *out = x;
  return 0;
}

static int opt_set(strata_store_config *c, const opt *o, PyObject *v) {
  char *field = (char *)c + o->offset;
  uint64_t x;
  switch (o->kind) {
  case OPT_U64:
    if (opt_unsigned(o, v, UINT64_MAX, &x) < 0)
      return -1;
    memcpy(field, &x, sizeof(uint64_t));
    return 0;
  case OPT_U32:
  case OPT_UINT: {
    if (opt_unsigned(o, v, UINT32_MAX, &x) < 0)
      return -1;
    uint32_t y = (uint32_t)x;
    memcpy(field, &y, sizeof y);
    return 0;
  }
  case OPT_INT: {
    long y = PyLong_Check(v) && !PyBool_Check(v) ? PyLong_AsLong(v) : -1;
    if (!PyLong_Check(v) || PyBool_Check(v) || PyErr_Occurred() || y < 0 ||
        y > INT32_MAX) {
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError,
                   "Store(): %s must be an int in 0 .. %d, not %R", o->name,
                   INT32_MAX, v);
      return -1;
    }
    int z = (int)y;
    memcpy(field, &z, sizeof z);
    return 0;
  }
  case OPT_BOOL:
  case OPT_FLAG: {
    int t = PyObject_IsTrue(v);
    if (t < 0)
      return -1;
    unsigned u;
    memcpy(&u, field, sizeof u);
    if (o->kind == OPT_BOOL)
      u = (unsigned)t;
    else
      u = t ? u | o->bit : u & ~o->bit;
    memcpy(field, &u, sizeof u);
    return 0;
  }
  case OPT_LOG: {
    int level = -1;
    if (PyUnicode_Check(v)) {
      const char *s = PyUnicode_AsUTF8AndSize(v, NULL);
      if (s == NULL)
        return -1;
      level = strata_log_level_parse(s);
    } else if (PyLong_Check(v) && !PyBool_Check(v)) {
      long y = PyLong_AsLong(v);
      level = y >= STRATA_LOG_TRACE && y <= STRATA_LOG_OFF ? (int)y : -1;
      PyErr_Clear();
    }
    if (level < 0) {
      PyErr_Format(PyExc_ValueError,
                   "Store(): log_level must be 'trace', 'debug', 'info', "
                   "'warn', 'error', 'off' or 0 .. 5, not %R",
                   v);
      return -1;
    }
    memcpy(field, &level, sizeof level);
    return 0;
  }
  }
  return 0;
}

/* Fills *c from the keyword arguments; None leaves a field's default. */
static int config_from_kwargs(strata_store_config *c, PyObject *kwargs) {
  strata_store_config_init(c);
  if (kwargs == NULL)
    return 0;
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(kwargs, &pos, &key, &value)) {
    const char *k = PyUnicode_AsUTF8AndSize(key, NULL);
    if (k == NULL)
      return -1;
    const opt *o = NULL;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0] && o == NULL; i++)
      if (strcmp(opts[i].name, k) == 0)
        o = &opts[i];
    if (o == NULL) {
      PyErr_Format(PyExc_TypeError,
                   "Store() got an unexpected keyword argument '%s'", k);
      return -1;
    }
    if (value != Py_None && opt_set(c, o, value) < 0)
      return -1;
  }
  return 0;
}

/* ---- the type ------------------------------------------------------------ */

static PyObject *Store_new(PyTypeObject *type, PyObject *args,
                           PyObject *kwargs) {
  PyObject *path_bytes = NULL;
  if (!PyArg_ParseTuple(args, "O&:Store", PyUnicode_FSConverter, &path_bytes))
    return NULL;
  strata_store_config config;
  if (config_from_kwargs(&config, kwargs) < 0) {
    Py_DECREF(path_bytes);
    return NULL;
  }
  strata_py_store *s = (strata_py_store *)PyType_GenericAlloc(type, 0);
  if (s == NULL) {
    Py_DECREF(path_bytes);
    return NULL;
  }
  s->state = STRATA_PY_STORE_CLOSED; /* until the store is open */
  s->pid = getpid();
  s->path = PyUnicode_DecodeFSDefault(PyBytes_AsString(path_bytes));
  if (s->path == NULL)
    goto fail;
  const char *dir = PyBytes_AsString(path_bytes);
  strata_store *store = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = strata_store_open(dir, &config, &store);
  Py_END_ALLOW_THREADS if (rc < 0) {
    strata_py_raise(rc);
    goto fail;
  }
  s->reader = reader_start(store);
  if (s->reader == NULL) {
    Py_BEGIN_ALLOW_THREADS strata_store_close(store);
    Py_END_ALLOW_THREADS goto fail;
  }
  s->store = store;
  s->state = STRATA_PY_STORE_OPEN;
  Py_DECREF(path_bytes);
  return (PyObject *)s;
fail:
  Py_DECREF(path_bytes);
  Py_DECREF(s);
  return NULL;
}

static void Store_dealloc(PyObject *self) {
  strata_py_store *s = (strata_py_store *)self;
  /* No Snapshot or Proto is left (each holds the Store) and no call runs
   * (it holds its `self`). A fork() child leaves the parent's store
   * alone: its threads and locks are the parent's. */
  if (s->state != STRATA_PY_STORE_CLOSED && s->pid == getpid())
    store_finish(s);
  Py_XDECREF(s->path);
  strata_py_free_object(self);
}

static PyObject *Store_repr(PyObject *self) {
  strata_py_store *s = (strata_py_store *)self;
  return PyUnicode_FromFormat("<strata.Store %R%s>", s->path,
                              s->state == STRATA_PY_STORE_OPEN ? ""
                                                               : " closed");
}

static PyObject *Store_close(PyObject *self, PyObject *unused) {
  (void)unused;
  strata_py_store *s = (strata_py_store *)self;
  if (strata_py_check_pid(s->pid, "store") < 0)
    return NULL;
  if (s->state != STRATA_PY_STORE_OPEN)
    Py_RETURN_NONE;
  s->state = STRATA_PY_STORE_CLOSING;
  /* Ending a snapshot unlinks it: take the next link first. A snapshot
   * with exports stays linked, CLOSING, until its last buffer goes. */
  strata_py_snaplink *link = s->live;
  while (link != NULL) {
    strata_py_snaplink *next = link->next;
    if (strata_py_owner_close(link->snapshot, true) < 0)
      return NULL;
    link = next;
  }
  store_maybe_finish(s);
  Py_RETURN_NONE;
}

static PyObject *Store_enter(PyObject *self, PyObject *unused) {
  (void)unused;
  if (strata_py_store_check((strata_py_store *)self) < 0)
    return NULL;
  Py_INCREF(self);
  return self;
}

static PyObject *Store_exit(PyObject *self, PyObject *const *args,
                            Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return Store_close(self, NULL);
}

static PyObject *Store_snapshot(PyObject *self, PyObject *unused) {
  (void)unused;
  return strata_py_snapshot_new((strata_py_store *)self);
}

static PyObject *Store_proto(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"region", "create", "name", "metadata", NULL};
  strata_py_store *s = (strata_py_store *)self;
  PyObject *region, *name = Py_None, *metadata = Py_None;
  int create = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$pOO:proto", kwlist,
                                   &region, &create, &name, &metadata))
    return NULL;
  if (strata_py_store_check(s) < 0)
    return NULL;
  uint64_t id = 0;
  const char *cname = NULL;
  Py_ssize_t cname_len = 0;
  PyObject *meta = NULL;
  if (create) {
    if (!PyLong_Check(region) || PyBool_Check(region))
      return PyErr_Format(PyExc_TypeError,
                          "proto(create=True) takes the new region's id (an "
                          "int) and name=, not %R",
                          region);
    if (strata_py_key(region, "region", &id, &cname, &cname_len) < 0)
      return NULL;
    if (!PyUnicode_Check(name))
      return PyErr_Format(PyExc_TypeError,
                          "proto(create=True) needs name= (a str) for "
                          "region %llu",
                          (unsigned long long)id);
    cname = PyUnicode_AsUTF8AndSize(name, &cname_len);
    if (cname == NULL)
      return NULL;
    if (metadata != Py_None && (meta = strata_py_json_dumps(metadata)) == NULL)
      return NULL;
  } else {
    if (name != Py_None || metadata != Py_None)
      return PyErr_Format(PyExc_TypeError,
                          "proto(): name= and metadata= are for a new region "
                          "(create=True); an existing region keeps its own");
    if (region_id_of(s, region, &id) < 0)
      return NULL;
  }
  const char *mtext = meta != NULL ? PyBytes_AsString(meta) : NULL;
  strata_proto *proto = NULL;
  int rc;
  if (strata_py_store_enter(s) < 0) {
    Py_XDECREF(meta);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS if (create) rc = strata_proto_create(
      s->store, id, cname, (size_t)cname_len, mtext, &proto);
  else rc = strata_proto_open(s->store, id, &proto);
  Py_END_ALLOW_THREADS if (rc < 0) strata_py_raise(rc);
  Py_XDECREF(meta);
  strata_py_store_leave(s);
  if (rc < 0)
    return NULL;
  return strata_py_proto_new(s, proto, id);
}

/* Calls fn(store, region id) with the GIL released: crystallize and
 * compact. */
static PyObject *region_call(PyObject *self, PyObject *region,
                             int (*fn)(strata_store *, uint64_t)) {
  strata_py_store *s = (strata_py_store *)self;
  uint64_t id;
  if (strata_py_store_check(s) < 0 || region_id_of(s, region, &id) < 0 ||
      strata_py_store_enter(s) < 0)
    return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = fn(s->store, id);
  Py_END_ALLOW_THREADS if (rc < 0) strata_py_raise(rc);
  strata_py_store_leave(s);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *Store_crystallize(PyObject *self, PyObject *region) {
  return region_call(self, region, strata_crystallize);
}

static PyObject *Store_compact(PyObject *self, PyObject *region) {
  return region_call(self, region, strata_compact);
}

static PyObject *Store_compact_wait(PyObject *self, PyObject *unused) {
  (void)unused;
  strata_py_store *s = (strata_py_store *)self;
  if (strata_py_store_enter(s) < 0)
    return NULL;
  Py_BEGIN_ALLOW_THREADS(void) strata_compact_wait(s->store);
  Py_END_ALLOW_THREADS strata_py_store_leave(s);
  Py_RETURN_NONE;
}

static PyObject *Store_refresh(PyObject *self, PyObject *unused) {
  (void)unused;
  strata_py_store *s = (strata_py_store *)self;
  if (strata_py_store_enter(s) < 0)
    return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = strata_store_refresh(s->store);
  Py_END_ALLOW_THREADS if (rc < 0) strata_py_raise(rc);
  strata_py_store_leave(s);
  if (rc < 0)
    return NULL;
  Py_RETURN_NONE;
}

/* A string the library made (strata_dump_state, strata_metrics_text), as
 * parsed JSON (`json`) or a str, released either way. */
static PyObject *take_text(char *text, bool json) {
  PyObject *out = json ? strata_py_json_loads(text, strlen(text))
                       : PyUnicode_FromString(text);
  strata_free(text);
  return out;
}

static PyObject *Store_dump_state(PyObject *self, PyObject *args,
                                  PyObject *kwargs) {
  static char *kwlist[] = {"verbose", NULL};
  strata_py_store *s = (strata_py_store *)self;
  int verbose = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:dump_state", kwlist,
                                   &verbose) ||
      strata_py_store_enter(s) < 0)
    return NULL;
  char *json = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc =
      strata_dump_state(s->store, verbose ? STRATA_DUMP_VERBOSE : 0, &json);
  Py_END_ALLOW_THREADS if (rc < 0) strata_py_raise(rc);
  strata_py_store_leave(s);
  return rc < 0 ? NULL : take_text(json, true);
}

static PyObject *Store_metrics_text(PyObject *self, PyObject *unused) {
  (void)unused;
  strata_py_store *s = (strata_py_store *)self;
  if (strata_py_store_enter(s) < 0)
    return NULL;
  char *text = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = strata_metrics_text(s->store, &text);
  Py_END_ALLOW_THREADS if (rc < 0) strata_py_raise(rc);
  strata_py_store_leave(s);
  return rc < 0 ? NULL : take_text(text, false);
}

/* One strata_process as a dict: its fields under their C names. */
static PyObject *process_dict(const strata_process *p) {
  return Py_BuildValue(
      "{s:L,s:s,s:I,s:I,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,"
      "s:K,s:K,s:K,s:K}",
      "pid", (long long)p->pid, "role",
      p->role == STRATA_PROCESS_WRITER   ? "writer"
      : p->role == STRATA_PROCESS_READER ? "reader"
                                         : "starting",
      "slot", p->slot, "memory_level", p->memory_level, "opened_unix_ms",
      (unsigned long long)p->opened_unix_ms, "updated_unix_ms",
      (unsigned long long)p->updated_unix_ms, "snapshots_open",
      (unsigned long long)p->snapshots_open, "oldest_snapshot_unix_ms",
      (unsigned long long)p->oldest_snapshot_unix_ms, "snapshots",
      (unsigned long long)p->snapshots, "gets", (unsigned long long)p->gets,
      "misses", (unsigned long long)p->misses, "bytes_served",
      (unsigned long long)p->bytes_served, "crystallizations",
      (unsigned long long)p->crystallizations, "crystallize_bytes",
      (unsigned long long)p->crystallize_bytes, "evictions",
      (unsigned long long)p->evictions, "heap_bytes",
      (unsigned long long)p->heap_bytes, "memory_limit",
      (unsigned long long)p->memory_limit, "staging_bytes",
      (unsigned long long)p->staging_bytes, "staging_used_bytes",
      (unsigned long long)p->staging_used_bytes, "staging_layers",
      (unsigned long long)p->staging_layers);
}

static PyObject *Store_processes(PyObject *self, PyObject *unused) {
  (void)unused;
  strata_py_store *s = (strata_py_store *)self;
  if (strata_py_store_enter(s) < 0)
    return NULL;
  PyObject *dir = PyUnicode_EncodeFSDefault(s->path);
  if (dir == NULL) {
    strata_py_store_leave(s);
    return NULL;
  }
  const char *dirname = PyBytes_AsString(dir);
  strata_process *list = NULL;
  size_t count = 0;
  int rc;
  /* This process's own figures as they are now, not as of the last
   * periodic update. */
  Py_BEGIN_ALLOW_THREADS rc = strata_processes_publish(s->store);
  if (rc == 0)
    rc = strata_processes_read(dirname, sizeof(strata_process), &list, &count);
  Py_END_ALLOW_THREADS if (rc < 0) strata_py_raise(rc);
  Py_DECREF(dir);
  strata_py_store_leave(s);
  if (rc < 0)
    return NULL;
  PyObject *out = PyList_New((Py_ssize_t)count);
  for (size_t i = 0; out != NULL && i < count; i++) {
    PyObject *d = process_dict(&list[i]);
    if (d == NULL)
      Py_CLEAR(out);
    else
      PyList_SetItem(out, (Py_ssize_t)i, d);
  }
  strata_processes_free(list);
  return out;
}

static PyObject *Store_get_closed(PyObject *self, void *unused) {
  (void)unused;
  return PyBool_FromLong(((strata_py_store *)self)->state !=
                         STRATA_PY_STORE_OPEN);
}

static PyObject *Store_get_path(PyObject *self, void *unused) {
  (void)unused;
  PyObject *p = ((strata_py_store *)self)->path;
  Py_INCREF(p);
  return p;
}

static PyMethodDef Store_methods[] = {
    {"close", Store_close, METH_NOARGS,
     "close()\n--\n\nCloses the store. Snapshots without exported buffers "
     "end now (their Layers become dead); a snapshot whose buffers are still "
     "exported ends when the last is released, and the store itself closes "
     "then (it keeps the writer lock until then). Every later call on the "
     "store, its snapshots and its protos raises strata.Error. Proto "
     "content that was not crystallized is lost. Closing twice is a no-op; "
     "never raises BufferError."},
    {"__enter__", Store_enter, METH_NOARGS, "Returns the store."},
    {"__exit__", (PyCFunction)(void (*)(void))Store_exit, METH_FASTCALL,
     "Closes the store (close())."},
    {"snapshot", Store_snapshot, METH_NOARGS,
     "snapshot() -> Snapshot\n--\n\nBegins a snapshot: one consistent state "
     "of every region, unchanged by later puts, crystallizations and "
     "refreshes until it ends."},
    {"proto", (PyCFunction)(void (*)(void))Store_proto,
     METH_VARARGS | METH_KEYWORDS,
     "proto(region, *, create=False, name=None, metadata=None) -> Proto\n--\n"
     "\nThe proto (mutable copy) of `region` (an int id or a str name), "
     "opened over its file. With create=True, a new empty region: `region` "
     "is its int id, name= its name (also its file name NAME.region) and "
     "metadata= its metadata (dict/list, or JSON text). Takes the store's "
     "writer lock on the first write (strata.LockedError when another "
     "process holds it)."},
    {"crystallize", Store_crystallize, METH_O,
     "crystallize(region)\n--\n\nWrites the proto of `region` (id or name) "
     "as a region file (temporary file, fsync, rename) and publishes it. "
     "Open snapshots keep what they saw. Releases the GIL."},
    {"compact", Store_compact, METH_O,
     "compact(region)\n--\n\nRewrites the stack of `region` (id or name: "
     "its base and delta files) into a new base, holding the writer only at "
     "the start and for the publication: puts, crystallizations and reads "
     "go on meanwhile, and deltas crystallized meanwhile are kept. A no-op "
     "for a region without deltas. strata.ConflictError when the stack "
     "changed below its top meanwhile (nothing replaced). Releases the "
     "GIL."},
    {"compact_wait", Store_compact_wait, METH_NOARGS,
     "compact_wait()\n--\n\nWaits until the store's compactor thread "
     "(background_compact=True) has nothing queued or running; returns at "
     "once without one. Releases the GIL."},
    {"refresh", Store_refresh, METH_NOARGS,
     "refresh()\n--\n\nPicks up region files other processes wrote, drops "
     "those that disappeared. Releases the GIL."},
    {"dump_state", (PyCFunction)(void (*)(void))Store_dump_state,
     METH_VARARGS | METH_KEYWORDS,
     "dump_state(verbose=False) -> dict\n--\n\nThe store's whole state "
     "(docs/state.schema.json): version, config, memory, regions, protos, "
     "pool, stats, snapshots, reclamation. verbose=True also lists every "
     "region's layer index."},
    {"metrics_text", Store_metrics_text, METH_NOARGS,
     "metrics_text() -> str\n--\n\nThe same figures in Prometheus text "
     "format 0.0.4."},
    {"processes", Store_processes, METH_NOARGS,
     "processes() -> list[dict]\n--\n\nThe live processes that have this "
     "store open, from its shared view (STORE/.strata.shm): pid, role "
     "('reader' or 'writer'), snapshots_open, gets, misses, heap_bytes and "
     "the other fields of strata_process (include/strata/processes.h); "
     "this process's entry is published first, so it is current. Empty "
     "when no process registered (shared_view=False)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Store_getset[] = {
    {"closed", Store_get_closed, NULL,
     "True once close() was called (the store may still be ending).", NULL},
    {"path", Store_get_path, NULL, "The store's directory, as given.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Store_slots[] = {
    {Py_tp_new, Store_new},
    {Py_tp_dealloc, Store_dealloc},
    {Py_tp_repr, Store_repr},
    {Py_tp_methods, Store_methods},
    {Py_tp_getset, Store_getset},
    {Py_tp_doc,
     "Store(path, **config)\n--\n\nA store: the directory `path` of region "
     "files, read through snapshots and written through protos. The keyword "
     "arguments are strata_store_config's fields (include/strata/store.h): "
     "memory_limit, warn_pct, evict_pct, refuse_pct, log_level (a name or "
     "0..5), max_readers, snapshot_warn_ms, open_threads, shared_view; "
     "read_only, verify_at_open, create, no_deltas and background_compact "
     "(bools for the flags; no_deltas: crystallize into whole base files "
     "only; background_compact: merges and base rewrites of delta stacks "
     "on a thread of the store, see compact()); and the "
     "staging pool's, prefixed: staging_bytes, staging_block_size, "
     "staging_streams, staging_device, staging_high_pct, staging_evict_pct, "
     "staging_hot_threshold, staging_sample_period, staging_hot_budget, "
     "staging_pack_bytes, staging_device_cache_bytes, staging_host, "
     "staging_no_dedup, staging_direct. None keeps a default; an unknown "
     "keyword is a TypeError. Opening releases the GIL. A context manager "
     "(close() on exit). A Store must not be used in a fork() child of the "
     "process that opened it (strata.Error)."},
    {0, NULL},
};

static PyType_Spec Store_spec = {
    .name = "strata.Store",
    .basicsize = sizeof(strata_py_store),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Store_slots,
};

int strata_py_init_store(PyObject *module) {
  return strata_py_add_type(module, &Store_spec, "Store", &strata_py_StoreType);
}
