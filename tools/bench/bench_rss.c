/* strata-bench: resident memory of this process, for the open scenario's
 * claim that opening a region maps its header and index, not its content. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long long size = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
      res = 0;
    fclose(f);
  }
  return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

bool bench_mapping_of(const char *path, uintptr_t *start, uint64_t *rss) {
  char real[4096];
  if (realpath(path, real) == NULL)
    return false;
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return false;
  char line[4096 + 256];
  bool in = false, found = false;
  *rss = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    int name_at = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &name_at) == 2 &&
        name_at > 0) {
      char *name = line + name_at;
      name[strcspn(name, "\n")] = '\0';
      in = !found && strcmp(name, real) == 0;
      if (in) {
        *start = (uintptr_t)lo;
        found = true;
      }
      continue;
    }
    unsigned long long kb;
    if (in && sscanf(line, "Rss: %llu kB", &kb) == 1)
      *rss = (uint64_t)kb << 10;
  }
  fclose(f);
  return found;
}

uint64_t bench_present_pages(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo)
    return 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  uint64_t count = 0, buf[512];
  for (uintptr_t p = lo; p < hi;) {
    size_t k = (size_t)((hi - p) / BENCH_PAGE);
    if (k > 512)
      k = 512;
    ssize_t got = pread(fd, buf, k * 8, (off_t)(p / BENCH_PAGE * 8));
    if (got <= 0)
      break;
    for (size_t i = 0; i < (size_t)got / 8; i++)
      count += buf[i] >> 63;
    p += (uintptr_t)got / 8 * BENCH_PAGE;
  }
  close(fd);
  return count;
}
