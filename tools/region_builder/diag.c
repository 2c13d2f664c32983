/* Error messages. Every message about an input starts with the input's name
 * and the place in it, so that editors and readers can jump straight there:
 * "m.json:3:14: ..." for syntax, "m.json: layers[3]: ..." for meaning. */
/*
 * Names, paths and texts in a message come from the input (a file name, a
 * layer name, jansson's excerpt of a bad token): every message is written
 * escaped by the rule of docs/CLI.md ("Escaping"), tools/common/
 * tool_escape.h, so that a newline in a name cannot forge a line nor an
 * ESC drive the terminal. Callers pass names as they are. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tool_escape.h"
#include "../common/tool_progress.h"
#include "builder.h"

/* Writes the formatted text to stderr, escaped. */
static void vput_escaped(const char *fmt, va_list ap) {
  tool_vfprintf_escaped(stderr, fmt, ap);
}

static void put_escaped(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vput_escaped(fmt, ap);
  va_end(ap);
}

void rb_error(const char *where, const char *fmt, ...) {
  va_list ap;
  tool_progress_break();
  put_escaped("%s: ", where ? where : "region-builder");
  va_start(ap, fmt);
  vput_escaped(fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void rb_note(const char *fmt, ...) {
  va_list ap;
  tool_progress_break();
  fputs("region-builder: note: ", stderr);
  va_start(ap, fmt);
  vput_escaped(fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void rb_lib_error(const char *where, int rc) {
  const char *detail = strata_last_error_detail();
  /* The detail already names the output file and layer; the code's name
   * helps when searching the documentation. */
  rb_error(where, "%s (%s)", detail[0] ? detail : strata_strerror(rc),
           strata_err_name(rc));
}

void rb_json_error(const char *file, int line, const json_error_t *err) {
  tool_progress_break();
  put_escaped("%s:%d:%d: %s", file, line, err->column, err->text);
  fputc('\n', stderr);
}
