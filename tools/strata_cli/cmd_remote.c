/* strata remote ls|status|gc|unlock POOL/NAME: administration of a remote
 * store without a local store (strata_remote_connect() and the calls after
 * it in <strata/remote.h>). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata remote ls [--json] POOL/NAME [--conf FILE]\n"
    "       strata remote status [--json] POOL/NAME [--conf FILE]\n"
    "       strata remote gc [--keep K] [--verify] POOL/NAME [--conf FILE]\n"
    "       strata remote unlock POOL/NAME [--conf FILE]\n"
    "\n"
    "Look at and maintain the remote store NAME in the Ceph RADOS pool POOL\n"
    "(docs/REMOTE.md):\n"
    "  ls      the versions whose manifests are present, oldest first, one a\n"
    "          line: VERSION, REGIONS, BYTES (the region files' total) and\n"
    "          'head' for HEAD's version ('-' for the others), tab-separated;\n"
    "          --json: the remote's whole description, with each version's\n"
    "          regions\n"
    "  status  HEAD (version, fence, manifest, publisher), the publisher\n"
    "          lock's holder, the objects and bytes in the pool, and each\n"
    "          follower's pin: node, version served, version being fetched,\n"
    "          seconds since it was written; --json: the description\n"
    "  gc      remove every object that neither the last K versions up to\n"
    "          HEAD nor a follower's pin reaches (older manifests, chunks of\n"
    "          publishes that died half-way, stale pins), under the\n"
    "          publisher lock; --verify also reads every chunk kept and\n"
    "          removes those whose bytes do not match their checksum (the\n"
    "          next push uploads them again)\n"
    "  unlock  break the publisher lock at once, for a holder known to be\n"
    "          dead (its lease would free it within 30 s anyway)\n"
    "\n"
    "Options:\n"
    "  --conf FILE  the cluster's ceph.conf (default: librados' search:\n"
    "               $CEPH_CONF, /etc/ceph/ceph.conf, ...)\n"
    "  --json       ls, status: print JSON\n"
    "  --keep K     gc: the versions kept up to HEAD (default 10)\n"
    "  --verify     gc: read and check every chunk kept\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 ok; 1 the cluster failed or refused (gc while a push\n"
    "runs: 'POOL/NAME: locked by ...'); 2 usage error.\n";

/* A u64 member of a description (jansson's integers are signed; a number
 * past INT64_MAX would come as a string, as cli_json_u64() writes them). */
static uint64_t member_u64(const json_t *o, const char *key) {
  const json_t *v = json_object_get(o, key);
  if (json_is_integer(v))
    return (uint64_t)json_integer_value(v);
  if (json_is_string(v))
    return strtoull(json_string_value(v), NULL, 10);
  return 0;
}

static const char *member_text(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s != NULL ? s : "-";
}

/* A version's region count: a number, or (in a description made with
 * its regions) the list's length. */
static uint64_t version_regions(const json_t *v) {
  const json_t *regions = json_object_get(v, "regions");
  return json_is_array(regions) ? json_array_size(regions)
                                : member_u64(v, "regions");
}

static int print_ls(const json_t *d) {
  const json_t *head = json_object_get(d, "head");
  bool has_head = json_is_object(head);
  uint64_t head_version = has_head ? member_u64(head, "version") : 0;
  size_t i;
  const json_t *v;
  json_array_foreach(json_object_get(d, "versions"), i, v) {
    uint64_t version = member_u64(v, "version");
    printf("%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%s\n", version,
           version_regions(v), member_u64(v, "bytes"),
           has_head && version == head_version ? "head" : "-");
  }
  return CLI_EXIT_OK;
}

static int print_status(const json_t *d) {
  cli_print_line(stdout, "remote: %s/%s", member_text(d, "pool"),
                 member_text(d, "name"));
  const json_t *head = json_object_get(d, "head");
  if (json_is_object(head)) {
    cli_print_line(stdout, "head: version %" PRIu64 ", fence %" PRIu64 ", %s",
                   member_u64(head, "version"), member_u64(head, "fence"),
                   member_text(head, "manifest"));
    cli_print_line(stdout, "publisher: %s", member_text(head, "publisher"));
  } else {
    fputs("head: none (nothing published)\n", stdout);
  }
  const json_t *lock = json_object_get(d, "lock");
  if (json_is_object(lock))
    cli_print_line(stdout, "lock: held by %s (cookie %s)",
                   member_text(lock, "holder"), member_text(lock, "cookie"));
  else
    fputs("lock: free\n", stdout);
  printf("versions: %zu\n", json_array_size(json_object_get(d, "versions")));
  printf("objects: %" PRIu64 " (%" PRIu64 " bytes)\n", member_u64(d, "objects"),
         member_u64(d, "bytes"));
  const json_t *pins = json_object_get(d, "pins");
  printf("pins: %zu\n", json_array_size(pins));
  size_t i;
  const json_t *p;
  json_array_foreach(pins, i, p) {
    /* "fetching" is null while the follower fetches nothing. */
    char fetching[24] = "-";
    if (json_is_integer(json_object_get(p, "fetching")))
      snprintf(fetching, sizeof fetching, "%" PRIu64,
               member_u64(p, "fetching"));
    cli_print_line(stdout,
                   "  %s: serving %" PRIu64 ", fetching %s, written %" PRIu64
                   " s ago",
                   member_text(p, "node"), member_u64(p, "serving"), fetching,
                   member_u64(p, "age_s"));
  }
  return CLI_EXIT_OK;
}

