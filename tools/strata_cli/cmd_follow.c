/* strata follow STORE --remote POOL/NAME: keeps a local copy of a remote
 * store at HEAD (a follower store with its background thread) until
 * SIGTERM or SIGINT, printing each version it moves to. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
    "Usage: strata follow STORE --remote POOL/NAME [--conf FILE]\n"
    "                     [--poll-ms N] [--no-watch]\n"
    "\n"
    "Keep the directory STORE (created if missing) at the version at HEAD\n"
    "of the remote store NAME in the Ceph RADOS pool POOL until SIGTERM or\n"
    "SIGINT (docs/REMOTE.md, \"Followers\"): a background thread watches\n"
    "HEAD for the publisher's notifications and also reads it every poll\n"
    "interval, and moves the store to each new version as 'strata pull'\n"
    "does. Prints a line when it starts and one at each version change:\n"
    "  POOL/NAME: serving version N (R regions, B bytes fetched)\n"
    "(B counts the bytes fetched since the command started); a failed sync\n"
    "is logged on standard error and tried again at the next notification\n"
    "or poll, the store serving what it served. While it runs it holds\n"
    "STORE's writer lock. Other processes read STORE as a store.\n"
    "\n"
    "Options:\n"
    "  --remote POOL/NAME  the pool and the remote store's name (required)\n"
    "  --conf FILE         the cluster's ceph.conf (default: librados'\n"
    "                      search: $CEPH_CONF, /etc/ceph/ceph.conf, ...)\n"
    "  --poll-ms N         read HEAD at least every N milliseconds\n"
    "                      (default 10000)\n"
    "  --no-watch          do not watch HEAD: poll only\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM or SIGINT; 1 the store could not be\n"
    "opened (no whole local copy and the cluster unreachable, STORE locked\n"
    "by another process); 2 usage error.\n";

/* How often the command looks at the store's figures for a version
 * change to print: the sync thread does the work, this only reports it,
 * so the period bounds how late a line is printed and nothing else. */
#define REPORT_NS 100000000L

/* Waits for SIGTERM or SIGINT (blocked in every thread, `set`), printing a
 * line whenever the version served changes. */
static int follow(strata_store *s, const cli_remote_arg *r,
                  const sigset_t *set) {
  strata_remote_stats st;
  int code = cli_print_serving(s, r);
  if (code == CLI_EXIT_OK)
    code = cli_remote_stats(s, &st);
  if (code != CLI_EXIT_OK)
    return code;
  fflush(stdout);
  uint64_t served = st.version_served;
  for (;;) {
    const struct timespec ts = {0, REPORT_NS};
    int sig = sigtimedwait(set, NULL, &ts);
    if (sig == SIGTERM || sig == SIGINT)
      break;
    if ((code = cli_remote_stats(s, &st)) != CLI_EXIT_OK)
      return code;
    if (st.version_served != served) {
      served = st.version_served;
      if ((code = cli_print_serving(s, r)) != CLI_EXIT_OK)
        return code;
      fflush(stdout);
    }
  }
  return CLI_EXIT_OK;
}

static int run(int argc, char **argv) {
  const char *remote_arg = NULL, *conf = NULL, *poll_arg = NULL;
  bool no_watch = false;
  const cli_option opts[] = {
      {"--remote", NULL, &remote_arg},
      {"--conf", NULL, &conf},
      {"--poll-ms", NULL, &poll_arg},
      {"--no-watch", &no_watch, NULL},
  };
  const char *dir;
  int code;
  if (!cli_parse_file_arg(&cli_cmd_follow, argc, argv, opts, 4, &dir, &code))
    return code;
  cli_remote_arg r;
  if (!cli_parse_remote(&cli_cmd_follow, "--remote", remote_arg, &r, &code))
    return code;
  strata_remote_config c;
  cli_remote_config(&c, STRATA_REMOTE_FOLLOWER, &r, conf);
  if (poll_arg != NULL && !cli_parse_u32(&cli_cmd_follow, "--poll-ms", poll_arg,
                                         false, &c.poll_ms, &code)) {
    cli_remote_arg_free(&r);
    return code;
  }
  if (no_watch)
    c.flags |= STRATA_REMOTE_NO_WATCH;
  /* Blocked before the open, so that the library's threads (the sync
   * thread, librados' own) inherit the mask and the signals wait for
   * sigtimedwait() in this thread, which then closes the store cleanly. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  strata_store *s = cli_store_open_remote(dir, &c, STRATA_STORE_CREATE);
  code = s == NULL ? CLI_EXIT_FAIL : follow(s, &r, &set);
  strata_store_close(s);
  cli_remote_arg_free(&r);
  return code;
}

const cli_command cli_cmd_follow = {
    .name = "follow",
    .synopsis = "STORE --remote POOL/NAME",
    .summary = "keep a local copy of a remote store at HEAD until SIGTERM",
    .usage = usage,
    .run = run,
};
