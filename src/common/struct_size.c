/* Reading a public structure that grows (struct_size.h). */
#include <stdint.h>
#include <string.h>

#include "common/common.h"
#include "common/struct_size.h"

int strata__read_sized(const char *who, const char *type, void *out,
                       size_t size, size_t align, const void *in) {
  if (in == NULL)
    return 0;
  /* struct_size is the first field; memcpy reads it whatever `in` points
   * to, and reads nothing else before the size is known. */
  uint32_t n;
  memcpy(&n, in, sizeof n);
  /* "strata_store_config" is filled "with strata_store_config_init()": the
   * detail calls the structure by its last word, config or options. */
  const char *noun = strrchr(type, '_') ? strrchr(type, '_') + 1 : type;
  STRATA__FAIL_IF(n == 0, STRATA_E_INVAL,
                  "%s: %s.struct_size is 0: fill the %s with %s_init()", who,
                  type, noun, type);
  STRATA__FAIL_IF(n > size || n % align, STRATA_E_INVAL,
                  "%s: %s.struct_size %u is not a size this library accepts "
                  "(at most %zu, a multiple of %zu)%s",
                  who, type, n, size, align,
                  n > size ? ": the caller's header is newer than the library"
                           : "");
  memcpy(out, in, n);
  n = (uint32_t)size;
  memcpy(out, &n, sizeof n);
  return 0;
}
