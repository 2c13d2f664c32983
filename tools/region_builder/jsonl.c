/* JSONL mode: one layer object per line, written as it is read. Memory stays
 * bounded by the writer's index plus the longest line: nothing is kept from
 * one line to the next. Duplicate ids and names are therefore found by the
 * writer, whose message names the earlier layer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return false;
  return true;
}

/* Parses and writes the layer on one line. */
static int one_line(rb_session *s, const char *file, const char *dir,
                    unsigned long lineno, const char *line, size_t len) {
  json_error_t err;
  json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
  if (v == NULL) {
    /* jansson counts lines within the buffer; the user's line is ours. */
    rb_json_error(file, (int)lineno, &err);
    return -1;
  }
  char where[4096];
  snprintf(where, sizeof where, "%s:%lu", file, lineno);
  rb_layer l;
  int rc = rb_layer_parse(v, where, dir, &l);
  if (rc == 0) {
    rc = rb_session_add(s, &l, where);
    rb_layer_free(&l);
  }
  json_decref(v);
  return rc;
}

int rb_build_jsonl(const rb_options *opt, const char *file) {
  FILE *f = fopen(file, "rb");
  if (f == NULL) {
    rb_error(file, "%s", strerror(errno));
    return RB_EXIT_FAIL;
  }
  char *dir = rb_dirname(file);
  rb_session s;
  int rc = dir ? 0 : -1;
  if (dir == NULL)
    rb_error(file, "out of memory");
  if (rc == 0)
    rc = rb_session_open(&s, opt, opt->region_id, opt->region_name,
                         opt->region_metadata, 0, 0, false, NULL);
  bool opened = rc == 0;
  char *line = NULL;
  size_t cap = 0;
  unsigned long lineno = 0;
  while (rc == 0) {
    errno = 0;
    ssize_t len = getline(&line, &cap, f);
    if (len < 0) {
      if (ferror(f)) {
        rb_error(file, "reading line %lu: %s", lineno + 1, strerror(errno));
        rc = -1;
      }
      break;
    }
    lineno++;
    if (!blank(line, (size_t)len))
      rc = one_line(&s, file, dir, lineno, line, (size_t)len);
  }
  free(line);
  free(dir);
  fclose(f);
  if (opened)
    rc = rc == 0 ? rb_session_commit(&s) : (rb_session_abort(&s), -1);
  return rc == 0 ? RB_EXIT_OK : RB_EXIT_FAIL;
}
