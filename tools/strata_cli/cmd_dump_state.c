/* strata dump-state STORE: the store's state document, as
 * strata_dump_state() renders it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata dump-state [--verbose] STORE\n"
    "\n"
    "Open the store in directory STORE read-only and print its state as one\n"
    "JSON document (strata_dump_state(); docs/state.schema.json describes\n"
    "it): version and configuration, memory, regions, protos, pools,\n"
    "statistics and snapshots. The figures are this process's: a store just\n"
    "opened, with no protos and nothing read yet.\n"
    "\n"
    "Options:\n"
    "  --verbose   also list every region's layer index (id, name, offset,\n"
    "              length, checksum): large for large regions\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened, 2 usage error.\n";

static int run(int argc, char **argv) {
  bool verbose = false;
  const cli_option opts[] = {{"--verbose", &verbose, NULL}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_dump_state, argc, argv, opts, 1, &dir,
                          &code))
    return code;
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL)
    return CLI_EXIT_FAIL;
  char *json = NULL;
  int rc = strata_dump_state(s, verbose ? STRATA_DUMP_VERBOSE : 0, &json);
  code = rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
  strata_store_close(s);
  if (json != NULL) {
    /* Already JSON, indented: printed as it is, ending in a newline. */
    size_t len = strlen(json);
    fputs(json, stdout);
    if (len == 0 || json[len - 1] != '\n')
      fputc('\n', stdout);
  }
  strata_free(json);
  return code;
}

const cli_command cli_cmd_dump_state = {
    .name = "dump-state",
    .synopsis = "[--verbose] STORE",
    .summary = "print the store's state as JSON (strata_dump_state)",
    .usage = usage,
    .run = run,
};
