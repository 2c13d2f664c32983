/* strata verify FILE: the deep check (every content checksum, the id order,
 * every name lookup), with a one-line or JSON verdict. strata verify STORE:
 * the files of a store that claim the same region, and every region's
 * chain of delta files (docs/ARCHITECTURE.md, "Deltas"). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
    "by SERVED), then checks every region's delta files: each one served\n"
    "is bound to the file below it (its parent checksum, its base checksum,\n"
    "its depth) and passes the deep check; each *.delta file not served is\n"
    "classified. One line per finding: STORE: KIND: FILE: DETAIL, KIND\n"
    "one of\n"
    "  corrupt        a delta file that does not open or fails the check\n"
    "  bad binding    a served delta not bound to the file below it\n"
    "  broken chain   a delta over the region's base whose chain has a gap\n"
    "                 below it (a delta missing or withdrawn)\n"
    "  no base        a delta of a region the store does not serve\n"
    "  not a delta    a region file named like a delta\n"
    "  stale          a delta bound to another base, or off the chain (left\n"
    "                 by an interrupted compaction; never served, the next\n"
    "                 crystallization removes it): reported, not damage\n"
    "then STORE: ok (N regions[, D delta files][, S stale delta files])\n"
    "when nothing but stale files was found.\n"
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
    "Exit status: 0 intact (for a STORE: stale delta files allowed), 1\n"
    "anything else (corrupt, unreadable, missing, a conflict, a chain\n"
    "finding), 2 usage error; killed by SIGINT (a shell shows 130) when\n"
    "interrupted.\n";

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

/* ---- strata verify STORE ------------------------------------------------ */

/* A served region's chain, for classifying the delta files not served. */
typedef struct served_region {
  uint64_t id;
  uint64_t base_checksum;
  const char *base_path, *top_path; /* top: the newest file of the chain */
  uint32_t depth;
} served_region;

typedef struct chain_check {
  json_t *findings; /* [{file, kind, detail}]: damage, exit 1 */
  json_t *stale;    /* the same for stale delta files: exit 0 */
  char **served;    /* the served delta files' names in the directory */
  size_t nserved;
} chain_check;

