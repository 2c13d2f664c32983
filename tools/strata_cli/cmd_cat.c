/* strata cat FILE LAYER: a layer's content, raw, on standard output. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata cat [--name] FILE LAYER\n"
    "\n"
    "Write the content of one layer of the region FILE to standard output,\n"
    "byte for byte. LAYER is a layer id when it is all decimal digits (any\n"
    "u64), and a layer name otherwise.\n"
    "\n"
    "Options:\n"
    "  --name      look LAYER up as a name even when it is all digits\n"
    "  -h, --help  show this help\n"
    "\n"
    "A reader that stops early (strata cat ... | head) ends the command\n"
    "quietly with status 0.\n"
    "\n"
    "Exit status: 0 ok, 1 no such layer, the file cannot be opened or read,\n"
    "or writing failed; 2 usage error.\n";

typedef struct layer_key {
  bool by_name;
  uint64_t id;
  const char *name;
} layer_key;

/* All digits means an id, unless --name. Returns false after a usage
 * error. */
static bool parse_key(const char *arg, bool force_name, layer_key *key,
                      int *code) {
  key->name = arg;
  key->by_name =
      force_name || arg[0] == '\0' || strspn(arg, "0123456789") != strlen(arg);
  if (key->by_name)
    return true;
  errno = 0;
  unsigned long long v = strtoull(arg, NULL, 10);
  if (errno == ERANGE) { /* unsigned long long is 64 bits on Linux */
    *code = cli_usage_error(&cli_cmd_cat,
                            "layer id '%s' is larger than 2^64-1 (use --name "
                            "for a name made of digits)",
                            arg);
    return false;
  }
  key->id = (uint64_t)v;
  return true;
}

/* Outcome of copying a layer out, decided under the SIGBUS guard and
 * reported once the guard is off. */
enum cat_result { CAT_OK, CAT_NOT_FOUND, CAT_WRITE_ERROR, CAT_MAP_ERROR };

static enum cat_result copy_out(const strata_region *r, const layer_key *key,
                                int *err) {
  strata_layer l;
  int rc = key->by_name
               ? strata_region_get_by_name(r, key->name, strlen(key->name), &l)
               : strata_region_get(r, key->id, &l);
  if (rc < 0)
    return CAT_NOT_FOUND;
  rc = cli_write_content(STDOUT_FILENO, l.data, l.size);
  /* write() from a page past the end of a truncated file fails with EFAULT
   * instead of raising SIGBUS: the same fault, reported alike. */
  if (rc == -EFAULT)
    return CAT_MAP_ERROR;
  if (rc < 0) {
    *err = -rc;
    return CAT_WRITE_ERROR;
  }
  return CAT_OK;
}

/* Opens the region and copies the layer out under the SIGBUS guard. Kept
 * apart from run() so that few locals live across sigsetjmp(). */
static int cat_layer(const char *path, const layer_key *key) {
  strata_region *volatile r = NULL;
  if (CLI_BUS_FAULTED()) {
    strata_region_close(r);
    return cli_fail("%s: %s", path, CLI_BUS_MESSAGE);
  }
  r = cli_open_region_guarded(path, STRATA_OPEN_SEQUENTIAL);
  if (r == NULL)
    return CLI_EXIT_FAIL;
  int err = 0;
  enum cat_result res = copy_out(r, key, &err);
  cli_bus_disarm();
  strata_region_close(r);

  switch (res) {
  case CAT_OK:
    return CLI_EXIT_OK;
  case CAT_NOT_FOUND:
    if (key->by_name)
      return cli_fail("%s: no layer named '%s'", path, key->name);
    return cli_fail("%s: no layer with id %s", path, key->name);
  case CAT_MAP_ERROR:
    return cli_fail("%s: %s", path, CLI_BUS_MESSAGE);
  case CAT_WRITE_ERROR:
    break;
  }
  if (err == EPIPE) /* the reader has all it wanted */
    return CLI_EXIT_OK;
  return cli_fail("writing layer content to standard output: %s",
                  strerror(err));
}

static int run(int argc, char **argv) {
  bool force_name = false;
  const cli_option opts[] = {{"--name", &force_name, NULL}};
  const char *pos[2];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_cat, argc, argv, opts, 1, pos, 2, 2, &npos,
                      &code))
    return code;
  layer_key key;
  if (!parse_key(pos[1], force_name, &key, &code))
    return code;
  return cat_layer(pos[0], &key);
}

const cli_command cli_cmd_cat = {
    .name = "cat",
    .synopsis = "[--name] FILE LAYER",
    .summary = "write a layer's content (by id or name) to standard output",
    .usage = usage,
    .run = run,
};
