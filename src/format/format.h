/* Region file format v1: constants, field offsets and little-endian field
 * access shared by the reader (region/) and the writer (writer/).
 * docs/FORMAT.md is the specification; this file must agree with it. */
#ifndef STRATA_FORMAT_H
#define STRATA_FORMAT_H

#include <stdint.h>
#include <string.h>

#include "common/bits.h"

#define STRATA__MAGIC "STRATARG"
#define STRATA__MAGIC_LEN 8
#define STRATA__HEADER_SIZE 256u
/* Delta files (format 1.1, docs/FORMAT.md "Delta files"): the header plus a
 * 64-byte extension that binds the delta to the file below it. */
#define STRATA__DELTA_HEADER_SIZE 320u
#define STRATA__DELTA_MINOR 1u

/* Header field offsets (bytes from the start of the file). */
enum {
  STRATA__H_MAGIC = 0,
  STRATA__H_MAJOR = 8,         /* u16 */
  STRATA__H_MINOR = 10,        /* u16 */
  STRATA__H_HEADER_SIZE = 12,  /* u32 */
  STRATA__H_FLAGS = 16,        /* u64 */
  STRATA__H_REGION_ID = 24,    /* u64 */
  STRATA__H_FILE_SIZE = 32,    /* u64 */
  STRATA__H_LAYER_COUNT = 40,  /* u64 */
  STRATA__H_NAMED_COUNT = 48,  /* u64 */
  STRATA__H_DATA_ALIGN = 56,   /* u32 */
  STRATA__H_NAME_BITS = 60,    /* u32 */
  STRATA__H_RNAME_LEN = 64,    /* u32 */
  STRATA__H_RMETA_LEN = 68,    /* u32 */
  STRATA__H_HASH_SEED = 72,    /* u64 */
  STRATA__H_RNAME_OFF = 80,    /* u64, relative to STRINGS */
  STRATA__H_RMETA_OFF = 88,    /* u64, relative to STRINGS */
  STRATA__H_SLOT_COUNT = 96,   /* u64, sparse regions only */
  STRATA__H_PILOT_COUNT = 104, /* u64, sparse regions only */
  STRATA__H_SECTIONS = 112,    /* 8 x {u64 offset, u64 size} */
  STRATA__H_INDEX_CSUM = 240,  /* u64 */
  STRATA__H_HEADER_CSUM = 248, /* u64, XXH3-64 of bytes [0, 248) */
};

/* Header extension of a delta file (offsets from the start of the file). */
enum {
  STRATA__X_PARENT = 256,   /* u64, header checksum of the file below */
  STRATA__X_BASE = 264,     /* u64, header checksum of the base */
  STRATA__X_DEPTH = 272,    /* u32, >= 1 */
  STRATA__X_RESERVED = 276, /* 36 zero bytes */
  STRATA__X_CSUM = 312,     /* u64, XXH3-64 of bytes [256, 312) */
};

/* Layer entry flag: a tombstone (delta files only): the id is removed. */
#define STRATA__LAYER_TOMBSTONE 1u

/* Sections, in the order they must appear in the file. */
enum strata__section {
  STRATA__S_DATA = 0,
  STRATA__S_INDEX,    /* 64-byte entries: everything about a layer */
  STRATA__S_LOCATORS, /* the lookup table: 16 bytes per entry */
  STRATA__S_PILOTS,   /* sparse: r x u16 pilots of the perfect hash */
  STRATA__S_ID_ORDER, /* sparse: n x u32 entry numbers in id order */
  STRATA__S_NAME_BUCKETS,
  STRATA__S_NAME_INDEX,
  STRATA__S_STRINGS,
  STRATA__S_COUNT
};

/* Layer index entry: 64 bytes, one cache line. */
#define STRATA__ENTRY_SIZE 64u
enum {
  STRATA__E_ID = 0,        /* u64 */
  STRATA__E_OFFSET = 8,    /* u64, relative to DATA */
  STRATA__E_SIZE = 16,     /* u64 */
  STRATA__E_CHECKSUM = 24, /* u64 */
  STRATA__E_NAME_OFF = 32, /* u64, relative to STRINGS */
  STRATA__E_META_OFF = 40, /* u64, relative to STRINGS */
  STRATA__E_NAME_LEN = 48, /* u32 */
  STRATA__E_META_LEN = 52, /* u32 */
  STRATA__E_FLAGS = 56,    /* u32 */
  STRATA__E_RESERVED = 60, /* u32 */
};

