/* A progress line on stderr, shared by the tools (region-builder's builds
 * today; any long command of strata may use it): one line redrawn in place,
 *
 *   LABEL: 12.0 MiB / 40.0 MiB ( 30%)  3/10 layers  6.0 MiB/s  ETA 0:05
 *
 * drawn only when stderr is a terminal, so that pipes, logs and tests see
 * nothing. $STRATA_PROGRESS overrides that: "1" draws it whatever stderr
 * is (the tests use it), "0" never draws it (docs/CLI.md).
 *
 * The ETA appears only once the rate is known: not on the first line drawn,
 * and not before a second has passed and 5% of the work is done; before
 * that a rate measured over a few milliseconds would promise anything.
 *
 * The line is always finished: by tool_progress_finish(), by
 * tool_progress_break() before any message (the tools' error functions
 * call it), and by a newline written from the signal handler on SIGINT,
 * SIGTERM and SIGHUP (tool_progress_start() installs one that then dies of
 * the signal, unless the tool has its own, which calls
 * tool_progress_on_signal()).
 *
 * Use: tool_progress_start(), tool_progress_update() (as often as wanted:
 * redraws are limited to ten a second), tool_progress_finish(). One
 * progress line at a time; not thread-safe. */
#ifndef STRATA_TOOL_PROGRESS_H
#define STRATA_TOOL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include <strata/types.h>

typedef struct tool_progress {
  bool enabled;
  const char *label;                /* "verify", or NULL for none */
  uint64_t total;                   /* expected bytes, 0 when unknown */
  uint64_t layers;                  /* expected layers, 0 when unknown */
  double start, last;               /* monotonic seconds */
  uint64_t seen_bytes, seen_layers; /* as last reported */
  unsigned draws;                   /* lines drawn so far */
} tool_progress;

/* Whether progress lines are wanted: $STRATA_PROGRESS "1" or "0" when set,
 * whether stderr is a terminal otherwise. */
bool tool_progress_wanted(void);

/* Starts a progress line (drawn at the first update) when `enabled`
 * (usually tool_progress_wanted() and not --quiet). `label` must stay valid
 * until tool_progress_finish(). */
void tool_progress_start(tool_progress *p, bool enabled, const char *label,
                         uint64_t total_bytes, uint64_t total_layers);

/* Reports the work done so far (ctx: the tool_progress). */
void tool_progress_update(void *ctx, uint64_t bytes, uint64_t layers);

/* tool_progress_update() as a strata_progress_fn, to be handed to the
 * library as is (ctx: the tool_progress): the totals the library reports,
 * where it knows them, replace those given at the start. Returns 0: the
 * tools cancel nothing through it. */
int tool_progress_callback(void *ctx, const strata_progress *progress);

/* Ends the line, if one was drawn, after a last redraw with the final
 * counts when `success`. */
void tool_progress_finish(tool_progress *p, bool success);

/* Ends a drawn line so that a message can follow. */
void tool_progress_break(void);

/* For a tool's own signal handler: ends a drawn line with write(2), which
 * is async-signal-safe. */
void tool_progress_on_signal(void);

#endif
