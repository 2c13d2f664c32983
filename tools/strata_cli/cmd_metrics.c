/* strata metrics STORE: the store's figures in the Prometheus text format,
 * as strata_metrics_text() renders them. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata metrics STORE\n"
    "\n"
    "Open the store in directory STORE read-only and print its metrics in\n"
    "the Prometheus text exposition format, version 0.0.4\n"
    "(strata_metrics_text()): strata_* metrics with HELP and TYPE lines,\n"
    "per-region series labelled region_id and region. The figures are this\n"
    "process's: a store just opened, with no protos and nothing read yet.\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened, 2 usage error.\n";

static int run(int argc, char **argv) {
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_metrics, argc, argv, NULL, 0, &dir, &code))
    return code;
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL)
    return CLI_EXIT_FAIL;
  char *text = NULL;
  int rc = strata_metrics_text(s, &text);
  code = rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
  strata_store_close(s);
  if (text != NULL) {
    size_t len = strlen(text);
    fputs(text, stdout);
    if (len > 0 && text[len - 1] != '\n')
      fputc('\n', stdout);
  }
  strata_free(text);
  return code;
}

const cli_command cli_cmd_metrics = {
    .name = "metrics",
    .synopsis = "STORE",
    .summary = "print the store's metrics in the Prometheus text format",
    .usage = usage,
    .run = run,
};
