/* Manifest mode: one JSON document names the region and lists its layers.
 * The whole manifest is checked (schema, ids, names, files) before the
 * writer is opened, so a bad manifest never starts a region; contents are
 * then streamed layer by layer. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"

static const char *const top_keys[] = {"region", "layers", NULL};
static const char *const region_keys[] = {"id",    "name",          "metadata",
                                          "align", "metadata_text", NULL};

typedef struct manifest {
  const char *file;
  json_t *root;
  uint64_t region_id;
  const char *name;
  char *metadata;
  uint32_t align; /* "align", 0 when absent */
  rb_layer *layers;
  size_t n;
} manifest;

/* "m.json: layers[3]" */
static void where_layer(char *buf, size_t size, const char *file, size_t i) {
  snprintf(buf, size, "%s: layers[%zu]", file, i);
}

static int load(manifest *m) {
  FILE *f = fopen(m->file, "rb");
  if (f == NULL) {
    rb_error(m->file, "%s", strerror(errno));
    return -1;
  }
  json_error_t err;
  /* Duplicate keys are rejected: the second "id" of an object silently
   * winning is the kind of mistake this tool exists to catch. */
  m->root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
  fclose(f);
  if (m->root == NULL) {
    rb_json_error(m->file, err.line, &err);
    return -1;
  }
  if (!json_is_object(m->root)) {
    rb_error(m->file, "the manifest must be a JSON object");
    return -1;
  }
  return rb_check_keys(m->root, top_keys, m->file);
}

static int parse_region(manifest *m) {
  char where[4096];
  snprintf(where, sizeof where, "%s: region", m->file);
  const json_t *r = json_object_get(m->root, "region");
  if (r == NULL) {
    rb_error(m->file, "missing \"region\"");
    return -1;
  }
  if (!json_is_object(r)) {
    rb_error(where, "must be a JSON object");
    return -1;
  }
  if (rb_check_keys(r, region_keys, where) < 0)
    return -1;
  const json_t *id = json_object_get(r, "id");
  if (id == NULL || !rb_json_u64(id, &m->region_id)) {
    rb_error(where, "\"id\" must be a non-negative integer (or a string of "
                    "decimal digits up to 18446744073709551615)");
    return -1;
  }
  const json_t *name = json_object_get(r, "name");
  if (!json_is_string(name) || json_string_length(name) == 0 ||
      strlen(json_string_value(name)) != json_string_length(name)) {
    rb_error(where, "\"name\" must be a non-empty string");
    return -1;
  }
  m->name = json_string_value(name);
  if (rb_metadata_parse(r, where, &m->metadata) < 0)
    return -1;
  /* The alignment is recorded in the region's header, so a manifest that
   * describes a region (strata dump writes one) names it too. */
  const json_t *align = json_object_get(r, "align");
  json_int_t a = json_is_integer(align) ? json_integer_value(align) : 0;
  if (align != NULL && (a < 16 || a > 65536 || (a & (a - 1)) != 0)) {
    rb_error(where, "\"align\" must be a power of two from 16 to 65536");
    return -1;
  }
  m->align = (uint32_t)a;
  return 0;
}

static int parse_layers(manifest *m) {
  const json_t *arr = json_object_get(m->root, "layers");
  if (arr == NULL) {
    rb_error(m->file, "missing \"layers\"");
    return -1;
  }
  if (!json_is_array(arr)) {
    rb_error(m->file, "\"layers\" must be an array");
    return -1;
  }
  size_t n = json_array_size(arr);
  m->layers = calloc(n ? n : 1, sizeof *m->layers);
  if (m->layers == NULL) {
    rb_error(m->file, "out of memory for %zu layers", n);
    return -1;
  }
  char *dir = rb_dirname(m->file);
  if (dir == NULL) {
    rb_error(m->file, "out of memory");
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    char where[4096];
    where_layer(where, sizeof where, m->file, i);
    rc = rb_layer_parse(json_array_get(arr, i), where, dir, &m->layers[i]);
    if (rc == 0)
      m->n++;
  }
  free(dir);
  return rc;
}