static void note(json_t *list, const char *kind, const char *file,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void note(json_t *list, const char *kind, const char *file,
                 const char *fmt, ...) {
  char detail[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  json_array_append_new(list, json_pack("{s:o, s:s, s:o}", "file",
                                        cli_json_text(file, strlen(file)),
                                        "kind", kind, "detail",
                                        cli_json_text(detail, strlen(detail))));
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash != NULL ? slash + 1 : path;
}

/* The deep check of a delta file (reads the mapping; runs under the
 * SIGBUS guard): false, with a "corrupt" finding, when it fails. */
static bool deep_ok(chain_check *c, const strata_region *r, const char *path) {
  uint64_t bad = UINT64_MAX;
  int rc = strata_region_verify(r, &bad);
  if (rc < 0)
    note(c->findings, "corrupt", path, "%s", cli_detail_without_path(path));
  return rc == 0;
}

/* The delta files served over region `index`: each bound to the file
 * below it, each intact. Fills *out for the classification. */
static void check_served(chain_check *c, const strata_txn *txn, uint64_t index,
                         served_region *out) {
  strata_store_region r;
  strata_region_info bi;
  if (strata_store_region_at(txn, index, &r) < 0 || r.file == NULL ||
      strata_region_info_get(r.file, &bi) < 0)
    return;
  *out = (served_region){.id = r.id,
                         .base_checksum = bi.header_checksum,
                         .base_path = r.path,
                         .top_path = r.path};
  uint64_t parent = bi.header_checksum;
  const strata_region *d;
  for (uint32_t k = 0; strata_store_region_delta_at(txn, index, k, &d) == 0;
       k++) {
    strata_region_info info;
    strata_region_delta_info b = {0};
    strata_region_info_get(d, &info);
    char **nv = realloc(c->served, (c->nserved + 1) * sizeof *nv);
    if (nv != NULL) {
      c->served = nv;
      c->served[c->nserved++] = (char *)base_name(info.path);
    }
    char h1[17], h2[17], h3[17], h4[17];
    if (strata_region_delta(d, &b) != 0 || b.depth != k + 1 ||
        b.parent_checksum != parent || b.base_checksum != bi.header_checksum)
      note(c->findings, "bad binding", info.path,
           "depth %" PRIu32 ", parent %s, base %s; served at depth %" PRIu32
           " over %s (%s), base %s (%s)",
           b.depth, cli_hex64(b.parent_checksum, h1),
           cli_hex64(b.base_checksum, h2), k + 1, out->top_path,
           cli_hex64(parent, h3), r.path, cli_hex64(bi.header_checksum, h4));
    deep_ok(c, d, info.path);
    parent = info.header_checksum;
    out->top_path = info.path;
    out->depth = k + 1;
  }
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A delta file the store does not serve: why not. */
static void classify(chain_check *c, const char *path, const served_region *sr,
                     size_t nsr) {
  strata_region *r = NULL;
  int rc = strata_region_open(path, STRATA_OPEN_CHECK_INDEX, &r);
  if (rc < 0) {
    note(c->findings, "corrupt", path, "%s", cli_detail_without_path(path));
    return;
  }
  strata_region_info info;
  strata_region_delta_info b;
  strata_region_info_get(r, &info);
  bool is_delta = strata_region_delta(r, &b) == 0;
  if (!deep_ok(c, r, path)) {
    strata_region_close(r);
    return;
  }
  strata_region_close(r);
  if (!is_delta) {
    note(c->findings, "not a delta", path,
         "a region file (region %" PRIu64 ") named like a delta", info.id);
    return;
  }
  const served_region *s = NULL;
  for (size_t i = 0; i < nsr && s == NULL; i++)
    if (sr[i].id == info.id && sr[i].base_path != NULL)
      s = &sr[i];
  char h1[17], h2[17];
  if (s == NULL)
    note(c->findings, "no base", path,
         "delta of depth %" PRIu32 " of region %" PRIu64
         ", which the store does not serve (its base %s is missing)",
         b.depth, info.id, cli_hex64(b.base_checksum, h1));
  else if (b.base_checksum == s->base_checksum && b.depth > s->depth + 1)
    /* The store's rule too (store_scan.c, find_chain): a WARN there. */
    note(c->findings, "broken chain", path,
         "delta of depth %" PRIu32 " over %s, whose chain ends at %s (depth "
         "%" PRIu32 "): a delta between is missing or does not validate",
         b.depth, s->base_path, s->top_path, s->depth);
  else if (b.base_checksum == s->base_checksum)
    note(c->stale, "stale", path,
         "delta of depth %" PRIu32 " over %s, its parent %s is not on the "
         "served chain (which ends at %s)",
         b.depth, s->base_path, cli_hex64(b.parent_checksum, h1), s->top_path);
  else
    note(c->stale, "stale", path,
         "delta of depth %" PRIu32 " bound to base %s, not to region %" PRIu64
         "'s base %s (%s)",
         b.depth, cli_hex64(b.base_checksum, h1), info.id, s->base_path,
         cli_hex64(s->base_checksum, h2));
}

/* Every *.delta file of the directory the store does not serve, in name
 * order, as the store lists them (regular files, temporary files left
 * out). */
static int check_unserved(chain_check *c, const char *dir,
                          const served_region *sr, size_t nsr) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return cli_fail("%s: %s", dir, strerror(errno));
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len <= 6 ||
        strcmp(de->d_name + len - 6, ".delta") != 0)
      continue;
    bool served = false;
    for (size_t i = 0; i < c->nserved && !served; i++)
      served = strcmp(c->served[i], de->d_name) == 0;
    if (served)
      continue;
    char **nv = realloc(names, (n + 1) * sizeof *nv);
    if (nv != NULL)
      names = nv;
    if (nv == NULL || (names[n] = strdup(de->d_name)) == NULL) {
      closedir(d);
      for (size_t i = 0; i < n; i++)
        free(names[i]);
      free(names);
      return cli_fail("%s: out of memory", dir);
    }
    n++;
  }
  closedir(d);
  if (n > 1)
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
      classify(c, path, sr, nsr);
    free(names[i]);
  }
  free(names);
  return CLI_EXIT_OK;
}

