/* Turning SIGBUS from the mapping into an error (see cli.h). */
#include <signal.h>
#include <string.h>

#include "cli.h"

sigjmp_buf cli_bus_env;
static volatile sig_atomic_t armed;

static void on_sigbus(int sig) {
  if (armed) {
    armed = 0;
    siglongjmp(cli_bus_env, 1);
  }
  /* Not in a guarded section: a real bug. Die the way we would have. */
  signal(sig, SIG_DFL);
  raise(sig);
}

void cli_bus_arm(void) {
  static bool installed;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    installed = true;
  }
  armed = 1;
}

void cli_bus_disarm(void) {
  armed = 0;
}
