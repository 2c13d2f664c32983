/* libFuzzer target for region-builder's inputs: the JSON manifest and the
 * JSONL stream parsers, up to a written region.
 *
 * The first byte of the input chooses the parser ('J': JSONL, anything
 * else: manifest); the rest is written to a file in a scratch directory
 * and built into a region there, as `region-builder -q -o out.region` would.
 * A build either fails with an error (printed on stderr; run the fuzzer
 * with -close_fd_mask=2) or writes a region that must open and verify.
 * Inputs that name files under /dev, /proc or /sys as layer sources are
 * skipped: reading /dev/zero is not a finding.
 *
 * Seeds (tests/fuzz/corpus/manifest) come from tests/builder. The same file
 * is linked into fuzz_manifest_replay for builds without libFuzzer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder.h"
#include "fuzz_util.h"

static bool names_special_files(const uint8_t *data, size_t size) {
  static const char *const bad[] = {"/dev", "/proc", "/sys"};
  for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
    if (memmem(data, size, bad[b], strlen(bad[b])) != NULL)
      return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || names_special_files(data, size))
    return 0;
  const char *dir = fuzz_scratch_dir("manifest");
  char in[512], out[512];
  snprintf(in, sizeof in, "%s/input", dir);
  snprintf(out, sizeof out, "%s/out.region", dir);
  unlink(out);
  FILE *f = fopen(in, "wb");
  if (f == NULL)
    return 0;
  fwrite(data + 1, 1, size - 1, f);
  fclose(f);
  rb_options opt = {
      .out = out, .quiet = true, .region_id = 1, .region_name = "fuzz"};
  int rc =
      data[0] == 'J' ? rb_build_jsonl(&opt, in) : rb_build_manifest(&opt, in);
  REQUIRE(rc == RB_EXIT_OK || rc == RB_EXIT_FAIL || rc == RB_EXIT_USAGE);
  if (rc == RB_EXIT_OK) {
    strata_region *r = NULL;
    REQUIRE(strata_region_open(out, STRATA_OPEN_DEFAULT, &r) == 0);
    REQUIRE(strata_region_verify(r, NULL) == 0);
    strata_region_close(r);
  } else {
    /* A failed build leaves nothing at the output path. */
    REQUIRE(access(out, F_OK) != 0);
  }
  return 0;
}
