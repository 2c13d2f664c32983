/* Concurrency stress test of the store.
 *
 * Many reader threads take snapshots of two store handles on one directory
 * (the writer's, and a second one opened read-only that is refreshed now
 * and then) and check everything they read, while one writer thread
 * creates protos, opens protos over region files, puts and removes layers,
 * crystallizes, discards, removes region files and refreshes, and
 * reclaims.
 *
 * What a reader checks, inside every snapshot:
 *  - every layer's checksum (XXH3_64bits(data, size) == layer.checksum);
 *  - every layer's content: it is self-describing (a header naming region,
 *    layer, generation and size, then a body derived from the header), so
 *    torn, stale-after-free or mixed content is detected without knowing
 *    what the writer did; name and metadata must belong to that content;
 *  - consistency: the writer moves a region from one complete generation P
 *    to the next T by putting a "manifest" layer that says "P -> T in
 *    progress", then changing the data layers one put or remove at a time
 *    in an order derived from (region, T), then putting a manifest "T
 *    complete". A snapshot sees a prefix of the writer's publications, so
 *    it must see either a complete generation exactly, or P -> T with the
 *    layers changed so far forming a prefix of that order. Any mix of two
 *    published states breaks this;
 *  - stability: at the end of the snapshot every layer read is read again
 *    and must come back with the same pointers and content (a snapshot
 *    never changes under the reader, and nothing it reached was freed);
 *    a region read twice must read the same; strata_get_by_name() and
 *    strata_get_many() must agree with strata_get(); the region list must
 *    agree with the lookups; a nested snapshot must not disturb its outer
 *    one.
 * The writer checks after each crystallization or discard that a fresh
 * snapshot shows exactly its model of the region, and after each refresh
 * that the read-only handle shows exactly the region files. It also checks
 * that /proc/self/maps never holds more mappings of files in the store
 * directory than live regions with a file plus retired objects (a retired
 * object holds at most one mapping), and at the end, after reclaiming,
 * that no object is left retired, no snapshot open, and exactly one
 * mapping per region file served remains.
 *
 * Environment:
 *   STRATA_STRESS_READERS  reader threads (default 128)
 *   STRATA_STRESS_SWAPS    crystallizations the writer performs (default
 *                          200: seconds, under TSan too; raise it for a
 *                          campaign)
 *   STRATA_STRESS_SEED     seed of the writer's choices (default: time)
 *
 * Readers run at the lowest CPU priority (nice 19) so that the writer,
 * which is one thread among 129, keeps making progress on a small machine.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <xxhash.h>

#include "test_util.h"

/* ---- the content -------------------------------------------------------- */

enum {
  REGIONS = 8,      /* region ids 1 .. REGIONS */
  FILE_REGIONS = 4, /* regions 1 .. FILE_REGIONS start as files */
  LAYERS = 24,      /* data layer ids 0 .. LAYERS - 1 */
  MANIFEST_ID = 1000,
  MAX_CONTENT = 65536 + 8192 + 64,
};

#define DATA_MAGIC UINT64_C(0x3153415441525453)     /* "STRATAS1" */
#define MANIFEST_MAGIC UINT64_C(0x314E414D41525453) /* "STRAMAN1" */

/* The first bytes of every layer the writer puts. For a data layer, `gen`
 * is its generation and prev = in_progress = 0. For the manifest, a
 * complete generation G is {gen G, prev 0, in_progress 0}, and a change in
 * progress from P to T is {gen T, prev P, in_progress 1}. */
typedef struct content_hdr {
  uint64_t magic, region, layer, gen, prev, in_progress, size, reserved;
} content_hdr;

#define HDR_SIZE sizeof(content_hdr)
#define MANIFEST_SIZE (HDR_SIZE + 40)

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

static uint64_t hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return mix64(a + mix64(b + mix64(c + mix64(d + 0x9e3779b97f4a7c15u))));
}

/* Is data layer `l` of region `r` present in generation `g`? Generation 0
 * is the empty region of a fresh proto. */
static bool present(uint64_t r, uint64_t l, uint64_t g) {
  return g != 0 && hash4(r, l, g, 1) % 8 != 0;
}

/* Mostly small layers; one in 64 is larger than the pool's biggest class. */
static size_t data_size(uint64_t r, uint64_t l, uint64_t g) {
  uint64_t h = hash4(r, l, g, 2);
  if (h % 64 == 0)
    return 65536 + (size_t)((h >> 32) % 8192);
  return HDR_SIZE + (size_t)((h >> 32) % 1536);
}

