/* strata: inspect and check region files and stores from the command line.
 * This file holds the subcommand table, the top-level usage and --version;
 * each subcommand is in its own cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command cli_cmd_help;

/* Shown in this order by --help. */
static const cli_command *const commands[] = {
    &cli_cmd_inspect, &cli_cmd_ls,          &cli_cmd_cat,
    &cli_cmd_verify,  &cli_cmd_dump,        &cli_cmd_regions,
    &cli_cmd_context, &cli_cmd_get,         &cli_cmd_put,
    &cli_cmd_rm,      &cli_cmd_crystallize, &cli_cmd_stats,
    &cli_cmd_metrics, &cli_cmd_dump_state,  &cli_cmd_readers,
    &cli_cmd_top,     &cli_cmd_push,        &cli_cmd_pull,
    &cli_cmd_follow,  &cli_cmd_remote,      &cli_cmd_help,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *f) {
  fputs("Usage: strata [-h | --help | -V | --version]\n"
        "       strata COMMAND [OPTIONS] ARGS...\n"
        "\n"
        "Inspect and check Strata region files (FILE), read and change\n"
        "stores (STORE: a directory of region files), and publish and follow\n"
        "stores through a Ceph RADOS pool (POOL/NAME: push, pull, follow,\n"
        "remote; in builds with librados).\n"
        "\n"
        "Commands:\n",
        f);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-11s %s\n", commands[i]->name, commands[i]->summary);
  fputs("\n"
        "Run 'strata help COMMAND' or 'strata COMMAND --help' for the options\n"
        "of a command. Every command also takes -h/--help and -V/--version.\n"
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  failure: file, store, region or layer not found, corrupt\n"
        "     region, store locked by another writer, I/O error, the\n"
        "     cluster's or a remote object's error, no RADOS support\n"
        "     (a message 'strata: <detail>' on standard error; verify prints\n"
        "     its verdict on standard output)\n"
        "  2  usage error: unknown command or option, missing or extra\n"
        "     arguments\n",
        f);
}

static const cli_command *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(name, commands[i]->name) == 0)
      return commands[i];
  return NULL;
}

static const char help_usage[] =
    "Usage: strata help [COMMAND]\n"
    "\n"
    "Print the list of commands (as 'strata --help' does), or the help of\n"
    "COMMAND (as 'strata COMMAND --help' does), on standard output.\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 2 unknown command or usage error.\n";

static int run_help(int argc, char **argv) {
  const char *pos[1];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_help, argc, argv, NULL, 0, pos, 0, 1, &npos,
                      &code))
    return code;
  if (npos == 0) {
    print_usage(stdout);
    return CLI_EXIT_OK;
  }
  const cli_command *cmd = find_command(pos[0]);
  if (cmd == NULL)
    return cli_usage_error(&cli_cmd_help, "unknown command '%s'", pos[0]);
  fputs(cmd->usage, stdout);
  return CLI_EXIT_OK;
}

static const cli_command cli_cmd_help = {
    .name = "help",
    .synopsis = "[COMMAND]",
    .summary = "show the help of strata or of one command",
    .usage = help_usage,
    .run = run_help,
};

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
  if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
    cli_print_version();
    return CLI_EXIT_OK;
  }
  const cli_command *cmd = find_command(name);
  if (cmd != NULL)
    return cmd->run(argc - 1, argv + 1);
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
