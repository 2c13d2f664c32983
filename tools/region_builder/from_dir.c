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
  if (!wk->opt->quiet)
    fprintf(stderr, "region-builder: note: %s/%s: skipped %s\n", wk->root, rel,
            what);
}

/* Collects the files under root/rel ("" for the root itself). */
static int scan(walk *wk, const char *rel) {
  char *path = rel[0] ? rb_join(wk->root, rel) : strdup(wk->root);
  DIR *d = path ? opendir(path) : NULL;
  if (d == NULL) {
    rb_error(path ? path : wk->root, "%s",
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
      rb_error(path, "out of memory");
      rc = -1;
    } else if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      rb_error(path, "%s: %s", de->d_name, strerror(errno));
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
    rb_error(path, "reading the directory: %s", strerror(errno));
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
                      wk->opt->region_metadata, total, wk->n, NULL) < 0)
    return -1;
  for (size_t i = 0; i < wk->n; i++) {
    rb_layer l = {
        .id = i,
        .name = wk->v[i].rel,
        .source = RB_SRC_FILE,
        .path = rb_join(wk->root, wk->v[i].rel),
        .shown = wk->v[i].rel,
        .size = wk->v[i].size,
        .size_known = true,
    };
    int rc = l.path ? rb_session_add(&s, &l, wk->root) : -1;
    if (l.path == NULL)
      rb_error(wk->root, "out of memory");
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
