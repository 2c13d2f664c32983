#!/usr/bin/python3
"""Retrieval over a real corpus with Strata, from Python.

Builds a store from the license texts Debian ships in
/usr/share/common-licenses: one region per license ("gpl-3", "apache-2.0",
...), one layer per chunk of it, named "LICENSE/CHUNK": "gpl-3/preamble",
"gpl-3/section-17" (a numbered section, from its heading to the next),
"gpl-3/appendix" (what follows END OF TERMS AND CONDITIONS). Then looks up
a path of chunks by name in one snapshot and prints them as the context of
an LLM prompt, in the format of `strata context` (docs/CLI.md), so that the
output of

    python3 examples/python/license_context.py --store ctx \\
        gpl-3/section-15 gpl-3/section-16 bsd/section-3

is the same as `strata context ctx gpl-3:gpl-3/section-15 ...`.

    --licenses DIR   the corpus (default /usr/share/common-licenses)
    --store DIR      the store (built when it holds no region yet)
    --list           print the layer names instead of a prompt
    --question TEXT  put the question after the context, as a prompt would

Layer metadata: {"keywords": [license, heading], "lines": [first, last]},
so that each block of the prompt says where its text comes from.
"""
import argparse
import json
import os
import re
import sys

import strata

# A numbered section's heading: "  17. Interpretation of ..." (GPL),
# "1. Definitions." (MPL), "0. PREAMBLE" (GFDL). Only the next number in
# sequence starts a section, so that a numbered list inside a section
# ("1. Redistributions ...") is not taken for one unless it is the only
# numbering the text has.
HEADING = re.compile(r"^ {0,4}(\d{1,2})\.\s+\S")
END_OF_TERMS = re.compile(r"^\s*END OF TERMS AND CONDITIONS\s*$")


def chunks_of(text):
    """(chunk name, first line, last line, text) for each chunk of a
    license; line numbers count from 1."""
    lines = text.splitlines(keepends=True)
    chunks = []  # [name, first, lines]
    expected = None  # the number the next section must have
    for number, line in enumerate(lines, 1):
        m = HEADING.match(line)
        name = None
        if END_OF_TERMS.match(line) and expected is not None:
            name, expected = "appendix", -1
        elif m and expected != -1:
            n = int(m.group(1))
            if (expected is None and n in (0, 1)) or n == expected:
                name, expected = "section-%d" % n, n + 1
        if name is None and not chunks:
            name = "preamble"
        if name is not None:
            chunks.append([name, number, []])
        chunks[-1][2].append(line)
    out = []
    for name, first, body in chunks:
        content = "".join(body).strip("\n")
        if content:
            out.append((name, first, first + len(body) - 1, content + "\n"))
    return out


def licenses(directory):
    """(region name, path) of every license file; the unversioned names
    (GPL, LGPL, GFDL) are links to a versioned one and are left out."""
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if os.path.isfile(path) and not os.path.islink(path):
            yield entry.lower(), path


def build(store_dir, corpus):
    """One region file per license, written with strata.Writer into the
    store's directory (each file appears whole, at commit, or not at
    all)."""
    os.makedirs(store_dir, exist_ok=True)
    for region_id, (name, path) in enumerate(licenses(corpus), 1):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        title = text.strip().splitlines()[0].strip()
        with strata.Writer(os.path.join(store_dir, name + ".region"),
                           region_id=region_id, name=name,
                           metadata={"source": path, "title": title}) as w:
            for layer_id, (chunk, first, last, content) in enumerate(
                    chunks_of(text), 1):
                heading = content.strip().splitlines()[0].strip()
                w.add(layer_id, content.encode(),
                      name="%s/%s" % (name, chunk),
                      metadata={"keywords": [name, heading],
                                "lines": [first, last]})


# ---- the format of `strata context` (tools/strata_cli/cmd_context.c) -----

