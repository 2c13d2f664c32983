/* strata ls FILE: one line (or JSON object) per layer, in id order. */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata ls [--json] FILE\n"
    "\n"
    "List the layers of the region FILE in ascending id order, one per line:\n"
    "  ID<TAB>SIZE<TAB>NAME\n"
    "NAME is '-' for a layer without a name. In names, a backslash is written\n"
    "as \\\\ and control characters as \\xHH, so that every layer stays on\n"
    "one line.\n"
    "\n"
    "Options:\n"
    "  --json      print a JSON array of {id, name, size, checksum, metadata}\n"
    "              (checksum: XXH3-64 in hex; metadata: parsed JSON or null)\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the file cannot be opened or read, 2 usage error.\n";

static void print_name(const strata_layer *l) {
  if (l->name == NULL) {
    fputc('-', stdout);
    return;
  }
  cli_print_escaped(stdout, l->name, l->name_len);
}

/* Lists into stdout (text) or *json (when json is not NULL). Reads the
 * mapping: runs under the SIGBUS guard. */
static int list(const strata_region *r, json_t *json) {
  strata_region_iter it;
  strata_layer l;
  int rc;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    if (json != NULL) {
      json_array_append_new(json, cli_json_layer(&l));
      continue;
    }
    printf("%" PRIu64 "\t%" PRIu64 "\t", l.id, l.size);
    print_name(&l);
    fputc('\n', stdout);
  }
  return rc;
}

static int run(int argc, char **argv) {
  bool as_json = false;
  const cli_option opts[] = {{"--json", &as_json, NULL}};
  const char *path;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_ls, argc, argv, opts, 1, &path, &code))
    return code;

  strata_region *volatile r = NULL;
  json_t *volatile json = NULL;
  if (CLI_BUS_FAULTED()) {
    fflush(stdout); /* what was listed before the fault stays listed */
    json_decref(json);
    strata_region_close(r);
    return cli_fail("%s: %s", path, CLI_BUS_MESSAGE);
  }
  r = cli_open_region_guarded(path, STRATA_OPEN_DEFAULT);
  if (r == NULL)
    return CLI_EXIT_FAIL;
  if (as_json)
    json = json_array();
  int rc = list(r, json);
  cli_bus_disarm();
  code = rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
  strata_region_close(r);
  if (rc < 0) {
    json_decref(json);
    return code;
  }
  return as_json ? cli_json_print(json) : CLI_EXIT_OK;
}

const cli_command cli_cmd_ls = {
    .name = "ls",
    .synopsis = "[--json] FILE",
    .summary = "list the layers: id, size and name (or JSON with --json)",
    .usage = usage,
    .run = run,
};
