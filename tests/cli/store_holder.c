/* store_holder: a process that keeps a store open, for the shared-view
 * test (test_readers.sh).
 *
 *   store_holder STORE ROLE GETS READY
 *
 * Opens STORE, and as ROLE "writer" first puts a layer into region 1's
 * proto (taking the writer lock); does GETS lookups of region 1's layer 1
 * in one snapshot (layer 1 exists for a writer, so a reader's lookups
 * miss), then begins a snapshot it keeps open, publishes its figures
 * (strata_processes_publish()), writes its pid to the file READY (under a
 * temporary name, then renamed: the test waits for the name) and waits to
 * be killed. Public API only. Exit status 1 with a message on failure. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strata.h"

static int fail(const char *what, int rc) {
  fprintf(stderr, "store_holder: %s: %s\n", what,
          rc < 0 ? strata_last_error_detail() : "failed");
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: store_holder STORE reader|writer GETS READY\n");
    return 2;
  }
  bool writer = strcmp(argv[2], "writer") == 0;
  long gets = atol(argv[3]);
  strata_store *s = NULL;
  int rc = strata_store_open(argv[1], NULL, &s);
  if (rc < 0)
    return fail("open", rc);
  if (writer) {
    strata_proto *p;
    if ((rc = strata_proto_create(s, 1, "one", 3, NULL, &p)) < 0 ||
        (rc = strata_proto_put(p, 1, "a", 1, NULL, "abcd", 4)) < 0)
      return fail("put", rc);
  }
  strata_txn txn;
  if ((rc = strata_read_begin(s, &txn)) < 0)
    return fail("read_begin", rc);
  for (long i = 0; i < gets; i++) {
    strata_layer l;
    (void)strata_get(&txn, 1, 1, &l);
  }
  strata_read_end(&txn);
  if ((rc = strata_read_begin(s, &txn)) < 0)
    return fail("read_begin", rc);
  strata_processes_publish(s);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[4]);
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
      rename(tmp, argv[4]) != 0)
    return fail("writing READY", 0);
  for (;;)
    pause();
}
