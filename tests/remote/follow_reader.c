/* A follower process that reads its own store continuously while it moves
 * from version to version (issue 17 §3, "readers in each follower read
 * continuously through the version changes"; run by remote_follow_readers.sh).
 *
 *   follow_reader STORE CONF POOL NAME FINAL PROGRESS
 *
 * Opens STORE as a follower of POOL/NAME (background sync thread, watch on,
 * poll every 200 ms), and reads it in a second thread, one snapshot after
 * another, until a snapshot has shown version FINAL and 50 more snapshots
 * have been read (or SIGTERM). The test's versions are made so that one
 * snapshot can tell which version each of its layers belongs to:
 *
 *   - every layer's bytes are the line "V%07u REGION LAYER\n" (the version,
 *     the region's name, the layer's id) repeated, the last copy cut short;
 *   - version V has the regions "alpha", "beta", "gamma", and "even" only
 *     when V is even (so a region appears and disappears at every change).
 *
 * A snapshot passes when every layer of every region names one version V,
 * holds exactly its pattern, and the regions are exactly V's set. A snapshot
 * that fails (a mixture of versions, bytes of neither) is reported on stderr
 * with the region, layer and what was found, and the process exits 1.
 * Versions must only grow from one snapshot to the next (a follower never
 * goes back). Each version seen for the first time is appended to PROGRESS
 * ("V\n", flushed), which the script waits on before it publishes the next.
 * At the end stdout gets one line per version: "version V: N snapshots".
 *
 * Why a follower process of its own rather than `strata follow` and a
 * separate reader process: the follower holds the store's writer lock, and
 * a second process opening the directory as a plain store reads it by
 * directory scan, which can see a mixture while the follower renames files
 * into place (docs/REMOTE.md, "The swap", last paragraph). The guarantee
 * that readers see all of M or none is made for the follower store's own
 * snapshots (its one catalog swap), so that is where this reads. The sync is
 * still the library's own background thread, exactly what `strata follow`
 * runs. */
#define _GNU_SOURCE /* sigaction */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

#define MAX_VERSIONS 64
#define AFTER_FINAL 50

static volatile sig_atomic_t stop_requested;
static void on_term(int sig) {
  (void)sig;
  stop_requested = 1;
}

typedef struct reader {
  strata_store *store;
  unsigned final;
  FILE *progress;
  uint64_t snapshots[MAX_VERSIONS]; /* per version */
  unsigned last;                    /* last version seen, 0 none */
  int failed;
} reader;

static const char *const always[] = {"alpha", "beta", "gamma"};

/* Checks one layer's bytes against the pattern of version v; returns 0 or
 * prints what differs and returns -1. */
static int check_layer(unsigned snap, const char *region, const strata_layer *l,
                       unsigned v) {
  char line[128];
  int n = snprintf(line, sizeof line, "V%07u %s %llu\n", v, region,
                   (unsigned long long)l->id);
  const unsigned char *p = l->data;
  for (uint64_t i = 0; i < l->size; i++) {
    if (p[i] != (unsigned char)line[i % (uint64_t)n]) {
      fprintf(stderr,
              "follow_reader: snapshot %u: region %s layer %llu: byte %llu "
              "is 0x%02x, expected 0x%02x of version %u's pattern\n",
              snap, region, (unsigned long long)l->id, (unsigned long long)i,
              p[i], (unsigned char)line[i % n], v);
      return -1;
    }
  }
  return 0;
}

/* One snapshot: returns the version it shows, or 0 after printing why it is
 * not one whole version. */
