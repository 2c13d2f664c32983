/* Command-line parsing shared by the tools (tool_args.h). */
#include "tool_args.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"
#include "tool_escape.h"
#include "tool_progress.h"

/* getopt_long's `val` for an option without a short name: above every
 * char, so that the value names the option (for the messages). */
#define LONG_ONLY_BASE 256
/* The options every command line accepts, after the caller's. */
#define N_BUILTIN 2

void tool_vusage_error(const char *prog, const char *cmd, const char *fmt,
                       va_list ap) {
  tool_progress_break();
  fprintf(stderr, "%s: ", prog);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd);
  tool_vfprintf_escaped(stderr, fmt, ap);
  fprintf(stderr, "\nTry '%s %s%s--help'.\n", prog, cmd ? cmd : "",
          cmd ? " " : "");
}

void tool_usage_error(const char *prog, const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tool_vusage_error(prog, cmd, fmt, ap);
  va_end(ap);
}

/* The options of `a` plus -h/--help and -V/--version, as getopt wants them:
 * the long table (NULL-terminated) and the short string, which starts with
 * "-:" (RETURN_IN_ORDER: positional arguments come back as option 1, in
 * order; ':' reports a missing value apart from an unknown option). */
typedef struct getopt_tables {
  struct option *longs;
  char *shorts;
  const tool_opt *all; /* the caller's options then the built-in ones */
  size_t n;
} getopt_tables;

static const tool_opt builtin[N_BUILTIN] = {
    {"help", 'h', NULL, NULL},
    {"version", 'V', NULL, NULL},
};

static int opt_val(const tool_opt *o, size_t i) {
  return o->short_name ? (unsigned char)o->short_name : LONG_ONLY_BASE + (int)i;
}

static bool make_tables(const tool_args *a, getopt_tables *t) {
  t->n = a->nopts + N_BUILTIN;
  t->longs = calloc(t->n + 1, sizeof *t->longs);
  t->shorts = calloc(2 * t->n + 3, 1);
  tool_opt *all = calloc(t->n, sizeof *all);
  t->all = all;
  if (t->longs == NULL || t->shorts == NULL || all == NULL)
    return false;
  for (size_t i = 0; i < t->n; i++)
    all[i] = i < a->nopts ? a->opts[i] : builtin[i - a->nopts];
  char *s = t->shorts;
  *s++ = '-';
  *s++ = ':';
  for (size_t i = 0; i < t->n; i++) {
    const tool_opt *o = &all[i];
    bool takes_value = o->value != NULL;
    t->longs[i] =
        (struct option){o->name, takes_value ? required_argument : no_argument,
                        NULL, opt_val(o, i)};
    if (o->short_name) {
      *s++ = o->short_name;
      if (takes_value)
        *s++ = ':';
    }
  }
  return true;
}

static void free_tables(getopt_tables *t) {
  free(t->longs);
  free(t->shorts);
  free((void *)t->all);
}

/* The option whose getopt value is `val`, or NULL. */
static const tool_opt *by_val(const getopt_tables *t, int val) {
  for (size_t i = 0; i < t->n; i++)
    if (opt_val(&t->all[i], i) == val)
      return &t->all[i];
  return NULL;
}

/* Prints the message `fmt` about option `o`, named by its long name. */
static void say(const tool_args *a, const char *fmt, const tool_opt *o) {
  char name[64];
  snprintf(name, sizeof name, "--%s", o->name);
  tool_usage_error(a->prog, a->cmd, fmt, name);
}

/* Reports the argument getopt refused ('?'). `arg` is the argument as
 * given, argv[optind - 1] (getopt has stepped past it). */
static void report_refused(const getopt_tables *t, const tool_args *a,
                           const char *arg, int optopt_val) {
  if (optopt_val != 0 && strncmp(arg, "--", 2) == 0) {
    const tool_opt *o = by_val(t, optopt_val);
    if (o != NULL) { /* a switch given a value: --json=yes */
      say(a, "option '%s' takes no value", o);
      return;
    }
  }
  if (optopt_val != 0 && strncmp(arg, "--", 2) != 0) {
    tool_usage_error(a->prog, a->cmd, "unknown option '-%c'", optopt_val);
    return;
  }
  /* A long option that matched none, or more than one by prefix. */
  const char *name = arg + 2;
  size_t len = strcspn(name, "=");
  size_t matches = 0;
  for (size_t i = 0; i < t->n; i++)
    if (strncmp(t->all[i].name, name, len) == 0)
      matches++;
  if (matches > 1)
    tool_usage_error(a->prog, a->cmd, "option '--%.*s' is ambiguous", (int)len,
                     name);
  else
    tool_usage_error(a->prog, a->cmd, "unknown option '--%.*s'", (int)len,
                     name);
}

enum tool_args_result tool_args_parse(const tool_args *a, int argc, char **argv,
                                      size_t *npos) {
  getopt_tables t = {0};
  size_t n = 0;
  enum tool_args_result res = TOOL_ARGS_OK;
  if (!make_tables(a, &t)) {
    free_tables(&t);
    tool_usage_error(a->prog, a->cmd, "out of memory");
    return TOOL_ARGS_USAGE;
  }
  opterr = 0;
  optind = 0; /* glibc: start afresh, forgetting any earlier argv */
  int c;
  while (res == TOOL_ARGS_OK &&
         (c = getopt_long(argc, argv, t.shorts, t.longs, NULL)) != -1) {
    const tool_opt *o;
    if (c == 1) { /* a positional argument, in order */
      if (n == a->max_pos) {
        tool_usage_error(a->prog, a->cmd, "unexpected argument '%s'", optarg);
        res = TOOL_ARGS_USAGE;
      } else {
        a->pos[n++] = optarg;
      }
    } else if (c == 'h') {
      res = TOOL_ARGS_HELP;
    } else if (c == 'V') {
      res = TOOL_ARGS_VERSION;
    } else if (c == ':') {
      o = by_val(&t, optopt);
      if (o != NULL && strncmp(argv[optind - 1], "--", 2) != 0)
        tool_usage_error(a->prog, a->cmd, "option '-%c' needs a value",
                         o->short_name);
      else if (o != NULL)
        say(a, "option '%s' needs a value", o);
      else
        tool_usage_error(a->prog, a->cmd, "an option needs a value");
      res = TOOL_ARGS_USAGE;
    } else if (c == '?') {
      report_refused(&t, a, argv[optind - 1], optopt);
      res = TOOL_ARGS_USAGE;
    } else if ((o = by_val(&t, c)) != NULL) {
      if (o->flag != NULL)
        *o->flag = true;
      else
        *o->value = optarg;
    }
  }
  /* After "--", getopt leaves the rest to us. */
  for (int i = optind; res == TOOL_ARGS_OK && i < argc; i++) {
    if (n == a->max_pos) {
      tool_usage_error(a->prog, a->cmd, "unexpected argument '%s'", argv[i]);
      res = TOOL_ARGS_USAGE;
    } else {
      a->pos[n++] = argv[i];
    }
  }
  free_tables(&t);
  *npos = n;
  return res;
}

bool tool_check_log_env(const char *prog) {
  const char *env = getenv("STRATA_LOG");
  if (env == NULL || env[0] == '\0' || strata_log_level_parse(env) >= 0)
    return true;
  tool_progress_break();
  fprintf(stderr, "%s: STRATA_LOG: unknown level '", prog);
  tool_fputs_escaped(stderr, env, strlen(env));
  fputs("' (expected one of " TOOL_LOG_LEVELS ")\n", stderr);
  return false;
}
