/* strata pull STORE --remote POOL/NAME: one sync of a local copy of a
 * remote store (a follower store without its background thread). */
#include "cli.h"

static const char usage[] =
    "Usage: strata pull STORE --remote POOL/NAME [--conf FILE]\n"
    "\n"
    "Bring the directory STORE (created if missing) to the version at HEAD\n"
    "of the remote store NAME in the Ceph RADOS pool POOL, once, for cron\n"
    "or a cold start (docs/REMOTE.md, \"Followers\"): the region files STORE\n"
    "lacks are fetched, each verified whole (chunk checksums, the file's\n"
    "hash, then every layer's checksum) before the store switches to the\n"
    "new version in one swap; files the version does not list are removed.\n"
    "Prints\n"
    "  POOL/NAME: serving version N (R regions, B bytes fetched)\n"
    "A failed pull leaves STORE serving the version it had, and no\n"
    "temporary file behind, even when the command is killed. While it runs\n"
    "it holds STORE's writer lock.\n"
    "\n"
    "Options:\n"
    "  --remote POOL/NAME  the pool and the remote store's name (required)\n"
    "  --conf FILE         the cluster's ceph.conf (default: librados'\n"
    "                      search: $CEPH_CONF, /etc/ceph/ceph.conf, ...)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 the store serves HEAD's version; 1 the cluster, a chunk\n"
    "or a file failed (the message names the object or file), or STORE is\n"
    "locked by another process; 2 usage error.\n";

static int run(int argc, char **argv) {
  const char *remote_arg = NULL, *conf = NULL;
  const cli_option opts[] = {
      {"--remote", NULL, &remote_arg},
      {"--conf", NULL, &conf},
  };
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_pull, argc, argv, opts, 2, &dir, &code))
    return code;
  cli_remote_arg r;
  if (!cli_parse_remote(&cli_cmd_pull, "--remote", remote_arg, &r, &code))
    return code;
  strata_remote_config c;
  cli_remote_config(&c, STRATA_REMOTE_FOLLOWER, &r, conf);
  /* No thread: the open syncs once, and the sync below catches a version
   * published since; nothing moves the store after that. */
  c.flags |= STRATA_REMOTE_NO_THREAD;
  strata_store *s = cli_store_open_remote(dir, &c, STRATA_STORE_CREATE);
  code = CLI_EXIT_FAIL;
  if (s != NULL) {
    int rc = strata_remote_sync(s, NULL);
    code = rc < 0 ? cli_fail_lib(rc) : cli_print_serving(s, &r);
  }
  strata_store_close(s);
  cli_remote_arg_free(&r);
  return code;
}

const cli_command cli_cmd_pull = {
    .name = "pull",
    .synopsis = "STORE --remote POOL/NAME",
    .summary = "bring a local copy of a remote store to HEAD, once",
    .usage = usage,
    .run = run,
};
