/* strata regions STORE: the regions a snapshot of a store sees, in id
 * order, one line (or JSON object) each. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata regions [--json] STORE\n"
    "\n"
    "List the regions of the store in directory STORE in ascending id\n"
    "order, as one snapshot sees them, one per line:\n"
    "  ID<TAB>NAME<TAB>LAYERS<TAB>BYTES<TAB>FILE\n"
    "LAYERS counts the region's layers, BYTES is the size of its file, and\n"
    "FILE its path; a region that exists only as a proto of this process\n"
    "(none, for this command) shows '-' for both. Names and paths are\n"
    "escaped as in 'strata ls'.\n"
    "\n"
    "Options:\n"
    "  --json      print a JSON array of {id, name, file, layers, bytes,\n"
    "              proto, metadata} (metadata: parsed JSON or null)\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened, 2 usage error.\n";

/* The size of the region's file, false when it has none yet. */
static bool file_bytes(const strata_store_region *r, uint64_t *bytes) {
  strata_region_info info;
  if (r->file == NULL || strata_region_info_get(r->file, &info) < 0)
    return false;
  *bytes = info.file_size;
  return true;
}

static json_t *region_json(const strata_store_region *r) {
  uint64_t bytes;
  bool has_file = file_bytes(r, &bytes);
  json_t *o = json_object();
  json_object_set_new(o, "id", cli_json_u64(r->id));
  json_object_set_new(o, "name", cli_json_text(r->name, strlen(r->name)));
  json_object_set_new(o, "file",
                      r->path != NULL ? cli_json_text(r->path, strlen(r->path))
                                      : json_null());
  json_object_set_new(o, "layers", cli_json_u64(r->layer_count));
  json_object_set_new(o, "bytes", has_file ? cli_json_u64(bytes) : json_null());
  json_object_set_new(o, "proto", json_boolean(r->has_proto));
  json_object_set_new(o, "metadata",
                      cli_json_metadata(r->metadata, strlen(r->metadata)));
  return o;
}

static void print_region(const strata_store_region *r) {
  uint64_t bytes;
  printf("%" PRIu64 "\t", r->id);
  cli_print_escaped(stdout, r->name, strlen(r->name));
  printf("\t%" PRIu64 "\t", r->layer_count);
  if (file_bytes(r, &bytes))
    printf("%" PRIu64 "\t", bytes);
  else
    fputs("-\t", stdout);
  if (r->path != NULL)
    cli_print_escaped(stdout, r->path, strlen(r->path));
  else
    fputc('-', stdout);
  fputc('\n', stdout);
}

static int list(strata_store *s, bool as_json) {
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    return cli_fail_lib(rc);
  json_t *json = as_json ? json_array() : NULL;
  uint64_t n = strata_store_region_count(&txn);
  for (uint64_t i = 0; i < n && rc == 0; i++) {
    strata_store_region r;
    rc = strata_store_region_at(&txn, i, &r);
    if (rc == 0 && as_json)
      json_array_append_new(json, region_json(&r));
    else if (rc == 0)
      print_region(&r);
  }
  strata_read_end(&txn); /* the JSON holds copies */
  if (rc < 0) {
    json_decref(json);
    return cli_fail_lib(rc);
  }
  return as_json ? cli_json_print(json) : CLI_EXIT_OK;
}

static int run(int argc, char **argv) {
  bool as_json = false;
  const cli_option opts[] = {{"--json", &as_json, NULL}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_regions, argc, argv, opts, 1, &dir, &code))
    return code;
  strata_store *s = cli_store_open(dir, true);
  code = s == NULL ? CLI_EXIT_FAIL : list(s, as_json);
  strata_store_close(s);
  return code;
}

const cli_command cli_cmd_regions = {
    .name = "regions",
    .synopsis = "[--json] STORE",
    .summary = "list a store's regions: id, name, layers, bytes, file",
    .usage = usage,
    .run = run,
};
