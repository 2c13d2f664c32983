/* Strict base64 (RFC 4648, section 4): the standard alphabet, '=' padding to
 * a multiple of four characters, no whitespace. Strictness is deliberate: a
 * manifest is written by programs, and a stray character is more likely a
 * mistake than a formatting choice. */
#include "builder.h"

/* Value of a base64 digit, or -1. */
static int digit(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int64_t rb_base64_decoded_len(const char *s, size_t len, size_t *bad_at) {
  if (len % 4 != 0) {
    *bad_at = len;
    return -1;
  }
  size_t pad = 0;
  if (len > 0 && s[len - 1] == '=')
    pad = (len > 1 && s[len - 2] == '=') ? 2 : 1;
  for (size_t i = 0; i < len - pad; i++) {
    if (digit((unsigned char)s[i]) < 0) {
      *bad_at = i;
      return -1;
    }
  }
  return (int64_t)(len / 4 * 3 - pad);
}

void rb_base64_decode(const char *s, size_t len, uint8_t *out) {
  for (size_t i = 0; i < len; i += 4) {
    uint32_t v = 0;
    int n = 0;
    for (int k = 0; k < 4; k++) {
      int d = s[i + k] == '=' ? -1 : digit((unsigned char)s[i + k]);
      if (d >= 0) {
        v |= (uint32_t)d << (18 - 6 * k);
        n++;
      }
    }
    /* n digits carry n*6 bits: 4 give 3 bytes, 3 give 2, 2 give 1. */
    for (int k = 0; k < n - 1; k++)
      *out++ = (uint8_t)(v >> (16 - 8 * k));
  }
}