static int describe(strata_remote *remote, bool ls, bool as_json) {
  char *text = NULL;
  int rc = strata_remote_describe(remote, ls && as_json, &text);
  if (rc < 0)
    return cli_fail_lib(rc);
  json_error_t err;
  json_t *d = json_loads(text, 0, &err);
  free(text);
  if (!json_is_object(d)) {
    json_decref(d);
    return cli_fail("the library's description is not a JSON object: %s "
                    "(line %d)",
                    err.text, err.line);
  }
  if (as_json)
    return cli_json_print(d);
  int code = ls ? print_ls(d) : print_status(d);
  json_decref(d);
  return code;
}

static int gc(strata_remote *remote, const cli_remote_arg *r, unsigned keep,
              bool verify) {
  strata_remote_gc_result res;
  memset(&res, 0, sizeof res);
  int rc = strata_remote_gc(remote, keep, verify, &res);
  if (rc < 0)
    return cli_fail_lib(rc);
  char corrupt[64] = "";
  if (verify)
    snprintf(corrupt, sizeof corrupt, ", of them %" PRIu64 " corrupt chunks",
             res.chunks_corrupt);
  cli_print_line(stdout,
                 "%s/%s: kept %" PRIu64 " objects, removed %" PRIu64
                 " objects (%" PRIu64 " bytes)%s",
                 r->pool, r->name, res.objects_kept, res.objects_removed,
                 res.bytes_removed, corrupt);
  return CLI_EXIT_OK;
}

static int unlock(strata_remote *remote, const cli_remote_arg *r) {
  char *holder = NULL;
  int rc = strata_remote_unlock(remote, &holder);
  if (rc < 0)
    return cli_fail_lib(rc);
  if (holder != NULL)
    cli_print_line(stdout, "%s/%s: broke the lock of %s", r->pool, r->name,
                   holder);
  else
    cli_print_line(stdout, "%s/%s: not locked", r->pool, r->name);
  free(holder);
  return CLI_EXIT_OK;
}

enum sub { SUB_LS, SUB_STATUS, SUB_GC, SUB_UNLOCK };
static const char *const sub_names[] = {"ls", "status", "gc", "unlock"};

static int run(int argc, char **argv) {
  const char *conf = NULL, *keep_arg = NULL;
  bool as_json = false, verify = false;
  const cli_option opts[] = {
      {"--conf", NULL, &conf},
      {"--json", &as_json, NULL},
      {"--keep", NULL, &keep_arg},
      {"--verify", &verify, NULL},
  };
  const char *pos[2];
  size_t npos;
  int code;
  if (!cli_parse_args(&cli_cmd_remote, argc, argv, opts, 4, pos, 2, 2, &npos,
                      &code))
    return code;
  size_t sub = 0;
  while (sub < 4 && strcmp(pos[0], sub_names[sub]) != 0)
    sub++;
  if (sub == 4)
    return cli_usage_error(&cli_cmd_remote,
                           "unknown subcommand '%s' (expected ls, status, "
                           "gc or unlock)",
                           pos[0]);
  if (as_json && sub != SUB_LS && sub != SUB_STATUS)
    return cli_usage_error(&cli_cmd_remote,
                           "--json applies to 'remote ls' and 'remote "
                           "status' only");
  if ((keep_arg != NULL || verify) && sub != SUB_GC)
    return cli_usage_error(&cli_cmd_remote, "%s applies to 'remote gc' only",
                           keep_arg != NULL ? "--keep" : "--verify");
  uint32_t keep = 0;
  if (keep_arg != NULL &&
      !cli_parse_u32(&cli_cmd_remote, "--keep", keep_arg, false, &keep, &code))
    return code;
  /* 0 is the library's "the default": a user who typed it meant none,
   * which would collect HEAD's own version. */
  if (keep_arg != NULL && keep == 0)
    return cli_usage_error(&cli_cmd_remote,
                           "--keep must be at least 1 (HEAD's version is "
                           "always kept)");
  cli_remote_arg r;
  if (!cli_parse_remote(&cli_cmd_remote, "argument", pos[1], &r, &code))
    return code;
  strata_remote *remote = cli_remote_connect(&r, conf);
  code = CLI_EXIT_FAIL;
  if (remote != NULL) {
    switch ((enum sub)sub) {
    case SUB_LS:
    case SUB_STATUS:
      code = describe(remote, sub == SUB_LS, as_json);
      break;
    case SUB_GC:
      code = gc(remote, &r, keep, verify);
      break;
    case SUB_UNLOCK:
      code = unlock(remote, &r);
      break;
    }
  }
  strata_remote_disconnect(remote);
  cli_remote_arg_free(&r);
  return code;
}

const cli_command cli_cmd_remote = {
    .name = "remote",
    .synopsis = "ls|status|gc|unlock POOL/NAME",
    .summary = "list, inspect, collect or unlock a remote store",
    .usage = usage,
    .run = run,
};
