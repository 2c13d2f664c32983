/* Strata: what every public sub-header shares, the export marker and the
 * opaque handles.
 *
 * Part of the public API: included by <strata.h> and by each sub-header, and
 * self-contained. */
#ifndef STRATA_PUBLIC_TYPES_H
#define STRATA_PUBLIC_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* Marks the functions the shared library exports; the library is built with
 * hidden visibility, so everything else in it stays internal. Define
 * STRATA_STATIC_DEFINE when linking the static library. */
#if defined(STRATA_STATIC_DEFINE)
#define STRATA_API
#elif defined(__GNUC__)
#define STRATA_API __attribute__((visibility("default")))
#else
#define STRATA_API
#endif

/* The opaque handles, declared once here because several sub-headers take
 * them; each is documented in the sub-header that creates it. */
typedef struct strata_region strata_region; /* <strata/region.h> */
typedef struct strata_writer strata_writer; /* <strata/writer.h> */
typedef struct strata_store strata_store;   /* <strata/store.h> */
typedef struct strata_proto strata_proto;   /* <strata/proto.h> */
/* A snapshot; a complete type (callers declare one on the stack), defined
 * in <strata/snapshot.h>. */
typedef struct strata_txn strata_txn;

#endif /* STRATA_PUBLIC_TYPES_H */
