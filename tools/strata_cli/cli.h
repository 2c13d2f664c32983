/* The strata command-line tool: what the subcommands share.
 *
 * Each subcommand lives in its own cmd_*.c file and exports one cli_command;
 * main.c holds the table that dispatches to them. To add a subcommand: write
 * cmd_NAME.c defining `const cli_command cli_cmd_NAME`, declare it below, add
 * it to the table in main.c and to the source list in CMakeLists.txt.
 *
 * The tool uses the public API (<strata.h>) only. */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "strata.h"

/* Exit codes, documented in `strata --help` and docs/CLI.md. */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAIL = 1,  /* not found, corrupt, I/O: "strata: <detail>" */
  CLI_EXIT_USAGE = 2, /* bad command line: message plus a usage hint */
};

typedef struct cli_command {
  const char *name;
  const char *synopsis; /* "[--json] FILE": the arguments, for messages */
  const char *summary;  /* one line for `strata --help` */
  const char *usage;    /* full text for `strata NAME --help`, ends in \n */
  /* argv[0] is the subcommand name. Returns the process exit code. */
  int (*run)(int argc, char **argv);
} cli_command;

extern const cli_command cli_cmd_inspect;
extern const cli_command cli_cmd_ls;
extern const cli_command cli_cmd_cat;
extern const cli_command cli_cmd_verify;
extern const cli_command cli_cmd_context;
extern const cli_command cli_cmd_put;
extern const cli_command cli_cmd_rm;
extern const cli_command cli_cmd_crystallize;
extern const cli_command cli_cmd_stats;
extern const cli_command cli_cmd_metrics;
extern const cli_command cli_cmd_dump_state;
extern const cli_command cli_cmd_readers;
extern const cli_command cli_cmd_top;
extern const cli_command cli_cmd_regions;
extern const cli_command cli_cmd_get;
extern const cli_command cli_cmd_dump;
extern const cli_command cli_cmd_push;
extern const cli_command cli_cmd_pull;
extern const cli_command cli_cmd_follow;
extern const cli_command cli_cmd_remote;

/* ---- command-line parsing (cli_args.c) --------------------------------- */

/* One option of a subcommand. Exactly one of `flag` and `value` is set:
 * `flag` for a switch (--json), `value` for an option that takes an
 * argument (--out FILE or --out=FILE). Short forms are for the options
 * every command takes (-h, -V); tool_opt has them for tools that want
 * more. */
typedef struct cli_option {
  const char *name; /* with the dashes: "--json" */
  bool *flag;
  const char **value;
} cli_option;

/* Parses argv[1..argc) of `cmd` with tools/common/tool_args.h (getopt_long,
 * the messages of both tools): options anywhere, "--" ends them, a unique
 * prefix of a long option accepted, and between min_pos and max_pos
 * positional arguments, stored in pos[] and counted in *npos. "-h"/"--help"
 * (cmd->usage on stdout) and "-V"/"--version" ("strata VERSION") are
 * handled here for every subcommand, and $STRATA_LOG is checked
 * (tool_check_log_env()). Returns true when the command should go on.
 * Otherwise it has already printed what was needed and *exit_code holds
 * the code to return: 0 after --help or --version, CLI_EXIT_USAGE after a
 * usage error. */
bool cli_parse_args(const cli_command *cmd, int argc, char **argv,
                    const cli_option *opts, size_t nopts, const char **pos,
                    size_t min_pos, size_t max_pos, size_t *npos,
                    int *exit_code);

/* `strata --version`'s line, "strata 0.1.0\n", on stdout. */
void cli_print_version(void);

/* cli_parse_args() for the commands that take exactly one FILE. */
bool cli_parse_file_arg(const cli_command *cmd, int argc, char **argv,
                        const cli_option *opts, size_t nopts, const char **path,
                        int *exit_code);

/* Prints "strata: [CMD: ]<message>" and a "Try ... --help" hint on stderr
 * and returns CLI_EXIT_USAGE. cmd may be NULL for the top level. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- errors and output (cli_util.c) ------------------------------------ */

/* Prints "strata: <message>" on stderr and returns CLI_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "strata: <detail>" for the failed library call that returned `rc`
 * (strata_last_error_detail(), or strata_strerror(rc) when the library left
 * no detail) and returns CLI_EXIT_FAIL. */
int cli_fail_lib(int rc);

/* The library detail with a leading "PATH: " removed, for messages that
 * already name the file. Points into the library's per-thread buffer, so it
 * is valid until the next Strata call. */
