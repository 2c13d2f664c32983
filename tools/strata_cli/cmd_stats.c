/* strata stats STORE: the store's figures (strata_store_stats_get(),
 * strata_read_stats_get(), strata_store_pool_stats()) as a summary or
 * JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata stats [--json] [--process PID] STORE\n"
    "\n"
    "Open the store in directory STORE read-only and print its figures, one\n"
    "'label: value' line each: regions, protos, heap bytes and limit, open\n"
    "snapshots, retired bytes, version, crystallizations, evictions, refused\n"
    "puts, read statistics and the heap pool. These are the figures of a\n"
    "store just opened (the tool does not register in the shared view), so\n"
    "counters of what a process did (crystallizations, reads) are 0. Then\n"
    "the processes that have the store open, from its shared view\n"
    "(STORE/.strata.shm, see 'strata readers'): their sum and one line per\n"
    "process, as each last published them.\n"
    "\n"
    "Options:\n"
    "  --json          print a JSON object {path, store, reads, pool,\n"
    "                  processes: {live, sum, list}}\n"
    "  --process PID   only that process in the process section\n"
    "  -h, --help      show this help\n"
    "\n"
    "Exit status: 0 ok, 1 the store or its shared view cannot be read, or\n"
    "no live process has that pid, 2 usage error.\n";

typedef struct figures {
  cli_processes procs;
  strata_store_stats st;
  strata_read_stats rd;
  strata_pool_stats *pool;
  size_t pool_rows;
} figures;

static int collect(strata_store *s, figures *f) {
  int rc = strata_store_stats_get(s, &f->st);
  if (rc == 0)
    rc = strata_read_stats_get(s, &f->rd);
  if (rc < 0)
    return cli_fail_lib(rc);
  /* The row count first, then the rows; classes do not change at run
   * time, so a second call fills them all. */
  size_t n = strata_store_pool_stats(s, NULL, 0);
  f->pool = calloc(n ? n : 1, sizeof *f->pool);
  if (f->pool == NULL)
    return cli_fail("out of memory");
  f->pool_rows = strata_store_pool_stats(s, f->pool, n);
  if (f->pool_rows > n)
    f->pool_rows = n;
  return CLI_EXIT_OK;
}

#define LINE(label, ...)                                                       \
  do {                                                                         \
    printf("%-18s", label ":");                                                \
    printf(__VA_ARGS__);                                                       \
    fputc('\n', stdout);                                                       \
  } while (0)

static double ms(uint64_t ns) {
  return (double)ns / 1e6;
}

/* One process's figures (or their sum) after its label. */
static void process_line(const char *label, const strata_process *p,
                         uint64_t now) {
  printf("%-17s ", label); /* a space after a long label too */
  printf("%" PRIu64 " gets, %" PRIu64 " misses, %" PRIu64
         " bytes served; %" PRIu64 " snapshots open (oldest %" PRIu64
         " ms); %" PRIu64 " crystallizations; memory %s",
         p->gets, p->misses, p->bytes_served, p->snapshots_open,
         cli_oldest_age_ms(p, now), p->crystallizations,
         cli_memory_level_name(p->memory_level));
  fputc('\n', stdout);
}

static void print_processes(const cli_processes *p) {
  uint64_t now = cli_now_ms();
  LINE("processes", "%zu live (shared view)", p->n);
  if (p->n > 1)
    process_line("  sum:", &p->sum, now);
  for (size_t i = 0; i < p->n; i++) {
    char label[48];
    snprintf(label, sizeof label, "  pid %" PRId64 " %s:", p->list[i].pid,
             cli_role_name(p->list[i].role));
    process_line(label, &p->list[i], now);
  }
}

static void print_text(const char *dir, const figures *f) {
  const strata_store_stats *st = &f->st;
  const strata_read_stats *rd = &f->rd;
  fputs("store:            ", stdout);
  cli_print_escaped(stdout, dir, strlen(dir));
  fputc('\n', stdout);
  LINE("regions", "%" PRIu64, st->regions);
  LINE("protos", "%" PRIu64, st->protos);
  LINE("heap", "%" PRIu64 " bytes of %" PRIu64 " (%.1f%%)", st->heap_bytes,
       st->memory_limit,
       st->memory_limit
           ? 100.0 * (double)st->heap_bytes / (double)st->memory_limit
           : 0.0);
  LINE("snapshots open", "%" PRIu64 " (oldest %" PRIu64 " ms)",
       st->snapshots_open, st->oldest_snapshot_ms);
  LINE("retired", "%" PRIu64 " bytes in %" PRIu64 " objects", st->retired_bytes,
       st->retired_objects);
  LINE("version", "%" PRIu64, st->version);
  LINE("crystallizations",
       "%" PRIu64 " (%" PRIu64 " bytes; write %.3f ms, fsync %.3f ms)",
       st->crystallizations, st->crystallize_bytes,
       ms(st->crystallize_write_ns), ms(st->crystallize_fsync_ns));
  LINE("evictions", "%" PRIu64, st->evictions);
  LINE("puts refused", "%" PRIu64, st->puts_refused);
  LINE("reads",
       "%" PRIu64 " gets, %" PRIu64 " misses, %" PRIu64 " bytes served",
       rd->gets, rd->misses, rd->bytes_served);
  LINE("snapshots begun", "%" PRIu64 " (peak %" PRIu64 " open at once)",
       rd->snapshots, rd->peak_readers);
  uint64_t reserved = 0, requested = 0;
  for (size_t i = 0; i < f->pool_rows; i++) {
    reserved += f->pool[i].bytes_reserved;
    requested += f->pool[i].bytes_requested;
  }
  LINE("pool", "%" PRIu64 " bytes reserved, %" PRIu64 " requested", reserved,
       requested);
  /* Only the rows in use: a store just opened has none. */
  for (size_t i = 0; i < f->pool_rows; i++) {
    const strata_pool_stats *p = &f->pool[i];
    if (p->chunks == 0 && p->allocs == 0)
      continue;
    if (p->block_size != 0)
      printf("  %u-byte blocks: %" PRIu64 " of %" PRIu64 " used in %" PRIu64
             " chunks, %" PRIu64 " bytes reserved, fragmentation %.2f\n",
             p->block_size, p->blocks_used, p->blocks_total, p->chunks,
             p->bytes_reserved, p->fragmentation);
    else
      printf("  large blocks: %" PRIu64 " held, %" PRIu64 " bytes reserved\n",
             p->chunks, p->bytes_reserved);
  }
  print_processes(&f->procs);
}

