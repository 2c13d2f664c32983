/* strata dump FILE OUTDIR: writes a region back out as a region-builder
 * manifest and one file per layer, from which region-builder rebuilds the
 * same region byte for byte (what mdb_dump is to mdb_load).
 *
 * Byte identity needs the writer to receive what it received the first
 * time, in the same order:
 * - the region's id, name, alignment (the manifest's "align") and metadata;
 * - each layer's id, name, metadata and content;
 * - the metadata text exactly: it goes out as "metadata" (a JSON value)
 *   only when region-builder's compact serialization of that value gives
 *   back the very bytes stored, and otherwise as "metadata_text";
 * - the layers in the order of their content in the file, which is the
 *   order they were added in. Empty layers share an offset with the layer
 *   after them, so ties go empty layers first; and among empty layers at
 *   one offset the order is free for the offsets but not for the
 *   PACKED_LOCATORS flag, which the writer sets when the layers came in
 *   ascending id order: ties go ascending when the file has the flag and
 *   descending when it lacks it, so that the flag comes out the same.
 * The index, the strings and the name table follow from these (the writer
 * sorts them). One thing is out of reach: a region whose ids or names
 * were built to collide under the writer's first hash seed was written
 * with a random one, and a rebuild draws another (docs/CLI.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/tool_progress.h"
#include "cli.h"

static const char usage[] =
    "Usage: strata dump FILE OUTDIR\n"
    "\n"
    "Write the region FILE out as a region-builder manifest,\n"
    "OUTDIR/manifest.json, and one file per layer, OUTDIR/layers/ID.bin\n"
    "(named by the layer's id: names need not be usable as file names).\n"
    "'region-builder -o NEW.region OUTDIR/manifest.json' then writes a\n"
    "region identical to FILE, byte for byte.\n"
    "\n"
    "OUTDIR must not exist or be empty: nothing is overwritten. The\n"
    "manifest is written last, so an OUTDIR without it is not a dump; on a\n"
    "failure what the command wrote is removed.\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "FILE is verified first (as by strata verify): a corrupt region is not\n"
    "dumped.\n"
    "\n"
    "When standard error is a terminal (or STRATA_PROGRESS=1), progress\n"
    "lines there show the verification, then the bytes and layers written.\n"
    "Ctrl-C (SIGINT, SIGTERM, SIGHUP) removes what the command wrote, as a\n"
    "failure does, and ends strata by the signal.\n"
    "\n"
    "Exit status: 0 ok, 1 FILE cannot be opened or read or is corrupt,\n"
    "OUTDIR exists and is not empty, or writing failed; 2 usage error;\n"
    "killed by the signal (a shell shows 130 for SIGINT) when interrupted.\n";

#define MANIFEST "manifest.json"
#define MANIFEST_TEMP ".manifest.json.tmp"
#define LAYER_DIR "layers"

/* The state of one dump. File scope, not locals, because the SIGBUS
 * landing point (CLI_BUS_FAULTED in dump()) reads it after a siglongjmp:
 * locals changed since the sigsetjmp would be indeterminate there. */
static struct {
  strata_region *region;
  strata_layer *layers; /* in file order */
  uint64_t n;
  bool packed; /* the file has STRATA_REGION_PACKED_LOCATORS */
  /* What this run created, removed again on failure, newest first. */
  char **made;
  size_t n_made, cap_made;
  bool made_outdir;
  uint64_t bytes_written, layers_written; /* of the layers, for progress */
} d;

/* The progress line (tools/common/tool_progress.h): the verification's,
 * then the writing's. File scope for the SIGBUS landing point too. */
static tool_progress progress;

/* ---- interruption -----------------------------------------------------------
 *
 * A signal that ended the process in the middle of a dump would leave a
 * partial OUTDIR behind (the progress line's own handler, and the default
 * action, both end it at once). So the dump catches SIGINT, SIGTERM and
 * SIGHUP itself: the handler ends the progress line and notes the signal,
 * and the dump looks at the note between pieces of work (each MiB of
 * content written, each report of the verification, which then cancels)
 * and takes its failure path, which removes what it wrote. Then strata
 * dies of the signal as it would have (die_if_interrupted()).
 * The handler removes nothing itself: the list of what was made grows by
 * realloc() as the run goes, which a handler must not read. */

static const int handled[] = {SIGINT, SIGTERM, SIGHUP};
#define N_HANDLED (sizeof handled / sizeof handled[0])

static volatile sig_atomic_t interrupted; /* the signal, or 0 */

static void on_signal(int sig) {
  tool_progress_on_signal(); /* the progress line ends with a newline */
  interrupted = sig;
}

