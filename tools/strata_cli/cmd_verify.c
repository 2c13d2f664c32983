/* strata verify FILE: the deep check (every content checksum, the id order,
 * every name lookup), with a one-line or JSON verdict. strata verify STORE:
 * the files of a store that claim the same region. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/tool_progress.h"
#include "cli.h"

static const char usage[] =
    "Usage: strata verify [--json] FILE\n"
    "       strata verify [--json] STORE\n"
    "\n"
    "Check the region FILE completely: open it (header, index and their\n"
    "checksums), then recompute every layer's content checksum and check\n"
    "the id order and every name lookup. Prints one verdict line on\n"
    "standard output:\n"
    "  FILE: ok (N layers, B bytes)      B: content bytes checked\n"
    "  FILE: ok (delta of depth D over PARENT: N layers, T tombstones,\n"
    "        B bytes)                    a delta file; PARENT is the header\n"
    "                                    checksum of the file below it\n"
    "  FILE: corrupt: DETAIL             DETAIL names the layer and offsets\n"
    "  FILE: unsupported: DETAIL         a newer major format version\n"
    "  FILE: error: DETAIL               cannot open or read the file\n"
    "\n"
    "With a STORE directory, lists the region files the store does not\n"
    "serve because another file holds the same region id or name (one\n"
    "line each: STORE: conflict: region ID: SKIPPED: REASON already served\n"
    "by SERVED), or prints STORE: ok (N regions).\n"
    "\n"
    "Options:\n"
    "  --json      print the verdict as a JSON object {path, ok, status,\n"
    "              layer_count, content_bytes, error}\n"
    "  -h, --help  show this help\n"
    "\n"
    "When standard error is a terminal (or STRATA_PROGRESS=1), a progress\n"
    "line there shows the bytes and layers checked; Ctrl-C finishes it and\n"
    "ends strata by the signal.\n"
    "\n"
    "Exit status: 0 intact, 1 anything else (corrupt, unreadable, missing),\n"
    "2 usage error; killed by SIGINT (a shell shows 130) when interrupted.\n";

/* What a failure code means for the verdict line. */
static const char *status_of(int rc) {
  switch (rc) {
  case 0:
    return "ok";
  case STRATA_E_CORRUPT:
  case STRATA_E_CHECKSUM:
  case STRATA_E_BAD_MAGIC:
  case STRATA_E_LIMIT:
  case STRATA_E_BOUNDS:
    return "corrupt";
  case STRATA_E_VERSION:
    return "unsupported";
  default:
    return "error";
  }
}

typedef struct verdict {
  const char *path;
  int rc;            /* 0, or the failing code */
  char detail[1024]; /* without the leading "PATH: " */
  bool bus_fault;    /* SIGBUS while reading the mapping */
  bool has_bad_id;
  uint64_t bad_id;
  uint64_t layers, bytes;
  bool delta; /* a delta file: its binding, and its tombstones */
  strata_region_delta_info binding;
  uint64_t tombstones;
} verdict;

static void set_failure(verdict *v, int rc, const char *detail) {
  v->rc = rc;
  snprintf(v->detail, sizeof v->detail, "%s",
           detail[0] ? detail : strata_strerror(rc));
}

/* The progress line (tools/common/tool_progress.h); static, like the
 * verdict, so that the SIGBUS path can still finish it. */
static tool_progress progress;

/* Runs under the SIGBUS guard: reads every byte of the mapping. */
static void check(const strata_region *r, verdict *v) {
  strata_verify_options o;
  strata_verify_options_init(&o);
  o.progress = tool_progress_callback;
  o.progress_ctx = &progress;
  int rc = strata_region_verify_ex(r, &o, &v->bad_id);
  tool_progress_finish(&progress, rc == 0);
  if (rc < 0) {
    v->has_bad_id = true;
    set_failure(v, rc, cli_detail_without_path(v->path));
    return;
  }
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    bool tomb = (l.flags & STRATA_LAYER_TOMBSTONE) != 0;
    v->tombstones += tomb;
    v->layers += !tomb;
    v->bytes += l.size;
  }
  /* A delta file alone is checked like any region; its binding is shown,
   * not followed (the file below may be elsewhere or gone). */
  if (rc >= 0)
    v->delta = strata_region_delta(r, &v->binding) == 0;
  if (rc < 0)
    set_failure(v, rc, cli_detail_without_path(v->path));
}

/* The path and the library's detail (which quotes layer names as they
 * are) are escaped, so that the verdict stays one line whatever a name
 * holds. */
