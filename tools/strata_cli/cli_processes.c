/* The shared view as the commands show it (readers, top, and the process
 * sections of stats, metrics and dump-state): reading the live processes,
 * picking one with --process, their sum, and one process as JSON. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_processes_read(const cli_command *cmd, const char *dir,
                       const char *pid_arg, cli_processes *out) {
  *out = (cli_processes){.pid = -1};
  if (pid_arg != NULL) {
    char *end;
    errno = 0;
    long long v = strtoll(pid_arg, &end, 10);
    if (pid_arg[0] == '\0' || *end != '\0' || errno != 0 || v <= 0)
      return cli_usage_error(cmd, "--process '%s' is not a process id",
                             pid_arg);
    out->pid = (int64_t)v;
  }
  int rc =
      strata_processes_read(dir, sizeof(strata_process), &out->list, &out->n);
  if (rc < 0)
    return cli_fail_lib(rc);
  if (out->pid > 0) {
    /* Keep only the chosen process's entries (one per store it opened). */
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++)
      if (out->list[i].pid == out->pid)
        out->list[k++] = out->list[i];
    out->n = k;
    if (k == 0) {
      cli_fail("%s: no live process with pid %" PRId64 " has the store open",
               dir, out->pid);
      cli_processes_free(out);
      return CLI_EXIT_FAIL;
    }
  }
  for (size_t i = 0; i < out->n; i++) {
    const strata_process *p = &out->list[i];
    strata_process *s = &out->sum;
    s->snapshots_open += p->snapshots_open;
    if (p->oldest_snapshot_unix_ms != 0 &&
        (s->oldest_snapshot_unix_ms == 0 ||
         p->oldest_snapshot_unix_ms < s->oldest_snapshot_unix_ms))
      s->oldest_snapshot_unix_ms = p->oldest_snapshot_unix_ms;
    s->snapshots += p->snapshots;
    s->gets += p->gets;
    s->misses += p->misses;
    s->bytes_served += p->bytes_served;
    s->crystallizations += p->crystallizations;
    s->crystallize_bytes += p->crystallize_bytes;
    s->evictions += p->evictions;
    s->heap_bytes += p->heap_bytes;
    s->staging_bytes += p->staging_bytes;
    s->staging_used_bytes += p->staging_used_bytes;
    s->staging_layers += p->staging_layers;
    if (p->memory_level > s->memory_level)
      s->memory_level = p->memory_level;
  }
  return CLI_EXIT_OK;
}

void cli_processes_free(cli_processes *p) {
  strata_processes_free(p->list);
  p->list = NULL;
  p->n = 0;
}

uint64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *cli_role_name(uint32_t role) {
  return role == STRATA_PROCESS_WRITER   ? "writer"
         : role == STRATA_PROCESS_READER ? "reader"
                                         : "unknown";
}

const char *cli_memory_level_name(uint32_t level) {
  static const char *const names[] = {"ok", "warn", "evict", "refuse"};
  return level < 4 ? names[level] : "unknown";
}

uint64_t cli_oldest_age_ms(const strata_process *p, uint64_t now) {
  if (p->oldest_snapshot_unix_ms == 0 || p->oldest_snapshot_unix_ms > now)
    return 0;
  return now - p->oldest_snapshot_unix_ms;
}

const char *cli_time_utc(uint64_t unix_ms, char buf[32]) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  if (unix_ms == 0 || gmtime_r(&t, &tm) == NULL ||
      strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, 32, "-");
  return buf;
}

json_t *cli_process_json(const strata_process *p, uint64_t now, bool sum) {
  json_t *o = json_object();
  if (!sum) {
    char t[32];
    json_object_set_new(o, "pid", json_integer((json_int_t)p->pid));
    json_object_set_new(o, "role", json_string(cli_role_name(p->role)));
    json_object_set_new(o, "slot", json_integer(p->slot));
    json_object_set_new(o, "opened",
                        json_string(cli_time_utc(p->opened_unix_ms, t)));
    json_object_set_new(o, "opened_unix_ms", cli_json_u64(p->opened_unix_ms));
    json_object_set_new(o, "updated_unix_ms", cli_json_u64(p->updated_unix_ms));
  }
#define FIELD(name) json_object_set_new(o, #name, cli_json_u64(p->name))
  FIELD(snapshots_open);
  json_object_set_new(o, "oldest_snapshot_age_ms",
                      cli_json_u64(cli_oldest_age_ms(p, now)));
  FIELD(snapshots);
  FIELD(gets);
  FIELD(misses);
  FIELD(bytes_served);
  FIELD(crystallizations);
  FIELD(crystallize_bytes);
  FIELD(evictions);
  FIELD(heap_bytes);
  if (!sum)
    FIELD(memory_limit);
  json_object_set_new(o, "memory_level",
                      json_string(cli_memory_level_name(p->memory_level)));
  FIELD(staging_bytes);
  FIELD(staging_used_bytes);
  FIELD(staging_layers);
#undef FIELD
  return o;
}

json_t *cli_processes_json(const cli_processes *p) {
  uint64_t now = cli_now_ms();
  json_t *list = json_array();
  for (size_t i = 0; i < p->n; i++)
    json_array_append_new(list, cli_process_json(&p->list[i], now, false));
  json_t *o = json_object();
  json_object_set_new(o, "live", cli_json_u64(p->n));
  json_object_set_new(o, "sum", cli_process_json(&p->sum, now, true));
  json_object_set_new(o, "list", list);
  return o;
}
