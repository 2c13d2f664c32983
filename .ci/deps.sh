#!/usr/bin/env bash
# Installs the Debian packages Strata needs that are missing on this machine
# (run as root; does nothing when everything is present).
set -euo pipefail
packages=(
  build-essential cmake pkg-config   # toolchain
  clang-format python3               # tools/check_format.sh, check_layers.py
  libjansson-dev libxxhash-dev libnuma-dev  # library dependencies
  libcmocka-dev python3-jsonschema   # tests (the state dump's schema)
  liblmdb-dev libcdb-dev liburcu-dev # benchmark peers
  clang libclang-rt-14-dev           # libFuzzer and sanitizer runtimes
  python3-dev python3-setuptools python3-pip python3-venv  # bindings/python
  python3-pytest python3-numpy python3-lmdb  # its tests and benchmark
  librados-dev                       # the remote tier (STRATA_WITH_RADOS)
  ceph-mon ceph-osd ceph-mgr ceph-common  # its tests' cluster (tests/remote)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
