/* Text checks for names and metadata: strict UTF-8, JSON, and telling why
 * jansson refused a text (not JSON, or out of memory). */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/json_check.h"

/* JSON's grammar (RFC 8259), checked without allocating: jansson cannot
 * tell a syntax error from a failed allocation (load.c returns
 * TOKEN_INVALID when it cannot copy a string, and json_loadb() sets no
 * error at all when it cannot start), so a text jansson refused but whose
 * grammar is right was refused for memory. Jansson's other refusals
 * (\u0000, numbers out of range, depth) carry codes of their own. */
typedef struct jscan {
  const char *p, *end;
} jscan;

static void js_ws(jscan *j) {
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static bool js_lit(jscan *j, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
    return false;
  j->p += n;
  return true;
}

static int js_hex4(jscan *j) {
  if (j->end - j->p < 4)
    return -1;
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *j->p++;
    v = v * 16 + (c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -100000);
  }
  return v < 0 ? -1 : v;
}

static bool js_string(jscan *j) {
  j->p++; /* the opening quote */
  while (j->p < j->end) {
    unsigned char c = (unsigned char)*j->p++;
    if (c == '"')
      return true;
    if (c < 0x20)
      return false;
    if (c != '\\')
      continue;
    if (j->p == j->end)
      return false;
    c = (unsigned char)*j->p++;
    if (c == 'u') {
      int u = js_hex4(j);
      if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
        return false;
      if (u >= 0xD800 && u <= 0xDBFF) { /* a pair */
        if (!js_lit(j, "\\u"))
          return false;
        int l = js_hex4(j);
        if (l < 0xDC00 || l > 0xDFFF)
          return false;
      }
    } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
      return false;
    }
  }
  return false;
}

static bool js_digits(jscan *j) {
  const char *start = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
    j->p++;
  return j->p > start;
}

static bool js_number(jscan *j) {
  if (*j->p == '-')
    j->p++;
  if (j->p < j->end && *j->p == '0')
    j->p++;
  else if (!js_digits(j))
    return false;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (!js_digits(j))
      return false;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
      j->p++;
    if (!js_digits(j))
      return false;
  }
  return true;
}

static bool js_value(jscan *j, unsigned depth) {
  js_ws(j);
  if (j->p == j->end || depth > 4096)
    return false;
  char c = *j->p;
  if (c == '"')
    return js_string(j);
  if (c == '-' || (c >= '0' && c <= '9'))
    return js_number(j);
  if (c == 't')
    return js_lit(j, "true");
  if (c == 'f')
    return js_lit(j, "false");
  if (c == 'n')
    return js_lit(j, "null");
  if (c != '[' && c != '{')
    return false;
  char close = c == '[' ? ']' : '}';
  j->p++;
  js_ws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return true;
  }
  for (;;) {
    if (close == '}') {
      js_ws(j);
      if (j->p == j->end || *j->p != '"' || !js_string(j))
        return false;
      js_ws(j);
      if (j->p == j->end || *j->p++ != ':')
        return false;
    }
    if (!js_value(j, depth + 1))
      return false;
    js_ws(j);
    if (j->p == j->end)
      return false;
    c = *j->p++;
    if (c == close)
      return true;
    if (c != ',')
      return false;
  }
}

static bool json_grammar_ok(const char *s, size_t len) {
  jscan j = {s, s + len};
  if (!js_value(&j, 0))
    return false;
  js_ws(&j);
  return j.p == j.end;
}

/* Why json_loadb() refused `s`: STRATA_E_NOMEM when memory ran out,
 * STRATA_E_INVAL when the text is not JSON. */
