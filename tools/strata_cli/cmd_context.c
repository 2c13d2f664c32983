/* strata context STORE REGION:LAYER...: the layers of a path through a
 * store, read in one snapshot and rendered as text blocks for a prompt (the
 * format is specified in docs/CLI.md), or as JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata context [--json] STORE REGION:LAYER...\n"
    "\n"
    "Print the given layers of the store in directory STORE, in the order\n"
    "given, all read from one snapshot. REGION and LAYER are each an id when\n"
    "all decimal digits (any u64), a name otherwise. The first ':'\n"
    "separates them.\n"
    "\n"
    "Each layer is one block:\n"
    "  === region NAME (id N) / layer NAME (id M) ===\n"
    "  region metadata: JSON        (when the region has metadata)\n"
    "  keywords: A, B               (metadata \"keywords\" of the layer)\n"
    "  frequency: F                 (metadata \"frequency\" of the layer)\n"
    "  <blank line>\n"
    "  CONTENT                      (text; or [binary, N bytes]; [empty])\n"
    "  <blank line>\n"
    "A layer without a name is shown as 'layer M'. See docs/CLI.md.\n"
    "\n"
    "Options:\n"
    "  --json      print a JSON array of {region_id, region, region_metadata,\n"
    "              layer_id, layer, metadata, keywords, frequency, size,\n"
    "              encoding, content}; encoding is \"utf-8\" or \"base64\"\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened or a region or layer\n"
    "does not exist, 2 usage error.\n";

/* One REGION:LAYER argument, parsed. */
typedef struct ctx_ref {
  char *copy; /* the argument, split at its first ':' */
  cli_key region, layer;
} ctx_ref;

/* What a block shows of a layer, found in the snapshot. */
typedef struct ctx_item {
  strata_store_region region;
  strata_layer layer;
} ctx_item;

static bool parse_ref(const char *arg, ctx_ref *ref, int *code) {
  const char *colon = strchr(arg, ':');
  if (colon == NULL || colon == arg || colon[1] == '\0') {
    *code = cli_usage_error(&cli_cmd_context,
                            "'%s' is not REGION:LAYER (an id or a name on "
                            "each side of the first ':')",
                            arg);
    return false;
  }
  ref->copy = strdup(arg);
  if (ref->copy == NULL) {
    *code = cli_fail("out of memory");
    return false;
  }
  ref->copy[colon - arg] = '\0';
  return cli_parse_region(&cli_cmd_context, ref->copy, &ref->region, code) &&
         cli_parse_layer(&cli_cmd_context, ref->copy + (colon - arg) + 1,
                         &ref->layer, code);
}

/* Resolves every reference in the snapshot: regions first, then the layers
 * given by id in one strata_get_many() call and those given by name in one
 * strata_get_many_by_name() call. On a miss, reports the first missing one
 * in argument order. */
static int lookup(const strata_txn *txn, const char *dir, const ctx_ref *refs,
                  size_t n, ctx_item *items) {
  for (size_t i = 0; i < n; i++) {
    int code = cli_resolve_region(txn, dir, &refs[i].region, &items[i].region);
    if (code != CLI_EXIT_OK)
      return code;
  }
  strata_layer_ref *by_id = calloc(n, sizeof *by_id);
  strata_layer_name_ref *by_name = calloc(n, sizeof *by_name);
  strata_layer *found = calloc(n, sizeof *found);
  strata_layer *found_named = calloc(n, sizeof *found_named);
  if (by_id == NULL || by_name == NULL || found == NULL ||
      found_named == NULL) {
    free(by_id);
    free(by_name);
    free(found);
    free(found_named);
    return cli_fail("out of memory");
  }
  size_t k = 0, kn = 0;
  for (size_t i = 0; i < n; i++) {
    const char *region = items[i].region.name, *layer = refs[i].layer.text;
    if (refs[i].layer.by_name)
      by_name[kn++] =
          (strata_layer_name_ref){region, strlen(region), layer, strlen(layer)};
    else
      by_id[k++] = (strata_layer_ref){items[i].region.id, refs[i].layer.id};
  }
  strata_get_many(txn, by_id, k, found);
  strata_get_many_by_name(txn, by_name, kn, found_named);
  k = kn = 0;
  int code = CLI_EXIT_OK;
  for (size_t i = 0; i < n && code == CLI_EXIT_OK; i++) {
    strata_layer *l = refs[i].layer.by_name ? &found_named[kn++] : &found[k++];
    items[i].layer = *l;
    /* Looking it up again names the miss the way every command does. */
    if (l->data == NULL)
      code = cli_resolve_layer(txn, dir, &items[i].region, &refs[i].layer,
                               &items[i].layer);
  }
  free(by_id);
  free(by_name);
  free(found);
  free(found_named);
  return code;
}

