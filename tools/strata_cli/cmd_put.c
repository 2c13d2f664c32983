/* strata put STORE REGION LAYER FILE|-: adds or replaces one layer of a
 * region and crystallizes it, so that the change outlives the command. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata put [OPTIONS] STORE REGION LAYER FILE|-\n"
    "\n"
    "Add or replace layer LAYER of region REGION in the store in directory\n"
    "STORE, with the content of FILE, or of standard input for '-'. REGION "
    "and\n"
    "LAYER are each an id when all decimal digits (any u64), a name "
    "otherwise.\n"
    "A LAYER given by name replaces the layer of that name, which must exist\n"
    "(a new layer is added by its id, with --name). Then crystallize the\n"
    "region: its file is rewritten (a new file renamed over the old one), so\n"
    "the change is durable when the command returns and every put publishes a\n"
    "new version of the region file.\n"
    "\n"
    "A layer that is replaced keeps its name and metadata unless --name or\n"
    "--metadata says otherwise; a new layer has neither unless given.\n"
    "\n"
    "Options:\n"
    "  --name NAME            the layer's name ('' for none)\n"
    "  --metadata JSON        the layer's metadata ('' for none)\n"
    "  --create NAME          create REGION, a new region with that (decimal)\n"
    "                         id and name NAME; it must not exist yet\n"
    "  --region-metadata JSON with --create: the new region's metadata\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store, region or FILE cannot be used, no layer\n"
    "is named LAYER, another process writes to the store ('store is locked by\n"
    "pid N'), the name or metadata is refused, or writing the region failed;\n"
    "2 usage error.\n";

/* The name and metadata the layer ends up with: the options' when given
 * ('' meaning none), else the replaced layer's (copied: the snapshot they
 * come from ends before the put). */
typedef struct put_attrs {
  char *name, *metadata;
} put_attrs;

/* Copies len bytes of s into *out, or leaves *out NULL when s is NULL.
 * Returns false when out of memory. */
static bool copy_attr(const char *s, size_t len, char **out) {
  if (s == NULL)
    return true;
  *out = strndup(s, len);
  return *out != NULL;
}

/* Finds the layer the put replaces, in a snapshot taken once the proto
 * is open (so under the writer lock, over the file as it is on disk now):
 * *layer_id becomes its id (LAYER's own id when given as one and new), and
 * out the name and metadata it ends up with. */
static int choose_attrs(strata_store *s, const char *dir, uint64_t region_id,
                        const cli_key *layer, const char *name_opt,
                        const char *meta_opt, uint64_t *layer_id,
                        put_attrs *out) {
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    return cli_fail_lib(rc);
  strata_layer old;
  int code = CLI_EXIT_OK;
  bool found = cli_get_layer(&txn, region_id, layer, &old) == 0;
  if (!found && layer->by_name) {
    /* Only an existing layer is replaced by name: report it as rm does. */
    strata_store_region r;
    const cli_key by_id = {.by_name = false, .id = region_id};
    code = cli_resolve_region(&txn, dir, &by_id, &r);
    if (code == CLI_EXIT_OK)
      code = cli_resolve_layer(&txn, dir, &r, layer, &old);
  }
  *layer_id = found ? old.id : layer->id;
  bool ok = true;
  if (code == CLI_EXIT_OK) {
    if (name_opt != NULL && name_opt[0] != '\0')
      ok = copy_attr(name_opt, strlen(name_opt), &out->name);
    else if (name_opt == NULL && found)
      ok = copy_attr(old.name, old.name_len, &out->name);
    if (meta_opt != NULL && meta_opt[0] != '\0')
      ok = ok && copy_attr(meta_opt, strlen(meta_opt), &out->metadata);
    else if (meta_opt == NULL && found)
      ok = ok && copy_attr(old.metadata, old.metadata_len, &out->metadata);
  }
  strata_read_end(&txn);
  if (code == CLI_EXIT_OK && !ok)
    code = cli_fail("out of memory");
  return code;
}

static int put(strata_store *s, const char *dir, const cli_key *region,
               const cli_key *layer, const char *name_opt, const char *meta_opt,
               const char *create, const char *region_meta, const char *data,
               size_t size) {
  uint64_t region_id = region->id;
  if (create == NULL) {
    /* The id of a region given by name. The proto below is built on the
     * directory as it is once the lock is held. */
    int code = cli_region_id(s, dir, region, &region_id);
    if (code != CLI_EXIT_OK)
      return code;
  }
  strata_proto *p;
  int rc = cli_store_proto(s, region_id, create, region_meta, &p);
  if (rc < 0)
    return cli_fail_lib(rc);
  put_attrs attrs = {NULL, NULL};
  uint64_t layer_id = layer->id;
  int code = choose_attrs(s, dir, region_id, layer, name_opt, meta_opt,
                          &layer_id, &attrs);
  if (code == CLI_EXIT_OK) {
    rc = strata_proto_put(p, layer_id, attrs.name,
                          attrs.name ? strlen(attrs.name) : 0, attrs.metadata,
                          data, size);
    if (rc == 0)
      rc = strata_crystallize(s, region_id);
    if (rc < 0)
      code = cli_fail_lib(rc);
  }
  free(attrs.name);
  free(attrs.metadata);
  return code;
}

static int run(int argc, char **argv) {
  const char *name = NULL, *metadata = NULL, *create = NULL,
             *region_meta = NULL;
  const cli_option opts[] = {
      {"--name", NULL, &name},
      {"--metadata", NULL, &metadata},
      {"--create", NULL, &create},
      {"--region-metadata", NULL, &region_meta},
  };
  const char *pos[4];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_put, argc, argv, opts, 4, pos, 4, 4, &npos,
                      &code))
    return code;
  cli_key region, layer;
  if (!cli_parse_region(&cli_cmd_put, pos[1], &region, &code) ||
      !cli_parse_layer(&cli_cmd_put, pos[2], &layer, &code))
    return code;
  if (create != NULL && region.by_name)
    return cli_usage_error(&cli_cmd_put,
                           "with --create, REGION is the new region's id, "
                           "not '%s'",
                           region.text);
  if (region_meta != NULL && create == NULL)
    return cli_usage_error(&cli_cmd_put,
                           "--region-metadata needs --create NAME");

  char *data;
  size_t size;
  if (cli_read_input(pos[3], &data, &size) != 0)
    return CLI_EXIT_FAIL;
  strata_store *s = cli_store_open(pos[0], false);
  code = s == NULL ? CLI_EXIT_FAIL
                   : put(s, pos[0], &region, &layer, name, metadata, create,
                         region_meta, data, size);
  strata_store_close(s);
  free(data);
  return code;
}

const cli_command cli_cmd_put = {
    .name = "put",
    .synopsis = "[OPTIONS] STORE REGION LAYER FILE|-",
    .summary = "add or replace a layer from a file or stdin, then crystallize",
    .usage = usage,
    .run = run,
};
