/* Staging: put a few layers into a store, stage one in pinned memory, move a
 * path of layers into one device buffer and read it back. Runs on a GPU when
 * Strata was built with CUDA and one is present, and in host mode anywhere
 * else (the same calls; "device" memory is then host memory).
 *   strata_staging_example STORE_DIR   (an empty or new directory) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <strata.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "staging example: %s: %s (%s)\n", what, strata_strerror(rc),
          strata_last_error_detail());
  return 1;
}

#define TRY(what, expr)                                                        \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ < 0)                                                               \
      return fail(what, rc_);                                                  \
  } while (0)

/* Layer i: 3 KiB of text for i < 8, then one 3 MiB layer. */
static size_t layer_size(uint64_t i) {
  return i < 8 ? 3072 : 3u << 20;
}

static void layer_bytes(uint64_t i, char *p, size_t n) {
  for (size_t k = 0; k < n; k++)
    p[k] = (char)('a' + (i * 7 + k) % 26);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "staging-example";
  mkdir(dir, 0755);
  strata_store_config c;
  strata_store_config_init(&c);
  c.staging.bytes = 64u << 20;
  strata_store *s;
  TRY("open store", strata_store_open(dir, &c, &s));

  /* A region of 9 layers, written through a proto. */
  strata_proto *p;
  int rc = strata_proto_create(s, 1, "example", 7, NULL, &p);
  if (rc == STRATA_E_EXIST) /* run before in this directory */
    rc = strata_proto_open(s, 1, &p);
  TRY("create proto", rc);
  char *buf = malloc(layer_size(8));
  if (buf == NULL)
    return 1;
  for (uint64_t i = 0; i < 9; i++) {
    layer_bytes(i, buf, layer_size(i));
    TRY("put", strata_proto_put(p, i, NULL, 0, NULL, buf, layer_size(i)));
  }
  TRY("crystallize", strata_crystallize(s, 1));

  strata_txn txn;
  TRY("read_begin", strata_read_begin(s, &txn));
  /* One layer in pinned memory. */
  strata_staged *h;
  TRY("stage", strata_stage(&txn, 1, 8, &h));
  strata_staged_info info;
  TRY("staged info", strata_staged_info_get(h, &info));
  /* Its text repeats every 13 blocks, so pages share blocks. */
  printf("staged layer 8: %" PRIu64 " bytes, %u blocks (%u shared), %u "
         "segments\n",
         info.size, info.blocks, info.shared_blocks, info.segments);
  strata_staged_release(h);

  /* A path of layers into one device buffer. */
  strata_layer_ref path[] = {{1, 0}, {1, 8}, {1, 3}, {1, 7}};
  uint64_t need, offsets[4];
  TRY("path size", strata_stage_path_size(&txn, path, 4, &need));
  strata_stream *st;
  TRY("stream", strata_stream_create(s, &st));
  void *dev;
  TRY("device alloc", strata_device_alloc(s, need, st, &dev));
  TRY("path to device",
      strata_stage_path_to_device(&txn, path, 4, dev, need, offsets, st));
  char *back = malloc(need);
  if (back == NULL)
    return 1;
  TRY("read back", strata_device_read(st, back, dev, need));
  TRY("sync", strata_stream_sync(st));
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    layer_bytes(path[i].layer_id, buf, layer_size(path[i].layer_id));
    bad += memcmp(back + offsets[i], buf, layer_size(path[i].layer_id)) != 0;
  }
  strata_staging_stats stats;
  TRY("stats", strata_staging_stats_get(s, &stats));
  printf("backend %s (%s): path of 4 layers, %" PRIu64 " bytes, %s\n",
         stats.backend, stats.device_name, need, bad ? "MISMATCH" : "verified");
  TRY("device free", strata_device_free(s, dev, st));
  TRY("sync", strata_stream_sync(st));
  strata_stream_destroy(st);
  strata_read_end(&txn);
  strata_store_close(s);
  free(back);
  free(buf);
  return bad ? 1 : 0;
}