/* Installs on_signal where the signal has its default action: an ignored
 * signal (nohup) stays ignored. Before tool_progress_start(), which then
 * leaves these signals to us. */
static void install_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < N_HANDLED; i++) {
    struct sigaction old;
    if (sigaction(handled[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
      sigaction(handled[i], &sa, NULL);
  }
}

/* The failure an interrupt becomes: nothing is printed (a shell reports
 * the signal), and the caller's failure path removes what was written. */
static int stopped(void) {
  return CLI_EXIT_FAIL;
}

/* Once the dump's failure path has run: dies of the signal noted, if any,
 * with its default action (an interrupt that came after the manifest was
 * in place leaves the complete dump). */
static void die_if_interrupted(void) {
  int sig = interrupted;
  if (sig == 0)
    return;
  fflush(NULL);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
}

/* ---- what the run creates -------------------------------------------------
 */

/* dir + "/" + name, malloc()ed; NULL when out of memory. */
static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p != NULL) {
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
  }
  return p;
}

/* Records `path` as created by this run, taking it over; false (path
 * still the caller's) when out of memory. */
static bool remember(char *path) {
  if (d.n_made == d.cap_made) {
    size_t cap = d.cap_made ? 2 * d.cap_made : 16;
    char **p = realloc(d.made, cap * sizeof *p);
    if (p == NULL)
      return false;
    d.made = p;
    d.cap_made = cap;
  }
  d.made[d.n_made++] = path;
  return true;
}

/* Removes what the run created (files, then the layer directory), and
 * OUTDIR itself when the run made it. Errors are ignored: the failure
 * being reported is the one that matters. */
static void remove_made(const char *outdir) {
  while (d.n_made > 0) {
    char *p = d.made[--d.n_made];
    if (unlink(p) != 0)
      (void)rmdir(p);
    free(p);
  }
  if (d.made_outdir)
    (void)rmdir(outdir);
}

static void forget_made(void) {
  while (d.n_made > 0)
    free(d.made[--d.n_made]);
  free(d.made);
  d.made = NULL;
  d.cap_made = 0;
}

/* OUTDIR must be new or an empty directory. */
static int prepare_outdir(const char *outdir) {
  struct stat st;
  if (stat(outdir, &st) != 0) {
    if (errno != ENOENT)
      return cli_fail("%s: %s", outdir, strerror(errno));
    if (mkdir(outdir, 0777) != 0)
      return cli_fail("%s: mkdir: %s", outdir, strerror(errno));
    d.made_outdir = true;
    return CLI_EXIT_OK;
  }
  if (!S_ISDIR(st.st_mode))
    return cli_fail("%s: exists and is not a directory", outdir);
  DIR *dir = opendir(outdir);
  if (dir == NULL)
    return cli_fail("%s: %s", outdir, strerror(errno));
  bool empty = true;
  struct dirent *e;
  while (empty && (e = readdir(dir)) != NULL)
    empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
  closedir(dir);
  if (!empty)
    return cli_fail("%s: exists and is not empty (dump writes only into a "
                    "new or empty directory)",
                    outdir);
  return CLI_EXIT_OK;
}

/* After each MiB of content (cli_write_content_each()): the progress
 * line moves inside a large layer, and an interrupt waits no longer than
 * one piece. -EINTR once interrupted, with no redraw after the handler
 * ended the line. */
static int after_piece(void *ctx, size_t n) {
  (void)ctx;
  d.bytes_written += n;
  if (interrupted)
    return -EINTR;
  tool_progress_update(&progress, d.bytes_written, d.layers_written);
  return 0;
}

/* Creates `path` (which must not exist), writes `size` bytes of `data`
 * and fsync()s it. `file` names the region for a mapping error. */
static int write_file(const char *file, char *path, const void *data,
                      uint64_t size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int code = cli_fail("%s: open: %s", path, strerror(errno));
    free(path);
    return code;
  }
  if (!remember(path)) {
    close(fd);
    (void)unlink(path);
    free(path);
    return cli_fail("out of memory");
  }
  int rc = cli_write_content_each(fd, data, size, after_piece, NULL);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == -EINTR && interrupted)
    return stopped();
  if (rc == -EFAULT)
    return cli_fail("%s: %s", file, CLI_BUS_MESSAGE);
  if (rc < 0)
    return cli_fail("%s: write: %s", path, strerror(-rc));
  return CLI_EXIT_OK;
}

static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int code = cli_fail("%s: fsync: %s", dir, strerror(errno));
    if (fd >= 0)
      close(fd);
    return code;
  }
  close(fd);
  return CLI_EXIT_OK;
}

