/* Command-line parsing shared by every subcommand: a thin layer over
 * tools/common/tool_args.c, which region-builder uses too, so that both
 * tools accept the same forms and word their errors alike. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tool_args.h"
#include "cli.h"

int cli_usage_error(const cli_command *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tool_vusage_error("strata", cmd ? cmd->name : NULL, fmt, ap);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

void cli_print_version(void) {
  printf("strata %s\n", strata_version_string());
}

bool cli_parse_args(const cli_command *cmd, int argc, char **argv,
                    const cli_option *opts, size_t nopts, const char **pos,
                    size_t min_pos, size_t max_pos, size_t *npos,
                    int *exit_code) {
  *exit_code = CLI_EXIT_USAGE;
  tool_opt *topts = calloc(nopts ? nopts : 1, sizeof *topts);
  if (topts == NULL) {
    cli_fail("out of memory");
    *exit_code = CLI_EXIT_FAIL;
    return false;
  }
  for (size_t i = 0; i < nopts; i++)
    topts[i] = (tool_opt){opts[i].name + 2, 0, opts[i].flag, opts[i].value};
  const tool_args a = {"strata", cmd->name, topts, nopts, pos, max_pos};
  size_t n = 0;
  enum tool_args_result res = tool_args_parse(&a, argc, argv, &n);
  free(topts);
  switch (res) {
  case TOOL_ARGS_HELP:
    fputs(cmd->usage, stdout);
    *exit_code = CLI_EXIT_OK;
    return false;
  case TOOL_ARGS_VERSION:
    cli_print_version();
    *exit_code = CLI_EXIT_OK;
    return false;
  case TOOL_ARGS_USAGE:
    return false;
  case TOOL_ARGS_OK:
    break;
  }
  if (n < min_pos) {
    cli_usage_error(cmd, "missing argument (usage: strata %s %s)", cmd->name,
                    cmd->synopsis);
    return false;
  }
  if (!tool_check_log_env("strata"))
    return false;
  *npos = n;
  return true;
}

bool cli_parse_file_arg(const cli_command *cmd, int argc, char **argv,
                        const cli_option *opts, size_t nopts, const char **path,
                        int *exit_code) {
  size_t npos;
  return cli_parse_args(cmd, argc, argv, opts, nopts, path, 1, 1, &npos,
                        exit_code);
}
