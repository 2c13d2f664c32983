/* strata top STORE: a refreshing view of the processes that have the store
 * open (its shared view): gets per second, hit rate, snapshots, memory
 * level and staging use, one line per process. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata top [--interval SECONDS] [--count N] STORE\n"
    "\n"
    "Show the processes that have the store in directory STORE open, from\n"
    "STORE/.strata.shm, refreshed every SECONDS (default 1): gets per\n"
    "second since the previous table ('-' in the first), hit rate, open\n"
    "snapshots and the oldest one's age, memory level, heap bytes and\n"
    "staging pool use. On a terminal the screen is redrawn; otherwise the\n"
    "tables follow one another, separated by a blank line, with no escape\n"
    "codes.\n"
    "\n"
    "Options:\n"
    "  --interval SECONDS  time between tables (0.1 to 3600; default 1)\n"
    "  --count N           stop after N tables (default: until interrupted)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the shared view cannot be read, 2 usage error.\n";

/* The previous table's gets of each process, by pid and slot. */
typedef struct prev {
  int64_t pid;
  uint32_t slot;
  uint64_t gets;
} prev;

static bool find_prev(const prev *pv, size_t n, const strata_process *p,
                      uint64_t *gets) {
  for (size_t i = 0; i < n; i++)
    if (pv[i].pid == p->pid && pv[i].slot == p->slot) {
      *gets = pv[i].gets;
      return true;
    }
  return false;
}

static void print_table(const char *dir, const cli_processes *p, const prev *pv,
                        size_t npv, double secs) {
  uint64_t now = cli_now_ms();
  char t[32];
  printf("strata top: ");
  cli_print_escaped(stdout, dir, strlen(dir));
  printf("  %s  %zu live\n", cli_time_utc(now, t), p->n);
  printf("%-8s %-7s %10s %6s %5s %10s %-6s %14s %14s\n", "PID", "ROLE",
         "GETS/S", "HIT%", "SNAPS", "OLDEST_MS", "MEMORY", "HEAP", "STAGING");
  for (size_t i = 0; i < p->n; i++) {
    const strata_process *q = &p->list[i];
    char rate[32] = "-", hit[16] = "-", staging[32] = "-";
    uint64_t before;
    if (find_prev(pv, npv, q, &before) && q->gets >= before && secs > 0)
      snprintf(rate, sizeof rate, "%.0f", (double)(q->gets - before) / secs);
    if (q->gets > 0)
      snprintf(hit, sizeof hit, "%.1f",
               100.0 * (double)(q->gets - q->misses) / (double)q->gets);
    if (q->staging_bytes > 0)
      snprintf(staging, sizeof staging, "%.1f%%",
               100.0 * (double)q->staging_used_bytes /
                   (double)q->staging_bytes);
    printf("%-8" PRId64 " %-7s %10s %6s %5" PRIu64 " %10" PRIu64
           " %-6s %14" PRIu64 " %14s\n",
           q->pid, cli_role_name(q->role), rate, hit, q->snapshots_open,
           cli_oldest_age_ms(q, now), cli_memory_level_name(q->memory_level),
           q->heap_bytes, staging);
  }
}

static int run(int argc, char **argv) {
  const char *interval_arg = NULL, *count_arg = NULL;
  const cli_option opts[] = {{"--interval", NULL, &interval_arg},
                             {"--count", NULL, &count_arg}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_top, argc, argv, opts, 2, &dir, &code))
    return code;
  double interval = 1.0;
  unsigned long long count = 0; /* 0: no end */
  char *end;
  if (interval_arg != NULL) {
    errno = 0;
    interval = strtod(interval_arg, &end);
    if (interval_arg[0] == '\0' || *end != '\0' || errno != 0 ||
        !(interval >= 0.1 && interval <= 3600))
      return cli_usage_error(&cli_cmd_top,
                             "--interval '%s' is not a number of seconds "
                             "from 0.1 to 3600",
                             interval_arg);
  }
  if (count_arg != NULL) {
    errno = 0;
    count = strtoull(count_arg, &end, 10);
    if (count_arg[0] < '0' || count_arg[0] > '9' || *end != '\0' ||
        errno != 0 || count == 0)
      return cli_usage_error(
          &cli_cmd_top, "--count '%s' is not a positive number", count_arg);
  }
  bool tty = isatty(STDOUT_FILENO);
  prev *pv = NULL;
  size_t npv = 0;
  struct timespec last = {0, 0};
  code = CLI_EXIT_OK;
  for (unsigned long long k = 0; count == 0 || k < count; k++) {
    if (k > 0) {
      struct timespec ts = {
          (time_t)interval,
          (long)((interval - (double)(time_t)interval) * 1e9)};
      nanosleep(&ts, NULL);
    }
    cli_processes p;
    if ((code = cli_processes_read(&cli_cmd_top, dir, NULL, &p)) != 0)
      break;
    if (tty)
      fputs("\033[H\033[2J", stdout);
    else if (k > 0)
      fputc('\n', stdout);
    /* The rate over the time that really passed since the last table. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double secs = (double)(now.tv_sec - last.tv_sec) +
                  (double)(now.tv_nsec - last.tv_nsec) / 1e9;
    last = now;
    print_table(dir, &p, pv, npv, secs);
    fflush(stdout);
    prev *next = malloc((p.n ? p.n : 1) * sizeof *next);
    if (next == NULL) {
      cli_processes_free(&p);
      code = cli_fail("out of memory");
      break;
    }
    for (size_t i = 0; i < p.n; i++)
      next[i] = (prev){p.list[i].pid, p.list[i].slot, p.list[i].gets};
    free(pv);
    pv = next;
    npv = p.n;
    cli_processes_free(&p);
    if (ferror(stdout))
      break; /* the reader went away: cli_stdout_close reports it */
  }
  free(pv);
  return code;
}

const cli_command cli_cmd_top = {
    .name = "top",
    .synopsis = "[--interval SECONDS] [--count N] STORE",
    .summary = "a refreshing view of the processes using the store",
    .usage = usage,
    .run = run,
};
