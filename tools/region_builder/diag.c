/* Error messages. Every message about an input starts with the input's name
 * and the place in it, so that editors and readers can jump straight there:
 * "m.json:3:14: ..." for syntax, "m.json: layers[3]: ..." for meaning. */
#include <stdarg.h>
#include <stdio.h>

#include "builder.h"

void rb_error(const char *where, const char *fmt, ...) {
  va_list ap;
  rb_progress_break();
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", where ? where : "region-builder");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void rb_lib_error(const char *where, int rc) {
  const char *detail = strata_last_error_detail();
  /* The detail already names the output file and layer; the code's name
   * helps when searching the documentation. */
  rb_error(where, "%s (%s)", detail[0] ? detail : strata_strerror(rc),
           strata_err_name(rc));
}

void rb_json_error(const char *file, int line, const json_error_t *err) {
  rb_progress_break();
  fprintf(stderr, "%s:%d:%d: %s\n", file, line, err->column, err->text);
}
