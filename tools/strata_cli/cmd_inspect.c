/* strata inspect FILE: everything the header and index say about a region,
 * as JSON. Content checksums are not recomputed (that is verify's job), so
 * this stays cheap on large regions. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata inspect FILE\n"
    "\n"
    "Print what the header and index of the region FILE say, as JSON:\n"
    "path, file_size, format, region {id, name, metadata}, flags,\n"
    "layer_count, named_count, sections, alignment, checksums and totals;\n"
    "for a delta file also delta {parent, base, depth}, after flags.\n"
    "Header and index checksums are verified when the file is opened;\n"
    "content checksums are not checked (run 'strata verify').\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the file cannot be opened or read, 2 usage error.\n";

/* Header flag bits and their names. Bits the library accepts but this
 * table does not know are shown as "bit N". */
static const struct {
  uint64_t bit;
  const char *name;
} flag_names[] = {
    {STRATA_REGION_DENSE_IDS, "dense_ids"},
    {STRATA_REGION_PACKED_LOCATORS, "packed_locators"},
    {STRATA_REGION_DELTA, "delta"},
};

static json_t *flags_json(uint64_t flags) {
  json_t *names = json_array();
  for (unsigned b = 0; b < 64; b++) {
    uint64_t bit = UINT64_C(1) << b;
    if (!(flags & bit))
      continue;
    const char *name = NULL;
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
      if (flag_names[i].bit == bit)
        name = flag_names[i].name;
    char buf[16];
    if (name == NULL) {
      snprintf(buf, sizeof buf, "bit %u", b);
      name = buf;
    }
    json_array_append_new(names, json_string(name));
  }
  json_t *o = json_object();
  json_object_set_new(o, "value", cli_json_u64(flags));
  json_object_set_new(o, "names", names);
  return o;
}

static json_t *layer_ref(bool any, uint64_t id, uint64_t size) {
  if (!any)
    return json_null();
  json_t *o = json_object();
  json_object_set_new(o, "id", cli_json_u64(id));
  json_object_set_new(o, "size", cli_json_u64(size));
  return o;
}

/* Walks every layer for the totals. Reads the index in the mapping, so it
 * runs under the SIGBUS guard. */
static int totals_json(const strata_region *r, json_t **out) {
  uint64_t total = 0, min_id = 0, min_size = 0, max_id = 0, max_size = 0;
  bool any = false;
  strata_region_iter it;
  strata_layer l;
  int rc;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    total += l.size;
    if (!any || l.size < min_size)
      min_id = l.id, min_size = l.size;
    if (!any || l.size > max_size)
      max_id = l.id, max_size = l.size;
    any = true;
  }
  if (rc < 0)
    return rc;
  json_t *o = json_object();
  json_object_set_new(o, "content_bytes", cli_json_u64(total));
  json_object_set_new(o, "smallest_layer", layer_ref(any, min_id, min_size));
  json_object_set_new(o, "largest_layer", layer_ref(any, max_id, max_size));
  *out = o;
  return 0;
}

static json_t *region_json(const strata_region_info *in) {
  json_t *o = json_object();
  json_object_set_new(o, "id", cli_json_u64(in->id));
  json_object_set_new(o, "name", cli_json_text(in->name, strlen(in->name)));
  json_object_set_new(o, "metadata",
                      cli_json_metadata(in->metadata, strlen(in->metadata)));
  return o;
}

/* A delta file's binding (strata_region_delta()); NULL for other files. */
static json_t *delta_json(const strata_region *r) {
  strata_region_delta_info d;
  if (strata_region_delta(r, &d) != 0)
    return NULL;
  char hex[17];
  json_t *o = json_object();
  json_object_set_new(o, "parent",
                      json_string(cli_hex64(d.parent_checksum, hex)));
  json_object_set_new(o, "base", json_string(cli_hex64(d.base_checksum, hex)));
  json_object_set_new(o, "depth", json_integer(d.depth));
  return o;
}

static json_t *info_json(const strata_region_info *in, json_t *delta,
                         json_t *totals) {
  char hex[17];
  json_t *o = json_object();
  json_object_set_new(o, "path", cli_json_text(in->path, strlen(in->path)));
  json_object_set_new(o, "file_size", cli_json_u64(in->file_size));
  json_t *fmt = json_object();
  json_object_set_new(fmt, "major", json_integer(in->format_major));
  json_object_set_new(fmt, "minor", json_integer(in->format_minor));
  json_object_set_new(o, "format", fmt);
  json_object_set_new(o, "region", region_json(in));
  json_object_set_new(o, "flags", flags_json(in->flags));
  if (delta != NULL) /* delta files only */
    json_object_set_new(o, "delta", delta);
  json_object_set_new(o, "layer_count", cli_json_u64(in->layer_count));
  json_object_set_new(o, "named_count", cli_json_u64(in->named_count));
  json_t *sec = json_object();
  json_object_set_new(sec, "data_offset", cli_json_u64(in->data_offset));
  json_object_set_new(sec, "data_size", cli_json_u64(in->data_size));
  json_object_set_new(sec, "index_offset", cli_json_u64(in->index_offset));
  json_object_set_new(o, "sections", sec);
  json_object_set_new(o, "alignment", json_integer(in->data_align));
  json_t *sums = json_object();
  json_object_set_new(sums, "header",
                      json_string(cli_hex64(in->header_checksum, hex)));
  json_object_set_new(sums, "index",
                      json_string(cli_hex64(in->index_checksum, hex)));
  /* strata_region_open(STRATA_OPEN_CHECK_INDEX) refuses a file whose
   * header or index checksum does not match, so an open region has both
   * intact. */
  json_object_set_new(sums, "header_ok", json_true());
  json_object_set_new(sums, "index_ok", json_true());
  json_object_set_new(sums, "content",
                      json_string("not checked (run strata verify)"));
  json_object_set_new(o, "checksums", sums);
  json_object_set_new(o, "totals", totals);
  return o;
}

static int run(int argc, char **argv) {
  const char *path;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_inspect, argc, argv, NULL, 0, &path, &code))
    return code;

  strata_region *volatile r = NULL;
  if (CLI_BUS_FAULTED()) {
    strata_region_close(r);
    return cli_fail("%s: %s", path, CLI_BUS_MESSAGE);
  }
  /* Eager, so that index_ok below is a fact: the index checksum and every
   * entry are checked at open. */
  r = cli_open_region_guarded(path, STRATA_OPEN_CHECK_INDEX);
  if (r == NULL)
    return CLI_EXIT_FAIL;
  strata_region_info info;
  json_t *totals = NULL;
  int rc = strata_region_info_get(r, &info);
  if (rc == 0)
    rc = totals_json(r, &totals);
  json_t *out = rc == 0 ? info_json(&info, delta_json(r), totals) : NULL;
  cli_bus_disarm();
  /* Report before closing: the detail is valid until the next Strata call. */
  code = rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
  strata_region_close(r); /* `out` holds copies of all it needs */
  return rc < 0 ? code : cli_json_print(out);
}

const cli_command cli_cmd_inspect = {
    .name = "inspect",
    .synopsis = "FILE",
    .summary = "show a region's header, index facts and totals as JSON",
    .usage = usage,
    .run = run,
};
