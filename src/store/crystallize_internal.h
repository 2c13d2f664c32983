/* What crystallize.c shares with compact.c, the background compactor: the
 * walks over a region's content in id order, the checks that the files on
 * disk are still the ones the store serves, and the names of delta files
 * (docs/ARCHITECTURE.md, "Crystallize" and "Background compaction"). */
#ifndef STRATA_STORE_CRYSTALLIZE_INTERNAL_H
#define STRATA_STORE_CRYSTALLIZE_INTERNAL_H

#include "store/store_internal.h"
#include "writer/writer_internal.h"

/* The depth a region's stack of deltas may reach: a crystallization over a
 * stack this deep merges it into one delta, or compacts it into a new base
 * (docs/ARCHITECTURE.md, "Crystallize"), so reads see at most this many
 * deltas. With a background compactor the crystallization writes another
 * delta instead and asks the compactor to do it, up to
 * STRATA__MAX_DEPTH_BACKGROUND (reads by id cost the same at any depth:
 * one id table covers every delta; reads by name and the id table's
 * rebuild at each crystallization grow with it). */
#define STRATA__MAX_DEPTH 4
#define STRATA__MAX_DEPTH_BACKGROUND 16

/* Called for each layer of the region's current content, in id order.
 * `checksum` is the content's XXH3-64 where it is known (a proto's layer
 * version, hashed when it was put), else NULL. A `size` of
 * STRATA__TOMBSTONE stands for a tombstone (a delta's removal). */
typedef int (*strata__layer_fn)(void *arg, uint64_t id, const char *name,
                                size_t name_len, const char *metadata,
                                const void *data, uint64_t size,
                                const uint64_t *checksum);
#define STRATA__TOMBSTONE UINT64_MAX
typedef int (*strata__content_fn)(const strata__entry *e, strata__layer_fn fn,
                                  void *arg);

/* The region's current content: the files' layers (base and deltas)
 * merged with the proto's newest versions (an entry without an overlay:
 * the files alone). What a new base holds. */
int strata__content_base(const strata__entry *e, strata__layer_fn fn,
                         void *arg);
/* What a delta merging the entry's stack with its proto holds over the
 * base alone: per id of the stack or the proto, the newest version, and a
 * tombstone where that version removes a layer the base holds. */
int strata__content_merged(const strata__entry *e, strata__layer_fn fn,
                           void *arg);

/* The writer options of a new file of entry `e`'s region: its id, name,
 * metadata and its base file's content alignment. */
void strata__crys_writer_options(const strata__entry *e,
                                 strata_writer_options *opts);
/* Streams `content` of `e` into `w`; *bytes counts the content bytes
 * added. The writer's errors. */
int strata__crys_write(const strata__entry *e, strata__content_fn content,
                       strata_writer *w, uint64_t *bytes);

/* STRATA_E_CONFLICT (naming `path`, the file being written) unless the
 * file under the region's name is the base `e` serves (or the file a
 * failed crystallization of its proto placed); an error from stat. */
int strata__crys_check_base(struct strata_store *s, const strata__entry *e,
                            const char *path);
/* The same for every delta of `e`'s stack, and no foreign delta over its
 * top at `next` (the name of the delta of the next depth). */
int strata__crys_check_stack(struct strata_store *s, const strata__entry *e,
                             const char *path, const char *next);
/* The last component of `path`: a store file's name in its directory
 * (what the *at() calls on the store's dirfd take). */
const char *strata__file_name(const char *path);
/* The path of the delta of depth `depth` of region `name` (NAME.k.delta),
 * malloc'd; NULL when out of memory. */
char *strata__delta_path(struct strata_store *s, const char *name,
                         uint32_t depth);
/* Removes the deltas of `e`'s stack (and `placed`, when not NULL), made
 * stale by a compaction or a merge, except the file under the name of
 * `keep` (a merge's new first delta; NULL for none). A failure is a WARN. */
void strata__crys_unlink_stale(struct strata_store *s, const strata__entry *e,
                               const char *keep, const char *placed);

#endif /* STRATA_STORE_CRYSTALLIZE_INTERNAL_H */
