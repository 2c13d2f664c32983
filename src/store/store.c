/* Opening and closing a store, below the staging pool: the configuration
 * and its defaults, the first scan of the directory into the catalog, the
 * start of the verifier thread, and the teardown. The public
 * strata_store_open and strata_store_close (src/strata.c) put the staging
 * pool between these steps; store_scan.c, store_lock.c, store_verify.c,
 * store_refresh.c and store_stats.c hold the rest of the store's life. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strata_testing.h"
#include "common/struct_size.h"
#include "store/store_internal.h"

void strata_store_config_init(strata_store_config *c) {
  if (c == NULL)
    return;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page
                                        : (uint64_t)4 << 30;
  *c = (strata_store_config){.struct_size = sizeof *c,
                             .memory_limit = phys / 4,
                             .warn_pct = 75,
                             .evict_pct = 85,
                             .refuse_pct = 95,
                             .log_level = -1,
                             .max_readers = 1024,
                             .snapshot_warn_ms = 10000,
                             .shared_view = 1};
}

/* Reads the caller's config into *c: the defaults, overwritten by the first
 * struct_size bytes of `in` (NULL: the defaults), as strata__read_sized()
 * does for every structure that grows ("Growing structures" in strata.h). */
static int read_config(const char *dir, const strata_store_config *in,
                       strata_store_config *c) {
  strata_store_config_init(c);
  STRATA__TRY(STRATA__READ_SIZED(dir, strata_store_config, c, in));
  /* The staging config's size is fixed; its reserved words are where its
   * new fields will go, so a word that is not 0 is a field this library
   * does not know. */
  for (size_t i = 0; i < sizeof c->staging.reserved_ / sizeof(uint64_t); i++)
    STRATA__FAIL_IF(c->staging.reserved_[i] != 0, STRATA_E_INVAL,
                    "%s: strata_staging_config.reserved_[%zu] is not 0: a "
                    "field of a newer header than the library",
                    dir, i);
  return 0;
}

static int check_config(const char *dir, const strata_store_config *in,
                        strata_store_config *c) {
  STRATA__TRY(read_config(dir, in, c));
  strata_store_config d;
  strata_store_config_init(&d);
  if (c->memory_limit == 0)
    c->memory_limit = d.memory_limit;
  if (c->warn_pct == 0)
    c->warn_pct = d.warn_pct;
  if (c->evict_pct == 0)
    c->evict_pct = d.evict_pct;
  if (c->refuse_pct == 0)
    c->refuse_pct = d.refuse_pct;
  if (c->max_readers == 0)
    c->max_readers = d.max_readers;
  if (c->snapshot_warn_ms == 0)
    c->snapshot_warn_ms = d.snapshot_warn_ms;
  STRATA__FAIL_IF(!(c->warn_pct <= c->evict_pct &&
                    c->evict_pct <= c->refuse_pct && c->refuse_pct <= 100),
                  STRATA_E_INVAL,
                  "%s: memory thresholds must satisfy warn %u <= evict %u <= "
                  "refuse %u <= 100",
                  dir, c->warn_pct, c->evict_pct, c->refuse_pct);
  STRATA__FAIL_IF(c->log_level < -1 || c->log_level > STRATA_LOG_OFF,
                  STRATA_E_INVAL, "%s: log_level %d is not a STRATA_LOG_ value",
                  dir, c->log_level);
  STRATA__FAIL_IF(c->shared_view > 1 || c->pad_ != 0, STRATA_E_INVAL,
                  "%s: strata_store_config.shared_view must be 0 or 1 and "
                  "pad_ 0",
                  dir);
  STRATA__FAIL_IF(
      c->flags &
          ~(unsigned)(STRATA_STORE_READ_ONLY | STRATA_STORE_VERIFY_AT_OPEN |
                      STRATA_STORE_NO_READ_STATS | STRATA_STORE_CREATE |
                      STRATA_STORE_NO_DELTAS | STRATA_STORE_BACKGROUND_COMPACT),
      STRATA_E_INVAL, "%s: unknown store flags 0x%x", dir, c->flags);
  return 0;
}

/* Reports a store directory that others can tamper with or that this
 * process cannot write to: region files are trusted to be immutable, and a
 * directory someone else may write into can have them replaced or
 * truncated under the mapping (see the caveats in strata.h). Logged, not
 * refused: the administrator decides. */
static void check_dir_permissions(struct strata_store *s) {
  struct stat st;
  if (fstat(s->dirfd, &st) != 0)
    return;
  uid_t me = geteuid();
  char qd[STRATA__LOG_PATH];
  strata__log_quote(qd, sizeof qd, s->dir);
  if (st.st_uid != me && me != 0)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"store directory is owned by another user\" dir=%s "
                "owner_uid=%ld uid=%ld",
                qd, (long)st.st_uid, (long)me);
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"store directory is writable by every user: anyone can "
                "replace or truncate its region files\" dir=%s mode=%04o",
                qd, (unsigned)(st.st_mode & 07777));
  if (!(s->config.flags & STRATA_STORE_READ_ONLY) &&
      faccessat(s->dirfd, ".", W_OK, AT_EACCESS) != 0)
    strata__log(&s->log, STRATA_LOG_WARN, "store",
                "msg=\"store directory is not writable by this process: "
                "writes will fail (open it read-only)\" dir=%s mode=%04o",
                qd, (unsigned)(st.st_mode & 07777));
}

/* ---- open ---------------------------------------------------------------- */

