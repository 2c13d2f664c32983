/* Standard output that reports a failed write, shared by the tools
 * (strata, region-builder). A tool whose output went nowhere must not exit
 * 0: stdio keeps only an error flag, and errno is overwritten by whatever
 * runs between a failed write deep inside a command and the check at the
 * end of main(), so the stream of tool_stdout_open() records the errno
 * where the write fails, and tool_stdout_close() hands it back.
 *
 * Compiled into each tool from tools/common/tool_stdout.c (the tools link
 * the public API only, so there is no library of tool helpers). */
#ifndef STRATA_TOOL_STDOUT_H
#define STRATA_TOOL_STDOUT_H

#include <stddef.h>

/* Replaces stdout with a stream that writes to file descriptor 1 and
 * records the errno of the first failed write, and ignores SIGPIPE (see
 * tool_stdout_finish()). Called once, first thing in main(). Out of memory,
 * the plain stream stays (the message of tool_stdout_close() is vaguer
 * then). */
void tool_stdout_open(void);

/* The end of main() for every tool: closes stdout (tool_stdout_close())
 * and returns the exit status, by one rule (docs/CLI.md, "Output"):
 *
 * - every write succeeded: `code`;
 * - the reader went away (EPIPE: `tool | head -1`): `code`, and nothing
 *   is printed. A reader that stops reading has what it wanted, as for
 *   `cat`, and a `set -o pipefail` pipeline must not fail for it. SIGPIPE
 *   is ignored (tool_stdout_open()) so that no command dies of it half-way
 *   with status 141, and the shell prints no "Broken pipe";
 * - any other failure (a full disk, a closed descriptor): prints
 *   "PROG: writing to standard output: <strerror>" and returns 1 in place
 *   of 0 (another failure's code is kept). */
int tool_stdout_finish(const char *prog, int code);

/* Flushes and closes stdout, and checks that every write to it succeeded
 * (fflush, ferror, fclose). Returns 0, or the errno of the first failure
 * (EIO when none is known). Called once, last thing in main(); the caller
 * prints "<tool>: writing to standard output: <strerror>" and exits
 * non-zero. */
int tool_stdout_close(void);

/* Writes all `len` bytes to fd, across short writes and EINTR.
 * Returns 0 or -errno. */
int tool_write_all(int fd, const void *buf, size_t len);

#endif
