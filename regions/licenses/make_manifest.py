#!/usr/bin/env python3
"""Regenerates regions/licenses/: the GPL-3 split into its preamble, its
eighteen numbered sections and its "How to Apply" appendix, plus a few whole
licence texts, and the manifest.json that lists them as layers.

The texts come from Debian's /usr/share/common-licenses (licence texts may be
copied verbatim). They are committed, so building the region does not depend
on the build machine. Run it again only to refresh the texts.

Each GPL-3 layer's metadata has a title, a few keywords picked by hand for
what the section is about, and "frequency": the number of times the most
frequent of those keywords occurs in the section (whole words, ignoring
case). It is a plain count, computed below, not a relevance score.
"""
import json
import os
import re
import shutil
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/common-licenses"
HERE = os.path.dirname(os.path.abspath(__file__))

# Keywords per GPL-3 section, chosen by reading each section.
KEYWORDS = {
    "preamble": ["freedom", "rights", "software"],
    0: ["work", "covered", "propagate", "convey"],
    1: ["source", "code", "object"],
    2: ["permissions", "convey", "run"],
    3: ["circumvention", "technological", "measures"],
    4: ["verbatim", "copies", "notices"],
    5: ["modified", "notices", "aggregate"],
    6: ["object", "code", "installation", "information"],
    7: ["additional", "terms", "permissions"],
    8: ["termination", "license", "rights"],
    9: ["acceptance", "copies"],
    10: ["downstream", "recipients", "license"],
    11: ["patent", "license", "contributor"],
    12: ["conditions", "obligations"],
    13: ["affero", "network"],
    14: ["version", "versions", "proxy"],
    15: ["warranty", "risk"],
    16: ["liability", "damages"],
    17: ["warranty", "liability", "review"],
    "how-to-apply": ["program", "notice", "copyright"],
}

# Whole licence texts added as one layer each.
WHOLE = ["Apache-2.0", "MPL-2.0", "BSD", "CC0-1.0"]


def frequency(text, words):
    low = text.lower()
    return max(len(re.findall(r"\b%s\b" % re.escape(w), low)) for w in words)


def split_gpl3(text):
    """Yields (key, title, text) for the preamble, sections 0-17 and the
    appendix. A section starts at a line "  N. Title." indented by exactly
    two spaces (deeper indented numbers are list items inside sections)."""
    lines = text.splitlines(keepends=True)
    starts = []
    for i, line in enumerate(lines):
        m = re.match(r"^  (\d+)\. (.*)$", line)
        if m:
            starts.append((i, int(m.group(1)), m.group(2).strip()))
        elif "END OF TERMS AND CONDITIONS" in line:
            end = i
        elif "How to Apply These Terms" in line:
            appendix = i
    assert [n for _, n, _ in starts] == list(range(18)), starts
    yield "preamble", "Preamble", "".join(lines[: starts[0][0]])
    for k, (i, n, title) in enumerate(starts):
        stop = starts[k + 1][0] if k + 1 < len(starts) else end
        yield n, title.rstrip("."), "".join(lines[i:stop])
    yield "how-to-apply", "How to Apply These Terms to Your New Programs", \
        "".join(lines[appendix:])


def main():
    layers = []
    os.makedirs(os.path.join(HERE, "gpl-3"), exist_ok=True)
    with open(os.path.join(SRC, "GPL-3"), encoding="utf-8") as f:
        gpl = f.read()
    for key, title, text in split_gpl3(gpl):
        base = key if isinstance(key, str) else "section-%d" % key
        rel = "gpl-3/%s.txt" % base
        with open(os.path.join(HERE, rel), "w", encoding="utf-8") as f:
            f.write(text)
        words = KEYWORDS[key]
        layers.append({
            "id": len(layers),
            "name": "gpl-3/" + base,
            "metadata": {"title": title, "keywords": words,
                         "frequency": frequency(text, words)},
            "file": rel,
        })
    os.makedirs(os.path.join(HERE, "whole"), exist_ok=True)
    for name in WHOLE:
        rel = "whole/" + name
        shutil.copyfile(os.path.join(SRC, name), os.path.join(HERE, rel))
        layers.append({"id": len(layers), "name": name.lower(),
                       "metadata": {"title": name + " (whole text)"},
                       "file": rel})
    manifest = {
        "region": {"id": 1, "name": "licenses",
                   "metadata": {"source": "Debian /usr/share/common-licenses"}},
        "layers": layers,
    }
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


main()