/* Locator of the entry with the same number: {u64 offset, u64 size} in
 * dense regions; {u64 offset, u64 size, u64 id} in sparse ones, where an
 * unused slot's locator is {STRATA__EMPTY_OFFSET, 0, 0} (no real offset can
 * be that large). */
#define STRATA__LOC_SIZE 16u
#define STRATA__SLOC_SIZE 24u
#define STRATA__EMPTY_OFFSET UINT64_MAX

/* In sparse regions INDEX has one entry per slot of the perfect hash; an
 * unused slot's entry is all zero but for its flags, which hold this. */
#define STRATA__EMPTY_ENTRY 0xFFFFFFFFu

/* Name index record: {u64 hash, u32 entry, u32 reserved}. */
#define STRATA__NAME_REC_SIZE 16u

/* Caps that bound what a hostile file can make the reader do. */
#define STRATA__MAX_LAYERS UINT64_C(0xFFFFFFFF) /* entry indexes are u32 */
#define STRATA__MAX_REGION_NAME 255u
#define STRATA__MAX_LAYER_NAME 4096u
#define STRATA__MAX_METADATA (1u << 20)
#define STRATA__MIN_ALIGN 16u
#define STRATA__MAX_ALIGN 65536u
#define STRATA__DEFAULT_ALIGN 64u
#define STRATA__MAX_BUCKET 64u /* longest run of records in a name bucket */
/* Sparse regions have one entry per slot and entry numbers are u32, so the
 * slot count n + ceil(n/16) must stay below 2^32: n <= 4042322160. */
#define STRATA__MAX_SPARSE_LAYERS UINT64_C(4042322160)

/* STRATA_REGION_DENSE_IDS | STRATA_REGION_PACKED_LOCATORS |
 * STRATA_REGION_DELTA; bit 2 is not defined. */
#define STRATA__HEADER_FLAGS_KNOWN UINT64_C(0xB)

static inline uint16_t strata__rd16(const void *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap16(v);
#endif
  return v;
}
static inline uint32_t strata__rd32(const void *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}
static inline uint64_t strata__rd64(const void *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}
static inline void strata__wr16(void *p, uint16_t v) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap16(v);
#endif
  memcpy(p, &v, sizeof v);
}
static inline void strata__wr32(void *p, uint32_t v) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  memcpy(p, &v, sizeof v);
}
static inline void strata__wr64(void *p, uint64_t v) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  memcpy(p, &v, sizeof v);
}

/* murmur3's 64-bit finalizer: a bijection on u64 that mixes every input
 * bit into every output bit. */
static inline uint64_t strata__mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* The id hash of sparse regions. */
static inline uint64_t strata__id_hash(uint64_t id, uint64_t seed) {
  return strata__mix64(id ^ seed);
}

/* Maps a 64-bit hash onto [0, range) without a division (Lemire's
 * multiply-shift); uses the hash's high bits. */
static inline uint64_t strata__fastrange(uint64_t hash, uint64_t range) {
  return (uint64_t)(((unsigned __int128)hash * range) >> 64);
}

/* The perfect hash of sparse regions (PTHash-style "hash and displace"):
 * an id's hash picks a bucket, the bucket's pilot picks the slot. The
 * writer chooses pilots so that no two ids share a slot. */
static inline uint64_t strata__pilot_bucket(uint64_t hash, uint64_t pilots) {
  return strata__fastrange(hash, pilots);
}
static inline uint64_t strata__slot_of(uint64_t hash, uint16_t pilot,
                                       uint64_t slots) {
  uint64_t k = 0x9E3779B97F4A7C15ull * ((uint64_t)pilot + 1);
  return strata__fastrange(strata__mix64(hash ^ k), slots);
}
/* Table sizes, fixed by the layer count so that a reader can insist on
 * them: about 94% of slots used, four ids per pilot on average. */
static inline uint64_t strata__slot_count(uint64_t n) {
  return n + (n + 15) / 16;
}
static inline uint64_t strata__pilot_count(uint64_t n) {
  return (n + 3) / 4;
}

/* Bucket of a hash for a table of 2^bits buckets: its top `bits` bits. */
static inline uint64_t strata__bucket(uint64_t hash, unsigned bits) {
  return bits == 0 ? 0 : hash >> (64 - bits);
}

uint64_t strata__name_hash(const char *name, size_t len, uint64_t seed);

#endif /* STRATA_FORMAT_H */