int strata__json_refusal(const json_error_t *err, const char *s, size_t len) {
  /* Without a message no error was set (nor its code): the parser could
   * not even start. */
  switch (err->text[0] == '\0' ? json_error_unknown : json_error_code(err)) {
  case json_error_out_of_memory:
    return STRATA_E_NOMEM;
  case json_error_unknown:
  case json_error_invalid_syntax:
  case json_error_premature_end_of_input:
  case json_error_end_of_input_expected:
    return json_grammar_ok(s, len) ? STRATA_E_NOMEM : STRATA_E_INVAL;
  default:
    return STRATA_E_INVAL;
  }
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Returns 1 when valid. NUL bytes are valid UTF-8; callers that
 * forbid them check separately. */
int strata__utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      min = 0x10000;
    } else {
      return 0;
    }
    if (len - i - 1 < need)
      return 0;
    unsigned cp = c & (0x3Fu >> need);
    for (size_t k = 1; k <= need; k++) {
      unsigned cc = s[i + k];
      if ((cc & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += need + 1;
  }
  return 1;
}

int strata__json_check(const char *s, size_t len, json_error_t *err) {
  json_t *v = json_loadb(s, len, JSON_DECODE_ANY, err);
  if (v != NULL) {
    json_decref(v);
    return 0;
  }
  /* RFC 8259 puts no limit on numbers; jansson refuses an integer above
   * 2^63-1 and a real beyond a double's range. Metadata is stored as text,
   * byte for byte, and never parsed by the library: such a text is JSON
   * when jansson reads its integers as reals, and when even that overflows
   * (1e400), when its grammar is right. The second parse also finds the
   * real error, if any, of a text with a big integer. */
  if (err->text[0] != '\0' &&
      json_error_code(err) == json_error_numeric_overflow) {
    v = json_loadb(s, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, err);
    if (v != NULL) {
      json_decref(v);
      return 0;
    }
    if (err->text[0] != '\0' &&
        json_error_code(err) == json_error_numeric_overflow &&
        json_grammar_ok(s, len))
      return 0;
  }
  return strata__json_refusal(err, s, len);
}

bool strata__text_ok(const char *s, size_t len, size_t max, bool json) {
  if (len > max || !strata__utf8_valid(s, len))
    return false;
  json_error_t err;
  return !json || len == 0 || strata__json_check(s, len, &err) == 0;
}

int strata__check_text(const char *path, const char *what, uint64_t id,
                       const char *s, size_t max, bool json) {
  return strata__check_text_n(path, what, id, s, strlen(s), max, json);
}

int strata__check_text_n(const char *path, const char *what, uint64_t id,
                         const char *s, size_t len, size_t max, bool json) {
  STRATA__FAIL_IF(len > max, STRATA_E_LIMIT,
                  "%s: layer %" PRIu64 ": %s is %zu bytes (at most %zu)", path,
                  id, what, len, max);
  STRATA__FAIL_IF(!strata__utf8_valid(s, len), STRATA_E_INVAL,
                  "%s: layer %" PRIu64 ": %s is not valid UTF-8", path, id,
                  what);
  if (json && len > 0) {
    json_error_t err;
    int rc = strata__json_check(s, len, &err);
    if (rc == STRATA_E_NOMEM)
      return strata__fail(STRATA_E_NOMEM,
                          "%s: layer %" PRIu64 ": checking the %s: out of "
                          "memory",
                          path, id, what);
    if (rc < 0)
      return strata__fail(STRATA_E_INVAL,
                          "%s: layer %" PRIu64 ": %s is not JSON: %s at %d:%d",
                          path, id, what, err.text, err.line, err.column);
  }
  return 0;
}

bool strata__name_arg_ok(const char *name, size_t len) {
  return name != NULL ? memchr(name, '\0', len) == NULL : len == 0;
}

int strata__check_name_arg(const char *where, const char *what,
                           const char *name, size_t len) {
  if (strata__name_arg_ok(name, len))
    return 0;
  STRATA__FAIL_IF(name == NULL && len > 0, STRATA_E_INVAL,
                  "%s: %s is NULL with length %zu (no name is NULL with "
                  "length 0)",
                  where, what, len);
  const char *nul = name != NULL ? memchr(name, '\0', len) : NULL;
  size_t pos = nul != NULL ? (size_t)(nul - name) : 0;
  STRATA__FAIL_IF(nul != NULL, STRATA_E_INVAL,
                  "%s: %s \"%.*s\" has a NUL byte at position %zu of its %zu "
                  "bytes",
                  where, what, (int)(pos > 200 ? 200 : pos), name, pos, len);
  return 0;
}

int strata__name_dup(const char *where, const char *what, const char *name,
                     size_t len, char **out) {
  *out = NULL;
  STRATA__TRY(strata__check_name_arg(where, what, name, len));
  if (name == NULL)
    return 0;
  char *copy = malloc(len + 1);
  STRATA__FAIL_IF(copy == NULL, STRATA_E_NOMEM,
                  "%s: copying the %s (%zu bytes)", where, what, len);
  memcpy(copy, name, len);
  copy[len] = '\0';
  *out = copy;
  return 0;
}