static int print_text(const verdict *v) {
  cli_print_escaped(stdout, v->path, strlen(v->path));
  char hex[17];
  if (v->rc == 0 && v->delta)
    printf(": ok (delta of depth %" PRIu32 " over %s: %" PRIu64
           " layers, %" PRIu64 " tombstones, %" PRIu64 " bytes)\n",
           v->binding.depth, cli_hex64(v->binding.parent_checksum, hex),
           v->layers, v->tombstones, v->bytes);
  else if (v->rc == 0)
    printf(": ok (%" PRIu64 " layers, %" PRIu64 " bytes)\n", v->layers,
           v->bytes);
  else {
    if (!v->bus_fault)
      printf(": %s", status_of(v->rc));
    fputs(": ", stdout);
    cli_print_escaped(stdout, v->detail, strlen(v->detail));
    fputc('\n', stdout);
  }
  return v->rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int print_json(const verdict *v) {
  json_t *o = json_object();
  json_object_set_new(o, "path", cli_json_text(v->path, strlen(v->path)));
  json_object_set_new(o, "ok", json_boolean(v->rc == 0));
  json_object_set_new(o, "status", json_string(status_of(v->rc)));
  json_object_set_new(o, "layer_count",
                      v->rc == 0 ? cli_json_u64(v->layers) : json_null());
  json_object_set_new(o, "content_bytes",
                      v->rc == 0 ? cli_json_u64(v->bytes) : json_null());
  if (v->rc == 0 && v->delta) { /* delta files only */
    char hex[17];
    json_t *d = json_object();
    json_object_set_new(
        d, "parent", json_string(cli_hex64(v->binding.parent_checksum, hex)));
    json_object_set_new(d, "base",
                        json_string(cli_hex64(v->binding.base_checksum, hex)));
    json_object_set_new(d, "depth", json_integer(v->binding.depth));
    json_object_set_new(d, "tombstones", cli_json_u64(v->tombstones));
    json_object_set_new(o, "delta", d);
  }
  json_t *err = json_null();
  if (v->rc != 0) {
    err = json_object();
    json_object_set_new(err, "code", json_string(strata_err_name(v->rc)));
    json_object_set_new(err, "message", json_string(strata_strerror(v->rc)));
    json_object_set_new(err, "detail",
                        cli_json_text(v->detail, strlen(v->detail)));
    json_object_set_new(err, "layer",
                        v->has_bad_id ? cli_json_u64(v->bad_id) : json_null());
  }
  json_object_set_new(o, "error", err);
  int code = cli_json_print(o);
  return v->rc == 0 ? code : CLI_EXIT_FAIL;
}

/* The conflicts the state dump lists (docs/state.schema.json). */
static int verify_store(const char *dir, bool as_json) {
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL)
    return CLI_EXIT_FAIL;
  char *text = NULL;
  int rc = strata_dump_state(s, 0, &text);
  strata_store_close(s);
  json_t *doc = rc == 0 ? json_loads(text, 0, NULL) : NULL;
  strata_free(text);
  if (rc < 0)
    return cli_fail_lib(rc);
  json_t *conflicts = json_object_get(doc, "conflicts");
  if (!json_is_array(conflicts)) {
    json_decref(doc);
    return cli_fail("%s: the state dump has no conflict list", dir);
  }
  size_t n = json_array_size(conflicts);
  size_t regions = json_array_size(json_object_get(doc, "regions"));
  int code = n == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  if (as_json) {
    json_t *o = json_pack("{s:o, s:b, s:s, s:I, s:O}", "path",
                          cli_json_text(dir, strlen(dir)), "ok", n == 0,
                          "status", n == 0 ? "ok" : "conflict", "region_count",
                          (json_int_t)regions, "conflicts", conflicts);
    int pc = cli_json_print(o);
    code = n == 0 ? pc : CLI_EXIT_FAIL;
  } else if (n == 0) {
    printf("%s: ok (%zu regions)\n", dir, regions);
  }
  for (size_t i = 0; !as_json && i < n; i++) {
    json_t *c = json_array_get(conflicts, i);
    json_t *id = json_object_get(c, "region_id");
    char idbuf[32];
    if (json_is_integer(id))
      snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT,
               json_integer_value(id));
    else
      snprintf(idbuf, sizeof idbuf, "%s", json_string_value(id));
    printf("%s: conflict: region %s: %s: %s already served by %s\n", dir, idbuf,
           json_string_value(json_object_get(c, "skipped")),
           json_string_value(json_object_get(c, "reason")),
           json_string_value(json_object_get(c, "served")));
  }
  json_decref(doc);
  return code;
}

static int run(int argc, char **argv) {
  bool as_json = false;
  const cli_option opts[] = {{"--json", &as_json, NULL}};
  const char *path;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_verify, argc, argv, opts, 1, &path, &code))
    return code;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return verify_store(path, as_json);

  static verdict v; /* static: survives the siglongjmp unchanged */
  memset(&v, 0, sizeof v);
  v.path = path;
  strata_region *volatile r = NULL;
  if (CLI_BUS_FAULTED()) {
    tool_progress_finish(&progress, false);
    strata_region_close(r);
    v.has_bad_id = false;
    v.bus_fault = true;
    set_failure(&v, -EIO, CLI_BUS_MESSAGE);
  } else {
    /* The totals come with the first report. */
    tool_progress_start(&progress, tool_progress_wanted(), "verify", 0, 0);
    cli_bus_arm();
    strata_region *opened = NULL;
    /* Eager: a broken index is refused at open, before any content is
     * hashed, with the same report as before opens became lazy. */
    int rc = strata_region_open(
        v.path, STRATA_OPEN_SEQUENTIAL | STRATA_OPEN_CHECK_INDEX, &opened);
    r = opened;
    if (rc < 0)
      set_failure(&v, rc, cli_detail_without_path(v.path));
    else
      check(opened, &v);
    cli_bus_disarm();
    strata_region_close(r);
  }
  return as_json ? print_json(&v) : print_text(&v);
}

const cli_command cli_cmd_verify = {
    .name = "verify",
    .synopsis = "[--json] FILE|STORE",
    .summary = "check every checksum and index; print ok or what is corrupt",
    .usage = usage,
    .run = run,
};