/* ---- the manifest ------------------------------------------------------- */

/* Sets "metadata" (a JSON value) on `o` when region-builder's compact
 * serialization of the parsed value is exactly `text`, and "metadata_text"
 * (a string) otherwise. region-builder reads the manifest with
 * JSON_REJECT_DUPLICATES and serializes with JSON_COMPACT: the same here. */
static void set_metadata(json_t *o, const char *text, size_t len) {
  if (text == NULL || len == 0)
    return;
  json_error_t err;
  json_t *v =
      json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
  char *again = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  if (again != NULL && strlen(again) == len && memcmp(again, text, len) == 0) {
    json_object_set_new(o, "metadata", v);
  } else {
    json_decref(v);
    json_object_set_new(o, "metadata_text", json_stringn(text, len));
  }
  free(again);
}

/* A u64 id as MANIFEST.md's "Ids" asks: a JSON integer up to INT64_MAX, a
 * string of decimal digits above. */
static json_t *manifest(const strata_region_info *info) {
  json_t *region = json_object();
  json_object_set_new(region, "id", cli_json_u64(info->id));
  json_object_set_new(region, "name", json_string(info->name));
  json_object_set_new(region, "align", json_integer(info->data_align));
  set_metadata(region, info->metadata, strlen(info->metadata));
  json_t *layers = json_array();
  for (uint64_t i = 0; i < d.n; i++) {
    const strata_layer *l = &d.layers[i];
    char file[64];
    snprintf(file, sizeof file, LAYER_DIR "/%" PRIu64 ".bin", l->id);
    json_t *o = json_object();
    json_object_set_new(o, "id", cli_json_u64(l->id));
    if (l->name != NULL)
      json_object_set_new(o, "name", json_stringn(l->name, l->name_len));
    set_metadata(o, l->metadata, l->metadata_len);
    json_object_set_new(o, "file", json_string(file));
    json_array_append_new(layers, o);
  }
  json_t *root = json_object();
  json_object_set_new(root, "region", region);
  json_object_set_new(root, "layers", layers);
  return root;
}

/* Writes the manifest under a temporary name and renames it into place, so
 * that OUTDIR/manifest.json exists only once everything is written. */
static int write_manifest(const char *file, const char *outdir,
                          const strata_region_info *info) {
  json_t *root = manifest(info);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  char *temp = join(outdir, MANIFEST_TEMP), *final = join(outdir, MANIFEST);
  int code;
  if (text == NULL || temp == NULL || final == NULL) {
    free(temp);
    code = cli_fail("out of memory");
  } else {
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: the length is known */
    code = write_file(file, temp, text, len + 1);
  }
  /* The last point where an interrupt undoes the dump: once the manifest
   * is in place the dump is complete, and stays. */
  if (code == CLI_EXIT_OK && interrupted)
    code = stopped();
  if (code == CLI_EXIT_OK && rename(d.made[d.n_made - 1], final) != 0)
    code = cli_fail("%s: rename: %s", final, strerror(errno));
  if (code == CLI_EXIT_OK) {
    free(d.made[d.n_made - 1]);
    d.made[d.n_made - 1] = final; /* removed, on a later failure, by name */
    final = NULL;
    code = sync_dir(outdir);
  }
  free(final);
  free(text);
  return code;
}

/* ---- the layers ------------------------------------------------------------
 */

/* File order, ties as the opening comment says. */
static int by_file_order(const void *pa, const void *pb) {
  const strata_layer *a = pa, *b = pb;
  uintptr_t x = (uintptr_t)a->data, y = (uintptr_t)b->data;
  if (x != y)
    return x < y ? -1 : 1;
  if ((a->size > 0) != (b->size > 0))
    return a->size > 0 ? 1 : -1;
  if (a->id == b->id)
    return 0;
  return (a->id < b->id) == d.packed ? -1 : 1;
}

static int collect_layers(const char *file, const strata_region_info *info) {
  d.packed = (info->flags & STRATA_REGION_PACKED_LOCATORS) != 0;
  d.layers =
      calloc(info->layer_count ? info->layer_count : 1, sizeof *d.layers);
  if (d.layers == NULL)
    return cli_fail("%s: out of memory for %" PRIu64 " layers", file,
                    info->layer_count);
  strata_region_iter it;
  int rc;
  strata_region_iter_init(d.region, &it);
  while (d.n < info->layer_count &&
         (rc = strata_region_next(&it, &d.layers[d.n])) > 0)
    d.n++;
  if (d.n < info->layer_count)
    return rc < 0 ? cli_fail_lib(rc)
                  : cli_fail("%s: the index lists %" PRIu64
                             " layers but iteration found %" PRIu64,
                             file, info->layer_count, d.n);
  qsort(d.layers, d.n, sizeof *d.layers, by_file_order);
  return CLI_EXIT_OK;
}

