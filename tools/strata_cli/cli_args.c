/* Command-line parsing shared by every subcommand: options, "--", --help,
 * and the count of positional arguments. getopt_long is not used because
 * its permutation and error messages differ between libcs, and the tests
 * compare messages exactly. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_usage_error(const cli_command *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("strata: ", stderr);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd->name);
  cli_vprint_escaped(stderr, fmt, ap);
  va_end(ap);
  if (cmd != NULL)
    fprintf(stderr, "\nTry 'strata %s --help'.\n", cmd->name);
  else
    fputs("\nTry 'strata --help'.\n", stderr);
  return CLI_EXIT_USAGE;
}

static const cli_option *find_option(const cli_option *opts, size_t nopts,
                                     const char *arg, size_t name_len) {
  for (size_t i = 0; i < nopts; i++)
    if (strlen(opts[i].name) == name_len &&
        strncmp(opts[i].name, arg, name_len) == 0)
      return &opts[i];
  return NULL;
}

/* Handles the option at argv[*i]. Returns false after a usage error. */
static bool take_option(const cli_command *cmd, int argc, char **argv, int *i,
                        const cli_option *opts, size_t nopts) {
  const char *arg = argv[*i];
  const char *eq = strchr(arg, '=');
  size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
  const cli_option *o = find_option(opts, nopts, arg, name_len);
  if (o == NULL) {
    cli_usage_error(cmd, "unknown option '%.*s'", (int)name_len, arg);
    return false;
  }
  if (o->flag != NULL) {
    if (eq != NULL) {
      cli_usage_error(cmd, "option '%s' takes no value", o->name);
      return false;
    }
    *o->flag = true;
    return true;
  }
  if (eq != NULL) {
    *o->value = eq + 1;
    return true;
  }
  if (*i + 1 >= argc) {
    cli_usage_error(cmd, "option '%s' needs a value", o->name);
    return false;
  }
  *o->value = argv[++*i];
  return true;
}

bool cli_parse_args(const cli_command *cmd, int argc, char **argv,
                    const cli_option *opts, size_t nopts, const char **pos,
                    size_t min_pos, size_t max_pos, size_t *npos,
                    int *exit_code) {
  size_t n = 0;
  bool options_done = false;
  *exit_code = CLI_EXIT_USAGE;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    bool is_option = !options_done && arg[0] == '-' && arg[1] != '\0';
    if (is_option && strcmp(arg, "--") == 0) {
      options_done = true;
      continue;
    }
    if (is_option && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
      fputs(cmd->usage, stdout);
      *exit_code = CLI_EXIT_OK;
      return false;
    }
    if (is_option) {
      if (!take_option(cmd, argc, argv, &i, opts, nopts))
        return false;
      continue;
    }
    if (n == max_pos) {
      cli_usage_error(cmd, "unexpected argument '%s'", arg);
      return false;
    }
    pos[n++] = arg;
  }
  if (n < min_pos) {
    cli_usage_error(cmd, "missing argument (usage: strata %s %s)", cmd->name,
                    cmd->synopsis);
    return false;
  }
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
