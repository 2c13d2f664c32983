/* From-dir mode: every regular file under a directory becomes a layer named
 * by its path relative to the directory. Ids are 0..n-1 in strcmp() order of
 * those names, so the same tree always gives the same region, whatever order
 * readdir() returns. Symlinks are not followed (a link could leave the tree
 * or loop) and special files have no content to take: both are skipped with
 * a note. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/tool_escape.h"
#include "builder.h"

typedef struct entry {
  char *rel; /* path relative to the root */
  uint64_t size;
} entry;

typedef struct walk {
  const rb_options *opt;
  const char *root;
  entry *v;
  size_t n, cap;
  dev_t out_dev; /* the previous output, if it lies inside the tree */
  ino_t out_ino;
  bool have_out;
} walk;

/* File names are anyone's bytes: rb_error() and rb_note() escape every
 * message by the rule of docs/CLI.md ("Escaping"), so that a newline in a
 * name cannot forge a line nor an ESC drive the terminal; names are passed
 * to them as they are. */

static int push(walk *wk, char *rel, uint64_t size) {
  if (wk->n == wk->cap) {
    size_t cap = wk->cap ? wk->cap * 2 : 256;
    entry *v = realloc(wk->v, cap * sizeof *v);
    if (v == NULL) {
      free(rel);
      rb_error(wk->root, "out of memory after %zu files", wk->n);
      return -1;
    }
    wk->v = v;
    wk->cap = cap;
  }
  wk->v[wk->n++] = (entry){rel, size};
  return 0;
}

static void note(const walk *wk, const char *rel, const char *what) {
  if (wk->opt->quiet)
    return;
  rb_note("%s/%s: skipped %s", wk->root, rel, what);
}

static void error_at(const char *where, const char *fmt, const char *arg) {
  rb_error(where, fmt, arg);
}

/* A layer's name must be UTF-8 (FORMAT.md, "Strings"), and a file's name
 * becomes part of one: refused here, naming the file and its directory,
 * before the library would refuse "layer N: name" without saying which
 * file that was. */
static bool name_is_utf8(const char *dir, const char *name) {
  const unsigned char *p = (const unsigned char *)name, *end = p + strlen(name);
  uint32_t cp;
  for (size_t n; p < end; p += n)
    if ((n = tool_utf8_decode(p, end, &cp)) == 0) {
      rb_error(dir,
               "%s: file name is not valid UTF-8, and layer names must be: "
               "rename it",
               name);
      return false;
    }
  return true;
}

/* Collects the files under root/rel ("" for the root itself). */
static int scan(walk *wk, const char *rel) {
  char *path = rel[0] ? rb_join(wk->root, rel) : strdup(wk->root);
  DIR *d = path ? opendir(path) : NULL;
  if (d == NULL) {
    error_at(path ? path : wk->root, "%s",
             path ? strerror(errno) : "out of memory");
    free(path);
    return -1;
  }
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char *child = rel[0] ? rb_join(rel, de->d_name) : strdup(de->d_name);
    struct stat st;
    if (child == NULL) {
      error_at(path, "%s", "out of memory");
      rc = -1;
    } else if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      rb_error(path, "%s: %s", de->d_name, strerror(errno));
      rc = -1;
    } else if ((S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) &&
               !name_is_utf8(path, de->d_name)) {
      rc = -1;
    } else if (S_ISDIR(st.st_mode)) {
      rc = scan(wk, child);
    } else if (S_ISLNK(st.st_mode)) {
      note(wk, child, "symbolic link");
    } else if (!S_ISREG(st.st_mode)) {
      note(wk, child, "special file");
    } else if (wk->have_out && st.st_dev == wk->out_dev &&
               st.st_ino == wk->out_ino) {
      note(wk, child, "output region");
    } else {
      rc = push(wk, child, (uint64_t)st.st_size);
      child = NULL; /* owned by the list now */
    }
    free(child);
  }
  if (rc == 0 && errno != 0) {
    error_at(path, "reading the directory: %s", strerror(errno));
    rc = -1;
  }
  closedir(d);
  free(path);
  return rc;
}

static int by_rel(const void *a, const void *b) {
  return strcmp(((const entry *)a)->rel, ((const entry *)b)->rel);
}

static int write_all(walk *wk) {
  uint64_t total = 0;
  for (size_t i = 0; i < wk->n; i++)
    total = rb_aligned_total(total, wk->v[i].size, wk->opt->align);
  rb_session s;
  if (rb_session_open(&s, wk->opt, wk->opt->region_id, wk->opt->region_name,
                      wk->opt->region_metadata, total, wk->n, true, NULL) < 0)
    return -1;
  const char *where = wk->root;
  for (size_t i = 0; i < wk->n; i++) {
    const char *shown = wk->v[i].rel;
    rb_layer l = {
        .id = i,
        .name = wk->v[i].rel,
        .source = RB_SRC_FILE,
        .path = rb_join(wk->root, wk->v[i].rel),
        .shown = shown,
        .size = wk->v[i].size,
        .size_known = true,
    };
    bool ok = l.path != NULL;
    int rc = ok ? rb_session_add(&s, &l, where) : -1;
    if (!ok)
      rb_error("region-builder", "out of memory");
    rb_layer_free(&l);
    if (rc < 0) {
      rb_session_abort(&s);
      return -1;
    }
  }
  return rb_session_commit(&s);
}

int rb_build_from_dir(const rb_options *opt, const char *dir) {
  walk wk = {.opt = opt, .root = dir};
  struct stat st;
  if (stat(opt->out, &st) == 0) {
    wk.have_out = true;
    wk.out_dev = st.st_dev;
    wk.out_ino = st.st_ino;
  }
  int rc = scan(&wk, "");
  if (rc == 0) {
    qsort(wk.v, wk.n, sizeof *wk.v, by_rel);
    rc = write_all(&wk);
  }
  for (size_t i = 0; i < wk.n; i++)
    free(wk.v[i].rel);
  free(wk.v);
  return rc == 0 ? RB_EXIT_OK : RB_EXIT_FAIL;
}
