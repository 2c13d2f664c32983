/* The staging pool's CUDA path, on a real GPU: the backend is "cuda",
 * staged layers (whole, partial, sharing blocks) reach device memory
 * intact, events follow the streams, path batches of mixed sizes land at
 * their offsets, the STRATA_STAGING_DIRECT and STRATA_STAGING_DRIVER_ALLOC
 * flags keep the bytes right, four threads stage and transfer at once, a
 * stream's native handle is a working cudaStream_t, and an adopted
 * application stream carries transfers and outlives its wrapper.
 *
 * Every transfer is checked twice: read back through the public API
 * (strata_device_read on the stream) and through the CUDA runtime directly
 * (cudaMemcpy), so a bug shared by the library's copy and read paths
 * cannot hide.
 *
 * Without a GPU (no device, or no driver) the program prints
 * "no GPU: skipped" and exits 77, which ctest reports as skipped
 * (SKIP_RETURN_CODE in CMakeLists.txt). The runtime API header is the C
 * one (cuda_runtime_api.h): cuda_runtime.h adds C++ helpers only. */
#include <cuda_runtime_api.h>
#include <jansson.h>

#include "common/strata_testing.h" /* NO_WORKER, DRIVER_ALLOC */
#include "staging_churn.h"
#include "test_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* Fails the test with CUDA's message when a runtime call fails. */
#define assert_cuda_ok(expr)                                                   \
  do {                                                                         \
    cudaError_t test__e = (expr);                                              \
    if (test__e != cudaSuccess)                                                \
      fail_msg("%s -> %s", #expr, cudaGetErrorString(test__e));                \
  } while (0)

/* A CUDA pool (no HOST flag) of `bytes`, no worker. */
static strata_store_config gpu_config(uint64_t bytes, unsigned flags) {
  strata_store_config c;
  strata_store_config_init(&c);
  c.log_level = STRATA_LOG_ERROR;
  c.staging.bytes = bytes;
  c.staging.block_size = 64 * KiB;
  c.staging.pack_bytes = 256 * KiB;
  c.staging.flags = STRATA_STAGING_NO_WORKER | flags;
  return c;
}

/* Region 1 in a file (layer i: sizes[i] bytes, seed i); region 2 a proto
 * (layer i: 3 * 64 KiB, seed 100 + i); region 3 a proto with identical
 * layers (1 and 2: 256 KiB, seed 7; 3: one 64 KiB block four times). */
static const size_t sizes[] = {100,          64 * KiB, 64 * KiB + 1, 300 * KiB,
                               2 * MiB + 77, 0,        4 * KiB,      5 * MiB};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static strata_store *open_fixture(const strata_store_config *c) {
  const char *dir = test_tmpdir();
  strata_store *s;
  assert_strata_ok(strata_store_open(dir, c, &s));
  strata_proto *p;
  assert_strata_ok(strata_proto_create(s, 1, "files", 5, NULL, &p));
  for (uint64_t i = 0; i < NSIZES; i++)
    test_put(p, i, sizes[i], i);
  assert_strata_ok(strata_crystallize(s, 1));
  assert_strata_ok(strata_proto_create(s, 2, "heap", 4, NULL, &p));
  for (uint64_t i = 0; i < 4; i++)
    test_put(p, i, 3 * 64 * KiB, 100 + i);
  assert_strata_ok(strata_proto_create(s, 3, "dups", 4, NULL, &p));
  test_put(p, 1, 256 * KiB, 7);
  test_put(p, 2, 256 * KiB, 7);
  uint8_t *rep = malloc(256 * KiB);
  assert_non_null(rep);
  for (int i = 0; i < 4; i++)
    test_fill_seeded(rep + i * 64 * KiB, 64 * KiB, 55);
  assert_strata_ok(strata_proto_put(p, 3, NULL, 0, NULL, rep, 256 * KiB));
  free(rep);
  return s;
}

/* The `n` bytes at device address `dev` equal `want`: read back on the
 * stream through the API, and with cudaMemcpy. */
static void assert_device_equals(strata_stream *ss, const void *dev,
                                 const void *want, uint64_t n) {
  if (n == 0)
    return;
  uint8_t *back = malloc(n);
  assert_non_null(back);
  memset(back, 0xA5, n);
  assert_strata_ok(strata_device_read(ss, back, dev, n));
  assert_strata_ok(strata_stream_sync(ss));
  assert_memory_equal(back, want, n);
  memset(back, 0x5A, n);
  assert_cuda_ok(cudaMemcpy(back, dev, n, cudaMemcpyDeviceToHost));
  assert_memory_equal(back, want, n);
  free(back);
}

/* `p` is device memory of the current device. */
static void assert_device_pointer(const void *p) {
  struct cudaPointerAttributes a;
  assert_cuda_ok(cudaPointerGetAttributes(&a, p));
  assert_int_equal(a.type, cudaMemoryTypeDevice);
}

/* The first slab's method in the state dump ("numa+register", ...),
 * copied into buf. */
static const char *slab_method(strata_store *s, char *buf, size_t len) {
  char *dump;
  assert_strata_ok(strata_dump_state(s, 0, &dump));
  json_error_t err;
  json_t *doc = json_loads(dump, 0, &err);
  assert_non_null(doc);
  json_t *sg = json_object_get(doc, "staging");
  assert_true(json_is_object(sg));
  json_t *slab = json_array_get(json_object_get(sg, "slabs"), 0);
  assert_non_null(slab);
  const char *m = json_string_value(json_object_get(slab, "method"));
  assert_non_null(m);
  snprintf(buf, len, "%s", m);
  /* CUDA mode has no reason for host mode. */
  json_t *why = json_object_get(sg, "host_reason");
  assert_true(why == NULL || json_is_null(why));
  json_decref(doc);
  strata_free(dump);
  return buf;
}

/* Stages (region, layer) — or blocks [first, first + n) of it when n is
 * not 0 — copies it to fresh device memory, releases the hold before the
 * copy completes, and compares. */
static void stage_and_check(strata_store *s, const strata_txn *txn,
                            strata_stream *ss, uint64_t region, uint64_t layer,
                            uint64_t first, uint64_t n) {
  strata_layer l;
  assert_strata_ok(strata_get(txn, region, layer, &l));
  strata_staged *h;
  if (n == 0)
    assert_strata_ok(strata_stage(txn, region, layer, &h));
  else
    assert_strata_ok(strata_stage_part(txn, region, layer, first, n, &h));
  strata_staged_info info;
  assert_strata_ok(strata_staged_info_get(h, &info));
  assert_true(info.offset + info.size <= l.size);
  void *dev;
  assert_strata_ok(strata_device_alloc(s, info.size + 1, ss, &dev));
  assert_true((uintptr_t)dev % 256 == 0);
  assert_strata_ok(strata_stage_to_device(h, dev, ss));
  strata_staged_release(h); /* the copy keeps the blocks alive */
  assert_strata_ok(strata_stream_sync(ss));
  assert_device_pointer(dev);
  assert_device_equals(ss, dev, (const uint8_t *)l.data + info.offset,
                       info.size);
  assert_strata_ok(strata_device_free(s, dev, ss));
}

/* ---- tests -------------------------------------------------------------- */

static void test_backend(void **state) {
  (void)state;
  strata_store_config c = gpu_config(32 * MiB, 0);
  strata_store *s = open_fixture(&c);
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  assert_string_equal(st.backend, "cuda");
  struct cudaDeviceProp prop;
  assert_cuda_ok(cudaGetDeviceProperties(&prop, 0));
  assert_string_equal(st.device_name, prop.name);
  assert_int_equal(st.pinned_bytes, st.slab_bytes);
  assert_true(st.slab_bytes >= 32 * MiB);
  char m[32];
  assert_string_equal(slab_method(s, m, sizeof m), "numa+register");
  print_message("GPU: %s, NUMA node %d, %llu slab(s)\n", st.device_name,
                st.numa_node, (unsigned long long)st.slabs);
  strata_store_close(s);
}

static void test_stage_to_device(void **state) {
  (void)state;
  strata_store_config c = gpu_config(64 * MiB, 0);
  strata_store *s = open_fixture(&c);
  strata_stream *ss;
  assert_strata_ok(strata_stream_create(s, &ss));
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  for (uint64_t i = 0; i < NSIZES; i++)
    stage_and_check(s, &txn, ss, 1, i, 0, 0);
  for (uint64_t i = 0; i < 4; i++)
    stage_and_check(s, &txn, ss, 2, i, 0, 0);
  /* Partial: blocks 10..12 of the 2 MiB + 77 layer, then its tail
   * (clipped), then the whole layer around the staged pages. */
  stage_and_check(s, &txn, ss, 1, 4, 10, 3);
  stage_and_check(s, &txn, ss, 1, 4, 32, 100);
  stage_and_check(s, &txn, ss, 1, 4, 0, 0);
  /* Shared blocks: layers 1 and 2 of region 3 are one content; layer 3 is
   * one block four times. Hold them all, then transfer each. */
  strata_staged *h[3];
  for (int i = 0; i < 3; i++)
    assert_strata_ok(strata_stage(&txn, 3, (uint64_t)i + 1, &h[i]));
  strata_staged_info info;
  assert_strata_ok(strata_staged_info_get(h[1], &info));
  assert_int_equal(info.shared_blocks, 4);
  assert_strata_ok(strata_staged_info_get(h[2], &info));
  assert_int_equal(info.shared_blocks, 4);
  for (int i = 0; i < 3; i++) {
    stage_and_check(s, &txn, ss, 3, (uint64_t)i + 1, 0, 0);
    strata_staged_release(h[i]);
  }
  strata_staging_stats st;
  assert_strata_ok(strata_stream_sync(ss));
  assert_strata_ok(strata_staging_stats_get(s, &st));
  assert_int_equal(st.transfers_in_flight, 0);
  assert_true(st.transfers > 0);
  assert_true(st.shared_blocks >= 2);
  assert_int_equal(st.device_bytes, 0);
  strata_read_end(&txn);
  strata_stream_destroy(ss);
  strata_store_close(s);
}

static void test_events(void **state) {
  (void)state;
  strata_store_config c = gpu_config(32 * MiB, 0);
  strata_store *s = open_fixture(&c);
  strata_stream *ss;
  assert_strata_ok(strata_stream_create(s, &ss));
  strata_event *ev;
  assert_strata_ok(strata_event_create(s, &ev));
  assert_int_equal(strata_event_query(ev), 1); /* never recorded */
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_staged *h;
  assert_strata_ok(strata_stage(&txn, 1, 7, &h)); /* 5 MiB */
  strata_staged_info info;
  assert_strata_ok(strata_staged_info_get(h, &info));
  void *dev;
  assert_strata_ok(strata_device_alloc(s, info.size, ss, &dev));
  for (int i = 0; i < 8; i++)
    assert_strata_ok(strata_stage_to_device(h, dev, ss));
  assert_strata_ok(strata_event_record(ev, ss));
  int q = strata_event_query(ev);
  assert_true(q == 0 || q == 1);
  assert_strata_ok(strata_event_sync(ev));
  assert_int_equal(strata_event_query(ev), 1);
  /* The event covered the copies: the bytes are there without a stream
   * sync. */
  strata_layer l;
  assert_strata_ok(strata_get(&txn, 1, 7, &l));
  uint8_t *back = malloc(info.size);
  assert_non_null(back);
  assert_cuda_ok(cudaMemcpy(back, dev, info.size, cudaMemcpyDeviceToHost));
  assert_memory_equal(back, l.data, info.size);
  free(back);
  strata_staged_release(h);
  assert_strata_ok(strata_device_free(s, dev, ss));
  assert_strata_ok(strata_stream_sync(ss));
  strata_read_end(&txn);
  strata_event_destroy(ev);
  strata_stream_destroy(ss);
  strata_store_close(s);
}

/* A path of mixed sizes (staged and not, file and proto, repeated steps)
 * into one device buffer; every step at its offset. */
static void check_path_on(strata_store *s, const strata_txn *txn,
                          const strata_layer_ref *path, size_t n,
                          strata_stream *ss) {
  uint64_t need;
  assert_strata_ok(strata_stage_path_size(txn, path, n, &need));
  void *dev;
  assert_strata_ok(strata_device_alloc(s, need, ss, &dev));
  uint64_t *offs = calloc(n, sizeof *offs);
  assert_non_null(offs);
  assert_strata_err(
      strata_stage_path_to_device(txn, path, n, dev, need - 1, offs, ss),
      STRATA_E_BOUNDS);
  assert_strata_ok(
      strata_stage_path_to_device(txn, path, n, dev, need, offs, ss));
  uint8_t *back = malloc(need);
  assert_non_null(back);
  assert_cuda_ok(cudaStreamSynchronize(strata_stream_native(ss)));
  assert_cuda_ok(cudaMemcpy(back, dev, need, cudaMemcpyDeviceToHost));
  uint64_t expect = 0, align = STRATA_DEVICE_ALIGN;
  for (size_t i = 0; i < n; i++) {
    expect = (expect + align - 1) / align * align;
    assert_int_equal(offs[i], expect);
    strata_layer l;
    assert_strata_ok(strata_get(txn, path[i].region_id, path[i].layer_id, &l));
    assert_memory_equal(back + offs[i], l.data, l.size);
    expect += l.size;
  }
  assert_int_equal(expect, need);
  free(back);
  free(offs);
  assert_strata_ok(strata_device_free(s, dev, ss));
  assert_strata_ok(strata_stream_sync(ss));
}

/* check_path_on a stream of its own. */
static void check_path(strata_store *s, const strata_txn *txn,
                       const strata_layer_ref *path, size_t n) {
  strata_stream *ss;
  assert_strata_ok(strata_stream_create(s, &ss));
  check_path_on(s, txn, path, n, ss);
  strata_stream_destroy(ss);
}

static const strata_layer_ref mixed_path[] = {
    {1, 0}, {1, 4}, {2, 1}, {1, 5}, {1, 3}, {1, 7}, {1, 1},
    {2, 0}, {1, 6}, {1, 2}, {3, 3}, {1, 0}, {1, 7}};
#define NMIXED (sizeof mixed_path / sizeof mixed_path[0])

static void test_path_batch(void **state) {
  (void)state;
  strata_store_config c = gpu_config(64 * MiB, 0);
  strata_store *s = open_fixture(&c);
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  /* Nothing staged: everything is packed. */
  check_path(s, &txn, mixed_path, NMIXED);
  /* The 2 MiB and 5 MiB layers staged: they go from their blocks. */
  strata_staged *h;
  assert_strata_ok(strata_stage(&txn, 1, 4, &h));
  strata_staged_release(h);
  assert_strata_ok(strata_stage(&txn, 1, 7, &h));
  strata_staged_release(h);
  strata_staging_stats a, b;
  assert_strata_ok(strata_staging_stats_get(s, &a));
  check_path(s, &txn, mixed_path, NMIXED);
  assert_strata_ok(strata_staging_stats_get(s, &b));
  assert_int_equal(b.batches, a.batches + 1);
  assert_true(b.packed_copies > a.packed_copies);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* STRATA_STAGING_DIRECT: layers not staged may come straight from the
 * registered mapping (or through staging where the device cannot): the
 * bytes are the same either way. */
static void test_direct(void **state) {
  (void)state;
  strata_store_config c = gpu_config(64 * MiB, STRATA_STAGING_DIRECT);
  strata_store *s = open_fixture(&c);
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  check_path(s, &txn, mixed_path, NMIXED);
  strata_stream *ss;
  assert_strata_ok(strata_stream_create(s, &ss));
  for (uint64_t i = 0; i < NSIZES; i++)
    stage_and_check(s, &txn, ss, 1, i, 0, 0);
  strata_stream_destroy(ss);
  check_path(s, &txn, mixed_path, NMIXED); /* staged now */
  int ro = 0;
  assert_cuda_ok(
      cudaDeviceGetAttribute(&ro, cudaDevAttrHostRegisterReadOnlySupported, 0));
  print_message("read-only host registration %ssupported\n", ro ? "" : "not ");
  strata_read_end(&txn);
  strata_store_close(s); /* unregisters the mappings */
}

static void test_driver_alloc(void **state) {
  (void)state;
  strata_store_config c = gpu_config(32 * MiB, STRATA_STAGING_DRIVER_ALLOC);
  strata_store *s = open_fixture(&c);
  char m[32];
  assert_string_equal(slab_method(s, m, sizeof m), "cuda-host-alloc");
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  assert_int_equal(st.pinned_bytes, st.slab_bytes);
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_stream *ss;
  assert_strata_ok(strata_stream_create(s, &ss));
  for (uint64_t i = 0; i < NSIZES; i++)
    stage_and_check(s, &txn, ss, 1, i, 0, 0);
  strata_stream_destroy(ss);
  check_path(s, &txn, mixed_path, NMIXED);
  strata_read_end(&txn);
  strata_store_close(s);
}

static void test_native_stream(void **state) {
  (void)state;
  strata_store_config c = gpu_config(32 * MiB, 0);
  strata_store *s = open_fixture(&c);
  strata_stream *ss;
  assert_strata_ok(strata_stream_create(s, &ss));
  cudaStream_t cs = (cudaStream_t)strata_stream_native(ss);
  assert_non_null(cs);
  /* Work enqueued on the native stream orders with the library's. */
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_staged *h;
  assert_strata_ok(strata_stage(&txn, 1, 4, &h));
  strata_staged_info info;
  assert_strata_ok(strata_staged_info_get(h, &info));
  void *dev, *pinned;
  assert_strata_ok(strata_device_alloc(s, info.size, ss, &dev));
  assert_cuda_ok(cudaMallocHost(&pinned, info.size));
  assert_strata_ok(strata_stage_to_device(h, dev, ss));
  assert_cuda_ok(
      cudaMemcpyAsync(pinned, dev, info.size, cudaMemcpyDeviceToHost, cs));
  assert_cuda_ok(cudaStreamSynchronize(cs));
  assert_int_equal(cudaStreamQuery(cs), cudaSuccess);
  strata_layer l;
  assert_strata_ok(strata_get(&txn, 1, 4, &l));
  assert_memory_equal(pinned, l.data, l.size);
  assert_cuda_ok(cudaFreeHost(pinned));
  strata_staged_release(h);
  assert_strata_ok(strata_device_free(s, dev, ss));
  strata_stream_destroy(ss);
  strata_read_end(&txn);
  strata_store_close(s);
}

/* strata_stream_adopt() over the application's own cudaStream_t: a staged
 * transfer, a device allocation, a path batch and an event on it, in one
 * order with the application's own copy on the native stream; refusals of
 * the default streams, a stream of another device (with two GPUs) and a
 * capturing stream; and after destroy, the native stream is still the
 * application's and works. */
static void test_adopt_stream(void **state) {
  (void)state;
  strata_store_config c = gpu_config(32 * MiB, 0);
  strata_store *s = open_fixture(&c);
  cudaStream_t cs;
  assert_cuda_ok(cudaStreamCreate(&cs)); /* blocking, default priority */
  strata_stream *ss;
  assert_strata_ok(strata_stream_adopt(s, (void *)cs, &ss));
  assert_ptr_equal(strata_stream_native(ss), (void *)cs);
  strata_txn txn;
  assert_strata_ok(strata_read_begin(s, &txn));
  strata_layer l;
  assert_strata_ok(strata_get(&txn, 1, 4, &l)); /* 2 MiB + 77 */
  strata_staged *h;
  assert_strata_ok(strata_stage(&txn, 1, 4, &h));
  strata_staged_info info;
  assert_strata_ok(strata_staged_info_get(h, &info));
  assert_int_equal(info.size, l.size);
  void *dev, *pinned;
  assert_strata_ok(strata_device_alloc(s, info.size, ss, &dev));
  assert_cuda_ok(cudaMallocHost(&pinned, info.size));
  memset(pinned, 0xA5, info.size);
  assert_strata_ok(strata_stage_to_device(h, dev, ss));
  strata_staged_release(h); /* the copy keeps the blocks alive */
  /* The application's own copy, on the native stream after Strata's, sees
   * the bytes: no event or sync between them. */
  assert_cuda_ok(
      cudaMemcpyAsync(pinned, dev, info.size, cudaMemcpyDeviceToHost, cs));
  strata_event *ev;
  assert_strata_ok(strata_event_create(s, &ev));
  assert_strata_ok(strata_event_record(ev, ss));
  assert_strata_ok(strata_event_sync(ev));
  assert_int_equal(strata_event_query(ev), 1);
  assert_memory_equal(pinned, l.data, l.size);
  assert_device_pointer(dev);
  assert_device_equals(ss, dev, l.data, l.size);
  /* A path batch ordered on the adopted stream. */
  check_path_on(s, &txn, mixed_path, NMIXED, ss);
  assert_strata_ok(strata_device_free(s, dev, ss));
  assert_strata_ok(strata_stream_sync(ss));
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  assert_int_equal(st.transfers_in_flight, 0);
  assert_int_equal(st.device_bytes, 0);

  /* Refusals, each with *out NULL. */
  strata_stream *bad = (strata_stream *)1;
  assert_int_equal(strata_stream_adopt(s, NULL, &bad), STRATA_E_INVAL);
  assert_null(bad);
  assert_int_equal(strata_stream_adopt(s, (void *)cudaStreamLegacy, &bad),
                   STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "cudaStreamLegacy"));
  assert_int_equal(strata_stream_adopt(s, (void *)cudaStreamPerThread, &bad),
                   STRATA_E_INVAL);
  assert_non_null(strstr(strata_last_error_detail(), "cudaStreamPerThread"));
  int ndev = 0;
  assert_cuda_ok(cudaGetDeviceCount(&ndev));
  if (ndev > 1) {
    cudaStream_t other;
    assert_cuda_ok(cudaSetDevice(1));
    assert_cuda_ok(cudaStreamCreate(&other));
    assert_cuda_ok(cudaSetDevice(0));
    assert_int_equal(strata_stream_adopt(s, (void *)other, &bad),
                     STRATA_E_INVAL);
    assert_null(bad);
    assert_non_null(strstr(strata_last_error_detail(), "CUDA device 1"));
    assert_cuda_ok(cudaSetDevice(1));
    assert_cuda_ok(cudaStreamDestroy(other));
    assert_cuda_ok(cudaSetDevice(0));
  }
  cudaStream_t cap;
  assert_cuda_ok(cudaStreamCreateWithFlags(&cap, cudaStreamNonBlocking));
  assert_cuda_ok(cudaStreamBeginCapture(cap, cudaStreamCaptureModeRelaxed));
  assert_int_equal(strata_stream_adopt(s, (void *)cap, &bad), STRATA_E_STATE);
  assert_null(bad);
  assert_non_null(strstr(strata_last_error_detail(), "captured"));
  cudaGraph_t g;
  assert_cuda_ok(cudaStreamEndCapture(cap, &g));
  assert_cuda_ok(cudaGraphDestroy(g));
  assert_cuda_ok(cudaStreamDestroy(cap));

  /* Destroy frees the wrapper only: the native stream still takes work. */
  strata_event_destroy(ev);
  strata_stream_destroy(ss);
  assert_int_equal(cudaStreamQuery(cs), cudaSuccess);
  void *mine;
  memset(pinned, 0, 64);
  assert_cuda_ok(cudaMallocAsync(&mine, 64, cs));
  assert_cuda_ok(cudaMemcpyAsync(mine, l.data, 64, cudaMemcpyHostToDevice, cs));
  assert_cuda_ok(cudaMemcpyAsync(pinned, mine, 64, cudaMemcpyDeviceToHost, cs));
  assert_cuda_ok(cudaFreeAsync(mine, cs));
  assert_cuda_ok(cudaStreamSynchronize(cs));
  assert_memory_equal(pinned, l.data, 64);
  assert_int_equal(cudaStreamQuery(cs), cudaSuccess);
  assert_cuda_ok(cudaFreeHost(pinned));
  assert_cuda_ok(cudaStreamDestroy(cs));
  strata_read_end(&txn);
  strata_store_close(s);
}

/* Four threads stage, check, transfer and release random layers of a pool
 * small enough to evict, while a writer replaces them
 * (tests/common/staging_churn.h); the hot-layer worker runs too. */
static void test_concurrent(void **state) {
  (void)state;
  strata_store_config c = gpu_config(8 * MiB, 0);
  c.staging.streams = 1;
  c.staging.flags = 0; /* the worker runs too */
  c.staging.sample_period = 4;
  strata_store *s = open_fixture(&c);
  int transferred = churn_run(s, 6, 100);
  assert_true(transferred > 0);
  strata_staging_stats st;
  assert_strata_ok(strata_staging_stats_get(s, &st));
  assert_int_equal(st.transfers_in_flight, 0);
  assert_string_equal(st.backend, "cuda");
  print_message("%d layers transferred and checked by %d threads, %llu "
                "evictions\n",
                transferred, CHURN_THREADS, (unsigned long long)st.evictions);
  strata_store_close(s);
}

int main(void) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    /* A machine with a GPU whose CUDA runtime cannot use it (a driver
     * older than this runtime needs) is a failure, not a skip. */
    bool gpu_node = access("/dev/nvidia0", F_OK) == 0;
    printf("no GPU: %s (%s)\n",
           gpu_node ? "FAILED: /dev/nvidia0 exists" : "skipped",
           e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
    return gpu_node ? 1 : 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backend),
      cmocka_unit_test(test_stage_to_device),
      cmocka_unit_test(test_events),
      cmocka_unit_test(test_path_batch),
      cmocka_unit_test(test_direct),
      cmocka_unit_test(test_driver_alloc),
      cmocka_unit_test(test_native_stream),
      cmocka_unit_test(test_adopt_stream),
      cmocka_unit_test(test_concurrent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
