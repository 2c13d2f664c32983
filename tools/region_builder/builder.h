/* region-builder's internal interface, shared by its source files.
 *
 * The tool turns one of three inputs (a JSON manifest, a JSONL stream of
 * layers, or a directory tree) into a region file through the public writer
 * API in <strata.h>. Every function here that can fail prints its own
 * message to stderr, naming the input file and the place in it, and returns
 * -1; callers only propagate the failure. That keeps the first (and most
 * precise) message the one the user sees, as jansson's loaders do. */
#ifndef REGION_BUILDER_H
#define REGION_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../common/tool_progress.h"
#include "strata.h"

/* Exit codes, documented in --help and docs/MANIFEST.md. */
enum { RB_EXIT_OK = 0, RB_EXIT_FAIL = 1, RB_EXIT_USAGE = 2 };

/* Options shared by every mode. */
typedef struct rb_options {
  const char *out; /* -o: the region to create */
  uint32_t align;  /* --align, 0 for the writer's default */
  bool quiet;      /* -q: no progress bar, no notes */
  bool verbose;    /* -v: one-line summary on stdout */
  /* --id/--name/--metadata: the region, for --jsonl and --from-dir. */
  uint64_t region_id;
  const char *region_name;
  const char *region_metadata;
} rb_options;

/* ---- diagnostics (diag.c) ------------------------------------------------ */

/* Prints "WHERE: message" to stderr, escaped by the rule of docs/CLI.md
 * ("Escaping"): pass names as they are. `where` names the input and the
 * place in it ("m.json: layers[3]", "l.jsonl:4"); NULL prints the program
 * name. */