int strata__store_open(const char *dir, const strata_store_config *config,
                       strata_store **out) {
  STRATA__FAIL_IF(dir == NULL || out == NULL, STRATA_E_INVAL,
                  "strata_store_open: NULL argument");
  strata_store_config c;
  STRATA__TRY(check_config(dir, config, &c));
  strata_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(dir)) == NULL) {
    free(s);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating the store", dir);
  }
  s->config = c;
  s->lockfd = -1;
  s->count_reads = !(c.flags & STRATA_STORE_NO_READ_STATS);
  strata__logger_init(&s->log, c.log_level, c.log_fn, c.log_ctx);
  pthread_mutex_init(&s->write_mu, NULL);
  pthread_mutex_init(&s->verify_mu, NULL);
  int rc = c.flags & STRATA_STORE_CREATE
               ? strata__store_mkdir(dir, &s->created_dir)
               : 0;
  s->dirfd = rc < 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rc == 0)
    rc = s->dirfd < 0 ? strata__fail_errno(errno,
                                           "%s: opening the store "
                                           "directory",
                                           dir)
                      : strata__ebr_init(s, c.max_readers);
  if (rc == 0) {
    strata__pool_config pc = {.class_count = 13};
    for (unsigned i = 0; i < pc.class_count; i++)
      pc.class_sizes[i] = 16u << i; /* 16 B (links) .. 64 KiB */
    rc = strata__pool_create(&pc, &s->pool);
  }
  char **names = NULL;
  size_t n = 0;
  if (rc == 0)
    check_dir_permissions(s);
  if (rc == 0) {
    /* Clean up after interrupted writers only when no writer is alive: a
     * brief lock, released at once unless this process writes later. */
    int fd = -1;
    bool clean = !(c.flags & STRATA_STORE_READ_ONLY) &&
                 strata__store_try_lock(s, &fd, true) == 0;
    rc = strata__store_list(s, clean, &names, &n);
    if (fd >= 0)
      close(fd);
  }
  strata__entry **entries = NULL;
  size_t count = 0;
  if (rc == 0 && (entries = calloc(n ? n : 1, sizeof *entries)) == NULL)
    rc = strata__fail(STRATA_E_NOMEM, "%s: allocating", dir);
  if (rc == 0)
    rc = strata__store_load(s, names, n,
                            !(c.flags & STRATA_STORE_VERIFY_AT_OPEN), false,
                            entries, &count);
  strata__store_names_free(names, n);
  strata__conflict *conflicts = NULL;
  size_t nconflicts = 0;
  if (rc == 0)
    rc = strata__store_choose(s, entries, &count, 0, NULL, NULL, &conflicts,
                              &nconflicts);
  if (rc == 0)
    rc = strata__store_stacks(s, entries, count, 0, NULL, NULL, NULL, 0);
  strata__catalog *cat = NULL;
  if (rc == 0)
    rc = strata__catalog_build(entries, count, &cat);
  if (rc < 0) {
    strata__conflicts_free(conflicts, nconflicts);
    for (size_t i = 0; i < count; i++)
      strata__entry_free(s, entries[i]);
    free(entries);
    bool created = s->created_dir;
    strata__store_close(s);
    if (created)
      strata__store_unmake_dir(dir);
    return rc;
  }
  free(entries);
  strata__store_set_conflicts(s, conflicts, nconflicts);
  atomic_init(&s->catalog, cat);
  strata__shm_register(s); /* never fails the open */
  *out = s;
  return 0;
}

void strata__store_start(struct strata_store *s) {
  /* The count is read before the verifier starts: once it runs, it may
   * withdraw a region and publish another catalog under the writer mutex,
   * and the figure logged is the one open built. */
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  uint64_t regions = c->n;
  strata__store_start_verifier(s);
  strata__compact_start(s);
  strata__shm_start(s);
  char qd[STRATA__LOG_PATH];
  strata__log(&s->log, STRATA_LOG_INFO, "store",
              "msg=\"store opened\" dir=%s regions=%" PRIu64,
              strata__log_quote(qd, sizeof qd, s->dir), regions);
}

/* ---- close --------------------------------------------------------------- */

void strata__store_stop(struct strata_store *s) {
  atomic_store_explicit(&s->verify_stop, true, memory_order_relaxed);
  strata__compact_stop(s); /* cancels the compaction in progress */
  strata__shm_stop(s);     /* publishes a last time */
  strata__store_await_verify(s);
  for (size_t i = 0; i < s->verify_n; i++) /* the ones it did not reach */
    strata__file_unref(s, s->verify_files[i]);
  free(s->verify_files);
  s->verify_files = NULL;
  s->verify_n = 0;
  if (s->slots != NULL)
    strata__ebr_wait(s, UINT64_MAX - 1);
}

/* Frees everything the store still holds; no snapshot may be open. */
static void free_all(strata_store *s) {
  /* The retired objects first, oldest first: a pruned lver's overlay may
   * be in the catalog still (ebr.c). */
  strata__ebr_drain(s);
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  if (c != NULL) {
    for (uint64_t i = 0; i < c->n; i++) {
      if (c->by_order[i]->overlay != NULL)
        strata__overlay_free(s, c->by_order[i]->overlay);
      strata__entry_free(s, c->by_order[i]);
    }
    strata__catalog_free(c);
  }
  for (uint64_t i = 0; i < s->proto_n; i++)
    free(s->protos[i]);
  free(s->protos);
}

void strata__store_close(struct strata_store *s) {
  if (s == NULL)
    return;
  strata__store_stop(s); /* again: a no-op after the first time */
  strata__shm_close(s);
  free_all(s);
  strata__store_set_conflicts(s, NULL, 0);
  strata__pool_destroy(s->pool);
  strata__ebr_destroy(s);
  if (s->lockfd >= 0)
    close(s->lockfd); /* releases the flock */
  if (s->dirfd >= 0)
    close(s->dirfd);
  pthread_mutex_destroy(&s->write_mu);
  pthread_mutex_destroy(&s->verify_mu);
  free(s->claimed_by);
  free(s->dir);
  free(s);
}
