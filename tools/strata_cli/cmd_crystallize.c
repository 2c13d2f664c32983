/* strata crystallize STORE REGION: rewrites a region's file from its
 * current content, as strata_crystallize() does. */
#include "../common/tool_progress.h"
#include "cli.h"

static const char usage[] =
    "Usage: strata crystallize STORE REGION\n"
    "\n"
    "Rewrite the file of region REGION (an id when all decimal digits, any\n"
    "u64; a name otherwise) of the store in directory STORE from its\n"
    "current content, the way the library crystallizes a proto: a new file\n"
    "is written beside it, fsync()ed and renamed over the old one. The\n"
    "content does not change; the new file is laid out afresh by the\n"
    "current writer (layers in id order, so that consecutive ids get the\n"
    "packed lookup table). 'put' and 'rm' do this themselves.\n"
    "\n"
    "When standard error is a terminal (or STRATA_PROGRESS=1), a progress\n"
    "line there shows the bytes and layers written.\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened, no such region,\n"
    "another process writes to the store ('store is locked by pid N'), or\n"
    "writing the region failed; 2 usage error.\n";

static int crystallize(strata_store *s, const char *dir,
                       const cli_key *region) {
  uint64_t region_id;
  int code = cli_region_id(s, dir, region, &region_id);
  if (code != CLI_EXIT_OK)
    return code;
  strata_proto *p;
  int rc = cli_store_proto(s, region_id, NULL, NULL, &p);
  if (rc == 0) {
    /* The totals come with the first report. */
    tool_progress progress;
    tool_progress_start(&progress, tool_progress_wanted(), "crystallize", 0, 0);
    strata_crystallize_options o;
    strata_crystallize_options_init(&o);
    o.progress = tool_progress_callback;
    o.progress_ctx = &progress;
    rc = strata_crystallize_ex(s, region_id, &o);
    tool_progress_finish(&progress, rc == 0);
  }
  return rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
}

static int run(int argc, char **argv) {
  const char *pos[2];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_crystallize, argc, argv, NULL, 0, pos, 2, 2,
                      &npos, &code))
    return code;
  cli_key region;
  if (!cli_parse_region(&cli_cmd_crystallize, pos[1], &region, &code))
    return code;
  strata_store *s = cli_store_open(pos[0], false);
  code = s == NULL ? CLI_EXIT_FAIL : crystallize(s, pos[0], &region);
  strata_store_close(s);
  return code;
}

const cli_command cli_cmd_crystallize = {
    .name = "crystallize",
    .synopsis = "STORE REGION",
    .summary = "rewrite a region's file from its current content",
    .usage = usage,
    .run = run,
};
