/* Numbers and paths: the small parsing jobs every mode shares. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "builder.h"

bool rb_parse_u64(const char *s, uint64_t *out) {
  /* Digits only: strtoull would accept signs, spaces and "0x". */
  if (s == NULL || s[0] == '\0')
    return false;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false; /* overflow */
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool rb_json_u64(const json_t *v, uint64_t *out) {
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if (i < 0)
      return false;
    *out = (uint64_t)i;
    return true;
  }
  /* json_int_t is signed 64-bit, so ids in (INT64_MAX, UINT64_MAX] can only
   * be written as strings of digits. */
  if (json_is_string(v))
    return strlen(json_string_value(v)) == json_string_length(v) &&
           rb_parse_u64(json_string_value(v), out);
  return false;
}

char *rb_dirname(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

char *rb_join(const char *dir, const char *rel) {
  if (rel[0] == '/')
    return strdup(rel);
  size_t dl = strlen(dir), rl = strlen(rel);
  char *p = malloc(dl + rl + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, dir, dl);
  p[dl] = '/';
  memcpy(p + dl + 1, rel, rl + 1);
  return p;
}
