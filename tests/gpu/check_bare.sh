#!/usr/bin/env bash
# Proves that the folder tests/gpu/prepare.sh makes runs on a bare machine:
# runs its run.sh inside a minimal Debian chroot (debootstrap --variant=
# minbase) from which jansson, xxhash, libnuma and cmocka are removed, as
# root. There is no GPU (and no CUDA driver) in it, so run.sh must find
# every library and then report "no GPU" and skip, with exit status 0.
#
#   tests/gpu/check_bare.sh [CARRY_DIR]
#
# CARRY_DIR defaults to .gpu-carry/ in the source tree; it is made with
# prepare.sh when absent. The minimal system is made once with debootstrap
# (the suite and mirror of this machine, about 30 s with the network) and
# kept as a tarball in $STRATA_CHROOT_CACHE (default .gpu-chroot/ in the
# source tree, git-ignored); each check unpacks a fresh copy of it.
#
# Exit status: 0 when the check passed; 1 when it failed (the output of
# run.sh is shown); 2 when it cannot run here (not root, no debootstrap).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
carry=${1:-$src/.gpu-carry}
cache=${STRATA_CHROOT_CACHE:-$src/.gpu-chroot}

die() {
  echo "check_bare: $*" >&2
  exit "${2:-1}"
}
[[ $(id -u) == 0 ]] || die "needs root (chroot)" 2
command -v debootstrap >/dev/null ||
  die "needs debootstrap (apt-get install debootstrap)" 2
[[ -x $carry/run.sh ]] || bash "$src/tests/gpu/prepare.sh" "$carry"

# This machine's suite and its Debian mirror (deb822 sources or the
# one-line list).
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")
mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' \
  /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
tarball=$cache/$suite-minbase.tar

if [[ ! -f $tarball ]]; then
  echo "check_bare: making a minimal $suite system with debootstrap ($mirror)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/debootstrap.XXXXXX")
  if ! debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    rm -rf "$tmp"
    die "debootstrap failed (see $cache/debootstrap.log)"
  fi
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  tar -C "$tmp" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$tmp"
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/strata-bare.XXXXXX")
cleanup() {
  mountpoint -q "$root/proc" && umount "$root/proc"
  rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$tarball"
# A bare GPU machine lacks these: minbase has libxxhash0 (apt uses it), so
# it goes, and nothing of them may be left.
rm -f "$root"/usr/lib/x86_64-linux-gnu/lib{jansson,xxhash,numa,cmocka}.so*
left=$(find "$root" -name 'libjansson.so*' -o -name 'libxxhash.so*' \
  -o -name 'libnuma.so*' -o -name 'libcmocka.so*' -o -name 'libcuda.so*')
[[ -z $left ]] || die "the chroot still has: $left"
cp -a "$carry" "$root/carry"
mount -t proc proc "$root/proc" 2>/dev/null || true

out=$root/out
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OUT=/out \
  /bin/bash /carry/run.sh >"$root/stdout" 2>&1
rc=$?
set -e
fail=
((rc == 0)) || fail="run.sh exited $rc"
for want in "every library found" "no GPU: test_gpu, bench_gpu and compute-sanitizer skipped" \
  "test_gpu: skipped"; do
  grep -qF "$want" "$out/gpu-results.txt" 2>/dev/null || fail="${fail:+$fail; }no line '$want' in \$OUT/gpu-results.txt"
done
cmp -s "$root/stdout" "$out/gpu-results.txt" || fail="${fail:+$fail; }stdout and \$OUT/gpu-results.txt differ"
if [[ -n $fail ]]; then
  cat "$root/stdout"
  die "FAILED: $fail"
fi
grep -E '^(test_gpu|bench_gpu):|^no GPU|library' "$out/gpu-results.txt"
echo "check_bare: passed (run.sh in a minimal $suite chroot without jansson, xxhash, numa, cmocka or a CUDA driver)"
