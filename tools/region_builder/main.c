/* region-builder: builds a region file from a manifest, a JSONL stream of
 * layers or a directory tree. This file reads the command line and hands
 * over to one mode; docs/MANIFEST.md describes the inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tool_args.h"
#include "../common/tool_stdout.h"
#include "builder.h"

static void usage(FILE *f) {
  fputs(
      "usage: region-builder -o OUT.region [options] MANIFEST.json\n"
      "       region-builder -o OUT.region [options] --jsonl LAYERS.jsonl\n"
      "                      --id N --name NAME [--metadata JSON]\n"
      "       region-builder -o OUT.region [options] --from-dir DIR\n"
      "                      --id N --name NAME [--metadata JSON]\n"
      "\n"
      "Builds a Strata region file. The region appears at OUT.region only\n"
      "when it is complete: on any error or interruption nothing is left.\n"
      "In a store's directory (one holding .strata.lock) it holds the\n"
      "store's writer lock while it writes, and refuses to start while a\n"
      "store process holds it (\"store is locked by pid N\").\n"
      "\n"
      "Inputs (see docs/MANIFEST.md):\n"
      "  MANIFEST.json      {\"region\": {...}, \"layers\": [...]}; \"file\"\n"
      "                     paths are relative to the manifest's directory\n"
      "  --jsonl FILE       one layer object per line (blank lines skipped);\n"
      "                     \"file\" paths are relative to FILE's directory\n"
      "  --from-dir DIR     one layer per regular file under DIR, named by "
      "its\n"
      "                     relative path, ids 0..n-1 in sorted path order;\n"
      "                     symlinks and special files are skipped\n"
      "\n"
      "Options:\n"
      "  -o, --output FILE  the region to write (required): a new file or a\n"
      "                     regular file to replace; a symlink, FIFO,\n"
      "                     directory or device there is refused\n"
      "  --id N             region id (u64), for --jsonl and --from-dir\n"
      "  --name NAME        region name, for --jsonl and --from-dir\n"
      "  --metadata JSON    region metadata, for --jsonl and --from-dir\n"
      "  --align N          content alignment: a power of two from 16 to\n"
      "                     65536 (default 64; use 256 for GPU staging)\n"
      "  -q, --quiet        no progress line and no notes on stderr (the\n"
      "                     progress line is drawn only when stderr is a\n"
      "                     terminal, or when STRATA_PROGRESS=1)\n"
      "  -v, --verbose      print a one-line summary on stdout when done\n"
      "  -h, --help         print this help and exit\n"
      "  -V, --version      print the library version and exit\n"
      "\n"
      "Layer ids are u64: JSON integers >= 0, or strings of decimal digits\n"
      "for ids above 9223372036854775807 (e.g. \"18446744073709551615\").\n"
      "\n"
      "Exit status:\n"
      "  0  the region was written\n"
      "  1  bad input or failure (the message names the file and place)\n"
      "  2  usage error (unknown option, missing argument)\n",
      f);
}

static int usage_error(const char *fmt, const char *arg) {
  tool_usage_error("region-builder", NULL, fmt, arg);
  return RB_EXIT_USAGE;
}

/* --align is checked here, against the range strata.h documents, so that
 * the message can name the option rather than the writer's arguments. */
static bool parse_align(const char *s, uint32_t *out) {
  uint64_t v;
  if (!rb_parse_u64(s, &v) || v < 16 || v > 65536 || (v & (v - 1)) != 0)
    return false;
  *out = (uint32_t)v;
  return true;
}

static int run(int argc, char **argv) {
  rb_options opt = {0};
  const char *jsonl = NULL, *from_dir = NULL, *id = NULL, *align = NULL;
  const tool_opt opts[] = {
      {"output", 'o', NULL, &opt.out},
      {"quiet", 'q', &opt.quiet, NULL},
      {"verbose", 'v', &opt.verbose, NULL},
      {"id", 0, NULL, &id},
      {"name", 0, NULL, &opt.region_name},
      {"metadata", 0, NULL, &opt.region_metadata},
      {"align", 0, NULL, &align},
      {"jsonl", 0, NULL, &jsonl},
      {"from-dir", 0, NULL, &from_dir},
  };
  const char *pos[1];
  size_t positional;
  const tool_args a = {
      "region-builder", NULL, opts, sizeof opts / sizeof opts[0], pos, 1};
  switch (tool_args_parse(&a, argc, argv, &positional)) {
  case TOOL_ARGS_HELP:
    usage(stdout);
    return RB_EXIT_OK;
  case TOOL_ARGS_VERSION:
    printf("region-builder (strata) %s\n", strata_version_string());
    return RB_EXIT_OK;
  case TOOL_ARGS_USAGE:
    return RB_EXIT_USAGE;
  case TOOL_ARGS_OK:
    break;
  }
  if (!tool_check_log_env("region-builder"))
    return RB_EXIT_USAGE;
  if (align != NULL && !parse_align(align, &opt.align)) {
    rb_error(NULL, "--align %s: must be a power of two from 16 to 65536",
             align);
    return RB_EXIT_FAIL;
  }
  if (opt.out == NULL || opt.out[0] == '\0')
    return usage_error("%s", "missing -o OUT.region");
  if (jsonl && from_dir)
    return usage_error("%s", "--jsonl and --from-dir cannot be combined");
  if (!jsonl && !from_dir) {
    if (positional != 1)
      return usage_error("%s", "missing MANIFEST.json");
    if (id || opt.region_name || opt.region_metadata)
      return usage_error("%s", "--id, --name and --metadata are for --jsonl "
                               "and --from-dir; a manifest names its region");
    return rb_check_output(opt.out) < 0 ? RB_EXIT_FAIL
                                        : rb_build_manifest(&opt, pos[0]);
  }
  if (positional != 0)
    return usage_error("unexpected argument '%s'", pos[0]);
  if (id == NULL || opt.region_name == NULL)
    return usage_error("%s", "--id and --name are required with --jsonl and "
                             "--from-dir");
  if (!rb_parse_u64(id, &opt.region_id)) {
    rb_error(NULL,
             "--id %s: must be a decimal integer from 0 to "
             "18446744073709551615",
             id);
    return RB_EXIT_FAIL;
  }
  if (rb_check_output(opt.out) < 0)
    return RB_EXIT_FAIL;
  return jsonl ? rb_build_jsonl(&opt, jsonl)
               : rb_build_from_dir(&opt, from_dir);
}

int main(int argc, char **argv) {
  tool_stdout_open();
  /* --help, --version and the -v summary: output that went nowhere is a
   * failure, and a reader that went away is not, as in strata
   * (tool_stdout_finish(), docs/CLI.md). */
  return tool_stdout_finish("region-builder", run(argc, argv));
}
