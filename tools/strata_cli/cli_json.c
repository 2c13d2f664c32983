/* Building the JSON that --json and inspect print (jansson). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tool_escape.h"
#include "cli.h"

json_t *cli_json_u64(uint64_t v) {
  if (v <= (uint64_t)INT64_MAX)
    return json_integer((json_int_t)v);
  char buf[24];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return json_string(buf);
}

json_t *cli_json_text(const char *s, size_t len) {
  json_t *v = json_stringn(s, len);
  if (v != NULL)
    return v;
  /* Not UTF-8 (jansson refuses it): keep ASCII, mark every other byte. */
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++)
    copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
  v = json_stringn(copy, len);
  free(copy);
  return v;
}

json_t *cli_json_metadata(const char *text, size_t len) {
  if (text == NULL || len == 0)
    return json_null();
  json_error_t err;
  json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &err);
  if (v == NULL)
    /* jansson cannot hold integers above INT64_MAX; reading every integer
     * as a real keeps such metadata printable, at some precision. */
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
  if (v == NULL)
    v = cli_json_text(text, len);
  return v;
}

json_t *cli_json_layer(const strata_layer *l) {
  char hex[17];
  json_t *o = json_object();
  json_object_set_new(o, "id", cli_json_u64(l->id));
  json_object_set_new(
      o, "name", l->name ? cli_json_text(l->name, l->name_len) : json_null());
  json_object_set_new(o, "size", cli_json_u64(l->size));
  json_object_set_new(o, "checksum", json_string(cli_hex64(l->checksum, hex)));
  json_object_set_new(o, "metadata",
                      cli_json_metadata(l->metadata, l->metadata_len));
  return o;
}

json_t *cli_json_base64(const void *data, size_t len) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
    return NULL;
  const unsigned char *p = data;
  char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < len)
      v |= p[i + 2];
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? alphabet[v & 63] : '=';
  }
  json_t *s = json_stringn(out, (size_t)(o - out));
  free(out);
  return s;
}

int cli_json_print(json_t *v) {
  if (v == NULL)
    return cli_fail("out of memory building the JSON output");
  /* jansson keeps insertion order (JSON_PRESERVE_ORDER is the default since
   * 2.8; it is passed for older versions), so the key order is the order
   * the commands add them in: stable across runs. */
  char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(v);
  if (text == NULL)
    return cli_fail("cannot encode the JSON output (out of memory?)");
  /* jansson escapes C0 controls (\u001b) but writes C1 and bidirectional
   * controls as they are: those become \uNNNN escapes too, the same
   * string for a JSON reader, inert on a terminal (docs/CLI.md,
   * "Escaping"). jansson's output is valid UTF-8, so every unit decodes. A
   * failed write is reported once, with its cause, by main()'s
   * cli_stdout_close(). */
  const unsigned char *p = (const unsigned char *)text, *end = p + strlen(text);
  while (p < end) {
    const unsigned char *run = p;
    uint32_t cp = 0;
    size_t n = 0;
    while (p < end && (n = tool_utf8_decode(p, end, &cp)) != 0 &&
           !(cp == 0x7f || (cp >= 0x80 && tool_escapes_cp(cp))))
      p += n;
    fwrite(run, 1, (size_t)(p - run), stdout);
    if (p < end) {
      fprintf(stdout, "\\u%04X", (unsigned)cp);
      p += n ? n : 1;
    }
  }
  fputc('\n', stdout);
  free(text);
  return CLI_EXIT_OK;
}