def escaped(text):
    """Names and metadata as the tools print them (docs/CLI.md,
    "Escaping"): controls and bidirectional marks escaped, the rest as
    is."""
    out = []
    for ch in text:
        cp = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\x%02x" % cp)
        elif (0x80 <= cp <= 0x9F or cp in (0x061C, 0x200E, 0x200F)
              or 0x2028 <= cp <= 0x202E or 0x2066 <= cp <= 0x2069):
            out.append("\\u{%04x}" % cp)
        else:
            out.append(ch)
    return "".join(out)


# A \uXXXX escape, or an escaped backslash (consumed first, so that the
# "u" after it is not taken for an escape).
JSON_ESCAPE = re.compile(r"(\\\\)|\\u([0-9a-f]{4})")


def compact_json(value):
    """Metadata re-serialized on one line as the CLI's jansson does it:
    compact, UTF-8 as is, keys in their order, and the controls it escapes
    as \\u00XX written with upper-case hex digits (Python writes them in
    lower case)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return JSON_ESCAPE.sub(
        lambda m: m.group(1) or "\\u" + m.group(2).upper(), text)


def is_text(data):
    """UTF-8 without a NUL byte, as `strata context` decides."""
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def block(region, layer):
    """One layer as `strata context` prints it."""
    lines = []
    if layer.name is not None:
        head = "layer %s (id %d)" % (escaped(layer.name), layer.id)
    else:
        head = "layer %d" % layer.id
    lines.append("=== region %s (id %d) / %s ===\n"
                 % (escaped(region["name"]), region["id"], head))
    if region.get("metadata") is not None:
        lines.append("region metadata: %s\n"
                     % escaped(compact_json(region["metadata"])))
    meta = layer.metadata if isinstance(layer.metadata, dict) else {}
    keywords = meta.get("keywords")
    if isinstance(keywords, list):
        words = [escaped(k) for k in keywords if isinstance(k, str)]
        if words:
            lines.append("keywords: %s\n" % ", ".join(words))
    frequency = meta.get("frequency")
    if isinstance(frequency, bool):
        frequency = None  # JSON true/false is not a number
    if isinstance(frequency, int):
        lines.append("frequency: %d\n" % frequency)
    elif isinstance(frequency, float):
        lines.append("frequency: %s\n" % format(frequency, ".15g"))
    lines.append("\n")
    data = bytes(layer)  # the one copy: the text goes into a str anyway
    if not data:
        lines.append("[empty]\n")
    elif not is_text(data):
        lines.append("[binary, %d bytes]\n" % len(data))
    else:
        text = data.decode("utf-8")
        lines.append(text if text.endswith("\n") else text + "\n")
    lines.append("\n")
    return "".join(lines)


def context(store_dir, refs):
    """The prompt context for layer names "REGION/CHUNK", all read from one
    snapshot: every block sees the same version of the store."""
    with strata.Store(store_dir) as store, store.snapshot() as snap:
        regions = {r["name"]: r for r in snap.regions()}
        path = [(ref.split("/", 1)[0], ref) for ref in refs]
        for region, _ in path:
            if region not in regions:
                raise SystemExit("license_context: no region %r in %s"
                                 % (region, store_dir))
        layers = snap.get_many(path)  # None where a layer is missing
        for (region, ref), layer in zip(path, layers):
            if layer is None:
                raise SystemExit("license_context: region %r has no layer "
                                 "%r (--list shows them)" % (region, ref))
        return "".join(block(regions[region], layer)
                       for (region, _), layer in zip(path, layers))


def main(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--licenses", default="/usr/share/common-licenses")
    parser.add_argument("--store", required=True)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--question")
    parser.add_argument("refs", nargs="*", metavar="LICENSE/CHUNK",
                        default=["gpl-3/section-15", "gpl-3/section-16",
                                 "gpl-3/section-17"])
    args = parser.parse_args(argv)
    if not os.path.isdir(args.store) or not any(
            e.endswith(".region") for e in os.listdir(args.store)):
        build(args.store, args.licenses)
    if args.list:
        with strata.Store(args.store) as store, store.snapshot() as snap:
            for r in snap.regions():
                for layer in snap.layers(r["id"]):
                    print(layer.name)
        return 0
    sys.stdout.write(context(args.store, args.refs))
    if args.question:
        sys.stdout.write("Question: %s\n" % args.question)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
