/* libFuzzer target for the remote tier's manifest parser
 * (src/remote/remote_manifest.c): a follower parses every manifest it
 * reads from the cluster before it fetches a byte, so the parser meets
 * whatever a pool holds. An input either fails with an error (the detail
 * must name the manifest) or parses into a manifest that keeps the
 * parser's promises (sorted unique files, chunk counts that fit the sizes)
 * and that emits and parses again to the same thing.
 *
 * Seeds: tests/fuzz/corpus/remote_manifest. The same file is linked into
 * fuzz_remote_manifest_replay for builds without libFuzzer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_internal.h"

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_remote_manifest: %s\n", what);
    abort();
  }
}

static void same(const strata__manifest *a, const strata__manifest *b) {
  check(a->version == b->version && a->previous == b->previous &&
            a->chunk_size == b->chunk_size && a->n == b->n,
        "emit + parse changed the manifest's header");
  for (size_t i = 0; i < a->n; i++) {
    const strata__mregion *x = &a->regions[i], *y = &b->regions[i];
    check(strcmp(x->file, y->file) == 0 && x->id == y->id &&
              x->size == y->size && strcmp(x->hash, y->hash) == 0 &&
              x->nchunks == y->nchunks &&
              (x->name == NULL) == (y->name == NULL) &&
              (x->name == NULL || strcmp(x->name, y->name) == 0) &&
              memcmp(x->chunks, y->chunks, x->nchunks * sizeof *x->chunks) == 0,
          "emit + parse changed a region");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *what = "pool/store: manifest.00000000000000000001";
  strata__manifest m;
  int rc = strata__manifest_parse((const char *)data, size, what, &m);
  if (rc != 0) {
    check(m.n == 0 && m.regions == NULL, "a failed parse left regions");
    check(strstr(strata_last_error_detail(), what) != NULL ||
              rc == STRATA_E_NOMEM,
          "an error that does not name the manifest");
    return 0;
  }
  for (size_t i = 0; i < m.n; i++) {
    const strata__mregion *r = &m.regions[i];
    check(i == 0 || strcmp(m.regions[i - 1].file, r->file) < 0,
          "files not sorted and unique");
    check(r->nchunks == (r->size + m.chunk_size - 1) / m.chunk_size,
          "a chunk count that does not fit the size");
  }
  char *json = NULL;
  size_t len = 0;
  check(strata__manifest_emit(&m, &json, &len) == 0, "emit failed");
  strata__manifest back;
  check(strata__manifest_parse(json, len, what, &back) == 0,
        "an emitted manifest does not parse");
  same(&m, &back);
  strata__manifest_free(&back);
  strata__manifest_free(&m);
  free(json);
  return 0;
}
