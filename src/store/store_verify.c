/* The index verifier: the thread that checks, just after open, what the
 * lazy opens left out (index checksums and whole-index checks), and
 * withdraws a region whose index fails. */
#include <inttypes.h>
#include <stdlib.h>

#include "store/store_internal.h"

/* Reading the whole index to checksum it is most of the cost of opening a
 * region (about 72 bytes per layer: 100 MB for 14 regions of 100,000
 * layers, which memory bandwidth alone makes take longer than the 10 ms a
 * store open may take). The store opens regions lazily: the header and
 * section table are checked before a region is served, and each chunk of
 * 64 index entries on its first use, which is what makes a lookup safe (a
 * layer in a chunk that fails reads as missing). The checksum, which
 * catches corruption that is still structurally valid, and every chunk are
 * checked here just after, and a region that fails is withdrawn. */
static void *verify_main(void *arg) {
  struct strata_store *s = arg;
  for (size_t i = 0; i < s->verify_n; i++) {
    strata__file *f = s->verify_files[i];
    if (atomic_load_explicit(&s->verify_stop, memory_order_relaxed))
      break;
    int rc = strata__region_check_all(f->region, f->path);
    pthread_mutex_lock(&s->write_mu);
    if (rc < 0) {
      strata__catalog *c =
          atomic_load_explicit(&s->catalog, memory_order_relaxed);
      for (uint64_t k = 0; k < c->n; k++) {
        if (c->by_order[k]->file != f)
          continue;
        uint64_t id = c->by_order[k]->id;
        char qf[STRATA__LOG_PATH], qt[STRATA__LOG_TEXT];
        strata__log(
            &s->log, STRATA_LOG_ERROR, "store",
            "msg=\"region withdrawn: its index is corrupt or does not "
            "match its checksum\" file=%s region_id=%" PRIu64 " detail=%s",
            strata__log_quote(qf, sizeof qf, f->path), id,
            strata__log_quote(qt, sizeof qt, strata_last_error_detail()));
        if (strata__catalog_swap(s, NULL, id) < 0)
          strata__log(&s->log, STRATA_LOG_ERROR, "store",
                      "msg=\"could not withdraw the region\" file=%s",
                      strata__log_quote(qf, sizeof qf, f->path));
        break;
      }
    }
    f->checksum_pending = false;
    strata__file_unref(s, f);
    s->verify_files[i] = NULL;
    pthread_mutex_unlock(&s->write_mu);
  }
  return NULL;
}

void strata__store_start_verifier(struct strata_store *s) {
  strata__catalog *c = atomic_load_explicit(&s->catalog, memory_order_relaxed);
  size_t n = 0;
  for (uint64_t i = 0; i < c->n; i++)
    n += c->by_order[i]->file->checksum_pending;
  if (n == 0 ||
      (s->verify_files = calloc(n, sizeof *s->verify_files)) == NULL) {
    /* Without memory for the list, check now: slower, never skipped. */
    for (uint64_t i = 0; n > 0 && i < c->n; i++) {
      strata__file *f = c->by_order[i]->file;
      if (f->checksum_pending) {
        s->verify_files = &f; /* a list of one, on the stack */
        s->verify_n = 1;
        f->refs++;
        verify_main(s);
      }
    }
    s->verify_files = NULL;
    s->verify_n = 0;
    return;
  }
  for (uint64_t i = 0; i < c->n; i++)
    if (c->by_order[i]->file->checksum_pending) {
      s->verify_files[s->verify_n++] = c->by_order[i]->file;
      c->by_order[i]->file->refs++;
    }
  if (pthread_create(&s->verify_tid, NULL, verify_main, s) == 0)
    s->verify_running = true;
  else
    verify_main(s);
}

void strata__store_await_verify(struct strata_store *s) {
  pthread_mutex_lock(&s->verify_mu);
  if (s->verify_running) {
    pthread_join(s->verify_tid, NULL);
    s->verify_running = false;
  }
  pthread_mutex_unlock(&s->verify_mu);
}
