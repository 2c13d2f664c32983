/* Quickstart: write a region with three layers, open it, read them back by
 * id and by name, and verify it. Build against an installed Strata with
 *   cc quickstart.c $(pkg-config --cflags --libs strata)
 * or with CMake's find_package(strata) (see CMakeLists.txt here). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <strata.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "quickstart: %s: %s (%s)\n", what, strata_strerror(rc),
          strata_last_error_detail());
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "quickstart.region";
  strata_writer_options opts;
  strata_writer_options_init(&opts);
  opts.region_id = 1;
  opts.name = "quickstart";
  opts.metadata = "{\"purpose\":\"example\"}";
  strata_writer *w;
  int rc = strata_writer_open(path, &opts, &w);
  if (rc < 0)
    return fail("open writer", rc);
  const char *texts[] = {"Regions are immutable files.",
                         "Layers are served zero-copy from the mapping.",
                         "Writers publish new files by rename."};
  for (uint64_t i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "fact-%" PRIu64, i);
    rc = strata_writer_add(w, i, name, strlen(name),
                           "{\"keywords\":[\"strata\"]}", texts[i],
                           strlen(texts[i]));
    if (rc < 0) {
      strata_writer_abort(w);
      return fail("add layer", rc);
    }
  }
  if ((rc = strata_writer_commit(w)) < 0)
    return fail("commit", rc);

  strata_region *region;
  if ((rc = strata_region_open(path, 0, &region)) < 0)
    return fail("open region", rc);
  strata_layer layer;
  if ((rc = strata_region_get(region, 1, &layer)) < 0)
    return fail("get layer 1", rc);
  printf("layer %" PRIu64 " (%s): %.*s\n", layer.id, layer.name,
         (int)layer.size, (const char *)layer.data);
  if ((rc = strata_region_get_by_name(region, "fact-2", 6, &layer)) < 0)
    return fail("get fact-2", rc);
  printf("layer %" PRIu64 " (%s): %.*s\n", layer.id, layer.name,
         (int)layer.size, (const char *)layer.data);
  if ((rc = strata_region_verify(region, NULL)) < 0)
    return fail("verify", rc);
  printf("verified %" PRIu64 " layers with strata %s\n",
         strata_region_layer_count(region), strata_version_string());
  strata_region_close(region);
  return 0;
}
