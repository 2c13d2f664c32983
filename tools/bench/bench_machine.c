/* strata-bench: the machine a run is on, at the head of every report. */
#include <cdb.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "strata.h"

void bench_machine_read(bench_machine *m, const char *dir) {
  snprintf(m->cpu, sizeof m->cpu, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "model name", 10) == 0) {
      char *v = strchr(line, ':');
      if (v != NULL) {
        v += 1 + strspn(v + 1, " \t");
        v[strcspn(v, "\n")] = '\0';
        snprintf(m->cpu, sizeof m->cpu, "%s", v);
      }
      break;
    }
  }
  if (f != NULL)
    fclose(f);
  struct utsname u;
  if (uname(&u) == 0)
    snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release,
             u.machine);
  m->cores = sysconf(_SC_NPROCESSORS_ONLN);
  m->mem_mib =
      (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) >> 20;
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(m->date, sizeof m->date, "%Y-%m-%d %H:%M UTC", &tm);
  snprintf(m->fs_dir, sizeof m->fs_dir, "%s", dir);
}

void bench_machine_print(FILE *f, const bench_machine *m,
                         const bench_options *o) {
  fprintf(f, "strata-bench: strata %s, %s, tinycdb %.2f\n",
          strata_version_string(), mdb_version(NULL, NULL, NULL),
          TINYCDB_VERSION);
  fprintf(f, "machine: %s, %ld cores online, %" PRIu64 " MiB RAM\n", m->cpu,
          m->cores, m->mem_mib);
  fprintf(f, "kernel:  %s\n", m->kernel);
  fprintf(f, "date:    %s; files in %s; compiler gcc %s\n", m->date, m->fs_dir,
          __VERSION__);
  fprintf(f,
          "gets:    %" PRIu64 " random gets per peer per rep (uniform; zipf: "
          "Zipf s=1.1), %d reps, median reported; 1 thread; each get reads the "
          "value's "
          "first and last byte\n\n",
          o->gets, o->reps);
}

void bench_machine_json(FILE *f, const bench_machine *m) {
  fprintf(
      f,
      "  \"machine\": {\"cpu\": \"%s\", \"cores\": %ld, \"mem_mib\": %" PRIu64
      ", \"kernel\": \"%s\", \"date\": \"%s\"},\n",
      m->cpu, m->cores, m->mem_mib, m->kernel, m->date);
  fprintf(f,
          "  \"versions\": {\"strata\": \"%s\", \"lmdb\": \"%s\", "
          "\"tinycdb\": \"%.2f\"},\n",
          strata_version_string(), mdb_version(NULL, NULL, NULL),
          TINYCDB_VERSION);
}
