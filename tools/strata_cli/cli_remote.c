/* What the remote commands share (push, pull, follow, remote): the
 * POOL/NAME argument, their numeric options, the strata_remote_config they
 * build, and opening a store or a connection with it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_parse_remote(const cli_command *cmd, const char *what, const char *arg,
                      cli_remote_arg *out, int *exit_code) {
  out->pool = out->name = NULL;
  if (arg == NULL) {
    *exit_code = cli_usage_error(cmd, "%s POOL/NAME is required", what);
    return false;
  }
  const char *slash = strchr(arg, '/');
  const char *why = NULL;
  if (slash == NULL)
    why = "no '/'";
  else if (strchr(slash + 1, '/') != NULL)
    why = "more than one '/'";
  else if (slash == arg)
    why = "the pool is empty";
  else if (slash[1] == '\0')
    why = "the name is empty";
  if (why != NULL) {
    *exit_code =
        cli_usage_error(cmd, "%s '%s' is not POOL/NAME (%s)", what, arg, why);
    return false;
  }
  out->pool = strndup(arg, (size_t)(slash - arg));
  out->name = strdup(slash + 1);
  if (out->pool == NULL || out->name == NULL) {
    cli_remote_arg_free(out);
    *exit_code = cli_fail("out of memory");
    return false;
  }
  return true;
}

void cli_remote_arg_free(cli_remote_arg *r) {
  free(r->pool);
  free(r->name);
  r->pool = r->name = NULL;
}

bool cli_parse_u32(const cli_command *cmd, const char *option, const char *arg,
                   bool size_suffix, uint32_t *out, int *exit_code) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  unsigned long long unit = 1;
  if (size_suffix && end != arg && end[0] != '\0' && end[1] == '\0') {
    if (*end == 'K' || *end == 'k')
      unit = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
      unit = 1ull << 20, end++;
  }
  /* strtoull takes a sign and leading spaces, which a count should not. */
  if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 ||
      v > UINT32_MAX / unit) {
    *exit_code = cli_usage_error(
        cmd, "%s '%s' is not a number from 0 to %u%s", option, arg, UINT32_MAX,
        size_suffix ? " (a K or M suffix multiplies by 1024 or 1048576)" : "");
    return false;
  }
  *out = (uint32_t)(v * unit);
  return true;
}

void cli_remote_config(strata_remote_config *c, int role,
                       const cli_remote_arg *r, const char *conf) {
  memset(c, 0, sizeof *c);
  c->role = role;
  c->pool = r->pool;
  c->name = r->name;
  c->conf = conf;
}

strata_store *cli_store_open_remote(const char *dir,
                                    const strata_remote_config *remote,
                                    unsigned store_flags) {
  strata_store_config config;
  cli_store_config_init(&config);
  config.flags |= store_flags;
  config.remote = *remote;
  return cli_store_open_config(dir, &config);
}

strata_remote *cli_remote_connect(const cli_remote_arg *r, const char *conf) {
  strata_remote_config c;
  cli_remote_config(&c, STRATA_REMOTE_NONE, r, conf);
  strata_remote *remote = NULL;
  int rc = strata_remote_connect(&c, &remote);
  if (rc < 0) {
    cli_fail_lib(rc);
    return NULL;
  }
  return remote;
}

int cli_remote_stats(strata_store *s, strata_remote_stats *st) {
  memset(st, 0, sizeof *st);
  int rc = strata_remote_stats_get(s, st);
  return rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
}

int cli_store_regions(strata_store *s, uint64_t *n) {
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    return cli_fail_lib(rc);
  *n = strata_store_region_count(&txn);
  strata_read_end(&txn);
  return CLI_EXIT_OK;
}

int cli_print_serving(strata_store *s, const cli_remote_arg *r) {
  strata_remote_stats st;
  uint64_t regions = 0;
  int code = cli_remote_stats(s, &st);
  if (code == CLI_EXIT_OK)
    code = cli_store_regions(s, &regions);
  if (code != CLI_EXIT_OK)
    return code;
  cli_print_line(stdout,
                 "%s/%s: serving version %" PRIu64 " (%" PRIu64
                 " regions, %" PRIu64 " bytes fetched)",
                 r->pool, r->name, st.version_served, regions,
                 st.bytes_fetched);
  return CLI_EXIT_OK;
}
