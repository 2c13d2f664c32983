/* strata get STORE REGION LAYER: one layer's content, raw, read from a
 * snapshot of a store (what `cat` is for a region file). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata get [--out FILE] STORE REGION LAYER\n"
    "\n"
    "Write the content of layer LAYER of region REGION, in the store in\n"
    "directory STORE, to standard output byte for byte (binary or not),\n"
    "read from one snapshot. REGION and LAYER are each an id when all\n"
    "decimal digits (any u64), a name otherwise.\n"
    "\n"
    "Options:\n"
    "  --out FILE  write to FILE (created, or truncated) instead\n"
    "  -h, --help  show this help\n"
    "\n"
    "A reader that stops early (strata get ... | head) ends the command\n"
    "quietly with status 0.\n"
    "\n"
    "Exit status: 0 ok, 1 the store cannot be opened, no such region or\n"
    "layer, or writing failed; 2 usage error.\n";

/* Writes the layer to `out` (standard output when NULL). FILE is opened
 * only once the layer is found, so that a miss leaves it as it was. */
static int write_layer(const strata_layer *l, const char *out) {
  int fd = STDOUT_FILENO;
  if (out != NULL) {
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
      return cli_fail("%s: open: %s", out, strerror(errno));
  }
  int rc = cli_write_content(fd, l->data, l->size);
  if (out != NULL && close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 || (out == NULL && rc == -EPIPE)) /* the reader has enough */
    return CLI_EXIT_OK;
  if (out != NULL)
    return cli_fail("%s: write: %s", out, strerror(-rc));
  return cli_fail("writing layer content to standard output: %s",
                  strerror(-rc));
}

static int get(strata_store *s, const char *dir, const cli_key *region,
               const cli_key *layer, const char *out) {
  strata_txn txn;
  int rc = strata_read_begin(s, &txn);
  if (rc < 0)
    return cli_fail_lib(rc);
  strata_store_region r;
  strata_layer l;
  int code = cli_resolve_region(&txn, dir, region, &r);
  if (code == CLI_EXIT_OK)
    code = cli_resolve_layer(&txn, dir, &r, layer, &l);
  if (code == CLI_EXIT_OK)
    code = write_layer(&l, out); /* l.data is valid until the snapshot ends */
  strata_read_end(&txn);
  return code;
}

static int run(int argc, char **argv) {
  const char *out = NULL;
  const cli_option opts[] = {{"--out", NULL, &out}};
  const char *pos[3];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_get, argc, argv, opts, 1, pos, 3, 3, &npos,
                      &code))
    return code;
  cli_key region, layer;
  if (!cli_parse_region(&cli_cmd_get, pos[1], &region, &code) ||
      !cli_parse_layer(&cli_cmd_get, pos[2], &layer, &code))
    return code;
  if (out != NULL && out[0] == '\0')
    return cli_usage_error(&cli_cmd_get, "--out needs a file name");
  strata_store *s = cli_store_open(pos[0], true);
  code = s == NULL ? CLI_EXIT_FAIL : get(s, pos[0], &region, &layer, out);
  strata_store_close(s);
  return code;
}

const cli_command cli_cmd_get = {
    .name = "get",
    .synopsis = "[--out FILE] STORE REGION LAYER",
    .summary = "write a layer's content (by id or name) from a store",
    .usage = usage,
    .run = run,
};
