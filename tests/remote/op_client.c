/* One push or one pull through the public API with a short operation
 * timeout, for osd_stop.sh (the CLI has no option for op_timeout_s, and a
 * stopped OSD would hold a CLI push for the default 30 s).
 *
 *   op_client push|pull STORE CONF POOL NAME OP_TIMEOUT_S
 *
 * push: opens STORE as a publisher (1 MiB chunks) and calls
 * strata_remote_publish(); pull: opens STORE as a follower without a
 * background thread and calls strata_remote_sync(). Prints "version N" (the
 * version at HEAD, or served) and exits 0, or prints
 * "op_client: OP: ERROR_NAME: DETAIL" on stderr and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

static int report(const char *op, int rc) {
  fprintf(stderr, "op_client: %s: %s: %s\n", op, strata_err_name(rc),
          strata_last_error_detail());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 7 || (strcmp(argv[1], "push") && strcmp(argv[1], "pull"))) {
    fprintf(stderr,
            "usage: op_client push|pull STORE CONF POOL NAME OP_TIMEOUT_S\n");
    return 2;
  }
  int is_push = strcmp(argv[1], "push") == 0;
  strata_store_config cfg;
  strata_store_config_init(&cfg);
  cfg.flags = STRATA_STORE_CREATE;
  cfg.remote.role = is_push ? STRATA_REMOTE_PUBLISHER : STRATA_REMOTE_FOLLOWER;
  cfg.remote.flags = is_push ? 0 : STRATA_REMOTE_NO_THREAD;
  cfg.remote.conf = argv[3];
  cfg.remote.pool = argv[4];
  cfg.remote.name = argv[5];
  cfg.remote.chunk_size = 1u << 20;
  cfg.remote.op_timeout_s = (uint32_t)strtoul(argv[6], NULL, 10);
  /* A follower's open syncs when it has no whole local copy; the test
   * always gives it one, so the open itself needs no long wait. */
  cfg.remote.open_timeout_ms = cfg.remote.op_timeout_s * 1000u;
  strata_store *store = NULL;
  int rc = strata_store_open(argv[2], &cfg, &store);
  if (rc < 0)
    return report("open", rc);
  uint64_t version = 0;
  rc = is_push ? strata_remote_publish(store, &version)
               : strata_remote_sync(store, &version);
  strata_store_close(store);
  if (rc < 0)
    return report(argv[1], rc);
  printf("version %llu\n", (unsigned long long)version);
  return 0;
}
