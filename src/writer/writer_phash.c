/* Construction of the perfect hash that sparse regions use to find a layer
 * by id in two table reads (docs/FORMAT.md, "Finding a layer by id").
 *
 * The method is PTHash's "hash and displace": every key's hash picks one of
 * r buckets (about four keys each); buckets are placed largest first, and
 * for each the builder searches for the smallest 16-bit pilot that sends all
 * of the bucket's keys to free, distinct slots among m (about 6% more slots
 * than keys, so the search stays short to the end). A reader recomputes the
 * slot from the key's hash and its bucket's pilot. */
#include <stdlib.h>

#include "writer/writer_internal.h"

/* A bucket larger than this means the keys were built to collide under this
 * seed: give up on the seed rather than search forever. */
#define MAX_BUCKET_KEYS 64

/* Returns 0 and fills pilots[r] and slot[n] (slot[i] for hashes[i]),
 * 1 when no pilot places some bucket (the caller tries another seed), or
 * STRATA_E_NOMEM. */
int strata__phash_build(const uint64_t *hashes, uint64_t n, uint16_t *pilots,
                        uint64_t *slot) {
  uint64_t r = strata__pilot_count(n), m = strata__slot_count(n);
  uint32_t *start = calloc(r + 1, sizeof *start); /* keys of bucket b: */
  uint32_t *keys = malloc(n * sizeof *keys);      /* keys[start[b]..] */
  /* Their hashes in the same order, so that the pilot search reads them
   * in sequence rather than one cache miss per key. */
  uint64_t *bhash = malloc(n * sizeof *bhash);
  uint32_t *by_size = malloc(r * sizeof *by_size);
  uint64_t *taken = calloc((m + 63) / 64, sizeof *taken);
  uint32_t size_count[MAX_BUCKET_KEYS + 2] = {0};
  int rc = 0;
  if (!start || !keys || !bhash || !by_size || !taken) {
    rc = STRATA_E_NOMEM;
    goto out;
  }
  /* Counting sort of the keys by bucket. */
  for (uint64_t i = 0; i < n; i++)
    start[strata__pilot_bucket(hashes[i], r) + 1]++;
  for (uint64_t b = 0; b < r; b++) {
    if (start[b + 1] > MAX_BUCKET_KEYS) {
      rc = 1;
      goto out;
    }
    size_count[start[b + 1]]++;
    start[b + 1] += start[b];
  }
  {
    uint32_t *fill = malloc(r * sizeof *fill);
    if (fill == NULL) {
      rc = STRATA_E_NOMEM;
      goto out;
    }
    memcpy(fill, start, r * sizeof *fill);
    for (uint64_t i = 0; i < n; i++) {
      uint32_t at = fill[strata__pilot_bucket(hashes[i], r)]++;
      keys[at] = (uint32_t)i;
      bhash[at] = hashes[i];
    }
    free(fill);
  }
  /* Buckets ordered by size, largest first (counting sort again). */
  uint32_t pos[MAX_BUCKET_KEYS + 2];
  uint32_t acc = 0;
  for (int k = MAX_BUCKET_KEYS; k >= 0; k--) {
    pos[k] = acc;
    acc += size_count[k];
  }
  for (uint64_t b = 0; b < r; b++)
    by_size[pos[start[b + 1] - start[b]]++] = (uint32_t)b;

  for (uint64_t j = 0; j < r; j++) {
    uint32_t b = by_size[j];
    uint32_t lo = start[b], cnt = start[b + 1] - lo;
    pilots[b] = 0;
    if (cnt == 0)
      continue;
    uint64_t s[MAX_BUCKET_KEYS];
    bool placed = false;
    if (cnt == 1) {
      /* Most buckets past the first few hold one key: the first pilot
       * that sends it to a free slot, without the general loop's
       * bookkeeping (the same pilot, so the same file). */
      uint64_t h = bhash[lo];
      for (uint32_t p = 0; p <= UINT16_MAX; p++) {
        uint64_t t = strata__slot_of(h, (uint16_t)p, m);
        if (!(taken[t / 64] >> (t % 64) & 1)) {
          pilots[b] = (uint16_t)p;
          taken[t / 64] |= 1ull << (t % 64);
          slot[keys[lo]] = t;
          placed = true;
          break;
        }
      }
    }
    for (uint32_t p = 0; p <= UINT16_MAX && !placed && cnt > 1; p++) {
      placed = true;
      for (uint32_t k = 0; k < cnt && placed; k++) {
        s[k] = strata__slot_of(bhash[lo + k], (uint16_t)p, m);
        if (taken[s[k] / 64] >> (s[k] % 64) & 1)
          placed = false;
        for (uint32_t q = 0; q < k && placed; q++)
          placed = s[q] != s[k];
      }
      if (placed) {
        pilots[b] = (uint16_t)p;
        for (uint32_t k = 0; k < cnt; k++) {
          taken[s[k] / 64] |= 1ull << (s[k] % 64);
          slot[keys[lo + k]] = s[k];
        }
      }
    }
    if (!placed) {
      rc = 1;
      goto out;
    }
  }
out:
  free(start);
  free(keys);
  free(bhash);
  free(by_size);
  free(taken);
  return rc;
}