/* ---- what the layer's metadata says ------------------------------------- */

/* The string elements of metadata.keywords when that is an array, or NULL.
 * Borrowed from `meta`. */
static json_t *keywords_of(json_t *meta) {
  json_t *kw = json_object_get(meta, "keywords"); /* NULL if no object */
  return json_is_array(kw) ? kw : NULL;
}

static json_t *frequency_of(json_t *meta) {
  json_t *f = json_object_get(meta, "frequency");
  return json_is_number(f) ? f : NULL;
}

/* ---- text ---------------------------------------------------------------- */

static void print_metadata_line(const char *label, const char *text) {
  if (text == NULL || text[0] == '\0')
    return;
  /* Re-serialized compactly, so that metadata written over several lines
   * stays on one. */
  json_t *v = cli_json_metadata(text, strlen(text));
  char *one_line =
      json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
  json_decref(v);
  if (one_line != NULL) {
    /* jansson writes C0 controls as \u00NN but C1 and bidirectional
     * controls as they are: the line is escaped like names. */
    printf("%s: ", label);
    cli_print_escaped(stdout, one_line, strlen(one_line));
    fputc('\n', stdout);
    free(one_line);
  }
}

static void print_block(const ctx_item *it) {
  const strata_store_region *r = &it->region;
  const strata_layer *l = &it->layer;
  fputs("=== region ", stdout);
  cli_print_escaped(stdout, r->name, strlen(r->name));
  printf(" (id %" PRIu64 ") / layer ", r->id);
  if (l->name != NULL) {
    cli_print_escaped(stdout, l->name, l->name_len);
    printf(" (id %" PRIu64 ") ===\n", l->id);
  } else {
    printf("%" PRIu64 " ===\n", l->id);
  }
  print_metadata_line("region metadata", r->metadata);

  json_t *meta = cli_json_metadata(l->metadata, l->metadata_len);
  json_t *kw = keywords_of(meta);
  size_t i, shown = 0;
  json_t *k;
  json_array_foreach(kw, i, k) {
    if (!json_is_string(k))
      continue;
    fputs(shown++ ? ", " : "keywords: ", stdout);
    cli_print_escaped(stdout, json_string_value(k), json_string_length(k));
  }
  if (shown > 0)
    fputc('\n', stdout);
  json_t *f = frequency_of(meta);
  if (json_is_integer(f))
    printf("frequency: %" JSON_INTEGER_FORMAT "\n", json_integer_value(f));
  else if (f != NULL)
    printf("frequency: %.15g\n", json_real_value(f));
  json_decref(meta);

  fputc('\n', stdout);
  if (l->size == 0) {
    fputs("[empty]\n", stdout);
  } else if (!cli_is_text(l->data, (size_t)l->size)) {
    printf("[binary, %" PRIu64 " bytes]\n", l->size);
  } else {
    fwrite(l->data, 1, (size_t)l->size, stdout);
    if (((const char *)l->data)[l->size - 1] != '\n')
      fputc('\n', stdout);
  }
  fputc('\n', stdout);
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *item_json(const ctx_item *it) {
  const strata_store_region *r = &it->region;
  const strata_layer *l = &it->layer;
  json_t *o = json_object();
  json_object_set_new(o, "region_id", cli_json_u64(r->id));
  json_object_set_new(o, "region", cli_json_text(r->name, strlen(r->name)));
  json_object_set_new(o, "region_metadata",
                      cli_json_metadata(r->metadata, strlen(r->metadata)));
  json_object_set_new(o, "layer_id", cli_json_u64(l->id));
  json_object_set_new(
      o, "layer", l->name ? cli_json_text(l->name, l->name_len) : json_null());
  json_t *meta = cli_json_metadata(l->metadata, l->metadata_len);
  json_object_set(o, "metadata", meta);
  json_t *kw = keywords_of(meta), *keywords = json_null(), *k;
  size_t i;
  if (kw != NULL) {
    keywords = json_array();
    json_array_foreach(kw, i, k) {
      if (json_is_string(k))
        json_array_append(keywords, k);
    }
  }
  json_object_set_new(o, "keywords", keywords);
  json_t *f = frequency_of(meta);
  json_object_set_new(o, "frequency", f ? json_incref(f) : json_null());
  json_decref(meta);
  json_object_set_new(o, "size", cli_json_u64(l->size));
  bool text = cli_is_text(l->data, (size_t)l->size);
  json_object_set_new(o, "encoding", json_string(text ? "utf-8" : "base64"));
  json_object_set_new(o, "content",
                      text ? json_stringn(l->data, (size_t)l->size)
                           : cli_json_base64(l->data, (size_t)l->size));
  return o;
}

/* ---- the command --------------------------------------------------------- */

static int render(strata_store *s, const char *dir, const ctx_ref *refs,
                  size_t n, bool as_json) {
  ctx_item *items = calloc(n, sizeof *items);
  if (items == NULL)
    return cli_fail("out of memory");
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0) {
    free(items);
    return cli_fail_lib(rc);
  }
  int code = lookup(&txn, dir, refs, n, items);
  json_t *json = NULL;
  if (code == CLI_EXIT_OK && as_json) {
    json = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(json, item_json(&items[i]));
  } else if (code == CLI_EXIT_OK) {
    for (size_t i = 0; i < n; i++)
      print_block(&items[i]);
  }
  strata_read_end(&txn); /* the JSON holds copies */
  free(items);
  if (json != NULL)
    code = cli_json_print(json);
  return code;
}