const char *cli_detail_without_path(const char *path);

/* Replaces stdout with a stream that writes to file descriptor 1 and
 * records the errno of a failed write, for cli_stdout_close(). Called once,
 * first thing in main(). */
void cli_stdout_open(void);

/* Flushes and closes stdout, and checks that every write to it succeeded
 * (fflush, ferror, fclose), by the rule of tool_stdout_finish(): a reader
 * that went away (EPIPE) leaves `code` as it is, quietly; any other
 * failure prints "strata: writing to standard output: <errno text>" and
 * returns CLI_EXIT_FAIL in place of CLI_EXIT_OK (another failure code is
 * kept). Called once, last thing in main(): every command's output is
 * checked here, so that a full disk never ends in exit status 0. */
int cli_stdout_close(int code);

/* Writes all `len` bytes to fd, across short writes and EINTR.
 * Returns 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/* Writes a layer's content (a mapping) to fd in pieces of 1 MiB, so that a
 * huge layer does not sit in one system call. Returns 0 or -errno; -EFAULT
 * when the mapping could not be read (write() reports a page past the end
 * of a truncated file that way instead of raising SIGBUS). */
int cli_write_content(int fd, const void *data, uint64_t size);

/* cli_write_content() that calls after(ctx, n) once each piece of n bytes
 * is written: a non-zero return stops the writing and is returned (strata
 * dump counts the pieces into its progress line and stops there when
 * interrupted). */
int cli_write_content_each(int fd, const void *data, uint64_t size,
                           int (*after)(void *ctx, size_t n), void *ctx);

/* Writes a name, path or metadata excerpt by the escaping rule of
 * docs/CLI.md and tools/common/tool_escape.h, so that it stays on its line
 * and reaches the terminal inert: a backslash as \\, C0 controls and DEL
 * as \xNN, C1 and bidirectional controls as \u{NNNN}, bytes that are not
 * valid UTF-8 as \xNN, everything else as is. */
void cli_print_escaped(FILE *f, const char *s, size_t len);

/* Formats like vfprintf() and writes the result by the same rule: every
 * message of the tool goes through it, since names, paths and library
 * details (which quote layer names as they are) end up in messages. */
void cli_vprint_escaped(FILE *f, const char *fmt, va_list ap);
/* cli_vprint_escaped() of the arguments, then a newline (which the
 * escaping would have turned into \x0a). */
void cli_print_line(FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether `len` bytes are text: valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) without a NUL byte. */
bool cli_is_text(const void *data, size_t len);

/* Reads all of FILE, or standard input for "-", into a malloc()ed buffer
 * (*data, never NULL on success; *size may be 0). Returns 0, or
 * CLI_EXIT_FAIL after printing "strata: FILE: <reason>". */
int cli_read_input(const char *path, char **data, size_t *size);

/* Formats a checksum as 16 lowercase hex digits into buf[17]. */
const char *cli_hex64(uint64_t v, char buf[17]);

/* ---- JSON (cli_json.c) -------------------------------------------------- */

/* A JSON number for a u64: ids above INT64_MAX do not fit jansson's signed
 * integer and are written as a decimal string instead. */
json_t *cli_json_u64(uint64_t v);
/* A JSON string for text that should be UTF-8 but may not be (a path from
 * the command line): bytes that jansson rejects become '?'. */
json_t *cli_json_text(const char *s, size_t len);
/* Parsed metadata: null when absent or empty, the parsed value otherwise;
 * text that does not parse is kept as a JSON string. */
json_t *cli_json_metadata(const char *text, size_t len);
/* A layer as {id, name, size, checksum, metadata}. */
json_t *cli_json_layer(const strata_layer *l);
/* A JSON string holding `len` bytes in base64 (RFC 4648, padded). */
json_t *cli_json_base64(const void *data, size_t len);
/* Pretty-prints `v` (indent 2, insertion order) with a final newline to
 * stdout and releases it. Returns 0, or CLI_EXIT_FAIL with a message when
 * jansson cannot encode it; a failed write is left to cli_stdout_close(). */
int cli_json_print(json_t *v);

/* ---- SIGBUS guard (cli_guard.c) ------------------------------------------ */

