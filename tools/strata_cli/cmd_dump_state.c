/* strata dump-state STORE: the store's state document, as
 * strata_dump_state() renders it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata dump-state [--verbose] [--process PID] STORE\n"
    "\n"
    "Open the store in directory STORE read-only and print its state as one\n"
    "JSON document (strata_dump_state(); docs/state.schema.json describes\n"
    "it): version and configuration, memory, regions, protos, pools,\n"
    "statistics and snapshots. Those figures are of a store just opened,\n"
    "with no protos and nothing read yet (the tool does not register in the\n"
    "shared view); the key \"processes\" adds {live, sum, list}: the\n"
    "processes that have the store open, from its shared view\n"
    "(STORE/.strata.shm, see 'strata readers').\n"
    "\n"
    "Options:\n"
    "  --verbose      also list every region's layer index (id, name,\n"
    "                 offset, length, checksum): large for large regions\n"
    "  --process PID  only that process under \"processes\"\n"
    "  -h, --help     show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store or its shared view cannot be read, or\n"
    "no live process has that pid, 2 usage error.\n";

static int run(int argc, char **argv) {
  bool verbose = false;
  const char *pid = NULL;
  const cli_option opts[] = {{"--verbose", &verbose, NULL},
                             {"--process", NULL, &pid}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_dump_state, argc, argv, opts, 2, &dir,
                          &code))
    return code;
  cli_processes procs;
  if ((code = cli_processes_read(&cli_cmd_dump_state, dir, pid, &procs)) != 0)
    return code;
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL) {
    cli_processes_free(&procs);
    return CLI_EXIT_FAIL;
  }
  char *json = NULL;
  int rc = strata_dump_state(s, verbose ? STRATA_DUMP_VERBOSE : 0, &json);
  code = rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
  strata_store_close(s);
  if (json != NULL && code == CLI_EXIT_OK) {
    /* The library's document with the processes added, printed as the
     * library indents it (2, in order). */
    json_error_t err;
    json_t *doc = json_loads(json, 0, &err);
    if (doc == NULL || !json_is_object(doc))
      code = cli_fail("the state document does not parse: %s", err.text);
    else
      json_object_set_new(doc, "processes", cli_processes_json(&procs));
    if (code == CLI_EXIT_OK)
      code = cli_json_print(doc);
    else
      json_decref(doc);
  }
  strata_free(json);
  cli_processes_free(&procs);
  return code;
}

const cli_command cli_cmd_dump_state = {
    .name = "dump-state",
    .synopsis = "[--verbose] [--process PID] STORE",
    .summary = "print the store's state as JSON (strata_dump_state)",
    .usage = usage,
    .run = run,
};
