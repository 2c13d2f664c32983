/* make_fixture OUTDIR: writes the region files the CLI tests run against,
 * through the public writer API, so that the tests need no other tool.
 * Everything is deterministic: the expected outputs in cases/ depend on the
 * exact ids, names, metadata and content below.
 *
 *   dense.region       ids 0..3, names, metadata, an empty layer
 *   sparse.region      ids 5, 1000, 2^63 and 2^64-1 (hashed id lookup)
 *   empty.region       no layers
 *   digits.region      layer 1 is named "2", layer 2 "x", layer 3 has a tab
 *                      and a backslash in its name
 *   big.region         one 4 MiB layer, for pipes and truncation
 *   corrupt.region     dense.region with one content byte of layer 3 flipped
 *   badsum.region      dense.region with one header byte flipped
 *   truncated.region   the first half of dense.region
 *   notregion.txt      a text file
 *   store/             a store (directory of regions) for the store commands:
 *     docs.region      region 1 "docs": layers with keywords and frequency in
 *                      their metadata, one without a name or a final newline,
 *                      a binary one, an empty one, metadata of other shapes
 *     notes.region     region 2 "notes", no metadata: a layer named "a:b"
 *   store4k/           a store of one region whose content is aligned to
 *     wide.region      4096 (region 3 "wide"), as GPU and direct-I/O users
 *                      build them: a put must keep the alignment
 *   hostile/           a store of one region, evil.region (region 3), whose
 *                      region name, layer names and metadata hold what must
 *                      not reach a terminal as it is: newline, ESC, BEL, DEL,
 *                      C1 controls (U+0085, U+009B), bidirectional overrides
 *                      (U+202E, U+2066), and a backslash
 *   delta/             copies of the golden files of tests/hostile/golden/:
 *     base.region      v1-dense.region (format 1.0)
 *     base.1.delta     v1.1-delta.region, a delta of depth 1 over it (a
 *                      delta file cannot be written through the public
 *                      API, so the committed golden bytes are copied)
 *   dump/              regions for the `strata dump` round trip
 *                      (dump_roundtrip.sh): metadata in both manifest
 *                      forms, empty layers, out-of-order, sparse and
 *                      high ids, names unusable as file names, alignments
 *                      16 to 4096, a layer above 1 MiB, no layers
 *
 * Cases that change the store work on a copy of it in their own directory.
 */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "strata.h"

#define BIG_SIZE (4u << 20)
/* Layer 3 of dense.region starts with this; corrupt.region is found by it. */
#define GAMMA_MARKER "GAMMA:"

static const char *outdir;

static const char *path_of(const char *name) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", outdir, name);
  return buf;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "make_fixture: %s: %s (%s)\n", what,
          strata_last_error_detail(), strata_err_name(rc));
  exit(1);
}

#define TRY(what, expr)                                                        \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ < 0)                                                               \
      die(what, rc_);                                                          \
  } while (0)

static strata_writer *start(const char *file, uint64_t id, const char *name,
                            const char *metadata) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = id;
  o.name = name;
  o.metadata = metadata;
  strata_writer *w = NULL;
  TRY(file, strata_writer_open(path_of(file), &o, &w));
  return w;
}

static void add(strata_writer *w, uint64_t id, const char *name,
                const char *meta, const char *text) {
  TRY("add", strata_writer_add(w, id, name, name ? strlen(name) : 0, meta, text,
                               strlen(text)));
}

static void make_dense(void) {
  strata_writer *w =
      start("dense.region", 7, "dense", "{\"owner\":\"tests\",\"version\":1}");
  add(w, 0, "alpha", "{\"kind\":\"greeting\"}", "hello\n");
  add(w, 1, "beta", NULL, "world\n");
  add(w, 2, NULL, NULL, "");
  /* 1000 bytes: the marker, then lines of a counting pattern. */
  char gamma[1001];
  size_t n = (size_t)snprintf(gamma, sizeof gamma, "%s", GAMMA_MARKER);
  for (int i = 0; n < 1000; i++)
    n += (size_t)snprintf(gamma + n, sizeof gamma - n, "line %03d\n", i);
  gamma[1000] = '\0';
  add(w, 3, "gamma", "{\"kind\":\"pattern\",\"lines\":true}", gamma);
  TRY("commit dense", strata_writer_commit(w));
}

static void make_sparse(void) {
  strata_writer *w = start("sparse.region", 42, "sparse", NULL);
  add(w, 1000, "thousand", NULL, "1000\n");
  add(w, 5, "five", "[1,2,3]", "5\n");
  add(w, UINT64_C(1) << 63, "two-to-the-63", NULL, "2^63\n");
  add(w, UINT64_MAX, NULL, "{\"max\":true}", "2^64-1\n");
  TRY("commit sparse", strata_writer_commit(w));
}

