#!/usr/bin/python3
"""Checks a remote store's objects and a local copy's content, for the fault
tests of tests/remote/ (issue 17 §3). It reads RADOS itself (python3-rados,
which ceph-common installs) and computes XXH3 through libxxhash, so it trusts
nothing the code under test says about itself.

  remote_check.py head CONF POOL NAME
      HEAD's version is a complete version: head's body and xattrs agree,
      manifest.N exists and its bytes match HEAD's manifest_xxh3 and its
      own strata.xxh3, and every chunk it names exists with the right size,
      xattr and bytes (XXH3-64), and each file's chunks make its XXH3-128.
      Prints {"version": N, "files": {FILE: SHA256}} (version 0: no files).
  remote_check.py gc CONF POOL NAME KEEP
      After `strata remote gc --keep KEEP`: the namespace holds exactly
      head, the pins, the manifests of the last KEEP versions up to HEAD
      that exist, those pins name, and the chunks these manifests name
      (each present). Prints the object count.
  remote_check.py count CONF POOL NAME
      Prints the number of objects in the namespace.
  remote_check.py files DIR
      Prints {FILE: SHA256} of DIR's *.region files.
  remote_check.py match FILES_JSON STATES_DIR
      FILES_JSON (a file holding the "files" map of `head`, or the output
      of `files`) equals exactly one state STATES_DIR/*.json (each a
      {FILE: SHA256} map); prints the state's name, else fails.

Exit status 0 when the check holds, 1 with the reason on stderr otherwise.
"""
import ctypes
import glob
import hashlib
import json
import os
import sys

import rados

_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


class _H128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


_xxh.XXH3_128bits.restype = _H128
_xxh.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def xxh64(b):
    return "%016x" % _xxh.XXH3_64bits(b, len(b))


def xxh128(b):
    h = _xxh.XXH3_128bits(b, len(b))
    return "%016x%016x" % (h.high64, h.low64)


class Fail(Exception):
    pass


def connect(conf, pool, name):
    cluster = rados.Rados(conffile=conf)
    cluster.conf_set("rados_osd_op_timeout", "30")
    cluster.conf_set("rados_mon_op_timeout", "30")
    cluster.connect(timeout=30)
    io = cluster.open_ioctx(pool)
    io.set_namespace(name)
    return cluster, io


def read_all(io, obj):
    size, _ = io.stat(obj)
    data = io.read(obj, size) if size else b""
    if len(data) != size:
        raise Fail("%s: read %d bytes of %d" % (obj, len(data), size))
    return data


def xattr(io, obj, key):
    try:
        return io.get_xattr(obj, key).decode()
    except rados.ObjectNotFound:
        raise Fail("%s: no xattr %s" % (obj, key))


def manifest_files(m):
    """Every file a manifest lists: each region's base, then its delta
    files (format 2) in chain order."""
    for r in m["regions"]:
        yield r
        for d in r.get("deltas", []):
            yield d


def check_manifest(io, mname, want_xxh3):
    """Checks manifest MNAME and all it names; returns {file: sha256}."""
    try:
        doc = read_all(io, mname)
    except rados.ObjectNotFound:
        raise Fail("HEAD names %s, which does not exist" % mname)
    if want_xxh3 is not None and xxh64(doc) != want_xxh3:
        raise Fail("%s: XXH3-64 %s, HEAD says %s" % (mname, xxh64(doc), want_xxh3))
    if xattr(io, mname, "strata.xxh3") != xxh64(doc):
        raise Fail("%s: its strata.xxh3 xattr does not match its bytes" % mname)
    m = json.loads(doc)
    cs = m["chunk_size"]
    files = {}
    for r in manifest_files(m):
        n = len(r["chunks"])
        if n != (r["size"] + cs - 1) // cs:
            raise Fail("%s: %s: %d chunks for %d bytes" % (mname, r["file"], n, r["size"]))
        whole = bytearray()
        for i, ck in enumerate(r["chunks"]):
            obj = "chunk.%s.%08x.%06d" % (r["hash"], cs, i)
            want = cs if i < n - 1 else r["size"] - cs * (n - 1)
            try:
                data = read_all(io, obj)
            except rados.ObjectNotFound:
                raise Fail("%s: %s: chunk %s missing" % (mname, r["file"], obj))
            if len(data) != want:
                raise Fail("%s: %s has %d bytes, expected %d" % (mname, obj, len(data), want))
            if xxh64(data) != ck or xattr(io, obj, "strata.xxh3") != ck:
                raise Fail("%s: %s: bytes or xattr do not match checksum %s" % (mname, obj, ck))
            whole += data
        if xxh128(bytes(whole)) != r["hash"]:
            raise Fail("%s: %s: the chunks do not make hash %s" % (mname, r["file"], r["hash"]))
        files[r["file"]] = hashlib.sha256(whole).hexdigest()
    return m, files


