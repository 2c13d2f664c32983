/* strata metrics STORE: the store's figures in the Prometheus text format,
 * as strata_metrics_text() renders them. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata metrics [--process PID] STORE\n"
    "\n"
    "Open the store in directory STORE read-only and print its metrics in\n"
    "the Prometheus text exposition format, version 0.0.4\n"
    "(strata_metrics_text()): strata_* metrics with HELP and TYPE lines,\n"
    "per-region series labelled region_id and region. Those figures are of\n"
    "a store just opened, with no protos and nothing read yet (the tool does\n"
    "not register in the shared view). Then strata_processes_live and\n"
    "strata_process_* series labelled pid, slot and role: the processes\n"
    "that have the store open, from its shared view (STORE/.strata.shm, see\n"
    "'strata readers').\n"
    "\n"
    "Options:\n"
    "  --process PID  only that process's strata_process_* series\n"
    "  -h, --help     show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store or its shared view cannot be read, or\n"
    "no live process has that pid, 2 usage error.\n";

/* The per-process series, one metric family per figure. */
static void print_processes(const cli_processes *p) {
  printf("# HELP strata_processes_live Processes that have the store open "
         "(shared view).\n"
         "# TYPE strata_processes_live gauge\n"
         "strata_processes_live %zu\n",
         p->n);
  static const struct {
    const char *name, *type, *help;
    size_t offset;
  } fams[] = {
/* Counters end in _total, as the exposition format's conventions ask. */
#define FAM(field, suffix, type, help)                                         \
  {#field suffix, type, help, offsetof(strata_process, field)}
      FAM(gets, "_total", "counter", "Lookups by the process."),
      FAM(misses, "_total", "counter", "Lookups that found nothing."),
      FAM(bytes_served, "_total", "counter",
          "Content bytes of the layers found."),
      FAM(snapshots, "_total", "counter", "Outermost snapshots begun."),
      FAM(snapshots_open, "", "gauge", "Snapshots open now."),
      FAM(crystallizations, "_total", "counter",
          "Crystallizations by the process."),
      FAM(heap_bytes, "", "gauge", "Heap bytes held by its protos."),
      FAM(staging_used_bytes, "", "gauge", "Staging pool bytes in use."),
#undef FAM
  };
  for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
    printf("# HELP strata_process_%s %s\n# TYPE strata_process_%s %s\n",
           fams[f].name, fams[f].help, fams[f].name, fams[f].type);
    for (size_t i = 0; i < p->n; i++) {
      uint64_t v;
      memcpy(&v, (const char *)&p->list[i] + fams[f].offset, sizeof v);
      printf("strata_process_%s{pid=\"%" PRId64 "\",slot=\"%" PRIu32
             "\",role=\"%s\"} %" PRIu64 "\n",
             fams[f].name, p->list[i].pid, p->list[i].slot,
             cli_role_name(p->list[i].role), v);
    }
  }
}

static int run(int argc, char **argv) {
  const char *pid = NULL;
  const cli_option opts[] = {{"--process", NULL, &pid}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_metrics, argc, argv, opts, 1, &dir, &code))
    return code;
  cli_processes procs;
  if ((code = cli_processes_read(&cli_cmd_metrics, dir, pid, &procs)) != 0)
    return code;
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL) {
    cli_processes_free(&procs);
    return CLI_EXIT_FAIL;
  }
  char *text = NULL;
  int rc = strata_metrics_text(s, &text);
  code = rc < 0 ? cli_fail_lib(rc) : CLI_EXIT_OK;
  strata_store_close(s);
  if (text != NULL) {
    size_t len = strlen(text);
    fputs(text, stdout);
    if (len > 0 && text[len - 1] != '\n')
      fputc('\n', stdout);
    if (code == CLI_EXIT_OK)
      print_processes(&procs);
  }
  strata_free(text);
  cli_processes_free(&procs);
  return code;
}

const cli_command cli_cmd_metrics = {
    .name = "metrics",
    .synopsis = "[--process PID] STORE",
    .summary = "print the store's metrics in the Prometheus text format",
    .usage = usage,
    .run = run,
};