static int run(int argc, char **argv) {
  bool as_json = false;
  const cli_option opts[] = {{"--json", &as_json, NULL}};
  const char **pos = calloc((size_t)argc, sizeof *pos);
  if (pos == NULL)
    return cli_fail("out of memory");
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_context, argc, argv, opts, 1, pos, 2,
                      (size_t)argc, &npos, &code)) {
    free(pos);
    return code;
  }
  size_t n = npos - 1;
  ctx_ref *refs = calloc(n, sizeof *refs);
  bool ok = refs != NULL;
  if (!ok)
    code = cli_fail("out of memory");
  for (size_t i = 0; ok && i < n; i++)
    ok = parse_ref(pos[i + 1], &refs[i], &code);
  if (ok) {
    strata_store *s = cli_store_open(pos[0], true);
    code = s == NULL ? CLI_EXIT_FAIL : render(s, pos[0], refs, n, as_json);
    strata_store_close(s);
  }
  for (size_t i = 0; refs != NULL && i < n; i++)
    free(refs[i].copy);
  free(refs);
  free(pos);
  return code;
}

const cli_command cli_cmd_context = {
    .name = "context",
    .synopsis = "[--json] STORE REGION:LAYER...",
    .summary = "a path of layers as text blocks for a prompt (or JSON)",
    .usage = usage,
    .run = run,
};