void rb_error(const char *where, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "region-builder: note: <text>", escaped like rb_error(). */
void rb_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "WHERE: " and strata_last_error_detail() for a failed library call
 * that returned `rc`. */
void rb_lib_error(const char *where, int rc);
/* Prints a jansson syntax error as "FILE:LINE:COLUMN: text". */
void rb_json_error(const char *file, int line, const json_error_t *err);

/* ---- numbers and paths (util.c), base64 (base64.c) --------------------- */

/* Parses a u64 given as a JSON integer >= 0 or as a string of decimal
 * digits (for ids above INT64_MAX, which JSON integers in jansson cannot
 * hold). Returns false if `v` is neither. */
bool rb_json_u64(const json_t *v, uint64_t *out);
/* Parses a decimal u64 from a C string (command-line options). */
bool rb_parse_u64(const char *s, uint64_t *out);

/* Directory part of a path ("." when it has none), malloc'ed or NULL. */
char *rb_dirname(const char *path);
/* dir + "/" + rel, malloc'ed (a copy of rel when rel is absolute), or NULL. */
char *rb_join(const char *dir, const char *rel);

/* Decoded length of strict RFC 4648 base64 text (standard alphabet, '='
 * padding, no whitespace), or -1 with *bad_at set to the offset of the
 * first offending character. */
int64_t rb_base64_decoded_len(const char *s, size_t len, size_t *bad_at);
/* Decodes text that rb_base64_decoded_len() accepted into `out`. */
void rb_base64_decode(const char *s, size_t len, uint8_t *out);

/* ---- layers (layer.c) --------------------------------------------------- */

typedef enum rb_source { RB_SRC_TEXT, RB_SRC_BASE64, RB_SRC_FILE } rb_source;

/* One layer, parsed and checked, ready to be written. */
typedef struct rb_layer {
  uint64_t id;
  const char *name; /* borrowed from the JSON (or owned: see owns_name) */
  char *metadata;   /* compact JSON text (owned), or NULL */
  rb_source source;
  const char *text; /* text or base64 source, borrowed from the JSON */
  size_t text_len;
  char *path;        /* file source: the path to open (owned) */
  const char *shown; /* file source: the path as the input wrote it */
  uint64_t size;     /* content size, when size_known */
  bool size_known;   /* false for FIFOs */
  bool owns_name;
} rb_layer;

/* Parses a layer object. Relative "file" paths are resolved against
 * `base_dir`. On failure prints "WHERE: ..." and returns -1; *out then holds
 * nothing that needs freeing. */
int rb_layer_parse(const json_t *obj, const char *where, const char *base_dir,
                   rb_layer *out);
/* Streams the layer into the writer. Prints and returns -1 on failure. */
int rb_layer_write(strata_writer *w, const rb_layer *l, const char *where);
/* Frees what the layer owns. */
void rb_layer_free(rb_layer *l);

/* Checks the members of `obj` against a NULL-terminated list of allowed
 * keys, so that a misspelt key is an error instead of being ignored. */
int rb_check_keys(const json_t *obj, const char *const *allowed,
                  const char *where);
/* Serializes any JSON value compactly (the form the writer stores). Returns
 * NULL on allocation failure, after printing. */
char *rb_metadata_dump(const json_t *v, const char *where);
/* The metadata of a region or layer object: "metadata" (any JSON value,
 * serialized by rb_metadata_dump()) or "metadata_text" (a string stored
 * byte for byte, for metadata whose exact text matters), at most one of
 * them. Sets *out to the malloc()ed text, or NULL when neither is given.
 * Prints and returns -1 on failure. */
int rb_metadata_parse(const json_t *obj, const char *where, char **out);

/* ---- the writer session (session.c) ------------------------------------ */

/* A region being written, with the signal handlers that remove its
 * temporary file on SIGINT, SIGTERM and SIGHUP. One at a time. */
typedef struct rb_session {
  strata_writer *w;
  const rb_options *opt;
  tool_progress progress;
  uint64_t layers; /* layers written so far */
} rb_session;

/* Checks the output path before any input is read: its base name must
 * leave room for the writer's temporary name (STRATA_WRITER_TEMP_NAME_EXTRA
 * bytes more, within NAME_MAX), and whatever is there must be a regular file
 * (a symlink, FIFO, directory or device node is refused, never replaced).
 * Prints and returns -1 when it fails. The type is checked again just
 * before commit. */
int rb_check_output(const char *out);

/* Expected data section size of `n` layers of the given sizes: each blob
 * starts at the next multiple of `align` (as docs/FORMAT.md lays them out). */
uint64_t rb_aligned_total(uint64_t total, uint64_t size, uint32_t align);

/* Opens the writer for opt->out. total_bytes: expected data bytes (from
 * rb_aligned_total), 0 if unknown. `ids_unique`: the caller has already
 * made sure that no id repeats (a manifest's check_duplicates, ids it
 * assigns), so the writer keeps no set of ids
 * (STRATA_WRITER_CHECK_IDS_AT_COMMIT); a JSONL stream passes false and
 * gets each repeat refused at its line. `where` prefixes a failure
 * message. */
int rb_session_open(rb_session *s, const rb_options *opt, uint64_t region_id,
                    const char *name, const char *metadata,
                    uint64_t total_bytes, uint64_t total_layers,
                    bool ids_unique, const char *where);
/* Writes one layer (see rb_layer_write) and counts it. */
int rb_session_add(rb_session *s, const rb_layer *l, const char *where);
/* Commits: the region appears at opt->out. Prints the -v summary. */
int rb_session_commit(rb_session *s);
/* Discards everything; nothing appears at opt->out. Accepts a session that
 * was never opened. */
void rb_session_abort(rb_session *s);

/* ---- modes (manifest.c, jsonl.c, from_dir.c) ---------------------------- */

/* Each returns an exit code (RB_EXIT_OK or RB_EXIT_FAIL). */
int rb_build_manifest(const rb_options *opt, const char *manifest);
int rb_build_jsonl(const rb_options *opt, const char *jsonl);
int rb_build_from_dir(const rb_options *opt, const char *dir);

#endif /* REGION_BUILDER_H */