static void make_small(void) {
  TRY("commit empty",
      strata_writer_commit(start("empty.region", 1, "empty", NULL)));
  strata_writer *w = start("digits.region", 2, "digits", NULL);
  add(w, 1, "2", NULL, "layer one, named 2\n");
  add(w, 2, "x", NULL, "layer two, named x\n");
  /* A tab and a backslash: ls must escape them to keep one line a layer. */
  add(w, 3, "tab\there\\", NULL, "layer three\n");
  TRY("commit digits", strata_writer_commit(w));
}

static void make_big(void) {
  strata_writer *w = start("big.region", 3, "big", NULL);
  static char chunk[64 * 1024];
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (char)('a' + i % 26);
  TRY("begin big", strata_writer_begin_layer(w, 0, "blob", 4, NULL));
  for (size_t done = 0; done < BIG_SIZE; done += sizeof chunk)
    TRY("append big", strata_writer_append(w, chunk, sizeof chunk));
  TRY("end big", strata_writer_end_layer(w));
  TRY("commit big", strata_writer_commit(w));
}

static char *slurp(const char *file, size_t *size) {
  FILE *f = fopen(path_of(file), "rb");
  if (f == NULL || fseek(f, 0, SEEK_END) != 0) {
    perror(file);
    exit(1);
  }
  long n = ftell(f);
  rewind(f);
  char *buf = malloc((size_t)n + 1);
  if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    perror(file);
    exit(1);
  }
  fclose(f);
  buf[n] = '\0';
  *size = (size_t)n;
  return buf;
}

static void spill(const char *file, const void *buf, size_t size) {
  FILE *f = fopen(path_of(file), "wb");
  if (f == NULL || fwrite(buf, 1, size, f) != size || fclose(f) != 0) {
    perror(file);
    exit(1);
  }
}

/* Damaged copies of dense.region. The content byte is found by searching
 * for the marker rather than computed from the layout, so that the test
 * does not depend on where the writer places content. */
static void make_damaged(void) {
  size_t size;
  char *buf = slurp("dense.region", &size);
  char *marker = NULL;
  for (size_t i = 0; i + sizeof GAMMA_MARKER - 1 <= size && !marker; i++)
    if (memcmp(buf + i, GAMMA_MARKER, sizeof GAMMA_MARKER - 1) == 0)
      marker = buf + i;
  if (marker == NULL) {
    fprintf(stderr, "make_fixture: marker not found in dense.region\n");
    exit(1);
  }
  marker[10] ^= 0x01;
  spill("corrupt.region", buf, size);
  marker[10] ^= 0x01;

  buf[24] ^= 0x01; /* the region id: covered by the header checksum */
  spill("badsum.region", buf, size);
  buf[24] ^= 0x01;

  spill("truncated.region", buf, size / 2);
  free(buf);

  static const char text[] = "This is not a region file.\n";
  spill("notregion.txt", text, sizeof text - 1);
}

static void make_store(void) {
  if (mkdir(path_of("store"), 0755) != 0 && errno != EEXIST) {
    perror("store");
    exit(1);
  }
  strata_writer *w = start("store/docs.region", 1, "docs",
                           "{\"kind\":\"docs\",\"lang\":\"en\"}");
  add(w, 0, "intro", "{\"keywords\":[\"strata\",\"regions\"],\"frequency\":3}",
      "Strata keeps layers in regions.\nA store is a directory of them.\n");
  add(w, 1, "usage",
      "{\"frequency\":0.25,\"keywords\":[\"cli\"],\"author\":\"tests\"}",
      "Run strata --help.\n");
  add(w, 2, NULL, NULL, "no name, no final newline");
  static const char blob[] = {0x00, (char)0xff, 0x10, 'A', (char)0xc3, 0x28};
  TRY("add blob", strata_writer_add(w, 3, "blob", 4, "{\"frequency\":1}", blob,
                                    sizeof blob));
  add(w, 4, "empty", NULL, "");
  /* Keywords that are not an array and a frequency that is not a number
   * are ignored; so are the elements of keywords that are not strings. */
  add(w, 5, "odd", "{\"keywords\":\"one\",\"frequency\":\"high\"}",
      "odd metadata\n");
  add(w, 6, "mixed", "{\"keywords\":[\"a\",1,\"tab\\there\",null]}",
      "caf\xc3\xa9 \xe2\x82\xac\n");
  TRY("commit store/docs", strata_writer_commit(w));

  w = start("store/notes.region", 2, "notes", NULL);
  add(w, 10, "todo", NULL, "write tests\n");
  add(w, 11, "a:b", NULL, "a layer whose name has a colon\n");
  TRY("commit store/notes", strata_writer_commit(w));
}

