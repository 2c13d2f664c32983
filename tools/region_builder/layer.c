/* One layer: checking its JSON object (the schema is the same in a manifest
 * and in a JSONL line) and streaming its content into the writer. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder.h"

/* Files are copied through this much memory at a time, whatever their size. */
#define CHUNK (256u << 10)

static const char *const layer_keys[] = {
    "id", "name", "metadata", "metadata_text", "text", "base64", "file", NULL};

int rb_check_keys(const json_t *obj, const char *const *allowed,
                  const char *where) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    bool ok = false;
    for (const char *const *a = allowed; *a && !ok; a++)
      ok = strcmp(key, *a) == 0;
    if (!ok) {
      rb_error(where, "unknown key \"%s\"", key);
      return -1;
    }
  }
  return 0;
}

char *rb_metadata_dump(const json_t *v, const char *where) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (s == NULL)
    rb_error(where, "cannot serialize \"metadata\" (out of memory)");
  return s;
}

int rb_metadata_parse(const json_t *obj, const char *where, char **out) {
  const json_t *meta = json_object_get(obj, "metadata");
  const json_t *text = json_object_get(obj, "metadata_text");
  *out = NULL;
  if (meta != NULL && text != NULL) {
    rb_error(where, "\"metadata\" and \"metadata_text\" cannot both be given");
    return -1;
  }
  if (meta != NULL)
    return (*out = rb_metadata_dump(meta, where)) == NULL ? -1 : 0;
  if (text == NULL)
    return 0;
  /* The text is stored as it is: whether it is JSON is the writer's check
   * (it accepts numbers of any size, which jansson cannot hold), made when
   * the region or layer is written. */
  if (!json_is_string(text) || json_string_length(text) == 0 ||
      strlen(json_string_value(text)) != json_string_length(text)) {
    rb_error(where, "\"metadata_text\" must be a non-empty string without "
                    "NUL bytes");
    return -1;
  }
  *out = strdup(json_string_value(text));
  if (*out == NULL) {
    rb_error(where, "out of memory");
    return -1;
  }
  return 0;
}

/* Checks a "file" source: it must exist and be a regular file or a FIFO
 * (a stream whose size is learned by reading it). It is not opened here, so
 * that a FIFO's writer is not waited for before the region is started. */
static int check_file(rb_layer *l, const char *where) {
  struct stat st;
  if (stat(l->path, &st) != 0) {
    rb_error(where, "file \"%s\": %s", l->shown, strerror(errno));
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    rb_error(where, "file \"%s\": %s", l->shown, strerror(EISDIR));
    return -1;
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    rb_error(where, "file \"%s\": not a regular file or FIFO", l->shown);
    return -1;
  }
  if (access(l->path, R_OK) != 0) {
    rb_error(where, "file \"%s\": %s", l->shown, strerror(errno));
    return -1;
  }
  l->size_known = S_ISREG(st.st_mode);
  l->size = l->size_known ? (uint64_t)st.st_size : 0;
  return 0;
}

/* Fills the content source from exactly one of "text", "base64", "file". */
static int parse_source(const json_t *obj, const char *where,
                        const char *base_dir, rb_layer *l) {
  const json_t *text = json_object_get(obj, "text");
  const json_t *b64 = json_object_get(obj, "base64");
  const json_t *file = json_object_get(obj, "file");
  int count = (text != NULL) + (b64 != NULL) + (file != NULL);
  if (count != 1) {
    rb_error(where, "%s of \"text\", \"base64\" and \"file\" %s",
             count == 0 ? "none" : "more than one",
             count == 0 ? "is given (exactly one is needed)"
                        : "are given (exactly one is allowed)");
    return -1;
  }
  const json_t *src = text ? text : b64 ? b64 : file;
  const char *key = text ? "text" : b64 ? "base64" : "file";
  if (!json_is_string(src)) {
    rb_error(where, "\"%s\" must be a string", key);
    return -1;
  }
  l->text = json_string_value(src);
  l->text_len = json_string_length(src);
  if (text) {
    l->source = RB_SRC_TEXT;
    l->size = l->text_len;
    l->size_known = true;
    return 0;
  }
  if (b64) {
    size_t bad_at = 0;
    int64_t n = rb_base64_decoded_len(l->text, l->text_len, &bad_at);
    if (n < 0) {
      if (bad_at == l->text_len)
        rb_error(where, "\"base64\": length %zu is not a multiple of 4",
                 l->text_len);
      else
        rb_error(where, "\"base64\": invalid character at offset %zu", bad_at);
      return -1;
    }
    l->source = RB_SRC_BASE64;
    l->size = (uint64_t)n;
    l->size_known = true;
    return 0;
  }
  if (l->text_len == 0 || strlen(l->text) != l->text_len) {
    rb_error(where, "\"file\" must be a non-empty path without NUL bytes");
    return -1;
  }
  l->source = RB_SRC_FILE;
  l->shown = l->text;
  l->text = NULL;
  l->text_len = 0;
  l->path = rb_join(base_dir, l->shown);
  if (l->path == NULL) {
    rb_error(where, "out of memory");
    return -1;
  }
  return check_file(l, where);
}