/* Duplicates are found by sorting layer numbers by id (then by name), so
 * that the message can name both places. */
static const rb_layer *sort_base;

static int by_id(const void *a, const void *b) {
  uint64_t x = sort_base[*(const size_t *)a].id;
  uint64_t y = sort_base[*(const size_t *)b].id;
  if (x != y)
    return x < y ? -1 : 1;
  return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int by_name(const void *a, const void *b) {
  const char *x = sort_base[*(const size_t *)a].name;
  const char *y = sort_base[*(const size_t *)b].name;
  int c = strcmp(x ? x : "", y ? y : "");
  if (c != 0)
    return c;
  return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int check_duplicates(const manifest *m) {
  size_t *order = malloc((m->n ? m->n : 1) * sizeof *order);
  if (order == NULL) {
    rb_error(m->file, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < m->n; i++)
    order[i] = i;
  sort_base = m->layers;
  int rc = 0;
  qsort(order, m->n, sizeof *order, by_id);
  /* Report the later of the two places, as a reader scanning down meets it. */
  for (size_t i = 1; i < m->n && rc == 0; i++) {
    const rb_layer *a = &m->layers[order[i - 1]], *b = &m->layers[order[i]];
    if (a->id == b->id) {
      char where[4096];
      where_layer(where, sizeof where, m->file, order[i]);
      rb_error(where, "duplicate id %" PRIu64 " (also layers[%zu])", b->id,
               order[i - 1]);
      rc = -1;
    }
  }
  if (rc == 0)
    qsort(order, m->n, sizeof *order, by_name);
  for (size_t i = 1; i < m->n && rc == 0; i++) {
    const rb_layer *a = &m->layers[order[i - 1]], *b = &m->layers[order[i]];
    if (a->name && b->name && strcmp(a->name, b->name) == 0) {
      char where[4096];
      where_layer(where, sizeof where, m->file, order[i]);
      rb_error(where, "duplicate name \"%s\" (also layers[%zu])", b->name,
               order[i - 1]);
      rc = -1;
    }
  }
  free(order);
  return rc;
}

static int write_region(const rb_options *given, const manifest *m) {
  /* --align on the command line wins over the manifest's "align". */
  rb_options options = *given;
  const rb_options *opt = &options;
  if (options.align == 0)
    options.align = m->align;
  uint64_t total = 0;
  for (size_t i = 0; i < m->n; i++)
    total = rb_aligned_total(total, m->layers[i].size, opt->align);
  rb_session s;
  char where[4096];
  snprintf(where, sizeof where, "%s: region", m->file);
  /* check_duplicates() has run: the writer need not look for repeats. */
  if (rb_session_open(&s, opt, m->region_id, m->name, m->metadata, total, m->n,
                      true, where) < 0)
    return -1;
  for (size_t i = 0; i < m->n; i++) {
    where_layer(where, sizeof where, m->file, i);
    if (rb_session_add(&s, &m->layers[i], where) < 0) {
      rb_session_abort(&s);
      return -1;
    }
  }
  return rb_session_commit(&s);
}

int rb_build_manifest(const rb_options *opt, const char *file) {
  manifest m = {.file = file};
  int rc = load(&m);
  if (rc == 0)
    rc = parse_region(&m);
  if (rc == 0)
    rc = parse_layers(&m);
  if (rc == 0)
    rc = check_duplicates(&m);
  if (rc == 0)
    rc = write_region(opt, &m);
  for (size_t i = 0; i < m.n; i++)
    rb_layer_free(&m.layers[i]);
  free(m.layers);
  free(m.metadata);
  json_decref(m.root);
  return rc == 0 ? RB_EXIT_OK : RB_EXIT_FAIL;
}