def read_head(io):
    try:
        body = json.loads(read_all(io, "head"))
    except rados.ObjectNotFound:
        return None
    v = int(xattr(io, "head", "strata.version"))
    if body["version"] != v:
        raise Fail("head: body says version %d, xattr %d" % (body["version"], v))
    return body


def cmd_head(conf, pool, name):
    _, io = connect(conf, pool, name)
    body = read_head(io)
    if body is None or body["version"] == 0:
        print(json.dumps({"version": 0, "files": {}}))
        return
    v = body["version"]
    mname = "manifest.%020d" % v
    if body["manifest"] != mname:
        raise Fail("head: version %d names %s" % (v, body["manifest"]))
    m, files = check_manifest(io, mname, body["manifest_xxh3"])
    if m["version"] != v:
        raise Fail("%s says version %d" % (mname, m["version"]))
    print(json.dumps({"version": v, "files": files}, sort_keys=True))


def list_objects(io):
    return sorted(o.key for o in io.list_objects())


def cmd_gc(conf, pool, name, keep):
    _, io = connect(conf, pool, name)
    body = read_head(io)
    head = body["version"] if body else 0
    objs = set(list_objects(io))
    kept_versions = {v for v in range(max(1, head - keep + 1), head + 1)}
    for o in objs:
        if o.startswith("pin."):
            pin = json.loads(read_all(io, o))
            for k in ("serving", "fetching"):
                if pin.get(k):
                    kept_versions.add(pin[k])
    want = {"head"} | {o for o in objs if o.startswith("pin.")}
    for v in sorted(kept_versions):
        mname = "manifest.%020d" % v
        if mname not in objs:
            if v == head:
                raise Fail("HEAD's %s is gone" % mname)
            continue
        want.add(mname)
        m = json.loads(read_all(io, mname))
        cs = m["chunk_size"]
        for r in manifest_files(m):
            for i in range(len(r["chunks"])):
                want.add("chunk.%s.%08x.%06d" % (r["hash"], cs, i))
    missing = sorted(want - objs)
    extra = sorted(objs - want)
    if missing:
        raise Fail("objects kept versions reference are missing: %s" % missing[:5])
    if extra:
        raise Fail("%d objects no kept version references are left: %s"
                   % (len(extra), extra[:5]))
    print(len(objs))


def sha_files(d):
    out = {}
    for p in sorted(glob.glob(os.path.join(d, "*.region")) +
                    glob.glob(os.path.join(d, "*.delta"))):
        with open(p, "rb") as f:
            out[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()
    return out


def cmd_match(files_json, states_dir):
    with open(files_json) as f:
        got = json.load(f)
    if "version" in got and "files" in got:  # the output of `head`
        got = got["files"]
    for p in sorted(glob.glob(os.path.join(states_dir, "*.json"))):
        with open(p) as f:
            if json.load(f) == got:
                print(os.path.basename(p)[:-5])
                return
    raise Fail("%s is no published state of %s: %s" % (files_json, states_dir, sorted(got)))


def main(argv):
    try:
        if argv[:1] == ["head"] and len(argv) == 4:
            cmd_head(*argv[1:])
        elif argv[:1] == ["gc"] and len(argv) == 5:
            cmd_gc(argv[1], argv[2], argv[3], int(argv[4]))
        elif argv[:1] == ["count"] and len(argv) == 4:
            print(len(list_objects(connect(*argv[1:])[1])))
        elif argv[:1] == ["files"] and len(argv) == 2:
            print(json.dumps(sha_files(argv[1]), sort_keys=True))
        elif argv[:1] == ["match"] and len(argv) == 3:
            cmd_match(argv[1], argv[2])
        else:
            sys.stderr.write(__doc__)
            return 2
    except Fail as e:
        sys.stderr.write("remote_check: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