static int write_layers(const char *file, const char *outdir) {
  char *dir = join(outdir, LAYER_DIR);
  if (dir == NULL)
    return cli_fail("out of memory");
  if (mkdir(dir, 0777) != 0) {
    int code = cli_fail("%s: mkdir: %s", dir, strerror(errno));
    free(dir);
    return code;
  }
  if (!remember(dir)) {
    (void)rmdir(dir);
    free(dir);
    return cli_fail("out of memory");
  }
  uint64_t total = 0;
  for (uint64_t i = 0; i < d.n; i++)
    total += d.layers[i].size;
  tool_progress_start(&progress, tool_progress_wanted(), "dump", total, d.n);
  tool_progress_update(&progress, 0, 0);
  int code = CLI_EXIT_OK;
  for (uint64_t i = 0; i < d.n && code == CLI_EXIT_OK; i++) {
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64 ".bin", d.layers[i].id);
    char *path = interrupted ? NULL : join(dir, name);
    code = interrupted ? stopped()
           : path == NULL
               ? cli_fail("out of memory")
               : write_file(file, path, d.layers[i].data, d.layers[i].size);
    if (code == CLI_EXIT_OK && !interrupted) {
      d.layers_written++;
      tool_progress_update(&progress, d.bytes_written, d.layers_written);
    }
  }
  if (code == CLI_EXIT_OK)
    code = sync_dir(dir);
  tool_progress_finish(&progress, code == CLI_EXIT_OK && !interrupted);
  return code;
}

/* ---- the command --------------------------------------------------------- */

/* The verification's progress callback: the line, and a cancel once
 * interrupted. */
static int verify_progress(void *ctx, const strata_progress *p) {
  if (interrupted)
    return 1;
  return tool_progress_callback(ctx, p);
}

static int verify(void) {
  strata_verify_options o;
  strata_verify_options_init(&o);
  o.progress = verify_progress;
  o.progress_ctx = &progress;
  tool_progress_start(&progress, tool_progress_wanted(), "verify", 0, 0);
  uint64_t bad_id;
  int rc = strata_region_verify_ex(d.region, &o, &bad_id);
  tool_progress_finish(&progress, rc == 0);
  return rc;
}

static int dump(const char *file, const char *outdir) {
  if (CLI_BUS_FAULTED()) {
    tool_progress_finish(&progress, false);
    remove_made(outdir);
    return cli_fail("%s: %s", file, CLI_BUS_MESSAGE);
  }
  d.region = cli_open_region_guarded(file, STRATA_OPEN_SEQUENTIAL);
  if (d.region == NULL)
    return CLI_EXIT_FAIL;
  strata_region_info info;
  int rc = strata_region_info_get(d.region, &info);
  /* A layer whose content no longer matches its checksum would be dumped
   * as it is now and rebuilt with a new checksum: a different region. So
   * the dump checks first, as strata verify does (one more read of the
   * file, from the page cache for all but the largest regions). */
  if (rc == 0 && (rc = verify()) < 0) {
    cli_bus_disarm();
    if (rc == STRATA_E_CANCELED && interrupted)
      return stopped();
    return cli_fail("%s (not dumped: run strata verify)",
                    strata_last_error_detail());
  }
  int code = rc < 0 ? cli_fail_lib(rc) : prepare_outdir(outdir);
  if (code == CLI_EXIT_OK)
    code = collect_layers(file, &info);
  if (code == CLI_EXIT_OK)
    code = write_layers(file, outdir);
  if (code == CLI_EXIT_OK && interrupted)
    code = stopped();
  if (code == CLI_EXIT_OK)
    code = write_manifest(file, outdir, &info);
  if (code != CLI_EXIT_OK)
    remove_made(outdir);
  cli_bus_disarm();
  return code;
}

static int run(int argc, char **argv) {
  const char *pos[2];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_dump, argc, argv, NULL, 0, pos, 2, 2, &npos,
                      &code))
    return code;
  install_handlers();
  code = dump(pos[0], pos[1]);
  strata_region_close(d.region);
  free(d.layers);
  forget_made();
  die_if_interrupted();
  return code;
}

const cli_command cli_cmd_dump = {
    .name = "dump",
    .synopsis = "FILE OUTDIR",
    .summary = "write a region out as a region-builder manifest and files",
    .usage = usage,
    .run = run,
};
