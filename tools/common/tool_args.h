/* Command-line parsing shared by the tools (strata and its subcommands,
 * region-builder), so that both accept the same forms and word their
 * errors alike (docs/CLI.md, "Command lines"):
 *
 * - options anywhere among the arguments, "--" ends them; long options as
 *   --name VALUE or --name=VALUE, a unique prefix of a long name
 *   accepted (getopt_long's rule); short options as -o VALUE, -oVALUE, and
 *   switches grouped (-qv);
 * - -h/--help and -V/--version everywhere (the caller prints what they
 *   ask for);
 * - errors printed by us, not by getopt (opterr = 0), so that the wording
 *   does not depend on the libc:
 *
 *     PROG: [CMD: ]unknown option '--x'
 *     Try 'PROG [CMD ]--help'.
 *
 * It is built on getopt_long in RETURN_IN_ORDER mode (an optstring that
 * starts with '-'), which keeps the positional arguments in their order and
 * ignores POSIXLY_CORRECT, so that options after positional arguments are
 * accepted under every environment.
 *
 * Compiled into each tool from tools/common/tool_args.c, like tool_stdout.c.
 * Not thread-safe (getopt's state is global); tools parse once, in main. */
#ifndef STRATA_TOOL_ARGS_H
#define STRATA_TOOL_ARGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* One option. Exactly one of `flag` and `value` is set: `flag` for a switch
 * (set to true when given), `value` for an option that takes an argument
 * (the last one given wins; it points into argv). */
typedef struct tool_opt {
  const char *name; /* the long name without dashes: "json" */
  char short_name;  /* 'o', or 0 for none */
  bool *flag;
  const char **value;
} tool_opt;

/* What a command line is checked against. */
typedef struct tool_args {
  const char *prog; /* "strata", "region-builder": starts every message */
  const char *cmd;  /* the subcommand for messages and hints, or NULL */
  const tool_opt *opts;
  size_t nopts;
  const char **pos; /* room for max_pos positional arguments */
  size_t max_pos;
} tool_args;

enum tool_args_result {
  TOOL_ARGS_OK,      /* *npos positional arguments stored in a->pos */
  TOOL_ARGS_HELP,    /* -h or --help: print the help, exit 0 */
  TOOL_ARGS_VERSION, /* -V or --version: print the version, exit 0 */
  TOOL_ARGS_USAGE,   /* a message was printed: exit 2 */
};

/* Parses argv[1..argc). -h/--help and -V/--version win over everything
 * after them (as soon as they are seen, the rest is not looked at), so that
 * `strata put --help` needs no arguments. Errors: an unknown or ambiguous
 * option, a switch given a value (--json=yes), an option without its value,
 * more than max_pos positional arguments; each is printed with
 * tool_usage_error(). */
enum tool_args_result tool_args_parse(const tool_args *a, int argc, char **argv,
                                      size_t *npos);

/* Prints "PROG: [CMD: ]<message>" (escaped: the arguments are the user's,
 * docs/CLI.md "Escaping") and "Try 'PROG [CMD ]--help'." on stderr, after
 * ending a progress line if one is drawn (tool_progress.h). */
void tool_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tool_vusage_error(const char *prog, const char *cmd, const char *fmt,
                       va_list ap);

/* The log levels the library reads from $STRATA_LOG, for messages. */
#define TOOL_LOG_LEVELS "trace, debug, info, warn, error, off, or 0 to 5"

/* Checks $STRATA_LOG before the tool opens anything: unset or empty is the
 * library's default (WARN). An unknown level is a usage error, printed as
 * "PROG: STRATA_LOG: unknown level 'bogus' (expected one of ...)"; returns
 * false then. (The library itself only warns once and goes on at WARN: an
 * application cannot stop for it, a tool run by hand can.) */
bool tool_check_log_env(const char *prog);

#endif
