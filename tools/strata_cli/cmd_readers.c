/* strata readers STORE: the processes that have the store open, from its
 * shared view (strata_processes_read()); --check clears the slots of dead
 * ones (strata_processes_check()). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata readers [--json] [--process PID] STORE\n"
    "       strata readers --check STORE\n"
    "\n"
    "List the live processes that have the store in directory STORE open,\n"
    "as they registered in STORE/.strata.shm, without opening the store:\n"
    "pid, role (writer: holds the store's writer lock), when it opened the\n"
    "store, open snapshots and the age of the oldest, and its reads. The\n"
    "figures are published about once a second. Processes that died\n"
    "without closing the store are not listed; --check clears their slots\n"
    "and says how many it cleared (a store that opens reuses them anyway).\n"
    "\n"
    "Options:\n"
    "  --json           print {live, sum, list} as JSON\n"
    "  --process PID    only that process\n"
    "  --check          clear the slots of dead processes\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the shared view cannot be read (invalid file,\n"
    "permission) or no live process has that pid, 2 usage error.\n";

static void print_table(const cli_processes *p) {
  uint64_t now = cli_now_ms();
  printf("%-8s %-7s %-20s %5s %10s %12s %10s %14s\n", "PID", "ROLE", "OPENED",
         "SNAPS", "OLDEST_MS", "GETS", "MISSES", "BYTES");
  for (size_t i = 0; i < p->n; i++) {
    const strata_process *q = &p->list[i];
    char t[32];
    printf("%-8" PRId64 " %-7s %-20s %5" PRIu64 " %10" PRIu64 " %12" PRIu64
           " %10" PRIu64 " %14" PRIu64 "\n",
           q->pid, cli_role_name(q->role), cli_time_utc(q->opened_unix_ms, t),
           q->snapshots_open, cli_oldest_age_ms(q, now), q->gets, q->misses,
           q->bytes_served);
  }
}

static int run(int argc, char **argv) {
  bool as_json = false, check = false;
  const char *pid = NULL;
  const cli_option opts[] = {{"--json", &as_json, NULL},
                             {"--check", &check, NULL},
                             {"--process", NULL, &pid}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_readers, argc, argv, opts, 3, &dir, &code))
    return code;
  if (check && (as_json || pid != NULL))
    return cli_usage_error(&cli_cmd_readers,
                           "--check takes no --json or --process");
  if (check) {
    size_t cleared = 0;
    int rc = strata_processes_check(dir, &cleared);
    if (rc < 0)
      return cli_fail_lib(rc);
    cli_print_escaped(stdout, dir, strlen(dir));
    printf(": cleared %zu dead slot%s\n", cleared, cleared == 1 ? "" : "s");
    return CLI_EXIT_OK;
  }
  cli_processes p;
  if ((code = cli_processes_read(&cli_cmd_readers, dir, pid, &p)) != 0)
    return code;
  if (as_json)
    code = cli_json_print(cli_processes_json(&p));
  else
    print_table(&p);
  cli_processes_free(&p);
  return code;
}

const cli_command cli_cmd_readers = {
    .name = "readers",
    .synopsis = "[--json] [--process PID] STORE | --check STORE",
    .summary = "list the processes that have the store open",
    .usage = usage,
    .run = run,
};
