/* strata verify FILE: the deep check (every content checksum, the id order,
 * every name lookup), with a one-line or JSON verdict. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata verify [--json] FILE\n"
    "\n"
    "Check the region FILE completely: open it (header, index and their\n"
    "checksums), then recompute every layer's content checksum and check\n"
    "the id order and every name lookup. Prints one verdict line on\n"
    "standard output:\n"
    "  FILE: ok (N layers, B bytes)      B: content bytes checked\n"
    "  FILE: corrupt: DETAIL             DETAIL names the layer and offsets\n"
    "  FILE: unsupported: DETAIL         a newer major format version\n"
    "  FILE: error: DETAIL               cannot open or read the file\n"
    "\n"
    "Options:\n"
    "  --json      print the verdict as a JSON object {path, ok, status,\n"
    "              layer_count, content_bytes, error}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 intact, 1 anything else (corrupt, unreadable, missing),\n"
    "2 usage error.\n";

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
} verdict;

static void set_failure(verdict *v, int rc, const char *detail) {
  v->rc = rc;
  snprintf(v->detail, sizeof v->detail, "%s",
           detail[0] ? detail : strata_strerror(rc));
}

/* Runs under the SIGBUS guard: reads every byte of the mapping. */
static void check(const strata_region *r, verdict *v) {
  int rc = strata_region_verify(r, &v->bad_id);
  if (rc < 0) {
    v->has_bad_id = true;
    set_failure(v, rc, cli_detail_without_path(v->path));
    return;
  }
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(r, &it);
  while ((rc = strata_region_next(&it, &l)) > 0) {
    v->layers++;
    v->bytes += l.size;
  }
  if (rc < 0)
    set_failure(v, rc, cli_detail_without_path(v->path));
}

/* The path and the library's detail (which quotes layer names as they
 * are) are escaped, so that the verdict stays one line whatever a name
 * holds. */
static int print_text(const verdict *v) {
  cli_print_escaped(stdout, v->path, strlen(v->path));
  if (v->rc == 0)
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

static int run(int argc, char **argv) {
  bool as_json = false;
  const cli_option opts[] = {{"--json", &as_json, NULL}};
  const char *path;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_verify, argc, argv, opts, 1, &path, &code))
    return code;

  static verdict v; /* static: survives the siglongjmp unchanged */
  memset(&v, 0, sizeof v);
  v.path = path;
  strata_region *volatile r = NULL;
  if (CLI_BUS_FAULTED()) {
    strata_region_close(r);
    v.has_bad_id = false;
    v.bus_fault = true;
    set_failure(&v, -EIO, CLI_BUS_MESSAGE);
  } else {
    cli_bus_arm();
    strata_region *opened = NULL;
    int rc = strata_region_open(v.path, STRATA_OPEN_SEQUENTIAL, &opened);
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
    .synopsis = "[--json] FILE",
    .summary = "check every checksum and index; print ok or what is corrupt",
    .usage = usage,
    .run = run,
};
