/* The escaping rule for text that reaches a person's terminal, shared by the
 * tools (strata, region-builder). docs/CLI.md ("Escaping") states it; the
 * library's log lines follow the same rule (src/common/log.c,
 * strata__log_quote()), and tests/unit/test_log.c checks that both agree.
 *
 * A name, path, metadata excerpt or message from a file is written so that
 * it stays on its line and can neither move the cursor, change colours,
 * ring the bell nor reorder the text around it:
 *
 *   backslash                                   \\
 *   C0 controls U+0000-U+001F, DEL U+007F       \xNN        (\x0a, \x1b)
 *   C1 controls U+0080-U+009F                   \u{NNNN}    (\u{0085})
 *   bidirectional controls U+061C, U+200E,      \u{NNNN}    (\u{202e})
 *   U+200F, U+202A-U+202E, U+2066-U+2069, and
 *   the separators U+2028, U+2029
 *   a byte that is not part of valid UTF-8      \xNN        (\xff)
 *   anything else                               as it is
 *
 * Hex digits are lowercase. UTF-8 is strict (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), so what passes unescaped is
 * valid UTF-8.
 *
 * Header-only (static inline) so that each tool compiles it in without a
 * library of its own: the tools link the public API only. */
#ifndef STRATA_TOOL_ESCAPE_H
#define STRATA_TOOL_ESCAPE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest escaped form of one unit: "\u{202e}". */
#define TOOL_ESC_MAX 8

/* Decodes the UTF-8 sequence at p (before end). Returns its length, 1 to 4,
 * with the code point in *cp, or 0 when the bytes at p are not a valid
 * sequence (a stray continuation byte, a truncated or overlong sequence, a
 * surrogate, above U+10FFFF). */
static inline size_t tool_utf8_decode(const unsigned char *p,
                                      const unsigned char *end, uint32_t *cp) {
  unsigned c = *p;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  /* The continuation bytes a lead byte needs, and the range the first of
   * them must lie in (which excludes overlong forms, surrogates and code
   * points above U+10FFFF): RFC 3629, section 4. */
  size_t n;
  unsigned lo = 0x80, hi = 0xbf;
  uint32_t v;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 1;
    v = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 2;
    v = c & 0x0f;
    lo = c == 0xe0 ? 0xa0 : 0x80;
    hi = c == 0xed ? 0x9f : 0xbf;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 3;
    v = c & 0x07;
    lo = c == 0xf0 ? 0x90 : 0x80;
    hi = c == 0xf4 ? 0x8f : 0xbf;
  } else {
    return 0;
  }
  if ((size_t)(end - p) <= n || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 1; i <= n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    v = (v << 6) | (p[i] & 0x3f);
  }
  *cp = v;
  return n + 1;
}

/* Whether the rule escapes code point cp (backslash aside). */
static inline bool tool_escapes_cp(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
         cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

/* Writes the form of the unit at p (one character, or one invalid byte)
 * into out (not NUL-terminated) and its length into *outlen. Returns the
 * number of input bytes it stands for. */
static inline size_t tool_escape_unit(const char *p, const char *end,
                                      char out[TOOL_ESC_MAX], size_t *outlen) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)p;
  uint32_t cp = 0;
  size_t n = tool_utf8_decode(u, (const unsigned char *)end, &cp);
  if (n == 0 || (cp < 0x80 && tool_escapes_cp(cp))) {
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[*u >> 4];
    out[3] = hex[*u & 15];
    *outlen = 4;
    return 1;
  }
  if (cp == '\\') {
    out[0] = out[1] = '\\';
    *outlen = 2;
    return 1;
  }
  if (tool_escapes_cp(cp)) {
    memcpy(out, "\\u{", 3);
    for (int i = 0; i < 4; i++)
      out[3 + i] = hex[(cp >> (12 - 4 * i)) & 15];
    out[7] = '}';
    *outlen = 8;
    return n;
  }
  memcpy(out, p, n);
  *outlen = n;
  return n;
}

/* Whether the rule leaves s[0..len) unchanged. */
static inline bool tool_escape_is_plain(const char *s, size_t len) {
  const char *end = s + len;
  char unit[TOOL_ESC_MAX];
  size_t ulen;
  for (const char *p = s; p < end;) {
    size_t n = tool_escape_unit(p, end, unit, &ulen);
    if (ulen != n || memcmp(unit, p, n) != 0)
      return false;
    p += n;
  }
  return true;
}

/* Writes s[0..len) to f by the rule. */
static inline void tool_fputs_escaped(FILE *f, const char *s, size_t len) {
  const char *end = s + len;
  char unit[TOOL_ESC_MAX];
  size_t ulen;
  for (const char *p = s; p < end;) {
    p += tool_escape_unit(p, end, unit, &ulen);
    fwrite(unit, 1, ulen, f);
  }
}

/* s escaped by the rule, in a malloc()ed string; NULL when out of memory. */
static inline char *tool_escape_dup(const char *s, size_t len) {
  if (len > (SIZE_MAX - 1) / TOOL_ESC_MAX)
    return NULL;
  char *buf = malloc(len * TOOL_ESC_MAX + 1), *o = buf;
  if (buf == NULL)
    return NULL;
  const char *end = s + len;
  size_t ulen;
  for (const char *p = s; p < end;) {
    p += tool_escape_unit(p, end, o, &ulen);
    o += ulen;
  }
  *o = '\0';
  return buf;
}

/* Formats like vfprintf() and writes the result escaped: for messages whose
 * arguments (names, paths) come from the input. */
static inline void tool_vfprintf_escaped(FILE *f, const char *fmt, va_list ap) {
  char small[512];
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  char *text = small;
  if (n >= (int)sizeof small && (text = malloc((size_t)n + 1)) != NULL)
    vsnprintf(text, (size_t)n + 1, fmt, again);
  va_end(again);
  if (text == NULL) /* out of memory: the part that fit, escaped still */
    text = small;
  if (n > 0)
    tool_fputs_escaped(f, text, strlen(text));
  if (text != small)
    free(text);
}

#endif /* STRATA_TOOL_ESCAPE_H */
