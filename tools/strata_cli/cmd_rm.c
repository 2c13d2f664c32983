/* strata rm STORE REGION LAYER: removes one layer of a region and
 * crystallizes it, so that the change outlives the command. */
#include <inttypes.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata rm STORE REGION LAYER\n"
    "\n"
    "Remove layer LAYER of region REGION from the store in directory STORE,\n"
    "then crystallize the region: its file is rewritten without the layer\n"
    "(a new file renamed over the old one), so the change is durable when\n"
    "the command returns. REGION and LAYER are each an id when all decimal\n"
    "digits (any u64), a name otherwise.\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened, no such region or\n"
    "layer, another process writes to the store ('store is locked by pid\n"
    "N'), or writing the region failed; 2 usage error.\n";

static int rm(strata_store *s, const char *dir, const cli_key *region,
              const cli_key *layer) {
  uint64_t region_id;
  int code = cli_region_id(s, dir, region, &region_id);
  if (code != CLI_EXIT_OK)
    return code;
  strata_txn txn;
  strata_store_region r;
  int rc;

  strata_proto *p;
  rc = cli_store_proto(s, region_id, NULL, NULL, &p);
  if (rc < 0)
    return cli_fail_lib(rc);
  /* The layer is looked up once the lock is held, in what the proto
   * holds: the file as it is on disk now. */
  strata_layer l;
  if ((rc = strata_read_begin(s, &txn)) < 0)
    return cli_fail_lib(rc);
  code = cli_resolve_region(&txn, dir, region, &r);
  if (code == CLI_EXIT_OK)
    code = cli_resolve_layer(&txn, dir, &r, layer, &l);
  uint64_t layer_id = l.id;
  strata_read_end(&txn);
  if (code != CLI_EXIT_OK)
    return code;
  rc = strata_proto_remove(p, layer_id);
  if (rc == 0)
    rc = strata_crystallize(s, region_id);
  return rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
}

static int run(int argc, char **argv) {
  const char *pos[3];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_rm, argc, argv, NULL, 0, pos, 3, 3, &npos,
                      &code))
    return code;
  cli_key region, layer;
  if (!cli_parse_region(&cli_cmd_rm, pos[1], &region, &code) ||
      !cli_parse_layer(&cli_cmd_rm, pos[2], &layer, &code))
    return code;
  strata_store *s = cli_store_open(pos[0], false);
  code = s == NULL ? CLI_EXIT_FAIL : rm(s, pos[0], &region, &layer);
  strata_store_close(s);
  return code;
}

const cli_command cli_cmd_rm = {
    .name = "rm",
    .synopsis = "STORE REGION LAYER",
    .summary = "remove a layer (by id or name), then crystallize",
    .usage = usage,
    .run = run,
};