static unsigned check_snapshot(strata_store *store, unsigned snap) {
  strata_txn txn;
  int rc = strata_read_begin(store, &txn);
  if (rc < 0) {
    fprintf(stderr, "follow_reader: strata_read_begin: %s\n",
            strata_strerror(rc));
    return 0;
  }
  unsigned version = 0, ok = 1, have_even = 0, have[3] = {0, 0, 0};
  uint64_t count = strata_store_region_count(&txn);
  for (uint64_t i = 0; ok && i < count; i++) {
    strata_store_region r;
    if ((rc = strata_store_region_at(&txn, i, &r)) < 0 || !r.name) {
      fprintf(stderr, "follow_reader: snapshot %u: region #%llu: %s\n", snap,
              (unsigned long long)i, rc < 0 ? strata_strerror(rc) : "no name");
      ok = 0;
      break;
    }
    int known = strcmp(r.name, "even") == 0;
    for (int k = 0; k < 3; k++)
      if (strcmp(r.name, always[k]) == 0) {
        have[k]++;
        known = 1;
      }
    have_even += strcmp(r.name, "even") == 0;
    if (!known) {
      fprintf(stderr, "follow_reader: snapshot %u: unexpected region %s\n",
              snap, r.name);
      ok = 0;
      break;
    }
    strata_snapshot_iter it;
    strata_layer l;
    uint64_t layers = 0;
    if ((rc = strata_snapshot_iter_init(&txn, r.id, &it)) < 0) {
      fprintf(stderr, "follow_reader: snapshot %u: region %s: %s\n", snap,
              r.name, strata_strerror(rc));
      ok = 0;
      break;
    }
    while (ok && (rc = strata_snapshot_next(&it, &l)) > 0) {
      unsigned v = 0;
      layers++;
      if (l.size < 9 || sscanf((const char *)l.data, "V%7u", &v) != 1 || !v) {
        fprintf(stderr,
                "follow_reader: snapshot %u: region %s layer %llu does not "
                "start with a version\n",
                snap, r.name, (unsigned long long)l.id);
        ok = 0;
      } else if (version && v != version) {
        fprintf(stderr,
                "follow_reader: snapshot %u: a mixture: region %s layer %llu "
                "is version %u, an earlier layer version %u\n",
                snap, r.name, (unsigned long long)l.id, v, version);
        ok = 0;
      } else {
        version = v;
        if (check_layer(snap, r.name, &l, v) < 0)
          ok = 0;
      }
    }
    strata_snapshot_iter_end(&it);
    if (ok && (rc < 0 || layers == 0)) {
      fprintf(stderr, "follow_reader: snapshot %u: region %s: %s\n", snap,
              r.name, rc < 0 ? strata_strerror(rc) : "no layers");
      ok = 0;
    }
  }
  if (ok) {
    for (int k = 0; k < 3; k++)
      if (have[k] != 1) {
        fprintf(stderr,
                "follow_reader: snapshot %u: version %u without region %s\n",
                snap, version, always[k]);
        ok = 0;
      }
    if (ok && have_even != (version % 2 == 0)) {
      fprintf(stderr,
              "follow_reader: snapshot %u: version %u %s region even: a "
              "mixture of region sets\n",
              snap, version, have_even ? "with" : "without");
      ok = 0;
    }
  }
  strata_read_end(&txn);
  return ok ? version : 0;
}

static void *read_loop(void *arg) {
  reader *rd = arg;
  unsigned after_final = 0;
  for (unsigned snap = 1; !stop_requested; snap++) {
    unsigned v = check_snapshot(rd->store, snap);
    if (!v || v >= MAX_VERSIONS) {
      if (v)
        fprintf(stderr, "follow_reader: version %u out of range\n", v);
      rd->failed = 1;
      break;
    }
    if (v < rd->last) {
      fprintf(stderr,
              "follow_reader: snapshot %u shows version %u after version %u: "
              "the follower went back\n",
              snap, v, rd->last);
      rd->failed = 1;
      break;
    }
    if (v != rd->last) {
      fprintf(rd->progress, "%u\n", v);
      fflush(rd->progress);
      rd->last = v;
    }
    rd->snapshots[v]++;
    if (v == rd->final && ++after_final >= AFTER_FINAL)
      break;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr,
            "usage: follow_reader STORE CONF POOL NAME FINAL PROGRESS\n");
    return 2;
  }
  reader rd = {0};
  rd.final = (unsigned)strtoul(argv[5], NULL, 10);
  if (!rd.final || rd.final >= MAX_VERSIONS) {
    fprintf(stderr, "follow_reader: FINAL must be 1..%d\n", MAX_VERSIONS - 1);
    return 2;
  }
  if (!(rd.progress = fopen(argv[6], "a"))) {
    fprintf(stderr, "follow_reader: %s: %s\n", argv[6], strerror(errno));
    return 1;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);

  strata_store_config cfg;
  strata_store_config_init(&cfg);
  cfg.flags = STRATA_STORE_CREATE;
  cfg.remote.role = STRATA_REMOTE_FOLLOWER;
  cfg.remote.conf = argv[2];
  cfg.remote.pool = argv[3];
  cfg.remote.name = argv[4];
  cfg.remote.poll_ms = 200;
  int rc = strata_store_open(argv[1], &cfg, &rd.store);
  if (rc < 0) {
    fprintf(stderr, "follow_reader: open %s: %s: %s\n", argv[1],
            strata_strerror(rc), strata_last_error_detail());
    return 1;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, read_loop, &rd) != 0) {
    fprintf(stderr, "follow_reader: pthread_create failed\n");
    return 1;
  }
  pthread_join(t, NULL);
  strata_store_close(rd.store);
  fclose(rd.progress);
  for (unsigned v = 1; v < MAX_VERSIONS; v++)
    if (rd.snapshots[v])
      printf("version %u: %llu snapshots\n", v,
             (unsigned long long)rd.snapshots[v]);
  if (!rd.failed && rd.last != rd.final) {
    fprintf(stderr, "follow_reader: stopped at version %u before %u\n", rd.last,
            rd.final);
    rd.failed = 1;
  }
  return rd.failed ? 1 : 0;
}
