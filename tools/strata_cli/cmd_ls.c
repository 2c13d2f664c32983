/* strata ls FILE: one line (or JSON object) per layer, in id order.
 * strata ls STORE: one line (or JSON object) per region, with its delta
 * files' depth and tombstones (docs/ARCHITECTURE.md, "Deltas"). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata ls [--json] FILE\n"
    "       strata ls [--json] STORE\n"
    "\n"
    "List the layers of the region FILE in ascending id order, one per line:\n"
    "  ID<TAB>SIZE<TAB>NAME\n"
    "NAME is '-' for a layer without a name. In names, a backslash is written\n"
    "as \\\\ and control characters as \\xHH, so that every layer stays on\n"
    "one line. In a delta file each line has a fourth column, KIND: 'layer',\n"
    "or 'tombstone' for the delta's record that the layer with that id was\n"
    "removed (size 0).\n"
    "\n"
    "With a STORE directory, list its regions in ascending id order, as one\n"
    "snapshot sees them, one per line:\n"
    "  ID<TAB>NAME<TAB>LAYERS<TAB>DELTAS<TAB>TOMBSTONES\n"
    "LAYERS counts the layers the region serves, DELTAS the delta files\n"
    "served over its base file (its depth; 0 once compacted), TOMBSTONES the\n"
    "removals those delta files hold.\n"
    "\n"
    "Options:\n"
    "  --json      print a JSON array of {id, name, size, checksum, metadata}\n"
    "              (checksum: XXH3-64 in hex; metadata: parsed JSON or null;\n"
    "              a delta file's layers also have tombstone: true or false);\n"
    "              for a STORE, of {id, name, layers, depth, tombstones,\n"
    "              file, deltas} (deltas: the delta files' paths, depth 1\n"
    "              first)\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the file or store cannot be opened or read, 2\n"
    "usage error.\n";

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
  strata_region_delta_info d;
  /* A delta file's tombstones are entries of size 0: marked, so that they
   * do not read as empty layers. */
  bool delta = strata_region_delta(r, &d) == 0;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    bool tomb = (l.flags & STRATA_LAYER_TOMBSTONE) != 0;
    if (json != NULL) {
      json_t *o = cli_json_layer(&l);
      if (delta)
        json_object_set_new(o, "tombstone", json_boolean(tomb));
      json_array_append_new(json, o);
      continue;
    }
    printf("%" PRIu64 "\t%" PRIu64 "\t", l.id, l.size);
    print_name(&l);
    if (delta)
      fputs(tomb ? "\ttombstone" : "\tlayer", stdout);
    fputc('\n', stdout);
  }
  return rc;
}

/* One region of a store: its line or JSON object, with the depth and the
 * tombstones of its delta files. Reads the delta files' index: runs under
 * the SIGBUS guard. */
static int list_region(const strata_txn *txn, uint64_t index, json_t *json) {
  strata_store_region r;
  int rc = strata_store_region_at(txn, index, &r);
  if (rc < 0)
    return rc;
  json_t *paths = json != NULL ? json_array() : NULL;
  uint64_t tombstones = 0;
  uint32_t depth = 0;
  const strata_region *d;
  for (; strata_store_region_delta_at(txn, index, depth, &d) == 0; depth++) {
    strata_region_iter it;
    strata_layer l;
    strata_region_iter_init(d, &it);
    while ((rc = strata_region_next(&it, &l)) > 0)
      tombstones += (l.flags & STRATA_LAYER_TOMBSTONE) != 0;
    if (rc < 0) {
      json_decref(paths);
      return rc;
    }
    strata_region_info info;
    strata_region_info_get(d, &info);
    if (paths != NULL)
      json_array_append_new(paths, cli_json_text(info.path, strlen(info.path)));
  }
  if (json == NULL) {
    printf("%" PRIu64 "\t", r.id);
    cli_print_escaped(stdout, r.name, strlen(r.name));
    printf("\t%" PRIu64 "\t%" PRIu32 "\t%" PRIu64 "\n", r.layer_count, depth,
           tombstones);
    return 0;
  }
  json_t *o = json_object();
  json_object_set_new(o, "id", cli_json_u64(r.id));
  json_object_set_new(o, "name", cli_json_text(r.name, strlen(r.name)));
  json_object_set_new(o, "layers", cli_json_u64(r.layer_count));
  json_object_set_new(o, "depth", json_integer(depth));
  json_object_set_new(o, "tombstones", cli_json_u64(tombstones));
  json_object_set_new(o, "file",
                      r.path != NULL ? cli_json_text(r.path, strlen(r.path))
                                     : json_null());
  json_object_set_new(o, "deltas", paths);
  json_array_append_new(json, o);
  return 0;
}

static int list_store(const char *dir, bool as_json) {
  strata_store *volatile s = cli_store_open(dir, true);
  if (s == NULL)
    return CLI_EXIT_FAIL;
  static strata_txn txn; /* static: survives the siglongjmp unchanged */
  json_t *volatile json = NULL;
  if (CLI_BUS_FAULTED()) {
    fflush(stdout); /* what was listed before the fault stays listed */
    json_decref(json);
    strata_read_end(&txn);
    strata_store_close(s);
    return cli_fail("%s: %s", dir, CLI_BUS_MESSAGE);
  }
  int rc = strata_read_begin(s, &txn);
  if (rc < 0) {
    strata_store_close(s);
    return cli_fail_lib(rc);
  }
  if (as_json)
    json = json_array();
  cli_bus_arm();
  uint64_t n = strata_store_region_count(&txn);
  for (uint64_t i = 0; i < n && rc == 0; i++)
    rc = list_region(&txn, i, json);
  cli_bus_disarm();
  strata_read_end(&txn); /* the JSON holds copies */
  strata_store_close(s);
  if (rc < 0) {
    json_decref(json);
    return cli_fail_lib(rc);
  }
  return as_json ? cli_json_print(json) : CLI_EXIT_OK;
}

static int run(int argc, char **argv) {
  bool as_json = false;
  const cli_option opts[] = {{"--json", &as_json, NULL}};
  const char *path;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_ls, argc, argv, opts, 1, &path, &code))
    return code;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return list_store(path, as_json);

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
    .synopsis = "[--json] FILE|STORE",
    .summary = "list the layers (id, size, name), or a store's regions with "
               "their delta depth and tombstones",
    .usage = usage,
    .run = run,
};