/* The order in which the change to generation `t` visits the data layers. */
static void change_order(uint64_t r, uint64_t t, int order[LAYERS]) {
  for (int i = 0; i < LAYERS; i++)
    order[i] = i;
  for (int i = LAYERS - 1; i > 0; i--) {
    int j = (int)(hash4(r, t, 3, (uint64_t)i) % (uint64_t)(i + 1));
    int x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
}

/* The body after the header: a stream seeded by the header's hash, so that
 * any byte of either part that belongs to other content shows. */
static uint64_t body_word(uint64_t seed, size_t i) {
  return mix64(seed + (uint64_t)i * 0x9e3779b97f4a7c15u);
}

static void fill_content(uint8_t *buf, const content_hdr *h) {
  memcpy(buf, h, HDR_SIZE);
  uint64_t seed = XXH3_64bits(h, HDR_SIZE);
  size_t n = (size_t)h->size - HDR_SIZE;
  for (size_t i = 0; i * 8 < n; i++) {
    uint64_t w = body_word(seed, i);
    memcpy(buf + HDR_SIZE + i * 8, &w, n - i * 8 < 8 ? n - i * 8 : 8);
  }
}

static bool body_ok(const uint8_t *p, const content_hdr *h) {
  uint64_t seed = XXH3_64bits(h, HDR_SIZE);
  size_t n = (size_t)h->size - HDR_SIZE;
  for (size_t i = 0; i * 8 < n; i++) {
    uint64_t w = body_word(seed, i);
    if (memcmp(p + HDR_SIZE + i * 8, &w, n - i * 8 < 8 ? n - i * 8 : 8) != 0)
      return false;
  }
  return true;
}

static content_hdr data_hdr(uint64_t r, uint64_t l, uint64_t g) {
  return (content_hdr){.magic = DATA_MAGIC,
                       .region = r,
                       .layer = l,
                       .gen = g,
                       .size = data_size(r, l, g)};
}

static void layer_name(uint64_t l, char *buf, size_t cap) {
  if (l == MANIFEST_ID)
    snprintf(buf, cap, "manifest");
  else
    snprintf(buf, cap, "d%" PRIu64, l);
}

static void layer_metadata(uint64_t g, char *buf, size_t cap) {
  snprintf(buf, cap, "{\"gen\":%" PRIu64 "}", g);
}

/* ---- a region's state --------------------------------------------------- */

/* Complete generation `prev` (in_progress 0), or the change prev -> target
 * with `step` positions of the change order done (step is known to the
 * writer only; readers see it as a prefix). */
typedef struct rstate {
  uint64_t prev, target;
  int in_progress;
  int step;
} rstate;

/* The generation data layer `l` shows in state `s` (0: absent). */
static uint64_t expected_gen(uint64_t r, uint64_t l, const rstate *s) {
  uint64_t g = s->prev;
  if (s->in_progress) {
    int order[LAYERS];
    change_order(r, s->target, order);
    for (int i = 0; i < s->step; i++)
      if ((uint64_t)order[i] == l)
        g = s->target;
  }
  return present(r, l, g) ? g : 0;
}

/* What one snapshot showed of one region. */
typedef struct view {
  bool absent;          /* STRATA_E_NO_REGION */
  bool valid;           /* every read came back well-formed */
  rstate state;         /* from the manifest (step unknown) */
  uint64_t gen[LAYERS]; /* 0: absent */
  int rc[LAYERS + 1];   /* strata_get's result per data layer, manifest last */
  strata_layer got[LAYERS + 1];
} view;

static bool layer_in(uint64_t r, uint64_t l, uint64_t g, uint64_t seen) {
  return seen == (present(r, l, g) ? g : 0);
}

/* Does the view show a state the writer published? See the header. */
static bool view_consistent(uint64_t r, const view *v, char *why, size_t cap) {
  if (!v->state.in_progress) {
    for (uint64_t l = 0; l < LAYERS; l++)
      if (!layer_in(r, l, v->state.prev, v->gen[l])) {
        snprintf(why, cap,
                 "complete generation %" PRIu64 " but layer %" PRIu64
                 " shows generation %" PRIu64,
                 v->state.prev, l, v->gen[l]);
        return false;
      }
    return true;
  }
  int order[LAYERS];
  change_order(r, v->state.target, order);
  int cut = 0;
  while (cut < LAYERS &&
         layer_in(r, (uint64_t)order[cut], v->state.target, v->gen[order[cut]]))
    cut++;
  for (int i = cut; i < LAYERS; i++)
    if (!layer_in(r, (uint64_t)order[i], v->state.prev, v->gen[order[i]])) {
      snprintf(why, cap,
               "change %" PRIu64 " -> %" PRIu64 ": %d layers changed, but "
               "layer %d at position %d shows generation %" PRIu64,
               v->state.prev, v->state.target, cut, order[i], i,
               v->gen[order[i]]);
      return false;
    }
  return true;
}

/* ---- checking what was read --------------------------------------------- */

typedef struct counters {
  uint64_t snapshots, gets;
  uint64_t torn;         /* content, name or metadata not what was put */
  uint64_t checksum;     /* XXH3 of the content != layer.checksum */
  uint64_t inconsistent; /* a snapshot mixing published states */
  uint64_t unstable;     /* a snapshot changing under its reader */
  uint64_t errors;       /* unexpected return codes */
  uint64_t layer_count;  /* region_at's layer_count != layers read */
} counters;

static _Atomic int messages; /* failure messages printed so far */

static void report(uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report(uint64_t *counter, const char *fmt, ...) {
  (*counter)++;
  if (atomic_fetch_add(&messages, 1) >= 30)
    return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "stress: %s\n", buf);
}

/* The stores log at WARN and above through here: a warning is shown, an
 * error fails the test (every write call also returns its error). */
static _Atomic uint64_t log_warnings, log_errors;

static void log_line(void *ctx, int level, const char *line) {
  (void)ctx;
  atomic_fetch_add(level >= STRATA_LOG_ERROR ? &log_errors : &log_warnings, 1);
  if (atomic_fetch_add(&messages, 1) < 30)
    fprintf(stderr, "stress: log: %s\n", line);
}

/* Checks a layer strata_get returned for (r, id); fills *h. */
static bool check_layer(counters *c, uint64_t r, uint64_t id,
                        const strata_layer *l, content_hdr *h) {
  if (l->data == NULL || l->size < HDR_SIZE || l->id != id) {
    report(&c->torn,
           "region %" PRIu64 " layer %" PRIu64 ": id %" PRIu64 ", %" PRIu64
           " bytes",
           r, id, l->id, l->size);
    return false;
  }
  if (XXH3_64bits(l->data, (size_t)l->size) != l->checksum) {
    report(&c->checksum,
           "region %" PRIu64 " layer %" PRIu64 ": checksum mismatch", r, id);
    return false;
  }
  memcpy(h, l->data, HDR_SIZE);
  bool manifest = id == MANIFEST_ID;
  bool ok = h->magic == (manifest ? MANIFEST_MAGIC : DATA_MAGIC) &&
            h->region == r && h->layer == id && h->size == l->size &&
            h->reserved == 0 && h->gen != 0;
  if (ok && manifest)
    ok = h->size == MANIFEST_SIZE &&
         (h->in_progress ? h->in_progress == 1 && h->prev < h->gen
                         : h->prev == 0);
  if (ok && !manifest)
    ok = h->prev == 0 && h->in_progress == 0 &&
         h->size == data_size(r, id, h->gen);
  if (ok)
    ok = body_ok(l->data, h);
  char want[64];
  layer_name(id, want, sizeof want);
  if (ok)
    ok = l->name != NULL && l->name_len == strlen(want) &&
         strcmp(l->name, want) == 0;
  if (ok && manifest)
    ok = l->metadata == NULL;
  if (ok && !manifest) {
    layer_metadata(h->gen, want, sizeof want);
    ok = l->metadata != NULL && l->metadata_len == strlen(want) &&
         strcmp(l->metadata, want) == 0;
  }
  if (!ok)
    report(&c->torn,
           "region %" PRIu64 " layer %" PRIu64 ": content is not what the "
           "writer put (header region %" PRIu64 " layer %" PRIu64
           " gen %" PRIu64 " size %" PRIu64 "/%" PRIu64 ", name %s)",
           r, id, h->region, h->layer, h->gen, h->size, l->size,
           l->name ? l->name : "(none)");
  return ok;
}

static bool same_layer(const strata_layer *a, const strata_layer *b) {
  return a->id == b->id && a->data == b->data && a->size == b->size &&
         a->checksum == b->checksum && a->name == b->name &&
         a->metadata == b->metadata;
}

static uint64_t failures(const counters *c) {
  return c->torn + c->checksum + c->inconsistent + c->unstable + c->errors;
}

static uint64_t next_rand(uint64_t *state) {
  *state += 0x9e3779b97f4a7c15u;
  return mix64(*state);
}

/* Reads region `r` in full (manifest, then every data layer in a random
 * order) in snapshot `t` and checks each layer and the whole. */
static void read_region(counters *c, uint64_t *rng, const strata_txn *t,
                        uint64_t r, view *v) {
  memset(v, 0, sizeof *v);
  v->valid = true;
  strata_layer l;
  c->gets++;
  int rc = strata_get(t, r, MANIFEST_ID, &l);
  v->rc[LAYERS] = rc;
  v->got[LAYERS] = l;
  if (rc == STRATA_E_NO_REGION) {
    v->absent = true;
    uint64_t id = next_rand(rng) % LAYERS;
    c->gets++;
    rc = strata_get(t, r, id, &l);
    if (rc != STRATA_E_NO_REGION)
      report(&c->inconsistent,
             "region %" PRIu64 ": manifest says no region, layer %" PRIu64
             " says %s",
             r, id, strata_err_name(rc));
    return;
  }
  if (rc == STRATA_E_NOT_FOUND) {
    v->state = (rstate){0}; /* a fresh proto: generation 0, empty */
  } else if (rc == 0) {
    content_hdr h;
    if (check_layer(c, r, MANIFEST_ID, &l, &h))
      v->state =
          h.in_progress
              ? (rstate){.prev = h.prev, .target = h.gen, .in_progress = 1}
              : (rstate){.prev = h.gen};
    else
      v->valid = false;
  } else {
    report(&c->errors, "region %" PRIu64 ": manifest: %s (%s)", r,
           strata_err_name(rc), strata_last_error_detail());
    v->valid = false;
  }
  int order[LAYERS];
  for (int i = 0; i < LAYERS; i++)
    order[i] = i;
  for (int i = LAYERS - 1; i > 0; i--) {
    int j = (int)(next_rand(rng) % (uint64_t)(i + 1));
    int x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  for (int i = 0; i < LAYERS; i++) {
    uint64_t id = (uint64_t)order[i];
    c->gets++;
    rc = strata_get(t, r, id, &l);
    v->rc[id] = rc;
    v->got[id] = l;
    content_hdr h;
    if (rc == 0 && check_layer(c, r, id, &l, &h)) {
      v->gen[id] = h.gen;
    } else if (rc == 0) {
      v->valid = false;
    } else if (rc != STRATA_E_NOT_FOUND) {
      report(rc == STRATA_E_NO_REGION ? &c->inconsistent : &c->errors,
             "region %" PRIu64 " layer %" PRIu64 ": %s (%s)", r, id,
             strata_err_name(rc), strata_last_error_detail());
      v->valid = false;
    }
  }
  char why[256];
  if (v->valid && !view_consistent(r, v, why, sizeof why))
    report(&c->inconsistent, "region %" PRIu64 ": %s", r, why);
}

/* Reads every layer of `v` again in the same snapshot: same results, same
 * pointers, same content. */
static void recheck_region(counters *c, const strata_txn *t, uint64_t r,
                           const view *v) {
  if (v->absent)
    return;
  for (int i = 0; i <= LAYERS; i++) {
    uint64_t id = i == LAYERS ? MANIFEST_ID : (uint64_t)i;
    strata_layer l;
    c->gets++;
    int rc = strata_get(t, r, id, &l);
    if (rc != v->rc[i] || (rc == 0 && !same_layer(&l, &v->got[i]))) {
      report(&c->unstable,
             "region %" PRIu64 " layer %" PRIu64 ": read %s (data %p) then "
             "%s (data %p) in one snapshot",
             r, id, strata_err_name(v->rc[i]), v->got[i].data,
             strata_err_name(rc), rc == 0 ? l.data : NULL);
      continue;
    }
    if (rc == 0 && XXH3_64bits(l.data, (size_t)l.size) != l.checksum)
      report(&c->unstable,
             "region %" PRIu64 " layer %" PRIu64 ": content changed during "
             "the snapshot",
             r, id);
  }
}

/* Two reads of region `r` in one snapshot. */
static void compare_views(counters *c, uint64_t r, const view *a,
                          const view *b) {
  bool ok = a->absent == b->absent;
  for (int i = 0; ok && !a->absent && i <= LAYERS; i++)
    ok = a->rc[i] == b->rc[i] &&
         (a->rc[i] != 0 || same_layer(&a->got[i], &b->got[i]));
  if (!ok)
    report(&c->unstable,
           "region %" PRIu64 ": read twice in one snapshot, "
           "with different results",
           r);
}

/* strata_get_by_name() and strata_get_many() against strata_get(). */
static void cross_check(counters *c, uint64_t *rng, const strata_txn *t,
                        uint64_t r, const view *v) {
  if (v->absent || !v->valid)
    return;
  uint64_t id = next_rand(rng) % (LAYERS + 1);
  int i = id == LAYERS ? LAYERS : (int)id;
  if (id == LAYERS)
    id = MANIFEST_ID;
  char name[32];
  layer_name(id, name, sizeof name);
  strata_layer l;
  c->gets++;
  int rc = strata_get_by_name(t, r, name, strlen(name), &l);
  if (rc != v->rc[i] || (rc == 0 && !same_layer(&l, &v->got[i])))
    report(&c->unstable,
           "region %" PRIu64 ": get_by_name(%s) gives %s (data %p), get "
           "gave %s (data %p)",
           r, name, strata_err_name(rc), rc == 0 ? l.data : NULL,
           strata_err_name(v->rc[i]), v->got[i].data);

  strata_layer_ref refs[LAYERS + 1];
  strata_layer out[LAYERS + 1];
  size_t want = 0;
  for (int k = 0; k <= LAYERS; k++) {
    refs[k] = (strata_layer_ref){r, k == LAYERS ? MANIFEST_ID : (uint64_t)k};
    want += v->rc[k] == 0;
  }
  c->gets += LAYERS + 1;
  size_t found = strata_get_many(t, refs, LAYERS + 1, out);
  bool ok = found == want;
  for (int k = 0; ok && k <= LAYERS; k++)
    ok = v->rc[k] == 0 ? same_layer(&out[k], &v->got[k]) : out[k].data == NULL;
  if (!ok)
    report(&c->unstable,
           "region %" PRIu64 ": get_many found %zu layers, get found %zu", r,
           found, want);
}

/* The region list of the snapshot against the lookups. */
static void check_listing(counters *c, const strata_txn *t) {
  bool listed[REGIONS + 1] = {false};
  uint64_t n = strata_store_region_count(t), prev = 0;
  for (uint64_t i = 0; i < n; i++) {
    strata_store_region sr;
    int rc = strata_store_region_at(t, i, &sr);
    if (rc != 0 || sr.id == 0 || sr.id > REGIONS || sr.id <= prev) {
      report(&c->errors, "region list: entry %" PRIu64 ": %s, id %" PRIu64, i,
             strata_err_name(rc), rc == 0 ? sr.id : 0);
      return;
    }
    prev = sr.id;
    listed[sr.id] = true;
    char name[32];
    snprintf(name, sizeof name, "r%" PRIu64, sr.id);
    uint64_t found = 0;
    if (sr.name == NULL || strcmp(sr.name, name) != 0 ||
        strata_find_region(t, name, strlen(name), &found) != 0 ||
        found != sr.id)
      report(&c->torn, "region list: region %" PRIu64 " is named %s", sr.id,
             sr.name ? sr.name : "(null)");
  }
  for (uint64_t r = 1; r <= REGIONS; r++) {
    strata_layer l;
    c->gets++;
    int rc = strata_get(t, r, MANIFEST_ID, &l);
    if ((rc == STRATA_E_NO_REGION) == listed[r])
      report(&c->inconsistent,
             "region %" PRIu64 ": %s in the region list, get says %s", r,
             listed[r] ? "present" : "absent", strata_err_name(rc));
  }
}

/* strata_store_region_at()'s layer_count against the layers read in the
 * same snapshot: the count must be the snapshot's too, not the proto's
 * current one (a put after strata_read_begin() must not change it). */
static void check_layer_count(counters *c, const strata_txn *t, uint64_t r,
                              const view *v) {
  static _Atomic bool told;
  if (v->absent || !v->valid)
    return;
  uint64_t have = 0;
  for (int i = 0; i <= LAYERS; i++)
    have += v->rc[i] == 0;
  for (uint64_t i = 0; i < strata_store_region_count(t); i++) {
    strata_store_region sr;
    if (strata_store_region_at(t, i, &sr) != 0 || sr.id != r ||
        sr.layer_count == have)
      continue;
    c->layer_count++;
    if (!atomic_exchange(&told, true))
      fprintf(stderr,
              "stress: region %" PRIu64 ": layer_count %" PRIu64
              ", but %" PRIu64
              " layers read in the same snapshot (reported once)\n",
              r, sr.layer_count, have);
  }
}

/* ---- readers ------------------------------------------------------------- */

typedef struct shared {
  strata_store *stores[2]; /* the writer's handle, the read-only one */
  _Atomic uint64_t ready;  /* readers through their first snapshot */
  _Atomic bool stop;
} shared;

typedef struct reader {
  pthread_t tid;
  shared *sh;
  uint64_t rng;
  counters c;
} reader;

static void pause_us(long us) {
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, NULL);
}

static void one_snapshot(reader *rd) {
  counters *c = &rd->c;
  uint64_t x = next_rand(&rd->rng);
  strata_store *s = rd->sh->stores[x % 4 == 0];
  strata_txn t;
  int rc = strata_read_begin(s, &t);
  if (rc != 0) {
    report(&c->errors, "strata_read_begin: %s (%s)", strata_err_name(rc),
           strata_last_error_detail());
    pause_us(1000);
    return;
  }
  c->snapshots++;
  enum { MAX_READ = 3 };
  view views[MAX_READ];
  uint64_t ids[MAX_READ];
  int nread = 1 + (int)((x >> 8) % MAX_READ);
  for (int i = 0; i < nread; i++) {
    /* Now and then the same region twice: both reads must agree. */
    uint64_t y = next_rand(&rd->rng);
    ids[i] = i > 0 && y % 4 == 0 ? ids[0] : 1 + (y >> 8) % REGIONS;
    read_region(c, &rd->rng, &t, ids[i], &views[i]);
    if (ids[i] == ids[0] && i > 0)
      compare_views(c, ids[0], &views[0], &views[i]);
  }
  if ((x >> 16) % 4 == 0)
    cross_check(c, &rd->rng, &t, ids[0], &views[0]);
  if ((x >> 20) % 8 == 0) {
    check_listing(c, &t);
    check_layer_count(c, &t, ids[0], &views[0]);
  }
  if ((x >> 24) % 16 == 0) {
    /* A nested snapshot: it may see newer state; the outer one must not. */
    strata_txn inner;
    view iv;
    rc = strata_read_begin(s, &inner);
    if (rc == 0) {
      read_region(c, &rd->rng, &inner, 1 + next_rand(&rd->rng) % REGIONS, &iv);
      strata_read_end(&inner);
    } else {
      report(&c->errors, "nested strata_read_begin: %s", strata_err_name(rc));
    }
  }
  if ((x >> 28) % 64 == 0)
    pause_us(300); /* hold the snapshot while the writer retires things */
  else
    sched_yield();
  for (int i = 0; i < nread; i++)
    recheck_region(c, &t, ids[i], &views[i]);
  strata_read_end(&t);
}

static void *reader_main(void *arg) {
  reader *rd = arg;
  /* The lowest priority: see the header comment. Failing is harmless. */
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
  one_snapshot(rd);
  atomic_fetch_add(&rd->sh->ready, 1);
  while (!atomic_load_explicit(&rd->sh->stop, memory_order_relaxed))
    one_snapshot(rd);
  return NULL;
}

/* ---- mappings ------------------------------------------------------------ */

/* Mappings of files in `dir` (which must be a real path): lines of
 * /proc/self/maps at file offset 0, so that a mapping the kernel splits in
 * two still counts once. */
static int count_mappings(const char *dir) {
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  size_t dl = strlen(dir);
  char line[PATH_MAX + 256];
  int n = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long long offset;
    int path_at = 0;
    if (sscanf(line, "%*x-%*x %*s %llx %*s %*u %n", &offset, &path_at) != 1 ||
        path_at == 0)
      continue;
    const char *path = line + path_at;
    /* Region files only: not the shared view, which each handle maps. */
    n += offset == 0 && strncmp(path, dir, dl) == 0 && path[dl] == '/' &&
         strncmp(path + dl + 1, ".strata.shm", 11) != 0;
  }
  fclose(f);
  return n;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the writer ---------------------------------------------------------- */

typedef struct rmodel {
  bool exists;   /* served by the writer's store */
  bool has_file; /* crystallized at least once: a file exists */
  strata_proto *proto;
  rstate now;  /* what the writer's store serves */
  rstate file; /* what the region file holds */
} rmodel;

typedef struct writer {
  shared *sh;
  const char *dir;
  char real_dir[PATH_MAX];
  uint64_t rng, gen;
  rmodel m[REGIONS + 1];
  counters c; /* of the writer's own checking reads */
  double crystallize_s, reclaim_s, refresh_s; /* time spent in those calls */
  uint64_t creates, opens, puts, removes, swaps, discards, drops, refreshes,
      reclaims, map_samples, dumps;
  int max_mapped;
  bool failed;
} writer;

static bool w_fail(writer *w, const char *what, int rc) {
  fprintf(stderr, "stress: writer: %s -> %s: %s\n", what, strata_err_name(rc),
          strata_last_error_detail());
  w->failed = true;
  return false;
}

#define W_TRY(w, expr)                                                         \
  do {                                                                         \
    int w__rc = (expr);                                                        \
    if (w__rc != 0)                                                            \
      return w_fail((w), #expr, w__rc);                                        \
  } while (0)

/* The state dump, taken while the readers run: it must parse, hold the
 * documented top-level members, and list exactly the regions a snapshot
 * taken right after it sees (only this thread changes the region set).
 * tests/unit/validate_state.sh checks dumps against the schema itself. */
static bool check_dump(writer *w, strata_store *s) {
  char *text = NULL;
  W_TRY(w, strata_dump_state(s, w->dumps % 4 == 0 ? STRATA_DUMP_VERBOSE : 0,
                             &text));
  json_error_t err;
  json_t *doc = json_loads(text, 0, &err);
  strata_free(text);
  if (doc == NULL) {
    fprintf(stderr, "stress: state dump is not JSON: %s at %d:%d\n", err.text,
            err.line, err.column);
    w->failed = true;
    return false;
  }
  static const char *const members[] = {"strata_version", "config",   "memory",
                                        "regions",        "protos",   "pools",
                                        "statistics",     "snapshots"};
  bool ok = true;
  for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
    ok &= json_object_get(doc, members[i]) != NULL;
  strata_txn t;
  W_TRY(w, strata_read_begin(s, &t));
  ok &= json_array_size(json_object_get(doc, "regions")) ==
        strata_store_region_count(&t);
  strata_read_end(&t);
  json_decref(doc);
  if (!ok) {
    fprintf(stderr, "stress: state dump lacks a member or a region\n");
    w->failed = true;
    return false;
  }
  w->dumps++;
  return true;
}

static uint8_t content_buf[MAX_CONTENT];

static int put_data(strata_proto *p, uint64_t r, uint64_t l, uint64_t g) {
  content_hdr h = data_hdr(r, l, g);
  fill_content(content_buf, &h);
  char name[32], meta[64];
  layer_name(l, name, sizeof name);
  layer_metadata(g, meta, sizeof meta);
  return strata_proto_put(p, l, name, strlen(name), meta, content_buf,
                          (size_t)h.size);
}

static content_hdr manifest_hdr(uint64_t r, const rstate *s) {
  content_hdr h = {.magic = MANIFEST_MAGIC,
                   .region = r,
                   .layer = MANIFEST_ID,
                   .size = MANIFEST_SIZE};
  if (s->in_progress) {
    h.gen = s->target;
    h.prev = s->prev;
    h.in_progress = 1;
  } else {
    h.gen = s->prev;
  }
  return h;
}

static int put_manifest(strata_proto *p, uint64_t r, const rstate *s) {
  content_hdr h = manifest_hdr(r, s);
  fill_content(content_buf, &h);
  return strata_proto_put(p, MANIFEST_ID, "manifest", 8, NULL, content_buf,
                          (size_t)h.size);
}

/* Region `r` in a fresh snapshot of `s` must be exactly `want` (NULL: no
 * such region). */
static bool verify_exact(writer *w, strata_store *s, uint64_t r,
                         const rstate *want) {
  strata_txn t;
  W_TRY(w, strata_read_begin(s, &t));
  view v;
  uint64_t before = failures(&w->c);
  read_region(&w->c, &w->rng, &t, r, &v);
  strata_read_end(&t);
  if (failures(&w->c) != before) {
    w->failed = true;
    return false;
  }
  bool ok = want == NULL ? v.absent : !v.absent && v.valid;
  if (ok && want != NULL) {
    ok = v.state.prev == want->prev &&
         v.state.in_progress == want->in_progress &&
         (!want->in_progress || v.state.target == want->target);
    for (uint64_t l = 0; ok && l < LAYERS; l++)
      ok = v.gen[l] == expected_gen(r, l, want);
  }
  if (!ok) {
    report(&w->c.inconsistent,
           "writer: %s store: region %" PRIu64 " is not what was written "
           "(want %s, prev %" PRIu64 " target %" PRIu64 " step %d)",
           s == w->sh->stores[0] ? "writer's" : "read-only", r,
           want == NULL ? "no region" : "region", want ? want->prev : 0,
           want ? want->target : 0, want ? want->step : 0);
    w->failed = true;
  }
  return ok;
}

/* Files served by a store: regions with a mapped file in a snapshot, and
 * (with `deltas`) the delta files over them. */
static uint64_t served(writer *w, strata_store *s, bool deltas) {
  strata_txn t;
  uint64_t n = 0;
  int rc = strata_read_begin(s, &t);
  if (rc != 0) {
    w_fail(w, "strata_read_begin", rc);
    return 0;
  }
  for (uint64_t i = 0; i < strata_store_region_count(&t); i++) {
    strata_store_region sr;
    if (strata_store_region_at(&t, i, &sr) == 0 && sr.file != NULL)
      n++;
    const strata_region *d;
    for (uint32_t k = 0;
         deltas && strata_store_region_delta_at(&t, i, k, &d) == 0; k++)
      n++;
  }
  strata_read_end(&t);
  return n;
}

static uint64_t files_served(writer *w, strata_store *s) {
  return served(w, s, true);
}

static uint64_t bases_served(writer *w, strata_store *s) {
  return served(w, s, false);
}

/* No more mappings than live files plus what retired objects hold. Runs on the
 * writer thread between write calls, so neither count moves meanwhile (readers
 * open and end snapshots, which maps and frees nothing). */
static bool check_mappings(writer *w) {
  uint64_t bound = 0;
  for (int i = 0; i < 2; i++) {
    strata_store_stats st;
    W_TRY(w, strata_store_stats_get(w->sh->stores[i], &st));
    /* A retired entry may hold its base and up to 4 deltas (the stack's
     * depth limit), which its successor may no longer serve. */
    bound += files_served(w, w->sh->stores[i]) + 5 * st.retired_objects;
  }
  int mapped = count_mappings(w->real_dir);
  w->map_samples++;
  if (mapped > w->max_mapped)
    w->max_mapped = mapped;
  if ((uint64_t)mapped > bound) {
    fprintf(stderr,
            "stress: %d mappings of store files, but only %" PRIu64
            " files served or retired: a mapping leaked\n",
            mapped, bound);
    w->failed = true;
    return false;
  }
  return true;
}

/* Refreshes the read-only handle; it must then serve the files exactly. */
static bool refresh_and_verify(writer *w) {
  double t0 = now_s();
  W_TRY(w, strata_store_refresh(w->sh->stores[1]));
  w->refresh_s += now_s() - t0;
  w->refreshes++;
  for (uint64_t r = 1; r <= REGIONS; r++)
    if (!verify_exact(w, w->sh->stores[1], r,
                      w->m[r].has_file ? &w->m[r].file : NULL))
      return false;
  return true;
}

/* One publication (or none, for a layer absent before and after) of the
 * change in progress, or the start or end of a change. */
static bool step(writer *w, uint64_t r) {
  rmodel *m = &w->m[r];
  rstate *s = &m->now;
  if (!s->in_progress) {
    rstate next = {.prev = s->prev, .target = ++w->gen, .in_progress = 1};
    W_TRY(w, put_manifest(m->proto, r, &next));
    w->puts++;
    *s = next;
    return true;
  }
  if (s->step == LAYERS) {
    rstate done = {.prev = s->target};
    W_TRY(w, put_manifest(m->proto, r, &done));
    w->puts++;
    *s = done;
    return true;
  }
  int order[LAYERS];
  change_order(r, s->target, order);
  uint64_t l = (uint64_t)order[s->step];
  if (present(r, l, s->target)) {
    W_TRY(w, put_data(m->proto, r, l, s->target));
    w->puts++;
  } else if (present(r, l, s->prev)) {
    W_TRY(w, strata_proto_remove(m->proto, l));
    w->removes++;
  }
  s->step++;
  return true;
}

static bool writer_round(writer *w) {
  strata_store *a = w->sh->stores[0];
  uint64_t x = next_rand(&w->rng);
  uint64_t r = 1 + x % REGIONS;
  rmodel *m = &w->m[r];
  char name[32];
  snprintf(name, sizeof name, "r%" PRIu64, r);
  if (m->exists && m->proto == NULL && m->has_file && (x >> 24) % 3 == 0) {
    /* Another way for a region to go: its file is removed and the store
     * refreshed (it has no proto, so the refresh drops it). */
    char file[48];
    snprintf(file, sizeof file, "%s.region", name);
    if (unlink(test_path(w->dir, file)) != 0)
      return w_fail(w, "unlink", -errno);
    double t0 = now_s();
    W_TRY(w, strata_store_refresh(a));
    w->refresh_s += now_s() - t0;
    w->drops++;
    *m = (rmodel){0};
    return verify_exact(w, a, r, NULL);
  }
  if (!m->exists) {
    strata_proto *p = NULL;
    W_TRY(w, strata_proto_create(a, r, name, strlen(name), NULL, &p));
    w->creates++;
    *m = (rmodel){.exists = true, .proto = p}; /* generation 0, empty */
  } else if (m->proto == NULL) {
    W_TRY(w, strata_proto_open(a, r, &m->proto));
    w->opens++;
  }
  int steps = 1 + (int)((x >> 8) % 12);
  for (int i = 0; i < steps; i++)
    if (!step(w, r))
      return false;
  uint64_t action = (x >> 16) % 100;
  if (action < 4) {
    W_TRY(w, strata_proto_discard(m->proto));
    w->discards++;
    m->proto = NULL;
    if (m->has_file)
      m->now = m->file;
    else
      m->exists = false;
    if (!verify_exact(w, a, r, m->exists ? &m->now : NULL))
      return false;
  } else if (action < 40) {
    double t0 = now_s();
    W_TRY(w, strata_crystallize(a, r));
    w->crystallize_s += now_s() - t0;
    w->swaps++;
    m->has_file = true;
    m->file = m->now;
    if (!verify_exact(w, a, r, &m->now))
      return false;
    if (w->swaps % 8 == 0 && !refresh_and_verify(w))
      return false;
    if (w->swaps % 5 == 0 && !check_mappings(w))
      return false;
    if (w->swaps % 16 == 0) {
      double t1 = now_s();
      W_TRY(w, strata_store_reclaim(a, 1));
      w->reclaim_s += now_s() - t1;
      w->reclaims++;
    }
    if (w->swaps % 32 == 0)
      W_TRY(w, strata_store_refresh(a)); /* protos are left alone */
    if (w->swaps % 4 == 0 && !check_dump(w, a))
      return false;
  }
  return true;
}

/* Regions 1 .. FILE_REGIONS exist as files, at a complete generation. */
static void write_initial_files(writer *w) {
  for (uint64_t r = 1; r <= FILE_REGIONS; r++) {
    char name[32], file[48];
    snprintf(name, sizeof name, "r%" PRIu64, r);
    snprintf(file, sizeof file, "%s.region", name);
    rstate s = {.prev = ++w->gen};
    strata_writer_options o;
    strata_writer_options_init(&o);
    o.region_id = r;
    o.name = name;
    strata_writer *wr = NULL;
    assert_strata_ok(strata_writer_open(test_path(w->dir, file), &o, &wr));
    for (uint64_t l = 0; l < LAYERS; l++) {
      if (!present(r, l, s.prev))
        continue;
      content_hdr h = data_hdr(r, l, s.prev);
      fill_content(content_buf, &h);
      char lname[32], meta[64];
      layer_name(l, lname, sizeof lname);
      layer_metadata(s.prev, meta, sizeof meta);
      assert_strata_ok(strata_writer_add(wr, l, lname, strlen(lname), meta,
                                         content_buf, (size_t)h.size));
    }
    content_hdr h = manifest_hdr(r, &s);
    fill_content(content_buf, &h);
    assert_strata_ok(strata_writer_add(wr, MANIFEST_ID, "manifest", 8, NULL,
                                       content_buf, (size_t)h.size));
    assert_strata_ok(strata_writer_commit(wr));
    w->m[r] = (rmodel){.exists = true, .has_file = true, .now = s, .file = s};
  }
}

/* ---- the test ------------------------------------------------------------ */

static uint64_t env_u64(const char *name, uint64_t def, uint64_t min,
                        uint64_t max) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0')
    return def;
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  if (*end != '\0' || x < min || x > max)
    fail_msg("%s=%s: expected a number in [%" PRIu64 ", %" PRIu64 "]", name, v,
             min, max);
  return x;
}

static void add_counters(counters *sum, const counters *c) {
  sum->snapshots += c->snapshots;
  sum->gets += c->gets;
  sum->torn += c->torn;
  sum->checksum += c->checksum;
  sum->inconsistent += c->inconsistent;
  sum->unstable += c->unstable;
  sum->errors += c->errors;
  sum->layer_count += c->layer_count;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      unlink(test_path(dir, e->d_name));
  closedir(d);
  rmdir(dir);
}

static void test_store_stress(void **state) {
  (void)state;
  uint64_t nreaders = env_u64("STRATA_STRESS_READERS", 128, 1, 4000);
  uint64_t nswaps = env_u64("STRATA_STRESS_SWAPS", 200, 1, UINT64_MAX / 2);
  uint64_t seed =
      env_u64("STRATA_STRESS_SEED", (uint64_t)time(NULL), 0, UINT64_MAX);

  static writer w;
  static shared sh;
  w = (writer){.sh = &sh, .rng = seed};
  w.dir = strdup(test_tmpdir());
  assert_non_null(w.dir);
  assert_non_null(realpath(w.dir, w.real_dir));
  write_initial_files(&w);

  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_WARN;
  c.log_fn = log_line;
  c.max_readers = (uint32_t)nreaders + 16;
  sh = (shared){0};
  assert_strata_ok(strata_store_open(w.dir, &c, &sh.stores[0]));
  c.flags = STRATA_STORE_READ_ONLY;
  assert_strata_ok(strata_store_open(w.dir, &c, &sh.stores[1]));

  reader *readers = calloc(nreaders, sizeof *readers);
  assert_non_null(readers);
  for (uint64_t i = 0; i < nreaders; i++) {
    readers[i] = (reader){.sh = &sh, .rng = seed ^ mix64(i + 1)};
    assert_int_equal(
        pthread_create(&readers[i].tid, NULL, reader_main, &readers[i]), 0);
  }

  /* Every reader holds its slot and has read once before the writer
   * starts, so that even a short run overlaps reads and writes. */
  while (atomic_load(&sh.ready) < nreaders)
    pause_us(1000);
  double t0 = now_s();
  while (w.swaps < nswaps && writer_round(&w)) {
  }
  /* The last state of every region must reach the read-only handle too. */
  if (!w.failed)
    refresh_and_verify(&w);
  double elapsed = now_s() - t0;
  atomic_store(&sh.stop, true);
  counters sum = {0};
  for (uint64_t i = 0; i < nreaders; i++) {
    assert_int_equal(pthread_join(readers[i].tid, NULL), 0);
    add_counters(&sum, &readers[i].c);
  }
  free(readers);

  printf("stress: seed %" PRIu64 ", %" PRIu64 " readers, %.2f s\n", seed,
         nreaders, elapsed);
  printf("stress: reads: %" PRIu64 " gets in %" PRIu64
         " snapshots (%.0f gets/s, %.0f snapshots/s)\n",
         sum.gets, sum.snapshots, (double)sum.gets / elapsed,
         (double)sum.snapshots / elapsed);
  printf("stress: writes: %" PRIu64 " swaps (crystallizations), %" PRIu64
         " puts, %" PRIu64 " removes, %" PRIu64 " creates, %" PRIu64
         " opens, %" PRIu64 " discards, %" PRIu64 " files removed, %" PRIu64
         " refreshes, %" PRIu64 " reclaims, %" PRIu64
         " state dumps; mappings sampled %" PRIu64 " times, at most %d\n",
         w.swaps, w.puts, w.removes, w.creates, w.opens, w.discards, w.drops,
         w.refreshes, w.reclaims, w.dumps, w.map_samples, w.max_mapped);
  printf("stress: writer time: %.2f s crystallizing, %.2f s in "
         "strata_store_reclaim(wait), %.2f s refreshing\n",
         w.crystallize_s, w.reclaim_s, w.refresh_s);
  printf("stress: failures: %" PRIu64 " torn, %" PRIu64 " checksum, %" PRIu64
         " inconsistent, %" PRIu64 " unstable, %" PRIu64 " errors; %" PRIu64
         " log errors, %" PRIu64 " log warnings\n",
         sum.torn + w.c.torn, sum.checksum + w.c.checksum,
         sum.inconsistent + w.c.inconsistent, sum.unstable + w.c.unstable,
         sum.errors + w.c.errors, atomic_load(&log_errors),
         atomic_load(&log_warnings));
  printf("stress: layer_count mismatches: %" PRIu64 "\n", sum.layer_count);
  fflush(stdout);

  assert_false(w.failed);
  assert_int_equal(w.swaps, nswaps);
  assert_true(w.dumps >= nswaps / 4);
  assert_int_equal(sum.torn + w.c.torn, 0);
  assert_int_equal(sum.checksum + w.c.checksum, 0);
  assert_int_equal(sum.inconsistent + w.c.inconsistent, 0);
  assert_int_equal(sum.unstable + w.c.unstable, 0);
  assert_int_equal(sum.errors + w.c.errors, 0);
  assert_int_equal(atomic_load(&log_errors), 0);
  assert_int_equal(sum.layer_count, 0);
  assert_true(sum.snapshots > 0);

  /* Nothing left behind: no retired object, no open snapshot, and one
   * mapping per region file each handle serves. */
  uint64_t files = 0, bases = 0;
  for (int i = 0; i < 2; i++) {
    assert_strata_ok(strata_store_reclaim(sh.stores[i], 1));
    strata_store_stats st;
    assert_strata_ok(strata_store_stats_get(sh.stores[i], &st));
    assert_int_equal(st.retired_objects, 0);
    assert_int_equal(st.retired_bytes, 0);
    assert_int_equal(st.snapshots_open, 0);
    files += files_served(&w, sh.stores[i]);
    bases += bases_served(&w, sh.stores[i]);
  }
  uint64_t with_file = 0;
  for (uint64_t r = 1; r <= REGIONS; r++)
    with_file += w.m[r].has_file;
  assert_int_equal(bases, 2 * with_file);
  assert_int_equal(count_mappings(w.real_dir), files);
  strata_store_close(sh.stores[1]);
  strata_store_close(sh.stores[0]);
  assert_int_equal(count_mappings(w.real_dir), 0);
  remove_dir(w.dir);
  free((void *)w.dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_stress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
