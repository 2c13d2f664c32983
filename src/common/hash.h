/* XXH3, the checksum of region files. On x86-64, libxxhash's dispatch
 * entry points pick the widest vector unit at run time (AVX-512, AVX2,
 * SSE2): the same hash values, about twice the speed of the default
 * SSE2 build on the index checksum that every open computes. */
#ifndef STRATA_HASH_H
#define STRATA_HASH_H

#include <xxhash.h>
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif

#endif /* STRATA_HASH_H */
