/* The progress bar: one line on stderr, redrawn in place, only when stderr
 * is a terminal. It is driven by the writer's progress callback, which runs
 * after every layer and every few MiB of content, so redraws are limited to
 * ten a second to keep a region of tiny layers from spending its time here. */
#include <stdio.h>
#include <time.h>

#include "builder.h"

#define REDRAW_INTERVAL 0.1 /* seconds */

/* Whether the cursor sits at the end of a drawn bar. Process-wide because
 * stderr is: any message must first end the bar's line. */
static bool line_open;

void rb_progress_break(void) {
  if (line_open) {
    fputc('\n', stderr);
    line_open = false;
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rb_progress_init(rb_progress *p, bool enabled, uint64_t total_bytes,
                      uint64_t total_layers) {
  p->enabled = enabled;
  p->total = total_bytes;
  p->layers = total_layers;
  p->start = now();
  p->last = 0;
  p->drawn = false;
}

/* Formats a byte count with a binary unit. */
static void human(char *buf, size_t size, double bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    u++;
  }
  snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

void rb_progress_cb(void *ctx, uint64_t bytes, uint64_t layers) {
  rb_progress *p = ctx;
  if (!p->enabled)
    return;
  p->seen_bytes = bytes;
  p->seen_layers = layers;
  double t = now();
  if (p->drawn && t - p->last < REDRAW_INTERVAL)
    return;
  p->last = t;
  double elapsed = t - p->start;
  double rate = elapsed > 0 ? (double)bytes / elapsed : 0;
  char done[32], total[32], speed[32], eta[32] = "";
  human(done, sizeof done, (double)bytes);
  human(speed, sizeof speed, rate);
  if (p->total > 0) {
    human(total, sizeof total, (double)p->total);
    /* The total is exact for regular files, but a file may grow while it is
     * read: never show more than 100% or a negative ETA. */
    uint64_t left = bytes < p->total ? p->total - bytes : 0;
    if (rate > 0) {
      unsigned s = (unsigned)((double)left / rate + 0.5);
      snprintf(eta, sizeof eta, "  ETA %u:%02u", s / 60, s % 60);
    }
    double pct =
        bytes < p->total ? 100.0 * (double)bytes / (double)p->total : 100.0;
    fprintf(stderr, "\r%s / %s (%3.0f%%)  %llu/%llu layers  %s/s%s\033[K", done,
            total, pct, (unsigned long long)layers,
            (unsigned long long)p->layers, speed, eta);
  } else {
    fprintf(stderr, "\r%s  %llu layers  %s/s\033[K", done,
            (unsigned long long)layers, speed);
  }
  fflush(stderr);
  p->drawn = true;
  line_open = true;
}

void rb_progress_done(rb_progress *p, bool success) {
  if (!p->enabled || !p->drawn)
    return;
  if (success) {
    /* Redraw with the final counts, which the rate limit may have skipped. */
    p->drawn = false;
    rb_progress_cb(p, p->seen_bytes, p->seen_layers);
  }
  rb_progress_break();
  p->drawn = false;
}
