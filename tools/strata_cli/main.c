/* strata: inspect and check region files and stores from the command line.
 * This file holds the subcommand table, the top-level usage and --version;
 * each subcommand is in its own cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Shown in this order by --help. */
static const cli_command *const commands[] = {
    &cli_cmd_inspect, &cli_cmd_ls,          &cli_cmd_cat,
    &cli_cmd_verify,  &cli_cmd_dump,        &cli_cmd_regions,
    &cli_cmd_context, &cli_cmd_get,         &cli_cmd_put,
    &cli_cmd_rm,      &cli_cmd_crystallize, &cli_cmd_stats,
    &cli_cmd_metrics, &cli_cmd_dump_state,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *f) {
  fputs("Usage: strata [--help | --version]\n"
        "       strata COMMAND [OPTIONS] ARGS...\n"
        "\n"
        "Inspect and check Strata region files (FILE), and read and change\n"
        "stores (STORE: a directory of region files).\n"
        "\n"
        "Commands:\n",
        f);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-11s %s\n", commands[i]->name, commands[i]->summary);
  fputs("\n"
        "Run 'strata COMMAND --help' for the options of a command.\n"
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  failure: file, store, region or layer not found, corrupt\n"
        "     region, store locked by another writer, I/O error\n"
        "     (a message 'strata: <detail>' on standard error; verify prints\n"
        "     its verdict on standard output)\n"
        "  2  usage error: unknown command or option, missing or extra\n"
        "     arguments\n",
        f);
}

static int dispatch(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
    print_usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0) {
    printf("strata %s\n", strata_version_string());
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(name, commands[i]->name) != 0)
      continue;
    return commands[i]->run(argc - 1, argv + 1);
  }
  if (name[0] == '-')
    return cli_usage_error(NULL, "unknown option '%s'", name);
  return cli_usage_error(NULL, "unknown command '%s'", name);
}

int main(int argc, char **argv) {
  cli_stdout_open();
  /* Output is buffered: a write may fail only when it is flushed at the
   * end (a full disk; a closed pipe where SIGPIPE is ignored), and success
   * must not be claimed then, whatever the command. */
  return cli_stdout_close(dispatch(argc, argv));
}