static void make_store4k(void) {
  if (mkdir(path_of("store4k"), 0755) != 0 && errno != EEXIST) {
    perror("store4k");
    exit(1);
  }
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = 3;
  o.name = "wide";
  o.metadata = "{\"align\":4096}";
  o.align = 4096;
  strata_writer *w = NULL;
  TRY("store4k/wide.region",
      strata_writer_open(path_of("store4k/wide.region"), &o, &w));
  add(w, 0, "w0", NULL, "page one\n");
  add(w, 1, "w1", NULL, "page two\n");
  TRY("commit store4k/wide", strata_writer_commit(w));
}

static void make_hostile(void) {
  if (mkdir(path_of("hostile"), 0755) != 0 && errno != EEXIST) {
    perror("hostile");
    exit(1);
  }
  /* JSON escapes put the controls into the metadata as raw bytes once
   * parsed and dumped again (jansson writes C1 and bidi as they are). */
  strata_writer *w =
      start("hostile/evil.region", 3, "evil\x1b]0;title\x07",
            "{\"note\":\"nel\\u0085 csi\\u009b rlo\\u202e end\"}");
  add(w, 0, "new\nline", "{\"keywords\":[\"k\\u202eevil\",\"bell\\u0007\"]}",
      "zero\n");
  add(w, 1, "esc\x1b[31mred", NULL, "one\n");
  add(w, 2,
      "bell\x07"
      "del\x7f",
      NULL, "two\n");
  add(w, 3,
      "nel\xc2\x85"
      "csi\xc2\x9b",
      NULL, "three\n");
  add(w, 4, "rlo\xe2\x80\xaetxt.exe", NULL, "four\n");
  add(w, 5,
      "lri\xe2\x81\xa6"
      "back\\slash",
      NULL, "five\n");
  TRY("commit hostile/evil", strata_writer_commit(w));
}

/* One layer to add: content given as text (NULL for an empty layer). */
typedef struct fx_layer {
  uint64_t id;
  const char *name, *metadata, *text;
} fx_layer;

