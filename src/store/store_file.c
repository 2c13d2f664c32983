/* Region files as the store holds them: the path of a file in the store's
 * directory, the reference-counted record of a mapped file (strata__file)
 * and the end of a mapping, which tells whoever registered for it
 * (strata_store.before_unmap) first.
 *
 * This is the bottom of the store's modules: the catalog frees entries,
 * the scan opens files and crystallization wraps the file it wrote, all
 * through here, and nothing here calls back into them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

char *strata__store_path(const struct strata_store *s, const char *name,
                         const char *suffix) {
  size_t a = strlen(s->dir), b = strlen(name), c = strlen(suffix);
  char *p = malloc(a + 1 + b + c + 1);
  if (p != NULL) {
    memcpy(p, s->dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b);
    memcpy(p + a + 1 + b, suffix, c + 1);
  }
  return p;
}

int strata__file_new(strata_region *r, dev_t dev, ino_t ino, bool defer,
                     strata__file **out) {
  strata__file *f = calloc(1, sizeof *f);
  if (f == NULL || (f->path = strdup(r->path)) == NULL) {
    free(f);
    return strata__fail(STRATA_E_NOMEM, "%s: allocating", r->path);
  }
  f->region = r;
  f->dev = dev;
  f->ino = ino;
  f->refs = 1;
  f->checksum_pending = defer;
  f->opened_unix_ms = strata__unix_ms();
  *out = f;
  return 0;
}

int strata__file_open(struct strata_store *s, const char *name, bool defer,
                      strata__file **out) {
  char *path = strata__store_path(s, name, "");
  if (path == NULL)
    return strata__fail(STRATA_E_NOMEM, "%s/%s: allocating", s->dir, name);
  /* The identity is taken before the mapping: refresh compares it with the
   * directory entry later, and a file replaced between the two is then
   * seen as replaced, never the other way round. */
  struct stat st;
  strata_region *r = NULL;
  int rc = stat(path, &st) == 0
               ? strata__region_open_ex(path, STRATA_OPEN_DEFAULT, defer, &r)
               : strata__fail_errno(errno, "%s: stat", path);
  if (rc == 0) {
    rc = strata__file_new(r, st.st_dev, st.st_ino, defer, out);
    if (rc < 0)
      strata_region_close(r);
  }
  free(path);
  return rc;
}

void strata__file_unref(struct strata_store *s, strata__file *f) {
  if (f == NULL || --f->refs > 0)
    return;
  if (s->before_unmap != NULL)
    s->before_unmap(s->before_unmap_ctx, f->region->base, f->region->size);
  strata_region_close(f->region);
  free(f->path);
  free(f);
}
