/* What the store subcommands share: opening a store, parsing REGION and
 * LAYER arguments, resolving them in a snapshot, and taking the writer lock
 * for the commands that change a region. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_parse_key(const cli_command *cmd, const char *what, const char *arg,
                   bool id_only, cli_key *key, int *exit_code) {
  key->text = arg;
  key->id = 0;
  key->by_name = arg[0] == '\0' || strspn(arg, "0123456789") != strlen(arg);
  if (key->by_name && arg[0] == '\0') {
    *exit_code = cli_usage_error(cmd, "empty %s", what);
    return false;
  }
  if (key->by_name && id_only) {
    *exit_code =
        cli_usage_error(cmd, "%s '%s' is not a decimal number", what, arg);
    return false;
  }
  if (key->by_name)
    return true;
  errno = 0;
  unsigned long long v = strtoull(arg, NULL, 10);
  if (errno == ERANGE) { /* unsigned long long is 64 bits on Linux */
    *exit_code =
        cli_usage_error(cmd, "%s '%s' is larger than 2^64-1", what, arg);
    return false;
  }
  key->id = (uint64_t)v;
  return true;
}

void cli_store_config_init(strata_store_config *config) {
  /* The defaults: log lines at the level STRATA_LOG names (WARN when it is
   * unset) go to standard error, so a region file the store skips is
   * reported without making the command fail. */
  strata_store_config_init(config);
  /* The tool never registers in the shared view: its commands are brief,
   * and stats, metrics, dump-state and top report the other processes'
   * figures, which its own zeros would only pad. */
  config->shared_view = 0;
}

strata_store *cli_store_open_config(const char *dir,
                                    const strata_store_config *config) {
  strata_store *s = NULL;
  int rc = strata_store_open(dir, config, &s);
  if (rc < 0) {
    cli_fail_lib(rc);
    return NULL;
  }
  return s;
}

strata_store *cli_store_open(const char *dir, bool read_only) {
  strata_store_config config;
  cli_store_config_init(&config);
  if (read_only)
    config.flags |= STRATA_STORE_READ_ONLY;
  return cli_store_open_config(dir, &config);
}

/* Positions run in ascending id order: a binary search over them. The API
 * has no lookup of a region by id, only by position and by name. */
static bool region_by_id(const strata_txn *txn, uint64_t id,
                         strata_store_region *out) {
  uint64_t lo = 0, hi = strata_store_region_count(txn);
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (strata_store_region_at(txn, mid, out) < 0)
      return false;
    if (out->id == id)
      return true;
    if (out->id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

bool cli_parse_region(const cli_command *cmd, const char *arg, cli_key *key,
                      int *exit_code) {
  return cli_parse_key(cmd, "region id", arg, false, key, exit_code);
}

bool cli_parse_layer(const cli_command *cmd, const char *arg, cli_key *key,
                     int *exit_code) {
  return cli_parse_key(cmd, "layer id", arg, false, key, exit_code);
}

/* A name argument given on the command line is NUL-terminated; the API
 * takes pointer + length (<strata.h>, "Conventions"). */
static int find_region(const strata_txn *txn, const char *name, uint64_t *id) {
  return strata_find_region(txn, name, strlen(name), id);
}

int cli_get_layer(const strata_txn *txn, uint64_t region_id, const cli_key *key,
                  strata_layer *out) {
  if (key->by_name)
    return strata_get_by_name(txn, region_id, key->text, strlen(key->text),
                              out);
  return strata_get(txn, region_id, key->id, out);
}

int cli_resolve_region(const strata_txn *txn, const char *dir,
                       const cli_key *key, strata_store_region *out) {
  uint64_t id = key->id;
  if (key->by_name && find_region(txn, key->text, &id) < 0)
    return cli_fail("%s: no region named '%s'", dir, key->text);
  if (region_by_id(txn, id, out))
    return CLI_EXIT_OK;
  /* By name, the id came from the same snapshot: only an id can miss. */
  return cli_fail("%s: no region with id %" PRIu64, dir, id);
}

int cli_resolve_layer(const strata_txn *txn, const char *dir,
                      const strata_store_region *region, const cli_key *key,
                      strata_layer *out) {
  int rc = cli_get_layer(txn, region->id, key, out);
  if (rc == 0)
    return CLI_EXIT_OK;
  if (rc != STRATA_E_NOT_FOUND)
    return cli_fail_lib(rc);
  if (key->by_name)
    return cli_fail("%s: region %s (id %" PRIu64 "): no layer named '%s'", dir,
                    region->name, region->id, key->text);
  return cli_fail("%s: region %s (id %" PRIu64 "): no layer with id %" PRIu64,
                  dir, region->name, region->id, key->id);
}

int cli_store_proto(strata_store *s, uint64_t region_id,
                    const char *create_name, const char *create_metadata,
                    strata_proto **out) {
  /* The first write call takes the store's writer lock and refreshes the
   * store, so the proto starts from the region file as it is on disk now
   * (another writer may have crystallized since this process opened it). */
  if (create_name != NULL)
    return strata_proto_create(s, region_id, create_name, strlen(create_name),
                               create_metadata, out);
  return strata_proto_open(s, region_id, out);
}

int cli_region_id(strata_store *s, const char *dir, const cli_key *region,
                  uint64_t *id) {
  strata_txn txn;
  strata_store_region r;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    return cli_fail_lib(rc);
  int code = cli_resolve_region(&txn, dir, region, &r);
  *id = r.id;
  strata_read_end(&txn);
  return code;
}