/* A region file truncated by another process while it is mapped makes an
 * access past the new end raise SIGBUS. Commands that read the mapping turn
 * that into an error message:
 *
 *   if (CLI_BUS_FAULTED()) {   // reached again, via siglongjmp, on SIGBUS
 *     ...report, release, return CLI_EXIT_FAIL...
 *   }
 *   cli_bus_arm();
 *   ...reads of the mapping...
 *   cli_bus_disarm();
 *
 * Locals changed between CLI_BUS_FAULTED() and the fault, and read after it,
 * must be volatile. One guarded section at a time (the tool is single
 * threaded). A SIGBUS while disarmed keeps its default action. */
extern sigjmp_buf cli_bus_env;
#define CLI_BUS_FAULTED() (sigsetjmp(cli_bus_env, 1) != 0)
void cli_bus_arm(void);
void cli_bus_disarm(void);
/* The message for a fault, shared so that every command words it alike. */
#define CLI_BUS_MESSAGE                                                        \
  "I/O error reading the mapping (file truncated or device error?)"

/* ---- regions (cli_util.c) ----------------------------------------------- */

/* Arms the SIGBUS guard and opens `path` (the caller has already set the
 * guard's landing point with CLI_BUS_FAULTED()). On failure prints
 * "strata: <detail>", disarms and returns NULL; on success the guard stays
 * armed until the caller's cli_bus_disarm(). */
strata_region *cli_open_region_guarded(const char *path, unsigned flags);

/* ---- stores (cli_store.c) ------------------------------------------------ */

/* A REGION or LAYER argument: an id when it is all decimal digits (any
 * u64), a name otherwise. */
typedef struct cli_key {
  bool by_name;
  uint64_t id;      /* when !by_name */
  const char *text; /* the argument as given (NUL-terminated) */
} cli_key;

/* Parses `arg` into *key. `what` names the argument in messages ("region
 * id", "layer id"). With id_only, a name is refused. Returns false after a
 * usage error (empty, not a number when id_only, above 2^64-1), *exit_code then
 * holding CLI_EXIT_USAGE. */
bool cli_parse_key(const cli_command *cmd, const char *what, const char *arg,
                   bool id_only, cli_key *key, int *exit_code);

/* REGION and LAYER arguments of the store commands (context, get, put, rm,
 * crystallize): cli_parse_key() with the same rule and wording for all of
 * them, an id when all digits and a name otherwise (docs/CLI.md, "Naming
 * regions and layers"). */
bool cli_parse_region(const cli_command *cmd, const char *arg, cli_key *key,
                      int *exit_code);
bool cli_parse_layer(const cli_command *cmd, const char *arg, cli_key *key,
                     int *exit_code);

/* Looks layer `key` of region `region_id` up in the snapshot (by id or by
 * name), without a message: strata_get()'s return codes. */
int cli_get_layer(const strata_txn *txn, uint64_t region_id, const cli_key *key,
                  strata_layer *out);

/* Opens the store in `dir` with the default configuration (log lines at
 * the level $STRATA_LOG names, WARN when unset, on standard error),
 * read-only when asked. On failure prints "strata: <detail>" and returns
 * NULL. */
strata_store *cli_store_open(const char *dir, bool read_only);

/* The tool's store configuration: strata_store_config_init() without the
 * shared view. */
void cli_store_config_init(strata_store_config *config);

/* strata_store_open() with `config`; on failure prints "strata: <detail>"
 * and returns NULL. */
strata_store *cli_store_open_config(const char *dir,
                                    const strata_store_config *config);

/* Finds the region `key` names in the snapshot and fills *out (pointers
 * valid until strata_read_end()). Returns 0, or CLI_EXIT_FAIL after
 * printing "strata: DIR: no region with id N" / "... named 'NAME'". */
int cli_resolve_region(const strata_txn *txn, const char *dir,
                       const cli_key *key, strata_store_region *out);

/* Looks layer `key` of `region` up in the snapshot. Returns 0, or
 * CLI_EXIT_FAIL after printing "strata: DIR: region NAME (id N): no layer
 * with id M" / "... no layer named 'NAME'". */
int cli_resolve_layer(const strata_txn *txn, const char *dir,
                      const strata_store_region *region, const cli_key *key,
                      strata_layer *out);

/* Takes the store's writer lock and a proto of region `region_id` built on
 * the region file as it is on disk once the lock is held (so that a change
 * another process crystallized just before is not undone). With
 * create_name, a new region of that name is created instead (the id and
 * name must be free). Returns 0 or the library's error code (the detail
 * says which; STRATA_E_LOCKED: "DIR: store is locked by pid N"). */
