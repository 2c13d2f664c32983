/* Scenario "open": how long each peer takes to open the dense region (the
 * file in the page cache), and what opening a Strata region maps: the
 * process's resident memory before and after, and which pages of the
 * index and of the content are present in this process afterwards. Its
 * targets (docs/BENCHMARKS.md): strata open within 30 ms for 1M layers,
 * and no content page present that is farther than 2 MiB from the header
 * and the index. It reads the region dense built when dense ran too, and
 * builds the peers itself otherwise. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_get.h"
#include "strata.h"

typedef struct open_result {
  uint64_t n;
  size_t size;
  int opens;
  bench_stat ms[NPEERS];
  uint64_t file_bytes, data_offset, data_bytes, index_offset, index_bytes;
  uint64_t rss_before, rss_after; /* whole process */
  bool mapping_found;
  uint64_t map_rss; /* smaps Rss of the region's mapping, right after open */
  uint64_t index_pages, index_present;
  uint64_t content_pages, content_present;
  /* Content pages present more than FAR_BYTES away from both ends of the
   * data section: pages no fault near the header or the index can map. */
  uint64_t content_far_pages, content_far_present;
} open_result;

/* The kernel maps more than the faulting page: fault-around maps up to
 * 64 KiB of cached neighbours, and a large page-cache folio (ext4 and XFS
 * have them) can be mapped whole, up to 2 MiB. A page further than that
 * from the header and the index can only be present if something read it. */
#define FAR_BYTES (2u << 20)

static uint64_t round_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}
static uint64_t round_down(uint64_t x, uint64_t a) {
  return x / a * a;
}

static void run(bench_ctx *ctx, void *result) {
  open_result *res = result;
  bench_peer_set *ps = ctx->dense_peers;
  if (ps == NULL) {
    get_result unused;
    ps = bench_xmalloc(sizeof *ps);
    bench_build_peers(ps, ctx->dir, ctx->o->n, ctx->o->size, false, &unused);
  }
  const bench_options *o = ctx->o;
  *res = (open_result){.n = ps->layers.n, .size = ps->layers.size};
  res->opens = o->reps < 11 ? 11 : o->reps;
  for (int p = 0; p < NPEERS; p++)
    if (bench_peer_owns(p)) {
      bench_warm_page_cache(bench_state_path(ps->state[p]));
      res->ms[p] = bench_time_opens(p, ps->state[p], res->opens);
    }
  const char *path = bench_state_path(ps->state[P_STRATA]);
  res->rss_before = bench_rss_bytes();
  strata_region *r;
  int rc = strata_region_open(path, STRATA_OPEN_DEFAULT, &r);
  if (rc < 0)
    bench_fail("strata_region_open: %s", strata_last_error_detail());
  res->rss_after = bench_rss_bytes();
  strata_region_info info;
  strata_region_info_get(r, &info);
  res->file_bytes = info.file_size;
  res->data_offset = info.data_offset;
  res->data_bytes = info.data_size;
  res->index_offset = info.index_offset;
  res->index_bytes = info.file_size - info.index_offset;
  uintptr_t base = 0;
  res->mapping_found = bench_mapping_of(path, &base, &res->map_rss);
  if (res->mapping_found) {
    uint64_t ilo = round_down(info.index_offset, BENCH_PAGE);
    uint64_t ihi = round_up(info.file_size, BENCH_PAGE);
    res->index_pages = (ihi - ilo) / BENCH_PAGE;
    res->index_present = bench_present_pages(base + ilo, base + ihi);
    /* Whole pages of content only: the first shares a page with the header
     * and the last may share one with the index. */
    uint64_t clo = round_up(info.data_offset, BENCH_PAGE);
    uint64_t chi = round_down(info.data_offset + info.data_size, BENCH_PAGE);
    if (chi > clo) {
      res->content_pages = (chi - clo) / BENCH_PAGE;
      res->content_present = bench_present_pages(base + clo, base + chi);
    }
    if (chi > clo + 2 * (uint64_t)FAR_BYTES) {
      uint64_t flo = clo + FAR_BYTES, fhi = chi - FAR_BYTES;
      res->content_far_pages = (fhi - flo) / BENCH_PAGE;
      res->content_far_present = bench_present_pages(base + flo, base + fhi);
    }
  }
  strata_region_close(r);
  bench_destroy_peers(ps);
  free(ps);
  ctx->dense_peers = NULL;
}