static json_t *pool_row_json(const strata_pool_stats *p) {
  json_t *o = json_object();
  json_object_set_new(o, "block_size", json_integer(p->block_size));
  json_object_set_new(o, "chunks", cli_json_u64(p->chunks));
  json_object_set_new(o, "blocks_total", cli_json_u64(p->blocks_total));
  json_object_set_new(o, "blocks_used", cli_json_u64(p->blocks_used));
  json_object_set_new(o, "bytes_reserved", cli_json_u64(p->bytes_reserved));
  json_object_set_new(o, "bytes_requested", cli_json_u64(p->bytes_requested));
  json_object_set_new(o, "utilization", json_real(p->utilization));
  json_object_set_new(o, "fragmentation", json_real(p->fragmentation));
  json_object_set_new(o, "allocs", cli_json_u64(p->allocs));
  json_object_set_new(o, "frees", cli_json_u64(p->frees));
  json_object_set_new(o, "failures", cli_json_u64(p->failures));
  return o;
}

static json_t *to_json(const char *dir, const figures *f) {
  const strata_store_stats *st = &f->st;
  const strata_read_stats *rd = &f->rd;
  json_t *s = json_object();
#define FIELD(obj, src, name)                                                  \
  json_object_set_new(obj, #name, cli_json_u64(src->name))
  FIELD(s, st, regions);
  FIELD(s, st, protos);
  FIELD(s, st, heap_bytes);
  FIELD(s, st, memory_limit);
  FIELD(s, st, snapshots_open);
  FIELD(s, st, oldest_snapshot_ms);
  FIELD(s, st, retired_bytes);
  FIELD(s, st, retired_objects);
  FIELD(s, st, version);
  FIELD(s, st, crystallizations);
  FIELD(s, st, crystallize_bytes);
  FIELD(s, st, crystallize_write_ns);
  FIELD(s, st, crystallize_fsync_ns);
  FIELD(s, st, evictions);
  FIELD(s, st, puts_refused);
  json_t *r = json_object();
  FIELD(r, rd, gets);
  FIELD(r, rd, misses);
  FIELD(r, rd, bytes_served);
  FIELD(r, rd, snapshots);
  FIELD(r, rd, peak_readers);
#undef FIELD
  json_t *pool = json_array();
  for (size_t i = 0; i < f->pool_rows; i++)
    json_array_append_new(pool, pool_row_json(&f->pool[i]));
  json_t *o = json_object();
  json_object_set_new(o, "path", cli_json_text(dir, strlen(dir)));
  json_object_set_new(o, "store", s);
  json_object_set_new(o, "reads", r);
  json_object_set_new(o, "pool", pool);
  json_object_set_new(o, "processes", cli_processes_json(&f->procs));
  return o;
}

static int run(int argc, char **argv) {
  bool as_json = false;
  const char *pid = NULL;
  const cli_option opts[] = {{"--json", &as_json, NULL},
                             {"--process", NULL, &pid}};
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_stats, argc, argv, opts, 2, &dir, &code))
    return code;
  strata_store *s = cli_store_open(dir, true);
  if (s == NULL)
    return CLI_EXIT_FAIL;
  figures f = {0};
  code = collect(s, &f);
  strata_store_close(s);
  if (code == CLI_EXIT_OK)
    code = cli_processes_read(&cli_cmd_stats, dir, pid, &f.procs);
  if (code == CLI_EXIT_OK && as_json)
    code = cli_json_print(to_json(dir, &f));
  else if (code == CLI_EXIT_OK)
    print_text(dir, &f);
  free(f.pool);
  cli_processes_free(&f.procs);
  return code;
}

const cli_command cli_cmd_stats = {
    .name = "stats",
    .synopsis = "[--json] [--process PID] STORE",
    .summary = "print the store's figures: regions, memory, reads, pool",
    .usage = usage,
    .run = run,
};
