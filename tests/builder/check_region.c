/* check_region: prints what a region holds, for the region-builder tests to
 * compare with an expected listing. Uses the public API only.
 *
 * Output (tab-separated; "-" for an absent name or metadata):
 *   region  ID  NAME  METADATA  align=N
 *   ID  NAME  SIZE  XXH3-HEX  METADATA      (one line per layer, id order)
 *
 * Before printing, it checks what the listing cannot show: the region
 * verifies, every content pointer is aligned as the header says, the
 * checksum it computes itself matches the stored one, and each layer is
 * found again by id and by name. Any failure exits 1 with a message. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "strata.h"

static int fail(const char *what, uint64_t id) {
  fprintf(stderr, "check_region: layer %" PRIu64 ": %s (%s)\n", id, what,
          strata_last_error_detail());
  return 1;
}

static int check_layer(const strata_region *r, const strata_layer *l,
                       uint32_t align) {
  /* The mapping starts on a page, so a pointer's alignment is its file
   * offset's alignment up to the page size. */
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t a = align < page ? align : page;
  if ((uintptr_t)l->data % a != 0)
    return fail("content is not aligned", l->id);
  if (XXH3_64bits(l->data, (size_t)l->size) != l->checksum)
    return fail("content does not match its checksum", l->id);
  strata_layer again;
  if (strata_region_get(r, l->id, &again) != 0 || again.data != l->data)
    return fail("not found again by id", l->id);
  if (l->name &&
      (strata_region_get_by_name(r, l->name, l->name_len, &again) != 0 ||
       again.id != l->id))
    return fail("not found again by name", l->id);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: check_region FILE.region\n");
    return 2;
  }
  strata_region *r;
  int rc = strata_region_open(argv[1], STRATA_OPEN_DEFAULT, &r);
  if (rc != 0) {
    fprintf(stderr, "check_region: %s\n", strata_last_error_detail());
    return 1;
  }
  strata_region_info info;
  uint64_t bad = 0;
  if (strata_region_info_get(r, &info) != 0 ||
      strata_region_verify(r, &bad) != 0 ||
      info.data_offset % info.data_align != 0) {
    fprintf(stderr, "check_region: %s does not verify: %s\n", argv[1],
            strata_last_error_detail());
    strata_region_close(r);
    return 1;
  }
  printf("region\t%" PRIu64 "\t%s\t%s\talign=%" PRIu32 "\n", info.id, info.name,
         info.metadata[0] ? info.metadata : "-", info.data_align);
  strata_region_iter it;
  strata_layer l;
  strata_region_iter_init(r, &it);
  int status = 0;
  while (status == 0 && (rc = strata_region_next(&it, &l)) > 0) {
    status = check_layer(r, &l, info.data_align);
    printf("%" PRIu64 "\t%s\t%" PRIu64 "\t%016" PRIx64 "\t%s\n", l.id,
           l.name ? l.name : "-", l.size, (uint64_t)XXH3_64bits(l.data, l.size),
           l.metadata ? l.metadata : "-");
  }
  if (rc < 0)
    status = fail("iteration failed", it.last_id);
  strata_region_close(r);
  return status;
}
