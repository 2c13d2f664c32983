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

/* How far a long operation has come, handed to a strata_progress_fn.
 * Fields may be appended in later versions (the library fills the
 * structure; a caller reads the fields it knows). */
typedef struct strata_progress {
  uint64_t bytes_done;   /* content bytes processed so far */
  uint64_t bytes_total;  /* content bytes in all, 0 when not known ahead */
  uint64_t layers_done;  /* layers processed so far */
  uint64_t layers_total; /* layers in all, 0 when not known ahead */
} strata_progress;

/* A progress callback, one type for every long operation that takes one:
 * strata_region_verify_ex() (<strata/region.h>), strata_crystallize_ex()
 * (<strata/proto.h>) and the writer (<strata/writer.h>). It is called on
 * the thread doing the work, with `ctx` as given beside it, at the end and
 * otherwise at most once per few MiB of content or per layer, so it may
 * be as slow as redrawing a terminal line. bytes_done and layers_done
 * never decrease; the last call of an operation that succeeds has
 * bytes_done == bytes_total and layers_done == layers_total when the
 * totals are known. `progress` is valid only during the call.
 *
 * Return 0 to go on. Any other value cancels the operation: the call
 * that runs it fails with STRATA_E_CANCELED, leaving what it worked on as
 * it was (each operation's comment says what that means), and the
 * callback is not called again for it. */
typedef int (*strata_progress_fn)(void *ctx, const strata_progress *progress);

#endif /* STRATA_PUBLIC_TYPES_H */
