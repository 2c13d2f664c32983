#!/usr/bin/env python3
"""Checks that src/ keeps its layers (docs/ARCHITECTURE.md, "Modules").

    check_layers.py SRC_DIR                 the #include directions
    check_layers.py SRC_DIR OBJECT_DIR      the same, and the calls between
                                            files, read from the objects'
                                            symbol tables with `nm`

The layers, lowest first:

    common <- format <- region <- writer <- store <- staging <- state <- strata.c
                                        device <-'
                                                 store <- remote <- state

remote/ (the Ceph tier) has staging/'s rank: neither uses the other.

A file under src/LAYER/ may include headers of its own layer and of the
layers below it, named with their folder ("store/store_internal.h"); the
public headers ("strata.h", "strata/...") are allowed everywhere. device/
sits beside the store: it uses common/ only, and staging/ uses both.

With OBJECT_DIR (a build's CMakeFiles/strata_objects.dir/src), every
undefined symbol of an object is resolved to the object that defines it,
which gives the graph "file A calls into file B". The check fails on a call
into a higher layer (a header-only inline function escapes the include check
but not this one) and on any cycle among files, within a layer too: a lower
part that must tell a higher one something offers a hook instead.

Exits 0 when everything holds, 1 with one line per violation otherwise.
"""
import os
import re
import subprocess
import sys

RANK = {"common": 0, "format": 1, "region": 2, "writer": 3, "store": 4,
        "device": 4, "staging": 5, "remote": 5, "state": 6, "": 7}
# Layers a layer may use besides the ones ranked below it; None: only these.
ONLY = {"device": {"common", "device"}}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(rel):
    """The layer of a path relative to src/: its folder, '' for src/*.c."""
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else ""


def may_use(user, used):
    if user == used:
        return True
    if user in ONLY:
        return used in ONLY[user]
    if used in ONLY and user not in ("", "state", "staging"):
        return False  # device/ serves the staging pool and what is above it
    return RANK[used] < RANK[user]


def check_includes(src):
    errors = []
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            user = layer_of(rel)
            if user not in RANK:
                errors.append(f"{rel}: folder '{user}' is not a known layer")
                continue
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if inc == "strata.h" or inc.startswith("strata/"):
                        continue
                    if "/" not in inc:
                        errors.append(f"{rel}:{lineno}: #include \"{inc}\" "
                                      "does not name its layer's folder")
                        continue
                    used = inc.split("/")[0]
                    if used not in RANK or used == "":
                        errors.append(f"{rel}:{lineno}: #include \"{inc}\": "
                                      f"no layer '{used}'")
                    elif not os.path.exists(os.path.join(src, inc)):
                        errors.append(f"{rel}:{lineno}: #include \"{inc}\": "
                                      "no such file under src/")
                    elif not may_use(user, used):
                        errors.append(f"{rel}:{lineno}: #include \"{inc}\": "
                                      f"{user or 'src/'} may not use {used}/, "
                                      "a higher layer")
    return errors


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", obj], capture_output=True,
                         text=True, check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines()
               if len(l.split()) == 3 and l.split()[1] in "TDBRCVW"}
    out = subprocess.run(["nm", "--undefined-only", obj], capture_output=True,
                         text=True, check=True).stdout
    undefined = {l.split()[-1] for l in out.splitlines() if l.split()}
    return defined, undefined


def check_calls(objdir):
    objs = {}
    for root, _, files in os.walk(objdir):
        for name in files:
            if name.endswith(".c.o"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, objdir)[: -len(".o")]
                objs[rel] = symbols(path)
    owner = {}
    for rel, (defined, _) in objs.items():
        for sym in defined:
            owner[sym] = rel
    graph = {rel: set() for rel in objs}
    why = {}
    for rel, (_, undefined) in objs.items():
        for sym in undefined:
            dep = owner.get(sym)
            if dep is not None and dep != rel:
                graph[rel].add(dep)
                why.setdefault((rel, dep), sym)
    errors = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if not may_use(layer_of(a), layer_of(b)):
                errors.append(f"{a} calls {why[(a, b)]} in {b}: "
                              f"{layer_of(a) or 'src/'} may not use "
                              f"{layer_of(b)}/, a higher layer")
    for scc in strongly_connected(graph):
        if len(scc) > 1:
            edges = ", ".join(f"{a} -> {b} ({why[(a, b)]})"
                              for a in sorted(scc) for b in sorted(graph[a])
                              if b in scc)
            errors.append(f"cycle among {len(scc)} files: {edges}")
    return errors, sum(len(v) for v in graph.values()), len(graph)


def strongly_connected(graph):
    """Tarjan's algorithm, iterative (the graph is small, but recursion
    limits are not worth thinking about)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    scc.append(w)
                    if w == node:
                        break
                out.append(scc)
    return out


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: check_layers.py SRC_DIR [OBJECT_DIR]", file=sys.stderr)
        return 2
    errors = check_includes(argv[1])
    summary = "includes"
    if len(argv) == 3:
        call_errors, nedges, nfiles = check_calls(argv[2])
        if nfiles == 0:
            print(f"check_layers: no objects under {argv[2]}", file=sys.stderr)
            return 2
        errors += call_errors
        summary += f" and {nedges} calls between {nfiles} files"
    for e in errors:
        print(e)
    if errors:
        print(f"check_layers: {len(errors)} violation(s)", file=sys.stderr)
        return 1
    print(f"check_layers: {summary} follow the layers, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
