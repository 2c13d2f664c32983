/* strata push STORE --remote POOL/NAME: publishes the store's region files
 * as a new version of a remote store (strata_remote_publish()). */
#include <inttypes.h>
#include <stdlib.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata push STORE --remote POOL/NAME [--conf FILE]\n"
    "                   [--chunk-size BYTES] [--no-notify]\n"
    "\n"
    "Publish the region files of the store in directory STORE as the next\n"
    "version of the remote store NAME in the Ceph RADOS pool POOL\n"
    "(docs/REMOTE.md): take the publisher lock, upload the chunks of the\n"
    "region files and delta files that the pool does not hold yet (after a\n"
    "small put, only the new delta file's bytes),\n"
    "write the version's manifest and move HEAD to it in one\n"
    "compare-and-swap, then notify the followers. Prints\n"
    "  POOL/NAME: published version N (R regions, B bytes uploaded)\n"
    "or, when the files are those of HEAD's version already,\n"
    "  POOL/NAME: already at version N\n"
    "\n"
    "Options:\n"
    "  --remote POOL/NAME  the pool and the remote store's name (required;\n"
    "                      the name: 1-64 of A-Z a-z 0-9 . _ -)\n"
    "  --conf FILE         the cluster's ceph.conf (default: librados'\n"
    "                      search: $CEPH_CONF, /etc/ceph/ceph.conf, ...)\n"
    "  --chunk-size BYTES  size of the chunk objects, a power of two from\n"
    "                      1M to 64M (a K or M suffix counts KiB or MiB;\n"
    "                      default 16M)\n"
    "  --no-notify         do not notify the followers (they poll)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 published or already there; 1 the store cannot be\n"
    "opened, another publisher holds the lock ('POOL/NAME: locked by ...'),\n"
    "HEAD moved during the publish, or the cluster failed (nothing was\n"
    "changed at HEAD); 2 usage error.\n";

static int push(strata_store *s, const cli_remote_arg *r) {
  strata_remote_stats before, after;
  int code = cli_remote_stats(s, &before);
  if (code != CLI_EXIT_OK)
    return code;
  uint64_t version = 0;
  int rc = strata_remote_publish(s, &version);
  if (rc < 0)
    return cli_fail_lib(rc);
  uint64_t regions = 0;
  if ((code = cli_remote_stats(s, &after)) != CLI_EXIT_OK ||
      (code = cli_store_regions(s, &regions)) != CLI_EXIT_OK)
    return code;
  /* publishes counts the versions this handle made: unchanged means the
   * files were HEAD's already. */
  if (after.publishes == before.publishes)
    cli_print_line(stdout, "%s/%s: already at version %" PRIu64 "", r->pool,
                   r->name, version);
  else
    cli_print_line(stdout,
                   "%s/%s: published version %" PRIu64 " (%" PRIu64
                   " regions, %" PRIu64 " bytes uploaded)",
                   r->pool, r->name, version, regions,
                   after.bytes_uploaded - before.bytes_uploaded);
  return CLI_EXIT_OK;
}

static int run(int argc, char **argv) {
  const char *remote_arg = NULL, *conf = NULL, *chunk_arg = NULL;
  bool no_notify = false;
  const cli_option opts[] = {
      {"--remote", NULL, &remote_arg},
      {"--conf", NULL, &conf},
      {"--chunk-size", NULL, &chunk_arg},
      {"--no-notify", &no_notify, NULL},
  };
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_push, argc, argv, opts, 4, &dir, &code))
    return code;
  strata_remote_config c;
  cli_remote_arg r;
  if (!cli_parse_remote(&cli_cmd_push, "--remote", remote_arg, &r, &code))
    return code;
  cli_remote_config(&c, STRATA_REMOTE_PUBLISHER, &r, conf);
  if (chunk_arg != NULL &&
      !cli_parse_u32(&cli_cmd_push, "--chunk-size", chunk_arg, true,
                     &c.chunk_size, &code)) {
    cli_remote_arg_free(&r);
    return code;
  }
  if (no_notify)
    c.flags |= STRATA_REMOTE_NO_NOTIFY;
  strata_store *s = cli_store_open_remote(dir, &c, 0);
  code = s == NULL ? CLI_EXIT_FAIL : push(s, &r);
  strata_store_close(s);
  cli_remote_arg_free(&r);
  return code;
}

const cli_command cli_cmd_push = {
    .name = "push",
    .synopsis = "STORE --remote POOL/NAME",
    .summary = "publish a store as a new version of a remote store",
    .usage = usage,
    .run = run,
};