int cli_store_proto(strata_store *s, uint64_t region_id,
                    const char *create_name, const char *create_metadata,
                    strata_proto **out);

/* Resolves REGION (an id or a name) in a snapshot of its own and stores
 * its id in *id. Returns CLI_EXIT_OK, or the failure's exit code (with a
 * message printed). */
int cli_region_id(strata_store *s, const char *dir, const cli_key *region,
                  uint64_t *id);

/* ---- remotes (cli_remote.c) -------------------------------------------- */

/* A POOL/NAME argument, split (both malloc'd). */
typedef struct cli_remote_arg {
  char *pool;
  char *name;
} cli_remote_arg;

/* Splits `arg` at its one '/' into a non-empty pool and a non-empty name
 * (what the name may hold is the library's to check: it names the rule).
 * `what` names the argument in messages ("--remote"); a NULL `arg` is the
 * usage error "WHAT POOL/NAME is required". Returns
 * false after a usage error, *exit_code then holding CLI_EXIT_USAGE (or
 * CLI_EXIT_FAIL when out of memory). */
bool cli_parse_remote(const cli_command *cmd, const char *what, const char *arg,
                      cli_remote_arg *out, int *exit_code);
void cli_remote_arg_free(cli_remote_arg *r);

/* An option's decimal value from 0 to 2^32-1; with size_suffix, a K or M
 * after the digits multiplies it by 1024 or 1048576. Returns false after a
 * usage error naming `option`. */
bool cli_parse_u32(const cli_command *cmd, const char *option, const char *arg,
                   bool size_suffix, uint32_t *out, int *exit_code);

/* A remote configuration of `role` for POOL/NAME with `conf` (may be NULL:
 * librados' own search); every other field 0, the library's default.
 * The strings are borrowed. */
void cli_remote_config(strata_remote_config *c, int role,
                       const cli_remote_arg *r, const char *conf);

/* Opens the store in `dir` with that remote and the extra store flags; on
 * failure prints "strata: <detail>" and returns NULL. */
strata_store *cli_store_open_remote(const char *dir,
                                    const strata_remote_config *remote,
                                    unsigned store_flags);

/* strata_remote_connect() to POOL/NAME; on failure prints the detail and
 * returns NULL. */
strata_remote *cli_remote_connect(const cli_remote_arg *r, const char *conf);

/* The number of regions the store serves now (a snapshot's count). */
int cli_store_regions(strata_store *s, uint64_t *n);

/* Prints "POOL/NAME: serving version N (R regions, B bytes fetched)" for a
 * follower store (pull, follow). */
int cli_print_serving(strata_store *s, const cli_remote_arg *r);

/* strata_remote_stats_get(); CLI_EXIT_OK or CLI_EXIT_FAIL after the
 * message. */
int cli_remote_stats(strata_store *s, strata_remote_stats *st);

/* ---- the shared view (cli_processes.c) ---------------------------------- */

/* The live processes of a store (strata_processes_read()), those of one
 * pid when --process was given, and their sum. */
typedef struct cli_processes {
  strata_process *list;
  size_t n;
  int64_t pid;        /* --process, or -1 */
  strata_process sum; /* the figures that add up; memory_level: the highest */
} cli_processes;

/* Reads the processes of the store in `dir`; `pid_arg` is --process's
 * value or NULL. Returns CLI_EXIT_OK, or an exit code after printing the
 * message (a usage error for a bad pid; "strata: DIR: no live process with
 * pid N has the store open"; the library's detail). */
int cli_processes_read(const cli_command *cmd, const char *dir,
                       const char *pid_arg, cli_processes *out);
void cli_processes_free(cli_processes *p);
/* {live, sum, list}: what dump-state, stats --json and readers --json
 * print. */
json_t *cli_processes_json(const cli_processes *p);
/* One process (or, with `sum`, a sum without pid, role and times). */
json_t *cli_process_json(const strata_process *p, uint64_t now, bool sum);
uint64_t cli_now_ms(void);
const char *cli_role_name(uint32_t role);
const char *cli_memory_level_name(uint32_t level);
/* Age of the oldest open snapshot at `now`, 0 if none. */
uint64_t cli_oldest_age_ms(const strata_process *p, uint64_t now);
/* "2026-01-02T03:04:05Z", or "-" for 0. */
const char *cli_time_utc(uint64_t unix_ms, char buf[32]);

#endif /* STRATA_CLI_H */
