/* Library version, as linked (the macros give the version compiled against). */
#include "common/common.h"

const char *strata_version_string(void) {
#define STRATA__STR2(x) #x
#define STRATA__STR(x) STRATA__STR2(x)
  return STRATA__STR(STRATA_VERSION_MAJOR) "." STRATA__STR(
      STRATA_VERSION_MINOR) "." STRATA__STR(STRATA_VERSION_PATCH);
}

unsigned strata_version(void) {
  return STRATA_VERSION_HEX;
}