/* The chains of store `s` (open, read-only) into c. */
static int check_chains(chain_check *c, strata_store *s, const char *dir) {
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    return cli_fail_lib(rc);
  uint64_t n = strata_store_region_count(&txn);
  served_region *sr = calloc(n ? n : 1, sizeof *sr);
  if (sr == NULL) {
    strata_read_end(&txn);
    return cli_fail("%s: out of memory", dir);
  }
  for (uint64_t i = 0; i < n; i++)
    check_served(c, &txn, i, &sr[i]);
  int code = check_unserved(c, dir, sr, n);
  free(sr);
  strata_read_end(&txn); /* the findings hold copies */
  return code;
}

static void print_findings(const char *dir, json_t *list) {
  size_t i;
  json_t *f;
  json_array_foreach(list, i, f) {
    const char *file = json_string_value(json_object_get(f, "file"));
    const char *detail = json_string_value(json_object_get(f, "detail"));
    cli_print_escaped(stdout, dir, strlen(dir));
    printf(": %s: ", json_string_value(json_object_get(f, "kind")));
    cli_print_escaped(stdout, file, strlen(file));
    fputs(": ", stdout);
    cli_print_escaped(stdout, detail, strlen(detail));
    fputc('\n', stdout);
  }
}

/* The conflicts the state dump lists (docs/state.schema.json), then the
 * chains of delta files. */
static int verify_store(const char *dir, bool as_json) {
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL)
    return CLI_EXIT_FAIL;
  char *text = NULL;
  int rc = strata_dump_state(s, 0, &text);
  chain_check c = {.findings = json_array(), .stale = json_array()};
  json_t *doc = rc == 0 ? json_loads(text, 0, NULL) : NULL;
  strata_free(text);
  /* The deep checks read the delta files' mappings. On a fault the
   * process ends with the message: what is held is not released. */
  if (CLI_BUS_FAULTED())
    return cli_fail("%s: %s", dir, CLI_BUS_MESSAGE);
  cli_bus_arm();
  int code = rc < 0 ? cli_fail_lib(rc) : check_chains(&c, s, dir);
  cli_bus_disarm();
  strata_store_close(s);
  json_t *conflicts = json_object_get(doc, "conflicts");
  if (code == CLI_EXIT_OK && !json_is_array(conflicts))
    code = cli_fail("%s: the state dump has no conflict list", dir);
  if (code != CLI_EXIT_OK) {
    json_decref(doc);
    json_decref(c.findings);
    json_decref(c.stale);
    free(c.served);
    return code;
  }
  size_t n = json_array_size(conflicts);
  size_t regions = json_array_size(json_object_get(doc, "regions"));
  size_t bad = json_array_size(c.findings);
  bool ok = n == 0 && bad == 0;
  code = ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  if (as_json) {
    json_t *o =
        json_pack("{s:o, s:b, s:s, s:I, s:O, s:I, s:O, s:O}", "path",
                  cli_json_text(dir, strlen(dir)), "ok", ok, "status",
                  n > 0     ? "conflict"
                  : bad > 0 ? "damaged"
                            : "ok",
                  "region_count", (json_int_t)regions, "conflicts", conflicts,
                  "delta_files", (json_int_t)c.nserved, "delta_findings",
                  c.findings, "stale_deltas", c.stale);
    int pc = cli_json_print(o);
    code = ok ? pc : CLI_EXIT_FAIL;
  }
  for (size_t i = 0; !as_json && i < n; i++) {
    json_t *cf = json_array_get(conflicts, i);
    json_t *id = json_object_get(cf, "region_id");
    char idbuf[32];
    if (json_is_integer(id))
      snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT,
               json_integer_value(id));
    else
      snprintf(idbuf, sizeof idbuf, "%s", json_string_value(id));
    printf("%s: conflict: region %s: %s: %s already served by %s\n", dir, idbuf,
           json_string_value(json_object_get(cf, "skipped")),
           json_string_value(json_object_get(cf, "reason")),
           json_string_value(json_object_get(cf, "served")));
  }
  if (!as_json) {
    print_findings(dir, c.findings);
    print_findings(dir, c.stale);
  }
  size_t stale = json_array_size(c.stale);
  if (!as_json && ok) {
    printf("%s: ok (%zu regions", dir, regions);
    if (c.nserved > 0)
      printf(", %zu delta files", c.nserved);
    if (stale > 0)
      printf(", %zu stale delta files", stale);
    fputs(")\n", stdout);
  }
  json_decref(doc);
  json_decref(c.findings);
  json_decref(c.stale);
  free(c.served);
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