static void print_open(FILE *f, const open_result *r) {
  fprintf(f,
          "open: %" PRIu64 " layers x %zu B (the dense region), file in "
          "the page cache, %d opens\n",
          r->n, r->size, r->opens);
  fprintf(f, "  %-13s %10s %9s %9s\n", "peer", "median ms", "min", "max");
  for (int p = 0; p < NPEERS; p++)
    if (bench_peer_owns(p))
      fprintf(f, "  %-13s %10.3f %9.3f %9.3f\n", bench_peers[p]->name,
              r->ms[p].median, r->ms[p].min, r->ms[p].max);
  fprintf(f,
          "  strata file %.1f MB: content [%" PRIu64 ", +%" PRIu64
          "), index sections %" PRIu64 " B (%.1f MB) from offset %" PRIu64 "\n",
          (double)r->file_bytes / 1e6, r->data_offset, r->data_bytes,
          r->index_bytes, (double)r->index_bytes / 1e6, r->index_offset);
  fprintf(f, "  process RSS %.1f MB before open, %.1f MB after (+%.1f MB)\n",
          (double)r->rss_before / 1e6, (double)r->rss_after / 1e6,
          ((double)r->rss_after - (double)r->rss_before) / 1e6);
  if (!r->mapping_found) {
    fprintf(f, "  (mapping not found in /proc/self/smaps)\n");
    return;
  }
  fprintf(f, "  region mapping Rss after open: %.1f MB (smaps)\n",
          (double)r->map_rss / 1e6);
  fprintf(f,
          "  pages present in this process (pagemap): index %" PRIu64
          " of %" PRIu64 "; content %" PRIu64 " of %" PRIu64
          "; content farther than 2 MiB from header and index %" PRIu64
          " of %" PRIu64 "\n",
          r->index_present, r->index_pages, r->content_present,
          r->content_pages, r->content_far_present, r->content_far_pages);
}

static void json(FILE *f, const void *result) {
  const open_result *r = result;
  fprintf(f,
          "    \"open\": {\"n\": %" PRIu64 ", \"size\": %zu, \"opens\": %d, "
          "\"ms\": {",
          r->n, r->size, r->opens);
  for (int p = 0, first = 1; p < NPEERS; p++)
    if (bench_peer_owns(p)) {
      fputs(first ? "" : ", ", f);
      bench_json_stat(f, bench_peers[p]->name, r->ms[p]);
      first = 0;
    }
  fputs("}", f);
  fprintf(f,
          ", \"file_bytes\": %" PRIu64 ", \"data_offset\": %" PRIu64
          ", \"data_bytes\": %" PRIu64 ", \"index_offset\": %" PRIu64
          ", \"index_bytes\": %" PRIu64 ", \"rss_before\": %" PRIu64
          ", \"rss_after\": %" PRIu64 ", \"mapping_rss\": %" PRIu64
          ", \"index_pages\": %" PRIu64 ", \"index_pages_present\": %" PRIu64
          ", \"content_pages\": %" PRIu64
          ", \"content_pages_present\": %" PRIu64
          ", \"content_far_pages\": %" PRIu64
          ", \"content_far_pages_present\": %" PRIu64 "}",
          r->file_bytes, r->data_offset, r->data_bytes, r->index_offset,
          r->index_bytes, r->rss_before, r->rss_after, r->map_rss,
          r->index_pages, r->index_present, r->content_pages,
          r->content_present, r->content_far_pages, r->content_far_present);
}

static void print(FILE *f, const void *result) {
  const open_result *r = result;
  print_open(f, r);
  bench_target t[2] = {{"strata open ms", r->ms[P_STRATA].median, 30, true},
                       {"content pages >2 MiB from edges",
                        (double)r->content_far_present, 0, true}};
  bench_print_targets(f, t, 2);
}

const bench_scenario bench_sc_open = {"open", sizeof(open_result), run, print,
                                      json};
