/* The progress line (tool_progress.h). It is driven by callbacks that may
 * run after every layer and every few MiB of content, so redraws are
 * limited to ten a second to keep a region of tiny layers from spending its
 * time here. */
#include "tool_progress.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_INTERVAL 0.1 /* seconds */
/* The ETA waits for this much time and this share of the work: a rate
 * measured over less is dominated by start-up (opening files, the page
 * cache warming) and promised minutes that were seconds, or the reverse. */
#define ETA_MIN_SECONDS 1.0
#define ETA_MIN_SHARE 0.05

/* Whether the cursor sits at the end of a drawn line. Process-wide because
 * stderr is: any message must first end the line. Read by the signal
 * handler. */
static volatile sig_atomic_t line_open;

void tool_progress_break(void) {
  if (line_open) {
    fputc('\n', stderr);
    line_open = 0;
  }
}

void tool_progress_on_signal(void) {
  if (line_open) {
    /* Past whatever the stdio buffer held; stderr is unbuffered, and each
     * redraw is flushed, so nothing of the line is lost. */
    ssize_t n = write(STDERR_FILENO, "\n", 1);
    (void)n;
    line_open = 0;
  }
}

bool tool_progress_wanted(void) {
  const char *env = getenv("STRATA_PROGRESS");
  if (env != NULL && strcmp(env, "1") == 0)
    return true;
  if (env != NULL && strcmp(env, "0") == 0)
    return false;
  return isatty(STDERR_FILENO);
}

static const int finish_on[] = {SIGINT, SIGTERM, SIGHUP};
#define N_FINISH_ON (sizeof finish_on / sizeof finish_on[0])

/* Finishes the line, then dies of the signal as it would have without us
 * (SA_RESETHAND restored the default action; the signal raised here is
 * delivered when the handler returns). */
static void on_signal(int sig) {
  tool_progress_on_signal();
  raise(sig);
}

/* Installs on_signal where the signal has its default action, leaving a
 * tool's own handler (region-builder's, which removes its temporary file)
 * and an ignored signal (nohup) as they are. */
static void install_handlers(void) {
  for (size_t i = 0; i < N_FINISH_ON; i++) {
    struct sigaction old;
    if (sigaction(finish_on[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL)
      continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(finish_on[i], &sa, NULL);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tool_progress_start(tool_progress *p, bool enabled, const char *label,
                         uint64_t total_bytes, uint64_t total_layers) {
  *p = (tool_progress){.enabled = enabled,
                       .label = label,
                       .total = total_bytes,
                       .layers = total_layers,
                       .start = now()};
  if (enabled)
    install_handlers();
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

/* The ETA field, or "" while the rate is not known (see the header). */
static void eta(char *buf, size_t size, const tool_progress *p, double elapsed,
                double rate, uint64_t bytes, bool final) {
  buf[0] = '\0';
  if (final || p->total == 0 || p->draws == 0 || rate <= 0 ||
      elapsed < ETA_MIN_SECONDS ||
      (double)bytes < ETA_MIN_SHARE * (double)p->total)
    return;
  /* The total is exact for regular files, but a file may grow while it is
   * read: never a negative ETA. */
  uint64_t left = bytes < p->total ? p->total - bytes : 0;
  unsigned s = (unsigned)((double)left / rate + 0.5);
  snprintf(buf, size, "  ETA %u:%02u", s / 60, s % 60);
}

static void draw(tool_progress *p, double t, bool final) {
  uint64_t bytes = p->seen_bytes, layers = p->seen_layers;
  double elapsed = t - p->start;
  double rate = elapsed > 0 ? (double)bytes / elapsed : 0;
  char done[32], total[32], speed[32], eta_text[32];
  human(done, sizeof done, (double)bytes);
  human(speed, sizeof speed, rate);
  eta(eta_text, sizeof eta_text, p, elapsed, rate, bytes, final);
  fputc('\r', stderr);
  if (p->label != NULL)
    fprintf(stderr, "%s: ", p->label);
  if (p->total > 0) {
    human(total, sizeof total, (double)p->total);
    /* Never more than 100%, should a file grow while it is read. */
    double pct =
        bytes < p->total ? 100.0 * (double)bytes / (double)p->total : 100.0;
    fprintf(stderr, "%s / %s (%3.0f%%)  ", done, total, pct);
  } else {
    fprintf(stderr, "%s  ", done);
  }
  if (p->layers > 0)
    fprintf(stderr, "%llu/%llu layers", (unsigned long long)layers,
            (unsigned long long)p->layers);
  else
    fprintf(stderr, "%llu layers", (unsigned long long)layers);
  fprintf(stderr, "  %s/s%s\033[K", speed, eta_text);
  fflush(stderr);
  p->last = t;
  p->draws++;
  line_open = 1;
}

void tool_progress_update(void *ctx, uint64_t bytes, uint64_t layers) {
  tool_progress *p = ctx;
  if (!p->enabled)
    return;
  p->seen_bytes = bytes;
  p->seen_layers = layers;
  double t = now();
  if (p->draws > 0 && t - p->last < REDRAW_INTERVAL)
    return;
  draw(p, t, false);
}

int tool_progress_callback(void *ctx, const strata_progress *progress) {
  tool_progress *p = ctx;
  if (progress->bytes_total > 0)
    p->total = progress->bytes_total;
  if (progress->layers_total > 0)
    p->layers = progress->layers_total;
  tool_progress_update(ctx, progress->bytes_done, progress->layers_done);
  return 0;
}

void tool_progress_finish(tool_progress *p, bool success) {
  if (!p->enabled || p->draws == 0)
    return;
  /* The final counts, which the rate limit may have skipped. */
  if (success)
    draw(p, now(), true);
  tool_progress_break();
  p->enabled = false;
}
