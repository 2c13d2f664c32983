#!/usr/bin/python3
"""ctest example_python_context: runs examples/python/license_context.py
and checks that what it prints is what `strata context` prints over the
same store, which proves that the Python example renders the CLI's format
(docs/CLI.md), and that every block's text is the license's own.

    check_license_context.py STRATA_CLI

Three runs over one store in a temporary directory:
1. the example builds the store from /usr/share/common-licenses and prints
   a path through four licenses (a preamble, sections, an appendix):
   compared with `strata context`, and each block's text found verbatim in
   its license file;
2. a region "edge" written here with strata.Writer, whose layers take the
   format's other branches (empty, binary, no final newline, integer, real
   and boolean frequency, keywords that are not all strings, names and
   metadata the escaping rule changes): compared with `strata context`;
3. a missing chunk: the example exits non-zero naming it.
Exit 77 (skipped) when the corpus is not installed.
"""
import difflib
import os
import subprocess
import sys
import tempfile

import strata

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "license_context.py")
CORPUS = "/usr/share/common-licenses"

LICENSE_PATH = ["gpl-3/preamble", "gpl-3/section-17", "gpl-3/appendix",
                "bsd/section-3", "apache-2.0/section-1", "mpl-2.0/section-2"]

ESC = "edge/esc\x1b[31m\u202e\\"
EDGE = [  # (name, data, metadata)
    ("edge/empty", b"", None),
    ("edge/binary", b"\x00\xffbinary", {"keywords": ["bin"]}),
    ("edge/no-newline", b"no final newline", {"frequency": 4}),
    ("edge/real", "caf\u00e9\n".encode(), {"frequency": 2.5,
                                             "keywords": ["x", 1, "y"]}),
    ("edge/bool", b"text\n", {"frequency": True, "keywords": "not a list"}),
    (ESC, b"escaped name\n", {"keywords": ["k\u202ew", "back\\slash"]}),
    ("edge/list-meta", b"list\n", [1, 2]),
]


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def compare(store, refs):
    mine = run([sys.executable, EXAMPLE, "--store", store, *refs])
    cli = run([sys.argv[1], "context", store,
               *("%s:%s" % (r.split("/", 1)[0], r) for r in refs)])
    for name, p in (("example", mine), ("strata context", cli)):
        if p.returncode != 0:
            sys.exit("%s failed (%d): %s" % (name, p.returncode, p.stderr))
    if mine.stdout != cli.stdout:
        sys.stdout.writelines(difflib.unified_diff(
            cli.stdout.splitlines(True), mine.stdout.splitlines(True),
            "strata context", "license_context.py"))
        sys.exit("the example's output differs from strata context's")
    return mine.stdout


def main():
    if not os.path.isdir(CORPUS):
        print("skipped: %s is not installed" % CORPUS)
        return 77
    with tempfile.TemporaryDirectory(prefix="strata-example-") as work:
        store = os.path.join(work, "ctx")
        out = compare(store, LICENSE_PATH)
        blocks = out.split("=== region ")[1:]
        assert len(blocks) == len(LICENSE_PATH), out
        for ref, text in zip(LICENSE_PATH, blocks):
            region = ref.split("/")[0]
            assert text.startswith("%s (id " % region), text[:80]
            assert "layer %s (id " % ref in text.split("\n", 1)[0]
            # The content: after the header lines and a blank line, up to
            # the block's closing blank line.
            content = text.split("\n\n", 1)[1][:-1]
            license_file = [f for f in os.listdir(CORPUS)
                            if f.lower() == region][0]
            with open(os.path.join(CORPUS, license_file)) as f:
                assert content.strip("\n") in f.read(), (ref, content[:200])

        with strata.Writer(os.path.join(store, "edge.region"),
                           region_id=1000, name="edge",
                           metadata={"t": "\u00e9\x1b\u202e", "lit": "\\u00ab",
                                     "n": [1, None]}
                           ) as w:
            for layer_id, (name, data, meta) in enumerate(EDGE, 1):
                w.add(layer_id, data, name=name, metadata=meta)
        out = compare(store, [name for name, _, _ in EDGE])
        for needle in ("[empty]", "[binary, 8 bytes]", "frequency: 4",
                       "frequency: 2.5", "keywords: x, y", "\\u{202e}"):
            assert needle in out, (needle, out)

        miss = run([sys.executable, EXAMPLE, "--store", store,
                    "gpl-3/section-99"])
        assert miss.returncode != 0
        assert "'gpl-3/section-99'" in miss.stderr, miss.stderr
    print("example_python_context: the example prints what strata context "
          "prints (%d + %d blocks)" % (len(LICENSE_PATH), len(EDGE)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