int rb_layer_parse(const json_t *obj, const char *where, const char *base_dir,
                   rb_layer *out) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(obj)) {
    rb_error(where, "a layer must be a JSON object");
    return -1;
  }
  if (rb_check_keys(obj, layer_keys, where) < 0)
    return -1;
  const json_t *id = json_object_get(obj, "id");
  if (id == NULL) {
    rb_error(where, "missing \"id\"");
    return -1;
  }
  if (!rb_json_u64(id, &out->id)) {
    rb_error(where, "\"id\" must be a non-negative integer (or a string of "
                    "decimal digits up to 18446744073709551615)");
    return -1;
  }
  const json_t *name = json_object_get(obj, "name");
  if (name != NULL) {
    if (!json_is_string(name) || json_string_length(name) == 0) {
      rb_error(where, "\"name\" must be a non-empty string");
      return -1;
    }
    if (strlen(json_string_value(name)) != json_string_length(name)) {
      rb_error(where, "\"name\" must not contain NUL bytes");
      return -1;
    }
    out->name = json_string_value(name);
  }
  if (rb_metadata_parse(obj, where, &out->metadata) < 0)
    return -1;
  if (parse_source(obj, where, base_dir, out) < 0) {
    rb_layer_free(out);
    return -1;
  }
  return 0;
}

void rb_layer_free(rb_layer *l) {
  free(l->metadata);
  free(l->path);
  if (l->owns_name)
    free((char *)l->name);
  memset(l, 0, sizeof *l);
}

/* Copies a file into the open layer, CHUNK bytes at a time. */
static int stream_file(strata_writer *w, const rb_layer *l, const char *where) {
  int fd = open(l->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rb_error(where, "file \"%s\": %s", l->shown, strerror(errno));
    return -1;
  }
  uint8_t *buf = malloc(CHUNK);
  int rc = buf ? 0 : -1;
  if (buf == NULL)
    rb_error(where, "file \"%s\": out of memory", l->shown);
  while (rc == 0) {
    ssize_t k = read(fd, buf, CHUNK);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      rb_error(where, "file \"%s\": reading: %s", l->shown, strerror(errno));
      rc = -1;
    } else if (k == 0) {
      break;
    } else {
      int e = strata_writer_append(w, buf, (size_t)k);
      if (e < 0) {
        rb_lib_error(where, e);
        rc = -1;
      }
    }
  }
  free(buf);
  close(fd);
  return rc;
}

/* Decodes base64 into one buffer: the encoded text is in memory already
 * (it came from the JSON), so this at most doubles a size that is there. */
static int write_base64(strata_writer *w, const rb_layer *l,
                        const char *where) {
  uint8_t *buf = malloc(l->size ? (size_t)l->size : 1);
  if (buf == NULL) {
    rb_error(where, "\"base64\": out of memory");
    return -1;
  }
  rb_base64_decode(l->text, l->text_len, buf);
  int e = strata_writer_append(w, buf, (size_t)l->size);
  free(buf);
  if (e < 0) {
    rb_lib_error(where, e);
    return -1;
  }
  return 0;
}

int rb_layer_write(strata_writer *w, const rb_layer *l, const char *where) {
  int e = strata_writer_begin_layer(w, l->id, l->name,
                                    l->name ? strlen(l->name) : 0, l->metadata);
  if (e < 0) {
    rb_lib_error(where, e);
    return -1;
  }
  int rc = 0;
  if (l->source == RB_SRC_FILE)
    rc = stream_file(w, l, where);
  else if (l->source == RB_SRC_BASE64)
    rc = write_base64(w, l, where);
  else if ((e = strata_writer_append(w, l->text, l->text_len)) < 0) {
    rb_lib_error(where, e);
    rc = -1;
  }
  if (rc == 0 && (e = strata_writer_end_layer(w)) < 0) {
    rb_lib_error(where, e);
    rc = -1;
  }
  return rc;
}