static void dump_region(const char *file, uint64_t id, const char *name,
                        const char *metadata, uint32_t align,
                        const fx_layer *layers, size_t n) {
  strata_writer_options o;
  strata_writer_options_init(&o);
  o.region_id = id;
  o.name = name;
  o.metadata = metadata;
  o.align = align;
  strata_writer *w;
  TRY(file, strata_writer_open(path_of(file), &o, &w));
  for (size_t i = 0; i < n; i++) {
    const char *t = layers[i].text, *nm = layers[i].name;
    TRY(file,
        strata_writer_add(w, layers[i].id, nm, nm ? strlen(nm) : 0,
                          layers[i].metadata, t ? t : "", t ? strlen(t) : 0));
  }
  TRY(file, strata_writer_commit(w));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* dump/: the regions of the `strata dump` round trip (dump_roundtrip.sh),
 * each stressing one thing a dump must carry over for region-builder to
 * rebuild the region byte for byte. */
static void make_dump_regions(void) {
  if (mkdir(path_of("dump"), 0755) != 0 && errno != EEXIST) {
    perror("dump");
    exit(1);
  }

  /* Named and unnamed layers; metadata that region-builder's compact
   * serialization gives back (dumped as "metadata") and metadata it would
   * change (spaces, \u escapes, a real written 2.50, an integer above
   * 2^63-1, a duplicate key: dumped as "metadata_text"); empty layers at
   * the start, in the middle (two in a row) and at the end. */
  const fx_layer mixed[] = {
      {0, "first-empty", NULL, NULL},
      {1, "alpha", "{\"keywords\":[\"a\",\"b\"],\"frequency\":3}", "alpha\n"},
      {2, NULL, "{ \"spaced\" : true }", "unnamed"},
      {3, "e1", "\"caf\\u00e9\"", NULL},
      {4, "e2", "[2.50,1e3]", NULL},
      {5, "after-empties", "{\"serial\":18446744073709551616}", "x"},
      {6, NULL, "{\"a\":1,\"a\":2}", "y"},
      {7, "last-empty", "null", NULL},
  };
  dump_region("dump/mixed.region", 1, "mixed", "{ \"owner\": \"tests\" }", 0,
              mixed, N(mixed));

  /* Dense ids added out of order: no PACKED_LOCATORS, content not in id
   * order. */
  const fx_layer shuffled[] = {
      {3, "three", NULL, "333"},
      {1, NULL, NULL, "1"},
      {0, "zero", NULL, NULL},
      {2, "two", NULL, "22"},
  };
  dump_region("dump/shuffled.region", 2, "shuffled", NULL, 0, shuffled,
              N(shuffled));

  /* Dense, added out of order only among empty layers that share an
   * offset: the dump must keep them out of order, or the rebuilt region
   * would gain PACKED_LOCATORS. */
  const fx_layer empty_ties[] = {
      {1, NULL, NULL, NULL},
      {0, NULL, NULL, NULL},
      {2, "content", NULL, "after two empty layers"},
  };
  dump_region("dump/empty_ties.region", 3, "empty-ties", NULL, 0, empty_ties,
              N(empty_ties));

  /* The same in ascending order: PACKED_LOCATORS, which must stay. */
  const fx_layer empty_ties_sorted[] = {
      {0, NULL, NULL, NULL},
      {1, NULL, NULL, NULL},
      {2, "content", NULL, "after two empty layers"},
  };
  dump_region("dump/empty_ties_sorted.region", 4, "empty-ties-sorted", NULL, 0,
              empty_ties_sorted, N(empty_ties_sorted));

  /* Sparse ids, above 2^63 too, added in descending order, one empty. */
  const fx_layer sparse[] = {
      {UINT64_MAX, "max", NULL, "u64 max"},
      {(1ull << 63) + 5, NULL, NULL, NULL},
      {1ull << 63, "half", "{\"id\":\"2^63\"}", "2^63"},
      {7, "seven", NULL, "7"},
  };
  dump_region("dump/sparse_high.region", UINT64_MAX, "sparse-high", NULL, 0,
              sparse, N(sparse));

  /* Names that are not usable as file names, or that need escaping. */
  const fx_layer names[] = {
      {0, "../../etc/passwd", NULL, "dots"},
      {1, "a/b/c", NULL, "slashes"},
      {2, ".", NULL, "dot"},
      {3, "new\nline\ttab\x1b[31m", NULL, "controls"},
      {4, "quote\"back\\slash", NULL, "json escapes"},
      {5,
       "\xe2\x80\xae"
       "bidi \xc2\x85 nel caf\xc3\xa9",
       NULL, "unicode"},
      {6, "2", NULL, "a name of digits"},
  };
  dump_region("dump/names.region", 6, "names: \"quoted\" / \xe2\x80\xae", NULL,
              0, names, N(names));

  /* Alignments other than the default. */
  const fx_layer aligned[] = {
      {0, "a", NULL, "a 33-byte layer to unalign things"},
      {1, NULL, NULL, NULL},
      {2, "c", NULL, "c"},
  };
  dump_region("dump/align_4096.region", 7, "align-4096", NULL, 4096, aligned,
              N(aligned));
  dump_region("dump/align_16.region", 8, "align-16", NULL, 16, aligned,
              N(aligned));

  /* No layers at all. */
  dump_region("dump/none.region", 9, "none", NULL, 0, NULL, 0);

  /* A layer larger than the dump's 1 MiB write piece. */
  size_t big = (3u << 20) + 17;
  char *blob = malloc(big + 1);
  if (blob == NULL)
    exit(1);
  for (size_t i = 0; i < big; i++)
    blob[i] = (char)('a' + (i * 7919) % 26);
  blob[big] = '\0';
  const fx_layer large[] = {{0, "big", NULL, blob}, {1, "small", NULL, "s"}};
  dump_region("dump/large.region", 10, "large", NULL, 256, large, N(large));
  free(blob);
}

static void copy_golden(const char *from, const char *to) {
  char src[4096], dst[4096];
  snprintf(src, sizeof src, "%s/%s", STRATA_GOLDEN_DIR, from);
  snprintf(dst, sizeof dst, "%s/delta/%s", outdir, to);
  FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
  if (in == NULL || out == NULL) {
    fprintf(stderr, "make_fixture: %s: %s\n", in ? dst : src, strerror(errno));
    exit(1);
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) {
      fprintf(stderr, "make_fixture: %s: write failed\n", dst);
      exit(1);
    }
  fclose(in);
  if (fclose(out) != 0) {
    fprintf(stderr, "make_fixture: %s: write failed\n", dst);
    exit(1);
  }
}

static void make_delta(void) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/delta", outdir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "make_fixture: %s: %s\n", dir, strerror(errno));
    exit(1);
  }
  copy_golden("v1-dense.region", "base.region");
  copy_golden("v1.1-delta.region", "base.1.delta");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_fixture OUTDIR\n");
    return 2;
  }
  outdir = argv[1];
  make_dense();
  make_sparse();
  make_small();
  make_big();
  make_damaged();
  make_store();
  make_store4k();
  make_hostile();
  make_dump_regions();
  make_delta();
  return 0;
}
