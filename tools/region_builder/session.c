/* The writer session: opening the region writer, removing its temporary
 * file when the tool is interrupted, and committing or aborting.
 *
 * The writer never leaves a partial region under the final name, but when
 * the file system lacks O_TMPFILE its temporary file is visible
 * (".OUT.region.strata-tmp-XXXXXXXX") until commit or abort. A signal that ends
 * the process would leave it behind, so SIGINT, SIGTERM and SIGHUP unlink it
 * first. The handler touches only a copy of the path made when the writer
 * opened: unlink() and _exit() are async-signal-safe, reading the writer's
 * own state from a handler would not be.
 *
 * The output is checked before any input is read (rb_check_output): its
 * name must leave room for the temporary file's, and only a regular file
 * may be replaced. In a store's directory the writer holds the store's lock
 * (STRATA_WRITER_LOCK_STORE) from open to commit. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/tool_escape.h"
#include "../common/tool_progress.h"
#include "builder.h"

static const int handled[] = {SIGINT, SIGTERM, SIGHUP};
#define N_HANDLED (sizeof handled / sizeof handled[0])

static char temp_path[PATH_MAX];
static volatile sig_atomic_t have_temp;

static void on_signal(int sig) {
  tool_progress_on_signal(); /* the progress line ends with a newline */
  if (have_temp)
    (void)unlink(temp_path);
  /* The exit status a shell gives a process killed by `sig`. */
  _exit(128 + sig);
}

static void install_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < N_HANDLED; i++)
    sigaddset(&sa.sa_mask, handled[i]);
  for (size_t i = 0; i < N_HANDLED; i++)
    sigaction(handled[i], &sa, NULL);
}

/* Blocks (or unblocks) the handled signals. Commit and abort run with them
 * blocked: both end by freeing the writer, and a commit interrupted between
 * its rename and its return must not unlink anything. A signal that arrives
 * meanwhile is delivered when they are done. */
static void block_signals(bool block) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < N_HANDLED; i++)
    sigaddset(&set, handled[i]);
  sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* What a file that is not a regular file is, for the message. */
static const char *file_kind(mode_t m) {
  return S_ISLNK(m)    ? "a symbolic link"
         : S_ISDIR(m)  ? "a directory"
         : S_ISFIFO(m) ? "a FIFO"
         : S_ISCHR(m)  ? "a character device"
         : S_ISBLK(m)  ? "a block device"
         : S_ISSOCK(m) ? "a socket"
                       : "not a regular file";
}

/* The writer renames its file over whatever the output path names, and a
 * rename replaces a symlink, a FIFO or a device node as readily as a region
 * (a symlink is replaced itself, not the file it points to): only a regular
 * file, or nothing, may be there. */
static int check_target(const char *out) {
  struct stat st;
  if (lstat(out, &st) != 0 || S_ISREG(st.st_mode))
    return 0; /* absent (or unreadable: the writer names the problem) */
  rb_error(NULL,
           "%s: is %s, not a regular file: region-builder replaces only "
           "regular files%s",
           out, file_kind(st.st_mode),
           S_ISLNK(st.st_mode) ? " (-o names the link itself; give the path "
                                 "of its target to write there)"
                               : "");
  return -1;
}

int rb_check_output(const char *out) {
  const char *slash = strrchr(out, '/');
  const char *base = slash != NULL ? slash + 1 : out;
  size_t len = strlen(base);
  /* The writer's temporary file, in the same directory, is named after the
   * output with STRATA_WRITER_TEMP_NAME_EXTRA more bytes; a name that leaves
   * no room for them would fail only when the build is done. */
  if (len + STRATA_WRITER_TEMP_NAME_EXTRA > NAME_MAX) {
    rb_error(NULL,
             "%s: the file name is %zu bytes; at most %d fit (NAME_MAX %d "
             "less the %d bytes the writer's temporary file name adds)",
             out, len, NAME_MAX - STRATA_WRITER_TEMP_NAME_EXTRA, NAME_MAX,
             STRATA_WRITER_TEMP_NAME_EXTRA);
    return -1;
  }
  return check_target(out);
}

uint64_t rb_aligned_total(uint64_t total, uint64_t size, uint32_t align) {
  uint64_t a = align ? align : 64; /* the writer's default, see strata.h */
  return (total + a - 1) / a * a + size;
}

int rb_session_open(rb_session *s, const rb_options *opt, uint64_t region_id,
                    const char *name, const char *metadata,
                    uint64_t total_bytes, uint64_t total_layers,
                    bool ids_unique, const char *where) {
  memset(s, 0, sizeof *s);
  s->opt = opt;
  tool_progress_start(&s->progress, !opt->quiet && tool_progress_wanted(), NULL,
                      total_bytes, total_layers);
  strata_writer_options wo;
  strata_writer_options_init(&wo);
  wo.region_id = region_id;
  wo.name = name;
  wo.metadata = metadata;
  wo.align = opt->align;
  wo.progress = tool_progress_callback;
  wo.progress_ctx = &s->progress;
  /* In a store's directory, hold its writer lock until commit or abort, so
   * that no store process has a proto open over the region replaced here
   * (a crystallization would otherwise fail with STRATA_E_CONFLICT). */
  wo.flags = STRATA_WRITER_LOCK_STORE;
  if (ids_unique)
    wo.flags |= STRATA_WRITER_CHECK_IDS_AT_COMMIT;
  install_handlers();
  block_signals(true);
  int rc = strata_writer_open(opt->out, &wo, &s->w);
  if (rc == 0) {
    const char *tmp = strata_writer_temp_path(s->w);
    if (tmp != NULL && strlen(tmp) < sizeof temp_path) {
      memcpy(temp_path, tmp, strlen(tmp) + 1);
      have_temp = 1;
    }
  }
  block_signals(false);
  if (rc < 0) {
    s->w = NULL;
    rb_lib_error(where, rc);
    return -1;
  }
  return 0;
}

int rb_session_add(rb_session *s, const rb_layer *l, const char *where) {
  if (rb_layer_write(s->w, l, where) < 0)
    return -1;
  s->layers++;
  return 0;
}

int rb_session_commit(rb_session *s) {
  /* Checked again: the build may have taken long, and rename() would not
   * refuse what appeared at the path meanwhile. */
  if (check_target(s->opt->out) < 0) {
    rb_session_abort(s);
    return -1;
  }
  block_signals(true);
  int rc = strata_writer_commit(s->w);
  s->w = NULL;
  have_temp = 0;
  block_signals(false);
  tool_progress_finish(&s->progress, rc == 0);
  if (rc < 0) {
    rb_lib_error(NULL, rc);
    return -1;
  }
  if (s->opt->verbose) {
    struct stat st;
    long long fsize = stat(s->opt->out, &st) == 0 ? (long long)st.st_size : -1;
    /* The path escaped, as in every message (docs/CLI.md, "Escaping"). */
    tool_fputs_escaped(stdout, s->opt->out, strlen(s->opt->out));
    printf(": %" PRIu64 " layers, %lld bytes\n", s->layers, fsize);
  }
  return 0;
}

void rb_session_abort(rb_session *s) {
  if (s->w == NULL)
    return;
  block_signals(true);
  strata_writer_abort(s->w);
  s->w = NULL;
  have_temp = 0;
  block_signals(false);
  tool_progress_finish(&s->progress, false);
}
