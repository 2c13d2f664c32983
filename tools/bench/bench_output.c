/* strata-bench: output helpers every scenario's report uses. */
#include <stdio.h>

#include "bench.h"

void bench_json_stat(FILE *f, const char *k, bench_stat s) {
  fprintf(f, "\"%s\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f}", k,
          s.median, s.min, s.max);
}

static const char *met(double v, double limit, bool at_most) {
  return (at_most ? v <= limit : v >= limit) ? "met" : "MISSED";
}

void bench_print_targets(FILE *f, const bench_target *t, int k) {
  for (int i = 0; i < k; i++)
    fprintf(f, "  target: %-38s %s %-6g measured %8.2f  %s\n", t[i].what,
            t[i].at_most ? "<=" : ">=", t[i].limit, t[i].value,
            met(t[i].value, t[i].limit, t[i].at_most));
  fputc('\n', f);
}
