/* libFuzzer target for a store over a directory of fuzzed region files.
 *
 * The input is cut into files at every occurrence of the region magic
 * ("STRATARG"), at most MAX_FILES of them; each gets its checksums repaired
 * (as fuzz_region does: the structural checks are what is fuzzed, and
 * fuzz_region covers the checksums) and is written into a scratch
 * directory. Then the store is opened over it and everything a caller may
 * do is exercised: every served region's layers are read through
 * snapshots, one by one and as a path, the state is dumped (verbose) and
 * must parse as JSON, a proto is opened over the first region, changed,
 * crystallized and read back, and the store is closed. Any crash, leak
 * (ASan) or broken promise (a trap) is a finding. Regions that fail
 * validation must be skipped, never served.
 *
 * Seeds (tests/fuzz/corpus/store) are concatenations of valid region files,
 * including two with the same region id. The same file is linked into
 * fuzz_store_replay for builds without libFuzzer (see replay_main.c). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fuzz_repair.h"
#include "fuzz_util.h"
#include "region/region.h"

#define MAX_FILES 4
#define MAX_LAYERS_READ 2048

static volatile uint8_t g_sink;

static void empty_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

static void write_file(const char *dir, int i, const uint8_t *p, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL)
    return;
  memcpy(copy, p, len);
  fuzz_repair_checksums(copy, len);
  char path[512];
  snprintf(path, sizeof path, "%s/f%d.region", dir, i);
  FILE *f = fopen(path, "wb");
  if (f != NULL) {
    fwrite(copy, 1, len, f);
    fclose(f);
  }
  free(copy);
}

static void split_into_files(const char *dir, const uint8_t *data,
                             size_t size) {
  size_t starts[MAX_FILES + 1], n = 0;
  starts[n++] = 0;
  for (size_t i = 1; i + STRATA__MAGIC_LEN <= size && n < MAX_FILES; i++)
    if (memcmp(data + i, STRATA__MAGIC, STRATA__MAGIC_LEN) == 0)
      starts[n++] = i;
  starts[n] = size;
  for (size_t i = 0; i < n; i++)
    write_file(dir, (int)i, data + starts[i], starts[i + 1] - starts[i]);
}

static void read_everything(strata_store *s) {
  strata_txn t;
  REQUIRE(strata_read_begin(s, &t) == 0);
  uint64_t n = strata_store_region_count(&t);
  REQUIRE(n <= MAX_FILES);
  for (uint64_t k = 0; k < n; k++) {
    strata_store_region r;
    REQUIRE(strata_store_region_at(&t, k, &r) == 0);
    REQUIRE(r.file != NULL && r.name != NULL);
    uint64_t found;
    REQUIRE(strata_find_region(&t, r.name, strlen(r.name), &found) == 0 &&
            found == r.id);
    strata_region_iter it;
    strata_layer l, g;
    strata_region_iter_init(r.file, &it);
    uint64_t seen = 0;
    while (seen < MAX_LAYERS_READ && strata_region_next(&it, &l) > 0) {
      /* Through the store, the same layer. */
      REQUIRE(strata_get(&t, r.id, l.id, &g) == 0);
      REQUIRE(g.data == l.data && g.size == l.size);
      if (l.size > 0)
        g_sink ^= ((const uint8_t *)l.data)[l.size - 1];
      if (l.name != NULL) {
        /* Names may be duplicated in a crafted file whose name index
         * verify would reject; a lookup must still return some layer of
         * that name, safely. */
        if (strata_get_by_name(&t, r.id, l.name, l.name_len, &g) == 0)
          REQUIRE(g.name_len == l.name_len &&
                  memcmp(g.name, l.name, l.name_len) == 0);
      }
      seen++;
    }
    strata_layer_ref path[3] = {{r.id, 0}, {r.id, UINT64_MAX}, {r.id + 1, 1}};
    strata_layer out[3];
    REQUIRE(strata_get_many(&t, path, 3, out) <= 3);
  }
  strata_read_end(&t);
}

static void dump_parses(strata_store *s) {
  char *text = NULL;
  REQUIRE(strata_dump_state(s, STRATA_DUMP_VERBOSE, &text) == 0);
  json_t *doc = json_loads(text, 0, NULL);
  REQUIRE(doc != NULL);
  json_decref(doc);
  strata_free(text);
  REQUIRE(strata_metrics_text(s, &text) == 0);
  strata_free(text);
}

/* A proto over the first region: a put, a remove, a crystallization (which
 * merges the fuzzed file's layers into a new file), and a read back. */
static void change_first_region(strata_store *s) {
  strata_txn t;
  REQUIRE(strata_read_begin(s, &t) == 0);
  strata_store_region r;
  int have = strata_store_region_count(&t) > 0 &&
             strata_store_region_at(&t, 0, &r) == 0;
  uint64_t id = have ? r.id : 0;
  strata_read_end(&t);
  if (!have)
    return;
  strata_proto *p = NULL;
  if (strata_proto_open(s, id, &p) != 0)
    return; /* e.g. the lock file cannot be made: not a finding */
  int put = strata_proto_put(p, 7, "fuzz-name", 9, "{\"k\":1}", "content", 7);
  (void)strata_proto_remove(p, 0);
  int rc = strata_crystallize(s, id);
  /* The merge can only fail on what the writer checks and the file's
   * structure allowed: duplicate names in a crafted file (the name index
   * does not prove uniqueness), I/O. */
  REQUIRE(rc == 0 || rc == STRATA_E_DUPLICATE || rc == STRATA_E_LIMIT ||
          rc == STRATA_E_INVAL || rc < 0);
  if (put != 0)
    return; /* e.g. the fuzzed file already has a layer of that name */
  strata_layer l;
  REQUIRE(strata_read_begin(s, &t) == 0);
  int got = strata_get(&t, id, 7, &l);
  REQUIRE(got == 0 && l.size == 7 && memcmp(l.data, "content", 7) == 0);
  strata_read_end(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *dir = fuzz_scratch_dir("store");
  empty_dir(dir);
  split_into_files(dir, data, size);
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_OFF;
  c.flags = STRATA_STORE_VERIFY_AT_OPEN;
  c.open_threads = 1;
  c.max_readers = 4;
  strata_store *s = NULL;
  if (strata_store_open(dir, &c, &s) != 0)
    return 0;
  read_everything(s);
  dump_parses(s);
  change_first_region(s);
  read_everything(s);
  strata_store_close(s);
  return 0;
}
